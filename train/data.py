"""Training data: LFW images decoded once into memory, pair sets, the protocol splits and augmentation."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from train.config import Faces, TrainConfig
from train.faces import lfw_pixels
from train.folder import PREFIX as FOLDER_PREFIX
from train.folder import SMOKE_PEOPLE, ImageFolder
from verify_cli.errors import FaceverifyError
from verify_cli.lfw import LFWRoot, Pair, person_of
from verify_cli.preprocess import Preprocess, normalize

SMOKE_PAIRS = 12  # pairs per class and split in --dry-run mode
# mined validation pairs per class from the held-out people (on top of their pairsDevTrain pairs): enough that the
# pair draw adds little noise (the images are embedded once each, so more pairs cost almost nothing)
VAL_PAIRS_PER_CLASS = 2000


@dataclass
class ImageBank:
    """Every image a run needs, decoded and prepared once: uint8 (N, C, H, W) and a path -> row index."""

    paths: list[str]
    pixels: np.ndarray
    no_face: list[str] = field(default_factory=list)  # faces="aligned": images read with the fixed centre crop

    def __post_init__(self) -> None:
        self.index = {p: i for i, p in enumerate(self.paths)}

    def batch(self, rows: np.ndarray, spec: Preprocess) -> torch.Tensor:
        """Model input for some rows, normalised exactly as at serving time."""
        return torch.from_numpy(normalize(self.pixels[rows], spec))


def load_bank(source: Source, relpaths: list[str], spec: Preprocess, faces: Faces, workers: int = 4) -> ImageBank:
    """Decode, find faces (`faces`) and prepare images in a thread pool (Pillow and ONNX Runtime release the GIL)."""
    paths = sorted(set(relpaths))
    with ThreadPoolExecutor(workers) as pool:
        read = list(pool.map(lambda p: lfw_pixels(source.image(p), spec, faces), paths))
    pixels = np.stack([array for array, _ in read]) if read else np.zeros((0, spec.channels, spec.size, spec.size), np.uint8)
    return ImageBank(paths, pixels, [p for p, (_, missed) in zip(paths, read) if missed])


@dataclass(frozen=True)
class PairSet:
    """Pairs as rows into an ImageBank, with labels (1 = same person)."""

    left: np.ndarray
    right: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.size)


def pair_set(bank: ImageBank, pairs: list[Pair]) -> PairSet:
    """Index pairs into a bank."""
    return PairSet(
        np.array([bank.index[p.left] for p in pairs], dtype=np.int64),
        np.array([bank.index[p.right] for p in pairs], dtype=np.int64),
        np.array([p.same for p in pairs], dtype=np.float32),
    )


def split_pairs(pairs: list[Pair], val_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """The restricted protocol's split: a seeded random permutation, the last `val_fraction` validates."""
    order = np.random.default_rng(seed).permutation(len(pairs))
    n_val = round(len(pairs) * val_fraction)
    return [pairs[i] for i in order[: len(pairs) - n_val]], [pairs[i] for i in order[len(pairs) - n_val :]]


def split_people(people: list[str], val_fraction: float, seed: int) -> tuple[set[str], set[str]]:
    """The unrestricted protocol's split: a seeded tenth of the people validates, disjoint from training."""
    order = np.random.default_rng(seed).permutation(len(people))
    n_val = round(len(people) * val_fraction)
    ordered = [sorted(people)[i] for i in order]
    return set(ordered[n_val:]), set(ordered[:n_val])


def smoke_subset(pairs: list[Pair], per_class: int = SMOKE_PAIRS) -> list[Pair]:
    """A handful of pairs of each class, for --dry-run."""
    return [p for p in pairs if p.same][:per_class] + [p for p in pairs if not p.same][:per_class]


def pairs_within(pairs: list[Pair], people: set[str]) -> list[Pair]:
    """The pairs whose people all belong to a set."""
    return [p for p in pairs if all(name in people for name in p.people)]


def batches(n: int, batch_size: int, generator: torch.Generator | None) -> Iterator[np.ndarray]:
    """Row indices in batches; shuffled when a generator is given."""
    order = torch.randperm(n, generator=generator).numpy() if generator is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def identity_steps(labels: np.ndarray, per_batch: int) -> int:
    """Batches in an epoch of `identity_batches`: each identity with two or more images once."""
    _, counts = np.unique(labels, return_counts=True)
    return max(1, math.ceil(int((counts >= 2).sum()) / per_batch))


