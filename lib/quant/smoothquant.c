/*
 * SmoothQuant: a float graph rewrite that moves quantization difficulty from
 * activations with outlier channels to the weights that read them.
 *
 * For a linear layer y = x W (x's channel j is row j of W), dividing x_j by
 * s_j > 0 and multiplying row j of W by s_j keeps y. The division is folded
 * into the op that produces x, so nothing is added to the graph:
 *  - LayerNormalization over the last axis: scale_j / s_j and bias_j / s_j;
 *  - Mul by a constant that is a scalar or one value per channel of the last
 *    axis (GELU's closing "* 0.5", a layer scale): the constant becomes
 *    c_j / s_j per channel;
 * optionally through a ReduceMean over other axes (the mean-pooling before a
 * classifier head), which is linear and keeps the channel axis. Every reader
 * of x must be such a linear layer (MatMul, ai.qtool MatMulBias, Gemm
 * without transA, with a constant float weight of its own), because all of
 * them see the divided x. An activation whose producer can absorb nothing is
 * left alone and counted: an inserted Mul would not help here, since in
 * qtool's quantized graph its input would itself be quantized per tensor
 * with the outlier channels still in it.
 *
 * Choice of s, per input channel j: s_j = max|x_j|^alpha / max|W_j|^(1 -
 * alpha), max|x_j| over the data, max|W_j| over row j of every reader's
 * weight. After smoothing max|x_j / s_j| = (max|x_j| max|W_j|)^(1 - alpha):
 * at alpha = 0.5 each channel's activation and weight ranges are equal.
 * With alpha < 0 ("auto"), alpha is searched per activation over {0, 0.1,
 * ..., 1} and "no smoothing", minimising the readers' output error
 * sum ||Qa(x / s) Qw(s W) - x W||^2 on rows sampled from the data, with Qa
 * per-tensor asymmetric min/max at the activation bits and Qw symmetric per
 * output channel (or per tensor) absmax at the weight bits: a model of the
 * quantizer later stages apply, good enough to rank alphas.
 *
 * Float: statistics and s in double; weights and the absorbing constants are
 * rescaled with one float multiplication or division each, so the smoothed
 * graph computes the same function up to float rounding (a few ulp per
 * weight). The error search runs in float (sgemm) and sums in double.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "qtool/calib.h"
#include "qtool/dataset.h"
#include "qtool/quant.h"

#define SQ_MAX_READERS 8
#define SQ_ROWS 1024 /* rows sampled per activation for the alpha search */

/* One smoothed activation: the readers of x and the op that absorbs 1/s. */
struct sq_group {
	int x;                     /* the value the readers multiply */
	int prod;                  /* absorbing node: LayerNormalization or Mul */
	int cidx;                  /* Mul: which input is the constant */
	int n_readers;
	int readers[SQ_MAX_READERS];
	int64_t K;
	double *amax;              /* [K] max |x_j| over the data */
	float *rows;               /* [SQ_ROWS][K] sampled rows, for the search */
	int64_t n_rows, seen, stride;
};

/* Weight of reader n as element (j, o): input channel j, output o. */
struct sq_w {
	float *w;
	int64_t K, N, sj, so;
};

static int sq_weight(const struct qt_graph *g, const struct qt_node *n, struct sq_w *w)
{
	if (!qt_is_weighted_op(n) || !strcmp(n->op_type, "Conv") || !strcmp(n->op_type, "ConvTranspose") ||
	    n->n_inputs < 2 || n->inputs[1] < 0)
		return 0;
	const struct qt_value *v = &g->values[n->inputs[1]];
	const struct qt_tensor *t = v->init;
	if (!t || t->dtype != QT_DTYPE_F32 || t->rank != 2 || v->n_consumers != 1)
		return 0;
	w->w = t->data;
	if (!strcmp(n->op_type, "Gemm")) {
		if (qt_node_attr_int(n, "transA", 0))
			return 0;
		if (qt_node_attr_int(n, "transB", 0)) {
			w->N = t->dims[0], w->K = t->dims[1], w->sj = 1, w->so = w->K;
			return 1;
		}
	}
	w->K = t->dims[0], w->N = t->dims[1], w->sj = w->N, w->so = 1;
	return 1;
}

