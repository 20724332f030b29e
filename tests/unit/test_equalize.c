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

#include "qtool/calib.h"
#include "qtool/dataset.h"
#include "qtool/quant.h"
#include "qtool/rt.h"
#include "testgraph.h"

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

/* ---- The CLE stage of qt_quantize_graph: ranges measured on the equalized graph ---- */

struct minmax_obs {
	struct qt_graph *g;
	double *lo, *hi;
};

/* Fused activations first (the prepared graph's function), then min/max. */
static enum qt_status minmax_observer(void *user, int value, struct qt_tensor *t)
{
	struct minmax_obs *m = user;
	qt_fused_act_observer(m->g, value, t);
	if (t->dtype != QT_DTYPE_F32)
		return QT_OK;
	const float *d = t->data;
	for (int64_t i = 0; i < qt_tensor_numel(t); i++) {
		m->lo[value] = fmin(m->lo[value], d[i]);
		m->hi[value] = fmax(m->hi[value], d[i]);
	}
	return QT_OK;
}

/*
 * With the minmax method, every activation range the quantizer uses after
 * CLE is the [min, max] (widened to 0) of that tensor in the equalized FP32
 * graph on the same samples, and the calibration file's range of at least
 * one equalized tensor would have been wrong (stale).
 */
Test(equalize, cle_stage_measures_ranges_again)
{
	struct qt_dataset *ds = open_split("fashion-mnist:train", 96);
	struct qt_graph *g0, *g1, *g2;
	cr_assert_eq(qt_graph_load_onnx("models/fmnist_cnn.onnx", &g0), QT_OK, "%s", qt_error_msg());
	struct qt_calib_meta meta = {.default_method = QT_CALIB_MINMAX};
	struct qt_calib_table *t0;
	cr_assert_eq(qt_calib_run(g0, ds, 32, NULL, NULL, NULL, &meta, &t0), QT_OK, "%s", qt_error_msg());

	cr_assert_eq(qt_graph_load_onnx("models/fmnist_cnn.onnx", &g1), QT_OK);
	struct qt_rewrite_report rw = {0};
	struct qt_quant_opts o = {.wbits = 8, .abits = 8, .methods = QT_METHOD_CLE, .data = ds, .batch = 32,
				  .rewrite_out = &rw};
	cr_assert_eq(qt_quantize_graph(g1, t0, &o), QT_OK, "%s", qt_error_msg());
	cr_assert(rw.cle_done);
	cr_assert_gt(rw.cle.pairs, 0);
	cr_assert_eq(rw.recalibrated, 96);

	/* The reference: equalize a fresh copy and observe it directly. */
	cr_assert_eq(qt_graph_load_onnx("models/fmnist_cnn.onnx", &g2), QT_OK);
	cr_assert_eq(qt_quant_prepare(g2, NULL), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_pass_equalize(g2, NULL, NULL), QT_OK);
	struct minmax_obs m = {.g = g2};
	m.lo = calloc((size_t)g2->n_values, sizeof *m.lo);
	m.hi = calloc((size_t)g2->n_values, sizeof *m.hi);
	struct qt_rt *rt;
	cr_assert_eq(qt_rt_new(g2, &rt), QT_OK);
	qt_rt_set_observer(rt, minmax_observer, &m);
	struct qt_tensor x = {0}, y = {0};
	int n;
	qt_dataset_reset(ds);
	while (qt_dataset_next(ds, 32, &x, NULL, &n) == QT_OK && n > 0) {
		cr_assert_eq(qt_rt_run(rt, &x, &y), QT_OK, "%s", qt_error_msg());
		qt_tensor_free(&y);
	}
	int checked = 0, stale = 0;
	for (int v = 0; v < g2->n_values; v++) {
		const struct qt_value *ref = &g2->values[v];
		if (ref->init || ref->dtype != QT_DTYPE_F32 || ref->producer < 0)
			continue;
		int v1 = qt_graph_find_value(g1, ref->name);
		cr_assert_geq(v1, 0, "%s", ref->name);
		const struct qt_qparams *q = g1->values[v1].q;
		cr_assert_not_null(q, "%s has no qparams", ref->name);
		float s;
		int32_t zp;
		cr_assert_eq(qt_qparams_asym((float)m.lo[v], (float)m.hi[v], 8, &s, &zp), QT_OK);
		cr_assert_float_eq(q->scale[0], s, 1e-6 * s, "%s: scale %g, the equalized graph's %g", ref->name,
				   q->scale[0], s);
		cr_assert_eq(q->zero_point[0], zp, "%s", ref->name);
		checked++;
		float lo0, hi0;
		if (qt_calib_range(t0, ref->name, NULL, 8, &lo0, &hi0) == QT_OK && fabs(hi0 - m.hi[v]) > 1e-3 * m.hi[v])
			stale++;
	}
	printf("cle stage on fmnist_cnn: %d pairs, %d activation ranges checked, %d of the file's were stale\n",
	       rw.cle.pairs, checked, stale);
	cr_assert_gt(checked, 4);
	cr_assert_gt(stale, 0);
	qt_tensor_free(&x);
	qt_rt_free(rt);
	free(m.lo);
	free(m.hi);
	qt_calib_table_free(t0);
	qt_graph_free(g0);
	qt_graph_free(g1);
	qt_graph_free(g2);
	qt_dataset_close(ds);
}
