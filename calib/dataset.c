/*
 * Datasets: spec parsing, the three sources (IDX, a stacked .npy, a folder of
 * per-sample .npy or TensorProto .pb files), and the float32 preprocessing of
 * each batch. See include/qtool/dataset.h for the spec grammar and the
 * conventions.
 *
 * Reading a batch is two steps: the stored bytes of n samples go into a
 * scratch buffer (grown to the largest batch, so memory is bounded by the
 * batch), then each sample is converted to float in stored order, checked,
 * and written to the output in the output layout with the preprocessing
 * applied in float32 in the documented order.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qtool/dataset.h"
#include "qtool/idx.h"
#include "qtool/npy.h"
#include "qtool/onnx.h"

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"
#define SPEC_KINDS "fashion-mnist:train|test, idx:IMAGES[,LABELS], npy:DIR, pb:DIR or a .json file"
#define JSON_MAX_BYTES ((long)1 << 20)

enum src_kind { SRC_IDX, SRC_NPY, SRC_FILES };
enum src_fmt { FMT_IDX = 1, FMT_NPY, FMT_PB };

/* What a spec names, before anything is opened. */
struct src_spec {
	enum src_fmt fmt;
	char *images, *labels; /* owned; labels may be NULL */
	int own_preproc;       /* preprocessing fixed by the spec (fashion-mnist, JSON) */
	struct qt_preproc pp;
	int has_layout, has_src_layout;
	enum qt_data_layout layout, src_layout;
};

struct qt_dataset {
	char *spec; /* as given (the JSON path for JSON): prefix of every message */
	char *desc;
	enum src_kind kind;
	struct qt_idx_reader *idx_x, *idx_y;
	struct qt_npy_reader *npy_x, *npy_y;
	char **files;      /* SRC_FILES: per-sample paths in sample order */
	int files_pb;      /* SRC_FILES: TensorProto files (else .npy) */
	const char *files_pattern; /* SRC_FILES: how they are named, for describe */
	struct qt_tensor pb_y;     /* SRC_FILES: labels.pb, held whole (an integer per sample) */
	char *images_path; /* for messages and describe */
	char *labels_path; /* NULL without labels */
	int has_labels;

	enum qt_dtype src_dtype; /* stored samples */
	size_t src_itemsize;
	int src_rank;
	int64_t src_dims[QT_MAX_RANK];
	size_t src_bytes; /* of one stored sample */
	int64_t numel;    /* elements of one sample */
	enum qt_dtype label_dtype;
	size_t label_itemsize;

	int64_t total, offset, count, pos; /* pos counts from offset */

	/* The sample seen as C x H x W (C = H = 1 for non-image samples). */
	int64_t C, H, W;
	enum qt_data_layout layout, src_layout;
	int image; /* 3-d samples: layouts and channels apply */
	int out_rank;
	int64_t out_dims[QT_MAX_RANK];
	struct qt_preproc pp;

	unsigned char *raw; /* scratch: stored bytes of one batch */
	size_t raw_cap;
	float *fsample; /* scratch: one sample as float, stored order */
	unsigned char *lraw; /* scratch: stored labels of one batch */
	size_t lraw_cap;
};

/* ---- small helpers ---- */

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static char *xstrndup(const char *s, size_t n)
{
	char *p = malloc(n + 1);
	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

static int starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static char *path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s%s%s", dir, (*dir && dir[strlen(dir) - 1] != '/') ? "/" : "", name);
	return p;
}

static enum qt_status nomem(void)
{
	return qt_error(QT_E_NOMEM, "out of memory");
}

static const char *layout_name(enum qt_data_layout l)
{
	return l == QT_DATA_NHWC ? "NHWC" : "NCHW";
}

/* Shortest decimal that reads back as the same float (for describe). */
static void fmt_float(char *buf, size_t cap, float v)
{
	for (int p = 1; p <= 9; p++) {
		snprintf(buf, cap, "%.*g", p, (double)v);
		if (strtof(buf, NULL) == v)
			return;
	}
}

static float half_to_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
	if (exp == 0x1f) {
		bits = sign | 0x7f800000u | man << 13;
	} else if (exp == 0) {
		float v = ldexpf((float)man, -24); /* subnormal (or zero): exact */
		return sign ? -v : v;
	} else {
		bits = sign | (exp + 112) << 23 | man << 13;
	}
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

/* ---- preprocessing parameters ---- */

static enum qt_status check_preproc(const struct qt_preproc *pp, enum qt_status cls)
{
	if (!isfinite(pp->scale) || pp->scale < 0)
		return qt_error(cls, "scale %g must be finite and > 0", (double)pp->scale);
	if (pp->n_mean < 0 || pp->n_mean > QT_DATASET_MAX_CHANNELS || pp->n_std < 0 ||
	    pp->n_std > QT_DATASET_MAX_CHANNELS)
		return qt_error(cls, "mean and std take 0 to %d values", QT_DATASET_MAX_CHANNELS);
	for (int i = 0; i < pp->n_mean; i++)
		if (!isfinite(pp->mean[i]))
			return qt_error(cls, "mean[%d] = %g is not finite", i, (double)pp->mean[i]);
	for (int i = 0; i < pp->n_std; i++)
		if (!isfinite(pp->std[i]) || !(pp->std[i] > 0))
			return qt_error(cls, "std[%d] = %g must be finite and > 0", i, (double)pp->std[i]);
	return QT_OK;
}

/* ---- JSON spec ---- */

static enum qt_status json_floats(const cJSON *v, const char *key, float *dst, int *n)
{
	if (cJSON_IsNumber(v)) {
		dst[0] = (float)v->valuedouble;
		*n = 1;
		return QT_OK;
	}
	if (!cJSON_IsArray(v))
		return qt_error(QT_E_FORMAT, "\"%s\" must be a number or an array of numbers", key);
	int k = cJSON_GetArraySize(v);
	if (k < 1 || k > QT_DATASET_MAX_CHANNELS)
		return qt_error(QT_E_FORMAT, "\"%s\" must hold 1 to %d numbers, not %d", key, QT_DATASET_MAX_CHANNELS,
				k);
	int i = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, v)
	{
		if (!cJSON_IsNumber(e))
			return qt_error(QT_E_FORMAT, "\"%s\"[%d] is not a number", key, i);
		dst[i++] = (float)e->valuedouble;
	}
	*n = k;
	return QT_OK;
}

static enum qt_status json_layout(const cJSON *v, const char *key, enum qt_data_layout *l)
{
	const char *s = cJSON_GetStringValue(v);
	if (s && !strcmp(s, "NCHW"))
		*l = QT_DATA_NCHW;
	else if (s && !strcmp(s, "NHWC"))
		*l = QT_DATA_NHWC;
	else
		return qt_error(QT_E_FORMAT, "\"%s\" must be \"NCHW\" or \"NHWC\"", key);
	return QT_OK;
}

