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
