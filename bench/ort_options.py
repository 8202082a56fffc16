"""ONNX Runtime session options side by side: graph optimisation level and thread spinning, as the CLI could set them."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench import timing
from bench.embedding import BATCHES, PAUSE_S
from bench.report import Section, num
from verify_cli import modelmeta

# name -> (graph optimisation level, allow spinning); the first is what verify_cli.runtime.Model uses
VARIANTS = {
    "ORT_ENABLE_ALL, spinning (faceverify's)": ("ORT_ENABLE_ALL", True),
    "ORT_ENABLE_ALL, no spinning": ("ORT_ENABLE_ALL", False),
    "ORT_ENABLE_EXTENDED": ("ORT_ENABLE_EXTENDED", True),
    "ORT_ENABLE_BASIC": ("ORT_ENABLE_BASIC", True),
}


def _embedder(path: Path, level: str, spinning: bool, threads: int, dim: int) -> Callable[[np.ndarray], np.ndarray]:
    """A CPU session with these options and a call embedding one batch with it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.intra_op_num_threads = threads
    options.log_severity_level = 4
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    empty = np.zeros((0, dim), np.float32)

    def embed(x: np.ndarray) -> np.ndarray:
        feeds = {modelmeta.INPUT_IMAGES: x, modelmeta.INPUT_A: empty, modelmeta.INPUT_B: empty}
        return session.run([modelmeta.OUTPUT_EMBEDDINGS], feeds)[0]

    return embed


def run(model_path: Path, images: np.ndarray, dim: int, threads: int, repeats: int, warmup: int,
        budget_s: float) -> Section:
    """Images/s of the same model under each variant, all variants interleaved round by round."""
    embedders = {name: _embedder(model_path, level, spin, threads, dim) for name, (level, spin) in VARIANTS.items()}
    section = Section(
        title="ONNX Runtime session options",
        intro=(
            f"The same model and real images under other CPU session options, {threads} intra-op thread(s); "
            f"all variants interleaved round by round ({PAUSE_S * 1e3:.0f} ms idle before each), {warmup} warm-up "
            f"round(s), median of {repeats}. The first row is what `verify_cli.runtime.Model` runs (ONNX Runtime's "
            "defaults but for the thread count)."
        ),
        header=["batch", "session options", "images/s", "ms per batch (min-max)", "vs faceverify's"],
    )
    first = next(iter(VARIANTS))
    for batch in BATCHES:
        x = np.ascontiguousarray(images[:batch])
        sides = {name: timing.looped(functools.partial(embed, x), budget_s) for name, embed in embedders.items()}
        samples = timing.interleave(sides, repeats, warmup, PAUSE_S)
        for name, s in samples.items():
            section.rows.append([
                str(batch), name, num(batch / s.median), f"{num(s.median * 1e3)} ({s.spread().removesuffix(' ms')})",
                f"{timing.ratio(samples[first], s):.2f}x",
            ])
    section.notes.append(
        "Spinning: ONNX Runtime's worker threads busy-wait for the next operator instead of sleeping; it saves "
        "wake-ups on an idle machine and costs CPU that decode threads or other processes could use."
    )
    return section
