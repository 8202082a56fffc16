"""Training configuration: one typed dataclass and the named presets (the report's exp1..exp10 and ours)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

from models import ModelConfig
from verify_cli.errors import FaceverifyError
from verify_cli.preprocess import Preprocess


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; stored in every checkpoint so a run can be reproduced."""

    preset: str
    model: ModelConfig
    preprocess: Preprocess = field(default_factory=Preprocess)
    protocol: str = "restricted"  # "restricted": DevTrain pairs only; "unrestricted": DevTrain identities
    optimizer: str = "adamw"  # "sgd" or "adamw"
    lr: float = 1e-3
    momentum: float = 0.5  # sgd only
    weight_decay: float = 1e-2
    lr_decay: float = 0.99  # multiplied into the learning rate after every epoch (the report's 1%)
    schedule: str = "exponential"  # "exponential" (lr_decay per epoch) or "cosine" (to zero at max_epochs)
    batch_size: int = 32
    max_epochs: int = 200
    patience: int = 20  # stop after this many epochs without a better monitored validation figure
    monitor: str = "val_loss"  # "val_loss" (lower is better) or "val_auc" (higher is better)
    val_fraction: float = 0.1
    augment: bool = False  # Koch et al.'s affine distortions and horizontal flips, training batches only
    color: float = 0.0  # brightness, contrast and saturation jitter (1 +- color) and 10% grey, training only
    seed: int = 0
    # unrestricted protocol only
    identities_per_batch: int = 32
    images_per_identity: int = 4
    singletons_per_batch: int = 0  # images of one-image people added to each batch as extra CosFace classes
    margin: float = 0.35  # CosFace margin of the identity loss
    margin_scale: float = 30.0
    description: str = ""

    def as_dict(self) -> dict:
        """Plain dictionary for checkpoints (loadable with weights_only=True) and metadata."""
        data = asdict(self)
        data["model"] = self.model.as_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Inverse of `as_dict`."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["model"] = ModelConfig.from_dict(data["model"])
        values["preprocess"] = Preprocess(**data["preprocess"])
        return cls(**values)


_KOCH = ModelConfig()  # conv 64@10, 128@7, 128@4, 256@4; BatchNorm after pooling (the report's); linear 9216->4096
_SMALL = ModelConfig(channels=(32, 32, 32, 32), embedding=120, dropout=0.7)


def _report(n: int, description: str, model: ModelConfig, **kw) -> TrainConfig:
    base: dict = {"optimizer": "adamw", "batch_size": 64, "max_epochs": 200}
    base.update(kw)
    return TrainConfig(preset=f"exp{n}", model=model, description=description, **base)


PRESETS: dict[str, TrainConfig] = {
    c.preset: c
    for c in [
        _report(1, "Koch et al. without dropout, SGD", _KOCH, optimizer="sgd", lr=0.01),
        _report(2, "Koch et al. with dropout 0.7, SGD", replace(_KOCH, dropout=0.7), optimizer="sgd", lr=0.01),
        _report(3, "Koch et al. with dropout 0.7, AdamW", replace(_KOCH, dropout=0.7)),
        _report(4, "halved channels 32-64-64-128", replace(_KOCH, channels=(32, 64, 64, 128), dropout=0.7)),
        _report(
            5,
            "three conv layers 32-64-128",
            replace(_KOCH, channels=(32, 64, 128), kernels=(10, 7, 4), pools=(True, True, False), dropout=0.7),
        ),
        _report(6, "conv 32-32-32-64, dense 120", replace(_SMALL, channels=(32, 32, 32, 64))),
        _report(7, "conv 32-32-32-32, dense 120", _SMALL),
        _report(8, "conv 32x4, dense 32", replace(_SMALL, embedding=32)),
        _report(9, "exp8 with batch 32 (the report's chosen model)", replace(_SMALL, embedding=32), batch_size=32),
        _report(
            10, "exp9 with at most 50 epochs", replace(_SMALL, embedding=32), batch_size=32, max_epochs=50
        ),
    ]
}
PRESETS["fv-resnet"] = TrainConfig(
    preset="fv-resnet",
    description="residual tower, CosFace + pair loss on DevTrain identities, face crop, RGB 64x64",
    model=ModelConfig(
        tower="resnet", channels=(32, 64, 128, 256), blocks=(1, 1, 1, 1), embedding=128, head="cosine",
        input_size=64, input_channels=3, init="torch",
    ),
    preprocess=Preprocess(size=64, channels=3, crop=0.5, mean=0.5, std=0.5),
    protocol="unrestricted",
    optimizer="adamw",
    lr=2e-3,
    weight_decay=5e-2,
    schedule="cosine",
    max_epochs=40,
    patience=15,
    monitor="val_auc",
    augment=True,
)
PRESETS["fv-resnet-deep"] = replace(
    PRESETS["fv-resnet"],
    preset="fv-resnet-deep",
    description="fv-resnet with two blocks in the middle stages, one-image people as extra classes, 70 epochs",
    model=replace(PRESETS["fv-resnet"].model, blocks=(1, 2, 2, 1)),
    singletons_per_batch=24,
    max_epochs=70,
    patience=20,
)
PRESETS["fv-resnet-80"] = replace(
    PRESETS["fv-resnet"],
    preset="fv-resnet-80",
    description="fv-resnet on 80x80 inputs from a wider crop (0.55): more detail and a little hair and jaw",
    model=replace(PRESETS["fv-resnet"].model, input_size=80),
    preprocess=replace(PRESETS["fv-resnet"].preprocess, size=80, crop=0.55),
)
PRESETS["fv-flat"] = replace(
    PRESETS["fv-resnet-80"],
    preset="fv-flat",
    description="fv-resnet-80 with a flattened last feature map (BatchNorm, dropout 0.4, linear) as embedding",
    model=replace(PRESETS["fv-resnet-80"].model, pooling="flatten", dropout=0.4),
)
PRESETS["fv-flat-color"] = replace(
    PRESETS["fv-flat"],
    preset="fv-flat-color",
    description="fv-flat with lighting and colour jitter (0.3) and 10% grey training images",
    color=0.3,
)
PRESETS["fv-flat-50"] = replace(
    PRESETS["fv-flat"], preset="fv-flat-50", description="fv-flat with a 50-epoch cosine schedule", max_epochs=50
)
DEFAULT_PRESET = "fv-flat-50"


def get_preset(name: str) -> TrainConfig:
    """A preset by name, or one clear error listing the names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise FaceverifyError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
