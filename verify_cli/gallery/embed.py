"""How gallery photos become embeddings: the command's own FaceReader, with a photo it cannot use left out, not fatal.

A query with no face is an error (the user asked about that photo); a gallery photo with no face is one bad photo
among many, so it is left out with a warning and the rest of the gallery loads. `pipeline_key` names every
setting of a FaceReader that changes an embedding, so an index built under other settings is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from verify_cli import __version__
from verify_cli.errors import FaceverifyError
from verify_cli.gallery.index import Embeddings
from verify_cli.runtime import Model
from verify_cli.scoring import FaceReader, embed_paths

UNUSABLE = "unusable"  # the face record's key for a photo read failed (its value: why)


@dataclass(frozen=True)
class TolerantReader(FaceReader):
    """A FaceReader that answers a photo it cannot use (no face, not an image) with a blank input and why."""

    def input(self, path: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any] | None]:
        """The face as model input and what detection did; a failure gives zeros and {UNUSABLE: why}."""
        try:
            return super().input(path)
        except FaceverifyError as exc:
            why = exc.message.removeprefix(f"{path}: ")
            blank = np.zeros((self.spec.channels, self.spec.size, self.spec.size), np.float32)
            return blank, {UNUSABLE: why}


def embed_photos(model: Model, paths: Sequence[Path], reader: FaceReader,
                 progress: Callable[[int], None] | None = None) -> Embeddings:
    """Embed gallery photos through `reader`; those it cannot use are named in `skipped`, not raised."""
    tolerant = TolerantReader(reader.spec, reader.pipeline, reader.face, reader.crops)
    done = embed_paths(model, list(paths), progress=progress, reader=tolerant)
    skipped = {i: record[UNUSABLE] for i, record in enumerate(done.faces) if record and UNUSABLE in record}
    return Embeddings(done.embeddings, skipped)


@lru_cache(maxsize=1)
def detector_identity() -> str:
    """SHA-256 over the MTCNN weight files (2 MB, about 10 ms): new detector weights rebuild the index."""
    from verify_cli.faces.detect import NETS, weights_dir

    folder = weights_dir()
    digest = hashlib.sha256()
    for name in NETS:
        digest.update(name.encode() + b"\0" + (folder / name).read_bytes())
    return f"sha256:{digest.hexdigest()}"


def pipeline_key(reader: FaceReader) -> str:
    """Every FaceReader setting that changes an embedding, as JSON (the index's `pipeline` field).

    Fixed crop or detection; for detection, the face chosen (rule or index), the detector's weights, input side,
    smallest face and thresholds, and the alignment template; the model's preprocessing; and faceverify's version,
    since a new release may find or align faces differently (one rebuild per upgrade). `--save-crops` is not in it.
    """
    key: dict[str, Any] = {"faceverify": __version__, "preprocess": json.loads(reader.spec.to_json())}
    pipeline = reader.pipeline
    if pipeline is None:
        key["faces"] = {"mode": "fixed-crop"}
        return json.dumps(key, sort_keys=True)
    template = pipeline.template
    key["faces"] = {
        "mode": "detect-align",
        "choice": pipeline.pick if reader.face is None else f"index {reader.face}",
        "detector": detector_identity(),
        "detect_side": pipeline.detect_side,
        "min_face": pipeline.detector.min_face,
        "thresholds": list(pipeline.detector.thresholds),
        "template": hashlib.sha256(np.ascontiguousarray(template.landmarks, np.float64).tobytes()
                                   + repr(template.size).encode()).hexdigest()[:16],
    }
    return json.dumps(key, sort_keys=True)
