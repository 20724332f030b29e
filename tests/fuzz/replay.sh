#!/usr/bin/env bash
# Replay every fuzz corpus through its harness without libFuzzer (gcc builds,
# sanitized or not). For each tests/fuzz/fuzz_X.c, runs
# $QTOOL_BUILD/tests/fuzz/replay_fuzz_X over tests/fuzz/corpus/X/ and, when
# present, the regression inputs in tests/regress/fuzz_X/.
# Prints one line per target and a "N passed, N failed" summary; exits 1 if
# any input crashed (naming it) or a replay binary is missing.
set -u
cd "$(dirname "$0")/../.."
build=${QTOOL_BUILD:-build/release}
pass=0
fail=0
for src in tests/fuzz/fuzz_*.c; do
	target=$(basename "$src" .c)   # fuzz_onnx
	name=${target#fuzz_}           # onnx
	bin="$build/tests/fuzz/replay_$target"
	dirs=()
	[ -d "tests/fuzz/corpus/$name" ] && dirs+=("tests/fuzz/corpus/$name")
	[ -d "tests/regress/$target" ] && dirs+=("tests/regress/$target")
	if [ ! -x "$bin" ]; then
		echo "FAIL $target: $bin is not built (make fuzz-replay-bin)"
		fail=$((fail + 1))
		continue
	fi
	if [ ${#dirs[@]} -eq 0 ]; then
		echo "FAIL $target: no corpus in tests/fuzz/corpus/$name"
		fail=$((fail + 1))
		continue
	fi
	if out=$("$bin" "${dirs[@]}" 2>&1); then
		echo "ok   $target: $(echo "$out" | tail -n 1)"
		pass=$((pass + 1))
	else
		# Rerun naming each input so the culprit is the last one named.
		last=$(REPLAY_VERBOSE=1 "$bin" "${dirs[@]}" 2>&1 | grep '^replay: ' | tail -n 1)
		echo "FAIL $target: crashed (${last#replay: })"
		echo "$out" | tail -n 20 | sed 's/^/    /'
		fail=$((fail + 1))
	fi
done
echo "fuzz replay: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
