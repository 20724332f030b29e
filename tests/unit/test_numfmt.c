/*
 * Number formats (lib/quant/numfmt.c): every code of every minifloat decoded
 * and encoded back, ties, saturation, NaN and Inf, an independent
 * nearest-value search on random inputs, packing, and the MX and NVFP4 block
 * quantizers' error bounds and bias. Fixed seeds, printed on failure.
 */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qtool/numfmt.h"
#include "qtool/quant.h"
#include "testgraph.h"

static const enum qt_dtype MINIFLOATS[] = {QT_DTYPE_FP8_E4M3, QT_DTYPE_FP8_E5M2, QT_DTYPE_FP6_E3M2,
					   QT_DTYPE_FP6_E2M3, QT_DTYPE_FP4_E2M1};
#define N_MF ((int)(sizeof MINIFLOATS / sizeof MINIFLOATS[0]))

static uint32_t n_codes(enum qt_dtype et)
{
	return 1u << qt_dtype_bits(et);
}

static uint32_t sign_bit(enum qt_dtype et)
{
	return 1u << (qt_dtype_bits(et) - 1);
}

/* Finite values in the spec's tables. */
Test(numfmt, known_values)
{
	cr_assert_eq(qt_minifloat_max(QT_DTYPE_FP8_E4M3), 448.0f);
	cr_assert_eq(qt_minifloat_max(QT_DTYPE_FP8_E5M2), 57344.0f);
	cr_assert_eq(qt_minifloat_max(QT_DTYPE_FP6_E3M2), 28.0f);
	cr_assert_eq(qt_minifloat_max(QT_DTYPE_FP6_E2M3), 7.5f);
	cr_assert_eq(qt_minifloat_max(QT_DTYPE_FP4_E2M1), 6.0f);
	cr_assert_eq(qt_minifloat_decode(QT_DTYPE_FP8_E4M3, 0x7E), 448.0f);
	cr_assert_eq(qt_minifloat_decode(QT_DTYPE_FP8_E4M3, 0x01), ldexpf(1, -9));  /* smallest subnormal */
	cr_assert_eq(qt_minifloat_decode(QT_DTYPE_FP8_E4M3, 0x08), ldexpf(1, -6));  /* smallest normal */
	cr_assert_eq(qt_minifloat_decode(QT_DTYPE_FP8_E5M2, 0x01), ldexpf(1, -16));
	cr_assert_eq(qt_minifloat_decode(QT_DTYPE_FP8_E5M2, 0x7B), 57344.0f);
	cr_assert(isinf(qt_minifloat_decode(QT_DTYPE_FP8_E5M2, 0x7C)));
	cr_assert(isnan(qt_minifloat_decode(QT_DTYPE_FP8_E5M2, 0x7D)));
	cr_assert(isnan(qt_minifloat_decode(QT_DTYPE_FP8_E4M3, 0x7F)));
	cr_assert(isnan(qt_minifloat_decode(QT_DTYPE_FP8_E4M3, 0xFF)));
	cr_assert_eq(qt_minifloat_decode(QT_DTYPE_FP8_E4M3, 0x78), 256.0f); /* S.1111.000 is finite in E4M3 */
	static const float e2m1[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
	for (uint32_t c = 0; c < 8; c++) {
		cr_assert_eq(qt_minifloat_decode(QT_DTYPE_FP4_E2M1, c), e2m1[c], "E2M1 code %u", c);
		cr_assert_eq(qt_minifloat_decode(QT_DTYPE_FP4_E2M1, c | 8), -e2m1[c], "E2M1 code %u", c | 8);
	}
	cr_assert_eq(qt_minifloat_decode(QT_DTYPE_FP6_E3M2, 0x01), 0.0625f);  /* 2^-2 * 1/4 */
	cr_assert_eq(qt_minifloat_decode(QT_DTYPE_FP6_E2M3, 0x01), 0.125f);   /* 2^0 * 1/8 */
	cr_assert_eq(qt_numfmt_elem_max(QT_FMT_MXINT8), 127.0f / 64.0f);
	cr_assert_eq(qt_numfmt_elem_decode(QT_FMT_MXINT8, 0x81), -127.0f / 64.0f);
}

/* Every code: finite ones decode and encode back to themselves (-0
 * included); NaN codes decode to NaN, Inf codes to Inf and back. Finite
 * positive values increase with the code. */
Test(numfmt, every_code_round_trips)
{
	for (int t = 0; t < N_MF; t++) {
		enum qt_dtype et = MINIFLOATS[t];
		float prev = -1;
		for (uint32_t c = 0; c < n_codes(et); c++) {
			float v = qt_minifloat_decode(et, c);
			if (qt_minifloat_finite(et, c)) {
				cr_assert(isfinite(v), "%s code 0x%x", qt_dtype_name(et), c);
				cr_assert_eq(qt_minifloat_encode(et, v), c, "%s code 0x%x value %g encodes to 0x%x",
					     qt_dtype_name(et), c, v, qt_minifloat_encode(et, v));
				cr_assert_eq(!!signbit(v), !!(c & sign_bit(et)), "%s code 0x%x sign", qt_dtype_name(et), c);
				if (c < sign_bit(et)) {
					cr_assert(v > prev, "%s code 0x%x: %g not above %g", qt_dtype_name(et), c, v, prev);
					prev = v;
				}
			} else if (isnan(v)) {
				cr_assert_eq(qt_minifloat_encode(et, v) & ~sign_bit(et), 0x7Fu, "%s NaN code 0x%x",
					     qt_dtype_name(et), c);
			} else {
				cr_assert(isinf(v) && et == QT_DTYPE_FP8_E5M2, "%s code 0x%x", qt_dtype_name(et), c);
				cr_assert_eq(qt_minifloat_encode(et, v), c);
			}
		}
		cr_assert_eq(prev, qt_minifloat_max(et), "%s: largest finite %g", qt_dtype_name(et), prev);
	}
	/* Only E4M3 (two NaNs) and E5M2 (two infinities, six NaNs) have special codes. */
	int specials[N_MF] = {0};
	for (int t = 0; t < N_MF; t++)
		for (uint32_t c = 0; c < n_codes(MINIFLOATS[t]); c++)
			specials[t] += !qt_minifloat_finite(MINIFLOATS[t], c);
	cr_assert(specials[0] == 2 && specials[1] == 8 && !specials[2] && !specials[3] && !specials[4]);
}

/* Between two neighbouring values: the midpoint goes to the even code,
 * anything off the midpoint to the nearer one. */
Test(numfmt, ties_to_even)
{
	for (int t = 0; t < N_MF; t++) {
		enum qt_dtype et = MINIFLOATS[t];
		for (uint32_t c = 0; c + 1 < sign_bit(et); c++) {
			if (!qt_minifloat_finite(et, c + 1))
				break;
			for (int s = 0; s < 2; s++) {
				uint32_t lo = c | (s ? sign_bit(et) : 0), hi = (c + 1) | (s ? sign_bit(et) : 0);
				float a = qt_minifloat_decode(et, lo), b = qt_minifloat_decode(et, hi);
				float mid = (a + b) / 2; /* exact: a few mantissa bits */
				uint32_t even = (lo & 1) ? hi : lo;
				cr_assert_eq(qt_minifloat_encode(et, mid), even, "%s tie %g between 0x%x and 0x%x",
					     qt_dtype_name(et), mid, lo, hi);
				cr_assert_eq(qt_minifloat_encode(et, nextafterf(mid, a)), lo, "%s below %g", qt_dtype_name(et), mid);
				cr_assert_eq(qt_minifloat_encode(et, nextafterf(mid, b)), hi, "%s above %g", qt_dtype_name(et), mid);
			}
		}
	}
}

/* Beyond the largest value: saturate; infinities saturate except in E5M2;
 * NaN keeps its sign in FP8 and is +0 where there is no NaN. */
Test(numfmt, saturation_nan_inf)
{
	for (int t = 0; t < N_MF; t++) {
		enum qt_dtype et = MINIFLOATS[t];
		float mx = qt_minifloat_max(et);
		uint32_t maxc = qt_minifloat_encode(et, mx), sb = sign_bit(et);
		const float big[] = {nextafterf(mx, INFINITY), mx * 1.03f, mx * 1.2f, 1e30f, FLT_MAX};
		for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
			cr_assert_eq(qt_minifloat_encode(et, big[i]), maxc, "%s %g", qt_dtype_name(et), big[i]);
			cr_assert_eq(qt_minifloat_encode(et, -big[i]), maxc | sb, "%s %g", qt_dtype_name(et), -big[i]);
		}
		uint32_t inf = qt_minifloat_encode(et, INFINITY), ninf = qt_minifloat_encode(et, -INFINITY);
		if (et == QT_DTYPE_FP8_E5M2) {
			cr_assert(inf == 0x7C && ninf == 0xFC);
		} else {
			cr_assert(inf == maxc && ninf == (maxc | sb), "%s: Inf gives 0x%x", qt_dtype_name(et), inf);
		}
		uint32_t pn = qt_minifloat_encode(et, NAN), nn = qt_minifloat_encode(et, -NAN);
		if (et == QT_DTYPE_FP8_E4M3 || et == QT_DTYPE_FP8_E5M2)
			cr_assert(pn == 0x7F && nn == 0xFF, "%s NaN 0x%x 0x%x", qt_dtype_name(et), pn, nn);
		else
			cr_assert(pn == 0 && nn == 0, "%s NaN 0x%x 0x%x", qt_dtype_name(et), pn, nn);
		/* Below half the smallest subnormal: zero, keeping the sign. */
		float tiny = qt_minifloat_decode(et, 1) / 2;
		cr_assert_eq(qt_minifloat_encode(et, tiny), 0u, "%s tie at half the smallest goes to even 0", qt_dtype_name(et));
		cr_assert_eq(qt_minifloat_encode(et, -tiny * 0.9f), sb);
	}
	/* MXINT8: symmetric, saturating, no -128. */
	cr_assert_eq(qt_numfmt_elem_encode(QT_FMT_MXINT8, 5.0f), 0x7Fu);
	cr_assert_eq(qt_numfmt_elem_encode(QT_FMT_MXINT8, -5.0f), 0x81u);
	cr_assert_eq(qt_numfmt_elem_encode(QT_FMT_MXINT8, 1.5f / 64), 2u); /* tie 1.5 -> 2 */
	cr_assert_eq(qt_numfmt_elem_encode(QT_FMT_MXINT8, 2.5f / 64), 2u); /* tie 2.5 -> 2 */
	cr_assert(!qt_numfmt_code_ok(QT_FMT_MXINT8, 0x80) && qt_numfmt_code_ok(QT_FMT_MXINT8, 0x81));
	for (uint32_t c = 0; c < 256; c++)
		if (c != 0x80)
			cr_assert_eq(qt_numfmt_elem_encode(QT_FMT_MXINT8, qt_numfmt_elem_decode(QT_FMT_MXINT8, c)), c);
}

