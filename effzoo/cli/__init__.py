"""``effzoo`` command line: list | info | download | env | yaml | demo | yolo | compare.

Each sub-command lives in its own module, imported only when it runs, and parses its own
arguments (``effzoo list`` never imports Ultralytics). Results go to stdout, progress and
errors to stderr. Every failure is one line, ``effzoo COMMAND: error: ...``, and a non-zero
exit: effzoo's errors, an ``OSError`` (no space, permission denied...), a dependency that
fails at import and an output the console's encoding cannot print each name the fix;
anything else is a bug, said so, and ``EFFZOO_DEBUG=1`` shows the traceback of any error.
No line holds a credential (``effzoo._redact``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from .. import _env
from .._redact import redact
from ..errors import EffzooError, dependency_error

#: command -> (module, function taking argv and returning an exit code, help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "list": ("effzoo.cli.info", "list_main", "table of every variant"),
    "info": ("effzoo.cli.info", "info_main", "one variant: levels, params, weights tags"),
    "download": ("effzoo.cli.download", "main", "prefetch weights for offline use"),
    "env": ("effzoo.cli.env", "main", "what a bug report needs: versions, caches, what verifies"),
    "yaml": (
        "effzoo.cli.yolo",
        "yaml_main",
        "write an Ultralytics model yaml for a variant: YOLO11, YOLO12, YOLO26 (P2, P6), RT-DETR",
    ),
    "demo": ("effzoo.demo", "main", "train a small YOLO11-EfficientNet offline"),
    "yolo": ("effzoo.cli.yolo", "yolo_main", "the Ultralytics CLI with effzoo registered"),
    "compare": ("effzoo.cli.yolo", "compare_main", "train and time detectors on your data"),
}


def plain(text: str) -> str:
    """``text`` without terminal colour codes: an error line reads the same in a log file,
    a pipe or a terminal. The codes are Ultralytics' (``colorstr``): its own
    ``remove_colorstr`` takes them out, where Ultralytics was imported at all."""
    utils = sys.modules.get("ultralytics.utils")
    strip = getattr(utils, "remove_colorstr", None)
    return strip(text) if callable(strip) else text


#: set (to anything but "" or "0") to get the traceback of any error instead of one line
DEBUG_ENV = _env.DEBUG

EPILOG = (
    "Run `effzoo COMMAND -h` for a command's options. An error is one line on stderr, "
    "`effzoo COMMAND: error: ...`, and a non-zero exit status (2: a malformed command "
    f"line, 130: interrupted, otherwise 1); set {DEBUG_ENV}=1 to see the traceback of any "
    "error instead."
)


# -- dispatch ------------------------------------------------------------------------------


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
        if _env.value(DEBUG_ENV) not in ("", "0"):
            raise
        print(redact(plain(f"{prefix} {_one_line(e)}")), file=sys.stderr)
        return 1


def _one_line(e: Exception) -> str:
    """The error line for ``e`` (after ``effzoo COMMAND: error:``)."""
    from ..paths import os_error_message

    typed = dependency_error(e)
    if typed is not None:
        e = typed
    if isinstance(e, EffzooError):
        return str(e)
    if isinstance(e, OSError):
        return os_error_message(e)
    if isinstance(e, UnicodeEncodeError) and _same_codec(e.encoding, sys.stdout):
        return (
            f"the output holds characters that standard output's encoding ({e.encoding}) "
            f"cannot write ({e.object[e.start : e.end]!r}); Fix: set PYTHONIOENCODING=utf-8 "
            "(or PYTHONUTF8=1)"
        )
    ultralytics_says = ultralytics_user_error(e)
    if ultralytics_says is not None:
        return f"{ultralytics_says} (Ultralytics)"
    # not a mistake of the user's: one line that says so, and how to see more
    first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), "")
    return (
        f"unexpected {type(e).__name__}{': ' + first if first else ''}; "
        f"rerun with {DEBUG_ENV}=1 for the traceback, and report it if it is a bug"
    )


#: where Ultralytics checks what its user typed, as (the raising file's last three path
#: parts, the function or None for any in that file): its command-line arguments (cfg),
#: a path that is no model (AutoBackend), the device (select_device), the image size
_ULTRALYTICS_CHECKS = {
    ("ultralytics", "cfg", "__init__.py"): None,
    ("ultralytics", "nn", "autobackend.py"): None,
    ("ultralytics", "utils", "torch_utils.py"): "select_device",
    ("ultralytics", "utils", "checks.py"): "check_imgsz",
}


def ultralytics_user_error(e: BaseException) -> str | None:
    """Ultralytics' own message for ``e``, on one line, when one of its checks of the
    user's arguments raised it (its traceback ends there: a bad argument, device, image
    size, or a path that is no model); None for anything else, a bug included."""
    if not isinstance(e, (SyntaxError, ValueError, TypeError)):
        return None
    frames = traceback.extract_tb(e.__traceback__)
    if not frames:
        return None
    where = tuple(Path(frames[-1].filename).parts[-3:])
    if where not in _ULTRALYTICS_CHECKS or _ULTRALYTICS_CHECKS[where] not in (
        None,
        frames[-1].name,
    ):
        return None
    lines = plain(str(e)).splitlines()  # its help or CUDA state follows a newline
    return next((ln.strip() for ln in lines if ln.strip()), type(e).__name__)


def _same_codec(encoding: str, stream: object) -> bool:
    """Whether ``encoding`` is the codec ``stream`` writes with."""
    import codecs

    try:
        wanted = codecs.lookup(stream.encoding).name  # type: ignore[attr-defined]
        return codecs.lookup(encoding).name == wanted
    except (LookupError, AttributeError, TypeError):
        return False


if __name__ == "__main__":
    sys.exit(main())
