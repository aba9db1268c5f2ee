#!/usr/bin/env bash
# INT8 with its mAP and deployed latency (docs/deploy.md "INT8", docs/which-backbone.md):
# YOLO11n with the Lite0 (ImageNet weights), B0 and V2-B0 rows (from scratch: their
# ImageNet weights are not reachable offline) and stock YOLO11n, trained 60 epochs on
# the demo data at 160 px (two at a time, one thread each), validated in PyTorch,
# OpenVINO and OpenVINO int8 (Ultralytics' export, NNCF calibrated on the data; each
# with OpenVINO's default precision, bf16 on CPUs with bf16 instructions, and forced f32)
# and ONNX Runtime static int8 (quantize_static, the head and Sigmoids kept float as
# Ultralytics keeps them out of NNCF; `int8_map.py ort --whole REC` quantizes all),
# then ONNX Runtime / OpenVINO fp32 / int8 latency at 320 px, each in a process of its
# own with 2 threads. NNCF installs into a throwaway venv that sees the project venv's
# packages (as scripts/deploy_matrix.sh does).
#
#   bash scripts/int8_map.sh            # everything, results in benchmarks/results/int8/
#   EPOCHS=10 bash scripts/int8_map.sh  # a quick run
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE_VENV="${BASE_VENV:-$ROOT/.venv}"
PY="$BASE_VENV/bin/python"
OUT="${OUT:-$ROOT/benchmarks/results/int8}"
EPOCHS="${EPOCHS:-60}"
ROWS="${ROWS:-lite0:pretrained b0:scratch v2b0:scratch yolo11n:scratch}"
VENV="${TMPDIR:-/tmp}/effzoo-int8"
NNCF="nncf==3.4.0"
LOGS="${LOGS:-${TMPDIR:-/tmp}/effzoo-int8-logs}"  # per step; the JSON records go to OUT

# shellcheck source=scripts/overlay_venv.sh
source "$ROOT/scripts/overlay_venv.sh"
overlay_venv "$VENV" "$PY"
"$VENV/bin/pip" install -q "$NNCF"
VPY="$VENV/bin/python"
mkdir -p "$OUT" "$LOGS"
cd "$ROOT"
export YOLO_OFFLINE=true HF_HUB_OFFLINE=1

running=0
for item in $ROWS; do
    row="${item%%:*}" start="${item##*:}"
    "$VPY" scripts/int8_map.py train "$row" --start "$start" --epochs "$EPOCHS" --out "$OUT" \
        > "$LOGS/$row-$start.train.log" 2>&1 &
    running=$((running + 1))
    if (( running == 2 )); then wait -n; running=$((running - 1)); fi
done
wait
for item in $ROWS; do
    rec="$OUT/${item%%:*}-${item##*:}.json"
    log="$LOGS/$(basename "${rec%.json}")"
    "$VPY" scripts/int8_map.py eval "$rec" > "$log.eval.log" 2>&1  # OpenVINO's default precision
    "$VPY" scripts/int8_map.py eval --f32 "$rec" > "$log.eval-f32.log" 2>&1
    "$VPY" scripts/int8_map.py ort "$rec" > "$log.ort.log" 2>&1  # ONNX Runtime static int8
    "$VPY" scripts/int8_map.py artifacts "$rec" > "$log.artifacts.log" 2>&1
done
for item in $ROWS; do  # nothing else runs: one runtime per process
    rec="$OUT/${item%%:*}-${item##*:}.json"
    for artifact in onnx openvino_fp32 openvino_int8; do
        THREADS=2 "$VPY" scripts/int8_map.py latency "$rec" "$artifact"
    done
done
"$VPY" scripts/int8_map.py report "$OUT" | tee "$OUT/table.md"
"$VPY" - <<'PY' >> "$OUT/table.md"
import platform, torch, ultralytics, openvino, onnxruntime, nncf
print()
print(f"Python {platform.python_version()}, torch {torch.__version__}, Ultralytics "
      f"{ultralytics.__version__}, OpenVINO {openvino.__version__}, NNCF {nncf.__version__}, "
      f"ONNX Runtime {onnxruntime.__version__}, {platform.processor() or platform.machine()}")
PY
