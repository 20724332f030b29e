/*
 * Tests for the shape and data-movement kernels (lib/rt/op_shape.c).
 *
 * Hand-checked cases call each kernel directly through the op registry with
 * a one-node graph, including error messages and dtypes of every element
 * size. The last test runs every ONNX backend node test from Debian's
 * libonnx-testdata whose ops all live in op_shape.c, through the loader and
 * the executor: integer data must match exactly; float Resize/Upsample
 * outputs within rtol 1e-3 / atol 1e-5 (the reference computes coordinates
 * in double, we in float).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qtool/graph.h"
#include "qtool/onnx.h"
#include "qtool/rt.h"
#include "rt/ops.h"

#define DIMS(...) ((const int64_t[]){__VA_ARGS__})
#define F32(...) ((const float[]){__VA_ARGS__})
#define I64(...) ((const int64_t[]){__VA_ARGS__})
#define I32(...) ((const int32_t[]){__VA_ARGS__})
#define IN(...) ((const struct qt_tensor *const[]){__VA_ARGS__})
#define NIN(...) (int)(sizeof((const struct qt_tensor *const[]){__VA_ARGS__}) / sizeof(void *))

static struct qt_graph *g;
static struct qt_node *nd;
static struct qt_tensor out[8];

static void setup(void)
{
	cr_assert_eq(qt_graph_new(&g), QT_OK);
	memset(out, 0, sizeof out);
}

/* Tensors made by T(), freed by teardown so sanitizer builds see no leaks. */
static struct qt_tensor *made[256];
static int n_made;

static void teardown(void)
{
	for (int i = 0; i < 8; i++)
		qt_tensor_free(&out[i]);
	for (int i = 0; i < n_made; i++) {
		qt_tensor_free(made[i]);
		free(made[i]);
	}
	n_made = 0;
	qt_graph_free(g);
}

TestSuite(ops_shape, .init = setup, .fini = teardown);

/* ------------------------------------------------------------ fixtures */

static void node(const char *op)
{
	int i = qt_graph_add_node(g, op, "", "n0");
	cr_assert(i >= 0);
	nd = &g->nodes[i];
	nd->attrs = qt_graph_alloc(g, 16 * sizeof *nd->attrs);
	cr_assert(nd->attrs);
}

static struct qt_attr *attr(const char *name, enum qt_attr_type t)
{
	cr_assert(nd->n_attrs < 16);
	struct qt_attr *a = &nd->attrs[nd->n_attrs++];
	memset(a, 0, sizeof *a);
	a->name = name;
	a->type = t;
	return a;
}

static void a_int(const char *name, int64_t v)
{
	attr(name, QT_ATTR_INT)->i = v;
}

static void a_float(const char *name, float v)
{
	attr(name, QT_ATTR_FLOAT)->f = v;
}

static void a_str(const char *name, const char *s)
{
	struct qt_attr *a = attr(name, QT_ATTR_STRING);
	a->s = s;
	a->s_len = strlen(s);
}

static void a_ints(const char *name, int n, const int64_t *v)
{
	struct qt_attr *a = attr(name, QT_ATTR_INTS);
	a->n = n;
	a->ints = qt_graph_alloc(g, sizeof(int64_t) * (size_t)(n ? n : 1));
	if (n)
		memcpy(a->ints, v, sizeof(int64_t) * (size_t)n);
}

static void a_floats(const char *name, int n, const float *v)
{
	struct qt_attr *a = attr(name, QT_ATTR_FLOATS);
	a->n = n;
	a->floats = qt_graph_alloc(g, sizeof(float) * (size_t)(n ? n : 1));
	if (n)
		memcpy(a->floats, v, sizeof(float) * (size_t)n);
}

/* A tensor with an owned copy of vals (NULL: zeros), freed by teardown. */
static struct qt_tensor *T(enum qt_dtype dt, int rank, const int64_t *dims, const void *vals)
{
	struct qt_tensor *t = calloc(1, sizeof *t);
	cr_assert(t && n_made < 256);
	made[n_made++] = t;
	cr_assert_eq(qt_tensor_alloc(t, dt, rank, dims), QT_OK);
	if (vals && t->nbytes)
		memcpy(t->data, vals, t->nbytes);
	return t;
}

#define TF(rank, dims, ...) T(QT_DTYPE_F32, rank, dims, F32(__VA_ARGS__))
#define TI(rank, dims, ...) T(QT_DTYPE_I64, rank, dims, I64(__VA_ARGS__))
#define TS(...) T(QT_DTYPE_I64, 1, DIMS(NIN_I64(__VA_ARGS__)), I64(__VA_ARGS__))
#define NIN_I64(...) (int64_t)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t))

/* 0..n-1 as float32 of the given shape. */
static struct qt_tensor *iota_f(int rank, const int64_t *dims)
{
	struct qt_tensor *t = T(QT_DTYPE_F32, rank, dims, NULL);
	for (int64_t i = 0; i < qt_tensor_numel(t); i++)
		((float *)t->data)[i] = (float)i;
	return t;
}

static enum qt_status run_op(int opset, int n_in, const struct qt_tensor *const *in, int n_out)
{
	qt_op_fn fn = qt_op_find("", nd->op_type, opset);
	cr_assert(fn, "no kernel for %s at opset %d", nd->op_type, opset);
	for (int i = 0; i < 8; i++)
		qt_tensor_free(&out[i]);
	struct qt_op_args a = {.g = g, .node = nd, .opset = opset, .n_in = n_in, .in = in, .n_out = n_out, .out = out};
	qt_error_clear();
	return fn(&a);
}

#define RUN(opset, ...) run_op(opset, NIN(__VA_ARGS__), IN(__VA_ARGS__), 1)
#define RUN_OK(opset, ...)                                                                                     \
	do {                                                                                                   \
		enum qt_status st_ = RUN(opset, __VA_ARGS__);                                                  \
		cr_assert_eq(st_, QT_OK, "%s failed: %s", nd->op_type, qt_error_msg());                        \
	} while (0)

