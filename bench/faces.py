"""Photos per second end to end on 1080p photos: faceverify's face pipeline against face_recognition, side by side.

The photos are LFW DevTest images placed in 1920x1080 canvases by `bench.reframe` (seeded), written to a
temporary folder. faceverify reads them exactly as `faceverify evaluate` does: `embed_paths` with the CLI's
`FaceReader` (MTCNN detector sessions on one thread each, decode threads one per core), so each photo is decoded
(Pillow's draft at a reduced DCT scale), searched for faces, aligned, preprocessed and embedded. Beside it, the
face_recognition package (dlib's HOG detector, its 5-point landmarks and its ResNet embedding) on the same
photos, where it is installed; it is never a dependency of this project.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.resources
import importlib.util
import io
import json
import multiprocessing
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

from bench import timing
from bench.report import Section, Target, num

if TYPE_CHECKING:
    from multiprocessing.pool import Pool

    from verify_cli.runtime import Model
    from verify_cli.scoring import Embedded, FaceReader

SIZE = (1920, 1080)
SEED = 1
PHOTOS = 100
QUICK_PHOTOS = 4
MAX_ROUNDS = 3  # a face_recognition round over 100 such photos takes about a minute
WARM_PHOTOS = 2  # photos each side reads, untimed, before the first round
TARGET = 20.0  # photos/s end to end on 2 cores
FACEVERIFY = "faceverify (as the CLI runs it: Pillow draft)"
FULL_DECODE = "faceverify, full-resolution decode (no draft)"
FR_DEFAULT = "face_recognition, defaults (HOG, upsample 1)"
FR_UPSAMPLE0 = "face_recognition, HOG upsample 0"
FR_UPSAMPLE = {FR_DEFAULT: 1, FR_UPSAMPLE0: 0}
INSTALL = "pip install dlib-bin face-recognition-models, then pip install --no-deps face-recognition"


def make_photos(data_root: Path, out: Path, count: int, workers: int) -> list[Path]:
    """The first `count` distinct DevTest images reframed into 1920x1080 JPEGs under `out`, in DevTest order."""
    from bench.reframe import Reframe, reframe
    from verify_cli.lfw import LFWRoot

    reframe(data_root, out, Reframe(*SIZE, seed=SEED), count, workers)
    lfw = LFWRoot.open(out)
    return [lfw.image(rel) for rel in json.loads((out / "reframe.json").read_text())["images"]]


def _full_decode(path: Any, mode: str = "L", reduce: int = 1) -> Any:
    """`load_image` without Pillow's draft: the whole JPEG decoded, then shrunk by the same factor."""
    from verify_cli.preprocess import load_image

    image = load_image(path, mode)
    return image.reduce(reduce) if reduce > 1 else image


@contextlib.contextmanager
def no_draft() -> Iterator[None]:
    """The face pipeline decoding every photo at full resolution (what it did before it used `Image.draft`)."""
    from verify_cli.faces import pipeline

    with mock.patch.object(pipeline, "load_image", _full_decode):
        yield


def embed(model: Model, reader: FaceReader, photos: Sequence[Path], workers: int = 0) -> Embedded:
    """Embed photos exactly as `faceverify evaluate` does (workers 0: the CLI's default, one per core up to 8)."""
    from verify_cli.scoring import embed_paths

    return embed_paths(model, list(photos), workers=workers, reader=reader)


