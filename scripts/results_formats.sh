#!/usr/bin/env bash
# The INT-vs-FP table of docs/RESULTS.md: for every bundled model, integer
# and floating-point number formats at 8-bit weights and activations
# (INT8, FP8 E4M3, FP8 E5M2, MXINT8) and at 4-bit weights with 8-bit integer
# activations (INT4, FP4 E2M1, MXFP4 with each shared-exponent rule, NVFP4),
# all round to nearest, quantized with the ranges of 1000 calibration samples
# from the train split and evaluated on all 10,000 test images.
#   scripts/results_formats.sh [QTOOL]          prints the section (markdown)
#   scripts/results_formats.sh --update [QTOOL] replaces it inside docs/RESULTS.md
#   env: RESULTS_MODELS="fmnist_cnn ..." to restrict, FORMATS_LIMIT=N to evaluate
#        the first N test images only (the table then says so)
set -euo pipefail
cd "$(dirname "$0")/.."
update=0
if [ "${1:-}" = --update ]; then update=1; shift; fi
Q=${1:-build/release/qtool}
OUT=build/results/formats
mkdir -p "$OUT"
models=${RESULTS_MODELS:-$(ls models/*.onnx | xargs -n1 basename | sed 's/\.onnx$//')}
limit=${FORMATS_LIMIT:-0}
# label|quantize flags
configs=(
	"W8A8 INT8|--weights int8 --acts int8"
	"W8A8 FP8 E4M3|--weights fp8_e4m3 --acts fp8_e4m3"
	"W8A8 FP8 E5M2|--weights fp8_e5m2 --acts fp8_e5m2"
	"W8A8 MXINT8|--weights mxint8 --acts mxint8"
	"W4A8 INT4 channel|--weights int4 --acts int8"
	"W4A8 INT4 g32|--weights int4 --acts int8 --group-size 32"
	"W4A8 FP4 E2M1 channel|--weights fp4_e2m1 --acts int8"
	"W4A8 FP4 E2M1 g32|--weights fp4_e2m1 --acts int8 --group-size 32"
	"W4A8 MXFP4 floor|--weights mxfp4 --acts int8 --mx-scale floor"
	"W4A8 MXFP4 ceil|--weights mxfp4 --acts int8 --mx-scale ceil"
	"W4A8 MXFP4 best|--weights mxfp4 --acts int8 --mx-scale best"
	"W4A8 NVFP4|--weights nvfp4 --acts int8"
)
source scripts/results_section.sh

section() {
	echo "<!-- formats:begin -->"
	echo "## Integer and floating-point formats"
	echo
	echo "Made by \`scripts/results_formats.sh\` on $(date -u +%Y-%m-%d)$([ "$limit" = 0 ] || echo ", on the first $limit test images")."
	echo "Every row: \`qtool calibrate MODEL --data fashion-mnist:train --limit 1000\`, then"
	echo "\`qtool quantize MODEL --calib C FLAGS\` (round to nearest), then"
	echo "\`qtool eval Q.qmod --data fashion-mnist:test --reference MODEL\`. Integer weights run on the"
	echo "integer kernels; every other format is decoded to FP32 when the model is loaded and its layers"
	echo "run in float, with activations in a format rounded to it at each layer's input (other"
	echo "activations stay float32 there, while the INT rows quantize every activation to uint8)."
	echo "MX rows: blocks of 32 with E8M0 scales; floor is the spec's shared exponent, ceil the rounded-up"
	echo "one, best the one with the smaller squared error per block. bits/weight counts codes and"
	echo "scales as the .qmod stores them (\`qtool inspect\`); Δ is the top-1 change against FP32 in points."
	echo
	echo "| model | format | flags | top-1 % | Δ | agreement % | SQNR dB | bits/weight | bytes/weight |"
	echo "|---|---|---|---:|---:|---:|---:|---:|---:|"
	for name in $models; do
		m=models/$name.onnx
		lflag=()
		[ "$limit" = 0 ] || lflag=(--limit "$limit")
		[ -f "$OUT/$name.calib.json" ] || "$Q" calibrate "$m" --data fashion-mnist:train --limit 1000 \
			-o "$OUT/$name.calib.json" >/dev/null
		"$Q" eval "$m" --data fashion-mnist:test "${lflag[@]}" >"$OUT/$name.fp32.txt"
		f1=$(num 'top-1:' "$OUT/$name.fp32.txt")
		echo "| $name | FP32 | - | $f1 | - | - | - | 32 | 4 |"
		for c in "${configs[@]}"; do
			label=${c%%|*}
			flags=${c#*|}
			tag="$name.$(echo "$label" | tr ' ' '_')"
			qm="$OUT/$tag.qmod"
			# shellcheck disable=SC2086
			if ! "$Q" quantize "$m" --calib "$OUT/$name.calib.json" $flags -o "$qm" >"$OUT/$tag.log" 2>&1; then
				echo "| $name | $label | \`$flags\` | failed: $(head -c 120 "$OUT/$tag.log") | | | | | |"
				continue
			fi
			t="$OUT/$tag.txt"
			"$Q" eval "$qm" --data fashion-mnist:test "${lflag[@]}" --reference "$m" >"$t"
			q1=$(num 'top-1:' "$t")
			agree=$(sed -n 's/^agreement with .*: \([0-9.]*\)% top-1/\1/p' "$t")
			delta=$(awk -v a="$q1" -v b="$f1" 'BEGIN { printf "%+.2f", a - b }')
			bpw=$("$Q" inspect "$qm" | awk '$1 == "total" { print $NF }')
			bypw=$(awk -v b="$bpw" 'BEGIN { printf "%.3f", b / 8 }')
			echo "| $name | $label | \`$flags\` | $q1 | $delta | $agree | $(num 'SQNR:' "$t") | $bpw | $bypw |"
		done
		echo "results_formats: $name done" >&2
	done
	echo "<!-- formats:end -->"
}

if [ "$update" = 1 ]; then
	section >"$OUT/section.md"
	results_update_section formats "$OUT/section.md"
	echo "updated the formats section of docs/RESULTS.md"
else
	section
fi
