#!/usr/bin/env bash
# Download, into .gpu-wheels/ (git-ignored), the packages scaler needs that the lent GPU
# machine's python3 lacks; it cannot reach PyPI. Run here, then pass `carry: [".gpu-wheels"]`
# to the device tool and run scripts/gpu_check.sh there.
#   bash scripts/gpu_wheels.sh            # for the GPU machine's Python 3.12
#   PYVER=3.11 bash scripts/gpu_wheels.sh # for another Python (e.g. to try gpu_check.sh here)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PYVER=${PYVER:-3.12}
OUT=${WHEELS:-.gpu-wheels}
mkdir -p "$OUT"
# The distributions of scripts/gpu_packages: pure-Python or manylinux wheels for the target
# interpreter, no dependencies resolved (the list names them all); fvcore publishes only a
# source distribution. Files for several pythons may share the folder: gpu_check.sh lets pip
# pick the one that suits.
mapfile -t names < <(awk '!/^#/ && NF {print $2}' scripts/gpu_packages)
binary=()
for name in "${names[@]}"; do [ "$name" = fvcore ] || binary+=("$name"); done
"$PY" -m pip download -q --no-deps --dest "$OUT" --python-version "$PYVER" \
    --platform manylinux2014_x86_64 --only-binary=:all: "${binary[@]}"
"$PY" -m pip download -q --no-deps --dest "$OUT" --no-binary=:all: "fvcore>=0.1.5.post20221221"
ls "$OUT"
