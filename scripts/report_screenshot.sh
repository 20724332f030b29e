#!/usr/bin/env bash
# docs/report.png, the screenshot README shows: analyze --html on the bundled
# CNN (1000 calibration samples, the default), rendered by headless Chromium.
#   scripts/report_screenshot.sh [QTOOL]
set -euo pipefail
cd "$(dirname "$0")/.."
Q=$(realpath "${1:-build/release/qtool}")
D=$PWD
command -v chromium >/dev/null || { echo "report_screenshot: chromium is not installed (scripts/deps.sh)" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# Relative paths, so the command line the page shows is the one a reader would type.
ln -s "$D/models" "$T/models"
cd "$T"
M=models/fmnist_cnn.onnx
"$Q" calibrate "$M" --data fashion-mnist:train --limit 1000 -o cnn.calib.json >/dev/null
"$Q" analyze "$M" --calib cnn.calib.json --data fashion-mnist:train -o cnn.sens.json --html report.html >/dev/null
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
	--disable-component-update --disable-sync --hide-scrollbars --user-data-dir="$T/profile" \
	--window-size=1000,1640 --screenshot="$T/report.png" "file://$T/report.html" 2>/dev/null
cp "$T/report.png" "$D/docs/report.png"
echo "wrote docs/report.png"
