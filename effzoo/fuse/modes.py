"""When a fused model may take its fast path: not while being traced or exported,
and not on a segment input holding NaN or infinity.

A fused *segment* is what an Ultralytics model calls as one layer: the stem up to the
first output level, then each output level up to the next. Its first module sums its
CPU input once (``check_finite``); a non-finite element makes the sum non-finite, and
the segment then runs with plain PyTorch ops and explicit padding, the unfused model's
arithmetic with folded weights, so NaN and +-inf propagate as in the unfused model
(oneDNN's ReLU/ReLU6 post-op turns NaN into 0, and the zero tap of a grown kernel
makes ``0 * inf`` a NaN). The note is per thread and lasts until the next segment
input is checked.
"""

from __future__ import annotations

import math
import threading

import torch

_STATE = threading.local()


def exporting() -> bool:
    """Being traced, scripted, compiled or exported: no data-dependent branch allowed."""
    compiler = torch.compiler  # is_compiling: torch 2.3+, is_exporting: 2.5+
    return bool(
        torch.jit.is_tracing()
        or torch.jit.is_scripting()
        or getattr(compiler, "is_compiling", lambda: False)()
        or getattr(compiler, "is_exporting", lambda: False)()
        or torch.onnx.is_in_onnx_export()
    )


def check_finite(x: torch.Tensor) -> None:
    """At the start of a fused segment: note whether its CPU input holds NaN or inf
    (then so does its sum; a finite input whose sum overflows only loses the fast path).
    Not on other devices: the check would wait for the device."""
    if exporting():
        return
    cpu = x.device.type == "cpu"
    _STATE.nonfinite = cpu and not math.isfinite(x.detach().sum(dtype=torch.float32))


def nonfinite() -> bool:
    """The running segment's input holds NaN or inf (in this thread)."""
    return getattr(_STATE, "nonfinite", False)


def autocast_on(device_type: str) -> bool:
    """``torch.autocast`` is active for ``device_type`` (torch 2.4+ API, older fallback)."""
    try:
        return bool(torch.is_autocast_enabled(device_type))
    except TypeError:  # torch < 2.4: no device argument
        if device_type == "cpu":
            return bool(torch.is_autocast_cpu_enabled())
        return bool(torch.is_autocast_enabled())
