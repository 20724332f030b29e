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

/* ---------------------------------------------------------------------- */
/*
 * Grouped weights, on the same packed B. colsum_g and ratio are [N, ngroups]
 * (channel-major), so each group's 16 columns are fetched with one gather
 * (stride ngroups) per row block. Per group the int32 tile is
 * computed as above (groups need not align with the 4-deep packing: a quad
 * straddling a group boundary is split by reading only the group's bytes of
 * A; B is the same), corrected in int32 (acc_g - za * colsum_g, exact:
 * |.| <= 32640 G < 2^31), multiplied by the ratio in int64 (vpmuldq, both
 * factors fit int32) and added to int64 sums kept in L1 (a tile's 32 int64
 * vectors do not fit the register file). |sum| < 2^47, + bias64 < 2^63.
 *
 * The 64-bit rule floor((s * m + 2^(n-1)) / 2^n), exact, without 128-bit
 * lanes: s = sh 2^32 + sl (sh = s >> 32 signed, sl unsigned 32 bits),
 *   P = sh * m                       (vpmuldq, |P| < 2^62)
 *   Q = sl * m + 2^(n-1)             (vpmuludq, < 2^63 + 2^61, unsigned)
 *   T = P + (Q >> 32)                (s m + 2^(n-1) = T 2^32 + (Q mod 2^32))
 *   n >= 32: y = T >> (n - 32)       (arithmetic: floor)
 *   n <  32: y = T 2^(32-n) + ((Q mod 2^32) >> n), with T first clamped to
 *            [-2^31, 2^31]: beyond that y saturates either way
 * then saturate to int32 (vpmovsqd), clamp, + zo: = qt_rq_mulshift64.
 */

/* Bytes [from, to) of the quad at p into their lanes, others 0; reads only
 * those bytes (0 <= from < to <= 4). */
AI uint32_t load_range(const uint8_t *p, int from, int to)
{
	uint32_t w = 0;
	for (int i = from; i < to; i++)
		w |= (uint32_t)p[i] << (8 * i);
	return w;
}

/* Per-column-block constants of the 64-bit rule (8 int64 lanes each). */
struct gepi {
	__m512i m[4];     /* multiplier */
	__m512i half[4];  /* 2^(n-1) */
	__m512i sa[4];    /* n - 32 where n >= 32 */
	__m512i sb[4];    /* 32 - n where n < 32 */
	__m512i n[4];     /* n */
	__mmask8 big[4];  /* lanes with n >= 32 */
	__mmask8 live[4]; /* live columns */
	__m512i lo, hi;   /* int32: qmin - zo, qmax - zo */
	__m512i zo;       /* int32 */
};

/* 8 int64 sums -> 8 saturated int32 results of the rule. */
AI __m256i rule64x8(__m512i s, const struct gepi *e, int j)
{
	const __m512i low32 = _mm512_set1_epi64(0xffffffff);
	const __m512i tmin = _mm512_set1_epi64(-(INT64_C(1) << 31)), tmax = _mm512_set1_epi64(INT64_C(1) << 31);
	__m512i P = _mm512_mul_epi32(_mm512_srai_epi64(s, 32), e->m[j]);
	__m512i Q = _mm512_add_epi64(_mm512_mul_epu32(s, e->m[j]), e->half[j]);
	__m512i T = _mm512_add_epi64(P, _mm512_srli_epi64(Q, 32));
	__m512i ya = _mm512_srav_epi64(T, e->sa[j]);
	__m512i tc = _mm512_min_epi64(_mm512_max_epi64(T, tmin), tmax);
	__m512i yb = _mm512_add_epi64(_mm512_sllv_epi64(tc, e->sb[j]),
				      _mm512_srlv_epi64(_mm512_and_si512(Q, low32), e->n[j]));
	return _mm512_cvtsepi64_epi32(_mm512_mask_blend_epi64(e->big[j], yb, ya));
}

/* Two halves of 8 results -> 16 output codes. */
AI __m128i codes16(__m256i l, __m256i h, const struct gepi *e)
{
	__m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(l), h, 1);
	v = _mm512_min_epi32(_mm512_max_epi32(v, e->lo), e->hi);
	return _mm512_cvtepi32_epi8(_mm512_add_epi32(v, e->zo));
}

