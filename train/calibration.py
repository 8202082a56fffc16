"""The head's calibration and the stored threshold's rule, both chosen on validation pairs only.

A cosine head's scale and bias are refitted on the random validation pairs, so its probability is that of "same"
for a random stranger at even odds. The stored threshold then follows from a rule that includes look-alike
strangers (train/lookalike.py): users compare people who resemble each other, not random strangers.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from models import SiameseNet
from models.heads import CosineHead
from train.data import ImageBank, PairSet
from train.loop import pair_embeddings
from verify_cli import metrics
from verify_cli.preprocess import Preprocess

CALIBRATED_RULE = ("probability 0.5 of the head calibrated on the validation pairs (the decision for equally likely "
                   "classes; it held out better than the accuracy-maximising threshold: python -m train.validate "
                   "--threshold-rules)")
ARGMAX_RULE = "accuracy-maximising threshold on the validation pairs"
MIXED_RULE = ("the threshold that maximises validation accuracy when half the strangers look alike: same-person "
              "pairs weigh 1/2, random strangers 1/4, look-alike strangers 1/4 (train/lookalike.py); on the head "
              "calibrated on the random validation pairs")
# the weights of MIXED_RULE: same-person pairs, random strangers, look-alike strangers
MIXED_WEIGHTS = (0.5, 0.25, 0.25)


def calibrate_head(model: SiameseNet, bank: ImageBank, pairs: PairSet, spec: Preprocess, device: torch.device) -> bool:
    """Refit a cosine head's scale and bias on validation pairs (people training never saw); False for other heads."""
    if not isinstance(model.head, CosineHead):
        return False
    [(a, b)] = pair_embeddings(model, bank, [pairs], spec, device)
    fit_head(model.head, a, b, torch.from_numpy(pairs.labels).to(a.device))
    return True


def fit_head(head: CosineHead, a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor) -> None:
    """Logistic regression of "same" on the pairs' cosines: the head's scale and bias, fitted from a fixed start
    (a convex fit, so the start only matters for speed; best.pt's head may be calibrated already)."""
    head.restart()
    optimizer = torch.optim.LBFGS(head.parameters(), lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(head(a, b), labels) + 1e-4 * head.scale**2  # finite if separable
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)


def mixed_threshold(probs: np.ndarray, same: np.ndarray, alike_strangers: np.ndarray) -> float:
    """MIXED_RULE's threshold: the random validation pairs' probabilities and truths, and the probabilities of
    the look-alike strangers beside them."""
    same = np.asarray(same, bool)
    scores = np.r_[probs[same], probs[~same], alike_strangers]
    labels = np.r_[np.ones(int(same.sum()), bool), np.zeros(int((~same).sum()) + alike_strangers.size, bool)]
    w_same, w_random, w_alike = MIXED_WEIGHTS
    weights = np.r_[np.full(int(same.sum()), w_same / same.sum()), np.full(int((~same).sum()), w_random / (~same).sum()),
                    np.full(alike_strangers.size, w_alike / alike_strangers.size)]
    return metrics.best_threshold(scores, labels, weights)


def decision_threshold(probs: np.ndarray, labels: np.ndarray, calibrated: bool,
                       alike: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[float, str]:
    """The stored threshold and its rule. An uncalibrated head (the report's networks): the accuracy-maximising
    threshold on the random validation pairs. A calibrated one: MIXED_RULE over the random pairs and `alike` (the
    look-alike set's probabilities and truths), or probability 0.5 where there are no look-alike strangers."""
    if not calibrated:
        return metrics.best_threshold(probs, labels), ARGMAX_RULE
    strangers = alike[0][alike[1] < 0.5] if alike is not None else np.zeros(0)
    same = labels > 0.5
    if strangers.size == 0 or same.all() or not same.any():
        return 0.5, CALIBRATED_RULE
    return mixed_threshold(probs, same, strangers), MIXED_RULE
