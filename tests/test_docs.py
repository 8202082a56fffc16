"""The figures the README and docs/ quote are the bundled model's recorded ones, found by their markers.

A quoted figure is marked `<!--fig:KEY SPEC-->` right before it (docs/figures.md): KEY names a figure of the
bundled model's metadata or of its figures file, SPEC how it is printed. No prose is searched for numbers, so
rewording a paragraph cannot break these tests; changing a number without measuring it does.
"""

import json
import re
from pathlib import Path

import pytest
from helpers import REPO, invoke

from verify_cli import figures, modelmeta, runtime
from verify_cli.errors import FaceverifyError

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MARKER = re.compile(r"<!--fig:([\w.]+)(?: ([^ >]+))?-->")  # the marker's own syntax, nothing of the prose around it
# code blocks and spans: a marker written there is shown as text, not read as a marker
CODE = re.compile(r"^```.*?^```|`[^`\n]*`", re.DOTALL | re.MULTILINE)
# the headline figures each document must mark (so a figure dropped from the record cannot pass unnoticed)
REQUIRED = {
    "README.md": {
        "preset", "threshold", "devtest.accuracy", "devtest.roc_auc", "evaluate.faces.fp32.accuracy",
        "evaluate.faces.fp32.roc_auc", "validation.accuracy", "validation.roc_auc", "validation.pairs",
        "operating_point.random.far", "operating_point.random.tar", "operating_point.lookalike.far",
        "operating_point.lookalike.roc_auc", "int8.quantization.agreement.decisions_agree",
        "seeds.devtest_accuracy_mean", "seeds.devtest_roc_auc_mean", "speed.int8.embeddings_per_s_ratio",
        "reframed.faces.fp32.accuracy",
    },
    "research.md": {
        "preset", "threshold", "devtest.accuracy", "devtest.roc_auc", "devtest.eer", "devtest.tar_far_1e2",
        "validation.accuracy", "validation.roc_auc", "parity.pairs", "parity.prob_max_abs_diff",
        "parity.embedding_max_rel_err", "evaluate.faces.fp32.accuracy", "evaluate.crop.int8.accuracy",
        "evaluate.faces.int8.accuracy", "int8.quantization.agreement.decisions_agree",
        "operating_point.lookalike.far", "seeds.devtest_accuracy_mean",
    },
    "faces.md": {"evaluate.faces.fp32.accuracy", "reframed.faces.fp32.accuracy", "reframed.crop.fp32.accuracy"},
}
CPU_GROUPS = ("speed.", "training.", "seeds")  # measurements whose figures depend on the CPU they ran on


def shown(value: object, spec: str) -> str:
    """A figure as a marker's SPEC prints it: a Python format spec, `pt` for percentage points (x100, no sign)."""
    if spec.endswith("pt"):
        return format(float(value) * 100, spec[:-2] + "f")
    return format(value, spec) if spec else str(value)


def marks(text: str) -> list[tuple[str, str, str]]:
    """Each marker in a document: its key, its spec, and the text right after it (emphasis and code marks skipped).

    Markers written inside code (docs/figures.md shows the syntax) are text, not markers."""
    code = [m.span() for m in CODE.finditer(text)]
    return [(m[1], m[2] or "", text[m.end():m.end() + 40].lstrip("*`")) for m in MARKER.finditer(text)
            if not any(start <= m.start() < end for start, end in code)]


@pytest.fixture(scope="module")
def recorded() -> dict:
    return figures.all_figures(runtime.bundled_model_path())


def test_shown_formats_as_the_docs_write_figures() -> None:
    assert shown(0.906, ".1%") == "90.6%" and shown(0.9688, ".3f") == "0.969" and shown(4126, ",") == "4,126"
    assert shown(0.004677, ".1pt") == "0.5" and shown(4.47e-07, ".1e") == "4.5e-07" and shown("fv-patches", "") == \
        "fv-patches"
    assert marks("at **<!--fig:devtest.accuracy .1%-->90.6%** and") == [("devtest.accuracy", ".1%", "90.6%** and")]
    assert marks("`<!--fig:KEY SPEC-->` and\n```\n<!--fig:x-->1\n```\n<!--fig:preset-->`fv-patches`") == [
        ("preset", "", "fv-patches`")]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_marked_figure_is_the_recorded_one(doc: Path, recorded: dict) -> None:
    for key, spec, after in marks(doc.read_text()):
        assert key in recorded, f"{doc.name}: <!--fig:{key}--> names no figure of the bundled model (docs/figures.md)"
        expected = shown(recorded[key], spec)
        assert after.startswith(expected) and not after[len(expected):][:1].isdigit(), (
            f"{doc.name}: {key} reads {after[:len(expected) + 2]!r}, the bundled model's figure prints {expected!r}")


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_the_headline_figures_are_marked(name: str) -> None:
    found = {key for key, _, _ in marks(next(d for d in DOCS if d.name == name).read_text())}
    assert not REQUIRED[name] - found, f"{name} no longer marks {sorted(REQUIRED[name] - found)}"