/* An independent reference: the nearest of all finite values by search
 * (ties to the even code, beyond the largest: the largest) on random inputs
 * spanning every binade. */
Test(numfmt, encode_matches_nearest_search)
{
	for (int t = 0; t < N_MF; t++) {
		enum qt_dtype et = MINIFLOATS[t];
		uint64_t seed = 100 + (uint64_t)t;
		rng_seed(seed);
		float mx = qt_minifloat_max(et);
		for (int it = 0; it < 4000; it++) {
			float x = (float)((urand() * 2 - 1) * ldexp(1.0, (int)(urand() * 30) - 20)) * mx / 4;
			uint32_t best = 0;
			double bd = INFINITY;
			for (uint32_t c = 0; c < n_codes(et); c++) {
				if (!qt_minifloat_finite(et, c) || (!!(c & sign_bit(et)) != !!signbit(x)))
					continue;
				double d = fabs((double)qt_minifloat_decode(et, c) - x);
				if (d < bd || (d == bd && !(c & 1)))
					bd = d, best = c;
			}
			cr_assert_eq(qt_minifloat_encode(et, x), best, "%s seed %llu: %.9g -> 0x%x, nearest 0x%x",
				     qt_dtype_name(et), (unsigned long long)seed, x, qt_minifloat_encode(et, x), best);
		}
	}
}

