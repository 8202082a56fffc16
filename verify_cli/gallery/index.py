"""The gallery index: the gallery's embeddings cached in one file, reused, updated or rebuilt as the gallery changes.

The file is an `.npz` (NumPy's zip of arrays) holding two arrays and nothing else:
  header      uint8, UTF-8 JSON: format, version, the model's identity, the face-pipeline key, the embedding size,
              every photo's [relative path, size, modification time in ns] in row order, and the photos left out
              as [relative path, size, modification time in ns, why] (no usable face)
  embeddings  float32 (photos, embedding size)
It is read with `np.load(allow_pickle=False)`, so a file holding pickled objects is refused, never unpickled, and
written atomically with mode 0600 (owner only): embeddings of faces are biometric data.

A photo whose size or modification time differs from the index is embedded again; a model or face-pipeline
change rebuilds everything, so embeddings from two models are never mixed; a file that is not a whole index of
this format is rebuilt with a warning. A photo the embed function could not use (no face found, not an image) is
left out of the gallery and remembered with its size and time: it is tried again only when the file changes or
the index is rebuilt, not on every run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
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



@dataclass(frozen=True)
class Embeddings:
    """What an embed function may return instead of a bare array: the rows, and the photos it could not use."""

    vectors: np.ndarray  # (N, D) float32; the rows of skipped photos are ignored
    skipped: dict[int, str] = field(default_factory=dict)  # row -> why the photo has no embedding


EmbedFn = Callable[[list[Path]], "np.ndarray | Embeddings"]


def default_index_path(gallery: str | os.PathLike) -> Path:
    """Where the index lives unless the caller names a file: hidden, inside the gallery folder."""
    return Path(gallery) / INDEX_NAME


def model_identity(path: str | os.PathLike) -> str:
    """The model's identity for the index: SHA-256 of the whole ONNX file.

    The whole file, not the tower's weights alone: any change to weights, graph or metadata (preprocessing)
    rebuilds the index, with no parsing and no onnx package; hashing the 18 MB bundled model takes a few tens of ms.
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


