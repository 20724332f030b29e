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
	int any_float = 0;
	for (int k = 0; k < n->n_outputs; k++)
		if (n->outputs[k] >= 0 && g->values[n->outputs[k]].q)
			any_float = 1;
	if (!any_float && n->n_outputs > 0) {
		snprintf(buf, cap, "output is not a float32 activation (shape or index arithmetic)");
		return buf;
	}
	snprintf(buf, cap, "no integer kernel for %s%s%s with these operands", n->domain, n->domain[0] ? "." : "",
		 n->op_type);
	return buf;
}
