"""Preprocessing: shape, range, crop and determinism on real images; bad files (unusual modes: test_reliability)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import write_image
from PIL import Image

from verify_cli.errors import FaceverifyError
from verify_cli.preprocess import Preprocess, load_image, load_input, load_prepared, normalize


def test_real_image_shape_range_determinism(lfw_images: list[Path]) -> None:
    for spec in (Preprocess(), Preprocess(size=64, channels=3, crop=0.5, mean=0.5, std=0.5)):
        x = load_input(lfw_images[0], spec)
        assert x.shape == (spec.channels, spec.size, spec.size) and x.dtype == np.float32
        low, high = (0 - spec.mean) / spec.std, (1 - spec.mean) / spec.std
        assert low <= x.min() < x.max() <= high
        assert np.array_equal(x, load_input(lfw_images[0], spec))
        assert not np.array_equal(x, load_input(lfw_images[1], spec))


def test_crop_keeps_the_centre(tmp_path: Path) -> None:
    arr = np.zeros((100, 100), np.uint8)
    arr[20:80, 20:80] = 200  # a bright centre square a little larger than the half-side crop
    Image.fromarray(arr).save(tmp_path / "centre.png")
    full = load_prepared(tmp_path / "centre.png", Preprocess(size=20, crop=1.0))
    centre = load_prepared(tmp_path / "centre.png", Preprocess(size=20, crop=0.5))
    assert centre.min() == 200 and full[0, 0, 0] == 0 and full[0, 10, 10] == 200 and full.min() == 0


def test_normalize_matches_formula() -> None:
    spec = Preprocess(mean=0.5, std=0.25)
    pixels = np.array([[[0, 128, 255]]], np.uint8)
    assert np.allclose(normalize(pixels, spec), (pixels / 255.0 - 0.5) / 0.25, atol=1e-6)


@pytest.mark.parametrize("kind", ["missing", "directory", "empty", "random-bytes", "truncated-jpeg", "bomb"])
def test_bad_files_raise_one_line(tmp_path: Path, lfw_images: list[Path], kind: str) -> None:
    path = tmp_path / f"{kind}.jpg"
    if kind != "missing":
        write_image(kind, path, lfw_images[0])
    with pytest.raises(FaceverifyError) as err:
        load_image(path)
    assert str(path) in err.value.message and "\n" not in err.value.message
