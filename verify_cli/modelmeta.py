"""The model's self-description: the ONNX `metadata_props` keys export writes and the CLI reads back.

Graph contract (one ONNX file, two independent subgraphs):
  inputs  images [N, C, H, W] float32, embedding_a [M, D] float32, embedding_b [M, D] float32
  outputs embeddings [N, D] = tower(images), probability [M] = head(embedding_a, embedding_b)
so each distinct image is embedded once and any pairing is scored afterwards.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from verify_cli.errors import FaceverifyError
from verify_cli.preprocess import Preprocess

FORMAT_VERSION = "1"
INPUT_IMAGES, INPUT_A, INPUT_B = "images", "embedding_a", "embedding_b"
OUTPUT_EMBEDDINGS, OUTPUT_PROBABILITY = "embeddings", "probability"

K_FORMAT = "faceverify.format"
K_PREPROCESS = "faceverify.preprocess"  # Preprocess.to_json()
K_INPUT = "faceverify.input"  # {"channels", "height", "width"}
K_EMBEDDING = "faceverify.embedding_size"
K_THRESHOLD = "faceverify.threshold"
K_THRESHOLD_RULE = "faceverify.threshold_rule"
K_PRESET = "faceverify.preset"
K_ARCHITECTURE = "faceverify.architecture"  # ModelConfig as JSON
K_PROTOCOL = "faceverify.protocol"
K_TRAINING = "faceverify.training"  # TrainConfig as JSON
K_VALIDATION = "faceverify.validation"  # figures on validation pairs (JSON)
K_DEVTEST = "faceverify.devtest"  # figures on pairsDevTest, reported once (JSON)
K_PARITY = "faceverify.parity"  # PyTorch vs ONNX Runtime figures (JSON)
K_VERSIONS = "faceverify.versions"  # {"torch", "onnx", "onnxruntime", "faceverify"}
K_CREATED = "faceverify.created"  # ISO 8601 UTC
K_COMMIT = "faceverify.git_commit"
K_PRECISION = "faceverify.precision"  # "int8" in a quantized model; absent (fp32) in the model as trained
K_QUANTIZATION = "faceverify.quantization"  # how it was quantized, and its agreement with fp32 on validation (JSON)
K_OPERATING = "faceverify.operating_point"  # FAR / TAR at the stored threshold, random and look-alike validation (JSON)
PRECISIONS = ("fp32", "int8")

REQUIRED = (K_FORMAT, K_PREPROCESS, K_EMBEDDING, K_THRESHOLD)


@dataclass(frozen=True)
class ModelInfo:
    """What a caller needs from a faceverify model, parsed and checked."""

    preprocess: Preprocess
    embedding_size: int
    threshold: float
    props: dict[str, str]

    @property
    def precision(self) -> str:
        """fp32 (the model as trained) or int8 (its statically quantized sibling)."""
        return self.props.get(K_PRECISION, "fp32")

    @property
    def quantization(self) -> dict:
        """How an int8 model was made and how it agrees with fp32 (K_QUANTIZATION); empty when absent or unreadable."""
        try:
            made = json.loads(self.props.get(K_QUANTIZATION, "{}"))
        except ValueError:
            return {}
        return made if isinstance(made, dict) else {}

    @property
    def fp32_identity(self) -> str | None:
        """For an int8 model: the identity (file SHA-256) of the fp32 model it was made from, as recorded."""
        source = self.quantization.get("fp32_model")
        return source.get("identity") if isinstance(source, dict) else None


def parse(props: dict[str, str], source: str) -> ModelInfo:
    """Check and parse metadata_props, or raise one line naming the model and what is missing."""
    missing = [k for k in REQUIRED if k not in props]
    if missing:
        raise FaceverifyError(f"{source}: not a faceverify model (metadata {', '.join(missing)} missing)")
    if props[K_FORMAT] != FORMAT_VERSION:
        raise FaceverifyError(f"{source}: model format {props[K_FORMAT]!r} not supported (expected {FORMAT_VERSION})")
    try:
        preprocess = Preprocess.from_json(props[K_PREPROCESS])
        embedding = int(props[K_EMBEDDING])
        threshold = float(props[K_THRESHOLD])
    except (FaceverifyError, ValueError) as exc:
        raise FaceverifyError(f"{source}: invalid faceverify metadata ({exc})") from None
    if embedding < 1 or not math.isfinite(threshold) or not 0.0 <= threshold <= 1.0:
        raise FaceverifyError(f"{source}: invalid faceverify metadata (embedding {embedding}, threshold {threshold})")
    if props.get(K_PRECISION, "fp32") not in PRECISIONS:
        raise FaceverifyError(f"{source}: invalid faceverify metadata (precision {props[K_PRECISION]!r})")
    return ModelInfo(preprocess, embedding, threshold, dict(props))


K_CALIBRATION = "faceverify.calibration"  # how `faceverify calibrate` refitted the threshold (JSON)
_METADATA_FIELD = 14  # ModelProto.metadata_props (onnx.proto), a repeated StringStringEntryProto {key = 1, value = 2}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field."""
    out = bytearray()
    for value in (number << 3 | 2, len(payload)):
        while value >= 0x80:
            out.append(value & 0x7F | 0x80)
            value >>= 7
        out.append(value)
    return bytes(out) + payload


def with_metadata(model: bytes, props: dict[str, str], source: str) -> bytes:
    """The serialized ONNX model with its metadata_props replaced by `props`, every other field byte for byte.

    Protobuf wire format read at the top level only, so the CLI edits a model without the onnx package.
    """
    kept = bytearray()
    pos = 0
    try:
        while pos < len(model):
            start = pos
            tag, pos = _varint(model, pos)
            wire = tag & 7
            if wire == 0:
                _, pos = _varint(model, pos)
            elif wire == 2:
                length, pos = _varint(model, pos)
                pos += length
            elif wire in (1, 5):
                pos += 8 if wire == 1 else 4
            else:
                raise ValueError(f"wire type {wire}")
            if pos > len(model):
                raise ValueError("truncated field")
            if tag >> 3 != _METADATA_FIELD:
                kept += model[start:pos]
    except ValueError as exc:
        raise FaceverifyError(f"{source}: not a readable ONNX model ({exc})") from None
    for key, value in props.items():
        kept += _field(_METADATA_FIELD, _field(1, key.encode()) + _field(2, value.encode()))
    return bytes(kept)
