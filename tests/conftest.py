"""Shared fixtures: the LFW data root (absent: tests that need it skip, or fail under CI=true) and a tiny run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from helpers import DATA_ROOT, HAVE_LFW, IN_CI


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under CI=true a missing data root fails the run at once: CI always has one, so green must mean tested."""
    if IN_CI and not HAVE_LFW:
        raise pytest.UsageError(f"CI=true but no LFW data root at {DATA_ROOT}: set FACEVERIFY_DATA or run `make data`")


@pytest.fixture(autouse=True)
def _torch_threads_put_back() -> Iterator[None]:
    """Tests that train in-process with --threads N set torch's thread count for the whole process; the figures
    of later in-process runs depend on it (runs compared bit for bit must run on as many threads), so each test
    leaves it as it found it."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The LFW data root; skips the test (with the reason) when there is none outside CI."""
    if not HAVE_LFW:
        pytest.skip(f"no LFW data root at {DATA_ROOT} (set FACEVERIFY_DATA or run `make data`)")
    return DATA_ROOT


@pytest.fixture(scope="session")
def lfw_images(data_root: Path) -> list[Path]:
    """A few real LFW images: two of one person, then two other people."""
    base = data_root / "lfw-py" / "lfw-deepfunneled"
    return [
        base / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg",
        base / "Aaron_Peirsol" / "Aaron_Peirsol_0002.jpg",
        base / "AJ_Cook" / "AJ_Cook_0001.jpg",
        base / "Marsha_Thomason" / "Marsha_Thomason_0001.jpg",
    ]


@pytest.fixture(scope="session")
def tiny_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished --dry-run training of the smallest report preset on real images: its run folder."""
    from train.__main__ import run

    run_dir = tmp_path_factory.mktemp("runs") / "exp9"
    run("exp9", data_root, run_dir, resume=False, epochs=2, seed=None, dry_run=True, threads=0)
    return run_dir


@pytest.fixture(scope="session")
def onnx_model(tiny_run: Path, data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny run's best.pt exported through the real export stage (dry-run parity on real pairs)."""
    from export import ExportConfig, export_model

    out = tmp_path_factory.mktemp("models") / "tiny.onnx"
    return export_model(tiny_run / "best.pt", out, data_root, ExportConfig(dry_run=True)).model_path
