"""Reliability: bad input through every entry point, unusual images, interrupted training, files that could run code.

The bad-input matrix fills what test_cli_errors.py, test_export.py and test_train.py do not already cover:
for each entry point (train, export, compare, evaluate, info) one table of cases, each an input a user
could plausibly give, the words the one `error:` line must hold, and exit code 2 with no traceback.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import pickle
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from helpers import REPO, assert_one_error_line, bad_model, exif_rotated, invoke, rgb_of, write_image
from onnx import TensorProto, helper
from PIL import Image
from typer.testing import CliRunner, Result

from train import checkpoint
from train.config import get_preset
from verify_cli import modelmeta
from verify_cli.errors import EXIT_ERROR, FaceverifyError
from verify_cli.preprocess import Preprocess, load_input

IMAGES = "lfw-py/lfw-deepfunneled"
PEOPLE = [("Aaron_Peirsol", 1), ("Aaron_Peirsol", 2), ("AJ_Cook", 1), ("Marsha_Thomason", 1)]
GOOD_PAIRS = "1\nAaron_Peirsol\t1\t2\nAJ_Cook\t1\tMarsha_Thomason\t1\n"


# ------------------------------------------------------------------------------------------------ helpers


def small_root(tmp_path: Path, data_root: Path, train: str | bytes | None = GOOD_PAIRS,
               test: str | bytes | None = GOOD_PAIRS) -> Path:
    """An LFW data root of four real images and the given View 1 pairs files (None: file left out)."""
    root = tmp_path / "lfw"
    for name, number in PEOPLE:
        relpath = f"{name}/{name}_{number:04d}.jpg"
        (root / IMAGES / name).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_root / IMAGES / relpath, root / IMAGES / relpath)
    for text, filename in ((train, "pairsDevTrain.txt"), (test, "pairsDevTest.txt")):
        if text is not None:
            (root / "lfw-py" / filename).write_bytes(text.encode() if isinstance(text, str) else text)
    return root



def assert_error_last(result: Result, contains: str, alone: bool = False) -> None:
    """For `python -m train` / `python -m export`: exit 2, exactly one `error:` line and it is the last line of
    stderr (training may print its progress lines first), no traceback; `alone`: nothing else on stderr."""
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == EXIT_ERROR, (result.exit_code, result.stderr, result.exception)
    assert lines and lines[-1].startswith("error: "), result.stderr
    assert sum(line.startswith("error:") for line in lines) == 1 and "Traceback" not in result.stderr
    assert not alone or len(lines) == 1, result.stderr
    assert contains in lines[-1], (contains, lines[-1])


@pytest.fixture
def keep_signal_handlers() -> Iterator[None]:
    """train and export install SIGINT/SIGTERM handlers when run in-process: put pytest's back afterwards."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


class CodeInPickle:
    """Unpickling this runs code: it creates `marker`. weights_only loading must refuse it, running nothing."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str]]:
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def code_checkpoint(path: Path, marker: Path, zipped: bool) -> Path:
    """A checkpoint-shaped file that runs code when unpickled: torch's zip format or a plain pickle."""
    payload = {"format": checkpoint.FORMAT, "config": {}, "model": CodeInPickle(marker)}
    if zipped:
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    return path


def assert_payload_was_live(path: Path, marker: Path) -> None:
    """The control: loading the same file the unsafe way does run the code, so refusing it was the guard."""
    assert not marker.exists()
    with contextlib.suppress(RuntimeError):  # a plain pickle runs its code, then fails torch's magic-number check
        torch.load(path, weights_only=False)
    assert marker.exists()
    marker.unlink()


# ------------------------------------------------------------------------------------------------ train

