/*
 * Minifloats, MX blocks and NVFP4 (include/qtool/numfmt.h has the rules).
 *
 * Encoding works on |x| in binary64, where every float, every quotient by a
 * power of two and every element value is exact: find the binade of |x|
 * (never below the smallest normal's, so subnormals share its quantum),
 * divide by the binade's quantum 2^(E - mbits), round that to the nearest
 * integer with ties to even (nearbyint in the default rounding mode: the
 * integer is the significand with its hidden bit, so its parity is the
 * mantissa's), and carry into the next binade when it overflows.
 */
#include <math.h>
#include <string.h>

#include "qtool/numfmt.h"

/* A minifloat: exponent and mantissa bits, bias, and what the all-ones
 * exponent means. */
enum mf_kind { MF_FINITE, MF_FN, MF_IEEE };
struct mf {
	int e, m, bias;
	enum mf_kind kind;
	int emax;       /* unbiased exponent of the largest finite value */
	uint32_t maxc;  /* code of the largest finite value */
};

static const struct mf MF_E4M3 = {4, 3, 7, MF_FN, 8, 0x7E};   /* 1.75 * 2^8 = 448; S.1111.111 is NaN */
static const struct mf MF_E5M2 = {5, 2, 15, MF_IEEE, 15, 0x7B}; /* 1.75 * 2^15 = 57344 */
static const struct mf MF_E3M2 = {3, 2, 3, MF_FINITE, 4, 0x1F}; /* 1.75 * 2^4 = 28 */
static const struct mf MF_E2M3 = {2, 3, 1, MF_FINITE, 2, 0x1F}; /* 1.875 * 2^2 = 7.5 */
static const struct mf MF_E2M1 = {2, 1, 1, MF_FINITE, 2, 0x7};  /* 1.5 * 2^2 = 6 */

static const struct mf *mf_of(enum qt_dtype et)
{
	switch (et) {
	case QT_DTYPE_FP8_E4M3: return &MF_E4M3;
	case QT_DTYPE_FP8_E5M2: return &MF_E5M2;
	case QT_DTYPE_FP6_E3M2: return &MF_E3M2;
	case QT_DTYPE_FP6_E2M3: return &MF_E2M3;
	case QT_DTYPE_FP4_E2M1: return &MF_E2M1;
	default: return NULL;
	}
}

static double mf_decode(const struct mf *f, uint32_t code)
{
	int sign = (code >> (f->e + f->m)) & 1;
	uint32_t E = (code >> f->m) & ((1u << f->e) - 1), M = code & ((1u << f->m) - 1);
	uint32_t eall = (1u << f->e) - 1, mall = (1u << f->m) - 1;
	double v;
	if (f->kind == MF_IEEE && E == eall)
		v = M ? NAN : INFINITY;
	else if (f->kind == MF_FN && E == eall && M == mall)
		v = NAN;
	else if (E == 0)
		v = ldexp((double)M, 1 - f->bias - f->m);
	else
		v = ldexp(1.0 + (double)M / (double)(1u << f->m), (int)E - f->bias);
	return sign ? -v : v;
}

static uint32_t mf_encode(const struct mf *f, double x)
{
	uint32_t sign = signbit(x) ? 1u << (f->e + f->m) : 0;
	if (isnan(x))
		return f->kind == MF_FINITE ? 0 : sign | 0x7F;
	double a = fabs(x), max = mf_decode(f, f->maxc);
	if (isinf(a) && f->kind == MF_IEEE)
		return sign | (((1u << f->e) - 1) << f->m);
	if (a >= max)
		return sign | f->maxc; /* saturate (the binade above holds no finite value below the next code) */
	int ex, emin = 1 - f->bias;
	frexp(a, &ex); /* a = frac * 2^ex, frac in [0.5, 1): floor(log2 a) = ex - 1 */
	int E = a > 0 && ex - 1 > emin ? ex - 1 : emin;
	double r = nearbyint(ldexp(a, f->m - E)); /* significand with hidden bit, ties to even */
	uint32_t one = 1u << f->m;
	if (r >= 2.0 * one) /* carried into the next binade */
		E++, r = one;
	uint32_t R = (uint32_t)r;
	if (R < one) /* subnormal (only when E == emin) or zero */
		return sign | R;
	return sign | ((uint32_t)(E + f->bias) << f->m) | (R - one);
}

int qt_minifloat_is(enum qt_dtype et)
{
	return mf_of(et) != NULL;
}

float qt_minifloat_decode(enum qt_dtype et, uint32_t code)
{
	const struct mf *f = mf_of(et);
	return f ? (float)mf_decode(f, code) : NAN;
}

uint32_t qt_minifloat_encode(enum qt_dtype et, float x)
{
	const struct mf *f = mf_of(et);
	return f ? mf_encode(f, (double)x) : 0;
}

float qt_minifloat_max(enum qt_dtype et)
{
	const struct mf *f = mf_of(et);
	return f ? (float)mf_decode(f, f->maxc) : 0;
}

int qt_minifloat_finite(enum qt_dtype et, uint32_t code)
{
	const struct mf *f = mf_of(et);
	return f && code < (2u << (f->e + f->m)) && isfinite(mf_decode(f, code));
}

