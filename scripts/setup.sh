#!/usr/bin/env bash
# Create or refresh .venv/ at the repository root with PyTorch 2.13.0 and scaler.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# PyTorch first, so the resolver keeps it instead of pulling another build. pip takes a CPU
# build of 2.13.0 where one lies on its wheel path (as on the machines this project's CI
# runs on); from PyPI alone, Linux gets the multi-GB CUDA build: set
# TORCH_INDEX=https://download.pytorch.org/whl/cpu for the CPU one.
.venv/bin/python -m pip install -q ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test]"
