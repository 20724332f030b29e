/*
 * FP32 reference executor: runs nodes in topological order, frees each
 * intermediate after its last consumer, tracks peak live activation bytes
 * and time per op type.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qtool/rt.h"
#include "ops.h"

struct qt_rt {
	const struct qt_graph *g;
	qt_op_fn *fns;          /* per node */
	int *stat_slot;         /* per node: index into stats arrays */
	struct qt_tensor *vals; /* per value: live tensor (constants are views) */
	int *remaining;         /* per value: consumers still to run */
	qt_rt_observer observer;
	void *observer_user;
	int keep_all;
	size_t live_bytes;
	struct qt_rt_stats stats;
};

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

enum qt_status qt_rt_new(const struct qt_graph *g, struct qt_rt **out)
{
	char list[1024];
	*out = NULL;
	if (qt_rt_unsupported_ops(g, list, sizeof list) > 0)
		return qt_error(QT_E_UNSUPPORTED, "%s: unsupported op types: %s", g->path[0] ? g->path : "model", list);
	struct qt_rt *rt = calloc(1, sizeof *rt);
	if (!rt)
		return qt_error(QT_E_NOMEM, "out of memory creating the runtime");
	rt->g = g;
	rt->fns = calloc((size_t)g->n_nodes + 1, sizeof *rt->fns);
	rt->stat_slot = calloc((size_t)g->n_nodes + 1, sizeof *rt->stat_slot);
	rt->vals = calloc((size_t)g->n_values + 1, sizeof *rt->vals);
	rt->remaining = calloc((size_t)g->n_values + 1, sizeof *rt->remaining);
	if (!rt->fns || !rt->stat_slot || !rt->vals || !rt->remaining) {
		qt_rt_free(rt);
		return qt_error(QT_E_NOMEM, "out of memory creating the runtime");
	}
	for (int i = 0; i < g->n_nodes; i++) {
		const struct qt_node *n = &g->nodes[i];
		rt->fns[i] = qt_op_find(n->domain, n->op_type, g->opset);
		int s;
		for (s = 0; s < rt->stats.n_op_types; s++)
			if (strcmp(rt->stats.op_type[s], n->op_type) == 0)
				break;
		if (s == rt->stats.n_op_types && s < 128)
			rt->stats.op_type[rt->stats.n_op_types++] = n->op_type;
		rt->stat_slot[i] = s < 128 ? s : 127;
	}
	*out = rt;
	return QT_OK;
}

static void release_all(struct qt_rt *rt)
{
	for (int v = 0; v < rt->g->n_values; v++)
		qt_tensor_free(&rt->vals[v]);
	rt->live_bytes = 0;
}

void qt_rt_free(struct qt_rt *rt)
{
	if (!rt)
		return;
	if (rt->vals)
		release_all(rt);
	free(rt->fns);
	free(rt->stat_slot);
	free(rt->vals);
	free(rt->remaining);
	free(rt);
}

void qt_rt_set_observer(struct qt_rt *rt, qt_rt_observer fn, void *user)
{
	rt->observer = fn;
	rt->observer_user = user;
}

void qt_rt_keep_all(struct qt_rt *rt, int keep)
{
	rt->keep_all = keep;
}

const struct qt_rt_stats *qt_rt_stats(const struct qt_rt *rt)
{
	return &rt->stats;
}

/* Drop value v once nothing else needs it (graph outputs are kept). */
static void consume(struct qt_rt *rt, int v)
{
	if (--rt->remaining[v] > 0 || rt->keep_all || rt->g->values[v].is_output)
		return;
	if (rt->vals[v].owned)
		rt->live_bytes -= rt->vals[v].nbytes;
	qt_tensor_free(&rt->vals[v]);
}

/* Check graph input i's declared dtype and shape against t. */
static enum qt_status check_input(const struct qt_value *val, const struct qt_tensor *t)
{
	if (t->dtype != val->dtype && val->dtype != QT_DTYPE_UNDEFINED)
		return qt_error(QT_E_INVALID_ARG, "input \"%s\" must be %s, not %s", val->name,
				qt_dtype_name(val->dtype), qt_dtype_name(t->dtype));
	if (val->rank < 0)
		return QT_OK;
	if (t->rank != val->rank)
		return qt_error(QT_E_INVALID_ARG, "input \"%s\" must have rank %d, not %d", val->name, val->rank,
				t->rank);
	for (int d = 0; d < val->rank; d++)
		if (val->dims[d] >= 0 && val->dims[d] != t->dims[d]) {
			char a[96], b[96];
			return qt_error(QT_E_INVALID_ARG, "input \"%s\" must have shape %s, not %s", val->name,
					qt_shape_str(a, sizeof a, val->rank, val->dims),
					qt_shape_str(b, sizeof b, t->rank, t->dims));
		}
	return QT_OK;
}

