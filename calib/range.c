/*
 * Range methods: turn one tensor's statistics (qtool/calib.h) into a
 * clipping range [lo, hi] for asymmetric quantization with L = 2^bits - 1
 * steps, real = scale * (q - zero_point), lo <= 0 <= hi.
 *
 * The histogram is read as two "sides" of magnitude bins (bin j of a side
 * holds |x| in [jw, (j+1)w)) with the mass of each bin spread uniformly over
 * it. Exact zeros are kept apart: zero is exactly representable whatever the
 * range, so zeros never cost error and never pull a threshold down.
 *
 *  minmax      [min(min, 0), max(max, 0)].
 *  percentile  hi = the p-th percentile, lo = the (100-p)-th percentile of the
 *              whole distribution (zeros included), each widened to 0: for a
 *              tensor with min >= 0 only the top is clipped.
 *  entropy     per side, TensorRT's search: for each candidate threshold of i
 *              bins, the reference P is the side's bins [0, i) with the mass
 *              beyond folded into bin i-1; Q merges bins [0, i) (without the
 *              folded mass) into the side's levels and spreads each level's
 *              mass back evenly over the bins where P is non-zero; pick the
 *              i of least KL(P || Q). A side gets all L levels when the data
 *              has one sign, else a share of L proportional to its threshold
 *              (one refinement round from the minmax shares).
 *  mse         search over step s = W / L (W on a grid of n_bins widths up to
 *              max - min) and integer zero point z (0..L), range [-z s, (L-z) s]
 *              (the grid the quantizer will use): minimise the expected
 *              squared error, clipping error (x - hi)^2 beyond the range plus
 *              rounding noise s^2/12 inside it, both integrated exactly over
 *              the uniform-in-bin density in O(1) per candidate with prefix
 *              sums of the bins' zeroth, first and second moments.
 *
 * Float: everything in double; the result is rounded to float at the end
 * (the quantizer's type), keeping lo <= 0 <= hi and hi > lo.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qtool/calib.h"

/* Below this width a range is treated as empty (all zeros in practice). */
#define MIN_WIDTH 1e-30

static const char *const method_names[QT_CALIB_N_METHODS] = {"minmax", "percentile", "entropy", "mse"};

const char *qt_calib_method_name(enum qt_calib_method m)
{
	return (int)m >= 0 && m < QT_CALIB_N_METHODS ? method_names[m] : "?";
}

int qt_calib_method_parse(const char *s, enum qt_calib_method *out)
{
	for (int m = 0; s && m < QT_CALIB_N_METHODS; m++)
		if (!strcmp(s, method_names[m])) {
			*out = (enum qt_calib_method)m;
			return 0;
		}
	return -1;
}

