"""The forward boundary: what a backbone (fused or not) and its Ultralytics layers
accept, checked before anything reaches torch.

A batch of images is a 4-D floating tensor ``(batch, in_chans, height, width)`` on
the model's device, with the model's dtype (or float32, bfloat16 or float16 under
``torch.autocast`` for that device, which casts them; it leaves float64 alone).
Anything else is one ``InvalidArgumentError`` that names what came and what to do;
the check is a few attribute reads (measured in docs/performance.md), well under 1 %
of a forward.
"""

from __future__ import annotations

from typing import Any

import torch

from .errors import InvalidArgumentError
from .fuse.modes import autocast_on

#: the input dtypes ``torch.autocast`` casts (it leaves float64 alone)
_AUTOCAST = (torch.float32, torch.bfloat16, torch.float16)


def _expected(weight: torch.Tensor) -> str:
    return (
        f"a 4-d float tensor (batch, {weight.shape[1]}, height, width) of dtype "
        f"{str(weight.dtype).removeprefix('torch.')} on {weight.device}"
    )


def check_images(x: Any, weight: torch.Tensor, *, who: str, channels_fix: str) -> None:
    """Raise ``InvalidArgumentError`` unless ``x`` is a batch of images for a model whose
    stem convolution has ``weight``. ``channels_fix`` says how to build a model for
    another channel count. Shapes are not checked while tracing (sizes are tensors)."""
    if (
        isinstance(x, torch.Tensor)
        and x.dtype == weight.dtype
        and x.device == weight.device
        and (torch.jit.is_tracing() or (x.dim() == 4 and x.shape[1] == weight.shape[1]))
    ):
        return  # the common case: four attribute reads
    expected = _expected(weight)
    if not isinstance(x, torch.Tensor):
        kind = type(x).__module__ + "." + type(x).__qualname__
        kind = kind.removeprefix("builtins.")
        hint = ""
        if kind == "numpy.ndarray":
            hint = (
                f" of shape {tuple(x.shape)}; for an HWC uint8 image: "
                "torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255, then normalize"
            )
        raise InvalidArgumentError(f"{who} takes {expected}, got {kind}{hint}")
    dtype = str(x.dtype).removeprefix("torch.")
    if not x.is_floating_point():
        hint = " (x.float() / 255 for 8-bit images, then normalize)" if dtype == "uint8" else ""
        raise InvalidArgumentError(f"{who} takes {expected}, got a tensor of dtype {dtype}{hint}")
    if x.device != weight.device:
        raise InvalidArgumentError(
            f"{who} takes {expected}, got a tensor on {x.device}; move the input "
            f"(x.to({str(weight.device)!r})) or the model (model.to({str(x.device)!r}))"
        )
    if x.dtype != weight.dtype and not (x.dtype in _AUTOCAST and autocast_on(x.device.type)):
        want = str(weight.dtype).removeprefix("torch.")
        raise InvalidArgumentError(
            f"{who} takes {expected}, got a tensor of dtype {dtype}; convert the input "
            f"(x.to(torch.{want})) or the model (model.to(torch.{dtype})), or run under "
            f"torch.autocast"
        )
    if torch.jit.is_tracing():
        return
    want = weight.shape[1]
    if x.dim() != 4:
        raise InvalidArgumentError(f"{who} takes {expected}, got shape {tuple(x.shape)}")
    if x.shape[1] != want:
        raise InvalidArgumentError(
            f"{who} was built for {want}-channel images, got a {x.shape[1]}-channel input "
            f"of shape {tuple(x.shape)}; convert the images to {want} channels, or "
            f"{channels_fix.format(got=x.shape[1])}"
        )
