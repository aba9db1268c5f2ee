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


# -- format 2: effzoo's data, rebuilt through timm (effzoo/yolo/checkpoint.py) --------

FIXTURE_F3A = yolo_helpers.DATA_DIR / "effzoo-0.1-f3a39a1-v2b0-best.pt"
OUTPUTS_F3A = yolo_helpers.DATA_DIR / "effzoo-0.1-f3a39a1-v2b0-outputs.pt"

#: every row kind, tiny: (variant, options); the head reads the last three levels
ROW_KINDS = {
    "v1": ("efficientnet_b0", {"width": 0.25, "depth": 0.25, "levels": [3, 4, 5]}),
    "v1-tf": ("efficientnet_b6", {"width": 0.125, "depth": 0.2, "levels": [3, 4, 5]}),
    "lite": ("efficientnet_lite0", {"width": 0.25, "depth": 0.5, "levels": [3, 4, 5]}),
    "lite-unscaled": ("efficientnet_lite0", {"levels": [3, 4, 5]}),
    "v2": ("efficientnet_v2_b0", {"width": 0.25, "depth": 0.34, "levels": [3, 4, 5]}),
    # every level, one input channel, stochastic depth, some parameters frozen
    "v2-s-all": ("efficientnet_v2_s", {"width": 0.125, "depth": 0.2, "drop_path_rate": 0.2}),
}


def _model_dict(variant: str, options: dict, ch: int = 3) -> dict:
    levels = options.get("levels", [1, 2, 3, 4, 5])
    n = len(levels)
    return {
        "nc": 3,
        "channels": ch,
        "backbone": [[-1, 1, "EfficientNet", [variant, {**options, "pretrained": False}]]],
        "head": [[[n - 3, n - 2, n - 1], 1, "Detect", ["nc"]]],
    }


def _tiny_yolo(kind: str):
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    import effzoo.yolo  # noqa: F401

    variant, options = ROW_KINDS[kind]
    ch = 1 if kind == "v2-s-all" else 3
    yolo = YOLO("yolo11n.yaml", verbose=False)  # a YOLO object; its model is replaced
    yolo.model = DetectionModel(_model_dict(variant, options, ch), ch=ch, verbose=False)
    yolo.ckpt = {}
    if kind == "v2-s-all":
        for p in yolo.model.model[1].parameters():  # as `freeze=2` leaves them
            p.requires_grad_(False)
    return yolo, ch


def _pickled_globals(path) -> set[str]:
    import pickletools
    import zipfile

    with zipfile.ZipFile(path) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    ops = list(pickletools.genops(data))
    found = {arg.replace(" ", ".") for op, arg, _ in ops if op.name == "GLOBAL"}
    found |= {
        f"{ops[i - 2][1]}.{ops[i - 1][1]}"
        for i, (op, _, _) in enumerate(ops)
        if op.name == "STACK_GLOBAL"
    }
    return found


def _state(model) -> dict:
    """What must survive a save: per effzoo layer its settings, modes and frozen tensors."""
    from effzoo.yolo import BackboneStages, BackboneStem

    out = {}
    for i, layer in enumerate(model.model):
        if isinstance(layer, (BackboneStem, BackboneStages)):
            out[i] = dict(
                type=type(layer).__name__,
                attrs=(layer.i, layer.f, layer.type, layer.np, layer.level),
                provenance=getattr(layer, "provenance", None),
                frozen=[n for n, p in layer.named_parameters() if not p.requires_grad],
                modes=[m.training for m in layer.modules()],
                drop=[getattr(m, "drop_prob", None) for m in layer.modules()],
                repr=repr(layer),
                keys=list(layer.state_dict()),
            )
    return out