/* Run node ni on the values rt holds; store its outputs, observe them, and
 * drop inputs nothing later needs. */
static enum qt_status run_node(struct qt_rt *rt, int ni)
{
	const struct qt_graph *g = rt->g;
	const struct qt_node *n = &g->nodes[ni];
	const struct qt_tensor *in_ptrs[64];
	char lbl[256];
	enum qt_status st;
	if (n->n_inputs > 64 || n->n_outputs > 16)
		return qt_error(QT_E_UNSUPPORTED, "%s: too many inputs or outputs", qt_node_label(g, n, lbl, sizeof lbl));
	for (int k = 0; k < n->n_inputs; k++)
		in_ptrs[k] = n->inputs[k] >= 0 ? &rt->vals[n->inputs[k]] : NULL;
	struct qt_tensor outs[16];
	memset(outs, 0, sizeof outs);
	struct qt_op_args args = {
		.g = g, .node = n, .opset = g->opset, .n_in = n->n_inputs, .in = in_ptrs,
		.n_out = n->n_outputs, .out = outs,
	};
	double t0 = now_seconds();
	st = rt->fns[ni](&args);
	rt->stats.op_seconds[rt->stat_slot[ni]] += now_seconds() - t0;
	rt->stats.op_calls[rt->stat_slot[ni]]++;
	if (st) {
		for (int o = 0; o < n->n_outputs; o++)
			qt_tensor_free(&outs[o]);
		return st;
	}
	for (int o = 0; o < n->n_outputs; o++) {
		int v = n->outputs[o];
		if (v < 0) {
			qt_tensor_free(&outs[o]);
			continue;
		}
		if (!outs[o].data) {
			for (int j = o; j < n->n_outputs; j++)
				qt_tensor_free(&outs[j]);
			return qt_error(QT_E_FORMAT, "%s: produced no output %d", qt_node_label(g, n, lbl, sizeof lbl), o);
		}
		if (!outs[o].owned && rt->observer) {
			/* Observers may write: never let them see a borrowed buffer. */
			struct qt_tensor copy = {0};
			if ((st = qt_tensor_copy(&copy, &outs[o])) != QT_OK) {
				for (int j = o; j < n->n_outputs; j++)
					qt_tensor_free(&outs[j]);
				return st;
			}
			outs[o] = copy;
		}
		qt_tensor_free(&rt->vals[v]);
		rt->vals[v] = outs[o];
		if (outs[o].owned)
			rt->live_bytes += outs[o].nbytes;
	}
	if (rt->live_bytes > rt->stats.peak_bytes)
		rt->stats.peak_bytes = rt->live_bytes;
	if (rt->observer)
		for (int o = 0; o < n->n_outputs; o++)
			if (n->outputs[o] >= 0 &&
			    (st = rt->observer(rt->observer_user, n->outputs[o], &rt->vals[n->outputs[o]])) != QT_OK)
				return st;
	for (int k = 0; k < n->n_inputs; k++)
		if (n->inputs[k] >= 0)
			consume(rt, n->inputs[k]);
	/* Outputs nobody reads (e.g. Dropout's mask) go at once. */
	for (int o = 0; o < n->n_outputs; o++) {
		int v = n->outputs[o];
		if (v >= 0 && g->values[v].n_consumers == 0 && !g->values[v].is_output && !rt->keep_all) {
			rt->live_bytes -= rt->vals[v].owned ? rt->vals[v].nbytes : 0;
			qt_tensor_free(&rt->vals[v]);
		}
	}
	return QT_OK;
}

/* Drop every value, view the constants again, and count for each value the
 * node inputs at or after node `first` that still read it. */
static void reset_from(struct qt_rt *rt, int first)
{
	const struct qt_graph *g = rt->g;
	release_all(rt);
	for (int v = 0; v < g->n_values; v++) {
		rt->remaining[v] = 0;
		if (g->values[v].init)
			qt_tensor_view(&rt->vals[v], g->values[v].init);
	}
	for (int ni = first; ni < g->n_nodes; ni++)
		for (int k = 0; k < g->nodes[ni].n_inputs; k++)
			if (g->nodes[ni].inputs[k] >= 0)
				rt->remaining[g->nodes[ni].inputs[k]]++;
}

