/* Graph passes that rewrite the IR: BatchNormalization folding, MatMul + bias
 * fusion, node removal. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qtool/quant.h"
#include "passes_int.h"

void qt_graph_remove_nodes(struct qt_graph *g, const char *dead)
{
	int w = 0;
	for (int i = 0; i < g->n_nodes; i++)
		if (!dead[i])
			g->nodes[w++] = g->nodes[i];
	g->n_nodes = w;
}

/* A float32 constant of the expected element count, or NULL. */
static const struct qt_tensor *const_f32(const struct qt_graph *g, int v, int64_t n)
{
	if (v < 0 || !g->values[v].init)
		return NULL;
	const struct qt_tensor *t = g->values[v].init;
	return (t->dtype == QT_DTYPE_F32 && qt_tensor_numel(t) == n) ? t : NULL;
}

/* Replace value v's constant by a fresh float32 copy the pass may write (arena-owned). */
static float *writable_f32(struct qt_graph *g, int v, const struct qt_tensor *src, int64_t n, int rank,
			   const int64_t *dims)
{
	struct qt_tensor *t = qt_graph_alloc(g, sizeof *t);
	float *d = qt_graph_alloc(g, (size_t)n * sizeof(float));
	if (!t || !d)
		return NULL;
	t->dtype = QT_DTYPE_F32;
	t->rank = rank;
	memcpy(t->dims, dims, (size_t)rank * sizeof(int64_t));
	t->data = d;
	t->nbytes = (size_t)n * sizeof(float);
	if (src)
		memcpy(d, src->data, t->nbytes);
	g->values[v].init = t;
	g->values[v].dtype = QT_DTYPE_F32;
	g->values[v].rank = rank;
	memcpy(g->values[v].dims, dims, (size_t)rank * sizeof(int64_t));
	return d;
}

/* Make value bv layer p's bias (input 2); `ins` is p->inputs, or a fresh
 * array of 3 (graph arena) when p had only x and W. */
static void set_bias(struct qt_node *p, int *ins, int bv)
{
	if (ins != p->inputs) {
		ins[0] = p->inputs[0];
		ins[1] = p->inputs[1];
		p->inputs = ins;
		p->n_inputs = 3;
	}
	p->inputs[2] = bv;
}

/*
 * y = gamma * (x - mean) / sqrt(var + eps) + beta after x = W * in + b folds to
 * W' = W * k, b' = (b - mean) * k + beta with k = gamma / sqrt(var + eps), per
 * output channel. Computed in double, stored as float.
 */
