/*
 * Calibration files: JSON (docs/CALIB_FORMAT.md is the contract) written
 * atomically and read with complete validation, since a calibration file is
 * untrusted input like a model. Also the table look-ups the quantizer uses.
 *
 * Float: min, max and stored ranges are float32 values (written with the
 * fewest digits that read back as the same float); histogram bounds are
 * doubles (written with up to 17 significant digits).
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "qtool/calib.h"
#include "core/arena.h"

#define CALIB_FORMAT "qtool-calib"
#define CALIB_VERSION 1
#define CALIB_MAX_FILE_BYTES ((size_t)256 << 20)
/* Counts must be exact in a JSON number (IEEE double). */
#define CALIB_MAX_COUNT 9007199254740992.0 /* 2^53 */

void qt_calib_table_free(struct qt_calib_table *t)
{
	if (!t)
		return;
	qt_arena_free(t->arena);
	free(t);
}

static int entry_cmp(const void *a, const void *b)
{
	const struct qt_calib_entry *x = *(const struct qt_calib_entry *const *)a;
	const struct qt_calib_entry *y = *(const struct qt_calib_entry *const *)b;
	return strcmp(x->name, y->name);
}

const struct qt_calib_entry *qt_calib_find(const struct qt_calib_table *t, const char *name)
{
	/* Tables hold at most QT_CALIB_MAX_TENSORS entries and the quantizer
	 * looks up each activation once: a linear scan is cheap enough. */
	for (int i = 0; i < t->n_tensors; i++)
		if (!strcmp(t->tensors[i].name, name))
			return &t->tensors[i];
	return NULL;
}

static const char *table_label(const struct qt_calib_table *t)
{
	return t->path && t->path[0] ? t->path : "(in memory)";
}

enum qt_status qt_calib_range_p(const struct qt_calib_table *t, const char *tensor, const char *method, int bits,
				double percentile, float *lo_out, float *hi_out)
{
	enum qt_calib_method m = t->default_method;
	if (method && qt_calib_method_parse(method, &m) != 0)
		return qt_error(QT_E_INVALID_ARG,
				"unknown calibration method \"%s\" (use minmax, percentile, entropy or mse)", method);
	if (bits <= 0)
		bits = t->bits;
	if (percentile <= 0)
		percentile = t->percentile;
	const struct qt_calib_entry *e = qt_calib_find(t, tensor);
	if (!e)
		return qt_error(QT_E_FORMAT, "calibration file %s has no statistics for tensor \"%s\"", table_label(t),
				tensor);
	/* A stored range is used as is when it was computed with the same
	 * parameters (minmax and percentile do not depend on bits, entropy and
	 * mse not on the percentile). */
	int same = m == QT_CALIB_MINMAX || (m == QT_CALIB_PERCENTILE ? percentile == t->percentile : bits == t->bits);
	if (e->has_range[m] && same) {
		*lo_out = e->range[m][0];
		*hi_out = e->range[m][1];
		return QT_OK;
	}
	enum qt_status st = qt_calib_hist_range(&e->hist, m, bits, percentile, lo_out, hi_out);
	if (st)
		qt_error_prefix(st, "%s: tensor \"%s\"", table_label(t), tensor);
	return st;
}

enum qt_status qt_calib_range(const struct qt_calib_table *t, const char *tensor, const char *method, int bits,
			      float *lo_out, float *hi_out)
{
	return qt_calib_range_p(t, tensor, method, bits, 0, lo_out, hi_out);
}

/* ---- writing ---- */

/* Shortest decimal that reads back as the same float32 (%.9g always does). */
static cJSON *float_json(float f)
{
	char buf[40];
	for (int prec = 6; prec <= 9; prec++) {
		snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
		if (strtof(buf, NULL) == f)
			break;
	}
	return cJSON_CreateRaw(buf);
}

static int add(cJSON *obj, const char *key, cJSON *item)
{
	if (!item)
		return -1;
	cJSON_AddItemToObject(obj, key, item);
	return 0;
}

