# Sourced by the results scripts: read a figure from qtool's text output, and
# put a generated section into docs/RESULTS.md.

# num LABEL FILE: the first number after LABEL at the start of a line of FILE
# (e.g. num 'top-1:' eval.txt).
num() { sed -n "s/^$1 *\([0-9.inf-]*\).*/\1/p" "$2" | head -1; }

# results_update_section TAG FILE: replace the lines between <!-- TAG:begin -->
# and <!-- TAG:end --> with FILE (which carries both markers), or insert FILE
# before the "## Speed" heading when the markers are not there yet.
results_update_section() {
	local tag=$1 sec=$2
	if grep -q "<!-- $tag:begin -->" docs/RESULTS.md; then
		awk -v sec="$sec" -v b="<!-- $tag:begin -->" -v e="<!-- $tag:end -->" '
			$0 == b { while ((getline l < sec) > 0) print l; skip = 1; next }
			$0 == e { skip = 0; next }
			!skip { print }' docs/RESULTS.md >"$sec.RESULTS.md.new"
	else
		awk -v sec="$sec" '
			/^## Speed/ && !done { while ((getline l < sec) > 0) print l; print ""; done = 1 }
			{ print }' docs/RESULTS.md >"$sec.RESULTS.md.new"
	fi
	mv "$sec.RESULTS.md.new" docs/RESULTS.md
}
