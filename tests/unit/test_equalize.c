/*
 * Cross-layer equalization (lib/quant/equalize.c): the FP32 function of the
 * prepared graph is unchanged, and the per-channel weight range spread
 * narrows. Fixed seeds, printed on failure.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qtool/quant.h"
#include "qtool/rt.h"
#include "testgraph.h"

/* The prepared graph's FP32 function: fused activations applied. */
static void run_prepared(struct qt_graph *g, const struct qt_tensor *x, struct qt_tensor *y)
{
	struct qt_rt *rt;
	cr_assert_eq(qt_rt_new(g, &rt), QT_OK, "%s", qt_error_msg());
	qt_rt_set_observer(rt, qt_fused_act_observer, g);
	cr_assert_eq(qt_rt_run(rt, x, y), QT_OK, "%s", qt_error_msg());
	qt_rt_free(rt);
}

/* max |a - b| / max |a| */
static double rel_diff(const struct qt_tensor *a, const struct qt_tensor *b)
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

static int node_by_name(const struct qt_graph *g, const char *name)
{
	for (int i = 0; i < g->n_nodes; i++)
		if (!strcmp(g->nodes[i].name, name))
			return i;
	cr_assert_fail("no node %s", name);
	return -1;
}

/*
 * Tolerance: each rescale rounds a weight to float (relative error <= 2^-24),
 * a weight sees one rescale per sweep per pair it belongs to (at most 2 x 20
 * sweeps), and the runtime's sums then round differently: about 1e-6
 * relative. 1e-4 of the output's max keeps a wide margin while a wrong scale
 * on any channel (an O(1) change) fails by orders of magnitude.
 */
#define EQ_TOL 1e-4

Test(equalize, dwsep_function_kept_spread_narrows)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct qt_graph *g = dwsep_cnn(seed, 0);
		cr_assert_eq(qt_quant_prepare(g, NULL), QT_OK, "%s", qt_error_msg());
		const char *names[] = {"conv1", "dw", "pw"};
		double before[3], after[3];
		for (int k = 0; k < 3; k++)
			before[k] = qt_weight_range_spread(g, node_by_name(g, names[k]));
		struct qt_tensor x = {0}, y0 = {0}, y1 = {0};
		random_input(&x, 8, 50 + seed);
		run_prepared(g, &x, &y0);
		struct qt_equalize_stats st;
		cr_assert_eq(qt_pass_equalize(g, NULL, &st), QT_OK, "%s", qt_error_msg());
		run_prepared(g, &x, &y1);
		double d = rel_diff(&y0, &y1);
		for (int k = 0; k < 3; k++)
			after[k] = qt_weight_range_spread(g, node_by_name(g, names[k]));
		printf("equalize dwsep seed %llu: pairs %d sweeps %d last max|log s| %.2e, rel out diff %.2e, spread "
		       "conv1 %.2f -> %.2f, dw %.2f -> %.2f, pw %.2f -> %.2f\n",
		       (unsigned long long)seed, st.pairs, st.iterations, st.last_max_log_s, d, before[0], after[0],
		       before[1], after[1], before[2], after[2]);
		/* conv1 -> dw, dw -> pw, pw -> (MaxPool, Flatten) -> fc */
		cr_assert_eq(st.pairs, 3, "seed %llu", (unsigned long long)seed);
		cr_assert_eq(st.skipped_clip, 0);
		cr_assert_lt(st.last_max_log_s, 1e-3, "seed %llu: scales did not settle", (unsigned long long)seed);
		cr_assert_lt(d, EQ_TOL, "seed %llu: output changed by %g", (unsigned long long)seed, d);
		for (int k = 0; k < 3; k++)
			cr_assert_lt(after[k], before[k], "seed %llu: %s spread %g -> %g", (unsigned long long)seed,
				     names[k], before[k], after[k]);
		qt_tensor_free(&x);
		qt_tensor_free(&y0);
		qt_tensor_free(&y1);
		qt_graph_free(g);
	}
}

