"""`faceverify calibrate`: a threshold fitted to the user's own labelled pairs, written into a copy of the model."""

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from verify_cli.cli import render
from verify_cli.cli.options import (
    FaceOption,
    ModelOption,
    NoDetectOption,
    Provider,
    ProviderOption,
    check_outputs,
    face_reader,
    load_model,
)
from verify_cli.errors import FaceverifyError, require_file

if TYPE_CHECKING:
    from verify_cli.calibration import Calibration, Rule
    from verify_cli.pairlist import LabelledPairs
    from verify_cli.runtime import Model


def calibrate(
    pairs_file: Annotated[str, typer.Argument(
        metavar="PAIRS", show_default=False,
        help="Labelled pairs: lines 'A<TAB>B<TAB>1' (1 or 'same': the same person; 0 or 'different': not), or CSV "
             "'A,B,1'; paths relative to the current folder; '#' lines are skipped; '-' reads stdin.")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", show_default=False,
        help="The calibrated model to write (NAME.onnx; its int8 sibling NAME.int8.onnx beside it when the model "
             "has one). The model it is made from is never modified.")],
    target_far: Annotated[float | None, typer.Option(
        "--target-far", show_default=False,
        help="Choose the lowest threshold whose false-accept rate on your different-person pairs is at most this "
             "(e.g. 0.01); needs at least 1/F of them.")] = None,
    max_accuracy: Annotated[bool, typer.Option(
        "--max-accuracy", help="Choose the threshold with the highest accuracy on your pairs (the default).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the calibration as one JSON object.")] = False,
    no_detect: NoDetectOption = False,
    face: FaceOption = "largest",
    model: ModelOption = None,
    provider: ProviderOption = Provider.auto,
) -> None:
    """Fit the decision threshold to your own labelled photo pairs and write a copy of the model that carries it.

    Every photo goes through the same face pipeline as compare. Reports accuracy, false-accept and true-accept
    rates at the fitted threshold and at the model's own, with 95% bootstrap intervals and the pair counts.
    """
    from verify_cli import runtime
    from verify_cli.calibration import Rule
    from verify_cli.cli.options import Precision
    from verify_cli.pairlist import read_labelled_pairs

    if target_far is not None and max_accuracy:
        raise FaceverifyError("choose one rule: --target-far F or --max-accuracy")
    if target_far is not None and not 0 < target_far < 1:
        raise FaceverifyError(f"--target-far must be between 0 and 1, got {target_far}")
    rule = Rule("target-far", target_far) if target_far is not None else Rule("max-accuracy")
    source = model if model is not None else runtime.bundled_model_path()
    targets = runtime.precision_paths(out)
    if out.name.endswith(runtime.INT8_SUFFIX) or out.suffix != ".onnx":
        raise FaceverifyError(f"{out}: --out names the fp32 model, NAME.onnx (its int8 sibling goes beside it)")
    originals = {p.resolve() for p in runtime.precision_paths(source).values()}
    if {t.resolve() for t in targets.values()} & originals:
        raise FaceverifyError(f"{out}: is the model being calibrated (or its int8 sibling); write the copy elsewhere")
    check_outputs(targets["fp32"], targets["int8"])
    listing = read_labelled_pairs(pairs_file)
    name = "<stdin>" if pairs_file == "-" else pairs_file
    for (a, b), line in zip(listing.pairs, listing.lines):
        for path in (a, b):
            try:
                require_file(Path(path), "an image file")
            except FaceverifyError as exc:
                raise FaceverifyError(f"{name}:{line}: {exc.message}") from None
    fp32 = load_model(model, provider, Precision.fp32)
    result = fit(fp32, listing, rule, no_detect, face)
    digest = listing.sha256
    written = write_models(fp32.path, fp32.info.props, targets, result, digest, name)
    if as_json:
        print(json.dumps({**result.as_dict(), "model": str(fp32.path), "pairs_sha256": digest,
                          "wrote": [str(p) for p in written]}))
        return
    show(result, fp32.path, written)


def fit(model: "Model", listing: "LabelledPairs", rule: "Rule", no_detect: bool, face: str) -> "Calibration":
    """Embed each distinct photo once (the face pipeline, as compare reads it), score the pairs, fit the threshold."""
    import numpy as np

    from verify_cli.calibration import calibrate as fit_threshold
    from verify_cli.calibration import check_pairs
    from verify_cli.scoring import embed_paths, index_pairs, score_pairs

    same = np.array(listing.same, bool)
    check_pairs(same, rule)  # before any photo is read
    keys, left, right = index_pairs(listing.pairs)
    reader = face_reader(model, no_detect, face, None)
    with render.Progress(len(keys), "embedding") as advance:
        embedded = embed_paths(model, [Path(k) for k in keys], progress=advance, reader=reader)
    scores = score_pairs(model, embedded.embeddings, left, right)
    return fit_threshold(scores, same, rule, model.threshold)


