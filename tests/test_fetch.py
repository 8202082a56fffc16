"""`make data` (train/fetch.py): download from a local HTTP server, checksums, unreachable servers, local copies."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import DATA_ROOT, HAVE_LFW, REPO
from PIL import Image

from train import fetch
from verify_cli.lfw import LFWRoot

# a miniature LFW: person -> image count; the protocol files below name only these people
PEOPLE = {"AJ_Cook": 1, "Aaron_Peirsol": 4, "Marsha_Thomason": 1, "Abel_Pacheco": 4, "Akhmed_Zakayev": 3}
TEXT = {
    "pairsDevTrain.txt": "1\nAaron_Peirsol\t1\t2\nAJ_Cook\t1\tMarsha_Thomason\t1\n",
    "pairsDevTest.txt": "1\nAbel_Pacheco\t1\t4\nAbel_Pacheco\t2\tAkhmed_Zakayev\t3\n",
    "peopleDevTrain.txt": "3\nAJ_Cook\t1\nAaron_Peirsol\t4\nMarsha_Thomason\t1\n",
    "peopleDevTest.txt": "2\nAbel_Pacheco\t4\nAkhmed_Zakayev\t3\n",
    "lfw-names.txt": "".join(f"{name}\t{count}\n" for name, count in sorted(PEOPLE.items())),
    "pairs.txt": "1\t1\nAaron_Peirsol\t3\t4\nAJ_Cook\t1\tAkhmed_Zakayev\t1\n",
}
IMAGE_COUNT = sum(PEOPLE.values())


def _image_bytes(name: str, index: int) -> bytes:
    """A real LFW image when the data root is present, else a generated 250x250 JPEG."""
    real = DATA_ROOT / "lfw-py" / "lfw-deepfunneled" / name / f"{name}_{index:04d}.jpg"
    if HAVE_LFW and real.is_file():
        return real.read_bytes()
    pixels = np.random.default_rng(index * 7919 + len(name)).integers(0, 256, (250, 250, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG")
    return out.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes | None = None, kind: bytes = tarfile.REGTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    if kind == tarfile.DIRTYPE:
        info.mode = 0o755
    elif kind == tarfile.SYMTYPE:
        info.linkname = "/etc/passwd"
    else:
        info.size, info.mode = len(data or b""), 0o644
    tar.addfile(info, io.BytesIO(data or b"") if kind == tarfile.REGTYPE else None)


def _write_archive(path: Path, extra: tuple[str, bytes] | None = None) -> None:
    """lfw-deepfunneled.tgz as the real one is laid out: lfw-deepfunneled/<Name>/<Name>_NNNN.jpg."""
    with tarfile.open(path, "w:gz") as tar:
        _add(tar, "lfw-deepfunneled", kind=tarfile.DIRTYPE)
        for name, count in PEOPLE.items():
            _add(tar, f"lfw-deepfunneled/{name}", kind=tarfile.DIRTYPE)
            for index in range(1, count + 1):
                _add(tar, f"lfw-deepfunneled/{name}/{name}_{index:04d}.jpg", _image_bytes(name, index))
        if extra is not None:
            _add(tar, extra[0], extra[1], tarfile.SYMTYPE if extra[1] == b"link" else tarfile.REGTYPE)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


class _Server:
    """A local HTTP server over a folder, counting the requests it answered."""

    def __init__(self, folder: Path) -> None:
        self.requests: list[str] = []
        log = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                log.append(self.path)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     functools.partial(Handler, directory=str(folder)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/lfw/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)


@pytest.fixture()
def mirror(tmp_path: Path) -> Iterator[tuple[_Server, Path, Path]]:
    """A local mirror of the miniature LFW: the server, its files folder and a checksum file that matches them."""
    files = tmp_path / "www" / "lfw"
    files.mkdir(parents=True)
    for name, text in TEXT.items():
        (files / name).write_text(text)
    _write_archive(files / fetch.ARCHIVE)
    sums = tmp_path / "md5sums.txt"
    sums.write_text("".join(f"{_md5(path)}  {path.name}\n" for path in sorted(files.iterdir())))
    server = _Server(tmp_path / "www")
    server.thread.start()
    yield server, files, sums
    server.httpd.shutdown()
    server.httpd.server_close()


def run_fetch(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m train.fetch ARGS` as `make data` runs it, with no data root or mirror taken from this shell."""
    clean = {k: v for k, v in os.environ.items() if k not in (fetch.URL_ENV, "FACEVERIFY_DATA")} | (env or {})
    return subprocess.run([sys.executable, "-m", "train.fetch", *map(str, args)], cwd=REPO, env=clean,
                          capture_output=True, text=True, timeout=120, check=False)


