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
# --limit 0 means every sample after --offset, for eval as for calibrate.
expect_exit 0 "eval --limit 0 takes all after the offset" "$QTOOL" eval "$M" --data fashion-mnist:test --offset 9990 --limit 0
check "eval --limit 0: 10 samples after offset 9990" grep -q "(10 samples)" <<<"$OUT"
expect_exit 0 "calibrate --limit 0 takes all after the offset" "$QTOOL" calibrate "$M" --data fashion-mnist:train \
	--offset 59990 --limit 0 -o "$DD/c10.json"
check "calibrate --limit 0: 10 samples after offset 59990" grep -q ", 10 samples," <<<"$OUT"
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

# ---- pb:DIR, folders of TensorProto files ----
# varint N: protobuf base-128 varint.
varint() {
	local v=$1 h
	while [ "$v" -ge 128 ]; do
		printf -v h %02x $(( (v & 127) | 128 ))
		printf "\\x$h"
		v=$((v >> 7))
	done
	printf -v h %02x "$v"
	printf "\\x$h"
}
# pbhead ONNX_TYPE NBYTES DIM...: a TensorProto's dims, data_type and the raw_data key and length.
pbhead() {
	local ty=$1 nb=$2 d
	shift 2
	for d in "$@"; do printf '\x08'; varint "$d"; done
	printf '\x10'; varint "$ty"
	printf '\x4a'; varint "$nb"
}
# mkpb FILE ONNX_TYPE RAWFILE DIM...: a TensorProto whose raw_data is RAWFILE's bytes.
mkpb() {
	local f=$1 ty=$2 raw=$3
	shift 3
	{ pbhead "$ty" "$(wc -c <"$raw")" "$@"; cat "$raw"; } >"$f"
}
# accuracy REPORT: the metrics of an eval report, without the speed.
accuracy() {
	local a
	a=$(sed -n '/"metrics"/,/"samples_per_second"/p' "$1" | grep -v samples_per_second || true)
	[ -n "$a" ] || a="no metrics in $1" # never equal for two missing reports
	printf '%s\n' "$a"
}
# differ A B: two reports that both hold a top-1 and whose accuracies differ
# (two missing reports would "differ" by their names alone).
differ() {
	grep -q '"top1"' "$1" && grep -q '"top1"' "$2" && ! cmp -s <(accuracy "$1") <(accuracy "$2")
}

# The first 100 test images as 0000.pb ... 0099.pb, uint8 [1,28,28], and labels.pb uint8 [100].
N=100
mkdir -p "$DD/raw" "$DD/pb" "$DD/sets"
# (Whole files first: a pipe cut short by head would fail under pipefail.)
zcat $F/t10k-images-idx3-ubyte.gz >"$DD/t10k-images.idx"
zcat $F/t10k-labels-idx1-ubyte.gz >"$DD/t10k-labels.idx"
dd if="$DD/t10k-images.idx" of="$DD/img.raw" iflag=skip_bytes,count_bytes skip=16 count=$((N * 784)) status=none
dd if="$DD/t10k-labels.idx" of="$DD/lab.raw" iflag=skip_bytes,count_bytes skip=8 count=$N status=none
split -b 784 -d -a 4 "$DD/img.raw" "$DD/raw/"
pbhead 2 784 1 28 28 >"$DD/head.bin"
for f in "$DD"/raw/*; do cat "$DD/head.bin" "$f" >"$DD/pb/${f##*/}.pb"; done
mkpb "$DD/pb/labels.pb" 2 "$DD/lab.raw" $N
check "$N per-sample .pb files written" test "$(ls "$DD/pb" | grep -c '^[0-9]*\.pb$')" -eq $N

IDX="idx:$F/t10k-images-idx3-ubyte.gz,$F/t10k-labels-idx1-ubyte.gz"
expect_exit 0 "eval on raw idx" "$QTOOL" eval "$M" --data "$IDX" --limit $N --json "$DD/idx.json"
expect_exit 0 "eval on pb:DIR" "$QTOOL" eval "$M" --data "pb:$DD/pb" --json "$DD/pb.json"
check "pb:DIR gives idx's accuracy and per-class counts" cmp -s <(accuracy "$DD/idx.json") <(accuracy "$DD/pb.json")
check "pb:DIR report resolves the files" grep -q "images=$DD/pb/NNNN.pb labels=$DD/pb/labels.pb stored=uint8\[1,28,28\]" "$DD/pb.json"
expect_exit 0 "idx with --offset/--limit" "$QTOOL" eval "$M" --data "$IDX" --offset 60 --limit 30 --json "$DD/idx2.json"
expect_exit 0 "pb:DIR with --offset/--limit" "$QTOOL" eval "$M" --data "pb:$DD/pb" --offset 60 --limit 30 --batch 7 --json "$DD/pb2.json"
check "offset/limit select the same samples" cmp -s <(accuracy "$DD/idx2.json") <(accuracy "$DD/pb2.json")
check "offset/limit report 30 samples" grep -q '"samples":[[:space:]]*30,\?$' "$DD/pb2.json"

