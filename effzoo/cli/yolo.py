"""``effzoo yaml`` (write a model yaml), ``effzoo yolo`` (the Ultralytics CLI with
effzoo registered) and ``effzoo compare``'s command line."""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from ..errors import DatasetUnavailableError, InvalidArgumentError
from ..factory import BackboneRequest
from ..paths import output_file, write_text
from ..yolo.patches import register
from ..yolo.rows import WIDTH_ADVICE
from ..yolo.templates import (
    FAMILIES,
    PATTERN,
    TASKS,
    list_cfgs,
    model_name,
    yaml_request,
    yaml_text,
)
from . import plain, ultralytics_user_error


def yaml_main(argv: Sequence[str] | None = None) -> int:
    """``effzoo yaml VARIANT [--family yolo26] [--p2] [--task detect] [-o FILE]``."""
    p = argparse.ArgumentParser(
        prog="effzoo yaml",
        description="Write an Ultralytics model yaml with an effzoo backbone, made from the "
        "installed Ultralytics' own file of the family (YOLO11, YOLO12, YOLO26, RT-DETR).",
        epilog="Train it with: effzoo yolo train model=FILE data=...  (an RT-DETR file: "
        "RTDETR(FILE) in Python; its name must start with rtdetr for the CLI).  Which "
        "backbone? with ImageNet weights, a full-width backbone in the scale-n head (the "
        "default) rather than a width-shrunk one; see docs/which-backbone.md",
    )
    p.add_argument("variant", help="backbone variant or alias, e.g. efficientnet_v2_s")
    p.add_argument("--family", choices=tuple(FAMILIES), default="yolo11", help="detector family")
    level = p.add_mutually_exclusive_group()
    level.add_argument("--p2", action="store_true", help="YOLO26-P2: a stride-4 head level")
    level.add_argument(
        "--p6", action="store_true", help="YOLO26-P6: a stride-64 level, built from the row's P5"
    )
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
    grown = _grown_past_weights(req.backbone) if req.backbone.pretrained else ""
    if grown:  # a pretrained row that could never load: write the one that trains, say so
        req = dataclasses.replace(req, backbone=dataclasses.replace(req.backbone, pretrained=False))
        deeper = "deeper" in grown.split(":")[0]
        flag = f"--depth {req.backbone.depth_mult:g}" if deeper else f"--width {width:g}"
        print(
            f"effzoo yaml: note: {flag} makes {name} {'deeper' if deeper else 'wider'} than "
            "its ImageNet weights, so the row is written with `pretrained: false` (random "
            "init). For ImageNet weights use --width and --depth <= 1 "
            '(docs/weights.md, "Scaled variants: inheritance")',
            file=sys.stderr,
        )
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
    else:
        write_text("-o", out, text)
        print(f"wrote {out}", file=sys.stderr)
    return 0


def _grown_past_weights(backbone: BackboneRequest) -> str:
    """Why a pretrained row of ``backbone`` could never load ("" when it can), from shapes
    on the meta device (nothing is fetched)."""
    from ..backbone import Backbone
    from ..weights.load import grown_past_weights

    model = Backbone(
        backbone.spec,
        out_indices=backbone.out_indices,
        width_mult=backbone.width_mult,
        depth_mult=backbone.depth_mult,
        device="meta",
    )
    return grown_past_weights(model, backbone.spec)


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
        print("  (Ultralytics downloads coco8; offline, the demo's data: docs/yolo.md)")
        print(f"effzoo model names: {PATTERN}, any variant of `effzoo list` as effb0,")
        print("  efflite0, effv2s, ...; examples: " + ", ".join(list_cfgs()))
        print("Ultralytics' own help follows.\n")
        argv = ["help"]
    # Ultralytics reads sys.argv (the same list object it saved at import time).
    sys.argv[:] = ["effzoo-yolo", *argv]
    try:
        entrypoint()
    except Exception as e:
        dataset = _dataset_error(e)
        if dataset is not None:
            raise _dataset_message(dataset, argv, outer=e) from e
        # Ultralytics' own argument, device or model-format check: its message, one line
        first = ultralytics_user_error(e)
        if first is None:
            raise
        raise InvalidArgumentError(f"{first} (Ultralytics; `effzoo yolo help`)") from e
    return 0


#: where Ultralytics checks, and downloads, a dataset (trainer and validator)
_DATASET_CHECKS = frozenset({"check_det_dataset", "check_cls_dataset", "get_dataset"})
#: what those checks raise on purpose (a missing file or download, a malformed data
#: yaml); anything else raised there is a bug and stays "unexpected"
_DATASET_ERRORS = (OSError, SyntaxError, ValueError, TypeError)
#: the symbols Ultralytics decorates its messages with
_DECOR = re.compile(r"[\u2600-\u27bf\U0001f300-\U0001faff\ufe0f]")


def _dataset_error(e: BaseException) -> BaseException | None:
    """The innermost error of ``e``'s chain that Ultralytics raised while checking or
    downloading a dataset, or None when ``e`` is not one."""
    found = None
    seen: set[int] = set()
    err: BaseException | None = e
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        for frame in traceback.extract_tb(err.__traceback__):
            if frame.name in _DATASET_CHECKS and "ultralytics" in Path(frame.filename).parts:
                found = err if isinstance(err, _DATASET_ERRORS) else found
        err = err.__cause__ or err.__context__
    return found


