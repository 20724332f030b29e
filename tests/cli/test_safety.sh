# A CLI that cannot hurt: outputs to stdout, devices and FIFOs, early output
# checks, compare's refusals, flag parsing, the environment, hostile files.
M=models/fmnist_mlp.onnx
S=$TMP/safety
mkdir -p "$S"

# ---- outputs ----
expect_exit 0 "eval --json - writes the report to stdout" "$QTOOL" eval "$M" --data fashion-mnist:test --limit 20 --json -
check "stdout is the JSON report alone" bash -c '[ "${1:0:1}" = "{" ] && grep -q "\"format\":[[:space:]]*\"qtool-eval-report\"" <<<"$1"' _ "$OUT"
check "the text summary went to stderr" grep -q "^top-1:" <<<"$ERR"
check "no file named '-'" test ! -e ./-
# /dev/stdout is written as standard output, never renamed over (here stdout is a regular file).
expect_exit 0 "eval --json /dev/stdout" "$QTOOL" eval "$M" --data fashion-mnist:test --limit 20 --json /dev/stdout
check "/dev/stdout received the report" grep -q '"qtool-eval-report"' <<<"$OUT"
check "/dev/stdout is still a symbolic link" test -L /dev/stdout
# A FIFO is written in place.
mkfifo "$S/fifo"
cat "$S/fifo" >"$S/fifo.out" &
reader=$!
expect_exit 0 "eval --json FIFO" "$QTOOL" eval "$M" --data fashion-mnist:test --limit 20 --json "$S/fifo"
wait "$reader" || true
check "the FIFO is still a FIFO" test -p "$S/fifo"
check "the reader got the report through it" grep -q '"qtool-eval-report"' "$S/fifo.out"
# A symbolic link to a regular file: the target is replaced, the link stays.
echo old >"$S/target.json"
ln -s target.json "$S/link.json"
expect_exit 0 "eval --json through a symbolic link" "$QTOOL" eval "$M" --data fashion-mnist:test --limit 20 --json "$S/link.json"
check "the link is still a link" test -L "$S/link.json"
check "its target holds the report" grep -q '"qtool-eval-report"' "$S/target.json"
# -o - for calibrate (JSON) and quantize (binary, into a pipe or file).
expect_exit 0 "calibrate -o -" "$QTOOL" calibrate "$M" --data fashion-mnist:train --limit 32 -o -
printf '%s\n' "$OUT" >"$S/c.json"
check "calibrate's stdout is the calibration file" grep -q '"tensors"' "$S/c.json"
check "calibrate's summary went to stderr" grep -q "^wrote -" <<<"$ERR"
set +e
"$QTOOL" quantize "$M" --calib "$S/c.json" -o - >"$S/stdout.qmod" 2>"$S/q.err"
rc=$?
set -e
check "quantize -o - exits 0 (got $rc)" test "$rc" -eq 0
expect_exit 0 "the .qmod written to stdout is valid" "$QTOOL" inspect "$S/stdout.qmod"

# ---- every output path is checked before the work: the error names the output, not the later failure ----
for cmdline in "eval $M --data npy:$S/no-such-data --json" \
	"calibrate $M --data npy:$S/no-such-data -o" \
	"quantize $M --calib $S/no-such-calib.json -o"; do
	name=${cmdline%% *}
	# shellcheck disable=SC2086
	expect_exit 2 "$name: output in a missing folder refused first" "$QTOOL" $cmdline "$S/missing/out"
	expect_err_line "$name: the error names the output's folder" "missing/out: cannot write into folder"
	# shellcheck disable=SC2086
	expect_exit 2 "$name: output that is a folder refused first" "$QTOOL" $cmdline "$S"
	expect_err_line "$name: says it is a folder" "is a folder"
done
expect_exit 2 "run: output folder under a file refused first" "$QTOOL" run "$M" --input input="$S/none.npy" -o "$S/c.json/out"
expect_err_line "run: names the output folder" "c\.json/out: cannot create folder"

# ---- compare refuses reports made on other samples ----
ev() { "$QTOOL" eval "$M" --data "$@" >/dev/null; }
ev fashion-mnist:test --limit 50 --json "$S/l50.json"
ev fashion-mnist:test --limit 60 --json "$S/l60.json"
ev fashion-mnist:test --offset 10 --limit 50 --json "$S/o10.json"
expect_exit 0 "compare: the same subset passes" "$QTOOL" compare "$S/l50.json" "$S/l50.json"
expect_exit 2 "compare: different --limit refused" "$QTOOL" compare "$S/l50.json" "$S/l60.json"
expect_err_line "says --limit differs" "different --limit"
expect_exit 2 "compare: different --offset refused" "$QTOOL" compare "$S/l50.json" "$S/o10.json"
expect_err_line "says --offset differs" "different --offset"
sed 's/"samples":\t50,/"samples":\t49,/' "$S/l50.json" >"$S/n49.json"
expect_exit 2 "compare: different sample count refused" "$QTOOL" compare "$S/l50.json" "$S/n49.json"
expect_err_line "says the sample counts differ" "different sample counts"
printf '{"format": "idx", "images": "%s", "labels": "%s", "scale": 255, "mean": [0.2860], "std": [0.3530]}\n' \
	/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz >"$S/spec.json"
