"""effzoo.create: exactness against timm, the feature contract, scaling, bad input."""

from __future__ import annotations

import math

import pytest
import timm
import torch

import effzoo
from effzoo.backbone import Backbone, Classifier
from effzoo.errors import EffzooError, InvalidArgumentError

ALL = effzoo.list_models()


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def randomize_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every BN layer non-trivial statistics so a wrong layer would show."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.1)


@pytest.mark.parametrize("name", ALL)
def test_equals_timm_features_only(name):
    """Same channels, strides, parameter count and outputs as timm on the same weights.

    Each variant is built once here (the largest too); timm's copy is built on the
    meta device and takes effzoo's tensors, so no second allocation is needed.
    """
    spec = effzoo.lookup(name)
    torch.manual_seed(0)
    ours = effzoo.create(name).eval()
    randomize_bn(ours)
    ref = timm.create_model(
        spec.timm_arch, features_only=True, out_indices=(2, 3, 4), device="meta"
    )
    ref.load_state_dict(ours.state_dict(), strict=True, assign=True)
    ref.eval()
    assert ours.out_channels == ref.feature_info.channels()
    assert ours.strides == ref.feature_info.reduction() == [8, 16, 32]
    assert n_params(ours) == n_params(ref)
    x = torch.randn(1, 3, 70, 90)  # odd sizes exercise TF "same" padding
    with torch.no_grad():
        got, want = ours(x), ref(x)
    assert [t.shape[1] for t in got] == ours.out_channels
    assert [t.shape[-2:] for t in got] == [(9, 12), (5, 6), (3, 3)]
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name", ALL)
def test_classifier_matches_timm_and_paper(name):
    spec = effzoo.lookup(name)
    ours = effzoo.model_info(name)
    ref = timm.create_model(spec.timm_arch, device="meta")
    assert ours.classifier_params == n_params(ref)
    # the papers quote rounded figures (e.g. B0 5.3M, V2-L 120M): within 2%
    assert abs(ours.classifier_params / 1e6 - spec.paper_params_m) <= 0.02 * spec.paper_params_m
    assert ours.channels[2:] == tuple(Backbone(spec, device="meta").out_channels)


def test_quickstart_example():
    m = effzoo.create("efficientnet_v2_s")
    assert m.out_channels == [64, 160, 256] and m.strides == [8, 16, 32]
    p3, p4, p5 = m(torch.randn(1, 3, 128, 128))
    assert p3.shape == (1, 64, 16, 16) and p4.shape == (1, 160, 8, 8) and p5.shape == (1, 256, 4, 4)


def paper_round(c: float) -> int:
    """The reference code's round_filters: nearest multiple of 8, never 10% below."""
    new = max(8, int(c + 4) // 8 * 8)
    return new + 8 if new < 0.9 * c else new


@pytest.mark.parametrize(
    ("name", "w", "d"),
    [
        ("efficientnet-b0", 0.25, 0.5),
        ("efficientnet_v2_s", 0.25, 0.5),
        ("efficientnet_b3", 1.5, 1.3),
    ],
)
def test_width_depth_scaling_follows_the_papers_rounding(name, w, d):
    spec = effzoo.lookup(name)
    m = effzoo.create(name, width_mult=w, depth_mult=d, out_indices=(0, 1, 2, 3, 4))
    # every stage: channels rounded to multiples of 8, depth rounded up
    for stage, row in zip(m.blocks, spec.arch):
        fields = dict((f[0], f[1:]) for f in row[0].split("_") if f[0] in "rc")
        assert len(stage) == math.ceil(int(fields["r"]) * spec.depth * d)
        convs = [c for c in stage[-1].modules() if isinstance(c, torch.nn.Conv2d)]
        out_chs = convs[-1].out_channels  # the block's output projection
        assert out_chs == paper_round(int(fields["c"]) * spec.width * w)
        assert out_chs % 8 == 0
    assert m.conv_stem.out_channels == paper_round(spec.stem_size * spec.width * w)


def test_recipe_row_channels():
    m = effzoo.create("efficientnet-b0", width_mult=0.25, depth_mult=0.5)
    assert m.out_channels == [16, 32, 80]
    outs = m(torch.randn(2, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [16, 32, 80]
    assert n_params(m) < n_params(effzoo.create("efficientnet_b0")) / 10


def test_no_blocks_past_the_deepest_level():
    full = effzoo.create("efficientnet_b0")
    shallow = effzoo.create("efficientnet_b0", out_indices=(1, 2))
    assert shallow.strides == [4, 8] and shallow.out_channels == [24, 40]
    assert len(shallow.blocks) == 3 < len(full.blocks) == 7
    assert n_params(shallow) < n_params(full) / 10
    outs = shallow(torch.randn(1, 3, 64, 64))
    assert [o.shape[-1] for o in outs] == [16, 8]
    # shared blocks keep timm's keys, so the shallow model loads from the full one
    shallow.load_state_dict(
        {k: v for k, v in full.state_dict().items() if k in shallow.state_dict()}
    )


def test_all_levels_and_single_level():
    m = effzoo.create("efficientnet_lite0", out_indices=(0, 1, 2, 3, 4))
    assert m.strides == [2, 4, 8, 16, 32] and m.out_channels == [16, 24, 40, 112, 320]
    assert effzoo.create("efficientnet_lite0", out_indices=(4,)).strides == [32]


def test_in_chans_and_drop_path():
    m = effzoo.create("efficientnet_v2_b0", in_chans=1, drop_path_rate=0.2)
    assert m.conv_stem.in_channels == 1
    assert m(torch.randn(1, 1, 64, 64))[0].shape[1] == m.out_channels[0]
    rates = [mod.drop_prob for mod in m.modules() if type(mod).__name__ == "DropPath"]
    assert rates and max(rates) > 0


def test_features_only_false_is_the_classifier():
    m = effzoo.create("efficientnet_b0", features_only=False).eval()
    assert isinstance(m, Classifier)
    assert m(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"width_mult": 0}, "width_mult must be a positive number"),
        ({"width_mult": -1.0}, "width_mult must be a positive number"),
        ({"depth_mult": float("nan")}, "depth_mult must be a positive number"),
        ({"depth_mult": "1"}, "depth_mult must be a positive number"),
        ({"out_indices": (2, 3, 5)}, r"out of range: levels are 0..4"),
        ({"out_indices": (-1,)}, r"out of range"),
        ({"out_indices": (2, 2, 3)}, "duplicates"),
        ({"out_indices": (4, 3, 2)}, r"ascending .* use \(2, 3, 4\)"),
        ({"out_indices": ()}, "non-empty"),
        ({"in_chans": 0}, "in_chans must be an integer >= 1"),
        ({"drop_path_rate": 1.5}, r"drop_path_rate must be in \[0, 1\)"),
        ({"widht_mult": 0.5}, "unknown option 'widht_mult'. Did you mean 'width_mult'"),
        ({"pretrained": 3}, "pretrained must be"),
    ],
)
def test_bad_input_is_a_typed_error_at_create(kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match) as exc:
        effzoo.create("efficientnet_b0", **kwargs)
    assert isinstance(exc.value, ValueError) and isinstance(exc.value, EffzooError)
