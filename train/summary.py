"""After training: calibrate the head, choose the stored threshold and report the figures, on validation only.

`finalize` writes them into best.pt and summary.json; `train.validate` recomputes them for any checkpoint.
DevTest is scored once, at the chosen threshold, only when the run asks for it (`--report-test`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models import SiameseNet
from train import checkpoint
from train.calibration import calibrate_head, decision_threshold
from train.config import TrainConfig
from train.data import Data, ImageBank, PairSet
from train.lookalike import figures, lookalike_set
from train.loop import BEST, LAST, load_model, pair_probabilities, pick_device, set_probabilities, validation_se
from verify_cli import metrics


def faces_summary(cfg: TrainConfig, bank: ImageBank) -> dict[str, Any]:
    """How the run's images became pixels, and which of them had no face found (read with the fixed centre crop)."""
    return {"mode": cfg.faces, "images": len(bank.paths), "no_face": len(bank.no_face), "no_face_images": bank.no_face}


def validation_summary(probs: np.ndarray, loss: float, pairs: PairSet, threshold: float) -> dict[str, Any]:
    """The validation figures at the chosen threshold, with standard errors."""
    report = metrics.report(probs, pairs.labels, threshold).as_dict()
    return {"loss": loss, **report, **validation_se(report["accuracy"], report["roc_auc"], pairs)}


@dataclass(frozen=True)
class Validated:
    """A calibrated model's scores on the random validation pairs and on the look-alike set beside them, and the
    threshold its rule chose from them."""

    probs: np.ndarray
    loss: float
    alike: PairSet
    alike_probs: np.ndarray
    threshold: float
    rule: str

    def summary(self, pairs: PairSet) -> dict[str, Any]:
        """Validation figures and look-alike figures at the chosen threshold."""
        return {"validation": validation_summary(self.probs, self.loss, pairs, self.threshold),
                "lookalike": asdict(figures(self.alike_probs, self.alike.labels > 0.5, self.threshold))}


def calibrate_and_choose(cfg: TrainConfig, model: SiameseNet, bank: ImageBank, val: PairSet, device: torch.device
                         ) -> tuple[bool, Validated]:
    """Calibrate the head on the random validation pairs (cosine heads), then score them and the look-alike
    strangers among the same people (each image embedded once) and choose the threshold by the rule."""
    calibrated = calibrate_head(model, bank, val, cfg.preprocess, device)
    alike = lookalike_set(bank, val)
    (probs, loss), (alike_probs, _) = set_probabilities(model, bank, [val, alike], cfg.preprocess, device)
    threshold, rule = decision_threshold(probs, val.labels, calibrated, (alike_probs, alike.labels))
    return calibrated, Validated(probs, loss, alike, alike_probs, threshold, rule)


def finalize(run_dir: Path, data: Data, world_size: int = 1) -> dict[str, Any]:
    """Calibrate and choose the threshold on validation; store both in best.pt and summary.json (rank 0 only
    under torchrun, which trained on `world_size` processes).

    DevTest is scored (once, at that threshold) only when `data` holds it (`python -m train --report-test`).
    """
    best_path = run_dir / BEST
    saved = checkpoint.load(best_path)
    cfg, model = load_model(saved)
    device = pick_device()
    model.to(device)
    calibrated, chosen = calibrate_and_choose(cfg, model, data.bank, data.val, device)
    if calibrated:
        saved["model"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    history = checkpoint.load(run_dir / LAST)["history"]
    summary = {
        "preset": cfg.preset,
        "protocol": cfg.protocol,
        "epoch": saved["epoch"],
        "epochs_run": len(history),
        "seconds": sum(r["seconds"] for r in history),
        "train_loss": history[saved["epoch"] - 1]["train_loss"],
        "threshold": chosen.threshold,
        "threshold_rule": chosen.rule,
        **chosen.summary(data.val),
        "parameters": sum(p.numel() for p in model.parameters()),
        "device": str(device),
        "world_size": world_size,
        "faces": faces_summary(cfg, data.bank),
    }
    test_probs = None
    if data.test is not None:
        test_probs, test_loss = pair_probabilities(model, data.bank, data.test, cfg.preprocess, device)
        summary["test"] = {"loss": test_loss, **metrics.report(test_probs, data.test.labels, chosen.threshold).as_dict()}
    saved.update(threshold=chosen.threshold, summary=summary)
    checkpoint.save(saved, best_path)
    checkpoint.save_json(summary, run_dir / "summary.json")
    return {"summary": summary, "val_probs": chosen.probs, "test_probs": test_probs}
