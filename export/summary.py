"""The short rich summary an export prints: what was written, what it carries, and the parity figures."""

from __future__ import annotations

import json

from rich.table import Table

from export.pipeline import ExportResult
from verify_cli import modelmeta


def _figures(props: dict[str, str], key: str) -> str:
    if key not in props:
        return "not reported" + (" (train with --report-test)" if key == modelmeta.K_DEVTEST else "")
    try:
        data = json.loads(props.get(key, "{}"))
    except ValueError:
        return "?"
    if not isinstance(data, dict) or "accuracy" not in data:
        return "?"
    return f"acc {data['accuracy']:.3f}  auc {data.get('roc_auc', float('nan')):.3f}  ({data.get('pairs', '?')} pairs)"


def summary_table(result: ExportResult) -> Table:
    """One table: model file, preset, threshold, validation and DevTest figures, parity against tolerances."""
    props, report = result.metadata, result.parity
    table = Table(title="faceverify export", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    size = result.model_path.stat().st_size / 1e6
    table.add_row("model", f"{result.model_path} ({size:.1f} MB)")
    table.add_row("preset", f"{props[modelmeta.K_PRESET]} ({props[modelmeta.K_PROTOCOL]} protocol)")
    table.add_row("input", f"{props[modelmeta.K_INPUT]}, embedding {props[modelmeta.K_EMBEDDING]}")
    table.add_row("threshold", f"{float(props[modelmeta.K_THRESHOLD]):.4f} (chosen on validation)")
    table.add_row("validation", _figures(props, modelmeta.K_VALIDATION))
    table.add_row("DevTest", _figures(props, modelmeta.K_DEVTEST))
    table.add_row("parity pairs", f"{report.pairs} ({report.matched} same, {report.mismatched} different), "
                                  f"{report.images} images{', dry run' if report.dry_run else ''}")
    table.add_row("probability", f"max abs diff {report.prob_max_abs_diff:.2e} (tolerance {report.prob_atol:g})")
    table.add_row("embeddings", f"max rel err {report.embedding_max_rel_err:.2e} (tolerance {report.embedding_rtol:g})")
    table.add_row("decisions", "all identical" if not report.decisions_differ else f"{report.decisions_differ} differ")
    table.add_row("parity report", str(result.parity_path))
    return table
