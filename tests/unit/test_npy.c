/*
 * .npy reader/writer, the streaming row reader and qt_tensor_check_finite.
 *
 * Three fixtures are bytes written by NumPy 1.24 (np.save and
 * np.lib.format.write_array with version=(2,0) and (3,0)); the writer must
 * reproduce NumPy's bytes exactly. Malformed headers are built by hand and
 * each refusal must name the file.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qtool/npy.h"

/* np.save(f, (np.arange(6, dtype=np.float32) * 0.5).reshape(2, 3)) */
static const unsigned char np_f4_v1[] = {
	0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x01, 0x00, 0x76, 0x00, 0x7b, 0x27, 0x64, 0x65, 0x73, 0x63,
	0x72, 0x27, 0x3a, 0x20, 0x27, 0x3c, 0x66, 0x34, 0x27, 0x2c, 0x20, 0x27, 0x66, 0x6f, 0x72, 0x74,
	0x72, 0x61, 0x6e, 0x5f, 0x6f, 0x72, 0x64, 0x65, 0x72, 0x27, 0x3a, 0x20, 0x46, 0x61, 0x6c, 0x73,
	0x65, 0x2c, 0x20, 0x27, 0x73, 0x68, 0x61, 0x70, 0x65, 0x27, 0x3a, 0x20, 0x28, 0x32, 0x2c, 0x20,
	0x33, 0x29, 0x2c, 0x20, 0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
	0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
	0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
	0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x0a,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0xc0, 0x3f,
	0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x20, 0x40,
};

/* write_array(f, np.array([-1, 2**40, 3], dtype=np.int64), version=(2, 0)) */
static const unsigned char np_i8_v2[] = {
	0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x02, 0x00, 0x74, 0x00, 0x00, 0x00, 0x7b, 0x27, 0x64, 0x65,
	0x73, 0x63, 0x72, 0x27, 0x3a, 0x20, 0x27, 0x3c, 0x69, 0x38, 0x27, 0x2c, 0x20, 0x27, 0x66, 0x6f,
	0x72, 0x74, 0x72, 0x61, 0x6e, 0x5f, 0x6f, 0x72, 0x64, 0x65, 0x72, 0x27, 0x3a, 0x20, 0x46, 0x61,
	0x6c, 0x73, 0x65, 0x2c, 0x20, 0x27, 0x73, 0x68, 0x61, 0x70, 0x65, 0x27, 0x3a, 0x20, 0x28, 0x33,
	0x2c, 0x29, 0x2c, 0x20, 0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
	0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
	0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
	0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x0a,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
	0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

/* write_array(f, np.array(7, dtype=np.uint8), version=(3, 0)): a 0-d array */
static const unsigned char np_u1_v3_scalar[] = {
	0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x03, 0x00, 0x74, 0x00, 0x00, 0x00, 0x7b, 0x27, 0x64, 0x65,
	0x73, 0x63, 0x72, 0x27, 0x3a, 0x20, 0x27, 0x7c, 0x75, 0x31, 0x27, 0x2c, 0x20, 0x27, 0x66, 0x6f,
	0x72, 0x74, 0x72, 0x61, 0x6e, 0x5f, 0x6f, 0x72, 0x64, 0x65, 0x72, 0x27, 0x3a, 0x20, 0x46, 0x61,
	0x6c, 0x73, 0x65, 0x2c, 0x20, 0x27, 0x73, 0x68, 0x61, 0x70, 0x65, 0x27, 0x3a, 0x20, 0x28, 0x29,
	0x2c, 0x20, 0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
	0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
	0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
	0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x0a,
	0x07,
};

/* ---- helpers ------------------------------------------------------------- */

static char tmpdir[64];

static void mk_tmpdir(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/qt_npy_XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void rm_tmpdir(void)
{
	DIR *d = opendir(tmpdir);
	if (!d)
		return;
	struct dirent *e;
	char p[512];
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
			unlink(p);
		}
	closedir(d);
	rmdir(tmpdir);
}

static const char *tpath(const char *name)
{
	static char p[4][512];
	static int k;
	k = (k + 1) % 4;
	snprintf(p[k], sizeof p[k], "%s/%s", tmpdir, name);
	return p[k];
}

static void write_bytes(const char *path, const void *buf, size_t n)
{
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f, "%s", path);
	cr_assert_eq(fwrite(buf, 1, n, f), n);
	fclose(f);
}

