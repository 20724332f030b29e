/*
 * The layer-wise data engine (see include/qtool/layerdata.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "qtool/dataset.h"
#include "qtool/layerdata.h"
#include "qtool/quant.h"

/* Rows gathered before one float K x K product is added to the double sums. */
#define CHUNK_ROWS 1024

int qt_layer_view_ok(const struct qt_graph *g, const struct qt_node *n, int *groups_out, int64_t *K_out)
{
	if (!qt_is_weighted_op(n) || n->n_inputs < 2 || n->inputs[0] < 0 || n->inputs[1] < 0)
		return 0;
	const struct qt_tensor *w = g->values[n->inputs[1]].init;
	if (!w || w->dtype != QT_DTYPE_F32)
		return 0;
	if (!strcmp(n->op_type, "Conv")) {
		int64_t G = qt_node_attr_int(n, "group", 1);
		if (w->rank != 4 || G < 1 || w->dims[0] % G)
			return 0;
		*groups_out = (int)G;
		*K_out = w->dims[1] * w->dims[2] * w->dims[3];
		return 1;
	}
	if (!strcmp(n->op_type, "ConvTranspose") || w->rank != 2)
		return 0;
	if (!strcmp(n->op_type, "Gemm")) {
		if (qt_node_attr_int(n, "transA", 0))
			return 0;
		*K_out = qt_node_attr_int(n, "transB", 0) ? w->dims[1] : w->dims[0];
	} else {
		*K_out = w->dims[0]; /* MatMul, MatMulBias: [K, N] */
	}
	*groups_out = 1;
	return 1;
}

/* 2-D convolution geometry of node n on an input [N, C, H, W]. */
struct cgeom {
	int64_t N, C, H, W, G, KH, KW, sh, sw, dh, dw, pt, pl, OH, OW;
};

static enum qt_status conv_geom(const struct qt_graph *g, const struct qt_node *n, const struct qt_tensor *x,
				const struct qt_tensor *w, struct cgeom *c)
{
	char lbl[256];
	if (x->rank != 4)
		return qt_error(QT_E_UNSUPPORTED, "%s: the data engine takes 2-D convolutions (input rank %d)",
				qt_node_label(g, n, lbl, sizeof lbl), x->rank);
	memset(c, 0, sizeof *c);
	c->N = x->dims[0], c->C = x->dims[1], c->H = x->dims[2], c->W = x->dims[3];
	c->G = qt_node_attr_int(n, "group", 1);
	c->KH = w->dims[2], c->KW = w->dims[3];
	c->sh = c->sw = c->dh = c->dw = 1;
	const int64_t *v;
	if (qt_node_attr_ints(n, "strides", &v) == 2)
		c->sh = v[0], c->sw = v[1];
	if (qt_node_attr_ints(n, "dilations", &v) == 2)
		c->dh = v[0], c->dw = v[1];
	int64_t pb = 0, pr = 0;
	if (qt_node_attr_ints(n, "pads", &v) == 4)
		c->pt = v[0], c->pl = v[1], pb = v[2], pr = v[3];
	const char *ap = qt_node_attr_str(n, "auto_pad", "NOTSET");
	int64_t eh = (c->KH - 1) * c->dh + 1, ew = (c->KW - 1) * c->dw + 1;
	if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
		c->OH = (c->H + c->sh - 1) / c->sh;
		c->OW = (c->W + c->sw - 1) / c->sw;
		int64_t th = (c->OH - 1) * c->sh + eh - c->H, tw = (c->OW - 1) * c->sw + ew - c->W;
		th = th > 0 ? th : 0, tw = tw > 0 ? tw : 0;
		int upper = !strcmp(ap, "SAME_UPPER");
		c->pt = upper ? th / 2 : th - th / 2;
		c->pl = upper ? tw / 2 : tw - tw / 2;
	} else {
		if (!strcmp(ap, "VALID"))
			c->pt = c->pl = pb = pr = 0;
		c->OH = (c->H + c->pt + pb - eh) / c->sh + 1;
		c->OW = (c->W + c->pl + pr - ew) / c->sw + 1;
	}
	if (c->G < 1 || c->C % c->G || c->C / c->G != w->dims[1] || c->OH < 1 || c->OW < 1)
		return qt_error(QT_E_INVALID_ARG, "%s: input %lldx%lldx%lld does not fit the weight",
				qt_node_label(g, n, lbl, sizeof lbl), (long long)c->C, (long long)c->H, (long long)c->W);
	return QT_OK;
}

