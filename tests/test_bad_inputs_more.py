"""Red team, generated, continued (issue 29): what effzoo tells users must hold no
credential, be one typed line, and give advice that works. Kinds: a credential in every
variable effzoo reads, in every shape; a dependency broken at import in each way; paths
the console cannot encode; models larger than their weights; YOLO checkpoints passed as
``pretrained=``. tests/test_bad_inputs.py holds the first set; docs/guarantees.md the counts.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yolo_helpers
from test_secrets import READ

import effzoo
from effzoo.cli import main as cli
from effzoo.errors import (
    CorruptWeightsError,
    EffzooError,
    InvalidArgumentError,
    WeightsMismatchError,
)
from effzoo.weights import WeightsRecord

ROOT = Path(__file__).resolve().parents[1]
SECRET = "Qv7secretW9"

# -- credentials: every variable x every shape x every output --------------------------------

SHAPES = {
    "url-userinfo": f"http://user:{SECRET}@mirror.example/hub",
    "url-token-only": f"https://{SECRET}@mirror.example",
    "proxy-no-scheme": f"puser:{SECRET}@proxy.example:3128",
    "socks": f"socks5h://u:{SECRET}@127.0.0.1:1080",
    "s3-signed": f"https://bucket.s3.example.com/k?X-Amz-Signature={SECRET}&X-Amz-Date=1",
    "s3-credential": f"https://b.example/k?X-Amz-Credential={SECRET}%2F2026",
    "azure-sas": f"https://account.blob.example.net/c/f?sv=2024&sig={SECRET}",
    "token-param": f"https://cdn.example/f?token={SECRET}",
    "cloudfront": f"https://d.example/f?Policy={SECRET}&Key-Pair-Id={SECRET}",
    "hf-token": f"hf_{SECRET}abcdefghijklm",
}
SECRET_CASES = [(v, s) for v in READ for s in SHAPES]


def _surfaces(value: str) -> list[str]:
    """Everything effzoo prints that could quote ``value``: an error (str, repr, reason),
    the record (str, its pickle), and the CLI's line for an unexpected error."""
    import pickle

    e = InvalidArgumentError(f"got {value!r}", reason=f"bad {value}")
    record = WeightsRecord(
        variant="efficientnet_b0", tag=None, repo=None, revision=None, sha256="0" * 64,
        source="file", path=f"/w/{value}", layout="timm", inherited=False, selection="exact",
        note=f"from {value}",
    )  # fmt: skip
    return [str(e), repr(e), e.reason or "", str(record), pickle.dumps(record).decode("latin-1")]


@pytest.mark.parametrize(("var", "shape"), SECRET_CASES, ids=[f"{v}-{s}" for v, s in SECRET_CASES])
def test_no_credential_in_any_output(monkeypatch, var, shape):
    value = SHAPES[shape]
    monkeypatch.setenv(var, value)
    for text in _surfaces(value):
        assert SECRET not in text, text


@pytest.mark.parametrize("shape", list(SHAPES))
def test_no_credential_in_the_cli_line(monkeypatch, capsys, shape):
    def boom(argv):
        raise RuntimeError(f"while fetching {SHAPES[shape]}")

    monkeypatch.setattr(effzoo.cli, "COMMANDS", {**effzoo.cli.COMMANDS, "list": ("os", "y", "")})
    monkeypatch.setattr(os, "y", boom, raising=False)
    monkeypatch.delenv("EFFZOO_DEBUG", raising=False)
    assert cli(["list"]) == 1
    err = capsys.readouterr().err
    assert SECRET not in err and err.count("\n") == 1, err


