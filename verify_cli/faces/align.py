"""Similarity alignment: 5 landmarks onto a template, then one antialiased affine warp with Pillow.

Coordinates are pixel centres: pixel (0, 0) is the point (0, 0), and an image of width W spans -0.5 .. W - 0.5.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 matrix [sR | t] of the rotation, uniform scale and shift taking `src` points closest to `dst`.

    Least squares over all points (Umeyama 1991), reflections excluded: a mirrored face is not the same face.
    """
    src = np.asarray(src, np.float64).reshape(-1, 2)
    dst = np.asarray(dst, np.float64).reshape(-1, 2)
    if src.shape != dst.shape or src.shape[0] < 2:
        raise ValueError("similarity needs two equal-length lists of at least two points")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s**2).sum() / len(s)
    if var_s <= 0:
        raise ValueError("source points coincide")
    u, sigma, vt = np.linalg.svd(d.T @ s / len(s))
    sign = np.diag([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(sigma) @ sign)) / var_s
    return np.hstack([scale * rotation, (mu_d - scale * rotation @ mu_s)[:, None]])


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (N, 2) mapped by a 2x3 affine matrix."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    return points @ matrix[:, :2].T + matrix[:, 2]


def _homogeneous(matrix: np.ndarray) -> np.ndarray:
    return np.vstack([matrix, [0.0, 0.0, 1.0]])


def scale_of(matrix: np.ndarray) -> float:
    """The uniform scale of a similarity matrix (output pixels per input pixel)."""
    return math.sqrt(abs(np.linalg.det(matrix[:, :2])))


def warp(image: Image.Image, matrix: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """Resample `image` into a `size` frame by the affine `matrix` (input -> output pixel centres).

    Outside the input is black, as in LFW's deep-funneled images. When the output is more than twice smaller
    than the input, only the needed region is first box-averaged by an integer factor (`Image.reduce`), so the
    final bilinear step never skips input pixels (no aliasing).
    """
    inverse = np.linalg.inv(_homogeneous(matrix))  # output -> input, pixel centres
    width, height = size
    corners = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [-0.5, height - 0.5], [width - 0.5, height - 0.5]])
    reach = apply(inverse[:2], corners)
    x0 = max(0, math.floor(reach[:, 0].min()) - 1)
    y0 = max(0, math.floor(reach[:, 1].min()) - 1)
    x1 = min(image.width, math.ceil(reach[:, 0].max()) + 2)
    y1 = min(image.height, math.ceil(reach[:, 1].max()) + 2)
    if x1 <= x0 or y1 <= y0:
        return Image.new(image.mode, size)
    factor = max(1, math.floor(1.0 / scale_of(matrix)))
    x1 = x0 + math.ceil((x1 - x0) / factor) * factor  # whole blocks; beyond the image, crop pads black
    y1 = y0 + math.ceil((y1 - y0) / factor) * factor
    region = image.crop((x0, y0, x1, y1))
    if factor > 1:
        region = region.reduce(factor)
    # output pixel edge coordinates -> output centres -> input centres -> region centres -> region edges
    to_centres = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])
    to_region = np.array([[1.0 / factor, 0.0, (0.5 - x0) / factor], [0.0, 1.0 / factor, (0.5 - y0) / factor],
                          [0.0, 0.0, 1.0]])
    data = (to_region @ inverse @ to_centres)[:2].ravel()
    return region.transform(size, Image.Transform.AFFINE, tuple(data), resample=Image.Resampling.BILINEAR)


def align(image: Image.Image, landmarks: np.ndarray, template: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """The face whose 5 landmarks are given, warped so they fall as near as possible on the template's."""
    return warp(image, similarity(landmarks, template), size)
