# Mixed precision through the CLI: analyze writes sensitivities; quantize with
# --target-size / --avg-wbits writes a .qmod whose per-layer bytes (inspect
# --json) stay within the budget; an infeasible budget is one line naming the
# smallest feasible one, and nothing is written; bad input is one line, exit 2.
MX=$TMP/mixed
mkdir -p "$MX"
MX_LIMIT=200
case "$QTOOL" in */san/*) MX_LIMIT=64 ;; esac
M=models/fmnist_cnn.onnx
expect_exit 0 "mixed: calibrate cnn" "$QTOOL" calibrate "$M" --data fashion-mnist:train --limit "$MX_LIMIT" \
	-o "$MX/cnn.calib.json"
expect_exit 0 "mixed: analyze cnn" "$QTOOL" analyze "$M" --calib "$MX/cnn.calib.json" --data fashion-mnist:train \
	--limit "$MX_LIMIT" -o "$MX/cnn.sens.json"
check "mixed: analyze wrote a sensitivity file" grep -q '"format":.*"qtool-sensitivity"' "$MX/cnn.sens.json"
check "mixed: analyze says how long it took" grep -q "measured [0-9]* layers x 5 settings on $MX_LIMIT samples" <<<"$ERR"

# Per layer of a sensitivity file: cost at w8a8 (first) below cost at w2a8 (fourth).
costs_ordered() {
	awk '/"cost":/ { gsub(/[^0-9.eE+,-]/, ""); sub(/,$/, ""); n = split($0, c, ","); if (n != 5 || !(c[1] < c[4])) bad = 1; k++ }
		END { exit !(k > 0 && !bad) }' "$1"
}
check "mixed: every layer loses more at w2a8 than at w8a8" costs_ordered "$MX/cnn.sens.json"

# Sum of the per-layer "bytes" (codes plus scales) in inspect --json.
layer_bytes() { "$QTOOL" inspect --json "$1" | awk '/"layers":/ { on = 1 } on && /"bytes":/ { gsub(/[^0-9]/, ""); s += $0 } END { print s + 0 }'; }
# Average weight bits over the layers' weights.
layer_avg_bits() {
	"$QTOOL" inspect --json "$1" | awk '/"layers":/ { on = 1 } on && /"weight_bits":/ { gsub(/[^0-9]/, ""); b = $0 }
		on && /"parameters":/ { gsub(/[^0-9]/, ""); s += b * $0; p += $0 } END { if (p) printf "%.4f", s / p }'
}

expect_exit 0 "mixed: uniform w4a8" "$QTOOL" quantize "$M" --calib "$MX/cnn.calib.json" --bits w4a8 -o "$MX/w4.qmod"
U=$(layer_bytes "$MX/w4.qmod")
expect_exit 0 "mixed: --target-size of uniform w4a8 from --sens" "$QTOOL" quantize "$M" --calib "$MX/cnn.calib.json" \
	--target-size "$U" --sens "$MX/cnn.sens.json" -o "$MX/ilp.qmod"
check "mixed: the chosen setting is printed per layer" grep -q "^  /features/features.0/Conv .* bytes  cost" <<<"$OUT"
B=$(layer_bytes "$MX/ilp.qmod")
check "mixed: ILP .qmod within the budget ($B <= $U bytes)" num_ok "$B" "v <= $U && v > 0"
check "mixed: the printed size is the file's" grep -q "^mixed precision: $B weight bytes with scales (budget $U)" <<<"$OUT"

# Number formats as candidates: at the size of uniform INT4 the program picks
# integer or floating point per layer; the .qmod holds exactly the plan
# (format, bits and bytes per layer, as inspect reads them back).
FC=int4,fp4_e2m1,mxfp4,int8,fp8_e4m3
expect_exit 0 "mixed: analyze with format candidates" "$QTOOL" analyze "$M" --calib "$MX/cnn.calib.json" \
	--data fashion-mnist:train --limit "$MX_LIMIT" --candidates "$FC" -o "$MX/fmt.sens.json"
check "mixed: format settings are named in the file" grep -q '"settings":.*"w4a8", "fp4_e2m1", "mxfp4", "w8a8", "fp8_e4m3"' \
	"$MX/fmt.sens.json"
expect_exit 0 "mixed: --target-size of uniform INT4 over formats" "$QTOOL" quantize "$M" --calib "$MX/cnn.calib.json" \
	--target-size "$U" --candidates "$FC" --sens "$MX/fmt.sens.json" -o "$MX/fmt.qmod"
# "NAME SETTING BYTES" per layer: from the plan printed, and from inspect --json.
plan_layers() { awk '/^  \// { print $1, $3, $4 }' <<<"$1" | sort; }
qmod_layers() {
	"$QTOOL" inspect --json "$1" | awk '/"layers":/ { on = 1 } !on { next }
		/"node":/ { split($0, q, "\""); n = q[4] } /"weight_bits":/ { gsub(/[^0-9]/, ""); w = $0 }
		/"act_bits":/ { gsub(/[^0-9]/, ""); a = $0 } /"bytes":/ && !/weight_bytes/ { gsub(/[^0-9]/, ""); b = $0 }
		/"format":/ { split($0, q, "\""); f = q[4]
			print n, (f == "int" ? "w" w "a" a : f (a == 8 ? "" : ":a" a)), b }' | sort
}
PL=$(plan_layers "$OUT")
QL=$(qmod_layers "$MX/fmt.qmod")
NSET=$(awk '{ print $2 }' <<<"$PL" | sort -u | wc -l)
check "mixed: the plan mixes settings ($(awk '{ print $2 }' <<<"$PL" | sort -u | tr '\n' ' '))" test "$NSET" -ge 2
check "mixed: the plan takes a floating-point format somewhere" grep -Eq ' (fp|mx|nv)[a-z0-9_]* ' <<<"$PL"
check "mixed: each layer's format, bits and bytes in the .qmod are the plan's" test -n "$PL" -a "$PL" = "$QL"
B=$(layer_bytes "$MX/fmt.qmod")
check "mixed: format plan within the INT4 budget ($B <= $U bytes)" num_ok "$B" "v <= $U && v > 0"
check "mixed: the printed size is the format plan's file" \
	grep -q "^mixed precision: $B weight bytes with scales (budget $U)" <<<"$OUT"
# Tighter than any uniform 4-bit format with scales: MXFP4's one byte per 32
# weights is the cheapest on the small layers, so the program must use it.
expect_exit 0 "mixed: a budget below uniform INT4" "$QTOOL" quantize "$M" --calib "$MX/cnn.calib.json" \
	--target-size $((U - 40)) --candidates "$FC" --sens "$MX/fmt.sens.json" -o "$MX/fmt2.qmod"
B=$(layer_bytes "$MX/fmt2.qmod")
check "mixed: below-INT4 plan within its budget ($B <= $((U - 40)) bytes)" num_ok "$B" "v <= $U - 40 && v > 0"
check "mixed: below-INT4 plan's .qmod is its plan" test "$(plan_layers "$OUT")" = "$(qmod_layers "$MX/fmt2.qmod")"
expect_exit 0 "mixed: FORMAT:a4 candidates" "$QTOOL" quantize "$M" --calib "$MX/cnn.calib.json" \
	--avg-wbits 4 --candidates int4:a4,fp4_e2m1:a4 --data fashion-mnist:train --limit 64 -o "$MX/fmt3.qmod"
check "mixed: FORMAT:a4 layers read 4-bit activations" test "$(plan_layers "$OUT")" = "$(qmod_layers "$MX/fmt3.qmod")"
expect_exit 2 "mixed: unknown format candidate" "$QTOOL" analyze "$M" --calib "$MX/cnn.calib.json" \
	--data fashion-mnist:train --candidates int4,fp5_e2m2 -o "$MX/x.json"
expect_err_line "mixed: the unknown format is named" "'fp5_e2m2' is not wXaY .*a weight format"

expect_exit 0 "mixed: --layer pins a layer under a budget" "$QTOOL" quantize "$M" --calib "$MX/cnn.calib.json" \
	--avg-wbits 3 --layer '/features/features.0/*=w2a8' --sens "$MX/cnn.sens.json" -o "$MX/pin.qmod"
check "mixed: the pinned layer takes its setting" grep -q "^  /features/features.0/Conv  *Conv  *w2a8 " <<<"$OUT"
expect_exit 2 "mixed: --layer setting outside the candidates" "$QTOOL" quantize "$M" --calib "$MX/cnn.calib.json" \
	--avg-wbits 3 --layer '/features/features.0/*=w3a4' --sens "$MX/cnn.sens.json" -o "$MX/x.qmod"
expect_err_line "mixed: the pinned setting is named" "w3a4 is not one of the candidates"
expect_exit 0 "mixed: --avg-wbits 3" "$QTOOL" quantize "$M" --calib "$MX/cnn.calib.json" --avg-wbits 3 \
	--sens "$MX/cnn.sens.json" -o "$MX/b3.qmod"
A=$(layer_avg_bits "$MX/b3.qmod")
check "mixed: average weight bits within 3 ($A)" num_ok "$A" "v <= 3 && v >= 2"

expect_exit 0 "mixed: --target-size in KB, measuring on --data" "$QTOOL" quantize "$M" --calib "$MX/cnn.calib.json" \
	--target-size 80KB --candidates w8a8,w4a8,w2a8 --data fashion-mnist:train --limit "$MX_LIMIT" -o "$MX/kb.qmod"
B=$(layer_bytes "$MX/kb.qmod")
check "mixed: measured-on-the-fly plan within 80KB ($B bytes)" num_ok "$B" "v <= 80000 && v > 0"

expect_exit 2 "mixed: infeasible budget" "$QTOOL" quantize "$M" --calib "$MX/cnn.calib.json" --target-size 100 \
	--sens "$MX/cnn.sens.json" -o "$MX/x.qmod"
expect_err_line "mixed: infeasible budget names the smallest" "budget 100 bytes is infeasible: .* takes [0-9]+ bytes"
expect_exit 2 "mixed: infeasible average bits" "$QTOOL" quantize "$M" --calib "$MX/cnn.calib.json" --avg-wbits 1.5 \
	--sens "$MX/cnn.sens.json" -o "$MX/x.qmod"
expect_err_line "mixed: infeasible average names the smallest" "average weight bits 1.5 is infeasible: .* averages 2.0000 bits"
expect_exit 2 "mixed: bad size" "$QTOOL" quantize "$M" --calib "$MX/cnn.calib.json" --target-size 12XB \
	--sens "$MX/cnn.sens.json" -o "$MX/x.qmod"
expect_err_line "mixed: bad size is named" "--target-size '12XB'"
expect_exit 2 "mixed: candidate not measured" "$QTOOL" quantize "$M" --calib "$MX/cnn.calib.json" --target-size 20KB \
	--candidates w8a8,w3a4 --sens "$MX/cnn.sens.json" -o "$MX/x.qmod"
expect_err_line "mixed: the missing candidate is named" "candidate w3a4 is not in"
expect_exit 2 "mixed: budget without sensitivities" "$QTOOL" quantize "$M" --calib "$MX/cnn.calib.json" \
	--target-size 20KB -o "$MX/x.qmod"
expect_err_line "mixed: says where sensitivities come from" "give --data SPEC to measure them, or --sens FILE"
expect_exit 2 "mixed: --sens without a budget" "$QTOOL" quantize "$M" --calib "$MX/cnn.calib.json" \
	--sens "$MX/cnn.sens.json" -o "$MX/x.qmod"
expect_err_line "mixed: --sens alone is refused" "go with --target-size"
sed 's/"cost":\t\[/"cost":\t["x", /' "$MX/cnn.sens.json" >"$MX/bad.sens.json"
expect_exit 2 "mixed: damaged sensitivity file" "$QTOOL" quantize "$M" --calib "$MX/cnn.calib.json" \
	--target-size 20KB --sens "$MX/bad.sens.json" -o "$MX/x.qmod"
expect_err_line "mixed: the damage is located" "bad.sens.json: layer \".*\": \"cost\" and \"bytes\" must be arrays"
expect_exit 0 "mixed: calibrate mlp" "$QTOOL" calibrate models/fmnist_mlp.onnx --data fashion-mnist:train --limit 64 \
	-o "$MX/mlp.calib.json"
expect_exit 2 "mixed: sensitivities of another model" "$QTOOL" quantize models/fmnist_mlp.onnx \
	--calib "$MX/mlp.calib.json" --target-size 20KB --sens "$MX/cnn.sens.json" -o "$MX/x.qmod"
expect_err_line "mixed: another model is refused" "measured on another model"
expect_exit 2 "mixed: unknown candidate" "$QTOOL" analyze "$M" --calib "$MX/cnn.calib.json" \
	--data fashion-mnist:train --candidates w8a8,w5a8 -o "$MX/x.json"
expect_err_line "mixed: the unknown candidate is named" "'w5a8' is not wXaY"
check "mixed: no output after bad input" test ! -e "$MX/x.qmod" -a ! -e "$MX/x.json"

# Accuracy-target search: a reachable target gives a model within it, smaller
# than uniform w8a8; an impossible one still writes the closest model, exit 1.
MX_EVAL=500
case "$QTOOL" in */san/*) MX_EVAL=100 ;; esac
expect_exit 0 "mixed: uniform w8a8" "$QTOOL" quantize "$M" --calib "$MX/cnn.calib.json" -o "$MX/w8.qmod"
U8=$(layer_bytes "$MX/w8.qmod")
expect_exit 0 "mixed: --max-drop 1" "$QTOOL" quantize "$M" --calib "$MX/cnn.calib.json" --sens "$MX/cnn.sens.json" \
	--max-drop 1 --eval-data fashion-mnist:test --eval-limit "$MX_EVAL" -o "$MX/md.qmod"
B=$(layer_bytes "$MX/md.qmod")
check "mixed: --max-drop model smaller than uniform w8a8 ($B < $U8 bytes)" num_ok "$B" "v < $U8 && v > 0"
F1=$(sed -n 's/^max-drop: FP32 top-1 \([0-9.]*\)%.*/\1/p' <<<"$OUT")
expect_exit 0 "mixed: evaluate the --max-drop model" "$QTOOL" eval "$MX/md.qmod" --data fashion-mnist:test --limit "$MX_EVAL"
T1=$(sed -n 's/^top-1: *\([0-9.]*\)%.*/\1/p' <<<"$OUT")
check "mixed: --max-drop model within 1 point of FP32 (${T1:-none} vs ${F1:-none})" num_ok "${T1:-x}" "v >= ${F1:-1000} - 1"
rm -f "$MX/md0.qmod"
expect_exit 1 "mixed: impossible --max-drop exits 1" "$QTOOL" quantize "$M" --calib "$MX/cnn.calib.json" \
	--sens "$MX/cnn.sens.json" --candidates w2a8 --max-drop 0 --eval-data fashion-mnist:test --eval-limit "$MX_EVAL" \
	-o "$MX/md0.qmod"
