#!/usr/bin/env bash
# The data engine's modes, with --method gptq,bias-correction on every bundled
# model: sequential aiming at the FP32 output (the default), sequential
# aiming at the layer's own weights on the quantized inputs
# (--no-fp32-target), and every layer on the FP32 model's inputs
# (--fp32-inputs). 1000 calibration samples from the train split, all
# 10,000 test images.
#   scripts/results_modes.sh [--update] [QTOOL]   (--update: replace the section in docs/RESULTS.md)
set -euo pipefail
cd "$(dirname "$0")/.."
update=0
if [ "${1:-}" = --update ]; then update=1; shift; fi
Q=${1:-build/release/qtool}
OUT=build/results/modes
mkdir -p "$OUT"
source scripts/results_section.sh
models=${RESULTS_MODELS:-$(ls models/*.onnx | xargs -n1 basename | sed 's/\.onnx$//')}

section() {
	echo "<!-- modes:begin -->"
	echo "### Sequential or FP32 inputs"
	echo
	echo "Made by \`scripts/results_modes.sh\` on $(date -u +%Y-%m-%d): \`--method gptq,bias-correction\`, 1000"
	echo "calibration samples; top-1 % on all 10,000 test images (Δ against FP32 in brackets)."
	echo
	echo "| model | bits | sequential, FP32 target (default) | sequential, --no-fp32-target | --fp32-inputs |"
	echo "|---|---|---:|---:|---:|"
	for name in $models; do
		m=models/$name.onnx
		"$Q" calibrate "$m" --data fashion-mnist:train --limit 1000 -o "$OUT/$name.calib.json" >/dev/null
		"$Q" eval "$m" --data fashion-mnist:test >"$OUT/$name.fp32.txt"
		f1=$(num 'top-1:' "$OUT/$name.fp32.txt")
		for cfg in "w3a8:--group-size 32" "w2a8:--group-size 16 --full-range"; do
			bits=${cfg%%:*}
			read -r -a gflag <<<"${cfg#*:}"
			row="| $name | $bits ${gflag[*]} |"
			for mode in default --no-fp32-target --fp32-inputs; do
				mflag=()
				[ "$mode" = default ] || mflag=("$mode")
				qm="$OUT/$name.$bits.$mode.qmod"
				"$Q" quantize "$m" --calib "$OUT/$name.calib.json" --bits "$bits" "${gflag[@]}" "${mflag[@]}" \
					--data fashion-mnist:train --limit 1000 -o "$qm" >/dev/null
				"$Q" eval "$qm" --data fashion-mnist:test >"$OUT/$name.$bits.$mode.txt"
				q1=$(num 'top-1:' "$OUT/$name.$bits.$mode.txt")
				row+=" $q1 ($(awk -v a="$q1" -v b="$f1" 'BEGIN { printf "%+.2f", a - b }')) |"
			done
			echo "$row"
		done
		echo "results_modes: $name done" >&2
	done
	echo "<!-- modes:end -->"
}

if [ "$update" = 1 ]; then
	section >"$OUT/section.md"
	results_update_section modes "$OUT/section.md"
	echo "updated the modes section of docs/RESULTS.md"
else
	section
fi
