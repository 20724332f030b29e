/*
 * AdaRound (lib/quant/adaround.c) on random layers with correlated inputs
 * (shared factors plus noise, where rounding choices interact), compared
 * with round-to-nearest and GPTQ on the same grid. Fixed seeds, printed.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "quant/adaround.h"
#include "quant/gptq.h"
#include "testgraph.h"

/* W: C x K N(0, 1); H = X^T X / n with X rows = 6 shared factors + 0.3 noise. */
static void ar_layer(uint64_t seed, int64_t C, int64_t K, float *W, double *H)
{
	rng_seed(seed);
	const int64_t n = 4 * K, F = 6;
	double *X = malloc(sizeof(double) * (size_t)(n * K)), *Mx = malloc(sizeof(double) * (size_t)(F * K));
	for (int64_t i = 0; i < F * K; i++)
		Mx[i] = nrand();
	for (int64_t r = 0; r < n; r++) {
		double f[6];
		for (int k = 0; k < F; k++)
			f[k] = nrand();
		for (int64_t j = 0; j < K; j++) {
			double x = 0.3 * nrand();
			for (int k = 0; k < F; k++)
				x += f[k] * Mx[k * K + j];
			X[r * K + j] = x;
		}
	}
	cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)K, (int)n, 1.0 / (double)n, X, (int)K, X,
		    (int)K, 0.0, H, (int)K);
	for (int64_t i = 0; i < C * K; i++)
		W[i] = (float)nrand();
	free(X), free(Mx);
}

/* The promise at 4, 3 and 2 bits: output error below round-to-nearest's, codes
 * in range; GPTQ's error (its objective is the same up to the factor 2 and the
 * damping, so the error is recomputed here on the undamped H) printed beside. */
Test(adaround, error_below_rtn_and_vs_gptq)
{
	const int64_t C = 16, K = 64;
	const int32_t qr[3][2] = {{-7, 7}, {-3, 3}, {-1, 1}};
	for (int b = 0; b < 3; b++) {
		uint64_t seed = 300 + (uint64_t)b;
		float *W = malloc(sizeof(float) * (size_t)(C * K)), *scale = malloc(sizeof(float) * (size_t)C);
		double *H = malloc(sizeof(double) * (size_t)(K * K)), *H2 = malloc(sizeof(double) * (size_t)(K * K));
		int32_t *qa = malloc(sizeof(int32_t) * (size_t)(C * K)), *qg = malloc(sizeof(int32_t) * (size_t)(C * K));
		ar_layer(seed, C, K, W, H);
		struct qt_wgrid g = {C, K, K, qr[b][0], qr[b][1], scale, QT_FMT_INT};
		cr_assert_eq(qt_wscale_mse(W, &g, NULL, NULL, "t"), QT_OK);
		struct qt_adaround_stats st;
		struct qt_adaround_opts o = {.name = "t"};
		cr_assert_eq(qt_adaround(W, H, &g, &o, qa, &st), QT_OK, "seed %llu: %s", (unsigned long long)seed,
			     qt_error_msg());
		for (int64_t i = 0; i < C * K; i++)
			cr_assert(qa[i] >= g.qmin && qa[i] <= g.qmax, "seed %llu: code %d out of range",
				  (unsigned long long)seed, qa[i]);
		for (int64_t i = 0; i < K * K; i++)
			H2[i] = 2 * H[i];
		cr_assert_eq(qt_gptq(W, H2, &g, NULL, qg, NULL), QT_OK, "%s", qt_error_msg());
		/* GPTQ's error on the same objective, measured the same way */
		double e_gptq = 0;
		for (int64_t c = 0; c < C; c++)
			for (int64_t i = 0; i < K; i++) {
				double di = W[c * K + i] - scale[c] * qg[c * K + i];
				for (int64_t j = 0; j < K; j++)
					e_gptq += di * H[i * K + j] * (W[c * K + j] - scale[c] * qg[c * K + j]);
			}
		printf("adaround %d-bit seed %llu: layer error rtn %.4g, adaround %.4g (%.1f%%, %lld flipped, "
		       "%lld undecided), gptq %.4g (%.1f%%)\n",
		       4 - b, (unsigned long long)seed, st.err_rtn, st.err,
		       100 * st.err / st.err_rtn, (long long)st.flipped, (long long)st.undecided, e_gptq,
		       100 * e_gptq / st.err_rtn);
		cr_assert_eq(st.kept_rtn, 0, "seed %llu: AdaRound did not beat RTN", (unsigned long long)seed);
		cr_assert_lt(st.err, 0.9 * st.err_rtn, "seed %llu: %g vs rtn %g", (unsigned long long)seed, st.err,
			     st.err_rtn);
		free(W), free(scale), free(H), free(H2), free(qa), free(qg);
	}
}

void openblas_set_num_threads(int);

/* Same codes on two runs and with 1 and 2 OpenBLAS threads. */
Test(adaround, deterministic_across_runs_and_threads)
{
	const int64_t C = 32, K = 96;
	float *W = malloc(sizeof(float) * (size_t)(C * K)), *scale = malloc(sizeof(float) * (size_t)C);
	double *H = malloc(sizeof(double) * (size_t)(K * K));
	int32_t *q[3];
	ar_layer(77, C, K, W, H);
	struct qt_wgrid g = {C, K, K, -7, 7, scale, QT_FMT_INT};
	cr_assert_eq(qt_wscale_absmax(W, &g, "t"), QT_OK);
	const int threads[3] = {1, 1, 2};
	struct qt_adaround_opts o = {.iters = 300, .name = "t"};
	for (int t = 0; t < 3; t++) {
		q[t] = malloc(sizeof(int32_t) * (size_t)(C * K));
		openblas_set_num_threads(threads[t]);
		cr_assert_eq(qt_adaround(W, H, &g, &o, q[t], NULL), QT_OK, "%s", qt_error_msg());
	}
	openblas_set_num_threads(1);
	cr_assert(!memcmp(q[0], q[1], sizeof(int32_t) * (size_t)(C * K)), "seed 77: two runs differ");
	cr_assert(!memcmp(q[0], q[2], sizeof(int32_t) * (size_t)(C * K)), "seed 77: 1 vs 2 threads differ");
	for (int t = 0; t < 3; t++)
		free(q[t]);
	free(W), free(scale), free(H);
}
