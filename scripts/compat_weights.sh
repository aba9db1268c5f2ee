#!/usr/bin/env bash
# Run the weights tests (tests/test_weights*.py: the Hub stand-in, every cache layout,
# faults, real Lite0 weights, inheritance) against several huggingface_hub and timm
# releases, and print a markdown table of the results (docs/weights.md keeps it).
#
#   bash scripts/compat_weights.sh                    # the default rows below
#   bash scripts/compat_weights.sh "0.30.2 1.0.12"    # HUGGINGFACE_HUB TIMM rows
#
# Each row overlays the two releases on the project's own venv (./dev setup makes it):
# `pip install --no-deps --target DIR huggingface_hub==H timm==T` into a throwaway
# directory under ${TMPDIR:-/tmp}, put first on PYTHONPATH, so everything else (torch,
# safetensors, requests, httpx, hf_xet, ...) is the pinned one. The run checks that the
# overlay's versions are the ones imported, then runs pytest from the repository root.
# Options: --out FILE (default benchmarks/results/compat-weights-DATE.md), -- ARGS
# (passed to pytest). About 4 to 6 minutes a row on 2 cores.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
TMP="${TMPDIR:-/tmp}"
OUT="$ROOT/benchmarks/results/compat-weights-$(date -u +%Y-%m-%d).md"
PYTEST_EXTRA=()
# the floor, the last 0.x, the last 1.x and the pin of huggingface_hub with the newest
# timm; then timm's floor with huggingface_hub's floor and pin
DEFAULT_ROWS="
0.30.2 1.0.31
0.36.2 1.0.31
1.33.0 1.0.31
2.4.0 1.0.31
0.30.2 1.0.21
2.4.0 1.0.21
"
ROWS=()
while (($#)); do
    case "$1" in
        --out) OUT="$2"; shift 2 ;;
        --) shift; PYTEST_EXTRA=("$@"); break ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) ROWS+=("$1"); shift ;;
    esac
done
if ((${#ROWS[@]} == 0)); then
    mapfile -t ROWS < <(printf '%s\n' "$DEFAULT_ROWS" | sed '/^\s*$/d')
fi
[[ -x "$PY" ]] || { echo "compat_weights.sh: run ./dev setup first" >&2; exit 2; }

mkdir -p "$(dirname "$OUT")"
{
    echo "| huggingface_hub | timm | result | passed | failed | skipped |"
    echo "|---|---|---|---|---|---|"
} > "$OUT"
cd "$ROOT" || exit 2
for row in "${ROWS[@]}"; do
    read -r HF TIMM <<< "$row"
    DIR="$(mktemp -d "$TMP/effzoo-compat-weights.XXXXXX")"
    LOG="$DIR/pytest.log"
    echo "== huggingface_hub $HF, timm $TIMM ($DIR)" >&2
    if ! "$PY" -m pip install -q --no-deps --target "$DIR/site" \
            "huggingface_hub==$HF" "timm==$TIMM" > "$DIR/pip.log" 2>&1; then
        echo "| $HF | $TIMM | install failed | | | |" >> "$OUT"
        rm -rf "$DIR"; continue
    fi
    got="$(PYTHONPATH="$DIR/site" "$PY" -c \
        'import huggingface_hub, timm; print(huggingface_hub.__version__, timm.__version__)')"
    if [[ "$got" != "$HF $TIMM" ]]; then
        echo "| $HF | $TIMM | imported $got instead | | | |" >> "$OUT"
        rm -rf "$DIR"; continue
    fi
    PYTHONPATH="$DIR/site" "$PY" -m pytest -q -p no:cacheprovider tests/test_weights*.py \
        "${PYTEST_EXTRA[@]}" > "$LOG" 2>&1
    code=$?
    last="$(tail -n1 "$LOG")"
    count() { grep -o "[0-9]* $1" <<< "$last" | grep -o "[0-9]*" || echo 0; }
    result=$([[ $code == 0 ]] && echo pass || echo FAIL)
    echo "| $HF | $TIMM | $result | $(count passed) | $(count failed) | $(count skipped) |" >> "$OUT"
    if [[ $code != 0 ]]; then
        grep -E "^(FAILED|ERROR)" "$LOG" | head -n 20 | sed 's/^/    /' >&2
    fi
    rm -rf "$DIR"
done
cat "$OUT"
