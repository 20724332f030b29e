/*
 * GPTQ for one weight matrix on a fixed grid (gptq.h).
 *
 * The method. Columns are quantized one at a time, in order (or in
 * activation order: descending diag(H)); the error of each is pushed onto
 * the columns not yet quantized so that the layer output error
 * (W - Q) H (W - Q)^T is small rather than the weight error. GPTQ writes the
 * push with U, the upper Cholesky factor of H^-1 (H^-1 = U^T U): after
 * column j, w[j+1:] -= (w_j - q_j) / U_jj * U[j, j+1:], with w the running
 * (already corrected) weights.
 *
 * The form used here needs no inverse. Let V = U^-1: it is upper triangular
 * with H = V V^T, i.e. a Cholesky factor of H taken in reversed index order,
 * and U_jj = 1 / V_jj. Writing d = w0 - q (original weights minus the
 * quantized values) and e_j = (w_j - q_j) / U_jj, GPTQ's updates give
 * w0 - q = e U, so e = d V, and the running weight of column j is
 *     w_j = w0_j + (sum_{i<j} d_i V_ij) / V_jj.
 * So it takes one Cholesky factorisation (K^3 / 3 flops) instead of a
 * factorisation, an inverse and a second factorisation, and the same
 * C K^2 flops of lazy updates: per block of columns [i1, i2), the sums
 * A_j = sum_{i<j} d_i V_ij of the columns j >= i2 get D[:, i1:i2] V[i1:i2, j]
 * in one GEMM, and only inside a block are they updated column by column.
 * The output error is free: sum_j e_j^2 = d H d^T, e_j = A_j + d_j V_jj.
 *
 * H is prepared in place: the lower triangle mirrored to the upper; dead
 * columns (H_jj == 0: an input that was always 0) get H_jj = 1 and weight
 * 0; rows and columns permuted by the column order reversed, so that a
 * standard lower Cholesky factor of the result, rotated by 180 degrees (the
 * flat array reversed), is V. Damping adds damp * mean(diag H) to the
 * diagonal; if the factorisation meets a pivot <= 0, the lower triangle is
 * restored from the untouched upper one and the damping grows 10x.
 *
 * Rounding: code_j = clamp(nearbyint(w_j / scale), qmin, qmax), ties to even,
 * computed in float (qt_quantize_small_range, the runtime's rule) on w_j rounded to
 * float; on a number format's grid, w_j / scale to the nearest element
 * (qt_wgrid_code), and d_j = w_j - scale * element: GPTQ needs nothing but
 * "round this column" and "its value", so every format takes it unchanged. Float use: the weights, the differences d, the sums A and their
 * updates (in-block loop and SGEMM) are float; H, its factorisation, V_jj,
 * the division A_j / V_jj and the error sums are double.
 *
 * Determinism: every BLAS call here (DTRSM and DSYRK in the Cholesky, SGEMM
 * for the lazy update) has an inner dimension of at most one block (<= 128
 * by default), which OpenBLAS does not split or re-block by thread count;
 * the diagonal blocks, the in-block updates and every reduction are plain
 * loops in a fixed order. The codes are byte-identical across
 * OPENBLAS_NUM_THREADS (the unit tests check 1 and 2). OpenBLAS's own dpotrf
 * is not used because it blocks differently with one thread than with more.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "quant/gptq.h"
#include "quant/qround.h"

#define NAME(o) ((o) && (o)->name ? (o)->name : "weight")

/* Lower Cholesky factor of the n x n row-major A (leading dimension lda),
 * in place in its lower triangle; the strict upper triangle is not touched.
 * Right-looking in blocks of nb: diagonal block by plain loops, panel by
 * DTRSM, trailing matrix by a rank-nb DSYRK. Returns -1, or the index of the
 * first pivot that is not > 0 (or not finite). */
int64_t qt_chol_lower(double *A, int64_t n, int64_t lda, int64_t nb)
{
	for (int64_t k0 = 0; k0 < n; k0 += nb) {
		int64_t b = n - k0 < nb ? n - k0 : nb;
		double *A11 = A + k0 * lda + k0;
		for (int64_t j = 0; j < b; j++) {
			double *rj = A11 + j * lda;
			double s = rj[j];
			for (int64_t k = 0; k < j; k++)
				s -= rj[k] * rj[k];
			if (!(s > 0) || !isfinite(s))
				return k0 + j;
			double l = sqrt(s);
			rj[j] = l;
			for (int64_t i = j + 1; i < b; i++) {
				double *ri = A11 + i * lda;
				double t = ri[j];
				for (int64_t k = 0; k < j; k++)
					t -= ri[k] * rj[k];
				ri[j] = t / l;
			}
		}
		int64_t m = n - k0 - b;
		if (m == 0)
			break;
		double *A21 = A + (k0 + b) * lda + k0, *A22 = A21 + b;
		cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, (int)m, (int)b, 1.0, A11,
			    (int)lda, A21, (int)lda);
		cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, (int)m, (int)b, -1.0, A21, (int)lda, 1.0, A22,
			    (int)lda);
	}
	return -1;
}

