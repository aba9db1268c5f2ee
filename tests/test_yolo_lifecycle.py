"""The Ultralytics life cycle with effzoo rows, on the CPU at 64 px:

the forked recipe's two files verbatim (build, forward, train, validate, reload in a
fresh process, predict), resume in a fresh process, freeze, ONNX Runtime against
PyTorch, the DDP worker's model from the pickled state, and ``effzoo yolo``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yolo_helpers
from yolo_helpers import RECIPES, TRAIN, recipe_path, run_fresh, tiny_dataset

pytest.importorskip("ultralytics")
from ultralytics import YOLO

import effzoo.yolo  # noqa: F401
from effzoo.yolo.modules import BackboneStem


@pytest.fixture(autouse=True)
def _hub_offline():
    with yolo_helpers.hub_offline():
        yield


pytestmark = pytest.mark.slow

#: the recipe's files exactly as its users have them
RECIPE_SHA256 = {
    "yolo11-EfficientNetV1.yaml": (
        "5761ab94de79a278dd8727cf0c04fac6303d0166f1f2233e54d2d6315f323b4d"
    ),
    "yolo11-EfficientNetV2.yaml": (
        "ba2710548a63cca9c648be40afea320df7787936f42bd987112bf6a11ba60c7a"
    ),
}
RECIPE_ROWS = {
    "yolo11-EfficientNetV1.yaml": "- [-1, 1, efficient, [efficientnet-b0, 0.25,0.5]] # 0-4 P1/2",
    "yolo11-EfficientNetV2.yaml": (
        "- [-1, 1, efficientnet_v2, [efficientnet_v2_s, 0.25,0.5]] # 0-4 P1/2"
    ),
}


def _input() -> torch.Tensor:
    return torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def _backbone_params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        f"{i}.{k}": v.detach().clone()
        for i, layer in enumerate(model.model[:5])
        for k, v in layer.named_parameters()
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Train each recipe file for one epoch (V2 with its backbone frozen)."""
    data = tiny_dataset()
    project = tmp_path_factory.mktemp("runs")
    out: dict[str, Path] = {}
    with yolo_helpers.hub_offline():
        return _train_recipes(data, project, out)


def _train_recipes(data: Path, project: Path, out: dict[str, Path]) -> dict[str, Path]:
    for name in RECIPES:
        model = YOLO(str(recipe_path(name)))
        assert isinstance(model.model.model[0], BackboneStem)
        with torch.no_grad():
            assert model.model.eval()(_input())[0].shape[:2] == (1, 84)  # nc 80 before training
        freeze = 5 if name.endswith("V2.yaml") else None
        start: dict[str, dict[str, torch.Tensor]] = {}

        def keep_start(trainer, start=start):
            start["p"] = _backbone_params(trainer.model)

        model.add_callback("on_pretrain_routine_end", keep_start)
        model.train(data=str(data), project=str(project), name=name[:-5], freeze=freeze, **TRAIN)
        run_dir = Path(model.trainer.save_dir)
        out[name] = run_dir
        torch.save(start["p"], run_dir / "start.pt")
        torch.save(_backbone_params(model.trainer.model), run_dir / "end.pt")
    return out


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_file_is_verbatim(name):
    raw = recipe_path(name).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == RECIPE_SHA256[name]
    assert RECIPE_ROWS[name] in raw.decode("utf-8")


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_trains_validates_and_reloads_in_a_fresh_process(runs, name, tmp_path):
    run_dir = runs[name]
    best = run_dir / "weights" / "best.pt"
    assert best.is_file() and (run_dir / "results.csv").is_file()
    model = YOLO(str(best))
    metrics = model.val(data=str(tiny_dataset()), imgsz=64, batch=4, plots=False, device="cpu")
    assert 0.0 <= metrics.box.map <= 1.0
    with torch.no_grad():  # a fresh load: val may have fused `model` in place (8.3.x does)
        ref = YOLO(str(best)).model.float().eval()(_input())[0]
    torch.save({"x": _input(), "y": ref}, tmp_path / "ref.pt")
    image = next((tiny_dataset().parent / "images" / "val").glob("*.png"))
    out = run_fresh(
        f"""
        import json, sys, torch
        from ultralytics import YOLO                      # note: no `import effzoo`
        model = YOLO({str(best)!r})
        ref = torch.load({str(tmp_path / "ref.pt")!r})
        with torch.no_grad():
            y = model.model.float().eval()(ref["x"])[0]
        torch.testing.assert_close(y, ref["y"])
        res = model.predict({str(image)!r}, imgsz=64, device="cpu", verbose=False)[0]
        print(json.dumps({{"effzoo": "effzoo.yolo" in sys.modules,
                          "layer0": type(model.model.model[0]).__name__,
                          "boxes": res.boxes.xyxy.shape[-1], "names": res.names}}))
        """
    )
    info = json.loads(out.strip().splitlines()[-1])
    assert info == {
        "effzoo": True,
        "layer0": "BackboneStem",
        "boxes": 4,
        "names": {"0": "circle", "1": "square", "2": "triangle"},
    }


