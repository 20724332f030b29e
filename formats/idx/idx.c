/*
 * IDX reader (MNIST format), plain files through stdio and gzip files through
 * zlib's gzread. See include/qtool/idx.h for the format and the guarantees.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "qtool/idx.h"

/* gzread takes an unsigned int length; read in chunks well below that. */
#define IDX_GZ_CHUNK ((size_t)1 << 30)
#define IDX_GZ_BUFFER (1u << 18)

struct qt_idx_reader {
	char *path;
	FILE *f;   /* plain file, or NULL */
	gzFile gz; /* gzip file, or NULL */
	struct qt_idx_info info;
	int64_t next;   /* item the gzip stream is positioned at, -1 if unknown */
	int end_checked; /* the gzip stream was verified to end after the last item */
};

static const char *idx_type_name(int t)
{
	switch (t) {
	case 0x08: return "unsigned byte";
	case 0x09: return "signed byte";
	case 0x0B: return "int16";
	case 0x0C: return "int32";
	case 0x0D: return "float32";
	case 0x0E: return "float64";
	}
	return NULL;
}

/* zlib's message without the "path: " it puts in front. */
static const char *gz_msg(const struct qt_idx_reader *r, int *zerr)
{
	const char *m = gzerror(r->gz, zerr);
	size_t n = strlen(r->path);
	if (m && !strncmp(m, r->path, n) && m[n] == ':' && m[n + 1] == ' ')
		m += n + 2;
	return m ? m : "unknown zlib error";
}

/* Read n header bytes; QT_OK, or QT_E_FORMAT naming what was being read. */
static enum qt_status header_read(struct qt_idx_reader *r, void *dst, size_t n, const char *what)
{
	if (r->f) {
		if (fread(dst, 1, n, r->f) == n)
			return QT_OK;
		return qt_error(QT_E_FORMAT, "%s: truncated header (%s)", r->path, what);
	}
	int got = gzread(r->gz, dst, (unsigned)n);
	if (got >= 0 && (size_t)got == n)
		return QT_OK;
	int zerr = Z_OK;
	const char *zmsg = gz_msg(r, &zerr);
	if (zerr == Z_ERRNO)
		return qt_error(QT_E_IO, "%s: read failed: %s", r->path, strerror(errno));
	if (zerr != Z_OK && zerr != Z_BUF_ERROR)
		return qt_error(QT_E_FORMAT, "%s: corrupt gzip data: %s", r->path, zmsg);
	return qt_error(QT_E_FORMAT, "%s: truncated header (%s)", r->path, what);
}

static enum qt_status parse_header(struct qt_idx_reader *r, uint64_t fsize)
{
	const char *path = r->path;
	unsigned char m[4];
	enum qt_status st = header_read(r, m, 4, "shorter than the 4-byte IDX magic");
	if (st)
		return st;
	if (m[0] != 0 || m[1] != 0)
		return qt_error(QT_E_FORMAT, "%s: not an IDX file (magic %02x %02x %02x %02x; expected 00 00 TYPE NDIMS)",
				path, m[0], m[1], m[2], m[3]);
	if (m[2] != 0x08) {
		const char *tn = idx_type_name(m[2]);
		if (tn)
			return qt_error(QT_E_UNSUPPORTED,
					"%s: element type 0x%02x (%s) is not supported; only 0x08 (unsigned byte) is",
					path, m[2], tn);
		return qt_error(QT_E_FORMAT, "%s: invalid IDX element type 0x%02x", path, m[2]);
	}
	if (m[3] < 1 || m[3] > QT_IDX_MAX_RANK)
		return qt_error(QT_E_UNSUPPORTED, "%s: %d dimensions; IDX files of 1 to %d dimensions are supported",
				path, m[3], QT_IDX_MAX_RANK);
	struct qt_idx_info *info = &r->info;
	info->rank = m[3];
	unsigned char d[4 * QT_IDX_MAX_RANK];
	if ((st = header_read(r, d, 4 * (size_t)info->rank, "the dimensions are cut short")))
		return st;
	uint64_t item = 1;
	for (int i = 0; i < info->rank; i++) {
		const unsigned char *p = d + 4 * i;
		uint64_t v = (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3];
		info->dims[i] = (int64_t)v;
		if (i == 0)
			continue;
		if (v == 0)
			return qt_error(QT_E_FORMAT, "%s: dimension %d is 0", path, i);
		item *= v; /* three factors below 2^32 could overflow: check below */
		if (item > (uint64_t)INT64_MAX / ((uint64_t)1 << 32))
			return qt_error(QT_E_FORMAT, "%s: one item would exceed 2^31 bytes", path);
	}
	info->item_bytes = item;
	info->data_offset = 4 + 4 * (uint64_t)info->rank;
	/* dims[0] < 2^32 and item < 2^31: the data size fits in 63 bits. */
	uint64_t data = (uint64_t)info->dims[0] * item;
	if (r->f && fsize - info->data_offset != data) {
		char sh[96];
		qt_shape_str(sh, sizeof sh, info->rank, info->dims);
		return qt_error(QT_E_FORMAT,
				"%s: header says %s (%llu bytes of data) but the file holds %llu bytes after the "
				"header%s",
				path, sh, (unsigned long long)data, (unsigned long long)(fsize - info->data_offset),
				fsize - info->data_offset < data ? " (truncated?)" : "");
	}
	return QT_OK;
}

