"""Deploy (issue 21): a YOLO model with an effzoo row, exported with Ultralytics' own
``model.export(format=...)`` and its defaults, gives the PyTorch model's outputs.

Each artifact is loaded the way a user loads it (``AutoBackend``, what ``YOLO(path)``
runs; OpenVINO through its own API with ``INFERENCE_PRECISION_HINT=f32``, since
Ultralytics leaves it at the CPU's default, bf16 on AMX CPUs) and its raw output
(boxes and class scores, each relative to its own largest value) compared with a
float64 run of the unfused PyTorch model. Rows: B0 and B3 (symmetric padding), Lite0
(TF "same", ReLU6), V2-B0 and V2-S (TF "same", Fused-MBConv), and a B6 scaled to
width and depth 0.25 (TF "same", MBConv with SE: a TF-padded V1 row).

The graph tests pin the cause of the silent ONNX bug: at a static export size no
``Pad`` may depend on the input's shape (onnxslim 0.1.98, run by Ultralytics' default
``simplify=True``, folded such pads onto the wrong side of the convolution).
"""

from __future__ import annotations

import copy
import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yolo_helpers

pytest.importorskip("ultralytics")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import effzoo  # noqa: E402
import effzoo.yolo  # noqa: E402
from effzoo.fuse import FusedConv, contiguous_weights  # noqa: E402
from effzoo.padding import export_padding, sizes_static, static_sizes  # noqa: E402
from effzoo.yolo import converters  # noqa: E402
from effzoo.yolo.templates import model_yaml, short_name  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]  # see conftest.py

IMGSZ = 96
#: sizes a dynamic export is also run at (multiples of the head's stride 32)
DYNAMIC_SIZES = [(IMGSZ, IMGSZ), (128, 64), (64, 160)]
#: max |runtime - PyTorch| / max |PyTorch|, boxes and scores each (fp32 runtimes)
TOL = 1e-4

#: row -> (variant, width, depth). B3 at random init pads symmetrically (its default
#: weights are timm's); the TF-padded V1 row (MBConv + SE, SiLU) is a scaled-down B6
_deploy_rows = yolo_helpers.load_script("scripts/deploy_rows.py")
ROWS, TF_ROWS = _deploy_rows.ROWS, _deploy_rows.TF_ROWS  # shared with scripts/deploy_matrix.py


# -- building, exporting and running -------------------------------------------------


class Zoo:
    """One YOLO11n model per row (random init: no weights to fetch) and the artifacts
    exported from it, each made once per test session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.models: dict[str, Any] = {}
        self.refs: dict[str, torch.nn.Module] = {}
        self.artifacts: dict[tuple[str, str, tuple[tuple[str, Any], ...]], str] = {}

    def model(self, row: str) -> Any:
        from ultralytics import YOLO

        if row not in self.models:
            variant, width, depth = ROWS[row]
            assert (effzoo.lookup(variant).padding == "same") == (row in TF_ROWS)
            path = self.root / f"yolo11n-{short_name(variant)}.yaml"  # scale n from the name
            text = model_yaml(variant, width=width, depth=depth, pretrained=False)
            path.write_text(text, encoding="utf-8")
            self.models[row] = _mid_scores(YOLO(str(path)))
            self.refs[row] = copy.deepcopy(self.models[row].model).eval().double()
        return self.models[row]

    def export(self, row: str, fmt: str, **kwargs: Any) -> str:
        key = (row, fmt, tuple(sorted(kwargs.items())))
        if key not in self.artifacts:
            where = self.root / f"{row}-{fmt}-{len(self.artifacts)}"
            where.mkdir()
            model = self.model(row)
            cwd = os.getcwd()
            os.chdir(where)  # a model built from a yaml exports into the working directory
            try:
                out = Path(model.export(format=fmt, imgsz=IMGSZ, device="cpu", **kwargs)).resolve()
            finally:
                os.chdir(cwd)
            self.artifacts[key] = str(out)
        return self.artifacts[key]

    def reference(self, row: str, x: torch.Tensor) -> torch.Tensor:
        self.model(row)
        with torch.no_grad():
            return _first(self.refs[row](x.double())).float()


def _mid_scores(model: Any) -> Any:
    """Zero the class-score biases of the head: a new head starts at scores near 1e-4,
    where a runtime's fp32 sigmoid (ONNX Runtime's) is off by ~1e-3 of the value for
    stock models too; near 0.5 a score error shows as what it is."""
    from ultralytics.nn.modules import Detect

    with torch.no_grad():
        for m in model.model.modules():
            if isinstance(m, Detect):
                for branch in (*m.cv3, *getattr(m, "one2one_cv3", ())):
                    branch[-1].bias.zero_()
    return model


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zoo]:
    with yolo_helpers.hub_offline():
        yield Zoo(tmp_path_factory.mktemp("deploy"))


def _nchw(t: torch.Tensor) -> bool:
    """Strides of a plain contiguous tensor: ``is_contiguous()`` also passes a depthwise
    (C, 1, k, k) weight with channels-last strides, which makes PyTorch (and so
    torch.export, ExecuTorch) pick channels-last outputs."""
    return t.stride() == torch.empty(t.shape).stride()


def _first(y: Any) -> torch.Tensor:
    while isinstance(y, (list, tuple)):
        y = y[0]
    return torch.as_tensor(y)


def _image(h: int = IMGSZ, w: int = IMGSZ, seed: int = 0) -> torch.Tensor:
    """An input as Ultralytics feeds one: values in 0..1."""
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def rel_error(got: torch.Tensor, ref: torch.Tensor) -> float:
    """Largest |got - ref| relative to max |ref|, boxes (rows 0-3) and scores apart:
    boxes are pixels, scores 0..1, so one scale for both would hide score errors."""
    assert tuple(got.shape) == tuple(ref.shape), (tuple(got.shape), tuple(ref.shape))
    worst = 0.0
    for part in (slice(0, 4), slice(4, None)):
        r, g = ref[:, part].double(), got[:, part].double()
        worst = max(worst, float((g - r).abs().max()) / max(float(r.abs().max()), 1e-6))
    return worst


def run_backend(path: str, x: torch.Tensor) -> torch.Tensor:
    """The raw output of ``path`` as ``YOLO(path)`` computes it (Ultralytics' AutoBackend)."""
    from ultralytics.nn.autobackend import AutoBackend

    backend = AutoBackend(path, device=torch.device("cpu"), verbose=False)
    with torch.no_grad():
        return _first(backend(x)).float()


def run_onnx(path: str, x: torch.Tensor) -> torch.Tensor:
    from effzoo.export import session

    sess = session(path, threads=1)
    return torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0])


