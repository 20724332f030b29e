/* Graph IR: construction, look-up, finalisation (topological sort, checks). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qtool/graph.h"
#include "../core/arena.h"

enum qt_status qt_graph_new(struct qt_graph **out)
{
	*out = NULL;
	struct qt_graph *g = calloc(1, sizeof *g);
	if (!g)
		return qt_error(QT_E_NOMEM, "out of memory creating a graph");
	g->arena = qt_arena_new(256 * 1024);
	if (!g->arena) {
		free(g);
		return qt_error(QT_E_NOMEM, "out of memory creating a graph");
	}
	g->name = "";
	g->path = "";
	*out = g;
	return QT_OK;
}

void qt_graph_free(struct qt_graph *g)
{
	if (!g)
		return;
	/* Constant tensors live in the arena; only the growable arrays are malloc'd. */
	free(g->values);
	free(g->nodes);
	qt_arena_free(g->arena);
	free(g);
}

char *qt_graph_strdup(struct qt_graph *g, const char *s)
{
	return qt_arena_strdup(g->arena, s);
}

void *qt_graph_alloc(struct qt_graph *g, size_t n)
{
	return qt_arena_alloc(g->arena, n);
}

int qt_graph_find_value(const struct qt_graph *g, const char *name)
{
	/* Linear scan: graphs here have at most a few thousand values and
	 * look-ups happen at load and pass time, not per inference. */
	for (int i = 0; i < g->n_values; i++)
		if (strcmp(g->values[i].name, name) == 0)
			return i;
	return -1;
}

int qt_graph_value(struct qt_graph *g, const char *name)
{
	int i = qt_graph_find_value(g, name);
	if (i >= 0)
		return i;
	if (g->n_values == g->cap_values) {
		int cap = g->cap_values ? g->cap_values * 2 : 64;
		struct qt_value *v = realloc(g->values, (size_t)cap * sizeof *v);
		if (!v)
			return -1;
		g->values = v;
		g->cap_values = cap;
	}
	struct qt_value *v = &g->values[g->n_values];
	memset(v, 0, sizeof *v);
	v->name = qt_graph_strdup(g, name);
	if (!v->name)
		return -1;
	v->rank = -1;
	v->producer = -1;
	return g->n_values++;
}

int qt_graph_add_node(struct qt_graph *g, const char *op_type, const char *domain, const char *name)
{
	if (g->n_nodes == g->cap_nodes) {
		int cap = g->cap_nodes ? g->cap_nodes * 2 : 64;
		struct qt_node *n = realloc(g->nodes, (size_t)cap * sizeof *n);
		if (!n)
			return -1;
		g->nodes = n;
		g->cap_nodes = cap;
	}
	struct qt_node *n = &g->nodes[g->n_nodes];
	memset(n, 0, sizeof *n);
	n->op_type = qt_graph_strdup(g, op_type);
	n->domain = qt_graph_strdup(g, domain && strcmp(domain, "ai.onnx") ? domain : "");
	n->name = qt_graph_strdup(g, name ? name : "");
	if (!n->op_type || !n->domain || !n->name)
		return -1;
	return g->n_nodes++;
}

const char *qt_node_label(const struct qt_graph *g, const struct qt_node *n, char *buf, size_t cap)
{
	if (n->name[0])
		snprintf(buf, cap, "node \"%s\" (%s)", n->name, n->op_type);
	else
		snprintf(buf, cap, "node #%d (%s)", (int)(n - g->nodes), n->op_type);
	return buf;
}

/* Kahn's algorithm over producer links; stable (keeps file order among ready nodes). */
enum qt_status qt_graph_finalize(struct qt_graph *g)
{
	char lbl[256];
	for (int i = 0; i < g->n_values; i++) {
		g->values[i].producer = -1;
		g->values[i].n_consumers = 0;
	}
	for (int ni = 0; ni < g->n_nodes; ni++) {
		struct qt_node *n = &g->nodes[ni];
		for (int o = 0; o < n->n_outputs; o++) {
			int v = n->outputs[o];
			if (v < 0)
				continue;
			struct qt_value *val = &g->values[v];
			if (val->producer >= 0 || val->init || val->is_input)
				return qt_error(QT_E_FORMAT, "%s: output \"%s\" is already defined elsewhere",
						qt_node_label(g, n, lbl, sizeof lbl), val->name);
			val->producer = ni;
		}
	}
	for (int ni = 0; ni < g->n_nodes; ni++) {
		struct qt_node *n = &g->nodes[ni];
		for (int k = 0; k < n->n_inputs; k++) {
			int v = n->inputs[k];
			if (v < 0)
				continue;
			struct qt_value *val = &g->values[v];
			if (val->producer < 0 && !val->init && !val->is_input)
				return qt_error(QT_E_FORMAT,
						"%s: input \"%s\" is not a graph input, an initializer or any node's output",
						qt_node_label(g, n, lbl, sizeof lbl), val->name);
			val->n_consumers++;
		}
	}
	for (int k = 0; k < g->n_outputs; k++) {
		struct qt_value *val = &g->values[g->outputs[k]];
		if (val->producer < 0 && !val->init && !val->is_input)
			return qt_error(QT_E_FORMAT, "graph output \"%s\" is never produced", val->name);
	}

