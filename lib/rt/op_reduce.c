/*
 * Reductions (see ops.h for the contract): ReduceSum, ReduceMean, ReduceProd,
 * ReduceMax, ReduceMin, ReduceL1, ReduceL2, ReduceSumSquare, ReduceLogSum,
 * ReduceLogSumExp, and ArgMax/ArgMin.
 *
 * One driver serves every Reduce*: it resolves the axes (an attribute before
 * opset 13 for ReduceSum and 18 for the others, an optional second input
 * from then on, with noop_with_empty_axes), merges adjacent dims that are all
 * reduced or all kept, and walks the input once in memory order, folding each
 * element into the accumulator of its output position. A reduction kind is
 * an init value, an accumulate step and a finalise step.
 *
 * Accumulators: double for float inputs (float32 sums and means accumulate in
 * double, so a long reduction does not lose the small terms) and for the
 * logarithmic/L2 kinds; exact int64 (wrapping, like numpy) for integer Sum,
 * Mean (truncated toward zero), Prod, Max, Min, L1 and SumSquare. uint64
 * inputs go through double and are exact only below 2^53.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

enum rkind { RK_SUM, RK_MEAN, RK_PROD, RK_MAX, RK_MIN, RK_L1, RK_L2, RK_SUMSQ, RK_LOGSUM, RK_LOGSUMEXP };

#define BLOCK 512 /* elements converted at a time into the accumulator's type */

static int is_int_in(enum qt_dtype dt)
{
	return dt == QT_DTYPE_I8 || dt == QT_DTYPE_I16 || dt == QT_DTYPE_I32 || dt == QT_DTYPE_I64 ||
	       dt == QT_DTYPE_U8 || dt == QT_DTYPE_U16 || dt == QT_DTYPE_U32;
}

static int is_reducible(enum qt_dtype dt)
{
	return dt == QT_DTYPE_F32 || dt == QT_DTYPE_F64 || dt == QT_DTYPE_F16 || dt == QT_DTYPE_U64 || is_int_in(dt);
}

/* n elements from offset off as double. */
static void load_d(const struct qt_tensor *t, int64_t off, int64_t n, double *buf)
{
	if (t->dtype == QT_DTYPE_F32) {
		const float *p = (const float *)t->data + off;
		for (int64_t i = 0; i < n; i++)
			buf[i] = p[i];
	} else if (t->dtype == QT_DTYPE_F64) {
		memcpy(buf, (const double *)t->data + off, (size_t)n * sizeof *buf);
	} else {
		for (int64_t i = 0; i < n; i++)
			buf[i] = qt_tensor_get_f64(t, off + i);
	}
}

/* n elements from offset off as int64 (integer dtypes up to int64 and uint32). */
static void load_i(const struct qt_tensor *t, int64_t off, int64_t n, int64_t *buf)
{
	switch (t->dtype) {
	case QT_DTYPE_I64: memcpy(buf, (const int64_t *)t->data + off, (size_t)n * sizeof *buf); break;
#define LOAD(DT, T)                                                                                                    \
	case DT: {                                                                                                     \
		const T *p = (const T *)t->data + off;                                                                 \
		for (int64_t i = 0; i < n; i++)                                                                        \
			buf[i] = p[i];                                                                                 \
		break;                                                                                                 \
	}
		LOAD(QT_DTYPE_I32, int32_t)
		LOAD(QT_DTYPE_I16, int16_t)
		LOAD(QT_DTYPE_I8, int8_t)
		LOAD(QT_DTYPE_U32, uint32_t)
		LOAD(QT_DTYPE_U16, uint16_t)
		LOAD(QT_DTYPE_U8, uint8_t)
#undef LOAD
	default: break;
	}
}

