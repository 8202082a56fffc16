"""`python -m train.experiments`: the report's ten experiments as run here (`make experiments`), beside its own figures.

Each row reads runs/expN/summary.json and history.json (written by `python -m train --preset expN
--report-test`). A run still in progress shows its epochs so far; one not started shows "not run".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# The report's "Results Summary" table (../shared/reference: validation loss and accuracy, test accuracy on
# pairsDevTest, running time), per experiment.
REPORT = {
    "exp1": (0.539, 72.27, 70.4, 2915.55), "exp2": (0.696, 49.55, 49.3, 2504.91),
    "exp3": (0.919, 67.73, 66.3, 343.22), "exp4": (0.779, 70.0, 64.6, 340.56),
    "exp5": (0.976, 64.09, 65.3, 534.39), "exp6": (0.666, 68.64, 65.8, 784.29),
    "exp7": (0.564, 65.0, 64.3, 894.39), "exp8": (0.708, 66.36, 64.1, 1118.79),
    "exp9": (0.656, 67.27, 66.9, 1198.84), "exp10": (0.642, 65.45, 66.1, 637.32),
}
COLUMNS = ("preset", "epochs run (of max)", "stopped by", "best epoch", "minutes", "val loss", "val acc %",
           "DevTest acc %", "DevTest AUC", "report: val loss", "report: val acc %", "report: test acc %",
           "report: minutes")


def _read(path: Path) -> object:
    return json.loads(path.read_text()) if path.exists() else None


def row(name: str, runs: Path) -> list[str]:
    """One experiment's cells: ours from its run folder, then the report's."""
    from train.config import get_preset

    cfg = get_preset(name)
    summary, history = _read(runs / name / "summary.json"), _read(runs / name / "history.json")
    report = REPORT[name]
    theirs = [f"{report[0]:.3f}", f"{report[1]:.1f}", f"{report[2]:.1f}", f"{report[3] / 60:.0f}"]
    if not history:
        return [name, f"not run (of {cfg.max_epochs})", "", "", "", "", "", "", "", *theirs]
    epochs = len(history)
    best = min(history, key=lambda r: r["val_loss"]) if cfg.monitor == "val_loss" else max(history, key=lambda r: r["val_auc"])
    finished = summary is not None and summary["epochs_run"] == epochs
    stopped_early = epochs - best["epoch"] >= cfg.patience
    stopped = ("patience" if stopped_early else "max epochs" if epochs >= cfg.max_epochs else "") if finished else "running"
    test = (summary or {}).get("test")
    return [
        name, f"{epochs} (of {cfg.max_epochs})", stopped, str(best["epoch"]),
        f"{sum(r['seconds'] for r in history) / 60:.0f}", f"{best['val_loss']:.3f}", f"{100 * best['val_accuracy']:.1f}",
        f"{100 * test['accuracy']:.1f}" if test and finished else "", f"{test['roc_auc']:.3f}" if test and finished else "",
        *theirs,
    ]


def table(runs: Path) -> str:
    """The Markdown table of the ten experiments."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row(name, runs)) + " |" for name in REPORT]
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs")))