enum qt_status qt_idx_open(const char *path, struct qt_idx_reader **out)
{
	*out = NULL;
	FILE *f = fopen(path, "rb");
	if (!f)
		return qt_error(QT_E_IO, "cannot open %s: %s", path, strerror(errno));
	struct stat sb;
	if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
		fclose(f);
		return qt_error(QT_E_IO, "%s: not a regular file", path);
	}
	struct qt_idx_reader *r = calloc(1, sizeof *r);
	if (!r || !(r->path = strdup(path))) {
		free(r);
		fclose(f);
		return qt_error(QT_E_NOMEM, "%s: out of memory", path);
	}
	unsigned char m[2] = {0, 0};
	size_t nm = fread(m, 1, 2, f);
	enum qt_status st;
	if (nm == 2 && m[0] == 0x1f && m[1] == 0x8b) {
		fclose(f);
		errno = 0;
		r->gz = gzopen(path, "rb");
		if (!r->gz) {
			st = qt_error(QT_E_IO, "cannot open %s: %s", path, errno ? strerror(errno) : "out of memory");
			goto fail;
		}
		gzbuffer(r->gz, IDX_GZ_BUFFER);
		r->info.gzip = 1;
	} else {
		rewind(f);
		r->f = f;
	}
	if ((st = parse_header(r, (uint64_t)sb.st_size)))
		goto fail;
	r->next = 0;
	*out = r;
	return QT_OK;
fail:
	qt_idx_close(r);
	return st;
}

const struct qt_idx_info *qt_idx_reader_info(const struct qt_idx_reader *r)
{
	return &r->info;
}

const char *qt_idx_reader_path(const struct qt_idx_reader *r)
{
	return r->path;
}

/* A short gzread: say where the stream ended and why. */
static enum qt_status gz_short(struct qt_idx_reader *r)
{
	int zerr = Z_OK;
	const char *zmsg = gz_msg(r, &zerr);
	z_off_t pos = gztell(r->gz);
	int64_t item = pos < 0 || (uint64_t)pos < r->info.data_offset
			       ? 0
			       : (int64_t)(((uint64_t)pos - r->info.data_offset) / r->info.item_bytes);
	r->next = -1;
	if (zerr == Z_ERRNO)
		return qt_error(QT_E_IO, "%s: read failed at item %lld: %s", r->path, (long long)item, strerror(errno));
	if (zerr == Z_MEM_ERROR)
		return qt_error(QT_E_NOMEM, "%s: out of memory decompressing", r->path);
	if (zerr != Z_OK && zerr != Z_BUF_ERROR)
		return qt_error(QT_E_FORMAT, "%s: corrupt gzip data at item %lld of %lld: %s", r->path,
				(long long)item, (long long)r->info.dims[0], zmsg);
	return qt_error(QT_E_FORMAT, "%s: truncated at item %lld of %lld", r->path, (long long)item,
			(long long)r->info.dims[0]);
}

/* After the last item: the stream must end there, with a valid checksum. */
static enum qt_status gz_check_end(struct qt_idx_reader *r)
{
	unsigned char c;
	int n = gzread(r->gz, &c, 1);
	int zerr = Z_OK;
	const char *zmsg = gz_msg(r, &zerr);
	r->next = -1;
	if (n == 1)
		return qt_error(QT_E_FORMAT, "%s: unexpected data after the last of %lld items", r->path,
				(long long)r->info.dims[0]);
	if (zerr == Z_BUF_ERROR)
		return qt_error(QT_E_FORMAT, "%s: truncated after the last item (gzip trailer missing)", r->path);
	if (zerr == Z_ERRNO)
		return qt_error(QT_E_IO, "%s: read failed: %s", r->path, strerror(errno));
	if (zerr != Z_OK)
		return qt_error(QT_E_FORMAT, "%s: corrupt gzip data after the last item: %s", r->path, zmsg);
	r->end_checked = 1;
	return QT_OK;
}