check "mixed: impossible --max-drop still writes the closest model" test -s "$MX/md0.qmod"
check "mixed: impossible --max-drop says so" grep -q "no plan met --max-drop 0; wrote the most accurate one found" <<<"$ERR"
expect_exit 2 "mixed: --max-drop without --eval-data" "$QTOOL" quantize "$M" --calib "$MX/cnn.calib.json" \
	--sens "$MX/cnn.sens.json" --max-drop 1 -o "$MX/x.qmod"
expect_err_line "mixed: --max-drop asks for --eval-data" "needs --eval-data SPEC"
check "mixed: no output after bad --max-drop" test ! -e "$MX/x.qmod"

# The same search without labels: --min-sqnr DB keeps plans whose output SQNR against FP32 on
# the (unlabelled) evaluation data is at least DB; the model written meets it when eval measures it.
MU=$MX/unlabelled
mkdir -p "$MU"
zcat /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz >"$MU/images.idx"
dd if="$MU/images.idx" iflag=skip_bytes,count_bytes skip=16 count=$((200 * 784)) status=none |
	npy_f32 200,1,28,28 >"$MU/x.npy"
expect_exit 2 "mixed: --max-drop on unlabelled data" "$QTOOL" quantize "$M" --calib "$MX/cnn.calib.json" \
	--sens "$MX/cnn.sens.json" --max-drop 1 --eval-data "npy:$MU" -o "$MX/x.qmod"
