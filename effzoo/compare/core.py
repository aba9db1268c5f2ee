"""``effzoo compare``: candidate detectors trained on the user's data with one budget,
then measured where they will run (``compare()``; the command is ``effzoo compare``).

Every candidate, the data and the runtimes are checked before anything trains. Each
run (a candidate and a seed) lives in a directory named by a hash of what determines
it, with a record of what it gave: a rerun with the same arguments trains and times
nothing again, a changed argument reruns only the runs and timings it changes, and an
interrupted run continues with Ultralytics' resume. Candidates are candidates.py's;
the table, report and plot are report.py's; the work on one run train.py's, the timing
process timing.py's, the runtimes runtimes.py's.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _checks as checks
from .candidates import Candidate, check_candidates, parse_candidates, reference, stock_note
from .checks import DEMO_IMAGES, check_data, check_device, check_train_args
from .runtimes import DEFAULT_RUNTIMES, Runtime, check_runtimes, gpu
from .timing import time_command
from .train import MARKER, export, train_run


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


def _hash(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _say(log: Callable[[str], None] | None, msg: str) -> None:
    if log is not None:
        log(msg)
    else:
        print(f"[effzoo compare] {msg}", file=sys.stderr, flush=True)


def _demo_data(out: Path, imgsz: int) -> str:
    from ..demo.data import make_shapes_dataset

    root = out / "data" / f"demo-{imgsz}"
    data = root / "data.yaml"
    if not data.is_file():
        make_shapes_dataset(root, n_train=DEMO_IMAGES[0], n_val=DEMO_IMAGES[1], imgsz=imgsz)
    return str(data)


def _ray(address: str | None, workers: int, device: str) -> Any:
    """Ray, started (``ray.init()``: a local one, or the cluster at ``address``)."""
    try:
        import ray
    except ImportError:
        checks.fail(f'--workers {workers} runs candidates on Ray: pip install "ray>=2.10"')
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    if gpu(device) and ray.cluster_resources().get("GPU", 0) < 1:
        checks.fail(
            f"--device {device} with Ray: the Ray cluster has no GPU resource; start it "
            "with GPUs (ray start --num-gpus N), or use --device cpu"
        )
    return ray


def _run_dir(job: dict[str, Any]) -> Path:
    return Path(job["project"]) / job["name"]


def _best(job: dict[str, Any]) -> Path:
    return _run_dir(job) / "weights" / "best.pt"


def _train_all(
    jobs: list[dict[str, Any]], workers: int, address: str | None, log: Any
) -> dict[str, dict[str, Any]]:
    """Train every job not finished before (sequentially, or ``workers`` at a time on
    Ray, one GPU each where the device is one), with a progress line per run."""
    done: dict[str, dict[str, Any]] = {}
    todo = []
    for job in jobs:
        marker = Path(job["project"]) / job["name"] / MARKER
        if marker.is_file():
            record = json.loads(marker.read_text(encoding="utf-8"))
            if record.get("key") == job["key"]:  # where it is now (the folder may have moved)
                record.update(run_dir=str(marker.parent), best=str(_best(job)))
                done[job["key"]] = record
                continue
        todo.append(job)
    _say(log, f"{len(jobs)} runs: {len(done)} finished before, {len(todo)} to train")
    t0, finished = time.time(), 0

    def progress(record: dict[str, Any]) -> None:
        nonlocal finished
        finished += 1
        left = (time.time() - t0) / finished * (len(todo) - finished) / max(1, workers)
        _say(
            log,
            f"[{finished}/{len(todo)}] {record['candidate']} seed {record['seed']}: "
            f"mAP50-95 {record['map50_95']:.3f} in {record['train_s']:.0f} s"
            + (f"; about {left / 60:.1f} min left" if finished < len(todo) else ""),
        )

    if not (workers > 1 or address) or not todo:
        for i, job in enumerate(todo):
            last = Path(job["project"]) / job["name"] / "weights" / "last.pt"
            how = "resuming" if last.is_file() else "training"
            _say(
                log,
                f"[{i + 1}/{len(todo)}] {how} {job['candidate']} seed {job['seed']} "
                f"({job['epochs']} epochs)",
            )
            record = train_run(job)
            done[job["key"]] = record
            progress(record)
        return done
    ray = _ray(address, workers, jobs[0]["device"])
    on_gpu = gpu(jobs[0]["device"])
    # the cluster's CPUs shared among the runs at a time (Ray sets each task's threads)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)) // workers)
    task = ray.remote(num_cpus=cpus, num_gpus=1 if on_gpu else 0)(train_run)
    pending: dict[Any, dict[str, Any]] = {}
    queue = list(todo)
    while queue or pending:
        while queue and len(pending) < workers:
            job = queue.pop(0)
            job = {**job, "device": "0" if on_gpu else job["device"]}  # Ray's GPU for the task
            _say(log, f"starting {job['candidate']} seed {job['seed']} on Ray")
            pending[task.remote(job)] = job
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            pending.pop(ref)
            record = ray.get(ref)
            done[record["key"]] = record
            progress(record)
    return done


def _timing(
    artifacts: dict[str, str],
    runtime: Runtime,
    keys: dict[str, str],
    ref: str,
    job: dict[str, Any],
    timing: dict[str, int],
    out: Path,
    log: Any,
    timed: list[str],
) -> dict[str, dict[str, list[list[float]]]]:
    """Per candidate, its times and the reference's, interleaved in a process of their
    own (one per candidate and runtime), cached by a hash of what determines them."""
    result = {}
    for name, artifact in artifacts.items():
        pair = [artifacts[ref]] if name == ref else [artifacts[ref], artifact]
        if name == ref and len(artifacts) > 1:
            continue
        key = _hash([runtime.name, keys[ref], keys[name], job["imgsz"], job["device"], timing])
        path = out / "timing" / f"{runtime.name}-{name}-{key}.json"
        if not path.is_file() or (
            runtime.name.startswith("openvino") and "precision" not in json.loads(path.read_text())
        ):  # (an OpenVINO record from before the precision was kept: timed again)
            _say(log, f"timing {name} against {ref} in {runtime.name} ({timing['rounds']} rounds)")
            cmd = time_command(
                pair, runtime=runtime.name, imgsz=job["imgsz"], device=job["device"], **timing
            )
            proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                raise RuntimeError(f"timing {name} in {runtime.name} failed: {tail[0]}")
            done = json.loads(proc.stdout.strip().splitlines()[-1])
            times, prec = done["times_ms"], done["precision"]
            record = {"ref": times[pair[0]], "cand": times[pair[-1]], "precision": prec[pair[-1]]}
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record))
            timed.append(f"{runtime.name}:{name}")
        result[name] = json.loads(path.read_text())
    return result


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
    rounds: int = 7,
    per_round: int = 3,
    warmup: int = 2,
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
    ``seeds``: runs per candidate (seeds 0..K-1; the spread is reported). ``workers`` > 1
    trains that many runs at a time on Ray (``ray_address``: a cluster; default a local
    one). ``train_args``: more Ultralytics train arguments, the same for every candidate.
    """
    from ..paths import output_dir
    from .report import write_outputs

    for name, value in (
        ("--epochs", epochs),
        ("--batch", batch),
        ("--seeds", seeds),
        ("--workers", workers),
        ("--rounds", rounds),
        ("--per-round", per_round),
    ):
        checks.positive_int(name, value)
    checks.non_negative_int("--warmup", warmup)
    if imgsz is not None:
        checks.positive_int("--imgsz", imgsz)
        if imgsz % 32:
            checks.fail(f"--imgsz must be a multiple of 32 (the P5 stride), got {imgsz}")
    rts = check_runtimes(runtimes, device)
    extra = check_train_args(train_args)  # these: checks.py's, before anything trains
    data_path, data_id = check_data(data)
    check_device(device, remote=bool(ray_address))
    imgsz = imgsz or (640 if data_path else 160)
    wanted = parse_candidates(models)  # every name checked: one line with a close match
    if workers > 1 or ray_address:
        _ray(ray_address, workers, device)  # Ray present (and started) before any training
    root = output_dir("--out", out, example="./effzoo-compare").resolve()
    cands = check_candidates(wanted, root / "models", log=lambda m: _say(log, m))
    data_path = data_path or _demo_data(root, imgsz)
    os.environ.setdefault("YOLO_OFFLINE", "true")

    budget = {"epochs": epochs, "imgsz": imgsz, "batch": batch, "train_args": extra}
    jobs = []
    for c in cands:
        for seed in range(seeds):
            key = _hash([c.identity, data_id, budget, seed])
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
                    "train_args": extra,
                    "epochs": epochs,
                    "imgsz": imgsz,
                    "batch": batch,
                }
            )
    before = {j["key"] for j in jobs if (Path(j["project"]) / j["name"] / MARKER).is_file()}
    records = _train_all(jobs, workers, ray_address, log)
    trained = [j["key"] for j in jobs if j["key"] not in before]

    # exports of each candidate's first seed, then timing: nothing else runs meanwhile
    first = {j["candidate"]: j for j in jobs if j["seed"] == 0}
    ref = reference(cands).name
    timing = {"rounds": rounds, "per_round": per_round, "warmup": warmup}
    exports: dict[str, dict[str, dict[str, Any]]] = {}
    times: dict[str, dict[str, Any]] = {}
    timed: list[str] = []
    one = str(device).split(",")[0]  # exported and timed on one device: the first
    for rt in rts:
        for c in cands:
            job = first[c.name]
            run_dir = _run_dir(job)
            path = run_dir / f"effzoo-export-{rt.name}.json"
            if not path.is_file():
                _say(log, f"exporting {c.name} to {rt.name}")
                made = export(str(_best(job)), rt.name, {**job, "device": one})
                made["artifact"] = os.path.relpath(made["artifact"], run_dir)
                path.write_text(json.dumps(made))
            made = json.loads(path.read_text())
            made["artifact"] = str(run_dir / made["artifact"])
            exports.setdefault(c.name, {})[rt.name] = made
        artifacts = {c.name: exports[c.name][rt.name]["artifact"] for c in cands}
        keys = {c.name: first[c.name]["key"] for c in cands}
        at = {**first[ref], "device": one}
        times[rt.name] = _timing(artifacts, rt, keys, ref, at, timing, root, log, timed)

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
        "reference": ref,
        "stock_note": stock_note(cands),  # stock rows from scratch: said near the report's top
        "timing": timing,
        "train_args": extra,
        "workers": workers,
        "ray": ray_address,
    }
    result = write_outputs(root, cands, runs, exports, times, settings)
    _say(log, f"wrote {result['csv']}, {result['report']}")
    return Comparison(
        table=result["table"],
        out=root,
        csv=result["csv"],
        report=result["report"],
        plot=result["plot"],
        recommendation=result["recommendation"],
        trained=trained,
        timed=timed,
    )


__all__ = ["DEFAULT_RUNTIMES", "Candidate", "Comparison", "compare"]