TRAIN_CASES = {  # case: words its error line must hold (test_train.py has unknown preset, a data root without
    # images and a garbage last.pt)
    "data-root-missing": "LFW images not found",
    "data-root-is-a-file": "LFW images not found",
    "pairs-file-missing": "pairsDevTrain.txt: no such file",
    "pairs-malformed-line": "pairsDevTrain.txt:3: image number 'one' is not an integer",
    "pairs-wrong-count": "pairsDevTrain.txt: header announces 4 pair lines (1 fold(s) x 2 x 2), found 2",
    "pairs-not-text": "pairsDevTrain.txt: not a text file",
    "pairs-unknown-person": "Nobody_Known/Nobody_Known_0001.jpg: no such file",
    "pairs-missing-image": "Aaron_Peirsol/Aaron_Peirsol_0099.jpg: no such file",
    "test-pairs-malformed": "pairsDevTest.txt:2: matched pair needs",
    "image-truncated": "Aaron_Peirsol_0002.jpg: corrupt or truncated image",
    "image-random-bytes": "AJ_Cook_0001.jpg: not an image Pillow can read",
    "run-dir-is-a-file": "is a file; --run-dir names the run folder",
    "run-dir-holds-a-run": "already holds a run; pass --resume",
    "resume-last-pt-empty": "last.pt: empty checkpoint file",
    "resume-last-pt-directory": "last.pt: is a directory",
    "resume-last-pt-truncated": "last.pt: not a readable checkpoint",
    "resume-last-pt-runs-code": "last.pt: not a readable checkpoint",
    "resume-last-pt-plain-pickle-runs-code": "last.pt: not a readable checkpoint",
    "resume-last-pt-not-ours": "last.pt: not a faceverify checkpoint",
    "resume-last-pt-missing-state": "last.pt: not a resumable checkpoint (RuntimeError",
    "resume-other-preset": "last.pt: was written by a different configuration",
}


