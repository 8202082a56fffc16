"""`faceverify compare`: one pair of images (exit 0 same, 1 different), or a list of pairs to CSV/TSV/JSON lines."""

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from verify_cli.cli import render
from verify_cli.cli.options import (
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
from verify_cli.errors import EXIT_DIFFERENT, EXIT_SAME, FaceverifyError, require_file

if TYPE_CHECKING:
    import numpy as np

    from verify_cli.scoring import FaceReader


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
    no_detect: NoDetectOption = False,
    face: Annotated[list[str] | None, typer.Option(
        "--face", metavar="largest|central|N",
        help="Which face to use when a photo holds several: the largest (default), the one nearest the image "
             "centre, or N, an index into the faces ordered largest first (0 is the largest). Given once it "
             "applies to both photos; given twice, the first is for A and the second for B.")] = None,
    save_crops: SaveCropsOption = None,
    model: ModelOption = None,
    precision: PrecisionOption = Precision.auto,
    provider: ProviderOption = Provider.auto,
) -> None:
    """Compare two face photos: probability of 'same person', decision, threshold and provider.

    Each photo's face is found and aligned first (the output says how many faces and which one was used).

    Exit code 0 when the model says same person, 1 when different, 2 on any error (a photo with no face too).

    With --pairs-file: 0 only when every pair is the same person.
    """
    faces = face or ["largest"]
    if len(faces) > 2 or (len(faces) == 2 and pairs_file is not None):
        raise FaceverifyError("--face is given once, or twice for A and B")
    options = (no_detect, faces, save_crops)
    if pairs_file is not None:
        if image_a is not None or image_b is not None:
            raise FaceverifyError("give either two images A B or --pairs-file LIST, not both")
        code = compare_many(pairs_file, out, threshold, as_json, model, provider, options, precision)
    else:
        if image_a is None or image_b is None:
            raise FaceverifyError("compare needs two images (faceverify compare A B) or --pairs-file LIST")
        if out is not None:
            raise FaceverifyError("--out goes with --pairs-file; for one pair the result is printed")
        code = compare_two(image_a, image_b, threshold, as_json, model, provider, options, precision)
    if code != EXIT_SAME:
        raise typer.Exit(code)


def _decision(p: float, t: float) -> str:
    return "same" if p >= t else "different"


def _face_text(record: dict | None) -> str:
    """What detection did for one image, for the human output."""
    if record is None:
        return "[dim]fixed centre crop (--no-detect)[/]"
    x0, y0, x1, y1 = record["box"]
    found = record["faces_found"]
    return (f"{found} face{'s' if found != 1 else ''} found, used #{record['face_used']} "
            f"at ({x0:.0f}, {y0:.0f})-({x1:.0f}, {y1:.0f}), confidence {record['confidence']:.3f}")


def compare_two(image_a: Path, image_b: Path, threshold: float | None, as_json: bool,
                model_path: Path | None, provider: Provider, options: tuple[bool, list[str], Path | None],
                precision: Precision = Precision.auto) -> int:
    """Score one pair and print the result; returns the exit code (0 same, 1 different)."""
    import numpy as np

    started = time.perf_counter()
    model = load_model(model_path, provider, precision)
    t, source = resolve_threshold(threshold, model)
    no_detect, faces_wanted, crops = options
    readers: list[FaceReader] = [face_reader(model, no_detect, wanted, crops) for wanted in faces_wanted]
    tick = time.perf_counter()
    read = [readers[0].input(image_a)]
    if image_b != image_a or len(readers) == 2:
        read.append(readers[-1].input(image_b))
    arrays = [array for array, _ in read]
    faces = [record for _, record in read]
    decode_s = time.perf_counter() - tick
    tick = time.perf_counter()
    emb = model.embed(np.stack(arrays))
    p = float(model.score(emb[:1], emb[-1:])[0])
    model_s = time.perf_counter() - tick
    same = p >= t
    if as_json:
        print(json.dumps({"left": str(image_a), "right": str(image_b), "probability": p, "same": bool(same),
                          "decision": _decision(p, t), "threshold": t, "threshold_source": source,
                          "provider": model.provider, "model": str(model.path),
                          "faces": {"left": faces[0], "right": faces[-1]}}))
    else:
        out = render.console()
        render.header(out, model, model_path is not None)
        digits = render.decimals(p, t)
        rows = [
            ("A", render.esc(image_a)),
            ("", _face_text(faces[0])),
            ("B", render.esc(image_b)),
            ("", _face_text(faces[-1])),
            ("probability", f"[bold]{p:.{digits}f}[/] of same person"),
            ("threshold", f"{t:.{digits}f} ({'stored in the model' if source == 'model' else '--threshold'})"),
            ("decision", "[bold green]same person[/]" if same else "[bold yellow]different people[/]"),
            ("provider", f"[magenta]{model.provider}[/]"),
            ("time", (f"{render.seconds(time.perf_counter() - started)} "
                      f"(faces {render.seconds(decode_s)}, model {render.seconds(model_s)})")),
        ]
        for label, value in rows:
            out.print(f"[dim]{label:>11}[/]  {value}")
    return EXIT_SAME if same else EXIT_DIFFERENT


