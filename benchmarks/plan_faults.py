"""The fused model's memory plan in a process of its own: page faults and latency.

``bench.py`` times every runner in one process, where what one runner frees shapes
what the allocator maps in afresh for the next, so its fault counts say little about
an application that only runs the fused model. Here every measurement is a fresh
process holding one fused backbone, ``fuse()`` (with its memory plan) and
``fuse(reuse_buffers=False)`` alternating, repeated:

    python benchmarks/plan_faults.py efficientnet_b0 efficientnet_v2_s --threads 2 \\
        --batch 1 --repeats 3 --json benchmarks/results/plan-faults.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = """
import resource, statistics, sys, time, torch, effzoo
name, reuse, threads, batch, size, calls = sys.argv[1:7]
torch.set_num_threads(int(threads))
m = effzoo.create(name, out_indices=(2, 3, 4)).eval().fuse(reuse_buffers=reuse == "1")
x = torch.randn(int(batch), 3, int(size), int(size))
ts = []
with torch.inference_mode():
    for _ in range(3):
        m(x)
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(int(calls)):
        t = time.perf_counter()
        m(x)
        ts.append((time.perf_counter() - t) * 1e3)
    f1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(statistics.median(ts), (f1 - f0) / int(calls), rss)
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("variants", nargs="+")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--size", type=int, default=640)
    p.add_argument("--calls", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json")
    args = p.parse_args()
    rows = []
    for name in args.variants:
        got: dict[str, list[list[float]]] = {"planned": [], "unplanned": []}
        for _ in range(args.repeats):
            for mode, reuse in (("planned", "1"), ("unplanned", "0")):
                argv = [name, reuse, args.threads, args.batch, args.size, args.calls]
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, *map(str, argv)],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout.split()
                got[mode].append([float(v) for v in out])
        ms = {k: statistics.median(r[0] for r in v) for k, v in got.items()}
        faults = {k: statistics.median(r[1] for r in v) for k, v in got.items()}
        rss = {k: statistics.median(r[2] for r in v) for k, v in got.items()}
        ratio = statistics.median(u[0] / p_[0] for p_, u in zip(got["planned"], got["unplanned"]))
        rows.append(
            dict(variant=name, ms=ms, faults=faults, max_rss_mib=rss, speedup=ratio, raw=got)
        )
        print(
            f"{name}: planned {ms['planned']:.1f} ms, {faults['planned']:.0f} faults/call, "
            f"peak RSS {rss['planned']:.0f} MiB | unplanned {ms['unplanned']:.1f} ms, "
            f"{faults['unplanned']:.0f} faults/call, {rss['unplanned']:.0f} MiB | "
            f"unplanned/planned {ratio:.2f}",
            flush=True,
        )
    if args.json:
        config = vars(args)
        Path(args.json).write_text(json.dumps({"config": config, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
