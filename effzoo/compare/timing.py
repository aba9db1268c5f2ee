"""The timing process of ``effzoo compare`` (``python -m effzoo.compare.timing ...``):
artifacts of one runtime loaded through Ultralytics' AutoBackend and timed against each
other, in a process of its own."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import sys
import time
from collections.abc import Sequence
from typing import Any

from .runtimes import RUNTIMES
from .train import ultralytics_ready


def _time(args: argparse.Namespace) -> dict[str, Any]:
    """Per-call milliseconds of each artifact's forward, ``rounds`` x ``per_round``,
    interleaved in a random order each round, after ``warmup`` calls each; and each
    artifact's precision where the runtime chose one (``precision``)."""
    ultralytics_ready()
    import torch
    from ultralytics.nn.autobackend import AutoBackend
    from ultralytics.utils.torch_utils import select_device

    device = select_device(args.device, verbose=False)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with contextlib.redirect_stdout(io.StringIO()):
        backends = {
            a: AutoBackend(a, device=device, fuse=True, verbose=False) for a in args.artifacts
        }
    x = torch.rand(1, 3, args.imgsz, args.imgsz, generator=torch.Generator().manual_seed(0))
    x = x.to(device)
    times: dict[str, list[list[float]]] = {a: [] for a in args.artifacts}
    order = list(args.artifacts)
    rng = random.Random(0)
    with torch.inference_mode():
        for a in order:
            for _ in range(args.warmup):
                backends[a](x)
            sync()
        for _ in range(args.rounds):
            rng.shuffle(order)
            for a in order:
                calls = []
                for _ in range(args.per_round):
                    t = time.perf_counter()
                    backends[a](x)
                    sync()
                    calls.append((time.perf_counter() - t) * 1e3)
                times[a].append(calls)
    return {
        "times_ms": times,
        "precision": {a: RUNTIMES[args.runtime].precision(b) for a, b in backends.items()},
    }


def time_command(
    artifacts: Sequence[str],
    *,
    runtime: str,
    imgsz: int,
    device: str,
    rounds: int,
    per_round: int,
    warmup: int,
) -> list[str]:
    """The command line of the timing process for ``artifacts`` (one runtime)."""
    return [
        sys.executable,
        "-m",
        "effzoo.compare.timing",
        "time",
        f"--runtime={runtime}",
        f"--imgsz={imgsz}",
        f"--device={device}",
        f"--rounds={rounds}",
        f"--per-round={per_round}",
        f"--warmup={warmup}",
        *artifacts,
    ]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m effzoo.compare.timing")
    p.add_argument("mode", choices=["time"])
    p.add_argument("--runtime", default="pytorch", choices=list(RUNTIMES))
    p.add_argument("--imgsz", type=int, required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--per-round", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("artifacts", nargs="+")
    args = p.parse_args(argv)
    print(json.dumps(_time(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
