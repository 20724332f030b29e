/*
 * Tests for calibration (calib/observer.c, calib/range.c, calib/calib_file.c):
 * the re-binning histogram, the four range methods, and the calibration
 * file writer and reader.
 *
 * Data is synthetic, from a fixed-seed generator; every assertion that
 * depends on random data prints its seed. Tolerances: quantiles read from a
 * histogram are exact up to one bin (the density is assumed uniform inside a
 * bin), so quantile checks allow two final bin widths plus sampling error.
 */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qtool/calib.h"
#include "qtool/graph.h"
#include "qtool/rt.h"

/* ------------------------------------------------------------ fixtures */

static uint64_t rng_state;
static uint64_t seed_used;

static void rng_seed(uint64_t s)
{
	rng_state = seed_used = s;
}

static uint64_t rng_u64(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double rng_unit(void)
{
	return (double)(rng_u64() >> 11) * 0x1.0p-53;
}

static double rng_gauss(void)
{
	double u = rng_unit(), v = rng_unit();
	return sqrt(-2 * log(u > 0 ? u : 1e-300)) * cos(2 * M_PI * v);
}

static struct qt_graph *g;
static int vx, va, vb, vw; /* input, two node outputs, an initializer */
static struct qt_calib *cal;
static struct qt_calib_table *tab;
static char tmpdir[64];

/*
 * x (input) -> Relu -> a -> Add(a, w) -> b (output); w is an initializer.
 * The graph's sha256 is bytes 0..31.
 */
static struct qt_graph *make_graph(void)
{
	struct qt_graph *gr;
	cr_assert_eq(qt_graph_new(&gr), QT_OK);
	int x = qt_graph_value(gr, "x"), a = qt_graph_value(gr, "a"), b = qt_graph_value(gr, "b"),
	    w = qt_graph_value(gr, "w");
	cr_assert(x >= 0 && a >= 0 && b >= 0 && w >= 0);
	gr->values[x].dtype = QT_DTYPE_F32;
	gr->values[x].is_input = 1;
	gr->values[b].is_output = 1;
	/* The graph arena does not free tensor buffers: borrow a static one. */
	static float wval = 0.5f;
	struct qt_tensor *wt = qt_graph_alloc(gr, sizeof *wt);
	cr_assert(wt);
	wt->dtype = QT_DTYPE_F32;
	wt->rank = 1;
	wt->dims[0] = 1;
	wt->data = &wval;
	wt->nbytes = sizeof wval;
	gr->values[w].init = wt;
	gr->values[w].dtype = QT_DTYPE_F32;
	int n0 = qt_graph_add_node(gr, "Relu", "", "relu");
	int n1 = qt_graph_add_node(gr, "Add", "", "add");
	cr_assert(n0 >= 0 && n1 >= 0);
	struct qt_node *nd = &gr->nodes[n0];
	nd->n_inputs = 1;
	nd->inputs = qt_graph_alloc(gr, sizeof(int));
	nd->inputs[0] = x;
	nd->n_outputs = 1;
	nd->outputs = qt_graph_alloc(gr, sizeof(int));
	nd->outputs[0] = a;
	nd = &gr->nodes[n1];
	nd->n_inputs = 2;
	nd->inputs = qt_graph_alloc(gr, 2 * sizeof(int));
	nd->inputs[0] = a;
	nd->inputs[1] = w;
	nd->n_outputs = 1;
	nd->outputs = qt_graph_alloc(gr, sizeof(int));
	nd->outputs[0] = b;
	gr->n_inputs = 1;
	gr->inputs = qt_graph_alloc(gr, sizeof(int));
	gr->inputs[0] = x;
	gr->n_outputs = 1;
	gr->outputs = qt_graph_alloc(gr, sizeof(int));
	gr->outputs[0] = b;
	gr->opset = 13;
	for (int i = 0; i < 32; i++)
		gr->sha256[i] = (uint8_t)i;
	cr_assert_eq(qt_graph_finalize(gr), QT_OK, "%s", qt_error_msg());
	vx = x;
	va = a;
	vb = b;
	vw = w;
	return gr;
}

static void setup(void)
{
	g = make_graph();
	cal = NULL;
	tab = NULL;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/qt_calib_XXXXXX");
	cr_assert(mkdtemp(tmpdir));
}

static void teardown(void)
{
	qt_calib_table_free(tab);
	qt_calib_free(cal);
	qt_graph_free(g);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
}

TestSuite(calib, .init = setup, .fini = teardown);

/* Feed n floats as one [n] tensor of value v. */
static enum qt_status feed(int v, const float *x, int64_t n)
{
	struct qt_tensor t = {0};
	t.dtype = QT_DTYPE_F32;
	t.rank = 1;
	t.dims[0] = n;
	t.data = (void *)x;
	t.nbytes = (size_t)n * sizeof(float);
	return qt_calib_observer(cal, v, &t);
}

static void new_calib(int bins)
{
	qt_calib_free(cal);
	cal = NULL;
	struct qt_calib_opts o = {.bins = bins};
	cr_assert_eq(qt_calib_new(g, &o, &cal), QT_OK, "%s", qt_error_msg());
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return (x > y) - (x < y);
}

/* The q-quantile of sorted data, linear between order statistics. */
static double exact_quantile(const float *sorted, int64_t n, double q)
{
	double pos = q * (double)(n - 1);
	int64_t i = (int64_t)floor(pos);
	if (i >= n - 1)
		return sorted[n - 1];
	return sorted[i] + (pos - (double)i) * (sorted[i + 1] - sorted[i]);
}

static void range_of(const struct qt_calib_hist *h, enum qt_calib_method m, int bits, double p, float *lo, float *hi)
{
	enum qt_status st = qt_calib_hist_range(h, m, bits, p, lo, hi);
	cr_assert_eq(st, QT_OK, "%s: %s", qt_calib_method_name(m), qt_error_msg());
	cr_assert(*lo <= 0 && *hi >= 0 && *hi > *lo && isfinite(*lo) && isfinite(*hi),
		  "%s %d bits: invalid range [%g, %g] (seed %llu)", qt_calib_method_name(m), bits, *lo, *hi,
		  (unsigned long long)seed_used);
}

static char *write_text(const char *name, const char *text)
{
	static char path[256];
	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	cr_assert(f);
	fputs(text, f);
	fclose(f);
	return path;
}

/* ------------------------------------------------------------ observer */

Test(calib, observes_inputs_and_node_outputs_only)
{
	new_calib(0);
	float x[4] = {1, -2, 3, 0};
	cr_assert_eq(feed(vx, x, 4), QT_OK);
	cr_assert_eq(feed(vw, x, 4), QT_OK); /* initializer: ignored */
	cr_assert_not_null(qt_calib_stats(cal, vx));
	cr_assert_null(qt_calib_stats(cal, vw));
	cr_assert_null(qt_calib_stats(cal, va)); /* not seen yet */
	/* A node output that turns out not to be float32 is ignored. */
	int64_t iv[2] = {1, 2};
	struct qt_tensor t = {.dtype = QT_DTYPE_I64, .rank = 1, .dims = {2}, .data = iv, .nbytes = sizeof iv};
	cr_assert_eq(qt_calib_observer(cal, va, &t), QT_OK);
	cr_assert_null(qt_calib_stats(cal, va));
	const struct qt_calib_hist *h = qt_calib_stats(cal, vx);
	cr_assert_eq(h->count, 4);
	cr_assert_eq(h->zeros, 1);
	cr_assert_eq(h->min, -2);
	cr_assert_eq(h->max, 3);
	cr_assert_eq(h->n_bins, QT_CALIB_DEFAULT_BINS);
	cr_assert_eq(qt_calib_hist_check(h, "x"), QT_OK, "%s", qt_error_msg());
}

Test(calib, nan_and_inf_are_errors_naming_the_tensor)
{
	new_calib(0);
	float x[3] = {1, NAN, 2};
	cr_assert_eq(feed(va, x, 3), QT_E_NUMERIC);
	cr_assert(strstr(qt_error_msg(), "\"a\"") && strstr(qt_error_msg(), "element 1 is NaN"), "%s",
		  qt_error_msg());
	float y[2] = {-INFINITY, 0};
	cr_assert_eq(feed(vx, y, 2), QT_E_NUMERIC);
	cr_assert(strstr(qt_error_msg(), "\"x\"") && strstr(qt_error_msg(), "-Inf"), "%s", qt_error_msg());
}

Test(calib, bad_bins_option_refused)
{
	struct qt_calib_opts o = {.bins = 8};
	cr_assert_eq(qt_calib_new(g, &o, &cal), QT_E_INVALID_ARG);
	o.bins = QT_CALIB_MAX_BINS + 1;
	cr_assert_eq(qt_calib_new(g, &o, &cal), QT_E_INVALID_ARG);
}

/*
 * Batches whose range grows 1.7x each time, first positive only, then both
 * signs: the total count is exact, memory stays n_bins, the histogram equals
 * binning all the data at the final width (re-binning is exact), and
 * quantiles match the sorted data within two bins.
 */
Test(calib, rebinning_keeps_counts_and_quantiles)
{
	rng_seed(1234);
	new_calib(512);
	enum { BATCHES = 24, PER = 5000 };
	float *all = malloc(sizeof(float) * BATCHES * PER);
	cr_assert(all);
	int64_t n = 0;
	double scale = 1e-3;
	for (int b = 0; b < BATCHES; b++, scale *= 1.7) {
		float *x = all + n;
		for (int i = 0; i < PER; i++) {
			double u = rng_unit();
			double v = b < 6 ? u * scale : (u * 3 - 1) * scale; /* later: [-1, 2] * scale */
			x[i] = i % 10 == 0 ? 0.0f : (float)v;
		}
		cr_assert_eq(feed(va, x, PER), QT_OK);
		n += PER;
		const struct qt_calib_hist *h = qt_calib_stats(cal, va);
		cr_assert_eq(h->n_bins, 512);
		cr_assert_eq(h->count, (uint64_t)n);
		cr_assert_eq(qt_calib_hist_check(h, "a"), QT_OK, "%s (seed %llu)", qt_error_msg(),
			     (unsigned long long)seed_used);
	}
	const struct qt_calib_hist *h = qt_calib_stats(cal, va);
	uint64_t sum = h->zeros;
	for (int i = 0; i < h->n_bins; i++)
		sum += h->counts[i];
	cr_assert_eq(sum, (uint64_t)n);

	/* Exactness: compare with direct binning at the final width. */
	uint64_t *direct = calloc((size_t)h->n_bins, sizeof *direct);
	uint64_t zeros = 0;
	for (int64_t i = 0; i < n; i++) {
		double v = all[i];
		if (v == 0) {
			zeros++;
			continue;
		}
		int j = (int)floor(fabs(v) / h->width);
		if (v > 0)
			direct[h->zero_bin + (j < h->n_bins - h->zero_bin ? j : h->n_bins - h->zero_bin - 1)]++;
		else
			direct[h->zero_bin - 1 - (j < h->zero_bin ? j : h->zero_bin - 1)]++;
	}
	cr_assert_eq(zeros, h->zeros);
	uint64_t diff = 0;
	for (int i = 0; i < h->n_bins; i++)
		diff += direct[i] > h->counts[i] ? direct[i] - h->counts[i] : h->counts[i] - direct[i];
	/* The width is a power of two, so |x| / w is exact: no rounding either way. */
	cr_assert(diff == 0, "re-binned histogram differs from direct binning in %llu counts (seed %llu)",
		  (unsigned long long)diff, (unsigned long long)seed_used);
	cr_assert(h->width == ldexp(1.0, ilogb(h->width)), "width %a is not a power of two", h->width);
	free(direct);

	qsort(all, (size_t)n, sizeof *all, cmp_float);
	const double qs[] = {0.001, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 0.999};
	for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
		float lo, hi;
		/* percentile p gives the p-th (hi) and (100-p)-th (lo) quantiles */
		double p = qs[k] >= 0.5 ? qs[k] * 100 : (1 - qs[k]) * 100;
		range_of(h, QT_CALIB_PERCENTILE, 8, p, &lo, &hi);
		double got = qs[k] >= 0.5 ? hi : lo, want = exact_quantile(all, n, qs[k]);
		if (want > 0 && qs[k] < 0.5)
			want = 0; /* lo is widened to include 0 */
		if (want < 0 && qs[k] >= 0.5)
			want = 0;
		cr_assert(fabs(got - want) <= 2 * h->width,
			  "quantile %g: histogram %g vs exact %g (bin width %g, seed %llu)", qs[k], got, want, h->width,
			  (unsigned long long)seed_used);
	}
	free(all);
}

