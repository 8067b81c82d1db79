#!/usr/bin/env bash
# Build botctl as a Nuitka one-file executable in a scratch folder outside the repository, to
# compare it with the kept single file (scripts/build-binary.sh); then time it with
# benchmarks/binary_startup.sh SCRATCH/out/botctl. Nothing here is what CI builds.
#
# The one-file unpacks into a persistent folder, {CACHE_DIR}/botctl/<version>-nuitka[-bytecode]
# ({CACHE_DIR} is ${XDG_CACHE_HOME:-~/.cache}), once per version: later starts run the unpacked
# copy (Nuitka's --onefile-tempdir-spec with no per-run part, so its cache mode is "cached").
#
# Usage: benchmarks/nuitka_onefile.sh SCRATCH [--bytecode-deps]
#   SCRATCH          a folder outside the repository (it gets a virtualenv and the build, ~2 GB)
#   --bytecode-deps  compile botctl only: every other installed package goes in as bytecode,
#                    as the standard library always does (a far shorter build)
# (A Nuitka --standalone folder cannot go into packaging/'s self-extracting file as it is: its
# executable `botctl` would clash with the folder of botctl's package data.)
# Run it with nice on a shared machine: `nice -n 19 benchmarks/nuitka_onefile.sh /tmp/nuitka`.
# Needs gcc, patchelf (apt-get install patchelf) and, to make rebuilds quicker, ccache.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
usage="usage: benchmarks/nuitka_onefile.sh SCRATCH [--bytecode-deps]"
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
scratch=$1
shift
bytecode=0
for arg in "$@"; do
  case $arg in
    --bytecode-deps) bytecode=1 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
case $(realpath -m "$scratch")/ in
  "$repo"/*) echo "nuitka_onefile: SCRATCH must be outside the repository" >&2; exit 2 ;;
esac
command -v patchelf >/dev/null || { echo "nuitka_onefile: needs patchelf (apt-get install patchelf)" >&2; exit 1; }
mkdir -p "$scratch"
cd "$scratch"

python="${PYTHON:-python3}"
[ -x venv/bin/python ] || "$python" -m venv venv
venv/bin/python -m pip install --quiet --upgrade pip -c "$repo/constraints.txt"
# The same pins as install.sh; Nuitka and its one-file compressor beside them.
venv/bin/python -m pip install --quiet "$repo" "nuitka==4.3.5" zstandard -c "$repo/constraints.txt"
version=$(venv/bin/python -c 'import botctl; print(botctl.__version__)')
cp "$repo/packaging/botctl_entry.py" .

suffix=nuitka
extra=()
if [ "$bytecode" = 1 ]; then
  suffix=nuitka-bytecode
  # Every top-level import name of the installed distributions except botctl and the build tools.
  while read -r name; do
    extra+=("--noinclude-custom-mode=$name:bytecode")
  done < <(venv/bin/python - <<'EOF'
import importlib.metadata as md
skip = {"botctl", "nuitka", "pip", "setuptools", "zstandard", "ordered_set", "_distutils_hack", "pkg_resources"}
for name in sorted(md.packages_distributions()):
    if name.isidentifier() and name not in skip:
        print(name)
EOF
)
fi

# The same data files and lazily imported modules as scripts/build-binary.sh's PyInstaller build.
# Importing a left-out module (pyarrow) must raise the plain ModuleNotFoundError that callers
# catch, not Nuitka's deployment ImportError (which made `botctl run` fail).
start=$(date +%s)
rm -rf out
venv/bin/python -m nuitka --onefile --assume-yes-for-downloads \
  --onefile-tempdir-spec="{CACHE_DIR}/botctl/$version-$suffix" \
  --output-dir=out --output-filename=botctl --remove-output \
  --include-package=botctl --include-package-data=botctl --include-distribution-metadata=botctl \
  --include-package=exchange_calendars --include-package-data=exchange_calendars \
  --include-package-data=tzdata --include-package=textual.widgets --include-package-data=textual \
  --nofollow-import-to=pyarrow --nofollow-import-to=pytest --nofollow-import-to=hypothesis \
  --nofollow-import-to=IPython --noinclude-pytest-mode=nofollow --noinclude-unittest-mode=nofollow \
  --noinclude-dask-mode=nofollow --noinclude-IPython-mode=nofollow --noinclude-setuptools-mode=nofollow \
  --no-deployment-flag=excluded-module-usage \
  "${extra[@]}" --jobs="${JOBS:-$(nproc)}" botctl_entry.py
echo "nuitka_onefile: built $scratch/out/botctl ($(( $(stat -c %s out/botctl) / 1048576 )) MB) in" \
  "$(( $(date +%s) - start )) s; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
echo "next: benchmarks/binary_startup.sh $scratch/out/botctl"
