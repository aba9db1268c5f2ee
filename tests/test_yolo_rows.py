"""effzoo rows in Ultralytics yamls: parsing, channels, layers, errors (no training)."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import yaml
import yolo_helpers

import effzoo
from effzoo.errors import InvalidArgumentError, UnknownModelError

ultralytics = pytest.importorskip("ultralytics")
from ultralytics.nn.tasks import DetectionModel, yaml_model_load  # noqa: E402

import effzoo.yolo  # noqa: E402
from effzoo.yolo import rows  # noqa: E402
from effzoo.yolo.modules import BackboneStages, BackboneStem, split_backbone  # noqa: E402
from effzoo.yolo.templates import MODELS, cfg_text, model_yaml  # noqa: E402


@pytest.fixture(autouse=True)
def _hub_offline():
    with yolo_helpers.hub_offline():
        yield


def _model_dict(variant: str, **kw) -> dict:
    d = yaml.safe_load(cfg_text("yolo11-effb0.yaml"))
    d["backbone"][0][3] = [variant, {"pretrained": False, **kw}]
    d["yaml_file"] = "test.yaml"
    return d


def _build(d: dict) -> DetectionModel:
    return DetectionModel(copy.deepcopy(d), nc=3, verbose=False)


def test_registration_is_idempotent_and_in_place():
    assert effzoo.yolo.registered()
    from ultralytics.nn import tasks

    first = tasks.parse_model
    effzoo.yolo.register()
    assert tasks.parse_model is first


@pytest.mark.parametrize(
    "variant", ["efficientnet_b0", "efficientnet_lite0", "efficientnet_v2_b0"]
)  # the canonical row for each family (v1, lite, v2)
def test_canonical_row_builds_with_registry_channels(variant):
    model = _build(_model_dict(variant))
    ref = effzoo.create(variant, out_indices=(0, 1, 2, 3, 4))
    layers = list(model.model)[:5]
    assert isinstance(layers[0], BackboneStem)
    assert all(isinstance(m, BackboneStages) for m in layers[1:])
    model.eval()
    x = torch.rand(1, 3, 64, 64)
    feats, y = [], x
    for layer in layers:
        y = layer(y)
        feats.append(y)
    assert [f.shape[1] for f in feats] == ref.out_channels
    assert [64 // f.shape[-1] for f in feats] == [2, 4, 8, 16, 32]
    assert model.model[5].cv1.conv.in_channels == ref.out_channels[-1]  # SPPF reads P5
    out = model(x)
    assert out[0].shape[:2] == (1, 4 + 3)


def test_split_layers_equal_the_backbone_on_normalized_input():
    bb = effzoo.create("efficientnet_b0", out_indices=(1, 2, 4), width_mult=0.5).eval()
    layers = split_backbone(copy.deepcopy(bb))
    mean = torch.tensor(bb.pretrained_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(bb.pretrained_cfg["std"]).view(1, 3, 1, 1)
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        ref = bb((x - mean) / std)
        y, got = x, []
        for layer in layers:
            y = layer.eval()(y)
            got.append(y)
    assert [layer.level for layer in layers] == [2, 3, 5]
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b)


def test_levels_option_occupies_one_index_per_level():
    d = _model_dict("efficientnet_b0", levels=[3, 4, 5])
    # re-index the head: P3 is layer 0, P4 layer 1, P5 layer 2 (SPPF at 3, C2PSA at 4)
    shift = {3: 1, 2: 0, 9: 7, 6: 4, 12: 10, 15: 13, 18: 16}
    for row in d["head"]:
        f = row[0]
        row[0] = [shift.get(i, i) if i != -1 else -1 for i in f] if isinstance(f, list) else f
    model = _build(d)
    assert [m.level for m in list(model.model)[:3]] == [3, 4, 5]
    assert model.eval()(torch.rand(1, 3, 64, 64))[0].shape[1] == 7


def test_scale_keyword_follows_the_yaml_scale():
    d = _model_dict("efficientnet_b0", width="scale", depth="scale")
    d["scale"] = "s"  # scales s: [0.50, 0.50, 1024]
    spec = effzoo.yolo.find_row(d)
    assert (spec.width, spec.depth) == (0.5, 0.5)


def test_normalization_uses_the_weights_statistics():
    model = _build(_model_dict("efficientnet_lite0"))  # TF-ported: mean = std = 0.5
    stem = model.model[0]
    assert stem.mean.flatten().tolist() == [0.5, 0.5, 0.5]
    assert stem.std.flatten().tolist() == [0.5, 0.5, 0.5]
    model = _build(_model_dict("efficientnet_b0"))
    torch.testing.assert_close(model.model[0].mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))


def test_pretrained_default_loads_the_offline_lite0_weights():
    d = _model_dict("efficientnet_lite0")
    d["backbone"][0][3] = ["efficientnet_lite0"]  # pretrained by default
    model = _build(d)
    stem = model.model[0]
    ref = effzoo.create("efficientnet_lite0", pretrained=True)
    assert stem.backbone.weights is not None
    torch.testing.assert_close(stem.backbone.conv_stem.weight, ref.conv_stem.weight)
    torch.testing.assert_close(
        model.model[4].stages[-1][0].conv_pw.weight, ref.blocks[6][0].conv_pw.weight
    )


def test_unavailable_weights_warn_once_and_start_random(monkeypatch):
    monkeypatch.setattr(rows, "_WARNED", {})
    d = _model_dict("efficientnet_b0")
    d["backbone"][0][3] = ["efficientnet_b0"]  # pretrained by default; offline, nothing cached
    with pytest.warns(rows.PretrainedUnavailableWarning, match="random init") as caught:
        model = _build(d)
    assert model.model[0].backbone.weights is None
    assert any("backbone row 0" in str(w.message) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("error", rows.PretrainedUnavailableWarning)
        _build(d)  # the second build stays quiet


@pytest.mark.parametrize(
    "args, error, text",
    [
        (["efficientnet-b9", 0.25, 0.5], UnknownModelError, "Did you mean"),
        (["efficientnet-b0", -0.25, 0.5], InvalidArgumentError, "width must be a positive"),
        (["efficientnet-b0", 0.25, "deep"], InvalidArgumentError, "depth must be a positive"),
        (["efficientnet_v2_s", {"levels": [3, 6]}], InvalidArgumentError, "P-levels 1..5"),
        (["efficientnet_v2_s", {"levels": [4, 3]}], InvalidArgumentError, "ascending"),
        (["efficientnet_v2_s", {"widht": 1.0}], InvalidArgumentError, "unknown option"),
        (["efficientnet_v2_s", 1, 1, True, [1], 7], InvalidArgumentError, "too many args"),
        ([3], InvalidArgumentError, "variant name"),
    ],
)
def test_bad_rows_fail_at_build_naming_the_row(args, error, text):
    d = yolo_helpers.load_yaml(yolo_helpers.recipe_path("yolo11-EfficientNetV1.yaml"))
    d["backbone"][0][3] = args
    d["yaml_file"] = "my-model.yaml"
    with pytest.raises(error, match=text) as info:
        _build(d)
    assert "my-model.yaml, backbone row 0" in str(info.value)
    assert "efficient" in str(info.value)


@pytest.mark.parametrize(
    "edit, text",
    [
        (lambda d: d["backbone"][0].__setitem__(1, 2), "cannot repeat"),
        (lambda d: d["backbone"][0].__setitem__(0, 3), "'from' must be -1"),
        (lambda d: d["head"].insert(0, [-1, 1, "efficient", ["efficientnet-b0"]]), "first row"),
    ],
)
def test_misplaced_rows_fail_at_build(edit, text):
    d = yolo_helpers.load_yaml(yolo_helpers.recipe_path("yolo11-EfficientNetV1.yaml"))
    d["yaml_file"] = "x.yaml"
    edit(d)
    with pytest.raises(InvalidArgumentError, match=text):
        _build(d)


def test_shipped_yaml_resolves_by_name_with_its_scale():
    d = yaml_model_load("yolo11s-effv2s.yaml")
    assert d["scale"] == "s"
    assert d["backbone"][0][2:] == ["EfficientNet", ["efficientnet_v2_s"]]


def test_model_names_are_what_effzoo_yaml_writes():
    for name, model in MODELS.items():
        if model.row[2] != "EfficientNet":  # the recipe's rows: tests/test_yolo_templates.py
            continue
        if not yolo_helpers.ships_family(model.family):  # older Ultralytics (compat.sh)
            continue
        written = yaml.safe_load(
            model_yaml(model.row[3][0], task=model.task, family=model.family, level=model.variant)
        )
        assert yaml.safe_load(cfg_text(name)) == written, name


def test_effzoo_yaml_cli_writes_a_buildable_file(tmp_path, capsys):
    from effzoo.cli import main

    out = tmp_path / "m.yaml"
    assert main(["yaml", "efficientnet-b1", "--task", "segment", "--scratch", "-o", str(out)]) == 0
    d = yolo_helpers.load_yaml(out)
    assert d["backbone"][0] == [-1, 1, "EfficientNet", ["efficientnet_b1", {"pretrained": False}]]
    assert d["head"][-1][2] == "Segment"
    assert main(["yaml", "efficientnet-b99"]) == 1
    assert "Did you mean" in capsys.readouterr().err


def test_fuse_folds_the_backbone():
    model = _build(_model_dict("efficientnet_b0")).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)[0]
        model.fuse(verbose=False)
        after = model(x)[0]
    backbone = [m for layer in list(model.model)[:5] for m in layer.modules()]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in backbone)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)


def test_docs_table_lists_every_shipped_file_with_registry_channels():
    from effzoo.backbone import Backbone

    doc = (yolo_helpers.ROOT / "docs" / "yolo.md").read_text()
    table = doc[doc.index("<!-- begin: model name table") : doc.index("<!-- end: model name table")]
    rows = {line.split("`")[1]: line for line in table.splitlines() if line.startswith("| `")}
    assert sorted(rows) == sorted(MODELS)
    for name, line in rows.items():
        args = MODELS[name].row[3]
        width, depth = (args[1], args[2]) if len(args) == 3 else (1.0, 1.0)
        spec = effzoo.lookup(args[0])
        levels = (1, 2, 3, 4) if MODELS[name].variant == "p2" else (2, 3, 4)  # P2 or P3 on
        bb = Backbone(spec, width_mult=width, depth_mult=depth, out_indices=levels, device="meta")
        cell = line.split("|")[7].strip()  # "P3 / P4 / P5: 40 / 112 / 320"
        assert cell.split(": ")[1] == " / ".join(map(str, bb.out_channels)), name
        assert cell.split(": ")[0] == " / ".join(f"P{i + 1}" for i in levels), name


@pytest.mark.parametrize(
    ("module", "meant"),
    [
        ("Efficientnet", "EfficientNet"),
        ("efficientnet", "EfficientNet"),
        ("EfficientNetV2", "EfficientNet"),
        ("EfficentNet", "EfficientNet"),
        ("Efficient\u200bNet", "EfficientNet"),
        ("\ufeffEfficientNet", "EfficientNet"),
        ("Efficient", "efficient"),
        ("EfficientNet_V2", "efficientnet_v2"),
    ],
)
def test_a_misspelt_module_name_gets_the_right_spelling(module, meant):
    """Stock Ultralytics says ``KeyError: 'Efficientnet'``; effzoo names the module meant."""
    d = _model_dict("efficientnet_b0")
    d["backbone"][0][2] = module
    with pytest.raises(InvalidArgumentError) as e:
        _build(d)
    msg = str(e.value)
    assert f"did you mean {meant!r}" in msg and "backbone row 0" in msg, msg
    assert ("invisible characters" in msg) == (
        module.strip("\ufeff") != module or "\u200b" in module
    )


def test_other_modules_are_left_to_ultralytics():
    for module in ("Conv", "C3k2", "nn.Upsample", "SPPF", "Concat", "EfficientNet", "efficient"):
        assert rows.meant_module(module) is None, module


@pytest.mark.parametrize("fields", [3, 5])
def test_an_effzoo_row_with_other_than_four_fields_is_an_effzoo_error(fields):
    d = _model_dict("efficientnet_b0")
    d["backbone"][0] = [-1, 1, "EfficientNet", ["efficientnet_b0"], "extra"][:fields]
    with pytest.raises(InvalidArgumentError, match=f"has four fields.*this one has {fields}"):
        _build(d)


def test_class_count_has_one_bound_in_the_row_checks_and_effzoo_yaml(capsys):
    from effzoo.cli import main

    assert main(["yaml", "efficientnet_b0", "--nc", "100000000000000000000"]) == 1
    assert "--nc 100000000000000000000 is too large: at most 100000" in capsys.readouterr().err
    d = _model_dict("efficientnet_b0")
    d["nc"] = 10**20
    with pytest.raises(InvalidArgumentError, match=r"nc \d+ is too large: at most 100000"):
        DetectionModel(copy.deepcopy(d), verbose=False)
    d["nc"] = 100_000
    rows.find_row(d)  # at the bound: accepted


def test_a_row_is_checked_once_and_built_without_looking_up_again(monkeypatch):
    """parse_row turns the row into one typed request; the build consumes it as it is."""
    from effzoo import _checks, factory

    row = [-1, 1, "EfficientNet", ["efficientnet-lite0", {"pretrained": False, "width": 0.5}]]
    spec = rows.parse_row(row, where="x.yaml, backbone row 0")
    assert isinstance(spec.request, factory.BackboneRequest)
    assert spec.request.spec is effzoo.lookup("efficientnet_lite0")  # the spec, not a name
    assert (spec.width, spec.depth, spec.pretrained) == (0.5, 1.0, False)

    def again(*args, **kwargs):
        raise AssertionError("the build looked up or checked the row again")

    monkeypatch.setattr(factory, "lookup", again)
    for check in ("multiplier", "levels", "pretrained", "drop_path_rate", "boolean"):
        monkeypatch.setattr(_checks, check, again)
    layers = rows.build_layers(spec, in_chans=1)
    backbone = layers[0].backbone
    assert (backbone.spec.name, backbone.width_mult, backbone.conv_stem.in_channels) == (
        "efficientnet_lite0",
        0.5,
        1,
    )
    assert layers[0].provenance.start == "random"


def test_create_yaml_rows_and_effzoo_yaml_give_the_same_message_for_the_same_mistake():
    """One set of checks: the same bad width says the same thing from each entry point."""
    with pytest.raises(InvalidArgumentError) as created:
        effzoo.create("efficientnet_b0", width_mult=-1)
    with pytest.raises(InvalidArgumentError) as row:
        rows.parse_row([-1, 1, "EfficientNet", ["efficientnet_b0", -1]], where="x.yaml")
    with pytest.raises(InvalidArgumentError) as written:
        model_yaml("efficientnet_b0", width=-1)
    tail = "must be a positive number, got -1; 1.0 keeps the variant's own size"
    assert str(created.value) == f"width_mult {tail}"
    assert str(row.value) == f"x.yaml: width {tail}"
    assert str(written.value) == f"width {tail}"
