"""Network definitions (torch): Koch et al.'s Siamese network, the report's variants and a plain tower."""

from models.siamese import ModelConfig, SiameseNet, build_model

__all__ = ["ModelConfig", "SiameseNet", "build_model"]
