"""ONNX export: every family, dynamic height/width, TF "same" padding from the input size."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import effzoo
from effzoo.errors import ExportError
from effzoo.export import compare_onnx, export_onnx, session

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

# (variant, what it covers): symmetric padding; TF same with k3/k5 stride-2 and ReLU6;
# TF same with Fused-MBConv/ConvBnAct blocks
FAMILIES = ["efficientnet_b0", "efficientnet_lite0", "efficientnet_v2_b0"]
# sizes other than the exported one, odd and even, landscape and portrait
SIZES = [(64, 64), (97, 75), (66, 129)]


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def _ort_outputs(path: Path, x: torch.Tensor) -> list[torch.Tensor]:
    sess = session(path)
    return [torch.from_numpy(o) for o in sess.run(None, {"images": x.numpy()})]


@pytest.mark.parametrize("name", FAMILIES)
def test_export_matches_pytorch_at_every_size(name: str, tmp_path: Path) -> None:
    model = effzoo.create(name).eval()
    path = export_onnx(model, tmp_path / f"{name}.onnx", input_size=(64, 64), verify=False)
    for h, w in SIZES:
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            ref = model(x)
        got = _ort_outputs(path, x)
        assert [tuple(g.shape) for g in got] == [tuple(r.shape) for r in ref]
        for r, g in zip(ref, got):
            torch.testing.assert_close(g, r, rtol=1e-3, atol=1e-4 * float(r.abs().max()))


@pytest.mark.parametrize("name", FAMILIES)
def test_graph_has_symbolic_height_width(name: str, tmp_path: Path) -> None:
    path = export_onnx(
        effzoo.create(name).eval(), tmp_path / "m.onnx", input_size=(64, 64), verify=False
    )
    graph = onnx.load(str(path)).graph
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, "height", "width"]
    assert [o.name for o in graph.output] == ["p3", "p4", "p5"]
    pads = [n for n in graph.node if n.op_type == "Pad"]
    if effzoo.lookup(name).padding == "same":
        # stride-2 same convs pad by an amount computed from the input shape, not a constant
        assert pads and all(len(n.input) > 1 and n.input[1] for n in pads)
        consts = {i.name for i in graph.initializer}
        assert not any(n.input[1] in consts for n in pads)
    else:
        assert not pads


def test_fused_model_exports_and_matches(tmp_path: Path) -> None:
    model = effzoo.create("efficientnet_v2_b0").eval()
    fused = copy.deepcopy(model).fuse()
    path = export_onnx(fused, tmp_path / "fused.onnx", input_size=(64, 64))  # verify=True
    assert compare_onnx(model, path, sizes=[(97, 75)]) < 1e-4
    names = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "BatchNormalization" not in names


@pytest.mark.parametrize(
    "name,fused", [("efficientnet_v2_b0", False), ("efficientnet_lite0", True)]
)
def test_dynamo_export_keeps_same_padding_symbolic(name: str, fused: bool, tmp_path: Path) -> None:
    """The torch.export-based exporter gives one graph for every size (it used to
    take minutes on TF "same" padding, or specialise a fused model to one size)."""
    pytest.importorskip("onnxscript")
    model = effzoo.create(name).eval()
    model = model.fuse() if fused else model
    # verify=True: ONNX Runtime against PyTorch at 64x64, 96x128 and 97x75
    path = export_onnx(model, tmp_path / "m.onnx", input_size=(64, 64), dynamo=True)
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version == 18
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims[:2] == [1, 3] and all(isinstance(d, str) for d in dims[2:]), dims
    x = torch.randn(1, 3, 66, 129)
    with torch.no_grad():
        ref = model(x)
    for r, g in zip(ref, _ort_outputs(path, x)):
        torch.testing.assert_close(g, r, rtol=1e-3, atol=1e-4 * float(r.abs().max()))


def test_dynamo_export_refuses_a_size_below_its_range(tmp_path: Path) -> None:
    model = effzoo.create("efficientnet_lite0", out_indices=(4,)).eval()
    with pytest.raises(ExportError, match="64 px or more"):
        export_onnx(model, tmp_path / "m.onnx", input_size=(32, 48), dynamo=True)
    assert not (tmp_path / "m.onnx").exists()


def test_export_leaves_the_model_alone(tmp_path: Path) -> None:
    model = effzoo.create("efficientnet_lite0")  # training mode
    export_onnx(model, tmp_path / "m.onnx", input_size=(64, 64))
    assert model.training
    assert model.conv_stem.weight.grad is None


def test_dynamic_batch(tmp_path: Path) -> None:
    model = effzoo.create("efficientnet_b0", out_indices=(3, 4)).eval()
    path = export_onnx(
        model, tmp_path / "m.onnx", input_size=(64, 64), dynamic_batch=True, verify=False
    )
    x = torch.randn(3, 3, 64, 96)
    got = _ort_outputs(path, x)
    assert [g.shape[0] for g in got] == [3, 3]
    with torch.no_grad():
        torch.testing.assert_close(got[1], model(x)[1], rtol=1e-3, atol=1e-4)


def test_verify_reports_a_mismatch(tmp_path: Path) -> None:
    model = effzoo.create("efficientnet_lite0", out_indices=(4,)).eval()
    with pytest.raises(ExportError, match="tolerance"):
        export_onnx(model, tmp_path / "m.onnx", input_size=(64, 64), dynamic=False, atol=-1.0)


REPO = Path(__file__).resolve().parents[1]


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    """`python benchmarks/bench.py ARGS` from the repository root, on this checkout's effzoo."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    cmd = [sys.executable, str(Path("benchmarks", "bench.py")), *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_bench_command_runs_and_writes_json(tmp_path: Path) -> None:
    """`python benchmarks/bench.py` end to end at a tiny size (no timing is asserted)."""
    import json

    out = tmp_path / "bench.json"
    args = ["efficientnet_lite0", "--size", "64", "--rounds", "2", "--per-round", "1"]
    args += ["--warmup", "0", "--threads", "1", "--peers", "fused,timm,onnxruntime"]
    proc = _bench(*args, "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout
    assert "fused" in table and "onnxruntime" in table
    data = json.loads(out.read_text())
    assert {r["name"] for r in data["results"]} == {"fused", "timm", "onnxruntime"}
    assert all(len(r["rounds"]) == 2 and r["median_ms"] > 0 for r in data["results"])
    assert data["models"]["efficientnet_lite0"]["gflops"] > 0
    assert data["machine"]["torch"] == torch.__version__


def test_bench_error_is_one_line_without_traceback() -> None:
    """An unknown variant: one `benchmarks/bench.py: error: ...` line, exit 1, no timing."""
    proc = _bench("efficientnet_b0", "no_such_variant", "--rounds", "1", "--threads", "1")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("benchmarks/bench.py: error: "), errors
    assert "no_such_variant" in errors[0]
    assert "timing" not in proc.stderr  # names are checked before any runner is built
