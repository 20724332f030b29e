/*
 * u8 x s8 GEMM, 8 rows x 32 columns per tile, B packed 4 K-values deep
 * ("c4"), with AVX-512 VNNI vpdpbusd (not vpdpbusds: the plain form wraps
 * instead of saturating, and wrapping never happens within our bounds).
 *
 * vpdpbusd adds four u8 * s8 products (each within [-32640, 32385], exact in
 * the instruction's int16 intermediates) to an int32 lane. The int32 lanes
 * hold C[m][n] = sum_k a * b exactly for K <= 65535 (see kernels.h).
 *
 * Packed B: ceil(N / 32) column blocks of 32 (zero-padded columns), each
 * ceil(K / 4) groups of 128 bytes: column c's four bytes B[n0 + c][4g .. 4g+3]
 * at offset 4c (K padded with zeros). One zmm load gives 16 columns x 4 k.
 *
 * Requantization epilogue (bit-exact with qt_requant_q31__ref): per 8 lanes
 * in int64: v = C + (bias - za * colsum) (|v| < 2^33), saturate to int32,
 * vpmuldq by m (< 2^62), + 2^(n-1), vpsravq by n (arithmetic = floor),
 * saturating narrow to int32, clamp to [qmin - zo, qmax - zo], + zo.
 */
#include <assert.h>
#include <immintrin.h>
#include <string.h>

#include "kernels/kernels.h"

#define MR 8
#define NR 32
#define KR 4
#define AI static inline __attribute__((always_inline))

/* Bytes of the packed form. */
size_t qt_qgemm_packed_size_u8s8_8x32c4__avx512vnni(int N, int K)
{
	assert(N >= 0 && K >= 0);
	size_t nb = ((size_t)N + NR - 1) / NR, kp = ((size_t)K + KR - 1) / KR * KR;
	return nb * NR * kp;
}

/* Pack B ([N, K], row stride ldb) into the c4 layout above; colsum_out[N]. */
void qt_qgemm_pack_u8s8_8x32c4__avx512vnni(int N, int K, const int8_t *B, size_t ldb,
					   void *packed, int32_t *colsum_out)
{
	assert(N >= 0 && K >= 0 && K <= QT_QGEMM_MAX_K);
	int8_t *dst = packed;
	int kg = (K + KR - 1) / KR;
	for (int n0 = 0; n0 < N; n0 += NR) {
		for (int g = 0; g < kg; g++) {
			for (int c = 0; c < NR; c++) {
				for (int t = 0; t < KR; t++) {
					int n = n0 + c, k = g * KR + t;
					*dst++ = n < N && k < K ? B[(size_t)n * ldb + k] : 0;
				}
			}
		}
	}
	qt_colsum_s8__ref(N, K, B, ldb, colsum_out);
}

/* Stores: full tiles use plain stores; masked stores only for the last,
 * partial column block (masked stores measured 2.5x slower on Zen 5). */

/* Load 1-3 trailing bytes (K not a multiple of 4) without reading past them. */
AI uint32_t load_tail(const uint8_t *p, int n)
{
	uint32_t w = p[0];
	if (n > 1)
		w |= (uint32_t)p[1] << 8;
	if (n > 2)
		w |= (uint32_t)p[2] << 16;
	return w;
}

static __mmask16 half_mask(int live)
{
	return live >= 16 ? (__mmask16)0xffff : live <= 0 ? 0 : (__mmask16)((1u << live) - 1);
}

/*
 * The tile: cI0 / cI1 = sum over k of A[I][k] * B[n0 + lane (+16)][k] for
 * rows I < mr and column halves < nv (nv = 1 when the block has <= 16 live
 * columns). Named variables, not arrays, so GCC keeps all 16 accumulators in
 * zmm registers without shuffling copies. mr and nv are constants after
 * inlining; the guards fold away.
 */
#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define DECL(I)                                                                 \
	const uint8_t *a##I = A + (size_t)(I < mr ? I : 0) * lda;              \
	__m512i c##I##0 = _mm512_setzero_si512(), c##I##1 = _mm512_setzero_si512();