@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_train_bad_input(case: str, data_root: Path, tiny_run: Path, tmp_path: Path, keep_signal_handlers: None) -> None:
    from train.__main__ import app

    preset, resume = "exp9", False
    root = small_root(tmp_path, data_root)
    images = root / IMAGES
    run_dir = tmp_path / "run"
    marker = tmp_path / "code-ran"
    if case == "data-root-missing":
        root = tmp_path / "nowhere"
    elif case == "data-root-is-a-file":
        root = tmp_path / "lfw.zip"
        root.write_bytes(b"PK\x03\x04")
    elif case == "pairs-file-missing":
        (root / "lfw-py" / "pairsDevTrain.txt").unlink()
    elif case.startswith("pairs-") or case == "test-pairs-malformed":
        text = {
            "pairs-malformed-line": "1\nAaron_Peirsol\t1\t2\nAJ_Cook\tone\tMarsha_Thomason\t1\n",
            "pairs-wrong-count": "2\nAaron_Peirsol\t1\t2\nAJ_Cook\t1\tMarsha_Thomason\t1\n",
            "pairs-not-text": "1\nAaron_Peirsol\t1\t2\n\udcff\n",
            "pairs-unknown-person": "1\nAaron_Peirsol\t1\t2\nAJ_Cook\t1\tNobody_Known\t1\n",
            "pairs-missing-image": "1\nAaron_Peirsol\t1\t99\nAJ_Cook\t1\tMarsha_Thomason\t1\n",
            "test-pairs-malformed": "1\nAaron_Peirsol\t1\nAJ_Cook\t1\tMarsha_Thomason\t1\n",
        }[case]
        name = "pairsDevTest.txt" if case.startswith("test-") else "pairsDevTrain.txt"
        (root / "lfw-py" / name).write_bytes(text.encode("utf-8", "surrogateescape"))
    elif case == "image-truncated":
        target = images / "Aaron_Peirsol" / "Aaron_Peirsol_0002.jpg"
        write_image("truncated-jpeg", target, data_root / IMAGES / target.relative_to(images))
    elif case == "image-random-bytes":
        target = images / "AJ_Cook" / "AJ_Cook_0001.jpg"
        write_image("random-bytes", target, data_root / IMAGES / target.relative_to(images))
    elif case == "run-dir-is-a-file":
        run_dir.write_text("not a folder\n")
    elif case == "run-dir-holds-a-run":
        shutil.copytree(tiny_run, run_dir)
    else:  # --resume cases: the tiny run's folder (exp9, seed 0, dry run) with its last.pt replaced
        shutil.copytree(tiny_run, run_dir)
        resume = True
        last = run_dir / "last.pt"
        good = last.read_bytes()
        if case == "resume-last-pt-empty":
            last.write_bytes(b"")
        elif case == "resume-last-pt-directory":
            last.unlink()
            last.mkdir()
        elif case == "resume-last-pt-truncated":
            last.write_bytes(good[: len(good) // 2])
        elif case.endswith("runs-code"):
            code_checkpoint(last, marker, zipped="plain-pickle" not in case)
        elif case == "resume-last-pt-not-ours":
            torch.save({"state_dict": {"w": torch.zeros(3)}}, last)
        elif case == "resume-last-pt-missing-state":
            checkpoint.save({"format": checkpoint.FORMAT, "config": get_preset("exp9").as_dict(), "model": {}}, last)
        elif case == "resume-other-preset":
            preset = "exp8"
    args = ["--preset", preset, "--data-root", str(root), "--run-dir", str(run_dir), "--dry-run", "--seed", "0"]
    result = CliRunner().invoke(app, args + (["--resume"] if resume else []))
    assert_error_last(result, TRAIN_CASES[case])
    if case.endswith("runs-code"):
        assert_payload_was_live(run_dir / "last.pt", marker)
    if resume:  # nothing of the run was touched
        assert (run_dir / "best.pt").read_bytes() == (tiny_run / "best.pt").read_bytes()
    assert not list(tmp_path.rglob("*.tmp"))


# ------------------------------------------------------------------------------------------------ export

EXPORT_CASES = {  # test_export.py has a missing, random-bytes, truncated and unfinalized checkpoint
    "checkpoint-directory": "best.pt: is a directory",
    "checkpoint-empty": "best.pt: empty checkpoint file",
    "checkpoint-runs-code": "best.pt: not a readable checkpoint",
    "checkpoint-plain-pickle-runs-code": "best.pt: not a readable checkpoint",
    "checkpoint-not-ours": "best.pt: not a faceverify checkpoint",
    "checkpoint-onnx-file": "best.pt: not a readable checkpoint",
    "checkpoint-weights-of-another-network": "best.pt: checkpoint weights do not fit preset exp9",
    "checkpoint-config-unreadable": "best.pt: checkpoint configuration unreadable",
    "out-in-missing-folder": "such/faceverify.onnx: folder",
    "out-is-a-directory": "is a directory; --out names the .onnx file to write",
    "out-not-onnx": "the model file name must end in .onnx",
    "data-root-missing": "LFW images not found",
    "pairs-malformed": "pairsDevTrain.txt:3: image number 'one' is not an integer",
    "pairs-missing-image": "Aaron_Peirsol/Aaron_Peirsol_0099.jpg: no such file",
}


@pytest.mark.parametrize("case", list(EXPORT_CASES))
def test_export_bad_input(case: str, data_root: Path, tiny_run: Path, onnx_model: Path, tmp_path: Path,
                          keep_signal_handlers: None) -> None:
    from export.__main__ import app

    ckpt = tmp_path / "best.pt"
    shutil.copyfile(tiny_run / "best.pt", ckpt)
    out = tmp_path / "models" / "faceverify.onnx"
    out.parent.mkdir()
    root = data_root
    marker = tmp_path / "code-ran"
    saved = torch.load(ckpt, weights_only=True)
    if case == "checkpoint-directory":
        ckpt.unlink()
        ckpt.mkdir()
    elif case == "checkpoint-empty":
        ckpt.write_bytes(b"")
    elif case.endswith("runs-code"):
        code_checkpoint(ckpt, marker, zipped="plain-pickle" not in case)
    elif case == "checkpoint-not-ours":
        torch.save(saved["model"], ckpt)  # a bare state_dict, as many projects save
    elif case == "checkpoint-onnx-file":
        shutil.copyfile(onnx_model, ckpt)
    elif case == "checkpoint-weights-of-another-network":
        from models import build_model

        other = get_preset("exp7")
        saved["model"] = build_model(other.model, other.preprocess).state_dict()  # embedding 120, not 32
        checkpoint.save(saved, ckpt)
    elif case == "checkpoint-config-unreadable":
        saved["config"] = {**saved["config"], "model": "koch"}
        checkpoint.save(saved, ckpt)
    elif case == "out-in-missing-folder":
        out = tmp_path / "no" / "such" / "faceverify.onnx"
    elif case == "out-is-a-directory":
        out = tmp_path / "models"
    elif case == "out-not-onnx":
        out = out.with_suffix(".pt")
    elif case == "data-root-missing":
        root = tmp_path / "nowhere"
    elif case == "pairs-malformed":
        root = small_root(tmp_path, data_root, train="1\nAaron_Peirsol\t1\t2\nAJ_Cook\tone\tMarsha_Thomason\t1\n")
    elif case == "pairs-missing-image":  # parity decodes the run's validation pairs: 2 of 20, one of each class
        pairs = "10\n" + "Aaron_Peirsol\t1\t99\n" * 10 + "AJ_Cook\t1\tMarsha_Thomason\t1\n" * 10
        root = small_root(tmp_path, data_root, train=pairs)
    args = ["--checkpoint", str(ckpt), "--out", str(out), "--data-root", str(root), "--dry-run"]
    result = CliRunner().invoke(app, args)
    assert_error_last(result, EXPORT_CASES[case], alone=case != "pairs-missing-image")  # parity had started
    if case.endswith("runs-code"):
        assert_payload_was_live(ckpt, marker)
    assert list((tmp_path / "models").iterdir()) == [] and not (tmp_path / "no").exists()


@pytest.mark.slow
def test_export_process_refuses_code_in_one_line(tmp_path: Path) -> None:
    """As a real process (warnings reach stderr there, not under pytest): a plain pickle that would run code
    is one line, torch's own warning about its pickle protocol included, and the code never ran."""
    marker = tmp_path / "code-ran"
    ckpt = code_checkpoint(tmp_path / "best.pt", marker, zipped=False)
    done = subprocess.run([sys.executable, "-m", "export", "--checkpoint", str(ckpt), "--out",
                           str(tmp_path / "m.onnx")], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == EXIT_ERROR and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"error: {ckpt}: not a readable checkpoint")
    assert_payload_was_live(ckpt, marker)


# ------------------------------------------------------------------------------------------------ models


def _model_variant(kind: str, tmp_path: Path, good: Path, tiny_run: Path) -> Path:
    """ONNX files that test_cli_errors.py does not make: damaged, or well-formed but not one of ours."""
    path = tmp_path / f"{kind}.onnx"
    if kind == "truncated":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "checkpoint-given-as-model":
        shutil.copyfile(tiny_run / "best.pt", path)
    elif kind in ("wrong-input-size", "bad-threshold"):
        proto = onnx.load(str(good))
        props = {p.key: p for p in proto.metadata_props}
        if kind == "wrong-input-size":  # a real faceverify graph for 105x105 whose metadata says 64x64
            props[modelmeta.K_PREPROCESS].value = Preprocess(size=64).to_json()
        else:
            props[modelmeta.K_THRESHOLD].value = "high"
        onnx.save(proto, str(path))
    elif kind == "foreign-graph-with-our-metadata":
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 105, 105])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1, 105, 105])
        graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [x], [y])
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        proto.ir_version = 8
        helper.set_model_props(proto, {p.key: p.value for p in onnx.load(str(good)).metadata_props})
        onnx.save(proto, str(path))
    else:
        return bad_model(kind, tmp_path, good)  # test_cli_errors.py's kinds, for evaluate
    return path


