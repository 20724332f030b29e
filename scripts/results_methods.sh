#!/usr/bin/env bash
# The PTQ methods table of docs/RESULTS.md: for every bundled model, weight
# bits (w4a8 per channel, w3a8 group 32, w2a8 groups of 32 and 16) x method
# (rtn, gptq, bias-correction, both), quantized with 1000 calibration samples
# from the train split and evaluated on all 10,000 test images.
#   scripts/results_methods.sh [QTOOL]          prints the section (markdown)
#   scripts/results_methods.sh --update [QTOOL] replaces it inside docs/RESULTS.md
#   env: RESULTS_MODELS="fmnist_cnn ..." to restrict, METHODS_CONFIGS (bits:channel|tensor|groupG)
#        and METHODS (--method lists, "rtn" for none) to change the rows, RESULTS_SECTION and
#        RESULTS_TITLE for another section of docs/RESULTS.md (scripts/results_methods2.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
update=0
if [ "${1:-}" = --update ]; then update=1; shift; fi
Q=${1:-build/release/qtool}
OUT=build/results/methods
mkdir -p "$OUT"
models=${RESULTS_MODELS:-$(ls models/*.onnx | xargs -n1 basename | sed 's/\.onnx$//')}
configs=${METHODS_CONFIGS:-"w4a8:channel w3a8:group32 w2a8:group32 w2a8:group16"}
methods=${METHODS:-"rtn gptq bias-correction gptq,bias-correction"}
sec=${RESULTS_SECTION:-methods}
source scripts/results_section.sh

section() {
	echo "<!-- $sec:begin -->"
	echo "## ${RESULTS_TITLE:-PTQ methods}"
	echo
	echo "Made by ${RESULTS_BY:-\`scripts/results_methods.sh\` (part of \`make results\`)} on $(date -u +%Y-%m-%d)."
	echo "Every row: \`qtool calibrate MODEL --data fashion-mnist:train --limit 1000\`, then"
	echo "\`qtool quantize MODEL --calib C --bits B [--group-size G] [--full-range] --data fashion-mnist:train --limit 1000 --method M\`"
	echo "(rtn: no --data), then \`qtool eval Q.qmod --data fashion-mnist:test --reference MODEL\` on all"
	echo "10,000 test images. Weights per output channel unless a group size is given; 2-bit rows use"
	echo "the full-range grid [-2, 1]. Δ is the top-1 change against FP32 in points; size is the .qmod"
	echo "file; quantize s is the wall time of the quantize command on this machine."
	echo
	echo "| model | bits | weights | method | top-1 % | Δ | agreement % | SQNR dB | size bytes | quantize s |"
	echo "|---|---|---|---|---:|---:|---:|---:|---:|---:|"
	for name in $models; do
		m=models/$name.onnx
		[ -f "$OUT/$name.calib.json" ] || "$Q" calibrate "$m" --data fashion-mnist:train --limit 1000 \
			-o "$OUT/$name.calib.json" >/dev/null
		"$Q" eval "$m" --data fashion-mnist:test >"$OUT/$name.fp32.txt"
		f1=$(num 'top-1:' "$OUT/$name.fp32.txt")
		echo "| $name | FP32 | - | - | $f1 | - | - | - | $(stat -c %s "$m") | - |"
		for cfg in $configs; do
			bits=${cfg%%:*}
			gran=${cfg#*:}
			case $gran in
			channel) gflag=() ;;
			tensor) gflag=(--granularity tensor) ;;
			group*) gflag=(--group-size "${gran#group}") ;;
			esac
			case $bits in w2*) gflag+=(--full-range) ;; esac
			for meth in $methods; do
				tag="$name.$bits.$gran.${meth//,/+}"
				qm="$OUT/$tag.qmod"
				if [ "$meth" = rtn ]; then dflag=(); else dflag=(--data fashion-mnist:train --limit 1000 --method "$meth"); fi
				t0=$(date +%s.%N)
				if ! "$Q" quantize "$m" --calib "$OUT/$name.calib.json" --bits "$bits" "${gflag[@]}" \
					"${dflag[@]}" -o "$qm" >"$OUT/$tag.log" 2>&1; then
					echo "| $name | $bits | $gran | $meth | failed: $(head -c 120 "$OUT/$tag.log") | | | | | |"
					continue
				fi
				secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
				t="$OUT/$tag.txt"
				"$Q" eval "$qm" --data fashion-mnist:test --reference "$m" >"$t"
				q1=$(num 'top-1:' "$t")
				agree=$(sed -n 's/^agreement with .*: \([0-9.]*\)% top-1/\1/p' "$t")
				delta=$(awk -v a="$q1" -v b="$f1" 'BEGIN { printf "%+.2f", a - b }')
				# auto: the methods it picked
				picked=$(sed -n 's/^auto: picked \([^ ]*\) .*/\1/p' "$OUT/$tag.log")
				echo "| $name | $bits | $gran | $meth${picked:+: $picked} | $q1 | $delta | $agree | $(num 'SQNR:' "$t") | $(stat -c %s "$qm") | $secs |"
			done
		done
		echo "results_methods: $name done" >&2
	done
	echo "<!-- $sec:end -->"
}

if [ "$update" = 1 ]; then
	section >"$OUT/$sec.section.md"
	results_update_section "$sec" "$OUT/$sec.section.md"
	echo "updated the ${RESULTS_TITLE:-PTQ methods} section of docs/RESULTS.md"
else
	section
fi