expect_err_line "mixed: --max-drop on unlabelled data points at --min-sqnr" "no labels.*--min-sqnr"
expect_exit 2 "mixed: --max-drop and --min-sqnr together" "$QTOOL" quantize "$M" --calib "$MX/cnn.calib.json" \
	--sens "$MX/cnn.sens.json" --max-drop 1 --min-sqnr 20 --eval-data "npy:$MU" -o "$MX/x.qmod"
expect_err_line "mixed: two targets are refused with the reason" "two targets: give one"
expect_exit 0 "mixed: --min-sqnr 25 on unlabelled data" "$QTOOL" quantize "$M" --calib "$MX/cnn.calib.json" \
	--sens "$MX/cnn.sens.json" --min-sqnr 25 --eval-data "npy:$MU" -o "$MX/ms.qmod"
check "mixed: --min-sqnr says what it measures" grep -q "^min-sqnr: output SQNR against FP32 on 200 samples" <<<"$OUT"
B=$(layer_bytes "$MX/ms.qmod")
check "mixed: --min-sqnr model smaller than uniform w8a8 ($B < $U8 bytes)" num_ok "$B" "v < $U8 && v > 0"
expect_exit 0 "mixed: evaluate the --min-sqnr model without labels" "$QTOOL" eval "$MX/ms.qmod" --data "npy:$MU" \
	--reference "$M"
