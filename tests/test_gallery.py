"""The gallery: its folder layout, its index (reused, updated, rebuilt, private, never unpickled) and search."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from verify_cli.errors import FaceverifyError
from verify_cli.gallery import (
    INDEX_NAME,
    Embeddings,
    Gallery,
    ScoreFn,
    default_index_path,
    identify,
    load_gallery,
    model_identity,
    person_scores,
    scan,
    score_matrix,
)
from verify_cli.gallery.index import SKIPPED_LISTED
from verify_cli.gallery.layout import Photo
from verify_cli.gallery.search import top_k
from verify_cli.runtime import Model
from verify_cli.scoring import embed_paths

D = 16
MODEL_ID, PIPELINE = "sha256:model-a", "pipeline-1"


class FakeEmbed:
    """An embed callable whose answer depends on each file's bytes; it records every call's paths."""

    def __init__(self) -> None:
        self.calls: list[list[Path]] = []

    def __call__(self, paths: list[Path]) -> np.ndarray:
        self.calls.append(list(paths))
        return np.stack([vector(p.read_bytes()) for p in paths])

    def names(self, call: int = -1) -> list[str]:
        """The file names one call embedded."""
        return [p.name for p in self.calls[call]]


def vector(data: bytes) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(data).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(D).astype(np.float32)


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


@pytest.fixture
def gallery(tmp_path: Path) -> Path:
    """Folders and top-level files mixed: alice (folder + file), bob (folder), carol (file)."""
    root = tmp_path / "gallery"
    write(root / "alice" / "a1.jpg", "alice one")
    write(root / "alice" / "a2.png", "alice two")
    write(root / "alice.jpeg", "alice three")
    write(root / "bob" / "b1.jpg", "bob one")
    write(root / "carol.JPG", "carol one")
    return root


# ------------------------------------------------------------------------------------------------ layout

def test_layout_folders_files_and_their_mix(gallery: Path) -> None:
    write(gallery / "bob" / "2019" / "b2.webp", "bob two")  # any depth under a person's folder
    write(gallery / "notes.txt", "who is who")  # not a photo: ignored
    write(gallery / "bob" / "caption.txt", "bob")
    write(gallery / ".hidden.jpg", "x")  # hidden: ignored, as are hidden folders
    write(gallery / ".trash" / "dave.jpg", "x")
    write(gallery / "bob" / ".thumb" / "t.jpg", "x")
    write(gallery / INDEX_NAME, "an old index")
    photos = scan(gallery)
    assert [(p.person, p.path) for p in photos] == [
        ("alice", "alice.jpeg"), ("alice", "alice/a1.jpg"), ("alice", "alice/a2.png"),
        ("bob", "bob/2019/b2.webp"), ("bob", "bob/b1.jpg"), ("carol", "carol.JPG"),
    ]
    stat = (gallery / "alice" / "a1.jpg").stat()
    assert photos[1] == Photo("alice/a1.jpg", "alice", stat.st_size, stat.st_mtime_ns)


@pytest.mark.parametrize("case, words", [
    ("missing", "no such gallery folder"),
    ("a-file", "is not a folder"),
    ("empty", "empty gallery"),
    ("only-other-files", "empty gallery"),
    ("person-without-photos", "no photos of bob"),
])
def test_bad_layouts_are_one_line(case: str, words: str, tmp_path: Path) -> None:
    root = tmp_path / "g"
    if case == "a-file":
        write(root, "not a folder")
    elif case != "missing":
        root.mkdir()
    if case == "only-other-files":
        write(root / "readme.txt", "x")
        write(root / ".alice.jpg", "x")
    if case == "person-without-photos":
        write(root / "alice.jpg", "x")
        write(root / "bob" / "notes.txt", "x")
    with pytest.raises(FaceverifyError, match=words) as caught:
        load_gallery(root, FakeEmbed(), MODEL_ID, PIPELINE)
    assert "\n" not in caught.value.message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_photo_is_one_line(gallery: Path) -> None:
    photo = gallery / "bob" / "b1.jpg"
    photo.chmod(0)
    try:
        with pytest.raises(FaceverifyError, match=f"{photo}: cannot read"):
            scan(gallery)
    finally:
        photo.chmod(0o644)


def test_undecodable_photo_is_one_line_naming_it(tmp_path: Path) -> None:
    model = Model(provider="cpu")
    write(tmp_path / "g" / "alice.jpg", b"\xff\xd8 not really a jpeg")

    def embed(paths: list[Path]) -> np.ndarray:
        return embed_paths(model, paths).embeddings

    with pytest.raises(FaceverifyError, match=r"alice\.jpg: not an image"):
        load_gallery(tmp_path / "g", embed, model_identity(model.path), PIPELINE)
    assert not (tmp_path / "g" / INDEX_NAME).exists()


# ------------------------------------------------------------------------------------------------ index

def assert_private_and_alone(index: Path) -> None:
    """Mode 0600, and no temporary file left beside it."""
    assert index.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in index.parent.iterdir() if p.name.startswith(".")] == [index.name]


def expected(root: Path) -> dict[str, np.ndarray]:
    """Each usable photo's embedding (a file starting b"noface" has none: see FaceOnly)."""
    data = {p.path: (root / p.path).read_bytes() for p in scan(root)}
    return {path: vector(raw) for path, raw in data.items() if not raw.startswith(b"noface")}