struct diag_key {
	double d;
	int64_t i;
};

/* Descending diag(H); ties by column index, so the order is total. */
static int cmp_diag_desc(const void *pa, const void *pb)
{
	const struct diag_key *a = pa, *b = pb;
	if (a->d != b->d)
		return a->d > b->d ? -1 : 1;
	return (a->i > b->i) - (a->i < b->i);
}

/* H[a][b] <- H[src[a]][src[b]] in place (tmp: K doubles). Rows move by
 * following the permutation's cycles (done: K bytes), columns row by row. */
static void permute_sym(double *H, int64_t K, const int64_t *src, double *tmp, unsigned char *done)
{
	if (K <= 0)
		return; /* also tells the compiler the loop below has a sane size */
	size_t row = (size_t)K * sizeof *H;
	for (int64_t a = 0; a < K; a++)
		done[a] = 0;
	for (int64_t a = 0; a < K; a++) {
		if (done[a] || src[a] == a) {
			done[a] = 1;
			continue;
		}
		memcpy(tmp, H + a * K, row);
		int64_t cur = a;
		for (;;) {
			done[cur] = 1;
			int64_t s = src[cur];
			if (s == a) {
				memcpy(H + cur * K, tmp, row);
				break;
			}
			memcpy(H + cur * K, H + s * K, row);
			cur = s;
		}
	}
	for (int64_t a = 0; a < K; a++) {
		double *r = H + a * K;
		for (int64_t b = 0; b < K; b++)
			tmp[b] = r[src[b]];
		memcpy(r, tmp, row);
	}
}

/* Validate, mirror the lower triangle, fix dead columns (marked in dead[]).
 * diag_out gets diag(H) before the fix (for the activation order). */
static enum qt_status prepare_h(double *H, int64_t K, unsigned char *dead, double *diag_out, int64_t *n_dead,
				const struct qt_gptq_opts *o)
{
	*n_dead = 0;
	for (int64_t i = 0; i < K; i++) {
		for (int64_t j = 0; j <= i; j++)
			if (!isfinite(H[i * K + j]))
				return qt_error(QT_E_NUMERIC, "%s: H[%lld][%lld] is not finite", NAME(o), (long long)i,
						(long long)j);
		for (int64_t j = 0; j < i; j++)
			H[j * K + i] = H[i * K + j];
		double d = H[i * K + i];
		if (d < 0)
			return qt_error(QT_E_NUMERIC, "%s: H[%lld][%lld] = %g is negative (H must be X^T X)", NAME(o),
					(long long)i, (long long)i, d);
		diag_out[i] = d;
		dead[i] = d == 0;
		if (dead[i]) {
			H[i * K + i] = 1;
			++*n_dead;
		}
	}
	return QT_OK;
}

/* Column-by-column GPTQ over the prepared factor V (K x K row-major, upper).
 * p[i] is the original column of position i. */
struct run {
	const float *W;
	const struct qt_wgrid *g;
	const double *V;
	const int64_t *p;
	const unsigned char *dead;
	int64_t block;
	int32_t *codes;
};

static enum qt_status run_gptq(const struct run *r, double *err_out)
{
	const struct qt_wgrid *g = r->g;
	const int64_t C = g->C, K = g->K, B = r->block, ng = qt_wgrid_ngroups(g);
	float *A = calloc((size_t)(C * K), sizeof *A);
	float *D = malloc((size_t)(C * B) * sizeof *D);
	float *Vb = malloc((size_t)(B * K) * sizeof *Vb);
	if (!A || !D || !Vb) {
		free(A), free(D), free(Vb);
		return QT_E_NOMEM;
	}
	double err = 0;
	for (int64_t i1 = 0; i1 < K; i1 += B) {
		const int64_t b = K - i1 < B ? K - i1 : B, i2 = i1 + b, ldv = K - i1;
		for (int64_t t = 0; t < b; t++)
			for (int64_t k = i1 + t; k < K; k++)
				Vb[t * ldv + (k - i1)] = (float)r->V[(i1 + t) * K + k];
		for (int64_t c = 0; c < C; c++) {
			float *a = A + c * K, *dr = D + c * b;
			const float *w0 = r->W + c * K;
			for (int64_t t = 0; t < b; t++) {
				const int64_t i = i1 + t, col = r->p[i];
				const double vii = r->V[i * K + i];
				const float w = r->dead[col] ? 0.0f : w0[col];
				const float s = g->scale[c * ng + col / g->group_size];
				const float x = (float)((double)w + (double)a[i] / vii);
				const int32_t q = qt_wgrid_code(g, x, s);
				r->codes[c * K + col] = q;
				const float d = w - qt_wgrid_value(g, q, s);
				dr[t] = d;
				const double e = (double)a[i] + (double)d * vii;
				err += e * e;
				const float *vr = Vb + t * ldv + t; /* vr[k - i] = V[i][k] */
				for (int64_t k = i + 1; k < i2; k++)
					a[k] += d * vr[k - i];
			}
		}
		if (i2 < K)
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)C, (int)(K - i2), (int)b, 1.0f, D,
				    (int)b, Vb + b, (int)ldv, 1.0f, A + i2, (int)K);
	}
	free(A), free(D), free(Vb);
	*err_out = err / 2;
	return QT_OK;
}

