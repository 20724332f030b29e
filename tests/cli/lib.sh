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

summary() {
	echo "cli: $PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ]
}
