"""`python -m train.validate RUN/best.pt`: a checkpoint's validation figures, with standard errors, as training's
finalize computes them (head calibrated and threshold chosen on the validation pairs), without training.

What a README ablation row needs from one checkpoint: `--no-flip` scores it without the mirror-averaged
embedding. `--pairs-out FILE` writes the run's validation pairs as an LFW View 1 file (equal classes: the
larger class is cut to the smaller's size), so an exported model can be scored on them with
`faceverify evaluate --no-detect --pairs FILE`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from verify_cli.errors import EXIT_ERROR, FaceverifyError, print_error
from verify_cli.lfw import Pair, person_of, resolve_data_root
from verify_cli.outputs import write_atomic

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def view1_text(pairs: list[Pair]) -> str:
    """Pairs as an LFW View 1 file: `N`, then N matched `name i j` and N mismatched `name1 i name2 j` lines."""

    def number(relpath: str) -> int:
        return int(Path(relpath).stem.rsplit("_", 1)[1])

    matched = [p for p in pairs if p.same]
    mismatched = [p for p in pairs if not p.same]
    n = min(len(matched), len(mismatched))
    lines = [str(n)]
    lines += [f"{person_of(p.left)}\t{number(p.left)}\t{number(p.right)}" for p in matched[:n]]
    lines += [f"{person_of(p.left)}\t{number(p.left)}\t{person_of(p.right)}\t{number(p.right)}" for p in mismatched[:n]]
    return "\n".join(lines) + "\n"


def validate(checkpoint_path: Path, data_root: Path, flip: bool | None = None, pairs_out: Path | None = None) -> dict:
    """The checkpoint's validation summary (as finalize writes it); `flip` overrides its mirror averaging, and
    `pairs_out` also receives the validation pairs as a View 1 file."""
    import torch

    from train import checkpoint
    from train.data import load_bank, open_source, pair_set, protocol_splits
    from train.loop import calibrate_head, load_model, pair_probabilities, validation_summary
    from verify_cli import metrics

    cfg, model = load_model(checkpoint.load(checkpoint_path))
    if flip is not None:
        model.flip_average = flip
    lfw = open_source(cfg, data_root)
    splits = protocol_splits(cfg, lfw)
    if pairs_out is not None:
        write_atomic(pairs_out, view1_text(splits.val).encode())
    bank = load_bank(lfw, [p for pair in splits.val for p in (pair.left, pair.right)], cfg.preprocess, cfg.faces)
    pairs = pair_set(bank, splits.val)
    device = torch.device("cpu")
    calibrate_head(model, bank, pairs, cfg.preprocess, device)
    probs, loss = pair_probabilities(model, bank, pairs, cfg.preprocess, device)
    threshold = metrics.best_threshold(probs, pairs.labels)
    return {"preset": cfg.preset, "seed": cfg.seed, "flip_average": model.flip_average,
            **validation_summary(probs, loss, pairs, threshold)}


@app.command()
def main(
    checkpoint_path: Annotated[Path, typer.Argument(metavar="CHECKPOINT", help="A run's best.pt.")],
    data_root: Annotated[Path | None, typer.Option(help="LFW data root \\[default: $FACEVERIFY_DATA, else "
                                                        "./data/lfw].", show_default=False)] = None,
    no_flip: Annotated[bool, typer.Option("--no-flip", help="Embed without mirror averaging.")] = False,
    pairs_out: Annotated[Path | None, typer.Option(help="Write the validation pairs as an LFW View 1 file.")] = None,
) -> None:
    """Print a checkpoint's validation figures as one JSON object."""
    try:
        summary = validate(checkpoint_path, resolve_data_root(data_root), False if no_flip else None, pairs_out)
        print(json.dumps(summary, indent=1))
    except FaceverifyError as exc:
        print_error(exc.message)
        raise typer.Exit(EXIT_ERROR) from None


if __name__ == "__main__":
    sys.exit(app())
