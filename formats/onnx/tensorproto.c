/*
 * TensorProto <-> qt_tensor, and the protobuf plumbing the model loader
 * shares: the scratch allocator, the nesting-depth check, file reading.
 *
 * One conversion function (qt_onnx_tensor_convert) serves model
 * initializers, Constant nodes, tensor attributes and .pb files, so the
 * dtype and size rules are written once.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx_int.h"
#include "qtool/onnx.h"

/* raw_data and external data are little-endian; we copy them as they are. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "qtool's ONNX reader assumes a little-endian host"
#endif

/* ---- scratch allocator ---------------------------------------------------- */

static void *scratch_alloc(void *ud, size_t n)
{
	struct qt_pb_scratch *s = ud;
	if (n > s->budget - s->used) {
		s->over_budget = 1;
		return NULL;
	}
	void *p = qt_arena_alloc(s->arena, n);
	if (p)
		s->used += n;
	return p;
}

/* Everything is dropped with the arena. */
static void scratch_free(void *ud, void *p)
{
	(void)ud;
	(void)p;
}

enum qt_status qt_pb_scratch_init(struct qt_pb_scratch *s, size_t input_len)
{
	memset(s, 0, sizeof *s);
	/* Real models unpack to about their own size (weights dominate) or up
	 * to ~20x for graphs of many small nodes; 32x + 256 MiB admits both. */
	size_t slack = (size_t)256 << 20;
	s->budget = input_len <= (SIZE_MAX - slack) / 32 ? input_len * 32 + slack : SIZE_MAX;
	s->arena = qt_arena_new(64 * 1024);
	if (!s->arena)
		return qt_error(QT_E_NOMEM, "out of memory");
	s->pa.alloc = scratch_alloc;
	s->pa.free = scratch_free;
	s->pa.allocator_data = s;
	return QT_OK;
}

void qt_pb_scratch_free(struct qt_pb_scratch *s)
{
	qt_arena_free(s->arena);
	s->arena = NULL;
}

/* ---- wire-format depth check ---------------------------------------------- */

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t x = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (*p >= end)
			return 0;
		uint8_t b = *(*p)++;
		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return 1;
		}
	}
	return 0;
}

/*
 * Walk the fields of one message of type d, recursing into sub-messages the
 * descriptor knows. 1 when well formed, 0 when malformed, -1 when nested
 * deeper than QT_ONNX_MAX_DEPTH. This bounds protobuf-c's recursion, which
 * has no limit of its own in 1.4; our own recursion is bounded by the same
 * check.
 */
static int scan_depth(const ProtobufCMessageDescriptor *d, const uint8_t *p, const uint8_t *end, int depth)
{
	while (p < end) {
		uint64_t key, n;
		if (!read_varint(&p, end, &key))
			return 0;
		switch (key & 7) {
		case 0: /* varint */
			if (!read_varint(&p, end, &n))
				return 0;
			break;
		case 1: /* 64-bit */
			if (end - p < 8)
				return 0;
			p += 8;
			break;
		case 5: /* 32-bit */
			if (end - p < 4)
				return 0;
			p += 4;
			break;
		case 2: { /* length-delimited: bytes, string, packed or a sub-message */
			if (!read_varint(&p, end, &n) || n > (uint64_t)(end - p))
				return 0;
			uint64_t num = key >> 3;
			const ProtobufCFieldDescriptor *f =
				num <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned)num) : NULL;
			if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
				if (depth + 1 > QT_ONNX_MAX_DEPTH)
					return -1;
				int r = scan_depth(f->descriptor, p, p + n, depth + 1);
				if (r != 1)
					return r;
			}
			p += n;
			break;
		}
		default: /* groups (3, 4) are not used by ONNX; 6, 7 do not exist */
			return 0;
		}
	}
	return 1;
}

