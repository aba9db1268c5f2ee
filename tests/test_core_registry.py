"""The registry: every variant, aliases, lookup errors, the timm helpers we rely on."""

from __future__ import annotations

import subprocess
import sys

import pytest

import effzoo
from effzoo.errors import EffzooError, UnknownModelError

EXPECTED = sorted(
    [f"efficientnet_b{i}" for i in range(9)]
    + ["efficientnet_l2"]
    + [f"efficientnet_lite{i}" for i in range(5)]
    + [f"efficientnet_v2_{s}" for s in ("s", "m", "l", "xl", "b0", "b1", "b2", "b3")]
)


def test_list_models_is_every_variant_sorted():
    assert effzoo.list_models() == EXPECTED
    assert effzoo.list_models("*lite*") == [f"efficientnet_lite{i}" for i in range(5)]
    assert effzoo.list_models("efficientnet-v2-*") == [n for n in EXPECTED if "_v2_" in n]
    assert effzoo.list_models("nothing*") == []


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("efficientnet-b0", "efficientnet_b0"),
        ("efficientnet-b8", "efficientnet_b8"),
        ("efficientnet-l2", "efficientnet_l2"),
        ("EfficientNet-B3", "efficientnet_b3"),
        ("tf_efficientnet_b7", "efficientnet_b7"),
        ("efficientnet-lite4", "efficientnet_lite4"),
        ("tf_efficientnet_lite0", "efficientnet_lite0"),
        ("efficientnet_v2_s", "efficientnet_v2_s"),
        ("efficientnet-v2-xl", "efficientnet_v2_xl"),
        ("tf_efficientnetv2_s", "efficientnet_v2_s"),
        ("efficientnetv2_m", "efficientnet_v2_m"),
        ("tf_efficientnetv2_b3", "efficientnet_v2_b3"),
    ],
)
def test_aliases_resolve(alias, name):
    assert effzoo.lookup(alias).name == name


def test_unknown_name_is_typed_with_close_matches_and_pointer():
    with pytest.raises(UnknownModelError) as exc:
        effzoo.create("efficientnet-b9")
    msg = str(exc.value)
    assert "efficientnet_b8" in msg and "list_models()" in msg
    assert isinstance(exc.value, KeyError) and isinstance(exc.value, EffzooError)
    with pytest.raises(UnknownModelError, match="list_models"):
        effzoo.lookup("resnet50")


def test_spec_rows_are_data():
    spec = effzoo.lookup("efficientnet_b3")
    assert (spec.family, spec.width, spec.depth, spec.resolution) == ("v1", 1.2, 1.4, 300)
    assert effzoo.model_info(spec).strides == (2, 4, 8, 16, 32)  # every level a variant has
    with pytest.raises(AttributeError):
        spec.width = 2.0  # frozen
    v2 = effzoo.lookup("efficientnet_v2_s")
    assert (v2.family, v2.padding, v2.bn_eps, v2.act) == ("v2", "same", 1e-3, "silu")
    lite = effzoo.lookup("efficientnet_lite2")
    assert lite.fix_stem and lite.fix_first_last and lite.act == "relu6"


def test_import_effzoo_does_not_import_ultralytics():
    code = (
        "import sys, effzoo; effzoo.create('efficientnet_b0'); print('ultralytics' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_timm_builder_contract():
    """effzoo leans on timm's semi-private EfficientNet helpers: fail loudly if they move."""
    from timm.models._efficientnet_builder import (
        EfficientNetBuilder,
        decode_arch_def,
        round_channels,
    )
    from timm.models.efficientnet import EfficientNet, EfficientNetFeatures

    # round_channels: multiple of 8, never below 90% of the scaled value (round_limit)
    assert round_channels(16, 0.25, 8) == 8
    assert round_channels(40, 0.25, 8) == 16
    assert round_channels(80, 0.25, 8) == 24
    assert round_channels(112, 1.1, 8) == 120
    assert round_channels(16, 1.1, 8, round_limit=0.0) == 16
    # decode_arch_def: depth rounded up per stage; fix_first_last keeps the ends
    args = decode_arch_def([["ir_r3_k3_s2_e6_c80"], ["ir_r1_k3_s1_e6_c16"]], 1.5)
    assert [len(s) for s in args] == [5, 2]
    arch = [["ir_r2_k3_s2_e6_c8"], ["ir_r3_k3_s2_e6_c8"], ["ir_r1_k3_s1_e6_c8"]]
    args = decode_arch_def(arch, 2.0, fix_first_last=True)
    assert [len(s) for s in args] == [2, 6, 1]
    assert args[0][0]["stride"] == 2 and args[0][0]["out_chs"] == 8
    # the classes keep the attributes and keys effzoo relies on
    for cls in (EfficientNet, EfficientNetFeatures):
        assert "round_chs_fn" in cls.__init__.__code__.co_varnames
        assert "device" in cls.__init__.__code__.co_varnames
    assert hasattr(EfficientNetFeatures, "set_grad_checkpointing")
    from torch import nn

    b = EfficientNetBuilder(
        feature_location="bottleneck", act_layer=nn.ReLU, norm_layer=nn.BatchNorm2d
    )
    stages = b(32, decode_arch_def([["ds_r1_k3_s1_e1_c16"], ["ir_r1_k3_s2_e6_c24"]]))
    assert len(stages) == 2
    assert [f["reduction"] for f in b.features] == [2, 4]
    assert [f["stage"] for f in b.features] == [1, 2]
