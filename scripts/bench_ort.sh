#!/usr/bin/env bash
# make bench-ort: qtool against ONNX Runtime at real size, side by side in one
# run. Models: torchvision ResNet-18 and MobileNetV2 at 224x224 (random seeded
# weights, made by scripts/make_bench_models.py into build/bench_ort) and the
# bundled fmnist_vit; batch 1 and 8 (and 64 for fmnist_vit); 2 threads.
# Columns, each the fastest of ROUNDS interleaved rounds of ITERS runs (the
# minimum is the least disturbed by other load on the machine):
#   ORT FP32   onnxruntime-node on the original model
#   ORT int8   onnxruntime-node on `qtool export`'s QDQ model
#   qtool FP32 `qtool bench MODEL.onnx` (FP32 runtime, OpenBLAS)
#   qtool int8 `qtool bench MODEL.qmod` (W8A8, calibrated by `qtool calibrate`
#              on random-input samples)
# A run that fails stops the script with the failing step named (an empty
# cell used to read as "n/a"). Ratios are throughput ratios (time of the other / time of qtool): > 1 means
# qtool is faster. ONNX Runtime is a peer to compare with, installed from npm
# into build/ort, never a qtool dependency.
#   scripts/bench_ort.sh [QTOOL]   env: BENCH_ORT_ROUNDS (3), BENCH_ORT_ITERS (5),
#                                  BENCH_ORT_WRITE=1 to put the table into docs/RESULTS.md
set -euo pipefail
cd "$(dirname "$0")/.."
Q=${1:-build/release/qtool}
ROUNDS=${BENCH_ORT_ROUNDS:-3}
ITERS=${BENCH_ORT_ITERS:-5}
THREADS=2
OUT=build/bench_ort
mkdir -p "$OUT" build/ort
export QT_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS

if [ ! -d build/ort/node_modules/onnxruntime-node ]; then
	# The CPU build is inside the npm package; its install script only
	# fetches optional CUDA libraries, which a CPU benchmark does not need.
	ONNXRUNTIME_NODE_INSTALL_CUDA=skip ONNXRUNTIME_NODE_INSTALL=skip \
		npm install --prefix build/ort --no-save onnxruntime-node >build/ort/install.log 2>&1 || {
		echo "bench-ort: npm install onnxruntime-node failed (see build/ort/install.log)" >&2
		exit 1
	}
fi
if [ ! -f "$OUT/resnet18.onnx" ] || [ ! -f "$OUT/mobilenet_v2.onnx" ] || [ ! -d "$OUT/fmnist_vit_calib" ]; then
	/usr/bin/python3 scripts/make_bench_models.py "$OUT" >/dev/null
fi
cp -f models/fmnist_vit.onnx "$OUT/fmnist_vit.onnx"

fail() { echo "bench-ort: $*" >&2; exit 1; }

# Quantize each model once (W8A8, default range method) and export its QDQ form.
for m in resnet18 mobilenet_v2 fmnist_vit; do
	if [ ! -f "$OUT/$m.qmod" ] || [ "$OUT/$m.qmod" -ot "$Q" ]; then
		"$Q" calibrate "$OUT/$m.onnx" --data "npy:$OUT/${m}_calib" -o "$OUT/$m.calib.json" >/dev/null
		"$Q" quantize "$OUT/$m.onnx" --calib "$OUT/$m.calib.json" --bits w8a8 -o "$OUT/$m.qmod" >/dev/null
	fi
	"$Q" export "$OUT/$m.qmod" -o "$OUT/$m.qdq.onnx" >/dev/null || fail "qtool export $OUT/$m.qmod failed"
done

