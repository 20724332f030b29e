#!/usr/bin/env bash
# Where fmnist_mobilenet's low-bit error comes from, by layer kind: the
# gptq,bias-correction model at w3a8 (group 32) and w2a8 (group 16, full
# range), then the same with one kind of layer kept at w8a8 (--layer): the
# depthwise 3x3 convolutions, the pointwise 1x1 ones, the first convolution.
# 1000 calibration samples from the train split, all 10,000 test images.
#   scripts/results_kinds.sh [--update] [QTOOL]   (--update: replace the section in docs/RESULTS.md)
set -euo pipefail
cd "$(dirname "$0")/.."
update=0
if [ "${1:-}" = --update ]; then update=1; shift; fi
Q=${1:-build/release/qtool}
OUT=build/results/kinds
mkdir -p "$OUT"
m=models/fmnist_mobilenet.onnx
DW=(--layer '/features/features.3/body/body.0/Conv=w8a8' --layer '/features/features.[4-7]/body/body.3/Conv=w8a8')
PW=(--layer '/features/features.3/body/body.3/Conv=w8a8' --layer '/features/features.[4-7]/body/body.[06]/Conv=w8a8'
	--layer '/features/features.8/Conv=w8a8')
FIRST=(--layer '/features/features.0/Conv=w8a8')
source scripts/results_section.sh

section() {
	echo "<!-- kinds:begin -->"
	echo "### Where fmnist_mobilenet's low-bit error comes from"
	echo
	echo "Made by \`scripts/results_kinds.sh\` on $(date -u +%Y-%m-%d): gptq,bias-correction with 1000"
	echo "calibration samples, then one kind of layer put back to w8a8 with \`--layer\`. The depthwise"
	echo "3x3 convolutions hold 2,736 of the model's 22,720 weights (12%)."
	echo
	echo "| bits | kept at w8a8 | top-1 % | Δ vs FP32 |"
	echo "|---|---|---:|---:|"
	"$Q" calibrate "$m" --data fashion-mnist:train --limit 1000 -o "$OUT/calib.json" >/dev/null
	"$Q" eval "$m" --data fashion-mnist:test >"$OUT/fp32.txt"
	local f1
	f1=$(num 'top-1:' "$OUT/fp32.txt")
	for cfg in "w3a8:--group-size 32" "w2a8:--group-size 16 --full-range"; do
		bits=${cfg%%:*}
		read -r -a gflag <<<"${cfg#*:}"
		for kind in none depthwise pointwise first; do
			case $kind in
			none) kflag=() ;;
			depthwise) kflag=("${DW[@]}") ;;
			pointwise) kflag=("${PW[@]}") ;;
			first) kflag=("${FIRST[@]}") ;;
			esac
			qm="$OUT/$bits.$kind.qmod"
			"$Q" quantize "$m" --calib "$OUT/calib.json" --bits "$bits" "${gflag[@]}" "${kflag[@]}" \
				--data fashion-mnist:train --limit 1000 -o "$qm" >/dev/null
			"$Q" eval "$qm" --data fashion-mnist:test >"$OUT/$bits.$kind.txt"
			q1=$(num 'top-1:' "$OUT/$bits.$kind.txt")
			echo "| $bits ${gflag[*]} | $kind | $q1 | $(awk -v a="$q1" -v b="$f1" 'BEGIN { printf "%+.2f", a - b }') |"
		done
	done
	echo "<!-- kinds:end -->"
}

if [ "$update" = 1 ]; then
	section >"$OUT/section.md"
	results_update_section kinds "$OUT/section.md"
	echo "updated the layer-kind section of docs/RESULTS.md"
else
	section
fi
