/*
 * AdaRound (learned rounding) for one layer on a fixed grid.
 *
 * Each weight w = s * (b + r), b = floor(w / s) kept in [qmin, qmax - 1], is
 * given a logit v and a soft rounding h(v) = clamp(sigmoid(v) * 1.2 - 0.1, 0,
 * 1) (the rectified sigmoid: it reaches 0 and 1 exactly), so Q = s (b + h).
 * Adam minimises
 *     tr((W - Q) H (W - Q)^T) / err_rtn + lambda * mean(1 - |2h - 1|^beta)
 * full-batch on H (one C x K x K dgemm per step); the regulariser is off for
 * the first `warmup` of the steps, then beta decays from beta_start to
 * beta_end on a cosine, pushing every h to 0 or 1. Final code: b + (h >= 0.5).
 * The logits start where h equals the fractional part r, i.e. at
 * round-to-nearest's choice.
 *
 * Float use: everything in double; the codes are integers chosen by a
 * threshold on h. Determinism: the only reduction whose order could depend on
 * the BLAS thread count is the dgemm E * H; OpenBLAS splits dgemm by output
 * blocks, each element summed by one thread in a fixed order, and the test
 * checks 1 vs 2 threads give the same codes.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "quant/adaround.h"

#define AR_ZETA 1.1
#define AR_GAMMA (-0.1)

static double soft(double v, double *dh)
{
	double sg = 1.0 / (1.0 + exp(-v)), h = sg * (AR_ZETA - AR_GAMMA) + AR_GAMMA;
	if (h <= 0 || h >= 1) {
		*dh = 0;
		return h <= 0 ? 0 : 1;
	}
	*dh = (AR_ZETA - AR_GAMMA) * sg * (1 - sg);
	return h;
}

/* E = W - Q for codes base + up, and tr(E H E^T); EH gets E * H. */
static double hard_error(const float *W, const struct qt_wgrid *g, const int32_t *codes, const double *H, double *E,
			 double *EH)
{
	int64_t C = g->C, K = g->K;
	for (int64_t c = 0; c < C; c++)
		for (int64_t k = 0; k < K; k++)
			E[c * K + k] = (double)W[c * K + k] - (double)qt_wgrid_scale(g, c, k) * codes[c * K + k];
	cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)C, (int)K, (int)K, 1.0, E, (int)K, H, (int)K, 0.0,
		    EH, (int)K);
	double e = 0;
	for (int64_t i = 0; i < C * K; i++)
		e += E[i] * EH[i];
	return e;
}

