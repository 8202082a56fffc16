"""The project's one error type, and how every entry point ends on it: one clear line and exit code 2."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

EXIT_SAME = 0
EXIT_DIFFERENT = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130  # Ctrl-C, SIGINT or SIGTERM, as shells report a death by SIGINT
INTERRUPTED = "error: interrupted"


class FaceverifyError(Exception):
    """An expected failure (bad input, missing data, broken model) with a one-line message for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))

    @property
    def message(self) -> str:
        """The single line shown to the user."""
        return str(self)


class NoFaceError(FaceverifyError):
    """A photo in which the face pipeline found no face (training falls back on the fixed crop for these)."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first non-empty line of an exception's text (its type name when it has none), cut to `limit` characters."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:limit]


def print_error(message: str) -> None:
    """Write one `error: ...` line on stderr, unwrapped and uncoloured, so scripts and people can read it."""
    sys.stderr.write(f"error: {' '.join(message.split())}\n")
    sys.stderr.flush()


def expected_exit(exc: BaseException, interrupted: str | None = INTERRUPTED) -> int | None:
    """The exit code of an expected ending, after its one line on stderr; None for any other exception.

    A FaceverifyError: its `error:` line and EXIT_ERROR. An interrupt: the `interrupted` line (None: nothing) and
    EXIT_INTERRUPTED.
    """
    if isinstance(exc, FaceverifyError):
        print_error(exc.message)
        return EXIT_ERROR
    if isinstance(exc, KeyboardInterrupt):
        if interrupted:
            sys.stderr.write(f"{interrupted}\n")
            sys.stderr.flush()
        return EXIT_INTERRUPTED
    return None


@contextlib.contextmanager
def entry_point(interrupted: str | None = INTERRUPTED, *, sigterm: bool = False) -> Iterator[None]:
    """Run an entry point's work so a FaceverifyError or an interrupt ends the process as `expected_exit` says.

    It leaves by SystemExit, which a Typer command passes on and `sys.exit(main())` ends with alike, no traceback.
    `sigterm`: SIGTERM raises KeyboardInterrupt as Ctrl-C does, so a killed run still removes its temporary files.
    """
    if sigterm:
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    except (FaceverifyError, KeyboardInterrupt) as exc:
        raise SystemExit(expected_exit(exc, interrupted)) from None


def require_file(path: Path, expected: str, missing: str = "no such file") -> None:
    """The check every input file gets first: it exists and is not a directory, else one line naming it."""
    if not path.exists():
        raise FaceverifyError(f"{path}: {missing}")
    if path.is_dir():
        raise FaceverifyError(f"{path}: is a directory, expected {expected}")


def read_text(path: Path, expected: str) -> str:
    """A whole UTF-8 text file (a leading byte-order mark dropped), or one line saying why not."""
    require_file(path, expected)
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FaceverifyError(f"{path}: not a text file (invalid UTF-8)") from None
    except OSError as exc:
        raise FaceverifyError(f"{path}: cannot read ({exc.strerror or exc})") from None
