"""Every bad input to `faceverify` is one `error:` line on stderr, exit code 2, no traceback, no output file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, assert_one_error_line, bad_model, faceverify, huge_png, invoke

from verify_cli import __version__, evaluation


def _bad_image(kind: str, tmp_path: Path, good: Path) -> Path:
    if kind == "missing":
        return tmp_path / "missing.jpg"
    if kind == "directory":
        return tmp_path
    path = tmp_path / f"{kind}.jpg"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random-bytes":
        path.write_bytes(bytes(range(256)) * 8)
    elif kind == "truncated-jpeg":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "huge":
        return huge_png(tmp_path / "huge.png")
    return path


BAD_IMAGES = {
    "missing": "no such file",
    "directory": "is a directory",
    "empty": "empty file",
    "random-bytes": "not an image",
    "truncated-jpeg": "truncated",
    "huge": "too large",
}


@pytest.mark.parametrize("kind", list(BAD_IMAGES))
def test_bad_image(kind: str, onnx_model: Path, lfw_images: list[Path], tmp_path: Path) -> None:
    bad = _bad_image(kind, tmp_path, lfw_images[0])
    assert_one_error_line(invoke("compare", lfw_images[0], bad, "--model", onnx_model), BAD_IMAGES[kind])



BAD_MODELS = {
    "missing": "no such model file",
    "directory": "is a directory",
    "empty": "empty model file",
    "random-bytes": "not a loadable ONNX model",
    "no-metadata": "not a faceverify model",
    "future-format": "not supported",
}


@pytest.mark.parametrize("command", ["compare", "info"])
@pytest.mark.parametrize("kind", list(BAD_MODELS))
def test_bad_model(kind: str, command: str, onnx_model: Path, lfw_images: list[Path], tmp_path: Path) -> None:
    model = bad_model(kind, tmp_path, onnx_model)
    args = [lfw_images[0], lfw_images[1]] if command == "compare" else []
    assert_one_error_line(invoke(command, *args, "--model", model), BAD_MODELS[kind])


def _pairs_text(kind: str) -> str:
    good_matched = "Aaron_Peirsol\t1\t2"
    good_mismatched = "AJ_Cook\t1\tMarsha_Thomason\t1"
    return {
        "malformed-line": f"1\n{good_matched}\nAJ_Cook\tone\tMarsha_Thomason\t1\n",
        "wrong-count": f"2\n{good_matched}\n{good_mismatched}\n",
        "missing-image": f"1\nAaron_Peirsol\t1\t99\n{good_mismatched}\n",
        "not-text": "\udcff",
    }[kind]


BAD_PAIRS = {
    "malformed-line": ":3: image number 'one' is not an integer",
    "wrong-count": "header announces 4 pair lines",
    "missing-image": ":2: image Aaron_Peirsol/Aaron_Peirsol_0099.jpg not found",
    "not-text": "not a text file",
}


@pytest.mark.parametrize("kind", list(BAD_PAIRS))
def test_bad_pairs_file_leaves_no_output_behind(kind: str, onnx_model: Path, data_root: Path, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.txt"
    pairs.write_bytes(_pairs_text(kind).encode("utf-8", "surrogateescape"))
    out = tmp_path / "out"
    out.mkdir()
    result = invoke("evaluate", "--model", onnx_model, "--data-root", data_root, "--pairs", pairs,
                    "--scores", out / "s.csv", "--roc", out / "roc.png", "--examples", out / "ex.png",
                    "--json-out", out / "summary.json")
    assert_one_error_line(result, BAD_PAIRS[kind])
    assert list(out.iterdir()) == []


def test_failure_after_scoring_started_leaves_no_output(onnx_model: Path, data_root: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """An image that exists but cannot be decoded fails mid-run: still one line and no files."""
    root = tmp_path / "lfw"
    images = root / "lfw-py" / "lfw-deepfunneled"
    real = data_root / "lfw-py" / "lfw-deepfunneled"
    for name, number in [("Aaron_Peirsol", 1), ("Aaron_Peirsol", 2), ("AJ_Cook", 1)]:
        (images / name).mkdir(parents=True, exist_ok=True)
        (images / name / f"{name}_{number:04d}.jpg").write_bytes((real / name / f"{name}_{number:04d}.jpg").read_bytes())
    (images / "Broken").mkdir()
    (images / "Broken" / "Broken_0001.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1\nAaron_Peirsol\t1\t2\nAJ_Cook\t1\tBroken\t1\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "s.csv").write_text("previous results\n")
    result = invoke("evaluate", "--model", onnx_model, "--data-root", root, "--pairs", pairs,
                    "--scores", out / "s.csv", "--roc", out / "roc.png")
    assert_one_error_line(result, "Broken_0001.jpg", started=True)
    assert sorted(p.name for p in out.iterdir()) == ["s.csv"]
    assert (out / "s.csv").read_text() == "previous results\n"  # an earlier file is never half-replaced


def test_bad_pairs_list_for_compare(onnx_model: Path, lfw_images: list[Path], tmp_path: Path) -> None:
    listing = tmp_path / "list.csv"
    listing.write_text(f"{lfw_images[0]},{lfw_images[1]}\n{lfw_images[0]}\n")
    assert_one_error_line(invoke("compare", "-f", listing, "--model", onnx_model, "--out", tmp_path / "o.csv"),
                          "list.csv:2: expected two image paths")
    listing.write_text(f"{lfw_images[0]},{lfw_images[1]}\n{lfw_images[0]},{tmp_path / 'gone.jpg'}\n")
    assert_one_error_line(invoke("compare", "-f", listing, "--model", onnx_model, "--out", tmp_path / "o.csv"),
                          "list.csv:2:")
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize(
    ("args", "contains"),
    [
        (["--threshold", "1.5"], "--threshold must be between 0 and 1"),
        (["--threshold", "nan"], "--threshold must be between 0 and 1"),
        (["--pairs-file", "x.tsv"], "not both"),
        (["--out", "o.csv"], "--out goes with --pairs-file"),
    ],
)
def test_bad_compare_options(args: list[str], contains: str, onnx_model: Path, lfw_images: list[Path]) -> None:
    assert_one_error_line(invoke("compare", lfw_images[0], lfw_images[1], "--model", onnx_model, *args), contains)


def test_output_into_a_missing_folder_fails_before_any_work(onnx_model: Path, data_root: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evaluation, "embed_paths", lambda *a, **k: pytest.fail("scoring started"))
    result = invoke("evaluate", "--model", onnx_model, "--data-root", data_root,
                    "--roc", tmp_path / "no" / "such" / "roc.png")
    assert_one_error_line(result, "does not exist")
    result = invoke("evaluate", "--model", onnx_model, "--data-root", data_root, "--scores", tmp_path)
    assert_one_error_line(result, "is a directory")


def test_missing_data_root(onnx_model: Path, tmp_path: Path) -> None:
    assert_one_error_line(invoke("evaluate", "--model", onnx_model, "--data-root", tmp_path), "LFW images not found")


def test_interrupt_and_internal_error_are_one_line(onnx_model: Path, data_root: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something nobody expected\nover two lines")

    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1\nAaron_Peirsol\t1\t2\nAJ_Cook\t1\tMarsha_Thomason\t1\n")
    args = ["evaluate", "--model", onnx_model, "--data-root", data_root, "--pairs", pairs]
    monkeypatch.setattr(evaluation, "embed_paths", interrupted)
    assert_one_error_line(invoke(*args), "interrupted", code=130, started=True)
    monkeypatch.setattr(evaluation, "embed_paths", broken)
    assert_one_error_line(invoke(*args), "internal error: RuntimeError: something nobody expected over two lines",
                          started=True)


def test_real_process_bad_inputs(onnx_model: Path, lfw_images: list[Path], tmp_path: Path) -> None:
    broken = bad_model("random-bytes", tmp_path, onnx_model)
    for args in (["compare", lfw_images[0], lfw_images[1], "--model", broken],
                 ["compare", lfw_images[0], huge_png(tmp_path / "huge.png"), "--model", onnx_model],
                 ["info", "--model", onnx_model, "--provider", "gpu"],
                 ["evaluate", "--no-such-option"],
                 ["no-such-command"]):
        process = faceverify(*args)
        assert process.returncode == 2, process
        assert "Traceback" not in process.stderr
        assert process.stderr.startswith("error: ") and process.stderr.count("\n") == 1, process.stderr
    assert "'gpu' is not one of" in faceverify("info", "--provider", "gpu").stderr


@pytest.mark.parametrize(
    ("args", "contains"),
    [
        (["compare", "a.jpg", "b.jpg", "--bogus"],
         "No such option: --bogus (Possible options: --out) (see faceverify compare --help)"),
        (["evaluate", "--batch-size", "0"], "'--batch-size': 0 is not in the range 1<=x<=4096. (see faceverify evaluate --help)"),
        (["info", "--provider", "gpu"], "'gpu' is not one of 'auto', 'cuda', 'cpu'. (see faceverify info --help)"),
        (["--bogus", "compare"], "No such option: --bogus (see faceverify --help)"),
        (["bogus"], "No such command 'bogus'. (see faceverify --help)"),
    ],
)
def test_usage_errors_name_the_help_of_the_command_that_failed(args: list[str], contains: str) -> None:
    """The hint comes from the command that rejected the arguments, not from scanning the command line."""
    assert_one_error_line(invoke(*args), contains)


def test_no_arguments_shows_the_help_and_exits_2() -> None:
    result = invoke()
    assert result.exit_code == 2 and result.stderr == ""
    assert "Usage: faceverify" in result.stdout and "compare" in result.stdout


def test_debug_env_lets_an_internal_error_through(onnx_model: Path, data_root: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(evaluation, "embed_paths", broken)
    monkeypatch.setenv("FACEVERIFY_DEBUG", "1")
    result = invoke("evaluate", "--model", onnx_model, "--data-root", data_root)
    assert isinstance(result.exception, RuntimeError)  # raised on, so Python prints its traceback
    assert "internal error" not in result.stderr


def test_python_m_and_a_closed_stdout() -> None:
    """`python -m verify_cli.cli` is the console script; a reader that went away ends the run quietly."""
    version = subprocess.run([sys.executable, "-m", "verify_cli.cli", "--version"], capture_output=True, text=True,
                             check=False, timeout=60, cwd=REPO)
    assert (version.returncode, version.stdout, version.stderr) == (0, f"faceverify {__version__}\n", "")
    code = "import sys\nfrom verify_cli.cli import exit_code\nsys.stderr.write(str(exit_code(BrokenPipeError())))\n"
    pipe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60,
                          cwd=REPO)
    assert (pipe.stdout, pipe.stderr) == ("", "2")  # exit 2 and nothing written: no "error:" line, no traceback
