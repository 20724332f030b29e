#!/usr/bin/env bash
# Run every libFuzzer target for SECONDS seconds each (`make fuzz` passes 60).
#
#   bash tests/fuzz/run_fuzz.sh SECONDS [NAME...]     e.g. run_fuzz.sh 60 onnx
#
# Builds the library sources and the generated protobuf-c code with clang
# (-fsanitize=fuzzer-no-link,address,undefined; objects in build/fuzz/obj),
# links each tests/fuzz/fuzz_X.c with -fsanitize=fuzzer, and runs it on a
# working copy of its corpus in build/fuzz/corpus-X: the committed corpus in
# tests/fuzz/corpus/X is only read, never grown. Findings land in
# build/fuzz/artifacts-X/; the script exits 1 if any target found something.
# To keep a finding, copy it to tests/regress/fuzz_X/ (replayed by make test).
# FUZZ_ARGS adds libFuzzer flags, e.g. FUZZ_ARGS=-max_len=65536.
set -u
cd "$(dirname "$0")/../.."
secs=${1:?usage: run_fuzz.sh SECONDS [NAME...]}
shift
CLANG=${CLANG:-clang}
out=build/fuzz
gen=build/gen
command -v "$CLANG" >/dev/null || { echo "run_fuzz: $CLANG not found (apt-get install clang)"; exit 1; }
[ -f "$gen/onnx.pb-c.c" ] || { echo "run_fuzz: $gen/onnx.pb-c.c missing (make $gen/onnx.pb-c.h)"; exit 1; }

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CFLAGS="-std=c11 -D_GNU_SOURCE -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION -O1 -g $SAN -Wall -Wextra -Wno-unused-parameter -Iinclude -I$gen -Ilib $(pkg-config --cflags openblas 2>/dev/null)"
LIBS="-lprotobuf-c -lcjson -lz -lglpk $(pkg-config --libs openblas 2>/dev/null || echo -lopenblas) -lm -lpthread"
ISA_avx2="-mavx2 -mfma -mf16c"
ISA_avx512vnni="-mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx2 -mfma"

# The library sources, as LIB_SRC in the Makefile (keep the two in sync).
shopt -s nullglob
srcs=(lib/core/*.c lib/ir/*.c lib/rt/*.c lib/quant/*.c lib/kernels/*.c lib/kernels/ref/*.c
	formats/*/*.c calib/*.c lib/kernels/x86/avx2/*.c lib/kernels/x86/avx512vnni/*.c "$gen/onnx.pb-c.c")

# 0 when obj is newer than its source and every header it included last time.
up_to_date() {
	local obj=$1 src=$2 dep
	[ -f "$obj" ] && [ "$obj" -nt "$src" ] && [ -f "${obj%.o}.d" ] || return 1
	for dep in $(sed -e 's/^[^:]*://' -e 's/\\$//' "${obj%.o}.d"); do
		[ "$dep" -nt "$obj" ] && return 1
	done
	return 0
}

compile() {
	local src=$1 obj=$2 extra=""
	case $src in
	lib/kernels/x86/avx2/*) extra=$ISA_avx2 ;;
	lib/kernels/x86/avx512vnni/*) extra=$ISA_avx512vnni ;;
	"$gen"/*) extra="-Wno-error" ;;
	esac
	mkdir -p "$(dirname "$obj")"
	$CLANG $CFLAGS -fsanitize=fuzzer-no-link $extra -MMD -MP -c "$src" -o "$obj" ||
		{ echo "run_fuzz: FAILED to compile $src"; rm -f "$obj"; return 1; }
}

echo "== building fuzz targets with $CLANG"
objs=()
jobs_max=$(nproc 2>/dev/null || echo 2)
fail=0
for src in "${srcs[@]}"; do
	obj=$out/obj/${src%.c}.o
	objs+=("$obj")
	up_to_date "$obj" "$src" && continue
	while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || fail=1; done
	compile "$src" "$obj" &
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || fail=1; done
wait || fail=1
# A source that does not compile (another engineer's work in progress) only
# matters if a target needs it: the link below then fails and says so.
built=()
for obj in "${objs[@]}"; do
	[ -f "$obj" ] && built+=("$obj")
done
[ "$fail" -eq 0 ] || echo "run_fuzz: warning: some sources did not compile (see above); linking without them"
rm -f "$out/libqtool_fuzz.a"
ar rcs "$out/libqtool_fuzz.a" "${built[@]}"

targets=()
if [ $# -gt 0 ]; then
	for n in "$@"; do targets+=("tests/fuzz/fuzz_$n.c"); done
else
	targets=(tests/fuzz/fuzz_*.c)
fi
for src in "${targets[@]}"; do
	t=$(basename "$src" .c)
	$CLANG $CFLAGS -fsanitize=fuzzer "$src" "$out/libqtool_fuzz.a" $LIBS -o "$out/$t" ||
		{ echo "run_fuzz: linking $t failed"; exit 1; }
done

# Dictionary for the ONNX target: names the loader treats specially, which
# random mutation rarely spells (written here so the committed tree holds no
# generated files).
cat >"$out/onnx.dict" <<'DICT'
"Constant"
"value"
"value_float"
"value_floats"
"value_int"
"value_ints"
"value_string"
"sparse_value"
"ai.onnx"
"location"
"offset"
"length"
"../"
DICT

status=0
summary=()
for src in "${targets[@]}"; do
	t=$(basename "$src" .c)
	name=${t#fuzz_}
	corpus=$out/corpus-$name
	art=$out/artifacts-$name
	mkdir -p "$corpus" "$art"
	[ -d "tests/fuzz/corpus/$name" ] && cp -n tests/fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null
	[ -d "tests/regress/$t" ] && cp -n tests/regress/"$t"/* "$corpus"/ 2>/dev/null
	extra=()
	[ "$name" = onnx ] && extra+=(-dict="$out/onnx.dict")
	before=$(ls "$art" | wc -l)
	echo "== $t: ${secs}s on $(ls "$corpus" | wc -l) inputs (log: $out/$t.log)"
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
		"$out/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$art/" "${extra[@]}" ${FUZZ_ARGS:-} "$corpus" >"$out/$t.log" 2>&1
	rc=$?
	after=$(ls "$art" | wc -l)
	runs=$(grep -a -o 'stat::number_of_executed_units: *[0-9]*' "$out/$t.log" | grep -o '[0-9]*$')
	cov=$(grep -a -o 'cov: [0-9]*' "$out/$t.log" | tail -n 1)
	if [ "$rc" -ne 0 ] || [ "$after" -gt "$before" ]; then
		echo "FINDING in $t (exit $rc); new artifacts in $art:"
		ls -t "$art" | head -n $((after - before > 0 ? after - before : 1)) | sed 's/^/    /'
		grep -a -m 1 -A 25 -E 'ERROR: |runtime error|Deadly|Timeout|leak' "$out/$t.log" | sed 's/^/    /'
		summary+=("FAIL $t: ${runs:-?} runs, $cov")
		status=1
	else
		summary+=("ok   $t: ${runs:-?} runs, $cov, corpus $(ls "$corpus" | wc -l)")
	fi
done
printf '%s\n' "${summary[@]}"
exit $status
