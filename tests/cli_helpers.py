"""Ways to run `faceverify` in tests: in-process through Typer's CliRunner, or as a real process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner, Result

from verify_cli.cli import app

REPO = Path(__file__).resolve().parents[1]
_runner = CliRunner()


def invoke(*args: str | Path) -> Result:
    """Run the Typer app in-process on string arguments (stdout and stderr captured apart)."""
    return _runner.invoke(app, [str(a) for a in args])


def faceverify(*args: str | Path) -> subprocess.CompletedProcess:
    """Run the installed console script (or `python -m verify_cli.cli`) as a real process."""
    script = Path(sys.executable).with_name("faceverify")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "verify_cli.cli"]
    return subprocess.run([*command, *map(str, args)], check=False, capture_output=True, text=True, timeout=120,
                          cwd=REPO)
