/*
 * Quantized Add on uint8 codes, 16 lanes of AVX-512F at a time; bit-exact to
 * qt_qadd_u8__ref (the same three applications of the rounding rule of
 * kernels.h, with the same bounds):
 *   xa = (qa - za) 2^20, |xa| < 2^28; ta = rule(xa, ma, na), |ta| <= 2^27 + 1
 *   t  = ta + tb, |t| < 2^29 (int32)
 *   y  = rule(t, mo, no) in int64, clamped to [qmin - zo, qmax - zo] in int64
 *        before it is narrowed, so a large y cannot wrap.
 * rule(x, m, n) = floor((x * m + 2^(n-1)) / 2^n): vpmuldq gives the exact
 * 64-bit products of the even and the odd int32 lanes, vpsraq the floor.
 * Strided (broadcast) inputs and the last n % 16 elements take the reference.
 */
#include <immintrin.h>

#include "kernels/kernels.h"

/* rule(x, m, n) of the even int32 lanes of x, as int64 lanes. */
static inline __m512i rule_even(__m512i x, __m512i m, __m512i round, __m128i n)
{
	return _mm512_sra_epi64(_mm512_add_epi64(_mm512_mul_epi32(x, m), round), n);
}

/* rule() of all 16 lanes, narrowed back to int32 (values must fit). */
static inline __m512i rule32(__m512i x, __m512i m, __m512i round, __m128i n)
{
	__m512i even = rule_even(x, m, round, n);
	__m512i odd = rule_even(_mm512_srli_epi64(x, 32), m, round, n);
	return _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
}

void qt_qadd_u8__avx512(size_t n, const uint8_t *a, size_t a_stride, const uint8_t *b, size_t b_stride,
			uint8_t *y, const struct qt_qadd_params *p)
{
	if (a_stride != 1 || b_stride != 1) {
		qt_qadd_u8__ref(n, a, a_stride, b, b_stride, y, p);
		return;
	}
	const __m512i za = _mm512_set1_epi32(p->za), zb = _mm512_set1_epi32(p->zb);
	const __m512i ma = _mm512_set1_epi64(p->ma), mb = _mm512_set1_epi64(p->mb), mo = _mm512_set1_epi64(p->mo);
	const __m512i ra = _mm512_set1_epi64(INT64_C(1) << (p->na - 1)), rb = _mm512_set1_epi64(INT64_C(1) << (p->nb - 1));
	const __m512i ro = _mm512_set1_epi64(INT64_C(1) << (p->no - 1));
	const __m128i na = _mm_cvtsi32_si128(p->na), nb = _mm_cvtsi32_si128(p->nb), no = _mm_cvtsi32_si128(p->no);
	const __m512i lo = _mm512_set1_epi64((int64_t)p->qmin - p->zo), hi = _mm512_set1_epi64((int64_t)p->qmax - p->zo);
	const __m512i zo = _mm512_set1_epi32(p->zo);
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m512i xa = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(a + i)));
		__m512i xb = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b + i)));
		xa = _mm512_slli_epi32(_mm512_sub_epi32(xa, za), QT_QADD_LSHIFT);
		xb = _mm512_slli_epi32(_mm512_sub_epi32(xb, zb), QT_QADD_LSHIFT);
		__m512i t = _mm512_add_epi32(rule32(xa, ma, ra, na), rule32(xb, mb, rb, nb));
		__m512i even = rule_even(t, mo, ro, no);
		__m512i odd = rule_even(_mm512_srli_epi64(t, 32), mo, ro, no);
		even = _mm512_min_epi64(_mm512_max_epi64(even, lo), hi);
		odd = _mm512_min_epi64(_mm512_max_epi64(odd, lo), hi);
		__m512i v = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
		_mm_storeu_si128((__m128i *)(y + i), _mm512_cvtepi32_epi8(_mm512_add_epi32(v, zo)));
	}
	if (i < n)
		qt_qadd_u8__ref(n - i, a + i, 1, b + i, 1, y + i, p);
}