/* The statistics depend on the data only: not on batch sizes or order. */
Test(calib, histogram_independent_of_batching_and_order)
{
	rng_seed(808);
	enum { N = 30000 };
	float *x = malloc(N * sizeof *x), *r = malloc(N * sizeof *r);
	for (int i = 0; i < N; i++)
		x[i] = (float)(rng_gauss() * (1 + i / 3000)); /* growing spread */
	for (int i = 0; i < N; i++)
		r[i] = x[N - 1 - i];
	new_calib(256);
	cr_assert_eq(feed(vx, x, N), QT_OK); /* one batch */
	for (int i = 0; i < N; i += 7) /* batches of 7 */
		cr_assert_eq(feed(va, x + i, N - i < 7 ? N - i : 7), QT_OK);
	for (int i = 0; i < N; i += 1000) /* reversed, batches of 1000 */
		cr_assert_eq(feed(vb, r + i, 1000), QT_OK);
	const struct qt_calib_hist *h[3] = {qt_calib_stats(cal, vx), qt_calib_stats(cal, va), qt_calib_stats(cal, vb)};
	for (int k = 1; k < 3; k++) {
		cr_assert(h[k]->min == h[0]->min && h[k]->max == h[0]->max && h[k]->count == h[0]->count &&
			  h[k]->zeros == h[0]->zeros && h[k]->width == h[0]->width && h[k]->zero_bin == h[0]->zero_bin,
			  "batching %d: width %g vs %g, zero bin %d vs %d (seed %llu)", k, h[k]->width, h[0]->width,
			  h[k]->zero_bin, h[0]->zero_bin, (unsigned long long)seed_used);
		cr_assert_arr_eq(h[k]->counts, h[0]->counts, 256 * sizeof *h[0]->counts, "batching %d (seed %llu)", k,
				 (unsigned long long)seed_used);
	}
	free(x);
	free(r);
}