NEW_MODELS = {
    "truncated": "not a loadable ONNX model",
    "checkpoint-given-as-model": "not a loadable ONNX model",
    "wrong-input-size": "does not match its preprocessing (1x64x64)",
    "bad-threshold": "invalid faceverify metadata",
    "foreign-graph-with-our-metadata": "are not faceverify's",
}
# test_cli_errors.py runs these through compare and info; here they go through evaluate as well
OLD_MODELS = {"missing": "no such model file", "directory": "is a directory", "empty": "empty model file",
              "random-bytes": "not a loadable ONNX model", "no-metadata": "not a faceverify model",
              "future-format": "not supported"}


@pytest.mark.parametrize(
    ("command", "kind"),
    [(c, k) for c in ("compare", "evaluate", "info") for k in NEW_MODELS] + [("evaluate", k) for k in OLD_MODELS],
)
def test_bad_model_everywhere(command: str, kind: str, onnx_model: Path, tiny_run: Path, lfw_images: list[Path],
                              data_root: Path, tmp_path: Path) -> None:
    model = _model_variant(kind, tmp_path, onnx_model, tiny_run)
    if command == "compare":
        args = ["compare", lfw_images[0], lfw_images[2]]
    elif command == "evaluate":
        args = ["evaluate", "--data-root", small_root(tmp_path, data_root), "--pairs", "test"]
    else:
        args = ["info"]
    assert_one_error_line(invoke(*args, "--model", model), {**NEW_MODELS, **OLD_MODELS}[kind])


# ------------------------------------------------------------------------------------------------ images

BAD_IMAGES = {  # test_cli_errors.py sends missing/directory/empty/random/truncated/bomb-header through compare
    "text-file": "not an image Pillow can read",
    "bomb": "image too large (9000x5000 pixels",
    "directory": "is a directory",
    "empty": "empty file",
    "random-bytes": "not an image Pillow can read",
    "truncated-jpeg": "corrupt or truncated image",
    "bomb-header": "image too large (possible decompression bomb)",  # Pillow's own limit stops this one
}
UNUSUAL_IMAGES = ["rgba", "gray-alpha", "palette", "cmyk", "gray16", "exif-rotated", "1x1", "gif"]


@pytest.mark.parametrize("kind", ["text-file", "bomb"])
def test_compare_bad_image(kind: str, onnx_model: Path, lfw_images: list[Path], tmp_path: Path) -> None:
    bad = write_image(kind, tmp_path / f"{kind}.jpg", lfw_images[0])
    assert_one_error_line(invoke("compare", bad, lfw_images[1], "--model", onnx_model), f"{bad}: {BAD_IMAGES[kind]}")


