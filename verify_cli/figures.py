"""A model's recorded figures: what the docs quote and `faceverify info` shows, each with the command that measures it.

Two sources, one namespace of keys:
- the model's own metadata (threshold, preset, validation, DevTest, operating point, parity, and its int8 sibling's
  agreement with it), flattened: `devtest.accuracy`, `operating_point.lookalike.far`,
  `int8.quantization.agreement.decisions_agree`. Nobody copies these by hand: they are read from the model.
- `NAME.figures.json` beside the fp32 model `NAME.onnx`, for the figures a model cannot carry because they are
  measured after export or elsewhere: DevTest through the face pipeline, the int8 model's DevTest, other seeds of
  the recipe, speed. Each measurement is a group of figures with the command that measures them and, where a
  figure depends on the CPU, the CPU it was measured on; its keys are `GROUP.NAME`.

`python -m verify_cli.figures` writes the file: `evaluate GROUP SUMMARY.json` records a `faceverify evaluate --json`
summary, `set GROUP NAME=VALUE ...` a measurement that only prints its figures (training runs, `make bench`),
`show` prints every figure of the model. The file names the model it describes by SHA-256, so figures of one model
are never read as another's.
"""

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from verify_cli.errors import FaceverifyError

FORMAT = 1
SUFFIX = ".figures.json"
PREFIX = "faceverify."  # metadata keys lose it in figure keys: faceverify.devtest -> devtest.*
INT8_GROUP = "int8"  # the int8 sibling's own figures (its quantization record) sit under int8.*
EVALUATED = ("accuracy", "roc_auc", "eer", "tar_far_1e2", "tar_far_1e3", "pairs")  # kept from an evaluate summary
ABOUT = ("Figures of the model named below that its metadata cannot carry, each group with the command that "
         "measures it (and the CPU, where a figure depends on it). Written by python -m verify_cli.figures; read "
         "by faceverify info and tests/test_docs.py. See docs/figures.md.")

Value = int | float | str | bool | None


@dataclass
class Measurement:
    """Figures measured together: by one command, on one CPU where they depend on it."""

    command: str
    figures: dict[str, Value]
    cpu: str | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON object the file holds for this measurement (cpu and note only when given)."""
        extra = {k: v for k, v in (("cpu", self.cpu), ("note", self.note)) if v}
        return {"command": self.command, **extra, "figures": self.figures}


@dataclass
class Recorded:
    """A figures file: the model it describes and its measurements, by group name."""

    model_file: str
    identity: str
    measurements: dict[str, Measurement] = field(default_factory=dict)

    def flat(self) -> dict[str, Value]:
        """Every figure by its key, GROUP.NAME."""
        return {f"{group}.{name}": value for group, m in self.measurements.items() for name, value in m.figures.items()}

    def as_dict(self) -> dict[str, Any]:
        """The whole file as JSON, measurements in key order."""
        return {"about": ABOUT, "format": FORMAT, "model": {"file": self.model_file, "identity": self.identity},
                "measurements": {g: self.measurements[g].as_dict() for g in sorted(self.measurements)}}


def figures_path(model: Path) -> Path:
    """The figures file of a model, beside its fp32 file: faceverify.onnx -> faceverify.figures.json (from either)."""
    from verify_cli.runtime import precision_paths

    fp32 = precision_paths(Path(model))["fp32"]
    return fp32.with_name(fp32.stem + SUFFIX)


@functools.lru_cache(maxsize=8)
def _identity(path: str, mtime_ns: int, size: int) -> str:  # mtime and size key the cache: a changed file hashes anew
    from verify_cli.gallery import model_identity

    return model_identity(path)


def identity(path: Path) -> str:
    """The model's SHA-256 identity (as the gallery index records it), hashed once per version of the file."""
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise FaceverifyError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return _identity(str(path), stat.st_mtime_ns, stat.st_size)


def flatten(value: Any, prefix: str) -> dict[str, Value]:
    """Nested JSON objects as dotted keys; lists are left out (no figure a document quotes is a list)."""
    if isinstance(value, dict):
        out: dict[str, Value] = {}
        for key, inner in value.items():
            out.update(flatten(inner, f"{prefix}.{key}"))
        return out
    return {} if isinstance(value, list) else {prefix: value}


