#!/usr/bin/env bash
# The INT-vs-FP study of docs/RESULTS.md (issue 13), on every bundled model:
#  - integer and floating-point number formats at 8-bit weights and
#    activations (INT8, FP8 E4M3, FP8 E5M2, MXINT8), at 4-bit weights with
#    8-bit integer activations (INT4, FP4 E2M1, MXFP4 with each shared-exponent
#    rule, NVFP4) and at 4-bit weights and activations (INT4, FP4 E2M1, MXFP4,
#    NVFP4), each 4-bit row with round to nearest and with the best method of
#    the PTQ issues (gptq,bias-correction);
#  - the per-layer INT/FP mix the integer program picks at the size of
#    uniform INT4 (qtool analyze, then quantize --target-size), against
#    uniform INT4 and uniform FP4 E2M1;
#  - the issue's two goals, checked per model from those rows.
# Ranges, methods and sensitivities use 1000 calibration samples from the
# train split; every row is evaluated on all 10,000 test images.
#   scripts/results_formats.sh [QTOOL]          prints the section (markdown)
#   scripts/results_formats.sh --update [QTOOL] replaces it inside docs/RESULTS.md
#   env: RESULTS_MODELS="fmnist_cnn ..." to restrict, FORMATS_LIMIT=N to evaluate
#        the first N test images only (the table then says so), FORMATS_JOBS=N
#        models at once (default 1), FORMATS_FULL=1 for more rows (below),
#        FORMATS_REUSE=1 to keep rows already measured (their .txt exists),
#        FORMATS_COLLECT=1 to only assemble what was measured (rows not run
#        say so; the goals table then says "not measured")
set -euo pipefail
cd "$(dirname "$0")/.."
update=0
if [ "${1:-}" = --update ]; then update=1; shift; fi
Q=${1:-build/release/qtool}
OUT=build/results/formats
mkdir -p "$OUT"
models=${RESULTS_MODELS:-$(ls models/*.onnx | xargs -n1 basename | sed 's/\.onnx$//')}
limit=${FORMATS_LIMIT:-0}
CAL=(--data fashion-mnist:train --limit 1000)
METHOD="--method gptq,bias-correction"
# label|quantize flags|m when the row is also run with $METHOD
configs=(
	"W4A8 INT4 channel|--weights int4 --acts int8|m"
	"W4A8 FP4 E2M1 channel|--weights fp4_e2m1 --acts int8|m"
	"W4A8 MXFP4 floor|--weights mxfp4 --acts int8 --mx-scale floor|m"
	"W4A8 NVFP4|--weights nvfp4 --acts int8|m"
	"W4A4 INT4 channel|--weights int4 --acts int4|m"
	"W4A4 FP4 E2M1 channel|--weights fp4_e2m1 --acts fp4_e2m1|m"
	"W4A4 MXFP4 floor|--weights mxfp4 --acts mxfp4 --mx-scale floor|m"
	"W4A4 NVFP4|--weights nvfp4 --acts nvfp4|m"
	"W8A8 INT8|--weights int8 --acts int8|"
	"W8A8 FP8 E4M3|--weights fp8_e4m3 --acts fp8_e4m3|"
)
# FORMATS_FULL=1 adds FP8 E5M2 and MXINT8, group-32 grids and the other MX
# shared-exponent rules (the default run leaves them out for time).
[ "${FORMATS_FULL:-0}" = 0 ] || configs+=(
	"W8A8 FP8 E5M2|--weights fp8_e5m2 --acts fp8_e5m2|"
	"W8A8 MXINT8|--weights mxint8 --acts mxint8|"
	"W4A8 INT4 g32|--weights int4 --acts int8 --group-size 32|m"
	"W4A8 FP4 E2M1 g32|--weights fp4_e2m1 --acts int8 --group-size 32|m"
	"W4A8 MXFP4 ceil|--weights mxfp4 --acts int8 --mx-scale ceil|"
	"W4A8 MXFP4 best|--weights mxfp4 --acts int8 --mx-scale best|"
)
# The mix's candidates: every 4-bit weight format, and the 8-bit ones for
# layers worth their bytes.
CANDS=int4,fp4_e2m1,mxfp4,nvfp4,int8,fp8_e4m3
source scripts/results_section.sh

# row NAME LABEL FLAGS...: quantize, evaluate, print the table row and append
# "name|label|top1|delta" to $OUT/NAME.rows.txt. Needs $m, $f1, $lflag.
row() {
	local name=$1 label=$2
	shift 2
	local tag qm t q1 agree delta bpw bypw
	tag="$name.$(echo "$label" | tr ' /+,' '____')"
	qm="$OUT/$tag.qmod"
	t="$OUT/$tag.txt"
	# A row counts as measured once its evaluation is complete (written to
	# .part first, so an interrupted run leaves none half-written).
	if [ "${FORMATS_COLLECT:-0}" = 1 ] && [ ! -s "$t" ]; then
		echo "| $name | $label | \`$*\` | not run (out of time) | | | | | |"
		return
	fi
	if [ "${FORMATS_REUSE:-0}${FORMATS_COLLECT:-0}" != 00 ] && [ -s "$t" ] && [ -s "$qm" ]; then
		: # measured by an earlier run of this script
	elif ! "$Q" quantize "$m" --calib "$OUT/$name.calib.json" "$@" -o "$qm" >"$OUT/$tag.log" 2>&1; then
		echo "| $name | $label | \`$*\` | failed: $(tail -n 1 "$OUT/$tag.log" | head -c 120) | | | | | |"
		return
	else
		"$Q" eval "$qm" --data fashion-mnist:test "${lflag[@]}" --reference "$m" >"$t.part"
		mv "$t.part" "$t"
	fi
	q1=$(num 'top-1:' "$t")
	agree=$(sed -n 's/^agreement with .*: \([0-9.]*\)% top-1/\1/p' "$t")
	delta=$(awk -v a="$q1" -v b="$f1" 'BEGIN { printf "%+.2f", a - b }')
	bpw=$("$Q" inspect "$qm" | awk '$1 == "total" { print $NF }')
	bypw=$(awk -v b="$bpw" 'BEGIN { printf "%.3f", b / 8 }')
	local shown="$*"
	shown=${shown//--data fashion-mnist:train --limit 1000/}
	shown=${shown//  / }
	echo "| $name | $label | \`${shown% }\` | $q1 | $delta | $agree | $(num 'SQNR:' "$t") | $bpw | $bypw |"
	echo "$name|$label|$q1|$delta" >>"$OUT/$name.rows.txt"
}

# top1_of NAME LABEL: the top-1 of a row already run ("" if it failed).
top1_of() { awk -F'|' -v n="$1" -v l="$2" '$1 == n && $2 == l { print $3 }' "$OUT/rows.txt"; }

# model_rows NAME: every row of one model (markdown on stdout).
model_rows() {
	local name=$1
	m=models/$name.onnx
	lflag=()
	[ "$limit" = 0 ] || lflag=(--limit "$limit")
	: >"$OUT/$name.rows.txt"
	[ -f "$OUT/$name.calib.json" ] || "$Q" calibrate "$m" "${CAL[@]}" -o "$OUT/$name.calib.json" >/dev/null
	[ "${FORMATS_REUSE:-0}${FORMATS_COLLECT:-0}" != 00 ] && [ -s "$OUT/$name.fp32.txt" ] ||
		"$Q" eval "$m" --data fashion-mnist:test "${lflag[@]}" >"$OUT/$name.fp32.txt"
	f1=$(num 'top-1:' "$OUT/$name.fp32.txt")
	echo "| $name | FP32 | - | $f1 | - | - | - | 32 | 4 |"
	echo "$name|FP32|$f1|0" >>"$OUT/$name.rows.txt"
	local mixed=0
	for c in "${configs[@]}"; do
		IFS='|' read -r label flags meth <<<"$c"
		# The mix right after the W4A8 rows (it needs the INT4 one).
		if [ "$mixed" = 0 ] && [[ $label != W4A8* ]]; then
			mix_rows "$name"
			mixed=1
		fi
		# shellcheck disable=SC2086
		row "$name" "$label" $flags
		# shellcheck disable=SC2086
		[ -z "$meth" ] || row "$name" "$label + gptq,bc" $flags $METHOD "${CAL[@]}"
	done
	echo "results_formats: $name done" >&2
}

# mix_rows NAME: the INT/FP mix at uniform INT4's size, with and without the method.
mix_rows() {
	local name=$1 U sens="$OUT/$1.sens.json"
	U=$("$Q" inspect "$OUT/$name.W4A8_INT4_channel.qmod" 2>/dev/null | awk '$1 == "total" { print $3 }')
	[ -f "$sens" ] || [ "${FORMATS_COLLECT:-0}" = 1 ] || "$Q" analyze "$m" --calib "$OUT/$name.calib.json" "${CAL[@]}" --candidates "$CANDS" \
		-o "$sens" >"$OUT/$name.analyze.log" 2>&1
	row "$name" "W4A8 INT/FP mix" --sens "$sens" --candidates "$CANDS" --target-size "$U"
	# shellcheck disable=SC2086
	row "$name" "W4A8 INT/FP mix + gptq,bc" --sens "$sens" --candidates "$CANDS" --target-size "$U" \
		$METHOD "${CAL[@]}"
}

section() {
	echo "<!-- formats:begin -->"
	echo "## Integer and floating-point formats"
	echo
	echo "Made by \`scripts/results_formats.sh\` on $(date -u +%Y-%m-%d)$([ "$limit" = 0 ] || echo ", on the first $limit test images")."
	echo "Every row: \`qtool calibrate MODEL --data fashion-mnist:train --limit 1000\`, then"
	echo "\`qtool quantize MODEL --calib C FLAGS\`, then"
	echo "\`qtool eval Q.qmod --data fashion-mnist:test --reference MODEL\`$([ "$limit" = 0 ] && echo " (all 10,000 test images)")."
	echo "Rows marked \`+ gptq,bc\` add \`$METHOD --data fashion-mnist:train --limit 1000\` (GPTQ then"
	echo "bias correction, sequential, on the same 1000 samples); on a number format GPTQ rounds each"
	echo "column with the format's quantizer on the format's fixed scales (lib/quant/gptq.c). Integer"
	echo "weights run on the integer kernels; every other format is decoded to FP32 when the model is"
	echo "loaded and its layers run in float on their uint8 (A8) input. In the W4A4 rows the INT row"
	echo "quantizes every activation to 4 bits, the format rows round each layer's input to the format"
	echo "(other activations stay float32). MX rows: blocks of 32 with E8M0 scales; floor is the spec's"
	echo "shared exponent, ceil the rounded-up one, best the one with the smaller squared error per"
	echo "block. bits/weight counts codes and scales as the .qmod stores them (\`qtool inspect\`); Δ is"
	echo "the top-1 change against FP32 in points."
	echo
	echo "The INT/FP mix: \`qtool analyze MODEL --calib C --data fashion-mnist:train --limit 1000"
	echo "--candidates $CANDS -o S.json\` (round to nearest), then \`qtool quantize MODEL --calib C"
	echo "--sens S.json --candidates $CANDS --target-size U\` with U the weight bytes (with scales) of"
	echo "the W4A8 INT4 channel row: the integer program picks a format per layer within uniform"
	echo "INT4's size. Its \`+ gptq,bc\` row quantizes the same plan with the method."
	echo
	echo "| model | format | flags | top-1 % | Δ | agreement % | SQNR dB | bits/weight | bytes/weight |"
	echo "|---|---|---|---:|---:|---:|---:|---:|---:|"
	local jobs=${FORMATS_JOBS:-1} running=0
	for name in $models; do
		model_rows "$name" >"$OUT/$name.rows.md" &
		running=$((running + 1))
		if [ "$running" -ge "$jobs" ]; then
			wait -n || true
			running=$((running - 1))
		fi
	done
	wait
	: >"$OUT/rows.txt"
	for name in $models; do
		cat "$OUT/$name.rows.md"
		cat "$OUT/$name.rows.txt" >>"$OUT/rows.txt"
	done
	echo
	echo "### The goals"
	echo
	echo "From the rows above. Goal 1: the best W4A8 4-bit-weight format with \`+ gptq,bc\` within 0.5"
	echo "points of FP32. Goal 2: the INT/FP mix at uniform INT4's size above both uniform INT4 and"
	echo "uniform FP4 E2M1 (per channel), with round to nearest and with \`+ gptq,bc\`."
	echo
	echo "| model | FP32 | best W4A8 format + gptq,bc | top-1 (Δ) | goal 1 | mix / INT4 / FP4 (RTN) | goal 2 RTN | mix / INT4 / FP4 (+ gptq,bc) | goal 2 + gptq,bc |"
	echo "|---|---:|---|---:|---|---:|---|---:|---|"
	for name in $models; do
		f1=$(top1_of "$name" FP32)
		best=$(awk -F'|' -v n="$name" '$1 == n && $2 ~ /^W4A8 / && $2 ~ /gptq,bc$/ && $2 !~ /mix/ && $3 != "" {
			if (!seen || $3 + 0 > b + 0) { b = $3; l = $2; seen = 1 } } END { if (seen) print l "|" b }' "$OUT/rows.txt")
		bl=${best%|*}
		bt=${best#*|}
		g1=$(awk -v a="$bt" -v f="$f1" 'BEGIN { d = a - f; printf "%+.2f|%s", d, (a != "" && d >= -0.5) ? "met" : "not met" }')
		goal2() { # goal2 SUFFIX: "mix / int4 / fp4|met"
			local x i f
			x=$(top1_of "$name" "W4A8 INT/FP mix$1")
			i=$(top1_of "$name" "W4A8 INT4 channel$1")
			f=$(top1_of "$name" "W4A8 FP4 E2M1 channel$1")
			awk -v x="$x" -v i="$i" -v f="$f" 'BEGIN { printf "%s / %s / %s|%s", x, i, f,
				(x != "" && x + 0 > i + 0 && x + 0 > f + 0) ? "met" : "not met" }'
		}
		r=$(goal2 "")
		mth=$(goal2 " + gptq,bc")
		echo "| $name | $f1 | ${bl% + gptq,bc} | $bt (${g1%|*}) | ${g1#*|} | ${r%|*} | ${r#*|} | ${mth%|*} | ${mth#*|} |"
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