/* A .npy image: magic, version major.0, the header text as given, then data. */
static size_t mk_npy(unsigned char *buf, int major, const char *hdr, const void *data, size_t n)
{
	size_t h = strlen(hdr), o = 0;
	memcpy(buf, "\x93NUMPY", 6);
	buf[6] = (unsigned char)major;
	buf[7] = 0;
	if (major == 1) {
		buf[8] = (unsigned char)(h & 0xff);
		buf[9] = (unsigned char)(h >> 8);
		o = 10;
	} else {
		buf[8] = (unsigned char)(h & 0xff);
		buf[9] = (unsigned char)(h >> 8);
		buf[10] = buf[11] = 0;
		o = 12;
	}
	memcpy(buf + o, hdr, h);
	if (n)
		memcpy(buf + o + h, data, n);
	return o + h + n;
}

/* ---- reading NumPy's own files ------------------------------------------ */

Test(npy, read_numpy_v1_float32)
{
	struct qt_tensor t = {0};
	cr_assert_eq(qt_npy_read_mem(np_f4_v1, sizeof np_f4_v1, "a.npy", &t), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(t.dtype, QT_DTYPE_F32);
	cr_assert_eq(t.rank, 2);
	cr_assert_eq(t.dims[0], 2);
	cr_assert_eq(t.dims[1], 3);
	cr_assert_eq(t.nbytes, 24);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(((float *)t.data)[i], 0.5f * (float)i);
	qt_tensor_free(&t);
}

Test(npy, read_numpy_v2_int64)
{
	struct qt_tensor t = {0};
	cr_assert_eq(qt_npy_read_mem(np_i8_v2, sizeof np_i8_v2, "b.npy", &t), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(t.dtype, QT_DTYPE_I64);
	cr_assert_eq(t.rank, 1);
	cr_assert_eq(t.dims[0], 3);
	int64_t *v = t.data;
	cr_assert_eq(v[0], -1);
	cr_assert_eq(v[1], (int64_t)1 << 40);
	cr_assert_eq(v[2], 3);
	qt_tensor_free(&t);
}

Test(npy, read_numpy_v3_scalar)
{
	struct qt_tensor t = {0};
	struct qt_npy_info info;
	cr_assert_eq(qt_npy_parse_header(np_u1_v3_scalar, sizeof np_u1_v3_scalar, "c.npy", &info), QT_OK);
	cr_assert_eq(info.version_major, 3);
	cr_assert_eq(info.data_offset, 128);
	cr_assert_eq(qt_npy_read_mem(np_u1_v3_scalar, sizeof np_u1_v3_scalar, "c.npy", &t), QT_OK, "%s",
		     qt_error_msg());
	cr_assert_eq(t.dtype, QT_DTYPE_U8);
	cr_assert_eq(t.rank, 0);
	cr_assert_eq(qt_tensor_numel(&t), 1);
	cr_assert_eq(((uint8_t *)t.data)[0], 7);
	qt_tensor_free(&t);
}

Test(npy, header_variants_numpy_accepts)
{
	/* Double quotes, no trailing comma, no padding, Python 2 'L' suffixes, keys in any order. */
	static const char *hdrs[] = {
		"{\"descr\": \"<i4\", \"fortran_order\": False, \"shape\": (2, 1)}",
		"{'shape': (2L, 1L), 'fortran_order': False, 'descr': '<i4'}\n",
		"  {'descr':'<i4','fortran_order':False,'shape':(2,1,),}   \n",
	};
	int32_t data[2] = {5, -6};
	unsigned char buf[256];
	for (size_t i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++) {
		size_t n = mk_npy(buf, 1, hdrs[i], data, sizeof data);
		struct qt_tensor t = {0};
		cr_assert_eq(qt_npy_read_mem(buf, n, "v.npy", &t), QT_OK, "header %zu: %s", i, qt_error_msg());
		cr_assert_eq(t.dtype, QT_DTYPE_I32);
		cr_assert_eq(t.rank, 2);
		cr_assert_eq(((int32_t *)t.data)[1], -6);
		qt_tensor_free(&t);
	}
}

/* ---- round trips ----------------------------------------------------------- */

static void roundtrip(enum qt_dtype dt, int rank, const int64_t *dims)
{
	struct qt_tensor a = {0}, b = {0};
	cr_assert_eq(qt_tensor_alloc(&a, dt, rank, dims), QT_OK);
	unsigned char *p = a.data;
	for (size_t i = 0; i < a.nbytes; i++)
		p[i] = (unsigned char)(i * 37 + 11);
	if (dt == QT_DTYPE_BOOL)
		for (size_t i = 0; i < a.nbytes; i++)
			p[i] &= 1;
	if (dt == QT_DTYPE_F32)
		for (size_t i = 0; i < a.nbytes / 4; i++)
			((float *)a.data)[i] = (float)i * 0.25f - 3.0f;
	if (dt == QT_DTYPE_F64)
		for (size_t i = 0; i < a.nbytes / 8; i++)
			((double *)a.data)[i] = (double)i / 3.0;
	const char *path = tpath("rt.npy");
	cr_assert_eq(qt_npy_write(path, &a), QT_OK, "%s: %s", qt_dtype_name(dt), qt_error_msg());
	cr_assert_eq(qt_npy_read(path, &b), QT_OK, "%s: %s", qt_dtype_name(dt), qt_error_msg());
	cr_assert_eq(b.dtype, dt);
	cr_assert_eq(b.rank, rank, "%s rank %d", qt_dtype_name(dt), rank);
	for (int i = 0; i < rank; i++)
		cr_assert_eq(b.dims[i], dims[i]);
	cr_assert_eq(b.nbytes, a.nbytes);
	cr_assert(a.nbytes == 0 || memcmp(a.data, b.data, a.nbytes) == 0, "%s: data differs", qt_dtype_name(dt));
	/* The data starts 64-byte aligned, as NumPy writes it. */
	struct qt_npy_reader *r;
	cr_assert_eq(qt_npy_open(path, &r), QT_OK);
	cr_assert_eq(qt_npy_reader_info(r)->data_offset % 64, 0);
	cr_assert_eq(qt_npy_reader_info(r)->version_major, 1);
	qt_npy_close(r);
	qt_tensor_free(&a);
	qt_tensor_free(&b);
}

Test(npy, roundtrip_every_dtype_and_shape, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	static const enum qt_dtype dts[] = {QT_DTYPE_F32, QT_DTYPE_U8, QT_DTYPE_I8, QT_DTYPE_I64,
					    QT_DTYPE_I32, QT_DTYPE_F64, QT_DTYPE_BOOL, QT_DTYPE_F16,
					    QT_DTYPE_I16, QT_DTYPE_U16, QT_DTYPE_U32, QT_DTYPE_U64};
	static const int64_t d1[] = {7}, d3[] = {2, 3, 4}, d0[] = {0}, d8[] = {1, 2, 1, 2, 1, 2, 1, 3}, dz[] = {3, 0, 2};
	for (size_t i = 0; i < sizeof dts / sizeof dts[0]; i++) {
		roundtrip(dts[i], 0, NULL); /* scalar */
		roundtrip(dts[i], 1, d1);
		roundtrip(dts[i], 3, d3);
		roundtrip(dts[i], 1, d0);
		roundtrip(dts[i], 8, d8);
		roundtrip(dts[i], 3, dz);
	}
}

Test(npy, writer_matches_numpy_bytes, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	struct qt_tensor t = {0};
	int64_t dims[2] = {2, 3};
	cr_assert_eq(qt_tensor_alloc(&t, QT_DTYPE_F32, 2, dims), QT_OK);
	for (int i = 0; i < 6; i++)
		((float *)t.data)[i] = 0.5f * (float)i;
	const char *path = tpath("np.npy");
	cr_assert_eq(qt_npy_write(path, &t), QT_OK, "%s", qt_error_msg());
	unsigned char buf[512];
	FILE *f = fopen(path, "rb");
	size_t n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	cr_assert_eq(n, sizeof np_f4_v1);
	cr_assert(memcmp(buf, np_f4_v1, n) == 0, "bytes differ from NumPy's");
	qt_tensor_free(&t);
}

static int count_entries(const char *dir)
{
	int n = 0;
	DIR *d = opendir(dir);
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

Test(npy, write_never_leaves_partial_output, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	struct qt_tensor t = {0};
	int64_t dims[1] = {4};
	cr_assert_eq(qt_tensor_alloc(&t, QT_DTYPE_I32, 1, dims), QT_OK);
	const char *path = tpath("keep.npy");
	cr_assert_eq(qt_npy_write(path, &t), QT_OK);
	/* Overwriting works and leaves no temporary behind. */
	((int32_t *)t.data)[3] = 42;
	cr_assert_eq(qt_npy_write(path, &t), QT_OK);
	cr_assert_eq(count_entries(tmpdir), 1);
	struct qt_tensor r = {0};
	cr_assert_eq(qt_npy_read(path, &r), QT_OK);
	cr_assert_eq(((int32_t *)r.data)[3], 42);
	qt_tensor_free(&r);

	/* A packed dtype is refused and the old file is untouched. */
	struct qt_tensor q = {0};
	cr_assert_eq(qt_tensor_alloc(&q, QT_DTYPE_S4, 1, dims), QT_OK);
	cr_assert_eq(qt_npy_write(path, &q), QT_E_UNSUPPORTED);
	cr_assert(strstr(qt_error_msg(), "keep.npy"), "%s", qt_error_msg());
	cr_assert_eq(qt_npy_read(path, &r), QT_OK);
	cr_assert_eq(((int32_t *)r.data)[3], 42);
	cr_assert_eq(count_entries(tmpdir), 1);

	/* An inconsistent tensor (nbytes vs shape) is refused. */
	struct qt_tensor bad = t;
	bad.nbytes = 12;
	cr_assert_eq(qt_npy_write(path, &bad), QT_E_INVALID_ARG);

	/* A missing folder: I/O error naming the path, nothing created. */
	cr_assert_eq(qt_npy_write(tpath("no/such/dir.npy"), &t), QT_E_IO);
	cr_assert(strstr(qt_error_msg(), "dir.npy"), "%s", qt_error_msg());
	cr_assert_eq(count_entries(tmpdir), 1);
	qt_tensor_free(&r);
	qt_tensor_free(&q);
	qt_tensor_free(&t);
}

/* ---- malformed files -------------------------------------------------------- */

struct bad_case {
	const char *what;
	int major;
	const char *hdr;
	size_t data; /* bytes of data after the header */
	enum qt_status st;
	const char *msg;
};

static const struct bad_case bad_cases[] = {
	{"big-endian", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8, QT_E_UNSUPPORTED,
	 "header: unsupported dtype '>f4' (big-endian)"},
	{"fortran", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24, QT_E_UNSUPPORTED,
	 "fortran_order True is not supported"},
	{"unicode", 1, "{'descr': '<U5', 'fortran_order': False, 'shape': (1,), }", 20, QT_E_UNSUPPORTED,
	 "unsupported dtype '<U5'"},
	{"object", 1, "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", 8, QT_E_UNSUPPORTED,
	 "unsupported dtype '|O'"},
	{"structured", 1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", 4, QT_E_UNSUPPORTED,
	 "structured dtypes"},
	{"multi-byte with |", 1, "{'descr': '|f4', 'fortran_order': False, 'shape': (1,), }", 4, QT_E_UNSUPPORTED,
	 "not little-endian"},
	{"version 4", 4, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", 4, QT_E_UNSUPPORTED,
	 "version 4.0"},
	{"not a dict", 1, "['descr', '<f4']", 0, QT_E_FORMAT, "expected '{'"},
	{"unknown key", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}", 4, QT_E_FORMAT,
	 "unexpected key 'extra'"},
	{"missing shape", 1, "{'descr': '<f4', 'fortran_order': False}", 4, QT_E_FORMAT, "missing key 'shape'"},
	{"duplicate", 1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", 4, QT_E_FORMAT,
	 "duplicate key 'descr'"},
	{"shape not tuple", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3)}", 12, QT_E_FORMAT,
	 "is not a tuple"},
	{"shape list", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': [3]}", 12, QT_E_FORMAT,
	 "must be a tuple"},
	{"negative dim", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", 4, QT_E_FORMAT,
	 "negative dimension"},
	{"rank 9", 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1)}", 1, QT_E_UNSUPPORTED,
	 "more than 8 dimensions"},
	{"huge dim", 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (99999999999999999999,)}", 1, QT_E_FORMAT,
	 "does not fit in 64 bits"},
	{"overflow", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296)}", 8,
	 QT_E_FORMAT, "overflows"},
	{"byte overflow", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904,)}", 8,
	 QT_E_FORMAT, "overflows 64-bit byte counts"},
	{"truncated data", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 20, QT_E_FORMAT,
	 "data: 20 bytes, but shape [2,3] of float32 needs 24"},
	{"trailing data", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 12, QT_E_FORMAT,
	 "4 trailing bytes"},
	{"bad bool", 1, "{'descr': '<f4', 'fortran_order': maybe, 'shape': (2,), }", 8, QT_E_FORMAT,
	 "'fortran_order' must be True or False"},
	{"text after dict", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } x", 8, QT_E_FORMAT,
	 "unexpected text after the dict"},
	{"unterminated", 1, "{'descr': '<f4", 0, QT_E_FORMAT, "unterminated string"},
	{"no colon", 1, "{'descr' '<f4'}", 0, QT_E_FORMAT, "expected ':'"},
	{"escape", 1, "{'de\\scr': '<f4'}", 0, QT_E_FORMAT, "escape sequences"},
	{"leading zero", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (02,)}", 8, QT_E_FORMAT,
	 "leading zero"},
	{"unclosed", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", 8, QT_E_FORMAT,
	 "but the header ends"},
};

