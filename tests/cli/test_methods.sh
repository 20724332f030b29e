# PTQ methods through the CLI: bad input is one line and exit 2; bias
# correction makes W4A8 better than round to nearest; a quantized graph is
# byte-identical across runs and thread counts.
ME=$TMP/methods
mkdir -p "$ME"
case "$QTOOL" in
*/san/*) ME_LIMIT=200 ;;
*) ME_LIMIT=1000 ;;
esac
expect_exit 0 "methods: calibrate resnet" "$QTOOL" calibrate models/fmnist_resnet.onnx --data fashion-mnist:train \
	--limit "$ME_LIMIT" -o "$ME/resnet.calib.json"

expect_exit 2 "methods: --method without --data" "$QTOOL" quantize models/fmnist_resnet.onnx \
	--calib "$ME/resnet.calib.json" --method gptq -o "$ME/x.qmod"
expect_err_line "methods: --method without --data says to add --data" "needs calibration samples: add --data"
expect_exit 2 "methods: unknown method" "$QTOOL" quantize models/fmnist_resnet.onnx \
	--calib "$ME/resnet.calib.json" --data fashion-mnist:train --method gptq,foo -o "$ME/x.qmod"
expect_err_line "methods: unknown method is named" "unknown method 'foo'"
expect_exit 2 "methods: layer pattern that matches nothing" "$QTOOL" quantize models/fmnist_resnet.onnx \
	--calib "$ME/resnet.calib.json" --layer 'no_such_layer*=w8a8' -o "$ME/x.qmod"
expect_err_line "methods: the pattern is named" "'no_such_layer\*' matches no quantizable layer"
# A dataset whose samples do not fit the model's [1,28,28] input: 3x8x8 samples.
mkdir -p "$ME/wrong"
printf '\x93NUMPY\x01\x00v\x00{"descr": "<f4", "fortran_order": False, "shape": (2, 3, 8, 8), }' >"$ME/wrong/x.npy"
printf '%*s\n' $((118 - 10 - 66)) '' | tr -d '\n' >>"$ME/wrong/x.npy"
head -c 1536 /dev/zero >>"$ME/wrong/x.npy"
expect_exit 2 "methods: a dataset whose shape does not fit" "$QTOOL" quantize models/fmnist_resnet.onnx \
	--calib "$ME/resnet.calib.json" --data "npy:$ME/wrong" --method bias-correction -o "$ME/x.qmod"
expect_err_line "methods: the misfit names the dataset" "npy:$ME/wrong"
check "methods: no output after bad input" test ! -e "$ME/x.qmod"

# Bias correction against round to nearest at W4A8 per channel (2000 test images).
expect_exit 0 "methods: resnet w4a8 rtn" "$QTOOL" quantize models/fmnist_resnet.onnx \
	--calib "$ME/resnet.calib.json" --bits w4a8 -o "$ME/rtn.qmod"
expect_exit 0 "methods: resnet w4a8 bias-correction" "$QTOOL" quantize models/fmnist_resnet.onnx \
	--calib "$ME/resnet.calib.json" --bits w4a8 --data fashion-mnist:train --limit "$ME_LIMIT" \
	--method bias-correction -o "$ME/bc.qmod"
check "methods: the summary names the method" grep -q "^methods: bias-correction (sequential" <<<"$OUT"
top1() { sed -n 's/^top-1: *\([0-9.]*\)%.*/\1/p' <<<"$1"; }
expect_exit 0 "methods: eval rtn" "$QTOOL" eval "$ME/rtn.qmod" --data fashion-mnist:test --limit 2000
T_RTN=$(top1 "$OUT")
expect_exit 0 "methods: eval bias-correction" "$QTOOL" eval "$ME/bc.qmod" --data fashion-mnist:test --limit 2000
T_BC=$(top1 "$OUT")
check "methods: bias correction beats round to nearest at w4a8 (${T_BC:-none} vs ${T_RTN:-none})" \
	awk -v a="$T_BC" -v b="$T_RTN" 'BEGIN { exit !(a != "" && b != "" && a > b + 0.5) }'

# Determinism: with each method the same command under 1 and 2 threads, and
# run twice, writes the same bytes (gptq at 3 bits takes the FP32 target and
# the MSE scales; cle recalibrates). t1.qmod (gptq,bias-correction) is kept.
ME_DET="bias-correction mse,gptq cle,gptq,bias-correction gptq,bias-correction"
[ "$ME_LIMIT" = 1000 ] || ME_DET=gptq,bias-correction # under the sanitizers: the one with every stage
for meth in $ME_DET; do
	bflag=(--bits w4a8)
	[ "$meth" = mse,gptq ] && bflag=(--bits w3a8 --group-size 32)
	for th in 1 2 2; do
		expect_exit 0 "methods: $meth with $th thread(s)" env QT_THREADS=$th OPENBLAS_NUM_THREADS=$th \
			"$QTOOL" quantize models/fmnist_resnet.onnx --calib "$ME/resnet.calib.json" "${bflag[@]}" \
			--data fashion-mnist:train --limit 200 --method "$meth" -o "$ME/t.qmod"
		if [ -e "$ME/t$th.qmod" ]; then mv "$ME/t.qmod" "$ME/t${th}b.qmod"; else mv "$ME/t.qmod" "$ME/t$th.qmod"; fi
	done
	check "methods: $meth byte-identical across thread counts" cmp -s "$ME/t1.qmod" "$ME/t2.qmod"
	check "methods: $meth byte-identical across runs" cmp -s "$ME/t2.qmod" "$ME/t2b.qmod"
	if [ "$meth" != gptq,bias-correction ]; then rm -f "$ME"/t1.qmod "$ME"/t2.qmod "$ME"/t2b.qmod; fi
