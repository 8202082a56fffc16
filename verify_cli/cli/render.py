"""How the commands look: rich consoles, the header line, the progress bar, number formatting, markup escaping."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from verify_cli import __version__

if TYPE_CHECKING:
    from rich.console import Console

    from verify_cli.runtime import Model

SEP = "  [dim]│[/]  "  # between the fields of a one-line summary
FIRST_KEYS = ("accuracy", "roc_auc", "eer", "tar_far_1e2", "tar_far_1e3", "pairs", "threshold", "passed")


def console(stderr: bool = False) -> Console:
    """A rich console whose text lines are never cut mid-path (tables still fit the width)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def esc(text: object) -> str:
    """Escape user-controlled text (paths, metadata) before it goes into rich markup."""
    from rich.markup import escape

    return escape(str(text))


def model_label(model: Model, explicit: bool) -> str:
    """How a model is named in headers: file name, preset, and whether it is the bundled one."""
    preset = model.info.props.get("faceverify.preset")
    name = model.path.name if explicit else f"{model.path.name} (bundled)"
    return f"{name}, preset {preset}" if preset else name


def header(out: Console, model: Model, explicit: bool) -> None:
    """The first line of human output: tool, model and the execution provider actually used."""
    out.print(f"[bold]faceverify[/] {__version__}{SEP}model [cyan]{esc(model_label(model, explicit))}[/]"
              f"{SEP}provider [magenta]{model.provider}[/]")


class Progress:
    """A rich progress bar for embedding images (on stderr, and only when it is a terminal)."""

    def __init__(self, total: int, label: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        err = console(stderr=True)
        self.progress = RichProgress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True, disable=not err.is_terminal,
        )
        self.task = self.progress.add_task(label, total=total)

    def __enter__(self) -> Callable[[int], None]:
        self.progress.start()
        return lambda n: self.progress.advance(self.task, n)

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def decimals(p: float, t: float) -> int:
    """Enough decimals (4 to 9) that a probability and the threshold it is compared with print differently."""
    digits = 4
    while digits < 9 and p != t and f"{p:.{digits}f}" == f"{t:.{digits}f}":
        digits += 1
    return digits


def seconds(value: float) -> str:
    """A duration for people: milliseconds below a second."""
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def figure(value: Any) -> str:
    """A metadata value for people: integers plainly, 4 decimals, tiny numbers in e-notation, None as n/a."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if value.is_integer():
            return f"{value:g}"
        return f"{value:.4f}" if abs(value) >= 1e-3 else f"{value:.2e}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def describe(value: str | None, skip: tuple[str, ...] = ()) -> str:
    """A metadata value for a table: JSON objects as `key value · ...` (headline figures first)."""
    if value is None or value == "":
        return "[dim]not recorded[/]"
    try:
        data = json.loads(value)
    except ValueError:
        return esc(value)
    if not isinstance(data, dict):
        return esc(value)
    keys = [k for k in FIRST_KEYS if k in data] + [k for k in data if k not in FIRST_KEYS]
    return " · ".join(f"[dim]{esc(k)}[/] {esc(figure(data[k]))}" for k in keys if k not in skip)
