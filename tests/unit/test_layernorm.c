/*
 * The LayerNorm decomposition of pre-opset-17 exporters fused into one node
 * (qt_pass_fuse_layernorm), and float islands: activations that only float
 * ops read keep no 8-bit grid (lib/quant/quantize.c).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "qtool/calib.h"
#include "qtool/qmod.h"
#include "qtool/quant.h"
#include "qtool/rt.h"
#include "testgraph.h"

#define T 4 /* tokens */
#define D 8 /* width */

static int add_node(struct qt_graph *g, const char *op, int nin, const int *ins, int out)
{
	int n = qt_graph_add_node(g, op, "", "");
	node_io(g, n, nin, ins, 1, &out);
	return n;
}

/*
 * x [N, T, D] -> MatMul(W1 [D, D]) -> h -> Add(h, pos [T, D]) -> a ->
 * ReduceMean(-1) -> Sub -> Pow 2 -> ReduceMean(-1) -> Add eps -> Sqrt -> Div
 * -> Mul gamma -> Add beta -> z -> MatMul(W2 [D, 5]) -> y, as torch exports
 * LayerNorm at opset 14. Variant LN_LEAK also makes the Sub's output a graph
 * output (the chain must then stay as it is); LN_MUL squares by Mul(d, d).
 */
enum { LN_POW, LN_LEAK, LN_MUL };

static struct qt_graph *ln_graph(uint64_t seed, int variant)
{
	struct qt_graph *g;
	cr_assert_eq(qt_graph_new(&g), QT_OK);
	g->opset = 14;
	rng_seed(seed);
	int x = qt_graph_value(g, "x");
	g->values[x].is_input = 1;
	g->values[x].dtype = QT_DTYPE_F32;
	g->values[x].rank = 3;
	memcpy(g->values[x].dims, (int64_t[]){-1, T, D}, 3 * sizeof(int64_t));
	int w1 = add_random(g, "w1", 2, (int64_t[]){D, D}, 0.4f), w2 = add_random(g, "w2", 2, (int64_t[]){D, 5}, 0.4f);
	int pos = add_random(g, "pos", 2, (int64_t[]){T, D}, 1.0f);
	int gamma = add_random(g, "gamma", 1, (int64_t[]){D}, 0.5f), beta = add_random(g, "beta", 1, (int64_t[]){D}, 0.2f);
	float two = 2.0f, eps = 1e-5f;
	int c2 = add_const(g, "two", 0, NULL, &two), ce = add_const(g, "eps", 0, NULL, &eps);
	const char *names[] = {"h", "a", "mean", "d", "sq", "var", "ve", "sd", "n", "gn", "z", "y"};
	int v[12];
	for (int i = 0; i < 12; i++)
		v[i] = qt_graph_value(g, names[i]);
	add_node(g, "MatMul", 2, (int[]){x, w1}, v[0]);
	add_node(g, "Add", 2, (int[]){v[0], pos}, v[1]);
	node_ints(g, add_node(g, "ReduceMean", 1, &v[1], v[2]), "axes", 1, (int64_t[]){-1});
	add_node(g, "Sub", 2, (int[]){v[1], v[2]}, v[3]);
	if (variant == LN_MUL)
		add_node(g, "Mul", 2, (int[]){v[3], v[3]}, v[4]);
	else
		add_node(g, "Pow", 2, (int[]){v[3], c2}, v[4]);
	node_ints(g, add_node(g, "ReduceMean", 1, &v[4], v[5]), "axes", 1, (int64_t[]){-1});
	add_node(g, "Add", 2, (int[]){v[5], ce}, v[6]);
	add_node(g, "Sqrt", 1, &v[6], v[7]);
	add_node(g, "Div", 2, (int[]){v[3], v[7]}, v[8]);
	add_node(g, "Mul", 2, (int[]){v[8], gamma}, v[9]);
	add_node(g, "Add", 2, (int[]){v[9], beta}, v[10]);
	add_node(g, "MatMul", 2, (int[]){v[10], w2}, v[11]);
	g->values[v[11]].is_output = 1;
	finish_graph(g, x, v[11]);
	if (variant == LN_LEAK) {
		g->outputs = qt_graph_alloc(g, 2 * sizeof(int));
		g->outputs[0] = v[11];
		g->outputs[1] = v[3];
		g->n_outputs = 2;
		g->values[v[3]].is_output = 1;
		cr_assert_eq(qt_graph_finalize(g), QT_OK);
	}
	return g;
}

static void ln_input(struct qt_tensor *x, int n, uint64_t seed)
{
	rng_seed(seed);
	cr_assert_eq(qt_tensor_alloc(x, QT_DTYPE_F32, 3, (int64_t[]){n, T, D}), QT_OK);
	float *p = x->data;
	for (int64_t i = 0; i < qt_tensor_numel(x); i++)
		p[i] = (float)nrand();
}

static int count_op(const struct qt_graph *g, const char *op)
{
	int c = 0;
	for (int i = 0; i < g->n_nodes; i++)
		c += !strcmp(g->nodes[i].op_type, op);
	return c;
}

/* Outputs of g on x (graph output 0). */
static void run_first(const struct qt_graph *g, const struct qt_tensor *x, struct qt_tensor *y)
{
	struct qt_rt *rt;
	struct qt_tensor outs[2] = {{0}};
	cr_assert_eq(qt_rt_new(g, &rt), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_rt_run(rt, x, outs), QT_OK, "%s", qt_error_msg());
	*y = outs[0];
	qt_tensor_free(&outs[1]);
	qt_rt_free(rt);
}

