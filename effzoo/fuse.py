"""Inference fast path: fold batch norms, fuse activations and squeeze-excite.

``fuse_model(model)`` rewrites an eval-mode effzoo backbone in place. Every timm
block (``ConvBnAct``, ``DepthwiseSeparableConv``, ``InvertedResidual``,
``EdgeResidual``) becomes a fused block with the same arithmetic:

* batch norms are folded into the convolution before them (weight and bias);
* a convolution, its activation and a residual add run as one oneDNN primitive
  (``mkldnn._convolution_pointwise``) when the input is a float32 CPU tensor and
  no gradient is needed; otherwise plain ``F.conv2d`` + activation, so autograd,
  tracing, ``torch.compile`` and ONNX export see ordinary ops;
* at batch 1 the squeeze-excite gate scales the *weights* of the projection
  convolution (``W @ (g * x) == (W * g) @ x``) instead of the feature map, which
  removes one pass over the largest tensor of every block;
* TF "same" padding is computed per input size; when it is symmetric it becomes
  the convolution's own padding. Otherwise (``end == begin + 1``) a depthwise
  kernel gets one leading zero row/column and the convolution a symmetric
  padding of ``end``: the same taps as an explicit pad, without copying the
  (large) input; a dense convolution pads explicitly (cheaper than a bigger kernel);
* in an inverted residual with a large expanded tensor, expansion and depthwise
  convolution run in row tiles (see ``FusedBlock``);
* the model plans its own memory (``BufferPool``, on by default, ``reuse_buffers=False``
  turns it off). PyTorch allocates every intermediate feature map afresh and glibc
  hands large blocks back to the OS, so each call page-faults them in again (B0 at
  640: about 10k minor faults per call). Inside a fused forward on the CPU (float32,
  no gradient) a plan per input shape keeps buffers between calls: a block's residual
  add is written into its input's buffer, the stem's channels-last copy and explicit
  paddings go into kept buffers, and a convolution whose new output page-faulted
  in ``FAULTED_CALLS`` of the ``RECORD_CALLS`` calls after the first one of that shape
  (the first call faults everywhere) writes into a kept, zeroed
  buffer (oneDNN's in-place convolution adds to its output) with its activation
  applied in place. Zeroing costs a pass over the buffer, so only outputs that
  faulted are planned. Returned feature maps are always new tensors: a caller may
  keep them across calls. Each segment (the whole model, or each layer an
  Ultralytics model splits it into) keeps plans for at most ``PLAN_SHAPES`` input
  shapes, least recently used dropped. Threads may share a fused model: buffers are
  handed out with atomic list operations, so concurrent calls get distinct ones.
  Nothing process-wide (allocator, environment, threads) is changed.

The result equals the unfused model within float tolerance (reassociation only),
at any batch size (0 included). NaN and infinity in the input propagate as in the
unfused model: NaN exactly where it has NaN, +-inf exactly where it has +-inf.
Two fused ops would not do that on their own: oneDNN's ReLU/ReLU6 post-op turns
NaN into 0 (a Lite model gave finite features for a NaN image), and the zero tap
of a grown kernel multiplies a real input row (``0 * inf`` is NaN). So every
fused *segment* -- the stem up to the first output level, then each output level
up to the next, the pieces an Ultralytics model calls as separate layers -- sums
its CPU input once (a non-finite element makes the sum non-finite; three sums per
forward, well under 1% of its time) and, if the sum is not finite, runs with
plain PyTorch ops and explicit padding: the unfused model's arithmetic with
folded weights. Not covered:

* finite inputs so large that float32 overflows inside the network (far outside
  any normalized image): folding moves where overflow happens, and a NaN made by
  it is 0 after a fused ReLU/ReLU6;
* tensors on other devices (CUDA, MPS): no check runs there (it would wait for
  the device). oneDNN does not run there either, but grown kernels do, so near a
  non-finite input NaN can reach one row/column further than in the unfused
  model (it never disappears).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import BatchNormAct2d
from timm.layers.conv2d_same import Conv2dSame, Conv2dSameExport
from timm.models._efficientnet_blocks import (
    ConvBnAct,
    DepthwiseSeparableConv,
    EdgeResidual,
    InvertedResidual,
    SqueezeExcite,
)
from torch import nn

from .errors import ExportError
from .padding import export_padding, pad_same, same_pad

#: at batch 1, fold the squeeze-excite gate into the projection weights
#: (measured: B0 145 vs 152 ms, V2-S 519 vs 566 ms CPU time, 1 thread, 640x640)
SE_IN_WEIGHTS = True

#: a fused model runs channels-last unless told otherwise (``fuse(channels_last=None)``);
#: fused channels-last vs NCHW at 640x640, 2 threads: B0 85 vs 156 ms, Lite0 73 vs 130,
#: V2-S 292 vs 395, V2-B0 88 vs 130 -- channels-last wins for every family
CHANNELS_LAST_DEFAULT = True

#: activation module type -> (oneDNN post-op name, scalars)
_ONEDNN_ACTS: dict[type, tuple[str, list[Any]]] = {
    nn.Identity: ("none", []),
    nn.SiLU: ("swish", []),
    nn.ReLU: ("relu", []),
    nn.ReLU6: ("hardtanh", [0.0, 6.0]),
    nn.Sigmoid: ("sigmoid", []),
    nn.Hardswish: ("hardswish", []),
}


def _plain_act(module: nn.Module) -> nn.Module:
    """The activation as a non-inplace module (fused inputs may be views)."""
    if isinstance(module, (nn.SiLU, nn.ReLU, nn.ReLU6, nn.Hardswish)):
        return type(module)(inplace=False)
    return module


#: per thread: the input of the running fused segment holds NaN or +-inf
_STATE = threading.local()


def _check_finite(x: torch.Tensor) -> None:
    """At the start of a fused segment: note whether its CPU input holds NaN or inf
    (then so does its sum; a finite input whose sum overflows only loses the fast path)."""
    if _exporting():  # no data-dependent branch while tracing
        return
    cpu = x.device.type == "cpu"
    _STATE.nonfinite = cpu and not math.isfinite(x.detach().sum(dtype=torch.float32))


def _nonfinite() -> bool:
    return getattr(_STATE, "nonfinite", False)


#: a fused model keeps the intermediate buffers of this many input shapes
#: (batch, channels, height, width, dtype), least recently used dropped
PLAN_SHAPES = 4
#: calls of a shape that measure which convolution outputs page-fault (after the
#: first, whose every allocation is new); an output faulting in two of them is planned
RECORD_CALLS = 3
FAULTED_CALLS = 2
#: an output is planned once a quarter of its bytes or more came as fresh pages
FAULT_FRACTION = 0.25
_PAGE = 4096


def _rusage_minflt() -> Any:
    try:
        import resource
    except ImportError:  # Windows: no fault counts, so only the free reuses are planned
        return None
    getrusage, who = resource.getrusage, resource.RUSAGE_SELF
    return lambda: getrusage(who).ru_minflt


#: minor page faults of this process so far (all threads), or None where unknown
_minor_faults = _rusage_minflt()


class _Plan:
    """Idle intermediate buffers for one input shape, by (size, dtype, layout).

    ``take`` hands out an idle buffer (or a new one) and remembers it as lent;
    ``give`` takes a lent buffer back once its values are dead. Lists and dicts
    are only popped and appended (atomic in CPython), so threads calling the same
    model get distinct buffers."""

    def __init__(self) -> None:
        self.idle: dict[tuple[Any, ...], list[torch.Tensor]] = {}
        self.lent: dict[int, tuple[torch.Tensor, tuple[Any, ...]]] = {}
        #: convolutions (by id) whose new output the allocator mapped in afresh, call
        #: after call: they write into plan buffers from then on
        self.faulting: set[int] = set()
        self.faults: dict[int, int] = {}  # recorded calls in which each one faulted
        self.calls = 0

    @property
    def recording(self) -> bool:
        """Whether this call measures which outputs fault (calls 2 .. RECORD_CALLS + 1)."""
        return 1 < self.calls <= RECORD_CALLS + 1 and _minor_faults is not None

    def faulted(self, conv: nn.Module) -> None:
        """``conv``'s new output page-faulted in this call."""
        n = self.faults[id(conv)] = self.faults.get(id(conv), 0) + 1
        if n >= FAULTED_CALLS:
            self.faulting.add(id(conv))

    def take(
        self, size: Any, like: torch.Tensor, channels_last: bool | None = None
    ) -> torch.Tensor:
        """A buffer of ``size`` with ``like``'s dtype, device and (by default) layout."""
        cl = channels_last
        if cl is None:  # channels-last, or a row slice of a channels-last batch
            cl = like.dim() == 4 and (
                like.is_contiguous(memory_format=torch.channels_last)
                or (like.stride(1) == 1 and like.shape[1] > 1)
            )
        key = (tuple(size), like.dtype, cl)
        try:
            t = self.idle[key].pop()
        except (KeyError, IndexError):
            fmt = torch.channels_last if cl else torch.contiguous_format
            t = torch.empty(size, dtype=like.dtype, device=like.device, memory_format=fmt)
        self.lent[id(t)] = (t, key)
        return t

    def owns(self, t: torch.Tensor | None) -> bool:
        return t is not None and self.lent.get(id(t), (None,))[0] is t

    def give(self, t: torch.Tensor) -> None:
        """Return ``t`` if it is a lent buffer (anything else is left alone)."""
        # a lent buffer is alive (held here), so no other live tensor has its id
        lent, key = self.lent.pop(id(t), (None, None))
        if lent is t:
            self.idle.setdefault(key, []).append(t)


