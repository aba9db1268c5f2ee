"""``effzoo`` command line: list | info | download | yaml | demo | yolo.

Each sub-command lives in its own module, imported only when it runs, and parses
its own arguments, so ``effzoo list`` never imports Ultralytics. Results go to stdout; progress and
errors to stderr; failures exit non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from ..errors import EffzooError

#: command -> (module, function taking argv and returning an exit code, help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "list": ("effzoo.cli.info", "list_main", "table of every variant"),
    "info": ("effzoo.cli.info", "info_main", "one variant: levels, params, weights tags"),
    "download": ("effzoo.cli.download", "main", "prefetch weights for offline use"),
    "yaml": ("effzoo.yolo.cli", "yaml_main", "write a YOLO11 model yaml for a variant"),
    "demo": ("effzoo.yolo.demo", "main", "train a small YOLO11-EfficientNet offline"),
    "yolo": ("effzoo.yolo.cli", "yolo_main", "the Ultralytics CLI with effzoo registered"),
}


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
