/*
 * Activation ranges chosen for the consumer (--method act-range).
 *
 * Calibration picks each activation's clipping range on the tensor alone
 * (least squared error of the tensor itself, for the mse method). At 4 bits
 * that is not the range that serves the layer reading it best: an error in
 * an input channel costs what the layer's weights on that channel make of
 * it, and the clipping that is cheapest for the tensor may round away the
 * small channels the layer amplifies. Here each input of a planned layer
 * gets the range, among multiples alpha of its calibrated one, whose
 * rounding and clipping error, seen through that layer's FP32 weights,
 * is least on the calibration samples:
 *
 *     err(alpha) = sum over the layer's input rows x of |W (Q_alpha(x) - x)|^2
 *
 * with Q_alpha the per-tensor grid of [alpha lo, alpha hi] ([lo, hi] the
 * calibrated range; a range starting at 0 keeps 0). Sequential: the layers
 * are visited in topological order by the data engine, each input rounded
 * on its chosen grid for everything after it, earlier choices in force; a
 * value several layers read is chosen for the first of them. The calibrated
 * range (alpha 1) is kept unless another is strictly better.
 *
 * Float: the rows' errors and their products with W in float (a chunk of
 * at most the engine's rows), summed per chunk into double. OpenBLAS runs
 * on one thread here (the caller's), so the choice is the same everywhere.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "qtool/dataset.h"
#include "qtool/layerdata.h"
#include "qtool/qtool.h"
#include "qtool/quant.h"
#include "quant/quant_int.h"

/* Multiples of the calibrated range tried, in this order (ties keep the earlier: 1 first). */
static const float alphas[] = {1.00f, 0.95f, 0.90f, 0.85f, 0.80f, 0.75f, 0.70f, 0.65f, 0.60f, 0.55f,
			       0.50f, 0.45f, 0.40f, 0.35f, 0.30f, 1.05f, 1.10f, 1.20f};
#define N_ALPHA ((int)(sizeof alphas / sizeof alphas[0]))

/* Input rows one layer's search reads at most (a depthwise layer sees every
 * pixel in KH x KW rows per channel: millions on a thousand samples). The
 * error estimate needs far fewer; the cap keeps the search's time within a
 * few times the layer's own work on the data. */
#define ROWS_PER_TARGET (1 << 20)

struct target {
	int node;
	struct qt_qparams *q; /* the grid of its input (shared by pass-through values) */
	int32_t qmin, qmax;
	float scale[N_ALPHA];
	int32_t zp[N_ALPHA];
	double err[N_ALPHA];  /* sum of squared output errors */
	double *ysum;         /* [N_ALPHA][C] sum of output errors per channel, with `centered` */
	int64_t *rows;        /* [G] rows seen per group */
	int64_t cap;          /* rows per group used (the first ones; ROWS_PER_TARGET / G, at least a chunk) */
	int centered;         /* bias correction follows: the mean output error does not count */
	const float *w; /* FP32 weight as stored: [C][K] (Conv, Gemm transB) or [K][C] */
	int w_kc;       /* 1: stored [K][C] */
	int64_t C, K;
	int G;
};

struct search {
	struct qt_graph *g;
	struct target *t;
	int nt, cur;
	char *pending; /* per value: its grid is still to be chosen, so it is not rounded yet */
	float *e, *y;
	int64_t cap_e, cap_y;
	struct qt_actrange_stats *stats;
};

static enum qt_status search_observer(void *user, int value, struct qt_tensor *t)
{
	struct search *s = user;
	qt_fused_act_observer(s->g, value, t);
	return s->pending[value] ? QT_OK : qt_fakequant_observer(s->g, value, t);
}

static enum qt_status grow(float **p, int64_t *cap, int64_t n)
{
	if (n <= *cap)
		return QT_OK;
	float *q = realloc(*p, (size_t)n * sizeof *q);
	if (!q)
		return qt_error(QT_E_NOMEM, "out of memory");
	*p = q;
	*cap = n;
	return QT_OK;
}

