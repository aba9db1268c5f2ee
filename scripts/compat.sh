#!/usr/bin/env bash
# Run effzoo's tests against several Ultralytics and torch releases, each in a throwaway
# venv, and print a markdown table of the results (docs/compatibility.md).
#
#   bash scripts/compat.sh                      # the default list below, the YOLO tests
#   bash scripts/compat.sh 8.3.59 8.4.190       # these Ultralytics releases, pinned torch
#   bash scripts/compat.sh "8.3.59 2.1.2 0.16.2 numpy<2"   # an older torch as well
#   bash scripts/compat.sh --all --floor        # the whole suite, every dependency at
#                                               # pyproject.toml's floor
#   bash scripts/compat.sh --all --newest       # the whole suite, the newest releases
#   PYTHON=python3.13 bash scripts/compat.sh --all --newest   # on another Python
#
# Each argument (or line of COMPAT_PAIRS, or of the file given with --pairs FILE) is
#   ULTRALYTICS [TORCH [TORCHVISION [EXTRA-REQUIREMENT...]]]
# TORCH and TORCHVISION default to the pinned ones in constraints.txt; an extra
# requirement (e.g. "numpy<2" for a torch built against NumPy 1) goes to pip as well.
# Every other test dependency is pinned as in constraints.txt, except numpy (pip picks
# one that fits the pair) and any package an extra requirement names.
#
# Per pair: a venv under ${TMPDIR:-/tmp} (removed at the end unless --keep), torch and
# torchvision, then that Ultralytics and effzoo's requirements (core and the yolo, test
# and demo extras of pyproject.toml, read by scripts/compat_reqs.py), then effzoo itself
# (pip install --no-deps -e: the `yolo` extra's Ultralytics floor does not replace the
# release under test). The run checks that the venv imports its
# own Ultralytics and torch at the asked versions and effzoo from this checkout, then
# runs `python -m pytest -q tests/test_yolo_*.py` from the repository root.
#
# ULTRALYTICS, TORCH or TORCHVISION may be "latest" (pip picks the newest release).
#
# Options:
#   --all          the whole suite (tests/) instead of tests/test_yolo_*.py
#   --floor        one row: Ultralytics, torch, torchvision and every other requirement
#                  at its floor in pyproject.toml (no constraints.txt)
#   --newest       one row: the newest release of everything (no constraints.txt)
#   --dry-run      print each row's pip requirements and the tests, run nothing
#   --out FILE     where the table goes (default benchmarks/results/compat-DATE.md)
#   --pairs FILE   read the pairs from FILE (one a line, # comments)
#   --keep         keep the venvs (their paths are printed)
#   -- ARGS...     passed on to pytest (e.g. -- -x -k version)
# Environment: PYTHON (the interpreter the venvs are made from; default python3),
# COMPAT_LOGS (the per-pair logs; default a fresh directory under ${TMPDIR:-/tmp}).
#
# A torch other than the pinned one fetches its CUDA wheels from PyPI (about 3 GB a venv,
# pip caches them); torch 2.1 is built against NumPy 1, hence numpy<2. About 4 minutes a
# row of the YOLO tests on 2 cores, after the downloads; the whole suite (--all) takes
# about as long as `./dev test` a row.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
TMP="${TMPDIR:-/tmp}"
DATE="$(date -u +%Y-%m-%d)"
OUT="$ROOT/benchmarks/results/compat-$DATE.md"
KEEP=0
PAIRS_FILE=""
PYTEST_EXTRA=()
MODE=pinned  # pinned: constraints.txt; floor / newest: see --floor, --newest
DRY=0
TESTS="tests/test_yolo_*.py"  # expanded in the repository root

pin() {  # the version constraints.txt pins for $1
    sed -n "s/^$1==\([^[:space:]#]*\).*/\1/p" "$ROOT/constraints.txt" | head -n1
}
TORCH_PIN="$(pin torch)"
TV_PIN="$(pin torchvision)"

# the last release below the Ultralytics floor, the floor, the old docs' floor and the
# pin, with the pinned torch (torch's floor and the newest releases: --floor, --newest)
DEFAULT_PAIRS="
8.3.58  $TORCH_PIN $TV_PIN
8.3.59  $TORCH_PIN $TV_PIN
8.3.100 $TORCH_PIN $TV_PIN
8.4.190 $TORCH_PIN $TV_PIN
"

ARGS=()
while (($#)); do
    case "$1" in
        --out) OUT="$2"; shift 2 ;;
        --pairs) PAIRS_FILE="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --) shift; PYTEST_EXTRA=("$@"); break ;;
        --all) TESTS=tests; shift ;;
        --floor) MODE=floor; shift ;;
        --newest) MODE=newest; shift ;;
        --dry-run) DRY=1; shift ;;
        -h|--help) sed -n '2,50p' "$0" | sed -n '/^#/p' | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "compat.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) ARGS+=("$1"); shift ;;
    esac
done

floor() {  # pyproject.toml's floor of $1
    "$PYTHON" "$ROOT/scripts/compat_reqs.py" --floor-of "$1" || exit 2
}
if [[ "$MODE" == floor ]]; then
    PAIRS="$(floor ultralytics) $(floor torch) $(floor torchvision)"