Test(npy, malformed_headers_name_the_file, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	unsigned char buf[512], zeros[64] = {0};
	const char *path = tpath("bad.npy");
	for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
		const struct bad_case *c = &bad_cases[i];
		size_t n = mk_npy(buf, c->major, c->hdr, zeros, c->data);
		write_bytes(path, buf, n);
		struct qt_tensor t = {0};
		enum qt_status st = qt_npy_read(path, &t);
		cr_expect_eq(st, c->st, "%s: status %d, message: %s", c->what, st, qt_error_msg());
		cr_expect(strstr(qt_error_msg(), "bad.npy") != NULL, "%s: message lacks the file: %s", c->what,
			  qt_error_msg());
		cr_expect(strstr(qt_error_msg(), c->msg) != NULL, "%s: expected \"%s\" in: %s", c->what, c->msg,
			  qt_error_msg());
		cr_expect_null(t.data);
		/* The same through the memory reader and the streaming open. */
		cr_expect_eq(qt_npy_read_mem(buf, n, "bad.npy", &t), c->st, "%s (mem): %s", c->what, qt_error_msg());
		struct qt_npy_reader *r = (struct qt_npy_reader *)1;
		cr_expect_eq(qt_npy_open(path, &r), c->st, "%s (open): %s", c->what, qt_error_msg());
		cr_expect_null(r);
	}
}

