"""`python -m export --checkpoint RUN/best.pt --out RUN/faceverify.onnx`: the export stage's thin entry point.

It writes the fp32 model (proven equal to PyTorch), then its int8 sibling RUN/faceverify.int8.onnx (checked against
fp32 on the same validation pairs) unless --no-int8.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from verify_cli.errors import entry_point
from verify_cli.lfw import resolve_data_root

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


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
        bool, typer.Option("--dry-run", help="Smoke mode: parity on a handful of real pairs, seconds (int8 limits "
                                             "reported, not enforced).")
    ] = False,
    int8: Annotated[bool, typer.Option(
        "--int8/--no-int8", help="Also write the int8 model beside --out (NAME.int8.onnx), calibrated and checked on "
                                 "the same validation pairs; refused when it decides unlike fp32.")] = True,
) -> None:
    """Export a finalized checkpoint to ONNX, proven equal to PyTorch on the run's real LFW validation pairs, and its
    int8 sibling."""
    console = Console(stderr=True)
    with entry_point("interrupted: no model written", sigterm=True):
        from export.config import ExportConfig
        from export.pipeline import export_model
        from export.summary import int8_table, summary_table

        config = ExportConfig(opset=opset, pairs=pairs, dry_run=dry_run)
        root = resolve_data_root(data_root)
        result = export_model(checkpoint, out, root, config, console)
        console.print(summary_table(result))
        if int8:
            from export.quantize import quantize_model
            from verify_cli.runtime import precision_paths

            console.print(int8_table(quantize_model(out, precision_paths(out)["int8"], root, config, console)))
    print(result.model_path)


if __name__ == "__main__":
    sys.exit(app())
