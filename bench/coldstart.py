"""Cold start of `faceverify compare A B` (with face detection, and with --no-detect): whole-process wall time
against `python -c "import torch"`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench import timing
from bench.evaluate_cli import faceverify_command, run_cli
from bench.report import Section, Target

TARGET_S = 0.5
TARGET_RATIO = 3.0
COMPARE = "faceverify compare A B --provider cpu"
NO_DETECT = "faceverify compare A B --provider cpu --no-detect"
TORCH = 'python -c "import torch"'


def _size(image: Path) -> str:
    from PIL import Image

    with Image.open(image) as img:
        return f"{img.width}x{img.height}"


def _python(code: str) -> float:
    return timing.wall(lambda: subprocess.run([sys.executable, "-c", code], check=True))


def run(model: Path | None, image_a: Path, image_b: Path, repeats: int, warmup: int) -> Section:
    """Interleave compare (detecting faces, and --no-detect) / import torch / bare Python processes; medians and
    the ratio to importing torch.

    `model` None runs the bundled model exactly as a user types the command, without --model.
    """
    compare = ["compare", str(image_a), str(image_b), "--provider", "cpu"]
    if model is not None:
        compare += ["--model", str(model)]
    samples = timing.interleave(
        {
            COMPARE: lambda: run_cli(compare, check_codes=(0, 1))[0],
            NO_DETECT: lambda: run_cli(compare + ["--no-detect"], check_codes=(0, 1))[0],
            TORCH: lambda: _python("import torch"),
            'python -c "pass" (the interpreter alone)': lambda: _python("pass"),
        },
        repeats,
        warmup,
    )
    cmp_s, no_detect_s, torch_s = samples[COMPARE], samples[NO_DETECT], samples[TORCH]
    speedup = timing.ratio(torch_s, cmp_s)
    section = Section(
        title="`faceverify compare A B`: cold start",
        intro=(
            f"Wall time of whole processes, from start to exit, rounds interleaved ({', '.join(samples)}); "
            f"{warmup} warm-up round(s) (files in the page cache, as on a second run), median of {repeats}. "
            f"A and B are two real LFW DevTest photos ({image_a.name}, {image_b.name}; {_size(image_a)} and "
            f"{_size(image_b)} JPEGs), each face "
            "found by the MTCNN detector and aligned (the default), or taken as a fixed crop with --no-detect, "
            "and scored by "
            + ("the bundled model (no --model). " if model is None else "the model given with --model. ")
            + f"`{' '.join(faceverify_command())}` is the installed script."
        ),
        header=["process", "median (s)", "min-max (ms)", "import torch / this"],
        rows=[
            [f"`{name}`", f"{s.median:.3f}", s.spread().removesuffix(" ms"), f"{timing.ratio(torch_s, s):.1f}x"]
            for name, s in samples.items()
        ],
    )
    section.notes.append(
        f"Median with detection less median with --no-detect: {(cmp_s.median - no_detect_s.median) * 1e3:.0f} ms "
        "(importing the face pipeline, loading the three MTCNN networks into ONNX Runtime, running them on both "
        "photos and aligning the faces)."
    )
    section.targets += [
        Target("`faceverify compare` cold start with face detection, median", f"< {TARGET_S:g} s",
               f"{cmp_s.median:.3f} s", cmp_s.median < TARGET_S),
        Target("`import torch` / `faceverify compare`", f">= {TARGET_RATIO:g}x", f"{speedup:.1f}x",
               speedup >= TARGET_RATIO),
    ]
    return section
