"""Training reads faces as serving does when asked (TrainConfig.faces="aligned"): the one reading function against
the face pipeline and the fixed crop, the fixed crop standing in for an image without a face, and a whole
--dry-run of fv-plain reading aligned faces (as an image folder trains) exported with parity on real LFW pairs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.typed_config import with_overrides
from train.config import TrainConfig, get_preset
from train.data import load_bank
from train.faces import lfw_pixels
from verify_cli.errors import FaceverifyError
from verify_cli.faces.pipeline import FacePipeline
from verify_cli.lfw import LFWRoot
from verify_cli.preprocess import load_prepared, prepare

ALIGNED = with_overrides(get_preset("fv-plain"), {"faces": "aligned"})


def test_faces_are_funneled_unless_asked_and_a_checkpoint_before_the_field_loads() -> None:
    base = get_preset("fv-plain")
    assert base.faces == "funneled" and get_preset("default").faces == "funneled"
    old = {k: v for k, v in base.as_dict().items() if k != "faces"}  # a checkpoint written before the field
    assert TrainConfig.from_dict(old) == base
    with pytest.raises(FaceverifyError, match=r"faces 'detected' is not one of 'funneled', 'aligned'"):
        with_overrides(base, {"faces": "detected"})


def test_lfw_pixels_are_the_serving_pipeline_or_the_fixed_crop(lfw_images: list[Path]) -> None:
    spec = ALIGNED.preprocess
    pipeline = FacePipeline(pick="central")
    for path in lfw_images[:2]:
        aligned, missed = lfw_pixels(path, spec, "aligned")
        assert not missed and np.array_equal(aligned, prepare(pipeline.align_file(path).image, spec))
        funneled, missed = lfw_pixels(path, spec, "funneled")
        assert not missed and np.array_equal(funneled, load_prepared(path, spec))
        assert aligned.shape == funneled.shape == (1, 64, 64) and not np.array_equal(aligned, funneled)


def test_an_image_without_a_face_falls_back_to_the_fixed_crop_and_is_counted(tmp_path: Path) -> None:
    images = tmp_path / "lfw-py" / "lfw-deepfunneled"
    rng = np.random.default_rng(0)
    for name in ("Noise_One", "Noise_Two"):
        (images / name).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (250, 250, 3), dtype=np.uint8)).save(images / name / f"{name}_0001.jpg")
    lfw = LFWRoot.open(tmp_path)
    rels = ["Noise_Two/Noise_Two_0001.jpg", "Noise_One/Noise_One_0001.jpg"]
    spec = ALIGNED.preprocess
    bank = load_bank(lfw, rels, spec, "aligned")
    assert bank.no_face == sorted(rels)
    expected = np.stack([load_prepared(lfw.image(rel), spec) for rel in sorted(rels)])
    assert np.array_equal(bank.pixels, expected)
    assert load_bank(lfw, rels, spec, "funneled").no_face == []
    (images / "Noise_One" / "Noise_One_0002.jpg").write_bytes(b"not an image")  # other failures are not hidden
    with pytest.raises(FaceverifyError, match="not an image"):
        lfw_pixels(lfw.image("Noise_One/Noise_One_0002.jpg"), spec, "aligned")


@pytest.mark.slow
def test_aligned_dry_run_trains_and_exports_with_parity(data_root: Path, tmp_path: Path) -> None:
    from export import ExportConfig, export_model
    from export.metadata import K_FACES
    from train.__main__ import run
    from verify_cli import modelmeta

    run_dir = tmp_path / "run"
    run("fv-plain", data_root, run_dir, resume=False, epochs=1, seed=None, dry_run=True, threads=0,
        overrides=["faces=aligned"])
    summary = json.loads((run_dir / "summary.json").read_text())
    faces = summary["faces"]
    assert faces["mode"] == "aligned" and faces["images"] > 0 and faces["no_face"] == len(faces["no_face_images"])
    result = export_model(run_dir / "best.pt", tmp_path / "m.onnx", data_root, ExportConfig(dry_run=True))
    assert result.parity.passed and result.parity.decisions_differ == 0
    assert "faces aligned" in result.parity.pairs_source
    assert json.loads(result.metadata[modelmeta.K_TRAINING])["faces"] == "aligned"
    assert json.loads(result.metadata[K_FACES])["mode"] == "aligned"
