"""What training minimises, one class per protocol behind one small interface; the loop never asks which.

- `PairsObjective` (restricted protocol, the report's): batches of DevTrain training pairs, BCE on the head.
- `IdentityObjective` (unrestricted): P identities x K images per batch, a CosFace loss over the training
  people plus the head's BCE on every pair in the batch.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models import SiameseNet
from train.config import Protocol, TrainConfig
from train.data import Data, Identities, PairSet, batches, identity_batches, identity_steps
from train.losses import CosFace, in_batch_pair_loss


class Objective(ABC):
    """A training objective: its batches of rows, the images each batch needs, its loss, and its own state."""

    train_loss: ClassVar[str] = ""  # the training loss's name when it is not the validation pair BCE

    @classmethod
    @abstractmethod
    def build(cls, cfg: TrainConfig, data: Data, device: torch.device) -> Objective:
        """The objective for a run, over the training data `make_data` built for its protocol."""

    def parameters(self) -> list[nn.Parameter]:
        """Trainable parameters beyond the network's (optimised with it)."""
        return []

    @abstractmethod
    def steps(self) -> int:
        """How many batches an epoch has."""

    @abstractmethod
    def batches(self, gen: torch.Generator) -> Iterator[np.ndarray]:
        """One epoch's `steps()` batches of training rows, drawn from `gen`."""

    @abstractmethod
    def images(self, rows: np.ndarray) -> np.ndarray:
        """The image bank rows a batch embeds, in the order `loss` expects its embeddings."""

    @abstractmethod
    def loss(self, model: SiameseNet, emb: torch.Tensor, rows: np.ndarray) -> tuple[torch.Tensor, float]:
        """The batch's loss (to minimise) and its accuracy at probability 0.5, from the embeddings of `images(rows)`."""

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs of this objective (checkpoint key "objective")."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict`."""


class PairsObjective(Objective):
    """Restricted protocol: batches of training pairs, binary cross-entropy of the head's logit."""

    def __init__(self, pairs: PairSet, batch_size: int) -> None:
        self.pairs, self.batch_size = pairs, batch_size

    @classmethod
    def build(cls, cfg: TrainConfig, data: Data, device: torch.device) -> Objective:
        if not isinstance(data.train, PairSet):
            raise TypeError("the pairs objective trains on pairs")
        return cls(data.train, cfg.batch_size)

    def steps(self) -> int:
        return math.ceil(len(self.pairs) / self.batch_size)

    def batches(self, gen: torch.Generator) -> Iterator[np.ndarray]:
        return batches(len(self.pairs), self.batch_size, gen)

    def images(self, rows: np.ndarray) -> np.ndarray:
        return np.concatenate([self.pairs.left[rows], self.pairs.right[rows]])

    def loss(self, model: SiameseNet, emb: torch.Tensor, rows: np.ndarray) -> tuple[torch.Tensor, float]:
        n = rows.size
        logits = model.score(emb[:n], emb[n:])
        y = torch.from_numpy(self.pairs.labels[rows]).to(emb.device)
        loss = F.binary_cross_entropy_with_logits(logits, y)
        return loss, float(((logits > 0).float() == y).float().mean())


class IdentityObjective(Objective):
    """Unrestricted protocol: identity batches, CosFace over the training people plus the in-batch pair loss.

    A tower of several patches (model.patches) trains each branch on its own part of the embedding with its own
    CosFace classifier and pair loss, summed: each branch learns as it would alone, and the ensemble gains from
    their differences.
    """

    train_loss = "CosFace + pair BCE"

    def __init__(self, cfg: TrainConfig, identities: Identities, device: torch.device) -> None:
        self.identities, self.cfg = identities, cfg
        classes = int(identities.labels.max()) + 1
        self.branches = max(1, len(cfg.model.patches))
        width = cfg.model.embedding // self.branches
        self.cosface = nn.ModuleList(CosFace(width, classes, cfg.margin, cfg.margin_scale)
                                     for _ in range(self.branches)).to(device)

    @classmethod
    def build(cls, cfg: TrainConfig, data: Data, device: torch.device) -> Objective:
        if not isinstance(data.train, Identities):
            raise TypeError("the identity objective trains on identities")
        return cls(cfg, data.train, device)

    def parameters(self) -> list[nn.Parameter]:
        return list(self.cosface.parameters())

    def steps(self) -> int:
        return identity_steps(self.identities.labels, self.cfg.identities_per_batch)

    def batches(self, gen: torch.Generator) -> Iterator[np.ndarray]:
        cfg = self.cfg
        return identity_batches(
            self.identities.labels, cfg.identities_per_batch, cfg.images_per_identity, gen, cfg.singletons_per_batch,
            cfg.neighbours, self.class_vectors() if cfg.neighbours else None,
        )

    def class_vectors(self) -> np.ndarray:
        """Each training person's CosFace class weights as one unit vector (every branch's, side by side): where
        the network places them now, for `neighbours` batches."""
        with torch.no_grad():
            parts = [F.normalize(c.weight.float(), dim=1) for c in self.cosface]
            return torch.cat(parts, dim=1).cpu().numpy()

    def images(self, rows: np.ndarray) -> np.ndarray:
        return self.identities.rows[rows]

    def loss(self, model: SiameseNet, emb: torch.Tensor, rows: np.ndarray) -> tuple[torch.Tensor, float]:
        labels = torch.from_numpy(self.identities.labels[rows]).to(emb.device)
        total, accuracy = emb.new_zeros(()), 0.0
        for part, cosface in zip(emb.chunk(self.branches, dim=1), self.cosface, strict=True):
            pair_loss, acc = in_batch_pair_loss(model, part, labels)
            total, accuracy = total + pair_loss + cosface(part, labels), accuracy + acc / self.branches
        return total, accuracy

    def state_dict(self) -> dict[str, Any]:
        return self.cosface.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.cosface.load_state_dict(state)


OBJECTIVES: dict[Protocol, type[Objective]] = {"restricted": PairsObjective, "unrestricted": IdentityObjective}


def make_objective(cfg: TrainConfig, data: Data, device: torch.device) -> Objective:
    """The objective of a run's protocol (its extra parameters created here, after the network's)."""
    return OBJECTIVES[cfg.protocol].build(cfg, data, device)
