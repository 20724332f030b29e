/*
 * Quantization stage: parameters and rounding, BatchNormalization folding,
 * .qmod round trips and damage detection, and integer runtime vs float
 * simulation on small graphs built here. Fixed seeds, printed on failure.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "qtool/calib.h"
#include "qtool/qmod.h"
#include "qtool/quant.h"
#include "qtool/rt.h"
#include "../../lib/rt/qmodel_int.h"
#include "testgraph.h"

/* Quantize-dequantize error: max <= scale/2, median and mean near 0 (no bias). */
Test(quant, asym_roundtrip_error_bounds)
{
	for (int seed = 1; seed <= 5; seed++) {
		rng_seed((uint64_t)seed);
		float lo = (float)(-urand() * 3), hi = (float)(urand() * 5 + 0.1);
		float s;
		int32_t z;
		cr_assert_eq(qt_qparams_asym(lo, hi, 8, &s, &z), QT_OK);
		int n = 20001;
		double *err = malloc(sizeof(double) * (size_t)n), sum = 0, mx = 0;
		for (int i = 0; i < n; i++) {
			float x = lo + (hi - lo) * (float)urand();
			float d = s * (float)(qt_quantize_one(x, s, z, 0, 255) - z);
			err[i] = (double)d - x;
			sum += err[i];
			mx = fmax(mx, fabs(err[i]));
		}
		qsort(err, (size_t)n, sizeof *err, cmp_d);
		cr_assert(mx <= s * 0.5 + 1e-6, "seed %d: max error %g > scale/2 %g", seed, mx, s * 0.5);
		cr_assert(fabs(err[n / 2]) < s * 0.05, "seed %d: median error %g", seed, err[n / 2]);
		cr_assert(fabs(sum / n) < s * 0.02, "seed %d: mean signed error %g (biased)", seed, sum / n);
		free(err);
	}
}

Test(quant, zero_is_exact_and_zero_range)
{
	float s;
	int32_t z;
	cr_assert_eq(qt_qparams_asym(0.5f, 3.0f, 8, &s, &z), QT_OK); /* widened to include 0 */
	cr_assert_eq(z, 0);
	cr_assert_eq(s * (float)(qt_quantize_one(0.0f, s, z, 0, 255) - z), 0.0f);
	cr_assert_eq(qt_qparams_asym(-2.0f, 1.0f, 8, &s, &z), QT_OK);
	cr_assert_eq(s * (float)(qt_quantize_one(0.0f, s, z, 0, 255) - z), 0.0f, "real 0 must be a code");
	/* Constant zero tensor: a valid scale, and 0 maps to 0. */
	cr_assert_eq(qt_qparams_asym(0.0f, 0.0f, 8, &s, &z), QT_OK);
	cr_assert(s > 0 && isfinite(s));
	cr_assert_eq(qt_quantize_one(0.0f, s, z, 0, 255), z);
	/* Bad ranges. */
	cr_assert_eq(qt_qparams_asym(NAN, 1.0f, 8, &s, &z), QT_E_NUMERIC);
	cr_assert_eq(qt_qparams_asym(2.0f, 1.0f, 8, &s, &z), QT_E_NUMERIC);
	/* Saturation and NaN go to the ends, never wrap. */
	cr_assert_eq(qt_quantize_one(1e30f, 0.01f, 3, 0, 255), 255);
	cr_assert_eq(qt_quantize_one(-1e30f, 0.01f, 3, 0, 255), 0);
	cr_assert_eq(qt_quantize_one(NAN, 0.01f, 3, 0, 255), 0);
}

/* The textbook formula qt_quantize_one must equal (it avoids libm's
 * nearbyintf so loops vectorize; see qparams.c). */
static int32_t quantize_reference(float x, float scale, int32_t zp, int32_t qmin, int32_t qmax)
{
	if (isnan(x / scale))
		return qmin;
	double r = nearbyint((double)(x / scale)) + zp; /* x / scale rounded to float first, as the code does */
	return r < qmin ? qmin : r > qmax ? qmax : (int32_t)r;
}

Test(quant, quantize_one_matches_the_formula)
{
	static const int32_t ranges[][3] = {{0, 255, 0}, {0, 255, 128}, {0, 255, 255}, {0, 255, 37}, {0, 15, 3},
					    {-127, 127, 0}, {-7, 7, 0}, {-1, 1, 0}};
	static const float scales[] = {1.0f, 0.5f, 0.0123f, 3.7e-5f, 250.0f};
	const float special[] = {0.0f, -0.0f, NAN, INFINITY, -INFINITY, 3.4e38f, -3.4e38f, 1e-40f, -1e-40f};
	rng_seed(2024);
	for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++)
		for (size_t k = 0; k < sizeof scales / sizeof scales[0]; k++) {
			int32_t qmin = ranges[r][0], qmax = ranges[r][1], zp = ranges[r][2];
			float s = scales[k];
			enum { N = 20000 };
			static float xs[N];
			static uint8_t batch[N];
			for (int i = 0; i < N; i++) {
				double code = (urand() * 1.4 - 0.2) * (qmax - qmin) + qmin - zp;
				if (i % 4 == 0)
					code = floor(code) + 0.5; /* ties */
				else if (i % 4 == 1)
					code = floor(code); /* exact codes */
				xs[i] = i < (int)(sizeof special / sizeof special[0]) ? special[i] : (float)(code * s);
			}
			for (int i = 0; i < N; i++) {
				int32_t want = quantize_reference(xs[i], s, zp, qmin, qmax);
				int32_t got = qt_quantize_one(xs[i], s, zp, qmin, qmax);
				cr_assert_eq(got, want, "x=%a scale=%a zp=%d [%d,%d]: %d, formula %d", (double)xs[i], (double)s,
					     zp, qmin, qmax, got, want);
			}
			if (qmin >= 0) {
				qt_quantize_u8(xs, N, s, zp, qmin, qmax, batch);
				for (int i = 0; i < N; i++)
					cr_assert_eq(batch[i], qt_quantize_one(xs[i], s, zp, qmin, qmax), "batch element %d", i);
			}
		}
}

Test(quant, parse_bits)
{
	int w, a;
	cr_assert_eq(qt_parse_bits("w8a8", &w, &a), 0);
	cr_assert(w == 8 && a == 8);
	cr_assert_eq(qt_parse_bits("w4a8", &w, &a), 0);
	cr_assert(w == 4 && a == 8);
	cr_assert_eq(qt_parse_bits("w2a4", &w, &a), 0);
	cr_assert_eq(qt_parse_bits("w3a8", &w, &a), 0);
	cr_assert(w == 3 && a == 8);
	cr_assert_eq(qt_parse_bits("w3a4", &w, &a), 0);
	cr_assert(w == 3 && a == 4);
	cr_assert_neq(qt_parse_bits("w3a9", &w, &a), 0);
	cr_assert_neq(qt_parse_bits("w5a8", &w, &a), 0);
	cr_assert_neq(qt_parse_bits("w8a8x", &w, &a), 0);
	cr_assert_neq(qt_parse_bits("w16a8", &w, &a), 0);
	cr_assert_neq(qt_parse_bits("", &w, &a), 0);
}

