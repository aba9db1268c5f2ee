"""``effzoo compare``: candidate detectors trained on the user's data with one budget,
then measured where they will run (``compare()``; the command is ``effzoo compare``).

Every candidate, the data and the runtimes are checked before anything trains. Each
run (a candidate and a seed) lives in a directory named by a hash of what determines
it, with a record of what it gave: a rerun with the same arguments trains and times
nothing again, a changed argument reruns only the runs and timings it changes, and an
interrupted run continues with Ultralytics' resume.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _checks as checks
from .._atomic import read_record, write_json
from ..errors import OutputInUseError, RayUnavailableError
from .candidates import Candidate, check_candidates, parse_candidates, reference, stock_note
from .checks import DEMO_IMAGES, check_data, check_device, check_train_args, option
from .measure import measure, record_key
from .runtimes import DEFAULT_RUNTIMES, check_runtimes, gpu
from .train import MARKER, TO_NODE, folder_files, run_folder, train_on_node, train_run, write_files


@dataclass
class Comparison:
    """What ``compare()`` measured: the table (one dict per candidate, the CSV's rows)
    and where everything was written. ``trained`` and ``timed``: what this call ran
    (empty on a rerun with the same arguments)."""

    table: list[dict[str, Any]]
    out: Path
    csv: Path
    report: Path
    plot: Path | None
    recommendation: str
    trained: list[str] = field(default_factory=list)
    timed: list[str] = field(default_factory=list)


def _sayer(log: Callable[[str], None] | None) -> Callable[[str], None]:
    """Where compare's lines go: ``log``, else stderr after ``[effzoo compare]``."""
    if log is not None:
        return log
    return lambda msg: print(f"[effzoo compare] {msg}", file=sys.stderr, flush=True)


def _demo_data(out: Path, imgsz: int) -> str:
    from ..demo.data import make_shapes_dataset

    root = out / "data" / f"demo-{imgsz}"
    data = root / "data.yaml"
    if not data.is_file():
        make_shapes_dataset(root, n_train=DEMO_IMAGES[0], n_val=DEMO_IMAGES[1], imgsz=imgsz)
    return str(data)


def _reachable(address: str) -> None:
    """A Ray address (``HOST:PORT`` or ``ray://HOST:PORT``) that answers within seconds;
    else one ``RayUnavailableError`` naming the address as typed."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        checks.fail(
            f"--ray {address!r} is not a Ray address: give HOST:PORT of the cluster's head "
            "(ray start --head prints it), ray://HOST:PORT, or --ray alone for a local Ray"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_CONNECT_S).close()
    except OSError as e:
        raise RayUnavailableError(
            f"--ray {address}: nothing answers there ({e.strerror or e or 'timed out'}); "
            f"start the cluster (ray start --head --port {port}) or check the address, or "
            "give --ray alone for a local Ray"
        ) from None


def _ray(address: str | None, workers: int, device: str) -> Any:
    """Ray, started (``ray.init()``: a local one for None or ``"local"``, or the cluster at
    ``address``, checked to answer first)."""
    try:
        import ray
    except ImportError:
        checks.fail(f'--workers {workers} runs candidates on Ray: pip install "ray>=2.10"')
    if address is not None and not address.strip():
        checks.fail("--ray needs an address (HOST:PORT of a Ray head), or give --ray alone")
    if not ray.is_initialized():
        if address not in (None, "local", "auto"):
            _reachable(address)
        try:
            ray.init(address=address, log_to_driver=False)
        except (ConnectionError, TimeoutError, RuntimeError) as e:
            first = (str(e).splitlines() or [type(e).__name__])[0]
            raise RayUnavailableError(
                f"--ray {address}: Ray could not join the cluster there ({first}); check "
                "that it runs the same Ray and Python as here, or give --ray alone"
            ) from e
    if gpu(device) and ray.cluster_resources().get("GPU", 0) < 1:
        checks.fail(
            f"--device {device} with Ray: the Ray cluster has no GPU resource; start it "
            "with GPUs (ray start --num-gpus N), or use --device cpu"
        )
    return ray


def _gone(ray: Any, address: str | None, left: int, why: str) -> RayUnavailableError:
    """effzoo's line on a cluster lost mid-run, Ray shut down first (so that Ray's own
    lines on the lost tasks come before it, not after)."""
    ray.shutdown()
    return RayUnavailableError(
        f"the Ray cluster at {address or 'started here'} failed mid-run ({why}; {left} runs "
        "not finished): start it again (or leave --ray out) and rerun the same command: "
        "finished runs are kept, unfinished ones resume from their last.pt"
    )


def _wait(ray: Any, pending: list[Any], address: str | None, left: int) -> list[Any]:
    """``ray.wait`` for one finished task, checking meanwhile that the cluster's head still
    answers: one that went away is effzoo's line (Ray's own ends the process later)."""
    gcs = ray.get_runtime_context().gcs_address
    while True:
        ready, _ = ray.wait(pending, num_returns=1, timeout=RAY_CONNECT_S)
        if ready:
            return ready
        try:
            _reachable(gcs)
        except RayUnavailableError:
            raise _gone(ray, address, left, f"its head at {gcs} no longer answers") from None


#: the lock file in ``--out``: one ``compare`` writes into a folder at a time
LOCK = ".effzoo-compare.lock"
#: seconds a Ray head has to answer a connection
RAY_CONNECT_S = 5.0
_HELD: ContextVar[contextlib.ExitStack] = ContextVar("effzoo_compare_locks")


def _holds_out_lock(fn: Callable[..., Comparison]) -> Callable[..., Comparison]:
    """``compare`` keeps the ``--out`` lock it takes (``_lock_out``) until it returns or
    raises."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Comparison:
        with contextlib.ExitStack() as held:  # closing the lock file drops its lock
            token = _HELD.set(held)
            try:
                return fn(*args, **kwargs)
            finally:
                _HELD.reset(token)

    return call


