"""The work of ``effzoo compare`` on one candidate: train (or resume) one seed, validate,
export to a runtime, and time two artifacts against each other in a process of its own.

``train_run`` takes and returns plain data, so it runs the same in this process and as
a Ray task. ``python -m effzoo.yolo.compare_run time ...`` is the timing process.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: runtime -> (Ultralytics export format, export arguments); pytorch: best.pt itself
RUNTIMES: dict[str, tuple[str, dict[str, Any]]] = {
    "pytorch": ("", {}),
    "onnx": ("onnx", {}),
    "openvino": ("openvino", {}),
    "openvino-int8": ("openvino", {"int8": True}),
    "tensorrt": ("engine", {}),
}

#: the file in each run directory that says the run finished, and what it gave
MARKER = "effzoo-compare.json"


def _ultralytics() -> None:
    """Offline, quiet, effzoo registered (in this process or a Ray worker)."""
    os.environ.setdefault("YOLO_OFFLINE", "true")
    from .patches import quiet_ultralytics, register

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
    _ultralytics()
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
    _ultralytics()
    from ultralytics import YOLO

    fmt, extra = RUNTIMES[runtime]
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


# -- the timing process --------------------------------------------------------------------


def precision(backend: Any) -> str | None:
    """The precision OpenVINO runs an artifact's floating-point layers in, as Ultralytics'
    AutoBackend compiled it (its default: bf16 on a CPU with AVX512_BF16 or AMX, else
    f32); None for the other runtimes."""
    for obj in (backend, getattr(backend, "backend", None)):  # 8.4 keeps it on .backend
        compiled = getattr(obj, "ov_compiled_model", None)
        if compiled is not None:
            hint = compiled.get_property("INFERENCE_PRECISION_HINT")  # an openvino Type
            return hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
    return None


def _time(args: argparse.Namespace) -> dict[str, Any]:
    """Per-call milliseconds of each artifact's forward, ``rounds`` x ``per_round``,
    interleaved in a random order each round, after ``warmup`` calls each; and each
    artifact's precision where the runtime chose one (``precision``)."""
    _ultralytics()
    import torch
    from ultralytics.nn.autobackend import AutoBackend
    from ultralytics.utils.torch_utils import select_device

    device = select_device(args.device, verbose=False)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with contextlib.redirect_stdout(io.StringIO()):
        backends = {
            a: AutoBackend(a, device=device, fuse=True, verbose=False) for a in args.artifacts
        }
    x = torch.rand(1, 3, args.imgsz, args.imgsz, generator=torch.Generator().manual_seed(0))
    x = x.to(device)
    times: dict[str, list[list[float]]] = {a: [] for a in args.artifacts}
    order = list(args.artifacts)
    rng = random.Random(0)
    with torch.inference_mode():
        for a in order:
            for _ in range(args.warmup):
                backends[a](x)
            sync()
        for _ in range(args.rounds):
            rng.shuffle(order)
            for a in order:
                calls = []
                for _ in range(args.per_round):
                    t = time.perf_counter()
                    backends[a](x)
                    sync()
                    calls.append((time.perf_counter() - t) * 1e3)
                times[a].append(calls)
    return {"times_ms": times, "precision": {a: precision(b) for a, b in backends.items()}}


def time_command(
    artifacts: Sequence[str], *, imgsz: int, device: str, rounds: int, per_round: int, warmup: int
) -> list[str]:
    """The command line of the timing process for ``artifacts`` (one runtime)."""
    return [
        sys.executable,
        "-m",
        "effzoo.yolo.compare_run",
        "time",
        f"--imgsz={imgsz}",
        f"--device={device}",
        f"--rounds={rounds}",
        f"--per-round={per_round}",
        f"--warmup={warmup}",
        *artifacts,
    ]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m effzoo.yolo.compare_run")
    p.add_argument("mode", choices=["time"])
    p.add_argument("--imgsz", type=int, required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--per-round", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("artifacts", nargs="+")
    args = p.parse_args(argv)
    print(json.dumps(_time(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
