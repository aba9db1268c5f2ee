"""``effzoo env``: what a bug report needs, in the style of ``hf env`` and ``yolo checks``.

Versions (read from the installed packages' metadata: nothing heavy is imported, never
Ultralytics), the Hub endpoint and offline mode, the Hugging Face cache and how it
stores files (links into the shared Xet store, links, or copies), effzoo's own record
and store directories, and for every cached weights tag whether it verifies against
effzoo's record. No network; nothing is written except effzoo's hash memo.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from .._version import __version__
from ..weights import verified
from ..weights.catalogue import TagInfo, catalogue
from ..weights.sources import TIMEOUT_ENV, offline_mode
from ..weights.store import store_dirs

FLAGS = ("HF_HUB_DISABLE_XET", "HF_HUB_DISABLE_SYMLINKS")
PACKAGES = ("torch", "timm", "huggingface_hub", "hf_xet", "safetensors", "ultralytics")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _shared_store(cache: Path) -> Path | None:
    """The shared Xet store of huggingface_hub 2.x in ``cache``, if it has one (asked of
    huggingface_hub itself; older releases have none)."""
    try:
        from huggingface_hub.utils import _shared_blobs as shared
    except ImportError:
        return None
    try:
        store = shared.shared_blobs_dir(cache)
        return store if shared.is_shared_blobs_dir(store) else None
    except Exception:  # a private helper that moved: report no store rather than fail
        return None


def _how_stored(pointer: Path, store: Path | None) -> str:
    real = Path(os.path.realpath(pointer))
    if store is not None and Path(os.path.realpath(store)) in real.parents:
        return "link into the shared Xet store"
    return "link" if pointer.is_symlink() else "copy"


def _cached_tags(store: Path | None) -> list[str]:
    from huggingface_hub import try_to_load_from_cache

    lines = []
    for info in catalogue().tags.values():
        try:
            found = try_to_load_from_cache(info.repo, info.filename, revision=info.revision)
        except Exception:  # an unreadable cache entry: say so below, per tag
            found = None
        if isinstance(found, str):
            lines.append(_tag_line(info, Path(found), store))
    return lines


def _tag_line(info: TagInfo, pointer: Path, store: Path | None) -> str:
    try:
        digest = verified.file_sha256(pointer)
    except OSError as e:
        return f"  {info.name}: unreadable ({e.strerror or e})"
    entry = verified.known(info.repo, info.filename, digest)
    how = _how_stored(pointer, store)
    if entry is not None:
        commit = str(entry.get("commit") or "?")[:10]
        state = f"verifies (sha256 {digest[:12]}, {info.repo}@{commit}, via {entry.get('via')})"
    elif verified.versions(info.repo, info.filename):
        state = (
            f"CORRUPTED (sha256 {digest[:12]} is not what the Hub gave); "
            f"fix: effzoo download {info.name}"
        )
    else:
        state = f"not verified by effzoo yet; fix: effzoo download {info.name} (online)"
    return f"  {info.name}: {how}, {state}"


def _seams() -> str:
    """effzoo.yolo's seam check, run now (never fatal to the report)."""
    if importlib.util.find_spec("ultralytics") is None:
        return "not checked (Ultralytics is not installed)"
    try:
        from ..yolo.patches import seam_report

        return seam_report()
    except Exception as e:  # what a bug report needs to show, not a reason to stop
        return f"not checked ({type(e).__name__}: {str(e)[:300]})"


def report() -> list[str]:
    from huggingface_hub import constants

    cache = Path(constants.HF_HUB_CACHE)
    store = _shared_store(cache)
    record = verified.record_path()
    n_files = len(verified.load()["hub"])
    dirs = store_dirs()
    lines = [
        f"- effzoo version: {__version__}",
        f"- Platform: {platform.platform()}",
        f"- Python version: {platform.python_version()}",
        *(f"- {p} version: {_version(p)}" for p in PACKAGES),
        f"- HF endpoint: {constants.ENDPOINT}",
        f"- Offline mode (HF_HUB_OFFLINE): {offline_mode()}",
        *(
            f"- {k}: {getattr(constants, k, 'n/a')}"
            for k in ("HF_HUB_DISABLE_XET", "HF_HUB_DISABLE_SYMLINKS")
        ),
        f"- HF cache: {cache}",
        f"- HF shared Xet store: {store if store else 'none'}",
        f"- effzoo record: {record} ({n_files} Hub file(s) verified"
        f"{'' if record.is_file() else '; not written yet'})",
        f"- EFFZOO_WEIGHTS: {os.pathsep.join(map(str, dirs)) if dirs else '(unset)'}",
        f"- {TIMEOUT_ENV}: {os.environ.get(TIMEOUT_ENV, '').strip() or '(unset: the defaults)'}",
    ]
    lines.append(f"- Ultralytics seams (effzoo.yolo): {_seams()}")
    tags = _cached_tags(store) if cache.is_dir() else []
    lines.append(f"- Cached weights tags: {len(tags) or 'none'}")
    return lines + tags


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="effzoo env",
        description="Print what a bug report needs: versions, Hub settings, caches and "
        "whether each cached weights file verifies. No network.",
    )
    p.parse_args(argv)
    print("\n".join(["Copy-and-paste the text below in your GitHub issue.", "", *report()]))
    sys.stdout.flush()
    return 0