def test_the_figures_file_is_the_bundled_models_and_every_measurement_is_quoted(recorded: dict) -> None:
    model = runtime.bundled_model_path()
    found = figures.recorded_for(model)
    assert found is not None and found[1], "the figures file must name the bundled model: measure it again"
    measurements = found[0].measurements
    marked = {key for doc in DOCS for key, _, _ in marks(doc.read_text())}
    for group, m in measurements.items():
        assert m.command and m.figures, group
        assert (m.cpu is not None) == group.startswith(CPU_GROUPS), f"{group}: name the CPU exactly where it matters"
        assert any(key.startswith(group + ".") for key in marked), f"{group} is recorded but no document quotes it"
    carried = figures.model_figures(model)
    assert not carried.keys() & found[0].flat().keys(), "a figure the model carries is read from the model"
    # the metadata's figures are the model's own, not copies
    assert recorded["devtest.accuracy"] == json.loads(runtime.Model(model, "cpu").info.props[modelmeta.K_DEVTEST])[
        "accuracy"]


def test_info_shows_the_recorded_figures_of_the_bundled_model_only(onnx_model: Path) -> None:
    result = invoke("info", "--precision", "fp32", "--provider", "cpu")
    assert result.exit_code == 0, result.stderr
    for text in ("recorded", "faceverify.figures.json", "evaluate.faces.fp32", "speed.int8"):
        assert text in result.stdout, text
    shown_json = json.loads(invoke("info", "--json", "--precision", "int8").stdout)["recorded_figures"]
    assert shown_json["this_model"] is True
    file = json.loads(figures.figures_path(runtime.bundled_model_path()).read_text())
    assert shown_json["measurements"] == file["measurements"]
    other = json.loads(invoke("info", "--model", onnx_model, "--json").stdout)
    assert other["recorded_figures"] is None  # a model without a figures file beside it


def test_figures_are_recorded_for_one_model_only(onnx_model: Path, tmp_path: Path) -> None:
    model = tmp_path / "mine.onnx"
    model.write_bytes(onnx_model.read_bytes())
    summary = {"model": str(model), "threshold_source": "model", "pairs_file": "/d/lfw-py/pairsDevTest.txt",
               "faces": {"mode": "fixed-crop"}, "metrics": {"accuracy": 0.75, "roc_auc": 0.8, "eer": 0.25,
                                                            "tar_far_1e3": None, "pairs": 20}}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    done = figures.record(model, "evaluate.crop.fp32", figures.from_evaluate(summary))
    assert done == tmp_path / "mine.figures.json"
    data = json.loads(done.read_text())["measurements"]["evaluate.crop.fp32"]
    assert data == {"command": "faceverify evaluate --precision fp32 --no-detect --data-root D",
                    "figures": {"accuracy": 0.75, "roc_auc": 0.8, "eer": 0.25, "pairs": 20}}
    assert figures.all_figures(model)["evaluate.crop.fp32.accuracy"] == 0.75
    assert invoke("info", "--model", model, "--json").exit_code == 0
    with pytest.raises(FaceverifyError, match="metadata carries"):
        figures.record(model, "validation", figures.Measurement("x", {"accuracy": 1.0}))
    with pytest.raises(FaceverifyError, match="not the model's"):
        figures.from_evaluate({**summary, "threshold_source": "option"})

    props = {**runtime.Model(model, "cpu").info.props, modelmeta.K_CREATED: "another export"}
    model.write_bytes(modelmeta.with_metadata(model.read_bytes(), props, str(model)))  # another model: another SHA-256
    shown_json = json.loads(invoke("info", "--model", model, "--json").stdout)["recorded_figures"]
    assert shown_json["this_model"] is False and "measurements" not in shown_json
    with pytest.raises(FaceverifyError, match="records another model"):
        figures.all_figures(model)
    with pytest.raises(FaceverifyError, match="--restart"):
        figures.record(model, "speed.x", figures.Measurement("make bench", {"per_s": 1.0}, cpu="a CPU"))
    figures.record(model, "speed.x", figures.Measurement("make bench", {"per_s": 1.0}, cpu="a CPU"), restart=True)
    assert list(figures.load(done).measurements) == ["speed.x"]
