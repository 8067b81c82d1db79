#!/usr/bin/env bash
# Build dist/botctl: one self-contained executable (PyInstaller one-file) holding botctl, its
# dependencies and the bundled price data. Linux x86-64; needs Python >= 3.11 to build only.
# Usage: scripts/build-binary.sh            (builds in .build-venv, a virtualenv of its own)
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-python3}"
if [ ! -x .build-venv/bin/python ]; then
  "$python" -m venv .build-venv
fi
.build-venv/bin/python -m pip install --quiet --upgrade pip -c constraints.txt
.build-venv/bin/python -m pip install --quiet . "pyinstaller>=6.0" -c constraints.txt  # the same pins as install.sh

# Data files and lazily imported modules PyInstaller's import scan cannot see:
# - botctl's bundled parquet, exchange_calendars' holiday tables, tzdata for zoneinfo;
# - textual's widgets are imported by name at run time.
# pyarrow is left out: botctl never calls it (polars reads parquet itself) and it is a third of
# the size, which a one-file build unpacks on every start.
.build-venv/bin/pyinstaller --noconfirm --clean --onefile --name botctl \
  --distpath dist --workpath build/pyinstaller --specpath build \
  --collect-data botctl \
  --collect-data exchange_calendars \
  --collect-submodules exchange_calendars \
  --collect-data tzdata \
  --collect-submodules textual.widgets \
  --collect-data textual \
  --copy-metadata botctl \
  --exclude-module pytest --exclude-module hypothesis --exclude-module IPython \
  --exclude-module pyarrow \
  packaging/botctl_entry.py >/dev/null

ls -l dist/botctl
dist/botctl --version
