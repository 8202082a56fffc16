"""The face policy every command uses: find the faces in a photo, pick one, align it into the LFW frame.

Large JPEGs are decoded at a reduced DCT scale for detection (about 640 pixels on the long side is enough),
and decoded again at a finer scale only when the chosen face is too small there to fill the frame sharply.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from verify_cli.errors import FaceverifyError, NoFaceError
from verify_cli.faces.align import scale_of, similarity, warp
from verify_cli.faces.detect import Detector, Face
from verify_cli.faces.template import Template, lfw_template
from verify_cli.preprocess import load_image

DETECT_SIDE = 640  # longest side of the image the detector sees
RETRY_SIDE = 1600  # ... and once more, only when it found no face there in a larger photo
DRAFT_FACTORS = (8, 4, 2, 1)
PICKS = ("largest", "central")


@dataclass(frozen=True, eq=False)
class AlignedFace:
    """A face warped into the LFW frame, and what was done to get it (coordinates in the photo's pixels)."""

    image: Image.Image  # RGB, the template's frame size (250x250)
    faces: tuple[Face, ...]  # every face found, largest first
    used: int  # index of the face aligned

    @property
    def face(self) -> Face:
        """The face that was aligned."""
        return self.faces[self.used]

    @property
    def faces_found(self) -> int:
        """How many faces the photo holds."""
        return len(self.faces)

    def record(self) -> dict[str, Any]:
        """What the face pipeline did, for printing and --json."""
        face = self.face
        return {
            "faces_found": self.faces_found,
            "face_used": self.used,
            "box": [round(v, 1) for v in face.box],
            "confidence": round(face.score, 4),
            "landmarks": np.round(face.landmarks, 1).tolist(),
        }


def largest_first(faces: Sequence[Face]) -> list[Face]:
    """Faces ordered by box size, largest first (ties: the more confident first)."""
    return sorted(faces, key=lambda f: (-f.size, -f.score))


def choose(
    faces: Sequence[Face], index: int | None, source: str, centre: tuple[float, float] | None = None
) -> int:
    """The face to use: `index` into the largest-first list; by default the largest, or the face nearest
    `centre` when one is given (LFW's rule: its images are centred on the person named); else one clear error.
    """
    if not faces:
        raise NoFaceError(f"{source}: no face found")
    if index is None:
        if centre is None:
            return 0
        offsets = [np.hypot((f.box[0] + f.box[2]) / 2 - centre[0], (f.box[1] + f.box[3]) / 2 - centre[1]) for f in faces]
        return int(np.argmin(offsets))
    if not 0 <= index < len(faces):
        raise FaceverifyError(
            f"{source}: face index {index} out of range: {len(faces)} face{'s' if len(faces) > 1 else ''} found "
            f"(0 to {len(faces) - 1}, largest first)"
        )
    return index


def _draft_factor(size: tuple[int, int], side: int) -> int:
    """The largest JPEG DCT reduction that keeps the long side at least `side` pixels."""
    return next(f for f in DRAFT_FACTORS if max(size) // f >= side or f == 1)


def _header_size(path: Path) -> tuple[int, int] | None:
    """Width and height from the file header only (None if unreadable: load_image then says why)."""
    try:
        with Image.open(path) as img:
            return img.size
    except Exception:  # noqa: BLE001 - any failure is reported by load_image with the project's wording
        return None


class FacePipeline:
    """Detector plus template: `find_faces` and `align_file` / `align_image`; thread-safe and shareable.

    `pick` is the default face: "largest" (photos) or "central" (the face nearest the image centre, as LFW's
    images are made); an explicit face index overrides it.
    """

    def __init__(
        self,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        threads: int = 0,
        template: Template | None = None,
        detect_side: int = DETECT_SIDE,
        pick: str = "largest",
    ) -> None:
        if pick not in PICKS:
            raise FaceverifyError(f"unknown face choice {pick!r}; choose {' or '.join(PICKS)}")
        self.pick = pick
        self.detector = Detector(providers, threads)
        self.template = template or lfw_template()
        self.detect_side = detect_side

    def _detect(self, image: Image.Image, factor: float, side: int | None = None) -> list[Face]:
        """Faces of `image` (shrunk to `side`, default detect_side, first), in the coordinates of the image
        `factor` times larger."""
        scale = min(1.0, (side or self.detect_side) / max(image.size))
        small = image
        if scale < 1.0:
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            small = image.resize(size, Image.Resampling.BOX)
        fx, fy = image.width / small.width * factor, image.height / small.height * factor
        return largest_first([f.rescaled(fx, fy) for f in self.detector.detect(small)])

    def find_faces(self, source: str | os.PathLike | Image.Image) -> list[Face]:
        """Every face in a photo (file or RGB image), largest first, in its full-resolution pixel coordinates."""
        if isinstance(source, Image.Image):
            return self._detect(source.convert("RGB"), 1.0)
        return self._load_and_detect(Path(source))[1]

    def _load_and_detect(self, path: Path) -> tuple[Image.Image, list[Face], int]:
        """Decode and detect; a large photo with no face found is searched once more at RETRY_SIDE, where
        faces too small for the detector at DETECT_SIDE become big enough (four times the pixels, only then)."""
        size = _header_size(path)
        reduce = _draft_factor(size, self.detect_side) if size else 1
        image = load_image(path, "RGB", reduce=reduce)
        faces = self._detect(image, float(reduce))
        if not faces and size and max(size) > self.detect_side * RETRY_SIDE // DETECT_SIDE:
            side = self.detect_side * RETRY_SIDE // DETECT_SIDE
            finer = _draft_factor(size, side)
            if finer != reduce:
                image, reduce = load_image(path, "RGB", reduce=finer), finer
            faces = self._detect(image, float(reduce), side)
        return image, faces, reduce

    def _centre(self, size: tuple[int, int], reduce: int) -> tuple[float, float] | None:
        """The full-resolution image centre when the default face is the central one, else None."""
        return (size[0] * reduce / 2, size[1] * reduce / 2) if self.pick == "central" else None

    def _align(self, image: Image.Image, face: Face, reduce: int) -> Image.Image:
        """Warp a face (full-resolution coordinates) out of `image`, a photo shrunk `reduce` times."""
        points = (face.landmarks + 0.5) / reduce - 0.5
        return warp(image, similarity(points, self.template.landmarks), self.template.size)

    def align_file(self, path: str | os.PathLike, face_index: int | None = None) -> AlignedFace:
        """Decode a photo, find its faces and align one (default: the largest); errors name the file."""
        path = Path(path)
        image, faces, reduce = self._load_and_detect(path)
        used = choose(faces, face_index, str(path), self._centre(image.size, reduce))
        face = faces[used]
        pixels_per_output = 1.0 / scale_of(similarity(face.landmarks, self.template.landmarks))
        if pixels_per_output < reduce:  # too few pixels at the detection scale: decode finer for a sharp face
            reduce = next(f for f in DRAFT_FACTORS if f <= max(1.0, pixels_per_output))
            image = load_image(path, "RGB", reduce=reduce)
        return AlignedFace(self._align(image, face, reduce), tuple(faces), used)

    def align_image(self, image: Image.Image, face_index: int | None = None, source: str = "image") -> AlignedFace:
        """The same for a decoded image; `source` names it in errors."""
        image = image.convert("RGB")
        faces = self._detect(image, 1.0)
        used = choose(faces, face_index, source, self._centre(image.size, 1))
        return AlignedFace(self._align(image, faces[used], 1), tuple(faces), used)
