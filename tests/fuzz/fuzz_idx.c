/*
 * libFuzzer target for the IDX reader (plain and gzip): any bytes must either
 * open and read consistently or be refused with a message naming the file,
 * never crash, leak or read out of bounds. The reader works on files, so each
 * input is written to a temporary file. Reads are bounded (at most 1 MiB of
 * items) so that a header announcing huge dims cannot make the harness slow.
 * Exercises forward reads, a jump to the last item (gzip end check), and a
 * backward seek that must return the same bytes as the first read.
 * Corpus: tests/fuzz/corpus/idx/ (replayed by `make test`).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qtool/idx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_READ ((uint64_t)1 << 20)

static char tmp_path[64];

static void remove_tmp(void)
{
	if (tmp_path[0])
		unlink(tmp_path);
}

static const char *write_tmp(const uint8_t *data, size_t size)
{
	if (!tmp_path[0]) {
		snprintf(tmp_path, sizeof tmp_path, "/tmp/qt_fuzz_idx_XXXXXX");
		int fd = mkstemp(tmp_path);
		if (fd < 0) {
			tmp_path[0] = '\0';
			return NULL;
		}
		close(fd);
		atexit(remove_tmp);
	}
	FILE *f = fopen(tmp_path, "wb");
	if (!f)
		return NULL;
	size_t n = fwrite(data, 1, size, f);
	fclose(f);
	return n == size ? tmp_path : NULL;
}

/* A failed read must leave a message naming the file. */
static void check_msg(enum qt_status st, const char *path)
{
	if (st != QT_OK && !strstr(qt_error_msg(), path))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = write_tmp(data, size);
	if (!path)
		return 0;
	struct qt_idx_reader *r = NULL;
	enum qt_status st = qt_idx_open(path, &r);
	if (st != QT_OK) {
		if (r || !strstr(qt_error_msg(), path))
			abort();
		return 0;
	}
	const struct qt_idx_info *info = qt_idx_reader_info(r);
	if (info->rank < 1 || info->rank > QT_IDX_MAX_RANK || info->item_bytes == 0 || info->dims[0] < 0 ||
	    info->data_offset != 4 + 4 * (uint64_t)info->rank)
		abort();
	int64_t n = info->dims[0];
	if (n == 0 || info->item_bytes > MAX_READ) {
		qt_idx_close(r);
		return 0;
	}
	int64_t k = (int64_t)(MAX_READ / info->item_bytes);
	if (k > n)
		k = n;
	if (k > 64)
		k = 64;
	size_t bytes = (size_t)k * info->item_bytes;
	uint8_t *a = malloc(bytes), *b = malloc(bytes);
	if (!a || !b)
		abort();
	enum qt_status first = qt_idx_read(r, 0, k, a);
	check_msg(first, path);
	st = qt_idx_read(r, n - 1, 1, b);
	check_msg(st, path);
	/* Going back must give the same bytes (a gzip stream is decoded again from the start). */
	if (first == QT_OK) {
		st = qt_idx_read(r, 0, k, b);
		check_msg(st, path);
		if (st == QT_OK && memcmp(a, b, bytes) != 0)
			abort();
	}
	if (qt_idx_read(r, n, 1, b) != QT_E_INVALID_ARG)
		abort();
	free(a);
	free(b);
	qt_idx_close(r);
	return 0;
}
