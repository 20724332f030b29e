/* Graph builders and data for the unit tests (testgraph.h). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qtool/dataset.h"
#include "qtool/qmod.h"
#include "qtool/quant.h"
#include "qtool/rt.h"
#include "../../lib/rt/qmodel_int.h"
#include "testgraph.h"

uint64_t rng_state;
void rng_seed(uint64_t s) { rng_state = s * 2654435761u + 1; }
double urand(void)
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (double)(rng_state >> 11) / 9007199254740992.0;
}
double nrand(void)
{
	double u = urand() + 1e-12, v = urand();
	return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* ---- small graphs ---- */

/* A constant of dtype dt (4- or 8-byte elements) named `name`. */
int add_tensor(struct qt_graph *g, const char *name, enum qt_dtype dt, int rank, const int64_t *dims, const void *vals)
{
	int v = qt_graph_value(g, name);
	struct qt_tensor *t = qt_graph_alloc(g, sizeof *t);
	int64_t n = 1;
	for (int i = 0; i < rank; i++)
		n *= dims[i];
	size_t esz = dt == QT_DTYPE_I64 ? 8 : 4;
	t->dtype = dt;
	t->rank = rank;
	if (rank)
		memcpy(t->dims, dims, sizeof(int64_t) * (size_t)rank);
	t->data = qt_graph_alloc(g, (size_t)n * esz + 1);
	t->nbytes = (size_t)n * esz;
	memcpy(t->data, vals, t->nbytes);
	g->values[v].init = t;
	g->values[v].dtype = dt;
	g->values[v].rank = rank;
	if (rank)
		memcpy(g->values[v].dims, dims, sizeof(int64_t) * (size_t)rank);
	return v;
}

int add_const(struct qt_graph *g, const char *name, int rank, const int64_t *dims, const float *vals)
{
	return add_tensor(g, name, QT_DTYPE_F32, rank, dims, vals);
}

void node_io(struct qt_graph *g, int ni, int nin, const int *ins, int nout, const int *outs)
{
	struct qt_node *n = &g->nodes[ni];
	n->n_inputs = nin;
	n->inputs = qt_graph_alloc(g, sizeof(int) * (size_t)(nin + 1));
	memcpy(n->inputs, ins, sizeof(int) * (size_t)nin);
	n->n_outputs = nout;
	n->outputs = qt_graph_alloc(g, sizeof(int) * (size_t)(nout + 1));
	memcpy(n->outputs, outs, sizeof(int) * (size_t)nout);
}

void node_ints(struct qt_graph *g, int ni, const char *name, int n, const int64_t *v)
{
	struct qt_node *nd = &g->nodes[ni];
	struct qt_attr *a = qt_graph_alloc(g, sizeof *a * (size_t)(nd->n_attrs + 1));
	if (nd->n_attrs)
		memcpy(a, nd->attrs, sizeof *a * (size_t)nd->n_attrs);
	a[nd->n_attrs].name = qt_graph_strdup(g, name);
	a[nd->n_attrs].type = QT_ATTR_INTS;
	a[nd->n_attrs].n = n;
	a[nd->n_attrs].ints = qt_graph_alloc(g, sizeof(int64_t) * (size_t)n);
	memcpy(a[nd->n_attrs].ints, v, sizeof(int64_t) * (size_t)n);
	nd->attrs = a;
	nd->n_attrs++;
}

/* A float constant of N(0, sd^2) values from the test's generator. */
int add_random(struct qt_graph *g, const char *name, int rank, const int64_t *dims, float sd)
{
	int64_t n = 1;
	for (int i = 0; i < rank; i++)
		n *= dims[i];
	float *v = malloc(sizeof(float) * (size_t)n);
	for (int64_t i = 0; i < n; i++)
		v[i] = (float)nrand() * sd;
	int id = add_const(g, name, rank, dims, v);
	free(v);
	return id;
}

/* Float input "x" of shape [batch, C, H, W]. */
int add_input_nchw(struct qt_graph *g, int64_t C, int64_t H, int64_t W)
{
	int x = qt_graph_value(g, "x");
	g->values[x].is_input = 1;
	g->values[x].dtype = QT_DTYPE_F32;
	g->values[x].rank = 4;
	memcpy(g->values[x].dims, (int64_t[]){-1, C, H, W}, 4 * sizeof(int64_t));
	return x;
}

/* Declare x as the one graph input and y as the one output; finalize. */
struct qt_graph *finish_graph(struct qt_graph *g, int x, int y)
{
	g->inputs = qt_graph_alloc(g, sizeof(int));
	g->inputs[0] = x;
	g->n_inputs = 1;
	g->outputs = qt_graph_alloc(g, sizeof(int));
	g->outputs[0] = y;
	g->n_outputs = 1;
	cr_assert_eq(qt_graph_finalize(g), QT_OK, "%s", qt_error_msg());
	return g;
}