Test(quant, bn_folding_preserves_outputs)
{
	struct qt_graph *g = small_cnn(7);
	struct qt_tensor x = {0}, y0 = {0}, y1 = {0};
	random_input(&x, 4, 8);
	run_fp32(g, &x, &y0);
	int n;
	cr_assert_eq(qt_pass_fold_bn(g, &n), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(n, 1);
	for (int i = 0; i < g->n_nodes; i++)
		cr_assert_str_neq(g->nodes[i].op_type, "BatchNormalization");
	run_fp32(g, &x, &y1);
	/* Folding reassociates float products: relative 1e-5 of the output scale. */
	float *a = y0.data, *b = y1.data, amax = 0;
	for (int64_t i = 0; i < qt_tensor_numel(&y0); i++)
		amax = fmaxf(amax, fabsf(a[i]));
	for (int64_t i = 0; i < qt_tensor_numel(&y0); i++)
		cr_assert(fabsf(a[i] - b[i]) <= 1e-5f * amax + 1e-6f, "element %lld: %g vs %g", (long long)i, a[i], b[i]);
	qt_tensor_free(&x);
	qt_tensor_free(&y0);
	qt_tensor_free(&y1);
	qt_graph_free(g);
}

/* Calibrate the small CNN on random batches (the real observer and ranges). */
static struct qt_graph *quantized_cnn(const char *bits, enum qt_granularity gran, int group)
{
	struct qt_graph *g = small_cnn(11);
	struct qt_calib_table *t = calibrate(g);
	struct qt_quant_opts o = {.gran = gran, .group_size = group, .command_line = "test"};
	cr_assert_eq(qt_parse_bits(bits, &o.wbits, &o.abits), 0);
	cr_assert_eq(qt_quantize_graph(g, t, &o), QT_OK, "%s", qt_error_msg());
	qt_calib_table_free(t);
	return g;
}

Test(quant, quantized_graph_shape)
{
	struct qt_graph *g = quantized_cnn("w8a8", QT_GRAN_CHANNEL, 0);
	int n_rq = 0;
	for (int i = 0; i < g->n_nodes; i++) {
		cr_assert_str_neq(g->nodes[i].op_type, "BatchNormalization");
		cr_assert_str_neq(g->nodes[i].op_type, "Relu", "Relu should be fused into the Conv");
		n_rq += g->nodes[i].rq != NULL;
	}
	cr_assert_eq(n_rq, 2, "Conv and Gemm should be quantized");
	int w = qt_graph_find_value(g, "w");
	cr_assert_eq(g->values[w].init->dtype, QT_DTYPE_I8);
	cr_assert_eq(g->values[w].q->scheme, QT_QSCHEME_CHANNEL);
	cr_assert_eq(g->values[w].q->count, 4);
	qt_graph_free(g);
}

/* Writing is deterministic and the reader reproduces what was written. */
Test(quant, qmod_roundtrip_deterministic)
{
	const char *bits[] = {"w8a8", "w4a8", "w2a8", "w8a4"};
	for (int k = 0; k < 4; k++) {
		struct qt_graph *g = quantized_cnn(bits[k], k == 1 ? QT_GRAN_GROUP : QT_GRAN_CHANNEL, k == 1 ? 16 : 0);
		uint8_t *b1, *b2, *b3;
		size_t l1, l2, l3;
		cr_assert_eq(qt_qmod_serialize(g, &b1, &l1), QT_OK, "%s", qt_error_msg());
		cr_assert_eq(qt_qmod_serialize(g, &b2, &l2), QT_OK);
		cr_assert(l1 == l2 && !memcmp(b1, b2, l1), "%s: two writes differ", bits[k]);
		struct qt_graph *r;
		cr_assert_eq(qt_qmod_read_mem(b1, l1, "mem.qmod", &r), QT_OK, "%s: %s", bits[k], qt_error_msg());
		cr_assert_eq(r->n_nodes, g->n_nodes);
		cr_assert_eq(qt_qmod_serialize(r, &b3, &l3), QT_OK);
		cr_assert(l3 == l1 && !memcmp(b1, b3, l1), "%s: read then write changed the bytes", bits[k]);
		free(b1);
		free(b2);
		free(b3);
		qt_graph_free(r);
		qt_graph_free(g);
	}
}

Test(quant, qmod_damage_is_refused)
{
	struct qt_graph *g = quantized_cnn("w4a8", QT_GRAN_CHANNEL, 0);
	uint8_t *b;
	size_t l;
	cr_assert_eq(qt_qmod_serialize(g, &b, &l), QT_OK);
	/* Every truncation fails cleanly. */
	for (size_t n = 0; n < l; n += (n < 256 ? 1 : 7)) {
		struct qt_graph *r = NULL;
		enum qt_status st = qt_qmod_read_mem(b, n, "cut.qmod", &r);
		cr_assert_neq(st, QT_OK, "truncated to %zu bytes but accepted", n);
		cr_assert(r == NULL);
		cr_assert(strstr(qt_error_msg(), "cut.qmod") != NULL, "message lacks the file: %s", qt_error_msg());
	}
	/* Bit flips are caught (CRC or validation). Seeded positions. */
	rng_seed(99);
	for (int i = 0; i < 300; i++) {
		size_t pos = (size_t)(urand() * (double)l);
		int bit = (int)(urand() * 8);
		b[pos] ^= (uint8_t)(1u << bit);
		struct qt_graph *r = NULL;
		enum qt_status st = qt_qmod_read_mem(b, l, "flip.qmod", &r);
		/* A flip in alignment padding between sections is harmless by design. */
		if (st == QT_OK)
			qt_graph_free(r);
		else
			cr_assert(strstr(qt_error_msg(), "flip.qmod") != NULL, "seed 99 flip %d: %s", i, qt_error_msg());
		b[pos] ^= (uint8_t)(1u << bit);
	}
	free(b);
	qt_graph_free(g);
}

/* The section table's uncompressed-length field is not under a CRC: every
 * lie in it is refused (never trusted for an allocation or a copy). */
Test(quant, qmod_compressed_length_lies_are_refused)
{
	struct qt_graph *g = quantized_cnn("w8a8", QT_GRAN_CHANNEL, 0);
	uint8_t *b;
	size_t l;
	cr_assert_eq(qt_qmod_serialize(g, &b, &l), QT_OK);
	uint32_t ns = (uint32_t)b[12] | (uint32_t)b[13] << 8;
	int compressed = 0;
	for (uint32_t i = 0; i < ns; i++) {
		uint8_t *e = b + 64 + 32 * i;
		uint64_t raw, stored;
		memcpy(&raw, e + 24, 8);
		memcpy(&stored, e + 16, 8);
		const uint64_t lies[] = {raw + 1, raw ? raw - 1 : 1, (uint64_t)1 << 40, stored * 2000 + 65};
		for (size_t k = 0; k < sizeof lies / sizeof lies[0]; k++) {
			memcpy(e + 24, &lies[k], 8);
			struct qt_graph *r = NULL;
			enum qt_status st = qt_qmod_read_mem(b, l, "lie.qmod", &r);
			cr_assert_neq(st, QT_OK, "section %u: uncompressed length %llu (really %llu) accepted", i,
				      (unsigned long long)lies[k], (unsigned long long)raw);
			cr_assert(strstr(qt_error_msg(), "lie.qmod") != NULL, "%s", qt_error_msg());
		}
		memcpy(e + 24, &raw, 8);
		compressed += raw != 0;
	}
	cr_assert(compressed >= 5, "only %d metadata sections were stored compressed", compressed);
	struct qt_graph *r = NULL;
	cr_assert_eq(qt_qmod_read_mem(b, l, "ok.qmod", &r), QT_OK, "%s", qt_error_msg());
	qt_graph_free(r);
	free(b);
	qt_graph_free(g);
}

static void use_full_range(struct qt_graph *g);

/*
 * The fuzz seed corpus (tests/fuzz/corpus/qmod) must be files the current
 * reader accepts, or the fuzzer starts from inputs refused at the header and
 * never reaches the section parsers. QT_WRITE_FUZZ_SEEDS=1 regenerates them
 * (after a format change); every run checks them.
 */
Test(quant, qmod_fuzz_seeds_are_current)
{
	static const struct {
		const char *file, *bits;
		enum qt_granularity gran;
		int group;
		void (*mutate)(struct qt_graph *);
	} seeds[] = {{"conv_w8a8.qmod", "w8a8", QT_GRAN_CHANNEL, 0, NULL},
		     {"conv_w4_group8.qmod", "w4a8", QT_GRAN_GROUP, 8, NULL},
		     {"conv_w2a8.qmod", "w2a8", QT_GRAN_TENSOR, 0, NULL},
		     {"conv_w3_group8.qmod", "w3a8", QT_GRAN_GROUP, 8, NULL},
		     {"conv_w3_full.qmod", "w3a8", QT_GRAN_CHANNEL, 0, use_full_range}};
	const char *dir = "tests/fuzz/corpus/qmod";
	const char *regen = getenv("QT_WRITE_FUZZ_SEEDS");
	char path[512];
	for (size_t k = 0; k < sizeof seeds / sizeof seeds[0]; k++) {
		snprintf(path, sizeof path, "%s/%s", dir, seeds[k].file);
		if (regen && *regen == '1') {
			struct qt_graph *g = quantized_cnn(seeds[k].bits, seeds[k].gran, seeds[k].group);
			if (seeds[k].mutate)
				seeds[k].mutate(g);
			cr_assert_eq(qt_qmod_write(g, path), QT_OK, "%s", qt_error_msg());
			if (k == 0) {
				/* Plus a truncated copy: the reader's early exits. */
				uint8_t *b;
				size_t l;
				cr_assert_eq(qt_qmod_serialize(g, &b, &l), QT_OK);
				char tp[512];
				snprintf(tp, sizeof tp, "%s/truncated.qmod", dir);
				FILE *f = fopen(tp, "wb");
				cr_assert(f && fwrite(b, 1, l / 3, f) == l / 3);
				fclose(f);
				free(b);
			}
			qt_graph_free(g);
		}
		struct qt_graph *r = NULL;
		cr_assert_eq(qt_qmod_read(path, &r), QT_OK, "%s: %s (run with QT_WRITE_FUZZ_SEEDS=1 to regenerate)", path,
			     qt_error_msg());
		qt_graph_free(r);
	}
}

/* The integer runtime computes what the float simulation predicts: at most
 * one code apart on a few outputs, or (exact) identical. Frees g. */
static void int_vs_sim_graph(struct qt_graph *g, const char *bits, int exact)
{
	struct qt_tensor x = {0}, yi = {0}, ys = {0};
	float oscale;
	random_input(&x, 32, 555);
	int_and_sim(g, &x, &yi, &ys, &oscale);
	float *a = yi.data, *s = ys.data;
	int off = 0;
	for (int64_t i = 0; i < qt_tensor_numel(&yi); i++) {
		double codes = fabs((double)a[i] - s[i]) / oscale;
		cr_assert(codes <= (exact ? 1e-3 : 1.0 + 1e-3), "%s: element %lld differs by %.2f codes", bits,
			  (long long)i, codes);
		off += codes > 0.5;
	}
	cr_assert(off <= qt_tensor_numel(&yi) / 20, "%s: %d of %lld outputs off by one code", bits, off,
		  (long long)qt_tensor_numel(&yi));
	qt_tensor_free(&x);
	qt_tensor_free(&yi);
	qt_tensor_free(&ys);
	qt_graph_free(g);
}

static void int_vs_sim(const char *bits, enum qt_granularity gran, int group)
{
	int_vs_sim_graph(quantized_cnn(bits, gran, group), bits, 0);
}

Test(quant, integer_runtime_matches_simulation_w8a8) { int_vs_sim("w8a8", QT_GRAN_CHANNEL, 0); }
/* 3-bit weights (packed 8 per 3 bytes): the same integer path, exactly the
 * simulation's codes per channel; within a code with grouped scales (the
 * simulation recovers int64 group sums from a float sum, see fakequant.c). */
Test(quant, integer_runtime_equals_simulation_w3a8) { int_vs_sim_graph(quantized_cnn("w3a8", QT_GRAN_CHANNEL, 0), "w3a8", 1); }
Test(quant, integer_runtime_equals_simulation_w3a4) { int_vs_sim_graph(quantized_cnn("w3a4", QT_GRAN_CHANNEL, 0), "w3a4", 1); }
Test(quant, integer_runtime_matches_simulation_w3a8_group) { int_vs_sim("w3a8", QT_GRAN_GROUP, 16); }

/* Every -3 code of the 3-bit weights becomes -4: only the full range allows it. */
static void use_full_range(struct qt_graph *g)
{
	const char *names[] = {"w", "gw"};
	int changed = 0;
	for (int k = 0; k < 2; k++) {
		struct qt_value *v = &g->values[qt_graph_find_value(g, names[k])];
		cr_assert_eq(v->init->dtype, QT_DTYPE_S3);
		v->q->full_range = 1;
		for (int64_t i = 0; i < qt_tensor_numel(v->init); i++)
			if (qt_code_get(v->init, i) == -3) {
				qt_code_put(v->init, i, -4);
				changed++;
			}
	}
	cr_assert(changed > 4, "only %d codes at -3", changed);
}

/* Full-range grids ([-4, 3] at 3 bits) are recorded, read back, and run by
 * the integer runtime exactly as the simulation dequantizes them. */
Test(quant, full_range_codes_run_exactly)
{
	struct qt_graph *g = quantized_cnn("w3a8", QT_GRAN_CHANNEL, 0);
	use_full_range(g);
	uint8_t *b;
	size_t l;
	cr_assert_eq(qt_qmod_serialize(g, &b, &l), QT_OK, "%s", qt_error_msg());
	struct qt_graph *r;
	cr_assert_eq(qt_qmod_read_mem(b, l, "full.qmod", &r), QT_OK, "%s", qt_error_msg());
	free(b);
	const struct qt_value *w = &r->values[qt_graph_find_value(r, "w")];
	cr_assert(w->q->full_range, "the code range was not recorded");
	int32_t lo, hi;
	qt_qparams_code_range(w->q, &lo, &hi);
	cr_assert(lo == -4 && hi == 3, "[%d, %d]", lo, hi);
	struct qt_tensor d = {0};
	cr_assert_eq(qt_dequantize_value(w, &d), QT_OK);
	int seen = 0;
	for (int64_t i = 0; i < qt_tensor_numel(w->init); i++)
		if (qt_code_get(w->init, i) == -4) {
			int64_t c = i / (qt_tensor_numel(w->init) / w->init->dims[0]);
			cr_assert_eq(((float *)d.data)[i], -4 * w->q->scale[c]);
			seen++;
		}
	cr_assert(seen > 0);
	qt_tensor_free(&d);
	qt_graph_free(r);
	int_vs_sim_graph(g, "w3a8 full range", 1);
}

/* The same codes under the restricted range are refused at load, naming the
 * tensor, the code and the range; so is int8 -128 unless the range is full. */
Test(regress, crafted_qmod_code_outside_restricted_range)
{
	struct qt_graph *g = quantized_cnn("w3a8", QT_GRAN_CHANNEL, 0);
	use_full_range(g);
	g->values[qt_graph_find_value(g, "w")].q->full_range = 0;
	uint8_t *b;
	size_t l;
	cr_assert_eq(qt_qmod_serialize(g, &b, &l), QT_OK);
	struct qt_graph *r = NULL;
	cr_assert_eq(qt_qmod_read_mem(b, l, "r3.qmod", &r), QT_E_FORMAT);
	cr_assert(strstr(qt_error_msg(), "r3.qmod") && strstr(qt_error_msg(), "\"w\"") &&
			  strstr(qt_error_msg(), "code -4") && strstr(qt_error_msg(), "[-3, 3]"),
		  "%s", qt_error_msg());
	free(b);
	qt_graph_free(g);

	g = quantized_cnn("w8a8", QT_GRAN_CHANNEL, 0);
	struct qt_value *w = &g->values[qt_graph_find_value(g, "gw")];
	qt_code_put(w->init, 7, -128);
	cr_assert_eq(qt_qmod_serialize(g, &b, &l), QT_OK);
	cr_assert_eq(qt_qmod_read_mem(b, l, "r8.qmod", &r), QT_E_FORMAT);
	cr_assert(strstr(qt_error_msg(), "code -128 at element 7"), "%s", qt_error_msg());
	free(b);
	w->q->full_range = 1;
	cr_assert_eq(qt_qmod_serialize(g, &b, &l), QT_OK);
	cr_assert_eq(qt_qmod_read_mem(b, l, "f8.qmod", &r), QT_OK, "%s", qt_error_msg());
	free(b);
	qt_graph_free(r);
	qt_graph_free(g);
}

/* qt_code_put and qt_code_get agree for every code of every packed type, at
 * every position, without disturbing the neighbours. */
Test(quant, code_put_get_every_dtype)
{
	static const enum qt_dtype dts[] = {QT_DTYPE_I8, QT_DTYPE_U8, QT_DTYPE_S4, QT_DTYPE_U4,
					    QT_DTYPE_S3, QT_DTYPE_S2, QT_DTYPE_U2, QT_DTYPE_I32};
	for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++) {
		int bits = qt_dtype_bits(dts[k]);
		int sgn = dts[k] != QT_DTYPE_U8 && dts[k] != QT_DTYPE_U4 && dts[k] != QT_DTYPE_U2;
		int32_t lo = sgn ? -(1 << (bits > 16 ? 16 : bits - 1)) : 0, hi = sgn ? -lo - 1 : (1 << bits) - 1;
		int64_t n = 37, d[1] = {n};
		struct qt_tensor t = {0};
		cr_assert_eq(qt_tensor_alloc(&t, dts[k], 1, d), QT_OK);
		int32_t want[37];
		rng_seed(k + 1);
		for (int64_t i = 0; i < n; i++) {
			want[i] = lo + (int32_t)(urand() * (hi - lo + 1));
			qt_code_put(&t, i, want[i]);
		}
		for (int64_t i = n - 1; i >= 0; i -= 3) { /* overwrite some: old bits must be cleared */
			want[i] = i % 2 ? lo : hi;
			qt_code_put(&t, i, want[i]);
		}
		for (int64_t i = 0; i < n; i++)
			cr_assert_eq(qt_code_get(&t, i), want[i], "%s element %lld", qt_dtype_name(dts[k]), (long long)i);
		qt_tensor_free(&t);
	}
}