/* Integer results narrow with wrap-around (numpy's astype). */
static void put_i(struct qt_tensor *t, int64_t i, int64_t v)
{
	switch (t->dtype) {
	case QT_DTYPE_I64: ((int64_t *)t->data)[i] = v; break;
	case QT_DTYPE_I32: ((int32_t *)t->data)[i] = (int32_t)v; break;
	case QT_DTYPE_I16: ((int16_t *)t->data)[i] = (int16_t)v; break;
	case QT_DTYPE_I8: ((int8_t *)t->data)[i] = (int8_t)v; break;
	case QT_DTYPE_U32: ((uint32_t *)t->data)[i] = (uint32_t)v; break;
	case QT_DTYPE_U16: ((uint16_t *)t->data)[i] = (uint16_t)v; break;
	case QT_DTYPE_U8: ((uint8_t *)t->data)[i] = (uint8_t)v; break;
	default: break;
	}
}

/* Float results: integer outputs truncate toward zero, saturating (NaN -> 0). */
static void put_d(struct qt_tensor *t, int64_t i, double v)
{
	if (t->dtype == QT_DTYPE_F32)
		((float *)t->data)[i] = (float)v;
	else if (t->dtype == QT_DTYPE_F64 || t->dtype == QT_DTYPE_F16)
		qt_tensor_set_f64(t, i, v);
	else if (v != v)
		put_i(t, i, 0);
	else if (t->dtype == QT_DTYPE_U64)
		((uint64_t *)t->data)[i] = v <= 0 ? 0 : v >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)v;
	else
		put_i(t, i, v >= 9223372036854775807.0 ? INT64_MAX : v <= -9223372036854775808.0 ? INT64_MIN : (int64_t)v);
}

/*
 * Fold n values into acc[i * so] (so is 0 when the row is reduced, 1 when it
 * is kept). A reduced row folds into a local so the chain stays in a
 * register; a kept row is an elementwise update the compiler vectorises.
 */
#define FOLD(T, STEP)                                                                                                  \
	do {                                                                                                           \
		if (so == 0) {                                                                                         \
			T s = acc[0];                                                                                  \
			for (int64_t i = 0; i < n; i++)                                                                \
				s = STEP(s, v[i]);                                                                     \
			acc[0] = s;                                                                                    \
		} else {                                                                                               \
			for (int64_t i = 0; i < n; i++)                                                                \
				acc[i] = STEP(acc[i], v[i]);                                                           \
		}                                                                                                      \
	} while (0)

#define D_SUM(s, x) ((s) + (x))
#define D_PROD(s, x) ((s) * (x))
#define D_MAX(s, x) (((x) > (s) || (x) != (x)) ? (x) : (s)) /* NaN wins, as in numpy */
#define D_MIN(s, x) (((x) < (s) || (x) != (x)) ? (x) : (s))
#define D_L1(s, x) ((s) + fabs(x))
#define D_SQ(s, x) ((s) + (x) * (x))
/* int64 steps wrap through uint64 (signed overflow is undefined in C) */
#define I_SUM(s, x) ((int64_t)((uint64_t)(s) + (uint64_t)(x)))
#define I_PROD(s, x) ((int64_t)((uint64_t)(s) * (uint64_t)(x)))
#define I_MAX(s, x) ((x) > (s) ? (x) : (s))
#define I_MIN(s, x) ((x) < (s) ? (x) : (s))
#define I_L1(s, x) ((int64_t)((uint64_t)(s) + ((x) < 0 ? 0 - (uint64_t)(x) : (uint64_t)(x))))
#define I_SQ(s, x) ((int64_t)((uint64_t)(s) + (uint64_t)(x) * (uint64_t)(x)))

