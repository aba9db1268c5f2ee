"""``effzoo compare`` against what long runs meet: a process killed mid-training or
mid-validation and the same command run again, files cut short by a kill, a second
compare into the same ``--out``, and Ray addresses that do not answer. Each case runs
the real command in a subprocess, killed the way a user's is (issue 36)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yolo_helpers

pytest.importorskip("ultralytics")
pytest.importorskip("skimage")

#: one stock candidate, tiny settings, PyTorch timing only: the cheapest whole command
BASE = ["--models", "yolo11n.yaml", "--imgsz", "64", "--batch", "4", "--rounds", "2",
        "--processes", "1", "--runtime", "pytorch"]  # fmt: skip
TRAIN = ["workers=0", "plots=False"]


def _env() -> dict[str, str]:
    return {**os.environ, **yolo_helpers.HUB_OFFLINE, "PYTHONPATH": yolo_helpers.pythonpath()}


def _cmd(out: Path, epochs: int, *extra: str) -> list[str]:
    data = str(yolo_helpers.tiny_dataset())
    return [sys.executable, "-m", "effzoo", "compare", "--data", data, *BASE,
            "--epochs", str(epochs), "--out", str(out), *extra, *TRAIN]  # fmt: skip


def _run(out: Path, epochs: int, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _cmd(out, epochs, *extra), capture_output=True, text=True, timeout=600, env=_env()
    )


def _start(out: Path, epochs: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as f:
        return subprocess.Popen(_cmd(out, epochs), stdout=f, stderr=subprocess.STDOUT, env=_env())


def _wait_for(proc: subprocess.Popen[bytes], found, what: str, timeout: float = 300) -> None:
    t0 = time.time()
    while not found():
        assert proc.poll() is None, f"the command ended before {what}"
        assert time.time() - t0 < timeout, f"no {what} after {timeout} s"
        time.sleep(0.05)


def _saved(out: Path) -> bool:
    """Whether an epoch's last.pt and best.pt are both written whole (Ultralytics writes
    the same bytes to each, last.pt first; a file that appeared may be mid-write)."""
    for weights in out.glob("runs/*/weights"):
        last, best = weights / "last.pt", weights / "best.pt"
        if best.is_file() and 0 < best.stat().st_size == last.stat().st_size:
            return True
    return False


def _run_dir(out: Path) -> Path:
    (run,) = (p for p in (out / "runs").iterdir() if p.is_dir() and "." not in p.name)
    return run


def _epochs(run: Path) -> list[int]:
    lines = (run / "results.csv").read_text().splitlines()[1:]
    return [int(float(line.split(",")[0])) for line in lines]


@pytest.mark.slow
def test_a_run_killed_mid_training_resumes_and_is_marked_resumed(tmp_path):
    """SIGINT once the first epoch's weights are written: one line, exit 130. The same
    command then resumes (not restarts) and the record, the CSV and the report say the
    run was resumed, with its epochs as run. Ultralytics' output is in the run's
    train.log; the console has effzoo's lines only."""
    out = tmp_path / "out"
    proc = _start(out, 3, tmp_path / "first.log")
    _wait_for(proc, lambda: _saved(out), "last.pt and best.pt")
    # an interrupt that came too late is told from one that was lost (seen once: exit 0)
    assert proc.poll() is None, "the command ended before it was interrupted"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130, "the interrupt was not taken"
    said = (tmp_path / "first.log").read_text().strip().splitlines()
    assert said[-1] == "interrupted", said[-3:]
    run = _run_dir(out)
    assert not (run / "effzoo-compare.json").exists()
    done = _epochs(run) if (run / "results.csv").is_file() else []

    again = _run(out, 3)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "[1/1] resuming yolo11n seed 0 (3 epochs)" in again.stderr
    assert "(resumed, " in again.stderr
    record = json.loads((run / "effzoo-compare.json").read_text())
    assert record["resumed"] is True and len(record["resumed_after"]) == 1
    assert record["epochs_run"] == _epochs(run) and record["epochs_run"][-1] == 3
    assert record["epochs_run"][: len(done)] == done  # the epochs before the kill kept
    csv = (out / "compare.csv").read_text().splitlines()
    head, row = csv[0].split(","), csv[1].split(",")
    assert row[head.index("resumed")] == "1"
    report = (out / "compare.md").read_text()
    assert "| resumed |" in report
    ran = ",".join(map(str, record["epochs_run"]))
    after = record["resumed_after"][0]
    assert f"- yolo11n seed 0: resumed after epoch {after}; epochs as run {ran}" in report
    # Ultralytics' own lines went to the log, not the console
    log = (run / "train.log").read_text()
    assert "Resuming training" in log and "epochs completed" in log
    for line in again.stderr.splitlines():
        assert line.startswith("[effzoo compare] "), line