enum qt_status qt_calib_hist_check(const struct qt_calib_hist *h, const char *label)
{
	if (h->n_bins < QT_CALIB_MIN_BINS || h->n_bins > QT_CALIB_MAX_BINS)
		return qt_error(QT_E_FORMAT, "%s: histogram has %d bins, outside %d..%d", label, h->n_bins,
				QT_CALIB_MIN_BINS, QT_CALIB_MAX_BINS);
	if (h->zero_bin < 0 || h->zero_bin > h->n_bins)
		return qt_error(QT_E_FORMAT, "%s: histogram zero bin %d outside 0..%d", label, h->zero_bin, h->n_bins);
	if (!isfinite(h->min) || !isfinite(h->max) || h->min > h->max || fabs(h->min) > FLT_MAX ||
	    fabs(h->max) > FLT_MAX)
		return qt_error(QT_E_FORMAT, "%s: min %g and max %g must be finite float32 values with min <= max",
				label, h->min, h->max);
	if (!isfinite(h->width) || h->width < 0)
		return qt_error(QT_E_FORMAT, "%s: histogram bin width %g must be finite and >= 0", label, h->width);
	uint64_t sum = h->zeros;
	for (int i = 0; i < h->n_bins; i++) {
		if (h->counts[i] > UINT64_MAX - sum)
			return qt_error(QT_E_FORMAT, "%s: histogram counts overflow", label);
		sum += h->counts[i];
		if (h->width == 0 && h->counts[i])
			return qt_error(QT_E_FORMAT, "%s: histogram of zero width has non-zero counts", label);
	}
	if (sum != h->count)
		return qt_error(QT_E_FORMAT, "%s: count %llu is not zeros + the sum of the histogram counts (%llu)",
				label, (unsigned long long)h->count, (unsigned long long)sum);
	if (h->width == 0) {
		if (h->min != 0 || h->max != 0)
			return qt_error(QT_E_FORMAT, "%s: histogram of zero width but min %g and max %g are not 0",
					label, h->min, h->max);
		return QT_OK;
	}
	double lo = -(double)h->zero_bin * h->width, hi = (double)(h->n_bins - h->zero_bin) * h->width;
	double tol = 1e-9 * (hi - lo);
	if (!isfinite(lo) || !isfinite(hi) || h->min < lo - tol || h->max > hi + tol)
		return qt_error(QT_E_FORMAT, "%s: [min, max] = [%g, %g] is outside the histogram span [%g, %g]", label,
				h->min, h->max, lo, hi);
	return QT_OK;
}

/* One side of the histogram as magnitude bins, in double. */
struct side {
	int n;       /* bins up to the last non-empty one */
	double *p;   /* p[j]: mass with |x| in [jw, (j+1)w) */
	double mass; /* sum of p */
	double ext;  /* largest magnitude observed on this side (from min/max), 0 if none */
};

/* Fill s from h: sign -1 for the negative side, +1 for the positive one. p has n_bins room. */
static void side_init(struct side *s, const struct qt_calib_hist *h, int sign, double *p)
{
	int z = h->zero_bin, len = sign < 0 ? z : h->n_bins - z;
	s->p = p;
	s->n = 0;
	s->mass = 0;
	for (int j = 0; j < len; j++) {
		p[j] = (double)(sign < 0 ? h->counts[z - 1 - j] : h->counts[z + j]);
		s->mass += p[j];
		if (p[j] > 0)
			s->n = j + 1;
	}
	s->ext = sign < 0 ? fmax(-h->min, 0) : fmax(h->max, 0);
	if (s->mass == 0)
		s->ext = 0; /* no non-zero values on this side */
}

/*
 * Write the final range: widen to include 0, fall back to minmax when the
 * method collapsed the range, to [0, 1] when the data has no width at all.
 */
static void finish_range(const struct qt_calib_hist *h, double lo, double hi, float *lo_out, float *hi_out)
{
	if (!(lo <= 0)) /* also catches NaN */
		lo = 0;
	if (!(hi >= 0))
		hi = 0;
	lo = fmax(lo, -FLT_MAX);
	hi = fmin(hi, FLT_MAX);
	if (!((float)hi - (float)lo >= MIN_WIDTH)) {
		lo = fmin(h->min, 0);
		hi = fmax(h->max, 0);
	}
	if (!((float)hi - (float)lo >= MIN_WIDTH)) {
		lo = 0;
		hi = 1;
	}
	*lo_out = (float)lo + 0.0f; /* -0 reads as 0 in files */
	*hi_out = (float)hi;
}

/*
 * Value below which a fraction f of all elements lie (zeros at 0, uniform
 * density inside each bin, cut at the data's extremes), within [min, max].
 */
