#!/usr/bin/env bash
# Rehearses tests/device/run.sh here, exactly as the GPU machine would run it, short of the GPU: a fresh copy of
# what the device tool sends (tracked and untracked-not-ignored files, plus the carried .gpu/), CUDA hidden, and a
# Python holding only what the bare machine holds (torch, numpy, safetensors, einops, Pillow, pytest and their
# dependencies). Expected: every stage passes except cuda-tests, whose tests fail because SSD1B_REQUIRE_CUDA=1 and
# there is no CUDA (that is the point of the variable); gpu.py and train.py run their CPU modes.
# Usage: bash tests/device/rehearse.sh [OUT_FOLDER]     (BARE_VENV: the venv to use or create, default /tmp/bare-venv)
set -euo pipefail
cd "$(dirname "$0")/../.."

OUT_FOLDER=${1:-/tmp/ssd1b-rehearsal/out}
BARE_VENV=${BARE_VENV:-/tmp/bare-venv}
TREE=$(mktemp -d /tmp/ssd1b-rehearsal-tree.XXXXXX)

if [ ! -x "$BARE_VENV/bin/python3" ]; then
    python3 -m venv "$BARE_VENV"
    "$BARE_VENV/bin/pip" install -q torch==2.13.0 numpy safetensors einops pillow pytest
fi
[ -d .gpu ] || { echo ".gpu/ is missing: bash tests/device/prepare.sh first" >&2; exit 2; }

git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' path; do
    [ -e "$path" ] && cp --parents -- "$path" "$TREE"  # a tracked file deleted here does not travel either
done
cp -r .gpu "$TREE/"
rm -rf "$OUT_FOLDER" && mkdir -p "$OUT_FOLDER"

echo "tree: $TREE ($(du -sh "$TREE" | cut -f1)); out: $OUT_FOLDER; python: $BARE_VENV/bin/python3" >&2
status=0
(cd "$TREE" && env -u PYTHONPATH -u VIRTUAL_ENV PATH="$BARE_VENV/bin:$PATH" CUDA_VISIBLE_DEVICES="" \
    OUT="$OUT_FOLDER" bash tests/device/run.sh) || status=$?
echo "run.sh exit status: $status" >&2
ls -l "$OUT_FOLDER" >&2
rm -rf "$TREE"