S=$(sed -n 's/^SQNR: *\([-0-9.]*\) dB.*/\1/p' <<<"$OUT")
check "mixed: the --min-sqnr model's SQNR ${S:-none} >= 25 dB" num_ok "${S:-x}" "v >= 25"
rm -f "$MX/ms0.qmod"
expect_exit 1 "mixed: impossible --min-sqnr exits 1" "$QTOOL" quantize "$M" --calib "$MX/cnn.calib.json" \
	--sens "$MX/cnn.sens.json" --candidates w2a8 --min-sqnr 200 --eval-data "npy:$MU" -o "$MX/ms0.qmod"
check "mixed: impossible --min-sqnr still writes the closest model" test -s "$MX/ms0.qmod"
check "mixed: impossible --min-sqnr says so" grep -q "no plan met --min-sqnr 200; wrote the most accurate one found" <<<"$ERR"

# The Hessian-trace proxy: one FP32 pass instead of a run per (layer, setting). Its costs must
# order each layer's settings as their weight error does (fewer bits, larger cost), and quantize
# takes the file like a measured one.
expect_exit 2 "mixed: --proxy with an unknown name" "$QTOOL" analyze "$M" --calib "$MX/cnn.calib.json" \
	--data fashion-mnist:train --limit 64 --proxy fisher -o "$MX/px.json"
