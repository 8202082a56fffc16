"""Face detection, alignment and the face policy: maths against independent values, the detector on real LFW."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from verify_cli.errors import FaceverifyError
from verify_cli.faces.align import apply, scale_of, similarity, warp
from verify_cli.faces.detect import Detector, Face
from verify_cli.faces.pipeline import AlignedFace, FacePipeline, choose, largest_first
from verify_cli.faces.template import lfw_template
from verify_cli.preprocess import load_image

LFW_SIZE = (250, 250)


@pytest.fixture(scope="module")
def pipeline() -> FacePipeline:
    """One shared face pipeline on the CPU (sessions are thread-safe and reusable)."""
    return FacePipeline(threads=1)


def _rotation(degrees: float) -> np.ndarray:
    t = math.radians(degrees)
    return np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])


def _lstsq_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Independent reference: x' = a x - b y + tx, y' = b x + a y + ty solved as a linear least-squares problem."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst):
        rows += [[x, -y, 1, 0], [y, x, 0, 1]]
        rhs += [u, v]
    a, b, tx, ty = np.linalg.lstsq(np.array(rows, float), np.array(rhs, float), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


def _smooth_noise(seed: int, size: tuple[int, int] = (400, 300)) -> Image.Image:
    rng = np.random.default_rng(seed)
    cells = (rng.random((6, 8, 3)) * 255).astype(np.uint8)
    return Image.fromarray(cells).resize(size, Image.Resampling.BICUBIC)


def _place(face: Image.Image, matrix: np.ndarray, canvas: Image.Image) -> Image.Image:
    """Paste `face` into `canvas` by a 2x3 pixel-centre matrix (the test's own warp, bicubic, no reduction)."""
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))
    edges = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]]) @ inverse @ np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
    data = tuple(edges[:2].ravel())
    warped = face.transform(canvas.size, Image.Transform.AFFINE, data, resample=Image.Resampling.BICUBIC)
    mask = Image.new("L", face.size, 255).transform(canvas.size, Image.Transform.AFFINE, data)
    return Image.composite(warped, canvas, mask)


# --- similarity transform ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("degrees", "scale", "shift"), [(0.0, 1.0, (0, 0)), (17.0, 2.5, (-40.0, 12.5)),
                                                         (-123.0, 0.31, (250.0, -3.0))])
def test_similarity_recovers_a_known_transform_exactly(degrees: float, scale: float, shift: tuple) -> None:
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 200, (5, 2))
    expected = np.hstack([scale * _rotation(degrees), np.array(shift)[:, None]])
    dst = src @ expected[:, :2].T + expected[:, 2]
    matrix = similarity(src, dst)
    np.testing.assert_allclose(matrix, expected, atol=1e-9)
    np.testing.assert_allclose(apply(matrix, src), dst, atol=1e-9)
    assert scale_of(matrix) == pytest.approx(scale)


def test_similarity_is_the_least_squares_fit_for_noisy_points() -> None:
    rng = np.random.default_rng(2)
    src = rng.uniform(50, 200, (5, 2))
    dst = src @ (1.3 * _rotation(8)).T + [10, -5] + rng.normal(0, 2.0, (5, 2))
    np.testing.assert_allclose(similarity(src, dst), _lstsq_similarity(src, dst), atol=1e-9)


