/*
 * Scale choice for a weight grid (wgrid.h): today's absmax rule and a
 * search for the scale that minimises the (optionally weighted) squared
 * rounding error per (row, group).
 *
 * Float use: weights, scales, codes and each weight's rounding difference are
 * float as in the runtime (codes by the rule of qt_quantize_one, ties to
 * even); maxima and error sums are double, and
 * each scale is rounded to float once, so the error that is minimised is the
 * error of the float scale actually stored.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "qtool/quant.h"
#include "quant/qround.h"
#include "quant/wgrid.h"

#define NAME(w) ((w) ? (w) : "weight")

enum qt_status qt_wgrid_check(const struct qt_wgrid *g, int check_scales, const char *what)
{
	if (g->C < 1 || g->K < 1 || g->C > ((int64_t)1 << 40) / g->K)
		return qt_error(QT_E_INVALID_ARG, "%s: matrix %lld x %lld is empty or too large", NAME(what),
				(long long)g->C, (long long)g->K);
	if (g->group_size < 1 || g->group_size > g->K)
		return qt_error(QT_E_INVALID_ARG, "%s: group size %lld must be in [1, %lld]", NAME(what),
				(long long)g->group_size, (long long)g->K);
	if (g->qmin > 0 || g->qmax <= 0 || g->qmin < -(1 << 20) || g->qmax > (1 << 20))
		return qt_error(QT_E_INVALID_ARG, "%s: code range [%d, %d] must contain 0 and a positive code, within +-2^20",
				NAME(what), (int)g->qmin, (int)g->qmax);
	if (!check_scales)
		return QT_OK;
	int64_t n = g->C * qt_wgrid_ngroups(g);
	for (int64_t i = 0; i < n; i++)
		if (!(isfinite(g->scale[i]) && g->scale[i] > 0))
			return qt_error(QT_E_NUMERIC, "%s: scale %lld (%g) must be finite and positive", NAME(what),
					(long long)i, (double)g->scale[i]);
	return QT_OK;
}

static enum qt_status check_finite(const float *W, const struct qt_wgrid *g, const char *what)
{
	for (int64_t i = 0; i < g->C * g->K; i++)
		if (!isfinite(W[i]))
			return qt_error(QT_E_NUMERIC, "%s: weight row %lld column %lld is not finite", NAME(what),
					(long long)(i / g->K), (long long)(i % g->K));
	return QT_OK;
}

/* float scale for a slot whose max|w| is amax, per the absmax rule; big is the
 * largest max|w| of the matrix, for all-zero slots. */
static float absmax_scale(double amax, double big, int32_t qmax)
{
	double s = amax > 0 ? amax / qmax : big > 0 ? big / qmax : 1.0;
	float f = (float)s;
	return f < FLT_MIN ? FLT_MIN : f;
}

/* max|w| per slot into amax (C * ng), and the largest of them. */
static double slot_absmax(const float *W, const struct qt_wgrid *g, double *amax)
{
	int64_t ng = qt_wgrid_ngroups(g);
	double big = 0;
	for (int64_t r = 0; r < g->C; r++)
		for (int64_t j = 0; j < ng; j++) {
			const float *w = W + r * g->K + j * g->group_size;
			int64_t n = j == ng - 1 ? g->K - j * g->group_size : g->group_size;
			double m = 0;
			for (int64_t k = 0; k < n; k++)
				m = fmax(m, fabs((double)w[k]));
			amax[r * ng + j] = m;
			big = fmax(big, m);
		}
	return big;
}

enum qt_status qt_wscale_absmax(const float *W, struct qt_wgrid *g, const char *what)
{
	enum qt_status st = qt_wgrid_check(g, 0, what);
	if (st == QT_OK)
		st = check_finite(W, g, what);
	if (st != QT_OK)
		return st;
	int64_t n = g->C * qt_wgrid_ngroups(g);
	double *amax = malloc((size_t)n * sizeof *amax);
	if (!amax)
		return qt_error(QT_E_NOMEM, "%s: out of memory", NAME(what));
	double big = slot_absmax(W, g, amax);
	for (int64_t i = 0; i < n; i++)
		g->scale[i] = absmax_scale(amax[i], big, g->qmax);
	free(amax);
	return QT_OK;
}

/* Weighted squared rounding error of n weights at scale s (h NULL: weight 1).
 * This is the scale search's whole cost: the codes and differences are
 * computed in a loop that vectorizes, in chunks of 64 in a local array, and
 * summed in double in four fixed lanes (a fixed order, so deterministic). */
