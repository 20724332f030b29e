#!/usr/bin/env bash
# make results: regenerate docs/RESULTS.md. For every model in models/:
# calibrate on 1000 training samples, then for each bit width, weight
# granularity and range method quantize, evaluate on the full 10k test set
# against the FP32 model, and tabulate top-1, agreement, SQNR, size and speed.
# Then append the benchmark (scripts/bench.sh).
#   scripts/results.sh [QTOOL]     env: RESULTS_MODELS="fmnist_cnn ..." to restrict
#   RESULTS_UPDATE=1 with RESULTS_MODELS: regenerate only those models' rows (accuracy
#   and speed) inside the existing docs/RESULTS.md, keeping every other row
set -euo pipefail
cd "$(dirname "$0")/.."
Q=${1:-build/release/qtool}
OUT=build/results
mkdir -p "$OUT"
models=${RESULTS_MODELS:-$(ls models/*.onnx | xargs -n1 basename | sed 's/\.onnx$//')}
# bits:granularity:methods. Every range method at W8A8 per channel; the
# others with the methods that matter at their width (entropy clips too hard
# at 4 bits; see docs/CALIB_FORMAT.md).
configs="w8a8:channel:minmax,percentile,entropy,mse w8a8:tensor:mse w4a8:channel:percentile,mse w4a8:group32:percentile,mse"

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
source scripts/results_section.sh

{
echo "# Results"
echo
echo "Made by \`make results\` (scripts/results.sh) on $(date -u +%Y-%m-%d) with qtool $("$Q" --version | cut -d' ' -f2)."
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')."
echo
echo "Every row: \`qtool calibrate MODEL --data fashion-mnist:train --limit 1000\`, then"
echo "\`qtool quantize --bits B [--granularity tensor | --group-size 32] --calib-method M\`, then"
echo "\`qtool eval Q.qmod --data fashion-mnist:test --reference MODEL\` on all 10,000 test images"
echo "(integer runtime, batch 64). Δ is the top-1 change against FP32 in points; agreement is"
echo "the share of images where the quantized and FP32 models pick the same class."
echo
echo "| model | bits | weights | range | top-1 % | Δ | agreement % | SQNR dB | size bytes | samples/s |"
echo "|---|---|---|---|---:|---:|---:|---:|---:|---:|"
} >"$tmp"

for name in $models; do
	m=models/$name.onnx
	"$Q" calibrate "$m" --data fashion-mnist:train --limit 1000 -o "$OUT/$name.calib.json" >/dev/null
	"$Q" eval "$m" --data fashion-mnist:test --json "$OUT/$name.fp32.json" >"$OUT/$name.fp32.txt"
	f1=$(num 'top-1:' "$OUT/$name.fp32.txt")
	echo "| $name | FP32 | - | - | $f1 | - | - | - | $(stat -c %s "$m") | $(num 'speed:' "$OUT/$name.fp32.txt") |" >>"$tmp"
	for cfg in $configs; do
		bits=${cfg%%:*}
		rest=${cfg#*:}
		gran=${rest%%:*}
		methods=${rest#*:}
		methods=${methods//,/ }
		case $gran in
		channel) gflag=() ;;
		tensor) gflag=(--granularity tensor) ;;
		group32) gflag=(--group-size 32) ;;
		esac
		for meth in $methods; do
			qm="$OUT/$name.$bits.$gran.$meth.qmod"
			if ! "$Q" quantize "$m" --calib "$OUT/$name.calib.json" --bits "$bits" "${gflag[@]}" \
				--calib-method "$meth" -o "$qm" >"$OUT/q.log" 2>&1; then
				echo "| $name | $bits | $gran | $meth | failed: $(head -c 120 "$OUT/q.log") | | | | | |" >>"$tmp"
				continue
			fi
			t="$OUT/$name.$bits.$gran.$meth.txt"
			"$Q" eval "$qm" --data fashion-mnist:test --reference "$m" --json "${t%.txt}.json" >"$t"
			q1=$(num 'top-1:' "$t")
			agree=$(sed -n 's/^agreement with .*: \([0-9.]*\)% top-1/\1/p' "$t")
			delta=$(awk -v a="$q1" -v b="$f1" 'BEGIN { printf "%+.2f", a - b }')
			echo "| $name | $bits | $gran | $meth | $q1 | $delta | $agree | $(num 'SQNR:' "$t") | $(stat -c %s "$qm") | $(num 'speed:' "$t") |" >>"$tmp"
		done
	done
	echo "results: $name done" >&2
done

if [ "${RESULTS_UPDATE:-0}" = 1 ]; then
	# Replace the listed models' rows in both tables of the existing file.
	BENCH_MODELS="$models" bash scripts/bench.sh "$Q" | grep '^| fmnist_' >"$OUT/speed.rows" || true
	grep '^| fmnist_' "$tmp" >"$OUT/acc.rows"
	awk -v models="$models" -v acc="$OUT/acc.rows" -v spd="$OUT/speed.rows" '
		BEGIN { n = split(models, m, " "); for (i = 1; i <= n; i++) want["| " m[i] " |"] = 1 }
		function listed(line,   k) { for (k in want) if (index(line, k) == 1) return 1; return 0 }
		/^## Speed/ { if (!acc_done) { while ((getline l < acc) > 0) print l; acc_done = 1; print "" } speed = 1 }
		speed && listed($0) { if (!spd_done) { while ((getline l < spd) > 0) print l; spd_done = 1 } next }
		!speed && listed($0) { next }
		!speed && /^$/ && intable { while ((getline l < acc) > 0) print l; acc_done = 1; intable = 0 }
		/^\| model \| bits/ { intable = 1 }
		{ print }' docs/RESULTS.md >"$tmp.new"
	mv "$tmp.new" docs/RESULTS.md
	rm -f "$tmp"
	trap - EXIT
	echo "updated docs/RESULTS.md for: $models"
	exit 0
fi

# The size bound of the issue and docs/FORMAT.md, over every file made above.
total=0
over=()
for qm in "$OUT"/*.qmod; do
	sb=$("$Q" inspect "$qm" | sed -n 's/^size: \([0-9]*\) bytes; bound .* = \([0-9]*\)$/\1 \2/p')
	total=$((total + 1))
	[ -n "$sb" ] && [ "${sb% *}" -le "${sb#* }" ] || over+=("$(basename "$qm")")
done
{
echo
echo "Size: every one of the $total .qmod files above is within 1.10 x (weight bits / 8 +"
echo "quantization parameters) + 8 KiB as \`qtool inspect\` computes it; over the bound: ${over[*]:-none}."
echo
bash scripts/results_methods.sh "$Q"
echo
bash scripts/results_kinds.sh "$Q"
echo
bash scripts/results_modes.sh "$Q"
echo
echo "## Speed"
echo
echo "Made by \`make bench\` (scripts/bench.sh): samples per second of each runtime over"
echo "Fashion-MNIST test images (W8A8 models), batch 1 and batch 64."
echo
bash scripts/bench.sh "$Q"
} >>"$tmp"
# Sections other scripts own (<!-- NAME begin --> ... <!-- NAME end -->, or
# NAME:begin / NAME:end, e.g. make bench-ort's, scripts/ort_check.sh's) are
# kept from the old file when this run did not write them.
if [ -f docs/RESULTS.md ]; then
	awk -v made="$tmp" '
		BEGIN { while ((getline l < made) > 0) if (l ~ /^<!-- .*[: ]begin -->$/) have[l] = 1 }
		/^<!-- .*[: ]begin -->$/ { keep = !($0 in have); if (keep) print ""; }
		keep { print }
		/^<!-- .*[: ]end -->$/ { keep = 0 }' docs/RESULTS.md >>"$tmp"
fi
mv "$tmp" docs/RESULTS.md
trap - EXIT
echo "wrote docs/RESULTS.md"