/* Per-node accumulation state. */
struct acc {
	struct qt_layer_stats s;
	float *rows;  /* CHUNK_ROWS x K */
	float *rows2; /* the twin stream's rows at the same positions, or NULL */
	float *prod;  /* K x K */
	int64_t fill; /* rows in the current chunk */
	int group;    /* group the chunk belongs to */
	const struct qt_layerdata_opts *o; /* its rows_fn sees every chunk */
	enum qt_status st;                 /* the first failure of rows_fn */
};

/* Add the current chunk to group acc->group's sums. */
static void flush(struct acc *a)
{
	if (!a->fill)
		return;
	int64_t K = a->s.K;
	if (a->o && a->o->rows_fn && !a->st)
		a->st = a->o->rows_fn(a->o->rows_user, &a->s, a->group, a->rows, a->fill);
	double *sum = a->s.xsum + (size_t)a->group * K;
	for (int64_t r = 0; r < a->fill; r++)
		for (int64_t k = 0; k < K; k++)
			sum[k] += a->rows[r * K + k];
	if (a->rows2) {
		/* The twin: sum of x_fp, and xcross += rows^T rows2 (full K x K). */
		double *sf = a->s.xsum_fp + (size_t)a->group * K;
		for (int64_t r = 0; r < a->fill; r++)
			for (int64_t k = 0; k < K; k++)
				sf[k] += a->rows2[r * K + k];
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)K, (int)a->fill, 1.0f, a->rows,
			    (int)K, a->rows2, (int)K, 0.0f, a->prod, (int)K);
		double *xc = a->s.xcross + (size_t)a->group * K * K;
		for (int64_t i = 0; i < K * K; i++)
			xc[i] += a->prod[i];
	}
	if (a->s.xtx) {
		/* prod = rows^T rows (upper triangle), then mirrored into the double sums. */
		cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)K, (int)a->fill, 1.0f, a->rows, (int)K, 0.0f,
			    a->prod, (int)K);
		double *h = a->s.xtx + (size_t)a->group * K * K;
		for (int64_t i = 0; i < K; i++)
			for (int64_t j = i; j < K; j++) {
				h[i * K + j] += a->prod[i * K + j];
				if (j != i)
					h[j * K + i] += a->prod[i * K + j];
			}
	}
	a->s.rows += a->fill;
	a->fill = 0;
}

/* Next row slot of group gi (flushing when the chunk is full or the group
 * changes): its index in the chunk. */
static int64_t row_slot(struct acc *a, int gi)
{
	if (a->group != gi || a->fill == CHUNK_ROWS) {
		flush(a);
		a->group = gi;
	}
	return a->fill++;
}

/* The im2col row of group gi at output position (b, oh, ow) of input xd. */
static void conv_row(const struct cgeom *c, const float *xd, int64_t gi, int64_t b, int64_t oh, int64_t ow,
		     float *row)
{
	int64_t cg = c->C / c->G, k = 0;
	for (int64_t ci = 0; ci < cg; ci++) {
		const float *plane = xd + ((b * c->C) + gi * cg + ci) * c->H * c->W;
		for (int64_t i = 0; i < c->KH; i++) {
			int64_t ih = oh * c->sh - c->pt + i * c->dh;
			for (int64_t j = 0; j < c->KW; j++, k++) {
				int64_t iw = ow * c->sw - c->pl + j * c->dw;
				row[k] = ih >= 0 && ih < c->H && iw >= 0 && iw < c->W ? plane[ih * c->W + iw] : 0.0f;
			}
		}
	}
}

