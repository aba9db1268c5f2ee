"""Fused = eager in every mode a user runs: grad, no_grad and inference_mode in any
order; float32, bfloat16 and float16 models; torch.autocast on the CPU; input and
parameter gradients; and the YOLO layers after Ultralytics' own predict. Precision
is judged against a float64 reference, so fp32/bf16 noise is told from a bug."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from test_fuse import _small
from test_fuse_edges import FAMILIES  # B0, Lite0, V2-B0, B6 (TF padding)

import effzoo
import effzoo.fuse as fz
from effzoo.fuse import onednn

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

#: even sizes pad TF "same" asymmetrically (grown kernels), odd ones do not
SHAPE = (1, 3, 64, 47)

MODES = {
    "inference_mode": torch.inference_mode,
    "no_grad": torch.no_grad,
    "grad": torch.enable_grad,
}


@pytest.fixture(scope="module", params=FAMILIES)
def pair(request: pytest.FixtureRequest) -> tuple[effzoo.Backbone, effzoo.Backbone]:
    model = _small(request.param)
    return model, copy.deepcopy(model).fuse()


#: every mode after every other one, each twice (the crash was no_grad after inference_mode)
ORDER = ["inference_mode", "no_grad", "grad", "inference_mode", "grad", "no_grad", "inference_mode"]


def _rel(ref: list[torch.Tensor], out: list[torch.Tensor]) -> float:
    assert [r.shape for r in ref] == [o.shape for o in out]
    return max(
        float((r.double() - o.double()).abs().max() / r.double().abs().max())
        for r, o in zip(ref, out)
    )


def _x(shape: tuple[int, ...] = SHAPE, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_every_mode_in_any_order_equals_eager(
    pair: tuple[effzoo.Backbone, effzoo.Backbone],
) -> None:
    model, fused = pair
    for i, mode in enumerate(ORDER):
        x = _x(seed=i)
        with torch.no_grad():
            ref = model(x)
        with MODES[mode]():
            out = [o.detach() for o in fused(x)]
            again = [o.detach() for o in fused(x)]  # a second call in the same mode
        assert _rel(ref, out) < 1e-4, mode
        assert _rel(out, again) == 0.0, mode


def test_oneDNN_path_runs_where_it_should(
    pair: tuple[effzoo.Backbone, effzoo.Backbone], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path in float32 no_grad and inference_mode; plain ops under grad,
    autocast and other dtypes (so those give the eager model's dtype and gradients)."""
    _, fused = pair
    calls: list[int] = []
    orig = onednn.conv

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return orig(*args, **kwargs)

    monkeypatch.setattr(onednn, "conv", spy)
    for mode, expect in [("no_grad", True), ("inference_mode", True), ("grad", False)]:
        calls.clear()
        with MODES[mode]():
            fused(_x())
        assert bool(calls) is expect, mode
    calls.clear()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        fused(_x())
    assert not calls


def _float64_reference(model: effzoo.Backbone, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        return copy.deepcopy(model).double()(x.double())


def _assert_as_accurate(
    ref: list[torch.Tensor], eager_out: list[torch.Tensor], fused_out: list[torch.Tensor]
) -> float:
    """Folding changes rounding, not accuracy: the fused error against the float64
    reference is within 2x of the eager one's (and small); returns it."""
    eager_err, fused_err = _rel(ref, eager_out), _rel(ref, fused_out)
    assert fused_err <= 2 * eager_err + 1e-3, (fused_err, eager_err)
    return fused_err


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_low_precision_models_are_as_accurate_as_eager(
    pair: tuple[effzoo.Backbone, effzoo.Backbone], dtype: torch.dtype
) -> None:
    model, fused = pair
    x = _x()
    ref = _float64_reference(model, x)
    low, fused_low = copy.deepcopy(model).to(dtype), copy.deepcopy(fused).to(dtype)
    with torch.no_grad():
        eager_out, fused_out = low(x.to(dtype)), fused_low(x.to(dtype))
    assert {o.dtype for o in fused_out} == {dtype}
    assert _assert_as_accurate(ref, eager_out, fused_out) < 0.1


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_autocast_computes_in_the_dtype_it_asks_for(
    pair: tuple[effzoo.Backbone, effzoo.Backbone], dtype: torch.dtype
) -> None:
    model, fused = pair
    x = _x()
    ref = _float64_reference(model, x)
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype):
        eager_out, fused_out = model(x), fused(x)
    assert [o.dtype for o in fused_out] == [o.dtype for o in eager_out]
    assert dtype in {o.dtype for o in fused_out}
    _assert_as_accurate(ref, eager_out, fused_out)


