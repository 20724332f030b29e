/*
 * FP32 kernels for Gemm and MatMul (see ops.h for the contract).
 *
 * Both map onto OpenBLAS cblas_sgemm, which accumulates in float; its
 * summation order is OpenBLAS's, so results differ from a naive loop in the
 * last bits (well inside the rtol 1e-3 / atol 1e-5 of the conformance data).
 * Float32 only: other dtypes are refused with QT_E_UNSUPPORTED.
 */
#include <cblas.h>
#include <limits.h>
#include <string.h>

#include "ops.h"
#include "pool.h"
#include "qtool/quant.h"

#define BMM_POOL_MIN ((double)(1 << 22)) /* multiply-adds of a batched MatMul: below, one thread */

static enum qt_status need_f32(const struct qt_op_args *a, const struct qt_tensor *t, const char *what)
{
	if (!t)
		return qt_op_error(a, QT_E_FORMAT, "required input %s is missing", what);
	if (t->dtype != QT_DTYPE_F32)
		return qt_op_error(a, QT_E_UNSUPPORTED, "input %s is %s; only float32 is supported", what,
				   qt_dtype_name(t->dtype));
	return QT_OK;
}

/* cblas takes int sizes: refuse what does not fit rather than truncate. */
static int blas_fits(int64_t m, int64_t n, int64_t k)
{
	return m <= INT_MAX && n <= INT_MAX && k <= INT_MAX;
}

static int imax1(int64_t v)
{
	return v > 1 ? (int)v : 1;
}

/*
 * Gemm: Y = alpha * A' * B' + beta * C, with A' = transA ? A^T : A (M x K),
 * B' = transB ? B^T : B (K x N) and C (optional since opset 11)
 * unidirectionally broadcast to (M, N). Opset < 7's `broadcast` attribute is
 * accepted and ignored: broadcasting C is a superset of both behaviours.
 */
static enum qt_status op_gemm(const struct qt_op_args *a)
{
	const struct qt_tensor *A = qt_op_in(a, 0), *B = qt_op_in(a, 1), *C = qt_op_in(a, 2);
	enum qt_status st;
	char s1[96], s2[96];
	if ((st = need_f32(a, A, "A")) || (st = need_f32(a, B, "B")) || (C && (st = need_f32(a, C, "C"))))
		return st;
	if (A->rank != 2 || B->rank != 2)
		return qt_op_error(a, QT_E_FORMAT, "A and B must be matrices, not %s and %s",
				   qt_shape_str(s1, sizeof s1, A->rank, A->dims),
				   qt_shape_str(s2, sizeof s2, B->rank, B->dims));
	int ta = qt_node_attr_int(a->node, "transA", 0) != 0;
	int tb = qt_node_attr_int(a->node, "transB", 0) != 0;
	float alpha = qt_node_attr_float(a->node, "alpha", 1.0f);
	float beta = qt_node_attr_float(a->node, "beta", 1.0f);
	int64_t M = ta ? A->dims[1] : A->dims[0], K = ta ? A->dims[0] : A->dims[1];
	int64_t K2 = tb ? B->dims[1] : B->dims[0], N = tb ? B->dims[0] : B->dims[1];
	if (K != K2)
		return qt_op_error(a, QT_E_FORMAT, "A%s %s gives K=%lld but B%s %s gives K=%lld", ta ? "^T" : "",
				   qt_shape_str(s1, sizeof s1, A->rank, A->dims), (long long)K, tb ? "^T" : "",
				   qt_shape_str(s2, sizeof s2, B->rank, B->dims), (long long)K2);
	if (!blas_fits(M, N, K))
		return qt_op_error(a, QT_E_UNSUPPORTED, "matrix dimensions M=%lld N=%lld K=%lld exceed int range",
				   (long long)M, (long long)N, (long long)K);
	int64_t cs[2] = {0, 0};
	if (C) {
		int64_t yd[2] = {M, N};
		if (C->rank > 2)
			return qt_op_error(a, QT_E_FORMAT, "C must have rank <= 2, not %d", C->rank);
		for (int i = 0; i < C->rank; i++) {
			int64_t cd = C->dims[i], want = yd[2 - C->rank + i];
			if (cd != 1 && cd != want)
				return qt_op_error(a, QT_E_FORMAT, "C %s cannot be broadcast to (M, N) = [%lld,%lld]",
						   qt_shape_str(s1, sizeof s1, C->rank, C->dims), (long long)M,
						   (long long)N);
		}
		qt_broadcast_strides(C->rank, C->dims, 2, yd, cs);
	}
	int64_t yd[2] = {M, N};
	if ((st = qt_tensor_alloc(&a->out[0], QT_DTYPE_F32, 2, yd)))
		return qt_op_error(a, st, "output Y: %s", qt_error_msg());
	float *y = a->out[0].data;
	if (M == 0 || N == 0)
		return QT_OK;
	float ybeta = 0.0f;
	if (C && beta != 0.0f) {
		const float *c = C->data;
		for (int64_t i = 0; i < M; i++)
			for (int64_t j = 0; j < N; j++)
				y[i * N + j] = c[i * cs[0] + j * cs[1]];
		ybeta = beta;
	}
	if (K == 0) {
		/* No product term; BLAS rejects lda < 1, so scale by hand. */
		for (int64_t i = 0; i < M * N; i++)
			y[i] *= ybeta;
		return QT_OK;
	}
	qt_sgemm_pool(ta, tb, M, N, K, alpha, A->data, imax1(A->dims[1]), B->data, imax1(B->dims[1]), ybeta, y, N);
	return QT_OK;
}