/* Accumulate the rows node n's weight multiplies in input x, and with a
 * twin (a->rows2) those of x2 at the same positions (x2 has x's shape). */
static enum qt_status accumulate(struct qt_graph *g, const struct qt_node *n, const struct qt_tensor *x,
				 const struct qt_tensor *x2, struct acc *a)
{
	char lbl[256];
	int64_t K = a->s.K;
	if (x->dtype != QT_DTYPE_F32 || (a->rows2 && (!x2 || x2->dtype != QT_DTYPE_F32)))
		return qt_error(QT_E_UNSUPPORTED, "%s: input is not float32", qt_node_label(g, n, lbl, sizeof lbl));
	if (a->rows2 && (x2->rank != x->rank || memcmp(x2->dims, x->dims, sizeof(int64_t) * (size_t)x->rank)))
		return qt_error(QT_E_INVALID_ARG, "%s: the FP32 twin's input has another shape",
				qt_node_label(g, n, lbl, sizeof lbl));
	const float *xd = x->data, *xd2 = a->rows2 ? x2->data : NULL;
	if (strcmp(n->op_type, "Conv")) {
		if (x->rank < 1 || x->dims[x->rank - 1] != K)
			return qt_error(QT_E_INVALID_ARG, "%s: input's last dimension is not %lld",
					qt_node_label(g, n, lbl, sizeof lbl), (long long)K);
		int64_t R = qt_tensor_numel(x) / K;
		for (int64_t r = 0; r < R; r++) {
			int64_t i = row_slot(a, 0);
			memcpy(a->rows + i * K, xd + r * K, (size_t)K * sizeof(float));
			if (xd2)
				memcpy(a->rows2 + i * K, xd2 + r * K, (size_t)K * sizeof(float));
		}
		return QT_OK;
	}
	struct cgeom c;
	enum qt_status st = conv_geom(g, n, x, g->values[n->inputs[1]].init, &c);
	if (st)
		return st;
	for (int64_t gi = 0; gi < c.G; gi++)
		for (int64_t b = 0; b < c.N; b++)
			for (int64_t oh = 0; oh < c.OH; oh++)
				for (int64_t ow = 0; ow < c.OW; ow++) {
					int64_t i = row_slot(a, (int)gi);
					conv_row(&c, xd, gi, b, oh, ow, a->rows + i * K);
					if (xd2)
						conv_row(&c, xd2, gi, b, oh, ow, a->rows2 + i * K);
				}
	return QT_OK;
}

static void acc_free(struct acc *a)
{
	free(a->s.xtx_holdout);
	free(a->s.xtx);
	free(a->s.xsum);
	free(a->s.xcross);
	free(a->s.xsum_fp);
	free(a->rows);
	free(a->rows2);
	free(a->prod);
	memset(a, 0, sizeof *a);
}

static enum qt_status acc_init(struct qt_graph *g, int node, int want_xtx, int want_cross, struct acc *a)
{
	char lbl[256];
	int G;
	int64_t K;
	memset(a, 0, sizeof *a);
	if (!qt_layer_view_ok(g, &g->nodes[node], &G, &K) || K < 1)
		return qt_error(QT_E_UNSUPPORTED, "%s: not a layer the data engine can see as a matrix",
				qt_node_label(g, &g->nodes[node], lbl, sizeof lbl));
	if (K > 65536 || (want_xtx && (double)G * K * K > 1.5e9))
		return qt_error(QT_E_UNSUPPORTED, "%s: %lld x %lld statistics are too large",
				qt_node_label(g, &g->nodes[node], lbl, sizeof lbl), (long long)K, (long long)K);
	a->s.node = node;
	a->s.groups = G;
	a->s.K = K;
	a->s.xsum = calloc((size_t)G * K, sizeof(double));
	a->rows = malloc((size_t)CHUNK_ROWS * K * sizeof(float));
	if (want_xtx || want_cross)
		a->prod = malloc((size_t)K * K * sizeof(float));
	if (want_xtx)
		a->s.xtx = calloc((size_t)G * K * K, sizeof(double));
	if (want_cross) {
		a->s.xcross = calloc((size_t)G * K * K, sizeof(double));
		a->s.xsum_fp = calloc((size_t)G * K, sizeof(double));
		a->rows2 = malloc((size_t)CHUNK_ROWS * K * sizeof(float));
	}
	if (!a->s.xsum || !a->rows || ((want_xtx || want_cross) && !a->prod) || (want_xtx && !a->s.xtx) ||
	    (want_cross && (!a->s.xcross || !a->s.xsum_fp || !a->rows2))) {
		acc_free(a);
		return qt_error(QT_E_NOMEM, "out of memory for the statistics of a %lld-column layer", (long long)K);
	}
	return QT_OK;
}