enum qt_status qt_pass_fold_bn(struct qt_graph *g, int *n_out)
{
	char *dead = calloc((size_t)g->n_nodes + 1, 1);
	int folded = 0;
	if (!dead)
		return qt_error(QT_E_NOMEM, "out of memory");
	for (int bi = 0; bi < g->n_nodes; bi++) {
		struct qt_node *bn = &g->nodes[bi];
		if (strcmp(bn->op_type, "BatchNormalization") || bn->n_inputs < 5 || bn->inputs[0] < 0)
			continue;
		if (qt_node_attr_int(bn, "training_mode", 0))
			continue;
		int x = bn->inputs[0];
		struct qt_value *xv = &g->values[x];
		if (xv->producer < 0 || xv->n_consumers != 1 || xv->is_output)
			continue;
		int pi = xv->producer;
		struct qt_node *p = &g->nodes[pi];
		int is_conv = !strcmp(p->op_type, "Conv"), is_convt = !strcmp(p->op_type, "ConvTranspose");
		if (!(is_conv || is_convt) || p->n_inputs < 2 || p->n_outputs != 1)
			continue;
		int wv = p->inputs[1];
		if (wv < 0 || !g->values[wv].init || g->values[wv].init->dtype != QT_DTYPE_F32)
			continue;
		const struct qt_tensor *w = g->values[wv].init;
		if (w->rank < 3)
			continue;
		int64_t group = qt_node_attr_int(p, "group", 1);
		int64_t C = is_conv ? w->dims[0] : w->dims[1] * group;
		const struct qt_tensor *sc = const_f32(g, bn->inputs[1], C), *bb = const_f32(g, bn->inputs[2], C),
				       *mu = const_f32(g, bn->inputs[3], C), *var = const_f32(g, bn->inputs[4], C);
		const struct qt_tensor *bias = p->n_inputs > 2 ? const_f32(g, p->inputs[2], C) : NULL;
		if (!sc || !bb || !mu || !var || (p->n_inputs > 2 && p->inputs[2] >= 0 && !bias))
			continue;
		/* Everything is decided before anything is written: a weight shared
		 * with another node is left alone, and the folded bias always goes to
		 * a new value of its own (biases, even BN's beta, may be shared:
		 * deduplicated initializers are common). */
		if (g->values[wv].n_consumers > 1)
			continue;
		char bname[512];
		snprintf(bname, sizeof bname, "%s.folded_bias", g->values[p->outputs[0]].name);
		for (int k = 1; qt_graph_find_value(g, bname) >= 0; k++)
			snprintf(bname, sizeof bname, "%s.folded_bias%d", g->values[p->outputs[0]].name, k);
		int *ins = p->n_inputs < 3 ? qt_graph_alloc(g, 3 * sizeof *ins) : p->inputs;
		float *k = malloc((size_t)C * sizeof *k);
		int bv = qt_graph_value(g, bname);
		/* qt_graph_value may move the value array (xv); nodes stay put. */
		p = &g->nodes[pi];
		int64_t bdims[1] = {C};
		float *bd = bv >= 0 ? writable_f32(g, bv, NULL, C, 1, bdims) : NULL;
		double eps = qt_node_attr_float(bn, "epsilon", 1e-5f);
		int64_t n = qt_tensor_numel(w);
		float *wd = writable_f32(g, wv, w, n, w->rank, w->dims);
		if (!ins || !k || !bd || !wd) {
			free(k);
			free(dead);
			return qt_error(QT_E_NOMEM, "out of memory folding BatchNormalization");
		}
		const float *s = sc->data, *be = bb->data, *m = mu->data, *va = var->data;
		for (int64_t c = 0; c < C; c++)
			k[c] = (float)((double)s[c] / sqrt((double)va[c] + eps));
		if (is_conv) {
			int64_t per = n / C;
			for (int64_t c = 0; c < C; c++)
				for (int64_t j = 0; j < per; j++)
					wd[c * per + j] *= k[c];
		} else {
			/* ConvTranspose weight: [Cin, Cout/group, k...]; channel = g*(Cout/group) + o. */
			int64_t cin = w->dims[0], cog = w->dims[1], per = n / (cin * cog), cin_g = cin / group;
			for (int64_t i = 0; i < cin; i++)
				for (int64_t o = 0; o < cog; o++) {
					int64_t c = (i / cin_g) * cog + o;
					for (int64_t j = 0; j < per; j++)
						wd[(i * cog + o) * per + j] *= k[c];
				}
		}
		const float *b0 = bias ? bias->data : NULL;
		for (int64_t c = 0; c < C; c++)
			bd[c] = (float)(((b0 ? (double)b0[c] : 0.0) - m[c]) * k[c] + be[c]);
		free(k);
		set_bias(p, ins, bv);
		/* The conv now produces the BN's output value directly. */
		p->outputs[0] = bn->outputs[0];
		dead[bi] = 1;
		folded++;
	}
	qt_graph_remove_nodes(g, dead);
	free(dead);
	if (n_out)
		*n_out = folded;
	return qt_graph_finalize(g);
}

/* Index of the first dimension that is not 1, for a constant that is a
 * vector [.., 1, N]: returns N, or -1 when the shape is anything else. */
static int64_t vector_len(const struct qt_tensor *t)
{
	for (int d = 0; d + 1 < t->rank; d++)
		if (t->dims[d] != 1)
			return -1;
	return t->rank ? t->dims[t->rank - 1] : 1;
}

