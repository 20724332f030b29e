/*
 * GPTQ (lib/quant/gptq.c) and scale choice (lib/quant/wscale.c) on random
 * layers whose inputs X are correlated (a few shared factors plus noise),
 * which is where GPTQ has something to gain over rounding to nearest.
 * Fixed seeds, printed on failure.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "qtool/quant.h"
#include "quant/gptq.h"

/* splitmix64 and a Box-Muller normal. */
static uint64_t sm;
static void seed_rng(uint64_t s) { sm = s * 0x9e3779b97f4a7c15ULL; }
static uint64_t next_u64(void)
{
	uint64_t z = (sm += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}
static double unif(void) { return ((double)(next_u64() >> 11) + 0.5) / 9007199254740992.0; }
static double gauss(void) { return sqrt(-2 * log(unif())) * cos(6.283185307179586 * unif()); }

/* A layer: W (C x K), X (n x K) = F M + 0.3 noise with F n x 8 factors, and
 * H = 2 X^T X / n (lower triangle and upper, double). Columns listed in
 * dead[] (count nd) are zero in X. */
struct layer {
	int64_t C, K, n;
	float *W, *X;
	double *H;
};

static struct layer make_layer(uint64_t seed, int64_t C, int64_t K, int64_t n, const int64_t *dead, int nd)
{
	struct layer L = {C, K, n, malloc(sizeof(float) * (size_t)(C * K)), malloc(sizeof(float) * (size_t)(n * K)),
			  malloc(sizeof(double) * (size_t)(K * K))};
	seed_rng(seed);
	const int F = 8;
	double *M = malloc(sizeof(double) * (size_t)(F * K)), f[8];
	for (int64_t i = 0; i < F * K; i++)
		M[i] = gauss();
	for (int64_t r = 0; r < n; r++) {
		for (int k = 0; k < F; k++)
			f[k] = gauss();
		for (int64_t j = 0; j < K; j++) {
			double x = 0.3 * gauss();
			for (int k = 0; k < F; k++)
				x += f[k] * M[k * K + j];
			L.X[r * K + j] = (float)x;
		}
		for (int d = 0; d < nd; d++)
			L.X[r * K + dead[d]] = 0;
	}
	for (int64_t i = 0; i < C * K; i++)
		L.W[i] = (float)(gauss() * (1 + 3 * (unif() < 0.01))); /* a few outliers */
	for (int64_t i = 0; i < K; i++)
		for (int64_t j = 0; j <= i; j++) {
			double s = 0;
			for (int64_t r = 0; r < n; r++)
				s += (double)L.X[r * K + i] * L.X[r * K + j];
			L.H[i * K + j] = L.H[j * K + i] = 2 * s / (double)n;
		}
	free(M);
	return L;
}

static void free_layer(struct layer *L)
{
	free(L->W), free(L->X), free(L->H);
}

static double *copy_h(const struct layer *L)
{
	double *h = malloc(sizeof(double) * (size_t)(L->K * L->K));
	memcpy(h, L->H, sizeof(double) * (size_t)(L->K * L->K));
	return h;
}

/* ||(W - Q) X^T||^2 / n, in double. */
static double output_error(const struct layer *L, const struct qt_wgrid *g, const int32_t *codes)
{
	double *d = malloc(sizeof(double) * (size_t)L->K), e = 0;
	for (int64_t c = 0; c < L->C; c++) {
		for (int64_t k = 0; k < L->K; k++)
			d[k] = (double)L->W[c * L->K + k] - (double)qt_wgrid_value(g, codes[c * L->K + k], qt_wgrid_scale(g, c, k));
		for (int64_t r = 0; r < L->n; r++) {
			double y = 0;
			for (int64_t k = 0; k < L->K; k++)
				y += d[k] * L->X[r * L->K + k];
			e += y * y;
		}
	}
	free(d);
	return e / (double)L->n;
}

static void assert_codes_in_range(const int32_t *codes, const struct qt_wgrid *g, uint64_t seed)
{
	for (int64_t i = 0; i < g->C * g->K; i++)
		cr_assert(codes[i] >= g->qmin && codes[i] <= g->qmax, "seed %llu: code %lld = %d outside [%d, %d]",
			  (unsigned long long)seed, (long long)i, codes[i], g->qmin, g->qmax);
}

static const int32_t grids[][2] = {{-127, 127}, {-7, 7}, {-3, 3}, {-1, 1}, {-2, 1}};

/* The promise: on the data H came from, GPTQ's output error is below
 * round-to-nearest's on the same grid, for every bit width (incl. the
 * full-range [-2, 1]), per row and grouped scales, with and without act
 * order, with a block smaller than K so the lazy update runs. Also checks
 * the reported error against the measured one: out_err = ||(W-Q)X^T||^2/n +
 * lambda ||W-Q||^2 / 2 (lambda the damping), to 1e-4 relative (float
 * sums over K = 100 terms). */
Test(gptq, output_error_below_round_to_nearest)
{
	const int64_t C = 24, K = 100, n = 200;
	uint64_t seed = 11;
	for (int gi = 0; gi < 5; gi++)
		for (int gs = 0; gs < 2; gs++)
			for (int act = 0; act < 2; act++, seed++) {
				struct layer L = make_layer(seed, C, K, n, NULL, 0);
				int64_t group = gs ? 16 : K, ng = (K + group - 1) / group;
				float *scale = malloc(sizeof(float) * (size_t)(C * ng));
				int32_t *q_rtn = malloc(sizeof(int32_t) * (size_t)(C * K));
				int32_t *q_gptq = malloc(sizeof(int32_t) * (size_t)(C * K));
				struct qt_wgrid g = {C, K, group, grids[gi][0], grids[gi][1], scale, QT_FMT_INT};
				cr_assert_eq(qt_wscale_absmax(L.W, &g, "t"), QT_OK);
				qt_wgrid_round(L.W, &g, q_rtn);
				double *H = copy_h(&L), mean = 0;
				for (int64_t k = 0; k < K; k++)
					mean += L.H[k * K + k] / (double)K;
				struct qt_gptq_opts o = {.act_order = act, .block = 32, .name = "t"};
				struct qt_gptq_stats st;
				cr_assert_eq(qt_gptq(L.W, H, &g, &o, q_gptq, &st), QT_OK, "seed %llu: %s",
					     (unsigned long long)seed, qt_error_msg());
				assert_codes_in_range(q_gptq, &g, seed);
				double e_rtn = output_error(&L, &g, q_rtn), e_gptq = output_error(&L, &g, q_gptq);
				cr_assert(e_gptq < e_rtn, "seed %llu grid [%d,%d] group %lld act %d: GPTQ %g >= RTN %g",
					  (unsigned long long)seed, g.qmin, g.qmax, (long long)group, act, e_gptq, e_rtn);
				double wsq = qt_wgrid_error(L.W, &g, q_gptq, NULL);
				double want = e_gptq + 0.01 * mean * wsq / 2;
				cr_assert(fabs(st.out_err - want) <= 1e-4 * want, "seed %llu: out_err %g, measured %g",
					  (unsigned long long)seed, st.out_err, want);
				cr_assert(st.dead_cols == 0 && st.retries == 0 && st.damp == 0.01);
				free(H), free(scale), free(q_rtn), free(q_gptq);
				free_layer(&L);
			}
}

/* The same promise on number-format grids (the rounding step is the
 * format's quantizer, the scales fixed as lib/quant/wformat.c fixes them):
 * FP4 E2M1 and FP8 E4M3 with one scale per row (max|w| / the element's
 * largest), MXFP4 and MXINT8 with power-of-two scales per block of 32. Every
 * code is a finite element of the format. */
Test(gptq, output_error_below_round_to_nearest_on_formats)
{
	const int64_t C = 24, K = 100, n = 200;
	static const enum qt_numfmt fmts[] = {QT_FMT_FP4_E2M1, QT_FMT_FP8_E4M3, QT_FMT_MXFP4, QT_FMT_MXINT8};
	uint64_t seed = 101;
	for (int fi = 0; fi < 4; fi++)
		for (int act = 0; act < 2; act++, seed++) {
			enum qt_numfmt f = fmts[fi];
			struct layer L = make_layer(seed, C, K, n, NULL, 0);
			int64_t group = qt_numfmt_block(f) ? qt_numfmt_block(f) : K, ng = (K + group - 1) / group;
			float *scale = malloc(sizeof(float) * (size_t)(C * ng));
			int32_t *q_rtn = malloc(sizeof(int32_t) * (size_t)(C * K));
			int32_t *q_gptq = malloc(sizeof(int32_t) * (size_t)(C * K));
			struct qt_wgrid g = {C, K, group, -7, 7, scale, f};
			for (int64_t c = 0; c < C; c++)
				for (int64_t j = 0; j < ng; j++) {
					float m = 0;
					for (int64_t k = j * group; k < K && k < (j + 1) * group; k++)
						m = fmaxf(m, fabsf(L.W[c * K + k]));
					float s = m / qt_numfmt_elem_max(f);
					scale[c * ng + j] = qt_numfmt_block(f) ? exp2f(ceilf(log2f(s))) : s;
				}
			qt_wgrid_round(L.W, &g, q_rtn);
			double *H = copy_h(&L);
			struct qt_gptq_opts o = {.act_order = act, .block = 32, .name = "t"};
			cr_assert_eq(qt_gptq(L.W, H, &g, &o, q_gptq, NULL), QT_OK, "seed %llu: %s", (unsigned long long)seed,
				     qt_error_msg());
			for (int64_t i = 0; i < C * K; i++)
				cr_assert(qt_numfmt_code_ok(f, (uint32_t)q_gptq[i]), "seed %llu %s: code %lld = %d is not an element",
					  (unsigned long long)seed, qt_numfmt_name(f), (long long)i, q_gptq[i]);
			double e_rtn = output_error(&L, &g, q_rtn), e_gptq = output_error(&L, &g, q_gptq);
			cr_assert(e_gptq < 0.9 * e_rtn, "seed %llu %s act %d: GPTQ %g not 10%% below RTN %g",
				  (unsigned long long)seed, qt_numfmt_name(f), act, e_gptq, e_rtn);
			free(H), free(scale), free(q_rtn), free(q_gptq);
			free_layer(&L);
		}
}

/* GPTQ as usually written: U = upper Cholesky factor of (H + lambda I)^-1,
 * and after each column w[j+1:] -= (w_j - q_j) / U_jj * U[j, j+1:]; all in
 * double, plain loops. */
static void textbook_gptq(const struct layer *L, const struct qt_wgrid *g, double lambda, int32_t *codes)
{
	const int64_t K = L->K;
	double *A = malloc(sizeof(double) * (size_t)(K * K)), *Hi = calloc((size_t)(K * K), sizeof(double));
	memcpy(A, L->H, sizeof(double) * (size_t)(K * K));
	for (int64_t i = 0; i < K; i++)
		A[i * K + i] += lambda;
	/* A = L L^T (lower, in place), then Hi = A^-1 column by column. */
	for (int64_t j = 0; j < K; j++) {
		for (int64_t k = 0; k < j; k++)
			A[j * K + j] -= A[j * K + k] * A[j * K + k];
		A[j * K + j] = sqrt(A[j * K + j]);
		for (int64_t i = j + 1; i < K; i++) {
			for (int64_t k = 0; k < j; k++)
				A[i * K + j] -= A[i * K + k] * A[j * K + k];
			A[i * K + j] /= A[j * K + j];
		}
	}
	double *y = malloc(sizeof(double) * (size_t)K);
	for (int64_t c = 0; c < K; c++) {
		for (int64_t i = 0; i < K; i++) {
			double s = i == c;
			for (int64_t k = 0; k < i; k++)
				s -= A[i * K + k] * y[k];
			y[i] = s / A[i * K + i];
		}
		for (int64_t i = K - 1; i >= 0; i--) {
			double s = y[i];
			for (int64_t k = i + 1; k < K; k++)
				s -= A[k * K + i] * Hi[k * K + c];
			Hi[i * K + c] = s / A[i * K + i];
		}
	}
	/* Hi = U^T U, U upper (row-major, in A). */
	memset(A, 0, sizeof(double) * (size_t)(K * K));
	for (int64_t i = 0; i < K; i++) {
		double s = Hi[i * K + i];
		for (int64_t k = 0; k < i; k++)
			s -= A[k * K + i] * A[k * K + i];
		A[i * K + i] = sqrt(s);
		for (int64_t j = i + 1; j < K; j++) {
			double t = Hi[i * K + j];
			for (int64_t k = 0; k < i; k++)
				t -= A[k * K + i] * A[k * K + j];
			A[i * K + j] = t / A[i * K + i];
		}
	}
	double *w = malloc(sizeof(double) * (size_t)K);
	for (int64_t c = 0; c < L->C; c++) {
		for (int64_t k = 0; k < K; k++)
			w[k] = L->W[c * K + k];
		for (int64_t j = 0; j < K; j++) {
			float s = qt_wgrid_scale(g, c, j);
			int32_t q = qt_quantize_one((float)w[j], s, 0, g->qmin, g->qmax);
			codes[c * K + j] = q;
			double e = (w[j] - (double)(s * (float)q)) / A[j * K + j];
			for (int64_t k = j + 1; k < K; k++)
				w[k] -= e * A[j * K + k];
		}
	}
	free(A), free(Hi), free(y), free(w);
}

/* The inverse-free form in gptq.c gives the textbook algorithm's codes: it
 * differs only by float sums, which flip a code now and then at a rounding
 * boundary (and that flip moves later targets slightly), so at least 98% of
 * codes agree and the output errors agree to 3%. */
Test(gptq, matches_textbook_form)
{
	const int64_t C = 32, K = 64, n = 160;
	for (uint64_t seed = 101; seed < 104; seed++) {
		struct layer L = make_layer(seed, C, K, n, NULL, 0);
		float scale[32];
		int32_t *qa = malloc(sizeof(int32_t) * (size_t)(C * K)), *qb = malloc(sizeof(int32_t) * (size_t)(C * K));
		struct qt_wgrid g = {C, K, K, -7, 7, scale, QT_FMT_INT};
		cr_assert_eq(qt_wscale_absmax(L.W, &g, "t"), QT_OK);
		double *H = copy_h(&L), mean = 0;
		for (int64_t k = 0; k < K; k++)
			mean += L.H[k * K + k] / (double)K;
		cr_assert_eq(qt_gptq(L.W, H, &g, &(struct qt_gptq_opts){.block = 16}, qa, NULL), QT_OK);
		textbook_gptq(&L, &g, 0.01 * mean, qb);
		int64_t same = 0;
		for (int64_t i = 0; i < C * K; i++)
			same += qa[i] == qb[i];
		double ea = output_error(&L, &g, qa), eb = output_error(&L, &g, qb);
		cr_assert(same >= C * K * 98 / 100, "seed %llu: only %lld of %lld codes agree", (unsigned long long)seed,
			  (long long)same, (long long)(C * K));
		cr_assert(fabs(ea - eb) <= 0.03 * eb, "seed %llu: error %g vs textbook %g", (unsigned long long)seed, ea,
			  eb);
		free(H), free(qa), free(qb);
		free_layer(&L);
	}
}

/* Columns whose input is always 0 get code 0, are counted, and the rest still
 * beats round-to-nearest. */
Test(gptq, dead_columns)
{
	const int64_t C = 16, K = 48, n = 120, dead[] = {0, 7, 8, 47};
	const uint64_t seed = 21;
	for (int act = 0; act < 2; act++) {
		struct layer L = make_layer(seed, C, K, n, dead, 4);
		float scale[16];
		int32_t *q = malloc(sizeof(int32_t) * (size_t)(C * K)), *r = malloc(sizeof(int32_t) * (size_t)(C * K));
		struct qt_wgrid g = {C, K, K, -7, 7, scale, QT_FMT_INT};
		cr_assert_eq(qt_wscale_absmax(L.W, &g, "t"), QT_OK);
		qt_wgrid_round(L.W, &g, r);
		double *H = copy_h(&L);
		struct qt_gptq_stats st;
		cr_assert_eq(qt_gptq(L.W, H, &g, &(struct qt_gptq_opts){.act_order = act}, q, &st), QT_OK, "%s",
			     qt_error_msg());
		cr_assert_eq(st.dead_cols, 4, "seed %llu act %d: %lld dead columns", (unsigned long long)seed, act,
			     (long long)st.dead_cols);
		for (int64_t c = 0; c < C; c++)
			for (int d = 0; d < 4; d++)
				cr_assert_eq(q[c * K + dead[d]], 0, "seed %llu: dead column %lld row %lld has code %d",
					     (unsigned long long)seed, (long long)dead[d], (long long)c, q[c * K + dead[d]]);
		assert_codes_in_range(q, &g, seed);
		cr_assert(output_error(&L, &g, q) < output_error(&L, &g, r), "seed %llu act %d", (unsigned long long)seed,
			  act);
		free(H), free(q), free(r);
		free_layer(&L);
	}
}

/* Scales far too small for the weights (a tenth of absmax): GPTQ keeps
 * pushing large errors forward, and still every code stays in range. */
Test(gptq, codes_clamped_under_heavy_clipping)
{
	const int64_t C = 8, K = 40, n = 100;
	const uint64_t seed = 31;
	for (int gi = 0; gi < 5; gi++) {
		struct layer L = make_layer(seed + (uint64_t)gi, C, K, n, NULL, 0);
		float scale[8 * 5];
		int32_t *q = malloc(sizeof(int32_t) * (size_t)(C * K));
		struct qt_wgrid g = {C, K, 8, grids[gi][0], grids[gi][1], scale, QT_FMT_INT};
		cr_assert_eq(qt_wscale_absmax(L.W, &g, "t"), QT_OK);
		for (int i = 0; i < 8 * 5; i++)
			scale[i] *= 0.1f;
		double *H = copy_h(&L);
		cr_assert_eq(qt_gptq(L.W, H, &g, &(struct qt_gptq_opts){.act_order = 1, .block = 8}, q, NULL), QT_OK);
		assert_codes_in_range(q, &g, seed + (uint64_t)gi);
		free(H), free(q);
		free_layer(&L);
	}
}

/* Two runs give the same bytes, and so do 1 and 2 OpenBLAS threads on a
 * layer big enough for OpenBLAS to use both (Cholesky in 4 blocks, SGEMMs
 * of 256 x 384 x 128). H is built here by DSYRK, lower triangle only. */
Test(gptq, deterministic_across_runs_and_threads)
{
	const int64_t C = 256, K = 512, n = 600;
	const uint64_t seed = 41;
	seed_rng(seed);
	float *W = malloc(sizeof(float) * (size_t)(C * K)), scale[256 * 8];
	double *X = malloc(sizeof(double) * (size_t)(n * K)), *H0 = malloc(sizeof(double) * (size_t)(K * K));
	double *H = malloc(sizeof(double) * (size_t)(K * K));
	for (int64_t i = 0; i < C * K; i++)
		W[i] = (float)gauss();
	for (int64_t r = 0; r < n; r++) {
		double f = gauss();
		for (int64_t j = 0; j < K; j++)
			X[r * K + j] = f * ((double)(j % 7) - 3) + gauss();
	}
	cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, (int)K, (int)n, 2.0 / (double)n, X, (int)K, 0.0, H0, (int)K);
	struct qt_wgrid g = {C, K, 64, -3, 3, scale, QT_FMT_INT};
	cr_assert_eq(qt_wscale_absmax(W, &g, "t"), QT_OK);
	int32_t *q[4];
	const int threads[4] = {1, 1, 2, 2};
	for (int t = 0; t < 4; t++) {
		openblas_set_num_threads(threads[t]);
		q[t] = malloc(sizeof(int32_t) * (size_t)(C * K));
		memcpy(H, H0, sizeof(double) * (size_t)(K * K));
		cr_assert_eq(qt_gptq(W, H, &g, &(struct qt_gptq_opts){.act_order = t & 1}, q[t], NULL), QT_OK);
	}
	/* same act order, 1 vs 2 threads; and a repeated run */
	cr_assert(memcmp(q[0], q[2], sizeof(int32_t) * (size_t)(C * K)) == 0, "seed %llu: 1 vs 2 threads differ",
		  (unsigned long long)seed);
	cr_assert(memcmp(q[1], q[3], sizeof(int32_t) * (size_t)(C * K)) == 0,
		  "seed %llu: 1 vs 2 threads differ (act order)", (unsigned long long)seed);
	memcpy(H, H0, sizeof(double) * (size_t)(K * K));
	int32_t *again = malloc(sizeof(int32_t) * (size_t)(C * K));
	cr_assert_eq(qt_gptq(W, H, &g, &(struct qt_gptq_opts){.act_order = 1}, again, NULL), QT_OK);
	cr_assert(memcmp(q[3], again, sizeof(int32_t) * (size_t)(C * K)) == 0, "seed %llu: two runs differ",
		  (unsigned long long)seed);
	for (int t = 0; t < 4; t++)
		free(q[t]);
	free(again), free(W), free(X), free(H0), free(H);
}

