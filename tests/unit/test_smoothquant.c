/*
 * SmoothQuant (lib/quant/smoothquant.c): the smoothed FP32 graph computes the
 * same function, and each smoothed activation's per-channel maxima move as
 * the formula says. On the bundled ViT with Fashion-MNIST samples (fixed:
 * the first 64 training images fit, the first 32 test images check).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qtool/dataset.h"
#include "qtool/quant.h"
#include "qtool/rt.h"
#include "testgraph.h"

static struct qt_graph *prepared_vit(void)
{
	struct qt_graph *g;
	cr_assert_eq(qt_graph_load_onnx("models/fmnist_vit.onnx", &g), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_quant_prepare(g, NULL), QT_OK, "%s", qt_error_msg());
	return g;
}

/*
 * Tolerance: every smoothed weight and absorbing constant is one float
 * multiplication or division away from exact (relative 2^-24 each), and the
 * network's sums then round differently; through four transformer blocks
 * that stays near 1e-6 of the logits' range. 1e-4 leaves a wide margin; a
 * wrong s on any channel changes the logits by O(1).
 */
#define SQ_TOL 1e-4

static void function_kept(double alpha)
{
	struct qt_dataset *fit = open_split("fashion-mnist:train", 64), *check = open_split("fashion-mnist:test", 32);
	struct qt_graph *g = prepared_vit();
	struct qt_tensor x = {0}, y0 = {0}, y1 = {0};
	int n;
	cr_assert_eq(qt_dataset_next(check, 32, &x, NULL, &n), QT_OK, "%s", qt_error_msg());
	run_prepared(g, &x, &y0);
	struct qt_smoothquant_opts o = {.alpha = alpha, .wbits = 4, .abits = 8, .batch = 32};
	struct qt_smoothquant_stats st;
	cr_assert_eq(qt_pass_smoothquant(g, fit, &o, &st), QT_OK, "%s", qt_error_msg());
	run_prepared(g, &x, &y1);
	double d = rel_diff(&y0, &y1);
	printf("smoothquant alpha %g on fmnist_vit: %d layers smoothed (alpha %.1f..%.1f), %d unchanged, %d skipped, "
	       "rel logit diff %.2e\n",
	       alpha, st.layers, st.alpha_min, st.alpha_max, st.unchanged, st.skipped, d);
	/* q, k, v and fc1 behind LayerNormalization, fc2 behind GELU's Mul, the
	 * head behind the final LayerNormalization and ReduceMean. */
	cr_assert_eq(st.layers + st.unchanged, 21);
	cr_assert_eq(st.skipped, 5); /* the patch Conv (graph input) and the four attention projections */
	cr_assert_lt(d, SQ_TOL, "alpha %g: logits changed by %g of their range", alpha, d);
	qt_tensor_free(&x);
	qt_tensor_free(&y0);
	qt_tensor_free(&y1);
	qt_graph_free(g);
	qt_dataset_close(fit);
	qt_dataset_close(check);
}

Test(smoothquant, vit_function_kept_alpha_half)
{
	function_kept(0.5);
}

Test(smoothquant, vit_function_kept_alpha_auto)
{
	function_kept(-1);
}

/*
 * For the input x of block 0's q/k/v (shared by the three) and of its fc2:
 * after smoothing with alpha, max|x'_j| = max|x_j| / s_j with s_j =
 * max|x_j|^alpha / max|W_j|^(1-alpha) (max|W_j| over every reader's row j),
 * and the readers' new row maxima are max|W_j| s_j, so at alpha = 0.5 the
 * two are equal channel by channel. Relative tolerance 1e-4: the same data
 * gives the same maxima up to the float rounding of the rescaled constants.
 */