@pytest.mark.parametrize("kind", UNUSUAL_IMAGES)
def test_compare_unusual_image_works(kind: str, onnx_model: Path, lfw_images: list[Path], tmp_path: Path) -> None:
    """Every mode is decoded and its face found; a single pixel holds no face, but the fixed crop takes it."""
    image = write_image(kind, tmp_path / f"{kind}.img", lfw_images[0])
    no_detect = []
    if kind == "1x1":
        assert_one_error_line(invoke("compare", image, lfw_images[1], "--model", onnx_model), f"{image}: no face found")
        no_detect = ["--no-detect"]
    result = invoke("compare", image, lfw_images[1], "--model", onnx_model, "--json", *no_detect)
    assert result.exit_code in (0, 1) and result.stderr == "", (result.exit_code, result.stderr)
    record = json.loads(result.stdout)
    assert 0.0 <= record["probability"] <= 1.0 and record["left"] == str(image)
    assert record["same"] == (result.exit_code == 0)


@pytest.mark.parametrize("kind", list(BAD_IMAGES) + UNUSUAL_IMAGES)
def test_evaluate_image_in_data_root(kind: str, onnx_model: Path, data_root: Path, tmp_path: Path) -> None:
    """An LFW image replaced by something else: bad ones stop evaluate with one line naming the file, unusual
    but valid ones are scored like the rest."""
    root = small_root(tmp_path, data_root)
    target = root / IMAGES / "Marsha_Thomason" / "Marsha_Thomason_0001.jpg"
    original = tmp_path / "original.jpg"
    shutil.move(target, original)
    write_image(kind, target, original)
    out = tmp_path / "out"
    out.mkdir()
    result = invoke("evaluate", "--model", onnx_model, "--data-root", root, "--pairs", "test", "--json",
                    "--scores", out / "scores.csv", *(["--no-detect"] if kind == "1x1" else []))
    if kind in BAD_IMAGES:
        expected = BAD_IMAGES[kind] if kind != "directory" else "image Marsha_Thomason/Marsha_Thomason_0001.jpg not found"
        assert_one_error_line(result, expected)
        assert "Marsha_Thomason_0001.jpg" in result.stderr and list(out.iterdir()) == []
    else:
        assert result.exit_code == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["metrics"]["pairs"] == 2 and (out / "scores.csv").read_text().count("\n") == 3


# ------------------------------------------------------------------------------------------------ pair lists

EVALUATE_PAIRS = {  # beyond test_cli_errors.py's malformed line, wrong count, missing image, invalid UTF-8
    "unknown-person": ("1\nAaron_Peirsol\t1\t2\nAJ_Cook\t1\tNobody_Known\t1\n",
                       ":3: image Nobody_Known/Nobody_Known_0001.jpg not found"),
    "empty-file": ("", "empty file"),
    "header-not-a-number": ("one\nAaron_Peirsol\t1\t2\nAJ_Cook\t1\tMarsha_Thomason\t1\n",
                            ":1: pair count 'one' is not an integer"),
    "mismatched-line-short": ("1\nAaron_Peirsol\t1\t2\nAJ_Cook\t1\tMarsha_Thomason\n", ":3: mismatched pair needs"),
    "image-number-zero": ("1\nAaron_Peirsol\t0\t2\nAJ_Cook\t1\tMarsha_Thomason\t1\n", ":2: image number 0 out of range"),
    "path-in-name": ("1\n../../etc\t1\t2\nAJ_Cook\t1\tMarsha_Thomason\t1\n", ":2: invalid person name"),
    "ten-fold-wrong-count": ("10\t1\nAaron_Peirsol\t1\t2\nAJ_Cook\t1\tMarsha_Thomason\t1\n",
                             "header announces 20 pair lines (10 fold(s) x 2 x 1), found 2"),
    "zero-pairs": ("0\n", ":1: header '0' announces no pairs"),
    "directory": (None, "is a directory, expected a text file"),
    "missing": (None, "no such file"),
}


@pytest.mark.parametrize("kind", list(EVALUATE_PAIRS))
def test_evaluate_bad_pairs_file(kind: str, onnx_model: Path, data_root: Path, tmp_path: Path) -> None:
    text, expected = EVALUATE_PAIRS[kind]
    pairs = tmp_path / "pairs.txt"
    if kind == "directory":
        pairs.mkdir()
    elif text is not None:
        pairs.write_text(text)
    assert_one_error_line(invoke("evaluate", "--model", onnx_model, "--data-root", data_root, "--pairs", pairs),
                          f"{pairs}{expected}" if expected.startswith(":") else expected)


