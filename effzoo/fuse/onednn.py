"""Dispatch to oneDNN's fused convolution: convolution, bias, activation and a
residual add as one primitive (``torch.ops.mkldnn._convolution_pointwise``).

The op is private to PyTorch (Inductor lowers to it), so effzoo guards it: it is
used only where ``torch.backends.mkldnn.is_available()`` and the op exists, and
tests/test_fuse_onednn.py fails loudly if its schema or its results move. Where it
is missing a fused model still runs, with plain ``F.conv2d`` and folded weights.

``usable(x)`` decides per call: a float32 CPU tensor, no gradient needed, no
``torch.autocast`` on the CPU (the plain ops then compute in the dtype autocast
asks for, as the unfused model does), not being traced or exported, and a finite
segment input (see ``effzoo.fuse.modes``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .modes import autocast_on, exporting, nonfinite

#: activation module type -> (oneDNN post-op name, scalars)
ACTS: dict[type, tuple[str, list[Any]]] = {
    nn.Identity: ("none", []),
    nn.SiLU: ("swish", []),
    nn.ReLU: ("relu", []),
    nn.ReLU6: ("hardtanh", [0.0, 6.0]),
    nn.Sigmoid: ("sigmoid", []),
    nn.Hardswish: ("hardswish", []),
}


def _available() -> bool:
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        ops = torch.ops.mkldnn._convolution_pointwise
        return hasattr(ops, "default") and hasattr(ops, "binary")
    except (AttributeError, RuntimeError):
        return False


#: oneDNN and its fused convolution are in this torch build
AVAILABLE = _available()


def usable(x: torch.Tensor) -> bool:
    """Whether ``x`` may take the oneDNN path (see the module docstring)."""
    return (
        AVAILABLE
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.is_grad_enabled()
        and not autocast_on("cpu")
        and not exporting()
        and not nonfinite()
    )


def conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    padding: list[int],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int,
    act: tuple[str, list[Any]],
    residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """``act(conv(x) + bias)``, or ``conv(x) + bias + residual`` (then ``act`` must be
    ``"none"``: oneDNN applies a unary post-op after the sum, not before it)."""
    geometry = (padding, list(stride), list(dilation), groups)
    if residual is None:
        attr, scalars = act
        return torch.ops.mkldnn._convolution_pointwise(
            x, weight, bias, *geometry, attr, scalars, ""
        )
    if act[0] != "none":
        raise ValueError(f"oneDNN adds the residual before the activation, got {act[0]!r}")
    return torch.ops.mkldnn._convolution_pointwise.binary(
        x, residual, weight, bias, *geometry, "add", None, None, [], None
    )
