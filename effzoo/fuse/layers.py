"""The fused layers: a convolution with its batch norm folded in, and the
squeeze-excite gate as two linear layers.

``FusedConv`` is structural (weights, bias, stride, TF "same" padding): what
``export`` and the converters see. Its forward takes oneDNN's fused convolution
where ``onednn.usable`` says so and plain ``F.conv2d`` + activation otherwise
(gradients, other dtypes and devices, autocast, tracing), with the same values:

* TF "same" padding is computed per input size; when it is symmetric it becomes the
  convolution's own padding. Otherwise (``end == begin + 1``) a depthwise kernel gets
  one leading zero row/column and the convolution a symmetric padding of ``end``:
  the same taps as an explicit pad, without copying the (large) input; a dense
  convolution pads explicitly (cheaper than a bigger kernel). A segment with a
  non-finite input pads explicitly everywhere (a zero tap would spread an inf).
* at batch 1 on the oneDNN path the squeeze-excite gate scales the *weights* of the
  projection (``W @ (g * x) == (W * g) @ x``) instead of the feature map (measured:
  B0 145 vs 152 ms, V2-S 519 vs 566 ms CPU time, 1 thread, 640x640).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ExportError, timm_internals
from ..padding import export_padding, pad_same, same_pad
from . import modes, onednn

with timm_internals():
    from timm.layers import BatchNormAct2d
    from timm.layers.conv2d_same import Conv2dSame, Conv2dSameExport
    from timm.models._efficientnet_blocks import SqueezeExcite


def _plain_act(module: nn.Module) -> nn.Module:
    """The activation as a non-inplace module (fused inputs may be views)."""
    if isinstance(module, (nn.SiLU, nn.ReLU, nn.ReLU6, nn.Hardswish)):
        return type(module)(inplace=False)
    return module


def fold_bn(
    weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and bias of ``bn(conv(x))`` as one convolution (eval-mode statistics),
    computed in float64."""
    var = bn.running_var.to(torch.float64)
    scale = torch.rsqrt(var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.to(torch.float64)
    shift = -bn.running_mean.to(torch.float64) * scale
    if bn.bias is not None:
        shift = shift + bn.bias.to(torch.float64)
    if bias is not None:
        shift = shift + bias.to(torch.float64) * scale
    w = weight.to(torch.float64) * scale.view(-1, *([1] * (weight.dim() - 1)))
    return w.to(weight.dtype), shift.to(weight.dtype)


class FusedConv(nn.Module):
    """Convolution with folded batch norm, activation, optional residual and SE scale."""

    #: the first module of a fused segment checks its input for NaN/inf (``modes``)
    checks_input = False

    def __init__(self, conv: nn.Conv2d, bn: nn.Module | None, act: nn.Module | None) -> None:
        super().__init__()
        if isinstance(bn, BatchNormAct2d) and act is None:
            act = bn.act
        if bn is not None:
            w, b = fold_bn(conv.weight.detach(), conv.bias, bn)
        else:
            w = conv.weight.detach().clone()
            b = (
                conv.bias.detach().clone()
                if conv.bias is not None
                else torch.zeros(conv.out_channels, dtype=w.dtype, device=w.device)
            )
        self.weight = nn.Parameter(w, requires_grad=False)
        self.bias = nn.Parameter(b, requires_grad=False)
        self.stride = tuple(conv.stride)
        self.dilation = tuple(conv.dilation)
        self.groups = conv.groups
        # timm's Conv2dSame keeps padding 0 and pads in forward from the input size
        self.same = isinstance(conv, (Conv2dSame, Conv2dSameExport))
        if isinstance(conv.padding, str):
            raise ExportError(f"cannot fuse a convolution with padding={conv.padding!r}")
        self.padding = tuple(conv.padding) if not self.same else (0, 0)
        act = act if act is not None else nn.Identity()
        self.act = _plain_act(act)
        self.onednn = onednn.ACTS.get(type(act))
        #: the stem of a channels-last model converts its input
        self.to_channels_last = False

    def extra_repr(self) -> str:
        o, i, kh, kw = self.weight.shape
        return (
            f"{i * self.groups}, {o}, kernel_size=({kh}, {kw}), stride={self.stride}, "
            f"groups={self.groups}, same={self.same}, act={type(self.act).__name__}"
        )

    def uses_onednn(self, x: torch.Tensor) -> bool:
        """Whether this convolution runs ``x`` through oneDNN (``onednn.usable``)."""
        return self.onednn is not None and onednn.usable(x)

    def dim_geometry(self, size: Any, dim: int) -> tuple[bool, int] | None:
        """(grow the kernel by a leading zero, symmetric padding) reproducing the
        padding of spatial ``dim`` (0: height, 1: width) at input ``size``; None
        when only an explicit pad can."""
        if not self.same:
            return False, self.padding[dim]
        k = int(self.weight.shape[2 + dim])
        begin, end = same_pad(int(size), k, self.stride[dim], self.dilation[dim])
        if begin == end:
            return False, end
        return (True, end) if self.dilation[dim] == 1 else None

    @staticmethod
    def grow(w: torch.Tensor, grow_h: bool, grow_w: bool) -> torch.Tensor:
        """The kernel with a leading zero row and/or column."""
        return F.pad(w, (int(grow_w), 0, int(grow_h), 0)) if grow_h or grow_w else w

    def run(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        pad: list[int],
        residual: torch.Tensor | None = None,
        use_onednn: bool = False,
    ) -> torch.Tensor:
        """``act(conv(x; w, pad)) + residual``, in one oneDNN call when ``use_onednn``."""
        if use_onednn and (residual is None or self.onednn[0] == "none"):  # type: ignore[index]
            return onednn.conv(
                x, w, self.bias, pad, self.stride, self.dilation, self.groups,
                self.onednn, residual,  # type: ignore[arg-type]
            )  # fmt: skip
        y = self.act(F.conv2d(x, w, self.bias, self.stride, pad, self.dilation, self.groups))
        return y if residual is None else y + residual

    def forward(
        self,
        x: torch.Tensor,
        residual: torch.Tensor | None = None,
        scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``act(conv(x * scale)) + residual``; ``scale`` is (B, C_in)."""
        if self.to_channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.checks_input:  # after the copy above: x is in cache for the conv too
            modes.check_finite(x)
        use_onednn = self.uses_onednn(x)
        w = self.weight
        if scale is not None:
            if use_onednn and x.shape[0] == 1 and self.groups == 1:
                w = w * scale.view(1, -1, 1, 1).to(w.dtype)
            else:
                x = x * scale[:, :, None, None]
        if self.same and modes.exporting():  # constant pads at a static export size
            x, pad = export_padding(x, self.weight.shape[-2:], self.stride, self.dilation)
            return self.run(x, w, pad, residual, use_onednn)
        rows, cols = (self.dim_geometry(x.shape[2 + i], i) for i in (0, 1))
        # a grown kernel costs (k+1)^2/k^2 more work: worth it for a depthwise conv
        # (saves copying a large input), not for a dense one (measured both ways);
        # its zero tap would spread a neighbouring NaN or inf, so not on a non-finite input
        if (
            rows is None
            or cols is None
            or ((rows[0] or cols[0]) and (self.groups == 1 or modes.nonfinite()))
        ):
            x = pad_same(x, self.weight.shape[-2:], self.stride, self.dilation)
            return self.run(x, w, [0, 0], residual, use_onednn)
        w = self.grow(w, rows[0], cols[0])
        return self.run(x, w, [rows[1], cols[1]], residual, use_onednn)


class FusedSE(nn.Module):
    """Squeeze-excite gate as two small linear layers on the pooled features."""

    def __init__(self, se: SqueezeExcite) -> None:
        super().__init__()
        dd = {"device": se.conv_reduce.weight.device, "dtype": se.conv_reduce.weight.dtype}
        self.reduce = nn.Linear(se.conv_reduce.in_channels, se.conv_reduce.out_channels, **dd)
        self.expand = nn.Linear(se.conv_expand.in_channels, se.conv_expand.out_channels, **dd)
        with torch.no_grad():
            self.reduce.weight.copy_(se.conv_reduce.weight.flatten(1))
            self.reduce.bias.copy_(se.conv_reduce.bias)
            self.expand.weight.copy_(se.conv_expand.weight.flatten(1))
            self.expand.bias.copy_(se.conv_expand.bias)
        self.act = _plain_act(se.act1)
        self.gate = se.gate
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The gate, (B, C)."""
        g = x.mean((2, 3))
        return self.gate(self.expand(self.act(self.reduce(g))))


def fused_se(module: nn.Module) -> FusedSE | None:
    """The fused gate of a block's ``se`` (None for ``nn.Identity``)."""
    if isinstance(module, nn.Identity):
        return None
    if not isinstance(module, SqueezeExcite):
        raise ExportError(f"cannot fuse squeeze-excite module {type(module).__name__}")
    return FusedSE(module)
