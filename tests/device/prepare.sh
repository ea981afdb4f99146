#!/usr/bin/env bash
# Builds .gpu/ (gitignored): what travels to the GPU machine besides the tracked tree, named in the device tool's
# `carry` as ".gpu" (docs/gpu.md):
#   .gpu/generative-models/  sgm/ and LICENSE-CODE of Stability's generative-models, the commit in COMMIT
#                            (fetched code: never committed here)
#   .gpu/wheels/             the wheels of tests/device/wheels.txt, for CPython 3.12 on x86-64 (the GPU machine)
#                            and for the Python running this script (a rehearsal on this machine)
# Usage, from anywhere:  bash tests/device/prepare.sh [GENERATIVE_MODELS_CHECKOUT]
set -euo pipefail
cd "$(dirname "$0")/../.."

SOURCE=${1:-${SGM_SOURCE:-/work/a1111/webui-v1.10.1/repositories/generative-models}}
PYTHON=${PYTHON:-python3}
GPU_PYTHON=3.12
GPU_PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64)
REQUIREMENTS=tests/device/wheels.txt

if [ ! -f "$SOURCE/sgm/modules/diffusionmodules/openaimodel.py" ]; then
    echo "no generative-models checkout at $SOURCE (give its path as the first argument)" >&2
    exit 2
fi

rm -rf .gpu
mkdir -p .gpu/wheels .gpu/generative-models
cp -r "$SOURCE/sgm" "$SOURCE/LICENSE-CODE" .gpu/generative-models/
find .gpu/generative-models -name __pycache__ -prune -exec rm -rf {} +
git -C "$SOURCE" rev-parse HEAD >.gpu/generative-models/COMMIT 2>/dev/null || echo unknown >.gpu/generative-models/COMMIT

# This Python: wheels as published, and a wheel built from each package published as a source archive only.
"$PYTHON" -m pip wheel -q --no-deps -r "$REQUIREMENTS" -w .gpu/wheels
# The GPU machine's Python: the binary wheels of the same versions (a pure-Python wheel above serves both).
platform_args=()
for platform in "${GPU_PLATFORMS[@]}"; do platform_args+=(--platform "$platform"); done
while read -r requirement; do
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version "$GPU_PYTHON" --implementation cp \
        "${platform_args[@]}" -d .gpu/wheels "$requirement" 2>/dev/null || true
done < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$REQUIREMENTS")

# Every requirement must now resolve from the folder alone, for the GPU machine and for this Python.
"$PYTHON" -m pip install -q --dry-run --ignore-installed --no-index --no-deps --find-links .gpu/wheels \
    --only-binary=:all: --python-version "$GPU_PYTHON" --implementation cp "${platform_args[@]}" \
    --target /tmp/ssd1b-wheel-check -r "$REQUIREMENTS"
"$PYTHON" -m pip install -q --dry-run --ignore-installed --no-index --no-deps --find-links .gpu/wheels \
    --target /tmp/ssd1b-wheel-check -r "$REQUIREMENTS"

ls -l .gpu/wheels
du -sh .gpu .gpu/wheels .gpu/generative-models
