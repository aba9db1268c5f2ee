"""``effzoo`` command line: list | info | download | env | yaml | demo | yolo | compare.

Each sub-command lives in its own module, imported only when it runs, and parses
its own arguments, so ``effzoo list`` never imports Ultralytics. Results go to stdout; progress and
errors to stderr; failures exit non-zero.

Every failure a user can act on is one line, ``effzoo COMMAND: error: ...`` naming the
fix, without a traceback: effzoo's own errors, and an ``OSError`` (no space, permission
denied, a directory where a file was meant) while reading or writing. Anything else is a
bug: one line that says so, and ``EFFZOO_DEBUG=1`` shows its traceback (and that of any
other error). The checks of output paths the commands share live in ``paths.py``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from ..errors import EffzooError
from .paths import os_error_message

#: command -> (module, function taking argv and returning an exit code, help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "list": ("effzoo.cli.info", "list_main", "table of every variant"),
    "info": ("effzoo.cli.info", "info_main", "one variant: levels, params, weights tags"),
    "download": ("effzoo.cli.download", "main", "prefetch weights for offline use"),
    "env": ("effzoo.cli.env", "main", "what a bug report needs: versions, caches, what verifies"),
    "yaml": ("effzoo.yolo.cli", "yaml_main", "write a YOLO11 model yaml for a variant"),
    "demo": ("effzoo.yolo.demo", "main", "train a small YOLO11-EfficientNet offline"),
    "yolo": ("effzoo.yolo.cli", "yolo_main", "the Ultralytics CLI with effzoo registered"),
    "compare": ("effzoo.yolo.cli", "compare_main", "train and time detectors on your data"),
}

#: set (to anything but "" or "0") to get the traceback of any error instead of one line
DEBUG_ENV = "EFFZOO_DEBUG"

EPILOG = (
    "Run `effzoo COMMAND -h` for a command's options. An error is one line on stderr, "
    "`effzoo COMMAND: error: ...`, and a non-zero exit status (2: a malformed command "
    f"line, 130: interrupted, otherwise 1); set {DEBUG_ENV}=1 to see the traceback of any "
    "error instead."
)


# -- dispatch ------------------------------------------------------------------------------


def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="effzoo",
        description="EfficientNet V1/V2 backbones for detectors.",
        epilog=EPILOG,
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
    if sys.stdout is None or getattr(sys.stdout, "closed", False):  # `effzoo list >&-`
        if sys.stderr is not None:
            print(f"effzoo {ns.command}: error: standard output is closed", file=sys.stderr)
        return 1
    module, func, _ = COMMANDS[ns.command]
    prefix = f"effzoo {ns.command}: error:"
    try:
        return int(getattr(importlib.import_module(module), func)(rest + argv[1:]) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `effzoo list | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as e:
        if _debug():
            raise
        if isinstance(e, EffzooError):
            print(f"{prefix} {e}", file=sys.stderr)
        elif isinstance(e, OSError):
            print(f"{prefix} {os_error_message(e)}", file=sys.stderr)
        else:  # not a mistake of the user's: one line that says so, and how to see more
            first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), "")
            print(
                f"{prefix} unexpected {type(e).__name__}{': ' + first if first else ''}; "
                f"rerun with {DEBUG_ENV}=1 for the traceback, and report it if it is a bug",
                file=sys.stderr,
            )
        return 1


if __name__ == "__main__":
    sys.exit(main())
