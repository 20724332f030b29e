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
	if (!strcmp(n->domain, QT_DOMAIN_QTOOL) && !strcmp(n->op_type, QT_OP_FAKE_QUANT)) {
		snprintf(buf, cap, "rounds a layer's input to %s in float (no integer kernel for %s)",
			 qt_node_attr_str(n, "format", "?"), qt_node_attr_str(n, "format", "?"));
		return buf;
	}
	const struct qt_value *w = qt_is_weighted_op(n) && n->n_inputs > 1 && n->inputs[1] >= 0 ? &g->values[n->inputs[1]]
											       : NULL;
	if (w && !n->rq && w->init && w->q) {
		/* A decoded layer: weights in a number format, or activations in one
		 * (a FakeQuant node in front of it). */
		int x = n->inputs[0], p = x >= 0 ? g->values[x].producer : -1;
		const char *afmt = p >= 0 && !strcmp(g->nodes[p].domain, QT_DOMAIN_QTOOL) &&
						   !strcmp(g->nodes[p].op_type, QT_OP_FAKE_QUANT)
					   ? qt_node_attr_str(&g->nodes[p], "format", "?")
					   : NULL;
		if (w->q->fmt != QT_FMT_INT)
			snprintf(buf, cap, "decoded to FP32: no integer kernel for %s%s%s%s", qt_numfmt_name(w->q->fmt),
				 afmt ? " (activations " : "", afmt ? afmt : "", afmt ? ")" : "");
		else
			snprintf(buf, cap, "decoded to FP32: no integer kernel for %s activations", afmt ? afmt : "float");
		return buf;
	}
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
		/* Every reader runs in float, or rounds the value to a number
		 * format of its own (an ai.qtool FakeQuant before the layer). */
		snprintf(buf, cap, "output kept in float32: every reader runs in float or rounds it to its own number "
				   "format, so 8-bit codes would only lose information");
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
