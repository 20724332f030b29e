/*
 * The quantize stage's data side: the layer-wise data engine's statistics
 * against a direct computation, the plan's overrides, and bias correction's
 * promise (each layer's mean output error brought to about zero). Fixed
 * seeds, printed on failure.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qtool/dataset.h"
#include "qtool/layerdata.h"
#include "qtool/npy.h"
#include "qtool/quant.h"
#include "qtool/rt.h"
#include "testgraph.h"

/* n random [3,8,8] samples as DIR/x.npy; returns the spec "npy:DIR". */
static const char *write_samples(char *dir, size_t cap, int n, uint64_t seed, struct qt_tensor *x_out)
{
	static char spec[300];
	snprintf(dir, cap, "/tmp/qt_methods_XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	random_input(x_out, n, seed);
	char path[300];
	snprintf(path, sizeof path, "%s/x.npy", dir);
	cr_assert_eq(qt_npy_write(path, x_out), QT_OK, "%s", qt_error_msg());
	snprintf(spec, sizeof spec, "npy:%s", dir);
	return spec;
}

static void remove_samples(const char *dir)
{
	char path[300];
	snprintf(path, sizeof path, "%s/x.npy", dir);
	unlink(path);
	rmdir(dir);
}

static struct qt_dataset *open_samples(const char *spec)
{
	struct qt_dataset *ds;
	cr_assert_eq(qt_dataset_open(spec, NULL, &ds), QT_OK, "%s", qt_error_msg());
	return ds;
}

/* Deep copies of the engine's statistics, per target. */
struct seen {
	int n;
	struct qt_layer_stats s[4];
};

static enum qt_status keep_stats(void *user, struct qt_graph *g, const struct qt_layer_stats *s)
{
	struct seen *k = user;
	struct qt_layer_stats *c = &k->s[k->n++];
	size_t nk = (size_t)s->groups * s->K;
	*c = *s;
	c->xsum = malloc(nk * sizeof(double));
	memcpy(c->xsum, s->xsum, nk * sizeof(double));
	c->xtx = NULL;
	if (s->xtx) {
		c->xtx = malloc(nk * s->K * sizeof(double));
		memcpy(c->xtx, s->xtx, nk * s->K * sizeof(double));
	}
	c->xtx_holdout = NULL;
	return QT_OK;
}

static int node_index(const struct qt_graph *g, const char *op)
{
	for (int i = 0; i < g->n_nodes; i++)
		if (!strcmp(g->nodes[i].op_type, op))
			return i;
	cr_assert_fail("no %s node", op);
	return -1;
}

/* Compare engine sums with direct ones: relative 1e-5 of the largest
 * (float products in chunks of 1024 rows, summed in double). */
static void expect_close(const double *got, const double *want, size_t n, const char *what)
{
	double big = 0;
	for (size_t i = 0; i < n; i++)
		big = fmax(big, fabs(want[i]));
	for (size_t i = 0; i < n; i++)
		cr_assert(fabs(got[i] - want[i]) <= 1e-5 * big + 1e-9, "%s[%zu]: %g vs %g", what, i, got[i], want[i]);
}

/* The im2col row of small_cnn's conv (3x3, pads 1, stride 1, [3,8,8]) at (n, oh, ow). */
static void conv_row_3x3(const float *xd, int64_t n, int oh, int ow, float *row)
{
	int k = 0;
	for (int c = 0; c < 3; c++)
		for (int i = -1; i <= 1; i++)
			for (int j = -1; j <= 1; j++, k++) {
				int ih = oh + i, iw = ow + j;
				row[k] = ih >= 0 && ih < 8 && iw >= 0 && iw < 8 ? xd[((n * 3 + c) * 8 + ih) * 8 + iw] : 0.0f;
			}
}

/* Sums over every conv row of rows(xa) rows(xb)^T (27 x 27) and of rows(xb). */
static void direct_conv_cross(const float *xa, const float *xb, int64_t N, double *h, double *sum)
{
	for (int64_t n = 0; n < N; n++)
		for (int oh = 0; oh < 8; oh++)
			for (int ow = 0; ow < 8; ow++) {
				float ra[27], rb[27];
				conv_row_3x3(xa, n, oh, ow, ra);
				conv_row_3x3(xb, n, oh, ow, rb);
				for (int a = 0; a < 27; a++) {
					sum[a] += rb[a];
					for (int b = 0; b < 27; b++)
						h[a * 27 + b] += (double)ra[a] * rb[b];
				}
			}
}

/* The engine tests' setup: small_cnn(seed) prepared, 23 random samples
 * (sample seed xseed) as an npy dataset, and its Conv and Gemm as targets. */
struct engine_case {
	struct qt_graph *g;
	struct qt_tensor x;
	char dir[64];
	struct qt_dataset *ds;
	int targets[2]; /* conv, fc */
};

static void engine_case_open(struct engine_case *c, uint64_t seed, uint64_t xseed)
{
	memset(c, 0, sizeof *c);
	c->g = small_cnn(seed);
	cr_assert_eq(qt_quant_prepare(c->g, NULL), QT_OK, "%s", qt_error_msg());
	c->ds = open_samples(write_samples(c->dir, sizeof c->dir, 23, xseed, &c->x));
	c->targets[0] = node_index(c->g, "Conv");
	c->targets[1] = node_index(c->g, "Gemm");
}

static void engine_case_close(struct engine_case *c)
{
	qt_dataset_close(c->ds);
	qt_tensor_free(&c->x);
	remove_samples(c->dir);
	qt_graph_free(c->g);
}

/*
 * The engine walks the small CNN layer by layer in batches of 5 over 23
 * samples (a partial last batch; the Gemm's input comes from the spilled
 * frontier) and must give the sums of x x^T and x that one full run and an
 * explicit im2col give.
 */
Test(methods, layerdata_matches_direct_im2col)
{
	struct engine_case c;
	engine_case_open(&c, 21, 5);
	struct qt_graph *g = c.g;
	struct qt_tensor x = c.x;
	int fc = c.targets[1], *targets = c.targets;
	struct qt_dataset *ds = c.ds;
	struct seen seen = {0};
	struct qt_layerdata_opts o = {.batch = 5, .want_xtx = 1};
	cr_assert_eq(qt_layerdata_run(g, ds, targets, 2, &o, keep_stats, &seen), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(seen.n, 2);

	/* Direct: conv rows by explicit im2col (3x3, pads 1, stride 1) of x. */
	const int64_t K = 27, N = 23;
	double *h = calloc(K * K, sizeof *h), *sum = calloc(K, sizeof *sum);
	direct_conv_cross(x.data, x.data, N, h, sum);
	cr_assert_eq(seen.s[0].K, K);
	cr_assert_eq(seen.s[0].rows, N * 64);
	expect_close(seen.s[0].xtx, h, (size_t)(K * K), "conv xtx");
	expect_close(seen.s[0].xsum, sum, (size_t)K, "conv xsum");

	/* Direct: the Gemm's rows are its input, from one full run. */
	struct qt_rt *rt;
	cr_assert_eq(qt_rt_new(g, &rt), QT_OK);
	qt_rt_keep_all(rt, 1);
	struct qt_tensor y = {0};
	cr_assert_eq(qt_rt_run(rt, &x, &y), QT_OK, "%s", qt_error_msg());
	const struct qt_tensor *fin = qt_rt_value(rt, g->nodes[fc].inputs[0]);
	cr_assert_not_null(fin);
	const int64_t K2 = 64;
	double *h2 = calloc(K2 * K2, sizeof *h2), *s2 = calloc(K2, sizeof *s2);
	const float *fd = fin->data;
	for (int64_t n = 0; n < N; n++)
		for (int a = 0; a < K2; a++) {
			s2[a] += fd[n * K2 + a];
			for (int b = 0; b < K2; b++)
				h2[a * K2 + b] += (double)fd[n * K2 + a] * fd[n * K2 + b];
		}
	cr_assert_eq(seen.s[1].K, K2);
	cr_assert_eq(seen.s[1].rows, N);
	expect_close(seen.s[1].xtx, h2, (size_t)(K2 * K2), "gemm xtx");
	expect_close(seen.s[1].xsum, s2, (size_t)K2, "gemm xsum");

	for (int i = 0; i < seen.n; i++) {
		free(seen.s[i].xtx);
		free(seen.s[i].xsum);
	}
	free(h), free(sum), free(h2), free(s2);
	qt_tensor_free(&y);
	qt_rt_free(rt);
	engine_case_close(&c);
}

/* The twin stream's test hooks: the primary stream sees the graph input
 * clipped to [-0.5, 0.5] (idempotent, as real observers are: the engine
 * may observe a graph input again when it restarts from node 0's
 * frontier); the swap only counts (the FP32 stream runs the same graph). */
static void clip_half(float *d, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		d[i] = d[i] < -0.5f ? -0.5f : d[i] > 0.5f ? 0.5f : d[i];
}

static enum qt_status clip_input(void *user, int value, struct qt_tensor *t)
{
	const struct qt_graph *g = user;
	if (value == g->inputs[0])
		clip_half(t->data, qt_tensor_numel(t));
	return QT_OK;
}

static enum qt_status count_swap(void *user, struct qt_graph *g, int fp32)
{
	int *depth = user;
	*depth += fp32 ? 1 : -1;
	return *depth == 0 || *depth == 1 ? QT_OK : qt_error(QT_E_INVALID_ARG, "unbalanced twin swap");
}

static enum qt_status keep_cross(void *user, struct qt_graph *g, const struct qt_layer_stats *s)
{
	struct seen *k = user;
	struct qt_layer_stats *c = &k->s[k->n++];
	size_t nk = (size_t)s->groups * s->K;
	*c = *s;
	c->xtx = c->xtx_holdout = c->xsum = NULL;
	c->xcross = malloc(nk * s->K * sizeof(double));
	c->xsum_fp = malloc(nk * sizeof(double));
	cr_assert(s->xcross && s->xsum_fp, "no twin statistics");
	memcpy(c->xcross, s->xcross, nk * s->K * sizeof(double));
	memcpy(c->xsum_fp, s->xsum_fp, nk * sizeof(double));
	return QT_OK;
}

/* Sum over the rows of the Gemm input of value fc's input in two runs:
 * sum a b^T with a from input xa and b from input xb. */
static double *gemm_cross(struct qt_graph *g, int fc, struct qt_tensor *xa, struct qt_tensor *xb, int64_t N, int64_t K)
{
	struct qt_tensor *xs[2] = {xa, xb};
	float *rows[2];
	for (int r = 0; r < 2; r++) {
		struct qt_rt *rt;
		struct qt_tensor y = {0};
		cr_assert_eq(qt_rt_new(g, &rt), QT_OK);
		qt_rt_keep_all(rt, 1);
		cr_assert_eq(qt_rt_run(rt, xs[r], &y), QT_OK, "%s", qt_error_msg());
		const struct qt_tensor *fin = qt_rt_value(rt, g->nodes[fc].inputs[0]);
		rows[r] = malloc((size_t)N * K * sizeof(float));
		memcpy(rows[r], fin->data, (size_t)N * K * sizeof(float));
		qt_tensor_free(&y);
		qt_rt_free(rt);
	}
	double *c = calloc((size_t)K * K, sizeof *c);
	for (int64_t n = 0; n < N; n++)
		for (int64_t a = 0; a < K; a++)
			for (int64_t b = 0; b < K; b++)
				c[a * K + b] += (double)rows[0][n * K + a] * rows[1][n * K + b];
	free(rows[0]), free(rows[1]);
	return c;
}

/*
 * The twin stream pairs every row the quantized model gives a layer with
 * the row the FP32 model gives it at the same sample and position: with the
 * primary stream's input clipped, the conv's sum x_q x_fp^T is the explicit
 * im2col product of the clipped and the plain input, and the Gemm's equals
 * the product of two separate full runs
 * (5 batches over 23 samples, the last partial; the Gemm's rows come from
 * both spilled frontiers). Every swap to FP32 is undone.
 */
Test(methods, layerdata_twin_pairs_rows)
{
	struct engine_case c;
	engine_case_open(&c, 22, 6);
	struct qt_graph *g = c.g;
	struct qt_tensor x = c.x;
	int fc = c.targets[1], *targets = c.targets, depth = 0;
	struct qt_dataset *ds = c.ds;
	struct seen plain = {0}, twin = {0};
	struct qt_layerdata_opts o = {.batch = 5, .want_xtx = 1};
	cr_assert_eq(qt_layerdata_run(g, ds, targets, 2, &o, keep_stats, &plain), QT_OK, "%s", qt_error_msg());
	o.observer = clip_input;
	o.observer_user = g;
	o.twin_swap = count_swap;
	o.twin_user = &depth;
	cr_assert_eq(qt_layerdata_run(g, ds, targets, 2, &o, keep_cross, &twin), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(depth, 0, "a swap to FP32 was not undone");
	cr_assert_eq(twin.n, 2);
	const int64_t K = 27, K2 = 64, N = 23;
	struct qt_tensor x2 = {0};
	cr_assert_eq(qt_tensor_copy(&x2, &x), QT_OK);
	clip_half(x2.data, qt_tensor_numel(&x2));
	double *h = calloc(K * K, sizeof *h), *sum = calloc(K, sizeof *sum);
	direct_conv_cross(x2.data, x.data, N, h, sum);
	expect_close(twin.s[0].xcross, h, (size_t)(K * K), "conv xcross");
	expect_close(twin.s[0].xsum_fp, sum, (size_t)K, "conv xsum_fp");
	expect_close(twin.s[0].xsum_fp, plain.s[0].xsum, (size_t)K, "conv xsum_fp against the plain run");

	double *cross = gemm_cross(g, fc, &x2, &x, N, K2);
	expect_close(twin.s[1].xcross, cross, (size_t)(K2 * K2), "gemm xcross");
	expect_close(twin.s[1].xsum_fp, plain.s[1].xsum, (size_t)K2, "gemm xsum_fp");

	for (int i = 0; i < 2; i++) {
		free(plain.s[i].xtx), free(plain.s[i].xsum);
		free(twin.s[i].xcross), free(twin.s[i].xsum_fp);
	}
	free(h), free(sum), free(cross);
	qt_tensor_free(&x2);
	engine_case_close(&c);
}

/* Overrides edit the plan; a pattern that matches nothing is an error. */
Test(methods, plan_overrides)
{
	struct qt_graph *g = small_cnn(3);
	cr_assert_eq(qt_quant_prepare(g, NULL), QT_OK, "%s", qt_error_msg());
	const char *ov[] = {"fc=w8a4"}, *kf[] = {"con*"};
	struct qt_quant_opts o = {.wbits = 4, .abits = 8, .overrides = ov, .n_overrides = 1, .keep_float = kf,
				  .n_keep_float = 1};
	struct qt_plan p;
	cr_assert_eq(qt_plan_build(g, &o, &p), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(p.n, 2);
	for (int i = 0; i < p.n; i++) {
		const char *name = g->nodes[p.layers[i].node].name;
		if (!strcmp(name, "fc"))
			cr_assert(p.layers[i].wbits == 8 && p.layers[i].abits == 4 && !p.layers[i].keep_float);
		else
			cr_assert(p.layers[i].keep_float && p.layers[i].wbits == 4, "%s", name);
	}
	qt_plan_free(&p);
	const char *bad[] = {"nothing*=w8a8"};
	o.overrides = bad;
	cr_assert_eq(qt_plan_build(g, &o, &p), QT_E_INVALID_ARG);
	cr_assert(strstr(qt_error_msg(), "nothing*"), "%s", qt_error_msg());
	qt_graph_free(g);
}

/* Largest |mean output error| per channel of each weighted layer, in units
 * of half its int32 bias step (what rounding the corrected bias may leave),
 * measured against the FP32 layer on the FP32 model's mean inputs `means`. */
static double mean_error_in_half_steps(const struct qt_graph *fp, const struct qt_graph *q, const struct seen *means)
{
	double worst = 0;
	for (int t = 0; t < means->n; t++) {
		const struct qt_node *nf = &fp->nodes[means->s[t].node], *nq = &q->nodes[means->s[t].node];
		const struct qt_tensor *w = fp->values[nf->inputs[1]].init;
		const struct qt_tensor *b = fp->values[nf->inputs[2]].init;
		struct qt_tensor wq = {0};
		cr_assert_eq(qt_dequantize_value(&q->values[nq->inputs[1]], &wq), QT_OK, "%s", qt_error_msg());
		const struct qt_value *bqv = &q->values[nq->inputs[2]];
		int64_t C = w->dims[0], K = means->s[t].K;
		const float *wd = w->data, *wqd = wq.data, *bd = b->data;
		for (int64_t c = 0; c < C; c++) {
			double err = 0, bstep = bqv->q->scale[c];
			for (int64_t k = 0; k < K; k++)
				err += ((double)wqd[c * K + k] - wd[c * K + k]) * means->s[t].xsum[k] / (double)means->s[t].rows;
			err += bstep * ((const int32_t *)bqv->init->data)[c] - bd[c];
			worst = fmax(worst, fabs(err) / (0.5 * bstep));
		}
		qt_tensor_free(&wq);
	}
	return worst;
}

static struct qt_graph *quantize_with(const char *spec, const struct qt_calib_table *t, unsigned methods)
{
	struct qt_graph *g = small_cnn(31);
	struct qt_dataset *ds = open_samples(spec);
	struct qt_quant_opts o = {.wbits = 4, .abits = 8, .methods = methods, .data = ds, .batch = 8, .fp32_inputs = 1};
	cr_assert_eq(qt_quantize_graph(g, t, &o), QT_OK, "%s", qt_error_msg());
	qt_dataset_close(ds);
	return g;
}

/*
 * Bias correction on FP32 inputs: every output channel's mean error over the
 * calibration data is at most the half step of the int32 bias (plus 1% for
 * float sums), where round-to-nearest alone leaves errors many steps wide.
 */
Test(methods, bias_correction_zeroes_mean_output_error)
{
	struct qt_graph *fp = small_cnn(31);
	struct qt_calib_table *t = calibrate(fp);
	char dir[64];
	struct qt_tensor x = {0};
	const char *spec = write_samples(dir, sizeof dir, 64, 77, &x);
	cr_assert_eq(qt_quant_prepare(fp, NULL), QT_OK, "%s", qt_error_msg());
	struct qt_dataset *ds = open_samples(spec);
	int targets[2] = {node_index(fp, "Conv"), node_index(fp, "Gemm")};
	struct seen means = {0};
	struct qt_layerdata_opts lo = {.batch = 8, .observer = qt_fused_act_observer, .observer_user = fp};
	cr_assert_eq(qt_layerdata_run(fp, ds, targets, 2, &lo, keep_stats, &means), QT_OK, "%s", qt_error_msg());
	qt_dataset_close(ds);

	struct qt_graph *bc = quantize_with(spec, t, QT_METHOD_BIASCORR);
	struct qt_graph *rtn = quantize_with(spec, t, 0);
	/* Without --data methods a layer has no bias value of its own to measure
	 * when it had none; small_cnn's layers all have biases. */
	double e_bc = mean_error_in_half_steps(fp, bc, &means), e_rtn = mean_error_in_half_steps(fp, rtn, &means);
	cr_assert(e_bc <= 1.01, "bias correction leaves a mean error of %.3f half bias steps", e_bc);
	cr_assert(e_rtn > 10, "round to nearest should leave a visible mean error (%.3f half steps)", e_rtn);
	for (int i = 0; i < means.n; i++)
		free(means.s[i].xsum);
	qt_graph_free(bc);
	qt_graph_free(rtn);
	qt_graph_free(fp);
	qt_calib_table_free(t);
	qt_tensor_free(&x);
	remove_samples(dir);
}
