"""The export stage as one plain function: finalized checkpoint -> ONNX -> checks -> parity -> metadata -> rename."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
from rich.console import Console

from export.config import ExportConfig
from export.metadata import add_parity, as_json, build_metadata, set_metadata
from export.onnx_graph import check_graph, export_graph
from export.parity import ParityReport, measure_parity, pairs_source, parity_pairs
from models import SiameseNet
from train import checkpoint
from train.config import TrainConfig
from train.data import open_source
from train.lookalike import operating_point
from train.loop import load_model
from verify_cli import modelmeta
from verify_cli.errors import FaceverifyError
from verify_cli.outputs import atomic_path, check_output
from verify_cli.runtime import Model

GraphTransform = Callable[[onnx.ModelProto], None]


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote and measured."""

    model_path: Path
    parity_path: Path
    parity: ParityReport
    metadata: dict[str, str]


def parity_report_path(model_path: Path) -> Path:
    """The parity JSON beside a model: faceverify.onnx -> faceverify.parity.json."""
    return model_path.with_name(f"{model_path.stem}.parity.json")


def load_finalized(path: str | os.PathLike) -> tuple[dict[str, Any], TrainConfig, SiameseNet]:
    """A finalized checkpoint (threshold chosen on validation), its configuration and network."""
    path = Path(path)
    saved = checkpoint.load(path)
    if "threshold" not in saved or "summary" not in saved:
        raise FaceverifyError(
            f"{path}: checkpoint has no decision threshold (training was not finalized); "
            "finish the run with `python -m train --resume` and export its best.pt"
        )
    try:
        cfg, model = load_model(saved)
    except FaceverifyError as exc:
        raise FaceverifyError(f"{path}: {exc.message}") from None
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise FaceverifyError(f"{path}: checkpoint configuration unreadable ({type(exc).__name__}: {exc})") from None
    return saved, cfg, model


def _check_output(out: Path) -> None:
    """Refuse an --out that cannot become the model file before any work (the CLI's rule for outputs)."""
    if out.is_dir():
        raise FaceverifyError(f"{out}: is a directory; --out names the .onnx file to write")
    if out.suffix != ".onnx":
        raise FaceverifyError(f"{out}: the model file name must end in .onnx")
    check_output(out)


def check_roundtrip(path: str | os.PathLike, props: dict[str, str]) -> None:
    """Open the finished file the way the CLI does and insist its metadata reads back unchanged."""
    got = Model(path, provider="cpu").info.props
    if got != props:
        differ = sorted(k for k in set(got) | set(props) if got.get(k) != props.get(k))
        raise FaceverifyError(f"metadata did not read back through ONNX Runtime: {', '.join(differ)} differ")


def export_model(checkpoint_path: str | os.PathLike, out: str | os.PathLike, data_root: str | os.PathLike,
                 config: ExportConfig | None = None, console: Console | None = None,
                 transform: GraphTransform | None = None) -> ExportResult:
    """Export a finalized checkpoint to `out` only if ONNX Runtime matches PyTorch on real validation pairs.

    `transform` edits the traced graph before the checks (tests use it to prove a wrong graph is refused).
    Nothing is left at `out` unless every check passes: the model is built in a temporary file and renamed.
    """
    config = config or ExportConfig()
    console = console or Console(stderr=True, quiet=True)
    out = Path(out)
    _check_output(out)
    saved, cfg, model = load_finalized(checkpoint_path)
    lfw = open_source(cfg, data_root)  # LFW, or the image folder the model trained on
    pairs = parity_pairs(cfg, lfw, config)
    source = pairs_source(cfg)
    built: dict[str, Any] = {}

    def build(tmp: str) -> None:
        console.print(f"tracing {cfg.preset} to ONNX (opset {config.opset})")
        dim = export_graph(model, cfg.preprocess, tmp, config.opset)
        proto = onnx.load(tmp)
        if transform is not None:
            transform(proto)
        props = build_metadata(saved, cfg, dim)
        set_metadata(proto, props)
        onnx.save(proto, tmp)
        check_graph(tmp)
        console.print(f"parity on {len(pairs)} real {source}")
        report = measure_parity(model, tmp, lfw, pairs, cfg.preprocess, cfg.faces, float(saved["threshold"]), config,
                                source)
        if not report.passed:
            raise FaceverifyError(
                f"parity check failed on {report.pairs} validation pairs: {'; '.join(report.failures())}; "
                f"no model written to {out}"
            )
        props = add_parity(props, report.as_dict())
        set_metadata(proto, props)
        onnx.save(proto, tmp)
        console.print("operating point: FAR and TAR at the threshold on random and look-alike validation strangers")
        props = {**props, modelmeta.K_OPERATING: as_json(operating_point(Path(tmp), data_root, config.wanted_pairs))}
        set_metadata(proto, props)
        onnx.save(proto, tmp)
        check_graph(tmp)
        check_roundtrip(tmp, props)
        built.update(report=report, props=props)

    with atomic_path(out) as tmp:
        build(str(tmp))
    parity_path = parity_report_path(out)
    report: ParityReport = built["report"]
    checkpoint.save_json({"model": out.name, "checkpoint": str(checkpoint_path), "opset": config.opset,
                          **report.as_dict()}, parity_path)
    return ExportResult(out, parity_path, report, built["props"])

