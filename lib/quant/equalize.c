/*
 * Cross-layer equalization (data-free): a float graph rewrite that keeps the
 * FP32 function and evens out the per-channel weight ranges, so a per-tensor
 * weight grid wastes fewer levels on small channels.
 *
 * Why the function is unchanged: for y = B f(A x) with f positively
 * homogeneous per channel (f(c t) = c f(t) for c > 0: identity, Relu,
 * MaxPool, average pooling, Flatten, Dropout at inference), dividing A's
 * output channel i (its weights and bias) by s_i > 0 and multiplying B's
 * input channel i by s_i gives B S f(S^-1 A x) = B f(A x). A Clip(0, hi) with
 * finite hi is not homogeneous (the clip would have to become hi / s_i per
 * channel, which a fused activation cannot hold), so such pairs are skipped
 * and counted.
 *
 * Choice of s: with r1_i = max|A row i| and r2_i = max|B column block i|,
 * s_i = sqrt(r1_i / r2_i) makes both ranges sqrt(r1_i r2_i). Layers in a
 * chain (conv -> depthwise -> pointwise) share channels between pairs, so
 * pairs are swept in topological order until the largest |log s_i| of a sweep
 * falls below the tolerance.
 *
 * Float use: scales are computed in double and applied to the float weights
 * as one multiplication each (rounded to float); each sweep perturbs a
 * weight by at most about one float ulp relative.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qtool/quant.h"

/* A weighted layer's constant weight seen as output channels and input
 * channels: element (o, i, t) at data[o * so + i * si + t * st], t < inner. */
struct eq_layer {
	int node;
	float *w, *b;     /* b: [C_out] or NULL */
	int64_t cout, cin;
	int groups;       /* Conv groups; input channel i feeds outputs of group i / (cin / groups) */
	int64_t so, si, st, inner;
};

/* Constant float input i of n; with `sole`, only when n is its one reader
 * (a shared weight cannot be rescaled for one of its readers). */
static float *const_f32(const struct qt_graph *g, const struct qt_node *n, int i, int sole, int64_t *numel_out)
{
	if (i >= n->n_inputs || n->inputs[i] < 0)
		return NULL;
	const struct qt_value *v = &g->values[n->inputs[i]];
	if (!v->init || v->init->dtype != QT_DTYPE_F32 || (sole && v->n_consumers != 1))
		return NULL;
	*numel_out = qt_tensor_numel(v->init);
	return v->init->data;
}

/* Fill L for node ni; 0 when its layout is not one CLE handles. */
static int eq_layer_view(const struct qt_graph *g, int ni, int sole, struct eq_layer *L)
{
	const struct qt_node *n = &g->nodes[ni];
	memset(L, 0, sizeof *L);
	L->node = ni;
	L->groups = 1;
	int64_t nw, nb = 0;
	if (!qt_is_weighted_op(n) || !strcmp(n->op_type, "ConvTranspose"))
		return 0;
	L->w = const_f32(g, n, 1, sole, &nw);
	if (!L->w)
		return 0;
	const struct qt_tensor *t = g->values[n->inputs[1]].init;
	int has_bias = n->n_inputs > 2 && n->inputs[2] >= 0;
	if (has_bias && !(L->b = const_f32(g, n, 2, sole, &nb)))
		return 0;
	if (!strcmp(n->op_type, "Conv")) {
		if (t->rank < 3)
			return 0;
		L->groups = (int)qt_node_attr_int(n, "group", 1);
		L->cout = t->dims[0];
		int64_t cg = t->dims[1];
		L->cin = cg * L->groups;
		L->inner = nw / (L->cout * cg);
		L->so = cg * L->inner;
		L->si = L->inner; /* local input channel i % cg */
		L->st = 1;
		if (L->groups < 1 || L->cout % L->groups)
			return 0;
	} else {
		if (t->rank != 2)
			return 0;
		int transB = !strcmp(n->op_type, "Gemm") && qt_node_attr_int(n, "transB", 0);
		if (!strcmp(n->op_type, "Gemm") && qt_node_attr_int(n, "transA", 0))
			return 0;
		L->inner = 1;
		L->st = 0;
		if (transB) {
			L->cout = t->dims[0], L->cin = t->dims[1], L->so = L->cin, L->si = 1;
		} else {
			L->cin = t->dims[0], L->cout = t->dims[1], L->so = 1, L->si = L->cout;
		}
	}
	if (L->b && nb != L->cout)
		return 0;
	return L->cout > 0 && L->cin > 0;
}