/* The one node reading value v with v as input 0, or -1. */
static int sole_reader(const struct qt_graph *g, int v)
{
	if (g->values[v].is_output || g->values[v].n_consumers != 1)
		return -1;
	for (int ni = 0; ni < g->n_nodes; ni++)
		for (int k = 0; k < g->nodes[ni].n_inputs; k++)
			if (g->nodes[ni].inputs[k] == v)
				return k == 0 ? ni : -1;
	return -1;
}

/* Constant float input k of n with numel 1 or K (a per-channel vector along
 * the last axis: every other dim 1). */
static int per_channel_const(const struct qt_graph *g, const struct qt_node *n, int k, int64_t K)
{
	if (k >= n->n_inputs || n->inputs[k] < 0)
		return 0;
	const struct qt_tensor *t = g->values[n->inputs[k]].init;
	if (!t || t->dtype != QT_DTYPE_F32)
		return 0;
	int64_t numel = qt_tensor_numel(t);
	if (numel == 1)
		return 1;
	return numel == K && t->rank >= 1 && t->dims[t->rank - 1] == K;
}

/*
 * Find the producer of x that can absorb 1/s for a K-channel last axis:
 * directly, or through one ReduceMean whose axes exclude the last. 1 and
 * G->prod set, else 0.
 */
static int find_absorber(const struct qt_graph *g, int x, int64_t K, struct sq_group *G)
{
	int p = g->values[x].producer;
	if (p < 0)
		return 0;
	const struct qt_node *n = &g->nodes[p];
	if (!strcmp(n->op_type, "ReduceMean") && n->n_inputs == 1 && n->inputs[0] >= 0) {
		const int64_t *ax;
		int na = qt_node_attr_ints(n, "axes", &ax);
		/* The last axis must stay: never -1, nor rank - 1 when the rank is
		 * known (otherwise the data run's channel check catches it). */
		int src = n->inputs[0], r = g->values[src].rank;
		if (na < 1)
			return 0;
		for (int i = 0; i < na; i++)
			if (ax[i] == -1 || (r > 0 && ax[i] == r - 1))
				return 0;
		if (sole_reader(g, src) != p)
			return 0;
		p = g->values[src].producer;
		if (p < 0)
			return 0;
		n = &g->nodes[p];
	}
	if (n->domain[0] && strcmp(n->domain, "ai.onnx"))
		return 0;
	if (!strcmp(n->op_type, "LayerNormalization")) {
		if (qt_node_attr_int(n, "axis", -1) != -1 || n->n_inputs < 2 || !per_channel_const(g, n, 1, K) ||
		    qt_tensor_numel(g->values[n->inputs[1]].init) != K)
			return 0;
		if (n->n_inputs > 2 && n->inputs[2] >= 0 &&
		    (!per_channel_const(g, n, 2, K) || qt_tensor_numel(g->values[n->inputs[2]].init) != K))
			return 0;
		G->prod = p;
		return 1;
	}
	if (!strcmp(n->op_type, "Mul") && n->n_inputs == 2 && n->inputs[0] >= 0 && n->inputs[1] >= 0) {
		int c0 = g->values[n->inputs[0]].init != NULL, c1 = g->values[n->inputs[1]].init != NULL;
		if (c0 == c1 || !per_channel_const(g, n, c0 ? 0 : 1, K))
			return 0;
		G->prod = p;
		G->cidx = c0 ? 0 : 1;
		return 1;
	}
	return 0;
}

/* Group the planned linear readers by the activation they read. Returns the
 * number of groups; *skipped_out counts readers left alone. */
