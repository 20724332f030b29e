/*
 * The FP32 runtime's use of OpenBLAS: which kernels it multiplies with (see
 * qtool/rt.h), and its products run on the runtime's pool with OpenBLAS at
 * one thread (ops.h).
 *
 * Debian's OpenBLAS is built with DYNAMIC_ARCH: its load-time constructor
 * picks a kernel set from the CPU's family and model. A model newer than the
 * library (bookworm's 0.3.21 on an Emerald Rapids Xeon, family 6 model 207)
 * is not in its table and gets the "Prescott" fallback: SSE3 kernels, about
 * 8x slower per core than the AVX-512 ones on the same CPU (sgemm 1024^3:
 * 8 against 60 GFLOP/s). The choice happens before main and only the
 * OPENBLAS_CORETYPE variable overrides it, so the library can only say
 * which core to ask for; a program sets the variable and starts again.
 */
#include <cblas.h>
#include <string.h>

#include "ops.h"
#include "pool.h"
#include "qtool/rt.h"

#define SGEMM_POOL_MIN   ((double)(1 << 22)) /* multiply-adds: below, one call on the caller */
#define SGEMM_SLICES     8                    /* row slices of a larger product ... */
#define SGEMM_SLICE_ROWS 32                   /* ... each a multiple of this many rows */

const char *qt_rt_blas_core(void)
{
	const char *c = openblas_get_corename();
	return c ? c : "unknown";
}

const char *qt_rt_blas_core_wanted(void)
{
	if (strcmp(qt_rt_blas_core(), "Prescott") != 0)
		return NULL; /* OpenBLAS knew this CPU: keep its choice */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	__builtin_cpu_init();
	/* The ISA each kernel set needs, as OpenBLAS checks it for these cores. */
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	    __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
	    __builtin_cpu_supports("avx512cd"))
		return "SkylakeX";
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return "Haswell";
#endif
	return NULL;
}

int qt_blas_single_begin(void)
{
	int n = openblas_get_num_threads();
	openblas_set_num_threads(1);
	return n;
}

void qt_blas_single_end(int saved)
{
	openblas_set_num_threads(saved);
}

struct sgemm_job {
	int ta, tb;
	int64_t M, N, K, mstep;
	float alpha, beta;
	const float *A, *B;
	float *C;
	int64_t lda, ldb, ldc;
};

static void sgemm_rows(void *ctx, int t, int64_t lo, int64_t hi)
{
	const struct sgemm_job *j = ctx;
	(void)t;
	for (int64_t it = lo; it < hi; it++) {
		int64_t m0 = it * j->mstep, rows = m0 + j->mstep < j->M ? j->mstep : j->M - m0;
		const float *a = j->A + (j->ta ? m0 : m0 * j->lda);
		cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans, j->tb ? CblasTrans : CblasNoTrans,
			    (int)rows, (int)j->N, (int)j->K, j->alpha, a, (int)j->lda, j->B, (int)j->ldb, j->beta,
			    j->C + m0 * j->ldc, (int)j->ldc);
	}
}

void qt_sgemm_pool(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
		   const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
	struct sgemm_job j = {ta, tb, M, N, K, M, alpha, beta, A, B, C, lda, ldb, ldc};
	if ((double)M * (double)N * (double)K >= SGEMM_POOL_MIN && M >= 2 * SGEMM_SLICE_ROWS) {
		int64_t step = (M + SGEMM_SLICES - 1) / SGEMM_SLICES;
		j.mstep = (step + SGEMM_SLICE_ROWS - 1) / SGEMM_SLICE_ROWS * SGEMM_SLICE_ROWS;
	}
	int saved = qt_blas_single_begin();
	qt_pool_for((M + j.mstep - 1) / j.mstep, qt_pool_threads(), sgemm_rows, &j);
	qt_blas_single_end(saved);
}