static double slot_error(const float *w, const double *h, int64_t n, float s, int32_t qmin, int32_t qmax)
{
	double lane[4] = {0, 0, 0, 0};
	float d[64];
	for (int64_t k0 = 0; k0 < n; k0 += 64) {
		const int m = n - k0 < 64 ? (int)(n - k0) : 64;
		for (int k = 0; k < m; k++)
			d[k] = w[k0 + k] - s * (float)qt_quantize_small_range(w[k0 + k], s, 0, qmin, qmax);
		for (int k = 0; k < m; k++) {
			double e = (double)d[k] * d[k];
			lane[k & 3] += h ? h[k0 + k] * e : e;
		}
	}
	return (lane[0] + lane[1]) + (lane[2] + lane[3]);
}

enum qt_status qt_wscale_mse(const float *W, struct qt_wgrid *g, const double *h_diag,
			     const struct qt_wscale_opts *o, const char *what)
{
	int steps = o && o->steps ? o->steps : 100;
	double fmin = o && o->min_factor != 0 ? o->min_factor : 0.2;
	if (steps < 1 || steps > 100000 || !(fmin > 0 && fmin <= 1))
		return qt_error(QT_E_INVALID_ARG, "%s: scale search needs 1..100000 steps and a factor in (0, 1]",
				NAME(what));
	if (h_diag)
		for (int64_t k = 0; k < g->K; k++)
			if (!(isfinite(h_diag[k]) && h_diag[k] >= 0))
				return qt_error(QT_E_NUMERIC, "%s: diag(H)[%lld] = %g must be finite and >= 0",
						NAME(what), (long long)k, h_diag[k]);
	enum qt_status st = qt_wscale_absmax(W, g, what);
	if (st != QT_OK)
		return st;
	const int full = -(int64_t)g->qmin > g->qmax;
	int64_t ng = qt_wgrid_ngroups(g);
	for (int64_t r = 0; r < g->C; r++)
		for (int64_t j = 0; j < ng; j++) {
			const float *w = W + r * g->K + j * g->group_size;
			const double *h = h_diag ? h_diag + j * g->group_size : NULL;
			int64_t n = j == ng - 1 ? g->K - j * g->group_size : g->group_size;
			double amax = 0, pmax = 0, nmax = 0;
			for (int64_t k = 0; k < n; k++) {
				amax = fmax(amax, fabs((double)w[k]));
				pmax = fmax(pmax, (double)w[k]);
				nmax = fmax(nmax, -(double)w[k]);
			}
			if (amax == 0)
				continue; /* keeps the borrowed absmax scale */
			/* Bases: absmax; for full-range grids, the negative side's
			 * reach and the tightest scale that clips neither side. */
			double base[2] = {amax / g->qmax, amax / -(double)g->qmin};
			float best = g->scale[r * ng + j];
			double best_e = slot_error(w, h, n, best, g->qmin, g->qmax);
			for (int b = 0; b < (full ? 2 : 1); b++)
				for (int i = 0; i < steps; i++) {
					double f = steps == 1 ? 1.0 : 1.0 - (1.0 - fmin) * i / (steps - 1);
					float s = (float)(base[b] * f);
					if (!(s >= FLT_MIN))
						continue;
					double e = slot_error(w, h, n, s, g->qmin, g->qmax);
					if (e < best_e)
						best_e = e, best = s;
				}
			if (full) {
				float s = (float)fmax(pmax / g->qmax, nmax / -(double)g->qmin);
				if (s >= FLT_MIN) {
					double e = slot_error(w, h, n, s, g->qmin, g->qmax);
					if (e < best_e)
						best_e = e, best = s;
				}
			}
			g->scale[r * ng + j] = best;
		}
	return QT_OK;
}

void qt_wgrid_round(const float *W, const struct qt_wgrid *g, int32_t *codes_out)
{
	for (int64_t r = 0; r < g->C; r++)
		for (int64_t k = 0; k < g->K; k++)
			codes_out[r * g->K + k] = qt_wgrid_code(g, W[r * g->K + k], qt_wgrid_scale(g, r, k));
}

double qt_wgrid_error(const float *W, const struct qt_wgrid *g, const int32_t *codes, const double *h_diag)
{
	double e = 0;
	for (int64_t r = 0; r < g->C; r++)
		for (int64_t k = 0; k < g->K; k++) {
			float v = qt_wgrid_value(g, codes[r * g->K + k], qt_wgrid_scale(g, r, k));
			double d = (double)W[r * g->K + k] - (double)v;
			e += (h_diag ? h_diag[k] : 1.0) * d * d;
		}
	return e;
}
