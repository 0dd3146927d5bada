"""PyTorch / CompressAI side of tfci-rs: models, exporter, placeholder models and golden fixtures.

See training/README.md and docs/model-format.md (the binding contract for the exported files).
"""

from .models import (  # noqa: F401
    ARCHITECTURES,
    FAMILIES,
    Bls2017Gain,
    FactorizedGain,
    MeanScaleGain,
    build_family,
    build_model,
)

__all__ = [
    "ARCHITECTURES",
    "FAMILIES",
    "Bls2017Gain",
    "FactorizedGain",
    "MeanScaleGain",
    "build_family",
    "build_model",
]
