#!/usr/bin/env bash
# ONNX Runtime runs what `qtool export` writes, and agrees with qtool.
#
# For every bundled model (or ORT_MODELS): calibrate on 1000 training
# images, quantize W8A8 (and, on fmnist_cnn, W4A8 per channel, W4A8 in
# groups of 36 and W8A4; ORT_EXTRA="" drops those), export to QDQ ONNX, then run the first N
# Fashion-MNIST test images through onnxruntime-node and through qtool's
# integer runtime (`qtool run MODEL.qmod`) on the same float inputs
# (scripts/ort_check.js), twice: with ORT's QDQ fusions (its default, what
# users get) and with them off (session.disable_quant_qdq: the ONNX ops'
# own float semantics, which is what the export promises).
#
# Gates (exit 1 when one fails):
#  - every model, fusions on and off: |top-1(ORT) - top-1(qtool)| <= 0.1
#    points and output codes equal on >= 99% of elements;
#  - except: models listed in ORT_FLOAT_PATHS (default: fmnist_vit) need
#    >= 98.5% with fusions off. Their attention (MatMul, Softmax, MatMul),
#    LayerNorms and residual Adds run in float in both runtimes (float
#    islands, lib/quant/quantize.c), so with ORT's fusions off two float
#    implementations of the same ops meet a code boundary now and then
#    (98.91% equal on 2000 images, never more than one code apart);
#  - models listed in ORT_FUSED_GAP (default: none) are reported, not gated,
#    with fusions on.
#
# onnxruntime-node is not a qtool dependency: it is installed from npm into
# build/ort on first use. When it cannot be installed (no network, no npm)
# the script prints a loud SKIP line and exits 77.
#
#   scripts/ort_check.sh [--limit N] [--results]      env: QTOOL, ORT_MODELS
#   --results  also write the table into docs/RESULTS.md (section
#              "ONNX Runtime (QDQ export)", replaced in place)
set -euo pipefail
cd "$(dirname "$0")/.."
Q=${QTOOL:-build/release/qtool}
LIMIT=10000
RESULTS=0
while [ $# -gt 0 ]; do
	case "$1" in
	--limit) LIMIT=$2; shift 2 ;;
	--results) RESULTS=1; shift ;;
	*) echo "usage: scripts/ort_check.sh [--limit N] [--results]" >&2; exit 2 ;;
	esac