def assert_embeddings(g: Gallery) -> None:
    """Every row holds its own photo's embedding (reused or new), in the gallery's order."""
    want = expected(g.root)
    assert [p.path for p in g.photos] == list(want)
    np.testing.assert_array_equal(g.embeddings, np.stack(list(want.values())))


@pytest.fixture
def umask_zero() -> Iterator[None]:
    """The most permissive umask: the index must still be owner-only."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_index_created_then_reused_without_embedding(gallery: Path, umask_zero: None) -> None:
    embed = FakeEmbed()
    g, status = load_gallery(gallery, embed, MODEL_ID, PIPELINE)
    assert (status.action, status.photos, status.people, status.embedded) == ("created", 5, 3, 5)
    assert status.warning is None and status.describe() == "index created: 5 photos of 3 people, 5 embedded"
    assert g.people == ("alice", "bob", "carol") and g.owner.tolist() == [0, 0, 0, 1, 2]
    assert_embeddings(g)
    index = default_index_path(gallery)
    assert_private_and_alone(index)
    before = index.stat().st_mtime_ns
    g2, status = load_gallery(gallery, embed, MODEL_ID, PIPELINE)
    assert (status.action, status.embedded, len(embed.calls)) == ("reused", 0, 1)
    assert status.describe() == "index reused: 5 photos of 3 people, nothing embedded"
    assert index.stat().st_mtime_ns == before  # not rewritten
    np.testing.assert_array_equal(g2.embeddings, g.embeddings)


def test_index_updated_for_added_removed_and_touched_photos(gallery: Path, umask_zero: None) -> None:
    embed = FakeEmbed()
    load_gallery(gallery, embed, MODEL_ID, PIPELINE)
    write(gallery / "dave.png", "dave one")
    write(gallery / "bob" / "b2.jpg", "bob two")
    g, status = load_gallery(gallery, embed, MODEL_ID, PIPELINE)
    assert (status.action, status.added, status.removed, status.changed) == ("updated", 2, 0, 0)
    assert sorted(embed.names()) == ["b2.jpg", "dave.png"] and g.people[-1] == "dave"
    assert status.describe() == "index updated (+2, -0): 7 photos of 4 people, 2 embedded"
    assert_embeddings(g)

    (gallery / "alice" / "a2.png").unlink()
    g, status = load_gallery(gallery, embed, MODEL_ID, PIPELINE)
    assert (status.action, status.added, status.removed, len(embed.calls)) == ("updated", 0, 1, 2)
    assert_embeddings(g)

    photo = gallery / "carol.JPG"  # touched: same bytes, newer time; and bob's rewritten with the old time kept
    os.utime(photo, ns=(photo.stat().st_atime_ns, photo.stat().st_mtime_ns + 1_000_000))
    bob = gallery / "bob" / "b1.jpg"
    times = (bob.stat().st_atime_ns, bob.stat().st_mtime_ns)
    write(bob, "bob one, another photo")
    os.utime(bob, ns=times)
    g, status = load_gallery(gallery, embed, MODEL_ID, PIPELINE)
    assert (status.action, status.added, status.removed, status.changed) == ("updated", 0, 0, 2)
    assert sorted(embed.names()) == ["b1.jpg", "carol.JPG"]
    assert "2 changed" in status.describe()
    assert_embeddings(g)
    assert_private_and_alone(default_index_path(gallery))
    assert load_gallery(gallery, embed, MODEL_ID, PIPELINE)[1].action == "reused"


def test_a_removed_person_leaves_the_gallery(gallery: Path) -> None:
    load_gallery(gallery, FakeEmbed(), MODEL_ID, PIPELINE)
    shutil.rmtree(gallery / "bob")
    g, status = load_gallery(gallery, FakeEmbed(), MODEL_ID, PIPELINE)
    assert (status.removed, g.people) == (1, ("alice", "carol"))


@pytest.mark.parametrize("model_id, pipeline, reason", [
    ("sha256:model-b", PIPELINE, "the model changed"),
    (MODEL_ID, "pipeline-2", "the face-pipeline settings changed"),
])
def test_index_rebuilt_whole_when_model_or_pipeline_changes(model_id: str, pipeline: str, reason: str,
                                                            gallery: Path) -> None:
    load_gallery(gallery, FakeEmbed(), MODEL_ID, PIPELINE)
    write(gallery / "dave.png", "dave one")  # a change too: still everything is embedded again, nothing mixed
    embed = FakeEmbed()
    g, status = load_gallery(gallery, embed, model_id, pipeline)
    assert (status.action, status.reason, status.embedded, status.warning) == ("rebuilt", reason, 6, None)
    assert sorted(embed.names()) == sorted(Path(p.path).name for p in g.photos)
    assert status.describe() == f"index rebuilt ({reason}): 6 photos of 4 people, 6 embedded"
    header = read_header(default_index_path(gallery))
    assert (header["model"], header["pipeline"]) == (model_id, pipeline)
    assert load_gallery(gallery, embed, model_id, pipeline)[1].action == "reused"


def read_header(index: Path) -> dict:
    with np.load(index, allow_pickle=False) as data:
        assert sorted(data.files) == ["embeddings", "header"] and data["embeddings"].dtype == np.float32
        return json.loads(data["header"].tobytes())


def test_index_records_model_pipeline_and_each_photo(gallery: Path) -> None:
    index = default_index_path(gallery)
    load_gallery(gallery, FakeEmbed(), MODEL_ID, PIPELINE)
    header = read_header(index)
    assert header["format"] == "faceverify-gallery-index" and header["embedding_size"] == D
    stat = (gallery / "bob" / "b1.jpg").stat()
    assert ["bob/b1.jpg", stat.st_size, stat.st_mtime_ns] in header["photos"]
    assert len(header["photos"]) == 5


def test_model_identity_is_the_file_hash(tmp_path: Path) -> None:
    bundled = Model(provider="cpu").path
    assert model_identity(bundled) == "sha256:" + hashlib.sha256(bundled.read_bytes()).hexdigest()
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(bundled.read_bytes()[:-1] + b"\0")
    assert model_identity(copy) != model_identity(bundled)


class CodeInPickle:
    """Unpickling this runs code: it creates `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def damage(case: str, index: Path, marker: Path) -> None:
    whole = index.read_bytes()
    if case == "truncated":
        index.write_bytes(whole[: len(whole) // 2])
    elif case == "empty":
        index.write_bytes(b"")
    elif case == "garbage":
        index.write_bytes(np.random.default_rng(0).bytes(4000))
    elif case == "pickle":
        index.write_bytes(pickle.dumps({"header": CodeInPickle(marker)}))
    elif case == "npz-object-array":  # a zip of .npy members, one of them pickled objects
        with open(index, "wb") as handle:
            np.savez(handle, header=np.array([CodeInPickle(marker)], dtype=object), embeddings=np.zeros((1, D)))
    elif case == "foreign-npz":
        with open(index, "wb") as handle:
            np.savez(handle, weights=np.zeros(3))
    elif case == "future-version":
        header = read_header(index) | {"version": 99}
        with np.load(index) as data:
            embeddings = data["embeddings"]
        with open(index, "wb") as handle:
            np.savez(handle, header=np.frombuffer(json.dumps(header).encode(), np.uint8), embeddings=embeddings)
    elif case == "rows-mismatch":
        header = read_header(index)
        with open(index, "wb") as handle:
            np.savez(handle, header=np.frombuffer(json.dumps(header).encode(), np.uint8),
                     embeddings=np.zeros((2, D), np.float32))
    else:
        raise AssertionError(case)


@pytest.mark.parametrize("case, words", [
    ("truncated", "damaged index"),
    ("empty", "empty file"),
    ("garbage", "not an .npz file"),
    ("pickle", "pickled data, never loaded"),
    ("npz-object-array", "damaged index"),
    ("foreign-npz", "not a faceverify gallery index"),
    ("future-version", "index format version 99"),
    ("rows-mismatch", "damaged index"),
])
def test_unusable_index_rebuilt_with_one_warning_never_unpickled(case: str, words: str, gallery: Path,
                                                                 tmp_path: Path, umask_zero: None) -> None:
    index, marker = default_index_path(gallery), tmp_path / "unpickled"
    load_gallery(gallery, FakeEmbed(), MODEL_ID, PIPELINE)
    damage(case, index, marker)
    embed = FakeEmbed()
    g, status = load_gallery(gallery, embed, MODEL_ID, PIPELINE)
    assert (status.action, status.damaged, status.embedded) == ("rebuilt", True, 5)
    assert status.warning is not None and "\n" not in status.warning, status.warning
    assert status.warning.startswith(f"{index}: ") and words in status.warning and "rebuilt it" in status.warning
    assert not marker.exists()
    assert_embeddings(g)
    assert_private_and_alone(index)
    assert load_gallery(gallery, embed, MODEL_ID, PIPELINE)[1].action == "reused"
    if case in ("pickle", "npz-object-array"):  # the control: the payload was live, refusing it was the guard
        payload = pickle.dumps(CodeInPickle(marker))
        pickle.loads(payload)
        assert marker.exists()


def test_index_elsewhere_and_failed_embedding_leaves_the_old_index(gallery: Path, tmp_path: Path) -> None:
    index = tmp_path / "private" / "people.npz"
    index.parent.mkdir()
    status = load_gallery(gallery, FakeEmbed(), MODEL_ID, PIPELINE, index=index)[1]
    assert status.index == index and index.is_file() and not default_index_path(gallery).exists()
    before = index.read_bytes()
    write(gallery / "dave.png", "dave one")

    def failing(paths: list[Path]) -> np.ndarray:
        raise FaceverifyError(f"{paths[0]}: no face found")

    with pytest.raises(FaceverifyError, match="dave.png: no face found"):
        load_gallery(gallery, failing, MODEL_ID, PIPELINE, index=index)
    assert index.read_bytes() == before and sorted(p.name for p in index.parent.iterdir()) == ["people.npz"]
    with pytest.raises(FaceverifyError, match="is a directory"):
        load_gallery(gallery, FakeEmbed(), MODEL_ID, PIPELINE, index=tmp_path)
    photo = gallery / "carol.JPG"
    with pytest.raises(FaceverifyError, match="an image file name"):
        load_gallery(gallery, FakeEmbed(), MODEL_ID, PIPELINE, index=photo)
    assert photo.read_bytes() == b"carol one"


def test_an_index_in_a_missing_folder_fails_before_embedding(gallery: Path, tmp_path: Path) -> None:
    embed = FakeEmbed()
    with pytest.raises(FaceverifyError, match="does not exist"):
        load_gallery(gallery, embed, MODEL_ID, PIPELINE, index=tmp_path / "nowhere" / "index.npz")
    assert embed.calls == []


# ------------------------------------------------------------------------------------------------ search

@pytest.fixture(scope="module")
def model() -> Model:
    return Model(provider="cpu", threads=1)


def random_gallery(people: int, per_person: list[int], seed: int = 0, dim: int = 128) -> Gallery:
    rng = np.random.default_rng(seed)
    photos = [Photo(f"p{i:03d}/{k}.jpg", f"p{i:03d}", 1, 1) for i in range(people) for k in range(per_person[i])]
    return Gallery.build(Path("g"), photos, rng.standard_normal((len(photos), dim)).astype(np.float32))


def brute_force(score: ScoreFn, queries: np.ndarray, entries: np.ndarray) -> np.ndarray:
    return np.array([[score(q[None], e[None])[0] for e in entries] for q in queries], np.float32)


def l1_head(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A head that refuses to broadcast (as a graph with a Concat would): the search must repeat the query."""
    if a.shape != b.shape:
        raise ValueError(f"shapes {a.shape} and {b.shape}")
    return 1 / (1 + np.abs(a - b).sum(axis=1))


@pytest.mark.parametrize("queries, entries, chunk", [
    (5, 40, 1000),  # tiny gallery: several queries per call, explicit pairs
    (5, 200, 1000),  # one query per call, broadcast by ONNX Runtime
    (3, 90, 32),  # large gallery: one query per call, chunked, broadcast by ONNX Runtime
    (1, 1, 16),
])
def test_score_matrix_is_the_per_pair_loop(model: Model, queries: int, entries: int, chunk: int) -> None:
    rng = np.random.default_rng(1)
    q = rng.standard_normal((queries, 128)).astype(np.float32)
    e = rng.standard_normal((entries, 128)).astype(np.float32)
    want = brute_force(model.score, q, e)
    np.testing.assert_allclose(score_matrix(model.score, q, e, chunk=chunk), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(score_matrix(l1_head, q, e, chunk=chunk), brute_force(l1_head, q, e), rtol=1e-6)


def test_person_scores_take_each_persons_best_photo(model: Model) -> None:
    g = random_gallery(7, [1, 3, 2, 1, 4, 1, 2], dim=128)
    q = np.random.default_rng(2).standard_normal((4, 128)).astype(np.float32)
    pairs = brute_force(model.score, q, g.embeddings)
    want = np.array([[pairs[i, g.owner == j].max() for j in range(7)] for i in range(4)])
    for chunk in (5, 16_384):
        np.testing.assert_allclose(person_scores(model.score, q, g, chunk=chunk), want, rtol=1e-5, atol=1e-6)


def test_identify_ranks_candidates_and_says_unknown_below_threshold(model: Model) -> None:
    g = random_gallery(6, [2, 1, 1, 3, 1, 1], dim=128)
    queries = g.embeddings[[0, 5]] + 0.01  # near p000's first photo and p003's second
    found = identify(model.score, 0.5, ["a.jpg", "b.jpg"], queries, g, top=3)
    best = person_scores(model.score, queries, g)
    for answer, row, person in zip(found, best, ["p000", "p003"]):
        assert answer.match == person and answer.same
        probabilities = [p for _, p in answer.candidates]
        assert len(answer.candidates) == 3 and probabilities == sorted(probabilities, reverse=True)
        assert probabilities == sorted(row.tolist(), reverse=True)[:3]
        assert answer.probability == probabilities[0]
    strict = identify(model.score, 1.01, ["a.jpg"], queries[:1], g, top=10)[0]
    assert (strict.match, strict.same, strict.candidates[0][0]) == (None, False, "p000")
    assert len(strict.candidates) == 6
    assert strict.as_json() == {
        "query": "a.jpg", "match": None, "probability": strict.probability, "same": False,
        "candidates": [{"name": n, "probability": p} for n, p in strict.candidates],
    }
    assert json.loads(json.dumps(strict.as_json()))["match"] is None


def test_top_k_order_and_ties() -> None:
    row = np.array([0.2, 0.9, 0.5, 0.9, 0.1, 0.5], np.float32)
    assert top_k(row, 1).tolist() == [1]
    assert top_k(row, 3).tolist() == [1, 3, 2]  # ties keep index (name) order, at the cut too
    assert top_k(row, 4).tolist() == [1, 3, 2, 5]
    assert top_k(row, 99).tolist() == [1, 3, 2, 5, 0, 4]


def test_real_gallery_identifies_its_own_photos(model: Model, data_root: Path, tmp_path: Path) -> None:
    base = data_root / "lfw-py" / "lfw-deepfunneled"
    root = tmp_path / "g"
    people = ["Abdullah_Gul", "Alvaro_Uribe", "Amelie_Mauresmo", "Jennifer_Aniston"]
    for name in people:
        write(root / name / f"{name}_0001.jpg", (base / name / f"{name}_0001.jpg").read_bytes())

    def embed(paths: list[Path]) -> np.ndarray:
        return embed_paths(model, paths).embeddings

    g, status = load_gallery(root, embed, model_identity(model.path), "fixed-centre-crop")
    assert (status.action, g.people) == ("created", tuple(people))
    queries = [root / name / f"{name}_0001.jpg" for name in people]
    found = identify(model.score, model.threshold, [str(q) for q in queries], embed(queries), g, top=2)
    assert [a.match for a in found] == people
    assert all(a.candidates[1][1] < a.probability for a in found)


def test_search_bench_smoke() -> None:
    from bench import search

    section = search.run(Model(provider="cpu").path, threads=1, repeats=1, warmup=0, budget_s=0.01, sizes=(300,))
    (row,) = section.rows
    assert len(row) == len(section.header) and row[0] == "300"
    held, on_disk = float(row[5].replace(",", "")), float(row[6].replace(",", ""))
    assert held >= 128 * 4 and on_disk >= 128 * 4  # at least the float32 embedding itself, per entry


# ------------------------------------------------------------------------------------------------ photos left out

class FaceOnly(FakeEmbed):
    """An embed callable that cannot use a file starting with b"noface" (as a photo with no face found)."""

    def __call__(self, paths: list[Path]) -> Embeddings:
        vectors = super().__call__(paths)
        skipped = {i: "no face found" for i, p in enumerate(paths) if p.read_bytes().startswith(b"noface")}
        vectors[list(skipped)] = np.nan  # what a skipped row holds does not matter
        return Embeddings(vectors, skipped)


def test_a_photo_without_a_face_is_left_out_remembered_and_retried_when_it_changes(gallery: Path) -> None:
    write(gallery / "dave.jpg", "noface: a landscape")
    write(gallery / "bob" / "b2.jpg", "noface: the back of bob's head")
    embed = FaceOnly()
    g, status = load_gallery(gallery, embed, MODEL_ID, PIPELINE)
    assert (status.action, status.photos, status.people, status.embedded) == ("created", 5, 3, 7)
    assert g.people == ("alice", "bob", "carol") and "dave.jpg" not in [p.path for p in g.photos]
    assert_embeddings(g)
    assert status.skipped == ((str(gallery / "bob" / "b2.jpg"), "no face found"),
                              (str(gallery / "dave.jpg"), "no face found"))
    assert status.describe() == "index created: 5 photos of 3 people, 7 embedded, 2 photos left out (no usable face)"
    assert status.skipped_warning == (f"2 gallery photos left out, no usable face: {gallery / 'bob' / 'b2.jpg'} "
                                      f"(no face found), {gallery / 'dave.jpg'} (no face found)")
    assert read_header(default_index_path(gallery))["skipped"][1][0::3] == ["dave.jpg", "no face found"]

    g, status = load_gallery(gallery, embed, MODEL_ID, PIPELINE)  # remembered: not tried again
    assert (status.action, status.embedded, len(status.skipped), len(embed.calls)) == ("reused", 0, 2, 1)
    assert_embeddings(g)

    write(gallery / "dave.jpg", "dave, facing the camera")  # the file changed: tried again, and now used
    g, status = load_gallery(gallery, embed, MODEL_ID, PIPELINE)
    assert (status.action, status.changed, status.embedded, embed.names()) == ("updated", 1, 1, ["dave.jpg"])
    assert g.people[-1] == "dave" and len(status.skipped) == 1
    (gallery / "bob" / "b2.jpg").unlink()  # removing a left-out photo updates the index, embedding nothing
    g, status = load_gallery(gallery, embed, MODEL_ID, PIPELINE)
    assert (status.action, status.removed, status.embedded, status.skipped) == ("updated", 1, 0, ())
    assert status.skipped_warning is None
    assert_embeddings(g)


def test_a_gallery_without_any_usable_face_is_one_line(tmp_path: Path) -> None:
    root = tmp_path / "g"
    write(root / "alice.jpg", "noface one")
    write(root / "bob" / "b.jpg", "noface two")
    with pytest.raises(FaceverifyError, match=r"no gallery photo has a usable face \(2 gallery photos left out") as caught:
        load_gallery(root, FaceOnly(), MODEL_ID, PIPELINE)
    assert "\n" not in caught.value.message
    embed = FaceOnly()
    with pytest.raises(FaceverifyError, match="no gallery photo has a usable face"):  # remembered, still an error
        load_gallery(root, embed, MODEL_ID, PIPELINE)
    assert embed.calls == []


def test_the_warning_names_the_first_photos_and_counts_the_rest(tmp_path: Path) -> None:
    root = tmp_path / "g"
    write(root / "alice.jpg", "alice")
    for i in range(SKIPPED_LISTED + 3):
        write(root / f"p{i:02d}.jpg", f"noface {i}")
    status = load_gallery(root, FaceOnly(), MODEL_ID, PIPELINE)[1]
    assert status.skipped_warning is not None and status.skipped_warning.endswith(", and 3 more")
    assert status.skipped_warning.count("(no face found)") == SKIPPED_LISTED


def test_the_rebuild_reason_names_the_settings_that_changed(gallery: Path) -> None:
    old = json.dumps({"faces": {"mode": "detect-align", "choice": "largest"}, "preprocess": {"size": 105}})
    new = json.dumps({"faces": {"mode": "detect-align", "choice": "central"}, "preprocess": {"size": 105}})
    load_gallery(gallery, FakeEmbed(), MODEL_ID, old)
    status = load_gallery(gallery, FakeEmbed(), MODEL_ID, new)[1]
    assert status.reason == "the face-pipeline settings changed: faces.choice"
