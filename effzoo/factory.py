"""``create`` and ``model_info``: the public entry points, with argument checks."""

from __future__ import annotations

import difflib
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from . import _checks as checks
from . import weights
from .backbone import Backbone, Classifier, round_fn
from .errors import InvalidArgumentError
from .registry import BackboneSpec, lookup


@dataclass(frozen=True, kw_only=True)
class BackboneRequest:
    """A checked ``create()`` call: every entry point (``create()``, a yaml row,
    ``effzoo yaml``) checks its input once, in its own vocabulary, into one; ``build``
    consumes it without looking anything up or checking it again."""

    spec: BackboneSpec
    out_indices: tuple[int, ...] = (2, 3, 4)
    width_mult: float = 1.0
    depth_mult: float = 1.0
    in_chans: int = 3
    pretrained: bool | str | os.PathLike[str] = False
    drop_path_rate: float = 0.0
    features_only: bool = True
    weights_tag: str | None = None


#: what create() takes besides the name (its error for an unknown option lists them)
_CREATE_OPTIONS = tuple(f.name for f in fields(BackboneRequest) if f.name != "spec")


def create(
    name: str | BackboneSpec,
    *,
    out_indices: Sequence[int] = (2, 3, 4),
    width_mult: float = 1.0,
    depth_mult: float = 1.0,
    in_chans: int = 3,
    pretrained: bool | str = False,
    drop_path_rate: float = 0.0,
    features_only: bool = True,
    weights_tag: str | None = None,
    **unknown: Any,
) -> Backbone | Classifier:
    """Build an EfficientNet variant as a feature extractor (or, with
    ``features_only=False``, as the full ImageNet classifier).

    ``pretrained`` is ``False``, ``True`` (the variant's default weights tag), a tag
    name (``"ns_jft_in1k"`` or ``"tf_efficientnet_b7.ns_jft_in1k"``), or a path to a
    ``.safetensors``/``.pth`` file (timm, torchvision or lukemelas layout);
    ``weights_tag`` says which tag such a file holds when its metadata and name do not.
    A width/depth-scaled model starts from the full-size weights by weight selection.
    ``model.weights`` records what was loaded, ``model.pretrained_cfg`` the
    preprocessing (mean, std, input_size, ...) the weights expect.
    """
    if unknown:
        key = next(iter(unknown))
        close = difflib.get_close_matches(key, _CREATE_OPTIONS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise InvalidArgumentError(
            f"create() got an unknown option {key!r}.{hint} Options: {', '.join(_CREATE_OPTIONS)}"
        )
    return build(
        BackboneRequest(  # checked in this order: the first bad option is the one named
            spec=lookup(name),
            width_mult=checks.multiplier("width_mult", width_mult),
            depth_mult=checks.multiplier("depth_mult", depth_mult),
            in_chans=checks.positive_int("in_chans", in_chans, most=checks.MAX_IN_CHANS),
            drop_path_rate=checks.drop_path_rate(drop_path_rate),
            pretrained=checks.pretrained(pretrained) or False,  # None: not pretrained
            out_indices=checks.levels("out_indices", out_indices, first=0),
            features_only=checks.boolean("features_only", features_only),
            weights_tag=checks.optional_str("weights_tag", weights_tag),
        )
    )


def build(req: BackboneRequest) -> Backbone | Classifier:
    """The model a checked request asks for, with its weights loaded (``create()``'s work
    after the checks)."""
    spec = req.spec
    source = weights.resolve(spec, req.pretrained, weights_tag=req.weights_tag)
    options = dict(
        width_mult=req.width_mult,
        depth_mult=req.depth_mult,
        in_chans=req.in_chans,
        drop_path_rate=req.drop_path_rate,
        padding=source.padding if source else spec.padding,
        bn_eps=source.bn_eps if source else spec.bn_eps,
        # pretrained: build without allocating/initialising, load_into assigns the weights
        device="meta" if source is not None else None,
    )
    model: Backbone | Classifier
    if req.features_only:
        model = Backbone(spec, out_indices=req.out_indices, **options)
    else:
        model = Classifier(spec, num_classes=source.num_classes if source else 1000, **options)
    # the preprocessing of the weights loaded; with random init the default tag's statistics
    # (the usual ImageNet-style input) and no tag: it never names weights that were not loaded
    model.pretrained_cfg = weights.preprocessing(spec, source, in_chans=req.in_chans)
    if source is None:
        model.pretrained_cfg["tag"] = None
    else:
        model.weights = weights.load_into(model, source)
    return model


@dataclass(frozen=True)
class ModelInfo:
    """What ``effzoo.model_info`` reports about one variant (width/depth 1.0)."""

    name: str
    family: str
    timm_arch: str
    resolution: int
    params: int  # the feature extractor at out_indices (2, 3, 4)
    classifier_params: int  # the full ImageNet classifier
    paper_params_m: float
    channels: tuple[int, ...]  # per level P1..P5
    strides: tuple[int, ...]
    padding: str
    aliases: tuple[str, ...]
    default_tag: str | None = None
    tags: tuple[str, ...] = field(default=())


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def model_info(name: str | BackboneSpec) -> ModelInfo:
    """Describe a variant without allocating its weights (built on the meta device)."""
    return _model_info(lookup(name))


@functools.cache
def _model_info(spec: BackboneSpec) -> ModelInfo:
    # P3-P5 needs every stage, so the all-levels extractor has the same parameters
    feats = Backbone(spec, out_indices=(0, 1, 2, 3, 4), device="meta")
    params = count_params(feats)
    # the classifier adds timm's head: 1x1 conv (no bias), BN, and the 1000-way linear
    head = round_fn(spec)(spec.num_features) if spec.round_num_features else spec.num_features
    classifier_params = params + head * feats.out_channels[-1] + 2 * head + 1000 * head + 1000
    tags = weights.tags_for(spec)
    return ModelInfo(
        name=spec.name,
        family=spec.family,
        timm_arch=spec.timm_arch,
        resolution=spec.resolution,
        params=params,
        classifier_params=classifier_params,
        paper_params_m=spec.paper_params_m,
        channels=tuple(feats.out_channels),
        strides=tuple(feats.strides),
        padding=spec.padding or "symmetric",
        aliases=spec.aliases,
        default_tag=tags[0] if tags else None,
        tags=tuple(tags),
    )
