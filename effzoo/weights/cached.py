"""What a Hugging Face cache copy of a tag's file is worth without the Hub, and its repair
(docs/weights.md, "How files are verified").

``check_cached``: a copy whose sha256 is in effzoo's record (``verified``) is the Hub's file.
Any other (a cache copied without the record, or filled by timm) is checked as far as it
can be: a blob named by a sha256 must hash to it, the record's sha256 for its commit must
match, its safetensors header must be sound. It loads with a note and a WARNING, refused
only on evidence of corruption. ``evict`` removes, through huggingface_hub's cache API, an
entry ``force_download`` left pointing at the old blob (the ETag changed under one commit).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, NamedTuple

from .._version import __version__
from ..errors import CorruptWeightsError
from . import verified
from .catalogue import TagInfo
from .files import SHA256_RE, WeightsFile, hf_cache_origin, read_header

log = logging.getLogger("effzoo")


def blob_name(pointer: Path) -> str | None:
    """The name huggingface_hub gave the repo's blob that ``pointer`` links to (its
    ``models--*/blobs/<name>``), or None for a plain copy (no symlinks, ``cp -rL``)."""
    path = Path(pointer)
    for _ in range(8):  # snapshot -> repo blob -> (shared Xet store entry)
        if path.parent.name == "blobs" and path.parent.parent.name.startswith("models--"):
            return path.name
        if not path.is_symlink():
            return None
        path = Path(os.path.normpath(path.parent / os.readlink(path)))  # one link at a time
    return None


def hub_kwargs(tag: TagInfo) -> dict[str, Any]:
    """``hf_hub_download``'s arguments for a tag's file."""
    return dict(
        repo_id=tag.repo,
        filename=tag.filename,
        revision=tag.revision,
        library_name="effzoo",
        library_version=__version__,
    )


def locate_pointer(tag: TagInfo) -> Path | None:
    """The cached copy of a tag's file (huggingface_hub's own look-up, no network), or None."""
    import huggingface_hub as hf
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(hf.hf_hub_download(**hub_kwargs(tag), local_files_only=True))
    except LocalEntryNotFoundError:
        return None


class CacheCheck(NamedTuple):
    """What the checks without the Hub found: the file, and what could not be checked
    ("" when effzoo's record verified it)."""

    file: WeightsFile
    unchecked: str


def check_cached(tag: TagInfo, pointer: Path, *, fix: str) -> CacheCheck:
    """Verify a cached copy without the Hub; ``CorruptWeightsError`` (with ``fix``) on
    evidence of corruption, else the file and what could not be checked."""
    digest = verified.file_sha256(pointer)
    entry = verified.known(tag.repo, tag.filename, digest)
    if entry is not None:
        read_header(pointer)
        return CacheCheck(
            WeightsFile(pointer, "hf-cache", tag.repo, entry.get("commit"), digest), ""
        )
    origin = hf_cache_origin(pointer)
    commit = origin.commit if origin else None
    want = verified.sha256_for_commit(tag.repo, tag.filename, commit) if commit else None
    if want is not None:
        raise CorruptWeightsError(
            f"the cached copy of {tag.repo}/{tag.filename} ({pointer}) is corrupted: its "
            f"sha256 is {digest[:12]}..., the Hub gave {want[:12]}... for commit "
            f"{commit[:10]} when effzoo verified it ({verified.record_path()}); it was not "
            f"loaded. Fix: {fix}"
        )
    name = blob_name(pointer)
    named = name if name and SHA256_RE.fullmatch(name) else None
    if named is not None and named != digest:
        raise CorruptWeightsError(
            f"the cached copy of {tag.repo}/{tag.filename} ({pointer}) is corrupted: "
            f"huggingface_hub stored it under the sha256 {named[:12]}... (the Hub's ETag), "
            f"its content hashes to {digest[:12]}...; it was not loaded. Fix: {fix}"
        )
    read_header(pointer)
    checked = (
        "its content matches the sha256 huggingface_hub named it by"
        if named
        else "no sha256 to check its content against (a plain copy in the cache)"
    )
    unchecked = (
        f"not checked against the Hub: effzoo has no record of verifying this file; "
        f"{checked}; its safetensors header, dtypes and shapes checked against the architecture"
    )
    return CacheCheck(WeightsFile(pointer, "hf-cache", tag.repo, commit, digest), unchecked)


def cached_state(tag: TagInfo) -> str:
    """One phrase for ``effzoo info``: "cached" only for a copy that would load."""
    from .store import store_path, verify_store_copy

    stored = store_path(tag.name)
    if stored is not None:
        try:
            verify_store_copy(stored)
        except CorruptWeightsError:
            return f"CORRUPTED store copy, would not load: {stored}"
        return f"cached (store {stored.parent})"
    pointer = locate_pointer(tag)
    if pointer is None:
        return "not cached"
    try:
        got = check_cached(tag, pointer, fix=f"effzoo download {tag.name}")
    except (CorruptWeightsError, OSError):
        return f"CORRUPTED cached copy, would not load: {pointer}"
    return "cached" if not got.unchecked else "cached (not verified against the Hub yet)"


def evict(tag: TagInfo, pointer: Path) -> bool:
    """Remove ``pointer``'s cache entry (and its blob, when nothing else links it) through
    huggingface_hub's cache API; False when that API could not do it."""
    try:
        from huggingface_hub import constants, scan_cache_dir

        info = scan_cache_dir(constants.HF_HUB_CACHE)
        files = [
            (rev, f)
            for repo in info.repos
            if repo.repo_id == tag.repo and repo.repo_type == "model"
            for rev in repo.revisions
            for f in rev.files
            if Path(f.file_path) == Path(pointer)
        ]
        if not files:
            return False
        if hasattr(info, "delete_files"):  # huggingface_hub >= 2.x: one file
            strategy = info.delete_files(*(f for _, f in files))
        else:  # older releases delete whole revisions (this repo's, at this commit)
            strategy = info.delete_revisions(*{rev.commit_hash for rev, _ in files})
        strategy.execute()
    except Exception as e:  # a cache huggingface_hub itself cannot scan
        log.warning("could not remove %s through huggingface_hub (%s)", pointer, e)
        return False
    return not os.path.lexists(pointer)