/* mx holds the per-output maxima for ReduceLogSumExp's second pass. */
static void fold_d(enum rkind k, double *restrict acc, int64_t so, const double *restrict v, int64_t n,
		   const double *restrict mx)
{
	switch (k) {
	case RK_SUM:
	case RK_MEAN:
	case RK_LOGSUM: FOLD(double, D_SUM); break;
	case RK_PROD: FOLD(double, D_PROD); break;
	case RK_MAX:
	case RK_MIN:
		if (so == 0) { /* branch-free max/min; a NaN seen anywhere wins at the end */
			double s = acc[0];
			int nan = 0;
			for (int64_t i = 0; i < n; i++) {
				s = k == RK_MAX ? I_MAX(s, v[i]) : I_MIN(s, v[i]);
				nan |= v[i] != v[i];
			}
			acc[0] = nan ? NAN : s;
		} else if (k == RK_MAX) {
			FOLD(double, D_MAX);
		} else {
			FOLD(double, D_MIN);
		}
		break;
	case RK_L1: FOLD(double, D_L1); break;
	case RK_L2:
	case RK_SUMSQ: FOLD(double, D_SQ); break;
	case RK_LOGSUMEXP:
		for (int64_t i = 0; i < n; i++)
			if (!isinf(mx[i * so]))
				acc[i * so] += exp(v[i] - mx[i * so]);
		break;
	}
}

static void fold_i(enum rkind k, int64_t *restrict acc, int64_t so, const int64_t *restrict v, int64_t n)
{
	switch (k) {
	case RK_SUM:
	case RK_MEAN: FOLD(int64_t, I_SUM); break;
	case RK_PROD: FOLD(int64_t, I_PROD); break;
	case RK_MAX: FOLD(int64_t, I_MAX); break;
	case RK_MIN: FOLD(int64_t, I_MIN); break;
	case RK_L1: FOLD(int64_t, I_L1); break;
	case RK_SUMSQ: FOLD(int64_t, I_SQ); break;
	default: break;
	}
}

struct rplan {
	int rank; /* merged dims */
	int64_t dims[QT_MAX_RANK];
	int64_t ostr[QT_MAX_RANK]; /* output stride per merged dim; 0 when reduced */
};

/* Merge adjacent dims that are both reduced or both kept; drop size-1 dims. */
static void plan_init(struct rplan *p, const struct qt_tensor *x, const int *reduced)
{
	int64_t ostr[QT_MAX_RANK], s = 1;
	for (int d = x->rank - 1; d >= 0; d--) {
		ostr[d] = reduced[d] ? 0 : s;
		if (!reduced[d])
			s *= x->dims[d];
	}
	int r = 0;
	for (int d = 0; d < x->rank; d++) {
		if (x->dims[d] == 1)
			continue;
		if (r > 0 && p->ostr[r - 1] == ostr[d] * x->dims[d]) {
			p->dims[r - 1] *= x->dims[d];
			p->ostr[r - 1] = ostr[d];
			continue;
		}
		p->dims[r] = x->dims[d];
		p->ostr[r] = ostr[d];
		r++;
	}
	p->rank = r;
}

/*
 * Walk x in memory order and fold every element into acc_d or acc_i (one of
 * them is NULL) at its output position.
 */
static void reduce_walk(const struct rplan *p, const struct qt_tensor *x, enum rkind k, double *acc_d,
			int64_t *acc_i, const double *mx)
{
	double bd[BLOCK];
	int64_t bi[BLOCK];
	int64_t idx[QT_MAX_RANK] = {0}, in_off = 0, out_off = 0;
	int last = p->rank - 1;
	int64_t n = p->rank ? p->dims[last] : 1, so = p->rank ? p->ostr[last] : 0;
	for (;;) {
		for (int64_t c = 0; c < n; c += BLOCK) {
			int64_t m = n - c < BLOCK ? n - c : BLOCK;
			int64_t o = out_off + c * so;
			if (acc_d) {
				load_d(x, in_off + c, m, bd);
				fold_d(k, acc_d + o, so, bd, m, mx ? mx + o : NULL);
			} else {
				load_i(x, in_off + c, m, bi);
				fold_i(k, acc_i + o, so, bi, m);
			}
		}
		in_off += n;
		int d;
		for (d = last - 1; d >= 0; d--) {
			out_off += p->ostr[d];
			if (++idx[d] < p->dims[d])
				break;
			out_off -= p->ostr[d] * p->dims[d];
			idx[d] = 0;
		}
		if (d < 0)
			return;
	}
}