done
MODELS=${ORT_MODELS:-$(ls models/*.onnx | xargs -n1 basename | sed 's/\.onnx$//' | tr '\n' ' ')}
GAP=${ORT_FUSED_GAP:-}
FLOAT_PATHS=${ORT_FLOAT_PATHS:-fmnist_vit}
ORT_VERSION=1.30.0
ORT_DIR=build/ort

skip() {
	echo "SKIP SKIP SKIP: ONNX Runtime check not run: $1" >&2
	echo "SKIP SKIP SKIP: ONNX Runtime check not run: $1"
	exit 77
}
have_ort() { NODE_PATH=$ORT_DIR/node_modules node -e 'require("onnxruntime-node")' >/dev/null 2>&1; }
command -v node >/dev/null || skip "node is not installed"
if ! have_ort; then
	command -v npm >/dev/null || skip "npm is not installed"
	mkdir -p "$ORT_DIR"
	# --ignore-scripts: the CPU build is inside the npm package; its install
	# script only fetches optional CUDA files from nuget.org.
	echo "installing onnxruntime-node@$ORT_VERSION into $ORT_DIR (npm)"
	if ! timeout 600 npm install --prefix "$ORT_DIR" --ignore-scripts --no-audit --no-fund \
		"onnxruntime-node@$ORT_VERSION" >"$ORT_DIR/npm.log" 2>&1; then
		skip "npm install onnxruntime-node failed (see $ORT_DIR/npm.log: $(tail -1 "$ORT_DIR/npm.log"))"
	fi
	have_ort || skip "onnxruntime-node installed but does not load"
fi

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
rows=()
failed=0
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
# MODEL:BITS[:GROUP]: W8A8 for every model, then the other exportable
# forms on the CNN: int4 weights per channel (opset 21), int4 weights in
# groups of 36 (blocked DequantizeLinear) and 4-bit activations.
configs=""
for m in $MODELS; do configs="$configs $m:w8a8"; done
if [[ " $MODELS " == *" fmnist_cnn "* ]]; then
	configs="$configs ${ORT_EXTRA-fmnist_cnn:w4a8 fmnist_cnn:w4a8:36 fmnist_cnn:w8a4}"
fi
for c in $configs; do
	IFS=: read -r model bits group <<<"$c"
	m=$model
	[ "$bits" = w8a8 ] || m="$model $bits${group:+ g$group}"
	f=$W/$model.$bits${group:+.g$group}
	[ -e "$W/$model.calib.json" ] || "$Q" calibrate "models/$model.onnx" --data fashion-mnist:train --limit 1000 \
		-o "$W/$model.calib.json" >/dev/null
	"$Q" quantize "models/$model.onnx" --calib "$W/$model.calib.json" --bits "$bits" ${group:+--group-size "$group"} \
		-o "$f.qmod" >/dev/null
	"$Q" export "$f.qmod" -o "$f.qdq.onnx" >/dev/null
	for fusion in on off; do
		r=$(NODE_PATH=$ORT_DIR/node_modules node scripts/ort_check.js --qtool "$Q" --qmod "$f.qmod" \
			--onnx "$f.qdq.onnx" --tmp "$W/run" --limit "$LIMIT" --fusion "$fusion")
		ot=$(field ort_top1 "$r") qt=$(field qtool_top1 "$r") ce=$(field codes_equal "$r")
		md=$(field max_code_diff "$r") n=$(field n "$r")
		d=$(awk -v a="$ot" -v b="$qt" 'BEGIN { d = a - b; printf "%.2f", d < 0 ? -d : d }')
		gated=yes
		if [ "$fusion" = on ] && [[ " $GAP " == *" $model "* ]]; then gated="no (known gap)"; fi
		verdict=ok
		bar=99
		if [ "$fusion" = off ] && [[ " $FLOAT_PATHS " == *" $model "* ]]; then bar=98.5; fi
		if ! awk -v d="$d" -v c="$ce" -v b="$bar" 'BEGIN { exit !(d <= 0.1 + 1e-9 && c >= b) }'; then
			if [ "$gated" = yes ]; then verdict=FAIL; failed=1; else verdict="below the $bar% / 0.1 bar"; fi
		fi
		echo "$m (ORT fusions $fusion, $n images): ORT top-1 $ot%, qtool int top-1 $qt% (|Δ| $d), codes equal $ce%, max $md code(s) apart: $verdict"
		rows+=("| $m | $fusion | $n | $ot | $qt | $d | $ce | $md | $gated |")
	done
done

if [ "$RESULTS" = 1 ]; then
	sec=$W/section.md
	{
	echo "<!-- ort_check begin -->"
	echo "## ONNX Runtime (QDQ export)"
	echo
	echo "Made by \`scripts/ort_check.sh --limit $LIMIT --results\` (\`make results-ort\`) on $(date -u +%Y-%m-%d)"
	echo "with qtool $("$Q" --version | cut -d' ' -f2) and onnxruntime-node $ORT_VERSION (CPU, 2 threads)."
	echo "Each model: \`qtool calibrate\` (1000 train images), \`qtool quantize --bits w8a8\` (and other bits as named),"
	echo "\`qtool export\`, then the first $LIMIT test images through ONNX Runtime and through"
	echo "qtool's integer runtime on the same float inputs. *fusions*: ORT's QDQ fusions on (its"
	echo "default) or off (\`session.disable_quant_qdq\`, the ONNX ops' float semantics). *codes*:"
	echo "share of output elements with the same code. Gate: |Δ| <= 0.1 points and codes >= 99%."
	echo
	echo "| model | fusions | images | ORT top-1 % | qtool int top-1 % | abs Δ | codes equal % | max code diff | gated |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---|"
	printf '%s\n' "${rows[@]}"
	echo "<!-- ort_check end -->"
	} >"$sec"
	if grep -q '<!-- ort_check begin -->' docs/RESULTS.md; then
		awk -v f="$sec" '/<!-- ort_check begin -->/ { while ((getline l < f) > 0) print l; skip = 1; next }
			/<!-- ort_check end -->/ { skip = 0; next } !skip' docs/RESULTS.md >"$W/r.md"
	else
		{ cat docs/RESULTS.md; echo; cat "$sec"; } >"$W/r.md"
	fi
	cp "$W/r.md" docs/RESULTS.md
	echo "wrote docs/RESULTS.md (section ONNX Runtime (QDQ export))"
fi
[ "$failed" = 0 ] || { echo "ort_check: FAILED (see the lines above)"; exit 1; }
echo "ort_check: all gates passed"
