"""YOLO11 model yamls with an effzoo backbone: the shipped files and ``effzoo yaml``.

The layout is the forked recipe's: the backbone row occupies indices 0-4 (P1..P5),
SPPF at 5, C2PSA at 6, then the stock YOLO11 head re-indexed. Only the backbone
row changes between variants; its channels are computed at build time.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ...errors import InvalidArgumentError
from ...registry import lookup

CFG_DIR = Path(__file__).resolve().parent

TASKS = ("detect", "segment", "pose", "obb", "classify")
_SUFFIX = {"detect": "", "segment": "-seg", "pose": "-pose", "obb": "-obb", "classify": "-cls"}
_OUTPUT = {
    "detect": "Detect, [nc]] # Detect(P3, P4, P5)",
    "segment": "Segment, [nc, 32, 256]] # Segment(P3, P4, P5)",
    "pose": "Pose, [nc, kpt_shape]] # Pose(P3, P4, P5)",
    "obb": "OBB, [nc, 1]] # OBB(P3, P4, P5)",
}

_SCALES = """\
scales: # model compound scaling constants, i.e. 'model=yolo11n-{stem}.yaml' uses scale 'n'
  # [depth, width, max_channels]; the scale sizes the head, the row sizes the backbone
  n: [0.50, 0.25, 1024]
  s: [0.50, 0.50, 1024]
  m: [0.50, 1.00, 512]
  l: [1.00, 1.00, 512]
  x: [1.00, 1.50, 512]
