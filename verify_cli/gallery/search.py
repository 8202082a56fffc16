"""Search: every query against every gallery photo through the model's own head, best photo per person, ranked.

The head scores aligned pairs (`Model.score(a, b)`, (M, D) and (M, D)). Each query is fed once per chunk of the
gallery as a (1, D) row beside a (chunk, D) slice: ONNX Runtime broadcasts it (the exported heads are elementwise
ops and reductions over D), so the query is never copied, about twice as fast as repeating it at 10,000 entries
and more (bench/search.py). Broadcasting is checked against explicit pairs on the first rows before it is
trusted; a head that does not broadcast gets the query repeated (`np.broadcast_to`, copied). Against a tiny
gallery many queries share one call, as explicit pairs (`np.repeat` / `np.tile`), which saves per-call overhead."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from verify_cli.gallery.index import Gallery

ScoreFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
SEARCH_CHUNK = 16_384  # pairs per ONNX Runtime call: 8 MiB per side at D = 128
BLOCK_SCORES = 1 << 22  # (queries x entries) probabilities held at once before the per-person reduction: 16 MiB
DEFAULT_TOP = 2  # the best match and the runner-up
# below this many entries, per-call overhead (about 0.1 ms) outweighs scoring each query's row twice as explicit
# pairs, so queries share calls; from about 100 entries one broadcast call per query is faster (measured, 2 cores)
TILE_BELOW = 128


def broadcasts(score: ScoreFn, query: np.ndarray, entries: np.ndarray) -> bool:
    """Whether `score` accepts one (1, D) query beside (k, D) entries and gives what explicit pairs give."""
    k = min(len(entries), 4)
    if k < 2:
        return True
    try:
        got = np.asarray(score(query[None], entries[:k])).reshape(-1)
    except Exception:  # noqa: BLE001 - ONNX Runtime raises its own types for a shape it cannot broadcast
        return False
    want = np.asarray(score(np.repeat(query[None], k, axis=0), entries[:k])).reshape(-1)
    return got.shape == want.shape and bool(np.allclose(got, want, rtol=1e-5, atol=1e-6))


def score_matrix(score: ScoreFn, queries: np.ndarray, entries: np.ndarray, chunk: int = SEARCH_CHUNK) -> np.ndarray:
    """Probability of "same person" for every (query, entry): (Q, D) x (N, D) -> (Q, N) float32."""
    queries = np.ascontiguousarray(queries, np.float32)
    entries = np.ascontiguousarray(entries, np.float32)
    q, n = len(queries), len(entries)
    out = np.empty((q, n), np.float32)
    if q == 0 or n == 0:
        return out
    per_call = chunk // n
    if q > 1 and n < TILE_BELOW and per_call >= 2:  # tiny gallery: several queries per call, explicit pairs
        for first in range(0, q, per_call):
            group = queries[first:first + per_call]
            pairs = score(np.repeat(group, n, axis=0), np.tile(entries, (len(group), 1)))
            out[first:first + len(group)] = np.asarray(pairs).reshape(len(group), n)
        return out
    direct = broadcasts(score, queries[0], entries)
    for i, query in enumerate(queries):
        for first in range(0, n, chunk):
            part = entries[first:first + chunk]
            left = query[None] if direct else np.broadcast_to(query, part.shape)
            out[i, first:first + len(part)] = np.asarray(score(left, part)).reshape(-1)
    return out


def person_scores(score: ScoreFn, queries: np.ndarray, gallery: Gallery, chunk: int = SEARCH_CHUNK) -> np.ndarray:
    """Each person's best photo's probability for each query: (Q, P), columns in `gallery.people` order."""
    n = len(gallery.photos)
    out = np.empty((len(queries), len(gallery.people)), np.float32)
    block = max(1, BLOCK_SCORES // max(n, 1))
    starts = gallery.starts
    for first in range(0, len(queries), block):
        scores = score_matrix(score, queries[first:first + block], gallery.embeddings, chunk)
        out[first:first + len(scores)] = np.maximum.reduceat(scores, starts, axis=1)
    return out


def top_k(row: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest values, highest first; ties in index order (people are sorted by name)."""
    k = min(k, len(row))
    if k <= 0:
        return np.zeros(0, np.int64)
    if k < len(row):
        kth = np.partition(row, len(row) - k)[len(row) - k]
        above = np.flatnonzero(row > kth)
        picked = np.concatenate([above, np.flatnonzero(row == kth)[: k - len(above)]])
    else:
        picked = np.arange(len(row))
    return picked[np.lexsort((picked, -row[picked]))]


@dataclass(frozen=True)
class Identification:
    """One query's answer: the best person and their probability, the decision, and the top candidates."""

    query: str
    match: str | None  # None: unknown (the best probability is below the threshold)
    probability: float  # the best candidate's probability, matched or not
    same: bool
    candidates: list[tuple[str, float]] = field(default_factory=list)  # (name, probability), best first

    def as_json(self) -> dict[str, Any]:
        """The `--json` object: query, match (null when unknown), probability, same, candidates."""
        return {
            "query": self.query,
            "match": self.match,
            "probability": self.probability,
            "same": self.same,
            "candidates": [{"name": name, "probability": p} for name, p in self.candidates],
        }


def identify(
    score: ScoreFn,
    threshold: float,
    queries: Sequence[str],
    query_embeddings: np.ndarray,
    gallery: Gallery,
    top: int = DEFAULT_TOP,
    chunk: int = SEARCH_CHUNK,
) -> list[Identification]:
    """Who each query is: the person whose best photo scores highest, if that reaches `threshold`, else unknown.

    `score` is the model's head (`Model.score`), `threshold` the model's (or the user's); `queries` names each
    query (its path as given) for the answer; `top` candidates are listed (at least the best one).
    """
    if len(queries) != len(query_embeddings):
        raise ValueError(f"{len(queries)} query names for {len(query_embeddings)} query embeddings")
    best = person_scores(score, query_embeddings, gallery, chunk)
    answers = []
    for name, row in zip(queries, best):
        order = top_k(row, max(1, top))
        candidates = [(gallery.people[j], float(row[j])) for j in order]
        probability = candidates[0][1]
        same = probability >= threshold
        answers.append(Identification(name, candidates[0][0] if same else None, probability, same, candidates))
    return answers
