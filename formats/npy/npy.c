/*
 * NumPy .npy reader and writer (format versions 1.0, 2.0, 3.0).
 *
 * Layout of a file: the magic "\x93NUMPY", one byte major and one byte minor
 * version, a little-endian header length (u16 for 1.0, u32 for 2.0/3.0),
 * that many bytes of a Python dict literal such as
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
 * padded with spaces and a newline, then the raw elements in C order.
 *
 * The header is untrusted: it is parsed by a small hand-written recognizer
 * of exactly the dict grammar NumPy writes (no eval), with every count and
 * length checked before use.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qtool/npy.h"

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
/* NumPy itself refuses headers over 10000 bytes by default; allow more, but bound it. */
#define NPY_MAX_HEADER ((size_t)1 << 20)

struct qt_npy_reader {
	FILE *f;
	char *path;
	struct qt_npy_info info;
	uint64_t row_bytes; /* bytes of one slice along dim 0 (0 for rank 0) */
};

/* ---- dtypes ---- */

static const struct {
	char kind;
	int size;
	enum qt_dtype dt;
} npy_types[] = {
	{'f', 2, QT_DTYPE_F16}, {'f', 4, QT_DTYPE_F32}, {'f', 8, QT_DTYPE_F64}, {'i', 1, QT_DTYPE_I8},
	{'i', 2, QT_DTYPE_I16}, {'i', 4, QT_DTYPE_I32}, {'i', 8, QT_DTYPE_I64}, {'u', 1, QT_DTYPE_U8},
	{'u', 2, QT_DTYPE_U16}, {'u', 4, QT_DTYPE_U32}, {'u', 8, QT_DTYPE_U64}, {'b', 1, QT_DTYPE_BOOL},
};

/* The descr NumPy writes for dt (e.g. "<f4"), or NULL if it has none. */
static const char *npy_descr(enum qt_dtype dt, char buf[8])
{
	for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
		if (npy_types[i].dt == dt) {
			snprintf(buf, 8, "%c%c%d", npy_types[i].size == 1 ? '|' : '<', npy_types[i].kind,
				 npy_types[i].size);
			return buf;
		}
	return NULL;
}

static enum qt_status parse_descr(const char *s, size_t n, const char *label, enum qt_dtype *dt, size_t *size_out)
{
	char shown[40];
	snprintf(shown, sizeof shown, "%.*s", (int)(n < 32 ? n : 32), s);
	if (n < 3 || n > 4)
		return qt_error(QT_E_UNSUPPORTED, "%s: header: unsupported dtype '%s'", label, shown);
	char order = s[0], kind = s[1];
	int size = 0;
	for (size_t i = 2; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return qt_error(QT_E_UNSUPPORTED, "%s: header: unsupported dtype '%s'", label, shown);
		size = size * 10 + (s[i] - '0');
	}
	for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++) {
		if (npy_types[i].kind != kind || npy_types[i].size != size)
			continue;
		if (order != '<' && order != '>' && order != '|' && order != '=')
			return qt_error(QT_E_FORMAT, "%s: header: dtype '%s' has an invalid byte order '%c'", label,
					shown, order);
		/* Byte order means nothing for one-byte types; NumPy writes '|'. */
		if (size > 1 && order == '>')
			return qt_error(QT_E_UNSUPPORTED, "%s: header: unsupported dtype '%s' (big-endian)", label,
					shown);
		if (size > 1 && order != '<')
			return qt_error(QT_E_UNSUPPORTED,
					"%s: header: unsupported dtype '%s' (byte order '%c' is not little-endian '<')",
					label, shown, order);
		*dt = npy_types[i].dt;
		*size_out = (size_t)size;
		return QT_OK;
	}
	return qt_error(QT_E_UNSUPPORTED, "%s: header: unsupported dtype '%s'", label, shown);
}

/* ---- header dict recognizer ---- */

struct hparse {
	const char *s, *p, *end;
	const char *label;
};

