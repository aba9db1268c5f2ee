"""What ``import effzoo.yolo`` adds to ``import ultralytics``, in fresh processes.

Each round starts, in a shuffled order, one fresh Python process per candidate:

- ``stock``: ``import ultralytics`` (the peer);
- ``effzoo``: ``import ultralytics`` then ``import effzoo.yolo`` (this tree);
- ``before`` (with ``--before REF``): the same with effzoo at git ``REF`` (extracted
  with ``git archive`` into a temporary folder), e.g. ``--before f3a39a1``.

Each process times its own imports (``time.perf_counter``, interpreter start-up
excluded). Reported: per candidate the median import time of Ultralytics and of
effzoo.yolo, and the median over rounds of ``effzoo.yolo / ultralytics`` measured in the
same process (the ratio the issue bounds at 15 %). Usage, from the repository root::

    python benchmarks/import_cost.py --rounds 9 --before f3a39a1 --json OUT.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CODE = """
import json, time
t0 = time.perf_counter()
import ultralytics
t1 = time.perf_counter()
if {effzoo}:
    import effzoo.yolo
t2 = time.perf_counter()
print(json.dumps({{"ultralytics": t1 - t0, "effzoo": t2 - t1}}))
"""


def _run(pythonpath: str | None, effzoo: bool, env: dict[str, str]) -> dict[str, float]:
    full = dict(env)
    if pythonpath:
        full["PYTHONPATH"] = pythonpath
    out = subprocess.run(
        [sys.executable, "-c", CODE.format(effzoo=effzoo)],
        capture_output=True,
        text=True,
        env=full,
        check=True,
        cwd=env["EFFZOO_CACHE"],
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _extract(ref: str, into: Path) -> Path:
    """effzoo/ at git ``ref``, written under ``into``."""
    data = subprocess.run(
        ["git", "archive", ref, "effzoo"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--before", default="", help="a git ref of effzoo to compare with")
    ap.add_argument("--json", default="", help="write the results here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="effzoo-import-") as tmp:
        env = {
            **os.environ,
            "YOLO_OFFLINE": "true",
            "HF_HUB_OFFLINE": "1",
            "YOLO_CONFIG_DIR": str(Path(tmp) / "ultralytics"),
            "EFFZOO_CACHE": tmp,
        }
        env.pop("PYTHONPATH", None)
        candidates = {"stock": (None, False), "effzoo": (str(ROOT), True)}
        if args.before:
            old = _extract(args.before, Path(tmp) / "before")
            candidates["before"] = (str(old), True)
        _run(str(ROOT), True, env)  # warm the file cache once, not timed
        times: dict[str, list[dict[str, float]]] = {name: [] for name in candidates}
        for _ in range(args.rounds):
            order = list(candidates)
            random.shuffle(order)
            for name in order:
                times[name].append(_run(*candidates[name], env))
    result: dict = {"rounds": args.rounds, "before": args.before, "candidates": {}}
    for name, runs in times.items():
        result["candidates"][name] = {
            "ultralytics_s": statistics.median(r["ultralytics"] for r in runs),
            "effzoo_yolo_s": statistics.median(r["effzoo"] for r in runs),
            "ratio": statistics.median(r["effzoo"] / r["ultralytics"] for r in runs),
            "runs": runs,
        }
    for name, c in result["candidates"].items():
        print(
            f"{name:>7}: import ultralytics {c['ultralytics_s']:.3f} s, then import "
            f"effzoo.yolo {c['effzoo_yolo_s']:.3f} s: +{100 * c['ratio']:.1f} %"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
