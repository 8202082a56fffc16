"""The model's self-description: build the metadata_props dictionary (keys from verify_cli.modelmeta) and write it."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import onnx

import verify_cli
from train.config import TrainConfig
from verify_cli import modelmeta

REPO = Path(__file__).resolve().parents[1]
K_FACES = "faceverify.faces"  # how training read faces (JSON); for verify_cli.modelmeta to adopt when the CLI reads it
DOC = (
    "faceverify Siamese face verification model: embeddings = tower(images); "
    "probability = sigmoid(head(embedding_a, embedding_b)). See metadata_props faceverify.*"
)


def as_json(value: Any) -> str:
    """A metadata value as JSON (keys sorted, so equal values give equal text)."""
    return json.dumps(value, sort_keys=True)


def git_commit(repo: Path = REPO) -> str:
    """The commit the exporting code was at (`git rev-parse HEAD`), or "unknown"."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else "unknown"


def versions() -> dict[str, str]:
    """Versions of the libraries that made and checked the model."""
    import onnxruntime
    import torch

    return {
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "faceverify": verify_cli.__version__,
    }


def threshold_rule(summary: dict[str, Any], cfg: TrainConfig) -> str:
    """How the stored threshold was chosen, in words: on validation pairs, never on DevTest."""
    rule = summary.get("threshold_rule", "accuracy-maximising threshold on the validation pairs")
    pairs = summary.get("validation", {}).get("pairs")
    count = f"{pairs} validation pairs, " if pairs is not None else ""
    return f"{rule}; {count}{cfg.protocol} protocol, seed {cfg.seed}; DevTest chose nothing"


def faces_record(summary: dict[str, Any], cfg: TrainConfig) -> dict[str, Any]:
    """How training read its faces (TrainConfig.faces), with the run's count of images that had no face."""
    if cfg.faces == "funneled":
        record: dict[str, Any] = {"mode": "funneled", "read": "LFW deep-funneled image, fixed centre crop"}
    else:
        record = {"mode": "aligned", "read": "MTCNN face nearest the image centre, aligned onto the LFW template "
                                             "(verify_cli.faces); fixed centre crop where no face was found"}
    seen = summary.get("faces", {})
    return {**record, **{k: seen[k] for k in ("images", "no_face") if k in seen}}


def build_metadata(saved: dict[str, Any], cfg: TrainConfig, embedding: int) -> dict[str, str]:
    """Everything a caller needs, as metadata_props strings (JSON for structured values)."""
    summary = saved["summary"]
    spec = cfg.preprocess
    validation = {**summary["validation"], "epoch": saved.get("epoch"), "selected_by": saved.get("selected_by")}
    props = {
        modelmeta.K_FORMAT: modelmeta.FORMAT_VERSION,
        modelmeta.K_PREPROCESS: spec.to_json(),
        modelmeta.K_INPUT: as_json({"channels": spec.channels, "height": spec.size, "width": spec.size}),
        modelmeta.K_EMBEDDING: str(embedding),
        modelmeta.K_THRESHOLD: repr(float(saved["threshold"])),
        modelmeta.K_THRESHOLD_RULE: threshold_rule(summary, cfg),
        modelmeta.K_PRESET: cfg.preset,
        modelmeta.K_ARCHITECTURE: as_json(cfg.model.as_dict()),
        modelmeta.K_PROTOCOL: cfg.protocol,
        modelmeta.K_TRAINING: as_json(cfg.as_dict()),
        K_FACES: as_json(faces_record(summary, cfg)),
        modelmeta.K_VALIDATION: as_json(validation),
        modelmeta.K_VERSIONS: as_json(versions()),
        modelmeta.K_CREATED: datetime.now(timezone.utc).isoformat(timespec="seconds"),
        modelmeta.K_COMMIT: git_commit(),
    }
    if "test" in summary:  # DevTest, scored once by `python -m train --report-test`; absent otherwise
        props[modelmeta.K_DEVTEST] = as_json(summary["test"])
    return props


def add_parity(props: dict[str, str], parity: dict[str, Any]) -> dict[str, str]:
    """The metadata with the measured parity figures added."""
    return {**props, modelmeta.K_PARITY: as_json(parity)}


def set_metadata(proto: onnx.ModelProto, props: dict[str, str]) -> None:
    """Replace a model's metadata_props (and describe the graph contract in its doc string)."""
    del proto.metadata_props[:]
    for key in sorted(props):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, props[key]
    proto.doc_string = DOC