Test(layernorm, decomposition_fuses_and_keeps_the_function)
{
	for (uint64_t seed = 1; seed <= 4; seed++) {
		struct qt_graph *g = ln_graph(seed, seed == 4 ? LN_MUL : LN_POW);
		struct qt_tensor x = {0}, y0 = {0}, y1 = {0};
		ln_input(&x, 6, 100 + seed);
		run_first(g, &x, &y0);
		int n;
		cr_assert_eq(qt_pass_fuse_layernorm(g, &n), QT_OK, "%s", qt_error_msg());
		cr_assert_eq(n, 1, "seed %llu: %d chains fused", (unsigned long long)seed, n);
		cr_assert_eq(count_op(g, QT_OP_LAYERNORM), 1);
		cr_assert_eq(count_op(g, "ReduceMean") + count_op(g, "Sqrt") + count_op(g, "Div") + count_op(g, "Pow"), 0);
		cr_assert_eq(g->n_nodes, 4, "MatMul, Add, LayerNormalization, MatMul; got %d nodes", g->n_nodes);
		run_first(g, &x, &y1);
		/* The fused kernel accumulates in double, the chain in float: a few
		 * float ulps of the normalised values, times |W2| sums of ~2. */
		const float *a = y0.data, *b = y1.data;
		for (int64_t i = 0; i < qt_tensor_numel(&y0); i++)
			cr_assert(fabsf(a[i] - b[i]) <= 1e-5f * (1 + fabsf(a[i])), "seed %llu element %lld: %g vs %g",
				  (unsigned long long)seed, (long long)i, a[i], b[i]);
		qt_tensor_free(&x);
		qt_tensor_free(&y0);
		qt_tensor_free(&y1);
		qt_graph_free(g);
	}
}

Test(layernorm, chain_read_from_outside_stays)
{
	struct qt_graph *g = ln_graph(7, LN_LEAK);
	int nodes = g->n_nodes, n;
	cr_assert_eq(qt_pass_fuse_layernorm(g, &n), QT_OK);
	cr_assert_eq(n, 0);
	cr_assert_eq(g->n_nodes, nodes);
	qt_graph_free(g);
}

/* Calibrate on 4 batches of 16 and quantize W8A8. */
static struct qt_graph *quantized_ln(uint64_t seed)
{
	struct qt_graph *g = ln_graph(seed, LN_POW);
	struct qt_calib_table *t = calibrate_with(g, ln_input);
	struct qt_quant_opts o = {.wbits = 8, .abits = 8};
	cr_assert_eq(qt_quantize_graph(g, t, &o), QT_OK, "%s", qt_error_msg());
	qt_calib_table_free(t);
	return g;
}

Test(layernorm, float_islands_and_their_reasons)
{
	struct qt_graph *g = quantized_ln(11);
	int a = qt_graph_find_value(g, "a"), h = qt_graph_find_value(g, "h"), z = qt_graph_find_value(g, "z");
	cr_assert(a >= 0 && h >= 0 && z >= 0);
	/* The position Add has no integer kernel (a non-scalar constant) and its
	 * one reader is the float LayerNormalization: no grid for "a". */
	cr_assert_null(g->values[a].q, "the LayerNorm input kept an 8-bit grid");
	cr_assert_not_null(g->values[h].q, "a weighted layer's output must stay codes");
	cr_assert_not_null(g->values[z].q, "the input of the integer MatMul must stay codes");
	char buf[256];
	for (int i = 0; i < g->n_nodes; i++) {
		const struct qt_node *n = &g->nodes[i];
		const char *r = qt_node_float_reason(g, i, buf, sizeof buf);
		if (!strcmp(n->op_type, QT_OP_LAYERNORM))
			cr_assert(r && strstr(r, "more than 8 bits"), "LayerNormalization: %s", r ? r : "(integer)");
		else if (!strcmp(n->op_type, "Add"))
			cr_assert(r && strstr(r, "output kept in float32"), "Add: %s", r ? r : "(integer)");
		else
			cr_assert_null(r, "%s runs in float: %s", n->op_type, r);
	}
	qt_graph_free(g);
}

/* The integer runtime computes the float simulation's outputs across the
 * float island, and both stay near FP32. */
Test(layernorm, integer_runtime_equals_simulation_across_islands)
{
	struct qt_graph *f = ln_graph(11, LN_POW), *g = quantized_ln(11);
	struct qt_tensor x = {0}, yi = {0}, ys = {0}, yf = {0};
	float oscale;
	ln_input(&x, 32, 555);
	int_and_sim(g, &x, &yi, &ys, &oscale);
	run_first(f, &x, &yf);
	const float *pi = yi.data, *ps = ys.data, *pf = yf.data;
	double s = 0, e = 0;
	for (int64_t i = 0; i < qt_tensor_numel(&yi); i++) {
		cr_assert(fabs((double)pi[i] - ps[i]) <= 1e-3 * oscale, "seed 555 element %lld: %g vs %g",
			  (long long)i, pi[i], ps[i]);
		s += (double)pf[i] * pf[i];
		e += ((double)pi[i] - pf[i]) * ((double)pi[i] - pf[i]);
	}
	double db = 10 * log10(s / e);
	/* A sanity bound: two W8A8 MatMuls around a float LayerNorm measure
	 * 28.5 dB here; a grid lost or misplaced across the island costs far more. */
	cr_assert(db >= 25, "W8A8 output SQNR %.1f dB against FP32 (seed 555)", db);
	qt_tensor_free(&x);
	qt_tensor_free(&yi);
	qt_tensor_free(&ys);
	qt_tensor_free(&yf);
	qt_graph_free(g);
	qt_graph_free(f);
}
