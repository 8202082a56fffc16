"""Look-alike strangers: the LBP descriptor against hand-computed codes, the pairing rule, and the measurement on
the bundled model's real validation people."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, invoke

from train.calibration import MIXED_RULE, mixed_threshold
from train.lookalike import BINS, GRID, UNIFORM, figures, lbp_descriptors, lookalike_pairs, plot_tradeoff, scored
from verify_cli import modelmeta
from verify_cli.errors import FaceverifyError
from verify_cli.runtime import Model

BUNDLED = REPO / "verify_cli" / "assets" / "faceverify.onnx"


def test_there_are_58_uniform_patterns_and_one_bin_for_the_rest() -> None:
    assert len(set(UNIFORM.tolist())) == BINS and int((UNIFORM < BINS - 1).sum()) == 58
    assert UNIFORM[0b00000000] != BINS - 1 and UNIFORM[0b00011100] != BINS - 1  # 0 and 2 transitions
    assert UNIFORM[0b01010101] == BINS - 1 and UNIFORM[0b00100100] == BINS - 1  # 8 and 4 transitions


def test_descriptor_counts_the_codes_computed_by_hand() -> None:
    # a 6x6 image: inner 4x4 pixels, 1x1 cells each at GRID 4; pixel (2, 2) is darker than all around it
    image = np.full((1, 6, 6), 100, np.uint8)
    image[0, 2, 2] = 10
    d = lbp_descriptors(image).reshape(GRID * GRID, BINS)
    assert np.count_nonzero(d) == GRID * GRID  # one code per 1x1 cell
    all_greater = np.argmax(d[GRID * 1 + 1])  # the dark pixel: every neighbour >= it, code 0b11111111
    assert all_greater == UNIFORM[0b11111111]
    # its right neighbour (2, 3): only the dark pixel, to its left (bit 7), is below it: 0b01111111
    assert np.argmax(d[GRID * 1 + 2]) == UNIFORM[0b01111111]
    assert np.allclose(np.linalg.norm(lbp_descriptors(image), axis=1), 1.0)


def test_each_person_pairs_with_the_most_alike_stranger_once() -> None:
    images = ["A/A_0001.jpg", "A/A_0002.jpg", "B/B_0001.jpg", "C/C_0001.jpg"]
    vectors = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.9, 0.1, 0.0], [0.0, 0.8, 0.6]])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    pairs = lookalike_pairs(images, vectors, 10)
    assert [(p.left, p.right, p.same) for p in pairs] == [("A/A_0001.jpg", "B/B_0001.jpg", False),
                                                          ("A/A_0002.jpg", "C/C_0001.jpg", False)]
    assert len(lookalike_pairs(images, vectors, 1)) == 1  # most alike first


@pytest.fixture(scope="module")
def bundled_scores(data_root: Path) -> tuple[float, dict]:
    """The bundled model's stored threshold and its scores on random and look-alike validation pairs."""
    return scored(BUNDLED, data_root)


@pytest.mark.slow
def test_lookalike_strangers_are_harder_than_random_ones(bundled_scores: tuple[float, dict]) -> None:
    threshold, scores = bundled_scores
    found = {name: figures(p, y, threshold) for name, (p, y) in scores.items()}
    random, alike = found["random"], found["lookalike"]
    assert random.pairs == 4126 and alike.same_pairs == random.same_pairs and alike.different_pairs > 300
    assert alike.far > random.far + 5 * alike.far_se and alike.roc_auc < random.roc_auc - 5 * alike.roc_auc_se
    assert alike.tar == random.tar  # the same same-person pairs
    # the bundled model carries these figures (its operating point), and info shows them
    stored = json.loads(Model(BUNDLED, "cpu").info.props[modelmeta.K_OPERATING])
    assert stored["threshold"] == threshold and "LBP" in stored["lookalike_rule"]
    for name, measured in found.items():
        assert stored[name] == pytest.approx(asdict(measured), rel=1e-6), name
    shown = invoke("info", "--precision", "fp32").stdout
    assert "operating point" in shown and f"FAR {alike.far:.1%}" in shown


@pytest.mark.slow
def test_the_bundled_threshold_follows_the_mixed_rule_and_rethresholding_repeats_it(
        bundled_scores: tuple[float, dict], data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from export import threshold as rethreshold_module

    threshold, scores = bundled_scores
    (probs, same), (alike_probs, alike_same) = scores["random"], scores["lookalike"]
    # ONNX Runtime's float32 kernels differ by ~1e-7 between CPU kinds: the rule's midpoint may move that much
    assert threshold == pytest.approx(mixed_threshold(probs, same, alike_probs[~alike_same]), abs=1e-6)
    props = Model(BUNDLED, "cpu").info.props
    assert props[modelmeta.K_THRESHOLD_RULE].startswith(MIXED_RULE)
    before = BUNDLED.read_bytes()
    monkeypatch.setattr(rethreshold_module, "scored", lambda *_: bundled_scores)  # measured once, above
    out = tmp_path / "again.onnx"
    changes = rethreshold_module.rethreshold(BUNDLED, data_root, out)
    assert BUNDLED.read_bytes() == before  # the original is never modified
    again = Model(out, "cpu").info.props
    # the bundled model already follows the rule: the copy holds its threshold, rule and figures again
    assert all(key in changes for key in (modelmeta.K_THRESHOLD, modelmeta.K_THRESHOLD_RULE, modelmeta.K_OPERATING))
    assert float(again[modelmeta.K_THRESHOLD]) == pytest.approx(float(props[modelmeta.K_THRESHOLD]), abs=1e-6)
    assert again[modelmeta.K_THRESHOLD_RULE] == props[modelmeta.K_THRESHOLD_RULE]
    operating, stored = json.loads(again[modelmeta.K_OPERATING]), json.loads(props[modelmeta.K_OPERATING])
    for name in ("random", "lookalike"):
        assert operating[name] == pytest.approx(stored[name], abs=1e-6), name
    assert json.loads(again[modelmeta.K_VALIDATION]) == pytest.approx(json.loads(props[modelmeta.K_VALIDATION]))
    with pytest.raises(FaceverifyError, match="never modified"):
        rethreshold_module.rethreshold(BUNDLED, data_root, BUNDLED)


def test_tradeoff_plot_is_written_whole(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    same = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    found = {"random": (rng.random(100), same), "lookalike": (rng.random(100), same)}
    out = tmp_path / "plots" / "tradeoff.png"
    plot_tradeoff(0.5, found, "synthetic", out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and [p.name for p in out.parent.iterdir()] == ["tradeoff.png"]