def assert_one_line_error(done: subprocess.CompletedProcess, contains: str) -> None:
    """Exit 2, exactly one `error:` line on stderr, no traceback."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert contains in done.stderr, done.stderr


def assert_whole(root: Path) -> LFWRoot:
    """The miniature LFW landed complete at `root` and the project's reader opens it."""
    lfw = LFWRoot.open(root)
    images = sorted(p.relative_to(lfw.images).as_posix() for p in lfw.images.rglob("*.jpg"))
    assert images == sorted(f"{n}/{n}_{i:04d}.jpg" for n, c in PEOPLE.items() for i in range(1, c + 1))
    for name, text in TEXT.items():
        assert (lfw.base / name).read_text() == text
    assert [(p.left, p.right, p.same) for p in lfw.pairs("test")] == [
        ("Abel_Pacheco/Abel_Pacheco_0001.jpg", "Abel_Pacheco/Abel_Pacheco_0004.jpg", True),
        ("Abel_Pacheco/Abel_Pacheco_0002.jpg", "Akhmed_Zakayev/Akhmed_Zakayev_0003.jpg", False),
    ]
    assert lfw.people("train") == {"AJ_Cook": 1, "Aaron_Peirsol": 4, "Marsha_Thomason": 1}
    return lfw


def test_download_lands_whole_then_a_second_run_is_a_no_op(mirror, tmp_path: Path) -> None:
    server, _, sums = mirror
    root = tmp_path / "data" / "lfw"
    done = run_fetch("--data-root", root, "--url", server.url, "--checksums", sums)
    assert done.returncode == 0, done.stderr
    assert f"downloaded from {server.url} ({IMAGE_COUNT} images of {len(PEOPLE)} people" in done.stdout
    assert_whole(root)
    assert sorted(p.name for p in root.iterdir()) == ["lfw-py"]  # no archive, no temporary folder left behind
    assert not (root / "lfw-py").is_symlink()
    assert sorted(server.requests) == sorted(f"/lfw/{name}" for name in (*TEXT, fetch.ARCHIVE))
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}

    again = run_fetch("--data-root", root, "--url", server.url, "--checksums", sums)
    assert again.returncode == 0, again.stderr
    assert "already prepared" in again.stdout
    assert len(server.requests) == len(TEXT) + 1  # nothing fetched the second time
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


def test_base_url_from_the_environment(mirror, tmp_path: Path) -> None:
    server, _, sums = mirror
    done = run_fetch("--data-root", tmp_path / "lfw", "--checksums", sums, env={fetch.URL_ENV: server.url})
    assert done.returncode == 0, done.stderr
    assert server.requests and all(path.startswith("/lfw/") for path in server.requests)
    assert_whole(tmp_path / "lfw")


@pytest.mark.parametrize("damaged", ["pairsDevTest.txt", fetch.ARCHIVE])
def test_a_wrong_checksum_is_one_line_and_leaves_no_data_root(mirror, tmp_path: Path, damaged: str) -> None:
    server, files, sums = mirror
    with open(files / damaged, "ab") as handle:  # served bytes no longer match the checksum file
        handle.write(b"\n")
    done = run_fetch("--data-root", tmp_path / "data" / "lfw", "--url", server.url, "--checksums", sums)
    assert_one_line_error(done, f"{server.url}{damaged}: md5 {_md5(files / damaged)}, expected ")
    assert not (tmp_path / "data").exists()


def test_the_builtin_checksums_refuse_other_files(mirror, tmp_path: Path) -> None:
    server, _, _ = mirror
    done = run_fetch("--data-root", tmp_path / "lfw", "--url", server.url)
    assert_one_line_error(done, f"expected {fetch.CHECKSUMS['pairsDevTrain.txt']}")
    assert not (tmp_path / "lfw").exists()


def test_an_unreachable_server_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on: bound, then closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = tmp_path / "data" / "lfw"
    done = run_fetch("--data-root", root, "--url", f"http://127.0.0.1:{port}/lfw")
    assert_one_line_error(done, f"cannot reach 127.0.0.1:{port}")
    assert fetch.URL_ENV in done.stderr and "FACEVERIFY_DATA" in done.stderr  # the ways out
    assert not (tmp_path / "data").exists()


def test_a_missing_file_on_the_server_names_its_url(mirror, tmp_path: Path) -> None:
    server, files, sums = mirror
    (files / "pairs.txt").unlink()
    done = run_fetch("--data-root", tmp_path / "lfw", "--url", server.url, "--checksums", sums)
    assert_one_line_error(done, f"{server.url}pairs.txt: HTTP 404")
    assert not (tmp_path / "lfw").exists()


@pytest.mark.parametrize("member", ["lfw-deepfunneled/../../escaped.txt", "/tmp/absolute.txt", "elsewhere/x.jpg",
                                    "lfw-deepfunneled/AJ_Cook/link"])