static void skip_ws(struct hparse *h)
{
	while (h->p < h->end && (*h->p == ' ' || *h->p == '\t' || *h->p == '\n' || *h->p == '\r'))
		h->p++;
}

static size_t hpos(const struct hparse *h)
{
	return (size_t)(h->p - h->s);
}

static enum qt_status hfail(const struct hparse *h, const char *what)
{
	if (h->p >= h->end)
		return qt_error(QT_E_FORMAT, "%s: header: %s, but the header ends at byte %zu", h->label, what,
				hpos(h));
	unsigned char c = (unsigned char)*h->p;
	if (c >= 0x20 && c < 0x7f)
		return qt_error(QT_E_FORMAT, "%s: header: %s at byte %zu (found '%c')", h->label, what, hpos(h),
				c);
	return qt_error(QT_E_FORMAT, "%s: header: %s at byte %zu (found byte 0x%02x)", h->label, what, hpos(h),
			c);
}

static int accept(struct hparse *h, char c)
{
	skip_ws(h);
	if (h->p < h->end && *h->p == c) {
		h->p++;
		return 1;
	}
	return 0;
}

/* A quoted string without escapes: 'abc' or "abc". */
static enum qt_status parse_str(struct hparse *h, const char **s, size_t *n)
{
	skip_ws(h);
	if (h->p >= h->end || (*h->p != '\'' && *h->p != '"'))
		return hfail(h, "expected a quoted string");
	char q = *h->p++;
	const char *start = h->p;
	while (h->p < h->end && *h->p != q) {
		if (*h->p == '\\')
			return hfail(h, "escape sequences are not supported in strings");
		if ((unsigned char)*h->p < 0x20)
			return hfail(h, "control character in a string");
		h->p++;
	}
	if (h->p >= h->end)
		return hfail(h, "unterminated string");
	*s = start;
	*n = (size_t)(h->p - start);
	h->p++;
	return QT_OK;
}

/* A non-negative Python int literal (an 'L' suffix from Python 2 is allowed). */
static enum qt_status parse_dim(struct hparse *h, int64_t *v)
{
	skip_ws(h);
	if (h->p < h->end && *h->p == '-')
		return hfail(h, "negative dimension in shape");
	if (h->p >= h->end || *h->p < '0' || *h->p > '9')
		return hfail(h, "expected a dimension (non-negative integer)");
	const char *start = h->p;
	uint64_t x = 0;
	while (h->p < h->end && *h->p >= '0' && *h->p <= '9') {
		unsigned d = (unsigned)(*h->p - '0');
		if (x > ((uint64_t)INT64_MAX - d) / 10) {
			h->p = start;
			return hfail(h, "dimension does not fit in 64 bits");
		}
		x = x * 10 + d;
		h->p++;
	}
	if (h->p - start > 1 && *start == '0') {
		h->p = start;
		return hfail(h, "dimension with a leading zero");
	}
	if (h->p < h->end && (*h->p == 'L' || *h->p == 'l'))
		h->p++;
	*v = (int64_t)x;
	return QT_OK;
}

static enum qt_status parse_shape(struct hparse *h, int *rank, int64_t *dims)
{
	if (!accept(h, '('))
		return hfail(h, "'shape' must be a tuple: expected '('");
	int n = 0;
	if (accept(h, ')')) {
		*rank = 0;
		return QT_OK;
	}
	for (;;) {
		int64_t d = 0;
		enum qt_status st = parse_dim(h, &d);
		if (st)
			return st;
		if (n >= QT_MAX_RANK)
			return qt_error(QT_E_UNSUPPORTED, "%s: header: shape has more than %d dimensions", h->label,
					QT_MAX_RANK);
		dims[n++] = d;
		if (accept(h, ')')) {
			/* "(3)" is the int 3 in Python, not a tuple. */
			if (n == 1)
				return qt_error(QT_E_FORMAT,
						"%s: header: shape (%lld) is not a tuple (a 1-d shape is written (%lld,))",
						h->label, (long long)dims[0], (long long)dims[0]);
			break;
		}
		if (!accept(h, ','))
			return hfail(h, "expected ',' or ')' in shape");
		if (accept(h, ')'))
			break;
	}
	*rank = n;
	return QT_OK;
}