@pytest.mark.slow
def test_killed_while_validating_a_finished_run_is_validated_again_not_resumed(tmp_path):
    """SIGKILL once training has finished and validation has begun (before the run's
    record): the rerun validates the finished best.pt again; it neither trains nor
    resumes (which fell back to Ultralytics' coco8 before)."""
    out = tmp_path / "out"
    proc = _start(out, 1, tmp_path / "first.log")
    _wait_for(proc, lambda: any(out.glob("runs/*/val")), "validation")
    proc.kill()
    proc.wait(timeout=60)
    run = _run_dir(out)
    if (run / "effzoo-compare.json").exists():
        pytest.skip("the validation finished before the kill landed")
    weights = {p.name: p.stat().st_mtime_ns for p in (run / "weights").glob("*.pt")}

    again = _run(out, 1)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "(validated again, " in again.stderr and "coco8" not in again.stderr
    record = json.loads((run / "effzoo-compare.json").read_text())
    assert record["resumed"] is False and record["epochs_run"] == [1]
    assert {p.name: p.stat().st_mtime_ns for p in (run / "weights").glob("*.pt")} == weights


@pytest.mark.slow
def test_files_cut_short_are_set_aside_and_redone(tmp_path):
    """A truncated run record and timing record: each set aside as ``.damaged`` in one
    line and redone, nothing retrained. A truncated last.pt: the run is set aside, said
    with the file's name, and trained again."""
    out = tmp_path / "out"
    first = _run(out, 1)
    assert first.returncode == 0, first.stderr[-3000:]
    run = _run_dir(out)
    best = (run / "weights" / "best.pt").stat().st_mtime_ns
    marker = run / "effzoo-compare.json"
    (timing,) = (p for p in (out / "timing").glob("*.json") if p.is_file())
    for path in (marker, timing):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    again = _run(out, 1)
    assert again.returncode == 0, again.stderr[-3000:]
    for path in (marker, timing):
        said = [ln for ln in again.stderr.splitlines() if str(path) in ln]
        assert len(said) == 1 and f"{path.name}.damaged" in said[0], again.stderr
        assert path.with_name(path.name + ".damaged").is_file()
        json.loads(path.read_text())  # redone, whole
    assert (run / "weights" / "best.pt").stat().st_mtime_ns == best  # not retrained
    assert "(validated again, " in again.stderr

    last = run / "weights" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    marker.unlink()
    third = _run(out, 1)
    assert third.returncode == 0, third.stderr[-3000:]
    said = [ln for ln in third.stderr.splitlines() if str(last) in ln]
    assert len(said) == 1 and f"{run.name}.damaged" in said[0], third.stderr
    assert (run.parent / f"{run.name}.damaged" / "weights" / "last.pt").is_file()
    record = json.loads(marker.read_text())
    assert record["resumed"] is False and record["epochs_run"] == [1]  # trained anew