static double quantile(const struct qt_calib_hist *h, double f)
{
	double total = (double)h->count, k = f * total, cum = 0, w = h->width;
	int z = h->zero_bin;
	double x = h->max;
	for (int i = 0; i < h->n_bins; i++) {
		if (i == z) {
			if (h->zeros > 0 && k <= cum + (double)h->zeros) {
				x = 0;
				goto out;
			}
			cum += (double)h->zeros;
		}
		double c = (double)h->counts[i];
		if (c > 0 && k <= cum + c) {
			/* The bins holding the extremes reach past them: spread
			 * their mass up to the extreme only. */
			double e0 = fmax((double)(i - z) * w, h->min), e1 = fmin((double)(i - z + 1) * w, h->max);
			x = e0 + (k - cum) / c * fmax(e1 - e0, 0);
			goto out;
		}
		cum += c;
	}
	if (z == h->n_bins && h->zeros > 0 && k <= cum + (double)h->zeros)
		x = 0;
out:
	return fmin(fmax(x, h->min), h->max);
}

/*
 * Entropy threshold of one side with `levels` quantization levels: the
 * number of bins i in [levels, n] of least KL(P || Q), as a magnitude.
 *
 * KL in O(levels) per candidate: with T the side's mass, P_j the folded
 * reference, Qs_g the unfolded mass of group g, nz_g its bins with P_j > 0,
 * Q_j = Qs_g / nz_g on those bins and Qt = sum of Qs_g (the mass below i):
 *   KL = (1/T) sum_j P_j log P_j - log T + log Qt - (1/T) sum_g Pg_g log(Qs_g / nz_g)
 * where Pg_g is group g's folded mass. Prefix sums of p log p, of p and of
 * (p > 0) make each group O(1).
 */
#define ENTROPY_CANDIDATES 2048

static double entropy_side(const struct side *s, int levels, double w, double *pre)
{
	int n = s->n;
	if (n == 0)
		return 0;
	if (n <= levels)
		return s->ext;
	double *cp = pre, *cpl = pre + (n + 1), *cnz = pre + 2 * (n + 1);
	cp[0] = cpl[0] = cnz[0] = 0;
	for (int j = 0; j < n; j++) {
		double p = s->p[j];
		cp[j + 1] = cp[j] + p;
		cpl[j + 1] = cpl[j] + (p > 0 ? p * log(p) : 0);
		cnz[j + 1] = cnz[j] + (p > 0);
	}
	double T = cp[n], logT = log(T);
	int best_i = n;
	double best = INFINITY;
	/* At most ENTROPY_CANDIDATES thresholds (every bin with the default
	 * 2048 bins), always including n (no clipping). */
	int step = (n - levels) / ENTROPY_CANDIDATES + 1;
	for (int i = levels + (n - levels) % step; i <= n; i += step) {
		double out = T - cp[i];        /* mass folded into bin i-1 */
		double last = s->p[i - 1] + out; /* folded last bin */
		double qt = cp[i];
		if (qt <= 0)
			continue; /* everything beyond: a useless threshold */
		double plogp = cpl[i - 1] + (last > 0 ? last * log(last) : 0);
		double acc = 0;
		for (int g = 0; g < levels; g++) {
			int b0 = (int)((int64_t)g * i / levels), b1 = (int)((int64_t)(g + 1) * i / levels);
			double qs = cp[b1] - cp[b0];
			double pg = qs, nz = cnz[b1] - cnz[b0];
			if (b1 == i) { /* the last group holds the folded bin */
				pg += out;
				nz += (last > 0) - (s->p[i - 1] > 0);
			}
			if (pg <= 0)
				continue;
			/* A group with reference mass but no quantized mass (only the
			 * folded outliers): give Q a tiny mass so KL stays finite but
			 * the candidate is heavily penalised. */
			double q = qs > 0 ? qs / nz : 1e-9 * qt;
			acc += pg * log(q);
		}
		double kl = plogp / T - logT + log(qt) - acc / T;
		if (kl < best) {
			best = kl;
			best_i = i;
		}
	}
	return fmin((double)best_i * w, s->ext);
}