enum qt_status qt_npy_parse_header(const void *buf, size_t len, const char *label, struct qt_npy_info *info_out)
{
	const unsigned char *b = buf;
	if (!label)
		label = "<npy>";
	if (len < 10)
		return qt_error(QT_E_FORMAT, "%s: header: %zu bytes is too short for a .npy file", label, len);
	if (memcmp(b, NPY_MAGIC, NPY_MAGIC_LEN) != 0)
		return qt_error(QT_E_FORMAT, "%s: header: not a .npy file (missing the \\x93NUMPY magic)", label);
	int major = b[6], minor = b[7];
	if (major < 1 || major > 3 || minor != 0)
		return qt_error(QT_E_UNSUPPORTED, "%s: header: unsupported .npy format version %d.%d (1.0, 2.0, 3.0 are)",
				label, major, minor);
	size_t prefix, hlen;
	if (major == 1) {
		prefix = 10;
		hlen = (size_t)b[8] | (size_t)b[9] << 8;
	} else {
		if (len < 12)
			return qt_error(QT_E_FORMAT, "%s: header: %zu bytes is too short for a version %d.0 header",
					label, len, major);
		prefix = 12;
		hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
	}
	if (hlen > NPY_MAX_HEADER)
		return qt_error(QT_E_FORMAT, "%s: header: length %zu exceeds the %zu-byte limit", label, hlen,
				NPY_MAX_HEADER);
	if (hlen > len - prefix)
		return qt_error(QT_E_FORMAT, "%s: header: length %zu runs past the end of the file (%zu bytes)", label,
				hlen, len);

	struct hparse h = {(const char *)b + prefix, (const char *)b + prefix, (const char *)b + prefix + hlen,
			   label};
	for (const char *q = h.s; q < h.end; q++)
		if (*q == '\0')
			return qt_error(QT_E_FORMAT, "%s: header: NUL byte at byte %zu", label, (size_t)(q - h.s));

	struct qt_npy_info info = {0};
	int have_descr = 0, have_fortran = 0, have_shape = 0, fortran = 0;
	enum qt_status st;
	if (!accept(&h, '{'))
		return hfail(&h, "expected '{' (the header is a Python dict)");
	while (!accept(&h, '}')) {
		const char *key;
		size_t klen;
		if ((st = parse_str(&h, &key, &klen)))
			return st;
		if (!accept(&h, ':'))
			return hfail(&h, "expected ':' after a key");
		if (klen == 5 && !memcmp(key, "descr", 5)) {
			if (have_descr++)
				return hfail(&h, "duplicate key 'descr'");
			skip_ws(&h);
			if (h.p < h.end && (*h.p == '[' || *h.p == '{'))
				return qt_error(QT_E_UNSUPPORTED,
						"%s: header: structured dtypes are not supported (descr is a list)", label);
			const char *d;
			size_t dlen;
			if ((st = parse_str(&h, &d, &dlen)))
				return st;
			if ((st = parse_descr(d, dlen, label, &info.dtype, &info.itemsize)))
				return st;
		} else if (klen == 13 && !memcmp(key, "fortran_order", 13)) {
			if (have_fortran++)
				return hfail(&h, "duplicate key 'fortran_order'");
			skip_ws(&h);
			size_t left = (size_t)(h.end - h.p);
			if (left >= 4 && !memcmp(h.p, "True", 4)) {
				fortran = 1;
				h.p += 4;
			} else if (left >= 5 && !memcmp(h.p, "False", 5)) {
				h.p += 5;
			} else {
				return hfail(&h, "'fortran_order' must be True or False");
			}
		} else if (klen == 5 && !memcmp(key, "shape", 5)) {
			if (have_shape++)
				return hfail(&h, "duplicate key 'shape'");
			if ((st = parse_shape(&h, &info.rank, info.dims)))
				return st;
		} else {
			return qt_error(QT_E_FORMAT, "%s: header: unexpected key '%.*s'", label,
					(int)(klen < 40 ? klen : 40), key);
		}
		if (accept(&h, '}'))
			break;
		if (!accept(&h, ','))
			return hfail(&h, "expected ',' or '}' after a value");
	}
	skip_ws(&h);
	if (h.p != h.end)
		return hfail(&h, "unexpected text after the dict");
	if (!have_descr || !have_fortran || !have_shape)
		return qt_error(QT_E_FORMAT, "%s: header: missing key '%s'", label,
				!have_descr ? "descr" : !have_fortran ? "fortran_order" : "shape");
	if (fortran)
		return qt_error(QT_E_UNSUPPORTED,
				"%s: header: fortran_order True is not supported (save a C-ordered array, e.g. "
				"np.ascontiguousarray)",
				label);

