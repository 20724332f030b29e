/* Why a node of a quantized graph runs in float: the words `qtool inspect` prints. */
#include <stdio.h>
#include <string.h>

#include "qtool/qmod.h"
#include "qtool/quant.h"

const char *qt_node_float_reason(const struct qt_graph *g, int node, char *buf, size_t cap)
{
	const struct qt_node *n = &g->nodes[node];
	if (qt_qrt_node_is_integer(g, node))
		return NULL;
	if (qt_is_weighted_op(n) && !n->rq) {
		const char *r = qt_quant_skip_reason(g, n);
		snprintf(buf, cap, "%s", r ? r : "weights not quantized");
		return buf;
	}
	if (!strcmp(n->domain, QT_DOMAIN_QTOOL) && !strcmp(n->op_type, QT_OP_LAYERNORM)) {
		snprintf(buf, cap, "LayerNormalization (fused from the exporter's ReduceMean/Sub/Pow/Sqrt/Div chain): "
				   "its mean, variance and 1/sqrt need more than 8 bits");
		return buf;
	}
	int any_q = 0, any_f32 = 0;
	for (int k = 0; k < n->n_outputs; k++) {
		int v = n->outputs[k];
		if (v >= 0 && g->values[v].q)
			any_q = 1;
		else if (v >= 0 && g->values[v].dtype == QT_DTYPE_F32 && !g->values[v].is_output)
			any_f32 = 1;
	}
	if (!any_q && any_f32) {
		snprintf(buf, cap, "output kept in float32: every reader runs in float, so 8-bit codes would only "
				   "lose information");
		return buf;
	}
	if (!any_q && n->n_outputs > 0) {
		snprintf(buf, cap, "output is not a float32 activation (shape or index arithmetic)");
		return buf;
	}
	snprintf(buf, cap, "no integer kernel for %s%s%s with these operands", n->domain, n->domain[0] ? "." : "",
		 n->op_type);
	return buf;
}
