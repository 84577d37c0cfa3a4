#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run the demo: a doctor's CPS card and a patient's
# Vitale card, simulated, in a dual-slot reader (a private pcscd with the vpcd driver),
# the cardauth bridge, the teleservice « Médecin traitant en ligne » and the
# simulator's control page, all on 127.0.0.1. It prints what to open; Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m examples.demo "$@"