static int find_groups(const struct qt_graph *g, struct sq_group *G, int *skipped_out)
{
	int ng = 0, skipped = 0;
	char *done = calloc((size_t)g->n_values + 1, 1);
	if (!done)
		return -1;
	for (int ni = 0; ni < g->n_nodes; ni++) {
		const struct qt_node *n = &g->nodes[ni];
		struct sq_w w;
		if (!qt_is_weighted_op(n) || n->n_inputs < 2 || n->inputs[0] < 0 || !g->values[n->inputs[1]].init)
			continue;
		int x = n->inputs[0];
		if (done[x])
			continue;
		done[x] = 1;
		struct sq_group *q = &G[ng];
		memset(q, 0, sizeof *q);
		q->x = x;
		int ok = !g->values[x].is_output && g->values[x].dtype == QT_DTYPE_F32, readers = 0, layers = 0;
		for (int c = 0; c < g->n_nodes; c++)
			for (int k = 0; k < g->nodes[c].n_inputs; k++) {
				if (g->nodes[c].inputs[k] != x)
					continue;
				readers++;
				layers += qt_is_weighted_op(&g->nodes[c]);
				if (k != 0 || !sq_weight(g, &g->nodes[c], &w) || q->n_readers == SQ_MAX_READERS ||
				    (q->n_readers && w.K != q->K)) {
					ok = 0;
					continue;
				}
				q->K = w.K;
				q->readers[q->n_readers++] = c;
			}
		ok = ok && readers == q->n_readers && q->K > 0 && find_absorber(g, x, q->K, q);
		if (ok)
			ng++;
		else
			skipped += layers;
	}
	free(done);
	*skipped_out = skipped;
	return ng;
}

/* ---- Per-channel statistics from the data ---- */

struct sq_collect {
	struct qt_graph *g;
	int *by_value; /* value -> group index or -1 */
	struct sq_group *G;
	int64_t samples;
	int want_rows;
};

static enum qt_status collect_observer(void *user, int value, struct qt_tensor *t)
{
	struct sq_collect *c = user;
	qt_fused_act_observer(c->g, value, t);
	int gi = c->by_value[value];
	if (gi < 0 || t->dtype != QT_DTYPE_F32)
		return QT_OK;
	struct sq_group *q = &c->G[gi];
	if (t->rank < 1 || t->dims[t->rank - 1] != q->K)
		return qt_error(QT_E_UNSUPPORTED, "smoothquant: tensor \"%s\" has %lld channels on its last axis, its "
				"readers' weights %lld", c->g->values[value].name,
				(long long)(t->rank ? t->dims[t->rank - 1] : 0), (long long)q->K);
	int64_t rows = qt_tensor_numel(t) / q->K;
	if (c->want_rows && q->stride == 0) {
		/* Spread the sampled rows over the whole data. */
		int64_t per_sample = t->rank > 1 && t->dims[0] > 0 ? rows / t->dims[0] : rows;
		q->stride = per_sample * c->samples / SQ_ROWS;
		q->stride = q->stride > 1 ? q->stride : 1;
	}
	const float *d = t->data;
	for (int64_t r = 0; r < rows; r++, q->seen++) {
		const float *row = d + r * q->K;
		for (int64_t j = 0; j < q->K; j++)
			q->amax[j] = fmax(q->amax[j], fabs(row[j]));
		if (c->want_rows && q->seen % q->stride == 0 && q->n_rows < SQ_ROWS)
			memcpy(q->rows + q->n_rows++ * q->K, row, (size_t)q->K * sizeof *row);
	}
	return QT_OK;
}

static enum qt_status collect(struct qt_graph *g, struct qt_dataset *ds, int batch, struct sq_group *G, int ng,
			      int want_rows)
{
	struct sq_collect c = {.g = g, .G = G, .samples = qt_dataset_count(ds), .want_rows = want_rows};
	c.by_value = malloc(((size_t)g->n_values + 1) * sizeof *c.by_value);
	if (!c.by_value)
		return qt_error(QT_E_NOMEM, "out of memory");
	for (int v = 0; v < g->n_values; v++)
		c.by_value[v] = -1;
	for (int i = 0; i < ng; i++)
		c.by_value[G[i].x] = i;
	enum qt_status st = qt_dataset_run(g, ds, batch, collect_observer, &c, NULL);
	free(c.by_value);
	return st;
}

enum qt_status qt_channel_absmax(struct qt_graph *g, struct qt_dataset *ds, int batch, int value, int64_t K,
				 double *amax_out)
{
	struct sq_group q = {.x = value, .K = K, .amax = amax_out};
	for (int64_t j = 0; j < K; j++)
		amax_out[j] = 0;
	return collect(g, ds, batch, &q, 1, 0);
}

/* ---- The choice of s ---- */

