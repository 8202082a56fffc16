"""What the export stage's commands share: SIGTERM taken as Ctrl-C, and every expected failure as one line."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

import typer

from verify_cli.errors import EXIT_ERROR, EXIT_INTERRUPTED, FaceverifyError


@contextlib.contextmanager
def entry_point() -> Iterator[None]:
    """Run a command's work: a FaceverifyError becomes one `error:` line and exit 2, an interrupt exit 130.

    SIGTERM raises KeyboardInterrupt as Ctrl-C does, so a killed run still removes its temporary files.
    """
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    except FaceverifyError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(EXIT_ERROR) from None
    except KeyboardInterrupt:
        typer.echo("interrupted: no model written", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
