"""The `faceverify` command: compare two faces, evaluate a model on LFW pairs, show a model's metadata.

Thin Typer commands over plain functions (scoring, metrics, plots, outputs). Heavy modules (NumPy, Pillow,
ONNX Runtime, rich) are imported inside the commands so `faceverify --help` stays instant. Every expected
failure is one `error: ...` line on stderr and exit code 2.
"""

import enum
import functools
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from verify_cli import __version__
from verify_cli.errors import EXIT_DIFFERENT, EXIT_ERROR, EXIT_SAME, FaceverifyError, print_error, require_file
from verify_cli.lfw import DATA_ENV, DEFAULT_DATA_ROOT

if TYPE_CHECKING:
    from rich.console import Console

    from verify_cli.evaluation import Evaluation
    from verify_cli.runtime import Model

EXIT_INTERRUPTED = 130
DEBUG_ENV = "FACEVERIFY_DEBUG"
EXAMPLES_PER_KIND = 4


class Provider(str, enum.Enum):
    """Execution provider choice: CUDA when usable, CUDA or fail, or the CPU."""

    auto = "auto"
    cuda = "cuda"
    cpu = "cpu"


app = typer.Typer(
    name="faceverify",
    help="Say whether two face photos show the same person (Siamese CNN trained on LFW, run by ONNX Runtime).",
    epilog="Exit codes: 0 same person, 1 different people (compare), 2 any error, 130 interrupted.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

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

F = TypeVar("F", bound=Callable[..., Any])


# ---------------------------------------------------------------------------------------------- plumbing


def _guarded(command: F) -> F:
    """Turn every failure inside a command into one line and an exit code: 2 errors, 130 interrupts."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except FaceverifyError as exc:
            print_error(exc.message)
            raise typer.Exit(EXIT_ERROR) from None
        except KeyboardInterrupt:
            print_error("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            raise
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            print_error(f"internal error: {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for a traceback)")
            raise typer.Exit(EXIT_ERROR) from None

    return wrapper  # type: ignore[return-value]


def _console(stderr: bool = False) -> "Console":
    """A rich console whose text lines are never cut mid-path (tables still fit the width)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _load_model(model: Path | None, provider: Provider) -> "Model":
    """The model from --model, or the bundled one; a missing bundled model gets a hint instead of a path."""
    from verify_cli.runtime import Model, bundled_model_path

    path = model if model is not None else bundled_model_path()
    if model is None and not path.exists():
        raise FaceverifyError(
            f"no bundled model at {path}; pass --model FILE.onnx (`make train export bundle` builds one)"
        )
    return Model(path, provider.value)


def _threshold(value: float | None, model: "Model") -> tuple[float, str]:
    """The decision threshold and where it came from ('model' or 'option')."""
    if value is None:
        return model.threshold, "model"
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise FaceverifyError(f"--threshold must be between 0 and 1, got {value}")
    return float(value), "option"


def _esc(text: object) -> str:
    """Escape user-controlled text (paths, metadata) before it goes into rich markup."""
    from rich.markup import escape

    return escape(str(text))


def _model_label(model: "Model", explicit: bool) -> str:
    """How a model is named in headers: file name, preset, and whether it is the bundled one."""
    preset = model.info.props.get("faceverify.preset")
    name = model.path.name if explicit else f"{model.path.name} (bundled)"
    return f"{name}, preset {preset}" if preset else name


def _header(console: "Console", model: "Model", explicit: bool) -> None:
    """The first line of human output: tool, model and the execution provider actually used."""
    console.print(
        f"[bold]faceverify[/] {__version__}  [dim]│[/]  model [cyan]{_esc(_model_label(model, explicit))}[/]"
        f"  [dim]│[/]  provider [magenta]{model.provider}[/]"
    )


def _check_outputs(*paths: Path | None) -> list[Path]:
    """Fail before any work when an output file cannot be written, or two outputs share a name."""
    from verify_cli.outputs import check_output

    given = [p for p in paths if p is not None]
    resolved = [p.resolve() for p in given]
    if len(set(resolved)) != len(resolved):
        raise FaceverifyError("two output options name the same file")
    return [check_output(p) for p in given]


class _Progress:
    """A rich progress bar for embedding images (on stderr, and only when it is a terminal)."""

    def __init__(self, total: int, label: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        console = _console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True,
            disable=not console.is_terminal,
        )
        self.task = self.progress.add_task(label, total=total)

    def __enter__(self) -> Callable[[int], None]:
        self.progress.start()
        return lambda n: self.progress.advance(self.task, n)

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def _version(value: bool) -> None:
    if value:
        print(f"faceverify {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_version,
                                          help="Show the version and exit.")] = False,
) -> None:
    """Say whether two face photos show the same person (Siamese CNN trained on LFW, run by ONNX Runtime)."""


