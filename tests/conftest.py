"""Session-wide isolation: no test touches the user's caches or settings."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest
import torch

_ROOT = tempfile.mkdtemp(prefix="effzoo-tests-")
# Set before huggingface_hub / ultralytics are imported by any test module.
os.environ.setdefault("HF_HOME", os.path.join(_ROOT, "hf_home"))
os.environ.setdefault("YOLO_CONFIG_DIR", os.path.join(_ROOT, "ultralytics"))
os.environ.setdefault("EFFZOO_TEST_ROOT", _ROOT)
os.environ.pop("EFFZOO_WEIGHTS", None)
# effzoo's record of verified files (effzoo.weights.verified): never the user's
os.environ["EFFZOO_CACHE"] = os.path.join(_ROOT, "effzoo_cache")


@pytest.fixture(scope="session")
def test_root() -> str:
    """A temporary directory shared by the whole test session."""
    return _ROOT


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread: value-checking tests on a shared 2-core machine lose more
    to OpenMP barriers between two threads than the parallelism saves."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