enum qt_status qt_pass_fuse_matmul_bias(struct qt_graph *g, int *n_out)
{
	char *dead = calloc((size_t)g->n_nodes + 1, 1);
	int fused = 0;
	if (!dead)
		return qt_error(QT_E_NOMEM, "out of memory");
	for (int ai = 0; ai < g->n_nodes; ai++) {
		struct qt_node *add = &g->nodes[ai];
		if (strcmp(add->op_type, "Add") || add->domain[0] || add->n_inputs != 2 || add->n_outputs != 1 ||
		    add->inputs[0] < 0 || add->inputs[1] < 0 || g->opset < 7)
			continue;
		/* Which input is the MatMul's output, which the constant bias. */
		for (int side = 0; side < 2; side++) {
			int y = add->inputs[side], bv = add->inputs[1 - side];
			const struct qt_value *yv = &g->values[y];
			if (yv->producer < 0 || yv->n_consumers != 1 || yv->is_output || dead[yv->producer])
				continue;
			struct qt_node *mm = &g->nodes[yv->producer];
			if (strcmp(mm->op_type, "MatMul") || mm->domain[0] || mm->n_inputs != 2 || mm->n_outputs != 1 ||
			    mm->inputs[1] < 0)
				continue;
			const struct qt_tensor *w = g->values[mm->inputs[1]].init, *b = g->values[bv].init;
			if (!w || w->dtype != QT_DTYPE_F32 || w->rank != 2 || !b || b->dtype != QT_DTYPE_F32 ||
			    vector_len(b) != w->dims[1])
				continue;
			/* The output keeps MatMul's shape only if the bias adds no
			 * dimensions: its rank must not exceed the activation's. */
			const struct qt_value *av = &g->values[mm->inputs[0]];
			if (b->rank > 1 && (av->rank < 0 || b->rank > av->rank))
				continue;
			int *ins = qt_graph_alloc(g, 3 * sizeof *ins);
			char *op = qt_graph_strdup(g, QT_OP_MATMUL_BIAS), *dom = qt_graph_strdup(g, QT_DOMAIN_QTOOL);
			if (!ins || !op || !dom) {
				free(dead);
				return qt_error(QT_E_NOMEM, "out of memory");
			}
			ins[0] = mm->inputs[0];
			ins[1] = mm->inputs[1];
			ins[2] = bv;
			mm->inputs = ins;
			mm->n_inputs = 3;
			mm->op_type = op;
			mm->domain = dom;
			mm->outputs[0] = add->outputs[0];
			dead[ai] = 1;
			fused++;
			break;
		}
	}
	qt_graph_remove_nodes(g, dead);
	free(dead);
	if (n_out)
		*n_out = fused;
	return qt_graph_finalize(g);
}

/* A fresh value named after `base` and `tag` holding tensor t (shared). -1 on out-of-memory. */
static int own_value(struct qt_graph *g, int base, const char *tag, struct qt_tensor *t)
{
	char name[512];
	snprintf(name, sizeof name, "%s.%s", g->values[base].name, tag);
	for (int k = 1; qt_graph_find_value(g, name) >= 0; k++)
		snprintf(name, sizeof name, "%s.%s%d", g->values[base].name, tag, k);
	int v = qt_graph_value(g, name);
	if (v < 0)
		return -1;
	struct qt_value *val = &g->values[v], *src = &g->values[base];
	val->init = t;
	val->dtype = src->dtype;
	val->rank = src->rank;
	memcpy(val->dims, src->dims, sizeof val->dims);
	return v;
}

enum qt_status qt_pass_unshare_weights(struct qt_graph *g, int *n_out)
{
	int made = 0;
	for (int ni = 0; ni < g->n_nodes; ni++) {
		struct qt_node *n = &g->nodes[ni];
		if (!qt_is_weighted_op(n))
			continue;
		for (int k = 1; k < 3 && k < n->n_inputs; k++) {
			int v = n->inputs[k];
			if (v < 0 || !g->values[v].init || (g->values[v].n_consumers < 2 && !g->values[v].is_output))
				continue;
			char tag[64];
			snprintf(tag, sizeof tag, "%s%d", k == 1 ? "w" : "b", ni);
			int nv = own_value(g, v, tag, g->values[v].init);
			if (nv < 0)
				return qt_error(QT_E_NOMEM, "out of memory");
			g->nodes[ni].inputs[k] = nv;
			g->values[v].n_consumers--; /* keeps the count right for the next reader */
			g->values[nv].n_consumers = 1;
			made++;
		}
	}
	if (n_out)
		*n_out = made;
	return made ? qt_graph_prune(g, NULL) : QT_OK;
}

