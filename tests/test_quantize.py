"""The int8 model: its metadata, its agreement with fp32 on real LFW pairs, the refusal, and `--precision int8`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import REPO, assert_one_error_line, devtest_path_list, invoke
from onnx import numpy_helper
from PIL import Image
from typer.testing import CliRunner

from bench.int8 import saturation_probe
from bench.subjects import pairs_subset
from export import quantize
from export.parity import ParityReport
from export.pipeline import ExportResult
from verify_cli import modelmeta, runtime
from verify_cli.cli.info import precision_records, precision_text
from verify_cli.cpu import MAX_EXACT_WEIGHT, VNNI, this_cpu
from verify_cli.gallery import model_identity
from verify_cli.lfw import LFWRoot

FP32 = REPO / "verify_cli" / "assets" / "faceverify.onnx"
INT8 = REPO / "verify_cli" / "assets" / "faceverify.int8.onnx"


@pytest.fixture(scope="module")
def pair_file(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 real DevTest pairs (10 matched, 10 mismatched) in the LFW View 1 format."""
    return pairs_subset(LFWRoot.open(data_root), 10, tmp_path_factory.mktemp("pairs") / "small.txt")


@pytest.fixture(scope="module")
def path_pairs(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same kind of 20 real DevTest pairs as a `compare --pairs-file` list of image paths."""
    return devtest_path_list(data_root, 10, tmp_path_factory.mktemp("pairs") / "list.tsv")


def _photo(path: Path) -> Path:
    Image.new("RGB", (250, 250), (120, 110, 100)).save(path)
    return path


def test_precision_paths_name_the_pair_from_either_side() -> None:
    pair = {"fp32": Path("d/faceverify.onnx"), "int8": Path("d/faceverify.int8.onnx")}
    assert runtime.precision_paths(Path("d/faceverify.onnx")) == pair
    assert runtime.precision_paths(Path("d/faceverify.int8.onnx")) == pair
    assert runtime.precision_paths(Path("m.bin"))["int8"] == Path("m.bin.int8.onnx")


def test_bundled_int8_carries_the_fp32_metadata_and_its_agreement() -> None:
    fp32, int8 = runtime.Model(FP32, "cpu"), runtime.Model(INT8, "cpu")
    assert int8.info.precision == "int8" and fp32.info.precision == "fp32"
    extra = {modelmeta.K_PRECISION, modelmeta.K_QUANTIZATION}
    assert set(int8.info.props) == set(fp32.info.props) | extra
    assert {k: v for k, v in int8.info.props.items() if k not in extra} == fp32.info.props  # threshold included
    made = int8.info.quantization
    assert made["fp32_model"]["identity"] == model_identity(FP32), "stale bundled int8: run `make int8 MODEL=...`"
    assert made["calibration_images"] > 100 and "validation pairs" in made["calibration_source"]
    a = made["agreement"]
    assert a["enforced"] and a["passed"] and a["threshold"] == fp32.threshold
    assert a["decisions_agree"] == pytest.approx(1 - a["decisions_differ"] / a["pairs"])
    assert a["decisions_agree"] >= a["min_agreement"] == quantize.MIN_AGREEMENT
    assert a["fp32_auc"] - a["int8_auc"] <= a["max_auc_drop"] == quantize.MAX_AUC_DROP
    assert 0 < a["prob_mean_abs_diff"] <= a["prob_max_abs_diff"] < 0.2


def test_bundled_int8_weights_cannot_saturate_a_16_bit_sum() -> None:
    """Every int8 weight within +-64, read from the graph itself: two u8 x s8 products then fit a 16-bit sum."""
    proto = onnx.load(str(INT8))
    weights = [numpy_helper.to_array(init) for init in proto.graph.initializer
               if init.data_type == onnx.TensorProto.INT8]
    largest = max(int(np.abs(w.astype(np.int64)).max()) for w in weights)
    assert len(weights) >= 20 and largest == 64 and 2 * 255 * largest <= 32767
    assert runtime.Model(INT8, "cpu").info.quantization["weight_max_abs"] == largest


def test_onnx_runtime_multiplies_7_bit_weights_exactly() -> None:
    """The u8 x s8 kernel the int8 model runs on, against exact integers (numpy int64), on inputs built to saturate
    a 16-bit sum of two products: with weights within +-64 every output is exact, on every CPU kind."""
    assert saturation_probe(MAX_EXACT_WEIGHT) == (0.0, 0)


@pytest.mark.skipif(not (this_cpu().x86_64 and this_cpu().has("avx2")) or this_cpu().has(*VNNI),
                    reason="needs an x86-64 CPU with AVX2 and without VNNI (avx512_vnni, avx_vnni, amx_int8)")
def test_8_bit_weights_saturate_without_vnni() -> None:
    """The cause, shown where it happens: 8-bit weights overflow the 16-bit sums of VPMADDUBSW."""
    share, largest = saturation_probe(127)
    assert share > 0.5 and largest > 10_000


@pytest.mark.skipif(not this_cpu().has(*VNNI), reason="needs a CPU with VNNI (avx512_vnni, avx_vnni or amx_int8)")
def test_8_bit_weights_are_exact_with_vnni() -> None:
    assert saturation_probe(127) == (0.0, 0)


def test_bundled_int8_quantizes_the_tower_and_keeps_the_head_float() -> None:
    fp32, int8 = onnx.load(str(FP32)), onnx.load(str(INT8))
    head32, head8 = quantize.head_nodes(fp32), set(quantize.head_nodes(int8))
    assert sorted(n.op_type for n in int8.graph.node if n.name in head8) == sorted(
        n.op_type for n in fp32.graph.node if n.name in set(head32))  # the head as exported: no Q/DQ, float32
    producer = {out: node for node in int8.graph.node for out in node.output}
    weights = {init.name: init for init in int8.graph.initializer}
    heavy = [n for n in int8.graph.node if n.op_type in ("Conv", "MatMul", "Gemm") and n.name not in head8]
    assert len(heavy) == sum(n.op_type in ("Conv", "MatMul", "Gemm") for n in fp32.graph.node)
    made_by = {out: node.op_type for node in fp32.graph.node for out in node.output}
    resampling = {n.name for n in fp32.graph.node if n.op_type == "MatMul" and made_by.get(n.input[1]) == "Constant"}
    for node in heavy:
        data, weight = producer[node.input[0]], producer[node.input[1]]
        assert data.op_type == weight.op_type == "DequantizeLinear", node.name
        if node.name in resampling:  # a patch tower's constant resampling matrix: quantized like an activation
            continue
        assert weights[data.input[1]].dims == [] and weights[data.input[2]].data_type == onnx.TensorProto.UINT8
        assert weights[weight.input[0]].data_type == onnx.TensorProto.INT8
        assert len(weights[weight.input[1]].dims) == 1 and weights[weight.input[1]].dims[0] > 1  # per channel
    assert INT8.stat().st_size < FP32.stat().st_size / 3


@pytest.mark.slow
def test_int8_decides_as_fp32_on_real_lfw_pairs(path_pairs: Path) -> None:
    runs = {}
    for precision in ("fp32", "int8"):
        result = invoke("compare", "--pairs-file", path_pairs, "--no-detect", "--json", "--precision", precision,
                        "--provider", "cpu")
        assert result.exit_code in (0, 1), result.stderr
        runs[precision] = [json.loads(line) for line in result.stdout.splitlines()]
    p32 = np.array([r["probability"] for r in runs["fp32"]])
    p8 = np.array([r["probability"] for r in runs["int8"]])
    assert len(p32) == 20 and {r["provider"] for r in runs["int8"]} == {"CPUExecutionProvider"}
    assert np.abs(p8 - p32).max() < 0.1 and not np.array_equal(p8, p32)  # close, and really another model
    assert [r["same"] for r in runs["int8"]] == [r["same"] for r in runs["fp32"]]


@pytest.mark.slow
def test_precision_int8_through_compare_and_evaluate(data_root: Path, pair_file: Path, lfw_images: list[Path]) -> None:
    result = invoke("compare", lfw_images[0], lfw_images[1], "--precision", "int8", "--json")
    record = json.loads(result.stdout)
    assert record["model"] == str(INT8) and record["provider"] == "CPUExecutionProvider"
    assert result.exit_code == (0 if record["same"] else 1)
    figures = {}
    for precision in ("fp32", "int8"):
        result = invoke("evaluate", "--data-root", data_root, "--pairs", pair_file, "--no-detect", "--json",
                        "--precision", precision)
        assert result.exit_code == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["model"].endswith(f"faceverify{'.int8' if precision == 'int8' else ''}.onnx")
        figures[precision] = summary["metrics"]
    assert figures["int8"]["pairs"] == 20 and figures["int8"]["threshold"] == figures["fp32"]["threshold"]
    assert abs(figures["int8"]["accuracy"] - figures["fp32"]["accuracy"]) <= 0.05  # at most one pair of 20


def test_info_shows_both_models() -> None:
    result = invoke("info", "--provider", "cpu")
    assert result.exit_code == 0, result.stderr
    sizes = [f"{path.name} ({path.stat().st_size / 1e6:.2f} MB" for path in (FP32, INT8)]
    for text in (*sizes, "decisions as fp32's", "int8", "auto ", "on this CPU", this_cpu().arch):
        assert text in result.stdout, text
    shown = json.loads(invoke("info", "--json", "--precision", "int8").stdout)
    models = shown["models"]
    assert shown["auto_precision"]["precision"] == expected_auto() and shown["auto_precision"]["reason"]
    assert shown["auto_precision"]["cpu"]["features"] == this_cpu().shown()
    assert models["int8"]["bytes"] == INT8.stat().st_size and models["int8"]["from_this_fp32"] is True
    assert models["int8"]["quantization"]["agreement"]["passed"] is True
    assert models["fp32"]["threshold"] == models["int8"]["threshold"] and models["fp32"]["quantization"] == {}


@pytest.mark.parametrize("command", ["compare", "info"])
def test_a_model_without_int8_sibling_is_one_error_line(command: str, tmp_path: Path) -> None:
    model = tmp_path / "mine.onnx"
    shutil.copyfile(FP32, model)
    photos = [_photo(tmp_path / "a.png"), _photo(tmp_path / "b.png")] if command == "compare" else []
    result = invoke(command, *photos, "--model", model, "--precision", "int8")
    assert_one_error_line(result, "no int8 model mine.int8.onnx beside")
    assert "python -m export.quantize" in result.stderr
    shown = invoke("info", "--model", model)
    assert shown.exit_code == 0 and "mine.int8.onnx not present" in shown.stdout


def test_int8_beside_another_fp32_model_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "faceverify.onnx"
    proto = onnx.load(str(FP32))
    next(p for p in proto.metadata_props if p.key == modelmeta.K_CREATED).value = "2000-01-01T00:00:00+00:00"
    onnx.save(proto, str(model))
    shutil.copyfile(INT8, tmp_path / "faceverify.int8.onnx")
    photos = [_photo(tmp_path / "a.png"), _photo(tmp_path / "b.png")]
    result = invoke("compare", *photos, "--model", model, "--precision", "int8", "--no-detect")
    assert_one_error_line(result, "made from another fp32 model than faceverify.onnx beside it")
    assert json.loads(invoke("info", "--model", model, "--json").stdout)["models"]["int8"]["from_this_fp32"] is False
    assert "quantize it again" in precision_text("int8", precision_records(model)["int8"])  # the table's int8 row


def test_default_precision_is_int8_on_the_cpu_and_fp32_without_a_usable_sibling(tmp_path: Path) -> None:
    """--precision auto (the default): the int8 sibling where it runs and is sound, else the model as trained."""
    photos = [_photo(tmp_path / "a.png"), _photo(tmp_path / "b.png")]

    def model_used(*args: object) -> str:
        result = invoke("compare", *photos, "--no-detect", "--json", "--provider", "cpu", *args)
        assert result.exit_code in (0, 1), result.stderr
        return Path(json.loads(result.stdout)["model"]).name

    assert model_used() == f"faceverify{'.int8' if expected_auto() == 'int8' else ''}.onnx"
    assert model_used("--precision", "fp32") == "faceverify.onnx"
    alone = tmp_path / "alone" / "mine.onnx"
    alone.parent.mkdir()
    proto = onnx.load(str(FP32))
    next(p for p in proto.metadata_props if p.key == modelmeta.K_CREATED).value = "2000-01-01T00:00:00+00:00"
    onnx.save(proto, str(alone))
    assert model_used("--model", alone) == "mine.onnx"  # no sibling: fp32, no error
    shutil.copyfile(INT8, alone.with_name("mine.int8.onnx"))  # a sibling made from another fp32 model: fp32
    assert model_used("--model", alone) == "mine.onnx"
    shutil.copyfile(FP32, tmp_path / "faceverify.onnx")
    shutil.copyfile(INT8, tmp_path / "faceverify.int8.onnx")
    assert model_used("--model", tmp_path / "faceverify.onnx") == f"faceverify{'.int8' if expected_auto() == 'int8' else ''}.onnx"
    # an int8 sibling with 8-bit weights (as before reduce_range): int8 only where VNNI makes it exact
    proto = onnx.load(str(INT8))
    record = next(p for p in proto.metadata_props if p.key == modelmeta.K_QUANTIZATION)
    record.value = json.dumps({**json.loads(record.value), "weight_max_abs": 127})
    onnx.save(proto, str(tmp_path / "faceverify.int8.onnx"))
    eight_bit = "int8" if expected_auto() == "int8" and this_cpu().has(*VNNI) else "fp32"
    assert model_used("--model", tmp_path / "faceverify.onnx") == f"faceverify{'.int8' if eight_bit == 'int8' else ''}.onnx"


def expected_auto() -> str:
    """What --precision auto should run for the bundled pair here, from the CPU's flags alone (not from the rule's
    code): int8 on every x86-64 CPU with AVX2, the kinds it was verified on; fp32 elsewhere."""
    cpu = this_cpu()
    return "int8" if cpu.x86_64 and "avx2" in cpu.flags else "fp32"


def test_int8_on_cuda_is_one_error_line(tmp_path: Path) -> None:
    photos = [_photo(tmp_path / "a.png"), _photo(tmp_path / "b.png")]
    result = invoke("compare", *photos, "--precision", "int8", "--provider", "cuda")
    assert_one_error_line(result, runtime.INT8_CPU_ONLY)


def _zero_half_the_channels(quantize_graph: Callable[..., None]) -> Callable[..., None]:
    """The real quantization, then every per-channel weight scale of the tower zeroed for half its channels."""

    def broken(fp32_path: Path, out: Path, *args: object) -> None:
        quantize_graph(fp32_path, out, *args)
        proto = onnx.load(str(out))
        for init in proto.graph.initializer:
            if init.name.endswith("_scale") and len(init.dims) == 1 and init.dims[0] > 1:
                scale = numpy_helper.to_array(init).copy()
                scale[::2] = 0
                init.CopyFrom(numpy_helper.from_array(scale, init.name))
        onnx.save(proto, str(out))

    return broken


@pytest.mark.slow
@pytest.mark.parametrize("case", ["agreement-limit", "auc-limit", "broken-quantization"])
def test_refused_int8_is_one_error_line_and_no_file(case: str, data_root: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    if case == "agreement-limit":
        monkeypatch.setattr(quantize, "MIN_AGREEMENT", 1.01)
    elif case == "auc-limit":
        monkeypatch.setattr(quantize, "MAX_AUC_DROP", -1.0)
    else:
        monkeypatch.setattr(quantize, "quantize_graph", _zero_half_the_channels(quantize.quantize_graph))
    monkeypatch.setattr("signal.signal", lambda *args: None)  # keep pytest's handlers
    out = tmp_path / "refused.int8.onnx"
    result = CliRunner().invoke(quantize.app, ["--model", str(FP32), "--data-root", str(data_root), "--out", str(out),
                                               "--pairs", "200"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: int8 model refused: its ") and sum(x.startswith("error") for x in lines) == 1
    assert ("decisions agree" if case != "auc-limit" else "validation AUC") in lines[-1]
    assert list(tmp_path.iterdir()) == [] and "Traceback" not in result.output


def _copied_export(source: Path) -> Callable[..., ExportResult]:
    """export_model's stand-in: the bundled fp32 model copied to --out, with its recorded parity as the report."""

    def export_model(checkpoint: Path, out: Path, *args: object, **kwargs: object) -> ExportResult:
        shutil.copyfile(source, out)
        props = runtime.Model(out, "cpu").info.props
        parity = {k: v for k, v in json.loads(props[modelmeta.K_PARITY]).items() if k != "passed"}
        report = Path(out).with_suffix(".parity.json")
        report.write_text(json.dumps(parity))
        return ExportResult(Path(out), report, ParityReport(**parity), props)

    return export_model


