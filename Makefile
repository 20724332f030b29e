# qtool build. GNU Make, C11.
#
#   make            build build/qtool and build/libqtool.a (release)
#   make test       build and run every test (unit, CLI, fuzz-corpus replay)
#   make test SAN=1 the same under AddressSanitizer + UBSan (objects in build/san)
#   make conformance  ONNX backend tests from Debian's libonnx-testdata
#   make demo       quantize and evaluate the bundled default model
#   make bench      throughput of the FP32 and integer runtimes, time of GPTQ
#   make results-ort  ONNX Runtime on qtool's QDQ export vs the integer runtime (npm)
#   make bench-ort  qtool against ONNX Runtime at 224x224 (scripts/bench_ort.sh)
#   make fuzz       libFuzzer targets (clang), 60 s each
#   make deps       install the Debian packages qtool needs
#   make models     retrain the bundled models (needs python3-torch)

CC ?= cc
ifeq ($(CC),cc)
CC := gcc
endif

ifeq ($(SAN),1)
CONFIG := san
OPT := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDSAN := -fsanitize=address,undefined
else ifeq ($(DEBUG),1)
CONFIG := debug
OPT := -O0 -g
LDSAN :=
else
CONFIG := release
# Integer loops (depthwise rows, im2col runs, tables) need the vectorizer with
# epilogues, which -O2 alone (cost model "very cheap") skips. No -ffast-math:
# float code keeps its IEEE semantics and order, so results are unchanged.
OPT := -O2 -g -DNDEBUG -fvect-cost-model=dynamic
LDSAN :=
endif

B := build/$(CONFIG)
GEN := build/gen
ONNX_PROTO ?= /usr/include/onnx/onnx.proto

BLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
BLAS_LIBS := $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)

# Truncating an over-long error message is intended, hence no format-truncation.
WARN := -Wall -Wextra -Werror -Wno-unused-parameter -Wno-format-truncation
CFLAGS_COMMON := -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -fvisibility=hidden -Iinclude -I$(GEN) -Ilib $(BLAS_CFLAGS)
LDLIBS := -lprotobuf-c -lcjson -lz -lglpk $(BLAS_LIBS) -lm -lpthread

# Per-folder ISA flags: intrinsics live only under lib/kernels/x86/.
ISA_FLAGS_avx2 := -mavx2 -mfma -mf16c
ISA_FLAGS_avx512vnni := -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx2 -mfma

