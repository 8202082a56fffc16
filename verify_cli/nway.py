"""N-way one-shot evaluation (Koch et al. 2015, section 4.3) on LFW: which of N candidates is the query's person?

A trial takes a person, one of their images as the query and another as the positive candidate, then N-1
distractors: one image each of N-1 other people. It is correct when the positive scores highest. A tie for the
highest score earns 1/k for k tied candidates (the expected score of breaking the tie at random), so a model
that cannot tell faces apart scores chance, 1/N, rather than below it.

The pool is the DevTest people with at least two images, for queries and distractors alike. Each trial draws
from its own generator, spawned from the seed by trial number, and draws its distractors one after another: the
first N-1 distractors of trial t are the same whatever other N are asked for, so the N-way tasks are nested (the
20-way task adds distractors to the 10-way one) and one seed gives the same trials in every run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from verify_cli.errors import FaceverifyError
from verify_cli.lfw import LFWRoot, image_relpath
from verify_cli.scoring import SCORE_CHUNK

DEFAULT_WAYS = (2, 5, 10, 20)
DEFAULT_TRIALS = 2000
Z95 = 1.959963984540054  # the standard normal's 97.5th percentile: a two-sided 95% interval

EmbedFn = Callable[[list[Path]], np.ndarray]
ScoreFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def wilson_interval(successes: float, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion (successes may be fractional, as tied trials are)."""
    if trials < 1:
        raise ValueError("trials must be positive")
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Trials:
    """The trials as image rows: column 0 of `candidates` is the positive, then the distractors in draw order."""

    images: list[str]  # distinct images, first-seen order (relative paths in LFW's image folder)
    names: list[str]  # the people of the pool, sorted
    query: np.ndarray  # (T,) rows into images
    candidates: np.ndarray  # (T, W) rows into images
    people: np.ndarray  # (T, W) each candidate's person, rows into names

    @property
    def most_ways(self) -> int:
        """The largest N these trials serve."""
        return int(self.candidates.shape[1])


def pool(people: Mapping[str, int]) -> dict[str, int]:
    """The people a trial may use: at least two images each, sorted by name."""
    return {name: people[name] for name in sorted(people) if people[name] >= 2}


def check_ways(ways: Sequence[int], people: int) -> list[int]:
    """Distinct N in increasing order, each between 2 and the number of people, or one line saying why not."""
    if not ways:
        raise FaceverifyError("n-way: give at least one N")
    for n in ways:
        if not 2 <= n <= people:
            raise FaceverifyError(f"n-way: N = {n} is out of range (2 to {people}, the people with two images or more)")
    return sorted(set(ways))


def make_trials(people: Mapping[str, int], most_ways: int, trials: int = DEFAULT_TRIALS, seed: int = 0) -> Trials:
    """Draw `trials` trials with `most_ways` candidates each from `people` (name -> image count)."""
    counts = pool(people)
    names = list(counts)
    check_ways([most_ways], len(names))
    if trials < 1:
        raise FaceverifyError(f"n-way: trials must be positive, got {trials}")
    rows: dict[str, int] = {}
    query = np.zeros(trials, np.int64)
    candidates = np.zeros((trials, most_ways), np.int64)
    owners = np.zeros((trials, most_ways), np.int64)
    for t, child in enumerate(np.random.SeedSequence(seed).spawn(trials)):
        rng = np.random.default_rng(child)
        person = int(rng.integers(len(names)))
        count = counts[names[person]]
        first = int(rng.integers(count))
        second = int(rng.integers(count - 1))
        second += second >= first  # a different image of the same person
        chosen = [(person, second)]
        taken = {person}
        while len(chosen) < most_ways:
            other = int(rng.integers(len(names)))
            if other not in taken:
                taken.add(other)
                chosen.append((other, int(rng.integers(counts[names[other]]))))
        query[t] = rows.setdefault(image_relpath(names[person], first + 1), len(rows))
        for column, (who, image) in enumerate(chosen):
            candidates[t, column] = rows.setdefault(image_relpath(names[who], image + 1), len(rows))
            owners[t, column] = who
    return Trials(list(rows), names, query, candidates, owners)


@dataclass(frozen=True)
class NWayResult:
    """N-way accuracy over the trials, its 95% Wilson interval, and chance."""

    ways: int
    trials: int
    correct: float  # tied trials count 1/k
    ties: int  # trials where the positive tied for the highest score

    @property
    def accuracy(self) -> float:
        """Fraction of trials whose positive scored highest."""
        return self.correct / self.trials

    @property
    def interval(self) -> tuple[float, float]:
        """95% Wilson score interval of the accuracy."""
        return wilson_interval(self.correct, self.trials)

    @property
    def chance(self) -> float:
        """Accuracy of a random guess: 1/N."""
        return 1.0 / self.ways

    def as_json(self) -> dict[str, Any]:
        """`{ways, accuracy, ci_low, ci_high, trials}`, the n_way entries of `--json`."""
        low, high = self.interval
        return {"ways": self.ways, "accuracy": self.accuracy, "ci_low": low, "ci_high": high, "trials": self.trials}


def accuracy(scores: np.ndarray, ways: int) -> NWayResult:
    """Score N-way trials from the (T, W) candidate scores (column 0 the positive), using the first `ways` columns."""
    block = scores[:, :ways]
    positive, others = block[:, 0], block[:, 1:]
    best_other = others.max(axis=1)
    tied = (others == positive[:, None]).sum(axis=1)
    credit = np.where(positive > best_other, 1.0, np.where(positive == best_other, 1.0 / (1 + tied), 0.0))
    return NWayResult(ways, len(block), float(credit.sum()), int((positive == best_other).sum()))


@dataclass(frozen=True)
class NWayReport:
    """One result per N, over the same seeded trials."""

    results: list[NWayResult]
    seed: int
    images: int  # distinct images embedded

    def as_json(self) -> list[dict[str, Any]]:
        """The `n_way` list of `--json`."""
        return [r.as_json() for r in self.results]


def trial_scores(trials: Trials, embeddings: np.ndarray, score: ScoreFn) -> np.ndarray:
    """(T, W) probabilities of each candidate against its trial's query, (len(images), D) embeddings in."""
    t, w = trials.candidates.shape
    left, right = np.repeat(trials.query, w), trials.candidates.reshape(-1)
    parts = [np.asarray(score(embeddings[left[i:i + SCORE_CHUNK]], embeddings[right[i:i + SCORE_CHUNK]])).reshape(-1)
             for i in range(0, len(left), SCORE_CHUNK)]
    return np.concatenate(parts).reshape(t, w)


def evaluate_nway(
    lfw: LFWRoot,
    embed: EmbedFn,
    score: ScoreFn,
    ways: Sequence[int] = DEFAULT_WAYS,
    trials: int = DEFAULT_TRIALS,
    seed: int = 0,
    split: str = "test",
) -> NWayReport:
    """N-way one-shot accuracy on the people of `split` (DevTest), every N over the same seeded trials.

    `embed(paths)` is called once with every distinct image the trials use; `score` is the model's head.
    """
    people = pool(lfw.people(split))
    wanted = check_ways(ways, len(people))
    drawn = make_trials(people, max(wanted), trials, seed)
    embeddings = np.asarray(embed([lfw.image(rel) for rel in drawn.images]), np.float32)
    scores = trial_scores(drawn, embeddings, score)
    return NWayReport([accuracy(scores, n) for n in wanted], seed, len(drawn.images))
