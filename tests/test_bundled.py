"""The model that ships in the package reproduces the DevTest figures it carries and those recorded beside it
(verify_cli/assets/faceverify.figures.json); tests/test_docs.py checks that the README and docs/ quote them."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
from helpers import invoke

from verify_cli import figures, modelmeta, runtime


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


def _evaluated_groups() -> list[str]:
    """The figures file's DevTest groups recorded from `faceverify evaluate` on the LFW data root itself."""
    found = figures.recorded_for(runtime.bundled_model_path())
    return [] if found is None else sorted(
        group for group, m in found[0].measurements.items()
        if m.command.startswith("faceverify evaluate") and shlex.split(m.command)[-1] == "D")


@pytest.mark.slow
@pytest.mark.parametrize("group", _evaluated_groups())
def test_recorded_evaluate_figures_reproduce_with_their_command(group: str, data_root: Path) -> None:
    recorded, _ = figures.recorded_for(runtime.bundled_model_path())
    measurement = recorded.measurements[group]
    args = [str(data_root) if arg == "D" else arg for arg in shlex.split(measurement.command)[2:]]
    result = invoke("evaluate", *args, "--provider", "cpu", "--json")
    assert result.exit_code == 0, result.stderr
    measured = json.loads(result.stdout)["metrics"]
    # the same command on another CPU may find a face a fraction of a pixel apart: a pair in 1,000 may flip
    for key, value in measurement.figures.items():
        tolerance = 0 if key == "pairs" else 2e-3
        assert measured[key] == pytest.approx(value, abs=tolerance), key
