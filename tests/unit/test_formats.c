/*
 * Weights and activations in number formats through the quantize stage,
 * the .qmod and both runtimes (issue 13): every format round-trips through
 * the file, decodes to weights close to the FP32 ones without bias, runs the
 * same in the integer runtime (decoded to FP32) as in the simulation, and
 * the reader refuses codes and scales outside the format. Fixed seeds.
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

static const enum qt_numfmt WFMTS[] = {QT_FMT_FP8_E4M3,   QT_FMT_FP8_E5M2,   QT_FMT_FP6_E3M2,   QT_FMT_FP6_E2M3,
				       QT_FMT_FP4_E2M1,   QT_FMT_MXINT8,     QT_FMT_MXFP8_E4M3, QT_FMT_MXFP8_E5M2,
				       QT_FMT_MXFP6_E3M2, QT_FMT_MXFP6_E2M3, QT_FMT_MXFP4,      QT_FMT_NVFP4};
#define N_WFMT ((int)(sizeof WFMTS / sizeof WFMTS[0]))

/* small_cnn (testgraph.c) quantized with weight format wf and activation
 * format af (QT_FMT_INT: 8 bits), group size (plain formats) and MX rule. */
static struct qt_graph *fmt_cnn(enum qt_numfmt wf, enum qt_numfmt af, int group, enum qt_mx_rule rule)
{
	struct qt_graph *g = small_cnn(11);
	struct qt_calib_table *t = calibrate(g);
	struct qt_quant_opts o = {.wbits = 8, .abits = 8, .wfmt = wf, .afmt = af, .mx_rule = rule,
				  .gran = group ? QT_GRAN_GROUP : QT_GRAN_CHANNEL, .group_size = group,
				  .command_line = "test"};
	cr_assert_eq(qt_quantize_graph(g, t, &o), QT_OK, "%s: %s", qt_numfmt_name(wf), qt_error_msg());
	qt_calib_table_free(t);
	return g;
}

/* The prepared FP32 weight of value `name` (BN folded), as the quantizer saw it. */
static struct qt_tensor *prepared_weight(struct qt_graph **keep, const char *name)
{
	struct qt_graph *g = small_cnn(11);
	cr_assert_eq(qt_quant_prepare(g, NULL), QT_OK, "%s", qt_error_msg());
	*keep = g;
	int v = qt_graph_find_value(g, name);
	cr_assert(v >= 0 && g->values[v].init, "no weight %s", name);
	return g->values[v].init;
}

/* Integer runtime against the simulation on the same file: identical
 * outputs when every weighted layer is decoded to FP32 (both run the same
 * float kernels on the same decoded values). */
static void runtime_equals_simulation(const uint8_t *b, size_t l, const char *what)
{
	struct qt_graph *gi, *gs;
	cr_assert_eq(qt_qmod_read_mem(b, l, "a.qmod", &gi), QT_OK, "%s: %s", what, qt_error_msg());
	cr_assert_eq(qt_qmod_read_mem(b, l, "b.qmod", &gs), QT_OK);
	struct qt_qrt *q;
	cr_assert_eq(qt_qrt_new(gi, &q), QT_OK, "%s: %s", what, qt_error_msg());
	cr_assert_eq(qt_fakequant_prepare(gs), QT_OK);
	struct qt_rt *rt;
	cr_assert_eq(qt_rt_new(gs, &rt), QT_OK);
	qt_rt_set_observer(rt, qt_fakequant_observer, gs);
	struct qt_tensor x = {0}, yi = {0}, ys = {0};
	random_input(&x, 16, 555);
	cr_assert_eq(qt_qrt_run(q, &x, &yi), QT_OK, "%s: %s", what, qt_error_msg());
	cr_assert_eq(qt_rt_run(rt, &x, &ys), QT_OK, "%s: %s", what, qt_error_msg());
	const float *a = yi.data, *s = ys.data;
	for (int64_t i = 0; i < qt_tensor_numel(&yi); i++)
		cr_assert_eq(a[i], s[i], "%s: output %lld: runtime %g, simulation %g", what, (long long)i, a[i], s[i]);
	qt_tensor_free(&x);
	qt_tensor_free(&yi);
	qt_tensor_free(&ys);
	qt_rt_free(rt);
	qt_qrt_free(q);
	qt_graph_free(gi);
	qt_graph_free(gs);
}

