"""The runtimes ``effzoo compare`` times, one record each: the Ultralytics export format
and arguments that make its artifact, the packages it needs, the devices it runs on, and
how the precision it ran in is read."""

from __future__ import annotations

import difflib
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import _checks as checks


def _openvino_precision(backend: Any) -> str | None:
    """The precision OpenVINO runs an artifact's floating-point layers in, as Ultralytics'
    AutoBackend compiled it (its default: bf16 on a CPU with AVX512_BF16 or AMX, else
    f32). Reads AutoBackend's ``ov_compiled_model`` (seam ``AutoBackend.ov_compiled_model``
    in effzoo/yolo/seams.py; 8.4 keeps it on ``.backend``)."""
    for obj in (backend, getattr(backend, "backend", None)):
        compiled = getattr(obj, "ov_compiled_model", None)
        if compiled is not None:
            hint = compiled.get_property("INFERENCE_PRECISION_HINT")  # an openvino Type
            return hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
    return None


def gpu(device: str) -> bool:
    """Whether ``device`` (as Ultralytics takes it) names a CUDA device."""
    return str(device).lower() not in ("cpu", "mps", "")


@dataclass(frozen=True)
class Runtime:
    """One runtime: ``format`` and ``export_args`` for Ultralytics' ``export`` (format ""
    : ``best.pt`` itself), ``requires`` (import name, pip requirement) pairs, whether it
    needs a CUDA device, and ``precision`` (AutoBackend -> the precision it ran in, or
    None where the runtime does not choose one)."""

    name: str
    format: str
    export_args: dict[str, Any] = field(default_factory=dict)
    requires: tuple[tuple[str, str], ...] = ()
    needs_gpu: bool = False
    precision: Callable[[Any], str | None] = lambda backend: None

    @property
    def int8(self) -> bool:
        return bool(self.export_args.get("int8"))


RUNTIMES: dict[str, Runtime] = {
    r.name: r
    for r in (
        Runtime("pytorch", ""),
        Runtime("onnx", "onnx", requires=(("onnxruntime", "onnxruntime"),)),
        Runtime(
            "openvino",
            "openvino",
            requires=(("openvino", "openvino"),),
            precision=_openvino_precision,
        ),
        Runtime(
            "openvino-int8",
            "openvino",
            {"int8": True},
            requires=(("openvino", "openvino"), ("nncf", "nncf")),
            precision=_openvino_precision,
        ),
        Runtime("tensorrt", "engine", requires=(("tensorrt", "tensorrt"),), needs_gpu=True),
    )
}

#: the runtimes timed when none are named (both come with ``effzoo[yolo]``)
DEFAULT_RUNTIMES = ("pytorch", "onnx")


def check_runtimes(runtimes: Sequence[str] | str, device: str) -> tuple[Runtime, ...]:
    """The runtimes, each one known, its packages importable and its device given; else
    one line naming the close match or what to install."""
    names = [r.strip() for r in (runtimes.split(",") if isinstance(runtimes, str) else runtimes)]
    if not names or not all(names):
        checks.fail(f"--runtime needs one or more of {', '.join(RUNTIMES)}, comma-separated")
    for name in names:
        if name not in RUNTIMES:
            close = difflib.get_close_matches(name, list(RUNTIMES), n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}? " if close else ""
            checks.fail(f"unknown runtime {name!r}; {hint}known: {', '.join(RUNTIMES)}")
        rt = RUNTIMES[name]
        for module, package in rt.requires:
            if importlib.util.find_spec(module) is None:
                checks.fail(
                    f"runtime {name!r} needs the {module} package, which is not installed: "
                    f'pip install "{package}" (or leave {name} out of --runtime)'
                )
        if rt.needs_gpu and not gpu(device):
            checks.fail(f"runtime {name!r} runs on an NVIDIA GPU only: give --device 0")
    if len(set(names)) != len(names):
        checks.fail(f"--runtime names a runtime twice: {','.join(names)}")
    return tuple(RUNTIMES[n] for n in names)
