"""`faceverify serve`: the HTTP API (`pip install '.[serve]'`), on 127.0.0.1 unless told otherwise."""

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from verify_cli.cli.options import (
    FaceOption,
    ModelOption,
    NoDetectOption,
    Precision,
    PrecisionOption,
    Provider,
    ProviderOption,
    face_reader,
    load_model,
)
from verify_cli.errors import FaceverifyError


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 lets other machines in.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    gallery: Annotated[Path | None, typer.Option(
        "--gallery", "-g", metavar="DIR", show_default=False,
        help="A gallery for POST /identify (as `faceverify identify --gallery`; its index is reused and kept "
             "current).")] = None,
    api_key: Annotated[str | None, typer.Option(
        "--api-key", show_default=False, help="Require this key (header X-API-Key) on every endpoint but /health "
                                              "\\[default: $FACEVERIFY_API_KEY, else none].")] = None,
    max_bytes: Annotated[int, typer.Option("--max-bytes", min=1, help="Largest image accepted, in bytes.")]
    = 8 * 1024 * 1024,
    no_detect: NoDetectOption = False,
    face: FaceOption = "largest",
    model: ModelOption = None,
    precision: PrecisionOption = Precision.auto,
    provider: ProviderOption = Provider.auto,
) -> None:
    """Serve the model over HTTP: POST /verify (two images), /embed, /identify; GET /health, /model; the OpenAPI
    schema at /docs.

    The model and the face pipeline load once, at start-up. Ctrl-C or SIGTERM stops it.
    """
    try:
        import uvicorn

        from verify_cli.serve import Service, api_key_from, check_bind, create_app
    except ImportError as exc:
        raise FaceverifyError(f"faceverify serve needs its extra: pip install 'faceverify[serve]' ({exc.name} is "
                              "missing)") from None
    from verify_cli.cli.info import info_record

    if gallery is not None and not gallery.is_dir():
        raise FaceverifyError(f"{gallery}: no such gallery folder")
    the_model = load_model(model, provider, precision)
    reader = face_reader(the_model, no_detect, face, None)
    service = Service(the_model, reader, lambda: info_record(the_model, provider), gallery, max_bytes,
                      api_key_from(api_key))
    warning = check_bind(host)
    if warning is not None:
        sys.stderr.write(f"warning: {warning}\n")
    sys.stderr.write(f"faceverify serving {the_model.path.name} ({the_model.provider}) on http://{host}:{port} "
                     f"(API docs at /docs){'; API key required' if service.api_key else ''}\n")
    stopped_by: list[int] = []  # uvicorn stops on SIGINT/SIGTERM, then raises the signal again: noted here
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stopped_by.append(signum))
    try:
        uvicorn.run(create_app(service), host=host, port=port, log_level="warning", workers=1)
    finally:
        service.close()
    if signal.SIGINT in stopped_by:  # Ctrl-C: interrupted, as every command (130); SIGTERM: a clean stop, 0
        raise KeyboardInterrupt
