"""`faceverify embed`: the numbers, the formula that turns two of them into compare's probability, the three
output forms agreeing, every face of a group photo, and bad requests in one line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_one_error_line, invoke
from test_cli_faces import photo

from verify_cli.gallery import model_identity
from verify_cli.runtime import bundled_model_path


def _embedded(*args: object) -> dict:
    result = invoke("embed", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_cosine_and_the_printed_formula_give_compares_probability(lfw_images: list[Path], precision: str) -> None:
    a, b = lfw_images[0], lfw_images[2]
    got = _embedded(a, b, "--precision", precision, "--provider", "cpu")
    assert got["embedding_size"] == 128 and got["precision"] == precision
    assert got["model_identity"] == model_identity(got["model"])
    (ea, eb) = (np.array(e["embedding"]) for e in got["embeddings"])
    assert [e["image"] for e in got["embeddings"]] == [str(a), str(b)]
    assert all(e["face"]["faces_found"] == 1 and e["face"]["face_used"] == 0 for e in got["embeddings"])
    cos = ea @ eb / np.linalg.norm(ea) / np.linalg.norm(eb)
    formula = got["compare"]
    p = 1 / (1 + np.exp(-(formula["scale"] * cos + formula["bias"])))
    compared = json.loads(invoke("compare", a, b, "--precision", precision, "--provider", "cpu", "--json").stdout)
    assert p == pytest.approx(compared["probability"], abs=1e-5)
    assert formula["threshold"] == compared["threshold"] and "sigmoid(" in formula["probability"]


def test_json_csv_and_npy_hold_the_same_numbers(lfw_images: list[Path], tmp_path: Path) -> None:
    images = lfw_images[:3]
    wanted = np.array([e["embedding"] for e in _embedded(*images, "--no-detect")["embeddings"]])
    out = tmp_path / "e.npy"
    result = invoke("embed", *images, "--no-detect", "--npy", out)
    assert result.exit_code == 0 and f"wrote 3 x 128 to {out}" in result.stdout
    assert np.load(out).dtype == np.float32 and np.allclose(np.load(out), wanted, atol=1e-6)
    rows = list(csv.reader(io.StringIO(invoke("embed", *images, "--no-detect", "--csv").stdout)))
    assert rows[0][:3] == ["image", "face", "e0"] and len(rows[0]) == 130 and [r[0] for r in rows[1:]] == list(
        map(str, images))
    assert np.allclose(np.array(rows[1:])[:, 2:].astype(float), wanted, atol=1e-6)
    fp32 = _embedded(images[0], "--precision", "fp32", "--no-detect")
    assert fp32["model_identity"] == model_identity(bundled_model_path()) and fp32["model"] == str(bundled_model_path())


def test_all_faces_of_a_group_photo_largest_first(lfw_images: list[Path], tmp_path: Path) -> None:
    group = photo(tmp_path / "group.jpg", [(lfw_images[3], 420, 0.0, (40, 150)), (lfw_images[0], 260, 0.0, (620, 60))])
    every = _embedded(group, "--all-faces")["embeddings"]
    assert [(e["face"]["face_used"], e["face"]["faces_found"]) for e in every] == [(0, 2), (1, 2)]
    chosen = _embedded(group, "--face", "1")["embeddings"]
    assert np.allclose(chosen[0]["embedding"], every[1]["embedding"], atol=1e-6)


@pytest.mark.parametrize(("args", "words"), [
    (("--json", "--csv"), "choose one output"),
    (("--all-faces", "--no-detect"), "--all-faces takes every detected face"),
    (("--npy", "."), "is a directory"),
])
def test_bad_requests_are_one_line(args: tuple[str, ...], words: str, lfw_images: list[Path]) -> None:
    assert_one_error_line(invoke("embed", lfw_images[0], *args), words)


def test_a_missing_or_faceless_photo_is_one_line(tmp_path: Path, lfw_images: list[Path]) -> None:
    assert_one_error_line(invoke("embed", lfw_images[0], tmp_path / "nope.jpg"), "nope.jpg: no such file")
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.new("RGB", (300, 300), (90, 90, 90)).save(blank)
    assert_one_error_line(invoke("embed", blank), "no face found")
    assert list(tmp_path.iterdir()) == [blank]