/* ------------------------------------------------------------ ranges */

Test(calib, minmax_is_exact)
{
	rng_seed(7);
	new_calib(0);
	float x[1000];
	float mn = INFINITY, mx = -INFINITY;
	for (int i = 0; i < 1000; i++) {
		x[i] = (float)(rng_gauss() * 3 + 1);
		mn = fminf(mn, x[i]);
		mx = fmaxf(mx, x[i]);
	}
	cr_assert_eq(feed(vx, x, 1000), QT_OK);
	float lo, hi;
	range_of(qt_calib_stats(cal, vx), QT_CALIB_MINMAX, 8, 99.99, &lo, &hi);
	cr_assert(lo == mn && hi == mx, "[%.9g, %.9g] vs [%.9g, %.9g] (seed %llu)", lo, hi, mn, mx,
		  (unsigned long long)seed_used);
	/* Positive data: lo is 0 so that 0 is representable. */
	for (int i = 0; i < 1000; i++)
		x[i] = 2 + (float)rng_unit();
	cr_assert_eq(feed(va, x, 1000), QT_OK);
	range_of(qt_calib_stats(cal, va), QT_CALIB_MINMAX, 8, 99.99, &lo, &hi);
	cr_assert(lo == 0 && hi <= 3 && hi > 2.99f, "[%g, %g]", lo, hi);
}

Test(calib, percentile_on_uniform_lands_near_expected)
{
	rng_seed(99);
	new_calib(0);
	enum { N = 400000 };
	float *x = malloc(N * sizeof *x);
	for (int i = 0; i < N; i++)
		x[i] = (float)rng_unit(); /* U[0, 1): only the top is clipped */
	cr_assert_eq(feed(va, x, N), QT_OK);
	const struct qt_calib_hist *h = qt_calib_stats(cal, va);
	float lo, hi;
	range_of(h, QT_CALIB_PERCENTILE, 8, 99.0, &lo, &hi);
	cr_assert(lo == 0 && fabsf(hi - 0.99f) < 0.003f, "p99 of U[0,1): [%g, %g] (seed %llu)", lo, hi,
		  (unsigned long long)seed_used);
	range_of(h, QT_CALIB_PERCENTILE, 8, 99.99, &lo, &hi);
	cr_assert(lo == 0 && fabsf(hi - 0.9999f) < 0.001f, "p99.99 of U[0,1): [%g, %g] (seed %llu)", lo, hi,
		  (unsigned long long)seed_used);
	range_of(h, QT_CALIB_PERCENTILE, 8, 100, &lo, &hi);
	cr_assert_eq(hi, (float)h->max);
	/* U[-1, 1): both sides clipped, 1% of the distribution each. */
	for (int i = 0; i < N; i++)
		x[i] = (float)(rng_unit() * 2 - 1);
	cr_assert_eq(feed(vb, x, N), QT_OK);
	range_of(qt_calib_stats(cal, vb), QT_CALIB_PERCENTILE, 8, 99.0, &lo, &hi);
	cr_assert(fabsf(hi - 0.98f) < 0.005f && fabsf(lo + 0.98f) < 0.005f, "p99 of U[-1,1): [%g, %g] (seed %llu)",
		  lo, hi, (unsigned long long)seed_used);
	free(x);
}

