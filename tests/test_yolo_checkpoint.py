"""A checkpoint written by effzoo 0.1.0 (tests/data/effzoo-0.1.0-tiny-best.pt: a tiny
YOLO11-style detector with an efficientnet_lite0 x0.25 row, trained one epoch on
Ultralytics 8.4.190) still loads, predicts and exports: the classes it pickles keep
their import paths (docs/architecture.md)."""

from __future__ import annotations

import json
import shutil

import pytest
import yolo_helpers
from yolo_helpers import run_fresh, tiny_dataset

pytest.importorskip("ultralytics")

FIXTURE = yolo_helpers.DATA_DIR / "effzoo-0.1.0-tiny-best.pt"


@pytest.mark.slow
def test_an_effzoo_0_1_checkpoint_loads_predicts_and_exports(tmp_path):
    pytest.importorskip("onnxruntime")
    best = tmp_path / "best.pt"
    shutil.copy(FIXTURE, best)  # export writes next to the checkpoint
    image = next((tiny_dataset().parent / "images" / "val").glob("*.png"))
    out = run_fresh(
        f"""
        import json, sys, torch
        import onnxruntime as ort
        from ultralytics import YOLO                  # note: no `import effzoo`
        model = YOLO({str(best)!r})
        layers = [type(m).__module__ + "." + type(m).__name__ for m in model.model.model[:5]]
        x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            ref = model.model.float().eval()(x)[0]
        res = model.predict({str(image)!r}, imgsz=64, device="cpu", verbose=False)[0]
        onnx_file = model.export(format="onnx", imgsz=64, simplify=False, device="cpu")
        sess = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
        got = torch.from_numpy(sess.run(None, {{sess.get_inputs()[0].name: x.numpy()}})[0])
        print(json.dumps(dict(
            effzoo="effzoo.yolo" in sys.modules, layers=layers, names=res.names,
            boxes=res.boxes.data.shape[-1], shape=list(ref.shape),
            onnx_err=float((got - ref).abs().max()),
        )))
        """
    )
    info = json.loads(out.strip().splitlines()[-1])
    assert info["effzoo"], "unpickling the checkpoint imports effzoo.yolo"
    stages = "effzoo.yolo.modules.BackboneStages"
    assert info["layers"] == ["effzoo.yolo.modules.BackboneStem", *[stages] * 4]
    assert info["names"] == {"0": "circle", "1": "square", "2": "triangle"}
    assert info["boxes"] == 6 and info["shape"] == [1, 7, 84]
    assert info["onnx_err"] < 1e-3


def test_the_weights_record_pickles_by_its_stable_path():
    """A pretrained backbone pickles its record as ``effzoo.weights.WeightsRecord`` (the path
    effzoo 0.1 wrote), so checkpoints do not depend on which file defines it."""
    import pickle
    import pickletools

    import effzoo

    record = effzoo.create("efficientnet_lite0", pretrained=True).weights
    data = pickle.dumps(record)
    names = [arg for op, arg, _ in pickletools.genops(data) if isinstance(arg, str)]
    assert "effzoo.weights" in names and "WeightsRecord" in names
    assert "effzoo.weights.load" not in names
    assert pickle.loads(data) == record