def _dataset_message(e: BaseException, argv: Sequence[str], *, outer: BaseException) -> Exception:
    """One line for a dataset Ultralytics could not find or download: which one (``data=``,
    or the default Ultralytics took, named in its message), why, and what the offline
    settings do and do not do."""
    from ultralytics.utils import SETTINGS

    named = re.search(r"Dataset '([^']+)'", f"{outer} {e}")
    data = next((a.split("=", 1)[1] for a in reversed(argv) if a.startswith("data=")), "")
    data = data or (named.group(1) if named else "(Ultralytics' default)")
    text = " ".join(_DECOR.sub("", plain(str(e))).split())
    if not (isinstance(e, ConnectionError) or "download failure" in text.lower()):
        return InvalidArgumentError(f"dataset {data!r}: {text} (Ultralytics)")
    return DatasetUnavailableError(
        f"dataset {data!r} is not on disk and could not be downloaded ({text}). Fix: copy "
        f"it from a machine that has it into Ultralytics' datasets_dir "
        f"({SETTINGS['datasets_dir']}), or give data= a dataset yaml on disk (effzoo's demo "
        f'data: {DEMO_DATA}) (docs/yolo.md, "Offline")'
    )


#: the one-liner that writes the demo's dataset (docs/yolo.md); needs the demo extra
DEMO_DATA = (
    'python -c "from effzoo.demo.data import make_shapes_dataset as m; '
    "print(m('shapes'))\" writes shapes/data.yaml"
)


#: ``compare()``'s keywords whose option is named otherwise on the command line (every
#: other keyword is the option of the same name: ``compare_main`` passes them all)
FLAG_FOR = {"runtimes": "runtime", "ray_address": "ray"}
#: keywords the command line gives otherwise (positional KEY=VALUE) or not at all
NOT_FLAGS = ("train_args", "log")


def compare_parser() -> argparse.ArgumentParser:
    """The command line of ``effzoo compare``: an option per keyword of ``compare()``
    (tests/test_compare_inputs.py holds the two together: names and defaults)."""
    from ..compare.runtimes import DEFAULT_RUNTIMES, RUNTIMES

    p = argparse.ArgumentParser(
        prog="effzoo compare",
        description="Train candidate detectors on your data with the same budget, time them "
        "in the runtimes you deploy to, and write the table, report and Pareto plot.",
        epilog="Candidates: model names (yolo11n.yaml, yolo26n-efflite0.yaml), yaml files, "
        "checkpoints fine-tuned with the same budget (yolo11n.pt in Ultralytics' weights_dir, "
        "a run's best.pt; nothing is downloaded), or effzoo rows "
        "VARIANT[:wWIDTH][:dDEPTH][:scratch][:FAMILY] (efficientnet_lite0:w0.5: "
        "ImageNet weights inherited at width 0.5). KEY=VALUE arguments go to Ultralytics' "
        "train, the same for every candidate. Rerun with the same arguments to get the "
        "table back without training; a changed argument reruns only what it changes.",
    )
    p.add_argument("--data", help="Ultralytics data yaml (default: effzoo's demo data)")
    p.add_argument(
        "--models",
        help="comma-separated candidates (default: a grid of stock YOLO11n and YOLO26n, "
        "from scratch and, where in Ultralytics' weights_dir, yolo11n.pt and yolo26n.pt, and "
        "Lite0 rows)",
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
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run on Ray: the cluster at ADDRESS (HOST:PORT of its head), or --ray alone "
        "for a local Ray (--workers N alone also starts a local Ray)",
    )
    p.add_argument(
        "--deploy-imgsz",
        help="comma-separated sizes the artifacts are exported and timed at, e.g. 320,640 "
        "(default: the training size)",
    )
    p.add_argument(
        "--rounds", type=int, default=5, help="timing rounds per process (default %(default)s)"
    )
    p.add_argument(
        "--processes",
        type=int,
        default=3,
        help="fresh timing processes per artifact at least; more while a ratio's 95%% "
        "interval is wider than ±5%% (default %(default)s)",
    )
    p.add_argument(
        "--per-round", type=int, default=3, help="calls per timing round (default %(default)s)"
    )
    p.add_argument("--warmup", type=int, default=2, help="warm-up calls (default %(default)s)")
    p.add_argument(
        "--timing-budget",
        type=float,
        default=120.0,
        help="seconds of timing at most per runtime and size, after the first processes, while "
        "a ratio's 95%% interval is wider than ±5%% (default %(default)s)",
    )
    p.add_argument("--out", default="effzoo-compare", help="output folder (default %(default)s)")
    p.add_argument("train_args", nargs="*", metavar="KEY=VALUE")
    return p


def compare_main(argv: Sequence[str] | None = None) -> int:
    """``effzoo compare [--data D] [--models A,B] [--runtime R,...] ... [KEY=VALUE ...]``."""
    import inspect

    from ..compare import compare
    from ..compare.checks import command_line

    args = compare_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.ray and "=" in args.ray:  # `--ray lr0=0.01`: --ray alone, then a train argument
        args.train_args.insert(0, args.ray)
        args.ray = "local"
    from ultralytics.cfg import parse_key_value_pair

    extra = {}
    for item in args.train_args:  # each value parsed as `yolo train` parses it
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InvalidArgumentError(
                f"{item!r}: train arguments are KEY=VALUE (e.g. lr0=0.005); options start with --"
            )
        key, parsed = parse_key_value_pair(item)
        extra[key] = parsed
    with command_line():  # messages name the options as typed here: --data, not data=
        keywords = inspect.signature(compare).parameters
        given = {k: getattr(args, FLAG_FOR.get(k, k)) for k in keywords if k not in NOT_FLAGS}
        result = compare(**given, train_args=extra)
    print(result.report.read_text(encoding="utf-8").split("## How it was measured")[0], end="")
    return 0