def test_evaluate_data_root_gaps(onnx_model: Path, data_root: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "lfw.tgz"
    a_file.write_bytes(b"\x1f\x8b")
    assert_one_error_line(invoke("evaluate", "--model", onnx_model, "--data-root", a_file), "LFW images not found")
    no_test_pairs = small_root(tmp_path, data_root, test=None)
    assert_one_error_line(invoke("evaluate", "--model", onnx_model, "--data-root", no_test_pairs),
                          "pairsDevTest.txt: no such file; prepare it with `make data`")


COMPARE_LISTS = {  # beyond test_cli_errors.py's short line and missing image
    "missing": (None, "no such file"),
    "directory": (None, "is a directory, expected a list of image pairs"),
    "empty": ("", "no image pairs in the list"),
    "only-comments": ("# nothing here\n\n", "no image pairs in the list"),
    "not-utf8": (b"a.jpg,\xff.jpg\n", "not a text file (invalid UTF-8)"),
    "three-fields": ("IMG0,IMG1,IMG2\n", ":1: expected two image paths"),
    "bad-image": ("IMG0,BAD\n", "random-bytes.jpg: not an image Pillow can read"),
}


@pytest.mark.parametrize("kind", list(COMPARE_LISTS))
def test_compare_bad_pairs_list(kind: str, onnx_model: Path, lfw_images: list[Path], tmp_path: Path) -> None:
    content, expected = COMPARE_LISTS[kind]
    listing = tmp_path / "list.csv"
    bad = write_image("random-bytes", tmp_path / "random-bytes.jpg", lfw_images[0])
    if kind == "directory":
        listing.mkdir()
    elif isinstance(content, bytes):
        listing.write_bytes(content)
    elif content is not None:
        for i, image in enumerate(lfw_images[:3]):
            content = content.replace(f"IMG{i}", str(image))
        listing.write_text(content.replace("BAD", str(bad)))
    out = tmp_path / "scores.csv"
    result = invoke("compare", "--pairs-file", listing, "--model", onnx_model, "--out", out)
    assert_one_error_line(result, expected)
    assert not out.exists()


# ------------------------------------------------------------------------------------------------ preprocessing


@pytest.mark.parametrize("spec", [Preprocess(), Preprocess(size=64, channels=3, crop=0.5, mean=0.5, std=0.5)],
                         ids=["gray105", "rgb64"])
def test_unusual_images_preprocess_like_plain_rgb(spec: Preprocess, lfw_images: list[Path], tmp_path: Path) -> None:
    """The model input (load_input, float) of each variant of a real face against the plain RGB file's.

    Differences are measured in grey levels (1/255 of the input range before standardising):
    - lossless variants (opaque RGBA/LA PNG, CMYK TIFF, 16-bit PNG of the 8-bit grey values x 257, an
      EXIF-rotated PNG) must be identical: each conversion is an exact inverse of how the file was made;
    - JPEG re-encodings (CMYK, EXIF-rotated) at quality 95 may differ by JPEG's own rounding: a mean under
      one grey level and no pixel beyond 8 (a plain RGB JPEG at the same quality measures ~0.3 / 4);
    - a 256-colour palette may differ by its quantisation: a mean under 3 grey levels (measured 0.8-1.9).
    The controls show the tolerances have teeth: the rotated file read without its EXIF, the negative of the
    face (what a CMYK file read with inverted channels looks like) and another person's face are all more than
    10 grey levels away on average.
    """
    source = lfw_images[0]
    rgb = rgb_of(source)
    rgb.save(tmp_path / "plain.png")
    rgb.convert("L").save(tmp_path / "gray.png")

    def levels(path: Path, reference: str = "plain.png") -> tuple[float, float]:
        diff = np.abs(load_input(path, spec) - load_input(tmp_path / reference, spec)) * spec.std * 255
        return float(diff.mean()), float(diff.max())

    stored, exif = exif_rotated(rgb)
    stored.save(tmp_path / "exif.png", exif=exif)
    rgb.convert("CMYK").save(tmp_path / "cmyk.tif")
    lossless = {"rgba": "plain.png", "gray-alpha": "gray.png", "gray16": "gray.png"}
    for kind, reference in lossless.items():
        assert levels(write_image(kind, tmp_path / f"{kind}.png", source), reference) == (0.0, 0.0), kind
    assert levels(tmp_path / "exif.png") == (0.0, 0.0)
    assert levels(tmp_path / "cmyk.tif") == (0.0, 0.0)
    for kind in ("cmyk", "exif-rotated"):
        mean, top = levels(write_image(kind, tmp_path / f"{kind}.jpg", source))
        assert mean < 1.0 and top <= 8, (kind, mean, top)
    mean, _ = levels(write_image("palette", tmp_path / "palette.png", source))
    assert mean < 3.0, mean

    stored.save(tmp_path / "no-exif.png")
    assert levels(tmp_path / "no-exif.png")[0] > 10
    Image.fromarray(255 - np.asarray(rgb)).save(tmp_path / "negative.png")
    assert levels(tmp_path / "negative.png")[0] > 10
    assert levels(lfw_images[3])[0] > 10

    one = load_input(write_image("1x1", tmp_path / "1x1.png", source), spec)
    value = np.asarray(Image.new("RGB", (1, 1), (10, 20, 30)).convert(spec.mode), np.float32).reshape(-1)
    expected = (value[:, None, None] / np.float32(255) - spec.mean) / spec.std
    assert one.shape == (spec.channels, spec.size, spec.size) and np.array_equal(one, np.broadcast_to(expected, one.shape))


def test_transparent_pixels_become_black(tmp_path: Path) -> None:
    """Alpha is composited on black, the documented rule, so a cut-out face keeps no hidden colour."""
    arr = np.zeros((20, 20, 4), np.uint8)
    arr[..., :3] = 200
    arr[:, 10:, 3] = 255  # left half fully transparent (its colour is 200 but must not show)
    Image.fromarray(arr, "RGBA").save(tmp_path / "cutout.png")
    x = load_input(tmp_path / "cutout.png", Preprocess(size=20, channels=3))
    assert np.all(x[:, :, :9] == 0) and np.allclose(x[:, :, 11:], 200 / 255)


# ------------------------------------------------------------------------------------------------ interrupts


def _history(run_dir: Path) -> list[dict]:
    rows = json.loads((run_dir / "history.json").read_text())
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def _train(run_dir: Path, data_root: Path, preset: str, *extra: str, ignore_sigint: bool = False) -> subprocess.Popen:
    """`python -m train` on a 2-epoch dry run; `ignore_sigint` starts it as `cmd &` in a script would, with
    SIGINT ignored (a child inherits an ignored signal through exec)."""
    command = [sys.executable, "-m", "train", "--preset", preset, "--dry-run", "--epochs", "2", "--seed", "0",
               "--run-dir", str(run_dir), "--data-root", str(data_root), *extra]
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if ignore_sigint else None
    try:
        return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _interrupt_after_epoch_1(run_dir: Path, data_root: Path, preset: str, signum: int,
                             ignore_sigint: bool) -> tuple[int, str]:
    """Start a 2-epoch dry run, signal it the moment epoch 1 is committed (last.pt appears): mid epoch 2."""
    process = _train(run_dir, data_root, preset, ignore_sigint=ignore_sigint)
    deadline = time.monotonic() + 180
    while not (run_dir / "last.pt").exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no epoch finished in time"
        time.sleep(0.002)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "ignore_sigint"),
                         [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
                         ids=["SIGINT", "SIGTERM", "SIGINT-started-in-background"])
