# The README's pipeline, run exactly as written: every indented "qtool ..."
# line of its "## The pipeline" section, in order, in a fresh folder that has
# the repository's models/ and `qtool` on the PATH. Editing the README edits
# this test. The sanitizer build skips it (minutes there; the same commands
# run on smaller data in test_pipeline.sh).
RD=$TMP/readme
mkdir -p "$RD/bin"
ln -s "$PWD/models" "$RD/models"
ln -s "$(realpath "$QTOOL")" "$RD/bin/qtool"
sed -n '/^## The pipeline/,/^## /p' README.md | sed -n 's/^    \(qtool .*\)$/\1/p' >"$RD/commands"
check "README's pipeline has 5 qtool commands (got $(wc -l <"$RD/commands"))" test "$(wc -l <"$RD/commands")" -eq 5
case "$QTOOL" in
*/san/*) echo "skip README pipeline under the sanitizers" ;;
*)
	n=0
	while IFS= read -r line; do
		n=$((n + 1))
		expect_exit 0 "README line $n: ${line%%  *}" bash -c 'cd "$1" && PATH="$1/bin:$PATH" && eval "$2"' _ "$RD" "$line"
	done <"$RD/commands"
	check "README's compare printed a verdict" grep -q "^PASS: top-1" <<<"$OUT"
	;;
esac
