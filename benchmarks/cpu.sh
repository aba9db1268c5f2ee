#!/usr/bin/env sh
# The CPU configuration of docs/performance.md: 2 threads, 640x640, P3/P4/P5, batch 1
# (every runner, YOLO predict) and batch 8.
# Usage: benchmarks/cpu.sh [extra benchmarks/bench.py args]   (from the repository root)
set -e
out=benchmarks/results
py=${PYTHON:-python}
mkdir -p "$out"
uptime
$py benchmarks/bench.py efficientnet_b0 efficientnet_b3 efficientnet_v2_s efficientnet_v2_m \
  --threads 2 --size 640 --rounds 5 --per-round 3 --yolo \
  --peers effzoo,fused,timm,timm_cl,torchvision,ultralytics,onnxruntime \
  --json "$out/cpu-2t-640.json" "$@"
$py benchmarks/bench.py efficientnet_b0 efficientnet_b3 efficientnet_v2_s --batch 8 \
  --threads 2 --size 640 --rounds 3 --per-round 1 \
  --peers fused,timm,onnxruntime --json "$out/cpu-2t-640-b8.json" "$@"
$py benchmarks/plot.py "$out/cpu-2t-640.json" docs/performance.png
uptime
