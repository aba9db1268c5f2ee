"""Regenerate the table of effzoo's YOLO model names in docs/yolo.md.

    python scripts/gen_yolo_tables.py            # rewrite the table
    python scripts/gen_yolo_tables.py --check    # exit 1 if it is stale

Each model yaml is generated from the installed Ultralytics' file of its family
(``effzoo.yolo.templates``). Parameters and GFLOPs are measured by Ultralytics on
the built model (nc 80, 640 px, scale n or RT-DETR's l, the backbone at its row's
size), never typed.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

DOC = Path(__file__).resolve().parents[1] / "docs" / "yolo.md"
BEGIN = "<!-- begin: model name table (python scripts/gen_yolo_tables.py) -->"
END = "<!-- end: model name table -->"


def _row(name: str) -> str:
    from ultralytics.nn import tasks
    from ultralytics.utils.torch_utils import get_flops

    from effzoo.yolo.templates import MODELS, cfg_text

    model_name = MODELS[name]
    d = yaml.safe_load(cfg_text(name))
    d["scale"] = "l" if model_name.family == "rtdetr" else "n"  # RT-DETR has scale l only
    d["yaml_file"] = name
    args = d["backbone"][0][3]
    if isinstance(args[-1], dict):
        args[-1] = {**args[-1], "pretrained": False}
    else:
        args.append({"pretrained": False})
    classes = {
        "detect": tasks.DetectionModel,
        "segment": tasks.SegmentationModel,
        "pose": tasks.PoseModel,
        "obb": tasks.OBBModel,
        "classify": tasks.ClassificationModel,
    }
    cls = tasks.RTDETRDetectionModel if model_name.family == "rtdetr" else classes[model_name.task]
    model = cls(copy.deepcopy(d), verbose=False)
    params = sum(p.numel() for p in model.parameters())
    gflops = get_flops(model, imgsz=640)
    chans = model.model[0].backbone.out_channels  # P1..P5, from the registry
    extra = f" x{args[1]} width, x{args[2]} depth" if len(args) > 2 else ""
    levels = "P2 / " if model_name.variant == "p2" else ""
    shown = chans[1:] if levels else chans[2:]
    return (
        f"| `{name}` | {model_name.family} | {model_name.task} | {args[0]}{extra} | "
        f"{params / 1e6:.2f}M | {gflops:.1f} | {levels}P3 / P4 / P5: "
        f"{' / '.join(str(c) for c in shown)} |"
    )


def table() -> str:
    """The markdown table of every model name effzoo provides."""
    from effzoo.yolo.templates import MODELS

    lines = [
        BEGIN,
        "| name | family | task | backbone | params | GFLOPs (640) | levels the head reads: "
        "channels |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, name in enumerate(MODELS):
        print(f"[{i + 1}/{len(MODELS)}] {name}", file=sys.stderr, flush=True)
        lines.append(_row(name))
    return "\n".join([*lines, END])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python scripts/gen_yolo_tables.py", description=__doc__)
    p.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
    args = p.parse_args(argv)
    doc = DOC.read_text()
    if BEGIN not in doc or END not in doc:
        print(f"{DOC} has no table markers", file=sys.stderr)
        return 1
    new_doc = doc[: doc.index(BEGIN)] + table() + doc[doc.index(END) + len(END) :]
    if args.check:
        if new_doc != doc:
            print("stale: docs/yolo.md")
            return 1
        return 0
    DOC.write_text(new_doc)
    print(f"wrote the table in {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