static void expect_shape(const struct qt_tensor *t, int rank, const int64_t *dims)
{
	char a[128], b[128];
	int same = t->rank == rank;
	for (int i = 0; same && i < rank; i++)
		same = t->dims[i] == dims[i];
	cr_assert(same, "shape %s, expected %s", qt_shape_str(a, sizeof a, t->rank, t->dims),
		  qt_shape_str(b, sizeof b, rank, dims));
}

static void expect_f32(const struct qt_tensor *t, int rank, const int64_t *dims, const float *v)
{
	expect_shape(t, rank, dims);
	cr_assert_eq(t->dtype, QT_DTYPE_F32);
	for (int64_t i = 0; i < qt_tensor_numel(t); i++)
		cr_assert_float_eq(((const float *)t->data)[i], v[i], 1e-5, "element %lld: %g, expected %g",
				   (long long)i, ((const float *)t->data)[i], v[i]);
}

static void expect_i64(const struct qt_tensor *t, int rank, const int64_t *dims, const int64_t *v)
{
	expect_shape(t, rank, dims);
	cr_assert_eq(t->dtype, QT_DTYPE_I64);
	for (int64_t i = 0; i < qt_tensor_numel(t); i++)
		cr_assert_eq(((const int64_t *)t->data)[i], v[i], "element %lld: %lld, expected %lld", (long long)i,
			     (long long)((const int64_t *)t->data)[i], (long long)v[i]);
}

static void expect_err(enum qt_status st, enum qt_status want, const char *substr)
{
	cr_assert_eq(st, want, "status %d (%s), expected %d", st, qt_error_msg(), want);
	cr_assert(strstr(qt_error_msg(), substr), "message \"%s\" lacks \"%s\"", qt_error_msg(), substr);
	cr_assert(strstr(qt_error_msg(), "node \"n0\""), "message \"%s\" does not name the node", qt_error_msg());
}

/* ------------------------------------------------- metadata-only ops */

Test(ops_shape, reshape_zero_and_infer)
{
	node("Reshape");
	RUN_OK(14, iota_f(3, DIMS(2, 3, 4)), TS(0, -1, 2));
	expect_shape(&out[0], 3, DIMS(2, 6, 2));
	cr_assert_eq(((float *)out[0].data)[23], 23.0f);
}

Test(ops_shape, reshape_mismatch_message)
{
	node("Reshape");
	expect_err(RUN(14, iota_f(2, DIMS(2, 3)), TS(4, 2)), QT_E_FORMAT, "cannot reshape [2,3] (6 elements) to [4,2]");
	expect_err(RUN(14, iota_f(2, DIMS(2, 3)), TS(-1, -1)), QT_E_FORMAT, "more than one -1");
	expect_err(RUN(14, iota_f(2, DIMS(2, 3)), TS(4, -1)), QT_E_FORMAT, "cannot reshape");
}

Test(ops_shape, reshape_allowzero_makes_empty)
{
	node("Reshape");
	a_int("allowzero", 1);
	RUN_OK(14, T(QT_DTYPE_F32, 2, DIMS(0, 3), NULL), TS(3, 0));
	expect_shape(&out[0], 2, DIMS(3, 0));
	expect_err(RUN(14, T(QT_DTYPE_F32, 2, DIMS(0, 3), NULL), TS(0, -1)), QT_E_FORMAT, "both -1 and 0");
}

Test(ops_shape, reshape_opset1_attribute_and_scalar)
{
	node("Reshape");
	a_ints("shape", 0, NULL);
	RUN_OK(1, TF(1, DIMS(1), 7));
	expect_f32(&out[0], 0, NULL, F32(7));
}

Test(ops_shape, flatten_axes)
{
	node("Flatten");
	a_int("axis", -1);
	RUN_OK(13, iota_f(3, DIMS(2, 3, 4)));
	expect_shape(&out[0], 2, DIMS(6, 4));
	nd->attrs[0].i = 0;
	RUN_OK(13, iota_f(3, DIMS(2, 3, 4)));
	expect_shape(&out[0], 2, DIMS(1, 24));
	nd->attrs[0].i = 4;
	expect_err(RUN(13, iota_f(3, DIMS(2, 3, 4))), QT_E_FORMAT, "axis 4 out of range for rank 3");
	nd->attrs[0].i = 0;
	RUN_OK(13, TF(0, NULL, 5)); /* rank 0 -> [1,1] */
	expect_f32(&out[0], 2, DIMS(1, 1), F32(5));
}

Test(ops_shape, squeeze_and_unsqueeze)
{
	node("Squeeze");
	RUN_OK(13, iota_f(4, DIMS(1, 3, 1, 2)));
	expect_shape(&out[0], 2, DIMS(3, 2));
	RUN_OK(13, iota_f(4, DIMS(1, 3, 1, 2)), TS(-2));
	expect_shape(&out[0], 3, DIMS(1, 3, 2));
	expect_err(RUN(13, iota_f(4, DIMS(1, 3, 1, 2)), TS(1)), QT_E_FORMAT, "cannot squeeze axis 1 of size 3");
	expect_err(RUN(13, iota_f(4, DIMS(1, 3, 1, 2)), TS(0, -4)), QT_E_FORMAT, "repeated");

	node("Unsqueeze");
	RUN_OK(13, iota_f(2, DIMS(3, 2)), TS(-1, 0));
	expect_shape(&out[0], 4, DIMS(1, 3, 2, 1));
	RUN_OK(13, TF(0, NULL, 1), TS(0));
	expect_shape(&out[0], 1, DIMS(1));
	expect_err(RUN(13, iota_f(2, DIMS(3, 2)), TS(4)), QT_E_FORMAT, "axis 4 out of range for rank 3");

	node("Unsqueeze");
	a_ints("axes", 2, I64(0, 3));
	RUN_OK(11, iota_f(2, DIMS(3, 2)));
	expect_shape(&out[0], 4, DIMS(1, 3, 2, 1));
}