class BufferPool:
    """The memory plan of one fused model: for each segment (the whole model, or one
    of the layers an Ultralytics model splits it into) a ``_Plan`` per input shape,
    at most ``PLAN_SHAPES`` of them. Copies and pickles of the model start empty."""

    def __init__(self) -> None:
        self._plans: dict[int, OrderedDict[tuple[Any, ...], _Plan]] = {}
        self._lock = threading.Lock()

    def plan(self, first: nn.Module, x: torch.Tensor) -> _Plan:
        """The plan of the segment starting at ``first`` for input ``x`` (most recent now)."""
        key = (tuple(x.shape), x.dtype, str(x.device))
        with self._lock:
            plans = self._plans.setdefault(id(first), OrderedDict())
            plan = plans.get(key)
            if plan is None:
                plan = plans[key] = _Plan()
                while len(plans) > PLAN_SHAPES:
                    plans.popitem(last=False)
            plans.move_to_end(key)
            return plan

    def clear(self) -> None:
        """Drop every kept buffer (they are made again on the next call)."""
        with self._lock:
            self._plans.clear()

    def shapes(self) -> list[tuple[Any, ...]]:
        """The input shapes whose buffers are kept, per segment least recently used first."""
        with self._lock:
            return [k[0] for plans in self._plans.values() for k in plans]

    def nbytes(self) -> int:
        """Bytes of the idle buffers kept (all of them between calls)."""
        with self._lock:
            plans = [p for ps in self._plans.values() for p in ps.values()]
        return sum(
            t.numel() * t.element_size() for p in plans for ts in list(p.idle.values()) for t in ts
        )

    def __getstate__(self) -> dict[str, Any]:
        return {"buffers": None}  # not empty: pickle calls __setstate__ only for a true state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]

    def __deepcopy__(self, memo: dict[int, Any]) -> BufferPool:
        return BufferPool()


