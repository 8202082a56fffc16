"""`python -m bench` (`make bench`): speed figures side by side, written to bench/RESULTS.md.

ONNX Runtime against PyTorch eager on the same weights, the int8 model against fp32, `faceverify evaluate` on
DevTest (with and without face detection), photos per second end to end on 1080p photos against face_recognition,
the cold start of `faceverify compare` against importing torch, gallery search at 1,000 to 100,000 entries, and
training throughput of the default preset.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from verify_cli.errors import FaceverifyError, entry_point
from verify_cli.lfw import resolve_data_root

if TYPE_CHECKING:
    from bench.flops import Flops
    from bench.subjects import Subject

SECTIONS = ("embedding", "options", "int8", "evaluate", "faces", "coldstart", "search", "serve", "training")
DEFAULT_OUT = Path(__file__).resolve().parent / "RESULTS.md"

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    data_root: Annotated[Path | None, typer.Option(
        help="LFW data root (torchvision's layout) [default: $FACEVERIFY_DATA, else ./data/lfw].",
        show_default=False)] = None,
    model: Annotated[Path | None, typer.Option(
        help="ONNX model [default: the bundled one; without one, exported from --checkpoint].",
        show_default=False)] = None,
    checkpoint: Annotated[Path | None, typer.Option(
        help="The run's best.pt holding the model's weights, for the PyTorch side [default: "
             "runs/<preset of the model>/best.pt, then runs/default/best.pt].", show_default=False)] = None,
    repeats: Annotated[int | None, typer.Option(
        min=1, help="Timed rounds per figure (the median is reported) [default: 7, --quick 2].",
        show_default=False)] = None,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed rounds before each figure.")] = 1,
    threads: Annotated[int, typer.Option(
        min=0, help="Threads for PyTorch and ONNX Runtime alike (0: the cores this process may use).")] = 0,
    only: Annotated[list[str] | None, typer.Option(
        help=f"Run only these benchmarks (repeatable): {', '.join(SECTIONS)}.", show_default=False)] = None,
    quick: Annotated[bool, typer.Option(
        "--quick", help="Smoke mode: short rounds, a DevTest subset, a few photos, a 1,000-entry gallery, the "
                        "--dry-run training data; seconds.")] = False,
    out: Annotated[Path, typer.Option(help="The Markdown report to write.")] = DEFAULT_OUT,
) -> None:
    """Measure faceverify's speed side by side and write a Markdown report."""
    with entry_point("error: interrupted: no report written"):
        path = run(data_root, model, checkpoint, repeats, warmup, threads, only, quick, out)
    print(path)


