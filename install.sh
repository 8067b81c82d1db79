#!/usr/bin/env bash
# Install botctl into ./.venv (idempotent). `./install.sh --dev` adds the test tools.
# Needs Python >= 3.11 (set $PYTHON to choose the interpreter).
set -euo pipefail
cd "$(dirname "$0")"

dev=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    -h|--help) echo "usage: ./install.sh [--dev]   (creates .venv and installs botctl; --dev adds pytest and hypothesis)"; exit 0 ;;
    *) echo "install.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done

python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
  echo "install.sh: $python not found; install Python 3.11 or newer (e.g. apt-get install python3 python3-venv)" >&2
  exit 1
fi
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "install.sh: botctl needs Python >= 3.11, $python is $("$python" -V 2>&1)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $("$python" -V 2>&1)"
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if [ "$dev" = 1 ]; then
  .venv/bin/python -m pip install --quiet -e ".[dev]"
else
  .venv/bin/python -m pip install --quiet -e .
fi
.venv/bin/botctl --version
if [ "$dev" = 1 ]; then
  echo "next: .venv/bin/python -m pytest"
else
  echo "next: .venv/bin/botctl run --replay 2015-01-01:   (then: .venv/bin/botctl status)"
fi