# One timing in ms (the fastest of ITERS runs), or the script stops.
ort_ms() {
	local t
	t=$(cd build/ort && node ../../scripts/bench_ort.js "../../$1" "$2" "$3" "$ITERS" "$THREADS") && [ -n "$t" ] ||
		fail "ONNX Runtime failed on $1 at batch $3"
	echo "$t"
}
qt_ms() {
	local t
	t=$("$Q" bench "$1" --batch "$2" --iters "$ITERS" | sed -n 's/.* min \([0-9.]*\),.*/\1/p') && [ -n "$t" ] ||
		fail "qtool bench failed on $1 at batch $2"
	echo "$t"
}
fmin() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "") print b; else if (b == "" || a + 0 <= b + 0) print a; else print b }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }

info=$("$Q" bench "$OUT/fmnist_vit.qmod" --iters 1 --warmup 0)
isa=$(echo "$info" | sed -n 's/^model: .*(\(.*\))$/\1/p')
blas=$(echo "$info" | sed -n 's/^blas: //p')
table=$(mktemp)
trap 'rm -f "$table"' EXIT
{
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $THREADS threads"
echo "qtool integer kernels: $isa; FP32: $blas; ONNX Runtime: onnxruntime-node $(sed -n 's/.*"version": "\(.*\)".*/\1/p' build/ort/node_modules/onnxruntime-node/package.json | head -1)"
echo "times: ms per batch, the fastest of $ROUNDS interleaved rounds x $ITERS runs; ratios: throughput, > 1 = qtool faster"
# Other processes skew the ratios: ONNX Runtime's intra-op threads spin while
# they wait (its default), qtool's sleep, so on a loaded machine ORT loses
# more. The load is printed so a reader can judge the run.
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg) (on $(nproc) cores; an idle machine is ~0)"
echo
echo "| model | batch | ORT FP32 | ORT int8 | qtool FP32 | qtool int8 | qtool FP32 / ORT FP32 | qtool int8 / ORT int8 | qtool int8 / ORT FP32 | qtool int8 / qtool FP32 |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} >"$table"
cat "$table"
for m in resnet18 mobilenet_v2 fmnist_vit; do
	dims=3,224,224
	batches="1 8"
	if [ $m = fmnist_vit ]; then dims=1,28,28 batches="1 8 64"; fi
	for b in $batches; do
		of="" oi="" qf="" qi=""
		for _ in $(seq "$ROUNDS"); do
			t=$(ort_ms "$OUT/$m.onnx" $dims "$b"); of=$(fmin "$of" "$t")
			t=$(ort_ms "$OUT/$m.qdq.onnx" $dims "$b"); oi=$(fmin "$oi" "$t")
			t=$(qt_ms "$OUT/$m.onnx" "$b"); qf=$(fmin "$qf" "$t")
			t=$(qt_ms "$OUT/$m.qmod" "$b"); qi=$(fmin "$qi" "$t")
		done
		row="| $m | $b | $of | $oi | $qf | $qi | $(ratio "$of" "$qf") | $(ratio "$oi" "$qi") | $(ratio "$of" "$qi") | $(ratio "$qf" "$qi") |"
		echo "$row"
		echo "$row" >>"$table"
	done
done

if [ "${BENCH_ORT_WRITE:-0}" = 1 ]; then
	# Replace (or append) the section between the markers in docs/RESULTS.md.
	new=$(mktemp)
	{
	echo "<!-- bench-ort:begin -->"
	echo "## Speed at 224x224 against ONNX Runtime"
	echo
	echo "Made by \`make bench-ort\` (scripts/bench_ort.sh; \`BENCH_ORT_WRITE=1\` writes this section)."
	echo
	cat "$table"
	echo "<!-- bench-ort:end -->"
	} >"$new"
	awk -v f="$new" '
		/<!-- bench-ort:begin -->/ { while ((getline l < f) > 0) print l; skip = 1; done = 1; next }
		/<!-- bench-ort:end -->/ { skip = 0; next }
		!skip { print }
		END { if (!done) { print ""; while ((getline l < f) > 0) print l } }' docs/RESULTS.md >"$new.md"
	mv "$new.md" docs/RESULTS.md
	rm -f "$new"
	echo "wrote docs/RESULTS.md"
fi