Test(ops_shape, identity_and_constant)
{
	node("Identity");
	struct qt_tensor *x = T(QT_DTYPE_U16, 1, DIMS(3), (const uint16_t[]){1, 2, 65535});
	RUN_OK(16, x);
	cr_assert_eq(out[0].dtype, QT_DTYPE_U16);
	cr_assert(out[0].data != x->data && memcmp(out[0].data, x->data, 6) == 0);

	node("Constant");
	a_ints("value_ints", 3, I64(4, 5, 6));
	RUN_OK(13, NULL);
	expect_i64(&out[0], 1, DIMS(3), I64(4, 5, 6));
	node("Constant");
	a_float("value_float", 2.5f);
	RUN_OK(13, NULL);
	expect_f32(&out[0], 0, NULL, F32(2.5f));
	node("Constant");
	attr("value", QT_ATTR_TENSOR)->t = TF(2, DIMS(1, 2), 3, 4);
	RUN_OK(13, NULL);
	expect_f32(&out[0], 2, DIMS(1, 2), F32(3, 4));
	node("Constant");
	expect_err(RUN(13, NULL), QT_E_FORMAT, "no value");
}

/* ----------------------------------------------------------- layout ops */

Test(ops_shape, transpose_default_and_perm)
{
	node("Transpose");
	RUN_OK(13, iota_f(2, DIMS(2, 3)));
	expect_f32(&out[0], 2, DIMS(3, 2), F32(0, 3, 1, 4, 2, 5));
	a_ints("perm", 3, I64(1, 2, 0));
	RUN_OK(13, iota_f(3, DIMS(2, 1, 3)));
	expect_f32(&out[0], 3, DIMS(1, 3, 2), F32(0, 3, 1, 4, 2, 5));
	nd->attrs[0].ints[2] = 1;
	expect_err(RUN(13, iota_f(3, DIMS(2, 1, 3))), QT_E_FORMAT, "not a permutation");
}

/* Every element size through the shared strided copy, checked against a naive index computation. */
Test(ops_shape, transpose_random_every_element_size)
{
	static const enum qt_dtype dts[] = {QT_DTYPE_BOOL, QT_DTYPE_U16, QT_DTYPE_F32, QT_DTYPE_F64};
	unsigned seed = 12345;
	node("Transpose");
	for (int trial = 0; trial < 40; trial++) {
		int r = 1 + trial % 5;
		int64_t dims[5], p[5], istr[5];
		for (int i = 0; i < r; i++) {
			seed = seed * 1103515245u + 12345u;
			dims[i] = 1 + (seed >> 16) % 4;
			p[i] = i;
		}
		for (int i = r - 1; i > 0; i--) {
			seed = seed * 1103515245u + 12345u;
			int j = (int)((seed >> 16) % (unsigned)(i + 1));
			int64_t tmp = p[i];
			p[i] = p[j];
			p[j] = tmp;
		}
		nd->n_attrs = 0;
		a_ints("perm", r, p);
		enum qt_dtype dt = dts[trial % 4];
		struct qt_tensor *x = T(dt, r, dims, NULL);
		size_t es = (size_t)qt_dtype_bits(dt) / 8;
		for (size_t b = 0; b < x->nbytes; b++)
			((unsigned char *)x->data)[b] = (unsigned char)(b * 7 + 1);
		enum qt_status st = RUN(13, x);
		cr_assert_eq(st, QT_OK, "seed 12345 trial %d: %s", trial, qt_error_msg());
		int64_t s = 1;
		for (int i = r - 1; i >= 0; i--) {
			istr[i] = s;
			s *= dims[i];
		}
		int64_t idx[5] = {0}, n = qt_tensor_numel(x);
		for (int64_t o = 0; o < n; o++) {
			int64_t src = 0;
			for (int i = 0; i < r; i++)
				src += idx[i] * istr[p[i]];
			cr_assert(memcmp((char *)out[0].data + o * (int64_t)es, (char *)x->data + src * (int64_t)es, es) == 0,
				  "seed 12345 trial %d: element %lld differs", trial, (long long)o);
			for (int i = r - 1; i >= 0; i--) {
				if (++idx[i] < dims[p[i]])
					break;
				idx[i] = 0;
			}
		}
	}
}

Test(ops_shape, concat_int16_and_mismatch)
{
	node("Concat");
	a_int("axis", -1);
	struct qt_tensor *a = T(QT_DTYPE_I16, 2, DIMS(2, 1), (const int16_t[]){1, 2});
	struct qt_tensor *b = T(QT_DTYPE_I16, 2, DIMS(2, 2), (const int16_t[]){3, 4, 5, 6});
	struct qt_tensor *e = T(QT_DTYPE_I16, 2, DIMS(2, 0), NULL);
	RUN_OK(13, a, e, b);
	expect_shape(&out[0], 2, DIMS(2, 3));
	cr_assert(memcmp(out[0].data, (const int16_t[]){1, 3, 4, 2, 5, 6}, 12) == 0);
	nd->attrs[0].i = 0;
	expect_err(RUN(13, a, b), QT_E_FORMAT, "does not match");
	expect_err(RUN(13, a, T(QT_DTYPE_I32, 2, DIMS(2, 1), NULL)), QT_E_FORMAT, "int32");
}

Test(ops_shape, split_forms)
{
	node("Split");
	a_int("axis", 1);
	struct qt_tensor *x = iota_f(2, DIMS(2, 6));
	cr_assert_eq(run_op(13, 1, IN(x), 3), QT_OK);
	expect_f32(&out[0], 2, DIMS(2, 2), F32(0, 1, 6, 7));
	expect_f32(&out[2], 2, DIMS(2, 2), F32(4, 5, 10, 11));
	cr_assert_eq(run_op(13, 2, IN(x, TS(1, 5)), 2), QT_OK, "%s", qt_error_msg());
	expect_f32(&out[0], 2, DIMS(2, 1), F32(0, 6));
	expect_f32(&out[1], 2, DIMS(2, 5), F32(1, 2, 3, 4, 5, 7, 8, 9, 10, 11));
	expect_err(run_op(13, 2, IN(x, TS(1, 4)), 2), QT_E_FORMAT, "add up to 5");
	expect_err(run_op(13, 1, IN(x), 4), QT_E_FORMAT, "cannot split axis 1 of size 6 into 4 equal parts");
	/* opset 18: ceil-sized chunks, the last one smaller */
	a_int("num_outputs", 4);
	cr_assert_eq(run_op(18, 1, IN(x), 4), QT_OK, "%s", qt_error_msg());
	expect_shape(&out[0], 2, DIMS(2, 2));
	expect_shape(&out[2], 2, DIMS(2, 2));
	expect_shape(&out[3], 2, DIMS(2, 0));

	node("Split");
	a_ints("split", 2, I64(2, 1));
	cr_assert_eq(run_op(11, 1, IN(TF(1, DIMS(3), 1, 2, 3)), 2), QT_OK);
	expect_f32(&out[1], 1, DIMS(1), F32(3));
}