enum qt_status qt_gptq(const float *W, double *H, const struct qt_wgrid *g, const struct qt_gptq_opts *o,
		       int32_t *codes_out, struct qt_gptq_stats *stats_out)
{
	const double damp0 = o && o->damp != 0 ? o->damp : 0.01;
	const int64_t block = o && o->block ? o->block : 128;
	const int retries = !o || o->max_retries == 0 ? 4 : o->max_retries < 0 ? 0 : o->max_retries;
	enum qt_status st = qt_wgrid_check(g, 1, NAME(o));
	if (st != QT_OK)
		return st;
	if (!(damp0 > 0 && isfinite(damp0)) || block < 1 || block > 1024 || retries > 20)
		return qt_error(QT_E_INVALID_ARG, "%s: GPTQ needs damping > 0, a block of 1..1024 and <= 20 retries",
				NAME(o));
	const int64_t C = g->C, K = g->K;
	if (C > 0x7fffffff || K > 0x7fffffff)
		return qt_error(QT_E_UNSUPPORTED, "%s: %lld x %lld is too large for BLAS", NAME(o), (long long)C,
				(long long)K);
	for (int64_t i = 0; i < C * K; i++)
		if (!isfinite(W[i]))
			return qt_error(QT_E_NUMERIC, "%s: weight row %lld column %lld is not finite", NAME(o),
					(long long)(i / K), (long long)(i % K));

	unsigned char *dead = malloc((size_t)K);
	unsigned char *done = malloc((size_t)K);
	double *diag = malloc((size_t)K * sizeof *diag);
	double *tmp = malloc((size_t)K * sizeof *tmp);
	int64_t *p = malloc((size_t)K * sizeof *p);
	int64_t *src = malloc((size_t)K * sizeof *src);
	struct diag_key *keys = malloc((size_t)K * sizeof *keys);
	if (!dead || !done || !diag || !tmp || !p || !src || !keys) {
		st = qt_error(QT_E_NOMEM, "%s: out of memory", NAME(o));
		goto out;
	}
	int64_t n_dead;
	st = prepare_h(H, K, dead, diag, &n_dead, o);
	if (st != QT_OK)
		goto out;

	/* Column order p; the factorisation works on it reversed. */
	for (int64_t i = 0; i < K; i++)
		keys[i] = (struct diag_key){diag[i], i};
	if (o && o->act_order)
		qsort(keys, (size_t)K, sizeof *keys, cmp_diag_desc);
	for (int64_t i = 0; i < K; i++)
		p[i] = keys[i].i;
	for (int64_t a = 0; a < K; a++)
		src[a] = p[K - 1 - a];
	permute_sym(H, K, src, tmp, done);

	double mean = 0;
	for (int64_t a = 0; a < K; a++)
		mean += diag[a] = H[a * K + a]; /* diag now: permuted, dead fixed */
	mean /= (double)K;
	double damp = damp0;
	int tries = 0;
	for (;;) {
		for (int64_t a = 0; a < K; a++)
			H[a * K + a] = diag[a] + damp * mean;
		int64_t bad = qt_chol_lower(H, K, K, 128);
		if (bad < 0)
			break;
		if (tries == retries) {
			st = qt_error(QT_E_NUMERIC,
				      "%s: H is not positive definite (pivot %lld) even with damping %g of its mean "
				      "diagonal",
				      NAME(o), (long long)p[K - 1 - bad], damp);
			goto out;
		}
		for (int64_t i = 1; i < K; i++)
			for (int64_t j = 0; j < i; j++)
				H[i * K + j] = H[j * K + i];
		damp *= 10;
		tries++;
	}
	/* Rotate: V[i][j] = L[K-1-i][K-1-j] is upper with H = V V^T. */
	for (int64_t i = 0, j = K * K - 1; i < j; i++, j--) {
		double t = H[i];
		H[i] = H[j];
		H[j] = t;
	}
	double err;
	struct run r = {W, g, H, p, dead, block, codes_out};
	st = run_gptq(&r, &err);
	if (st != QT_OK) {
		st = qt_error(st, "%s: out of memory", NAME(o));
		goto out;
	}
	if (stats_out)
		*stats_out = (struct qt_gptq_stats){.dead_cols = n_dead, .retries = tries, .damp = damp, .out_err = err};
out:
	free(dead), free(done), free(diag), free(tmp), free(p), free(src), free(keys);
	return st;
}