/* Counts with each run of two or more zero bins written as [run length]. */
static cJSON *counts_json(const struct qt_calib_hist *h)
{
	cJSON *arr = cJSON_CreateArray();
	if (!arr)
		return NULL;
	for (int i = 0; i < h->n_bins;) {
		int j = i;
		while (j < h->n_bins && h->counts[j] == 0)
			j++;
		cJSON *item;
		if (j - i >= 2) {
			item = cJSON_CreateArray();
			cJSON *run = cJSON_CreateNumber(j - i);
			if (!item || !run) {
				cJSON_Delete(item);
				cJSON_Delete(run);
				cJSON_Delete(arr);
				return NULL;
			}
			cJSON_AddItemToArray(item, run);
			i = j;
		} else {
			item = cJSON_CreateNumber((double)h->counts[i]);
			i++;
		}
		if (!item) {
			cJSON_Delete(arr);
			return NULL;
		}
		cJSON_AddItemToArray(arr, item);
	}
	return arr;
}

static cJSON *entry_json(const struct qt_calib_entry *e)
{
	const struct qt_calib_hist *h = &e->hist;
	cJSON *o = cJSON_CreateObject(), *hj = cJSON_CreateObject(), *rj = cJSON_CreateObject();
	int bad = !o || !hj || !rj;
	bad |= !o || add(o, "min", float_json((float)h->min)) || add(o, "max", float_json((float)h->max)) ||
	       add(o, "count", cJSON_CreateNumber((double)h->count));
	if (!bad) {
		double lo = -(double)h->zero_bin * h->width, hi = (double)(h->n_bins - h->zero_bin) * h->width;
		bad |= add(hj, "lo", cJSON_CreateNumber(lo + 0.0)) || add(hj, "hi", cJSON_CreateNumber(hi)) ||
		       add(hj, "bins", cJSON_CreateNumber(h->n_bins)) ||
		       add(hj, "zeros", cJSON_CreateNumber((double)h->zeros)) || add(hj, "counts", counts_json(h));
		cJSON_AddItemToObject(o, "hist", hj);
		hj = NULL;
	}
	for (int m = 0; !bad && m < QT_CALIB_N_METHODS; m++) {
		if (!e->has_range[m])
			continue;
		cJSON *pair = cJSON_CreateArray();
		cJSON *a = float_json(e->range[m][0]), *b = float_json(e->range[m][1]);
		if (!pair || !a || !b) {
			cJSON_Delete(pair);
			cJSON_Delete(a);
			cJSON_Delete(b);
			bad = 1;
			break;
		}
		cJSON_AddItemToArray(pair, a);
		cJSON_AddItemToArray(pair, b);
		cJSON_AddItemToObject(rj, qt_calib_method_name((enum qt_calib_method)m), pair);
	}
	if (!bad) {
		cJSON_AddItemToObject(o, "ranges", rj);
		rj = NULL;
	}
	cJSON_Delete(hj);
	cJSON_Delete(rj);
	if (bad) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

enum qt_status qt_calib_to_json(const struct qt_calib_table *t, char **json_out)
{
	*json_out = NULL;
	/* Refuse what the reader would refuse, so a written file always loads. */
	for (int i = 0; i < t->n_tensors; i++) {
		const struct qt_calib_entry *e = &t->tensors[i];
		enum qt_status st = qt_calib_hist_check(&e->hist, e->name);
		if (st)
			return qt_error_prefix(QT_E_INVALID_ARG, "cannot write calibration statistics");
		if ((double)e->hist.count > CALIB_MAX_COUNT)
			return qt_error(QT_E_UNSUPPORTED, "tensor \"%s\": more than 2^53 elements observed", e->name);
		for (int m = 0; m < QT_CALIB_N_METHODS; m++)
			if (e->has_range[m] && !(e->range[m][0] <= 0 && e->range[m][1] >= 0 &&
						 e->range[m][1] > e->range[m][0] && isfinite(e->range[m][0]) &&
						 isfinite(e->range[m][1])))
				return qt_error(QT_E_INVALID_ARG, "tensor \"%s\": invalid %s range [%g, %g]", e->name,
						qt_calib_method_name((enum qt_calib_method)m), e->range[m][0],
						e->range[m][1]);
	}
	cJSON *root = cJSON_CreateObject(), *tensors = cJSON_CreateObject();
	int bad = !root || !tensors;
	if (!bad)
		bad = add(root, "format", cJSON_CreateString(CALIB_FORMAT)) ||
		      add(root, "version", cJSON_CreateNumber(CALIB_VERSION)) ||
		      add(root, "model_sha256", cJSON_CreateString(t->model_sha256)) ||
		      add(root, "model", cJSON_CreateString(t->model ? t->model : "")) ||
		      add(root, "dataset", cJSON_CreateString(t->dataset ? t->dataset : "")) ||
		      add(root, "samples", cJSON_CreateNumber((double)t->samples)) ||
		      add(root, "default_method", cJSON_CreateString(qt_calib_method_name(t->default_method))) ||
		      add(root, "bits", cJSON_CreateNumber(t->bits)) ||
		      add(root, "percentile", cJSON_CreateNumber(t->percentile));
	for (int i = 0; !bad && i < t->n_tensors; i++) {
		cJSON *e = entry_json(&t->tensors[i]);
		if (!e)
			bad = 1;
		else
			cJSON_AddItemToObject(tensors, t->tensors[i].name, e);
	}
	if (!bad && t->input_shapes.n) {
		cJSON *shapes = cJSON_CreateObject();
		bad = !shapes;
		for (int i = 0; !bad && i < t->input_shapes.n; i++) {
			const struct qt_input_shape *is = &t->input_shapes.s[i];
			cJSON *a = cJSON_CreateArray();
			bad = !a;
			for (int d = 0; !bad && d < is->rank; d++)
				bad = !cJSON_AddItemToArray(a, cJSON_CreateNumber((double)is->dims[d]));
			if (a)
				cJSON_AddItemToObject(shapes, is->name, a);
		}
		if (shapes)
			cJSON_AddItemToObject(root, "input_shapes", shapes);
	}
	if (!bad) {
		cJSON_AddItemToObject(root, "tensors", tensors);
		tensors = NULL;
	}
	char *s = bad ? NULL : cJSON_Print(root);
	cJSON_Delete(root);
	cJSON_Delete(tensors);
	if (!s)
		return qt_error(QT_E_NOMEM, "out of memory formatting the calibration file");
	*json_out = s;
	return QT_OK;
}

enum qt_status qt_calib_write(const struct qt_calib_table *t, const char *path)
{
	char *json = NULL;
	enum qt_status st = qt_calib_to_json(t, &json);
	if (st)
		return qt_error_prefix(st, "%s", path);
	size_t n = strlen(path);
	char *tmp = malloc(n + 16);
	if (!tmp) {
		free(json);
		return qt_error(QT_E_NOMEM, "%s: out of memory", path);
	}
	snprintf(tmp, n + 16, "%s.tmp.XXXXXX", path);
	int fd = mkstemp(tmp);
	if (fd < 0) {
		st = qt_error(QT_E_IO, "%s: cannot create: %s", path, strerror(errno));
		goto out;
	}
	size_t len = strlen(json), off = 0;
	while (off < len) {
		ssize_t w = write(fd, json + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			st = qt_error(QT_E_IO, "%s: write failed: %s", path, strerror(errno));
			break;
		}
		off += (size_t)w;
	}
	if (!st && write(fd, "\n", 1) != 1)
		st = qt_error(QT_E_IO, "%s: write failed: %s", path, strerror(errno));
	if (!st && fsync(fd) != 0)
		st = qt_error(QT_E_IO, "%s: cannot flush: %s", path, strerror(errno));
	if (close(fd) != 0 && !st)
		st = qt_error(QT_E_IO, "%s: cannot close: %s", path, strerror(errno));
	/* mkstemp creates 0600; a calibration file is an ordinary output. */
	if (!st && chmod(tmp, 0644) != 0)
		st = qt_error(QT_E_IO, "%s: cannot set permissions: %s", path, strerror(errno));
	if (!st && rename(tmp, path) != 0)
		st = qt_error(QT_E_IO, "%s: cannot rename into place: %s", path, strerror(errno));
	if (st)
		unlink(tmp);
out:
	free(tmp);
	free(json);
	return st;
}

/* ---- reading ---- */

struct rd {
	const char *label; /* file name for messages */
	struct qt_calib_table *t;
	int64_t total_bins;
};

static enum qt_status bad(const struct rd *r, const char *fmt, const char *a, const char *b)
{
	char msg[512];
	snprintf(msg, sizeof msg, fmt, a ? a : "", b ? b : "");
	return qt_error(QT_E_FORMAT, "%s: %s", r->label, msg);
}

/* A finite JSON number, or QT_E_FORMAT naming `what`. */
static enum qt_status get_num(const struct rd *r, const cJSON *it, const char *what, double *out)
{
	if (!cJSON_IsNumber(it))
		return qt_error(QT_E_FORMAT, "%s: %s must be a number", r->label, what);
	if (!isfinite(it->valuedouble))
		return qt_error(QT_E_FORMAT, "%s: %s must be finite", r->label, what);
	*out = it->valuedouble;
	return QT_OK;
}

/* A JSON integer in [lo, hi] (exact in a double). */
static enum qt_status get_int(const struct rd *r, const cJSON *it, const char *what, double lo, double hi,
			      double *out)
{
	enum qt_status st = get_num(r, it, what, out);
	if (st)
		return st;
	if (*out != floor(*out) || *out < lo || *out > hi)
		return qt_error(QT_E_FORMAT, "%s: %s must be an integer in %.17g..%.17g, not %.17g", r->label, what,
				lo, hi, *out);
	return QT_OK;
}

/* A float32 value (finite, within float range), rounded to float. */
static enum qt_status get_float(const struct rd *r, const cJSON *it, const char *what, float *out)
{
	double d = 0;
	enum qt_status st = get_num(r, it, what, &d);
	if (st)
		return st;
	if (fabs(d) > FLT_MAX)
		return qt_error(QT_E_FORMAT, "%s: %s = %g is outside the float32 range", r->label, what, d);
	*out = (float)d;
	return QT_OK;
}

static const cJSON *member(const cJSON *obj, const char *key)
{
	return cJSON_GetObjectItemCaseSensitive(obj, key);
}

/* Required member of obj; `where` names obj in messages. */
static enum qt_status need(const struct rd *r, const cJSON *obj, const char *key, const char *where,
			   const cJSON **out)
{
	*out = member(obj, key);
	if (!*out)
		return qt_error(QT_E_FORMAT, "%s: %s has no \"%s\"", r->label, where, key);
	return QT_OK;
}

static enum qt_status read_hist(struct rd *r, const cJSON *tj, const char *name, struct qt_calib_hist *h)
{
	char what[320], where[300];
	const cJSON *it, *hj;
	double d = 0;
	float f = 0;
	enum qt_status st;
	snprintf(where, sizeof where, "tensor \"%s\"", name);
#define WHAT(field) (snprintf(what, sizeof what, "tensor \"%s\": %s", name, field), what)
	if ((st = need(r, tj, "min", where, &it)) || (st = get_float(r, it, WHAT("min"), &f)))
		return st;
	h->min = f;
	if ((st = need(r, tj, "max", where, &it)) || (st = get_float(r, it, WHAT("max"), &f)))
		return st;
	h->max = f;
	if ((st = need(r, tj, "count", where, &it)) || (st = get_int(r, it, WHAT("count"), 0, CALIB_MAX_COUNT, &d)))
		return st;
	h->count = (uint64_t)d;
	if ((st = need(r, tj, "hist", where, &hj)))
		return st;
	if (!cJSON_IsObject(hj))
		return qt_error(QT_E_FORMAT, "%s: tensor \"%s\": hist must be an object", r->label, name);
	double lo, hi;
	snprintf(where, sizeof where, "tensor \"%s\": hist", name);
	if ((st = need(r, hj, "lo", where, &it)) || (st = get_num(r, it, WHAT("hist.lo"), &lo)) ||
	    (st = need(r, hj, "hi", where, &it)) || (st = get_num(r, it, WHAT("hist.hi"), &hi)))
		return st;
	if (!(lo <= 0 && hi >= 0))
		return qt_error(QT_E_FORMAT, "%s: tensor \"%s\": hist.lo %g and hist.hi %g must satisfy lo <= 0 <= hi",
				r->label, name, lo, hi);
	if ((st = need(r, hj, "bins", where, &it)) ||
	    (st = get_int(r, it, WHAT("hist.bins"), QT_CALIB_MIN_BINS, QT_CALIB_MAX_BINS, &d)))
		return st;
	h->n_bins = (int)d;
	if (r->total_bins + h->n_bins > QT_CALIB_MAX_TOTAL_BINS)
		return qt_error(QT_E_FORMAT, "%s: more than %lld histogram bins in all", r->label,
				(long long)QT_CALIB_MAX_TOTAL_BINS);
	r->total_bins += h->n_bins;
	if ((st = need(r, hj, "zeros", where, &it)) ||
	    (st = get_int(r, it, WHAT("hist.zeros"), 0, CALIB_MAX_COUNT, &d)))
		return st;
	h->zeros = (uint64_t)d;
	if (hi == lo) {
		h->width = 0;
		h->zero_bin = 0;
	} else {
		h->width = (hi - lo) / h->n_bins;
		double zb = -lo / h->width;
		if (!isfinite(h->width) || h->width <= 0 || fabs(zb - nearbyint(zb)) > 1e-6)
			return qt_error(QT_E_FORMAT, "%s: tensor \"%s\": 0 is not a bin edge of hist [%g, %g] with %d bins",
					r->label, name, lo, hi, h->n_bins);
		h->zero_bin = (int)nearbyint(zb);
	}
	h->counts = qt_arena_alloc(r->t->arena, (size_t)h->n_bins * sizeof *h->counts);
	if (!h->counts)
		return qt_error(QT_E_NOMEM, "%s: out of memory", r->label);
	const cJSON *cj;
	if ((st = need(r, hj, "counts", where, &cj)))
		return st;
	if (!cJSON_IsArray(cj))
		return qt_error(QT_E_FORMAT, "%s: tensor \"%s\": hist.counts must be an array", r->label, name);
	int k = 0;
	for (const cJSON *c = cj->child; c; c = c->next) {
		if (cJSON_IsArray(c)) { /* [n]: n zero bins */
			if (cJSON_GetArraySize(c) != 1)
				return qt_error(QT_E_FORMAT, "%s: tensor \"%s\": a run of zero bins must be [length]",
						r->label, name);
			if ((st = get_int(r, c->child, WHAT("hist.counts zero run"), 1, h->n_bins - k, &d)))
				return st;
			k += (int)d; /* counts are already zero */
			continue;
		}
		if (k >= h->n_bins)
			return qt_error(QT_E_FORMAT, "%s: tensor \"%s\": hist.counts has more than %d bins", r->label,
					name, h->n_bins);
		if (cJSON_IsNumber(c) && isfinite(c->valuedouble) && c->valuedouble < 0)
			return qt_error(QT_E_FORMAT, "%s: tensor \"%s\": hist.counts[%d] = %g is negative", r->label,
					name, k, c->valuedouble);
		if ((st = get_int(r, c, WHAT("each hist count"), 0, CALIB_MAX_COUNT, &d)))
			return st;
		h->counts[k++] = (uint64_t)d;
	}
	if (k != h->n_bins)
		return qt_error(QT_E_FORMAT, "%s: tensor \"%s\": hist.counts has %d bins, hist.bins says %d", r->label,
				name, k, h->n_bins);
#undef WHAT
	snprintf(where, sizeof where, "%s: tensor \"%s\"", r->label, name);
	return qt_calib_hist_check(h, where);
}

static enum qt_status read_entry(struct rd *r, const cJSON *tj, struct qt_calib_entry *e)
{
	const char *name = tj->string;
	enum qt_status st;
	if (!cJSON_IsObject(tj))
		return qt_error(QT_E_FORMAT, "%s: tensor \"%s\" must be an object", r->label, name);
	if (!(e->name = qt_arena_strdup(r->t->arena, name)))
		return qt_error(QT_E_NOMEM, "%s: out of memory", r->label);
	if ((st = read_hist(r, tj, name, &e->hist)))
		return st;
	const cJSON *rj = member(tj, "ranges");
	if (!rj)
		return QT_OK; /* ranges are recomputed from the histogram */
	if (!cJSON_IsObject(rj))
		return qt_error(QT_E_FORMAT, "%s: tensor \"%s\": ranges must be an object", r->label, name);
	for (const cJSON *it = rj->child; it; it = it->next) {
		enum qt_calib_method m;
		if (qt_calib_method_parse(it->string, &m) != 0)
			continue; /* a method this version does not know */
		char what[320];
		float lo, hi;
		snprintf(what, sizeof what, "tensor \"%s\": ranges.%s", name, it->string);
		if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != 2)
			return qt_error(QT_E_FORMAT, "%s: %s must be [lo, hi]", r->label, what);
		if ((st = get_float(r, it->child, what, &lo)) || (st = get_float(r, it->child->next, what, &hi)))
			return st;
		if (!(lo <= 0 && 0 <= hi && lo < hi))
			return qt_error(QT_E_FORMAT, "%s: %s = [%g, %g] must satisfy lo <= 0 <= hi and lo < hi", r->label,
					what, lo, hi);
		if (e->has_range[m])
			return qt_error(QT_E_FORMAT, "%s: %s given twice", r->label, what);
		e->range[m][0] = lo;
		e->range[m][1] = hi;
		e->has_range[m] = 1;
	}
	return QT_OK;
}

