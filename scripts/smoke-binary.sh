#!/usr/bin/env bash
# Smoke-test dist/botctl in a clean environment: no virtualenv, nothing of botctl's on PATH,
# an empty HOME. Prints the size and the wall time of each command.
set -euo pipefail
cd "$(dirname "$0")/.."
binary="$(pwd)/dist/botctl"
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
step "--version" --version
step "validate" validate
step "plan" plan
step "backtest --json" backtest --json --start 2020-01-01 --end 2024-12-31
grep -q '"accounts"' "$work/out.txt" || { echo "smoke: backtest --json printed no accounts"; exit 1; }
step "run --replay" run --replay 2024-01-01:2024-03-31
step "status" status
step "tail" tail -n 5