/* A path from the JSON file: relative ones are resolved against its folder. */
static char *json_path(const char *json, const char *p)
{
	const char *slash = strrchr(json, '/');
	if (p[0] == '/' || !slash)
		return xstrdup(p);
	char *dir = xstrndup(json, (size_t)(slash - json) + 1);
	char *r = dir ? path_join(dir, p) : NULL;
	free(dir);
	return r;
}

static enum qt_status parse_json_body(const char *path, const cJSON *root, struct src_spec *ss)
{
	static const char *const keys[] = {"format", "images", "labels", "scale", "mean",
					   "std",    "layout", "source_layout", "dtype"};
	enum { NKEYS = sizeof keys / sizeof keys[0] };
	const cJSON *val[NKEYS] = {0};
	if (!cJSON_IsObject(root))
		return qt_error(QT_E_FORMAT, "the spec must be a JSON object");
	const cJSON *it;
	cJSON_ArrayForEach(it, root)
	{
		int k = 0;
		while (k < NKEYS && strcmp(it->string, keys[k]) != 0)
			k++;
		if (k == NKEYS)
			return qt_error(QT_E_FORMAT,
					"unknown key \"%s\" (known: format, images, labels, scale, mean, std, layout, "
					"source_layout, dtype)",
					it->string);
		if (val[k])
			return qt_error(QT_E_FORMAT, "duplicate key \"%s\"", it->string);
		val[k] = it;
	}
	const char *fmt = cJSON_GetStringValue(val[0]);
	if (!fmt)
		return qt_error(QT_E_FORMAT, "\"format\" (\"idx\", \"npy\" or \"pb\") is required");
	if (!strcmp(fmt, "idx"))
		ss->fmt = FMT_IDX;
	else if (!strcmp(fmt, "npy"))
		ss->fmt = FMT_NPY;
	else if (!strcmp(fmt, "pb"))
		ss->fmt = FMT_PB;
	else
		return qt_error(QT_E_FORMAT, "unknown \"format\" \"%s\" (\"idx\", \"npy\" or \"pb\")", fmt);
	const char *images = cJSON_GetStringValue(val[1]);
	if (!images || !*images)
		return qt_error(QT_E_FORMAT, "\"images\" (a path) is required");
	if (!(ss->images = json_path(path, images)))
		return nomem();
	if (val[2] && !cJSON_IsNull(val[2])) {
		const char *labels = cJSON_GetStringValue(val[2]);
		if (!labels || !*labels)
			return qt_error(QT_E_FORMAT, "\"labels\" must be a path");
		if (!(ss->labels = json_path(path, labels)))
			return nomem();
	}
	enum qt_status st;
	ss->own_preproc = 1;
	if (val[3]) {
		if (!cJSON_IsNumber(val[3]) || !isfinite(val[3]->valuedouble) || !(val[3]->valuedouble > 0))
			return qt_error(QT_E_FORMAT, "\"scale\" must be a number > 0 (raw values are divided by it)");
		ss->pp.scale = (float)val[3]->valuedouble;
	}
	if (val[4] && (st = json_floats(val[4], "mean", ss->pp.mean, &ss->pp.n_mean)))
		return st;
	if (val[5] && (st = json_floats(val[5], "std", ss->pp.std, &ss->pp.n_std)))
		return st;
	if ((st = check_preproc(&ss->pp, QT_E_FORMAT)))
		return st;
	if (val[6]) {
		if ((st = json_layout(val[6], "layout", &ss->layout)))
			return st;
		ss->has_layout = 1;
	}
	if (val[7]) {
		if ((st = json_layout(val[7], "source_layout", &ss->src_layout)))
			return st;
		if (ss->fmt == FMT_IDX)
			return qt_error(QT_E_FORMAT, "\"source_layout\" applies to \"npy\" and \"pb\" data only (IDX "
						     "images are stored channels-last)");
		ss->has_src_layout = 1;
	}
	if (val[8]) {
		const char *dt = cJSON_GetStringValue(val[8]);
		if (!dt || strcmp(dt, "float32") != 0)
			return qt_error(QT_E_UNSUPPORTED, "\"dtype\" must be \"float32\" (the only output dtype)");
	}
	return QT_OK;
}

static enum qt_status parse_json_spec(const char *path, struct src_spec *ss)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return qt_error(QT_E_IO, "cannot open %s: %s", path, strerror(errno));
	char *buf = malloc((size_t)JSON_MAX_BYTES + 1);
	if (!buf) {
		fclose(f);
		return nomem();
	}
	size_t n = fread(buf, 1, (size_t)JSON_MAX_BYTES + 1, f);
	int err = ferror(f);
	fclose(f);
	enum qt_status st = QT_OK;
	if (err) {
		st = qt_error(QT_E_IO, "read failed: %s", strerror(errno));
	} else if (n > (size_t)JSON_MAX_BYTES) {
		st = qt_error(QT_E_FORMAT, "larger than %ld bytes; not a dataset spec", JSON_MAX_BYTES);
	} else {
		buf[n] = '\0';
		const char *end = NULL;
		cJSON *root = cJSON_ParseWithLengthOpts(buf, n + 1, &end, 1);
		if (!root) {
			size_t at = end && end >= buf && end <= buf + n ? (size_t)(end - buf) : 0;
			st = qt_error(QT_E_FORMAT, "invalid JSON near byte %zu", at);
		} else {
			st = parse_json_body(path, root, ss);
			cJSON_Delete(root);
		}
	}
	free(buf);
	return st;
}