	/* Overflow check over the non-zero dims so that row sizes cannot overflow either. */
	uint64_t nz = 1;
	int zero = 0;
	for (int i = 0; i < info.rank; i++) {
		uint64_t d = (uint64_t)info.dims[i];
		if (d == 0) {
			zero = 1;
			continue;
		}
		if (nz > (uint64_t)INT64_MAX / d)
			return qt_error(QT_E_FORMAT, "%s: header: shape overflows 64-bit element counts", label);
		nz *= d;
	}
	if (nz > (uint64_t)INT64_MAX / info.itemsize)
		return qt_error(QT_E_FORMAT, "%s: header: shape overflows 64-bit byte counts", label);
	info.numel = zero ? 0 : nz;
	info.data_bytes = info.numel * info.itemsize;
	info.version_major = major;
	info.data_offset = prefix + hlen;
	*info_out = info;
	return QT_OK;
}

static enum qt_status check_data_len(const struct qt_npy_info *info, uint64_t have, const char *label)
{
	if (have == info->data_bytes)
		return QT_OK;
	char sh[160];
	qt_shape_str(sh, sizeof sh, info->rank, info->dims);
	if (have < info->data_bytes)
		return qt_error(QT_E_FORMAT, "%s: data: %llu bytes, but shape %s of %s needs %llu (truncated file?)",
				label, (unsigned long long)have, sh, qt_dtype_name(info->dtype),
				(unsigned long long)info->data_bytes);
	return qt_error(QT_E_FORMAT, "%s: data: %llu trailing bytes after the %llu bytes of shape %s of %s", label,
			(unsigned long long)(have - info->data_bytes), (unsigned long long)info->data_bytes, sh,
			qt_dtype_name(info->dtype));
}

enum qt_status qt_npy_read_mem(const void *buf, size_t len, const char *label, struct qt_tensor *out)
{
	struct qt_npy_info info;
	if (!label)
		label = "<npy>";
	enum qt_status st = qt_npy_parse_header(buf, len, label, &info);
	if (st)
		return st;
	if ((st = check_data_len(&info, len - info.data_offset, label)))
		return st;
	struct qt_tensor t = {0};
	if ((st = qt_tensor_alloc(&t, info.dtype, info.rank, info.dims)))
		return qt_error_prefix(st, "%s", label);
	if (info.data_bytes)
		memcpy(t.data, (const unsigned char *)buf + info.data_offset, (size_t)info.data_bytes);
	qt_tensor_free(out);
	*out = t;
	return QT_OK;
}

/* ---- streaming reader ---- */

