#!/usr/bin/env sh
# The GPU configuration of docs/performance.md (section GPU), in one go:
#   1. benchmarks/cuda_check.py: every variant, AMP training step + fused fp16 inference,
#      and training memory with gradient checkpointing;
#   2. benchmarks/bench.py --device cuda at batch 1 and 16 (fp16 autocast), with YOLO11n predict;
#   3. effzoo demo on GPU 0 (AMP), from ImageNet weights and from scratch.
# Usage: benchmarks/cuda.sh [OUT_DIR]   (from the repository root; default benchmarks/results)
# Each step is bounded by `timeout` (590 s in all; on an H100 the whole took about 8 min).
set -u
out=${1:-benchmarks/results}
py=${PYTHON:-python}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/cuda-gpu.txt"
$py -c "import torch, timm, ultralytics; print('torch', torch.__version__, 'timm', timm.__version__,
'ultralytics', ultralytics.__version__, 'cudnn', torch.backends.cudnn.version())" | tee -a "$out/cuda-gpu.txt"
variants="efficientnet_b0 efficientnet_b3 efficientnet_v2_s efficientnet_v2_m"
timeout 220 $py benchmarks/cuda_check.py --json "$out/cuda-check.json"
timeout 100 $py -m effzoo demo --device 0 --batch 16 --out /tmp/effzoo-demo &&
  cp /tmp/effzoo-demo/runs/pretrained/summary.json "$out/cuda-demo-pretrained.json"
timeout 100 $py benchmarks/bench.py $variants --device cuda --rounds 10 --per-round 10 --yolo \
  --json "$out/cuda-640-b1.json"
timeout 100 $py -m effzoo demo --device 0 --batch 16 --out /tmp/effzoo-demo --scratch &&
  cp /tmp/effzoo-demo/runs/scratch/summary.json "$out/cuda-demo-scratch.json"
timeout 70 $py benchmarks/bench.py $variants --device cuda --batch 16 --rounds 5 --per-round 5 \
  --peers effzoo,fused,timm,timm_cl,torchvision,ultralytics --json "$out/cuda-640-b16.json"
