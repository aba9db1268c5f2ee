"""How ``effzoo compare`` times its artifacts: each one in processes of its own, the
processes interleaved in rounds, until every ratio to the reference is known to about
±5% (or the time budget ends); docs/yolo.md, "Timing that states its own precision",
says why.

A worker (``python -m effzoo.compare.timing worker ...``) opens one artifact with its
runtime's own API and default threads (``runtimes.Runtime.open``), says it is ready
(with the precision the runtime chose), then answers "time N" on stdin with N timed
calls of the raw forward, no pre- or post-processing (a JSON list of ms), on stdout,
each turn after ``--warmup`` untimed calls. The driver (``time_artifacts``) asks the
workers in turn, in a shuffled order per round, one at a time with a pause between
(a runtime's spinning thread pool goes idle); after ``rounds`` rounds fresh workers
start, since processes, not rounds, are the replicates the intervals are made of.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import stats
from .runtimes import RUNTIMES

#: how the timer works (part of a timing record's key: a record made another way is
#: timed again): 2 = a warm-up at the start of every turn; 3 = ONNX Runtime and OpenVINO
#: through their own APIs, not AutoBackend; 4 = fresh processes every ``rounds`` rounds,
#: intervals over processes, ratios paired by round
METHOD = 4
#: the relative half-width of a ratio's 95% interval the timer keeps going for
TARGET = 0.05
#: seconds between two workers' turns (ONNX Runtime's pool spins a few ms after a call)
PAUSE_S = 0.05


@dataclass
class Timing:
    """Per artifact, the median call (ms) of each round, and per round the process it was
    timed in (``process``: 0, 1, ..., the same for every artifact); the load of the
    machine meanwhile (``load``: the 1-minute load average before and after;
    ``other_cpus``: the CPUs other processes used while the workers timed, on average);
    each artifact's precision."""

    rounds_ms: dict[str, list[float]]
    precision: dict[str, str | None]
    process: list[int] = field(default_factory=list)
    load: dict[str, float] = field(default_factory=dict)
    other_cpus: float = 0.0
    seconds: float = 0.0
    complete: bool = True


# -- the worker ----------------------------------------------------------------------------


def _worker(args: argparse.Namespace) -> int:
    # the protocol on a private copy of stdout; whatever else writes to stdout (a runtime,
    # a logger holding the stream) lands on stderr
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    import numpy as np

    rt = RUNTIMES[args.runtime]
    x = np.random.default_rng(0).random((1, 3, args.imgsz, args.imgsz), dtype=np.float32)
    with contextlib.redirect_stdout(io.StringIO()):
        opened = rt.open(args.artifact, args.device, x)
    for _ in range(args.warmup):
        opened.call()
    print(json.dumps({"ready": True, "precision": opened.precision}), file=out, flush=True)
    for line in sys.stdin:
        n = int(line.split()[1]) if line.startswith("time ") else 0
        if n <= 0:
            break
        for _ in range(args.warmup):  # each turn warm, as a deployment runs it: the
            opened.call()  # other processes' turns left its caches and threads cold
        calls = []
        for _ in range(n):
            t = time.perf_counter()
            opened.call()
            calls.append((time.perf_counter() - t) * 1e3)
        print(json.dumps(calls), file=out, flush=True)
    return 0


def worker_command(
    artifact: str, *, runtime: str, imgsz: int, device: str, warmup: int
) -> list[str]:
    """The command line of the worker that times ``artifact``."""
    return [
        sys.executable,
        "-m",
        "effzoo.compare.timing",
        "worker",
        f"--runtime={runtime}",
        f"--imgsz={imgsz}",
        f"--device={device}",
        f"--warmup={warmup}",
        artifact,
    ]


# -- the driver ----------------------------------------------------------------------------


class TimingError(RuntimeError):
    """A worker that could not load or run its artifact."""


def _read(proc: subprocess.Popen[str], artifact: str) -> Any:
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:
        err = proc.stderr.read() if proc.stderr else ""
        tail = [ln for ln in err.strip().splitlines() if ln.strip()][-1:] or ["no output"]
        raise TimingError(f"timing {artifact} failed: {tail[0]}")
    return json.loads(line)


