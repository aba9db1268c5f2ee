"""Regenerate the shipped model yamls and the table of them in docs/yolo.md.

    python -m effzoo.yolo.tables            # rewrite effzoo/yolo/cfg/*.yaml and the table
    python -m effzoo.yolo.tables --check    # exit 1 if either is stale

Parameters and GFLOPs are measured by Ultralytics on the built model (nc 80,
640 px, scale n, the backbone at its variant's own size), never typed.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Sequence
from pathlib import Path

from .cfg import CFG_DIR, RECIPE_FILES, SHIPPED, model_yaml

DOC = Path(__file__).resolve().parents[2] / "docs" / "yolo.md"
BEGIN = "<!-- begin: shipped model table (python -m effzoo.yolo.tables) -->"
END = "<!-- end: shipped model table -->"


def _row(name: str) -> str:
    from ultralytics.nn.tasks import DetectionModel, PoseModel, SegmentationModel, yaml_model_load
    from ultralytics.utils.torch_utils import get_flops

    d = yaml_model_load(CFG_DIR / name)
    row = d["backbone"][0]
    args = row[3]
    if isinstance(args[-1], dict):
        args[-1] = {**args[-1], "pretrained": False}
    else:
        args.append({"pretrained": False})
    task = {n: t for n, _, t in SHIPPED}.get(name, "detect")
    model_cls = {"detect": DetectionModel, "segment": SegmentationModel, "pose": PoseModel}[task]
    model = model_cls(copy.deepcopy(d), verbose=False)
    params = sum(p.numel() for p in model.parameters())
    gflops = get_flops(model, imgsz=640)
    chans = model.model[0].backbone.out_channels  # P1..P5, from the registry
    variant = args[0]
    extra = ""
    if name in RECIPE_FILES:
        extra = f" x{args[1]} width, x{args[2]} depth"
    return (
        f"| `{name}` | {task} | {variant}{extra} | {params / 1e6:.2f}M | {gflops:.1f} | "
        f"{' / '.join(str(c) for c in chans[2:])} |"
    )


def table() -> str:
    """The markdown table of every shipped model yaml."""
    lines = [
        BEGIN,
        "| file | task | backbone | params | GFLOPs (640) | P3 / P4 / P5 channels |",
        "|---|---|---|---|---|---|",
    ]
    names = [n for n, _, _ in SHIPPED] + list(RECIPE_FILES)
    for i, name in enumerate(names):
        print(f"[{i + 1}/{len(names)}] {name}", file=sys.stderr, flush=True)
        lines.append(_row(name))
    return "\n".join([*lines, END])


def _expected_yamls() -> dict[Path, str]:
    return {CFG_DIR / n: model_yaml(v, task=t) for n, v, t in SHIPPED}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m effzoo.yolo.tables", description=__doc__)
    p.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
    args = p.parse_args(argv)
    import effzoo.yolo  # noqa: F401

    stale = [f for f, text in _expected_yamls().items() if not f.is_file() or f.read_text() != text]
    doc = DOC.read_text()
    if BEGIN not in doc or END not in doc:
        print(f"{DOC} has no table markers", file=sys.stderr)
        return 1
    new_doc = doc[: doc.index(BEGIN)] + table() + doc[doc.index(END) + len(END) :]
    if args.check:
        if stale or new_doc != doc:
            print(f"stale: {[f.name for f in stale]} {'docs/yolo.md' if new_doc != doc else ''}")
            return 1
        return 0
    for f, text in _expected_yamls().items():
        f.write_text(text)
    DOC.write_text(new_doc)
    print(f"wrote {len(SHIPPED)} yamls and the table in {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
