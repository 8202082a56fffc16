"""Export stage on a tiny trained run: checked ONNX, parity on real LFW pairs, metadata round trip, loud failures."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from helpers import REPO
from onnx import numpy_helper
from typer.testing import CliRunner

from export import ExportConfig, ExportResult, export_model
from export.metadata import K_FACES, build_metadata
from export.pipeline import load_finalized
from models import build_model
from train import checkpoint
from train.config import get_preset
from train.data import protocol_splits
from verify_cli import modelmeta
from verify_cli.errors import FaceverifyError
from verify_cli.lfw import LFWRoot
from verify_cli.preprocess import load_input


@pytest.fixture(scope="module")
def exported(tiny_run: Path, data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    """The tiny run exported with parity on all of its real validation pairs."""
    out = tmp_path_factory.mktemp("export") / "faceverify.onnx"
    return export_model(tiny_run / "best.pt", out, data_root)


def _perturb(name: str, change: Callable[[np.ndarray], np.ndarray]) -> Callable[[onnx.ModelProto], None]:
    """A graph transform that changes one named weight of the traced model."""

    def transform(proto: onnx.ModelProto) -> None:
        for init in proto.graph.initializer:
            if init.name == name:
                init.CopyFrom(numpy_helper.from_array(change(numpy_helper.to_array(init)), name))
                return
        raise AssertionError(f"no initializer {name} in {[i.name for i in proto.graph.initializer]}")

    return transform


HEAD_BIAS_UP = _perturb("model.head.linear2.bias", lambda b: b + np.float32(1e-3))
# shifts every embedding alike: the L1 head's probabilities do not move, only the embedding check sees it
EMBEDDING_BIAS_UP = _perturb("model.tower.linear1.0.bias", lambda b: b + np.float32(1e-3))


@pytest.mark.slow
def test_export_is_checked_and_proven_on_real_validation_pairs(exported: ExportResult) -> None:
    report = exported.parity
    assert report.passed and report.pairs >= 200 and report.matched > 0 and report.mismatched > 0
    assert report.images > report.pairs  # each distinct image embedded once
    assert report.prob_max_abs_diff <= 1e-5 and report.embedding_max_rel_err <= 1e-4
    assert report.decisions_differ == 0 and report.provider == "CPUExecutionProvider"
    assert sorted(p.name for p in exported.model_path.parent.iterdir()) == ["faceverify.onnx", "faceverify.parity.json"]
    assert json.loads(exported.parity_path.read_text())["prob_max_abs_diff"] == report.prob_max_abs_diff
    proto = onnx.load(str(exported.model_path))
    onnx.checker.check_model(proto, full_check=True)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    batch_dims = {i.name: i.type.tensor_type.shape.dim[0] for i in proto.graph.input}
    assert all(d.dim_param and not d.dim_value for d in batch_dims.values())


@pytest.mark.slow
def test_metadata_reads_back_through_onnxruntime(exported: ExportResult, tiny_run: Path) -> None:
    session = ort.InferenceSession(str(exported.model_path), providers=["CPUExecutionProvider"])
    props = dict(session.get_modelmeta().custom_metadata_map)
    assert props == exported.metadata
    saved, cfg, _ = load_finalized(tiny_run / "best.pt")
    assert float(props[modelmeta.K_THRESHOLD]) == saved["threshold"]
    assert props[modelmeta.K_PREPROCESS] == cfg.preprocess.to_json()
    assert json.loads(props[modelmeta.K_INPUT]) == {"channels": 1, "height": 105, "width": 105}
    assert int(props[modelmeta.K_EMBEDDING]) == cfg.model.embedding
    assert json.loads(props[modelmeta.K_TRAINING]) == json.loads(json.dumps(cfg.as_dict()))
    faces = json.loads(props[K_FACES])  # how training read the faces, and how many images had none
    assert faces["mode"] == cfg.faces == "funneled" and faces["images"] == saved["summary"]["faces"]["images"] > 0
    assert faces["no_face"] == 0
    assert json.loads(props[modelmeta.K_ARCHITECTURE]) == cfg.model.as_dict()
    assert props[modelmeta.K_PRESET] == "exp9" and props[modelmeta.K_PROTOCOL] == "restricted"
    assert modelmeta.K_DEVTEST not in props and "test" not in saved["summary"]  # DevTest only with --report-test
    assert json.loads(props[modelmeta.K_VALIDATION])["accuracy"] == saved["summary"]["validation"]["accuracy"]
    assert "validation" in props[modelmeta.K_THRESHOLD_RULE] and "DevTest chose nothing" in props[modelmeta.K_THRESHOLD_RULE]
    assert json.loads(props[modelmeta.K_PARITY]) == exported.parity.as_dict()
    point = json.loads(props[modelmeta.K_OPERATING])  # the threshold's meaning, on random and look-alike strangers
    assert point["threshold"] == float(props[modelmeta.K_THRESHOLD]) and point["random"]["pairs"] == exported.parity.pairs
    assert 0 < point["lookalike"]["different_pairs"] <= point["lookalike"]["same_pairs"] == point["random"]["same_pairs"]
    assert set(json.loads(props[modelmeta.K_VERSIONS])) >= {"torch", "onnx", "onnxruntime"}
    assert len(props[modelmeta.K_COMMIT]) == 40 or props[modelmeta.K_COMMIT] == "unknown"
    assert props[modelmeta.K_CREATED].endswith("+00:00")


@pytest.mark.slow
def test_tower_then_head_equals_full_model_on_real_pairs(exported: ExportResult, tiny_run: Path, data_root: Path) -> None:
    _, cfg, model = load_finalized(tiny_run / "best.pt")
    lfw = LFWRoot.open(data_root)
    pairs = protocol_splits(cfg, lfw).val[:40]
    paths = sorted({p for pair in pairs for p in (pair.left, pair.right)})
    images = np.stack([load_input(lfw.image(p), cfg.preprocess) for p in paths])
    row = {p: i for i, p in enumerate(paths)}
    left, right = [row[p.left] for p in pairs], [row[p.right] for p in pairs]
    session = ort.InferenceSession(str(exported.model_path), providers=["CPUExecutionProvider"])
    d = int(exported.metadata[modelmeta.K_EMBEDDING])
    empty = np.zeros((0, d), np.float32)
    emb = session.run(["embeddings"], {"images": images, "embedding_a": empty, "embedding_b": empty})[0]
    no_images = np.zeros((0, *images.shape[1:]), np.float32)
    onnx_prob = session.run(["probability"], {"images": no_images, "embedding_a": emb[left], "embedding_b": emb[right]})[0]
    with torch.no_grad():
        full = model.probability(torch.from_numpy(images[left]), torch.from_numpy(images[right])).numpy()
        torch_emb = model.embed(torch.from_numpy(images))
        split = torch.sigmoid(model.score(torch_emb[left], torch_emb[right])).numpy()
    assert onnx_prob.shape == (len(pairs),)
    np.testing.assert_allclose(onnx_prob, full, rtol=0, atol=1e-5)
    np.testing.assert_allclose(split, full, rtol=0, atol=1e-6)
    threshold = float(exported.metadata[modelmeta.K_THRESHOLD])
    assert np.array_equal(onnx_prob >= threshold, full >= threshold)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("transform", "figure"), [(HEAD_BIAS_UP, "probability"), (EMBEDDING_BIAS_UP, "embedding")], ids=["head", "tower"]
)
def test_perturbed_graph_fails_parity_and_leaves_no_file(
    transform: Callable[[onnx.ModelProto], None], figure: str, tiny_run: Path, data_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "faceverify.onnx"
    with pytest.raises(FaceverifyError, match=f"parity check failed .*{figure} max"):
        export_model(tiny_run / "best.pt", out, data_root, ExportConfig(dry_run=True), transform=transform)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_parity_failure_exits_2_with_one_line(
    tiny_run: Path, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import export.pipeline
    from export.__main__ import app

    monkeypatch.setattr(export.pipeline, "export_model", functools.partial(export_model, transform=HEAD_BIAS_UP))
    out = tmp_path / "faceverify.onnx"
    args = ["--checkpoint", str(tiny_run / "best.pt"), "--out", str(out), "--data-root", str(data_root), "--dry-run"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: parity check failed")
    assert list(tmp_path.iterdir()) == []


def _run_export(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "export", *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.slow
def test_cli_dry_run_writes_model_and_report(tiny_run: Path, data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    done = _run_export("--checkpoint", str(tiny_run / "best.pt"), "--out", str(out), "--data-root", str(data_root),
                       "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(out)
    assert "max rel err" in done.stderr and "parity report" in done.stderr
    report = json.loads((tmp_path / "m.parity.json").read_text())
    assert report["passed"] and report["dry_run"] and report["pairs"] == 16 and report["model"] == "m.onnx"


def _unfinalized_checkpoint(path: Path) -> Path:
    """A well-formed checkpoint whose run never chose a threshold (what `last.pt` or an interrupted run holds)."""
    cfg = get_preset("exp9")
    checkpoint.save({"format": checkpoint.FORMAT, "config": cfg.as_dict(), "model": build_model(cfg.model, cfg.preprocess).state_dict()},
                    path)
    return path


@pytest.mark.parametrize("case", ["missing", "random-bytes", "truncated", "not-finalized"])
def test_bad_checkpoint_is_one_line_and_exit_2(case: str, tmp_path: Path) -> None:
    ckpt = tmp_path / "best.pt"
    if case == "random-bytes":
        ckpt.write_bytes(np.random.default_rng(0).bytes(4096))
    elif case == "truncated":
        data = _unfinalized_checkpoint(tmp_path / "whole.pt").read_bytes()
        ckpt.write_bytes(data[: len(data) // 3])
    elif case == "not-finalized":
        _unfinalized_checkpoint(ckpt)
    out = tmp_path / "faceverify.onnx"
    done = _run_export("--checkpoint", str(ckpt), "--out", str(out), "--data-root", str(tmp_path / "no-data"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {ckpt}") and "Traceback" not in done.stderr, done.stderr
    assert not out.exists()


def test_too_few_pairs_are_refused_unless_dry_run() -> None:
    with pytest.raises(FaceverifyError, match="at least 200"):
        ExportConfig(pairs=50)
    assert ExportConfig(pairs=50, dry_run=True).wanted_pairs == 50
    with pytest.raises(FaceverifyError, match="opset"):
        ExportConfig(opset=13)


def test_devtest_figures_are_carried_only_when_training_reported_them() -> None:
    cfg = get_preset("exp9")
    summary = {"validation": {"accuracy": 0.7, "pairs": 220}, "threshold_rule": "accuracy-maximising threshold"}
    saved = {"summary": summary, "threshold": 0.5, "epoch": 3, "selected_by": "val_loss"}
    assert modelmeta.K_DEVTEST not in build_metadata(saved, cfg, 32)
    test = {"accuracy": 0.66, "roc_auc": 0.71, "pairs": 1000}
    props = build_metadata({**saved, "summary": {**summary, "test": test}}, cfg, 32)
    assert json.loads(props[modelmeta.K_DEVTEST]) == test
    assert json.loads(props[modelmeta.K_ARCHITECTURE]) == cfg.model.as_dict()
    assert json.loads(props[modelmeta.K_INPUT]) == {"channels": 1, "height": 105, "width": 105}
