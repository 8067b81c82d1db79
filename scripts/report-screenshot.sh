#!/usr/bin/env bash
# Render the shipped plan's HTML backtest report and take a screenshot of it with headless
# Chromium, to look at it as a reader would:
#
#   scripts/report-screenshot.sh [OUT_DIR] [WIDTH] [HEIGHT] [backtest options...]
#
# Writes OUT_DIR/report.html and OUT_DIR/report.png (default OUT_DIR: a new temporary folder,
# 1400 x 5000 pixels). Needs chromium (Debian: apt-get install -y chromium). Nothing is fetched:
# the report is self-contained and Chromium's background networking is off.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-$(mktemp -d)}"; width="${2:-1400}"; height="${3:-5000}"
shift $(( $# < 3 ? $# : 3 ))
browser="$(command -v chromium || command -v chromium-browser || true)"
[ -n "$browser" ] || { echo "report-screenshot: chromium not found (apt-get install -y chromium)" >&2; exit 1; }
mkdir -p "$out"
rm -f "$out/report.html"
.venv/bin/botctl --config-dir . --db "$out/unused.db" backtest --no-journal --report "$out/report.html" "$@" >/dev/null
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking --hide-scrollbars \
  --user-data-dir="$out/chromium-profile" --window-size="$width,$height" \
  --screenshot="$out/report.png" "file://$(cd "$out" && pwd)/report.html" >/dev/null 2>&1
rm -rf "$out/chromium-profile"
echo "$out/report.png"
