"""`faceverify evaluate` as a user runs it: a subprocess per run, its wall clock, and the timing it reports."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import timing
from bench.report import Section, Target, num
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


def run(model: Path, data_root: Path, pairs: str, pairs_label: str, repeats: int, warmup: int,
        cores: int) -> Section:
    """Median wall time of whole `faceverify evaluate --json` processes, split as the CLI reports it."""
    args = ["evaluate", "--model", str(model), "--data-root", str(data_root), "--pairs", pairs, "--provider", "cpu",
            "--json"]
    records: list[dict[str, Any]] = []

    def once() -> float:
        seconds, out = run_cli(args)
        summary = json.loads(out)
        records.append({"process_s": seconds, "images": summary["images"], **summary["timing"]})
        return seconds

    wall = timing.interleave({"evaluate": once}, repeats, warmup)["evaluate"]
    timed = records[warmup:]
    images = timed[0]["images"]

    def med(key: str) -> float:
        return statistics.median(r[key] for r in timed)

    def spread(key: str, digits: int = 2) -> str:
        values = [r[key] for r in timed]
        return f"{min(values):,.{digits}f}-{max(values):,.{digits}f}"

    for r in timed:
        r["rest_s"] = r["process_s"] - r["wall_s"]
    process = wall.median
    section = Section(
        title="`faceverify evaluate` on DevTest",
        intro=(
            f"`faceverify {' '.join(args[:1] + ['--model', 'MODEL'] + args[3:])}` on {pairs_label} "
            f"({images:,} distinct images), a new process each run, CPU provider and the CLI's defaults (decode "
            f"threads: one per core, batch 64, ONNX Runtime's default threads) on {cores} core(s). {warmup} warm-up "
            f"run(s) (the image files are then in the page cache), median of {repeats}."
        ),
        header=["figure", "median", "min-max"],
        rows=[
            ["whole process, wall clock (s)", f"{process:.2f}", spread("process_s")],
            ["embedding step: decode and model overlapped (s)", f"{med('wall_s'):.2f}", spread("wall_s")],
            ["  image decode + preprocessing, summed over decode threads (s)", f"{med('decode_s'):.2f}",
             spread("decode_s")],
            ["  model, time inside ONNX Runtime (s)", f"{med('model_s'):.2f}", spread("model_s")],
            ["rest: start-up, imports, model load, pair list, scoring, metrics (s)", f"{med('rest_s'):.2f}",
             spread("rest_s")],
            ["images/s, whole process", num(images / process), ""],
            ["images/s, embedding step (the CLI's figure)", num(med("images_per_s")), spread("images_per_s", 0)],
            ["decode + preprocessing per image (ms, one thread)", f"{med('decode_s') / images * 1e3:.2f}", ""],
            ["model per image (ms, batch 64)", f"{med('model_s') / images * 1e3:.2f}", ""],
        ],
    )
    section.notes.append(
        "Decode runs in a thread pool ahead of the model, so decode and model seconds overlap and add up to more "
        "than the embedding step's wall clock; on a loaded machine both also wait for the CPU."
    )
    full = pairs == "test"
    notes = ([] if full else ["a subset of DevTest (--quick)"]) + ([] if cores == 2 else [f"{cores} cores"])
    section.targets.append(Target(
        "`faceverify evaluate` DevTest, whole process", f"< {TARGET_S:g} s on 2 cores", f"{process:.2f} s",
        process < TARGET_S if full else None, "; ".join(notes),
    ))
    return section