struct rdesc {
	enum rkind kind;
	int axes_input_opset; /* from this opset on, axes is input 1 instead of an attribute */
};

static enum qt_status reduce_drv(const struct qt_op_args *a, const struct rdesc *rd)
{
	const struct qt_tensor *x = qt_op_in(a, 0);
	char s1[96];
	if (a->n_out < 1)
		return qt_op_error(a, QT_E_FORMAT, "has no output");
	if (!x)
		return qt_op_error(a, QT_E_FORMAT, "input 0 is missing");
	if (!is_reducible(x->dtype))
		return qt_op_error(a, QT_E_UNSUPPORTED, "input dtype %s is not supported", qt_dtype_name(x->dtype));

	int64_t axes[QT_MAX_RANK];
	int nax = 0, noop = 0;
	if (a->opset >= rd->axes_input_opset) {
		const struct qt_tensor *t = qt_op_in(a, 1);
		if (t && (nax = qt_op_read_ints(a, t, "axes", axes, QT_MAX_RANK)) < 0)
			return QT_E_FORMAT;
		noop = qt_node_attr_int(a->node, "noop_with_empty_axes", 0) != 0;
	} else {
		const int64_t *v = NULL;
		nax = qt_node_attr_ints(a->node, "axes", &v);
		if (nax > QT_MAX_RANK)
			return qt_op_error(a, QT_E_FORMAT, "%d axes for rank %d", nax, x->rank);
		for (int i = 0; i < nax; i++)
			axes[i] = v[i];
	}
	if (nax == 0 && noop)
		return qt_tensor_copy(&a->out[0], x);

	int reduced[QT_MAX_RANK] = {0};
	for (int i = 0; i < nax; i++) {
		int ax = qt_norm_axis(axes[i], x->rank);
		if (ax < 0)
			return qt_op_error(a, QT_E_FORMAT, "axis %lld is out of range for input %s", (long long)axes[i],
					   qt_shape_str(s1, sizeof s1, x->rank, x->dims));
		if (reduced[ax])
			return qt_op_error(a, QT_E_FORMAT, "axis %lld is listed twice", (long long)axes[i]);
		reduced[ax] = 1;
	}
	for (int d = 0; d < x->rank && nax == 0; d++)
		reduced[d] = 1;

	int keep = qt_node_attr_int(a->node, "keepdims", 1) != 0;
	int orank = 0;
	int64_t odims[QT_MAX_RANK], count = 1;
	for (int d = 0; d < x->rank; d++) {
		if (reduced[d])
			count *= x->dims[d];
		if (!reduced[d] || keep)
			odims[orank++] = reduced[d] ? 1 : x->dims[d];
	}
	struct qt_tensor *out = &a->out[0];
	enum qt_status st = qt_tensor_alloc(out, x->dtype, orank, odims);
	if (st) {
		char lbl[256];
		return qt_error_prefix(st, "%s", qt_node_label(a->g, a->node, lbl, sizeof lbl));
	}
	int64_t on = qt_tensor_numel(out);
	if (on == 0)
		return QT_OK;

