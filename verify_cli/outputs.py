"""Output files: checked before any work starts, written whole to a temporary file, then renamed into place."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
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


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, make_parents: bool = False, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; on success rename it over `path`, else remove it.

    The one atomic-write implementation of the project (training, export, bench and the CLI use it). A reader
    of `path` sees the old file or the whole new one, never a half-written file. `make_parents` creates the
    folder (run folders); otherwise a missing folder is an error, as for every user-named output. The file gets
    `mode` (0o600 for private data: the temporary file is created owner-only, so no one else can ever open it),
    else 0o666 less the umask, like any new file.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if make_parents:
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FaceverifyError(f"{parent}: cannot create the folder ({exc.strerror or exc})") from None
    check_output(path)
    tmp = None
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
        os.close(fd)
        tmp = Path(name)
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask() if mode is None else mode)
        os.replace(tmp, path)
    except OSError as exc:
        raise FaceverifyError(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()


def write_atomic(path: str | os.PathLike, data: bytes, make_parents: bool = False) -> None:
    """Write `data` whole to `path` (through `atomic_path`)."""
    with atomic_path(path, make_parents) as tmp:
        tmp.write_bytes(data)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_all(files: dict[Path, bytes]) -> None:
    """Write several finished outputs, each atomically (everything was rendered in memory first)."""
    for path, data in files.items():
        write_atomic(path, data)
