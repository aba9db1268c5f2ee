"""effzoo: every EfficientNet V1/V2 variant as a P3/P4/P5 feature extractor.

``import effzoo`` never imports Ultralytics; ``import effzoo.yolo`` does.
"""

from __future__ import annotations

from . import variants as _variants  # noqa: F401  (registers every variant)
from ._version import __version__
from .backbone import Backbone, Classifier
from .errors import (
    CheckpointFormatError,
    CorruptWeightsError,
    EffzooError,
    ExportError,
    InvalidArgumentError,
    UltralyticsContractError,
    UnknownModelError,
    UnknownTagError,
    UnverifiedWeightsError,
    WeightsMismatchError,
    WeightsNotFoundError,
    WeightsUnavailableError,
)
from .factory import ModelInfo, create, model_info
from .registry import BackboneSpec, list_models, lookup

__all__ = [
    "Backbone",
    "BackboneSpec",
    "CheckpointFormatError",
    "Classifier",
    "CorruptWeightsError",
    "EffzooError",
    "ExportError",
    "InvalidArgumentError",
    "ModelInfo",
    "UltralyticsContractError",
    "UnknownModelError",
    "UnknownTagError",
    "UnverifiedWeightsError",
    "WeightsMismatchError",
    "WeightsNotFoundError",
    "WeightsUnavailableError",
    "__version__",
    "create",
    "list_models",
    "lookup",
    "model_info",
]