/* s_j for alpha; 1 where a channel is all zero in x or in the weights, and
 * kept within [1e-4, 1e4] so no weight or constant overflows or flushes. */
static void smooth_scales(const double *amax, const double *wmax, int64_t K, double alpha, double *s)
{
	for (int64_t j = 0; j < K; j++) {
		s[j] = amax[j] > 0 && wmax[j] > 0 ? pow(amax[j], alpha) / pow(wmax[j], 1 - alpha) : 1;
		s[j] = s[j] < 1e-4 ? 1e-4 : s[j] > 1e4 ? 1e4 : s[j];
	}
}

/* Fake-quantize n floats per tensor, asymmetric min/max over `bits`. */
static void fq_act(float *x, int64_t n, int bits)
{
	float lo = 0, hi = 0, scale;
	int32_t zp;
	for (int64_t i = 0; i < n; i++)
		lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
	if (qt_qparams_asym(lo, hi, bits, &scale, &zp) != QT_OK)
		return;
	int32_t qmax = (1 << bits) - 1;
	for (int64_t i = 0; i < n; i++)
		x[i] = scale * (float)(qt_quantize_one(x[i], scale, zp, 0, qmax) - zp);
}

/* Fake-quantize W [K][N] (column o = output channel) symmetric absmax, per
 * output channel or per tensor. */
static void fq_weight(float *w, int64_t K, int64_t N, int bits, int per_tensor)
{
	int32_t qmax = (1 << (bits - 1)) - 1;
	float all = 0;
	for (int64_t i = 0; i < K * N; i++)
		all = fmaxf(all, fabsf(w[i]));
	for (int64_t o = 0; o < N; o++) {
		float m = 0;
		for (int64_t j = 0; j < K; j++)
			m = fmaxf(m, fabsf(w[j * N + o]));
		m = per_tensor ? all : m;
		if (!(m > 0))
			continue;
		float scale = m / (float)qmax;
		for (int64_t j = 0; j < K; j++)
			w[j * N + o] = scale * (float)qt_quantize_one(w[j * N + o], scale, 0, -qmax, qmax);
	}
}

/* sum over readers of ||Qa(X / s) Qw(s W) - X W||^2 on the sampled rows;
 * s NULL: no smoothing. Scratch: xs [R][K], ws [K][Nmax], y, y0 [R][Nmax]. */
static double search_error(const struct qt_graph *g, const struct sq_group *q, const double *s,
			   const struct qt_smoothquant_opts *o, float *xs, float *ws, float *y, float *y0)
{
	int64_t R = q->n_rows, K = q->K;
	double err = 0;
	for (int64_t r = 0; r < R; r++)
		for (int64_t j = 0; j < K; j++)
			xs[r * K + j] = (float)(q->rows[r * K + j] / (s ? s[j] : 1));
	fq_act(xs, R * K, o->abits);
	for (int i = 0; i < q->n_readers; i++) {
		struct sq_w w;
		sq_weight(g, &g->nodes[q->readers[i]], &w);
		for (int64_t j = 0; j < K; j++)
			for (int64_t n = 0; n < w.N; n++)
				ws[j * w.N + n] = w.w[j * w.sj + n * w.so];
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)R, (int)w.N, (int)K, 1.0f, q->rows, (int)K,
			    ws, (int)w.N, 0.0f, y0, (int)w.N);
		for (int64_t j = 0; j < K; j++)
			for (int64_t n = 0; n < w.N; n++)
				ws[j * w.N + n] = (float)(ws[j * w.N + n] * (s ? s[j] : 1));
		fq_weight(ws, K, w.N, o->wbits, o->per_tensor);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)R, (int)w.N, (int)K, 1.0f, xs, (int)K, ws,
			    (int)w.N, 0.0f, y, (int)w.N);
		for (int64_t k = 0; k < R * w.N; k++) {
			double d = (double)y[k] - y0[k];
			err += d * d;
		}
	}
	return err;
}

/* ---- Applying s ---- */

/* Give input k of node ni a new constant value holding t (the old one may be
 * shared with other nodes; passes never write into a shared tensor). */
