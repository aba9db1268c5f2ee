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
    DependencyError,
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
from .errors import dependency_error as _dependency_error
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
    try:
        module = importlib.import_module(f"effzoo.{_LAZY[name]}")
    except Exception as e:  # a dependency that fails at import (a broken timm, torch, ...)
        typed = _dependency_error(e)
        if typed is None:
            raise
        # ``import effzoo`` still works (so do ``effzoo env`` and the CLI's one-line
        # error); using the API raises the DependencyError naming the package and fix
        raise typed from e
    return getattr(module, name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "Backbone",
    "BackboneSpec",
    "CheckpointFormatError",
    "Classifier",
    "CorruptWeightsError",
    "DependencyError",
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
