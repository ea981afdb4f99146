#!/usr/bin/env bash
# The one script for the GPU machine (docs/gpu.md). From the repository root of a tree that has .gpu/ (built by
# tests/device/prepare.sh), with OUT naming the results folder (the device tool sets it):
#   1. wheels         .gpu/wheels installed (--no-index --no-deps) into a folder on PYTHONPATH
#   2. env            the machine, Python, torch, CUDA, the packages the run imports        -> env.txt
#   3. cuda-tests     every test marked `cuda`, SSD1B_REQUIRE_CUDA=1 (a skip is a failure) -> pytest.xml (JUnit)
#   4. gpu-benchmark  benchmarks/gpu.py with sgm's UNet from .gpu/generative-models      -> gpu.json, gpu.txt
#   5. training       benchmarks/train.py (every family at 512² and 1024² on CUDA)        -> train.json
# Each stage runs under `timeout`, capped to what is left of SSD1B_GPU_BUDGET_S (default 510 s); a failed stage does
# not stop the next. All output goes to run.log, each stage's exit status and seconds to stages.txt. Exit status 0
# only when every stage passed. SSD1B_STAGES="gpu-benchmark training" runs only the stages named (a rerun).
set -uo pipefail
cd "$(dirname "$0")/../.."

: "${OUT:?set OUT to the folder for the results}"
mkdir -p "$OUT"
PYTHON=${PYTHON:-python3}
BUDGET_S=${SSD1B_GPU_BUDGET_S:-510}
STAGES=${SSD1B_STAGES:-wheels env cuda-tests gpu-benchmark training}
SITE=${SSD1B_SITE:-/tmp/ssd1b-site}
MIN_STAGE_S=20
export PYTHONUNBUFFERED=1 SSD1B_REQUIRE_CUDA=1 SSD1B_SGM_DIR="$PWD/.gpu/generative-models"
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
START=$SECONDS
failed=0

wanted() { [[ " $STAGES " == *" $1 "* ]]; }

# stage NAME LIMIT_S COMMAND...: COMMAND under `timeout`, its limit capped to what the budget has left.
stage() {
    local name=$1 limit=$2
    shift 2
    wanted "$name" || return 0
    local left=$((BUDGET_S - (SECONDS - START)))
    if ((left < MIN_STAGE_S)); then
        printf '%-14s skipped: %ds of the budget left\n' "$name" "$left" >>"$OUT/stages.txt"
        failed=1
        return 0
    fi
    ((limit > left)) && limit=$left
    echo "=== $name (limit ${limit}s, $((SECONDS - START))s into the run)" >&3
    local begin=$SECONDS status
    timeout --kill-after=15 "$limit" "$@"
    status=$?
    printf '%-14s exit %3d  %4ds (limit %ds)\n' "$name" "$status" $((SECONDS - begin)) "$limit" >>"$OUT/stages.txt"
    ((status == 0)) || failed=1
}

# The test files that mark tests `cuda` (a decorator or pytestmark at the start of a line). Collecting all of tests/
# instead would import test modules that need what the bare machine lacks (gradio, diffusers, hypothesis).
cuda_test_files() {
    grep -rlE --include='test_*.py' '^(@pytest\.mark\.cuda\b|pytestmark = .*pytest\.mark\.cuda\b)' tests | sort
}

main() {
    exec 3>&2 # the log, whatever a stage's own output is redirected to
    : >"$OUT/stages.txt"
    stage wheels 60 "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --upgrade \
        --find-links .gpu/wheels --target "$SITE" -r tests/device/wheels.txt
    stage env 30 "$PYTHON" tests/device/describe_machine.py >"$OUT/env.txt" 2>&1
    # shellcheck disable=SC2046  # one argument per file
    stage cuda-tests 120 "$PYTHON" -m pytest -m cuda -v -p no:cacheprovider --junitxml="$OUT/pytest.xml" \
        $(cuda_test_files)
    stage gpu-benchmark 330 "$PYTHON" benchmarks/gpu.py --out-dir "$OUT" --sgm .gpu/generative-models --budget-s 240
    stage training 150 "$PYTHON" benchmarks/train.py --json >"$OUT/train.json"
    echo "=== stages ($((SECONDS - START))s in all)" >&2
    cat "$OUT/stages.txt" >&2
    return "$failed"
}

main 2>&1 | tee "$OUT/run.log"