def _bn_scale(bn: torch.nn.BatchNorm2d) -> torch.Tensor:
    return bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)


def test_input_and_parameter_gradients_match_eager(
    pair: tuple[effzoo.Backbone, effzoo.Backbone],
) -> None:
    """Float64, so the comparison is exact up to reassociation. Parameters: a fused
    weight is ``W * s`` and its bias ``b_bn - mean * s`` (``s`` the batch norm's
    scale), so the eager convolution's gradient is the fused one's times ``s`` and
    the batch norm bias's gradient is the fused bias's."""
    model = copy.deepcopy(pair[0]).double()  # folded in float64 too
    fused = copy.deepcopy(model).fuse().requires_grad_(True)
    x = _x().double()
    weights = [torch.randn(o.shape, dtype=torch.float64) for o in model(x)]
    grads = []
    for m in (model, fused):
        xi = x.clone().requires_grad_()
        sum((o * w).sum() for o, w in zip(m(xi), weights)).backward()
        grads.append(xi.grad)
    assert _rel([grads[0]], [grads[1]]) < 1e-10
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    convs = [m for m in fused.modules() if isinstance(m, fz.FusedConv)]
    eager_convs = [
        m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.dim() == 4
    ]
    eager_convs = [c for c in eager_convs if not _is_se(model, c)]
    assert len(bns) == len(convs) == len(eager_convs)
    for bn, conv, fc in zip(bns, eager_convs, convs):
        s = _bn_scale(bn).view(-1, 1, 1, 1)
        torch.testing.assert_close(conv.weight.grad, fc.weight.grad * s, rtol=1e-8, atol=1e-10)
        torch.testing.assert_close(bn.bias.grad, fc.bias.grad, rtol=1e-8, atol=1e-10)


def _is_se(model: torch.nn.Module, conv: torch.nn.Module) -> bool:
    return any(
        conv is se.conv_reduce or conv is se.conv_expand
        for se in model.modules()
        if hasattr(se, "conv_reduce")
    )


@pytest.mark.parametrize(
    "family", ["yolo11", "yolo26", "rtdetr"], ids=["yolo11", "yolo26", "rtdetr"]
)
def test_yolo_layers_after_ultralytics_predict_in_every_mode(tmp_path: Path, family: str) -> None:
    """Ultralytics' predict fuses and runs under inference_mode; the same model called
    afterwards under no_grad or grad (a user's own loop, val after predict) works and
    equals the unfused model."""
    pytest.importorskip("ultralytics")
    import yolo_helpers
    from ultralytics import RTDETR, YOLO

    from effzoo import yolo

    if not yolo_helpers.ships_family(family):
        pytest.skip(f"the installed Ultralytics ships no {family}")
    # RT-DETR picks 300 queries: Ultralytics 8.3.x needs that many anchors (160 px)
    size = 160 if family == "rtdetr" else 64
    cfg = tmp_path / f"{family}-efflite0.yaml"
    cfg.write_text(yolo.model_yaml("efficientnet_lite0", pretrained=False, family=family))
    model = (RTDETR if family == "rtdetr" else YOLO)(str(cfg))
    eager = copy.deepcopy(model.model).eval()
    image = np.random.default_rng(0).integers(0, 255, (size, size + 16, 3), dtype=np.uint8)
    model.predict(image, imgsz=size, device="cpu", verbose=False)
    # the model predict ran, inside AutoBackend (8.4: in its .backend; older: itself)
    backend = model.predictor.model
    net = getattr(backend, "backend", backend).model
    assert any(isinstance(m, fz.FusedConv) for m in net.modules()), "predict did not fuse"
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref_levels = _backbone_levels(eager, x)
        ref = eager(x)[0]
    for mode in ORDER:
        with MODES[mode]():
            levels = _backbone_levels(net, x)
            out = net(x)[0].detach()  # the whole model: no crash in any mode
        for r, o in zip(ref_levels, levels):
            torch.testing.assert_close(o, r, rtol=1e-3, atol=1e-3 * float(r.abs().max()))
        assert torch.isfinite(out).all()
        if family == "yolo11":  # RT-DETR and YOLO26 pick top-k queries: compare features
            torch.testing.assert_close(out, ref, rtol=1e-3, atol=1e-3 * float(ref.abs().max()))


