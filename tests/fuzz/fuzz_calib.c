/*
 * libFuzzer target for the calibration-file reader (calib/calib_file.c):
 * any bytes must give either a refusal whose message names the input, or a
 * table that is internally consistent, whose every range is valid
 * (lo <= 0 <= hi, hi > lo, finite) for every method at 8 and 4 bits, and
 * that writes back as JSON the reader accepts again with the same content.
 * Corpus: tests/fuzz/corpus/calib/ (replayed by `make test`).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qtool/calib.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Range computations cost O(bins) to O(2048 * levels) each: check a few tensors. */
#define MAX_CHECKED 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qt_calib_table *t = NULL;
	if (qt_calib_read_mem(data, size, "fuzz", NULL, &t) != QT_OK) {
		if (t || strncmp(qt_error_msg(), "fuzz: ", 6) != 0)
			abort();
		return 0;
	}
	if (!t || t->n_tensors < 0 || t->bits < QT_CALIB_MIN_RANGE_BITS || t->bits > QT_CALIB_MAX_RANGE_BITS)
		abort();
	for (int i = 0; i < t->n_tensors; i++) {
		const struct qt_calib_entry *e = &t->tensors[i];
		if (qt_calib_hist_check(&e->hist, "fuzz") != QT_OK || qt_calib_find(t, e->name) == NULL)
			abort();
		if (i >= MAX_CHECKED)
			continue;
		for (int m = 0; m < QT_CALIB_N_METHODS; m++)
			for (int bits = 8; bits >= 4; bits -= 4) {
				float lo, hi;
				if (qt_calib_range(t, e->name, qt_calib_method_name((enum qt_calib_method)m), bits, &lo,
						   &hi) != QT_OK)
					abort();
				if (!(isfinite(lo) && isfinite(hi) && lo <= 0 && hi >= 0 && hi > lo))
					abort();
			}
	}
	char *json = NULL, *again = NULL;
	struct qt_calib_table *t2 = NULL;
	if (qt_calib_to_json(t, &json) != QT_OK || qt_calib_read_mem(json, strlen(json), "fuzz2", NULL, &t2) != QT_OK)
		abort();
	if (t2->n_tensors != t->n_tensors || qt_calib_to_json(t2, &again) != QT_OK || strcmp(json, again) != 0)
		abort();
	free(json);
	free(again);
	qt_calib_table_free(t2);
	qt_calib_table_free(t);
	return 0;
}
