"""Peak memory of one training step, with and without per-stage gradient checkpointing.

Usage: python benchmarks/memory.py [--size 640] [variants...]
Peak = the profiler's running sum of CPU tensor allocations during forward +
backward (gradients of the parameters allocated beforehand, so the peak is the
activations). Prints a markdown table. ``peak_memory`` is also used by
tests/test_memory.py.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch

import effzoo


def peak_memory(fn: Callable[[], Any]) -> int:
    """Peak bytes of CPU tensor memory allocated while ``fn()`` runs (op granularity).

    Read from the profiler's allocation records: the running sum of every
    allocation and free, in the order the ops started. Memory held before the
    call does not count.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(
        (e for e in prof.events() if e.self_cpu_memory_usage),
        key=lambda e: e.time_range.start,
    )
    current = peak = 0
    for e in events:
        current += e.self_cpu_memory_usage
        peak = max(peak, current)
    return peak


def step(model: torch.nn.Module, x: torch.Tensor) -> None:
    out = model(x)
    sum(o.float().pow(2).mean() for o in out).backward()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("variants", nargs="*", default=["efficientnet_v2_s", "efficientnet_b3"])
    p.add_argument("--size", type=int, default=640)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print("| variant | input | peak MiB | peak MiB, checkpointing | reduction | step s / ckpt s |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name in args.variants:
        model = effzoo.create(name).train()
        x = torch.randn(1, 3, args.size, args.size)
        step(model, x)  # allocate gradients once
        peaks, secs = {}, {}
        for ckpt in (False, True):
            model.set_grad_checkpointing(ckpt)
            model.zero_grad(set_to_none=False)
            t = time.perf_counter()
            peaks[ckpt] = peak_memory(lambda m=model, x=x: step(m, x)) / 2**20
            secs[ckpt] = time.perf_counter() - t
        red = 1 - peaks[True] / peaks[False]
        print(
            f"| {name} | {args.size} | {peaks[False]:.0f} | {peaks[True]:.0f} | {red:.0%} "
            f"| {secs[False]:.1f} / {secs[True]:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