static enum qt_status replace_const(struct qt_graph *g, int ni, int k, struct qt_tensor *t)
{
	char name[512];
	const char *base = g->values[g->nodes[ni].inputs[k]].name;
	snprintf(name, sizeof name, "%s.smooth", base);
	for (int i = 1; qt_graph_find_value(g, name) >= 0; i++)
		snprintf(name, sizeof name, "%s.smooth%d", base, i);
	int nv = qt_graph_value(g, name);
	if (nv < 0)
		return qt_error(QT_E_NOMEM, "out of memory");
	struct qt_node *n = &g->nodes[ni]; /* qt_graph_value may move the arrays */
	g->values[n->inputs[k]].n_consumers--;
	n->inputs[k] = nv;
	g->values[nv].n_consumers = 1;
	g->values[nv].init = t;
	g->values[nv].dtype = QT_DTYPE_F32;
	return QT_OK;
}

/* A new per-channel constant c_j / s_j from input k of node ni (a scalar
 * becomes a vector [K]; a vector keeps its shape). */
static enum qt_status divide_const(struct qt_graph *g, int ni, int k, const double *s, int64_t K)
{
	const struct qt_tensor *old = g->values[g->nodes[ni].inputs[k]].init;
	struct qt_tensor *t = qt_graph_alloc(g, sizeof *t);
	float *d = qt_graph_alloc(g, (size_t)K * sizeof *d);
	if (!t || !d)
		return qt_error(QT_E_NOMEM, "out of memory");
	const float *c = old->data;
	int scalar = qt_tensor_numel(old) == 1;
	for (int64_t j = 0; j < K; j++)
		d[j] = (float)(c[scalar ? 0 : j] / s[j]);
	memset(t, 0, sizeof *t);
	t->dtype = QT_DTYPE_F32;
	t->rank = scalar ? 1 : old->rank;
	if (scalar)
		t->dims[0] = K;
	else
		memcpy(t->dims, old->dims, sizeof t->dims);
	t->data = d;
	t->nbytes = (size_t)K * sizeof *d;
	return replace_const(g, ni, k, t);
}

/* Multiply row j of every reader's weight by s_j (a fresh tensor each). */
static enum qt_status scale_weights(struct qt_graph *g, const struct sq_group *q, const double *s)
{
	for (int i = 0; i < q->n_readers; i++) {
		struct sq_w w;
		sq_weight(g, &g->nodes[q->readers[i]], &w);
		const struct qt_tensor *old = g->values[g->nodes[q->readers[i]].inputs[1]].init;
		struct qt_tensor *t = qt_graph_alloc(g, sizeof *t);
		float *d = qt_graph_alloc(g, old->nbytes);
		if (!t || !d)
			return qt_error(QT_E_NOMEM, "out of memory");
		*t = *old;
		t->owned = 0;
		t->data = d;
		for (int64_t j = 0; j < w.K; j++)
			for (int64_t n = 0; n < w.N; n++) {
				int64_t e = j * w.sj + n * w.so;
				d[e] = (float)(w.w[e] * s[j]);
			}
		g->values[g->nodes[q->readers[i]].inputs[1]].init = t;
	}
	return QT_OK;
}

static enum qt_status apply(struct qt_graph *g, const struct sq_group *q, const double *s)
{
	enum qt_status st = scale_weights(g, q, s);
	const struct qt_node *p = &g->nodes[q->prod];
	if (st)
		return st;
	if (!strcmp(p->op_type, "Mul"))
		return divide_const(g, q->prod, q->cidx, s, q->K);
	st = divide_const(g, q->prod, 1, s, q->K);
	p = &g->nodes[q->prod];
	if (!st && p->n_inputs > 2 && p->inputs[2] >= 0)
		st = divide_const(g, q->prod, 2, s, q->K);
	return st;
}

