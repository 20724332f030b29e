/*
 * Calibration observer: per observed tensor, the running min/max, the count
 * of exact zeros and a fixed-size histogram of the non-zero values whose
 * bins are aligned on 0 (layout in qtool/calib.h).
 *
 * Growth: the bin width is always the smallest power of two at which the
 * extremes seen so far fit, and the zero bin sits where a fixed rule puts it
 * for those extremes. When a batch widens the extremes, the width doubles as
 * often as needed (k = 2^m) and each side's bins are merged k at a time
 * counting outward from 0: bin j of a side holds magnitudes [jw, (j+1)w), so
 * merged bin floor(j/k) holds [floor(j/k)kw, ...), which contains it. With a
 * power-of-two width |x| / w is exact, so every count is exactly what
 * binning all the data at the final width gives, and the histogram depends
 * only on the data, not on how it was split into batches or their order.
 * The price is resolution: the data spans between about half and all of
 * the n_bins. Memory per tensor is n_bins counters, whatever the number of
 * samples.
 *
 * Float: activations arrive as float32; statistics are kept in double and
 * uint64 counters (exact up to 2^64 elements).
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qtool/calib.h"
#include "core/arena.h"

enum { OBS_UNSEEN = 0, OBS_FLOAT, OBS_OTHER };

struct obs {
	int state; /* OBS_*: not seen yet, seen as float32, seen as another dtype */
	struct qt_calib_hist h;
};

struct qt_calib {
	const struct qt_graph *g;
	struct qt_arena *arena; /* histograms; freed with the object */
	int n_bins;
	int *slot;       /* per graph value: index into obs, or -1 when not observed */
	int n_obs;
	struct obs *obs;
	uint64_t *scratch; /* n_bins counters for re-binning */
	struct qt_input_shapes shapes; /* first shape seen per graph input */
};

/* Remember the first shape graph input `value` is run at (a symbolic batch
 * dim as 1: the shapes are for dry runs, which need one sample). */
static void note_input_shape(struct qt_calib *c, int value, const struct qt_tensor *t)
{
	const struct qt_value *v = &c->g->values[value];
	if (!v->is_input)
		return;
	for (int k = 0; k < c->shapes.n; k++)
		if (!strcmp(c->shapes.s[k].name, v->name))
			return;
	int64_t dims[QT_MAX_RANK];
	for (int d = 0; d < t->rank; d++)
		dims[d] = d == 0 && t->rank > 1 && !(v->rank > 0 && v->dims[0] >= 0) ? 1 : t->dims[d];
	/* A name too long or a 17th input is left out: quantize then asks for --input-shape. */
	(void)qt_input_shapes_set(&c->shapes, v->name, t->rank, dims);
}

enum qt_status qt_calib_new(const struct qt_graph *g, const struct qt_calib_opts *o, struct qt_calib **out)
{
	*out = NULL;
	int bins = o && o->bins ? o->bins : QT_CALIB_DEFAULT_BINS;
	if (bins < QT_CALIB_MIN_BINS || bins > QT_CALIB_MAX_BINS)
		return qt_error(QT_E_INVALID_ARG, "histogram bins %d outside %d..%d", bins, QT_CALIB_MIN_BINS,
				QT_CALIB_MAX_BINS);
	struct qt_calib *c = calloc(1, sizeof *c);
	if (!c)
		return qt_error(QT_E_NOMEM, "out of memory starting calibration");
	c->g = g;
	c->n_bins = bins;
	c->arena = qt_arena_new(1 << 20);
	c->slot = malloc(((size_t)g->n_values + 1) * sizeof *c->slot);
	c->obs = calloc((size_t)g->n_values + 1, sizeof *c->obs);
	c->scratch = malloc((size_t)bins * sizeof *c->scratch);
	if (!c->arena || !c->slot || !c->obs || !c->scratch) {
		qt_calib_free(c);
		return qt_error(QT_E_NOMEM, "out of memory starting calibration");
	}
	for (int v = 0; v < g->n_values; v++) {
		const struct qt_value *val = &g->values[v];
		int wanted = !val->init && (val->is_input || val->producer >= 0) &&
			     (val->dtype == QT_DTYPE_F32 || val->dtype == QT_DTYPE_UNDEFINED);
		/* Graph inputs are not always flagged before finalisation; the
		 * input list is authoritative. */
		for (int i = 0; i < g->n_inputs && !wanted; i++)
			wanted = g->inputs[i] == v && !val->init &&
				 (val->dtype == QT_DTYPE_F32 || val->dtype == QT_DTYPE_UNDEFINED);
		c->slot[v] = wanted ? c->n_obs++ : -1;
	}
	*out = c;
	return QT_OK;
}