@pytest.mark.parametrize("var", ["EFFZOO_HUB_TIMEOUT", "EFFZOO_MAX_PTH_BYTES"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_checked_variable_is_quoted_masked(monkeypatch, tmp_path, var, shape):
    """The variables effzoo checks quote the bad value in their error: masked."""
    from effzoo.weights.files import max_pth_bytes
    from effzoo.weights.sources import hub_timeout

    monkeypatch.setenv(var, SHAPES[shape])
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(InvalidArgumentError) as e:
        hub_timeout() if var == "EFFZOO_HUB_TIMEOUT" else max_pth_bytes(tmp_path / "f")
    assert var in str(e.value) and SECRET not in str(e.value)


# -- a dependency broken at import: each package x each way x each command --------------------

#: (an ImportError raised by the package itself: tests/test_cli_broken_env.py)
BREAKS = {
    "runtime-error": 'raise RuntimeError("planted failure")',
    "syntax-error": "def (\n",
    "missing-submodule": "import _no_such_module_planted\n",
}
COMMANDS = [["list"], ["info", "efficientnet_b0"], ["download", "efficientnet_b0"], ["env"]]
BROKEN = [(p, b) for p in ("timm", "huggingface_hub") for b in BREAKS]

CHILD = """
import contextlib, io, json, sys
import effzoo.cli as c
out = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as o:
        try:
            code = c.main(argv)
        except SystemExit as e:
            code = e.code
    out.append({"argv": argv, "code": code, "err": err.getvalue(), "out": o.getvalue()})
print(json.dumps(out))
"""


@pytest.mark.parametrize(("package", "how"), BROKEN, ids=[f"{p}-{b}" for p, b in BROKEN])
def test_a_broken_dependency_is_one_line_on_every_command(tmp_path, package, how):
    planted = tmp_path / "planted" / package
    planted.mkdir(parents=True)
    (planted / "__init__.py").write_text(BREAKS[how])
    env = {k: v for k, v in os.environ.items() if k != "EFFZOO_DEBUG"}
    env.update(
        PYTHONPATH=os.pathsep.join([str(planted.parent), str(ROOT)]),
        HF_HUB_OFFLINE="1",
        EFFZOO_CACHE=str(tmp_path / "ec"),
    )
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(COMMANDS)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    named = 0
    for run in json.loads(proc.stdout.strip().splitlines()[-1]):
        err = run["err"]
        assert "Traceback" not in err and "unexpected" not in err, run
        if run["argv"] == ["env"]:  # the report, with the failure as a line
            assert run["code"] == 0, run
            assert f"- {package} version:" in run["out"] and "FAILS AT IMPORT" in run["out"]
            continue
        if run["code"] == 0:  # a command that does without it (timm imports without hf)
            continue
        assert run["code"] == 1, run
        line = err.strip().splitlines()[-1]  # (download prints its progress line first)
        assert line.startswith(f"effzoo {run['argv'][0]}:") and ": error:" in line, line
        if f"{package} fails at import" in line:
            named += 1
            assert f"{planted / '__init__.py'} shadows the installed {package}" in line, line
    assert named, "no command named the broken package"


# -- paths the console cannot encode -----------------------------------------------------------

NAMES = ["猫", "café", "🐈", "שלום", "e\u0301", "Ω≈ç√"]
ENCODINGS = ["ascii", "latin-1", "cp1252", "utf-8"]

ENV_CHILD = """
import contextlib, io, json, os, sys
import effzoo.cli as c
out = []
for name in json.loads(sys.argv[1]):
    os.environ["EFFZOO_CACHE"] = os.path.join(sys.argv[2], name, "ec")
    os.environ["EFFZOO_WEIGHTS"] = os.path.join(sys.argv[2], name, "w")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = c.main(["env"])
    sys.stdout.flush()
    out.append({"name": name, "code": code, "err": err.getvalue()})
print("RESULT " + json.dumps(out))
"""


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_env_prints_any_path_in_any_console_encoding(tmp_path, encoding):
    env = {k: v for k, v in os.environ.items() if k not in ("EFFZOO_DEBUG", "PYTHONUTF8")}
    env.update(
        PYTHONPATH=str(ROOT),
        PYTHONIOENCODING=encoding,
        HF_HOME=str(tmp_path / "hf-猫"),
        HF_HUB_OFFLINE="1",
    )
    proc = subprocess.run(
        [sys.executable, "-c", ENV_CHILD, json.dumps(NAMES, ensure_ascii=True), str(tmp_path)],
        env=env, cwd=tmp_path, capture_output=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = proc.stdout.decode(encoding).split("RESULT ")[-1]
    for run in json.loads(result):
        assert run["code"] == 0 and "unexpected" not in run["err"], run
    assert proc.stdout.decode(encoding).count("- HF cache:") == len(NAMES)


# -- larger than the weights ----------------------------------------------------------------

GROWN = [
    (name, kwargs)
    for name in ("efficientnet_lite0", "efficientnet_b0", "efficientnet_v2_s", "efficientnet_b3")
    for kwargs in (
        {"width_mult": 1.5},
        {"width_mult": 2.0},
        {"depth_mult": 1.5},
        {"depth_mult": 3.0},
    )
]


@pytest.mark.parametrize(("name", "kwargs"), GROWN, ids=[f"grown{i}" for i in range(len(GROWN))])
def test_larger_than_its_weights_is_refused_before_any_fetch(monkeypatch, name, kwargs):
    monkeypatch.setattr("effzoo.weights.load.get_file", lambda tag: pytest.fail("fetched"))
    with pytest.raises(WeightsMismatchError) as e:
        effzoo.create(name, pretrained=True, **kwargs)
    key = next(iter(kwargs))
    assert f"use {key} <= 1.0 with these weights, or pretrained=False" in str(e.value)


YAML_GROWN = [
    (v, flag) for v in ("efficientnet_lite4", "efficientnet_b1", "efficientnet_v2_b0")
    for flag in (["--width", "1.5"], ["--depth", "2"])
]  # fmt: skip


@pytest.mark.parametrize(("variant", "flag"), YAML_GROWN, ids=[f"yaml{i}" for i in range(6)])
def test_effzoo_yaml_never_writes_a_pretrained_row_that_cannot_load(
    tmp_path, capsys, variant, flag
):
    pytest.importorskip("ultralytics")
    import yaml

    out = tmp_path / "m.yaml"
    assert cli(["yaml", variant, *flag, "-o", str(out)]) == 0
    assert "written with `pretrained: false`" in capsys.readouterr().err
    assert yaml.safe_load(out.read_text())["backbone"][0][3][1]["pretrained"] is False


# -- YOLO checkpoints as pretrained= --------------------------------------------------------

FIXTURE = yolo_helpers.DATA_DIR / "effzoo-0.1.0-tiny-best.pt"
ASKED = [
    ("efficientnet_b0", {}),
    ("efficientnet_v2_s", {}),
    ("efficientnet_lite1", {"width_mult": 0.25, "depth_mult": 0.25}),
    ("efficientnet_lite0", {}),
    ("efficientnet_lite0", {"width_mult": 0.5, "depth_mult": 0.25}),
    ("efficientnet_lite0", {"width_mult": 0.25, "depth_mult": 1.0}),
]
CUTS = [100, 1000, 10_000, 100_000, 400_000, -1]
CKPT_CASES = [("asked", i) for i in range(len(ASKED))] + [("cut", i) for i in range(len(CUTS))]
CKPT_CASES += [("no-model", 0), ("garbage-pickle", 0)]


def _follow(message: str) -> object:
    m = re.search(r"effzoo\.create\(.*?pretrained='[^']*'\)", message)
    assert m, f"no call to follow in: {message}"
    return eval(m.group(0), {"effzoo": effzoo})


@pytest.mark.parametrize(("kind", "i"), CKPT_CASES, ids=[f"ckpt-{k}{i}" for k, i in CKPT_CASES])
def test_a_yolo_checkpoint_mistake_is_typed_and_its_advice_works(tmp_path, kind, i):
    import torch

    path = FIXTURE
    if kind == "cut":
        raw = FIXTURE.read_bytes()
        path = tmp_path / "cut.pt"
        path.write_bytes(raw[: CUTS[i]])
    elif kind == "no-model":
        path = tmp_path / "nomodel.pt"
        torch.save({"model": None, "ema": None, "note": "ultralytics.nn.tasks"}, path)
        # a plain dict: it is not an Ultralytics checkpoint, so it reads as a state dict
    elif kind == "garbage-pickle":
        path = tmp_path / "garbage.pt"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/data.pkl", b"ultralytics.nn.tasks \x00 not a pickle")
    name, kwargs = ASKED[i] if kind == "asked" else ("efficientnet_lite0", {})
    with pytest.raises(EffzooError) as e:
        effzoo.create(name, pretrained=str(path), **kwargs)
    message = str(e.value)
    assert str(path) in message, message
    assert "re-save it with torch.save(model.state_dict()" not in message or kind != "asked"
    if kind == "asked":
        assert isinstance(e.value, WeightsMismatchError)
        model = _follow(message)
        assert "Ultralytics checkpoint" in model.weights.note
    elif kind in ("cut", "garbage-pickle"):
        assert isinstance(e.value, CorruptWeightsError), message


def test_the_generated_set_is_large():
    n = len(SECRET_CASES) + len(SHAPES) * 3 + len(BROKEN) * len(COMMANDS)
    n += len(NAMES) * len(ENCODINGS) + len(GROWN) + len(YAML_GROWN) + len(CKPT_CASES)
    assert n >= 300, n
