"""The training stage end to end on real LFW images: smoke run, run folder, splits, resume after a stop."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from helpers import REPO

from train import checkpoint
from train.__main__ import run
from train.data import augment, photometric, split_pairs, split_people
from verify_cli.lfw import LFWRoot


def test_smoke_run_leaves_a_complete_run_folder(tiny_run: Path) -> None:
    for name in ("best.pt", "last.pt", "history.json", "summary.json", "curves.png", "roc.png"):
        assert (tiny_run / name).stat().st_size > 0, name
    best = torch.load(tiny_run / "best.pt", weights_only=True)
    assert best["format"] == checkpoint.FORMAT and 0.0 <= best["threshold"] <= 1.0
    history = json.loads((tiny_run / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert all(np.isfinite(row["train_loss"]) and 0 <= row["val_accuracy"] <= 1 for row in history)
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert summary["test"]["pairs"] == 24 and summary["threshold"] == best["threshold"]
    assert not list(tiny_run.glob("*.tmp"))


def test_restricted_split_is_the_reports(data_root: Path) -> None:
    pairs = LFWRoot.open(data_root).pairs("train")
    train, val = split_pairs(pairs, 0.1, seed=0)
    assert (len(train), len(val)) == (1980, 220)
    assert not {(p.left, p.right) for p in train} & {(p.left, p.right) for p in val}
    assert split_pairs(pairs, 0.1, seed=0) == (train, val)
    assert split_pairs(pairs, 0.1, seed=1) != (train, val)


def test_unrestricted_split_holds_out_people(data_root: Path) -> None:
    people = list(LFWRoot.open(data_root).people("train"))
    train, val = split_people(people, 0.1, seed=0)
    assert len(val) == round(0.1 * len(people)) and not train & val and len(train | val) == len(people)


def test_augment_keeps_shape_and_is_seeded() -> None:
    x = torch.rand(4, 3, 32, 32)
    a = augment(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and not torch.equal(a, x)
    assert torch.equal(a, augment(x, torch.Generator().manual_seed(1)))


def test_photometric_jitter_is_seeded_and_greys_some_images() -> None:
    x = torch.rand(64, 3, 16, 16) * 2 - 1
    a = photometric(x, torch.Generator().manual_seed(1), 0.3)
    assert a.shape == x.shape and not torch.equal(a, x)
    assert torch.equal(a, photometric(x, torch.Generator().manual_seed(1), 0.3))
    grey = [bool(torch.allclose(img[0], img[1]) and torch.allclose(img[1], img[2])) for img in a]
    assert 0 < sum(grey) < 64


def _history(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in json.loads((run_dir / "history.json").read_text())]


def test_resume_repeats_an_unbroken_run(data_root: Path, tmp_path: Path) -> None:
    run("exp9", data_root, tmp_path / "whole", resume=False, epochs=2, seed=3, dry_run=True, threads=0)
    run("exp9", data_root, tmp_path / "broken", resume=False, epochs=1, seed=3, dry_run=True, threads=0)
    assert len(_history(tmp_path / "broken")) == 1
    run("exp9", data_root, tmp_path / "broken", resume=True, epochs=2, seed=3, dry_run=True, threads=0)
    assert _history(tmp_path / "broken") == _history(tmp_path / "whole")
    whole = json.loads((tmp_path / "whole" / "summary.json").read_text())
    broken = json.loads((tmp_path / "broken" / "summary.json").read_text())
    assert whole["test"] == broken["test"] and whole["threshold"] == broken["threshold"]


def _train_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "train", *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


def test_bad_input_gives_one_line_and_exit_2(data_root: Path, tmp_path: Path) -> None:
    cases = [
        (["--preset", "nope", "--data-root", str(data_root)], "unknown preset"),
        (["--preset", "exp9", "--data-root", str(tmp_path)], "LFW images not found"),
    ]
    run_dir = tmp_path / "corrupt"
    run_dir.mkdir()
    (run_dir / "last.pt").write_bytes(b"\x00garbage" * 100)
    cases.append((["--preset", "exp9", "--data-root", str(data_root), "--run-dir", str(run_dir), "--resume",
                   "--dry-run"], "not a readable checkpoint"))
    for args, message in cases:
        result = _train_cli(*args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (args, result.stderr)
        assert message in lines[-1] and "Traceback" not in result.stderr, (args, result.stderr)