/* Packed 6- and 4-bit codes: every element reads back, neighbours intact. */
Test(numfmt, packing)
{
	const enum qt_dtype dts[] = {QT_DTYPE_FP6_E3M2, QT_DTYPE_FP6_E2M3, QT_DTYPE_FP4_E2M1, QT_DTYPE_FP8_E4M3};
	for (size_t d = 0; d < 4; d++) {
		rng_seed(7 + d);
		int64_t n = 37;
		struct qt_tensor t = {0};
		cr_assert_eq(qt_tensor_alloc(&t, dts[d], 1, &n), QT_OK);
		cr_assert_eq(t.nbytes, (size_t)(n * qt_dtype_bits(dts[d]) + 7) / 8);
		uint32_t want[37], m = n_codes(dts[d]);
		for (int pass = 0; pass < 2; pass++)
			for (int64_t i = 0; i < n; i++) {
				want[i] = (uint32_t)(urand() * m) % m;
				qt_code_put(&t, i, (int32_t)want[i]);
			}
		for (int64_t i = 0; i < n; i++)
			cr_assert_eq((uint32_t)qt_code_get(&t, i), want[i], "%s element %lld", qt_dtype_name(dts[d]),
				     (long long)i);
		qt_tensor_free(&t);
	}
}

Test(numfmt, names)
{
	enum qt_numfmt f;
	int bits;
	cr_assert(!qt_numfmt_parse("int4", &f, &bits) && f == QT_FMT_INT && bits == 4);
	cr_assert(!qt_numfmt_parse("mxfp4", &f, &bits) && f == QT_FMT_MXFP4 && bits == 4);
	cr_assert(!qt_numfmt_parse("fp6_e2m3", &f, &bits) && f == QT_FMT_FP6_E2M3 && bits == 6);
	cr_assert(!qt_numfmt_parse("nvfp4", &f, &bits) && f == QT_FMT_NVFP4 && qt_numfmt_block(f) == 16);
	cr_assert(qt_numfmt_parse("fp5", &f, &bits) && qt_numfmt_parse("int", &f, &bits));
	for (int k = 1; k < QT_FMT_COUNT; k++) {
		cr_assert(!qt_numfmt_parse(qt_numfmt_name((enum qt_numfmt)k), &f, &bits) && (int)f == k);
		cr_assert(strstr(qt_numfmt_names(), qt_numfmt_name(f)));
	}
}

