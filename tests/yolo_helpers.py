"""Shared helpers for the YOLO adapter tests (tests/test_yolo_*.py).

Importing this module sets Ultralytics' offline flag before Ultralytics is
imported; tests/conftest.py already points YOLO_CONFIG_DIR and HF_HOME at a
temporary directory, so nothing touches $HOME.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

os.environ.setdefault("YOLO_OFFLINE", "true")  # "1" is not read by Ultralytics 8.3.x
os.environ.setdefault("YOLO_VERBOSE", "False")

#: the Hub stays out of the YOLO tests even where a network exists (effzoo reads it per call)
HUB_OFFLINE = {"HF_HUB_OFFLINE": "1"}

ROOT = Path(__file__).resolve().parents[1]
#: test data: the recipe's two files verbatim, the yamls effzoo 0.1 shipped, a 0.1 checkpoint
DATA_DIR = ROOT / "tests" / "data"
RECIPES = ("yolo11-EfficientNetV1.yaml", "yolo11-EfficientNetV2.yaml")

#: small training settings shared by every test that trains
TRAIN = dict(epochs=1, imgsz=64, batch=4, workers=0, device="cpu", plots=False, amp=False)


def session_root() -> Path:
    """The session's temporary root (set by tests/conftest.py)."""
    return Path(os.environ.get("EFFZOO_TEST_ROOT", "/tmp"))


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """HF_HUB_OFFLINE=1 for the duration (for fixtures wider than one test)."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in HUB_OFFLINE.items():
            mp.setenv(key, value)
        yield


def tiny_dataset(name: str = "shapes64") -> Path:
    """8 train + 4 val images at 64 px; written once per session."""
    from effzoo.demo.data import make_shapes_dataset

    root = session_root() / name
    data = root / "data.yaml"
    if not data.is_file():
        make_shapes_dataset(root, n_train=8, n_val=4, imgsz=64, seed=1)
    return data


def run_fresh(code: str, *, timeout: float = 240, env: dict[str, str] | None = None) -> str:
    """Run ``code`` in a fresh Python process (same venv and env); return its stdout.

    The code does not import effzoo unless it says so: a checkpoint must bring it in.
    """
    full_env = {**os.environ, **HUB_OFFLINE, "PYTHONPATH": pythonpath(), **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=str(session_root()),
    )
    if proc.returncode != 0:
        pytest.fail(f"fresh process failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def pythonpath() -> str:
    """The repository first, then whatever PYTHONPATH already says (e.g. another Ultralytics)."""
    return os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)


def load_yaml(path: str | Path) -> dict:
    import yaml

    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def recipe_path(name: str) -> Path:
    return DATA_DIR / name


def ships_family(family: str) -> bool:
    """Whether the installed Ultralytics ships the detector family (scripts/compat.sh runs
    older releases: YOLO12 came in 8.3.78, YOLO26 in 8.4.0)."""
    import ultralytics

    from effzoo.yolo import templates

    fam = templates.FAMILIES[family]
    return (Path(ultralytics.__file__).parent / "cfg" / "models" / fam.folder
            / fam.filename("detect")).is_file()  # fmt: skip


def load_script(relative: str) -> ModuleType:
    """A file of the repository's scripts/ or benchmarks/ (folders of scripts, not
    packages), loaded by its path."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(f"_script_{path.stem}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
