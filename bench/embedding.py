"""Embedding throughput: the exported model in ONNX Runtime (CPU provider) against the same weights in PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bench import timing
from bench.flops import Flops
from bench.report import Section, Target, num
from models import SiameseNet
from verify_cli.errors import FaceverifyError
from verify_cli.runtime import Model

BATCHES = (1, 64)
TARGETS = {1: 1.5, 64: 1.0}  # ONNX Runtime images/s over PyTorch eager images/s, at least
PAUSE_S = 0.05  # idle time before each side's round, so neither starts while the other's threads still spin


def same_weights(model: Model, net: SiameseNet, images: np.ndarray, rtol: float) -> tuple[float, float]:
    """Max |difference| and max relative L2 difference per image of the two runtimes' embeddings; refuse above rtol.

    Comparing speeds is only honest when both sides compute the same function on the same input.
    """
    with torch.inference_mode():
        expected = net.embed(torch.from_numpy(images)).numpy()
    got = model.embed(images)
    max_abs = float(np.abs(got - expected).max())
    rel = float((np.linalg.norm(got - expected, axis=1) / np.maximum(np.linalg.norm(expected, axis=1), 1e-12)).max())
    if not rel <= rtol:
        raise FaceverifyError(
            f"{model.path} and the checkpoint disagree on real images (relative difference {rel:.2e} > {rtol:.0e}): "
            "they are not the same weights; pass the --checkpoint the model was exported from"
        )
    return max_abs, rel


def _compare(model: Model, net: SiameseNet, x: np.ndarray, repeats: int, warmup: int,
             budget_s: float) -> dict[str, timing.Samples]:
    """Seconds per call of both runtimes on one batch, rounds interleaved."""
    xt = torch.from_numpy(x)

    def onnx_call() -> np.ndarray:
        return model.embed(x)

    def torch_call() -> torch.Tensor:
        with torch.inference_mode():
            return net.embed(xt)

    sides = {"ONNX Runtime": timing.looped(onnx_call, budget_s), "PyTorch eager": timing.looped(torch_call, budget_s)}
    return timing.interleave(sides, repeats, warmup, PAUSE_S)


def run(model_path: Path, net: SiameseNet, images: np.ndarray, flops: Flops, threads: int, repeats: int,
        warmup: int, budget_s: float, rtol: float) -> Section:
    """Images/s of both runtimes at batch 1 and 64 with `threads` threads (and with one), and their ratio."""
    net.eval()
    counts = [threads] + ([1] if threads > 1 else [])
    sessions = {n: Model(model_path, provider="cpu", threads=n) for n in counts}
    max_abs, rel = same_weights(sessions[threads], net, images[: max(BATCHES)], rtol)
    section = Section(
        title="Embedding throughput: ONNX Runtime vs PyTorch eager",
        intro=(
            f"The tower on real DevTest images (faces found and aligned, as the CLI reads them), the same thread count on both sides (`torch.set_num_threads(N)`, "
            f"ONNX Runtime `intra_op_num_threads=N`, CPU provider): N = {threads}, the figures the targets judge"
            + (", then N = 1 to show how the work scales with threads" if threads > 1 else "")
            + f". Each round runs each side for about {budget_s:g} s of back-to-back calls, ONNX Runtime then "
            f"PyTorch, each after {PAUSE_S * 1e3:.0f} ms idle (so neither starts while the other's threads still "
            f"spin); {warmup} warm-up round(s), then the median of {repeats}. Same weights checked first: max "
            f"|difference| {max_abs:.1e}, max relative L2 difference per embedding {rel:.1e} (limit {rtol:.0e})."
        ),
        header=["batch", "threads", "runtime", "images/s", "ms per batch (min-max)", "GFLOP/s",
                "ONNX Runtime / PyTorch"],
    )
    for count in counts:
        torch.set_num_threads(count)
        try:
            for batch in BATCHES:
                samples = _compare(sessions[count], net, images[:batch], repeats, warmup, budget_s)
                speedup = timing.ratio(samples["PyTorch eager"], samples["ONNX Runtime"])
                for name, s in samples.items():
                    per_s = batch / s.median
                    section.rows.append([
                        str(batch), str(count), name, num(per_s),
                        f"{num(s.median * 1e3)} ({s.spread().removesuffix(' ms')})", num(per_s * flops.flops / 1e9),
                        f"{speedup:.2f}x" if name == "ONNX Runtime" else "",
                    ])
                if count == threads:
                    want = TARGETS[batch]
                    section.targets.append(Target(
                        f"ONNX Runtime / PyTorch eager, batch {batch}, {threads} thread(s)", f">= {want:g}x",
                        f"{speedup:.2f}x", speedup >= want,
                    ))
        finally:
            torch.set_num_threads(threads)
    section.notes.append(
        f"FLOPs per image of this model: {flops.flops / 1e6:.1f} MFLOP ({flops.conv_macs / 1e6:.1f} M multiply-adds "
        f"in convolutions + {flops.linear_macs / 1e6:.2f} M in linear layers, 2 FLOPs per multiply-add; BatchNorm, "
        "ReLU, pooling and additions not counted). GFLOP/s = that x images/s."
    )
    return section
