"""Look-alike strangers among the held-out validation people, and a model's figures on them beside random pairs.

LFW's mismatched pairs, and the validation pairs mined like them, pair random people, who often differ in sex,
age or ethnicity; users compare people who resemble each other. Here each held-out image's nearest image of
another held-out person is found with a fixed, training-free descriptor: uniform local binary patterns on a
4x4 grid of the model's input crop (Ahonen, Hadid and Pietikainen, 2006), compared by the cosine of the
square-rooted histograms. No model is in the loop, so the pairs are the same for every checkpoint and recipe and
come from no outside data. Its bias, stated: LBP sees texture and shape in grey, so it favours strangers alike in
pose, lighting, hair line and skin texture as well as in face; it does not see colour.

`python -m train.lookalike --model M.onnx --data-root D` rebuilds the model's validation people from the training
configuration it carries and prints accuracy, FAR, TAR and ROC AUC at its stored threshold on random and on
look-alike validation pairs, with standard errors. DevTest is never read.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer

from verify_cli.cli.options import DataRootOption
from verify_cli.errors import entry_point
from verify_cli.lfw import Pair, person_of

if TYPE_CHECKING:
    from train.config import TrainConfig
    from train.data import ImageBank, PairSet, Source
    from verify_cli.runtime import Model

GRID = 4  # cells per side of the descriptor's grid
BINS = 59  # the 58 uniform 8-neighbour patterns and one bin for the rest
OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))  # around the centre, in order


def _uniform_table() -> np.ndarray:
    """Each 8-bit pattern's bin: its own for the 58 with at most two 0/1 transitions around the circle, else 58."""
    table = np.full(256, BINS - 1, np.int64)
    uniform = [c for c in range(256) if (c ^ ((c >> 1) | ((c & 1) << 7))).bit_count() <= 2]
    table[uniform] = np.arange(len(uniform))
    return table


UNIFORM = _uniform_table()


def lbp_descriptors(pixels: np.ndarray) -> np.ndarray:
    """Unit-length descriptors (N, GRID*GRID*BINS) of grey images (N, H, W): per grid cell, the square-rooted
    normalised histogram of uniform LBP codes; the cosine of two is then their Hellinger affinity."""
    x = pixels.astype(np.int16)
    n, h, w = x.shape
    centre = x[:, 1:-1, 1:-1]
    code = np.zeros(centre.shape, np.int64)
    for bit, (dy, dx) in enumerate(OFFSETS):
        code |= (x[:, 1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx] >= centre).astype(np.int64) << bit
    labels = UNIFORM[code]
    ch, cw = (h - 2) // GRID, (w - 2) // GRID
    cells = []
    for gy in range(GRID):
        for gx in range(GRID):
            cell = labels[:, gy * ch:(gy + 1) * ch, gx * cw:(gx + 1) * cw].reshape(n, -1)
            counts = np.bincount((cell + BINS * np.arange(n)[:, None]).ravel(), minlength=BINS * n).reshape(n, BINS)
            cells.append(np.sqrt(counts / cell.shape[1]))
    out = np.concatenate(cells, axis=1)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def lookalike_pairs(images: list[str], descriptors: np.ndarray, count: int) -> list[Pair]:
    """Up to `count` stranger pairs, most alike first: for each person, the most similar pair of one of their
    images and another person's image (each unordered pair of people once)."""
    people = np.array([person_of(p) for p in images])
    similarity = descriptors @ descriptors.T
    similarity[people[:, None] == people[None, :]] = -np.inf
    best: dict[str, tuple[float, int, int]] = {}
    for i, j in enumerate(np.argmax(similarity, axis=1)):
        if np.isfinite(similarity[i, j]) and similarity[i, j] > best.get(people[i], (-np.inf,))[0]:
            best[people[i]] = (float(similarity[i, j]), i, int(j))
    chosen, seen = [], set()
    for _, i, j in sorted(best.values(), key=lambda v: (-v[0], v[1])):
        key = frozenset((people[i], people[j]))
        if key not in seen:
            seen.add(key)
            chosen.append(Pair(images[min(i, j)], images[max(i, j)], False))
    return chosen[:count]


@dataclass(frozen=True)
class Figures:
    """A model's figures on one set of pairs at its stored threshold."""

    pairs: int
    same_pairs: int
    different_pairs: int
    accuracy: float
    accuracy_se: float
    far: float
    far_se: float
    tar: float
    roc_auc: float
    roc_auc_se: float


def figures(probs: np.ndarray, same: np.ndarray, threshold: float) -> Figures:
    """Accuracy, FAR, TAR (binomial standard errors) and ROC AUC (Hanley-McNeil's) at `threshold`."""
    from verify_cli import metrics

    accept = probs >= threshold
    accuracy, far = float(np.mean(accept == same)), float(np.mean(accept[~same]))
    auc = metrics.roc_auc(probs, same)
    return Figures(int(same.size), int(same.sum()), int((~same).sum()), accuracy,
                   metrics.accuracy_se(accuracy, same.size), far, metrics.accuracy_se(far, int((~same).sum())),
                   float(np.mean(accept[same])), auc, metrics.auc_se(auc, int(same.sum()), int((~same).sum())))