enum qt_status qt_adaround(const float *W, const double *Hl, const struct qt_wgrid *g,
			   const struct qt_adaround_opts *o, int32_t *codes_out, struct qt_adaround_stats *stats_out)
{
	const char *name = o && o->name ? o->name : "layer";
	enum qt_status st = qt_wgrid_check(g, 1, name);
	if (st)
		return st;
	int iters = o && o->iters > 0 ? o->iters : 1000;
	double lr = o && o->lr > 0 ? o->lr : 0.05, lambda = o && o->lambda > 0 ? o->lambda : 1.0;
	double warm = o && o->warmup > 0 ? o->warmup : 0.2;
	double b0 = o && o->beta_start > 0 ? o->beta_start : 20, b1 = o && o->beta_end > 0 ? o->beta_end : 2;
	if (warm >= 1 || iters > 1000000)
		return qt_error(QT_E_INVALID_ARG, "%s: AdaRound warmup must be below 1 and iters at most 10^6", name);
	int64_t C = g->C, K = g->K, n = C * K;
	if (g->qmax - g->qmin < 1)
		return qt_error(QT_E_INVALID_ARG, "%s: AdaRound needs at least two codes", name);
	double *H = malloc(sizeof(double) * (size_t)(K * K));
	double *buf = malloc(sizeof(double) * (size_t)n * 6);
	int32_t *base = malloc(sizeof(int32_t) * (size_t)n);
	int32_t *tmp = calloc((size_t)n, sizeof(int32_t));
	if (!H || !buf || !base || !tmp) {
		free(H), free(buf), free(base), free(tmp);
		return qt_error(QT_E_NOMEM, "%s: out of memory for AdaRound", name);
	}
	double *V = buf, *M = buf + n, *S2 = buf + 2 * n, *E = buf + 3 * n, *EH = buf + 4 * n, *DH = buf + 5 * n;
	for (int64_t i = 0; i < K; i++)
		for (int64_t j = 0; j <= i; j++) {
			double h = Hl[i * K + j];
			if (!isfinite(h)) {
				st = qt_error(QT_E_NUMERIC, "%s: H[%lld][%lld] is not finite", name, (long long)i,
					      (long long)j);
				goto out;
			}
			H[i * K + j] = H[j * K + i] = h;
		}
	for (int64_t c = 0; c < C; c++)
		for (int64_t k = 0; k < K; k++) {
			int64_t i = c * K + k;
			if (!isfinite(W[i])) {
				st = qt_error(QT_E_NUMERIC, "%s: weight [%lld][%lld] is not finite", name, (long long)c,
					      (long long)k);
				goto out;
			}
			double x = (double)W[i] / qt_wgrid_scale(g, c, k), f = floor(x);
			if (f < g->qmin)
				f = g->qmin;
			if (f > g->qmax - 1)
				f = g->qmax - 1;
			base[i] = (int32_t)f;
			double r = x - f;
			r = r < 0.01 ? 0.01 : r > 0.99 ? 0.99 : r; /* inside (0, 1): a finite logit */
			double p = (r - AR_GAMMA) / (AR_ZETA - AR_GAMMA);
			V[i] = log(p / (1 - p));
			M[i] = S2[i] = 0;
		}
	qt_wgrid_round(W, g, codes_out);
	double err_rtn = hard_error(W, g, codes_out, H, E, EH);
	double norm = err_rtn > 0 ? 1.0 / err_rtn : 1.0;
	const double a1 = 0.9, a2 = 0.999, eps = 1e-8;
	double p1 = 1, p2 = 1;
	int warm_iters = (int)(warm * iters);
	for (int it = 0; it < iters; it++) {
		/* E = W - s (b + h) */
		for (int64_t c = 0; c < C; c++)
			for (int64_t k = 0; k < K; k++) {
				int64_t i = c * K + k;
				double s = qt_wgrid_scale(g, c, k), h = soft(V[i], &DH[i]);
				E[i] = (double)W[i] - s * (base[i] + h);
			}
		cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)C, (int)K, (int)K, 1.0, E, (int)K, H,
			    (int)K, 0.0, EH, (int)K);
		double beta = 0, reg = 0;
		if (it >= warm_iters) {
			double t = (double)(it - warm_iters) / (double)(iters - warm_iters > 1 ? iters - warm_iters - 1 : 1);
			beta = b1 + 0.5 * (b0 - b1) * (1 + cos(M_PI * t));
			reg = lambda / (double)n;
		}
		p1 *= a1, p2 *= a2;
		for (int64_t c = 0; c < C; c++)
			for (int64_t k = 0; k < K; k++) {
				int64_t i = c * K + k;
				if (DH[i] == 0)
					continue; /* h saturated at 0 or 1: no gradient */
				double s = qt_wgrid_scale(g, c, k), h = soft(V[i], &DH[i]);
				/* d/dh of tr(E H E^T) = -2 s (E H)_i; of the regulariser -2 beta |u|^(beta-1) sgn(u), u = 2h - 1 */
				double gh = -2 * s * EH[i] * norm;
				if (reg > 0) {
					double u = 2 * h - 1;
					gh += reg * -2 * beta * pow(fabs(u), beta - 1) * (u > 0 ? 1 : u < 0 ? -1 : 0);
				}
				double gv = gh * DH[i];
				M[i] = a1 * M[i] + (1 - a1) * gv;
				S2[i] = a2 * S2[i] + (1 - a2) * gv * gv;
				V[i] -= lr * (M[i] / (1 - p1)) / (sqrt(S2[i] / (1 - p2)) + eps);
			}
	}
	int64_t flipped = 0, undecided = 0;
	for (int64_t i = 0; i < n; i++) {
		double dh, h = soft(V[i], &dh);
		undecided += h > 0.01 && h < 0.99;
		tmp[i] = base[i] + (h >= 0.5);
	}
	double err = hard_error(W, g, tmp, H, E, EH);
	int kept = !(err < err_rtn);
	if (!kept) {
		for (int64_t i = 0; i < n; i++)
			flipped += tmp[i] != codes_out[i];
		memcpy(codes_out, tmp, sizeof(int32_t) * (size_t)n);
	} else {
		err = err_rtn;
	}
	if (stats_out)
		*stats_out = (struct qt_adaround_stats){err_rtn, err, flipped, undecided, kept};
out:
	free(H);
	free(buf);
	free(base);
	free(tmp);
	return st;
}