/* Turn a spec string into a src_spec. Errors have no prefix yet. */
static enum qt_status parse_spec(const char *spec, struct src_spec *ss)
{
	if (starts_with(spec, "fashion-mnist:")) {
		const char *split = spec + strlen("fashion-mnist:");
		const char *stem = !strcmp(split, "train") ? "train" : !strcmp(split, "test") ? "t10k" : NULL;
		if (!stem)
			return qt_error(QT_E_INVALID_ARG, "unknown Fashion-MNIST split '%s' (train or test)", split);
		char a[256], b[256];
		snprintf(a, sizeof a, "%s/%s-images-idx3-ubyte.gz", FMNIST_DIR, stem);
		snprintf(b, sizeof b, "%s/%s-labels-idx1-ubyte.gz", FMNIST_DIR, stem);
		ss->fmt = FMT_IDX;
		ss->images = xstrdup(a);
		ss->labels = xstrdup(b);
		if (!ss->images || !ss->labels)
			return nomem();
		/* The bundled models' training transform: ToTensor() then Normalize((0.2860,), (0.3530,)). */
		ss->own_preproc = 1;
		ss->pp.scale = 255.0f;
		ss->pp.n_mean = 1;
		ss->pp.mean[0] = 0.2860f;
		ss->pp.n_std = 1;
		ss->pp.std[0] = 0.3530f;
		return QT_OK;
	}
	if (starts_with(spec, "idx:")) {
		const char *arg = spec + 4;
		const char *comma = strchr(arg, ',');
		if (!*arg || comma == arg)
			return qt_error(QT_E_INVALID_ARG, "idx: needs IMAGES[,LABELS]");
		if (comma && (strchr(comma + 1, ',') || !comma[1]))
			return qt_error(QT_E_INVALID_ARG,
					"idx: takes IMAGES[,LABELS] (paths cannot contain ','; use a JSON spec)");
		ss->fmt = FMT_IDX;
		ss->images = comma ? xstrndup(arg, (size_t)(comma - arg)) : xstrdup(arg);
		if (!ss->images || (comma && !(ss->labels = xstrdup(comma + 1))))
			return nomem();
		return QT_OK;
	}
	if (starts_with(spec, "npy:") || starts_with(spec, "pb:")) {
		const int pb = spec[0] == 'p';
		const char *dir = spec + (pb ? 3 : 4);
		if (!*dir)
			return qt_error(QT_E_INVALID_ARG, "%s: needs a folder", pb ? "pb" : "npy");
		ss->fmt = pb ? FMT_PB : FMT_NPY;
		if (!(ss->images = xstrdup(dir)))
			return nomem();
		return QT_OK;
	}
	if (ends_with(spec, ".json") || ends_with(spec, ".JSON"))
		return parse_json_spec(spec, ss);
	const char *colon = strchr(spec, ':');
	if (colon)
		return qt_error(QT_E_INVALID_ARG, "unknown dataset spec kind '%.*s' (expected %s)",
				(int)(colon - spec), spec, SPEC_KINDS);
	return qt_error(QT_E_INVALID_ARG, "unknown dataset spec kind (expected %s)", SPEC_KINDS);
}

/* ---- opening the sources ---- */

