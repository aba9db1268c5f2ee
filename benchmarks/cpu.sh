#!/usr/bin/env sh
# The CPU configuration of docs/performance.md: 2 threads, batch 1, 640x640, P3/P4/P5.
# Usage: benchmarks/cpu.sh [extra benchmarks/bench.py args]   (from the repository root)
set -e
out=benchmarks/results
py=${PYTHON:-python}
mkdir -p "$out"
uptime
$py benchmarks/bench.py efficientnet_b0 efficientnet_b3 efficientnet_v2_s efficientnet_v2_m \
  --threads 2 --size 640 --rounds 7 --per-round 3 --yolo --json "$out/cpu-2t-640.json" "$@"
$py benchmarks/bench.py efficientnet_b0 efficientnet_b3 efficientnet_v2_s efficientnet_v2_m \
  --threads 2 --size 640 --rounds 7 --per-round 3 --tune-malloc \
  --json "$out/cpu-2t-640-tuned-malloc.json" "$@"
$py benchmarks/plot.py "$out/cpu-2t-640.json" docs/performance.png