/* Every weight format: written as version 4, read back to the same weights
 * and bytes, no requantization (decoded), runtime = simulation. */
Test(formats, every_weight_format_round_trips_and_runs)
{
	for (int k = 0; k < N_WFMT; k++) {
		enum qt_numfmt f = WFMTS[k];
		struct qt_graph *g = fmt_cnn(f, QT_FMT_INT, 0, QT_MX_BEST);
		uint8_t *b, *b2;
		size_t l, l2;
		cr_assert_eq(qt_qmod_serialize(g, &b, &l), QT_OK, "%s: %s", qt_numfmt_name(f), qt_error_msg());
		cr_assert_eq(b[8], 4, "%s: version %d", qt_numfmt_name(f), b[8]);
		struct qt_graph *r;
		cr_assert_eq(qt_qmod_read_mem(b, l, "f.qmod", &r), QT_OK, "%s: %s", qt_numfmt_name(f), qt_error_msg());
		cr_assert_eq(qt_qmod_serialize(r, &b2, &l2), QT_OK);
		cr_assert(l2 == l && !memcmp(b, b2, l), "%s: read then write changed the bytes", qt_numfmt_name(f));
		const char *names[] = {"w", "gw"};
		for (int j = 0; j < 2; j++) {
			const struct qt_value *w = &r->values[qt_graph_find_value(r, names[j])];
			cr_assert(w->q && w->q->fmt == f && w->init->dtype == qt_numfmt_elem(f), "%s %s", qt_numfmt_name(f),
				  names[j]);
			struct qt_tensor d0 = {0}, d1 = {0};
			cr_assert_eq(qt_dequantize_value(&g->values[qt_graph_find_value(g, names[j])], &d0), QT_OK);
			cr_assert_eq(qt_dequantize_value(w, &d1), QT_OK);
			cr_assert(d0.nbytes == d1.nbytes && !memcmp(d0.data, d1.data, d0.nbytes), "%s %s: decoded weights differ",
				  qt_numfmt_name(f), names[j]);
			qt_tensor_free(&d0);
			qt_tensor_free(&d1);
		}
		for (int i = 0; i < r->n_nodes; i++)
			cr_assert(!r->nodes[i].rq, "%s: node %s has a requantization", qt_numfmt_name(f), r->nodes[i].name);
		runtime_equals_simulation(b, l, qt_numfmt_name(f));
		free(b);
		free(b2);
		qt_graph_free(r);
		qt_graph_free(g);
	}
	/* Integer weights still write version 3. */
	struct qt_graph *g = fmt_cnn(QT_FMT_INT, QT_FMT_INT, 0, QT_MX_FLOOR);
	cr_assert_eq(qt_qmod_version_needed(g), 3u);
	qt_graph_free(g);
}

/* Decoded weights against the prepared FP32 ones: relative RMS error within
 * the format's precision, and no bias (mean signed error near 0). */