static int is_dir(const char *p)
{
	struct stat sb;
	return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int is_file(const char *p)
{
	struct stat sb;
	return stat(p, &sb) == 0 && !S_ISDIR(sb.st_mode);
}

static enum qt_status open_idx(struct qt_dataset *ds, const struct src_spec *ss)
{
	enum qt_status st;
	ds->kind = SRC_IDX;
	if ((st = qt_idx_open(ss->images, &ds->idx_x)))
		return st;
	const struct qt_idx_info *xi = qt_idx_reader_info(ds->idx_x);
	if (xi->rank < 2)
		return qt_error(QT_E_FORMAT, "%s is a 1-d IDX file (labels?); images need 2 to 4 dimensions",
				ss->images);
	ds->src_dtype = QT_DTYPE_U8;
	ds->src_itemsize = 1;
	ds->total = xi->dims[0];
	ds->src_rank = xi->rank - 1;
	for (int i = 1; i < xi->rank; i++)
		ds->src_dims[i - 1] = xi->dims[i];
	if (ss->labels) {
		if ((st = qt_idx_open(ss->labels, &ds->idx_y)))
			return st;
		const struct qt_idx_info *yi = qt_idx_reader_info(ds->idx_y);
		if (yi->rank != 1) {
			char sh[96];
			return qt_error(QT_E_FORMAT, "%s: labels must be a 1-d IDX file [N], not %s", ss->labels,
					qt_shape_str(sh, sizeof sh, yi->rank, yi->dims));
		}
		if (yi->dims[0] != ds->total)
			return qt_error(QT_E_FORMAT, "label count %lld (%s) != image count %lld (%s)",
					(long long)yi->dims[0], ss->labels, (long long)ds->total, ss->images);
		ds->has_labels = 1;
		ds->label_dtype = QT_DTYPE_U8;
		ds->label_itemsize = 1;
	}
	return QT_OK;
}

/* Labels of shape [N] or [N,1], any integer dtype, one per sample. */
static enum qt_status check_labels(struct qt_dataset *ds, const char *path, enum qt_dtype dt, size_t itemsize,
				   int rank, const int64_t *dims)
{
	char sh[160];
	if (rank < 1 || rank > 2 || (rank == 2 && dims[1] != 1))
		return qt_error(QT_E_FORMAT, "%s: labels must be [N] or [N,1], not %s", path,
				qt_shape_str(sh, sizeof sh, rank, dims));
	switch (dt) {
	case QT_DTYPE_I64: case QT_DTYPE_I32: case QT_DTYPE_I16: case QT_DTYPE_I8:
	case QT_DTYPE_U64: case QT_DTYPE_U32: case QT_DTYPE_U16: case QT_DTYPE_U8:
		break;
	default:
		return qt_error(QT_E_FORMAT, "%s: labels must be integers (int64 or uint8), not %s", path,
				qt_dtype_name(dt));
	}
	if (dims[0] != ds->total)
		return qt_error(QT_E_FORMAT, "label count %lld (%s) != image count %lld (%s)", (long long)dims[0],
				path, (long long)ds->total, ds->images_path);
	ds->has_labels = 1;
	ds->label_dtype = dt;
	ds->label_itemsize = itemsize;
	if (!(ds->labels_path = xstrdup(path)))
		return nomem();
	return QT_OK;
}

static enum qt_status open_npy_labels(struct qt_dataset *ds, const char *path)
{
	enum qt_status st = qt_npy_open(path, &ds->npy_y);
	if (st)
		return st;
	const struct qt_npy_info *yi = qt_npy_reader_info(ds->npy_y);
	return check_labels(ds, path, yi->dtype, yi->itemsize, yi->rank, yi->dims);
}

/* A TensorProto holds no index to read rows from, so the labels are kept whole. */
static enum qt_status open_pb_labels(struct qt_dataset *ds, const char *path)
{
	struct qt_tensor *y = &ds->pb_y;
	enum qt_status st = qt_tensor_read_pb(path, y, NULL, 0);
	if (st)
		return st;
	return check_labels(ds, path, y->dtype, (size_t)qt_dtype_bits(y->dtype) / 8, y->rank, y->dims);
}

/* Stored sample geometry: dims[skip..rank) of a file's array. */
static void set_sample(struct qt_dataset *ds, enum qt_dtype dt, size_t itemsize, int rank, const int64_t *dims,
		       int skip)
{
	ds->src_dtype = dt;
	ds->src_itemsize = itemsize;
	ds->src_rank = rank - skip;
	for (int i = skip; i < rank; i++)
		ds->src_dims[i - skip] = dims[i];
}

static void npy_sample(struct qt_dataset *ds, const struct qt_npy_info *info, int skip)
{
	set_sample(ds, info->dtype, info->itemsize, info->rank, info->dims, skip);
}

struct numbered {
	int64_t num;
	char *name;
};

static int cmp_numbered(const void *a, const void *b)
{
	const struct numbered *x = a, *y = b;
	return x->num < y->num ? -1 : x->num > y->num;
}

static void free_numbered(struct numbered *v, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

/* Entries of dir named prefix + decimal digits + suffix, sorted by number and
 * numbered 0..N-1 without gaps. */
static enum qt_status list_numbered(const char *dir, const char *prefix, const char *suffix, struct numbered **out,
				    int64_t *n_out)
{
	*out = NULL;
	*n_out = 0;
	DIR *d = opendir(dir);
	if (!d)
		return qt_error(QT_E_IO, "cannot open %s: %s", dir, strerror(errno));
	struct numbered *v = NULL;
	int64_t n = 0, cap = 0;
	enum qt_status st = QT_OK;
	struct dirent *e;
	const size_t plen = strlen(prefix);
	while ((e = readdir(d))) {
		if (!starts_with(e->d_name, prefix))
			continue;
		const char *s = e->d_name + plen;
		size_t len = strlen(s), k = 0;
		while (k < len && s[k] >= '0' && s[k] <= '9')
			k++;
		if (k == 0 || k > 15 || strcmp(s + k, suffix) != 0)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 256;
			struct numbered *nv = realloc(v, (size_t)cap * sizeof *v);
			if (!nv) {
				st = nomem();
				break;
			}
			v = nv;
		}
		v[n].num = strtoll(s, NULL, 10);
		if (!(v[n].name = xstrdup(e->d_name))) {
			st = nomem();
			break;
		}
		n++;
	}
	closedir(d);
	if (!st && n) {
		qsort(v, (size_t)n, sizeof *v, cmp_numbered);
		for (int64_t i = 0; i < n && !st; i++) {
			if (v[i].num == i)
				continue;
			if (i > 0 && v[i].num == v[i - 1].num)
				st = qt_error(QT_E_FORMAT, "%s and %s both hold sample %lld", v[i - 1].name, v[i].name,
					      (long long)v[i].num);
			else
				st = qt_error(QT_E_FORMAT,
					      "per-sample files must be numbered 0..N-1 without gaps; sample %lld is "
					      "missing (next file is %s)",
					      (long long)i, v[i].name);
		}
	}
	if (st) {
		free_numbered(v, n);
		return st;
	}
	*out = v;
	*n_out = n;
	return QT_OK;
}

/*
 * A folder of per-sample files: ds->files[i] is dir/v[i].name (then /inner
 * when inner is given). Sample 0 defines the dtype and shape; the others are
 * checked when read. Labels come from dir/labels.npy or dir/labels.pb when
 * present.
 */
static enum qt_status open_files(struct qt_dataset *ds, const char *dir, const struct numbered *v, int64_t n,
				 const char *inner, int pb)
{
	enum qt_status st;
	ds->kind = SRC_FILES;
	ds->files_pb = pb;
	ds->files_pattern = inner ? "/test_data_set_N/input_0.pb" : pb ? "/NNNN.pb" : "/NNNN.npy";
	if (!(ds->files = calloc((size_t)n, sizeof *ds->files)))
		return nomem();
	ds->total = n;
	for (int64_t i = 0; i < n; i++) {
		char *p = path_join(dir, v[i].name);
		if (p && inner) {
			char *q = path_join(p, inner);
			free(p);
			p = q;
		}
		if (!(ds->files[i] = p))
			return nomem();
	}
	if (pb) {
		struct qt_tensor t0;
		if ((st = qt_tensor_read_pb(ds->files[0], &t0, NULL, 0)))
			return st;
		set_sample(ds, t0.dtype, (size_t)qt_dtype_bits(t0.dtype) / 8, t0.rank, t0.dims, 0);
		qt_tensor_free(&t0);
	} else {
		struct qt_npy_reader *r0;
		if ((st = qt_npy_open(ds->files[0], &r0)))
			return st;
		npy_sample(ds, qt_npy_reader_info(r0), 0);
		qt_npy_close(r0);
	}
	char *y = path_join(dir, pb ? "labels.pb" : "labels.npy");
	if (!y)
		st = nomem();
	else if (is_file(y))
		st = (pb ? open_pb_labels : open_npy_labels)(ds, y);
	free(y);
	return st;
}

static enum qt_status open_npy(struct qt_dataset *ds, const struct src_spec *ss)
{
	enum qt_status st;
	const char *images = ss->images;
	if (!is_dir(images)) {
		/* A single stacked array. */
		ds->kind = SRC_NPY;
		if ((st = qt_npy_open(images, &ds->npy_x)))
			return st;
		const struct qt_npy_info *xi = qt_npy_reader_info(ds->npy_x);
		if (xi->rank < 1)
			return qt_error(QT_E_FORMAT, "%s: a 0-d array holds no samples (expected [N, ...])", images);
		ds->total = xi->dims[0];
		npy_sample(ds, xi, 1);
		return ss->labels ? open_npy_labels(ds, ss->labels) : QT_OK;
	}
	if (ss->labels)
		return qt_error(QT_E_INVALID_ARG, "\"labels\" cannot be given with a folder (%s holds its own)", images);
	struct numbered *nums;
	int64_t n;
	if ((st = list_numbered(images, "", ".npy", &nums, &n)))
		return st;
	char *x = path_join(images, "x.npy");
	if (!x) {
		st = nomem();
		goto done;
	}
	int have_x = is_file(x);
	if (have_x && n) {
		st = qt_error(QT_E_FORMAT, "%s holds both x.npy and per-sample files (%s, ...); keep one convention",
			      images, nums[0].name);
	} else if (have_x) {
		ds->kind = SRC_NPY;
		free(ds->images_path);
		ds->images_path = x;
		x = NULL;
		if ((st = qt_npy_open(ds->images_path, &ds->npy_x)))
			goto done;
		const struct qt_npy_info *xi = qt_npy_reader_info(ds->npy_x);
		if (xi->rank < 1) {
			st = qt_error(QT_E_FORMAT, "%s: a 0-d array holds no samples (expected [N, ...])",
				      ds->images_path);
			goto done;
		}
		ds->total = xi->dims[0];
		npy_sample(ds, xi, 1);
		char *y = path_join(images, "y.npy");
		if (!y)
			st = nomem();
		else if (is_file(y))
			st = open_npy_labels(ds, y);
		free(y);
	} else if (n) {
		st = open_files(ds, images, nums, n, NULL, 0);
	} else {
		st = qt_error(QT_E_FORMAT, "%s holds neither x.npy nor per-sample files 0000.npy, 0001.npy, ...",
			      images);
	}
done:
	free(x);
	free_numbered(nums, n);
	return st;
}

/*
 * A folder of TensorProto files: 0000.pb, 0001.pb, ... or, as the ONNX
 * backend tests lay them out, test_data_set_0/input_0.pb, test_data_set_1/...
 * (only input_0.pb is read: the dataset feeds the first input; output_N.pb
 * are model outputs, not labels).
 */
static enum qt_status open_pb(struct qt_dataset *ds, const struct src_spec *ss)
{
	const char *dir = ss->images;
	if (ss->labels)
		return qt_error(QT_E_INVALID_ARG, "\"labels\" cannot be given with a folder (%s holds its own)", dir);
	struct numbered *files = NULL, *sets = NULL;
	int64_t nf = 0, ns = 0;
	enum qt_status st = list_numbered(dir, "", ".pb", &files, &nf);
	if (!st)
		st = list_numbered(dir, "test_data_set_", "", &sets, &ns);
	if (!st && nf && ns)
		st = qt_error(QT_E_FORMAT, "%s holds both per-sample files (%s, ...) and %s/; keep one convention", dir,
			      files[0].name, sets[0].name);
	else if (!st && nf)
		st = open_files(ds, dir, files, nf, NULL, 1);
	else if (!st && ns)
		st = open_files(ds, dir, sets, ns, "input_0.pb", 1);
	else if (!st)
		st = qt_error(QT_E_FORMAT,
			      "%s holds no per-sample files 0000.pb, 0001.pb, ... (nor test_data_set_0/input_0.pb, ...)",
			      dir);
	free_numbered(files, nf);
	free_numbered(sets, ns);
	return st;
}

/* ---- geometry, preprocessing and the model's input shape ---- */

static enum qt_status setup_geometry(struct qt_dataset *ds, const struct src_spec *ss, enum qt_data_layout layout)
{
	ds->layout = layout;
	ds->numel = 1;
	for (int i = 0; i < ds->src_rank; i++)
		ds->numel *= ds->src_dims[i]; /* bounded by the readers' overflow checks */
	if ((uint64_t)ds->numel > QT_TENSOR_MAX_BYTES / sizeof(float))
		return qt_error(QT_E_NOMEM, "one sample of %lld elements exceeds the %zu-byte tensor limit",
				(long long)ds->numel, QT_TENSOR_MAX_BYTES);
	ds->src_bytes = (size_t)ds->numel * ds->src_itemsize;
	ds->C = 1;
	ds->H = 1;
	ds->W = ds->numel;
	ds->src_layout = layout;
	/* A per-sample file may keep the model's batch dim of 1 ([1,C,H,W], as
	 * ONNX test data does); the sample is the [C,H,W] inside. */
	const int batched = ds->kind == SRC_FILES && ds->src_rank == 4 && ds->src_dims[0] == 1;
	if (ds->kind == SRC_IDX && ds->src_rank == 2) {
		/* Grayscale [H,W]: add the channel dim. */
		ds->image = 1;
		ds->H = ds->src_dims[0];
		ds->W = ds->src_dims[1];
	} else if (ds->kind == SRC_IDX && ds->src_rank == 3) {
		ds->image = 1;
		ds->src_layout = QT_DATA_NHWC;
		ds->H = ds->src_dims[0];
		ds->W = ds->src_dims[1];
		ds->C = ds->src_dims[2];
	} else if (ds->kind != SRC_IDX && (ds->src_rank == 3 || batched)) {
		ds->image = 1;
		if (ss->has_src_layout)
			ds->src_layout = ss->src_layout;
		const int64_t *d = ds->src_dims + batched;
		ds->C = ds->src_layout == QT_DATA_NCHW ? d[0] : d[2];
		ds->H = ds->src_layout == QT_DATA_NCHW ? d[1] : d[0];
		ds->W = ds->src_layout == QT_DATA_NCHW ? d[2] : d[1];
	} else if (ss->has_src_layout && ss->src_layout != layout) {
		char sh[160];
		return qt_error(QT_E_INVALID_ARG, "samples %s are not 3-d, so they cannot be converted from %s to %s",
				qt_shape_str(sh, sizeof sh, ds->src_rank, ds->src_dims), layout_name(ss->src_layout),
				layout_name(layout));
	}
	if (ds->image) {
		ds->out_rank = 3;
		int64_t *o = ds->out_dims;
		if (layout == QT_DATA_NCHW) {
			o[0] = ds->C, o[1] = ds->H, o[2] = ds->W;
		} else {
			o[0] = ds->H, o[1] = ds->W, o[2] = ds->C;
		}
	} else {
		ds->out_rank = ds->src_rank;
		memcpy(ds->out_dims, ds->src_dims, sizeof ds->out_dims);
	}
	const struct qt_preproc *pp = &ds->pp;
	if ((pp->n_mean > 1 && pp->n_mean != ds->C) || (pp->n_std > 1 && pp->n_std != ds->C))
		return qt_error(QT_E_INVALID_ARG, "%s has %d values but the samples have %lld channel%s",
				pp->n_mean > 1 && pp->n_mean != ds->C ? "mean" : "std",
				pp->n_mean > 1 && pp->n_mean != ds->C ? pp->n_mean : pp->n_std, (long long)ds->C,
				ds->C == 1 ? "" : "s");
	return QT_OK;
}

/* Dims with the size-1 entries removed. */
static int squeeze(int rank, const int64_t *dims, int64_t *out)
{
	int n = 0;
	for (int i = 0; i < rank; i++)
		if (dims[i] != 1)
			out[n++] = dims[i];
	return n;
}

static enum qt_status check_input(struct qt_dataset *ds, const struct qt_dataset_opts *o)
{
	if (!o->input_dims)
		return QT_OK;
	int rank = o->input_rank;
	const int64_t *want = o->input_dims;
	if (rank < 0 || rank > QT_MAX_RANK)
		return qt_error(QT_E_INVALID_ARG, "model input rank %d outside 0..%d", rank, QT_MAX_RANK);
	int same = rank == ds->out_rank, wild = 0;
	int64_t wn = 1;
	for (int i = 0; i < rank; i++) {
		if (want[i] < 0)
			wild = 1;
		else
			wn *= want[i];
		if (same && want[i] >= 0 && want[i] != ds->out_dims[i])
			same = 0;
	}
	if (same)
		return QT_OK;
	if (!wild && wn == ds->numel) {
		int64_t a[QT_MAX_RANK], b[QT_MAX_RANK];
		int na = squeeze(ds->out_rank, ds->out_dims, a), nb = squeeze(rank, want, b);
		if (rank == 1 || (na == nb && !memcmp(a, b, (size_t)na * sizeof a[0]))) {
			/* Same elements in the same order: only the dims change. */
			ds->out_rank = rank;
			memcpy(ds->out_dims, want, (size_t)rank * sizeof want[0]);
			return QT_OK;
		}
	}
	char have[160], need[160], hint[128] = "";
	qt_shape_str(have, sizeof have, ds->out_rank, ds->out_dims);
	qt_shape_str(need, sizeof need, rank, want);
	if (ds->image && rank == 3) {
		/* The samples' dims in the other layout. */
		int64_t t[3] = {ds->C, ds->H, ds->W};
		if (ds->layout == QT_DATA_NCHW)
			t[0] = ds->H, t[1] = ds->W, t[2] = ds->C;
		if (!memcmp(t, want, sizeof t))
			snprintf(hint, sizeof hint, " (the samples are %s; the model looks %s: set the layout)",
				 layout_name(ds->layout),
				 layout_name(ds->layout == QT_DATA_NCHW ? QT_DATA_NHWC : QT_DATA_NCHW));
	}
	if (o->input_name)
		return qt_error(QT_E_INVALID_ARG, "samples are %s but the model input \"%s\" expects %s%s", have,
				o->input_name, need, hint);
	return qt_error(QT_E_INVALID_ARG, "samples are %s but the model input expects %s%s", have, need, hint);
}

static enum qt_status build_desc(struct qt_dataset *ds)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	if (!m)
		return nomem();
	char sh[160], f[32];
	fprintf(m, "%s images=%s", ds->spec, ds->images_path);
	if (ds->kind == SRC_FILES)
		fprintf(m, "%s", ds->files_pattern);
	if (ds->has_labels)
		fprintf(m, " labels=%s", ds->labels_path);
	fprintf(m, " stored=%s%s", qt_dtype_name(ds->src_dtype), qt_shape_str(sh, sizeof sh, ds->src_rank, ds->src_dims));
	fmt_float(f, sizeof f, ds->pp.scale ? ds->pp.scale : 1.0f);
	fprintf(m, " scale=%s mean=[", f);
	for (int i = 0; i < (ds->pp.n_mean ? ds->pp.n_mean : 1); i++) {
		fmt_float(f, sizeof f, ds->pp.n_mean ? ds->pp.mean[i] : 0.0f);
		fprintf(m, "%s%s", i ? "," : "", f);
	}
	fprintf(m, "] std=[");
	for (int i = 0; i < (ds->pp.n_std ? ds->pp.n_std : 1); i++) {
		fmt_float(f, sizeof f, ds->pp.n_std ? ds->pp.std[i] : 1.0f);
		fprintf(m, "%s%s", i ? "," : "", f);
	}
	fprintf(m, "] layout=%s", layout_name(ds->layout));
	if (ds->image && ds->src_layout != ds->layout && ds->C > 1)
		fprintf(m, "(from %s)", layout_name(ds->src_layout));
	fprintf(m, " dtype=float32 sample=%s offset=%lld count=%lld total=%lld",
		qt_shape_str(sh, sizeof sh, ds->out_rank, ds->out_dims), (long long)ds->offset, (long long)ds->count,
		(long long)ds->total);
	if (fclose(m) != 0 || !buf) {
		free(buf);
		return nomem();
	}
	ds->desc = buf;
	return QT_OK;
}

