"""`python -m bench.reframe --data-root DIR --out /tmp/reframed`: LFW DevTest faces placed in ordinary photos.

Each image named in pairsDevTest.txt is pasted into a larger canvas by a random similarity transform: the face
(the template's mean detector box, so measured, not guessed) spans 15-60% of the canvas width, turned by up to
25 degrees either way, anywhere as long as the face stays inside, over a procedural background with no face
(smooth noise, gradients, stripes). The result is an LFW data root (same names, a copy of pairsDevTest.txt)
that `faceverify evaluate --data-root` reads as it is; `reframe.json` beside it holds each image's transform.
Seeded and reproducible; JPEG quality 90. Written outside the repository: it is generated data.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from PIL import Image

from verify_cli.cli.options import DataRootOption
from verify_cli.errors import FaceverifyError, entry_point
from verify_cli.faces.template import TEMPLATE_FILE
from verify_cli.lfw import BASE_FOLDER, IMAGE_SETS, PAIRS_FILES, LFWRoot, resolve_data_root
from verify_cli.outputs import write_atomic
from verify_cli.preprocess import load_image

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@dataclass(frozen=True)
class Reframe:
    """How the images are placed: canvas size, face width range (fraction of canvas width), rotation, seed."""

    width: int = 640
    height: int = 480
    face_min: float = 0.15
    face_max: float = 0.60
    max_degrees: float = 25.0
    seed: int = 0
    quality: int = 90


def template_face_box() -> np.ndarray:
    """The mean face box (x0, y0, x1, y1) the detector draws in the deep-funneled frame (lfw_template.json)."""
    from importlib import resources

    data = json.loads((resources.files("verify_cli.faces") / TEMPLATE_FILE).read_text(encoding="utf-8"))
    return np.array(data["box"]["mean"], np.float64)


def background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A seeded faceless background: smooth colour noise at two scales over a gradient, sometimes stripes."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (np.cos(angle) * xx / width + np.sin(angle) * yy / height)[..., None]
    out = rng.uniform(40, 200, 3) + ramp * rng.uniform(-80, 80, 3)
    for cells, amplitude in ((int(rng.integers(3, 8)), 60.0), (int(rng.integers(15, 40)), 25.0)):
        noise = (rng.random((cells, max(2, cells * width // height), 3)) * 255).astype(np.uint8)
        smooth = np.asarray(Image.fromarray(noise).resize((width, height), Image.Resampling.BICUBIC), np.float32)
        out = out + (smooth - 127.5) / 127.5 * amplitude
    if rng.random() < 0.3:
        period, theta = rng.uniform(8, 60), rng.uniform(0, math.pi)
        stripes = np.sin(2 * math.pi * (np.cos(theta) * xx + np.sin(theta) * yy) / period)[..., None]
        out = out + stripes * rng.uniform(10, 40)
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def placement(rng: np.random.Generator, box: np.ndarray, spec: Reframe) -> np.ndarray:
    """A random 2x3 similarity (250x250 pixel centres -> canvas pixel centres) keeping the face box inside.

    The face's width is drawn between face_min and face_max of the canvas width, the upper end lowered to the
    largest face that fits the canvas at the rotation drawn (a face box is taller than wide).
    """
    theta = math.radians(rng.uniform(-spec.max_degrees, spec.max_degrees))
    turn = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    corners = np.array([[box[0], box[1]], [box[2], box[1]], [box[0], box[3]], [box[2], box[3]]]) - 0.5
    extent = np.ptp(corners @ turn.T, axis=0)  # the turned box's width and height at scale 1
    fits = float(np.min(np.array([spec.width, spec.height]) / extent)) * (box[2] - box[0]) / spec.width
    if fits < spec.face_min:
        raise FaceverifyError(f"canvas {spec.width}x{spec.height} too small for a face {spec.face_min:.0%} wide")
    scale = rng.uniform(spec.face_min, min(spec.face_max, fits)) * spec.width / (box[2] - box[0])
    turned = corners @ (scale * turn).T
    low = -0.5 - turned.min(0)
    high = np.array([spec.width, spec.height]) - 0.5 - turned.max(0)
    shift = rng.uniform(low, np.maximum(low, high))
    return np.hstack([scale * turn, shift[:, None]])


def compose(face: Image.Image, matrix: np.ndarray, back: Image.Image) -> Image.Image:
    """`face` warped by `matrix` (pixel centres) over `back`, bicubic, its square edge antialiased by the mask."""
    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))
    centres = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])
    to_edges = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    data = tuple((to_edges @ inverse @ centres)[:2].ravel())
    warped = face.transform(back.size, Image.Transform.AFFINE, data, resample=Image.Resampling.BICUBIC)
    mask = Image.new("L", face.size, 255).transform(back.size, Image.Transform.AFFINE, data,
                                                    resample=Image.Resampling.BILINEAR)
    return Image.composite(warped, back, mask)


def image_seed(seed: int, relpath: str) -> list[int]:
    """A per-image seed that does not depend on the order or number of images."""
    return [seed, zlib.crc32(relpath.encode())]


def reframe_one(lfw: LFWRoot, relpath: str, out_images: Path, box: np.ndarray, spec: Reframe) -> list[float]:
    """Write one reframed image; its 2x3 placement matrix, flattened."""
    rng = np.random.default_rng(image_seed(spec.seed, relpath))
    face = load_image(lfw.image(relpath), "RGB")
    matrix = placement(rng, box, spec)
    canvas = compose(face, matrix, background(rng, spec.width, spec.height))
    target = out_images / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(target, quality=spec.quality)
    return [round(float(v), 6) for v in matrix.ravel()]


def reframe(data_root: Path, out: Path, spec: Reframe, limit: int = 0, workers: int = 2) -> int:
    """Reframe the DevTest images (the first `limit` distinct ones when given) into the data root `out`."""
    lfw = LFWRoot.open(data_root)
    pairs_path = lfw.pairs_path("test")
    images = list(dict.fromkeys(rel for pair in lfw.pairs("test") for rel in (pair.left, pair.right)))
    if limit > 0:
        images = images[:limit]
    out_images = out / BASE_FOLDER / IMAGE_SETS["deepfunneled"]
    out_images.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pairs_path, out / BASE_FOLDER / PAIRS_FILES["test"])
    box = template_face_box()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        matrices = list(pool.map(lambda rel: reframe_one(lfw, rel, out_images, box, spec), images))
    manifest = {
        "source": str(data_root),
        "spec": spec.__dict__,
        "face_box_in_lfw_frame": box.tolist(),
        "matrix": "2x3 similarity, LFW 250x250 pixel centres -> canvas pixel centres, row-major",
        "images": dict(zip(images, matrices)),
    }
    write_atomic(out / "reframe.json", json.dumps(manifest, indent=0).encode())
    return len(images)


@app.command()
def main(
    out: Annotated[Path, typer.Option(help="The new data root to write (outside the repository).")],
    data_root: DataRootOption = None,
    size: Annotated[str, typer.Option(help="Canvas WIDTHxHEIGHT.")] = "640x480",
    seed: Annotated[int, typer.Option(help="Seed of the placements and backgrounds.")] = 0,
    limit: Annotated[int, typer.Option(help="Only the first N distinct DevTest images (0: all).")] = 0,
    workers: Annotated[int, typer.Option(help="Threads.")] = 2,
) -> None:
    """Place each LFW DevTest image in a larger faceless canvas by a random similarity transform."""
    with entry_point():
        try:
            width, height = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise FaceverifyError(f"--size {size!r}: expected WIDTHxHEIGHT, e.g. 640x480") from None
        count = reframe(resolve_data_root(data_root), out, Reframe(width, height, seed=seed), limit, workers)
    typer.echo(f"{out}: {count} reframed DevTest images ({size}, seed {seed})")


if __name__ == "__main__":
    sys.exit(app())