enum qt_status qt_pb_unpack(const ProtobufCMessageDescriptor *desc, const void *buf, size_t len,
			    struct qt_pb_scratch *s, const char *what, ProtobufCMessage **msg_out)
{
	static const uint8_t empty[1];
	*msg_out = NULL;
	if (len > QT_ONNX_MAX_FILE)
		return qt_error(QT_E_FORMAT, "%zu bytes is more than the 2 GiB protobuf limit", len);
	const uint8_t *p = buf ? buf : empty; /* NULL + 0 is undefined */
	int r = scan_depth(desc, p, p + len, 0);
	if (r < 0)
		return qt_error(QT_E_FORMAT, "messages are nested more than %d levels deep", QT_ONNX_MAX_DEPTH);
	if (r == 0)
		return qt_error(QT_E_FORMAT, "truncated or not %s (protobuf parse failed)", what);
	ProtobufCMessage *m = protobuf_c_message_unpack(desc, &s->pa, len, p);
	if (!m) {
		if (s->over_budget)
			return qt_error(QT_E_NOMEM, "unpacking %zu bytes needs more than %zu MiB", len, s->budget >> 20);
		return qt_error(QT_E_FORMAT, "truncated or not %s (protobuf parse failed)", what);
	}
	*msg_out = m;
	return QT_OK;
}

/* ---- files ------------------------------------------------------------------ */

enum qt_status qt_onnx_read_file(const char *path, void **buf_out, size_t *len_out)
{
	*buf_out = NULL;
	*len_out = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return qt_error(QT_E_IO, "%s: cannot open: %s", path, strerror(errno));
	struct stat sb;
	if (fstat(fd, &sb) != 0) {
		int e = errno;
		close(fd);
		return qt_error(QT_E_IO, "%s: cannot stat: %s", path, strerror(e));
	}
	if (!S_ISREG(sb.st_mode)) {
		close(fd);
		return qt_error(QT_E_IO, "%s: not a regular file", path);
	}
	if ((uint64_t)sb.st_size > QT_ONNX_MAX_FILE) {
		close(fd);
		return qt_error(QT_E_FORMAT, "%s: %lld bytes is more than the 2 GiB limit", path, (long long)sb.st_size);
	}
	size_t n = (size_t)sb.st_size, got = 0;
	unsigned char *buf = malloc(n ? n : 1);
	if (!buf) {
		close(fd);
		return qt_error(QT_E_NOMEM, "%s: out of memory reading %zu bytes", path, n);
	}
	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			free(buf);
			close(fd);
			return qt_error(QT_E_IO, "%s: read failed: %s", path, strerror(e));
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (got != n) {
		free(buf);
		return qt_error(QT_E_IO, "%s: file shrank while being read", path);
	}
	*buf_out = buf;
	*len_out = n;
	return QT_OK;
}

int qt_onnx_dirname(const char *path, char *out, size_t cap)
{
	const char *slash = strrchr(path, '/');
	if (!slash) {
		if (cap < 2)
			return -1;
		memcpy(out, ".", 2);
		return 0;
	}
	size_t n = slash == path ? 1 : (size_t)(slash - path);
	if (n + 1 > cap)
		return -1;
	memcpy(out, path, n);
	out[n] = '\0';
	return 0;
}

/* ---- TensorProto -> qt_tensor ------------------------------------------------ */

/* Names of ONNX data types we know but do not load, for clearer refusals. */
static const char *onnx_type_name(int t)
{
	switch (t) {
	case 14: return "complex64";
	case 15: return "complex128";
	case 16: return "bfloat16";
	case 17: return "float8e4m3fn";
	case 18: return "float8e4m3fnuz";
	case 19: return "float8e5m2";
	case 20: return "float8e5m2fnuz";
	case 21: return "uint4";
	case 22: return "int4";
	}
	return NULL;
}