Test(ops_shape, slice_steps_and_clamping)
{
	node("Slice");
	struct qt_tensor *x = iota_f(2, DIMS(3, 4));
	RUN_OK(13, x, TS(1, 0), TS(1000, 3), TS(0, 1), TS(1, 2));
	expect_f32(&out[0], 2, DIMS(2, 2), F32(4, 6, 8, 10));
	/* reversed, with INT64 extremes clamped */
	RUN_OK(13, x, TS(INT64_MAX), TS(INT64_MIN), TS(-1), TS(-1));
	expect_f32(&out[0], 2, DIMS(3, 4), F32(3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8));
	RUN_OK(13, x, TS(-1), TS(-1000), TS(0), TS(-2));
	expect_f32(&out[0], 2, DIMS(2, 4), F32(8, 9, 10, 11, 0, 1, 2, 3));
	RUN_OK(13, x, TS(2), TS(1), TS(1), TS(INT64_MIN));
	expect_f32(&out[0], 2, DIMS(3, 1), F32(2, 6, 10));
	RUN_OK(13, x, TS(3), TS(1), TS(1));
	expect_shape(&out[0], 2, DIMS(3, 0));
	expect_err(RUN(13, x, TS(0), TS(1), TS(0), TS(0)), QT_E_FORMAT, "steps[0] is 0");
	expect_err(RUN(13, x, TS(0), TS(1), TS(2)), QT_E_FORMAT, "axis 2 out of range for rank 2");

	node("Slice");
	a_ints("starts", 1, I64(1));
	a_ints("ends", 1, I64(-1));
	a_ints("axes", 1, I64(-1));
	RUN_OK(9, x);
	expect_f32(&out[0], 2, DIMS(3, 2), F32(1, 2, 5, 6, 9, 10));
}

Test(ops_shape, gather_and_gather_elements)
{
	node("Gather");
	a_int("axis", 1);
	struct qt_tensor *x = iota_f(2, DIMS(2, 3));
	RUN_OK(13, x, T(QT_DTYPE_I32, 2, DIMS(1, 2), I32(-1, 0)));
	expect_f32(&out[0], 3, DIMS(2, 1, 2), F32(2, 0, 5, 3));
	RUN_OK(13, x, TI(0, NULL, 1));
	expect_f32(&out[0], 1, DIMS(2), F32(1, 4));
	expect_err(RUN(13, x, TS(0, 3)), QT_E_FORMAT, "index 3 (indices element 1) out of range for axis 1 of size 3");
	expect_err(RUN(13, x, TS(-4)), QT_E_FORMAT, "out of range");
	expect_err(RUN(13, TF(0, NULL, 1), TS(0)), QT_E_FORMAT, "rank >= 1");

	node("GatherElements");
	a_int("axis", 1);
	RUN_OK(13, x, TI(2, DIMS(2, 2), 2, -3, 1, 1));
	expect_f32(&out[0], 2, DIMS(2, 2), F32(2, 0, 4, 4));
	expect_err(RUN(13, x, TI(2, DIMS(1, 1), 3)), QT_E_FORMAT, "out of range");
}

Test(ops_shape, expand_and_tile)
{
	node("Expand");
	RUN_OK(13, TF(2, DIMS(3, 1), 1, 2, 3), TS(2, 1, 2));
	expect_f32(&out[0], 3, DIMS(2, 3, 2), F32(1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3));
	expect_err(RUN(13, TF(1, DIMS(3), 1, 2, 3), TS(2)), QT_E_FORMAT, "cannot expand [3] to [2]");

	node("Tile");
	struct qt_tensor *x = T(QT_DTYPE_F64, 2, DIMS(2, 2), (const double[]){1, 2, 3, 4});
	RUN_OK(13, x, TS(2, 3));
	expect_shape(&out[0], 2, DIMS(4, 6));
	const double want[] = {1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4, 1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4};
	cr_assert(memcmp(out[0].data, want, sizeof want) == 0);
	RUN_OK(13, x, TS(0, 1));
	expect_shape(&out[0], 2, DIMS(0, 2));
	expect_err(RUN(13, x, TS(2)), QT_E_FORMAT, "repeats has 1 entries for an input of rank 2");
}

Test(ops_shape, pad_modes)
{
	node("Pad");
	struct qt_tensor *x = TF(2, DIMS(2, 3), 1, 2, 3, 4, 5, 6);
	RUN_OK(13, x, TS(0, 2, 0, 1), TF(0, NULL, 9));
	expect_f32(&out[0], 2, DIMS(2, 6), F32(9, 9, 1, 2, 3, 9, 9, 9, 4, 5, 6, 9));
	a_str("mode", "reflect");
	RUN_OK(13, x, TS(1, 2, 0, 2));
	expect_f32(&out[0], 2, DIMS(3, 7), F32(6, 5, 4, 5, 6, 5, 4, 3, 2, 1, 2, 3, 2, 1, 6, 5, 4, 5, 6, 5, 4));
	nd->attrs[0].s = "edge";
	RUN_OK(13, x, TS(0, 1, 1, 1));
	expect_f32(&out[0], 2, DIMS(3, 5), F32(1, 1, 2, 3, 3, 4, 4, 5, 6, 6, 4, 4, 5, 6, 6));
	/* negative pads crop */
	nd->attrs[0].s = "constant";
	RUN_OK(13, x, TS(0, -1, 0, 1));
	expect_f32(&out[0], 2, DIMS(2, 3), F32(2, 3, 0, 5, 6, 0));
	expect_err(RUN(13, x, TS(0, -4, 0, 0)), QT_E_FORMAT, "invalid");
	expect_err(RUN(13, x, TS(1, 1)), QT_E_FORMAT, "2 * 2 entries");
	/* opset 18 axes */
	RUN_OK(18, x, TS(1, 0), NULL, TS(-1));
	expect_f32(&out[0], 2, DIMS(2, 4), F32(0, 1, 2, 3, 0, 4, 5, 6));
	/* opset 2 attributes, int8 data */
	node("Pad");
	a_ints("pads", 2, I64(1, 2));
	a_float("value", -3);
	RUN_OK(2, T(QT_DTYPE_I8, 1, DIMS(2), (const int8_t[]){7, 8}));
	cr_assert(memcmp(out[0].data, (const int8_t[]){-3, 7, 8, -3, -3}, 5) == 0);
}

