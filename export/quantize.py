"""INT8: a faceverify model's tower statically quantized by ONNX Runtime (QDQ), calibrated and judged on validation.

`python -m export.quantize --model M.onnx --data-root DIR` writes M.int8.onnx beside the fp32 model; the export
stage does the same after writing its fp32 model. Calibration images and the agreement check come from the run's
validation pairs, rebuilt from the training configuration the fp32 model carries (`faceverify.training`); DevTest is
never read. The int8 model is refused, as a parity failure is, beyond either limit below.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import numpy as np
import onnx
import onnxruntime
import typer
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from rich.console import Console

from export.config import ExportConfig
from export.metadata import git_commit, set_metadata
from export.onnx_graph import check_graph
from export.parity import Judged, pairs_source, parity_pairs
from export.pipeline import check_roundtrip
from export.summary import int8_table
from train.config import training_config
from train.data import Source, load_bank, open_source, pair_set
from verify_cli import modelmeta
from verify_cli.cpu import MAX_EXACT_WEIGHT, this_cpu
from verify_cli.errors import FaceverifyError, entry_point, first_line
from verify_cli.gallery import model_identity
from verify_cli.lfw import resolve_data_root
from verify_cli.metrics import roc_auc
from verify_cli.outputs import atomic_path
from verify_cli.preprocess import normalize
from verify_cli.runtime import Model, precision_paths
from verify_cli.scoring import embed_all, score_pairs

# The limits (issue 15): beyond either, the int8 model is refused and nothing is written.
MIN_AGREEMENT = 0.99  # fraction of validation pairs int8 decides as fp32 does at the stored threshold, at least
MAX_AUC_DROP = 0.005  # fp32's validation ROC AUC minus int8's, at most

# The choices (their measurements: docs/research.md, "The int8 model"), u8 activations x s8 weights:
# - weights in 7 bits ([-64, 64], ONNX Runtime's reduce_range). Without VNNI the u8 x s8 kernels (AVX2, AVX-512)
#   add two products into a saturating 16-bit sum (VPMADDUBSW), which 8-bit weights overflow and 7-bit weights
#   cannot (2 * 255 * 64 = 32,640 < 32,767): every kernel, VNNI's included, computes the exact integers.
# - u8 x u8, also exact, is slower; every tower op ONNX Runtime quantizes is quantized, with MinMax calibration
#   (Entropy and Percentile histograms fail on the constant tensors of the ops beside Conv/MatMul).
ACTIVATIONS = QuantType.QUInt8
WEIGHTS = QuantType.QInt8  # per output channel, symmetric
REDUCE_RANGE = True  # weights in [-64, 64]
CALIBRATION = CalibrationMethod.MinMax
BATCH = 64  # images per calibration and embedding call


@dataclass(frozen=True)
class Validation:
    """The run's validation pairs as model input: each distinct image once, the pairs as rows into them, labels."""

    images: np.ndarray
    left: np.ndarray
    right: np.ndarray
    labels: np.ndarray
    source: str


@dataclass(frozen=True)
class Agreement(Judged):
    """int8 against fp32 on the validation pairs, and the limits it is judged by (not enforced in a dry run)."""

    pairs: int
    images: int
    threshold: float
    decisions_agree: float  # fraction of pairs decided alike at the stored threshold
    decisions_differ: int
    fp32_auc: float
    int8_auc: float
    prob_max_abs_diff: float
    prob_mean_abs_diff: float
    min_agreement: float
    max_auc_drop: float
    enforced: bool

    def failures(self) -> list[str]:
        """Each limit the int8 model misses, in words."""
        out = []
        if not self.decisions_agree >= self.min_agreement:
            out.append(f"its decisions agree with fp32's on {self.decisions_agree:.2%} of {self.pairs} validation "
                       f"pairs (at least {self.min_agreement:.0%} needed)")
        if not self.fp32_auc - self.int8_auc <= self.max_auc_drop:
            out.append(f"its validation AUC {self.int8_auc:.4f} is {self.fp32_auc - self.int8_auc:.4f} below fp32's "
                       f"{self.fp32_auc:.4f} (at most {self.max_auc_drop:g})")
        return out


@dataclass(frozen=True)
class QuantizeResult:
    """What the quantization wrote and measured."""

    model_path: Path
    agreement: Agreement
    metadata: dict[str, str]


class Calibration(CalibrationDataReader):
    """Validation images in batches; the head's inputs get fp32 embeddings (it is calibrated, never quantized)."""

    def __init__(self, images: np.ndarray, embeddings: np.ndarray) -> None:
        self.images, self.embeddings = images, embeddings
        self.starts = iter(range(0, len(images), BATCH))

    def get_next(self) -> dict[str, np.ndarray] | None:
        start = next(self.starts, None)
        if start is None:
            return None
        rows = slice(start, start + BATCH)
        emb = self.embeddings[rows]
        return {modelmeta.INPUT_IMAGES: self.images[rows], modelmeta.INPUT_A: emb,
                modelmeta.INPUT_B: np.ascontiguousarray(emb[::-1])}


