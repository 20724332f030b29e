/*
 * u8 x s8 GEMM, 4 rows x 16 columns per tile, plain AVX2, exact.
 *
 * No vpmaddubsw: it adds two u8 * s8 products into a saturating int16
 * (255 * -128 * 2 = -65280 does not fit). Instead activations are widened to
 * int16 (zero extension) and weights are stored as int16 by the packing;
 * vpmaddwd then adds two int16 products into an int32 lane, each pair within
 * [-65280, 64770], and vpaddd accumulates. The int32 lanes hold
 * C[m][n] = sum_k a * b exactly for K <= 65535 (see kernels.h).
 *
 * Packed B: ceil(N / 16) column blocks of 16 (zero-padded columns), each
 * ceil(K / 2) groups of 64 bytes: column c's pair (B[n0 + c][2g],
 * B[n0 + c][2g + 1]) as two int16 at offset 4c (K padded with zeros). One ymm
 * load gives 8 columns x 2 k. The A side broadcasts one int16 pair per row.
 *
 * Requantization epilogue (bit-exact with qt_requant_q31__ref), per 4 lanes
 * in int64: v = C + (bias - za * colsum), saturate to int32 (compare +
 * blend), vpmuldq by m, + 2^(n-1), arithmetic shift by n emulated as
 * sign ^ ((v ^ sign) >>logical n) (= floor), clamp to [qmin - zo, qmax - zo],
 * + zo.
 */
#include <assert.h>
#include <immintrin.h>
#include <string.h>

#include "kernels/kernels.h"

#define MR 4
#define NR 16
#define KR 2
#define AI static inline __attribute__((always_inline))

/* Bytes of the packed form (int16 elements). */
size_t qt_qgemm_packed_size_u8s8_4x16c2__avx2(int N, int K)
{
	assert(N >= 0 && K >= 0);
	size_t nb = ((size_t)N + NR - 1) / NR, kp = ((size_t)K + KR - 1) / KR * KR;
	return nb * NR * kp * sizeof(int16_t);
}