/* Strict decimal: digits only, no sign or spaces, no overflow. */
static int parse_u64(const char *s, uint64_t *v)
{
	uint64_t x = 0;
	if (!*s)
		return 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return 0;
		unsigned d = (unsigned)(*s - '0');
		if (x > (UINT64_MAX - d) / 10)
			return 0;
		x = x * 10 + d;
	}
	*v = x;
	return 1;
}

/* 1 when some '/'-separated component of path is "..". */
static int has_dotdot(const char *path)
{
	for (const char *p = path; *p;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return 1;
		if (!e)
			break;
		p = e + 1;
	}
	return 0;
}

/*
 * Read exactly nbytes of external data into dst. The location must stay
 * inside dir: relative, without "..". (A symlink inside the folder is
 * followed: the model's folder is trusted as a whole, its contents are not.)
 */
/* Allocate nbytes (from arena, or calloc when arena is NULL; at least 1 byte). */
static void *alloc_data(struct qt_arena *arena, size_t nbytes)
{
	return arena ? qt_arena_alloc(arena, nbytes ? nbytes : 1) : calloc(1, nbytes ? nbytes : 1);
}

/*
 * Read external data into a new buffer (*dst_out, allocated as alloc_data
 * does). Everything the TensorProto claims (location, offset, length, the
 * file's size) is checked before the buffer is allocated, so the allocation
 * is bounded by a file that exists.
 */
static enum qt_status read_external(const Onnx__TensorProto *tp, const char *what, const char *dir,
				    struct qt_arena *arena, size_t nbytes, void **dst_out)
{
	const char *loc = NULL, *off_s = NULL, *len_s = NULL;
	for (size_t i = 0; i < tp->n_external_data; i++) {
		const Onnx__StringStringEntryProto *e = tp->external_data[i];
		const char *k = e->key ? e->key : "", *v = e->value ? e->value : "";
		if (strcmp(k, "location") == 0)
			loc = v;
		else if (strcmp(k, "offset") == 0)
			off_s = v;
		else if (strcmp(k, "length") == 0)
			len_s = v;
		/* "checksum" and unknown keys are ignored. */
	}
	if (!loc || !*loc)
		return qt_error(QT_E_FORMAT, "%s: external data has no location", what);
	if (!dir)
		return qt_error(QT_E_UNSUPPORTED,
				"%s: external data \"%s\" cannot be resolved when loading from memory", what, loc);
	if (loc[0] == '/')
		return qt_error(QT_E_FORMAT,
				"%s: external data path \"%s\" is absolute; it must be relative to the model's folder",
				what, loc);
	if (has_dotdot(loc))
		return qt_error(QT_E_FORMAT, "%s: external data path \"%s\" must not contain a \"..\" component", what,
				loc);
	uint64_t off = 0, len = 0;
	if (off_s && !parse_u64(off_s, &off))
		return qt_error(QT_E_FORMAT, "%s: external data \"%s\": offset \"%s\" is not a non-negative integer",
				what, loc, off_s);
	if (len_s && !parse_u64(len_s, &len))
		return qt_error(QT_E_FORMAT, "%s: external data \"%s\": length \"%s\" is not a non-negative integer",
				what, loc, len_s);

