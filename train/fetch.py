"""`make data`: put LFW deep-funneled and its protocol files at DATA_ROOT/lfw-py, linked from a local copy or downloaded.

`python -m train.fetch [--data-root data/lfw] [--from COPY] [--look-in COPY ...] [--url BASE] [--checksums FILE]`

A local copy (`--from`, else `$FACEVERIFY_DATA`, else each `--look-in`) that holds the whole tree is linked as
`DATA_ROOT/lfw-py`. Without one, the files torchvision's `datasets/lfw.py` names are downloaded from its URL (or
`--url` / `$FACEVERIFY_LFW_URL`, a mirror of the same files), each checked against its md5 before use, the archive
extracted safely into a temporary folder and renamed into place: a failed run leaves nothing behind. Imports no
torch (build-time, but run before anything heavy is installed or needed).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from verify_cli.errors import FaceverifyError, entry_point, read_text
from verify_cli.lfw import (
    BASE_FOLDER,
    DATA_ENV,
    IMAGE_SETS,
    PAIRS_FILES,
    PEOPLE_FILES,
    parse_pairs,
    parse_people,
    resolve_data_root,
)

URL_ENV = "FACEVERIFY_LFW_URL"
BASE_URL = "http://vis-www.cs.umass.edu/lfw/"  # torchvision's download_url_prefix
IMAGE_FOLDER = IMAGE_SETS["deepfunneled"]
ARCHIVE = "lfw-deepfunneled.tgz"
NAMES_FILE = "lfw-names.txt"
# View 1 (development) files: a local copy must hold them; View 2's pairs.txt is downloaded too when fetching.
VIEW1_FILES = (PAIRS_FILES["train"], PAIRS_FILES["test"], PEOPLE_FILES["train"], PEOPLE_FILES["test"], NAMES_FILE)
TEXT_FILES = (*VIEW1_FILES, PAIRS_FILES["10fold"])
# md5 of every file, as torchvision/datasets/lfw.py checks them (file_dict["deepfunneled"] and checksums)
CHECKSUMS: dict[str, str] = {
    ARCHIVE: "68331da3eb755a505a502b5aacb3c201",
    "pairs.txt": "9f1ba174e4e1c508ff7cdf10ac338a7d",
    "pairsDevTest.txt": "5132f7440eb68cf58910c8a45a2ac10b",
    "pairsDevTrain.txt": "4f27cbf15b2da4a85c1907eb4181ad21",
    "peopleDevTest.txt": "e4bf5be0a43b5dcd9dc5ccfcb8fb19c5",
    "peopleDevTrain.txt": "54eaac34beb6d042ed3a7d883e247a21",
    "lfw-names.txt": "a6d0a479bd074669f656265a6e693f6d",
}
TIMEOUT_S = 60
CHUNK = 1 << 20
NETWORK_HINT = f"check the network, or set {URL_ENV} to a mirror of the same files or {DATA_ENV} to a local copy"


def md5_of(path: Path) -> str:
    """The md5 hex digest of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def read_checksums(path: Path) -> dict[str, str]:
    """An md5sum-style file (`<md5>  <name>` lines) that replaces the table, for a mirror that repacked the files."""
    table: dict[str, str] = {}
    for lineno, line in enumerate(read_text(path, "a checksum file").splitlines(), 1):
        fields = line.split()
        if not fields or line.lstrip().startswith("#"):
            continue
        if len(fields) != 2 or len(fields[0]) != 32:
            raise FaceverifyError(f"{path}:{lineno}: expected '<md5>  <file name>', got {line!r}")
        table[fields[1].lstrip("*")] = fields[0].lower()
    missing = [name for name in (ARCHIVE, *TEXT_FILES) if name not in table]
    if missing:
        raise FaceverifyError(f"{path}: no checksum for {', '.join(missing)}")
    return table


def check_tree(lfw_py: Path, checksums: Mapping[str, str]) -> str:
    """Check an `lfw-py` folder is whole: View 1 files with their md5, every image lfw-names.txt lists; say what it holds.

    Raises one line naming the first thing missing or wrong. pairs.txt (View 2) is checked when present.
    """
    images = lfw_py / IMAGE_FOLDER
    if not images.is_dir():
        raise FaceverifyError(f"{images}: no such folder")
    for name in TEXT_FILES:
        path = lfw_py / name
        if not path.is_file():
            if name in VIEW1_FILES:
                raise FaceverifyError(f"{path}: no such file")
            continue
        found = md5_of(path)
        if found != checksums[name]:
            raise FaceverifyError(f"{path}: md5 {found}, expected {checksums[name]} (not the LFW file)")
    people = parse_people(lfw_py / NAMES_FILE)
    for person, count in people.items():
        for index in range(1, count + 1):
            image = images / person / f"{person}_{index:04d}.jpg"
            if not image.is_file():
                raise FaceverifyError(f"{image}: no such file (lfw-names.txt lists {count} images of {person})")
    for split in ("train", "test"):
        parse_pairs(lfw_py / PAIRS_FILES[split])
    total = sum(people.values())
    return f"{total:,} images of {len(people):,} people, View 1 files checked"