Test(formats, weight_error_bounds)
{
	static const double rel_rms[] = {
		/* fp8_e4m3, e5m2, fp6_e3m2, e2m3, fp4, mxint8, mxfp8 x2, mxfp6 x2, mxfp4, nvfp4: about
		 * a uniform error of the top binade's gap (2^-mantissa bits of a block or
		 * channel maximum) over sqrt(12), for normal weights */
		0.04, 0.08, 0.08, 0.05, 0.15, 0.02, 0.04, 0.08, 0.08, 0.05, 0.15, 0.13};
	struct qt_graph *ref;
	const char *names[] = {"w", "gw"};
	for (int j = 0; j < 2; j++) {
		const struct qt_tensor *w0 = prepared_weight(&ref, names[j]);
		const float *w = w0->data;
		int64_t n = qt_tensor_numel(w0);
		double ss = 0;
		for (int64_t i = 0; i < n; i++)
			ss += (double)w[i] * w[i];
		double rms = sqrt(ss / n);
		for (int k = 0; k < N_WFMT; k++) {
			struct qt_graph *g = fmt_cnn(WFMTS[k], QT_FMT_INT, 0, QT_MX_BEST);
			struct qt_tensor d = {0};
			cr_assert_eq(qt_dequantize_value(&g->values[qt_graph_find_value(g, names[j])], &d), QT_OK);
			const float *q = d.data;
			double se = 0, sum = 0;
			for (int64_t i = 0; i < n; i++) {
				double e = (double)q[i] - w[i];
				se += e * e;
				sum += e;
			}
			double rel = sqrt(se / n) / rms;
			cr_assert(rel <= rel_rms[k], "seed 11 %s %s: relative RMS error %.4f > %.4f", names[j],
				  qt_numfmt_name(WFMTS[k]), rel, rel_rms[k]);
			cr_assert(fabs(sum / n) <= 0.25 * rel_rms[k] * rms, "seed 11 %s %s: mean signed error %.3g (biased)",
				  names[j], qt_numfmt_name(WFMTS[k]), sum / n);
			qt_tensor_free(&d);
			qt_graph_free(g);
		}
		qt_graph_free(ref);
	}
}

/* Group scales for the plain formats are the two-level ones of the integers. */
Test(formats, plain_format_with_groups)
{
	struct qt_graph *g = fmt_cnn(QT_FMT_FP4_E2M1, QT_FMT_INT, 16, QT_MX_BEST);
	const struct qt_value *w = &g->values[qt_graph_find_value(g, "gw")];
	cr_assert(w->q->scheme == QT_QSCHEME_GROUP && w->q->group_size == 16 && w->q->scale_enc == QT_SCALE_ROW_U8);
	uint8_t *b;
	size_t l;
	cr_assert_eq(qt_qmod_serialize(g, &b, &l), QT_OK, "%s", qt_error_msg());
	runtime_equals_simulation(b, l, "fp4_e2m1 g16");
	free(b);
	qt_graph_free(g);
}

/* Activations in a format: a FakeQuant node before each layer, its input
 * left float, the fused Relu a node again; runtime = simulation. */
Test(formats, activation_formats)
{
	const enum qt_numfmt afs[] = {QT_FMT_FP8_E4M3, QT_FMT_MXFP8_E4M3, QT_FMT_NVFP4, QT_FMT_MXINT8};
	for (size_t k = 0; k < sizeof afs / sizeof afs[0]; k++) {
		struct qt_graph *g = fmt_cnn(QT_FMT_FP8_E4M3, afs[k], 0, QT_MX_FLOOR);
		int fq = 0, relu = 0;
		for (int i = 0; i < g->n_nodes; i++) {
			const struct qt_node *n = &g->nodes[i];
			if (!strcmp(n->op_type, QT_OP_FAKE_QUANT)) {
				fq++;
				cr_assert_str_eq(qt_node_attr_str(n, "format", ""), qt_numfmt_name(afs[k]));
				cr_assert(!g->values[n->inputs[0]].q, "FakeQuant input %s has qparams", g->values[n->inputs[0]].name);
			}
			relu += !strcmp(n->op_type, "Relu");
		}
		cr_assert_eq(fq, 2, "%s: %d FakeQuant nodes", qt_numfmt_name(afs[k]), fq);
		cr_assert_eq(relu, 1, "%s: the conv's fused Relu must run as a node", qt_numfmt_name(afs[k]));
		uint8_t *b;
		size_t l;
		cr_assert_eq(qt_qmod_serialize(g, &b, &l), QT_OK);
		runtime_equals_simulation(b, l, qt_numfmt_name(afs[k]));
		free(b);
		qt_graph_free(g);
	}
}