	enum rkind k = rd->kind;
	int int_acc = is_int_in(x->dtype) && k != RK_L2 && k != RK_LOGSUM && k != RK_LOGSUMEXP;
	void *acc = calloc((size_t)on, int_acc ? sizeof(int64_t) : sizeof(double));
	double *mx = NULL;
	if (k == RK_LOGSUMEXP)
		mx = malloc((size_t)on * sizeof *mx);
	if (!acc || (k == RK_LOGSUMEXP && !mx)) {
		free(acc);
		free(mx);
		qt_tensor_free(out);
		return qt_op_error(a, QT_E_NOMEM, "out of memory for %lld accumulators", (long long)on);
	}
	struct rplan p;
	plan_init(&p, x, reduced);
	int have_input = qt_tensor_numel(x) > 0;
	if (int_acc) {
		int64_t *ai = acc;
		int64_t init = k == RK_PROD ? 1 : k == RK_MAX ? INT64_MIN : k == RK_MIN ? INT64_MAX : 0;
		for (int64_t i = 0; i < on; i++)
			ai[i] = init;
		if (have_input)
			reduce_walk(&p, x, k, NULL, ai, NULL);
		for (int64_t i = 0; i < on; i++) {
			int64_t v = ai[i];
			if (k == RK_MEAN)
				v = count ? v / count : 0;
			put_i(out, i, v);
		}
	} else {
		double *ad = acc;
		if (k == RK_LOGSUMEXP) {
			for (int64_t i = 0; i < on; i++)
				mx[i] = -INFINITY;
			if (have_input)
				reduce_walk(&p, x, RK_MAX, mx, NULL, NULL);
		}
		double init = k == RK_PROD ? 1 : k == RK_MAX ? -INFINITY : k == RK_MIN ? INFINITY : 0;
		for (int64_t i = 0; i < on; i++)
			ad[i] = init;
		if (have_input)
			reduce_walk(&p, x, k, ad, NULL, mx);
		for (int64_t i = 0; i < on; i++) {
			double v = ad[i];
			switch (k) {
			case RK_MEAN: v = v / (double)count; break;
			case RK_L2: v = sqrt(v); break;
			case RK_LOGSUM: v = log(v); break;
			case RK_LOGSUMEXP: v = isinf(mx[i]) ? mx[i] : log(v) + mx[i]; break;
			default: break;
			}
			put_d(out, i, v);
		}
	}
	free(acc);
	free(mx);
	return QT_OK;
}

#define REDUCE(Name, kind, axes_opset)                                                                                 \
	static enum qt_status op_##Name(const struct qt_op_args *a)                                                    \
	{                                                                                                              \
		static const struct rdesc d = {kind, axes_opset};                                                      \
		return reduce_drv(a, &d);                                                                              \
	}
REDUCE(ReduceSum, RK_SUM, 13)
REDUCE(ReduceMean, RK_MEAN, 18)
REDUCE(ReduceProd, RK_PROD, 18)
REDUCE(ReduceMax, RK_MAX, 18)
REDUCE(ReduceMin, RK_MIN, 18)
REDUCE(ReduceL1, RK_L1, 18)
REDUCE(ReduceL2, RK_L2, 18)
REDUCE(ReduceSumSquare, RK_SUMSQ, 18)
REDUCE(ReduceLogSum, RK_LOGSUM, 18)
REDUCE(ReduceLogSumExp, RK_LOGSUMEXP, 18)

/*
 * ArgMax / ArgMin along `axis` (int64 output). Ties pick the first index, or
 * the last with select_last_index=1; a NaN beats every number (numpy). The
 * input is read one contiguous slab of `inner` elements at a time.
 */