/* Pointer to element (o, local input channel il, t). */
static float *eq_at(const struct eq_layer *L, int64_t o, int64_t il, int64_t t)
{
	return L->w + o * L->so + il * L->si + t * L->st;
}

static double range_out(const struct eq_layer *L, int64_t o)
{
	int64_t cg = L->cin / L->groups;
	double r = 0;
	for (int64_t i = 0; i < cg; i++)
		for (int64_t t = 0; t < L->inner; t++)
			r = fmax(r, fabs(*eq_at(L, o, i, t)));
	return r;
}

/* Input channels [i * span, (i + 1) * span) of L as seen through a Flatten. */
static double range_in(const struct eq_layer *L, int64_t i, int64_t span)
{
	int64_t cg = L->cin / L->groups, opg = L->cout / L->groups;
	double r = 0;
	for (int64_t j = i * span; j < (i + 1) * span; j++) {
		int64_t grp = j / cg, il = j % cg;
		for (int64_t o = grp * opg; o < (grp + 1) * opg; o++)
			for (int64_t t = 0; t < L->inner; t++)
				r = fmax(r, fabs(*eq_at(L, o, il, t)));
	}
	return r;
}

static void scale_out(const struct eq_layer *L, int64_t o, double f)
{
	int64_t cg = L->cin / L->groups;
	for (int64_t i = 0; i < cg; i++)
		for (int64_t t = 0; t < L->inner; t++) {
			float *p = eq_at(L, o, i, t);
			*p = (float)(*p * f);
		}
	if (L->b)
		L->b[o] = (float)(L->b[o] * f);
}

static void scale_in(const struct eq_layer *L, int64_t i, int64_t span, double f)
{
	int64_t cg = L->cin / L->groups, opg = L->cout / L->groups;
	for (int64_t j = i * span; j < (i + 1) * span; j++) {
		int64_t grp = j / cg, il = j % cg;
		for (int64_t o = grp * opg; o < (grp + 1) * opg; o++)
			for (int64_t t = 0; t < L->inner; t++) {
				float *p = eq_at(L, o, il, t);
				*p = (float)(*p * f);
			}
	}
}

/* The one node reading value v (-1 when none, several, or a graph output). */
static int sole_consumer(const struct qt_graph *g, int v)
{
	if (g->values[v].is_output || g->values[v].n_consumers != 1)
		return -1;
	for (int ni = 0; ni < g->n_nodes; ni++)
		for (int k = 0; k < g->nodes[ni].n_inputs; k++)
			if (g->nodes[ni].inputs[k] == v)
				return ni;
	return -1;
}

static int commutes_with_scaling(const struct qt_node *n, int *flattens)
{
	static const char *const ops[] = {"Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
					  "Identity", "Dropout", NULL};
	if (n->domain[0] && strcmp(n->domain, "ai.onnx"))
		return 0;
	for (int i = 0; ops[i]; i++)
		if (!strcmp(n->op_type, ops[i]))
			return 1;
	if (!strcmp(n->op_type, "Flatten") && qt_node_attr_int(n, "axis", 1) == 1) {
		*flattens = 1;
		return 1;
	}
	return 0;
}

struct eq_pair {
	struct eq_layer a, b;
	int64_t span; /* B's input columns per channel of A (a Flatten of C x H x W: H * W) */
};

/* Find the pair starting at weighted node ai; 1 found, 0 none, -1 skipped for
 * a bounded activation, -2 skipped for shape/layout. */
