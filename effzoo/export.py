"""ONNX export with dynamic height and width (docs/deploy.md, "Outside Ultralytics"), and
an ONNX Runtime session helper. ``onnx``/``onnxruntime`` are optional.

TF "same" padding depends on the input size. With ``dynamic`` (the default) the exported
copy pads by integer ``x.size()`` arithmetic that both exporters keep symbolic, in unfused
(timm's ``Conv2dSame`` swapped for ``SymbolicConv2dSame``) and fused models alike: one
graph (``Shape -> ... -> Pad -> Conv``) for every size. With ``dynamic=False`` the pads are
constants (``padding.static_sizes``) that simplifiers and converters read right. Fused
weights go out contiguous NCHW (``fuse.contiguous_weights``).
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ExportError, timm_internals
from .fuse import contiguous_weights
from .padding import export_padding, static_sizes

with timm_internals():
    from timm.layers.conv2d_same import Conv2dSame, Conv2dSameExport

#: sizes ``verify`` checks besides the exported one (odd ones exercise "same" padding)
VERIFY_SIZES: tuple[tuple[int, int], ...] = ((96, 128), (97, 75))


def output_names(model: nn.Module) -> list[str]:
    """``p3``, ``p4``, ``p5``... (P = level index + 1) for a backbone; ``out0``... otherwise."""
    idx = getattr(model, "out_indices", None)
    if idx is None:
        return ["out0"]
    return [f"p{i + 1}" for i in idx]


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    input_size: tuple[int, int] = (640, 640),
    batch_size: int = 1,
    dynamic: bool = True,
    dynamic_batch: bool = False,
    opset: int | None = None,
    dynamo: bool = False,
    verify: bool = True,
    atol: float = 1e-4,
) -> Path:
    """Export ``model`` (an effzoo backbone, fused or not) to ONNX at ``path``.

    ``dynamic`` makes height and width symbolic (``dynamic_batch`` the batch too).
    The model is copied and put in eval mode; the original is left untouched.
    ``opset`` defaults to 17 (18 with ``dynamo=True``, the dynamo exporter's own
    opset). ``dynamo=True`` uses the torch.export-based exporter (slower to
    export, same graph semantics). With ``verify`` the graph is run in ONNX Runtime and
    compared with PyTorch (``ExportError`` past ``atol``, relative to the output
    scale).
    """
    if dynamo and dynamic and min(input_size) < 64:
        raise ExportError(
            f"dynamo export with dynamic height and width traces at 64 px or more "
            f"(got input_size={tuple(input_size)}); pass e.g. input_size=(640, 640)"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).eval().float().cpu()
    for m in model.modules():  # timm's same-padded convolutions: same parameters and values
        if isinstance(m, (Conv2dSame, Conv2dSameExport)):
            m.__class__ = SymbolicConv2dSame
    contiguous_weights(model)
    x = torch.randn(batch_size, _in_chans(model), *input_size)
    names = output_names(model)
    kwargs: dict[str, Any] = dict(
        input_names=["images"],
        output_names=names,
        opset_version=opset or (18 if dynamo else 17),
        dynamo=bool(dynamo),
    )
    axes = {
        **({2: "height", 3: "width"} if dynamic else {}),
        **({0: "batch"} if dynamic_batch else {}),
    }
    if dynamo:
        # from 64 px: past the stride-32 level, no size-1 special case becomes a guard
        dims = {k: torch.export.Dim(v, min=1 if k == 0 else 64) for k, v in axes.items()}
        kwargs["dynamic_shapes"] = (dims,) if axes else None
    else:
        kwargs["dynamic_axes"] = {"images": axes, **{n: axes for n in names}} if axes else None
    with warnings.catch_warnings(), torch.no_grad(), static_sizes(not dynamic):
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, (x,), str(path), **kwargs)
        except Exception as e:  # the exporters raise many unrelated types
            raise ExportError(f"torch.onnx.export failed for {type(model).__name__}: {e}") from e
    if verify:
        sizes = [tuple(input_size)] + (
            [s for s in VERIFY_SIZES if s != tuple(input_size)] if dynamic else []
        )
        err = compare_onnx(model, path, sizes=sizes, batch_size=batch_size)
        if err > atol:
            raise ExportError(
                f"ONNX Runtime output of {path.name} differs from PyTorch by {err:.2e} "
                f"(relative to the output scale; tolerance {atol:g})"
            )
    return path


class SymbolicConv2dSame(Conv2dSame):
    """timm's ``Conv2dSame`` padded by ``padding.export_padding`` (same values, integer
    size arithmetic, constant at a static size); swapped in on the copy ``export_onnx``
    exports."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, pad = export_padding(x, self.weight.shape[-2:], self.stride, self.dilation)
        return F.conv2d(x, self.weight, self.bias, self.stride, pad, self.dilation, self.groups)


def _in_chans(model: nn.Module) -> int:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
        w = getattr(m, "weight", None)
        if isinstance(w, torch.Tensor) and w.dim() == 4:
            return int(w.shape[1]) * int(getattr(m, "groups", 1))
    raise ExportError(f"cannot tell the input channels of {type(model).__name__}")


def session(path: str | os.PathLike[str], *, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session with full graph optimization and ``threads`` threads."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ExportError("ONNX Runtime is not installed: pip install onnxruntime") from e
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def compare_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    sizes: Sequence[tuple[int, int]],
    batch_size: int = 1,
    seed: int = 0,
) -> float:
    """Largest |ONNX Runtime - PyTorch| over ``sizes``, relative to each output's max |value|."""
    sess = session(path)
    model = model.eval()
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for h, w in sizes:
        x = torch.randn(batch_size, _in_chans(model), h, w, generator=gen)
        with torch.no_grad():
            ref = model(x)
        ref = list(ref) if isinstance(ref, (list, tuple)) else [ref]
        got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
        if len(got) != len(ref):
            raise ExportError(f"ONNX graph has {len(got)} outputs, the model {len(ref)}")
        for r, g in zip(ref, got):
            if tuple(g.shape) != tuple(r.shape):
                raise ExportError(
                    f"at input {h}x{w} ONNX Runtime gives shape {tuple(g.shape)}, "
                    f"PyTorch {tuple(r.shape)}: the graph was specialised to the export size"
                )
            scale = max(float(r.abs().max()), 1e-6)
            worst = max(worst, float((torch.from_numpy(g) - r).abs().max()) / scale)
    return worst
