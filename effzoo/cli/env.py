"""``effzoo env``: what a bug report needs, in the style of ``hf env`` and ``yolo checks``:
versions (from package metadata, never importing Ultralytics), the Hub endpoint and offline
mode, the Hugging Face cache and how it stores files (Xet store links, links, copies),
effzoo's record and store directories, and whether each cached weights tag verifies. No
network; nothing is written except effzoo's hash memo. It is run when something is broken,
so it reports what it can: timm and huggingface_hub are imported to say whether they import
(a failure is a line, not a traceback), no credential is printed (``effzoo._redact``), and
what the console's encoding cannot write is escaped (``\\u732b``).
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

from .. import _env
from .._redact import redact
from .._version import __version__
from ..errors import CorruptWeightsError, dependency_error, first_line
from ..weights import verified
from ..weights.cached import check_cached
from ..weights.catalogue import TagInfo, catalogue
from ..weights.sources import offline_mode
from ..weights.store import store_dirs

FLAGS = ("HF_HUB_DISABLE_XET", "HF_HUB_DISABLE_SYMLINKS")
PACKAGES = ("torch", "timm", "huggingface_hub", "hf_xet", "safetensors", "ultralytics")
#: imported to check that they import (a broken install is what a bug report is about)
IMPORTED = ("timm", "huggingface_hub")
#: proxies huggingface_hub's requests honour (shown with their user info masked)
PROXIES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")
TOKENS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _import_problem(package: str) -> str:
    """What fails when ``package`` is imported, and the fix, on one line ("" if nothing)."""
    try:
        importlib.import_module(package)
    except Exception as e:
        typed = dependency_error(e)
        return str(typed) if typed is not None else f"{type(e).__name__}: {first_line(e)}"
    return ""


def _env_value(name: str) -> str | None:
    for key in (name, name.lower()):
        value = os.environ.get(key, "").strip()
        if value:
            return f"{value} ({key})" if key != name else value
    return None


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
    else:  # what a load would decide without the Hub
        try:
            check_cached(info, pointer, fix=f"effzoo download {info.name}")
        except (CorruptWeightsError, OSError) as e:
            what = "unreadable" if isinstance(e, OSError) else f"sha256 {digest[:12]}"
            return (
                f"  {info.name}: {how}, CORRUPTED ({what}), would not load; "
                f"fix: effzoo download {info.name}"
            )
        state = (
            f"not verified against the Hub yet (loads with a warning; sha256 {digest[:12]}); "
            f"fix: effzoo download {info.name} (online)"
        )
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
    problems = {p: _import_problem(p) for p in IMPORTED}
    lines = [
        f"- effzoo version: {__version__}",
        f"- Platform: {platform.platform()}",
        f"- Python version: {platform.python_version()}",
        *(
            f"- {p} version: {_version(p)}"
            + (f" (FAILS AT IMPORT: {problems[p]})" if problems.get(p) else "")
            for p in PACKAGES
        ),
        *(f"- {k}: {_env_value(k) or '(unset)'}" for k in PROXIES),
    ]
    token = next((f"set ({k})" for k in TOKENS if os.environ.get(k)), "")
    if problems["huggingface_hub"]:
        lines.append(f"- Token: {token or 'not in the environment'}")
        lines.append(
            "- HF endpoint, cache and cached tags: unknown (huggingface_hub does not import)"
        )
        return [redact(ln) for ln in lines + _effzoo_lines()]
    from huggingface_hub import constants

    cache = Path(constants.HF_HUB_CACHE)
    store = _shared_store(cache)
    saved = getattr(constants, "HF_TOKEN_PATH", None)
    if not token and saved and Path(saved).is_file():
        token = f"saved by `hf auth login` ({saved})"
    lines += [
        f"- Token: {token or 'not set'}",
        f"- HF endpoint: {constants.ENDPOINT}",
        f"- Offline mode (HF_HUB_OFFLINE): {offline_mode()}",
        *(f"- {k}: {getattr(constants, k, 'n/a')}" for k in FLAGS),
        f"- HF cache: {cache}",
        f"- HF shared Xet store: {store if store else 'none'}",
        *_effzoo_lines(),
        f"- Ultralytics seams (effzoo.yolo): {_seams()}",
    ]
    tags = _cached_tags(store) if cache.is_dir() else []
    lines.append(f"- Cached weights tags: {len(tags) or 'none'}")
    return [redact(ln) for ln in lines + tags]


def _effzoo_lines() -> list[str]:
    record = verified.record_path()
    n_files = len(verified.load()["hub"])
    dirs = store_dirs()
    return [
        f"- effzoo record: {record} ({n_files} Hub file(s) verified"
        f"{'' if record.is_file() else '; not written yet'})",
        f"- {_env.WEIGHTS}: {os.pathsep.join(map(str, dirs)) if dirs else '(unset)'}",
        *(
            f"- {name}: {_env.value(name) or '(unset: the defaults)'}"
            for name in _env.VARIABLES
            if name != _env.WEIGHTS
        ),
    ]


def _printable(text: str, stream: object) -> str:
    """``text`` as ``stream`` can write it: what its encoding cannot hold (a non-ASCII path
    under an ASCII locale) escaped as ``\\u732b``, lossless for a bug report."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    errors = getattr(stream, "errors", None) or "strict"
    try:
        text.encode(encoding, errors)
    except UnicodeEncodeError:
        return text.encode(encoding, "backslashreplace").decode(encoding, "replace")
    except LookupError:
        pass
    return text


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="effzoo env",
        description="Print what a bug report needs: versions, Hub settings, caches and "
        "whether each cached weights file verifies. No network.",
    )
    p.parse_args(argv)
    text = "\n".join(["Copy-and-paste the text below in your GitHub issue.", "", *report()])
    print(_printable(text, sys.stdout))
    sys.stdout.flush()
    return 0
