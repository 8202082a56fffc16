"""Training throughput of a preset: real LFW batches through the training loop's own step, seconds per epoch."""

from __future__ import annotations

import itertools
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from bench import timing
from bench.report import Section, num
from bench.subjects import REPO
from train.config import TrainConfig
from train.data import Data, make_data
from train.loop import build_state, epoch_seed, pair_probabilities, resolve_precision, train_step
from train.objectives import make_objective
from verify_cli.errors import FaceverifyError
from verify_cli.lfw import LFWRoot

PRECISIONS = ("fp32", "bf16")


def steps_per_epoch(cfg: TrainConfig, data: Data) -> int:
    """How many optimisation steps one epoch takes."""
    return make_objective(cfg, data, torch.device("cpu")).steps()


def recorded_epochs(preset: str) -> tuple[float, int] | None:
    """Median seconds per epoch (training and validation) that runs/<preset>/history.json records, and how many."""
    path = REPO / "runs" / preset / "history.json"
    try:
        seconds = [float(row["seconds"]) for row in json.loads(path.read_text())]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (statistics.median(seconds), len(seconds)) if seconds else None


def _measure(cfg: TrainConfig, data: Data, device: torch.device, repeats: int, warmup: int
             ) -> tuple[timing.Samples, list[int], timing.Samples]:
    """Step seconds and batch sizes (train mode, from a fresh seeded state), then validation-pass seconds."""
    st = build_state(cfg, data, device)
    seed = epoch_seed(cfg, 1)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    st.model.train()
    batches = itertools.chain.from_iterable(st.objective.batches(gen) for _ in itertools.count())
    sizes: list[int] = []

    def step() -> float:
        rows = next(batches)
        start = time.perf_counter()
        train_step(cfg, st, data, rows, device, gen)
        if device.type == "cuda":
            torch.cuda.synchronize()
        sizes.append(len(rows))
        return time.perf_counter() - start

    steps = timing.interleave({"step": step}, repeats, warmup)["step"]

    def validate() -> float:
        return timing.wall(lambda: pair_probabilities(st.model, data.bank, data.val, cfg.preprocess, device))

    val = timing.interleave({"validation": validate}, max(1, min(repeats, 3)), 0)["validation"]
    return steps, sizes[warmup:], val


def run(cfg: TrainConfig, data_root: Path, threads: int, repeats: int, warmup: int, smoke: bool) -> Section:
    """Time training steps of `cfg` on the CPU (and on CUDA when torch sees a GPU); estimate seconds per epoch."""
    lfw = LFWRoot.open(data_root)
    start = time.perf_counter()
    data = make_data(cfg, lfw, smoke)
    load_s = time.perf_counter() - start
    steps = steps_per_epoch(cfg, data)
    if steps < 1:
        raise FaceverifyError(f"preset {cfg.preset}: no training batches in this data")
    pairs = cfg.protocol == "restricted"
    unit = "pairs/s" if pairs else "images/s"
    # the CPU with one thread as well as with `threads`: on a shared machine more threads can be slower
    # each precision, whatever `cfg` asks for: bfloat16 is fast only where the device computes it natively
    settings = [(torch.device("cpu"), n, p) for n in sorted({1, threads}) for p in PRECISIONS]
    if torch.cuda.is_available():
        settings += [(torch.device("cuda"), threads, p) for p in PRECISIONS]
    section = Section(
        title=f"Training throughput: preset {cfg.preset}",
        intro=(
            f"`train.loop.train_step` (batch assembly, {'augmentation, ' if cfg.augment else ''}forward, loss, "
            f"backward, {cfg.optimizer} step) on real LFW {'pairs' if pairs else 'identity batches'} of preset "
            f"{cfg.preset} ({cfg.protocol} protocol), from a fresh seeded state; {warmup} warm-up step(s), then the "
            f"median of {repeats} steps. One epoch = {steps} steps"
            f"{' (of the --quick subset)' if smoke else ''} plus one validation pass over {len(data.val):,} pairs "
            f"(median of {max(1, min(repeats, 3))}); the estimate is steps x median step + validation."
        ),
        header=["device", "precision", "rows per step", "step ms (min-max)", unit, "training s/epoch",
                "validation s", "epoch s (estimate)"],
    )
    for device, count, precision in settings:
        auto, _ = resolve_precision(replace(cfg, precision="auto"), device)
        torch.set_num_threads(count)
        try:
            step_s, sizes, val_s = _measure(replace(cfg, precision=precision), data, device, repeats, warmup)
        finally:
            torch.set_num_threads(threads)
        rate = statistics.median(n / s for n, s in zip(sizes, step_s.seconds))
        train_epoch = steps * step_s.median
        name = (f"CPU, {count} thread{'s' if count > 1 else ''}" if device.type == "cpu"
                else f"CUDA ({torch.cuda.get_device_name(device)})")
        section.rows.append([
            name, precision + (" (auto's pick)" if precision == auto.precision else ""),
            f"{statistics.mean(sizes):.0f} {'pairs' if pairs else 'images'}",
            f"{step_s.median * 1e3:.0f} ({step_s.spread().removesuffix(' ms')})", num(rate),
            f"{train_epoch:.1f}", f"{val_s.median:.2f}", f"{train_epoch + val_s.median:.1f}",
        ])
    if not torch.cuda.is_available():
        section.notes.append("No GPU visible to torch on this machine: the CUDA row is missing, not zero.")
    section.notes.append(f"On this CPU, {resolve_precision(replace(cfg, precision='auto'), torch.device('cpu'))[1]}.")
    section.notes.append(f"Decoding the run's {len(data.bank.paths):,} images once (before epoch 1): {load_s:.1f} s.")
    recorded = recorded_epochs(cfg.preset)
    if recorded is not None and not smoke:
        section.notes.append(
            f"For comparison, runs/{cfg.preset}/history.json records a median {recorded[0]:.1f} s per epoch over "
            f"{recorded[1]} epoch(s) (under whatever load that run shared the machine with)."
        )
    return section
