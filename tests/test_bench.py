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
from PIL import Image, ImageFile

from bench import faces, flops, timing
from bench.embedding import same_weights
from bench.machine import others_cores, usable_cores
from bench.ort_options import VARIANTS
from bench.report import table
from bench.subjects import pairs_subset
from models import build_model
from train.config import DEFAULT_PRESET, get_preset
from verify_cli.cpu import this_cpu
from verify_cli.errors import FaceverifyError
from verify_cli.evaluation import index_pairs
from verify_cli.faces import pipeline
from verify_cli.lfw import LFWRoot, parse_pairs
from verify_cli.preprocess import load_image
from verify_cli.runtime import Model

SECTIONS = [
    "## Machine",
    "## Targets",
    "## Embedding throughput: ONNX Runtime vs PyTorch eager",
    "## ONNX Runtime session options",
    "## int8 against fp32",
    "## `faceverify evaluate` on DevTest",
    "## Photos end to end: faceverify vs face_recognition",
    "## `faceverify compare A B`: cold start",
    "## Gallery search: identify against",
    "## `faceverify serve`: POST /verify under load",
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
    assert len(rows) == 10
    for name, _target, measured, met in rows:
        assert _number(measured) > 0, name
        assert met.split()[0] in ("yes", "**no**", "not"), met
    evaluate = [r for r in rows if "evaluate" in r[0]]
    assert [r[0].rsplit(", ", 1)[1] for r in evaluate] == ["faces detected (CLI default)", "--no-detect"]
    for row in evaluate:
        assert row[3].startswith("not judged"), "a DevTest subset must not be judged against the DevTest target"
    photos = next(r for r in rows if r[0].startswith("photos/s end to end"))
    assert photos[3] == f"not judged (--quick: {faces.QUICK_PHOTOS} photos)", "a few photos decide no target"


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
            # the ratio is printed with two decimals: 0.25x may stand for anything from 0.245 to 0.255
            assert math.isclose(_number(row[4]), _number(first[3]) / _number(row[3]), rel_tol=0.02, abs_tol=0.006)


@pytest.mark.slow
def test_quick_evaluate_counts_the_images_of_its_pairs(quick_report: str, data_root: Path, tmp_path: Path) -> None:
    lfw = LFWRoot.open(data_root)
    pairs = parse_pairs(pairs_subset(lfw, 20, tmp_path / "pairs.txt"))
    assert len(pairs) == 40 and sum(p.same for p in pairs) == 20
    images = len(index_pairs([(p.left, p.right) for p in pairs])[0])
    section = _section(quick_report, "## `faceverify evaluate`")
    assert f"({images:,} distinct images)" in section
    rows = {r[0]: r for r in _rows(section)}
    assert rows["faces"][1].startswith("detected and aligned") and rows["faces"][2].startswith("fixed centre crop")
    for column in (1, 2):  # CLI defaults (detection), --no-detect
        process = _number(rows["whole process, wall clock (s)"][column])
        assert process > _number(rows["embedding step: reading faces and model overlapped (s)"][column]) > 0
        assert _number(rows["images/s, whole process"][column]) == pytest.approx(images / process, rel=0.05)


@pytest.mark.slow
def test_quick_cold_start_and_training_rows(quick_report: str) -> None:
    cold = {r[0]: r for r in _rows(_section(quick_report, "## `faceverify compare A B`"))}
    assert set(cold) == {"`faceverify compare A B --provider cpu`", "`faceverify compare A B --provider cpu --no-detect`",
                         '`python -c "import torch"`', '`python -c "pass" (the interpreter alone)`'}
    assert all(_number(r[1]) > 0 for r in cold.values())
    train = _rows(_section(quick_report, "## Training throughput"))
    assert train[0][0] == "CPU, 1 thread" and train[0][2].endswith("images")
    cores = usable_cores()
    settings = ["CPU, 1 thread"] + [f"CPU, {cores} threads"] * (cores > 1)
    assert [(r[0], r[1].split()[0]) for r in train if r[0].startswith("CPU")] == [
        (s, p) for s in settings for p in ("fp32", "bf16")]  # each precision timed, whatever the preset says
    native = bool({"avx512_bf16", "amx_bf16"} & this_cpu().flags)
    picked = [r[1].split()[0] for r in train if r[1].endswith("(auto's pick)")]
    assert picked == ["bf16" if native else "fp32"] * len(settings) + picked[len(settings):]
    for row in train:
        step_ms, per_s, epoch_s = _number(row[3]), _number(row[4]), _number(row[7])
        assert step_ms > 0 and per_s > 0 and epoch_s >= _number(row[5])
    assert ("CUDA" in train[-1][0]) == torch.cuda.is_available()


def _check_photo_rows(section: str, photos: int, face_recognition: bool) -> None:
    """The photos table: faceverify's rows measured on every photo, face_recognition's measured or skipped."""
    rows = {r[0]: r for r in _rows(section)}
    assert list(rows) == [faces.FACEVERIFY, faces.FULL_DECODE, faces.FR_DEFAULT, faces.FR_UPSAMPLE0]
    measured = [faces.FACEVERIFY, faces.FULL_DECODE] + ([faces.FR_DEFAULT, faces.FR_UPSAMPLE0] * face_recognition)
    for name in measured:
        _, per_s, seconds, found, ratio = rows[name]
        assert _number(per_s) == pytest.approx(photos / _number(seconds), rel=0.02)
        assert found.endswith(f" of {photos}") and 0 <= _number(found) <= photos
        assert _number(ratio) == pytest.approx(_number(rows[faces.FACEVERIFY][1]) / _number(per_s), rel=0.03)
    assert rows[faces.FACEVERIFY][3] == f"{photos} of {photos}", "faceverify finds a face in every photo or fails"
    assert rows[faces.FACEVERIFY][4] == "1.00x"
    for name in rows.keys() - measured:
        assert rows[name][1:] == ["skipped", "", "", ""]
    assert ("face_recognition skipped: not" in section) == (not face_recognition)
    split = re.search(r"decode \(.*?\) ([\d.]+) ms \((\d+)%\); detection \(.*?\) ([\d.]+) ms \((\d+)%\); shrink .*? "
                      r"([\d.]+) ms \((\d+)%\); embedding \(.*?\) ([\d.]+) ms \((\d+)%\); ([\d.]+) ms in all", section)
    assert split, "the time split note"
    ms = [float(split.group(i)) for i in (1, 3, 5, 7)]
    assert all(v > 0 for v in ms) and sum(ms) == pytest.approx(float(split.group(9)), abs=0.3)
    assert sum(int(split.group(i)) for i in (2, 4, 6, 8)) in range(98, 103)
    decoding = re.search(r"decoding takes ([\d.]+) ms per photo with the draft and ([\d.]+) ms whole", section)
    assert decoding and float(decoding.group(1)) == ms[0] and float(decoding.group(2)) > 0
    assert f"{photos} photos made by `python -m bench.reframe --size 1920x1080 --seed 1 --limit {photos}`" in section


def _face_recognition_imports() -> bool:
    """Whether face_recognition imports here, asked of another process (importing it changes Pillow's settings)."""
    if faces.baseline_problem() is not None:
        return False
    code = "from bench.faces import _fr_init, _fr_problem; _fr_init(); raise SystemExit(_fr_problem() is not None)"
    return subprocess.run([sys.executable, "-c", code], check=False, cwd=REPO, capture_output=True).returncode == 0


@pytest.mark.slow
def test_quick_photos_end_to_end(quick_report: str) -> None:
    section = _section(quick_report, "## Photos end to end")
    _check_photo_rows(section, faces.QUICK_PHOTOS, _face_recognition_imports())


@pytest.mark.slow
def test_photos_section_leaves_this_process_as_it_was(onnx_model: Path, data_root: Path, tmp_path: Path) -> None:
    if not _face_recognition_imports():
        pytest.skip("face_recognition is not installed here")
    section = faces.run(onnx_model, data_root, tmp_path, 2, 1, usable_cores(), quick=True)
    text = "\n\n".join([section.intro, table(section.header, section.rows), *section.notes])
    _check_photo_rows(text, 2, face_recognition=True)
    # importing face_recognition sets this Pillow global; only its worker processes may
    assert "face_recognition" not in sys.modules and not ImageFile.LOAD_TRUNCATED_IMAGES


@pytest.mark.slow
def test_quick_search_rows(quick_report: str) -> None:
    section = _section(quick_report, "## Gallery search")
    rows = _rows(section)
    assert [r[0] for r in rows] == ["1,000"], "--quick searches the 1,000-entry gallery only"
    row = [_number(cell) for cell in rows[0][1:]]
    assert all(v > 0 for v in row[:5])
    assert row[2] == pytest.approx(_number(rows[0][2]) / _number(rows[0][1]), rel=0.05)
    embedding_bytes = int(re.search(r"An embedding is \d+ float32 numbers, (\d+) bytes", section).group(1))
    assert row[4] > embedding_bytes and row[5] > embedding_bytes, "memory per entry holds at least the embedding"


@pytest.mark.slow
def test_photos_section_without_face_recognition(onnx_model: Path, data_root: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "face_recognition", None)  # as if not installed
    problem = faces.baseline_problem()  # names whatever is missing: face_recognition alone, or its models and dlib too
    assert problem.startswith("not installed (face_recognition") and "pip install --no-deps face-recognition" in problem
    section = faces.run(onnx_model, data_root, tmp_path, 2, 1, usable_cores(), quick=True)
    text = "\n\n".join([section.intro, table(section.header, section.rows), *section.notes])
    _check_photo_rows(text, 2, face_recognition=False)
    assert section.targets[0].met is None


def test_full_decode_matches_the_drafted_geometry(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    smooth = np.linspace(0, 255, 160 * 90 * 3).reshape(90, 160, 3).astype(np.uint8)
    Image.fromarray(smooth).save(path, quality=90)
    drafted, whole = load_image(path, "RGB", reduce=2), faces._full_decode(path, "RGB", 2)
    assert drafted.size == whole.size == (80, 45)
    assert np.abs(np.asarray(drafted, np.int16) - np.asarray(whole, np.int16)).mean() < 4
    with faces.no_draft():
        assert pipeline.load_image is faces._full_decode
    assert pipeline.load_image is load_image


def test_others_cores_is_the_machines_busy_time_less_our_own() -> None:
    assert others_cores((100.0, 10.0), (104.0, 11.0), 2.0) == pytest.approx(1.5)
    assert others_cores((100.0, 10.0), (101.0, 11.5), 1.0) == 0.0  # our children's time can outrun a coarse /proc/stat
    assert others_cores(None, (1.0, 1.0), 1.0) is None and others_cores((0.0, 0.0), (1.0, 1.0), 0.0) is None


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


@pytest.mark.slow
def test_quick_int8_rows_stand_side_by_side(quick_report: str) -> None:
    rows = _rows(_section(quick_report, "## int8 against fp32"))
    assert [r[0] for r in rows] == ["fp32", "int8"]
    for row in rows:
        assert all(_number(cell) > 0 for cell in row[1:4] + row[5:]), row
    assert _number(rows[1][1]) < _number(rows[0][1])  # the int8 file is the smaller
    assert rows[0][4] == "" and rows[1][4].endswith("x") and len(rows[0]) == 9


def test_cpu_looped_counts_cpu_time_not_waiting() -> None:
    # in a fresh process: this one's other threads (ONNX Runtime's pools from earlier tests) burn CPU time too
    code = ("import time\nfrom bench import timing\ndef nap(): time.sleep(0.002)\n"
            "print(timing.looped(nap, 0.02)(), timing.cpu_looped(nap, 0.02)())")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    wall, cpu = map(float, done.stdout.split())
    assert wall >= 0.002 > 4 * cpu


@pytest.mark.slow
def test_quick_serve_rows(quick_report: str) -> None:
    rows = _rows(_section(quick_report, "## `faceverify serve`"))
    assert [r[0] for r in rows] == ["1", "4", "16", "`faceverify compare` in a loop"]
    for row in rows[:3]:
        assert int(row[1]) > 0 and _number(row[2]) > 0 and 0 < _number(row[3]) <= _number(row[4])