class StageClock:
    """Seconds spent in wrapped functions, summed over threads, by stage name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """`fn`, adding its time to `stage`."""
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start
        return timed


def time_split(model: Model, reader: FaceReader, photos: Sequence[Path]) -> dict[str, float]:
    """Seconds per photo of each stage, from one run with one decode thread (each stage's own cost, not waits)."""
    from verify_cli.faces import pipeline

    assert reader.pipeline is not None
    clock = StageClock()
    detector = reader.pipeline.detector
    with mock.patch.object(pipeline, "load_image", clock.wrap("decode", pipeline.load_image)), \
            mock.patch.object(detector, "detect", clock.wrap("detect", detector.detect)):
        embedded = embed(model, reader, photos, workers=1)
    decode, detect = clock.seconds.get("decode", 0.0), clock.seconds.get("detect", 0.0)
    split = {"decode": decode, "detect": detect, "align": embedded.decode_s - decode - detect,
             "embed": embedded.model_s}
    return {stage: seconds / len(photos) for stage, seconds in split.items()}


# face_recognition, run in worker processes only (its own CLI's --cpus does the same): importing it sets Pillow's
# ImageFile.LOAD_TRUNCATED_IMAGES, which must not change how this process (or a test run) reads images
_WORKER: dict[str, str] = {}  # in a worker: why face_recognition did not import


def _pkg_resources_shim() -> None:
    """face_recognition_models imports `pkg_resources`, which setuptools 81 removed: give it the one function."""
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = lambda package, name: str(importlib.resources.files(package) / name)  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = shim


@functools.cache
def _import_face_recognition() -> types.ModuleType:
    _pkg_resources_shim()
    with contextlib.redirect_stdout(io.StringIO()):  # on a failed import it prints advice and calls quit()
        import face_recognition
    return face_recognition


def baseline_problem() -> str | None:
    """Why face_recognition is not installed here (None: it is; whether it imports, a worker finds out)."""
    missing = [name for name in ("face_recognition", "face_recognition_models", "dlib")
               if importlib.util.find_spec(name) is None]
    return f"not installed ({', '.join(missing)} missing; {INSTALL})" if missing else None


def _fr_init() -> None:
    """A worker's start: import face_recognition and load its models, keeping any failure for `_fr_problem`
    (an initializer that raises would make the pool start workers forever)."""
    try:
        _import_face_recognition()
    except (ImportError, OSError, RuntimeError, SystemExit) as exc:
        _WORKER["problem"] = f"not importable ({type(exc).__name__}: {exc})"


def _fr_problem() -> str | None:
    return _WORKER.get("problem")


def _fr_photo(path: str, upsample: int) -> int:
    """One photo through face_recognition's API, the largest face embedded like faceverify's; faces found."""
    fr = _import_face_recognition()
    image = fr.load_image_file(path)
    boxes = fr.face_locations(image, number_of_times_to_upsample=upsample, model="hog")
    if boxes:
        largest = max(boxes, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))  # (top, right, bottom, left)
        fr.face_encodings(image, [largest], num_jitters=1, model="small")
    return len(boxes)


def fr_pool(workers: int) -> Pool:
    """`workers` fresh processes with face_recognition and its models loaded (spawned: no ONNX Runtime threads)."""
    return multiprocessing.get_context("spawn").Pool(workers, initializer=_fr_init)


def fr_run(pool: Pool, photos: Sequence[Path], upsample: int) -> int:
    """Photos in which face_recognition found a face, one photo per task over the pool."""
    found = pool.imap(functools.partial(_fr_photo, upsample=upsample), [str(p) for p in photos], chunksize=1)
    return sum(1 for faces in found if faces)


