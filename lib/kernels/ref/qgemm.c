/*
 * Reference u8 x s8 GEMMs: the specification the optimized kernels are
 * tested against. Deliberately plain loops.
 *
 * Accumulators: |a * b| <= 255 * 128 = 32640 and K <= 65535, so every
 * int32 sum here is exact (65535 * 32640 < 2^31).
 */
#include <assert.h>
#include <string.h>

#include "kernels/kernels.h"

static void group_requant_packed(int M, int N, int K, int G, const uint8_t *A, size_t lda,
				 int32_t za, const void *packed_B, const int32_t *colsum_g,
				 const int32_t *ratio, const int64_t *bias64, const struct qt_rq *rq,
				 uint8_t *Y, size_t ldy)
{
	qt_qgemm_group_requant__ref(M, N, K, G, A, lda, za, packed_B, (size_t)K, colsum_g, ratio,
				    bias64, rq, Y, ldy);
}

const struct qt_qgemm_kernel qt_qgemm_u8s8_ref = {
	.name = "u8s8__ref",
	.isa = QT_ISA_REF,
	.mr = 1,
	.nr = 1,
	.kr = 1,
	.packed_size = qt_qgemm_packed_size_u8s8__ref,
	.pack = qt_qgemm_pack_u8s8__ref,
	.gemm = qt_qgemm_u8s8__ref,
	.gemm_requant = qt_qgemm_requant_u8s8__ref,
	.gemm_group_requant = group_requant_packed,
};

/* The reference layout is B itself, [N, K] with row stride K. */
size_t qt_qgemm_packed_size_u8s8__ref(int N, int K)
{
	assert(N >= 0 && K >= 0);
	return (size_t)N * (size_t)K;
}

/* Copy B ([N, K], row stride ldb) densely into packed; colsum_out[N]. */
void qt_qgemm_pack_u8s8__ref(int N, int K, const int8_t *B, size_t ldb, void *packed,
			     int32_t *colsum_out)
{
	assert(N >= 0 && K >= 0 && K <= QT_QGEMM_MAX_K);
	int8_t *dst = packed;
	for (int n = 0; n < N; n++)
		if (K > 0)
			memcpy(dst + (size_t)n * K, B + (size_t)n * ldb, (size_t)K);
	qt_colsum_s8__ref(N, K, B, ldb, colsum_out);
}

/* colsum_out[n] = sum_k B[n][k]; |sum| <= 128 * 65535 < 2^23. */
void qt_colsum_s8__ref(int N, int K, const int8_t *B, size_t ldb, int32_t *colsum_out)
{
	for (int n = 0; n < N; n++) {
		int32_t s = 0;
		for (int k = 0; k < K; k++)
			s += B[(size_t)n * ldb + k];
		colsum_out[n] = s;
	}
}

/* One dot product of row m and column n, exact in int32 (see top). */
static int32_t dot_u8s8(int K, const uint8_t *a, const int8_t *b)
{
	int32_t s = 0;
	for (int k = 0; k < K; k++)
		s += (int32_t)a[k] * (int32_t)b[k];
	return s;
}

/* C[m][n] = sum_k A[m][k] * B[n][k]; packed_B is [N, K] dense. */
void qt_qgemm_u8s8__ref(int M, int N, int K, const uint8_t *A, size_t lda, const void *packed_B,
			int32_t *C, size_t ldc)
{
	assert(M >= 0 && N >= 0 && K >= 0 && K <= QT_QGEMM_MAX_K);
	const int8_t *B = packed_B;
	for (int m = 0; m < M; m++)
		for (int n = 0; n < N; n++)
			C[(size_t)m * ldc + n] = dot_u8s8(K, A + (size_t)m * lda, B + (size_t)n * K);
}