/* Values live at cut c: graph inputs or outputs of nodes before c that a node
 * at or after c reads. Returns the count; *out is malloc'd. */
static int frontier(const struct qt_graph *g, int c, int **out)
{
	char *need = calloc((size_t)g->n_values + 1, 1);
	int *list = malloc(((size_t)g->n_values + 1) * sizeof *list);
	int n = 0;
	if (!need || !list) {
		free(need);
		free(list);
		return -1;
	}
	for (int ni = c; ni < g->n_nodes; ni++)
		for (int k = 0; k < g->nodes[ni].n_inputs; k++)
			if (g->nodes[ni].inputs[k] >= 0)
				need[g->nodes[ni].inputs[k]] = 1;
	for (int v = 0; v < g->n_values; v++) {
		const struct qt_value *val = &g->values[v];
		if (need[v] && !val->init && (val->is_input || (val->producer >= 0 && val->producer < c)))
			list[n++] = v;
	}
	free(need);
	*out = list;
	return n;
}

/* Spill file: per batch, its sample count (int64), then per frontier value
 * dtype, rank, dims and the bytes. */
static enum qt_status spill_write(FILE *f, const struct qt_tensor *t)
{
	int32_t hdr[2] = {(int32_t)t->dtype, t->rank};
	if (fwrite(hdr, sizeof hdr, 1, f) != 1 || fwrite(t->dims, sizeof(int64_t), (size_t)t->rank, f) != (size_t)t->rank ||
	    (t->nbytes && fwrite(t->data, 1, t->nbytes, f) != t->nbytes))
		return qt_error(QT_E_IO, "cannot write the data engine's temporary file (disk full?)");
	return QT_OK;
}

static enum qt_status spill_read(FILE *f, struct qt_tensor *t)
{
	int32_t hdr[2];
	int64_t dims[QT_MAX_RANK];
	memset(t, 0, sizeof *t);
	if (fread(hdr, sizeof hdr, 1, f) != 1 || hdr[1] < 0 || hdr[1] > QT_MAX_RANK ||
	    fread(dims, sizeof(int64_t), (size_t)hdr[1], f) != (size_t)hdr[1])
		return qt_error(QT_E_IO, "cannot read back the data engine's temporary file");
	enum qt_status st = qt_tensor_alloc(t, (enum qt_dtype)hdr[0], hdr[1], dims);
	if (st)
		return st;
	if (t->nbytes && fread(t->data, 1, t->nbytes, f) != t->nbytes) {
		qt_tensor_free(t);
		return qt_error(QT_E_IO, "cannot read back the data engine's temporary file");
	}
	return QT_OK;
}

/* The value node t's weight multiplies. */
static int data_input(const struct qt_graph *g, int t)
{
	return g->nodes[t].inputs[0];
}

/* One stream of runs: its runtime and its frontier files (the one the
 * previous target wrote, read now; the one this target writes). */
struct stream {
	struct qt_rt *rt;
	FILE *in, *out;
};

static void stream_close(struct stream *S)
{
	if (S->in)
		fclose(S->in);
	if (S->out)
		fclose(S->out);
	qt_rt_free(S->rt);
	memset(S, 0, sizeof *S);
}

