"""The feature-extractor module. timm builds every block; effzoo decides which.

``Backbone`` is timm's ``EfficientNetFeatures`` built from an effzoo spec row, with
the width/depth scaling applied on top of the variant's own coefficients, the
stages past the deepest requested level left out, and the feature contract
(``out_channels``, ``strides``) exposed for detectors.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
from torch import nn

from .errors import ExportError, InvalidArgumentError, timm_internals
from .inputs import check_images
from .registry import LEVEL_STRIDES, BackboneSpec
from .training import checkpoint_stage

with timm_internals():
    from timm.layers import get_act_layer
    from timm.models._efficientnet_builder import decode_arch_def, round_channels
    from timm.models.efficientnet import EfficientNet, EfficientNetFeatures


def round_fn(spec: BackboneSpec, width_mult: float = 1.0) -> partial:
    """Channel rounding for a spec at an extra width multiplier (multiples of 8)."""
    return partial(
        round_channels,
        multiplier=spec.width * width_mult,
        divisor=8,
        round_limit=spec.round_limit,
    )


def block_args(spec: BackboneSpec, depth_mult: float = 1.0) -> list[list[dict[str, Any]]]:
    """timm block arguments per stage, depths scaled (rounded up) by ``depth_mult``."""
    return decode_arch_def(
        [list(stage) for stage in spec.arch],
        spec.depth * depth_mult,
        depth_trunc="ceil",
        fix_first_last=spec.fix_first_last,
    )


def stages_for_level(stage_args: Sequence[Sequence[dict[str, Any]]], level: int) -> int:
    """How many stages are needed to produce feature ``level`` (0..4, stride 2..32)."""
    reduction, needed = 2, 0
    for i, stage in enumerate(stage_args):
        reduction *= stage[0]["stride"]
        if reduction == LEVEL_STRIDES[level]:
            needed = i + 1
        elif reduction > LEVEL_STRIDES[level]:
            break
    return needed


class _Variant:
    """What Backbone and Classifier share: timm's constructor called for a spec row, and the
    spec and scaling they were built with, and where their weights came from."""

    def _build(
        self,
        spec: BackboneSpec,
        stage_args: list[list[dict[str, Any]]],
        width_mult: float,
        depth_mult: float,
        in_chans: int,
        drop_path_rate: float,
        padding: str | None,
        bn_eps: float | None,
        device: torch.device | str | None,
        **timm_only: Any,
    ) -> None:
        """timm's ``__init__`` (EfficientNetFeatures or EfficientNet) for ``spec``; padding
        and BN epsilon default to the spec's."""
        padding = spec.padding if padding is None else padding
        bn_eps = spec.bn_eps if bn_eps is None else bn_eps
        super().__init__(  # type: ignore[call-arg]
            stage_args,
            in_chans=in_chans,
            stem_size=spec.stem_size,
            fix_stem=spec.fix_stem,
            pad_type=padding,
            act_layer=get_act_layer(spec.act),
            norm_layer=partial(nn.BatchNorm2d, **({} if bn_eps is None else {"eps": bn_eps})),
            round_chs_fn=round_fn(spec, width_mult),
            drop_path_rate=drop_path_rate,
            device=device,
            **timm_only,
        )
        self.spec = spec
        self.width_mult = float(width_mult)
        self.depth_mult = float(depth_mult)
        self.padding = padding
        self.bn_eps = bn_eps
        #: preprocessing of the weights (mean, std, input_size, ...); set by create()
        self.pretrained_cfg: dict[str, Any] = {}
        #: where the weights came from (None: random init); set by create()
        self.weights: Any = None