elif [[ "$MODE" == newest ]]; then
    PAIRS="latest latest latest"
elif ((${#ARGS[@]})); then
    PAIRS="$(printf '%s\n' "${ARGS[@]}")"
elif [[ -n "$PAIRS_FILE" ]]; then
    PAIRS="$(cat "$PAIRS_FILE")" || exit 2
else
    PAIRS="${COMPAT_PAIRS:-$DEFAULT_PAIRS}"
fi

want() {  # a requirement for $1 at version $2 ("latest": the newest release)
    if [[ "$2" == latest ]]; then echo "$1"; else echo "$1==$2"; fi
}
if ((!DRY)); then
    LOGS="${COMPAT_LOGS:-$(mktemp -d "$TMP/effzoo-compat-logs.XXXXXX")}"
    mkdir -p "$LOGS" "$(dirname "$OUT")" || exit 2
fi
VENVS=()
cleanup() {
    [[ -n "${RAISED:-}" ]] && rm -f -- "$RAISED"
    if ((KEEP)); then
        ((${#VENVS[@]})) && printf 'kept venv: %s\n' "${VENVS[@]}"
        return
    fi
    local v
    for v in "${VENVS[@]}"; do rm -rf -- "$v"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# constraints.txt without the packages a pair chooses itself
constraints_for() {  # $1: file to write; rest: package names to leave out
    local file="$1"; shift
    local drop="torch torchvision ultralytics numpy $*" line name skip d
    : >"$file"
    while IFS= read -r line; do
        name="${line%%[=<>!~ ]*}"
        [[ -z "$name" || "$name" == \#* ]] && continue
        skip=0
        for d in $drop; do
            [[ "${name,,}" == "${d,,}" ]] && skip=1
        done
        ((skip)) || echo "$line" >>"$file"
    done <"$ROOT/constraints.txt"
}

# effzoo's own requirements (core, yolo, test, demo) without the ones a pair picks
# (at the floors: a floor with no wheel for $PYTHON raised to the oldest release that has
# one, said in RAISED and under the table)
AT=(--at newest)
[[ "$MODE" == floor ]] && AT=(--at floor --installable)
RAISED="$(mktemp "$TMP/effzoo-compat-raised.XXXXXX")"
mapfile -t REQS < <("$PYTHON" "$ROOT/scripts/compat_reqs.py" yolo test demo "${AT[@]}" \
    --drop effzoo ultralytics torch torchvision 2>"$RAISED") || exit 2  # ruff stays: test_install resolves the test extra
cat "$RAISED" >&2  # the raises, and pip's own errors if it had any
((${#REQS[@]})) || { echo "compat.sh: no requirements read from pyproject.toml" >&2; exit 2; }

ROWS=()
FAILURES=()
n=0
while IFS= read -r pair; do
    pair="${pair%%#*}"
    read -r -a f <<<"$pair"
    ((${#f[@]})) || continue
    n=$((n + 1))
    U="${f[0]}"; T="${f[1]:-$TORCH_PIN}"; TV="${f[2]:-$TV_PIN}"; EXTRA=("${f[@]:3}")
    pkgs=("$(want torch "$T")" "$(want torchvision "$TV")")
    if ((DRY)); then
        echo "== [$n] ultralytics $U, torch $T, torchvision $TV ${EXTRA[*]:+(${EXTRA[*]})}"
        echo "   pip install ${pkgs[*]} ${EXTRA[*]}"
        echo "   pip install ($MODE) $(want ultralytics "$U") ${pkgs[*]} ${EXTRA[*]} ${REQS[*]}"
        echo "   python -m pytest -q $TESTS ${PYTEST_EXTRA[*]}"
        continue
    fi
    tag="ultralytics-$U-torch-$T"
    log="$LOGS/$tag.log"
    echo "== [$n] ultralytics $U, torch $T, torchvision $TV ${EXTRA[*]:+(${EXTRA[*]})}  log: $log"
    start=$SECONDS
    venv="$(mktemp -d "$TMP/effzoo-compat-venv.XXXXXX")"
    VENVS+=("$venv")
    py="$venv/bin/python"
    extra_names=()
    for e in "${EXTRA[@]}"; do extra_names+=("${e%%[=<>!~ ;\[]*}"); done
    constraints_for "$venv.constraints.txt" "${extra_names[@]}"
    [[ "$MODE" == pinned ]] || : >"$venv.constraints.txt"  # floors / newest: no pins
    VENVS+=("$venv.constraints.txt")

    status=""
    {
        "$PYTHON" -m venv "$venv" &&
            "$py" -m pip install -q --upgrade pip &&
            "$py" -m pip install "${pkgs[@]}" "${EXTRA[@]}" &&
            "$py" -m pip install -c "$venv.constraints.txt" \
                "$(want ultralytics "$U")" "${pkgs[@]}" "${EXTRA[@]}" "${REQS[@]}" &&
            "$py" -m pip install --no-deps -e "$ROOT"
    } >"$log" 2>&1 || status="install failed"

    versions=""
    if [[ -z "$status" ]]; then
        # the venv's own Ultralytics and torch, at the asked versions, and effzoo from here
        # (Ultralytics' settings go to the venv, not the user's: an older release rewrites them)
        versions="$(cd "$ROOT" && env -u PYTHONPATH YOLO_CONFIG_DIR="$venv/ultralytics-config" \
            YOLO_OFFLINE=1 "$py" - "$venv" "$ROOT" "$U" "$T" <<'EOF' 2>>"$log" | tail -n1
import os, sys
import numpy, torch, torchvision, ultralytics
import effzoo
from packaging.version import Version  # 2.14 asked == 2.14.0 installed
venv, root, want_u, want_t = sys.argv[1:]
real = lambda p: os.path.realpath(p)
problems = []
if not real(ultralytics.__file__).startswith(real(venv)):
    problems.append(f"ultralytics from {ultralytics.__file__}")
if not real(torch.__file__).startswith(real(venv)):
    problems.append(f"torch from {torch.__file__}")
if not real(effzoo.__file__).startswith(real(root)):
    problems.append(f"effzoo from {effzoo.__file__}")
if want_u != "latest" and Version(ultralytics.__version__) != Version(want_u):
    problems.append(f"ultralytics {ultralytics.__version__} installed, {want_u} asked")
if want_t != "latest" and Version(torch.__version__.split("+")[0]) != Version(want_t):
    problems.append(f"torch {torch.__version__} installed, {want_t} asked")
print(ultralytics.__version__, torch.__version__.split("+")[0],
      torchvision.__version__.split("+")[0], numpy.__version__,
      ".".join(map(str, sys.version_info[:3])), ";".join(problems) or "ok")
EOF
)" || status="wrong environment"
        echo "versions: $versions" | tee -a "$log"
        read -r v_u v_t v_tv v_np v_py problems <<<"$versions"
        [[ -n "$versions" && "$problems" != "ok" ]] && status="wrong environment: $problems"
    fi

    passed=0 failed=0 skipped=0 errors=0
    if [[ -z "$status" ]]; then
        (
            cd "$ROOT" &&
                env -u PYTHONPATH VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" \
                    timeout 5400 "$py" -m pytest -q -p no:cacheprovider \
                    $TESTS "${PYTEST_EXTRA[@]}"
        ) >>"$log" 2>&1
        rc=$?
        summary="$(grep -E '^(=+ )?[0-9]+ (passed|failed|skipped|error|errors|deselected)' "$log" | tail -n1)"
        count() { grep -oE "[0-9]+ $1" <<<"$summary" | grep -oE '[0-9]+' | head -n1; }
        passed="$(count passed)"; passed="${passed:-0}"
        failed="$(count failed)"; failed="${failed:-0}"
        skipped="$(count skipped)"; skipped="${skipped:-0}"
        errors="$(count 'errors?')"; errors="${errors:-0}"
        refused="$(grep -m1 -oE 'UltralyticsContractError: effzoo.yolo needs Ultralytics.*' "$log")"
        if ((rc == 124)); then
            status="timed out"
        elif ((rc == 0 && passed > 0)); then
            status="pass"
        elif [[ -n "$refused" ]]; then
            status="refused at import"
        else
            status="FAIL"
        fi
        if [[ -n "$refused" ]]; then
            FAILURES+=("ultralytics $U, torch $T: \`import effzoo.yolo\` raises $refused")
        else
            while IFS= read -r line; do
                FAILURES+=("ultralytics $U, torch $T: $line")
            done < <(grep -E '^(FAILED|ERROR) ' "$log")
        fi
    else
        v_u="$U" v_t="$T" v_tv="$TV" v_np="-" v_py="-"
        last="$(grep -E 'ERROR|Error|error' "$log" | tail -n1)"
        FAILURES+=("ultralytics $U, torch $T: $status: ${last:-$(tail -n1 "$log")}")
    fi
    mins=$(((SECONDS - start + 30) / 60))
    ROWS+=("| $v_u | $v_t | $v_tv | $v_np | ${v_py:-} | $status | $passed | $failed | $skipped | $errors | ${mins} min | $DATE |")
    echo "   -> $status: $passed passed, $failed failed, $skipped skipped, $errors errors (${mins} min)"
    if ((!KEEP)); then rm -rf -- "$venv"; fi
done <<<"$PAIRS"
((DRY)) && exit 0

{
    echo "| ultralytics | torch | torchvision | numpy | python | result | passed | failed | skipped | errors | time | date |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "\`python -m pytest -q $TESTS\` in a fresh venv per row (\`bash scripts/compat.sh\`; requirements: $MODE)."
    if grep -q "has no wheel for Python" "$RAISED"; then
        echo
        echo "Floors raised for this Python (no wheel at pyproject.toml's floor):"
        echo
        grep "has no wheel for Python" "$RAISED" | sed 's/^/- /'
    fi
    if ((${#FAILURES[@]})); then
        echo
        echo "Failures and refusals:"
        echo
        printf -- '- %s\n' "${FAILURES[@]}"
    fi
} | tee "$OUT"
echo
echo "table: $OUT"
echo "logs:  $LOGS"