enum qt_status qt_npy_open(const char *path, struct qt_npy_reader **out)
{
	*out = NULL;
	FILE *f = fopen(path, "rb");
	if (!f)
		return qt_error(QT_E_IO, "cannot open %s: %s", path, strerror(errno));
	/* Unbuffered: reads are whole row ranges, and stdio's buffer would keep stale bytes across seeks. */
	setvbuf(f, NULL, _IONBF, 0);
	enum qt_status st = QT_OK;
	unsigned char *hdr = NULL;
	struct qt_npy_reader *r = NULL;
	struct stat sb;
	if (fstat(fileno(f), &sb) != 0) {
		st = qt_error(QT_E_IO, "%s: stat failed: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(sb.st_mode)) {
		st = qt_error(QT_E_IO, "%s: not a regular file", path);
		goto fail;
	}
	uint64_t fsize = (uint64_t)sb.st_size;
	unsigned char pre[12];
	size_t npre = fread(pre, 1, sizeof pre, f);
	if (npre < 10) {
		st = qt_npy_parse_header(pre, npre, path, &(struct qt_npy_info){0});
		goto fail;
	}
	size_t hlen = pre[6] == 1 ? ((size_t)pre[8] | (size_t)pre[9] << 8)
		      : npre == 12 ? ((size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24)
				   : 0;
	/* Read as much of the header as the file holds (bounded); the parser reports what is wrong. */
	size_t want = npre + (hlen > NPY_MAX_HEADER ? 0 : hlen);
	if (want > fsize)
		want = (size_t)fsize;
	if (want < npre)
		want = npre;
	hdr = malloc(want);
	if (!hdr) {
		st = qt_error(QT_E_NOMEM, "%s: out of memory reading the header", path);
		goto fail;
	}
	memcpy(hdr, pre, npre);
	if (want > npre && fread(hdr + npre, 1, want - npre, f) != want - npre) {
		st = qt_error(QT_E_IO, "%s: read failed in the header: %s", path,
			      ferror(f) ? strerror(errno) : "unexpected end of file");
		goto fail;
	}
	struct qt_npy_info info;
	if ((st = qt_npy_parse_header(hdr, want, path, &info)))
		goto fail;
	if ((st = check_data_len(&info, fsize - info.data_offset, path)))
		goto fail;
	r = calloc(1, sizeof *r);
	if (!r || !(r->path = strdup(path))) {
		st = qt_error(QT_E_NOMEM, "%s: out of memory", path);
		goto fail;
	}
	r->f = f;
	r->info = info;
	if (info.rank > 0) {
		uint64_t row = info.itemsize;
		for (int i = 1; i < info.rank; i++)
			row *= (uint64_t)info.dims[i]; /* bounded by the header's overflow check */
		r->row_bytes = row;
	}
	free(hdr);
	*out = r;
	return QT_OK;
fail:
	if (r)
		free(r->path);
	free(r);
	free(hdr);
	fclose(f);
	return st;
}

const struct qt_npy_info *qt_npy_reader_info(const struct qt_npy_reader *r)
{
	return &r->info;
}

static enum qt_status read_at(struct qt_npy_reader *r, uint64_t off, void *dst, uint64_t n)
{
	if (n == 0)
		return QT_OK;
	if (off > (uint64_t)INT64_MAX || fseeko(r->f, (off_t)off, SEEK_SET) != 0)
		return qt_error(QT_E_IO, "%s: seek to byte %llu failed: %s", r->path, (unsigned long long)off,
				strerror(errno));
	size_t got = fread(dst, 1, (size_t)n, r->f);
	if (got != n) {
		int err = ferror(r->f);
		clearerr(r->f);
		return qt_error(QT_E_IO, "%s: read failed at byte %llu: %s", r->path,
				(unsigned long long)(off + got),
				err ? strerror(errno) : "unexpected end of file (did the file change?)");
	}
	return QT_OK;
}

static enum qt_status check_rows(const struct qt_npy_reader *r, int64_t start, int64_t count)
{
	if (r->info.rank == 0)
		return qt_error(QT_E_INVALID_ARG, "%s: a 0-d array has no rows", r->path);
	int64_t n = r->info.dims[0];
	if (start < 0 || count < 0 || start > n || count > n - start)
		return qt_error(QT_E_INVALID_ARG, "%s: rows [%lld, %lld) are outside the %lld rows of the array",
				r->path, (long long)start, (long long)start + (long long)(count > 0 ? count : 0),
				(long long)n);
	return QT_OK;
}

enum qt_status qt_npy_read_rows_into(struct qt_npy_reader *r, int64_t start, int64_t count, void *dst, size_t cap)
{
	enum qt_status st = check_rows(r, start, count);
	if (st)
		return st;
	uint64_t n = (uint64_t)count * r->row_bytes; /* <= data_bytes, no overflow */
	if (n > cap)
		return qt_error(QT_E_INVALID_ARG, "%s: %lld rows need %llu bytes but the buffer holds %zu", r->path,
				(long long)count, (unsigned long long)n, cap);
	return read_at(r, r->info.data_offset + (uint64_t)start * r->row_bytes, dst, n);
}

enum qt_status qt_npy_read_rows(struct qt_npy_reader *r, int64_t start, int64_t count, struct qt_tensor *out)
{
	enum qt_status st = check_rows(r, start, count);
	if (st)
		return st;
	struct qt_tensor t = {0};
	int64_t dims[QT_MAX_RANK];
	memcpy(dims, r->info.dims, sizeof dims);
	dims[0] = count;
	if ((st = qt_tensor_alloc(&t, r->info.dtype, r->info.rank, dims)))
		return qt_error_prefix(st, "%s", r->path);
	if ((st = qt_npy_read_rows_into(r, start, count, t.data, t.nbytes))) {
		qt_tensor_free(&t);
		return st;
	}
	qt_tensor_free(out);
	*out = t;
	return QT_OK;
}

void qt_npy_close(struct qt_npy_reader *r)
{
	if (!r)
		return;
	fclose(r->f);
	free(r->path);
	free(r);
}

enum qt_status qt_npy_read(const char *path, struct qt_tensor *out)
{
	struct qt_npy_reader *r;
	enum qt_status st = qt_npy_open(path, &r);
	if (st)
		return st;
	struct qt_tensor t = {0};
	if ((st = qt_tensor_alloc(&t, r->info.dtype, r->info.rank, r->info.dims))) {
		qt_error_prefix(st, "%s", path);
		goto done;
	}
	if ((st = read_at(r, r->info.data_offset, t.data, r->info.data_bytes))) {
		qt_tensor_free(&t);
		goto done;
	}
	qt_tensor_free(out);
	*out = t;
done:
	qt_npy_close(r);
	return st;
}

/* ---- writer ---- */

enum qt_status qt_npy_write(const char *path, const struct qt_tensor *t)
{
	char descr[8];
	if (!npy_descr(t->dtype, descr))
		return qt_error(QT_E_UNSUPPORTED, "%s: cannot write a %s tensor as .npy", path, qt_dtype_name(t->dtype));
	if (t->rank < 0 || t->rank > QT_MAX_RANK)
		return qt_error(QT_E_INVALID_ARG, "%s: tensor rank %d outside 0..%d", path, t->rank, QT_MAX_RANK);
	for (int i = 0; i < t->rank; i++)
		if (t->dims[i] < 0)
			return qt_error(QT_E_INVALID_ARG, "%s: negative dimension %lld", path, (long long)t->dims[i]);
	size_t nbytes = qt_dtype_nbytes(t->dtype, qt_tensor_numel(t));
	if (nbytes != t->nbytes || (nbytes && !t->data))
		return qt_error(QT_E_INVALID_ARG, "%s: tensor holds %zu bytes but its shape needs %zu", path, t->nbytes,
				nbytes);

	/* Header: the dict, then spaces and '\n' so the data starts 64-byte aligned. */
	char hdr[512];
	memcpy(hdr, NPY_MAGIC, NPY_MAGIC_LEN);
	hdr[6] = 1; /* version 1.0 */
	hdr[7] = 0;
	int o = 10 + snprintf(hdr + 10, sizeof hdr - 10, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
	for (int i = 0; i < t->rank; i++)
		o += snprintf(hdr + o, sizeof hdr - (size_t)o, "%s%lld", i ? ", " : "", (long long)t->dims[i]);
	o += snprintf(hdr + o, sizeof hdr - (size_t)o, "%s), }", t->rank == 1 ? "," : "");
	/* 8 dims of 19 digits fit easily: o < 300, so total <= 320 < sizeof hdr. */
	size_t total = ((size_t)o + 1 + 63) / 64 * 64;
	memset(hdr + o, ' ', total - (size_t)o);
	hdr[total - 1] = '\n';
	hdr[8] = (char)((total - 10) & 0xff);
	hdr[9] = (char)((total - 10) >> 8);

	size_t plen = strlen(path);
	char *tmp = malloc(plen + 16);
	if (!tmp)
		return qt_error(QT_E_NOMEM, "%s: out of memory", path);
	snprintf(tmp, plen + 16, "%s.tmpXXXXXX", path);
	int fd = mkstemp(tmp);
	if (fd < 0) {
		enum qt_status st = qt_error(QT_E_IO, "cannot create a temporary file next to %s: %s", path,
					     strerror(errno));
		free(tmp);
		return st;
	}
	enum qt_status st = QT_OK;
	FILE *f = fdopen(fd, "wb");
	if (!f) {
		st = qt_error(QT_E_IO, "%s: %s", tmp, strerror(errno));
		close(fd);
		goto fail;
	}
	if (fchmod(fd, 0644) != 0 || fwrite(hdr, 1, total, f) != total ||
	    (nbytes && fwrite(t->data, 1, nbytes, f) != nbytes) || fflush(f) != 0 || fsync(fd) != 0) {
		st = qt_error(QT_E_IO, "writing %s failed: %s", tmp, strerror(errno));
		fclose(f);
		goto fail;
	}
	if (fclose(f) != 0) {
		st = qt_error(QT_E_IO, "writing %s failed: %s", tmp, strerror(errno));
		goto fail;
	}
	if (rename(tmp, path) != 0) {
		st = qt_error(QT_E_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		goto fail;
	}
	free(tmp);
	return QT_OK;
fail:
	unlink(tmp);
	free(tmp);
	return st;
}

/* ---- finite check ---- */

static enum qt_status not_finite(const char *label, int64_t i, int nan, int neg)
{
	return qt_error(QT_E_NUMERIC, "%s: element %lld is %s", label ? label : "tensor", (long long)i,
			nan ? "NaN" : neg ? "-Inf" : "+Inf");
}

enum qt_status qt_tensor_check_finite(const struct qt_tensor *t, const char *label)
{
	int64_t n = qt_tensor_numel(t);
	int bits = qt_dtype_bits(t->dtype);
	if (t->dtype != QT_DTYPE_F32 && t->dtype != QT_DTYPE_F64 && t->dtype != QT_DTYPE_F16)
		return QT_OK;
	if (n <= 0 || !t->data)
		return QT_OK;
	/* Never read past the buffer even if the shape and nbytes disagree. */
	if ((uint64_t)n > t->nbytes / (size_t)(bits / 8))
		n = (int64_t)(t->nbytes / (size_t)(bits / 8));
	const unsigned char *p = t->data;
	for (int64_t i = 0; i < n; i++) {
		if (t->dtype == QT_DTYPE_F32) {
			float v;
			memcpy(&v, p + 4 * i, 4);
			if (!isfinite(v))
				return not_finite(label, i, isnan(v), v < 0);
		} else if (t->dtype == QT_DTYPE_F64) {
			double v;
			memcpy(&v, p + 8 * i, 8);
			if (!isfinite(v))
				return not_finite(label, i, isnan(v), v < 0);
		} else {
			uint16_t h;
			memcpy(&h, p + 2 * i, 2);
			if ((h & 0x7c00) == 0x7c00)
				return not_finite(label, i, (h & 0x03ff) != 0, (h & 0x8000) != 0);
		}
	}
	return QT_OK;
}