/* GEMM, zero-point correction, bias and the rounding rule, per element. */
void qt_qgemm_requant_u8s8__ref(int M, int N, int K, const uint8_t *A, size_t lda,
				const void *packed_B, int32_t za, const int32_t *colsum,
				const int32_t *bias, const struct qt_rq *rq, uint8_t *Y, size_t ldy)
{
	assert(M >= 0 && N >= 0 && K >= 0 && K <= QT_QGEMM_MAX_K);
	assert(za >= 0 && za <= 255 && qt_rq_valid(rq, N));
	const int8_t *B = packed_B;
	for (int m = 0; m < M; m++) {
		for (int n = 0; n < N; n++) {
			int ch = rq->per_channel ? n : 0;
			int64_t v = dot_u8s8(K, A + (size_t)m * lda, B + (size_t)n * K);
			if (colsum)
				v -= (int64_t)za * colsum[n]; /* = sum (a - za) b, |.| < 2^31 */
			if (bias)
				v += bias[n]; /* |v| < 2^32: int64, then saturate */
			int64_t y = qt_rq_mulshift(qt_sat32(v), rq->mult[ch], rq->shift[ch]);
			Y[(size_t)m * ldy + n] = qt_rq_clamp(y, rq->zo, rq->qmin, rq->qmax);
		}
	}
}

/* Per-group column sums, channel-major [N, ceil(K / G)]. */
void qt_colsum_groups_s8__ref(int N, int K, int G, const int8_t *B, size_t ldb,
			      int32_t *colsum_g_out)
{
	assert(G >= 1);
	int ng = (K + G - 1) / G;
	for (int n = 0; n < N; n++) {
		for (int g = 0; g < ng; g++) {
			int k1 = (g + 1) * G < K ? (g + 1) * G : K;
			int32_t s = 0;
			for (int k = g * G; k < k1; k++)
				s += B[(size_t)n * ldb + k];
			colsum_g_out[(size_t)n * ng + g] = s;
		}
	}
}

/*
 * Grouped weights. Per group: acc_g = sum (a - za) b, exact in int32
 * (|acc_g| <= 32640 G). Combined in int64: sum_g acc_g r[n][g] + bias64[n],
 * |sum| <= 32640 * 65535 * 2^15 + 2^62 < 2^63. Then the rule on int64.
 */
void qt_qgemm_group_requant__ref(int M, int N, int K, int G, const uint8_t *A, size_t lda,
				 int32_t za, const int8_t *B, size_t ldb, const int32_t *colsum_g,
				 const int32_t *ratio, const int64_t *bias64,
				 const struct qt_rq *rq, uint8_t *Y, size_t ldy)
{
	assert(M >= 0 && N >= 0 && K >= 0 && K <= QT_QGEMM_MAX_K && G >= 1);
	assert(za >= 0 && za <= 255 && qt_rq_valid(rq, N));
	int ng = (K + G - 1) / G;
	for (int m = 0; m < M; m++) {
		const uint8_t *a = A + (size_t)m * lda;
		for (int n = 0; n < N; n++) {
			const int8_t *b = B + (size_t)n * ldb;
			int ch = rq->per_channel ? n : 0;
			int64_t s = bias64 ? bias64[n] : 0;
			assert(s <= ((int64_t)1 << 62) && s >= -((int64_t)1 << 62));
			for (int g = 0; g < ng; g++) {
				int k0 = g * G, k1 = k0 + G < K ? k0 + G : K;
				int32_t r = ratio[(size_t)n * ng + g];
				assert(r >= 0 && r <= QT_GROUP_MAX_RATIO);
				int64_t accg = dot_u8s8(k1 - k0, a + k0, b + k0) -
					       (int64_t)za * colsum_g[(size_t)n * ng + g];
				s += accg * r;
			}
			int32_t y = qt_rq_mulshift64(s, rq->mult[ch], rq->shift[ch]);
			Y[(size_t)m * ldy + n] = qt_rq_clamp(y, rq->zo, rq->qmin, rq->qmax);
		}
	}
}