/* err[a] += |W_g (Q_a(rows) - rows)|^2 for every candidate a. */
static enum qt_status search_rows(void *user, const struct qt_layer_stats *ls, int group, const float *rows,
				  int64_t n)
{
	struct search *s = user;
	struct target *t = &s->t[s->cur];
	if (ls->node != t->node || ls->K != t->K || group < 0 || group >= t->G)
		return qt_error(QT_E_INVALID_ARG, "activation range search: rows of node %d while at node %d", ls->node,
				t->node);
	int64_t K = t->K, Cg = t->C / t->G;
	enum qt_status st;
	if ((st = grow(&s->e, &s->cap_e, n * K)) != QT_OK || (st = grow(&s->y, &s->cap_y, n * Cg)) != QT_OK)
		return st;
	const float *wg = t->w_kc ? t->w : t->w + (size_t)group * Cg * K;
	if (t->rows[group] >= t->cap)
		return QT_OK; /* enough rows of this group seen */
	for (int a = 0; a < N_ALPHA; a++) {
		/* e = Q(x) - x on the candidate's grid: x / step clamped to the
		 * codes' span around the zero point, rounded half to even by the
		 * 1.5 * 2^23 trick (exact for the clamped span, |t| < 2^22). */
		float sc = t->scale[a], inv = 1.0f / sc;
		float lo = (float)(t->qmin - t->zp[a]), hi = (float)(t->qmax - t->zp[a]);
		for (int64_t i = 0; i < n * K; i++) {
			float u = rows[i] * inv;
			u = u < lo ? lo : u > hi ? hi : u;
			u = (u + 12582912.0f) - 12582912.0f;
			s->e[i] = u * sc - rows[i];
		}
		if (t->w_kc)
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)Cg, (int)K, 1.0f, s->e, (int)K,
				    wg, (int)Cg, 0.0f, s->y, (int)Cg);
		else
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)Cg, (int)K, 1.0f, s->e, (int)K,
				    wg, (int)K, 0.0f, s->y, (int)Cg);
		double acc = 0;
		for (int64_t i = 0; i < n * Cg; i++)
			acc += (double)s->y[i] * s->y[i];
		t->err[a] += acc;
		if (t->centered) {
			double *ys = t->ysum + (size_t)a * t->C + (size_t)group * Cg;
			for (int64_t r = 0; r < n; r++)
				for (int64_t c = 0; c < Cg; c++)
					ys[c] += s->y[r * Cg + c];
		}
	}
	t->rows[group] += n;
	return QT_OK;
}

/* After all of a layer's rows: its input's grid becomes the best candidate's. */
static enum qt_status search_done(void *user, struct qt_graph *g, const struct qt_layer_stats *ls)
{
	struct search *s = user;
	struct target *t = &s->t[s->cur];
	(void)ls;
	if (t->centered) {
		/* Bias correction will remove each channel's mean output error:
		 * what remains is sum (y - mean y)^2 = sum y^2 - (sum y)^2 / n. */
		int64_t Cg = t->C / t->G;
		for (int a = 0; a < N_ALPHA; a++)
			for (int64_t c = 0; c < t->C; c++) {
				int64_t n = t->rows[c / Cg];
				double m = t->ysum[(size_t)a * t->C + c];
				t->err[a] -= n > 0 ? m * m / (double)n : 0;
			}
	}
	int best = 0;
	for (int a = 1; a < N_ALPHA; a++)
		if (t->err[a] < t->err[best])
			best = a;
	t->q->scale[0] = t->scale[best];
	t->q->zero_point[0] = t->zp[best];
	for (int v = 0; v < g->n_values; v++)
		if (g->values[v].q == t->q)
			s->pending[v] = 0;
	struct qt_actrange_stats *o = s->stats;
	o->searched++;
	if (best) {
		o->changed++;
		o->alpha_min = o->changed == 1 || alphas[best] < o->alpha_min ? alphas[best] : o->alpha_min;
		o->alpha_max = o->changed == 1 || alphas[best] > o->alpha_max ? alphas[best] : o->alpha_max;
		if (t->err[0] > 0)
			o->err_ratio_sum += t->err[best] / t->err[0];
	}
	s->cur++;
	return QT_OK;
}

/* Target for node nd, reading the value whose grid is q. 0 when it cannot
 * be searched, -1 out of memory. */
