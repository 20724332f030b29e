/*
 * Elementwise kernels (see ops.h for the contract): unary maths and
 * activations, numpy-broadcasting binary and variadic ops, comparisons and
 * logic, Where, Cast/CastLike, Clip, Dropout (inference) and Shrink.
 *
 * Dtypes. Every numeric dtype computes in one of four domains:
 *   float32          in float (the fast path; this is where float is used),
 *   float64          in double,
 *   int8..int64      in int64, exactly; results wrap to the output width
 *                    (two's complement, like numpy); integer Div truncates
 *                    toward zero, division by zero gives 0 instead of a trap,
 *   uint8..uint64    in uint64, exactly; bool is a uint8 holding 0 or 1.
 * float16 tensors are widened to float32 temporaries, computed in float and
 * rounded back to float16 once per op, which is what numpy does for half.
 *
 * Broadcasting. One driver serves every binary op and Where: the output
 * shape is the numpy broadcast of the inputs, each input gets element strides
 * (0 along broadcast dims), and adjacent dims that stay contiguous for every
 * operand are merged. A same-shape op thus becomes one contiguous row, a
 * scalar operand one row with stride 0, and the per-dtype row functions are
 * specialised for those cases so the compiler can vectorise them.
 */
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

#include "ops.h"
#include "pool.h"

#define UN_PARALLEL_MIN ((int64_t)1 << 15) /* elements: below, one thread */

/* ------------------------------------------------------------------------ */
/* Dtype classes and exact element access                                    */

static int is_float(enum qt_dtype dt)
{
	return dt == QT_DTYPE_F32 || dt == QT_DTYPE_F64 || dt == QT_DTYPE_F16;
}

static int is_sint(enum qt_dtype dt)
{
	return dt == QT_DTYPE_I8 || dt == QT_DTYPE_I16 || dt == QT_DTYPE_I32 || dt == QT_DTYPE_I64;
}

static int is_uint(enum qt_dtype dt)
{
	return dt == QT_DTYPE_U8 || dt == QT_DTYPE_U16 || dt == QT_DTYPE_U32 || dt == QT_DTYPE_U64;
}

static int is_numeric(enum qt_dtype dt)
{
	return is_float(dt) || is_sint(dt) || is_uint(dt) || dt == QT_DTYPE_BOOL;
}

static size_t elem_size(enum qt_dtype dt)
{
	return (size_t)qt_dtype_bits(dt) / 8;
}

static int64_t load_i64(const struct qt_tensor *t, int64_t i)
{
	switch (t->dtype) {
	case QT_DTYPE_I8: return ((const int8_t *)t->data)[i];
	case QT_DTYPE_I16: return ((const int16_t *)t->data)[i];
	case QT_DTYPE_I32: return ((const int32_t *)t->data)[i];
	case QT_DTYPE_I64: return ((const int64_t *)t->data)[i];
	default: return 0;
	}
}

static uint64_t load_u64(const struct qt_tensor *t, int64_t i)
{
	switch (t->dtype) {
	case QT_DTYPE_U8: return ((const uint8_t *)t->data)[i];
	case QT_DTYPE_U16: return ((const uint16_t *)t->data)[i];
	case QT_DTYPE_U32: return ((const uint32_t *)t->data)[i];
	case QT_DTYPE_U64: return ((const uint64_t *)t->data)[i];
	case QT_DTYPE_BOOL: return ((const uint8_t *)t->data)[i] != 0;
	default: return 0;
	}
}

/* Integer targets narrow with wrap-around, like numpy's astype. */
static void store_i64(struct qt_tensor *t, int64_t i, int64_t v)
{
	switch (t->dtype) {
	case QT_DTYPE_F32: ((float *)t->data)[i] = (float)v; break;
	case QT_DTYPE_F64: ((double *)t->data)[i] = (double)v; break;
	case QT_DTYPE_F16: qt_tensor_set_f64(t, i, (double)v); break;
	case QT_DTYPE_I8: ((int8_t *)t->data)[i] = (int8_t)v; break;
	case QT_DTYPE_I16: ((int16_t *)t->data)[i] = (int16_t)v; break;
	case QT_DTYPE_I32: ((int32_t *)t->data)[i] = (int32_t)v; break;
	case QT_DTYPE_I64: ((int64_t *)t->data)[i] = v; break;
	case QT_DTYPE_U8: ((uint8_t *)t->data)[i] = (uint8_t)v; break;
	case QT_DTYPE_U16: ((uint16_t *)t->data)[i] = (uint16_t)v; break;
	case QT_DTYPE_U32: ((uint32_t *)t->data)[i] = (uint32_t)v; break;
	case QT_DTYPE_U64: ((uint64_t *)t->data)[i] = (uint64_t)v; break;
	case QT_DTYPE_BOOL: ((uint8_t *)t->data)[i] = v != 0; break;
	default: break;
	}
}

static void store_u64(struct qt_tensor *t, int64_t i, uint64_t v)
{
	switch (t->dtype) {
	case QT_DTYPE_F32: ((float *)t->data)[i] = (float)v; break;
	case QT_DTYPE_F64: ((double *)t->data)[i] = (double)v; break;
	case QT_DTYPE_F16: qt_tensor_set_f64(t, i, (double)v); break;
	case QT_DTYPE_U64: ((uint64_t *)t->data)[i] = v; break;
	case QT_DTYPE_BOOL: ((uint8_t *)t->data)[i] = v != 0; break;
	default: store_i64(t, i, (int64_t)v); break;
	}
}

/* Float to int64, saturating (and NaN to 0) instead of undefined behaviour. */
static int64_t sat_i64(double v)
{
	if (v != v)
		return 0;
	if (v >= 9223372036854775808.0)
		return INT64_MAX;
	if (v < -9223372036854775808.0)
		return INT64_MIN;
	return (int64_t)v;
}

/* Floats truncate toward zero into integer targets (NaN -> 0); bool is v != 0. */
static void store_f64(struct qt_tensor *t, int64_t i, double v)
{
	switch (t->dtype) {
	case QT_DTYPE_F32: ((float *)t->data)[i] = (float)v; break;
	case QT_DTYPE_F64: ((double *)t->data)[i] = v; break;
	case QT_DTYPE_F16: qt_tensor_set_f64(t, i, v); break;
	case QT_DTYPE_BOOL: ((uint8_t *)t->data)[i] = v != 0; break;
	case QT_DTYPE_U64:
		if (v >= 9223372036854775808.0)
			((uint64_t *)t->data)[i] = v >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)v;
		else
			((uint64_t *)t->data)[i] = (uint64_t)sat_i64(v);
		break;
	default: store_i64(t, i, sat_i64(v)); break;
	}
}

/* Convert every element of src into dst (same element count, any numeric dtypes). */
static void convert_elems(const struct qt_tensor *src, struct qt_tensor *dst)
{
	int64_t n = qt_tensor_numel(src);
	if (src->dtype == dst->dtype) {
		if (src->nbytes)
			memcpy(dst->data, src->data, src->nbytes);
	} else if (src->dtype == QT_DTYPE_F32 && dst->dtype == QT_DTYPE_F64) {
		for (int64_t i = 0; i < n; i++)
			((double *)dst->data)[i] = ((const float *)src->data)[i];
	} else if (is_sint(src->dtype)) {
		for (int64_t i = 0; i < n; i++)
			store_i64(dst, i, load_i64(src, i));
	} else if (is_uint(src->dtype) || src->dtype == QT_DTYPE_BOOL) {
		for (int64_t i = 0; i < n; i++)
			store_u64(dst, i, load_u64(src, i));
	} else {
		for (int64_t i = 0; i < n; i++)
			store_f64(dst, i, qt_tensor_get_f64(src, i));
	}
}

/* ------------------------------------------------------------------------ */
/* Shared validation and allocation                                          */

static enum qt_status alloc_out(const struct qt_op_args *a, struct qt_tensor *t, enum qt_dtype dt, int rank,
				const int64_t *dims)
{
	enum qt_status st = qt_tensor_alloc(t, dt, rank, dims);
	if (st) {
		char lbl[256];
		return qt_error_prefix(st, "%s", qt_node_label(a->g, a->node, lbl, sizeof lbl));
	}
	return QT_OK;
}

/* Input i, which must be present; reports an error naming it otherwise. */
static const struct qt_tensor *need_in(const struct qt_op_args *a, int i, enum qt_status *st)
{
	const struct qt_tensor *t = qt_op_in(a, i);
	if (!t)
		*st = qt_op_error(a, QT_E_FORMAT, "input %d is missing", i);
	return t;
}

