"""Training on your own identities (`python -m train --data imagefolder:PATH`): layouts, and a run end to end.

The folders are made of real LFW DevTrain images, linked (never copied) into a temporary folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import onnx
import pytest
from helpers import assert_one_error_line, invoke
from typer.testing import CliRunner, Result

from train.__main__ import app
from train.folder import ImageFolder
from verify_cli.errors import FaceverifyError
from verify_cli.lfw import LFWRoot


def _train(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def _people_folder(data_root: Path, root: Path, people: int = 30, singles: int = 4) -> Path:
    """`people` DevTrain people with 3+ images (up to 5 each) and `singles` one-image people, linked."""
    lfw = LFWRoot.open(data_root)
    counts = lfw.people("train")
    names = [n for n, c in sorted(counts.items()) if c >= 3][:people]
    names += [n for n, c in sorted(counts.items()) if c == 1][:singles]
    for name in names:
        (root / name).mkdir(parents=True)
        for rel in lfw.person_images(name, min(counts[name], 5)):
            os.symlink(lfw.image(rel).resolve(), root / rel)
    return root


def test_layout_is_read_as_people_and_their_images(tmp_path: Path) -> None:
    for rel in ("ann/1.jpg", "ann/2.PNG", "bob/x.jpeg", "bob/notes.txt", ".hidden/1.jpg", "empty/.keep"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    folder = ImageFolder.open(tmp_path)
    assert folder.people == {"ann": ["ann/1.jpg", "ann/2.PNG"], "bob": ["bob/x.jpeg"]}
    assert "1 people with one image are kept" in folder.describe()


@pytest.mark.parametrize("layout, message", [
    ({}, "no person folders with images"),
    ({"a.jpg": 1, "b.jpg": 1}, "it holds 2 images directly"),
    ({"ann/1.jpg": 1, "ann/2.jpg": 1}, "1 people, none with two images or fewer than two people"),
    ({"ann/1.jpg": 1, "bob/1.jpg": 1}, "2 people, none with two images"),
])
def test_a_layout_that_cannot_train_is_one_error_line_and_exit_2(layout: dict[str, int], message: str,
                                                                 tmp_path: Path) -> None:
    root = tmp_path / "people"
    root.mkdir()
    for rel in layout:
        (root / rel).parent.mkdir(exist_ok=True)
        (root / rel).write_bytes(b"")
    with pytest.raises(FaceverifyError, match=message):
        ImageFolder.open(root)
    assert_one_error_line(_train("--data", f"imagefolder:{root}", "--run-dir", tmp_path / "run"), message)
    assert not (tmp_path / "run").exists()


def test_folder_options_that_do_not_go_together_are_one_error_line(tmp_path: Path) -> None:
    assert_one_error_line(_train("--data", f"imagefolder:{tmp_path / 'missing'}"), "no such folder")
    assert_one_error_line(_train("--data", "folder:x"), "--data must be lfw or imagefolder:PATH")
    assert_one_error_line(_train("--data", f"imagefolder:{tmp_path}", "--report-test"), "scores LFW's DevTest")
    assert_one_error_line(_train("--data", f"imagefolder:{tmp_path}", "--preset", "exp9"),
                          "choose an unrestricted preset")


def test_an_unreadable_image_is_one_error_line(data_root: Path, tmp_path: Path) -> None:
    root = _people_folder(data_root, tmp_path / "people", people=24, singles=0)
    broken = next(root.iterdir()) / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    result = _train("--data", f"imagefolder:{root}", "--run-dir", tmp_path / "run", "--dry-run", "--threads", "1")
    # the run's own lines (preset, folder) come first; then one error line naming the file, no traceback
    lines = result.stderr.splitlines()
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert [line for line in lines if line.startswith("error: ")] == lines[-1:] and "broken.jpg" in lines[-1]
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_an_image_folder_trains_exports_and_serves_end_to_end(data_root: Path, tmp_path: Path) -> None:
    from export.config import ExportConfig
    from export.pipeline import export_model

    root = _people_folder(data_root, tmp_path / "people")
    run_dir = tmp_path / "run"
    result = _train("--data", f"imagefolder:{root}", "--run-dir", run_dir, "--dry-run", "--threads", "1")
    assert result.exit_code == 0, result.output
    assert "4 people with one image are kept" in result.output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["faces"]["mode"] == "aligned" and summary["validation"]["pairs"] > 0
    model = export_model(run_dir / "best.pt", tmp_path / "mine.onnx", tmp_path / "no-lfw-needed",
                         ExportConfig(dry_run=True)).model_path
    training = json.loads(next(p.value for p in onnx.load(str(model)).metadata_props
                               if p.key == "faceverify.training"))
    assert training["data"] == f"imagefolder:{root.resolve()}"  # what it was trained on
    a, b = sorted(next(p for p in root.iterdir() if len(list(p.iterdir())) >= 2).iterdir())[:2]
    scored = invoke("compare", a, b, "--model", model, "--json")
    assert scored.exit_code in (0, 1), scored.stderr
    assert json.loads(scored.stdout)["model"].endswith(".onnx") and 0 <= json.loads(scored.stdout)["probability"] <= 1
    evaluated = invoke("evaluate", "--model", model, "--data-root", data_root, "--no-detect", "--json",
                       "--precision", "fp32")
    assert evaluated.exit_code == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["metrics"]["pairs"] == 1000  # served exactly like an LFW model
