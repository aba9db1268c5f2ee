"""Shared by ``bench.py``, ``bench_yolo.py`` and ``cuda_check.py``: candidates, results,
interleaved timing, and a description of the machine.

Not a script; the benchmark scripts import it as a sibling (``from timing import ...``).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from effzoo import _checks as checks
from effzoo._machine import machine as _machine


@dataclass
class Candidate:
    """One way to run a backbone: ``run()`` does a full forward on a bound input."""

    name: str
    run: Callable[[], Any]
    note: str = ""
    setup_s: float = 0.0


@dataclass
class Result:
    """Timings of one candidate: per-round lists of per-call milliseconds."""

    variant: str
    name: str
    rounds: list[list[float]] = field(default_factory=list)
    note: str = ""
    setup_s: float = 0.0
    #: minor page faults per warm call (CPU; ``minor_faults``)
    minor_faults: float | None = None

    @property
    def median_ms(self) -> float:
        return statistics.median(t for r in self.rounds for t in r)

    @property
    def iqr_ms(self) -> float | None:
        """Interquartile range of every call; ``None`` for a single call (no spread)."""
        times = [t for r in self.rounds for t in r]
        if len(times) < 2:
            return None
        q = statistics.quantiles(times, n=4)
        return q[2] - q[0]

    def paired_ratio(self, other: Result) -> float:
        """Median over rounds of ``other / self`` (> 1: self is faster than other)."""
        ratios = [
            statistics.median(o) / statistics.median(s) for s, o in zip(self.rounds, other.rounds)
        ]
        return statistics.median(ratios)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return _machine(("timm", "torchvision", "onnxruntime", "ultralytics"))


def minor_faults(run: Callable[[], Any], calls: int = 3) -> float | None:
    """Minor page faults of this process per warm call of ``run`` (None without
    ``resource``, e.g. on Windows): memory the allocator maps in afresh each call."""
    try:
        import resource
    except ImportError:
        return None
    with torch.inference_mode():
        run()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(calls):
            run()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    return (after - before) / calls


def interleave(
    cands: Sequence[Candidate],
    *,
    rounds: int = 7,
    per_round: int = 3,
    warmup: int = 2,
    sync: Callable[[], None] = lambda: None,
    seed: int = 0,
) -> dict[str, list[list[float]]]:
    """Per-call milliseconds, ``rounds`` x ``per_round`` for each candidate, interleaved."""
    checks.positive_int("rounds", rounds)
    checks.positive_int("per_round", per_round)
    checks.non_negative_int("warmup", warmup)
    rng = random.Random(seed)
    times: dict[str, list[list[float]]] = {c.name: [] for c in cands}
    order = list(cands)
    with torch.inference_mode():
        for c in cands:
            for _ in range(warmup):
                c.run()
            sync()
        for _ in range(rounds):
            rng.shuffle(order)
            for c in order:
                calls = []
                for _ in range(per_round):
                    t = time.perf_counter()
                    c.run()
                    sync()
                    calls.append((time.perf_counter() - t) * 1e3)
                times[c.name].append(calls)
    return times