/* Run nodes [prev_cut, cut) of stream S for one batch: from the graph input
 * x (when S has no frontier file yet) or from the next spilled frontier.
 * *nb_io: the batch's sample count (read from the file, else given).
 * Returns QT_OK with *end = 1 when the file is exhausted. */
static enum qt_status stream_run(struct stream *S, struct qt_graph *g, const struct qt_tensor *x, int prev_cut,
				 int cut, const int *fprev, int nprev, struct qt_tensor *ts, int *nb_io, int *end,
				 qt_rt_observer reobserve, void *reobserve_user)
{
	enum qt_status st = QT_OK;
	*end = 0;
	if (!S->in) {
		struct qt_tensor view;
		qt_tensor_view(&view, x);
		st = qt_rt_begin_at(S->rt, 0, g->inputs, &view, 1);
	} else {
		int64_t n64;
		if (fread(&n64, sizeof n64, 1, S->in) != 1) {
			*end = 1; /* end of the spilled batches */
			return QT_OK;
		}
		*nb_io = (int)n64;
		for (int i = 0; i < nprev && !st; i++)
			if ((st = spill_read(S->in, &ts[i])) == QT_OK && reobserve)
				st = reobserve(reobserve_user, fprev[i], &ts[i]);
		if (!st)
			st = qt_rt_begin_at(S->rt, prev_cut, fprev, ts, nprev);
		for (int i = 0; i < nprev; i++)
			qt_tensor_free(&ts[i]);
	}
	return st ? st : qt_rt_run_nodes(S->rt, prev_cut, cut);
}

/* Spill the frontier fcur of S's last run (preceded by the batch size). */
static enum qt_status stream_spill(struct stream *S, const int *fcur, int ncur, int nb)
{
	enum qt_status st = QT_OK;
	int64_t n64 = nb;
	if (fwrite(&n64, sizeof n64, 1, S->out) != 1)
		return qt_error(QT_E_IO, "cannot write the data engine's temporary file (disk full?)");
	for (int i = 0; i < ncur && !st; i++) {
		struct qt_tensor t;
		if ((st = qt_rt_take_value(S->rt, fcur[i], &t)) == QT_OK) {
			st = spill_write(S->out, &t);
			qt_tensor_free(&t);
		}
	}
	return st;
}