enum qt_status qt_idx_read(struct qt_idx_reader *r, int64_t start, int64_t count, uint8_t *dst)
{
	int64_t n = r->info.dims[0];
	if (start < 0 || count < 0 || start > n || count > n - start)
		return qt_error(QT_E_INVALID_ARG, "%s: items [%lld, %lld) are outside the %lld items of the file",
				r->path, (long long)start, (long long)start + (long long)(count > 0 ? count : 0),
				(long long)n);
	if (count == 0)
		return QT_OK;
	uint64_t off = r->info.data_offset + (uint64_t)start * r->info.item_bytes;
	uint64_t bytes = (uint64_t)count * r->info.item_bytes;
	if (r->f) {
		if (fseeko(r->f, (off_t)off, SEEK_SET) != 0)
			return qt_error(QT_E_IO, "%s: seek to item %lld failed: %s", r->path, (long long)start,
					strerror(errno));
		size_t got = fread(dst, 1, (size_t)bytes, r->f);
		if (got != bytes) {
			int err = ferror(r->f);
			clearerr(r->f);
			int64_t item = start + (int64_t)(got / r->info.item_bytes);
			if (err)
				return qt_error(QT_E_IO, "%s: read failed at item %lld: %s", r->path, (long long)item,
						strerror(errno));
			return qt_error(QT_E_FORMAT, "%s: truncated at item %lld of %lld (did the file change?)",
					r->path, (long long)item, (long long)n);
		}
		return QT_OK;
	}
	if (!r->gz)
		return qt_error(QT_E_IO, "%s: the file could not be reopened after an error", r->path);
	int zerr = Z_OK;
	gzerror(r->gz, &zerr);
	if (zerr != Z_OK && zerr != Z_BUF_ERROR) {
		/* zlib refuses to seek after a data error: start over, so the caller sees the same error again. */
		gzclose(r->gz);
		errno = 0;
		if (!(r->gz = gzopen(r->path, "rb")))
			return qt_error(QT_E_IO, "cannot reopen %s: %s", r->path, errno ? strerror(errno) : "out of memory");
		gzbuffer(r->gz, IDX_GZ_BUFFER);
		r->next = -1;
	}
	if (r->next != start) {
		/* Forward: zlib decompresses and discards; backward: it rewinds first. */
		if (gzseek(r->gz, (z_off_t)off, SEEK_SET) < 0) {
			const char *zmsg = gz_msg(r, &zerr);
			r->next = -1;
			if (zerr == Z_ERRNO || zerr == Z_OK)
				return qt_error(QT_E_IO, "%s: cannot seek to item %lld: %s", r->path, (long long)start,
						strerror(errno));
			return qt_error(QT_E_FORMAT, "%s: corrupt gzip data before item %lld: %s", r->path,
					(long long)start, zmsg);
		}
	}
	r->next = -1;
	for (uint64_t done = 0; done < bytes;) {
		size_t want = bytes - done > IDX_GZ_CHUNK ? IDX_GZ_CHUNK : (size_t)(bytes - done);
		int got = gzread(r->gz, dst + done, (unsigned)want);
		if (got < 0 || (size_t)got != want)
			return gz_short(r);
		done += want;
	}
	r->next = start + count;
	if (r->next == n && !r->end_checked)
		return gz_check_end(r);
	return QT_OK;
}

void qt_idx_close(struct qt_idx_reader *r)
{
	if (!r)
		return;
	if (r->f)
		fclose(r->f);
	if (r->gz)
		gzclose(r->gz);
	free(r->path);
	free(r);
}

enum qt_status qt_idx_read_all(const char *path, struct qt_tensor *out)
{
	struct qt_idx_reader *r;
	enum qt_status st = qt_idx_open(path, &r);
	if (st)
		return st;
	struct qt_tensor t = {0};
	if ((st = qt_tensor_alloc(&t, QT_DTYPE_U8, r->info.rank, r->info.dims))) {
		qt_error_prefix(st, "%s", path);
	} else if ((st = qt_idx_read(r, 0, r->info.dims[0], t.data))) {
		qt_tensor_free(&t);
	} else {
		qt_tensor_free(out);
		*out = t;
	}
	qt_idx_close(r);
	return st;
}
