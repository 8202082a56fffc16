"""`faceverify embed`: each photo's face as the model's embedding, for people's own vector stores."""

import csv
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from verify_cli.cli import render
from verify_cli.cli.options import (
    FaceOption,
    ModelOption,
    NoDetectOption,
    Precision,
    PrecisionOption,
    Provider,
    ProviderOption,
    check_outputs,
    face_reader,
    load_model,
)
from verify_cli.errors import FaceverifyError, require_file

if TYPE_CHECKING:
    import numpy as np

    from verify_cli.runtime import Model
    from verify_cli.scoring import FaceReader

LINEARITY = 1e-3  # how far the head's logit may stray from a line in the cosine before no formula is given


def embed(
    images: Annotated[list[Path], typer.Argument(metavar="IMAGE...", show_default=False, help="Face photos.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object: the model, how to compare two "
                                                         "embeddings, and each face's embedding.")] = False,
    npy: Annotated[Path | None, typer.Option(
        "--npy", metavar="FILE", show_default=False,
        help="Write the embeddings as a float32 NumPy array (one row per face, in the printed order).")] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV: image, face, then one column per number.")] = False,
    all_faces: Annotated[bool, typer.Option(
        "--all-faces", help="Every face found in each photo, largest first (default: the one --face picks).")] = False,
    no_detect: NoDetectOption = False,
    face: FaceOption = "largest",
    model: ModelOption = None,
    precision: PrecisionOption = Precision.auto,
    provider: ProviderOption = Provider.auto,
) -> None:
    """Print the embedding of each photo's face, with the model's identity and how to compare two embeddings.

    Two embeddings compare by their cosine; the model's probability of "same person" is a function of it
    (printed with the numbers, for a cosine head), so a vector store's cosine search ranks as faceverify does.
    """
    import numpy as np

    if as_json + as_csv + (npy is not None) > 1:
        raise FaceverifyError("choose one output: --json, --csv or --npy FILE")
    if all_faces and (no_detect or face != "largest"):
        raise FaceverifyError("--all-faces takes every detected face; it does not go with --no-detect or --face")
    check_outputs(npy)
    for image in images:
        require_file(image, "an image file")
    the_model = load_model(model, provider, precision)
    reader = face_reader(the_model, no_detect, face, None)
    rows = read_faces(images, reader, all_faces)
    vectors = the_model.embed(np.stack([array for _, _, array in rows])) if rows else np.zeros((0, 0), np.float32)
    about = describe_model(the_model)
    if npy is not None:
        from verify_cli.outputs import atomic_path

        with atomic_path(npy) as tmp, open(tmp, "wb") as handle:
            np.save(handle, vectors.astype(np.float32))
    if as_json:
        print(json.dumps({**about, "embeddings": [{"image": str(path), "face": record, "embedding": vector.tolist()}
                                                  for (path, record, _), vector in zip(rows, vectors)]}))
    elif as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["image", "face", *(f"e{i}" for i in range(vectors.shape[1]))])
        for (path, record, _), vector in zip(rows, vectors):
            writer.writerow([str(path), "" if record is None else record["face_used"], *(f"{v:.9g}" for v in vector)])
    else:
        show(about, rows, vectors, npy)


def read_faces(images: list[Path], reader: "FaceReader", all_faces: bool) -> list[tuple[Path, Any, "np.ndarray"]]:
    """Each photo's chosen face (or every face) as model input: (photo, detection record, array)."""
    rows = []
    for image in images:
        array, record = reader.input(image)
        if not all_faces or record is None:
            rows.append((image, record, array))
            continue
        for index in range(record["faces_found"]):  # largest first, as --face N counts them
            array, record_i = replace(reader, face=index).input(image)
            rows.append((image, record_i, array))
    return rows


def head_formula(model: "Model") -> dict[str, float] | None:
    """The head as p = sigmoid(scale * cosine + bias), read off the model: pairs of known cosine scored, a line
    fitted to the logits that float32 resolves well; None when they stray from a line (not a cosine head)."""
    import numpy as np

    d = model.info.embedding_size
    if d < 2:
        return None
    cosines = np.linspace(-1.0, 1.0, 41)
    a = np.zeros((cosines.size, d), np.float32)
    b = np.zeros((cosines.size, d), np.float32)
    a[:, 0] = 1.0
    b[:, 0], b[:, 1] = cosines, np.sqrt(1.0 - cosines**2)
    p = model.score(a, b).astype(np.float64)
    kept = (p > 1e-3) & (p < 1 - 1e-3)  # where a float32 probability pins its logit down
    if kept.sum() < 3:
        return None
    logit = np.log(p[kept] / (1 - p[kept]))
    scale, bias = np.polyfit(cosines[kept], logit, 1)
    if np.abs(scale * cosines[kept] + bias - logit).max() > LINEARITY * max(1.0, abs(scale)):
        return None
    return {"scale": float(scale), "bias": float(bias)}


def describe_model(model: "Model") -> dict[str, Any]:
    """The model's identity and embedding size, and how two embeddings compare (as faceverify compares them)."""
    from verify_cli.gallery import model_identity

    formula = head_formula(model)
    compare: dict[str, Any] = {"cosine": "cos(a, b) = a . b / (|a| |b|)", "threshold": model.threshold}
    if formula is not None:
        sign = "+" if formula["bias"] >= 0 else "-"
        compare.update(formula, probability=(f"sigmoid({formula['scale']:.6g} * cos(a, b) {sign} "
                                             f"{abs(formula['bias']):.6g}); same person when >= {model.threshold:g}"))
    else:
        compare["probability"] = "not a function of the cosine alone: score pairs with faceverify compare"
    return {"model": str(model.path), "model_identity": model_identity(model.path), "precision": model.info.precision,
            "embedding_size": model.info.embedding_size, "compare": compare}


def show(about: dict[str, Any], rows: list, vectors: "np.ndarray", npy: Path | None) -> None:
    """The embeddings for a person: one line per face (where, and the first numbers), then how to compare them."""
    out = render.console()
    out.print(f"[bold]faceverify embed[/]  model {render.esc(Path(about['model']).name)} ({about['precision']}), "
              f"{about['embedding_size']} numbers per face, {about['model_identity'][:19]}...")
    for (path, record, _), vector in zip(rows, vectors):
        where = "fixed centre crop" if record is None else (f"face #{record['face_used']} of {record['faces_found']}"
                                                             f", confidence {record['confidence']:.3f}")
        numbers = " ".join(f"{v:+.3f}" for v in vector[:6])
        out.print(f"{render.esc(path)}  [dim]{where}[/]  [{numbers} ...]")
    out.print(f"compare: {about['compare']['cosine']}; probability {render.esc(about['compare']['probability'])}")
    out.print(f"[dim]wrote {len(vectors)} x {about['embedding_size']} to {render.esc(npy)}[/]" if npy is not None
              else "[dim]--json, --csv or --npy FILE give every number[/]")