static int cstr_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every tensor of the table must be a value of g (sorted names, binary search). */
static enum qt_status check_against_graph(const struct rd *r, const struct qt_graph *g)
{
	struct qt_calib_table *t = r->t;
	char hex[65];
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", g->sha256[i]);
	const char *gpath = g->path && g->path[0] ? g->path : "the model";
	if (strcmp(hex, t->model_sha256) != 0)
		return qt_error(QT_E_FORMAT, "%s: made for model %s with sha256 %.16s..., but %s has sha256 %.16s...",
				r->label, t->model[0] ? t->model : "(unnamed)", t->model_sha256, gpath, hex);
	const char **names = malloc(((size_t)g->n_values + 1) * sizeof *names);
	if (!names)
		return qt_error(QT_E_NOMEM, "%s: out of memory", r->label);
	for (int v = 0; v < g->n_values; v++)
		names[v] = g->values[v].name;
	qsort(names, (size_t)g->n_values, sizeof *names, cstr_cmp);
	enum qt_status st = QT_OK;
	for (int i = 0; i < t->n_tensors && !st; i++) {
		const char *key = t->tensors[i].name;
		if (!bsearch(&key, names, (size_t)g->n_values, sizeof *names, cstr_cmp))
			st = qt_error(QT_E_FORMAT, "%s: tensor \"%s\" is not in %s", r->label, key, gpath);
	}
	free(names);
	return st;
}