# ---------------------------------------------------------------------------------------------- compare


def _decimals(p: float, t: float) -> int:
    """Enough decimals (4 to 9) that a probability and the threshold it is compared with print differently."""
    digits = 4
    while digits < 9 and p != t and f"{p:.{digits}f}" == f"{t:.{digits}f}":
        digits += 1
    return digits


def _fmt_seconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


@app.command()
@_guarded
def compare(
    image_a: Annotated[Path | None, typer.Argument(metavar="A", show_default=False,
                                                      help="First face image.")] = None,
    image_b: Annotated[Path | None, typer.Argument(metavar="B", show_default=False,
                                                      help="Second face image.")] = None,
    pairs_file: Annotated[str | None, typer.Option(
        "--pairs-file", "-f", show_default=False,
        help="Score many pairs: a file ('-' for stdin) of lines 'A<TAB>B' or CSV 'A,B' (paths relative to the "
             "current folder; '#' lines and a 'left,right' header are skipped). Writes CSV (TSV for a TSV list, "
             "or an --out name ending .tsv) with columns left,right,probability,threshold,decision.")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", show_default=False, help="With --pairs-file: write the scores to this file instead of stdout.",
    )] = None,
    threshold: ThresholdOption = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print one JSON object (with --pairs-file: one JSON object per line, per pair).")] = False,
    model: ModelOption = None,
    provider: ProviderOption = Provider.auto,
) -> None:
    """Compare two face images: probability of 'same person', decision, threshold and provider.

    Exit code 0 when the model says same person, 1 when different, 2 on any error.

    With --pairs-file: 0 only when every pair is the same person.
    """
    if pairs_file is not None:
        if image_a is not None or image_b is not None:
            raise FaceverifyError("give either two images A B or --pairs-file LIST, not both")
        code = compare_many(pairs_file, out, threshold, as_json, model, provider)
    else:
        if image_a is None or image_b is None:
            raise FaceverifyError("compare needs two images (faceverify compare A B) or --pairs-file LIST")
        if out is not None:
            raise FaceverifyError("--out goes with --pairs-file; for one pair the result is printed")
        code = compare_two(image_a, image_b, threshold, as_json, model, provider)
    if code != EXIT_SAME:
        raise typer.Exit(code)


def compare_two(image_a: Path, image_b: Path, threshold: float | None, as_json: bool,
                model_path: Path | None, provider: Provider) -> int:
    """Score one pair and print the result; returns the exit code (0 same, 1 different)."""
    import numpy as np

    from verify_cli.preprocess import load_input

    started = time.perf_counter()
    model = _load_model(model_path, provider)
    t, source = _threshold(threshold, model)
    tick = time.perf_counter()
    arrays = [load_input(image_a, model.info.preprocess)]
    if image_b != image_a:
        arrays.append(load_input(image_b, model.info.preprocess))
    decode_s = time.perf_counter() - tick
    tick = time.perf_counter()
    emb = model.embed(np.stack(arrays))
    p = float(model.score(emb[:1], emb[-1:])[0])
    model_s = time.perf_counter() - tick
    same = p >= t
    if as_json:
        record = {"left": str(image_a), "right": str(image_b), "probability": p, "same": bool(same),
                  "decision": "same" if same else "different", "threshold": t, "threshold_source": source,
                  "provider": model.provider, "model": str(model.path)}
        print(json.dumps(record))
    else:
        console = _console()
        _header(console, model, model_path is not None)
        verdict = "[bold green]same person[/]" if same else "[bold yellow]different people[/]"
        digits = _decimals(p, t)
        rows = [
            ("A", _esc(image_a)),
            ("B", _esc(image_b)),
            ("probability", f"[bold]{p:.{digits}f}[/] of same person"),
            ("threshold", f"{t:.{digits}f} ({'stored in the model' if source == 'model' else '--threshold'})"),
            ("decision", verdict),
            ("provider", f"[magenta]{model.provider}[/]"),
            ("time", (f"{_fmt_seconds(time.perf_counter() - started)} "
                      f"(decode {_fmt_seconds(decode_s)}, model {_fmt_seconds(model_s)})")),
        ]
        for label, value in rows:
            console.print(f"[dim]{label:>11}[/]  {value}")
    return EXIT_SAME if same else EXIT_DIFFERENT


