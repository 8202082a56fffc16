"""`faceverify calibrate`: the two threshold rules against brute force, the refusals, the metadata rewrite against the
onnx package, and the command on real LFW photos, writing a model pair that the other commands use as it is."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from helpers import REPO, assert_one_error_line, devtest_path_list, invoke

from verify_cli import modelmeta
from verify_cli.calibration import MIN_PAIRS, Rule, calibrate, rates
from verify_cli.cpu import this_cpu
from verify_cli.errors import FaceverifyError

FP32 = REPO / "verify_cli" / "assets" / "faceverify.onnx"
INT8 = REPO / "verify_cli" / "assets" / "faceverify.int8.onnx"


def _scores(n_same: int = 60, n_diff: int = 140, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    same = np.r_[np.ones(n_same, bool), np.zeros(n_diff, bool)]
    return np.where(same, rng.beta(5, 2, same.size), rng.beta(2, 4, same.size)), same


@pytest.mark.parametrize("far", [0.01, 0.05, 0.2])
def test_target_far_is_the_lowest_threshold_that_keeps_the_far(far: float) -> None:
    scores, same = _scores()
    t = Rule("target-far", far).fit(scores, same)
    accepted = scores[~same] >= t
    assert accepted.mean() <= far
    # brute force: every threshold from the pairs' own scores that accepts more true pairs breaks the FAR
    for candidate in np.unique(scores):
        if np.sum(scores[same] >= candidate) > np.sum(scores[same] >= t):
            assert np.mean(scores[~same] >= candidate) > far


def test_max_accuracy_is_as_good_as_any_threshold() -> None:
    scores, same = _scores()
    t = Rule("max-accuracy").fit(scores, same)
    best = max(np.mean((scores >= c) == same) for c in np.r_[np.unique(scores), 2.0])
    assert np.mean((scores >= t) == same) == pytest.approx(best)


def test_calibration_reports_both_thresholds_with_intervals_around_them() -> None:
    scores, same = _scores()
    result = calibrate(scores, same, Rule("target-far", 0.05), 0.5, resamples=200)
    assert (result.pairs, result.same_pairs, result.different_pairs) == (200, 60, 140)
    for figures, t in ((result.fitted, result.fitted.threshold), (result.stored, 0.5)):
        assert figures.threshold == t
        assert (figures.accuracy, figures.far, figures.tar) == pytest.approx(rates(scores, same, t))
        for value, (low, high) in ((figures.accuracy, figures.accuracy_ci), (figures.far, figures.far_ci),
                                   (figures.tar, figures.tar_ci)):
            assert 0 <= low <= value <= high <= 1
    assert result.fitted.far <= 0.05 and result.threshold_ci[0] <= result.fitted.threshold <= result.threshold_ci[1]
    again = calibrate(scores, same, Rule("target-far", 0.05), 0.5, resamples=200)
    assert again == result  # seeded: a calibration repeats


@pytest.mark.parametrize(("n_same", "n_diff", "rule", "words"), [
    (MIN_PAIRS - 1, 50, Rule("max-accuracy"), "too few pairs to calibrate: 9 same-person"),
    (50, MIN_PAIRS - 1, Rule("max-accuracy"), "at least 10 of each"),
    (50, 50, Rule("target-far", 0.01), "--target-far 0.01 needs at least 100 different-person pairs"),
])
def test_too_few_pairs_are_refused(n_same: int, n_diff: int, rule: Rule, words: str) -> None:
    scores, same = _scores(n_same, n_diff)
    with pytest.raises(FaceverifyError, match=words.replace("(", r"\(")):
        calibrate(scores, same, rule, 0.5)


def test_metadata_rewrite_keeps_the_graph_and_replaces_the_props() -> None:
    raw = INT8.read_bytes()
    props = {p.key: p.value for p in onnx.load_from_string(raw).metadata_props}
    wanted = {**props, modelmeta.K_THRESHOLD: "0.625", "faceverify.note": "é, \t and a long value " * 20}
    del wanted[modelmeta.K_CREATED]
    rewritten = modelmeta.with_metadata(raw, wanted, "x")
    before, after = onnx.load_from_string(raw), onnx.load_from_string(rewritten)
    assert {p.key: p.value for p in after.metadata_props} == wanted  # read by the onnx package, independently
    assert after.graph == before.graph and after.opset_import == before.opset_import
    assert after.ir_version == before.ir_version and after.producer_name == before.producer_name
    session = ort.InferenceSession(rewritten, providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map[modelmeta.K_THRESHOLD] == "0.625"
    with pytest.raises(FaceverifyError, match="not a readable ONNX model"):
        modelmeta.with_metadata(raw[:1000], wanted, "cut.onnx")


# ------------------------------------------------------------------------------------------------ the command

@pytest.fixture(scope="module")
def labelled(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 same-person and 30 different-person real DevTest pairs, as `a<TAB>b<TAB>1|0` lines with a comment."""
    return devtest_path_list(data_root, 30, tmp_path_factory.mktemp("calibrate") / "mine.tsv", labelled=True)


