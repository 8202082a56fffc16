"""`faceverify identify`: who each query photo shows among a gallery of known people (exit 0 all matched, 1 any unknown)."""

import json
import os
import sys
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
    face_reader,
    load_model,
    resolve_threshold,
)
from verify_cli.errors import FaceverifyError, require_file

if TYPE_CHECKING:
    from rich.console import Console

    from verify_cli.gallery import Gallery, Identification
    from verify_cli.gallery.index import Embeddings

EXIT_MATCHED = 0
EXIT_UNKNOWN = 1


def identify(
    queries: Annotated[list[Path], typer.Argument(metavar="QUERY", show_default=False,
                                                  help="Photos of the people to identify.")],
    gallery: Annotated[Path, typer.Option(
        "--gallery", "-g", metavar="DIR", show_default=False,
        help="The known people: one folder per person (DIR/<name>/*.jpg, one photo is enough, every photo is used) "
             "or files named DIR/<name>.jpg, or both.")],
    index: Annotated[Path | None, typer.Option(
        "--index", metavar="FILE", show_default=False,
        help="The gallery index file \\[default: DIR/.faceverify-index.npz].")] = None,
    top: Annotated[int, typer.Option("--top", "-k", min=1, max=1000,
                                     help="Candidates shown per query, best first (2: the match and the runner-up).")] = 2,
    threshold: ThresholdOption = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print one JSON object per query, one per line: query, match (null when unknown), "
                       "probability, same, candidates [{name, probability}], faces.")] = False,
    no_detect: NoDetectOption = False,
    face: FaceOption = "largest",
    save_crops: SaveCropsOption = None,
    model: ModelOption = None,
    precision: PrecisionOption = Precision.auto,
    provider: ProviderOption = Provider.auto,
) -> None:
    """Identify each QUERY photo against a gallery of known people: best match, its probability, the runner-up.

    A query whose best probability is below the threshold is [bold]unknown[/].

    The threshold is the model's 1:1 one: against N people a stranger has N chances to pass it (see the README).

    Queries and gallery photos go through the same face pipeline (--no-detect and --face apply to both).

    A gallery photo with no usable face is left out with a warning; it is tried again when the file changes.

    The index caches the gallery's embeddings: reused, updated for changed photos, rebuilt for a new model or face settings.

    [bold]The index holds biometric data[/] (face embeddings). It is created readable by its owner only (mode 0600).

    It is written atomically and read as plain arrays, [bold]never unpickled[/]; a damaged one is rebuilt with a warning.

    Exit code 0 when every query matched someone, 1 when any is unknown, 2 on any error.
    """
    from verify_cli.gallery import identify as search
    from verify_cli.gallery import load_gallery, model_identity
    from verify_cli.gallery.embed import embed_photos, pipeline_key
    from verify_cli.scoring import embed_paths

    for query in queries:
        require_file(query, "an image file")
    if index is None and gallery.is_dir() and not os.access(gallery, os.W_OK):
        raise FaceverifyError(f"{gallery}: gallery folder is not writable; keep its index elsewhere with --index FILE")
    the_model = load_model(model, provider, precision)
    t, source = resolve_threshold(threshold, the_model)
    reader = face_reader(the_model, no_detect, face, save_crops)

    distinct = list(dict.fromkeys(queries))
    with render.Progress(len(distinct), "queries") as advance:
        asked = embed_paths(the_model, distinct, progress=advance, reader=reader)  # a query without a face: error
    row = {path: i for i, path in enumerate(distinct)}

    def embed(paths: list[Path]) -> "Embeddings":
        with render.Progress(len(paths), "gallery") as step:
            return embed_photos(the_model, paths, reader, step)

    known, status = load_gallery(gallery, embed, model_identity(the_model.path), pipeline_key(reader), index)
    err = render.console(stderr=True)
    for line in (status.warning, status.skipped_warning):
        if line is not None:
            sys.stderr.write(f"warning: {' '.join(line.split())}\n")
    err.print(f"{render.esc(status.describe())}{render.SEP}{render.esc(status.index)}")

    answers = search(the_model.score, t, [str(q) for q in queries], asked.embeddings[[row[q] for q in queries]],
                     known, top)
    if as_json:
        for query, answer in zip(queries, answers):
            print(json.dumps(answer.as_json() | {"faces": asked.faces[row[query]]}))
    else:
        out = render.console()
        render.header(out, the_model, model is not None)
        out.print(f"[dim]gallery[/] {render.esc(gallery)}{render.SEP}{len(known.people)} people, "
                  f"{len(known.photos)} photos{render.SEP}threshold {t:.4f} "
                  f"({'stored in the model' if source == 'model' else '--threshold'}){render.SEP}"
                  f"faces {reader.description}")
        print_answers(out, answers, t, known)
    if not all(a.same for a in answers):
        raise typer.Exit(EXIT_UNKNOWN)


def print_answers(out: "Console", answers: list["Identification"], t: float, known: "Gallery") -> None:
    """A small block per query: its path, then the answer (match or unknown) and the next candidates, ranked."""
    from rich.table import Table

    for a in answers:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim", justify="right", no_wrap=True, min_width=9)
        grid.add_column(no_wrap=True)
        grid.add_column(justify="right", no_wrap=True)
        grid.add_column(style="dim", no_wrap=True)
        for rank, (name, p) in enumerate(a.candidates):
            value = f"{p:.{render.decimals(p, t)}f}"
            if rank > 0:
                grid.add_row("runner-up" if rank == 1 else f"#{rank + 1}", render.esc(name), value, "")
            elif a.same:
                grid.add_row("match", f"[bold green]{render.esc(name)}[/]", f"[bold]{value}[/]", f"≥ {t:.4f}")
            else:
                grid.add_row("[bold yellow]unknown[/]", f"closest {render.esc(name)}", f"[bold]{value}[/]",
                             f"< {t:.4f}")
        out.print(f"[bold]{render.esc(a.query)}[/]")
        out.print(grid)
    matched = sum(a.same for a in answers)
    out.print(f"[dim]{matched} of {len(answers)} quer{'y' if len(answers) == 1 else 'ies'} matched one of "
              f"{len(known.people)} people ({len(known.photos)} photos)[/]")