/*
 * 10^6 samples of N(0, 1) (or |N(0, 1)|) with one outlier at 80 sigma on
 * each side, on value v. The outliers are rare enough (1e-6 per side) that
 * clipping them is worth it for mse at 8 bits: its rounding noise grows as
 * W^2 / (12 * 255^2) per element while an outlier costs (80 - t)^2 once.
 */
static void gaussian_with_outliers(int v, int positive_only)
{
	enum { N = 1000000 };
	float *x = malloc(N * sizeof *x);
	for (int i = 0; i < N; i++) {
		double s = rng_gauss();
		x[i] = (float)(positive_only ? fabs(s) : s);
	}
	x[4321] = 80.0f;
	if (!positive_only)
		x[654321] = -80.0f;
	cr_assert_eq(feed(v, x, N), QT_OK);
	free(x);
}

Test(calib, entropy_and_mse_clip_outliers_8bit)
{
	rng_seed(2024);
	new_calib(0);
	gaussian_with_outliers(vx, 0);
	gaussian_with_outliers(va, 1);
	for (int m = QT_CALIB_ENTROPY; m <= QT_CALIB_MSE; m++) {
		float lo, hi;
		range_of(qt_calib_stats(cal, vx), (enum qt_calib_method)m, 8, 99.99, &lo, &hi);
		cr_assert(hi < 40 && hi > 2.5f && lo > -40 && lo < -2.5f,
			  "%s on N(0,1) with outliers at +-80: [%g, %g] (seed %llu)",
			  qt_calib_method_name((enum qt_calib_method)m), lo, hi, (unsigned long long)seed_used);
		range_of(qt_calib_stats(cal, va), (enum qt_calib_method)m, 8, 99.99, &lo, &hi);
		cr_assert(lo == 0 && hi < 40 && hi > 2.5f, "%s on |N(0,1)| with outliers at 80: [%g, %g] (seed %llu)",
			  qt_calib_method_name((enum qt_calib_method)m), lo, hi, (unsigned long long)seed_used);
	}
}

Test(calib, mse_clips_more_at_4_bits_than_at_8)
{
	rng_seed(31337);
	new_calib(0);
	gaussian_with_outliers(vx, 0);
	gaussian_with_outliers(va, 1);
	const int vals[2] = {vx, va};
	for (int k = 0; k < 2; k++) {
		const struct qt_calib_hist *h = qt_calib_stats(cal, vals[k]);
		float lo8, hi8, lo4, hi4, lo2, hi2;
		range_of(h, QT_CALIB_MSE, 8, 99.99, &lo8, &hi8);
		range_of(h, QT_CALIB_MSE, 4, 99.99, &lo4, &hi4);
		range_of(h, QT_CALIB_MSE, 2, 99.99, &lo2, &hi2);
		cr_assert(hi4 - lo4 < hi8 - lo8 && hi2 - lo2 < hi4 - lo4,
			  "mse widths: 8 bits %g, 4 bits %g, 2 bits %g (seed %llu)", hi8 - lo8, hi4 - lo4, hi2 - lo2,
			  (unsigned long long)seed_used);
		/* Known optimum for a Gaussian at 4 bits: about 2.5 sigma (one
		 * side) or 5 sigma total with 15 steps; allow a wide band. */
		if (k == 0)
			cr_assert(hi4 - lo4 > 3.5f && hi4 - lo4 < 7.0f, "mse 4-bit width %g (seed %llu)", hi4 - lo4,
				  (unsigned long long)seed_used);
	}
}

Test(calib, entropy_clips_more_at_4_bits_than_at_8)
{
	rng_seed(4242);
	new_calib(0);
	gaussian_with_outliers(va, 1);
	const struct qt_calib_hist *h = qt_calib_stats(cal, va);
	float lo8, hi8, lo4, hi4;
	range_of(h, QT_CALIB_ENTROPY, 8, 99.99, &lo8, &hi8);
	range_of(h, QT_CALIB_ENTROPY, 4, 99.99, &lo4, &hi4);
	cr_assert(hi4 <= hi8, "entropy: 4 bits %g vs 8 bits %g (seed %llu)", hi4, hi8, (unsigned long long)seed_used);
}

Test(calib, zero_and_constant_tensors_give_valid_ranges)
{
	new_calib(0);
	float zeros[100] = {0}, pos[100], neg[100];
	for (int i = 0; i < 100; i++) {
		pos[i] = 3.0f;
		neg[i] = -2.0f;
	}
	cr_assert_eq(feed(vx, zeros, 100), QT_OK);
	cr_assert_eq(feed(va, pos, 100), QT_OK);
	cr_assert_eq(feed(vb, neg, 100), QT_OK);
	for (int m = 0; m < QT_CALIB_N_METHODS; m++)
		for (int bits = 2; bits <= 16; bits += 2) {
			float lo, hi;
			range_of(qt_calib_stats(cal, vx), (enum qt_calib_method)m, bits, 99.99, &lo, &hi);
			cr_assert(lo == 0 && hi == 1, "all zeros: %s [%g, %g]", qt_calib_method_name((enum qt_calib_method)m),
				  lo, hi);
			range_of(qt_calib_stats(cal, va), (enum qt_calib_method)m, bits, 99.99, &lo, &hi);
			cr_assert(lo == 0 && hi > 2.9f && hi <= 3.01f, "constant 3: %s %d bits [%g, %g]",
				  qt_calib_method_name((enum qt_calib_method)m), bits, lo, hi);
			range_of(qt_calib_stats(cal, vb), (enum qt_calib_method)m, bits, 99.99, &lo, &hi);
			cr_assert(hi == 0 && lo < -1.9f && lo >= -2.01f, "constant -2: %s %d bits [%g, %g]",
				  qt_calib_method_name((enum qt_calib_method)m), bits, lo, hi);
		}
	/* Mostly zeros with a rare non-zero value: a percentile that clips
	 * everything to 0 falls back to minmax instead of a zero width. */
	float sparse[20000] = {0};
	sparse[5] = 4.0f;
	cr_assert_eq(feed(vw, sparse, 20000), QT_OK); /* initializer: ignored */
	new_calib(0);
	cr_assert_eq(feed(vx, sparse, 20000), QT_OK);
	float lo, hi;
	range_of(qt_calib_stats(cal, vx), QT_CALIB_PERCENTILE, 8, 99.9, &lo, &hi);
	cr_assert(lo == 0 && hi == 4.0f, "[%g, %g]", lo, hi);
}

