"""N-way one-shot evaluation: trial construction, the tie rule, Wilson intervals, and embed functions whose answers we know."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_one_error_line, invoke

from verify_cli.cli.options import Provider, load_model
from verify_cli.errors import FaceverifyError
from verify_cli.lfw import LFWRoot, person_of
from verify_cli.nway import (
    DEFAULT_TRIALS,
    DEFAULT_WAYS,
    EmbedFn,
    Trials,
    accuracy,
    evaluate_nway,
    make_trials,
    pool,
    trial_scores,
    wilson_interval,
)
from verify_cli.runtime import Model
from verify_cli.scoring import embed_paths

# 30 people, 1 to 6 images each (some with one image, who never take part)
PEOPLE = {f"Person_{i:02d}": 1 + i % 6 for i in range(30)}


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A stand-in head: the cosine, mapped to [0, 1]."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (1 + (a * b).sum(axis=1)) / 2


def person_vector(path: str | Path, dim: int = 64) -> np.ndarray:
    """The same vector for every image of a person (a perfect embedding)."""
    seed = int.from_bytes(hashlib.sha256(Path(path).parent.name.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dim)


# ------------------------------------------------------------------------------------------------ Wilson

@pytest.mark.parametrize("successes, trials, low, high", [
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Statistics in Medicine 17,
    # Table I, method 3 (score interval without continuity correction), to the four decimals printed there
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
    (29, 29, 0.8830, 1.0),
])
def test_wilson_interval_against_published_values(successes: int, trials: int, low: float, high: float) -> None:
    got = wilson_interval(successes, trials)
    assert got == pytest.approx((low, high), abs=6e-5)


def test_wilson_interval_by_hand() -> None:
    # 8 of 10, z = 1.96: centre (0.8 + 1.96**2 / 20) / (1 + 1.96**2 / 10) = 0.99208 / 1.38416 = 0.716738,
    # half-width 1.96 / 1.38416 * sqrt(0.8 * 0.2 / 10 + 1.96**2 / 400) = 1.416021 * 0.160012 = 0.226581
    assert wilson_interval(8, 10, z=1.96) == pytest.approx((0.716738 - 0.226581, 0.716738 + 0.226581), abs=2e-6)
    # a half-credit count (tied trials): 2.5 of 5, symmetric about one half
    low, high = wilson_interval(2.5, 5)
    assert low + high == pytest.approx(1.0) and low == pytest.approx(0.5 - 1.959964 / (1 + 1.959964**2 / 5)
                                                                          * math.sqrt(0.05 + 1.959964**2 / 100))
    with pytest.raises(ValueError):
        wilson_interval(0, 0)


# ------------------------------------------------------------------------------------------------ trials

def test_trial_invariants() -> None:
    trials = make_trials(PEOPLE, 10, trials=500, seed=3)
    eligible = pool(PEOPLE)
    assert trials.names == sorted(eligible) and all(PEOPLE[n] >= 2 for n in trials.names)
    assert trials.candidates.shape == trials.people.shape == (500, 10) and trials.most_ways == 10
    images = np.array(trials.images)
    for t in range(500):
        query = images[trials.query[t]]
        row = images[trials.candidates[t]]
        owners = [trials.names[i] for i in trials.people[t]]
        assert len(set(owners)) == 10  # N distinct people
        assert owners == [person_of(r) for r in row]
        assert person_of(query) == owners[0] and row[0] != query  # the positive: another image of the query's person
        for rel in [query, *row]:
            name, number = person_of(rel), int(rel[-8:-4])
            assert 1 <= number <= PEOPLE[name]
    assert len(set(trials.images)) == len(trials.images)  # each distinct image once
    used = set(trials.query) | set(trials.candidates.reshape(-1))
    assert used == set(range(len(trials.images)))
    # every eligible person turns up as a query, and each position holds many people (no fixed pattern)
    assert {trials.names[i] for i in trials.people[:, 0]} == set(eligible)


def test_trials_are_determined_by_the_seed_and_nested_across_n() -> None:
    a, b = make_trials(PEOPLE, 10, 200, seed=7), make_trials(PEOPLE, 10, 200, seed=7)
    assert a.images == b.images and (a.candidates == b.candidates).all() and (a.query == b.query).all()
    c = make_trials(PEOPLE, 10, 200, seed=8)
    assert (np.array(a.images)[a.query] != np.array(c.images)[c.query]).any()
    smaller = make_trials(PEOPLE, 5, 200, seed=7)  # the 5-way task is the first 5 columns of the 10-way one
    names = np.array(a.images)
    assert (names[a.candidates[:, :5]] == np.array(smaller.images)[smaller.candidates]).all()
    fewer = make_trials(PEOPLE, 10, 50, seed=7)  # and trial t does not depend on how many trials follow
    assert (names[a.candidates[:50]] == np.array(fewer.images)[fewer.candidates]).all()


@pytest.mark.parametrize("ways, trials, words", [
    (1, 10, "N = 1 is out of range"),
    (len(pool(PEOPLE)) + 1, 10, "out of range"),
    (2, 0, "trials must be positive"),
])
def test_bad_requests_are_one_line(ways: int, trials: int, words: str) -> None:
    with pytest.raises(FaceverifyError, match=words):
        make_trials(PEOPLE, ways, trials)


# ------------------------------------------------------------------------------------------------ scoring

def test_accuracy_counts_ties_as_one_over_k() -> None:
    scores = np.array([
        [0.9, 0.1, 0.2, 0.3],  # right at every N
        [0.5, 0.5, 0.1, 0.5],  # ties: 1/2 at N=2, 1/2 at N=3, 1/3 at N=4
        [0.4, 0.1, 0.6, 0.2],  # right at N=2, wrong from N=3
        [0.1, 0.2, 0.0, 0.0],  # wrong
    ])
    assert [accuracy(scores, n).correct for n in (2, 3, 4)] == pytest.approx([2.5, 1.5, 1 + 1 / 3])
    assert [accuracy(scores, n).ties for n in (2, 3, 4)] == [1, 1, 1]
    result = accuracy(scores, 4)
    assert result.accuracy == pytest.approx((1 + 1 / 3) / 4) and result.chance == 0.25
    assert list(result.as_json()) == ["ways", "accuracy", "ci_low", "ci_high", "trials"]
    assert (result.as_json()["ci_low"], result.as_json()["ci_high"]) == wilson_interval(1 + 1 / 3, 4)


def synthetic(trials: Trials, embed: EmbedFn) -> np.ndarray:
    return trial_scores(trials, embed([Path("root") / rel for rel in trials.images]), cosine)


def test_perfect_embeddings_score_one_and_constant_ones_score_chance() -> None:
    trials = make_trials(PEOPLE, 20, 300, seed=0)
    perfect = synthetic(trials, lambda paths: np.stack([person_vector(p) for p in paths]))
    constant = synthetic(trials, lambda paths: np.ones((len(paths), 8)))
    for n in (2, 5, 10, 20):
        assert accuracy(perfect, n).accuracy == 1.0 and accuracy(perfect, n).ties == 0
        assert accuracy(constant, n).accuracy == pytest.approx(1 / n) and accuracy(constant, n).ties == 300


def test_random_embeddings_score_near_chance() -> None:
    # many people, so that 2,000 trials rarely share an image: the interval assumes independent trials
    trials = make_trials({f"Person_{i:04d}": 2 + i % 3 for i in range(3000)}, 20, 2000, seed=0)
    rng = np.random.default_rng(5)
    scores = synthetic(trials, lambda paths: rng.standard_normal((len(paths), 32)))
    for n in DEFAULT_WAYS:
        result = accuracy(scores, n)
        low, high = result.interval
        assert low <= 1 / n <= high, (n, result.accuracy, low, high)
        assert high - low < 0.05  # 2,000 trials pin it down


def test_evaluate_nway_on_devtest_people_with_a_perfect_embedding(data_root: Path) -> None:
    lfw = LFWRoot.open(data_root)
    calls: list[list[Path]] = []

    def embed(paths: list[Path]) -> np.ndarray:
        calls.append(paths)
        assert all(p.is_file() for p in paths)
        return np.stack([person_vector(p) for p in paths])

    report = evaluate_nway(lfw, embed, cosine, ways=(20, 2, 5, 5), trials=200, seed=0)
    assert [r.ways for r in report.results] == [2, 5, 20]
    assert [r.accuracy for r in report.results] == [1.0, 1.0, 1.0]
    assert len(calls) == 1 and len(set(calls[0])) == len(calls[0]) == report.images
    assert {p.parent.name for p in calls[0]} <= set(pool(lfw.people("test")))
    assert report.as_json()[0] == {"ways": 2, "accuracy": 1.0, "ci_low": wilson_interval(200, 200)[0],
                                   "ci_high": 1.0, "trials": 200}


def test_evaluate_nway_with_the_bundled_model_beats_chance(data_root: Path) -> None:
    lfw = LFWRoot.open(data_root)
    model = Model(provider="cpu")
    report = evaluate_nway(lfw, lambda paths: embed_paths(model, paths).embeddings, model.score,
                           ways=(2, 5), trials=40, seed=0)
    for result in report.results:
        assert result.interval[0] > result.chance, result


# ------------------------------------------------------------------------------------------------ the CLI

def trial_pairs(data_root: Path, path: Path, trials: int, seed: int) -> Path:
    """A View 1 pairs file made of the first trials' images (query-positive matched, query-distractor not), so the
    N-way run finds some of its images already embedded by the pairs evaluation and must embed the rest."""
    drawn = make_trials(pool(LFWRoot.open(data_root).people("test")), 5, trials, seed)
    image = np.array(drawn.images)

    def fields(rel: str) -> tuple[str, str]:
        return person_of(rel), str(int(rel[-8:-4]))

    matched = [(*fields(image[drawn.query[t]]), fields(image[drawn.candidates[t, 0]])[1]) for t in range(3)]
    mismatched = [(*fields(image[drawn.query[t]]), *fields(image[drawn.candidates[t, 1]])) for t in range(3, 6)]
    path.write_text("3\n" + "".join("\t".join(row) + "\n" for row in matched + mismatched))
    return path


def test_evaluate_n_way_adds_the_table_and_json_with_shared_embeddings(data_root: Path, tmp_path: Path) -> None:
    pairs = trial_pairs(data_root, tmp_path / "pairs.txt", 50, 0)
    common = ("evaluate", "--data-root", data_root, "--pairs", pairs, "--n-way", "5", "--n-way", "2", "--trials", "50",
              "--no-detect", "--provider", "cpu")
    result = invoke(*common, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["metrics"]["pairs"] == 6  # the pairs evaluation is still there
    n_way = summary["n_way"]
    assert [list(r) for r in n_way] == [["ways", "accuracy", "ci_low", "ci_high", "trials"]] * 2
    assert [(r["ways"], r["trials"]) for r in n_way] == [(2, 50), (5, 50)]
    for r in n_way:
        assert 0 <= r["ci_low"] < r["ci_high"] <= 1 and r["ci_low"] <= r["accuracy"] <= r["ci_high"]  # 50 of 50: 1.0
        assert (r["ci_low"], r["ci_high"]) == pytest.approx(wilson_interval(r["accuracy"] * 50, 50))
    model = load_model(None, Provider.cpu)  # the model the command ran (auto's precision): afresh, the same figures
    alone = evaluate_nway(LFWRoot.open(data_root), lambda paths: embed_paths(model, paths).embeddings, model.score,
                          (2, 5), 50, 0)
    assert len(n_way) == 2 and all(got == pytest.approx(want) for got, want in zip(n_way, alone.as_json()))

    table = invoke(*common)
    assert table.exit_code == 0, table.stderr
    rows = [line for line in table.stdout.splitlines() if line.startswith("│") and "│ 0." in line]
    assert "N-way one-shot" in table.stdout and "chance" in table.stdout and "95% CI" in table.stdout
    assert [row.split("│")[1].strip() for row in rows] == ["2", "5"]
    assert f"{n_way[1]['accuracy']:.4f}" in rows[1] and "0.2000" in rows[1]


@pytest.mark.parametrize("args, words", [
    (("--trials", "10"), "--trials and --seed go with --n-way"),
    (("--n-way", "1"), "N = 1 is out of range"),
    (("--n-way", "5000"), "N = 5000 is out of range"),
    (("--n-way", "2", "--trials", "0"), "--trials"),
])
def test_evaluate_n_way_bad_requests_are_one_line(args: tuple[str, ...], words: str, data_root: Path) -> None:
    assert_one_error_line(invoke("evaluate", "--data-root", data_root, "--no-detect", *args), words)


def test_evaluate_n_way_needs_the_devtest_people_file(data_root: Path, tmp_path: Path) -> None:
    base = tmp_path / "lfw-py"
    base.mkdir()
    (base / "lfw-deepfunneled").symlink_to(data_root / "lfw-py" / "lfw-deepfunneled")
    pairs = trial_pairs(data_root, tmp_path / "pairs.txt", 10, 0)
    result = invoke("evaluate", "--data-root", tmp_path, "--pairs", pairs, "--n-way", "2", "--no-detect")
    assert_one_error_line(result, f"{base / 'peopleDevTest.txt'}: no such file; --n-way draws its trials")


def test_evaluate_help_states_the_n_way_defaults() -> None:
    text = " ".join(invoke("evaluate", "--help").stdout.replace("│", " ").split())  # the help box's wrapped lines
    assert f"trials per N [default: {DEFAULT_TRIALS:,}]" in text and "--n-way" in text