static enum qt_status open_impl(struct qt_dataset *ds, const char *spec, const struct qt_dataset_opts *o)
{
	struct src_spec ss = {0};
	enum qt_status st = parse_spec(spec, &ss);
	if (st)
		goto done;
	if (o->offset < 0 || o->limit < 0) {
		st = qt_error(QT_E_INVALID_ARG, "offset (%lld) and limit (%lld) must be >= 0", (long long)o->offset,
			      (long long)o->limit);
		goto done;
	}
	enum qt_data_layout layout = o->layout;
	if (ss.own_preproc) {
		if (o->preproc) {
			st = qt_error(QT_E_INVALID_ARG,
				      "the spec fixes its own preprocessing; scale/mean/std cannot be given as well");
			goto done;
		}
		ds->pp = ss.pp;
	} else if (o->preproc) {
		if ((st = check_preproc(o->preproc, QT_E_INVALID_ARG)))
			goto done;
		ds->pp = *o->preproc;
	}
	if (o->layout != QT_DATA_NCHW && o->layout != QT_DATA_NHWC) {
		st = qt_error(QT_E_INVALID_ARG, "invalid layout %d", (int)o->layout);
		goto done;
	}
	if (ss.has_layout) {
		if (o->layout == QT_DATA_NHWC && ss.layout != QT_DATA_NHWC) {
			st = qt_error(QT_E_INVALID_ARG, "layout NHWC was asked for but the spec says %s",
				      layout_name(ss.layout));
			goto done;
		}
		layout = ss.layout;
	}
	ds->images_path = xstrdup(ss.images);
	if (ss.labels && ss.fmt == FMT_IDX)
		ds->labels_path = xstrdup(ss.labels);
	if (!ds->images_path || (ss.labels && ss.fmt == FMT_IDX && !ds->labels_path)) {
		st = nomem();
		goto done;
	}
	st = ss.fmt == FMT_IDX ? open_idx(ds, &ss) : ss.fmt == FMT_NPY ? open_npy(ds, &ss) : open_pb(ds, &ss);
	if (st)
		goto done;
	if ((st = setup_geometry(ds, &ss, layout)) || (st = check_input(ds, o)))
		goto done;
	if (ds->out_rank >= QT_MAX_RANK) {
		st = qt_error(QT_E_UNSUPPORTED, "samples of rank %d leave no room for the batch dim (max rank %d)",
			      ds->out_rank, QT_MAX_RANK);
		goto done;
	}
	if (ds->total == 0) {
		st = qt_error(QT_E_FORMAT, "empty dataset: %s holds 0 samples", ds->images_path);
		goto done;
	}
	if (o->offset >= ds->total) {
		st = qt_error(QT_E_INVALID_ARG, "offset %lld is beyond the end (%lld samples)", (long long)o->offset,
			      (long long)ds->total);
		goto done;
	}
	ds->offset = o->offset;
	ds->count = ds->total - o->offset;
	if (o->limit && o->limit < ds->count)
		ds->count = o->limit;
	/* count > 0 here: the empty cases are the two errors above. */
	if (!(ds->fsample = malloc((size_t)(ds->numel ? ds->numel : 1) * sizeof(float)))) {
		st = nomem();
		goto done;
	}
	st = build_desc(ds);
done:
	free(ss.images);
	free(ss.labels);
	return st;
}

