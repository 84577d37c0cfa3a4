#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run every check and the whole test suite.
# Extra arguments go to pytest. pytest's "no tests collected" (exit 5) fails too.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest "$@"
