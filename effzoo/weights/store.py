"""effzoo store directories (``EFFZOO_WEIGHTS``): self-describing safetensors copies.

``effzoo download --to DIR`` writes ``DIR/<arch>.<tag>.safetensors`` with the tag,
repo, revision, the source file's sha256 and the data section's sha256 in the
safetensors header; a store copy is checked against that data hash before use.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from pathlib import Path

from .. import _env
from ..errors import CorruptWeightsError
from .files import (
    CHUNK,
    META_DATA_SHA256,
    META_NOTE,
    META_REPO,
    META_REVISION,
    META_SHA256,
    META_TAG,
    WeightsFile,
    expand_path,
    read_header,
    sha256_file,
)


def write_store_copy(src: Path, dst: Path, meta: dict[str, str]) -> str:
    """Copy a safetensors file to ``dst`` with effzoo metadata (tag, repo, revision, the
    source file's sha256 and the data section's sha256) in its header. Returns dst's sha256."""
    offset, header = read_header(src)
    header["__metadata__"] = {**(header.get("__metadata__") or {}), **meta}
    header["__metadata__"][META_DATA_SHA256] = sha256_file(src, start=offset)
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
            out.write(struct.pack("<Q", len(blob)) + blob)
            f.seek(offset)
            shutil.copyfileobj(f, out, CHUNK)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return sha256_file(dst)


def verify_store_copy(path: Path) -> dict[str, str]:
    """Check a store copy's data against the hash in its header; return its metadata."""
    offset, header = read_header(path)
    meta = dict(header.get("__metadata__") or {})
    want = meta.get(META_DATA_SHA256)
    if want and sha256_file(path, start=offset) != want:
        tag = meta.get(META_TAG) or path.name.removesuffix(".safetensors")
        # double quotes: the command works in cmd.exe, PowerShell and POSIX shells
        raise CorruptWeightsError(
            f"{path} is corrupted: its tensor data does not match the sha256 in its header; "
            "it was not loaded. Fix: delete it and run "
            f'`effzoo download {tag} --to "{path.parent}"` with the Hub reachable'
        )
    return meta


def store_dirs() -> list[Path]:
    """The directories named by ``EFFZOO_WEIGHTS`` (os.pathsep-separated)."""
    raw = _env.value(_env.WEIGHTS)
    return [expand_path(p, f"{_env.WEIGHTS} directory") for p in raw.split(os.pathsep) if p]


def store_path(name: str) -> Path | None:
    """The first ``<dir>/<tag>.safetensors`` in the store directories, unverified."""
    for d in store_dirs():
        path = d / f"{name}.safetensors"
        if path.is_file():
            return path
    return None


def from_store(name: str) -> WeightsFile | None:
    """A verified store copy of tag ``name``, or None when no store directory has one."""
    path = store_path(name)
    if path is None:
        return None
    meta = verify_store_copy(path)
    digest = meta.get(META_SHA256) or sha256_file(path)
    note = meta.get(META_NOTE, "")
    return WeightsFile(path, "store", meta.get(META_REPO), meta.get(META_REVISION), digest, note)
