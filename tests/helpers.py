"""Helpers shared by the tests: paths, the LFW data root, ways to run the CLI, and files to feed it."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import onnx
from PIL import Image
from typer.testing import CliRunner, Result

from export.metadata import REPO
from verify_cli import modelmeta
from verify_cli.cli import app
from verify_cli.errors import EXIT_ERROR
from verify_cli.lfw import resolve_data_root

DATA_ROOT = resolve_data_root(None) if os.environ.get("FACEVERIFY_DATA") else REPO / "data" / "lfw"
HAVE_LFW = (DATA_ROOT / "lfw-py" / "lfw-deepfunneled").is_dir()
IN_CI = os.environ.get("CI", "").lower() == "true"
_runner = CliRunner()


def invoke(*args: str | Path) -> Result:
    """Run the Typer app in-process on string arguments (stdout and stderr captured apart)."""
    return _runner.invoke(app, [str(a) for a in args])


def faceverify(*args: str | Path) -> subprocess.CompletedProcess:
    """Run the installed console script (or `python -m verify_cli.cli`) as a real process."""
    script = Path(sys.executable).with_name("faceverify")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "verify_cli.cli"]
    return subprocess.run([*command, *map(str, args)], check=False, capture_output=True, text=True, timeout=120,
                          cwd=REPO)


def assert_one_error_line(result: Result, contains: str = "", code: int = EXIT_ERROR, started: bool = False) -> None:
    """Exit code 2 (or `code`), exactly one `error: ...` line on stderr, no traceback; stdout empty unless the
    failure came after evaluate `started` (its header line names the model and pairs before embedding)."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == "" or (started and result.stdout.startswith("faceverify ")), result.stdout
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert contains in result.stderr, result.stderr


def huge_png(path: Path, width: int = 20_000, height: int = 20_000) -> Path:
    """A tiny file whose PNG header announces a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def bad_model(kind: str, tmp_path: Path, good: Path) -> Path:
    path = tmp_path / f"{kind}.onnx"
    if kind == "missing":
        return path
    if kind == "directory":
        return tmp_path
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random-bytes":
        path.write_bytes(bytes(range(256)) * 64)
    else:
        proto = onnx.load(str(good))
        if kind == "no-metadata":
            del proto.metadata_props[:]
        elif kind == "future-format":
            next(p for p in proto.metadata_props if p.key == modelmeta.K_FORMAT).value = "99"
        onnx.save(proto, str(path))
    return path


def rgb_of(path: Path) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


def exif_rotated(img: Image.Image) -> tuple[Image.Image, Image.Exif]:
    """The image stored turned a quarter left, with EXIF orientation 6 saying to turn it right to view it."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return img.transpose(Image.Transpose.ROTATE_90), exif


def write_image(kind: str, path: Path, good: Path) -> Path:
    """Write an image of some kind at `path`, made from the real JPEG `good` ('directory' makes a folder)."""
    rgb = rgb_of(good)
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "random-bytes":
        path.write_bytes(np.random.default_rng(1).bytes(5000))
    elif kind == "truncated-jpeg":
        path.write_bytes(good.read_bytes()[:2000])
    elif kind == "text-file":
        path.write_text("Aaron_Peirsol\t1\t2\n")
    elif kind == "bomb-header":  # 20000x20000 announced, a few bytes of data
        huge_png(path)
    elif kind == "bomb":  # a real 9000x5000 image (45 Mpx) that compresses to a few kilobytes
        Image.new("L", (9000, 5000)).save(path, "PNG")
    elif kind == "rgba":
        rgb.convert("RGBA").save(path, "PNG")
    elif kind == "gray-alpha":
        rgb.convert("L").convert("LA").save(path, "PNG")
    elif kind == "palette":
        rgb.quantize(256).save(path, "PNG")
    elif kind == "cmyk":
        rgb.convert("CMYK").save(path, "JPEG", quality=95)
    elif kind == "gray16":
        Image.fromarray(np.asarray(rgb.convert("L"), np.uint16) * 257).save(path, "PNG")
    elif kind == "exif-rotated":
        stored, exif = exif_rotated(rgb)
        stored.save(path, "JPEG", exif=exif, quality=95)
    elif kind == "1x1":
        Image.new("RGB", (1, 1), (10, 20, 30)).save(path, "PNG")
    elif kind == "gif":
        rgb.quantize(128).save(path, "GIF")
    else:
        raise AssertionError(kind)
    return path


def devtest_path_list(data_root: Path, per_class: int, dest: Path, labelled: bool = False) -> Path:
    """The first `per_class` matched then mismatched real DevTest pairs as lines of image paths, `a<TAB>b` (for
    `compare --pairs-file`) or, `labelled`, `a<TAB>b<TAB>1|0` under a comment line (for `calibrate`)."""
    from verify_cli.lfw import LFWRoot

    lfw = LFWRoot.open(data_root)
    pairs = lfw.pairs("test")
    chosen = [p for p in pairs if p.same][:per_class] + [p for p in pairs if not p.same][:per_class]
    lines = [f"{lfw.image(p.left)}\t{lfw.image(p.right)}" + (f"\t{int(p.same)}" if labelled else "") for p in chosen]
    dest.write_text(("# my pairs\n" if labelled else "") + "".join(line + "\n" for line in lines))
    return dest
