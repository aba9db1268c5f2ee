"""The runtimes ``effzoo compare`` times, one record each: the Ultralytics export format
and arguments that make its artifact, the packages it needs, the devices it runs on, and
how the artifact is opened and called with the runtime's own API (and the precision the
runtime chose)."""

from __future__ import annotations

import difflib
import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import _checks as checks


def ultralytics_ready() -> None:
    """Offline, quiet, effzoo registered (in this process or a Ray worker)."""
    os.environ.setdefault("YOLO_OFFLINE", "true")
    from ..yolo.patches import quiet_ultralytics, register

    register()
    quiet_ultralytics()


def gpu(device: str) -> bool:
    """Whether ``device`` (as Ultralytics takes it) names a CUDA device."""
    return str(device).lower() not in ("cpu", "mps", "")


@dataclass(frozen=True)
class Opened:
    """An artifact opened with its runtime's own API: ``call()`` runs one forward of the
    fixed input (finished when it returns); ``precision``: what the runtime chose to run
    the floating-point layers in, or None where it does not choose."""

    call: Callable[[], Any]
    precision: str | None = None


def _open_onnx(artifact: str, device: str, x: Any) -> Opened:
    """An ``InferenceSession`` with ONNX Runtime's defaults (its thread pools sized by
    ONNX Runtime), CUDA first where a CUDA device is given; ``session.run``."""
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if gpu(device):
        index = int("".join(c for c in str(device).split(",")[0] if c.isdigit()) or 0)
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": index}))
    session = ort.InferenceSession(artifact, providers=providers)
    feed = {session.get_inputs()[0].name: x}
    return Opened(lambda: session.run(None, feed))


def _open_openvino(artifact: str, device: str, x: Any) -> Opened:
    """The exported model compiled for the CPU with the latency hint (a batch-1
    deployment's, and Ultralytics' own); the compiled model's call. Its precision is the
    one OpenVINO chose: bf16 on a CPU with AVX512_BF16 or AMX, else f32."""
    from pathlib import Path

    import openvino as ov

    path = Path(artifact)
    xml = path if path.is_file() else next(path.glob("*.xml"))
    compiled = ov.Core().compile_model(str(xml), "CPU", {"PERFORMANCE_HINT": "LATENCY"})
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")  # an openvino Type
    precision = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
    return Opened(lambda: compiled(x), precision)


def _open_autobackend(artifact: str, device: str, x: Any) -> Opened:
    """Ultralytics' AutoBackend, its forward alone (no pre- or post-processing): for
    ``best.pt``, the model as ``YOLO(path).predict`` runs it (fused; channels-last on an
    x86 CPU with oneDNN, AutoBackend's default there: docs/yolo.md says why); for a
    TensorRT engine, its bindings."""
    ultralytics_ready()  # effzoo's rows unpickle; offline, quiet
    import torch
    from ultralytics.nn.autobackend import AutoBackend
    from ultralytics.utils.torch_utils import select_device

    dev = select_device(device, verbose=False)
    backend = AutoBackend(artifact, device=dev, fuse=True, verbose=False)
    t = torch.from_numpy(x).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def call() -> Any:
        with torch.inference_mode():
            y = backend(t)
        sync()
        return y

    return Opened(call)


@dataclass(frozen=True)
class Runtime:
    """One runtime: ``format`` and ``export_args`` for Ultralytics' ``export`` (format ""
    : ``best.pt`` itself), ``requires`` (import name, pip requirement) pairs, whether it
    needs a CUDA device, and ``open`` (artifact, device, input -> ``Opened``: the
    artifact loaded with the runtime's own API, as a deployment runs it)."""

    name: str
    format: str
    export_args: dict[str, Any] = field(default_factory=dict)
    requires: tuple[tuple[str, str], ...] = ()
    needs_gpu: bool = False
    open: Callable[[str, str, Any], Opened] = _open_autobackend

    @property
    def int8(self) -> bool:
        return bool(self.export_args.get("int8"))


RUNTIMES: dict[str, Runtime] = {
    r.name: r
    for r in (
        Runtime("pytorch", ""),
        Runtime("onnx", "onnx", requires=(("onnxruntime", "onnxruntime"),), open=_open_onnx),
        Runtime("openvino", "openvino", requires=(("openvino", "openvino"),), open=_open_openvino),
        Runtime(
            "openvino-int8",
            "openvino",
            {"int8": True},
            requires=(("openvino", "openvino"), ("nncf", "nncf")),
            open=_open_openvino,
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