# The bundled preprocessing from a JSON spec equals fashion-mnist:test.
printf '{"format": "pb", "images": "pb", "scale": 255, "mean": [0.2860], "std": [0.3530]}\n' >"$DD/pbspec.json"
expect_exit 0 "eval fashion-mnist:test --limit $N" "$QTOOL" eval "$M" --data fashion-mnist:test --limit $N --json "$DD/fm.json"
expect_exit 0 "eval JSON pb spec" "$QTOOL" eval "$M" --data "$DD/pbspec.json" --json "$DD/pbj.json"
check "JSON pb spec gives fashion-mnist:test's accuracy" cmp -s <(accuracy "$DD/fm.json") <(accuracy "$DD/pbj.json")
check "and both differ from raw pixels' accuracy" differ "$DD/fm.json" "$DD/idx.json"

# ONNX test-data layout: test_data_set_N/input_0.pb with the batch dim, [1,1,28,28].
pbhead 2 784 1 1 28 28 >"$DD/head4.bin"
for i in $(seq 0 19); do
	mkdir -p "$DD/sets/test_data_set_$i"
	printf -v r %04d "$i"
	cat "$DD/head4.bin" "$DD/raw/$r" >"$DD/sets/test_data_set_$i/input_0.pb"
done
dd if="$DD/lab.raw" of="$DD/lab20.raw" bs=20 count=1 status=none
mkpb "$DD/sets/labels.pb" 2 "$DD/lab20.raw" 20
expect_exit 0 "eval on test_data_set_N/input_0.pb" "$QTOOL" eval "$M" --data "pb:$DD/sets" --json "$DD/sets.json"
expect_exit 0 "eval idx --limit 20" "$QTOOL" eval "$M" --data "$IDX" --limit 20 --json "$DD/idx20.json"
check "test-data layout gives idx's accuracy" cmp -s <(accuracy "$DD/idx20.json") <(accuracy "$DD/sets.json")

# Bad folders: exit 2 and one line naming the file.
B=$DD/pbbad
rm -rf "$B"; mkdir -p "$B"; cp "$DD/pb/0000.pb" "$DD/pb/0001.pb" "$DD/pb/0002.pb" "$B/"
mkpb "$B/labels.pb" 2 "$DD/lab20.raw" 20
expect_exit 2 "pb labels count mismatch" "$QTOOL" eval "$M" --data "pb:$B"
expect_err_line "label count mismatch names labels.pb" "label count 20 \(.*/pbbad/labels\.pb\) != image count 3"
dd if="$DD/lab.raw" of="$DD/lab3.raw" bs=3 count=1 status=none
mkpb "$B/labels.pb" 2 "$DD/lab3.raw" 3
expect_exit 0 "3-sample pb folder evaluates" "$QTOOL" eval "$M" --data "pb:$B"
printf '\x08\x01\x10\x02\x4a\xff' >"$B/0001.pb"
expect_exit 2 "malformed .pb" "$QTOOL" eval "$M" --data "pb:$B"
expect_err_line "malformed .pb named" "pbbad/0001\.pb: truncated or not a TensorProto"
head -c 784 /dev/zero >"$DD/z784.raw"
head -c 3136 /dev/zero >"$DD/z3136.raw"
mkpb "$B/0001.pb" 2 "$DD/z784.raw" 28 28 1
expect_exit 2 ".pb of another shape" "$QTOOL" eval "$M" --data "pb:$B"
expect_err_line "shape difference names both files" "pbbad/0001\.pb: holds uint8\[28,28,1\] but sample 0 \(.*/pbbad/0000\.pb\) is uint8\[1,28,28\]"
{ printf '\x00\x00\xc0\x7f'; head -c 3132 /dev/zero; } >"$DD/nan.raw"
mkpb "$B/0001.pb" 1 "$DD/nan.raw" 1 28 28
mkpb "$B/0000.pb" 1 "$DD/z784.raw" 1 14 14 # float32 [1,14,14]: 196 * 4 bytes
expect_exit 2 ".pb that does not fit the model" "$QTOOL" eval "$M" --data "pb:$B"
expect_err_line "misfit names the model input" 'samples are \[1,14,14\] but the model input "input" expects \[1,28,28\]'
mkpb "$B/0000.pb" 1 "$DD/nan.raw" 1 28 28
mkpb "$B/0002.pb" 1 "$DD/z3136.raw" 1 28 28
{ head -c 40 /dev/zero; printf '\x00\x00\x80\x7f'; head -c 3092 /dev/zero; } >"$DD/inf.raw"
mkpb "$B/0001.pb" 1 "$DD/inf.raw" 1 28 28
expect_exit 2 "NaN in a .pb" "$QTOOL" eval "$M" --data "pb:$B"
expect_err_line "NaN named with file and element" "pbbad/0000\.pb: element 0 is NaN"
mkpb "$B/0000.pb" 1 "$DD/z3136.raw" 1 28 28
expect_exit 2 "Inf in a .pb" "$QTOOL" eval "$M" --data "pb:$B"
expect_err_line "Inf named with file and element" "pbbad/0001\.pb: element 10 is \+Inf"
mkdir -p "$DD/pbempty"
expect_exit 2 "empty pb folder" "$QTOOL" eval "$M" --data "pb:$DD/pbempty"
expect_err_line "empty folder explained" "pbempty holds no per-sample files 0000\.pb"
expect_exit 2 "missing pb folder" "$QTOOL" eval "$M" --data "pb:$DD/nope"
expect_err_line "missing folder named" "cannot open .*/nope: No such file or directory"
