"""effzoo's own record of the Hub files it verified, ``<EFFZOO_CACHE>/verified.json``, kept
outside huggingface_hub's cache, whose layout (blob names included) is huggingface_hub's
private business; (docs/weights.md, "How files are verified") is the user's view. Format 1:

* ``hub``: ``"<repo>/<filename>"`` -> the versions effzoo checked: the sha256 the Hub gave
  (ETag, X-Linked-Etag or paths-info), with the commit, the ETag and how it was learnt. A
  file hashing to one of these is that version, however it is cached, also offline.
* ``hashed``: a memo ``realpath -> [size, mtime_ns, ctime_ns, inode, sha256]``, so an
  unchanged file is not hashed twice (a rewrite changes its ctime, a replacement its inode).

The record is user data: entries are added or merged, never dropped; unknown keys are
written back as they were; every write says which effzoo wrote it (``written_by``, each
entry its ``effzoo``). A ``verified.json`` in another format is never rewritten: this
effzoo keeps its own in ``verified.v1.json`` beside it. Writes are atomic under a file
lock; one that fails costs a re-hash or an unchecked load said at WARNING, never a wrong one.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import _env
from .._atomic import write_json
from .._version import __version__
from .files import SHA256_RE, sha256_file

log = logging.getLogger("effzoo")

CACHE_ENV = _env.CACHE
RECORD_NAME = "verified.json"
FORMAT = 1
#: where this format lives when ``verified.json`` holds something else
OWN_NAME = f"verified.v{FORMAT}.json"
#: files kept in the hash memo (a memo: dropping one costs a re-hash, never a verification)
MAX_HASHED = 512
LOCK_S = 10.0
WRITER = f"effzoo {__version__}"


def cache_dir() -> Path:
    """effzoo's own cache directory (``EFFZOO_CACHE``, else the XDG cache home)."""
    raw = _env.value(CACHE_ENV)
    if raw:
        return Path(raw).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join("~", ".cache")
    return Path(base).expanduser() / "effzoo"


def _read(path: Path) -> tuple[dict[str, Any] | None, str]:
    """(the record in this effzoo's format, or None; why not, "" when absent or ours)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, ""
    except (OSError, ValueError) as e:
        return None, f"unreadable ({type(e).__name__}: {str(e)[:80]})"
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        by = data.get("written_by") if isinstance(data, dict) else None
        return None, f"format {got!r}" + (f" written by {by}" if by else "")
    if not (isinstance(data.get("hub"), dict) and isinstance(data.get("hashed"), dict)):
        return None, "format 1 without its 'hub'/'hashed' tables"
    return data, ""


def record_path() -> Path:
    """The file this effzoo keeps its record in: ``verified.json``, unless that holds a
    format it does not know (then ``verified.v1.json`` beside it; the other is kept)."""
    main = cache_dir() / RECORD_NAME
    _, foreign = _read(main)
    return cache_dir() / OWN_NAME if foreign else main


def _empty() -> dict[str, Any]:
    return {"format": FORMAT, "hub": {}, "hashed": {}}


def load() -> dict[str, Any]:
    """The record as it is on disk (empty when missing or in another format)."""
    path = record_path()
    data, why = _read(path)
    if why:
        log.warning("effzoo's record %s is %s; it is kept as it is, and effzoo %s starts "
                    "no record over it", path, why, __version__)  # fmt: skip
    return data if data is not None else _empty()


def _update(change: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``change`` to the record and write it back atomically, under its lock; a file
    in a format this effzoo cannot read is never written over."""
    from filelock import FileLock, Timeout

    path = record_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock", timeout=LOCK_S):
            data, why = _read(path)
            if why:
                log.warning("effzoo's record %s is %s; not writing over it", path, why)
                return
            data = data if data is not None else _empty()
            change(data)
            data["written_by"] = WRITER
            write_json(path, data, indent=1, sort_keys=True)
    except (OSError, Timeout) as e:  # a read-only home: verification still held this time
        log.warning("could not update effzoo's record %s (%s); set %s to a writable "
                    "directory to keep what was verified", path, e, CACHE_ENV)  # fmt: skip


def file_sha256(path: Path) -> str:
    """The file's sha256, from the memo when the file (its real path, size and mtime) is
    unchanged since it was hashed, else hashed now and remembered."""
    real = os.path.realpath(path)
    st = os.stat(real)
    stat = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
    hit = load()["hashed"].get(real)
    if isinstance(hit, list) and len(hit) == 5 and hit[:4] == stat:
        if SHA256_RE.fullmatch(str(hit[4])):
            return str(hit[4])
    digest = sha256_file(Path(real))

    def put(data: dict[str, Any]) -> None:
        hashed = data["hashed"]
        hashed.pop(real, None)
        hashed[real] = [*stat, digest]
        for old in list(hashed)[: max(0, len(hashed) - MAX_HASHED)]:
            del hashed[old]

    _update(put)
    return digest


def forget_hash(path: Path) -> None:
    """Drop a file from the memo (it is about to be replaced)."""
    real = os.path.realpath(path)
    if real in load()["hashed"]:
        _update(lambda data: data["hashed"].pop(real, None))


def versions(repo: str, filename: str) -> list[dict[str, Any]]:
    """The versions of a Hub file effzoo verified, newest last."""
    got = load()["hub"].get(f"{repo}/{filename}")
    return [v for v in got if isinstance(v, dict)] if isinstance(got, list) else []


def known(repo: str, filename: str, sha256: str) -> dict[str, Any] | None:
    """The recorded version of a Hub file with this sha256, or None."""
    return next((v for v in reversed(versions(repo, filename)) if v.get("sha256") == sha256), None)


def sha256_for_etag(repo: str, filename: str, etag: str) -> str | None:
    """The sha256 effzoo learnt for a version the server named by another kind of ETag."""
    hit = next((v for v in reversed(versions(repo, filename)) if v.get("etag") == etag), None)
    return hit["sha256"] if hit and SHA256_RE.fullmatch(str(hit.get("sha256"))) else None


def sha256_for_commit(repo: str, filename: str, commit: str) -> str | None:
    """The sha256 effzoo verified for the file at a commit, or None."""
    hit = next((v for v in reversed(versions(repo, filename)) if v.get("commit") == commit), None)
    return hit["sha256"] if hit else None


def remember(
    repo: str, filename: str, sha256: str, *, commit: str | None, etag: str | None, via: str
) -> None:
    """Record that the Hub's ``repo/filename`` at ``commit`` hashes to ``sha256``. An entry
    for the same version is merged (keys this effzoo does not know are kept); none is
    dropped."""
    entry = {
        "sha256": sha256, "commit": commit, "etag": etag, "via": via, "at": int(time.time()),
        "effzoo": __version__,
    }  # fmt: skip

    def put(data: dict[str, Any]) -> None:
        key = f"{repo}/{filename}"
        old = data["hub"].get(key)
        if old is not None and not isinstance(old, list):  # not ours to read: kept aside
            data["hub"][f"{key}#kept"] = old
            old = []
        same = [
            v
            for v in old or []
            if isinstance(v, dict) and (v.get("sha256"), v.get("etag")) == (sha256, etag)
        ]
        kept = [v for v in old or [] if not any(v is s for s in same)]
        merged = {k: v for s in same for k, v in s.items()}
        data["hub"][key] = [*kept, {**merged, **entry}]

    _update(put)