Test(npy, short_and_foreign_files, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	struct qt_tensor t = {0};
	const char *path = tpath("short.npy");
	write_bytes(path, "\x93NUM", 4);
	cr_assert_eq(qt_npy_read(path, &t), QT_E_FORMAT);
	cr_assert(strstr(qt_error_msg(), "short.npy: header: 4 bytes is too short"), "%s", qt_error_msg());

	path = tpath("png.npy");
	write_bytes(path, "\x89PNG\r\n\x1a\n\0\0\0\0", 12);
	cr_assert_eq(qt_npy_read(path, &t), QT_E_FORMAT);
	cr_assert(strstr(qt_error_msg(), "png.npy: header: not a .npy file"), "%s", qt_error_msg());

	/* Header length pointing past the end of the file. */
	unsigned char buf[128];
	size_t n = mk_npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", NULL, 0);
	buf[8] = 0xff;
	buf[9] = 0x7f;
	path = tpath("len.npy");
	write_bytes(path, buf, n);
	cr_assert_eq(qt_npy_read(path, &t), QT_E_FORMAT);
	cr_assert(strstr(qt_error_msg(), "len.npy: header: length 32767 runs past the end"), "%s", qt_error_msg());

	cr_assert_eq(qt_npy_read(tpath("missing.npy"), &t), QT_E_IO);
	cr_assert(strstr(qt_error_msg(), "cannot open ") && strstr(qt_error_msg(), "missing.npy: No such file"),
		  "%s", qt_error_msg());
	cr_assert_eq(qt_npy_read(tmpdir, &t), QT_E_IO);
	cr_assert(strstr(qt_error_msg(), "not a regular file"), "%s", qt_error_msg());
}