enum qt_status qt_pass_smoothquant(struct qt_graph *g, struct qt_dataset *ds, const struct qt_smoothquant_opts *o,
				   struct qt_smoothquant_stats *stats_out)
{
	struct qt_smoothquant_stats st_out = {.alpha_min = 2, .alpha_max = -1};
	int batch = o->batch > 0 ? o->batch : 32, skipped = 0, search = o->alpha < 0;
	if (!search && !(o->alpha <= 1))
		return qt_error(QT_E_INVALID_ARG, "smoothquant: alpha %g must be in [0, 1]", o->alpha);
	if (search && (o->wbits < 2 || o->wbits > 8 || o->abits < 2 || o->abits > 8))
		return qt_error(QT_E_INVALID_ARG, "smoothquant=auto: bits w%d a%d out of range", o->wbits, o->abits);
	struct sq_group *G = calloc((size_t)g->n_nodes + 1, sizeof *G);
	if (!G)
		return qt_error(QT_E_NOMEM, "out of memory");
	int ng = find_groups(g, G, &skipped);
	enum qt_status st = ng < 0 ? qt_error(QT_E_NOMEM, "out of memory") : QT_OK;
	int64_t kmax = 1, nmax = 1;
	for (int i = 0; i < ng && !st; i++) {
		kmax = G[i].K > kmax ? G[i].K : kmax;
		for (int r = 0; r < G[i].n_readers; r++) {
			struct sq_w w;
			sq_weight(g, &g->nodes[G[i].readers[r]], &w);
			nmax = w.N > nmax ? w.N : nmax;
		}
		G[i].amax = calloc((size_t)G[i].K, sizeof *G[i].amax);
		G[i].rows = search ? malloc((size_t)SQ_ROWS * G[i].K * sizeof *G[i].rows) : NULL;
		if (!G[i].amax || (search && !G[i].rows))
			st = qt_error(QT_E_NOMEM, "out of memory");
	}
	if (!st && ng > 0)
		st = collect(g, ds, batch, G, ng, search);
	double *wmax = malloc((size_t)kmax * sizeof *wmax), *s = malloc((size_t)kmax * sizeof *s);
	float *xs = NULL, *ws = NULL, *y = NULL, *y0 = NULL;
	if (search) {
		xs = malloc((size_t)SQ_ROWS * kmax * sizeof *xs);
		ws = malloc((size_t)kmax * nmax * sizeof *ws);
		y = malloc((size_t)SQ_ROWS * nmax * sizeof *y);
		y0 = malloc((size_t)SQ_ROWS * nmax * sizeof *y0);
	}
	if (!st && (!wmax || !s || (search && (!xs || !ws || !y || !y0))))
		st = qt_error(QT_E_NOMEM, "out of memory");
	for (int i = 0; i < ng && !st; i++) {
		struct sq_group *q = &G[i];
		for (int64_t j = 0; j < q->K; j++)
			wmax[j] = 0;
		for (int r = 0; r < q->n_readers; r++) {
			struct sq_w w;
			sq_weight(g, &g->nodes[q->readers[r]], &w);
			for (int64_t j = 0; j < q->K; j++)
				for (int64_t n = 0; n < w.N; n++)
					wmax[j] = fmax(wmax[j], fabs(w.w[j * w.sj + n * w.so]));
		}
		double alpha = o->alpha;
		if (search) {
			/* "No smoothing" first: an alpha must beat it strictly. */
			double best = search_error(g, q, NULL, o, xs, ws, y, y0);
			alpha = -1;
			for (int a = 0; a <= 10; a++) {
				smooth_scales(q->amax, wmax, q->K, a / 10.0, s);
				double e = search_error(g, q, s, o, xs, ws, y, y0);
				if (e < best)
					best = e, alpha = a / 10.0;
			}
			if (alpha < 0) {
				st_out.unchanged += q->n_readers;
				continue;
			}
		}
		smooth_scales(q->amax, wmax, q->K, alpha, s);
		if ((st = apply(g, q, s)) != QT_OK)
			break;
		st_out.layers += q->n_readers;
		st_out.alpha_min = fmin(st_out.alpha_min, alpha);
		st_out.alpha_max = fmax(st_out.alpha_max, alpha);
	}
	for (int i = 0; i < (ng > 0 ? ng : 0); i++) {
		free(G[i].amax);
		free(G[i].rows);
	}
	free(G);
	free(wmax);
	free(s);
	free(xs);
	free(ws);
	free(y);
	free(y0);
	st_out.skipped = skipped;
	if (!st_out.layers)
		st_out.alpha_min = st_out.alpha_max = 0;
	if (!st && stats_out)
		*stats_out = st_out;
	return st;
}
