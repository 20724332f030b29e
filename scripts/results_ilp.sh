#!/usr/bin/env bash
# Mixed precision by integer programming against uniform bit widths: for every
# bundled model (or RESULTS_MODELS="fmnist_cnn ..."), calibrate and measure
# sensitivities on 1000 samples of fashion-mnist:train, then quantize
#   - uniformly at w8a8, w4a8, w3a8, w2a8;
#   - with the ILP at the weight bytes of uniform w4a8 (--target-size), and at
#     6, 5, 4, 3 and 2.5 average weight bits (--avg-wbits);
#   - with --max-drop (ILP_MAX_DROP points, default 0.5; evaluated on the test
#     images, so that row is tuned on the data it reports);
# and evaluate each on all 10,000 test images. Prints a markdown table.
#   scripts/results_ilp.sh [QTOOL]
#   env: RESULTS_MODELS, ILP_METHOD (quantize --method for every row, with
#        --data; default: rtn), ILP_CANDIDATES (default w8a8,w4a8,w3a8,w2a8,w4a4),
#        ILP_TEST_LIMIT (test images; default 0 = all)
set -euo pipefail
cd "$(dirname "$0")/.."
Q=${1:-build/release/qtool}
OUT=build/results/ilp
mkdir -p "$OUT"
models=${RESULTS_MODELS:-$(ls models/*.onnx | xargs -n1 basename | sed 's/\.onnx$//')}
cands=${ILP_CANDIDATES:-w8a8,w4a8,w3a8,w2a8,w4a4}
method=${ILP_METHOD:-rtn}
tlimit=${ILP_TEST_LIMIT:-0}
# Sensitivities are measured with the same method (analyze --method).
if [ "$method" = rtn ]; then mflag=(); else mflag=(--data fashion-mnist:train --limit 1000 --method "$method"); fi
amflag=(); [ "$method" = rtn ] || amflag=(--method "$method")
tag=${method//,/+}
source scripts/results_section.sh
# Weight bytes with scales of the quantized layers, and their average code bits.
bytes_of() { "$Q" inspect --json "$1" | awk '/"layers":/ { on = 1 } on && /"bytes":/ { gsub(/[^0-9]/, ""); s += $0 } END { print s + 0 }'; }
bits_of() {
	"$Q" inspect --json "$1" | awk '/"layers":/ { on = 1 } on && /"weight_bits":/ { gsub(/[^0-9]/, ""); b = $0 }
		on && /"parameters":/ { gsub(/[^0-9]/, ""); s += b * $0; p += $0 } END { if (p) printf "%.2f", s / p }'
}
top1_of() { "$Q" eval "$1" --data fashion-mnist:test --limit "$tlimit" >"$2"; num 'top-1:' "$2"; }

echo "Made by \`scripts/results_ilp.sh\` on $(date -u +%Y-%m-%d): method $method, candidates $cands;"
echo "calibration and sensitivities on 1000 fashion-mnist:train samples, top-1 on"
echo "$([ "$tlimit" = 0 ] && echo "all 10,000" || echo "the first $tlimit") fashion-mnist:test images. Bytes: the quantized layers' weights with"
echo "their scales (\`inspect --json\`); bits: average code bits per weight. Δ against FP32 in points."
echo
echo "| model | plan | budget | bytes | bits | top-1 % | Δ |"
echo "|---|---|---|---:|---:|---:|---:|"
for name in $models; do
	m=models/$name.onnx
	c=$OUT/$name.calib.json
	s=$OUT/$name.$tag.sens.json
	[ -f "$c" ] || "$Q" calibrate "$m" --data fashion-mnist:train --limit 1000 -o "$c" >/dev/null
	t0=$(date +%s.%N)
	[ -f "$s" ] || "$Q" analyze "$m" --calib "$c" --data fashion-mnist:train --limit 1000 --candidates "$cands" \
		"${amflag[@]}" -o "$s" >/dev/null 2>"$OUT/$name.$tag.analyze.log"
	f1=$(top1_of "$m" "$OUT/$name.fp32.txt")
	echo "| $name | FP32 | - | - | 32 | $f1 | - |"
	row() { # row PLAN BUDGET QMOD
		local t1
		t1=$(top1_of "$3" "$3.txt")
		echo "| $name | $1 | $2 | $(bytes_of "$3") | $(bits_of "$3") | $t1 | $(awk -v a="$t1" -v b="$f1" 'BEGIN { printf "%+.2f", a - b }') |"
	}
	for b in w8a8 w4a8 w3a8 w2a8; do
		"$Q" quantize "$m" --calib "$c" --bits "$b" "${mflag[@]}" -o "$OUT/$name.$tag.$b.qmod" >/dev/null 2>&1
		row "uniform $b" - "$OUT/$name.$tag.$b.qmod"
	done
	u4=$(bytes_of "$OUT/$name.$tag.w4a8.qmod")
	q=$OUT/$name.$tag.ilp.size-w4a8.qmod
	if "$Q" quantize "$m" --calib "$c" --target-size "$u4" --candidates "$cands" --sens "$s" "${mflag[@]}" \
		-o "$q" >"$q.log" 2>&1; then row "ILP" "$u4 bytes (= w4a8)" "$q"; else echo "| $name | ILP | $u4 bytes | failed: $(tail -1 "$q.log") | | | |"; fi
	for ab in 6 5 4 3 2.5; do
		q=$OUT/$name.$tag.ilp.b$ab.qmod
		if "$Q" quantize "$m" --calib "$c" --avg-wbits "$ab" --candidates "$cands" --sens "$s" "${mflag[@]}" \
			-o "$q" >"$q.log" 2>&1; then row "ILP" "$ab bits" "$q"; else echo "| $name | ILP | $ab bits | failed: $(tail -1 "$q.log") | | | |"; fi
	done
	md=${ILP_MAX_DROP:-0.5}
	q=$OUT/$name.$tag.ilp.maxdrop.qmod
	"$Q" quantize "$m" --calib "$c" --max-drop "$md" --eval-data fashion-mnist:test --eval-limit "$tlimit" \
		--candidates "$cands" --sens "$s" "${mflag[@]}" -o "$q" >"$q.log" 2>&1 && met=met || met="not met (exit $?)"
	if [ -s "$q" ]; then row "ILP --max-drop" "$md points, $met" "$q"; else echo "| $name | ILP --max-drop | $md | failed: $(tail -1 "$q.log") | | | |"; fi
	echo "results_ilp: $name done ($(sed -n 's/.* in \([0-9.]*\) s$/\1/p' "$OUT/$name.$tag.analyze.log") s sensitivity)" >&2
done
