"""Inference fast path: fold batch norms, fuse activations and squeeze-excite.

``fuse_model(model)`` rewrites an eval-mode effzoo backbone in place. Every timm
block (``ConvBnAct``, ``DepthwiseSeparableConv``, ``InvertedResidual``,
``EdgeResidual``) becomes a ``FusedBlock`` with the same arithmetic. One concern
per module:

* ``layers``, ``blocks``: folding, structural and exportable (what ``export`` and
  the converters see): batch norms folded into the convolution before them, TF
  "same" padding per input size, squeeze-excite as two linear layers, large
  expansions in row tiles;
* ``onednn``: the guarded dispatch to oneDNN's fused convolution (convolution,
  activation and residual add as one primitive) for float32 CPU inference, plain
  ``F.conv2d`` + activation everywhere else (gradients, bfloat16/float16, autocast,
  CUDA, tracing, export), so every mode gives the unfused model's values;
* ``modes``: when the fast path may run (not while exporting; not on a segment
  input holding NaN or infinity, so those propagate as in the unfused model).

Nothing is kept between calls and nothing process-wide is changed: a fused model
is an ``nn.Module`` of parameters only. (effzoo 0.1 kept intermediate buffers
between calls, a "memory plan"; it was removed, see docs/performance.md.)

The result equals the unfused model within float tolerance (reassociation only),
at any batch size (0 included), in grad, no_grad and inference mode, for float32,
bfloat16 and float16 models and under ``torch.autocast``. Not covered: finite
inputs so large that float32 overflows inside the network (far outside any
normalized image): folding moves where overflow happens, and a NaN made by it is 0
after a fused ReLU/ReLU6. On other devices (CUDA, MPS) no finiteness check runs (it
would wait for the device); grown kernels run there, so near a non-finite input NaN
can reach one row/column further than in the unfused model (it never disappears).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from ..errors import ExportError
from ..padding import same_pad
from . import onednn
from .blocks import FusedBlock, fuse_block
from .layers import FusedConv, FusedSE, fold_bn

#: a fused model runs channels-last unless told otherwise (``fuse(channels_last=False)``);
#: fused channels-last vs NCHW at 640x640, 2 threads: B0 85 vs 156 ms, Lite0 73 vs 130,
#: V2-S 292 vs 395, V2-B0 88 vs 130 -- channels-last wins for every family
CHANNELS_LAST_DEFAULT = True


def check_fusable(model: nn.Module) -> None:
    """Raise ``ExportError`` unless every module is in eval mode."""
    training = [name or type(model).__name__ for name, m in model.named_modules() if m.training]
    if training:
        raise ExportError(
            f"fuse() folds batch-norm running statistics, so it needs an eval-mode model; "
            f"{training[0]!r} is in training mode. Call model.eval() first."
        )


def _fused(stages: nn.Module, entries: set[int]) -> list[list[FusedBlock]]:
    """Fused copies of every block of ``stages`` (nothing is changed yet); the first
    block of each stage in ``entries`` starts a segment and checks its input."""
    fused = [[fuse_block(block).eval() for block in stage] for stage in stages]
    for j, stage in enumerate(fused):
        stage[0].checks_input = j in entries
    return fused


def _install(stages: nn.Module, fused: list[list[FusedBlock]], channels_last: bool) -> None:
    for stage, blocks in zip(stages, fused):
        for i, block in enumerate(blocks):
            stage[i] = block
    if channels_last:
        stages.to(memory_format=torch.channels_last)


#: whether this process was told that fused models run plain convolutions (told once:
#: a YOLO model folds its backbone in several pieces, each through fuse_model/fuse_stages)
_TOLD = False


def _warn_without_onednn() -> None:
    global _TOLD
    if not onednn.AVAILABLE and not _TOLD:
        _TOLD = True
        warnings.warn(
            "this torch build has no oneDNN fused convolution: fused models fold batch "
            "norms but run plain convolutions (same values, less speed-up; said once)",
            RuntimeWarning,
            stacklevel=4,
        )


def fuse_model(model: nn.Module, *, channels_last: bool | None = None) -> nn.Module:
    """Fuse an effzoo/timm EfficientNet feature extractor in place and return it."""
    if getattr(model, "fused", False):
        return model
    check_fusable(model)
    _warn_without_onednn()
    if channels_last is None:
        channels_last = CHANNELS_LAST_DEFAULT
    # build everything first: an unsupported block leaves the model untouched
    stem = FusedConv(model.conv_stem, model.bn1, None).eval()
    stem.checks_input = True
    # each segment between output levels checks its input for NaN/inf (``modes``)
    stages = _fused(model.blocks, set(getattr(model, "_stage_out_idx", ())))
    model.conv_stem = stem
    model.bn1 = nn.Identity().eval()
    _install(model.blocks, stages, channels_last)
    if channels_last:
        model.to(memory_format=torch.channels_last)
        stem.to_channels_last = True
    model.fused = True
    model.channels_last = channels_last
    return model


def fuse_stages(stages: nn.Module, *, channels_last: bool | None = None) -> nn.Module:
    """Fuse, in place, stages cut from a backbone that run as a segment of their own
    (an Ultralytics layer between two output levels): every block, the first one
    checking the segment's input. Already fused blocks are left as they are."""
    if all(isinstance(b, FusedBlock) for stage in stages for b in stage):
        return stages
    check_fusable(stages)
    _warn_without_onednn()
    if channels_last is None:
        channels_last = CHANNELS_LAST_DEFAULT
    _install(stages, _fused(stages, {0}), channels_last)
    return stages