/* H with a negative eigenvalue of 5% of its mean diagonal (rank-deficient
 * X^T X minus 0.05 mean I): 1% damping fails, 10% works and is reported;
 * with no retries allowed it is a clear error naming the layer. */
Test(gptq, cholesky_retries_with_more_damping)
{
	const int64_t C = 8, K = 64, n = 40; /* n < K: X^T X is singular */
	const uint64_t seed = 51;
	struct layer L = make_layer(seed, C, K, n, NULL, 0);
	double mean = 0;
	for (int64_t k = 0; k < K; k++)
		mean += L.H[k * K + k] / (double)K;
	for (int64_t k = 0; k < K; k++)
		L.H[k * K + k] -= 0.05 * mean;
	float scale[8];
	int32_t *q = malloc(sizeof(int32_t) * (size_t)(C * K));
	struct qt_wgrid g = {C, K, K, -7, 7, scale, QT_FMT_INT};
	cr_assert_eq(qt_wscale_absmax(L.W, &g, "t"), QT_OK);
	double *H = copy_h(&L);
	struct qt_gptq_stats st;
	cr_assert_eq(qt_gptq(L.W, H, &g, &(struct qt_gptq_opts){.name = "fc1"}, q, &st), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(st.retries, 1, "seed %llu: %d retries", (unsigned long long)seed, st.retries);
	cr_assert(fabs(st.damp - 0.1) < 1e-12, "seed %llu: damping %g", (unsigned long long)seed, st.damp);
	assert_codes_in_range(q, &g, seed);
	memcpy(H, L.H, sizeof(double) * (size_t)(K * K));
	cr_assert_eq(qt_gptq(L.W, H, &g, &(struct qt_gptq_opts){.name = "fc1", .max_retries = -1}, q, NULL),
		     QT_E_NUMERIC);
	cr_assert(strstr(qt_error_msg(), "fc1") && strstr(qt_error_msg(), "positive definite"), "message: %s",
		  qt_error_msg());
	free(H), free(q);
	free_layer(&L);
}

/* Bad input is an error with a message, never a crash. */
Test(gptq, bad_input)
{
	const int64_t C = 2, K = 4;
	float W[8] = {1, 2, 3, 4, 5, 6, 7, 8}, scale[2] = {1, 1};
	double H[16];
	int32_t q[8];
	struct qt_wgrid g = {C, K, K, -7, 7, scale, QT_FMT_INT};
	struct qt_gptq_opts o = {.name = "conv3"};
	for (int i = 0; i < 16; i++)
		H[i] = i % 5 == 0 ? 1 : 0;
	cr_assert_eq(qt_gptq(W, H, &g, &o, q, NULL), QT_OK);

	for (int i = 0; i < 16; i++)
		H[i] = i % 5 == 0 ? 1 : 0;
	W[5] = NAN;
	cr_assert_eq(qt_gptq(W, H, &g, &o, q, NULL), QT_E_NUMERIC);
	cr_assert(strstr(qt_error_msg(), "conv3") && strstr(qt_error_msg(), "row 1 column 1"), "%s", qt_error_msg());
	W[5] = 6;

	H[10] = -1; /* a negative diagonal entry */
	cr_assert_eq(qt_gptq(W, H, &g, &o, q, NULL), QT_E_NUMERIC);
	for (int i = 0; i < 16; i++)
		H[i] = i % 5 == 0 ? 1 : 0;
	H[9] = INFINITY; /* lower triangle: read */
	cr_assert_eq(qt_gptq(W, H, &g, &o, q, NULL), QT_E_NUMERIC);

	for (int i = 0; i < 16; i++)
		H[i] = i % 5 == 0 ? 1 : 0;
	scale[1] = 0;
	cr_assert_eq(qt_gptq(W, H, &g, &o, q, NULL), QT_E_NUMERIC);
	cr_assert(strstr(qt_error_msg(), "scale"), "%s", qt_error_msg());
	scale[1] = 1;
	g.group_size = 5;
	cr_assert_eq(qt_gptq(W, H, &g, &o, q, NULL), QT_E_INVALID_ARG);
	g.group_size = K;
	g.qmin = 1;
	cr_assert_eq(qt_gptq(W, H, &g, &o, q, NULL), QT_E_INVALID_ARG);
	g.qmin = -7;
	o.block = 5000;
	cr_assert_eq(qt_gptq(W, H, &g, &o, q, NULL), QT_E_INVALID_ARG);
}

/* The scale search never has a larger (weighted) error than absmax in any
 * (row, group) slot, on every grid including [-2, 1], with and without
 * diag(H) weights; and over the whole matrix it is strictly better at 2-4
 * bits. All-zero slots keep the borrowed absmax scale. */
Test(wscale, mse_never_worse_than_absmax)
{
	const int64_t C = 12, K = 96;
	uint64_t seed = 61;
	for (int gi = 0; gi < 5; gi++)
		for (int gs = 0; gs < 2; gs++)
			for (int weighted = 0; weighted < 2; weighted++, seed++) {
				seed_rng(seed);
				float W[12 * 96], sa[12 * 6], sm_[12 * 6];
				double h[96];
				for (int64_t i = 0; i < C * K; i++)
					W[i] = (float)(gauss() * (1 + 4 * (unif() < 0.02)));
				for (int64_t k = 0; k < K; k++)
					h[k] = k % 11 == 3 ? 0 : 0.1 + 2 * unif();
				for (int64_t k = 0; k < K; k++)
					W[3 * K + k] = 0; /* an all-zero row */
				int64_t group = gs ? 16 : K, ng = K / group;
				struct qt_wgrid ga = {C, K, group, grids[gi][0], grids[gi][1], sa, QT_FMT_INT};
				struct qt_wgrid gm = ga;
				gm.scale = sm_;
				const double *hd = weighted ? h : NULL;
				cr_assert_eq(qt_wscale_absmax(W, &ga, "t"), QT_OK);
				cr_assert_eq(qt_wscale_mse(W, &gm, hd, NULL, "t"), QT_OK);
				cr_assert_eq(qt_wgrid_check(&gm, 1, "t"), QT_OK);
				int32_t qa[96], qm[96];
				double tot_a = 0, tot_m = 0;
				for (int64_t s = 0; s < C * ng; s++) {
					int64_t r = s / ng, j = s % ng;
					struct qt_wgrid one_a = {1, group, group, ga.qmin, ga.qmax, sa + s, QT_FMT_INT};
					struct qt_wgrid one_m = {1, group, group, ga.qmin, ga.qmax, sm_ + s, QT_FMT_INT};
					const float *w = W + r * K + j * group;
					qt_wgrid_round(w, &one_a, qa);
					qt_wgrid_round(w, &one_m, qm);
					double ea = qt_wgrid_error(w, &one_a, qa, hd ? hd + j * group : NULL);
					double em = qt_wgrid_error(w, &one_m, qm, hd ? hd + j * group : NULL);
					cr_assert(em <= ea, "seed %llu grid [%d,%d] slot %lld: mse %g > absmax %g",
						  (unsigned long long)seed, ga.qmin, ga.qmax, (long long)s, em, ea);
					tot_a += ea, tot_m += em;
				}
				for (int64_t j = 0; j < ng; j++)
					cr_assert_eq(sm_[3 * ng + j], sa[3 * ng + j], "seed %llu: zero row rescaled",
						     (unsigned long long)seed);
				if (gi >= 1)
					cr_assert(tot_m < tot_a, "seed %llu grid [%d,%d]: mse %g not below absmax %g",
						  (unsigned long long)seed, ga.qmin, ga.qmax, tot_m, tot_a);
			}
}

/* The absmax rule: max|w| / qmax per slot; an all-zero slot borrows the
 * largest scale, an all-zero matrix gets 1; non-finite weights are an error. */
Test(wscale, absmax_rule)
{
	float W[2 * 4] = {0.5f, -3.5f, 1, 0, 0, 0, 0, 0}, s[4];
	struct qt_wgrid g = {2, 4, 2, -7, 7, s, QT_FMT_INT};
	cr_assert_eq(qt_wscale_absmax(W, &g, "t"), QT_OK);
	cr_assert(s[0] == (float)(3.5 / 7) && s[1] == (float)(1.0 / 7) && s[2] == s[0] && s[3] == s[0]);
	memset(W, 0, sizeof W);
	cr_assert_eq(qt_wscale_absmax(W, &g, "t"), QT_OK);
	cr_assert(s[0] == 1 && s[3] == 1);
	W[6] = INFINITY;
	cr_assert_eq(qt_wscale_absmax(W, &g, "fc9"), QT_E_NUMERIC);
	cr_assert(strstr(qt_error_msg(), "fc9") && strstr(qt_error_msg(), "row 1 column 2"), "%s", qt_error_msg());
}
