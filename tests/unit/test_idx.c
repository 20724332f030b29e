/*
 * IDX reader on the installed Fashion-MNIST files and on synthetic plain and
 * gzip files (truncated, corrupt, with trailing data, bad headers).
 *
 * Expected values were computed once with /usr/bin/python3, gzip and NumPy:
 *   np.frombuffer(gzip.open(f).read(), np.uint8, offset=16).reshape(-1, 28, 28)
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "qtool/idx.h"

#define FM "/usr/share/datasets/fashion-mnist/"
#define TRAIN_X FM "train-images-idx3-ubyte.gz"
#define TRAIN_Y FM "train-labels-idx1-ubyte.gz"
#define TEST_X FM "t10k-images-idx3-ubyte.gz"
#define TEST_Y FM "t10k-labels-idx1-ubyte.gz"

static const uint8_t train_labels_first20[20] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9, 5, 5, 7, 9, 1, 0, 6, 4};
static const uint8_t train_labels_last5[5] = {5, 1, 3, 0, 5};
static const uint8_t test_labels_first20[20] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5, 7, 3, 4, 1, 2, 4, 8, 0};
/* Row 14 of test image 0. */
static const uint8_t test_img0_row14[28] = {0,  0,   0,   0,   0,   0,   2,   4,   1,   0,   0,   0,   98,  136,
					    110, 109, 110, 162, 135, 144, 149, 159, 167, 144, 158, 169, 119, 0};

/* ---- helpers ------------------------------------------------------------- */

static char tmpdir[64];

