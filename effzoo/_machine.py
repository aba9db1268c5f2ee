"""What a measurement ran on (CPU, threads, load, package versions): the record that
``effzoo compare``'s report and benchmarks/ print next to their numbers."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path
from typing import Any


def machine(packages: tuple[str, ...] = ()) -> dict[str, Any]:
    """The CPU, Python, torch and its threads, the load average, the CUDA device, and the
    version of each of ``packages`` that imports."""
    import torch

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    with contextlib.suppress(OSError):
        info["loadavg"] = [round(v, 2) for v in os.getloadavg()]
    for mod in packages:
        with contextlib.suppress(Exception):
            info[mod] = __import__(mod).__version__
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info