def write_models(source: Path, props: dict[str, str], targets: dict[str, Path], result: "Calibration",
                 digest: str, pairs_name: str) -> list[Path]:
    """The fp32 model (and its int8 sibling, when there is one) copied with the fitted threshold and a record of
    how it was fitted; the int8 copy names the fp32 copy as its source, so the two stay a pair."""
    from verify_cli import modelmeta as mm
    from verify_cli import runtime
    from verify_cli.gallery import model_identity
    from verify_cli.outputs import write_all

    record = {
        "rule": result.rule.name, "target_far": result.rule.far, "description": result.rule.describe(),
        "pairs": result.pairs, "same_pairs": result.same_pairs, "different_pairs": result.different_pairs,
        "pairs_file": Path(pairs_name).name, "pairs_sha256": digest,
        "previous_threshold": result.stored.threshold, "from_model": {"file": source.name,
                                                                      "identity": model_identity(source)},
        "fitted": {k: getattr(result.fitted, k) for k in ("accuracy", "far", "tar")},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    rule_text = f"calibrated by faceverify calibrate on {result.pairs} labelled pairs: {result.rule.describe()}"
    changes = {mm.K_THRESHOLD: repr(result.fitted.threshold), mm.K_THRESHOLD_RULE: rule_text,
               mm.K_CALIBRATION: json.dumps(record, sort_keys=True)}
    fp32_bytes = _edited(source, props, changes)
    files = {targets["fp32"]: fp32_bytes}
    sibling = runtime.precision_paths(source)["int8"]
    if sibling.is_file():
        int8 = runtime.Model(sibling, "cpu", threads=1).info
        identity = f"sha256:{hashlib.sha256(fp32_bytes).hexdigest()}"  # as model_identity writes it
        made = {**int8.quantization, "fp32_model": {"file": targets["fp32"].name, "identity": identity}}
        files[targets["int8"]] = _edited(sibling, int8.props,
                                         {**changes, mm.K_QUANTIZATION: json.dumps(made, sort_keys=True)})
    write_all(files)
    return list(files)


def _edited(path: Path, props: dict[str, str], changes: dict[str, str]) -> bytes:
    """The model file's bytes with its metadata `props` and some values replaced or added."""
    from verify_cli import modelmeta as mm

    return mm.with_metadata(path.read_bytes(), {**props, **changes}, str(path))


def show(result: "Calibration", model: Path, written: list[Path]) -> None:
    """The calibration as a rich table: the pairs, the fitted and the stored threshold side by side."""
    from rich import box
    from rich.table import Table

    from verify_cli.calibration import BOOTSTRAP

    def ci(value: float, interval: tuple[float, float], percent: bool = True) -> str:
        if percent:
            return f"{value:.1%} ({interval[0]:.1%}-{interval[1]:.1%})"
        return f"{value:.4f} ({interval[0]:.4f}-{interval[1]:.4f})"

    table = Table(title=f"calibrated {render.esc(model.name)} on {result.pairs} pairs ({result.same_pairs} same, "
                        f"{result.different_pairs} different), ROC AUC {result.roc_auc:.4f}",
                  box=box.ROUNDED, title_style="bold")
    for column in ("", "fitted threshold", "the model's threshold"):
        table.add_column(column)
    f, s = result.fitted, result.stored
    table.add_row("threshold", ci(f.threshold, result.threshold_ci, percent=False), f"{s.threshold:.4f}")
    table.add_row("accuracy", ci(f.accuracy, f.accuracy_ci), ci(s.accuracy, s.accuracy_ci))
    table.add_row("false accepts (FAR)", ci(f.far, f.far_ci), ci(s.far, s.far_ci))
    table.add_row("true accepts (TAR)", ci(f.tar, f.tar_ci), ci(s.tar, s.tar_ci))
    console = render.console()
    console.print(table)
    console.print(f"rule: {render.esc(result.rule.describe())}. 95% bootstrap intervals ({BOOTSTRAP} resamples of "
                  "the pairs within each kind); the fitted threshold's interval refits it on each. Measured on the "
                  "pairs it was fitted to, so they flatter it: check it on pairs it has not seen.")
    for path in written:
        console.print(f"wrote {render.esc(path)}")