static void mk_tmpdir(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/qt_idx_XXXXXX");
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

static unsigned char *read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "%s", path);
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	rewind(f);
	unsigned char *b = malloc((size_t)len);
	cr_assert_eq(fread(b, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	*n = (size_t)len;
	return b;
}

/* An IDX u8 image in buf: header for `rank` dims, then item bytes i*7+1, plus `extra` bytes. */
static size_t mk_idx(unsigned char *buf, int rank, const uint32_t *dims, size_t extra)
{
	size_t o = 0, n = 1;
	buf[o++] = 0;
	buf[o++] = 0;
	buf[o++] = 0x08;
	buf[o++] = (unsigned char)rank;
	for (int i = 0; i < rank; i++) {
		buf[o++] = (unsigned char)(dims[i] >> 24);
		buf[o++] = (unsigned char)(dims[i] >> 16);
		buf[o++] = (unsigned char)(dims[i] >> 8);
		buf[o++] = (unsigned char)dims[i];
		n *= dims[i];
	}
	for (size_t i = 0; i < n + extra; i++)
		buf[o++] = (unsigned char)(i * 7 + 1);
	return o;
}

static void write_gz(const char *path, const void *buf, size_t n)
{
	gzFile g = gzopen(path, "wb9");
	cr_assert_not_null(g);
	cr_assert_eq(gzwrite(g, buf, (unsigned)n), (int)n);
	cr_assert_eq(gzclose(g), Z_OK);
}

static uint64_t sum_all(struct qt_idx_reader *r, int64_t batch)
{
	const struct qt_idx_info *info = qt_idx_reader_info(r);
	uint8_t *b = malloc((size_t)batch * info->item_bytes);
	uint64_t s = 0;
	for (int64_t i = 0; i < info->dims[0]; i += batch) {
		int64_t n = info->dims[0] - i < batch ? info->dims[0] - i : batch;
		cr_assert_eq(qt_idx_read(r, i, n, b), QT_OK, "%s", qt_error_msg());
		for (size_t k = 0; k < (size_t)n * info->item_bytes; k++)
			s += b[k];
	}
	free(b);
	return s;
}

/* ---- the real Fashion-MNIST files ------------------------------------------ */

Test(idx, fashion_mnist_train)
{
	struct qt_idx_reader *x, *y;
	cr_assert_eq(qt_idx_open(TRAIN_X, &x), QT_OK, "%s", qt_error_msg());
	const struct qt_idx_info *xi = qt_idx_reader_info(x);
	cr_assert_eq(xi->rank, 3);
	cr_assert_eq(xi->dims[0], 60000);
	cr_assert_eq(xi->dims[1], 28);
	cr_assert_eq(xi->dims[2], 28);
	cr_assert_eq(xi->item_bytes, 784);
	cr_assert_eq(xi->data_offset, 16);
	cr_assert(xi->gzip);
	cr_assert_str_eq(qt_idx_reader_path(x), TRAIN_X);
	cr_assert_eq(sum_all(x, 1000), 3431114169ull);
	qt_idx_close(x);

	cr_assert_eq(qt_idx_open(TRAIN_Y, &y), QT_OK, "%s", qt_error_msg());
	const struct qt_idx_info *yi = qt_idx_reader_info(y);
	cr_assert_eq(yi->rank, 1);
	cr_assert_eq(yi->dims[0], 60000);
	cr_assert_eq(yi->item_bytes, 1);
	uint8_t l[20];
	cr_assert_eq(qt_idx_read(y, 0, 20, l), QT_OK);
	cr_assert(memcmp(l, train_labels_first20, 20) == 0);
	cr_assert_eq(qt_idx_read(y, 59995, 5, l), QT_OK, "%s", qt_error_msg());
	cr_assert(memcmp(l, train_labels_last5, 5) == 0);
	cr_assert_eq(sum_all(y, 7000), 270000);
	qt_idx_close(y);
}

Test(idx, fashion_mnist_test_images_and_seeks)
{
	struct qt_idx_reader *x;
	cr_assert_eq(qt_idx_open(TEST_X, &x), QT_OK, "%s", qt_error_msg());
	const struct qt_idx_info *xi = qt_idx_reader_info(x);
	cr_assert_eq(xi->dims[0], 10000);
	cr_assert_eq(xi->dims[1], 28);
	cr_assert_eq(xi->dims[2], 28);
	uint8_t img[784];
	uint64_t s;
	cr_assert_eq(qt_idx_read(x, 0, 1, img), QT_OK);
	cr_assert(memcmp(img + 14 * 28, test_img0_row14, 28) == 0);
	/* Jump to the end (checks the gzip trailer), then backwards and forwards. */
	static const struct {
		int64_t item;
		uint64_t sum;
	} probes[] = {{9999, 24390}, {0, 33456}, {100, 36731}, {9999, 24390}, {100, 36731}};
	for (size_t p = 0; p < sizeof probes / sizeof probes[0]; p++) {
		cr_assert_eq(qt_idx_read(x, probes[p].item, 1, img), QT_OK, "%s", qt_error_msg());
		s = 0;
		for (int i = 0; i < 784; i++)
			s += img[i];
		cr_assert_eq(s, probes[p].sum, "item %lld", (long long)probes[p].item);
	}
	cr_assert_eq(sum_all(x, 999), 573469082ull);
	/* Out of range. */
	cr_assert_eq(qt_idx_read(x, 9999, 2, img), QT_E_INVALID_ARG);
	cr_assert(strstr(qt_error_msg(), "t10k-images-idx3-ubyte.gz: items [9999, 10001) are outside the 10000 items"),
		  "%s", qt_error_msg());
	cr_assert_eq(qt_idx_read(x, 10000, 0, img), QT_OK);
	qt_idx_close(x);
}

Test(idx, fashion_mnist_test_labels_read_all)
{
	struct qt_tensor t = {0};
	cr_assert_eq(qt_idx_read_all(TEST_Y, &t), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(t.dtype, QT_DTYPE_U8);
	cr_assert_eq(t.rank, 1);
	cr_assert_eq(t.dims[0], 10000);
	cr_assert(memcmp(t.data, test_labels_first20, 20) == 0);
	uint64_t s = 0;
	for (int i = 0; i < 10000; i++)
		s += ((uint8_t *)t.data)[i];
	cr_assert_eq(s, 45000);
	qt_tensor_free(&t);
}

/* ---- synthetic files ---------------------------------------------------------- */

Test(idx, plain_file_rank4, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	unsigned char buf[256];
	uint32_t dims[4] = {5, 2, 3, 2};
	size_t n = mk_idx(buf, 4, dims, 0);
	write_bytes(tpath("a.idx"), buf, n);
	struct qt_idx_reader *r;
	cr_assert_eq(qt_idx_open(tpath("a.idx"), &r), QT_OK, "%s", qt_error_msg());
	const struct qt_idx_info *info = qt_idx_reader_info(r);
	cr_assert_eq(info->rank, 4);
	cr_assert_eq(info->item_bytes, 12);
	cr_assert_eq(info->data_offset, 20);
	cr_assert_eq(info->gzip, 0);
	uint8_t out[60];
	cr_assert_eq(qt_idx_read(r, 3, 2, out), QT_OK);
	cr_assert(memcmp(out, buf + 20 + 36, 24) == 0);
	cr_assert_eq(qt_idx_read(r, 0, 5, out), QT_OK);
	cr_assert(memcmp(out, buf + 20, 60) == 0);
	qt_idx_close(r);

	/* The same bytes gzip-compressed read the same (detected by content, not name). */
	write_gz(tpath("a.plain"), buf, n);
	cr_assert_eq(qt_idx_open(tpath("a.plain"), &r), QT_OK, "%s", qt_error_msg());
	cr_assert(qt_idx_reader_info(r)->gzip);
	cr_assert_eq(qt_idx_read(r, 3, 2, out), QT_OK, "%s", qt_error_msg());
	cr_assert(memcmp(out, buf + 20 + 36, 24) == 0);
	cr_assert_eq(qt_idx_read(r, 1, 4, out), QT_OK, "%s", qt_error_msg());
	cr_assert(memcmp(out, buf + 20 + 12, 48) == 0);
	qt_idx_close(r);
}

Test(idx, plain_file_size_must_match, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	unsigned char buf[256];
	uint32_t dims[3] = {5, 2, 3};
	size_t n = mk_idx(buf, 3, dims, 1);
	struct qt_idx_reader *r = (struct qt_idx_reader *)1;
	write_bytes(tpath("short.idx"), buf, n - 2);
	cr_assert_eq(qt_idx_open(tpath("short.idx"), &r), QT_E_FORMAT);
	cr_assert_null(r);
	cr_assert(strstr(qt_error_msg(),
			 "short.idx: header says [5,2,3] (30 bytes of data) but the file holds 29 bytes after the "
			 "header (truncated?)"),
		  "%s", qt_error_msg());
	write_bytes(tpath("long.idx"), buf, n);
	cr_assert_eq(qt_idx_open(tpath("long.idx"), &r), QT_E_FORMAT);
	cr_assert(strstr(qt_error_msg(), "long.idx: header says [5,2,3] (30 bytes of data) but the file holds 31"),
		  "%s", qt_error_msg());
}

Test(idx, bad_headers, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	static const struct {
		unsigned char b[12];
		size_t n;
		enum qt_status st;
		const char *msg;
	} cases[] = {
		{{0x01, 0x02, 0x08, 0x01, 0, 0, 0, 0}, 8, QT_E_FORMAT, "h.idx: not an IDX file (magic 01 02 08 01"},
		{{0, 0, 0x0D, 0x01, 0, 0, 0, 0}, 8, QT_E_UNSUPPORTED, "h.idx: element type 0x0d (float32) is not supported"},
		{{0, 0, 0x07, 0x01, 0, 0, 0, 0}, 8, QT_E_FORMAT, "h.idx: invalid IDX element type 0x07"},
		{{0, 0, 0x08, 0x00}, 4, QT_E_UNSUPPORTED, "h.idx: 0 dimensions"},
		{{0, 0, 0x08, 0x05}, 4, QT_E_UNSUPPORTED, "h.idx: 5 dimensions"},
		{{0, 0, 0x08, 0x02, 0, 0, 0, 1, 0, 0, 0, 0}, 12, QT_E_FORMAT, "h.idx: dimension 1 is 0"},
		{{0, 0, 0x08, 0x03, 0, 0, 0, 1}, 8, QT_E_FORMAT, "h.idx: truncated header"},
		{{0, 0}, 2, QT_E_FORMAT, "h.idx: truncated header"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct qt_idx_reader *r;
		write_bytes(tpath("h.idx"), cases[i].b, cases[i].n);
		cr_expect_eq(qt_idx_open(tpath("h.idx"), &r), cases[i].st, "case %zu: %s", i, qt_error_msg());
		cr_expect(strstr(qt_error_msg(), cases[i].msg), "case %zu: expected \"%s\" in: %s", i, cases[i].msg,
			  qt_error_msg());
		/* The same bytes compressed fail the same way. */
		write_gz(tpath("h.gz"), cases[i].b, cases[i].n);
		cr_expect_eq(qt_idx_open(tpath("h.gz"), &r), cases[i].st, "case %zu (gz): %s", i, qt_error_msg());
		cr_expect(strstr(qt_error_msg(), "h.gz: "), "case %zu (gz): %s", i, qt_error_msg());
	}
	struct qt_idx_reader *r;
	cr_assert_eq(qt_idx_open(tpath("nope.gz"), &r), QT_E_IO);
	cr_assert(strstr(qt_error_msg(), "cannot open ") && strstr(qt_error_msg(), "nope.gz: No such file or directory"),
		  "%s", qt_error_msg());
	cr_assert_eq(qt_idx_open(tmpdir, &r), QT_E_IO);
}

Test(idx, truncated_real_gz, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	size_t n;
	unsigned char *b = read_file(TEST_X, &n);
	const char *path = tpath("trunc.gz");
	write_bytes(path, b, n / 2);
	free(b);

	struct qt_idx_reader *r;
	cr_assert_eq(qt_idx_open(path, &r), QT_OK, "the header survives: %s", qt_error_msg());
	uint8_t *buf = malloc(1000 * 784);
	enum qt_status st = QT_OK;
	for (int64_t i = 0; i < 10000 && !st; i += 1000)
		st = qt_idx_read(r, i, 1000, buf);
	cr_assert_eq(st, QT_E_FORMAT);
	long long k = -1, of = -1;
	const char *m = strstr(qt_error_msg(), "trunc.gz: truncated at item ");
	cr_assert_not_null(m, "%s", qt_error_msg());
	cr_assert_eq(sscanf(m, "trunc.gz: truncated at item %lld of %lld", &k, &of), 2, "%s", qt_error_msg());
	cr_assert_eq(of, 10000);
	cr_assert(k > 1000 && k < 9000, "half the file should hold about half the items, got %lld", k);
	/* Everything before item k is readable, item k is not (after going backwards). */
	cr_assert_eq(qt_idx_read(r, 0, 1, buf), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_idx_read(r, k - 1, 1, buf), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_idx_read(r, k, 1, buf), QT_E_FORMAT);
	char want[64];
	snprintf(want, sizeof want, "truncated at item %lld of 10000", k);
	cr_assert(strstr(qt_error_msg(), want), "%s", qt_error_msg());
	/* A forward jump past the damage. */
	cr_assert_eq(qt_idx_read(r, 0, 1, buf), QT_OK);
	cr_assert_eq(qt_idx_read(r, 9990, 1, buf), QT_E_FORMAT);
	cr_assert(strstr(qt_error_msg(), want), "%s", qt_error_msg());
	free(buf);
	qt_idx_close(r);
}

/* Open path and read every item into out; the first failing status. */
static enum qt_status read_whole(const char *path, uint8_t *out)
{
	struct qt_idx_reader *r;
	enum qt_status st = qt_idx_open(path, &r);
	if (st)
		return st;
	st = qt_idx_read(r, 0, qt_idx_reader_info(r)->dims[0], out);
	qt_idx_close(r);
	return st;
}

Test(idx, gz_damage_after_the_data, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	unsigned char buf[4096];
	uint32_t dims[2] = {100, 16};
	size_t n = mk_idx(buf, 2, dims, 0);
	write_gz(tpath("ok.gz"), buf, n);
	size_t gn;
	unsigned char *g = read_file(tpath("ok.gz"), &gn);
	uint8_t out[1600];
	struct qt_idx_reader *r;

	/* Bad CRC in the trailer. zlib reports it when it decodes the end of the stream, which for a
	 * small file is the first read (at open), and for a large one the read that reaches the end. */
	g[gn - 8] ^= 0x55;
	write_bytes(tpath("crc.gz"), g, gn);
	g[gn - 8] ^= 0x55;
	cr_assert_eq(read_whole(tpath("crc.gz"), out), QT_E_FORMAT);
	cr_assert(strstr(qt_error_msg(), "crc.gz: corrupt gzip data") &&
		  strstr(qt_error_msg(), ": incorrect data check") && !strstr(qt_error_msg(), "crc.gz: incorrect"),
		  "%s", qt_error_msg());

	/* Trailer cut off. */
	write_bytes(tpath("notrailer.gz"), g, gn - 8);
	cr_assert_eq(qt_idx_open(tpath("notrailer.gz"), &r), QT_OK);
	cr_assert_eq(qt_idx_read(r, 0, 100, out), QT_E_FORMAT);
	cr_assert(strstr(qt_error_msg(), "notrailer.gz: truncated after the last item (gzip trailer missing)"), "%s",
		  qt_error_msg());
	qt_idx_close(r);

	/* Intact: reading to the end twice is fine (the check runs once). */
	cr_assert_eq(qt_idx_open(tpath("ok.gz"), &r), QT_OK);
	cr_assert_eq(qt_idx_read(r, 0, 100, out), QT_OK, "%s", qt_error_msg());
	cr_assert(memcmp(out, buf + 12, 1600) == 0);
	cr_assert_eq(qt_idx_read(r, 50, 50, out), QT_OK, "%s", qt_error_msg());
	cr_assert(memcmp(out, buf + 12 + 800, 800) == 0);
	qt_idx_close(r);

	/* More data than the header announces. */
	n = mk_idx(buf, 2, dims, 5);
	write_gz(tpath("long.gz"), buf, n);
	cr_assert_eq(qt_idx_open(tpath("long.gz"), &r), QT_OK);
	cr_assert_eq(qt_idx_read(r, 90, 10, out), QT_E_FORMAT);
	cr_assert(strstr(qt_error_msg(), "long.gz: unexpected data after the last of 100 items"), "%s", qt_error_msg());
	qt_idx_close(r);

	/* The same with a file much larger than zlib's buffers. */
	{
		uint32_t bd[2] = {4000, 784};
		unsigned char *big = malloc(16 + 4000 * 784);
		size_t bn = mk_idx(big, 2, bd, 0);
		write_gz(tpath("big.gz"), big, bn);
		size_t zn;
		unsigned char *z = read_file(tpath("big.gz"), &zn);
		z[zn - 7] ^= 0x01;
		write_bytes(tpath("bigcrc.gz"), z, zn);
		cr_assert_eq(read_whole(tpath("big.gz"), big), QT_OK, "%s", qt_error_msg());
		cr_assert_eq(read_whole(tpath("bigcrc.gz"), big), QT_E_FORMAT);
		cr_assert(strstr(qt_error_msg(), "bigcrc.gz: corrupt gzip data") &&
			  strstr(qt_error_msg(), "incorrect data check"), "%s", qt_error_msg());
		/* After a data error the reader starts over: earlier items read again, the error repeats. */
		struct qt_idx_reader *r2;
		cr_assert_eq(qt_idx_open(tpath("bigcrc.gz"), &r2), QT_OK);
		cr_assert_eq(qt_idx_read(r2, 0, 4000, big), QT_E_FORMAT);
		cr_assert_eq(qt_idx_read(r2, 0, 10, big), QT_OK, "%s", qt_error_msg());
		cr_assert_eq(big[784 * 9 + 5], (uint8_t)((784 * 9 + 5) * 7 + 1));
		cr_assert_eq(qt_idx_read(r2, 10, 3990, big), QT_E_FORMAT);
		cr_assert(strstr(qt_error_msg(), "incorrect data check"), "%s", qt_error_msg());
		qt_idx_close(r2);
		free(z);
		free(big);
	}

	/* Corrupt deflate data in the middle. */
	for (size_t i = gn / 2; i < gn / 2 + 8; i++)
		g[i] ^= 0xa5;
	write_bytes(tpath("bad.gz"), g, gn);
	cr_assert_eq(read_whole(tpath("bad.gz"), out), QT_E_FORMAT);
	cr_assert(strstr(qt_error_msg(), "bad.gz: "), "%s", qt_error_msg());
	free(g);
}