/* Per-channel values of constant c for a layer output of rank `yr` with
 * channel axis `ax` and C channels: k[ch] for every channel, or 0 when c does
 * not broadcast along the channel axis only. */
static int per_channel(const struct qt_tensor *c, int yr, int ax, int64_t C, double *k)
{
	if (!c || c->dtype != QT_DTYPE_F32 || c->rank > yr)
		return 0;
	int64_t n = qt_tensor_numel(c);
	const float *d = c->data;
	if (n == 1) {
		for (int64_t i = 0; i < C; i++)
			k[i] = d[0];
		return 1;
	}
	if (n != C)
		return 0;
	/* Right-aligned broadcast: c's dim at the channel axis must be C, the others 1. */
	int off = yr - c->rank;
	if (ax < off || c->dims[ax - off] != C)
		return 0;
	for (int i = 0; i < C; i++)
		k[i] = d[i];
	return 1;
}

/* One sweep: a chain Conv -> Mul -> Add folds one op per sweep, since the
 * producers recorded by qt_graph_finalize are stale after the first. */
static enum qt_status fold_affine_once(struct qt_graph *g, int *n_out)
{
	char *dead = calloc((size_t)g->n_nodes + 1, 1);
	if (!dead)
		return qt_error(QT_E_NOMEM, "out of memory");
	int folded = 0;
	for (int ei = 0; ei < g->n_nodes; ei++) {
		struct qt_node *e = &g->nodes[ei];
		const char *op = e->op_type;
		int is_mul = !strcmp(op, "Mul"), is_div = !strcmp(op, "Div"), is_add = !strcmp(op, "Add"),
		    is_sub = !strcmp(op, "Sub");
		if (e->domain[0] || !(is_mul || is_div || is_add || is_sub) || e->n_inputs != 2 || e->n_outputs != 1 ||
		    e->inputs[0] < 0 || e->inputs[1] < 0)
			continue;
		/* Which side is the layer output: Div and Sub only as y op c. */
		for (int side = 0; side < ((is_div || is_sub) ? 1 : 2); side++) {
			int y = e->inputs[side], cv = e->inputs[1 - side];
			const struct qt_value *yv = &g->values[y];
			if (yv->producer < 0 || yv->n_consumers != 1 || yv->is_output || dead[yv->producer] || yv->init)
				continue;
			int pi = yv->producer;
			struct qt_node *p = &g->nodes[pi];
			int conv = !strcmp(p->op_type, "Conv") && !p->domain[0];
			int gemm = !strcmp(p->op_type, "Gemm") && !p->domain[0];
			if (!(conv || gemm) || p->n_inputs < 2 || p->n_outputs != 1 || p->inputs[1] < 0)
				continue;
			if (gemm && (qt_node_attr_int(p, "transA", 0) || qt_node_attr_float(p, "alpha", 1) != 1.0f ||
				     qt_node_attr_float(p, "beta", 1) != 1.0f))
				continue;
			int wv = p->inputs[1], bv = p->n_inputs > 2 ? p->inputs[2] : -1;
			const struct qt_tensor *w = g->values[wv].init;
			if (!w || w->dtype != QT_DTYPE_F32 || g->values[wv].n_consumers != 1 || w->rank < 2)
				continue;
			int axis = conv ? 0 : qt_node_attr_int(p, "transB", 0) ? 0 : 1;
			int64_t C = w->dims[axis];
			const struct qt_tensor *b = bv >= 0 ? g->values[bv].init : NULL;
			if (bv >= 0 && (!b || b->dtype != QT_DTYPE_F32 || qt_tensor_numel(b) != C || g->values[bv].n_consumers != 1))
				continue;
			int yr = conv ? w->rank : 2; /* Conv: [N, C, spatial...] as the weight's rank; Gemm: [N, C] */
			double *k = malloc((size_t)C * sizeof *k);
			if (!k) {
				free(dead);
				return qt_error(QT_E_NOMEM, "out of memory");
			}
			int ok = per_channel(g->values[cv].init, yr, 1, C, k);
			for (int64_t c = 0; ok && is_div && c < C; c++)
				ok = k[c] != 0;
			if (!ok) {
				free(k);
				continue;
			}
			/* New tensors for W (Mul, Div) and b: the old ones may be shared views. */
			int64_t n = qt_tensor_numel(w);
			int64_t bdims[1] = {C};
			int nb = bv;
			if (nb < 0) {
				char name[512];
				snprintf(name, sizeof name, "%s.affine_bias", g->values[y].name);
				for (int j = 1; qt_graph_find_value(g, name) >= 0; j++)
					snprintf(name, sizeof name, "%s.affine_bias%d", g->values[y].name, j);
				nb = qt_graph_value(g, name);
				p = &g->nodes[pi];
			}
			float *bd = nb >= 0 ? writable_f32(g, nb, b, C, 1, bdims) : NULL;
			float *wd = (is_mul || is_div) ? writable_f32(g, wv, w, n, w->rank, w->dims) : (float *)w->data;
			int *ins = p->n_inputs < 3 ? qt_graph_alloc(g, 3 * sizeof *ins) : p->inputs;
			if (!bd || !wd || !ins) {
				free(k);
				free(dead);
				return qt_error(QT_E_NOMEM, "out of memory folding a constant into a layer");
			}
			if (!b)
				memset(bd, 0, (size_t)C * sizeof *bd);
			int64_t per = n / C;
			for (int64_t c = 0; c < C; c++) {
				double f = is_div ? 1.0 / k[c] : k[c];
				if (is_mul || is_div) {
					for (int64_t j = 0; j < per; j++) {
						/* Conv and transB Gemm: channel-major rows; plain Gemm [K, C]: columns. */
						int64_t idx = axis == 0 ? c * per + j : j * C + c;
						wd[idx] = (float)((double)wd[idx] * f);
					}
					bd[c] = (float)((double)bd[c] * f);
				} else {
					bd[c] = (float)((double)bd[c] + (is_sub ? -k[c] : k[c]));
				}
			}
			free(k);
			set_bias(p, ins, nb);
			p->outputs[0] = e->outputs[0];
			dead[ei] = 1;
			folded++;
			break;
		}
	}
	qt_graph_remove_nodes(g, dead);
	free(dead);
	if (n_out)
		*n_out = folded;
	return qt_graph_finalize(g);
}

