"""The `faceverify` command on real LFW images: compare, evaluate, info, providers, and what it imports."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, faceverify, invoke
from PIL import Image
from sklearn.metrics import roc_auc_score, roc_curve

from verify_cli import runtime
from verify_cli.faces.pipeline import FacePipeline
from verify_cli.lfw import parse_pairs
from verify_cli.preprocess import load_input, normalize, prepare


def independent_scores(model_path: Path, pairs: list[tuple[Path, Path]], detect: bool = True) -> np.ndarray:
    """Probabilities computed without the CLI's plumbing: each image's face found and aligned (or, without
    `detect`, the fixed centre crop), preprocessed and embedded on its own."""
    model = runtime.Model(model_path, provider="cpu")
    spec = model.info.preprocess
    faces = FacePipeline() if detect else None

    def one(path: Path) -> np.ndarray:
        array = load_input(path, spec) if faces is None else normalize(prepare(faces.align_file(path).image, spec), spec)
        return model.embed(array[None])

    left = np.concatenate([one(a) for a, _ in pairs])
    right = np.concatenate([one(b) for _, b in pairs])
    return model.score(left, right).astype(np.float64)


def field(stdout: str, label: str) -> str:
    """The value of one `label  value` line of compare's human output."""
    for line in stdout.splitlines():
        name, _, value = line.strip().partition("  ")
        if name == label:
            return value.strip()
    raise AssertionError(f"no {label!r} line in {stdout!r}")


def cuda_usable(model_path: Path) -> bool:
    """Whether ONNX Runtime can run this model on CUDA here."""
    try:
        return runtime.Model(model_path, provider="cuda").provider == "CUDAExecutionProvider"
    except Exception:  # noqa: BLE001 - any failure means "not here"
        return False


