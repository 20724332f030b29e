# qtool basics: help, version, inspect, run, and bad input on the ONNX side.
ND=/usr/share/libonnx-testdata/data/node
CONV=$ND/test_conv_with_strides_padding

expect_exit 0 "--help exits 0" "$QTOOL" --help
check "--help lists commands" grep -q "inspect" <<<"$OUT"
expect_exit 0 "--version" "$QTOOL" --version
check "--version prints the version" grep -Eq "^qtool [0-9]+\.[0-9]+\.[0-9]+" <<<"$OUT"
expect_exit 2 "unknown command exits 2" "$QTOOL" frobnicate
expect_err_line "unknown command: one line" "unknown command 'frobnicate'"
for c in inspect run eval compare calibrate quantize; do
	expect_exit 0 "$c --help exits 0" "$QTOOL" "$c" --help
	check "$c --help has usage" grep -q "usage: qtool $c" <<<"$OUT"
done

expect_exit 0 "inspect conv model" "$QTOOL" inspect "$CONV/model.onnx"
check "inspect shows input x" grep -Eq "^input +x +float32 +\[1,1,7,5\]" <<<"$OUT"
check "inspect shows MACs" grep -q "MACs total: " <<<"$OUT"
expect_exit 0 "inspect --json" "$QTOOL" inspect --json "$CONV/model.onnx"
check "inspect --json has macs_total" grep -q '"macs_total"' <<<"$OUT"

expect_exit 0 "run conv model on .pb inputs" "$QTOOL" run "$CONV/model.onnx" --input x="$CONV/test_data_set_0/input_0.pb" \
	--input W="$CONV/test_data_set_0/input_1.pb" --output "$TMP/run1" --stats
check "run wrote y.npy" test -s "$TMP/run1/y.npy"
check "run --stats prints peak memory" grep -q "peak activation memory" <<<"$ERR"

# Bad input: one clear line naming the file, exit 2, no output file.
head -c 100 "$CONV/model.onnx" >"$TMP/trunc.onnx"
expect_exit 2 "truncated model exits 2" "$QTOOL" inspect "$TMP/trunc.onnx"
expect_err_line "truncated model names the file" "trunc\.onnx"
head -c 4096 /dev/urandom >"$TMP/garbage.onnx"
expect_exit 2 "garbage model exits 2" "$QTOOL" inspect "$TMP/garbage.onnx"
expect_err_line "garbage model names the file" "garbage\.onnx"
expect_exit 2 "missing model exits 2" "$QTOOL" inspect "$TMP/nope.onnx"
expect_err_line "missing model names the file" "nope\.onnx"
expect_exit 2 "unknown input name exits 2" "$QTOOL" run "$CONV/model.onnx" --input nope="$CONV/test_data_set_0/input_0.pb" --output "$TMP/run2"
expect_err_line "unknown input name is named" 'no input "nope"'
check "no output folder after a failed run" test ! -e "$TMP/run2"
expect_exit 2 "missing input value exits 2" "$QTOOL" run "$CONV/model.onnx" --input x="$CONV/test_data_set_0/input_0.pb" --output "$TMP/run3"
expect_err_line "missing input is named" 'no value for input "W"'
# Wrong shape: W given where x is expected.
expect_exit 2 "wrong input shape exits 2" "$QTOOL" run "$CONV/model.onnx" --input x="$CONV/test_data_set_0/input_1.pb" \
	--input W="$CONV/test_data_set_0/input_0.pb" --output "$TMP/run4"
expect_err_line "wrong input shape names the input" 'input "x"'
# A .pb holding a SequenceProto or OptionalProto (the ONNX test suite stores
# them in the same input_N.pb files) is unsupported, exit 2, the file named;
# read as a TensorProto, the name "sequence" once became dims of an 8 GiB
# tensor (exit 1). Bytes: name, elem_type 1 (tensor), one TensorProto element
# (dims [1], float, raw 1.0).
elem='\x1a\x0a\x08\x01\x10\x01\x4a\x04\x00\x00\x80\x3f'
printf "\x0a\x08sequence\x10\x01$elem$elem" >"$TMP/seq.pb"
printf "\x0a\x03opt\x10\x01$elem" >"$TMP/opt.pb"
printf '\x0a\x0eoptional_input\x10\x00' >"$TMP/opt_empty.pb"
for f in seq opt opt_empty; do
	expect_exit 2 "run: a $f .pb input is unsupported (exit 2)" "$QTOOL" run "$CONV/model.onnx" \
		--input x="$TMP/$f.pb" --input W="$CONV/test_data_set_0/input_1.pb" --output "$TMP/run_$f"
	expect_err_line "run: ... names $f.pb and says unsupported" "$f\\.pb: a SequenceProto or OptionalProto.*unsupported"
	check "run: no output folder after the $f .pb" test ! -e "$TMP/run_$f"
done
mkdir -p "$TMP/seqdata"
cp "$TMP/seq.pb" "$TMP/seqdata/0000.pb"
expect_exit 2 "eval: a sequence .pb sample is unsupported (exit 2)" "$QTOOL" eval tests/zoo/resnet18.onnx \
	--data "pb:$TMP/seqdata" --reference tests/zoo/resnet18.onnx
expect_err_line "eval: ... names the file" "0000\\.pb: a SequenceProto or OptionalProto.*unsupported"
expect_exit 2 "bad flag exits 2" "$QTOOL" run --frob
expect_err_line "bad flag is named" "unknown option '--frob'"

# OpenBLAS on a CPU model it does not know falls back to its SSE3 "Prescott"
# kernels (8x slower on an AVX-512 Xeon): qtool re-runs itself with
# OPENBLAS_CORETYPE set to what the CPU supports, and never overrides a value
# the user set.
expect_exit 0 "bench: runs" env -u OPENBLAS_CORETYPE "$QTOOL" bench models/fmnist_cnn.onnx --iters 1 --warmup 0
blas=$(sed -n 's/^blas: OpenBLAS \(.*\) kernels$/\1/p' <<<"$OUT")
if grep -qw avx2 /proc/cpuinfo; then
	check "bench: OpenBLAS kernels for this CPU's ISA on an AVX2 machine, not '$blas'" \
		test -n "$blas" -a "$blas" != Prescott
fi
expect_exit 0 "bench: runs with OPENBLAS_CORETYPE=Prescott" env OPENBLAS_CORETYPE=Prescott "$QTOOL" bench \
	models/fmnist_cnn.onnx --iters 1 --warmup 0
check "bench: ... and keeps the user's OpenBLAS core" grep -q "^blas: OpenBLAS Prescott kernels$" <<<"$OUT"
