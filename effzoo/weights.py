"""Weights: catalogue, Hub download, local files. (Interface used by factory.create.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from .errors import InvalidArgumentError
from .registry import BackboneSpec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class WeightsSource:
    """Where pretrained weights come from, and how the model must be built for them."""

    padding: str
    bn_eps: float | None
    num_classes: int = 1000


def resolve(spec: BackboneSpec, pretrained: Any) -> WeightsSource | None:
    """Resolve ``pretrained`` (False/True/tag/path) to a source without loading it."""
    if pretrained is False or pretrained is None:
        return None
    raise InvalidArgumentError("pretrained weights are not available yet")


def preprocessing(spec: BackboneSpec, source: WeightsSource | None, *, in_chans: int = 3) -> dict:
    """The input preprocessing the weights expect (mean, std, input_size, ...)."""
    tf = spec.padding == "same"
    return {
        "mean": (0.5, 0.5, 0.5) if tf else IMAGENET_MEAN,
        "std": (0.5, 0.5, 0.5) if tf else IMAGENET_STD,
        "input_size": (in_chans, spec.resolution, spec.resolution),
    }


def load_into(model: nn.Module, source: WeightsSource) -> Any:
    raise InvalidArgumentError("pretrained weights are not available yet")


def tags_for(spec: BackboneSpec) -> list[str]:
    """The variant's weights tags, default first."""
    return []