def onnx_props(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _sha(path: Path) -> str:
    return f"sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}"  # as model_identity writes it


@pytest.mark.slow
def test_calibrate_writes_a_model_pair_with_the_fitted_threshold(labelled: Path, tmp_path: Path) -> None:
    originals = {p: _sha(p) for p in (FP32, INT8)}
    out = tmp_path / "mine.onnx"
    result = invoke("calibrate", labelled, "--out", out, "--target-far", "0.05", "--no-detect", "--json")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert (record["pairs"], record["same_pairs"], record["different_pairs"]) == (60, 30, 30)
    assert record["fitted"]["far"] <= 0.05 and record["stored"]["threshold"] == float(
        onnx_props(FP32)[modelmeta.K_THRESHOLD])  # the threshold it replaces: the bundled model's
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.int8.onnx", "mine.onnx"]
    assert {p: _sha(p) for p in originals} == originals  # the model it was made from is never modified
    stored = onnx_props(out)
    assert float(stored[modelmeta.K_THRESHOLD]) == record["fitted"]["threshold"]
    made = json.loads(stored[modelmeta.K_CALIBRATION])
    assert made["from_model"]["identity"] == originals[FP32] and made["pairs_sha256"] == record["pairs_sha256"]
    assert record["pairs_sha256"] == hashlib.sha256(labelled.read_bytes()).hexdigest()
    assert made["rule"] == "target-far" and made["target_far"] == 0.05 and "calibrate" in stored[
        modelmeta.K_THRESHOLD_RULE]
    int8 = onnx_props(tmp_path / "mine.int8.onnx")
    assert int8[modelmeta.K_THRESHOLD] == stored[modelmeta.K_THRESHOLD]
    assert json.loads(int8[modelmeta.K_QUANTIZATION])["fp32_model"]["identity"] == _sha(out)  # still a pair

    # the copy answers with its threshold, and --precision auto still finds its int8 sibling where it runs
    lines = labelled.read_text().splitlines()[1:]
    a, b, _ = lines[0].split("\t")
    used = json.loads(invoke("compare", a, b, "--model", out, "--no-detect", "--json", "--provider", "cpu").stdout)
    assert used["threshold"] == record["fitted"]["threshold"] and used["threshold_source"] == "model"
    native = this_cpu().x86_64 and "avx2" in this_cpu().flags
    assert used["model"].endswith("mine.int8.onnx" if native else "mine.onnx")
    assert invoke("info", "--model", out).exit_code == 0


@pytest.mark.slow
def test_max_accuracy_is_the_default_and_never_worse_than_the_stored_threshold(labelled: Path, tmp_path: Path) -> None:
    result = invoke("calibrate", labelled, "--out", tmp_path / "m.onnx", "--no-detect")
    assert result.exit_code == 0, result.stderr
    assert "fitted threshold" in result.stdout and "false accepts (FAR)" in result.stdout
    assert "wrote" in result.stdout and "bootstrap" in result.stdout
    stored = onnx_props(tmp_path / "m.onnx")
    record = json.loads(stored[modelmeta.K_CALIBRATION])
    assert record["rule"] == "max-accuracy" and record["pairs"] == 60


@pytest.mark.parametrize(("args", "words"), [
    (("--target-far", "0.1", "--max-accuracy"), "choose one rule"),
    (("--target-far", "1.5"), "--target-far must be between 0 and 1"),
    (("--target-far", "0.01"), "needs at least 100 different-person pairs"),
])
def test_bad_requests_are_one_line_and_write_nothing(args: tuple[str, ...], words: str, labelled: Path,
                                                      tmp_path: Path) -> None:
    assert_one_error_line(invoke("calibrate", labelled, "--out", tmp_path / "x.onnx", "--no-detect", *args), words)
    assert list(tmp_path.iterdir()) == []


def test_bad_files_are_one_line_and_write_nothing(labelled: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.onnx"
    bad = tmp_path / "bad.tsv"
    bad.write_text("a.jpg\tb.jpg\tmaybe\n")
    assert_one_error_line(invoke("calibrate", bad, "--out", out), f"{bad}:1: expected two image paths and 1")
    missing = tmp_path / "missing.tsv"
    missing.write_text(labelled.read_text() + "nowhere/a.jpg\tnowhere/b.jpg\t1\n")
    assert_one_error_line(invoke("calibrate", missing, "--out", out), f"{missing}:62: ")
    assert_one_error_line(invoke("calibrate", labelled, "--out", FP32), "is the model being calibrated")
    assert_one_error_line(invoke("calibrate", labelled, "--out", tmp_path / "x.int8.onnx"), "--out names the fp32")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tsv", "missing.tsv"]