@pytest.mark.slow
def test_a_second_compare_into_the_same_out_is_refused_naming_the_first(tmp_path):
    """While one compare writes into --out, another is refused in one line naming the
    first's pid and start; once the first is killed (SIGKILL: no chance to clean up),
    its lock is gone and a compare into the folder runs."""
    out = tmp_path / "out"
    proc = _start(out, 50, tmp_path / "first.log")
    lock = out / ".effzoo-compare.lock"
    _wait_for(proc, lambda: lock.is_file() and lock.read_text().strip(), "lock")
    try:
        second = _run(out, 50)
        assert proc.poll() is None, "the first compare ended before the second was refused"
    finally:
        proc.kill()
        proc.wait(timeout=60)
    lines = second.stderr.strip().splitlines()
    assert second.returncode == 1 and len(lines) == 1, second.stderr[-2000:]
    assert lines[0].startswith(f"effzoo compare: error: --out {out.resolve()} is in use")
    assert f"pid {proc.pid} on " in lines[0] and ", started 20" in lines[0]
    assert "give another --out" in lines[0]
    assert not (out / "runs").exists() or not list(out.glob("runs/*/effzoo-compare.json"))

    third = _run(out, 1)  # the stale lock of the killed one does not block
    assert third.returncode == 0, third.stderr[-3000:]


def test_an_unreachable_ray_address_is_refused_within_seconds(tmp_path):
    """Nothing listens at the address: refused before anything trains, naming the
    address as typed; an empty one and one that is no HOST:PORT are one line each."""
    from effzoo.errors import InvalidArgumentError, RayUnavailableError
    from effzoo.yolo import compare

    data, out = yolo_helpers.tiny_dataset(), tmp_path / "out"
    with socket_without_listener() as port:
        t0 = time.time()
        with pytest.raises(RayUnavailableError, match=rf"^--ray 127\.0\.0\.1:{port}: nothing "):
            compare("yolo11n.yaml", data=data, out=out, epochs=1, ray_address=f"127.0.0.1:{port}")
        assert time.time() - t0 < 30
    with pytest.raises(InvalidArgumentError, match="--ray needs an address"):
        compare("yolo11n.yaml", data=data, out=out, epochs=1, ray_address="")
    assert not out.exists()
    err = _cli_error(["--data", str(data), "--out", str(out), "--ray", "head"])
    assert err.startswith("effzoo compare: error: --ray 'head' is not a Ray address")
    # `--ray` alone is a local Ray (docs/yolo.md), also before a KEY=VALUE: the command
    # line takes it, and the error is the next thing wrong (a misspelt candidate)
    for ray in (["--ray"], ["--ray", "lr0=0.1"]):
        argv = ["--data", str(data), "--out", str(out), "--models", "yolo11nn.yaml", *ray]
        err = _cli_error(argv)
        assert err.startswith("effzoo compare: error: unknown candidate 'yolo11nn.yaml'")


def _cli_error(argv: list[str]) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "effzoo", "compare", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