def compare_many(pairs_file: str, out: Path | None, threshold: float | None, as_json: bool,
                 model_path: Path | None, provider: Provider) -> int:
    """Score every pair of a list (each distinct image embedded once); returns 0 if all same, else 1."""
    import csv
    import io

    from verify_cli.outputs import write_atomic
    from verify_cli.pairlist import read_path_pairs
    from verify_cli.scoring import embed_paths, index_pairs, score_pairs

    _check_outputs(out)
    listing = read_path_pairs(pairs_file)
    keys, left, right = index_pairs(listing.pairs)
    first_line = {}
    for (a, b), line in zip(listing.pairs, listing.lines):
        first_line.setdefault(a, line)
        first_line.setdefault(b, line)
    name = "<stdin>" if pairs_file == "-" else pairs_file
    for key in keys:  # every image is checked before the model loads; the error names the list's line
        try:
            require_file(Path(key), "an image file")
        except FaceverifyError as exc:
            raise FaceverifyError(f"{name}:{first_line[key]}: {exc.message}") from None
    model = _load_model(model_path, provider)
    t, source = _threshold(threshold, model)
    with _Progress(len(keys), "embedding") as advance:
        embedded = embed_paths(model, [Path(k) for k in keys], progress=advance)
    scores = score_pairs(model, embedded.embeddings, left, right)

    buffer = io.StringIO()
    if as_json:
        for (a, b), p in zip(listing.pairs, scores):
            buffer.write(json.dumps({"left": a, "right": b, "probability": float(p), "same": bool(p >= t),
                                     "decision": "same" if p >= t else "different", "threshold": t,
                                     "threshold_source": source, "provider": model.provider}) + "\n")
    else:
        delimiter = listing.delimiter
        if out is not None and out.suffix.lower() in (".csv", ".tsv"):
            delimiter = "\t" if out.suffix.lower() == ".tsv" else ","
        writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
        writer.writerow(["left", "right", "probability", "threshold", "decision"])
        for (a, b), p in zip(listing.pairs, scores):
            writer.writerow([a, b, f"{p:.9g}", f"{t:.9g}", "same" if p >= t else "different"])
    if out is not None:
        write_atomic(out, buffer.getvalue().encode())
    else:
        sys.stdout.write(buffer.getvalue())
        sys.stdout.flush()

    same = int(sum(scores >= t))
    err = _console(stderr=True)
    err.print(
        f"[bold]faceverify[/] {len(scores)} pairs: [green]{same} same[/], [yellow]{len(scores) - same} different[/]"
        f"  [dim]│[/]  threshold {t:.4f} ({source})  [dim]│[/]  {len(keys)} images, "
        f"{embedded.images_per_s:.0f} images/s  [dim]│[/]  {model.provider}"
        + (f"  [dim]│[/]  wrote {_esc(out)}" if out is not None else "")
    )
    return EXIT_SAME if same == len(scores) else EXIT_DIFFERENT


# ---------------------------------------------------------------------------------------------- evaluate


