"""Workarounds for export converters' own bugs, active only while Ultralytics exports
(the ``Exporter.__call__`` patch in ``patches`` enters them); each says what it does in
Ultralytics' log (docs/deploy.md tells each story).

- **MNN runs pip.** MNN 3.x's converter, imported without the Aliyun log SDK (its usage
  logging), runs ``pip install -U aliyun-log-python-sdk`` with the first ``pip`` on
  ``PATH``, which downgrades protobuf to 5.x and breaks ``import onnx``. While an MNN
  export runs without that SDK, an inert stand-in for ``aliyun.log`` is importable:
  nothing is installed and no usage log is sent.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import types
from collections.abc import Iterator
from typing import Any

#: the modules MNN's usage logging imports from the Aliyun log SDK
_ALIYUN = ("aliyun", "aliyun.log", "aliyun.log.logitem")


class _Inert:
    """Takes any arguments and any call, does nothing (MNN's LogClient, LogItem, ...)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def _stand_in() -> dict[str, types.ModuleType]:
    modules = {name: types.ModuleType(name) for name in _ALIYUN}
    log = modules["aliyun.log"]
    log.LogClient = log.PutLogsRequest = type("LogClient", (_Inert,), {})  # type: ignore[attr-defined]
    modules["aliyun.log.logitem"].LogItem = type("LogItem", (_Inert,), {})  # type: ignore[attr-defined]
    modules["aliyun"].log = log  # type: ignore[attr-defined]
    log.logitem = modules["aliyun.log.logitem"]  # type: ignore[attr-defined]
    return modules


def _missing(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        return True


@contextlib.contextmanager
def mnn_without_pip(fmt: Any) -> Iterator[bool]:
    """While an ``mnn`` export runs without the Aliyun log SDK, an inert stand-in for it;
    yields whether one was given (then the caller says so in the log)."""
    if str(fmt).lower() != "mnn" or not _missing("aliyun.log"):
        yield False
        return
    added = {k: v for k, v in _stand_in().items() if k not in sys.modules}
    sys.modules.update(added)
    try:
        yield True
    finally:
        for name, module in added.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


MNN_NOTE = (
    "MNN's converter would run `pip install -U aliyun-log-python-sdk` (its usage "
    "logging) with the first pip on PATH, which downgrades protobuf to 5.x and breaks "
    "`import onnx`; effzoo gave it an inert stand-in for this export: nothing installed, "
    "no usage log sent (docs/deploy.md)"
)