@pytest.mark.slow
@pytest.mark.parametrize("int8", [True, False], ids=["int8", "no-int8"])
def test_export_stage_writes_the_int8_sibling(int8: bool, data_root: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import export.pipeline
    from export.__main__ import app

    monkeypatch.setattr(export.pipeline, "export_model", _copied_export(FP32))
    monkeypatch.setattr("signal.signal", lambda *args: None)
    out = tmp_path / "faceverify.onnx"
    args = ["--checkpoint", str(tmp_path / "best.pt"), "--out", str(out), "--data-root", str(data_root),
            "--dry-run", "--int8" if int8 else "--no-int8"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(out)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["faceverify.int8.onnx", "faceverify.onnx", "faceverify.parity.json"][0 if int8 else 1:]
    if int8:
        made = runtime.Model(tmp_path / "faceverify.int8.onnx", "cpu").info.quantization
        assert made["fp32_model"]["identity"] == model_identity(out)
        assert made["agreement"]["pairs"] == 16 and made["agreement"]["enforced"] is False  # --dry-run: a handful
        assert "faceverify int8" in result.stderr and "not enforced" in result.stderr


@pytest.mark.slow
def test_int8_cli_imports_no_torch_and_no_quantization_tool(lfw_images: list[Path]) -> None:
    code = (
        "import sys\n"
        "import verify_cli.cli as cli\n"
        f"sys.argv = ['faceverify', 'compare', {str(lfw_images[0])!r}, {str(lfw_images[1])!r}, '--precision', 'int8',"
        " '--json']\n"
        "try:\n    cli.main()\nexcept SystemExit as exc:\n    print('exit', exc.code)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'torchvision', 'onnx'}"
        " or m.startswith('onnxruntime.quantization')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    lines = done.stdout.splitlines()
    assert json.loads(lines[0])["model"] == str(INT8), done.stderr
    assert lines[1] in ("exit 0", "exit 1") and lines[2] == "[]", lines