def lookalike_set(bank: ImageBank, val: PairSet) -> PairSet:
    """The validation's same-person pairs and, beside them, look-alike strangers among the images of its pairs
    (as many as the same-person pairs at most), as rows into the same bank."""
    from train.data import PairSet

    rows = np.unique(np.concatenate([val.left, val.right]))
    grey = bank.pixels[rows].mean(axis=1).round().astype(np.uint8)  # the descriptor reads grey, whatever the input
    same = val.labels > 0.5
    strangers = lookalike_pairs([bank.paths[r] for r in rows], lbp_descriptors(grey), int(same.sum()))
    left = np.array([bank.index[p.left] for p in strangers], np.int64)
    right = np.array([bank.index[p.right] for p in strangers], np.int64)
    return PairSet(np.concatenate([val.left[same], left]), np.concatenate([val.right[same], right]),
                   np.r_[np.ones(int(same.sum()), np.float32), np.zeros(len(strangers), np.float32)])


def embedded_pairs(model: Model, cfg: TrainConfig, source: Source, pairs: list[Pair]
                   ) -> tuple[ImageBank, PairSet, np.ndarray]:
    """LFW pairs as the model's training read their images: the bank, the pairs as its rows, and the ONNX
    model's embedding of every image (each embedded once)."""
    from train.data import load_bank, pair_set
    from verify_cli.preprocess import normalize
    from verify_cli.scoring import embed_all

    bank = load_bank(source, sorted({p for pair in pairs for p in (pair.left, pair.right)}), cfg.preprocess, cfg.faces)
    return bank, pair_set(bank, pairs), embed_all(model, normalize(bank.pixels, cfg.preprocess))


def scored(model: Path | Model, data_root: Path, wanted: int | None = None
           ) -> tuple[float, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """An ONNX model's (a path, or one loaded) stored threshold, and its probabilities and truths on its run's
    random validation pairs (`wanted` of them, balanced, on request) and on look-alike strangers beside the same
    same-person pairs."""
    from train.config import training_config
    from train.data import open_source, validation_pairs
    from verify_cli.runtime import Model
    from verify_cli.scoring import score_pairs

    if not isinstance(model, Model):
        model = Model(model, provider="cpu")
    cfg = training_config(model)
    source = open_source(cfg, data_root)
    bank, random, embeddings = embedded_pairs(model, cfg, source, validation_pairs(cfg, source, wanted))
    return model.threshold, {name: (score_pairs(model, embeddings, pairs.left, pairs.right), pairs.labels > 0.5)
                             for name, pairs in (("random", random), ("lookalike", lookalike_set(bank, random)))}


def plot_tradeoff(threshold: float, found: dict[str, tuple[np.ndarray, np.ndarray]], title: str, path: Path) -> None:
    """What moving the threshold trades: look-alike strangers accepted against accuracy on random pairs, one point
    per threshold, the stored one marked (matplotlib, a build-time dependency)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from train.report import save_figure

    grid = np.linspace(0.02, 0.98, 49)
    (p_rand, y_rand), (p_alike, y_alike) = found["random"], found["lookalike"]
    accuracy = [np.mean((p_rand >= t) == y_rand) for t in grid]
    far = [np.mean(p_alike[~y_alike] >= t) for t in grid]
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.plot(far, accuracy, ".-", color="tab:blue", label="thresholds 0.02 ... 0.98")
    for t in (0.1, 0.3, 0.5, 0.7, 0.9):
        i = int(np.argmin(np.abs(grid - t)))
        ax.annotate(f"{t:g}", (far[i], accuracy[i]), textcoords="offset points", xytext=(4, -10), fontsize=8)
    stored = figures(p_alike, y_alike, threshold).far, float(np.mean((p_rand >= threshold) == y_rand))
    ax.plot(*stored, "o", color="tab:red", label=f"stored threshold {threshold:g}")
    ax.set(xlabel="look-alike strangers accepted (FAR, validation)", ylabel="accuracy on random validation pairs",
           title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    save_figure(fig, path, dpi=110)


LOOKALIKE_RULE = ("each held-out validation person's most alike stranger among the other held-out people, by "
                  "uniform LBP on a 4x4 grid of the model's input crop (train/lookalike.py), as many as the "
                  "same-person validation pairs at most")


def operating_record(threshold: float, found: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """What a threshold means, for a model's metadata: FAR and TAR on random and on look-alike validation
    strangers (`scored`'s probabilities and truths), with how the look-alikes were chosen."""
    return {"threshold": threshold, "lookalike_rule": LOOKALIKE_RULE,
            **{name: asdict(figures(p, y, threshold)) for name, (p, y) in found.items()}}


def operating_point(model_path: Path, data_root: Path, wanted: int | None = None) -> dict:
    """The operating point of an ONNX model's stored threshold (`operating_record`)."""
    return operating_record(*scored(model_path, data_root, wanted))


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    model: Annotated[Path, typer.Option(help="A faceverify ONNX model that carries its training configuration.")],
    data_root: DataRootOption = None,
    plot: Annotated[Path | None, typer.Option(help="Also draw the threshold's trade-off (look-alike FAR against "
                                                   "random-pair accuracy) to this PNG.")] = None,
) -> None:
    """Random and look-alike validation pairs side by side at the model's stored threshold, as JSON."""
    from verify_cli.lfw import resolve_data_root

    with entry_point():
        threshold, found = scored(model, resolve_data_root(data_root))
        if plot is not None:
            plot_tradeoff(threshold, found, f"{model.name}: what the threshold trades", plot)
    print(json.dumps({name: asdict(figures(p, y, threshold)) for name, (p, y) in found.items()}, indent=1))


if __name__ == "__main__":
    sys.exit(app())