def contiguous_weights(model: nn.Module) -> nn.Module:
    """Give every fused convolution in ``model`` contiguous NCHW weights and stop the
    stems' channels-last input conversion, in place; returns ``model``.

    For export: the values are unchanged, only the memory layout, which converters
    read from the weights (ExecuTorch's XNNPACK passes refuse channels-last ones).
    The CPU fast path then runs NCHW (slower, see ``CHANNELS_LAST_DEFAULT``)."""
    for m in model.modules():
        if isinstance(m, FusedConv):
            # clone, not .contiguous(): a depthwise (C, 1, k, k) weight with channels-last
            # strides counts as contiguous, yet PyTorch then picks channels-last outputs
            m.weight.data = m.weight.data.clone(memory_format=torch.contiguous_format)
            m.to_channels_last = False
        if getattr(m, "fused", False) and getattr(m, "channels_last", False):
            m.channels_last = False
    return model


def symmetric_padding_at(model: nn.Module, x: torch.Tensor) -> int:
    """Make every fused TF "same" convolution of ``model`` pad symmetrically at the
    input size of ``x``, in place: where the padding is asymmetric, the kernel gets a
    leading zero row/column (a new parameter, dilation 1) and the convolution the
    padding of the end side, the same taps. Valid at that input size only: for a
    converter that reads no ``Pad`` before a convolution right (Paddle Inference 3.2
    aborts on one) and exports at a static size. Returns the convolutions changed."""
    sizes: dict[int, tuple[int, int]] = {}
    convs = [m for m in model.modules() if isinstance(m, FusedConv) and m.same]

    def record(m: nn.Module, args: tuple[Any, ...]) -> None:
        sizes[id(m)] = (int(args[0].shape[2]), int(args[0].shape[3]))

    hooks = [c.register_forward_pre_hook(record) for c in convs]
    try:
        # with grad mode on (nothing requires grad) no oneDNN tiling bypasses forward()
        with torch.enable_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    changed = 0
    for c in convs:
        if id(c) not in sizes:
            continue
        rows, cols = (c.dim_geometry(sizes[id(c)][i], i) for i in (0, 1))
        if rows is None or cols is None:
            continue
        w = c.grow(c.weight.detach(), rows[0], cols[0])
        c.weight = nn.Parameter(w.clone(memory_format=torch.contiguous_format), requires_grad=False)
        c.same, c.padding = False, (rows[1], cols[1])
        changed += bool(rows[0] or cols[0])
    return changed


__all__ = [
    "CHANNELS_LAST_DEFAULT",
    "FusedBlock",
    "FusedConv",
    "FusedSE",
    "check_fusable",
    "contiguous_weights",
    "fold_bn",
    "fuse_block",
    "fuse_model",
    "fuse_stages",
    "same_pad",
    "symmetric_padding_at",
]
