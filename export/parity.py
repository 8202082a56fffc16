"""Parity: PyTorch (eval, float32, CPU) against ONNX Runtime (CPU) on the run's real LFW validation pairs."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np
import torch

from export.config import ExportConfig
from models import SiameseNet
from train.config import Faces, TrainConfig
from train.data import Source, load_bank, validation_pairs
from verify_cli.errors import FaceverifyError
from verify_cli.lfw import Pair
from verify_cli.preprocess import Preprocess, normalize
from verify_cli.runtime import Model


def parity_pairs(cfg: TrainConfig, lfw: Source, config: ExportConfig) -> list[Pair]:
    """The run's validation pairs (`train.data.validation_pairs`), enough of them and of both kinds for parity."""
    pairs = validation_pairs(cfg, lfw, config.wanted_pairs)
    matched = sum(p.same for p in pairs)
    if len(pairs) < config.required_pairs:
        raise FaceverifyError(
            f"only {len(pairs)} validation pairs for preset {cfg.preset}; parity needs at least {config.required_pairs}"
        )
    if matched == 0 or matched == len(pairs):
        raise FaceverifyError(f"the {len(pairs)} parity pairs hold only one class; parity needs both")
    return pairs


def pairs_source(cfg: TrainConfig) -> str:
    """Where the validation pairs come from, in words (for the reports and the metadata)."""
    data = "" if cfg.data == "lfw" else f", people of {cfg.data}"
    return (f"validation pairs of preset {cfg.preset} ({cfg.protocol} protocol, val_fraction {cfg.val_fraction}, "
            f"seed {cfg.seed}, faces {cfg.faces}{data})")


class Judged:
    """A report judged by the limits it carries: `failures` says what misses them; `passed` when nothing does."""

    def failures(self) -> list[str]:
        """Each figure beyond its limit, in words."""
        raise NotImplementedError

    @property
    def passed(self) -> bool:
        """True when every figure is within its limit."""
        return not self.failures()

    def as_dict(self) -> dict:
        """Plain dictionary for the metadata and the JSON reports."""
        return {**asdict(self), "passed": self.passed}


@dataclass(frozen=True)
class ParityReport(Judged):
    """What was measured, on what, and against which tolerances; `passed` only if every figure is within them."""

    pairs: int
    matched: int
    mismatched: int
    images: int
    threshold: float
    prob_max_abs_diff: float  # ONNX Runtime tower+head vs the full PyTorch Siamese forward
    embedding_max_rel_err: float  # max over images of ||e_onnx - e_torch||_2 / ||e_torch||_2
    embedding_max_abs_diff: float
    decisions_differ: int  # pairs decided differently at the stored threshold (ties within prob_atol of it aside)
    torch_split_max_abs_diff: float  # PyTorch tower+head vs PyTorch full forward (information only)
    prob_atol: float
    embedding_rtol: float
    provider: str
    pairs_source: str
    dry_run: bool

    def failures(self) -> list[str]:
        """Each figure beyond its tolerance, in words."""
        out = []
        if not self.prob_max_abs_diff <= self.prob_atol:
            out.append(f"probability max abs diff {self.prob_max_abs_diff:.3g} > {self.prob_atol:g}")
        if not self.embedding_max_rel_err <= self.embedding_rtol:
            out.append(f"embedding max rel err {self.embedding_max_rel_err:.3g} > {self.embedding_rtol:g}")
        if self.decisions_differ:
            out.append(f"{self.decisions_differ} of {self.pairs} decisions differ at threshold {self.threshold:.6g}")
        return out


def _batches(n: int, size: int) -> list[slice]:
    return [slice(s, min(s + size, n)) for s in range(0, n, size)]


def _max_rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    num = np.linalg.norm(got - ref, axis=1)
    den = np.maximum(np.linalg.norm(ref, axis=1), np.finfo(np.float64).tiny)
    return float(np.max(num / den)) if num.size else 0.0


@torch.no_grad()
def measure_parity(model: SiameseNet, onnx_path: str | os.PathLike, lfw: Source, pairs: list[Pair],
                   spec: Preprocess, faces: Faces, threshold: float, config: ExportConfig,
                   pairs_source: str) -> ParityReport:
    """Embed each distinct image once on both sides (read as training read them), score the pairs, and compare
    with the full PyTorch model."""
    model = model.eval().cpu().float()
    bank = load_bank(lfw, [p for pair in pairs for p in (pair.left, pair.right)], spec, faces)
    images = normalize(bank.pixels, spec)
    left = np.array([bank.index[p.left] for p in pairs])
    right = np.array([bank.index[p.right] for p in pairs])
    size = config.batch_size

    onnx_model = Model(onnx_path, provider="cpu")
    onnx_emb = np.concatenate([onnx_model.embed(images[b]) for b in _batches(len(images), size)])
    onnx_prob = np.concatenate([onnx_model.score(onnx_emb[left[b]], onnx_emb[right[b]])
                                for b in _batches(len(pairs), size)])

    torch_emb = torch.cat([model.embed(torch.from_numpy(images[b])) for b in _batches(len(images), size)])
    full_prob = torch.cat([
        model.probability(torch.from_numpy(images[left[b]]), torch.from_numpy(images[right[b]]))
        for b in _batches(len(pairs), size // 2 or 1)
    ]).numpy().astype(np.float64)
    split_prob = torch.sigmoid(model.score(torch_emb[left], torch_emb[right])).numpy().astype(np.float64)

    ref_emb = torch_emb.numpy().astype(np.float64)
    got_emb = onnx_emb.astype(np.float64)
    got_prob = onnx_prob.astype(np.float64)
    matched = int(sum(p.same for p in pairs))
    # a pair PyTorch scores within the probability tolerance of the threshold is a tie: float rounding may put it
    # either side, and the probability check already bounds it; every other decision must be the same
    tie = np.abs(full_prob - threshold) <= config.prob_atol
    return ParityReport(
        pairs=len(pairs),
        matched=matched,
        mismatched=len(pairs) - matched,
        images=len(images),
        threshold=float(threshold),
        prob_max_abs_diff=float(np.max(np.abs(got_prob - full_prob))),
        embedding_max_rel_err=_max_rel_err(got_emb, ref_emb),
        embedding_max_abs_diff=float(np.max(np.abs(got_emb - ref_emb))),
        decisions_differ=int(np.sum(((got_prob >= threshold) != (full_prob >= threshold)) & ~tie)),
        torch_split_max_abs_diff=float(np.max(np.abs(split_prob - full_prob))),
        prob_atol=config.prob_atol,
        embedding_rtol=config.embedding_rtol,
        provider=onnx_model.provider,
        pairs_source=pairs_source,
        dry_run=config.dry_run,
    )
