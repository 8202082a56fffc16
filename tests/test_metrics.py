"""The metrics against values worked out by hand or computed by scikit-learn, never against themselves."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from verify_cli import metrics


def scored(positives: list[float], negatives: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Scores and labels (True: same person) from the two lists."""
    return np.array(positives + negatives, float), np.array([True] * len(positives) + [False] * len(negatives))


def random_pairs(seed: int, tied: bool) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping score distributions; `tied` rounds them onto 9 values so most scores share a value."""
    rng = np.random.default_rng(seed)
    labels = rng.random(300) < 0.4
    scores = rng.normal(labels * 1.0, 1.0)
    return (np.round(scores * 2) / 2 if tied else scores), labels


def sklearn_eer(scores: np.ndarray, labels: np.ndarray) -> float:
    """EER from scikit-learn's full ROC: where FPR = FNR, i.e. FPR + TPR - 1 = 0, linear between its points."""
    fpr, tpr, _ = sk_roc_curve(labels, scores, drop_intermediate=False)
    return float(np.interp(0.0, fpr + tpr - 1.0, fpr))  # fpr + tpr rises strictly from one point to the next


def brute_force_accuracies(scores: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    return np.array([np.mean((scores >= t) == labels) for t in thresholds])


# ------------------------------------------------------------------------------------ ROC and AUC


@pytest.mark.parametrize("tied", [False, True], ids=["distinct", "tied"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_curve_and_auc_match_scikit_learn(seed: int, tied: bool) -> None:
    scores, labels = random_pairs(seed, tied)
    assert tied == (np.unique(scores).size < 20)  # the tied case really has ties
    fpr, tpr, thresholds = metrics.roc_curve(scores, labels)
    sk_fpr, sk_tpr, sk_thresholds = sk_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tpr, sk_tpr, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(thresholds[1:], sk_thresholds[1:])  # both start above every score
    assert metrics.roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_ties_count_half() -> None:
    # same person 0.8, 0.5; different 0.5, 0.2. Of the 4 (same, different) pairs three rank right and one ties:
    # AUC = (1 + 1 + 1/2 + 1) / 4
    assert metrics.roc_auc(*scored([0.8, 0.5], [0.5, 0.2])) == pytest.approx(0.875)
    assert metrics.roc_auc(*scored([0.5], [0.5])) == pytest.approx(0.5)
    assert metrics.roc_auc(*scored([0.3, 0.3, 0.3], [0.3, 0.3])) == pytest.approx(0.5)


def test_perfect_and_inverted_rankings() -> None:
    perfect = scored([0.9, 0.8, 0.7], [0.3, 0.2])
    inverted = scored([0.3, 0.2], [0.9, 0.8, 0.7])
    assert metrics.roc_auc(*perfect) == 1.0 and metrics.equal_error_rate(*perfect) == 0.0
    assert metrics.roc_auc(*inverted) == 0.0 and metrics.equal_error_rate(*inverted) == 1.0


# ------------------------------------------------------------------------------------ EER


def test_eer_interpolates_along_a_tied_step() -> None:
    # same 0.9, 0.5; different 0.5, 0.1. ROC points (FPR, TPR): (0, 0), (0, 1/2), (1/2, 1), (1, 1).
    # The tie at 0.5 is the straight step (0, 1/2) -> (1/2, 1): at a fraction w of it FPR = w/2 and
    # FNR = 1/2 - w/2, equal at w = 1/2, so EER = 1/4 (no threshold reaches it; it lies between two).
    assert metrics.equal_error_rate(*scored([0.9, 0.5], [0.5, 0.1])) == pytest.approx(0.25)


def test_eer_interpolates_along_a_flat_step() -> None:
    # same 0.9, 0.8, 0.4; different 0.7, 0.3. Between the points (0, 2/3) and (1/2, 2/3) FNR stays 1/3
    # while FPR runs from 0 to 1/2: they meet at FPR = 1/3.
    assert metrics.equal_error_rate(*scored([0.9, 0.8, 0.4], [0.7, 0.3])) == pytest.approx(1 / 3)


@pytest.mark.parametrize("tied", [False, True], ids=["distinct", "tied"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eer_matches_an_interpolation_of_scikit_learns_roc(seed: int, tied: bool) -> None:
    scores, labels = random_pairs(seed, tied)
    assert metrics.equal_error_rate(scores, labels) == pytest.approx(sklearn_eer(scores, labels), abs=1e-12)


# ------------------------------------------------------------------------------------ TAR at FAR


def limit_case(negatives: int) -> tuple[np.ndarray, np.ndarray]:
    """30 same-person pairs (10 at 0.99, 10 at 0.94, 10 at 0.3) and `negatives` different-person pairs: one at
    0.95, one at 0.92, the rest at or below 0.2."""
    rest = list(np.linspace(0.0, 0.2, negatives - 2))
    return scored([0.99] * 10 + [0.94] * 10 + [0.3] * 10, [0.95, 0.92] + rest)


def test_tar_at_far_exactly_at_the_resolution_limit() -> None:
    # 1,000 different pairs: FAR 1e-3 allows exactly one false accept (the 0.95), so the threshold can come down
    # to 0.94 and accept 20 of 30; the next step (0.92) would be a second false accept.
    scores, labels = limit_case(1000)
    assert metrics.tar_at_far(scores, labels, 1e-3) == pytest.approx(20 / 30)
    # FAR 1e-2 allows ten false accepts: down to 0.3, every same-person pair is accepted
    assert metrics.tar_at_far(scores, labels, 1e-2) == pytest.approx(1.0)


def test_tar_at_far_below_the_resolution_limit_is_none() -> None:
    scores, labels = limit_case(999)  # one false accept is already FAR 1.001e-3 > 1e-3
    assert metrics.tar_at_far(scores, labels, 1e-3) is None
    assert metrics.tar_at_far(scores, labels, 1e-2) == pytest.approx(1.0)
    scores, labels = limit_case(99)
    assert metrics.tar_at_far(scores, labels, 1e-2) is None
    scores, labels = limit_case(100)
    assert metrics.tar_at_far(scores, labels, 1e-2) is not None


@pytest.mark.parametrize(("far", "needed"), [(1e-2, 100), (1e-3, 1000), (0.3, 4), (0.25, 4), (1.0, 1)])
def test_resolution_rule(far: float, needed: int) -> None:
    """N different pairs resolve FAR f when N * f >= 1: at least one false accept fits under f."""
    assert metrics.different_pairs_needed(far) == needed
    assert metrics.far_resolved(far, needed) and not metrics.far_resolved(far, needed - 1)


def test_devtest_sized_report_marks_tar_at_1e3_unresolved_in_json() -> None:
    """LFW DevTest has 500 different-person pairs: FAR 1e-2 is measurable, 1e-3 is not (one false accept = 2e-3)."""
    rng = np.random.default_rng(3)
    scores, labels = scored(list(rng.normal(1, 1, 500)), list(rng.normal(0, 1, 500)))
    report = metrics.report(scores, labels, 0.5)
    assert report.tar_far_1e2 is not None and report.tar_far_1e3 is None
    data = json.loads(json.dumps(report.as_dict()))
    assert data["tar_far_1e3"] is None and isinstance(data["tar_far_1e2"], float)
    fpr, tpr, _ = sk_roc_curve(labels, scores, drop_intermediate=False)
    assert report.tar_far_1e2 == pytest.approx(tpr[fpr <= 1e-2].max())


# ------------------------------------------------------------------------------------ thresholds


def test_best_threshold_hand_worked() -> None:
    # sorted: 0.1 different, 0.2 different, 0.8 same, 0.9 same: only the midpoint 0.5 gets all four right
    assert metrics.best_threshold(*scored([0.8, 0.9], [0.1, 0.2])) == pytest.approx(0.5)
    # sorted scores 0.1 .. 0.6 alternate different, same, ...: the candidate below the k-th lowest score gets
    # (different below) + (same at or above) right: k = 0..6 -> 3, 4, 3, 4, 3, 4, 3. Best (4) at the
    # midpoints 0.15, 0.35 and 0.55; the middle of the three is 0.35.
    assert metrics.best_threshold(*scored([0.2, 0.4, 0.6], [0.1, 0.3, 0.5])) == pytest.approx(0.35)
    # two best (0.225 and 0.6, 3 of 4 each): the middle of an even count is the upper one
    assert metrics.best_threshold(*scored([0.35, 0.8], [0.1, 0.4])) == pytest.approx(0.6)


@pytest.mark.parametrize("seed", range(5))
def test_best_threshold_maximises_accuracy(seed: int) -> None:
    scores, labels = random_pairs(seed, tied=seed % 2 == 1)
    t = metrics.best_threshold(scores, labels)
    values = np.unique(scores)
    everywhere = np.r_[values[0] - 1, (values[:-1] + values[1:]) / 2, values[-1] + 1]
    assert np.mean((scores >= t) == labels) == brute_force_accuracies(scores, labels, everywhere).max()


def test_weighted_best_threshold_counts_each_pair_by_its_weight() -> None:
    # same 0.6 and 0.9, different 0.5 and 0.7. Unweighted, 0.55 and 0.8 tie (3 of 4) and the upper one wins; a
    # different pair that weighs 3 (the 0.7) moves the best threshold above it, and weights of 1 change nothing
    scores, labels = scored([0.6, 0.9], [0.5, 0.7])
    assert metrics.best_threshold(scores, labels) == pytest.approx(0.8)
    assert metrics.best_threshold(scores, labels, np.ones(4)) == metrics.best_threshold(scores, labels)
    weights = np.where(scores == 0.7, 3.0, 1.0)
    assert metrics.best_threshold(scores, labels, weights) == pytest.approx(0.8)
    weights = np.where(scores == 0.6, 3.0, 1.0)  # now the same pair at 0.6 outweighs: accept it
    assert metrics.best_threshold(scores, labels, weights) == pytest.approx(0.55)


# ------------------------------------------------------------------------------------ k-fold


def test_kfold_hand_worked() -> None:
    # fold 0: same 0.9, different 0.3; fold 1: same 0.7, different 0.6; fold 2: same 0.4, different 0.2
    scores = np.array([0.9, 0.3, 0.7, 0.6, 0.4, 0.2])
    labels = np.array([True, False, True, False, True, False])
    folds = np.array([0, 0, 1, 1, 2, 2])
    results, mean, stderr = metrics.kfold_accuracy(scores, labels, folds)
    # fold 0 is tested at a threshold chosen on folds 1 and 2 (sorted 0.2d 0.4s 0.6d 0.7s): 0.3 and 0.65 both get
    # 3 of 4, the upper is taken: 0.65. Fold 0 at 0.65: both right.
    # fold 1 at the threshold of folds 0 and 2 (0.2d 0.3d 0.4s 0.9s): 0.35. Fold 1 at 0.35: 0.6d is a false accept.
    # fold 2 at the threshold of folds 0 and 1 (0.3d 0.6d 0.7s 0.9s): 0.65. Fold 2 at 0.65: 0.4s is a false reject.
    assert [r.fold for r in results] == [0, 1, 2]
    assert [r.threshold for r in results] == pytest.approx([0.65, 0.35, 0.65])
    assert [r.accuracy for r in results] == [1.0, 0.5, 0.5]
    assert [r.roc_auc for r in results] == [1.0, 1.0, 1.0]
    # mean 2/3; deviations 1/3, -1/6, -1/6 -> sample variance (1/9 + 1/36 + 1/36) / 2 = 1/12; s.e. sqrt(1/12 / 3)
    assert mean == pytest.approx(2 / 3)
    assert stderr == pytest.approx(math.sqrt(1 / 36))


def test_kfold_two_folds_hand_worked() -> None:
    # fold 0: same 0.75, different 0.25 (best threshold 0.5); fold 1: same 0.875, different 0.5 (best 0.6875).
    # Fold 0 at 0.6875: both right. Fold 1 at 0.5: its different pair scores exactly 0.5, and "same" means
    # score >= threshold, so it is a false accept: 1/2. Mean 3/4; sample s.d. sqrt(2 * 0.25^2 / 1), s.e. that / sqrt 2.
    scores = np.array([0.75, 0.25, 0.875, 0.5])
    labels = np.array([True, False, True, False])
    results, mean, stderr = metrics.kfold_accuracy(scores, labels, np.array([0, 0, 1, 1]))
    assert [r.threshold for r in results] == [0.6875, 0.5]
    assert [r.accuracy for r in results] == [1.0, 0.5]
    assert mean == 0.75 and stderr == pytest.approx(0.25)


def test_kfold_needs_two_folds() -> None:
    with pytest.raises(ValueError, match="two folds"):
        metrics.kfold_accuracy(np.array([0.1, 0.9]), np.array([False, True]), np.array([0, 0]))


def test_accuracy_se_is_the_binomial_standard_error() -> None:
    assert metrics.accuracy_se(0.9, 400) == pytest.approx(0.015)  # sqrt(0.9 * 0.1 / 400), worked by hand
    assert math.isnan(metrics.accuracy_se(0.9, 0))


def test_auc_se_matches_the_spread_of_simulated_aucs() -> None:
    """Hanley and McNeil derive their formula for exponential scores: positives Exp(rate 1/4) against negatives
    Exp(rate 1) have AUC 1 / (1 + 1/4) = 0.8. 4,000 simulated studies of 50 + 50 give the AUC's real spread."""
    rng = np.random.default_rng(0)
    pos, neg = rng.exponential(4.0, (4000, 50)), rng.exponential(1.0, (4000, 50))
    aucs = (pos[:, :, None] > neg[:, None, :]).mean((1, 2))
    assert aucs.mean() == pytest.approx(0.8, abs=0.005)
    assert metrics.auc_se(0.8, 50, 50) == pytest.approx(aucs.std(), rel=0.05)
    assert math.isnan(metrics.auc_se(0.8, 0, 50))
