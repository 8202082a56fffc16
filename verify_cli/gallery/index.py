"""The gallery index: the gallery's embeddings cached in one file, reused, updated or rebuilt as the gallery changes.

The file is an `.npz` (NumPy's zip of arrays) holding two arrays and nothing else:
  header      uint8, UTF-8 JSON: format, version, the model's identity, the face-pipeline key, the embedding size
              and every photo's [relative path, size, modification time in ns] in row order
  embeddings  float32 (photos, embedding size)
It is read with `np.load(allow_pickle=False)`, so a file holding pickled objects is refused, never unpickled, and
written atomically with mode 0600 (owner only): embeddings of faces are biometric data.

A photo whose size or modification time differs from the index is embedded again; a model or face-pipeline
change rebuilds everything, so embeddings from two models are never mixed; a file that is not a whole index of
this format is rebuilt with a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from verify_cli.errors import FaceverifyError, first_line
from verify_cli.gallery.layout import IMAGE_SUFFIXES, Photo, scan
from verify_cli.outputs import atomic_path, check_output

INDEX_NAME = ".faceverify-index.npz"
INDEX_FORMAT = "faceverify-gallery-index"
INDEX_VERSION = 1
INDEX_MODE = 0o600
ZIP_MAGIC = b"PK\x03\x04"  # an .npz is a zip file

EmbedFn = Callable[[list[Path]], np.ndarray]


def default_index_path(gallery: str | os.PathLike) -> Path:
    """Where the index lives unless the caller names a file: hidden, inside the gallery folder."""
    return Path(gallery) / INDEX_NAME


def model_identity(path: str | os.PathLike) -> str:
    """The model's identity for the index: SHA-256 of the whole ONNX file.

    The whole file, not the tower's weights alone: any change to weights, graph or metadata (preprocessing)
    rebuilds the index, with no parsing and no onnx package; hashing the 8 MB bundled model takes about 15 ms.
    A re-export of the same weights rebuilds once, which costs one embedding of the gallery.
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise FaceverifyError(f"{path}: cannot read the model ({exc.strerror or exc})") from None
    return f"sha256:{digest.hexdigest()}"


@dataclass(frozen=True)
class Gallery:
    """A gallery in memory: photos sorted by person then path, each person's rows contiguous, and their embeddings."""

    root: Path
    photos: tuple[Photo, ...]
    people: tuple[str, ...]  # distinct names, sorted
    owner: np.ndarray  # (N,) int64: row -> index into people, non-decreasing
    embeddings: np.ndarray  # (N, D) float32
    starts: np.ndarray  # (P,) each person's first row, for np.maximum.reduceat over a row of scores

    @classmethod
    def build(cls, root: Path, photos: list[Photo], embeddings: np.ndarray) -> Gallery:
        """Assemble from photos sorted by (person, path) and their embeddings in the same order."""
        people = tuple(sorted({p.person for p in photos}))
        row = {name: i for i, name in enumerate(people)}
        owner = np.array([row[p.person] for p in photos], np.int64)
        if len(owner) and (np.diff(owner) < 0).any():
            raise ValueError("gallery photos must be sorted by person")
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]]) if len(owner) else np.zeros(0, np.int64)
        return cls(root, tuple(photos), people, owner, np.ascontiguousarray(embeddings, np.float32), starts)


@dataclass(frozen=True)
class IndexStatus:
    """What happened to the index: created, reused, updated (+added, -removed, changed) or rebuilt (and why)."""

    action: str  # "created" | "reused" | "updated" | "rebuilt"
    index: Path
    photos: int
    people: int
    added: int = 0
    removed: int = 0
    changed: int = 0
    reason: str = ""  # why it was rebuilt
    damaged: bool = False  # rebuilt because the file was not a whole index of this format

    @property
    def embedded(self) -> int:
        """How many photos were embedded to bring the index up to date."""
        return self.photos if self.action in ("created", "rebuilt") else self.added + self.changed

    @property
    def warning(self) -> str | None:
        """One line for stderr when the old index was unusable (damaged, unreadable, foreign), else None."""
        return f"{self.index}: {self.reason}; rebuilt it" if self.damaged else None

    def describe(self) -> str:
        """One line for people: what happened and the gallery's size."""
        size = f"{self.photos} photo(s) of {self.people} people"
        if self.action == "updated":
            parts = [f"+{self.added} new", f"-{self.removed} removed"] + ([f"{self.changed} changed"] if self.changed else [])
            return f"index updated ({', '.join(parts)}): {size}"
        if self.action == "rebuilt":
            return f"index rebuilt ({self.reason}): {size}"
        return f"index {self.action}: {size}"