def find_copy(source: Path | None, candidates: Sequence[Path], target: Path,
              checksums: Mapping[str, str]) -> tuple[Path, str] | None:
    """The `lfw-py` folder of the first whole local copy and what it holds: `source` (must be whole), else the first
    whole candidate (a candidate that is absent or is `target` itself is passed over, a broken one with a note)."""
    if source is not None:
        lfw_py = source / BASE_FOLDER
        try:
            return lfw_py, check_tree(lfw_py, checksums)
        except FaceverifyError as exc:
            raise FaceverifyError(f"--from {source} holds no whole LFW copy: {exc.message}") from None
    for candidate in candidates:
        lfw_py = candidate / BASE_FOLDER
        if not lfw_py.exists() or _same_place(lfw_py, target):
            continue
        try:
            return lfw_py, check_tree(lfw_py, checksums)
        except FaceverifyError as exc:
            print(f"skipping {candidate}: {exc.message}", flush=True)
    return None


def _same_place(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


@contextmanager
def made_for_this_run(root: Path) -> Iterator[Path]:
    """Create `root` (and missing parents) for the run; on failure remove the folders this run created, if empty."""
    created = [parent for parent in (root, *root.parents) if not parent.exists()]
    root.mkdir(parents=True, exist_ok=True)
    try:
        yield root
    except BaseException:
        for folder in created:
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def link_copy(lfw_py: Path, target: Path) -> None:
    """Make `target` (ROOT/lfw-py) a symbolic link to a local copy's `lfw-py` folder."""
    try:
        target.symlink_to(os.path.abspath(lfw_py), target_is_directory=True)
    except OSError as exc:
        raise FaceverifyError(f"{target}: cannot link to {lfw_py} ({exc.strerror or exc})") from None


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeRemainingColumn(), console=console, disable=not console.is_terminal)


def download_file(url: str, dest: Path, expected_md5: str, progress: Progress) -> None:
    """Stream `url` to `dest`, checking its md5; one clear line when the server can't be reached or the bytes differ."""
    host = urllib.parse.urlsplit(url).netloc or url
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(dest, "wb") as out:
            length = response.headers.get("Content-Length")
            task = progress.add_task(dest.name, total=int(length) if length and length.isdigit() else None)
            while block := response.read(CHUNK):
                digest.update(block)
                out.write(block)
                progress.advance(task, len(block))
    except urllib.error.HTTPError as exc:
        raise FaceverifyError(f"{url}: HTTP {exc.code} {exc.reason}; {NETWORK_HINT}") from None
    except urllib.error.URLError as exc:
        reason = getattr(exc.reason, "strerror", None) or exc.reason
        raise FaceverifyError(f"cannot reach {host} ({url}): {reason}; {NETWORK_HINT}") from None
    except TimeoutError:
        raise FaceverifyError(f"{url}: no answer within {TIMEOUT_S} s; {NETWORK_HINT}") from None
    except (http.client.HTTPException, ConnectionError) as exc:
        raise FaceverifyError(f"{url}: the download broke off ({type(exc).__name__}); {NETWORK_HINT}") from None
    found = digest.hexdigest()
    if found != expected_md5:
        raise FaceverifyError(f"{url}: md5 {found}, expected {expected_md5} (a damaged download or another file); "
                              f"nothing was written")


class _Reading:
    """A file opened for reading that advances a progress task by the bytes read (extraction progress)."""

    def __init__(self, handle, progress: Progress, task) -> None:
        self._handle, self._progress, self._task = handle, progress, task

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._progress.advance(self._task, len(data))
        return data


def _member_path(member: tarfile.TarInfo, archive: str) -> PurePosixPath:
    """The member's path with any leading './', refused unless a plain file or folder inside the image folder."""
    path = PurePosixPath(member.name)
    parts = [part for part in path.parts if part != "."]
    if path.is_absolute() or ".." in parts or not parts or parts[0] != IMAGE_FOLDER:
        raise FaceverifyError(f"{archive}: unsafe or unexpected member {member.name!r} (expected {IMAGE_FOLDER}/...)")
    if not (member.isfile() or member.isdir()):
        raise FaceverifyError(f"{archive}: member {member.name!r} is not a plain file or folder")
    return PurePosixPath(*parts)


