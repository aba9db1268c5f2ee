"""``pretrained=`` (False/None, True, a tag, a file path) to a ``WeightsSource``: the tag,
padding, BN epsilon and preprocessing to build for, and for a local file its layout and how
its tag was decided (docs/weights.md, "Local files"). Nothing is downloaded; a safetensors
file is read only as far as its header, a torch file unpickled once (``load_into`` takes
its tensors from the source).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from .. import _checks as checks
from ..errors import InvalidArgumentError, WeightsMismatchError, WeightsNotFoundError
from ..registry import BackboneSpec
from . import convert, yolo_file
from .catalogue import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Preprocessing,
    TagInfo,
    catalogue,
    default_tag,
    tag_info,
    tags_for,
)
from .files import (
    META_TAG,
    TORCH_SUFFIXES,
    check_inflation,
    errors_name_file,
    expand_path,
    file_metadata,
    hf_cache_origin,
    peek,
    read_state_dict,
)


@dataclass(frozen=True, kw_only=True)
class WeightsSource:
    """Where weights come from and how the model must be built for them (no I/O yet)."""

    variant: str
    padding: str
    bn_eps: float | None
    num_classes: int
    preprocessing: Preprocessing
    tag: TagInfo | None = None  # the catalogue tag (None: a torchvision file without one)
    path: Path | None = None  # a local file the user named
    layout: str | None = None  # detected layout of that local file
    tag_from: str = "catalogue"  # how the tag was decided (see docs/weights.md)
    #: a torch file's tensors, read once here and loaded from here (never re-read)
    tensors: dict[str, torch.Tensor] | None = field(default=None, compare=False, repr=False)
    #: the backbone taken out of an Ultralytics checkpoint (``tensors`` are its tensors)
    checkpoint: yolo_file.YoloBackbone | None = field(default=None, compare=False, repr=False)

    @property
    def tag_name(self) -> str | None:
        return self.tag.name if self.tag else None


def _from_tag(info: TagInfo, **extra: Any) -> WeightsSource:
    return WeightsSource(
        variant=info.variant,
        padding=info.padding,
        bn_eps=info.bn_eps,
        num_classes=info.num_classes,
        preprocessing=info.preprocessing,
        tag=info,
        **extra,
    )


def _looks_like_path(value: str) -> bool:
    return (
        os.sep in value
        or "/" in value
        or value.endswith((".safetensors", *TORCH_SUFFIXES))
        or os.path.exists(value)
    )


def resolve(
    spec: BackboneSpec, pretrained: Any, *, weights_tag: str | None = None
) -> WeightsSource | None:
    """Turn ``pretrained`` (False/None, True, a tag, a file path) into a source.

    ``weights_tag`` says which tag a local file holds (its padding, epsilon and
    preprocessing); without it, the file's effzoo metadata, its name, or its layout
    decide (docs/weights.md).
    """
    weights_tag = checks.optional_str("weights_tag", weights_tag)  # create() checked it too
    if pretrained is False or pretrained is None:
        if weights_tag is not None:
            raise InvalidArgumentError("weights_tag needs pretrained=PATH (the file it describes)")
        return None
    if pretrained is True:
        if weights_tag is not None:
            return _from_tag(tag_info(spec, weights_tag))
        return _from_tag(default_tag(spec))
    if isinstance(pretrained, str) and not _looks_like_path(pretrained):
        if weights_tag is not None:
            raise InvalidArgumentError(
                "weights_tag describes a local file; with a tag, pass pretrained=TAG only"
            )
        return _from_tag(tag_info(spec, pretrained))
    path = expand_path(pretrained, "pretrained=")
    if not path.is_file():
        raise WeightsNotFoundError(
            f"no weights file {path}; give an existing .safetensors/.pth path, or a tag of "
            f"{spec.name}: {', '.join(tags_for(spec))}",
            reason=f"no weights file {path}",
        )
    with errors_name_file(path):
        return _resolve_file(spec, path, weights_tag)


def _resolve_file(spec: BackboneSpec, path: Path, weights_tag: str | None) -> WeightsSource:
    tensors, yolo = None, None
    if path.suffix == ".safetensors":
        shapes = peek(path)
    else:  # a torch file is unpickled once, here; load_into takes the tensors from the source
        if path.suffix in TORCH_SUFFIXES and yolo_file.is_ultralytics_checkpoint(path):
            check_inflation(path)
            yolo = yolo_file.read(path)
            tensors = yolo.tensors
        else:
            tensors = read_state_dict(path)
        shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    layout, nc = convert.checked_layout(shapes)
    if yolo is not None:
        return _from_checkpoint(spec, path, yolo, layout, weights_tag)
    meta = file_metadata(path) if path.suffix == ".safetensors" else {}
    cache = hf_cache_origin(path)
    by_name = path.name.split(".safetensors")[0] if path.suffix == ".safetensors" else path.stem
    infos = catalogue().tags
    if weights_tag is not None:
        info, how = tag_info(spec, weights_tag), "argument"
    elif META_TAG in meta:
        info, how = tag_info(spec, meta[META_TAG]), "metadata"
    elif by_name in infos or (cache and cache.name in infos):
        info, how = tag_info(spec, by_name if by_name in infos else cache.name), "filename"
    elif layout == "lukemelas":  # ports of Google's TF checkpoints: TF padding, eps 1e-3
        tf = [t for t in tags_for(spec) if infos[t].arch.startswith("tf_")]
        plain = [t for t in tf if infos[t].tag == "in1k"]
        info, how = infos[(plain or tf or tags_for(spec))[0]], "layout"
    elif layout == "torchvision":  # torchvision's own training: symmetric padding, ImageNet norm
        d = default_tag(spec).preprocessing
        pre = Preprocessing(IMAGENET_MEAN, IMAGENET_STD, d.input_size, d.interpolation, d.crop_pct)
        eps = 1e-3 if spec.family == "v2" else 1e-5
        return WeightsSource(
            variant=spec.name,
            padding="",
            bn_eps=eps,
            num_classes=nc or 1000,
            preprocessing=pre,
            path=path,
            layout=layout,
            tag_from="layout",
            tensors=tensors,
        )
    else:
        info, how = default_tag(spec), "default"
    src = _from_tag(info, path=path, layout=layout, tag_from=how, tensors=tensors)
    return src if nc is None or nc == src.num_classes else replace(src, num_classes=nc)


def _from_checkpoint(
    spec: BackboneSpec,
    path: Path,
    yolo: yolo_file.YoloBackbone,
    layout: convert.Layout,
    weights_tag: str | None,
) -> WeightsSource:
    """The backbone of an Ultralytics checkpoint: built as it was trained (padding, BN
    epsilon, the normalization its layer applied), for the variant it was built as."""
    if yolo.variant is not None and yolo.variant != spec.name:
        raise WeightsMismatchError(
            f"{path} holds the backbone of an {yolo.variant} row, not {spec.name}; build the "
            f"variant it was trained as: {yolo.create_call(yolo.variant, path)}",
            reason=f"{path} holds an {yolo.variant} backbone",
        )
    base = tag_info(spec, weights_tag) if weights_tag is not None else default_tag(spec)
    d = base.preprocessing
    pre = Preprocessing(
        yolo.mean or d.mean, yolo.std or d.std, d.input_size, d.interpolation, d.crop_pct
    )
    if layout == "torchvision":  # torchvision's own modules: symmetric padding
        padding, eps = "", (1e-3 if spec.family == "v2" else 1e-5)
    else:
        padding = yolo.padding if yolo.padding is not None else base.padding
        eps = yolo.bn_eps if yolo.bn_eps is not None else base.bn_eps
    return WeightsSource(
        variant=spec.name,
        padding=padding,
        bn_eps=eps,
        num_classes=1000,
        preprocessing=pre,
        tag=tag_info(spec, weights_tag) if weights_tag is not None else None,
        path=path,
        layout=layout,
        tag_from="checkpoint",
        tensors=yolo.tensors,
        checkpoint=yolo,
    )


def preprocessing(
    spec: BackboneSpec, source: WeightsSource | None, *, in_chans: int = 3
) -> dict[str, Any]:
    """The weights' input preprocessing as a timm-style dict (mean, std, input_size,
    interpolation, crop_pct, ...); for ``source=None``, the default tag's."""
    if source is None:
        info = default_tag(spec)
        return info.preprocessing.as_dict(in_chans, info.name)
    return source.preprocessing.as_dict(in_chans, source.tag_name)
