#!/usr/bin/env bash
# Accuracy cost of two-level group scales (.qmod v3: an f32 per channel and a
# u8 ratio per group) against the f32 group scales (and i32 zero points) that
# .qmod v2 stored, on every bundled model at w4a8 g32 and w2a8 g16.
#
#   scripts/group_scales_cost.sh [BASE_REV]   (default e7c2056, the last v2 commit)
#   env: QTOOL (default build/release/qtool, built first), SCALES_MODELS="fmnist_cnn ..."
#
# Builds BASE_REV from `git archive` in build/scales-base (nothing else is
# touched), calibrates each model once on 1000 training samples (the
# calibration file is the same format for both), quantizes with both
# binaries, and evaluates both .qmod files with the integer runtime on all
# 10,000 test images. Prints a markdown table: top-1 with each storage, the
# difference in points, file sizes, and v3's bits per weight (inspect's total).
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-e7c2056}
Q=${QTOOL:-build/release/qtool}
BQ=build/scales-base/build/release/qtool
OUT=build/scales-cost
mkdir -p "$OUT" build/scales-base
[ -n "${QTOOL:-}" ] || make -j2 all >/dev/null
if [ ! -x "$BQ" ] || [ "$(cat build/scales-base/.rev 2>/dev/null)" != "$base" ]; then
	rm -rf build/scales-base && mkdir -p build/scales-base
	git archive "$base" | tar -x -C build/scales-base
	make -C build/scales-base -j2 all >/dev/null
	echo "$base" >build/scales-base/.rev
fi
models=${SCALES_MODELS:-$(ls models/*.onnx | xargs -n1 basename | sed 's/\.onnx$//')}
top1() { sed -n 's/^top-1: *\([0-9.]*\)%.*/\1/p' "$1"; }
echo "| model | bits | group | top-1 % f32 scales (v2) | top-1 % two-level (v3) | Δ points | bytes v2 | bytes v3 | bits/weight v3 |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
for name in $models; do
	m=models/$name.onnx
	"$Q" calibrate "$m" --data fashion-mnist:train --limit 1000 -o "$OUT/$name.calib.json" >/dev/null
	for cfg in w4a8:32 w2a8:16; do
		bits=${cfg%:*} gs=${cfg#*:}
		a=$OUT/$name.$bits.g$gs.v2.qmod b=$OUT/$name.$bits.g$gs.v3.qmod
		"$BQ" quantize "$m" --calib "$OUT/$name.calib.json" --bits "$bits" --group-size "$gs" -o "$a" >/dev/null
		"$Q" quantize "$m" --calib "$OUT/$name.calib.json" --bits "$bits" --group-size "$gs" -o "$b" >/dev/null
		"$BQ" eval "$a" --data fashion-mnist:test >"$a.txt"
		"$Q" eval "$b" --data fashion-mnist:test >"$b.txt"
		bpw=$("$Q" inspect "$b" | awk '$1 == "total" { print $NF }')
		ta=$(top1 "$a.txt") tb=$(top1 "$b.txt")
		echo "| $name | $bits | $gs | $ta | $tb | $(awk -v a="$ta" -v b="$tb" 'BEGIN { printf "%+.2f", b - a }') |" \
			"$(stat -c %s "$a") | $(stat -c %s "$b") | $bpw |"
	done
done
