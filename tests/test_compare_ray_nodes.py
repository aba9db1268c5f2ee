"""``effzoo compare --ray ADDRESS`` on a cluster whose nodes do not see ``--out`` (no
shared file system): each run trains under its node's temp directory and comes back to
the driver through Ray (issue 37 item 7)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yolo_helpers

pytest.importorskip("ultralytics")
pytest.importorskip("skimage")
pytest.importorskip("ray")

from effzoo.yolo import compare

#: stock YOLO11n (a name Ultralytics resolves on the node) and a Lite0 row (its yaml
#: exists on the driver only, under --out/models)
MODELS = "yolo11n.yaml,efficientnet_lite0:w0.25"
ARGS = dict(epochs=1, imgsz=64, batch=4, runtimes="pytorch", rounds=2, processes=1,
            timing_budget=10, train_args={"workers": 0, "plots": False})  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node(ray_dir: Path, node_tmp: Path, env: dict[str, str], *how: str) -> subprocess.Popen:
    """One Ray node (``ray start --block``, ended by its pid): one CPU, its own Ray temp
    dir, and its own TMPDIR: the node-local folder its tasks train in."""
    node_tmp.mkdir(parents=True)
    cmd = [str(Path(sys.executable).parent / "ray"), "start", "--block", *how,
           "--num-cpus=1", f"--temp-dir={ray_dir}"]  # fmt: skip
    with (node_tmp.parent / f"{node_tmp.name}.log").open("wb") as log:
        env = {**env, "TMPDIR": str(node_tmp)}
        return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait_for_nodes(ray_bin: str, port: int, env: dict[str, str], procs: list) -> None:
    t0 = time.time()
    while True:
        ended = [p.args[-1] for p in procs if p.poll() is not None]
        assert not ended, f"a Ray node ended while starting ({ended}: see its node-*.log)"
        got = subprocess.run(
            [ray_bin, "status", f"--address=127.0.0.1:{port}"],
            env=env,
            capture_output=True,
            text=True,
        )
        if got.returncode == 0 and got.stdout.count("node_") >= 2 and "2.0 CPU" in got.stdout:
            return
        assert time.time() - t0 < 180, f"the two Ray nodes did not come up: {got.stdout}"
        time.sleep(1)


def _rows(table: list[dict]) -> list[dict]:
    return [{k: str(r[k]) for k in ("name", "start", "params_M", "GFLOPs")} for r in table]


@pytest.mark.slow
def test_two_nodes_without_out_train_locally_and_the_table_equals_the_sequential_one(
    tmp_path, monkeypatch
):
    """Two candidates on a two-node cluster, one CPU per node and one per run, so the two
    runs train at once on different nodes. On one machine every node sees ``--out``, so
    the driver's token in ``--out``'s lock file is replaced by one no node finds: what
    nodes on machines of their own find. Each run trains under its node's TMPDIR (not
    under --out); its files come back into ``--out/runs``; the table is the sequential
    one (mAP within the CPU's determinism, the training loss to float reordering)."""
    data = yolo_helpers.tiny_dataset()
    with yolo_helpers.hub_offline():
        seq = compare(MODELS, data=data, out=tmp_path / "seq", **ARGS)

    port = _free_port()
    short = Path(tempfile.mkdtemp(prefix="ezn", dir="/tmp"))  # short: Ray's socket paths
    nodes = {"a": tmp_path / "node-a", "b": tmp_path / "node-b"}
    env = {**os.environ, **yolo_helpers.HUB_OFFLINE, "PYTHONPATH": yolo_helpers.pythonpath(),
           "HOME": str(tmp_path / "home"), "RAY_USAGE_STATS_ENABLED": "0"}  # fmt: skip
    monkeypatch.setenv("HOME", env["HOME"])  # Ray writes ~/.ray
    monkeypatch.setattr("effzoo.compare.core._out_token", lambda root: "a token no node finds")
    out = tmp_path / "out"
    ray_bin = str(Path(sys.executable).parent / "ray")
    procs = [
        _node(short / "a", nodes["a"], env, "--head", f"--port={port}", "--include-dashboard=false")
    ]
    try:
        t0 = time.time()
        while subprocess.run([ray_bin, "status", f"--address=127.0.0.1:{port}"], env=env,
                             capture_output=True).returncode:  # fmt: skip
            assert procs[0].poll() is None and time.time() - t0 < 180, "no Ray head"
            time.sleep(1)
        procs.append(_node(short / "b", nodes["b"], env, f"--address=127.0.0.1:{port}"))
        _wait_for_nodes(ray_bin, port, env, procs)
        with yolo_helpers.hub_offline():
            result = compare(
                MODELS, data=data, out=out, workers=2, ray_address=f"127.0.0.1:{port}", **ARGS
            )
    finally:
        import ray

        ray.shutdown()
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(short, ignore_errors=True)

    assert len(result.trained) == 2
    trained_on = []
    for row in result.table:
        run = out / row["run_dir"]
        for name in ("weights/best.pt", "results.csv", "args.yaml", "train.log",
                     "val-matches.npz", "effzoo-compare.json"):  # fmt: skip
            assert (run / name).is_file(), name
        record = json.loads((run / "effzoo-compare.json").read_text())
        assert record["run_dir"] == str(run) and record["best"] == str(run / "weights/best.pt")
        host, _, where = record["trained_on"].partition(":")
        assert host == socket.gethostname() and not Path(where).exists()  # removed there
        assert not Path(where).is_relative_to(out)
        trained_on.append(next(n for n, d in nodes.items() if Path(where).is_relative_to(d)))
    assert sorted(trained_on) == ["a", "b"]  # one run on each node

    assert _rows(result.table) == _rows(seq.table)
    for got, want in zip(result.table, seq.table):
        assert got["mAP50-95"] == pytest.approx(want["mAP50-95"], abs=0.02)
        ray_run, seq_run = (json.loads((root / r["run_dir"] / "effzoo-compare.json").read_text())
                            for root, r in ((out, got), (seq.out, want)))  # fmt: skip
        assert isinstance(seq_run["train_box_loss"], float) and seq_run["train_box_loss"] > 0
        assert ray_run["train_box_loss"] == pytest.approx(seq_run["train_box_loss"], rel=2e-3)
