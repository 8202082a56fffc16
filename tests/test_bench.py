"""The benchmark (`python -m bench --quick`) on a tiny real run: every section, sane figures; no timing asserted."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REPO

from bench import flops, timing
from bench.embedding import same_weights
from bench.machine import usable_cores
from bench.ort_options import VARIANTS
from bench.subjects import pairs_subset
from models import build_model
from train.config import DEFAULT_PRESET, get_preset
from verify_cli.errors import FaceverifyError
from verify_cli.evaluation import index_pairs
from verify_cli.lfw import LFWRoot, parse_pairs
from verify_cli.runtime import Model

SECTIONS = [
    "## Machine",
    "## Targets",
    "## Embedding throughput: ONNX Runtime vs PyTorch eager",
    "## ONNX Runtime session options",
    "## `faceverify evaluate` on DevTest",
    "## `faceverify compare A B`: cold start",
    f"## Training throughput: preset {DEFAULT_PRESET}",
    "## Command",
]


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:] if end < 0 else text[start:end]


def _rows(section: str) -> list[list[str]]:
    """Body rows of the first Markdown table in a section."""
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines[2:]]


def _number(cell: str) -> float:
    match = re.match(r"[\d,]+(\.\d+)?", cell.strip("`"))
    assert match, f"no number in {cell!r}"
    return float(match.group().replace(",", ""))


@pytest.fixture(scope="module")
def quick_report(onnx_model: Path, tiny_run: Path, data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """RESULTS.md of a --quick run against the tiny exported model and its own checkpoint."""
    out = tmp_path_factory.mktemp("bench") / "RESULTS.md"
    cmd = [sys.executable, "-m", "bench", "--quick", "--repeats", "1", "--model", str(onnx_model),
           "--checkpoint", str(tiny_run / "best.pt"), "--data-root", str(data_root), "--out", str(out)]
    done = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    return out.read_text()


@pytest.mark.slow
def test_quick_report_has_every_section_in_order(quick_report: str) -> None:
    positions = [quick_report.index(heading) for heading in SECTIONS]
    assert positions == sorted(positions)
    assert "--quick" in quick_report and "-m bench --quick --repeats 1" in quick_report
    machine = {r[0]: r[1] for r in _rows(_section(quick_report, "## Machine"))}
    assert machine["CPU"] and machine["cores"].split()[0].isdigit()
    assert "onnxruntime" in machine["versions"] and "torch" in machine["versions"]


@pytest.mark.slow
def test_quick_report_targets_are_judged_on_measured_numbers(quick_report: str) -> None:
    rows = _rows(_section(quick_report, "## Targets"))
    assert len(rows) == 5
    for name, _target, measured, met in rows:
        assert _number(measured) > 0, name
        assert met.split()[0] in ("yes", "**no**", "not"), met
    evaluate = next(r for r in rows if "evaluate" in r[0])
    assert evaluate[3].startswith("not judged"), "a DevTest subset must not be judged against the DevTest target"


@pytest.mark.slow
def test_quick_embedding_figures_are_consistent(quick_report: str) -> None:
    section = _section(quick_report, "## Embedding throughput")
    rows = _rows(section)
    cores = usable_cores()
    expected = [(batch, str(n), runtime) for n in dict.fromkeys([cores, 1]) for batch in ("1", "64")
                for runtime in ("ONNX Runtime", "PyTorch eager")]
    assert [tuple(r[:3]) for r in rows] == expected
    for batch, _threads, _runtime, per_s, ms, gflops, _ratio in rows:
        assert math.isclose(_number(per_s), int(batch) / (_number(ms) / 1e3), rel_tol=0.02)
        assert _number(gflops) > 0
    for onnx, torch_row in zip(rows[::2], rows[1::2]):
        assert math.isclose(_number(onnx[6]), _number(torch_row[4]) / _number(onnx[4]), rel_tol=0.02)
    assert re.search(r"max relative L2 difference per embedding \d\.\de-\d\d \(limit 1e-04\)", section)


@pytest.mark.slow
def test_quick_session_options_are_measured_against_the_clis_own(quick_report: str) -> None:
    rows = _rows(_section(quick_report, "## ONNX Runtime session options"))
    assert [r[0] for r in rows] == ["1"] * 4 + ["64"] * 4
    assert [r[1] for r in rows[:4]] == list(VARIANTS) == [r[1] for r in rows[4:]]
    for first, *others in (rows[:4], rows[4:]):
        assert first[4] == "1.00x"
        for row in others:
            assert math.isclose(_number(row[4]), _number(first[3]) / _number(row[3]), rel_tol=0.02)


@pytest.mark.slow
def test_quick_evaluate_counts_the_images_of_its_pairs(quick_report: str, data_root: Path, tmp_path: Path) -> None:
    lfw = LFWRoot.open(data_root)
    pairs = parse_pairs(pairs_subset(lfw, 20, tmp_path / "pairs.txt"))
    assert len(pairs) == 40 and sum(p.same for p in pairs) == 20
    images = len(index_pairs([(p.left, p.right) for p in pairs])[0])
    section = _section(quick_report, "## `faceverify evaluate`")
    assert f"({images:,} distinct images)" in section
    rows = {r[0]: r for r in _rows(section)}
    for column in (1, 2):  # CLI defaults, --workers 1
        process = _number(rows["whole process, wall clock (s)"][column])
        assert process > _number(rows["embedding step: decode and model overlapped (s)"][column]) > 0
        assert _number(rows["images/s, whole process"][column]) == pytest.approx(images / process, rel=0.05)


@pytest.mark.slow
def test_quick_cold_start_and_training_rows(quick_report: str) -> None:
    cold = {r[0]: r for r in _rows(_section(quick_report, "## `faceverify compare A B`"))}
    assert set(cold) == {"`faceverify compare A B --provider cpu`", '`python -c "import torch"`',
                         '`python -c "pass" (the interpreter alone)`'}
    assert all(_number(r[1]) > 0 for r in cold.values())
    train = _rows(_section(quick_report, "## Training throughput"))
    assert train[0][0] == "CPU, 1 thread" and train[0][1].endswith("images")
    cores = usable_cores()
    assert [r[0] for r in train if r[0].startswith("CPU")] == ["CPU, 1 thread"] + [f"CPU, {cores} threads"] * (cores > 1)
    step_ms, per_s, epoch_s = _number(train[0][2]), _number(train[0][3]), _number(train[0][6])
    assert step_ms > 0 and per_s > 0 and epoch_s >= _number(train[0][4])
    assert ("CUDA" in train[-1][0]) == torch.cuda.is_available()


def _exp9() -> tuple:
    cfg = get_preset("exp9")
    return cfg.model, cfg.preprocess


def test_flops_count_matches_a_hand_count_of_exp9() -> None:
    net = build_model(*_exp9()).eval()
    counted = flops.count(net.embed, net, torch.zeros(3, 1, 105, 105))
    # valid convolutions 1->32@10, 32@7, 32@4, 32@4 on 105 px (pools after the first three), dense 32*6*6 -> 32
    conv = 96 * 96 * 32 * 100 + 42 * 42 * 32 * 32 * 49 + 18 * 18 * 32 * 32 * 16 + 6 * 6 * 32 * 32 * 16
    assert (counted.conv_macs, counted.linear_macs) == (conv, 32 * 6 * 6 * 32)
    assert counted.flops == 2 * (conv + 32 * 6 * 6 * 32)


def test_interleave_alternates_sides_after_warmup() -> None:
    calls: list[str] = []
    clock = iter(range(1, 100))

    def side(name: str) -> float:
        calls.append(name)
        return float(next(clock))

    samples = timing.interleave({"A": lambda: side("A"), "B": lambda: side("B")}, repeats=3, warmup=1)
    assert calls == ["A", "B"] * 4
    assert samples["A"].seconds == (3.0, 5.0, 7.0) and samples["B"].seconds == (4.0, 6.0, 8.0)
    assert timing.ratio(samples["B"], samples["A"]) == pytest.approx(6 / 5)


@pytest.mark.slow
def test_same_weights_refuses_a_different_network(onnx_model: Path, tiny_run: Path, data_root: Path) -> None:
    from train import checkpoint
    from train.loop import load_model

    model = Model(onnx_model, provider="cpu")
    lfw = LFWRoot.open(data_root)
    from bench.subjects import real_images

    images = real_images(lfw, model, 4)
    assert images.shape == (4, 1, 105, 105) and len({a.tobytes() for a in images}) == 4
    _, net = load_model(checkpoint.load(tiny_run / "best.pt"))
    max_abs, rel = same_weights(model, net, images, 1e-4)
    assert 0 <= rel <= 1e-4 and np.isfinite(max_abs)
    other = build_model(*_exp9()).eval()
    with pytest.raises(FaceverifyError, match="not the same weights"):
        same_weights(model, other, images, 1e-4)