/* FakeQuant's blocks run along its axis: on NCHW along channels, the same as
 * gathering each pixel's channels and rounding them as one row. */
Test(formats, fake_quant_blocks_along_axis)
{
	struct qt_graph *g;
	cr_assert_eq(qt_graph_new(&g), QT_OK);
	g->opset = 13;
	int x = add_input_nchw(g, 40, 3, 2), y = qt_graph_value(g, "y");
	g->values[y].is_output = 1;
	int n = qt_graph_add_node(g, QT_OP_FAKE_QUANT, QT_DOMAIN_QTOOL, "fq");
	node_io(g, n, 1, &x, 1, &y);
	struct qt_attr *a = qt_graph_alloc(g, 3 * sizeof *a);
	a[0] = (struct qt_attr){.name = "format", .type = QT_ATTR_STRING, .s = "mxfp4", .s_len = 5};
	a[1] = (struct qt_attr){.name = "axis", .type = QT_ATTR_INT, .i = 1};
	a[2] = (struct qt_attr){.name = "rule", .type = QT_ATTR_INT, .i = QT_MX_CEIL};
	g->nodes[n].attrs = a;
	g->nodes[n].n_attrs = 3;
	g = finish_graph(g, x, y);
	struct qt_tensor in = {0}, out = {0};
	int64_t d[4] = {2, 40, 3, 2};
	cr_assert_eq(qt_tensor_alloc(&in, QT_DTYPE_F32, 4, d), QT_OK);
	rng_seed(5);
	float *p = in.data;
	for (int64_t i = 0; i < qt_tensor_numel(&in); i++)
		p[i] = (float)(nrand() * (i % 7 ? 1 : 10));
	run_fp32(g, &in, &out);
	const float *o = out.data;
	for (int64_t img = 0; img < 2; img++)
		for (int64_t px = 0; px < 6; px++) {
			float row[40];
			for (int c = 0; c < 40; c++)
				row[c] = p[(img * 40 + c) * 6 + px];
			qt_numfmt_fake_quant(QT_FMT_MXFP4, QT_MX_CEIL, 1, row, 40);
			for (int c = 0; c < 40; c++)
				cr_assert_eq(o[(img * 40 + c) * 6 + px], row[c], "seed 5: image %lld pixel %lld channel %d",
					     (long long)img, (long long)px, c);
		}
	qt_tensor_free(&in);
	qt_tensor_free(&out);
	qt_graph_free(g);
}

/* Serialize g after mut(g) and expect the reader to refuse it naming the
 * problem (want). */
static void expect_refused(void (*mut)(struct qt_graph *), enum qt_numfmt wf, const char *want)
{
	struct qt_graph *g = fmt_cnn(wf, QT_FMT_INT, 0, QT_MX_FLOOR);
	mut(g);
	uint8_t *b;
	size_t l;
	cr_assert_eq(qt_qmod_serialize(g, &b, &l), QT_OK, "%s", qt_error_msg());
	struct qt_graph *r = NULL;
	cr_assert_eq(qt_qmod_read_mem(b, l, "bad.qmod", &r), QT_E_FORMAT, "%s: accepted", want);
	cr_assert(r == NULL && strstr(qt_error_msg(), "bad.qmod") && strstr(qt_error_msg(), want), "want '%s': %s", want,
		  qt_error_msg());
	free(b);
	qt_graph_free(g);
}

static struct qt_value *gw(struct qt_graph *g)
{
	return &g->values[qt_graph_find_value(g, "gw")];
}
static void nan_code(struct qt_graph *g) { qt_code_put(gw(g)->init, 3, 0xFF); }
static void inf_code(struct qt_graph *g) { qt_code_put(gw(g)->init, 0, 0x7C); }
static void int8_min(struct qt_graph *g) { qt_code_put(gw(g)->init, 1, -128); }
static void e8m0_nan(struct qt_graph *g) { gw(g)->q->scale_code[2] = 0xFF; }
static void nv_zero_scale(struct qt_graph *g) { gw(g)->q->scale_code[0] = 0; }
static void nv_bad_tensor_scale(struct qt_graph *g) { gw(g)->q->tensor_scale = -1; }
static void unknown_format(struct qt_graph *g) { gw(g)->q->fmt = (enum qt_numfmt)99; }
static void format_type_mismatch(struct qt_graph *g) { gw(g)->q->fmt = QT_FMT_FP8_E5M2; }
static void mx_group_size(struct qt_graph *g) { gw(g)->q->group_size = 16; }