def run_openvino(path: str, x: torch.Tensor) -> torch.Tensor:
    import openvino as ov

    core = ov.Core()
    xml = next(Path(path).glob("*.xml"))
    compiled = core.compile_model(
        core.read_model(str(xml)),
        "CPU",
        {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1},
    )
    return torch.from_numpy(compiled([x.numpy()])[compiled.output(0)])


# -- ONNX graphs: what a static export carries ----------------------------------------


def _pad_sources(path: str) -> list[set[str]]:
    """For each Pad node of the graph, the op types (and "input" for a graph input)
    among the ancestors of its pads."""
    graph = onnx.load(path).graph
    producer = {o: n for n in graph.node for o in n.output}
    inputs = {i.name for i in graph.input}
    found = []
    for node in graph.node:
        if node.op_type != "Pad":
            continue
        seen: set[str] = set()
        todo, kinds = [node.input[1]], set()
        while todo:
            name = todo.pop()
            if name in seen or not name:
                continue
            seen.add(name)
            if name in inputs:
                kinds.add("input")
            elif name in producer:
                kinds.add(producer[name].op_type)
                todo.extend(producer[name].input)
        found.append(kinds)
    return found


def _conv_pads(path: str) -> list[list[int]]:
    graph = onnx.load(path).graph
    pads = []
    for node in graph.node:
        if node.op_type == "Conv":
            for a in node.attribute:
                if a.name == "pads":
                    pads.append(list(a.ints))
    return pads


@pytest.mark.parametrize("row", TF_ROWS)
def test_static_onnx_export_has_no_shape_dependent_pad(zoo: Zoo, row: str) -> None:
    path = zoo.export(row, "onnx", simplify=False)
    sources = _pad_sources(path)
    # a constant Pad, or (Ultralytics 8.3.x simplifies whatever `simplify` says) the
    # padding folded into the convolutions, larger side at the end
    folded = [p for p in _conv_pads(path) if p[:2] != p[2:]]
    assert sources or folded, "a TF-padded row pads somewhere (its stride-2 convolutions)"
    for kinds in sources:
        assert not kinds & {"Shape", "Size", "input"}, kinds


@pytest.mark.parametrize("row", TF_ROWS)
def test_simplified_onnx_pads_tf_same_at_the_end(zoo: Zoo, row: str) -> None:
    """Ultralytics' default export: onnxslim folds the pads into the convolutions;
    TF "same" puts the odd pixel at the end, never at the beginning."""
    path = zoo.export(row, "onnx")
    assert not _pad_sources(path)  # all folded into convolutions
    pads = _conv_pads(path)
    asymmetric = [p for p in pads if p[:2] != p[2:]]
    assert asymmetric, "the stride-2 convolutions of an even-sized input pad asymmetrically"
    for p in asymmetric:
        assert p[2] >= p[0] and p[3] >= p[1], p


