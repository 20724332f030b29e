/*
 * QuantizeLinear and DequantizeLinear of the FP32 executor (lib/rt/op_qdq.c),
 * which run what `qtool export` writes. Hand-checked cases: ties to even,
 * saturation, NaN, per-tensor, per-axis and blocked scales, int4 packing,
 * int32 codes, and refusals of inconsistent scale shapes. Integer outputs
 * are compared exactly; float outputs exactly too, since (code - zp) * scale
 * is one correctly rounded product.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "qtool/graph.h"
#include "qtool/quant.h"
#include "rt/ops.h"

struct qdq {
	struct qt_graph *g;
	int node;
};

static struct qdq qdq_new(const char *op, int64_t axis, int64_t block)
{
	struct qdq q;
	cr_assert_eq(qt_graph_new(&q.g), QT_OK);
	q.node = qt_graph_add_node(q.g, op, "", "q0");
	struct qt_node *n = &q.g->nodes[q.node];
	n->attrs = qt_graph_alloc(q.g, 2 * sizeof *n->attrs);
	n->attrs[0].name = "axis";
	n->attrs[0].type = QT_ATTR_INT;
	n->attrs[0].i = axis;
	n->attrs[1].name = "block_size";
	n->attrs[1].type = QT_ATTR_INT;
	n->attrs[1].i = block;
	n->n_attrs = 2;
	return q;
}

/* Run op on (x, s, zp or NULL) at opset 21 into *y. */
static enum qt_status qdq_run(struct qdq *q, const struct qt_tensor *x, const struct qt_tensor *s,
			      const struct qt_tensor *zp, struct qt_tensor *y)
{
	const struct qt_node *n = &q->g->nodes[q->node];
	qt_op_fn fn = qt_op_find("", n->op_type, 21);
	cr_assert(fn, "%s not registered", n->op_type);
	const struct qt_tensor *in[3] = {x, s, zp};
	struct qt_op_args a = {.g = q->g, .node = n, .opset = 21, .n_in = zp ? 3 : 2, .in = in, .n_out = 1, .out = y};
	return fn(&a);
}

static struct qt_tensor tensor(enum qt_dtype dt, int rank, const int64_t *dims, const void *data)
{
	struct qt_tensor t = {0};
	cr_assert_eq(qt_tensor_alloc(&t, dt, rank, dims), QT_OK);
	memcpy(t.data, data, t.nbytes);
	return t;
}

Test(qdq, quantize_u8_ties_to_even_saturates_nan_to_qmin)
{
	struct qdq q = qdq_new("QuantizeLinear", 1, 0);
	float xv[] = {0.5f, 1.5f, 2.5f, -0.5f, 300.0f, -300.0f, NAN, 254.5f};
	float sv[] = {1.0f};
	uint8_t zv[] = {0};
	int64_t d[] = {8};
	struct qt_tensor x = tensor(QT_DTYPE_F32, 1, d, xv), s = tensor(QT_DTYPE_F32, 0, NULL, sv),
			 z = tensor(QT_DTYPE_U8, 0, NULL, zv), y = {0};
	cr_assert_eq(qdq_run(&q, &x, &s, &z, &y), QT_OK);
	cr_assert_eq(y.dtype, QT_DTYPE_U8);
	uint8_t want[] = {0, 2, 2, 0, 255, 0, 0, 254};
	cr_assert_arr_eq(y.data, want, sizeof want);
	qt_tensor_free(&x), qt_tensor_free(&s), qt_tensor_free(&z), qt_tensor_free(&y);
	qt_graph_free(q.g);
}

Test(qdq, quantize_i8_with_zero_point)
{
	struct qdq q = qdq_new("QuantizeLinear", 1, 0);
	float xv[] = {0.25f, 0.75f, -100.0f, 100.0f, -1.75f};
	float sv[] = {0.5f};
	int8_t zv[] = {3};
	int64_t d[] = {5};
	struct qt_tensor x = tensor(QT_DTYPE_F32, 1, d, xv), s = tensor(QT_DTYPE_F32, 0, NULL, sv),
			 z = tensor(QT_DTYPE_I8, 0, NULL, zv), y = {0};
	cr_assert_eq(qdq_run(&q, &x, &s, &z, &y), QT_OK);
	/* 0.5 -> 0 (even) + 3; 1.5 -> 2 + 3; saturated; -3.5 -> -4 (even) + 3. */
	int8_t want[] = {3, 5, -128, 127, -1};
	cr_assert_arr_eq(y.data, want, sizeof want);
	qt_tensor_free(&x), qt_tensor_free(&s), qt_tensor_free(&z), qt_tensor_free(&y);
	qt_graph_free(q.g);
}

