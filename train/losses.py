"""Training losses: pair BCE on the head's logits, and for the unrestricted protocol a CosFace identity loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models import SiameseNet


class CosFace(nn.Module):
    """Large-margin cosine loss (Wang et al. 2018): a classifier over training identities, training only."""

    def __init__(self, embedding: int, classes: int, margin: float, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, embedding) * 0.01)
        self.margin, self.scale = margin, scale

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = F.normalize(emb, dim=1) @ F.normalize(self.weight, dim=1).t()
        cos = cos - self.margin * F.one_hot(labels, cos.shape[1]).to(cos.dtype)
        return F.cross_entropy(self.scale * cos, labels)


def in_batch_pair_loss(model: SiameseNet, emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, float]:
    """BCE of the head over every pair in the batch, classes weighted equally; returns loss and accuracy."""
    i, j = torch.triu_indices(emb.shape[0], emb.shape[0], offset=1, device=emb.device)
    logits = model.score(emb[i], emb[j])
    same = (labels[i] == labels[j]).to(logits.dtype)
    n_pos = same.sum().clamp(min=1)
    n_neg = (1 - same).sum().clamp(min=1)
    weight = same / (2 * n_pos) + (1 - same) / (2 * n_neg)
    loss = F.binary_cross_entropy_with_logits(logits, same, weight=weight, reduction="sum")
    acc = float(((logits > 0).to(logits.dtype) == same).to(logits.dtype).mul(weight).sum())
    return loss, acc