	char path[PATH_MAX];
	if ((size_t)snprintf(path, sizeof path, "%s/%s", *dir ? dir : ".", loc) >= sizeof path)
		return qt_error(QT_E_FORMAT, "%s: external data path \"%s\" is too long", what, loc);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return qt_error(QT_E_IO, "%s: external data \"%s\": cannot open %s: %s", what, loc, path,
				strerror(errno));
	struct stat sb;
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return qt_error(QT_E_IO, "%s: external data \"%s\" is not a readable regular file", what, loc);
	}
	uint64_t size = (uint64_t)sb.st_size;
	if (off > size) {
		close(fd);
		return qt_error(QT_E_FORMAT, "%s: external data \"%s\": offset %llu is beyond the file's %llu bytes",
				what, loc, (unsigned long long)off, (unsigned long long)size);
	}
	if (!len_s)
		len = size - off;
	if (len > size - off) {
		close(fd);
		return qt_error(QT_E_FORMAT,
				"%s: external data \"%s\": offset %llu + length %llu is beyond the file's %llu bytes", what,
				loc, (unsigned long long)off, (unsigned long long)len, (unsigned long long)size);
	}
	if (len != nbytes) {
		close(fd);
		return qt_error(QT_E_FORMAT, "%s: external data \"%s\" has %llu bytes, the shape needs %zu", what, loc,
				(unsigned long long)len, nbytes);
	}
	void *dst = alloc_data(arena, nbytes);
	if (!dst) {
		close(fd);
		return qt_error(QT_E_NOMEM, "%s: out of memory for %zu bytes", what, nbytes);
	}
	*dst_out = dst;
	size_t got = 0;
	while (got < nbytes) {
		ssize_t r = pread(fd, (char *)dst + got, nbytes - got, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int e = r < 0 ? errno : 0;
			close(fd);
			return qt_error(QT_E_IO, "%s: external data \"%s\": read failed: %s", what, loc,
					e ? strerror(e) : "file shrank");
		}
		got += (size_t)r;
	}
	close(fd);
	return QT_OK;
}

/*
 * The typed field ONNX stores dtype dt in (when raw_data is not used), and
 * the number of values present in it.
 */
static const char *typed_field(const Onnx__TensorProto *tp, enum qt_dtype dt, size_t *n_out)
{
	switch (dt) {
	case QT_DTYPE_F32: *n_out = tp->n_float_data; return "float_data";
	case QT_DTYPE_F64: *n_out = tp->n_double_data; return "double_data";
	case QT_DTYPE_I64: *n_out = tp->n_int64_data; return "int64_data";
	case QT_DTYPE_U32:
	case QT_DTYPE_U64: *n_out = tp->n_uint64_data; return "uint64_data";
	default: *n_out = tp->n_int32_data; return "int32_data"; /* int32 and narrower, bool, float16 */
	}
}

/* Copy numel values of the typed field into data, range-checking narrowing. */
static enum qt_status fill_typed(const Onnx__TensorProto *tp, const char *what, enum qt_dtype dt, size_t numel,
				 void *data)
{
	switch (dt) {
	case QT_DTYPE_F32: memcpy(data, tp->float_data, numel * 4); return QT_OK;
	case QT_DTYPE_F64: memcpy(data, tp->double_data, numel * 8); return QT_OK;
	case QT_DTYPE_I64: memcpy(data, tp->int64_data, numel * 8); return QT_OK;
	case QT_DTYPE_U64: memcpy(data, tp->uint64_data, numel * 8); return QT_OK;
	case QT_DTYPE_U32:
		for (size_t i = 0; i < numel; i++) {
			if (tp->uint64_data[i] > UINT32_MAX)
				return qt_error(QT_E_FORMAT, "%s: uint64_data value %llu at index %zu does not fit uint32",
						what, (unsigned long long)tp->uint64_data[i], i);
			((uint32_t *)data)[i] = (uint32_t)tp->uint64_data[i];
		}
		return QT_OK;
	case QT_DTYPE_I32: memcpy(data, tp->int32_data, numel * 4); return QT_OK;
	default: break;
	}
	/* int32_data carries the narrower types one value per int32. float16
	 * holds the bit pattern; writers differ on its sign, so both readings of
	 * 16 bits are accepted. */
	int32_t lo, hi;
	switch (dt) {
	case QT_DTYPE_I8: lo = INT8_MIN, hi = INT8_MAX; break;
	case QT_DTYPE_U8: lo = 0, hi = UINT8_MAX; break;
	case QT_DTYPE_I16: lo = INT16_MIN, hi = INT16_MAX; break;
	case QT_DTYPE_U16: lo = 0, hi = UINT16_MAX; break;
	case QT_DTYPE_F16: lo = INT16_MIN, hi = UINT16_MAX; break;
	case QT_DTYPE_BOOL: lo = INT32_MIN, hi = INT32_MAX; break;
	default: return qt_error(QT_E_UNSUPPORTED, "%s: %s has no typed field", what, qt_dtype_name(dt));
	}
	for (size_t i = 0; i < numel; i++) {
		int32_t x = tp->int32_data[i];
		if (x < lo || x > hi)
			return qt_error(QT_E_FORMAT, "%s: int32_data value %d at index %zu is out of range for %s", what,
					(int)x, i, qt_dtype_name(dt));
		switch (dt) {
		case QT_DTYPE_I8: ((int8_t *)data)[i] = (int8_t)x; break;
		case QT_DTYPE_U8: ((uint8_t *)data)[i] = (uint8_t)x; break;
		case QT_DTYPE_I16: ((int16_t *)data)[i] = (int16_t)x; break;
		case QT_DTYPE_U16:
		case QT_DTYPE_F16: ((uint16_t *)data)[i] = (uint16_t)((uint32_t)x & 0xffff); break;
		default: ((uint8_t *)data)[i] = x != 0; break; /* bool */
		}
	}
	return QT_OK;
}

