# Label-free evaluation: a .qmod against its ONNX on a folder without labels,
# and `qtool run` on the .qmod writing the very outputs eval compared.
M=models/fmnist_cnn.onnx
L=$TMP/labelfree
mkdir -p "$L/u"
# 40 test images, normalized as the model expects, as x.npy only (no y.npy).
zcat /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz >"$L/images.idx"
dd if="$L/images.idx" iflag=skip_bytes,count_bytes skip=16 count=$((40 * 784)) status=none | npy_f32 40,1,28,28 >"$L/u/x.npy"

expect_exit 0 "labelfree: calibrate cnn (64 samples)" "$QTOOL" calibrate "$M" --data fashion-mnist:train --limit 64 -o "$L/c.json"
expect_exit 0 "labelfree: quantize" "$QTOOL" quantize "$M" --calib "$L/c.json" -o "$L/x.qmod"

expect_exit 2 "eval on unlabeled data without --reference" "$QTOOL" eval "$L/x.qmod" --data "npy:$L/u"
expect_err_line "says the data has no labels and what to do" "no labels; give --reference"

# --batch 7: the batches do not divide the 40 samples, and run below sees all 40 at once.
expect_exit 0 "eval .qmod on unlabeled npy:DIR against the ONNX" "$QTOOL" eval "$L/x.qmod" --data "npy:$L/u" \
	--reference "$M" --batch 7 --json "$L/r.json"
EV=$OUT
check "eval says there are no labels" grep -q "^data: .*(40 samples, no labels)" <<<"$EV"
check "no accuracy without labels" bash -c '! grep -q "^top-1:" <<<"$1"' _ "$EV"
check "per-output block for \"logits\"" grep -q '^output "logits" \[40,10\] against' <<<"$EV"
e_sqnr=$(sed -n 's/^SQNR: *\([0-9.]*\) dB/\1/p' <<<"$EV")
e_cos=$(sed -n 's/^cosine: *\([0-9.]*\) mean.*/\1/p' <<<"$EV")
e_max=$(sed -n 's/^max abs difference: \([0-9.e+-]*\).*/\1/p' <<<"$EV")
e_agree=$(sed -n 's/^agreement with .*: \([0-9.]*\)% top-1/\1/p' <<<"$EV")
check "SQNR printed (${e_sqnr:-none} dB) and above 25 dB" num_ok "$e_sqnr" 'v > 25'
check "cosine printed (${e_cos:-none}) and above 0.99" num_ok "$e_cos" 'v > 0.99 && v <= 1'
check "agreement printed (${e_agree:-none}%)" num_ok "$e_agree" 'v >= 0 && v <= 100'
check "report: dataset.labels false" grep -q '"labels":[[:space:]]*false' "$L/r.json"
check "report: no metrics.top1" bash -c '! grep -q "\"top1\"" "$1"' _ "$L/r.json"
check "report: per-output cosine" grep -q '"cosine_mean"' "$L/r.json"
check "report: the output's name" grep -q '"name":[[:space:]]*"logits"' "$L/r.json"
expect_exit 2 "compare refuses a report without labels" "$QTOOL" compare "$L/r.json" "$L/r.json"
expect_err_line "and says why" "without labels"

# run writes what eval computed: the figures recomputed from run's outputs
# (the .qmod on the integer runtime, the ONNX in FP32) equal eval's.
expect_exit 0 "run .qmod on the same 40 samples" "$QTOOL" run "$L/x.qmod" --input input="$L/u/x.npy" --output "$L/q"
expect_exit 0 "run the ONNX reference" "$QTOOL" run "$M" --input=input="$L/u/x.npy" -o "$L/f"
check "run .qmod wrote logits.npy" test -s "$L/q/logits.npy"
paste <(npy_values "$L/q/logits.npy") <(npy_values "$L/f/logits.npy") | awk -v C=10 '
	{ a[NR - 1] = $1; b[NR - 1] = $2; n = NR }
	END {
		for (i = 0; i < n; i++) { d = a[i] - b[i]; sig += b[i] * b[i]; noi += d * d; if (d < 0) d = -d; if (d > mx) mx = d }
		for (r = 0; r < n / C; r++) {
			ia = ib = r * C; dot = na = nb = 0
			for (c = r * C; c < (r + 1) * C; c++) {
				if (a[c] > a[ia]) ia = c; if (b[c] > b[ib]) ib = c
				dot += a[c] * b[c]; na += a[c] * a[c]; nb += b[c] * b[c]
			}
			ag += ia == ib; cs += dot / sqrt(na * nb)
		}
		printf "%d %.2f %.6f %.6g %.2f\n", n, 10 * log(sig / noi) / log(10), cs / (n / C), mx, 100 * ag / (n / C)
	}' >"$L/recomputed"
read -r r_n r_sqnr r_cos r_max r_agree <"$L/recomputed"
check "run wrote 40 x 10 values (got ${r_n:-none})" test "${r_n:-0}" = 400
check "SQNR from run's outputs equals eval's ($r_sqnr vs $e_sqnr)" num_ok "$r_sqnr" "v - $e_sqnr <= 0.011 && $e_sqnr - v <= 0.011"
check "cosine from run's outputs equals eval's ($r_cos vs $e_cos)" num_ok "$r_cos" "v - $e_cos <= 2e-6 && $e_cos - v <= 2e-6"
check "max difference from run's outputs equals eval's ($r_max vs $e_max)" num_ok "$r_max" "v - $e_max <= 1e-5 * $e_max && $e_max - v <= 1e-5 * $e_max"
check "agreement from run's outputs equals eval's ($r_agree vs $e_agree)" test "$r_agree" = "$e_agree"
# run --simulate writes the float simulation's outputs: they differ from the integer
# runtime's by exactly what eval --simulate reports.
expect_exit 0 "run .qmod --simulate" "$QTOOL" run "$L/x.qmod" --simulate -i input="$L/u/x.npy" -o "$L/s"
expect_exit 0 "eval --simulate against the integer runtime" "$QTOOL" eval "$L/x.qmod" --simulate --reference "$L/x.qmod" \
	--data "npy:$L/u"
s_max=$(sed -n 's/^max abs difference: \([0-9.e+-]*\).*/\1/p' <<<"$OUT")
s_run=$(paste <(npy_values "$L/s/logits.npy") <(npy_values "$L/q/logits.npy") |
	awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d } END { printf "%.6g\n", m + 0 }')
check "run --simulate vs run: the max difference eval --simulate reported ($s_run vs $s_max)" \
	num_ok "$s_run" "v - $s_max <= 1e-5 * ($s_max + 1e-30) && $s_max - v <= 1e-5 * ($s_max + 1e-30)"
expect_exit 2 "run --stats on the integer runtime refused" "$QTOOL" run "$L/x.qmod" --stats -i input="$L/u/x.npy" -o "$L/q2"