/* Error of one element against its grid: at most half the gap to the next
 * value of the element type around x / s (the binade's quantum), unless x
 * saturates. Returns the bound for |x - q|. */
static double half_gap(enum qt_numfmt f, double xs, double s)
{
	double a = fabs(xs), mx = qt_numfmt_elem_max(f);
	if (a >= mx)
		return (a - mx) * s * (1 + 1e-9) + 1e-12 * s; /* saturated: the distance to the largest value */
	if (f == QT_FMT_MXINT8)
		return s / 128 + 1e-30;
	/* The next finite value above the code below a. */
	uint32_t c = qt_numfmt_elem_encode(f, (float)a);
	double v = qt_numfmt_elem_decode(f, c);
	uint32_t lo = v <= a ? c : c - 1;
	double gap = qt_numfmt_elem_decode(f, lo + 1) - qt_numfmt_elem_decode(f, lo);
	return gap / 2 * s * (1 + 1e-12) + 1e-30;
}

struct errstats {
	double max_rel, mean, median, rms_x;
};

/* Block-quantize n normal values (with outliers) by f and rule; check every
 * element against half_gap and return the error statistics. */
static struct errstats block_errors(enum qt_numfmt f, enum qt_mx_rule rule, uint64_t seed, int n, double *sse_out)
{
	float *x = malloc((size_t)n * sizeof *x), *q = malloc((size_t)n * sizeof *q), *fq = malloc((size_t)n * sizeof *fq);
	double *err = malloc((size_t)n * sizeof *err), sum = 0, sx = 0, sse = 0;
	uint32_t codes[QT_MX_BLOCK];
	rng_seed(seed);
	float amax = 0;
	for (int i = 0; i < n; i++) {
		x[i] = (float)(nrand() * (i % 97 == 0 ? 8 : 1) * 0.05);
		amax = fmaxf(amax, fabsf(x[i]));
	}
	int blk = qt_numfmt_block(f);
	float ts = qt_nvfp4_tensor_scale(amax);
	struct errstats r = {0};
	for (int i0 = 0; i0 < n; i0 += blk) {
		int len = n - i0 < blk ? n - i0 : blk;
		double s;
		if (f == QT_FMT_NVFP4) {
			uint8_t b = qt_nvfp4_quantize_block(ts, x + i0, len, codes);
			cr_assert(b >= 1 && b <= 0x7E, "seed %llu: NVFP4 block scale byte 0x%x", (unsigned long long)seed, b);
			s = qt_nvfp4_scale(ts, b);
		} else {
			uint8_t b = qt_mx_quantize_block(f, rule, x + i0, len, codes);
			cr_assert(b != QT_E8M0_NAN);
			s = qt_e8m0_decode(b);
		}
		for (int i = 0; i < len; i++) {
			double v = qt_numfmt_elem_decode(f, codes[i]) * s, e = v - x[i0 + i];
			cr_assert(fabs(e) <= half_gap(f, x[i0 + i] / s, s), "%s seed %llu element %d: %g -> %g",
				  qt_numfmt_name(f), (unsigned long long)seed, i0 + i, x[i0 + i], v);
			q[i0 + i] = (float)v;
			err[i0 + i] = e;
			sum += e;
			sse += e * e;
			sx += (double)x[i0 + i] * x[i0 + i];
		}
	}
	/* The fake quantizer computes the same values. */
	memcpy(fq, x, (size_t)n * sizeof *fq);
	qt_numfmt_fake_quant(f, rule, ts, fq, n);
	for (int i = 0; i < n; i++)
		cr_assert_eq(fq[i], q[i], "%s seed %llu: fake quant element %d", qt_numfmt_name(f),
			     (unsigned long long)seed, i);
	qsort(err, (size_t)n, sizeof *err, cmp_d);
	r.rms_x = sqrt(sx / n);
	r.mean = sum / n;
	r.median = err[n / 2];
	r.max_rel = fmax(fabs(err[0]), fabs(err[n - 1])) / amax;
	if (sse_out)
		*sse_out = sse;
	free(x);
	free(q);
	free(fq);
	free(err);
	return r;
}

