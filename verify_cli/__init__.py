"""faceverify: say whether two face photos show the same person (ONNX Runtime, no torch)."""

__version__ = "0.1.0"
