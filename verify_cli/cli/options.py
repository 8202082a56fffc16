"""What every command shares before it runs: the --model / --provider / --threshold options and their meaning."""

from __future__ import annotations

import enum
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from verify_cli.errors import FaceverifyError

if TYPE_CHECKING:
    from verify_cli.runtime import Model
    from verify_cli.scoring import FaceReader


class Provider(str, enum.Enum):
    """Execution provider choice: CUDA when usable, CUDA or fail, or the CPU."""

    auto = "auto"
    cuda = "cuda"
    cpu = "cpu"


ModelOption = Annotated[
    Path | None,
    typer.Option("--model", "-m", help="ONNX model file \\[default: the model bundled with faceverify].",
                 show_default=False),
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


def load_model(model: Path | None, provider: Provider) -> Model:
    """The model from --model, or the bundled one; a missing bundled model gets a hint instead of a path."""
    from verify_cli import runtime

    path = model if model is not None else runtime.bundled_model_path()
    if model is None and not path.exists():
        raise FaceverifyError(
            f"no bundled model at {path}; pass --model FILE.onnx (`make train export bundle` builds one)"
        )
    return runtime.Model(path, provider.value)


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