/*
 * x[N,3,8,8] -> Conv(4x3x3x3, pads 1) -> BatchNormalization -> Relu ->
 * MaxPool 2x2 -> Flatten -> Gemm(64 -> 5, transB) -> y. Random weights.
 */
struct qt_graph *small_cnn(uint64_t seed)
{
	struct qt_graph *g;
	cr_assert_eq(qt_graph_new(&g), QT_OK);
	g->opset = 13;
	rng_seed(seed);
	float w[4 * 3 * 9], b[4], sc[4], bb[4], mu[4], var[4], gw[5 * 64], gb[5];
	for (size_t i = 0; i < sizeof w / 4; i++)
		w[i] = (float)(nrand() * 0.3);
	for (int i = 0; i < 4; i++) {
		b[i] = (float)(nrand() * 0.1);
		sc[i] = (float)(0.5 + urand());
		bb[i] = (float)(nrand() * 0.2);
		mu[i] = (float)(nrand() * 0.3);
		var[i] = (float)(0.2 + urand());
	}
	for (size_t i = 0; i < sizeof gw / 4; i++)
		gw[i] = (float)(nrand() * 0.2);
	for (int i = 0; i < 5; i++)
		gb[i] = (float)(nrand() * 0.1);
	int x = add_input_nchw(g, 3, 8, 8);
	int64_t wd[4] = {4, 3, 3, 3}, cd[1] = {4}, gwd[2] = {5, 64}, gbd[1] = {5};
	int vw = add_const(g, "w", 4, wd, w), vb = add_const(g, "b", 1, cd, b);
	int vs = add_const(g, "bn_s", 1, cd, sc), vbb = add_const(g, "bn_b", 1, cd, bb);
	int vm = add_const(g, "bn_m", 1, cd, mu), vv = add_const(g, "bn_v", 1, cd, var);
	int vgw = add_const(g, "gw", 2, gwd, gw), vgb = add_const(g, "gb", 1, gbd, gb);
	int c = qt_graph_value(g, "conv"), bn = qt_graph_value(g, "bn"), r = qt_graph_value(g, "relu");
	int mp = qt_graph_value(g, "pool"), fl = qt_graph_value(g, "flat"), y = qt_graph_value(g, "y");
	g->values[y].is_output = 1;
	int n0 = qt_graph_add_node(g, "Conv", "", "conv");
	node_io(g, n0, 3, (int[]){x, vw, vb}, 1, &c);
	node_ints(g, n0, "pads", 4, (int64_t[]){1, 1, 1, 1});
	int n1 = qt_graph_add_node(g, "BatchNormalization", "", "bn");
	node_io(g, n1, 5, (int[]){c, vs, vbb, vm, vv}, 1, &bn);
	int n2 = qt_graph_add_node(g, "Relu", "", "relu");
	node_io(g, n2, 1, &bn, 1, &r);
	int n3 = qt_graph_add_node(g, "MaxPool", "", "pool");
	node_io(g, n3, 1, &r, 1, &mp);
	node_ints(g, n3, "kernel_shape", 2, (int64_t[]){2, 2});
	node_ints(g, n3, "strides", 2, (int64_t[]){2, 2});
	int n4 = qt_graph_add_node(g, "Flatten", "", "flat");
	node_io(g, n4, 1, &mp, 1, &fl);
	int n5 = qt_graph_add_node(g, "Gemm", "", "fc");
	node_io(g, n5, 3, (int[]){fl, vgw, vgb}, 1, &y);
	struct qt_attr *a = qt_graph_alloc(g, sizeof *a);
	a->name = "transB";
	a->type = QT_ATTR_INT;
	a->i = 1;
	g->nodes[n5].attrs = a;
	g->nodes[n5].n_attrs = 1;
	return finish_graph(g, x, y);
}

void random_input(struct qt_tensor *x, int n, uint64_t seed)
{
	rng_seed(seed);
	int64_t d[4] = {n, 3, 8, 8};
	cr_assert_eq(qt_tensor_alloc(x, QT_DTYPE_F32, 4, d), QT_OK);
	float *p = x->data;
	for (int64_t i = 0; i < qt_tensor_numel(x); i++)
		p[i] = (float)nrand();
}

void run_fp32(const struct qt_graph *g, const struct qt_tensor *x, struct qt_tensor *y)
{
	struct qt_rt *rt;
	cr_assert_eq(qt_rt_new(g, &rt), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_rt_run(rt, x, y), QT_OK, "%s", qt_error_msg());
	qt_rt_free(rt);
}

