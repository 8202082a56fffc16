"""Gallery search: identify latency per query and memory per entry, galleries of 1,000 to 100,000 entries.

Synthetic embeddings of the model's size (the search never looks at images), one photo per person (the one-shot
case: as many people as entries to rank), scored by the model's real head through `Model.score`.
"""

from __future__ import annotations

import functools
import tempfile
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench import timing
from bench.embedding import PAUSE_S
from bench.report import Section, num
from verify_cli.gallery import DEFAULT_TOP, Gallery, Photo, ScoreFn, identify
from verify_cli.gallery.index import write_index
from verify_cli.runtime import Model

SIZES = (1_000, 10_000, 100_000)
BATCH = 64  # queries per identify call in the batch column (a folder of queries)
SIDES = ("broadcast", "explicit pairs")


def synthetic_gallery(entries: int, dim: int, seed: int = 0) -> Gallery:
    """`entries` people with one photo each and random embeddings."""
    rng = np.random.default_rng(seed)
    photos = [Photo(f"person_{i:06d}/photo.jpg", f"person_{i:06d}", 50_000, 1_700_000_000_000_000_000 + i)
              for i in range(entries)]
    return Gallery.build(Path("gallery"), photos, rng.standard_normal((entries, dim)).astype(np.float32))


def no_broadcast(score: ScoreFn) -> ScoreFn:
    """The head refusing a (1, D) query beside (k, D) entries, so the search repeats the query (np.broadcast_to)."""
    def aligned(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a.shape != b.shape:
            raise ValueError("pairs must be aligned")
        return score(a, b)
    return aligned


def memory(entries: int, dim: int, model: Model, queries: np.ndarray) -> dict[str, float]:
    """Bytes per entry: the gallery held in memory, its index file, and the search's scratch (NumPy side)."""
    tracemalloc.start()
    try:
        gallery = synthetic_gallery(entries, dim)
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        identify(model.score, model.threshold, ["query"], queries[:1], gallery)
        scratch = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    with tempfile.TemporaryDirectory(prefix="faceverify-bench-") as tmp:
        index = Path(tmp) / "index.npz"
        write_index(index, "sha256:bench", "bench", list(gallery.photos), gallery.embeddings)
        on_disk = index.stat().st_size
    return {"held": held / entries, "index": on_disk / entries, "scratch": scratch / entries}


def run(model_path: Path, threads: int, repeats: int, warmup: int, budget_s: float,
        sizes: Sequence[int] = SIZES) -> Section:
    """Per-query identify latency (one query; a batch of BATCH) by gallery size, and memory per entry."""
    model = Model(model_path, provider="cpu", threads=threads)
    dim = model.info.embedding_size
    queries = np.random.default_rng(1).standard_normal((BATCH, dim)).astype(np.float32)
    scores = {"broadcast": model.score, "explicit pairs": no_broadcast(model.score)}
    section = Section(
        title="Gallery search: identify against 1,000 to 100,000 entries",
        intro=(
            f"`verify_cli.gallery.identify` with the model's real head (`Model.score`, CPU provider, {threads} "
            f"thread(s)) on synthetic {dim}-number embeddings, one photo per person, top {DEFAULT_TOP} candidates; "
            "embedding the query is not included (see the embedding table). One query per call: the search as "
            "shipped (the query broadcast by ONNX Runtime beside each chunk of the gallery) against explicit pairs "
            f"(the query repeated to the chunk's length, what a head that cannot broadcast gets), interleaved, "
            f"{warmup} warm-up round(s), median of {repeats}; then a batch of {BATCH} queries per call. Memory per "
            "entry: the gallery held in memory (embeddings, person rows, photo records; tracemalloc), the index "
            "file on disk, and the search's NumPy scratch for one query (ONNX Runtime's own buffers not counted)."
        ),
        header=["entries", "ms per query (min-max)", "explicit pairs, ms per query", "broadcast speed-up",
                f"ms per query, {BATCH} per call", "held bytes per entry", "index bytes per entry",
                "search scratch bytes per entry"],
    )
    for entries in sizes:
        gallery = synthetic_gallery(entries, dim)

        def one(score: ScoreFn, gallery: Gallery = gallery) -> object:
            return identify(score, model.threshold, ["query"], queries[:1], gallery)

        def batch(gallery: Gallery = gallery) -> object:
            return identify(model.score, model.threshold, [f"q{i}" for i in range(BATCH)], queries, gallery)

        sides = {name: timing.looped(functools.partial(one, scores[name]), budget_s) for name in SIDES}
        samples = timing.interleave(sides, repeats, warmup, PAUSE_S)
        batched = timing.interleave({"batch": timing.looped(batch, budget_s)}, repeats, warmup)["batch"]
        shipped, explicit = samples["broadcast"], samples["explicit pairs"]
        per_entry = memory(entries, dim, model, queries)
        section.rows.append([
            f"{entries:,}", f"{num(shipped.median * 1e3)} ({shipped.spread().removesuffix(' ms')})",
            num(explicit.median * 1e3), f"{timing.ratio(explicit, shipped):.2f}x",
            num(batched.median / BATCH * 1e3), num(per_entry["held"]), num(per_entry["index"]),
            num(per_entry["scratch"]),
        ])
    section.notes.append(
        f"An embedding is {dim} float32 numbers, {dim * 4} bytes; the rest of what the gallery holds per entry is "
        "its photo record (path, person, size, time) as Python objects. Search time and scratch grow linearly with "
        "the entries: every query is scored against every photo."
    )
    return section
