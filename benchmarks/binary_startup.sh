#!/usr/bin/env bash
# Start-up of single-file builds, in the clean environment of scripts/smoke-binary.sh (no
# virtualenv, empty HOME). For each file: its size, the first start (--version with an empty
# cache folder, so a self-extracting file unpacks), and later starts of --version, of status on
# the shipped config with an empty journal, and of status on a journal of a short replay. Prints
# medians of RUNS wall and CPU times (GNU time) and the machine's load.
# Usage: benchmarks/binary_startup.sh [FILE...]   (default dist/botctl; RUNS=10)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-10}
[ $# -gt 0 ] || set -- dist/botctl

# Medians of the wall time and of the CPU time (user + system, which the machine's load changes
# far less than the wall time) over the lines "wall cpu" on standard input.
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
medians() {
  local lines; lines=$(cat)
  printf '%.2f s (cpu %.2f s)' "$(cut -d' ' -f1 <<<"$lines" | median)" "$(cut -d' ' -f2 <<<"$lines" | median)"
}

time_runs() {  # count, then the command: one line "wall cpu" per run
  local count=$1; shift
  for _ in $(seq "$count"); do
    /usr/bin/time -f '%e %U %S' -o "$work/time.txt" "$@" >/dev/null 2>&1 \
      || { echo "binary_startup: $* failed" >&2; exit 1; }
    awk '{print $1, $2 + $3}' "$work/time.txt"
  done
}

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores, RUNS=$runs"
printf '%-20s %5s  %-24s %-24s %-24s %-24s\n' file MB "first start --version" "later --version" \
  "later status, empty" "later status, replayed"
for file in "$@"; do
  binary=$(realpath "$file")
  work=$(mktemp -d)
  cp strategies.yaml accounts.yaml "$work/"
  botctl=(env -i PATH=/usr/bin:/bin HOME="$work" BOTCTL_HEALTH_PORT=0
          "$binary" --config-dir "$work" --db "$work/botctl.db")
  first=$(for _ in $(seq 3); do rm -rf "$work/.cache"; time_runs 1 "${botctl[@]}" --version; done | medians)
  version=$(time_runs "$runs" "${botctl[@]}" --version | medians)
  "${botctl[@]}" resume >/dev/null 2>&1  # creates the journal, empty: no run, no halt
  empty=$(time_runs "$runs" "${botctl[@]}" status | medians)
  "${botctl[@]}" run --replay 2024-01-01:2024-03-31 >/dev/null 2>&1
  status=$(time_runs "$runs" "${botctl[@]}" status | medians)
  printf '%-20s %5d  %-24s %-24s %-24s %-24s\n' "$file" "$(( $(stat -c %s "$binary") / 1048576 ))" \
    "$first" "$version" "$empty" "$status"
  rm -rf "$work"
done