/* "input_shapes": {"NAME": [d0, d1, ...], ...}, optional (version 1 files
 * before it have none). With g, every NAME must be one of g's inputs. */
static enum qt_status read_input_shapes(struct rd *r, const cJSON *it, const struct qt_graph *g)
{
	if (!cJSON_IsObject(it))
		return bad(r, "input_shapes must be an object", NULL, NULL);
	for (const cJSON *e = it->child; e; e = e->next) {
		const char *name = e->string ? e->string : "";
		int n = cJSON_IsArray(e) ? cJSON_GetArraySize(e) : -1;
		if (n < 0 || n > QT_MAX_RANK)
			return bad(r, "input_shapes: \"%s\" must be an array of at most 8 dims", name, NULL);
		int64_t dims[QT_MAX_RANK];
		int d = 0;
		enum qt_status st;
		for (const cJSON *x = e->child; x; x = x->next) {
			double v;
			if ((st = get_int(r, x, "an input_shapes dim", 1, 2147483648.0, &v)))
				return st;
			dims[d++] = (int64_t)v;
		}
		if (g) {
			int found = 0;
			for (int i = 0; i < g->n_inputs && !found; i++)
				found = !strcmp(g->values[g->inputs[i]].name, name);
			if (!found)
				return bad(r, "input_shapes: \"%s\" is not an input of the model", name, NULL);
		}
		if (qt_input_shapes_set(&r->t->input_shapes, name, d, dims))
			return qt_error_prefix(QT_E_FORMAT, "%s", r->label);
	}
	return QT_OK;
}

