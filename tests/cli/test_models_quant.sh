# Every bundled model through the whole pipeline (1000 calibration samples
# from the train split, W8A8 with the default range method), checked over
# the full 10k test set: the integer runtime agrees with the float simulation
# of the same .qmod (same top-1 on >= 99.9% of samples, output codes at most
# 1 apart), and each .qmod is within the size bound. Under the sanitizers
# (build/san) 1000 test images: that build checks memory safety.
case "$QTOOL" in
*/san/*) MQ_LIMIT=(--limit 1000) ;;
*) MQ_LIMIT=() ;;
esac
MQ=$TMP/models_quant
mkdir -p "$MQ"

# sim_vs_int NAME QMOD: eval QMOD as its float simulation against itself on integers.
sim_vs_int() {
	expect_exit 0 "$1: integer runtime vs float simulation" "$QTOOL" eval "$2" --simulate \
		--data fashion-mnist:test "${MQ_LIMIT[@]}" --reference "$2"
	local codes agree
	codes=$(sed -n 's/^max abs difference: .*(\([0-9.]*\) codes.*/\1/p' <<<"$OUT")
	agree=$(sed -n 's/^agreement with .*: \([0-9.]*\)% top-1.*/\1/p' <<<"$OUT")
	check "$1: output codes at most 1 apart (got ${codes:-none})" num_ok "$codes" 'v <= 1'
	check "$1: same top-1 on >= 99.9% (got ${agree:-none})" num_ok "$agree" 'v >= 99.9'
}

for m in fmnist_mlp fmnist_cnn fmnist_resnet fmnist_mobilenet fmnist_vit; do
	expect_exit 0 "$m: calibrate (1000 train samples)" "$QTOOL" calibrate "models/$m.onnx" \
		--data fashion-mnist:train --limit 1000 -o "$MQ/$m.calib.json"
	expect_exit 0 "$m: quantize w8a8" "$QTOOL" quantize "models/$m.onnx" --calib "$MQ/$m.calib.json" \
		--bits w8a8 -o "$MQ/$m.qmod"
	expect_exit 0 "$m: inspect" "$QTOOL" inspect "$MQ/$m.qmod"
	size=$(sed -n 's/^size: \([0-9]*\) bytes; bound .* = \([0-9]*\)$/\1 \2/p' <<<"$OUT")
	check "$m: .qmod within 1.10 x (weights + qparams) + 8 KiB ($size)" test -n "$size" -a "${size% *}" -le "${size#* }"
	sim_vs_int "$m w8a8" "$MQ/$m.qmod"
done

# Grouped 4-bit weights take their own integer path (int64 group sums).
expect_exit 0 "fmnist_resnet: quantize w4a8 group 32" "$QTOOL" quantize models/fmnist_resnet.onnx \
	--calib "$MQ/fmnist_resnet.calib.json" --bits w4a8 --group-size 32 -o "$MQ/resnet_g32.qmod"
sim_vs_int "fmnist_resnet w4a8 g32" "$MQ/resnet_g32.qmod"

# 3-bit weights (8 codes per 3 bytes): per channel the integer runtime gives
# exactly the simulation's codes; grouped (w3a8 g32, two-level scales) within
# a code (the simulation recovers int64 group sums from float sums). 2000
# test images each keep this cheap. inspect reports bits per weight with the
# scales: at g32 at most 3 + 0.25 (u8 ratios) + 32 / K (f32 per channel).
W3_LIMIT=(--limit 2000)
expect_exit 0 "fmnist_cnn: quantize w3a8" "$QTOOL" quantize models/fmnist_cnn.onnx \
	--calib "$MQ/fmnist_cnn.calib.json" --bits w3a8 -o "$MQ/cnn_w3.qmod"
expect_exit 0 "fmnist_cnn w3a8: integer runtime vs float simulation" "$QTOOL" eval "$MQ/cnn_w3.qmod" --simulate \
	--data fashion-mnist:test "${W3_LIMIT[@]}" --reference "$MQ/cnn_w3.qmod"
codes=$(sed -n 's/^max abs difference: .*(\([0-9.]*\) codes.*/\1/p' <<<"$OUT")
check "fmnist_cnn w3a8: identical output codes (got ${codes:-none})" awk -v v="$codes" 'BEGIN { exit !(v != "" && v == 0) }'
expect_exit 0 "fmnist_cnn: quantize w3a8 group 32" "$QTOOL" quantize models/fmnist_cnn.onnx \
	--calib "$MQ/fmnist_cnn.calib.json" --bits w3a8 --group-size 32 -o "$MQ/cnn_w3g32.qmod"
expect_exit 0 "fmnist_cnn w3a8 g32: inspect" "$QTOOL" inspect "$MQ/cnn_w3g32.qmod"
bpw=$(awk '$1 == "total" { print $NF }' <<<"$OUT")
check "fmnist_cnn w3a8 g32: total bits/weight incl. scales <= 3.30 (got ${bpw:-none})" \
	awk -v v="$bpw" 'BEGIN { exit !(v != "" && v > 3 && v <= 3.30) }'
expect_exit 0 "fmnist_cnn w3a8 g32: integer runtime vs float simulation" "$QTOOL" eval "$MQ/cnn_w3g32.qmod" \
	--simulate --data fashion-mnist:test "${W3_LIMIT[@]}" --reference "$MQ/cnn_w3g32.qmod"
codes=$(sed -n 's/^max abs difference: .*(\([0-9.]*\) codes.*/\1/p' <<<"$OUT")
check "fmnist_cnn w3a8 g32: output codes at most 1 apart (got ${codes:-none})" \
	awk -v v="$codes" 'BEGIN { exit !(v != "" && v <= 1) }'