enum qt_status qt_dataset_open(const char *spec, const struct qt_dataset_opts *opts, struct qt_dataset **out)
{
	static const struct qt_dataset_opts defaults;
	*out = NULL;
	if (!spec)
		return qt_error(QT_E_INVALID_ARG, "no dataset spec");
	if (!opts)
		opts = &defaults;
	struct qt_dataset *ds = calloc(1, sizeof *ds);
	if (!ds || !(ds->spec = xstrdup(spec))) {
		free(ds);
		return nomem();
	}
	qt_error_clear();
	enum qt_status st = open_impl(ds, spec, opts);
	if (st) {
		qt_dataset_close(ds);
		return qt_error_prefix(st, "%s", spec);
	}
	*out = ds;
	return QT_OK;
}

/* ---- reading ---- */

static enum qt_status grow(unsigned char **p, size_t *cap, size_t need)
{
	if (need <= *cap)
		return QT_OK;
	unsigned char *n = realloc(*p, need);
	if (!n)
		return qt_error(QT_E_NOMEM, "out of memory for a batch of %zu bytes", need);
	*p = n;
	*cap = need;
	return QT_OK;
}

/* Stored bytes of samples [first, first + n) (absolute indices) into ds->raw. */
static enum qt_status read_raw(struct qt_dataset *ds, int64_t first, int n)
{
	switch (ds->kind) {
	case SRC_IDX:
		return qt_idx_read(ds->idx_x, first, n, ds->raw);
	case SRC_NPY:
		return qt_npy_read_rows_into(ds->npy_x, first, n, ds->raw, ds->raw_cap);
	case SRC_FILES:
		for (int i = 0; i < n; i++) {
			const char *path = ds->files[first + i];
			struct qt_tensor t = {0};
			enum qt_status st = ds->files_pb ? qt_tensor_read_pb(path, &t, NULL, 0) : qt_npy_read(path, &t);
			if (st)
				return st;
			int same = t.dtype == ds->src_dtype && t.rank == ds->src_rank &&
				   !memcmp(t.dims, ds->src_dims, (size_t)t.rank * sizeof t.dims[0]);
			if (!same) {
				char a[160], b[160];
				st = qt_error(QT_E_FORMAT, "%s: holds %s%s but sample 0 (%s) is %s%s", path,
					      qt_dtype_name(t.dtype), qt_shape_str(a, sizeof a, t.rank, t.dims),
					      ds->files[0], qt_dtype_name(ds->src_dtype),
					      qt_shape_str(b, sizeof b, ds->src_rank, ds->src_dims));
				qt_tensor_free(&t);
				return st;
			}
			if (ds->src_bytes)
				memcpy(ds->raw + (size_t)i * ds->src_bytes, t.data, ds->src_bytes);
			qt_tensor_free(&t);
		}
		return QT_OK;
	}
	return QT_OK;
}

