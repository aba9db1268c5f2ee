"""What a checkpoint holds of an effzoo layer: effzoo's data, not timm's classes.

Ultralytics pickles the whole model into ``best.pt``. Pickled as they are, the effzoo
layers would name timm's private modules (``timm.models._efficientnet_blocks``,
``timm.layers.norm_act``, ...), and a checkpoint would stop loading the day timm moves
one. So each layer pickles as ``effzoo.yolo.modules.rebuild(cls, held)``, where
``held`` (``hold``) is plain data (the ``BackboneSpec`` row and how the backbone was
built, the layer's own attributes and settings, the versions that wrote it) and the
state dict. ``rebuild`` builds the same modules through timm on the meta device (nothing
allocated), folds them if the saved layer was fused, and assigns the saved tensors
(dtype, device and memory format as saved: Ultralytics saves float16).

Formats: 1 is effzoo 0.1 (timm's classes pickled: loads while timm keeps those module
paths); 2 is this one. The record is checked before it is rebuilt, by the rules every
loader applies (``effzoo.weights.layer_record``): a format newer than ``FORMAT`` raises
``CheckpointFormatError`` naming the effzoo that wrote it and this one; a damaged record
says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .._version import __version__
from ..backbone import Backbone
from ..errors import CheckpointFormatError
from ..weights import layer_record
from ..weights.layer_record import FORMAT, digest

#: nn.Module's own bookkeeping, rebuilt rather than pickled
_MODULE_STATE = ("_parameters", "_buffers", "_modules")
_PLAIN = (bool, int, float, str, type(None))


def versions() -> dict[str, str]:
    """The versions a checkpoint records (what a user must install to load it)."""
    import timm

    return {"effzoo": __version__, "timm": timm.__version__, "torch": torch.__version__}


def _plain(module: nn.Module) -> dict[str, Any]:
    """An effzoo module's own settings (flags, sizes), not its tensors or submodules."""
    return {
        k: v
        for k, v in vars(module).items()
        if not k.startswith("_")
        and k != "training"
        and (
            isinstance(v, _PLAIN)
            or (isinstance(v, tuple) and all(isinstance(x, _PLAIN) for x in v))
        )
    }


def built_as(backbone: Backbone) -> dict[str, Any]:
    """How ``backbone`` was built: what ``Backbone(...)`` needs to build it again."""
    return {
        "spec": backbone.spec,
        "out_indices": tuple(backbone.out_indices),
        "width_mult": backbone.width_mult,
        "depth_mult": backbone.depth_mult,
        "in_chans": int(backbone.conv_stem.weight.shape[1]),  # fused or not
        # absent from the earliest 0.1 backbones: the variant's own then
        "padding": getattr(backbone, "padding", backbone.spec.padding),
        "bn_eps": getattr(backbone, "bn_eps", backbone.spec.bn_eps),
    }


def hold(layer: nn.Module, build: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The data a layer pickles as; ``extra``: what its class adds (its stage count, ...)."""
    named = dict(layer.named_modules())
    return {
        "format": FORMAT,
        "versions": versions(),
        "build": build,
        # the drop-path rate is not kept by timm's modules but in them, per block
        "drop_probs": {
            n: float(m.drop_prob)
            for n, m in named.items()
            if isinstance(getattr(m, "drop_prob", None), float)
        },
        "attrs": {k: v for k, v in vars(layer).items() if k not in _MODULE_STATE},
        "effzoo_modules": {
            n: _plain(m) for n, m in named.items() if n and type(m).__module__.startswith("effzoo.")
        },
        "eval": [n for n, m in named.items() if not m.training],
        "frozen": [n for n, p in layer.named_parameters() if not p.requires_grad],
        "tensors": (tensors := layer.state_dict()),
        "digest": digest(tensors),
        **extra,
    }


def backbone_from(held: dict[str, Any]) -> Backbone:
    """The whole backbone the layer was cut from, on the meta device (drop-path
    structure as saved)."""
    build = dict(held["build"])
    spec = build.pop("spec")
    rate = 1.0 if any(p > 0 for p in held["drop_probs"].values()) else 0.0
    return Backbone(spec, **build, drop_path_rate=rate, device="meta")


def restore(layer: nn.Module, held: dict[str, Any], *, fuse: Callable[[], None] | None) -> None:
    """Give the rebuilt ``layer`` what the saved one had: its fusion, tensors, settings,
    train/eval modes and frozen parameters."""
    named = dict(layer.named_modules())
    for name, p in held["drop_probs"].items():
        if name in named:
            named[name].drop_prob = p  # type: ignore[assignment]
    if fuse is not None:
        fuse()
        named = dict(layer.named_modules())
    for name, attrs in held["effzoo_modules"].items():
        if name in named:
            for key, value in attrs.items():
                setattr(named[name], key, value)
    layer.load_state_dict(held["tensors"], strict=True, assign=True)
    left = [n for n, t in (*layer.named_parameters(), *layer.named_buffers()) if t.is_meta]
    if left:
        raise CheckpointFormatError(
            f"the checkpoint's {type(layer).__name__} layer does not hold {left[0]!r}: "
            "it was not written by this layer's code; load it with the effzoo that wrote it",
        )
    layer.__dict__.update(held["attrs"])
    evals = set(held["eval"])
    for name, m in layer.named_modules():
        m.training = name not in evals
    frozen = set(held["frozen"])
    for name, p in layer.named_parameters():
        p.requires_grad_(name not in frozen)


def rebuilt(cls: type, held: dict[str, Any]) -> nn.Module:
    """``cls._rebuilt(held)``, once the record is checked (``layer_record.check``, the rules
    ``pretrained="best.pt"`` applies too: ``CheckpointFormatError`` for a newer format or a
    damaged record); whatever stops the rebuild is one ``CheckpointFormatError`` naming
    the effzoo and timm versions that wrote the checkpoint and those installed."""
    layer_record.check(held, layer=cls.__name__)
    try:
        return cls._rebuilt(held)  # type: ignore[attr-defined, no-any-return]
    except CheckpointFormatError:
        raise
    except Exception as e:
        wrote, have = layer_record.wrote(held), versions()
        written = (wrote.get("effzoo"), wrote.get("timm"))
        if written in ((have["effzoo"], have["timm"]), (None, None)):
            # the versions that wrote it are these (or unrecorded): they are not the cause
            raise layer_record.damaged(
                f"its record does not fit its tensors: rebuilding its effzoo {cls.__name__} "
                f"layer failed ({type(e).__name__}: {str(e)[:200]})",
                f"{type(e).__name__} rebuilding {cls.__name__}",
            ) from e
        need = (
            f'pip install "timm=={wrote.get("timm")}", and in a checkout of effzoo '
            f'{wrote.get("effzoo")}: pip install ".[yolo]"'
        )
        raise CheckpointFormatError(
            f"cannot rebuild the checkpoint's effzoo {cls.__name__} layer "
            f"({type(e).__name__}: {str(e)[:200]}), written by effzoo {wrote.get('effzoo')} "
            f"with timm {wrote.get('timm')} (this is effzoo {have['effzoo']} with timm "
            f'{have["timm"]}). Fix: {need} (docs/yolo.md, "What a checkpoint holds")',
            reason=f"{type(e).__name__} rebuilding {cls.__name__}",
        ) from e
