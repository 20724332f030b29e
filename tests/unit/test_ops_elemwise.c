/*
 * Kernels of op_elemwise.c and op_reduce.c: unary, binary (numpy
 * broadcasting), variadic, comparison and logic ops, Where, Cast, Clip,
 * Dropout, Shrink, Reduce* and ArgMax/ArgMin.
 *
 * Three kinds of tests:
 *  - hand-checked cases (values worked out by hand or with numpy) for
 *    broadcasting, integer exactness, dtype rules, old and new opset
 *    semantics (Clip attributes vs inputs, Reduce axes attribute vs input)
 *    and error messages;
 *  - randomised broadcasting against a direct index computation in double,
 *    fixed seeds printed on failure;
 *  - every ONNX backend test folder in Debian's libonnx-testdata whose ops
 *    all belong to these two files, run through the loader and the executor.
 *
 * Tolerances: float32 results of single +,-,*,/ are correctly rounded, so the
 * randomised cases compare exactly against the double result rounded to
 * float. Transcendental results are compared with rtol 1e-6 (libm's float
 * functions are within a few ulp). The ONNX data is compared with rtol 1e-3,
 * atol 1e-5 (the project rule in ops.h), exactly for integer and bool outputs,
 * NaN equal to NaN. Integer paths are always compared exactly.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
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

/* ---------- single-node graphs ---------- */

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

