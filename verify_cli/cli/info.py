"""`faceverify info`: what the model carries (input, preprocessing, threshold, training, figures), the figures
recorded beside it, the fp32 and int8 models side by side, and the providers."""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from verify_cli.cli import render
from verify_cli.cli.options import (
    ModelOption,
    Precision,
    PrecisionOption,
    Provider,
    ProviderOption,
    auto_choice,
    load_model,
)

if TYPE_CHECKING:
    from verify_cli.runtime import Model


def info(
    as_json: Annotated[bool, typer.Option("--json", help="Print the metadata as one JSON object.")] = False,
    model: ModelOption = None,
    precision: PrecisionOption = Precision.auto,
    provider: ProviderOption = Provider.auto,
) -> None:
    """Show the model's metadata (input, preprocessing, threshold, training, figures, parity), the figures recorded
    beside it (NAME.figures.json: each with its command, and its CPU where it depends on one), both precisions of
    the model (fp32 and int8: size, threshold, agreement), which one --precision auto runs on this CPU and why,
    and the providers."""
    from verify_cli import modelmeta as mm
    from verify_cli.cpu import this_cpu
    from verify_cli.runtime import available_providers, precision_paths

    the_model = load_model(model, provider, precision)
    if as_json:
        print(json.dumps(info_record(the_model, provider)))
        return
    props = the_model.info.props
    available = available_providers()
    auto, _ = auto_choice(precision_paths(the_model.path)["fp32"], provider)
    cpu = this_cpu()

    from rich import box
    from rich.table import Table

    spec = the_model.info.preprocess
    inputs = {i.name: i.shape for i in the_model.session.get_inputs()}
    shown = {
        "input": f"{mm.INPUT_IMAGES} float32 "
                 f"{'×'.join(str(d) if isinstance(d, int) else 'N' for d in inputs.get(mm.INPUT_IMAGES, []))} "
                 f"({'grayscale' if spec.channels == 1 else 'RGB'}, batch of any size)",
        "preprocessing": f"centre crop {spec.crop:g} of the shorter side, resize to {spec.size}x{spec.size} "
                         f"(bilinear), {spec.mode}, (x / 255 - {spec.mean:g}) / {spec.std:g}",
        "embedding": f"{the_model.info.embedding_size} numbers per image",
        "threshold": f"{the_model.threshold:.4f}" + (f"  ({props[mm.K_THRESHOLD_RULE]})"
                                                     if props.get(mm.K_THRESHOLD_RULE) else ""),
    }
    rows = [
        ("preset", mm.K_PRESET), ("architecture", mm.K_ARCHITECTURE), ("protocol", mm.K_PROTOCOL),
        ("training", mm.K_TRAINING), ("validation", mm.K_VALIDATION), ("DevTest", mm.K_DEVTEST),
        ("parity", mm.K_PARITY), ("quantization", mm.K_QUANTIZATION), ("versions", mm.K_VERSIONS),
        ("created", mm.K_CREATED), ("git commit", mm.K_COMMIT),
    ] + [("calibration", mm.K_CALIBRATION)] * (mm.K_CALIBRATION in props)
    used = {mm.K_FORMAT, mm.K_PREPROCESS, mm.K_INPUT, mm.K_EMBEDDING, mm.K_THRESHOLD, mm.K_THRESHOLD_RULE,
            mm.K_PRECISION}
    table = Table(title=render.esc(the_model.path), box=box.ROUNDED, show_header=False, title_style="bold")
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(overflow="fold")
    size = the_model.path.stat().st_size
    table.add_row("file", f"{the_model.path.name} ({size / 1e6:.2f} MB), {the_model.info.precision}, "
                          f"faceverify format {props[mm.K_FORMAT]}")
    for label, value in shown.items():
        table.add_row(label, value)
    if mm.K_OPERATING in props:
        used.add(mm.K_OPERATING)
        table.add_row("operating point", operating_text(props[mm.K_OPERATING]))
    for label, key in rows:
        used.add(key)
        unused = unused_architecture(props.get(key)) if key == mm.K_ARCHITECTURE else ()
        skip = ("model", "preprocess", "preset", "protocol", *unused)
        table.add_row(label, render.describe(props.get(key), skip=skip))
    for key in sorted(set(props) - used):
        table.add_row(render.esc(key), render.describe(props[key]))
    figures = recorded_figures(the_model.path)
    if figures is not None:
        table.add_section()
        for label, value in recorded_rows(figures):
            table.add_row(label, value)
    table.add_section()
    for name, record in precision_records(the_model.path).items():
        table.add_row(name, precision_text(name, record))
    table.add_row("auto", f"[bold]{auto.precision}[/] on this CPU: {render.esc(auto.reason)}")
    table.add_row("CPU", render.esc(cpu.describe()))
    table.add_section()
    cuda_note = ""
    if "CUDAExecutionProvider" in available and the_model.provider != "CUDAExecutionProvider":
        cuda_note = "  (CUDA is in this ONNX Runtime build" + (
            ", but not usable on this machine)" if provider == Provider.auto else "; not requested)")
    table.add_row("provider", f"[magenta]{the_model.provider}[/] ran this session{cuda_note}")
    table.add_row("available", ", ".join(available))
    render.console().print(table)


