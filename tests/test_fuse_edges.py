"""Fused equals eager at the edges: NaN/inf inputs, batch 0, batch 1 vs 2, odd sizes;
a fused model refuses training mode; a wrong channel count is a clear error."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from test_fuse import _small, yolo_lite0

import effzoo
import effzoo.fuse as fz
from effzoo.errors import ExportError, InvalidArgumentError

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

#: one variant per family: v1 (SiLU, SE), Lite (ReLU6, no SE), V2 (SiLU, edge
#: residuals, SE), and v1 with TF "same" padding (Lite and V2 pad that way too)
FAMILIES = ["efficientnet_b0", "efficientnet_lite0", "efficientnet_v2_b0", "efficientnet_b6"]
#: even sizes pad TF "same" asymmetrically (grown depthwise kernels); odd ones do not
SIZES = [(64, 64), (65, 47), (17, 31)]
INF = float("inf")
NAN = float("nan")


@pytest.fixture(scope="module", params=FAMILIES)
def pair(request: pytest.FixtureRequest) -> tuple[effzoo.Backbone, effzoo.Backbone]:
    """(eager, fused) small models of one family."""
    model = _small(request.param)
    return model, copy.deepcopy(model).fuse()


def _assert_same(ref: list[torch.Tensor], out: list[torch.Tensor]) -> None:
    """Equal within float tolerance, NaN exactly where ``ref`` has NaN, +-inf likewise."""
    assert [r.shape for r in ref] == [o.shape for o in out]
    for r, o in zip(ref, out):
        finite = r[torch.isfinite(r)]
        scale = float(finite.abs().max()) if finite.numel() else 1.0
        torch.testing.assert_close(o, r, rtol=1e-4, atol=1e-4 * scale, equal_nan=True)


def _run(model: effzoo.Backbone, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        return model(x)


def _poisoned(batch: int, h: int, w: int, values: list[float]) -> torch.Tensor:
    """Random images; sample 0 gets ``values`` at a corner, an edge and inside."""
    x = torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(h * w))
    spots = [(0, 0, 0), (1, h // 2, w - 1), (2, h // 3, w // 2)]
    for v, (c, i, j) in zip(values, spots):
        x[0, c, i, j] = v
    return x


@pytest.mark.parametrize(
    "values", [[NAN], [INF], [-INF], [NAN, INF, -INF]], ids=["nan", "inf", "-inf", "mixed"]
)
@pytest.mark.parametrize("batch", [1, 2])
def test_nonfinite_input_gives_eager_nan_and_inf(
    pair: tuple[effzoo.Backbone, effzoo.Backbone], values: list[float], batch: int
) -> None:
    """Lite used to turn NaN into finite features (oneDNN's ReLU6 post-op drops NaN)."""
    model, fused = pair
    for h, w in SIZES:
        x = _poisoned(batch, h, w, values)
        ref = _run(model, x)
        if math.isnan(values[0]):  # NaN reaches the output (ReLU6 clamps an inf to 6)
            assert ref[-1][0].isnan().any()
        _assert_same(ref, _run(fused, x))
        if batch == 2:  # the clean sample stays clean
            assert all(torch.isfinite(r[1]).all() for r in _run(fused, x))


def test_finite_input_after_nonfinite_takes_onednn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _small("efficientnet_lite0")
    fused = copy.deepcopy(model).fuse()
    calls: list[bool] = []
    orig = fz.FusedConv.uses_onednn

    def spy(self: fz.FusedConv, x: torch.Tensor) -> bool:
        calls.append(orig(self, x))
        return calls[-1]

    monkeypatch.setattr(fz.FusedConv, "uses_onednn", spy)
    _run(fused, _poisoned(1, 64, 64, [NAN]))
    assert calls and not any(calls)  # the exact plain path throughout
    calls.clear()
    x = torch.randn(1, 3, 64, 64)
    _assert_same(_run(model, x), _run(fused, x))
    assert calls and all(calls)  # the fast path throughout


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_v2_b0"])
def test_each_segment_checks_its_own_input(name: str) -> None:
    """The stages after an output level (one Ultralytics layer) check their input too,
    so NaN arriving there (here: put into P3 by hand) propagates as in eager."""
    model = _small(name)
    fused = copy.deepcopy(model).fuse()
    start, end = sorted(model._stage_out_idx)[:2]  # stages of the P4 segment
    with torch.no_grad():
        p3 = model(torch.randn(1, 3, 64, 64))[0]
        p3[0, :, 1, 2] = NAN
        p3[0, 0, 5, 6] = INF
        ref = model.blocks[start:end](p3)
        # whatever the segment before it saw (a finite or a NaN input), this one checks
        # its own input: the per-thread note never carries over into it
        for before in (torch.randn(1, 3, 64, 64), torch.full((1, 3, 64, 64), NAN)):
            fused.conv_stem(before)
            out = fused.blocks[start:end](p3)
            _assert_same([ref], [out])
    assert not torch.isfinite(ref).all()


def test_batch_zero(pair: tuple[effzoo.Backbone, effzoo.Backbone]) -> None:
    """Fused squeeze-excite models used to crash on an empty batch."""
    model, fused = pair
    for h, w in SIZES:
        x = torch.randn(0, 3, h, w)
        ref, out = _run(model, x), _run(fused, x)
        assert [r.shape for r in ref] == [o.shape for o in out]
        assert [o.shape[:2] for o in out] == [(0, c) for c in model.out_channels]
        assert [o.shape[2:] for o in out] == [
            torch.Size([-(-h // s), -(-w // s)]) for s in model.strides
        ]


def test_batch_one_and_two_and_odd_sizes(pair: tuple[effzoo.Backbone, effzoo.Backbone]) -> None:
    """Batch 1 folds the SE gate into the weights, batch 2 scales the input: same values."""
    model, fused = pair
    for h, w in [*SIZES, (33, 95), (96, 41)]:
        x = torch.randn(2, 3, h, w)
        out = _run(fused, x)
        _assert_same(_run(model, x), out)
        for i in range(2):
            _assert_same([o[i : i + 1] for o in out], _run(fused, x[i : i + 1]))


def test_fused_refuses_training_mode() -> None:
    model = effzoo.create("efficientnet_b0", width_mult=0.5).eval()
    trainable = copy.deepcopy(model)
    model.fuse()
    with pytest.raises(ExportError, match=r"fused for inference") as err:
        model.train()
    assert "effzoo.create(" in str(err.value) and "copy.deepcopy(model)" in str(err.value)
    assert not any(m.training for m in model.modules())  # nothing switched
    with pytest.raises(ExportError):
        torch.nn.Sequential(model).train()  # a parent's train() reaches it too
    assert model.eval() is model and model.train(False) is model and not model.training
    model.freeze(2).set_norm_eval()  # both re-apply the current (eval) mode
    _run(model, torch.randn(1, 3, 64, 64))
    assert trainable.train().training  # the copy made before fuse() trains


def test_channel_mismatch_is_a_clear_error() -> None:
    rgb = effzoo.create("efficientnet_lite0", width_mult=0.5).eval()
    gray = effzoo.create("efficientnet_lite0", width_mult=0.5, in_chans=1).eval()
    for model in (rgb, copy.deepcopy(rgb).fuse()):
        with pytest.raises(InvalidArgumentError, match=r"3-channel images, got a 1-channel") as e:
            _run(model, torch.randn(1, 1, 64, 64))
        assert "in_chans=1" in str(e.value)
        with pytest.raises(
            ValueError,
            match=r"4-d float tensor \(batch, 3, height, width\).*got shape \(3, 64, 64\)",
        ):
            _run(model, torch.randn(3, 64, 64))
    for model in (gray, copy.deepcopy(gray).fuse()):
        with pytest.raises(InvalidArgumentError, match=r"1-channel images.*in_chans=3"):
            _run(model, torch.randn(2, 3, 64, 64))
        assert [o.shape[1] for o in _run(model, torch.randn(2, 1, 64, 64))] == gray.out_channels


def test_ultralytics_fused_model_keeps_nan(tmp_path: Path) -> None:
    """Ultralytics fuses before predict: a NaN image must not give finite boxes."""
    model = yolo_lite0(tmp_path)
    x = torch.rand(1, 3, 64, 96)
    x[0, 1, 40, 50] = NAN
    with torch.no_grad():
        ref = model(x)[0]
        model.fuse(verbose=False)
        out = model(x)[0]
    assert ref.isnan().any()
    _assert_same([ref], [out])
