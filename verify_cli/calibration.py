"""A threshold for the user's own photos: fitted to their labelled pairs by a stated rule, with bootstrap intervals.

The two rules: `max-accuracy` (the accuracy-maximising threshold, `metrics.best_threshold`) and `target-far`
(the lowest threshold whose false-accept rate on the different-person pairs is at most F, which keeps the most
true accepts). The figures are measured on the very pairs the threshold was fitted to, so they flatter it; the
bootstrap (pairs resampled within each label, the threshold fitted again each time) shows how far it could move.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from verify_cli import metrics
from verify_cli.errors import FaceverifyError

MIN_PAIRS = 10  # of each kind, at least: fewer cannot place a threshold
BOOTSTRAP = 1000  # resamples
SEED = 0  # the bootstrap's draws, fixed so that a calibration repeats


@dataclass(frozen=True)
class Rule:
    """How the threshold is chosen: `max-accuracy`, or `target-far` with its false-accept rate."""

    name: str
    far: float | None = None

    def describe(self) -> str:
        if self.name == "target-far":
            return f"the lowest threshold with a false-accept rate of at most {self.far:g} on the different-person pairs"
        return "the threshold with the highest accuracy on the pairs"

    def fit(self, scores: np.ndarray, same: np.ndarray) -> float:
        """The threshold this rule picks for these scored pairs."""
        if self.name == "target-far":
            return far_threshold(scores[~same], scores, self.far)
        return metrics.best_threshold(scores, same)


def far_threshold(different: np.ndarray, scores: np.ndarray, far: float) -> float:
    """The lowest threshold accepting at most floor(far x N) of the N different-person scores: halfway between the
    highest different-person score it must reject and the next score above it (of any pair), or just above it."""
    allowed = int(np.floor(far * different.size + 1e-9))
    if allowed >= different.size:
        return float(min(scores.min(), 0.0))
    rejected = np.sort(different)[::-1][allowed]
    above = scores[scores > rejected]
    return float((rejected + above.min()) / 2 if above.size else np.nextafter(rejected, np.inf))


@dataclass(frozen=True)
class Figures:
    """Accuracy, FAR and TAR at one threshold, each with a 95% bootstrap interval (low, high)."""

    threshold: float
    accuracy: float
    far: float
    tar: float
    accuracy_ci: tuple[float, float]
    far_ci: tuple[float, float]
    tar_ci: tuple[float, float]


@dataclass(frozen=True)
class Calibration:
    """A fitted threshold, the figures at it and at the model's own, and what they rest on."""

    rule: Rule
    pairs: int
    same_pairs: int
    different_pairs: int
    roc_auc: float
    threshold_ci: tuple[float, float]
    fitted: Figures
    stored: Figures

    def as_dict(self) -> dict:
        out = asdict(self)
        out["rule"] = {"name": self.rule.name, "far": self.rule.far, "description": self.rule.describe()}
        return out


def rates(scores: np.ndarray, same: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """Accuracy, false-accept rate and true-accept rate of deciding "same" at scores >= threshold."""
    accept = scores >= threshold
    return float(np.mean(accept == same)), float(np.mean(accept[~same])), float(np.mean(accept[same]))


def check_pairs(same: np.ndarray, rule: Rule) -> None:
    """Refuse, in one line, pairs too few to place the threshold or to measure the asked-for FAR."""
    n_same, n_diff = int(same.sum()), int((~same).sum())
    if n_same < MIN_PAIRS or n_diff < MIN_PAIRS:
        raise FaceverifyError(f"too few pairs to calibrate: {n_same} same-person and {n_diff} different-person; "
                              f"at least {MIN_PAIRS} of each are needed")
    if rule.far is not None and not metrics.far_resolved(rule.far, n_diff):
        raise FaceverifyError(f"--target-far {rule.far:g} needs at least {metrics.different_pairs_needed(rule.far)} "
                              f"different-person pairs to be measured; the list has {n_diff}")


def calibrate(scores: np.ndarray, same: np.ndarray, rule: Rule, stored_threshold: float,
              resamples: int = BOOTSTRAP) -> Calibration:
    """Fit the threshold by `rule`, and measure it and the model's stored one, with bootstrap intervals."""
    scores, same = np.asarray(scores, np.float64), np.asarray(same, bool)
    check_pairs(same, rule)
    threshold = rule.fit(scores, same)
    rng = np.random.default_rng(SEED)
    positives, negatives = np.flatnonzero(same), np.flatnonzero(~same)
    refits, fitted_draws, stored_draws = [], [], []
    for _ in range(resamples):
        rows = np.concatenate([rng.choice(positives, positives.size), rng.choice(negatives, negatives.size)])
        s, y = scores[rows], same[rows]
        refits.append(rule.fit(s, y))
        fitted_draws.append(rates(s, y, threshold))
        stored_draws.append(rates(s, y, stored_threshold))

    def figures(t: float, draws: list[tuple[float, float, float]]) -> Figures:
        low, high = np.percentile(np.array(draws), [2.5, 97.5], axis=0)
        acc, far, tar = rates(scores, same, t)
        return Figures(t, acc, far, tar, (low[0], high[0]), (low[1], high[1]), (low[2], high[2]))

    low, high = np.percentile(refits, [2.5, 97.5])
    return Calibration(rule, int(scores.size), int(same.sum()), int((~same).sum()), metrics.roc_auc(scores, same),
                       (float(low), float(high)), figures(threshold, fitted_draws),
                       figures(stored_threshold, stored_draws))