static enum qt_status parse_root(struct rd *r, const cJSON *root, const struct qt_graph *g)
{
	struct qt_calib_table *t = r->t;
	const cJSON *it;
	double d;
	enum qt_status st;
	const char *top = "the top-level object";
	if (!cJSON_IsObject(root))
		return bad(r, "not a calibration file (the JSON value is not an object)", NULL, NULL);
	it = member(root, "format");
	if (!cJSON_IsString(it) || strcmp(it->valuestring, CALIB_FORMAT) != 0)
		return bad(r, "not a calibration file (\"format\" must be \"%s\")", CALIB_FORMAT, NULL);
	if ((st = need(r, root, "version", top, &it)) || (st = get_num(r, it, "version", &d)))
		return st;
	if (d != CALIB_VERSION)
		return qt_error(QT_E_FORMAT, "%s: calibration file version %g is not supported (this qtool reads version %d)",
				r->label, d, CALIB_VERSION);
	if ((st = need(r, root, "model_sha256", top, &it)))
		return st;
	if (!cJSON_IsString(it) || strlen(it->valuestring) != 64)
		return bad(r, "model_sha256 must be a string of 64 hex digits", NULL, NULL);
	for (int i = 0; i < 64; i++) {
		char c = it->valuestring[i];
		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return bad(r, "model_sha256 must be a string of 64 hex digits", NULL, NULL);
		t->model_sha256[i] = c;
	}
	t->model_sha256[64] = '\0';
	static const char *const strs[] = {"model", "dataset"};
	for (int k = 0; k < 2; k++) {
		if ((st = need(r, root, strs[k], top, &it)))
			return st;
		if (!cJSON_IsString(it))
			return bad(r, "%s must be a string", strs[k], NULL);
		const char *s = qt_arena_strdup(t->arena, it->valuestring);
		if (!s)
			return qt_error(QT_E_NOMEM, "%s: out of memory", r->label);
		if (k == 0)
			t->model = s;
		else
			t->dataset = s;
	}
	if ((st = need(r, root, "samples", top, &it)) || (st = get_int(r, it, "samples", 0, CALIB_MAX_COUNT, &d)))
		return st;
	t->samples = (int64_t)d;
	if ((st = need(r, root, "default_method", top, &it)))
		return st;
	if (!cJSON_IsString(it) || qt_calib_method_parse(it->valuestring, &t->default_method) != 0)
		return bad(r, "default_method must be \"minmax\", \"percentile\", \"entropy\" or \"mse\"", NULL, NULL);
	if ((st = need(r, root, "bits", top, &it)) ||
	    (st = get_int(r, it, "bits", QT_CALIB_MIN_RANGE_BITS, QT_CALIB_MAX_RANGE_BITS, &d)))
		return st;
	t->bits = (int)d;
	if ((st = need(r, root, "percentile", top, &it)) || (st = get_num(r, it, "percentile", &d)))
		return st;
	if (!(d >= 50 && d <= 100))
		return qt_error(QT_E_FORMAT, "%s: percentile %g must be in 50..100", r->label, d);
	t->percentile = d;
	if ((it = member(root, "input_shapes")) && (st = read_input_shapes(r, it, g)))
		return st;
	const cJSON *tj;
	if ((st = need(r, root, "tensors", top, &tj)))
		return st;
	if (!cJSON_IsObject(tj))
		return bad(r, "tensors must be an object", NULL, NULL);
	int n = cJSON_GetArraySize(tj);
	if (n > QT_CALIB_MAX_TENSORS)
		return qt_error(QT_E_FORMAT, "%s: %d tensors, more than the limit %d", r->label, n, QT_CALIB_MAX_TENSORS);
	t->tensors = qt_arena_alloc(t->arena, ((size_t)n + 1) * sizeof *t->tensors);
	const struct qt_calib_entry **sorted = malloc(((size_t)n + 1) * sizeof *sorted);
	if (!t->tensors || !sorted) {
		free(sorted);
		return qt_error(QT_E_NOMEM, "%s: out of memory", r->label);
	}
	for (const cJSON *e = tj->child; e && !st; e = e->next) {
		st = read_entry(r, e, &t->tensors[t->n_tensors]);
		sorted[t->n_tensors] = &t->tensors[t->n_tensors];
		t->n_tensors++;
	}
	if (!st) {
		qsort(sorted, (size_t)t->n_tensors, sizeof *sorted, entry_cmp);
		for (int i = 1; i < t->n_tensors && !st; i++)
			if (!strcmp(sorted[i - 1]->name, sorted[i]->name))
				st = qt_error(QT_E_FORMAT, "%s: tensor \"%s\" appears twice", r->label, sorted[i]->name);
	}
	free(sorted);
	if (!st && g)
		st = check_against_graph(r, g);
	return st;
}

