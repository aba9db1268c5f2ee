"""scripts/compat.sh can run the whole suite at pyproject.toml's floors and at the newest
releases (issue 27, item 6). The runs themselves take a venv and gigabytes each
(docs/compatibility.md); here ``--dry-run`` shows what a row would install and run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _dry(tmp_path: Path, *args: str) -> str:
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "compat.sh"), "--dry-run", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHON": sys.executable, "TMPDIR": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr
    assert not list(tmp_path.iterdir()), "a dry run made venvs or logs"
    return out.stdout


def _floor(name: str) -> str:
    pyproject = (ROOT / "pyproject.toml").read_text()
    return re.search(rf'"{name}>=([\w.]+)', pyproject).group(1)


def test_the_floor_row_installs_every_floor_and_runs_the_whole_suite(tmp_path):
    out = _dry(tmp_path, "--all", "--floor")
    for name in ("torch", "torchvision", "ultralytics", "timm", "huggingface-hub"):
        assert f"{name}=={_floor(name)}" in out.split(), (name, out)
    assert re.search(r"python -m pytest -q tests\s*$", out, flags=re.M), out


def test_the_newest_row_pins_nothing_it_need_not(tmp_path):
    out = _dry(tmp_path, "--all", "--newest")
    line = next(ln for ln in out.splitlines() if "(newest)" in ln).split()
    assert {"ultralytics", "torch", "torchvision"} <= set(line), line
    assert f"timm>={_floor('timm')},<1.1" in line, line  # pip picks the newest in range
    assert re.search(r"python -m pytest -q tests\s*$", out, flags=re.M), out


def test_the_floors_are_what_the_docs_say():
    doc = (ROOT / "docs" / "compatibility.md").read_text()
    for name in ("torch", "torchvision", "ultralytics"):
        assert f"| {name} | {_floor(name)} |" in doc, name