/* ---- Formats ---- */

static const struct {
	const char *name;
	enum qt_dtype elem;
	int block;
} fmts[QT_FMT_COUNT] = {
	[QT_FMT_INT] = {"int", QT_DTYPE_UNDEFINED, 0},
	[QT_FMT_FP8_E4M3] = {"fp8_e4m3", QT_DTYPE_FP8_E4M3, 0},
	[QT_FMT_FP8_E5M2] = {"fp8_e5m2", QT_DTYPE_FP8_E5M2, 0},
	[QT_FMT_FP6_E3M2] = {"fp6_e3m2", QT_DTYPE_FP6_E3M2, 0},
	[QT_FMT_FP6_E2M3] = {"fp6_e2m3", QT_DTYPE_FP6_E2M3, 0},
	[QT_FMT_FP4_E2M1] = {"fp4_e2m1", QT_DTYPE_FP4_E2M1, 0},
	[QT_FMT_MXINT8] = {"mxint8", QT_DTYPE_I8, QT_MX_BLOCK},
	[QT_FMT_MXFP8_E4M3] = {"mxfp8_e4m3", QT_DTYPE_FP8_E4M3, QT_MX_BLOCK},
	[QT_FMT_MXFP8_E5M2] = {"mxfp8_e5m2", QT_DTYPE_FP8_E5M2, QT_MX_BLOCK},
	[QT_FMT_MXFP6_E3M2] = {"mxfp6_e3m2", QT_DTYPE_FP6_E3M2, QT_MX_BLOCK},
	[QT_FMT_MXFP6_E2M3] = {"mxfp6_e2m3", QT_DTYPE_FP6_E2M3, QT_MX_BLOCK},
	[QT_FMT_MXFP4] = {"mxfp4", QT_DTYPE_FP4_E2M1, QT_MX_BLOCK},
	[QT_FMT_NVFP4] = {"nvfp4", QT_DTYPE_FP4_E2M1, QT_NVFP4_BLOCK},
};

static int fmt_ok(enum qt_numfmt f)
{
	return (unsigned)f < QT_FMT_COUNT;
}

const char *qt_numfmt_name(enum qt_numfmt f)
{
	return fmt_ok(f) ? fmts[f].name : "invalid";
}

const char *qt_numfmt_names(void)
{
	return "int8, int4, int3, int2, fp8_e4m3, fp8_e5m2, fp6_e3m2, fp6_e2m3, fp4_e2m1, mxint8, mxfp8_e4m3, "
	       "mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4, nvfp4";
}

int qt_numfmt_parse(const char *s, enum qt_numfmt *f_out, int *bits_out)
{
	static const struct {
		const char *name;
		int bits;
	} ints[] = {{"int8", 8}, {"int4", 4}, {"int3", 3}, {"int2", 2}};
	if (!s)
		return -1;
	for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
		if (!strcmp(s, ints[i].name)) {
			*f_out = QT_FMT_INT;
			*bits_out = ints[i].bits;
			return 0;
		}
	for (int f = QT_FMT_INT + 1; f < QT_FMT_COUNT; f++)
		if (!strcmp(s, fmts[f].name)) {
			*f_out = (enum qt_numfmt)f;
			*bits_out = qt_dtype_bits(fmts[f].elem);
			return 0;
		}
	return -1;
}

enum qt_dtype qt_numfmt_elem(enum qt_numfmt f)
{
	return fmt_ok(f) ? fmts[f].elem : QT_DTYPE_UNDEFINED;
}

int qt_numfmt_block(enum qt_numfmt f)
{
	return fmt_ok(f) ? fmts[f].block : 0;
}

/* MXINT8 elements: int8 codes meaning code * 2^-6, symmetric [-127, 127]. */
static double int8_decode(uint32_t code)
{
	return (double)(int8_t)(uint8_t)code / 64.0;
}

static uint32_t int8_encode(double x)
{
	if (isnan(x))
		return 0;
	double r = nearbyint(x * 64.0);
	r = r > 127 ? 127 : r < -127 ? -127 : r;
	return (uint32_t)(uint8_t)(int8_t)r;
}

static double elem_decode_d(enum qt_numfmt f, uint32_t code)
{
	if (f == QT_FMT_MXINT8)
		return int8_decode(code);
	const struct mf *m = mf_of(qt_numfmt_elem(f));
	return m ? mf_decode(m, code) : NAN;
}

static uint32_t elem_encode_d(enum qt_numfmt f, double x)
{
	if (f == QT_FMT_MXINT8)
		return int8_encode(x);
	const struct mf *m = mf_of(qt_numfmt_elem(f));
	return m ? mf_encode(m, x) : 0;
}

float qt_numfmt_elem_decode(enum qt_numfmt f, uint32_t code)
{
	return (float)elem_decode_d(f, code);
}

uint32_t qt_numfmt_elem_encode(enum qt_numfmt f, float x)
{
	return elem_encode_d(f, (double)x);
}

uint32_t qt_numfmt_encode_div(enum qt_numfmt f, float x, float scale)
{
	return elem_encode_d(f, (double)x / (double)scale);
}

