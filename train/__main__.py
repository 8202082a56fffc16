"""`python -m train --preset NAME [--set KEY=VALUE ...]`: train a preset on LFW and keep the best checkpoint."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from verify_cli.cli.options import DataRootOption
from verify_cli.errors import EXIT_INTERRUPTED, FaceverifyError, entry_point
from verify_cli.lfw import resolve_data_root

if TYPE_CHECKING:
    from train.config import TrainConfig
    from train.distributed import Ranks

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
console = Console(stderr=True, soft_wrap=True)


def _raise_interrupt(signum: int, frame: object) -> None:
    if os.environ.get("RANK", "0") != "0":  # torchrun's other ranks write nothing: they leave at once
        os._exit(EXIT_INTERRUPTED)
    raise KeyboardInterrupt


@app.command()
def main(
    preset: Annotated[str, typer.Option(help="Preset name: default, exp1 ... exp10, fv-plain, fv-patches (--list-presets).")]
    = "default",
    data_root: DataRootOption = None,
    run_dir: Annotated[Path | None, typer.Option(help="Run folder \\[default: runs/PRESET].")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --run-dir from last.pt.")] = False,
    epochs: Annotated[int | None, typer.Option(min=1, help="Stop after this many epochs \\[default: the preset's].")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the preset's seed.")] = None,
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE", help="Override one configuration field (repeatable; dotted keys for nested "
                                           "fields: --set lr=3e-3 --set model.dropout=0.3).")] = None,
    data: Annotated[str, typer.Option(
        "--data", metavar="lfw|imagefolder:PATH",
        help="What trains: LFW View 1 (--data-root), or your own people, one folder of images each "
             "(PATH/<name>/*.jpg), read through the serving face pipeline.")] = "lfw",
    report_test: Annotated[bool, typer.Option(
        "--report-test", help="Also score DevTest once at the validation threshold (it chooses nothing).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Smoke mode: a few real pairs, 2 epochs.")] = False,
    threads: Annotated[int, typer.Option(min=0, help="CPU threads for torch (0: all cores).")] = 0,
    list_presets: Annotated[bool, typer.Option(
        "--list-presets", help="Print every preset, its parent and the fields it changes, then exit.")] = False,
) -> None:
    """Train a Siamese network on LFW View 1 and write RUN/best.pt, history.json, curves.png, roc.png."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)  # also when started in the background, where SIGINT is ignored
    rank0 = os.environ.get("RANK", "0") == "0"  # under torchrun every rank is interrupted; rank 0 says so
    with entry_point("interrupted: the last complete epoch is saved; continue with --resume" if rank0 else None):
        if list_presets:
            Console(soft_wrap=False).print(presets_table())
            return
        run(preset, resolve_data_root(data_root), run_dir, resume, epochs, seed, dry_run, threads,
            overrides=overrides or [], report_test=report_test, data=data)


def presets_table() -> Table:
    """A rich table of the presets: name, parent, the fields each changes from its parent, description."""
    from train.config import DEFAULT_PRESET, PRESET_ROWS, describe_changes

    table = Table(title="presets: each changes its parent's fields (--preset NAME, then --set KEY=VALUE ...)",
                  title_justify="left", show_lines=True)
    for column in ("preset", "parent", "changes from the parent"):
        table.add_column(column, no_wrap=True)
    table.add_column("description", overflow="fold", min_width=20)
    for row in PRESET_ROWS:
        name = f"{row.name} (default)" if row.name == DEFAULT_PRESET else row.name
        table.add_row(name, row.parent or "defaults", describe_changes(row), row.description)
    return table


def test_name(cfg: TrainConfig) -> str:
    """What a run's test pairs are: View 1's DevTest, or the View 2 fold it holds out."""
    return f"View 2 fold {cfg.view2_fold}" if cfg.view2_fold else "DevTest"


def faces_line(faces: str, no_face: int) -> str:
    """How the images were read, in words, with the count of aligned-mode images that had no face."""
    if faces == "funneled":
        return "deep-funneled, fixed centre crop"
    return f"faces found and aligned, {no_face} without a face read with the fixed centre crop"


