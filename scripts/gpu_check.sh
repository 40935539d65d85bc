#!/usr/bin/env bash
# On the lent GPU machine (python3 with torch, timm, typer, rich, pandas, matplotlib; no
# network): install from .gpu-wheels/ (scripts/gpu_wheels.sh) whatever it cannot import,
# then run benchmarks/gpu_search.py with the arguments given, on this checkout in place (not
# installed, so the machine's torch stays). A call of the device tool may run 10 minutes, so split the figures:
#   bash scripts/gpu_check.sh --skip 4          # figures 1, 2, 3 and 5
#   bash scripts/gpu_check.sh --skip 1,2,3,5    # figure 4: the default search
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-.gpu-wheels}
shopt -s nocaseglob  # PyYAML-*.whl or pyyaml-*.whl
# module to import : distribution file prefix in $WHEELS
# (setuptools first: fvcore is built from source.)
for pair in setuptools:setuptools optuna:optuna sqlalchemy:sqlalchemy alembic:alembic colorlog:colorlog mako:mako \
            greenlet:greenlet iopath:iopath yacs:yacs termcolor:termcolor portalocker:portalocker \
            tabulate:tabulate tqdm:tqdm yaml:pyyaml scipy:scipy fvcore:fvcore; do
    module=${pair%%:*}
    prefix=${pair#*:}
    if ! "$PY" -c "import $module" 2>/dev/null; then
        files=("$WHEELS"/"$prefix"-*)
        [ -e "${files[0]}" ] || { echo "gpu_check: $module is missing and $WHEELS has no $prefix-*; run scripts/gpu_wheels.sh and carry $WHEELS" >&2; exit 1; }
        "$PY" -m pip install -q --no-deps --no-build-isolation "${files[@]}"
    fi
done
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout, not installed: its torch stays
exec "$PY" benchmarks/gpu_search.py --device "${DEVICE:-cuda}" "$@"
