"""The work of ``effzoo compare`` on one candidate: train (or resume) one seed, validate,
and export to a runtime.

``train_run`` takes and returns plain data, so it runs the same in this process and as
a Ray task (``train_on_node`` on a cluster whose nodes may not see ``--out``).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .._atomic import set_aside, write_bytes, write_json
from ..errors import DataNotFoundError
from .runtimes import RUNTIMES, ultralytics_ready
from .stats import Matches

#: the file in each run directory that says the run finished, and what it gave
MARKER = "effzoo-compare.json"
#: the file in a run directory that lists its resumes (the epoch each continued after)
RESUMES = "effzoo-resumed.json"
#: the folder under a Ray node's temp directory where it trains the runs of a driver
#: whose ``--out`` it does not see (no shared file system)
NODE_DIR = "effzoo-compare"
#: what of a run's folder on the driver a node needs to resume it or validate it again
TO_NODE = ("weights/last.pt", "weights/best.pt", "results.csv", "args.yaml", "train.log", RESUMES)


def run_folder(job: dict[str, Any]) -> Path:
    """The run's directory (Ultralytics' ``project/name``)."""
    return Path(job["project"]) / job["name"]


def validate(model_path: str, job: dict[str, Any], name: str) -> dict[str, Any]:
    """mAP of a trained model or an exported artifact on the validation split, the same
    way for every one of them (Ultralytics' ``val`` with the comparison's settings)."""
    from ultralytics import YOLO

    model = YOLO(model_path, task="detect")
    seen: list[list[dict[str, Any]]] = []
    model.add_callback("on_val_batch_end", lambda v: seen.append(per_image_stats(v)))
    run_dir = run_folder(job)
    with contextlib.redirect_stdout(io.StringIO()):
        val = model.val(
            data=job["data"],
            imgsz=job["imgsz"],
            batch=job["batch"],
            device=job["device"],
            plots=False,
            verbose=False,
            project=str(run_dir),  # inside the run's directory
            name=name,
            exist_ok=True,
        )
    found = {"map50_95": float(val.box.map), "map50": float(val.box.map50)}
    if seen and seen[-1]:  # the per-image matches: mAP intervals over validation images
        Matches.from_stats(seen[-1]).save(run_dir / f"{name}-matches.npz")
        found["matches"] = f"{name}-matches.npz"
    return found


def per_image_stats(validator: Any) -> list[dict[str, Any]]:
    """The validator's statistics so far, one dict per image (tp, conf, pred_cls,
    target_cls): ``validator.metrics.stats`` (Ultralytics 8.4) or ``validator.stats``
    (8.3), lists of per-image arrays. Seam ``DetectionValidator.stats`` (optional,
    effzoo/yolo/seams.py): without it the intervals are over seeds only."""
    stats = getattr(getattr(validator, "metrics", None), "stats", None)
    if not isinstance(stats, dict) or "tp" not in stats:
        stats = getattr(validator, "stats", None)
    keys = ("tp", "conf", "pred_cls", "target_cls")
    if not isinstance(stats, dict) or not all(isinstance(stats.get(k), list) for k in keys):
        return []
    return [dict(zip(keys, row)) for row in zip(*(list(stats[k]) for k in keys))]


def _results(run_dir: Path) -> list[dict[str, str]]:
    """``results.csv``'s rows (one per epoch as run: a resumed run may list one twice)."""
    path = run_dir / "results.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [{k.strip(): v.strip() for k, v in r.items() if k} for r in csv.DictReader(f)]


def _last_loss(rows: list[dict[str, str]]) -> float | None:
    """The last epoch's training box loss: what two runs with the same seed should agree
    on, whether or not the model has learnt to find anything yet."""
    return float(rows[-1]["train/box_loss"]) if rows and "train/box_loss" in rows[-1] else None


def _csv_seconds(rows: list[dict[str, str]]) -> float:
    """Training seconds ``results.csv`` counts (its clock restarts at each resume)."""
    total = last = 0.0
    for r in rows:
        t = float(r.get("time") or 0)
        total += t if t < last else t - last
        last = t
    return total


def _provenance(model: Any) -> str:
    for layer in getattr(model, "model", []):
        found = getattr(layer, "provenance", None)
        if found is not None:
            return str(found)
    return ""


def _checkpoint(path: Path) -> dict[str, Any] | str:
    """The checkpoint at ``path``, or why it cannot be read (cut short by a kill)."""
    from ultralytics.utils.patches import torch_load

    try:
        ckpt = torch_load(path, map_location="cpu")
    except Exception as e:  # a truncated zip, pickle or tensor: torch raises any of them
        first = (str(e).splitlines() or [""])[0].split(". ")[0]  # torch's advice follows
        return f"{type(e).__name__}: {first}".strip(": ")
    return ckpt if isinstance(ckpt, dict) else f"holds a {type(ckpt).__name__}, not a checkpoint"


