/*
 * Reference requantization: the rounding rule (kernels.h CONTRACT) applied
 * to int32 and int64 accumulators, and the real -> (m, n) conversion done at
 * model preparation.
 */
#include <assert.h>
#include <math.h>

#include "kernels/kernels.h"

/*
 * 1 if rq is usable for `cols` output columns: multipliers 0 or in
 * [2^30, 2^31 - 1], shifts in [1, 62], 0 <= qmin <= qmax <= 255, zo in
 * [0, 255]. Kernels only assert this; the runtime validates at load.
 */
int qt_rq_valid(const struct qt_rq *rq, int cols)
{
	if (!rq || !rq->mult || !rq->shift)
		return 0;
	if (rq->zo < 0 || rq->zo > 255 || rq->qmin < 0 || rq->qmin > rq->qmax || rq->qmax > 255)
		return 0;
	int nch = rq->per_channel ? cols : 1;
	for (int c = 0; c < nch; c++) {
		int32_t m = rq->mult[c];
		if (m != 0 && m < (INT32_C(1) << 30))
			return 0;
		if (rq->shift[c] < 1 || rq->shift[c] > 62)
			return 0;
	}
	return 1;
}

/*
 * floor((acc * m + 2^(n-1)) / 2^n) for any int64 acc, saturated to int32.
 * The product needs up to 63 + 31 bits, so it is formed as a 128-bit two's
 * complement value (hi, lo) from 32-bit halves; only unsigned 64-bit
 * arithmetic is used, so nothing is implementation-defined.
 */
int32_t qt_rq_mulshift64(int64_t acc, int32_t m, int n)
{
	assert(m >= 0 && n >= 1 && n <= 62);
	int neg = acc < 0;
	uint64_t u = neg ? (uint64_t)0 - (uint64_t)acc : (uint64_t)acc; /* |acc| <= 2^63 */
	uint64_t mm = (uint64_t)m;
	uint64_t pl = (u & 0xffffffffu) * mm; /* < 2^32 * 2^31 */
	uint64_t ph = (u >> 32) * mm;         /* < 2^32 * 2^31 */
	uint64_t lo = pl + (ph << 32);
	uint64_t hi = (ph >> 32) + (lo < pl);
	if (neg) {
		lo = ~lo + 1;
		hi = ~hi + (lo == 0);
	}
	uint64_t half = (uint64_t)1 << (n - 1);
	uint64_t lo2 = lo + half;
	hi += lo2 < lo;
	lo = lo2;
	/* arithmetic shift of (hi, lo) by n in [1, 62] */
	uint64_t sign = (hi >> 63) ? ~(uint64_t)0 : 0;
	uint64_t qlo = (lo >> n) | (hi << (64 - n));
	uint64_t qhi = (hi >> n) | (sign << (64 - n));
	if (!sign) {
		if (qhi != 0 || qlo > (uint64_t)INT32_MAX)
			return INT32_MAX;
		return (int32_t)qlo;
	}
	/* negative: in range iff qhi is all ones and qlo >= 2^64 - 2^31 */
	if (qhi != ~(uint64_t)0 || ~qlo > (uint64_t)INT32_MAX)
		return INT32_MIN;
	return (int32_t)(-(int64_t)(~qlo) - 1);
}

/*
 * real -> (m, n), real ~= m * 2^-n: real = f * 2^e with f in [0.5, 1)
 * (frexp); m = round(f * 2^31) (f * 2^31 is exact, llround rounds half away
 * from zero), n = 31 - e; m == 2^31 becomes 2^30 with e + 1.
 */
enum qt_status qt_quantize_multiplier(double real, int32_t *m_out, int *n_out)
{
	if (!isfinite(real) || real <= 0)
		return qt_error(QT_E_NUMERIC, "requantization multiplier %g must be finite and positive",
				real);
	int e;
	double f = frexp(real, &e);
	long long q = llround(ldexp(f, 31));
	if (q == (1LL << 31)) {
		q >>= 1;
		e++;
	}
	int n = 31 - e;
	if (n < 1 || n > 62)
		return qt_error(QT_E_NUMERIC,
				"requantization multiplier %g is outside [2^-32, 2^30) (shift %d not in [1, 62])",
				real, n);
	*m_out = (int32_t)q;
	*n_out = n;
	return QT_OK;
}

/* The epilogue on its own; see kernels.h. Plain loops: this is the spec. */
void qt_requant_q31__ref(int rows, int cols, const int32_t *acc, size_t ldacc, int32_t za,
			 const int32_t *colsum, const int32_t *bias, const struct qt_rq *rq,
			 uint8_t *Y, size_t ldy)
{
	assert(rows >= 0 && cols >= 0 && qt_rq_valid(rq, cols));
	assert(za >= 0 && za <= 255);
	for (int r = 0; r < rows; r++) {
		for (int c = 0; c < cols; c++) {
			int ch = rq->per_channel ? c : 0;
			/* int64: C - za * colsum + bias cannot overflow it (< 2^33) */
			int64_t v = acc[(size_t)r * ldacc + c];
			if (colsum)
				v -= (int64_t)za * colsum[c];
			if (bias)
				v += bias[c];
			int64_t y = qt_rq_mulshift(qt_sat32(v), rq->mult[ch], rq->shift[ch]);
			Y[(size_t)r * ldy + c] = qt_rq_clamp(y, rq->zo, rq->qmin, rq->qmax);
		}
	}
}