void qt_calib_free(struct qt_calib *c)
{
	if (!c)
		return;
	qt_arena_free(c->arena);
	free(c->slot);
	free(c->obs);
	free(c->scratch);
	free(c);
}

const struct qt_calib_hist *qt_calib_stats(const struct qt_calib *c, int value)
{
	if (value < 0 || value >= c->g->n_values || c->slot[value] < 0)
		return NULL;
	const struct obs *ob = &c->obs[c->slot[value]];
	return ob->state == OBS_FLOAT ? &ob->h : NULL;
}

/* 1 when magnitudes up to a (negative side) and b (positive side) fit n bins of width w. */
static int fits(double a, double b, double w, int n)
{
	return ceil(a / w) + ceil(b / w) <= (double)n;
}

/*
 * Bins given to the negative side for magnitudes a (negative) and b
 * (positive) at width w (fits() must hold): each side gets what it needs and
 * the spare bins are shared in proportion, so the next growth on either
 * side is less likely to force a merge.
 */
static int layout_zero_bin(double a, double b, double w, int n)
{
	double na = ceil(a / w), nb = ceil(b / w);
	double spare = (double)n - na - nb;
	double z = na;
	if (spare > 0 && na + nb > 0)
		z += floor(spare * na / (na + nb));
	if (z > n)
		z = n;
	return (int)z;
}

/*
 * The histogram geometry for magnitudes a (negative side) and b (positive
 * side): the smallest power-of-two width at which they fit (and not below
 * w_min), and its canonical layout. Both depend on a and b only.
 */
static double pow2_width(double a, double b, int n, double w_min)
{
	int e;
	frexp((a + b) / (double)n, &e); /* (a+b)/n <= 2^e, and no smaller width fits */
	double w = ldexp(1.0, e - 1);
	if (w < w_min)
		w = w_min;
	while (!fits(a, b, w, n))
		w *= 2;
	return w;
}

/*
 * Bring h to the geometry of magnitudes a and b: when the width grows by the
 * power of two k, magnitude bin j of each side becomes bin floor(j / k); the
 * zero bin moves to its canonical place. Counts stay exact.
 */
static void regrid(struct qt_calib_hist *h, double a, double b, uint64_t *scratch)
{
	int n = h->n_bins;
	if (h->width == 0) { /* first non-zero data: nothing to move */
		h->width = pow2_width(a, b, n, 0);
		h->zero_bin = layout_zero_bin(a, b, h->width, n);
		return;
	}
	double nw = pow2_width(a, b, n, h->width), k = nw / h->width;
	int z = h->zero_bin, nz = layout_zero_bin(a, b, nw, n);
	if (nw == h->width && nz == z)
		return;
	memset(scratch, 0, (size_t)n * sizeof *scratch);
	for (int j = 0; j < z; j++) { /* negative side, j = 0 next to zero */
		int nj = (int)fmin(floor((double)j / k), (double)(nz - 1));
		scratch[nz - 1 - nj] += h->counts[z - 1 - j];
	}
	for (int j = 0; j < n - z; j++) {
		int nj = (int)fmin(floor((double)j / k), (double)(n - nz - 1));
		scratch[nz + nj] += h->counts[z + j];
	}
	memcpy(h->counts, scratch, (size_t)n * sizeof *scratch);
	h->width = nw;
	h->zero_bin = nz;
}