struct qt_calib_table *calibrate(struct qt_graph *g)
{
	return calibrate_with(g, random_input);
}

struct qt_calib_table *calibrate_with(struct qt_graph *g, void (*input)(struct qt_tensor *x, int n, uint64_t seed))
{
	struct qt_calib *c;
	cr_assert_eq(qt_calib_new(g, NULL, &c), QT_OK, "%s", qt_error_msg());
	struct qt_rt *rt;
	cr_assert_eq(qt_rt_new(g, &rt), QT_OK);
	qt_rt_set_observer(rt, qt_calib_observer, c);
	for (int b = 0; b < 4; b++) {
		struct qt_tensor x = {0}, y = {0};
		input(&x, 16, 100 + (uint64_t)b);
		cr_assert_eq(qt_rt_run(rt, &x, &y), QT_OK, "%s", qt_error_msg());
		qt_tensor_free(&x);
		qt_tensor_free(&y);
	}
	qt_rt_free(rt);
	struct qt_calib_table *t;
	struct qt_calib_meta meta = {0};
	cr_assert_eq(qt_calib_finish(c, &meta, &t), QT_OK, "%s", qt_error_msg());
	qt_calib_free(c);
	return t;
}


/* Conv weight [M, Cg, k, k] whose output channel m is scaled by 4^u, u
 * uniform in [-1, 1]: the channel ranges spread over a factor of up to 16, as
 * in trained depthwise nets. */
static int add_spread_conv(struct qt_graph *g, const char *name, int64_t M, int64_t Cg, int64_t k)
{
	int64_t n = M * Cg * k * k, d[4] = {M, Cg, k, k};
	float *w = malloc(sizeof(float) * (size_t)n);
	for (int64_t m = 0; m < M; m++) {
		double f = pow(4.0, 2 * urand() - 1);
		for (int64_t i = 0; i < Cg * k * k; i++)
			w[m * Cg * k * k + i] = (float)(nrand() * 0.3 * f);
	}
	int v = add_const(g, name, 4, d, w);
	free(w);
	return v;
}

/* Conv, Relu (or Clip(0, 6) with relu6) and optional MaxPool after it. */
static int add_conv_act(struct qt_graph *g, const char *name, int in, int64_t M, int64_t Cg, int64_t k, int group,
			int relu6, int pool)
{
	char buf[64];
	snprintf(buf, sizeof buf, "%s_w", name);
	int w = add_spread_conv(g, buf, M, Cg, k);
	snprintf(buf, sizeof buf, "%s_b", name);
	int b = add_random(g, buf, 1, (int64_t[]){M}, 0.1f);
	int c = qt_graph_value(g, name);
	int n = qt_graph_add_node(g, "Conv", "", name);
	node_io(g, n, 3, (int[]){in, w, b}, 1, &c);
	int64_t p = k / 2;
	node_ints(g, n, "pads", 4, (int64_t[]){p, p, p, p});
	if (group > 1) {
		struct qt_node *nd = &g->nodes[n];
		struct qt_attr *a = qt_graph_alloc(g, sizeof *a * (size_t)(nd->n_attrs + 1));
		memcpy(a, nd->attrs, sizeof *a * (size_t)nd->n_attrs);
		a[nd->n_attrs] = (struct qt_attr){.name = "group", .type = QT_ATTR_INT, .i = group};
		nd->attrs = a;
		nd->n_attrs++;
	}
	snprintf(buf, sizeof buf, "%s_act", name);
	int r = qt_graph_value(g, buf);
	if (relu6) {
		int lo = add_const(g, "zero_c", 0, NULL, (float[]){0}), hi = add_const(g, "six_c", 0, NULL, (float[]){6});
		int na = qt_graph_add_node(g, "Clip", "", buf);
		node_io(g, na, 3, (int[]){c, lo, hi}, 1, &r);
	} else {
		int na = qt_graph_add_node(g, "Relu", "", buf);
		node_io(g, na, 1, &c, 1, &r);
	}
	if (!pool)
		return r;
	snprintf(buf, sizeof buf, "%s_pool", name);
	int mp = qt_graph_value(g, buf);
	int np = qt_graph_add_node(g, "MaxPool", "", buf);
	node_io(g, np, 1, &r, 1, &mp);
	node_ints(g, np, "kernel_shape", 2, (int64_t[]){2, 2});
	node_ints(g, np, "strides", 2, (int64_t[]){2, 2});
	return mp;
}