static int find_pair(const struct qt_graph *g, int ai, struct eq_pair *p)
{
	const struct qt_node *a = &g->nodes[ai];
	if (!qt_is_weighted_op(a) || a->n_outputs != 1 || a->outputs[0] < 0)
		return 0;
	int v = a->outputs[0], flat = 0, bi;
	for (;;) {
		bi = sole_consumer(g, v);
		if (bi < 0)
			return 0;
		const struct qt_node *n = &g->nodes[bi];
		if (qt_is_weighted_op(n))
			break;
		if (!commutes_with_scaling(n, &flat) || n->n_inputs < 1 || n->inputs[0] != v || n->n_outputs != 1 ||
		    n->outputs[0] < 0)
			return 0;
		v = n->outputs[0];
	}
	if (g->nodes[bi].inputs[0] != v)
		return 0; /* the activation is B's weight, not its data input */
	if (a->act_fused && !(a->act_lo == 0.0f && isinf(a->act_hi) && a->act_hi > 0))
		return -1;
	if (!eq_layer_view(g, ai, 1, &p->a) || !eq_layer_view(g, bi, 1, &p->b))
		return -2;
	int a_conv = !strcmp(a->op_type, "Conv"), b_conv = !strcmp(g->nodes[bi].op_type, "Conv");
	if (b_conv) {
		if (!a_conv || flat || p->b.cin != p->a.cout)
			return -2;
		p->span = 1;
	} else {
		if (p->b.cin % p->a.cout || (a_conv && !flat && p->b.cin != p->a.cout) ||
		    (!a_conv && p->b.cin != p->a.cout))
			return -2;
		p->span = p->b.cin / p->a.cout;
	}
	return 1;
}

enum qt_status qt_pass_equalize(struct qt_graph *g, const struct qt_equalize_opts *o,
				struct qt_equalize_stats *stats_out)
{
	struct qt_equalize_stats st = {0};
	int max_iter = o && o->max_iter > 0 ? o->max_iter : 20;
	double tol = o && o->tol > 0 ? o->tol : 1e-4;
	struct eq_pair *pairs = calloc((size_t)g->n_nodes + 1, sizeof *pairs);
	if (!pairs)
		return qt_error(QT_E_NOMEM, "out of memory");
	int np = 0;
	for (int ni = 0; ni < g->n_nodes; ni++) {
		int r = find_pair(g, ni, &pairs[np]);
		if (r == 1)
			np++;
		else if (r == -1)
			st.skipped_clip++;
		else if (r == -2)
			st.skipped_shape++;
	}
	for (int k = 0; k < np; k++) {
		const struct eq_layer *L = &pairs[k].a;
		int64_t n = L->cout * (L->cin / L->groups) * L->inner;
		for (int64_t i = 0; i < n; i++)
			if (!isfinite(L->w[i])) {
				char lb[160];
				int node = L->node;
				free(pairs);
				return qt_error(QT_E_NUMERIC, "%s: weight %lld is not finite; cannot equalize",
						qt_node_label(g, &g->nodes[node], lb, sizeof lb), (long long)i);
			}
	}
	st.pairs = np;
	for (int it = 0; it < max_iter && np; it++) {
		double worst = 0;
		for (int k = 0; k < np; k++) {
			const struct eq_pair *p = &pairs[k];
			for (int64_t i = 0; i < p->a.cout; i++) {
				double r1 = range_out(&p->a, i), r2 = range_in(&p->b, i, p->span);
				if (!(r1 > 0) || !(r2 > 0))
					continue; /* a dead channel: nothing to balance */
				double s = sqrt(r1 / r2);
				worst = fmax(worst, fabs(log(s)));
				scale_out(&p->a, i, 1.0 / s);
				scale_in(&p->b, i, p->span, s);
			}
		}
		st.iterations = it + 1;
		st.last_max_log_s = worst;
		if (worst < tol)
			break;
	}
	free(pairs);
	if (stats_out)
		*stats_out = st;
	return QT_OK;
}

double qt_weight_range_spread(const struct qt_graph *g, int node)
{
	struct eq_layer L;
	if (!eq_layer_view(g, node, 0, &L))
		return -1;
	double lo = INFINITY, hi = 0;
	for (int64_t c = 0; c < L.cout; c++) {
		double r = range_out(&L, c);
		if (r > 0) {
			lo = fmin(lo, r);
			hi = fmax(hi, r);
		}
	}
	return hi > 0 ? hi / lo : -1;
}
