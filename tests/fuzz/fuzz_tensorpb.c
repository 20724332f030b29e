/*
 * libFuzzer target for the TensorProto reader (backend test-data .pb files):
 * any bytes must give a consistent owned tensor or a refusal naming the
 * input. Corpus: tests/fuzz/corpus/tensorpb/ (replayed by `make test`):
 * input_N.pb / output_N.pb files from Debian's libonnx-testdata 1.12, named
 * DTYPE_TEST_FILE.pb (one per dtype, a scalar, a string tensor and a
 * SequenceProto that must be refused), plus truncated copies (.cutN.pb).
 * Regressions: tests/regress/fuzz_tensorpb/, named after what broke.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qtool/onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qt_tensor t;
	char name[64];
	if (qt_tensor_read_pb_mem(data, size, "fuzz", &t, name, sizeof name) != QT_OK) {
		if (t.data || strncmp(qt_error_msg(), "fuzz: ", 6) != 0)
			abort();
		return 0;
	}
	if (!t.owned || !t.data || t.nbytes != qt_dtype_nbytes(t.dtype, qt_tensor_numel(&t)) ||
	    memchr(name, '\0', sizeof name) == NULL)
		abort();
	/* Read every byte, so a short buffer shows up under ASan. */
	volatile uint8_t sum = 0;
	for (size_t i = 0; i < t.nbytes; i++)
		sum += ((const uint8_t *)t.data)[i];
	(void)sum;
	qt_tensor_free(&t);
	return 0;
}
