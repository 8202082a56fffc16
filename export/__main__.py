"""`python -m export --checkpoint RUN/best.pt --out RUN/faceverify.onnx`: the export stage's thin entry point."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from verify_cli.errors import EXIT_ERROR, FaceverifyError
from verify_cli.lfw import resolve_data_root

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@app.command()
def main(
    checkpoint: Annotated[Path, typer.Option(help="Finalized checkpoint of a training run (RUN/best.pt).")],
    out: Annotated[Path, typer.Option(help="The ONNX model to write; the parity report goes beside it.")],
    data_root: Annotated[Path | None, typer.Option(help="LFW data root (for the parity pairs) \\[default: "
                                                       "$FACEVERIFY_DATA, else ./data/lfw].", show_default=False)] = None,
    pairs: Annotated[
        int | None, typer.Option(help="Validation pairs to check parity on (at least 200; default all).")
    ] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset (17 or newer).")] = 17,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Smoke mode: parity on a handful of real pairs, seconds.")
    ] = False,
) -> None:
    """Export a finalized checkpoint to ONNX, proven equal to PyTorch on the run's real LFW validation pairs."""
    signal.signal(signal.SIGTERM, _raise_interrupt)  # a killed export still removes its temporary file
    console = Console(stderr=True)
    try:
        from export.config import ExportConfig
        from export.pipeline import export_model
        from export.summary import summary_table

        config = ExportConfig(opset=opset, pairs=pairs, dry_run=dry_run)
        result = export_model(checkpoint, out, resolve_data_root(data_root), config, console)
    except FaceverifyError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(EXIT_ERROR) from None
    except KeyboardInterrupt:
        typer.echo("interrupted: no model written", err=True)
        raise typer.Exit(130) from None
    console.print(summary_table(result))
    print(result.model_path)


if __name__ == "__main__":
    sys.exit(app())