def _plan() -> _Plan | None:
    """The plan of the fused segment running in this thread, if any."""
    return getattr(_STATE, "plan", None)


@contextlib.contextmanager
def planned(first: nn.Module, x: torch.Tensor) -> Iterator[None]:
    """Run a fused segment (whose first module is ``first``) on ``x`` with its
    model's memory plan: intermediate buffers are reused between calls of the same
    input shape instead of allocated afresh. Returned feature maps are always new
    tensors. A no-op for unfused modules, and outside float32 CPU inference."""
    pool = getattr(first, "pool", None)
    if (
        pool is None
        or x.device.type != "cpu"
        or x.dtype != torch.float32
        or torch.is_grad_enabled()
        or _exporting()
    ):
        yield
        return
    prev = _plan()
    _STATE.plan = plan = pool.plan(first, x)
    plan.calls += 1
    try:
        yield
    finally:
        _STATE.plan = prev


def _exporting() -> bool:
    compiler = torch.compiler  # is_compiling: torch 2.3+, is_exporting: 2.5+
    return bool(
        torch.jit.is_tracing()
        or torch.jit.is_scripting()
        or getattr(compiler, "is_compiling", lambda: False)()
        or getattr(compiler, "is_exporting", lambda: False)()
        or torch.onnx.is_in_onnx_export()
    )