def test_freeze_keeps_the_backbone_and_trains_the_head(runs):
    run_dir = runs["yolo11-EfficientNetV2.yaml"]  # trained with freeze=5
    start, end = torch.load(run_dir / "start.pt"), torch.load(run_dir / "end.pt")
    assert start.keys() == end.keys() and start
    for k in start:
        torch.testing.assert_close(end[k], start[k], rtol=0, atol=0, msg=k)
    trained = run_dir = runs["yolo11-EfficientNetV1.yaml"]  # not frozen: the backbone moved
    start, end = torch.load(trained / "start.pt"), torch.load(trained / "end.pt")
    assert any(not torch.equal(start[k], end[k]) for k in start)


def test_resume_in_a_fresh_process(tmp_path):
    class Interrupt(Exception):
        pass

    def stop_after_first_save(trainer):
        raise Interrupt

    model = YOLO(str(recipe_path("yolo11-EfficientNetV1.yaml")))
    model.add_callback("on_model_save", stop_after_first_save)
    args = {**TRAIN, "epochs": 2}
    with pytest.raises(Interrupt):
        model.train(data=str(tiny_dataset()), project=str(tmp_path), name="r", **args)
    last = tmp_path / "r" / "weights" / "last.pt"
    assert torch.load(last, weights_only=False)["epoch"] == 0
    run_fresh(
        f"""
        from ultralytics import YOLO
        YOLO({str(last)!r}).train(resume=True)
        """
    )
    rows = (tmp_path / "r" / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2  # header + both epochs


def test_onnx_export_matches_pytorch(runs, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    best = runs["yolo11-EfficientNetV1.yaml"] / "weights" / "best.pt"
    model = YOLO(str(best))
    onnx_file = model.export(format="onnx", imgsz=64, simplify=False, device="cpu")
    x = _input()
    with torch.no_grad():
        ref = YOLO(str(best)).model.float().eval()(x)[0].numpy()
    sess = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert got.shape == ref.shape
    torch.testing.assert_close(torch.from_numpy(got), torch.from_numpy(ref), rtol=1e-3, atol=1e-3)


def test_ddp_worker_rebuilds_the_trainer_model_from_the_pickled_state(tmp_path):
    pytest.importorskip("cloudpickle")
    from ultralytics.models.yolo.detect import DetectionTrainer
    from ultralytics.utils.dist import generate_ddp_file

    overrides = dict(
        model=str(recipe_path("yolo11-EfficientNetV2.yaml")),
        data=str(tiny_dataset()),
        project=str(tmp_path),
        name="ddp",
        **TRAIN,
    )
    trainer = DetectionTrainer(overrides=overrides)
    trainer.model = trainer.get_model(cfg=trainer.args.model, weights=None)
    file = Path(generate_ddp_file(trainer))
    try:
        script = file.read_text()
        assert "import effzoo.yolo" in script
        train = [ln for ln in script.splitlines() if "trainer.train()" in ln]
        assert len(train) == 1
        check = """
    import json, sys, torch
    m = trainer.model
    if not isinstance(m, torch.nn.Module):  # older Ultralytics: the worker builds it
        trainer.setup_model()
        m = trainer.model
    y = m.eval()(torch.rand(1, 3, 64, 64))[0]
    from ultralytics.nn import tasks
    print(json.dumps({'effzoo': 'effzoo.yolo' in sys.modules,
        'registered': hasattr(tasks.parse_model, '__effzoo__'),
        'layers': [type(x).__name__ for x in m.model[:5]], 'out': list(y.shape)}))
"""
        out = run_fresh(script.replace(train[0], check))
    finally:
        file.unlink(missing_ok=True)
        file.with_suffix(".pt").unlink(missing_ok=True)
    info = json.loads(out.strip().splitlines()[-1])
    layers = ["BackboneStem"] + ["BackboneStages"] * 4
    assert info == {"effzoo": True, "registered": True, "layers": layers, "out": [1, 7, 84]}


def test_effzoo_yolo_cli_resolves_shipped_yamls(tmp_path):
    image = next((tiny_dataset().parent / "images" / "val").glob("*.png"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "effzoo",
            "yolo",
            "predict",
            "model=yolo11n-effb0.yaml",
            f"source={image}",
            "imgsz=64",
            "device=cpu",
            f"project={tmp_path}",
            "name=p",
            "save=True",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **yolo_helpers.HUB_OFFLINE, "PYTHONPATH": yolo_helpers.pythonpath()},
        cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert list((tmp_path / "p").glob("*.jpg")) or list((tmp_path / "p").glob("*.png"))