Test(qdq, quantize_per_axis_and_to_uint4_packed)
{
	struct qdq q = qdq_new("QuantizeLinear", 1, 0);
	float xv[] = {4, 4, 4, 80, 8, -8};
	float sv[] = {1, 2, 4};
	uint8_t zv[] = {0x21, 0x03}; /* uint4 zero points 1, 2, 3 (low nibble first) */
	int64_t d[] = {2, 3}, ds[] = {3};
	struct qt_tensor x = tensor(QT_DTYPE_F32, 2, d, xv), s = tensor(QT_DTYPE_F32, 1, ds, sv), z = {0}, y = {0};
	cr_assert_eq(qt_tensor_alloc(&z, QT_DTYPE_U4, 1, ds), QT_OK);
	memcpy(z.data, zv, 2);
	cr_assert_eq(qdq_run(&q, &x, &s, &z, &y), QT_OK);
	cr_assert_eq(y.dtype, QT_DTYPE_U4);
	/* codes: 4+1, 2+2, 1+3, 80+1 -> 15, 4+2, -2+3 */
	int32_t want[] = {5, 4, 4, 15, 6, 1};
	for (int i = 0; i < 6; i++)
		cr_expect_eq(qt_code_get(&y, i), want[i], "element %d: %d, want %d", i, qt_code_get(&y, i), want[i]);
	qt_tensor_free(&x), qt_tensor_free(&s), qt_tensor_free(&z), qt_tensor_free(&y);
	qt_graph_free(q.g);
}

Test(qdq, dequantize_int4_blocked)
{
	/* x [4, 2] int4, blocks of 2 along axis 0: scale [2, 2]. */
	struct qdq q = qdq_new("DequantizeLinear", 0, 2);
	int32_t codes[] = {-8, 7, 1, -1, 2, 3, -4, 5};
	int64_t d[] = {4, 2}, ds[] = {2, 2};
	float sv[] = {0.5f, 1.0f, 2.0f, 0.25f};
	struct qt_tensor x = {0}, s = tensor(QT_DTYPE_F32, 2, ds, sv), y = {0};
	cr_assert_eq(qt_tensor_alloc(&x, QT_DTYPE_S4, 2, d), QT_OK);
	uint8_t *b = x.data;
	for (int i = 0; i < 8; i++)
		b[i >> 1] |= (uint8_t)((codes[i] & 15) << ((i & 1) * 4));
	cr_assert_eq(qdq_run(&q, &x, &s, NULL, &y), QT_OK);
	/* rows 0-1 use scale row 0 {0.5, 1}; rows 2-3 scale row 1 {2, 0.25}. */
	float want[] = {-4.0f, 7.0f, 0.5f, -1.0f, 4.0f, 0.75f, -8.0f, 1.25f};
	for (int i = 0; i < 8; i++)
		cr_expect_eq(((float *)y.data)[i], want[i], "element %d: %g, want %g", i, ((float *)y.data)[i], want[i]);
	qt_tensor_free(&x), qt_tensor_free(&s), qt_tensor_free(&y);
	qt_graph_free(q.g);
}

Test(qdq, dequantize_int32_bias_per_axis)
{
	struct qdq q = qdq_new("DequantizeLinear", 0, 0);
	int32_t xv[] = {1000000, -3, 0};
	float sv[] = {1e-3f, 0.5f, 7.0f};
	int64_t d[] = {3};
	struct qt_tensor x = tensor(QT_DTYPE_I32, 1, d, xv), s = tensor(QT_DTYPE_F32, 1, d, sv), y = {0};
	cr_assert_eq(qdq_run(&q, &x, &s, NULL, &y), QT_OK);
	float *o = y.data;
	cr_expect_eq(o[0], 1000000.0f * 1e-3f);
	cr_expect_eq(o[1], -1.5f);
	cr_expect_eq(o[2], 0.0f);
	qt_tensor_free(&x), qt_tensor_free(&s), qt_tensor_free(&y);
	qt_graph_free(q.g);
}

Test(qdq, refuses_inconsistent_scales)
{
	struct qdq q = qdq_new("DequantizeLinear", 1, 0);
	int8_t xv[6] = {0};
	float sv[] = {1, 2};
	int64_t d[] = {2, 3}, ds[] = {2};
	struct qt_tensor x = tensor(QT_DTYPE_I8, 2, d, xv), s = tensor(QT_DTYPE_F32, 1, ds, sv), y = {0};
	cr_assert_eq(qdq_run(&q, &x, &s, NULL, &y), QT_E_FORMAT);
	cr_expect(strstr(qt_error_msg(), "per-axis scale needs 3 entries"), "message: %s", qt_error_msg());
	qt_tensor_free(&y);
	struct qdq qb = qdq_new("DequantizeLinear", 1, 2); /* blocked needs scale rank 2 */
	cr_assert_eq(qdq_run(&qb, &x, &s, NULL, &y), QT_E_FORMAT);
	cr_expect(strstr(qt_error_msg(), "blocked scale"), "message: %s", qt_error_msg());
	qt_tensor_free(&x), qt_tensor_free(&s), qt_tensor_free(&y);
	qt_graph_free(q.g);
	qt_graph_free(qb.g);
}