/* Give the observer a private copy of value v (it may write) and observe it. */
static enum qt_status observe_input(struct qt_rt *rt, int v)
{
	if (!rt->observer)
		return QT_OK;
	struct qt_tensor copy = {0};
	enum qt_status st = qt_tensor_copy(&copy, &rt->vals[v]);
	if (st)
		return st;
	rt->vals[v] = copy;
	rt->live_bytes += copy.nbytes;
	return rt->observer(rt->observer_user, v, &rt->vals[v]);
}

enum qt_status qt_rt_run(struct qt_rt *rt, const struct qt_tensor *inputs, struct qt_tensor *outputs)
{
	const struct qt_graph *g = rt->g;
	enum qt_status st = QT_OK;
	reset_from(rt, 0);
	for (int i = 0; i < g->n_inputs; i++) {
		if ((st = check_input(&g->values[g->inputs[i]], &inputs[i])) != QT_OK)
			return st;
		qt_tensor_view(&rt->vals[g->inputs[i]], &inputs[i]);
	}
	rt->live_bytes = 0;
	for (int i = 0; i < g->n_inputs; i++)
		if ((st = observe_input(rt, g->inputs[i])) != QT_OK)
			goto fail;
	for (int ni = 0; ni < g->n_nodes; ni++)
		if ((st = run_node(rt, ni)) != QT_OK)
			goto fail;
	for (int k = 0; k < g->n_outputs; k++) {
		memset(&outputs[k], 0, sizeof outputs[k]);
		st = qt_tensor_copy(&outputs[k], &rt->vals[g->outputs[k]]);
		if (st) {
			for (int j = 0; j < k; j++)
				qt_tensor_free(&outputs[j]);
			goto fail;
		}
	}
	if (!rt->keep_all)
		release_all(rt);
	return QT_OK;
fail:
	release_all(rt);
	return st;
}

enum qt_status qt_rt_begin_at(struct qt_rt *rt, int first, const int *vals, struct qt_tensor *tensors, int n)
{
	enum qt_status st = QT_OK;
	reset_from(rt, first);
	rt->live_bytes = 0;
	for (int i = 0; i < n; i++) {
		int v = vals[i];
		if (v < 0 || v >= rt->g->n_values || rt->g->values[v].init) {
			st = qt_error(QT_E_INVALID_ARG, "value %d cannot be set before node %d", v, first);
			break;
		}
		if (first == 0 && rt->g->values[v].is_input &&
		    (st = check_input(&rt->g->values[v], &tensors[i])) != QT_OK)
			break;
		qt_tensor_free(&rt->vals[v]);
		rt->vals[v] = tensors[i];
		memset(&tensors[i], 0, sizeof tensors[i]);
		if (!rt->vals[v].owned) {
			struct qt_tensor copy = {0};
			if ((st = qt_tensor_copy(&copy, &rt->vals[v])) != QT_OK)
				break;
			rt->vals[v] = copy;
		}
		rt->live_bytes += rt->vals[v].nbytes;
		if (first == 0 && rt->g->values[v].is_input && rt->observer &&
		    (st = rt->observer(rt->observer_user, v, &rt->vals[v])) != QT_OK)
			break;
	}
	if (st)
		release_all(rt);
	return st;
}

enum qt_status qt_rt_run_nodes(struct qt_rt *rt, int first, int last)
{
	enum qt_status st = QT_OK;
	for (int ni = first; ni < last && ni < rt->g->n_nodes; ni++)
		if ((st = run_node(rt, ni)) != QT_OK) {
			release_all(rt);
			return st;
		}
	return QT_OK;
}

enum qt_status qt_rt_take_value(struct qt_rt *rt, int v, struct qt_tensor *out)
{
	memset(out, 0, sizeof *out);
	if (v < 0 || v >= rt->g->n_values || !rt->vals[v].data)
		return qt_error(QT_E_INVALID_ARG, "value %d was not computed", v);
	if (!rt->vals[v].owned)
		return qt_tensor_copy(out, &rt->vals[v]);
	*out = rt->vals[v];
	rt->live_bytes -= out->nbytes;
	memset(&rt->vals[v], 0, sizeof rt->vals[v]);
	return QT_OK;
}

const struct qt_tensor *qt_rt_value(const struct qt_rt *rt, int v)
{
	return (v >= 0 && v < rt->g->n_values && rt->vals[v].data) ? &rt->vals[v] : NULL;
}

int qt_graph_input_dims(const struct qt_graph *g, int i, int64_t batch, int64_t *dims_out)
{
	const struct qt_value *v = &g->values[g->inputs[i]];
	if (v->rank < 0)
		return -1;
	for (int d = 0; d < v->rank; d++)
		dims_out[d] = v->dims[d] >= 0 ? v->dims[d] : (d == 0 ? batch : 1);
	return v->rank;
}