enum qt_status qt_onnx_tensor_convert(const Onnx__TensorProto *tp, const char *what, const char *dir,
				      struct qt_arena *arena, struct qt_tensor *out)
{
	memset(out, 0, sizeof *out);
	int odt = tp->has_data_type ? tp->data_type : 0;
	enum qt_dtype dt = qt_dtype_from_onnx(odt);
	if (dt == QT_DTYPE_STRING || tp->n_string_data)
		return qt_error(QT_E_UNSUPPORTED, "%s: string tensors are not supported", what);
	if (dt == QT_DTYPE_UNDEFINED) {
		if (odt == 0)
			return qt_error(QT_E_FORMAT, "%s: no data type", what);
		if (onnx_type_name(odt))
			return qt_error(QT_E_UNSUPPORTED, "%s: data type %s is not supported", what, onnx_type_name(odt));
		return qt_error(QT_E_FORMAT, "%s: unknown data type %d", what, odt);
	}
	if (tp->n_dims > QT_MAX_RANK)
		return qt_error(QT_E_UNSUPPORTED, "%s: rank %zu is more than the maximum of %d", what, tp->n_dims,
				QT_MAX_RANK);
	int rank = (int)tp->n_dims;
	char shape[QT_MAX_RANK * 22 + 4];
	qt_shape_str(shape, sizeof shape, rank, tp->dims);
	/* The product of the non-zero dims is bounded too, so code multiplying
	 * dims in any order never overflows, even when another dim is 0. */
	uint64_t prod = 1;
	int zero = 0;
	size_t esz = (size_t)qt_dtype_bits(dt) / 8;
	for (int i = 0; i < rank; i++) {
		int64_t d = tp->dims[i];
		if (d < 0)
			return qt_error(QT_E_FORMAT, "%s: negative dimension in shape %s", what, shape);
		if (d == 0) {
			zero = 1;
			continue;
		}
		if (prod > QT_TENSOR_MAX_BYTES / esz / (uint64_t)d)
			return qt_error(QT_E_NOMEM, "%s: shape %s is larger than the %zu-byte tensor limit", what, shape,
					QT_TENSOR_MAX_BYTES);
		prod *= (uint64_t)d;
	}
	size_t numel = zero ? 0 : (size_t)prod;
	size_t nbytes = numel * esz;
	if (tp->segment)
		return qt_error(QT_E_UNSUPPORTED, "%s: segmented tensors are not supported", what);
	if (tp->has_data_location && tp->data_location != ONNX__TENSOR_PROTO__DATA_LOCATION__DEFAULT &&
	    tp->data_location != ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
		return qt_error(QT_E_FORMAT, "%s: unknown data_location %d", what, (int)tp->data_location);
	int external = tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;

	/* Exactly one place may hold the data. */
	const char *src = NULL;
	int n_src = 0;
	const struct {
		const char *name;
		size_t n;
	} fields[] = {{"float_data", tp->n_float_data}, {"int32_data", tp->n_int32_data},
		      {"int64_data", tp->n_int64_data}, {"double_data", tp->n_double_data},
		      {"uint64_data", tp->n_uint64_data}};
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
		if (fields[i].n) {
			n_src++;
			src = fields[i].name;
		}
	int raw = tp->has_raw_data && (tp->raw_data.len > 0 || n_src == 0);
	if (raw) {
		n_src++;
		src = "raw_data";
	}
	if (external && n_src)
		return qt_error(QT_E_FORMAT, "%s: has both external data and %s", what, src);
	if (n_src > 1)
		return qt_error(QT_E_FORMAT, "%s: data is given in more than one field", what);
	size_t n_typed = 0;
	const char *want = typed_field(tp, dt, &n_typed);
	if (n_src && !raw && strcmp(src, want) != 0)
		return qt_error(QT_E_FORMAT, "%s: %s values cannot come from %s (expected %s or raw_data)", what,
				qt_dtype_name(dt), src, want);
	if (!external && !n_src && numel > 0)
		return qt_error(QT_E_FORMAT, "%s: shape %s needs %zu values but the tensor has no data", what, shape,
				numel);
	if (raw && tp->raw_data.len != nbytes)
		return qt_error(QT_E_FORMAT, "%s: raw_data has %zu bytes, shape %s of %s needs %zu", what,
				tp->raw_data.len, shape, qt_dtype_name(dt), nbytes);
	if (n_src && !raw && n_typed != numel)
		return qt_error(QT_E_FORMAT, "%s: %s has %zu values, shape %s needs %zu", what, want, n_typed, shape,
				numel);

	/* Sizes are now tied to bytes that exist in the file; external data is
	 * checked against its file before read_external allocates. */
	void *data = NULL;
	enum qt_status st = QT_OK;
	if (external)
		st = read_external(tp, what, dir, arena, nbytes, &data);
	else if (!(data = alloc_data(arena, nbytes)))
		return qt_error(QT_E_NOMEM, "%s: out of memory for %zu bytes", what, nbytes);
	else if (raw && nbytes) { /* an empty raw_data may come with a NULL pointer */
		memcpy(data, tp->raw_data.data, nbytes);
		if (dt == QT_DTYPE_BOOL) /* one byte per element, 0 or 1 */
			for (size_t i = 0; i < nbytes; i++)
				((uint8_t *)data)[i] = ((uint8_t *)data)[i] != 0;
	} else if (numel)
		st = fill_typed(tp, what, dt, numel, data);
	if (st) {
		if (!arena)
			free(data);
		return st;
	}
	out->dtype = dt;
	out->rank = rank;
	for (int i = 0; i < rank; i++)
		out->dims[i] = tp->dims[i];
	out->data = data;
	out->nbytes = nbytes;
	out->owned = arena == NULL;
	return QT_OK;
}

/* ---- .pb files ------------------------------------------------------------------ */

/* One varint at *p (at most 10 bytes, within end); advances *p. 0 when malformed. */
static int pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (int sh = 0; sh < 70 && *p < end; sh += 7) {
		uint8_t b = *(*p)++;
		*v |= (uint64_t)(b & 0x7f) << sh;
		if (!(b & 0x80))
			return 1;
	}
	return 0;
}

