"""Read faces, embed each distinct image once (decoding in threads, batches through the model), score pairs.

`face_pixels` is the one place the CLI turns an image file into the pixels the model sees: `compare`,
`evaluate` (through `embed_paths`) and the `--examples` pictures all read images through it, so face
detection and alignment plug in here and nowhere else.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from verify_cli.preprocess import Preprocess, load_prepared, normalize
from verify_cli.runtime import Model

BATCH_SIZE = 64
SCORE_CHUNK = 4096


def default_workers() -> int:
    """Decode threads: the cores this process may use, at most 8 (Pillow releases the GIL while decoding)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def face_pixels(path: str | os.PathLike, spec: Preprocess) -> np.ndarray:
    """The face in an image file as the model sees it, before normalisation: uint8 (channels, size, size)."""
    return load_prepared(path, spec)


def face_input(path: str | os.PathLike, spec: Preprocess) -> np.ndarray:
    """The face in an image file as model input: float32 (channels, size, size)."""
    return normalize(face_pixels(path, spec), spec)


@dataclass(frozen=True)
class Embedded:
    """Embeddings of distinct images, in the order given, and where the time went."""

    embeddings: np.ndarray  # (N, D) float32
    decode_s: float  # decode + preprocess time summed over worker threads
    model_s: float  # time spent inside the model
    wall_s: float  # elapsed time, decoding and model overlapped

    @property
    def images_per_s(self) -> float:
        """Throughput of the whole embedding step."""
        return len(self.embeddings) / self.wall_s if self.wall_s > 0 else float("inf")


def _timed_load(path: Path, model: Model) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    array = face_input(path, model.info.preprocess)
    return array, time.perf_counter() - start


def embed_paths(
    model: Model,
    paths: Sequence[Path],
    batch_size: int = BATCH_SIZE,
    workers: int = 0,
    progress: Callable[[int], None] | None = None,
) -> Embedded:
    """Embed every path once, decoding ahead of the model in a thread pool; `progress(n)` after each batch."""
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    workers = workers or default_workers()
    start = time.perf_counter()
    out = np.zeros((len(paths), model.info.embedding_size), np.float32)
    decode_s = model_s = 0.0
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")
    pending: deque[Future] = deque()
    queued = 0

    def fill() -> None:
        nonlocal queued
        while queued < len(paths) and len(pending) < 2 * batch_size:
            pending.append(pool.submit(_timed_load, paths[queued], model))
            queued += 1

    try:
        for first in range(0, len(paths), batch_size):
            fill()
            count = min(batch_size, len(paths) - first)
            results = [pending.popleft().result() for _ in range(count)]
            fill()  # the next batch decodes while this one runs through the model
            decode_s += sum(seconds for _, seconds in results)
            batch = np.stack([array for array, _ in results])
            tick = time.perf_counter()
            out[first:first + count] = model.embed(batch)
            model_s += time.perf_counter() - tick
            if progress is not None:
                progress(count)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return Embedded(out, decode_s, model_s, time.perf_counter() - start)


def score_pairs(model: Model, embeddings: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Probability of "same person" for pairs given as row indices into `embeddings`, in chunks."""
    scores = [
        model.score(embeddings[left[i:i + SCORE_CHUNK]], embeddings[right[i:i + SCORE_CHUNK]])
        for i in range(0, len(left), SCORE_CHUNK)
    ]
    return np.concatenate(scores).astype(np.float64) if scores else np.zeros(0, np.float64)


def index_pairs(pairs: Sequence[tuple[str, str]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Distinct image keys in first-seen order and each pair's left/right row in that list."""
    rows: dict[str, int] = {}
    left, right = [], []
    for a, b in pairs:
        left.append(rows.setdefault(a, len(rows)))
        right.append(rows.setdefault(b, len(rows)))
    return list(rows), np.array(left, np.int64), np.array(right, np.int64)
