"""The `faceverify` Typer app and its one error boundary: every exception of every command meets `exit_code`.

The boundary sits in the command group's `main`, so the console script, `python -m verify_cli.cli` and
in-process callers (Typer's test runner) all pass through it: parsing, the commands and their output.
"""

import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from verify_cli import __version__
from verify_cli.cli.calibrate import calibrate
from verify_cli.cli.compare import compare
from verify_cli.cli.embed import embed
from verify_cli.cli.evaluate import evaluate
from verify_cli.cli.identify import identify
from verify_cli.cli.info import info
from verify_cli.cli.serve import serve
from verify_cli.errors import EXIT_ERROR, expected_exit, print_error

DEBUG_ENV = "FACEVERIFY_DEBUG"


def exit_code(exc: BaseException) -> int:
    """The exit code for an exception that ended a command, after writing its one line (if any) on stderr.

    FaceverifyError and usage errors: 2 and one `error:` line; Ctrl-C: 130; a closed stdout (`| head`): 2,
    quietly; anything else is a bug: 2 and `error: internal error: ...` (FACEVERIFY_DEBUG=1 re-raises it).
    """
    if isinstance(exc, typer.Exit):
        return exc.exit_code
    expected = expected_exit(KeyboardInterrupt() if isinstance(exc, typer.Abort) else exc)  # Abort: a prompt's Ctrl-C
    if expected is not None:
        return expected
    if isinstance(exc, typer.exceptions.TyperException):  # usage: a bad option value, an unknown option or command
        message = exc.format_message()
        if message.strip():  # empty when no arguments were given and the help was shown instead
            ctx = getattr(exc, "ctx", None)
            print_error(f"{message} (see {ctx.command_path if ctx is not None else 'faceverify'} --help)")
        return EXIT_ERROR
    if isinstance(exc, BrokenPipeError):  # the reader went away: no more output, and no second error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    if os.environ.get(DEBUG_ENV):
        raise exc
    print_error(f"internal error: {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for a traceback)")
    return EXIT_ERROR


class Boundary(TyperGroup):
    """The command group whose `main` parses, runs the command, and maps whatever it raises to an exit code."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, windows_expand_args: bool = True, **extra: Any) -> int:
        """Run the command line `args` (default: sys.argv); exit with its code, or return it if not standalone.

        `complete_var` (completion is off) and `windows_expand_args` are taken for click's signature and unused.
        """
        try:
            with self.make_context(prog_name or self.name or "faceverify",
                                   list(sys.argv[1:] if args is None else args), **extra) as ctx:
                self.invoke(ctx)
            code = 0
        except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - this is the one place that maps them all
            code = exit_code(exc)
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=Boundary,
    name="faceverify",
    help="Say whether two face photos show the same person (Siamese CNN trained on LFW, run by ONNX Runtime).",
    epilog="Exit codes: 0 same person (compare) or every query matched (identify), 1 different people (compare) or "
           "a query unknown (identify), 2 any error, 130 interrupted.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
for command in (compare, identify, evaluate, calibrate, embed, info, serve):
    app.command()(command)


def _version(value: bool) -> None:
    if value:
        print(f"faceverify {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_version,
                                          help="Show the version and exit.")] = False,
) -> None:
    """Say whether two face photos show the same person (Siamese CNN trained on LFW, run by ONNX Runtime)."""


def main() -> None:
    """Console-script entry point (`faceverify`): run the command line and exit with its code."""
    app(prog_name="faceverify")
