"""What is measured: the ONNX model, the checkpoint holding the same weights, and real LFW images to feed them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from verify_cli import modelmeta
from verify_cli.errors import FaceverifyError
from verify_cli.lfw import LFWRoot
from verify_cli.runtime import Model, bundled_model_path

if TYPE_CHECKING:
    from verify_cli.scoring import FaceReader

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Subject:
    """The model both runtimes run: the ONNX file, the checkpoint it came from, and its preset."""

    model: Path
    checkpoint: Path | None  # None: not needed by the sections chosen and not found (no PyTorch side)
    preset: str
    bundled: bool  # the model shipped in verify_cli/assets
    exported_here: bool  # exported by the benchmark from the checkpoint (no bundled model yet)


def shown(path: Path) -> str:
    """A path as the report prints it: relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def checkpoint_candidates(preset: str | None) -> list[Path]:
    """Where a preset's training run keeps its best checkpoint: runs/<preset>/best.pt, then runs/default/."""
    from train.config import DEFAULT_PRESET

    names = [preset] if preset else []
    if preset in (None, DEFAULT_PRESET, "default"):
        names += [DEFAULT_PRESET, "default"]
    return [REPO / "runs" / name / "best.pt" for name in dict.fromkeys(names)]


def _find_checkpoint(preset: str | None) -> Path | None:
    return next((path for path in checkpoint_candidates(preset) if path.is_file()), None)


def _no_checkpoint(preset: str | None) -> FaceverifyError:
    tried = ", ".join(str(p.relative_to(REPO)) for p in checkpoint_candidates(preset))
    return FaceverifyError(
        f"no checkpoint for preset {preset or '(unknown)'} (tried {tried}); pass --checkpoint RUN/best.pt, "
        "the run the ONNX model was exported from (the PyTorch side must run the same weights)"
    )


def resolve(model: Path | None, checkpoint: Path | None, data_root: Path, workdir: Path,
            need_checkpoint: bool = True) -> Subject:
    """The model given, else the bundled one, else one exported into `workdir` from the checkpoint.

    Without `need_checkpoint` a missing checkpoint is no error for a model given or bundled (checkpoint None).
    """
    bundled = model is None and bundled_model_path().is_file()
    if model is None and bundled:
        model = bundled_model_path()
    if model is not None:
        preset = Model(model, provider="cpu").info.props.get(modelmeta.K_PRESET)
        found = checkpoint or _find_checkpoint(preset)
        if found is None and need_checkpoint:
            raise _no_checkpoint(preset)
        return Subject(model, found, preset or "unknown", bundled, False)
    from export import ExportConfig, export_model
    from train import checkpoint as ckpt

    checkpoint = checkpoint or _find_checkpoint(None)
    if checkpoint is None:
        raise _no_checkpoint(None)
    preset = str(ckpt.load(checkpoint)["config"]["preset"])
    out = export_model(checkpoint, workdir / "faceverify.onnx", data_root, ExportConfig(dry_run=True)).model_path
    return Subject(out, checkpoint, preset, False, True)


def cli_reader(model: Model, detect: bool = True) -> FaceReader:
    """How the CLI reads faces by default (found and aligned, the largest), or with --no-detect (the fixed crop)."""
    from verify_cli.cli.options import face_reader

    return face_reader(model, not detect, "largest", None)


def real_images(lfw: LFWRoot, model: Model, count: int, reader: FaceReader | None = None) -> np.ndarray:
    """The first `count` distinct DevTest images as the CLI's `reader` makes them model input (default: faces
    detected and aligned): float32 (count, C, H, W)."""
    keys: list[str] = []
    for pair in lfw.pairs("test"):
        for key in (pair.left, pair.right):
            if key not in keys:
                keys.append(key)
        if len(keys) >= count:
            break
    reader = reader or cli_reader(model)
    return np.stack([reader.input(lfw.image(k))[0] for k in keys[:count]])


def pairs_subset(lfw: LFWRoot, per_class: int, dest: Path) -> Path:
    """A View 1 pairs file with the first `per_class` matched and mismatched DevTest pairs (for --quick)."""
    lines = lfw.pairs_path("test").read_text().splitlines()
    total = int(lines[0])
    body = lines[1:1 + per_class] + lines[1 + total:1 + total + per_class]
    dest.write_text("\n".join([str(per_class), *body]) + "\n")
    return dest