enum qt_status qt_layerdata_run(struct qt_graph *g, struct qt_dataset *ds, const int *targets, int n_targets,
				const struct qt_layerdata_opts *o, qt_layer_fn fn, void *user)
{
	if (g->n_inputs != 1)
		return qt_error(QT_E_UNSUPPORTED, "the data engine takes models with one input (this one has %d)",
				g->n_inputs);
	for (int k = 1; k < n_targets; k++)
		if (targets[k] <= targets[k - 1])
			return qt_error(QT_E_INVALID_ARG, "data engine targets must be in topological order");
	int twin = o->twin_swap != NULL && o->want_xtx;
	struct stream S[2] = {{0}, {0}}; /* S[0] this graph as fn leaves it; S[1] the FP32 twin */
	enum qt_status st = QT_OK;
	for (int i = 0; i <= twin && !st; i++)
		st = qt_rt_new(g, &S[i].rt);
	if (st) {
		stream_close(&S[0]);
		return st;
	}
	qt_rt_set_observer(S[0].rt, o->observer, o->observer_user);
	if (twin)
		qt_rt_set_observer(S[1].rt, o->twin_observer, o->twin_observer_user);
	int *fprev = NULL, *fcur = NULL, nprev = 0, ncur = 0, prev_cut = 0;
	struct qt_tensor x = {0}, *ts = NULL;
	struct acc a = {0}, ho = {0};
	for (int k = 0; k < n_targets && !st; k++) {
		int cut = targets[k], last = k == n_targets - 1;
		if ((ncur = frontier(g, cut, &fcur)) < 0 ||
		    !(ts = calloc((size_t)(nprev > ncur ? nprev : ncur) + 1, sizeof *ts))) {
			st = qt_error(QT_E_NOMEM, "out of memory");
			break;
		}
		if ((st = acc_init(g, cut, o->want_xtx, twin, &a)) != QT_OK ||
		    (o->holdout_from > 0 && o->want_xtx && (st = acc_init(g, cut, 1, 0, &ho)) != QT_OK))
			break;
		a.o = o;
		int64_t seen = 0;
		for (int i = 0; i <= twin && !last && !st; i++)
			if (!(S[i].out = tmpfile()))
				st = qt_error(QT_E_IO, "cannot create a temporary file for the data engine");
		if (st)
			break;
		qt_dataset_reset(ds);
		for (int i = 0; i <= twin; i++)
			if (S[i].in)
				rewind(S[i].in);
		int xv = data_input(g, cut);
		for (;;) {
			int nb = 0, end = 0, nb2 = 0;
			if (!S[0].in && ((st = qt_dataset_next(ds, o->batch, &x, NULL, &nb)) != QT_OK || nb == 0))
				break;
			if ((st = stream_run(&S[0], g, &x, prev_cut, cut, fprev, nprev, ts, &nb, &end,
					     o->reobserve_frontier ? o->observer : NULL, o->observer_user)) != QT_OK ||
			    end)
				break;
			if (twin) {
				/* The FP32 model on the same batch: its weights back while it runs. */
				nb2 = nb;
				if ((st = o->twin_swap(o->twin_user, g, 1)) == QT_OK) {
					st = stream_run(&S[1], g, &x, prev_cut, cut, fprev, nprev, ts, &nb2, &end, NULL,
							NULL);
					enum qt_status st2 = o->twin_swap(o->twin_user, g, 0);
					st = st ? st : st2;
				}
				if (!st && (end || nb2 != nb))
					st = qt_error(QT_E_IO, "the data engine's FP32 twin lost step with its batches");
				if (st)
					break;
			}
			const struct qt_tensor *xt = qt_rt_value(S[0].rt, xv);
			const struct qt_tensor *xf = twin ? qt_rt_value(S[1].rt, xv) : NULL;
			if (!xt || (twin && !xf)) {
				st = qt_error(QT_E_INVALID_ARG, "the data engine did not reach the input of node %d", cut);
				break;
			}
			int held = ho.s.xtx && seen >= o->holdout_from;
			seen += nb;
			if ((st = accumulate(g, &g->nodes[cut], xt, xf, held ? &ho : &a)) != QT_OK || (st = a.st) != QT_OK)
				break;
			for (int i = 0; i <= twin && !last && !st; i++)
				st = stream_spill(&S[i], fcur, ncur, nb);
			if (st)
				break;
		}
		if (st)
			break;
		flush(&a);
		if ((st = a.st) != QT_OK)
			break;
		if (ho.s.xtx) {
			flush(&ho);
			a.s.xtx_holdout = ho.s.xtx;
			a.s.rows_holdout = ho.s.rows;
			ho.s.xtx = NULL;
			acc_free(&ho);
		}
		for (int i = 0; i <= twin; i++) {
			if (S[i].in)
				fclose(S[i].in);
			S[i].in = S[i].out;
			S[i].out = NULL;
			if (S[i].in && fflush(S[i].in))
				st = qt_error(QT_E_IO, "cannot write the data engine's temporary file (disk full?)");
		}
		free(fprev);
		fprev = fcur;
		fcur = NULL;
		nprev = ncur;
		prev_cut = cut;
		free(ts);
		ts = NULL;
		if (st)
			break;
		st = fn(user, g, &a.s);
		acc_free(&a);
		if (o->progress)
			o->progress(o->progress_user, k + 1, n_targets, g->nodes[cut].name);
	}
	acc_free(&a);
	acc_free(&ho);
	for (int i = 0; i < 2; i++)
		stream_close(&S[i]);
	free(fprev);
	free(fcur);
	free(ts);
	qt_tensor_free(&x);
	return st;
}
