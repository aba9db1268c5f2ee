"""Weights files on disk: reading them, checking them, saying where they came from.

A ``.safetensors`` file is validated by the safetensors library before any tensor is read;
a torch file is read with ``torch.load(weights_only=True)``, once, after checking
what it may inflate to (``EFFZOO_MAX_PTH_BYTES``). Every error is a
``CorruptWeightsError`` or ``WeightsMismatchError`` naming the file and what to do
(``InvalidArgumentError`` for an unknown suffix).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch

from .. import _env
from ..errors import (
    CorruptWeightsError,
    InvalidArgumentError,
    WeightsMismatchError,
    WeightsNotFoundError,
    first_line,
)
from .convert import unwrap, unwrap_keys

SHA256_RE = re.compile(r"[0-9a-f]{64}")
COMMIT_RE = re.compile(r"[0-9a-f]{40}")
CHUNK = 1 << 22
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
#: safetensors header metadata keys that effzoo writes into store copies
META_TAG, META_REPO, META_REVISION = "effzoo.tag", "effzoo.repo", "effzoo.revision"
META_SHA256, META_DATA_SHA256 = "effzoo.sha256", "effzoo.data_sha256"
#: what a store copy is when not the Hub's file as served (a converted PyPI copy)
META_NOTE = "effzoo.note"
_HF_CACHE_DIR = re.compile(r"models--([^/\\]+)--([^/\\]+?)(?:[/\\]snapshots[/\\]([0-9a-f]{40}))?$")
#: safetensors' own words for a file cut short (or padded), and what effzoo adds to them
_CUT_SHORT = {
    "header too small": ": truncated?",
    "invalid header length": ": truncated?",
    "not fully covered": ": truncated or padded?",
}
MAX_PTH_ENV = _env.MAX_PTH_BYTES
#: a torch file may inflate to twice its size plus this (torch stores tensors uncompressed)
PTH_SLACK = 64 << 20


@dataclass(frozen=True)
class WeightsFile:
    """A weights file on disk and where it came from."""

    path: Path
    source: str  # "hub" | "hf-cache" | "store" | "pypi" | "file"
    repo: str | None
    revision: str | None
    sha256: str
    note: str = ""


def expand_path(raw: str | os.PathLike[str], what: str) -> Path:
    """``raw`` with ``~`` expanded; ``WeightsNotFoundError`` naming it when ``~user`` is
    unknown here (``what`` says where the path came from)."""
    try:
        return Path(raw).expanduser()
    except RuntimeError:  # pathlib: "Could not determine home directory."
        user = str(raw).split("/", 1)[0].split(os.sep, 1)[0]
        raise WeightsNotFoundError(
            f"{what} {str(raw)!r}: cannot expand {user!r}, there is no such user (or no home "
            "directory) on this machine; give the full path",
            reason=f"cannot expand {user!r} in {what}",
        ) from None


@contextmanager
def errors_name_file(path: Path) -> Iterator[None]:
    """Put ``path`` in front of a weights error raised inside that does not name it."""
    try:
        yield
    except (CorruptWeightsError, WeightsMismatchError) as e:
        if str(path) in str(e):
            raise
        raise type(e)(f"{path}: {e}", reason=e.reason) from e


def sha256_file(path: Path, start: int = 0) -> str:
    """The sha256 of ``path`` from byte ``start`` on."""
    with open(path, "rb") as f:
        f.seek(start)
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_header(path: Path) -> tuple[int, dict[str, Any]]:
    """(data offset, header) of a safetensors file, after the safetensors library itself
    has validated it (offsets, dtypes, shapes, sizes, metadata, no padding);
    ``CorruptWeightsError`` where it refuses the file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            f.metadata()
        with open(path, "rb") as raw:
            (n,) = struct.unpack("<Q", raw.read(8))
            return 8 + n, json.loads(raw.read(n))
    except Exception as e:  # safetensors' SafetensorError, OSError
        why = str(e)[:200]
        hint = next((h for words, h in _CUT_SHORT.items() if words in why), "")
        raise CorruptWeightsError(
            f"{path} is not a readable safetensors file ({why}{hint}); re-download it, or "
            "re-save it with safetensors.torch.save_file"
        ) from e