def _state(run_dir: Path, epochs: int, notes: list[str]) -> tuple[str, int]:
    """What ``run_dir`` holds: ``"new"``, ``"unfinished"`` (resume it) or ``"finished"``
    (validate it again), and the epochs its ``last.pt`` has done. A ``last.pt`` or
    ``best.pt`` that cannot be read is no state to go on: the run's directory is set
    aside (``<run>.damaged``), said in ``notes``, and the run starts anew."""
    last, best = run_dir / "weights" / "last.pt", run_dir / "weights" / "best.pt"
    if not last.is_file():  # (Ultralytics' fresh run drops a results.csv left there)
        (run_dir / RESUMES).unlink(missing_ok=True)
        return "new", 0
    ckpt = _checkpoint(last)
    if isinstance(ckpt, dict):
        epochs = int((ckpt.get("train_args") or {}).get("epochs") or epochs)
        done = ckpt.get("epoch")  # -1: stripped by Ultralytics' final step
        finished = done is None or done < 0 or done + 1 >= epochs
        ckpt = _checkpoint(best) if best.is_file() else ("missing" if finished else {})
        if not isinstance(ckpt, str):
            return ("finished", epochs) if finished else ("unfinished", int(done) + 1)
        last = best
    moved = set_aside(run_dir)
    notes.append(
        f"{last} cannot be read ({ckpt}; a kill mid-write?): the run is set aside as "
        f"{moved.name} and trained again"
    )
    return "new", 0


@contextlib.contextmanager
def _to_log(path: Path) -> Iterator[None]:
    """Ultralytics' output (its logger at INFO whatever YOLO_VERBOSE says, progress bars,
    prints) into ``path``, not the console: the console gets one line per run from
    ``compare``."""
    from ultralytics.utils import LOGGER

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        streams = [h for h in LOGGER.handlers if isinstance(h, logging.StreamHandler)]
        before = [(h.setStream(f), h.level) for h in streams], LOGGER.level
        for h in [*streams, LOGGER]:
            h.setLevel(logging.INFO)
        try:
            with contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
                yield
        finally:
            for h, (stream, level) in zip(streams, before[0]):
                h.setStream(stream)
                h.setLevel(level)
            LOGGER.setLevel(before[1])


def train_run(job: dict[str, Any]) -> dict[str, Any]:
    """Train one candidate with one seed (``job``: cfg, data, epochs, imgsz, batch, seed,
    device, project, name, key, train_args); or resume an unfinished run from its
    ``last.pt`` with Ultralytics' resume, or validate a finished one whose record is
    missing; validate ``best.pt``; return and write the run's record. Ultralytics'
    output goes to the run's ``train.log``.

    A resumed run cannot give the uninterrupted run's numbers on stock Ultralytics
    (docs/yolo.md, "Crashes, kills": no random state in ``last.pt``, and the gradients
    accumulated across an epoch's end hang on ``last_opt_step``, a local of
    ``BaseTrainer._do_train``), so its record says so (``resumed``, ``epochs_run``)."""
    ultralytics_ready()
    import torch
    from ultralytics import YOLO
    from ultralytics.utils.torch_utils import get_flops

    run_dir = run_folder(job)
    last, best = run_dir / "weights" / "last.pt", run_dir / "weights" / "best.pt"
    notes: list[str] = []
    state, done = _state(run_dir, job["epochs"], notes)
    t0, before = time.time(), 0.0
    resumes = run_dir / RESUMES
    with _to_log(run_dir / "train.log"):
        if state == "unfinished":  # an interrupted run: Ultralytics' own resume
            before = _csv_seconds(_results(run_dir))
            write_json(resumes, [*_resumes(resumes), {"after_epoch": done}])
            YOLO(str(last)).train(
                resume=True, data=job["data"], device=job["device"], save_dir=str(run_dir)
            )
        elif state == "new":
            model = YOLO(job["cfg"], task="detect")
            model.train(
                **job["train_args"],
                data=job["data"],
                epochs=job["epochs"],
                imgsz=job["imgsz"],
                batch=job["batch"],
                seed=job["seed"],
                device=job["device"],
                project=job["project"],
                name=job["name"],
                exist_ok=True,
                deterministic=True,
            )
        trained = YOLO(str(best), task="detect")
        metrics = validate(str(best), job, "val")
    rows = _results(run_dir)
    seconds = before + time.time() - t0 if state != "finished" else _csv_seconds(rows)
    net = trained.model
    record = {
        "key": job["key"],
        "candidate": job["candidate"],
        "seed": job["seed"],
        "run_dir": str(run_dir),
        "best": str(best),
        "resumed": resumes.is_file(),
        "resumed_after": [r["after_epoch"] for r in _resumes(resumes)],
        "epochs_run": [int(float(r["epoch"])) for r in rows],
        "train_s": round(seconds, 1),
        "wall_s": round(time.time() - t0, 1),
        "params": int(sum(p.numel() for p in net.parameters())),
        "gflops": round(float(get_flops(net, job["imgsz"])), 3),
        "provenance": _provenance(net),
        "train_box_loss": _last_loss(rows),
        "threads": torch.get_num_threads(),
        **metrics,
    }
    write_json(run_dir / MARKER, record, indent=2)
    return {**record, "notes": notes, "state": state}


