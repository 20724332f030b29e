# qtool export: QDQ ONNX that loads back into qtool and that ONNX Runtime runs.
#  - round trip: the exported file loads with qtool's own ONNX loader and its
#    FP32 runtime (QuantizeLinear/DequantizeLinear ops) picks the same class
#    as the .qmod's float simulation on every image, with output codes at
#    most 1 apart (ONNX requantizes the float sum, ties to even; the
#    simulation recovers the integer accumulator and applies the runtime's
#    multiplier and shift, so a code near a half step can move by one);
#  - int4 weights (opset 21) and uint4 activations export; a grouped conv
#    whose groups do not cover whole kernel windows and 2-bit weights exit 2
#    with one line naming the layer; an ONNX file given as the input exits 2;
#  - scripts/ort_check.sh on 2000 test images of every bundled model (needs
#    onnxruntime-node from npm; a loud SKIP line when it cannot be installed).
EX=$TMP/export
mkdir -p "$EX"
"$QTOOL" calibrate models/fmnist_cnn.onnx --data fashion-mnist:train --limit 500 -o "$EX/cnn.calib.json" >/dev/null
"$QTOOL" quantize models/fmnist_cnn.onnx --calib "$EX/cnn.calib.json" -o "$EX/cnn.qmod" >/dev/null

expect_exit 0 "export: --help" "$QTOOL" export --help
check "export: --help has examples" grep -q "examples:" <<<"$OUT"
check "export: listed in qtool --help" sh -c "'$QTOOL' --help | grep -q '^  export '"
expect_exit 0 "export: cnn w8a8" "$QTOOL" export "$EX/cnn.qmod" -o "$EX/cnn.qdq.onnx"
check "export: opset 13 for w8a8" grep -q "opset 13" <<<"$OUT"

# sim_vs_export NAME QMOD ONNX: the export on qtool's FP32 runtime against the simulation.
sim_vs_export() {
	expect_exit 0 "$1: exported ONNX loads back (inspect)" "$QTOOL" inspect "$3"
	check "$1: inspect shows QuantizeLinear" grep -q "^ops:.* QuantizeLinear=" <<<"$OUT"
	check "$1: inspect shows DequantizeLinear" grep -q "^ops:.* DequantizeLinear=" <<<"$OUT"
	expect_exit 0 "$1: exported ONNX on qtool's FP32 runtime vs float simulation" "$QTOOL" eval "$2" --simulate \
		--data fashion-mnist:test --limit 1000 --reference "$3"
	local agree sqnr codes
	agree=$(sed -n 's/^agreement with .*: \([0-9.]*\)% top-1/\1/p' <<<"$OUT")
	codes=$(sed -n 's/^max abs difference: .*(\([0-9.]*\) codes.*/\1/p' <<<"$OUT")
	check "$1: output codes at most 1 apart (got ${codes:-none})" awk -v v="$codes" 'BEGIN { exit !(v != "" && v <= 1) }'
	sqnr=$(sed -n 's/^SQNR: *\([0-9.inf]*\) dB/\1/p' <<<"$OUT")
	check "$1: same top-1 on 100% (got ${agree:-none})" awk -v v="$agree" 'BEGIN { exit !(v != "" && v >= 100) }'
	check "$1: SQNR vs simulation >= 40 dB (got ${sqnr:-none})" awk -v v="$sqnr" 'BEGIN { exit !(v != "" && (v == "inf" || v >= 40)) }'
}
sim_vs_export "export cnn w8a8" "$EX/cnn.qmod" "$EX/cnn.qdq.onnx"

"$QTOOL" quantize models/fmnist_cnn.onnx --calib "$EX/cnn.calib.json" --bits w8a4 -o "$EX/cnn_a4.qmod" >/dev/null
expect_exit 0 "export: cnn w8a4 (uint4 activations as uint8 codes in [0, 15])" "$QTOOL" export "$EX/cnn_a4.qmod" \
	-o "$EX/cnn_a4.qdq.onnx"
sim_vs_export "export cnn w8a4" "$EX/cnn_a4.qmod" "$EX/cnn_a4.qdq.onnx"

"$QTOOL" quantize models/fmnist_cnn.onnx --calib "$EX/cnn.calib.json" --bits w4a8 -o "$EX/cnn_w4.qmod" >/dev/null
expect_exit 0 "export: cnn w4a8 (int4 weights)" "$QTOOL" export "$EX/cnn_w4.qmod" -o "$EX/cnn_w4.qdq.onnx"
check "export: int4 weights need opset 21" grep -q "opset 21" <<<"$OUT"

"$QTOOL" quantize models/fmnist_cnn.onnx --calib "$EX/cnn.calib.json" --bits w4a8 --group-size 32 \
	-o "$EX/cnn_g32.qmod" >/dev/null
expect_exit 2 "export: groups of 32 across 3x3 windows are refused" "$QTOOL" export "$EX/cnn_g32.qmod" -o "$EX/g32.onnx"
expect_err_line "export: the refusal names the layer" '^qtool export: .*node ".*" \(Conv\): groups of 32 .*multiple of 9'
check "export: nothing written on refusal" test ! -e "$EX/g32.onnx"
"$QTOOL" quantize models/fmnist_cnn.onnx --calib "$EX/cnn.calib.json" --bits w4a8 --group-size 36 \
	-o "$EX/cnn_g36.qmod" >/dev/null
expect_exit 0 "export: groups of 36 (four 3x3 windows) become blocked scales" "$QTOOL" export "$EX/cnn_g36.qmod" \
	-o "$EX/cnn_g36.qdq.onnx"

"$QTOOL" quantize models/fmnist_cnn.onnx --calib "$EX/cnn.calib.json" --bits w2a8 -o "$EX/cnn_w2.qmod" >/dev/null
expect_exit 2 "export: 2-bit weights are refused" "$QTOOL" export "$EX/cnn_w2.qmod" -o "$EX/w2.onnx"
expect_err_line "export: the refusal names the layer and the type" '^qtool export: .*node ".*" \(Conv\): weight .* is int2'

expect_exit 2 "export: an ONNX file is not a .qmod" "$QTOOL" export models/fmnist_cnn.onnx -o "$EX/x.onnx"
expect_err_line "export: one line naming the file" '^qtool export: .*fmnist_cnn\.onnx'
expect_exit 2 "export: never over the input" "$QTOOL" export "$EX/cnn.qmod" -o "$EX/cnn.qmod"
expect_exit 2 "export: -o is required" "$QTOOL" export "$EX/cnn.qmod"

# ONNX Runtime, when npm can install it (exit 77 = skipped, said loudly by the script).
set +e
QTOOL=$QTOOL bash scripts/ort_check.sh --limit 2000 >"$TMP/ort.out" 2>"$TMP/ort.err"
ort_rc=$?
set -e
sed 's/^/     /' "$TMP/ort.out"
if [ "$ort_rc" -eq 77 ]; then
	echo "SKIP export: ONNX Runtime check ($(grep -m1 SKIP "$TMP/ort.out"))"
else
	check "export: ONNX Runtime agrees with qtool on every bundled model (scripts/ort_check.sh --limit 2000)" \
		test "$ort_rc" -eq 0
fi
