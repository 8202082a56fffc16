"""How an LFW image becomes model pixels in training and in export's parity check (`TrainConfig.faces`).

"funneled": the deep-funneled image's fixed centre crop, as the report trained. "aligned": the face found and
aligned by the CLI's own `FaceReader` and face pipeline, taking the face nearest the centre (LFW's images are
centred on the person named); where no face is found the fixed centre crop stands in, and the caller counts it.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from train.config import Faces
from verify_cli.preprocess import Preprocess, load_prepared
from verify_cli.scoring import FaceReader

if TYPE_CHECKING:
    from verify_cli.faces.pipeline import FacePipeline

@cache
def lfw_pipeline() -> FacePipeline:
    """One face pipeline for the process (thread-safe): the central face, ONNX Runtime on one thread per session."""
    from verify_cli.faces.pipeline import FacePipeline

    return FacePipeline(pick="central", threads=1)


def lfw_pixels(path: str | os.PathLike, spec: Preprocess, faces: Faces) -> tuple[np.ndarray, bool]:
    """An LFW image as uint8 model pixels (C, size, size), and True when no face was found (centre crop used)."""
    if faces == "funneled":
        return load_prepared(path, spec), False
    pixels, record = FaceReader(spec, lfw_pipeline(), fallback=True).pixels(path)
    return pixels, record is not None and record["faces_found"] == 0
