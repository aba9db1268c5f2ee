"""TF "same" padding in integer arithmetic, for the fused path and ONNX export.

TF-ported weights (timm ``tf_*``) need "same" padding: the total padding of a
dimension depends on the input size, and the extra pixel of an odd total goes at
the end. timm computes it with a float ``ceil`` and a ``max``; here it is integer
arithmetic only, so it stays symbolic under tracing and export and the dynamo
exporter resolves the shapes in seconds.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def same_pad_total(size: Any, kernel: int, stride: int, dilation: int) -> Any:
    """Total TF "same" padding of one dimension of ``size`` (an int, a traced size
    tensor or a SymInt), in integer arithmetic only.

    When the kernel reaches at least one stride (every "same" convolution of an
    EfficientNet) the total is never negative, so no ``max`` is taken: the output
    size then simplifies to ``ceil(size / stride)`` and the dynamo exporter
    resolves the shapes in seconds instead of minutes (timm's float ``ceil`` and a
    ``max`` cost ~20x the export time of a symmetric-padding model)."""
    reach = (kernel - 1) * dilation + 1
    total = ((size + stride - 1) // stride - 1) * stride + reach - size
    if reach >= stride:
        return total
    return total.clamp(min=0) if isinstance(total, torch.Tensor) else torch.sym_max(total, 0)


def same_pad(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TF "same" padding (begin, end) of one spatial dimension."""
    total = same_pad_total(size, kernel, stride, dilation)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: Any, stride: Any, dilation: Any) -> torch.Tensor:
    """``x`` padded TF "same" for a ``kernel`` (h, w) convolution; stays symbolic
    under tracing and export, so one graph serves every input size."""
    pads: list[Any] = []
    for dim in (-1, -2):
        total = same_pad_total(x.shape[dim], kernel[dim], stride[dim], dilation[dim])
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)