/* Two-level group scales: a channel's largest scale is kept exactly, every
 * other one moves by at most half a step of S / 256, and each decodes from
 * one byte; encode(decode(b)) == b for every byte. */
Test(quant, group_scale_rounding)
{
	rng_seed(77);
	for (int t = 0; t < 200; t++) {
		float s[40], r[40];
		int ng = 1 + t % 40;
		for (int j = 0; j < ng; j++)
			s[j] = r[j] = (float)(exp(nrand() * 2) * 1e-3);
		qt_wscale_round_groups(r, ng);
		float S = 0;
		for (int j = 0; j < ng; j++)
			S = fmaxf(S, s[j]);
		for (int j = 0; j < ng; j++) {
			cr_assert(r[j] > 0);
			if (s[j] == S)
				cr_assert_eq(r[j], S);
			if (s[j] >= S / 512)
				cr_assert(fabs((double)r[j] - s[j]) <= S / 512.0 * (1 + 1e-6), "trial %d: %g -> %g (S %g)", t,
					  s[j], r[j], S);
			int b = qt_wscale_group_encode(r[j], S);
			cr_assert(b >= 0 && qt_wscale_group_decode(S, b) == r[j]);
		}
		for (int b = 0; b < 256; b++)
			cr_assert_eq(qt_wscale_group_encode(qt_wscale_group_decode(S, b), S), b);
	}
	cr_assert_eq(qt_wscale_group_encode(1.5f, 1.0f), -1, "a scale above S is not storable");
}

