"""`faceverify identify` on a small gallery of real LFW DevTest people: answers, JSON, the index's life, errors.

The gallery: four people with one photo each in their folder, Albert Costa with two, and Aleksander Kwasniewski
as a top-level `<name>.jpg`. Alan Greenspan's second photo is a gallery person's other photo (matched by a wide
margin with the bundled model); Amanda Bynes is a stranger (far below the threshold).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import assert_one_error_line, invoke
from PIL import Image
from typer.testing import Result

from verify_cli.cli.options import Provider, load_model
from verify_cli.faces.pipeline import FacePipeline
from verify_cli.runtime import Model
from verify_cli.scoring import FaceReader, embed_paths

ONE_PHOTO = ["Abdullah_Gul", "Adrien_Brody", "Alan_Greenspan"]
TWO_PHOTOS = "Albert_Costa"
TOP_LEVEL = "Aleksander_Kwasniewski"
PEOPLE = sorted([*ONE_PHOTO, TWO_PHOTOS, TOP_LEVEL])
JSON_KEYS = ["query", "match", "probability", "same", "candidates", "faces"]


def lfw(data_root: Path, name: str, number: int) -> Path:
    return data_root / "lfw-py" / "lfw-deepfunneled" / name / f"{name}_{number:04d}.jpg"


def make_gallery(root: Path, data_root: Path) -> Path:
    for name in ONE_PHOTO:
        (root / name).mkdir(parents=True)
        shutil.copyfile(lfw(data_root, name, 1), root / name / f"{name}_0001.jpg")
    (root / TWO_PHOTOS).mkdir()
    for number in (1, 2):
        shutil.copyfile(lfw(data_root, TWO_PHOTOS, number), root / TWO_PHOTOS / f"{TWO_PHOTOS}_{number:04d}.jpg")
    shutil.copyfile(lfw(data_root, TOP_LEVEL, 1), root / f"{TOP_LEVEL}.jpg")
    return root


@pytest.fixture
def gallery(data_root: Path, tmp_path: Path) -> Path:
    return make_gallery(tmp_path / "gallery", data_root)


@pytest.fixture(scope="module")
def known(data_root: Path) -> Path:
    """Alan Greenspan's second photo: a gallery person."""
    return lfw(data_root, "Alan_Greenspan", 2)


@pytest.fixture(scope="module")
def stranger(data_root: Path) -> Path:
    """Amanda Bynes: not in the gallery."""
    return lfw(data_root, "Amanda_Bynes", 1)


