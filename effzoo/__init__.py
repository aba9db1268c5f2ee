"""effzoo: every EfficientNet V1/V2 variant as a P3/P4/P5 feature extractor.

``import effzoo`` never imports Ultralytics; ``import effzoo.yolo`` does.
"""

from __future__ import annotations

from . import variants as _variants  # noqa: F401  (registers every variant)
from ._version import __version__
from .errors import (
    CorruptWeightsError,
    DependencyError,
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
from .errors import dependency_error as _dependency_error
from .registry import BackboneSpec, list_models, lookup

try:
    from .backbone import Backbone, Classifier
    from .factory import ModelInfo, create, model_info
except Exception as _e:  # a dependency that fails at import (a broken timm, torch, ...)
    _broken = _dependency_error(_e)
    if _broken is None:
        raise
    _broken.__cause__ = _e

    def __getattr__(name: str) -> object:
        """``import effzoo`` still works (so do ``effzoo env`` and the CLI's one-line
        error); using the API raises the ``DependencyError`` naming the package and fix."""
        if name in ("Backbone", "Classifier", "ModelInfo", "create", "model_info"):
            raise _broken
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Backbone",
    "BackboneSpec",
    "Classifier",
    "CorruptWeightsError",
    "DependencyError",
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
