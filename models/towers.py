"""Towers: one image in, one embedding out. Both twins of a Siamese network share one tower."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CNNBlock(nn.Module):
    """conv -> ReLU -> [2x2 max-pool] -> [BatchNorm] -> [dropout], named as the report prints them."""

    def __init__(self, cin: int, cout: int, kernel: int, pool: bool, batchnorm: bool, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=kernel)
        self.relu = nn.ReLU()
        if pool:
            self.max_pool = nn.MaxPool2d(kernel_size=2, stride=2)
        if batchnorm:
            self.batch = nn.BatchNorm2d(cout)
        if dropout > 0:
            self.drop = nn.Dropout(p=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.children():
            x = module(x)
        return x


def koch_side(input_size: int, kernels: tuple[int, ...], pools: tuple[bool, ...]) -> int:
    """Side of a Koch tower's last feature map (valid convolutions, 2x2 max-pools); below 1 if the input is too small."""
    side = input_size
    for kernel, pool in zip(kernels, pools, strict=True):
        side = side - kernel + 1
        side = side // 2 if pool else side
    return side


class KochTower(nn.Module):
    """Koch et al. (2015): valid convolutions, max-pools, then a sigmoid dense layer as the embedding."""

    def __init__(
        self,
        in_channels: int,
        input_size: int,
        channels: tuple[int, ...],
        kernels: tuple[int, ...],
        pools: tuple[bool, ...],
        batchnorm: bool,
        dropout: float,
        embedding: int,
    ) -> None:
        super().__init__()
        blocks, cin = [], in_channels
        for cout, kernel, pool in zip(channels, kernels, pools, strict=True):
            blocks.append(CNNBlock(cin, cout, kernel, pool, batchnorm, dropout))
            cin = cout
        side = koch_side(input_size, kernels, pools)
        if side < 1:
            raise ValueError(f"input size {input_size} is too small for kernels {kernels}")
        self.layers = nn.ModuleList(blocks)
        self.linear1 = nn.Sequential(nn.Linear(cin * side * side, embedding), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.layers:
            x = block(x)
        return self.linear1(torch.flatten(x, 1))


class PlainTower(nn.Module):
    """A plain (VGG-style) tower: per stage, 3x3 convolutions with BatchNorm and ReLU at full resolution, then a
    2x2 max-pool between stages; the last map flattened (BatchNorm, dropout) into a linear embedding with BatchNorm.
    """

    def __init__(self, in_channels: int, channels: tuple[int, ...], convs: tuple[int, ...], embedding: int,
                 dropout: float, input_size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin, side = in_channels, input_size
        for stage, (cout, count) in enumerate(zip(channels, convs, strict=True)):
            if stage > 0:
                layers.append(nn.MaxPool2d(2))
                side //= 2
            for _ in range(count):
                layers += [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
                cin = cout
        if side < 1:
            raise ValueError(f"input size {input_size} is too small for {len(channels)} stages")
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.embed = nn.Linear(cin * side * side, embedding, bias=False)
        self.bn = nn.BatchNorm1d(embedding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.embed(self.drop(self.features(x)).flatten(1)))


def resample_matrix(side: int, length: int, size: int) -> torch.Tensor:
    """(size, side) weights taking the central `length` of `side` pixels to `size` pixels: Pillow's bilinear
    (triangle) filter, widened when shrinking so that every source pixel counts; the identity's rows when
    `length == size`."""
    scale = length / size
    support = max(scale, 1.0)
    centres = (side - length) / 2 + (torch.arange(size, dtype=torch.float64) + 0.5) * scale
    source = torch.arange(side, dtype=torch.float64) + 0.5
    weights = (1 - (source[None, :] - centres[:, None]).abs() / support).clamp(min=0)
    return (weights / weights.sum(1, keepdim=True)).float()


class PatchTower(nn.Module):
    """One branch per patch of the input (DeepID's multi-patch idea): branch k sees the central `patches[k]` of
    the image resampled to `size` pixels, and the embedding is the branches' unit-length embeddings side by side,
    so the cosine of two embeddings is the mean of the branches' cosines. The resampling is two constant matrix
    products, so the exported graph repeats it exactly.
    """

    def __init__(self, input_size: int, patches: tuple[float, ...], size: int, branches: list[nn.Module]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)
        for k, fraction in enumerate(patches):
            matrix = resample_matrix(input_size, max(1, round(fraction * input_size)), size)
            self.register_buffer(f"resample{k}", matrix, persistent=False)  # rebuilt from the configuration

    @staticmethod
    def _resample(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """r x r^T for every image, as 2-D products (ONNX Runtime's batched MatMul rejects an empty batch)."""
        n, c, side, _ = x.shape
        size, rt = r.shape[0], r.t().to(x.dtype)
        rows = (x.reshape(n * c * side, side) @ rt).reshape(n, c, side, size).transpose(2, 3)
        return (rows.reshape(n * c * size, side) @ rt).reshape(n, c, size, size).transpose(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = []
        for k, branch in enumerate(self.branches):
            out.append(F.normalize(branch(self._resample(x, getattr(self, f"resample{k}"))), dim=1, eps=1e-6))
        return torch.cat(out, dim=1)
