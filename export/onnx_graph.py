"""The ONNX graph: trace tower and head as two independent subgraphs (the contract in verify_cli/modelmeta.py)."""

from __future__ import annotations

import os
import warnings

import onnx
import torch
from torch import nn

from models import SiameseNet
from verify_cli import modelmeta
from verify_cli.errors import FaceverifyError, first_line
from verify_cli.preprocess import Preprocess


class SplitGraph(nn.Module):
    """forward(images, a, b) -> (tower(images), sigmoid(head(a, b))): embed each image once, score any pairing."""

    def __init__(self, model: SiameseNet) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, images: torch.Tensor, embedding_a: torch.Tensor, embedding_b: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.embed(images), torch.sigmoid(self.model.score(embedding_a, embedding_b))


def embedding_size(model: SiameseNet, spec: Preprocess) -> int:
    """The tower's output width, measured on one input of the preprocessing's shape."""
    try:
        with torch.no_grad():
            out = model.eval().embed(torch.zeros(1, spec.channels, spec.size, spec.size))
    except RuntimeError as exc:
        raise FaceverifyError(
            f"the network does not accept {spec.channels}x{spec.size}x{spec.size} input: {first_line(exc)}"
        ) from None
    if out.ndim != 2:
        raise FaceverifyError(f"the tower returns shape {tuple(out.shape)}, expected (batch, embedding)")
    return int(out.shape[1])


def export_graph(model: SiameseNet, spec: Preprocess, path: str | os.PathLike, opset: int) -> int:
    """Trace the eval-mode network to `path` with dynamic batch and pair dimensions; returns the embedding size."""
    model.eval()
    dim = embedding_size(model, spec)
    gen = torch.Generator().manual_seed(0)
    example = (
        torch.randn(2, spec.channels, spec.size, spec.size, generator=gen),
        torch.rand(3, dim, generator=gen),
        torch.rand(3, dim, generator=gen),
    )
    names_in = [modelmeta.INPUT_IMAGES, modelmeta.INPUT_A, modelmeta.INPUT_B]
    names_out = [modelmeta.OUTPUT_EMBEDDINGS, modelmeta.OUTPUT_PROBABILITY]
    axes = {
        modelmeta.INPUT_IMAGES: {0: "images"},
        modelmeta.INPUT_A: {0: "pairs"},
        modelmeta.INPUT_B: {0: "pairs"},
        modelmeta.OUTPUT_EMBEDDINGS: {0: "images"},
        modelmeta.OUTPUT_PROBABILITY: {0: "pairs"},
    }
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # the TorchScript exporter announces its own deprecation; other warnings (tracer ones) still show
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            torch.onnx.export(
                SplitGraph(model).eval(), example, str(path), dynamo=False, opset_version=opset,
                input_names=names_in, output_names=names_out, dynamic_axes=axes, do_constant_folding=True,
            )
    except (RuntimeError, TypeError, ValueError, torch.onnx.errors.OnnxExporterError) as exc:
        raise FaceverifyError(f"ONNX export failed: {first_line(exc)}") from None
    return dim


def check_graph(path: str | os.PathLike) -> None:
    """Run the full ONNX checker (with shape inference) on a model file, or raise one line."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise FaceverifyError(f"the ONNX checker rejected the exported model: {first_line(exc)}") from None