static enum qt_status need_outputs(const struct qt_op_args *a)
{
	if (a->n_out < 1)
		return qt_op_error(a, QT_E_FORMAT, "has no output");
	return QT_OK;
}

static enum qt_status bad_dtype(const struct qt_op_args *a, const char *what, enum qt_dtype dt)
{
	return qt_op_error(a, QT_E_UNSUPPORTED, "%s dtype %s is not supported", what, qt_dtype_name(dt));
}

/* Read a one-element tensor as double; -1 after an error. */
static int read_scalar(const struct qt_op_args *a, const struct qt_tensor *t, const char *what, double *v)
{
	if (qt_tensor_numel(t) != 1 || !is_numeric(t->dtype)) {
		char s[96];
		qt_op_error(a, QT_E_FORMAT, "%s must be a numeric scalar, not %s %s", what, qt_dtype_name(t->dtype),
			    qt_shape_str(s, sizeof s, t->rank, t->dims));
		return -1;
	}
	*v = qt_tensor_get_f64(t, 0);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* float16 promotion                                                         */

typedef enum qt_status (*drv_fn)(const struct qt_op_args *a, const void *desc);

static enum qt_status widen_f16(const struct qt_tensor *h, struct qt_tensor *f)
{
	enum qt_status st = qt_tensor_alloc(f, QT_DTYPE_F32, h->rank, h->dims);
	if (st)
		return st;
	int64_t n = qt_tensor_numel(h);
	float *d = f->data;
	for (int64_t i = 0; i < n; i++)
		d[i] = (float)qt_tensor_get_f64(h, i);
	return QT_OK;
}

/* Replace the float32 tensor t with its float16 rounding (round to nearest even). */
static enum qt_status narrow_f16(struct qt_tensor *t)
{
	struct qt_tensor h = {0};
	enum qt_status st = qt_tensor_alloc(&h, QT_DTYPE_F16, t->rank, t->dims);
	if (st)
		return st;
	int64_t n = qt_tensor_numel(t);
	const float *s = t->data;
	for (int64_t i = 0; i < n; i++)
		qt_tensor_set_f64(&h, i, s[i]);
	qt_tensor_free(t);
	*t = h;
	return QT_OK;
}

/*
 * Run drv with every float16 input widened to float32; when input 0 was
 * float16, the float32 outputs are rounded back to float16 (bool outputs of
 * comparisons stay bool). Without float16 inputs, drv runs directly. The
 * first n_same inputs (all when n_same < 0) must share input 0's dtype: when
 * they do not, drv runs on the originals so its error names the real dtypes.
 */
static enum qt_status with_f16(const struct qt_op_args *a, int n_same, const void *desc, drv_fn drv)
{
	int any = 0;
	for (int i = 0; i < a->n_in; i++)
		any |= a->in[i] && a->in[i]->dtype == QT_DTYPE_F16;
	for (int i = 1; i < a->n_in && (n_same < 0 || i < n_same) && any; i++)
		if (a->in[0] && a->in[i] && a->in[i]->dtype != a->in[0]->dtype)
			any = 0;
	if (!any)
		return drv(a, desc);
	struct qt_tensor *tmp = calloc((size_t)a->n_in, sizeof *tmp);
	const struct qt_tensor **ins = calloc((size_t)a->n_in, sizeof *ins);
	enum qt_status st = QT_OK;
	if (!tmp || !ins) {
		st = qt_op_error(a, QT_E_NOMEM, "out of memory widening float16 inputs");
		goto out;
	}
	for (int i = 0; i < a->n_in && !st; i++) {
		ins[i] = a->in[i];
		if (a->in[i] && a->in[i]->dtype == QT_DTYPE_F16) {
			st = widen_f16(a->in[i], &tmp[i]);
			ins[i] = &tmp[i];
		}
	}
	if (st)
		goto out;
	struct qt_op_args b = *a;
	b.in = ins;
	st = drv(&b, desc);
	if (!st && a->in[0] && a->in[0]->dtype == QT_DTYPE_F16)
		for (int o = 0; o < a->n_out && !st; o++)
			if (a->out[o].data && a->out[o].dtype == QT_DTYPE_F32)
				st = narrow_f16(&a->out[o]);
	if (st)
		for (int o = 0; o < a->n_out; o++)
			qt_tensor_free(&a->out[o]);
out:
	if (tmp)
		for (int i = 0; i < a->n_in; i++)
			qt_tensor_free(&tmp[i]);
	free(tmp);
	free(ins);
	return st;
}

/* ------------------------------------------------------------------------ */
/* Broadcast iterator                                                        */

#define MAX_OPS 4 /* the output and up to three inputs */

struct iter {
	int rank; /* after dropping size-1 dims and merging contiguous ones */
	int64_t dims[QT_MAX_RANK];
	int nops;
	int64_t st[MAX_OPS][QT_MAX_RANK]; /* element strides; [0] is the output */
};

static void iter_init(struct iter *it, int orank, const int64_t *odims, int nin, const struct qt_tensor *const *ins)
{
	int64_t st[MAX_OPS][QT_MAX_RANK];
	int64_t s = 1;
	for (int d = orank - 1; d >= 0; d--) {
		st[0][d] = s;
		s *= odims[d];
	}
	for (int k = 0; k < nin; k++)
		qt_broadcast_strides(ins[k]->rank, ins[k]->dims, orank, odims, st[k + 1]);
	it->nops = nin + 1;
	int r = 0;
	for (int d = 0; d < orank; d++) {
		if (odims[d] == 1)
			continue;
		int merge = r > 0;
		for (int k = 0; k < it->nops && merge; k++)
			merge = it->st[k][r - 1] == st[k][d] * odims[d];
		if (merge) {
			it->dims[r - 1] *= odims[d];
			for (int k = 0; k < it->nops; k++)
				it->st[k][r - 1] = st[k][d];
			continue;
		}
		it->dims[r] = odims[d];
		for (int k = 0; k < it->nops; k++)
			it->st[k][r] = st[k][d];
		r++;
	}
	it->rank = r;
}

/*
 * Call row(ctx, off, inner, n) for every innermost row: off[k] is operand k's
 * element offset at the row start, inner[k] its stride along the row (the
 * output's is always 1).
 */
typedef void (*row_cb)(void *ctx, const int64_t *off, const int64_t *inner, int64_t n);

static void iter_run(const struct iter *it, row_cb row, void *ctx)
{
	int64_t off[MAX_OPS] = {0}, inner[MAX_OPS] = {0}, idx[QT_MAX_RANK] = {0};
	if (it->rank == 0) {
		row(ctx, off, inner, 1);
		return;
	}
	int last = it->rank - 1;
	for (int k = 0; k < it->nops; k++)
		inner[k] = it->st[k][last];
	for (;;) {
		row(ctx, off, inner, it->dims[last]);
		int d;
		for (d = last - 1; d >= 0; d--) {
			for (int k = 0; k < it->nops; k++)
				off[k] += it->st[k][d];
			if (++idx[d] < it->dims[d])
				break;
			for (int k = 0; k < it->nops; k++)
				off[k] -= it->st[k][d] * it->dims[d];
			idx[d] = 0;
		}
		if (d < 0)
			return;
	}
}

/* ------------------------------------------------------------------------ */
/* Row function generators                                                   */

/* Type suffixes: f32 f64 (float domains), i8..i64 (int64), u8..u64 (uint64), b (bool). */
#define R_SAME(T) T
#define R_BOOL(T) uint8_t

#define FOR_F(M, op, RB)                                                                                               \
	M(op##_f32, float, RB(float), float, op##_f)                                                                  \
	M(op##_f64, double, RB(double), double, op##_d)
#define FOR_I(M, op, RB)                                                                                               \
	M(op##_i8, int8_t, RB(int8_t), int64_t, op##_i)                                                               \
	M(op##_i16, int16_t, RB(int16_t), int64_t, op##_i)                                                            \
	M(op##_i32, int32_t, RB(int32_t), int64_t, op##_i)                                                            \
	M(op##_i64, int64_t, RB(int64_t), int64_t, op##_i)
#define FOR_U(M, op, RB)                                                                                               \
	M(op##_u8, uint8_t, RB(uint8_t), uint64_t, op##_u)                                                            \
	M(op##_u16, uint16_t, RB(uint16_t), uint64_t, op##_u)                                                         \
	M(op##_u32, uint32_t, RB(uint32_t), uint64_t, op##_u)                                                         \
	M(op##_u64, uint64_t, RB(uint64_t), uint64_t, op##_u)
#define FOR_B(M, op) M(op##_b, uint8_t, uint8_t, uint64_t, op##_u)

#define TAB_F(op) [QT_DTYPE_F32] = op##_f32, [QT_DTYPE_F64] = op##_f64
#define TAB_I(op) [QT_DTYPE_I8] = op##_i8, [QT_DTYPE_I16] = op##_i16, [QT_DTYPE_I32] = op##_i32, [QT_DTYPE_I64] = op##_i64
#define TAB_U(op) [QT_DTYPE_U8] = op##_u8, [QT_DTYPE_U16] = op##_u16, [QT_DTYPE_U32] = op##_u32, [QT_DTYPE_U64] = op##_u64
#define TAB_B(op) [QT_DTYPE_BOOL] = op##_b

/* Binary rows: o[i] = F(a[i*sa], b[i*sb]) for i < n, strides in elements. */
typedef void (*bin_fn)(void *o, const void *a, int64_t sa, const void *b, int64_t sb, int64_t n);

#define DEF_BIN(name, T, R, W, F)                                                                                      \
	static void name(void *o_, const void *a_, int64_t sa, const void *b_, int64_t sb, int64_t n)                 \
	{                                                                                                              \
		R *o = o_;                                                                                             \
		const T *a = a_, *b = b_;                                                                              \
		if (sa == 1 && sb == 1) {                                                                              \
			for (int64_t i = 0; i < n; i++)                                                                \
				o[i] = (R)F((W)a[i], (W)b[i]);                                                         \
		} else if (sa == 1 && sb == 0) {                                                                       \
			W y = (W)b[0];                                                                                 \
			for (int64_t i = 0; i < n; i++)                                                                \
				o[i] = (R)F((W)a[i], y);                                                               \
		} else if (sa == 0 && sb == 1) {                                                                       \
			W x = (W)a[0];                                                                                 \
			for (int64_t i = 0; i < n; i++)                                                                \
				o[i] = (R)F(x, (W)b[i]);                                                               \
		} else {                                                                                               \
			for (int64_t i = 0; i < n; i++)                                                                \
				o[i] = (R)F((W)a[i * sa], (W)b[i * sb]);                                               \
		}                                                                                                      \
	}

/* Unary rows over contiguous data; p carries attribute values. */
struct uparam {
	double a, b, c;     /* float attributes (alpha, beta, ...) or Clip's bounds */
	int64_t ilo, ihi;   /* Clip's bounds in the int64 domain */
	uint64_t ulo, uhi;  /* and in the uint64 domain */
};

typedef void (*un_fn)(void *o, const void *a, int64_t n, const struct uparam *p);

#define DEF_UN(name, T, R, W, F)                                                                                       \
	static void name(void *o_, const void *a_, int64_t n, const struct uparam *p)                                  \
	{                                                                                                              \
		R *o = o_;                                                                                             \
		const T *a = a_;                                                                                       \
		(void)p;                                                                                               \
		for (int64_t i = 0; i < n; i++)                                                                        \
			o[i] = (R)F((W)a[i]);                                                                          \
	}
#define DEF_UNP(name, T, R, W, F)                                                                                      \
	static void name(void *o_, const void *a_, int64_t n, const struct uparam *p)                                  \
	{                                                                                                              \
		R *o = o_;                                                                                             \
		const T *a = a_;                                                                                       \
		for (int64_t i = 0; i < n; i++)                                                                        \
			o[i] = (R)F((W)a[i], p);                                                                       \
	}

/*
 * Scalar functions per domain. The float and double versions share one
 * expression through <tgmath.h> (exp(x) is expf for a float x); W is the
 * domain type, used for constants so float stays float.
 */
#define FD1(name, expr)                                                                                                \
	static inline float name##_f(float x) { typedef float W; return (W)(expr); }                                  \
	static inline double name##_d(double x) { typedef double W; return (W)(expr); }
#define FD1P(name, expr)                                                                                               \
	static inline float name##_f(float x, const struct uparam *p) { typedef float W; return (W)(expr); }          \
	static inline double name##_d(double x, const struct uparam *p) { typedef double W; return (W)(expr); }
#define FD2(name, expr)                                                                                                \
	static inline float name##_f(float x, float y) { typedef float W; return (W)(expr); }                         \
	static inline double name##_d(double x, double y) { typedef double W; return (W)(expr); }
#define CMP4(name, expr)                                                                                               \
	static inline int name##_f(float x, float y) { return expr; }                                                 \
	static inline int name##_d(double x, double y) { return expr; }                                               \
	static inline int name##_i(int64_t x, int64_t y) { return expr; }                                             \
	static inline int name##_u(uint64_t x, uint64_t y) { return expr; }

/* ------------------------------------------------------------------------ */
/* Unary ops                                                                 */

FD1(abs, fabs(x))
FD1(neg, -x)
FD1(exp, exp(x))
FD1(log, log(x))
FD1(sqrt, sqrt(x))
FD1(erf, erf(x))
FD1(relu, x < 0 ? (W)0 : x) /* NaN propagates */
FD1(sigmoid, (W)1 / ((W)1 + exp(-x))) /* exp overflow gives 1/inf = 0: no NaN */
FD1(tanh, tanh(x))
FD1(recip, (W)1 / x)
FD1(floor, floor(x))
FD1(ceil, ceil(x))
FD1(round, nearbyint(x)) /* default rounding mode: half to even */
FD1(sign, x > 0 ? (W)1 : x < 0 ? (W)-1 : x) /* keeps 0 and NaN */
FD1(sin, sin(x))
FD1(cos, cos(x))
FD1(tan, tan(x))
FD1(asin, asin(x))
FD1(acos, acos(x))
FD1(atan, atan(x))
FD1(sinh, sinh(x))
FD1(cosh, cosh(x))
FD1(asinh, asinh(x))
FD1(acosh, acosh(x))
FD1(atanh, atanh(x))
FD1(softplus, x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)))
FD1(softsign, x / ((W)1 + fabs(x)))
FD1(hardswish, x * fmax((W)0, fmin((W)1, x / (W)6 + (W)0.5)))
FD1P(elu, x < 0 ? (W)p->a * expm1(x) : x)
FD1P(selu, x <= 0 ? (W)p->b * ((W)p->a * exp(x) - (W)p->a) : (W)p->b * x)
FD1P(leaky, x < 0 ? (W)p->a * x : x)
FD1P(hsig, fmax((W)0, fmin((W)1, (W)p->a * x + (W)p->b)))
FD1P(thrrelu, x > (W)p->a ? x : (W)0)
FD1P(celu, fmax((W)0, x) + fmin((W)0, (W)p->a * expm1(x / (W)p->a)))
FD1P(shrink, x < -(W)p->b ? x + (W)p->a : x > (W)p->b ? x - (W)p->a : (W)0)
FD1P(clip, (x < (W)p->a ? (W)p->a : x) > (W)p->b ? (W)p->b : (x < (W)p->a ? (W)p->a : x))

static inline int isnan_f(float x) { return x != x; }
static inline int isnan_d(double x) { return x != x; }
static inline int isinf_f(float x, const struct uparam *p) { return isinf(x) && (x < 0 ? p->a != 0 : p->b != 0); }
static inline int isinf_d(double x, const struct uparam *p) { return isinf(x) && (x < 0 ? p->a != 0 : p->b != 0); }

static inline int64_t abs_i(int64_t x) { return x < 0 ? (int64_t)(0 - (uint64_t)x) : x; }
static inline uint64_t abs_u(uint64_t x) { return x; }
static inline int64_t neg_i(int64_t x) { return (int64_t)(0 - (uint64_t)x); }
static inline int64_t sign_i(int64_t x) { return (x > 0) - (x < 0); }
static inline uint64_t sign_u(uint64_t x) { return x != 0; }
static inline int64_t relu_i(int64_t x) { return x < 0 ? 0 : x; }
static inline uint64_t not_u(uint64_t x) { return !x; }
static inline int64_t clip_i(int64_t x, const struct uparam *p)
{
	int64_t v = x < p->ilo ? p->ilo : x;
	return v > p->ihi ? p->ihi : v;
}
static inline uint64_t clip_u(uint64_t x, const struct uparam *p)
{
	uint64_t v = x < p->ulo ? p->ulo : x;
	return v > p->uhi ? p->uhi : v;
}
/* Shrink on integers computes in double (bias and lambd are floats) and truncates. */
static inline int64_t shrink_i(int64_t x, const struct uparam *p)
{
	double v = (double)x;
	return sat_i64(v < -p->b ? v + p->a : v > p->b ? v - p->a : 0);
}
static inline uint64_t shrink_u(uint64_t x, const struct uparam *p)
{
	double v = (double)x;
	return (uint64_t)sat_i64(v > p->b ? v - p->a : 0);
}

#define UN_TABLE_F(op, M)                                                                                              \
	FOR_F(M, op, R_SAME)                                                                                           \
	static const un_fn op##_tab[QT_DTYPE_COUNT] = {TAB_F(op)};
UN_TABLE_F(exp, DEF_UN)
UN_TABLE_F(log, DEF_UN)
UN_TABLE_F(sqrt, DEF_UN)
UN_TABLE_F(erf, DEF_UN)
UN_TABLE_F(sigmoid, DEF_UN)
UN_TABLE_F(tanh, DEF_UN)
UN_TABLE_F(recip, DEF_UN)
UN_TABLE_F(floor, DEF_UN)
UN_TABLE_F(ceil, DEF_UN)
UN_TABLE_F(round, DEF_UN)
UN_TABLE_F(sin, DEF_UN)
UN_TABLE_F(cos, DEF_UN)
UN_TABLE_F(tan, DEF_UN)
UN_TABLE_F(asin, DEF_UN)
UN_TABLE_F(acos, DEF_UN)
UN_TABLE_F(atan, DEF_UN)
UN_TABLE_F(sinh, DEF_UN)
UN_TABLE_F(cosh, DEF_UN)
UN_TABLE_F(asinh, DEF_UN)
UN_TABLE_F(acosh, DEF_UN)
UN_TABLE_F(atanh, DEF_UN)
UN_TABLE_F(softplus, DEF_UN)
UN_TABLE_F(softsign, DEF_UN)
UN_TABLE_F(hardswish, DEF_UN)
UN_TABLE_F(elu, DEF_UNP)
UN_TABLE_F(selu, DEF_UNP)
UN_TABLE_F(leaky, DEF_UNP)
UN_TABLE_F(hsig, DEF_UNP)
UN_TABLE_F(thrrelu, DEF_UNP)
UN_TABLE_F(celu, DEF_UNP)

#define UN_TABLE_FIU(op, M)                                                                                            \
	FOR_F(M, op, R_SAME)                                                                                           \
	FOR_I(M, op, R_SAME)                                                                                           \
	FOR_U(M, op, R_SAME)                                                                                           \
	static const un_fn op##_tab[QT_DTYPE_COUNT] = {TAB_F(op), TAB_I(op), TAB_U(op)};
#define UN_TABLE_FI(op, M)                                                                                             \
	FOR_F(M, op, R_SAME)                                                                                           \
	FOR_I(M, op, R_SAME)                                                                                           \
	static const un_fn op##_tab[QT_DTYPE_COUNT] = {TAB_F(op), TAB_I(op)};
UN_TABLE_FIU(abs, DEF_UN)
UN_TABLE_FI(neg, DEF_UN)
UN_TABLE_FIU(sign, DEF_UN)
UN_TABLE_FI(relu, DEF_UN)
UN_TABLE_FIU(clip, DEF_UNP)
UN_TABLE_FIU(shrink, DEF_UNP)
FOR_B(DEF_UN, not)
static const un_fn not_tab[QT_DTYPE_COUNT] = {TAB_B(not)};
FOR_F(DEF_UN, isnan, R_BOOL)
static const un_fn isnan_tab[QT_DTYPE_COUNT] = {TAB_F(isnan)};
FOR_F(DEF_UNP, isinf, R_BOOL)
static const un_fn isinf_tab[QT_DTYPE_COUNT] = {TAB_F(isinf)};

struct unop {
	const un_fn *tab; /* per input dtype; NULL entries are unsupported */
	int out_bool;
	void (*prm)(const struct qt_op_args *a, struct uparam *p); /* reads attributes, or NULL */
};

struct un_job {
	un_fn fn;
	void *o;
	const void *a;
	enum qt_dtype to, ta;
	const struct uparam *p;
};

static void un_part(void *ctx, int t, int64_t lo, int64_t hi)
{
	const struct un_job *j = ctx;
	(void)t;
	j->fn((char *)j->o + qt_dtype_nbytes(j->to, lo), (const char *)j->a + qt_dtype_nbytes(j->ta, lo), hi - lo,
	      j->p);
}

/*
 * fn over n elements of a (dtype ta) into o (dtype to), split over the pool
 * when the tensor is large enough to pay for a wake-up (ReLU6 after each of
 * MobileNetV2's 224x224 convs). Each element is computed alone, so the split
 * changes no result. Element types here are whole bytes.
 */
static void un_run(un_fn fn, void *o, enum qt_dtype to, const void *a, enum qt_dtype ta, int64_t n,
		   const struct uparam *p)
{
	struct un_job j = {fn, o, a, to, ta, p};
	qt_pool_for(n, n >= UN_PARALLEL_MIN ? qt_pool_threads() : 1, un_part, &j);
}

static enum qt_status unary_drv(const struct qt_op_args *a, const void *desc)
{
	const struct unop *op = desc;
	enum qt_status st = need_outputs(a);
	const struct qt_tensor *x = st ? NULL : need_in(a, 0, &st);
	if (!x)
		return st;
	un_fn fn = (unsigned)x->dtype < QT_DTYPE_COUNT ? op->tab[x->dtype] : NULL;
	if (!fn)
		return bad_dtype(a, "input", x->dtype);
	struct uparam p = {0};
	if (op->prm)
		op->prm(a, &p);
	st = alloc_out(a, &a->out[0], op->out_bool ? QT_DTYPE_BOOL : x->dtype, x->rank, x->dims);
	if (st)
		return st;
	un_run(fn, a->out[0].data, a->out[0].dtype, x->data, x->dtype, qt_tensor_numel(x), &p);
	return QT_OK;
}

static void prm_alpha1(const struct qt_op_args *a, struct uparam *p)
{
	p->a = qt_node_attr_float(a->node, "alpha", 1.0f);
}

static void prm_leaky(const struct qt_op_args *a, struct uparam *p)
{
	p->a = qt_node_attr_float(a->node, "alpha", 0.01f);
}

static void prm_selu(const struct qt_op_args *a, struct uparam *p)
{
	p->a = qt_node_attr_float(a->node, "alpha", 1.67326319217681884765625f);
	p->b = qt_node_attr_float(a->node, "gamma", 1.05070102214813232421875f);
}

static void prm_hsig(const struct qt_op_args *a, struct uparam *p)
{
	p->a = qt_node_attr_float(a->node, "alpha", 0.2f);
	p->b = qt_node_attr_float(a->node, "beta", 0.5f);
}

static void prm_shrink(const struct qt_op_args *a, struct uparam *p)
{
	p->a = qt_node_attr_float(a->node, "bias", 0.0f);
	p->b = qt_node_attr_float(a->node, "lambd", 0.5f);
}

static void prm_isinf(const struct qt_op_args *a, struct uparam *p)
{
	p->a = (double)qt_node_attr_int(a->node, "detect_negative", 1);
	p->b = (double)qt_node_attr_int(a->node, "detect_positive", 1);
}

/* op_<Name>: the registry entry point. float16 inputs go through with_f16. */
#define UNARY(Name, tabname, out_bool, prm)                                                                            \
	static const struct unop un_##Name = {tabname##_tab, out_bool, prm};                                          \
	static enum qt_status op_##Name(const struct qt_op_args *a) { return with_f16(a, 1, &un_##Name, unary_drv); }

UNARY(Abs, abs, 0, NULL)
UNARY(Neg, neg, 0, NULL)
UNARY(Exp, exp, 0, NULL)
UNARY(Log, log, 0, NULL)
UNARY(Sqrt, sqrt, 0, NULL)
UNARY(Erf, erf, 0, NULL)
UNARY(Relu, relu, 0, NULL)
UNARY(Sigmoid, sigmoid, 0, NULL)
UNARY(Tanh, tanh, 0, NULL)
UNARY(Reciprocal, recip, 0, NULL)
UNARY(Floor, floor, 0, NULL)
UNARY(Ceil, ceil, 0, NULL)
UNARY(Round, round, 0, NULL)
UNARY(Sign, sign, 0, NULL)
UNARY(Sin, sin, 0, NULL)
UNARY(Cos, cos, 0, NULL)
UNARY(Tan, tan, 0, NULL)
UNARY(Asin, asin, 0, NULL)
UNARY(Acos, acos, 0, NULL)
UNARY(Atan, atan, 0, NULL)
UNARY(Sinh, sinh, 0, NULL)
UNARY(Cosh, cosh, 0, NULL)
UNARY(Asinh, asinh, 0, NULL)
UNARY(Acosh, acosh, 0, NULL)
UNARY(Atanh, atanh, 0, NULL)
UNARY(Softplus, softplus, 0, NULL)
UNARY(Softsign, softsign, 0, NULL)
UNARY(HardSwish, hardswish, 0, NULL)
UNARY(Elu, elu, 0, prm_alpha1)
UNARY(Selu, selu, 0, prm_selu)
UNARY(LeakyRelu, leaky, 0, prm_leaky)
UNARY(HardSigmoid, hsig, 0, prm_hsig)
UNARY(ThresholdedRelu, thrrelu, 0, prm_alpha1)
UNARY(Celu, celu, 0, prm_alpha1)
UNARY(Shrink, shrink, 0, prm_shrink)
UNARY(IsNaN, isnan, 1, NULL)
UNARY(IsInf, isinf, 1, prm_isinf)

/* Not is bool-only: no float16 widening, so a float16 input is named as such. */
static const struct unop un_Not = {not_tab, 0, NULL};
static enum qt_status op_Not(const struct qt_op_args *a)
{
	return unary_drv(a, &un_Not);
}

/* ------------------------------------------------------------------------ */
/* Binary ops                                                                */

FD2(add, x + y)
FD2(sub, x - y)
FD2(mul, x * y)
FD2(div, x / y)
FD2(max, (x > y || x != x) ? x : y) /* NaN propagates, like numpy.maximum */
FD2(min, (x < y || x != x) ? x : y)
FD2(pow, pow(x, y))
FD2(fmod, fmod(x, y))
FD2(prelu, x < 0 ? x * y : x)
/* Python-style remainder: the sign follows the divisor. */
static inline float mod_f(float x, float y)
{
	float r = fmod(x, y);
	return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
}
static inline double mod_d(double x, double y)
{
	double r = fmod(x, y);
	return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
}

/* int64 arithmetic wraps through uint64 (signed overflow is undefined in C). */
static inline int64_t add_i(int64_t x, int64_t y) { return (int64_t)((uint64_t)x + (uint64_t)y); }
static inline int64_t sub_i(int64_t x, int64_t y) { return (int64_t)((uint64_t)x - (uint64_t)y); }
static inline int64_t mul_i(int64_t x, int64_t y) { return (int64_t)((uint64_t)x * (uint64_t)y); }
/* Truncates toward zero; x / 0 gives 0 and INT64_MIN / -1 wraps, instead of trapping. */
static inline int64_t div_i(int64_t x, int64_t y) { return y == 0 ? 0 : y == -1 ? neg_i(x) : x / y; }
static inline int64_t max_i(int64_t x, int64_t y) { return x > y ? x : y; }
static inline int64_t min_i(int64_t x, int64_t y) { return x < y ? x : y; }
static inline int64_t fmod_i(int64_t x, int64_t y) { return (y == 0 || y == -1) ? 0 : x % y; }
static inline int64_t mod_i(int64_t x, int64_t y)
{
	int64_t r = fmod_i(x, y);
	return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
}
static inline int64_t prelu_i(int64_t x, int64_t y) { return x < 0 ? mul_i(x, y) : x; }
/* Exact integer power by squaring, wrapping; negative exponents truncate like 1 / x^-y. */
static inline int64_t pow_i(int64_t x, int64_t y)
{
	if (y < 0)
		return x == 1 ? 1 : x == -1 ? ((y & 1) ? -1 : 1) : 0;
	uint64_t r = 1, b = (uint64_t)x;
	for (uint64_t e = (uint64_t)y; e; e >>= 1) {
		if (e & 1)
			r *= b;
		b *= b;
	}
	return (int64_t)r;
}

static inline uint64_t add_u(uint64_t x, uint64_t y) { return x + y; }
static inline uint64_t sub_u(uint64_t x, uint64_t y) { return x - y; }
static inline uint64_t mul_u(uint64_t x, uint64_t y) { return x * y; }
static inline uint64_t div_u(uint64_t x, uint64_t y) { return y ? x / y : 0; }
static inline uint64_t max_u(uint64_t x, uint64_t y) { return x > y ? x : y; }
static inline uint64_t min_u(uint64_t x, uint64_t y) { return x < y ? x : y; }
static inline uint64_t mod_u(uint64_t x, uint64_t y) { return y ? x % y : 0; }
static inline uint64_t fmod_u(uint64_t x, uint64_t y) { return y ? x % y : 0; }
static inline uint64_t prelu_u(uint64_t x, uint64_t y) { (void)y; return x; }
static inline uint64_t pow_u(uint64_t x, uint64_t y)
{
	uint64_t r = 1;
	for (; y; y >>= 1) {
		if (y & 1)
			r *= x;
		x *= x;
	}
	return r;
}
static inline uint64_t shl_u(uint64_t x, uint64_t y) { return y >= 64 ? 0 : x << y; }
static inline uint64_t shr_u(uint64_t x, uint64_t y) { return y >= 64 ? 0 : x >> y; }
static inline int and_u(uint64_t x, uint64_t y) { return x && y; }
static inline int or_u(uint64_t x, uint64_t y) { return x || y; }
static inline int xor_u(uint64_t x, uint64_t y) { return !x != !y; }

CMP4(eq, x == y)
CMP4(gt, x > y)
CMP4(lt, x < y)
CMP4(ge, x >= y)
CMP4(le, x <= y)

#define BIN_TABLE_FIU(op, RB)                                                                                          \
	FOR_F(DEF_BIN, op, RB)                                                                                         \
	FOR_I(DEF_BIN, op, RB)                                                                                         \
	FOR_U(DEF_BIN, op, RB)                                                                                         \
	static const bin_fn op##_tab[QT_DTYPE_COUNT] = {TAB_F(op), TAB_I(op), TAB_U(op)};
BIN_TABLE_FIU(add, R_SAME)
BIN_TABLE_FIU(sub, R_SAME)
BIN_TABLE_FIU(mul, R_SAME)
BIN_TABLE_FIU(div, R_SAME)
BIN_TABLE_FIU(max, R_SAME)
BIN_TABLE_FIU(min, R_SAME)
BIN_TABLE_FIU(pow, R_SAME)
BIN_TABLE_FIU(mod, R_SAME)
BIN_TABLE_FIU(fmod, R_SAME)
BIN_TABLE_FIU(prelu, R_SAME)
BIN_TABLE_FIU(gt, R_BOOL)
BIN_TABLE_FIU(lt, R_BOOL)
BIN_TABLE_FIU(ge, R_BOOL)
BIN_TABLE_FIU(le, R_BOOL)
FOR_F(DEF_BIN, eq, R_BOOL)
FOR_I(DEF_BIN, eq, R_BOOL)
FOR_U(DEF_BIN, eq, R_BOOL)
FOR_B(DEF_BIN, eq)
static const bin_fn eq_tab[QT_DTYPE_COUNT] = {TAB_F(eq), TAB_I(eq), TAB_U(eq), TAB_B(eq)};
FOR_B(DEF_BIN, and)
FOR_B(DEF_BIN, or)
FOR_B(DEF_BIN, xor)
static const bin_fn and_tab[QT_DTYPE_COUNT] = {TAB_B(and)};
static const bin_fn or_tab[QT_DTYPE_COUNT] = {TAB_B(or)};
static const bin_fn xor_tab[QT_DTYPE_COUNT] = {TAB_B(xor)};
FOR_U(DEF_BIN, shl, R_SAME)
FOR_U(DEF_BIN, shr, R_SAME)
static const bin_fn shl_tab[QT_DTYPE_COUNT] = {TAB_U(shl)};
static const bin_fn shr_tab[QT_DTYPE_COUNT] = {TAB_U(shr)};

struct bin_ctx {
	bin_fn fn;
	char *o;
	const char *x, *y;
	size_t so, sx, sy; /* element sizes in bytes */
};

static void bin_row(void *ctx, const int64_t *off, const int64_t *inner, int64_t n)
{
	const struct bin_ctx *c = ctx;
	c->fn(c->o + off[0] * (int64_t)c->so, c->x + off[1] * (int64_t)c->sx, inner[1],
	      c->y + off[2] * (int64_t)c->sy, inner[2], n);
}

static enum qt_status bcast_error(const struct qt_op_args *a, const struct qt_tensor *x, const struct qt_tensor *y)
{
	char s1[96], s2[96];
	return qt_op_error(a, QT_E_FORMAT, "inputs %s and %s cannot be broadcast",
			   qt_shape_str(s1, sizeof s1, x->rank, x->dims), qt_shape_str(s2, sizeof s2, y->rank, y->dims));
}

/*
 * Opsets before 7 broadcast only with broadcast=1, aligning B's dims at
 * `axis` of A (default: the trailing dims, which is numpy's rule). yv becomes
 * a borrowed view of y with A's rank. Returns 0, or -1 after an error.
 */
static int legacy_bcast(const struct qt_op_args *a, const struct qt_tensor *x, const struct qt_tensor *y,
			struct qt_tensor *yv)
{
	*yv = *y;
	yv->owned = 0;
	const struct qt_attr *ax = qt_node_attr(a->node, "axis");
	if (a->opset >= 7 || !qt_node_attr_int(a->node, "broadcast", 0) || !ax)
		return 0;
	int64_t axis = ax->i < 0 ? ax->i + x->rank : ax->i;
	if (axis < 0 || axis + y->rank > x->rank) {
		qt_op_error(a, QT_E_FORMAT, "broadcast axis %lld does not fit input ranks %d and %d", (long long)ax->i,
			    x->rank, y->rank);
		return -1;
	}
	yv->rank = x->rank;
	for (int d = 0; d < x->rank; d++)
		yv->dims[d] = (d >= axis && d < axis + y->rank) ? y->dims[d - axis] : 1;
	return 0;
}

/* out = op(x, y) elementwise with numpy broadcasting; x and y must share a dtype. */
static enum qt_status binary_apply(const struct qt_op_args *a, const bin_fn *tab, int out_bool,
				   const struct qt_tensor *x, const struct qt_tensor *y, struct qt_tensor *out)
{
	if (x->dtype != y->dtype)
		return qt_op_error(a, QT_E_FORMAT, "inputs must have the same dtype, not %s and %s",
				   qt_dtype_name(x->dtype), qt_dtype_name(y->dtype));
	bin_fn fn = (unsigned)x->dtype < QT_DTYPE_COUNT ? tab[x->dtype] : NULL;
	if (!fn)
		return bad_dtype(a, "input", x->dtype);
	struct qt_tensor yv;
	if (legacy_bcast(a, x, y, &yv))
		return QT_E_FORMAT;
	int rank;
	int64_t dims[QT_MAX_RANK];
	if (qt_broadcast_shape(x->rank, x->dims, yv.rank, yv.dims, &rank, dims))
		return bcast_error(a, x, y);
	enum qt_status st = alloc_out(a, out, out_bool ? QT_DTYPE_BOOL : x->dtype, rank, dims);
	if (st || qt_tensor_numel(out) == 0)
		return st;
	const struct qt_tensor *ins[2] = {x, &yv};
	struct iter it;
	iter_init(&it, rank, dims, 2, ins);
	struct bin_ctx c = {fn, out->data, x->data, y->data, elem_size(out->dtype), elem_size(x->dtype),
			    elem_size(y->dtype)};
	iter_run(&it, bin_row, &c);
	return QT_OK;
}

struct binop {
	const bin_fn *tab;
	int out_bool;
};

static enum qt_status binary_drv(const struct qt_op_args *a, const void *desc)
{
	const struct binop *op = desc;
	enum qt_status st = need_outputs(a);
	const struct qt_tensor *x = st ? NULL : need_in(a, 0, &st);
	const struct qt_tensor *y = x ? need_in(a, 1, &st) : NULL;
	if (!y)
		return st;
	return binary_apply(a, op->tab, op->out_bool, x, y, &a->out[0]);
}

#define BINARY(Name, tabname, out_bool)                                                                                \
	static const struct binop bin_##Name = {tabname##_tab, out_bool};                                             \
	static enum qt_status op_##Name(const struct qt_op_args *a) { return with_f16(a, 2, &bin_##Name, binary_drv); }
/* bool-only ops skip float16 widening so a float16 input is reported as such */
#define BINARY_RAW(Name, tabname)                                                                                      \
	static const struct binop bin_##Name = {tabname##_tab, 0};                                                    \
	static enum qt_status op_##Name(const struct qt_op_args *a) { return binary_drv(a, &bin_##Name); }

BINARY(Add, add, 0)
BINARY(Sub, sub, 0)
BINARY(Mul, mul, 0)
BINARY(Div, div, 0)
BINARY(Equal, eq, 1)
BINARY(Greater, gt, 1)
BINARY(Less, lt, 1)
BINARY(GreaterOrEqual, ge, 1)
BINARY(LessOrEqual, le, 1)
BINARY_RAW(And, and)
BINARY_RAW(Or, or)
BINARY_RAW(Xor, xor)

static enum qt_status mod_drv(const struct qt_op_args *a, const void *desc)
{
	(void)desc;
	int64_t f = qt_node_attr_int(a->node, "fmod", 0);
	if (f != 0 && f != 1)
		return qt_op_error(a, QT_E_FORMAT, "fmod must be 0 or 1, not %lld", (long long)f);
	/* Python-style mod is also computed for floats with fmod=0, which ONNX leaves undefined. */
	static const struct binop m = {mod_tab, 0}, fm = {fmod_tab, 0};
	return binary_drv(a, f ? &fm : &m);
}

static enum qt_status op_Mod(const struct qt_op_args *a)
{
	return with_f16(a, 2, NULL, mod_drv);
}

static enum qt_status op_BitShift(const struct qt_op_args *a)
{
	static const struct binop l = {shl_tab, 0}, r = {shr_tab, 0};
	const char *dir = qt_node_attr_str(a->node, "direction", "");
	if (strcmp(dir, "LEFT") != 0 && strcmp(dir, "RIGHT") != 0)
		return qt_op_error(a, QT_E_FORMAT, "direction must be \"LEFT\" or \"RIGHT\", not \"%s\"", dir);
	return binary_drv(a, dir[0] == 'L' ? &l : &r);
}

/* PRelu: the slope broadcasts to X's shape (unidirectionally). */
static enum qt_status prelu_drv(const struct qt_op_args *a, const void *desc)
{
	(void)desc;
	enum qt_status st = need_outputs(a);
	const struct qt_tensor *x = st ? NULL : need_in(a, 0, &st);
	const struct qt_tensor *s = x ? need_in(a, 1, &st) : NULL;
	if (!s)
		return st;
	struct qt_tensor sv = *s;
	sv.owned = 0;
	/* Before opset 7 a 1-D slope of C values applied per channel (axis 1). */
	if (a->opset < 7 && s->rank == 1 && x->rank >= 3 && s->dims[0] == x->dims[1] && s->dims[0] > 1) {
		sv.rank = x->rank - 1;
		for (int d = 1; d < sv.rank; d++)
			sv.dims[d] = 1;
	}
	int rank;
	int64_t dims[QT_MAX_RANK];
	if (qt_broadcast_shape(x->rank, x->dims, sv.rank, sv.dims, &rank, dims) || rank != x->rank ||
	    memcmp(dims, x->dims, (size_t)rank * sizeof dims[0]) != 0) {
		char s1[96], s2[96];
		return qt_op_error(a, QT_E_FORMAT, "slope %s cannot be broadcast to input %s",
				   qt_shape_str(s1, sizeof s1, s->rank, s->dims),
				   qt_shape_str(s2, sizeof s2, x->rank, x->dims));
	}
	return binary_apply(a, prelu_tab, 0, x, &sv, &a->out[0]);
}

static enum qt_status op_PRelu(const struct qt_op_args *a)
{
	return with_f16(a, 2, NULL, prelu_drv);
}

struct gen_ctx {
	struct qt_tensor *o;
	const struct qt_tensor *x, *y;
};

/* Pow of an integer base by a float exponent: in double, truncated to the base dtype. */
static void powgen_row(void *ctx, const int64_t *off, const int64_t *inner, int64_t n)
{
	const struct gen_ctx *c = ctx;
	for (int64_t i = 0; i < n; i++)
		store_f64(c->o, off[0] + i,
			  pow(qt_tensor_get_f64(c->x, off[1] + i * inner[1]), qt_tensor_get_f64(c->y, off[2] + i * inner[2])));
}

/*
 * Pow: the output has the base's dtype. A float base takes the exponent
 * converted to its dtype; an integer base with an integer exponent is exact
 * (the exponent converted to the base's dtype); an integer base with a float
 * exponent is computed in double and truncated.
 */
static enum qt_status pow_drv(const struct qt_op_args *a, const void *desc)
{
	(void)desc;
	enum qt_status st = need_outputs(a);
	const struct qt_tensor *x = st ? NULL : need_in(a, 0, &st);
	const struct qt_tensor *y = x ? need_in(a, 1, &st) : NULL;
	if (!y)
		return st;
	if (x->dtype == y->dtype)
		return binary_apply(a, pow_tab, 0, x, y, &a->out[0]);
	if (!is_numeric(y->dtype))
		return bad_dtype(a, "exponent", y->dtype);
	if ((unsigned)x->dtype >= QT_DTYPE_COUNT || !pow_tab[x->dtype])
		return bad_dtype(a, "base", x->dtype);
	if (is_float(x->dtype) || !is_float(y->dtype)) {
		struct qt_tensor yc = {0};
		st = alloc_out(a, &yc, x->dtype, y->rank, y->dims);
		if (st)
			return st;
		convert_elems(y, &yc);
		st = binary_apply(a, pow_tab, 0, x, &yc, &a->out[0]);
		qt_tensor_free(&yc);
		return st;
	}
	int rank;
	int64_t dims[QT_MAX_RANK];
	if (qt_broadcast_shape(x->rank, x->dims, y->rank, y->dims, &rank, dims))
		return bcast_error(a, x, y);
	st = alloc_out(a, &a->out[0], x->dtype, rank, dims);
	if (st || qt_tensor_numel(&a->out[0]) == 0)
		return st;
	const struct qt_tensor *ins[2] = {x, y};
	struct iter it;
	iter_init(&it, rank, dims, 2, ins);
	struct gen_ctx c = {&a->out[0], x, y};
	iter_run(&it, powgen_row, &c);
	return QT_OK;
}

static enum qt_status op_Pow(const struct qt_op_args *a)
{
	return with_f16(a, 1, NULL, pow_drv);
}

/* ------------------------------------------------------------------------ */
/* Variadic ops: Max, Min, Sum, Mean fold their inputs pairwise              */

struct varop {
	const bin_fn *tab;
	int mean; /* divide the sum by the input count */
};

static enum qt_status variadic_drv(const struct qt_op_args *a, const void *desc)
{
	const struct varop *op = desc;
	enum qt_status st = need_outputs(a);
	if (st)
		return st;
	if (a->n_in < 1)
		return qt_op_error(a, QT_E_FORMAT, "needs at least one input");
	for (int i = 0; i < a->n_in; i++)
		if (!need_in(a, i, &st))
			return st;
	const struct qt_tensor *x = a->in[0];
	if ((unsigned)x->dtype >= QT_DTYPE_COUNT || !op->tab[x->dtype])
		return bad_dtype(a, "input", x->dtype);
	struct qt_tensor acc = {0};
	if (a->n_in == 1)
		st = qt_tensor_copy(&acc, x);
	else
		st = binary_apply(a, op->tab, 0, x, a->in[1], &acc);
	for (int i = 2; i < a->n_in && !st; i++) {
		struct qt_tensor next = {0};
		st = binary_apply(a, op->tab, 0, &acc, a->in[i], &next);
		qt_tensor_free(&acc);
		acc = next;
	}
	if (st) {
		qt_tensor_free(&acc);
		return st;
	}
	if (op->mean && a->n_in > 1) {
		int64_t n = qt_tensor_numel(&acc);
		if (acc.dtype == QT_DTYPE_F32) {
			float *p = acc.data, k = (float)a->n_in;
			for (int64_t i = 0; i < n; i++)
				p[i] /= k;
		} else {
			double *p = acc.data, k = (double)a->n_in;
			for (int64_t i = 0; i < n; i++)
				p[i] /= k;
		}
	}
	a->out[0] = acc;
	return QT_OK;
}

static const bin_fn mean_tab[QT_DTYPE_COUNT] = {TAB_F(add)};

#define VARIADIC(Name, tabname, mean)                                                                                  \
	static const struct varop var_##Name = {tabname, mean};                                                       \
	static enum qt_status op_##Name(const struct qt_op_args *a) { return with_f16(a, -1, &var_##Name, variadic_drv); }
VARIADIC(Max, max_tab, 0)
VARIADIC(Min, min_tab, 0)
VARIADIC(Sum, add_tab, 0)
VARIADIC(Mean, mean_tab, 1)

/* ------------------------------------------------------------------------ */
/* Where                                                                     */

struct where_ctx {
	char *o;
	const uint8_t *c;
	const char *x, *y;
	int64_t es; /* element size of X, Y and the output */
};

#define WHERE_LOOP(T)                                                                                                  \
	do {                                                                                                           \
		T *oo = (T *)o;                                                                                        \
		const T *xx = (const T *)x, *yy = (const T *)y;                                                        \
		for (int64_t i = 0; i < n; i++)                                                                        \
			oo[i] = c[i * inner[1]] ? xx[i * inner[2]] : yy[i * inner[3]];                                 \
	} while (0)

static void where_row(void *ctx, const int64_t *off, const int64_t *inner, int64_t n)
{
	const struct where_ctx *w = ctx;
	char *o = w->o + off[0] * w->es;
	const uint8_t *c = w->c + off[1];
	const char *x = w->x + off[2] * w->es, *y = w->y + off[3] * w->es;
	switch (w->es) {
	case 1: WHERE_LOOP(uint8_t); break;
	case 2: WHERE_LOOP(uint16_t); break;
	case 4: WHERE_LOOP(uint32_t); break;
	default: WHERE_LOOP(uint64_t); break;
	}
}

/* Where(cond, X, Y): a byte copy per element, so every dtype works. */
static enum qt_status op_Where(const struct qt_op_args *a)
{
	enum qt_status st = need_outputs(a);
	const struct qt_tensor *c = st ? NULL : need_in(a, 0, &st);
	const struct qt_tensor *x = c ? need_in(a, 1, &st) : NULL;
	const struct qt_tensor *y = x ? need_in(a, 2, &st) : NULL;
	if (!y)
		return st;
	if (c->dtype != QT_DTYPE_BOOL)
		return qt_op_error(a, QT_E_FORMAT, "condition must be bool, not %s", qt_dtype_name(c->dtype));
	if (x->dtype != y->dtype)
		return qt_op_error(a, QT_E_FORMAT, "X and Y must have the same dtype, not %s and %s",
				   qt_dtype_name(x->dtype), qt_dtype_name(y->dtype));
	size_t es = elem_size(x->dtype);
	if (qt_dtype_bits(x->dtype) % 8 || (es != 1 && es != 2 && es != 4 && es != 8))
		return bad_dtype(a, "X", x->dtype);
	int r1, rank;
	int64_t d1[QT_MAX_RANK], dims[QT_MAX_RANK];
	if (qt_broadcast_shape(c->rank, c->dims, x->rank, x->dims, &r1, d1) ||
	    qt_broadcast_shape(r1, d1, y->rank, y->dims, &rank, dims)) {
		char s1[96], s2[96], s3[96];
		return qt_op_error(a, QT_E_FORMAT, "condition %s, X %s and Y %s cannot be broadcast",
				   qt_shape_str(s1, sizeof s1, c->rank, c->dims),
				   qt_shape_str(s2, sizeof s2, x->rank, x->dims),
				   qt_shape_str(s3, sizeof s3, y->rank, y->dims));
	}
	st = alloc_out(a, &a->out[0], x->dtype, rank, dims);
	if (st || qt_tensor_numel(&a->out[0]) == 0)
		return st;
	const struct qt_tensor *ins[3] = {c, x, y};
	struct iter it;
	iter_init(&it, rank, dims, 3, ins);
	struct where_ctx w = {a->out[0].data, c->data, x->data, y->data, (int64_t)es};
	iter_run(&it, where_row, &w);
	return QT_OK;
}

/* ------------------------------------------------------------------------ */
/* Cast, CastLike                                                            */

static enum qt_status cast_to(const struct qt_op_args *a, enum qt_dtype to, const char *to_name)
{
	enum qt_status st = need_outputs(a);
	const struct qt_tensor *x = st ? NULL : need_in(a, 0, &st);
	if (!x)
		return st;
	if (!is_numeric(x->dtype))
		return bad_dtype(a, "input", x->dtype);
	if (!is_numeric(to))
		return qt_op_error(a, QT_E_UNSUPPORTED, "cast to %s is not supported", to_name);
	st = alloc_out(a, &a->out[0], to, x->rank, x->dims);
	if (st)
		return st;
	convert_elems(x, &a->out[0]);
	return QT_OK;
}

/* Cast: `to` is an ONNX TensorProto type (a type name string in opset 1). */
static enum qt_status op_Cast(const struct qt_op_args *a)
{
	static const char *const names[] = {"", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64",
					    "STRING", "BOOL", "FLOAT16", "DOUBLE", "UINT32", "UINT64"};
	const struct qt_attr *to = qt_node_attr(a->node, "to");
	char name[64];
	int onnx = 0;
	if (to && to->type == QT_ATTR_INT) {
		onnx = to->i > 0 && to->i < 1000 ? (int)to->i : 0;
		snprintf(name, sizeof name, "ONNX type %lld", (long long)to->i);
	} else if (to && to->type == QT_ATTR_STRING) {
		for (int k = 1; k < (int)(sizeof names / sizeof names[0]); k++)
			if (strcmp(to->s, names[k]) == 0)
				onnx = k;
		snprintf(name, sizeof name, "\"%s\"", to->s);
	} else {
		return qt_op_error(a, QT_E_FORMAT, "attribute \"to\" is missing");
	}
	enum qt_dtype dt = qt_dtype_from_onnx(onnx);
	if (dt != QT_DTYPE_UNDEFINED)
		snprintf(name, sizeof name, "%s", qt_dtype_name(dt));
	return cast_to(a, dt, name);
}

static enum qt_status op_CastLike(const struct qt_op_args *a)
{
	enum qt_status st = QT_OK;
	const struct qt_tensor *like = need_in(a, 1, &st);
	if (!like)
		return st;
	return cast_to(a, like->dtype, qt_dtype_name(like->dtype));
}

/* ------------------------------------------------------------------------ */
/* Clip                                                                      */

/*
 * Opset < 11: float attributes min/max (defaults: the float range).
 * Opset >= 11: optional scalar inputs min and max of the input's dtype.
 * Bounds apply as min(max(x, lo), hi), so lo > hi gives hi everywhere.
 */
static enum qt_status clip_drv(const struct qt_op_args *a, const void *desc)
{
	(void)desc;
	enum qt_status st = need_outputs(a);
	const struct qt_tensor *x = st ? NULL : need_in(a, 0, &st);
	if (!x)
		return st;
	un_fn fn = (unsigned)x->dtype < QT_DTYPE_COUNT ? clip_tab[x->dtype] : NULL;
	if (!fn || (a->opset < 11 && !is_float(x->dtype)))
		return bad_dtype(a, "input", x->dtype);
	struct uparam p = {-INFINITY, INFINITY, 0, INT64_MIN, INT64_MAX, 0, UINT64_MAX};
	if (a->opset < 11) {
		p.a = qt_node_attr_float(a->node, "min", -FLT_MAX);
		p.b = qt_node_attr_float(a->node, "max", FLT_MAX);
	} else {
		for (int k = 1; k <= 2; k++) {
			const struct qt_tensor *t = qt_op_in(a, k);
			const char *what = k == 1 ? "min" : "max";
			if (!t)
				continue;
			if (t->dtype != x->dtype)
				return qt_op_error(a, QT_E_FORMAT, "%s must be %s like the input, not %s", what,
						   qt_dtype_name(x->dtype), qt_dtype_name(t->dtype));
			double v;
			if (read_scalar(a, t, what, &v))
				return QT_E_FORMAT;
			*(k == 1 ? &p.a : &p.b) = v;
			*(k == 1 ? &p.ilo : &p.ihi) = load_i64(t, 0);
			*(k == 1 ? &p.ulo : &p.uhi) = load_u64(t, 0);
		}
	}
	st = alloc_out(a, &a->out[0], x->dtype, x->rank, x->dims);
	if (st)
		return st;
	un_run(fn, a->out[0].data, x->dtype, x->data, x->dtype, qt_tensor_numel(x), &p);
	return QT_OK;
}

static enum qt_status op_Clip(const struct qt_op_args *a)
{
	return with_f16(a, 3, NULL, clip_drv);
}

/* ------------------------------------------------------------------------ */
/* Dropout                                                                   */

/*
 * Inference: output = input, mask all ones (bool from opset 10, the input's
 * dtype before). Opset >= 12 takes ratio and training_mode as inputs; a true
 * training_mode is refused unless ratio is 0, where training is the identity
 * too. Opsets < 7 (is_test) are run as inference whatever is_test says.
 */
static enum qt_status op_Dropout(const struct qt_op_args *a)
{
	enum qt_status st = need_outputs(a);
	const struct qt_tensor *x = st ? NULL : need_in(a, 0, &st);
	if (!x)
		return st;
	double ratio = qt_node_attr_float(a->node, "ratio", 0.5f), training = 0;
	if (a->opset >= 12) {
		const struct qt_tensor *r = qt_op_in(a, 1), *t = qt_op_in(a, 2);
		ratio = 0.5;
		if (r && read_scalar(a, r, "ratio", &ratio))
			return QT_E_FORMAT;
		if (t && read_scalar(a, t, "training_mode", &training))
			return QT_E_FORMAT;
	}
	if (!(ratio >= 0 && ratio < 1))
		return qt_op_error(a, QT_E_FORMAT, "ratio %g is outside [0, 1)", ratio);
	if (training != 0 && ratio != 0)
		return qt_op_error(a, QT_E_UNSUPPORTED,
				   "training_mode=true with ratio %g draws random masks; only inference is supported", ratio);
	st = qt_tensor_copy(&a->out[0], x);
	if (st)
		return st;
	if (a->n_out > 1) {
		st = alloc_out(a, &a->out[1], a->opset >= 10 ? QT_DTYPE_BOOL : x->dtype, x->rank, x->dims);
		if (st) {
			qt_tensor_free(&a->out[0]);
			return st;
		}
		int64_t n = qt_tensor_numel(x);
		for (int64_t i = 0; i < n; i++)
			store_f64(&a->out[1], i, 1.0);
	}
	return QT_OK;
}

/* ------------------------------------------------------------------------ */

/* Registry table (declared in ops.h); min_opset is the op's first ai.onnx version. */
const struct qt_op_entry qt_ops_elemwise[] = {
	{"Abs", 1, op_Abs},
	{"Neg", 1, op_Neg},
	{"Exp", 1, op_Exp},
	{"Log", 1, op_Log},
	{"Sqrt", 1, op_Sqrt},
	{"Erf", 9, op_Erf},
	{"Relu", 1, op_Relu},
	{"Sigmoid", 1, op_Sigmoid},
	{"Tanh", 1, op_Tanh},
	{"Reciprocal", 1, op_Reciprocal},
	{"Floor", 1, op_Floor},
	{"Ceil", 1, op_Ceil},
	{"Round", 11, op_Round},
	{"Sign", 9, op_Sign},
	{"Sin", 7, op_Sin},
	{"Cos", 7, op_Cos},
	{"Tan", 7, op_Tan},
	{"Asin", 7, op_Asin},
	{"Acos", 7, op_Acos},
	{"Atan", 7, op_Atan},
	{"Sinh", 9, op_Sinh},
	{"Cosh", 9, op_Cosh},
	{"Asinh", 9, op_Asinh},
	{"Acosh", 9, op_Acosh},
	{"Atanh", 9, op_Atanh},
	{"Softplus", 1, op_Softplus},
	{"Softsign", 1, op_Softsign},
	{"Elu", 1, op_Elu},
	{"Selu", 1, op_Selu},
	{"LeakyRelu", 1, op_LeakyRelu},
	{"HardSigmoid", 1, op_HardSigmoid},
	{"HardSwish", 14, op_HardSwish},
	{"ThresholdedRelu", 10, op_ThresholdedRelu},
	{"Celu", 12, op_Celu},
	{"Shrink", 9, op_Shrink},
	{"Not", 1, op_Not},
	{"IsNaN", 9, op_IsNaN},
	{"IsInf", 10, op_IsInf},
	{"Add", 1, op_Add},
	{"Sub", 1, op_Sub},
	{"Mul", 1, op_Mul},
	{"Div", 1, op_Div},
	{"Pow", 1, op_Pow},
	{"Mod", 10, op_Mod},
	{"PRelu", 1, op_PRelu},
	{"BitShift", 11, op_BitShift},
	{"Equal", 1, op_Equal},
	{"Greater", 1, op_Greater},
	{"Less", 1, op_Less},
	{"GreaterOrEqual", 12, op_GreaterOrEqual},
	{"LessOrEqual", 12, op_LessOrEqual},
	{"And", 1, op_And},
	{"Or", 1, op_Or},
	{"Xor", 1, op_Xor},
	{"Max", 1, op_Max},
	{"Min", 1, op_Min},
	{"Sum", 1, op_Sum},
	{"Mean", 1, op_Mean},
	{"Where", 9, op_Where},
	{"Cast", 1, op_Cast},
	{"CastLike", 15, op_CastLike},
	{"Clip", 1, op_Clip},
	{"Dropout", 1, op_Dropout},
	{NULL, 0, NULL},
};
