"""A loopback stand-in for the Hugging Face Hub, and helpers to run effzoo against it.

It answers ``HEAD``/``GET /<org>/<repo>/resolve/<revision>/<file>`` the way the Hub
answers for an LFS (or Xet-backed) file: ``302`` to a second server, the "CDN" (on
another host, 127.0.0.2: huggingface_hub drops the token there), with ``X-Repo-Commit``
(the commit the revision resolves to), ``X-Linked-Etag`` (the file's sha256),
``X-Linked-Size``, an ``ETag`` of the LFS pointer file's git blob sha1 and
``Location``; the CDN serves the bytes, with byte ranges for resumed downloads. A
missing repo or file gets 404 with ``X-Error-Code`` like the Hub. The ``sha1-etag`` and
``weak-etag`` modes stand for a mirror or proxy that serves the file itself (``200``, no
``X-Linked-*``) under another kind of ETag. ``POST /api/models/<org>/<repo>/paths-info/<rev>``
answers like the Hub's paths-info API (``HfApi.get_paths_info``: size, git oid, and the
LFS sha256 under ``lfs.oid``). Files are served from disk.

Per file a mode, flags joined by ``+``, simulates faults:

* body: ``corrupt`` (a byte flipped, same length and ETag), ``truncate`` (the body stops
  short of the size the HEAD announced), ``trickle`` (256 bytes every 50 ms while the
  mode says so),
  ``stall`` (half the body, then nothing until the mode changes or 120 s pass);
* ETag: ``sha1-etag`` (the git blob sha1, 40 hex, as the Hub sends for non-LFS files),
  ``weak-etag`` (``W/"<size>-<commit>"``, as proxies that recompress send); ``no-lfs``
  leaves the LFS sha256 out of paths-info;
* status: ``401`` (every request, ``X-Error-Code: RepoNotFound`` as the Hub answers
  without a valid token), ``403`` (``GatedRepo``), ``429`` (downloads only, with
  ``Retry-After: 20``; ``429-head``: every request), ``500`` and ``503`` (every
  request), ``404`` (every request, ``X-Error-Code: RepoNotFound``: a mirror without the
  repo), ``bare404`` (a 404 without any Hub header, as a plain web server answers),
  ``html`` (``200`` with an HTML page and no Hub headers, as a captive portal or a
  misconfigured proxy answers);
* ``bad-source``: the mirror's own stored copy is corrupted: the body has a byte flipped
  and, with ``sha1-etag``, the ETag is the git sha1 of those corrupted bytes (so the
  healthy file later comes under another ETag at the same commit).

``GET /_control/<mode>/<org>/<repo>`` switches a repo's mode from another process;
``GET /_ready/<org>/<repo>`` returns once the repo's files are published (a test waits
there, not in effzoo's requests, for a file the stand-in is still writing).
``delay`` slows each chunk, so two clients overlap. A file can be announced before it
exists (``expect``, then ``publish``): requests for it wait, so a test can serve while
it still writes files. Every request's method, path and User-Agent are logged.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote

ROOT = Path(__file__).resolve().parents[1]
_CHUNK = 1 << 20


@dataclass
class Served:
    path: Path
    sha256: str = ""
    size: int = 0
    commit: str = ""
    mode: str = "ok"
    ready: threading.Event = field(default_factory=threading.Event)

    def publish(self, repo: str) -> None:
        """Hash the file now on disk and let requests for it through."""
        self.sha256 = hashlib.sha256(self.path.read_bytes()).hexdigest()
        self.commit = hashlib.sha1(f"{repo}:{self.sha256}".encode()).hexdigest()
        self.size = self.path.stat().st_size
        self.ready.set()

    @property
    def flags(self) -> set[str]:
        return set(self.mode.split("+"))

    @property
    def git_oid(self) -> str:
        """The git blob sha1 of the file (what the Hub sends as the ETag of non-LFS files)."""
        data = self.path.read_bytes()
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()

    @property
    def etag(self) -> str:
        if "sha1-etag" in self.flags and "bad-source" in self.flags:
            data = bytearray(self.path.read_bytes())
            data[self.size // 2] ^= 0xFF
            oid = hashlib.sha1(b"blob %d\0" % len(data) + bytes(data)).hexdigest()
            return f'"{oid}"'
        if "sha1-etag" in self.flags:
            return f'"{self.git_oid}"'
        if "weak-etag" in self.flags:
            return f'W/"{self.size:x}-{self.commit[:8]}"'
        return f'"{self.sha256}"'

    @property
    def mirrored(self) -> bool:
        """Served by a mirror that sends the file itself under another kind of ETag."""
        return bool({"sha1-etag", "weak-etag"} & self.flags)

    @property
    def pointer_oid(self) -> str:
        """The git blob sha1 of the LFS pointer file (the ETag the Hub sends beside
        X-Linked-Etag for an LFS file)."""
        text = f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\n"
        text += f"size {self.size}\n"
        return hashlib.sha1(b"blob %d\0" % len(text) + text.encode()).hexdigest()


@dataclass
class HubStandIn:
    """A threaded HTTP server on 127.0.0.1; ``url`` is what HF_ENDPOINT should be."""

    files: dict[tuple[str, str], Served] = field(default_factory=dict)
    #: (method, path, user agent, start, end) of every answered request
    log: list[tuple[str, str, str, float, float]] = field(default_factory=list)
    delay: float = 0.0
    closing: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._servers = []
        # the CDN on another host, as the Hub's (huggingface_hub 1.x follows a redirect to
        # the same host name, whatever the port): 127.0.0.2 is loopback on Linux
        for cdn, host in ((False, "127.0.0.1"), (True, "127.0.0.2")):
            server = ThreadingHTTPServer((host, 0), _handler(self, cdn))
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._servers.append(server)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def cdn_url(self) -> str:
        """The second server, where ``/resolve/`` redirects LFS downloads."""
        return f"http://127.0.0.2:{self._servers[1].server_address[1]}"

    def add(self, repo: str, path: Path, filename: str = "model.safetensors") -> Served:
        """Serve a file that is on disk now."""
        served = self.expect(repo, path, filename)
        served.publish(repo)
        return served

    def expect(self, repo: str, path: Path, filename: str = "model.safetensors") -> Served:
        """Announce a file still being written: requests for it wait for ``publish``."""
        served = Served(path)
        self.files[(repo, filename)] = served
        return served

    def set_mode(self, repo: str, mode: str) -> None:
        for (r, _), served in self.files.items():
            if r == repo:
                served.mode = mode

    def close(self) -> None:
        self.closing.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()


def _handler(hub: HubStandIn, cdn: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _wait_ready(self, served: Served) -> bool:
            """Wait until ``served`` is published; False (and the connection dropped, no
            answer) when the stand-in closes first, e.g. because its writer failed."""
            deadline = time.monotonic() + 600
            while not served.ready.wait(0.2):
                if hub.closing.is_set() or time.monotonic() > deadline:
                    self.close_connection = True
                    return False
            return True

        def _find(self) -> tuple[Served | None, str]:
            path = unquote(self.path.split("?")[0]).lstrip("/")
            parts = path.split("/")
            if cdn:  # /<org>/<repo>/<file>
                if len(parts) < 3:
                    return None, "RepoNotFound"
                repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
            elif len(parts) < 5 or parts[2] != "resolve":
                return None, "RepoNotFound"
            else:
                repo, filename = "/".join(parts[:2]), "/".join(parts[4:])
            served = hub.files.get((repo, filename))
            if served is None:
                known = any(r == repo for r, _ in hub.files)
                return None, "EntryNotFound" if known else "RepoNotFound"
            if not self._wait_ready(served):
                return None, "closing"
            return served, ""

        def _headers(self, served: Served, status: int, length: int, extra: dict) -> None:
            self.send_response(status)
            if cdn:  # a storage server: its own ETag, nothing of the Hub's
                self.send_header("ETag", f'"{served.sha256[:32]}"')
            else:
                self.send_header("X-Repo-Commit", served.commit)
                self.send_header("ETag", served.etag)
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()

        def _redirect(self, served: Served) -> bool:
            """The Hub's answer for an LFS file: 302 to the CDN with X-Linked-* headers."""
            if cdn or served.mirrored:
                return False
            path = unquote(self.path.split("?")[0]).lstrip("/").split("/")
            location = f"{hub.cdn_url}/{'/'.join(path[:2])}/{'/'.join(path[4:])}"
            self.send_response(302)
            self.send_header("X-Repo-Commit", served.commit)
            self.send_header("ETag", f'"{served.pointer_oid}"')
            self.send_header("X-Linked-Etag", f'"{served.sha256}"')
            self.send_header("X-Linked-Size", str(served.size))
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True

        def _not_found(self, code: str, status: int = 404, extra: dict | None = None) -> None:
            if code == "closing":  # see _wait_ready: no answer
                return
            body = json.dumps({"error": code}).encode()
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _refused(self, served: Served, download: bool) -> bool:
            """Answer 401/403 (every request) or 429 (downloads) when the mode says so."""
            if "401" in served.flags:
                self._not_found("RepoNotFound", 401, {"X-Error-Message": "Invalid credentials"})
            elif "403" in served.flags:
                self._not_found("GatedRepo", 403, {"X-Error-Message": "Access is restricted"})
            elif ("429" in served.flags and download) or "429-head" in served.flags:
                self._not_found("RateLimited", 429, {"Retry-After": "20"})
            elif "404" in served.flags:
                self._not_found("RepoNotFound", 404)
            elif {"500", "503"} & served.flags:
                status = 500 if "500" in served.flags else 503
                self._plain(status, b"upstream error", "text/plain")
            elif "bare404" in served.flags:
                self._plain(404, b"<html><body>404 Not Found</body></html>", "text/html")
            elif "html" in served.flags:
                self._plain(200, b"<html><body>Sign in to the network</body></html>", "text/html")
            else:
                return False
            return True

        def _plain(self, status: int, body: bytes, kind: str) -> None:
            """An answer with no Hub header at all (a plain web server's, a portal's)."""
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _log(self, start: float) -> None:
            ua = self.headers.get("User-Agent", "")
            hub.log.append((self.command, self.path, ua, start, time.monotonic()))

        def do_HEAD(self) -> None:
            start = time.monotonic()
            self._head()
            self._log(start)

        def do_GET(self) -> None:
            start = time.monotonic()
            self._get()
            self._log(start)

        def do_POST(self) -> None:
            start = time.monotonic()
            self._paths_info()
            self._log(start)

        def _head(self) -> None:
            served, code = self._find()
            if served is None:
                return self._not_found(code)
            if not self._refused(served, download=False) and not self._redirect(served):
                self._headers(served, 200, served.size, {})

        def _paths_info(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            parts = unquote(self.path.split("?")[0]).strip("/").split("/")
            if cdn or len(parts) < 6 or parts[:2] != ["api", "models"] or parts[4] != "paths-info":
                return self._not_found("RepoNotFound")
            repo = "/".join(parts[2:4])
            mine = {f: s for (r, f), s in hub.files.items() if r == repo}
            if not mine:
                return self._not_found("RepoNotFound")
            if self._refused(next(iter(mine.values())), download=False):  # modes are per repo
                return
            answer = []
            for name in parse_qs(body).get("paths", []):
                served = mine.get(name)
                if served is None:
                    continue
                if not self._wait_ready(served):
                    return
                entry = {"type": "file", "path": name, "size": served.size, "oid": served.git_oid}
                if "no-lfs" not in served.flags:
                    entry["lfs"] = {"oid": served.sha256, "size": served.size, "pointerSize": 134}
                answer.append(entry)
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _get(self) -> None:
            if self.path.startswith("/_control/") and not cdn:
                _, _, mode, repo = self.path.split("/", 3)
                hub.set_mode(unquote(repo), mode)
                return self._reply_ok()
            if self.path.startswith("/_ready/") and not cdn:  # a test waits for a file
                repo = unquote(self.path.split("/", 2)[2])
                for (r, _), served in list(hub.files.items()):
                    if r == repo and not self._wait_ready(served):
                        return
                return self._reply_ok()
            served, code = self._find()
            if served is None:
                return self._not_found(code)
            if self._refused(served, download=True) or self._redirect(served):
                return
            start, status, extra = 0, 200, {}
            rng = self.headers.get("Range", "")
            if rng.startswith("bytes="):
                start = int(rng[6:].split("-")[0] or 0)
                status = 206
                extra["Content-Range"] = f"bytes {start}-{served.size - 1}/{served.size}"
            end, flags = served.size, served.flags
            if "truncate" in flags:
                end = max(start, served.size // 2)
                extra.pop("Content-Range", None)
            self._headers(served, status, end - start, extra)
            with open(served.path, "rb") as f:
                f.seek(start)
                pos = start
                while pos < end and not hub.closing.is_set():
                    if "stall" in flags and pos >= served.size // 2:
                        self._stall(served)
                        return
                    trickle = "trickle" in served.flags  # live: a fixed server speeds up
                    chunk = f.read(min(256 if trickle else _CHUNK, end - pos))
                    bad = {"corrupt", "bad-source"} & flags
                    if bad and pos <= served.size // 2 < pos + len(chunk):
                        i = served.size // 2 - pos
                        chunk = chunk[:i] + bytes([chunk[i] ^ 0xFF]) + chunk[i + 1 :]
                    try:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        return
                    pos += len(chunk)
                    if hub.delay or trickle:
                        time.sleep(0.05 if trickle else hub.delay)

        def _stall(self, served: Served) -> None:
            """Send nothing more until the mode changes, the server closes or 120 s pass;
            then drop the connection (the client sees a short body)."""
            until = time.monotonic() + 120
            while "stall" in served.flags and time.monotonic() < until:
                if hub.closing.wait(0.05):
                    break
            self.close_connection = True

        def _reply_ok(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    return Handler


def closed_port() -> str:
    """An endpoint on a loopback port nobody listens on (connection refused at once)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def hub_env(endpoint: str, hf_home: Path, **extra: str) -> dict[str, str]:
    """An environment for a child process that talks only to ``endpoint``; effzoo's record
    of verified files (``EFFZOO_CACHE``) lies beside ``hf_home``, outside it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "EFFZOO_"))}
    env.update(
        EFFZOO_CACHE=f"{hf_home}-effzoo",
        HF_ENDPOINT=endpoint,
        HF_HOME=str(hf_home),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_XET="1",
        OMP_NUM_THREADS="1",
        # this checkout first; an overlay of other releases (scripts/compat_weights.sh) kept
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    )
    env.update(extra)
    return env


def run_child(code: str, env: dict[str, str], timeout: float = 300) -> dict:
    """Run ``code`` in a fresh interpreter; it must print one JSON line last."""
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise AssertionError(f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def start_child(code: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
