"""Keep only the directions of an exported model's embedding that tell its training people apart.

`python -m export.project --model M.onnx --data-root D --out N.onnx` embeds the training people's images (the
split the model's training configuration rebuilds; no validation or test image), fits per branch a linear
discriminant analysis (LDA) of those people, and writes a copy whose graph ends each branch's unit embedding with
the projection onto its `--dims` most discriminant directions, unit length again. The head is calibrated again on
the random validation pairs and the threshold chosen again by the training's rule (`export.threshold`); the
original is never modified. Make the int8 sibling afterwards (`python -m export.quantize --model N.onnx`).

Why: a network trained on LFW's few thousand people also encodes pose, lighting and image texture. Strangers who
share those look alike to the cosine; the directions that vary most within one training person carry them, and
the projection drops them. The within-person scatter is shrunk towards a multiple of the identity (`--shrinkage`)
because the training people are fitted more tightly than unseen ones (docs/research.md, "Look-alike training").
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated, NamedTuple

import numpy as np
import onnx
import typer
from onnx import helper, numpy_helper

from export.metadata import as_json
from export.threshold import rethreshold
from verify_cli import modelmeta
from verify_cli.cli.options import DataRootOption
from verify_cli.errors import FaceverifyError, entry_point
from verify_cli.lfw import person_of, resolve_data_root
from verify_cli.outputs import check_output
from verify_cli.runtime import Model

PREFIX = "/projection/"  # the appended nodes' names: int8 quantization leaves them in float32
K_PROJECTION = "faceverify.projection"  # how the embedding was projected (JSON)
DIMS, SHRINKAGE = 24, 1.0  # chosen on validation (mean of random and look-alike ROC AUC): docs/research.md
EPS = 1e-6  # the tower's own floor under a norm (F.normalize's eps)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), EPS)


def fit_lda(x: np.ndarray, people: np.ndarray, dims: int, shrinkage: float) -> tuple[np.ndarray, np.ndarray]:
    """The mean and the (D, dims) projection onto the `dims` most discriminant directions of unit embeddings `x`
    of `people`: whitened by the within-person scatter (of people with two or more images) plus `shrinkage` times
    its mean eigenvalue, then the leading eigenvectors of the between-person scatter in that space."""
    d = x.shape[1]
    if not 1 <= dims <= d:
        raise FaceverifyError(f"--dims {dims}: choose 1 to {d}, the branch's width")
    mean = x.mean(0)
    _, index, counts = np.unique(people, return_inverse=True, return_counts=True)
    centres = np.zeros((counts.size, d))
    np.add.at(centres, index, x)
    centres /= counts[:, None]
    within = x - centres[index]
    several = counts[index] >= 2
    if several.sum() <= d:
        raise FaceverifyError(f"{int(several.sum())} images of people with two or more: too few to fit a {d}-wide "
                              "projection")
    sw = within[several].T @ within[several] / several.sum()
    sb = ((centres - mean).T * counts) @ (centres - mean) / len(x)
    values, vectors = np.linalg.eigh(sw + shrinkage * np.trace(sw) / d * np.eye(d))
    whiten = vectors / np.sqrt(values)
    spread, directions = np.linalg.eigh(whiten.T @ sb @ whiten)
    return mean.astype(np.float32), (whiten @ directions[:, np.argsort(spread)[::-1][:dims]]).astype(np.float32)


def projected(embeddings: np.ndarray, projections: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """What the projected graph computes, in NumPy: per branch, unit, centred, projected, unit again."""
    parts = np.split(embeddings, len(projections), axis=1)
    return np.concatenate([unit((unit(p) - m) @ w) for p, (m, w) in zip(parts, projections, strict=True)], axis=1)


def _unit_nodes(x: str, out: str, tag: str) -> list[onnx.NodeProto]:
    """x / max(||x||, EPS) along axis 1, as the tower writes it."""
    return [helper.make_node("ReduceL2", [x], [f"{PREFIX}{tag}/norm"], f"{PREFIX}{tag}/ReduceL2", axes=[1],
                              keepdims=1),
             helper.make_node("Max", [f"{PREFIX}{tag}/norm", f"{PREFIX}eps"], [f"{PREFIX}{tag}/floor"],
                              f"{PREFIX}{tag}/Max"),
             helper.make_node("Div", [x, f"{PREFIX}{tag}/floor"], [out], f"{PREFIX}{tag}/Div")]


def with_projection(proto: onnx.ModelProto, projections: list[tuple[np.ndarray, np.ndarray]]) -> onnx.ModelProto:
    """The graph with the projection between the tower and its `embeddings` output, the head's inputs resized."""
    graph = proto.graph
    raw = f"{PREFIX}tower_embeddings"
    for node in graph.node:
        node.output[:] = [raw if name == modelmeta.OUTPUT_EMBEDDINGS else name for name in node.output]
    widths = [w.shape[0] for _, w in projections]
    nodes = [helper.make_node("Split", [raw, f"{PREFIX}widths"], [f"{PREFIX}part{k}" for k in range(len(widths))],
                              f"{PREFIX}Split", axis=1)]
    inits = [numpy_helper.from_array(np.array(widths, np.int64), f"{PREFIX}widths"),
             numpy_helper.from_array(np.array(EPS, np.float32), f"{PREFIX}eps")]
    outputs = []
    for k, (mean, matrix) in enumerate(projections):
        tag = f"branch{k}"
        nodes += _unit_nodes(f"{PREFIX}part{k}", f"{PREFIX}{tag}/unit", f"{tag}/in") + [
            helper.make_node("Sub", [f"{PREFIX}{tag}/unit", f"{PREFIX}{tag}/mean"], [f"{PREFIX}{tag}/centred"],
                             f"{PREFIX}{tag}/Sub"),
            helper.make_node("MatMul", [f"{PREFIX}{tag}/centred", f"{PREFIX}{tag}/matrix"],
                             [f"{PREFIX}{tag}/projected"], f"{PREFIX}{tag}/MatMul"),
        ] + _unit_nodes(f"{PREFIX}{tag}/projected", f"{PREFIX}{tag}/out", f"{tag}/out")
        inits += [numpy_helper.from_array(mean, f"{PREFIX}{tag}/mean"),
                  numpy_helper.from_array(matrix, f"{PREFIX}{tag}/matrix")]
        outputs.append(f"{PREFIX}{tag}/out")
    nodes.append(helper.make_node("Concat", outputs, [modelmeta.OUTPUT_EMBEDDINGS], f"{PREFIX}Concat", axis=1))
    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    width = sum(w.shape[1] for _, w in projections)
    for value in list(graph.output) + [i for i in graph.input if i.name in (modelmeta.INPUT_A, modelmeta.INPUT_B)]:
        if value.name in (modelmeta.OUTPUT_EMBEDDINGS, modelmeta.INPUT_A, modelmeta.INPUT_B):
            value.type.tensor_type.shape.dim[1].Clear()
            value.type.tensor_type.shape.dim[1].dim_value = width
    return proto


