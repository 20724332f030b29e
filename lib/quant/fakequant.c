/*
 * Float simulation of a quantized graph (fake quantization): weights and
 * biases are replaced by their dequantized values and every quantized
 * activation is rounded to its grid (quantize, then dequantize) as the FP32
 * executor produces it. PTQ methods use this to measure a choice without the
 * integer runtime; tests use it to check the integer runtime agrees.
 *
 * Float throughout, by design. Rounding: nearbyint (ties to even), the same
 * as qt_quantize_one, except at the output of a requantized weighted op:
 * there the simulation recovers the integer accumulator from the float sum
 * (sum / unit, nearest integer; exact while the float error stays under half
 * a unit, i.e. for accumulators far below 2^24 units) and applies the
 * integer runtime's own rule (lib/kernels/kernels.h). Rounding the float sum
 * directly would differ from the runtime whenever it lands within float
 * error of a half code, and in a deep model (a ViT's LayerNorms amplify)
 * those single-code slips grow to several codes at the output.
 */
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "qtool/quant.h"

/*
 * For each requantized weighted node: the real value of one accumulator unit
 * per requantization entry, and for grouped weights the group scales the
 * runtime effectively uses (S[c] * r / 2^15 with its integer ratios r), so
 * the dequantized weights are the runtime's.
 */
static enum qt_status prepare_exact_rounding(struct qt_graph *g)
{
	for (int i = 0; i < g->n_nodes; i++) {
		struct qt_node *n = &g->nodes[i];
		if (!n->rq || !qt_is_weighted_op(n) || n->n_inputs < 2 || n->inputs[0] < 0 || n->inputs[1] < 0)
			continue;
		const struct qt_qparams *xq = g->values[n->inputs[0]].q;
		struct qt_qparams *wq = g->values[n->inputs[1]].q;
		if (!xq || !wq || wq->count < 1)
			continue;
		int cnt = n->rq->count;
		int64_t C = wq->scheme == QT_QSCHEME_TENSOR ? 1 : wq->scheme == QT_QSCHEME_CHANNEL ? wq->count : 0;
		int64_t ng = 1;
		if (wq->scheme == QT_QSCHEME_GROUP) {
			C = cnt;
			ng = C > 0 ? wq->count / C : 0;
			if (ng < 1 || C * ng != wq->count)
				continue;
		}
		if (C != cnt && !(cnt == 1 && C == 1))
			continue; /* not a layout the quantizer writes: plain rounding */
		double *unit = qt_graph_alloc(g, (size_t)cnt * sizeof *unit);
		if (!unit)
			return qt_error(QT_E_NOMEM, "out of memory");
		for (int c = 0; c < cnt; c++) {
			float S = 0;
			for (int64_t j = 0; j < ng; j++)
				S = fmaxf(S, wq->scale[c * ng + j]);
			unit[c] = (double)xq->scale[0] * S;
			if (wq->scheme == QT_QSCHEME_GROUP) {
				unit[c] /= QT_GROUP_MAX_RATIO;
				for (int64_t j = 0; j < ng; j++) {
					double r = nearbyint((double)wq->scale[c * ng + j] / S * QT_GROUP_MAX_RATIO);
					wq->scale[c * ng + j] = (float)(S * r / QT_GROUP_MAX_RATIO);
				}
			}
		}
		n->rq->sim_acc_unit = unit;
		n->rq->sim_grouped = wq->scheme == QT_QSCHEME_GROUP;
	}
	return QT_OK;
}

enum qt_status qt_fakequant_prepare(struct qt_graph *g)
{
	enum qt_status st = prepare_exact_rounding(g);
	if (st)
		return st;
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
	int64_t n = qt_tensor_numel(t);
	int p = g->values[value].producer;
	const struct qt_node *nd = p >= 0 ? &g->nodes[p] : NULL;
	const struct qt_requant *rq = nd && nd->rq && nd->n_outputs == 1 && nd->outputs[0] == value ? nd->rq : NULL;
	if (rq && rq->sim_acc_unit && t->rank >= 1) {
		/* Output channel of element i: axis 1 of a (transposed) conv's NCHW output, the
		 * last axis of a Gemm/MatMul's. */
		int conv = !strcmp(nd->op_type, "Conv") || !strcmp(nd->op_type, "ConvTranspose");
		int64_t C = rq->count, inner = 1;
		if (conv)
			for (int k = 2; k < t->rank; k++)
				inner *= t->dims[k];
		int64_t axis_len = conv ? (t->rank >= 2 ? t->dims[1] : 0) : t->dims[t->rank - 1];
		if (C == 1 || axis_len == C) {
			for (int64_t i = 0; i < n; i++) {
				int64_t c = C == 1 ? 0 : conv ? (i / inner) % C : i % C;
				double a = nearbyint((double)d[i] / rq->sim_acc_unit[c]);
				a = a > 9.2e18 ? 9.2e18 : a < -9.2e18 ? -9.2e18 : isnan(a) ? 0 : a;
				int64_t y = rq->sim_grouped ? qt_rq_mulshift64((int64_t)a, rq->mult[c], rq->shift[c])
							    : qt_rq_mulshift(qt_sat32((int64_t)a), rq->mult[c], rq->shift[c]);
				int32_t code = qt_rq_clamp(y, z, rq->qmin, rq->qmax);
				d[i] = s * (float)(code - z);
			}
			return QT_OK;
		}
	}
	for (int64_t i = 0; i < n; i++)
		d[i] = s * (float)(qt_quantize_one(d[i], s, z, qmin, qmax) - z);
	return QT_OK;
}