@pytest.mark.parametrize("fused", [False, True], ids=["unfused", "fused"])
@pytest.mark.parametrize("kind", list(ROW_KINDS))
def test_a_checkpoint_holds_no_timm_class_and_reloads_equal(kind, fused, tmp_path):
    """Ultralytics' own save (float16, contiguous) and load: no ``timm.`` global in the
    pickle, and the reloaded model computes what the saved one did, at float16."""
    import copy

    import torch
    from ultralytics import YOLO

    yolo, ch = _tiny_yolo(kind)
    if fused:
        yolo.model.eval().fuse(verbose=False)
    before = _state(yolo.model)
    ref_model = copy.deepcopy(yolo.model).half().float().eval()
    x = torch.rand(2, ch, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = ref_model(x)[0]
    path = tmp_path / "saved.pt"
    yolo.save(path)
    names = _pickled_globals(path)
    assert not [n for n in names if n.startswith("timm")], names
    assert "effzoo.yolo.modules.rebuild" in names
    assert _state(torch.load(path, weights_only=False)["model"]) == before  # modes too
    loaded = YOLO(str(path))  # Ultralytics' loader (it puts the model in eval mode)
    with torch.no_grad():
        got = loaded.model.float().eval()(x)[0]
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)  # memory formats differ


def _fixture_outputs(path):
    import torch
    from ultralytics import YOLO

    yolo = YOLO(str(path))
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        raw = yolo.model.float().eval()(x)[0]
    image = (x[0].permute(1, 2, 0).numpy() * 255).astype("uint8")[..., ::-1].copy()
    res = yolo.predict(image, imgsz=64, conf=0.0, max_det=5, device="cpu", verbose=False)[0]
    return yolo, raw, res.boxes.data.float()


def test_a_checkpoint_of_today_s_0_1_loads_and_predicts_the_same():
    """tests/data/effzoo-0.1-f3a39a1-v2b0-best.pt (format 1, timm's classes pickled,
    made at f3a39a1 by scripts/make_checkpoint_fixture.py) predicts what it did then."""
    import torch

    want = torch.load(OUTPUTS_F3A, weights_only=True)
    _, raw, boxes = _fixture_outputs(FIXTURE_F3A)
    torch.testing.assert_close(raw, want["raw"], rtol=0, atol=1e-4)
    torch.testing.assert_close(boxes, want["boxes"], rtol=0, atol=1e-4)


@pytest.mark.parametrize("fixture", [FIXTURE_F3A, FIXTURE], ids=["f3a39a1", "0.1.0"])
def test_an_old_checkpoint_saved_again_holds_effzoo_data(fixture, tmp_path):
    """A format-1 checkpoint loaded and saved again by this effzoo (the migration:
    ``YOLO(old).save(new)``) holds no timm class (the stages layers, whose build 0.1 did
    not record, take their stem's) and predicts the same."""
    import torch
    from ultralytics import YOLO

    _, want, _ = _fixture_outputs(fixture)
    yolo = YOLO(str(fixture))
    again = tmp_path / "again.pt"
    yolo.save(again)
    names = _pickled_globals(again)
    assert "effzoo.yolo.modules.rebuild" in names
    assert not [n for n in names if n.startswith("timm")], names
    _, raw, _ = _fixture_outputs(again)
    torch.testing.assert_close(raw, want, rtol=0, atol=1e-5)