@app.command()
@_guarded
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
    model: ModelOption = None,
    provider: ProviderOption = Provider.auto,
) -> None:
    """Score an LFW pairs file: accuracy at the model's threshold, ROC AUC, EER, TAR at FAR, confusion counts.

    Each distinct image is embedded once.

    A ten-fold (View 2) file also gets per-fold accuracy, each threshold chosen on the other nine folds.
    """
    from verify_cli import evaluation
    from verify_cli.lfw import LFWRoot
    from verify_cli.outputs import write_all

    _check_outputs(json_out, scores_out, examples_out, roc_out)
    lfw = LFWRoot.open(data_root)
    pairs_path = lfw.pairs_path(pairs)
    planned = evaluation.plan(lfw, pairs_path, lfw.pairs(pairs))
    the_model = _load_model(model, provider)
    t, source = _threshold(threshold, the_model)
    explicit = model is not None
    if not as_json:
        console = _console()
        _header(console, the_model, explicit)
        console.print(f"[dim]pairs[/] {_esc(pairs_path)}  [dim]│[/]  {len(planned.pairs)} pairs, "
                      f"{len(planned.images)} distinct images")
    with _Progress(len(planned.images), "embedding") as advance:
        ev = evaluation.evaluate(the_model, lfw, planned, t, source, batch_size, workers, advance)

    files: dict[Path, bytes] = {}
    if scores_out is not None:
        files[scores_out] = evaluation.scores_csv(ev).encode()
    if roc_out is not None:
        from verify_cli.plots import roc_png

        title = f"ROC on {pairs_path.name}: {_model_label(the_model, explicit)}"
        files[roc_out] = roc_png(ev.scores, ev.labels, t, title)
    if examples_out is not None:
        from verify_cli.plots import examples_png, pick_examples

        chosen = evaluation.examples(ev, lfw, pick_examples(ev.scores, ev.labels, t, EXAMPLES_PER_KIND))
        title = f"{pairs_path.name}: most confident pairs of each outcome ({the_model.path.name})"
        files[examples_out] = examples_png(chosen, t, the_model.info.preprocess, title)
    summary = evaluation.summary(ev)
    if json_out is not None:
        files[json_out] = (json.dumps(summary, indent=2) + "\n").encode()
    write_all(files)

    if as_json:
        print(json.dumps(summary))
    else:
        _print_evaluation(_console(), ev, list(files))


def _print_evaluation(console: "Console", ev: "Evaluation", written: list[Path]) -> None:
    """The results table (and the per-fold table for a ten-fold file)."""
    from rich import box
    from rich.table import Table

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
    table.add_row("TAR @ FAR 1e-2", f"{report.tar_far_1e2:.4f}", "false accepts ≤ 1%")
    table.add_row("TAR @ FAR 1e-3", f"{report.tar_far_1e3:.4f}", "false accepts ≤ 0.1%")
    table.add_row("TP / FP / TN / FN", f"{report.tp} / {report.fp} / {report.tn} / {report.fn}",
                  f"at threshold {t:.4f}")
    table.add_row("images / s", f"{embedded.images_per_s:,.0f}",
                  f"{len(ev.plan.images):,} images, {embedded.wall_s:.2f} s "
                  f"(decode {embedded.decode_s:.2f}, model {embedded.model_s:.2f})")
    table.add_row("provider", f"[magenta]{ev.provider}[/]", "")
    console.print(table)

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
        console.print(folds)
    for path in written:
        console.print(f"[dim]wrote[/] {_esc(path)}")


# ---------------------------------------------------------------------------------------------- info


