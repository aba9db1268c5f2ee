"""Any timm EfficientNet block after fusion: [expand] -> [depthwise] -> [SE] -> project.

``fuse_block`` turns ``ConvBnAct``, ``DepthwiseSeparableConv``, ``InvertedResidual``
and ``EdgeResidual`` into a ``FusedBlock`` of ``FusedConv`` layers; the residual add
runs inside the projection's oneDNN call where it can.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ExportError, timm_internals
from ..padding import same_pad
from . import modes
from .layers import FusedConv, FusedSE, fused_se

with timm_internals():
    from timm.models._efficientnet_blocks import (
        ConvBnAct,
        DepthwiseSeparableConv,
        EdgeResidual,
        InvertedResidual,
    )

#: an expanded tensor larger than this many bytes is computed in row tiles
TILE_MIN_BYTES = 16 << 20
#: bytes of one tile of the expanded tensor (about an L2 cache)
TILE_BYTES = 4 << 20


class FusedBlock(nn.Module):
    """A fused EfficientNet block.

    In an inverted residual whose expanded tensor would be large (the early,
    high-resolution stages), the 1x1 expansion and the depthwise convolution run
    tile by tile over output rows on the oneDNN path: each tile of the expanded
    tensor is made (with the rows the depthwise kernel needs around it), consumed
    while still in cache, and dropped. The full expanded tensor is never allocated;
    every output value is computed with exactly the same taps (measured: B0 88.7 vs
    94.6 ms at 640; smaller tiles were slower, 512 KiB: 126 ms).
    """

    #: the first block after an output level checks its input (``modes``)
    checks_input = False

    def __init__(self, convs: list[FusedConv], se: FusedSE | None, has_skip: bool) -> None:
        super().__init__()
        self.convs = nn.ModuleList(convs)
        self.se = se
        self.has_skip = has_skip
        pw = convs[0]
        self.tileable = (
            len(convs) == 3
            and tuple(pw.weight.shape[-2:]) == (1, 1)
            and pw.stride == (1, 1)
            and convs[1].groups == convs[1].weight.shape[0] > 1
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.checks_input:
            modes.check_finite(x)
        shortcut = x
        convs = list(self.convs)
        y = self._expand_depthwise_tiled(x) if self.tileable else None
        if y is not None:
            x, convs = y, convs[2:]
        for conv in convs[:-1]:
            x = conv(x)
        last = convs[-1]
        gate = self.se(x) if self.se is not None else None
        residual = shortcut if self.has_skip else None
        if last.onednn is not None and last.onednn[0] == "none":
            return last(x, residual=residual, scale=gate)
        # an activation after the last conv (ConvBnAct): the shortcut is added after it
        y = last(x, scale=gate)
        if residual is None:
            return y
        return y.add_(residual) if last.uses_onednn(x) else y + residual

    def _expand_depthwise_tiled(self, x: torch.Tensor) -> torch.Tensor | None:
        """Depthwise(expand(x)) in row tiles, or None where tiling does not apply."""
        pw, dw = self.convs[0], self.convs[1]
        b, _, h, w = x.shape
        row_bytes = b * pw.weight.shape[0] * w * x.element_size()
        # uses_onednn() first: while exporting, no size test may become a guard
        if not (pw.uses_onednn(x) and dw.uses_onednn(x)) or row_bytes * h < TILE_MIN_BYTES:
            return None
        k, s, d = int(dw.weight.shape[2]), dw.stride[0], dw.dilation[0]
        width = dw.dim_geometry(w, 1)
        if width is None:
            return None
        if dw.same:
            top_pad, bottom_pad = same_pad(h, k, s, d)
        else:
            top_pad = bottom_pad = dw.padding[0]
        h_out = (h + top_pad + bottom_pad - d * (k - 1) - 1) // s + 1
        kernel = dw.grow(dw.weight, False, width[0])
        rows = max(1, TILE_BYTES // (row_bytes * s))
        tiles = []
        for o0 in range(0, h_out, rows):
            o1 = min(h_out, o0 + rows)
            i0, i1 = o0 * s - top_pad, (o1 - 1) * s - top_pad + d * (k - 1) + 1
            # tiles are new tensors: each reuses the memory of the one freed before it
            m = pw(x[:, :, max(i0, 0) : min(i1, h)])
            if i0 < 0 or i1 > h:
                m = F.pad(m, (0, 0, max(0, -i0), max(0, i1 - h)))
            tiles.append(dw.run(m, kernel, [0, width[1]], use_onednn=True))
        return torch.cat(tiles, dim=2)


def _check_plain(block: nn.Module) -> None:
    aa = getattr(block, "aa", None)
    if aa is not None and not isinstance(aa, nn.Identity):
        raise ExportError(f"cannot fuse {type(block).__name__} with anti-aliasing")
    if getattr(block, "conv_s2d", None) is not None:
        raise ExportError(f"cannot fuse {type(block).__name__} with space-to-depth")


def fuse_block(block: nn.Module) -> FusedBlock:
    """Fold one timm EfficientNet block."""
    _check_plain(block)
    if isinstance(block, InvertedResidual):
        convs = [
            FusedConv(block.conv_pw, block.bn1, None),
            FusedConv(block.conv_dw, block.bn2, None),
            FusedConv(block.conv_pwl, block.bn3, None),
        ]
    elif isinstance(block, DepthwiseSeparableConv):
        convs = [
            FusedConv(block.conv_dw, block.bn1, None),
            FusedConv(block.conv_pw, block.bn2, None),
        ]
    elif isinstance(block, EdgeResidual):
        convs = [
            FusedConv(block.conv_exp, block.bn1, None),
            FusedConv(block.conv_pwl, block.bn2, None),
        ]
    elif isinstance(block, ConvBnAct):
        return FusedBlock([FusedConv(block.conv, block.bn1, None)], None, block.has_skip)
    else:
        raise ExportError(f"cannot fuse block type {type(block).__name__}")
    return FusedBlock(convs, fused_se(block.se), block.has_skip)
