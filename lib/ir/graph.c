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
	free(g->name_hash);
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

/* FNV-1a over the name. */
static uint32_t name_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

/* Rebuild the name index with room for at least 2x the values (a power of two). */
static int rehash(struct qt_graph *g, int need)
{
	int cap = 64;
	while (cap < 2 * need)
		cap *= 2;
	int *h = malloc((size_t)cap * sizeof *h);
	if (!h)
		return -1;
	for (int i = 0; i < cap; i++)
		h[i] = -1;
	for (int v = 0; v < g->n_values; v++) {
		uint32_t k = name_hash(g->values[v].name) & (uint32_t)(cap - 1);
		while (h[k] >= 0)
			k = (k + 1) & (uint32_t)(cap - 1);
		h[k] = v;
	}
	free(g->name_hash);
	g->name_hash = h;
	g->name_hash_cap = cap;
	return 0;
}

int qt_graph_find_value(const struct qt_graph *g, const char *name)
{
	if (g->name_hash_cap == 0)
		return -1;
	uint32_t mask = (uint32_t)(g->name_hash_cap - 1), k = name_hash(name) & mask;
	for (; g->name_hash[k] >= 0; k = (k + 1) & mask)
		if (strcmp(g->values[g->name_hash[k]].name, name) == 0)
			return g->name_hash[k];
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
	g->n_values++;
	if (2 * g->n_values > g->name_hash_cap) {
		if (rehash(g, g->n_values) != 0) {
			g->n_values--;
			return -1;
		}
	} else {
		uint32_t mask = (uint32_t)(g->name_hash_cap - 1), k = name_hash(name) & mask;
		while (g->name_hash[k] >= 0)
			k = (k + 1) & mask;
		g->name_hash[k] = g->n_values - 1;
	}
	return g->n_values - 1;
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

	/* Topological sort (Kahn) in O(nodes + edges): a consumer list per value
	 * in CSR form, and a min-heap of ready nodes so the file order is kept
	 * among nodes that are ready together. */
	int n = g->n_nodes;
	if (n == 0)
		return QT_OK;
	int64_t n_edges = 0;
	for (int ni = 0; ni < n; ni++)
		n_edges += g->nodes[ni].n_inputs;
	int *indeg = calloc((size_t)n, sizeof *indeg);
	int *heap = malloc((size_t)n * sizeof *heap);
	int *start = calloc((size_t)g->n_values + 1, sizeof *start);
	int *cons = malloc((size_t)(n_edges + 1) * sizeof *cons);
	struct qt_node *sorted = malloc((size_t)n * sizeof *sorted);
	enum qt_status st = QT_OK;
	if (!indeg || !heap || !start || !cons || !sorted) {
		st = qt_error(QT_E_NOMEM, "out of memory sorting the graph");
		goto out;
	}
	for (int ni = 0; ni < n; ni++)
		for (int k = 0; k < g->nodes[ni].n_inputs; k++) {
			int v = g->nodes[ni].inputs[k];
			if (v >= 0 && g->values[v].producer >= 0) {
				indeg[ni]++;
				start[v + 1]++;
			}
		}
	for (int v = 0; v < g->n_values; v++)
		start[v + 1] += start[v];
	{
		int *fill = calloc((size_t)g->n_values + 1, sizeof *fill);
		if (!fill) {
			st = qt_error(QT_E_NOMEM, "out of memory sorting the graph");
			goto out;
		}
		for (int ni = 0; ni < n; ni++)
			for (int k = 0; k < g->nodes[ni].n_inputs; k++) {
				int v = g->nodes[ni].inputs[k];
				if (v >= 0 && g->values[v].producer >= 0)
					cons[start[v] + fill[v]++] = ni;
			}
		free(fill);
	}
	int hn = 0, cnt = 0;
	for (int ni = 0; ni < n; ni++)
		if (!indeg[ni])
			heap[hn++] = ni; /* ascending: already a valid min-heap */
	while (hn > 0) {
		int ni = heap[0];
		/* pop */
		heap[0] = heap[--hn];
		for (int i = 0;;) {
			int l = 2 * i + 1, r = l + 1, m = i;
			if (l < hn && heap[l] < heap[m])
				m = l;
			if (r < hn && heap[r] < heap[m])
				m = r;
			if (m == i)
				break;
			int t = heap[i];
			heap[i] = heap[m];
			heap[m] = t;
			i = m;
		}
		sorted[cnt++] = g->nodes[ni];
		const struct qt_node *nd = &g->nodes[ni];
		for (int o = 0; o < nd->n_outputs; o++) {
			int v = nd->outputs[o];
			if (v < 0)
				continue;
			for (int e = start[v]; e < start[v + 1]; e++)
				if (--indeg[cons[e]] == 0) {
					/* push */
					int i = hn++;
					heap[i] = cons[e];
					while (i > 0 && heap[(i - 1) / 2] > heap[i]) {
						int t = heap[i];
						heap[i] = heap[(i - 1) / 2];
						heap[(i - 1) / 2] = t;
						i = (i - 1) / 2;
					}
				}
		}
	}
	if (cnt < n) {
		for (int ni = 0; ni < n; ni++)
			if (indeg[ni]) {
				st = qt_error(QT_E_FORMAT, "the graph has a cycle through %s",
					      qt_node_label(g, &g->nodes[ni], lbl, sizeof lbl));
				goto out;
			}
	}
	memcpy(g->nodes, sorted, (size_t)n * sizeof *sorted);
	for (int ni = 0; ni < n; ni++)
		for (int o = 0; o < g->nodes[ni].n_outputs; o++)
			if (g->nodes[ni].outputs[o] >= 0)
				g->values[g->nodes[ni].outputs[o]].producer = ni;
out:
	free(indeg);
	free(heap);
	free(start);
	free(cons);
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

enum qt_status qt_graph_prune(struct qt_graph *g, int *n_out)
{
	enum qt_status st = qt_graph_finalize(g);
	if (st)
		return st;
	int *map = malloc(((size_t)g->n_values + 1) * sizeof *map);
	if (!map)
		return qt_error(QT_E_NOMEM, "out of memory");
	int w = 0;
	for (int v = 0; v < g->n_values; v++) {
		const struct qt_value *val = &g->values[v];
		int keep = val->n_consumers > 0 || val->producer >= 0 || val->is_input || val->is_output;
		map[v] = keep ? w : -1;
		if (keep)
			g->values[w++] = *val;
	}
	int removed = g->n_values - w;
	g->n_values = w;
	for (int i = 0; i < g->n_nodes; i++) {
		struct qt_node *n = &g->nodes[i];
		for (int k = 0; k < n->n_inputs; k++)
			if (n->inputs[k] >= 0)
				n->inputs[k] = map[n->inputs[k]];
		for (int k = 0; k < n->n_outputs; k++)
			if (n->outputs[k] >= 0)
				n->outputs[k] = map[n->outputs[k]];
	}
	for (int i = 0; i < g->n_inputs; i++)
		g->inputs[i] = map[g->inputs[i]];
	for (int i = 0; i < g->n_outputs; i++)
		g->outputs[i] = map[g->outputs[i]];
	free(map);
	if (rehash(g, g->n_values) != 0)
		return qt_error(QT_E_NOMEM, "out of memory");
	if (n_out)
		*n_out = removed;
	return qt_graph_finalize(g);
}

enum qt_status qt_input_shapes_set(struct qt_input_shapes *l, const char *name, int rank, const int64_t *dims)
{
	size_t nl = strlen(name);
	if (nl >= sizeof l->s[0].name)
		return qt_error(QT_E_INVALID_ARG, "input shape: the name \"%.40s...\" is too long", name);
	if (rank < 0 || rank > QT_MAX_RANK)
		return qt_error(QT_E_INVALID_ARG, "input shape \"%s\": rank %d is outside 0..%d", name, rank, QT_MAX_RANK);
	for (int d = 0; d < rank; d++)
		if (dims[d] < 1 || dims[d] > (1LL << 31))
			return qt_error(QT_E_INVALID_ARG, "input shape \"%s\": dim %lld is outside 1..2^31", name,
					(long long)dims[d]);
	int k;
	for (k = 0; k < l->n; k++)
		if (!strcmp(l->s[k].name, name))
			break;
	if (k == l->n) {
		if (l->n == QT_MAX_INPUT_SHAPES)
			return qt_error(QT_E_INVALID_ARG, "more than %d input shapes", QT_MAX_INPUT_SHAPES);
		l->n++;
	}
	memcpy(l->s[k].name, name, nl + 1);
	l->s[k].rank = rank;
	for (int d = 0; d < rank; d++)
		l->s[k].dims[d] = dims[d];
	return QT_OK;
}

enum qt_status qt_input_shapes_parse(struct qt_input_shapes *l, const char *arg)
{
	const char *eq = strrchr(arg, '=');
	if (!eq || eq == arg || !eq[1])
		return qt_error(QT_E_INVALID_ARG, "input shape '%s' must be NAME=D0,D1,... (e.g. input=1,3,224,224)", arg);
	char name[256];
	size_t nl = (size_t)(eq - arg);
	if (nl >= sizeof name)
		return qt_error(QT_E_INVALID_ARG, "input shape '%.40s...': the name is too long", arg);
	memcpy(name, arg, nl);
	name[nl] = 0;
	int64_t dims[QT_MAX_RANK];
	int rank = 0;
	for (const char *p = eq + 1;;) {
		char *end;
		if (*p < '0' || *p > '9')
			return qt_error(QT_E_INVALID_ARG, "input shape '%s': dims must be integers >= 1", arg);
		long long v = strtoll(p, &end, 10);
		if (rank == QT_MAX_RANK)
			return qt_error(QT_E_INVALID_ARG, "input shape '%s': more than %d dims", arg, QT_MAX_RANK);
		if (v < 1 || v > (1LL << 31))
			return qt_error(QT_E_INVALID_ARG, "input shape '%s': dim %lld is outside 1..2^31", arg, v);
		dims[rank++] = v;
		if (!*end)
			break;
		if (*end != ',')
			return qt_error(QT_E_INVALID_ARG, "input shape '%s': dims must be separated by ','", arg);
		p = end + 1;
	}
	return qt_input_shapes_set(l, name, rank, dims);
}

enum qt_status qt_graph_dry_run_dims(const struct qt_graph *g, int i, const struct qt_input_shapes *given,
				     int64_t *dims_out, int *rank_out)
{
	const struct qt_value *v = &g->values[g->inputs[i]];
	const struct qt_input_shape *s = NULL;
	for (int k = 0; given && k < given->n; k++)
		if (!strcmp(given->s[k].name, v->name))
			s = &given->s[k];
	if (v->rank < 0) {
		if (!s)
			return qt_error(QT_E_UNSUPPORTED, "input \"%s\" declares no shape; pass --input-shape %s=D0,D1,...",
					v->name, v->name);
		memcpy(dims_out, s->dims, (size_t)s->rank * sizeof *dims_out);
		*rank_out = s->rank;
		return QT_OK;
	}
	char a[128], b[128];
	if (s && s->rank != v->rank)
		return qt_error(QT_E_INVALID_ARG, "input \"%s\": the shape %s has rank %d, the model declares %s", v->name,
				qt_shape_str(a, sizeof a, s->rank, s->dims), s->rank, qt_shape_str(b, sizeof b, v->rank, v->dims));
	for (int d = 0; d < v->rank; d++) {
		if (v->dims[d] >= 0) {
			if (s && s->dims[d] != v->dims[d])
				return qt_error(QT_E_INVALID_ARG, "input \"%s\": the shape %s does not match the declared %s",
						v->name, qt_shape_str(a, sizeof a, s->rank, s->dims),
						qt_shape_str(b, sizeof b, v->rank, v->dims));
			dims_out[d] = v->dims[d];
		} else if (s) {
			dims_out[d] = s->dims[d];
		} else if (d == 0) {
			dims_out[d] = 1; /* a symbolic batch: one sample shows every per-sample shape */
		} else {
			return qt_error(QT_E_INVALID_ARG,
					"input \"%s\": dim %d (%s) is symbolic and no shape was seen for it; pass "
					"--input-shape %s=D0,D1,...",
					v->name, d, v->dim_params[d] ? v->dim_params[d] : "?", v->name);
		}
	}
	*rank_out = v->rank;
	return QT_OK;
}

enum qt_status qt_input_shapes_check(const struct qt_graph *g, const struct qt_input_shapes *l)
{
	for (int k = 0; k < l->n; k++) {
		int found = 0;
		for (int i = 0; i < g->n_inputs && !found; i++)
			found = !strcmp(g->values[g->inputs[i]].name, l->s[k].name);
		if (!found)
			return qt_error(QT_E_INVALID_ARG, "%s: --input-shape names \"%s\", which is not an input of the model",
					g->path, l->s[k].name);
	}
	return QT_OK;
}