def from_metadata(props: dict[str, str], prefix: str = "") -> dict[str, Value]:
    """A model's metadata_props as figures: `faceverify.devtest` {"accuracy": ...} -> `devtest.accuracy`."""
    out: dict[str, Value] = {}
    for key, text in props.items():
        name = prefix + key.removeprefix(PREFIX)
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        out.update(flatten(value, name))
    return out


def model_figures(model: Path) -> dict[str, Value]:
    """Every figure a model carries: its own metadata, and its int8 sibling's quantization record under int8.*."""
    from verify_cli.runtime import Model, precision_paths

    paths = precision_paths(Path(model))
    out = from_metadata(Model(paths["fp32"], provider="cpu", threads=1).info.props)
    if paths["int8"].is_file():
        int8 = Model(paths["int8"], provider="cpu", threads=1).info.props
        out.update(from_metadata({k: v for k, v in int8.items() if k == PREFIX + "quantization"}, INT8_GROUP + "."))
    return out


def load(path: Path) -> Recorded:
    """Read a figures file, or raise one line saying what is wrong with it."""
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
        recorded = Recorded(data["model"]["file"], data["model"]["identity"])
        for group, m in data["measurements"].items():
            if not isinstance(m["figures"], dict) or not isinstance(m["command"], str):
                raise TypeError(f"measurement {group!r} needs a command and figures")
            recorded.measurements[group] = Measurement(m["command"], m["figures"], m.get("cpu"), m.get("note"))
    except OSError as exc:
        raise FaceverifyError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise FaceverifyError(f"{path}: not a faceverify figures file ({type(exc).__name__}: {exc})") from None
    return recorded


def recorded_for(model: Path) -> tuple[Recorded, bool] | None:
    """The figures file beside a model, and whether it describes that model (its fp32 file, by SHA-256); None
    when the model has none."""
    from verify_cli.runtime import precision_paths

    path = figures_path(model)
    if not path.is_file():
        return None
    recorded = load(path)
    return recorded, recorded.identity == identity(precision_paths(Path(model))["fp32"])


def all_figures(model: Path) -> dict[str, Value]:
    """Every figure of a model a document may quote: its metadata's, then its figures file's (which must be its)."""
    figures = model_figures(model)
    found = recorded_for(model)
    if found is not None:
        recorded, ours = found
        if not ours:
            raise FaceverifyError(f"{figures_path(model)}: records another model ({recorded.identity}); measure "
                                  "this one again (docs/figures.md)")
        figures.update(recorded.flat())
    return figures


def record(model: Path, group: str, measurement: Measurement, restart: bool = False) -> Path:
    """Add (or replace) one measurement in the model's figures file, written atomically; returns the file.

    A file that describes another model is refused unless `restart`, which begins a new one: figures of two
    models are never mixed. A group whose keys are figures the model's metadata already carries is refused too:
    those are read from the model.
    """
    from verify_cli.outputs import write_atomic
    from verify_cli.runtime import precision_paths

    fp32 = precision_paths(Path(model))["fp32"]
    path, ours = figures_path(model), identity(fp32)
    carried = model_figures(model)
    clash = sorted(k for k in (f"{group}.{name}" for name in measurement.figures) if k in carried)
    if not group:
        raise FaceverifyError("a measurement needs a group name")
    if clash:
        raise FaceverifyError(f"{group}: the model's metadata carries {', '.join(clash)}; record another group")
    recorded = load(path) if path.is_file() else None
    if recorded is None or (restart and recorded.identity != ours):
        recorded = Recorded(fp32.name, ours)
    elif recorded.identity != ours:
        raise FaceverifyError(f"{path}: records another model ({recorded.identity}, not {fp32.name}'s {ours}); "
                              "--restart begins a new file for this one")
    recorded.measurements[group] = measurement
    write_atomic(path, (json.dumps(recorded.as_dict(), indent=2) + "\n").encode())
    return path