Test(ops_shape, resize_nearest_modes)
{
	node("Resize");
	struct qt_tensor *x = TF(4, DIMS(1, 1, 2, 2), 1, 2, 3, 4);
	RUN_OK(13, x, NULL, TF(1, DIMS(4), 1, 1, 2, 3));
	expect_f32(&out[0], 4, DIMS(1, 1, 4, 6), F32(1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4));
	/* 1-D, asymmetric: x = o / 2 -> 0, 0.5, 1, 1.5 */
	node("Resize");
	a_str("coordinate_transformation_mode", "asymmetric");
	struct qt_tensor *y = TF(1, DIMS(2), 10, 20), *s = TF(1, DIMS(1), 2);
	RUN_OK(13, y, NULL, s);
	expect_f32(&out[0], 1, DIMS(4), F32(10, 10, 20, 20)); /* round_prefer_floor */
	a_str("nearest_mode", "round_prefer_ceil");
	RUN_OK(13, y, NULL, s);
	expect_f32(&out[0], 1, DIMS(4), F32(10, 20, 20, 20));
	nd->attrs[1].s = "ceil";
	RUN_OK(13, y, NULL, s);
	expect_f32(&out[0], 1, DIMS(4), F32(10, 20, 20, 20));
	nd->attrs[1].s = "floor";
	RUN_OK(13, y, NULL, s);
	expect_f32(&out[0], 1, DIMS(4), F32(10, 10, 20, 20));
	/* nearest works on any dtype */
	RUN_OK(13, T(QT_DTYPE_U8, 1, DIMS(2), (const uint8_t[]){5, 6}), NULL, s);
	cr_assert(memcmp(out[0].data, (const uint8_t[]){5, 5, 6, 6}, 4) == 0);
	expect_err(RUN(13, y, NULL, s, TS(3)), QT_E_FORMAT, "only one of scales and sizes");
	expect_err(RUN(13, y, NULL, TF(1, DIMS(1), -1)), QT_E_FORMAT, "finite and positive");
}

Test(ops_shape, resize_linear)
{
	node("Resize");
	a_str("mode", "linear");
	struct qt_tensor *x = TF(4, DIMS(1, 1, 2, 2), 1, 2, 3, 4);
	RUN_OK(13, x, NULL, TF(1, DIMS(4), 1, 1, 2, 2));
	/* half_pixel: coords -0.25, 0.25, 0.75, 1.25 -> weights clamp at the edges */
	expect_f32(&out[0], 4, DIMS(1, 1, 4, 4),
		   F32(1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4));
	a_str("coordinate_transformation_mode", "align_corners");
	RUN_OK(13, x, NULL, NULL, TS(1, 1, 3, 3));
	expect_f32(&out[0], 4, DIMS(1, 1, 3, 3), F32(1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4));
	/* linear on float64 and float16 goes through float */
	RUN_OK(13, T(QT_DTYPE_F64, 1, DIMS(2), (const double[]){0, 1}), NULL, NULL, TS(3));
	cr_assert(memcmp(out[0].data, (const double[]){0, 0.5, 1}, 24) == 0);
	expect_err(RUN(13, T(QT_DTYPE_I32, 1, DIMS(2), NULL), NULL, NULL, TS(3)), QT_E_UNSUPPORTED, "float only");
}

/*
 * Cubic, a = -0.75, half_pixel, x2 on [1, 2, 4, 8]: coordinates -0.25, 0.25,
 * ..., 3.25 have fractions 0.75 and 0.25, so the taps at floor-1 .. floor+2
 * weigh W(1.75), W(0.75), W(0.25), W(1.25) = -0.03515625, 0.26171875,
 * 0.87890625, -0.10546875 or the reverse (all exact in binary). E.g. out[0]
 * reads x[-2..1], clamped to 1, 1, 1, 2: 1.10546875 - 2 * 0.10546875.
 * With exclude_outside the taps past the ends drop out and the others are
 * divided by their sum: out[0] = (0.87890625 - 2 * 0.10546875) / 0.7734375
 * = 19/22. Tolerance 1e-5: float weights against exact fractions.
 */
