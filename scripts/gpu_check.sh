#!/usr/bin/env bash
# On the lent GPU machine (python3 with torch, timm, typer, rich, pandas, matplotlib; no
# network): install from .gpu-wheels/ (scripts/gpu_wheels.sh) whatever that python cannot
# import, into a folder of its own (the machine's site-packages stay as they are, and a
# system python that refuses pip installs, PEP 668, is fine), then run
# benchmarks/gpu_search.py with the arguments given, on this checkout in place.
# It checks that each package imports, not its version. Figures 1-7, the default search
# at 1 and at 4 workers included, in one call of the device tool (on one H200, 2026-12-04, eager steps:
# figure 4 199 s with the install, figures 1-3 and 6 92 s, figure 7 87 s; figure 5 alone 58 s with the install):
#   bash scripts/gpu_check.sh --workers 1,4
# `--skip 4` (the searches) or `--skip 7` (channels_last's first uses) save the most time.
# The GPU-sized proxy's search (figure 8, minutes) runs in a call of its own:
#   bash scripts/gpu_check.sh --only 8 --proxy-limit 400   (about 6 min replayed on 12-04; the limit stops it)
# On a CPU, as a smoke test: DEVICE=cpu PYTHON=.venv/bin/python bash scripts/gpu_check.sh --quick
# `scaler train`'s default step (AdamW, replayed) at 224 px against the pure SGD step:
#   bash scripts/gpu_check.sh --only 2,3 --train-optimizer adamw
# GPU_TESTS=1 runs the CUDA-only tests first (tests/test_graphed_step.py and the GPU test of
# tests/test_data.py); a failing test stops the script. Figure 9 (replayed against eager steps):
#   GPU_TESTS=1 bash scripts/gpu_check.sh --only 9
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-.gpu-wheels}
SITE=${SITE:-${TMPDIR:-/tmp}/scaler-gpu-site}
# This checkout and the installed packages come first; torch stays the machine's.
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
while read -r module name; do
    if ! "$PY" -c "import $module" </dev/null 2>/dev/null; then
        # pip picks the file that suits this python among those in $WHEELS (any versions, any pythons).
        "$PY" -m pip install -q --no-index --find-links "$WHEELS" --no-deps --no-build-isolation \
            --target "$SITE" "$name" </dev/null \
            || { echo "gpu_check: $module is missing and $WHEELS has no $name for this python; run scripts/gpu_wheels.sh and carry $WHEELS" >&2; exit 1; }
    fi
done < <(awk '!/^#/ && NF' scripts/gpu_packages)
# GPU_TESTS=1: first the tests that run only where CUDA is (skipped on the CPU machines).
if [ "${GPU_TESTS:-0}" = 1 ]; then
    "$PY" -m pytest -q -p no:cacheprovider tests/test_graphed_step.py tests/test_data.py -k "cuda or gpu or graph or replay"
fi
exec "$PY" benchmarks/gpu_search.py --device "${DEVICE:-cuda}" "$@"
