/*
 * FP32 kernels of op_conv.c, op_linalg.c and op_norm.c: Conv, ConvTranspose,
 * the pools, Gemm, MatMul, BatchNormalization, InstanceNormalization,
 * LayerNormalization, Softmax and LogSoftmax.
 *
 * Three kinds of tests:
 *  - small cases from the ONNX operator spec examples, with the values
 *    written out (checked against numpy);
 *  - randomised cases against direct loops in double written here (the
 *    sgemm paths, groups, depthwise, chunked im2col), fixed seeds printed on
 *    failure;
 *  - every ONNX backend test folder for these ops in Debian's
 *    libonnx-testdata, run through the loader and the executor.
 *
 * Tolerances: the ONNX data is compared with rtol 1e-3, atol 1e-5 (ops.h).
 * Against the double references here: float sgemm sums of up to a few
 * thousand products of values in [-1, 1] stay within 1e-4 relative to the sum
 * of magnitudes, so we bound |got - ref| <= 1e-5 + 1e-4 * sum|products|.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qtool/graph.h"
#include "qtool/onnx.h"
#include "qtool/rt.h"
#include "rt/ops.h"

/* ---------- building single-node graphs ---------- */

struct op {
	struct qt_graph *g;
	int node;
	int opset;
};

static struct op op_new(const char *op_type, int opset)
{
	struct op o = {NULL, -1, opset};
	cr_assert_eq(qt_graph_new(&o.g), QT_OK);
	o.node = qt_graph_add_node(o.g, op_type, "", "n0");
	cr_assert_geq(o.node, 0);
	return o;
}

static struct qt_node *op_node(const struct op *o)
{
	return &o->g->nodes[o->node];
}

static struct qt_attr *attr_add(struct op *o, const char *name, enum qt_attr_type type)
{
	struct qt_node *n = op_node(o);
	struct qt_attr *na = qt_graph_alloc(o->g, (size_t)(n->n_attrs + 1) * sizeof *na);
	cr_assert(na);
	if (n->n_attrs)
		memcpy(na, n->attrs, (size_t)n->n_attrs * sizeof *na);
	n->attrs = na;
	struct qt_attr *at = &na[n->n_attrs++];
	memset(at, 0, sizeof *at);
	at->name = qt_graph_strdup(o->g, name);
	at->type = type;
	return at;
}

static void set_int(struct op *o, const char *name, int64_t v)
{
	attr_add(o, name, QT_ATTR_INT)->i = v;
}

static void set_float(struct op *o, const char *name, float v)
{
	attr_add(o, name, QT_ATTR_FLOAT)->f = v;
}

static void set_str(struct op *o, const char *name, const char *s)
{
	struct qt_attr *at = attr_add(o, name, QT_ATTR_STRING);
	at->s = qt_graph_strdup(o->g, s);
	at->s_len = strlen(s);
}

static void set_ints(struct op *o, const char *name, int n, const int64_t *v)
{
	struct qt_attr *at = attr_add(o, name, QT_ATTR_INTS);
	at->ints = qt_graph_alloc(o->g, (size_t)(n ? n : 1) * sizeof *at->ints);
	memcpy(at->ints, v, (size_t)n * sizeof *v);
	at->n = n;
}

/* Expand to "count, array" for a (rank, dims) or (n, ints) parameter pair. */
#define DIMS(...) (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), ((const int64_t[]){__VA_ARGS__})
#define INTS      DIMS

/* Run the node's kernel on n_in inputs (NULL = omitted) into n_out fresh outputs. */
static enum qt_status op_run(struct op *o, int n_in, const struct qt_tensor *const *in, int n_out,
			     struct qt_tensor *out)
{
	struct qt_node *n = op_node(o);
	qt_op_fn fn = qt_op_find("", n->op_type, o->opset);
	cr_assert(fn, "no kernel for %s at opset %d", n->op_type, o->opset);
	n->n_outputs = n_out;
	n->outputs = qt_graph_alloc(o->g, (size_t)n_out * sizeof *n->outputs);
	for (int i = 0; i < n_out; i++)
		n->outputs[i] = i;
	memset(out, 0, (size_t)n_out * sizeof *out);
	struct qt_op_args a = {
		.g = o->g,
		.node = n,
		.opset = o->opset,
		.n_in = n_in,
		.in = in,
		.n_out = n_out,
		.out = out,
	};
	return fn(&a);
}

static void op_free(struct op *o)
{
	qt_graph_free(o->g);
}

/* A float32 tensor of the given shape: a copy of vals, or zeros. */
static struct qt_tensor tf(int rank, const int64_t *dims, const float *vals)
{
	struct qt_tensor t = {0};
	cr_assert_eq(qt_tensor_alloc(&t, QT_DTYPE_F32, rank, dims), QT_OK);
	if (vals)
		memcpy(t.data, vals, t.nbytes);
	return t;
}

static void iota(struct qt_tensor *t, float start)
{
	float *p = t->data;
	for (int64_t i = 0; i < qt_tensor_numel(t); i++)
		p[i] = start + (float)i;
}

static void fill(struct qt_tensor *t, float v)
{
	float *p = t->data;
	for (int64_t i = 0; i < qt_tensor_numel(t); i++)
		p[i] = v;
}

/* Fixed-seed uniform values in [-1, 1). */
static uint64_t rng_state;
static float urand(void)
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return (float)((rng_state >> 40) * (1.0 / (1ull << 24))) * 2.0f - 1.0f;
}

static void randomize(struct qt_tensor *t)
{
	float *p = t->data;
	for (int64_t i = 0; i < qt_tensor_numel(t); i++)
		p[i] = urand();
}

static void expect_shape(const struct qt_tensor *t, int rank, const int64_t *dims)
{
	char a[96], b[96];
	int ok = t->rank == rank;
	for (int i = 0; ok && i < rank; i++)
		ok = t->dims[i] == dims[i];
	cr_assert(ok, "shape %s, expected %s", qt_shape_str(a, sizeof a, t->rank, t->dims),
		  qt_shape_str(b, sizeof b, rank, dims));
}

/* rtol 1e-3, atol 1e-5, as for the ONNX data (ops.h). */
static void expect_close(const struct qt_tensor *t, const float *want, int64_t n)
{
	cr_assert_eq(t->dtype, QT_DTYPE_F32);
	cr_assert_eq(qt_tensor_numel(t), n);
	const float *p = t->data;
	for (int64_t i = 0; i < n; i++)
		cr_assert(fabsf(p[i] - want[i]) <= 1e-5f + 1e-3f * fabsf(want[i]), "element %lld: got %.8g, want %.8g",
			  (long long)i, p[i], want[i]);
}

/* Against a double reference: tolerance scaled by the sum of |products| (see the top). */
static void expect_ref(const struct qt_tensor *t, const double *ref, const double *mag, int64_t n, uint64_t seed)
{
	const float *p = t->data;
	for (int64_t i = 0; i < n; i++)
		cr_assert(fabs(p[i] - ref[i]) <= 1e-5 + 1e-4 * mag[i], "seed %llu element %lld: got %.8g, want %.8g",
			  (unsigned long long)seed, (long long)i, p[i], ref[i]);
}

static void free_all(struct qt_tensor *t, int n)
{
	for (int i = 0; i < n; i++)
		qt_tensor_free(&t[i]);
}

/* ---------- Conv: spec examples ---------- */

Test(nn_conv, spec_basic_with_and_without_padding)
{
	struct op o = op_new("Conv", 11);
	set_ints(&o, "kernel_shape", INTS(3, 3));
	set_ints(&o, "pads", INTS(1, 1, 1, 1));
	struct qt_tensor x = tf(DIMS(1, 1, 5, 5), NULL), w = tf(DIMS(1, 1, 3, 3), NULL), y;
	iota(&x, 0);
	fill(&w, 1);
	const struct qt_tensor *in[] = {&x, &w};
	cr_assert_eq(op_run(&o, 2, in, 1, &y), QT_OK, "%s", qt_error_msg());
	static const float want[] = {12,  21, 27, 33,  24,  33,  54,  63, 72,  51,  63,  99, 108,
				     117, 81, 93, 144, 153, 162, 111, 72, 111, 117, 123, 84};
	expect_shape(&y, DIMS(1, 1, 5, 5));
	expect_close(&y, want, 25);
	qt_tensor_free(&y);
	op_free(&o);

	o = op_new("Conv", 11);
	set_ints(&o, "pads", INTS(0, 0, 0, 0));
	cr_assert_eq(op_run(&o, 2, in, 1, &y), QT_OK, "%s", qt_error_msg());
	static const float want2[] = {54, 63, 72, 99, 108, 117, 144, 153, 162};
	expect_shape(&y, DIMS(1, 1, 3, 3));
	expect_close(&y, want2, 9);
	qt_tensor_free(&y);
	qt_tensor_free(&x);
	qt_tensor_free(&w);
	op_free(&o);
}

