"""Lists of image-path pairs for `faceverify compare --pairs-file`: TSV (`a<TAB>b`) or CSV (`a,b`) lines."""

from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass
from pathlib import Path

from verify_cli.errors import FaceverifyError, read_text

HEADERS = {("left", "right"), ("a", "b"), ("image_a", "image_b")}


@dataclass(frozen=True)
class PathPairs:
    """Pairs of image paths as written in the list, the list's delimiter and each pair's line number."""

    pairs: list[tuple[str, str]]
    delimiter: str
    lines: list[int]


def _read_text(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    return read_text(Path(source), "a list of image pairs")


def read_path_pairs(source: str) -> PathPairs:
    """Parse a pairs list ('-' is stdin): blank and '#' lines skipped, an optional `left,right` header first.

    A line with a tab is split on tabs, otherwise it is read as CSV (quote paths that contain commas);
    each line needs exactly two fields, or at least two when it comes from our own scores output.
    """
    name = "<stdin>" if source == "-" else source
    text = _read_text(source)
    pairs: list[tuple[str, str]] = []
    lines: list[int] = []
    delimiter = ""
    header_seen = False
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        sep = "\t" if "\t" in line else ","
        delimiter = delimiter or sep
        fields = next(csv.reader(io.StringIO(line), delimiter=sep))
        fields = [f.strip() for f in fields]
        if not pairs and not header_seen and tuple(f.lower() for f in fields[:2]) in HEADERS:
            header_seen = True
            continue
        if len(fields) < 2 or (len(fields) > 2 and not header_seen) or not fields[0] or not fields[1]:
            raise FaceverifyError(f"{name}:{lineno}: expected two image paths ('a<TAB>b' or 'a,b'), got {line!r}")
        pairs.append((fields[0], fields[1]))
        lines.append(lineno)
    if not pairs:
        raise FaceverifyError(f"{name}: no image pairs in the list")
    return PathPairs(pairs, delimiter or ",", lines)