def fold_bn(
    weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and bias of ``bn(conv(x))`` as one convolution (eval-mode statistics)."""
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

    #: the stem checks the model input for NaN/inf (see the module docstring)
    checks_input = False
    #: the stem's output may be a plan buffer (it is not a returned feature map)
    pools_output = False

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
        self.onednn = _ONEDNN_ACTS.get(type(act))
        #: the stem of a channels-last model converts its input
        self.to_channels_last = False

    def extra_repr(self) -> str:
        o, i, kh, kw = self.weight.shape
        return (
            f"{i * self.groups}, {o}, kernel_size=({kh}, {kw}), stride={self.stride}, "
            f"groups={self.groups}, same={self.same}, act={type(self.act).__name__}"
        )

    def uses_onednn(self, x: torch.Tensor) -> bool:
        """Whether ``x`` takes the oneDNN path (float32 CPU inference, not tracing,
        finite segment input)."""
        return (
            self.onednn is not None
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and not torch.is_grad_enabled()
            and not _exporting()
            and not _nonfinite()
        )

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

    def _explicit_pad(self, x: torch.Tensor, plan: _Plan | None = None) -> torch.Tensor:
        if plan is None:
            return pad_same(x, self.weight.shape[-2:], self.stride, self.dilation)
        (top, bottom), (left, right) = (
            same_pad(
                int(x.shape[2 + i]), int(self.weight.shape[2 + i]), self.stride[i], self.dilation[i]
            )
            for i in (0, 1)
        )
        b, c, h, w = x.shape
        out = plan.take((b, c, h + top + bottom, w + left + right), x).zero_()
        out[:, :, top : top + h, left : left + w].copy_(x)
        return out

    def run(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        pad: list[int],
        residual: torch.Tensor | None = None,
        use_onednn: bool = False,
        plan: _Plan | None = None,
    ) -> torch.Tensor:
        """``act(conv(x; w, pad)) + residual`` in one oneDNN call when ``use_onednn``;
        with a ``plan``, written into one of its buffers (or into ``residual`` itself
        when the plan lent it) instead of a new tensor."""
        if use_onednn and (residual is None or self.onednn[0] == "none"):  # type: ignore[index]
            attr, scalars = self.onednn  # type: ignore[misc]
            args = (pad, list(self.stride), list(self.dilation), self.groups)
            if plan is not None:
                return self._run_into(x, w, args, residual, plan)
            if residual is None:
                return torch.ops.mkldnn._convolution_pointwise(
                    x, w, self.bias, *args, attr, scalars, ""
                )
            return torch.ops.mkldnn._convolution_pointwise.binary(
                x, residual, w, self.bias, *args, "add", None, None, [], None
            )
        y = self.act(F.conv2d(x, w, self.bias, self.stride, pad, self.dilation, self.groups))
        return y if residual is None else y + residual

    def _run_into(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        args: tuple[Any, ...],
        residual: torch.Tensor | None,
        plan: _Plan,
    ) -> torch.Tensor:
        """The oneDNN convolution written in place: ``out = conv(x) + out`` (oneDNN's
        sum post-op, the only in-place form it has), ``out`` being the lent residual,
        or a plan buffer holding the residual or zeros; then the activation in place
        (oneDNN fuses only ReLU after a sum)."""
        pad, stride, dilation, _ = args
        b, _, h, wd = x.shape
        size = [b, w.shape[0]] + [
            (n + 2 * p - d * (k - 1) - 1) // s + 1
            for n, p, d, k, s in zip((h, wd), pad, dilation, w.shape[2:], stride)
        ]
        if plan.owns(residual):
            out = residual
        else:
            out = plan.take(size, x)
            if residual is not None:
                out.copy_(residual)
            else:
                out.zero_()
        attr = self.onednn[0]  # type: ignore[index]
        unary = "relu" if attr == "relu" else None
        y = torch.ops.mkldnn._convolution_pointwise_.binary(
            out, x, w, self.bias, *args, "add", None, unary, [], None
        )
        if attr not in ("relu", "none"):
            _ACT_INPLACE[attr](y)
        return y

    def forward(
        self,
        x: torch.Tensor,
        residual: torch.Tensor | None = None,
        scale: torch.Tensor | None = None,
        pooled: bool = False,
    ) -> torch.Tensor:
        """``act(conv(x * scale)) + residual``; ``scale`` is (B, C_in), B == 1 folds it.

        ``pooled`` (or ``self.pools_output``): inside ``planned()``, the result may be
        a buffer of the model's memory plan, valid until the next call of the model."""
        lender = _plan()  # set only for float32 CPU inference (``planned``)
        given: list[torch.Tensor] = []  # plan buffers made here, dead after the conv
        if self.to_channels_last:
            if lender is not None and not x.is_contiguous(memory_format=torch.channels_last):
                x = lender.take(x.shape, x, channels_last=True).copy_(x)
                given.append(x)
            else:
                x = x.contiguous(memory_format=torch.channels_last)
        if self.checks_input:  # after the copy above: x is in cache for the conv too
            _check_finite(x)
        use_onednn = self.uses_onednn(x)
        plan = lender if use_onednn else None
        w = self.weight
        if scale is not None:
            if use_onednn and SE_IN_WEIGHTS and x.shape[0] == 1 and self.groups == 1:
                w = w * scale.view(1, -1, 1, 1).to(w.dtype)
            elif plan is not None:
                x = torch.mul(x, scale[:, :, None, None], out=plan.take(x.shape, x))
                given.append(x)
            else:
                x = x * scale[:, :, None, None]
        # into a plan buffer: in place into a lent residual (free), or where the first
        # calls of this shape saw the new output page-fault (zeroing it costs less)
        out_plan, measure = None, False
        if plan is not None and (pooled or self.pools_output):
            if plan.owns(residual) or id(self) in plan.faulting:
                out_plan = plan
            else:
                measure = plan.recording
        faults = _minor_faults() if measure else 0  # type: ignore[misc]
        geo = None
        if not (self.same and _exporting()):
            geo = [self.dim_geometry(x.shape[2 + i], i) for i in (0, 1)]
        if geo is None:  # a TF "same" conv being exported: constant pads at a static size
            x, pad = export_padding(x, self.weight.shape[-2:], self.stride, self.dilation)
            y = self.run(x, w, pad, residual, use_onednn, out_plan)
        # a grown kernel costs (k+1)^2/k^2 more work: worth it for a depthwise conv
        # (saves copying a large input), not for a dense one (measured both ways);
        # its zero tap would spread a neighbouring NaN or inf, so not on a non-finite input
        elif None in geo or ((geo[0][0] or geo[1][0]) and (self.groups == 1 or _nonfinite())):
            x = self._explicit_pad(x, plan)
            given.append(x)
            y = self.run(x, w, [0, 0], residual, use_onednn, out_plan)
        else:
            (grow_h, pad_h), (grow_w, pad_w) = geo  # type: ignore[misc]
            w = self.grow(w, grow_h, grow_w)
            y = self.run(x, w, [pad_h, pad_w], residual, use_onednn, out_plan)
        if measure:
            fresh = (_minor_faults() - faults) * _PAGE  # type: ignore[misc]
            if fresh >= FAULT_FRACTION * y.numel() * y.element_size():
                plan.faulted(self)  # type: ignore[union-attr]
        if lender is not None:
            for t in given:
                lender.give(t)
        return y


#: in-place activations after a convolution written into a plan buffer
_ACT_INPLACE: dict[str, Any] = {
    "swish": lambda t: F.silu(t, inplace=True),
    "hardtanh": lambda t: t.clamp_(0.0, 6.0),
    "sigmoid": lambda t: t.sigmoid_(),
    "hardswish": lambda t: F.hardswish(t, inplace=True),
}


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


def _se(module: nn.Module) -> FusedSE | None:
    if isinstance(module, nn.Identity):
        return None
    if not isinstance(module, SqueezeExcite):
        raise ExportError(f"cannot fuse squeeze-excite module {type(module).__name__}")
    return FusedSE(module)


def _check_plain(block: nn.Module) -> None:
    aa = getattr(block, "aa", None)
    if aa is not None and not isinstance(aa, nn.Identity):
        raise ExportError(f"cannot fuse {type(block).__name__} with anti-aliasing")
    if getattr(block, "conv_s2d", None) is not None:
        raise ExportError(f"cannot fuse {type(block).__name__} with space-to-depth")


#: an expanded tensor larger than this many bytes is computed in row tiles
TILE_MIN_BYTES = 16 << 20
#: bytes of one tile of the expanded tensor (about an L2 cache)
TILE_BYTES = 4 << 20


class FusedBlock(nn.Module):
    """Any EfficientNet block after fusion: [expand] -> [depthwise] -> [SE] -> project.

    In an inverted residual whose expanded tensor would be large (the early,
    high-resolution stages), the 1x1 expansion and the depthwise convolution run
    tile by tile over output rows: each tile of the expanded tensor is made
    (with the rows the depthwise kernel needs around it), consumed while still
    in cache, and dropped. The full expanded tensor is never allocated; every
    output value is computed with exactly the same taps.
    """

    #: the first block after an output level checks its input (see the module docstring)
    checks_input = False
    #: the last block before an output level returns a new tensor, never a plan buffer
    fresh_output = False

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
            _check_finite(x)
        plan = _plan()
        shortcut = x
        convs = list(self.convs)
        y = self._expand_depthwise_tiled(x) if self.tileable else None
        if y is not None:
            if plan is not None and not self.has_skip:
                plan.give(x)
            x, convs = y, convs[2:]
        for conv in convs[:-1]:
            y = conv(x, pooled=True)
            if plan is not None and (x is not shortcut or not self.has_skip):
                plan.give(x)  # dead: consumed, and not the shortcut
            x = y
        last = convs[-1]
        gate = self.se(x) if self.se is not None else None
        residual = shortcut if self.has_skip else None
        pooled = not self.fresh_output
        if last.onednn is not None and last.onednn[0] == "none":
            y = last(x, residual=residual, scale=gate, pooled=pooled)
        else:
            # activation after the last conv (ConvBnAct): add the shortcut after it
            y = last(x, scale=gate, pooled=pooled)
            if residual is not None:
                y = y.add_(residual) if last.uses_onednn(x) else y + residual
        if plan is not None:
            plan.give(x)
            if residual is not None and residual is not y:
                plan.give(residual)
        return y

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
        plan = _plan()
        tiles = []
        for o0 in range(0, h_out, rows):
            o1 = min(h_out, o0 + rows)
            i0, i1 = o0 * s - top_pad, (o1 - 1) * s - top_pad + d * (k - 1) + 1
            # tiles are new tensors: each reuses the memory of the one freed before it
            m = pw(x[:, :, max(i0, 0) : min(i1, h)])
            if i0 < 0 or i1 > h:
                m = F.pad(m, (0, 0, max(0, -i0), max(0, i1 - h)))
            tiles.append(dw.run(m, kernel, [0, width[1]], use_onednn=True))
        if plan is None:
            return torch.cat(tiles, dim=2)
        first = tiles[0]
        out = plan.take((b, first.shape[1], h_out, first.shape[3]), first)
        return torch.cat(tiles, dim=2, out=out)


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
    return FusedBlock(convs, _se(block.se), block.has_skip)


def check_fusable(model: nn.Module) -> None:
    """Raise ``ExportError`` unless every module is in eval mode."""
    training = [name or type(model).__name__ for name, m in model.named_modules() if m.training]
    if training:
        raise ExportError(
            f"fuse() folds batch-norm running statistics, so it needs an eval-mode model; "
            f"{training[0]!r} is in training mode. Call model.eval() first."
        )


def fuse_model(
    model: nn.Module, *, channels_last: bool | None = None, reuse_buffers: bool = True
) -> nn.Module:
    """Fuse an effzoo/timm EfficientNet feature extractor in place and return it.

    ``reuse_buffers``: give the model a memory plan (``BufferPool``): on the CPU its
    intermediate feature maps are written into buffers kept from the previous call
    of the same input shape instead of memory the allocator maps in afresh."""
    if getattr(model, "fused", False):
        return model
    check_fusable(model)
    # build everything first: an unsupported block leaves the model untouched
    stem = FusedConv(model.conv_stem, model.bn1, None).eval()
    stages = [[fuse_block(block).eval() for block in stage] for stage in model.blocks]
    # each segment between output levels checks its input for NaN/inf
    stem.checks_input = True
    out_idx = getattr(model, "_stage_out_idx", ())
    stem.pools_output = 0 not in out_idx
    for j, stage in enumerate(stages):
        stage[0].checks_input = j in out_idx
        stage[-1].fresh_output = j + 1 in out_idx
    # one memory plan for the whole model (see ``planned``)
    pool = BufferPool() if reuse_buffers else None
    for m in (stem, *(b for stage in stages for b in stage)):
        m.pool = pool
    model.conv_stem = stem
    model.bn1 = nn.Identity().eval()
    for stage, fused in zip(model.blocks, stages):
        for i, block in enumerate(fused):
            stage[i] = block
    if channels_last is None:
        channels_last = CHANNELS_LAST_DEFAULT
    if channels_last:
        model.to(memory_format=torch.channels_last)
        stem.to_channels_last = True
    model.fused = True
    model.channels_last = channels_last
    return model


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
        geo = [c.dim_geometry(sizes[id(c)][i], i) for i in (0, 1)]
        if None in geo:
            continue
        (grow_h, pad_h), (grow_w, pad_w) = geo  # type: ignore[misc]
        w = c.grow(c.weight.detach(), grow_h, grow_w)
        c.weight = nn.Parameter(w.clone(memory_format=torch.contiguous_format), requires_grad=False)
        c.same, c.padding = False, (pad_h, pad_w)
        changed += bool(grow_h or grow_w)
    return changed
