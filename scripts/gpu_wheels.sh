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
# Pure-Python or manylinux wheels for the target interpreter; no dependencies are resolved,
# so the list names every package that may be missing there (markupsafe is mako's; iopath to
# pyyaml are fvcore's own; scipy is not known to be there). Files for several pythons may
# share the folder: gpu_check.sh lets pip pick the one that suits.
"$PY" -m pip download -q --no-deps --dest "$OUT" --python-version "$PYVER" \
    --platform manylinux2014_x86_64 --only-binary=:all: \
    setuptools optuna sqlalchemy alembic colorlog mako markupsafe greenlet iopath yacs termcolor portalocker tabulate tqdm pyyaml scipy
# fvcore publishes only a source distribution.
"$PY" -m pip download -q --no-deps --dest "$OUT" --no-binary=:all: "fvcore>=0.1.5.post20221221"
ls "$OUT"
