#!/usr/bin/env bash
# Create or refresh .venv/, start a throwaway PostgreSQL server for the multi-worker tests,
# then run the whole test suite in SCALER_TEST_PROCESSES pytest-xdist processes (default 2, the
# CI machine's cores; each test then takes one torch thread, see tests/conftest.py). In CI
# (CI=true) a server that cannot start is an error; elsewhere its tests are skipped with the
# reason. Arguments go to pytest (`-n 0`: one process).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${SCALER_TEST_POSTGRES_URL:-}" ]; then
  if url=$(bash scripts/postgres.sh start); then
    export SCALER_TEST_POSTGRES_URL="$url"
    trap 'bash scripts/postgres.sh stop' EXIT
  elif [ "${CI:-}" = true ]; then
    echo "test.sh: CI needs a PostgreSQL server and none could be started" >&2
    exit 1
  else
    echo "test.sh: no PostgreSQL server could be started; its tests will be skipped" >&2
  fi
fi
.venv/bin/python -m pytest -q -n "${SCALER_TEST_PROCESSES:-2}" "$@"
