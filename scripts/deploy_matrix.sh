#!/usr/bin/env bash
# Every Ultralytics export format for the effzoo YOLO rows, each format's packages in a
# throwaway venv, and a markdown table of what exports, loads and matches PyTorch.
#
#   bash scripts/deploy_matrix.sh                      # every group below
#   bash scripts/deploy_matrix.sh executorch litert    # these groups
#   ROWS="lite0 v2s" IMGSZ=128 bash scripts/deploy_matrix.sh paddle
#
# Groups (the packages, pinned as verified; the formats they serve):
#   light       openvino ncnn pnnx MNN      torchscript onnx onnx-nosimplify onnx-dynamic
#                                           openvino ncnn mnn (tests/test_deploy.py runs these)
#   executorch  executorch                  executorch
#   litert      litert-torch ai-edge-litert litert
#   paddle      paddlepaddle x2paddle six   paddle
#   coreml      coremltools                 coreml (spec loaded, not run: Linux)
#
# Each group's venv is made under ${TMPDIR:-/tmp} from the project venv's interpreter
# and sees the project venv's packages through a .pth file (site.addsitedir), so torch,
# Ultralytics and effzoo (this checkout, editable) are the project's own; the group's
# packages install into the throwaway venv only (pip does not uninstall anything
# outside it). Each (row, format) runs in a process of its own (a converter that
# crashes takes only its cell), with OMP_NUM_THREADS=1 (Paddle's inference deadlocks
# next to torch's thread pool otherwise). scripts/deploy_matrix.py does the work.
#
# Options (environment): ROWS (default: b0 lite0 v2b0 v2s b6tf stock), IMGSZ (96),
# BASE_VENV (the project venv, default .venv), OUT (the table, default
# benchmarks/results/deploy-DATE.md), KEEP=1 keeps the venvs.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE_VENV="${BASE_VENV:-$ROOT/.venv}"
PY="$BASE_VENV/bin/python"
TMP="${TMPDIR:-/tmp}"
DATE="$(date -u +%Y-%m-%d)"
OUT="${OUT:-$ROOT/benchmarks/results/deploy-$DATE.md}"
ROWS="${ROWS:-b0 lite0 v2b0 v2s b6tf stock}"
IMGSZ="${IMGSZ:-96}"
KEEP="${KEEP:-0}"

declare -A PKGS=(
    [light]="openvino==2026.4.1 ncnn==1.0.20261020 pnnx==20260526 MNN==3.6.1"
    [executorch]="executorch==1.5.1"
    [litert]="litert-torch==0.10.0 ai-edge-litert==2.3.0"
    [paddle]="paddlepaddle==3.2.2 x2paddle==1.6.0 six==1.17.0"
    [coreml]="coremltools==9.0 numpy==2.3.5"
)
declare -A FORMATS=(
    [light]="torchscript onnx onnx-nosimplify onnx-dynamic openvino ncnn mnn"
    [executorch]="executorch"
    [litert]="litert"
    [paddle]="paddle"
    [coreml]="coreml"
)
GROUPS_ORDER="light executorch litert paddle coreml"
WANT="${*:-$GROUPS_ORDER}"

# shellcheck source=scripts/overlay_venv.sh
source "$ROOT/scripts/overlay_venv.sh"
mkdir -p "$(dirname "$OUT")"
{
    echo "# Deploy matrix, $DATE"
    echo
    echo "\`bash scripts/deploy_matrix.sh $*\` (ROWS=\"$ROWS\", IMGSZ=$IMGSZ): Ultralytics' own"
    echo "\`model.export(format=...)\` with its defaults, the artifact loaded the way \`YOLO(path)\`"
    echo "loads it (OpenVINO: its own API, INFERENCE_PRECISION_HINT=f32), raw output against"
    echo "a float64 PyTorch run; rel = max |diff| / max |PyTorch|, boxes and scores each."
    echo
    "$PY" - <<'EOF'
import platform, torch, ultralytics, effzoo
print(f"Python {platform.python_version()}, torch {torch.__version__}, "
      f"Ultralytics {ultralytics.__version__}, effzoo {effzoo.__version__}, {platform.machine()}")
EOF
    echo
    echo "| row | format | result | packages |"
    echo "| --- | --- | --- | --- |"
} > "$OUT"

for group in $WANT; do
    if [[ -z "${PKGS[$group]+x}" ]]; then
        echo "unknown group $group (one of: $GROUPS_ORDER)" >&2
        exit 2
    fi
    venv="$TMP/effzoo-deploy-$group"
    overlay_venv "$venv" "$PY" || exit 1
    echo "== $group: pip install ${PKGS[$group]}" >&2
    # shellcheck disable=SC2086
    if ! "$venv/bin/pip" install -q ${PKGS[$group]} >&2; then
        echo "| all | ${FORMATS[$group]} | pip install failed | ${PKGS[$group]} |" >> "$OUT"
        continue
    fi
    for row in $ROWS; do
        for fmt in ${FORMATS[$group]}; do
            log="$TMP/effzoo-deploy-$group-$row-$fmt.log"
            (cd "$ROOT" && OMP_NUM_THREADS=1 timeout 900 "$venv/bin/python" \
                scripts/deploy_matrix.py --formats "$fmt" --rows "$row" --imgsz "$IMGSZ" \
                --label "${PKGS[$group]}" >"$log" 2>&1)
            rc=$?
            line="$(grep '^| ' "$log")"
            if [[ -z "$line" ]]; then
                why="$(grep -a -m1 -o -E 'EnforceNotMet|Segmentation fault|[A-Za-z]*Error[^|]{0,80}' \
                    "$log" || true)"
                line="| $row | $fmt | crashed (exit $rc${why:+; $why}) | ${PKGS[$group]} |"
            fi
            echo "$line" | tee -a "$OUT"
        done
    done
    [[ "$KEEP" == 1 ]] || rm -rf "$venv"
done
echo "table: $OUT" >&2
