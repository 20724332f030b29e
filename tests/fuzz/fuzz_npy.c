/*
 * libFuzzer target for the .npy readers: any bytes must either load into a
 * tensor whose size matches its dtype and shape or be refused with a message
 * starting with the file label, never crash, leak or read out of bounds.
 * Both paths are driven: the memory reader (qt_npy_read_mem) and the
 * streaming file reader (qt_npy_open + qt_npy_read_rows, via a temporary
 * file rewritten for each input), and the two must agree.
 * Corpus: tests/fuzz/corpus/npy/ (replayed by `make test`).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qtool/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char tmp_path[64];

static void remove_tmp(void)
{
	if (tmp_path[0])
		unlink(tmp_path);
}

/* The temporary file holding the current input; NULL if it cannot be written. */
static const char *write_tmp(const uint8_t *data, size_t size)
{
	if (!tmp_path[0]) {
		snprintf(tmp_path, sizeof tmp_path, "/tmp/qt_fuzz_npy_XXXXXX");
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

static void check_tensor(const struct qt_tensor *t)
{
	if (t->rank < 0 || t->rank > QT_MAX_RANK || t->nbytes != qt_dtype_nbytes(t->dtype, qt_tensor_numel(t)))
		abort();
	/* Touch every byte so a short buffer shows up under ASan. */
	volatile uint8_t acc = 0;
	for (size_t i = 0; i < t->nbytes; i++)
		acc ^= ((const uint8_t *)t->data)[i];
	(void)acc;
	qt_tensor_check_finite(t, "fuzz.npy");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qt_tensor t = {0};
	enum qt_status mem = qt_npy_read_mem(data, size, "fuzz.npy", &t);
	if (mem != QT_OK) {
		if (t.data || strncmp(qt_error_msg(), "fuzz.npy: ", 10) != 0)
			abort();
	} else {
		check_tensor(&t);
	}

	const char *path = write_tmp(data, size);
	if (!path) {
		qt_tensor_free(&t);
		return 0;
	}
	struct qt_npy_reader *r = NULL;
	enum qt_status st = qt_npy_open(path, &r);
	/* The file reader accepts exactly what the memory reader accepts. */
	if ((st == QT_OK) != (mem == QT_OK))
		abort();
	if (st != QT_OK) {
		if (r || strncmp(qt_error_msg(), path, strlen(path)) != 0)
			abort();
		qt_tensor_free(&t);
		return 0;
	}
	const struct qt_npy_info *info = qt_npy_reader_info(r);
	if (info->rank != t.rank || info->dtype != t.dtype || info->data_bytes != t.nbytes)
		abort();
	if (info->rank > 0 && info->dims[0] > 0) {
		/* Rows: the last one, then the first three, compared with the whole read. */
		struct qt_tensor rows = {0};
		int64_t n = info->dims[0];
		size_t row = n ? (size_t)(info->data_bytes / (uint64_t)n) : 0;
		if (qt_npy_read_rows(r, n - 1, 1, &rows) != QT_OK)
			abort();
		check_tensor(&rows);
		if (row && memcmp(rows.data, (const uint8_t *)t.data + (size_t)(n - 1) * row, row) != 0)
			abort();
		int64_t k = n < 3 ? n : 3;
		if (qt_npy_read_rows(r, 0, k, &rows) != QT_OK)
			abort();
		if (rows.nbytes && memcmp(rows.data, t.data, rows.nbytes) != 0)
			abort();
		if (qt_npy_read_rows(r, n, 1, &rows) != QT_E_INVALID_ARG)
			abort();
		qt_tensor_free(&rows);
	}
	qt_npy_close(r);
	qt_tensor_free(&t);
	return 0;
}