def no_face(path: Path) -> Path:
    """Smooth coloured noise: a photo with no face in it."""
    small = np.random.default_rng(0).integers(40, 220, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(small).resize((250, 250), Image.Resampling.BICUBIC).save(path, "JPEG")
    return path


def run(*args: str | Path) -> Result:
    return invoke("identify", "--provider", "cpu", *args)


def status_line(result: Result) -> str:
    """The index status line on stderr (the last line; warnings come before it)."""
    return result.stderr.splitlines()[-1]


def answers(result: Result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_help_says_the_index_is_biometric_private_and_never_unpickled() -> None:
    result = invoke("identify", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    for words in ("biometric data", "owner only (mode 0600)", "never unpickled", "--gallery", "--index", "--top"):
        assert words in text, words


def test_a_gallery_person_matches_and_a_stranger_is_unknown(gallery: Path, known: Path, stranger: Path) -> None:
    result = run(known, stranger, "--gallery", gallery)
    assert result.exit_code == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("faceverify ") and "CPUExecutionProvider" in lines[0]
    assert f"gallery {gallery}" in lines[1] and "5 people, 6 photos" in lines[1] and "stored in the model" in lines[1]
    at = lines.index(str(known))
    assert lines[at + 1].split()[:2] == ["match", "Alan_Greenspan"] and lines[at + 2].split()[0] == "runner-up"
    at = lines.index(str(stranger))
    assert lines[at + 1].split()[:2] == ["unknown", "closest"] and lines[at + 2].split()[0] == "runner-up"
    assert "1 of 2 queries matched" in lines[-1]
    assert result.stderr == f"index created: 6 photos of 5 people, 6 embedded  │  {gallery / '.faceverify-index.npz'}\n"
    assert (gallery / ".faceverify-index.npz").stat().st_mode & 0o777 == 0o600

    alone = run(known, "--gallery", gallery)
    assert alone.exit_code == 0 and "1 of 1 query matched" in alone.stdout
    assert status_line(alone).startswith("index reused: 6 photos of 5 people, nothing embedded")
    assert run(stranger, "--gallery", gallery, "--threshold", "0").exit_code == 0  # everyone is someone at 0
    assert run(known, "--gallery", gallery, "--threshold", "1").exit_code == 1


def test_json_has_the_keys_and_the_probabilities_of_each_persons_best_photo(gallery: Path, known: Path,
                                                                            stranger: Path) -> None:
    """Each candidate's probability is checked against the query scored with each of that person's photos."""
    result = run(known, stranger, "--gallery", gallery, "--json", "--top", "3")
    assert result.exit_code == 1, result.stderr
    found = answers(result)
    assert [list(a) for a in found] == [JSON_KEYS, JSON_KEYS]
    assert [a["query"] for a in found] == [str(known), str(stranger)]
    assert [(a["match"], a["same"]) for a in found] == [("Alan_Greenspan", True), (None, False)]

    model = load_model(None, Provider.cpu)  # the model the command ran: the default precision's
    reader = FaceReader(model.info.preprocess, FacePipeline(("CPUExecutionProvider",)))
    photos = sorted(p for p in gallery.rglob("*.jpg"))
    owner = [p.parent.name if p.parent != gallery else p.stem for p in photos]
    emb = embed_paths(model, [known, stranger, *photos], reader=reader).embeddings
    for row, answer in enumerate(found):
        per_photo = model.score(np.repeat(emb[row:row + 1], len(photos), axis=0), emb[2:])
        best = {name: max(float(p) for p, o in zip(per_photo, owner) if o == name) for name in PEOPLE}
        names = [c["name"] for c in answer["candidates"]]
        probabilities = [c["probability"] for c in answer["candidates"]]
        assert names == sorted(best, key=best.get, reverse=True)[:3]
        assert probabilities == sorted(probabilities, reverse=True)
        assert probabilities == pytest.approx([best[n] for n in names], abs=1e-6)
        assert answer["probability"] == probabilities[0]
        assert answer["same"] == (answer["probability"] >= model.threshold)
        assert answer["faces"]["faces_found"] >= 1 and answer["faces"]["face_used"] == 0
    assert len(answers(run(known, "--gallery", gallery, "--json", "--top", "99"))[0]["candidates"]) == len(PEOPLE)


def test_the_index_is_created_reused_updated_and_rebuilt(gallery: Path, known: Path, tmp_path: Path,
                                                         data_root: Path) -> None:
    index = tmp_path / "private" / "people.npz"
    index.parent.mkdir()

    def status(*extra: str | Path) -> str:
        result = run(known, "--gallery", gallery, "--index", index, "--json", *extra)
        assert result.exit_code == 0, result.stderr
        assert answers(result)[0]["match"] == "Alan_Greenspan"
        assert index.stat().st_mode & 0o777 == 0o600 and not (gallery / ".faceverify-index.npz").exists()
        return result.stderr

    assert status().startswith("index created: 6 photos of 5 people, 6 embedded")
    assert status().startswith("index reused: 6 photos of 5 people, nothing embedded")
    shutil.copyfile(lfw(data_root, "Adrien_Brody", 2), gallery / "Adrien_Brody" / "second.jpg")
    assert status().startswith("index updated (+1, -0): 7 photos of 5 people, 1 embedded")
    (gallery / TOP_LEVEL).with_suffix(".jpg").unlink()
    assert status().startswith("index updated (+0, -1): 6 photos of 4 people, nothing embedded")
    assert status("--no-detect").startswith(
        "index rebuilt (the face-pipeline settings changed: faces.mode): 6 photos of 4 people, 6 embedded")
    assert status().startswith("index rebuilt (the face-pipeline settings changed:")
    assert status("--face", "central").startswith("index rebuilt (the face-pipeline settings changed: faces.choice)")

    copy = onnx.load(str(Model(provider="cpu").path))  # the same weights in another file: another model
    entry = copy.metadata_props.add()
    entry.key, entry.value = "note", "a copy"
    onnx.save(copy, str(tmp_path / "copy.onnx"))
    assert status("--face", "central", "--model", tmp_path / "copy.onnx").startswith(
        "index rebuilt (the model changed): 6 photos of 4 people, 6 embedded")

    index.write_bytes(index.read_bytes()[:100])
    damaged = status("--face", "central", "--model", tmp_path / "copy.onnx")
    warning, line = damaged.splitlines()
    assert warning.startswith(f"warning: {index}: damaged index (") and warning.endswith("; rebuilt it")
    assert line.startswith("index rebuilt (damaged index (")
    assert status("--face", "central", "--model", tmp_path / "copy.onnx").startswith("index reused")


def test_a_gallery_photo_without_a_face_is_left_out_with_a_warning(gallery: Path, known: Path) -> None:
    blank = no_face(gallery / "Nobody.jpg")
    result = run(known, "--gallery", gallery)
    assert result.exit_code == 0, result.stderr
    warning, line = result.stderr.splitlines()
    assert warning == f"warning: 1 gallery photo left out, no usable face: {blank} (no face found)"
    assert line.startswith("index created: 6 photos of 5 people, 7 embedded, 1 photo left out (no usable face)")
    again = run(known, "--gallery", gallery)  # remembered: not detected again, still said
    assert again.stderr.splitlines()[0] == warning
    assert status_line(again).startswith("index reused: 6 photos of 5 people, nothing embedded, 1 photo left out")


@pytest.mark.parametrize("case, words", [
    ("missing-gallery", "no such gallery folder"),
    ("empty-gallery", "empty gallery (no photos)"),
    ("query-without-a-face", "query.jpg: no face found"),
    ("missing-query", "nowhere.jpg: no such file"),
    ("gallery-of-faceless-photos", "no gallery photo has a usable face"),
])
def test_errors_are_one_line(case: str, words: str, tmp_path: Path, known: Path) -> None:
    root = tmp_path / "g"
    query = known
    if case != "missing-gallery":
        root.mkdir()
    if case == "query-without-a-face":
        shutil.copyfile(known, root / "Alan.jpg")
        query = no_face(tmp_path / "query.jpg")
    elif case == "missing-query":
        shutil.copyfile(known, root / "Alan.jpg")
        query = tmp_path / "nowhere.jpg"
    elif case == "gallery-of-faceless-photos":
        no_face(root / "Nobody.jpg")
    assert_one_error_line(run(query, "--gallery", root), words)
    assert not (root / ".faceverify-index.npz").exists() or case == "gallery-of-faceless-photos"


def test_open_set_bench_counts_strangers_and_genuine_queries(data_root: Path) -> None:
    from bench.openset import measure
    from verify_cli.lfw import LFWRoot
    from verify_cli.runtime import Model

    model = Model(None, "cpu")
    result = measure(model, LFWRoot.open(data_root), people=6, strangers=12, no_detect=True)
    assert (result["gallery_people"], result["strangers"], result["faces"]) == (6, 12, "fixed crop")
    assert 0 <= result["genuine_accepted_as_own_person"] <= result["genuine_own_person_first"] <= 6
    low, high = result["strangers_accepted_ci95"]
    assert low <= result["strangers_accepted"] / 12 <= high
    again = measure(Model(None, "cpu"), LFWRoot.open(data_root), people=6, strangers=12, no_detect=True)
    assert again == result  # seeded: the same draw every time
