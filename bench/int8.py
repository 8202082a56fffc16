"""int8 against fp32: embeddings/s at batch 1 and 64 on 2 threads side by side, file size, and DevTest figures."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import numpy as np

from bench import timing
from bench.embedding import BATCHES, PAUSE_S
from bench.evaluate_cli import run_cli
from bench.report import Section, Target, num
from verify_cli.runtime import Model, precision_paths

THREADS = 2  # the issue's figures are on 2 cores
SPEED_TARGET = 2.0  # int8 images/s over fp32's at batch 64, at least
ACCURACY_POINTS = 0.5  # DevTest accuracy within this many points of fp32's
AUC_DROP = 0.005  # DevTest ROC AUC at most this much below fp32's


def pair_of(model: Path, data_root: Path, work: Path, quick: bool) -> Path:
    """The fp32 model whose int8 sibling exists: `model` itself, else a copy in `work` quantized there."""
    if precision_paths(model)["int8"].is_file():
        return model
    from export.config import ExportConfig
    from export.quantize import quantize_model

    copy = work / "int8" / "faceverify.onnx"
    copy.parent.mkdir(exist_ok=True)
    shutil.copyfile(model, copy)
    quantize_model(copy, precision_paths(copy)["int8"], data_root, ExportConfig(dry_run=quick))
    return copy


def devtest(model: Path, precision: str, data_root: Path, pairs: str) -> dict:
    """DevTest figures of one precision through `faceverify evaluate --no-detect --json` (the CLI's own code)."""
    _, out = run_cli(["evaluate", "--model", str(model), "--precision", precision, "--no-detect", "--provider", "cpu",
                      "--data-root", str(data_root), "--pairs", pairs, "--json"])
    return json.loads(out)["metrics"]


def speeds(models: dict[str, Model], images: np.ndarray, repeats: int, warmup: int,
           budget_s: float) -> dict[int, dict[str, timing.Samples]]:
    """Seconds per embedding call of each precision at each batch size, precisions alternating round by round."""
    return {batch: timing.interleave({name: timing.looped(functools.partial(m.embed, images[:batch]), budget_s)
                                      for name, m in models.items()}, repeats, warmup, PAUSE_S)
            for batch in BATCHES}


def cpu_costs(paths: dict[str, Path], images: np.ndarray, repeats: int, warmup: int,
              budget_s: float) -> dict[int, dict[str, timing.Samples]]:
    """CPU seconds per call of each precision on one thread at each batch size, alternating: the work itself, which
    other processes on the machine do not inflate as they do wall-clock time."""
    ones = {name: Model(path, provider="cpu", threads=1) for name, path in paths.items()}
    return {batch: timing.interleave({name: timing.cpu_looped(functools.partial(m.embed, images[:batch]), budget_s)
                                      for name, m in ones.items()}, repeats, warmup, PAUSE_S)
            for batch in BATCHES}


def run(model: Path, data_root: Path, work: Path, images: np.ndarray, pairs: str, pairs_label: str, repeats: int,
        warmup: int, budget_s: float, quick: bool) -> Section:
    """Both precisions side by side: speed at batch 1 and 64, size, DevTest accuracy and AUC; the targets judged."""
    fp32_path = pair_of(model, data_root, work, quick)
    paths = precision_paths(fp32_path)
    models = {name: Model(path, provider="cpu", threads=THREADS) for name, path in paths.items()}
    measured = speeds(models, images, repeats, warmup, budget_s)
    cpu = cpu_costs(paths, images, repeats, warmup, budget_s)
    figures = {name: devtest(fp32_path, name, data_root, pairs) for name in paths}
    section = Section(
        title="int8 against fp32",
        intro=(
            f"The fp32 model and its int8 sibling (`{paths['int8'].name}`: ONNX Runtime static QDQ quantization, "
            f"`python -m export.quantize`) on the same real DevTest images (faces found and aligned), {THREADS} "
            f"intra-op threads, CPU provider. Each round runs each precision for about {budget_s:g} s of back-to-back "
            f"calls, fp32 then int8, each after {PAUSE_S * 1e3:.0f} ms idle; {warmup} warm-up round(s), then the "
            f"median of {repeats}; then the CPU time each spends per image on one thread, alternating the same way. "
            f"DevTest: `faceverify evaluate --no-detect --precision P --json` on {pairs_label}, "
            "at the threshold stored in each model (int8 keeps fp32's)."
        ),
        header=["precision", "file (MB)", "images/s, batch 1", "images/s, batch 64", "vs fp32, batch 64",
                *(f"CPU ms per image, batch {b}, 1 thread" for b in BATCHES), "DevTest accuracy", "DevTest ROC AUC"],
    )
    ratio = {b: timing.ratio(measured[b]["fp32"], measured[b]["int8"]) for b in BATCHES}
    for name, path in paths.items():
        per_s = [num(b / measured[b][name].median) for b in BATCHES]
        section.rows.append([name, f"{path.stat().st_size / 1e6:.2f}", *per_s,
                             f"{ratio[max(BATCHES)]:.2f}x" if name == "int8" else "",
                             *(num(cpu[b][name].median / b * 1e3) for b in BATCHES),
                             f"{figures[name]['accuracy']:.4f}", f"{figures[name]['roc_auc']:.4f}"])
    section.targets += targets(ratio[max(BATCHES)], figures, pairs == "test")
    section.notes.append(
        f"int8 / fp32 images/s at batch 1: {ratio[1]:.2f}x. In CPU time per image on one thread (`time.process_time`, "
        "which other processes cannot inflate), fp32 / int8: "
        + ", ".join(f"{timing.ratio(cpu[b]['fp32'], cpu[b]['int8']):.2f}x at batch {b}" for b in BATCHES) + ".")
    section.notes.append(agreement_note(models["int8"]))
    section.notes.append(saturation_note())
    return section


def matmul_integer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ONNX Runtime's CPU MatMulInteger of u8 `a` and s8 `b` (the u8 x s8 kernel the int8 model's Conv and MatMul
    run on), as int32."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph([helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "probe",
                              [helper.make_tensor_value_info("a", TensorProto.UINT8, a.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, (a.shape[0], b.shape[1]))],
                              [numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"a": a})[0]