def test_interrupted_training_resumes_to_the_same_result(signum: int, ignore_sigint: bool, data_root: Path,
                                                         tiny_run: Path, tmp_path: Path) -> None:
    """An interrupt mid-epoch keeps the committed epoch whole; --resume then ends exactly where an unbroken
    run with the same seed ends (tiny_run: exp9, dry run, 2 epochs, the preset's seed 0), to the last digit."""
    for preset in ("exp9", "exp1"):  # exp9's epoch lasts a few hundred ms; exp1's (Koch's net) seconds
        run_dir = tmp_path / preset
        code, stderr = _interrupt_after_epoch_1(run_dir, data_root, preset, signum, ignore_sigint)
        last = torch.load(run_dir / "last.pt", weights_only=True)
        if len(last["history"]) == 1:
            break
    else:
        pytest.fail(f"the signal did not stop epoch 2 (ignored, or the epoch too quick even for exp1): exit {code}, "
                    f"{stderr.strip().splitlines()[-1:]}")
    assert code == 130, stderr
    assert "interrupted: the last complete epoch is saved; continue with --resume" in stderr
    assert "Traceback" not in stderr and "error:" not in stderr
    assert last["format"] == checkpoint.FORMAT and last["history"][0]["epoch"] == 1
    assert len(_history(run_dir)) == 1  # history.json is written before last.pt commits the epoch
    torch.load(run_dir / "best.pt", weights_only=True)
    assert not (run_dir / "summary.json").exists()
    assert [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")] == []

    if preset == "exp9":
        reference = tiny_run
    else:
        from train.__main__ import run

        reference = tmp_path / "exp1-whole"
        run("exp1", data_root, reference, resume=False, epochs=2, seed=0, dry_run=True, threads=0)
    resumed = _train(run_dir, data_root, preset, "--resume")
    _, stderr = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, stderr
    assert "resuming" in stderr and "after epoch 1" in stderr
    assert _history(run_dir) == _history(reference)
    whole = json.loads((reference / "summary.json").read_text())
    again = json.loads((run_dir / "summary.json").read_text())
    for key in ("validation", "threshold", "epoch", "epochs_run", "train_loss"):
        assert again[key] == whole[key], key
    best_whole = torch.load(reference / "best.pt", weights_only=True)["model"]
    best_again = torch.load(run_dir / "best.pt", weights_only=True)["model"]
    assert all(torch.equal(best_again[k], best_whole[k]) for k in best_whole)
    assert [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.slow
def test_resume_before_any_committed_epoch_starts_afresh(data_root: Path, tiny_run: Path, tmp_path: Path) -> None:
    """Interrupted in epoch 1 after best.pt but before last.pt: --resume trains from scratch (no refusal)."""
    from train.__main__ import run

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copyfile(tiny_run / "best.pt", run_dir / "best.pt")
    run("exp9", data_root, run_dir, resume=True, epochs=1, seed=0, dry_run=True, threads=0)
    assert _history(run_dir) == _history(tiny_run)[:1]
    assert torch.load(run_dir / "best.pt", weights_only=True)["epoch"] == 1


# ------------------------------------------------------------------------------------------------ files that run code

UNSAFE_CALLS = {  # loaders that run code from the bytes they read, and ways to run text as code
    "pickle.load", "pickle.loads", "pickle.Unpickler", "marshal.load", "marshal.loads", "yaml.load",
    "yaml.unsafe_load", "dill.load", "dill.loads", "joblib.load", "shelve.open", "torch.jit.load",
    "torch.package.PackageImporter", "eval", "exec", "compile", "__import__",
}


def test_nothing_the_project_reads_can_run_code() -> None:
    """Every torch.load says weights_only=True; no pickle/marshal/yaml loading, eval or exec, and no
    np.load(allow_pickle=True), anywhere in the project's code (which reads every user file)."""
    loads = 0
    for package in ("verify_cli", "train", "export", "models"):
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"
                if isinstance(node, ast.ImportFrom) and node.module in ("pickle", "marshal", "dill", "torch", "yaml"):
                    assert not {a.name for a in node.names} & {"load", "loads", "Unpickler"}, where
                if not isinstance(node, ast.Call):
                    continue
                called = ast.unparse(node.func)
                keywords = {k.arg: k.value for k in node.keywords}
                assert called not in UNSAFE_CALLS, f"{where}: {called} can run code from a file"
                if called == "torch.load":
                    loads += 1
                    flag = keywords.get("weights_only")
                    assert isinstance(flag, ast.Constant) and flag.value is True, f"{where}: no weights_only=True"
                if called in ("np.load", "numpy.load"):
                    flag = keywords.get("allow_pickle")
                    assert flag is None or (isinstance(flag, ast.Constant) and flag.value is False), where
    assert loads >= 1  # the checkpoint loader was found and checked


def test_checkpoint_loader_refuses_code_in_every_form(tmp_path: Path) -> None:
    """train.checkpoint.load on payloads that run code when unpickled: refused, and nothing ran."""
    marker = tmp_path / "code-ran"
    for zipped in (True, False):
        path = code_checkpoint(tmp_path / f"evil-{zipped}.pt", marker, zipped)
        with pytest.raises(FaceverifyError, match="not a readable checkpoint"):
            checkpoint.load(path)
        assert_payload_was_live(path, marker)
    legacy = io.BytesIO()  # torch's legacy (non-zip) format carrying the same payload
    torch.save({"model": CodeInPickle(marker)}, legacy, _use_new_zipfile_serialization=False)
    (tmp_path / "legacy.pt").write_bytes(legacy.getvalue())
    with pytest.raises(FaceverifyError, match="not a readable checkpoint"):
        checkpoint.load(tmp_path / "legacy.pt")
    assert not marker.exists()
