"""The torch-free LFW reader: real protocol files, a generated View 2 file, and malformed input."""

from __future__ import annotations

from pathlib import Path

import pytest

from verify_cli.errors import FaceverifyError
from verify_cli.lfw import LFWRoot, image_relpath, parse_pairs, parse_people


def test_real_view1_files(data_root: Path) -> None:
    lfw = LFWRoot.open(data_root)
    train, test = lfw.pairs("train"), lfw.pairs("test")
    assert (len(train), sum(p.same for p in train)) == (2200, 1100)
    assert (len(test), sum(p.same for p in test)) == (1000, 500)
    assert train[0].left == "Aaron_Peirsol/Aaron_Peirsol_0001.jpg" and train[0].same
    assert not train[-1].same and train[-1].people == ("Wendy_Kennedy", "Zara_Akhmadova")
    people_train, people_test = lfw.people("train"), lfw.people("test")
    assert (len(people_train), len(people_test)) == (4038, 1711)
    assert sum(people_train.values()) == 9525 and sum(people_test.values()) == 3708
    assert not set(people_train) & set(people_test)
    assert all(lfw.image(p).is_file() for pair in test for p in (pair.left, pair.right))


def _view2_file(path: Path, folds: int = 10, per_class: int = 3) -> Path:
    lines = [f"{folds}\t{per_class}"]
    for f in range(folds):
        lines += [f"Person_{f}_{k}\t1\t2" for k in range(per_class)]
        lines += [f"Person_{f}_{k}\t1\tOther_{f}_{k}\t3" for k in range(per_class)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_generated_view2_file(tmp_path: Path) -> None:
    pairs = parse_pairs(_view2_file(tmp_path / "pairs.txt"))
    assert len(pairs) == 60
    assert [sum(p.fold == f for p in pairs) for f in range(10)] == [6] * 10
    assert pairs[0].same and pairs[0].fold == 0 and pairs[0].right == image_relpath("Person_0_0", 2)
    assert not pairs[5].same and pairs[5].right == "Other_0_2/Other_0_2_0003.jpg"
    assert pairs[-1].fold == 9 and not pairs[-1].same


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "empty file"),
        ("2\nA\t1\t2\n", "header announces 4 pair lines"),
        ("1\nA\t1\nB\t1\tC\t2\n", "matched pair needs"),
        ("1\nA\t1\t2\nB\t1\tC\n", "mismatched pair needs"),
        ("1\nA\tone\t2\nB\t1\tC\t2\n", "is not an integer"),
        ("1\nA\t0\t2\nB\t1\tC\t2\n", "out of range"),
        ("x y z\n", "header must be"),
        ("1\n../etc\t1\t2\nB\t1\tC\t2\n", "invalid person name"),
    ],
)
def test_malformed_pairs_file(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(FaceverifyError, match=problem) as err:
        parse_pairs(path)
    assert str(path) in err.value.message and "\n" not in err.value.message


def test_people_file_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "people.txt").write_text("2\nA\t3\nB\t1\n")
    assert parse_people(tmp_path / "people.txt") == {"A": 3, "B": 1}
    (tmp_path / "short.txt").write_text("3\nA\t3\n")
    with pytest.raises(FaceverifyError, match="announces 3 people"):
        parse_people(tmp_path / "short.txt")
    with pytest.raises(FaceverifyError, match="no such file"):
        parse_pairs(tmp_path / "absent.txt")
    with pytest.raises(FaceverifyError, match="LFW images not found .* `make data`"):
        LFWRoot.open(tmp_path)