def _lock_out(root: Path) -> None:
    """Take ``root``'s lock (an ``flock`` on ``LOCK``, which the system drops when its
    process ends, crash or not) and write who holds it; a folder another process holds
    is one ``OutputInUseError`` naming that process."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        return
    root.mkdir(parents=True, exist_ok=True)
    f = (root / LOCK).open("a+", encoding="utf-8")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "a process that has not said who it is"
        f.close()
        raise OutputInUseError(
            f"--out {root} is in use by another effzoo compare ({holder}): wait until it "
            "ends and rerun the same command (it keeps what that one finished), or give "
            "another --out"
        ) from None
    f.seek(0)
    f.truncate()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    f.write(f"pid {os.getpid()} on {socket.gethostname()}, started {started}\n")
    f.flush()
    _HELD.get().enter_context(f)


def _time_left(took: dict[str, list[float]], runs: list[str], workers: int) -> float:
    """Seconds the ``runs`` (their candidates' names) still need: each at its candidate's
    mean over its finished runs (``took``), one not seen yet at the mean of all."""
    every = [t for ts in took.values() for t in ts]
    mean = {c: sum(ts) / len(ts) for c, ts in took.items() if ts}
    default = sum(every) / len(every) if every else 0.0
    return sum(mean.get(c, default) for c in runs) / max(1, workers)


def _train_all(
    jobs: list[dict[str, Any]], workers: int, address: str | None, say: Callable[[str], None]
) -> dict[str, dict[str, Any]]:
    """Train every job not finished before (sequentially, or ``workers`` at a time on
    Ray, one GPU each where the device is one), with a progress line per run."""
    done: dict[str, dict[str, Any]] = {}
    todo = []
    for job in jobs:
        marker = run_folder(job) / MARKER
        record = read_record(marker, say)  # a damaged one is set aside
        if record is not None and record.get("key") == job["key"]:
            run_dir = marker.parent  # where it is now (the folder may have moved)
            record.update(run_dir=str(run_dir), best=str(run_dir / "weights" / "best.pt"))
            done[job["key"]] = record
        else:
            todo.append(job)
    say(f"{len(jobs)} runs: {len(done)} finished before, {len(todo)} to train")
    took: dict[str, list[float]] = {}  # seconds per finished run, by candidate

    def progress(record: dict[str, Any]) -> None:
        done[record["key"]] = record
        for note in record.get("notes", []):
            say(note)
        took.setdefault(record["candidate"], []).append(record.get("wall_s", record["train_s"]))
        finished = sum(map(len, took.values()))
        left = _time_left(took, [j["candidate"] for j in todo if j["key"] not in done], workers)
        how = {"unfinished": "resumed, ", "finished": "validated again, "}.get(
            record.get("state", ""), ""
        )
        say(
            f"[{finished}/{len(todo)}] {record['candidate']} seed {record['seed']}: "
            f"mAP50-95 {record['map50_95']:.3f} ({how}{record['train_s']:.0f} s of training)"
            + (f"; about {left / 60:.1f} min left" if finished < len(todo) else ""),
        )

    if not (workers > 1 or address is not None) or not todo:
        for i, job in enumerate(todo):
            how = "resuming" if (run_folder(job) / "weights" / "last.pt").is_file() else "training"
            say(
                f"[{i + 1}/{len(todo)}] {how} {job['candidate']} seed {job['seed']} "
                f"({job['epochs']} epochs)",
            )
            progress(train_run(job))
        return done
    ray = _ray(address, workers, jobs[0]["device"])
    on_gpu = gpu(jobs[0]["device"])
    # the cluster's CPUs shared among the runs at a time (Ray sets each task's threads)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)) // workers)
    cluster = address not in (None, "local")  # nodes that may not see --out: train_on_node
    run = train_on_node if cluster else train_run
    task = ray.remote(num_cpus=cpus, num_gpus=1 if on_gpu else 0)(run)
    pending: dict[Any, dict[str, Any]] = {}
    queue = list(todo)
    while queue or pending:
        while queue and len(pending) < workers:
            job = queue.pop(0)
            job = {**job, "device": "0" if on_gpu else job["device"]}  # Ray's GPU for the task
            say(f"starting {job['candidate']} seed {job['seed']} on Ray")
            if not cluster:
                pending[task.remote(job)] = job
                continue
            root = Path(job["project"]).parent
            files = folder_files(run_folder(job), TO_NODE)
            pending[task.remote(job, (str(root / LOCK), _out_token(root)), files, _cfg(job))] = job
        left = len(queue) + len(pending)
        try:
            ready = _wait(ray, list(pending), address, left)
            record = ray.get(ready[0])
        except ray.exceptions.RayTaskError as e:  # the task's own error, as itself
            raise e.cause if isinstance(e.cause, Exception) else e from None
        except ray.exceptions.RayError as e:  # a raylet, node or worker (after retries) lost
            first = (str(e).splitlines() or [""])[0]
            raise _gone(ray, address, left, f"{type(e).__name__}: {first}") from None
        progress(_land(pending.pop(ready[0]), record))
    return done


def _out_token(root: Path) -> str:
    """What a Ray node finds in ``--out``'s lock file where it sees ``--out`` (a shared
    file system): the line this process wrote there; "" where there is none."""
    try:
        return (root / LOCK).read_text(encoding="utf-8")
    except OSError:
        return ""


def _cfg(job: dict[str, Any]) -> tuple[str, bytes]:
    """The candidate's file (a yaml or a checkpoint here) as (name, bytes) for a node that
    does not see it; ``("", b"")`` for a name Ultralytics resolves on the node."""
    path = Path(job["cfg"])
    return (path.name, path.read_bytes()) if path.is_file() else ("", b"")


def _land(job: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """A run a node trained without seeing ``--out`` (its ``"files"``): written into its
    folder here, each file whole, what the node's run no longer has removed, the record
    last (with the paths here and where it trained). A run trained in ``--out`` as is."""
    files = record.pop("files", None)
    if files is None:
        return record
    run_dir = run_folder(job)
    for rel in TO_NODE:
        if rel not in files:
            (run_dir / rel).unlink(missing_ok=True)
    marker = json.loads(files.pop(MARKER))
    write_files(run_dir, files)
    best = run_dir / "weights" / "best.pt"
    where = {"run_dir": str(run_dir), "best": str(best), "trained_on": record["trained_on"]}
    write_json(run_dir / MARKER, {**marker, **where}, indent=2)
    return {**record, **where}


def _sizes(deploy_imgsz: Sequence[int] | int | str | None, imgsz: int) -> list[int]:
    """The deploy sizes: each a positive multiple of 32, none twice; default the
    training size."""
    if deploy_imgsz is None:
        return [imgsz]
    items = deploy_imgsz.split(",") if isinstance(deploy_imgsz, str) else deploy_imgsz
    items = [items] if isinstance(items, int) else list(items)
    sizes = []
    for item in items:
        try:
            size = int(str(item).strip())
        except ValueError:
            size = 0
        if size <= 0 or size % 32:
            checks.fail(
                f"--deploy-imgsz takes sizes that are positive multiples of 32 (the P5 "
                f"stride), comma-separated, e.g. 320,640; got {item!r}"
            )
        if size in sizes:
            checks.fail(f"--deploy-imgsz names {size} twice")
        sizes.append(size)
    if not sizes:
        checks.fail("--deploy-imgsz needs one or more sizes, e.g. 320,640")
    return sizes


@_holds_out_lock
def compare(
    models: Sequence[str] | str | None = None,
    *,
    data: str | os.PathLike[str] | None = None,
    epochs: int = 20,
    imgsz: int | None = None,
    batch: int = 16,
    seeds: int = 1,
    runtimes: Sequence[str] | str = DEFAULT_RUNTIMES,
    device: str = "cpu",
    workers: int = 1,
    ray_address: str | None = None,
    out: str | os.PathLike[str] = "effzoo-compare",
    deploy_imgsz: Sequence[int] | int | str | None = None,
    rounds: int = 5,
    processes: int = 3,
    per_round: int = 3,
    warmup: int = 2,
    timing_budget: float = 120.0,
    train_args: Mapping[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> Comparison:
    """Train ``models`` on ``data`` with the same budget, time them in ``runtimes`` and
    write the table, report and plot into ``out``; return the table.

    ``models``: Ultralytics or effzoo model names (``yolo11n.yaml``, ``yolo26n-efflite0.yaml``),
    yaml files, or an effzoo row ``VARIANT[:wWIDTH][:dDEPTH][:scratch][:FAMILY]``
    (``efficientnet_lite0:w0.5``: ImageNet weights inherited at width 0.5); default: the
    grid in ``candidates.DEFAULT_GRID``. ``data``: an Ultralytics data yaml (default: the
    demo data, generated). ``imgsz``: default 160 on the demo data, else 640.
    ``seeds``: runs per candidate (seeds 0..K-1; the spread is reported).
    ``deploy_imgsz``: the sizes the artifacts are exported and timed at (default: the
    training size). Timing: each artifact in ``processes`` fresh processes at least, each
    ``rounds`` rounds of ``per_round`` calls after ``warmup`` calls; more processes until
    every latency ratio is within about ±5% at 95%, for at most ``timing_budget`` seconds
    per runtime and size. ``workers`` > 1 trains that many runs at a time on Ray
    (``ray_address``: a cluster; default a local one). ``train_args``: more Ultralytics
    train arguments, the same for every candidate.
    """
    from ..paths import output_dir
    from .report import write_outputs

    say = _sayer(log)
    for name, value in (  # named as the caller spells them (checks.option): --epochs, epochs
        ("epochs", epochs),
        ("batch", batch),
        ("seeds", seeds),
        ("workers", workers),
        ("rounds", rounds),
        ("processes", processes),
        ("per_round", per_round),
    ):
        checks.positive_int(option(name), value)
    checks.non_negative_int(option("warmup"), warmup)
    if not timing_budget > 0:
        checks.fail(
            f"{option('timing_budget')} must be a positive number of seconds, got {timing_budget}"
        )
    if imgsz is not None:
        checks.positive_int(option("imgsz"), imgsz)
        if imgsz % 32:
            checks.fail(f"{option('imgsz')} must be a multiple of 32 (the P5 stride), got {imgsz}")
    rts = check_runtimes(runtimes, device)
    extra = check_train_args(train_args)  # these: checks.py's, before anything trains
    data_path, data_id = check_data(data)
    check_device(device, remote=bool(ray_address))
    imgsz = imgsz or (640 if data_path else 160)
    sizes = _sizes(deploy_imgsz, imgsz)
    wanted = parse_candidates(models)  # every name checked: one line with a close match
    if workers > 1 or ray_address is not None:
        _ray(ray_address, workers, device)  # Ray present (and started) before any training
    root = output_dir("--out", out, example="./effzoo-compare").resolve()
    _lock_out(root)  # one compare per --out (released when this call ends)
    cands = check_candidates(wanted, root / "models", log=say)
    data_path = data_path or _demo_data(root, imgsz)
    os.environ.setdefault("YOLO_OFFLINE", "true")

    budget = {"epochs": epochs, "imgsz": imgsz, "batch": batch, "train_args": extra}
    jobs = []
    for c in cands:
        for seed in range(seeds):
            key = record_key([c.identity, data_id, budget, seed])
            jobs.append(
                {
                    "key": key,
                    "candidate": c.name,
                    "cfg": c.cfg,
                    "data": data_path,
                    "seed": seed,
                    "device": str(device),
                    "project": str(root / "runs"),
                    "name": f"{c.name}-seed{seed}-{key[:8]}",
                    **budget,
                }
            )
    before = {j["key"] for j in jobs if read_record(run_folder(j) / MARKER, say) is not None}
    records = _train_all(jobs, workers, ray_address, say)
    trained = [j["key"] for j in jobs if j["key"] not in before]

    # exports of each candidate's first seed, then timing: nothing else runs meanwhile
    first = {j["candidate"]: j for j in jobs if j["seed"] == 0}
    ref = reference(cands).name
    timing = {
        "rounds": rounds,
        "processes": processes,
        "per_round": per_round,
        "warmup": warmup,
        "budget_s": float(timing_budget),
    }
    exports, times, timed = measure(cands, first, rts, sizes, ref, timing, root, str(device), say)

    runs = {c.name: [records[j["key"]] for j in jobs if j["candidate"] == c.name] for c in cands}
    settings = {
        "data": data_path,
        "demo_data": data is None,
        "epochs": epochs,
        "imgsz": imgsz,
        "batch": batch,
        "seeds": seeds,
        "device": str(device),
        "runtimes": [rt.name for rt in rts],
        "deploy_imgsz": sizes,
        "reference": ref,
        "stock_note": stock_note(cands),  # stock rows from scratch: said near the report's top
        "timing": timing,
        "train_args": extra,
        "workers": workers,
        "ray": ray_address,
    }
    result = write_outputs(root, cands, runs, exports, times, settings)
    say(f"wrote {result['csv']}, {result['report']}")
    return Comparison(out=root, trained=trained, timed=timed, **result)


__all__ = ["DEFAULT_RUNTIMES", "Candidate", "Comparison", "compare"]
