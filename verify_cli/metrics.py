"""Verification metrics in NumPy: threshold choice, accuracy, ROC AUC, EER, TAR at FAR and k-fold accuracy.

The threshold is chosen here and nowhere else: on validation scores, never on test pairs. Whether a pairs
file has enough different-person pairs to measure TAR at a given FAR is also decided here (`far_resolved`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

FAR_LEVELS = {"tar_far_1e2": 1e-2, "tar_far_1e3": 1e-3}  # the Report fields and the FAR each is measured at


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).astype(bool).ravel()
    if scores.shape != labels.shape or scores.size == 0:
        raise ValueError("scores and labels must be non-empty and of equal length")
    return scores, labels


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct score threshold (decide same when score >= t)."""
    scores, labels = _check(scores, labels)
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tps = np.cumsum(y)[distinct]
    fps = np.cumsum(~y)[distinct]
    pos, neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    tpr = np.r_[0.0, tps / pos]
    fpr = np.r_[0.0, fps / neg]
    thresholds = np.r_[np.inf, s[distinct]]
    return fpr, tpr, thresholds


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (ties count half)."""
    fpr, tpr, _ = roc_curve(scores, labels)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2)  # the trapezoid rule, on NumPy 1.x and 2.x


def accuracy_se(accuracy: float, pairs: int) -> float:
    """Binomial standard error of an accuracy over `pairs` independent pairs (pairs that share people are not
    independent, so this is a lower bound)."""
    return math.sqrt(accuracy * (1 - accuracy) / pairs) if pairs else math.nan


def auc_se(auc: float, positives: int, negatives: int) -> float:
    """Hanley and McNeil's (1982) standard error of a ROC AUC over independent positives and negatives."""
    if not positives or not negatives:
        return math.nan
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)
    return math.sqrt(max(variance, 0.0) / (positives * negatives))


def equal_error_rate(scores: np.ndarray, labels: np.ndarray) -> float:
    """The error rate where false accepts equal false rejects (linear interpolation on the ROC)."""
    fpr, tpr, _ = roc_curve(scores, labels)
    diff = fpr - (1.0 - tpr)  # rises from -1 at (0, 0) to +1 at (1, 1)
    idx = int(np.argmax(diff >= 0))
    if idx == 0:
        return float(fpr[0])
    d0, d1 = diff[idx - 1], diff[idx]
    w = d0 / (d0 - d1) if d0 != d1 else 0.0
    return float(fpr[idx - 1] + w * (fpr[idx] - fpr[idx - 1]))


def different_pairs_needed(far: float) -> int:
    """The fewest different-person pairs that can measure a false accept rate of `far` (one false accept)."""
    return math.ceil(1.0 / far - 1e-9)


def far_resolved(far: float, different_pairs: int) -> bool:
    """Whether `different_pairs` negatives can measure FAR = `far`: the decision, made here and only here.

    With N different-person pairs the smallest non-zero FAR is 1/N, so FAR `far` is measurable only when
    N * far >= 1; below that, "TAR at FAR `far`" is really TAR at FAR 0 and says nothing about `far`.
    """
    return different_pairs >= different_pairs_needed(far)


def tar_at_far(scores: np.ndarray, labels: np.ndarray, far: float) -> float | None:
    """True accept rate at the largest false accept rate not above `far`; None where the pairs cannot resolve it."""
    scores, labels = _check(scores, labels)
    if not far_resolved(far, int(np.sum(~labels))):
        return None
    fpr, tpr, _ = roc_curve(scores, labels)
    ok = fpr <= far + 1e-12
    return float(tpr[ok].max())


def best_threshold(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The threshold with the highest accuracy, each pair counting its weight (1 by default); the midpoint between
    neighbouring scores; ties: the middle one.

    One sweep over the sorted distinct scores: candidate k decides "same" for the scores from the k-th
    distinct value up, so its correct count is the positives at or above it plus the negatives below it.
    """
    scores, labels = _check(scores, labels)
    w = np.ones(scores.size) if weights is None else np.asarray(weights, np.float64)
    s, inverse = np.unique(scores, return_inverse=True)
    candidates = np.r_[s[0] - 1e-6, (s[:-1] + s[1:]) / 2, s[-1] + 1e-6]
    pos_below = np.r_[0, np.cumsum(np.bincount(inverse, weights=w * labels, minlength=s.size))]
    neg_below = np.r_[0, np.cumsum(np.bincount(inverse, weights=w * ~labels, minlength=s.size))]
    correct = (pos_below[-1] - pos_below) + neg_below  # exact integers when unweighted, held in float64
    if weights is not None:
        correct = np.round(correct, 12)  # equal weighted sums reached in another order tie, as exact ones do
    best = np.flatnonzero(correct == correct.max())
    return float(candidates[best[len(best) // 2]])


@dataclass(frozen=True)
class Report:
    """Everything the project reports for one set of scored pairs at one fixed threshold.

    A TAR is None where the pairs have too few different-person pairs to resolve its FAR (`far_resolved`).
    """

    pairs: int
    threshold: float
    accuracy: float
    roc_auc: float
    eer: float
    tar_far_1e2: float | None
    tar_far_1e3: float | None
    tp: int
    fp: int
    tn: int
    fn: int

    def as_dict(self) -> dict:
        """Plain dictionary for JSON (an unresolved TAR is null)."""
        return asdict(self)


def report(scores: np.ndarray, labels: np.ndarray, threshold: float) -> Report:
    """Score pairs at a threshold fixed beforehand, plus the threshold-free figures."""
    scores, labels = _check(scores, labels)
    pred = scores >= threshold
    return Report(
        pairs=int(scores.size),
        threshold=float(threshold),
        accuracy=float(np.mean(pred == labels)),
        roc_auc=roc_auc(scores, labels),
        eer=equal_error_rate(scores, labels),
        **{name: tar_at_far(scores, labels, far) for name, far in FAR_LEVELS.items()},
        tp=int(np.sum(pred & labels)),
        fp=int(np.sum(pred & ~labels)),
        tn=int(np.sum(~pred & ~labels)),
        fn=int(np.sum(~pred & labels)),
    )


@dataclass(frozen=True)
class FoldResult:
    """One fold of View 2: threshold chosen on the other folds, accuracy on this one."""

    fold: int
    threshold: float
    accuracy: float
    roc_auc: float


def kfold_accuracy(scores: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> tuple[list[FoldResult], float, float]:
    """LFW View 2: per fold, threshold chosen on the other folds; mean accuracy and its standard error."""
    scores, labels = _check(scores, labels)
    folds = np.asarray(folds).ravel()
    if folds.shape != scores.shape:
        raise ValueError("folds must give one fold per pair")
    ids = np.unique(folds)
    if ids.size < 2:
        raise ValueError("k-fold evaluation needs at least two folds")
    results = []
    for f in ids:
        test = folds == f
        t = best_threshold(scores[~test], labels[~test])
        acc = float(np.mean((scores[test] >= t) == labels[test]))
        results.append(FoldResult(int(f), t, acc, roc_auc(scores[test], labels[test])))
    accs = np.array([r.accuracy for r in results])
    stderr = float(accs.std(ddof=1) / math.sqrt(accs.size))
    return results, float(accs.mean()), stderr
