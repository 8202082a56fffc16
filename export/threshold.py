"""Choose an exported model's stored threshold again by the training's rule, from its own validation pairs.

`python -m export.threshold --model M.onnx --data-root D --out N.onnx` rebuilds the validation split the model
carries, scores its random pairs and the look-alike strangers beside them with ONNX Runtime, and writes a copy
whose threshold follows `train.calibration.MIXED_RULE`, with the threshold's rule, validation figures and
operating point measured again (the original is never modified). `--report-test` also scores pairsDevTest once at
the new threshold, as `python -m train --report-test` does; it chooses nothing. Make the int8 sibling of the copy
afterwards (`python -m export.quantize --model N.onnx`): its agreement with fp32 is measured at the threshold.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from export.metadata import as_json, threshold_rule
from export.pipeline import check_roundtrip
from train.calibration import MIXED_RULE, mixed_threshold
from train.config import TrainConfig, training_config
from train.data import Source, open_source, protocol_splits
from train.lookalike import embedded_pairs, operating_record, scored
from verify_cli import metrics, modelmeta
from verify_cli.cli.options import DataRootOption
from verify_cli.errors import FaceverifyError, entry_point
from verify_cli.lfw import resolve_data_root
from verify_cli.outputs import check_output, write_atomic
from verify_cli.runtime import Model
from verify_cli.scoring import score_pairs


def bce(probs: np.ndarray, same: np.ndarray) -> float:
    """Mean binary cross-entropy of probabilities against truths (the validation loss)."""
    p = np.clip(probs, 1e-12, 1 - 1e-12)
    return float(-np.mean(np.where(same, np.log(p), np.log1p(-p))))


def devtest_report(model: Model, cfg: TrainConfig, source: Source, threshold: float) -> dict:
    """pairsDevTest scored once at `threshold`, read as the model's training read its images."""
    _, pairs, embeddings = embedded_pairs(model, cfg, source, protocol_splits(cfg, source).test)
    probs, same = score_pairs(model, embeddings, pairs.left, pairs.right), pairs.labels > 0.5
    return {"loss": bce(probs, same), **metrics.report(probs, same, threshold).as_dict()}


def rethreshold(model_path: Path, data_root: Path, out: Path, report_test: bool = False) -> dict[str, str]:
    """Write `out`: the model with its threshold chosen by MIXED_RULE; returns the metadata that changed."""
    check_output(out)
    if out.resolve() == model_path.resolve():
        raise FaceverifyError(f"{out}: is the model itself; the original is never modified, choose another --out")
    model = Model(model_path, provider="cpu")
    props = model.info.props
    cfg = training_config(model)
    if cfg.model.head != "cosine":  # training calibrates cosine heads on validation, and only those
        raise FaceverifyError(f"{model_path}: a {cfg.model.head} head is not calibrated on validation pairs; the "
                              "rule applies to calibrated cosine heads")
    _, found = scored(model, data_root)
    (probs, same), (alike_probs, alike_same) = found["random"], found["lookalike"]
    threshold = mixed_threshold(probs, same, alike_probs[~alike_same])
    validation = {**json.loads(props.get(modelmeta.K_VALIDATION, "{}")), "loss": bce(probs, same),
                  **metrics.report(probs, same, threshold).as_dict(),
                  "accuracy_se": metrics.accuracy_se(float(np.mean((probs >= threshold) == same)), same.size)}
    changes = {
        modelmeta.K_THRESHOLD: repr(threshold),
        modelmeta.K_THRESHOLD_RULE: threshold_rule({"threshold_rule": MIXED_RULE, "validation": {"pairs": same.size}},
                                                   cfg),
        modelmeta.K_VALIDATION: as_json(validation),
        modelmeta.K_OPERATING: as_json(operating_record(threshold, found)),
    }
    if report_test:
        changes[modelmeta.K_DEVTEST] = as_json(devtest_report(model, cfg, open_source(cfg, data_root), threshold))
    new_props = {**props, **changes}
    write_atomic(out, modelmeta.with_metadata(model_path.read_bytes(), new_props, str(model_path)))
    check_roundtrip(out, new_props)
    return changes


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    model: Annotated[Path, typer.Option(help="An exported faceverify ONNX model with a calibrated head.")],
    out: Annotated[Path, typer.Option(help="Where to write the copy with the new threshold (.onnx).")],
    data_root: DataRootOption = None,
    report_test: Annotated[bool, typer.Option("--report-test", help="Also score pairsDevTest once at the new "
                                              "threshold (it chooses nothing).")] = False,
) -> None:
    """Choose the model's threshold again by the training's rule (look-alike strangers included)."""
    with entry_point():
        changes = rethreshold(model, resolve_data_root(data_root), out, report_test)
        print(json.dumps({k: json.loads(v) if v[:1] in "{[" else v for k, v in changes.items()}, indent=1))


if __name__ == "__main__":
    sys.exit(app())