def run(model_path: Path, data_root: Path, work: Path, photos: int, repeats: int, cores: int,
        quick: bool = False) -> Section:
    """Photos/s of the four sides, rounds interleaved; faceverify's time split; the target judged."""
    from verify_cli.cli.options import Provider, face_reader, load_model
    from verify_cli.scoring import default_workers

    start = time.perf_counter()
    paths = make_photos(data_root, work / "reframed", photos, cores)
    made_s = time.perf_counter() - start
    model = load_model(model_path, Provider.cpu)
    reader = face_reader(model, False, "largest", None)
    workers = default_workers()
    rounds = min(repeats, MAX_ROUNDS)
    found: dict[str, int] = {}

    def faceverify(batch: Sequence[Path]) -> int:
        return len(embed(model, reader, batch).embeddings)

    def full_decode(batch: Sequence[Path]) -> int:
        with no_draft():
            return faceverify(batch)

    sides: dict[str, Callable[[Sequence[Path]], int]] = {FACEVERIFY: faceverify, FULL_DECODE: full_decode}
    problem = baseline_problem()
    with contextlib.ExitStack() as stack:
        if problem is None:
            pool = stack.enter_context(fr_pool(cores))
            problem = pool.apply(_fr_problem)
        if problem is None:
            for name, upsample in FR_UPSAMPLE.items():
                sides[name] = functools.partial(fr_run, pool, upsample=upsample)
        for side in sides.values():
            side(paths[:WARM_PHOTOS])

        def timed(name: str) -> float:
            tick = time.perf_counter()
            found[name] = sides[name](paths)
            return time.perf_counter() - tick

        samples = timing.interleave({name: functools.partial(timed, name) for name in sides}, rounds, 0)
    split = time_split(model, reader, paths)
    with no_draft():
        whole = time_split(model, reader, paths)

    ours = samples[FACEVERIFY]
    section = Section(
        title="Photos end to end: faceverify vs face_recognition on 1920x1080 JPEGs",
        intro=(
            f"{len(paths)} photos made by `python -m bench.reframe --size {SIZE[0]}x{SIZE[1]} --seed {SEED} "
            f"--limit {len(paths)}` (the first distinct DevTest images, each placed in a faceless canvas, face "
            f"15-60% of its width, turned up to 25 degrees; JPEG quality 90; {made_s:.0f} s to make) into a "
            f"temporary folder. faceverify: `embed_paths` with the CLI's `FaceReader` (detection and alignment, the "
            f"largest face; MTCNN sessions on 1 thread each, {workers} decode thread(s), batches of 64, the model "
            "on ONNX Runtime's default threads, CPU provider), what `faceverify evaluate` runs per image; every "
            "photo must yield a face, as the CLI requires. face_recognition: its API per photo (`load_image_file`, "
            "`face_locations` with the HOG detector, `face_encodings` of the largest face with the 5-point "
            f"landmarks, 1 jitter) in a pool of {cores} processes, one photo per task, as its own CLI's `--cpus` "
            f"does. All sides interleaved round by round over the same photos after {WARM_PHOTOS} untimed photo(s) "
            f"each; median of {rounds} round(s){' (at most ' + str(MAX_ROUNDS) + ')' if repeats > rounds else ''}."
        ),
        header=["pipeline", "photos/s", "s per round (min-max)", "photos with a face found",
                "faceverify / this"],
    )
    for name in (FACEVERIFY, FULL_DECODE, FR_DEFAULT, FR_UPSAMPLE0):
        if name not in samples:
            section.rows.append([name, "skipped", "", "", ""])
            continue
        s = samples[name]
        section.rows.append([
            name, num(len(paths) / s.median), f"{num(s.median)} ({num(s.low)}-{num(s.high)})",
            f"{found[name]} of {len(paths)}", f"{timing.ratio(s, ours):.2f}x",
        ])
    if problem is not None:
        section.notes.append(f"face_recognition skipped: {problem}.")
    total = sum(split.values())
    labels = {
        "decode": "decode (JPEG at the draft scale, EXIF turn, RGB; a finer decode where a face is small)",
        "detect": "detection (MTCNN: image pyramid, P-Net, R-Net, O-Net, non-maximum suppression)",
        "align": "shrink for the detector, alignment (similarity warp), preprocessing",
        "embed": "embedding (the model, batches of 64)",
    }
    section.notes.append(
        "Where faceverify's time goes, per photo, from one more run with one decode thread (each stage's own "
        "cost rather than time spent waiting for a core): "
        + "; ".join(f"{labels[k]} {split[k] * 1e3:.1f} ms ({split[k] / total:.0%})" for k in labels)
        + f"; {total * 1e3:.1f} ms in all, {1 / total:.1f} photos/s on one thread."
    )
    section.notes.append(
        "The full-resolution row decodes every JPEG whole and then shrinks it by the same factor (Pillow's "
        "`reduce`), so the detector sees the same geometry; the difference is what `Image.draft` saves. Timed "
        f"the same way, one thread: decoding takes {split['decode'] * 1e3:.1f} ms per photo with the draft and "
        f"{whole['decode'] * 1e3:.1f} ms whole, {sum(split.values()) * 1e3:.1f} against "
        f"{sum(whole.values()) * 1e3:.1f} ms per photo in all."
    )
    if problem is None:
        section.notes.append(
            "face_recognition's default `number_of_times_to_upsample=1` doubles the photo (3840x2160) before the "
            "HOG search; upsample 0 finds faces of 80 px and more, which every face here is. faceverify's "
            "detector sees the photo at 640 px on its long side. Its photos-with-a-face count is what it found, "
            "not whether the face was right."
        )
    notes = ([f"--quick: {len(paths)} photos"] if quick else []) + ([] if cores == 2 else [f"{cores} cores"])
    section.targets.append(Target(
        f"photos/s end to end, {SIZE[0]}x{SIZE[1]} JPEGs", f">= {TARGET:g} on 2 cores",
        f"{len(paths) / ours.median:.1f}", None if quick or cores != 2 else len(paths) / ours.median >= TARGET,
        "; ".join(notes),
    ))
    return section
