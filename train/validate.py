"""`python -m train.validate RUN/best.pt`: a checkpoint's validation figures, with standard errors, as training's
finalize computes them (head calibrated and threshold chosen on the validation pairs), without training.

What a README ablation row needs from one checkpoint: `--no-flip` scores it without the mirror-averaged
embedding. `--pairs-out FILE` writes the run's validation pairs as an LFW View 1 file (equal classes: the
larger class is cut to the smaller's size), so an exported model can be scored on them with
`faceverify evaluate --no-detect --pairs FILE`. `--threshold-rules` compares the threshold rules on random halves
of the validation people, each chosen on one half and scored on the other: probability 0.5 of the calibrated head,
the accuracy-maximising threshold, and the look-alike rule the stored threshold follows.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from verify_cli.cli.options import DataRootOption
from verify_cli.errors import FaceverifyError, entry_point
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


def _validation(checkpoint_path: Path, data_root: Path, pairs_out: Path | None = None):
    """The checkpoint's model and configuration, and its run's validation pairs with their image bank."""
    from train import checkpoint
    from train.data import load_bank, open_source, pair_set, protocol_splits
    from train.loop import load_model

    cfg, model = load_model(checkpoint.load(checkpoint_path))
    lfw = open_source(cfg, data_root)
    splits = protocol_splits(cfg, lfw)
    if pairs_out is not None:
        write_atomic(pairs_out, view1_text(splits.val).encode())
    bank = load_bank(lfw, [p for pair in splits.val for p in (pair.left, pair.right)], cfg.preprocess, cfg.faces)
    return cfg, model, splits.val, bank, pair_set(bank, splits.val)


def validate(checkpoint_path: Path, data_root: Path, flip: bool | None = None, pairs_out: Path | None = None) -> dict:
    """The checkpoint's validation summary (as finalize writes it); `flip` overrides its mirror averaging, and
    `pairs_out` also receives the validation pairs as a View 1 file."""
    import torch

    from train.summary import calibrate_and_choose

    cfg, model, _, bank, pairs = _validation(checkpoint_path, data_root, pairs_out)
    if flip is not None:
        model.flip_average = flip
    _, chosen = calibrate_and_choose(cfg, model, bank, pairs, torch.device("cpu"))
    figures = chosen.summary(pairs)
    return {"preset": cfg.preset, "seed": cfg.seed, "flip_average": model.flip_average,
            "threshold_rule": chosen.rule, **figures["validation"], "lookalike": figures["lookalike"]}


def threshold_rules(checkpoint_path: Path, data_root: Path, halvings: int = 100) -> dict:
    """How well each threshold rule holds out: the validation people are split in random halves; on the pairs
    within one half the head is calibrated and every rule's threshold is chosen, and they are scored on the pairs
    within the other (pairs across the halves are left out). Per rule, the mean over `halvings` splits of the
    held-out accuracy on random pairs, the look-alike strangers accepted, and the mixed accuracy (same-person pairs
    1/2, random strangers 1/4, look-alike strangers 1/4: what the look-alike rule maximises)."""
    import numpy as np
    import torch

    from models.heads import CosineHead
    from train.calibration import ARGMAX_RULE, CALIBRATED_RULE, MIXED_RULE, MIXED_WEIGHTS, decision_threshold, fit_head
    from train.lookalike import lookalike_set
    from train.loop import pair_embeddings
    from verify_cli import metrics

    cfg, model, val, bank, pairs = _validation(checkpoint_path, data_root)
    if not isinstance(model.head, CosineHead):
        raise FaceverifyError(f"{checkpoint_path}: threshold rules compare calibrations of a cosine head; this model "
                              f"has a {type(model.head).__name__}")
    alike = lookalike_set(bank, pairs)
    strangers = alike.labels < 0.5
    (a, b), (c, d) = pair_embeddings(model, bank, [pairs, alike], cfg.preprocess, torch.device("cpu"))
    c, d = c[strangers], d[strangers]
    labels = torch.from_numpy(pairs.labels)
    left, right = np.array([person_of(p.left) for p in val]), np.array([person_of(p.right) for p in val])
    alike_left = np.array([person_of(bank.paths[r]) for r in alike.left[strangers]])
    alike_right = np.array([person_of(bank.paths[r]) for r in alike.right[strangers]])
    people = np.unique(np.concatenate([left, right]))
    rng = np.random.default_rng(0)
    head = CosineHead(a.shape[1])
    rules = {"calibrated": CALIBRATED_RULE, "argmax": ARGMAX_RULE, "mixed": MIXED_RULE}
    held_out: dict[str, dict[str, list[float]]] = {r: {"accuracy": [], "lookalike_far": [], "mixed_accuracy": []}
                                                  for r in rules}
    truth = pairs.labels > 0.5
    w_same, w_random, w_alike = MIXED_WEIGHTS
    for _ in range(halvings):
        half = rng.choice(people, people.size // 2, replace=False)
        left_in, right_in = np.isin(left, half), np.isin(right, half)
        fit, held = left_in & right_in, ~left_in & ~right_in  # pairs across the halves are left out
        a_in, b_in = np.isin(alike_left, half), np.isin(alike_right, half)
        alike_fit, alike_held = a_in & b_in, ~a_in & ~b_in
        fit_head(head, a[fit], b[fit], labels[fit])
        with torch.no_grad():
            probs = torch.sigmoid(head(a, b)).double().numpy()
            alike_probs = torch.sigmoid(head(c, d)).double().numpy()
        chosen = {"calibrated": 0.5, "argmax": metrics.best_threshold(probs[fit], pairs.labels[fit]),
                  "mixed": decision_threshold(probs[fit], pairs.labels[fit], True,
                                              (alike_probs[alike_fit], np.zeros(int(alike_fit.sum()))))[0]}
        for rule, t in chosen.items():
            accept, alike_accept = probs[held] >= t, alike_probs[alike_held] >= t
            far_alike = float(np.mean(alike_accept))
            held_out[rule]["accuracy"].append(float(np.mean(accept == truth[held])))
            held_out[rule]["lookalike_far"].append(far_alike)
            held_out[rule]["mixed_accuracy"].append(
                w_same * float(np.mean(accept[truth[held]])) + w_random * float(np.mean(~accept[~truth[held]]))
                + w_alike * (1 - far_alike))
    gain = np.array(held_out["calibrated"]["accuracy"]) - np.array(held_out["argmax"]["accuracy"])
    return {"preset": cfg.preset, "seed": cfg.seed, "halvings": halvings,
            **{rule: {"rule": text, "held_out_accuracy": float(np.mean(held_out[rule]["accuracy"])),
                      "held_out_lookalike_far": float(np.mean(held_out[rule]["lookalike_far"])),
                      "held_out_mixed_accuracy": float(np.mean(held_out[rule]["mixed_accuracy"]))}
               for rule, text in rules.items()},
            "calibrated_minus_argmax": {"mean": float(gain.mean()), "sd": float(gain.std(ddof=1)),
                                        "halvings_not_worse": int((gain >= 0).sum())}}


@app.command()
def main(
    checkpoint_path: Annotated[Path, typer.Argument(metavar="CHECKPOINT", help="A run's best.pt.")],
    data_root: DataRootOption = None,
    no_flip: Annotated[bool, typer.Option("--no-flip", help="Embed without mirror averaging.")] = False,
    pairs_out: Annotated[Path | None, typer.Option(help="Write the validation pairs as an LFW View 1 file.")] = None,
    rules: Annotated[bool, typer.Option("--threshold-rules", help="Instead, compare the threshold rules on random "
                                        "halves of the validation people (cosine head only).")] = False,
) -> None:
    """Print a checkpoint's validation figures as one JSON object."""
    with entry_point():
        root = resolve_data_root(data_root)
        if rules:
            summary = threshold_rules(checkpoint_path, root)
        else:
            summary = validate(checkpoint_path, root, False if no_flip else None, pairs_out)
        print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    sys.exit(app())