static int target_init(const struct qt_graph *g, int nd, struct qt_qparams *q, int centered, struct target *t)
{
	const struct qt_node *n = &g->nodes[nd];
	int G;
	int64_t K;
	if (!qt_layer_view_ok(g, n, &G, &K) || q->scheme != QT_QSCHEME_TENSOR)
		return 0;
	const struct qt_tensor *w = g->values[n->inputs[1]].init;
	memset(t, 0, sizeof *t);
	t->node = nd;
	t->q = q;
	t->w = w->data;
	t->K = K;
	t->G = G;
	t->C = qt_tensor_numel(w) / K;
	t->centered = centered;
	t->rows = calloc((size_t)G, sizeof *t->rows);
	t->cap = ROWS_PER_TARGET / G > 1024 ? ROWS_PER_TARGET / G : 1024;
	if (centered)
		t->ysum = calloc((size_t)N_ALPHA * t->C, sizeof *t->ysum);
	if (!t->rows || (centered && !t->ysum))
		return -1;
	t->w_kc = strcmp(n->op_type, "Conv") && !(strcmp(n->op_type, "Gemm") == 0 && qt_node_attr_int(n, "transB", 0));
	qt_qtype_range(q->qtype, &t->qmin, &t->qmax);
	float s0 = q->scale[0];
	int32_t z0 = q->zero_point[0];
	float lo = s0 * (float)(t->qmin - z0), hi = s0 * (float)(t->qmax - z0);
	int bits = qt_dtype_bits(q->qtype);
	t->scale[0] = s0;
	t->zp[0] = z0;
	for (int a = 1; a < N_ALPHA; a++)
		if (qt_qparams_asym(alphas[a] * lo, alphas[a] * hi, bits, &t->scale[a], &t->zp[a]) != QT_OK) {
			t->scale[a] = s0; /* a degenerate range: the candidate is the calibrated one */
			t->zp[a] = z0;
		}
	return 1;
}

enum qt_status qt_actrange_search(struct qt_graph *g, const int *nodes, const char *centered, int n_nodes,
				  struct qt_dataset *ds, int batch, struct qt_actrange_stats *stats)
{
	struct search s = {.g = g, .stats = stats};
	memset(stats, 0, sizeof *stats);
	s.t = calloc((size_t)n_nodes + 1, sizeof *s.t);
	s.pending = calloc((size_t)g->n_values + 1, 1);
	int *targets = malloc(((size_t)n_nodes + 1) * sizeof *targets);
	enum qt_status st = QT_OK;
	if (!s.t || !s.pending || !targets)
		st = qt_error(QT_E_NOMEM, "out of memory");
	for (int i = 0; i < n_nodes && !st; i++) {
		const struct qt_node *n = &g->nodes[nodes[i]];
		struct qt_qparams *q = n->n_inputs > 0 && n->inputs[0] >= 0 ? g->values[n->inputs[0]].q : NULL;
		int seen = 0;
		for (int j = 0; j < s.nt; j++)
			seen |= s.t[j].q == q;
		int r = q && !seen ? target_init(g, nodes[i], q, centered[i], &s.t[s.nt]) : 0;
		if (r < 0) {
			st = qt_error(QT_E_NOMEM, "out of memory");
			s.nt++; /* freed below */
			break;
		}
		if (!r)
			continue;
		targets[s.nt++] = nodes[i];
		for (int v = 0; v < g->n_values; v++)
			if (g->values[v].q == q)
				s.pending[v] = 1;
	}
	if (!st && s.nt > 0) {
		struct qt_layerdata_opts eo = {.batch = batch > 0 ? batch : 32,
					       .observer = search_observer,
					       .observer_user = &s,
					       .rows_fn = search_rows,
					       .rows_user = &s,
					       .reobserve_frontier = 1};
		st = qt_layerdata_run(g, ds, targets, s.nt, &eo, search_done, &s);
		if (st)
			qt_error_prefix(st, "choosing activation ranges for their layers");
	}
	for (int i = 0; i < s.nt; i++) {
		free(s.t[i].rows);
		free(s.t[i].ysum);
	}
	free(s.t);
	free(s.pending);
	free(s.e);
	free(s.y);
	free(targets);
	return st;
}