/* BN folded into the conv, then Relu, MaxPool, Flatten to the Gemm. */
Test(equalize, small_cnn_through_flatten)
{
	struct qt_graph *g = small_cnn(7);
	cr_assert_eq(qt_quant_prepare(g, NULL), QT_OK, "%s", qt_error_msg());
	struct qt_tensor x = {0}, y0 = {0}, y1 = {0};
	random_input(&x, 8, 77);
	run_prepared(g, &x, &y0);
	int conv = node_by_name(g, "conv");
	double before = qt_weight_range_spread(g, conv);
	struct qt_equalize_stats st;
	cr_assert_eq(qt_pass_equalize(g, NULL, &st), QT_OK, "%s", qt_error_msg());
	run_prepared(g, &x, &y1);
	double d = rel_diff(&y0, &y1), after = qt_weight_range_spread(g, conv);
	printf("equalize small_cnn: pairs %d, rel out diff %.2e, conv spread %.3f -> %.3f\n", st.pairs, d, before,
	       after);
	cr_assert_eq(st.pairs, 1);
	cr_assert_lt(d, EQ_TOL);
	cr_assert_leq(after, before);
	qt_tensor_free(&x);
	qt_tensor_free(&y0);
	qt_tensor_free(&y1);
	qt_graph_free(g);
}

/* A fused Clip(0, 6) is not positively homogeneous: every pair is skipped,
 * counted, and the weights are untouched. */
Test(equalize, relu6_pairs_skipped)
{
	struct qt_graph *g = dwsep_cnn(4, 1);
	cr_assert_eq(qt_quant_prepare(g, NULL), QT_OK, "%s", qt_error_msg());
	int dw = node_by_name(g, "dw");
	double before = qt_weight_range_spread(g, dw);
	struct qt_equalize_stats st;
	cr_assert_eq(qt_pass_equalize(g, NULL, &st), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(st.pairs, 0);
	cr_assert_eq(st.skipped_clip, 3);
	cr_assert_eq(qt_weight_range_spread(g, dw), before);
	qt_graph_free(g);
}

/* The bundled MobileNet: prepared, equalized, same outputs on random
 * Fashion-MNIST-shaped inputs. */
Test(equalize, fmnist_mobilenet_function_kept)
{
	struct qt_graph *g;
	cr_assert_eq(qt_graph_load_onnx("models/fmnist_mobilenet.onnx", &g), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_quant_prepare(g, NULL), QT_OK, "%s", qt_error_msg());
	int64_t d[QT_MAX_RANK];
	int r = qt_graph_input_dims(g, 0, 4, d);
	cr_assert_gt(r, 0);
	struct qt_tensor x = {0}, y0 = {0}, y1 = {0};
	cr_assert_eq(qt_tensor_alloc(&x, QT_DTYPE_F32, r, d), QT_OK);
	rng_seed(2026);
	for (int64_t i = 0; i < qt_tensor_numel(&x); i++)
		((float *)x.data)[i] = (float)nrand();
	run_prepared(g, &x, &y0);
	double worst_before = 0, worst_after = 0;
	for (int i = 0; i < g->n_nodes; i++)
		worst_before = fmax(worst_before, qt_weight_range_spread(g, i));
	struct qt_equalize_stats st;
	cr_assert_eq(qt_pass_equalize(g, NULL, &st), QT_OK, "%s", qt_error_msg());
	run_prepared(g, &x, &y1);
	for (int i = 0; i < g->n_nodes; i++)
		worst_after = fmax(worst_after, qt_weight_range_spread(g, i));
	double diff = rel_diff(&y0, &y1);
	printf("equalize fmnist_mobilenet: pairs %d skipped clip %d shape %d, sweeps %d, rel out diff %.2e, "
	       "worst spread %.1f -> %.1f\n",
	       st.pairs, st.skipped_clip, st.skipped_shape, st.iterations, diff, worst_before, worst_after);
	cr_assert_lt(diff, EQ_TOL);
	qt_tensor_free(&x);
	qt_tensor_free(&y0);
	qt_tensor_free(&y1);
	qt_graph_free(g);
}
