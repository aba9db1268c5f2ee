"""effzoo: every EfficientNet V1/V2 variant as a P3/P4/P5 feature extractor.

``import effzoo`` never imports Ultralytics; ``import effzoo.yolo`` does.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import variants as _variants  # noqa: F401  (registers every variant)
from ._version import __version__
from .errors import (
    CheckpointFormatError,
    CorruptWeightsError,
    EffzooError,
    ExportError,
    IncompatibleTimmError,
    InvalidArgumentError,
    UltralyticsContractError,
    UnknownModelError,
    UnknownTagError,
    UnverifiedWeightsError,
    WeightsMismatchError,
    WeightsNotFoundError,
    WeightsUnavailableError,
)
from .registry import BackboneSpec, list_models, lookup

if TYPE_CHECKING:
    from .backbone import Backbone, Classifier
    from .factory import ModelInfo, create, model_info

#: imported on first use, so that ``import effzoo`` (and ``import effzoo.yolo``, which
#: a checkpoint's unpickling runs) does not import timm until a model is built
_LAZY = {
    "Backbone": "backbone",
    "Classifier": "backbone",
    "ModelInfo": "factory",
    "create": "factory",
    "model_info": "factory",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'effzoo' has no attribute {name!r}")
    return getattr(importlib.import_module(f"effzoo.{_LAZY[name]}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "Backbone",
    "BackboneSpec",
    "CheckpointFormatError",
    "Classifier",
    "CorruptWeightsError",
    "EffzooError",
    "ExportError",
    "IncompatibleTimmError",
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
