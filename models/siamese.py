"""The Siamese network: one shared tower, one head, and `build_model` from a typed configuration."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from models.heads import CosineHead, L1Head
from models.towers import KochTower, PatchTower, PlainTower, koch_side
from models.typed_config import Rules, check_fields
from verify_cli.errors import FaceverifyError
from verify_cli.preprocess import Preprocess


def _positive(values: tuple[int, ...]) -> bool:
    return len(values) > 0 and all(v >= 1 for v in values)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a Siamese network; `tower` picks the family, the other fields its shape.

    The input (channels and size) is not here: it is the preprocessing's, and `build_model` takes it from there.
    """

    tower: Literal["koch", "plain"] = "koch"  # Koch et al. and the report's variants, or a plain (VGG-style) tower
    channels: tuple[int, ...] = (64, 128, 128, 256)
    kernels: tuple[int, ...] = (10, 7, 4, 4)  # koch only
    pools: tuple[bool, ...] = (True, True, True, False)  # koch only
    blocks: tuple[int, ...] = ()  # plain only: 3x3 convolutions per stage
    batchnorm: bool = True
    dropout: float = 0.0
    embedding: int = 4096
    head: Literal["l1", "cosine"] = "l1"  # weighted L1 (Koch et al.), or logistic regression on the cosine
    init: Literal["report", "koch", "torch"] = "report"  # weights N(0, 0.01); the paper's; PyTorch's defaults
    flip_average: bool = False  # in eval mode (so in the exported graph) embed as the mean of the image's and its mirror's
    # one branch of the tower per entry, each on the central fraction of the input resampled to patch_size pixels
    # (towers.PatchTower), each `embedding / len(patches)` wide; empty: one tower on the whole input
    patches: tuple[float, ...] = ()
    patch_size: int = 0

    RULES: ClassVar[Rules] = {
        "channels": (_positive, "one or more widths >= 1"),
        "kernels": (_positive, "one or more sizes >= 1"),
        "dropout": (lambda v: 0.0 <= v < 1.0, "in [0, 1)"),
        "embedding": (lambda v: v >= 1, ">= 1"),
        "patches": (lambda v: all(0 < f <= 1 for f in v), "fractions in (0, 1]"),
        "patch_size": (lambda v: v >= 0, ">= 0"),
    }

    def __post_init__(self) -> None:
        check_fields(self, "model.", self.RULES)
        if self.tower == "koch" and not len(self.channels) == len(self.kernels) == len(self.pools):
            self._mismatch("channels, kernels and pools need one entry per layer")
        if self.tower == "plain" and (len(self.blocks) != len(self.channels) or not _positive(self.blocks)):
            self._mismatch("blocks needs one count >= 1 per stage of channels")
        if self.patches and (self.head != "cosine" or self.patch_size < 1 or self.embedding % len(self.patches)):
            self._mismatch(f"patches {self.patches} need the cosine head, a patch_size >= 1 and an embedding that "
                           f"divides among them (head {self.head}, patch_size {self.patch_size}, "
                           f"embedding {self.embedding})")

    def _mismatch(self, rule: str) -> None:
        raise FaceverifyError(
            f"invalid configuration: model {self.tower} tower: {rule} (channels {self.channels}, "
            f"kernels {self.kernels}, pools {self.pools}, blocks {self.blocks})"
        )

    def as_dict(self) -> dict:
        """Plain dictionary (lists for tuples) for checkpoints and metadata."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class SiameseNet(nn.Module):
    """Twin towers with shared weights and a head: forward(a, b) returns the logit of "same person"."""

    def __init__(self, tower: nn.Module, head: nn.Module, flip_average: bool = False) -> None:
        super().__init__()
        self.tower = tower
        self.head = head
        self.flip_average = flip_average

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """One embedding per image; in eval mode with `flip_average`, the mean of the image's and its mirror's."""
        if self.flip_average and not self.training:
            return (self.tower(x) + self.tower(torch.flip(x, dims=(3,)))) / 2
        return self.tower(x)

    def score(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Logits for pairs of embeddings."""
        return self.head(a, b)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(a), self.embed(b))

    def probability(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Probability of "same person" for pairs of images."""
        return torch.sigmoid(self(a, b))


def check_input(cfg: ModelConfig, spec: Preprocess) -> None:
    """One line when the network cannot take the input `spec` prepares (a Koch tower's valid convolutions)."""
    size, name = (cfg.patch_size, "model.patch_size") if cfg.patches else (spec.size, "preprocess.size")
    if cfg.tower == "koch" and koch_side(size, cfg.kernels, cfg.pools) < 1:
        raise FaceverifyError(f"invalid configuration: {name} {size} is too small for model.kernels {cfg.kernels}")


def _initialise(model: nn.Module, scheme: str) -> None:
    """Koch et al.: conv weights N(0, 1e-2), biases N(0.5, 1e-2), dense weights N(0, 0.2); the report: N(0, 1e-2)."""
    if scheme == "torch":
        return
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            dense_std = 0.2 if scheme == "koch" else 0.01
            nn.init.normal_(module.weight, 0.0, dense_std if isinstance(module, nn.Linear) else 0.01)
            if module.bias is not None:
                if scheme == "koch":
                    nn.init.normal_(module.bias, 0.5, 0.01)
                else:
                    nn.init.zeros_(module.bias)


def _tower(cfg: ModelConfig, channels: int, size: int, embedding: int) -> nn.Module:
    """The configured tower family for `channels` x `size` x `size` inputs and an `embedding`-wide output."""
    if cfg.tower == "koch":
        return KochTower(channels, size, cfg.channels, cfg.kernels, cfg.pools, cfg.batchnorm, cfg.dropout, embedding)
    return PlainTower(channels, cfg.channels, cfg.blocks, embedding, cfg.dropout, size)


def build_model(cfg: ModelConfig, spec: Preprocess) -> SiameseNet:
    """Build the Siamese network a configuration describes for inputs prepared by `spec` (initialised, train mode)."""
    if cfg.patches:
        branches = [_tower(cfg, spec.channels, cfg.patch_size, cfg.embedding // len(cfg.patches)) for _ in cfg.patches]
        tower = PatchTower(spec.size, cfg.patches, cfg.patch_size, branches)
    else:
        tower = _tower(cfg, spec.channels, spec.size, cfg.embedding)
    head = L1Head(cfg.embedding) if cfg.head == "l1" else CosineHead(cfg.embedding)
    model = SiameseNet(tower, head, cfg.flip_average)
    _initialise(model, cfg.init)
    return model
