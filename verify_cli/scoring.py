"""Read faces, embed each distinct image once (decoding in threads, batches through the model), score pairs.

`FaceReader` is the one place the CLI turns an image file into the pixels the model sees: every command
(`compare`, `evaluate`, `identify`) and the `--examples` pictures read images through it. By default it finds
the face (MTCNN), aligns it into the LFW deep-funneled frame and applies the model's preprocessing; for images
that are already LFW-style crops it takes the fixed centre crop instead.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from verify_cli.errors import NoFaceError
from verify_cli.preprocess import Preprocess, load_prepared, normalize, prepare
from verify_cli.runtime import Model

if TYPE_CHECKING:
    from verify_cli.faces.pipeline import FacePipeline

NO_FACE_RECORD: dict[str, Any] = {"faces_found": 0, "face_used": None, "box": None, "confidence": None,
                                  "landmarks": None}  # a fallback reader's record where no face was found

BATCH_SIZE = 64
SCORE_CHUNK = 4096


def embed_all(model: Model, images: np.ndarray, batch: int = BATCH_SIZE) -> np.ndarray:
    """Embeddings of already preprocessed images (N, C, H, W), `batch` at a time."""
    return np.concatenate([model.embed(images[i:i + batch]) for i in range(0, len(images), batch)])


def default_workers() -> int:
    """Decode threads: the cores this process may use, at most 8 (Pillow releases the GIL while decoding)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


@dataclass(frozen=True)
class FaceReader:
    """How an image file becomes model pixels: found and aligned by `pipeline`, or (None) the fixed centre crop.

    `face` picks a face by index into the largest-first list (default: the pipeline's rule). Thread-safe.
    """

    spec: Preprocess
    pipeline: FacePipeline | None = None
    face: int | None = None
    crops: Path | None = field(default=None)  # write each face the model saw here (PNG), for --save-crops
    fallback: bool = False  # no face found: take the fixed centre crop (record faces_found 0) instead of failing

    def pixels(self, path: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any] | None]:
        """The face as the model sees it before normalisation, uint8 (C, size, size), and what detection did."""
        if self.pipeline is None:
            pixels, record = load_prepared(path, self.spec), None
        else:
            try:
                aligned = self.pipeline.align_file(path, self.face)
                pixels, record = prepare(aligned.image, self.spec), aligned.record()
            except NoFaceError:
                if not self.fallback:
                    raise
                pixels, record = load_prepared(path, self.spec), NO_FACE_RECORD
        if self.crops is not None:
            save_crop(self.crops, Path(path), pixels)
        return pixels, record

    def input(self, path: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any] | None]:
        """The face as model input, float32 (C, size, size), and what detection did."""
        pixels, record = self.pixels(path)
        return normalize(pixels, self.spec), record

    @property
    def description(self) -> str:
        """One line for headers: how faces are found."""
        if self.pipeline is None:
            return f"fixed centre crop {self.spec.crop:g} (no detection)"
        which = f"face {self.face}" if self.face is not None else f"{self.pipeline.pick} face"
        return f"detected and aligned (MTCNN, {which})"


def crop_name(path: Path) -> Path:
    """Where a face crop goes inside the crops folder: the image's relative path (or its name) as .png."""
    relative = not path.is_absolute() and ".." not in path.parts
    return (path if relative else Path(path.name)).with_suffix(".png")


def save_crop(folder: Path, path: Path, pixels: np.ndarray) -> None:
    """Write the pixels the model saw for `path` as a PNG under `folder` (atomically)."""
    from PIL import Image

    from verify_cli.outputs import atomic_path

    target = folder / crop_name(path)
    image = Image.fromarray(pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0))
    with atomic_path(target, make_parents=True) as tmp:
        image.save(tmp, format="PNG")


def face_input(path: str | os.PathLike, spec: Preprocess) -> np.ndarray:
    """The fixed centre crop of an image file as model input (images already in LFW's frame)."""
    return FaceReader(spec).input(path)[0]


@dataclass(frozen=True)
class Embedded:
    """Embeddings of distinct images, in the order given, and where the time went."""

    embeddings: np.ndarray  # (N, D) float32
    decode_s: float  # decode + face finding + preprocess time summed over worker threads
    model_s: float  # time spent inside the model
    wall_s: float  # elapsed time, decoding and model overlapped
    faces: list[dict[str, Any] | None] = field(default_factory=list)  # what detection did per image (None: fixed)

    @property
    def images_per_s(self) -> float:
        """Throughput of the whole embedding step."""
        return len(self.embeddings) / self.wall_s if self.wall_s > 0 else float("inf")


def _timed_read(path: Path, reader: FaceReader) -> tuple[np.ndarray, dict[str, Any] | None, float]:
    start = time.perf_counter()
    array, record = reader.input(path)
    return array, record, time.perf_counter() - start


def embed_paths(
    model: Model,
    paths: Sequence[Path],
    batch_size: int = BATCH_SIZE,
    workers: int = 0,
    progress: Callable[[int], None] | None = None,
    reader: FaceReader | None = None,
) -> Embedded:
    """Embed every path once, reading faces ahead of the model in a thread pool; `progress(n)` after each batch.

    `reader` finds the faces (default: the fixed centre crop in the model's preprocessing).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    reader = reader or FaceReader(model.info.preprocess)
    workers = workers or default_workers()
    start = time.perf_counter()
    out = np.zeros((len(paths), model.info.embedding_size), np.float32)
    faces: list[dict[str, Any] | None] = []
    decode_s = model_s = 0.0
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")
    pending: deque[Future] = deque()
    queued = 0

    def fill() -> None:
        nonlocal queued
        while queued < len(paths) and len(pending) < 2 * batch_size:
            pending.append(pool.submit(_timed_read, paths[queued], reader))
            queued += 1

    try:
        for first in range(0, len(paths), batch_size):
            fill()
            count = min(batch_size, len(paths) - first)
            results = [pending.popleft().result() for _ in range(count)]
            fill()  # the next batch decodes while this one runs through the model
            decode_s += sum(seconds for _, _, seconds in results)
            faces.extend(record for _, record, _ in results)
            batch = np.stack([array for array, _, _ in results])
            tick = time.perf_counter()
            out[first:first + count] = model.embed(batch)
            model_s += time.perf_counter() - tick
            if progress is not None:
                progress(count)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return Embedded(out, decode_s, model_s, time.perf_counter() - start, faces)


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
