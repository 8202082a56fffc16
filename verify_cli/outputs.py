"""Output files: checked before any work starts, written whole to a temporary file, then renamed into place."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from verify_cli.errors import FaceverifyError


def check_output(path: Path) -> Path:
    """Refuse an output path that cannot be written, before any scoring runs (one clear line)."""
    if path.is_dir():
        raise FaceverifyError(f"{path}: is a directory, expected an output file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FaceverifyError(f"{path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise FaceverifyError(f"{path}: folder {parent} is not writable")
    return path


def write_atomic_with(path: Path, write: Callable[[str], None]) -> None:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it over `path`: never a half-written file.

    The one atomic-write implementation of the project (training and export use it too). The temporary file
    is removed on any failure or interrupt; a reader of `path` sees the old file or the whole new one.
    """
    check_output(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent if str(path.parent) else ".")
        os.close(fd)
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        raise FaceverifyError(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path` and rename it over `path`: never a half-written file."""
    write_atomic_with(path, lambda tmp: Path(tmp).write_bytes(data))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_all(files: dict[Path, bytes]) -> None:
    """Write several finished outputs, each atomically (everything was rendered in memory first)."""
    for path, data in files.items():
        write_atomic(path, data)
