"""Torch-free reader for Labeled Faces in the Wild in torchvision's layout: pairs, people and image paths."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from verify_cli.errors import FaceverifyError, read_text

BASE_FOLDER = "lfw-py"
IMAGE_SETS = {"deepfunneled": "lfw-deepfunneled", "funneled": "lfw_funneled", "original": "lfw"}
PAIRS_FILES = {"train": "pairsDevTrain.txt", "test": "pairsDevTest.txt", "10fold": "pairs.txt"}
PEOPLE_FILES = {"train": "peopleDevTrain.txt", "test": "peopleDevTest.txt", "all": "lfw-names.txt"}
DATA_ENV = "FACEVERIFY_DATA"
DEFAULT_DATA_ROOT = Path("data/lfw")  # relative to the current folder; `make data` prepares it in a checkout
DOWNLOAD_HINT = "prepare it with `make data` in a faceverify checkout, or pass --data-root / set FACEVERIFY_DATA"


def resolve_data_root(option: str | os.PathLike | None = None) -> Path:
    """The LFW data root: the --data-root option, else $FACEVERIFY_DATA, else ./data/lfw (read at call time)."""
    if option is not None and str(option):
        return Path(option)
    return Path(os.environ.get(DATA_ENV) or DEFAULT_DATA_ROOT)


@dataclass(frozen=True)
class Pair:
    """One verification pair: two image paths relative to the image folder, the label and its fold."""

    left: str
    right: str
    same: bool
    fold: int = 0

    @property
    def people(self) -> tuple[str, str]:
        """The two person names (equal for a matched pair)."""
        return person_of(self.left), person_of(self.right)


def image_relpath(name: str, index: int) -> str:
    """LFW's file naming: `<name>/<name>_<index:04d>.jpg`."""
    return f"{name}/{name}_{index:04d}.jpg"


def person_of(relpath: str) -> str:
    """The person a relative image path belongs to."""
    return relpath.split("/", 1)[0]