def operating_text(text: str) -> str:
    """What the stored threshold means, in words: FAR and TAR on random and on look-alike validation strangers."""
    try:
        point = json.loads(text)
        parts = []
        for name, label in (("random", "random strangers"), ("lookalike", "look-alike strangers")):
            f = point[name]
            parts.append(f"{label}: FAR {f['far']:.1%} ± {f['far_se']:.1%} of {f['different_pairs']:,}, TAR "
                         f"{f['tar']:.1%} of {f['same_pairs']:,}, ROC AUC {f['roc_auc']:.3f}")
        return (f"at threshold {point['threshold']:.4f} on validation pairs: " + "; ".join(parts)
                + f" (look-alikes: {render.esc(point['lookalike_rule'])})")
    except (ValueError, KeyError, TypeError):
        return render.esc(text)


def info_record(the_model: "Model", provider: Provider) -> dict:
    """What `info --json` prints (and `serve`'s GET /model answers): the metadata parsed, both precisions' files,
    auto's choice on this CPU, the providers."""
    from verify_cli.cpu import this_cpu
    from verify_cli.runtime import available_providers, precision_paths

    metadata = {}
    for key, value in the_model.info.props.items():
        try:
            metadata[key] = json.loads(value)
        except ValueError:
            metadata[key] = value
    auto, _ = auto_choice(precision_paths(the_model.path)["fp32"], provider)
    return {"model": str(the_model.path), "provider": the_model.provider,
            "available_providers": available_providers(), "metadata": metadata,
            "models": precision_records(the_model.path),
            "auto_precision": {**auto.as_dict(), "cpu": this_cpu().as_dict()},
            "recorded_figures": recorded_figures(the_model.path)}


def recorded_figures(path: Path) -> dict | None:
    """The figures file beside the model (None when it has none): its measurements when it describes this model
    (`this_model`), else only whose they are; an unreadable file as its error."""
    from verify_cli import figures
    from verify_cli.errors import FaceverifyError

    try:
        found = figures.recorded_for(path)
    except FaceverifyError as exc:
        return {"file": str(figures.figures_path(path)), "error": exc.message}
    if found is None:
        return None
    recorded, ours = found
    shown = recorded.as_dict()
    record = {"file": str(figures.figures_path(path)), "this_model": ours, "model": shown["model"]}
    return {**record, "measurements": shown["measurements"]} if ours else record


