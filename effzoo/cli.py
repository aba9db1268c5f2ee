"""``effzoo`` command line: list | info | download | yaml | demo | bench | yolo.

Each sub-command lives in its own module and parses its own arguments, so
``effzoo list`` never imports Ultralytics. Results go to stdout; progress and
errors to stderr; failures exit non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from .errors import EffzooError

#: command -> (module, function taking argv and returning an exit code, help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "list": ("effzoo.cli", "list_main", "table of every variant"),
    "info": ("effzoo.cli", "info_main", "one variant: levels, params, weights tags"),
    "download": ("effzoo.weights", "download_main", "prefetch weights for offline use"),
    "yaml": ("effzoo.yolo.cfg", "main", "write a YOLO11 model yaml for a variant"),
    "demo": ("effzoo.yolo.demo", "main", "train a small YOLO11-EfficientNet offline"),
    "bench": ("effzoo.bench", "main", "side-by-side latency against timm, ONNX Runtime, ..."),
    "yolo": ("effzoo.yolo.cli", "main", "the Ultralytics CLI with effzoo registered"),
}


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.2f}M"


def list_main(argv: Sequence[str]) -> int:
    from .factory import model_info
    from .registry import list_models

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
    from .factory import model_info

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
    print(
        "  levels:      "
        + ", ".join(
            f"P{i + 1}/{s}: {c}ch" for i, (c, s) in enumerate(zip(info.channels, info.strides))
        )
    )
    if info.tags:
        print(f"  weights:     {', '.join(info.tags)} (default {info.default_tag})")
        from . import weights

        for line in weights.describe_tags(info.name):
            print(f"    {line}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="effzoo",
        description="EfficientNet V1/V2 backbones for detectors.",
        epilog="Run `effzoo COMMAND -h` for a command's options.",
    )
    parser.add_argument(
        "command",
        choices=list(COMMANDS),
        metavar="COMMAND",
        help="; ".join(f"{k}: {v[2]}" for k, v in COMMANDS.items()),
    )
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help(sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    ns, rest = parser.parse_known_args(argv[:1])
    module, func, _ = COMMANDS[ns.command]
    try:
        return int(getattr(importlib.import_module(module), func)(rest + argv[1:]) or 0)
    except EffzooError as e:
        print(f"effzoo {ns.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `effzoo list | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