class Backbone(_Variant, EfficientNetFeatures):
    """An EfficientNet as a multi-scale feature extractor.

    ``forward(x)`` returns a list of feature maps, one per entry of ``out_indices``
    (levels 0..4 at strides 2, 4, 8, 16, 32), shallowest first.
    """

    def __init__(
        self,
        spec: BackboneSpec,
        *,
        out_indices: Sequence[int] = (2, 3, 4),
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
        padding: str | None = None,
        bn_eps: float | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        args = block_args(spec, depth_mult)
        args = args[: stages_for_level(args, max(out_indices))]
        options = (width_mult, depth_mult, in_chans, drop_path_rate, padding, bn_eps, device)
        self._build(spec, args, *options, out_indices=tuple(out_indices))
        self.out_indices = tuple(out_indices)
        self.out_channels: list[int] = list(self.feature_info.channels())
        self.strides: list[int] = list(self.feature_info.reduction())

    def extra_repr(self) -> str:
        return (
            f"variant={self.spec.name}, width_mult={self.width_mult}, "
            f"depth_mult={self.depth_mult}, out_indices={self.out_indices}"
        )

    # -- fine-tuning and inference switches (defaults; set per instance by the methods) --
    #: stem + this many stages are frozen (-1: nothing); see ``freeze``
    frozen_stages: int = -1
    #: batch norms stay in eval mode (running statistics) while training
    norm_eval: bool = False
    #: ``fuse()`` has run: batch norms folded, inference only
    fused: bool = False

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps for ``out_indices``, shallowest first.

        With ``set_grad_checkpointing(True)`` each stage is recomputed in backward
        instead of keeping its activations (batch-norm statistics updated once).
        ``InvalidArgumentError`` for an input that is not (batch, in_chans, height, width).
        """
        self._check_input(x)
        x = self.bn1(self.conv_stem(x))
        features = [x] if 0 in self._stage_out_idx else []
        ckpt = self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting()
        for i, stage in enumerate(self.blocks):
            x = checkpoint_stage(stage, x) if ckpt else stage(x)
            if i + 1 in self._stage_out_idx:
                features.append(x)
        return features

    def _check_input(self, x: torch.Tensor) -> None:
        """A clear error instead of one from inside torch (``effzoo.inputs``)."""
        name = self.spec.name
        check_images(
            x,
            self.conv_stem.weight,  # in_chans, dtype and device, also after fuse()
            who=name,
            channels_fix=f"build the model for them with create({name!r}, ..., in_chans={{got}})",
        )

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each stage in backward instead of storing its activations."""
        if enable and self.fused:
            raise ExportError(
                "a fused backbone is inference-only; checkpointing needs the unfused one"
            )
        self.grad_checkpointing = bool(enable)

    def fuse(self, *, channels_last: bool | None = None, reuse_buffers: Any = None) -> Backbone:
        """Fold batch norms and fuse activations in place for inference; returns ``self``.

        The model must be in eval mode (``ExportError`` otherwise) and stays there:
        ``train(True)`` raises ``ExportError``. ``channels_last`` (default: on) also switches
        the weights, the input and the outputs to the channels-last memory format; the
        values are the same either way. The fused model equals the unfused one in every mode
        (grad, no_grad, inference_mode, float32/bfloat16/float16, autocast). See
        ``effzoo.fuse`` for what is fused and docs/performance.md for the gains.
        ``reuse_buffers`` is accepted for effzoo 0.1 code and does nothing (the memory plan
        it switched was removed; a ``FutureWarning`` says so).
        """
        from . import _checks as checks
        from .fuse import fuse_model

        if channels_last is not None:
            channels_last = checks.boolean("channels_last", channels_last)
        if reuse_buffers is not None:
            checks.boolean("reuse_buffers", reuse_buffers)
            warnings.warn(
                "fuse(reuse_buffers=...) does nothing since effzoo removed the fused "
                "model's memory plan; drop the argument "
                '(docs/performance.md, "Memory between calls: the plan was removed")',
                FutureWarning,
                stacklevel=2,
            )
        fuse_model(self, channels_last=channels_last)
        return self

    def freeze(self, stages: int | None = None) -> Backbone:
        """Freeze the stem and the first ``stages`` stages (all of them for ``None``).

        Frozen parameters stop requiring gradients and their batch norms stay in
        eval mode even under ``train()``. ``freeze(0)`` freezes the stem only;
        ``unfreeze()`` undoes it. Returns ``self``.
        """
        n = len(self.blocks)
        if stages is None:
            stages = n
        if isinstance(stages, bool) or not isinstance(stages, int) or not -1 <= stages <= n:
            raise InvalidArgumentError(
                f"freeze(stages) takes an int in -1..{n} (stem + that many of the {n} stages) "
                f"or None for the whole backbone, got {stages!r}"
            )
        self.frozen_stages = stages
        for i, module in enumerate(self._stem_and_stages()):
            module.requires_grad_(i > stages)
        return self.train(self.training)

    def unfreeze(self) -> Backbone:
        """Make every parameter trainable again; returns ``self``."""
        return self.freeze(-1)

    def set_norm_eval(self, enable: bool = True) -> Backbone:
        """Keep every batch norm in eval mode (frozen statistics) while training.

        Their affine weights still train unless frozen. Usual for fine-tuning
        with small batches. Returns ``self``.
        """
        self.norm_eval = bool(enable)
        return self.train(self.training)

    def train(self, mode: bool = True) -> Backbone:
        """Training mode (``mode=True``) or eval mode; ``ExportError`` for training mode
        once fused (there are no batch norms left to train)."""
        if mode and self.fused:
            raise ExportError(
                f"this {self.spec.name} backbone is fused for inference, so it cannot train. "
                "Fix: build it again (effzoo.create(...) or its checkpoint), or train a "
                "copy.deepcopy(model) made before fuse() "
                '(docs/performance.md, "What `fuse()` does, and what was measured")'
            )
        super().train(mode)
        if mode:
            for i, module in enumerate(self._stem_and_stages()):
                if i <= self.frozen_stages:
                    module.eval()
            if self.norm_eval:
                for m in self.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.eval()
        return self

    def _stem_and_stages(self) -> list[nn.Module]:
        """[stem (conv_stem + bn1), stage 0, stage 1, ...]"""
        return [nn.ModuleList([self.conv_stem, self.bn1]), *self.blocks]


class Classifier(_Variant, EfficientNet):
    """The full ImageNet classifier of a variant (``create(..., features_only=False)``)."""

    def __init__(
        self,
        spec: BackboneSpec,
        *,
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
        padding: str | None = None,
        bn_eps: float | None = None,
        num_classes: int = 1000,
        device: torch.device | str | None = None,
    ) -> None:
        rnd = round_fn(spec, width_mult)
        options = (width_mult, depth_mult, in_chans, drop_path_rate, padding, bn_eps, device)
        self._build(
            spec,
            block_args(spec, depth_mult),
            *options,
            num_classes=num_classes,
            num_features=rnd(spec.num_features) if spec.round_num_features else spec.num_features,
        )
