"""The face pipeline through the CLI, with the bundled model, on photos that are not LFW crops.

Each photo is made here from a real LFW image: shrunk, turned and pasted somewhere on a larger canvas of
smooth noise, the way a face sits in an ordinary photo. The fixed centre crop cannot find such a face; the
face pipeline must, and must then score it as it scores the original.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_one_error_line, invoke
from PIL import Image

from verify_cli.runtime import Model


def noise(width: int, height: int, seed: int) -> Image.Image:
    """Smooth coloured noise: a background with no face in it."""
    rng = np.random.default_rng(seed)
    small = rng.integers(40, 220, (height // 40 + 1, width // 40 + 1, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)


def photo(path: Path, faces: list[tuple[Path, int, float, tuple[int, int]]], size: tuple[int, int] = (960, 720),
          seed: int = 0) -> Path:
    """A JPEG photo holding LFW images, each (image, side in pixels, angle in degrees, top-left corner)."""
    canvas = noise(*size, seed)
    for source, side, angle, corner in faces:
        with Image.open(source) as img:
            face = img.convert("RGB").resize((side, side), Image.Resampling.LANCZOS)
        mask = Image.new("L", face.size, 255).rotate(angle, expand=True)
        canvas.paste(face.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC), corner, mask)
    canvas.save(path, "JPEG", quality=92)
    return path


@pytest.fixture(scope="module")
def bundled() -> Model:
    return Model(provider="cpu")


def compare_json(*args: str | Path) -> dict:
    result = invoke("compare", *args, "--json", "--provider", "cpu")
    assert result.exit_code in (0, 1), result.stderr
    return json.loads(result.stdout)


@pytest.mark.slow
def test_a_face_anywhere_in_a_photo_scores_like_the_lfw_crop(lfw_images: list[Path], tmp_path: Path,
                                                             bundled: Model) -> None:
    """Aaron Peirsol turned 20 degrees in the lower right of a 960x720 photo, against another photo of him."""
    moved = photo(tmp_path / "moved.jpg", [(lfw_images[0], 330, 20.0, (560, 300))])
    original = compare_json(lfw_images[0], lfw_images[1])
    reframed = compare_json(moved, lfw_images[1])
    fixed = compare_json(moved, lfw_images[1], "--no-detect")
    assert original["same"] and reframed["same"]
    assert abs(reframed["probability"] - original["probability"]) < 0.1
    # the fixed crop sees noise and a shoulder: its score is whatever the model makes of that, far from the face's
    assert abs(fixed["probability"] - original["probability"]) > abs(reframed["probability"] - original["probability"])
    assert fixed["faces"] == {"left": None, "right": None}
    left = reframed["faces"]["left"]
    assert left["faces_found"] == 1 and left["face_used"] == 0 and left["confidence"] > 0.9
    x0, y0, x1, y1 = left["box"]
    assert 560 < (x0 + x1) / 2 < 560 + 430 and 300 < (y0 + y1) / 2 < 300 + 430  # inside the pasted image
    assert invoke("compare", moved, lfw_images[3], "--provider", "cpu").exit_code == 1  # not Marsha Thomason


@pytest.mark.slow
def test_several_faces_the_largest_by_default_another_by_choice(lfw_images: list[Path], tmp_path: Path) -> None:
    """Marsha Thomason large on the left, Aaron Peirsol small on the right of one photo."""
    group = photo(tmp_path / "group.jpg", [(lfw_images[3], 420, 0.0, (40, 150)), (lfw_images[0], 260, 0.0, (620, 60))])
    largest = compare_json(group, lfw_images[1])
    assert largest["faces"]["left"]["faces_found"] == 2 and largest["faces"]["left"]["face_used"] == 0
    assert largest["faces"]["left"]["box"][0] < 480  # Marsha, the larger face
    second = compare_json(group, lfw_images[1], "--face", "1", "--face", "largest")
    assert second["faces"]["left"]["face_used"] == 1 and second["faces"]["left"]["box"][0] > 480
    assert second["same"] and second["probability"] > largest["probability"]  # the smaller face is Aaron Peirsol
    assert_one_error_line(invoke("compare", group, lfw_images[1], "--face", "1"),
                          "Aaron_Peirsol_0002.jpg: face index 1 out of range: 1 face found")  # once: both photos
    assert_one_error_line(invoke("compare", group, lfw_images[1], "--face", "2", "--face", "0"),
                          "face index 2 out of range: 2 faces")
    assert_one_error_line(invoke("compare", group, lfw_images[1], "--face", "tallest"), "--face must be largest")
    assert_one_error_line(invoke("compare", group, lfw_images[1], "--face", "1", "--no-detect"), "--face chooses")
    shown = invoke("compare", group, lfw_images[1], "--provider", "cpu").stdout
    assert "2 faces found, used #0" in shown


def test_a_photo_without_a_face_is_one_error(lfw_images: list[Path], tmp_path: Path) -> None:
    empty = noise(640, 480, 3)
    empty.save(tmp_path / "wall.jpg", "JPEG")
    assert_one_error_line(invoke("compare", tmp_path / "wall.jpg", lfw_images[0]), f"{tmp_path / 'wall.jpg'}: no face found")


@pytest.mark.slow
def test_save_crops_writes_what_the_model_saw(lfw_images: list[Path], tmp_path: Path, bundled: Model) -> None:
    moved = photo(tmp_path / "moved.jpg", [(lfw_images[0], 300, -15.0, (100, 200))])
    crops = tmp_path / "crops"
    assert invoke("compare", moved, lfw_images[1], "--save-crops", crops, "--provider", "cpu").exit_code == 0
    written = sorted(p.name for p in crops.rglob("*.png"))
    assert written == ["Aaron_Peirsol_0002.png", "moved.png"]
    spec = bundled.info.preprocess
    with Image.open(crops / "moved.png") as img:
        assert img.size == (spec.size, spec.size) and img.mode == ("L" if spec.channels == 1 else "RGB")
        crop = np.asarray(img, np.float32)
    with Image.open(crops / "Aaron_Peirsol_0002.png") as other:
        assert np.abs(crop - np.asarray(other, np.float32)).mean() < 60  # two aligned photos of one face
    assert_one_error_line(invoke("compare", moved, lfw_images[1], "--save-crops", moved), "names a folder")


@pytest.mark.slow
def test_evaluate_detects_by_default_and_says_so(data_root: Path, tmp_path: Path) -> None:
    """A pairs file over real LFW images: detection by default, the fixed crop with --no-detect."""
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("2\nAaron_Peirsol\t1\t2\nAaron_Peirsol\t3\t4\nAJ_Cook\t1\tMarsha_Thomason\t1\n"
                     "Aaron_Peirsol\t1\tAJ_Cook\t1\n")
    detected = json.loads(invoke("evaluate", "--data-root", data_root, "--pairs", pairs, "--json").stdout)
    fixed = json.loads(invoke("evaluate", "--data-root", data_root, "--pairs", pairs, "--json", "--no-detect").stdout)
    assert detected["faces"]["mode"] == "detect-align" and detected["faces"]["pick"] == "largest"
    assert detected["faces"]["images"] == 6 and 0 <= detected["faces"]["several"] <= 6
    assert fixed["faces"] == {"mode": "fixed-crop", "pick": None, "images": 6, "several": None, "no_face": None}
    assert detected["faces"]["no_face"] == 0
    crops = tmp_path / "crops"
    assert invoke("evaluate", "--data-root", data_root, "--pairs", pairs, "--save-crops", crops).exit_code == 0
    assert len(list(crops.rglob("*.png"))) == 6


@pytest.mark.slow
def test_a_small_face_in_a_large_photo_is_looked_for_again_at_a_finer_scale(lfw_images: list[Path],
                                                                            tmp_path: Path) -> None:
    """A 6000x4500 photo whose face box is about 75 px wide: too small for the detector at 640 px, found when
    the photo is searched again at 1600 px; the face box lies where the image was pasted."""
    small = photo(tmp_path / "small.jpg", [(lfw_images[0], 200, 0.0, (2000, 1500))], size=(6000, 4500))
    from verify_cli.faces.pipeline import FacePipeline

    assert FacePipeline(detect_side=640)._detect(Image.open(small).convert("RGB"), 1.0) == []  # missed at 640
    record = compare_json(small, lfw_images[1])
    x0, y0, x1, y1 = record["faces"]["left"]["box"]
    assert 2000 < x0 < x1 < 2200 and 1500 < y0 < y1 < 1700
    assert record["same"]


def test_evaluate_scores_every_pair_even_where_no_face_is_found(data_root: Path, tmp_path: Path) -> None:
    """LFW itself has such an image (Marilyn_Monroe_0001 in pairsDevTrain): evaluate takes its fixed centre
    crop, says how many, and scores every pair (dropping pairs would change the protocol); compare refuses it."""
    import shutil

    images = tmp_path / "lfw" / "lfw-py" / "lfw-deepfunneled"
    for name, number in (("Aaron_Peirsol", 1), ("Aaron_Peirsol", 2), ("AJ_Cook", 1)):
        (images / name).mkdir(parents=True, exist_ok=True)
        source = data_root / "lfw-py" / "lfw-deepfunneled" / name / f"{name}_{number:04d}.jpg"
        shutil.copyfile(source, images / name / source.name)
    noise(250, 250, 5).save(images / "AJ_Cook" / "AJ_Cook_0001.jpg", "JPEG")  # a face-less image under a name
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1\nAaron_Peirsol\t1\t2\nAaron_Peirsol\t1\tAJ_Cook\t1\n")
    result = invoke("evaluate", "--data-root", tmp_path / "lfw", "--pairs", pairs, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["metrics"]["pairs"] == 2 and summary["faces"]["no_face"] == 1 and summary["faces"]["images"] == 3
    table = invoke("evaluate", "--data-root", tmp_path / "lfw", "--pairs", pairs).stdout
    assert "1 with no face found: fixed centre crop" in " ".join(table.replace("│", " ").split())
    assert_one_error_line(invoke("compare", images / "AJ_Cook" / "AJ_Cook_0001.jpg", images / "Aaron_Peirsol" /
                                 "Aaron_Peirsol_0001.jpg"), "AJ_Cook_0001.jpg: no face found")