/*
 * A depthwise-separable net with spread channel ranges:
 * x[N,3,8,8] -> Conv 8x3x3x3 -> act -> Conv depthwise 8 (3x3, group 8) -> act
 * -> Conv pointwise 6x8x1x1 -> act -> MaxPool 2x2 -> Flatten -> Gemm(96 -> 5,
 * transB) -> y. act: Relu, or Clip(0, 6) everywhere with relu6.
 */
struct qt_graph *dwsep_cnn(uint64_t seed, int relu6)
{
	struct qt_graph *g;
	cr_assert_eq(qt_graph_new(&g), QT_OK);
	g->opset = 13;
	rng_seed(seed);
	int x = add_input_nchw(g, 3, 8, 8);
	int a = add_conv_act(g, "conv1", x, 8, 3, 3, 1, relu6, 0);
	a = add_conv_act(g, "dw", a, 8, 1, 3, 8, relu6, 0);
	a = add_conv_act(g, "pw", a, 6, 8, 1, 1, relu6, 1);
	int fl = qt_graph_value(g, "flat"), y = qt_graph_value(g, "y");
	g->values[y].is_output = 1;
	int nf = qt_graph_add_node(g, "Flatten", "", "flat");
	node_io(g, nf, 1, &a, 1, &fl);
	int gw = add_random(g, "fc_w", 2, (int64_t[]){5, 96}, 0.2f), gb = add_random(g, "fc_b", 1, (int64_t[]){5}, 0.1f);
	int n5 = qt_graph_add_node(g, "Gemm", "", "fc");
	node_io(g, n5, 3, (int[]){fl, gw, gb}, 1, &y);
	struct qt_attr *at = qt_graph_alloc(g, sizeof *at);
	*at = (struct qt_attr){.name = "transB", .type = QT_ATTR_INT, .i = 1};
	g->nodes[n5].attrs = at;
	g->nodes[n5].n_attrs = 1;
	return finish_graph(g, x, y);
}

/* The prepared graph's FP32 function: fused activations applied. */
void run_prepared(struct qt_graph *g, const struct qt_tensor *x, struct qt_tensor *y)
{
	struct qt_rt *rt;
	cr_assert_eq(qt_rt_new(g, &rt), QT_OK, "%s", qt_error_msg());
	qt_rt_set_observer(rt, qt_fused_act_observer, g);
	cr_assert_eq(qt_rt_run(rt, x, y), QT_OK, "%s", qt_error_msg());
	qt_rt_free(rt);
}

int node_by_name(const struct qt_graph *g, const char *name)
{
	for (int i = 0; i < g->n_nodes; i++)
		if (!strcmp(g->nodes[i].name, name))
			return i;
	cr_assert_fail("no node %s", name);
	return -1;
}

struct qt_dataset *open_split(const char *spec, int64_t limit)
{
	struct qt_dataset *ds;
	struct qt_dataset_opts o = {.limit = limit};
	cr_assert_eq(qt_dataset_open(spec, &o, &ds), QT_OK, "%s", qt_error_msg());
	return ds;
}

/* max |a - b| / max |a| */
double rel_diff(const struct qt_tensor *a, const struct qt_tensor *b)
{
	cr_assert_eq(qt_tensor_numel(a), qt_tensor_numel(b));
	const float *p = a->data, *q = b->data;
	double d = 0, m = 0;
	for (int64_t i = 0; i < qt_tensor_numel(a); i++) {
		d = fmax(d, fabs((double)p[i] - q[i]));
		m = fmax(m, fabs((double)p[i]));
	}
	return d / m;
}

void int_and_sim(const struct qt_graph *g, const struct qt_tensor *x, struct qt_tensor *yi, struct qt_tensor *ys,
		 float *out_scale)
{
	uint8_t *b;
	size_t l;
	cr_assert_eq(qt_qmod_serialize(g, &b, &l), QT_OK, "%s", qt_error_msg());
	struct qt_graph *gi, *gs;
	cr_assert_eq(qt_qmod_read_mem(b, l, "a.qmod", &gi), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_qmod_read_mem(b, l, "b.qmod", &gs), QT_OK);
	free(b);
	struct qt_qrt *q;
	cr_assert_eq(qt_qrt_new(gi, &q), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_fakequant_prepare(gs), QT_OK);
	struct qt_rt *rt;
	cr_assert_eq(qt_rt_new(gs, &rt), QT_OK);
	qt_rt_set_observer(rt, qt_fakequant_observer, gs);
	cr_assert_eq(qt_qrt_run(q, x, yi), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_rt_run(rt, x, ys), QT_OK, "%s", qt_error_msg());
	*out_scale = gi->values[gi->outputs[0]].q->scale[0];
	qt_rt_free(rt);
	qt_qrt_free(q);
	qt_graph_free(gi);
	qt_graph_free(gs);
}
