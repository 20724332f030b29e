/*
 * Dataset layer: the fashion-mnist specs against values computed once with
 * NumPy (float32, the same operation order), offset/limit, npy folders in
 * both conventions, folders of TensorProto .pb files, JSON specs, layouts,
 * and every refusal the header lists.
 *
 * Expected preprocessed values: with u the raw byte,
 *   ((np.float32(u) / np.float32(255.0)) - np.float32(0.2860)) / np.float32(0.3530)
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qtool/dataset.h"
#include "qtool/npy.h"
#include "qtool/onnx.h"

#define FM "/usr/share/datasets/fashion-mnist/"

static const int64_t test_labels_first20[20] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5, 7, 3, 4, 1, 2, 4, 8, 0};
static const int64_t test_labels_100[20] = {3, 6, 7, 2, 7, 8, 5, 9, 9, 4, 2, 5, 7, 0, 5, 2, 8, 6, 7, 8};
static const int64_t test_labels_9990[10] = {5, 6, 8, 9, 1, 9, 1, 8, 1, 5};

/* ---- helpers ------------------------------------------------------------- */

static char tmpdir[64];

static void mk_tmpdir(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/qt_ds_XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void rm_tree(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	char p[512];
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
			if (unlink(p) != 0)
				rm_tree(p);
		}
	closedir(d);
	rmdir(dir);
}

static void rm_tmpdir(void)
{
	rm_tree(tmpdir);
}

static const char *tpath(const char *name)
{
	static char p[8][512];
	static int k;
	k = (k + 1) % 8;
	snprintf(p[k], sizeof p[k], "%s/%s", tmpdir, name);
	return p[k];
}

static void write_text(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "%s", path);
	fputs(s, f);
	fclose(f);
}

static uint32_t fbits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

/* A tensor of dtype dt and shape dims whose element i is val(i); pb picks
 * TensorProto over .npy. */
static void write_tensor(const char *path, int pb, enum qt_dtype dt, int rank, const int64_t *dims,
			 double (*val)(int64_t))
{
	struct qt_tensor t = {0};
	cr_assert_eq(qt_tensor_alloc(&t, dt, rank, dims), QT_OK);
	int64_t n = qt_tensor_numel(&t);
	for (int64_t i = 0; i < n; i++) {
		double v = val(i);
		switch (dt) {
		case QT_DTYPE_F32: ((float *)t.data)[i] = (float)v; break;
		case QT_DTYPE_F64: ((double *)t.data)[i] = v; break;
		case QT_DTYPE_U8: ((uint8_t *)t.data)[i] = (uint8_t)v; break;
		case QT_DTYPE_I64: ((int64_t *)t.data)[i] = (int64_t)v; break;
		case QT_DTYPE_I32: ((int32_t *)t.data)[i] = (int32_t)v; break;
		default: cr_assert_fail("dtype");
		}
	}
	cr_assert_eq(pb ? qt_tensor_write_pb(path, &t, "x") : qt_npy_write(path, &t), QT_OK, "%s", qt_error_msg());
	qt_tensor_free(&t);
}

static void write_npy(const char *path, enum qt_dtype dt, int rank, const int64_t *dims, double (*val)(int64_t))
{
	write_tensor(path, 0, dt, rank, dims, val);
}

static void write_pb(const char *path, enum qt_dtype dt, int rank, const int64_t *dims, double (*val)(int64_t))
{
	write_tensor(path, 1, dt, rank, dims, val);
}

static double v_index(int64_t i) { return (double)i; }
static double v_label(int64_t i) { return (double)(i % 10); }
static double v_mod200(int64_t i) { return (double)(i % 200); }

/* Open must fail with st and exactly this message. */
static void expect_open_error(const char *spec, const struct qt_dataset_opts *o, enum qt_status st, const char *msg)
{
	struct qt_dataset *ds = (struct qt_dataset *)1;
	enum qt_status got = qt_dataset_open(spec, o, &ds);
	cr_expect_eq(got, st, "%s: status %d: %s", spec, got, qt_error_msg());
	cr_expect_null(ds);
	cr_expect(strstr(qt_error_msg(), msg) != NULL, "%s: expected \"%s\" in: %s", spec, msg, qt_error_msg());
}

/* Open must succeed and `good` batches of `batch` be read; the next read must
 * then fail with st and a message containing msg, and again (the position did
 * not move). */
static void expect_read_error(const char *spec, int batch, int good, enum qt_status st, const char *msg)
{
	struct qt_dataset *ds;
	struct qt_tensor x = {0};
	int64_t l[16];
	int n;
	cr_assert(batch <= 16);
	cr_assert_eq(qt_dataset_open(spec, NULL, &ds), QT_OK, "%s", qt_error_msg());
	for (int b = 0; b < good; b++)
		cr_assert_eq(qt_dataset_next(ds, batch, &x, l, &n), QT_OK, "%s", qt_error_msg());
	for (int k = 0; k < 2; k++) {
		enum qt_status got = qt_dataset_next(ds, batch, &x, l, &n);
		cr_expect_eq(got, st, "%s: status %d: %s", spec, got, qt_error_msg());
		cr_expect_eq(n, 0);
		cr_expect(strstr(qt_error_msg(), msg) != NULL, "%s: expected \"%s\" in: %s", spec, msg, qt_error_msg());
	}
	qt_dataset_close(ds);
	qt_tensor_free(&x);
}

/* ---- fashion-mnist ----------------------------------------------------------- */

