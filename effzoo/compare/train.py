"""The work of ``effzoo compare`` on one candidate: train (or resume) one seed, validate,
and export to a runtime.

``train_run`` takes and returns plain data, so it runs the same in this process and as
a Ray task.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import time
from pathlib import Path
from typing import Any

from .runtimes import RUNTIMES

#: the file in each run directory that says the run finished, and what it gave
MARKER = "effzoo-compare.json"


def ultralytics_ready() -> None:
    """Offline, quiet, effzoo registered (in this process or a Ray worker)."""
    os.environ.setdefault("YOLO_OFFLINE", "true")
    from ..yolo.patches import quiet_ultralytics, register

    register()
    quiet_ultralytics()


def _metrics(val: Any) -> dict[str, float]:
    return {"map50_95": float(val.box.map), "map50": float(val.box.map50)}


def validate(model_path: str, job: dict[str, Any], name: str) -> dict[str, float]:
    """mAP of a trained model or an exported artifact on the validation split, the same
    way for every one of them (Ultralytics' ``val`` with the comparison's settings)."""
    from ultralytics import YOLO

    model = YOLO(model_path, task="detect")
    with contextlib.redirect_stdout(io.StringIO()):
        val = model.val(
            data=job["data"],
            imgsz=job["imgsz"],
            batch=job["batch"],
            device=job["device"],
            plots=False,
            verbose=False,
            project=str(Path(job["project"]) / job["name"]),  # inside the run's directory
            name=name,
            exist_ok=True,
        )
    return _metrics(val)


def _last_loss(run_dir: Path) -> float | None:
    """The last epoch's training box loss (``results.csv``): what two runs with the same
    seed should agree on, whether or not the model has learnt to find anything yet."""
    path = run_dir / "results.csv"
    if not path.is_file():
        return None
    with path.open(newline="") as f:
        rows = [{k.strip(): v for k, v in r.items()} for r in csv.DictReader(f)]
    return float(rows[-1]["train/box_loss"]) if rows and "train/box_loss" in rows[-1] else None


def _provenance(model: Any) -> str:
    for layer in getattr(model, "model", []):
        found = getattr(layer, "provenance", None)
        if found is not None:
            return str(found)
    return ""


def train_run(job: dict[str, Any]) -> dict[str, Any]:
    """Train one candidate with one seed (``job``: cfg, data, epochs, imgsz, batch, seed,
    device, project, name, key, train_args), or resume it from its ``last.pt`` with
    Ultralytics' resume; validate ``best.pt``; return and write the run's record."""
    ultralytics_ready()
    import torch
    from ultralytics import YOLO
    from ultralytics.utils.torch_utils import get_flops

    run_dir = Path(job["project"]) / job["name"]
    last, best = run_dir / "weights" / "last.pt", run_dir / "weights" / "best.pt"
    t0 = time.time()
    resumed = last.is_file()
    if resumed:  # an interrupted run: Ultralytics' own resume
        try:
            YOLO(str(last)).train(resume=True)
        except AssertionError:  # it had finished (only the record was not written)
            if not best.is_file():
                raise
    else:
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
    seconds = time.time() - t0
    trained = YOLO(str(best), task="detect")
    net = trained.model
    record = {
        "key": job["key"],
        "candidate": job["candidate"],
        "seed": job["seed"],
        "run_dir": str(run_dir),
        "best": str(best),
        "resumed": resumed,
        "train_s": round(seconds, 1),
        "params": int(sum(p.numel() for p in net.parameters())),
        "gflops": round(float(get_flops(net, job["imgsz"])), 3),
        "provenance": _provenance(net),
        "train_box_loss": _last_loss(run_dir),
        "threads": torch.get_num_threads(),
        **validate(str(best), job, "val"),
    }
    (run_dir / MARKER).write_text(json.dumps(record, indent=2), encoding="utf-8")
    return record


def export(best: str, runtime: str, job: dict[str, Any]) -> dict[str, Any]:
    """``best.pt`` exported for ``runtime`` with Ultralytics' defaults at the comparison's
    image size; an INT8 artifact is validated too (its mAP is not the PyTorch model's)."""
    if runtime == "pytorch":
        return {"runtime": runtime, "artifact": best}
    ultralytics_ready()
    from ultralytics import YOLO

    rt = RUNTIMES[runtime]
    fmt, extra = rt.format, dict(rt.export_args)
    if extra.get("int8"):
        extra = {**extra, "data": job["data"]}  # the calibration images
    with contextlib.redirect_stdout(io.StringIO()):
        path = YOLO(best, task="detect").export(
            format=fmt, imgsz=job["imgsz"], device=job["device"], **extra
        )
    record: dict[str, Any] = {"runtime": runtime, "artifact": str(path)}
    if extra.get("int8"):
        record.update(validate(str(path), job, runtime))
    return record
