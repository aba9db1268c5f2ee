"""TF "same" padding in integer arithmetic, for the fused path and export.

TF-ported weights (timm ``tf_*``) need "same" padding: the total padding of a
dimension depends on the input size, and the extra pixel of an odd total goes at
the end. timm computes it with a float ``ceil`` and a ``max``; here it is integer
arithmetic only, so it stays symbolic under tracing and export and the dynamo
exporter resolves the shapes in seconds.

An export at a static input size needs no symbolic padding, and should not carry
any: a graph whose ``Pad`` is computed from ``Shape`` ops leaves converters and
simplifiers to get the asymmetric padding right, and some do not (onnxslim 0.1.98,
which Ultralytics' default ``export(format="onnx")`` runs, moves it to the wrong
side; x2paddle cannot read it at all). Inside ``static_sizes()`` the padding is
computed from the concrete input size instead: the convolution's own padding when
it is symmetric, a constant ``F.pad`` otherwise (``export_padding``).
Ultralytics' ``Exporter`` runs inside it unless ``dynamic=True``
(``effzoo.yolo.patches``), and so does ``export.export_onnx(dynamic=False)``.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F

#: per thread: a callable saying whether the running export has a static input size
_STATE = threading.local()


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


@contextlib.contextmanager
def static_sizes(when: bool | Callable[[], bool] = True) -> Iterator[None]:
    """Within the block (this thread), an export traces at a static input size when
    ``when`` is (or, called, returns) true: ``export_padding`` then emits constant
    padding. Nests; the previous setting comes back on exit."""
    prev = getattr(_STATE, "static", None)
    _STATE.static = when if callable(when) else (lambda: bool(when))
    try:
        yield
    finally:
        _STATE.static = prev


def sizes_static() -> bool:
    """Whether the running export has a static input size (see ``static_sizes``)."""
    static = getattr(_STATE, "static", None)
    return bool(static is not None and static())


def _concrete(size: Any) -> int:
    """A traced size (a tensor under the TorchScript tracer) as a Python int: the
    trace then holds a constant, which is the point at a static export size."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return int(size)


def pad_same(x: torch.Tensor, kernel: Any, stride: Any, dilation: Any) -> torch.Tensor:
    """``x`` padded TF "same" for a ``kernel`` (h, w) convolution; stays symbolic
    under tracing and export, so one graph serves every input size."""
    pads: list[Any] = []
    for dim in (-1, -2):
        total = same_pad_total(x.shape[dim], kernel[dim], stride[dim], dilation[dim])
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


def export_padding(
    x: torch.Tensor, kernel: Any, stride: Any, dilation: Any
) -> tuple[torch.Tensor, list[int]]:
    """``(x', padding)`` such that a convolution of ``x'`` with ``padding`` (h, w) is
    the TF "same" convolution of ``x``, for a graph being exported.

    Inside ``static_sizes()``: constants from the concrete input size, the
    convolution's own padding when symmetric, else ``x`` padded by a constant
    ``F.pad``. Otherwise symbolic (``pad_same``), for an export of dynamic size."""
    if not sizes_static():
        return pad_same(x, kernel, stride, dilation), [0, 0]
    (top, bottom), (left, right) = (
        same_pad(
            _concrete(x.shape[2 + i]),
            _concrete(kernel[i]),
            int(stride[i]),
            int(dilation[i]),
        )
        for i in (0, 1)
    )
    if top == bottom and left == right:
        return x, [top, left]
    return F.pad(x, [left, right, top, bottom]), [0, 0]