"""

_HEAD = """\
head:
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
  - [[-1, 3], 1, Concat, [1]] # cat backbone P4
  - [-1, 2, C3k2, [512, False]] # 9

  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
  - [[-1, 2], 1, Concat, [1]] # cat backbone P3
  - [-1, 2, C3k2, [256, False]] # 12 (P3/8-small)

  - [-1, 1, Conv, [256, 3, 2]]
  - [[-1, 9], 1, Concat, [1]] # cat head P4
  - [-1, 2, C3k2, [512, False]] # 15 (P4/16-medium)

  - [-1, 1, Conv, [512, 3, 2]]
  - [[-1, 6], 1, Concat, [1]] # cat head P5
  - [-1, 2, C3k2, [1024, True]] # 18 (P5/32-large)

  - [[12, 15, 18], 1, {output}
"""

#: the shipped files: (file name, variant, task)
SHIPPED: tuple[tuple[str, str, str], ...] = (
    ("yolo11-efflite0.yaml", "efficientnet_lite0", "detect"),
    ("yolo11-effb0.yaml", "efficientnet_b0", "detect"),
    ("yolo11-effb3.yaml", "efficientnet_b3", "detect"),
    ("yolo11-effv2s.yaml", "efficientnet_v2_s", "detect"),
    ("yolo11-effv2m.yaml", "efficientnet_v2_m", "detect"),
    ("yolo11-effb0-seg.yaml", "efficientnet_b0", "segment"),
    ("yolo11-effb0-pose.yaml", "efficientnet_b0", "pose"),
    ("yolo11-effv2s-seg.yaml", "efficientnet_v2_s", "segment"),
)
#: the forked recipe's files, shipped verbatim
RECIPE_FILES = ("yolo11-EfficientNetV1.yaml", "yolo11-EfficientNetV2.yaml")


def short_name(variant: str) -> str:
    """``efficientnet_v2_s`` -> ``effv2s``, ``efficientnet_b0`` -> ``effb0``."""
    return "eff" + lookup(variant).name.removeprefix("efficientnet_").replace("_", "")


def default_filename(variant: str, task: str = "detect") -> str:
    return f"yolo11-{short_name(variant)}{_SUFFIX[task]}.yaml"


def _row(variant: str, width: float, depth: float, pretrained: bool) -> str:
    opts = []
    if width != 1.0 or depth != 1.0:
        opts += [f"width: {width}", f"depth: {depth}"]
    if not pretrained:
        opts.append("pretrained: false")
    args = variant + (", {" + ", ".join(opts) + "}" if opts else "")
    return f"  - [-1, 1, EfficientNet, [{args}]] # 0-4 P1/2, P2/4, P3/8, P4/16, P5/32\n"


def _flags(task: str, nc: int, width: float, depth: float, pretrained: bool) -> str:
    flags = f" --task {task}"
    flags += f" --nc {nc}" if nc != (1000 if task == "classify" else 80) else ""
    flags += f" --width {width}" if width != 1.0 else ""
    flags += f" --depth {depth}" if depth != 1.0 else ""
    return flags + ("" if pretrained else " --scratch")


def model_yaml(
    variant: str,
    *,
    task: str = "detect",
    nc: int | None = None,
    width: float = 1.0,
    depth: float = 1.0,
    pretrained: bool = True,
) -> str:
    """The text of a YOLO11 model yaml whose backbone is ``variant``."""
    spec = lookup(variant)
    if task not in TASKS:
        raise InvalidArgumentError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    for key, value in (("width", width), ("depth", depth)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise InvalidArgumentError(f"{key} must be a positive number, got {value!r}")
    nc = (1000 if task == "classify" else 80) if nc is None else nc
    stem = f"{short_name(spec.name)}{_SUFFIX[task]}"
    kind = {"classify": "classification", "obb": "oriented detection"}.get(task, task)
    text = (
        f"# YOLO11 {kind} model with an {spec.name} backbone (effzoo).\n"
        f"# Needs `import effzoo.yolo` (or the `effzoo yolo` CLI) before Ultralytics builds it.\n"
        f"# Written by `effzoo yaml {spec.name}{_flags(task, nc, width, depth, pretrained)}`.\n\n"
        f"nc: {nc} # number of classes\n"
    )
    if task == "pose":
        text += "kpt_shape: [17, 3] # number of keypoints, number of dims (x, y, visible)\n"
    text += _SCALES.format(stem=stem) + "\n"
    text += "backbone:\n  # [from, repeats, module, args]\n"
    text += _row(spec.name, float(width), float(depth), pretrained)
    if task == "classify":
        text += "  - [-1, 2, C2PSA, [1024]] # 5\n\nhead:\n  - [-1, 1, Classify, [nc]] # Classify\n"
        return text
    text += "  - [-1, 1, SPPF, [1024, 5]] # 5\n  - [-1, 2, C2PSA, [1024]] # 6\n\n"
    return text + _HEAD.format(output=_OUTPUT[task])


def list_cfgs() -> list[str]:
    """File names of every shipped model yaml."""
    return sorted(p.name for p in CFG_DIR.glob("*.yaml"))


def cfg_path(name: str) -> Path:
    """Path of a shipped model yaml by file name (``yolo11-effb0.yaml``)."""
    path = CFG_DIR / Path(name).name
    if not path.suffix:
        path = path.with_suffix(".yaml")
    if not path.is_file():
        raise InvalidArgumentError(
            f"no shipped model yaml {name!r}; shipped: {', '.join(list_cfgs())}. "
            "`effzoo yaml VARIANT` writes one for any variant."
        )
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """``effzoo yaml VARIANT [--task detect] [-o FILE]``."""
    p = argparse.ArgumentParser(
        prog="effzoo yaml",
        description="Write a YOLO11 model yaml with an effzoo backbone.",
        epilog="Train it with: effzoo yolo train model=FILE data=...",
    )
    p.add_argument("variant", help="backbone variant or alias, e.g. efficientnet_v2_s")
    p.add_argument("--task", choices=TASKS, default="detect")
    p.add_argument("--nc", type=int, default=None, help="number of classes (default 80)")
    p.add_argument("--width", type=float, default=1.0, help="extra backbone width multiplier")
    p.add_argument("--depth", type=float, default=1.0, help="extra backbone depth multiplier")
    p.add_argument("--scratch", action="store_true", help="random init (pretrained: false)")
    p.add_argument("-o", "--output", help="file to write; '-' for stdout (default: stdout)")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    text = model_yaml(
        args.variant,
        task=args.task,
        nc=args.nc,
        width=args.width,
        depth=args.depth,
        pretrained=not args.scratch,
    )
    if not args.output or args.output == "-":
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    return 0