Test(smoothquant, channel_maxima_move_as_the_formula_says)
{
	const double alphas[] = {0.5, 0.8};
	for (int ai = 0; ai < 2; ai++) {
		double alpha = alphas[ai];
		struct qt_dataset *fit = open_split("fashion-mnist:train", 64);
		struct qt_graph *g = prepared_vit();
		const char *groups[2][3] = {
			{"/blocks/blocks.0/attn/q/MatMul", "/blocks/blocks.0/attn/k/MatMul", "/blocks/blocks.0/attn/v/MatMul"},
			{"/blocks/blocks.0/mlp/mlp.2/MatMul", NULL, NULL}};
		int64_t K[2];
		double *amax0[2], *wmax0[2];
		for (int gi = 0; gi < 2; gi++) {
			int n0 = node_by_name(g, groups[gi][0]);
			const struct qt_tensor *w = g->values[g->nodes[n0].inputs[1]].init;
			K[gi] = w->dims[0];
			amax0[gi] = calloc((size_t)K[gi], sizeof(double));
			wmax0[gi] = calloc((size_t)K[gi], sizeof(double));
			cr_assert_eq(qt_channel_absmax(g, fit, 32, g->nodes[n0].inputs[0], K[gi], amax0[gi]), QT_OK, "%s",
				     qt_error_msg());
			for (int r = 0; r < 3 && groups[gi][r]; r++) {
				const struct qt_tensor *t = g->values[g->nodes[node_by_name(g, groups[gi][r])].inputs[1]].init;
				const float *d = t->data;
				for (int64_t j = 0; j < K[gi]; j++)
					for (int64_t o = 0; o < t->dims[1]; o++)
						wmax0[gi][j] = fmax(wmax0[gi][j], fabs(d[j * t->dims[1] + o]));
			}
		}
		struct qt_smoothquant_opts o = {.alpha = alpha, .batch = 32};
		cr_assert_eq(qt_pass_smoothquant(g, fit, &o, NULL), QT_OK, "%s", qt_error_msg());
		for (int gi = 0; gi < 2; gi++) {
			int n0 = node_by_name(g, groups[gi][0]);
			double *amax1 = calloc((size_t)K[gi], sizeof(double)), worst = 0, worst_w = 0;
			cr_assert_eq(qt_channel_absmax(g, fit, 32, g->nodes[n0].inputs[0], K[gi], amax1), QT_OK);
			double spread0_lo = INFINITY, spread0_hi = 0, spread1_lo = INFINITY, spread1_hi = 0;
			for (int64_t j = 0; j < K[gi]; j++) {
				double a = amax0[gi][j], w = wmax0[gi][j];
				cr_assert_gt(a, 0);
				cr_assert_gt(w, 0);
				double s = pow(a, alpha) / pow(w, 1 - alpha);
				worst = fmax(worst, fabs(amax1[j] - a / s) / (a / s));
				double wmax1 = 0;
				for (int r = 0; r < 3 && groups[gi][r]; r++) {
					const struct qt_tensor *t =
						g->values[g->nodes[node_by_name(g, groups[gi][r])].inputs[1]].init;
					for (int64_t oc = 0; oc < t->dims[1]; oc++)
						wmax1 = fmax(wmax1, fabs(((const float *)t->data)[j * t->dims[1] + oc]));
				}
				if (alpha == 0.5)
					worst_w = fmax(worst_w, fabs(wmax1 - amax1[j]) / amax1[j]);
				spread0_lo = fmin(spread0_lo, a), spread0_hi = fmax(spread0_hi, a);
				spread1_lo = fmin(spread1_lo, amax1[j]), spread1_hi = fmax(spread1_hi, amax1[j]);
			}
			printf("smoothquant alpha %g, %s input: channel max spread %.1f -> %.1f; worst rel deviation from "
			       "max|x|/s %.1e%s",
			       alpha, groups[gi][0], spread0_hi / spread0_lo, spread1_hi / spread1_lo, worst,
			       alpha == 0.5 ? "" : "\n");
			if (alpha == 0.5)
				printf(", from max|W s| %.1e\n", worst_w);
			cr_assert_lt(worst, 1e-4, "alpha %g, %s: per-channel max off the formula by %g", alpha,
				     groups[gi][0], worst);
			cr_assert_lt(worst_w, 1e-4, "alpha 0.5, %s: activation and weight maxima differ by %g",
				     groups[gi][0], worst_w);
			free(amax1);
			free(amax0[gi]);
			free(wmax0[gi]);
		}
		qt_graph_free(g);
		qt_dataset_close(fit);
	}
}