Test(nn_conv, spec_strides_asymmetric_padding_and_same_lower)
{
	struct op o = op_new("Conv", 11);
	set_ints(&o, "strides", INTS(2, 2));
	set_ints(&o, "pads", INTS(1, 0, 1, 0));
	struct qt_tensor x = tf(DIMS(1, 1, 7, 5), NULL), w = tf(DIMS(1, 1, 3, 3), NULL), y;
	iota(&x, 0);
	fill(&w, 1);
	const struct qt_tensor *in[] = {&x, &w};
	cr_assert_eq(op_run(&o, 2, in, 1, &y), QT_OK, "%s", qt_error_msg());
	static const float want[] = {21, 33, 99, 117, 189, 207, 171, 183};
	expect_shape(&y, DIMS(1, 1, 4, 2));
	expect_close(&y, want, 8);
	qt_tensor_free(&y);
	qt_tensor_free(&x);
	op_free(&o);

	/* test_conv_with_autopad_same: 5x5, SAME_LOWER, stride 2 -> 3x3 with the odd pad first. */
	o = op_new("Conv", 11);
	set_ints(&o, "strides", INTS(2, 2));
	set_str(&o, "auto_pad", "SAME_LOWER");
	x = tf(DIMS(1, 1, 5, 5), NULL);
	iota(&x, 0);
	in[0] = &x;
	cr_assert_eq(op_run(&o, 2, in, 1, &y), QT_OK, "%s", qt_error_msg());
	static const float want2[] = {12, 27, 24, 63, 108, 81, 72, 117, 84};
	expect_shape(&y, DIMS(1, 1, 3, 3));
	expect_close(&y, want2, 9);
	qt_tensor_free(&y);
	qt_tensor_free(&x);
	qt_tensor_free(&w);
	op_free(&o);
}

/* ---------- Conv: randomised against a direct loop ---------- */

struct conv_case {
	int nsp;
	int64_t N, C, M, group;
	int64_t in[3], k[3], s[3], d[3], pb[3], pe[3];
	int bias;
	const char *auto_pad; /* NULL: explicit pads; else pb/pe are what it must produce */
};

/* Lift model-order spatial arrays to 3-D (leading unit dims). */
static void lift(int nsp, const int64_t *v, int64_t dflt, int64_t *out)
{
	for (int i = 0; i < 3; i++)
		out[i] = i < 3 - nsp ? dflt : v[i - (3 - nsp)];
}

static void conv_case_run(const struct conv_case *c, uint64_t seed)
{
	int64_t in[3], k[3], s[3], d[3], pb[3], pe[3], out[3];
	lift(c->nsp, c->in, 1, in);
	lift(c->nsp, c->k, 1, k);
	lift(c->nsp, c->s, 1, s);
	lift(c->nsp, c->d, 1, d);
	lift(c->nsp, c->pb, 0, pb);
	lift(c->nsp, c->pe, 0, pe);
	for (int i = 0; i < 3; i++)
		out[i] = (in[i] + pb[i] + pe[i] - (k[i] - 1) * d[i] - 1) / s[i] + 1;
	int64_t xd[5] = {c->N, c->C}, wd[5] = {c->M, c->C / c->group}, yd[5] = {c->N, c->M};
	for (int i = 0; i < c->nsp; i++) {
		xd[2 + i] = c->in[i];
		wd[2 + i] = c->k[i];
		yd[2 + i] = out[3 - c->nsp + i];
	}
	rng_state = seed;
	struct qt_tensor x = tf(2 + c->nsp, xd, NULL), w = tf(2 + c->nsp, wd, NULL), b = tf(DIMS(c->M), NULL), y;
	randomize(&x);
	randomize(&w);
	randomize(&b);
	struct op o = op_new("Conv", 11);
	set_int(&o, "group", c->group);
	set_ints(&o, "strides", c->nsp, c->s);
	set_ints(&o, "dilations", c->nsp, c->d);
	if (c->auto_pad) {
		set_str(&o, "auto_pad", c->auto_pad);
	} else {
		int64_t pads[6];
		for (int i = 0; i < c->nsp; i++) {
			pads[i] = c->pb[i];
			pads[c->nsp + i] = c->pe[i];
		}
		set_ints(&o, "pads", 2 * c->nsp, pads);
	}
	const struct qt_tensor *ins[] = {&x, &w, &b};
	cr_assert_eq(op_run(&o, c->bias ? 3 : 2, ins, 1, &y), QT_OK, "seed %llu: %s", (unsigned long long)seed,
		     qt_error_msg());
	expect_shape(&y, 2 + c->nsp, yd);

	int64_t P = out[0] * out[1] * out[2], Pin = in[0] * in[1] * in[2], K = k[0] * k[1] * k[2];
	int64_t cg = c->C / c->group, mg = c->M / c->group, ny = c->N * c->M * P;
	double *ref = calloc((size_t)ny, sizeof *ref), *mag = calloc((size_t)ny, sizeof *mag);
	const float *xp = x.data, *wp = w.data, *bp = b.data;
	for (int64_t n = 0; n < c->N; n++)
		for (int64_t m = 0; m < c->M; m++)
			for (int64_t p = 0; p < P; p++) {
				int64_t o0 = p / (out[1] * out[2]), o1 = p / out[2] % out[1], o2 = p % out[2];
				double acc = c->bias ? bp[m] : 0, am = c->bias ? fabs(bp[m]) : 0;
				for (int64_t ci = 0; ci < cg; ci++) {
					int64_t ch = (m / mg) * cg + ci;
					for (int64_t t = 0; t < K; t++) {
						int64_t t0 = t / (k[1] * k[2]), t1 = t / k[2] % k[1], t2 = t % k[2];
						int64_t i0 = o0 * s[0] - pb[0] + t0 * d[0],
							i1 = o1 * s[1] - pb[1] + t1 * d[1];
						int64_t i2 = o2 * s[2] - pb[2] + t2 * d[2];
						if (i0 < 0 || i0 >= in[0] || i1 < 0 || i1 >= in[1] || i2 < 0 ||
						    i2 >= in[2])
							continue;
						double v = (double)xp[(n * c->C + ch) * Pin +
								      (i0 * in[1] + i1) * in[2] + i2] *
							   wp[(m * cg + ci) * K + t];
						acc += v;
						am += fabs(v);
					}
				}
				ref[(n * c->M + m) * P + p] = acc;
				mag[(n * c->M + m) * P + p] = am;
			}
	expect_ref(&y, ref, mag, ny, seed);
	free(ref);
	free(mag);
	qt_tensor_free(&y);
	qt_tensor_free(&x);
	qt_tensor_free(&w);
	qt_tensor_free(&b);
	op_free(&o);
}