#define STEP_AT(I)                                                               \
	{                                                                        \
		uint32_t w = 0;                                                  \
		if (I < mr)                                                      \
			memcpy(&w, a##I + q, 4);                                 \
		STEP(I, w)                                                       \
	}
#define STEP_RANGE(I)                                                            \
	{                                                                        \
		uint32_t w = I < mr ? load_range(a##I + q, from, to) : 0;        \
		STEP(I, w)                                                       \
	}
#define QUAD_B()                                                                 \
	__m512i b0 = _mm512_loadu_si512(bp);                                     \
	__m512i b1 = nv > 1 ? _mm512_loadu_si512(bp + 64) : b0;

AI void block_group(const int mr, const int nv, int K, int G, const uint8_t *A, size_t lda,
		    const int8_t *bp0, uint8_t *Y, size_t ldy, int live, int ng, int32_t za,
		    const int32_t *colsum_g, const int32_t *ratio, const __m512i bias[4],
		    const struct gepi *e)
{
	const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
	const __m512i idx0 = _mm512_mullo_epi32(lane, _mm512_set1_epi32(ng));
	const __m512i idx1 = _mm512_add_epi32(idx0, _mm512_set1_epi32(16 * ng));
	__m512i s64[MR][4];
	for (int i = 0; i < MR; i++)
		for (int j = 0; j < 4; j++)
			s64[i][j] = _mm512_setzero_si512();
	__mmask16 m0 = half_mask(live), m1 = half_mask(live - 16);
	const __m512i vza = _mm512_set1_epi32(za);
	for (int k0 = 0, g = 0; k0 < K; k0 += G, g++) {
		int k1 = K - k0 > G ? k0 + G : K;
		ROWS(DECL)
		int q = k0 & ~(KR - 1);
		const int8_t *bp = bp0 + (size_t)q * NR;
		if (q < k0) { /* group starts inside a quad */
			int from = k0 - q, to = k1 - q < KR ? k1 - q : KR;
			QUAD_B()
			ROWS(STEP_RANGE)
			q += KR, bp += NR * KR;
		}
		for (; q + KR <= k1; q += KR, bp += NR * KR) {
			QUAD_B()
			ROWS(STEP_AT)
		}
		if (q < k1) { /* group ends inside a quad */
			int from = 0, to = k1 - q;
			QUAD_B()
			ROWS(STEP_RANGE)
		}
		/* combine: s += (acc_g - za * colsum_g) * r, per column */
		const __m512i z = _mm512_setzero_si512();
		const int32_t *cg = colsum_g + g, *rg = ratio + g;
		__m512i zc0 = _mm512_mullo_epi32(vza, _mm512_mask_i32gather_epi32(z, m0, idx0, cg, 4));
		__m512i r0 = _mm512_mask_i32gather_epi32(z, m0, idx0, rg, 4), r1 = z, zc1 = z;
		if (nv > 1) {
			zc1 = _mm512_mullo_epi32(vza, _mm512_mask_i32gather_epi32(z, m1, idx1, cg, 4));
			r1 = _mm512_mask_i32gather_epi32(z, m1, idx1, rg, 4);
		}
		__m512i r00 = _mm512_cvtepu32_epi64(_mm512_castsi512_si256(r0));
		__m512i r01 = _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(r0, 1));
		__m512i r10 = _mm512_cvtepu32_epi64(_mm512_castsi512_si256(r1));
		__m512i r11 = _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(r1, 1));
#define COMBINE(I)                                                                           \
	if (I < mr) {                                                                        \
		__m512i d = _mm512_sub_epi32(c##I##0, zc0);                                  \
		s64[I][0] = _mm512_add_epi64(s64[I][0], _mm512_mul_epi32(                    \
			_mm512_cvtepi32_epi64(_mm512_castsi512_si256(d)), r00));             \
		s64[I][1] = _mm512_add_epi64(s64[I][1], _mm512_mul_epi32(                    \
			_mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(d, 1)), r01));       \
		if (nv > 1) {                                                                \
			d = _mm512_sub_epi32(c##I##1, zc1);                                  \
			s64[I][2] = _mm512_add_epi64(s64[I][2], _mm512_mul_epi32(            \
				_mm512_cvtepi32_epi64(_mm512_castsi512_si256(d)), r10));     \
			s64[I][3] = _mm512_add_epi64(s64[I][3], _mm512_mul_epi32(            \
				_mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(d, 1)), r11)); \
		}                                                                            \
	}
		ROWS(COMBINE)
#undef COMBINE
	}
	for (int i = 0; i < mr; i++) {
		uint8_t *y = Y + (size_t)i * ldy;
		__m128i v0 = codes16(rule64x8(_mm512_add_epi64(s64[i][0], bias[0]), e, 0),
				     rule64x8(_mm512_add_epi64(s64[i][1], bias[1]), e, 1), e);
		if (live == NR)
			_mm_storeu_si128((__m128i *)y, v0);
		else
			_mm_mask_storeu_epi8(y, m0, v0);
		if (nv > 1) {
			__m128i v1 = codes16(rule64x8(_mm512_add_epi64(s64[i][2], bias[2]), e, 2),
					     rule64x8(_mm512_add_epi64(s64[i][3], bias[3]), e, 3), e);
			if (live == NR)
				_mm_storeu_si128((__m128i *)(y + 16), v1);
			else
				_mm_mask_storeu_epi8(y + 16, m1, v1);
		}
	}
}