float qt_numfmt_elem_max(enum qt_numfmt f)
{
	if (f == QT_FMT_MXINT8)
		return 127.0f / 64.0f;
	return qt_minifloat_max(qt_numfmt_elem(f));
}

int qt_numfmt_code_ok(enum qt_numfmt f, uint32_t code)
{
	if (f == QT_FMT_MXINT8)
		return code <= 0xFF && code != 0x80;
	return f != QT_FMT_INT && qt_minifloat_finite(qt_numfmt_elem(f), code);
}

/* Exponent of the largest finite element (the spec's emax_elem). */
static int elem_emax(enum qt_numfmt f)
{
	if (f == QT_FMT_MXINT8)
		return 0;
	const struct mf *m = mf_of(qt_numfmt_elem(f));
	return m ? m->emax : 0;
}

float qt_e8m0_decode(uint8_t b)
{
	return b == QT_E8M0_NAN ? NAN : ldexpf(1.0f, (int)b - 127);
}

/* Codes of n values at scale 2^e; returns their squared error (binary64). */
static double mx_codes(enum qt_numfmt f, const float *x, int n, int e, uint32_t *codes)
{
	double err = 0;
	for (int i = 0; i < n; i++) {
		codes[i] = elem_encode_d(f, ldexp((double)x[i], -e));
		double d = ldexp(elem_decode_d(f, codes[i]), e) - (double)x[i];
		err += d * d;
	}
	return err;
}

uint8_t qt_mx_quantize_block(enum qt_numfmt f, enum qt_mx_rule rule, const float *x, int n, uint32_t *codes)
{
	float amax = 0;
	for (int i = 0; i < n; i++) {
		if (!isfinite(x[i])) {
			memset(codes, 0, (size_t)n * sizeof *codes);
			return QT_E8M0_NAN;
		}
		amax = fmaxf(amax, fabsf(x[i]));
	}
	if (amax == 0) {
		memset(codes, 0, (size_t)n * sizeof *codes);
		return 0;
	}
	int ex;
	frexpf(amax, &ex);
	int lo = ex - 1 - elem_emax(f); /* the floor rule */
	int hi = lo + (ldexp((double)amax, -lo) > (double)qt_numfmt_elem_max(f));
	lo = lo < -127 ? -127 : lo > 127 ? 127 : lo;
	hi = hi < -127 ? -127 : hi > 127 ? 127 : hi;
	int e = rule == QT_MX_CEIL ? hi : lo;
	double err = mx_codes(f, x, n, e, codes);
	if (rule == QT_MX_BEST && hi != lo) {
		uint32_t alt[QT_MX_BLOCK];
		if (n <= QT_MX_BLOCK && mx_codes(f, x, n, hi, alt) < err) {
			memcpy(codes, alt, (size_t)n * sizeof *codes);
			e = hi;
		}
	}
	return (uint8_t)(e + 127);
}

float qt_nvfp4_tensor_scale(float amax)
{
	if (!(amax > 0) || !isfinite(amax))
		return 1.0f;
	float s = (float)((double)amax / (448.0 * 6.0));
	return s > 0 ? s : 1.0f;
}

float qt_nvfp4_scale(float tscale, uint8_t byte)
{
	return (float)((double)tscale * mf_decode(&MF_E4M3, byte));
}

uint8_t qt_nvfp4_quantize_block(float tscale, const float *x, int n, uint32_t *codes)
{
	double amax = 0;
	for (int i = 0; i < n; i++)
		amax = isnan(x[i]) || isnan(amax) ? NAN : fmax(amax, fabs((double)x[i]));
	uint32_t b = mf_encode(&MF_E4M3, amax / 6.0 / (double)tscale);
	if (b == 0)
		b = 1; /* never a zero scale: an all-zero block keeps the smallest */
	double s = (double)qt_nvfp4_scale(tscale, (uint8_t)b);
	for (int i = 0; i < n; i++)
		codes[i] = mf_encode(&MF_E2M1, (double)x[i] / s);
	return (uint8_t)b;
}

void qt_numfmt_fake_quant(enum qt_numfmt f, enum qt_mx_rule rule, float scale, float *x, int64_t n)
{
	uint32_t codes[QT_MX_BLOCK];
	int blk = qt_numfmt_block(f);
	if (!fmt_ok(f) || f == QT_FMT_INT)
		return;
	if (!blk) {
		for (int64_t i = 0; i < n; i++)
			x[i] = scale * (float)elem_decode_d(f, qt_numfmt_encode_div(f, x[i], scale));
		return;
	}
	for (int64_t i0 = 0; i0 < n; i0 += blk) {
		int len = n - i0 < blk ? (int)(n - i0) : blk;
		double s;
		if (f == QT_FMT_NVFP4)
			s = qt_nvfp4_scale(scale, qt_nvfp4_quantize_block(scale, x + i0, len, codes));
		else
			s = qt_e8m0_decode(qt_mx_quantize_block(f, rule, x + i0, len, codes));
		for (int i = 0; i < len; i++)
			x[i0 + i] = (float)(elem_decode_d(f, codes[i]) * s);
	}
}