def neighbour_order(vectors: np.ndarray, group: int, generator: torch.Generator) -> np.ndarray:
    """An order of the rows of `vectors` in consecutive groups of `group`: a random row not yet taken, then the
    `group` - 1 rows not yet taken that are nearest to it by cosine (fewer in the last group)."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)
    similarity = unit @ unit.T
    free = np.ones(len(unit), bool)
    order: list[int] = []
    for seed in torch.randperm(len(unit), generator=generator).tolist():
        if not free[seed]:
            continue
        free[seed] = False
        others = np.flatnonzero(free)
        nearest = others[np.argsort(-similarity[seed, others], kind="stable")[: group - 1]]
        free[nearest] = False
        order += [seed, *nearest.tolist()]
    return np.array(order, dtype=np.int64)


def identity_batches(
    labels: np.ndarray, per_batch: int, per_identity: int, generator: torch.Generator, singletons: int = 0,
    neighbours: int = 0, class_vectors: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """P identities x K images per batch, plus `singletons` images of people with one image (extra classes).

    With `neighbours` >= 2 the P identities come in groups of that many whose `class_vectors` rows (one per label)
    are near (`neighbour_order`); else in random order.
    """
    rows_of: dict[int, np.ndarray] = {}
    for ident in np.unique(labels):
        rows_of[int(ident)] = np.flatnonzero(labels == ident)
    multi = [i for i, rows in rows_of.items() if rows.size >= 2]
    single = np.array([rows[0] for rows in rows_of.values() if rows.size == 1], dtype=np.int64)
    if neighbours and class_vectors is not None:
        order = neighbour_order(class_vectors[multi], neighbours, generator)
    else:
        order = torch.randperm(len(multi), generator=generator).numpy()
    single_order = torch.randperm(single.size, generator=generator).numpy() if singletons else np.zeros(0, np.int64)
    for step in range(identity_steps(labels, per_batch)):
        chosen = [multi[j] for j in order[step * per_batch : (step + 1) * per_batch]]
        rows = []
        for ident in chosen:
            own = rows_of[ident]
            pick = torch.randperm(own.size, generator=generator).numpy()[:per_identity]
            rows.extend(own[pick].tolist())
        rows.extend(single[single_order[step * singletons : (step + 1) * singletons]].tolist())
        yield np.array(rows, dtype=np.int64)


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    """n draws from the uniform distribution on [low, high)."""
    return low + (high - low) * torch.rand(n, generator=generator)


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Koch et al.'s affine distortions (rotation +-10 deg, shear +-0.3, scale 0.8-1.2, shift +-2 px) and flips."""
    n, _, h, w = x.shape
    uniform = partial(_uniform, n, generator=generator)

    angle = uniform(-10, 10) * math.pi / 180
    shear = uniform(-0.3, 0.3)
    scale = uniform(0.8, 1.2)
    tx, ty = uniform(-2, 2) * 2 / w, uniform(-2, 2) * 2 / h
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # inverse map (output -> input coordinates): rotation @ shear @ scale, with an optional mirror in x
    a11, a12 = cos / scale, (cos * shear - sin) / scale
    a21, a22 = sin / scale, (sin * shear + cos) / scale
    theta = torch.stack([torch.stack([a11 * flip, a12, tx], 1), torch.stack([a21 * flip, a22, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid.to(x.device), mode="bilinear", padding_mode="border", align_corners=False)


def shift_and_flip(x: torch.Tensor, generator: torch.Generator, pixels: int) -> torch.Tensor:
    """Each image moved by a random whole number of pixels in [-pixels, pixels] on each axis (edges repeated), and
    mirrored with probability 1/2."""
    n, _, h, w = x.shape
    dx, dy = (torch.randint(-pixels, pixels + 1, (2, n), generator=generator) if pixels else torch.zeros(2, n, dtype=torch.long))
    flip = torch.rand(n, generator=generator) < 0.5
    cols = (torch.arange(w).view(1, w) - dx.view(n, 1)).clamp(0, w - 1)
    cols = torch.where(flip.view(n, 1), cols.flip(1), cols)
    rows = (torch.arange(h).view(1, h) - dy.view(n, 1)).clamp(0, h - 1)
    index = torch.arange(n).view(n, 1, 1)
    return x.permute(0, 2, 3, 1)[index, rows.view(n, h, 1), cols.view(n, 1, w)].permute(0, 3, 1, 2).contiguous()


def random_erase(x: torch.Tensor, generator: torch.Generator, p: float, spec: Preprocess) -> torch.Tensor:
    """Random erasing (Zhong et al. 2020): with probability `p` an image gets one rectangle, 2-25% of its area with
    aspect ratio 0.3-3.3, filled with uniform noise over the pixel range (as `spec` scales it)."""
    n, _, h, w = x.shape
    uniform = partial(_uniform, n, generator=generator)

    area, aspect = uniform(0.02, 0.25) * h * w, torch.exp(uniform(math.log(0.3), math.log(3.3)))
    eh = torch.sqrt(area * aspect).round().clamp(1, h).long()
    ew = torch.sqrt(area / aspect).round().clamp(1, w).long()
    top = (torch.rand(n, generator=generator) * (h - eh + 1)).long()
    left = (torch.rand(n, generator=generator) * (w - ew + 1)).long()
    chosen = torch.rand(n, generator=generator) < p
    ys, xs = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    inside = ((ys >= top.view(n, 1, 1)) & (ys < (top + eh).view(n, 1, 1))
              & (xs >= left.view(n, 1, 1)) & (xs < (left + ew).view(n, 1, 1)) & chosen.view(n, 1, 1))
    noise = ((torch.rand(x.shape, generator=generator) - spec.mean) / spec.std).to(x.dtype)
    return torch.where(inside.unsqueeze(1).to(x.device), noise.to(x.device), x)


def photometric(x: torch.Tensor, generator: torch.Generator, strength: float) -> torch.Tensor:
    """Lighting and colour jitter: brightness, contrast and saturation each scaled by 1 +- strength, and one
    image in ten turned grey (LFW mixes colour and grey photos taken under every kind of light)."""
    n = x.shape[0]

    def factor() -> torch.Tensor:
        return (1 + strength * (2 * torch.rand(n, generator=generator) - 1)).to(x.dtype).view(n, 1, 1, 1)

    brightness, contrast, saturation = factor(), factor(), factor()
    grey_out = (torch.rand(n, generator=generator) < 0.1).to(x.dtype).view(n, 1, 1, 1)
    grey = x.mean(1, keepdim=True)
    x = grey + saturation * (1 - grey_out) * (x - grey)
    mean = x.mean((1, 2, 3), keepdim=True)
    x = mean + contrast * (x - mean)
    return x + (brightness - 1)  # inputs are scaled around zero, so brightness is an offset


@dataclass(frozen=True)
class Identities:
    """The unrestricted protocol's training data: bank rows of the training people's images, and whose each is."""

    rows: np.ndarray
    labels: np.ndarray  # identity 0..classes-1 of each row


@dataclass
class Data:
    """What one training run reads: the bank, what trains (pairs or identities), what validates, and DevTest."""

    bank: ImageBank
    train: PairSet | Identities
    val: PairSet
    test: PairSet | None  # DevTest: decoded only when it is to be reported


@dataclass(frozen=True)
class Splits:
    """A protocol's pair lists (image paths only, nothing decoded): what trains, validates and reports."""

    train: list[Pair]  # restricted: the training pairs; unrestricted: none (identities train)
    val: list[Pair]
    test: list[Pair]
    people: dict[str, list[str]]  # unrestricted: training people -> their images; restricted: none


Source = LFWRoot | ImageFolder  # where a run's images come from (TrainConfig.data): LFW, or your own people


def open_source(cfg: TrainConfig, data_root: str | os.PathLike) -> Source:
    """The images a run trained on: its image folder (`data` imagefolder:PATH), else LFW at `data_root`."""
    if cfg.data.startswith(FOLDER_PREFIX):
        return ImageFolder.from_spec(cfg.data)
    return LFWRoot.open(data_root)


def protocol_splits(cfg: TrainConfig, source: Source, smoke: bool = False) -> Splits:
    """The splits of a run's protocol, seeded; training and export both rebuild the validation pairs from here."""
    if isinstance(source, ImageFolder):
        return folder_splits(cfg, source.subset(SMOKE_PEOPLE) if smoke else source)
    lfw = source
    if cfg.view2_fold:
        return view2_splits(cfg, lfw, smoke)
    dev_train, dev_test = lfw.pairs("train"), lfw.pairs("test")
    if smoke:
        dev_train, dev_test = smoke_subset(dev_train, 2 * SMOKE_PAIRS), smoke_subset(dev_test)
    if cfg.protocol == "restricted":
        train_pairs, val_pairs = split_pairs(dev_train, cfg.val_fraction, cfg.seed)
        return Splits(train_pairs, val_pairs, dev_test, {})
    counts = lfw.people("train")
    if smoke:
        counts = {n: counts[n] for n in sorted({n for p in dev_train for n in p.people})}
    people = {name: lfw.person_images(name, count) for name, count in counts.items()}
    train_people, val_people = split_people(list(people), cfg.val_fraction, cfg.seed)
    val_pairs = pairs_within(dev_train, val_people) + mined_pairs(people, val_people, cfg.seed)
    return Splits([], val_pairs, dev_test, {name: people[name] for name in sorted(train_people)})


def view2_splits(cfg: TrainConfig, lfw: LFWRoot, smoke: bool = False) -> Splits:
    """View 2's unrestricted protocol for fold `cfg.view2_fold`: its pairs test; the people named in the other
    folds' pairs (all their images, per lfw-names.txt) train, a seeded tenth of them validates (their pairs of
    the other folds and mined pairs), as View 1's DevTrain people do. The folds are person-disjoint; a person
    named in fold k is never trained on, whatever other fold names them too."""
    pairs = lfw.pairs("10fold")
    test = [p for p in pairs if p.fold == cfg.view2_fold - 1]
    rest = [p for p in pairs if p.fold != cfg.view2_fold - 1]
    if not test:
        raise FaceverifyError(f"view2_fold={cfg.view2_fold}: {lfw.pairs_path('10fold')} has no such fold")
    if smoke:
        test, rest = smoke_subset(test), smoke_subset(rest, 2 * SMOKE_PAIRS)
    tested = {name for p in test for name in p.people}
    counts = lfw.people("all")
    names = sorted({name for p in rest for name in p.people} - tested)
    people = {name: lfw.person_images(name, counts[name]) for name in names}
    train_people, val_people = split_people(names, cfg.val_fraction, cfg.seed)
    val_pairs = pairs_within(rest, val_people) + mined_pairs(people, val_people, cfg.seed)
    return Splits([], val_pairs, test, {name: people[name] for name in sorted(train_people)})


def validation_pairs(cfg: TrainConfig, source: Source, wanted: int | None = None) -> list[Pair]:
    """A run's validation pairs, rebuilt from its configuration as training built them (export, int8 and the
    look-alike figures read them); a balanced subset of `wanted` pairs on request."""
    pairs = protocol_splits(cfg, source).val
    if wanted is not None and wanted < len(pairs):
        pairs = smoke_subset(pairs, math.ceil(wanted / 2))[:wanted]
    return pairs


def folder_splits(cfg: TrainConfig, folder: ImageFolder) -> Splits:
    """An image folder's split: a seeded tenth of its people validates (pairs mined among them), no test pairs."""
    train_people, val_people = split_people(list(folder.people), cfg.val_fraction, cfg.seed)
    val_pairs = mined_pairs(folder.people, val_people, cfg.seed)
    if not any(p.same for p in val_pairs) or all(p.same for p in val_pairs):
        raise FaceverifyError(
            f"{folder.root}: the {len(val_people)} held-out people (val_fraction {cfg.val_fraction}) make no "
            "same-person or no different-person validation pair; add people, or hold out more with "
            "--set val_fraction=...")
    return Splits([], val_pairs, [], {name: folder.people[name] for name in sorted(train_people)})


def make_data(cfg: TrainConfig, source: Source, smoke: bool = False, with_test: bool = False) -> Data:
    """Decode what a run trains and validates on; DevTest's images only `with_test` (for the final report)."""
    splits = protocol_splits(cfg, source, smoke)
    pairs = splits.train + splits.val + (splits.test if with_test else [])
    pair_images = [p for pair in pairs for p in (pair.left, pair.right)]
    train_images = [img for images in splits.people.values() for img in images]
    bank = load_bank(source, train_images + pair_images, cfg.preprocess, cfg.faces)
    test = pair_set(bank, splits.test) if with_test else None
    if cfg.protocol == "restricted":
        return Data(bank, pair_set(bank, splits.train), pair_set(bank, splits.val), test)
    ident = {name: i for i, name in enumerate(splits.people)}
    train = Identities(np.array([bank.index[p] for p in train_images], dtype=np.int64),
                       np.array([ident[person_of(p)] for p in train_images], dtype=np.int64))
    return Data(bank, train, pair_set(bank, splits.val), test)


def mined_pairs(people: dict[str, list[str]], among: set[str], seed: int,
                per_class: int = VAL_PAIRS_PER_CLASS) -> list[Pair]:
    """Extra validation pairs from held-out people: matched pairs of people with 2+ images, random mismatches."""
    rng = np.random.default_rng(seed + 1)
    names = sorted(among)
    multi = [n for n in names if len(people[n]) >= 2]
    matched: set[tuple[str, str]] = set()
    for _ in range(per_class * 20):
        if len(matched) >= per_class or not multi:
            break
        name = multi[rng.integers(len(multi))]
        i, j = sorted(rng.choice(len(people[name]), 2, replace=False))
        matched.add((people[name][i], people[name][j]))
    mismatched: set[tuple[str, str]] = set()
    for _ in range(per_class * 20):
        if len(mismatched) >= len(matched) or len(names) < 2:
            break
        a, b = rng.choice(len(names), 2, replace=False)
        na, nb = names[a], names[b]
        i, j = rng.integers(len(people[na])), rng.integers(len(people[nb]))
        mismatched.add((people[na][i], people[nb][j]))
    return [Pair(a, b, True) for a, b in sorted(matched)] + [Pair(a, b, False) for a, b in sorted(mismatched)]