def _cpu_seconds(pids: Sequence[int]) -> tuple[float, float]:
    """(all CPUs' busy seconds, the busy seconds of ``pids`` and this process)."""
    import psutil

    t = psutil.cpu_times()
    busy = sum(getattr(t, k, 0.0) for k in ("user", "system", "nice", "irq", "softirq", "steal"))
    own = 0.0
    for pid in (os.getpid(), *pids):
        with contextlib.suppress(Exception):
            c = psutil.Process(pid).cpu_times()
            own += c.user + c.system
    return busy, own


def _start(
    artifacts: Sequence[str], runtime: str, imgsz: int, device: str, warmup: int
) -> tuple[dict[str, subprocess.Popen[str]], dict[str, str | None]]:
    """One worker per artifact, loaded side by side (before any timing), and their
    precisions once all are ready."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs: dict[str, subprocess.Popen[str]] = {}
    for a in artifacts:
        cmd = worker_command(a, runtime=runtime, imgsz=imgsz, device=device, warmup=warmup)
        procs[a] = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env,
        )  # fmt: skip
    try:
        return procs, {a: _read(procs[a], a)["precision"] for a in artifacts}
    except BaseException:
        _stop(procs)
        raise


def _stop(procs: dict[str, subprocess.Popen[str]]) -> None:
    for p in procs.values():
        with contextlib.suppress(Exception):
            p.stdin.close()  # type: ignore[union-attr]  # a worker stops at the end of stdin
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def time_artifacts(
    artifacts: Sequence[str],
    *,
    runtime: str,
    imgsz: int,
    device: str,
    rounds: int,
    per_round: int,
    warmup: int,
    budget_s: float,
    processes: int = 3,
    log: Callable[[str], None] = lambda m: None,
) -> Timing:
    """``artifacts`` (the reference first) timed in ``processes`` fresh processes each at
    least, ``rounds`` rounds in each, more processes until each ratio to the first is
    within ±``TARGET`` at 95% or ``budget_s`` seconds have gone (after the first
    ``processes``)."""
    rounds_ms: dict[str, list[float]] = {a: [] for a in artifacts}
    process: list[int] = []
    load = {"before": os.getloadavg()[0]}
    other = timed = 0.0
    t0, rng, g = time.monotonic(), random.Random(0), 0
    while True:
        procs, precision = _start(artifacts, runtime, imgsz, device, warmup)
        try:
            pids = [p.pid for p in procs.values()]
            cpu0, own0, w0 = *_cpu_seconds(pids), time.monotonic()
            order = list(artifacts)
            for _ in range(rounds):
                rng.shuffle(order)
                for a in order:
                    time.sleep(PAUSE_S)
                    procs[a].stdin.write(f"time {per_round}\n")  # type: ignore[union-attr]
                    procs[a].stdin.flush()  # type: ignore[union-attr]
                    rounds_ms[a].append(stats.median(_read(procs[a], a)))
                process.append(g)
            cpu1, own1 = _cpu_seconds(pids)
            timed += time.monotonic() - w0
            other += max(0.0, (cpu1 - cpu0) - (own1 - own0))
        finally:
            _stop(procs)
        g += 1
        if g < processes:
            continue
        ref = rounds_ms[artifacts[0]]
        wide = [a for a in artifacts[1:] if not _narrow(rounds_ms[a], ref, process)]
        if not wide or time.monotonic() - t0 > budget_s:
            break
        log(f"{runtime}: {len(wide)} ratio(s) wider than ±{TARGET:.0%} after {g} processes")
    load["after"] = os.getloadavg()[0]
    return Timing(
        rounds_ms, precision, process, load=load, other_cpus=round(other / max(timed, 1e-9), 2),
        seconds=round(time.monotonic() - t0, 1), complete=not wide,
    )  # fmt: skip


def _narrow(cand: list[float], ref: list[float], process: list[int]) -> bool:
    est, lo, hi = stats.ratio_interval(cand, ref, process)
    return (hi - lo) / 2 <= TARGET * est


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m effzoo.compare.timing")
    p.add_argument("mode", choices=["worker"])
    p.add_argument("--runtime", default="pytorch", choices=list(RUNTIMES))
    p.add_argument("--imgsz", type=int, required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("artifact")
    return _worker(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
