# The main job end to end on a bundled model: calibrate, quantize, eval,
# compare; determinism, the size bound, simulation agreement, bad input.
M=models/fmnist_cnn.onnx
D=$TMP/pipe
mkdir -p "$D"
model_sha=$(sha256sum <"$M")

expect_exit 0 "calibrate cnn (300 train samples)" "$QTOOL" calibrate "$M" --data fashion-mnist:train --limit 300 -o "$D/c.json"
check "calibration file written" test -s "$D/c.json"
expect_exit 0 "quantize w8a8" "$QTOOL" quantize "$M" --calib "$D/c.json" --bits w8a8 -o "$D/a.qmod"
expect_exit 0 "quantize w8a8 again" "$QTOOL" quantize "$M" --calib "$D/c.json" --bits w8a8 -o "$D/b.qmod"
# The command line is part of the provenance, so compare two runs of the same command.
cp "$D/a.qmod" "$D/first.qmod"
expect_exit 0 "quantize w8a8 a third time, same command" "$QTOOL" quantize "$M" --calib "$D/c.json" --bits w8a8 -o "$D/a.qmod"
check "writing is deterministic (byte-identical .qmod)" cmp -s "$D/a.qmod" "$D/first.qmod"

expect_exit 0 "inspect .qmod" "$QTOOL" inspect "$D/a.qmod"
size=$(sed -n 's/^size: \([0-9]*\) bytes; bound .* = \([0-9]*\)$/\1 \2/p' <<<"$OUT")
check "inspect prints the size bound" test -n "$size"
check ".qmod within 1.10 x (weights + qparams) + 8 KiB" test "${size% *}" -le "${size#* }"
check "inspect lists per-layer bits (weights, activations)" grep -Eq "Conv +8 +8 channel" <<<"$OUT"

expect_exit 0 "eval fp32 (1000 test samples)" "$QTOOL" eval "$M" --data fashion-mnist:test --limit 1000 --json "$D/base.json"
expect_exit 0 "eval w8a8 against fp32" "$QTOOL" eval "$D/a.qmod" --data fashion-mnist:test --limit 1000 \
	--reference "$M" --json "$D/q.json"
q1=$(sed -n 's/^top-1: *\([0-9.]*\)%.*/\1/p' <<<"$OUT")
agree=$(sed -n 's/^agreement with .*: \([0-9.]*\)% top-1/\1/p' <<<"$OUT")
check "w8a8 top-1 >= 88% on 1000 samples (got ${q1:-none})" num_ok "$q1" 'v >= 88'
check "w8a8 agrees with fp32 on >= 97% (got ${agree:-none})" num_ok "$agree" 'v >= 97'
check "report has metrics.top1 and reference.sqnr_db" grep -q '"sqnr_db"' "$D/q.json"
expect_exit 0 "compare passes within 0.5 points" "$QTOOL" compare "$D/base.json" "$D/q.json" --max-drop 0.5
check "compare prints a verdict" grep -q "^PASS: top-1" <<<"$OUT"
sed 's/"top1":\t[0-9.]*/"top1":\t10/' "$D/q.json" >"$D/worse.json"
expect_exit 1 "compare fails a 10% model" "$QTOOL" compare "$D/base.json" "$D/worse.json" --max-drop 0.5
check "compare says FAIL" grep -q "^FAIL: top-1" <<<"$OUT"

expect_exit 0 "integer runtime vs its float simulation" "$QTOOL" eval "$D/a.qmod" --simulate --data fashion-mnist:test \
	--limit 1000 --reference "$D/a.qmod"
codes=$(sed -n 's/^max abs difference: .*(\([0-9.]*\) codes.*/\1/p' <<<"$OUT")
sagree=$(sed -n 's/^agreement with .*: \([0-9.]*\)% top-1/\1/p' <<<"$OUT")
check "simulation within 1 output code of the integer runtime (got ${codes:-none})" num_ok "$codes" 'v <= 1'
check "simulation agrees on >= 99.9% (got ${sagree:-none})" num_ok "$sagree" 'v >= 99.9'

expect_exit 0 "quantize w4a8 group 32" "$QTOOL" quantize "$M" --calib "$D/c.json" --bits w4a8 --group-size 32 -o "$D/g.qmod"
expect_exit 0 "eval w4a8 g32" "$QTOOL" eval "$D/g.qmod" --data fashion-mnist:test --limit 200
expect_exit 0 "quantize with another range method, no recalibration" "$QTOOL" quantize "$M" --calib "$D/c.json" \
	--calib-method mse -o "$D/mse.qmod"

# Bad input.
expect_exit 2 "--bits w3a9 refused" "$QTOOL" quantize "$M" --calib "$D/c.json" --bits w3a9 -o "$D/x.qmod"
expect_err_line "--bits w3a9 says what is allowed" "w3a9"
check "no output after refused flags" test ! -e "$D/x.qmod"
expect_exit 2 "calibration for another model refused" "$QTOOL" quantize models/fmnist_mlp.onnx --calib "$D/c.json" -o "$D/x.qmod"
expect_err_line "other-model calibration names the file" "c\.json"
awk 'BEGIN { skip = 0; done = 0 }
     /^\t"tensors":/ { print; intensors = 1; next }
     intensors && !done && /^\t\t"/ { skip = 1 }
     skip { if ($0 ~ /^\t\t},?$/) { skip = 0; done = 1 } ; next }
     { print }' "$D/c.json" >"$D/missing.json"
expect_exit 2 "calibration missing a tensor refused" "$QTOOL" quantize "$M" --calib "$D/missing.json" -o "$D/x.qmod"
expect_err_line "missing tensor is named" 'no statistics for tensor'
check "no output after refused calibration" test ! -e "$D/x.qmod"
expect_exit 2 "output over the input refused" "$QTOOL" quantize "$M" --calib "$D/c.json" -o "$M"
head -c 3000 "$D/a.qmod" >"$D/trunc.qmod"
expect_exit 2 "truncated .qmod refused" "$QTOOL" eval "$D/trunc.qmod" --data fashion-mnist:test --limit 10
expect_err_line "truncated .qmod named" "trunc\.qmod"
cp "$D/a.qmod" "$D/flip.qmod"
printf '\x55' | dd of="$D/flip.qmod" bs=1 seek=5000 conv=notrunc status=none
expect_exit 2 "bit-flipped .qmod refused" "$QTOOL" eval "$D/flip.qmod" --data fashion-mnist:test --limit 10
expect_err_line "bit-flipped .qmod: CRC" "CRC mismatch"
# Real images of another size ([1,14,14]: the first 196 pixels of each), not a missing folder.
mkdir -p "$D/misfit"
# (Whole files first: a pipe cut short by head would fail under pipefail.)
zcat /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz >"$D/images.idx"
dd if="$D/images.idx" iflag=skip_bytes,count_bytes skip=16 count=$((4 * 196)) status=none | npy_f32 4,1,14,14 >"$D/misfit/x.npy"
npy_labels 4 >"$D/misfit/y.npy"
expect_exit 2 "eval of a dataset that does not fit the model" "$QTOOL" eval "$M" --data npy:"$D/misfit"
expect_err_line "the misfit names the model input and both shapes" 'samples are \[1,14,14\] but the model input "input" expects \[1,28,28\]'
expect_exit 2 "eval without --data" "$QTOOL" eval "$M"
expect_err_line "eval without --data says so" "--data"
check "the input model was never modified" test "$(sha256sum <"$M")" = "$model_sha"
