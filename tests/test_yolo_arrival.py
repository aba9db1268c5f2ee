"""The recipe's users arrive without friction: a yaml copied from a web page, the extras
they install, an ONNX export with Ultralytics' defaults, offline."""

from __future__ import annotations

import tomllib
import warnings
from pathlib import Path

import pytest
import yolo_helpers

pytest.importorskip("ultralytics")
from ultralytics import YOLO

import effzoo.yolo
from effzoo.errors import InvalidArgumentError

RECIPE = yolo_helpers.recipe_path("yolo11-EfficientNetV1.yaml")


@pytest.fixture(autouse=True)
def _hub_offline():
    with yolo_helpers.hub_offline(), warnings.catch_warnings():
        warnings.simplefilter("ignore", effzoo.yolo.PretrainedUnavailableWarning)
        yield


def _params(model: YOLO) -> int:
    return sum(p.numel() for p in model.model.parameters())


def test_unindented_scales_are_repaired_with_a_warning(tmp_path):
    """The recipe's file as it arrives when copied from its web page."""
    text = RECIPE.read_text(encoding="utf-8")
    lines = text.splitlines()
    copied = "\n".join(
        ln.lstrip() if ln.lstrip()[:2] in ("n:", "s:", "m:", "l:", "x:") else ln for ln in lines
    )
    assert copied != text
    path = tmp_path / "yolo11-EfficientNetV1.yaml"
    path.write_text(copied, encoding="utf-8")
    with pytest.warns(effzoo.yolo.YamlRepairedWarning, match="lost its indentation") as caught:
        repaired = YOLO(str(path))
    assert str(path) in str(caught[0].message)
    assert _params(repaired) == _params(YOLO(str(RECIPE)))  # scale n, as the recipe means
    assert _params(repaired) < 2_500_000  # not the 25M full-width head


def test_a_full_width_comma_names_the_row_and_the_fix(tmp_path):
    text = RECIPE.read_text(encoding="utf-8").replace("0.25,0.5]]", "0.25\uff0c0.5]]")
    path = tmp_path / "copied.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidArgumentError) as e:
        YOLO(str(path))
    msg = str(e.value)
    assert str(path) in msg and "backbone row 0" in msg
    assert "U+FF0C" in msg and "0.25, 0.5" in msg


def test_extras_match_what_users_do():
    meta = tomllib.loads((yolo_helpers.ROOT / "pyproject.toml").read_text())
    extras = meta["project"]["optional-dependencies"]
    names = {
        e: {r.split(">")[0].split("=")[0].split("[")[0] for r in rs} for e, rs in extras.items()
    }
    assert {"ultralytics", "onnx", "onnxslim", "onnxruntime", "cloudpickle"} <= names["yolo"]
    assert "scikit-image" not in names["yolo"]  # only the demo needs it
    assert "scikit-image" in names["demo"] and "effzoo" in names["demo"]
    # `pip install "effzoo[deploy]"`: the runtimes the deploy tests verify, and the tests
    # run with exactly those (docs/deploy.md)
    assert {"openvino", "ncnn", "pnnx", "MNN", "effzoo"} <= names["deploy"]
    assert "effzoo[deploy]" in extras["test"]
    dev = (yolo_helpers.ROOT / "dev").read_text()
    assert ".[yolo,demo,test]" in dev  # ./dev demo has what the demo needs


@pytest.mark.slow
def test_onnx_export_with_ultralytics_defaults_offline(tmp_path, monkeypatch):
    """simplify=True (the default) needs onnxslim: the yolo extra brings it."""
    ort = pytest.importorskip("onnxruntime")
    monkeypatch.chdir(tmp_path)  # the export lands next to the model name
    model = YOLO("yolo11n-efflite0.yaml")
    out = Path(model.export(format="onnx", imgsz=64, device="cpu"))
    assert out.is_file()
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape[1] == 3