def from_evaluate(summary: dict[str, Any], data_root: str = "D") -> Measurement:
    """A `faceverify evaluate --json` summary as a measurement: its figures, and the command that made it."""
    from verify_cli.runtime import INT8_SUFFIX

    try:
        metrics, model, faces = summary["metrics"], str(summary["model"]), summary["faces"]
        pairs_file = Path(summary["pairs_file"]).name
        if summary["threshold_source"] != "model":
            raise ValueError("it was scored at a threshold given on the command line, not the model's")
    except (KeyError, TypeError, ValueError) as exc:
        raise FaceverifyError(f"not a faceverify evaluate --json summary of the model's own figures ({exc})") from None
    command = ["faceverify evaluate", "--precision", "int8" if model.endswith(INT8_SUFFIX) else "fp32"]
    if faces.get("mode") == "fixed-crop":
        command.append("--no-detect")
    elif faces.get("pick") not in (None, "largest"):
        command += ["--face", str(faces["pick"])]
    command += ["--data-root", data_root]
    if pairs_file != "pairsDevTest.txt":
        command += ["--pairs", "train" if pairs_file == "pairsDevTrain.txt" else pairs_file]
    return Measurement(" ".join(command), {k: metrics[k] for k in EVALUATED if metrics.get(k) is not None})


def _value(text: str) -> Value:
    """A figure typed on the command line: a JSON number (or true/false/null), else the text itself."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, (int, float, bool)) or value is None else text


def _cli() -> None:
    """`python -m verify_cli.figures`: write and show a model's figures file."""
    from typing import Annotated

    import typer

    from verify_cli.errors import entry_point
    from verify_cli.runtime import bundled_model_path

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                      help="Write and show a model's recorded figures (NAME.figures.json beside NAME.onnx).")
    model_option = Annotated[Path | None, typer.Option(
        "--model", help="The model the figures describe [default: the bundled one].", show_default=False)]
    restart_option = Annotated[bool, typer.Option(
        "--restart", help="Begin a new file when the existing one records another model.")]

    @app.command()
    def evaluate(group: Annotated[str, typer.Argument(help="Group name, e.g. evaluate.faces.fp32.")],
                 summary: Annotated[Path, typer.Argument(help="What `faceverify evaluate --json` printed.")],
                 model: model_option = None, restart: restart_option = False,
                 data_root: Annotated[str, typer.Option(help="The data root as the recorded command names it.")] = "D",
                 command: Annotated[str | None, typer.Option(
                     help="The command to record [default: the evaluate command the summary describes].",
                     show_default=False)] = None,
                 note: Annotated[str | None, typer.Option(help="A note kept with the figures.")] = None) -> None:
        """Record a `faceverify evaluate --json` summary of the model (or its int8 sibling) as group GROUP."""
        with entry_point():
            from verify_cli.errors import read_text
            from verify_cli.runtime import precision_paths

            try:
                data = json.loads(read_text(summary, "a JSON file"))
            except ValueError as exc:
                raise FaceverifyError(f"{summary}: not JSON ({exc})") from None
            target = model or bundled_model_path()
            measured = from_evaluate(data, data_root)
            evaluated = precision_paths(Path(str(data.get("model"))))["fp32"]
            if not evaluated.is_file() or identity(evaluated) != identity(precision_paths(target)["fp32"]):
                raise FaceverifyError(f"{summary}: evaluated {data.get('model')}, not {target} or its int8 sibling")
            measured.command, measured.note = command or measured.command, note
            print(record(target, group, measured, restart))

    @app.command(name="set")
    def set_(group: Annotated[str, typer.Argument(help="Group name, e.g. speed.int8.")],
             figures: Annotated[list[str], typer.Argument(help="NAME=VALUE, one or more.")],
             command: Annotated[str, typer.Option(help="The command that measured them.")],
             cpu: Annotated[str | None, typer.Option(help="The CPU, where the figures depend on it.")] = None,
             note: Annotated[str | None, typer.Option(help="A note kept with the figures.")] = None,
             model: model_option = None, restart: restart_option = False) -> None:
        """Record figures a command printed (training runs, `make bench`) as group GROUP, replacing its old ones."""
        with entry_point():
            values: dict[str, Value] = {}
            for item in figures:
                name, sep, text = item.partition("=")
                if not sep or not name:
                    raise FaceverifyError(f"{item}: expected NAME=VALUE")
                values[name] = _value(text)
            print(record(model or bundled_model_path(), group, Measurement(command, values, cpu, note), restart))

    @app.command()
    def show(model: model_option = None) -> None:
        """Print every figure of the model as one JSON object: its metadata's and its figures file's."""
        with entry_point():
            print(json.dumps(all_figures(model or bundled_model_path()), indent=1, sort_keys=True))

    app()


if __name__ == "__main__":
    _cli()
