"""`faceverify evaluate`: score an LFW pairs file and end with the results table (and one row per View 2 fold)."""

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
    SaveCropsOption,
    ThresholdOption,
    check_outputs,
    face_reader,
    load_model,
    resolve_threshold,
)
from verify_cli.errors import FaceverifyError
from verify_cli.lfw import DATA_ENV, DEFAULT_DATA_ROOT

if TYPE_CHECKING:
    from rich.console import Console

    from verify_cli.evaluation import Evaluation
    from verify_cli.lfw import LFWRoot
    from verify_cli.nway import NWayReport
    from verify_cli.runtime import Model
    from verify_cli.scoring import FaceReader

EXAMPLES_PER_KIND = 4


def evaluate(
    data_root: Annotated[Path, typer.Option(
        "--data-root", "-d", envvar=DATA_ENV,
        help="LFW data root in torchvision's layout (ROOT/lfw-py/lfw-deepfunneled/...).")] = DEFAULT_DATA_ROOT,
    pairs: Annotated[str, typer.Option(
        "--pairs", help="test (pairsDevTest.txt), train (pairsDevTrain.txt), 10fold (pairs.txt), or the path of "
                        "any file in the LFW pairs format (View 1 'N' or View 2 'FOLDS<TAB>N' header).")] = "test",
    threshold: ThresholdOption = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the summary as one JSON object instead of tables.")] = False,
    json_out: Annotated[Path | None, typer.Option("--json-out", show_default=False,
                                                     help="Also write the JSON summary to this file.")] = None,
    scores_out: Annotated[Path | None, typer.Option(
        "--scores", show_default=False, help="Write per-pair scores to this CSV file.")] = None,
    examples_out: Annotated[Path | None, typer.Option(
        "--examples", show_default=False,
        help="Draw true/false positive/negative example pairs with their scores to this PNG file.")] = None,
    roc_out: Annotated[Path | None, typer.Option("--roc", show_default=False,
                                                    help="Draw the ROC curve to this PNG file.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=4096,
                                            help="Images per model call.")] = 64,
    workers: Annotated[int, typer.Option("--workers", min=0, max=64,
                                         help="Decoding threads (0: one per core, at most 8).")] = 0,
    n_way: Annotated[list[int] | None, typer.Option(
        "--n-way", metavar="N", show_default=False,
        help="Also run N-way one-shot identification (Koch et al.) on the DevTest people with two images or more: "
             "a query, another photo of that person and N-1 other people; correct when the right one scores "
             "highest. Repeat for several N (--n-way 2 --n-way 5 ...); every N uses the same trials.")] = None,
    trials: Annotated[int | None, typer.Option(
        "--trials", min=1, max=1_000_000, show_default=False,
        help="With --n-way: how many trials per N \\[default: 2,000].")] = None,
    seed: Annotated[int | None, typer.Option(
        "--seed", min=0, show_default=False, help="With --n-way: the seed that draws the trials \\[default: 0].")] = None,
    no_detect: NoDetectOption = False,
    face: FaceOption = "largest",
    save_crops: SaveCropsOption = None,
    model: ModelOption = None,
    precision: PrecisionOption = Precision.auto,
    provider: ProviderOption = Provider.auto,
) -> None:
    """Score an LFW pairs file: accuracy at the model's threshold, ROC AUC, EER, TAR at FAR, confusion counts.

    Each distinct image is embedded once, its face found and aligned first (--no-detect: LFW-style crops).

    A ten-fold (View 2) file also gets per-fold accuracy, each threshold chosen on the other nine folds.

    --n-way N adds the N-way one-shot table after the pairs table: accuracy, 95% interval, chance (1/N).
    """
    from verify_cli import evaluation
    from verify_cli.lfw import LFWRoot
    from verify_cli.outputs import write_all

    check_outputs(json_out, scores_out, examples_out, roc_out)
    if not n_way and (trials is not None or seed is not None):
        raise FaceverifyError("--trials and --seed go with --n-way N")
    lfw = LFWRoot.open(data_root)
    pairs_path = lfw.pairs_path(pairs)
    planned = evaluation.plan(lfw, pairs_path, lfw.pairs(pairs))
    ways = nway_people_check(lfw, n_way) if n_way else []
    the_model = load_model(model, provider, precision)
    t, source = resolve_threshold(threshold, the_model)
    reader = face_reader(the_model, no_detect, face, save_crops, fallback=True)
    explicit = model is not None
    if not as_json:
        out = render.console()
        render.header(out, the_model, explicit)
        out.print(f"[dim]pairs[/] {render.esc(pairs_path)}{render.SEP}{len(planned.pairs)} pairs, "
                  f"{len(planned.images)} distinct images{render.SEP}faces {reader.description}")
    with render.Progress(len(planned.images), "embedding") as advance:
        ev = evaluation.evaluate(the_model, lfw, planned, t, source, batch_size, workers, advance, reader)
    report = None
    if ways:
        from verify_cli.nway import DEFAULT_TRIALS

        report = run_nway(the_model, lfw, ev, ways, trials or DEFAULT_TRIALS, seed or 0, batch_size, workers, reader)

    files: dict[Path, bytes] = {}
    if scores_out is not None:
        files[scores_out] = evaluation.scores_csv(ev).encode()
    if roc_out is not None:
        from verify_cli.plots import roc_png

        title = f"ROC on {pairs_path.name}: {render.model_label(the_model, explicit)}"
        files[roc_out] = roc_png(ev.scores, ev.labels, t, title)
    if examples_out is not None:
        from verify_cli.plots import examples_png, pick_examples

        chosen = evaluation.examples(ev, lfw, pick_examples(ev.scores, ev.labels, t, EXAMPLES_PER_KIND))
        title = f"{pairs_path.name}: most confident pairs of each outcome ({the_model.path.name})"
        files[examples_out] = examples_png(chosen, t, replace(reader, crops=None), title)
    summary = evaluation.summary(ev)
    if report is not None:
        summary["n_way"] = report.as_json()
    if json_out is not None:
        files[json_out] = (json.dumps(summary, indent=2) + "\n").encode()
    write_all(files)

    if as_json:
        print(json.dumps(summary))
    else:
        print_evaluation(render.console(), ev, [])
        if report is not None:
            print_nway(render.console(), report)
        for path in files:
            render.console().print(f"[dim]wrote[/] {render.esc(path)}")


