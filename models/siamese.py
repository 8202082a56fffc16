"""The Siamese network: one shared tower, one head, and `build_model` from a typed configuration."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from models.heads import CosineHead, L1Head
from models.towers import KochTower, ResNetTower


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a Siamese network; `tower` picks the family, the other fields its shape."""

    tower: str = "koch"  # "koch" (Koch et al. and the report's variants) or "resnet"
    channels: tuple[int, ...] = (64, 128, 128, 256)
    kernels: tuple[int, ...] = (10, 7, 4, 4)  # koch only
    pools: tuple[bool, ...] = (True, True, True, False)  # koch only
    blocks: tuple[int, ...] = ()  # resnet only: residual blocks per stage
    pooling: str = "avg"  # resnet only: "avg" (global average) or "flatten" (every position of the last map)
    batchnorm: bool = True
    dropout: float = 0.0
    embedding: int = 4096
    head: str = "l1"  # "l1" (weighted L1, Koch) or "cosine"
    input_size: int = 105
    input_channels: int = 1
    init: str = "report"  # "report": weights N(0, 0.01); "koch": the paper's; "torch": PyTorch's defaults
    flip_average: bool = False  # at inference, embed image and mirror image and add the two

    def as_dict(self) -> dict:
        """Plain dictionary (lists for tuples) for checkpoints and metadata."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Inverse of `as_dict`."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names})


class SiameseNet(nn.Module):
    """Twin towers with shared weights and a head: forward(a, b) returns the logit of "same person"."""

    def __init__(self, tower: nn.Module, head: nn.Module, flip_average: bool = False) -> None:
        super().__init__()
        self.tower = tower
        self.head = head
        self.flip_average = flip_average

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """One embedding per image (in eval mode, optionally averaged with the mirrored image's)."""
        if self.flip_average and not self.training:
            return self.tower(x) + self.tower(torch.flip(x, dims=[3]))
        return self.tower(x)

    def score(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Logits for pairs of embeddings."""
        return self.head(a, b)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(a), self.embed(b))

    def probability(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Probability of "same person" for pairs of images."""
        return torch.sigmoid(self(a, b))


def _initialise(model: nn.Module, scheme: str) -> None:
    """Koch et al.: conv weights N(0, 1e-2), biases N(0.5, 1e-2), dense weights N(0, 0.2); the report: N(0, 1e-2)."""
    if scheme == "torch":
        return
    if scheme not in ("report", "koch"):
        raise ValueError(f"unknown init scheme {scheme!r}")
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            dense_std = 0.2 if scheme == "koch" else 0.01
            nn.init.normal_(module.weight, 0.0, dense_std if isinstance(module, nn.Linear) else 0.01)
            if module.bias is not None:
                if scheme == "koch":
                    nn.init.normal_(module.bias, 0.5, 0.01)
                else:
                    nn.init.zeros_(module.bias)


def build_model(cfg: ModelConfig) -> SiameseNet:
    """Build the Siamese network a configuration describes (weights initialised, train mode)."""
    if cfg.tower == "koch":
        tower: nn.Module = KochTower(
            cfg.input_channels, cfg.input_size, cfg.channels, cfg.kernels, cfg.pools,
            cfg.batchnorm, cfg.dropout, cfg.embedding,
        )
    elif cfg.tower == "resnet":
        tower = ResNetTower(
            cfg.input_channels, cfg.channels, cfg.blocks, cfg.embedding, cfg.dropout, cfg.pooling, cfg.input_size
        )
    else:
        raise ValueError(f"unknown tower {cfg.tower!r}")
    if cfg.head == "l1":
        head: nn.Module = L1Head(cfg.embedding)
    elif cfg.head == "cosine":
        head = CosineHead(cfg.embedding)
    else:
        raise ValueError(f"unknown head {cfg.head!r}")
    model = SiameseNet(tower, head, cfg.flip_average)
    _initialise(model, cfg.init)
    return model
