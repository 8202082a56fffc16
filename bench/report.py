"""The benchmark report: sections of Markdown tables, the target summary, written atomically."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from verify_cli.outputs import write_atomic


@dataclass(frozen=True)
class Target:
    """One target of the issue, what we measured against it, and whether it is met (None: not judged)."""

    name: str
    target: str
    measured: str
    met: bool | None
    note: str = ""


@dataclass
class Section:
    """One benchmark: a title, a sentence on what was run, a table, notes and the targets it decides."""

    title: str
    intro: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)


def num(value: float) -> str:
    """A figure with at least three significant digits, thousands grouped: 12,345 / 123 / 12.3 / 1.23."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def table(header: list[str], rows: list[list[str]], figures: bool = True) -> str:
    """A Markdown table; the first column left-aligned, the others right-aligned when they hold figures."""
    cells = [[c.replace("|", "\\|") for c in row] for row in [header, *rows]]
    align = [":--"] + ["--:" if figures else ":--"] * (len(header) - 1)
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
    return "\n".join(lines)


def verdict(met: bool | None) -> str:
    """The summary table's last column."""
    return {True: "yes", False: "**no**", None: "not judged"}[met]


def render(title: str, preamble: list[str], machine: list[tuple[str, str]], sections: list[Section],
           command: str) -> str:
    """The whole report as Markdown: machine, one table per benchmark, targets, and the command that made it."""
    parts = [f"# {title}", "\n".join(preamble), "## Machine", table(["", ""], [[k, v] for k, v in machine], figures=False)]
    targets = [t for s in sections for t in s.targets]
    if targets:
        rows = [[t.name, t.target, t.measured, verdict(t.met) + (f" ({t.note})" if t.note else "")] for t in targets]
        parts += ["## Targets", table(["figure", "target", "measured", "met?"], rows, figures=False)]
    for section in sections:
        parts += [f"## {section.title}", section.intro, table(section.header, section.rows)]
        if section.notes:
            parts.append("\n".join(f"- {note}" for note in section.notes))
    parts += ["## Command", f"```sh\n{command}\n```"]
    return "\n\n".join(p for p in parts if p) + "\n"


def write(path: Path, text: str) -> None:
    """Write the report whole, or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.encode())
