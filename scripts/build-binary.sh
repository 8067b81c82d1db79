#!/usr/bin/env bash
# Build dist/botctl: one self-contained executable for Linux x86-64 holding botctl, Python, its
# dependencies and the bundled price data. Needs Python >= 3.11 to build only.
# It is a PyInstaller one-folder build inside a self-extracting file
# (packaging/make-selfextract.sh): the first start of each build unpacks it once into
# ${XDG_CACHE_HOME:-~/.cache}/botctl/<version>-<hash>/, later starts run the unpacked copy.
# Usage: scripts/build-binary.sh             (builds in .build-venv, a virtualenv of its own)
#        scripts/build-binary.sh --onefile   (PyInstaller one-file instead, which unpacks on
#                                             every start: dist/botctl-onefile, for comparison)
set -euo pipefail
cd "$(dirname "$0")/.."
kind=onedir
case ${1:-} in
  "") ;;
  --onefile) kind=onefile ;;
  *) echo "usage: scripts/build-binary.sh [--onefile]" >&2; exit 2 ;;
esac

python="${PYTHON:-python3}"
if [ ! -x .build-venv/bin/python ]; then
  "$python" -m venv .build-venv
fi
.build-venv/bin/python -m pip install --quiet --upgrade pip -c constraints.txt
.build-venv/bin/python -m pip install --quiet . "pyinstaller>=6.0" -c constraints.txt  # the same pins as install.sh
version=$(.build-venv/bin/python -c 'import botctl; print(botctl.__version__)')

# Data files and lazily imported modules PyInstaller's import scan cannot see:
# - botctl's bundled parquet, exchange_calendars' holiday tables, tzdata for zoneinfo;
# - textual's widgets are imported by name at run time.
# pyarrow is left out: botctl never calls it (polars reads parquet itself) and it is a third of
# the size to pack and unpack.
pyinstaller_args=(
  --noconfirm --clean --name botctl --workpath build/pyinstaller --specpath build
  --collect-data botctl
  --collect-data exchange_calendars
  --collect-submodules exchange_calendars
  --collect-data tzdata
  --collect-submodules textual.widgets
  --collect-data textual
  --copy-metadata botctl
  --exclude-module pytest --exclude-module hypothesis --exclude-module IPython
  --exclude-module pyarrow
)
mkdir -p dist
if [ "$kind" = onefile ]; then
  .build-venv/bin/pyinstaller "${pyinstaller_args[@]}" --onefile --distpath build/onefile \
    packaging/botctl_entry.py >/dev/null
  mv -f build/onefile/botctl dist/botctl-onefile
  ls -l dist/botctl-onefile
  exit 0
fi
.build-venv/bin/pyinstaller "${pyinstaller_args[@]}" --onedir --distpath build/onedir \
  packaging/botctl_entry.py >/dev/null
packaging/make-selfextract.sh build/onedir/botctl "$version" dist/botctl
ls -l dist/botctl