def write_view1(path: Path, lines: list[str], per_class: int) -> Path:
    """An LFW View 1 pairs file: header N, N matched lines, N mismatched lines."""
    path.write_text(f"{per_class}\n" + "\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def devtest_lines(data_root: Path) -> tuple[list[str], list[str]]:
    """The matched and mismatched lines of the real pairsDevTest.txt."""
    lines = (data_root / "lfw-py" / "pairsDevTest.txt").read_text().splitlines()
    n = int(lines[0])
    return lines[1:1 + n], lines[1 + n:1 + 2 * n]


@pytest.fixture(scope="module")
def small_pairs(devtest_lines: tuple[list[str], list[str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 real DevTest pairs (10 matched, 10 mismatched) in the LFW View 1 format."""
    matched, mismatched = devtest_lines
    return write_view1(tmp_path_factory.mktemp("pairs") / "small.txt", matched[:10] + mismatched[:10], 10)


@pytest.fixture(scope="module")
def tenfold_pairs(devtest_lines: tuple[list[str], list[str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A View 2 style file from real DevTest pairs: header `10<TAB>3`, each fold 3 matched then 3 mismatched."""
    matched, mismatched = devtest_lines
    body = []
    for fold in range(10):
        body += matched[3 * fold:3 * fold + 3] + mismatched[3 * fold:3 * fold + 3]
    path = tmp_path_factory.mktemp("pairs") / "tenfold.txt"
    path.write_text("10\t3\n" + "\n".join(body) + "\n")
    return path


# ------------------------------------------------------------------------------------------ startup


def test_help_lists_the_three_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("compare", "evaluate", "info"):
        assert command in result.stdout


def test_cli_imports_no_torch_and_nothing_heavy_until_a_command_runs(onnx_model: Path, lfw_images: list[Path]) -> None:
    code = (
        "import sys\n"
        "import verify_cli.cli as cli\n"
        "heavy = {'numpy', 'onnxruntime', 'PIL', 'torch', 'torchvision', 'onnx'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
        f"sys.argv = ['faceverify', 'compare', '--model', {str(onnx_model)!r}, {str(lfw_images[0])!r},"
        f" {str(lfw_images[1])!r}, '--json']\n"
        "try:\n    cli.main()\nexcept SystemExit as exc:\n    print('exit', exc.code)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'torchvision', 'onnx'}))\n"
        "print('onnxruntime' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120,
                         cwd=REPO)
    lines = out.stdout.splitlines()
    assert lines[0] == "[]", f"import verify_cli.cli pulled in {lines[0]}"
    assert json.loads(lines[1])["provider"]
    assert lines[2] in ("exit 0", "exit 1")
    assert lines[3] == "[]", f"compare imported {lines[3]}"
    assert lines[4] == "True"  # the command really ran through ONNX Runtime


# ------------------------------------------------------------------------------------------ compare


@pytest.mark.parametrize("pair", [(0, 1), (0, 2)], ids=["same-person", "different-people"])
def test_compare_exit_code_follows_the_printed_decision(onnx_model: Path, lfw_images: list[Path],
                                                        pair: tuple[int, int]) -> None:
    a, b = lfw_images[pair[0]], lfw_images[pair[1]]
    result = invoke("compare", a, b, "--model", onnx_model)
    assert result.exit_code in (0, 1), result.stderr
    decision = field(result.stdout, "decision")
    assert decision in ("same person", "different people")
    said_same = decision == "same person"
    assert result.exit_code == (0 if said_same else 1)
    for word in ("probability", "threshold", "decision", "provider", "CPUExecutionProvider"):
        assert word in result.stdout

    record = json.loads(invoke("compare", a, b, "--model", onnx_model, "--json").stdout)
    assert record["same"] == said_same
    assert record["same"] == (record["probability"] >= record["threshold"])


def test_threshold_option_forces_each_outcome(onnx_model: Path, lfw_images: list[Path]) -> None:
    a, b = lfw_images[0], lfw_images[1]
    forced_same = invoke("compare", a, b, "--model", onnx_model, "--threshold", "0")
    assert forced_same.exit_code == 0 and field(forced_same.stdout, "decision") == "same person"
    assert field(forced_same.stdout, "threshold").endswith("(--threshold)")
    record = json.loads(invoke("compare", a, b, "--model", onnx_model, "--threshold", "1", "--json").stdout)
    assert record["probability"] < 1.0  # the tiny model is far from certain, so threshold 1 must say different
    forced_different = invoke("compare", a, b, "--model", onnx_model, "--threshold", "1")
    assert forced_different.exit_code == 1 and field(forced_different.stdout, "decision") == "different people"


def test_compare_json_matches_an_independent_computation(onnx_model: Path, lfw_images: list[Path]) -> None:
    a, b = lfw_images[0], lfw_images[3]
    result = invoke("compare", a, b, "--model", onnx_model, "--json", "--provider", "cpu")
    record = json.loads(result.stdout)
    assert {"probability", "decision", "threshold", "provider"} <= set(record)
    assert record["provider"] == "CPUExecutionProvider"
    assert record["threshold_source"] == "model"
    assert record["threshold"] == pytest.approx(runtime.Model(onnx_model, "cpu").threshold)
    assert record["probability"] == pytest.approx(float(independent_scores(onnx_model, [(a, b)])[0]), abs=1e-7)
    assert record["decision"] == ("same" if record["same"] else "different")
    assert result.exit_code == (0 if record["same"] else 1)


def test_provider_cuda_runs_on_cuda_or_fails_in_one_line(onnx_model: Path, lfw_images: list[Path]) -> None:
    result = invoke("compare", lfw_images[0], lfw_images[1], "--model", onnx_model, "--provider", "cuda", "--json")
    if cuda_usable(onnx_model):
        assert json.loads(result.stdout)["provider"] == "CUDAExecutionProvider"
    else:
        assert result.exit_code == 2
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: provider cuda")


def test_provider_auto_reports_what_ran(onnx_model: Path, lfw_images: list[Path]) -> None:
    record = json.loads(invoke("compare", lfw_images[0], lfw_images[1], "--model", onnx_model, "--json").stdout)
    expected = "CUDAExecutionProvider" if cuda_usable(onnx_model) else "CPUExecutionProvider"
    assert record["provider"] == expected


def test_real_process_exit_codes_and_quiet_stderr(onnx_model: Path, lfw_images: list[Path], tmp_path: Path) -> None:
    a, b = lfw_images[0], lfw_images[2]
    same = faceverify("compare", a, b, "--model", onnx_model, "--threshold", "0")
    different = faceverify("compare", a, b, "--model", onnx_model, "--threshold", "1")
    broken = faceverify("compare", a, tmp_path / "missing.jpg", "--model", onnx_model)
    assert (same.returncode, different.returncode, broken.returncode) == (0, 1, 2)
    assert same.stderr == "" and different.stderr == ""  # no ONNX Runtime log noise
    assert broken.stdout == "" and broken.stderr == f"error: {tmp_path / 'missing.jpg'}: no such file\n"


def test_pairs_file_scores_every_pair(onnx_model: Path, lfw_images: list[Path], tmp_path: Path) -> None:
    pairs = [(lfw_images[0], lfw_images[1]), (lfw_images[0], lfw_images[2]), (lfw_images[2], lfw_images[3])]
    listing = tmp_path / "pairs.tsv"
    listing.write_text("# two images per line\n" + "".join(f"{a}\t{b}\n" for a, b in pairs))

    out = tmp_path / "scores.csv"
    result = invoke("compare", "--pairs-file", listing, "--out", out, "--model", onnx_model, "--threshold", "0")
    assert result.exit_code == 0, result.stderr  # threshold 0: every pair is the same person
    rows = list(csv.DictReader(out.open()))
    assert [(r["left"], r["right"]) for r in rows] == [(str(a), str(b)) for a, b in pairs]
    probabilities = np.array([float(r["probability"]) for r in rows])
    np.testing.assert_allclose(probabilities, independent_scores(onnx_model, pairs), atol=1e-7)
    assert {r["decision"] for r in rows} == {"same"}

    stdout = invoke("compare", "--pairs-file", listing, "--model", onnx_model, "--threshold", "1")
    assert stdout.exit_code == 1  # threshold 1: some pair is different
    assert stdout.stdout.splitlines()[0] == "left\tright\tprobability\tthreshold\tdecision"
    assert len(stdout.stdout.splitlines()) == 1 + len(pairs)

    lines = invoke("compare", "-f", listing, "--model", onnx_model, "--json").stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == len(pairs)
    assert all(r["same"] == (r["probability"] >= r["threshold"]) for r in records)


def test_images_in_any_pillow_mode_are_accepted(onnx_model: Path, lfw_images: list[Path], tmp_path: Path) -> None:
    original = Image.open(lfw_images[0])
    gray = original.convert("L")
    variants = {
        "gray.png": gray,
        "rgba.png": original.convert("RGBA"),
        "palette.png": original.convert("P"),
        "cmyk.jpg": original.convert("CMYK"),
        "sixteen.png": Image.fromarray(np.asarray(gray, np.uint16) * 257),
        "la.png": gray.convert("LA"),
    }
    listing = []
    for name, img in variants.items():
        img.save(tmp_path / name)
        listing.append(f"{lfw_images[0]}\t{tmp_path / name}")
    rotated = original.rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    rotated.save(tmp_path / "exif.jpg", exif=exif)
    listing.append(f"{lfw_images[0]}\t{tmp_path / 'exif.jpg'}")
    (tmp_path / "modes.tsv").write_text("\n".join(listing) + "\n")

    result = invoke("compare", "-f", tmp_path / "modes.tsv", "--model", onnx_model, "--json")
    assert result.exit_code in (0, 1), result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == len(listing)
    assert all(math.isfinite(r["probability"]) and 0.0 <= r["probability"] <= 1.0 for r in records)


def test_default_model_is_the_bundled_one(onnx_model: Path, lfw_images: list[Path], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "bundled_model_path", lambda: onnx_model)
    record = json.loads(invoke("compare", lfw_images[0], lfw_images[1], "--json").stdout)
    assert record["model"] == str(onnx_model)
    assert "(bundled)" in invoke("compare", lfw_images[0], lfw_images[1]).stdout

    monkeypatch.setattr(runtime, "bundled_model_path", lambda: tmp_path / "faceverify.onnx")
    result = invoke("info")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no bundled model at") and result.stderr.count("\n") == 1


# ------------------------------------------------------------------------------------------ evaluate


def test_evaluate_prints_the_table_and_writes_every_output(onnx_model: Path, data_root: Path, small_pairs: Path,
                                                           tmp_path: Path) -> None:
    outs = {"scores": tmp_path / "scores.csv", "roc": tmp_path / "roc.png", "examples": tmp_path / "examples.png",
            "json-out": tmp_path / "summary.json"}
    result = invoke("evaluate", "--model", onnx_model, "--data-root", data_root, "--pairs", small_pairs,
                    *[x for name, path in outs.items() for x in (f"--{name}", path)])
    assert result.exit_code == 0, result.stderr
    for label in ("accuracy", "ROC AUC", "equal error rate", "TAR @ FAR 1e-2", "TAR @ FAR 1e-3",
                  "TP / FP / TN / FN", "images / s", "CPUExecutionProvider", "20 pairs, "):
        assert label in result.stdout
    tar_rows = [line for line in result.stdout.splitlines() if "TAR @ FAR" in line]
    assert len(tar_rows) == 2 and all(" n/a " in row for row in tar_rows), tar_rows  # 10 different pairs: neither

    rows = list(csv.DictReader(outs["scores"].open()))
    assert len(rows) == 20
    assert [r["label"] for r in rows] == ["same"] * 10 + ["different"] * 10
    summary = json.loads(outs["json-out"].read_text())
    t = summary["threshold"]
    assert all((r["decision"] == "same") == (float(r["probability"]) >= t) for r in rows)
    assert f"{summary['metrics']['accuracy']:.4f}" in result.stdout
    for name in ("roc", "examples"):
        with Image.open(outs[name]) as img:
            img.verify()
            assert img.format == "PNG" and img.width > 300 and img.height > 300
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in outs.values())


def test_evaluate_json_agrees_with_metrics_computed_independently(onnx_model: Path, data_root: Path,
                                                                  small_pairs: Path) -> None:
    """Scores from a separate embedding of each image; figures from scikit-learn and direct counts."""
    result = invoke("evaluate", "--model", onnx_model, "--data-root", data_root, "--pairs", small_pairs, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    images = data_root / "lfw-py" / "lfw-deepfunneled"
    pairs = parse_pairs(small_pairs)
    scores = independent_scores(onnx_model, [(images / p.left, images / p.right) for p in pairs])
    labels = np.array([p.same for p in pairs])
    threshold = runtime.Model(onnx_model, "cpu").threshold
    said_same = scores >= threshold
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    assert summary["threshold"] == pytest.approx(threshold)
    assert summary["threshold_source"] == "model"
    assert summary["provider"] == "CPUExecutionProvider"
    assert summary["images"] == len({p.left for p in pairs} | {p.right for p in pairs})
    figures = summary["metrics"]
    assert figures["pairs"] == len(pairs) == 20
    assert figures["accuracy"] == pytest.approx(np.mean(said_same == labels), abs=1e-9)
    assert figures["roc_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-6)
    assert figures["eer"] == pytest.approx(np.interp(0.0, fpr + tpr - 1.0, fpr), abs=1e-6)  # where FPR = 1 - TPR
    assert (figures["tp"], figures["fp"], figures["tn"], figures["fn"]) == (
        np.sum(said_same & labels), np.sum(said_same & ~labels), np.sum(~said_same & ~labels),
        np.sum(~said_same & labels))
    # 10 different-person pairs cannot measure FAR 1e-2 (one false accept is already 0.1)
    assert figures["tar_far_1e2"] is None and figures["tar_far_1e3"] is None
    assert summary["folds"] is None


def test_evaluate_threshold_option(onnx_model: Path, data_root: Path, small_pairs: Path) -> None:
    result = invoke("evaluate", "--model", onnx_model, "--data-root", data_root, "--pairs", small_pairs,
                    "--threshold", "0", "--json")
    summary = json.loads(result.stdout)
    assert summary["threshold_source"] == "option"
    assert (summary["metrics"]["tp"], summary["metrics"]["fp"], summary["metrics"]["accuracy"]) == (10, 10, 0.5)


def test_ten_fold_file_gets_fold_rows_and_the_mean(onnx_model: Path, data_root: Path, tenfold_pairs: Path,
                                                   tmp_path: Path) -> None:
    scores_csv = tmp_path / "scores.csv"
    result = invoke("evaluate", "--model", onnx_model, "--data-root", data_root, "--pairs", tenfold_pairs,
                    "--scores", scores_csv)
    assert result.exit_code == 0, result.stderr
    table = result.stdout.split("each threshold chosen on the other folds", 1)[1]
    fold_rows = [line for line in table.splitlines() if line.startswith("│") and line.split("│")[1].strip().isdigit()]
    assert [int(row.split("│")[1]) for row in fold_rows] == list(range(1, 11))
    assert "mean ± s.e." in table

    summary = json.loads(invoke("evaluate", "--model", onnx_model, "--data-root", data_root, "--pairs",
                                tenfold_pairs, "--json").stdout)
    rows = list(csv.DictReader(scores_csv.open()))
    scores = np.array([float(r["probability"]) for r in rows], np.float32).astype(np.float64)  # the model's float32
    labels = np.array([r["label"] == "same" for r in rows])
    folds = np.array([int(r["fold"]) for r in rows])
    assert [f["fold"] for f in summary["folds"]] == list(range(1, 11))
    assert [f["pairs"] for f in summary["folds"]] == [6] * 10
    for f in summary["folds"]:
        mine, others = folds == f["fold"], folds != f["fold"]
        t = f["threshold"]
        # the threshold is one of the best on the other nine folds, and this fold is scored at it
        candidates = np.r_[0.0, np.unique(scores[others]), 1.0 + 1e-9]
        best = max(np.mean((scores[others] >= c) == labels[others]) for c in candidates)
        assert np.mean((scores[others] >= t) == labels[others]) == pytest.approx(best)
        assert f["accuracy"] == pytest.approx(np.mean((scores[mine] >= t) == labels[mine]))
        assert f["roc_auc"] == pytest.approx(roc_auc_score(labels[mine], scores[mine]))
    accuracies = np.array([f["accuracy"] for f in summary["folds"]])
    assert summary["kfold_accuracy"]["mean"] == pytest.approx(accuracies.mean())
    assert summary["kfold_accuracy"]["stderr"] == pytest.approx(accuracies.std(ddof=1) / np.sqrt(10))


# ------------------------------------------------------------------------------------------ info


def test_info_leaves_out_the_architecture_fields_its_tower_does_not_read() -> None:
    from verify_cli.cli.info import unused_architecture

    plain = {"tower": "plain", "blocks": [2, 2], "kernels": [10, 7], "pools": [True], "batchnorm": True,
             "pooling": "avg", "patches": [1.0, 0.8], "patch_size": 64}
    assert unused_architecture(json.dumps(plain)) == ("batchnorm", "kernels", "pooling", "pools")
    assert unused_architecture(json.dumps({**plain, "patches": []})) == (
        "batchnorm", "kernels", "patch_size", "patches", "pooling", "pools")
    assert unused_architecture(json.dumps({"tower": "koch", "patches": []})) == (
        "blocks", "patch_size", "patches", "pooling")
    assert unused_architecture("not json") == ()


def test_info_shows_the_metadata_and_providers(onnx_model: Path) -> None:
    result = invoke("info", "--model", onnx_model, "--provider", "cpu")
    assert result.exit_code == 0, result.stderr
    for label in ("input", "preprocessing", "threshold", "preset", "exp9", "protocol", "restricted",
                  "validation", "parity", "available", "CPUExecutionProvider"):
        assert label in result.stdout
    threshold = runtime.Model(onnx_model, "cpu").threshold
    assert f"{threshold:.4f}" in result.stdout
    assert "kernels" in result.stdout and "pooling" not in result.stdout  # a Koch tower's fields, not a ResNet's

    data = json.loads(invoke("info", "--model", onnx_model, "--json").stdout)
    assert data["metadata"]["faceverify.threshold"] == pytest.approx(threshold)
    assert data["metadata"]["faceverify.parity"]["passed"] is True
    assert "CPUExecutionProvider" in data["available_providers"]