def _read_lines(path: Path) -> list[str]:
    text = read_text(path, "a text file")
    lines = [line.rstrip("\r") for line in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise FaceverifyError(f"{path}: empty file")
    return lines


def _int(field: str, path: Path, lineno: int, what: str) -> int:
    try:
        value = int(field)
    except ValueError:
        raise FaceverifyError(f"{path}:{lineno}: {what} {field!r} is not an integer") from None
    if value < 0 or (what == "image number" and value < 1):
        raise FaceverifyError(f"{path}:{lineno}: {what} {value} out of range")
    return value


def parse_pairs(path: str | os.PathLike) -> list[Pair]:
    """Parse an LFW pairs file: View 1 (`N`, then N matched and N mismatched lines) or View 2 (`F<TAB>N`)."""
    path = Path(path)
    lines = _read_lines(path)
    header = lines[0].split()
    if len(header) == 1:
        folds, per_class = 1, _int(header[0], path, 1, "pair count")
    elif len(header) == 2:
        folds, per_class = _int(header[0], path, 1, "fold count"), _int(header[1], path, 1, "pair count")
    else:
        raise FaceverifyError(f"{path}:1: header must be 'N' or 'FOLDS<TAB>N', got {lines[0]!r}")
    if folds < 1 or per_class < 1:
        raise FaceverifyError(f"{path}:1: header {lines[0]!r} announces no pairs")
    expected = folds * 2 * per_class
    body = lines[1:]
    if len(body) != expected:
        raise FaceverifyError(
            f"{path}: header announces {expected} pair lines ({folds} fold(s) x 2 x {per_class}), found {len(body)}"
        )
    pairs = []
    for offset, line in enumerate(body):
        lineno = offset + 2
        fold, within = divmod(offset, 2 * per_class)
        matched = within < per_class
        fields = line.split("\t") if "\t" in line else line.split()
        if matched:
            if len(fields) != 3:
                raise FaceverifyError(f"{path}:{lineno}: matched pair needs 'name<TAB>i<TAB>j', got {line!r}")
            name, i, j = fields
            left = image_relpath(name, _int(i, path, lineno, "image number"))
            right = image_relpath(name, _int(j, path, lineno, "image number"))
        else:
            if len(fields) != 4:
                raise FaceverifyError(
                    f"{path}:{lineno}: mismatched pair needs 'name1<TAB>i<TAB>name2<TAB>j', got {line!r}"
                )
            name1, i, name2, j = fields
            left = image_relpath(name1, _int(i, path, lineno, "image number"))
            right = image_relpath(name2, _int(j, path, lineno, "image number"))
        if not all(fields[k] and fields[k] not in (".", "..") and "/" not in fields[k] for k in (0, len(fields) - 2)):
            raise FaceverifyError(f"{path}:{lineno}: invalid person name in {line!r}")
        pairs.append(Pair(left, right, matched, fold))
    return pairs


def parse_people(path: str | os.PathLike) -> dict[str, int]:
    """Parse a people file (`N`, then `name<TAB>count` lines) or lfw-names.txt (no header) into name -> count."""
    path = Path(path)
    lines = _read_lines(path)
    people: dict[str, int] = {}
    start = 1 if len(lines[0].split()) == 1 else 0
    announced = _int(lines[0].strip(), path, 1, "people count") if start else None
    for lineno, line in enumerate(lines[start:], start + 1):
        fields = line.split()
        if len(fields) != 2:
            raise FaceverifyError(f"{path}:{lineno}: expected 'name<TAB>count', got {line!r}")
        people[fields[0]] = _int(fields[1], path, lineno, "image count")
    if announced is not None and len(people) != announced:
        raise FaceverifyError(f"{path}: header announces {announced} people, found {len(people)}")
    return people


@dataclass(frozen=True)
class LFWRoot:
    """A data root in torchvision's layout: `ROOT/lfw-py/<image folder>/` and the protocol text files."""

    root: Path
    image_set: str = "deepfunneled"

    @classmethod
    def open(cls, root: str | os.PathLike, image_set: str = "deepfunneled") -> LFWRoot:
        """Check that the root and its image folder exist; raise one clear line naming what is missing."""
        if image_set not in IMAGE_SETS:
            raise FaceverifyError(f"unknown image set {image_set!r}; choose one of {', '.join(IMAGE_SETS)}")
        lfw = cls(Path(root), image_set)
        if not lfw.images.is_dir():
            raise FaceverifyError(
                f"LFW images not found at {lfw.images}; {DOWNLOAD_HINT}"
            )
        return lfw

    @property
    def base(self) -> Path:
        """The `lfw-py` folder holding the text files."""
        return self.root / BASE_FOLDER

    @property
    def images(self) -> Path:
        """The folder of per-person image folders."""
        return self.base / IMAGE_SETS[self.image_set]

    def pairs_path(self, split: str) -> Path:
        """`train`, `test` or `10fold` name the protocol files; anything else is taken as a path."""
        if split in PAIRS_FILES:
            path = self.base / PAIRS_FILES[split]
            if not path.exists():
                raise FaceverifyError(f"{path}: no such file; {DOWNLOAD_HINT}")
            return path
        return Path(split)

    def pairs(self, split: str) -> list[Pair]:
        """The pairs of a split (or of a pairs file path)."""
        return parse_pairs(self.pairs_path(split))

    def people(self, split: str) -> dict[str, int]:
        """The people of `train` or `test` (View 1), or `all` of LFW (lfw-names.txt), name -> image count."""
        path = self.base / PEOPLE_FILES[split]
        return parse_people(path)

    def image(self, relpath: str) -> Path:
        """Absolute path of an image named relative to the image folder."""
        return self.images / relpath

    def person_images(self, name: str, count: int) -> list[str]:
        """Relative paths of a person's images, as a people file counts them."""
        return [image_relpath(name, i) for i in range(1, count + 1)]