def _backbone_levels(net: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The outputs of the effzoo layers (one per level), run as Ultralytics runs them."""
    from effzoo.yolo.modules import BackboneStages, BackboneStem

    out = []
    for layer in net.model:
        if not isinstance(layer, (BackboneStem, BackboneStages)):
            break
        x = layer(x)
        out.append(x.detach())
    assert len(out) >= 3
    return out


_IMAGE = torch.rand(1, 3, 32, 32)
#: (input, what the message must say it got); the model is float32 on the CPU
BAD = {
    "float64": (_IMAGE.double(), r"got a tensor of dtype float64; convert the input"),
    "float16": (_IMAGE.half(), r"got a tensor of dtype float16"),
    "uint8": ((_IMAGE * 255).byte(), r"got a tensor of dtype uint8 \(x.float\(\) / 255"),
    "int64": (_IMAGE.long(), r"got a tensor of dtype int64"),
    "bool": (_IMAGE > 0.5, r"got a tensor of dtype bool"),
    "numpy": (_IMAGE.numpy(), r"got numpy.ndarray of shape \(1, 3, 32, 32\); for an HWC"),
    "list": ([[0.0]], r"got list"),
    "None": (None, r"got NoneType"),
    "meta": (_IMAGE.to("meta"), r"got a tensor on meta; move the input"),
    "3-d": (_IMAGE[0], r"got shape \(3, 32, 32\)"),
    "channels": (_IMAGE[:, :2], r"3-channel images, got a 2-channel input"),
}
EXPECTED = r"4-d float tensor \(batch, 3, height, width\) of dtype float32 on cpu"


@pytest.mark.parametrize("case", list(BAD))
@pytest.mark.parametrize("fused", [False, True], ids=["eager", "fused"])
def test_bad_input_is_one_typed_error_at_the_boundary(case: str, fused: bool) -> None:
    model = effzoo.create("efficientnet_lite0", width_mult=0.25).eval()
    if fused:
        model.fuse()
    x, got = BAD[case]
    with pytest.raises(effzoo.errors.InvalidArgumentError, match=got) as e:
        model(x)
    if case != "channels":
        assert "efficientnet_lite0 takes a " in str(e.value)
        assert pytest.importorskip("re").search(EXPECTED, str(e.value))


def test_autocast_accepts_other_float_inputs() -> None:
    """Under autocast a bfloat16 or float16 input is cast, as in the eager model; a
    float64 one is not (autocast leaves float64 alone), so it is still refused."""
    model = effzoo.create("efficientnet_lite0", width_mult=0.25).eval()
    fused = copy.deepcopy(model).fuse()
    for dtype in (torch.bfloat16, torch.float16):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            ref, out = model(_IMAGE.to(dtype)), fused(_IMAGE.to(dtype))
        assert [o.dtype for o in out] == [o.dtype for o in ref]
        assert _rel(ref, out) < 5e-2
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with pytest.raises(effzoo.errors.InvalidArgumentError, match="dtype float64"):
            fused(_IMAGE.double())


@pytest.mark.parametrize("case", ["float64", "uint8", "numpy", "None", "meta", "channels"])
def test_yolo_stem_refuses_bad_input_the_same_way(tmp_path: Path, case: str) -> None:
    pytest.importorskip("ultralytics")
    from ultralytics.nn.tasks import DetectionModel

    from effzoo import yolo

    cfg = tmp_path / "yolo11n-efflite0.yaml"
    cfg.write_text(yolo.model_yaml("efficientnet_lite0", pretrained=False))
    model = DetectionModel(str(cfg), verbose=False).eval()
    x, got = BAD[case]
    with pytest.raises(effzoo.errors.InvalidArgumentError, match=got) as e:
        model(x)
    assert "backbone row 0" in str(e.value) or "yolo11n-efflite0.yaml" in str(e.value)
