"""Embedding throughput: the exported model in ONNX Runtime (CPU provider) against the same weights in PyTorch."""

from __future__ import annotations

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


def run(model: Model, net: SiameseNet, images: np.ndarray, flops: Flops, threads: int, repeats: int, warmup: int,
        budget_s: float, rtol: float) -> Section:
    """Images/s of both runtimes at batch 1 and 64, interleaved round by round, and the ratio."""
    net.eval()
    max_abs, rel = same_weights(model, net, images[: max(BATCHES)], rtol)
    section = Section(
        title="Embedding throughput: ONNX Runtime vs PyTorch eager",
        intro=(
            f"The tower on real DevTest images, {threads} thread(s) on both sides (`torch.set_num_threads({threads})`, "
            f"ONNX Runtime `intra_op_num_threads={threads}`, CPU provider). Each round runs each side for about "
            f"{budget_s:g} s of back-to-back calls, ONNX Runtime then PyTorch, each after {PAUSE_S * 1e3:.0f} ms idle "
            f"(so neither starts while the other's threads still spin); {warmup} warm-up round(s), then the "
            f"median of {repeats}. Same weights checked first: max |difference| {max_abs:.1e}, max relative L2 "
            f"difference per embedding {rel:.1e} (limit {rtol:.0e})."
        ),
        header=["batch", "runtime", "images/s", "ms per batch (min-max)", "GFLOP/s", "ONNX Runtime / PyTorch"],
    )
    for batch in BATCHES:
        x = images[:batch]
        xt = torch.from_numpy(x)

        def onnx_call(x: np.ndarray = x) -> np.ndarray:
            return model.embed(x)

        def torch_call(xt: torch.Tensor = xt) -> torch.Tensor:
            with torch.inference_mode():
                return net.embed(xt)

        calls = {"onnx": timing.calls_for(onnx_call, budget_s), "torch": timing.calls_for(torch_call, budget_s)}
        samples = timing.interleave(
            {
                "ONNX Runtime": lambda f=onnx_call, n=calls["onnx"]: timing.per_call(f, n),
                "PyTorch eager": lambda f=torch_call, n=calls["torch"]: timing.per_call(f, n),
            },
            repeats,
            warmup,
            PAUSE_S,
        )
        speedup = timing.ratio(samples["PyTorch eager"], samples["ONNX Runtime"])
        for name, s in samples.items():
            per_s = batch / s.median
            section.rows.append([
                str(batch), name, num(per_s), f"{num(s.median * 1e3)} ({s.spread().removesuffix(' ms')})",
                num(per_s * flops.flops / 1e9), f"{speedup:.2f}x" if name == "ONNX Runtime" else "",
            ])
        want = TARGETS[batch]
        section.targets.append(Target(
            f"ONNX Runtime / PyTorch eager, batch {batch}", f">= {want:g}x", f"{speedup:.2f}x", speedup >= want,
        ))
    section.notes.append(
        f"FLOPs per image of this model: {flops.flops / 1e6:.1f} MFLOP ({flops.conv_macs / 1e6:.1f} M multiply-adds "
        f"in convolutions + {flops.linear_macs / 1e6:.2f} M in linear layers, 2 FLOPs per multiply-add; BatchNorm, "
        "ReLU, pooling and additions not counted). GFLOP/s = that x images/s."
    )
    return section
