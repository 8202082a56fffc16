"""The model that ships in the package: it reproduces the DevTest figures it carries, and the README and the
research record (docs/research.md) quote them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, invoke

from verify_cli import modelmeta, runtime


@pytest.fixture(scope="module")
def bundled() -> runtime.Model:
    path = runtime.bundled_model_path()
    assert path.is_file(), f"no bundled model at {path}"
    return runtime.Model(path, "cpu")


def carried(model: runtime.Model, key: str) -> dict[str, Any]:
    """A JSON figure the model carries in its metadata."""
    return json.loads(model.info.props[key])


@pytest.mark.slow
def test_bundled_model_reproduces_its_devtest_figures(bundled: runtime.Model, data_root: Path) -> None:
    stored = carried(bundled, modelmeta.K_DEVTEST)
    # the export measured DevTest on the fixed crop (LFW's images are already in the frame): so does this run
    result = invoke("evaluate", "--data-root", data_root, "--pairs", "test", "--provider", "cpu", "--json",
                    "--no-detect", "--precision", "fp32")  # the figures the fp32 model carries
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["model"] == str(runtime.bundled_model_path()) and summary["threshold_source"] == "model"
    measured = summary["metrics"]
    assert measured["threshold"] == stored["threshold"] == bundled.threshold
    # PyTorch measured these at export and ONNX Runtime differs by < 1e-6 in probability (the parity gate):
    # every decision is the same, so the counts are exact; the ranking figures agree to their printed digits.
    for key in ("pairs", "tp", "fp", "tn", "fn"):
        assert measured[key] == stored[key], key
    assert measured["accuracy"] == pytest.approx(stored["accuracy"], abs=1e-12)
    assert measured["roc_auc"] == pytest.approx(stored["roc_auc"], abs=1e-4)
    assert measured["eer"] == pytest.approx(stored["eer"], abs=1e-3)
    assert measured["tar_far_1e2"] == pytest.approx(stored["tar_far_1e2"], abs=2e-3)  # one same pair in 500
    assert measured["tar_far_1e3"] is None  # 500 different pairs cannot resolve FAR 1e-3


def _number(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    assert match, f"README no longer matches {pattern!r}: update this test with the README's new wording"
    return match.group(1)


def _shown_as(value: float, text: str, scale: float = 1.0) -> None:
    """`value` (times `scale`) printed with as many decimals as the README's `text` has equals `text`."""
    decimals = len(text.partition(".")[2])
    assert f"{value * scale:.{decimals}f}" == text, f"README says {text}, the bundled model carries {value * scale}"


def test_readme_headline_figures_are_the_bundled_models(bundled: runtime.Model) -> None:
    readme = (REPO / "README.md").read_text()
    research = (REPO / "docs" / "research.md").read_text()  # the research record holds the full figures
    section = research.split("## The default model", 1)[1].split("\n## ", 1)[0]
    devtest = carried(bundled, modelmeta.K_DEVTEST)
    validation = carried(bundled, modelmeta.K_VALIDATION)
    preset = bundled.info.props[modelmeta.K_PRESET]

    assert _number(r"is preset `([^`]+)`", section) == preset
    _shown_as(bundled.threshold, _number(r"fixes the threshold \(([\d.]+)\)", section))
    _shown_as(bundled.threshold, _number(r"threshold\s+([\d.]+) \(stored in the model\)", readme))  # compare example
    headline = section[section.index("on pairsDevTest"):]
    _shown_as(devtest["accuracy"], _number(r"\*\*accuracy ([\d.]+)%\*\*", headline), scale=100)
    _shown_as(devtest["roc_auc"], _number(r"ROC AUC ([\d.]+)", headline))
    _shown_as(devtest["eer"], _number(r"EER ([\d.]+)", headline))

    row = next((line for line in section.splitlines() if line.startswith("|") and f"**`{preset}`** (default)" in line),
               None)  # the table also holds earlier runs of the same preset; the one marked default is the bundled one
    assert row, f"the README's results table has no row **`{preset}`** (default)"
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    val_acc, val_auc, test_acc, test_auc, test_eer = cells[-5:]
    _shown_as(validation["accuracy"], val_acc, scale=100)
    _shown_as(validation["roc_auc"], val_auc)
    _shown_as(devtest["accuracy"], test_acc, scale=100)
    _shown_as(devtest["roc_auc"], test_auc)
    _shown_as(devtest["eer"], test_eer)