enum qt_status qt_pass_fold_affine(struct qt_graph *g, int *n_out)
{
	int total = 0, n;
	enum qt_status st;
	do {
		if ((st = fold_affine_once(g, &n)) != QT_OK)
			return st;
		total += n;
	} while (n > 0);
	if (n_out)
		*n_out = total;
	return QT_OK;
}

/* ---- LayerNorm decomposition -> one LayerNormalization node ---- */

/* The only node reading value v (index), or -1 when v has another number of
 * readers or is a graph output. */
static int sole_consumer(const struct qt_graph *g, int v)
{
	if (v < 0 || g->values[v].n_consumers != 1 || g->values[v].is_output)
		return -1;
	for (int i = 0; i < g->n_nodes; i++)
		for (int k = 0; k < g->nodes[i].n_inputs; k++)
			if (g->nodes[i].inputs[k] == v)
				return i;
	return -1;
}

/* Node index if node i is a plain ai.onnx `op` with one output, else -1. */
static int is_op(const struct qt_graph *g, int i, const char *op)
{
	return i >= 0 && !g->nodes[i].domain[0] && !strcmp(g->nodes[i].op_type, op) && g->nodes[i].n_outputs == 1 &&
			       g->nodes[i].outputs[0] >= 0
		       ? i
		       : -1;
}

/* The scalar float constant v holds, as a double; 0 when v is not one. */
static int scalar_f32(const struct qt_graph *g, int v, double *out)
{
	const struct qt_tensor *t = const_f32(g, v, 1);
	if (!t)
		return 0;
	*out = *(const float *)t->data;
	return 1;
}