Test(calib, every_method_valid_on_assorted_distributions)
{
	rng_seed(555);
	for (int dist = 0; dist < 6; dist++) {
		new_calib(dist % 2 ? 64 : 0);
		enum { N = 20000 };
		static float x[N];
		for (int i = 0; i < N; i++) {
			double u = rng_unit(), gs = rng_gauss();
			switch (dist) {
			case 0: x[i] = (float)(gs * 1e-20); break;           /* tiny */
			case 1: x[i] = (float)(gs * 1e30); break;            /* huge */
			case 2: x[i] = (float)(u < 0.5 ? 0 : exp(gs * 3)); break; /* heavy tail, zeros */
			case 3: x[i] = (float)(-u * 5 - 1); break;          /* negative only */
			case 4: x[i] = i == 0 ? -1e-6f : (float)(u * 100); /* nearly one-signed */ break;
			default: x[i] = (float)(u < 0.001 ? FLT_MAX * (u - 0.0005) * 1000 : gs); break;
			}
		}
		cr_assert_eq(feed(vx, x, N), QT_OK);
		for (int m = 0; m < QT_CALIB_N_METHODS; m++)
			for (int bits = 2; bits <= 16; bits++) {
				float lo, hi;
				range_of(qt_calib_stats(cal, vx), (enum qt_calib_method)m, bits, 99.9, &lo, &hi);
				const struct qt_calib_hist *h = qt_calib_stats(cal, vx);
				/* Never wider than the data by more than one quantization step. */
				double step = ((double)hi - lo) / (ldexp(1, bits) - 1);
				cr_assert(lo >= fmin(h->min, 0) - step * 1.001 && hi <= fmax(h->max, 0) + step * 1.001,
					  "dist %d %s %d bits: [%g, %g] vs data [%g, %g]", dist,
					  qt_calib_method_name((enum qt_calib_method)m), bits, lo, hi, h->min, h->max);
			}
	}
}

Test(calib, bad_range_arguments_refused)
{
	new_calib(0);
	float x[2] = {1, -1};
	cr_assert_eq(feed(vx, x, 2), QT_OK);
	float lo, hi;
	const struct qt_calib_hist *h = qt_calib_stats(cal, vx);
	cr_assert_eq(qt_calib_hist_range(h, QT_CALIB_MSE, 1, 99, &lo, &hi), QT_E_INVALID_ARG);
	cr_assert_eq(qt_calib_hist_range(h, QT_CALIB_MSE, 17, 99, &lo, &hi), QT_E_INVALID_ARG);
	cr_assert_eq(qt_calib_hist_range(h, QT_CALIB_PERCENTILE, 8, 49, &lo, &hi), QT_E_INVALID_ARG);
	cr_assert_eq(qt_calib_hist_range(h, QT_CALIB_PERCENTILE, 8, NAN, &lo, &hi), QT_E_INVALID_ARG);
	cr_assert_eq(qt_calib_hist_range(h, QT_CALIB_N_METHODS, 8, 99, &lo, &hi), QT_E_INVALID_ARG);
	enum qt_calib_method m;
	cr_assert_eq(qt_calib_method_parse("kl", &m), -1);
	cr_assert_eq(qt_calib_method_parse("entropy", &m), 0);
	cr_assert_eq(m, QT_CALIB_ENTROPY);
}

/* ------------------------------------------------------------ runtime hook */

Test(calib, observer_hooked_into_the_runtime)
{
	struct qt_rt *rt;
	cr_assert_eq(qt_rt_new(g, &rt), QT_OK, "%s", qt_error_msg());
	new_calib(0);
	qt_rt_set_observer(rt, qt_calib_observer, cal);
	float xv[6] = {-3, -1, 0, 1, 2, 5};
	struct qt_tensor in = {.dtype = QT_DTYPE_F32, .rank = 1, .dims = {6}, .data = xv, .nbytes = sizeof xv};
	struct qt_tensor out = {0};
	cr_assert_eq(qt_rt_run(rt, &in, &out), QT_OK, "%s", qt_error_msg());
	qt_tensor_free(&out);
	cr_assert_eq(xv[0], -3); /* the input is untouched */
	const struct qt_calib_hist *hx = qt_calib_stats(cal, vx), *ha = qt_calib_stats(cal, va),
				   *hb = qt_calib_stats(cal, vb);
	cr_assert(hx && ha && hb);
	cr_assert(hx->min == -3 && hx->max == 5 && hx->count == 6);
	cr_assert(ha->min == 0 && ha->max == 5 && ha->zeros == 3); /* Relu */
	cr_assert(hb->min == 0.5 && hb->max == 5.5);               /* + 0.5 */
	cr_assert_null(qt_calib_stats(cal, vw));
	qt_rt_free(rt);
}