	/* Topological sort. */
	int n = g->n_nodes;
	if (n == 0)
		return QT_OK;
	int *indeg = calloc((size_t)n, sizeof *indeg);
	int *order = malloc((size_t)n * sizeof *order);
	char *done = calloc((size_t)n, 1);
	struct qt_node *sorted = malloc((size_t)n * sizeof *sorted);
	enum qt_status st = QT_OK;
	if (!indeg || !order || !done || !sorted) {
		st = qt_error(QT_E_NOMEM, "out of memory sorting the graph");
		goto out;
	}
	for (int ni = 0; ni < n; ni++)
		for (int k = 0; k < g->nodes[ni].n_inputs; k++) {
			int v = g->nodes[ni].inputs[k];
			if (v >= 0 && g->values[v].producer >= 0)
				indeg[ni]++;
		}
	/* Repeated scans keep the file order among ready nodes; O(n^2) worst case,
	 * fine for the graph sizes we load, and n passes at most. */
	int cnt = 0;
	while (cnt < n) {
		int progressed = 0;
		for (int ni = 0; ni < n; ni++) {
			if (done[ni] || indeg[ni])
				continue;
			done[ni] = 1;
			order[cnt++] = ni;
			progressed = 1;
			struct qt_node *nd = &g->nodes[ni];
			for (int o = 0; o < nd->n_outputs; o++) {
				int v = nd->outputs[o];
				if (v < 0)
					continue;
				for (int mj = 0; mj < n; mj++)
					for (int k = 0; k < g->nodes[mj].n_inputs; k++)
						if (g->nodes[mj].inputs[k] == v)
							indeg[mj]--;
			}
		}
		if (!progressed)
			break;
	}
	if (cnt < n) {
		for (int ni = 0; ni < n; ni++)
			if (!done[ni]) {
				st = qt_error(QT_E_FORMAT, "the graph has a cycle through %s",
					      qt_node_label(g, &g->nodes[ni], lbl, sizeof lbl));
				goto out;
			}
	}
	for (int i = 0; i < n; i++)
		sorted[i] = g->nodes[order[i]];
	memcpy(g->nodes, sorted, (size_t)n * sizeof *sorted);
	for (int ni = 0; ni < n; ni++)
		for (int o = 0; o < g->nodes[ni].n_outputs; o++)
			if (g->nodes[ni].outputs[o] >= 0)
				g->values[g->nodes[ni].outputs[o]].producer = ni;
out:
	free(indeg);
	free(order);
	free(done);
	free(sorted);
	return st;
}

const struct qt_attr *qt_node_attr(const struct qt_node *n, const char *name)
{
	for (int i = 0; i < n->n_attrs; i++)
		if (strcmp(n->attrs[i].name, name) == 0)
			return &n->attrs[i];
	return NULL;
}

int64_t qt_node_attr_int(const struct qt_node *n, const char *name, int64_t dflt)
{
	const struct qt_attr *a = qt_node_attr(n, name);
	return (a && a->type == QT_ATTR_INT) ? a->i : dflt;
}

float qt_node_attr_float(const struct qt_node *n, const char *name, float dflt)
{
	const struct qt_attr *a = qt_node_attr(n, name);
	if (a && a->type == QT_ATTR_FLOAT)
		return a->f;
	if (a && a->type == QT_ATTR_INT)
		return (float)a->i;
	return dflt;
}

const char *qt_node_attr_str(const struct qt_node *n, const char *name, const char *dflt)
{
	const struct qt_attr *a = qt_node_attr(n, name);
	return (a && a->type == QT_ATTR_STRING) ? a->s : dflt;
}

int qt_node_attr_ints(const struct qt_node *n, const char *name, const int64_t **vals_out)
{
	const struct qt_attr *a = qt_node_attr(n, name);
	*vals_out = NULL;
	if (!a || a->type != QT_ATTR_INTS)
		return 0;
	*vals_out = a->ints;
	return a->n;
}

int qt_node_attr_floats(const struct qt_node *n, const char *name, const float **vals_out)
{
	const struct qt_attr *a = qt_node_attr(n, name);
	*vals_out = NULL;
	if (!a || a->type != QT_ATTR_FLOATS)
		return 0;
	*vals_out = a->floats;
	return a->n;
}