enum qt_status qt_calib_observer(void *calib, int value, struct qt_tensor *t)
{
	struct qt_calib *c = calib;
	if (value < 0 || value >= c->g->n_values)
		return QT_OK;
	note_input_shape(c, value, t);
	if (c->slot[value] < 0)
		return QT_OK;
	struct obs *ob = &c->obs[c->slot[value]];
	const char *name = c->g->values[value].name;
	if (t->dtype != QT_DTYPE_F32) {
		if (ob->state == OBS_UNSEEN)
			ob->state = OBS_OTHER;
		return QT_OK;
	}
	if (ob->state == OBS_OTHER)
		return QT_OK;
	struct qt_calib_hist *h = &ob->h;
	if (ob->state == OBS_UNSEEN) {
		/* One spare counter past the n_bins (see pass 2). */
		h->counts = qt_arena_alloc(c->arena, ((size_t)c->n_bins + 1) * sizeof *h->counts);
		if (!h->counts)
			return qt_error(QT_E_NOMEM, "out of memory for the histogram of tensor \"%s\"", name);
		h->n_bins = c->n_bins;
		ob->state = OBS_FLOAT;
	}
	int64_t n = qt_tensor_numel(t);
	if (n <= 0)
		return QT_OK;
	if (!t->data || t->nbytes < (size_t)n * sizeof(float))
		return qt_error(QT_E_INVALID_ARG, "tensor \"%s\": buffer smaller than its shape", name);
	const float *x = t->data;

	/* Pass 1: finiteness and extremes, branch-free so it vectorizes; the
	 * first bad element is looked for only when there is one. */
	float mn = x[0], mx = x[0];
	int bad = 0;
	for (int64_t i = 0; i < n; i++) {
		float v = x[i];
		bad |= !(fabsf(v) <= FLT_MAX);
		mn = v < mn ? v : mn;
		mx = v > mx ? v : mx;
	}
	if (bad)
		for (int64_t i = 0; i < n; i++)
			if (!isfinite(x[i]))
				return qt_error(QT_E_NUMERIC,
						"tensor \"%s\": element %lld is %s (calibration needs finite activations)",
						name, (long long)i, isnan(x[i]) ? "NaN" : x[i] > 0 ? "+Inf" : "-Inf");
	if (h->count == 0) {
		h->min = mn;
		h->max = mx;
	} else {
		h->min = fmin(h->min, mn);
		h->max = fmax(h->max, mx);
	}
	h->count += (uint64_t)n;
	double a = h->min < 0 ? -h->min : 0, b = h->max > 0 ? h->max : 0;
	if (a + b == 0) { /* everything so far is 0 */
		h->zeros += (uint64_t)n;
		return QT_OK;
	}
	regrid(h, a, b, c->scratch);
	int z = h->zero_bin, np = h->n_bins - h->zero_bin;

	/* Pass 2: binning, without data-dependent branches (signs are random
	 * in most activations). A magnitude on the far edge of a side's last
	 * bin (the extreme itself, or rounding of |x| / w) is clamped into it.
	 * Zeros are counted in bin z (the slot after the n_bins counters when
	 * z = n_bins), then moved to `zeros`. */
	double inv = 1.0 / h->width;
	uint64_t zeros = 0;
	uint64_t *cnt = h->counts;
	for (int64_t i = 0; i < n; i++) {
		float v = x[i];
		double q = fabs((double)v) * inv;
		int jp = q < np ? (int)q : np - 1;
		int jn = q < z ? (int)q : z - 1;
		int sp = v > 0, sn = v < 0;
		int idx = z + sp * jp - sn * (1 + jn);
		cnt[idx]++;
		zeros += v == 0;
	}
	cnt[z] -= zeros;
	h->zeros += zeros;
	return QT_OK;
}

