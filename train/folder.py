"""Your own identities: `python -m train --data imagefolder:PATH`, one folder of images per person.

PATH/<name>/*.jpg (also .jpeg, .png, .bmp, .webp). The identity objective trains on them as on LFW's DevTrain
people: a seeded tenth of the people is held out, and the threshold and calibration come from pairs among
them. Every image goes through serving's face pipeline (faces="aligned"), since these are photos, not LFW's
crops. A person with one image is kept: in training as an extra CosFace class (as LFW's one-image people are),
held out as one side of different-person pairs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from verify_cli.errors import FaceverifyError

PREFIX = "imagefolder:"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SMOKE_PEOPLE = 24  # --dry-run: the first people, in name order


@dataclass(frozen=True)
class ImageFolder:
    """A folder of per-person image folders: the people and each one's images (paths relative to `root`)."""

    root: Path
    people: dict[str, list[str]]

    @classmethod
    def open(cls, root: str | os.PathLike) -> ImageFolder:
        """Read the layout; a layout that cannot train is one clear line (FaceverifyError)."""
        root = Path(root)
        if not root.is_dir():
            raise FaceverifyError(f"{root}: no such folder (--data imagefolder:PATH names a folder of per-person "
                                  "folders, PATH/<name>/*.jpg)")
        people: dict[str, list[str]] = {}
        loose = 0
        try:
            for entry in sorted(root.iterdir()):
                if entry.is_dir() and not entry.name.startswith("."):
                    files = sorted(f.name for f in entry.iterdir() if f.is_file() and _is_image(f.name))
                    if files:
                        people[entry.name] = [f"{entry.name}/{f}" for f in files]
                elif entry.is_file() and _is_image(entry.name):
                    loose += 1
        except OSError as exc:
            raise FaceverifyError(f"{root}: cannot read the folder ({exc.strerror or exc})") from None
        if not people:
            where = f"it holds {loose} images directly; " if loose else ""
            raise FaceverifyError(f"{root}: no person folders with images; {where}put each person's images in "
                                  "PATH/<name>/")
        if len(people) < 2 or not any(len(images) >= 2 for images in people.values()):
            raise FaceverifyError(f"{root}: {len(people)} people, none with two images or fewer than two people; "
                                  "training needs several people and some with two images or more")
        return cls(root, people)

    @classmethod
    def from_spec(cls, spec: str) -> ImageFolder:
        """`imagefolder:PATH` (TrainConfig.data) opened."""
        return cls.open(spec.removeprefix(PREFIX))

    def image(self, relpath: str) -> Path:
        """The file of an image named relative to the root."""
        return self.root / relpath

    def subset(self, count: int) -> ImageFolder:
        """The first `count` people (--dry-run)."""
        return ImageFolder(self.root, dict(list(self.people.items())[:count]))

    def describe(self) -> str:
        """The layout in words: people, images, and what happens to one-image people."""
        single = sum(len(images) == 1 for images in self.people.values())
        images = sum(len(v) for v in self.people.values())
        text = f"{len(self.people)} people, {images} images"
        if single:
            text += (f"; {single} people with one image are kept (extra classes in training, one side of "
                     "different-person pairs in validation)")
        return text


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith(".")


def spec_of(path: str | os.PathLike) -> str:
    """TrainConfig.data for a folder: its absolute path, so that export finds the validation people again."""
    return PREFIX + str(Path(path).resolve())