def run(data_root: Path | None, model: Path | None, checkpoint: Path | None, repeats: int | None, warmup: int,
        threads: int, only: list[str] | None, quick: bool, out: Path) -> Path:
    """Plain function behind the command: resolve the model, run the chosen benchmarks, write the report."""
    import torch
    from rich.console import Console

    from bench import (
        coldstart,
        embedding,
        evaluate_cli,
        faces,
        flops,
        int8,
        machine,
        ort_options,
        report,
        search,
        serve,
        subjects,
        training,
    )
    from export.config import ExportConfig
    from models import build_model
    from train import checkpoint as ckpt
    from train.config import DEFAULT_PRESET, PRESETS
    from train.loop import load_model
    from verify_cli.lfw import LFWRoot
    from verify_cli.runtime import Model

    wanted = list(dict.fromkeys(only or SECTIONS))
    unknown = [name for name in wanted if name not in SECTIONS]
    if unknown:
        raise FaceverifyError(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    console = Console(stderr=True, soft_wrap=True)
    data_root = resolve_data_root(data_root)
    repeats = repeats or (2 if quick else 7)
    threads = threads or machine.usable_cores()
    load_before = machine.load_average()
    torch.set_num_threads(threads)
    host = machine.describe()
    lfw = LFWRoot.open(data_root)
    sections: list[report.Section] = []
    others: list[tuple[str, float | None]] = []  # cores other processes kept busy during each section
    clock = [(time.perf_counter(), machine.busy_cpu_seconds())]

    def add(name: str, section: report.Section) -> None:
        sections.append(section)
        clock.append((time.perf_counter(), machine.busy_cpu_seconds()))
        (t0, cpu0), (t1, cpu1) = clock[-2:]
        others.append((name, machine.others_cores(cpu0, cpu1, t1 - t0)))

    with tempfile.TemporaryDirectory(prefix="faceverify-bench-") as tmp:
        work = Path(tmp)
        subject = subjects.resolve(model, checkpoint, data_root, work, need_checkpoint="embedding" in wanted)
        described = Model(subject.model, provider="cpu", threads=1)
        if subject.checkpoint is not None:
            cfg, net = load_model(ckpt.load(subject.checkpoint))
            if cfg.preprocess != described.info.preprocess:
                raise FaceverifyError(f"{subject.checkpoint} preprocesses differently from {subject.model}: "
                                      "not its run")
        elif subject.preset in PRESETS:  # no PyTorch side: FLOPs of the preset's architecture (no weights needed)
            net = build_model(PRESETS[subject.preset].model, described.info.preprocess).eval()
        else:
            net = None
        images = subjects.real_images(lfw, described, max(embedding.BATCHES))
        per_image = flops.count(net.embed, net, torch.from_numpy(images[:1])) if net is not None else None
        console.print(f"model {subject.model} (preset {subject.preset}), checkpoint {subject.checkpoint or 'none'}, "
                      f"{threads} thread(s), {repeats} timed round(s) per figure")
        if "embedding" in wanted and net is not None and per_image is not None:
            console.print("embedding throughput: ONNX Runtime vs PyTorch ...")
            add("embedding", embedding.run(subject.model, net, images, per_image, threads, repeats, warmup,
                                           0.05 if quick else 0.3, ExportConfig().embedding_rtol))
        if "options" in wanted:
            console.print("ONNX Runtime session options ...")
            add("options", ort_options.run(subject.model, images, described.info.embedding_size, threads, repeats,
                                           warmup, 0.05 if quick else 0.3))
        pairs, label = "test", "DevTest"
        if quick:
            pairs, label = str(subjects.pairs_subset(lfw, 20, work / "pairs.txt")), "the first 40 DevTest pairs"
        if "int8" in wanted:
            console.print("int8 against fp32 ...")
            add("int8", int8.run(subject.model, data_root, work, images, pairs, label, repeats, warmup,
                                 0.05 if quick else 0.3, quick))
        if "evaluate" in wanted:
            console.print("faceverify evaluate ...")
            add("evaluate", evaluate_cli.run(subject.model, data_root, pairs, label, repeats, warmup,
                                             machine.usable_cores()))
        if "faces" in wanted:
            count = faces.QUICK_PHOTOS if quick else faces.PHOTOS
            console.print(f"photos end to end: faceverify vs face_recognition on {count} 1080p photos ...")
            add("faces", faces.run(subject.model, data_root, work, count, repeats, machine.usable_cores(), quick))
        if "coldstart" in wanted:
            console.print("faceverify compare cold start (with and without detection) vs import torch ...")
            first = lfw.pairs("test")[-1]
            add("coldstart", coldstart.run(None if subject.bundled else subject.model, lfw.image(first.left),
                                           lfw.image(first.right), repeats, warmup))
        if "search" in wanted:
            sizes = search.SIZES[:1] if quick else search.SIZES
            console.print(f"gallery search at {', '.join(f'{n:,}' for n in sizes)} entries ...")
            add("search", search.run(subject.model, threads, repeats, warmup, 0.05 if quick else 0.3, sizes))
        if "serve" in wanted:
            console.print("faceverify serve under load (1, 4 and 16 clients) ...")
            pair = next(p for p in lfw.pairs("test") if p.same)
            add("serve", serve.run(lfw.image(pair.left), lfw.image(pair.right), repeats, warmup, quick))
        if "training" in wanted:
            console.print(f"training throughput of {DEFAULT_PRESET} ...")
            add("training", training.run(PRESETS[DEFAULT_PRESET], data_root, threads, repeats, warmup, quick))
    load_after = machine.load_average()
    total = machine.others_cores(clock[0][1], clock[-1][1], clock[-1][0] - clock[0][0]) if others else None
    preamble = _preamble(subject, per_image, threads, repeats, warmup, quick, load_before, load_after,
                         [("whole run", total), *others], host.cores, [n for n in SECTIONS if n not in wanted])
    text = report.render("faceverify benchmarks", preamble, host.rows(), sections, _command())
    report.write(out, text)
    return out


def _preamble(subject: Subject, per_image: Flops | None, threads: int, repeats: int, warmup: int, quick: bool,
              load_before: float | None, load_after: float | None, others: list[tuple[str, float | None]],
              cores: int, not_run: list[str]) -> list[str]:
    """The lines under the title: when, what model, how many threads and rounds, and how busy the machine was."""
    from bench.subjects import shown

    origin = ("bundled with faceverify" if subject.bundled else
              "exported by the benchmark from the checkpoint" if subject.exported_here else "given with --model")
    lines = [
        f"Measured {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}"
        + (" in **--quick** mode (short rounds, small data: a smoke run, not figures to quote)." if quick else "."),
        "",
        (f"- Model: `{shown(subject.model)}` ({origin}), preset {subject.preset}"
         + (f", {per_image.flops / 1e6:.1f} MFLOP per image" if per_image is not None else "") + "; PyTorch side: "
         + (f"`{shown(subject.checkpoint)}` (same weights, checked)." if subject.checkpoint is not None else
            "none (no checkpoint here, and no section chosen needs one).")),
        (f"- Threads: {threads} for PyTorch and ONNX Runtime alike. Each figure: {warmup} warm-up round(s), then "
         f"the median of {repeats}; comparisons alternate their sides round by round."),
    ]
    if not_run:
        lines.append(f"- Not run this time (`--only`): {', '.join(not_run)}; their figures are not in this report.")
    niceness = os.nice(0) if hasattr(os, "nice") else 0
    if niceness:
        lines.append(f"- Scheduling priority: this run (and its subprocesses) had niceness {niceness}.")
    noisy = ("**other work shared the CPU, so these figures are noisy**; the ratios, measured side by side, "
             "suffer less than the absolute figures.")
    measured = [(name, value) for name, value in others if value is not None]
    if load_before is not None and load_after is not None:
        busy = not measured and max(load_before, load_after) > 0.5 * cores
        lines.append(f"- Load average (1 min) before and after: {load_before:.2f} and {load_after:.2f} on {cores} "
                     "core(s), this run's own work included" + (f": {noisy}" if busy else "."))
    if measured:
        busy = measured[0][1] > 0.25 * cores
        lines.append(
            "- Other processes' CPU use (cores they kept busy on average: the machine's busy CPU time from "
            "/proc/stat less this run's own and its subprocesses'): "
            + ", ".join(f"{name} {value:.2f}" for name, value in measured) + f", of {cores} core(s)"
            + (f": {noisy}" if busy else ".")
        )
    return lines


def _command() -> str:
    """The command that produced the report, as one could type it again."""
    python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else sys.executable
    return f"{python} -m bench {shlex.join(sys.argv[1:])}".rstrip()


if __name__ == "__main__":
    sys.exit(app())