def validation_set(model: Model, lfw: Source, config: ExportConfig) -> Validation:
    """The model's validation pairs (as the export's parity check rebuilds them), images read as training read them."""
    cfg = training_config(model)
    pairs = parity_pairs(cfg, lfw, config)
    bank = load_bank(lfw, [p for pair in pairs for p in (pair.left, pair.right)], cfg.preprocess, cfg.faces)
    rows = pair_set(bank, pairs)
    return Validation(normalize(bank.pixels, cfg.preprocess), rows.left, rows.right, rows.labels, pairs_source(cfg))


def head_nodes(proto: onnx.ModelProto) -> list[str]:
    """The head's nodes: every node that the embedding inputs reach (the graph's nodes are in topological order)."""
    reached = {modelmeta.INPUT_A, modelmeta.INPUT_B}
    names = []
    for node in proto.graph.node:
        if reached.intersection(node.input):
            reached.update(node.output)
            names.append(node.name)
    return names


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Mute the quantization tool's logging warnings (its advice to pre-process: measured, it changed nothing here)."""
    before = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(before)


def shared_weights_folded(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The graph with `Identity` nodes on initializers removed, their consumers reading the initializer itself.

    A network that runs its tower twice (the mirror-averaged embedding) is exported with the second pass's
    weights as Identity copies of the first's; quantized as they are, those would be quantized afresh on every
    run, as activations. Folded, both passes share one set of per-channel int8 weights.
    """
    initializers = {init.name for init in proto.graph.initializer}
    alias = {node.output[0]: node.input[0] for node in proto.graph.node
             if node.op_type == "Identity" and node.input[0] in initializers}
    kept = [node for node in proto.graph.node if not (node.op_type == "Identity" and node.output[0] in alias)]
    for node in kept:
        for i, name in enumerate(node.input):
            node.input[i] = alias.get(name, name)
    del proto.graph.node[:]
    proto.graph.node.extend(kept)
    return proto


def quantize_graph(fp32_path: Path, out: Path, data: Validation, embeddings: np.ndarray) -> None:
    """Static QDQ quantization of the tower: per-channel weights, activation ranges calibrated on `data`'s images."""
    proto = shared_weights_folded(onnx.load(str(fp32_path)))
    excluded = head_nodes(proto)
    try:
        with tempfile.TemporaryDirectory(prefix="faceverify-quantize-") as tmp, _quiet_quantizer():
            folded = Path(tmp) / "folded.onnx"
            onnx.save(proto, str(folded))
            quantize_static(str(folded), str(out), Calibration(data.images, embeddings), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=ACTIVATIONS, weight_type=WEIGHTS,
                            calibrate_method=CALIBRATION, nodes_to_exclude=excluded, reduce_range=REDUCE_RANGE)
    except Exception as exc:  # noqa: BLE001 - the quantization tool raises whatever its graph passes raise
        raise FaceverifyError(f"ONNX Runtime quantization of {fp32_path} failed: {first_line(exc)}") from None


def measure_agreement(fp32: Model, fp32_embeddings: np.ndarray, int8: Model, data: Validation,
                      enforced: bool) -> Agreement:
    """Both models' probabilities on the validation pairs: decisions at fp32's threshold, AUCs, differences."""
    p32 = score_pairs(fp32, fp32_embeddings, data.left, data.right)
    p8 = score_pairs(int8, embed_all(int8, data.images), data.left, data.right)
    t = fp32.threshold
    diff = np.abs(p8 - p32)
    differ = int(np.sum((p8 >= t) != (p32 >= t)))
    return Agreement(
        pairs=len(p32), images=len(data.images), threshold=t, decisions_agree=1 - differ / len(p32),
        decisions_differ=differ, fp32_auc=roc_auc(p32, data.labels), int8_auc=roc_auc(p8, data.labels),
        prob_max_abs_diff=float(diff.max()), prob_mean_abs_diff=float(diff.mean()), min_agreement=MIN_AGREEMENT,
        max_auc_drop=MAX_AUC_DROP, enforced=enforced,
    )


def weight_max_abs(path: Path) -> int:
    """The largest |value| of the int8 weights in a quantized graph (what decides whether its products can saturate)."""
    proto = onnx.load(str(path))
    inits = {init.name: init for init in proto.graph.initializer}
    largest = 0
    for node in proto.graph.node:
        init = inits.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if init is not None and init.data_type == onnx.TensorProto.INT8:
            largest = max(largest, int(np.abs(onnx.numpy_helper.to_array(init).astype(np.int16)).max()))
    return largest


def int8_metadata(fp32: Model, data: Validation, agreement: Agreement | None, largest: int) -> dict[str, str]:
    """The fp32 model's faceverify metadata (threshold included), its precision, and how it was quantized."""
    made = {
        "method": "ONNX Runtime static quantization (quantize_static), QDQ format",
        "weights": f"{WEIGHTS.name}, per channel, symmetric, reduce_range (within +-{largest})",
        "weight_max_abs": largest,
        "activations": f"{ACTIVATIONS.name}, per tensor",
        "calibration": CALIBRATION.name,
        "quantized": "every tower op ONNX Runtime quantizes; the head (two embeddings -> probability) stays float32",
        "calibration_images": len(data.images),
        "calibration_source": f"the distinct images of the {data.source}; DevTest never read",
        "threshold": "fp32's, unchanged",
        "agreement": agreement.as_dict() if agreement is not None else None,
        "fp32_model": {"file": fp32.path.name, "identity": model_identity(fp32.path)},
        "onnxruntime": onnxruntime.__version__,
        "measured_on": this_cpu().as_dict(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
    }
    props = {k: v for k, v in fp32.info.props.items() if k.startswith("faceverify.")}
    return {**props, modelmeta.K_PRECISION: "int8", modelmeta.K_QUANTIZATION: json.dumps(made, sort_keys=True)}


def _write_metadata(path: Path, props: dict[str, str]) -> None:
    proto = onnx.load(str(path))
    set_metadata(proto, props)
    onnx.save(proto, str(path))


def quantize_model(fp32_path: str | os.PathLike, out: str | os.PathLike, data_root: str | os.PathLike,
                   config: ExportConfig | None = None, console: Console | None = None) -> QuantizeResult:
    """Write the int8 model of a faceverify fp32 model to `out`, or nothing when it misses a limit (one line)."""
    config = config or ExportConfig()
    console = console or Console(stderr=True, quiet=True)
    fp32_path, out = Path(fp32_path), Path(out)
    fp32 = Model(fp32_path, provider="cpu")
    if fp32.info.precision != "fp32":
        raise FaceverifyError(f"{fp32_path}: already {fp32.info.precision}; quantize the fp32 model")
    if out.resolve() == fp32_path.resolve():
        raise FaceverifyError(f"{out}: is the fp32 model itself; the int8 model needs its own file")
    data = validation_set(fp32, open_source(training_config(fp32), data_root), config)
    embeddings = embed_all(fp32, data.images)
    with atomic_path(out) as tmp:
        console.print(f"quantizing to int8, calibrated on the {len(data.images)} images of {len(data.left)} real "
                      f"{data.source}")
        quantize_graph(fp32_path, tmp, data, embeddings)
        largest = weight_max_abs(tmp)
        if largest > MAX_EXACT_WEIGHT:  # its integers would then depend on the CPU's kernels, and so would this check
            raise FaceverifyError(f"int8 model refused: its weights reach {largest}, beyond the {MAX_EXACT_WEIGHT} that "
                                  f"cannot saturate a 16-bit sum on CPUs without VNNI; no model written to {out}")
        _write_metadata(tmp, int8_metadata(fp32, data, None, largest))
        agreement = measure_agreement(fp32, embeddings, Model(tmp, provider="cpu"), data, not config.dry_run)
        if agreement.enforced and not agreement.passed:
            raise FaceverifyError(f"int8 model refused: {'; '.join(agreement.failures())}; no model written to {out}")
        props = int8_metadata(fp32, data, agreement, largest)
        _write_metadata(tmp, props)
        check_graph(tmp)
        check_roundtrip(tmp, props)
    return QuantizeResult(out, agreement, props)


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    model: Annotated[Path, typer.Option(help="The fp32 faceverify model to quantize (it carries its training "
                                             "configuration, from which the validation pairs are rebuilt).")],
    data_root: Annotated[Path | None, typer.Option(help="LFW data root (for the validation images) \\[default: "
                                                       "$FACEVERIFY_DATA, else ./data/lfw].", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(help="The int8 model to write \\[default: MODEL's sibling "
                                                  "NAME.int8.onnx, where `--precision int8` looks].",
                                             show_default=False)] = None,
    pairs: Annotated[int | None, typer.Option(
        help="Validation pairs to calibrate and check on (at least 200; default all).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Smoke mode: a handful of real pairs, the limits reported but not enforced.")] = False,
) -> None:
    """Quantize a faceverify fp32 model to int8, refused unless it decides as fp32 does on the validation pairs."""
    console = Console(stderr=True)
    with entry_point("interrupted: no model written", sigterm=True):
        target = out if out is not None else precision_paths(model)["int8"]
        config = ExportConfig(pairs=pairs, dry_run=dry_run)
        result = quantize_model(model, target, resolve_data_root(data_root), config, console)
    console.print(int8_table(result))
    print(result.model_path)


if __name__ == "__main__":
    sys.exit(app())