/*
 * Expected squared error contributed by one side at threshold t (magnitude):
 * clipping beyond t, plus rounding noise s2_12 per element inside. With
 * uniform density c/w on bin [jw, (j+1)w): a full bin beyond t costs
 * c ((m - t)^2 + w^2/12) (m its centre), the bin holding t costs
 * (c/w) (e1 - t)^3 / 3 beyond t. Suffix sums sc, sm, sm2 of c, c m, c m^2
 * (index j = sum over bins >= j) make it O(1).
 */
struct mse_side {
	int n;
	double w;
	const double *p, *sc, *sm, *sm2;
};

static double mse_side_err(const struct mse_side *m, double t, double s2_12)
{
	if (m->n == 0)
		return 0;
	double w = m->w, jt = floor(t / w);
	if (jt >= m->n) /* no clipping */
		return s2_12 * m->sc[0];
	int j = jt < 0 ? 0 : (int)jt;
	double c = m->p[j], e0 = j * w, e1 = e0 + w;
	double frac = fmin(fmax((t - e0) / w, 0), 1);
	double clip_full = m->sm2[j + 1] - 2 * t * m->sm[j + 1] + t * t * m->sc[j + 1] + w * w / 12 * m->sc[j + 1];
	double d = e1 - fmax(t, e0);
	double clip_part = c / w * d * d * d / 3;
	double inside = (m->sc[0] - m->sc[j]) + c * frac;
	return clip_full + clip_part + s2_12 * inside;
}

static void mse_side_init(struct mse_side *m, const struct side *s, double w, double *buf)
{
	int n = s->n;
	double *sc = buf, *sm = buf + (n + 1), *sm2 = buf + 2 * (n + 1);
	sc[n] = sm[n] = sm2[n] = 0;
	for (int j = n - 1; j >= 0; j--) {
		double c = s->p[j], mid = (j + 0.5) * w;
		sc[j] = sc[j + 1] + c;
		sm[j] = sm[j + 1] + c * mid;
		sm2[j] = sm2[j + 1] + c * mid * mid;
	}
	m->n = n;
	m->w = w;
	m->p = s->p;
	m->sc = sc;
	m->sm = sm;
	m->sm2 = sm2;
}

/* Candidate widths of the mse search, and zero points tried per width before refining. */
#define MSE_WIDTHS 2048
#define MSE_ZERO_POINTS 32

static double mse_err(const struct mse_side *mn, const struct mse_side *mp, double s, double L, int z)
{
	double s2_12 = s * s / 12;
	return mse_side_err(mn, z * s, s2_12) + mse_side_err(mp, (L - z) * s, s2_12);
}

static void mse_range(const struct side *neg, const struct side *pos, double w, double L, double *lo, double *hi,
		      double *buf)
{
	struct mse_side mn, mp;
	mse_side_init(&mn, neg, w, buf);
	mse_side_init(&mp, pos, w, buf + 3 * (neg->n + 1));
	double wmax = neg->ext + pos->ext;
	/* One-signed data keeps 0 at the end of the range. */
	int zlo = pos->ext == 0 ? (int)L : 0, zhi = neg->ext == 0 ? 0 : (int)L;
	/* With more than MSE_ZERO_POINTS levels try every stride-th zero point,
	 * then every one around the best: the error is close to convex in z
	 * (each side's clipping error is convex in its threshold). */
	int stride = (zhi - zlo) / MSE_ZERO_POINTS + 1;
	double best = INFINITY;
	*lo = -neg->ext;
	*hi = pos->ext;
	for (int k = 1; k <= MSE_WIDTHS; k++) {
		double s = wmax * k / MSE_WIDTHS / L;
		double bk = INFINITY;
		int bz = zlo;
		for (int z = zlo;; z += stride) {
			if (z > zhi)
				z = zhi;
			double e = mse_err(&mn, &mp, s, L, z);
			if (e < bk) {
				bk = e;
				bz = z;
			}
			if (z == zhi)
				break;
		}
		if (stride > 1) {
			int a = bz - stride < zlo ? zlo : bz - stride, b = bz + stride > zhi ? zhi : bz + stride;
			for (int z = a; z <= b; z++) {
				double e = mse_err(&mn, &mp, s, L, z);
				if (e < bk) {
					bk = e;
					bz = z;
				}
			}
		}
		if (bk < best) {
			best = bk;
			*lo = -bz * s;
			*hi = (L - bz) * s;
		}
	}
}