@app.command()
@_guarded
def info(
    as_json: Annotated[bool, typer.Option("--json", help="Print the metadata as one JSON object.")] = False,
    model: ModelOption = None,
    provider: ProviderOption = Provider.auto,
) -> None:
    """Show the model's metadata (input, preprocessing, threshold, training, figures, parity) and providers."""
    from verify_cli import modelmeta as mm
    from verify_cli.runtime import available_providers

    the_model = _load_model(model, provider)
    props = the_model.info.props
    available = available_providers()
    if as_json:
        metadata = {}
        for key, value in props.items():
            try:
                metadata[key] = json.loads(value)
            except ValueError:
                metadata[key] = value
        print(json.dumps({"model": str(the_model.path), "provider": the_model.provider,
                          "available_providers": available, "metadata": metadata}))
        return

    from rich import box
    from rich.table import Table

    spec = the_model.info.preprocess
    inputs = {i.name: i.shape for i in the_model.session.get_inputs()}
    shown = {
        "input": f"{mm.INPUT_IMAGES} float32 "
                 f"{'×'.join(str(d) if isinstance(d, int) else 'N' for d in inputs.get(mm.INPUT_IMAGES, []))} "
                 f"({'grayscale' if spec.channels == 1 else 'RGB'}, batch of any size)",
        "preprocessing": f"centre crop {spec.crop:g} of the shorter side, resize to {spec.size}x{spec.size} "
                         f"(bilinear), {spec.mode}, (x / 255 - {spec.mean:g}) / {spec.std:g}",
        "embedding": f"{the_model.info.embedding_size} numbers per image",
        "threshold": f"{the_model.threshold:.4f}" + (f"  ({props[mm.K_THRESHOLD_RULE]})"
                                                     if props.get(mm.K_THRESHOLD_RULE) else ""),
    }
    rows = [
        ("preset", mm.K_PRESET), ("architecture", mm.K_ARCHITECTURE), ("protocol", mm.K_PROTOCOL),
        ("training", mm.K_TRAINING), ("validation", mm.K_VALIDATION), ("DevTest", mm.K_DEVTEST),
        ("parity", mm.K_PARITY), ("versions", mm.K_VERSIONS), ("created", mm.K_CREATED), ("git commit", mm.K_COMMIT),
    ]
    used = {mm.K_FORMAT, mm.K_PREPROCESS, mm.K_INPUT, mm.K_EMBEDDING, mm.K_THRESHOLD, mm.K_THRESHOLD_RULE}
    table = Table(title=_esc(the_model.path), box=box.ROUNDED, show_header=False, title_style="bold")
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(overflow="fold")
    size = the_model.path.stat().st_size
    table.add_row("file", f"{the_model.path.name} ({size / 1e6:.2f} MB), faceverify format {props[mm.K_FORMAT]}")
    for label, value in shown.items():
        table.add_row(label, value)
    for label, key in rows:
        used.add(key)
        table.add_row(label, _describe(props.get(key), skip=("model", "preprocess", "preset", "protocol")))
    for key in sorted(set(props) - used):
        table.add_row(_esc(key), _describe(props[key]))
    table.add_section()
    cuda_note = ""
    if "CUDAExecutionProvider" in available and the_model.provider != "CUDAExecutionProvider":
        cuda_note = "  (CUDA is in this ONNX Runtime build" + (
            ", but not usable on this machine)" if provider == Provider.auto else "; not requested)")
    table.add_row("provider", f"[magenta]{the_model.provider}[/] ran this session{cuda_note}")
    table.add_row("available", ", ".join(available))
    _console().print(table)


FIRST_KEYS = ("accuracy", "roc_auc", "eer", "tar_far_1e2", "tar_far_1e3", "pairs", "threshold", "passed")


def _describe(value: str | None, skip: tuple[str, ...] = ()) -> str:
    """A metadata value for the table: JSON objects as `key value · ...` (headline figures first)."""
    if value is None or value == "":
        return "[dim]not recorded[/]"
    try:
        data = json.loads(value)
    except ValueError:
        return _esc(value)
    if not isinstance(data, dict):
        return _esc(value)

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            if v.is_integer():
                return f"{v:g}"
            return f"{v:.4f}" if abs(v) >= 1e-3 else f"{v:.2e}"
        if isinstance(v, (dict, list)):
            return json.dumps(v, separators=(",", ":"))
        return str(v)

    keys = [k for k in FIRST_KEYS if k in data] + [k for k in data if k not in FIRST_KEYS]
    return " · ".join(f"[dim]{_esc(k)}[/] {_esc(fmt(data[k]))}" for k in keys if k not in skip)


# ---------------------------------------------------------------------------------------------- entry point


def _subcommand() -> str:
    """The subcommand named on the command line, with a trailing space ('' when none)."""
    known = {"compare", "evaluate", "info"}
    return next((f"{arg} " for arg in sys.argv[1:] if arg in known), "")


def main() -> None:
    """Console-script entry point: run the app; anything that escapes becomes one line and exit code 2."""
    try:
        code = app(prog_name="faceverify", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print_error("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except typer.exceptions.TyperException as exc:  # usage errors: a bad option value, a missing argument
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if message.strip():  # empty when no arguments were given and the help was shown instead
            print_error(f"{message} (see faceverify {_subcommand()}--help)")
        sys.exit(EXIT_ERROR)
    except FaceverifyError as exc:
        print_error(exc.message)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        print_error("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(EXIT_ERROR)
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        print_error(f"internal error: {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for a traceback)")
        sys.exit(EXIT_ERROR)


if __name__ == "__main__":
    main()
