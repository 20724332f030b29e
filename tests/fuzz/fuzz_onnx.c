/*
 * libFuzzer target for the ONNX model loader: any bytes must either load
 * into a graph that passes qt_graph_finalize or be refused with a message
 * starting with the label, never crash, leak or read out of bounds.
 * Corpus: tests/fuzz/corpus/onnx/ (replayed by `make test`): small models
 * copied from Debian's libonnx-testdata 1.12 (node/, pytorch-converted/,
 * simple/), each named after its test, chosen to cover initializers listed
 * as inputs, Constant nodes, typed-field and raw tensors, tensor, string and
 * graph attributes, subgraphs and sequence types; plus truncated copies
 * (NAME.cutN.onnx = the first N bytes). Regressions: tests/regress/fuzz_onnx/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qtool/graph.h"
#include "qtool/rt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qt_graph *g = NULL;
	if (qt_graph_load_onnx_mem(data, size, NULL, "fuzz", &g) != QT_OK) {
		/* A refusal leaves no graph and names the input. */
		if (g || strncmp(qt_error_msg(), "fuzz: ", 6) != 0)
			abort();
		return 0;
	}
	char buf[256];
	qt_rt_unsupported_ops(g, buf, sizeof buf);
	/* Touch what the later stages read, so bad pointers show up here. */
	for (int i = 0; i < g->n_nodes; i++) {
		const struct qt_node *n = &g->nodes[i];
		for (int k = 0; k < n->n_inputs; k++)
			if (n->inputs[k] < -1 || n->inputs[k] >= g->n_values)
				abort();
		for (int k = 0; k < n->n_outputs; k++)
			if (n->outputs[k] < -1 || n->outputs[k] >= g->n_values)
				abort();
	}
	for (int i = 0; i < g->n_values; i++) {
		const struct qt_tensor *t = g->values[i].init;
		if (t && t->nbytes != qt_dtype_nbytes(t->dtype, qt_tensor_numel(t)))
			abort();
	}
	qt_graph_free(g);
	return 0;
}
