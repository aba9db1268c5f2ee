#!/usr/bin/env sh
# The CPU configuration of docs/performance.md: 2 threads, 640x640, P3/P4/P5, batch 1
# (every runner, YOLO predict) and batch 8, then the memory plan in processes of its own.
# Usage: benchmarks/cpu.sh [extra benchmarks/bench.py args]   (from the repository root)
set -e
out=benchmarks/results
py=${PYTHON:-python}
mkdir -p "$out"
uptime
$py benchmarks/bench.py efficientnet_b0 efficientnet_b3 efficientnet_v2_s efficientnet_v2_m \
  --threads 2 --size 640 --rounds 5 --per-round 3 --yolo \
  --peers effzoo,fused,fused_unplanned,timm,timm_cl,torchvision,ultralytics,onnxruntime \
  --json "$out/cpu-2t-640.json" "$@"
$py benchmarks/bench.py efficientnet_b0 efficientnet_b3 efficientnet_v2_s --batch 8 \
  --threads 2 --size 640 --rounds 3 --per-round 1 \
  --peers fused,fused_unplanned,timm,onnxruntime --json "$out/cpu-2t-640-b8.json" "$@"
$py benchmarks/plan_faults.py efficientnet_b0 efficientnet_b3 efficientnet_v2_s \
  --threads 2 --batch 1 --json "$out/plan-faults-b1.json"
$py benchmarks/plan_faults.py efficientnet_b0 efficientnet_v2_s \
  --threads 2 --batch 8 --calls 3 --repeats 2 --json "$out/plan-faults-b8.json"
$py benchmarks/plot.py "$out/cpu-2t-640.json" docs/performance.png
uptime