def recorded_rows(record: dict) -> list[tuple[str, str]]:
    """The recorded figures as table rows: one per measurement, its figures then its command and CPU."""
    name = render.esc(Path(record["file"]).name)
    if "error" in record:
        return [("recorded", f"[red]{render.esc(record['error'])}[/]")]
    if not record["this_model"]:
        identity = render.esc(record["model"]["identity"])
        return [("recorded", f"[yellow]{name} records another model ({identity}): not shown[/]")]
    rows = [("recorded", f"{name}: figures measured after export, each with the command that measures it")]
    for group, m in record["measurements"].items():
        values = " · ".join(f"[dim]{render.esc(k)}[/] {render.esc(render.figure(v))}" for k, v in m["figures"].items())
        where = " · ".join(render.esc(x) for x in (m["command"], m.get("cpu")) if x)
        rows.append((render.esc(group), f"{values}  [dim]({where})[/]"))
    return rows


# ModelConfig fields only some tower families read; the others hold defaults that describe nothing
TOWER_FIELDS = {"koch": ("kernels", "pools", "batchnorm"), "resnet": ("blocks", "pooling"), "plain": ("blocks",)}


def unused_architecture(text: str | None) -> tuple[str, ...]:
    """The architecture fields (JSON `text`) this model's tower does not read: another family's, and the patch
    size of a tower without patches."""
    try:
        arch = json.loads(text or "")
    except ValueError:
        return ()
    if not isinstance(arch, dict):
        return ()
    own = TOWER_FIELDS.get(arch.get("tower"), ())
    unused = {f for fields in TOWER_FIELDS.values() for f in fields} - set(own) if own else set()
    if not arch.get("patches"):
        unused |= {"patches", "patch_size"}
    return tuple(sorted(unused))


def precision_records(path: Path) -> dict[str, dict]:
    """The fp32 model and its int8 sibling: file, size, threshold, and (int8) how it was made and how it agrees."""
    from verify_cli.errors import FaceverifyError
    from verify_cli.gallery import model_identity
    from verify_cli.runtime import Model, precision_paths

    paths = precision_paths(path)
    records: dict[str, dict] = {}
    for name, sibling in paths.items():
        if not sibling.is_file():
            records[name] = {"path": str(sibling), "present": False}
            continue
        try:
            info = Model(sibling, provider="cpu", threads=1).info
        except FaceverifyError as exc:
            records[name] = {"path": str(sibling), "present": True, "error": exc.message}
            continue
        records[name] = {"path": str(sibling), "present": True, "bytes": sibling.stat().st_size,
                         "threshold": info.threshold, "precision": info.precision, "quantization": info.quantization}
        if info.precision == "int8" and paths["fp32"].is_file():
            records[name]["from_this_fp32"] = info.fp32_identity == model_identity(paths["fp32"])
    return records


def precision_text(precision: str, record: dict) -> str:
    """One model of the pair in words: file, size, threshold; for int8 its agreement with fp32 on validation."""
    name = render.esc(Path(record["path"]).name)
    if not record["present"]:
        return f"[dim]{name} not present[/]" + (" (`python -m export.quantize` makes it)" if precision == "int8" else "")
    if "error" in record:
        return f"{name}: [red]{render.esc(record['error'])}[/]"
    text = f"{name} ({record['bytes'] / 1e6:.2f} MB), threshold {record['threshold']:.4f}"
    agreement = record["quantization"].get("agreement")
    if not isinstance(agreement, dict):
        return text
    a = {k: render.figure(v) for k, v in agreement.items()}
    share = agreement.get("decisions_agree")
    agree = f"{share:.2%}" if isinstance(share, float) else a.get("decisions_agree")
    text += (f"; on {a.get('pairs')} validation pairs {agree} of decisions as fp32's, "
             f"AUC {a.get('int8_auc')} (fp32 {a.get('fp32_auc')}), |p - p_fp32| max {a.get('prob_max_abs_diff')} "
             f"mean {a.get('prob_mean_abs_diff')}")
    if record.get("from_this_fp32") is False:
        text += "; [yellow]made from another fp32 model than the one beside it: quantize it again[/]"
    return text