Test(ops_shape, resize_cubic)
{
	node("Resize");
	a_str("mode", "cubic");
	struct qt_tensor *x = TF(1, DIMS(4), 1, 2, 4, 8), *s = TF(1, DIMS(1), 2);
	RUN_OK(13, x, NULL, s);
	expect_f32(&out[0], 1, DIMS(8), F32(0.89453125f, 1.15625f, 1.5625f, 2.41796875f, 3.16015625f, 5.1171875f,
					    7.1640625f, 8.421875f));
	a_int("exclude_outside", 1);
	RUN_OK(11, x, NULL, s);
	expect_f32(&out[0], 1, DIMS(8), F32(19.0f / 22, 323.0f / 283, 409.0f / 265, 2.41796875f, 3.16015625f,
					    1382.0f / 265, 2050.0f / 283, 94.0f / 11));
	/* scale 1 is the identity; 2-D goes axis by axis (rows of a constant stay constant) */
	RUN_OK(13, x, NULL, TF(1, DIMS(1), 1));
	expect_f32(&out[0], 1, DIMS(4), F32(1, 2, 4, 8));
	RUN_OK(13, TF(2, DIMS(2, 4), 1, 2, 4, 8, 1, 2, 4, 8), NULL, NULL, TS(3, 8));
	for (int i = 0; i < 24; i++)
		cr_assert_float_eq(((float *)out[0].data)[i], ((float *)out[0].data)[i % 8], 1e-6, "element %d", i);
	a_float("cubic_coeff_a", NAN);
	expect_err(RUN(13, x, NULL, s), QT_E_FORMAT, "cubic_coeff_a");
	expect_err(RUN(10, x, s), QT_E_FORMAT, "cubic needs Resize-11");
	node("Resize");
	a_str("mode", "cubic");
	expect_err(RUN(13, T(QT_DTYPE_I32, 1, DIMS(2), NULL), NULL, NULL, TS(3)), QT_E_UNSUPPORTED, "cubic resize");
	node("Upsample");
	a_str("mode", "cubic");
	expect_err(RUN(9, x, s), QT_E_FORMAT, "unknown mode");
}

Test(ops_shape, upsample_attr_and_input)
{
	node("Upsample");
	a_floats("scales", 2, F32(2, 1.5f));
	RUN_OK(7, TF(2, DIMS(1, 2), 1, 2));
	expect_f32(&out[0], 2, DIMS(2, 3), F32(1, 1, 2, 1, 1, 2));
	node("Upsample");
	a_str("mode", "linear");
	RUN_OK(9, TF(1, DIMS(2), 1, 3), TF(1, DIMS(1), 2));
	expect_f32(&out[0], 1, DIMS(4), F32(1, 2, 3, 3)); /* asymmetric */
}

/* ----------------------------------------------------- shape-valued ops */

Test(ops_shape, shape_size_constant_of_shape)
{
	node("Shape");
	struct qt_tensor *x = T(QT_DTYPE_U8, 3, DIMS(2, 3, 4), NULL);
	RUN_OK(15, x);
	expect_i64(&out[0], 1, DIMS(3), I64(2, 3, 4));
	a_int("start", -2);
	a_int("end", 100);
	RUN_OK(15, x);
	expect_i64(&out[0], 1, DIMS(2), I64(3, 4));
	nd->attrs[0].i = 3;
	RUN_OK(15, x);
	expect_shape(&out[0], 1, DIMS(0));

	node("Size");
	RUN_OK(13, x);
	expect_i64(&out[0], 0, NULL, I64(24));

	node("ConstantOfShape");
	RUN_OK(9, TS(2, 1));
	expect_f32(&out[0], 2, DIMS(2, 1), F32(0, 0));
	attr("value", QT_ATTR_TENSOR)->t = TI(1, DIMS(1), -7);
	RUN_OK(9, TS(3));
	expect_i64(&out[0], 1, DIMS(3), I64(-7, -7, -7));
	RUN_OK(9, T(QT_DTYPE_I64, 1, DIMS(0), NULL));
	expect_i64(&out[0], 0, NULL, I64(-7));
	expect_err(RUN(9, TS(-1)), QT_E_FORMAT, "negative");
}

Test(ops_shape, range)
{
	node("Range");
	RUN_OK(11, T(QT_DTYPE_I32, 0, NULL, I32(10)), T(QT_DTYPE_I32, 0, NULL, I32(4)), T(QT_DTYPE_I32, 0, NULL, I32(-3)));
	expect_shape(&out[0], 1, DIMS(2));
	cr_assert(memcmp(out[0].data, I32(10, 7), 8) == 0);
	RUN_OK(11, TI(0, NULL, INT64_MIN), TI(0, NULL, INT64_MAX), TI(0, NULL, INT64_MAX));
	expect_i64(&out[0], 1, DIMS(3), I64(INT64_MIN, -1, INT64_MAX - 1));
	RUN_OK(11, TF(0, NULL, 1), TF(0, NULL, 2), TF(0, NULL, 0.25f));
	expect_f32(&out[0], 1, DIMS(4), F32(1, 1.25f, 1.5f, 1.75f));
	RUN_OK(11, TF(0, NULL, 1), TF(0, NULL, 0), TF(0, NULL, 1));
	expect_shape(&out[0], 1, DIMS(0));
	expect_err(RUN(11, TI(0, NULL, 0), TI(0, NULL, 5), TI(0, NULL, 0)), QT_E_FORMAT, "delta is 0");
}

Test(ops_shape, eye_like_and_trilu)
{
	node("EyeLike");
	a_int("k", 1);
	a_int("dtype", 7); /* ONNX int64 */
	RUN_OK(9, T(QT_DTYPE_F32, 2, DIMS(2, 3), NULL));
	expect_i64(&out[0], 2, DIMS(2, 3), I64(0, 1, 0, 0, 0, 1));

	node("Trilu");
	struct qt_tensor *x = iota_f(2, DIMS(3, 3));
	RUN_OK(14, x);
	expect_f32(&out[0], 2, DIMS(3, 3), F32(0, 1, 2, 0, 4, 5, 0, 0, 8));
	RUN_OK(14, x, TI(0, NULL, -1));
	expect_f32(&out[0], 2, DIMS(3, 3), F32(0, 1, 2, 3, 4, 5, 0, 7, 8));
	a_int("upper", 0);
	RUN_OK(14, x, TI(0, NULL, INT64_MIN));
	expect_f32(&out[0], 2, DIMS(3, 3), F32(0, 0, 0, 0, 0, 0, 0, 0, 0));
	RUN_OK(14, x);
	expect_f32(&out[0], 2, DIMS(3, 3), F32(0, 0, 0, 3, 4, 0, 6, 7, 8));
}

