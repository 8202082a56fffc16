"""The project's one error type: every expected failure becomes one clear line and exit code 2."""

from __future__ import annotations

EXIT_SAME = 0
EXIT_DIFFERENT = 1
EXIT_ERROR = 2


class FaceverifyError(Exception):
    """An expected failure (bad input, missing data, broken model) with a one-line message for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))

    @property
    def message(self) -> str:
        """The single line shown to the user."""
        return str(self)


def print_error(message: str) -> None:
    """Write one `error: ...` line on stderr, unwrapped and uncoloured, so scripts and people can read it."""
    import sys

    sys.stderr.write(f"error: {' '.join(message.split())}\n")
    sys.stderr.flush()
