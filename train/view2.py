"""LFW View 2, the unrestricted protocol: ten person-disjoint folds, each scored once by a model that never saw them.

For fold k the default recipe trains on the people named in the other nine folds' pairs (all their images; people
named in no pair of pairs.txt belong to no fold and are left out), holds out a tenth of them to choose the
checkpoint, calibrate the head and fix the threshold, and scores fold k's 600 pairs once at that threshold
(`TrainConfig.view2_fold`, `train.data.view2_splits`). Each fold is one ordinary, resumable run:

    python -m train.view2 run --fold 3 --data-root D       # or --fold all; RUNS/fold03/ holds the run
    python -m train.view2 table                             # per-fold rows, mean +- standard error

A fold's row repeats with the fixed crop once its run is exported: `python -m export --checkpoint
RUNS/foldKK/best.pt --out RUNS/foldKK/faceverify.onnx`, then `faceverify evaluate --no-detect --precision fp32
--model RUNS/foldKK/faceverify.onnx --pairs RUNS/foldKK/pairs.txt` (the fold's pairs as a View 1 file).
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from verify_cli.cli.options import DataRootOption
from verify_cli.errors import FaceverifyError, entry_point
from verify_cli.lfw import resolve_data_root
from verify_cli.outputs import write_atomic

RUNS = Path("runs/view2")
FOLDS = range(1, 11)


def fold_dir(runs: Path, fold: int) -> Path:
    """Where fold `fold`'s run lives."""
    return runs / f"fold{fold:02d}"


def folds_of(choice: str) -> list[int]:
    """`all` or one fold number 1..10."""
    if choice == "all":
        return list(FOLDS)
    if not choice.isdigit() or int(choice) not in FOLDS:
        raise FaceverifyError(f"--fold must be all or a fold 1..10, got {choice!r}")
    return [int(choice)]


def run_fold(fold: int, data_root: Path, runs: Path, threads: int, dry_run: bool, overrides: list[str]) -> None:
    """Train (or resume) fold `fold`'s run to its end and score its pairs once; write them as a View 1 file."""
    from models.typed_config import parse_overrides, with_overrides
    from train.__main__ import run
    from train.config import TrainConfig, get_preset
    from train.data import protocol_splits
    from train.validate import view1_text
    from verify_cli.lfw import LFWRoot

    run_dir = fold_dir(runs, fold)
    summary = run_dir / "summary.json"
    if summary.is_file() and "test" in json.loads(summary.read_text()):
        return  # finished and scored: its pairs are read once
    items = [f"view2_fold={fold}", *overrides]
    run("default", data_root, run_dir, resume=True, epochs=2 if dry_run else None, seed=None, dry_run=dry_run,
        threads=threads, overrides=items, report_test=True)
    cfg = with_overrides(get_preset("default"), parse_overrides(TrainConfig, items))
    test = protocol_splits(cfg, LFWRoot.open(data_root), smoke=dry_run).test
    write_atomic(run_dir / "pairs.txt", view1_text(test).encode())


def fold_rows(runs: Path) -> list[dict]:
    """Each finished fold's figures on its own pairs (from its summary.json), in fold order."""
    rows = []
    for fold in FOLDS:
        path = fold_dir(runs, fold) / "summary.json"
        if not path.is_file():
            continue
        summary = json.loads(path.read_text())
        test = summary.get("test")
        if test is None:
            raise FaceverifyError(f"{path}: the fold's pairs were not scored; run python -m train.view2 run --fold "
                                  f"{fold} again")
        rows.append({"fold": fold, "pairs": test["pairs"], "accuracy": test["accuracy"], "roc_auc": test["roc_auc"],
                     "threshold": summary["threshold"], "validation_accuracy": summary["validation"]["accuracy"],
                     "lookalike_far": summary.get("lookalike", {}).get("far"),
                     "lookalike_auc": summary.get("lookalike", {}).get("roc_auc")})
    return rows


def mean_se(values: list[float]) -> tuple[float, float]:
    """The mean and its standard error (sample standard deviation over the square root of the count)."""
    if len(values) < 2:
        return (values[0] if values else math.nan), math.nan
    return statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))


def table(rows: list[dict]) -> Table:
    """Per-fold rows and the mean +- standard error of accuracy and AUC over the folds present."""
    out = Table(title="LFW View 2, unrestricted, fixed crop: each fold scored once by a model that never saw it")
    for column in ("fold", "pairs", "accuracy", "ROC AUC", "threshold", "val acc", "look-alike FAR (val)",
                   "look-alike AUC (val)"):
        out.add_column(column, justify="right")
    for r in rows:
        out.add_row(str(r["fold"]), str(r["pairs"]), f"{r['accuracy']:.2%}", f"{r['roc_auc']:.4f}",
                    f"{r['threshold']:.4f}", f"{r['validation_accuracy']:.2%}",
                    "" if r["lookalike_far"] is None else f"{r['lookalike_far']:.1%}",
                    "" if r["lookalike_auc"] is None else f"{r['lookalike_auc']:.3f}")
    accuracy, auc = mean_se([r["accuracy"] for r in rows]), mean_se([r["roc_auc"] for r in rows])
    def pm(value: tuple[float, float], spec: str) -> str:
        return format(value[0], spec) + ("" if math.isnan(value[1]) else f" ± {format(value[1], spec)}")

    out.add_row(f"mean of {len(rows)}", "", pm(accuracy, ".2%"), pm(auc, ".4f"), "", "", "", "", style="bold")
    return out


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True)


@app.command("run")
def run_command(
    fold: Annotated[str, typer.Option(help="A fold 1..10, or all (each resumable; finished folds are skipped).")],
    data_root: DataRootOption = None,
    runs: Annotated[Path, typer.Option(help="Where the folds' runs go (RUNS/foldKK).")] = RUNS,
    threads: Annotated[int, typer.Option(min=0, help="CPU threads for torch (0: all cores).")] = 2,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Smoke mode: a few real pairs, 2 epochs.")] = False,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="KEY=VALUE over the default recipe.")] = None,
) -> None:
    """Train and score View 2 folds with the default recipe."""
    with entry_point("interrupted: the last complete epoch is saved; run the same command to continue"):
        root = resolve_data_root(data_root)
        for k in folds_of(fold):
            run_fold(k, root, runs, threads, dry_run, overrides or [])


@app.command("table")
def table_command(
    runs: Annotated[Path, typer.Option(help="Where the folds' runs are.")] = RUNS,
    as_json: Annotated[bool, typer.Option("--json", help="Rows and means as JSON.")] = False,
) -> None:
    """The folds' table: per-fold accuracy, AUC and threshold; mean accuracy +- its standard error."""
    with entry_point():
        rows = fold_rows(runs)
        if not rows:
            raise FaceverifyError(f"{runs}: no finished fold; run python -m train.view2 run --fold all first")
        if as_json:
            accuracy, auc = mean_se([r["accuracy"] for r in rows]), mean_se([r["roc_auc"] for r in rows])
            print(json.dumps({"folds": rows, "accuracy_mean": accuracy[0], "accuracy_se": accuracy[1],
                              "roc_auc_mean": auc[0], "roc_auc_se": auc[1]}, indent=1))
        else:
            Console().print(table(rows))


if __name__ == "__main__":
    sys.exit(app())