def file_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors header (effzoo's keys: ``META_*``)."""
    return dict(read_header(path)[1].get("__metadata__") or {})


class CacheOrigin(NamedTuple):
    """Where a file inside a Hugging Face cache came from."""

    org: str
    name: str  # the repo's name within ``org``
    commit: str | None

    @property
    def repo(self) -> str:
        return f"{self.org}/{self.name}"


def hf_cache_origin(path: Path) -> CacheOrigin | None:
    """The repo and commit of a file inside a Hugging Face cache, else None."""
    m = _HF_CACHE_DIR.search(str(path.parent))
    return CacheOrigin(m.group(1), m.group(2), m.group(3)) if m else None


def peek(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of a safetensors file, from its header alone."""
    header = read_header(path)[1]
    with errors_name_file(path):
        return unwrap_keys({k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"})


def max_pth_bytes(path: Path) -> int:
    """What a torch file may inflate to: ``EFFZOO_MAX_PTH_BYTES``, or by default twice its
    size plus 64 MiB (torch stores tensors uncompressed, so real files stay near 1x)."""
    raw = _env.value(MAX_PTH_ENV)
    if not raw:
        return 2 * path.stat().st_size + PTH_SLACK
    if not raw.isdigit() or int(raw) < 1:
        raise InvalidArgumentError(f"{MAX_PTH_ENV} must be a number of bytes >= 1, got {raw!r}")
    return int(raw)


def check_inflation(path: Path) -> None:
    """Refuse a torch file that would inflate past ``max_pth_bytes`` before loading it.

    A zip archive (torch >= 1.6) is measured by the uncompressed sizes it declares; a
    legacy (pre-1.6) file stores its tensors raw, so it is measured by its own size."""
    limit = max_pth_bytes(path)
    with open(path, "rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"
    total = path.stat().st_size
    if is_zip:
        try:
            with zipfile.ZipFile(path) as z:
                total = sum(i.file_size for i in z.infolist())
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            raise CorruptWeightsError(
                f"{path} is truncated or damaged (not a complete zip archive: {e}); it was not "
                "passed to torch.load(weights_only=True). Fix: copy or download it again "
                '(docs/weights.md, "Local files")'
            ) from None
    if total > limit:
        raise CorruptWeightsError(
            f"{path} would inflate to {total} bytes, over the {limit}-byte limit; nothing was "
            f"loaded. Fix, if you trust the file: {MAX_PTH_ENV}={total}, or convert it to "
            '.safetensors (docs/weights.md, "Local files")'
        )


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors or torch file (``weights_only=True``), unwrapped."""
    if path.suffix == ".safetensors":
        read_header(path)
        from safetensors.torch import load_file

        try:
            sd = load_file(str(path))
        except Exception as e:  # safetensors raises its own SafetensorError
            raise CorruptWeightsError(f"{path} could not be read as safetensors ({e})") from e
        with errors_name_file(path):
            return unwrap(sd)
    if path.suffix not in TORCH_SUFFIXES:
        raise InvalidArgumentError(
            f"{path}: unknown weights format {path.suffix!r}; use .safetensors or "
            f"{'/'.join(TORCH_SUFFIXES)} (read with torch.load(weights_only=True))"
        )
    if path.stat().st_size == 0:
        raise CorruptWeightsError(f"{path} is empty (0 bytes): re-download or re-save it")
    check_inflation(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, bad pickle, a pickled class weights_only refuses
        raise CorruptWeightsError(
            f"{path} could not be loaded with torch.load(weights_only=True) ({type(e).__name__}: "
            f"{first_line(e, 160)}). Fix: copy it again if truncated, or save the weights alone, "
            'torch.save(model.state_dict(), path) (docs/weights.md, "Local files")'
        ) from e
    with errors_name_file(path):
        return unwrap(obj)