/* ---- streaming rows -------------------------------------------------------- */

Test(npy, stream_rows, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	struct qt_tensor a = {0}, rows = {0};
	int64_t dims[3] = {10, 3, 2};
	cr_assert_eq(qt_tensor_alloc(&a, QT_DTYPE_F32, 3, dims), QT_OK);
	for (int i = 0; i < 60; i++)
		((float *)a.data)[i] = (float)i;
	const char *path = tpath("big.npy");
	cr_assert_eq(qt_npy_write(path, &a), QT_OK);

	struct qt_npy_reader *r;
	cr_assert_eq(qt_npy_open(path, &r), QT_OK, "%s", qt_error_msg());
	const struct qt_npy_info *info = qt_npy_reader_info(r);
	cr_assert_eq(info->dtype, QT_DTYPE_F32);
	cr_assert_eq(info->rank, 3);
	cr_assert_eq(info->dims[0], 10);
	cr_assert_eq(info->data_bytes, 240);

	cr_assert_eq(qt_npy_read_rows(r, 2, 3, &rows), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(rows.rank, 3);
	cr_assert_eq(rows.dims[0], 3);
	cr_assert_eq(rows.dims[1], 3);
	cr_assert_eq(rows.dims[2], 2);
	for (int i = 0; i < 18; i++)
		cr_assert_eq(((float *)rows.data)[i], (float)(12 + i));
	/* Backwards, the last row, and zero rows at the end. */
	cr_assert_eq(qt_npy_read_rows(r, 9, 1, &rows), QT_OK);
	cr_assert_eq(((float *)rows.data)[5], 59.0f);
	cr_assert_eq(qt_npy_read_rows(r, 0, 10, &rows), QT_OK);
	cr_assert(memcmp(rows.data, a.data, 240) == 0);
	cr_assert_eq(qt_npy_read_rows(r, 10, 0, &rows), QT_OK);
	cr_assert_eq(rows.dims[0], 0);

	/* Out of range: refused, the output untouched. */
	cr_assert_eq(qt_npy_read_rows(r, 8, 3, &rows), QT_E_INVALID_ARG);
	cr_assert(strstr(qt_error_msg(), "big.npy: rows [8, 11) are outside the 10 rows"), "%s", qt_error_msg());
	cr_assert_eq(qt_npy_read_rows(r, -1, 1, &rows), QT_E_INVALID_ARG);
	cr_assert_eq(rows.dims[0], 0);

	float small[6];
	cr_assert_eq(qt_npy_read_rows_into(r, 4, 1, small, sizeof small), QT_OK);
	cr_assert_eq(small[0], 24.0f);
	cr_assert_eq(qt_npy_read_rows_into(r, 4, 2, small, sizeof small), QT_E_INVALID_ARG);
	qt_npy_close(r);

	/* A 0-d array has no rows. */
	struct qt_tensor s = {0};
	cr_assert_eq(qt_tensor_alloc(&s, QT_DTYPE_I64, 0, NULL), QT_OK);
	cr_assert_eq(qt_npy_write(tpath("s.npy"), &s), QT_OK);
	cr_assert_eq(qt_npy_open(tpath("s.npy"), &r), QT_OK);
	cr_assert_eq(qt_npy_read_rows(r, 0, 1, &rows), QT_E_INVALID_ARG);
	qt_npy_close(r);

	/* The file shrinking after open is an I/O error, not a crash. */
	cr_assert_eq(qt_npy_open(path, &r), QT_OK);
	cr_assert_eq(truncate(path, 128 + 100), 0);
	cr_assert_eq(qt_npy_read_rows(r, 0, 10, &rows), QT_E_IO);
	cr_assert(strstr(qt_error_msg(), "big.npy: read failed at byte 228"), "%s", qt_error_msg());
	qt_npy_close(r);
	/* And reopening it is refused for the size mismatch. */
	cr_assert_eq(qt_npy_open(path, &r), QT_E_FORMAT);
	cr_assert(strstr(qt_error_msg(), "data: 100 bytes, but shape [10,3,2] of float32 needs 240"), "%s",
		  qt_error_msg());

	qt_tensor_free(&s);
	qt_tensor_free(&rows);
	qt_tensor_free(&a);
}

/* ---- finite check -------------------------------------------------------------- */

Test(npy, check_finite)
{
	struct qt_tensor t = {0};
	int64_t dims[2] = {20, 10};
	cr_assert_eq(qt_tensor_alloc(&t, QT_DTYPE_F32, 2, dims), QT_OK);
	float *v = t.data;
	cr_assert_eq(qt_tensor_check_finite(&t, "x.npy"), QT_OK);
	v[150] = INFINITY;
	v[123] = NAN;
	cr_assert_eq(qt_tensor_check_finite(&t, "x.npy"), QT_E_NUMERIC);
	cr_assert_str_eq(qt_error_msg(), "x.npy: element 123 is NaN");
	v[123] = 0;
	cr_assert_eq(qt_tensor_check_finite(&t, "x.npy"), QT_E_NUMERIC);
	cr_assert_str_eq(qt_error_msg(), "x.npy: element 150 is +Inf");
	v[150] = FLT_MAX;
	cr_assert_eq(qt_tensor_check_finite(&t, "x.npy"), QT_OK);

	struct qt_tensor d = {0};
	cr_assert_eq(qt_tensor_alloc(&d, QT_DTYPE_F64, 1, dims), QT_OK);
	((double *)d.data)[19] = -INFINITY;
	cr_assert_eq(qt_tensor_check_finite(&d, "w"), QT_E_NUMERIC);
	cr_assert_str_eq(qt_error_msg(), "w: element 19 is -Inf");

	struct qt_tensor h = {0};
	cr_assert_eq(qt_tensor_alloc(&h, QT_DTYPE_F16, 1, dims), QT_OK);
	((uint16_t *)h.data)[3] = 0x7bff; /* 65504, the largest half */
	cr_assert_eq(qt_tensor_check_finite(&h, "h"), QT_OK);
	((uint16_t *)h.data)[4] = 0x7e00;
	cr_assert_eq(qt_tensor_check_finite(&h, "h"), QT_E_NUMERIC);
	cr_assert_str_eq(qt_error_msg(), "h: element 4 is NaN");

	struct qt_tensor u = {0};
	cr_assert_eq(qt_tensor_alloc(&u, QT_DTYPE_U8, 2, dims), QT_OK);
	memset(u.data, 0xff, u.nbytes);
	cr_assert_eq(qt_tensor_check_finite(&u, "u"), QT_OK);

	/* NaN read from a file is found with the file's name. */
	unsigned char buf[256];
	float data[3] = {1, NAN, 2};
	size_t n = mk_npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", data, sizeof data);
	struct qt_tensor f = {0};
	cr_assert_eq(qt_npy_read_mem(buf, n, "nan.npy", &f), QT_OK);
	cr_assert_eq(qt_tensor_check_finite(&f, "nan.npy"), QT_E_NUMERIC);
	cr_assert_str_eq(qt_error_msg(), "nan.npy: element 1 is NaN");

	qt_tensor_free(&f);
	qt_tensor_free(&u);
	qt_tensor_free(&h);
	qt_tensor_free(&d);
	qt_tensor_free(&t);
}
