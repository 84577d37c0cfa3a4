#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run the demo: a doctor's CPS card and a patient's
# Vitale card, simulated, plugged into the real pcscd through the vpcd driver, and
# read back by cardauth like real cards. Ctrl-C stops it and unplugs the cards.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m simulator.demo "$@"