class _Unusable(Exception):
    """The file at the index path is not a whole index of this format (the message says why)."""


@dataclass(frozen=True)
class _Stored:
    model: str
    pipeline: str
    rows: dict[str, tuple[int, int, int]]  # path -> (size, mtime_ns, row)
    embeddings: np.ndarray


def _read(path: Path) -> _Stored:
    """Read and check an index file; _Unusable says why it cannot be used. Never unpickles anything."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
        if magic != ZIP_MAGIC:  # not an .npz: np.load is never even asked (a pickle stays unread bytes)
            what = ("empty file" if not magic else "pickled data, never loaded" if magic[:1] == b"\x80"
                    else "not an .npz file")
            raise _Unusable(f"not a faceverify gallery index ({what})")
        with np.load(path, allow_pickle=False) as data:
            if sorted(data.files) != ["embeddings", "header"]:
                raise _Unusable(f"not a faceverify gallery index (arrays {sorted(data.files)})")
            raw, embeddings = data["header"], data["embeddings"]
        return _parse(raw, embeddings)
    except _Unusable:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated zip, I/O error, object array refused, bad JSON: rebuild
        raise _Unusable(f"damaged index ({type(exc).__name__}: {first_line(exc)})") from None


def _parse(raw: np.ndarray, embeddings: np.ndarray) -> _Stored:
    """Check the header and the embeddings agree with each other and with this format."""
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise _Unusable("damaged index (header is not a byte array)")
    header = json.loads(raw.tobytes().decode("utf-8"))
    if not isinstance(header, dict) or header.get("format") != INDEX_FORMAT:
        raise _Unusable("not a faceverify gallery index")
    if header.get("version") != INDEX_VERSION:
        raise _Unusable(f"index format version {header.get('version')!r}, this faceverify reads {INDEX_VERSION}")
    model, pipeline, dim, photos = (header.get(k) for k in ("model", "pipeline", "embedding_size", "photos"))
    if not (isinstance(model, str) and isinstance(pipeline, str) and isinstance(dim, int) and isinstance(photos, list)):
        raise _Unusable("damaged index (header fields missing)")
    if embeddings.dtype != np.float32 or embeddings.shape != (len(photos), dim) or dim < 1:
        raise _Unusable(f"damaged index (embeddings {embeddings.dtype} {embeddings.shape} for {len(photos)} photos)")
    if not np.isfinite(embeddings).all():
        raise _Unusable("damaged index (embeddings not finite)")
    rows: dict[str, tuple[int, int, int]] = {}
    for row, entry in enumerate(photos):
        if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str)
                and all(isinstance(v, int) for v in entry[1:])) or entry[0] in rows:
            raise _Unusable(f"damaged index (photo entry {row})")
        rows[entry[0]] = (entry[1], entry[2], row)
    return _Stored(model, pipeline, rows, embeddings)


def write_index(path: Path, model: str, pipeline: str, photos: list[Photo], embeddings: np.ndarray) -> None:
    """Write the index atomically, owner-only from its first byte (the temporary file is created 0600)."""
    header = {
        "format": INDEX_FORMAT, "version": INDEX_VERSION, "model": model, "pipeline": pipeline,
        "embedding_size": int(embeddings.shape[1]),
        "photos": [[p.path, p.size, p.mtime_ns] for p in photos],
    }
    raw = np.frombuffer(json.dumps(header, separators=(",", ":")).encode("utf-8"), np.uint8)
    with atomic_path(path, mode=INDEX_MODE) as tmp, open(tmp, "wb") as handle:  # a file object: savez adds no suffix
        np.savez(handle, header=raw, embeddings=embeddings)


def _embed(embed: EmbedFn, root: Path, photos: list[Photo], dim: int | None) -> np.ndarray:
    """Embed photos through the caller's function and check what comes back."""
    if not photos:
        return np.zeros((0, dim or 0), np.float32)
    out = np.asarray(embed([root / p.path for p in photos]), np.float32)
    if out.ndim != 2 or out.shape[0] != len(photos) or (dim is not None and out.shape[1] != dim):
        raise ValueError(f"embed returned shape {out.shape} for {len(photos)} photos (embedding size {dim})")
    bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
    if len(bad):
        raise FaceverifyError(f"{root / photos[bad[0]].path}: the model's embedding is not finite")
    return out


