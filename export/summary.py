"""The short rich summaries an export prints: what was written, what it carries, the parity figures, and the int8
model's agreement with fp32."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from rich.table import Table

from verify_cli import modelmeta

if TYPE_CHECKING:  # types only: the stages import this module, never the other way round
    from export.pipeline import ExportResult
    from export.quantize import QuantizeResult


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


def int8_table(result: QuantizeResult) -> Table:
    """One table: the int8 file, how it was made, and its agreement with fp32 against the limits."""
    a, made = result.agreement, json.loads(result.metadata[modelmeta.K_QUANTIZATION])
    table = Table(title="faceverify int8", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("model", f"{result.model_path} ({result.model_path.stat().st_size / 1e6:.1f} MB)")
    table.add_row("quantization", f"weights {made['weights']}, activations {made['activations']}, "
                                  f"{made['calibration']} calibration on {made['calibration_images']} images")
    table.add_row("threshold", f"{a.threshold:.4f} (fp32's)")
    table.add_row("pairs", f"{a.pairs} validation pairs, {a.images} images")
    table.add_row("decisions", f"{a.decisions_agree:.2%} as fp32's ({a.decisions_differ} differ; "
                               f"at least {a.min_agreement:.0%})")
    table.add_row("ROC AUC", f"int8 {a.int8_auc:.4f}, fp32 {a.fp32_auc:.4f} (at most {a.max_auc_drop:g} lower)")
    table.add_row("probability", f"|int8 - fp32| max {a.prob_max_abs_diff:.4f}, mean {a.prob_mean_abs_diff:.4f}")
    if not a.enforced:
        table.add_row("limits", "not enforced (dry run: a handful of pairs proves nothing)"
                      + ("" if a.passed else f"; missed: {'; '.join(a.failures())}"))
    return table