Test(dataset, fashion_mnist_test_first_batch)
{
	struct qt_dataset *ds;
	cr_assert_eq(qt_dataset_open("fashion-mnist:test", NULL, &ds), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_dataset_count(ds), 10000);
	cr_assert(qt_dataset_has_labels(ds));
	int64_t dims[QT_MAX_RANK];
	cr_assert_eq(qt_dataset_sample_shape(ds, dims), 3);
	cr_assert(dims[0] == 1 && dims[1] == 28 && dims[2] == 28);

	struct qt_tensor x = {0};
	int64_t labels[64];
	int n;
	cr_assert_eq(qt_dataset_next(ds, 64, &x, labels, &n), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(n, 64);
	cr_assert_eq(x.dtype, QT_DTYPE_F32);
	cr_assert_eq(x.rank, 4);
	cr_assert(x.dims[0] == 64 && x.dims[1] == 1 && x.dims[2] == 28 && x.dims[3] == 28);
	for (int i = 0; i < 20; i++)
		cr_assert_eq(labels[i], test_labels_first20[i], "label %d", i);
	const float *v = x.data;
	/* Image 0: (0,0) is 0, (14,12) is 98, (7,19) is 3; bit-exact with NumPy's float32. */
	cr_assert_eq(fbits(v[0]), 0xbf4f6929u, "u=0 -> %.9g", (double)v[0]);
	cr_assert_eq(fbits(v[14 * 28 + 12]), 0x3e8e98c0u, "u=98 -> %.9g", (double)v[14 * 28 + 12]);
	/* Image 1 (1,13) is 255. */
	cr_assert_eq(fbits(v[784 + 1 * 28 + 13]), 0x4001734fu);
	/* Sums in double of the float32 values, from NumPy; the float values are exact, so only
	 * the summation order differs: 1e-9 relative is ample. */
	double s0 = 0, s = 0;
	for (int i = 0; i < 784; i++)
		s0 += v[i];
	for (int i = 0; i < 64 * 784; i++)
		s += v[i];
	cr_assert(fabs(s0 - -263.5241069123149) < 1e-9 * 263.5, "image 0 sum %.12g", s0);
	cr_assert(fabs(s - -845.6010885837022) < 1e-9 * 50000, "batch sum %.12g", s);

	const char *d = qt_dataset_describe(ds);
	cr_assert(strstr(d, "fashion-mnist:test images=" FM "t10k-images-idx3-ubyte.gz labels=" FM
			    "t10k-labels-idx1-ubyte.gz stored=uint8[28,28] scale=255 mean=[0.286] std=[0.353] "
			    "layout=NCHW dtype=float32 sample=[1,28,28] offset=0 count=10000 total=10000"),
		  "%s", d);
	qt_tensor_free(&x);
	qt_dataset_close(ds);
}

Test(dataset, fashion_mnist_train_opens)
{
	struct qt_dataset *ds;
	struct qt_dataset_opts o = {.offset = 59990};
	cr_assert_eq(qt_dataset_open("fashion-mnist:train", &o, &ds), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_dataset_count(ds), 10);
	struct qt_tensor x = {0};
	int64_t l[16];
	int n;
	cr_assert_eq(qt_dataset_next(ds, 16, &x, l, &n), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(n, 10);
	cr_assert_eq(l[5], 5);
	cr_assert_eq(l[9], 5);
	qt_tensor_free(&x);
	qt_dataset_close(ds);
}

Test(dataset, offset_limit_batches_and_reset)
{
	struct qt_dataset *ds;
	struct qt_dataset_opts o = {.offset = 100, .limit = 50};
	cr_assert_eq(qt_dataset_open("fashion-mnist:test", &o, &ds), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_dataset_count(ds), 50);
	cr_assert(strstr(qt_dataset_describe(ds), "offset=100 count=50 total=10000"), "%s", qt_dataset_describe(ds));
	struct qt_tensor x = {0};
	int64_t l[16];
	int n, seen = 0;
	static const int expect[] = {16, 16, 16, 2, 0, 0};
	for (int pass = 0; pass < 2; pass++) {
		seen = 0;
		for (size_t k = 0; k < sizeof expect / sizeof expect[0]; k++) {
			cr_assert_eq(qt_dataset_next(ds, 16, &x, l, &n), QT_OK, "%s", qt_error_msg());
			cr_assert_eq(n, expect[k], "pass %d batch %zu", pass, k);
			if (n)
				cr_assert_eq(x.dims[0], n);
			for (int i = 0; i < n && seen + i < 20; i++)
				cr_assert_eq(l[i], test_labels_100[seen + i]);
			seen += n;
		}
		cr_assert_eq(seen, 50);
		qt_dataset_reset(ds);
	}
	/* Raw sum of image 100 is 36731: recover it from the preprocessed values. */
	cr_assert_eq(qt_dataset_next(ds, 1, &x, NULL, &n), QT_OK);
	double s = 0;
	for (int i = 0; i < 784; i++)
		s += ((const float *)x.data)[i] * 0.3530 + 0.2860;
	cr_assert(fabs(s * 255 - 36731) < 0.05, "%.6f", s * 255);
	cr_assert_eq(qt_dataset_next(ds, 0, &x, NULL, &n), QT_E_INVALID_ARG);
	qt_tensor_free(&x);
	qt_dataset_close(ds);

	o = (struct qt_dataset_opts){.offset = 9990, .limit = 100};
	cr_assert_eq(qt_dataset_open("fashion-mnist:test", &o, &ds), QT_OK);
	cr_assert_eq(qt_dataset_count(ds), 10);
	cr_assert_eq(qt_dataset_next(ds, 100, &x, l, &n), QT_OK);
	cr_assert_eq(n, 10);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(l[i], test_labels_9990[i]);
	qt_tensor_free(&x);
	qt_dataset_close(ds);
}

Test(dataset, model_input_shape)
{
	struct qt_dataset *ds;
	int64_t want[3] = {3, 32, 32};
	struct qt_dataset_opts o = {.input_name = "input", .input_rank = 3, .input_dims = want};
	struct qt_dataset *bad = (struct qt_dataset *)1;
	cr_assert_eq(qt_dataset_open("fashion-mnist:test", &o, &bad), QT_E_INVALID_ARG);
	cr_assert_str_eq(qt_error_msg(),
			 "fashion-mnist:test: samples are [1,28,28] but the model input \"input\" expects [3,32,32]");
	cr_assert_null(bad);

	/* Symbolic dims match anything. */
	int64_t sym[3] = {1, -1, 28};
	o.input_dims = sym;
	cr_assert_eq(qt_dataset_open("fashion-mnist:test", &o, &ds), QT_OK, "%s", qt_error_msg());
	qt_dataset_close(ds);

	/* A flat input, and a channels-last single-channel input: same bytes, new dims. */
	int64_t flat[1] = {784}, hwc[3] = {28, 28, 1};
	int64_t dims[QT_MAX_RANK];
	o.input_rank = 1;
	o.input_dims = flat;
	cr_assert_eq(qt_dataset_open("fashion-mnist:test", &o, &ds), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_dataset_sample_shape(ds, dims), 1);
	cr_assert_eq(dims[0], 784);
	struct qt_tensor x = {0};
	int n;
	cr_assert_eq(qt_dataset_next(ds, 2, &x, NULL, &n), QT_OK);
	cr_assert(x.rank == 2 && x.dims[0] == 2 && x.dims[1] == 784);
	cr_assert_eq(fbits(((float *)x.data)[14 * 28 + 12]), 0x3e8e98c0u);
	qt_dataset_close(ds);
	o.input_rank = 3;
	o.input_dims = hwc;
	cr_assert_eq(qt_dataset_open("fashion-mnist:test", &o, &ds), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_dataset_sample_shape(ds, dims), 3);
	cr_assert(dims[0] == 28 && dims[2] == 1);
	qt_dataset_close(ds);

	/* Same element count, different non-unit dims: refused (a layout mistake, not a reshape). */
	int64_t odd[2] = {49, 16};
	o.input_rank = 2;
	o.input_dims = odd;
	cr_assert_eq(qt_dataset_open("fashion-mnist:test", &o, &ds), QT_E_INVALID_ARG);
	cr_assert(strstr(qt_error_msg(), "samples are [1,28,28] but the model input \"input\" expects [49,16]"), "%s",
		  qt_error_msg());
	qt_tensor_free(&x);
}

Test(dataset, refusals)
{
	struct qt_dataset_opts o = {0};
	expect_open_error("idx:nonexist-a.gz,nonexist-b.gz", NULL, QT_E_IO,
			  "idx:nonexist-a.gz,nonexist-b.gz: cannot open nonexist-a.gz: No such file or directory");
	cr_assert_str_eq(qt_error_msg(),
			 "idx:nonexist-a.gz,nonexist-b.gz: cannot open nonexist-a.gz: No such file or directory");
	expect_open_error("idx:" FM "t10k-images-idx3-ubyte.gz,nonexist-b.gz", NULL, QT_E_IO,
			  "cannot open nonexist-b.gz: No such file or directory");
	expect_open_error("foo:bar", NULL, QT_E_INVALID_ARG, "foo:bar: unknown dataset spec kind 'foo'");
	expect_open_error("whatever", NULL, QT_E_INVALID_ARG, "whatever: unknown dataset spec kind");
	expect_open_error("fashion-mnist:valid", NULL, QT_E_INVALID_ARG, "unknown Fashion-MNIST split 'valid'");
	expect_open_error("idx:", NULL, QT_E_INVALID_ARG, "idx: needs IMAGES[,LABELS]");
	expect_open_error("idx:a,b,c", NULL, QT_E_INVALID_ARG, "paths cannot contain ','");
	expect_open_error("idx:" FM "train-images-idx3-ubyte.gz," FM "t10k-labels-idx1-ubyte.gz", NULL, QT_E_FORMAT,
			  "label count 10000 (" FM "t10k-labels-idx1-ubyte.gz) != image count 60000");
	expect_open_error("idx:" FM "t10k-labels-idx1-ubyte.gz", NULL, QT_E_FORMAT, "is a 1-d IDX file (labels?)");
	expect_open_error("idx:" FM "t10k-images-idx3-ubyte.gz," FM "t10k-images-idx3-ubyte.gz", NULL, QT_E_FORMAT,
			  "labels must be a 1-d IDX file [N], not [10000,28,28]");
	o.offset = 10000;
	expect_open_error("fashion-mnist:test", &o, QT_E_INVALID_ARG,
			  "fashion-mnist:test: offset 10000 is beyond the end (10000 samples)");
	o.offset = -1;
	expect_open_error("fashion-mnist:test", &o, QT_E_INVALID_ARG, "must be >= 0");
	o.offset = 0;
	struct qt_preproc pp = {.scale = 255};
	o.preproc = &pp;
	expect_open_error("fashion-mnist:test", &o, QT_E_INVALID_ARG, "fixes its own preprocessing");
	pp.n_std = 1; /* std 0 */
	expect_open_error("idx:" FM "t10k-images-idx3-ubyte.gz", &o, QT_E_INVALID_ARG, "std[0] = 0 must be finite and > 0");
	pp.n_std = 0;
	pp.n_mean = 3;
	expect_open_error("idx:" FM "t10k-images-idx3-ubyte.gz", &o, QT_E_INVALID_ARG,
			  "mean has 3 values but the samples have 1 channel");
	expect_open_error("npy:/nonexistent/dir", NULL, QT_E_IO, "npy:/nonexistent/dir: cannot open /nonexistent/dir");
	expect_open_error("pb:/nonexistent/dir", NULL, QT_E_IO,
			  "pb:/nonexistent/dir: cannot open /nonexistent/dir: No such file or directory");
	expect_open_error("pb:", NULL, QT_E_INVALID_ARG, "pb:: pb: needs a folder");
}

Test(dataset, idx_spec_with_preprocessing_matches_fashion_mnist)
{
	struct qt_preproc pp = {.scale = 255.0f, .n_mean = 1, .mean = {0.2860f}, .n_std = 1, .std = {0.3530f}};
	struct qt_dataset_opts o = {.preproc = &pp, .limit = 32};
	struct qt_dataset *a, *b;
	cr_assert_eq(qt_dataset_open("idx:" FM "t10k-images-idx3-ubyte.gz," FM "t10k-labels-idx1-ubyte.gz", &o, &a),
		     QT_OK, "%s", qt_error_msg());
	o.preproc = NULL;
	cr_assert_eq(qt_dataset_open("fashion-mnist:test", &o, &b), QT_OK);
	struct qt_tensor x = {0}, y = {0};
	int64_t la[32], lb[32];
	int na, nb;
	cr_assert_eq(qt_dataset_next(a, 32, &x, la, &na), QT_OK);
	cr_assert_eq(qt_dataset_next(b, 32, &y, lb, &nb), QT_OK);
	cr_assert_eq(na, nb);
	cr_assert_eq(x.nbytes, y.nbytes);
	cr_assert(memcmp(x.data, y.data, x.nbytes) == 0);
	cr_assert(memcmp(la, lb, sizeof la) == 0);
	qt_dataset_close(a);
	qt_dataset_close(b);

	/* Raw (no preprocessing), no labels: the bytes as floats. */
	o = (struct qt_dataset_opts){.limit = 1};
	cr_assert_eq(qt_dataset_open("idx:" FM "t10k-images-idx3-ubyte.gz", &o, &a), QT_OK);
	cr_assert(!qt_dataset_has_labels(a));
	cr_assert_eq(qt_dataset_next(a, 4, &x, la, &na), QT_OK);
	cr_assert_eq(na, 1);
	cr_assert_eq(((float *)x.data)[14 * 28 + 12], 98.0f);
	cr_assert(strstr(qt_dataset_describe(a), "scale=1 mean=[0] std=[1]"), "%s", qt_dataset_describe(a));
	qt_dataset_close(a);
	qt_tensor_free(&x);
	qt_tensor_free(&y);
}

/* ---- npy folders ---------------------------------------------------------------- */

Test(dataset, npy_folder_stacked, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	/* x [6,3,2,2] float32 (NCHW), y [6] int64. */
	int64_t xd[4] = {6, 3, 2, 2}, yd[1] = {6};
	write_npy(tpath("x.npy"), QT_DTYPE_F32, 4, xd, v_index);
	write_npy(tpath("y.npy"), QT_DTYPE_I64, 1, yd, v_label);
	char spec[128];
	snprintf(spec, sizeof spec, "npy:%s", tmpdir);
	struct qt_preproc pp = {.n_mean = 3, .mean = {1, 2, 3}, .n_std = 1, .std = {2}};
	struct qt_dataset_opts o = {.preproc = &pp, .offset = 1};
	struct qt_dataset *ds;
	cr_assert_eq(qt_dataset_open(spec, &o, &ds), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_dataset_count(ds), 5);
	cr_assert(qt_dataset_has_labels(ds));
	struct qt_tensor x = {0};
	int64_t l[4];
	int n;
	cr_assert_eq(qt_dataset_next(ds, 4, &x, l, &n), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(n, 4);
	cr_assert(x.rank == 4 && x.dims[1] == 3 && x.dims[2] == 2 && x.dims[3] == 2);
	const float *v = x.data;
	for (int s = 0; s < 4; s++)
		for (int c = 0; c < 3; c++)
			for (int k = 0; k < 4; k++) {
				float raw = (float)((s + 1) * 12 + c * 4 + k);
				cr_assert_eq(v[s * 12 + c * 4 + k], (raw - (float)(c + 1)) / 2.0f);
			}
	cr_assert_eq(l[0], 1);
	cr_assert_eq(l[3], 4);
	cr_assert(strstr(qt_dataset_describe(ds), "stored=float32[3,2,2] scale=1 mean=[1,2,3] std=[2]"), "%s",
		  qt_dataset_describe(ds));
	qt_dataset_close(ds);

	/* NHWC asked for: the stored samples are taken as NHWC (no transpose), 2 channels now. */
	o = (struct qt_dataset_opts){.layout = QT_DATA_NHWC};
	cr_assert_eq(qt_dataset_open(spec, &o, &ds), QT_OK, "%s", qt_error_msg());
	int64_t dims[QT_MAX_RANK];
	cr_assert_eq(qt_dataset_sample_shape(ds, dims), 3);
	cr_assert(dims[0] == 3 && dims[1] == 2 && dims[2] == 2);
	qt_dataset_close(ds);

	/* Label count mismatch. */
	int64_t yd5[1] = {5};
	write_npy(tpath("y.npy"), QT_DTYPE_I64, 1, yd5, v_label);
	expect_open_error(spec, NULL, QT_E_FORMAT, "label count 5");
	cr_assert(strstr(qt_error_msg(), "!= image count 6"), "%s", qt_error_msg());
	/* Float labels. */
	write_npy(tpath("y.npy"), QT_DTYPE_F32, 1, yd, v_label);
	expect_open_error(spec, NULL, QT_E_FORMAT, "labels must be integers");
	/* Negative labels are found when read. */
	int64_t y2[2] = {6, 1};
	write_npy(tpath("y.npy"), QT_DTYPE_I32, 2, y2, v_index);
	struct qt_tensor neg = {0};
	cr_assert_eq(qt_npy_read(tpath("y.npy"), &neg), QT_OK);
	((int32_t *)neg.data)[2] = -1;
	cr_assert_eq(qt_npy_write(tpath("y.npy"), &neg), QT_OK);
	cr_assert_eq(qt_dataset_open(spec, NULL, &ds), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_dataset_next(ds, 2, &x, l, &n), QT_OK);
	cr_assert_eq(qt_dataset_next(ds, 2, &x, l, &n), QT_E_FORMAT);
	cr_assert(strstr(qt_error_msg(), "y.npy: label -1 of sample 2 is negative"), "%s", qt_error_msg());
	cr_assert_eq(n, 0);
	qt_dataset_close(ds);
	qt_tensor_free(&neg);
	qt_tensor_free(&x);
}

Test(dataset, npy_nan_and_empty, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	int64_t xd[2] = {5, 8};
	struct qt_tensor t = {0};
	cr_assert_eq(qt_tensor_alloc(&t, QT_DTYPE_F64, 2, xd), QT_OK);
	((double *)t.data)[3 * 8 + 5] = NAN;
	cr_assert_eq(qt_npy_write(tpath("x.npy"), &t), QT_OK);
	char spec[128];
	snprintf(spec, sizeof spec, "npy:%s", tmpdir);
	struct qt_dataset *ds;
	struct qt_tensor x = {0};
	int n;
	cr_assert_eq(qt_dataset_open(spec, NULL, &ds), QT_OK, "%s", qt_error_msg());
	cr_assert(!qt_dataset_has_labels(ds));
	cr_assert_eq(qt_dataset_next(ds, 2, &x, NULL, &n), QT_OK);
	cr_assert_eq(qt_dataset_next(ds, 2, &x, NULL, &n), QT_E_NUMERIC);
	char want[256];
	snprintf(want, sizeof want, "%s: %s/x.npy: sample 3: element 5 is NaN", spec, tmpdir);
	cr_assert_str_eq(qt_error_msg(), want);
	/* The position did not move: the same batch fails again. */
	cr_assert_eq(qt_dataset_next(ds, 2, &x, NULL, &n), QT_E_NUMERIC);
	qt_dataset_close(ds);

	((double *)t.data)[3 * 8 + 5] = 1e300;
	cr_assert_eq(qt_npy_write(tpath("x.npy"), &t), QT_OK);
	struct qt_dataset_opts o = {.offset = 3};
	cr_assert_eq(qt_dataset_open(spec, &o, &ds), QT_OK);
	cr_assert_eq(qt_dataset_next(ds, 2, &x, NULL, &n), QT_E_NUMERIC);
	cr_assert(strstr(qt_error_msg(), "sample 3: element 5 (1e+300) is out of float32 range"), "%s", qt_error_msg());
	qt_dataset_close(ds);

	/* Finite input that preprocessing overflows. */
	((double *)t.data)[3 * 8 + 5] = 3e38;
	cr_assert_eq(qt_npy_write(tpath("x.npy"), &t), QT_OK);
	struct qt_preproc pp = {.n_std = 1, .std = {0.01f}};
	o.preproc = &pp;
	cr_assert_eq(qt_dataset_open(spec, &o, &ds), QT_OK);
	cr_assert_eq(qt_dataset_next(ds, 2, &x, NULL, &n), QT_E_NUMERIC);
	cr_assert(strstr(qt_error_msg(), "becomes Inf after preprocessing"), "%s", qt_error_msg());
	qt_dataset_close(ds);

	/* Zero samples. */
	int64_t zd[2] = {0, 8};
	write_npy(tpath("x.npy"), QT_DTYPE_F32, 2, zd, v_index);
	expect_open_error(spec, NULL, QT_E_FORMAT, "empty dataset");
	qt_tensor_free(&t);
	qt_tensor_free(&x);
}

Test(dataset, npy_per_sample_files, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	int64_t sd[2] = {2, 3}, ld[1] = {12};
	char name[32];
	for (int i = 0; i < 12; i++) {
		struct qt_tensor t = {0};
		cr_assert_eq(qt_tensor_alloc(&t, QT_DTYPE_U8, 2, sd), QT_OK);
		for (int k = 0; k < 6; k++)
			((uint8_t *)t.data)[k] = (uint8_t)(i * 10 + k);
		snprintf(name, sizeof name, i < 10 ? "%04d.npy" : "%d.npy", i); /* padding may vary */
		cr_assert_eq(qt_npy_write(tpath(name), &t), QT_OK);
		qt_tensor_free(&t);
	}
	write_npy(tpath("labels.npy"), QT_DTYPE_U8, 1, ld, v_mod200);
	char spec[128];
	snprintf(spec, sizeof spec, "npy:%s", tmpdir);
	struct qt_dataset *ds;
	struct qt_preproc pp = {.scale = 2};
	struct qt_dataset_opts o = {.preproc = &pp, .offset = 8};
	cr_assert_eq(qt_dataset_open(spec, &o, &ds), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_dataset_count(ds), 4);
	cr_assert(qt_dataset_has_labels(ds));
	cr_assert(strstr(qt_dataset_describe(ds), "/NNNN.npy labels="), "%s", qt_dataset_describe(ds));
	struct qt_tensor x = {0};
	int64_t l[8];
	int n;
	cr_assert_eq(qt_dataset_next(ds, 8, &x, l, &n), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(n, 4);
	cr_assert(x.rank == 3 && x.dims[1] == 2 && x.dims[2] == 3);
	for (int s = 0; s < 4; s++) {
		cr_assert_eq(l[s], 8 + s);
		for (int k = 0; k < 6; k++)
			cr_assert_eq(((float *)x.data)[s * 6 + k], (float)((8 + s) * 10 + k) / 2.0f);
	}
	qt_dataset_close(ds);

	/* A sample of another shape is found when read, naming the file. */
	int64_t bad[2] = {3, 2};
	write_npy(tpath("0009.npy"), QT_DTYPE_U8, 2, bad, v_index);
	cr_assert_eq(qt_dataset_open(spec, &o, &ds), QT_OK);
	cr_assert_eq(qt_dataset_next(ds, 8, &x, l, &n), QT_E_FORMAT);
	cr_assert(strstr(qt_error_msg(), "0009.npy: holds uint8[3,2] but sample 0"), "%s", qt_error_msg());
	qt_dataset_close(ds);

	/* A gap in the numbering, then a duplicate number. */
	cr_assert_eq(unlink(tpath("0009.npy")), 0);
	expect_open_error(spec, NULL, QT_E_FORMAT, "sample 9 is missing (next file is 10.npy)");
	write_npy(tpath("0009.npy"), QT_DTYPE_U8, 2, sd, v_index);
	write_npy(tpath("09.npy"), QT_DTYPE_U8, 2, sd, v_index);
	expect_open_error(spec, NULL, QT_E_FORMAT, "both hold sample 9");
	cr_assert_eq(unlink(tpath("09.npy")), 0);

	/* Both conventions at once. */
	write_npy(tpath("x.npy"), QT_DTYPE_U8, 2, sd, v_index);
	expect_open_error(spec, NULL, QT_E_FORMAT, "holds both x.npy and per-sample files");
	cr_assert_eq(unlink(tpath("x.npy")), 0);

	/* Neither. */
	cr_assert_eq(mkdir(tpath("empty"), 0755), 0);
	snprintf(spec, sizeof spec, "npy:%s/empty", tmpdir);
	expect_open_error(spec, NULL, QT_E_FORMAT, "holds neither x.npy nor per-sample files");
	qt_tensor_free(&x);
}

/* ---- folders of TensorProto .pb files ------------------------------------------ */

/* Per-sample fixtures: element k of the sample being written is pb_base + k. */
static int64_t pb_base;
static double v_from_base(int64_t i) { return (double)(pb_base + i); }

/* Sample i of a folder: dir/NNNN.pb (or .npy) holding i * numel + k. */
static void write_sample(const char *dir, int pb, int i, enum qt_dtype dt, int rank, const int64_t *dims)
{
	int64_t numel = 1;
	for (int d = 0; d < rank; d++)
		numel *= dims[d];
	char name[64];
	snprintf(name, sizeof name, "%s/%04d.%s", dir, i, pb ? "pb" : "npy");
	pb_base = i * numel;
	write_tensor(tpath(name), pb, dt, rank, dims, v_from_base);
}

Test(dataset, pb_per_sample_files, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	/* 7 samples float32 [C=3,H=2,W=2]; labels int64 [7], label i = i. */
	int64_t sd[3] = {3, 2, 2}, ld[1] = {7};
	for (int i = 0; i < 7; i++)
		write_sample(".", 1, i, QT_DTYPE_F32, 3, sd);
	write_pb(tpath("labels.pb"), QT_DTYPE_I64, 1, ld, v_index);
	char spec[128];
	snprintf(spec, sizeof spec, "pb:%s", tmpdir);
	struct qt_preproc pp = {.n_mean = 3, .mean = {1, 2, 3}, .n_std = 1, .std = {2}};
	struct qt_dataset_opts o = {.preproc = &pp, .offset = 1, .limit = 5};
	struct qt_dataset *ds;
	cr_assert_eq(qt_dataset_open(spec, &o, &ds), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_dataset_count(ds), 5);
	cr_assert(qt_dataset_has_labels(ds));
	int64_t dims[QT_MAX_RANK];
	cr_assert_eq(qt_dataset_sample_shape(ds, dims), 3);
	cr_assert(dims[0] == 3 && dims[1] == 2 && dims[2] == 2);
	char want[512];
	snprintf(want, sizeof want,
		 "%s images=%s/NNNN.pb labels=%s/labels.pb stored=float32[3,2,2] scale=1 mean=[1,2,3] std=[2] "
		 "layout=NCHW dtype=float32 sample=[3,2,2] offset=1 count=5 total=7",
		 spec, tmpdir, tmpdir);
	cr_assert_str_eq(qt_dataset_describe(ds), want);
	struct qt_tensor x = {0};
	int64_t l[3];
	int n;
	static const int expect[] = {3, 2, 0};
	for (int pass = 0; pass < 2; pass++) {
		int seen = 0;
		for (int b = 0; b < 3; b++) {
			cr_assert_eq(qt_dataset_next(ds, 3, &x, l, &n), QT_OK, "%s", qt_error_msg());
			cr_assert_eq(n, expect[b], "pass %d batch %d", pass, b);
			if (!n)
				break;
			cr_assert(x.rank == 4 && x.dims[0] == n && x.dims[1] == 3 && x.dims[2] == 2 && x.dims[3] == 2);
			const float *v = x.data;
			for (int s = 0; s < n; s++) {
				int idx = 1 + seen + s;
				cr_assert_eq(l[s], idx);
				for (int c = 0; c < 3; c++)
					for (int k = 0; k < 4; k++)
						cr_assert_eq(v[s * 12 + c * 4 + k],
							     ((float)(idx * 12 + c * 4 + k) - (float)(c + 1)) / 2.0f,
							     "sample %d c%d k%d", idx, c, k);
			}
			seen += n;
		}
		cr_assert_eq(seen, 5);
		qt_dataset_reset(ds);
	}
	qt_dataset_close(ds);

	/* Without labels.pb: no labels, the same samples. */
	cr_assert_eq(unlink(tpath("labels.pb")), 0);
	cr_assert_eq(qt_dataset_open(spec, NULL, &ds), QT_OK, "%s", qt_error_msg());
	cr_assert(!qt_dataset_has_labels(ds));
	cr_assert_eq(qt_dataset_count(ds), 7);
	cr_assert_eq(qt_dataset_next(ds, 1, &x, l, &n), QT_OK);
	cr_assert_eq(((float *)x.data)[11], 11.0f);
	qt_dataset_close(ds);
	qt_tensor_free(&x);
}

/* Every dtype the npy path takes reads the same from .pb, including a batch
 * dim of 1 kept in each file ([1,C,H,W], as ONNX test data has it). */
Test(dataset, pb_dtypes_and_batch_dim_match_npy, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	static const enum qt_dtype dts[] = {QT_DTYPE_F32, QT_DTYPE_U8, QT_DTYPE_I64, QT_DTYPE_I32, QT_DTYPE_F64};
	int64_t sd[4] = {1, 3, 2, 2}, ld[2] = {4, 1};
	cr_assert_eq(mkdir(tpath("npy"), 0755), 0);
	cr_assert_eq(mkdir(tpath("pb"), 0755), 0);
	for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++) {
		for (int i = 0; i < 4; i++) {
			write_sample("npy", 0, i, dts[d], 4, sd);
			write_sample("pb", 1, i, dts[d], 4, sd);
		}
		write_npy(tpath("npy/labels.npy"), QT_DTYPE_U8, 2, ld, v_label);
		write_pb(tpath("pb/labels.pb"), QT_DTYPE_U8, 2, ld, v_label);
		struct qt_preproc pp = {.scale = 4, .n_mean = 3, .mean = {1, 2, 3}};
		struct qt_dataset_opts o = {.preproc = &pp, .offset = 1};
		struct qt_dataset *a, *b;
		char spec[160];
		snprintf(spec, sizeof spec, "pb:%s", tpath("pb"));
		cr_assert_eq(qt_dataset_open(spec, &o, &a), QT_OK, "%s: %s", qt_dtype_name(dts[d]), qt_error_msg());
		snprintf(spec, sizeof spec, "npy:%s", tpath("npy"));
		cr_assert_eq(qt_dataset_open(spec, &o, &b), QT_OK, "%s: %s", qt_dtype_name(dts[d]), qt_error_msg());
		int64_t dims[QT_MAX_RANK];
		cr_assert_eq(qt_dataset_sample_shape(a, dims), 3);
		cr_assert(dims[0] == 3 && dims[1] == 2 && dims[2] == 2);
		struct qt_tensor x = {0}, y = {0};
		int64_t la[4], lb[4];
		int na, nb;
		cr_assert_eq(qt_dataset_next(a, 4, &x, la, &na), QT_OK, "%s", qt_error_msg());
		cr_assert_eq(qt_dataset_next(b, 4, &y, lb, &nb), QT_OK, "%s", qt_error_msg());
		cr_assert_eq(na, 3);
		cr_assert_eq(nb, 3);
		cr_assert_eq(x.nbytes, y.nbytes);
		cr_assert(memcmp(x.data, y.data, x.nbytes) == 0, "%s", qt_dtype_name(dts[d]));
		const float *v = x.data;
		for (int s = 0; s < 3; s++) {
			cr_assert_eq(la[s], s + 1);
			cr_assert_eq(lb[s], s + 1);
			for (int c = 0; c < 3; c++)
				for (int k = 0; k < 4; k++)
					cr_assert_eq(v[s * 12 + c * 4 + k], (float)((s + 1) * 12 + c * 4 + k) / 4.0f - (float)(c + 1));
		}
		char st[64];
		snprintf(st, sizeof st, "stored=%s[1,3,2,2]", qt_dtype_name(dts[d]));
		cr_assert(strstr(qt_dataset_describe(a), st), "%s", qt_dataset_describe(a));
		qt_dataset_close(a);
		qt_dataset_close(b);
		qt_tensor_free(&x);
		qt_tensor_free(&y);
	}
}

/* ONNX backend test data: test_data_set_N/input_0.pb, here channels-last
 * [1,H=2,W=2,C=3] uint8, transposed to NCHW by a JSON spec. */
Test(dataset, pb_onnx_test_data_layout, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	int64_t sd[4] = {1, 2, 2, 3};
	cr_assert_eq(mkdir(tpath("model"), 0755), 0);
	for (int i = 0; i < 11; i++) {
		char d[64], f[96];
		snprintf(d, sizeof d, "model/test_data_set_%d", i);
		cr_assert_eq(mkdir(tpath(d), 0755), 0);
		snprintf(f, sizeof f, "%s/input_0.pb", d);
		pb_base = i * 12;
		write_pb(tpath(f), QT_DTYPE_U8, 4, sd, v_from_base);
		snprintf(f, sizeof f, "%s/output_0.pb", d); /* model outputs: not read */
		write_pb(tpath(f), QT_DTYPE_F32, 2, (int64_t[]){1, 10}, v_index);
	}
	write_text(tpath("model/model.onnx"), "not read");
	write_text(tpath("spec.json"), "{\"format\":\"pb\",\"images\":\"model\",\"source_layout\":\"NHWC\","
				       "\"mean\":[0,100,200]}");
	struct qt_dataset_opts o = {.offset = 9};
	struct qt_dataset *ds;
	cr_assert_eq(qt_dataset_open(tpath("spec.json"), &o, &ds), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_dataset_count(ds), 2);
	cr_assert(!qt_dataset_has_labels(ds));
	cr_assert(strstr(qt_dataset_describe(ds), "/model/test_data_set_N/input_0.pb stored=uint8[1,2,2,3]"), "%s",
		  qt_dataset_describe(ds));
	cr_assert(strstr(qt_dataset_describe(ds), "layout=NCHW(from NHWC) dtype=float32 sample=[3,2,2]"), "%s",
		  qt_dataset_describe(ds));
	struct qt_tensor x = {0};
	int n;
	cr_assert_eq(qt_dataset_next(ds, 4, &x, NULL, &n), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(n, 2);
	const float *v = x.data;
	/* Samples 9 and 10 (test_data_set_10 sorts after _9 by number, not name). */
	for (int s = 0; s < 2; s++)
		for (int c = 0; c < 3; c++)
			for (int hw = 0; hw < 4; hw++)
				cr_assert_eq(v[s * 12 + c * 4 + hw], (float)((9 + s) * 12 + hw * 3 + c) - (float)(c * 100),
					     "s%d c%d hw%d", s, c, hw);
	qt_dataset_close(ds);
	qt_tensor_free(&x);

	/* A set without input_0.pb is named when read. */
	cr_assert_eq(unlink(tpath("model/test_data_set_10/input_0.pb")), 0);
	cr_assert_eq(qt_dataset_open(tpath("spec.json"), &o, &ds), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_dataset_next(ds, 4, &x, NULL, &n), QT_E_IO);
	cr_assert(strstr(qt_error_msg(), "/model/test_data_set_10/input_0.pb: cannot open: No such file"), "%s",
		  qt_error_msg());
	qt_dataset_close(ds);

	/* Both conventions in one folder. */
	write_pb(tpath("model/0000.pb"), QT_DTYPE_U8, 4, sd, v_index);
	expect_open_error(tpath("spec.json"), NULL, QT_E_FORMAT,
			  "holds both per-sample files (0000.pb, ...) and test_data_set_0/; keep one convention");
}

Test(dataset, pb_refusals, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	/* 6 samples float32 [2,3], labels.pb [6]. */
	int64_t sd[2] = {2, 3}, ld[1] = {6};
	for (int i = 0; i < 6; i++)
		write_sample(".", 1, i, QT_DTYPE_F32, 2, sd);
	write_pb(tpath("labels.pb"), QT_DTYPE_I64, 1, ld, v_label);
	char spec[128], want[512];
	snprintf(spec, sizeof spec, "pb:%s", tmpdir);
	struct qt_dataset *ds;
	struct qt_tensor x = {0};
	int n;
	cr_assert_eq(qt_dataset_open(spec, NULL, &ds), QT_OK, "%s", qt_error_msg());
	qt_dataset_close(ds);

	/* Samples that do not fit the model input. */
	int64_t in[3] = {1, 28, 28};
	struct qt_dataset_opts o = {.input_name = "input", .input_rank = 3, .input_dims = in};
	expect_open_error(spec, &o, QT_E_INVALID_ARG, "samples are [2,3] but the model input \"input\" expects [1,28,28]");

	/* A malformed file is named when its batch is read; the position does not move. */
	write_text(tpath("0003.pb"), "\xff\xff\xff");
	snprintf(want, sizeof want, "%s: %s/0003.pb: truncated or not a TensorProto (protobuf parse failed)", spec,
		 tmpdir);
	expect_read_error(spec, 2, 1, QT_E_FORMAT, want);
	/* ... and at open when it is sample 0, which defines the shape. */
	write_text(tpath("0000.pb"), "\x08");
	expect_open_error(spec, NULL, QT_E_FORMAT, "/0000.pb: truncated or not a TensorProto");
	write_sample(".", 1, 0, QT_DTYPE_F32, 2, sd);

	/* A file of another shape, then of another dtype. */
	int64_t other[2] = {3, 2};
	write_pb(tpath("0003.pb"), QT_DTYPE_F32, 2, other, v_index);
	snprintf(want, sizeof want, "%s: %s/0003.pb: holds float32[3,2] but sample 0 (%s/0000.pb) is float32[2,3]", spec,
		 tmpdir, tmpdir);
	expect_read_error(spec, 4, 0, QT_E_FORMAT, want);
	write_pb(tpath("0003.pb"), QT_DTYPE_F64, 2, sd, v_index);
	expect_read_error(spec, 4, 0, QT_E_FORMAT, "0003.pb: holds float64[2,3] but sample 0");
	write_sample(".", 1, 3, QT_DTYPE_F32, 2, sd);

	/* NaN and Inf, with the file and the element. */
	static const float bad[2] = {NAN, -INFINITY};
	static const char *const what[2] = {"NaN", "-Inf"};
	for (int k = 0; k < 2; k++) {
		struct qt_tensor t = {0};
		cr_assert_eq(qt_tensor_alloc(&t, QT_DTYPE_F32, 2, sd), QT_OK);
		((float *)t.data)[4] = bad[k];
		cr_assert_eq(qt_tensor_write_pb(tpath("0002.pb"), &t, NULL), QT_OK);
		qt_tensor_free(&t);
		snprintf(want, sizeof want, "%s: %s/0002.pb: element 4 is %s", spec, tmpdir, what[k]);
		expect_read_error(spec, 4, 0, QT_E_NUMERIC, want);
	}
	write_sample(".", 1, 2, QT_DTYPE_F32, 2, sd);

	/* Labels: count, dtype, shape, a malformed file, a negative value (found when read). */
	int64_t ld5[1] = {5}, ld62[2] = {6, 2};
	write_pb(tpath("labels.pb"), QT_DTYPE_I64, 1, ld5, v_label);
	snprintf(want, sizeof want, "label count 5 (%s/labels.pb) != image count 6 (%s)", tmpdir, tmpdir);
	expect_open_error(spec, NULL, QT_E_FORMAT, want);
	write_pb(tpath("labels.pb"), QT_DTYPE_F32, 1, ld, v_label);
	expect_open_error(spec, NULL, QT_E_FORMAT, "labels.pb: labels must be integers (int64 or uint8), not float32");
	write_pb(tpath("labels.pb"), QT_DTYPE_I64, 2, ld62, v_label);
	expect_open_error(spec, NULL, QT_E_FORMAT, "labels.pb: labels must be [N] or [N,1], not [6,2]");
	write_text(tpath("labels.pb"), "\x0a\x05");
	expect_open_error(spec, NULL, QT_E_FORMAT, "labels.pb: truncated or not a TensorProto");
	struct qt_tensor neg = {0};
	cr_assert_eq(qt_tensor_alloc(&neg, QT_DTYPE_I32, 1, ld), QT_OK);
	((int32_t *)neg.data)[2] = -1;
	cr_assert_eq(qt_tensor_write_pb(tpath("labels.pb"), &neg, NULL), QT_OK);
	qt_tensor_free(&neg);
	expect_read_error(spec, 2, 1, QT_E_FORMAT, "labels.pb: label -1 of sample 2 is negative");
	cr_assert_eq(unlink(tpath("labels.pb")), 0);

	/* Files are read batch by batch, not at open: one removed after open fails its batch only. */
	cr_assert_eq(qt_dataset_open(spec, NULL, &ds), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(unlink(tpath("0005.pb")), 0);
	cr_assert_eq(qt_dataset_next(ds, 4, &x, NULL, &n), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(n, 4);
	cr_assert_eq(qt_dataset_next(ds, 4, &x, NULL, &n), QT_E_IO);
	cr_assert(strstr(qt_error_msg(), "/0005.pb: cannot open: No such file or directory"), "%s", qt_error_msg());
	qt_dataset_close(ds);

	/* Numbering: a gap, a duplicate. */
	cr_assert_eq(unlink(tpath("0003.pb")), 0);
	expect_open_error(spec, NULL, QT_E_FORMAT, "sample 3 is missing (next file is 0004.pb)");
	write_sample(".", 1, 3, QT_DTYPE_F32, 2, sd);
	write_pb(tpath("3.pb"), QT_DTYPE_F32, 2, sd, v_index);
	expect_open_error(spec, NULL, QT_E_FORMAT, "both hold sample 3");

	/* An empty folder, a folder of .npy files only, a file instead of a folder. */
	cr_assert_eq(mkdir(tpath("empty"), 0755), 0);
	snprintf(spec, sizeof spec, "pb:%s", tpath("empty"));
	expect_open_error(spec, NULL, QT_E_FORMAT, "holds no per-sample files 0000.pb, 0001.pb, ...");
	write_npy(tpath("empty/0000.npy"), QT_DTYPE_F32, 2, sd, v_index);
	expect_open_error(spec, NULL, QT_E_FORMAT, "holds no per-sample files 0000.pb, 0001.pb, ...");
	snprintf(spec, sizeof spec, "pb:%s", tpath("0000.pb"));
	expect_open_error(spec, NULL, QT_E_IO, "0000.pb: cannot open ");
	cr_assert(strstr(qt_error_msg(), "0000.pb: Not a directory"), "%s", qt_error_msg());
	qt_tensor_free(&x);
}

/* ---- JSON specs ---------------------------------------------------------------- */

Test(dataset, json_idx_spec_equals_fashion_mnist, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	write_text(tpath("fm.json"), "{\"format\": \"idx\",\n"
				     " \"images\": \"" FM "t10k-images-idx3-ubyte.gz\",\n"
				     " \"labels\": \"" FM "t10k-labels-idx1-ubyte.gz\",\n"
				     " \"scale\": 255, \"mean\": [0.2860], \"std\": 0.3530,\n"
				     " \"layout\": \"NCHW\", \"dtype\": \"float32\"}\n");
	struct qt_dataset *a, *b;
	struct qt_dataset_opts o = {.offset = 5000, .limit = 40};
	cr_assert_eq(qt_dataset_open(tpath("fm.json"), &o, &a), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_dataset_open("fashion-mnist:test", &o, &b), QT_OK);
	struct qt_tensor x = {0}, y = {0};
	int64_t la[40], lb[40];
	int na, nb;
	cr_assert_eq(qt_dataset_next(a, 40, &x, la, &na), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_dataset_next(b, 40, &y, lb, &nb), QT_OK);
	cr_assert_eq(na, 40);
	cr_assert(memcmp(x.data, y.data, x.nbytes) == 0);
	cr_assert(memcmp(la, lb, sizeof la) == 0);
	cr_assert(strstr(qt_dataset_describe(a), "scale=255 mean=[0.286] std=[0.353] layout=NCHW"), "%s",
		  qt_dataset_describe(a));
	qt_dataset_close(a);
	qt_dataset_close(b);
	qt_tensor_free(&x);
	qt_tensor_free(&y);
}

Test(dataset, json_npy_relative_paths_and_layouts, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	cr_assert_eq(mkdir(tpath("data"), 0755), 0);
	/* Two samples of [C=2,H=2,W=3] stored NCHW; element i has value i. */
	int64_t xd[4] = {2, 2, 2, 3}, yd[2] = {2, 1};
	write_npy(tpath("data/imgs.npy"), QT_DTYPE_U8, 4, xd, v_index);
	write_npy(tpath("data/labs.npy"), QT_DTYPE_I64, 2, yd, v_label);
	write_text(tpath("spec.json"), "{\"format\":\"npy\",\"images\":\"data/imgs.npy\",\"labels\":\"data/labs.npy\","
				       "\"mean\":[0,100],\"layout\":\"NHWC\",\"source_layout\":\"NCHW\"}");
	struct qt_dataset *ds;
	cr_assert_eq(qt_dataset_open(tpath("spec.json"), NULL, &ds), QT_OK, "%s", qt_error_msg());
	int64_t dims[QT_MAX_RANK];
	cr_assert_eq(qt_dataset_sample_shape(ds, dims), 3);
	cr_assert(dims[0] == 2 && dims[1] == 3 && dims[2] == 2, "[%lld,%lld,%lld]", (long long)dims[0],
		  (long long)dims[1], (long long)dims[2]);
	cr_assert(strstr(qt_dataset_describe(ds), "layout=NHWC(from NCHW)"), "%s", qt_dataset_describe(ds));
	struct qt_tensor x = {0};
	int64_t l[2];
	int n;
	cr_assert_eq(qt_dataset_next(ds, 2, &x, l, &n), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(n, 2);
	cr_assert_eq(l[1], 1);
	const float *v = x.data;
	for (int s = 0; s < 2; s++)
		for (int h = 0; h < 2; h++)
			for (int w = 0; w < 3; w++)
				for (int c = 0; c < 2; c++) {
					float raw = (float)(s * 12 + c * 6 + h * 3 + w);
					cr_assert_eq(v[s * 12 + (h * 3 + w) * 2 + c], raw - (c ? 100.0f : 0.0f),
						     "s%d h%d w%d c%d", s, h, w, c);
				}
	qt_dataset_close(ds);

	/* The model looks channels-last but the data is NCHW: the message says so. */
	write_text(tpath("nchw.json"), "{\"format\":\"npy\",\"images\":\"data/imgs.npy\"}");
	int64_t want[3] = {2, 3, 2};
	struct qt_dataset_opts o = {.input_name = "x", .input_rank = 3, .input_dims = want};
	expect_open_error(tpath("nchw.json"), &o, QT_E_INVALID_ARG,
			  "samples are [2,2,3] but the model input \"x\" expects [2,3,2] (the samples are NCHW; the "
			  "model looks NHWC: set the layout)");
	qt_tensor_free(&x);
}

Test(dataset, json_refusals, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	static const struct {
		const char *json;
		enum qt_status st;
		const char *msg;
	} cases[] = {
		{"{\"format\":\"idx\",\"images\":\"a\",\"mean\":[0],\"colour\":1}", QT_E_FORMAT, "unknown key \"colour\""},
		{"{\"format\":\"idx\",\"images\":\"a\",", QT_E_FORMAT, "invalid JSON near byte"},
		{"[1,2]", QT_E_FORMAT, "must be a JSON object"},
		{"{\"images\":\"a\"}", QT_E_FORMAT, "\"format\" (\"idx\", \"npy\" or \"pb\") is required"},
		{"{\"format\":\"csv\",\"images\":\"a\"}", QT_E_FORMAT, "unknown \"format\" \"csv\""},
		{"{\"format\":\"idx\"}", QT_E_FORMAT, "\"images\" (a path) is required"},
		{"{\"format\":\"idx\",\"images\":\"a\",\"scale\":0}", QT_E_FORMAT, "\"scale\" must be a number > 0"},
		{"{\"format\":\"idx\",\"images\":\"a\",\"std\":[1,-1]}", QT_E_FORMAT, "std[1] = -1 must be finite and > 0"},
		{"{\"format\":\"idx\",\"images\":\"a\",\"mean\":[]}", QT_E_FORMAT, "\"mean\" must hold 1 to 16 numbers"},
		{"{\"format\":\"idx\",\"images\":\"a\",\"layout\":\"CHW\"}", QT_E_FORMAT,
		 "\"layout\" must be \"NCHW\" or \"NHWC\""},
		{"{\"format\":\"idx\",\"images\":\"a\",\"dtype\":\"int8\"}", QT_E_UNSUPPORTED,
		 "\"dtype\" must be \"float32\""},
		{"{\"format\":\"idx\",\"images\":\"a\",\"images\":\"b\"}", QT_E_FORMAT, "duplicate key \"images\""},
		{"{\"format\":\"idx\",\"images\":\"missing.gz\"}", QT_E_IO, "cannot open "},
		{"{\"format\":\"idx\",\"images\":\"a\",\"source_layout\":\"NHWC\"}", QT_E_FORMAT,
		 "\"source_layout\" applies to \"npy\" and \"pb\" data only"},
		{"{\"format\":\"pb\",\"images\":\".\",\"labels\":\"y.pb\"}", QT_E_INVALID_ARG,
		 "\"labels\" cannot be given with a folder"},
	};
	const char *path = tpath("s.json");
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		write_text(path, cases[i].json);
		struct qt_dataset *ds = (struct qt_dataset *)1;
		enum qt_status st = qt_dataset_open(path, NULL, &ds);
		cr_expect_eq(st, cases[i].st, "case %zu: %d %s", i, st, qt_error_msg());
		cr_expect_null(ds);
		cr_expect(strstr(qt_error_msg(), "s.json: ") && strstr(qt_error_msg(), cases[i].msg),
			  "case %zu: expected \"%s\" in: %s", i, cases[i].msg, qt_error_msg());
	}
	/* The relative image path is resolved against the JSON's folder. */
	write_text(path, "{\"format\":\"idx\",\"images\":\"missing.gz\"}");
	struct qt_dataset *ds;
	cr_assert_eq(qt_dataset_open(path, NULL, &ds), QT_E_IO);
	char want[256];
	snprintf(want, sizeof want, "%s: cannot open %s/missing.gz: No such file or directory", path, tmpdir);
	cr_assert_str_eq(qt_error_msg(), want);
	/* A JSON spec carries its own preprocessing. */
	struct qt_preproc pp = {.scale = 2};
	struct qt_dataset_opts o = {.preproc = &pp};
	expect_open_error(tpath("s.json"), &o, QT_E_INVALID_ARG, "fixes its own preprocessing");
	expect_open_error(tpath("nope.json"), NULL, QT_E_IO, "nope.json: cannot open ");
}

Test(dataset, idx_rank4_channels_last_to_nchw, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	/* [2 items, H=2, W=2, C=3] plain IDX; element i has value i. */
	unsigned char b[64] = {0, 0, 0x08, 4, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3};
	for (int i = 0; i < 24; i++)
		b[20 + i] = (unsigned char)i;
	FILE *f = fopen(tpath("img.idx"), "wb");
	fwrite(b, 1, 44, f);
	fclose(f);
	char spec[160];
	snprintf(spec, sizeof spec, "idx:%s", tpath("img.idx"));
	struct qt_preproc pp = {.n_mean = 3, .mean = {0, 10, 20}};
	struct qt_dataset_opts o = {.preproc = &pp};
	struct qt_dataset *ds;
	cr_assert_eq(qt_dataset_open(spec, &o, &ds), QT_OK, "%s", qt_error_msg());
	int64_t dims[QT_MAX_RANK];
	cr_assert_eq(qt_dataset_sample_shape(ds, dims), 3);
	cr_assert(dims[0] == 3 && dims[1] == 2 && dims[2] == 2);
	struct qt_tensor x = {0};
	int n;
	cr_assert_eq(qt_dataset_next(ds, 2, &x, NULL, &n), QT_OK, "%s", qt_error_msg());
	const float *v = x.data;
	for (int s = 0; s < 2; s++)
		for (int c = 0; c < 3; c++)
			for (int hw = 0; hw < 4; hw++)
				cr_assert_eq(v[s * 12 + c * 4 + hw], (float)(s * 12 + hw * 3 + c) - (float)(c * 10));
	qt_dataset_close(ds);
	qt_tensor_free(&x);
}