def _count(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


SKIPPED_LISTED = 10  # photos named in the warning line; the rest are counted


@dataclass(frozen=True)
class IndexStatus:
    """What happened to the index: created, reused, updated (+added, -removed, changed) or rebuilt (and why)."""

    action: str  # "created" | "reused" | "updated" | "rebuilt"
    index: Path
    photos: int  # photos in the gallery (with a usable face)
    people: int
    added: int = 0
    removed: int = 0
    changed: int = 0
    reason: str = ""  # why it was rebuilt
    damaged: bool = False  # rebuilt because the file was not a whole index of this format
    embedded: int = 0  # photos read and embedded in this run (those found unusable included)
    skipped: tuple[tuple[str, str], ...] = ()  # (photo path, why) of every photo left out, this run or before

    @property
    def warning(self) -> str | None:
        """One line for stderr when the old index was unusable (damaged, unreadable, foreign), else None."""
        return f"{self.index}: {self.reason}; rebuilt it" if self.damaged else None

    @property
    def skipped_warning(self) -> str | None:
        """One line for stderr naming the photos left out of the gallery (the first few), else None."""
        if not self.skipped:
            return None
        named = ", ".join(f"{path} ({why})" for path, why in self.skipped[:SKIPPED_LISTED])
        more = len(self.skipped) - SKIPPED_LISTED
        return (f"{_count(len(self.skipped), 'gallery photo')} left out, no usable face: {named}"
                + (f", and {more} more" if more > 0 else ""))

    def describe(self) -> str:
        """One line for people: what happened, the gallery's size, how many photos were embedded, and left out."""
        size = f"{_count(self.photos, 'photo')} of {_count(self.people, 'person', 'people')}"
        size += f", {self.embedded} embedded" if self.embedded else ", nothing embedded"
        if self.skipped:
            size += f", {_count(len(self.skipped), 'photo')} left out (no usable face)"
        if self.action == "updated":
            parts = [f"+{self.added}", f"-{self.removed}"] + ([f"{self.changed} changed"] if self.changed else [])
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
    skipped: dict[str, tuple[int, int, str]]  # path -> (size, mtime_ns, why)


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
    listed = header.get("skipped", [])
    if not isinstance(listed, list):
        raise _Unusable("damaged index (skipped photos)")
    skipped: dict[str, tuple[int, int, str]] = {}
    for n, entry in enumerate(listed):
        if not (isinstance(entry, list) and len(entry) == 4 and isinstance(entry[0], str) and isinstance(entry[3], str)
                and all(isinstance(v, int) for v in entry[1:3])) or entry[0] in rows or entry[0] in skipped:
            raise _Unusable(f"damaged index (skipped photo entry {n})")
        skipped[entry[0]] = (entry[1], entry[2], entry[3])
    return _Stored(model, pipeline, rows, embeddings, skipped)


def write_index(path: Path, model: str, pipeline: str, photos: list[Photo], embeddings: np.ndarray,
                skipped: list[tuple[Photo, str]] = ()) -> None:
    """Write the index atomically, owner-only from its first byte (the temporary file is created 0600)."""
    header = {
        "format": INDEX_FORMAT, "version": INDEX_VERSION, "model": model, "pipeline": pipeline,
        "embedding_size": int(embeddings.shape[1]),
        "photos": [[p.path, p.size, p.mtime_ns] for p in photos],
        "skipped": [[p.path, p.size, p.mtime_ns, why] for p, why in skipped],
    }
    raw = np.frombuffer(json.dumps(header, separators=(",", ":")).encode("utf-8"), np.uint8)
    with atomic_path(path, mode=INDEX_MODE) as tmp, open(tmp, "wb") as handle:  # a file object: savez adds no suffix
        np.savez(handle, header=raw, embeddings=embeddings)


def _embed(embed: EmbedFn, root: Path, photos: list[Photo], dim: int | None) -> tuple[np.ndarray, dict[int, str]]:
    """Embed photos through the caller's function and check what comes back: the rows, and the photos left out."""
    if not photos:
        return np.zeros((0, dim or 0), np.float32), {}
    got = embed([root / p.path for p in photos])
    out, skipped = (got.vectors, got.skipped) if isinstance(got, Embeddings) else (got, {})
    out = np.asarray(out, np.float32)
    if out.ndim != 2 or out.shape[0] != len(photos) or (dim is not None and out.shape[1] != dim):
        raise ValueError(f"embed returned shape {out.shape} for {len(photos)} photos (embedding size {dim})")
    used = np.ones(len(photos), bool)
    used[list(skipped)] = False
    bad = np.flatnonzero(used & ~np.isfinite(out).all(axis=1))
    if len(bad):
        raise FaceverifyError(f"{root / photos[bad[0]].path}: the model's embedding is not finite")
    return out, dict(skipped)


def _changed_settings(old: str, new: str) -> str:
    """Which face-pipeline settings differ, when both keys are JSON objects (else nothing to name).

    Settings held by both sides with other values are named; those on one side only (the detector's settings
    when detection was turned off) follow from them and are named only when nothing else differs.
    """
    def flat(text: str) -> dict[str, object]:
        try:
            data = json.loads(text)
        except ValueError:
            return {}
        if not isinstance(data, dict):
            return {}
        out: dict[str, object] = {}
        for key, value in data.items():
            items = value.items() if isinstance(value, dict) else [("", value)]
            out.update({f"{key}.{sub}" if sub else key: v for sub, v in items})
        return out

    a, b = flat(old), flat(new)
    differ = sorted(k for k in a.keys() & b.keys() if a[k] != b[k])  # settings on one side only follow from these
    return ", ".join(differ or sorted(a.keys() ^ b.keys()))


def load_gallery(
    gallery: str | os.PathLike,
    embed: EmbedFn,
    model_id: str,
    pipeline_key: str,
    index: str | os.PathLike | None = None,
) -> tuple[Gallery, IndexStatus]:
    """The gallery's photos and embeddings, through its index: reused, updated for changed photos, or rebuilt.

    `embed(paths)` returns (len(paths), D) embeddings (the caller's face pipeline and model), or `Embeddings`
    naming the photos it could not use, which are left out of the gallery and remembered; `model_id` is
    `model_identity(model.path)`; `pipeline_key` names the face-pipeline settings that change embeddings.
    Only photos new or changed since the index was written are embedded; the index is rewritten only when
    something changed. Photos are stat'ed before they are embedded, so a photo edited meanwhile is seen next run.
    A gallery where no photo is usable is an error (after the index is written, so the next run knows).
    """
    root = Path(gallery)
    path = Path(index) if index is not None else default_index_path(root)
    if path.is_dir():
        raise FaceverifyError(f"{path}: is a directory, expected a gallery index file")
    if path.name.lower().endswith(IMAGE_SUFFIXES):  # rebuilding would overwrite what is likely a photo
        raise FaceverifyError(f"{path}: an image file name, expected a gallery index file (.npz)")
    photos = scan(root)
    stored, reason, damaged = None, "", False
    if path.exists():
        try:
            stored = _read(path)
        except _Unusable as exc:
            reason, damaged = str(exc), True
    if stored is not None and stored.model != model_id:
        stored, reason = None, "the model changed"
    elif stored is not None and stored.pipeline != pipeline_key:
        which = _changed_settings(stored.pipeline, pipeline_key)
        stored, reason = None, "the face-pipeline settings changed" + (f": {which}" if which else "")

    kept: dict[str, int] = {}  # path -> row in the stored embeddings
    left_out: dict[str, str] = {}  # path -> why, for photos left out before and unchanged since
    known: set[str] = set()
    if stored is not None:
        known = set(stored.rows) | set(stored.skipped)
        for p in photos:
            if p.path in stored.rows and stored.rows[p.path][:2] == (p.size, p.mtime_ns):
                kept[p.path] = stored.rows[p.path][2]
            elif p.path in stored.skipped and stored.skipped[p.path][:2] == (p.size, p.mtime_ns):
                left_out[p.path] = stored.skipped[p.path][2]
    fresh = [p for p in photos if p.path not in kept and p.path not in left_out]
    removed = len(known - {p.path for p in photos})
    dim = stored.embeddings.shape[1] if stored is not None else None
    if stored is not None and not fresh and not removed:
        usable = [p for p in photos if p.path in kept]
        embeddings = stored.embeddings[np.array([kept[p.path] for p in usable], np.int64)]
        status = IndexStatus("reused", path, len(usable), len({p.person for p in usable}),
                             skipped=tuple((str(root / p.path), left_out[p.path]) for p in photos if p.path in left_out))
        return _built(root, usable, embeddings, status)
    check_output(path)  # before any embedding: an index that cannot be written fails now, not after the work
    new, unusable = _embed(embed, root, fresh, dim)
    left_out.update({fresh[i].path: why for i, why in unusable.items()})
    fresh_row = {p.path: i for i, p in enumerate(fresh)}
    usable = [p for p in photos if p.path not in left_out]
    parts = [stored.embeddings[kept[p.path]] if p.path in kept else new[fresh_row[p.path]] for p in usable]
    width = dim if dim is not None else new.shape[1]
    embeddings = np.stack(parts).astype(np.float32) if parts else np.zeros((0, width), np.float32)
    skipped = [(p, left_out[p.path]) for p in photos if p.path in left_out]
    write_index(path, model_id, pipeline_key, usable, embeddings, skipped)
    common = {"embedded": len(fresh), "skipped": tuple((str(root / p.path), why) for p, why in skipped)}
    people = len({p.person for p in usable})
    if stored is None:
        status = IndexStatus("rebuilt" if reason else "created", path, len(usable), people, reason=reason,
                             damaged=damaged, **common)
    else:
        changed = sum(p.path in known for p in fresh)
        status = IndexStatus("updated", path, len(usable), people, added=len(fresh) - changed, removed=removed,
                             changed=changed, **common)
    return _built(root, usable, embeddings, status)


def _built(root: Path, photos: list[Photo], embeddings: np.ndarray, status: IndexStatus) -> tuple[Gallery, IndexStatus]:
    """The gallery and its status, or one line when no photo of it has a usable face."""
    if not photos:
        raise FaceverifyError(f"{root}: no gallery photo has a usable face ({status.skipped_warning})")
    return Gallery.build(root, photos, embeddings), status