done

# Sequential GPTQ aims at the FP32 model's output (a paired FP32 run), not at
# the layer's own weights on the quantized inputs: at w3a8 on the MobileNet
# its top-1 on 2000 test images is higher (measured: 89.76 vs 88.15 on all
# 10,000; docs/RESULTS.md).
if [ "$ME_LIMIT" = 1000 ]; then
	expect_exit 0 "methods: calibrate mobilenet" "$QTOOL" calibrate models/fmnist_mobilenet.onnx \
		--data fashion-mnist:train --limit 1000 -o "$ME/mb.calib.json"
	for tgt in fp32 own; do
		flag=()
		[ $tgt = own ] && flag=(--no-fp32-target)
		expect_exit 0 "methods: mobilenet w3a8 g32 gptq,bias-correction target $tgt" "$QTOOL" quantize \
			models/fmnist_mobilenet.onnx --calib "$ME/mb.calib.json" --bits w3a8 --group-size 32 \
			--data fashion-mnist:train --limit 1000 "${flag[@]}" -o "$ME/mb.$tgt.qmod"
		expect_exit 0 "methods: eval mobilenet target $tgt" "$QTOOL" eval "$ME/mb.$tgt.qmod" \
			--data fashion-mnist:test --limit 2000
		declare "T_$tgt=$(top1 "$OUT")"
	done
	check "methods: the FP32 target beats the own-weights target (${T_fp32:-none} vs ${T_own:-none})" \
		awk -v a="$T_fp32" -v b="$T_own" 'BEGIN { exit !(a != "" && b != "" && a > b + 0.5) }'
fi
expect_exit 2 "methods: --no-fp32-target without --data" "$QTOOL" quantize models/fmnist_resnet.onnx \
	--calib "$ME/resnet.calib.json" --no-fp32-target -o "$ME/x.qmod"
expect_err_line "methods: --no-fp32-target says what it goes with" "goes with --data"

# The plan and the methods travel with the .qmod: inspect shows each layer's
# weight and activation bits (a --layer override included) and the methods
# with their settings and data.
expect_exit 0 "methods: inspect a gptq,bias-correction .qmod" "$QTOOL" inspect "$ME/t1.qmod"
check "methods: inspect records the methods, their settings and the data" grep -Eq \
	"^methods: gptq,bias-correction; gptq damp 0.01, block 128, act-order, rounds 3; sequential, target the FP32 output, 200 samples of fashion-mnist:train$" <<<"$OUT"
expect_exit 0 "methods: quantize with a per-layer override" "$QTOOL" quantize models/fmnist_resnet.onnx \
	--calib "$ME/resnet.calib.json" --bits w4a8 --layer '/fc/Gemm=w8a4' -o "$ME/plan.qmod"
expect_exit 0 "methods: inspect the override" "$QTOOL" inspect "$ME/plan.qmod"
# Columns: node op bits act scales ...
check "methods: inspect shows the override's weight and activation bits" \
	awk '$1 == "/fc/Gemm" { f = ($3 == 8 && $4 == 4) } END { exit !f }' <<<"$OUT"
check "methods: inspect shows every other layer at w4a8" \
	awk '$2 == "Conv" { n++; if ($3 != 4 || $4 != 8) bad = 1 } END { exit !(n > 0 && !bad) }' <<<"$OUT"
check "methods: inspect says rtn when no data method ran" grep -q "^methods: rtn$" <<<"$OUT"

# GPTQ's promise on every bundled model: on the held-out fifth of the
# calibration samples, each layer's output error is below round-to-nearest's
# (same scales to start from, same inputs). Under the sanitizers two models.
case "$QTOOL" in
*/san/*) ME_MODELS="fmnist_mlp fmnist_cnn" ;;
*) ME_MODELS="fmnist_mlp fmnist_cnn fmnist_resnet fmnist_mobilenet fmnist_vit" ;;
esac
for m in $ME_MODELS; do
	[ -f "$ME/$m.calib.json" ] || "$QTOOL" calibrate "models/$m.onnx" --data fashion-mnist:train \
		--limit "$ME_LIMIT" -o "$ME/$m.calib.json" >/dev/null
	expect_exit 0 "methods: $m w4a8 gptq with a held-out fifth" "$QTOOL" quantize "models/$m.onnx" \
		--calib "$ME/$m.calib.json" --bits w4a8 --data fashion-mnist:train --limit "$ME_LIMIT" \
		--method gptq --holdout 0.2 -o "$ME/$m.gptq.qmod"
	heldout_check "methods: $m gptq" gptq
done