def extract_archive(archive: Path, dest: Path, progress: Progress) -> None:
    """Extract the image archive into `dest` in one pass, refusing absolute, `..`, link and device members."""
    task = progress.add_task(f"extract {archive.name}", total=archive.stat().st_size)
    try:
        with open(archive, "rb") as raw, tarfile.open(fileobj=_Reading(raw, progress, task), mode="r|gz") as tar:
            for member in tar:
                member.name = str(_member_path(member, archive.name))
                if hasattr(tarfile, "data_filter"):
                    tar.extract(member, dest, filter="data")
                else:  # Python without extraction filters: _member_path already allows only plain files and folders
                    tar.extract(member, dest)
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, OSError) and exc.filename:
            raise
        raise FaceverifyError(f"{archive.name}: not a readable .tgz archive ({exc})") from None


def download(target: Path, base_url: str, checksums: Mapping[str, str], console: Console) -> str:
    """Fetch, check and extract everything into a temporary folder beside `target`, then rename it into place."""
    base_url = base_url if base_url.endswith("/") else base_url + "/"
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        tree = staging / BASE_FOLDER
        tree.mkdir()
        with _progress(console) as progress:
            for name in (*TEXT_FILES, ARCHIVE):
                if progress.disable:  # no terminal for a progress bar: one line a file instead
                    print(f"downloading {base_url}{name}", flush=True)
                download_file(base_url + name, (tree if name != ARCHIVE else staging) / name, checksums[name],
                              progress)
            if progress.disable:
                print(f"extracting {ARCHIVE}", flush=True)
            extract_archive(staging / ARCHIVE, tree, progress)
        summary = check_tree(tree, checksums)
        os.rename(tree, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary


def prepare(root: Path, source: Path | None = None, candidates: Sequence[Path] = (), base_url: str | None = None,
            checksums: Mapping[str, str] = CHECKSUMS, console: Console | None = None) -> str:
    """Make ROOT/lfw-py whole: leave a whole one alone, else link a local copy, else download. Says what it did."""
    console = console or Console(stderr=True)
    target = root / BASE_FOLDER
    if target.exists():
        try:
            summary = check_tree(target, checksums)
        except FaceverifyError as exc:
            if not target.is_symlink():
                raise FaceverifyError(f"{target} is not a whole LFW copy ({exc.message}); remove it and run again") from None
            print(f"replacing the link {target}: {exc.message}", flush=True)
            target.unlink()
        else:
            return f"{target}: already prepared ({summary})"
    elif target.is_symlink():  # a link to a copy that is gone
        target.unlink()
    copy = find_copy(source, candidates, target, checksums)
    with made_for_this_run(root):
        if copy is not None:
            link_copy(copy[0], target)
            return f"{target}: linked to {os.path.abspath(copy[0])} ({copy[1]})"
        url = base_url or os.environ.get(URL_ENV) or BASE_URL
        summary = download(target, url, checksums, console)
        return f"{target}: downloaded from {url} ({summary})"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (argparse: this module runs before anything else may be installed)."""
    parser = argparse.ArgumentParser(prog="python -m train.fetch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=None,
                        help=f"where lfw-py goes [default: ${DATA_ENV}, else ./data/lfw]")
    parser.add_argument("--from", dest="source", type=Path, default=None,
                        help="a local copy to link (a data root holding lfw-py/); it must be whole")
    parser.add_argument("--look-in", type=Path, action="append", default=[],
                        help=f"a place a local copy may be, tried after ${DATA_ENV} (repeatable)")
    parser.add_argument("--url", default=None,
                        help=f"base URL of the LFW files [default: ${URL_ENV}, else {BASE_URL}]")
    parser.add_argument("--checksums", type=Path, default=None,
                        help="md5sum-style file replacing the built-in checksums (a mirror that repacked the files)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `make data`; print what was done, or one `error:` line and exit 2."""
    args = parse_args(argv)
    with entry_point("error: interrupted; nothing was left half-written", sigterm=True):  # a killed `make data` too
        env_copy = os.environ.get(DATA_ENV)
        candidates = ([Path(env_copy)] if env_copy else []) + list(args.look_in)
        try:
            checksums = read_checksums(args.checksums) if args.checksums else CHECKSUMS
            root = args.data_root if args.data_root is not None else resolve_data_root(None)
            print(prepare(root, args.source, candidates, args.url, checksums), flush=True)
        except OSError as exc:
            raise FaceverifyError(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")) from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
