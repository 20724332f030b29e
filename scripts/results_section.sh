# Sourced by the results scripts: put a generated section into docs/RESULTS.md.
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