LIB_SRC := $(sort $(wildcard lib/core/*.c lib/ir/*.c lib/rt/*.c lib/quant/*.c lib/kernels/*.c lib/kernels/ref/*.c \
	formats/*/*.c calib/*.c))
X86_AVX2_SRC := $(sort $(wildcard lib/kernels/x86/avx2/*.c))
X86_VNNI_SRC := $(sort $(wildcard lib/kernels/x86/avx512vnni/*.c))
CLI_SRC := $(sort $(wildcard cli/*.c))
UNIT_SRC := $(sort $(wildcard tests/unit/*.c))
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))

PB_SRC := $(GEN)/onnx.pb-c.c
LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o) $(B)/gen/onnx.pb-c.o \
	$(X86_AVX2_SRC:%.c=$(B)/%.o) $(X86_VNNI_SRC:%.c=$(B)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(B)/%.o)
UNIT_OBJ := $(UNIT_SRC:%.c=$(B)/%.o)

QTOOL := $(B)/qtool
LIBQT := $(B)/libqtool.a
UNIT_BIN := $(B)/tests/unit_tests
CONF_BIN := $(B)/tests/run_conformance

.PHONY: all test unit cli-test conformance demo bench fuzz fuzz-replay deps models clean results results-ort

all: $(QTOOL) $(LIBQT)
	@ln -sf $(CONFIG)/qtool build/qtool
	@ln -sf $(CONFIG)/libqtool.a build/libqtool.a

$(GEN)/onnx.pb-c.c $(GEN)/onnx.pb-c.h: $(ONNX_PROTO)
	@mkdir -p $(GEN)
	protoc-c --c_out=$(GEN) -I$(dir $(ONNX_PROTO)) $(ONNX_PROTO)

$(B)/gen/onnx.pb-c.o: $(GEN)/onnx.pb-c.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -Wno-error -c $< -o $@

# Every object may include the generated header; build it first.
$(B)/%.o: %.c | $(GEN)/onnx.pb-c.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -MMD -MP -c $< -o $@

$(B)/lib/kernels/x86/avx2/%.o: lib/kernels/x86/avx2/%.c | $(GEN)/onnx.pb-c.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) $(ISA_FLAGS_avx2) -MMD -MP -c $< -o $@

$(B)/lib/kernels/x86/avx512vnni/%.o: lib/kernels/x86/avx512vnni/%.c | $(GEN)/onnx.pb-c.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) $(ISA_FLAGS_avx512vnni) -MMD -MP -c $< -o $@

$(LIBQT): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(QTOOL): $(CLI_OBJ) $(LIBQT)
	$(CC) $(LDSAN) -o $@ $(CLI_OBJ) $(LIBQT) $(LDLIBS)

$(UNIT_BIN): $(UNIT_OBJ) $(LIBQT)
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) -o $@ $(UNIT_OBJ) $(LIBQT) -lcriterion $(LDLIBS)

$(CONF_BIN): $(B)/tests/conformance/conformance.o $(LIBQT)
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) -o $@ $< $(LIBQT) $(LDLIBS)

# `make test` sets up first (deps, build), then runs every suite; the last
# line of each suite is its own "N passed, N failed" summary.
test: deps-check all $(UNIT_BIN) fuzz-replay-bin
	@echo "== unit tests ($(CONFIG))"
	$(UNIT_BIN) -j2
	@echo "== fuzz corpus replay ($(CONFIG))"
	QTOOL_BUILD=$(B) bash tests/fuzz/replay.sh
	@echo "== CLI tests ($(CONFIG))"
	QTOOL=$(QTOOL) bash tests/cli/run.sh

unit: $(UNIT_BIN)
	$(UNIT_BIN)

conformance: deps-check $(CONF_BIN)
	$(CONF_BIN) --skip-list tests/conformance/skip.txt /usr/share/libonnx-testdata/data

# Replaying the fuzz corpora needs no clang: the same harness is linked with a
# small driver that feeds each file once.
FUZZ_REPLAY := $(FUZZ_SRC:tests/fuzz/%.c=$(B)/tests/fuzz/replay_%)
fuzz-replay-bin: $(FUZZ_REPLAY)
$(B)/tests/fuzz/replay_%: $(B)/tests/fuzz/%.o $(B)/tests/fuzz/replay_main.o $(LIBQT)
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)

fuzz: $(GEN)/onnx.pb-c.h
	bash tests/fuzz/run_fuzz.sh 60

bench: deps-check all $(B)/bench_kernels $(B)/bench_gptq
	bash scripts/bench.sh

# qtool against ONNX Runtime (npm onnxruntime-node into build/ort) on
# torchvision models at 224x224; BENCH_ORT_WRITE=1 updates docs/RESULTS.md.
.PHONY: bench-ort
bench-ort: all
	bash scripts/bench_ort.sh $(B)/qtool

# GOPS of the reference and of each kernel in lib/kernels/kernels.def.
.PHONY: bench-kernels
bench-kernels: $(B)/bench_kernels
	$(B)/bench_kernels
$(B)/bench_kernels: $(B)/tests/bench/bench_kernels.o $(LIBQT)
	$(CC) $(LDSAN) -o $@ $< $(LIBQT) $(LDLIBS)

# Time of the GPTQ step for one 4096x4096 Gemm over 2048 input rows (and of
# accumulating its H), wall clock, best of 3.
.PHONY: bench-gptq
bench-gptq: $(B)/bench_gptq
	$(B)/bench_gptq
$(B)/bench_gptq: $(B)/tests/bench/bench_gptq.o $(LIBQT)
	$(CC) $(LDSAN) -o $@ $< $(LIBQT) $(LDLIBS)

# Developer tool: per-value SQNR of a .qmod's float simulation against its FP32
# model (tests/tools/trace_sqnr.c says how to read it).
.PHONY: trace-sqnr
trace-sqnr: $(B)/trace_sqnr
$(B)/trace_sqnr: $(B)/tests/tools/trace_sqnr.o $(LIBQT)
	$(CC) $(LDSAN) -o $@ $< $(LIBQT) $(LDLIBS)

demo: deps-check all
	bash scripts/demo.sh $(B)/qtool

results: all $(B)/bench_kernels
	bash scripts/results.sh

# ONNX Runtime on `qtool export`'s QDQ models against qtool's integer runtime,
# all 10k test images; writes its section of docs/RESULTS.md (installs
# onnxruntime-node from npm into build/ort; `make test` runs 2000 images).
results-ort: all
	QTOOL=$(QTOOL) bash scripts/ort_check.sh --limit 10000 --results

models:
	/usr/bin/python3 scripts/train_models.py

# Installs the Debian packages; run as root (apt-get) or prints the command.
deps:
	@bash scripts/deps.sh

# Cheap check used by test/demo: install only when something is missing.
deps-check:
	@bash scripts/deps.sh --check-or-install

clean:
	rm -rf build

-include $(shell find build/$(CONFIG) -name '*.d' 2>/dev/null)
