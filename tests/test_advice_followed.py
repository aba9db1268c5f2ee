"""Every fix a message prints works when followed literally (issue 29 item 5): a model
wider or deeper than its ImageNet weights (`effzoo yaml --width 2`, ``create(width_mult=2,
pretrained=True)``), and the backbone of a YOLO checkpoint passed as ``pretrained=``."""

from __future__ import annotations

import pytest
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

    import effzoo.yolo  # noqa: F401

    with yolo_helpers.hub_offline():
        model = YOLO(str(out))
    provenance = model.model.model[0].provenance
    assert provenance.start == "random" and "pretrained: false" in provenance.reason

    narrow = tmp_path / "yolo11n-narrow.yaml"
    assert cli(["yaml", "efficientnet_lite4", "--width", "0.5", "-o", str(narrow)]) == 0
    assert "pretrained: false" not in capsys.readouterr().err
    assert yaml.safe_load(narrow.read_text())["backbone"][0][3][1].get("pretrained") is not False
