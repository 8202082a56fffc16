"""Preprocessing: shape, range and determinism on real images; unusual modes; bad files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
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


def _save(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


def test_unusual_modes_match_rgb(tmp_path: Path, lfw_images: list[Path]) -> None:
    spec = Preprocess(size=64, channels=3, crop=0.5)
    rgb = Image.open(lfw_images[0]).convert("RGB")
    reference = load_prepared(_save(rgb, tmp_path / "ref.png"), spec).astype(int)
    rgba = rgb.convert("RGBA")
    cmyk = rgb.convert("CMYK")
    variants = {
        "rgba.png": (rgba, {}),
        "cmyk.jpg": (cmyk, {"quality": 100}),
        "palette.png": (rgb.quantize(256), {}),
    }
    for name, (img, kw) in variants.items():
        got = load_prepared(_save(img, tmp_path / name, **kw), spec).astype(int)
        assert got.shape == reference.shape
        assert np.abs(got - reference).mean() < 12, name
    rotated = rgb.rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # the stored image is turned a quarter left; EXIF says to turn it right
    _save(rotated, tmp_path / "exif.jpg", exif=exif, quality=100)
    upright = load_prepared(tmp_path / "exif.jpg", spec).astype(int)
    assert np.abs(upright - reference).mean() < 6
    gray16 = Image.fromarray(np.asarray(rgb.convert("L"), np.uint16) * 257)
    assert gray16.mode.startswith("I;16")
    got16 = load_prepared(_save(gray16, tmp_path / "gray16.png"), Preprocess(size=64, crop=0.5)).astype(int)
    ref8 = load_prepared(tmp_path / "ref.png", Preprocess(size=64, crop=0.5)).astype(int)
    assert np.abs(got16 - ref8).max() <= 1
    tiny = load_prepared(_save(Image.new("RGB", (1, 1), (10, 20, 30)), tmp_path / "1x1.png"), spec)
    assert tiny.shape == (3, 64, 64) and tiny[:, 0, 0].tolist() == [10, 20, 30]


def test_normalize_matches_formula() -> None:
    spec = Preprocess(mean=0.5, std=0.25)
    pixels = np.array([[[0, 128, 255]]], np.uint8)
    assert np.allclose(normalize(pixels, spec), (pixels / 255.0 - 0.5) / 0.25, atol=1e-6)


@pytest.mark.parametrize("kind", ["missing", "directory", "empty", "random", "truncated", "huge"])
def test_bad_files_raise_one_line(tmp_path: Path, lfw_images: list[Path], kind: str) -> None:
    path = tmp_path / f"{kind}.jpg"
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "truncated":
        path.write_bytes(lfw_images[0].read_bytes()[:3000])
    elif kind == "huge":
        buffer = io.BytesIO()
        Image.new("L", (10000, 10000)).save(buffer, "PNG")
        path.write_bytes(buffer.getvalue())
    with pytest.raises(FaceverifyError) as err:
        load_image(path)
    assert str(path) in err.value.message and "\n" not in err.value.message
