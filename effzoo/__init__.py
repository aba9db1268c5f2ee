"""effzoo: every EfficientNet V1/V2 variant as a P3/P4/P5 feature extractor.

``import effzoo`` never imports Ultralytics; ``import effzoo.yolo`` does.
"""

from __future__ import annotations

from . import variants as _variants  # noqa: F401  (registers every variant)
from .backbone import Backbone, Classifier
from .errors import (
    CorruptWeightsError,
    EffzooError,
    InvalidArgumentError,
    UnknownModelError,
    UnknownTagError,
    WeightsMismatchError,
    WeightsNotFoundError,
    WeightsUnavailableError,
)
from .factory import ModelInfo, create, model_info
from .registry import BackboneSpec, list_models, lookup

__version__ = "0.1.0"

__all__ = [
    "Backbone",
    "BackboneSpec",
    "Classifier",
    "CorruptWeightsError",
    "EffzooError",
    "InvalidArgumentError",
    "ModelInfo",
    "UnknownModelError",
    "UnknownTagError",
    "WeightsMismatchError",
    "WeightsNotFoundError",
    "WeightsUnavailableError",
    "__version__",
    "create",
    "list_models",
    "lookup",
    "model_info",
]