Test(nn_conv, random_against_direct_loop)
{
	static const struct conv_case cases[] = {
		/* plain 2-D, bias, padding, stride */
		{2, 2, 3, 4, 1, {7, 6}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, 1, NULL},
		{2, 1, 5, 3, 1, {9, 8}, {3, 2}, {2, 3}, {1, 1}, {1, 0}, {2, 1}, 0, NULL},
		/* dilation */
		{2, 2, 3, 2, 1, {8, 8}, {3, 3}, {2, 2}, {2, 2}, {1, 1}, {1, 1}, 1, NULL},
		/* groups */
		{2, 2, 4, 6, 2, {6, 5}, {3, 2}, {1, 1}, {1, 1}, {0, 0}, {0, 0}, 1, NULL},
		/* depthwise, multiplier 1 and 2, strided and padded */
		{2, 2, 4, 4, 4, {6, 6}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, 1, NULL},
		{2, 1, 4, 8, 4, {7, 6}, {3, 3}, {2, 2}, {1, 2}, {1, 2}, {0, 1}, 1, NULL},
		{2, 1, 3, 3, 3, {5, 9}, {3, 3}, {2, 3}, {1, 1}, {0, 0}, {0, 0}, 0, NULL},
		/* depthwise 3x3 at stride 1 and 2 over lines long enough for the vector loops, odd
		 * widths, asymmetric pads; a 5-wide kernel through the generic interior loop */
		{2, 2, 3, 3, 3, {6, 37}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, 1, NULL},
		{2, 2, 4, 4, 4, {9, 41}, {3, 3}, {2, 2}, {1, 1}, {1, 0}, {1, 1}, 1, NULL},
		{2, 1, 2, 2, 2, {4, 23}, {2, 5}, {1, 1}, {1, 1}, {0, 2}, {1, 2}, 1, NULL},
		/* pointwise 1x1 (no im2col), with and without groups; 1x1 strided needs im2col */
		{2, 2, 8, 5, 1, {4, 3}, {1, 1}, {1, 1}, {1, 1}, {0, 0}, {0, 0}, 1, NULL},
		{2, 1, 6, 4, 2, {3, 5}, {1, 1}, {1, 1}, {1, 1}, {0, 0}, {0, 0}, 0, NULL},
		{2, 1, 3, 2, 1, {5, 5}, {1, 1}, {2, 2}, {1, 1}, {0, 0}, {0, 0}, 1, NULL},
		/* 1-D and 3-D */
		{1, 2, 4, 5, 1, {10}, {3}, {2}, {2}, {2}, {1}, 1, NULL},
		{1, 1, 4, 4, 4, {9}, {5}, {1}, {1}, {2}, {2}, 1, NULL},
		{3, 2, 3, 4, 1, {3, 4, 5}, {2, 3, 2}, {1, 2, 1}, {1, 1, 2}, {1, 0, 1}, {0, 1, 1}, 1, NULL},
		{3, 1, 4, 6, 2, {4, 4, 4}, {2, 2, 2}, {2, 1, 2}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1, NULL},
		/* auto_pad: pb/pe are the pads the op must derive */
		{2, 1, 2, 3, 1, {5, 6}, {3, 3}, {2, 2}, {1, 1}, {1, 0}, {1, 1}, 1, "SAME_UPPER"},
		{2, 1, 2, 3, 1, {5, 6}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, {1, 0}, 1, "SAME_LOWER"},
		{2, 1, 2, 3, 1, {5, 6}, {3, 2}, {2, 2}, {1, 1}, {0, 0}, {0, 0}, 1, "VALID"},
		/* several im2col chunks: 64 * 9 rows x 64 columns per line, 130 lines */
		{2, 1, 64, 8, 1, {130, 64}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, 1, NULL},
		/* few chunks: output channels split into slices of 32 (100 = 3 x 32 + 4), also per group
		 * and pointwise */
		{2, 1, 16, 100, 1, {5, 4}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, 1, NULL},
		{2, 1, 8, 136, 2, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {0, 0}, {0, 0}, 0, NULL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		conv_case_run(&cases[i], 1000 + i);
}

/* ---------- ConvTranspose ---------- */

Test(nn_convtranspose, spec_example)
{
	struct op o = op_new("ConvTranspose", 11);
	struct qt_tensor x = tf(DIMS(1, 1, 3, 3), NULL), w = tf(DIMS(1, 2, 3, 3), NULL), y;
	iota(&x, 0);
	fill(&w, 1);
	const struct qt_tensor *in[] = {&x, &w};
	cr_assert_eq(op_run(&o, 2, in, 1, &y), QT_OK, "%s", qt_error_msg());
	static const float plane[] = {0,  1,  3, 3,  2,  3,  8,  15, 12, 7,  9,  21, 36,
				      27, 15, 9, 20, 33, 24, 13, 6,  13, 21, 15, 8};
	float want[50];
	memcpy(want, plane, sizeof plane);
	memcpy(want + 25, plane, sizeof plane);
	expect_shape(&y, DIMS(1, 2, 5, 5));
	expect_close(&y, want, 50);
	qt_tensor_free(&y);
	qt_tensor_free(&x);
	qt_tensor_free(&w);
	op_free(&o);
}

struct convt_case {
	int nsp;
	int64_t N, C, M, group; /* M = output channels */
	int64_t in[3], k[3], s[3], d[3], pb[3], pe[3], op[3];
	int bias;
	int use_output_shape; /* give output_shape instead of pads (pb/pe are then derived) */
};

static void convt_case_run(const struct convt_case *c, uint64_t seed)
{
	int64_t in[3], k[3], s[3], d[3], pb[3], pe[3], opd[3], out[3];
	lift(c->nsp, c->in, 1, in);
	lift(c->nsp, c->k, 1, k);
	lift(c->nsp, c->s, 1, s);
	lift(c->nsp, c->d, 1, d);
	lift(c->nsp, c->pb, 0, pb);
	lift(c->nsp, c->pe, 0, pe);
	lift(c->nsp, c->op, 0, opd);
	for (int i = 0; i < 3; i++)
		out[i] = s[i] * (in[i] - 1) + opd[i] + (k[i] - 1) * d[i] + 1 - pb[i] - pe[i];
	int64_t cg = c->C / c->group, mg = c->M / c->group;
	int64_t xd[5] = {c->N, c->C}, wd[5] = {c->C, mg}, yd[5] = {c->N, c->M}, osh[3];
	for (int i = 0; i < c->nsp; i++) {
		xd[2 + i] = c->in[i];
		wd[2 + i] = c->k[i];
		yd[2 + i] = osh[i] = out[3 - c->nsp + i];
	}
	rng_state = seed;
	struct qt_tensor x = tf(2 + c->nsp, xd, NULL), w = tf(2 + c->nsp, wd, NULL), b = tf(DIMS(c->M), NULL), y;
	randomize(&x);
	randomize(&w);
	randomize(&b);
	struct op o = op_new("ConvTranspose", 11);
	set_int(&o, "group", c->group);
	set_ints(&o, "strides", c->nsp, c->s);
	set_ints(&o, "dilations", c->nsp, c->d);
	set_ints(&o, "output_padding", c->nsp, c->op);
	if (c->use_output_shape) {
		set_ints(&o, "output_shape", c->nsp, osh);
	} else {
		int64_t pads[6];
		for (int i = 0; i < c->nsp; i++) {
			pads[i] = c->pb[i];
			pads[c->nsp + i] = c->pe[i];
		}
		set_ints(&o, "pads", 2 * c->nsp, pads);
	}
	const struct qt_tensor *ins[] = {&x, &w, &b};
	cr_assert_eq(op_run(&o, c->bias ? 3 : 2, ins, 1, &y), QT_OK, "seed %llu: %s", (unsigned long long)seed,
		     qt_error_msg());
	expect_shape(&y, 2 + c->nsp, yd);

	int64_t P = out[0] * out[1] * out[2], Pin = in[0] * in[1] * in[2], K = k[0] * k[1] * k[2];
	int64_t ny = c->N * c->M * P;
	double *ref = calloc((size_t)ny, sizeof *ref), *mag = calloc((size_t)ny, sizeof *mag);
	const float *xp = x.data, *wp = w.data, *bp = b.data;
	for (int64_t n = 0; n < c->N; n++)
		for (int64_t m = 0; m < c->M; m++) {
			for (int64_t p = 0; p < P; p++) {
				ref[(n * c->M + m) * P + p] = c->bias ? bp[m] : 0;
				mag[(n * c->M + m) * P + p] = c->bias ? fabs(bp[m]) : 0;
			}
			for (int64_t ci = 0; ci < cg; ci++) {
				int64_t ch = (m / mg) * cg + ci;
				for (int64_t ip = 0; ip < Pin; ip++)
					for (int64_t t = 0; t < K; t++) {
						int64_t i0 = ip / (in[1] * in[2]), i1 = ip / in[2] % in[1],
							i2 = ip % in[2];
						int64_t t0 = t / (k[1] * k[2]), t1 = t / k[2] % k[1], t2 = t % k[2];
						int64_t o0 = i0 * s[0] + t0 * d[0] - pb[0],
							o1 = i1 * s[1] + t1 * d[1] - pb[1];
						int64_t o2 = i2 * s[2] + t2 * d[2] - pb[2];
						if (o0 < 0 || o0 >= out[0] || o1 < 0 || o1 >= out[1] || o2 < 0 ||
						    o2 >= out[2])
							continue;
						double v = (double)xp[(n * c->C + ch) * Pin + ip] *
							   wp[(ch * mg + m % mg) * K + t];
						int64_t yi = (n * c->M + m) * P + (o0 * out[1] + o1) * out[2] + o2;
						ref[yi] += v;
						mag[yi] += fabs(v);
					}
			}
		}
	expect_ref(&y, ref, mag, ny, seed);
	free(ref);
	free(mag);
	qt_tensor_free(&y);
	qt_tensor_free(&x);
	qt_tensor_free(&w);
	qt_tensor_free(&b);
	op_free(&o);
}

Test(nn_convtranspose, random_against_direct_loop)
{
	static const struct convt_case cases[] = {
		{2, 1, 3, 4, 1, {7, 6}, {3, 3}, {3, 2}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, 1, 0},
		{2, 2, 4, 6, 2, {4, 5}, {3, 2}, {2, 2}, {1, 1}, {0, 1}, {1, 0}, {0, 1}, 1, 0},
		{2, 1, 2, 2, 1, {3, 3}, {2, 2}, {1, 1}, {2, 2}, {0, 0}, {0, 0}, {0, 0}, 0, 0},
		{1, 2, 3, 2, 1, {5}, {3}, {2}, {1}, {0}, {0}, {1}, 1, 0},
		{3, 1, 2, 3, 1, {2, 3, 2}, {2, 2, 3}, {2, 1, 2}, {1, 2, 1}, {0, 1, 1}, {1, 0, 1}, {1, 0, 0}, 1, 0},
		/* output_shape: total padding 2 and 3 split with the larger half first (NOTSET) */
		{2, 1, 2, 2, 1, {3, 3}, {3, 3}, {2, 2}, {1, 1}, {1, 2}, {1, 1}, {0, 0}, 1, 1},
		/* several col2im chunks: 40 * 9 rows x 128 columns per line, 100 lines */
		{2, 1, 8, 40, 1, {100, 128}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, {0, 0}, 1, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		convt_case_run(&cases[i], 2000 + i);
}

Test(nn_convtranspose, output_shape_larger_than_computed_pads_the_end)
{
	/* test_convtranspose_output_shape: 3x3, strides (3, 2) -> 9x7, asked for 10x8. */
	struct op o = op_new("ConvTranspose", 11);
	set_ints(&o, "strides", INTS(3, 2));
	set_ints(&o, "output_shape", INTS(10, 8));
	struct qt_tensor x = tf(DIMS(1, 1, 3, 3), NULL), w = tf(DIMS(1, 1, 3, 3), NULL), y;
	iota(&x, 1);
	fill(&w, 1);
	const struct qt_tensor *in[] = {&x, &w};
	cr_assert_eq(op_run(&o, 2, in, 1, &y), QT_OK, "%s", qt_error_msg());
	expect_shape(&y, DIMS(1, 1, 10, 8));
	const float *p = y.data;
	cr_assert_float_eq(p[0], 1.0f, 1e-6);
	for (int i = 0; i < 8; i++)
		cr_assert_float_eq(p[9 * 8 + i], 0.0f, 1e-6, "last row must be padding");
	for (int i = 0; i < 10; i++)
		cr_assert_float_eq(p[i * 8 + 7], 0.0f, 1e-6, "last column must be padding");
	qt_tensor_free(&y);
	qt_tensor_free(&x);
	qt_tensor_free(&w);
	op_free(&o);
}

/* ---------- pools ---------- */

static void pool_check(const char *op, struct op *o, const struct qt_tensor *x, int rank, const int64_t *dims,
		       const float *want)
{
	struct qt_tensor y;
	const struct qt_tensor *in[] = {x};
	cr_assert_eq(op_run(o, 1, in, 1, &y), QT_OK, "%s: %s", op, qt_error_msg());
	expect_shape(&y, rank, dims);
	expect_close(&y, want, qt_tensor_numel(&y));
	qt_tensor_free(&y);
	op_free(o);
}

Test(nn_pool, maxpool_spec_examples)
{
	struct qt_tensor x = tf(DIMS(1, 1, 5, 5), NULL), x4 = tf(DIMS(1, 1, 4, 4), NULL);
	iota(&x, 1);
	iota(&x4, 1);
	struct op o = op_new("MaxPool", 12);
	set_ints(&o, "kernel_shape", INTS(2, 2));
	set_ints(&o, "strides", INTS(2, 2));
	pool_check("strides", &o, &x, DIMS(1, 1, 2, 2), (const float[]){7, 9, 17, 19});

	o = op_new("MaxPool", 12);
	set_ints(&o, "kernel_shape", INTS(5, 5));
	set_ints(&o, "pads", INTS(2, 2, 2, 2));
	pool_check("pads", &o, &x, DIMS(1, 1, 5, 5), (const float[]){13, 14, 15, 15, 15, 18, 19, 20, 20, 20, 23, 24, 25,
								     25, 25, 23, 24, 25, 25, 25, 23, 24, 25, 25, 25});

	o = op_new("MaxPool", 12);
	set_ints(&o, "kernel_shape", INTS(3, 3));
	set_ints(&o, "strides", INTS(2, 2));
	set_str(&o, "auto_pad", "SAME_UPPER");
	pool_check("same_upper", &o, &x, DIMS(1, 1, 3, 3), (const float[]){7, 9, 10, 17, 19, 20, 22, 24, 25});

	o = op_new("MaxPool", 12);
	set_ints(&o, "kernel_shape", INTS(3, 3));
	set_ints(&o, "strides", INTS(2, 2));
	set_int(&o, "ceil_mode", 1);
	pool_check("ceil", &o, &x4, DIMS(1, 1, 2, 2), (const float[]){11, 12, 15, 16});

	o = op_new("MaxPool", 12);
	set_ints(&o, "kernel_shape", INTS(2, 2));
	set_ints(&o, "dilations", INTS(2, 2));
	pool_check("dilations", &o, &x4, DIMS(1, 1, 2, 2), (const float[]){11, 12, 15, 16});
	qt_tensor_free(&x);
	qt_tensor_free(&x4);
}

Test(nn_pool, maxpool_indices_row_and_column_major)
{
	struct qt_tensor x = tf(DIMS(1, 1, 5, 5), NULL), y[2];
	iota(&x, 1);
	const struct qt_tensor *in[] = {&x};
	for (int so = 0; so < 2; so++) {
		struct op o = op_new("MaxPool", 12);
		set_ints(&o, "kernel_shape", INTS(2, 2));
		set_ints(&o, "strides", INTS(2, 2));
		set_int(&o, "storage_order", so);
		cr_assert_eq(op_run(&o, 1, in, 2, y), QT_OK, "%s", qt_error_msg());
		cr_assert_eq(y[1].dtype, QT_DTYPE_I64);
		const int64_t *idx = y[1].data;
		static const int64_t rm[] = {6, 8, 16, 18}, cm[] = {6, 16, 8, 18};
		for (int i = 0; i < 4; i++)
			cr_assert_eq(idx[i], so ? cm[i] : rm[i], "storage_order %d index %d: %lld", so, i,
				     (long long)idx[i]);
		free_all(y, 2);
		op_free(&o);
	}
	qt_tensor_free(&x);
}

/*
 * MaxPool without indices takes a line-by-line path; with the Indices output
 * it scans window by window. Both must give the same bits: random inputs with
 * ties, NaNs and -0, odd widths, pads larger than dilated taps reach (empty
 * windows: -inf), strides, dilations and ceil_mode, 1-D to 3-D.
 */
Test(nn_pool, maxpool_lines_equal_the_window_scan)
{
	static const struct {
		int nsp;
		int64_t in[3], k[3], s[3], d[3], pads[6];
		int ceil;
	} cases[] = {
		{2, {11, 37}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, 0},
		{2, {9, 40}, {3, 3}, {1, 1}, {1, 1}, {1, 0, 1, 2}, 0},
		{2, {8, 33}, {2, 5}, {3, 2}, {2, 2}, {0, 2, 1, 2}, 1},
		{2, {5, 19}, {2, 2}, {2, 2}, {1, 1}, {1, 1, 1, 1}, 1},
		{1, {45}, {4}, {3}, {2}, {3, 3}, 0},
		{3, {3, 4, 23}, {2, 2, 3}, {1, 2, 2}, {1, 1, 1}, {1, 0, 1, 0, 1, 1}, 1},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		int64_t xd[5] = {2, 3};
		for (int i = 0; i < cases[c].nsp; i++)
			xd[2 + i] = cases[c].in[i];
		struct qt_tensor x = tf(2 + cases[c].nsp, xd, NULL), y1, y2[2];
		rng_state = 77 + c;
		randomize(&x);
		float *p = x.data;
		for (int64_t i = 0; i < qt_tensor_numel(&x); i += 7)
			p[i] = i % 3 == 0 ? NAN : i % 3 == 1 ? -0.0f : p[i - 1 < 0 ? 0 : i - 1];
		const struct qt_tensor *in[] = {&x};
		struct op o1 = op_new("MaxPool", 12), o2 = op_new("MaxPool", 12);
		struct op *os[] = {&o1, &o2};
		for (int k = 0; k < 2; k++) {
			set_ints(os[k], "kernel_shape", cases[c].nsp, cases[c].k);
			set_ints(os[k], "strides", cases[c].nsp, cases[c].s);
			set_ints(os[k], "dilations", cases[c].nsp, cases[c].d);
			set_ints(os[k], "pads", 2 * cases[c].nsp, cases[c].pads);
			set_int(os[k], "ceil_mode", cases[c].ceil);
		}
		cr_assert_eq(op_run(&o1, 1, in, 1, &y1), QT_OK, "case %zu: %s", c, qt_error_msg());
		cr_assert_eq(op_run(&o2, 1, in, 2, y2), QT_OK, "case %zu: %s", c, qt_error_msg());
		cr_assert_eq(y1.nbytes, y2[0].nbytes, "case %zu", c);
		cr_assert(memcmp(y1.data, y2[0].data, y1.nbytes) == 0, "case %zu: values differ from the window scan", c);
		qt_tensor_free(&y1);
		free_all(y2, 2);
		qt_tensor_free(&x);
		op_free(&o1);
		op_free(&o2);
	}
}

Test(nn_pool, maxpool_uint8)
{
	struct qt_tensor x = {0}, y;
	cr_assert_eq(qt_tensor_alloc(&x, QT_DTYPE_U8, DIMS(1, 1, 2, 3)), QT_OK);
	uint8_t *p = x.data;
	static const uint8_t v[] = {3, 250, 7, 9, 1, 200};
	memcpy(p, v, 6);
	struct op o = op_new("MaxPool", 12);
	set_ints(&o, "kernel_shape", INTS(2, 2));
	const struct qt_tensor *in[] = {&x};
	cr_assert_eq(op_run(&o, 1, in, 1, &y), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(y.dtype, QT_DTYPE_U8);
	expect_shape(&y, DIMS(1, 1, 1, 2));
	cr_assert_eq(((uint8_t *)y.data)[0], 250);
	cr_assert_eq(((uint8_t *)y.data)[1], 250);
	qt_tensor_free(&y);
	qt_tensor_free(&x);
	op_free(&o);
}

Test(nn_pool, averagepool_spec_examples)
{
	struct qt_tensor x = tf(DIMS(1, 1, 5, 5), NULL), x4 = tf(DIMS(1, 1, 4, 4), NULL);
	iota(&x, 1);
	iota(&x4, 1);
	struct op o = op_new("AveragePool", 11);
	set_ints(&o, "kernel_shape", INTS(5, 5));
	set_ints(&o, "pads", INTS(2, 2, 2, 2));
	pool_check("pads", &o, &x, DIMS(1, 1, 5, 5),
		   (const float[]){7,    7.5, 8,    8.5, 9,    9.5, 10,   10.5, 11,   11.5, 12,   12.5, 13,
				   13.5, 14,  14.5, 15,  15.5, 16,  16.5, 17,   17.5, 18,   18.5, 19});

	o = op_new("AveragePool", 11);
	set_ints(&o, "kernel_shape", INTS(5, 5));
	set_ints(&o, "pads", INTS(2, 2, 2, 2));
	set_int(&o, "count_include_pad", 1);
	pool_check("pads_count_include_pad", &o, &x, DIMS(1, 1, 5, 5),
		   (const float[]){2.52f,  3.6f,  4.8f,  4.08f, 3.24f, 4.56f, 6.4f,  8.4f, 7.04f,
				   5.52f,  7.2f,  10,    13,    10.8f, 8.4f,  6.96f, 9.6f, 12.4f,
				   10.24f, 7.92f, 6.12f, 8.4f,  10.8f, 8.88f, 6.84f});

	o = op_new("AveragePool", 11);
	set_ints(&o, "kernel_shape", INTS(3, 3));
	set_ints(&o, "strides", INTS(2, 2));
	set_str(&o, "auto_pad", "SAME_UPPER");
	pool_check("same_upper", &o, &x, DIMS(1, 1, 3, 3),
		   (const float[]){4, 5.5f, 7, 11.5f, 13, 14.5f, 19, 20.5f, 22});

	o = op_new("AveragePool", 11);
	set_ints(&o, "kernel_shape", INTS(3, 3));
	set_ints(&o, "strides", INTS(2, 2));
	set_int(&o, "ceil_mode", 1);
	pool_check("ceil", &o, &x4, DIMS(1, 1, 2, 2), (const float[]){6, 7.5f, 12, 13.5f});

	/* 1-D */
	struct qt_tensor x1 = tf(DIMS(1, 2, 5), NULL);
	iota(&x1, 0);
	o = op_new("AveragePool", 11);
	set_ints(&o, "kernel_shape", INTS(2));
	pool_check("1d", &o, &x1, DIMS(1, 2, 4), (const float[]){0.5f, 1.5f, 2.5f, 3.5f, 5.5f, 6.5f, 7.5f, 8.5f});
	qt_tensor_free(&x);
	qt_tensor_free(&x4);
	qt_tensor_free(&x1);
}

Test(nn_pool, global_pools)
{
	struct qt_tensor x = tf(DIMS(1, 2, 3, 3), NULL), y;
	iota(&x, 1);
	((float *)x.data)[13] = -100;
	const struct qt_tensor *in[] = {&x};
	struct op o = op_new("GlobalAveragePool", 1);
	cr_assert_eq(op_run(&o, 1, in, 1, &y), QT_OK, "%s", qt_error_msg());
	expect_shape(&y, DIMS(1, 2, 1, 1));
	expect_close(&y, (const float[]){5, (10 + 11 + 12 + 13 - 100 + 15 + 16 + 17 + 18) / 9.0f}, 2);
	qt_tensor_free(&y);
	op_free(&o);
	o = op_new("GlobalMaxPool", 1);
	cr_assert_eq(op_run(&o, 1, in, 1, &y), QT_OK, "%s", qt_error_msg());
	expect_close(&y, (const float[]){9, 18}, 2);
	qt_tensor_free(&y);
	op_free(&o);
	qt_tensor_free(&x);
}

/* ---------- Gemm and MatMul ---------- */

struct gemm_case {
	int64_t M, N, K;
	int ta, tb;
	float alpha, beta;
	int c_rank; /* -1: no C */
	int64_t cd[2];
};

static void gemm_case_run(const struct gemm_case *c, uint64_t seed)
{
	rng_state = seed;
	int64_t ad[2] = {c->ta ? c->K : c->M, c->ta ? c->M : c->K}, bd[2] = {c->tb ? c->N : c->K, c->tb ? c->K : c->N};
	struct qt_tensor A = tf(2, ad, NULL), B = tf(2, bd, NULL), C = {0}, y;
	randomize(&A);
	randomize(&B);
	if (c->c_rank >= 0) {
		C = tf(c->c_rank, c->cd, NULL);
		randomize(&C);
	}
	struct op o = op_new("Gemm", 13);
	set_int(&o, "transA", c->ta);
	set_int(&o, "transB", c->tb);
	set_float(&o, "alpha", c->alpha);
	set_float(&o, "beta", c->beta);
	const struct qt_tensor *in[] = {&A, &B, c->c_rank >= 0 ? &C : NULL};
	cr_assert_eq(op_run(&o, 3, in, 1, &y), QT_OK, "seed %llu: %s", (unsigned long long)seed, qt_error_msg());
	expect_shape(&y, DIMS(c->M, c->N));
	int64_t n = c->M * c->N;
	double *ref = calloc((size_t)(n ? n : 1), sizeof *ref), *mag = calloc((size_t)(n ? n : 1), sizeof *mag);
	const float *a = A.data, *b = B.data, *cp = C.data;
	for (int64_t i = 0; i < c->M; i++)
		for (int64_t j = 0; j < c->N; j++) {
			double acc = 0, am = 0;
			for (int64_t k = 0; k < c->K; k++) {
				double v = (double)(c->ta ? a[k * c->M + i] : a[i * c->K + k]) *
					   (c->tb ? b[j * c->K + k] : b[k * c->N + j]);
				acc += v;
				am += fabs(v);
			}
			acc *= c->alpha;
			am *= fabs(c->alpha);
			if (c->c_rank >= 0) {
				int64_t ci = 0;
				if (c->c_rank == 2)
					ci = (c->cd[0] == 1 ? 0 : i) * c->cd[1] + (c->cd[1] == 1 ? 0 : j);
				else if (c->c_rank == 1)
					ci = c->cd[0] == 1 ? 0 : j;
				acc += c->beta * cp[ci];
				am += fabs(c->beta * cp[ci]);
			}
			ref[i * c->N + j] = acc;
			mag[i * c->N + j] = am;
		}
	expect_ref(&y, ref, mag, n, seed);
	free(ref);
	free(mag);
	free_all(&y, 1);
	qt_tensor_free(&A);
	qt_tensor_free(&B);
	qt_tensor_free(&C);
	op_free(&o);
}

Test(nn_gemm, random_against_direct_loop)
{
	static const struct gemm_case cases[] = {
		{3, 5, 4, 0, 0, 1, 1, -1, {0}},      {3, 5, 4, 1, 1, 0.25f, 0.35f, 2, {1, 5}},
		{6, 4, 7, 1, 0, 0.5f, 1, 2, {6, 4}}, {6, 4, 7, 0, 1, 1, 0.5f, 1, {4}},
		{2, 3, 5, 0, 0, 1, 2, 0, {0}},       {2, 3, 5, 0, 0, 1, 1, 1, {1}},
		{4, 3, 2, 0, 0, 1, 1, 2, {4, 1}},    {3, 2, 0, 0, 0, 1, 3, 2, {3, 2}}, /* K = 0: Y = beta * C */
		{65, 33, 130, 1, 1, 1, 1, 1, {33}},
		/* >= 2^22 multiply-adds: row slices on the pool, a short last slice, with transposes */
		{263, 130, 129, 1, 1, 0.5f, 1, 2, {263, 130}}, {300, 120, 117, 0, 0, 1, 1, 1, {120}},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		gemm_case_run(&cases[i], 3000 + i);
}

/* MatMul against a broadcasting direct loop; rank-1 operands follow numpy. */
static void matmul_case_run(int ra, const int64_t *ad, int rb, const int64_t *bd, int ry, const int64_t *yd,
			    uint64_t seed)
{
	rng_state = seed;
	struct qt_tensor A = tf(ra, ad, NULL), B = tf(rb, bd, NULL), y;
	randomize(&A);
	randomize(&B);
	struct op o = op_new("MatMul", 13);
	const struct qt_tensor *in[] = {&A, &B};
	cr_assert_eq(op_run(&o, 2, in, 1, &y), QT_OK, "seed %llu: %s", (unsigned long long)seed, qt_error_msg());
	expect_shape(&y, ry, yd);
	/* Promote to matrices with 4 batch dims, numpy style. */
	int64_t a4[6] = {1, 1, 1, 1, 1, 1}, b4[6] = {1, 1, 1, 1, 1, 1};
	if (ra == 1)
		a4[5] = ad[0];
	else
		for (int i = 0; i < ra; i++)
			a4[6 - ra + i] = ad[i];
	if (rb == 1)
		b4[4] = bd[0];
	else
		for (int i = 0; i < rb; i++)
			b4[6 - rb + i] = bd[i];
	int64_t M = a4[4], K = a4[5], N = b4[5], bat[4], n = qt_tensor_numel(&y);
	for (int i = 0; i < 4; i++)
		bat[i] = a4[i] > b4[i] ? a4[i] : b4[i];
	double *ref = calloc((size_t)n + 1, sizeof *ref), *mag = calloc((size_t)n + 1, sizeof *mag);
	const float *a = A.data, *b = B.data;
	int64_t yi = 0;
	for (int64_t i0 = 0; i0 < bat[0]; i0++)
		for (int64_t i1 = 0; i1 < bat[1]; i1++)
			for (int64_t i2 = 0; i2 < bat[2]; i2++)
				for (int64_t i3 = 0; i3 < bat[3]; i3++) {
					int64_t ia =
						(((i0 % a4[0]) * a4[1] + i1 % a4[1]) * a4[2] + i2 % a4[2]) * a4[3] +
						i3 % a4[3];
					int64_t ib =
						(((i0 % b4[0]) * b4[1] + i1 % b4[1]) * b4[2] + i2 % b4[2]) * b4[3] +
						i3 % b4[3];
					for (int64_t i = 0; i < M; i++)
						for (int64_t j = 0; j < N; j++, yi++) {
							double acc = 0, am = 0;
							for (int64_t k = 0; k < K; k++) {
								double v = (double)a[ia * M * K + i * K + k] *
									   b[ib * K * N + k * N + j];
								acc += v;
								am += fabs(v);
							}
							ref[yi] = acc;
							mag[yi] = am;
						}
				}
	cr_assert_eq(yi, n);
	expect_ref(&y, ref, mag, n, seed);
	free(ref);
	free(mag);
	qt_tensor_free(&y);
	qt_tensor_free(&A);
	qt_tensor_free(&B);
	op_free(&o);
}

Test(nn_matmul, numpy_semantics)
{
	matmul_case_run(DIMS(3, 4), DIMS(4, 5), DIMS(3, 5), 4000);
	matmul_case_run(DIMS(2, 3, 4), DIMS(2, 4, 3), DIMS(2, 3, 3), 4001);
	matmul_case_run(DIMS(2, 3, 4), DIMS(4, 6), DIMS(2, 3, 6), 4002);          /* one sgemm for the batch */
	matmul_case_run(DIMS(3, 4), DIMS(5, 4, 2), DIMS(5, 3, 2), 4003);          /* A broadcast */
	matmul_case_run(DIMS(2, 1, 3, 4), DIMS(5, 4, 2), DIMS(2, 5, 3, 2), 4004); /* both broadcast */
	matmul_case_run(DIMS(4), DIMS(4, 3), DIMS(3), 4005);                      /* 1-D x 2-D */
	matmul_case_run(DIMS(2, 3, 4), DIMS(4), DIMS(2, 3), 4006);                /* 3-D x 1-D */
	matmul_case_run(DIMS(4), DIMS(4), 0, NULL, 4007);                         /* dot product */
	matmul_case_run(DIMS(1, 1, 4), DIMS(1, 4, 7), DIMS(1, 1, 7), 4008);
	/* >= 2^22 multiply-adds: the shared-B product in row slices, the batches over the pool */
	matmul_case_run(DIMS(3, 97, 130), DIMS(130, 120), DIMS(3, 97, 120), 4009);
	matmul_case_run(DIMS(4, 1, 40, 64), DIMS(7, 64, 70), DIMS(4, 7, 40, 70), 4010);
}

/* ---------- normalisations and softmax ---------- */

Test(nn_norm, batchnorm_spec_example_and_legacy_attrs)
{
	struct qt_tensor x = tf(DIMS(1, 2, 1, 3), (const float[]){-1, 0, 1, 2, 3, 4}),
			 s = tf(DIMS(2), (const float[]){1, 1.5f}), b = tf(DIMS(2), (const float[]){0, 1}),
			 m = tf(DIMS(2), (const float[]){0, 3}), v = tf(DIMS(2), (const float[]){1, 1.5f}), y;
	static const float want[] = {-0.999995f, 0, 0.999995f, -0.22474074f, 1, 2.2247407f};
	const struct qt_tensor *in[] = {&x, &s, &b, &m, &v};
	for (int legacy = 0; legacy < 2; legacy++) {
		struct op o = op_new("BatchNormalization", legacy ? 6 : 15);
		if (legacy) {
			set_int(&o, "is_test", 1);
			set_int(&o, "spatial", 1);
			set_float(&o, "momentum", 0.9f);
		}
		cr_assert_eq(op_run(&o, 5, in, 1, &y), QT_OK, "%s", qt_error_msg());
		expect_close(&y, want, 6);
		qt_tensor_free(&y);
		op_free(&o);
	}
	struct op o = op_new("BatchNormalization", 15);
	set_int(&o, "training_mode", 1);
	struct qt_tensor outs[3];
	cr_assert_eq(op_run(&o, 5, in, 3, outs), QT_E_UNSUPPORTED);
	cr_assert(strstr(qt_error_msg(), "training_mode"), "%s", qt_error_msg());
	free_all(outs, 3);
	op_free(&o);
	o = op_new("BatchNormalization", 7);
	set_int(&o, "spatial", 0);
	cr_assert_eq(op_run(&o, 5, in, 1, outs), QT_E_UNSUPPORTED);
	free_all(outs, 1);
	op_free(&o);
	free_all((struct qt_tensor[]){x, s, b, m, v}, 5);
}

Test(nn_norm, instancenorm_spec_example)
{
	struct qt_tensor x = tf(DIMS(1, 2, 1, 3), (const float[]){-1, 0, 1, 2, 3, 4}),
			 s = tf(DIMS(2), (const float[]){1, 1.5f}), b = tf(DIMS(2), (const float[]){0, 1}), y;
	const struct qt_tensor *in[] = {&x, &s, &b};
	struct op o = op_new("InstanceNormalization", 6);
	cr_assert_eq(op_run(&o, 3, in, 1, &y), QT_OK, "%s", qt_error_msg());
	/* each plane is {-1, 0, 1} around its mean, variance 2/3 */
	float r = 1.0f / sqrtf(2.0f / 3.0f + 1e-5f);
	expect_close(&y, (const float[]){-r, 0, r, 1 - 1.5f * r, 1, 1 + 1.5f * r}, 6);
	qt_tensor_free(&y);
	op_free(&o);
	free_all((struct qt_tensor[]){x, s, b}, 3);
}

Test(nn_norm, layernorm_with_statistics_outputs)
{
	static const float xv[] = {0, 1, 2, 3, 4, 5, 18, 24.5f, 32, 40.5f, 50, 60.5f};
	static const float sv[] = {0.5f, 0.7f, 0.9f, 1.1f, 1.3f, 1.5f};
	static const float bv[] = {-1, -0.6f, -0.2f, 0.2f, 0.6f, 1};
	static const float want[] = {-1.7319238f, -1.214816f,  -0.46349257f, 0.5220465f,  1.741801f,  3.1957715f,
				     -1.6720432f, -1.2285749f, -0.5448868f,  0.42020151f, 1.7078706f, 3.3593009f};
	struct qt_tensor x = tf(DIMS(2, 2, 3), xv), s = tf(DIMS(2, 3), sv), b = tf(DIMS(2, 3), bv), outs[3];
	const struct qt_tensor *in[] = {&x, &s, &b};
	struct op o = op_new("LayerNormalization", 17);
	set_int(&o, "axis", 1);
	cr_assert_eq(op_run(&o, 3, in, 3, outs), QT_OK, "%s", qt_error_msg());
	expect_close(&outs[0], want, 12);
	expect_shape(&outs[1], DIMS(2, 1, 1));
	expect_close(&outs[1], (const float[]){2.5f, 37.583332f}, 2);
	expect_close(&outs[2], (const float[]){0.58553904f, 0.068634205f}, 2);
	free_all(outs, 3);
	op_free(&o);

	/* axis -1 with a scale broadcast from [1] and no bias */
	struct qt_tensor x2 = tf(DIMS(2, 3), (const float[]){0, 1, 2, 5, 6, 7}), s1 = tf(DIMS(1), (const float[]){2});
	const struct qt_tensor *in2[] = {&x2, &s1, NULL};
	o = op_new("LayerNormalization", 17);
	cr_assert_eq(op_run(&o, 3, in2, 1, outs), QT_OK, "%s", qt_error_msg());
	float r = 2.0f / sqrtf(2.0f / 3.0f + 1e-5f);
	expect_close(&outs[0], (const float[]){-r, 0, r, -r, 0, r}, 6);
	/* the same scale as a full [3] vector (read by index, not broadcast): the same bits */
	struct qt_tensor s3 = tf(DIMS(3), (const float[]){2, 2, 2}), y3;
	const struct qt_tensor *in3[] = {&x2, &s3, NULL};
	cr_assert_eq(op_run(&o, 3, in3, 1, &y3), QT_OK, "%s", qt_error_msg());
	cr_assert(memcmp(y3.data, outs[0].data, outs[0].nbytes) == 0, "dense and broadcast Scale differ");
	free_all(outs, 1);
	op_free(&o);
	free_all((struct qt_tensor[]){x, s, b, x2, s1, s3, y3}, 7);
}

Test(nn_norm, softmax_legacy_coerces_to_2d)
{
	static const float xv[] = {0.5f, -1, 2, 3, 0, 1, -2, 4};
	static const float legacy[] = {0.05590555f,  0.012474214f, 0.25055125f,   0.681069f,
				       0.017108124f, 0.046504699f, 0.0023153326f, 0.93407184f};
	static const float v13[] = {0.18242553f, 0.01798621f,  0.8175745f,  0.98201376f,
				    0.8807970f,  0.047425874f, 0.11920292f, 0.95257413f};
	static const float lsm13[] = {-1.7014133f,  -4.01815f,   -0.20141323f, -0.01814996f,
				      -0.12692805f, -3.0485873f, -2.126928f,   -0.048587333f};
	struct qt_tensor x = tf(DIMS(2, 2, 2), xv), y;
	const struct qt_tensor *in[] = {&x};
	struct op o = op_new("Softmax", 11);
	set_int(&o, "axis", 1);
	cr_assert_eq(op_run(&o, 1, in, 1, &y), QT_OK, "%s", qt_error_msg());
	expect_close(&y, legacy, 8);
	qt_tensor_free(&y);
	op_free(&o);
	o = op_new("Softmax", 13);
	set_int(&o, "axis", 1);
	cr_assert_eq(op_run(&o, 1, in, 1, &y), QT_OK, "%s", qt_error_msg());
	expect_close(&y, v13, 8);
	qt_tensor_free(&y);
	op_free(&o);
	o = op_new("LogSoftmax", 13);
	set_int(&o, "axis", -2);
	cr_assert_eq(op_run(&o, 1, in, 1, &y), QT_OK, "%s", qt_error_msg());
	expect_close(&y, lsm13, 8);
	qt_tensor_free(&y);
	op_free(&o);
	/* large inputs must not overflow */
	struct qt_tensor xl = tf(DIMS(1, 3), (const float[]){10000, 10001, 10002});
	in[0] = &xl;
	o = op_new("Softmax", 13);
	cr_assert_eq(op_run(&o, 1, in, 1, &y), QT_OK, "%s", qt_error_msg());
	expect_close(&y, (const float[]){0.09003057f, 0.24472847f, 0.66524096f}, 3);
	qt_tensor_free(&y);
	op_free(&o);
	qt_tensor_free(&xl);
	qt_tensor_free(&x);
}

/* ---------- errors name what is wrong ---------- */

Test(nn_errors, clear_messages)
{
	struct qt_tensor x = tf(DIMS(1, 4, 5, 5), NULL), w = tf(DIMS(2, 3, 3, 3), NULL), y;
	const struct qt_tensor *in[] = {&x, &w};
	struct op o = op_new("Conv", 11);
	cr_assert_eq(op_run(&o, 2, in, 1, &y), QT_E_FORMAT);
	cr_assert(strstr(qt_error_msg(), "weight has 3 input channels per group but input has 4"), "%s",
		  qt_error_msg());
	cr_assert(strstr(qt_error_msg(), "n0"), "message must name the node: %s", qt_error_msg());
	op_free(&o);
	qt_tensor_free(&w);

	/* kernel larger than the padded input */
	w = tf(DIMS(1, 4, 7, 7), NULL);
	o = op_new("Conv", 11);
	cr_assert_eq(op_run(&o, 2, in, 1, &y), QT_E_FORMAT);
	cr_assert(strstr(qt_error_msg(), "kernel extent"), "%s", qt_error_msg());
	op_free(&o);
	qt_tensor_free(&w);

	/* float64 is refused naming the dtype */
	struct qt_tensor xd = {0};
	cr_assert_eq(qt_tensor_alloc(&xd, QT_DTYPE_F64, DIMS(2, 2)), QT_OK);
	const struct qt_tensor *in2[] = {&xd, &xd};
	o = op_new("MatMul", 13);
	cr_assert_eq(op_run(&o, 2, in2, 1, &y), QT_E_UNSUPPORTED);
	cr_assert(strstr(qt_error_msg(), "float64"), "%s", qt_error_msg());
	op_free(&o);
	qt_tensor_free(&xd);

	/* MaxPool without kernel_shape */
	o = op_new("MaxPool", 12);
	cr_assert_eq(op_run(&o, 1, in, 1, &y), QT_E_FORMAT);
	cr_assert(strstr(qt_error_msg(), "kernel_shape"), "%s", qt_error_msg());
	op_free(&o);

	/* Gemm inner dimensions */
	struct qt_tensor a = tf(DIMS(2, 3), NULL), b = tf(DIMS(4, 2), NULL);
	const struct qt_tensor *in3[] = {&a, &b};
	o = op_new("Gemm", 13);
	cr_assert_eq(op_run(&o, 2, in3, 1, &y), QT_E_FORMAT);
	cr_assert(strstr(qt_error_msg(), "K=3") && strstr(qt_error_msg(), "K=4"), "%s", qt_error_msg());
	op_free(&o);

	/* bad attribute lengths and values */
	o = op_new("Conv", 11);
	set_ints(&o, "strides", INTS(1, 1, 1));
	w = tf(DIMS(1, 4, 3, 3), NULL);
	cr_assert_eq(op_run(&o, 2, in, 1, &y), QT_E_FORMAT);
	cr_assert(strstr(qt_error_msg(), "strides has 3 values"), "%s", qt_error_msg());
	op_free(&o);
	o = op_new("Conv", 11);
	set_ints(&o, "dilations", INTS(1, 0));
	cr_assert_eq(op_run(&o, 2, in, 1, &y), QT_E_FORMAT);
	cr_assert(strstr(qt_error_msg(), "dilations[1] = 0"), "%s", qt_error_msg());
	op_free(&o);
	o = op_new("Conv", 11);
	set_str(&o, "auto_pad", "SAME");
	cr_assert_eq(op_run(&o, 2, in, 1, &y), QT_E_FORMAT);
	op_free(&o);
	free_all((struct qt_tensor[]){x, w, a, b}, 4);
}

/* ---------- ONNX backend test data ---------- */

#define ONNX_DATA "/usr/share/libonnx-testdata/data"

/* The ops this file's kernels implement: anything else missing means "skip, not ours". */
static const char *const OURS[] = {
	"Conv",
	"ConvTranspose",
	"MaxPool",
	"AveragePool",
	"GlobalAveragePool",
	"GlobalMaxPool",
	"Gemm",
	"MatMul",
	"BatchNormalization",
	"InstanceNormalization",
	"LayerNormalization",
	"Softmax",
	"LogSoftmax",
	NULL,
};

/* Folders where refusing the model with QT_E_UNSUPPORTED is the expected answer. */
static const char *const EXPECT_UNSUPPORTED[] = {
	"test_batchnorm_epsilon_training_mode", /* training_mode=1: inference only */
	"test_batchnorm_example_training_mode",
	NULL,
};

static int in_list(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (strcmp(*list, s) == 0)
			return 1;
	return 0;
}

/* 0 when t matches want: dtype, shape, then values (rtol 1e-3, atol 1e-5; exact for integers). */
static int compare(const struct qt_tensor *t, const struct qt_tensor *want, char *why, size_t cap)
{
	char a[96], b[96];
	if (t->dtype != want->dtype) {
		snprintf(why, cap, "dtype %s, expected %s", qt_dtype_name(t->dtype), qt_dtype_name(want->dtype));
		return 1;
	}
	int same = t->rank == want->rank;
	for (int i = 0; same && i < t->rank; i++)
		same = t->dims[i] == want->dims[i];
	if (!same) {
		snprintf(why, cap, "shape %s, expected %s", qt_shape_str(a, sizeof a, t->rank, t->dims),
			 qt_shape_str(b, sizeof b, want->rank, want->dims));
		return 1;
	}
	int is_float = t->dtype == QT_DTYPE_F32 || t->dtype == QT_DTYPE_F64 || t->dtype == QT_DTYPE_F16;
	for (int64_t i = 0; i < qt_tensor_numel(t); i++) {
		double g = qt_tensor_get_f64(t, i), w = qt_tensor_get_f64(want, i);
		int ok = is_float ? ((isnan(g) && isnan(w)) || g == w || fabs(g - w) <= 1e-5 + 1e-3 * fabs(w)) : g == w;
		if (!ok) {
			snprintf(why, cap, "element %lld: got %.9g, expected %.9g", (long long)i, g, w);
			return 1;
		}
	}
	return 0;
}

enum verdict { PASS, FAIL, SKIP };

/* Run every test_data_set_* of one folder. */
static enum verdict run_folder(const char *dir, char *why, size_t cap)
{
	char path[1024], list[512];
	const char *base = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
	int expect_unsup = in_list(EXPECT_UNSUPPORTED, base);
	struct qt_graph *g = NULL;
	struct qt_rt *rt = NULL;
	enum verdict v = PASS;
	snprintf(path, sizeof path, "%s/model.onnx", dir);
	enum qt_status st = qt_graph_load_onnx(path, &g);
	if (st) {
		snprintf(why, cap, "load: %s", qt_error_msg());
		return FAIL;
	}
	if (qt_rt_unsupported_ops(g, list, sizeof list) > 0) {
		int ours = 0;
		for (int i = 0; i < g->n_nodes; i++)
			if (!qt_rt_op_supported(g->nodes[i].domain, g->nodes[i].op_type, g->opset))
				for (const char *const *p = OURS; *p; p++)
					ours |= strcmp(*p, g->nodes[i].op_type) == 0;
		snprintf(why, cap, "unsupported ops: %s", list);
		qt_graph_free(g);
		return ours ? FAIL : SKIP;
	}
	if ((st = qt_rt_new(g, &rt))) {
		snprintf(why, cap, "runtime: %s", qt_error_msg());
		qt_graph_free(g);
		return FAIL;
	}
	glob_t gl;
	snprintf(path, sizeof path, "%s/test_data_set_*", dir);
	if (glob(path, 0, NULL, &gl) != 0) {
		snprintf(why, cap, "no test_data_set_* folders");
		qt_rt_free(rt);
		qt_graph_free(g);
		return FAIL;
	}
	struct qt_tensor ins[16], outs[16], want;
	for (size_t ds = 0; ds < gl.gl_pathc && v == PASS; ds++) {
		int n_in = g->n_inputs, n_out = g->n_outputs, loaded = 0;
		if (n_in > 16 || n_out > 16) {
			snprintf(why, cap, "too many inputs/outputs");
			v = FAIL;
			break;
		}
		memset(ins, 0, sizeof ins);
		for (; loaded < n_in; loaded++) {
			snprintf(path, sizeof path, "%s/input_%d.pb", gl.gl_pathv[ds], loaded);
			if ((st = qt_tensor_read_pb(path, &ins[loaded], NULL, 0))) {
				snprintf(why, cap, "%s", qt_error_msg());
				v = FAIL;
				break;
			}
		}
		if (v == PASS) {
			st = qt_rt_run(rt, ins, outs);
			if (expect_unsup) {
				if (st != QT_E_UNSUPPORTED) {
					snprintf(why, cap, "expected QT_E_UNSUPPORTED, got %s",
						 st ? qt_status_str(st) : "success");
					v = FAIL;
				}
				if (!st)
					free_all(outs, n_out);
			} else if (st) {
				snprintf(why, cap, "run: %s", qt_error_msg());
				v = FAIL;
			} else {
				for (int k = 0; k < n_out && v == PASS; k++) {
					snprintf(path, sizeof path, "%s/output_%d.pb", gl.gl_pathv[ds], k);
					memset(&want, 0, sizeof want);
					if ((st = qt_tensor_read_pb(path, &want, NULL, 0))) {
						snprintf(why, cap, "%s", qt_error_msg());
						v = FAIL;
					} else if (compare(&outs[k], &want, why, cap)) {
						char tmp[400];
						snprintf(tmp, sizeof tmp, "output %d: %s", k, why);
						snprintf(why, cap, "%s", tmp);
						v = FAIL;
					}
					qt_tensor_free(&want);
				}
				free_all(outs, n_out);
			}
		}
		free_all(ins, loaded);
	}
	globfree(&gl);
	qt_rt_free(rt);
	qt_graph_free(g);
	return v;
}

/*
 * Run every folder matching the patterns (relative to ONNX_DATA), skipping
 * *_expanded variants (they test other ops' decompositions). Fails listing
 * every failing folder with its reason.
 */
static void run_family(const char *family, const char *const *patterns)
{
	char path[1024], why[512];
	static char failures[16384];
	size_t fo = 0;
	int pass = 0, fail = 0, skip = 0;
	failures[0] = '\0';
	if (access(ONNX_DATA "/node", R_OK) != 0)
		cr_skip_test("%s not installed (Debian package libonnx-testdata)", ONNX_DATA);
	for (const char *const *p = patterns; *p; p++) {
		glob_t gl;
		snprintf(path, sizeof path, "%s/%s", ONNX_DATA, *p);
		if (glob(path, GLOB_ONLYDIR, NULL, &gl) != 0)
			continue;
		for (size_t i = 0; i < gl.gl_pathc; i++) {
			const char *dir = gl.gl_pathv[i];
			if (strstr(dir, "_expanded"))
				continue;
			why[0] = '\0';
			enum verdict v = run_folder(dir, why, sizeof why);
			const char *base = strrchr(dir, '/') + 1;
			if (v == PASS) {
				pass++;
			} else if (v == SKIP) {
				skip++;
				cr_log_info("%s: skipped %s (%s)", family, base, why);
			} else {
				fail++;
				if (fo < sizeof failures)
					fo += (size_t)snprintf(failures + fo, sizeof failures - fo, "\n  %s: %s", base,
							       why);
			}
		}
		globfree(&gl);
	}
	cr_log_info("%s: %d passed, %d failed, %d skipped", family, pass, fail, skip);
	cr_assert(pass + fail > 0, "%s: no test folders found", family);
	cr_assert_eq(fail, 0, "%s: %d of %d ONNX test folders failed:%s", family, fail, pass + fail, failures);
}

#define FAMILY(name, ...)                                                                                              \
	Test(nn_onnx, name, .timeout = 300)                                                                            \
	{                                                                                                              \
		static const char *const pats[] = {__VA_ARGS__, NULL};                                                 \
		run_family(#name, pats);                                                                               \
	}

FAMILY(conv, "node/test_conv_*", "node/test_basic_conv_*", "pytorch-converted/test_Conv[123]d*",
       "pytorch-operator/test_operator_conv")
FAMILY(convtranspose, "node/test_convtranspose*", "pytorch-converted/test_ConvTranspose*",
       "pytorch-operator/test_operator_convtranspose")
FAMILY(maxpool, "node/test_maxpool_*", "pytorch-converted/test_MaxPool*", "pytorch-operator/test_operator_maxpool")
FAMILY(averagepool, "node/test_averagepool_*", "pytorch-converted/test_AvgPool*")
FAMILY(globalpool, "node/test_globalaveragepool*", "node/test_globalmaxpool*")
FAMILY(gemm, "node/test_gemm_*", "pytorch-converted/test_Linear*", "pytorch-operator/test_operator_addmm",
       "pytorch-operator/test_operator_mm")
FAMILY(matmul, "node/test_matmul_*")
FAMILY(batchnorm, "node/test_batchnorm_*", "pytorch-converted/test_BatchNorm*")
FAMILY(instancenorm, "node/test_instancenorm_*")
FAMILY(layernorm, "node/test_layer_normalization_*")
FAMILY(softmax, "node/test_softmax_*", "pytorch-converted/test_Softmax")
FAMILY(logsoftmax, "node/test_logsoftmax_*", "pytorch-converted/test_LogSoftmax",
       "pytorch-converted/test_log_softmax_*")