/* Pack B ([N, K], row stride ldb) into the c2 int16 layout; colsum_out[N]. */
void qt_qgemm_pack_u8s8_4x16c2__avx2(int N, int K, const int8_t *B, size_t ldb, void *packed,
				     int32_t *colsum_out)
{
	assert(N >= 0 && K >= 0 && K <= QT_QGEMM_MAX_K);
	int16_t *dst = packed;
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

/* Lane mask (all ones) for the first `live` of 8 int32 lanes. */
AI __m256i lane_mask(int live)
{
	return _mm256_cmpgt_epi32(_mm256_set1_epi32(live), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/*
 * The tile: cI0 / cI1 = sum over k of A[I][k] * B[n0 + lane (+8)][k] for rows
 * I < mr and column halves < nv (nv = 1 when <= 8 live columns). Main loop:
 * 8 k per step; per row one 8-byte load widened to 8 int16 (4 pairs),
 * duplicated to both 128-bit lanes, and vpshufd broadcasts pair p.
 */
#define ROWS(X) X(0) X(1) X(2) X(3)
#define DECL(I)                                                                  \
	const uint8_t *a##I = A + (size_t)(I < mr ? I : 0) * lda;               \
	__m256i c##I##0 = _mm256_setzero_si256(), c##I##1 = _mm256_setzero_si256();
/* The empty asm keeps each accumulator a register updated in place: without
 * it GCC reassociates the four vpaddd per step into a tree of temporaries and
 * spills (only 16 ymm registers). */
#define MAC(I, VA)                                                                \
	if (I < mr) {                                                             \
		__m256i va_ = (VA);                                               \
		c##I##0 = _mm256_add_epi32(c##I##0, _mm256_madd_epi16(va_, b0));  \
		__asm__("" : "+x"(c##I##0));                                      \
		if (nv > 1) {                                                     \
			c##I##1 = _mm256_add_epi32(c##I##1, _mm256_madd_epi16(va_, b1)); \
			__asm__("" : "+x"(c##I##1));                              \
		}                                                                 \
	}
#define WIDEN(I)                                                                  \
	__m256i w##I = _mm256_setzero_si256();                                   \
	if (I < mr)                                                               \
		w##I = _mm256_broadcastsi128_si256(                               \
			_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(a##I + k))));
#define PAIR(P, IMM)                                                              \
	{                                                                         \
		__m256i b0 = _mm256_loadu_si256((const __m256i *)(bp + (P) * 32)); \
		__m256i b1 = nv > 1 ? _mm256_loadu_si256((const __m256i *)(bp + (P) * 32 + 16)) : b0; \
		MAC(0, _mm256_shuffle_epi32(w0, IMM))                             \
		MAC(1, _mm256_shuffle_epi32(w1, IMM))                             \
		MAC(2, _mm256_shuffle_epi32(w2, IMM))                             \
		MAC(3, _mm256_shuffle_epi32(w3, IMM))                             \
	}
#define TAILPAIR(I) MAC(I, _mm256_set1_epi32((int)pair_at(a##I, k, K)))
#define DOT_TILE()                                                                \
	ROWS(DECL)                                                                \
	int k = 0;                                                                \
	for (; k + 8 <= K; k += 8, bp += 4 * 2 * NR) {                            \
		ROWS(WIDEN)                                                       \
		PAIR(0, 0x00) PAIR(1, 0x55) PAIR(2, 0xaa) PAIR(3, 0xff)           \
	}                                                                         \
	for (; k < K; k += 2, bp += 2 * NR) { /* B is zero-padded past K */      \
		__m256i b0 = _mm256_loadu_si256((const __m256i *)bp);             \
		__m256i b1 = nv > 1 ? _mm256_loadu_si256((const __m256i *)(bp + 16)) : b0; \
		ROWS(TAILPAIR)                                                    \
	}

/* Activations k and k+1 of one row as an int16 pair; 0 past K. */
AI uint32_t pair_at(const uint8_t *a, int k, int K)
{
	return (uint32_t)a[k] | (k + 1 < K ? (uint32_t)a[k + 1] << 16 : 0);
}

AI void block_raw(const int mr, const int nv, int K, const uint8_t *A, size_t lda,
		  const int16_t *bp, int32_t *C, size_t ldc, int live)
{
	DOT_TILE()
	__m256i m0 = lane_mask(live), m1 = lane_mask(live - 8);
/* vpmaskmovd is slow on AMD: plain stores for full tiles. */
#define STORE_RAW(I)                                                                       \
	if (I < mr) {                                                                      \
		if (live == NR) {                                                          \
			_mm256_storeu_si256((__m256i *)(C + (size_t)I * ldc), c##I##0);    \
			_mm256_storeu_si256((__m256i *)(C + (size_t)I * ldc + 8), c##I##1); \
		} else {                                                                   \
			_mm256_maskstore_epi32((int *)(C + (size_t)I * ldc), m0, c##I##0); \
			if (nv > 1)                                                        \
				_mm256_maskstore_epi32((int *)(C + (size_t)I * ldc + 8), m1, c##I##1); \
		}                                                                          \
	}
	ROWS(STORE_RAW)
#undef STORE_RAW
}

/* Per-column-block epilogue constants (int64 lanes: 4 vectors of 4). */
struct epi {
	__m256i d[4]; /* bias - za * colsum */
	__m256i m[4]; /* multiplier */
	__m256i r[4]; /* 2^(n-1) */
	__m256i s[4]; /* n */
	__m256i lo, hi; /* int64: qmin - zo, qmax - zo */
	__m256i zo;     /* int32 */
};

/* 4 int64 lanes: saturate to int32, multiply, round, shift, clamp. */
AI __m256i requant4(__m256i v, const struct epi *e, int j)
{
	const __m256i i32max = _mm256_set1_epi64x(INT32_MAX), i32min = _mm256_set1_epi64x(INT32_MIN);
	v = _mm256_add_epi64(v, e->d[j]);
	v = _mm256_blendv_epi8(v, i32max, _mm256_cmpgt_epi64(v, i32max));
	v = _mm256_blendv_epi8(v, i32min, _mm256_cmpgt_epi64(i32min, v));
	v = _mm256_add_epi64(_mm256_mul_epi32(v, e->m[j]), e->r[j]); /* |.| < 2^63 */
	__m256i sign = _mm256_cmpgt_epi64(_mm256_setzero_si256(), v);
	v = _mm256_xor_si256(_mm256_srlv_epi64(_mm256_xor_si256(v, sign), e->s[j]), sign);
	v = _mm256_blendv_epi8(v, e->hi, _mm256_cmpgt_epi64(v, e->hi));
	v = _mm256_blendv_epi8(v, e->lo, _mm256_cmpgt_epi64(e->lo, v));
	return v;
}

/* 8 int32 accumulators (column half h) -> 8 int32 codes in [qmin, qmax]. */
AI __m256i requant8(__m256i acc, const struct epi *e, int h)
{
	__m256i l = requant4(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(acc)), e, 2 * h);
	__m256i u = requant4(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(acc, 1)), e, 2 * h + 1);
	/* low dwords of l and u, in order */
	__m256i v = _mm256_castps_si256(_mm256_shuffle_ps(_mm256_castsi256_ps(l),
							  _mm256_castsi256_ps(u),
							  _MM_SHUFFLE(2, 0, 2, 0)));
	v = _mm256_permute4x64_epi64(v, _MM_SHUFFLE(3, 1, 2, 0));
	return _mm256_add_epi32(v, e->zo);
}

/* Two vectors of 8 codes (int32 in [0, 255]) -> 16 bytes in column order. */
AI __m128i narrow16(__m256i v0, __m256i v1)
{
	__m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(v0, v1), _MM_SHUFFLE(3, 1, 2, 0));
	__m256i b = _mm256_packus_epi16(w, w);
	return _mm_unpacklo_epi64(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
}

AI void store_bytes(uint8_t *y, __m128i v, int live)
{
	if (live >= 16) {
		_mm_storeu_si128((__m128i *)y, v);
	} else {
		uint8_t tmp[16];
		_mm_storeu_si128((__m128i *)tmp, v);
		memcpy(y, tmp, (size_t)live);
	}
}

AI void block_rq(const int mr, const int nv, int K, const uint8_t *A, size_t lda,
		 const int16_t *bp, uint8_t *Y, size_t ldy, int live, const struct epi *e)
{
	DOT_TILE()
#define STORE_RQ(I)                                                                   \
	if (I < mr) {                                                                 \
		__m256i y0 = requant8(c##I##0, e, 0);                                  \
		__m256i y1 = nv > 1 ? requant8(c##I##1, e, 1) : y0;                    \
		store_bytes(Y + (size_t)I * ldy, narrow16(y0, y1), live);              \
	}
	ROWS(STORE_RQ)
#undef STORE_RQ
}

/* One column block over all rows; nv fixed. */
AI void cols_raw(const int nv, int M, int K, const uint8_t *A, size_t lda, const int16_t *bp,
		 int32_t *C, size_t ldc, int live)
{
	int m = 0;
	for (; m + MR <= M; m += MR)
		block_raw(MR, nv, K, A + (size_t)m * lda, lda, bp, C + (size_t)m * ldc, ldc, live);
	const uint8_t *a = A + (size_t)m * lda;
	int32_t *c = C + (size_t)m * ldc;
	switch (M - m) {
	case 3: block_raw(3, nv, K, a, lda, bp, c, ldc, live); break;
	case 2: block_raw(2, nv, K, a, lda, bp, c, ldc, live); break;
	case 1: block_raw(1, nv, K, a, lda, bp, c, ldc, live); break;
	default: break;
	}
}

AI void cols_rq(const int nv, int M, int K, const uint8_t *A, size_t lda, const int16_t *bp,
		uint8_t *Y, size_t ldy, int live, const struct epi *e)
{
	int m = 0;
	for (; m + MR <= M; m += MR)
		block_rq(MR, nv, K, A + (size_t)m * lda, lda, bp, Y + (size_t)m * ldy, ldy, live, e);
	const uint8_t *a = A + (size_t)m * lda;
	uint8_t *y = Y + (size_t)m * ldy;
	switch (M - m) {
	case 3: block_rq(3, nv, K, a, lda, bp, y, ldy, live, e); break;
	case 2: block_rq(2, nv, K, a, lda, bp, y, ldy, live, e); break;
	case 1: block_rq(1, nv, K, a, lda, bp, y, ldy, live, e); break;
	default: break;
	}
}

static void cols_raw_1(int M, int K, const uint8_t *A, size_t lda, const int16_t *bp, int32_t *C,
		       size_t ldc, int live)
{
	cols_raw(1, M, K, A, lda, bp, C, ldc, live);
}

static void cols_raw_2(int M, int K, const uint8_t *A, size_t lda, const int16_t *bp, int32_t *C,
		       size_t ldc, int live)
{
	cols_raw(2, M, K, A, lda, bp, C, ldc, live);
}

static void cols_rq_1(int M, int K, const uint8_t *A, size_t lda, const int16_t *bp, uint8_t *Y,
		      size_t ldy, int live, const struct epi *e)
{
	cols_rq(1, M, K, A, lda, bp, Y, ldy, live, e);
}

static void cols_rq_2(int M, int K, const uint8_t *A, size_t lda, const int16_t *bp, uint8_t *Y,
		      size_t ldy, int live, const struct epi *e)
{
	cols_rq(2, M, K, A, lda, bp, Y, ldy, live, e);
}

/* C = A * B^T (int32), B packed by the function above; column blocks
 * outermost so one block of B (16 x K int16) stays in cache over all rows. */
void qt_qgemm_u8s8_4x16c2__avx2(int M, int N, int K, const uint8_t *A, size_t lda,
				const void *packed_B, int32_t *C, size_t ldc)
{
	assert(M >= 0 && N >= 0 && K >= 0 && K <= QT_QGEMM_MAX_K);
	size_t block = (size_t)NR * (((size_t)K + KR - 1) / KR * KR);
	const int16_t *bp = packed_B;
	for (int n0 = 0; n0 < N; n0 += NR, bp += block) {
		int live = N - n0 < NR ? N - n0 : NR;
		if (live <= 8)
			cols_raw_1(M, K, A, lda, bp, C + n0, ldc, live);
		else
			cols_raw_2(M, K, A, lda, bp, C + n0, ldc, live);
	}
}

/* Fused GEMM + zero-point correction + bias + requantization; see kernels.h. */
void qt_qgemm_requant_u8s8_4x16c2__avx2(int M, int N, int K, const uint8_t *A, size_t lda,
					const void *packed_B, int32_t za, const int32_t *colsum,
					const int32_t *bias, const struct qt_rq *rq, uint8_t *Y,
					size_t ldy)
{
	assert(M >= 0 && N >= 0 && K >= 0 && K <= QT_QGEMM_MAX_K);
	assert(za >= 0 && za <= 255 && qt_rq_valid(rq, N));
	size_t block = (size_t)NR * (((size_t)K + KR - 1) / KR * KR);
	const int16_t *bp = packed_B;
	struct epi e;
	e.lo = _mm256_set1_epi64x(rq->qmin - rq->zo);
	e.hi = _mm256_set1_epi64x(rq->qmax - rq->zo);
	e.zo = _mm256_set1_epi32(rq->zo);
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
			e.d[v] = _mm256_loadu_si256((const __m256i *)(d + 4 * v));
			e.m[v] = _mm256_loadu_si256((const __m256i *)(m + 4 * v));
			e.r[v] = _mm256_loadu_si256((const __m256i *)(r + 4 * v));
			e.s[v] = _mm256_loadu_si256((const __m256i *)(s + 4 * v));
		}
		if (live <= 8)
			cols_rq_1(M, K, A, lda, bp, Y + n0, ldy, live, &e);
		else
			cols_rq_2(M, K, A, lda, bp, Y + n0, ldy, live, &e);
	}
}