enum qt_status qt_calib_read_mem(const void *buf, size_t len, const char *label, const struct qt_graph *g,
				 struct qt_calib_table **out)
{
	*out = NULL;
	struct qt_calib_table *t = calloc(1, sizeof *t);
	if (!t || !(t->arena = qt_arena_new(1 << 20))) {
		free(t);
		return qt_error(QT_E_NOMEM, "%s: out of memory", label);
	}
	struct rd r = {.label = label, .t = t};
	enum qt_status st = QT_OK;
	if (len > CALIB_MAX_FILE_BYTES) {
		st = qt_error(QT_E_FORMAT, "%s: %zu bytes, larger than the %zu-byte limit for calibration files", label,
			      len, CALIB_MAX_FILE_BYTES);
		goto fail;
	}
	if (!(t->path = qt_arena_strdup(t->arena, label)) || !(t->model = qt_arena_strdup(t->arena, "")) ||
	    !(t->dataset = t->model)) {
		st = qt_error(QT_E_NOMEM, "%s: out of memory", label);
		goto fail;
	}
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
	if (!root) {
		size_t off = end && end >= (const char *)buf ? (size_t)(end - (const char *)buf) : 0;
		int line = 1;
		for (size_t i = 0; i < off && i < len; i++)
			line += ((const char *)buf)[i] == '\n';
		st = qt_error(QT_E_FORMAT, "%s: not valid JSON (error at byte %zu, line %d)", label, off, line);
		goto fail;
	}
	size_t off = end ? (size_t)(end - (const char *)buf) : len;
	while (off < len && strchr(" \t\r\n", ((const char *)buf)[off]) && ((const char *)buf)[off])
		off++;
	if (off < len)
		st = qt_error(QT_E_FORMAT, "%s: not valid JSON (unexpected text after the value at byte %zu)", label,
			      off);
	else
		st = parse_root(&r, root, g);
	cJSON_Delete(root);
	if (st)
		goto fail;
	*out = t;
	return QT_OK;
fail:
	qt_calib_table_free(t);
	return st;
}