def _checkpoint_and_outputs(tmp_path, kind: str = "v2"):
    import copy

    import torch

    yolo, ch = _tiny_yolo(kind)
    path = tmp_path / "best.pt"
    yolo.save(path)
    x = torch.rand(1, ch, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = copy.deepcopy(yolo.model).half().float().eval()(x)[0]
    torch.save({"x": x, "ref": ref}, tmp_path / "ref.pt")
    return path


#: after effzoo is imported, timm's private and layer modules cannot be imported by name,
#: as after a timm release that renamed them (effzoo's own references were taken before,
#: and timm's: its code imports them by their new names after a rename)
REFUSE_TIMM = """
import importlib.abc, sys
import effzoo, effzoo.yolo.modules
effzoo.create("efficientnet_v2_b0", width_mult=0.25, depth_mult=0.34)
refused = sorted(n for n in sys.modules if n.startswith(("timm.models._", "timm.layers.")))
assert "timm.models._efficientnet_blocks" in refused and "timm.layers.norm_act" in refused
class Renamed(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in refused:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Renamed())
for name in refused:
    del sys.modules[name]
"""


def test_a_checkpoint_loads_after_timm_renames_its_private_modules(tmp_path):
    """The upgrade that would break every checkpoint, done: timm's private modules gone by
    name. A checkpoint of this effzoo loads and predicts the same (through Ultralytics'
    own loader); a format-1 checkpoint, the control, fails as it would."""
    path = _checkpoint_and_outputs(tmp_path)
    out = run_fresh(
        REFUSE_TIMM
        + f"""
import json, torch
from ultralytics import YOLO
saved = torch.load({str(tmp_path / "ref.pt")!r}, weights_only=True)
yolo = YOLO({str(path)!r})
with torch.no_grad():
    got = yolo.model.float().eval()(saved["x"])[0]
try:
    torch.load({str(FIXTURE_F3A)!r}, weights_only=False)
    control = "loaded"
except ModuleNotFoundError as e:
    control = e.name
print(json.dumps(dict(err=float((got - saved["ref"]).abs().max()), control=control)))
"""
    )
    info = json.loads(out.strip().splitlines()[-1])
    assert info["err"] <= 1e-5
    assert info["control"].startswith("timm."), info


def test_a_checkpoint_of_a_newer_format_names_both_versions(tmp_path, monkeypatch):
    """A checkpoint whose format this effzoo does not know (a newer effzoo wrote it) is one
    CheckpointFormatError through Ultralytics' loader, naming both effzoo versions."""
    from ultralytics import YOLO

    import effzoo
    from effzoo.yolo import checkpoint

    with monkeypatch.context() as mp:
        mp.setattr(checkpoint, "FORMAT", checkpoint.FORMAT + 1)
        mp.setattr(checkpoint, "versions", lambda: {"effzoo": "9.1.0", "timm": "2.3.0"})
        path = _checkpoint_and_outputs(tmp_path)
    with pytest.raises(effzoo.CheckpointFormatError) as info:
        YOLO(str(path))
    message = str(info.value)
    assert "effzoo 9.1.0" in message and f"effzoo {effzoo.__version__}" in message
    assert "Upgrade effzoo to 9.1.0 or newer" in message and 'pip install ".[yolo]"' in message
    assert "pip install effzoo" not in message and '"effzoo[' not in message  # not the index's
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("wrote", ["other", "same", "unrecorded"])
def test_a_checkpoint_that_cannot_be_rebuilt_names_the_versions_that_wrote_it(
    tmp_path, monkeypatch, wrote
):
    """When this effzoo's timm cannot build what the checkpoint holds (here: a variant row
    whose arch table no timm reads), the error names the effzoo and timm that wrote it and
    the command that installs them, when those are other versions; written by these
    versions (or with none recorded), the checkpoint is said to be damaged, with no
    version advice (never `timm==None`, never the versions installed)."""
    import dataclasses

    from ultralytics import YOLO

    import effzoo
    from effzoo.yolo import checkpoint

    yolo, _ = _tiny_yolo("v2")
    real = checkpoint.built_as

    def broken(backbone):
        build = real(backbone)
        return {**build, "spec": dataclasses.replace(build["spec"], arch=(("zz_r1",),))}

    monkeypatch.setattr(checkpoint, "built_as", broken)
    old = {"effzoo": "0.1.9", "timm": "1.0.99", "torch": "2.14.0"}
    recorded = {"other": old, "same": checkpoint.versions(), "unrecorded": {}}[wrote]
    monkeypatch.setattr(checkpoint, "versions", lambda: recorded)
    path = tmp_path / "odd.pt"
    yolo.save(path)
    monkeypatch.undo()
    with pytest.raises(effzoo.CheckpointFormatError) as info:
        YOLO(str(path))
    message = str(info.value)
    if wrote == "other":
        assert 'pip install "timm==1.0.99"' in message
        assert 'in a checkout of effzoo 0.1.9: pip install ".[yolo]"' in message
        assert "cannot rebuild the checkpoint's effzoo BackboneStem layer" in message
    else:
        assert "this checkpoint is damaged" in message and "timm==" not in message, message
        assert "rebuilding its effzoo BackboneStem layer failed" in message


def test_deep_copies_are_plain_copies(monkeypatch):
    """EMA and Ultralytics' saves deep-copy the model: a copy is the same modules, made
    without the pickling path (no data gathered, no rebuild), independent of the original."""
    import copy

    from effzoo.yolo import checkpoint

    yolo, _ = _tiny_yolo("lite")
    stem = yolo.model.model[0]

    def refuse(*args, **kwargs):
        raise AssertionError("a deep copy went through the checkpoint path")

    monkeypatch.setattr(checkpoint, "hold", refuse)
    monkeypatch.setattr(checkpoint, "rebuilt", refuse)
    copy.deepcopy(yolo.model)
    twin = copy.deepcopy(stem)
    assert type(twin.backbone.blocks[0][0]) is type(stem.backbone.blocks[0][0])
    assert repr(twin) == repr(stem)
    first = next(twin.parameters())
    assert first is not next(stem.parameters()) and first.equal(next(stem.parameters()))


#: a timm internal -> where effzoo first needs it (the rest works without it)
NEEDED_BY = {
    "timm.models._efficientnet_builder": {"checkpoint", "create"},
    "timm.models._efficientnet_blocks": {"checkpoint", "fuse", "export"},
    "timm.layers.conv2d_same": {"checkpoint", "fuse", "export"},
}


@pytest.mark.parametrize("moved", list(NEEDED_BY))
def test_a_timm_without_effzoo_s_internals_is_one_error_naming_the_versions(tmp_path, moved):
    """Loading a checkpoint where timm lacks a module effzoo builds with (a timm outside
    the supported range): effzoo's ImportError names effzoo's and timm's versions and
    what to install; Ultralytics' AutoInstall is not set off (it answers only a
    ModuleNotFoundError, by trying to pip install the module's name). The same error
    wherever the internal is first needed: building a backbone, the fast path, export."""
    path = _checkpoint_and_outputs(tmp_path)
    out = run_fresh(
        f"""
        import importlib, importlib.abc, json, sys
        import timm
        MOVED = {moved!r}  # a timm that moved it
        class Moved(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == MOVED:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        sys.meta_path.insert(0, Moved())
        del sys.modules[MOVED]
        from ultralytics import YOLO
        import effzoo
        calls = dict(
            checkpoint=lambda: YOLO({str(path)!r}),
            create=lambda: effzoo.create("efficientnet_b0"),
            fuse=lambda: importlib.import_module("effzoo.fuse"),
            export=lambda: importlib.import_module("effzoo.export"),
        )
        for where, call in calls.items():
            try:
                call()
            except Exception as e:
                print(json.dumps(dict(where=where, type=type(e).__name__, msg=str(e),
                                      mnfe=isinstance(e, ModuleNotFoundError),
                                      timm=timm.__version__)))
            else:
                print(json.dumps(dict(where=where, type="none")))
        """,
        env={"YOLO_AUTOINSTALL": "false"},
    )
    from effzoo._version import TIMM_SUPPORTED, __version__

    found = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    assert [f["where"] for f in found] == ["checkpoint", "create", "fuse", "export"], out
    for info in found:
        if info["where"] not in NEEDED_BY[moved]:
            assert info["type"] == "none", info
            continue
        assert info["type"] == "IncompatibleTimmError" and not info["mnfe"], info
        assert f"effzoo {__version__}" in info["msg"] and f"timm {info['timm']}" in info["msg"]
        assert repr(moved) in info["msg"], info["msg"]
        assert f'pip install "timm{TIMM_SUPPORTED}"' in info["msg"]
    assert "AutoInstall" not in out


def test_the_supported_timm_range_is_the_same_everywhere():
    from effzoo._version import TIMM_SUPPORTED

    pyproject = (yolo_helpers.ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert f'"timm{TIMM_SUPPORTED}"' in pyproject