/* Grouped weights are stored as an f32 per channel plus a byte per group and
 * no zero points: 8 / G + 32 / K bits per weight for scales (v2 stored 64 / G),
 * and the reader gives back exactly the scales the codes were computed with. */
Test(quant, grouped_weights_store_two_level_scales)
{
	struct qt_graph *g = quantized_cnn("w4a8", QT_GRAN_GROUP, 16);
	const struct qt_value *w = &g->values[qt_graph_find_value(g, "gw")];
	cr_assert_eq(w->q->scale_enc, QT_SCALE_ROW_U8);
	int64_t C = w->init->dims[0], K = w->init->dims[1];
	cr_assert_eq(qt_qmod_qparams_bytes(w->q, C), 4 * C + C * (K / 16));
	double bpw = 8.0 * (double)qt_qmod_qparams_bytes(w->q, C) / (double)(C * K);
	cr_assert(bpw <= 8.0 / 16 + 32.0 / K + 1e-9, "%.3f scale bits per weight", bpw);
	uint8_t *b;
	size_t l;
	cr_assert_eq(qt_qmod_serialize(g, &b, &l), QT_OK, "%s", qt_error_msg());
	struct qt_graph *r;
	cr_assert_eq(qt_qmod_read_mem(b, l, "g.qmod", &r), QT_OK, "%s", qt_error_msg());
	const struct qt_value *rw = &r->values[qt_graph_find_value(r, "gw")];
	cr_assert_eq(rw->q->scale_enc, QT_SCALE_ROW_U8);
	cr_assert(!memcmp(rw->q->scale, w->q->scale, (size_t)w->q->count * 4), "scales changed on the way");
	for (int64_t k = 0; k < rw->q->count; k++)
		cr_assert_eq(rw->q->zero_point[k], 0);
	/* A scale that is not storable is the quantizer's bug: the writer says so. */
	w->q->scale[3] *= 1.001f; /* between two storable values (their spacing is S / 256) */
	uint8_t *b2;
	size_t l2;
	cr_assert_eq(qt_qmod_serialize(g, &b2, &l2), QT_E_INVALID_ARG);
	cr_assert(strstr(qt_error_msg(), "\"gw\"") && strstr(qt_error_msg(), "qt_wscale_storable"), "%s",
		  qt_error_msg());
	free(b);
	qt_graph_free(r);
	qt_graph_free(g);
}
/* A tiny im2col budget: the convs run in chunks of a few output pixels
 * (channels-last path, and the grouped-scale path). */
Test(quant, integer_conv_in_chunks_matches_simulation)
{
	qt_qrt_col_budget = 64;
	int_vs_sim("w8a8", QT_GRAN_CHANNEL, 0);
	int_vs_sim("w4a8", QT_GRAN_GROUP, 16);
	qt_qrt_col_budget = (int64_t)16 << 20;
}
Test(quant, integer_runtime_matches_simulation_w4a8_tensor) { int_vs_sim("w4a8", QT_GRAN_TENSOR, 0); }
Test(quant, integer_runtime_matches_simulation_w4a8_group) { int_vs_sim("w4a8", QT_GRAN_GROUP, 16); }
Test(quant, integer_runtime_matches_simulation_w2a8) { int_vs_sim("w2a8", QT_GRAN_CHANNEL, 0); }
Test(quant, integer_runtime_matches_simulation_w8a4) { int_vs_sim("w8a4", QT_GRAN_CHANNEL, 0); }

/* Quantization costs a little accuracy, not everything: W8A8 SQNR vs FP32. */
Test(quant, w8a8_close_to_fp32)
{
	struct qt_graph *f = small_cnn(11);
	struct qt_graph *g = quantized_cnn("w8a8", QT_GRAN_CHANNEL, 0);
	struct qt_qrt *q;
	cr_assert_eq(qt_qrt_new(g, &q), QT_OK, "%s", qt_error_msg());
	struct qt_tensor x = {0}, yf = {0}, yq = {0};
	random_input(&x, 32, 777);
	run_fp32(f, &x, &yf);
	cr_assert_eq(qt_qrt_run(q, &x, &yq), QT_OK);
	double sig = 0, noise = 0;
	float *a = yf.data, *b = yq.data;
	for (int64_t i = 0; i < qt_tensor_numel(&yf); i++) {
		sig += (double)a[i] * a[i];
		noise += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
	}
	double sqnr = 10 * log10(sig / noise);
	cr_assert(sqnr > 25, "W8A8 SQNR %.1f dB", sqnr);
	qt_tensor_free(&x);
	qt_tensor_free(&yf);
	qt_tensor_free(&yq);
	qt_qrt_free(q);
	qt_graph_free(g);
	qt_graph_free(f);
}

/* ---- regressions from review: each named after what broke ---- */

/* x[N,C,6,6] -> Conv(w[M, C/group, 3, 3], group, pads 1, strides stride) -> Relu -> y. */
static struct qt_graph *grouped_conv_strided(int C, int M, int group, int stride, uint64_t seed)
{
	struct qt_graph *g;
	cr_assert_eq(qt_graph_new(&g), QT_OK);
	g->opset = 13;
	rng_seed(seed);
	int cg = C / group;
	int vw = add_random(g, "w", 4, (int64_t[]){M, cg, 3, 3}, 0.4f);
	int vb = add_random(g, "b", 1, (int64_t[]){M}, 0.1f);
	int x = add_input_nchw(g, C, 6, 6);
	int c = qt_graph_value(g, "conv"), y = qt_graph_value(g, "y");
	g->values[y].is_output = 1;
	int n0 = qt_graph_add_node(g, "Conv", "", "conv");
	node_io(g, n0, 3, (int[]){x, vw, vb}, 1, &c);
	node_ints(g, n0, "pads", 4, (int64_t[]){1, 1, 1, 1});
	struct qt_node *nd = &g->nodes[n0];
	struct qt_attr *a = qt_graph_alloc(g, sizeof *a * 2);
	memcpy(a, nd->attrs, sizeof *a);
	a[1].name = "group";
	a[1].type = QT_ATTR_INT;
	a[1].i = group;
	nd->attrs = a;
	nd->n_attrs = 2;
	if (stride != 1) {
		struct qt_attr *a3 = qt_graph_alloc(g, sizeof *a3 * 3);
		int64_t *sv = qt_graph_alloc(g, 2 * sizeof *sv);
		sv[0] = sv[1] = stride;
		memcpy(a3, a, 2 * sizeof *a3);
		a3[2] = a3[0]; /* an ints attribute like pads */
		a3[2].name = "strides";
		a3[2].ints = sv;
		a3[2].n = 2;
		nd->attrs = a3;
		nd->n_attrs = 3;
	}
	int n1 = qt_graph_add_node(g, "Relu", "", "relu");
	node_io(g, n1, 1, &c, 1, &y);
	return finish_graph(g, x, y);
}

static void random_nchw(struct qt_tensor *x, int n, int c, uint64_t seed)
{
	rng_seed(seed);
	int64_t d[4] = {n, c, 6, 6};
	cr_assert_eq(qt_tensor_alloc(x, QT_DTYPE_F32, 4, d), QT_OK);
	for (int64_t i = 0; i < qt_tensor_numel(x); i++)
		((float *)x->data)[i] = (float)nrand();
}

static struct qt_graph *quantize_small(struct qt_graph *g, int C, const char *bits, int group_size)
{
	struct qt_calib *c;
	cr_assert_eq(qt_calib_new(g, NULL, &c), QT_OK);
	struct qt_rt *rt;
	cr_assert_eq(qt_rt_new(g, &rt), QT_OK, "%s", qt_error_msg());
	qt_rt_set_observer(rt, qt_calib_observer, c);
	struct qt_tensor x = {0}, y = {0};
	random_nchw(&x, 16, C, 3);
	cr_assert_eq(qt_rt_run(rt, &x, &y), QT_OK, "%s", qt_error_msg());
	qt_tensor_free(&x);
	qt_tensor_free(&y);
	qt_rt_free(rt);
	struct qt_calib_table *t;
	struct qt_calib_meta meta = {0};
	cr_assert_eq(qt_calib_finish(c, &meta, &t), QT_OK);
	qt_calib_free(c);
	struct qt_quant_opts o = {.gran = group_size ? QT_GRAN_GROUP : QT_GRAN_CHANNEL, .group_size = group_size};
	cr_assert_eq(qt_parse_bits(bits, &o.wbits, &o.abits), 0);
	cr_assert_eq(qt_quantize_graph(g, t, &o), QT_OK, "%s", qt_error_msg());
	qt_calib_table_free(t);
	return g;
}

static struct qt_graph *grouped_conv(int C, int M, int group, uint64_t seed)
{
	return grouped_conv_strided(C, M, group, 1, seed);
}