struct bmm_job {
	const float *a, *b;
	float *y;
	int64_t M, N, K;
	int rbat;
	int64_t bat[QT_MAX_RANK], sa[QT_MAX_RANK], sb[QT_MAX_RANK];
};

/* Batches [lo, hi) of a broadcast batched MatMul, each one sgemm. */
static void bmm_part(void *ctx, int t, int64_t lo, int64_t hi)
{
	const struct bmm_job *j = ctx;
	(void)t;
	for (int64_t bi = lo; bi < hi; bi++) {
		int64_t oa = 0, ob = 0, rem = bi;
		for (int d = j->rbat - 1; d >= 0; d--) {
			int64_t i = rem % j->bat[d];
			rem /= j->bat[d];
			oa += i * j->sa[d];
			ob += i * j->sb[d];
		}
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)j->M, (int)j->N, (int)j->K, 1.0f,
			    j->a + oa * j->M * j->K, (int)j->K, j->b + ob * j->K * j->N, (int)j->N, 0.0f,
			    j->y + bi * j->M * j->N, (int)j->N);
	}
}

/*
 * MatMul with numpy semantics: a 1-D A is a row vector and a 1-D B a column
 * vector (the added dimension is removed from the result); leading batch
 * dimensions broadcast. When B has no batch (the common "linear layer" case)
 * the whole batch of A is one product (qt_sgemm_pool).
 */