def training_embeddings(model: Model, data_root: Path) -> tuple[np.ndarray, np.ndarray]:
    """The model's embeddings of its training people's images (as training read them), and whose each is."""
    from train.config import training_config
    from train.data import load_bank, open_source, protocol_splits
    from verify_cli.preprocess import normalize
    from verify_cli.scoring import embed_all

    cfg = training_config(model)
    source = open_source(cfg, data_root)
    images = [image for images in protocol_splits(cfg, source).people.values() for image in images]
    if not images:
        raise FaceverifyError(f"{model.path}: its training configuration names no training people (a restricted-"
                              "protocol run); the projection is fitted on identities")
    bank = load_bank(source, images, cfg.preprocess, cfg.faces)
    return embed_all(model, normalize(bank.pixels, cfg.preprocess)), np.array([person_of(p) for p in bank.paths])


CHECKED = 256  # validation images on which the projected graph is checked against NumPy


class Validation(NamedTuple):
    """The model's random validation pairs embedded (both sides, and whether the same person), and a few of
    their images as model input with their embeddings."""

    a: np.ndarray
    b: np.ndarray
    same: np.ndarray
    images: np.ndarray
    embeddings: np.ndarray


def _validation(model: Model, data_root: Path) -> Validation:
    from train.config import training_config
    from train.data import open_source, validation_pairs
    from train.lookalike import embedded_pairs
    from verify_cli.preprocess import normalize

    cfg = training_config(model)
    source = open_source(cfg, data_root)
    bank, pairs, embeddings = embedded_pairs(model, cfg, source, validation_pairs(cfg, source))
    return Validation(embeddings[pairs.left], embeddings[pairs.right], pairs.labels > 0.5,
                      normalize(bank.pixels[:CHECKED], cfg.preprocess), embeddings[:CHECKED])


