/*
 * Internal interface between the FP32 executor and its op kernels.
 *
 * An op receives its concrete input tensors (NULL for an omitted optional
 * input), infers its output shapes from them, allocates each output with
 * qt_tensor_alloc, and computes. Ops validate everything they read (ranks,
 * attribute values, shape-tensor contents) and report problems with
 * qt_op_error so the message names the node. Ops never keep pointers to their
 * inputs after returning.
 *
 * Float rule: FP32 ops compute in float (double where an accumulation over a
 * reduction axis benefits), results are compared to ONNX's reference outputs
 * with rtol 1e-3, atol 1e-5.
 */
#ifndef QT_RT_OPS_H
#define QT_RT_OPS_H

#include "qtool/graph.h"
#include "qtool/tensor.h"

struct qt_op_args {
	const struct qt_graph *g;
	const struct qt_node *node;
	int opset; /* version of the node's domain the model imports */
	int n_in;
	const struct qt_tensor *const *in; /* in[i] may be NULL (omitted optional) */
	int n_out;
	struct qt_tensor *out; /* n_out empty tensors to allocate and fill */
};

typedef enum qt_status (*qt_op_fn)(const struct qt_op_args *a);

struct qt_op_entry {
	const char *op_type;
	int min_opset; /* first ai.onnx version this kernel implements (1 if all) */
	qt_op_fn fn;
};

/*
 * One table per source file, each terminated by {NULL, 0, NULL}. The
 * registry (ops.c) concatenates them.
 */
extern const struct qt_op_entry qt_ops_conv[];    /* op_conv.c: Conv, ConvTranspose, pools */
extern const struct qt_op_entry qt_ops_linalg[];  /* op_linalg.c: Gemm, MatMul */
extern const struct qt_op_entry qt_ops_norm[];    /* op_norm.c: BatchNorm, LayerNorm, Softmax */
extern const struct qt_op_entry qt_ops_elemwise[]; /* op_elemwise.c: unary, binary, Where, Cast, Clip */
extern const struct qt_op_entry qt_ops_reduce[];  /* op_reduce.c: Reduce* */
extern const struct qt_op_entry qt_ops_shape[];   /* op_shape.c: Reshape, Transpose, Slice, ... */
extern const struct qt_op_entry qt_ops_qdq[];     /* op_qdq.c: QuantizeLinear, DequantizeLinear */
extern const struct qt_op_entry qt_ops_qtool[];   /* op_linalg.c: domain ai.qtool (qtool/quant.h) */
/* ai.qtool FakeQuant (op_qdq.c), in qt_ops_qtool. */
enum qt_status qt_op_fake_quant(const struct qt_op_args *a);

/* 2-D ConvTranspose geometry (integer runtime): pt/pl are the begin pads. */
struct qt_convt_geom {
	int64_t N, C, M, group, H, W, OH, OW, KH, KW, sh, sw, dh, dw, pt, pl;
};
enum qt_status qt_convt_geometry_2d(const struct qt_op_args *a, const struct qt_tensor *x, const struct qt_tensor *w,
				    struct qt_convt_geom *o);

/* LayerNormalization (op_norm.c), also ai.qtool's at any opset (qtool/quant.h). */
enum qt_status qt_op_layernorm(const struct qt_op_args *a);

/* Look up a kernel; NULL when unsupported. */
qt_op_fn qt_op_find(const char *domain, const char *op_type, int opset);

/*
 * Report an error for the node in `a`: the message becomes
 * `node "name" (Op): <fmt...>`. Returns st.
 */
enum qt_status qt_op_error(const struct qt_op_args *a, enum qt_status st, const char *fmt, ...) QT_PRINTF(3, 4);

/*
 * The work budget of one node: a file's geometry (pads, dilations, kernel
 * and output sizes) must not ask for unbounded time. `macs` is the node's
 * multiply-accumulates (or window taps for pooling) at the shapes it is
 * about to run; above the budget, 2^40 per node by default (ten times the
 * largest layer of common CNNs at batch 64) or $QT_MAX_NODE_MACS, the node
 * is refused with QT_E_UNSUPPORTED and a message `what: ...`. Checked before
 * the output is allocated, never inside kernels.
 */
enum qt_status qt_rt_work_check(double macs, const char *what);

/*
 * OpenBLAS at one thread between begin and end (returns the count to restore):
 * sgemm called inside the runtime's pool jobs must not start OpenBLAS's own
 * threads, which spin between calls and fight the pool for the cores.
 */
int qt_blas_single_begin(void);
void qt_blas_single_end(int saved);

/*
 * C (M x N, row stride ldc) = alpha * op(A) * op(B) + beta * C, row-major,
 * op = transpose when ta / tb. A product of at least 2^22 multiply-adds is
 * cut into row slices of a multiple of 32 rows (about 8 of them) run on the
 * pool, each a single-threaded sgemm; the slicing depends only on M, N and K,
 * so the result does not change with the thread count. Sizes must fit int.
 */
void qt_sgemm_pool(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
		   const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* Input i, or NULL when absent or out of range. */
static inline const struct qt_tensor *qt_op_in(const struct qt_op_args *a, int i)
{
	return (i < a->n_in) ? a->in[i] : NULL;
}

/*
 * Read an integer tensor (int64 or int32) of at most `cap` elements into
 * vals (used for shape, axes, pads, ...). Returns the count, or -1 after
 * reporting an error through qt_op_error.
 */
int qt_op_read_ints(const struct qt_op_args *a, const struct qt_tensor *t, const char *what, int64_t *vals, int cap);

/* Scalar of any numeric dtype as double (element i). */
double qt_tensor_get_f64(const struct qt_tensor *t, int64_t i);
/* Store a double into element i of a numeric tensor (converting to its dtype). */
void qt_tensor_set_f64(struct qt_tensor *t, int64_t i, double v);

/*
 * Numpy-style broadcast of shapes a and b into out (rank = max). Returns 0,
 * or -1 when incompatible.
 */
int qt_broadcast_shape(int ra, const int64_t *da, int rb, const int64_t *db, int *rank_out, int64_t *dims_out);
/*
 * Strides (in elements) of a tensor of shape (r, d) viewed in a broadcast
 * output of rank ro: broadcast dims get stride 0.
 */
void qt_broadcast_strides(int r, const int64_t *d, int ro, const int64_t *dout, int64_t *strides_out);

/* Normalise an axis in [-rank, rank) to [0, rank); -1 when out of range. */
static inline int qt_norm_axis(int64_t axis, int rank)
{
	if (axis < -rank || axis >= rank)
		return -1;
	return (int)(axis < 0 ? axis + rank : axis);
}

#endif
