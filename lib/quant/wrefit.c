/*
 * Scale re-fitting: once a rounding method has chosen a layer's codes, the
 * scales that minimise the layer's output error for those codes have a
 * closed form. Per row w (K weights), codes q and one scale per group, the
 * output error on inputs with second moment H is
 *   e(s) = (w - D(s) q)^T H (w - D(s) q),   D(s) = diag(s[group of k]),
 * a quadratic in s whose minimum solves A s = b with
 *   A[g][h] = sum_{i in g, j in h} q_i H_ij q_j,   b[g] = sum_{i in g} q_i (H w)_i.
 * GPTQ picks codes for fixed scales; alternating the two lowers the error
 * further at 2 and 3 bits, where the absmax scale is far from the best one.
 *
 * Float: double throughout; the result is rounded once to float. A row
 * whose system is singular, or whose solution has a scale that is not
 * finite and positive, keeps its scales; so does one whose error would not
 * decrease.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant/quant_int.h"

/* Solve the n x n system A x = b in place (Gaussian elimination with partial
 * pivoting); 0 on success, -1 when singular. */
static int solve(double *A, double *b, int64_t n)
{
	for (int64_t c = 0; c < n; c++) {
		int64_t p = c;
		for (int64_t r = c + 1; r < n; r++)
			if (fabs(A[r * n + c]) > fabs(A[p * n + c]))
				p = r;
		if (!(fabs(A[p * n + c]) > 1e-300))
			return -1;
		if (p != c) {
			for (int64_t k = 0; k < n; k++) {
				double t = A[c * n + k];
				A[c * n + k] = A[p * n + k];
				A[p * n + k] = t;
			}
			double t = b[c];
			b[c] = b[p];
			b[p] = t;
		}
		for (int64_t r = c + 1; r < n; r++) {
			double f = A[r * n + c] / A[c * n + c];
			for (int64_t k = c; k < n; k++)
				A[r * n + k] -= f * A[c * n + k];
			b[r] -= f * b[c];
		}
	}
	for (int64_t c = n - 1; c >= 0; c--) {
		double s = b[c];
		for (int64_t k = c + 1; k < n; k++)
			s -= A[c * n + k] * b[k];
		b[c] = s / A[c * n + c];
	}
	return 0;
}

/* e = (w - s.q)^T H (w - s.q) for one row. */
static double row_error(const float *w, const int32_t *q, const float *s, int64_t gs, const double *H, int64_t K,
			double *d)
{
	for (int64_t k = 0; k < K; k++)
		d[k] = (double)w[k] - (double)s[k / gs] * q[k];
	double e = 0;
	for (int64_t i = 0; i < K; i++) {
		double hi = 0;
		for (int64_t j = 0; j < K; j++)
			hi += H[i * K + j] * d[j];
		e += d[i] * hi;
	}
	return e;
}

enum qt_status qt_wscale_refit(const float *W, const double *H, struct qt_wgrid *g, const int32_t *codes)
{
	int64_t K = g->K, gs = g->group_size, ng = qt_wgrid_ngroups(g);
	double *hq = malloc((size_t)K * sizeof *hq), *hw = malloc((size_t)K * sizeof *hw);
	double *A = malloc((size_t)ng * ng * sizeof *A), *b = malloc((size_t)ng * sizeof *b);
	double *d = malloc((size_t)K * sizeof *d);
	float *s = malloc((size_t)ng * sizeof *s);
	if (!hq || !hw || !A || !b || !d || !s) {
		free(hq), free(hw), free(A), free(b), free(d), free(s);
		return qt_error(QT_E_NOMEM, "out of memory");
	}
	for (int64_t r = 0; r < g->C; r++) {
		const float *w = W + r * K;
		const int32_t *q = codes + r * K;
		float *sc = g->scale + r * ng;
		memset(A, 0, (size_t)ng * ng * sizeof *A);
		memset(b, 0, (size_t)ng * sizeof *b);
		for (int64_t i = 0; i < K; i++) {
			double a = 0, c = 0;
			for (int64_t j = 0; j < K; j++) {
				a += H[i * K + j] * q[j];
				c += H[i * K + j] * w[j];
			}
			hq[i] = a, hw[i] = c;
		}
		/* A[g][h] = sum_{i in g} q_i sum_{j in h} H_ij q_j: accumulate per (i, group of j). */
		for (int64_t i = 0; i < K; i++) {
			if (!q[i])
				continue;
			b[i / gs] += q[i] * hw[i];
			for (int64_t j = 0; j < K; j++)
				if (q[j])
					A[(i / gs) * ng + j / gs] += (double)q[i] * H[i * K + j] * q[j];
		}
		/* A group with no nonzero code keeps its scale: pin it. */
		for (int64_t k = 0; k < ng; k++)
			if (A[k * ng + k] == 0) {
				for (int64_t h = 0; h < ng; h++)
					A[k * ng + h] = A[h * ng + k] = 0;
				A[k * ng + k] = 1;
				b[k] = sc[k];
			}
		if (solve(A, b, ng))
			continue;
		int ok = 1;
		for (int64_t k = 0; k < ng; k++) {
			s[k] = (float)b[k];
			ok &= isfinite(s[k]) && s[k] > 0;
		}
		if (ok && row_error(w, q, s, gs, H, K, d) < row_error(w, q, sc, gs, H, K, d))
			memcpy(sc, s, (size_t)ng * sizeof *s);
	}
	free(hq), free(hw), free(A), free(b), free(d), free(s);
	return QT_OK;
}