/* The other input of binary node n than value v, or -1 (also when both are v). */
static int other_input(const struct qt_node *n, int v)
{
	if (n->n_inputs != 2)
		return -1;
	return n->inputs[0] == v && n->inputs[1] != v ? n->inputs[1] : n->inputs[1] == v && n->inputs[0] != v ? n->inputs[0]
														 : -1;
}

/*
 * First normalised axis of ReduceMean node r (keepdims 1, axes a trailing run
 * [-k, -1], or [rank-k, rank) when x's rank is known) as a negative number, or
 * 0 when it is not such a reduction.
 */
static int trailing_axes(const struct qt_graph *g, const struct qt_node *r, int x_rank)
{
	const int64_t *ax;
	int n = qt_node_attr_ints(r, "axes", &ax);
	if (n <= 0 || n > QT_MAX_RANK || r->n_inputs != 1 || qt_node_attr_int(r, "keepdims", 1) != 1)
		return 0; /* opset 18 passes axes as an input: not matched */
	int seen[QT_MAX_RANK] = {0};
	for (int i = 0; i < n; i++) {
		int64_t a = ax[i] < 0 ? ax[i] : x_rank > 0 ? ax[i] - x_rank : 1;
		if (a < -n || a >= 0 || seen[-a - 1]++)
			return 0;
	}
	return -n;
}

/* Same axes attribute on two ReduceMean nodes. */
static int same_axes(const struct qt_node *a, const struct qt_node *b)
{
	const int64_t *x, *y;
	int n = qt_node_attr_ints(a, "axes", &x), m = qt_node_attr_ints(b, "axes", &y);
	return n == m && n > 0 && !memcmp(x, y, (size_t)n * sizeof *x);
}