enum qt_status qt_calib_finish(const struct qt_calib *c, const struct qt_calib_meta *meta,
			       struct qt_calib_table **out)
{
	*out = NULL;
	int bits = meta->bits ? meta->bits : 8;
	double pct = meta->percentile != 0 ? meta->percentile : QT_CALIB_DEFAULT_PERCENTILE;
	if (bits < QT_CALIB_MIN_RANGE_BITS || bits > QT_CALIB_MAX_RANGE_BITS)
		return qt_error(QT_E_INVALID_ARG, "bits %d outside %d..%d", bits, QT_CALIB_MIN_RANGE_BITS,
				QT_CALIB_MAX_RANGE_BITS);
	if (!(pct >= 50 && pct <= 100))
		return qt_error(QT_E_INVALID_ARG, "percentile %g outside 50..100", pct);
	if ((int)meta->default_method < 0 || meta->default_method >= QT_CALIB_N_METHODS)
		return qt_error(QT_E_INVALID_ARG, "unknown calibration method %d", (int)meta->default_method);

	struct qt_calib_table *t = calloc(1, sizeof *t);
	if (!t || !(t->arena = qt_arena_new(1 << 20))) {
		free(t);
		return qt_error(QT_E_NOMEM, "out of memory building the calibration table");
	}
	enum qt_status st = QT_OK;
	const struct qt_graph *g = c->g;
	for (int i = 0; i < 32; i++) {
		static const char hx[] = "0123456789abcdef";
		t->model_sha256[2 * i] = hx[g->sha256[i] >> 4];
		t->model_sha256[2 * i + 1] = hx[g->sha256[i] & 15];
	}
	t->model = qt_arena_strdup(t->arena, meta->model ? meta->model : "");
	t->dataset = qt_arena_strdup(t->arena, meta->dataset ? meta->dataset : "");
	t->path = qt_arena_strdup(t->arena, "");
	t->samples = meta->samples;
	t->default_method = meta->default_method;
	t->bits = bits;
	t->percentile = pct;
	t->input_shapes = c->shapes;
	int n = 0;
	for (int v = 0; v < g->n_values; v++)
		n += qt_calib_stats(c, v) != NULL;
	t->tensors = qt_arena_alloc(t->arena, ((size_t)n + 1) * sizeof *t->tensors);
	if (!t->model || !t->dataset || !t->path || !t->tensors) {
		st = qt_error(QT_E_NOMEM, "out of memory building the calibration table");
		goto fail;
	}
	for (int v = 0; v < g->n_values; v++) {
		const struct qt_calib_hist *h = qt_calib_stats(c, v);
		if (!h)
			continue;
		struct qt_calib_entry *e = &t->tensors[t->n_tensors++];
		e->name = qt_arena_strdup(t->arena, g->values[v].name);
		e->hist = *h;
		e->hist.counts = qt_arena_alloc(t->arena, (size_t)h->n_bins * sizeof *h->counts);
		if (!e->name || !e->hist.counts) {
			st = qt_error(QT_E_NOMEM, "out of memory building the calibration table");
			goto fail;
		}
		memcpy(e->hist.counts, h->counts, (size_t)h->n_bins * sizeof *h->counts);
		for (int m = 0; m < QT_CALIB_N_METHODS; m++) {
			st = qt_calib_hist_range(&e->hist, (enum qt_calib_method)m, bits, pct, &e->range[m][0],
						 &e->range[m][1]);
			if (st) {
				qt_error_prefix(st, "tensor \"%s\"", e->name);
				goto fail;
			}
			e->has_range[m] = 1;
		}
	}
	*out = t;
	return QT_OK;
fail:
	qt_calib_table_free(t);
	return st;
}
