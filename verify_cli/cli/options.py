"""What every command shares before it runs: the --model / --precision / --provider / --threshold options and their
meaning."""

from __future__ import annotations

import enum
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from verify_cli.errors import FaceverifyError

if TYPE_CHECKING:
    from verify_cli.cpu import Choice
    from verify_cli.runtime import Model
    from verify_cli.scoring import FaceReader


class Provider(str, enum.Enum):
    """Execution provider choice: CUDA when usable, CUDA or fail, or the CPU."""

    auto = "auto"
    cuda = "cuda"
    cpu = "cpu"


class Precision(str, enum.Enum):
    """Which of a model's two files runs: the fp32 one as trained, or its int8 sibling (NAME.int8.onnx); auto:
    int8 where it runs (the CPU provider), is there, and computes as checked on this CPU (verify_cli.cpu), else fp32."""

    auto = "auto"
    fp32 = "fp32"
    int8 = "int8"


# the LFW data root of the build-time tools (train, export, bench); resolved by verify_cli.lfw.resolve_data_root
DataRootOption = Annotated[Path | None, typer.Option(
    help="LFW data root \\[default: $FACEVERIFY_DATA, else ./data/lfw].", show_default=False)]
ModelOption = Annotated[
    Path | None,
    typer.Option("--model", "-m", help="ONNX model file \\[default: the model bundled with faceverify].",
                 show_default=False),
]
PrecisionOption = Annotated[
    Precision,
    typer.Option("--precision", case_sensitive=False,
                 help="auto: int8 on the CPU provider when the model has an int8 sibling that passed its check and "
                      "whose integer arithmetic is exact on this CPU (`faceverify info` says which and why), else "
                      "fp32. fp32: the model as trained. int8: its quantized sibling NAME.int8.onnx (CPU provider "
                      "only; 1.8x to 3x faster; its decisions checked against fp32's on validation pairs when it was "
                      "made)."),
]
ProviderOption = Annotated[
    Provider,
    typer.Option("--provider", "-p", case_sensitive=False,
                 help="auto: CUDA when ONNX Runtime can use it, else CPU. cuda: CUDA or an error. cpu: CPU only."),
]
ThresholdOption = Annotated[
    float | None,
    typer.Option("--threshold", "-t", show_default=False,
                 help="Decide 'same' when probability >= this \\[default: the threshold stored in the model]."),
]


NoDetectOption = Annotated[
    bool,
    typer.Option("--no-detect", help="The images are already face crops in LFW's frame (like LFW's deep-funneled "
                                     "images): skip face detection and alignment, take the fixed centre crop."),
]
FaceOption = Annotated[
    str,
    typer.Option("--face", metavar="largest|central|N",
                 help="Which face to use when a photo holds several: the largest, the one nearest the image "
                      "centre, or N, an index into the faces ordered largest first (0 is the largest)."),
]
SaveCropsOption = Annotated[
    Path | None,
    typer.Option("--save-crops", metavar="DIR", show_default=False,
                 help="Write each face exactly as the model saw it (found, aligned, cropped, resized) to DIR as PNG."),
]


def face_reader(model: Model, no_detect: bool, face: str, crops: Path | None, fallback: bool = False) -> FaceReader:
    """How this command reads faces: detection and alignment (default) or the fixed crop, with the face chosen;
    `fallback` (evaluate) takes the fixed crop of a photo with no face rather than stopping, and counts it."""
    from verify_cli.scoring import FaceReader

    if crops is not None and crops.exists() and not crops.is_dir():
        raise FaceverifyError(f"{crops}: --save-crops names a folder, and this is a file")
    if no_detect:
        if face != "largest":
            raise FaceverifyError("--face chooses among detected faces; it does not go with --no-detect")
        return FaceReader(model.info.preprocess, crops=crops)
    from verify_cli.faces.pipeline import PICKS, FacePipeline

    index = None
    if face not in PICKS:
        try:
            index = int(face)
        except ValueError:
            raise FaceverifyError(f"--face must be largest, central or a face index, got {face!r}") from None
        if index < 0:
            raise FaceverifyError(f"--face index must be 0 or more, got {index}")
    pipeline = FacePipeline(model.session.get_providers(), threads=1, pick=face if index is None else "largest")
    return FaceReader(model.info.preprocess, pipeline, index, crops, fallback)