def compare_many(pairs_file: str, out: Path | None, threshold: float | None, as_json: bool,
                 model_path: Path | None, provider: Provider, options: tuple[bool, list[str], Path | None],
                 precision: Precision = Precision.auto) -> int:
    """Score every pair of a list (each distinct image embedded once); returns 0 if all same, else 1."""
    from verify_cli.outputs import write_atomic
    from verify_cli.pairlist import read_path_pairs
    from verify_cli.scoring import embed_paths, index_pairs, score_pairs

    check_outputs(out)
    listing = read_path_pairs(pairs_file)
    keys, left, right = index_pairs(listing.pairs)
    first_seen = {}
    for (a, b), line in zip(listing.pairs, listing.lines):
        first_seen.setdefault(a, line)
        first_seen.setdefault(b, line)
    name = "<stdin>" if pairs_file == "-" else pairs_file
    for key in keys:  # every image is checked before the model loads; the error names the list's line
        try:
            require_file(Path(key), "an image file")
        except FaceverifyError as exc:
            raise FaceverifyError(f"{name}:{first_seen[key]}: {exc.message}") from None
    model = load_model(model_path, provider, precision)
    t, source = resolve_threshold(threshold, model)
    no_detect, faces_wanted, crops = options
    reader = face_reader(model, no_detect, faces_wanted[0], crops)
    with render.Progress(len(keys), "embedding") as advance:
        embedded = embed_paths(model, [Path(k) for k in keys], progress=advance, reader=reader)
    scores = score_pairs(model, embedded.embeddings, left, right)

    if as_json:
        face_of = dict(zip(keys, embedded.faces))
        text = "".join(json.dumps({"left": a, "right": b, "probability": float(p), "same": bool(p >= t),
                                   "decision": _decision(p, t), "threshold": t, "threshold_source": source,
                                   "provider": model.provider,
                                   "faces": {"left": face_of[a], "right": face_of[b]}}) + "\n"
                       for (a, b), p in zip(listing.pairs, scores))
    else:
        delimiter = listing.delimiter
        if out is not None and out.suffix.lower() in (".csv", ".tsv"):
            delimiter = "\t" if out.suffix.lower() == ".tsv" else ","
        text = _table_text(listing.pairs, scores, t, delimiter)
    if out is not None:
        write_atomic(out, text.encode())
    else:
        sys.stdout.write(text)
        sys.stdout.flush()

    same = int(sum(scores >= t))
    render.console(stderr=True).print(
        f"[bold]faceverify[/] {len(scores)} pairs: [green]{same} same[/], [yellow]{len(scores) - same} different[/]"
        f"{render.SEP}threshold {t:.4f} ({source}){render.SEP}{len(keys)} images, "
        f"{embedded.images_per_s:.0f} images/s{render.SEP}{model.provider}"
        + (f"{render.SEP}wrote {render.esc(out)}" if out is not None else "")
    )
    return EXIT_SAME if same == len(scores) else EXIT_DIFFERENT


def _table_text(pairs: list[tuple[str, str]], scores: "np.ndarray", t: float, delimiter: str) -> str:
    """The scores as CSV or TSV text: left, right, probability, threshold, decision."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(["left", "right", "probability", "threshold", "decision"])
    for (a, b), p in zip(pairs, scores):
        writer.writerow([a, b, f"{p:.9g}", f"{t:.9g}", _decision(p, t)])
    return buffer.getvalue()