expect_err_line "mixed: the unknown proxy is named" "--proxy 'fisher'"
expect_exit 0 "mixed: analyze --proxy hessian" "$QTOOL" analyze "$M" --calib "$MX/cnn.calib.json" \
	--data fashion-mnist:train --limit 64 --candidates w8a8,w4a8,w2a8 --proxy hessian -o "$MX/px.json"
check "mixed: the proxy file says what its costs are" grep -q '"loss":[[:space:]]*"hessian-proxy"' "$MX/px.json"
check "mixed: the proxy file has every layer's MACs (for --max-bops)" \
	test "$(grep -c '"macs":[[:space:]]*[1-9]' "$MX/px.json")" -eq "$(grep -c '"macs":' "$MX/px.json")"
bad_order=$(sed -n 's/.*"cost":[[:space:]]*\[\(.*\)\].*/\1/p' "$MX/px.json" | tr -d ' ' |
	awk -F, '!($1 < $2 && $2 < $3) { n++ } END { print n + 0 }')
nlay=$(grep -c '"cost":' "$MX/px.json" || true)
check "mixed: proxy costs grow as bits fall on every layer ($bad_order of $nlay out of order)" \
	test "$bad_order" -eq 0 -a "$nlay" -gt 0
expect_exit 0 "mixed: quantize with the proxy's costs" "$QTOOL" quantize "$M" --calib "$MX/cnn.calib.json" \
	--sens "$MX/px.json" --candidates w8a8,w4a8,w2a8 --avg-wbits 4 -o "$MX/px.qmod"
check "mixed: the proxy's plan is mixed" grep -Eq "^  .* w2a8 |^  .* w4a8 " <<<"$OUT"