/* Integer output vs float simulation, in output codes (max). */
static double int_sim_codes(struct qt_graph *g, int C)
{
	struct qt_tensor x = {0}, yi = {0}, ys = {0};
	float s;
	random_nchw(&x, 3, C, 42);
	int_and_sim(g, &x, &yi, &ys, &s);
	double worst = 0;
	for (int64_t i = 0; i < qt_tensor_numel(&yi); i++)
		worst = fmax(worst, fabs((double)((float *)yi.data)[i] - ((float *)ys.data)[i]) / s);
	qt_tensor_free(&x);
	qt_tensor_free(&yi);
	qt_tensor_free(&ys);
	return worst;
}

Test(regress, grouped_conv_is_not_depthwise)
{
	/* group 2 with 2 input channels per group once took the depthwise path. */
	struct qt_graph *g = quantize_small(grouped_conv(4, 2, 2, 5), 4, "w8a8", 0);
	double c = int_sim_codes(g, 4);
	cr_assert(c <= 1.0 + 1e-3, "grouped conv: %.2f codes from the simulation", c);
	qt_graph_free(g);
}

Test(regress, depthwise_conv_matches_simulation)
{
	struct qt_graph *g = quantize_small(grouped_conv(4, 4, 4, 6), 4, "w8a8", 0);
	double c = int_sim_codes(g, 4);
	cr_assert(c <= 1.0 + 1e-3, "depthwise conv: %.2f codes", c);
	qt_graph_free(g);
}

Test(regress, strided_depthwise_conv_matches_simulation)
{
	/* the 3x3 stride-2 depthwise loop sums its nine taps per pixel in registers */
	struct qt_graph *g = quantize_small(grouped_conv_strided(4, 4, 4, 2, 6), 4, "w8a8", 0);
	double c = int_sim_codes(g, 4);
	cr_assert(c <= 1.0 + 1e-3, "stride-2 depthwise conv: %.2f codes", c);
	qt_graph_free(g);
}

Test(regress, group_size_on_grouped_conv_still_runs)
{
	/* --group-size on a depthwise conv once wrote a model the runtime refused. */
	struct qt_graph *g = quantize_small(grouped_conv(4, 4, 4, 7), 4, "w4a8", 8);
	double c = int_sim_codes(g, 4);
	cr_assert(c <= 1.0 + 1e-3, "%.2f codes", c);
	qt_graph_free(g);
}

/* Serialize g after `mutate` and expect the reader or the runtime to refuse it cleanly. */
static void expect_refused(struct qt_graph *g, void (*mutate)(struct qt_graph *), const char *what)
{
	mutate(g);
	uint8_t *b;
	size_t l;
	cr_assert_eq(qt_qmod_serialize(g, &b, &l), QT_OK);
	struct qt_graph *r = NULL;
	enum qt_status st = qt_qmod_read_mem(b, l, "crafted.qmod", &r);
	free(b);
	if (st == QT_OK) {
		struct qt_qrt *q = NULL;
		st = qt_qrt_new(r, &q);
		qt_qrt_free(q);
		qt_graph_free(r);
	}
	cr_assert_neq(st, QT_OK, "%s was accepted", what);
	cr_assert(qt_error_msg()[0], "%s: no message", what);
	qt_graph_free(g);
}

static void set_int_attr(struct qt_graph *g, const char *op, const char *name, int64_t v)
{
	for (int i = 0; i < g->n_nodes; i++)
		if (!strcmp(g->nodes[i].op_type, op))
			for (int k = 0; k < g->nodes[i].n_attrs; k++)
				if (!strcmp(g->nodes[i].attrs[k].name, name)) {
					if (g->nodes[i].attrs[k].type == QT_ATTR_INT)
						g->nodes[i].attrs[k].i = v;
					else
						for (int j = 0; j < g->nodes[i].attrs[k].n; j++)
							g->nodes[i].attrs[k].ints[j] = v;
				}
}

static void group_zero(struct qt_graph *g) { set_int_attr(g, "Conv", "group", 0); }
static void pads_negative(struct qt_graph *g) { set_int_attr(g, "Conv", "pads", -5); }
static void weight_zero_point(struct qt_graph *g)
{
	g->values[qt_graph_find_value(g, "w")].q->zero_point[0] = 50;
}
static void input_flag_without_graph_entry(struct qt_graph *g)
{
	g->values[qt_graph_find_value(g, "w")].is_input = 1;
}

Test(regress, crafted_qmod_group_zero) { expect_refused(quantize_small(grouped_conv(4, 4, 2, 8), 4, "w8a8", 0), group_zero, "group=0"); }
Test(regress, crafted_qmod_negative_pads) { expect_refused(quantize_small(grouped_conv(4, 4, 2, 8), 4, "w8a8", 0), pads_negative, "pads=-5"); }
Test(regress, crafted_qmod_weight_zero_point) { expect_refused(quantize_small(grouped_conv(4, 4, 1, 8), 4, "w8a8", 0), weight_zero_point, "weight zero point 50"); }
Test(regress, crafted_qmod_input_flag) { expect_refused(quantize_small(grouped_conv(4, 4, 1, 8), 4, "w8a8", 0), input_flag_without_graph_entry, "stray input flag"); }

/* BN folding once scaled the weight, then gave up on a shared beta, leaving
 * BN applied twice; and wrote into a conv bias shared with another node. */
Test(regress, bn_fold_with_shared_parameters)
{
	struct qt_graph *g = small_cnn(21);
	/* Give the conv bias "b" and the BN's beta "bn_b" a second consumer each,
	 * as deduplicated initializers do in real exports. */
	int b = qt_graph_find_value(g, "b"), bb = qt_graph_find_value(g, "bn_b");
	int extra_out = qt_graph_value(g, "extra"), extra_out2 = qt_graph_value(g, "extra2");
	int ni = qt_graph_add_node(g, "Identity", "", "keep_b");
	node_io(g, ni, 1, &b, 1, &extra_out);
	int nj = qt_graph_add_node(g, "Identity", "", "keep_bb");
	node_io(g, nj, 1, &bb, 1, &extra_out2);
	g->outputs = qt_graph_alloc(g, sizeof(int) * 3);
	g->outputs[0] = qt_graph_find_value(g, "y");
	g->outputs[1] = extra_out;
	g->outputs[2] = extra_out2;
	g->values[extra_out].is_output = g->values[extra_out2].is_output = 1;
	g->n_outputs = 3;
	cr_assert_eq(qt_graph_finalize(g), QT_OK, "%s", qt_error_msg());
	struct qt_tensor x = {0}, y0[3] = {{0}}, y1[3] = {{0}};
	random_input(&x, 2, 9);
	struct qt_rt *rt;
	cr_assert_eq(qt_rt_new(g, &rt), QT_OK);
	cr_assert_eq(qt_rt_run(rt, &x, y0), QT_OK);
	qt_rt_free(rt);
	int n;
	cr_assert_eq(qt_pass_fold_bn(g, &n), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_rt_new(g, &rt), QT_OK);
	cr_assert_eq(qt_rt_run(rt, &x, y1), QT_OK);
	qt_rt_free(rt);
	for (int k = 0; k < 3; k++) {
		float *a = y0[k].data, *c = y1[k].data, amax = 0;
		for (int64_t i = 0; i < qt_tensor_numel(&y0[k]); i++)
			amax = fmaxf(amax, fabsf(a[i]));
		for (int64_t i = 0; i < qt_tensor_numel(&y0[k]); i++)
			cr_assert(fabsf(a[i] - c[i]) <= 1e-5f * amax + 1e-6f, "output %d element %lld: %g vs %g", k,
				  (long long)i, a[i], c[i]);
		qt_tensor_free(&y0[k]);
		qt_tensor_free(&y1[k]);
	}
	qt_tensor_free(&x);
	qt_graph_free(g);
}

/*
 * x[N,C,6,6] -> ConvTranspose(w[C, M, 3, 3] + b, strides 2, pads 1,
 * output_padding 1, dilation `dil`) -> Relu -> y: quantized, the transposed
 * conv runs on integers (with the Relu fused) and matches the simulation.
 */
static struct qt_graph *conv_transpose_graph(int C, int M, int dil, uint64_t seed)
{
	struct qt_graph *g;
	cr_assert_eq(qt_graph_new(&g), QT_OK);
	g->opset = 13;
	rng_seed(seed);
	int vw = add_random(g, "w", 4, (int64_t[]){C, M, 3, 3}, 0.4f);
	int vb = add_random(g, "b", 1, (int64_t[]){M}, 0.2f);
	int x = add_input_nchw(g, C, 6, 6);
	int c = qt_graph_value(g, "convt"), y = qt_graph_value(g, "y");
	g->values[y].is_output = 1;
	int n0 = qt_graph_add_node(g, "ConvTranspose", "", "convt");
	node_io(g, n0, 3, (int[]){x, vw, vb}, 1, &c);
	node_ints(g, n0, "strides", 2, (int64_t[]){2, 2});
	node_ints(g, n0, "pads", 4, (int64_t[]){1, 1, 1, 1});
	node_ints(g, n0, "output_padding", 2, (int64_t[]){1, 1});
	node_ints(g, n0, "dilations", 2, (int64_t[]){dil, dil});
	int n1 = qt_graph_add_node(g, "Relu", "", "relu");
	node_io(g, n1, 1, &c, 1, &y);
	return finish_graph(g, x, y);
}

