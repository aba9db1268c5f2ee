"""Session-wide isolation: no test touches the user's caches or settings, and every file a
test writes lies under pytest's own temp directory (``--basetemp``, else
``/tmp/pytest-of-<user>/pytest-<n>``, of which pytest keeps the last three runs)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest
import torch


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Point the caches at a folder of this run's pytest temp; set before any test module
    imports huggingface_hub / ultralytics (they read these at import)."""
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None:  # pytest -p no:tmpdir: nowhere of pytest's own to write
        raise pytest.UsageError("effzoo's tests need pytest's tmp_path plugin (tmpdir)")
    root = str(factory.mktemp("session", numbered=False))
    os.environ.setdefault("HF_HOME", os.path.join(root, "hf_home"))
    os.environ.setdefault("YOLO_CONFIG_DIR", os.path.join(root, "ultralytics"))
    os.environ["EFFZOO_TEST_ROOT"] = root
    os.environ.pop("EFFZOO_WEIGHTS", None)
    # effzoo's record of verified files (effzoo.weights.verified): never the user's
    os.environ["EFFZOO_CACHE"] = os.path.join(root, "effzoo_cache")
    # whatever a test or its child processes make with tempfile lands here too
    os.makedirs(os.path.join(root, "tmp"), exist_ok=True)
    os.environ["TMPDIR"] = os.path.join(root, "tmp")
    tempfile.tempdir = None


@pytest.fixture(scope="session")
def test_root() -> str:
    """A temporary directory shared by the whole test session (under pytest's temp)."""
    return os.environ["EFFZOO_TEST_ROOT"]


@pytest.fixture(scope="module", autouse=True)
def _module_temp_removed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """What a test module makes with ``tmp_path_factory.mktemp`` (exports, trained runs,
    served weights: up to 650 MB for one module) is removed when the module ends, so that
    a run stays within its 1 GiB temp budget. Torn down after the module's own fixtures;
    the session folder predates it, and a failed test's ``tmp_path`` (named after the
    test) is kept, as pytest's retention policy keeps it."""
    base = tmp_path_factory.getbasetemp()
    before = set(os.listdir(base))
    yield
    for name in set(os.listdir(base)) - before:
        if not name.startswith("test"):
            shutil.rmtree(base / name, ignore_errors=True)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread: value-checking tests on a shared 2-core machine lose more
    to OpenMP barriers between two threads than the parallelism saves."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
