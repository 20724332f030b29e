/*
 * Float simulation of a quantized graph (fake quantization): weights and
 * biases are replaced by their dequantized values and every quantized
 * activation is rounded to its grid (quantize, then dequantize) as the FP32
 * executor produces it. PTQ methods use this to measure a choice without the
 * integer runtime; tests use it to check the integer runtime agrees.
 *
 * Float throughout, by design. Rounding: nearbyint (ties to even), the same
 * as qt_quantize_one.
 */
#include <string.h>

#include "qtool/quant.h"

enum qt_status qt_fakequant_prepare(struct qt_graph *g)
{
	for (int v = 0; v < g->n_values; v++) {
		struct qt_value *val = &g->values[v];
		if (!val->init || !val->q)
			continue;
		struct qt_tensor tmp = {0};
		enum qt_status st = qt_dequantize_value(val, &tmp);
		if (st)
			return st;
		struct qt_tensor *t = qt_graph_alloc(g, sizeof *t);
		void *d = qt_graph_alloc(g, tmp.nbytes ? tmp.nbytes : 1);
		if (!t || !d) {
			qt_tensor_free(&tmp);
			return qt_error(QT_E_NOMEM, "out of memory");
		}
		*t = tmp;
		memcpy(d, tmp.data, tmp.nbytes);
		qt_tensor_free(&tmp);
		t->data = d;
		t->owned = 0;
		val->init = t;
		val->dtype = QT_DTYPE_F32;
		val->q = NULL;
	}
	return QT_OK;
}

enum qt_status qt_fakequant_observer(void *graph, int value, struct qt_tensor *t)
{
	const struct qt_graph *g = graph;
	const struct qt_qparams *q = g->values[value].q;
	if (!q || t->dtype != QT_DTYPE_F32)
		return QT_OK;
	int32_t qmin, qmax;
	qt_qtype_range(q->qtype, &qmin, &qmax);
	float s = q->scale[0];
	int32_t z = q->zero_point[0];
	float *d = t->data;
	for (int64_t i = 0, n = qt_tensor_numel(t); i < n; i++)
		d[i] = s * (float)(qt_quantize_one(d[i], s, z, qmin, qmax) - z);
	return QT_OK;
}