static void conv_transpose_case(const char *bits, int dil, int group_size)
{
	struct qt_graph *g = quantize_small(conv_transpose_graph(3, 5, dil, 21), 3, bits, group_size);
	cr_assert_eq(g->n_nodes, 1, "%s: Relu should be fused into the ConvTranspose", bits);
	cr_assert(g->nodes[0].rq != NULL, "%s: ConvTranspose was not quantized", bits);
	cr_assert(qt_qrt_node_is_integer(g, 0), "%s: ConvTranspose does not run on integers", bits);
	int w = qt_graph_find_value(g, "w");
	cr_assert_eq(g->values[w].q->scheme, QT_QSCHEME_CHANNEL, "%s: ConvTranspose weights per output channel", bits);
	cr_assert_eq(g->values[w].q->count, 5);
	double c = int_sim_codes(g, 3);
	cr_assert(c <= 1.0 + 1e-3, "%s dilation %d: %.2f codes from the simulation", bits, dil, c);
	qt_graph_free(g);
}

Test(quant, conv_transpose_integer_w8a8) { conv_transpose_case("w8a8", 1, 0); }
Test(quant, conv_transpose_integer_w4a8_dilated) { conv_transpose_case("w4a8", 2, 0); }
Test(quant, conv_transpose_integer_group_size_falls_back_to_channel) { conv_transpose_case("w4a8", 1, 8); }
Test(quant, conv_transpose_integer_w8a4) { conv_transpose_case("w8a4", 1, 0); }

/* The integer ConvTranspose against the FP32 model: close, not just
 * self-consistent (a wrong scatter would match a wrong simulation only if
 * the FP32 op were wrong too, and that op passes ONNX's conformance tests). */
