#!/usr/bin/env bash
# make bench: samples per second of the FP32 and integer runtimes per model at
# batch 1 and 64 on Fashion-MNIST test images, plus the integer GEMM kernels
# the GPTQ step for one 4096x4096 Gemm (tests/bench/bench_gptq.c), and the whole
# `quantize --method gptq` of fmnist_resnet and of the zoo's ResNet-18.
# Prints a Markdown table; scripts/results.sh copies it into docs/RESULTS.md.
#   scripts/bench.sh [QTOOL]      env: BENCH_MODELS="fmnist_cnn ..." to restrict, BENCH_N1 (samples at batch 1, default 1000),
#                                      BENCH_N64 (samples at batch 64, default 5000)
set -euo pipefail
cd "$(dirname "$0")/.."
Q=${1:-build/release/qtool}
N1=${BENCH_N1:-1000}
N64=${BENCH_N64:-5000}
OUT=build/bench
mkdir -p "$OUT"

speed() { "$Q" eval "$@" | sed -n 's/^speed: *\([0-9.]*\).*/\1/p'; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "integer kernels: ${QT_ISA:-auto (best available)}"
echo
echo "| model | FP32 b=1 | int b=1 | FP32 b=64 | int b=64 | int/FP32 at b=64 |"
echo "|---|---:|---:|---:|---:|---:|"
for name in ${BENCH_MODELS:-$(ls models/*.onnx | xargs -n1 basename | sed 's/\.onnx$//')}; do
	m=models/$name.onnx
	"$Q" calibrate "$m" --data fashion-mnist:train --limit 1000 -o "$OUT/$name.calib.json" >/dev/null
	"$Q" quantize "$m" --calib "$OUT/$name.calib.json" --bits w8a8 -o "$OUT/$name.qmod" >/dev/null
	f1=$(speed "$m" --data fashion-mnist:test --limit "$N1" --batch 1)
	i1=$(speed "$OUT/$name.qmod" --data fashion-mnist:test --limit "$N1" --batch 1)
	f64=$(speed "$m" --data fashion-mnist:test --limit "$N64" --batch 64)
	i64=$(speed "$OUT/$name.qmod" --data fashion-mnist:test --limit "$N64" --batch 64)
	ratio=$(awk -v a="$i64" -v b="$f64" 'BEGIN { printf "%.2fx", a / b }')
	echo "| $name | $f1 | $i1 | $f64 | $i64 | $ratio |"
done
# Wall time of the whole `quantize --method gptq` (calibration done before, not
# counted): fmnist_resnet on 1000 train samples, and the zoo's ResNet-18
# (torchvision architecture, widths 8-64, 32x32 inputs) on its 64 samples.
qtime() { # NAME MODEL CALIB-DATA LIMIT
	"$Q" calibrate "$2" --data "$3" --limit "$4" -o "$OUT/$1.gcalib.json" >/dev/null
	local t0
	t0=$(date +%s.%N)
	"$Q" quantize "$2" --calib "$OUT/$1.gcalib.json" --bits w4a8 --data "$3" --limit "$4" --method gptq \
		-o "$OUT/$1.gptq.qmod" >/dev/null
	awk -v a="$t0" -v b="$(date +%s.%N)" -v n="$1" -v d="$3" -v l="$4" \
		'BEGIN { printf "| %s | %s | %d | %.2f |\n", n, d, l, b - a }'
}
echo
echo "Whole \`qtool quantize --bits w4a8 --method gptq\` (sequential), wall clock:"
echo
echo "| model | data | samples | seconds |"
echo "|---|---|---:|---:|"
qtime fmnist_resnet models/fmnist_resnet.onnx fashion-mnist:train 1000
qtime zoo_resnet18 tests/zoo/resnet18.onnx npy:tests/zoo/data32 64
echo
if [ -x build/release/bench_kernels ]; then
	echo
	build/release/bench_kernels
fi
if [ -x build/release/bench_gptq ]; then
	echo
	build/release/bench_gptq
fi
# Sensitivity measurement for mixed precision (issue goal: at most 2 minutes
# for fmnist_resnet on 2 cores): qtool analyze on 1000 train samples, the five
# default candidates; wall time as analyze reports it.
if [ -f "$OUT/fmnist_resnet.calib.json" ]; then
	echo
	"$Q" analyze models/fmnist_resnet.onnx --calib "$OUT/fmnist_resnet.calib.json" --data fashion-mnist:train \
		--limit 1000 -o "$OUT/fmnist_resnet.sens.json" 2>&1 >/dev/null | sed -n 's/^analyze: measured/sensitivity (qtool analyze fmnist_resnet): measured/p'
fi
