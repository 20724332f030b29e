/*
 * libFuzzer target for the calibration-file reader (calib/calib_file.c):
 * any bytes must give either a refusal whose message names the input, or a
 * table that is internally consistent, whose every range is valid
 * (lo <= 0 <= hi, hi > lo, finite) for every method at 8 and 4 bits, and
 * that writes back as JSON the reader accepts again with the same content.
 * A crash input is kept in tests/regress/fuzz_calib/.
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
	/* Written back, it reads again with the same content. (The histogram
	 * bounds are re-derived from lo, hi and bins in double, so the width may
	 * move by an ulp for bounds the writer would not have produced.) */
	char *json = NULL;
	struct qt_calib_table *t2 = NULL;
	if (qt_calib_to_json(t, &json) != QT_OK || qt_calib_read_mem(json, strlen(json), "fuzz2", NULL, &t2) != QT_OK)
		abort();
	if (t2->n_tensors != t->n_tensors || t2->bits != t->bits || t2->percentile != t->percentile ||
	    t2->samples != t->samples || t2->default_method != t->default_method ||
	    strcmp(t2->model_sha256, t->model_sha256) != 0 || strcmp(t2->model, t->model) != 0)
		abort();
	for (int i = 0; i < t->n_tensors; i++) {
		const struct qt_calib_entry *a = &t->tensors[i], *b = &t2->tensors[i];
		const struct qt_calib_hist *ha = &a->hist, *hb = &b->hist;
		if (strcmp(a->name, b->name) != 0 || ha->min != hb->min || ha->max != hb->max ||
		    ha->count != hb->count || ha->zeros != hb->zeros || ha->n_bins != hb->n_bins ||
		    ha->zero_bin != hb->zero_bin || fabs(ha->width - hb->width) > 1e-12 * ha->width ||
		    memcmp(ha->counts, hb->counts, (size_t)ha->n_bins * sizeof *ha->counts) != 0 ||
		    memcmp(a->has_range, b->has_range, sizeof a->has_range) != 0)
			abort();
		for (int m = 0; m < QT_CALIB_N_METHODS; m++)
			if (a->has_range[m] && (a->range[m][0] != b->range[m][0] || a->range[m][1] != b->range[m][1]))
				abort();
	}
	free(json);
	qt_calib_table_free(t2);
	qt_calib_table_free(t);
	return 0;
}
