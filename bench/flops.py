"""FLOPs of a torch network's forward pass, counted with forward hooks on its convolutions and linear layers.

One multiply-add counts as 2 FLOPs. Only Conv2d and Linear are counted (bias additions, BatchNorm, ReLU,
pooling, residual additions and the like are left out: together they are a few percent of the work).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Flops:
    """Multiply-adds per image, by layer kind, and the FLOPs they make."""

    conv_macs: int
    linear_macs: int

    @property
    def macs(self) -> int:
        """Multiply-adds per image."""
        return self.conv_macs + self.linear_macs

    @property
    def flops(self) -> int:
        """FLOPs per image (2 per multiply-add)."""
        return 2 * self.macs


def _conv_macs(module: nn.Conv2d, output: torch.Tensor) -> int:
    kh, kw = module.kernel_size
    return output.numel() * (module.in_channels // module.groups) * kh * kw


def count(forward: Callable[[torch.Tensor], torch.Tensor], modules: nn.Module, example: torch.Tensor) -> Flops:
    """Multiply-adds per image of `forward(example)` (a batch), over every Conv2d and Linear inside `modules`."""
    totals = {"conv": 0, "linear": 0}

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            totals["conv"] += _conv_macs(module, output)
        else:
            totals["linear"] += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in modules.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.inference_mode():
            forward(example)
    finally:
        for handle in handles:
            handle.remove()
    n = example.shape[0]
    return Flops(totals["conv"] // n, totals["linear"] // n)
