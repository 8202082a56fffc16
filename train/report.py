"""What a person looks at after a run: loss/accuracy curves, ROC curves and a results table row."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from verify_cli import metrics
from verify_cli.outputs import atomic_path, write_atomic

COLUMNS = [
    "preset", "protocol", "val_loss", "val_accuracy", "train_loss", "test_loss", "test_accuracy", "test_auc",
    "threshold", "best_epoch", "epochs", "seconds", "parameters", "device",
]


def save_figure(fig: Any, path: Path, dpi: int = 100) -> None:
    """A finished matplotlib figure written whole to `path` as PNG (atomically), then closed."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path, make_parents=True) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)


def plot_curves(history: list[dict[str, Any]], path: Path, train_loss: str = "") -> None:
    """Loss and accuracy per epoch; `train_loss` names a training loss unlike the validation pair BCE (own axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [r["val_loss"] for r in history], label="validation (pair BCE)", color="C1")
    ax1.set(xlabel="epoch", ylabel="loss", title="Loss")
    train_ax = ax1.twinx() if train_loss else ax1
    train_ax.plot(epochs, [r["train_loss"] for r in history], label=f"train ({train_loss or 'pair BCE'})", color="C0")
    if train_loss:
        train_ax.set_ylabel(f"train loss ({train_loss})")
    ax2.plot(epochs, [r["train_accuracy"] for r in history], label="train")
    ax2.plot(epochs, [r["val_accuracy"] for r in history], label="validation")
    ax2.plot(epochs, [r["val_auc"] for r in history], label="validation AUC", linestyle="--")
    ax2.set(xlabel="epoch", ylabel="accuracy", title="Accuracy", ylim=(0.4, 1.0))
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    lines = ax1.get_lines() + (train_ax.get_lines() if train_ax is not ax1 else [])
    ax1.legend(lines, [line.get_label() for line in lines])
    ax2.legend()
    save_figure(fig, path)


def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    """ROC curves of named score sets: {name: (scores, labels)}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (scores, labels) in curves.items():
        fpr, tpr, _ = metrics.roc_curve(scores, labels)
        ax.plot(fpr, tpr, label=f"{name} (AUC {metrics.roc_auc(scores, labels):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    save_figure(fig, path)


def results_row(summary: dict[str, Any]) -> dict[str, str]:
    """One row of the results table, in the report's summary columns (DevTest's empty unless it was reported)."""
    val, test = summary["validation"], summary.get("test")
    return {
        "preset": summary["preset"],
        "protocol": summary["protocol"],
        "val_loss": f"{val['loss']:.3f}",
        "val_accuracy": f"{100 * val['accuracy']:.1f}",
        "train_loss": f"{summary['train_loss']:.4f}",
        "test_loss": f"{test['loss']:.3f}" if test else "",
        "test_accuracy": f"{100 * test['accuracy']:.1f}" if test else "",
        "test_auc": f"{test['roc_auc']:.3f}" if test else "",
        "threshold": f"{summary['threshold']:.3f}",
        "best_epoch": str(summary["epoch"]),
        "epochs": str(summary["epochs_run"]),
        "seconds": f"{summary['seconds']:.0f}",
        "parameters": str(summary.get("parameters", "")),
        "device": summary["device"],
    }


def add_result(table_csv: Path, summary: dict[str, Any]) -> None:
    """Append (or replace, per preset and protocol) a row in the CSV table and rewrite its Markdown twin."""
    rows: list[dict[str, str]] = []
    if table_csv.exists():
        with open(table_csv, newline="") as handle:
            rows = [r for r in csv.DictReader(handle)]
    new = results_row(summary)
    rows = [r for r in rows if (r.get("preset"), r.get("protocol")) != (new["preset"], new["protocol"])] + [new]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(table_csv, buffer.getvalue().encode(), make_parents=True)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r.get(c, "") for c in COLUMNS) + " |" for r in rows]
    write_atomic(table_csv.with_suffix(".md"), ("\n".join(lines) + "\n").encode(), make_parents=True)
