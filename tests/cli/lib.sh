# Helpers for CLI tests: each check prints ok/FAIL; the runner prints
# "N passed, N failed" last.
PASSED=0
FAILED=0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

ok() { PASSED=$((PASSED + 1)); echo "ok   $1"; }
fail() {
	FAILED=$((FAILED + 1))
	echo "FAIL $1"
	# (an if, not &&: under set -e a false test as the last command would end the run)
	if [ -n "${2:-}" ]; then echo "     $2"; fi
}

# expect_exit CODE NAME CMD...: run CMD, check its exit code; keeps stdout/stderr in $OUT/$ERR.
expect_exit() {
	local code=$1 name=$2
	shift 2
	set +e
	"$@" >"$TMP/out" 2>"$TMP/err"
	local rc=$?
	set -e
	OUT=$(cat "$TMP/out")
	ERR=$(cat "$TMP/err")
	if [ "$rc" -eq "$code" ]; then ok "$name"; else fail "$name" "exit $rc, expected $code; stderr: $(head -c 400 "$TMP/err")"; fi
}

# expect_err_line NAME PATTERN: stderr is exactly one line and matches PATTERN (grep -E).
expect_err_line() {
	local name=$1 pat=$2
	local lines
	lines=$(printf '%s' "$ERR" | grep -c '' || true)
	if [ "$lines" -eq 1 ] && printf '%s' "$ERR" | grep -Eq -- "$pat"; then ok "$name"; else fail "$name" "stderr ($lines lines): $ERR"; fi
}

check() { # check NAME CONDITION-CMD...
	local name=$1
	shift
	if "$@"; then ok "$name"; else fail "$name"; fi
}

# heldout_check NAME METHOD: from a `quantize --holdout` summary in $OUT, every
# "layer ... METHOD ... held-out output error E% (round to nearest R%)" line
# has E < R, and there is at least one such line.
heldout_check() {
	local name=$1 meth=$2 layers worse
	layers=$(grep -c "^layer .* $meth .*held-out output error" <<<"$OUT" || true)
	worse=$(awk '/^layer .* held-out output error/ {
		e = $0; sub(/.*held-out output error /, "", e); sub(/%.*/, "", e)
		r = $0; sub(/.*round to nearest /, "", r); sub(/%.*/, "", r)
		if (!(e + 0 < r + 0)) print $2 }' <<<"$OUT")
	check "$name: every one of ${layers} layers below round to nearest on held-out data${worse:+ (not: $worse)}" \
		test "$layers" -gt 0 -a -z "$worse"
}

# num_ok VALUE CONDITION: VALUE is a number (not empty, not "inf") and the awk
# CONDITION on v holds, e.g. num_ok "$codes" 'v <= 1'. A bare awk comparison
# would compare an empty string as text ("" <= 1 is true).
num_ok() {
	[[ $1 =~ ^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]] && awk -v v="$1" "BEGIN { exit !($2) }"
}

# npy_f32 SHAPE < RAW_U8 > FILE: a float32 .npy of SHAPE (e.g. 40,1,28,28) from
# bytes, each normalized as the bundled models expect: (u / 255 - 0.2860) / 0.3530.
npy_f32() {
	perl -e 'binmode STDIN; binmode STDOUT; local $/; my $b = <STDIN>; my @d = split /,/, $ARGV[0];
		my $h = "{\x27descr\x27: \x27<f4\x27, \x27fortran_order\x27: False, \x27shape\x27: (" . join(", ", @d) . "), }";
		my $l = 10 + length($h) + 1; $h .= " " x ((64 - $l % 64) % 64) . "\n";
		print "\x93NUMPY\x01\x00", pack("v", length $h), $h;
		print pack("f<*", map { ($_ / 255.0 - 0.2860) / 0.3530 } unpack("C*", $b));' "$1"
}

# npy_labels N > FILE: an int64 .npy [N] of zeros (labels for data that must not be refused for lacking them).
npy_labels() {
	perl -e 'binmode STDOUT; my $h = "{\x27descr\x27: \x27<i8\x27, \x27fortran_order\x27: False, \x27shape\x27: ($ARGV[0],), }";
		my $l = 10 + length($h) + 1; $h .= " " x ((64 - $l % 64) % 64) . "\n";
		print "\x93NUMPY\x01\x00", pack("v", length $h), $h, pack("q<*", (0) x $ARGV[0]);' "$1"
}

# npy_values FILE: the elements of a version-1 float32 .npy, one per line.
npy_values() {
	local hl
	hl=$(od -An -t u2 -j 8 -N 2 "$1" | tr -d ' ')
	od -An -v -t f4 -j $((10 + hl)) "$1" | tr -s ' ' '\n' | grep -v '^$'
}

summary() {
	echo "cli: $PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ]
}
