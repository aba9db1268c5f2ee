"""The fused model's memory plan: buffers reused between calls, outputs never reused.

``FAULT_FRACTION = 0`` makes every convolution output a plan buffer from the first
call on (instead of only those the allocator mapped in afresh), so these tests
run every planned code path whatever this machine's allocator does.
"""

from __future__ import annotations

import copy
import os
import pickle
import threading
from pathlib import Path

import pytest
import torch
from test_fuse import _rel_err, _small, yolo_lite0

import effzoo
import effzoo.fuse as fz

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

FAMILIES = ["efficientnet_b0", "efficientnet_lite0", "efficientnet_v2_b0", "efficientnet_v2_s"]


@pytest.fixture
def plan_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plan every convolution output, not only those that page-faulted: from the
    third call of a shape on (``CALLS`` calls reach it)."""
    monkeypatch.setattr(fz, "FAULT_FRACTION", 0.0)
    monkeypatch.setattr(fz, "FAULTED_CALLS", 1)


#: calls of one shape after which every path of the plan has run (see ``plan_everything``)
CALLS = 4


def _pair(name: str) -> tuple[effzoo.Backbone, effzoo.Backbone]:
    model = _small(name)
    return model, copy.deepcopy(model).fuse()


def _planned_convs(fused: torch.nn.Module) -> int:
    pool = fused.conv_stem.pool
    return sum(len(p.faulting) for plans in pool._plans.values() for p in plans.values())


@pytest.mark.parametrize("name", FAMILIES)
def test_planned_equals_eager_alternating_shapes(name: str, plan_everything: None) -> None:
    model, fused = _pair(name)
    inputs = [torch.randn(1, 3, 65, 47), torch.randn(2, 3, 64, 64), torch.randn(1, 3, 33, 71)]
    with torch.no_grad():
        refs = [model(x) for x in inputs]
        for _ in range(CALLS):  # recording calls, then calls on the plan, shapes alternating
            for x, ref in zip(inputs, refs):
                assert _rel_err(ref, fused(x)) < 1e-4
    assert _planned_convs(fused) > 0  # the planned path ran
    assert sorted(fused.conv_stem.pool.shapes()) == sorted(tuple(x.shape) for x in inputs)


def test_planned_equals_unplanned_exactly_for_relu6(plan_everything: None) -> None:
    """Lite (ReLU6): the planned convolution (zeroed buffer + oneDNN sum, clamp in place)
    does the same float operations as the fused one."""
    model = _small("efficientnet_lite0")
    planned = copy.deepcopy(model).fuse()
    plain = copy.deepcopy(model).fuse(reuse_buffers=False)
    x = torch.randn(1, 3, 97, 64)
    with torch.no_grad():
        for _ in range(CALLS):
            assert all(torch.equal(a, b) for a, b in zip(planned(x), plain(x)))


def test_returned_features_survive_later_calls(plan_everything: None) -> None:
    model, fused = _pair("efficientnet_b0")
    a, b = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for _ in range(CALLS):  # on the plan from here
            first = fused(a)
        kept = [t.clone() for t in first]
        second = fused(b)
        third = fused(a)
        ref = model(b)
    assert all(torch.equal(k, f) for k, f in zip(kept, first))  # P3..P5 untouched
    assert all(not torch.equal(f, s) for f, s in zip(first, second))
    assert all(f.data_ptr() != s.data_ptr() for f, s in zip(first, second))
    assert all(torch.equal(k, t) for k, t in zip(kept, third))
    assert _rel_err(ref, second) < 1e-4


def test_batch_zero_and_one(plan_everything: None) -> None:
    model, fused = _pair("efficientnet_v2_b0")
    with torch.no_grad():
        for _ in range(CALLS):
            empty = fused(torch.randn(0, 3, 64, 64))
            assert [t.shape[0] for t in empty] == [0, 0, 0]
            x = torch.randn(1, 3, 64, 64)
            assert _rel_err(model(x), fused(x)) < 1e-4


def test_tiled_blocks_on_the_plan(plan_everything: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fz, "TILE_MIN_BYTES", 1)
    monkeypatch.setattr(fz, "TILE_BYTES", 2048)
    model, fused = _pair("efficientnet_b3")
    x = torch.randn(1, 3, 70, 66)
    with torch.no_grad():
        for _ in range(CALLS):
            assert _rel_err(model(x), fused(x)) < 1e-4


def test_plan_keeps_at_most_plan_shapes_lru() -> None:
    _, fused = _pair("efficientnet_lite0")
    pool = fused.conv_stem.pool
    sizes = [(32 + 8 * i, 32) for i in range(fz.PLAN_SHAPES + 2)]
    with torch.no_grad():
        for h, w in sizes:
            fused(torch.randn(1, 3, h, w))
        assert pool.shapes() == [(1, 3, h, w) for h, w in sizes[-fz.PLAN_SHAPES :]]
        fused(torch.randn(1, 3, *sizes[-fz.PLAN_SHAPES]))  # used again: most recent now
    assert pool.shapes()[-1] == (1, 3, *sizes[-fz.PLAN_SHAPES])
    assert len(pool.shapes()) == fz.PLAN_SHAPES
    kept = pool.nbytes()
    pool.clear()
    assert kept > 0 and pool.nbytes() == 0 and pool.shapes() == []


def test_threads_share_a_model_safely(plan_everything: None) -> None:
    model, fused = _pair("efficientnet_b0")
    inputs = [torch.randn(1, 3, 64, 64) for _ in range(4)]
    with torch.no_grad():
        refs = [model(x) for x in inputs]
    errors: list[float] = []

    def work(i: int) -> None:
        with torch.no_grad():
            for _ in range(6):
                errors.append(_rel_err(refs[i], fused(inputs[i])))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 24 and max(errors) < 1e-4


def test_copies_and_pickles_start_with_an_empty_plan(plan_everything: None) -> None:
    model, fused = _pair("efficientnet_b0")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        fused(x)
    for other in (copy.deepcopy(fused), pickle.loads(pickle.dumps(fused))):
        pools = {id(m.pool) for m in other.modules() if "pool" in vars(m)}  # stem, blocks
        assert len(pools) == 1 and other.conv_stem.pool is not fused.conv_stem.pool
        assert other.conv_stem.pool.shapes() == []
        with torch.no_grad():
            assert _rel_err(model(x), other(x)) < 1e-4


def test_no_plan_for_grad_non_finite_or_opt_out(plan_everything: None) -> None:
    model, fused = _pair("efficientnet_lite0")
    x = torch.randn(1, 3, 64, 64)
    fused(x)  # gradients enabled: plain PyTorch ops, no plan
    assert fused.conv_stem.pool.shapes() == []
    nan = x.clone()
    nan[0, :, 10, 10] = float("nan")
    with torch.no_grad():
        for _ in range(CALLS):
            got, ref = fused(nan), model(nan)
            assert all(torch.equal(g.isnan(), r.isnan()) for g, r in zip(got, ref))
    off = copy.deepcopy(model).fuse(reuse_buffers=False)
    assert off.conv_stem.pool is None
    with torch.no_grad():
        assert _rel_err(model(x), off(x)) < 1e-4


def test_no_process_wide_setting_changes() -> None:
    env = dict(os.environ)
    threads = torch.get_num_threads()
    _, fused = _pair("efficientnet_b0")
    with torch.no_grad():
        for _ in range(CALLS):
            fused(torch.randn(1, 3, 64, 64))
    assert dict(os.environ) == env and torch.get_num_threads() == threads


def test_ultralytics_fused_model_runs_on_the_plan(tmp_path: Path, plan_everything: None) -> None:
    """Ultralytics fuses (as predict does), then calls the split layers: each layer keeps
    its own plan, reused call after call."""
    model = yolo_lite0(tmp_path)
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        ref = model(x)[0]
        model.fuse(verbose=False)
        outs = [model(x)[0] for _ in range(CALLS)]
    pool = next(m.pool for m in model.modules() if isinstance(m, fz.FusedConv))
    plans = [p for ps in pool._plans.values() for p in ps.values()]
    assert len(plans) == 5  # one per layer (P1..P5), each used by every call
    assert [p.calls for p in plans] == [CALLS] * 5
    for out in outs:
        torch.testing.assert_close(out, ref, rtol=1e-3, atol=1e-3 * float(ref.abs().max()))


@pytest.mark.parametrize("kwargs", [{"reuse_buffers": "no"}, {"channels_last": 1}])
def test_fuse_options_are_booleans(kwargs: dict) -> None:
    model = effzoo.create("efficientnet_lite0").eval()
    with pytest.raises(effzoo.errors.InvalidArgumentError, match="must be True or False"):
        model.fuse(**kwargs)
    assert not model.fused