/* Where a sample came from, for messages. */
static void sample_label(const struct qt_dataset *ds, int64_t idx, char *buf, size_t cap)
{
	if (ds->kind == SRC_FILES)
		snprintf(buf, cap, "%s", ds->files[idx]);
	else
		snprintf(buf, cap, "%s: sample %lld", ds->images_path, (long long)idx);
}

/* Stored bytes -> ds->fsample (stored order), rejecting NaN/Inf. */
static enum qt_status load_sample(struct qt_dataset *ds, const unsigned char *raw, int64_t idx)
{
	float *f = ds->fsample;
	int64_t n = ds->numel;
	switch (ds->src_dtype) {
	case QT_DTYPE_U8:
		for (int64_t i = 0; i < n; i++)
			f[i] = (float)raw[i];
		return QT_OK;
	case QT_DTYPE_I8:
		for (int64_t i = 0; i < n; i++)
			f[i] = (float)(int8_t)raw[i];
		return QT_OK;
	case QT_DTYPE_BOOL:
		for (int64_t i = 0; i < n; i++)
			f[i] = raw[i] ? 1.0f : 0.0f;
		return QT_OK;
#define LOAD_INT(T)                                    \
	for (int64_t i = 0; i < n; i++) {              \
		T v;                                   \
		memcpy(&v, raw + i * (int64_t)sizeof v, sizeof v); \
		f[i] = (float)v;                       \
	}                                              \
	return QT_OK;
	case QT_DTYPE_I16: LOAD_INT(int16_t)
	case QT_DTYPE_U16: LOAD_INT(uint16_t)
	case QT_DTYPE_I32: LOAD_INT(int32_t)
	case QT_DTYPE_U32: LOAD_INT(uint32_t)
	case QT_DTYPE_I64: LOAD_INT(int64_t)
	case QT_DTYPE_U64: LOAD_INT(uint64_t)
#undef LOAD_INT
	case QT_DTYPE_F16:
		for (int64_t i = 0; i < n; i++) {
			uint16_t h;
			memcpy(&h, raw + 2 * i, 2);
			f[i] = half_to_float(h);
		}
		break;
	case QT_DTYPE_F32:
		memcpy(f, raw, (size_t)n * 4);
		break;
	case QT_DTYPE_F64:
		for (int64_t i = 0; i < n; i++) {
			double v;
			memcpy(&v, raw + 8 * i, 8);
			if (isfinite(v) && fabs(v) > FLT_MAX) {
				char lab[512];
				sample_label(ds, idx, lab, sizeof lab);
				return qt_error(QT_E_NUMERIC, "%s: element %lld (%g) is out of float32 range", lab,
						(long long)i, v);
			}
			f[i] = (float)v;
		}
		break;
	default:
		return qt_error(QT_E_UNSUPPORTED, "%s: samples of dtype %s are not supported", ds->images_path,
				qt_dtype_name(ds->src_dtype));
	}
	for (int64_t i = 0; i < n; i++)
		if (!isfinite(f[i])) {
			char lab[512];
			sample_label(ds, idx, lab, sizeof lab);
			return qt_error(QT_E_NUMERIC, "%s: element %lld is %s", lab, (long long)i,
					isnan(f[i]) ? "NaN" : f[i] < 0 ? "-Inf" : "+Inf");
		}
	return QT_OK;
}

