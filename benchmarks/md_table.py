"""Markdown table of a ``bench.py --json`` result (the tables in docs/performance.md).

``python benchmarks/md_table.py results.json [--baseline timm]``: one row per runner,
median ms, paired speed-up over the baseline, latency relative to ONNX Runtime where
it ran, minor page faults per warm call.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import Result

SHORT = {"efficientnet_b0": "B0", "efficientnet_b3": "B3", "efficientnet_v2_s": "V2-S"}
SHORT["efficientnet_v2_m"] = "V2-M"


def rows(path: str, baseline: str = "timm") -> list[str]:
    data = json.loads(Path(path).read_text())
    results = [
        Result(**{k: r[k] for k in ("variant", "name", "rounds", "note", "minor_faults")})
        for r in data["results"]
    ]
    by_variant: dict[str, dict[str, Result]] = {}
    for r in results:
        by_variant.setdefault(r.variant, {})[r.name] = r
    out = [
        f"| variant | runner | median ms | x {baseline} | / ORT | faults per call |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for variant, runners in by_variant.items():
        base, ort = runners.get(baseline), runners.get("onnxruntime")
        for r in runners.values():
            speed = f"{r.paired_ratio(base):.2f}" if base else "-"
            vs_ort = f"{1 / r.paired_ratio(ort):.2f}" if ort else "-"
            faults = "-" if r.minor_faults is None else f"{r.minor_faults:,.0f}"
            out.append(
                f"| {SHORT.get(variant, variant)} | {r.note or r.name} | {r.median_ms:.1f} "
                f"| {speed} | {vs_ort} | {faults} |"
            )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("json")
    p.add_argument("--baseline", default="timm")
    args = p.parse_args()
    print("\n".join(rows(args.json, args.baseline)))


if __name__ == "__main__":
    main()