def test_similarity_never_mirrors() -> None:
    src = np.array([[0, 0], [10, 0], [5, 5], [2, 10], [8, 10]], float)
    mirrored = src * [-1, 1]
    matrix = similarity(src, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0


# --- warp ---------------------------------------------------------------------------------------------------------


def test_warp_identity_and_shift_move_pixels_exactly() -> None:
    pixels = (np.random.default_rng(3).random((40, 50, 3)) * 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    same = np.asarray(warp(image, np.array([[1.0, 0, 0], [0, 1.0, 0]]), (50, 40)))
    np.testing.assert_array_equal(same, pixels)
    shifted = np.asarray(warp(image, np.array([[1.0, 0, 3], [0, 1.0, 2]]), (50, 40)))
    np.testing.assert_array_equal(shifted[2:, 3:], pixels[:-2, :-3])
    assert shifted[:2].max() == 0 and shifted[:, :3].max() == 0  # outside the input is black


def test_warp_scales_about_pixel_centres() -> None:
    ramp = Image.fromarray(np.tile(np.arange(200, dtype=np.uint8), (60, 1)))  # value = x
    half = np.asarray(warp(ramp, np.array([[0.5, 0, 0], [0, 0.5, 0]]), (98, 28)), float)
    np.testing.assert_allclose(half[10, 1:-1], 2 * np.arange(1, 97), atol=0.51)


def test_warp_antialiases_a_large_reduction() -> None:
    checker = Image.fromarray(((np.indices((400, 400)).sum(0) % 2) * 255).astype(np.uint8))
    small = np.asarray(warp(checker, np.array([[0.25, 0, 0], [0, 0.25, 0]]), (90, 90)), float)
    assert abs(small[5:-5, 5:-5].mean() - 127.5) < 2 and small[5:-5, 5:-5].std() < 2  # grey, not black or white


# --- face policy ----------------------------------------------------------------------------------------------------


def _face(x0: float, y0: float, side: float, score: float = 0.99) -> Face:
    return Face((x0, y0, x0 + side, y0 + side), score, np.zeros((5, 2)))


def test_policy_no_face_is_one_error_naming_the_file() -> None:
    with pytest.raises(FaceverifyError, match=r"^photo\.jpg: no face found$"):
        choose([], None, "photo.jpg")


def test_policy_largest_first_by_default_and_any_by_index() -> None:
    faces = largest_first([_face(0, 0, 30), _face(100, 0, 80), _face(200, 0, 50)])
    assert [f.size for f in faces] == [80, 50, 30]
    assert choose(faces, None, "a.jpg") == 0
    assert choose(faces, 2, "a.jpg") == 2
    assert choose([_face(0, 0, 10)], None, "a.jpg") == 0


@pytest.mark.parametrize("index", [3, -1])
def test_policy_index_out_of_range_is_one_clear_error(index: int) -> None:
    faces = [_face(0, 0, 30), _face(100, 0, 80), _face(200, 0, 50)]
    with pytest.raises(FaceverifyError, match=rf"^a\.jpg: face index {index} out of range: 3 faces found"):
        choose(faces, index, "a.jpg")


def test_policy_central_takes_the_face_nearest_the_centre() -> None:
    faces = largest_first([_face(0, 0, 80), _face(90, 90, 20), _face(200, 0, 50)])
    assert choose(faces, None, "a.jpg", centre=(100.0, 100.0)) == 2
    assert choose(faces, 0, "a.jpg", centre=(100.0, 100.0)) == 0  # an explicit index wins
    with pytest.raises(FaceverifyError, match="unknown face choice"):
        FacePipeline(pick="first")


def test_face_rescaled_maps_pixel_centres() -> None:
    face = Face((10, 20, 30, 40), 0.9, np.array([[0.0, 0.0]] * 5))
    bigger = face.rescaled(4, 4)
    assert bigger.box == (40, 80, 120, 160)
    np.testing.assert_allclose(bigger.landmarks[0], [1.5, 1.5])  # pixel 0 of the small image covers 0..3


# --- reduced decoding ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
@pytest.mark.parametrize("reduce", [2, 4, 8])
def test_load_image_reduce_shrinks_exactly(tmp_path: Path, suffix: str, reduce: int) -> None:
    pixels = np.zeros((300, 403, 3), np.uint8)
    pixels[96:160, 200:264] = 255  # a white block on block boundaries of every factor
    path = tmp_path / f"block{suffix}"
    Image.fromarray(pixels).save(path, quality=95)
    full = np.asarray(load_image(path, "RGB"), float)
    small = np.asarray(load_image(path, "RGB", reduce=reduce), float)
    assert small.shape == (math.ceil(300 / reduce), math.ceil(403 / reduce), 3)
    rows, cols = 300 // reduce, 403 // reduce  # whole blocks only
    expected = full[: rows * reduce, : cols * reduce].reshape(rows, reduce, cols, reduce, 3).mean((1, 3))
    block = (slice(96 // reduce + 1, 160 // reduce - 1), slice(200 // reduce + 1, 264 // reduce - 1))
    assert small[block].min() > 240 and expected[block].min() > 240
    assert np.abs(small[:rows, :cols] - expected).mean() < 3


def test_load_image_reduce_keeps_its_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(FaceverifyError, match="empty file"):
        load_image(empty, "RGB", reduce=4)
    with pytest.raises(ValueError):
        load_image(empty, "RGB", reduce=3)


# --- template --------------------------------------------------------------------------------------------------------


def test_template_is_a_plausible_upright_face_in_the_lfw_frame() -> None:
    template = lfw_template()
    left_eye, right_eye, nose, mouth_left, mouth_right = template.landmarks
    assert template.size == LFW_SIZE
    assert left_eye[0] < nose[0] < right_eye[0] and mouth_left[0] < nose[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    assert abs(left_eye[1] - right_eye[1]) < 3  # deep funneling levels the eyes
    assert abs((left_eye[0] + right_eye[0]) / 2 - 124.5) < 6  # and centres the face
    assert 30 < template.eye_distance < 60


def test_template_file_says_where_it_came_from() -> None:
    from importlib import resources

    data = json.loads((resources.files("verify_cli.faces") / "lfw_template.json").read_text())
    provenance = data["provenance"]
    assert "DevTrain" in provenance["data"] and provenance["images_with_face"] > 1000
    assert provenance["command"].startswith("python -m export.template")


# --- detector and pipeline on real and generated images ---------------------------------------------------------------


def test_detector_finds_no_face_in_smooth_noise(pipeline: FacePipeline) -> None:
    for seed in range(3):
        assert pipeline.detector.detect(_smooth_noise(seed)) == []


def test_no_face_in_a_file_is_one_error_naming_it(pipeline: FacePipeline, tmp_path: Path) -> None:
    path = tmp_path / "landscape.jpg"
    _smooth_noise(7).save(path)
    with pytest.raises(FaceverifyError, match=rf"^{path}: no face found$"):
        pipeline.align_file(path)


def test_missing_file_keeps_load_image_wording(pipeline: FacePipeline, tmp_path: Path) -> None:
    with pytest.raises(FaceverifyError, match="no such file"):
        pipeline.align_file(tmp_path / "absent.jpg")


def test_detector_finds_the_face_in_real_lfw_images(pipeline: FacePipeline, lfw_images: list[Path]) -> None:
    for path in lfw_images:
        faces = pipeline.detector.detect(load_image(path, "RGB"))
        assert faces, f"no face in {path.name}"
        central = min(faces, key=lambda f: np.hypot((f.box[0] + f.box[2]) / 2 - 125, (f.box[1] + f.box[3]) / 2 - 125))
        assert central.score > 0.95
        assert 60 < central.size < 160
        eyes, nose, mouth = central.landmarks[:2], central.landmarks[2], central.landmarks[3:]
        assert eyes[0, 0] < eyes[1, 0] and mouth[0, 0] < mouth[1, 0]
        assert eyes[:, 1].max() < nose[1] < mouth[:, 1].min()


def test_deep_funneled_images_align_near_identity(pipeline: FacePipeline, lfw_images: list[Path]) -> None:
    template = lfw_template()
    for path in lfw_images:
        aligned = pipeline.align_file(path)
        matrix = similarity(aligned.face.landmarks, template.landmarks)
        assert abs(scale_of(matrix) - 1) < 0.15
        assert abs(math.degrees(math.atan2(matrix[1, 0], matrix[0, 0]))) < 8
        again = pipeline.detector.detect(aligned.image)
        assert again and np.abs(largest_first(again)[0].landmarks - template.landmarks).mean() < 3


def test_a_face_in_a_large_photo_is_found_and_aligned_into_the_frame(
    pipeline: FacePipeline, lfw_images: list[Path], tmp_path: Path
) -> None:
    template = lfw_template()
    face = load_image(lfw_images[0], "RGB")
    placed = np.hstack([1.5 * _rotation(-20), [[1250.0], [500.0]]])  # turned, off-centre in 1920x1080
    photo = _place(face, placed, _smooth_noise(4, (1920, 1080)))
    path = tmp_path / "photo.jpg"
    photo.save(path, quality=92)
    direct = pipeline.align_file(lfw_images[0])
    aligned = pipeline.align_file(path)
    assert isinstance(aligned, AlignedFace) and aligned.image.size == LFW_SIZE
    # the landmarks found in the photo are those of the original, carried by the known placement
    error = np.linalg.norm(aligned.face.landmarks - apply(placed, direct.face.landmarks), axis=1)
    eyes = 1.5 * np.linalg.norm(direct.face.landmarks[1] - direct.face.landmarks[0])
    assert error.mean() < 0.06 * eyes and error.max() < 0.15 * eyes
    again = largest_first(pipeline.detector.detect(aligned.image))[0]
    assert np.abs(again.landmarks - template.landmarks).mean() < 3
    a = np.asarray(aligned.image.convert("L"), float)[60:190, 60:190].ravel()
    b = np.asarray(direct.image.convert("L"), float)[60:190, 60:190].ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.9  # the same face, as sharp as from the LFW file itself
    record = aligned.record()
    assert record["faces_found"] == aligned.faces_found and record["face_used"] == 0
    assert len(record["landmarks"]) == 5 and 0.9 < record["confidence"] <= 1


def test_several_faces_largest_by_default_another_by_index(
    pipeline: FacePipeline, lfw_images: list[Path], tmp_path: Path
) -> None:
    big, small = load_image(lfw_images[2], "RGB"), load_image(lfw_images[3], "RGB")
    canvas = _smooth_noise(5, (900, 500))
    canvas = _place(big, np.array([[1.3, 0, 20.0], [0, 1.3, 60.0]]), canvas)
    canvas = _place(small, np.array([[0.8, 0, 351.0], [0, 0.8, 150.0]]), canvas)  # face near the centre
    path = tmp_path / "two.jpg"
    canvas.save(path, quality=92)
    default = pipeline.align_file(path)
    assert default.faces_found >= 2 and default.used == 0
    assert default.face.box[2] < 350  # the larger face is the one on the left
    other = pipeline.align_file(path, face_index=1)
    assert other.face.box[0] > 350 and other.face.size < default.face.size
    central = FacePipeline(threads=1, pick="central").align_file(path)
    assert central.used == 1 and central.face.box == other.face.box
    with pytest.raises(FaceverifyError, match=rf"^{path}: face index 9 out of range"):
        pipeline.align_file(path, face_index=9)


def test_detector_sessions_take_the_providers_given() -> None:
    detector = Detector(["CPUExecutionProvider"], threads=1)
    assert detector.providers == ["CPUExecutionProvider"]


# --- build-time tools ---------------------------------------------------------------------------------------------------


def test_template_measurement_on_a_few_devtrain_images_agrees_with_the_shipped_one(data_root: Path) -> None:
    from export.template import devtrain_images, measure, template_json
    from verify_cli.lfw import LFWRoot

    lfw = LFWRoot.open(data_root)
    paths = devtrain_images(lfw)
    assert len(paths) == 9525 and not {p.split("/")[0] for p in paths} & set(lfw.people("test"))
    points, boxes, missed, size = measure(lfw, paths[:24:3])
    data = json.loads(template_json(points, boxes, size, paths[:24:3], missed))
    assert data["size"] == [250, 250] and data["provenance"]["images"] == 8
    measured = np.array([data["landmarks"][name] for name in ("left_eye", "right_eye", "nose")])
    assert np.abs(measured - lfw_template().landmarks[:3]).max() < 8  # eight faces vary about the mean of 9,524


def test_reframed_images_hold_the_face_where_the_manifest_says(
    pipeline: FacePipeline, data_root: Path, tmp_path: Path
) -> None:
    from bench.reframe import Reframe, reframe

    assert reframe(data_root, tmp_path, Reframe(), limit=3, workers=1) == 3
    manifest = json.loads((tmp_path / "reframe.json").read_text())
    assert (tmp_path / "lfw-py" / "pairsDevTest.txt").read_bytes() == (
        data_root / "lfw-py" / "pairsDevTest.txt").read_bytes()
    for rel, matrix in manifest["images"].items():
        placed = np.array(matrix).reshape(2, 3)
        photo = tmp_path / "lfw-py" / "lfw-deepfunneled" / rel
        assert Image.open(photo).size == (640, 480)
        width_share = scale_of(placed) * (manifest["face_box_in_lfw_frame"][2] - manifest["face_box_in_lfw_frame"][0])
        assert 0.15 * 640 - 1 <= width_share <= 0.60 * 640 + 1
        assert abs(math.degrees(math.atan2(placed[1, 0], placed[0, 0]))) <= 25.001
        original = pipeline.align_file(data_root / "lfw-py" / "lfw-deepfunneled" / rel).face
        found = pipeline.align_file(photo).face
        eyes = scale_of(placed) * np.linalg.norm(original.landmarks[1] - original.landmarks[0])
        assert np.linalg.norm(found.landmarks - apply(placed, original.landmarks), axis=1).mean() < 0.1 * eyes