def refit_head(proto: onnx.ModelProto, a: np.ndarray, b: np.ndarray, same: np.ndarray) -> None:
    """Calibrate the cosine head's scale and bias again on the random validation pairs' embeddings, as training
    does (`train.calibration.fit_head`)."""
    import torch

    from models.heads import CosineHead
    from train.calibration import fit_head

    head = CosineHead(a.shape[1])
    fit_head(head, torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(same.astype(np.float32)))
    values = {"model.head.scale": head.scale, "model.head.bias": head.bias}
    for init in proto.graph.initializer:
        if init.name in values:
            init.CopyFrom(numpy_helper.from_array(values[init.name].detach().numpy().astype(np.float32), init.name))


def project_model(model_path: Path, data_root: Path, out: Path, dims: int = DIMS, shrinkage: float = SHRINKAGE,
                  report_test: bool = False) -> dict:
    """Write `out`: the model with its embedding projected, its head calibrated again and its threshold chosen
    again by the training's rule; returns the projection's record."""
    from export.metadata import set_metadata

    check_output(out)
    if out.resolve() == model_path.resolve():
        raise FaceverifyError(f"{out}: is the model itself; the original is never modified, choose another --out")
    model = Model(model_path, provider="cpu")
    if K_PROJECTION in model.info.props:
        raise FaceverifyError(f"{model_path}: is projected already; project the model as exported")
    if not shrinkage >= 0:
        raise FaceverifyError(f"--shrinkage {shrinkage}: must be >= 0")
    from train.config import training_config

    branches = max(1, len(training_config(model).model.patches))
    embeddings, people = training_embeddings(model, data_root)
    projections = [fit_lda(unit(part), people, dims, shrinkage) for part in np.split(embeddings, branches, axis=1)]
    val = _validation(model, data_root)
    record = {
        "method": "per branch: unit length, minus the training images' mean, onto the leading directions of a "
                  "linear discriminant analysis of the training people (within-person scatter shrunk by "
                  f"{shrinkage:g} x its mean eigenvalue), unit length again (export/project.py)",
        "dims_per_branch": dims, "shrinkage": shrinkage, "branches": branches,
        "embedding_before": int(embeddings.shape[1]), "training_images": len(people),
        "training_people": int(np.unique(people).size),
        "source_model_sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
    }
    proto = with_projection(onnx.load(str(model_path)), projections)
    refit_head(proto, projected(val.a, projections), projected(val.b, projections), val.same)
    props = {**model.info.props, modelmeta.K_EMBEDDING: str(dims * branches)}
    with tempfile.TemporaryDirectory(prefix="faceverify-project-") as tmp:
        staged = Path(tmp) / "projected.onnx"
        set_metadata(proto, {**props, K_PROJECTION: as_json(record)})
        onnx.save(proto, str(staged))
        onnx.checker.check_model(str(staged), full_check=True)
        difference = float(np.abs(Model(staged, provider="cpu").embed(val.images)
                                  - projected(val.embeddings, projections)).max())
        if not difference < 1e-4:
            raise FaceverifyError(f"the projected graph differs from its NumPy reference by {difference:.2g}")
        record["graph_vs_numpy_max_abs_diff"] = difference
        set_metadata(proto, {**props, K_PROJECTION: as_json(record)})
        onnx.save(proto, str(staged))
        rethreshold(staged, data_root, out, report_test)
    return record


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    model: Annotated[Path, typer.Option(help="An exported faceverify ONNX model (a cosine head, trained on "
                                             "identities).")],
    out: Annotated[Path, typer.Option(help="Where to write the projected copy (.onnx).")],
    data_root: DataRootOption = None,
    dims: Annotated[int, typer.Option(help="Directions kept per branch.")] = DIMS,
    shrinkage: Annotated[float, typer.Option(help="Within-person scatter shrinkage, times its mean eigenvalue.")]
    = SHRINKAGE,
    report_test: Annotated[bool, typer.Option("--report-test", help="Also score pairsDevTest once at the new "
                                              "threshold (it chooses nothing).")] = False,
) -> None:
    """Project the model's embedding onto the directions that tell its training people apart."""
    with entry_point():
        record = project_model(model, resolve_data_root(data_root), out, dims, shrinkage, report_test)
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    sys.exit(app())