Test(ops_shape, depth_space_round_trip)
{
	node("DepthToSpace");
	a_int("blocksize", 2);
	struct qt_tensor *x = iota_f(4, DIMS(1, 8, 1, 1));
	RUN_OK(13, x);
	/* DCR: out[c', h*2+i, w*2+j] = in[(i*2+j)*2 + c'] */
	expect_f32(&out[0], 4, DIMS(1, 2, 2, 2), F32(0, 2, 4, 6, 1, 3, 5, 7));
	a_str("mode", "CRD");
	RUN_OK(13, x);
	expect_f32(&out[0], 4, DIMS(1, 2, 2, 2), F32(0, 1, 2, 3, 4, 5, 6, 7));
	expect_err(RUN(13, iota_f(4, DIMS(1, 6, 1, 1))), QT_E_FORMAT, "multiple of blocksize^2");

	node("SpaceToDepth");
	a_int("blocksize", 2);
	struct qt_tensor *y = iota_f(4, DIMS(1, 2, 2, 2));
	RUN_OK(13, y);
	expect_f32(&out[0], 4, DIMS(1, 8, 1, 1), F32(0, 4, 1, 5, 2, 6, 3, 7));
	/* SpaceToDepth then DepthToSpace (DCR) is the identity */
	struct qt_tensor s2d;
	qt_tensor_view(&s2d, &out[0]);
	out[0].owned = 0;
	node("DepthToSpace");
	a_int("blocksize", 2);
	RUN_OK(13, &s2d);
	cr_assert(memcmp(out[0].data, y->data, y->nbytes) == 0);
	free(s2d.data);
}

Test(ops_shape, one_hot_and_non_zero)
{
	node("OneHot");
	struct qt_tensor *vals = TF(1, DIMS(2), 0, 5);
	RUN_OK(11, TI(1, DIMS(3), 1, -1, 3), TF(0, NULL, 3), vals);
	expect_f32(&out[0], 2, DIMS(3, 3), F32(0, 5, 0, 0, 0, 5, 0, 0, 0));
	a_int("axis", 0);
	RUN_OK(11, TI(1, DIMS(2), 0, 2), TI(0, NULL, 3), vals);
	expect_f32(&out[0], 2, DIMS(3, 2), F32(5, 0, 0, 0, 0, 5));

	node("NonZero");
	RUN_OK(13, TF(2, DIMS(2, 2), 1, 0, -0.0f, 3));
	expect_i64(&out[0], 2, DIMS(2, 2), I64(0, 1, 0, 1));
	RUN_OK(13, T(QT_DTYPE_BOOL, 0, NULL, (const uint8_t[]){1}));
	expect_i64(&out[0], 2, DIMS(1, 1), I64(0));
}

Test(ops_shape, missing_input_and_packed_types)
{
	node("Transpose");
	expect_err(RUN(13, NULL), QT_E_FORMAT, "required input 0");
	expect_err(RUN(13, T(QT_DTYPE_S4, 1, DIMS(4), NULL)), QT_E_UNSUPPORTED, "int4");
	/* metadata-only ops pass packed types through */
	node("Reshape");
	struct qt_tensor *x = T(QT_DTYPE_U4, 1, DIMS(4), (const uint8_t[]){0x21, 0x43});
	RUN_OK(14, x, TS(2, 2));
	cr_assert_eq(out[0].dtype, QT_DTYPE_U4);
	cr_assert(memcmp(out[0].data, x->data, 2) == 0);
}

/* ----------------------------------------------- ONNX backend node tests */

#define NODE_DIR "/usr/share/libonnx-testdata/data/node"

static const char *const shape_ops[] = {
	"Identity", "Constant", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Split",
	"Slice", "Gather", "GatherElements", "Expand", "Tile", "Pad", "Resize", "Upsample", "Shape", "Size",
	"ConstantOfShape", "Range", "EyeLike", "Trilu", "DepthToSpace", "SpaceToDepth", "OneHot", "NonZero", NULL,
};

static int is_shape_op(const char *op)
{
	for (int i = 0; shape_ops[i]; i++)
		if (strcmp(op, shape_ops[i]) == 0)
			return 1;
	return 0;
}

/* Folder names of the node tests of our ops: test_<op in lower case>... and test_*_pad. */
static int named_like_ours(const char *name)
{
	char low[64];
	size_t n = strlen(name);
	if (n >= 4 && strcmp(name + n - 4, "_pad") == 0)
		return 1;
	for (int i = 0; shape_ops[i]; i++) {
		size_t k = 0;
		for (; shape_ops[i][k] && k < sizeof low - 1; k++)
			low[k] = (char)(shape_ops[i][k] | 0x20);
		low[k] = '\0';
		if (strncmp(name, "test_", 5) == 0 && strncmp(name + 5, low, k) == 0 &&
		    (name[5 + k] == '\0' || name[5 + k] == '_'))
			return 1;
	}
	return 0;
}

/* Tests of valid ONNX that op_shape.c refuses on purpose: the run must fail with QT_E_UNSUPPORTED. */
static int known_unsupported(const char *name)
{
	return strcmp(name, "test_identity_opt") == 0 || strcmp(name, "test_identity_sequence") == 0;
}

static int uses_float_math(const struct qt_graph *gr)
{
	for (int i = 0; i < gr->n_nodes; i++)
		if (strcmp(gr->nodes[i].op_type, "Resize") == 0 || strcmp(gr->nodes[i].op_type, "Upsample") == 0)
			return 1;
	return 0;
}

