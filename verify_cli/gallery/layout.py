"""The gallery folder: which photos it holds and whose they are (a person's name is a folder or a file name).

Rules, in one place:
- `DIR/<name>/...` : every photo anywhere under the folder `<name>` is a photo of `<name>`;
- `DIR/<name>.jpg` : a photo at the top level is a photo of its file name without the suffix;
- both may mix, and `DIR/alice.jpg` with `DIR/alice/*.png` are all photos of `alice`;
- photos are files with an image suffix (IMAGE_SUFFIXES, any case); other files (notes, captions) are ignored,
  and so is everything hidden (a name starting with `.`, which covers the index file and its temporary files);
- a person folder without a photo, a gallery without any, or a folder or photo that cannot be read is an error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from verify_cli.errors import FaceverifyError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
LAYOUT_HINT = "put one folder per person (DIR/<name>/*.jpg) or files named <name>.jpg in it"


@dataclass(frozen=True)
class Photo:
    """One gallery photo: its path relative to the gallery ('/'-separated), its person, and what says it changed."""

    path: str
    person: str
    size: int
    mtime_ns: int


def is_photo(name: str) -> bool:
    """A file name the gallery counts as a photo: not hidden, with an image suffix."""
    return not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)


def _entries(folder: Path) -> list[os.DirEntry]:
    """A folder's visible entries sorted by name, or one line saying why it cannot be read."""
    try:
        with os.scandir(folder) as it:
            return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as exc:
        raise FaceverifyError(f"{folder}: cannot read the folder ({exc.strerror or exc})") from None


def _photo(root: Path, path: Path, person: str) -> Photo:
    """Stat a photo (size, modification time in ns) and check it can be read."""
    try:
        st = path.stat()
    except OSError as exc:
        raise FaceverifyError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not os.access(path, os.R_OK):
        raise FaceverifyError(f"{path}: cannot read (permission denied)")
    return Photo(path.relative_to(root).as_posix(), person, st.st_size, st.st_mtime_ns)


def _person_photos(root: Path, folder: Path) -> list[Photo]:
    """Every photo under a person's folder, at any depth (hidden and linked folders skipped), in path order."""
    photos: list[Photo] = []
    stack = [folder]
    while stack:
        here = stack.pop()
        for entry in _entries(here):
            path = here / entry.name
            if entry.is_dir(follow_symlinks=False):  # a linked folder inside could loop back: not followed
                stack.append(path)
            elif is_photo(entry.name) and entry.is_file():
                photos.append(_photo(root, path, folder.name))
    return sorted(photos, key=lambda p: p.path)


def scan(root: str | os.PathLike) -> list[Photo]:
    """The gallery's photos sorted by person then path, or one line saying what is wrong with the folder."""
    root = Path(root)
    if not root.exists():
        raise FaceverifyError(f"{root}: no such gallery folder")
    if not root.is_dir():
        raise FaceverifyError(f"{root}: is not a folder; a gallery is a folder: {LAYOUT_HINT}")
    photos: list[Photo] = []
    for entry in _entries(root):
        path = root / entry.name
        if entry.is_dir():
            found = _person_photos(root, path)
            if not found:
                raise FaceverifyError(f"{path}: no photos of {entry.name} ({', '.join(IMAGE_SUFFIXES)})")
            photos += found
        elif is_photo(entry.name) and entry.is_file():
            photos.append(_photo(root, path, path.stem))
    if not photos:
        raise FaceverifyError(f"{root}: empty gallery (no photos); {LAYOUT_HINT}")
    return sorted(photos, key=lambda p: (p.person, p.path))
