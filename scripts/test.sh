#!/usr/bin/env bash
# Create or refresh .venv/, then run the whole test suite.
# PostgreSQL-backed tests run when SCALER_TEST_POSTGRES_URL is set (CI starts a server and
# sets it, see .ci/run); without it they are skipped with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
