"""The command line keeps its promise of one-line errors where the environment itself is
broken (issue 29 item 6): timm or huggingface_hub failing at import (a module planted on
PYTHONPATH, as a stray ``timm/`` directory or a half-upgraded install does), and paths the
console's encoding cannot write.

Each case runs ``python -m effzoo`` in a fresh process (the failure is at import time),
and the fix the message prints is followed: without the planted module the same command
works.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from effzoo.errors import DependencyError, dependency_error

ROOT = Path(__file__).resolve().parents[1]
BROKEN = {
    "timm": "raise ImportError(\"cannot import name '_foo' from 'torch' (planted)\")",
    "huggingface_hub": 'raise RuntimeError("huggingface_hub broke while importing (planted)")',
}


def _env(tmp_path: Path, *paths: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "EFFZOO_DEBUG"}
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), str(ROOT)])
    env["HF_HUB_OFFLINE"] = "1"
    env["EFFZOO_CACHE"] = str(tmp_path / "effzoo-cache")
    env.update(extra)
    return env


def _effzoo(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "effzoo", *args],
        env=env, cwd=cwd, capture_output=True, timeout=300,
    )  # fmt: skip


def _planted(tmp_path: Path, package: str) -> Path:
    root = tmp_path / "planted"
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text(BROKEN[package] + "\n")
    return root


@pytest.mark.parametrize("package", list(BROKEN))
def test_list_with_a_broken_dependency_is_one_line_and_its_fix_works(tmp_path, package):
    planted = _planted(tmp_path, package)
    proc = _effzoo(["list", "efficientnet_b0"], _env(tmp_path, planted), tmp_path)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    line = err.strip()
    assert line.startswith(f"effzoo list: error: {package} fails at import"), line
    assert "(planted)" in line  # what failed, as the package said it
    # the fix names the planted file and says what to do with it
    assert f"{planted / package / '__init__.py'} shadows the installed {package}" in line
    assert "rename or move it out of the working directory and PYTHONPATH" in line
    # followed: the same command without it works
    fixed = _effzoo(["list", "efficientnet_b0"], _env(tmp_path), tmp_path)
    assert fixed.returncode == 0, fixed.stderr.decode()
    assert b"efficientnet_b0" in fixed.stdout


@pytest.mark.parametrize("package", list(BROKEN))
def test_env_with_a_broken_dependency_reports_it(tmp_path, package):
    """`effzoo env` is what a user runs then: the report, with the failure as a line."""
    planted = _planted(tmp_path, package)
    proc = _effzoo(["env"], _env(tmp_path, planted), tmp_path)
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "Traceback" not in out + err
    line = next(ln for ln in out.splitlines() if ln.startswith(f"- {package} version:"))
    assert "FAILS AT IMPORT" in line and "(planted)" in line, line
    assert str(planted / package / "__init__.py") in line
    assert "- effzoo version:" in out and "- effzoo record:" in out
    if package == "huggingface_hub":
        assert "unknown (huggingface_hub does not import)" in out
    else:
        assert "- HF cache:" in out


def test_the_python_api_raises_the_typed_error_on_use(tmp_path):
    """``import effzoo`` works (so the CLI can speak); using the API raises
    ``DependencyError`` (an ImportError) naming the package and the fix."""
    planted = _planted(tmp_path, "timm")
    code = (
        "import effzoo\n"
        "uses = (lambda: effzoo.create('efficientnet_b0'),\n"
        "        lambda: exec('from effzoo import create'))\n"
        "for use in uses:\n"
        "    try:\n"
        "        use()\n"
        "    except effzoo.DependencyError as e:\n"
        "        assert isinstance(e, ImportError) and 'timm fails at import' in str(e), e\n"
        "        print('typed')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=_env(tmp_path, planted), cwd=tmp_path,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.stdout.split() == ["typed", "typed"], proc.stderr


def test_dependency_error_names_a_missing_or_broken_install():
    missing = ModuleNotFoundError("No module named 'timm'", name="timm")
    e = dependency_error(missing)
    assert isinstance(e, DependencyError)
    assert "pip install --force-reinstall timm==" in str(e)  # the installed version
    assert dependency_error(ModuleNotFoundError("No module named 'x'", name="x")) is None
    assert dependency_error(ValueError("not an import")) is None


# -- non-ASCII paths and the console's encoding ----------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        # Python 3.11 in the C locale turns on UTF-8 mode (PEP 540): the path prints as is
        {"LC_ALL": "C"},
        # without UTF-8 mode the C locale is ASCII with surrogateescape: bytes round-trip
        {"LC_ALL": "C", "PYTHONUTF8": "0"},
        # an encoding that cannot hold the path: escaped, lossless
        {"PYTHONIOENCODING": "ascii"},
        {"PYTHONIOENCODING": "latin-1"},
    ],
    ids=["C", "C-no-utf8-mode", "ascii", "latin-1"],
)
def test_env_prints_non_ascii_cache_paths_under_any_locale(tmp_path, settings):
    home = tmp_path / "猫 café"
    env = _env(tmp_path, HF_HOME=str(home / "hf"), EFFZOO_CACHE=str(home / "ec"), **settings)
    for k in ("PYTHONIOENCODING", "PYTHONUTF8", "LANG", "LC_CTYPE"):
        if k not in settings:
            env.pop(k, None)
    proc = _effzoo(["env"], env, tmp_path)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert b"Traceback" not in proc.stderr and b"unexpected" not in proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(b"- HF cache:"))
    if settings.get("PYTHONIOENCODING") in ("ascii", "latin-1"):
        assert b"\\u732b" in line  # escaped: the report says exactly which path
    else:
        assert str(home / "hf" / "hub").encode() in line


def test_any_command_output_the_console_cannot_encode_is_one_line_with_a_working_fix(tmp_path):
    """A result the console cannot write (here a command printing a non-ASCII name) is one
    line naming PYTHONIOENCODING=utf-8; with it, the same command prints."""
    (tmp_path / "printcat.py").write_text("def main(argv):\n    print('猫')\n    return 0\n")
    code = (
        "import sys, effzoo.cli as c\n"
        "c.COMMANDS['list'] = ('printcat', 'main', '')\n"
        "sys.exit(c.main(['list']))\n"
    )
    env = _env(tmp_path, tmp_path, PYTHONIOENCODING="ascii")
    run = lambda env: subprocess.run(  # noqa: E731
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, timeout=120
    )
    proc = run(env)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert err.strip().startswith("effzoo list: error: the output holds characters"), err
    assert "Fix: set PYTHONIOENCODING=utf-8" in err
    fixed = run({**env, "PYTHONIOENCODING": "utf-8"})
    assert fixed.returncode == 0 and fixed.stdout.decode().strip() == "猫"