/* Compare against the reference; fills why (cap bytes) and returns 0 on a mismatch. */
static int same_tensor(const struct qt_tensor *got, const struct qt_tensor *want, int tol, char *why, size_t cap)
{
	char a[128], b[128];
	if (got->dtype != want->dtype) {
		snprintf(why, cap, "dtype %s, expected %s", qt_dtype_name(got->dtype), qt_dtype_name(want->dtype));
		return 0;
	}
	int same = got->rank == want->rank;
	for (int i = 0; same && i < got->rank; i++)
		same = got->dims[i] == want->dims[i];
	if (!same) {
		snprintf(why, cap, "shape %s, expected %s", qt_shape_str(a, sizeof a, got->rank, got->dims),
			 qt_shape_str(b, sizeof b, want->rank, want->dims));
		return 0;
	}
	int64_t n = qt_tensor_numel(want);
	if (!tol || !(want->dtype == QT_DTYPE_F32 || want->dtype == QT_DTYPE_F64 || want->dtype == QT_DTYPE_F16)) {
		if (want->nbytes && memcmp(got->data, want->data, want->nbytes) != 0) {
			for (int64_t i = 0; i < n; i++)
				if (qt_tensor_get_f64(got, i) != qt_tensor_get_f64(want, i)) {
					snprintf(why, cap, "element %lld is %g, expected %g (exact)", (long long)i,
						 qt_tensor_get_f64(got, i), qt_tensor_get_f64(want, i));
					return 0;
				}
			snprintf(why, cap, "bytes differ");
			return 0;
		}
		return 1;
	}
	for (int64_t i = 0; i < n; i++) {
		double x = qt_tensor_get_f64(got, i), y = qt_tensor_get_f64(want, i);
		if (!(fabs(x - y) <= 1e-5 + 1e-3 * fabs(y)) && !(isnan(x) && isnan(y))) {
			snprintf(why, cap, "element %lld is %.7g, expected %.7g", (long long)i, x, y);
			return 0;
		}
	}
	return 1;
}

/*
 * Run one node-test folder. Returns 1 pass, 0 fail (why filled), -1 when
 * the model has ops outside op_shape.c (not ours to test).
 */
static int run_node_test(const char *name, char *why, size_t cap, enum qt_status *st_out)
{
	char path[1024];
	struct qt_graph *gr = NULL;
	struct qt_rt *rt = NULL;
	struct qt_tensor ins[16], outs[16], want;
	int ok = 0, n_in = 0;
	*st_out = QT_OK;
	memset(ins, 0, sizeof ins);
	memset(outs, 0, sizeof outs);
	memset(&want, 0, sizeof want);
	snprintf(path, sizeof path, "%s/%s/model.onnx", NODE_DIR, name);
	enum qt_status st = qt_graph_load_onnx(path, &gr);
	if (st) {
		/* Without a graph we cannot see the ops: judge by the folder name. */
		*st_out = st;
		snprintf(why, cap, "load: %s", qt_error_msg());
		return named_like_ours(name) ? 0 : -1;
	}
	for (int i = 0; i < gr->n_nodes; i++)
		if (!is_shape_op(gr->nodes[i].op_type)) {
			qt_graph_free(gr);
			return -1;
		}
	/* Optional and sequence values (test_identity_opt, _sequence) load as undeclared types. */
	for (int i = 0; i < gr->n_inputs + gr->n_outputs; i++) {
		int v = i < gr->n_inputs ? gr->inputs[i] : gr->outputs[i - gr->n_inputs];
		if (gr->values[v].dtype == QT_DTYPE_UNDEFINED) {
			*st_out = QT_E_UNSUPPORTED;
			snprintf(why, cap, "graph value \"%s\" is not a tensor", gr->values[v].name);
			goto done;
		}
	}
	if (gr->n_inputs > 16 || gr->n_outputs > 16) {
		snprintf(why, cap, "too many inputs/outputs");
		goto done;
	}
	for (n_in = 0; n_in < gr->n_inputs; n_in++) {
		snprintf(path, sizeof path, "%s/%s/test_data_set_0/input_%d.pb", NODE_DIR, name, n_in);
		if ((st = qt_tensor_read_pb(path, &ins[n_in], NULL, 0))) {
			*st_out = st;
			snprintf(why, cap, "read input: %s", qt_error_msg());
			goto done;
		}
	}
	if ((st = qt_rt_new(gr, &rt)) || (st = qt_rt_run(rt, ins, outs))) {
		*st_out = st;
		snprintf(why, cap, "run: %s", qt_error_msg());
		goto done;
	}
	ok = 1;
	for (int k = 0; k < gr->n_outputs && ok; k++) {
		snprintf(path, sizeof path, "%s/%s/test_data_set_0/output_%d.pb", NODE_DIR, name, k);
		if ((st = qt_tensor_read_pb(path, &want, NULL, 0))) {
			snprintf(why, cap, "read output: %s", qt_error_msg());
			ok = 0;
			break;
		}
		char w[256];
		if (!same_tensor(&outs[k], &want, uses_float_math(gr), w, sizeof w)) {
			snprintf(why, cap, "output %d: %s", k, w);
			ok = 0;
		}
		qt_tensor_free(&want);
	}
	for (int k = 0; k < gr->n_outputs; k++)
		qt_tensor_free(&outs[k]);
done:
	for (int i = 0; i < n_in; i++)
		qt_tensor_free(&ins[i]);
	qt_rt_free(rt);
	qt_graph_free(gr);
	return ok;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

Test(ops_shape, onnx_backend_node_tests, .timeout = 120)
{
	DIR *d = opendir(NODE_DIR);
	if (!d)
		cr_skip_test("%s not installed", NODE_DIR);
	char *names[2048];
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < 2048)
		if (strncmp(e->d_name, "test_", 5) == 0)
			names[n++] = strdup(e->d_name);
	closedir(d);
	qsort(names, (size_t)n, sizeof names[0], cmp_str);
	int passed = 0, failed = 0, refused = 0;
	for (int i = 0; i < n; i++) {
		char why[1024] = "";
		enum qt_status st;
		int r = run_node_test(names[i], why, sizeof why, &st);
		if (r < 0)
			goto next;
		if (known_unsupported(names[i])) {
			if (r == 1 || st != QT_E_UNSUPPORTED) {
				cr_log_error("%s: expected a clear unsupported error, got %s", names[i],
					     r == 1 ? "a pass" : why);
				failed++;
			} else {
				refused++;
			}
		} else if (r == 1) {
			passed++;
		} else {
			cr_log_error("%s: %s", names[i], why);
			failed++;
		}
next:
		free(names[i]);
	}
	cr_log_info("libonnx-testdata node tests of op_shape.c: %d passed, %d refused as unsupported, %d failed",
		    passed, refused, failed);
	cr_assert(passed > 100, "only %d node tests ran", passed);
	cr_assert_eq(failed, 0, "%d node tests failed (see the log)", failed);
}
