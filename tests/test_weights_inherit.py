"""Weight selection (inheritance): identity at 1.0, consistency when scaled.

Consistency is tested by what it is for. Take a full-size model, zero every channel
that selection leaves out (in every tensor, along every dimension that shrinks) and
every block it drops. Those channels then stay exactly zero through the network
(convs, BN, SE, activations with f(0) = 0, residual adds), and a dropped residual block
adds nothing. If, and only if, every layer selected the same channels of each shared
channel space (a stage's residual stream above all), the scaled model built from the
inherited weights computes exactly the full model's kept channels.
"""

from __future__ import annotations

import re

import pytest
import torch

import effzoo
from effzoo.backbone import Classifier
from effzoo.weights.inherit import Selection, inherit, select_indices


def _random_classifier(name: str) -> Classifier:
    torch.manual_seed(0)
    model = Classifier(effzoo.lookup(name)).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    return model


def test_select_indices_are_uniform_and_identity_at_full_size():
    assert select_indices(8, 8).tolist() == list(range(8))
    assert select_indices(8, 4).tolist() == [0, 2, 4, 6]
    assert select_indices(40, 24).tolist()[:4] == [0, 1, 3, 5]


def test_identity_at_width_and_depth_one():
    sd = _random_classifier("efficientnet_v2_b0").state_dict()
    out, sel = inherit(sd, sd)
    assert sel.identity and sel.sliced == 0 and str(sel).startswith("all ")
    assert all(out[k] is sd[k] for k in sd)


_BLOCK = re.compile(r"^blocks\.(\d+)\.(\d+)\.")


def _masked_source(
    src: dict[str, torch.Tensor], tgt: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in src.items():
        if k not in tgt:  # a dropped block: all zeros makes it add nothing
            out[k] = torch.zeros_like(v)
            continue
        mask = torch.ones_like(v, dtype=torch.bool)
        for dim, (s, t) in enumerate(zip(v.shape, tgt[k].shape)):
            if s != t:
                keep = torch.zeros(s, dtype=torch.bool)
                keep[select_indices(s, t)] = True
                shape = [1] * v.dim()
                shape[dim] = s
                mask &= keep.view(shape)
        out[k] = torch.where(mask, v, torch.zeros_like(v))
    return out


@pytest.mark.parametrize(
    "name,width,depth",
    [
        ("efficientnet_b0", 0.5, 0.5),  # DS + IR blocks with SE, SiLU
        ("efficientnet_lite0", 0.75, 0.34),  # no SE, ReLU6, fixed stem/head
        ("efficientnet_v2_b0", 0.5, 0.5),  # Fused-MBConv (ER) and conv (CN) blocks
    ],
)
def test_scaled_inheritance_is_consistent(name: str, width: float, depth: float):
    full = _random_classifier(name)
    src = full.state_dict()
    small = Classifier(effzoo.lookup(name), width_mult=width, depth_mult=depth).eval()
    tgt = small.state_dict()
    state, sel = inherit(src, tgt, allowed=frozenset(src))
    assert not sel.identity and sel.sliced > 0
    assert sum(sel.target_depths) < sum(sel.source_depths)
    small.load_state_dict(state, strict=True)
    full.load_state_dict(_masked_source(src, tgt), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want, got = full(x), small(x)
        assert want.abs().max() > 1e-3  # not a vacuous comparison
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
        # the same holds for the feature maps: P5 is the kept channels of the full P5
        f_full = full.forward_features(x)
        f_small = small.forward_features(x)
        keep = select_indices(f_full.shape[1], f_small.shape[1])
        torch.testing.assert_close(f_small, f_full[:, keep], rtol=1e-4, atol=1e-5)


def test_selection_report_and_record():
    model = effzoo.create("efficientnet_b0", width_mult=0.25, depth_mult=0.5)
    src = _random_classifier("efficientnet_b0").state_dict()
    _, sel = inherit(src, model.state_dict(), allowed=frozenset(src))
    assert isinstance(sel, Selection) and not sel.identity
    assert sel.source_depths == (1, 2, 2, 3, 3, 4, 1)
    assert sel.target_depths == (1, 1, 1, 2, 2, 2, 1)
    assert "weight selection" in str(sel) and "1,1,1,2,2,2,1 of 1,2,2,3,3,4,1" in str(sel)
    # a P4 extractor stops at stride 16: the source's later stages are simply not used
    p4 = effzoo.create("efficientnet_b0", out_indices=(2, 3))
    _, sel = inherit(src, p4.state_dict(), allowed=frozenset(src))
    assert sel.identity and sel.target_depths == sel.source_depths == (1, 2, 2, 3, 3)