enum qt_status qt_calib_read(const char *path, const struct qt_graph *g, struct qt_calib_table **out)
{
	*out = NULL;
	FILE *f = fopen(path, "rb");
	if (!f)
		return qt_error(QT_E_IO, "%s: cannot open: %s", path, strerror(errno));
	struct stat sb;
	if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
		fclose(f);
		return qt_error(QT_E_IO, "%s: not a regular file", path);
	}
	if ((uint64_t)sb.st_size > CALIB_MAX_FILE_BYTES) {
		fclose(f);
		return qt_error(QT_E_FORMAT, "%s: %lld bytes, larger than the %zu-byte limit for calibration files", path,
				(long long)sb.st_size, CALIB_MAX_FILE_BYTES);
	}
	size_t len = (size_t)sb.st_size;
	char *buf = malloc(len + 1);
	if (!buf) {
		fclose(f);
		return qt_error(QT_E_NOMEM, "%s: out of memory", path);
	}
	size_t got = fread(buf, 1, len, f);
	int err = ferror(f);
	fclose(f);
	if (err || got != len) {
		free(buf);
		return qt_error(QT_E_IO, "%s: read failed", path);
	}
	buf[len] = '\0';
	enum qt_status st = qt_calib_read_mem(buf, len, path, g, out);
	free(buf);
	return st;
}
