"""Training configuration: one typed dataclass, checked on construction, and the table of named presets."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple

from models import ModelConfig
from models.siamese import check_input
from models.typed_config import Rules, check_fields, from_plain, show, with_overrides
from verify_cli import modelmeta
from verify_cli.errors import FaceverifyError
from verify_cli.preprocess import Preprocess

if TYPE_CHECKING:
    from verify_cli.runtime import Model

Protocol = Literal["restricted", "unrestricted"]  # DevTrain pairs only, or DevTrain identities
Faces = Literal["funneled", "aligned"]  # LFW's deep-funneled crop, or each face found and aligned as serving does


VIEW2_FOLDS = 10  # LFW View 2's person-disjoint folds (pairs.txt)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; stored in every checkpoint so a run can be reproduced."""

    preset: str
    model: ModelConfig = field(default_factory=ModelConfig)  # its input is `preprocess`'s channels and size
    preprocess: Preprocess = field(default_factory=Preprocess)
    faces: Faces = "funneled"  # how an LFW image becomes pixels before `preprocess` (train/faces.py)
    data: str = "lfw"  # what trains: LFW View 1, or "imagefolder:/abs/path" (train/folder.py; python -m train --data)
    protocol: Protocol = "restricted"
    # 0: View 1 (DevTrain trains and validates, DevTest tests). k in 1..10 (unrestricted protocol): View 2's fold k
    # tests (its 600 pairs of pairs.txt); the people named in the other nine folds' pairs, with all their images,
    # train and validate; people named in no pair of pairs.txt are left out (they belong to no fold)
    view2_fold: int = 0
    optimizer: Literal["sgd", "adamw"] = "adamw"
    lr: float = 1e-3
    momentum: float = 0.5  # sgd only
    nesterov: bool = False  # sgd only
    weight_decay: float = 1e-2
    lr_decay: float = 0.99  # multiplied into the learning rate after every epoch (the report's 1%)
    # lr_decay per epoch; cosine to zero at max_epochs; or one cycle over every step of max_epochs (up to `lr` in
    # the first 30%, then cosine down to lr / 25e4: torch's OneCycleLR, momentum held at `momentum`)
    schedule: Literal["exponential", "cosine", "onecycle"] = "exponential"
    batch_size: int = 32  # restricted only: pairs per step
    max_epochs: int = 200
    patience: int = 20  # stop after this many epochs without a better monitored validation figure
    # lower is better, or higher is better; val_auc_mean: the mean of the validation ROC AUCs on random and on
    # look-alike strangers (train/lookalike.py), so that the checkpoint chosen also separates people who look alike
    monitor: Literal["val_loss", "val_auc", "val_auc_mean"] = "val_loss"
    val_fraction: float = 0.1
    augment: bool = False  # Koch et al.'s affine distortions and horizontal flips, training batches only
    shift: int = 0  # random translation of up to +-shift input pixels and a horizontal flip, training batches only
    color: float = 0.0  # brightness, contrast and saturation jitter (1 +- color) and 10% grey, training only
    erase: float = 0.0  # probability of random erasing (one noise rectangle, 2-25% of the image), training only
    seed: int = 0
    # bf16: training steps run under bfloat16 autocast (weights, losses, validation, calibration and threshold
    # stay float32): faster per step on CPUs with AVX-512 BF16 or AMX, slower than fp32 where bfloat16 is emulated
    # (docs/research.md, "Training precision"). auto: bf16 where the device computes it natively, else fp32 (verify_cli.cpu.training_precision);
    # a run records the precision it resolved to
    precision: Literal["auto", "fp32", "bf16"] = "fp32"
    ema: float = 0.0  # decay of an exponential moving average of the weights (buffers too), updated every step;
    # when > 0 the average is what is validated, kept in best.pt and exported
    # unrestricted protocol only
    identities_per_batch: int = 32
    images_per_identity: int = 4
    singletons_per_batch: int = 0  # images of one-image people added to each batch as extra CosFace classes
    # 0: each batch's people drawn at random; k >= 2: drawn in groups of k people who look alike to the network
    # (a random person and the k-1 others nearest to them by their CosFace class weights, each person once an epoch),
    # so that the pair loss meets strangers who are close, as users' comparisons do
    neighbours: int = 0
    margin: float = 0.35  # CosFace margin of the identity loss
    margin_scale: float = 30.0
    description: str = ""

    RULES: ClassVar[Rules] = {
        "lr": (lambda v: v > 0, "> 0"),
        "momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
        "weight_decay": (lambda v: v >= 0, ">= 0"),
        "lr_decay": (lambda v: 0 < v <= 1, "in (0, 1]"),
        "batch_size": (lambda v: v >= 1, ">= 1"),
        "max_epochs": (lambda v: v >= 1, ">= 1"),
        "patience": (lambda v: v >= 1, ">= 1"),
        "val_fraction": (lambda v: 0 < v < 1, "in (0, 1)"),
        "color": (lambda v: 0 <= v < 1, "in [0, 1)"),
        "erase": (lambda v: 0 <= v <= 1, "in [0, 1]"),
        "shift": (lambda v: v >= 0, ">= 0"),
        "ema": (lambda v: 0 <= v < 1, "in [0, 1)"),
        "seed": (lambda v: v >= 0, ">= 0"),
        "identities_per_batch": (lambda v: v >= 1, ">= 1"),
        "images_per_identity": (lambda v: v >= 2, ">= 2 (a batch needs same-person pairs)"),
        "singletons_per_batch": (lambda v: v >= 0, ">= 0"),
        "neighbours": (lambda v: v == 0 or v >= 2, "0 (random batches) or >= 2"),
        "view2_fold": (lambda v: 0 <= v <= VIEW2_FOLDS, f"0 (View 1) or a fold 1..{VIEW2_FOLDS} of View 2"),
        "margin": (lambda v: 0 <= v < 1, "in [0, 1)"),
        "margin_scale": (lambda v: v > 0, "> 0"),
    }

    def __post_init__(self) -> None:
        check_fields(self, "", self.RULES)
        if self.data != "lfw":
            if not self.data.startswith("imagefolder:"):
                raise FaceverifyError(f"data must be lfw or imagefolder:PATH, got {self.data!r}")
            if self.protocol != "unrestricted" or self.faces != "aligned":
                raise FaceverifyError(f"an image folder trains identities on faces found as serving finds them "
                                      f"(protocol unrestricted, faces aligned); preset {self.preset} has protocol "
                                      f"{self.protocol}, faces {self.faces}: choose an unrestricted preset such as "
                                      "fv-plain")
        check_input(self.model, self.preprocess)
        if self.view2_fold and (self.protocol != "unrestricted" or self.data != "lfw"):
            raise FaceverifyError(f"view2_fold={self.view2_fold} trains LFW identities: it needs protocol unrestricted "
                                  f"and data lfw (preset {self.preset} has {self.protocol}, {self.data})")
        if self.neighbours and self.identities_per_batch % self.neighbours:
            raise FaceverifyError(f"neighbours={self.neighbours} must divide identities_per_batch="
                                  f"{self.identities_per_batch}: a batch holds whole groups of look-alike people")

    def as_dict(self) -> dict:
        """Plain dictionary for checkpoints (loadable with weights_only=True) and metadata."""
        data = asdict(self)
        data["model"] = self.model.as_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Inverse of `as_dict`; an unknown key is an error, a retired one is accepted only at its bound value."""
        cfg, unknown = from_plain(cls, data)
        for key, value in unknown.items():
            if key not in RETIRED:
                raise FaceverifyError(
                    f"checkpoint configuration has an unknown key {key!r} (written by another version of faceverify?)"
                )
            bound, why = RETIRED[key]
            if value != bound(cfg):
                raise FaceverifyError(
                    f"checkpoint configuration: {key}={value!r} can no longer be loaded ({why}; "
                    f"only {bound(cfg)!r} is accepted)"
                )
        return cfg


# Fields that older checkpoints hold and this version dropped: each loads only at the value it is bound to now.
# model.pooling: the residual tower's, retired with it; every checkpoint and model written before (the bundled model,
# the report's experiment runs) holds "avg", which no tower read
RETIRED: dict[str, tuple[Callable[[TrainConfig], Any], str]] = {
    "model.pooling": (lambda cfg: "avg", "only the retired residual tower read it"),
}


class PresetRow(NamedTuple):
    """One named preset: its parent (None: the TrainConfig defaults, Koch et al.'s network) and what it changes."""

    name: str
    parent: str | None
    changes: dict[str, Any]
    description: str


_KOCH_SMALL = (32, 32, 32, 32)
# the presets kept: the report's experiments, what users train with and the shipped recipe; the others, kept only as
# a record, are in git tag research-record (docs/presets.md)
PRESET_ROWS: list[PresetRow] = [
    # the report's ten experiments (restricted protocol, 105x105 grayscale, BatchNorm after pooling)
    PresetRow("exp1", None, {"optimizer": "sgd", "lr": 0.01, "batch_size": 64}, "Koch et al. without dropout, SGD"),
    PresetRow("exp2", "exp1", {"model.dropout": 0.7}, "Koch et al. with dropout 0.7, SGD"),
    PresetRow("exp3", "exp2", {"optimizer": "adamw", "lr": 1e-3}, "Koch et al. with dropout 0.7, AdamW"),
    PresetRow("exp4", "exp3", {"model.channels": (32, 64, 64, 128)}, "halved channels 32-64-64-128"),
    PresetRow("exp5", "exp3", {"model.channels": (32, 64, 128), "model.kernels": (10, 7, 4),
                               "model.pools": (True, True, False)}, "three conv layers 32-64-128"),
    PresetRow("exp6", "exp3", {"model.channels": (32, 32, 32, 64), "model.embedding": 120}, "conv 32-32-32-64, dense 120"),
    PresetRow("exp7", "exp6", {"model.channels": _KOCH_SMALL}, "conv 32-32-32-32, dense 120"),
    PresetRow("exp8", "exp7", {"model.embedding": 32}, "conv 32x4, dense 32"),
    PresetRow("exp9", "exp8", {"batch_size": 32}, "exp8 with batch 32 (the report's chosen model)"),
    PresetRow("exp10", "exp9", {"max_epochs": 50}, "exp9 with at most 50 epochs"),
    # issue 13's plain reference (a VGG-style tower on a tight grey crop, CosFace, SGD one-cycle), trained longer in bf16
    PresetRow("fv-plain", None, {
        "model.tower": "plain", "model.channels": (32, 64, 128, 256), "model.blocks": (2, 2, 2, 2),
        "model.embedding": 128, "model.head": "cosine", "model.init": "torch", "model.flip_average": True,
        "preprocess.size": 64, "preprocess.crop": 0.48, "preprocess.mean": 0.5,
        "preprocess.std": 0.5, "protocol": "unrestricted", "optimizer": "sgd", "nesterov": True, "momentum": 0.9,
        "lr": 0.1, "weight_decay": 5e-4, "schedule": "onecycle", "max_epochs": 60, "patience": 60,
        "monitor": "val_auc", "shift": 4, "identities_per_batch": 24, "singletons_per_batch": 32, "precision": "auto",
    }, "plain tower 32-64-128-256 (two 3x3 convolutions per stage), 64x64 grey from a 0.48 crop, shift 4 and mirror, "
       "CosFace + pair loss over every DevTrain person, SGD Nesterov one-cycle to 0.1 over 60 epochs, bf16 where the "
       "CPU or GPU computes it natively (else fp32), "
       "mirror-averaged embedding"),
    PresetRow("fv-patches", "fv-plain", {
        "preprocess.size": 80, "preprocess.crop": 0.50, "model.patches": (1.0, 0.8), "model.patch_size": 64,
        "margin": 0.15, "margin_scale": 20.0,
    }, "fv-plain as two branches of one tower, 64 embedding numbers each: one on the whole 0.50 crop (64 px), one "
       "on its central 0.40 (fv-tight's view, 64 px), each trained with its own CosFace (margin 0.15, scale 20) and "
       "pair loss; the cosine of two faces is the mean of the branches'"),
]
DEFAULT_PRESET = "fv-patches"


def _build_presets(rows: list[PresetRow]) -> dict[str, TrainConfig]:
    """Each row applied to its parent (defined above it), in table order."""
    presets: dict[str, TrainConfig] = {}
    for row in rows:
        base = presets[row.parent] if row.parent else TrainConfig(preset=row.name)
        presets[row.name] = with_overrides(replace(base, preset=row.name, description=row.description), row.changes)
    return presets


PRESETS: dict[str, TrainConfig] = _build_presets(PRESET_ROWS)


def get_preset(name: str) -> TrainConfig:
    """A preset by name ("default" is DEFAULT_PRESET), or one clear error listing the names."""
    try:
        return PRESETS[DEFAULT_PRESET if name == "default" else name]
    except KeyError:
        raise FaceverifyError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def describe_changes(row: PresetRow) -> str:
    """A row's changes as `key=value` lines, the way `--set` takes them."""
    return "\n".join(f"{key}={show(value)}" for key, value in row.changes.items())


def training_config(model: Model) -> TrainConfig:
    """The training configuration the model carries, from which its validation split is rebuilt."""
    text = model.info.props.get(modelmeta.K_TRAINING)
    if text is None:
        raise FaceverifyError(f"{model.path}: no {modelmeta.K_TRAINING} metadata; its validation pairs cannot be rebuilt")
    try:
        cfg = TrainConfig.from_dict(json.loads(text))
    except FaceverifyError as exc:
        raise FaceverifyError(f"{model.path}: {exc.message}") from None
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise FaceverifyError(f"{model.path}: {modelmeta.K_TRAINING} unreadable ({type(exc).__name__}: {exc})") from None
    if cfg.preprocess != model.info.preprocess:
        raise FaceverifyError(f"{model.path}: its training configuration and its metadata preprocess differently")
    return cfg