class socket_without_listener:
    """A loopback port that was bound and released: nothing listens there."""

    def __enter__(self) -> int:
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.mark.slow
def test_a_ray_cluster_that_dies_mid_run_ends_with_effzoo_s_line(tmp_path):
    """The cluster's head stops while a run trains on it: the command ends with effzoo's
    line naming the address and what a rerun does; that rerun, without Ray, resumes."""
    pytest.importorskip("ray")
    # more epochs than can finish while the head shuts down (an epoch here takes under a
    # second, and `ray start --block` may take tens of seconds to stop its processes)
    epochs = 5000
    with socket_without_listener() as port:
        pass
    ray_dir = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths
    env = {**_env(), "HOME": str(tmp_path / "home"), "RAY_USAGE_STATS_ENABLED": "0"}
    ray_bin = str(Path(sys.executable).parent / "ray")
    head = subprocess.Popen(
        [
            ray_bin,
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            f"--temp-dir={ray_dir}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    out = tmp_path / "out"
    try:
        t0 = time.time()
        while not _answers(port):
            assert head.poll() is None and time.time() - t0 < 120, "the Ray head did not start"
            time.sleep(0.5)
        with (tmp_path / "run.log").open("wb") as f:
            proc = subprocess.Popen(
                _cmd(out, epochs, "--ray", f"127.0.0.1:{port}"), stdout=f, stderr=f, env=env
            )
        _wait_for(proc, lambda: _saved(out), "last.pt and best.pt")
        head.terminate()
        head.wait(timeout=120)
        assert proc.wait(timeout=180) == 1
    finally:
        for p in (head, locals().get("proc")):
            if p is not None and p.poll() is None:
                p.kill()
        shutil.rmtree(ray_dir, ignore_errors=True)
    last = (tmp_path / "run.log").read_text().strip().splitlines()[-1]
    assert last.startswith(f"effzoo compare: error: the Ray cluster at 127.0.0.1:{port} failed")
    assert "rerun the same command: finished runs are kept" in last
    # the advice: the same command (here without Ray) resumes the run (stopped there)
    again = _start(out, epochs, tmp_path / "again.log")
    try:
        _wait_for(again, lambda: "resuming" in (tmp_path / "again.log").read_text(), "resume")
    finally:
        again.kill()
        again.wait(timeout=60)
    resumed = (tmp_path / "again.log").read_text()
    assert f"[1/1] resuming yolo11n seed 0 ({epochs} epochs)" in resumed


def _answers(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_the_time_left_takes_each_candidate_s_own_time_per_run():
    """Issue 37: the estimate extrapolated from the fastest model (said 2.3 min, took
    6.6). Each run left counts at its candidate's mean; a candidate not run yet at the
    mean of all; runs at a time divide it."""
    from effzoo.compare.core import _time_left

    took = {"yolo11n": [10.0, 12.0], "efficientnet_b3": [100.0]}
    assert _time_left(took, ["efficientnet_b3", "efficientnet_b3"], 1) == 200.0
    assert _time_left(took, ["yolo11n", "unseen"], 1) == 11.0 + (122.0 / 3)
    assert _time_left(took, ["efficientnet_b3", "yolo11n"], 2) == (100.0 + 11.0) / 2


def _ray_task_pid(tag: str) -> int | None:
    """The pid of a Ray worker running ``train_run`` in this test's Ray (its environment
    carries ``tag``), or None."""
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes()
            if b"ray::train_run" in cmd and tag.encode() in (proc / "environ").read_bytes():
                return int(proc.name)
        except (OSError, ValueError):
            continue
    return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the Ray worker through /proc")
def test_a_killed_ray_worker_is_retried_and_the_run_resumes_marked(tmp_path):
    """SIGKILL to the Ray worker training a run (once its last.pt exists): Ray retries the
    task, which resumes the run; the command ends normally and the run is marked."""
    pytest.importorskip("ray")
    tag = f"effzoo-test-{os.getpid()}-{time.time_ns()}"
    ray_dir = Path(tempfile.mkdtemp(prefix="ew", dir="/tmp"))  # short: Ray's socket paths
    env = {**_env(), "HOME": str(tmp_path / "home"), "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_TMPDIR": str(ray_dir), "EFFZOO_TEST_TAG": tag}  # fmt: skip
    out = tmp_path / "out"
    try:
        with (tmp_path / "run.log").open("wb") as f:
            proc = subprocess.Popen(_cmd(out, 4, "--ray"), stdout=f, stderr=f, env=env)
        _wait_for(proc, lambda: _saved(out), "last.pt and best.pt")
        pid = _ray_task_pid(tag)
        assert pid is not None, "no Ray worker runs train_run"
        os.kill(pid, signal.SIGKILL)
        assert proc.wait(timeout=600) == 0, (tmp_path / "run.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(ray_dir, ignore_errors=True)
    record = json.loads((_run_dir(out) / "effzoo-compare.json").read_text())
    assert record["resumed"] is True and record["epochs_run"][-1] == 4
    assert "(resumed, " in (tmp_path / "run.log").read_text()
