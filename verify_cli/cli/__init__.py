"""The `faceverify` command: one module per command (compare, identify, evaluate, calibrate, embed, info) over shared
options and rendering.

Heavy modules (NumPy, Pillow, ONNX Runtime, rich) are imported inside the commands so `faceverify --help`
stays instant. `app.py` holds the Typer app and the one error boundary that turns every failure into an
exit code: 2 with one `error: ...` line on stderr, 130 when interrupted.
"""

from verify_cli.cli.app import app, exit_code, main

__all__ = ["app", "exit_code", "main"]