ev "$S/spec.json" --limit 50 --json "$S/p1.json"
sed -i 's/0.2860/0.5/' "$S/spec.json"
ev "$S/spec.json" --limit 50 --json "$S/p2.json"
expect_exit 2 "compare: same spec file, other preprocessing refused" "$QTOOL" compare "$S/p1.json" "$S/p2.json"
expect_err_line "says the preprocessing differs" "resolved files or preprocessing"

# ---- flags ----
expect_exit 0 "qtool help eval" "$QTOOL" help eval
check "help CMD prints CMD's help" grep -q "^usage: qtool eval" <<<"$OUT"
expect_exit 2 "qtool help frob" "$QTOOL" help frob
expect_exit 0 "--opt=value" "$QTOOL" eval "$M" --data=fashion-mnist:test --limit=10 --batch=3
check "--limit=10 took 10 samples" grep -q "(10 samples)" <<<"$OUT"
expect_exit 2 "a switch given a value" "$QTOOL" eval "$M" --data fashion-mnist:test --simulate=1
expect_err_line "says it takes no value" "--simulate takes no value"
expect_exit 2 "a repeated flag" "$QTOOL" eval "$M" --data fashion-mnist:test --limit 10 --limit 20
expect_err_line "names the repeated flag and both values" "--limit is given twice \('10' and '20'\)"
expect_exit 2 "a repeated switch" "$QTOOL" inspect "$M" --json --json
expect_exit 2 "QT_THREADS=abc refused" env QT_THREADS=abc "$QTOOL" inspect "$M"
expect_err_line "names QT_THREADS" "QT_THREADS='abc' must be an integer"
expect_exit 2 "QT_THREADS=0 refused" env QT_THREADS=0 "$QTOOL" inspect "$M"
expect_exit 0 "QT_THREADS=2 accepted" env QT_THREADS=2 "$QTOOL" inspect "$M"

# ---- eval's text shows the per-class accuracy its help promises ----
expect_exit 0 "eval prints per-class accuracy" "$QTOOL" eval "$M" --data fashion-mnist:test --limit 200
check "per-class line for classes 0 and 9" bash -c 'grep -q "^per-class top-1:" <<<"$1" && grep -Eq "(^| )0: [0-9.]+% of [0-9]+" <<<"$1" && grep -Eq " 9: [0-9.]+% of [0-9]+" <<<"$1"' _ "$OUT"

# ---- provenance: "qtool" and the arguments, not the binary's path ----
"$QTOOL" quantize "$M" --calib "$S/c.json" -o "$S/prov.qmod" >/dev/null
expect_exit 0 "inspect the .qmod's provenance" "$QTOOL" inspect --json "$S/prov.qmod"
check "command line starts with 'qtool quantize'" grep -q "\"command_line\":[[:space:]]*\"qtool quantize $M --calib" <<<"$OUT"
check "and does not hold the binary's path" bash -c '! grep -qF -- "$1" <<<"$2"' _ "$(dirname "$QTOOL")" "$OUT"

# ---- inputs that are not tensors, models that cannot run ----
ND=/usr/share/libonnx-testdata/data/node
expect_exit 2 "a sequence input is unsupported" "$QTOOL" run "$ND/test_identity_sequence/model.onnx" \
	--input x="$ND/test_identity_sequence/test_data_set_0/input_0.pb" -o "$S/seq"
expect_err_line "names the input and says unsupported" 'input "x" is not a tensor .*unsupported'
expect_exit 2 "an optional input is unsupported" "$QTOOL" run "$ND/test_optional_has_element_empty/model.onnx" \
	--input optional_input="$ND/test_optional_has_element_empty/test_data_set_0/input_0.pb" -o "$S/opt"
expect_exit 0 "inspect a model that cannot run on zeros" "$QTOOL" inspect "$ND/test_batchnorm_example_training_mode/model.onnx"
check "says which node failed and why" grep -Eq '^MACs: unknown \(.*node #0 \(BatchNormalization\): training_mode=1 is not supported' <<<"$OUT"

# ---- hostile files: bounded work (tests/regress/fuzz_qmod; before the fix this
# 2.4 KB file asked for 2.3 GB and minutes of work; timeout keeps a regression short) ----
head -c 192 /dev/zero | npy_f32 1,3,8,8 >"$S/x388.npy"
expect_exit 2 ".qmod with pads far beyond the kernel refused" timeout 60 "$QTOOL" run \
	tests/regress/fuzz_qmod/conv_pads_beyond_kernel.qmod --input x="$S/x388.npy" -o "$S/pads"
expect_err_line "names the node and the pads" 'node "conv" \(Conv\): pads \[20000,20000,20000,20000\] must be smaller than the kernel extent'
