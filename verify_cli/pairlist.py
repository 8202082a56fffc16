"""Lists of image-path pairs for `faceverify compare --pairs-file`: TSV (`a<TAB>b`) or CSV (`a,b`) lines."""

from __future__ import annotations

import csv
import hashlib
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


def _rows(source: str, what: str) -> tuple[list[list[str]], list[tuple[int, str]], str, str]:
    """A list's rows of fields ('-' is stdin), each line's number and text, the delimiter, and the SHA-256 of the
    list's text; blank and '#' lines skipped.

    A line with a tab is split on tabs, otherwise it is read as CSV (quote paths that contain commas).
    """
    name = "<stdin>" if source == "-" else source
    rows: list[list[str]] = []
    lines: list[tuple[int, str]] = []
    delimiter = ""
    text = _read_text(source)
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        sep = "\t" if "\t" in line else ","
        delimiter = delimiter or sep
        rows.append([f.strip() for f in next(csv.reader(io.StringIO(line), delimiter=sep))])
        lines.append((lineno, line))
    if not rows:
        raise FaceverifyError(f"{name}: no {what} in the list")
    return rows, lines, delimiter or ",", hashlib.sha256(text.encode()).hexdigest()


def read_path_pairs(source: str) -> PathPairs:
    """Parse a pairs list ('-' is stdin): an optional `left,right` header first, then two image paths a line
    (at least two when the list comes from our own scores output, which has a header)."""
    name = "<stdin>" if source == "-" else source
    rows, lines, delimiter, _ = _rows(source, "image pairs")
    header = tuple(f.lower() for f in rows[0][:2]) in HEADERS
    pairs: list[tuple[str, str]] = []
    for fields, (lineno, line) in list(zip(rows, lines))[header:]:
        if len(fields) < 2 or (len(fields) > 2 and not header) or not fields[0] or not fields[1]:
            raise FaceverifyError(f"{name}:{lineno}: expected two image paths ('a<TAB>b' or 'a,b'), got {line!r}")
        pairs.append((fields[0], fields[1]))
    if not pairs:
        raise FaceverifyError(f"{name}: no image pairs in the list")
    return PathPairs(pairs, delimiter, [n for n, _ in lines[header:]])


LABELS = {"1": True, "0": False, "same": True, "different": False}


@dataclass(frozen=True)
class LabelledPairs:
    """Pairs of image paths with their truth (True: the same person), and each pair's line number."""

    pairs: list[tuple[str, str]]
    same: list[bool]
    lines: list[int]
    sha256: str  # of the list's text, so a calibrated model names the pairs it was fitted to


def read_labelled_pairs(source: str) -> LabelledPairs:
    """Parse a labelled pairs list: `a<TAB>b<TAB>1|0` (or CSV) a line, 1 (or `same`) for the same person."""
    name = "<stdin>" if source == "-" else source
    rows, lines, _, digest = _rows(source, "labelled pairs")
    header = tuple(f.lower() for f in rows[0][:2]) in HEADERS
    pairs, same = [], []
    for fields, (lineno, line) in list(zip(rows, lines))[header:]:
        if len(fields) != 3 or not fields[0] or not fields[1] or fields[2].lower() not in LABELS:
            raise FaceverifyError(f"{name}:{lineno}: expected two image paths and 1 (same person) or 0 "
                                  f"('a<TAB>b<TAB>1'), got {line!r}")
        pairs.append((fields[0], fields[1]))
        same.append(LABELS[fields[2].lower()])
    if not pairs:
        raise FaceverifyError(f"{name}: no labelled pairs in the list")
    return LabelledPairs(pairs, same, [n for n, _ in lines[header:]], digest)