def test_unsafe_archive_members_are_refused(mirror, tmp_path: Path, member: str) -> None:
    server, files, sums = mirror
    _write_archive(files / fetch.ARCHIVE, extra=(member, b"link" if member.endswith("link") else b"x"))
    sums.write_text("".join(f"{_md5(path)}  {path.name}\n" for path in sorted(files.iterdir())))
    done = run_fetch("--data-root", tmp_path / "work" / "lfw", "--url", server.url, "--checksums", sums)
    assert_one_line_error(done, f"{fetch.ARCHIVE}: ")
    assert not (tmp_path / "work").exists() and not (tmp_path / "escaped.txt").exists()


def _local_copy(files: Path, root: Path) -> Path:
    """Unpack the mirror's files into a data root, as a local copy would hold them."""
    base = root / "lfw-py"
    base.mkdir(parents=True)
    with tarfile.open(files / fetch.ARCHIVE) as tar:
        tar.extractall(base, filter="data")
    for name in TEXT:
        shutil.copy(files / name, base / name)
    return root


def test_a_local_copy_is_linked_not_downloaded(mirror, tmp_path: Path) -> None:
    server, files, sums = mirror
    copy = _local_copy(files, tmp_path / "copy")
    root = tmp_path / "data" / "lfw"
    done = run_fetch("--data-root", root, "--from", copy, "--url", server.url, "--checksums", sums)
    assert done.returncode == 0, done.stderr
    assert (root / "lfw-py").is_symlink() and (root / "lfw-py").resolve() == (copy / "lfw-py").resolve()
    assert "linked to" in done.stdout and server.requests == []
    assert_whole(root)
    again = run_fetch("--data-root", root, "--checksums", sums)
    assert again.returncode == 0 and "already prepared" in again.stdout, again.stderr


def test_the_environment_copy_comes_before_the_places_to_look(mirror, tmp_path: Path) -> None:
    _, files, sums = mirror
    env_copy, other = _local_copy(files, tmp_path / "env-copy"), _local_copy(files, tmp_path / "other")
    root = tmp_path / "lfw"
    done = run_fetch("--data-root", root, "--look-in", other, "--checksums", sums,
                     env={"FACEVERIFY_DATA": str(env_copy)})
    assert done.returncode == 0, done.stderr
    assert (root / "lfw-py").resolve() == (env_copy / "lfw-py").resolve()


def test_an_incomplete_copy_is_not_linked(mirror, tmp_path: Path) -> None:
    server, files, sums = mirror
    copy = _local_copy(files, tmp_path / "copy")
    (copy / "lfw-py" / "lfw-deepfunneled" / "Abel_Pacheco" / "Abel_Pacheco_0004.jpg").unlink()
    done = run_fetch("--data-root", tmp_path / "lfw", "--from", copy, "--checksums", sums)
    assert_one_line_error(done, "Abel_Pacheco_0004.jpg: no such file")
    assert not (tmp_path / "lfw").exists()
    # only a place to look: passed over with a note, and the download runs instead
    done = run_fetch("--data-root", tmp_path / "lfw", "--look-in", copy, "--url", server.url, "--checksums", sums)
    assert done.returncode == 0, done.stderr
    assert f"skipping {copy}" in done.stdout and "downloaded from" in done.stdout
    assert_whole(tmp_path / "lfw")


def test_a_half_tree_in_place_is_left_for_the_user(mirror, tmp_path: Path) -> None:
    _, files, sums = mirror
    root = _local_copy(files, tmp_path / "lfw")
    (root / "lfw-py" / "pairsDevTrain.txt").unlink()
    done = run_fetch("--data-root", root, "--checksums", sums)
    assert_one_line_error(done, "pairsDevTrain.txt: no such file); remove it and run again")
    assert (root / "lfw-py" / "pairsDevTest.txt").exists()  # nothing of the user's removed


@pytest.mark.skipif(not HAVE_LFW, reason="no LFW data root")
def test_the_real_copy_matches_torchvisions_checksums_and_links(tmp_path: Path) -> None:
    assert fetch.check_tree(DATA_ROOT / "lfw-py", fetch.CHECKSUMS).startswith("13,233 images of 5,749 people")
    root = tmp_path / "data" / "lfw"
    done = run_fetch("--data-root", root, "--from", DATA_ROOT)
    assert done.returncode == 0, done.stderr
    lfw = LFWRoot.open(root)
    assert len(lfw.pairs("train")) == 2200 and len(lfw.pairs("test")) == 1000


def test_make_prepares_the_data_only_when_it_is_missing(tmp_path: Path) -> None:
    def planned(data: Path) -> str:
        return subprocess.run(["make", "-n", "-o", ".venv/.installed", "train", "export", "evaluate", "bench",
                               f"DATA={data}"], cwd=REPO, capture_output=True, text=True, check=True).stdout

    missing = planned(tmp_path / "nothing")
    assert missing.count("-m train.fetch") == 1 and f"--data-root {tmp_path / 'nothing'}" in missing
    (tmp_path / "there" / "lfw-py" / "lfw-deepfunneled").mkdir(parents=True)
    assert "train.fetch" not in planned(tmp_path / "there")
