"""Training memory and fine-tuning switches: checkpointing, freeze, norm_eval."""

from __future__ import annotations

import copy

import pytest
import torch
import yolo_helpers

import effzoo
from effzoo.errors import InvalidArgumentError

peak_memory = yolo_helpers.load_script("benchmarks/memory.py").peak_memory

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def _step(model: torch.nn.Module, x: torch.Tensor) -> None:
    out = model(x)
    sum(o.float().pow(2).mean() for o in out).backward()


def _bn_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_b" in k}


@pytest.mark.parametrize("name", ["efficientnet_b0", "efficientnet_v2_b0"])
def test_checkpointing_gives_identical_gradients_and_bn_state(name: str) -> None:
    torch.manual_seed(0)
    plain = effzoo.create(name, width_mult=0.5, depth_mult=0.5, drop_path_rate=0.1).train()
    ckpt = copy.deepcopy(plain)
    ckpt.set_grad_checkpointing(True)
    x = torch.randn(2, 3, 48, 48)
    torch.manual_seed(1)  # drop path draws the same random numbers in both
    _step(plain, x)
    torch.manual_seed(1)
    _step(ckpt, x)
    for (name_p, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        assert p.grad is not None, name_p
        torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=0, msg=name_p)
    # the recomputation in backward must not update batch-norm statistics a second time
    state_p, state_c = _bn_state(plain), _bn_state(ckpt)
    for k in state_p:
        torch.testing.assert_close(state_c[k], state_p[k], rtol=0, atol=0, msg=k)


def test_checkpointing_lowers_peak_training_memory() -> None:
    model = effzoo.create("efficientnet_b0", width_mult=0.5).train()
    x = torch.randn(1, 3, 128, 128)
    _step(model, x)  # gradients allocated once, so the peak is the activations
    peaks = {}
    for enabled in (False, True):
        model.set_grad_checkpointing(enabled)
        model.zero_grad(set_to_none=False)
        peaks[enabled] = peak_memory(lambda: _step(model, x))
    assert peaks[False] > 5 * 2**20  # the measurement sees the activations at all
    assert peaks[True] < 0.6 * peaks[False], peaks


def test_checkpointing_is_off_without_grad() -> None:
    model = effzoo.create("efficientnet_lite0").eval()
    model.set_grad_checkpointing(True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = model(x)
    model.set_grad_checkpointing(False)
    with torch.no_grad():
        ref = model(x)
    for o, r in zip(out, ref):
        torch.testing.assert_close(o, r, rtol=0, atol=0)


def test_freeze_stem_and_stages() -> None:
    model = effzoo.create("efficientnet_b0")
    assert model.freeze(2) is model
    model.train()
    assert not model.conv_stem.weight.requires_grad
    assert not any(p.requires_grad for p in model.blocks[:2].parameters())
    assert all(p.requires_grad for p in model.blocks[2:].parameters())
    assert not model.bn1.training and not model.blocks[1][0].bn1.training
    assert model.blocks[2][0].bn1.training
    frozen_before = _bn_state(model.blocks[:2])
    trained_before = _bn_state(model.blocks[2:])
    _step(model, torch.randn(2, 3, 48, 48))
    assert model.blocks[1][0].conv_pw.weight.grad is None
    assert model.blocks[2][0].conv_pw.weight.grad is not None
    after = _bn_state(model.blocks[:2])
    assert all(torch.equal(after[k], v) for k, v in frozen_before.items())
    changed = _bn_state(model.blocks[2:])
    assert any(not torch.equal(changed[k], v) for k, v in trained_before.items())

    model.unfreeze()
    assert all(p.requires_grad for p in model.parameters())
    assert all(m.training for m in model.modules())


def test_freeze_everything_and_bad_arguments() -> None:
    model = effzoo.create("efficientnet_lite0")
    model.freeze()
    assert not any(p.requires_grad for p in model.parameters())
    model.train()
    assert not any(m.training for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    for bad in (len(model.blocks) + 1, -2, 1.5, True, "2"):
        with pytest.raises(InvalidArgumentError):
            model.freeze(bad)  # type: ignore[arg-type]


def test_norm_eval_keeps_statistics_but_trains_affine() -> None:
    model = effzoo.create("efficientnet_v2_b0")
    assert model.set_norm_eval() is model
    model.train()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    assert model.blocks[0].training  # everything else still trains
    before = _bn_state(model)
    _step(model, torch.randn(2, 3, 48, 48))
    after = _bn_state(model)
    assert all(torch.equal(after[k], v) for k, v in before.items())
    assert all(m.weight.grad is not None for m in bns)
    model.set_norm_eval(False)
    assert all(m.training for m in bns)