#define STEP(I, W)                                                               \
	if (I < mr) {                                                            \
		__m512i va = _mm512_set1_epi32((int)(W));                        \
		c##I##0 = _mm512_dpbusd_epi32(c##I##0, va, b0);                  \
		if (nv > 1)                                                      \
			c##I##1 = _mm512_dpbusd_epi32(c##I##1, va, b1);          \
	}
#define STEP_FULL(I)                                                             \
	{                                                                        \
		uint32_t w = 0;                                                  \
		if (I < mr)                                                      \
			memcpy(&w, a##I + k, 4);                                 \
		STEP(I, w)                                                       \
	}
#define STEP_TAIL(I)                                                             \
	{                                                                        \
		uint32_t w = I < mr ? load_tail(a##I + k, K - k) : 0;            \
		STEP(I, w)                                                       \
	}
#define DOT_TILE()                                                               \
	ROWS(DECL)                                                               \
	int k = 0;                                                               \
	for (; k + KR <= K; k += KR, bp += NR * KR) {                            \
		__m512i b0 = _mm512_loadu_si512(bp);                             \
		__m512i b1 = nv > 1 ? _mm512_loadu_si512(bp + 64) : b0;          \
		ROWS(STEP_FULL)                                                  \
	}                                                                        \
	if (k < K) { /* 1-3 leftover k; B is zero-padded there */                \
		__m512i b0 = _mm512_loadu_si512(bp);                             \
		__m512i b1 = nv > 1 ? _mm512_loadu_si512(bp + 64) : b0;          \
		ROWS(STEP_TAIL)                                                  \
	}

AI void block_raw(const int mr, const int nv, int K, const uint8_t *A, size_t lda,
		  const int8_t *bp, int32_t *C, size_t ldc, int live)
{
	DOT_TILE()
	__mmask16 m0 = half_mask(live), m1 = half_mask(live - 16);
#define STORE_RAW(I)                                                                   \
	if (I < mr) {                                                                  \
		if (live == NR) {                                                      \
			_mm512_storeu_si512(C + (size_t)I * ldc, c##I##0);             \
			_mm512_storeu_si512(C + (size_t)I * ldc + 16, c##I##1);        \
		} else {                                                               \
			_mm512_mask_storeu_epi32(C + (size_t)I * ldc, m0, c##I##0);    \
			if (nv > 1)                                                    \
				_mm512_mask_storeu_epi32(C + (size_t)I * ldc + 16, m1, c##I##1); \
		}                                                                      \
	}
	ROWS(STORE_RAW)
#undef STORE_RAW
}

/* Per-column-block epilogue constants, 8 int64 lanes per vector. */
struct epi {
	__m512i d[4];   /* bias - za * colsum */
	__m512i m[4];   /* multiplier */
	__m512i r[4];   /* 2^(n-1) */
	__m512i s[4];   /* n */
	__m512i lo, hi; /* int32: qmin - zo, qmax - zo */
	__m512i zo;     /* int32 */
};

/* 16 accumulators -> 16 output codes; q selects the 16-column half. */
AI __m128i requant16(__m512i acc, const struct epi *e, int q)
{
	const __m512i i32min = _mm512_set1_epi64(INT32_MIN), i32max = _mm512_set1_epi64(INT32_MAX);
	__m512i l = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(acc));
	__m512i h = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(acc, 1));
	l = _mm512_add_epi64(l, e->d[2 * q]);
	h = _mm512_add_epi64(h, e->d[2 * q + 1]);
	l = _mm512_min_epi64(_mm512_max_epi64(l, i32min), i32max);
	h = _mm512_min_epi64(_mm512_max_epi64(h, i32min), i32max);
	l = _mm512_mul_epi32(l, e->m[2 * q]); /* low dwords, signed: exact int64 */
	h = _mm512_mul_epi32(h, e->m[2 * q + 1]);
	l = _mm512_srav_epi64(_mm512_add_epi64(l, e->r[2 * q]), e->s[2 * q]);
	h = _mm512_srav_epi64(_mm512_add_epi64(h, e->r[2 * q + 1]), e->s[2 * q + 1]);
	__m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtsepi64_epi32(l)),
				       _mm512_cvtsepi64_epi32(h), 1);
	v = _mm512_min_epi32(_mm512_max_epi32(v, e->lo), e->hi);
	return _mm512_cvtepi32_epi8(_mm512_add_epi32(v, e->zo)); /* in [0, 255] */
}

AI void block_rq(const int mr, const int nv, int K, const uint8_t *A, size_t lda,
		 const int8_t *bp, uint8_t *Y, size_t ldy, int live, const struct epi *e)
{
	DOT_TILE()
	__mmask16 m0 = half_mask(live), m1 = half_mask(live - 16);
#define STORE_RQ(I)                                                                     \
	if (I < mr) {                                                                   \
		__m128i y0 = requant16(c##I##0, e, 0);                                  \
		if (live == NR) {                                                       \
			_mm_storeu_si128((__m128i *)(Y + (size_t)I * ldy), y0);         \
			_mm_storeu_si128((__m128i *)(Y + (size_t)I * ldy + 16),         \
					 requant16(c##I##1, e, 1));                     \
		} else {                                                                \
			_mm_mask_storeu_epi8(Y + (size_t)I * ldy, m0, y0);              \
			if (nv > 1)                                                     \
				_mm_mask_storeu_epi8(Y + (size_t)I * ldy + 16, m1,      \
						     requant16(c##I##1, e, 1));         \
		}                                                                       \
	}
	ROWS(STORE_RQ)
#undef STORE_RQ
}

/* One column block of the raw GEMM over all rows; nv fixed. */
AI void cols_raw(const int nv, int M, int K, const uint8_t *A, size_t lda, const int8_t *bp,
		 int32_t *C, size_t ldc, int live)
{
	int m = 0;
	for (; m + MR <= M; m += MR)
		block_raw(MR, nv, K, A + (size_t)m * lda, lda, bp, C + (size_t)m * ldc, ldc, live);
	const uint8_t *a = A + (size_t)m * lda;
	int32_t *c = C + (size_t)m * ldc;
	switch (M - m) {
	case 7: block_raw(7, nv, K, a, lda, bp, c, ldc, live); break;
	case 6: block_raw(6, nv, K, a, lda, bp, c, ldc, live); break;
	case 5: block_raw(5, nv, K, a, lda, bp, c, ldc, live); break;
	case 4: block_raw(4, nv, K, a, lda, bp, c, ldc, live); break;
	case 3: block_raw(3, nv, K, a, lda, bp, c, ldc, live); break;
	case 2: block_raw(2, nv, K, a, lda, bp, c, ldc, live); break;
	case 1: block_raw(1, nv, K, a, lda, bp, c, ldc, live); break;
	default: break;
	}
}

AI void cols_rq(const int nv, int M, int K, const uint8_t *A, size_t lda, const int8_t *bp,
		uint8_t *Y, size_t ldy, int live, const struct epi *e)
{
	int m = 0;
	for (; m + MR <= M; m += MR)
		block_rq(MR, nv, K, A + (size_t)m * lda, lda, bp, Y + (size_t)m * ldy, ldy, live, e);
	const uint8_t *a = A + (size_t)m * lda;
	uint8_t *y = Y + (size_t)m * ldy;
	switch (M - m) {
	case 7: block_rq(7, nv, K, a, lda, bp, y, ldy, live, e); break;
	case 6: block_rq(6, nv, K, a, lda, bp, y, ldy, live, e); break;
	case 5: block_rq(5, nv, K, a, lda, bp, y, ldy, live, e); break;
	case 4: block_rq(4, nv, K, a, lda, bp, y, ldy, live, e); break;
	case 3: block_rq(3, nv, K, a, lda, bp, y, ldy, live, e); break;
	case 2: block_rq(2, nv, K, a, lda, bp, y, ldy, live, e); break;
	case 1: block_rq(1, nv, K, a, lda, bp, y, ldy, live, e); break;
	default: break;
	}
}

static void cols_raw_1(int M, int K, const uint8_t *A, size_t lda, const int8_t *bp, int32_t *C,
		       size_t ldc, int live)
{
	cols_raw(1, M, K, A, lda, bp, C, ldc, live);
}

static void cols_raw_2(int M, int K, const uint8_t *A, size_t lda, const int8_t *bp, int32_t *C,
		       size_t ldc, int live)
{
	cols_raw(2, M, K, A, lda, bp, C, ldc, live);
}

static void cols_rq_1(int M, int K, const uint8_t *A, size_t lda, const int8_t *bp, uint8_t *Y,
		      size_t ldy, int live, const struct epi *e)
{
	cols_rq(1, M, K, A, lda, bp, Y, ldy, live, e);
}

static void cols_rq_2(int M, int K, const uint8_t *A, size_t lda, const int8_t *bp, uint8_t *Y,
		      size_t ldy, int live, const struct epi *e)
{
	cols_rq(2, M, K, A, lda, bp, Y, ldy, live, e);
}

/* C = A * B^T (int32), B packed by the function above. Column blocks
 * outermost so one block of B (32 x K bytes) stays in cache over all rows. */
void qt_qgemm_u8s8_8x32c4__avx512vnni(int M, int N, int K, const uint8_t *A, size_t lda,
				      const void *packed_B, int32_t *C, size_t ldc)
{
	assert(M >= 0 && N >= 0 && K >= 0 && K <= QT_QGEMM_MAX_K);
	size_t block = (size_t)NR * (((size_t)K + KR - 1) / KR * KR);
	const int8_t *bp = packed_B;
	for (int n0 = 0; n0 < N; n0 += NR, bp += block) {
		int live = N - n0 < NR ? N - n0 : NR;
		if (live <= 16)
			cols_raw_1(M, K, A, lda, bp, C + n0, ldc, live);
		else
			cols_raw_2(M, K, A, lda, bp, C + n0, ldc, live);
	}
}

/* Fused GEMM + zero-point correction + bias + requantization; see kernels.h. */
void qt_qgemm_requant_u8s8_8x32c4__avx512vnni(int M, int N, int K, const uint8_t *A,
					      size_t lda, const void *packed_B, int32_t za,
					      const int32_t *colsum, const int32_t *bias,
					      const struct qt_rq *rq, uint8_t *Y, size_t ldy)
{
	assert(M >= 0 && N >= 0 && K >= 0 && K <= QT_QGEMM_MAX_K);
	assert(za >= 0 && za <= 255 && qt_rq_valid(rq, N));
	size_t block = (size_t)NR * (((size_t)K + KR - 1) / KR * KR);
	const int8_t *bp = packed_B;
	struct epi e;
	e.lo = _mm512_set1_epi32(rq->qmin - rq->zo);
	e.hi = _mm512_set1_epi32(rq->qmax - rq->zo);
	e.zo = _mm512_set1_epi32(rq->zo);
	for (int n0 = 0; n0 < N; n0 += NR, bp += block) {
		int live = N - n0 < NR ? N - n0 : NR;
		int64_t d[NR], m[NR], r[NR], s[NR];
		for (int c = 0; c < NR; c++) {
			int n = n0 + c;
			int ch = rq->per_channel ? (c < live ? n : 0) : 0;
			d[c] = c < live ? (bias ? bias[n] : 0) - (colsum ? (int64_t)za * colsum[n] : 0) : 0;
			m[c] = rq->mult[ch];
			s[c] = rq->shift[ch];
			r[c] = (int64_t)1 << (s[c] - 1);
		}
		for (int v = 0; v < 4; v++) {
			e.d[v] = _mm512_loadu_si512(d + 8 * v);
			e.m[v] = _mm512_loadu_si512(m + 8 * v);
			e.r[v] = _mm512_loadu_si512(r + 8 * v);
			e.s[v] = _mm512_loadu_si512(s + 8 * v);
		}
		if (live <= 16)
			cols_rq_1(M, K, A, lda, bp, Y + n0, ldy, live, &e);
		else
			cols_rq_2(M, K, A, lda, bp, Y + n0, ldy, live, &e);
	}
}