/* MX and NVFP4 on random data: every element within half a gap of its grid
 * (or its saturation), no bias, small median; the largest error relative to
 * the tensor's largest magnitude bounded by the element's precision. */
Test(numfmt, block_quantizers_error_bounds)
{
	static const struct {
		enum qt_numfmt f;
		double gap, clip; /* bounds on the largest error over the tensor's largest magnitude */
	} cases[] = {
		/* gap: half the top binade's gap over its smallest value, 2^-7
		 * (int8), 2^-(mantissa bits + 1), 1/4 for E2M1 (gap 2 above 4);
		 * clip: the floor rule's saturation, (2^(emax+1) - max) / 2^(emax+1) */
		{QT_FMT_MXINT8, 0.008, 0.008},       {QT_FMT_MXFP8_E4M3, 0.0625, 0.125},
		{QT_FMT_MXFP8_E5M2, 0.125, 0.125},   {QT_FMT_MXFP6_E3M2, 0.125, 0.125},
		{QT_FMT_MXFP6_E2M3, 0.0625, 0.0625}, {QT_FMT_MXFP4, 0.25, 0.25},
		{QT_FMT_NVFP4, 0.27, 0.27},
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
		for (int rule = QT_MX_FLOOR; rule <= QT_MX_BEST; rule++)
			for (uint64_t seed = 1; seed <= 3; seed++) {
				struct errstats e = block_errors(cases[k].f, (enum qt_mx_rule)rule, seed, 4099, NULL);
				double bound = rule == QT_MX_FLOOR ? fmax(cases[k].gap, cases[k].clip) : cases[k].gap;
				cr_assert(e.max_rel <= bound, "%s rule %d seed %llu: max error %.4g of amax",
					  qt_numfmt_name(cases[k].f), rule, (unsigned long long)seed, e.max_rel);
				cr_assert(fabs(e.mean) < 0.1 * e.rms_x * cases[k].gap,
					  "%s rule %d seed %llu: mean signed error %.3g (rms x %.3g): biased",
					  qt_numfmt_name(cases[k].f), rule, (unsigned long long)seed, e.mean, e.rms_x);
				cr_assert(fabs(e.median) < 0.05 * e.rms_x, "%s rule %d seed %llu: median error %.3g",
					  qt_numfmt_name(cases[k].f), rule, (unsigned long long)seed, e.median);
			}
}

/* The shared exponent: the floor rule is floor(log2 amax) - emax; the
 * rounded-up rule never saturates; the best rule's squared error is the
 * smaller of the two. For FP4 the floor rule clips a block maximum of 7.5 x
 * 2^k to 6 x 2^k; the rounded-up rule keeps it. */
Test(numfmt, mx_shared_exponent_rules)
{
	float x[QT_MX_BLOCK];
	uint32_t c[QT_MX_BLOCK];
	for (int i = 0; i < QT_MX_BLOCK; i++)
		x[i] = (float)(i - 15) / 16.0f;
	x[3] = 7.5f;
	uint8_t bf = qt_mx_quantize_block(QT_FMT_MXFP4, QT_MX_FLOOR, x, QT_MX_BLOCK, c);
	cr_assert_eq(bf, 127 + 2 - 2); /* floor(log2 7.5) = 2, emax(E2M1) = 2 */
	cr_assert_eq(qt_numfmt_elem_decode(QT_FMT_MXFP4, c[3]), 6.0f, "floor rule clips 7.5 to 6");
	uint8_t bc = qt_mx_quantize_block(QT_FMT_MXFP4, QT_MX_CEIL, x, QT_MX_BLOCK, c);
	cr_assert_eq(bc, bf + 1);
	cr_assert_eq(qt_numfmt_elem_decode(QT_FMT_MXFP4, c[3]) * 2, 8.0f, "7.5 / 2 = 3.75 rounds to 4");
	/* All-zero block: scale 2^-127, codes 0; a NaN: the NaN block. */
	float z[5] = {0, -0.0f, 0, 0, 0};
	cr_assert_eq(qt_mx_quantize_block(QT_FMT_MXFP8_E4M3, QT_MX_FLOOR, z, 5, c), 0);
	z[2] = NAN;
	cr_assert_eq(qt_mx_quantize_block(QT_FMT_MXFP8_E4M3, QT_MX_FLOOR, z, 5, c), QT_E8M0_NAN);
	cr_assert(isnan(qt_e8m0_decode(QT_E8M0_NAN)) && qt_e8m0_decode(127) == 1.0f && qt_e8m0_decode(0) > 0);
	/* Random blocks: exponents as stated, best = min of the two errors. */
	static const enum qt_numfmt mx[] = {QT_FMT_MXINT8, QT_FMT_MXFP8_E4M3, QT_FMT_MXFP8_E5M2,
					    QT_FMT_MXFP6_E3M2, QT_FMT_MXFP6_E2M3, QT_FMT_MXFP4};
	static const int emax[] = {0, 8, 15, 4, 2, 2};
	for (size_t k = 0; k < sizeof mx / sizeof mx[0]; k++) {
		uint64_t seed = 40 + k;
		rng_seed(seed);
		for (int it = 0; it < 300; it++) {
			float amax = 0;
			for (int i = 0; i < QT_MX_BLOCK; i++) {
				x[i] = (float)(nrand() * ldexp(1.0, (int)(urand() * 20) - 10));
				amax = fmaxf(amax, fabsf(x[i]));
			}
			int ex;
			frexpf(amax, &ex);
			double sse[3];
			uint8_t b[3];
			for (int rule = 0; rule < 3; rule++) {
				b[rule] = qt_mx_quantize_block(mx[k], (enum qt_mx_rule)rule, x, QT_MX_BLOCK, c);
				sse[rule] = 0;
				for (int i = 0; i < QT_MX_BLOCK; i++) {
					double d = qt_numfmt_elem_decode(mx[k], c[i]) * qt_e8m0_decode(b[rule]) - x[i];
					sse[rule] += d * d;
				}
			}
			cr_assert_eq((int)b[0] - 127, ex - 1 - emax[k], "%s seed %llu", qt_numfmt_name(mx[k]),
				     (unsigned long long)seed);
			cr_assert(amax / qt_e8m0_decode(b[1]) <= qt_numfmt_elem_max(mx[k]), "%s seed %llu: rounded-up rule saturates",
				  qt_numfmt_name(mx[k]), (unsigned long long)seed);
			cr_assert(b[1] == b[0] || b[1] == b[0] + 1);
			cr_assert(sse[2] <= fmin(sse[0], sse[1]) && (b[2] == b[0] || b[2] == b[1]), "%s seed %llu",
				  qt_numfmt_name(mx[k]), (unsigned long long)seed);
		}
	}
}
