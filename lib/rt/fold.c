/*
 * Constant folding: every node whose inputs are all constants (initializers,
 * Constant outputs, earlier folds) is run once with its FP32 kernel and its
 * outputs become initializers. It lives beside the executor because it runs
 * the executor's kernels: op semantics are written once, in the kernels.
 *
 * This is what turns exporter idioms into plain weights before quantization:
 * Identity aliases of (shared, deduplicated) initializers, Cast and arithmetic
 * on constants, Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains over
 * statically declared dims. Float results are the kernels' (see ops.h for
 * their rounding); nothing is approximated.
 */
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "qtool/quant.h"
#include "qtool/rt.h"
#include "ir/passes_int.h"

/* A folded node's outputs may not exceed this (Expand or ConstantOfShape to a
 * huge shape stays a node: the runtime bounds it per run, not in the file). */
#define FOLD_MAX_BYTES ((size_t)64 << 20)

/* Shape (and Size) of a value whose declared shape is fully static. */
static int static_shape(const struct qt_value *v)
{
	if (v->rank < 0)
		return 0;
	for (int d = 0; d < v->rank; d++)
		if (v->dims[d] < 0)
			return 0;
	return 1;
}

/* 1 when every present input of n is a constant (Shape/Size: statically shaped). */
static int foldable(const struct qt_graph *g, const struct qt_node *n)
{
	if (n->n_inputs < 1 || n->n_outputs < 1 || (n->domain[0] && strcmp(n->domain, "ai.onnx")))
		return 0;
	/* Random ops are not functions of their inputs. */
	if (!strncmp(n->op_type, "Random", 6) || !strcmp(n->op_type, "Bernoulli"))
		return 0;
	int present = 0;
	for (int k = 0; k < n->n_inputs; k++) {
		int v = n->inputs[k];
		if (v < 0)
			continue;
		present++;
		const struct qt_value *val = &g->values[v];
		if (val->init)
			continue;
		if (k == 0 && n->n_inputs == 1 && (!strcmp(n->op_type, "Shape") || !strcmp(n->op_type, "Size")) &&
		    !val->is_input && static_shape(val))
			continue; /* a graph input's declared dims may be overridden at run time: never fold those */
		return 0;
	}
	for (int o = 0; o < n->n_outputs; o++)
		if (n->outputs[o] >= 0 && g->values[n->outputs[o]].is_output)
			return 0; /* a graph output stays computed */
	return present > 0;
}

enum qt_status qt_pass_fold_constants(struct qt_graph *g, int *n_out)
{
	char *dead = calloc((size_t)g->n_nodes + 1, 1);
	if (!dead)
		return qt_error(QT_E_NOMEM, "out of memory");
	int folded = 0;
	enum qt_status st = QT_OK;
	/* Nodes are in topological order: one pass folds whole chains. */
	for (int ni = 0; ni < g->n_nodes && !st; ni++) {
		const struct qt_node *n = &g->nodes[ni];
		if (!foldable(g, n) || n->n_inputs > 64 || n->n_outputs > 16)
			continue;
		qt_op_fn fn = qt_op_find(n->domain, n->op_type, g->opset);
		if (!fn)
			continue;
		const struct qt_tensor *in[64];
		struct qt_tensor shape_t[1] = {{0}};
		for (int k = 0; k < n->n_inputs; k++) {
			int v = n->inputs[k];
			in[k] = v >= 0 ? g->values[v].init : NULL;
			if (v >= 0 && !in[k]) {
				/* Shape/Size of a static value: a zero-sized stand-in of that
				 * shape would need its bytes; give the kernel a view with the
				 * right dims and no data, which Shape and Size never read. */
				const struct qt_value *val = &g->values[v];
				shape_t[0].dtype = val->dtype != QT_DTYPE_UNDEFINED ? val->dtype : QT_DTYPE_F32;
				shape_t[0].rank = val->rank;
				memcpy(shape_t[0].dims, val->dims, sizeof shape_t[0].dims);
				shape_t[0].data = (void *)shape_t; /* non-NULL, never dereferenced */
				in[k] = &shape_t[0];
			}
		}
		struct qt_tensor outs[16];
		memset(outs, 0, sizeof outs);
		struct qt_op_args args = {
			.g = g, .node = n, .opset = g->opset, .n_in = n->n_inputs, .in = in,
			.n_out = n->n_outputs, .out = outs,
		};
		/* A kernel that refuses its constant inputs leaves the node to fail
		 * (and be reported) where it runs; folding is only an optimisation. */
		int ok = fn(&args) == QT_OK;
		size_t total = 0;
		for (int o = 0; ok && o < n->n_outputs; o++) {
			ok = n->outputs[o] < 0 || outs[o].data != NULL;
			total += outs[o].nbytes;
		}
		if (ok && total <= FOLD_MAX_BYTES) {
			for (int o = 0; o < n->n_outputs && !st; o++) {
				int v = n->outputs[o];
				if (v < 0)
					continue;
				struct qt_tensor *t = qt_graph_alloc(g, sizeof *t);
				void *d = qt_graph_alloc(g, outs[o].nbytes ? outs[o].nbytes : 1);
				if (!t || !d) {
					st = qt_error(QT_E_NOMEM, "out of memory folding constants");
					break;
				}
				*t = outs[o];
				memcpy(d, outs[o].data, outs[o].nbytes);
				t->data = d;
				t->owned = 0;
				struct qt_value *val = &g->values[v];
				val->init = t;
				val->dtype = t->dtype;
				val->rank = t->rank;
				for (int k = 0; k < QT_MAX_RANK; k++) {
					val->dims[k] = k < t->rank ? t->dims[k] : 0;
					val->dim_params[k] = NULL;
				}
			}
			dead[ni] = 1;
			folded++;
		}
		for (int o = 0; o < n->n_outputs; o++)
			qt_tensor_free(&outs[o]);
	}
	if (!st) {
		qt_graph_remove_nodes(g, dead);
		st = qt_graph_prune(g, NULL); /* the inputs only the folded nodes read */
	}
	free(dead);
	if (n_out)
		*n_out = folded;
	return st;
}

enum qt_status qt_pass_prepare_import(struct qt_graph *g)
{
	enum qt_status st;
	if ((st = qt_pass_fold_constants(g, NULL)) != QT_OK || (st = qt_pass_unshare_weights(g, NULL)) != QT_OK)
		return st;
	if ((st = qt_pass_fold_affine(g, NULL)) != QT_OK)
		return st;
	return qt_pass_fuse_layernorm(g, NULL);
}
