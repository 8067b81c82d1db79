#!/usr/bin/env bash
# Smoke-test dist/botctl in a clean environment: no virtualenv, nothing of botctl's on PATH,
# an empty HOME. Prints the size and the wall time of each command; the first --version is the
# first start, which unpacks the file into $HOME/.cache/botctl, and every later one reuses that.
set -euo pipefail
cd "$(dirname "$0")/.."
binary="$(pwd -P)/dist/botctl"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp strategies.yaml accounts.yaml "$work/"
clean=(env -i PATH=/usr/bin:/bin HOME="$work" BOTCTL_HEALTH_PORT=0)
step() {
  local name=$1; shift
  local start end
  start=$EPOCHREALTIME
  (cd "$work" && timeout 300 "${clean[@]}" "$binary" --config-dir "$work" --db "$work/botctl.db" "$@" >"$work/out.txt" 2>"$work/err.txt") || {
    echo "smoke: $name failed:"; cat "$work/out.txt" "$work/err.txt"; exit 1; }
  end=$EPOCHREALTIME
  printf 'smoke: %-28s ok  %6.2f s\n' "$name" "$(awk "BEGIN {print $end - $start}")"
}
printf 'smoke: %s is %s MB\n' "$binary" "$(( $(stat -c %s "$binary") / 1048576 ))"
step "--version (first start)" --version
cache="$work/.cache/botctl"
[ "$(stat -c %a "$cache")" = 700 ] || { echo "smoke: $cache is not mode 700"; exit 1; }
unpacked=("$cache"/*)
[ "${#unpacked[@]}" = 1 ] && [ -x "${unpacked[0]}/botctl" ] || { echo "smoke: expected one unpacked build in $cache"; exit 1; }
step "--version" --version
step "validate" validate
step "plan" plan
step "backtest --json" backtest --json --start 2020-01-01 --end 2024-12-31
grep -q '"accounts"' "$work/out.txt" || { echo "smoke: backtest --json printed no accounts"; exit 1; }
step "run --replay" run --replay 2024-01-01:2024-03-31
step "status" status
step "tail" tail -n 5
step "service unit" service unit
grep -qF "ExecStart=\"$binary\" " "$work/out.txt" || { echo "smoke: the unit does not run $binary"; exit 1; }
[ "$(ls -A "$cache")" = "$(basename "${unpacked[0]}")" ] || { echo "smoke: later starts unpacked again"; exit 1; }
