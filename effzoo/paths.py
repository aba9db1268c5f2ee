"""Output paths the commands share (``effzoo download --to``, ``effzoo yaml -o``,
``effzoo demo --out``, ``benchmarks/bench.py --json``): checked before any work is done,
and a failed write is one ``CommandError`` naming the file and the fix."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ._checks import fail
from .errors import EffzooError
from .weights.files import expand_path


class CommandError(EffzooError):
    """A command that cannot do what was asked (a bad destination, a failed write)."""


# -- output paths --------------------------------------------------------------------------

#: errno -> what to do about it
_OS_FIXES: dict[int, str] = {
    errno.ENOSPC: "free some space, or write somewhere else",
    errno.EDQUOT: "your disk quota is full: free some space, or write somewhere else",
    errno.EACCES: "check its permissions, or write somewhere you can",
    errno.EPERM: "check its permissions, or write somewhere you can",
    errno.EROFS: "that file system is read-only: write somewhere else",
    errno.EISDIR: "it is a directory: give a file name",
    errno.ENOTDIR: "a part of the path is a file, not a directory: check the path",
    errno.ENOENT: "check the path",
    errno.ENAMETOOLONG: "use a shorter path",
    errno.EEXIST: "remove it, or choose another path",
}


def os_error_message(e: OSError, doing: str = "") -> str:
    """``OSError`` -> ``"<doing> <file>: <reason>; <fix>"`` (one line); the file is left out
    when ``doing`` already names it."""
    reason = e.strerror or str(e) or type(e).__name__
    files = [str(f) for f in (e.filename, e.filename2) if f is not None and str(f) not in doing]
    head = " ".join([doing, *files]).strip()
    fix = _OS_FIXES.get(e.errno or -1, "check the path and try again")
    return f"{head + ': ' if head else ''}{reason}; {fix}"


def _text(option: str, value: str | os.PathLike[str], what: str, example: str) -> Path:
    text = os.fspath(value)
    if not text.strip():
        fail(f"{option} needs {what}, got an empty string; e.g. {option} {example}")
    return expand_path(text, option)  # "~" and "~user"; an unknown user is one error


def _kind(path: Path) -> str:
    mode = path.stat().st_mode
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a directory"


def _check_can_create(option: str, text: str, path: Path) -> None:
    """``path`` does not exist: its nearest existing parent must be a writable directory."""
    base = path.absolute().parent
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        fail(
            f"{option} {text}: {base} is {_kind(base)}, so {path.name!r} cannot be made "
            "inside it; choose another path"
        )
    if not os.access(base, os.W_OK | os.X_OK):
        fail(
            f"{option} {text}: cannot create it, {base} is not writable (permissions or a "
            "read-only file system); choose a directory you can write to",
            error=CommandError,
        )


def output_dir(option: str, value: str | os.PathLike[str], *, example: str = "./out") -> Path:
    """A directory to write into, checked before any work: ``~`` expanded; refused when
    empty, when it is a file or device, or when it (or, if missing, the directory it
    would be made in) cannot be written. Not created here."""
    path = _text(option, value, "a directory", example)
    text = os.fspath(value)
    if path.exists():
        if not path.is_dir():
            fail(
                f"{option} {text} is {_kind(path)}, not a directory; give a directory "
                f"(it is created if missing), e.g. {option} {example}"
            )
        if not os.access(path, os.W_OK | os.X_OK):
            fail(
                f"{option} {text} is not writable (permissions or a read-only file "
                "system); choose a directory you can write to",
                error=CommandError,
            )
    else:
        _check_can_create(option, text, path)
    return path


def output_file(option: str, value: str | os.PathLike[str], *, example: str) -> Path:
    """A file to write, checked before any work: ``~`` expanded; refused when empty,
    when it is a directory, or when it (or where it would be made) cannot be written.
    Devices such as ``/dev/null`` are accepted. ``example`` is a file name to suggest."""
    path = _text(option, value, "a file name", example)
    text = os.fspath(value)
    if path.is_dir() or text.endswith(("/", os.sep)):
        what = "is" if path.is_dir() else "names"
        fail(
            f"{option} {text} {what} a directory; give a file name, e.g. {option} {path / example}"
        )
    if path.exists():
        if not os.access(path, os.W_OK):
            fail(
                f"{option} {text} is not writable (permissions or a read-only file "
                "system); choose a file you can write",
                error=CommandError,
            )
    else:
        _check_can_create(option, text, path)
    return path


def write_text(option: str, path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (its folders made); a failure is one ``CommandError``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise CommandError(os_error_message(e, f"{option}: cannot write {path}")) from None