/* ------------------------------------------------------------ files */

static void make_table(int bits)
{
	rng_seed(77);
	new_calib(256);
	gaussian_with_outliers(vx, 0);
	gaussian_with_outliers(va, 1);
	float z[10] = {0};
	cr_assert_eq(feed(vb, z, 10), QT_OK);
	struct qt_calib_meta meta = {.model = "m.onnx", .dataset = "fashion-mnist:train --limit 1000",
				     .samples = 1000, .default_method = QT_CALIB_ENTROPY, .bits = bits,
				     .percentile = 99.9};
	cr_assert_eq(qt_calib_finish(cal, &meta, &tab), QT_OK, "%s", qt_error_msg());
}

Test(calib, json_round_trip)
{
	make_table(8);
	cr_assert_eq(tab->n_tensors, 3);
	char path[256];
	snprintf(path, sizeof path, "%s/c.json", tmpdir);
	cr_assert_eq(qt_calib_write(tab, path), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(access(path, R_OK), 0);
	struct qt_calib_table *rd;
	cr_assert_eq(qt_calib_read(path, g, &rd), QT_OK, "%s", qt_error_msg());
	cr_assert_str_eq(rd->model_sha256, tab->model_sha256);
	cr_assert_str_eq(rd->model, "m.onnx");
	cr_assert_str_eq(rd->dataset, "fashion-mnist:train --limit 1000");
	cr_assert_eq(rd->samples, 1000);
	cr_assert_eq(rd->default_method, QT_CALIB_ENTROPY);
	cr_assert_eq(rd->bits, 8);
	cr_assert_eq(rd->percentile, 99.9);
	cr_assert_eq(rd->n_tensors, 3);
	for (int i = 0; i < 3; i++) {
		const struct qt_calib_entry *a = &tab->tensors[i], *b = &rd->tensors[i];
		cr_assert_str_eq(a->name, b->name);
		cr_assert(a->hist.min == b->hist.min && a->hist.max == b->hist.max && a->hist.count == b->hist.count &&
			  a->hist.zeros == b->hist.zeros && a->hist.n_bins == b->hist.n_bins &&
			  a->hist.zero_bin == b->hist.zero_bin);
		cr_assert(fabs(a->hist.width - b->hist.width) <= 1e-15 * a->hist.width);
		cr_assert_arr_eq(a->hist.counts, b->hist.counts, (size_t)a->hist.n_bins * sizeof *a->hist.counts);
		for (int m = 0; m < QT_CALIB_N_METHODS; m++) {
			cr_assert(b->has_range[m]);
			cr_assert(a->range[m][0] == b->range[m][0] && a->range[m][1] == b->range[m][1],
				  "%s %s: [%.9g, %.9g] vs [%.9g, %.9g]", a->name,
				  qt_calib_method_name((enum qt_calib_method)m), a->range[m][0], a->range[m][1],
				  b->range[m][0], b->range[m][1]);
			/* Recomputing from the read histogram gives the stored range. */
			float lo, hi;
			cr_assert_eq(qt_calib_hist_range(&b->hist, (enum qt_calib_method)m, 8, 99.9, &lo, &hi), QT_OK);
			cr_assert(fabsf(lo - b->range[m][0]) <= 1e-6f * fabsf(lo) && fabsf(hi - b->range[m][1]) <= 1e-6f * hi,
				  "%s %s recomputed [%.9g, %.9g] vs stored [%.9g, %.9g]", a->name,
				  qt_calib_method_name((enum qt_calib_method)m), lo, hi, b->range[m][0], b->range[m][1]);
		}
	}
	/* The text form is stable: write what was read, byte for byte the same. */
	char *j1, *j2;
	cr_assert_eq(qt_calib_to_json(tab, &j1), QT_OK);
	cr_assert_eq(qt_calib_to_json(rd, &j2), QT_OK);
	cr_assert_str_eq(j1, j2);
	/* Zero runs are stored compactly. */
	cr_assert(strstr(j1, "[[") != NULL);
	free(j1);
	free(j2);
	qt_calib_table_free(rd);
}

Test(calib, range_lookup_uses_stored_or_recomputes)
{
	make_table(8);
	char path[256];
	snprintf(path, sizeof path, "%s/c.json", tmpdir);
	cr_assert_eq(qt_calib_write(tab, path), QT_OK, "%s", qt_error_msg());
	struct qt_calib_table *rd;
	cr_assert_eq(qt_calib_read(path, g, &rd), QT_OK, "%s", qt_error_msg());
	float lo, hi, lo4, hi4;
	/* default method (entropy) at the stored bits */
	cr_assert_eq(qt_calib_range(rd, "x", NULL, 0, &lo, &hi), QT_OK);
	const struct qt_calib_entry *e = qt_calib_find(rd, "x");
	cr_assert(lo == e->range[QT_CALIB_ENTROPY][0] && hi == e->range[QT_CALIB_ENTROPY][1]);
	/* mse at 4 bits is recomputed and clips more than the stored 8-bit range */
	cr_assert_eq(qt_calib_range(rd, "x", "mse", 4, &lo4, &hi4), QT_OK, "%s", qt_error_msg());
	cr_assert(hi4 - lo4 < e->range[QT_CALIB_MSE][1] - e->range[QT_CALIB_MSE][0]);
	/* a hand-edited stored range is honoured */
	((struct qt_calib_entry *)e)->range[QT_CALIB_MINMAX][1] = 1234.0f;
	cr_assert_eq(qt_calib_range(rd, "x", "minmax", 4, &lo, &hi), QT_OK);
	cr_assert_eq(hi, 1234.0f);
	/* percentile with another p is recomputed */
	cr_assert_eq(qt_calib_range_p(rd, "a", "percentile", 8, 50, &lo, &hi), QT_OK);
	cr_assert(lo == 0 && hi > 0.5f && hi < 0.8f, "median of |N(0,1)|: %g", hi); /* 0.674 */
	cr_assert_eq(qt_calib_range(rd, "x", "kl", 8, &lo, &hi), QT_E_INVALID_ARG);
	cr_assert_eq(qt_calib_range(rd, "x", NULL, 1, &lo, &hi), QT_E_INVALID_ARG);
	qt_calib_table_free(rd);
}

Test(calib, missing_tensor_is_a_clear_error)
{
	make_table(8);
	char path[256];
	snprintf(path, sizeof path, "%s/c.json", tmpdir);
	cr_assert_eq(qt_calib_write(tab, path), QT_OK);
	struct qt_calib_table *rd;
	cr_assert_eq(qt_calib_read(path, NULL, &rd), QT_OK, "%s", qt_error_msg());
	float lo, hi;
	cr_assert_eq(qt_calib_range(rd, "conv9", NULL, 0, &lo, &hi), QT_E_FORMAT);
	char want[512];
	snprintf(want, sizeof want, "calibration file %s has no statistics for tensor \"conv9\"", path);
	cr_assert_str_eq(qt_error_msg(), want);
	qt_calib_table_free(rd);
}

Test(calib, sha_mismatch_refused)
{
	make_table(8);
	char path[256];
	snprintf(path, sizeof path, "%s/c.json", tmpdir);
	cr_assert_eq(qt_calib_write(tab, path), QT_OK);
	struct qt_graph *other = make_graph();
	other->sha256[0] = 0xef;
	other->path = "models/other.onnx";
	struct qt_calib_table *rd = (void *)1;
	cr_assert_eq(qt_calib_read(path, other, &rd), QT_E_FORMAT);
	cr_assert_null(rd);
	const char *msg = qt_error_msg();
	cr_assert(strncmp(msg, path, strlen(path)) == 0 && strstr(msg, "made for model m.onnx") &&
		  strstr(msg, "000102030405") && strstr(msg, "models/other.onnx has sha256 ef0102"),
		  "%s", msg);
	qt_graph_free(other);
}

Test(calib, tensor_not_in_model_refused)
{
	make_table(8);
	char *json;
	cr_assert_eq(qt_calib_to_json(tab, &json), QT_OK);
	/* rename tensor "a" to one the graph lacks */
	char *p = strstr(json, "\"a\":");
	cr_assert(p);
	p[1] = 'q';
	struct qt_calib_table *rd;
	cr_assert_eq(qt_calib_read_mem(json, strlen(json), "c.json", g, &rd), QT_E_FORMAT);
	cr_assert(strstr(qt_error_msg(), "c.json: tensor \"q\" is not in"), "%s", qt_error_msg());
	cr_assert_eq(qt_calib_read_mem(json, strlen(json), "c.json", NULL, &rd), QT_OK, "%s", qt_error_msg());
	qt_calib_table_free(rd);
	free(json);
}

/* A small valid file; the malformed cases below each break one thing. */
static const char good[] =
	"{\"format\": \"qtool-calib\", \"version\": 1,\n"
	" \"model_sha256\": \"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\",\n"
	" \"model\": \"m.onnx\", \"dataset\": \"d\", \"samples\": 2, \"default_method\": \"minmax\",\n"
	" \"bits\": 8, \"percentile\": 99.99,\n"
	" \"tensors\": {\"x\": {\"min\": -1, \"max\": 2, \"count\": 5,\n"
	"   \"hist\": {\"lo\": -4, \"hi\": 12, \"bins\": 16, \"zeros\": 1,\n"
	"            \"counts\": [[3], 1, 1, 2, [10]]},\n"
	"   \"ranges\": {\"minmax\": [-1, 2]}}}}\n";

static void expect_refused(const char *what, const char *from, const char *to, const char *msg_part)
{
	char text[4096];
	const char *p = strstr(good, from);
	cr_assert(p, "%s: fixture lacks '%s'", what, from);
	snprintf(text, sizeof text, "%.*s%s%s", (int)(p - good), good, to, p + strlen(from));
	char *path = write_text("bad.json", text);
	struct qt_calib_table *rd = (void *)1;
	enum qt_status st = qt_calib_read(path, NULL, &rd);
	cr_assert_eq(st, QT_E_FORMAT, "%s: accepted (status %d)", what, st);
	cr_assert_null(rd);
	const char *msg = qt_error_msg();
	cr_assert(strncmp(msg, path, strlen(path)) == 0 && strstr(msg, msg_part), "%s: message '%s'", what, msg);
}

Test(calib, fixture_is_valid)
{
	char *path = write_text("good.json", good);
	struct qt_calib_table *rd;
	cr_assert_eq(qt_calib_read(path, g, &rd), QT_OK, "%s", qt_error_msg());
	const struct qt_calib_entry *e = qt_calib_find(rd, "x");
	cr_assert(e && e->hist.zero_bin == 4 && e->hist.width == 1 && e->hist.counts[3] == 1 &&
		  e->hist.counts[4] == 1 && e->hist.counts[5] == 2);
	float lo, hi;
	cr_assert_eq(qt_calib_range(rd, "x", "mse", 8, &lo, &hi), QT_OK, "%s", qt_error_msg());
	qt_calib_table_free(rd);
}

Test(calib, malformed_files_refused)
{
	expect_refused("bad JSON", "\"version\": 1,", "\"version\": 1,,", "not valid JSON");
	expect_refused("truncated", "}}}}\n", "}}", "not valid JSON");
	expect_refused("trailing text", "}}}}\n", "}}}} x", "unexpected text");
	expect_refused("not an object", "{\"format\"", "[1] {\"format\"", "unexpected text");
	expect_refused("wrong format", "qtool-calib", "other", "not a calibration file");
	expect_refused("future version", "\"version\": 1", "\"version\": 2", "version 2 is not supported");
	expect_refused("short sha", "1e1f\"", "1e\"", "64 hex digits");
	expect_refused("bad sha digit", "\"0001", "\"zz01", "64 hex digits");
	expect_refused("missing model", "\"model\": \"m.onnx\",", "", "has no \"model\"");
	expect_refused("samples as string", "\"samples\": 2", "\"samples\": \"2\"", "samples must be a number");
	expect_refused("fractional samples", "\"samples\": 2", "\"samples\": 2.5", "must be an integer");
	expect_refused("unknown method", "\"default_method\": \"minmax\"", "\"default_method\": \"kl\"",
		       "default_method");
	expect_refused("bits 1", "\"bits\": 8", "\"bits\": 1", "bits must be an integer");
	expect_refused("percentile 101", "\"percentile\": 99.99", "\"percentile\": 101", "percentile 101");
	expect_refused("tensors array", "\"tensors\": {\"x\": {", "\"tensors\": [{\"x\": {", "not valid JSON");
	expect_refused("min as string", "\"min\": -1", "\"min\": \"-1\"", "min must be a number");
	expect_refused("NaN as string", "\"min\": -1", "\"min\": \"NaN\"", "min must be a number");
	expect_refused("NaN bare", "\"min\": -1", "\"min\": NaN", "not valid JSON");
	expect_refused("infinite max", "\"max\": 2", "\"max\": 1e999", "max must be finite");
	expect_refused("max beyond float", "\"max\": 2", "\"max\": 1e300", "outside the float32 range");
	expect_refused("min > max", "\"min\": -1", "\"min\": 3", "min <= max");
	expect_refused("negative count", "1, 1, 2, [10]", "1, -1, 2, [10]", "is negative");
	expect_refused("fractional count", "1, 1, 2, [10]", "1, 1.5, 2, [10]", "must be an integer");
	expect_refused("count as string", "1, 1, 2, [10]", "1, \"1\", 2, [10]", "must be a number");
	expect_refused("too few bins", "[10]]", "[9]]", "has 15 bins");
	expect_refused("too many bins", "[10]]", "[10], 1]", "more than 16 bins");
	expect_refused("zero run too long", "[10]]", "[11]]", "zero run");
	expect_refused("bad zero run", "[10]]", "[10, 1]]", "run of zero bins");
	expect_refused("bins over limit", "\"bins\": 16", "\"bins\": 70000", "hist.bins must be an integer");
	expect_refused("bins under limit", "\"bins\": 16", "\"bins\": 8", "hist.bins must be an integer");
	expect_refused("count mismatch", "\"count\": 5", "\"count\": 6", "count 6 is not zeros");
	expect_refused("lo above 0", "\"lo\": -4", "\"lo\": 1", "lo <= 0 <= hi");
	expect_refused("0 not an edge", "\"lo\": -4", "\"lo\": -4.5", "0 is not a bin edge");
	expect_refused("min outside hist", "\"min\": -1", "\"min\": -5", "outside the histogram span");
	expect_refused("missing hist", "\"hist\": {", "\"hist_\": {", "has no \"hist\"");
	expect_refused("range not a pair", "\"minmax\": [-1, 2]", "\"minmax\": [-1]", "must be [lo, hi]");
	expect_refused("range excludes 0", "\"minmax\": [-1, 2]", "\"minmax\": [0.5, 2]", "lo <= 0 <= hi");
	expect_refused("empty range", "\"minmax\": [-1, 2]", "\"minmax\": [0, 0]", "lo < hi");
	expect_refused("range NaN string", "\"minmax\": [-1, 2]", "\"minmax\": [-1, \"NaN\"]", "must be a number");
	expect_refused("duplicate tensor", "\"ranges\": {\"minmax\": [-1, 2]}}}}",
		       "\"ranges\": {\"minmax\": [-1, 2]}}, \"x\": {\"min\": 0, \"max\": 0, \"count\": 1, "
		       "\"hist\": {\"lo\": 0, \"hi\": 0, \"bins\": 16, \"zeros\": 1, \"counts\": [[16]]}}}}",
		       "appears twice");
	char *path = write_text("arr.json", "[1, 2]");
	struct qt_calib_table *t2;
	cr_assert_eq(qt_calib_read(path, NULL, &t2), QT_E_FORMAT);
	cr_assert(strstr(qt_error_msg(), "not a calibration file"), "%s", qt_error_msg());
	path = write_text("empty.json", "");
	cr_assert_eq(qt_calib_read(path, NULL, &t2), QT_E_FORMAT);
	cr_assert(strstr(qt_error_msg(), "empty.json: not valid JSON"), "%s", qt_error_msg());
	/* Unreadable: an I/O error naming the file. */
	struct qt_calib_table *rd;
	cr_assert_eq(qt_calib_read("/nonexistent/c.json", NULL, &rd), QT_E_IO);
	cr_assert(strstr(qt_error_msg(), "/nonexistent/c.json: cannot open"), "%s", qt_error_msg());
}

Test(calib, write_is_atomic_and_leaves_no_temporary)
{
	make_table(8);
	char path[256];
	snprintf(path, sizeof path, "%s/out.json", tmpdir);
	cr_assert_eq(qt_calib_write(tab, path), QT_OK);
	cr_assert_eq(qt_calib_write(tab, path), QT_OK); /* over an existing file */
	char cmd[512];
	snprintf(cmd, sizeof cmd, "test $(ls %s | wc -l) -eq 1", tmpdir);
	cr_assert_eq(system(cmd), 0, "temporary files left in %s", tmpdir);
	char bad[300];
	snprintf(bad, sizeof bad, "%s/no/such/dir/out.json", tmpdir);
	cr_assert_eq(qt_calib_write(tab, bad), QT_E_IO);
	cr_assert(strstr(qt_error_msg(), bad), "%s", qt_error_msg());
}
