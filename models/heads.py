"""Heads: two embeddings in, the logit of "same person" out (the probability is its sigmoid)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class L1Head(nn.Module):
    """Koch et al.: a learned weighted L1 distance between the embeddings, `linear2` as the report names it."""

    def __init__(self, embedding: int) -> None:
        super().__init__()
        self.linear2 = nn.Linear(embedding, 1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.linear2(torch.abs(a - b)).squeeze(-1)


class CosineHead(nn.Module):
    """Logistic regression on the cosine similarity: a calibrated probability with two parameters."""

    START = (10.0, -5.0)  # scale and bias before training, and where a calibration starts from

    def __init__(self, embedding: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(self.START[0]))
        self.bias = nn.Parameter(torch.tensor(self.START[1]))

    @torch.no_grad()
    def restart(self) -> None:
        """Back to the starting scale and bias."""
        self.scale.fill_(self.START[0])
        self.bias.fill_(self.START[1])

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        cos = (F.normalize(a, dim=-1, eps=1e-6) * F.normalize(b, dim=-1, eps=1e-6)).sum(-1)
        return self.scale * cos + self.bias