static enum qt_status op_matmul(const struct qt_op_args *a)
{
	const struct qt_tensor *A = qt_op_in(a, 0), *B = qt_op_in(a, 1);
	enum qt_status st;
	char s1[96], s2[96];
	if ((st = need_f32(a, A, "A")) || (st = need_f32(a, B, "B")))
		return st;
	if (A->rank < 1 || B->rank < 1)
		return qt_op_error(a, QT_E_FORMAT, "MatMul inputs must have rank >= 1, not %d and %d", A->rank,
				   B->rank);
	int64_t M = A->rank >= 2 ? A->dims[A->rank - 2] : 1, K = A->dims[A->rank - 1];
	int64_t K2 = B->rank >= 2 ? B->dims[B->rank - 2] : B->dims[0], N = B->rank >= 2 ? B->dims[B->rank - 1] : 1;
	if (K != K2)
		return qt_op_error(a, QT_E_FORMAT, "A %s has %lld columns but B %s has %lld rows",
				   qt_shape_str(s1, sizeof s1, A->rank, A->dims), (long long)K,
				   qt_shape_str(s2, sizeof s2, B->rank, B->dims), (long long)K2);
	int ra = A->rank >= 2 ? A->rank - 2 : 0, rb = B->rank >= 2 ? B->rank - 2 : 0, rbat;
	int64_t bat[QT_MAX_RANK];
	if (qt_broadcast_shape(ra, A->dims, rb, B->dims, &rbat, bat))
		return qt_op_error(a, QT_E_FORMAT, "batch dimensions of A %s and B %s do not broadcast",
				   qt_shape_str(s1, sizeof s1, A->rank, A->dims),
				   qt_shape_str(s2, sizeof s2, B->rank, B->dims));
	int64_t yd[QT_MAX_RANK + 2];
	int ry = 0;
	for (int i = 0; i < rbat; i++)
		yd[ry++] = bat[i];
	if (A->rank >= 2)
		yd[ry++] = M;
	if (B->rank >= 2)
		yd[ry++] = N;
	if (ry > QT_MAX_RANK)
		return qt_op_error(a, QT_E_UNSUPPORTED, "output rank %d exceeds %d", ry, QT_MAX_RANK);
	if ((st = qt_tensor_alloc(&a->out[0], QT_DTYPE_F32, ry, yd)))
		return qt_op_error(a, st, "output Y: %s", qt_error_msg());
	int64_t nbat = 1, nbat_b = 1;
	for (int i = 0; i < rbat; i++)
		nbat *= bat[i];
	for (int i = 0; i < rb; i++)
		nbat_b *= B->dims[i];
	if (nbat == 0 || M == 0 || N == 0 || K == 0)
		return QT_OK; /* empty, or an empty sum: the zero-filled output is the answer */
	const float *pa = A->data, *pb = B->data;
	float *py = a->out[0].data;
	if (nbat_b == 1) {
		/* B is shared by every batch: A's batches are consecutive rows. */
		if (!blas_fits(nbat * M, N, K))
			return qt_op_error(a, QT_E_UNSUPPORTED, "matrix dimensions exceed int range");
		qt_sgemm_pool(0, 0, nbat * M, N, K, 1.0f, pa, K, pb, N, 0.0f, py, N);
		return QT_OK;
	}
	if (!blas_fits(M, N, K))
		return qt_op_error(a, QT_E_UNSUPPORTED, "matrix dimensions exceed int range");
	/* Strides counted in whole matrices; broadcast batch dims get 0. */
	struct bmm_job j = {pa, pb, py, M, N, K, rbat, {0}, {0}, {0}};
	memcpy(j.bat, bat, sizeof j.bat);
	qt_broadcast_strides(ra, A->dims, rbat, bat, j.sa);
	qt_broadcast_strides(rb, B->dims, rbat, bat, j.sb);
	/* One single-threaded sgemm per batch, the batches over the pool when
	 * there is enough work (attention's per-head products). */
	int big = (double)nbat * (double)M * (double)N * (double)K >= BMM_POOL_MIN;
	int saved = qt_blas_single_begin();
	qt_pool_for(nbat, big ? qt_pool_threads() : 1, bmm_part, &j);
	qt_blas_single_end(saved);
	return QT_OK;
}

/*
 * ai.qtool MatMulBias(A, B, bias): MatMul(A, B) with B 2-D, plus bias [N]
 * (any shape [1, .., 1, N]) added to every row (see qtool/quant.h).
 */
static enum qt_status op_matmul_bias(const struct qt_op_args *a)
{
	const struct qt_tensor *B = qt_op_in(a, 1), *bias = qt_op_in(a, 2);
	enum qt_status st;
	if (!B || !bias)
		return qt_op_error(a, QT_E_FORMAT, "MatMulBias needs inputs A, B and bias");
	if ((st = need_f32(a, bias, "bias")))
		return st;
	if (B->rank != 2)
		return qt_op_error(a, QT_E_FORMAT, "MatMulBias needs a 2-D B, not rank %d", B->rank);
	int64_t N = B->dims[1];
	if (qt_tensor_numel(bias) != N || (bias->rank > 0 && bias->dims[bias->rank - 1] != N))
		return qt_op_error(a, QT_E_FORMAT, "bias must have %lld elements along its last axis", (long long)N);
	if ((st = op_matmul(a)))
		return st;
	float *y = a->out[0].data;
	const float *bd = bias->data;
	int64_t rows = N ? qt_tensor_numel(&a->out[0]) / N : 0;
	for (int64_t r = 0; r < rows; r++)
		for (int64_t j = 0; j < N; j++)
			y[r * N + j] += bd[j];
	return QT_OK;
}

/* Registered in ops.c (see ops.h). */
const struct qt_op_entry qt_ops_linalg[] = {
	{"Gemm", 1, op_gemm},
	{"MatMul", 1, op_matmul},
	{NULL, 0, NULL},
};

const struct qt_op_entry qt_ops_qtool[] = {
	{"MatMulBias", 1, op_matmul_bias},
	{"FakeQuant", 1, qt_op_fake_quant},
	{QT_OP_LAYERNORM, 1, qt_op_layernorm},
	{NULL, 0, NULL},
};
