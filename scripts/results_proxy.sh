#!/usr/bin/env bash
# How well the Hessian-trace proxy (`qtool analyze --proxy hessian`) ranks layers against the
# measured sensitivities (`qtool analyze`), on every bundled model: Spearman's rank correlation
# over the layers, per candidate setting, and over every (layer, setting) pair; and the time of
# each. Writes the "proxy" section of docs/RESULTS.md with --update.
#   scripts/results_proxy.sh [--update] [QTOOL]
#   env: PROXY_LIMIT (samples both use, default 1000), RESULTS_MODELS
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/results_section.sh
update=0
if [ "${1:-}" = --update ]; then
	update=1
	shift
fi
Q=${1:-build/release/qtool}
limit=${PROXY_LIMIT:-1000}
models=${RESULTS_MODELS:-"fmnist_cnn fmnist_mlp fmnist_mobilenet fmnist_resnet fmnist_vit"}
W=build/results/proxy
mkdir -p "$W"

# costs FILE: one line per layer, the numbers of its "cost" array (cJSON writes one array per line).
costs() { sed -n 's/.*"cost":[[:space:]]*\[\(.*\)\].*/\1/p' "$1" | tr -d ' ' | tr ',' ' '; }

# spearman A B: per column (setting) and over all entries; prints "rho_1 ... rho_S | rho_all".
spearman() {
	paste -d'|' <(costs "$1") <(costs "$2") | awk -F'|' '
	function rank(v, n, r,   i, j, k, t, idx) {
		for (i = 1; i <= n; i++) idx[i] = i
		for (i = 2; i <= n; i++) { t = idx[i]; for (j = i - 1; j >= 1 && v[idx[j]] > v[t]; j--) idx[j + 1] = idx[j]; idx[j + 1] = t }
		for (i = 1; i <= n; i = j) {
			for (j = i + 1; j <= n && v[idx[j]] == v[idx[i]]; j++) ;
			for (k = i; k < j; k++) r[idx[k]] = (i + j - 1) / 2
		}
	}
	function rho(a, b, n,   ra, rb, i, ma, mb, sab, saa, sbb) {
		rank(a, n, ra); rank(b, n, rb)
		for (i = 1; i <= n; i++) { ma += ra[i]; mb += rb[i] }
		ma /= n; mb /= n
		for (i = 1; i <= n; i++) { sab += (ra[i] - ma) * (rb[i] - mb); saa += (ra[i] - ma) ^ 2; sbb += (rb[i] - mb) ^ 2 }
		return saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : 0
	}
	{ L++; S = split($1, a, " "); split($2, b, " ")
	  for (s = 1; s <= S; s++) { A[s, L] = a[s]; B[s, L] = b[s]; N++; AA[N] = a[s]; BB[N] = b[s] } }
	END {
		out = ""
		for (s = 1; s <= S; s++) {
			delete x; delete y
			for (l = 1; l <= L; l++) { x[l] = A[s, l]; y[l] = B[s, l] }
			out = out sprintf("%.2f ", rho(x, y, L))
		}
		printf "%s| %.2f\n", out, rho(AA, BB, N)
	}'
}

sec=$W/proxy.section.md
{
	echo "<!-- proxy:begin -->"
	echo "## Sensitivity: the Hessian-trace proxy against the measurement"
	echo
	echo "Made by \`scripts/results_proxy.sh\` on $(date -u +%Y-%m-%d): for each model,"
	echo "\`qtool analyze MODEL --calib C --data fashion-mnist:train --limit $limit -o M.json\` (measured:"
	echo "the KL of the outputs with one layer at one setting) and the same with \`--proxy hessian\`"
	echo "(one FP32 pass: the layer input's mean square times |W_q - W|^2, plus the input's rounding"
	echo "noise through the weights). ρ: Spearman's rank correlation of the two costs over the layers,"
	echo "per setting, and over every (layer, setting) pair; 1 = the same order. Times: wall clock on"
	echo "this machine (load average at the start: $(cut -d' ' -f1-3 /proc/loadavg))."
	echo
	echo "| model | layers | ρ w8a8 | ρ w4a8 | ρ w3a8 | ρ w2a8 | ρ w4a4 | ρ all pairs | measured s | proxy s |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} >"$sec"
for m in $models; do
	c=$W/$m.calib.json
	[ -s "$c" ] || "$Q" calibrate "models/$m.onnx" --data fashion-mnist:train --limit "$limit" -o "$c" >/dev/null
	t0=$(date +%s.%N)
	"$Q" analyze "models/$m.onnx" --calib "$c" --data fashion-mnist:train --limit "$limit" -o "$W/$m.measured.json" \
		>/dev/null 2>&1
	t1=$(date +%s.%N)
	"$Q" analyze "models/$m.onnx" --calib "$c" --data fashion-mnist:train --limit "$limit" --proxy hessian \
		-o "$W/$m.proxy.json" >/dev/null 2>&1
	t2=$(date +%s.%N)
	r=$(spearman "$W/$m.measured.json" "$W/$m.proxy.json")
	n=$(costs "$W/$m.measured.json" | wc -l)
	per=$(echo "${r%|*}" | awk '{ for (i = 1; i <= NF; i++) printf "| %s ", $i }')
	printf '| %s | %d %s| %s | %.1f | %.1f |\n' "$m" "$n" "$per" "${r#*| }" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
		"$(awk -v a="$t1" -v b="$t2" 'BEGIN { print b - a }')" >>"$sec"
	echo "$m: ρ per setting ${r%|*}, all ${r#*| }" >&2
done
echo "<!-- proxy:end -->" >>"$sec"
cat "$sec"
if [ "$update" = 1 ]; then
	results_update_section proxy "$sec"
fi
