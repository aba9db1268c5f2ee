"""Backbone.fuse(): folded batch norms, fused activations/SE/residuals, same outputs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from timm.layers import BatchNormAct2d

import effzoo
import effzoo.fuse as fz
from effzoo.errors import ExportError

# small inputs with odd sizes: TF "same" padding is asymmetric on even sizes only
SIZES = [(64, 64), (65, 47)]


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def _randomize_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial running statistics and affine terms, so folding has work to do."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            m.bias.data.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
    return model


def _small(name: str) -> effzoo.Backbone:
    """The variant's block types, kernels, padding, activation and SE, at half B0 width
    and at most two blocks per stage (shallow enough to stay well conditioned)."""
    spec = effzoo.lookup(name)
    repeats = max(int(b.split("_r")[1].split("_")[0]) for stage in spec.arch for b in stage)
    model = effzoo.create(
        name, width_mult=0.5 / spec.width, depth_mult=2.0 / (repeats * spec.depth)
    )
    return _randomize_bn(model).eval()


def _rel_err(ref: list[torch.Tensor], out: list[torch.Tensor]) -> float:
    assert [r.shape for r in ref] == [o.shape for o in out]
    return max(float((r - o).abs().max() / r.abs().max()) for r, o in zip(ref, out))


@pytest.mark.parametrize("name", effzoo.list_models())
def test_fused_equals_unfused_every_variant(name: str) -> None:
    model = _small(name)
    fused = copy.deepcopy(model).fuse()
    for h, w in SIZES:
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            assert _rel_err(model(x), fused(x)) < 1e-4


@pytest.mark.parametrize("name", ["efficientnet_b0", "efficientnet_lite0", "efficientnet_v2_b0"])
def test_fused_math_is_exact_in_float64(name: str) -> None:
    """Plain-op path in float64: folding and SE rewrites change nothing but rounding."""
    model = _small(name).double()
    fused = copy.deepcopy(model).fuse()
    x = torch.randn(2, 3, 37, 30, dtype=torch.float64)
    with torch.no_grad():
        assert _rel_err(model(x), fused(x)) < 1e-10


@pytest.mark.parametrize("name", ["efficientnet_b0", "efficientnet_v2_b0"])
def test_fused_native_size_batch_and_grad_paths(name: str) -> None:
    model = _randomize_bn(effzoo.create(name)).eval()
    fused = copy.deepcopy(model).fuse()
    x = torch.randn(2, 3, 64, 81)  # batch 2: the SE gate scales the input, not the weights
    with torch.no_grad():
        ref = model(x)
        assert _rel_err(ref, fused(x)) < 1e-4
        assert _rel_err([r[:1] for r in ref], fused(x[:1])) < 1e-4  # batch 1: SE in weights
    out = fused(x.requires_grad_())  # grad enabled: plain differentiable ops
    assert _rel_err(ref, [o.detach() for o in out]) < 1e-4
    out[-1].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", ["efficientnet_b3", "efficientnet_b6"])  # symmetric, TF same
def test_tiled_expansion_equals_untiled(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _small(name)
    fused = copy.deepcopy(model).fuse()
    monkeypatch.setattr(fz.blocks, "TILE_MIN_BYTES", 0)
    monkeypatch.setattr(fz.blocks, "TILE_BYTES", 2048)  # a few rows per tile
    calls: list[int] = []
    orig = fz.FusedBlock._expand_depthwise_tiled

    def spy(self: fz.FusedBlock, x: torch.Tensor) -> torch.Tensor | None:
        out = orig(self, x)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(fz.FusedBlock, "_expand_depthwise_tiled", spy)
    for h, w in [(64, 64), (71, 66), (33, 95)]:
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            assert _rel_err(model(x), fused(x)) < 1e-4
    assert any(calls), "tiling never ran"


def test_fuse_is_in_place_idempotent_and_channels_last() -> None:
    model = effzoo.create("efficientnet_lite0").eval()
    assert model.fuse() is model
    assert model.fused
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, BatchNormAct2d)) for m in model.modules())
    n_params = sum(p.numel() for p in model.parameters())
    assert model.fuse() is model
    assert sum(p.numel() for p in model.parameters()) == n_params
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert all(o.is_contiguous(memory_format=torch.channels_last) for o in out)
    assert [o.shape[1] for o in out] == model.out_channels


def test_fuse_without_channels_last() -> None:
    model = effzoo.create("efficientnet_b0").eval()
    ref = copy.deepcopy(model)
    model.fuse(channels_last=False)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = model(x)
        assert _rel_err(ref(x), out) < 1e-4
    assert out[0].is_contiguous()


def test_fuse_refuses_training_mode() -> None:
    model = effzoo.create("efficientnet_b0")  # modules start in training mode
    with pytest.raises(ExportError, match=r"\.eval\(\)"):
        model.fuse()
    assert not model.fused
    assert any(isinstance(m, BatchNormAct2d) for m in model.modules())  # untouched
    model.eval().blocks[2].train()
    with pytest.raises(ExportError, match=r"blocks\.2"):
        model.fuse()


def test_fused_model_refuses_checkpointing() -> None:
    model = effzoo.create("efficientnet_b0").eval().fuse()
    with pytest.raises(ExportError):
        model.set_grad_checkpointing(True)


def test_fold_bn_matches_batchnorm() -> None:
    conv = torch.nn.Conv2d(4, 6, 3, padding=1, bias=True)
    bn = _randomize_bn(torch.nn.Sequential(torch.nn.BatchNorm2d(6, eps=1e-3))).eval()[0]
    w, b = fz.fold_bn(conv.weight.detach(), conv.bias.detach(), bn)
    x = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        ref = bn(conv(x))
    torch.testing.assert_close(torch.nn.functional.conv2d(x, w, b, padding=1), ref)


@pytest.mark.parametrize("size", [7, 8, 9, 640, 641])
@pytest.mark.parametrize(("k", "s"), [(3, 1), (3, 2), (5, 2), (1, 1)])
def test_same_pad_matches_tensorflow_rule(size: int, k: int, s: int) -> None:
    begin, end = fz.same_pad(size, k, s, 1)
    out = -(-size // s)  # TF "same": ceil(size / stride) outputs
    assert (size + begin + end - k) // s + 1 == out
    assert end - begin in (0, 1)


def yolo_lite0(tmp_path: Path) -> torch.nn.Module:
    """A YOLO11n detector with a random-init Lite0 row and non-trivial BN statistics."""
    pytest.importorskip("ultralytics")
    yolo = pytest.importorskip("effzoo.yolo")
    from ultralytics.nn.tasks import DetectionModel

    cfg = tmp_path / "yolo11n-efflite0.yaml"
    cfg.write_text(yolo.model_yaml("efficientnet_lite0", pretrained=False))
    return _randomize_bn(DetectionModel(str(cfg), verbose=False)).eval()


def test_ultralytics_fuse_uses_backbone_fuse(tmp_path: Path) -> None:
    """Ultralytics' own ``model.fuse()`` (called by predict) folds the effzoo backbone."""
    model = yolo_lite0(tmp_path)
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        ref = model(x)[0]
        model.fuse(verbose=False)
        out = model(x)[0]
    assert any(isinstance(m, fz.FusedConv) for m in model.modules())
    assert not any(isinstance(m, BatchNormAct2d) for m in model.modules())
    torch.testing.assert_close(out, ref, rtol=1e-3, atol=1e-3 * float(ref.abs().max()))


def test_unsupported_block_leaves_model_untouched() -> None:
    model = effzoo.create("efficientnet_b0").eval()
    model.blocks[3][1] = torch.nn.Conv2d(80, 80, 1).eval()  # not an EfficientNet block
    with pytest.raises(ExportError, match="Conv2d"):
        model.fuse()
    assert not model.fused
    assert isinstance(model.bn1, BatchNormAct2d)
    assert not any(isinstance(m, fz.FusedBlock) for m in model.modules())