def saturation_probe(weight: int, seed: int = 0) -> tuple[float, int]:
    """The share of outputs ONNX Runtime gets wrong, and the largest error, on a product built to saturate a 16-bit
    sum of two u8 x s8 products: activations 200-255, weights +-`weight` in same-sign pairs; exact integers (int64
    numpy) are the reference."""
    rng = np.random.default_rng(seed)
    a = rng.integers(200, 256, (64, 256), dtype=np.uint8)
    b = np.repeat(rng.choice([-weight, weight], (128, 96)), 2, axis=0).astype(np.int8)
    error = np.abs(matmul_integer(a, b).astype(np.int64) - a.astype(np.int64) @ b.astype(np.int64))
    return float(np.mean(error > 0)), int(error.max())


def saturation_note() -> str:
    """What this CPU's u8 x s8 kernel does with 8-bit and with the int8 model's 7-bit weights, and auto's choice."""
    from verify_cli.cpu import MAX_EXACT_WEIGHT, this_cpu

    found = {w: saturation_probe(w) for w in (127, MAX_EXACT_WEIGHT)}
    said = "; ".join(f"weights +-{w}: " + (f"{share:.0%} of outputs wrong, by up to {largest:,}" if largest
                                           else "every output exact") for w, (share, largest) in found.items())
    return (f"Saturation probe on this CPU ({this_cpu().describe()}): ONNX Runtime's u8 x s8 MatMulInteger on "
            f"activations 200-255 against exact integer arithmetic: {said}.")


def targets(ratio: float, figures: dict[str, dict], full: bool) -> list[Target]:
    """The issue's three targets: speed at batch 64, DevTest accuracy and AUC (not judged on a DevTest subset)."""
    acc = {name: f["accuracy"] for name, f in figures.items()}
    auc = {name: f["roc_auc"] for name, f in figures.items()}
    note = "" if full else "a subset of DevTest (--quick)"
    return [
        Target(f"int8 / fp32 embeddings/s, batch {max(BATCHES)}, {THREADS} threads", f">= {SPEED_TARGET:g}x",
               f"{ratio:.2f}x", ratio >= SPEED_TARGET),
        Target("int8 DevTest accuracy", f"within {ACCURACY_POINTS:g} point of fp32", f"{acc['int8']:.4f} (fp32 "
               f"{acc['fp32']:.4f})", acc["fp32"] - acc["int8"] <= ACCURACY_POINTS / 100 if full else None, note),
        Target("int8 DevTest ROC AUC", f"at most {AUC_DROP:g} below fp32", f"{auc['int8']:.4f} (fp32 "
               f"{auc['fp32']:.4f})", auc["fp32"] - auc["int8"] <= AUC_DROP if full else None, note),
    ]


def agreement_note(int8: Model) -> str:
    """What the int8 model records of its agreement with fp32 on the validation pairs (measured when it was made)."""
    a = int8.info.quantization.get("agreement") or {}
    if not a:
        return "The int8 model records no agreement figures."
    return (f"Recorded in the int8 model when it was made, on {a['pairs']:,} validation pairs ({a['images']:,} images, "
            f"also its calibration images): decisions as fp32's on {a['decisions_agree']:.2%} ({a['decisions_differ']} "
            f"differ), validation ROC AUC {a['int8_auc']:.4f} against fp32's {a['fp32_auc']:.4f}, |p_int8 - p_fp32| "
            f"max {a['prob_max_abs_diff']:.4f}, mean {a['prob_mean_abs_diff']:.4f}"
            + ("" if a.get("enforced", True) else " (a dry run: limits not enforced)") + ".")