AI void cols_group(const int nv, int M, int K, int G, const uint8_t *A, size_t lda,
		   const int8_t *bp, uint8_t *Y, size_t ldy, int live, int ng, int32_t za,
		   const int32_t *colsum_g, const int32_t *ratio, const __m512i bias[4],
		   const struct gepi *e)
{
	int m = 0;
	for (; m + MR <= M; m += MR)
		block_group(MR, nv, K, G, A + (size_t)m * lda, lda, bp, Y + (size_t)m * ldy, ldy, live,
			    ng, za, colsum_g, ratio, bias, e);
	const uint8_t *a = A + (size_t)m * lda;
	uint8_t *y = Y + (size_t)m * ldy;
#define TAIL(R)                                                                                \
	case R:                                                                                \
		block_group(R, nv, K, G, a, lda, bp, y, ldy, live, ng, za, colsum_g, ratio, bias, e); \
		break;
	switch (M - m) {
		TAIL(7) TAIL(6) TAIL(5) TAIL(4) TAIL(3) TAIL(2) TAIL(1)
	default: break;
	}
#undef TAIL
}

static void cols_group_1(int M, int K, int G, const uint8_t *A, size_t lda, const int8_t *bp,
			 uint8_t *Y, size_t ldy, int live, int ng, int32_t za, const int32_t *colsum_g,
			 const int32_t *ratio, const __m512i bias[4], const struct gepi *e)
{
	cols_group(1, M, K, G, A, lda, bp, Y, ldy, live, ng, za, colsum_g, ratio, bias, e);
}

static void cols_group_2(int M, int K, int G, const uint8_t *A, size_t lda, const int8_t *bp,
			 uint8_t *Y, size_t ldy, int live, int ng, int32_t za, const int32_t *colsum_g,
			 const int32_t *ratio, const __m512i bias[4], const struct gepi *e)
{
	cols_group(2, M, K, G, A, lda, bp, Y, ldy, live, ng, za, colsum_g, ratio, bias, e);
}

/* Grouped-weight GEMM + requantization (qt_qgemm_group_requant_fn) on this
 * kernel's packed B; bit-exact with qt_qgemm_group_requant__ref. */
void qt_qgemm_group_requant_u8s8_8x32c4__avx512vnni(int M, int N, int K, int G, const uint8_t *A,
						    size_t lda, int32_t za, const void *packed_B,
						    const int32_t *colsum_g, const int32_t *ratio,
						    const int64_t *bias64, const struct qt_rq *rq,
						    uint8_t *Y, size_t ldy)
{
	assert(M >= 0 && N >= 0 && K >= 0 && K <= QT_QGEMM_MAX_K && G >= 1);
	assert(za >= 0 && za <= 255 && qt_rq_valid(rq, N));
	size_t block = (size_t)NR * (((size_t)K + KR - 1) / KR * KR);
	const int8_t *bp = packed_B;
	int ng = (K + G - 1) / G;
	struct gepi e;
	e.lo = _mm512_set1_epi32(rq->qmin - rq->zo);
	e.hi = _mm512_set1_epi32(rq->qmax - rq->zo);
	e.zo = _mm512_set1_epi32(rq->zo);
	for (int n0 = 0; n0 < N; n0 += NR, bp += block) {
		int live = N - n0 < NR ? N - n0 : NR;
		int64_t m[NR], half[NR], sa[NR], sb[NR], n[NR];
		__m512i bias[4];
		for (int c = 0; c < NR; c++) {
			int ch = rq->per_channel ? (c < live ? n0 + c : 0) : 0;
			m[c] = rq->mult[ch];
			n[c] = rq->shift[ch];
			half[c] = (int64_t)1 << (n[c] - 1);
			sa[c] = n[c] >= 32 ? n[c] - 32 : 0;
			sb[c] = n[c] < 32 ? 32 - n[c] : 0;
		}
		for (int v = 0; v < 4; v++) {
			int lv = live - 8 * v;
			e.live[v] = lv >= 8 ? 0xff : lv <= 0 ? 0 : (__mmask8)((1u << lv) - 1);
			e.m[v] = _mm512_loadu_si512(m + 8 * v);
			e.half[v] = _mm512_loadu_si512(half + 8 * v);
			e.sa[v] = _mm512_loadu_si512(sa + 8 * v);
			e.sb[v] = _mm512_loadu_si512(sb + 8 * v);
			e.n[v] = _mm512_loadu_si512(n + 8 * v);
			e.big[v] = _mm512_cmpge_epi64_mask(e.n[v], _mm512_set1_epi64(32));
			bias[v] = bias64 ? _mm512_maskz_loadu_epi64(e.live[v], bias64 + n0 + 8 * v)
					 : _mm512_setzero_si512();
		}
		size_t off = (size_t)n0 * (size_t)ng;
		if (live <= 16)
			cols_group_1(M, K, G, A, lda, bp, Y + n0, ldy, live, ng, za, colsum_g + off,
				     ratio + off, bias, &e);
		else
			cols_group_2(M, K, G, A, lda, bp, Y + n0, ldy, live, ng, za, colsum_g + off,
				     ratio + off, bias, &e);
	}
}
