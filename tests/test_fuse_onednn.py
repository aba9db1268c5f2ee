"""The private oneDNN op the fused path dispatches to: fail loudly if it moves.

``torch.ops.mkldnn._convolution_pointwise`` is PyTorch-internal (Inductor's lowering
target), like timm's builder helpers are timm-internal (test_core_registry.py's
contract). These tests pin its schema and its results against plain ops, so a torch
release that renames, reorders or changes it fails here, not silently in users'
outputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from effzoo.fuse import onednn

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

SCHEMA_UNARY = (
    "mkldnn::_convolution_pointwise(Tensor X, Tensor W, Tensor? B, int[] padding, "
    "int[] stride, int[] dilation, int groups, str attr, Scalar?[] scalars, "
    "str? algorithm) -> Tensor Y"
)
SCHEMA_BINARY = (
    "mkldnn::_convolution_pointwise.binary(Tensor X, Tensor other, Tensor W, Tensor? B, "
    "int[] padding, int[] stride, int[] dilation, int groups, str binary_attr, "
    "Scalar? alpha, str? unary_attr, Scalar?[] unary_scalars, str? unary_algorithm) "
    "-> Tensor Y"
)


def test_onednn_is_available_where_torch_says_so() -> None:
    """On this x86 Linux build oneDNN is there, so the fast path must be on."""
    assert onednn.AVAILABLE == torch.backends.mkldnn.is_available()
    assert onednn.AVAILABLE, "oneDNN missing from this torch build: the fast path is off"


def test_the_private_op_keeps_its_schema() -> None:
    ops = torch.ops.mkldnn._convolution_pointwise
    assert str(ops.default._schema) == SCHEMA_UNARY
    assert str(ops.binary._schema) == SCHEMA_BINARY


@pytest.mark.parametrize("act", list(onednn.ACTS), ids=lambda a: a.__name__)
@pytest.mark.parametrize("groups", [1, 8], ids=["dense", "depthwise"])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_the_private_op_computes_conv_bias_act(act: type, groups: int, layout: str) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 13, 11, generator=g) * 4
    w = torch.randn(8, 8 // groups, 3, 3, generator=g)
    b = torch.randn(8, generator=g)
    if layout == "channels_last":
        x, w = (t.contiguous(memory_format=torch.channels_last) for t in (x, w))
    ref = act()(F.conv2d(x, w, b, (2, 1), (1, 0), (1, 1), groups))
    with torch.no_grad():
        out = onednn.conv(x, w, b, [1, 0], (2, 1), (1, 1), groups, onednn.ACTS[act])
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_the_private_op_adds_a_residual() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 16, 9, 9, generator=g)
    w = torch.randn(16, 16, 1, 1, generator=g)
    b = torch.randn(16, generator=g)
    r = torch.randn(1, 16, 9, 9, generator=g)
    with torch.no_grad():
        out = onednn.conv(x, w, b, [0, 0], (1, 1), (1, 1), 1, onednn.ACTS[nn.Identity], r)
    torch.testing.assert_close(out, F.conv2d(x, w, b) + r, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="before the activation"):
        onednn.conv(x, w, b, [0, 0], (1, 1), (1, 1), 1, onednn.ACTS[nn.SiLU], r)


def test_usable_only_for_float32_cpu_inference_without_autocast() -> None:
    from effzoo.fuse import modes

    x = torch.rand(1, 3, 8, 8)
    # usable() is asked inside a fused segment, whose start notes whether its input is
    # finite (per thread, until the next segment): a finite input, as a segment begins,
    # so a NaN segment of an earlier test in this process does not decide
    modes.check_finite(x)
    with torch.no_grad():
        assert onednn.usable(x)
        assert not onednn.usable(x.double())
        assert not onednn.usable(x.bfloat16())
        assert not onednn.usable(x.to("meta"))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not onednn.usable(x)
    with torch.inference_mode():
        assert onednn.usable(x)
    assert not onednn.usable(x)  # grad mode


def test_without_onednn_fuse_says_so_and_still_equals_eager(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import copy
    import warnings

    import effzoo
    from effzoo import fuse as fuse_pkg

    monkeypatch.setattr(onednn, "AVAILABLE", False)
    monkeypatch.setattr(fuse_pkg, "_TOLD", False)
    model = effzoo.create("efficientnet_lite0", width_mult=0.25).eval()
    with pytest.warns(RuntimeWarning, match="no oneDNN fused convolution"):
        fused = copy.deepcopy(model).fuse()
    with warnings.catch_warnings():  # said once a process, not once per model or piece
        warnings.simplefilter("error")
        copy.deepcopy(model).fuse()
        fuse_pkg.fuse_stages(copy.deepcopy(model.blocks[3:]).eval())
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        for r, o in zip(model(x), fused(x)):
            torch.testing.assert_close(o, r, rtol=1e-4, atol=1e-4 * float(r.abs().max()))
