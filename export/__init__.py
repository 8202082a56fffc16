"""Export stage: finalized checkpoint -> ONNX (tower and head as two subgraphs) -> parity on real LFW pairs."""

from export.config import ExportConfig
from export.parity import ParityReport
from export.pipeline import ExportResult, export_model

__all__ = ["ExportConfig", "ExportResult", "ParityReport", "export_model"]
