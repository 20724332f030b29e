/*
 * The FP32 target of the sequential mode (quant_int.h, qt_fp32_target).
 *
 * In sequential mode a layer reads x_q, the input the partly quantized
 * model gives it, where the FP32 model gives x_fp. GPTQ and AdaRound
 * minimise (w - q) A (w - q)^T with A = sum x_q x_q^T: the error against
 * w x_q, the FP32 weights on the quantized inputs, so the error the earlier
 * layers pass on is never corrected, only not made worse. The error that
 * matters is against the FP32 model's output:
 *   sum_rows (w x_fp - q x_q)^2 = (q - w') A (q - w')^T + const,
 *   B = sum x_q x_fp^T,  w' = w B^T A^-1,
 * so the methods run unchanged on the target rows w' instead of w. A is
 * damped like GPTQ's H (damp * mean diag A added to the diagonal), which
 * also gives an input the quantized model never excites (A_ii = 0, and then
 * B's row i = 0) a target weight of 0.
 *
 * Float: A, B, the factorisation and the product in double; w' is rounded
 * to float once. BLAS runs with the caller's thread count (the data engine
 * holds it at 1, so the result does not depend on the machine).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "quant/gptq.h"
#include "quant/quant_int.h"

enum qt_status qt_fp32_target(const float *W, int64_t rows, int64_t K, const double *A, const double *B, double damp,
			      float *Wt_out)
{
	memcpy(Wt_out, W, (size_t)rows * K * sizeof *Wt_out);
	double mean = 0;
	for (int64_t k = 0; k < K; k++)
		mean += A[k * K + k];
	mean /= (double)K;
	if (!(mean > 0) || !isfinite(mean))
		return QT_OK; /* no input at all: keep w */
	double *M = malloc((size_t)K * K * sizeof *M), *Z = malloc((size_t)K * K * sizeof *Z);
	double *Wd = malloc((size_t)rows * K * sizeof *Wd), *T = malloc((size_t)rows * K * sizeof *T);
	if (!M || !Z || !Wd || !T) {
		free(M), free(Z), free(Wd), free(T);
		return qt_error(QT_E_NOMEM, "out of memory for a %lld x %lld FP32 target", (long long)K, (long long)K);
	}
	memcpy(M, A, (size_t)K * K * sizeof *M);
	for (int64_t k = 0; k < K; k++)
		M[k * K + k] += (damp > 0 ? damp : 0.01) * mean;
	if (qt_chol_lower(M, K, K, 128) < 0) {
		/* Z = A^-1 B by two triangular solves with the factor L L^T. */
		memcpy(Z, B, (size_t)K * K * sizeof *Z);
		cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, (int)K, (int)K, 1.0, M,
			    (int)K, Z, (int)K);
		cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, (int)K, (int)K, 1.0, M,
			    (int)K, Z, (int)K);
		for (int64_t i = 0; i < rows * K; i++)
			Wd[i] = W[i];
		/* w' = w Z^T, row by row. */
		cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)K, (int)K, 1.0, Wd, (int)K, Z,
			    (int)K, 0.0, T, (int)K);
		int ok = 1;
		for (int64_t i = 0; i < rows * K && ok; i++)
			ok = isfinite(T[i]) && fabs(T[i]) < 3.0e38;
		if (ok)
			for (int64_t i = 0; i < rows * K; i++)
				Wt_out[i] = (float)T[i];
	}
	/* A that stays singular after damping (or a non-finite target):
	 * keep w, the plain sequential objective. */
	free(M), free(Z), free(Wd), free(T);
	return QT_OK;
}
