#!/usr/bin/env bash
# Set up cardauth on a Debian or Ubuntu machine: the system packages it needs
# (installed only when missing, after apt-get update), then a virtual environment
# in .venv with cardauth and its development tools.
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM_PACKAGES=(
  pcscd             # the PC/SC daemon
  vsmartcard-vpcd   # its virtual reader driver: plugs simulated cards into pcscd
  libpcsclite-dev   # headers to build pyscard
  swig              # to build pyscard
  pcsc-tools        # pcsc_scan
  opensc            # OpenSC's tools and PKCS#11 module: the test oracle for the CPS card
  openssl           # checks the card's signatures in the OpenSC tests
  redis-server      # the shared stores; also run as Sentinel by tests (redis-server --sentinel)
  poppler-utils     # pdfsig: checks the PDF signatures in the signing tests
  libnss3-tools     # certutil: the NSS database of test roots that pdfsig trusts
  chromium          # headless browser for the bridge's browser test (driven by Playwright)
  python3-venv
)

missing=()
for package in "${SYSTEM_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then sudo=(); else sudo=(sudo); fi
  echo "Installing system packages: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" </dev/null >/dev/null
fi

python3 - <<'PY' || { echo "cardauth needs Python 3.11 or newer" >&2; exit 1; }
import sys
sys.exit(sys.version_info < (3, 11))
PY

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
# Reinstall only when the project's dependencies changed since the last setup.
stamp=.venv/.cardauth-setup
if [[ ! -f $stamp ]] || ! cmp -s pyproject.toml "$stamp"; then
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
  cp pyproject.toml "$stamp"
fi

# The wheels that tests/test_distributions.py installs from, offline, into fresh
# virtual environments: every dependency of the three distributions (distributions/),
# and setuptools to build them. Gathered again when a distribution's list changes.
wheelhouse=.venv/wheelhouse
wheel_stamp=.venv/.cardauth-wheelhouse
if [[ ! -f $wheel_stamp ]] || ! cat distributions/*/pyproject.toml | cmp -s - "$wheel_stamp"; then
  rm -rf "$wheelhouse"
  .venv/bin/python distributions/build.py --out "$wheelhouse" >/dev/null
  .venv/bin/python -m pip wheel -q --disable-pip-version-check -w "$wheelhouse" \
    --find-links "$wheelhouse" 'cardauth[cards,redis,oidc,signing]' cardauth-bridge cardauth-simulator \
    'setuptools>=68'
  cat distributions/*/pyproject.toml > "$wheel_stamp"
fi