Test(formats, reader_refuses_what_the_format_cannot_hold)
{
	expect_refused(nan_code, QT_FMT_FP8_E4M3, "not a finite fp8_e4m3");
	expect_refused(inf_code, QT_FMT_FP8_E5M2, "not a finite fp8_e5m2");
	expect_refused(int8_min, QT_FMT_MXINT8, "not a finite mxint8");
	expect_refused(e8m0_nan, QT_FMT_MXFP4, "block scale byte 0xff");
	expect_refused(nv_zero_scale, QT_FMT_NVFP4, "block scale byte 0x00");
	expect_refused(nv_bad_tensor_scale, QT_FMT_NVFP4, "tensor scale");
	expect_refused(unknown_format, QT_FMT_FP8_E4M3, "number format 99");
	expect_refused(format_type_mismatch, QT_FMT_FP8_E4M3, "fp8_e5m2 needs float8e5m2 codes");
	expect_refused(mx_group_size, QT_FMT_MXFP4, "group size 16");
	/* A version 3 file cannot hold a number format. */
	struct qt_graph *g = fmt_cnn(QT_FMT_FP8_E4M3, QT_FMT_INT, 0, QT_MX_FLOOR);
	uint8_t *b;
	size_t l;
	cr_assert_eq(qt_qmod_serialize(g, &b, &l), QT_OK);
	b[8] = 3;
	uint32_t crc = (uint32_t)crc32(0L, b, 32);
	memcpy(b + 32, &crc, 4);
	struct qt_graph *r = NULL;
	cr_assert_neq(qt_qmod_read_mem(b, l, "v3.qmod", &r), QT_OK);
	cr_assert(strstr(qt_error_msg(), "v3.qmod") && strstr(qt_error_msg(), "version 3"), "%s", qt_error_msg());
	free(b);
	qt_graph_free(g);
}

/* Fuzz seeds for the version 4 additions (tests/fuzz/corpus/qmod), checked
 * like test_quant.c's; QT_WRITE_FUZZ_SEEDS=1 regenerates them. */
Test(formats, fuzz_seeds_are_current)
{
	static const struct {
		const char *file;
		enum qt_numfmt wf, af;
		int group;
	} seeds[] = {{"conv_mxfp4_actfp8.qmod", QT_FMT_MXFP4, QT_FMT_FP8_E4M3, 0},
		     {"conv_nvfp4.qmod", QT_FMT_NVFP4, QT_FMT_INT, 0},
		     {"conv_fp6_group8.qmod", QT_FMT_FP6_E3M2, QT_FMT_INT, 8}};
	const char *regen = getenv("QT_WRITE_FUZZ_SEEDS");
	char path[512];
	for (size_t k = 0; k < sizeof seeds / sizeof seeds[0]; k++) {
		snprintf(path, sizeof path, "tests/fuzz/corpus/qmod/%s", seeds[k].file);
		if (regen && *regen == '1') {
			struct qt_graph *g = fmt_cnn(seeds[k].wf, seeds[k].af, seeds[k].group, QT_MX_FLOOR);
			cr_assert_eq(qt_qmod_write(g, path), QT_OK, "%s", qt_error_msg());
			qt_graph_free(g);
		}
		struct qt_graph *r = NULL;
		cr_assert_eq(qt_qmod_read(path, &r), QT_OK, "%s: %s (run with QT_WRITE_FUZZ_SEEDS=1 to regenerate)", path,
			     qt_error_msg());
		qt_graph_free(r);
	}
}