/* Walk the fields of a protobuf message (no recursion). 1 when every field
 * has a known wire type and stays within len. */
static int pb_fields_ok(const uint8_t *p, size_t len)
{
	const uint8_t *end = p + len;
	while (p < end) {
		uint64_t key, v;
		if (!pb_varint(&p, end, &key) || key >> 3 == 0)
			return 0;
		switch (key & 7) {
		case 0: if (!pb_varint(&p, end, &v)) return 0; break;
		case 1: if (end - p < 8) return 0; p += 8; break;
		case 5: if (end - p < 4) return 0; p += 4; break;
		case 2:
			if (!pb_varint(&p, end, &v) || v > (uint64_t)(end - p))
				return 0;
			p += v;
			break;
		default: return 0;
		}
	}
	return 1;
}

/*
 * Whether bytes that are not a valid TensorProto are an ONNX SequenceProto
 * or OptionalProto (onnx-data.proto), which the backend test suite stores in
 * the same input_N.pb files: fields 1 (name: a printable string), 2
 * (elem_type: 0..5, required here) and 3..7 (the elements or the value:
 * well-formed messages), nothing else. A TensorProto always fails this once
 * it has a name (field 8), raw data (9) or unpacked dims, and its packed dims
 * are rarely printable; only files the TensorProto reader refused are asked.
 */