static enum qt_status arg_drv(const struct qt_op_args *a, int is_max)
{
	const struct qt_tensor *x = qt_op_in(a, 0);
	char s1[96];
	if (a->n_out < 1)
		return qt_op_error(a, QT_E_FORMAT, "has no output");
	if (!x)
		return qt_op_error(a, QT_E_FORMAT, "input 0 is missing");
	if (!is_reducible(x->dtype))
		return qt_op_error(a, QT_E_UNSUPPORTED, "input dtype %s is not supported", qt_dtype_name(x->dtype));
	int64_t axis_attr = qt_node_attr_int(a->node, "axis", 0);
	int ax = qt_norm_axis(axis_attr, x->rank);
	if (ax < 0)
		return qt_op_error(a, QT_E_FORMAT, "axis %lld is out of range for input %s", (long long)axis_attr,
				   qt_shape_str(s1, sizeof s1, x->rank, x->dims));
	int keep = qt_node_attr_int(a->node, "keepdims", 1) != 0;
	int last = qt_node_attr_int(a->node, "select_last_index", 0) != 0;
	int64_t outer = 1, inner = 1, n = x->dims[ax];
	int orank = 0;
	int64_t odims[QT_MAX_RANK];
	for (int d = 0; d < x->rank; d++) {
		if (d < ax)
			outer *= x->dims[d];
		if (d > ax)
			inner *= x->dims[d];
		if (d != ax || keep)
			odims[orank++] = d == ax ? 1 : x->dims[d];
	}
	if (n == 0)
		return qt_op_error(a, QT_E_FORMAT, "axis %d of input %s is empty", ax,
				   qt_shape_str(s1, sizeof s1, x->rank, x->dims));
	struct qt_tensor *out = &a->out[0];
	enum qt_status st = qt_tensor_alloc(out, QT_DTYPE_I64, orank, odims);
	if (st) {
		char lbl[256];
		return qt_error_prefix(st, "%s", qt_node_label(a->g, a->node, lbl, sizeof lbl));
	}
	if (outer * inner == 0)
		return QT_OK;
	int ints = is_int_in(x->dtype);
	double *bd = NULL, *vd = NULL;
	int64_t *bi = NULL, *vi = NULL;
	if (ints) {
		bi = malloc((size_t)inner * sizeof *bi);
		vi = malloc((size_t)inner * sizeof *vi);
	} else {
		bd = malloc((size_t)inner * sizeof *bd);
		vd = malloc((size_t)inner * sizeof *vd);
	}
	if (!(ints ? bi && vi : bd && vd)) {
		free(bd), free(vd), free(bi), free(vi);
		qt_tensor_free(out);
		return qt_op_error(a, QT_E_NOMEM, "out of memory");
	}
	int64_t *res = out->data;
	for (int64_t o = 0; o < outer; o++) {
		int64_t *r = res + o * inner;
		int64_t base = o * n * inner;
		if (ints)
			load_i(x, base, inner, bi);
		else
			load_d(x, base, inner, bd);
		for (int64_t i = 0; i < inner; i++)
			r[i] = 0;
		for (int64_t k = 1; k < n; k++) {
			if (ints) {
				load_i(x, base + k * inner, inner, vi);
				for (int64_t i = 0; i < inner; i++) {
					int64_t v = vi[i], b = bi[i];
					if ((is_max ? v > b : v < b) || (last && v == b)) {
						bi[i] = v;
						r[i] = k;
					}
				}
			} else {
				load_d(x, base + k * inner, inner, vd);
				for (int64_t i = 0; i < inner; i++) {
					double v = vd[i], b = bd[i];
					int better = (is_max ? v > b : v < b) || (v != v && b == b);
					int tie = v == b || (v != v && b != b);
					if (better || (last && tie)) {
						bd[i] = v;
						r[i] = k;
					}
				}
			}
		}
	}
	free(bd), free(vd), free(bi), free(vi);
	return QT_OK;
}

static enum qt_status op_ArgMax(const struct qt_op_args *a)
{
	return arg_drv(a, 1);
}

static enum qt_status op_ArgMin(const struct qt_op_args *a)
{
	return arg_drv(a, 0);
}

/* Registry table (declared in ops.h): every version of these ops is handled. */
const struct qt_op_entry qt_ops_reduce[] = {
	{"ReduceSum", 1, op_ReduceSum},
	{"ReduceMean", 1, op_ReduceMean},
	{"ReduceProd", 1, op_ReduceProd},
	{"ReduceMax", 1, op_ReduceMax},
	{"ReduceMin", 1, op_ReduceMin},
	{"ReduceL1", 1, op_ReduceL1},
	{"ReduceL2", 1, op_ReduceL2},
	{"ReduceSumSquare", 1, op_ReduceSumSquare},
	{"ReduceLogSum", 1, op_ReduceLogSum},
	{"ReduceLogSumExp", 1, op_ReduceLogSumExp},
	{"ArgMax", 1, op_ArgMax},
	{"ArgMin", 1, op_ArgMin},
	{NULL, 0, NULL},
};
