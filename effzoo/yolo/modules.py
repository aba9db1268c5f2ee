"""The layers an effzoo yaml row becomes inside an Ultralytics model.

A row occupies one layer index per output level (P1..P5, or an ascending subset): a
``BackboneStem`` (the 0..1 input normalized with the weights' mean/std, the stem and the
stages up to the first level), then a ``BackboneStages`` per further level: plain
tensor-in, tensor-out modules that Ultralytics' forward, EMA, DDP and export treat like
any other. Each stage belongs to exactly one layer, cut once at build (``split_backbone``)
and folded where it is (``fold_backbones``), so every index is addressable from the head,
``freeze=N`` freezes whole stages, and the model table's parameter counts and the
state-dict keys (``model.1.stages...``) follow the layer index.

Checkpoints (format 2, ``checkpoint``) pickle each layer as ``rebuild(cls, data)``:
effzoo's data and the state dict, never timm's classes. The import paths they name stay
put: ``rebuild``, ``BackboneStem``, ``BackboneStages`` and ``Provenance`` here,
``effzoo.registry.BackboneSpec``, ``effzoo.weights.WeightsRecord``; effzoo 0.1
checkpoints (format 1) also ``effzoo.backbone.Backbone`` and timm's modules. Unpickling
one imports ``effzoo.yolo`` and with it registers the yaml rows (nothing else runs).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple

import torch
from torch import nn

# effzoo's model code builds on timm's internals: a timm that moved one raises effzoo's
# IncompatibleTimmError where it is imported (``errors.timm_internals``), an ImportError
# but not a ModuleNotFoundError, so Ultralytics' AutoInstall does not try to pip install it
from ..backbone import Backbone
from ..fuse import fuse_stages
from ..fuse.blocks import FusedBlock
from ..inputs import check_images
from . import checkpoint

if TYPE_CHECKING:
    from ..weights import WeightsRecord


@dataclass(frozen=True)
class Provenance:
    """What an effzoo backbone in a YOLO model started from (``str()``: the line of
    Ultralytics' build log), saved as the stem layer's ``provenance``."""

    backbone: str  # the variant and its extra multipliers: "efficientnet_b0 width x0.5 depth x1"
    start: Literal["pretrained", "random", "checkpoint"]
    weights: WeightsRecord | None = None  # "pretrained": what was loaded
    reason: str = ""  # "random": why
    checkpoint: str = ""  # "checkpoint": the file whose weights Ultralytics transfers
    #: "checkpoint": what that checkpoint's backbone started from (None: not recorded)
    earlier: Provenance | str | None = None

    def __str__(self) -> str:
        if self.start == "pretrained" and self.weights is not None:
            why = f"pretrained {self.weights.describe()}"
        elif self.start == "checkpoint":
            why = (
                f"weights from the checkpoint {self.checkpoint} (transferred by Ultralytics; "
                f"nothing fetched); it started from: {self.earlier or 'unrecorded'}"
            )
        else:
            why = f"random init: {self.reason}"
        return f"{self.backbone}: {why}"


class CheckpointStart(NamedTuple):
    """The checkpoint a model is being rebuilt for, and what its backbone started from."""

    file: str
    start: Provenance | str  # a string in older checkpoints, or "unrecorded ..."


def stage_ends(backbone: Backbone) -> list[int]:
    """For each output level of ``backbone``, how many of its stages produce it."""
    ends = []
    for name in backbone.feature_info.module_name():
        head, _, idx = name.partition(".")
        ends.append(int(idx) + 1 if head == "blocks" else 0)
    return ends


def _channel_stats(values: Sequence[float], in_chans: int) -> torch.Tensor:
    vals = [float(v) for v in values]
    if len(vals) != in_chans:  # e.g. a grayscale model on RGB statistics
        vals = [sum(vals) / len(vals)] * in_chans
    return torch.tensor(vals, dtype=torch.float32).view(1, in_chans, 1, 1)


class BackboneStem(nn.Module):
    """Input normalization, stem and the stages up to the first output level."""

    #: what the backbone started from, set by the row's build and saved with the model
    #: (``YOLO("best.pt").model.model[0].provenance``); older checkpoints hold the line as
    #: a string, the first 0.1 ones nothing (this default): read it with ``str()``
    provenance: Provenance | str = ""

    def __init__(self, backbone: Backbone, n_stages: int, *, level: int, row: str = "") -> None:
        super().__init__()
        in_chans = backbone.conv_stem.in_channels
        cfg = backbone.pretrained_cfg or {}
        self.register_buffer("mean", _channel_stats(cfg.get("mean", (0.0,)), in_chans))
        self.register_buffer("std", _channel_stats(cfg.get("std", (1.0,)), in_chans))
        backbone.blocks = backbone.blocks[:n_stages]
        self.backbone = backbone
        self.level = level  # P-level of this layer's output (1..5)
        self.row = row  # the yaml row it was built from, for messages

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bb = self.backbone
        check_images(
            x,
            bb.conv_stem.weight,
            who=self.row or "the effzoo backbone",
            channels_fix="build the model with ch={got}",
        )
        x = (x - self.mean) / self.std
        return bb.blocks(bb.bn1(bb.conv_stem(x)))

    def extra_repr(self) -> str:
        return f"P{self.level}, stages 0..{len(self.backbone.blocks) - 1}"

    # -- pickling: effzoo's data, rebuilt through timm (``checkpoint``) --

    def __reduce_ex__(self, protocol: object) -> tuple[object, ...]:
        bb = self.backbone
        built = checkpoint.built_as(bb)
        _SAVING.chain = (built, len(bb.blocks))  # for the stages layers pickled next
        held = checkpoint.hold(
            self,
            built,
            n_stages=len(bb.blocks),
            backbone={"pretrained_cfg": bb.pretrained_cfg, "weights": bb.weights},
        )
        return rebuild, (type(self), held)

    def __deepcopy__(self, memo: dict[int, object]) -> BackboneStem:
        return _copied(self, memo)

    @classmethod
    def _rebuilt(cls, held: dict) -> BackboneStem:
        bb = checkpoint.backbone_from(held)
        bb.pretrained_cfg = held["backbone"]["pretrained_cfg"]
        bb.weights = held["backbone"]["weights"]
        layer = cls(bb, held["n_stages"], level=held["attrs"]["level"])
        saved = held["effzoo_modules"].get("backbone", {})

        def fuse() -> None:
            bb.eval().fuse(channels_last=saved.get("channels_last"))

        checkpoint.restore(layer, held, fuse=fuse if saved.get("fused") else None)
        return layer


class BackboneStages(nn.Module):
    """The backbone stages between the previous output level and this one."""

    def __init__(self, stages: Sequence[nn.Module], *, first: int, level: int) -> None:
        super().__init__()
        self.stages = nn.Sequential(*stages)
        self.first = first  # index of the first stage in the whole backbone
        self.level = level
        #: how the backbone these stages were cut from was built (``checkpoint.built_as``;
        #: absent in layers of effzoo 0.1 checkpoints, which pickle as they always did)
        self.built: dict | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)

    def extra_repr(self) -> str:
        last = self.first + len(self.stages) - 1
        span = f"stage {self.first}" if last == self.first else f"stages {self.first}..{last}"
        return f"P{self.level}, {span}"

    def __reduce_ex__(self, protocol: object) -> tuple[object, ...]:
        built = getattr(self, "built", None)
        chain = getattr(_SAVING, "chain", None)
        if built is None and chain is not None and chain[1] == self.first:
            # loaded from an effzoo 0.1 checkpoint, which did not record its build: that
            # of the stem layer pickled just before, whose stages this one continues
            built = chain[0]
        if built is None:  # no stem before it: pickled as effzoo 0.1 did
            return super().__reduce_ex__(protocol)  # type: ignore[arg-type]
        if chain is not None and chain[1] == self.first:
            _SAVING.chain = (chain[0], self.first + len(self.stages))
        fused = all(isinstance(b, FusedBlock) for stage in self.stages for b in stage)
        held = checkpoint.hold(self, built, n_stages=len(self.stages), fused=fused)
        return rebuild, (type(self), held)

    def __deepcopy__(self, memo: dict[int, object]) -> BackboneStages:
        return _copied(self, memo)

    @classmethod
    def _rebuilt(cls, held: dict) -> BackboneStages:
        first, n = held["attrs"]["first"], held["n_stages"]
        blocks = list(checkpoint.backbone_from(held).blocks)[first : first + n]
        layer = cls(blocks, first=first, level=held["attrs"]["level"])

        def fuse() -> None:
            fuse_stages(layer.stages.eval(), channels_last=held.get("channels_last"))

        checkpoint.restore(layer, held, fuse=fuse if held.get("fused") else None)
        layer.built = held["build"]  # also for a layer first saved by effzoo 0.1
        return layer


#: per thread, while a model pickles: the build of the last stem layer pickled and the
#: first stage after it (effzoo 0.1's stages layers do not record their build)
_SAVING = threading.local()


def rebuild(cls: type, held: dict) -> nn.Module:
    """Unpickle an effzoo layer of a checkpoint (format 2): build it again through timm
    and give it the saved tensors and settings (``checkpoint``). Its import path is part
    of the checkpoint format."""
    return checkpoint.rebuilt(cls, held)


def _copied(layer: nn.Module, memo: dict[int, object]) -> nn.Module:
    """A deep copy as Python makes it for any module (EMA, ``deepcopy(model)``): the
    data path is only for pickling."""
    new = object.__new__(type(layer))
    memo[id(layer)] = new
    new.__dict__.update(copy.deepcopy(layer.__dict__, memo))
    return new


def split_backbone(backbone: Backbone, *, row: str = "") -> list[nn.Module]:
    """Cut a Backbone into one layer per output level (its ``out_indices``)."""
    ends = stage_ends(backbone)
    levels = [i + 1 for i in backbone.out_indices]
    stages = list(backbone.blocks)
    built = checkpoint.built_as(backbone)
    layers: list[nn.Module] = [BackboneStem(backbone, ends[0], level=levels[0], row=row)]
    for start, end, level in zip(ends, ends[1:], levels[1:]):
        layer = BackboneStages(stages[start:end], first=start, level=level)
        layer.built = built
        layers.append(layer)
    return layers


def fold_backbones(model: nn.Module) -> int:
    """Fold BatchNorm into the convolutions of every effzoo backbone in ``model``, each
    layer where it is (a stages layer starts a fused segment of its own); returns the
    number of backbones (stem layers) folded."""
    folded = 0
    for layer in model.modules():
        if isinstance(layer, BackboneStem):
            layer.backbone.eval().fuse()
            folded += 1
        elif isinstance(layer, BackboneStages):
            fuse_stages(layer.stages.eval())
    return folded