def run(preset: str, data_root: Path, run_dir: Path | None, resume: bool, epochs: int | None,
        seed: int | None, dry_run: bool, threads: int, overrides: list[str] | None = None,
        report_test: bool = False, data: str = "lfw") -> None:
    """Plain function behind the command: configuration, data, fit, finalize, plots, results table."""
    import torch

    from models.typed_config import parse_overrides, with_overrides
    from train import distributed, folder
    from train.config import TrainConfig, get_preset

    changes = parse_overrides(TrainConfig, overrides or [])
    if seed is not None:
        changes["seed"] = seed
    if data != "lfw":
        if not data.startswith(folder.PREFIX):
            raise FaceverifyError(f"--data must be lfw or imagefolder:PATH, got {data!r}")
        if report_test:
            raise FaceverifyError("--report-test scores LFW's DevTest; a model trained on an image folder is scored "
                                  "with `faceverify evaluate --model M.onnx` after export")
        changes.update(data=folder.spec_of(data.removeprefix(folder.PREFIX)), faces="aligned")
    cfg = with_overrides(get_preset(preset), changes)
    if threads > 0:
        torch.set_num_threads(threads)
    ranks = distributed.start()  # torchrun: this process's rank; else a single process (rank 0 of 1)
    _run(cfg, data_root, run_dir, resume, epochs, dry_run, overrides, report_test, ranks)
    distributed.stop(ranks)  # not after an error or Ctrl-C: the other ranks may be gone, and the teardown waits


def _run(cfg: TrainConfig, data_root: Path, run_dir: Path | None, resume: bool, epochs: int | None, dry_run: bool,
         overrides: list[str] | None, report_test: bool, ranks: Ranks) -> None:
    from train import report
    from train.data import make_data, open_source
    from train.folder import ImageFolder
    from train.loop import fit
    from train.objectives import OBJECTIVES
    from train.summary import finalize

    say = console if ranks.main else Console(quiet=True)
    if dry_run:
        epochs = min(epochs or 2, 2)
    run_dir = run_dir or Path("runs") / (f"{cfg.preset}-dry-run" if dry_run else cfg.preset)
    if run_dir.exists() and not run_dir.is_dir():
        raise FaceverifyError(f"{run_dir}: is a file; --run-dir names the run folder")
    source = open_source(cfg, data_root)
    say.print(f"preset {cfg.preset} ({cfg.description}), protocol {cfg.protocol}, run folder {run_dir}"
              + "".join(f", {item}" for item in overrides or []))
    if isinstance(source, ImageFolder):
        say.print(f"training on {source.root}: {source.describe()}")
    data = make_data(cfg, source, dry_run, with_test=report_test)
    say.print(f"images {len(data.bank.paths)} ({faces_line(cfg.faces, len(data.bank.no_face))}), "
                  f"validation pairs {len(data.val)}"
                  + (f", {test_name(cfg)} pairs {len(data.test)}" if data.test is not None else ""))
    history = fit(cfg, data, run_dir, resume=resume, console=say, max_epochs=epochs, ranks=ranks)
    if not ranks.main:  # rank 0 alone calibrates, reports and writes
        return
    result = finalize(run_dir, data, ranks.world)
    summary = result["summary"]
    report.plot_curves(history, run_dir / "curves.png", OBJECTIVES[cfg.protocol].train_loss)
    curves = {"validation": (result["val_probs"], data.val.labels)}
    if data.test is not None:
        curves[test_name(cfg)] = (result["test_probs"], data.test.labels)
    report.plot_roc(curves, run_dir / "roc.png")
    if not dry_run and not overrides:  # the results table holds the presets as named; a --set run keeps its own
        report.add_result(run_dir.parent / "results.csv", summary)
    val = summary["validation"]
    test = summary.get("test")
    console.print(
        f"best epoch {summary['epoch']} of {summary['epochs_run']} | threshold {summary['threshold']:.3f} "
        f"(chosen on validation) | validation acc {val['accuracy']:.3f} auc {val['roc_auc']:.3f}"
        f" | strangers accepted: random {val['fp'] / max(1, val['fp'] + val['tn']):.1%}, look-alike "
        f"{summary['lookalike']['far']:.1%}"
        + (f" | {test_name(cfg)} acc {test['accuracy']:.3f} auc {test['roc_auc']:.3f}" if test else "")
        + f" | {summary['seconds']:.0f}s"
    )
    if ranks.distributed:
        console.print(f"trained on {ranks.world} processes (torchrun)")
    print(run_dir / "best.pt")


if __name__ == "__main__":
    sys.exit(app())