def test_dynamic_onnx_export_keeps_symbolic_pads(zoo: Zoo) -> None:
    sources = _pad_sources(zoo.export("lite0", "onnx", dynamic=True))
    assert any("Shape" in kinds for kinds in sources)


# -- every format against PyTorch -----------------------------------------------------


@pytest.mark.parametrize("row", list(ROWS))
@pytest.mark.parametrize("kwargs", [{}, {"simplify": False}], ids=["defaults", "simplify=False"])
def test_onnx_matches_pytorch(zoo: Zoo, row: str, kwargs: dict[str, Any]) -> None:
    path = zoo.export(row, "onnx", **kwargs)
    x = _image()
    ref = zoo.reference(row, x)
    assert rel_error(run_onnx(path, x), ref) <= TOL
    assert rel_error(run_backend(path, x), ref) <= TOL


@pytest.mark.parametrize("row", ["b0", "lite0", "v2b0"])
def test_dynamic_onnx_matches_pytorch_at_other_sizes(zoo: Zoo, row: str) -> None:
    path = zoo.export(row, "onnx", dynamic=True)
    for i, (h, w) in enumerate(DYNAMIC_SIZES):
        x = _image(h, w, seed=i)
        assert rel_error(run_onnx(path, x), zoo.reference(row, x)) <= TOL, (h, w)


@pytest.mark.parametrize("row", ["lite0", "v2b0"])
def test_torchscript_matches_pytorch_with_nchw_weights(zoo: Zoo, row: str) -> None:
    path = zoo.export(row, "torchscript")
    x = _image()
    assert rel_error(run_backend(path, x), zoo.reference(row, x)) <= TOL
    ts = torch.jit.load(path)
    assert all(_nchw(p) for p in ts.parameters())  # what ExecuTorch asks


def _exporter_predates(fmt: str) -> None:
    """Skip where the installed Ultralytics cannot export ``fmt`` here for any model
    (scripts/compat.sh runs 8.3.59): stock YOLO11n fails the same way, in Ultralytics'
    exporter, before effzoo's code runs."""
    import ultralytics
    from packaging.version import Version

    if Version(ultralytics.__version__) >= Version("8.4"):
        return
    if fmt == "openvino":
        import openvino

        if not hasattr(openvino, "runtime"):
            pytest.skip(f"Ultralytics {ultralytics.__version__} imports openvino.runtime, gone in "
                        f"OpenVINO {openvino.__version__}")  # fmt: skip
    from ultralytics import utils

    if fmt == "ncnn" and not getattr(utils, "ONLINE", True):
        pytest.skip(f"Ultralytics {ultralytics.__version__} downloads pnnx from GitHub at "
                    "export time (offline here); 8.4 uses the pnnx package")  # fmt: skip


@pytest.mark.parametrize("row", ["lite0", "v2b0"])
def test_openvino_fp32_matches_pytorch(zoo: Zoo, row: str) -> None:
    pytest.importorskip("openvino")
    _exporter_predates("openvino")
    path = zoo.export(row, "openvino")
    x = _image()
    assert rel_error(run_openvino(path, x), zoo.reference(row, x)) <= TOL


@pytest.mark.parametrize("row", ["lite0", "v2b0"])
def test_ncnn_matches_pytorch(zoo: Zoo, row: str) -> None:
    pytest.importorskip("ncnn")
    pytest.importorskip("pnnx")
    _exporter_predates("ncnn")
    path = zoo.export(row, "ncnn")
    x = _image()
    assert rel_error(run_backend(path, x), zoo.reference(row, x)) <= TOL


#: whether this environment lacked the Aliyun log SDK when the tests started (MNN's
#: converter pip-installs it then, unless effzoo's stand-in is in place)
_NO_ALIYUN = converters._missing("aliyun.log")


@pytest.mark.parametrize("row", ["lite0"])  # MNN converts the same (simplified) ONNX
def test_mnn_matches_pytorch(zoo: Zoo, row: str) -> None:
    pytest.importorskip("MNN")
    path = zoo.export(row, "mnn")
    x = _image()
    assert rel_error(run_backend(path, x), zoo.reference(row, x)) <= TOL
    if _NO_ALIYUN:  # the export installed nothing (MNN would have run pip otherwise)
        assert converters._missing("aliyun.log") and "aliyun" not in sys.modules


