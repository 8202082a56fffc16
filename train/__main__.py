"""`python -m train --preset NAME`: train a preset on LFW, keep the best checkpoint, report DevTest once."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from verify_cli.errors import EXIT_ERROR, FaceverifyError, print_error
from verify_cli.lfw import resolve_data_root

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
console = Console(stderr=True, soft_wrap=True)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@app.command()
def main(
    preset: Annotated[str, typer.Option(help="Preset name: default, exp1 ... exp10, fv-resnet ...")] = "default",
    data_root: Annotated[Path | None, typer.Option(help="LFW data root \\[default: $FACEVERIFY_DATA, else "
                                                        "./data/lfw].", show_default=False)] = None,
    run_dir: Annotated[Path | None, typer.Option(help="Run folder \\[default: runs/PRESET].")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --run-dir from last.pt.")] = False,
    epochs: Annotated[int | None, typer.Option(min=1, help="Stop after this many epochs \\[default: the preset's].")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the preset's seed.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Smoke mode: a few real pairs, 2 epochs.")] = False,
    threads: Annotated[int, typer.Option(min=0, help="CPU threads for torch (0: all cores).")] = 0,
) -> None:
    """Train a Siamese network on LFW View 1 and write RUN/best.pt, history.json, curves.png, roc.png."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)  # also when started in the background, where SIGINT is ignored
    try:
        run(preset, resolve_data_root(data_root), run_dir, resume, epochs, seed, dry_run, threads)
    except FaceverifyError as exc:
        print_error(exc.message)
        raise typer.Exit(EXIT_ERROR) from None
    except KeyboardInterrupt:
        console.print("interrupted: the last complete epoch is saved; continue with --resume", markup=False)
        raise typer.Exit(130) from None


def run(preset: str, data_root: Path, run_dir: Path | None, resume: bool, epochs: int | None,
        seed: int | None, dry_run: bool, threads: int) -> None:
    """Plain function behind the command: data, fit, finalize, plots, results table."""
    from dataclasses import replace

    import torch

    from train import report
    from train.config import DEFAULT_PRESET, get_preset
    from train.data import make_data
    from train.loop import finalize, fit
    from verify_cli.lfw import LFWRoot

    if threads > 0:
        torch.set_num_threads(threads)
    cfg = get_preset(DEFAULT_PRESET if preset == "default" else preset)
    if seed is not None:
        cfg = replace(cfg, seed=seed)
    if dry_run:
        epochs = min(epochs or 2, 2)
    run_dir = run_dir or Path("runs") / (f"{cfg.preset}-dry-run" if dry_run else cfg.preset)
    if run_dir.exists() and not run_dir.is_dir():
        raise FaceverifyError(f"{run_dir}: is a file; --run-dir names the run folder")
    lfw = LFWRoot.open(data_root)
    console.print(f"preset {cfg.preset} ({cfg.description}), protocol {cfg.protocol}, run folder {run_dir}")
    data = make_data(cfg.protocol, lfw, cfg.preprocess, cfg.val_fraction, cfg.seed, dry_run)
    console.print(f"images {len(data.bank.paths)}, validation pairs {len(data.val)}, test pairs {len(data.test)}")
    history = fit(cfg, data, run_dir, resume=resume, console=console, max_epochs=epochs)
    result = finalize(run_dir, data, console)
    summary = result["summary"]
    report.plot_curves(history, run_dir / "curves.png", "CosFace + pair BCE" if cfg.protocol == "unrestricted" else "")
    report.plot_roc(
        {"validation": (result["val_probs"], data.val.labels), "DevTest": (result["test_probs"], data.test.labels)},
        run_dir / "roc.png",
    )
    if not dry_run:
        report.add_result(run_dir.parent / "results.csv", summary)
    val, test = summary["validation"], summary["test"]
    console.print(
        f"best epoch {summary['epoch']} of {summary['epochs_run']} | threshold {summary['threshold']:.3f} "
        f"(chosen on validation) | validation acc {val['accuracy']:.3f} | DevTest acc {test['accuracy']:.3f} "
        f"auc {test['roc_auc']:.3f} | {summary['seconds']:.0f}s"
    )
    print(run_dir / "best.pt")


if __name__ == "__main__":
    sys.exit(app())
