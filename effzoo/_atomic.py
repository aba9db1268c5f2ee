"""Files written whole or not at all: the bytes go to a temporary file in the same folder,
are flushed to disk, and replace the target with ``os.replace`` (atomic on POSIX and
Windows). A process killed mid-write leaves the old file, or none, never half of one.

Nothing here imports torch or anything of effzoo: every record writer can use it."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

#: the suffix of a file set aside because it could not be read
DAMAGED = ".damaged"


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (the folder must exist); return the path."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """``Path.write_text``, atomically."""
    return write_bytes(path, text.encode(encoding))


def write_json(path: str | os.PathLike[str], obj: Any, **dumps: Any) -> Path:
    """``obj`` as JSON (``json.dumps`` keyword arguments in ``dumps``), atomically."""
    return write_text(path, json.dumps(obj, **dumps))


def set_aside(path: str | os.PathLike[str]) -> Path:
    """Rename ``path`` to ``<path>.damaged`` (``.damaged-2``, ... where that is taken), so
    that nothing reads it again and it stays for a person to look at; return the new path."""
    path = Path(path)
    new, n = path.with_name(path.name + DAMAGED), 1
    while new.exists():
        n += 1
        new = path.with_name(f"{path.name}{DAMAGED}-{n}")
    os.replace(path, new)
    return new


def read_record(path: str | os.PathLike[str], say: Any) -> dict[str, Any] | None:
    """The JSON record at ``path``, or None where there is none; one that cannot be read
    (cut short by a kill) is set aside (``set_aside``), said through ``say`` in one line,
    and is none, so the caller makes it again."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(record, dict):
            return record
    except (OSError, ValueError):
        pass
    moved = set_aside(path)
    say(f"{path} cannot be read (cut short?): set aside as {moved.name}, redone")
    return None