def _resumes(path: Path) -> list[dict[str, Any]]:
    """The resumes ``path`` (``RESUMES``) lists, none where it is missing."""
    return json.loads(path.read_text()) if path.is_file() else []


def folder_files(root: Path, names: Iterable[str] | None = None) -> dict[str, bytes]:
    """The files under ``root`` (only ``names`` where given), by their POSIX path
    relative to it."""
    if names is not None:
        found = [root / n for n in names]
    else:
        found = sorted(root.rglob("*")) if root.is_dir() else []
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in found if p.is_file()}


def write_files(root: Path, files: dict[str, bytes]) -> None:
    """``files`` (as ``folder_files`` gives them) written under ``root``, each whole."""
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        write_bytes(root / rel, data)


def train_on_node(
    job: dict[str, Any], seen: tuple[str, str], files: dict[str, bytes], cfg: tuple[str, bytes]
) -> dict[str, Any]:
    """``train_run`` as a Ray task on a cluster. A node that sees the driver's ``--out``
    (the file ``seen[0]`` holds ``seen[1]``) trains the run there. One that does not (no
    shared file system) trains it under its temp directory, in a folder named by the
    driver's ``--out`` and the run (a task Ray retries on the same node resumes it):
    from ``files`` (the driver's copy of the run: ``TO_NODE``) where that folder is new,
    the candidate's file from ``cfg`` (name, bytes; ``("", b"")``: a name Ultralytics
    resolves). The record comes back with every file of the run's folder (``"files"``)
    and where it trained (``"trained_on"``); the folder is removed. The data yaml and its
    images must be at the same path on every node."""
    with contextlib.suppress(OSError):
        if Path(seen[0]).read_text(encoding="utf-8") == seen[1]:
            return train_run(job)
    if not Path(job["data"]).is_file():
        raise DataNotFoundError(
            f"the data yaml {job['data']} is not on Ray node {socket.gethostname()}, which "
            "does not see --out. Fix: put the dataset at the same path on every node (the "
            "demo's is --out's data/), or share --out's file system with the nodes "
            '(docs/yolo.md, "Compare backbones on your data")'
        )
    where = hashlib.sha256(job["project"].encode()).hexdigest()[:12]
    local = Path(tempfile.gettempdir()) / NODE_DIR / where
    run_dir, local_job = local / job["name"], {**job, "project": str(local)}
    if not run_dir.exists():
        write_files(run_dir, files)
    if cfg[0]:  # the candidate's yaml or checkpoint, under its own name (its scale letter)
        model = local / "models" / job["name"] / cfg[0]
        write_files(model.parent, {model.name: cfg[1]})
        local_job["cfg"] = str(model)
    record = train_run(local_job)
    back = folder_files(run_dir)
    shutil.rmtree(run_dir)
    shutil.rmtree(local / "models" / job["name"], ignore_errors=True)
    return {**record, "files": back, "trained_on": f"{socket.gethostname()}:{run_dir}"}


def export(best: str, runtime: str, job: dict[str, Any]) -> dict[str, Any]:
    """``best.pt`` exported for ``runtime`` (one with an export format) with Ultralytics'
    defaults at the comparison's image size; an INT8 artifact is validated too (its mAP
    is not the PyTorch model's)."""
    ultralytics_ready()
    from ultralytics import YOLO

    rt = RUNTIMES[runtime]
    extra = dict(rt.export_args)
    if rt.int8:
        extra["data"] = job["data"]  # the calibration images
    # Ultralytics' export output into the run's export.log, as training's into train.log
    with _to_log(run_folder(job) / "export.log"):
        path = YOLO(best, task="detect").export(
            format=rt.format, imgsz=job["imgsz"], device=job["device"], **extra
        )
    record: dict[str, Any] = {"runtime": runtime, "artifact": str(path)}
    if rt.int8:
        record.update(validate(str(path), job, runtime))
    return record
