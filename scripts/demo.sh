#!/usr/bin/env bash
# make demo: calibrate, quantize (W8A8) and evaluate the bundled default model,
# then print FP32 vs quantized accuracy, agreement, SQNR, size and speed.
#   scripts/demo.sh [QTOOL] [MODEL]
set -euo pipefail
cd "$(dirname "$0")/.."
Q=${1:-build/release/qtool}
MODEL=${2:-models/fmnist_resnet.onnx}
NAME=$(basename "$MODEL" .onnx)
OUT=build/demo
mkdir -p "$OUT"

echo "== 1/4 calibrate $MODEL on 1000 training samples"
"$Q" calibrate "$MODEL" --data fashion-mnist:train --limit 1000 -o "$OUT/$NAME.calib.json"
echo "== 2/4 quantize to W8A8 (per-channel weights)"
"$Q" quantize "$MODEL" --calib "$OUT/$NAME.calib.json" --bits w8a8 -o "$OUT/$NAME.qmod"
echo "== 3/4 evaluate FP32 on the 10k test set"
"$Q" eval "$MODEL" --data fashion-mnist:test --json "$OUT/$NAME.fp32.json" | tee "$OUT/fp32.txt"
echo "== 4/4 evaluate the quantized model against FP32"
"$Q" eval "$OUT/$NAME.qmod" --data fashion-mnist:test --reference "$MODEL" --json "$OUT/$NAME.qmod.json" | tee "$OUT/q.txt"

field() { sed -n "s/^$1 *\([0-9.inf]*\).*/\1/p" "$2" | head -1; }
size() { stat -c %s "$1"; }
f1=$(field 'top-1:' "$OUT/fp32.txt"); q1=$(field 'top-1:' "$OUT/q.txt")
fs=$(field 'speed:' "$OUT/fp32.txt"); qs=$(field 'speed:' "$OUT/q.txt")
agree=$(sed -n 's/^agreement with .*: \([0-9.]*\)% top-1/\1/p' "$OUT/q.txt")
sqnr=$(field 'SQNR:' "$OUT/q.txt")
echo
printf '%-28s %9s %10s %9s %12s %12s\n' "model" "top-1 %" "agreement" "SQNR dB" "size bytes" "samples/s"
printf '%-28s %9s %10s %9s %12s %12s\n' "$NAME.onnx (FP32)" "$f1" "-" "-" "$(size "$MODEL")" "$fs"
printf '%-28s %9s %10s %9s %12s %12s\n' "$NAME.qmod (W8A8 int)" "$q1" "$agree" "$sqnr" "$(size "$OUT/$NAME.qmod")" "$qs"
echo
echo "reports: $OUT/$NAME.fp32.json $OUT/$NAME.qmod.json"
"$Q" compare "$OUT/$NAME.fp32.json" "$OUT/$NAME.qmod.json" --max-drop 0.5 || true
