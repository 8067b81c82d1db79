#!/usr/bin/env bash
# Install botctl into ./.venv (idempotent). `./install.sh --dev` adds the test tools.
# Needs Python >= 3.11 (set $PYTHON to choose the interpreter). Dependencies are pinned by
# constraints.txt (regenerate it with scripts/lock-deps.sh); the Dockerfile and CI install
# through this script too, so all three get the same versions.
set -euo pipefail
cd "$(dirname "$0")"

dev=0
verbose=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    -v|--verbose) verbose=1 ;;
    -h|--help) echo "usage: ./install.sh [--dev] [--verbose]   (creates .venv and installs botctl; --dev adds pytest and hypothesis; --verbose shows pip's output)"; exit 0 ;;
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

# A .venv this script creates and cannot finish is removed again: a half-built one would
# look installed. One that worked before is kept (pip leaves it as it was on failure).
created=0
log="$(mktemp "${TMPDIR:-/tmp}/botctl-install.XXXXXX.log")"
cleanup() {
  status=$?
  if [ "$status" -ne 0 ] && [ "$created" = 1 ]; then
    rm -rf .venv
  fi
  if [ "$status" -eq 0 ]; then
    rm -f "$log"
  fi
}
trap cleanup EXIT

fail() {  # one line, whatever pip printed (its output is kept in the log)
  if grep -q -E 'Failed to establish|Name or service not known|Temporary failure in name resolution|Network is unreachable|Connection refused|timed out|No matching distribution|Could not find a version|ResolutionImpossible' "$log"; then
    reason="the package index is unreachable or lacks a pinned version (offline?)"
  else
    reason="$(grep -m1 '^ERROR:' "$log" | sed 's/^ERROR: //' | cut -c1-160 || true)"
  fi
  echo "install.sh: $1 failed${reason:+: $reason}$([ "$created" = 1 ] && echo '; .venv removed'); pip's output: $log" >&2
  exit 1
}

step() { echo "install.sh: [$1/4] $2"; }
pip_quiet=(--quiet)
if [ "$verbose" = 1 ]; then
  pip_quiet=()
fi
run_pip() {  # pip's output goes to the log (and to the terminal with --verbose)
  if [ "$verbose" = 1 ]; then
    .venv/bin/python -m pip "$@" 2>&1 | tee -a "$log"
    return "${PIPESTATUS[0]}"
  fi
  .venv/bin/python -m pip "$@" >>"$log" 2>&1
}

if [ -x .venv/bin/python ] && .venv/bin/python -c 'import sys' 2>/dev/null; then
  step 1 "reusing .venv ($(.venv/bin/python -V 2>&1))"
else
  rm -rf .venv
  step 1 "creating .venv with $("$python" -V 2>&1)"
  created=1
  "$python" -m venv .venv >>"$log" 2>&1 || fail "creating the virtualenv (is python3-venv installed?)"
fi
step 2 "upgrading pip"
run_pip install "${pip_quiet[@]}" --progress-bar off --upgrade pip -c constraints.txt || fail "upgrading pip"
extra=""
if [ "$dev" = 1 ]; then
  extra="[dev]"
fi
step 3 "installing botctl${extra} and its $(grep -vc '^#' constraints.txt) pinned dependencies (constraints.txt; a minute or two)"
run_pip install "${pip_quiet[@]}" --progress-bar off -e ".${extra}" -c constraints.txt || fail "installing the dependencies"
step 4 "checking: $(.venv/bin/botctl --version)"
if [ "$dev" = 1 ]; then
  echo "next: .venv/bin/python -m pytest"
else
  echo "next: .venv/bin/botctl run --replay 2015-01-01:   (then: .venv/bin/botctl status)"
fi