static struct qt_attr *attr_add(struct op *o, const char *name, enum qt_attr_type type)
{
	struct qt_node *n = &o->g->nodes[o->node];
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

/* Run the node's kernel on n_in inputs (NULL = omitted) into n_out fresh outputs. */
static enum qt_status op_run(struct op *o, int n_in, const struct qt_tensor *const *in, int n_out,
			     struct qt_tensor *out)
{
	struct qt_node *n = &o->g->nodes[o->node];
	qt_op_fn fn = qt_op_find("", n->op_type, o->opset);
	cr_assert(fn, "no kernel for %s at opset %d", n->op_type, o->opset);
	n->n_outputs = n_out;
	n->outputs = qt_graph_alloc(o->g, (size_t)n_out * sizeof *n->outputs);
	for (int i = 0; i < n_out; i++)
		n->outputs[i] = i;
	memset(out, 0, (size_t)n_out * sizeof *out);
	struct qt_op_args a = {
		.g = o->g, .node = n, .opset = o->opset, .n_in = n_in, .in = in, .n_out = n_out, .out = out,
	};
	return fn(&a);
}

/* ---------- tensors ---------- */

#define DIMS(...) (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), ((const int64_t[]){__VA_ARGS__})
#define VALS(...) ((const double[]){__VA_ARGS__})
#define I64S(...) ((const int64_t[]){__VA_ARGS__})
#define NO_DIMS 0, ((const int64_t[]){0})

/* A tensor of dtype dt and the given shape holding vals (converted), or zeros. */
static struct qt_tensor tv(enum qt_dtype dt, int rank, const int64_t *dims, const double *vals)
{
	struct qt_tensor t = {0};
	cr_assert_eq(qt_tensor_alloc(&t, dt, rank, dims), QT_OK);
	for (int64_t i = 0; vals && i < qt_tensor_numel(&t); i++)
		qt_tensor_set_f64(&t, i, vals[i]);
	return t;
}

/* An int64 tensor holding vals exactly. */
static struct qt_tensor ti64(int rank, const int64_t *dims, const int64_t *vals)
{
	struct qt_tensor t = {0};
	cr_assert_eq(qt_tensor_alloc(&t, QT_DTYPE_I64, rank, dims), QT_OK);
	memcpy(t.data, vals, t.nbytes);
	return t;
}

static void expect_shape(const struct qt_tensor *t, int rank, const int64_t *dims)
{
	char a[96], b[96];
	cr_assert_eq(t->rank, rank, "rank %d, want %d", t->rank, rank);
	for (int i = 0; i < rank; i++)
		cr_assert_eq(t->dims[i], dims[i], "shape %s, want %s", qt_shape_str(a, sizeof a, t->rank, t->dims),
			     qt_shape_str(b, sizeof b, rank, dims));
}

/* Values equal to want within rtol (0 = exact), NaN matching NaN. */
static void expect_vals(const struct qt_tensor *t, enum qt_dtype dt, const double *want, double rtol)
{
	cr_assert_eq(t->dtype, dt, "dtype %s, want %s", qt_dtype_name(t->dtype), qt_dtype_name(dt));
	for (int64_t i = 0; i < qt_tensor_numel(t); i++) {
		double v = qt_tensor_get_f64(t, i);
		if (isnan(want[i])) {
			cr_expect(isnan(v), "element %lld: %.17g, want NaN", (long long)i, v);
			continue;
		}
		cr_expect(v == want[i] || fabs(v - want[i]) <= rtol * fabs(want[i]), "element %lld: %.17g, want %.17g",
			  (long long)i, v, want[i]);
	}
}

static void expect_i64(const struct qt_tensor *t, const int64_t *want)
{
	cr_assert_eq(t->dtype, QT_DTYPE_I64, "dtype %s, want int64", qt_dtype_name(t->dtype));
	const int64_t *p = t->data;
	for (int64_t i = 0; i < qt_tensor_numel(t); i++)
		cr_expect_eq(p[i], want[i], "element %lld: %lld, want %lld", (long long)i, (long long)p[i],
			     (long long)want[i]);
}

static void expect_error(enum qt_status st, enum qt_status want, const char *needle)
{
	cr_assert_eq(st, want, "status %s, want %s (%s)", qt_status_str(st), qt_status_str(want), qt_error_msg());
	cr_expect(strstr(qt_error_msg(), needle), "message \"%s\" lacks \"%s\"", qt_error_msg(), needle);
}

static void free_all(struct qt_tensor *t, int n)
{
	for (int i = 0; i < n; i++)
		qt_tensor_free(&t[i]);
}

/* Run a one-output op with up to three inputs and the default attributes. */
static enum qt_status run1(const char *op_type, int opset, int n_in, const struct qt_tensor *x,
			   const struct qt_tensor *y, const struct qt_tensor *z, struct qt_tensor *out)
{
	struct op o = op_new(op_type, opset);
	const struct qt_tensor *in[3] = {x, y, z};
	enum qt_status st = op_run(&o, n_in, in, 1, out);
	qt_graph_free(o.g);
	return st;
}

/* ---------- broadcasting ---------- */

Test(elemwise, add_broadcasts_rows_columns_and_scalars)
{
	struct qt_tensor x = tv(QT_DTYPE_F32, DIMS(2, 3), VALS(1, 2, 3, 4, 5, 6));
	struct qt_tensor row = tv(QT_DTYPE_F32, DIMS(3), VALS(10, 20, 30));
	struct qt_tensor col = tv(QT_DTYPE_F32, DIMS(2, 1), VALS(100, 200));
	struct qt_tensor s = tv(QT_DTYPE_F32, NO_DIMS, VALS(0.5));
	struct qt_tensor out[4];
	cr_assert_eq(run1("Add", 14, 2, &x, &row, NULL, &out[0]), QT_OK, "%s", qt_error_msg());
	expect_shape(&out[0], DIMS(2, 3));
	expect_vals(&out[0], QT_DTYPE_F32, VALS(11, 22, 33, 14, 25, 36), 0);
	cr_assert_eq(run1("Sub", 14, 2, &col, &x, NULL, &out[1]), QT_OK, "%s", qt_error_msg());
	expect_vals(&out[1], QT_DTYPE_F32, VALS(99, 98, 97, 196, 195, 194), 0);
	cr_assert_eq(run1("Mul", 14, 2, &s, &x, NULL, &out[2]), QT_OK, "%s", qt_error_msg());
	expect_vals(&out[2], QT_DTYPE_F32, VALS(0.5, 1, 1.5, 2, 2.5, 3), 0);
	/* [3] x [2,1] -> [2,3]: both operands broadcast */
	cr_assert_eq(run1("Div", 14, 2, &row, &col, NULL, &out[3]), QT_OK, "%s", qt_error_msg());
	expect_shape(&out[3], DIMS(2, 3));
	expect_vals(&out[3], QT_DTYPE_F32, VALS(0.1, 0.2, 0.3, 0.05, 0.1, 0.15), 1e-7);
	free_all(out, 4);
	qt_tensor_free(&x), qt_tensor_free(&row), qt_tensor_free(&col), qt_tensor_free(&s);
}

Test(elemwise, scalar_with_scalar_stays_rank0)
{
	struct qt_tensor x = tv(QT_DTYPE_F32, NO_DIMS, VALS(3)), y = tv(QT_DTYPE_F32, NO_DIMS, VALS(4)), out;
	cr_assert_eq(run1("Mul", 14, 2, &x, &y, NULL, &out), QT_OK, "%s", qt_error_msg());
	cr_expect_eq(out.rank, 0);
	expect_vals(&out, QT_DTYPE_F32, VALS(12), 0);
	qt_tensor_free(&out), qt_tensor_free(&x), qt_tensor_free(&y);
}

Test(elemwise, incompatible_shapes_and_dtypes_are_named)
{
	struct qt_tensor x = tv(QT_DTYPE_F32, DIMS(2, 3), NULL), y = tv(QT_DTYPE_F32, DIMS(4), NULL);
	struct qt_tensor z = tv(QT_DTYPE_I64, DIMS(3), NULL), out = {0};
	expect_error(run1("Add", 14, 2, &x, &y, NULL, &out), QT_E_FORMAT, "inputs [2,3] and [4] cannot be broadcast");
	expect_error(run1("Add", 14, 2, &x, &z, NULL, &out), QT_E_FORMAT, "float32 and int64");
	expect_error(run1("Add", 14, 1, &x, NULL, NULL, &out), QT_E_FORMAT, "input 1 is missing");
	cr_expect(strstr(qt_error_msg(), "node \"n0\" (Add)"), "%s", qt_error_msg());
	expect_error(run1("And", 7, 2, &x, &x, NULL, &out), QT_E_UNSUPPORTED, "dtype float32");
	qt_tensor_free(&x), qt_tensor_free(&y), qt_tensor_free(&z);
}

/* Direct broadcast reference: output index -> input index per dim, in double. */
static void bcast_ref(const struct qt_tensor *x, const struct qt_tensor *y, const struct qt_tensor *out, int opc,
		      double *ref)
{
	int r = out->rank;
	for (int64_t i = 0; i < qt_tensor_numel(out); i++) {
		int64_t rem = i, ix = 0, iy = 0, sx = 1, sy = 1;
		for (int d = r - 1; d >= 0; d--) {
			int64_t c = rem % out->dims[d];
			rem /= out->dims[d];
			int dx = d - (r - x->rank), dy = d - (r - y->rank);
			if (dx >= 0) {
				ix += (x->dims[dx] == 1 ? 0 : c) * sx;
				sx *= x->dims[dx];
			}
			if (dy >= 0) {
				iy += (y->dims[dy] == 1 ? 0 : c) * sy;
				sy *= y->dims[dy];
			}
		}
		double a = qt_tensor_get_f64(x, ix), b = qt_tensor_get_f64(y, iy);
		ref[i] = opc == 0 ? a + b : opc == 1 ? a - b : opc == 2 ? a * b : opc == 3 ? a / b : fmax(a, b);
	}
}

static uint64_t rng;
static double urand(void)
{
	rng = rng * 6364136223846793005ull + 1442695040888963407ull;
	return (double)(rng >> 11) / 9007199254740992.0 * 2 - 1;
}

Test(elemwise, random_broadcast_against_direct_indexing)
{
	static const struct {
		int rx;
		int64_t dx[4];
		int ry;
		int64_t dy[4];
	} cases[] = {
		{2, {5, 7}, 2, {5, 7}},       {2, {5, 7}, 0, {0}},          {3, {2, 3, 4}, 1, {4}},
		{3, {2, 3, 4}, 2, {3, 1}},    {4, {2, 1, 3, 5}, 3, {4, 1, 5}}, {3, {1, 3, 1}, 3, {2, 1, 4}},
		{4, {2, 3, 4, 5}, 4, {1, 3, 1, 5}}, {1, {1}, 3, {3, 2, 2}},  {3, {4, 1, 6}, 2, {5, 1}},
	};
	static const char *ops[] = {"Add", "Sub", "Mul", "Div", "Max"};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
		for (int opc = 0; opc < 5; opc++)
			for (int dt = 0; dt < 2; dt++) {
				uint64_t seed = 1000 * c + 10 * (uint64_t)opc + (uint64_t)dt;
				rng = seed;
				enum qt_dtype t = dt ? QT_DTYPE_F64 : QT_DTYPE_F32;
				struct qt_tensor x = tv(t, cases[c].rx, cases[c].dx, NULL);
				struct qt_tensor y = tv(t, cases[c].ry, cases[c].dy, NULL);
				for (int64_t i = 0; i < qt_tensor_numel(&x); i++)
					qt_tensor_set_f64(&x, i, urand());
				for (int64_t i = 0; i < qt_tensor_numel(&y); i++)
					qt_tensor_set_f64(&y, i, urand() + 3); /* away from 0 for Div */
				struct qt_tensor out;
				cr_assert_eq(run1(ops[opc], 14, 2, &x, &y, NULL, &out), QT_OK, "%s", qt_error_msg());
				double *ref = malloc((size_t)qt_tensor_numel(&out) * sizeof *ref);
				bcast_ref(&x, &y, &out, opc, ref);
				for (int64_t i = 0; i < qt_tensor_numel(&out); i++) {
					double want = dt ? ref[i] : (double)(float)ref[i];
					cr_assert_eq(qt_tensor_get_f64(&out, i), want, "seed %llu %s %s elem %lld",
						     (unsigned long long)seed, ops[opc], qt_dtype_name(t), (long long)i);
				}
				free(ref);
				qt_tensor_free(&out), qt_tensor_free(&x), qt_tensor_free(&y);
			}
}

/*
 * Unary ops over more than UN_PARALLEL_MIN (2^15) elements run split over the
 * thread pool: every element, at an odd count, with an output type narrower
 * than the input (IsNaN: float -> bool), equals the one-element result.
 */
Test(elemwise, large_unary_split_over_threads)
{
	const int64_t n = 70001;
	struct qt_tensor x = {0}, o1, o2, o3;
	cr_assert_eq(qt_tensor_alloc(&x, QT_DTYPE_F32, 1, &n), QT_OK);
	float *p = x.data;
	for (int64_t i = 0; i < n; i++)
		p[i] = i % 11 == 3 ? NAN : (float)((i * 37) % 1001) / 250.0f - 2.0f;
	struct op o = op_new("Clip", 6);
	set_float(&o, "min", -0.5f);
	set_float(&o, "max", 1.25f);
	const struct qt_tensor *in[] = {&x};
	cr_assert_eq(op_run(&o, 1, in, 1, &o1), QT_OK, "%s", qt_error_msg());
	qt_graph_free(o.g);
	cr_assert_eq(run1("IsNaN", 13, 1, &x, NULL, NULL, &o2), QT_OK, "%s", qt_error_msg());
	cr_assert_eq(run1("Relu", 14, 1, &x, NULL, NULL, &o3), QT_OK, "%s", qt_error_msg());
	const float *c = o1.data, *r = o3.data;
	const uint8_t *nan = o2.data;
	for (int64_t i = 0; i < n; i++) {
		float v = p[i], want = v < -0.5f ? -0.5f : v;
		want = want > 1.25f ? 1.25f : want;
		cr_assert(memcmp(&c[i], &want, sizeof want) == 0, "Clip element %lld", (long long)i);
		cr_assert_eq(nan[i], v != v, "IsNaN element %lld", (long long)i);
		want = v < 0 ? 0.0f : v;
		cr_assert(memcmp(&r[i], &want, sizeof want) == 0, "Relu element %lld", (long long)i);
	}
	free_all((struct qt_tensor[]){o1, o2, o3}, 3);
	qt_tensor_free(&x);
}

Test(elemwise, legacy_broadcast_axis_before_opset7)
{
	/* Add-6 with broadcast=1, axis=1: B [3] aligns with A's dim 1 of [2,3,2]. */
	struct op o = op_new("Add", 6);
	set_int(&o, "broadcast", 1);
	set_int(&o, "axis", 1);
	struct qt_tensor x = tv(QT_DTYPE_F32, DIMS(2, 3, 2), NULL), b = tv(QT_DTYPE_F32, DIMS(3), VALS(1, 2, 3));
	const struct qt_tensor *in[2] = {&x, &b};
	struct qt_tensor out;
	cr_assert_eq(op_run(&o, 2, in, 1, &out), QT_OK, "%s", qt_error_msg());
	expect_shape(&out, DIMS(2, 3, 2));
	expect_vals(&out, QT_DTYPE_F32, VALS(1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3), 0);
	qt_tensor_free(&out), qt_tensor_free(&x), qt_tensor_free(&b);
	qt_graph_free(o.g);
}

/* ---------- integer exactness ---------- */

Test(elemwise, int64_add_mul_exact_beyond_2_pow_53)
{
	const int64_t big = (INT64_C(1) << 53) + 1;
	struct qt_tensor x = ti64(DIMS(3), I64S(big, INT64_MAX, 3037000499));
	struct qt_tensor y = ti64(DIMS(3), I64S(1, 1, 3037000499));
	struct qt_tensor out[3];
	cr_assert_eq(run1("Add", 14, 2, &x, &y, NULL, &out[0]), QT_OK, "%s", qt_error_msg());
	expect_i64(&out[0], I64S(big + 1, INT64_MIN, 6074000998)); /* INT64_MAX + 1 wraps, like numpy */
	cr_assert_eq(run1("Mul", 14, 2, &x, &y, NULL, &out[1]), QT_OK, "%s", qt_error_msg());
	expect_i64(&out[1], I64S(big, INT64_MAX, INT64_C(9223372030926249001)));
	cr_assert_eq(run1("Sub", 14, 2, &x, &y, NULL, &out[2]), QT_OK, "%s", qt_error_msg());
	expect_i64(&out[2], I64S(big - 1, INT64_MAX - 1, 0));
	free_all(out, 3);
	qt_tensor_free(&x), qt_tensor_free(&y);
}

Test(elemwise, integer_div_truncates_toward_zero)
{
	struct qt_tensor x = ti64(DIMS(6), I64S(7, -7, 7, -7, INT64_MIN, (INT64_C(1) << 62) + 3));
	struct qt_tensor y = ti64(DIMS(6), I64S(2, 2, -2, -2, -1, 2));
	struct qt_tensor out[2];
	cr_assert_eq(run1("Div", 14, 2, &x, &y, NULL, &out[0]), QT_OK, "%s", qt_error_msg());
	expect_i64(&out[0], I64S(3, -3, -3, 3, INT64_MIN, (INT64_C(1) << 61) + 1));
	struct qt_tensor a = tv(QT_DTYPE_I32, DIMS(4), VALS(-9, 9, 5, 100)), b = tv(QT_DTYPE_I32, DIMS(4), VALS(4, -4, 0, 7));
	cr_assert_eq(run1("Div", 14, 2, &a, &b, NULL, &out[1]), QT_OK, "%s", qt_error_msg());
	expect_vals(&out[1], QT_DTYPE_I32, VALS(-2, -2, 0, 14), 0); /* x / 0 gives 0, never a trap */
	free_all(out, 2);
	qt_tensor_free(&x), qt_tensor_free(&y), qt_tensor_free(&a), qt_tensor_free(&b);
}

Test(elemwise, narrow_ints_wrap_like_numpy)
{
	struct qt_tensor x = tv(QT_DTYPE_U8, DIMS(3), VALS(250, 3, 0)), y = tv(QT_DTYPE_U8, DIMS(3), VALS(10, 5, 1));
	struct qt_tensor p = tv(QT_DTYPE_I8, DIMS(2), VALS(100, -128)), q = tv(QT_DTYPE_I8, DIMS(2), VALS(100, -1));
	struct qt_tensor out[3];
	cr_assert_eq(run1("Add", 14, 2, &x, &y, NULL, &out[0]), QT_OK, "%s", qt_error_msg());
	expect_vals(&out[0], QT_DTYPE_U8, VALS(4, 8, 1), 0);
	cr_assert_eq(run1("Sub", 14, 2, &x, &y, NULL, &out[1]), QT_OK, "%s", qt_error_msg());
	expect_vals(&out[1], QT_DTYPE_U8, VALS(240, 254, 255), 0);
	cr_assert_eq(run1("Add", 14, 2, &p, &q, NULL, &out[2]), QT_OK, "%s", qt_error_msg());
	expect_vals(&out[2], QT_DTYPE_I8, VALS(-56, 127), 0);
	free_all(out, 3);
	qt_tensor_free(&x), qt_tensor_free(&y), qt_tensor_free(&p), qt_tensor_free(&q);
}

Test(elemwise, mod_sign_rules)
{
	struct qt_tensor x = ti64(DIMS(4), I64S(-7, 7, -7, 7)), y = ti64(DIMS(4), I64S(3, -3, -3, 3));
	struct qt_tensor fx = tv(QT_DTYPE_F32, DIMS(2), VALS(-4.5, 4.5)), fy = tv(QT_DTYPE_F32, DIMS(2), VALS(2, -2));
	struct qt_tensor out[3];
	cr_assert_eq(run1("Mod", 13, 2, &x, &y, NULL, &out[0]), QT_OK, "%s", qt_error_msg());
	expect_i64(&out[0], I64S(2, -2, -1, 1)); /* sign of the divisor */
	struct op o = op_new("Mod", 13);
	set_int(&o, "fmod", 1);
	const struct qt_tensor *in[2] = {&x, &y};
	cr_assert_eq(op_run(&o, 2, in, 1, &out[1]), QT_OK, "%s", qt_error_msg());
	expect_i64(&out[1], I64S(-1, 1, -1, 1)); /* sign of the dividend */
	const struct qt_tensor *fin[2] = {&fx, &fy};
	cr_assert_eq(op_run(&o, 2, fin, 1, &out[2]), QT_OK, "%s", qt_error_msg());
	expect_vals(&out[2], QT_DTYPE_F32, VALS(-0.5, 0.5), 0);
	free_all(out, 3);
	qt_graph_free(o.g);
	qt_tensor_free(&x), qt_tensor_free(&y), qt_tensor_free(&fx), qt_tensor_free(&fy);
}

Test(elemwise, pow_keeps_base_dtype_and_is_exact_for_ints)
{
	struct qt_tensor b32 = tv(QT_DTYPE_I32, DIMS(3), VALS(3, -2, 2)), e32 = tv(QT_DTYPE_I32, DIMS(3), VALS(19, 3, -1));
	struct qt_tensor b64 = ti64(DIMS(2), I64S(3, -1)), e64 = ti64(DIMS(2), I64S(39, 5));
	struct qt_tensor fb = tv(QT_DTYPE_F32, DIMS(2), VALS(2, 9)), ie = ti64(DIMS(2), I64S(10, -1));
	struct qt_tensor fe = tv(QT_DTYPE_F32, DIMS(3), VALS(0.5, 2, 3));
	struct qt_tensor out[4];
	cr_assert_eq(run1("Pow", 15, 2, &b32, &e32, NULL, &out[0]), QT_OK, "%s", qt_error_msg());
	expect_vals(&out[0], QT_DTYPE_I32, VALS(1162261467, -8, 0), 0);
	cr_assert_eq(run1("Pow", 15, 2, &b64, &e64, NULL, &out[1]), QT_OK, "%s", qt_error_msg());
	expect_i64(&out[1], I64S(INT64_C(4052555153018976267), -1));
	cr_assert_eq(run1("Pow", 15, 2, &fb, &ie, NULL, &out[2]), QT_OK, "%s", qt_error_msg());
	expect_vals(&out[2], QT_DTYPE_F32, VALS(1024, 1.0 / 9), 1e-7);
	cr_assert_eq(run1("Pow", 15, 2, &b32, &fe, NULL, &out[3]), QT_OK, "%s", qt_error_msg());
	expect_vals(&out[3], QT_DTYPE_I32, VALS(1, 4, 8), 0); /* sqrt(3) truncates to 1 */
	free_all(out, 4);
	qt_tensor_free(&b32), qt_tensor_free(&e32), qt_tensor_free(&b64), qt_tensor_free(&e64);
	qt_tensor_free(&fb), qt_tensor_free(&ie), qt_tensor_free(&fe);
}

Test(elemwise, bitshift_unsigned)
{
	struct qt_tensor x = tv(QT_DTYPE_U8, DIMS(3), VALS(16, 4, 1)), y = tv(QT_DTYPE_U8, DIMS(3), VALS(1, 2, 8));
	struct qt_tensor out[2];
	struct op o = op_new("BitShift", 11);
	set_str(&o, "direction", "LEFT");
	const struct qt_tensor *in[2] = {&x, &y};
	cr_assert_eq(op_run(&o, 2, in, 1, &out[0]), QT_OK, "%s", qt_error_msg());
	expect_vals(&out[0], QT_DTYPE_U8, VALS(32, 16, 0), 0);
	qt_graph_free(o.g);
	o = op_new("BitShift", 11);
	set_str(&o, "direction", "RIGHT");
	cr_assert_eq(op_run(&o, 2, in, 1, &out[1]), QT_OK, "%s", qt_error_msg());
	expect_vals(&out[1], QT_DTYPE_U8, VALS(8, 1, 0), 0);
	qt_graph_free(o.g);
	free_all(out, 2);
	qt_tensor_free(&x), qt_tensor_free(&y);
}

/* ---------- comparisons, logic, Where ---------- */

Test(elemwise, comparisons_give_bool)
{
	struct qt_tensor x = tv(QT_DTYPE_F32, DIMS(2, 2), VALS(1, 2, 3, NAN)), y = tv(QT_DTYPE_F32, DIMS(2), VALS(2, 2));
	static const char *ops[] = {"Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"};
	static const double want[5][4] = {
		{0, 1, 0, 0}, {0, 0, 1, 0}, {1, 0, 0, 0}, {0, 1, 1, 0}, {1, 1, 0, 0},
	};
	for (int k = 0; k < 5; k++) {
		struct qt_tensor out;
		cr_assert_eq(run1(ops[k], 16, 2, &x, &y, NULL, &out), QT_OK, "%s", qt_error_msg());
		expect_shape(&out, DIMS(2, 2));
		expect_vals(&out, QT_DTYPE_BOOL, want[k], 0);
		qt_tensor_free(&out);
	}
	/* int64 equality is exact where double would round both to 2^53 */
	struct qt_tensor a = ti64(DIMS(1), I64S((INT64_C(1) << 53) + 1)), b = ti64(DIMS(1), I64S(INT64_C(1) << 53));
	struct qt_tensor out;
	cr_assert_eq(run1("Equal", 13, 2, &a, &b, NULL, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_BOOL, VALS(0), 0);
	qt_tensor_free(&out), qt_tensor_free(&a), qt_tensor_free(&b), qt_tensor_free(&x), qt_tensor_free(&y);
}

Test(elemwise, logic_ops_on_bool)
{
	struct qt_tensor x = tv(QT_DTYPE_BOOL, DIMS(2, 2), VALS(0, 0, 1, 1)), y = tv(QT_DTYPE_BOOL, DIMS(2), VALS(0, 1));
	struct qt_tensor out[4];
	cr_assert_eq(run1("And", 7, 2, &x, &y, NULL, &out[0]), QT_OK, "%s", qt_error_msg());
	expect_vals(&out[0], QT_DTYPE_BOOL, VALS(0, 0, 0, 1), 0);
	cr_assert_eq(run1("Or", 7, 2, &x, &y, NULL, &out[1]), QT_OK, "%s", qt_error_msg());
	expect_vals(&out[1], QT_DTYPE_BOOL, VALS(0, 1, 1, 1), 0);
	cr_assert_eq(run1("Xor", 7, 2, &x, &y, NULL, &out[2]), QT_OK, "%s", qt_error_msg());
	expect_vals(&out[2], QT_DTYPE_BOOL, VALS(0, 1, 1, 0), 0);
	cr_assert_eq(run1("Not", 1, 1, &x, NULL, NULL, &out[3]), QT_OK, "%s", qt_error_msg());
	expect_vals(&out[3], QT_DTYPE_BOOL, VALS(1, 1, 0, 0), 0);
	free_all(out, 4);
	qt_tensor_free(&x), qt_tensor_free(&y);
}

Test(elemwise, where_three_way_broadcast)
{
	struct qt_tensor c = tv(QT_DTYPE_BOOL, DIMS(2, 1), VALS(1, 0));
	struct qt_tensor x = ti64(DIMS(3), I64S(1, 2, (INT64_C(1) << 60) + 1));
	struct qt_tensor y = ti64(NO_DIMS, I64S(-5));
	struct qt_tensor out;
	cr_assert_eq(run1("Where", 16, 3, &c, &x, &y, &out), QT_OK, "%s", qt_error_msg());
	expect_shape(&out, DIMS(2, 3));
	expect_i64(&out, I64S(1, 2, (INT64_C(1) << 60) + 1, -5, -5, -5));
	qt_tensor_free(&out);
	struct qt_tensor bad = tv(QT_DTYPE_F32, DIMS(2, 1), NULL);
	expect_error(run1("Where", 16, 3, &bad, &x, &y, &out), QT_E_FORMAT, "condition must be bool");
	struct qt_tensor c4 = tv(QT_DTYPE_BOOL, DIMS(4), NULL);
	expect_error(run1("Where", 16, 3, &c4, &x, &y, &out), QT_E_FORMAT, "cannot be broadcast");
	qt_tensor_free(&c), qt_tensor_free(&x), qt_tensor_free(&y), qt_tensor_free(&bad), qt_tensor_free(&c4);
}

/* ---------- variadic ---------- */

Test(elemwise, variadic_sum_mean_max_min)
{
	struct qt_tensor a = tv(QT_DTYPE_F32, DIMS(2, 2), VALS(1, 2, 3, 4)), b = tv(QT_DTYPE_F32, DIMS(2), VALS(10, 20));
	struct qt_tensor c = tv(QT_DTYPE_F32, NO_DIMS, VALS(100));
	const struct qt_tensor *in[3] = {&a, &b, &c};
	struct qt_tensor out[5];
	static const char *ops[] = {"Sum", "Mean", "Max", "Min"};
	static const double want[4][4] = {
		{111, 122, 113, 124}, {37, 122.0 / 3, 113.0 / 3, 124.0 / 3}, {100, 100, 100, 100}, {1, 2, 3, 4}};
	for (int k = 0; k < 4; k++) {
		struct op o = op_new(ops[k], 13);
		cr_assert_eq(op_run(&o, 3, in, 1, &out[k]), QT_OK, "%s", qt_error_msg());
		expect_shape(&out[k], DIMS(2, 2));
		expect_vals(&out[k], QT_DTYPE_F32, want[k], 1e-7);
		qt_graph_free(o.g);
	}
	/* one input: a copy */
	struct qt_tensor i8 = tv(QT_DTYPE_I8, DIMS(2), VALS(-3, 7));
	cr_assert_eq(run1("Max", 13, 1, &i8, NULL, NULL, &out[4]), QT_OK, "%s", qt_error_msg());
	expect_vals(&out[4], QT_DTYPE_I8, VALS(-3, 7), 0);
	free_all(out, 5);
	qt_tensor_free(&a), qt_tensor_free(&b), qt_tensor_free(&c), qt_tensor_free(&i8);
}

/* ---------- unary ---------- */

Test(elemwise, unary_values)
{
	struct qt_tensor x = tv(QT_DTYPE_F32, DIMS(6), VALS(-2.5, -0.5, 0, 0.5, 1.5, 2.5));
	static const struct {
		const char *op;
		double want[6];
	} cases[] = {
		{"Abs", {2.5, 0.5, 0, 0.5, 1.5, 2.5}},
		{"Neg", {2.5, 0.5, 0, -0.5, -1.5, -2.5}},
		{"Relu", {0, 0, 0, 0.5, 1.5, 2.5}},
		{"Round", {-2, -0, 0, 0, 2, 2}}, /* half to even */
		{"Floor", {-3, -1, 0, 0, 1, 2}},
		{"Ceil", {-2, -0, 0, 1, 2, 3}},
		{"Sign", {-1, -1, 0, 1, 1, 1}},
		{"Softsign", {-2.5 / 3.5, -0.5 / 1.5, 0, 0.5 / 1.5, 1.5 / 2.5, 2.5 / 3.5}},
		{"HardSwish", {-2.5 * (0.5 / 6), -0.5 * (2.5 / 6), 0, 0.5 * (3.5 / 6), 1.5 * (4.5 / 6), 2.5 * (5.5 / 6)}},
		{"Sigmoid", {0.07585818002124355, 0.3775406687981454, 0.5, 0.6224593312018546, 0.8175744761936437,
			     0.9241418199787566}},
		{"Elu", {-0.9179150013761012, -0.3934693402873666, 0, 0.5, 1.5, 2.5}},
		{"Softplus", {0.07888973429254956, 0.4740769841801067, 0.6931471805599453, 0.9740769841801067,
			      1.7014132779827524, 2.578889734292549}},
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		struct qt_tensor out;
		cr_assert_eq(run1(cases[k].op, 14, 1, &x, NULL, NULL, &out), QT_OK, "%s: %s", cases[k].op,
			     qt_error_msg());
		cr_log_info("%s", cases[k].op);
		expect_vals(&out, QT_DTYPE_F32, cases[k].want, 1e-6);
		qt_tensor_free(&out);
	}
	qt_tensor_free(&x);
}

Test(elemwise, unary_attributes_and_special_values)
{
	struct qt_tensor x = tv(QT_DTYPE_F32, DIMS(4), VALS(-INFINITY, -1, NAN, INFINITY)), out;
	struct op o = op_new("IsInf", 10);
	set_int(&o, "detect_positive", 0);
	const struct qt_tensor *in[1] = {&x};
	cr_assert_eq(op_run(&o, 1, in, 1, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_BOOL, VALS(1, 0, 0, 0), 0);
	qt_tensor_free(&out), qt_graph_free(o.g);
	cr_assert_eq(run1("IsNaN", 13, 1, &x, NULL, NULL, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_BOOL, VALS(0, 0, 1, 0), 0);
	qt_tensor_free(&out);
	cr_assert_eq(run1("Relu", 14, 1, &x, NULL, NULL, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_F32, VALS(0, 0, NAN, INFINITY), 0);
	qt_tensor_free(&out);

	struct qt_tensor y = tv(QT_DTYPE_F32, DIMS(3), VALS(-2, 0.25, 3));
	o = op_new("LeakyRelu", 16);
	set_float(&o, "alpha", 0.5f);
	in[0] = &y;
	cr_assert_eq(op_run(&o, 1, in, 1, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_F32, VALS(-1, 0.25, 3), 0);
	qt_tensor_free(&out), qt_graph_free(o.g);
	o = op_new("HardSigmoid", 6); /* defaults alpha 0.2, beta 0.5 */
	cr_assert_eq(op_run(&o, 1, in, 1, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_F32, VALS(0.1, 0.55, 1), 1e-7);
	qt_tensor_free(&out), qt_graph_free(o.g);
	o = op_new("Shrink", 9);
	set_float(&o, "lambd", 1.0f);
	set_float(&o, "bias", 0.5f);
	cr_assert_eq(op_run(&o, 1, in, 1, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_F32, VALS(-1.5, 0, 2.5), 0);
	qt_tensor_free(&out), qt_graph_free(o.g);
	o = op_new("ThresholdedRelu", 10);
	set_float(&o, "alpha", 2.0f);
	cr_assert_eq(op_run(&o, 1, in, 1, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_F32, VALS(0, 0, 3), 0);
	qt_tensor_free(&out), qt_graph_free(o.g);
	qt_tensor_free(&x), qt_tensor_free(&y);
}

Test(elemwise, integer_unary)
{
	struct qt_tensor x = tv(QT_DTYPE_I8, DIMS(4), VALS(-128, -3, 0, 5)), out;
	cr_assert_eq(run1("Abs", 13, 1, &x, NULL, NULL, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_I8, VALS(-128, 3, 0, 5), 0); /* |-128| wraps, as in numpy */
	qt_tensor_free(&out);
	cr_assert_eq(run1("Neg", 13, 1, &x, NULL, NULL, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_I8, VALS(-128, 3, 0, -5), 0);
	qt_tensor_free(&out);
	cr_assert_eq(run1("Sign", 13, 1, &x, NULL, NULL, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_I8, VALS(-1, -1, 0, 1), 0);
	qt_tensor_free(&out);
	cr_assert_eq(run1("Relu", 14, 1, &x, NULL, NULL, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_I8, VALS(0, 0, 0, 5), 0);
	qt_tensor_free(&out);
	expect_error(run1("Exp", 13, 1, &x, NULL, NULL, &out), QT_E_UNSUPPORTED, "input dtype int8");
	qt_tensor_free(&x);
}

Test(elemwise, float16_computes_in_float_and_rounds_back)
{
	/* 2049 is not a float16: 2048 + 1 rounds to 2048 (half to even), 2048 + 3 to 2052 */
	struct qt_tensor x = tv(QT_DTYPE_F16, DIMS(3), VALS(2048, 2048, -1.5));
	struct qt_tensor y = tv(QT_DTYPE_F16, DIMS(3), VALS(1, 3, 0.25)), out;
	cr_assert_eq(run1("Add", 14, 2, &x, &y, NULL, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_F16, VALS(2048, 2052, -1.25), 0);
	qt_tensor_free(&out);
	cr_assert_eq(run1("Less", 13, 2, &x, &y, NULL, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_BOOL, VALS(0, 0, 1), 0);
	qt_tensor_free(&out);
	cr_assert_eq(run1("Relu", 14, 1, &x, NULL, NULL, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_F16, VALS(2048, 2048, 0), 0);
	qt_tensor_free(&out);
	struct qt_tensor f = tv(QT_DTYPE_F32, DIMS(3), NULL); /* no silent float16/float32 mixing */
	expect_error(run1("Add", 14, 2, &x, &f, NULL, &out), QT_E_FORMAT, "float16 and float32");
	struct qt_tensor e = ti64(DIMS(3), I64S(2, 1, 3)); /* Pow's exponent may differ: float16 result */
	cr_assert_eq(run1("Pow", 15, 2, &y, &e, NULL, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_F16, VALS(1, 3, 0.015625), 0);
	qt_tensor_free(&out);
	qt_tensor_free(&x), qt_tensor_free(&y), qt_tensor_free(&f), qt_tensor_free(&e);
}

Test(elemwise, prelu_slope_broadcasts_to_input_only)
{
	struct qt_tensor x = tv(QT_DTYPE_F32, DIMS(1, 2, 2), VALS(-1, 1, -2, 2));
	struct qt_tensor s = tv(QT_DTYPE_F32, DIMS(2, 1), VALS(0.5, 0.25)), out;
	cr_assert_eq(run1("PRelu", 16, 2, &x, &s, NULL, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_F32, VALS(-0.5, 1, -0.5, 2), 0);
	qt_tensor_free(&out);
	struct qt_tensor big = tv(QT_DTYPE_F32, DIMS(3, 2, 2), NULL);
	expect_error(run1("PRelu", 16, 2, &x, &big, NULL, &out), QT_E_FORMAT, "slope [3,2,2] cannot be broadcast");
	/* opset 6: a 1-D slope of C values is per channel (axis 1) */
	struct qt_tensor x4 = tv(QT_DTYPE_F32, DIMS(1, 2, 1, 2), VALS(-1, -1, -1, -1)), s2 = tv(QT_DTYPE_F32, DIMS(2), VALS(0.5, 0.25));
	cr_assert_eq(run1("PRelu", 6, 2, &x4, &s2, NULL, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_F32, VALS(-0.5, -0.5, -0.25, -0.25), 0);
	qt_tensor_free(&out);
	qt_tensor_free(&x), qt_tensor_free(&s), qt_tensor_free(&big), qt_tensor_free(&x4), qt_tensor_free(&s2);
}

/* ---------- Clip ---------- */

Test(elemwise, clip_attributes_before_opset11)
{
	struct qt_tensor x = tv(QT_DTYPE_F32, DIMS(4), VALS(-3, -1, 1, 3)), out;
	struct op o = op_new("Clip", 6);
	set_float(&o, "min", -2);
	set_float(&o, "max", 2);
	const struct qt_tensor *in[1] = {&x};
	cr_assert_eq(op_run(&o, 1, in, 1, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_F32, VALS(-2, -1, 1, 2), 0);
	qt_tensor_free(&out), qt_graph_free(o.g);
	o = op_new("Clip", 6); /* only max: min defaults to the lowest float */
	set_float(&o, "max", 0);
	cr_assert_eq(op_run(&o, 1, in, 1, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_F32, VALS(-3, -1, 0, 0), 0);
	qt_tensor_free(&out), qt_graph_free(o.g);
	qt_tensor_free(&x);
}

Test(elemwise, clip_inputs_from_opset11)
{
	struct qt_tensor x = tv(QT_DTYPE_F32, DIMS(4), VALS(-3, -1, 1, 3)), out;
	struct qt_tensor lo = tv(QT_DTYPE_F32, NO_DIMS, VALS(-2)), hi = tv(QT_DTYPE_F32, NO_DIMS, VALS(0.5));
	struct op o = op_new("Clip", 13);
	set_float(&o, "min", -100); /* ignored from opset 11 */
	const struct qt_tensor *in[3] = {&x, &lo, &hi};
	cr_assert_eq(op_run(&o, 3, in, 1, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_F32, VALS(-2, -1, 0.5, 0.5), 0);
	qt_tensor_free(&out);
	const struct qt_tensor *only_max[3] = {&x, NULL, &hi};
	cr_assert_eq(op_run(&o, 3, only_max, 1, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_F32, VALS(-3, -1, 0.5, 0.5), 0);
	qt_tensor_free(&out);
	cr_assert_eq(op_run(&o, 1, in, 1, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_F32, VALS(-3, -1, 1, 3), 0);
	qt_tensor_free(&out);
	const struct qt_tensor *swapped[3] = {&x, &hi, &lo}; /* min > max: everything becomes max */
	cr_assert_eq(op_run(&o, 3, swapped, 1, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_F32, VALS(-2, -2, -2, -2), 0);
	qt_tensor_free(&out);
	struct qt_tensor vec = tv(QT_DTYPE_F32, DIMS(2), NULL);
	const struct qt_tensor *bad[3] = {&x, &vec, NULL};
	expect_error(op_run(&o, 3, bad, 1, &out), QT_E_FORMAT, "min must be a numeric scalar");
	struct qt_tensor ilo = ti64(NO_DIMS, I64S(0));
	const struct qt_tensor *mixed[3] = {&x, &ilo, NULL};
	expect_error(op_run(&o, 3, mixed, 1, &out), QT_E_FORMAT, "min must be float32");
	qt_graph_free(o.g);

	struct qt_tensor xi = ti64(DIMS(3), I64S(INT64_MIN, (INT64_C(1) << 60) + 7, INT64_MAX));
	struct qt_tensor ihi = ti64(NO_DIMS, I64S((INT64_C(1) << 60) + 5));
	const struct qt_tensor *iin[3] = {&xi, NULL, &ihi};
	o = op_new("Clip", 13);
	cr_assert_eq(op_run(&o, 3, iin, 1, &out), QT_OK, "%s", qt_error_msg());
	expect_i64(&out, I64S(INT64_MIN, (INT64_C(1) << 60) + 5, (INT64_C(1) << 60) + 5));
	qt_tensor_free(&out), qt_graph_free(o.g);
	qt_tensor_free(&x), qt_tensor_free(&lo), qt_tensor_free(&hi), qt_tensor_free(&vec);
	qt_tensor_free(&ilo), qt_tensor_free(&xi), qt_tensor_free(&ihi);
}

/* ---------- Cast, Dropout ---------- */

static enum qt_status cast(int to, const struct qt_tensor *x, struct qt_tensor *out)
{
	struct op o = op_new("Cast", 13);
	set_int(&o, "to", to);
	const struct qt_tensor *in[1] = {x};
	enum qt_status st = op_run(&o, 1, in, 1, out);
	qt_graph_free(o.g);
	return st;
}

Test(elemwise, cast_between_dtypes)
{
	struct qt_tensor x = tv(QT_DTYPE_F32, DIMS(5), VALS(-1.75, -0.5, 0, 2.5, 300)), out;
	cr_assert_eq(cast(6, &x, &out), QT_OK, "%s", qt_error_msg()); /* INT32: truncates toward zero */
	expect_vals(&out, QT_DTYPE_I32, VALS(-1, 0, 0, 2, 300), 0);
	qt_tensor_free(&out);
	cr_assert_eq(cast(2, &x, &out), QT_OK, "%s", qt_error_msg()); /* UINT8 wraps like numpy */
	expect_vals(&out, QT_DTYPE_U8, VALS(255, 0, 0, 2, 44), 0);
	qt_tensor_free(&out);
	cr_assert_eq(cast(9, &x, &out), QT_OK, "%s", qt_error_msg()); /* BOOL */
	expect_vals(&out, QT_DTYPE_BOOL, VALS(1, 1, 0, 1, 1), 0);
	qt_tensor_free(&out);
	cr_assert_eq(cast(10, &x, &out), QT_OK, "%s", qt_error_msg()); /* FLOAT16 */
	expect_vals(&out, QT_DTYPE_F16, VALS(-1.75, -0.5, 0, 2.5, 300), 0);
	qt_tensor_free(&out);
	struct qt_tensor big = ti64(DIMS(2), I64S((INT64_C(1) << 62) + 1, -3));
	cr_assert_eq(cast(13, &big, &out), QT_OK, "%s", qt_error_msg()); /* UINT64, exact */
	cr_expect_eq(((uint64_t *)out.data)[0], (UINT64_C(1) << 62) + 1);
	cr_expect_eq(((uint64_t *)out.data)[1], UINT64_MAX - 2);
	qt_tensor_free(&out);
	cr_assert_eq(cast(11, &big, &out), QT_OK, "%s", qt_error_msg()); /* DOUBLE rounds */
	expect_vals(&out, QT_DTYPE_F64, VALS(4611686018427387904.0, -3), 0);
	qt_tensor_free(&out);
	expect_error(cast(16, &x, &out), QT_E_UNSUPPORTED, "cast to ONNX type 16");
	expect_error(cast(8, &x, &out), QT_E_UNSUPPORTED, "cast to string");
	/* opset 1 names the type with a string */
	struct op o = op_new("Cast", 1);
	set_str(&o, "to", "INT64");
	const struct qt_tensor *in[1] = {&x};
	cr_assert_eq(op_run(&o, 1, in, 1, &out), QT_OK, "%s", qt_error_msg());
	expect_i64(&out, I64S(-1, 0, 0, 2, 300));
	qt_tensor_free(&out), qt_graph_free(o.g);
	/* CastLike takes the dtype of its second input */
	struct qt_tensor like = tv(QT_DTYPE_I16, NO_DIMS, NULL);
	cr_assert_eq(run1("CastLike", 15, 2, &x, &like, NULL, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_I16, VALS(-1, 0, 0, 2, 300), 0);
	qt_tensor_free(&out);
	qt_tensor_free(&x), qt_tensor_free(&big), qt_tensor_free(&like);
}

Test(elemwise, dropout_inference)
{
	struct qt_tensor x = tv(QT_DTYPE_F32, DIMS(2, 2), VALS(1, 2, 3, 4)), out[2];
	struct op o = op_new("Dropout", 13);
	const struct qt_tensor *in[1] = {&x};
	cr_assert_eq(op_run(&o, 1, in, 2, out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out[0], QT_DTYPE_F32, VALS(1, 2, 3, 4), 0);
	expect_vals(&out[1], QT_DTYPE_BOOL, VALS(1, 1, 1, 1), 0);
	free_all(out, 2);
	struct qt_tensor r = tv(QT_DTYPE_F32, NO_DIMS, VALS(0.5)), r0 = tv(QT_DTYPE_F32, NO_DIMS, VALS(0));
	struct qt_tensor t = tv(QT_DTYPE_BOOL, NO_DIMS, VALS(1));
	const struct qt_tensor *train[3] = {&x, &r, &t};
	expect_error(op_run(&o, 3, train, 2, out), QT_E_UNSUPPORTED, "training_mode");
	const struct qt_tensor *train0[3] = {&x, &r0, &t}; /* ratio 0: training is the identity */
	cr_assert_eq(op_run(&o, 3, train0, 2, out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out[0], QT_DTYPE_F32, VALS(1, 2, 3, 4), 0);
	free_all(out, 2);
	qt_graph_free(o.g);
	o = op_new("Dropout", 7); /* mask had the input's dtype before opset 10 */
	cr_assert_eq(op_run(&o, 1, in, 2, out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out[1], QT_DTYPE_F32, VALS(1, 1, 1, 1), 0);
	free_all(out, 2);
	qt_graph_free(o.g);
	qt_tensor_free(&x), qt_tensor_free(&r), qt_tensor_free(&r0), qt_tensor_free(&t);
}

/* ---------- reductions ---------- */

/* x = [[[1,2],[3,4]],[[5,6],[7,8]]], shape [2,2,2] */
static struct qt_tensor cube(enum qt_dtype dt)
{
	return tv(dt, DIMS(2, 2, 2), VALS(1, 2, 3, 4, 5, 6, 7, 8));
}

static enum qt_status reduce(const char *op_type, int opset, const struct qt_tensor *x, int nax, const int64_t *axes,
			     int keepdims, struct qt_tensor *out)
{
	struct op o = op_new(op_type, opset);
	if (nax >= 0)
		set_ints(&o, "axes", nax, axes);
	if (keepdims >= 0)
		set_int(&o, "keepdims", keepdims);
	const struct qt_tensor *in[1] = {x};
	enum qt_status st = op_run(&o, 1, in, 1, out);
	qt_graph_free(o.g);
	return st;
}

Test(reduce, axes_attribute_with_and_without_keepdims)
{
	struct qt_tensor x = cube(QT_DTYPE_F32), out;
	cr_assert_eq(reduce("ReduceSum", 11, &x, 1, I64S(1), 1, &out), QT_OK, "%s", qt_error_msg());
	expect_shape(&out, DIMS(2, 1, 2));
	expect_vals(&out, QT_DTYPE_F32, VALS(4, 6, 12, 14), 0);
	qt_tensor_free(&out);
	cr_assert_eq(reduce("ReduceMean", 13, &x, 2, I64S(0, -1), 0, &out), QT_OK, "%s", qt_error_msg());
	expect_shape(&out, DIMS(2));
	expect_vals(&out, QT_DTYPE_F32, VALS(3.5, 5.5), 0);
	qt_tensor_free(&out);
	cr_assert_eq(reduce("ReduceMax", 13, &x, -1, NULL, -1, &out), QT_OK, "%s", qt_error_msg());
	expect_shape(&out, DIMS(1, 1, 1)); /* no axes: all, keepdims defaults to 1 */
	expect_vals(&out, QT_DTYPE_F32, VALS(8), 0);
	qt_tensor_free(&out);
	cr_assert_eq(reduce("ReduceProd", 13, &x, 1, I64S(2), 0, &out), QT_OK, "%s", qt_error_msg());
	expect_shape(&out, DIMS(2, 2));
	expect_vals(&out, QT_DTYPE_F32, VALS(2, 12, 30, 56), 0);
	qt_tensor_free(&out);
	cr_assert_eq(reduce("ReduceMin", 13, &x, 2, I64S(0, 2), 0, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_F32, VALS(1, 3), 0);
	qt_tensor_free(&out);
	cr_assert_eq(reduce("ReduceL1", 13, &x, 1, I64S(0), 0, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_F32, VALS(6, 8, 10, 12), 0);
	qt_tensor_free(&out);
	cr_assert_eq(reduce("ReduceL2", 13, &x, 1, I64S(2), 0, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_F32, VALS(sqrt(5), 5, sqrt(61), sqrt(113)), 1e-7);
	qt_tensor_free(&out);
	cr_assert_eq(reduce("ReduceSumSquare", 13, &x, 1, I64S(1), 0, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_F32, VALS(10, 20, 74, 100), 0);
	qt_tensor_free(&out);
	cr_assert_eq(reduce("ReduceLogSum", 13, &x, 1, I64S(2), 0, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_F32, VALS(log(3), log(7), log(11), log(15)), 1e-6);
	qt_tensor_free(&out);
	qt_tensor_free(&x);
}

Test(reduce, log_sum_exp_is_stable)
{
	struct qt_tensor x = tv(QT_DTYPE_F32, DIMS(2, 2), VALS(1000, 1000, -INFINITY, -INFINITY)), out;
	cr_assert_eq(reduce("ReduceLogSumExp", 13, &x, 1, I64S(1), 0, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_F32, VALS(1000 + log(2), -INFINITY), 1e-7);
	qt_tensor_free(&out), qt_tensor_free(&x);
}

Test(reduce, sum_axes_input_from_opset13)
{
	struct qt_tensor x = cube(QT_DTYPE_F32), out;
	struct qt_tensor axes = ti64(DIMS(1), I64S(-2)), none = ti64(DIMS(0), I64S(0));
	struct op o = op_new("ReduceSum", 13);
	set_int(&o, "keepdims", 0);
	set_ints(&o, "axes", 1, I64S(0)); /* a stale attribute is not read from opset 13 */
	const struct qt_tensor *in[2] = {&x, &axes};
	cr_assert_eq(op_run(&o, 2, in, 1, &out), QT_OK, "%s", qt_error_msg());
	expect_shape(&out, DIMS(2, 2));
	expect_vals(&out, QT_DTYPE_F32, VALS(4, 6, 12, 14), 0);
	qt_tensor_free(&out);
	cr_assert_eq(op_run(&o, 1, in, 1, &out), QT_OK, "%s", qt_error_msg()); /* no axes: reduce all */
	expect_shape(&out, NO_DIMS);
	expect_vals(&out, QT_DTYPE_F32, VALS(36), 0);
	qt_tensor_free(&out);
	qt_graph_free(o.g);
	o = op_new("ReduceSum", 13);
	set_int(&o, "noop_with_empty_axes", 1);
	const struct qt_tensor *in_none[2] = {&x, &none};
	cr_assert_eq(op_run(&o, 2, in_none, 1, &out), QT_OK, "%s", qt_error_msg());
	expect_shape(&out, DIMS(2, 2, 2));
	expect_vals(&out, QT_DTYPE_F32, VALS(1, 2, 3, 4, 5, 6, 7, 8), 0);
	qt_tensor_free(&out);
	qt_graph_free(o.g);
	/* ReduceMean reads axes as an input only from opset 18 */
	o = op_new("ReduceMean", 18);
	set_int(&o, "keepdims", 0);
	cr_assert_eq(op_run(&o, 2, in, 1, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_F32, VALS(2, 3, 6, 7), 0);
	qt_tensor_free(&out);
	qt_graph_free(o.g);
	qt_tensor_free(&x), qt_tensor_free(&axes), qt_tensor_free(&none);
}

Test(reduce, int64_exact_and_float_sums_in_double)
{
	const int64_t big = (INT64_C(1) << 53) + 1;
	struct qt_tensor x = ti64(DIMS(3), I64S(big, 2, -1)), out;
	cr_assert_eq(reduce("ReduceSum", 11, &x, -1, NULL, 0, &out), QT_OK, "%s", qt_error_msg());
	expect_i64(&out, I64S(big + 1));
	qt_tensor_free(&out);
	cr_assert_eq(reduce("ReduceMax", 13, &x, -1, NULL, 0, &out), QT_OK, "%s", qt_error_msg());
	expect_i64(&out, I64S(big));
	qt_tensor_free(&out);
	qt_tensor_free(&x);
	/* 1 followed by 2^24 ones of 2^-24: a float accumulator would stay at 1 */
	int64_t n = (INT64_C(1) << 20) + 1;
	struct qt_tensor f = {0};
	cr_assert_eq(qt_tensor_alloc(&f, QT_DTYPE_F32, 1, &n), QT_OK);
	float *p = f.data;
	p[0] = 1;
	for (int64_t i = 1; i < n; i++)
		p[i] = 1.0f / (1 << 24);
	cr_assert_eq(reduce("ReduceSum", 11, &f, -1, NULL, 0, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_F32, VALS(1.0625), 0);
	qt_tensor_free(&out), qt_tensor_free(&f);
	struct qt_tensor i32 = tv(QT_DTYPE_I32, DIMS(2, 2), VALS(-7, 2, 4, 4));
	cr_assert_eq(reduce("ReduceMean", 13, &i32, 1, I64S(1), 0, &out), QT_OK, "%s", qt_error_msg());
	expect_vals(&out, QT_DTYPE_I32, VALS(-2, 4), 0); /* -2.5 truncates toward zero */
	qt_tensor_free(&out), qt_tensor_free(&i32);
}

Test(reduce, bad_axes_are_reported)
{
	struct qt_tensor x = cube(QT_DTYPE_F32), out = {0};
	expect_error(reduce("ReduceSum", 11, &x, 1, I64S(3), 1, &out), QT_E_FORMAT,
		     "axis 3 is out of range for input [2,2,2]");
	expect_error(reduce("ReduceMax", 13, &x, 2, I64S(1, -2), 1, &out), QT_E_FORMAT, "axis -2 is listed twice");
	struct qt_tensor s = tv(QT_DTYPE_BOOL, DIMS(2), NULL);
	expect_error(reduce("ReduceSum", 11, &s, -1, NULL, 1, &out), QT_E_UNSUPPORTED, "input dtype bool");
	qt_tensor_free(&x), qt_tensor_free(&s);
}

Test(reduce, scalar_input)
{
	struct qt_tensor x = tv(QT_DTYPE_F32, NO_DIMS, VALS(-3)), out;
	cr_assert_eq(reduce("ReduceL1", 13, &x, -1, NULL, 1, &out), QT_OK, "%s", qt_error_msg());
	expect_shape(&out, NO_DIMS);
	expect_vals(&out, QT_DTYPE_F32, VALS(3), 0);
	qt_tensor_free(&out), qt_tensor_free(&x);
}

Test(reduce, argmax_argmin)
{
	struct qt_tensor x = tv(QT_DTYPE_F32, DIMS(2, 3), VALS(1, 5, 5, 7, 0, 7)), out;
	struct op o = op_new("ArgMax", 13);
	set_int(&o, "axis", 1);
	const struct qt_tensor *in[1] = {&x};
	cr_assert_eq(op_run(&o, 1, in, 1, &out), QT_OK, "%s", qt_error_msg());
	expect_shape(&out, DIMS(2, 1));
	expect_i64(&out, I64S(1, 0));
	qt_tensor_free(&out);
	set_int(&o, "select_last_index", 1);
	set_int(&o, "keepdims", 0);
	cr_assert_eq(op_run(&o, 1, in, 1, &out), QT_OK, "%s", qt_error_msg());
	expect_shape(&out, DIMS(2));
	expect_i64(&out, I64S(2, 2));
	qt_tensor_free(&out), qt_graph_free(o.g);
	o = op_new("ArgMin", 13); /* default axis 0 */
	cr_assert_eq(op_run(&o, 1, in, 1, &out), QT_OK, "%s", qt_error_msg());
	expect_shape(&out, DIMS(1, 3));
	expect_i64(&out, I64S(0, 1, 0));
	qt_tensor_free(&out), qt_graph_free(o.g);
	struct qt_tensor big = ti64(DIMS(2), I64S((INT64_C(1) << 53) + 1, INT64_C(1) << 53));
	o = op_new("ArgMin", 13);
	in[0] = &big;
	cr_assert_eq(op_run(&o, 1, in, 1, &out), QT_OK, "%s", qt_error_msg());
	expect_i64(&out, I64S(1)); /* exact int64 comparison */
	qt_tensor_free(&out), qt_graph_free(o.g);
	o = op_new("ArgMax", 13);
	set_int(&o, "axis", 2);
	in[0] = &x;
	expect_error(op_run(&o, 1, in, 1, &out), QT_E_FORMAT, "axis 2 is out of range");
	qt_graph_free(o.g);
	qt_tensor_free(&x), qt_tensor_free(&big);
}

/* ---------- ONNX backend test data ---------- */

#define ONNX_DATA "/usr/share/libonnx-testdata/data"

/* Every op type op_elemwise.c and op_reduce.c implement. */
static const char *const my_ops[] = {
	"Abs", "Neg", "Exp", "Log", "Sqrt", "Erf", "Relu", "Sigmoid", "Tanh", "Reciprocal", "Floor", "Ceil", "Round",
	"Sign", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Softplus",
	"Softsign", "Elu", "Selu", "LeakyRelu", "HardSigmoid", "HardSwish", "ThresholdedRelu", "Celu", "Shrink",
	"Not", "IsNaN", "IsInf", "Add", "Sub", "Mul", "Div", "Pow", "Mod", "PRelu", "BitShift", "Equal", "Greater",
	"Less", "GreaterOrEqual", "LessOrEqual", "And", "Or", "Xor", "Max", "Min", "Sum", "Mean", "Where", "Cast",
	"CastLike", "Clip", "Dropout", "ReduceSum", "ReduceMean", "ReduceProd", "ReduceMax", "ReduceMin", "ReduceL1",
	"ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp", "ArgMax", "ArgMin",
};

/*
 * Folders of these ops that are expected not to run, with the reason. They
 * must still fail cleanly (an error status, no crash).
 */
static const char *const expected_unsupported[][2] = {
	{"test_cast_BFLOAT16_to_FLOAT", "bfloat16 has no qtool dtype"},
	{"test_cast_FLOAT_to_BFLOAT16", "bfloat16 has no qtool dtype"},
	{"test_castlike_BFLOAT16_to_FLOAT", "bfloat16 has no qtool dtype"},
	{"test_castlike_BFLOAT16_to_FLOAT_expanded", "bfloat16 has no qtool dtype"},
	{"test_castlike_FLOAT_to_BFLOAT16", "bfloat16 has no qtool dtype"},
	{"test_castlike_FLOAT_to_BFLOAT16_expanded", "bfloat16 has no qtool dtype"},
	{"test_cast_FLOAT_to_STRING", "string tensors are refused"},
	{"test_cast_STRING_to_FLOAT", "string tensors are refused"},
	{"test_castlike_FLOAT_to_STRING", "string tensors are refused"},
	{"test_castlike_FLOAT_to_STRING_expanded", "string tensors are refused"},
	{"test_castlike_STRING_to_FLOAT", "string tensors are refused"},
	{"test_castlike_STRING_to_FLOAT_expanded", "string tensors are refused"},
	{"test_training_dropout", "training-mode Dropout draws random masks"},
	{"test_training_dropout_default", "training-mode Dropout draws random masks"},
	{"test_training_dropout_default_mask", "training-mode Dropout draws random masks"},
	{"test_training_dropout_mask", "training-mode Dropout draws random masks"},
};

static const char *unsupported_reason(const char *name)
{
	for (size_t i = 0; i < sizeof expected_unsupported / sizeof expected_unsupported[0]; i++)
		if (strcmp(expected_unsupported[i][0], name) == 0)
			return expected_unsupported[i][1];
	return NULL;
}

static int all_mine(const struct qt_graph *g)
{
	for (int i = 0; i < g->n_nodes; i++) {
		int found = 0;
		for (size_t k = 0; k < sizeof my_ops / sizeof my_ops[0] && !found; k++)
			found = strcmp(g->nodes[i].op_type, my_ops[k]) == 0 && !g->nodes[i].domain[0];
		if (!found)
			return 0;
	}
	return g->n_nodes > 0;
}

/* rtol 1e-3, atol 1e-5 for floats (NaN == NaN, same-signed infinities equal); exact otherwise. */
static int compare(const struct qt_tensor *got, const struct qt_tensor *want, char *why, size_t cap)
{
	char a[96], b[96];
	if (got->dtype != want->dtype) {
		snprintf(why, cap, "dtype %s, want %s", qt_dtype_name(got->dtype), qt_dtype_name(want->dtype));
		return 1;
	}
	if (got->rank != want->rank || memcmp(got->dims, want->dims, (size_t)got->rank * sizeof got->dims[0])) {
		snprintf(why, cap, "shape %s, want %s", qt_shape_str(a, sizeof a, got->rank, got->dims),
			 qt_shape_str(b, sizeof b, want->rank, want->dims));
		return 1;
	}
	int fl = got->dtype == QT_DTYPE_F32 || got->dtype == QT_DTYPE_F64 || got->dtype == QT_DTYPE_F16;
	if (!fl) {
		if (got->nbytes && memcmp(got->data, want->data, got->nbytes)) {
			snprintf(why, cap, "integer/bool values differ");
			return 1;
		}
		return 0;
	}
	for (int64_t i = 0; i < qt_tensor_numel(got); i++) {
		double x = qt_tensor_get_f64(got, i), y = qt_tensor_get_f64(want, i);
		if ((isnan(x) && isnan(y)) || x == y || fabs(x - y) <= 1e-5 + 1e-3 * fabs(y))
			continue;
		snprintf(why, cap, "element %lld: %.9g, want %.9g", (long long)i, x, y);
		return 1;
	}
	return 0;
}

/* 1 passed, 0 not one of ours (skipped), -1 failed (why says how). */
static int run_onnx_case(const char *dir, char *why, size_t cap)
{
	char path[1400];
	struct qt_graph *g = NULL;
	struct qt_rt *rt = NULL;
	struct qt_tensor in[16], out[16], want[16];
	memset(in, 0, sizeof in), memset(out, 0, sizeof out), memset(want, 0, sizeof want);
	int res = -1;
	snprintf(path, sizeof path, "%s/model.onnx", dir);
	if (qt_graph_load_onnx(path, &g) != QT_OK) {
		snprintf(why, cap, "load: %s", qt_error_msg());
		return 0; /* whose ops they are is unknown: the loader's tests cover it */
	}
	if (!all_mine(g)) {
		res = 0;
		goto out;
	}
	if (g->n_inputs > 16 || g->n_outputs > 16) {
		snprintf(why, cap, "too many inputs or outputs");
		goto out;
	}
	for (int i = 0; i < g->n_inputs; i++) {
		snprintf(path, sizeof path, "%s/test_data_set_0/input_%d.pb", dir, i);
		if (qt_tensor_read_pb(path, &in[i], NULL, 0) != QT_OK) {
			snprintf(why, cap, "input %d: %s", i, qt_error_msg());
			goto out;
		}
	}
	if (qt_rt_new(g, &rt) != QT_OK || qt_rt_run(rt, in, out) != QT_OK) {
		snprintf(why, cap, "%s", qt_error_msg());
		goto out;
	}
	res = 1;
	for (int i = 0; i < g->n_outputs && res == 1; i++) {
		char w[512];
		snprintf(path, sizeof path, "%s/test_data_set_0/output_%d.pb", dir, i);
		if (qt_tensor_read_pb(path, &want[i], NULL, 0) != QT_OK) {
			snprintf(why, cap, "output %d: %s", i, qt_error_msg());
			res = -1;
		} else if (compare(&out[i], &want[i], w, sizeof w)) {
			snprintf(why, cap, "output %d: %s", i, w);
			res = -1;
		}
	}
out:
	if (g)
		for (int i = 0; i < 16; i++)
			qt_tensor_free(&in[i]), qt_tensor_free(&out[i]), qt_tensor_free(&want[i]);
	qt_rt_free(rt);
	qt_graph_free(g);
	return res;
}

Test(onnx_elemwise, backend_node_tests_pass, .timeout = 300)
{
	static const char *suites[] = {"node", "simple", "pytorch-converted", "pytorch-operator"};
	int passed = 0, failed = 0, unsupported = 0;
	for (size_t s = 0; s < sizeof suites / sizeof suites[0]; s++) {
		char root[512];
		snprintf(root, sizeof root, ONNX_DATA "/%s", suites[s]);
		struct dirent **ents;
		int n = scandir(root, &ents, NULL, alphasort);
		if (n < 0) {
			cr_log_warn("%s is missing; install libonnx-testdata", root);
			continue;
		}
		for (int i = 0; i < n; i++) {
			const char *name = ents[i]->d_name;
			char dir[1024], why[1024] = "";
			struct stat sb;
			snprintf(dir, sizeof dir, "%s/%s", root, name);
			if (name[0] == '.' || stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
				continue;
			int r = run_onnx_case(dir, why, sizeof why);
			const char *reason = unsupported_reason(name);
			if (reason) {
				unsupported++;
				cr_expect_neq(r, 1, "%s/%s passes now: drop it from expected_unsupported", suites[s], name);
				cr_log_info("%s/%s unsupported (%s): %s", suites[s], name, reason, why);
			} else if (r > 0) {
				passed++;
			} else if (r < 0) {
				failed++;
				cr_expect_fail("%s/%s: %s", suites[s], name, why);
			}
		}
		for (int i = 0; i < n; i++)
			free(ents[i]);
		free(ents);
	}
	cr_log_info("elemwise/reduce ONNX backend tests: %d passed, %d failed, %d expected unsupported", passed,
		    failed, unsupported);
	cr_expect_gt(passed, 350, "only %d backend tests ran", passed);
}