def test_mnn_s_converter_would_run_pip_and_effzoo_keeps_it_from_doing_so(monkeypatch) -> None:
    """The bug (MNN 3.6.1: importing its converter without the Aliyun log SDK shells out
    to `pip install -U aliyun-log-python-sdk`, with the first pip on PATH) and the
    workaround; os.system is recorded instead of run, so nothing is installed here."""
    pytest.importorskip("MNN")
    if not _NO_ALIYUN:
        pytest.skip("the Aliyun log SDK is installed here: MNN has nothing to pip-install")
    calls: list[str] = []
    monkeypatch.setattr(os, "system", lambda cmd: calls.append(cmd) or 1)

    def fresh_mnn_tools() -> None:  # as in a process that has not imported them yet
        for name in [n for n in sys.modules if n.startswith("MNN.tools")]:
            monkeypatch.delitem(sys.modules, name)

    fresh_mnn_tools()
    importlib.import_module("MNN.tools")  # what Ultralytics' MNN export imports
    assert calls and set(calls) == {"pip install -U aliyun-log-python-sdk"}  # the bug
    calls.clear()
    fresh_mnn_tools()
    with converters.mnn_without_pip("mnn") as inert:
        importlib.import_module("MNN.tools")  # what Ultralytics' MNN export imports
        log = importlib.import_module("MNN.tools.utils.log")
        log.MNNLogger()  # its start-up: an offline request, then nothing
    assert inert and calls == []
    assert "aliyun" not in sys.modules  # the stand-in is gone after the export
    with converters.mnn_without_pip("onnx") as inert:  # other formats: nothing changes
        assert not inert and "aliyun" not in sys.modules


# -- the pieces, without Ultralytics ----------------------------------------------------


def test_export_padding_is_constant_only_inside_static_sizes() -> None:
    x = torch.zeros(1, 2, 10, 9)
    out, pad = export_padding(x, (3, 3), (2, 2), (1, 1))  # outside: symbolic pad_same
    assert pad == [0, 0] and tuple(out.shape) == (1, 2, 11, 11)
    assert not sizes_static()
    with static_sizes():
        assert sizes_static()
        out, pad = export_padding(x, (3, 3), (2, 2), (1, 1))  # H: (0, 1), W: (1, 1)
        assert pad == [0, 0] and tuple(out.shape) == (1, 2, 11, 11)
        assert out[0, 0, 10].abs().sum() == 0  # the odd pixel at the end
        y = torch.zeros(1, 2, 9, 9)
        same, pad = export_padding(y, (3, 3), (2, 2), (1, 1))  # symmetric: the conv's own
        assert same is y and pad == [1, 1]
        with static_sizes(False):
            assert not sizes_static()
        assert sizes_static()
    assert not sizes_static()


def test_traced_static_padding_holds_no_size_ops() -> None:
    def f(x: torch.Tensor) -> torch.Tensor:
        return export_padding(x, (3, 3), (2, 2), (1, 1))[0]

    x = torch.randn(1, 2, 10, 10)
    with static_sizes():
        static = torch.jit.trace(f, x)
    dynamic = torch.jit.trace(f, x)
    assert "aten::size" not in str(static.graph)
    assert "aten::size" in str(dynamic.graph)


def test_contiguous_weights_keeps_values_and_drops_channels_last() -> None:
    model = effzoo.create("efficientnet_lite0", pretrained=False).eval()
    x = torch.randn(1, 3, 65, 64)
    with torch.no_grad():
        model.fuse()
        convs = [m for m in model.modules() if isinstance(m, FusedConv)]
        assert any(not _nchw(c.weight) for c in convs)  # channels-last by default
        before = model(x)
        contiguous_weights(model)
        after = model(x)
    assert all(_nchw(c.weight) and not c.to_channels_last for c in convs)
    assert all(_nchw(t) for t in after)
    for a, b in zip(after, before):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))


def test_export_onnx_static_size_survives_onnxslim(tmp_path: Path) -> None:
    onnxslim = pytest.importorskip("onnxslim")
    from effzoo.export import compare_onnx, export_onnx

    model = effzoo.create("efficientnet_lite0", pretrained=False).eval().fuse()
    path = export_onnx(model, tmp_path / "m.onnx", input_size=(64, 64), dynamic=False)
    assert all(not kinds & {"Shape", "input"} for kinds in _pad_sources(str(path)))
    slim = tmp_path / "slim.onnx"
    onnx.save(onnxslim.slim(onnx.load(str(path))), str(slim))
    assert compare_onnx(model, slim, sizes=[(64, 64)]) <= TOL


def test_symmetric_padding_at_keeps_the_taps_at_that_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Paddle's static exports: asymmetric TF pads become grown kernels with symmetric
    padding (scripts/deploy_matrix.sh runs Paddle itself). Row tiling on (as for large
    inputs): its depthwise convolutions bypass forward(), and must be found all the same."""
    from effzoo.fuse import blocks, symmetric_padding_at

    monkeypatch.setattr(blocks, "TILE_MIN_BYTES", 0)

    model = effzoo.create("efficientnet_v2_b0", pretrained=False).eval().fuse()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        assert symmetric_padding_at(model, x) > 0
        after = model(x)
    assert not any(m.same for m in model.modules() if isinstance(m, FusedConv))
    for a, b in zip(after, before):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))
