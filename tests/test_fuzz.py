"""Fuzzing the two readers of user files: whatever the bytes, only FaceverifyError may escape.

The LFW pairs and people parsers and the CLI's image reader (`scoring.face_input`, the one function every
command reads an image through) are the code every entry point runs on a user's file first. Hypothesis
feeds them arbitrary text and bytes, and real JPEG and PNG files with flipped bits or cut short; any other
exception type (or a crash) is a bug.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from verify_cli.errors import FaceverifyError
from verify_cli.lfw import parse_pairs, parse_people
from verify_cli.preprocess import Preprocess
from verify_cli.scoring import face_input

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
SPECS = (Preprocess(), Preprocess(size=64, channels=3, crop=0.5, mean=0.5, std=0.5))

# Text shaped like the LFW files, so the fuzzer reaches past the header into the line parsers.
_token = st.one_of(
    st.integers(-3, 12).map(str),
    st.sampled_from(["Aaron_Peirsol", "AJ_Cook", ".", "..", "a/b", "", "1e3", "٣", "\x00", "0x1", " "]),
    st.text(max_size=6),
)
_line = st.lists(_token, min_size=0, max_size=5).flatmap(
    lambda fields: st.sampled_from(["\t", " ", "  ", "\t\t"]).map(lambda sep: sep.join(fields))
)
lfw_like = st.lists(_line, max_size=8).flatmap(
    lambda lines: st.sampled_from(["\n", "\r\n", "\r"]).map(lambda nl: nl.join(lines))
)
any_text = st.one_of(lfw_like, st.text(max_size=200))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the fuzzed files (hypothesis reuses a module fixture across examples)."""
    return tmp_path_factory.mktemp("fuzz")


def _parse_only_our_errors(parser, path: Path) -> None:
    try:
        parser(path)
    except FaceverifyError as exc:
        assert "\n" not in exc.message and str(path) in exc.message
    # any other exception propagates and fails the test with its traceback


@pytest.mark.parametrize("parser", [parse_pairs, parse_people], ids=["pairs", "people"])
@FUZZ
@given(text=any_text)
@example(text="abc\nAaron_Peirsol\t3\n")  # people header that is not a number (was a ValueError)
@example(text="\x00\nAaron_Peirsol\t3\n")
@example(text="2\t1\nAaron_Peirsol\t1\t2\nA\t1\tB\t1\n")
@example(text="1\nAaron_Peirsol\t١\t2\nA\t1\tB\t1\n")  # non-ASCII digits are still digits to int()
def test_lfw_parsers_on_text(parser, text: str, scratch: Path) -> None:
    path = scratch / "list.txt"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    _parse_only_our_errors(parser, path)


@pytest.mark.parametrize("parser", [parse_pairs, parse_people], ids=["pairs", "people"])
@FUZZ
@given(data=st.binary(max_size=300))
@example(data=b"\xff\xfe1\x00")
def test_lfw_parsers_on_bytes(parser, data: bytes, scratch: Path) -> None:
    path = scratch / "list.bin"
    path.write_bytes(data)
    _parse_only_our_errors(parser, path)


def _load_only_our_errors(path: Path) -> None:
    """Decode for both kinds of model input: an array of the right shape, or one FaceverifyError line.

    Warnings are errors here too: a Pillow warning would be an extra line on the user's stderr.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for spec in SPECS:
            try:
                x = face_input(path, spec)
            except FaceverifyError as exc:
                assert "\n" not in exc.message and str(path) in exc.message
                return
            assert x.shape == (spec.channels, spec.size, spec.size) and np.isfinite(x).all()


def _tiff_with_oversized_tag() -> bytes:
    """A 4x4 TIFF whose strip-offsets tag points past the end: Pillow decodes it but warns (was a stderr line)."""
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 100, 50)).save(buffer, "TIFF")
    data = bytearray(buffer.getvalue())
    data[98] = 215
    return bytes(data)


@FUZZ
@given(data=st.binary(max_size=2000))
@example(data=_tiff_with_oversized_tag())
@example(data=b"P5 1 1 255\n\x00")  # a valid 1x1 PGM: decodes
@example(data=b"BM")
@example(data=b"GIF89a")
def test_image_loader_on_arbitrary_bytes(data: bytes, scratch: Path) -> None:
    path = scratch / "image.bin"
    path.write_bytes(data)
    _load_only_our_errors(path)


@pytest.fixture(scope="module")
def real_files(lfw_images: list[Path]) -> dict[str, bytes]:
    """A real LFW JPEG, and the same face (made smaller) as PNG, palette GIF, TIFF, BMP and WebP."""
    jpeg = lfw_images[0].read_bytes()
    img = Image.open(io.BytesIO(jpeg)).convert("RGB")
    files = {"jpeg": jpeg}
    for fmt, small in [("PNG", img.resize((80, 80))), ("GIF", img.resize((40, 40)).quantize(64)),
                       ("TIFF", img.resize((40, 40))), ("BMP", img.resize((40, 40))), ("WEBP", img.resize((64, 64)))]:
        buffer = io.BytesIO()
        small.save(buffer, fmt)
        files[fmt.lower()] = buffer.getvalue()
    return files


@st.composite
def mutated(draw: st.DrawFn, files: dict[str, bytes]) -> bytes:
    """A real file with some bits flipped, bytes overwritten, and maybe cut short."""
    data = bytearray(files[draw(st.sampled_from(sorted(files)))])
    for _ in range(draw(st.integers(0, 8))):
        position = draw(st.integers(0, len(data) - 1))
        if draw(st.booleans()):
            data[position] ^= 1 << draw(st.integers(0, 7))
        else:
            data[position] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@FUZZ
@given(st.data())
def test_image_loader_on_mutated_real_files(real_files: dict[str, bytes], scratch: Path, data: st.DataObject) -> None:
    path = scratch / "mutated"
    path.write_bytes(data.draw(mutated(real_files)))
    _load_only_our_errors(path)
