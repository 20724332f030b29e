# Datasets and eval: bad data gets one clear line and exit 2.
M=models/fmnist_mlp.onnx
DD=$TMP/data
mkdir -p "$DD"

# mknpy FILE DESCR SHAPE HEXBYTES: a version-1.0 .npy written byte by byte.
mknpy() {
	local hdr="{'descr': '$2', 'fortran_order': False, 'shape': $3, }"
	local total=$((10 + ${#hdr} + 1))
	local pad=$(( (64 - total % 64) % 64 ))
	local len=$(( ${#hdr} + pad + 1 ))
	{
		printf '\x93NUMPY\x01\x00'
		printf "\\x$(printf %02x $((len & 255)))\\x$(printf %02x $((len >> 8)))"
		printf '%s' "$hdr"
		printf '%*s' "$pad" ''
		printf '\n'
		printf "$4"
	} >"$1"
}

expect_exit 0 "eval mlp on 500 test images" "$QTOOL" eval "$M" --data fashion-mnist:test --limit 500 --json "$DD/r.json"
t1=$(sed -n 's/^top-1: *\([0-9.]*\)%.*/\1/p' <<<"$OUT")
check "mlp top-1 on 500 images >= 80% (got $t1)" awk -v v="$t1" 'BEGIN { exit !(v >= 80) }'
check "report: format" grep -q '"format":[[:space:]]*"qtool-eval-report"' "$DD/r.json"
check "report: model sha256" grep -q "\"sha256\":[[:space:]]*\"$(sha256sum "$M" | cut -d' ' -f1)\"" "$DD/r.json"
check "report: dataset spec" grep -q '"spec":[[:space:]]*"fashion-mnist:test"' "$DD/r.json"
check "report: command line" grep -q '"command":[[:space:]]*".*eval' "$DD/r.json"
check "report: per-class accuracy" grep -q '"per_class"' "$DD/r.json"
check "report: top5 and samples/s" grep -q '"samples_per_second"' "$DD/r.json"
expect_exit 0 "eval with --offset and --batch 1" "$QTOOL" eval "$M" --data fashion-mnist:test --offset 9990 --batch 1
check "10 samples after offset 9990" grep -q "(10 samples)" <<<"$OUT"

F=/usr/share/datasets/fashion-mnist
expect_exit 2 "label count differs from image count" "$QTOOL" eval "$M" --data "idx:$F/train-images-idx3-ubyte.gz,$F/t10k-labels-idx1-ubyte.gz"
expect_err_line "label mismatch explained" "label"
expect_exit 2 "spec naming a missing file" "$QTOOL" eval "$M" --data "idx:$DD/nope.gz,$DD/nope2.gz"
expect_err_line "missing file named" "nope\.gz"
expect_exit 2 "offset beyond the end" "$QTOOL" eval "$M" --data fashion-mnist:test --offset 10000
expect_exit 2 "--limit 0 refused" "$QTOOL" eval "$M" --data fashion-mnist:test --limit 0
expect_exit 2 "unknown dataset kind" "$QTOOL" eval "$M" --data frob:x
mkdir -p "$DD/small" "$DD/nan" "$DD/empty"
mknpy "$DD/small/x.npy" '<f4' '(1, 1, 2, 2)' '\x00\x00\x80\x3f\x00\x00\x80\x3f\x00\x00\x80\x3f\x00\x00\x80\x3f'
mknpy "$DD/small/y.npy" '<i8' '(1,)' '\x01\x00\x00\x00\x00\x00\x00\x00'
expect_exit 2 "images that do not fit the model" "$QTOOL" eval "$M" --data "npy:$DD/small"
expect_err_line "shape mismatch names the model input" 'model input "input"'
zeros=$(printf '\\x00%.0s' $(seq 1 3132))
mknpy "$DD/nan/x.npy" '<f4' '(1, 1, 28, 28)' "\\x00\\x00\\xc0\\x7f$zeros"
mknpy "$DD/nan/y.npy" '<i8' '(1,)' '\x01\x00\x00\x00\x00\x00\x00\x00'
expect_exit 2 "NaN in a .npy" "$QTOOL" eval "$M" --data "npy:$DD/nan"
expect_err_line "NaN reported with its place" "NaN"
mknpy "$DD/empty/x.npy" '<f4' '(0, 1, 28, 28)' ''
mknpy "$DD/empty/y.npy" '<i8' '(0,)' ''
expect_exit 2 "empty dataset" "$QTOOL" eval "$M" --data "npy:$DD/empty"
expect_err_line "empty dataset explained" "empty|no samples|0 samples"
