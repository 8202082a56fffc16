"""`faceverify info`: what the model carries (input, preprocessing, threshold, training, figures) and the providers."""

import json
from typing import Annotated

import typer

from verify_cli.cli import render
from verify_cli.cli.options import ModelOption, Provider, ProviderOption, load_model


def info(
    as_json: Annotated[bool, typer.Option("--json", help="Print the metadata as one JSON object.")] = False,
    model: ModelOption = None,
    provider: ProviderOption = Provider.auto,
) -> None:
    """Show the model's metadata (input, preprocessing, threshold, training, figures, parity) and providers."""
    from verify_cli import modelmeta as mm
    from verify_cli.runtime import available_providers

    the_model = load_model(model, provider)
    props = the_model.info.props
    available = available_providers()
    if as_json:
        metadata = {}
        for key, value in props.items():
            try:
                metadata[key] = json.loads(value)
            except ValueError:
                metadata[key] = value
        print(json.dumps({"model": str(the_model.path), "provider": the_model.provider,
                          "available_providers": available, "metadata": metadata}))
        return

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
        ("parity", mm.K_PARITY), ("versions", mm.K_VERSIONS), ("created", mm.K_CREATED), ("git commit", mm.K_COMMIT),
    ]
    used = {mm.K_FORMAT, mm.K_PREPROCESS, mm.K_INPUT, mm.K_EMBEDDING, mm.K_THRESHOLD, mm.K_THRESHOLD_RULE}
    table = Table(title=render.esc(the_model.path), box=box.ROUNDED, show_header=False, title_style="bold")
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(overflow="fold")
    size = the_model.path.stat().st_size
    table.add_row("file", f"{the_model.path.name} ({size / 1e6:.2f} MB), faceverify format {props[mm.K_FORMAT]}")
    for label, value in shown.items():
        table.add_row(label, value)
    for label, key in rows:
        used.add(key)
        table.add_row(label, render.describe(props.get(key), skip=("model", "preprocess", "preset", "protocol")))
    for key in sorted(set(props) - used):
        table.add_row(render.esc(key), render.describe(props[key]))
    table.add_section()
    cuda_note = ""
    if "CUDAExecutionProvider" in available and the_model.provider != "CUDAExecutionProvider":
        cuda_note = "  (CUDA is in this ONNX Runtime build" + (
            ", but not usable on this machine)" if provider == Provider.auto else "; not requested)")
    table.add_row("provider", f"[magenta]{the_model.provider}[/] ran this session{cuda_note}")
    table.add_row("available", ", ".join(available))
    render.console().print(table)