static int seq_or_optional(const uint8_t *p, size_t len, uint64_t *elem_type)
{
	const uint8_t *end = p + len;
	int has_type = 0;
	while (p < end) {
		uint64_t key, v;
		if (!pb_varint(&p, end, &key))
			return 0;
		uint64_t field = key >> 3, wt = key & 7;
		if (field == 2 && wt == 0) {
			if (!pb_varint(&p, end, elem_type) || *elem_type > 5)
				return 0;
			has_type = 1;
			continue;
		}
		if (field < 1 || field > 7 || wt != 2 || !pb_varint(&p, end, &v) || v > (uint64_t)(end - p))
			return 0;
		for (uint64_t i = 0; field == 1 && i < v; i++)
			if (p[i] < 0x20 || p[i] == 0x7f)
				return 0;
		if (field >= 3 && !pb_fields_ok(p, (size_t)v))
			return 0;
		p += v;
	}
	return has_type;
}

static enum qt_status read_pb(const void *buf, size_t len, const char *dir, const char *label, struct qt_tensor *out,
			      char *name_out, size_t name_cap)
{
	memset(out, 0, sizeof *out);
	if (name_out && name_cap)
		name_out[0] = '\0';
	struct qt_pb_scratch s;
	ProtobufCMessage *m = NULL;
	enum qt_status st = qt_pb_scratch_init(&s, len);
	if (!st)
		st = qt_pb_unpack(&onnx__tensor_proto__descriptor, buf, len, &s, "a TensorProto", &m);
	if (!st) {
		const Onnx__TensorProto *tp = (const Onnx__TensorProto *)m;
		const char *nm = tp->name ? tp->name : "";
		char what[300];
		if (*nm)
			snprintf(what, sizeof what, "tensor \"%s\"", nm);
		else
			snprintf(what, sizeof what, "tensor (unnamed)");
		st = qt_onnx_tensor_convert(tp, what, dir, NULL, out);
		if (!st && name_out && name_cap)
			snprintf(name_out, name_cap, "%s", nm);
	}
	qt_pb_scratch_free(&s);
	uint64_t et = 0;
	if (st && buf && seq_or_optional(buf, len, &et)) {
		static const char *const kinds[] = {"undefined", "tensor", "sparse tensor", "sequence", "map", "optional"};
		qt_tensor_free(out);
		qt_error_clear();
		return qt_error(QT_E_UNSUPPORTED,
				"%s: a SequenceProto or OptionalProto (elements: %s), not a TensorProto: sequence and "
				"optional inputs are unsupported",
				label, kinds[et]);
	}
	if (st)
		return qt_error_prefix(st, "%s", label);
	return QT_OK;
}