def _tar_row(value: float | None, far: float, different: int) -> tuple[str, str]:
    """The value and note cells of a TAR at FAR row: the figure, or n/a where the pairs cannot resolve the FAR."""
    from verify_cli.metrics import different_pairs_needed

    if value is None:
        return "n/a", f"needs ≥ {different_pairs_needed(far):,} different-person pairs (has {different:,})"
    return f"{value:.4f}", f"false accepts ≤ {far * 100:g}%"


def _faces_row(ev: "Evaluation") -> tuple[str, str]:
    """The faces row: how faces were read, and how many images held more than one."""
    faces = ev.summary_faces
    if faces["mode"] == "fixed-crop":
        return "fixed crop", "--no-detect: the images are taken as LFW-style crops"
    note = f"{faces['several']:,} of {faces['images']:,} images hold several faces; {faces['pick']} used"
    if faces["no_face"]:
        note += f"; {faces['no_face']:,} with no face found: fixed centre crop"
    return "detected", note


def print_evaluation(out: "Console", ev: "Evaluation", written: list[Path]) -> None:
    """The results table (and the per-fold table for a ten-fold file)."""
    from rich import box
    from rich.table import Table

    from verify_cli.metrics import FAR_LEVELS

    report, embedded, t = ev.report, ev.embedded, ev.threshold
    same = int(ev.labels.sum())
    table = Table(box=box.ROUNDED, show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_column(style="dim")
    table.add_row("pairs", f"{report.pairs:,}", f"{same:,} same, {report.pairs - same:,} different")
    table.add_row("accuracy", f"[bold green]{report.accuracy:.4f}[/]",
                  f"threshold {t:.4f} ({'model' if ev.threshold_source == 'model' else '--threshold'})")
    table.add_row("ROC AUC", f"{report.roc_auc:.4f}", "")
    table.add_row("equal error rate", f"{report.eer:.4f}", "")
    for name, far in FAR_LEVELS.items():
        table.add_row(f"TAR @ FAR {far:.0e}".replace("e-0", "e-"),
                      *_tar_row(getattr(report, name), far, report.pairs - same))
    table.add_row("TP / FP / TN / FN", f"{report.tp} / {report.fp} / {report.tn} / {report.fn}",
                  f"at threshold {t:.4f}")
    table.add_row("faces", *_faces_row(ev))
    table.add_row("images / s", f"{embedded.images_per_s:,.0f}",
                  f"{len(ev.plan.images):,} images, {embedded.wall_s:.2f} s "
                  f"(faces {embedded.decode_s:.2f}, model {embedded.model_s:.2f})")
    table.add_row("provider", f"[magenta]{ev.provider}[/]", "")
    out.print(table)

    if ev.kfold is not None:
        folds = Table(title="folds: each threshold chosen on the other folds", box=box.ROUNDED, title_style="bold")
        for name in ("fold", "pairs", "threshold", "accuracy", "ROC AUC"):
            folds.add_column(name, justify="right")
        for r in ev.kfold.folds:
            folds.add_row(str(r.fold + 1), str(ev.kfold.counts[r.fold]), f"{r.threshold:.4f}", f"{r.accuracy:.4f}",
                          f"{r.roc_auc:.4f}")
        mean_auc = sum(r.roc_auc for r in ev.kfold.folds) / len(ev.kfold.folds)
        folds.add_section()
        folds.add_row("[bold]mean ± s.e.[/]", str(sum(ev.kfold.counts.values())), "",
                      f"[bold green]{ev.kfold.mean:.4f} ± {ev.kfold.stderr:.4f}[/]", f"{mean_auc:.4f}")
        out.print(folds)
    for path in written:
        out.print(f"[dim]wrote[/] {render.esc(path)}")


def nway_people_check(lfw: "LFWRoot", ways: list[int]) -> list[int]:
    """The N asked for, checked against the DevTest people before any image is embedded."""
    from verify_cli.lfw import PEOPLE_FILES
    from verify_cli.nway import check_ways, pool

    people_file = lfw.base / PEOPLE_FILES["test"]
    if not people_file.is_file():
        raise FaceverifyError(f"{people_file}: no such file; --n-way draws its trials from LFW's DevTest people")
    return check_ways(ways, len(pool(lfw.people("test"))))


def run_nway(model: "Model", lfw: "LFWRoot", ev: "Evaluation", ways: list[int], trials: int, seed: int,
             batch_size: int, workers: int, reader: "FaceReader") -> "NWayReport":
    """N-way one-shot trials on DevTest people; images the pairs evaluation already embedded are not embedded again."""
    import numpy as np

    from verify_cli.nway import evaluate_nway
    from verify_cli.scoring import embed_paths

    row = {lfw.image(key): i for i, key in enumerate(ev.plan.images)}

    def embed(paths: list[Path]) -> np.ndarray:
        missing = [p for p in dict.fromkeys(paths) if p not in row]
        with render.Progress(len(missing), "embedding (n-way)") as advance:
            new = embed_paths(model, missing, batch_size, workers, advance, reader).embeddings
        row.update({p: len(ev.plan.images) + i for i, p in enumerate(missing)})
        return np.concatenate([ev.embedded.embeddings, new])[[row[p] for p in paths]]

    return evaluate_nway(lfw, embed, model.score, ways, trials, seed)


def print_nway(out: "Console", report: "NWayReport") -> None:
    """The N-way table: ways, accuracy, 95% interval, chance, trials."""
    from rich import box
    from rich.table import Table

    table = Table(title=f"N-way one-shot: DevTest people with ≥ 2 images, seed {report.seed}, "
                        f"{report.images:,} images", box=box.ROUNDED, title_style="bold")
    for name in ("ways", "accuracy", "95% CI", "chance", "trials"):
        table.add_column(name, justify="right", no_wrap=True)
    for r in report.results:
        low, high = r.interval
        table.add_row(str(r.ways), f"[bold green]{r.accuracy:.4f}[/]", f"{low:.4f} – {high:.4f}", f"{r.chance:.4f}",
                      f"{r.trials:,}")
    out.print(table)