/* ds->fsample -> dst in the output layout, preprocessed in float32 in the documented order. */
static enum qt_status preprocess(struct qt_dataset *ds, float *dst, int64_t idx)
{
	const struct qt_preproc *pp = &ds->pp;
	const float *f = ds->fsample;
	const int64_t C = ds->C, H = ds->H, W = ds->W;
	const int src_cl = ds->image && ds->src_layout == QT_DATA_NHWC;
	const int dst_cl = ds->image && ds->layout == QT_DATA_NHWC;
	for (int64_t c = 0; c < C; c++) {
		const float m = pp->n_mean ? pp->mean[pp->n_mean == 1 ? 0 : c] : 0.0f;
		const float s = pp->n_std ? pp->std[pp->n_std == 1 ? 0 : c] : 1.0f;
		for (int64_t hw = 0; hw < H * W; hw++) {
			const int64_t si = src_cl ? hw * C + c : c * H * W + hw;
			const int64_t di = dst_cl ? hw * C + c : c * H * W + hw;
			float x = f[si];
			if (pp->scale != 0.0f)
				x = x / pp->scale;
			if (pp->n_mean)
				x = x - m;
			if (pp->n_std)
				x = x / s;
			if (!isfinite(x)) {
				char lab[512];
				sample_label(ds, idx, lab, sizeof lab);
				return qt_error(QT_E_NUMERIC, "%s: element %lld (%g) becomes %s after preprocessing", lab,
						(long long)si, (double)f[si], isnan(x) ? "NaN" : "Inf");
			}
			dst[di] = x;
		}
	}
	return QT_OK;
}

static enum qt_status read_labels(struct qt_dataset *ds, int64_t first, int n, int64_t *out)
{
	enum qt_status st;
	size_t need = (size_t)n * ds->label_itemsize;
	if ((st = grow(&ds->lraw, &ds->lraw_cap, need)))
		return st;
	if (ds->idx_y)
		st = qt_idx_read(ds->idx_y, first, n, ds->lraw);
	else if (ds->npy_y)
		st = qt_npy_read_rows_into(ds->npy_y, first, n, ds->lraw, ds->lraw_cap);
	else
		memcpy(ds->lraw, (const unsigned char *)ds->pb_y.data + (size_t)first * ds->label_itemsize, need);
	if (st)
		return st;
	for (int i = 0; i < n; i++) {
		const unsigned char *p = ds->lraw + (size_t)i * ds->label_itemsize;
		int64_t v = 0;
		int bad = 0;
		switch (ds->label_dtype) {
		case QT_DTYPE_U8: v = p[0]; break;
		case QT_DTYPE_I8: v = (int8_t)p[0]; break;
		case QT_DTYPE_I16: { int16_t x; memcpy(&x, p, 2); v = x; break; }
		case QT_DTYPE_U16: { uint16_t x; memcpy(&x, p, 2); v = x; break; }
		case QT_DTYPE_I32: { int32_t x; memcpy(&x, p, 4); v = x; break; }
		case QT_DTYPE_U32: { uint32_t x; memcpy(&x, p, 4); v = x; break; }
		case QT_DTYPE_I64: memcpy(&v, p, 8); break;
		case QT_DTYPE_U64: { uint64_t x; memcpy(&x, p, 8); bad = x > (uint64_t)INT64_MAX; v = (int64_t)x; break; }
		default: bad = 1; break;
		}
		if (bad || v < 0)
			return qt_error(QT_E_FORMAT, "%s: label %lld of sample %lld is negative or too large",
					ds->labels_path, (long long)v, (long long)(first + i));
		out[i] = v;
	}
	return QT_OK;
}

static enum qt_status next_impl(struct qt_dataset *ds, int n, struct qt_tensor *x_out, int64_t *labels_out)
{
	const int64_t first = ds->offset + ds->pos;
	enum qt_status st;
	if (ds->out_rank + 1 > QT_MAX_RANK)
		return qt_error(QT_E_UNSUPPORTED, "samples of rank %d leave no room for the batch dim", ds->out_rank);
	if (ds->src_bytes > QT_TENSOR_MAX_BYTES / (size_t)n)
		return qt_error(QT_E_NOMEM, "a batch of %d samples of %zu bytes is too large", n, ds->src_bytes);
	size_t need = (size_t)n * ds->src_bytes;
	if ((st = grow(&ds->raw, &ds->raw_cap, need ? need : 1)))
		return st;
	if ((st = read_raw(ds, first, n)))
		return st;
	struct qt_tensor t = {0};
	int64_t dims[QT_MAX_RANK];
	dims[0] = n;
	memcpy(dims + 1, ds->out_dims, (size_t)ds->out_rank * sizeof dims[0]);
	if ((st = qt_tensor_alloc(&t, QT_DTYPE_F32, ds->out_rank + 1, dims)))
		return st;
	float *dst = t.data;
	for (int i = 0; i < n; i++) {
		if ((st = load_sample(ds, ds->raw + (size_t)i * ds->src_bytes, first + i)) ||
		    (st = preprocess(ds, dst + (size_t)i * (size_t)ds->numel, first + i))) {
			qt_tensor_free(&t);
			return st;
		}
	}
	if (labels_out && ds->has_labels && (st = read_labels(ds, first, n, labels_out))) {
		qt_tensor_free(&t);
		return st;
	}
	qt_tensor_free(x_out);
	*x_out = t;
	return QT_OK;
}

enum qt_status qt_dataset_next(struct qt_dataset *ds, int batch, struct qt_tensor *x_out, int64_t *labels_out,
			       int *n_out)
{
	*n_out = 0;
	if (batch <= 0)
		return qt_error(QT_E_INVALID_ARG, "%s: batch size %d must be > 0", ds->spec, batch);
	int64_t left = ds->count - ds->pos;
	int n = left < batch ? (int)left : batch;
	if (n == 0)
		return QT_OK;
	qt_error_clear();
	enum qt_status st = next_impl(ds, n, x_out, labels_out);
	if (st)
		return qt_error_prefix(st, "%s", ds->spec);
	ds->pos += n;
	*n_out = n;
	return QT_OK;
}

int64_t qt_dataset_count(const struct qt_dataset *ds)
{
	return ds->count;
}

int qt_dataset_has_labels(const struct qt_dataset *ds)
{
	return ds->has_labels;
}

int qt_dataset_sample_shape(const struct qt_dataset *ds, int64_t dims_out[QT_MAX_RANK])
{
	memcpy(dims_out, ds->out_dims, (size_t)ds->out_rank * sizeof dims_out[0]);
	return ds->out_rank;
}

void qt_dataset_reset(struct qt_dataset *ds)
{
	ds->pos = 0;
}

const char *qt_dataset_describe(const struct qt_dataset *ds)
{
	return ds->desc ? ds->desc : ds->spec;
}

void qt_dataset_close(struct qt_dataset *ds)
{
	if (!ds)
		return;
	qt_idx_close(ds->idx_x);
	qt_idx_close(ds->idx_y);
	qt_npy_close(ds->npy_x);
	qt_npy_close(ds->npy_y);
	qt_tensor_free(&ds->pb_y);
	if (ds->files)
		for (int64_t i = 0; i < ds->total; i++)
			free(ds->files[i]);
	free(ds->files);
	free(ds->images_path);
	free(ds->labels_path);
	free(ds->spec);
	free(ds->desc);
	free(ds->raw);
	free(ds->fsample);
	free(ds->lraw);
	free(ds);
}
