/*
 * libFuzzer target for the sensitivity-file reader (lib/quant/sensfile.c):
 * any bytes must give either a refusal whose message names the input, or a
 * record whose every cost is finite and >= 0 and every byte count >= 0, with
 * one entry per (layer, setting), that writes back as JSON the reader
 * accepts again with the same content.
 * Corpus: tests/fuzz/corpus/sens/ (replayed by `make test`).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qtool/bitalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qt_sens s, r;
	if (qt_sens_read_mem(data, size, "fuzz", &s) != QT_OK) {
		if (s.n_layers || strncmp(qt_error_msg(), "fuzz: ", 6) != 0)
			abort();
		return 0;
	}
	if (s.n_layers < 1 || s.n_settings < 1)
		abort();
	for (size_t i = 0; i < (size_t)s.n_layers * s.n_settings; i++)
		if (!isfinite(s.cost[i]) || s.cost[i] < 0 || s.bytes[i] < 0)
			abort();
	char *json = NULL;
	if (qt_sens_to_json(&s, "m", &json) != QT_OK || qt_sens_read_mem(json, strlen(json), "again", &r) != QT_OK)
		abort();
	if (r.n_layers != s.n_layers || r.n_settings != s.n_settings)
		abort();
	for (size_t i = 0; i < (size_t)s.n_layers * s.n_settings; i++)
		if (r.cost[i] != s.cost[i] || r.bytes[i] != s.bytes[i])
			abort();
	for (int l = 0; l < s.n_layers; l++)
		if (strcmp(r.names[l], s.names[l]))
			abort();
	free(json);
	qt_sens_free(&s);
	qt_sens_free(&r);
	return 0;
}