def load_model(model: Path | None, provider: Provider, precision: Precision = Precision.auto) -> Model:
    """The model from --model, or the bundled one, or its int8 sibling (--precision int8, or auto on the CPU); a
    missing bundled model or (asked-for) int8 sibling gets a hint instead of a path."""
    from verify_cli import runtime

    path = model if model is not None else runtime.bundled_model_path()
    if model is None and not path.exists():
        raise FaceverifyError(
            f"no bundled model at {path}; pass --model FILE.onnx (`make train export bundle` builds one)"
        )
    if precision == Precision.auto:
        _, sibling = auto_choice(path, provider)
        return sibling or runtime.Model(path, provider.value)
    if precision == Precision.fp32:
        return runtime.Model(path, provider.value)
    if provider == Provider.cuda:
        raise FaceverifyError(runtime.INT8_CPU_ONLY)
    return int8_model(path)


def auto_choice(path: Path, provider: Provider) -> tuple[Choice, Model | None]:
    """What --precision auto runs for the model at `path` and why, with the int8 sibling when that is the choice:
    int8 only on the CPU provider, from a sibling of this very model, that passed its check and computes exactly
    on this CPU (verify_cli.cpu.auto_precision); fp32 wherever int8 could differ."""
    from verify_cli import runtime
    from verify_cli.cpu import Choice, auto_precision

    int8_path = runtime.precision_paths(path)["int8"]
    if not runtime.runs_on_cpu(provider.value):
        return Choice("fp32", "int8 runs on the CPU provider only, and this session may run on CUDA"), None
    if not int8_path.exists():
        return Choice("fp32", f"no int8 sibling {int8_path.name}"), None
    try:
        sibling = int8_model(path)
    except FaceverifyError as exc:  # a stale or damaged sibling: the model as trained answers (int8 names the problem)
        return Choice("fp32", f"its int8 sibling is not usable ({exc.message})"), None
    choice = auto_precision(sibling.info.quantization)
    return choice, sibling if choice.precision == "int8" else None


def int8_model(path: Path) -> Model:
    """The int8 sibling of the model at `path` on the CPU provider; refused when it is missing, is not int8, or was
    made from another fp32 model than the one beside it (a stale file would answer for a model that is gone)."""
    from verify_cli import runtime
    from verify_cli.gallery import model_identity

    paths = runtime.precision_paths(path)
    if not paths["int8"].exists():
        raise FaceverifyError(f"--precision int8: no int8 model {paths['int8'].name} beside {path}; make one with "
                              f"`python -m export.quantize --model {path} --data-root DIR` (from the checkout)")
    loaded = runtime.Model(paths["int8"], Provider.cpu.value)
    if loaded.info.precision != "int8":
        raise FaceverifyError(f"{loaded.path}: not an int8 faceverify model (its metadata says "
                              f"{loaded.info.precision})")
    if paths["fp32"].is_file() and loaded.info.fp32_identity != model_identity(paths["fp32"]):
        raise FaceverifyError(f"{loaded.path}: made from another fp32 model than {paths['fp32'].name} beside it; "
                              "quantize it again (python -m export.quantize)")
    return loaded


def resolve_threshold(value: float | None, model: Model) -> tuple[float, str]:
    """The decision threshold and where it came from ('model' or 'option')."""
    if value is None:
        return model.threshold, "model"
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise FaceverifyError(f"--threshold must be between 0 and 1, got {value}")
    return float(value), "option"


def check_outputs(*paths: Path | None) -> list[Path]:
    """Fail before any work when an output file cannot be written, or two outputs share a name."""
    from verify_cli.outputs import check_output

    given = [p for p in paths if p is not None]
    resolved = [p.resolve() for p in given]
    if len(set(resolved)) != len(resolved):
        raise FaceverifyError("two output options name the same file")
    return [check_output(p) for p in given]