enum qt_status qt_calib_hist_range(const struct qt_calib_hist *h, enum qt_calib_method m, int bits,
				   double percentile, float *lo_out, float *hi_out)
{
	enum qt_status st;
	if ((int)m < 0 || m >= QT_CALIB_N_METHODS)
		return qt_error(QT_E_INVALID_ARG, "unknown calibration method %d", (int)m);
	if (bits < QT_CALIB_MIN_RANGE_BITS || bits > QT_CALIB_MAX_RANGE_BITS)
		return qt_error(QT_E_INVALID_ARG, "bits %d outside %d..%d", bits, QT_CALIB_MIN_RANGE_BITS,
				QT_CALIB_MAX_RANGE_BITS);
	if (!(percentile >= 50 && percentile <= 100))
		return qt_error(QT_E_INVALID_ARG, "percentile %g outside 50..100", percentile);
	if ((st = qt_calib_hist_check(h, "histogram")) != QT_OK)
		return qt_error_prefix(QT_E_INVALID_ARG, "bad statistics");
	double lo = fmin(h->min, 0), hi = fmax(h->max, 0);
	if (m == QT_CALIB_MINMAX || h->width == 0 || hi - lo < MIN_WIDTH) {
		finish_range(h, lo, hi, lo_out, hi_out);
		return QT_OK;
	}
	if (m == QT_CALIB_PERCENTILE) {
		hi = quantile(h, percentile / 100);
		lo = quantile(h, 1 - percentile / 100);
		finish_range(h, lo, hi, lo_out, hi_out);
		return QT_OK;
	}
	/* entropy and mse: two sides of magnitude bins plus prefix arrays. */
	int nb = h->n_bins;
	double *buf = malloc((size_t)(2 * nb + 6 * (nb + 1)) * sizeof *buf);
	if (!buf)
		return qt_error(QT_E_NOMEM, "out of memory computing a range");
	struct side neg, pos;
	side_init(&neg, h, -1, buf);
	side_init(&pos, h, +1, buf + nb);
	double *pre = buf + 2 * nb;
	double L = ldexp(1.0, bits) - 1;
	if (m == QT_CALIB_ENTROPY) {
		if (neg.mass == 0 || pos.mass == 0) {
			lo = -entropy_side(&neg, (int)L, h->width, pre);
			hi = entropy_side(&pos, (int)L, h->width, pre);
		} else {
			/* Each side gets levels in proportion to its threshold: start
			 * from the extremes, refine once from the first thresholds. */
			double tn = neg.ext, tp = pos.ext;
			for (int round = 0; round < 2; round++) {
				int lp = (int)lround(L * tp / (tn + tp));
				lp = lp < 1 ? 1 : lp > (int)L - 1 ? (int)L - 1 : lp;
				int ln = (int)L - lp;
				double ntn = entropy_side(&neg, ln, h->width, pre);
				double ntp = entropy_side(&pos, lp, h->width, pre);
				tn = ntn;
				tp = ntp;
				if (!(tn + tp > 0))
					break;
			}
			lo = -tn;
			hi = tp;
		}
	} else {
		mse_range(&neg, &pos, h->width, L, &lo, &hi, pre);
		/* The bins holding the extremes reach past them; the data does not. */
		lo = fmax(lo, fmin(h->min, 0));
		hi = fmin(hi, fmax(h->max, 0));
	}
	free(buf);
	finish_range(h, lo, hi, lo_out, hi_out);
	return QT_OK;
}