Test(quant, conv_transpose_integer_close_to_fp32)
{
	struct qt_graph *f = conv_transpose_graph(3, 5, 1, 21);
	struct qt_graph *g = quantize_small(conv_transpose_graph(3, 5, 1, 21), 3, "w8a8", 0);
	struct qt_qrt *q;
	cr_assert_eq(qt_qrt_new(g, &q), QT_OK, "%s", qt_error_msg());
	struct qt_tensor x = {0}, yf = {0}, yq = {0};
	random_nchw(&x, 3, 3, 42);
	run_fp32(f, &x, &yf);
	cr_assert_eq(qt_qrt_run(q, &x, &yq), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(qt_tensor_numel(&yf), 3 * 5 * 12 * 12);
	double sig = 0, err = 0;
	for (int64_t i = 0; i < qt_tensor_numel(&yf); i++) {
		double a = ((float *)yf.data)[i], b = ((float *)yq.data)[i];
		sig += a * a;
		err += (a - b) * (a - b);
	}
	double sqnr = 10 * log10(sig / (err + 1e-30));
	cr_assert(sqnr > 30, "W8A8 ConvTranspose SQNR %.1f dB against FP32", sqnr);
	qt_tensor_free(&x);
	qt_tensor_free(&yf);
	qt_tensor_free(&yq);
	qt_qrt_free(q);
	qt_graph_free(g);
	qt_graph_free(f);
}

/* A two-level channel whose f32 is not its largest group scale (no byte
 * 255) is refused at load: the runtime's ratios assume it. The file is
 * patched in DATA (stored uncompressed) and its CRC recomputed. */
Test(regress, crafted_qmod_two_level_row_without_top_byte)
{
	struct qt_graph *g = quantized_cnn("w4a8", QT_GRAN_GROUP, 16);
	const struct qt_value *w = &g->values[qt_graph_find_value(g, "gw")];
	int64_t C = w->init->dims[0], ng = w->q->count / C;
	uint8_t *b;
	size_t l;
	cr_assert_eq(qt_qmod_serialize(g, &b, &l), QT_OK, "%s", qt_error_msg());
	/* The payload: C f32 channel scales (each its row's largest), then the bytes. */
	uint8_t *rows = malloc((size_t)C * 4);
	for (int64_t c = 0; c < C; c++) {
		float S = 0;
		for (int64_t j = 0; j < ng; j++)
			S = fmaxf(S, w->q->scale[c * ng + j]);
		memcpy(rows + 4 * c, &S, 4);
	}
	uint8_t *at = memmem(b, l, rows, (size_t)C * 4);
	cr_assert(at != NULL, "two-level payload not found");
	uint8_t *bytes = at + 4 * C;
	int64_t top = -1;
	for (int64_t j = 0; j < ng && top < 0; j++)
		top = bytes[j] == 255 ? j : -1;
	cr_assert(top >= 0, "channel 0 has no byte 255");
	for (int64_t j = 0; j < ng; j++)
		if (bytes[j] == 255)
			bytes[j] = 254;
	uint32_t ns;
	memcpy(&ns, b + 12, 4);
	for (uint32_t i = 0; i < ns; i++) {
		uint8_t *e = b + 64 + 32 * i;
		uint32_t kind;
		uint64_t off, sl;
		memcpy(&kind, e, 4);
		memcpy(&off, e + 8, 8);
		memcpy(&sl, e + 16, 8);
		if (kind == 11) {
			uint32_t crc = (uint32_t)crc32(0L, b + off, (uInt)sl);
			memcpy(e + 4, &crc, 4);
		}
	}
	struct qt_graph *r = NULL;
	cr_assert_eq(qt_qmod_read_mem(b, l, "top.qmod", &r), QT_E_FORMAT);
	cr_assert(strstr(qt_error_msg(), "top.qmod") && strstr(qt_error_msg(), "channel 0 has no group"), "%s",
		  qt_error_msg());
	free(rows);
	free(b);
	qt_graph_free(g);
}

/* ---------------------------------------------------------------------- */
/* Import preparation: constant folding, unsharing, affine folding (issue 8). */

/* A TENSOR attribute survives a .qmod round trip (its body sits 72 bytes
 * after an aligned header, which the reader once refused as misaligned). */
Test(regress, qmod_tensor_attribute_roundtrip)
{
	struct qt_graph *g = quantized_cnn("w8a8", QT_GRAN_CHANNEL, 0);
	struct qt_node *n = &g->nodes[g->n_nodes - 1];
	struct qt_attr *a = qt_graph_alloc(g, sizeof *a * (size_t)(n->n_attrs + 1));
	memcpy(a, n->attrs, sizeof *a * (size_t)n->n_attrs);
	struct qt_tensor *t = qt_graph_alloc(g, sizeof *t);
	float vals[3] = {1.5f, -2.0f, 0.25f};
	t->dtype = QT_DTYPE_F32;
	t->rank = 1;
	t->dims[0] = 3;
	t->data = vals;
	t->nbytes = sizeof vals;
	a[n->n_attrs].name = "value";
	a[n->n_attrs].type = QT_ATTR_TENSOR;
	a[n->n_attrs].t = t;
	n->attrs = a;
	n->n_attrs++;
	uint8_t *b;
	size_t l;
	cr_assert_eq(qt_qmod_serialize(g, &b, &l), QT_OK, "%s", qt_error_msg());
	struct qt_graph *r;
	cr_assert_eq(qt_qmod_read_mem(b, l, "mem.qmod", &r), QT_OK, "%s", qt_error_msg());
	const struct qt_attr *ra = qt_node_attr(&r->nodes[r->n_nodes - 1], "value");
	cr_assert(ra && ra->type == QT_ATTR_TENSOR && ra->t->nbytes == sizeof vals);
	cr_assert(!memcmp(ra->t->data, vals, sizeof vals));
	free(b);
	qt_graph_free(r);
	qt_graph_free(g);
}

static int add_value(struct qt_graph *g, const char *name)
{
	return qt_graph_value(g, name);
}

/*
 * x[N,4,8,8] -> Conv(Identity(w0), b0) -> Relu -> Conv(w0 shared, Identity(b1))
 * -> Mul(., k[1,4,1,1]) -> Div(., 2) -> Add(., a[4,1,1]) -> Sub(., s) ->
 * Reshape(., Concat(Unsqueeze(Gather(Shape(static value), 0)), [-1]))... the
 * shapes of exporters, built by hand.
 */
static struct qt_graph *exporter_idioms(uint64_t seed)
{
	struct qt_graph *g;
	cr_assert_eq(qt_graph_new(&g), QT_OK);
	g->opset = 13;
	rng_seed(seed);
	int x = add_input_nchw(g, 4, 8, 8);
	int64_t wd[4] = {4, 4, 3, 3}, cd[1] = {4}, kd[4] = {1, 4, 1, 1}, ad[3] = {4, 1, 1}, sd[1] = {1};
	int w0 = add_random(g, "w0", 4, wd, 0.3f), b0 = add_random(g, "b0", 1, cd, 0.1f);
	int b1 = add_random(g, "b1", 1, cd, 0.1f), k = add_random(g, "k", 4, kd, 1.0f);
	int a = add_random(g, "a", 3, ad, 0.5f);
	int two = add_const(g, "two", 1, sd, (float[]){2.0f}), s = add_const(g, "s", 1, sd, (float[]){0.75f});
	int wa = add_value(g, "w0_alias"), b1a = add_value(g, "b1_alias");
	int c1 = add_value(g, "c1"), r1 = add_value(g, "r1"), c2 = add_value(g, "c2"), m = add_value(g, "m");
	int d = add_value(g, "d"), ad_ = add_value(g, "ad"), y = add_value(g, "y");
	g->values[y].is_output = 1;
	int n = qt_graph_add_node(g, "Identity", "", "alias_w");
	node_io(g, n, 1, &w0, 1, &wa);
	n = qt_graph_add_node(g, "Identity", "", "alias_b");
	node_io(g, n, 1, &b1, 1, &b1a);
	n = qt_graph_add_node(g, "Conv", "", "conv1");
	node_io(g, n, 3, (int[]){x, wa, b0}, 1, &c1);
	node_ints(g, n, "pads", 4, (int64_t[]){1, 1, 1, 1});
	n = qt_graph_add_node(g, "Relu", "", "relu1");
	node_io(g, n, 1, &c1, 1, &r1);
	n = qt_graph_add_node(g, "Conv", "", "conv2");
	node_io(g, n, 3, (int[]){r1, w0, b1a}, 1, &c2);
	node_ints(g, n, "pads", 4, (int64_t[]){1, 1, 1, 1});
	n = qt_graph_add_node(g, "Mul", "", "mul");
	node_io(g, n, 2, (int[]){k, c2}, 1, &m); /* constant first: either order folds */
	n = qt_graph_add_node(g, "Div", "", "div");
	node_io(g, n, 2, (int[]){m, two}, 1, &d);
	n = qt_graph_add_node(g, "Add", "", "add");
	node_io(g, n, 2, (int[]){d, a}, 1, &ad_);
	n = qt_graph_add_node(g, "Sub", "", "sub");
	node_io(g, n, 2, (int[]){ad_, s}, 1, &y);
	return finish_graph(g, x, y);
}

static void nchw_input(struct qt_tensor *x, int n, int c, int h, int w, uint64_t seed)
{
	rng_seed(seed);
	int64_t d[4] = {n, c, h, w};
	cr_assert_eq(qt_tensor_alloc(x, QT_DTYPE_F32, 4, d), QT_OK);
	for (int64_t i = 0; i < qt_tensor_numel(x); i++)
		((float *)x->data)[i] = (float)nrand();
}

/* |a - b| <= rel * max|a| + 1e-6 elementwise. */
static void assert_close(const struct qt_tensor *a, const struct qt_tensor *b, float rel, const char *what)
{
	cr_assert_eq(qt_tensor_numel(a), qt_tensor_numel(b), "%s: sizes differ", what);
	const float *p = a->data, *q = b->data;
	float amax = 0;
	for (int64_t i = 0; i < qt_tensor_numel(a); i++)
		amax = fmaxf(amax, fabsf(p[i]));
	for (int64_t i = 0; i < qt_tensor_numel(a); i++)
		cr_assert(fabsf(p[i] - q[i]) <= rel * amax + 1e-6f, "%s: element %lld: %g vs %g", what, (long long)i, p[i],
			  q[i]);
}

static int count_op(const struct qt_graph *g, const char *op)
{
	int c = 0;
	for (int i = 0; i < g->n_nodes; i++)
		c += !strcmp(g->nodes[i].op_type, op);
	return c;
}

Test(prepare, identity_shared_and_affine_fold_preserve_outputs)
{
	const uint64_t seed = 21;
	struct qt_graph *g = exporter_idioms(seed);
	/* Before: the shared weight is what the quantizer refuses. */
	int conv2 = -1;
	for (int i = 0; i < g->n_nodes; i++)
		if (!strcmp(g->nodes[i].name, "conv2"))
			conv2 = i;
	cr_assert_geq(conv2, 0);
	struct qt_tensor x = {0}, y0 = {0}, y1 = {0};
	nchw_input(&x, 3, 4, 8, 8, seed + 1);
	run_fp32(g, &x, &y0);
	cr_assert_eq(qt_pass_prepare_import(g), QT_OK, "%s", qt_error_msg());
	run_fp32(g, &x, &y1);
	/* Identity and unsharing are exact; the affine folds reassociate float
	 * products (W*k/2 in double, rounded once): relative 1e-5 of the output
	 * scale, seed printed on failure. */
	assert_close(&y0, &y1, 1e-5f, "prepared graph (seed 21)");
	cr_assert_eq(count_op(g, "Identity"), 0);
	cr_assert_eq(count_op(g, "Mul") + count_op(g, "Div") + count_op(g, "Add") + count_op(g, "Sub"), 0,
		     "every constant affine op folded into conv2");
	cr_assert_eq(count_op(g, "Conv"), 2);
	for (int i = 0; i < g->n_nodes; i++) {
		const struct qt_node *n = &g->nodes[i];
		if (strcmp(n->op_type, "Conv"))
			continue;
		cr_assert(g->values[n->inputs[1]].init, "%s: weight is a constant", n->name);
		cr_assert_eq(g->values[n->inputs[1]].n_consumers, 1, "%s: weight is its own", n->name);
	}
	/* And the quantizer takes both convolutions. */
	qt_graph_free(g);
	g = exporter_idioms(seed);
	struct qt_calib *c;
	cr_assert_eq(qt_calib_new(g, NULL, &c), QT_OK);
	struct qt_rt *rt;
	cr_assert_eq(qt_rt_new(g, &rt), QT_OK);
	qt_rt_set_observer(rt, qt_calib_observer, c);
	struct qt_tensor yy = {0};
	cr_assert_eq(qt_rt_run(rt, &x, &yy), QT_OK, "%s", qt_error_msg());
	qt_tensor_free(&yy);
	qt_rt_free(rt);
	struct qt_calib_table *t;
	struct qt_calib_meta meta = {0};
	cr_assert_eq(qt_calib_finish(c, &meta, &t), QT_OK);
	qt_calib_free(c);
	cr_assert_eq(t->input_shapes.n, 1, "calibration records the input shape");
	cr_assert_eq(t->input_shapes.s[0].rank, 4);
	cr_assert(t->input_shapes.s[0].dims[0] == 1 && t->input_shapes.s[0].dims[1] == 4 &&
		  t->input_shapes.s[0].dims[3] == 8, "symbolic batch recorded as 1");
	struct qt_quant_opts o = {.wbits = 8, .abits = 8, .command_line = "test", .input_shapes = &t->input_shapes};
	cr_assert_eq(qt_quantize_graph(g, t, &o), QT_OK, "%s", qt_error_msg());
	int quantized = 0;
	for (int i = 0; i < g->n_nodes; i++)
		quantized += g->nodes[i].rq != NULL;
	cr_assert_eq(quantized, 2, "both convolutions quantized, the shared weight included");
	qt_calib_table_free(t);
	qt_graph_free(g);
	qt_tensor_free(&x);
	qt_tensor_free(&y0);
	qt_tensor_free(&y1);
}

/* Set node ni's only attribute to the int `name` = v. */
static void node_int(struct qt_graph *g, int ni, const char *name, int64_t v)
{
	struct qt_attr *a = qt_graph_alloc(g, sizeof *a);
	a->name = name;
	a->type = QT_ATTR_INT;
	a->i = v;
	g->nodes[ni].attrs = a;
	g->nodes[ni].n_attrs = 1;
}

static int add_i64(struct qt_graph *g, const char *name, int rank, const int64_t *dims, const int64_t *vals)
{
	return add_tensor(g, name, QT_DTYPE_I64, rank, dims, vals);
}

/* An opset-13 graph whose input x is a static [2,3,4,4] (inputs[0] set, not finalized). */
static struct qt_graph *graph_with_x2344(void)
{
	struct qt_graph *g;
	cr_assert_eq(qt_graph_new(&g), QT_OK);
	g->opset = 13;
	int x = add_input_nchw(g, 3, 4, 4);
	g->values[x].dims[0] = 2;
	g->inputs = qt_graph_alloc(g, sizeof(int));
	g->inputs[0] = x;
	return g;
}

/*
 * x[2,3,4,4] -> Relu -> r (declared [2,3,4,4]) -> Reshape(r, shape) where
 * shape = Concat(Unsqueeze(Gather(Shape(r), 0)), Cast(Mul(c, c2)) as int64)
 * and the Relu's second consumer is Add(r, Cast(int constant) as float).
 */
Test(prepare, fold_constants_shape_chain_and_arithmetic)
{
	struct qt_graph *g = graph_with_x2344();
	int x = g->inputs[0];
	int r = add_value(g, "r");
	g->values[r].rank = 4;
	memcpy(g->values[r].dims, (int64_t[]){2, 3, 4, 4}, sizeof(int64_t) * 4);
	int64_t one[1] = {1};
	int zero = add_i64(g, "zero", 0, one, (int64_t[]){0}), axes = add_i64(g, "axes", 1, one, (int64_t[]){0});
	int c = add_const(g, "c", 1, one, (float[]){6.0f}), c2 = add_const(g, "c2", 1, one, (float[]){8.0f});
	int ci = add_i64(g, "ci", 1, one, (int64_t[]){3});
	int sh = add_value(g, "sh"), g0 = add_value(g, "g0"), u0 = add_value(g, "u0"), mc = add_value(g, "mc");
	int mci = add_value(g, "mci"), shape = add_value(g, "shape"), rs = add_value(g, "rs"), cf = add_value(g, "cf");
	int y = add_value(g, "y");
	g->values[y].is_output = 1;
	int n = qt_graph_add_node(g, "Relu", "", "relu");
	node_io(g, n, 1, &x, 1, &r);
	n = qt_graph_add_node(g, "Shape", "", "shape");
	node_io(g, n, 1, &r, 1, &sh);
	n = qt_graph_add_node(g, "Gather", "", "gather");
	node_io(g, n, 2, (int[]){sh, zero}, 1, &g0);
	n = qt_graph_add_node(g, "Unsqueeze", "", "unsq");
	node_io(g, n, 2, (int[]){g0, axes}, 1, &u0);
	n = qt_graph_add_node(g, "Mul", "", "mul");
	node_io(g, n, 2, (int[]){c, c2}, 1, &mc);
	n = qt_graph_add_node(g, "Cast", "", "cast_i");
	node_io(g, n, 1, &mc, 1, &mci);
	node_int(g, n, "to", 7); /* INT64 */
	n = qt_graph_add_node(g, "Concat", "", "concat");
	node_io(g, n, 2, (int[]){u0, mci}, 1, &shape);
	node_int(g, n, "axis", 0);
	n = qt_graph_add_node(g, "Reshape", "", "reshape");
	node_io(g, n, 2, (int[]){r, shape}, 1, &rs);
	n = qt_graph_add_node(g, "Cast", "", "cast_f");
	node_io(g, n, 1, &ci, 1, &cf);
	node_int(g, n, "to", 1); /* FLOAT */
	n = qt_graph_add_node(g, "Add", "", "add");
	node_io(g, n, 2, (int[]){rs, cf}, 1, &y);
	finish_graph(g, x, y);

	struct qt_tensor in = {0}, y0 = {0}, y1 = {0};
	nchw_input(&in, 2, 3, 4, 4, 5);
	run_fp32(g, &in, &y0);
	int folded;
	cr_assert_eq(qt_pass_fold_constants(g, &folded), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(folded, 7, "Shape, Gather, Unsqueeze, Mul, Cast, Concat, Cast folded (got %d)", folded);
	cr_assert_eq(g->n_nodes, 3, "Relu, Reshape and Add remain");
	int si = qt_graph_find_value(g, "shape");
	cr_assert(si >= 0 && g->values[si].init && g->values[si].init->dtype == QT_DTYPE_I64);
	const int64_t *sv = g->values[si].init->data;
	cr_assert(sv[0] == 2 && sv[1] == 48, "shape folded to [2, 48], got [%lld, %lld]", (long long)sv[0],
		  (long long)sv[1]);
	run_fp32(g, &in, &y1);
	/* Folding runs the same kernels on the same constants: bit-exact. */
	cr_assert(y0.nbytes == y1.nbytes && !memcmp(y0.data, y1.data, y0.nbytes));
	qt_tensor_free(&in);
	qt_tensor_free(&y0);
	qt_tensor_free(&y1);
	qt_graph_free(g);
}

Test(prepare, graph_input_shape_is_never_folded)
{
	/* Shape(x) of a graph input stays: the declared dims are what a run may override. */
	struct qt_graph *g = graph_with_x2344();
	int x = g->inputs[0];
	int s = add_value(g, "s");
	g->values[s].is_output = 1;
	int n = qt_graph_add_node(g, "Shape", "", "shape");
	node_io(g, n, 1, &x, 1, &s);
	finish_graph(g, x, s);
	int folded;
	cr_assert_eq(qt_pass_fold_constants(g, &folded), QT_OK);
	cr_assert_eq(folded, 0);
	qt_graph_free(g);
}

Test(prepare, skip_reasons)
{
	struct qt_graph *g = exporter_idioms(3);
	/* conv2 reads w0, which conv1 reads through an Identity: before any
	 * preparation the weight of conv1 is not a constant, conv2's is shared. */
	const struct qt_node *c1 = NULL, *c2 = NULL;
	for (int i = 0; i < g->n_nodes; i++) {
		if (!strcmp(g->nodes[i].name, "conv1"))
			c1 = &g->nodes[i];
		if (!strcmp(g->nodes[i].name, "conv2"))
			c2 = &g->nodes[i];
	}
	/* The quantizer asks for activation qparams first: give x and outputs dummy ones. */
	struct qt_qparams q = {0};
	for (int v = 0; v < g->n_values; v++)
		if (!g->values[v].init)
			g->values[v].q = &q;
	cr_assert_str_eq(qt_quant_skip_reason(g, c1), "weight not constant");
	cr_assert_str_eq(qt_quant_skip_reason(g, c2), "weight shared with another node");
	for (int v = 0; v < g->n_values; v++)
		g->values[v].q = NULL;
	cr_assert_str_eq(qt_quant_skip_reason(g, c2), "input or output is not a float32 activation");
	qt_graph_free(g);
}

Test(prepare, dry_run_dims)
{
	struct qt_graph *g = small_cnn(1);
	int64_t d[QT_MAX_RANK];
	int r;
	cr_assert_eq(qt_graph_dry_run_dims(g, 0, NULL, d, &r), QT_OK);
	cr_assert(r == 4 && d[0] == 1 && d[1] == 3 && d[2] == 8, "a symbolic batch runs at 1");
	g->values[g->inputs[0]].dims[2] = -1;
	g->values[g->inputs[0]].dim_params[2] = "H";
	cr_assert_eq(qt_graph_dry_run_dims(g, 0, NULL, d, &r), QT_E_INVALID_ARG);
	cr_assert(strstr(qt_error_msg(), "--input-shape x=") && strstr(qt_error_msg(), "(H)"), "%s", qt_error_msg());
	struct qt_input_shapes s = {0};
	cr_assert_eq(qt_input_shapes_parse(&s, "x=2,3,12,8"), QT_OK);
	cr_assert_eq(qt_graph_dry_run_dims(g, 0, &s, d, &r), QT_OK, "%s", qt_error_msg());
	cr_assert(d[0] == 2 && d[2] == 12);
	cr_assert_eq(qt_input_shapes_parse(&s, "x=2,4,12,8"), QT_OK); /* replaces, conflicts with C = 3 */
	cr_assert_eq(s.n, 1);
	cr_assert_eq(qt_graph_dry_run_dims(g, 0, &s, d, &r), QT_E_INVALID_ARG);
	cr_assert_eq(qt_input_shapes_parse(&s, "x=2,3,12"), QT_OK);
	cr_assert_eq(qt_graph_dry_run_dims(g, 0, &s, d, &r), QT_E_INVALID_ARG, "rank mismatch");
	const char *bad[] = {"x", "=1,2", "x=", "x=1,,2", "x=0", "x=-1", "x=1,2a", "x=1,2,3,4,5,6,7,8,9", NULL};
	for (int i = 0; bad[i]; i++)
		cr_assert_eq(qt_input_shapes_parse(&s, bad[i]), QT_E_INVALID_ARG, "'%s' accepted", bad[i]);
	qt_graph_free(g);
}

Test(prepare, calib_file_keeps_input_shapes)
{
	struct qt_graph *g = small_cnn(2);
	struct qt_calib_table *t = calibrate(g);
	cr_assert_eq(t->input_shapes.n, 1);
	char *json;
	cr_assert_eq(qt_calib_to_json(t, &json), QT_OK);
	cr_assert(strstr(json, "\"input_shapes\""));
	struct qt_calib_table *r;
	cr_assert_eq(qt_calib_read_mem(json, strlen(json), "mem.json", g, &r), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(r->input_shapes.n, 1);
	cr_assert_str_eq(r->input_shapes.s[0].name, "x");
	cr_assert(r->input_shapes.s[0].rank == 4 && r->input_shapes.s[0].dims[0] == 1 &&
		  r->input_shapes.s[0].dims[1] == 3 && r->input_shapes.s[0].dims[2] == 8);
	/* A shape for a name that is not an input, or a zero dim, is refused. */
	char *p = strstr(json, "\"input_shapes\"");
	char *bad = malloc(strlen(json) + 16);
	size_t pre = (size_t)(p - json);
	memcpy(bad, json, pre);
	strcpy(bad + pre, "\"input_shapes\": {\"nope\": [1]},");
	strcat(bad, strchr(p, '}') + 2);
	struct qt_calib_table *r2 = NULL;
	cr_assert_eq(qt_calib_read_mem(bad, strlen(bad), "bad.json", g, &r2), QT_E_FORMAT, "%s", bad);
	cr_assert(strstr(qt_error_msg(), "nope"), "%s", qt_error_msg());
	free(bad);
	free(json);
	qt_calib_table_free(r);
	qt_calib_table_free(t);
	qt_graph_free(g);
}
