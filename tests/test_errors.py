"""`entry_point`, the one way every entry point ends on an expected failure or an interrupt: a line and a code."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import typer
from helpers import REPO
from typer.testing import CliRunner

from verify_cli.errors import EXIT_ERROR, EXIT_INTERRUPTED, FaceverifyError, entry_point

SCRIPT = """
import os, signal, sys
from pathlib import Path
from verify_cli.errors import FaceverifyError, entry_point

def main() -> int:
    with entry_point({interrupted}, sigterm={sigterm}):
        try:
            Path(sys.argv[1]).write_text("half")
            {body}
        finally:
            Path(sys.argv[1]).unlink()
    return 0

sys.exit(main())
"""


def run_main(body: str, tmp_path: Path, interrupted: str | None = "'error: interrupted'",
             sigterm: bool = False) -> subprocess.CompletedProcess:
    """A plain `main()` whose work is `body`, run as `sys.exit(main())` in its own process."""
    code = textwrap.dedent(SCRIPT).format(body=body, interrupted=interrupted, sigterm=sigterm)
    return subprocess.run([sys.executable, "-c", code, str(tmp_path / "temporary")], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.parametrize(
    ("body", "sigterm", "code", "stderr"),
    [
        ("raise FaceverifyError('photo.jpg:\\n  no face found')", False, EXIT_ERROR,
         "error: photo.jpg: no face found\n"),
        ("raise KeyboardInterrupt", False, EXIT_INTERRUPTED, "error: interrupted\n"),
        ("os.kill(os.getpid(), signal.SIGTERM); signal.pause()", True, EXIT_INTERRUPTED, "error: interrupted\n"),
        ("print('done')", False, 0, ""),
    ],
    ids=["error", "ctrl-c", "sigterm", "success"],
)
def test_a_plain_main_ends_with_one_line_and_its_code(body: str, sigterm: bool, code: int, stderr: str,
                                                      tmp_path: Path) -> None:
    done = run_main(body, tmp_path, sigterm=sigterm)
    assert (done.returncode, done.stderr) == (code, stderr), done
    assert not (tmp_path / "temporary").exists()  # the work's own clean-up ran first


def test_an_interrupt_line_is_the_callers_or_none(tmp_path: Path) -> None:
    done = run_main("raise KeyboardInterrupt", tmp_path, interrupted="'interrupted: no model written'")
    assert (done.returncode, done.stderr) == (EXIT_INTERRUPTED, "interrupted: no model written\n"), done
    done = run_main("raise KeyboardInterrupt", tmp_path, interrupted=None)
    assert (done.returncode, done.stderr) == (EXIT_INTERRUPTED, ""), done


def test_sigterm_is_left_alone_unless_asked(tmp_path: Path) -> None:
    done = run_main("os.kill(os.getpid(), signal.SIGTERM); signal.pause()", tmp_path)
    assert done.returncode == -15 and done.stderr == "", done


def test_a_typer_command_ends_with_one_line_and_its_code() -> None:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @app.command()
    def main(fail: str = "") -> None:
        with entry_point():
            if fail == "error":
                raise FaceverifyError("model.onnx: not a faceverify model")
            if fail == "interrupt":
                raise KeyboardInterrupt
            if fail == "bug":
                raise RuntimeError("a bug")
        print("done")

    runner = CliRunner()
    failed = runner.invoke(app, ["--fail", "error"])
    assert (failed.exit_code, failed.stdout) == (EXIT_ERROR, "")
    assert failed.stderr == "error: model.onnx: not a faceverify model\n"
    interrupted = runner.invoke(app, ["--fail", "interrupt"])
    assert (interrupted.exit_code, interrupted.stderr) == (EXIT_INTERRUPTED, "error: interrupted\n")
    assert runner.invoke(app, []).stdout == "done\n"
    assert isinstance(runner.invoke(app, ["--fail", "bug"]).exception, RuntimeError)  # not an expected failure
