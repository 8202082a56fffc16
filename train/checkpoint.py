"""Checkpoints and run files: written atomically, read with `torch.load(weights_only=True)`."""

from __future__ import annotations

import json
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from verify_cli.errors import FaceverifyError, first_line
from verify_cli.outputs import atomic_path, write_atomic

FORMAT = "faceverify-checkpoint/1"


def save(obj: dict[str, Any], path: str | os.PathLike) -> None:
    """Save a checkpoint dictionary atomically."""
    with atomic_path(path, make_parents=True) as tmp:
        torch.save(obj, tmp)


def save_json(obj: Any, path: str | os.PathLike) -> None:
    """Save JSON atomically."""
    write_atomic(path, (json.dumps(obj, indent=2) + "\n").encode(), make_parents=True)


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint safely (no code runs from the file), or raise one clear line."""
    path = Path(path)
    if not path.exists():
        raise FaceverifyError(f"{path}: no such checkpoint")
    if path.is_dir():
        raise FaceverifyError(f"{path}: is a directory, expected a checkpoint file")
    if path.stat().st_size == 0:
        raise FaceverifyError(f"{path}: empty checkpoint file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on an odd file would be extra lines before the error
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's own text here suggests weights_only=False, which would run code
        raise FaceverifyError(
            f"{path}: not a readable checkpoint (corrupt, not a PyTorch file, or holding objects beyond tensors "
            "and plain data)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a damaged file; all mean the same
        raise FaceverifyError(f"{path}: not a readable checkpoint ({first_line(exc, 160)})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or "model" not in obj or "config" not in obj:
        raise FaceverifyError(f"{path}: not a faceverify checkpoint (format {FORMAT} expected)")
    return obj
