"""Score an LFW pairs file with a model: every distinct image embedded once, then the project's figures."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from verify_cli import metrics
from verify_cli.errors import FaceverifyError
from verify_cli.lfw import LFWRoot, Pair, person_of
from verify_cli.plots import Example
from verify_cli.runtime import Model
from verify_cli.scoring import Embedded, FaceReader, embed_paths, index_pairs, score_pairs


@dataclass(frozen=True)
class Plan:
    """The pairs of one file, and the distinct images they need (all checked to exist)."""

    pairs_path: Path
    pairs: list[Pair]
    images: list[str]  # relative to the LFW image folder, first-seen order
    left: np.ndarray  # each pair's row in `images`
    right: np.ndarray


@dataclass(frozen=True)
class KFold:
    """View 2: each fold's threshold chosen on the other folds; the mean accuracy and its standard error."""

    folds: list[metrics.FoldResult]
    counts: dict[int, int]
    mean: float
    stderr: float


@dataclass(frozen=True)
class Evaluation:
    """Scores, labels and figures of one pairs file at one threshold."""

    plan: Plan
    scores: np.ndarray
    labels: np.ndarray
    threshold: float
    threshold_source: str  # "model" or "option"
    report: metrics.Report
    kfold: KFold | None
    embedded: Embedded
    provider: str
    model_path: Path
    summary_faces: dict[str, Any]  # how faces were read: mode, pick, images, several

    def outcomes(self) -> list[str]:
        """TP / FP / TN / FN for every pair."""
        pred = self.scores >= self.threshold
        return [("T" if p == y else "F") + ("P" if p else "N") for p, y in zip(pred, self.labels)]


def plan(lfw: LFWRoot, pairs_path: Path, pairs: list[Pair]) -> Plan:
    """Index the distinct images; a missing one is an error naming the pairs file line that asks for it."""
    images, left, right = index_pairs([(p.left, p.right) for p in pairs])
    first_line: dict[str, int] = {}
    for lineno, p in enumerate(pairs, 2):
        first_line.setdefault(p.left, lineno)
        first_line.setdefault(p.right, lineno)
    for key in images:
        if not lfw.image(key).is_file():
            raise FaceverifyError(f"{pairs_path}:{first_line[key]}: image {key} not found in {lfw.images}")
    return Plan(pairs_path, pairs, images, left, right)


def faces_summary(reader: FaceReader, records: list[dict[str, Any] | None]) -> dict[str, Any]:
    """How faces were read for an evaluation: the mode, the rule that picked a face, and the multi-face count."""
    if reader.pipeline is None:
        return {"mode": "fixed-crop", "pick": None, "images": len(records), "several": None, "no_face": None}
    pick = f"face {reader.face}" if reader.face is not None else reader.pipeline.pick
    several = sum(1 for r in records if r is not None and r["faces_found"] > 1)
    no_face = sum(1 for r in records if r is not None and r["faces_found"] == 0)
    return {"mode": "detect-align", "pick": pick, "images": len(records), "several": several, "no_face": no_face}


def evaluate(model: Model, lfw: LFWRoot, planned: Plan, threshold: float, threshold_source: str,
             batch_size: int = 64, workers: int = 0, progress: Callable[[int], None] | None = None,
             reader: FaceReader | None = None) -> Evaluation:
    """Embed, score and measure: accuracy at the fixed threshold, threshold-free figures, View 2 folds."""
    reader = reader or FaceReader(model.info.preprocess)
    embedded = embed_paths(model, [lfw.image(k) for k in planned.images], batch_size, workers, progress, reader)
    scores = score_pairs(model, embedded.embeddings, planned.left, planned.right)
    labels = np.array([p.same for p in planned.pairs], bool)
    folds = np.array([p.fold for p in planned.pairs], np.int64)
    kfold = None
    if np.unique(folds).size >= 2:
        results, mean, stderr = metrics.kfold_accuracy(scores, labels, folds)
        counts = {int(f): int(np.sum(folds == f)) for f in np.unique(folds)}
        kfold = KFold(results, counts, mean, stderr)
    return Evaluation(planned, scores, labels, threshold, threshold_source, metrics.report(scores, labels, threshold),
                      kfold, embedded, model.provider, model.path, faces_summary(reader, embedded.faces))


def summary(ev: Evaluation) -> dict[str, Any]:
    """The evaluation as JSON-ready data (folds numbered from 1, as LFW numbers them)."""
    data: dict[str, Any] = {
        "model": str(ev.model_path),
        "provider": ev.provider,
        "pairs_file": str(ev.plan.pairs_path),
        "threshold": ev.threshold,
        "threshold_source": ev.threshold_source,
        "metrics": ev.report.as_dict(),
        "images": len(ev.plan.images),
        "faces": ev.summary_faces,
        "timing": {"decode_s": ev.embedded.decode_s, "model_s": ev.embedded.model_s, "wall_s": ev.embedded.wall_s,
                   "images_per_s": ev.embedded.images_per_s},
        "folds": None,
        "kfold_accuracy": None,
    }
    if ev.kfold is not None:
        data["folds"] = [{"fold": r.fold + 1, "pairs": ev.kfold.counts[r.fold], "threshold": r.threshold,
                          "accuracy": r.accuracy, "roc_auc": r.roc_auc} for r in ev.kfold.folds]
        data["kfold_accuracy"] = {"mean": ev.kfold.mean, "stderr": ev.kfold.stderr}
    return data


def scores_csv(ev: Evaluation) -> str:
    """Per-pair CSV: images (relative to the LFW image folder), fold (from 1), label, probability, decision."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["left", "right", "fold", "label", "probability", "decision", "outcome"])
    for pair, score, outcome in zip(ev.plan.pairs, ev.scores, ev.outcomes()):
        writer.writerow([pair.left, pair.right, pair.fold + 1, "same" if pair.same else "different", f"{score:.9g}",
                         "same" if score >= ev.threshold else "different", outcome])
    return buffer.getvalue()


def _caption(relpath: str) -> str:
    """`Name Surname 0003` from `Name_Surname/Name_Surname_0003.jpg`."""
    number = Path(relpath).stem.rsplit("_", 1)[-1]
    return f"{person_of(relpath).replace('_', ' ')} {number}"


def examples(ev: Evaluation, lfw: LFWRoot, indices: dict[str, list[int]]) -> dict[str, list[Example]]:
    """The chosen pairs of each outcome as pictures to draw, captioned with person and image number."""
    return {
        kind: [Example(lfw.image(ev.plan.pairs[i].left), lfw.image(ev.plan.pairs[i].right),
                       _caption(ev.plan.pairs[i].left), _caption(ev.plan.pairs[i].right), float(ev.scores[i]))
               for i in chosen]
        for kind, chosen in indices.items()
    }