def load_gallery(
    gallery: str | os.PathLike,
    embed: EmbedFn,
    model_id: str,
    pipeline_key: str,
    index: str | os.PathLike | None = None,
) -> tuple[Gallery, IndexStatus]:
    """The gallery's photos and embeddings, through its index: reused, updated for changed photos, or rebuilt.

    `embed(paths)` returns (len(paths), D) embeddings (the caller's face pipeline and model); `model_id` is
    `model_identity(model.path)`; `pipeline_key` names the face-pipeline settings that change embeddings.
    Only photos new or changed since the index was written are embedded; the index is rewritten only when
    something changed. Photos are stat'ed before they are embedded, so a photo edited meanwhile is seen next run.
    """
    root = Path(gallery)
    path = Path(index) if index is not None else default_index_path(root)
    if path.is_dir():
        raise FaceverifyError(f"{path}: is a directory, expected a gallery index file")
    if path.name.lower().endswith(IMAGE_SUFFIXES):  # rebuilding would overwrite what is likely a photo
        raise FaceverifyError(f"{path}: an image file name, expected a gallery index file (.npz)")
    photos = scan(root)
    people = len({p.person for p in photos})
    stored, reason, damaged = None, "", False
    if path.exists():
        try:
            stored = _read(path)
        except _Unusable as exc:
            reason, damaged = str(exc), True
    if stored is not None and stored.model != model_id:
        stored, reason = None, "the model changed"
    elif stored is not None and stored.pipeline != pipeline_key:
        stored, reason = None, "the face-pipeline settings changed"
    if stored is None:
        check_output(path)  # before any embedding: an index that cannot be written fails now, not after the work
        embeddings = _embed(embed, root, photos, None)
        write_index(path, model_id, pipeline_key, photos, embeddings)
        status = IndexStatus("rebuilt" if reason else "created", path, len(photos), people, reason=reason,
                             damaged=damaged)
        return Gallery.build(root, photos, embeddings), status
    dim = stored.embeddings.shape[1]
    kept = {p.path: stored.rows[p.path][2] for p in photos
            if p.path in stored.rows and stored.rows[p.path][:2] == (p.size, p.mtime_ns)}
    fresh = [p for p in photos if p.path not in kept]
    changed = sum(p.path in stored.rows for p in fresh)
    removed = len(set(stored.rows) - {p.path for p in photos})
    if not fresh and not removed:
        return Gallery.build(root, photos, stored.embeddings[[kept[p.path] for p in photos]]), IndexStatus(
            "reused", path, len(photos), people)
    check_output(path)
    new = _embed(embed, root, fresh, dim)
    source = np.array([kept.get(p.path, -1) for p in photos], np.int64)  # row in the old index, -1: embedded now
    embeddings = np.zeros((len(photos), dim), np.float32)
    embeddings[source >= 0] = stored.embeddings[source[source >= 0]]
    embeddings[source < 0] = new  # `fresh` is in the same order as `photos`
    write_index(path, model_id, pipeline_key, photos, embeddings)
    status = IndexStatus("updated", path, len(photos), people, added=len(fresh) - changed, removed=removed,
                         changed=changed)
    return Gallery.build(root, photos, embeddings), status