enum qt_status qt_pass_fuse_layernorm(struct qt_graph *g, int *n_out)
{
	char *dead = calloc((size_t)g->n_nodes + 1, 1);
	int fused = 0;
	if (!dead)
		return qt_error(QT_E_NOMEM, "out of memory");
	for (int mi = 0; mi < g->n_nodes && g->opset >= 7; mi++) {
		if (dead[mi] || is_op(g, mi, "ReduceMean") < 0 || g->nodes[mi].inputs[0] < 0)
			continue;
		const struct qt_node *m1 = &g->nodes[mi];
		int x = m1->inputs[0], mean = m1->outputs[0];
		int axis = trailing_axes(g, m1, g->values[x].rank);
		/* d = Sub(x, mean), read by the square and the division only. */
		int si = is_op(g, sole_consumer(g, mean), "Sub");
		if (!axis || si < 0 || g->nodes[si].n_inputs != 2 || g->nodes[si].inputs[0] != x ||
		    g->nodes[si].inputs[1] != mean)
			continue;
		int d = g->nodes[si].outputs[0];
		/* Its readers: the square (Pow(d, 2) or Mul(d, d)) and the Div, nothing else. */
		int pi = -1, di = -1, other = g->values[d].is_output;
		for (int i = 0; i < g->n_nodes && !other; i++) {
			const struct qt_node *c = &g->nodes[i];
			int reads = 0;
			for (int k = 0; k < c->n_inputs; k++)
				reads |= c->inputs[k] == d;
			if (!reads)
				continue;
			double e;
			if (is_op(g, i, "Pow") >= 0 && c->n_inputs == 2 && c->inputs[0] == d && c->inputs[1] != d &&
			    scalar_f32(g, c->inputs[1], &e) && e == 2.0 && pi < 0)
				pi = i;
			else if (is_op(g, i, "Mul") >= 0 && c->n_inputs == 2 && c->inputs[0] == d && c->inputs[1] == d &&
				 pi < 0)
				pi = i;
			else if (is_op(g, i, "Div") >= 0 && c->n_inputs == 2 && c->inputs[0] == d && c->inputs[1] != d &&
				 di < 0)
				di = i;
			else
				other = 1;
		}
		if (other || pi < 0 || di < 0)
			continue;
		/* var = ReduceMean(d^2) over the same axes; s = Sqrt(var + eps); n = d / s. */
		int vi = is_op(g, sole_consumer(g, g->nodes[pi].outputs[0]), "ReduceMean");
		if (vi < 0 || !same_axes(&g->nodes[vi], m1) || qt_node_attr_int(&g->nodes[vi], "keepdims", 1) != 1)
			continue;
		int var = g->nodes[vi].outputs[0];
		int ai = is_op(g, sole_consumer(g, var), "Add");
		double eps;
		if (ai < 0 || !scalar_f32(g, other_input(&g->nodes[ai], var), &eps) || !(eps >= 0) || eps > 1)
			continue;
		int qi = is_op(g, sole_consumer(g, g->nodes[ai].outputs[0]), "Sqrt");
		if (qi < 0 || sole_consumer(g, g->nodes[qi].outputs[0]) != di || g->nodes[di].inputs[1] != g->nodes[qi].outputs[0])
			continue;
		/* Optional y = n * gamma, z = y + beta with constants of at most the normalised rank. */
		int last = di, gamma = -1, beta = -1;
		int k = is_op(g, sole_consumer(g, g->nodes[last].outputs[0]), "Mul");
		int c = k >= 0 ? other_input(&g->nodes[k], g->nodes[last].outputs[0]) : -1;
		if (c >= 0 && g->values[c].init && g->values[c].init->dtype == QT_DTYPE_F32 &&
		    g->values[c].init->rank <= -axis) {
			gamma = c;
			last = k;
		}
		k = is_op(g, sole_consumer(g, g->nodes[last].outputs[0]), "Add");
		c = k >= 0 ? other_input(&g->nodes[k], g->nodes[last].outputs[0]) : -1;
		if (gamma >= 0 && c >= 0 && g->values[c].init && g->values[c].init->dtype == QT_DTYPE_F32 &&
		    g->values[c].init->rank <= -axis) {
			beta = c;
			last = k;
		}
		int y = g->nodes[last].outputs[0];
		if (gamma < 0) { /* LayerNormalization needs a Scale: a constant 1 */
			char name[512];
			snprintf(name, sizeof name, "%s.ln_scale", g->values[y].name);
			int v = qt_graph_find_value(g, name) < 0 ? qt_graph_value(g, name) : -1;
			float *one = v >= 0 ? writable_f32(g, v, NULL, 1, 1, (int64_t[]){1}) : NULL;
			if (!one) {
				free(dead);
				return qt_error(QT_E_NOMEM, "out of memory");
			}
			*one = 1.0f;
			gamma = v;
		}
		int *ins = qt_graph_alloc(g, 3 * sizeof *ins);
		struct qt_attr *at = qt_graph_alloc(g, 2 * sizeof *at);
		char *op = qt_graph_strdup(g, QT_OP_LAYERNORM), *dom = qt_graph_strdup(g, QT_DOMAIN_QTOOL);
		char *an = qt_graph_strdup(g, "axis"), *en = qt_graph_strdup(g, "epsilon");
		if (!ins || !at || !op || !dom || !an || !en) {
			free(dead);
			return qt_error(QT_E_NOMEM, "out of memory");
		}
		memset(at, 0, 2 * sizeof *at);
		at[0].name = an;
		at[0].type = QT_ATTR_INT;
		at[0].i = axis;
		at[1].name = en;
		at[1].type = QT_ATTR_FLOAT;
		at[1].f = (float)eps;
		ins[0] = x;
		ins[1] = gamma;
		ins[2] = beta;
		/* The first ReduceMean becomes the fused node; the rest go. */
		struct qt_node *ln = &g->nodes[mi];
		ln->op_type = op;
		ln->domain = dom;
		ln->inputs = ins;
		ln->n_inputs = beta >= 0 ? 3 : 2;
		ln->attrs = at;
		ln->n_attrs = 2;
		ln->outputs[0] = y;
		int chain[] = {si, pi, vi, ai, qi, di, last};
		for (size_t i = 0; i < sizeof chain / sizeof chain[0]; i++)
			dead[chain[i]] = 1;
		for (int i = di; i != last;) { /* the Mul between Div and the last Add */
			i = sole_consumer(g, g->nodes[i].outputs[0]);
			if (i < 0)
				break;
			dead[i] = 1;
		}
		fused++;
	}
	qt_graph_remove_nodes(g, dead);
	free(dead);
	if (n_out)
		*n_out = fused;
	return qt_graph_finalize(g);
}
