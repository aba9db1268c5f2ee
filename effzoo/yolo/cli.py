"""``effzoo yaml`` (write a model yaml) and ``effzoo yolo`` (the Ultralytics CLI with
effzoo registered)."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from ..cli.paths import output_file, write_text
from ..errors import InvalidArgumentError
from .patches import register
from .rows import WIDTH_ADVICE
from .templates import FAMILIES, TASKS, list_cfgs, model_name, yaml_request, yaml_text

#: the advice docs/which-backbone.md measures (``effzoo yaml --help``)
WHICH_BACKBONE = (
    "with ImageNet weights, a full-width backbone in the scale-n head (the default) "
    "rather than a width-shrunk one; see docs/which-backbone.md"
)


def yaml_main(argv: Sequence[str] | None = None) -> int:
    """``effzoo yaml VARIANT [--family yolo26] [--p2] [--task detect] [-o FILE]``."""
    p = argparse.ArgumentParser(
        prog="effzoo yaml",
        description="Write an Ultralytics model yaml with an effzoo backbone, made from the "
        "installed Ultralytics' own file of the family (YOLO11, YOLO12, YOLO26, RT-DETR).",
        epilog="Train it with: effzoo yolo train model=FILE data=...  (an RT-DETR file: "
        "RTDETR(FILE) in Python; its name must start with rtdetr for the CLI).  "
        f"Which backbone? {WHICH_BACKBONE}",
    )
    p.add_argument("variant", help="backbone variant or alias, e.g. efficientnet_v2_s")
    p.add_argument("--family", choices=tuple(FAMILIES), default="yolo11", help="detector family")
    level = p.add_mutually_exclusive_group()
    level.add_argument("--p2", action="store_true", help="YOLO26-P2: a stride-4 head level")
    level.add_argument("--p6", action="store_true", help="YOLO26-P6 (needs a stride-64 level)")
    p.add_argument("--task", choices=TASKS, default="detect")
    p.add_argument("--nc", type=int, default=None, help="number of classes (default 80)")
    p.add_argument("--width", type=float, default=1.0, help="extra backbone width multiplier")
    p.add_argument("--depth", type=float, default=1.0, help="extra backbone depth multiplier")
    p.add_argument("--scratch", action="store_true", help="random init (pretrained: false)")
    p.add_argument("-o", "--output", help="file to write; '-' for stdout (default: stdout)")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    # every option, with the CLI's names, checked once before anything is made
    lvl = "p2" if args.p2 else "p6" if args.p6 else ""
    req = yaml_request(
        args.variant,
        task=args.task,
        nc=args.nc,
        width=args.width,
        depth=args.depth,
        pretrained=not args.scratch,
        family=args.family,
        level=lvl,
        flag="--",
    )
    name, width = req.backbone.spec.name, req.backbone.width_mult
    out = None
    if args.output is not None and args.output != "-":  # none or "-": stdout
        example = model_name(name, req.task, req.family, lvl)
        if req.family != "rtdetr":  # a scale letter after the family's number
            example = example.replace(req.family, req.family + "n", 1)
        out = output_file("-o", args.output, example=example)
    text = yaml_text(req)
    if width < 1.0 and not args.scratch:
        print(
            f"effzoo yaml: note: --width {width:g} starts the backbone from a channel "
            f"subset of {name}'s ImageNet weights (inherited, never trained at this width); "
            f"{WIDTH_ADVICE}",
            file=sys.stderr,
        )
    if out is None:
        _write_stdout(text)
        return 0
    write_text("-o", out, text)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _write_stdout(text: str) -> None:
    """``text`` on stdout in any encoding: a console or redirect that cannot encode it
    (cp1252 on Windows, ASCII) gets the UTF-8 bytes, so ``effzoo yaml V > my.yaml`` is a
    UTF-8 file as Ultralytics reads it; without a byte stream, unencodable characters
    (the emoji of Ultralytics' license line) are replaced."""
    try:
        sys.stdout.write(text)
    except UnicodeEncodeError:
        sys.stdout.flush()
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is not None:
            buffer.write(text.encode("utf-8"))
            buffer.flush()
        else:
            encoding = getattr(sys.stdout, "encoding", None) or "ascii"
            sys.stdout.write(text.encode(encoding, "replace").decode(encoding))


def yolo_main(argv: Sequence[str] | None = None) -> int:
    """Run ``ultralytics.cfg.entrypoint`` on ``argv`` with effzoo registered.

    Arguments are Ultralytics' own (``effzoo yolo train model=yolo11n-effv2s.yaml
    data=coco8.yaml``); effzoo's model names resolve by name.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    from ultralytics.cfg import entrypoint

    register()
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: effzoo yolo MODE [ARGS...]  (the Ultralytics CLI with effzoo registered)")
        print("  e.g. effzoo yolo train model=yolo11n-effv2s.yaml data=coco8.yaml epochs=10")
        print("effzoo model names: " + ", ".join(list_cfgs()))
        print("Ultralytics' own help follows.\n")
        argv = ["help"]
    # Ultralytics reads sys.argv (the same list object it saved at import time).
    sys.argv[:] = ["effzoo-yolo", *argv]
    try:
        entrypoint()
    except (SyntaxError, ValueError, TypeError) as e:
        if not _argument_error(e):
            raise
        # Ultralytics' own message, as itself, on one line (its help text follows a newline)
        first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
        raise InvalidArgumentError(f"{first} (Ultralytics; `effzoo yolo help`)") from e
    return 0


#: where Ultralytics checks command-line arguments (``cfg``), and the model format
#: (``AutoBackend``: a path that is no model); errors raised there are the user's
_ARGUMENT_CHECKS = (("ultralytics", "cfg", "__init__.py"), ("ultralytics", "nn", "autobackend.py"))


def _argument_error(e: BaseException) -> bool:
    """Whether ``e`` was raised by Ultralytics' argument or model-format checks (its
    traceback ends there) rather than by a bug anywhere."""
    frames = traceback.extract_tb(e.__traceback__)
    if not frames:
        return False
    raised_in = Path(frames[-1].filename).parts[-3:]
    return raised_in in _ARGUMENT_CHECKS


def compare_main(argv: Sequence[str] | None = None) -> int:
    """``effzoo compare [--data D] [--models A,B] [--runtime R,...] ... [KEY=VALUE ...]``."""
    import yaml

    from .compare import DEFAULT_RUNTIMES, compare
    from .compare_run import RUNTIMES

    p = argparse.ArgumentParser(
        prog="effzoo compare",
        description="Train candidate detectors on your data with the same budget, time them "
        "in the runtimes you deploy to, and write the table, report and Pareto plot.",
        epilog="Candidates: model names (yolo11n.yaml, yolo26n-efflite0.yaml), yaml files, or "
        "effzoo rows VARIANT[:wWIDTH][:dDEPTH][:scratch][:FAMILY] (efficientnet_lite0:w0.5: "
        "ImageNet weights inherited at width 0.5). KEY=VALUE arguments go to Ultralytics' "
        "train, the same for every candidate. Rerun with the same arguments to get the "
        "table back without training; a changed argument reruns only what it changes.",
    )
    p.add_argument("--data", help="Ultralytics data yaml (default: effzoo's demo data)")
    p.add_argument(
        "--models",
        help="comma-separated candidates (default: a grid of stock "
        "YOLO11n, YOLO26n and Lite0 rows)",
    )
    p.add_argument("--epochs", type=int, default=20, help="(default %(default)s)")
    p.add_argument("--imgsz", type=int, help="(default 160 on the demo data, else 640)")
    p.add_argument("--batch", type=int, default=16, help="(default %(default)s)")
    p.add_argument("--seeds", type=int, default=1, help="runs per candidate (default 1)")
    p.add_argument(
        "--runtime",
        default=",".join(DEFAULT_RUNTIMES),
        help=f"comma-separated: {', '.join(RUNTIMES)} (default %(default)s)",
    )
    p.add_argument("--device", default="cpu", help="as Ultralytics takes it: cpu, 0, 0,1")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="runs at a time on Ray (default 1: sequential, no Ray)",
    )
    p.add_argument("--ray", help="Ray cluster address (default: a local Ray)")
    p.add_argument("--rounds", type=int, default=7, help="timing rounds (default %(default)s)")
    p.add_argument("--out", default="effzoo-compare", help="output folder (default %(default)s)")
    p.add_argument("train_args", nargs="*", metavar="KEY=VALUE")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    extra = {}
    for item in args.train_args:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgumentError(
                f"{item!r}: train arguments are KEY=VALUE (e.g. lr0=0.005); options start with --"
            )
        extra[key] = yaml.safe_load(value)
    result = compare(
        args.models,
        data=args.data,
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        seeds=args.seeds,
        runtimes=args.runtime,
        device=args.device,
        workers=args.workers,
        ray_address=args.ray,
        out=args.out,
        rounds=args.rounds,
        train_args=extra,
    )
    print(result.report.read_text(encoding="utf-8").split("## How it was measured")[0], end="")
    return 0
