"""Session-wide isolation: no test touches the user's caches or settings, and every file a
test writes lies under pytest's own temp directory (``--basetemp``, else
``/tmp/pytest-of-<user>/pytest-<n>``, of which pytest keeps the last three runs)."""

from __future__ import annotations

import contextlib
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
    # a user's own HF_HOME / YOLO_CONFIG_DIR is kept; the ones a pytest-xdist controller
    # set (inherited by its workers) are replaced: each worker has its own session folder
    for var, sub in (("HF_HOME", "hf_home"), ("YOLO_CONFIG_DIR", "ultralytics")):
        if os.environ.get(var) in (None, os.environ.get(f"EFFZOO_TEST_{var}")):
            os.environ[var] = os.environ[f"EFFZOO_TEST_{var}"] = os.path.join(root, sub)
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


#: modules that start Ray (a local Ray, or ``ray start --head``, which takes Ray's fixed
#: client port): under pytest-xdist one runs at a time
_RAY_MODULES = {"test_compare_faults.py", "test_compare_ray_nodes.py", "test_yolo_compare.py"}
#: modules whose temp files alone take most of the 1 GiB budget: test_weights_hub serves
#: and caches every variant, 0.85 GB at its peak (L2's file served and cached)
_BIG_TEMP = {"test_weights_hub.py"}


@pytest.fixture(scope="module", autouse=True)
def _module_turns(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Under pytest-xdist (``./dev test``: two workers, ``--dist loadfile``, a module per
    unit of work), locks over the workers' shared temp folder: a module that starts Ray
    waits while another one runs; a ``_BIG_TEMP`` module runs while no other module does
    (the other worker finishes its module and waits), other modules side by side (a
    readers-writer lock, the writer first: a big module takes the gate, then the lock
    alone; any other takes the gate, shares the lock, and lets the gate go).
    (``--dist loadgroup`` would group by marks, but pytest-xdist 3.8 sets the group in
    ``item._nodeid``, which pytest 9 no longer reads: every test went its own way.)"""
    if "PYTEST_XDIST_WORKER" not in os.environ or os.name != "posix":
        yield
        return
    import fcntl

    root = tmp_path_factory.getbasetemp().parent  # the workers' basetemps lie in it
    name = request.path.name
    big = name in _BIG_TEMP
    with contextlib.ExitStack() as held:  # closing a file lets its lock go
        if name in _RAY_MODULES:  # first, holding nothing else while it waits
            fcntl.flock(held.enter_context(open(root / "ray-turns.lock", "a")), fcntl.LOCK_EX)
        gate = held.enter_context(open(root / "temp-turns.gate", "a"))
        lock = held.enter_context(open(root / "temp-turns.lock", "a"))
        fcntl.flock(gate, fcntl.LOCK_EX)
        fcntl.flock(lock, fcntl.LOCK_EX if big else fcntl.LOCK_SH)
        if not big:
            fcntl.flock(gate, fcntl.LOCK_UN)
        yield


@pytest.fixture(scope="module", autouse=True)
def _module_temp_removed(
    _module_turns: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """What a test module makes with ``tmp_path_factory.mktemp`` (exports, trained runs,
    served weights: up to 0.85 GB for one module) is removed when the module ends, so that
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
