"""Image loading and preprocessing, written once and shared by training, export and the CLI (no torch).

An image file becomes a float32 array (channels, size, size): decode, undo EXIF rotation, convert to
grayscale or RGB, crop a centred square, resize, scale to [0, 1], then standardise with (x - mean) / std.
Training-only augmentation works on the output of `prepare` and never changes these steps.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from verify_cli.errors import FaceverifyError, require_file

# Larger images are refused before decoding: a decompression bomb must not eat the machine's memory.
MAX_PIXELS = 40_000_000
MAX_FILE_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes model input; stored in the ONNX model so serving repeats training exactly."""

    size: int = 105
    channels: int = 1
    crop: float = 1.0  # side of the centred square kept, as a fraction of the shorter image side
    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise FaceverifyError(f"preprocessing: channels must be 1 or 3, got {self.channels}")
        if not 0.0 < self.crop <= 1.0:
            raise FaceverifyError(f"preprocessing: crop must be in (0, 1], got {self.crop}")
        if self.size < 8 or self.std <= 0:
            raise FaceverifyError(f"preprocessing: invalid size {self.size} or std {self.std}")

    @property
    def mode(self) -> str:
        """The Pillow mode the model sees."""
        return "L" if self.channels == 1 else "RGB"

    def to_json(self) -> str:
        """Serialise for the model's metadata."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Preprocess:
        """Read back what `to_json` wrote; unknown or missing keys are an error."""
        try:
            data = json.loads(text)
            names = {f.name for f in fields(cls)}
            if not isinstance(data, dict) or set(data) - names:
                raise ValueError(f"unexpected keys {sorted(set(data) - names) if isinstance(data, dict) else data}")
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise FaceverifyError(f"invalid preprocessing description: {exc}") from None


def _convert(img: Image.Image, mode: str) -> Image.Image:
    """Bring any Pillow mode (P, RGBA, CMYK, I;16, I, F, LA ...) to L or RGB, compositing alpha on black."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        img = Image.fromarray(np.clip(arr * (255.0 / top), 0, 255).round().astype(np.uint8))
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert(mode) if img.mode != mode else img


def load_image(path: str | os.PathLike, mode: str = "L", reduce: int = 1) -> Image.Image:
    """Open and fully decode an image file as `mode`, or raise one clear FaceverifyError naming the file.

    `reduce` (1, 2, 4 or 8) returns the image shrunk exactly that many times (pixel j covers source pixels
    [j * reduce, (j + 1) * reduce)): JPEGs decode at that scale (`Image.draft`, fast), others are reduced after.
    """
    if reduce not in (1, 2, 4, 8):
        raise ValueError(f"reduce must be 1, 2, 4 or 8, got {reduce}")
    path = Path(path)
    require_file(path, "an image file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise FaceverifyError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if size == 0:
        raise FaceverifyError(f"{path}: empty file")
    if size > MAX_FILE_BYTES:
        raise FaceverifyError(f"{path}: file too large ({size} bytes; limit {MAX_FILE_BYTES})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's notes on damaged metadata would be extra stderr lines
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise FaceverifyError(
                        f"{path}: image too large ({width}x{height} pixels; limit {MAX_PIXELS} pixels)"
                    )
                if width < 1 or height < 1:
                    raise FaceverifyError(f"{path}: image has no pixels")
                # Pillow picks exactly `reduce` when each side holds at least two reduced pixels
                drafted = reduce > 1 and min(width, height) >= 2 * reduce and img.draft(
                    None, (width // reduce, height // reduce)) is not None
                img.load()
                img = ImageOps.exif_transpose(img) or img
                img = _convert(img, mode)
                return img.reduce(reduce) if reduce > 1 and not drafted else img
    except FaceverifyError:
        raise
    except UnidentifiedImageError:
        raise FaceverifyError(f"{path}: not an image Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise FaceverifyError(f"{path}: image too large (possible decompression bomb)") from None
    except OSError as exc:
        raise FaceverifyError(f"{path}: corrupt or truncated image ({exc})") from None
    except (ValueError, SyntaxError, EOFError, MemoryError, TypeError, IndexError, KeyError, ZeroDivisionError) as exc:
        raise FaceverifyError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from None


def prepare(img: Image.Image, spec: Preprocess) -> np.ndarray:
    """Centre-crop and resize a decoded image: uint8 array (channels, size, size). Training augments this."""
    img = _convert(img, spec.mode)
    width, height = img.size
    side = max(1, round(min(width, height) * spec.crop))
    left, top = (width - side) // 2, (height - side) // 2
    img = img.resize((spec.size, spec.size), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side))
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1).copy()


def normalize(pixels: np.ndarray, spec: Preprocess) -> np.ndarray:
    """Scale uint8 pixels (any leading shape) to float32 model input: (x / 255 - mean) / std."""
    return ((pixels.astype(np.float32) / np.float32(255.0)) - np.float32(spec.mean)) / np.float32(spec.std)


def load_prepared(path: str | os.PathLike, spec: Preprocess) -> np.ndarray:
    """Decode and prepare one image file: uint8 (channels, size, size)."""
    return prepare(load_image(path, spec.mode), spec)


def load_input(path: str | os.PathLike, spec: Preprocess) -> np.ndarray:
    """Decode and fully preprocess one image file: float32 (channels, size, size), ready for the model."""
    return normalize(load_prepared(path, spec), spec)