enum qt_status qt_tensor_read_pb_mem(const void *buf, size_t len, const char *label, struct qt_tensor *out,
				     char *name_out, size_t name_cap)
{
	if (!label)
		label = "<memory>";
	if (!buf && len) {
		memset(out, 0, sizeof *out);
		return qt_error(QT_E_INVALID_ARG, "%s: NULL buffer", label);
	}
	return read_pb(buf, len, NULL, label, out, name_out, name_cap);
}

enum qt_status qt_tensor_read_pb(const char *path, struct qt_tensor *out, char *name_out, size_t name_cap)
{
	memset(out, 0, sizeof *out);
	if (name_out && name_cap)
		name_out[0] = '\0';
	void *buf;
	size_t len;
	char dir[PATH_MAX];
	if (qt_onnx_dirname(path, dir, sizeof dir))
		return qt_error(QT_E_INVALID_ARG, "%s: path is too long", path);
	enum qt_status st = qt_onnx_read_file(path, &buf, &len);
	if (st)
		return st;
	st = read_pb(buf, len, dir, path, out, name_out, name_cap);
	free(buf);
	return st;
}

/* write(2) all of n bytes. 0, or -1 with errno set. */
static int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t r = write(fd, c, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

enum qt_status qt_tensor_write_pb(const char *path, const struct qt_tensor *t, const char *name)
{
	int odt = qt_dtype_to_onnx(t->dtype);
	if (!odt || t->dtype == QT_DTYPE_STRING)
		return qt_error(QT_E_UNSUPPORTED, "%s: a %s tensor has no TensorProto encoding", path,
				qt_dtype_name(t->dtype));
	if (t->rank < 0 || t->rank > QT_MAX_RANK)
		return qt_error(QT_E_INVALID_ARG, "%s: tensor rank %d outside 0..%d", path, t->rank, QT_MAX_RANK);
	for (int i = 0; i < t->rank; i++)
		if (t->dims[i] < 0)
			return qt_error(QT_E_INVALID_ARG, "%s: negative dimension", path);
	size_t need = qt_dtype_nbytes(t->dtype, qt_tensor_numel(t));
	if (t->nbytes < need || (need && !t->data))
		return qt_error(QT_E_INVALID_ARG, "%s: tensor buffer has %zu bytes, its shape needs %zu", path,
				t->nbytes, need);

	Onnx__TensorProto tp = ONNX__TENSOR_PROTO__INIT;
	int64_t dims[QT_MAX_RANK];
	for (int i = 0; i < t->rank; i++)
		dims[i] = t->dims[i];
	tp.n_dims = (size_t)t->rank;
	tp.dims = dims;
	tp.has_data_type = 1;
	tp.data_type = odt;
	tp.name = (char *)name; /* protobuf-c does not write through it */
	tp.has_raw_data = 1;
	tp.raw_data.len = need;
	tp.raw_data.data = t->data;
	size_t sz = onnx__tensor_proto__get_packed_size(&tp);
	uint8_t *bytes = malloc(sz ? sz : 1);
	if (!bytes)
		return qt_error(QT_E_NOMEM, "%s: out of memory", path);
	onnx__tensor_proto__pack(&tp, bytes);

	char tmp[PATH_MAX];
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= sizeof tmp) {
		free(bytes);
		return qt_error(QT_E_INVALID_ARG, "%s: path is too long", path);
	}
	int fd = mkstemp(tmp);
	if (fd < 0) {
		int e = errno;
		free(bytes);
		return qt_error(QT_E_IO, "%s: cannot create %s: %s", path, tmp, strerror(e));
	}
	int failed = fchmod(fd, 0644) != 0 || write_all(fd, bytes, sz) != 0;
	int e = errno;
	if (close(fd) != 0 && !failed) {
		failed = 1;
		e = errno;
	}
	free(bytes);
	if (!failed && rename(tmp, path) != 0) {
		failed = 1;
		e = errno;
	}
	if (failed) {
		unlink(tmp);
		return qt_error(QT_E_IO, "%s: write failed: %s", path, strerror(e));
	}
	return QT_OK;
}
