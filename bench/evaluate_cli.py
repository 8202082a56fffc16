"""`faceverify evaluate` as a user runs it: a subprocess per run, its wall clock, and the timing it reports."""

from __future__ import annotations

import functools
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import timing
from bench.report import Section, Target
from verify_cli.errors import FaceverifyError

TARGET_S = 5.0


def faceverify_command() -> list[str]:
    """The installed `faceverify` script beside this Python, else the module it runs."""
    script = Path(sys.executable).with_name("faceverify")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "verify_cli.cli"]


def run_cli(args: list[str], check_codes: tuple[int, ...] = (0,)) -> tuple[float, str]:
    """Run `faceverify ARGS`; its wall-clock seconds and stdout, or one error line naming what failed."""
    cmd = faceverify_command() + args
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode not in check_codes:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise FaceverifyError(f"faceverify {' '.join(args[:1])} exited {done.returncode}: {last}")
    return seconds, done.stdout


# the CLI as users run it (faces found and aligned), then with the fixed crop LFW's own framing allows
VARIANTS = {"CLI defaults": [], "--no-detect": ["--no-detect"]}
FIGURES = [  # (label, key in a run's record, decimals)
    ("whole process, wall clock (s)", "process_s", 2),
    ("embedding step: reading faces and model overlapped (s)", "wall_s", 2),
    ("  reading faces (decode, detection, alignment, preprocessing), summed over threads (s)", "decode_s", 2),
    ("  model, time inside ONNX Runtime (s)", "model_s", 2),
    ("rest: start-up, imports, model load, pair list, scoring, metrics (s)", "rest_s", 2),
    ("images/s, whole process", "process_per_s", 0),
    ("images/s, embedding step (the CLI's figure)", "images_per_s", 0),
    ("reading a face per image (ms, one thread)", "decode_ms", 2),
    ("model per image (ms, batch 64)", "model_ms", 2),
]
MODES = {"detect-align": "detected and aligned", "fixed-crop": "fixed centre crop (no detection)"}


def _record(seconds: float, summary: dict[str, Any]) -> dict[str, Any]:
    """One run's figures: the process wall clock and the timing the CLI reports, per image where useful."""
    t, images = summary["timing"], summary["images"]
    return {"process_s": seconds, "images": images, "faces": summary["faces"], **t, "rest_s": seconds - t["wall_s"],
            "process_per_s": images / seconds, "decode_ms": t["decode_s"] / images * 1e3,
            "model_ms": t["model_s"] / images * 1e3}


def run(model: Path, data_root: Path, pairs: str, pairs_label: str, repeats: int, warmup: int,
        cores: int) -> Section:
    """Median wall time of whole `faceverify evaluate --json` processes, split as the CLI reports it."""
    args = ["evaluate", "--model", str(model), "--data-root", str(data_root), "--pairs", pairs, "--provider", "cpu",
            "--json"]
    records: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}

    def side(name: str) -> float:
        seconds, out = run_cli(args + VARIANTS[name])
        records[name].append(_record(seconds, json.loads(out)))
        return seconds

    wall = timing.interleave({name: functools.partial(side, name) for name in VARIANTS}, repeats, warmup)
    timed = {name: rows[warmup:] for name, rows in records.items()}
    images = int(timed["CLI defaults"][0]["images"])

    def cell(name: str, key: str, digits: int) -> str:
        values = [r[key] for r in timed[name]]
        low, mid, high = min(values), statistics.median(values), max(values)
        return f"{mid:,.{digits}f} ({low:,.{digits}f}-{high:,.{digits}f})"

    process, fixed = wall["CLI defaults"].median, wall["--no-detect"].median

    def faces(name: str) -> str:
        summary = timed[name][0]["faces"]
        several = f"; {summary['several']:,} with several, {summary['pick']} used" if summary["several"] else ""
        return MODES.get(summary["mode"], summary["mode"]) + several
    section = Section(
        title="`faceverify evaluate` on DevTest",
        intro=(
            f"`faceverify {' '.join(args[:1] + ['--model', 'MODEL'] + args[3:])}` on {pairs_label} "
            f"({images:,} distinct images), a new process each run, on {cores} core(s): with the CLI's defaults "
            "(each face found by the MTCNN detector and aligned into LFW's frame; reading threads: one per core up "
            "to 8, batch 64, ONNX Runtime's default threads), and with --no-detect (the fixed centre crop, no "
            f"detection), runs alternating. {warmup} warm-up round(s) (the image files are then in the page "
            f"cache), median (min-max) of {repeats}. The faces row is what each run's --json reported."
        ),
        header=["figure", *VARIANTS],
        rows=[["faces", *(faces(name) for name in VARIANTS)]]
        + [[label] + [cell(name, key, digits) for name in VARIANTS] for label, key, digits in FIGURES],
    )
    section.notes.append(
        "Faces are read in a thread pool ahead of the model, so reading and model seconds overlap and add up to "
        "more than the embedding step's wall clock; on a loaded machine both also wait for the CPU."
    )
    full = pairs == "test"
    notes = ([] if full else ["a subset of DevTest (--quick)"]) + ([] if cores == 2 else [f"{cores} cores"])
    for label, seconds in (("faces detected (CLI default)", process), ("--no-detect", fixed)):
        section.targets.append(Target(
            f"`faceverify evaluate` DevTest, whole process, {label}", f"< {TARGET_S:g} s on 2 cores",
            f"{seconds:.2f} s", seconds < TARGET_S if full else None, "; ".join(notes),
        ))
    return section
