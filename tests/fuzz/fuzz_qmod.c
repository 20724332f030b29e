/*
 * libFuzzer harness for the .qmod reader and the integer runtime behind it:
 * read, prepare, and run once on a zero input of the declared shape (batch 1);
 * then export the graph as QDQ ONNX (qtool export) and load that back.
 * Fuzz builds skip the CRC checks (FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION)
 * so mutations reach the structural validation.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "qtool/onnx.h"
#include "qtool/qmod.h"
#include "qtool/rt.h"
#include "../../lib/rt/qmodel_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qt_graph *g = NULL;
	if (qt_qmod_read_mem(data, size, "fuzz.qmod", &g) != QT_OK)
		return 0;
	struct qt_qmod_summary s;
	qt_qmod_summarize(g, &s);
	struct qt_qrt *q = NULL;
	if (g->n_inputs == 1 && g->n_outputs >= 1 && g->n_outputs <= 16 && qt_qrt_new(g, &q) == QT_OK) {
		int64_t dims[QT_MAX_RANK], n = 1;
		int r = qt_graph_input_dims(g, 0, 1, dims);
		for (int i = 0; i < r; i++)
			n *= dims[i] > 0 && dims[i] < 4096 ? dims[i] : 1 << 30;
		struct qt_tensor x = {0}, y[16] = {{0}};
		if (r >= 0 && n <= (1 << 16) && qt_tensor_alloc(&x, g->values[g->inputs[0]].dtype, r, dims) == QT_OK &&
		    qt_qrt_run(q, &x, y) == QT_OK)
			for (int i = 0; i < g->n_outputs; i++)
				qt_tensor_free(&y[i]);
		qt_tensor_free(&x);
		qt_qrt_free(q);
	}
	uint8_t *onnx = NULL;
	size_t onnx_len = 0;
	if (qt_onnx_export_qdq(g, &onnx, &onnx_len, NULL) == QT_OK) {
		struct qt_graph *back = NULL;
		if (qt_graph_load_onnx_mem(onnx, onnx_len, NULL, "fuzz.qdq.onnx", &back) == QT_OK)
			qt_graph_free(back);
		free(onnx);
	}
	qt_graph_free(g);
	return 0;
}
