"""Plot latency against GFLOPs per variant and runner from a ``benchmarks/bench.py --json`` file.

Usage: python benchmarks/plot.py RESULTS.json OUT.png   (needs matplotlib)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

STYLE = {
    "fused": ("effzoo .fuse()", "o", "C3"),
    "effzoo": ("effzoo eager", "o", "C1"),
    "timm": ("timm features_only", "s", "C0"),
    "timm_cl": ("timm channels_last", "s", "C9"),
    "torchvision": ("torchvision extractor", "^", "C2"),
    "ultralytics": ("Ultralytics TorchVision", "v", "C4"),
    "onnxruntime": ("ONNX Runtime (effzoo export)", "D", "C7"),
}


def main(src: str, dst: str) -> None:
    data = json.loads(Path(src).read_text())
    models = data["models"]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    for runner, (label, marker, color) in STYLE.items():
        pts = sorted(
            (models[r["variant"]]["gflops"], r["median_ms"], r["variant"])
            for r in data["results"]
            if r["name"] == runner and r["variant"] in models
        )
        if pts:
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                marker=marker,
                color=color,
                label=label,
                lw=1.2,
                ms=6,
            )
    for name, m in models.items():
        short = name.removeprefix("efficientnet_").upper().replace("_", "-")
        ax.annotate(
            short,
            (m["gflops"], ax.get_ylim()[0]),
            textcoords="offset points",
            xytext=(0, 4),
            ha="center",
            fontsize=8,
            color="0.35",
        )
    cfg, mach = data["config"], data["machine"]
    ax.set_xlabel(f"GFLOPs of the P3-P5 extractor at {cfg['size']}x{cfg['size']}")
    ax.set_ylabel("median latency, ms (batch 1)")
    ax.set_title(f"{mach['cpu']}, {cfg['threads']} threads, torch {mach['torch']}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(dst)
    print(f"wrote {dst}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
