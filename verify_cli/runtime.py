"""ONNX Runtime session for a faceverify model: provider choice, embedding and pair scoring (no torch)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import numpy as np

from verify_cli import modelmeta
from verify_cli.errors import FaceverifyError, first_line, require_file

PROVIDERS = {"cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}
BUNDLED_MODEL = "faceverify.onnx"
INT8_SUFFIX = ".int8.onnx"
# ONNX Runtime runs QDQ int8 models with integer kernels on the CPU provider; on NVIDIA GPUs it does so through
# TensorRT, not the CUDA provider (onnxruntime.ai/docs/performance/model-optimizations/quantization.html)
INT8_CPU_ONLY = "int8 models run on the CPU provider only; use --provider cpu (or auto), or --precision fp32 for CUDA"


def bundled_model_path() -> Path:
    """The default model that ships inside the package."""
    return Path(str(resources.files("verify_cli") / "assets" / BUNDLED_MODEL))


def precision_paths(path: Path) -> dict[str, Path]:
    """The fp32 model and its int8 sibling, named alike: faceverify.onnx and faceverify.int8.onnx (from either)."""
    name = path.name
    if name.endswith(INT8_SUFFIX):
        return {"fp32": path.with_name(name[: -len(INT8_SUFFIX)] + ".onnx"), "int8": path}
    base = path.stem if path.suffix == ".onnx" else name
    return {"fp32": path, "int8": path.with_name(base + INT8_SUFFIX)}


def _may_have_gpu() -> bool:
    """False only where we can tell there is no NVIDIA device (Linux without /dev/nvidia*)."""
    if not sys.platform.startswith("linux") or not os.path.isdir("/dev"):
        return True
    return any(name.startswith("nvidia") for name in os.listdir("/dev"))


def _candidates(provider: str) -> list[str]:
    """The execution providers a session for `provider` (auto, cuda or cpu) is offered, in order of preference."""
    import onnxruntime as ort

    wanted = {"auto": ["cuda", "cpu"], "cuda": ["cuda", "cpu"], "cpu": ["cpu"]}[provider]
    if provider == "auto" and not _may_have_gpu():
        wanted = ["cpu"]  # skip ONNX Runtime's CUDA library probe (tens of ms) where no NVIDIA device exists
    available = ort.get_available_providers()
    return [PROVIDERS[p] for p in wanted if PROVIDERS[p] in available]


def runs_on_cpu(provider: str) -> bool:
    """Whether a model loaded for `provider` surely runs on the CPU: asked for, or no CUDA for auto to find."""
    return provider != "cuda" and PROVIDERS["cuda"] not in _candidates(provider)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence native log output on file descriptor 2, for the one call that needs it.

    Only session creation with CUDA among the providers: ONNX Runtime's CUDA loader writes its failures to
    fd 2 before any logger setting applies. Everything else keeps stderr, so our own errors are never lost.
    """
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class Model:
    """A loaded faceverify model: `embed` images, `score` pairs of embeddings, `info` its metadata."""

    def __init__(self, path: str | os.PathLike | None = None, provider: str = "auto", threads: int = 0) -> None:
        self.path = Path(path) if path is not None else bundled_model_path()
        if provider not in ("auto", *PROVIDERS):
            raise FaceverifyError(f"unknown provider {provider!r}; choose auto, cuda or cpu")
        self._check_file()
        import onnxruntime as ort

        ort.set_default_logger_severity(4)
        options = ort.SessionOptions()
        options.log_severity_level = 4
        if threads > 0:
            options.intra_op_num_threads = threads
        names = _candidates(provider)
        if provider == "cuda" and PROVIDERS["cuda"] not in names:
            raise FaceverifyError("provider cuda: this ONNX Runtime build has no CUDA execution provider")
        probing_cuda = PROVIDERS["cuda"] in names
        try:
            with _quiet_stderr() if probing_cuda else contextlib.nullcontext():
                if probing_cuda and hasattr(ort, "preload_dlls"):
                    with contextlib.suppress(Exception):
                        ort.preload_dlls()
                self.session = ort.InferenceSession(str(self.path), sess_options=options, providers=names)
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own types for unreadable models
            raise FaceverifyError(f"{self.path}: not a loadable ONNX model ({first_line(exc)})") from None
        self.provider = self.session.get_providers()[0]
        if provider == "cuda" and self.provider != PROVIDERS["cuda"]:
            raise FaceverifyError("provider cuda: CUDA is not usable on this machine (no GPU or CUDA libraries)")
        self.info = modelmeta.parse(self.session.get_modelmeta().custom_metadata_map, str(self.path))
        if self.info.precision == "int8" and self.provider != PROVIDERS["cpu"]:
            if provider == "cuda":
                raise FaceverifyError(f"{self.path}: {INT8_CPU_ONLY}")
            self.session = ort.InferenceSession(str(self.path), sess_options=options, providers=[PROVIDERS["cpu"]])
            self.provider = PROVIDERS["cpu"]
        self._check_graph()

    def _check_file(self) -> None:
        require_file(self.path, "an .onnx model file", missing="no such model file")
        if self.path.stat().st_size == 0:
            raise FaceverifyError(f"{self.path}: empty model file")

    def _check_graph(self) -> None:
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        spec = self.info.preprocess
        expected_in = {modelmeta.INPUT_IMAGES, modelmeta.INPUT_A, modelmeta.INPUT_B}
        expected_out = {modelmeta.OUTPUT_EMBEDDINGS, modelmeta.OUTPUT_PROBABILITY}
        if set(inputs) != expected_in or not expected_out <= outputs:
            raise FaceverifyError(
                f"{self.path}: model inputs {sorted(inputs)} / outputs {sorted(outputs)} are not faceverify's "
                f"({sorted(expected_in)} -> {sorted(expected_out)})"
            )
        shape = inputs[modelmeta.INPUT_IMAGES]
        if len(shape) != 4 or list(shape[1:]) != [spec.channels, spec.size, spec.size]:
            raise FaceverifyError(
                f"{self.path}: model input shape {shape} does not match its preprocessing "
                f"({spec.channels}x{spec.size}x{spec.size})"
            )

    @property
    def threshold(self) -> float:
        """The decision threshold stored in the model (chosen on validation data)."""
        return self.info.threshold

    def embed(self, images: np.ndarray) -> np.ndarray:
        """Embeddings for a batch of preprocessed images (N, C, H, W) float32."""
        d = self.info.embedding_size
        empty = np.zeros((0, d), np.float32)
        feeds = {modelmeta.INPUT_IMAGES: np.ascontiguousarray(images, np.float32),
                 modelmeta.INPUT_A: empty, modelmeta.INPUT_B: empty}
        return self.session.run([modelmeta.OUTPUT_EMBEDDINGS], feeds)[0]

    def score(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Probability of "same person" for pairs of embeddings (M, D) and (M, D)."""
        spec = self.info.preprocess
        feeds = {
            modelmeta.INPUT_IMAGES: np.zeros((0, spec.channels, spec.size, spec.size), np.float32),
            modelmeta.INPUT_A: np.ascontiguousarray(a, np.float32),
            modelmeta.INPUT_B: np.ascontiguousarray(b, np.float32),
        }
        return self.session.run([modelmeta.OUTPUT_PROBABILITY], feeds)[0].reshape(-1)


def available_providers() -> list[str]:
    """Execution providers this ONNX Runtime build offers (not all may be usable on this machine)."""
    import onnxruntime as ort

    return list(ort.get_available_providers())
