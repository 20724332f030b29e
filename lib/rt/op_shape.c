/*
 * Shape and data-movement kernels (see ops.h for the contract).
 *
 * These ops move elements without looking at them, so one kernel serves every
 * dtype whose element is a whole number of bytes: it copies `es`-byte
 * elements. The pure metadata ops (Identity, Reshape, Flatten, Squeeze,
 * Unsqueeze) also pass packed sub-byte types through, since their bytes do
 * not move.
 *
 * Layout changes share two helpers instead of near-copies:
 *  - copy_strided: a box copy where source and destination each have their
 *    own element strides (Transpose, Slice, Expand, Tile, Concat, Split,
 *    DepthToSpace, SpaceToDepth);
 *  - gather_mapped: a copy through one index table per axis, -1 meaning
 *    "write the fill element" (Pad, nearest Resize/Upsample).
 *
 * Float arithmetic appears only in linear and cubic Resize/Upsample
 * (coordinates, tap weights and the weighted sums in float, per the ONNX
 * formulas) and in Range of float dtypes.
 * Every size product is checked for overflow and every index against its
 * axis before it addresses memory.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

#define MAXR QT_MAX_RANK
/* copy_strided views: Tile splits every axis in two. */
#define MAX_VIEW (2 * QT_MAX_RANK)
/* Most outputs a Split may have (the executor allows 16). */
#define MAX_SPLIT 64

/* ---------------------------------------------------------------- helpers */

static enum qt_status need_in(const struct qt_op_args *a, int i, const char *what, const struct qt_tensor **t_out)
{
	*t_out = qt_op_in(a, i);
	if (!*t_out)
		return qt_op_error(a, QT_E_FORMAT, "required input %d (%s) is missing", i, what);
	return QT_OK;
}

/* Optional input i, treating an empty tensor like an omitted one (ONNX models use both). */
static const struct qt_tensor *opt_in(const struct qt_op_args *a, int i)
{
	const struct qt_tensor *t = qt_op_in(a, i);
	return (t && qt_tensor_numel(t) > 0) ? t : NULL;
}

/* Element size in bytes; refuses string and packed sub-byte dtypes. */
static enum qt_status elem_size(const struct qt_op_args *a, const struct qt_tensor *t, const char *what, size_t *es_out)
{
	int bits = qt_dtype_bits(t->dtype);
	if (bits == 0 || bits % 8 != 0)
		return qt_op_error(a, QT_E_UNSUPPORTED, "%s has dtype %s, which this op does not support", what,
				   qt_dtype_name(t->dtype));
	*es_out = (size_t)bits / 8;
	return QT_OK;
}

static int is_float_dtype(enum qt_dtype dt)
{
	return dt == QT_DTYPE_F32 || dt == QT_DTYPE_F64 || dt == QT_DTYPE_F16;
}

static int is_numeric_dtype(enum qt_dtype dt)
{
	return is_float_dtype(dt) || dt == QT_DTYPE_I64 || dt == QT_DTYPE_I32 || dt == QT_DTYPE_I16 ||
	       dt == QT_DTYPE_I8 || dt == QT_DTYPE_U8 || dt == QT_DTYPE_U16 || dt == QT_DTYPE_U32 ||
	       dt == QT_DTYPE_U64 || dt == QT_DTYPE_BOOL;
}

/* Allocate output i, adding the node label to an allocation failure. */
static enum qt_status alloc_out(const struct qt_op_args *a, int i, enum qt_dtype dt, int rank, const int64_t *dims)
{
	if (i >= a->n_out)
		return qt_op_error(a, QT_E_FORMAT, "output %d is missing", i);
	enum qt_status st = qt_tensor_alloc(&a->out[i], dt, rank, dims);
	if (st) {
		char m[512];
		snprintf(m, sizeof m, "%s", qt_error_msg());
		return qt_op_error(a, st, "output %d: %s", i, m);
	}
	return QT_OK;
}

/* Row-major element strides of shape (r, d). */
static void strides_of(int r, const int64_t *d, int64_t *s)
{
	int64_t acc = 1;
	for (int i = r - 1; i >= 0; i--) {
		s[i] = acc;
		/* Wraps only for zero-size tensors, whose strides are never applied. */
		(void)__builtin_mul_overflow(acc, d[i], &acc);
	}
}

/*
 * Product of n dims, saturating at INT64_MAX: a zero-size tensor may carry
 * huge other dims, and a saturated count is only ever used where another
 * factor is 0 or where the caller checks it.
 */
static int64_t prod(int n, const int64_t *d)
{
	int64_t p = 1;
	for (int i = 0; i < n; i++)
		if (__builtin_mul_overflow(p, d[i], &p))
			return INT64_MAX;
	return p;
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

#define SHAPE(buf, r, d) qt_shape_str(buf, sizeof buf, r, d)

/* n elements of es bytes from src (stride ss) to dst (stride ds); strides in elements. */
static void copy_elems(char *dst, int64_t ds, const char *src, int64_t ss, int64_t n, size_t es)
{
	if (ds == 1 && ss == 1) {
		memcpy(dst, src, (size_t)n * es);
		return;
	}
	ptrdiff_t db = (ptrdiff_t)(ds * (int64_t)es), sb = (ptrdiff_t)(ss * (int64_t)es);
	switch (es) {
	case 1:
		for (int64_t i = 0; i < n; i++, dst += db, src += sb)
			*dst = *src;
		break;
	case 2:
		for (int64_t i = 0; i < n; i++, dst += db, src += sb)
			memcpy(dst, src, 2);
		break;
	case 4:
		for (int64_t i = 0; i < n; i++, dst += db, src += sb)
			memcpy(dst, src, 4);
		break;
	case 8:
		for (int64_t i = 0; i < n; i++, dst += db, src += sb)
			memcpy(dst, src, 8);
		break;
	default:
		for (int64_t i = 0; i < n; i++, dst += db, src += sb)
			memcpy(dst, src, es);
		break;
	}
}

/*
 * Copy the box `dims` (rank r <= MAX_VIEW) of es-byte elements. Element
 * (i0..ir-1) goes from src + sum(i_k * sstr[k]) to dst + sum(i_k * dstr[k]);
 * strides are in elements and may be 0 (broadcast) or negative (reversed
 * Slice). Axes of size 1 are dropped and contiguous neighbours merged, so
 * the inner loop is as long as possible (one memcpy for plain copies).
 */
static void copy_strided(int r, const int64_t *dims, size_t es, void *dst, const int64_t *dstr, const void *src,
			 const int64_t *sstr)
{
	int64_t d[MAX_VIEW], ds[MAX_VIEW], ss[MAX_VIEW], idx[MAX_VIEW];
	int n = 0;
	for (int i = 0; i < r; i++) {
		if (dims[i] == 0)
			return;
		if (dims[i] == 1)
			continue;
		if (n > 0 && ds[n - 1] == dims[i] * dstr[i] && ss[n - 1] == dims[i] * sstr[i]) {
			d[n - 1] *= dims[i];
			ds[n - 1] = dstr[i];
			ss[n - 1] = sstr[i];
		} else {
			d[n] = dims[i];
			ds[n] = dstr[i];
			ss[n] = sstr[i];
			n++;
		}
	}
	char *db = dst;
	const char *sb = src;
	if (n == 0) {
		memcpy(db, sb, es);
		return;
	}
	memset(idx, 0, sizeof idx);
	int64_t doff = 0, soff = 0;
	for (;;) {
		copy_elems(db + doff * (int64_t)es, ds[n - 1], sb + soff * (int64_t)es, ss[n - 1], d[n - 1], es);
		int k;
		for (k = n - 2; k >= 0; k--) {
			idx[k]++;
			doff += ds[k];
			soff += ss[k];
			if (idx[k] < d[k])
				break;
			doff -= ds[k] * d[k];
			soff -= ss[k] * d[k];
			idx[k] = 0;
		}
		if (k < 0)
			break;
	}
}

/*
 * Fill dst (shape odims, rank r, contiguous) from src through per-axis index
 * tables: output index o_k on axis k reads source index maps[k][o_k] (maps[k]
 * NULL means o_k itself); -1 on any axis writes the es-byte `fill` element.
 * istr are the source's element strides.
 */
static void gather_mapped(int r, const int64_t *odims, const int64_t *const *maps, const int64_t *istr, size_t es,
			  void *dst, const void *src, const void *fill)
{
	char *o = dst;
	const char *s = src;
	if (r == 0) {
		memcpy(o, s, es);
		return;
	}
	if (prod(r, odims) == 0)
		return;
	int64_t idx[MAXR] = {0};
	int64_t n = odims[r - 1];
	const int64_t *last = maps[r - 1];
	for (;;) {
		int64_t base = 0;
		int outside = 0;
		for (int k = 0; k < r - 1; k++) {
			int64_t m = maps[k] ? maps[k][idx[k]] : idx[k];
			if (m < 0)
				outside = 1;
			else
				base += m * istr[k];
		}
		for (int64_t j = 0; j < n; j++, o += es) {
			int64_t m = last ? last[j] : j;
			if (outside || m < 0)
				memcpy(o, fill, es);
			else
				memcpy(o, s + (base + m * istr[r - 1]) * (int64_t)es, es);
		}
		int k;
		for (k = r - 2; k >= 0; k--) {
			if (++idx[k] < odims[k])
				break;
			idx[k] = 0;
		}
		if (k < 0)
			break;
	}
}

/* Output 0 = x's bytes under a new shape (same element count). */
static enum qt_status copy_reshaped(const struct qt_op_args *a, const struct qt_tensor *x, int rank, const int64_t *dims)
{
	if (qt_dtype_bits(x->dtype) == 0)
		return qt_op_error(a, QT_E_UNSUPPORTED, "input has dtype %s, which this op does not support",
				   qt_dtype_name(x->dtype));
	enum qt_status st = alloc_out(a, 0, x->dtype, rank, dims);
	if (st)
		return st;
	if (a->out[0].nbytes)
		memcpy(a->out[0].data, x->data, a->out[0].nbytes);
	return QT_OK;
}

/*
 * Integer list from an attribute (when `attr` is non-NULL and present) or
 * else from input `in` (when >= 0 and present, empty counting as absent).
 * Returns the count, -2 when neither is there, or -1 after an error.
 */
static int ints_from(const struct qt_op_args *a, const char *attr, int in, const char *what, int64_t *vals, int cap)
{
	if (attr && qt_node_attr(a->node, attr)) {
		const int64_t *v;
		int n = qt_node_attr_ints(a->node, attr, &v);
		if (n > cap) {
			qt_op_error(a, QT_E_FORMAT, "attribute %s has %d elements, more than %d", attr, n, cap);
			return -1;
		}
		for (int i = 0; i < n; i++)
			vals[i] = v[i];
		return n;
	}
	if (in >= 0 && qt_op_in(a, in))
		return qt_op_read_ints(a, qt_op_in(a, in), what, vals, cap);
	return -2;
}

/*
 * Normalise n axes against `rank` into mark[] (1 per chosen axis). Reports
 * out-of-range and repeated axes.
 */
static enum qt_status mark_axes(const struct qt_op_args *a, const int64_t *axes, int n, int rank, const char *what,
				int *mark)
{
	for (int i = 0; i < rank; i++)
		mark[i] = 0;
	for (int i = 0; i < n; i++) {
		int ax = qt_norm_axis(axes[i], rank);
		if (ax < 0)
			return qt_op_error(a, QT_E_FORMAT, "%s: axis %lld out of range for rank %d", what,
					   (long long)axes[i], rank);
		if (mark[ax])
			return qt_op_error(a, QT_E_FORMAT, "%s: axis %lld is repeated", what, (long long)axes[i]);
		mark[ax] = 1;
	}
	return QT_OK;
}

/* --------------------------------------------------- metadata-only ops */

/* Identity: a copy (the input may be freed before the output's consumers run). */
static enum qt_status op_identity(const struct qt_op_args *a)
{
	const struct qt_tensor *x;
	enum qt_status st = need_in(a, 0, "input", &x);
	if (st)
		return st;
	return copy_reshaped(a, x, x->rank, x->dims);
}

/*
 * Constant: the `value` tensor, or value_float / value_floats (float32) or
 * value_int / value_ints (int64). String and sparse values are refused.
 */
static enum qt_status op_constant(const struct qt_op_args *a)
{
	const struct qt_attr *at;
	enum qt_status st;
	if ((at = qt_node_attr(a->node, "value"))) {
		if (at->type != QT_ATTR_TENSOR || !at->t)
			return qt_op_error(a, QT_E_FORMAT, "attribute value must be a tensor");
		if (qt_dtype_bits(at->t->dtype) == 0)
			return qt_op_error(a, QT_E_UNSUPPORTED, "constant of dtype %s is not supported",
					   qt_dtype_name(at->t->dtype));
		return copy_reshaped(a, at->t, at->t->rank, at->t->dims);
	}
	if ((at = qt_node_attr(a->node, "value_float")) || (at = qt_node_attr(a->node, "value_floats"))) {
		int scalar = at->type == QT_ATTR_FLOAT;
		if (!scalar && at->type != QT_ATTR_FLOATS)
			return qt_op_error(a, QT_E_FORMAT, "attribute %s has the wrong type", at->name);
		int64_t n = scalar ? 1 : at->n;
		if ((st = alloc_out(a, 0, QT_DTYPE_F32, scalar ? 0 : 1, &n)))
			return st;
		if (scalar)
			((float *)a->out[0].data)[0] = at->f;
		else if (n)
			memcpy(a->out[0].data, at->floats, (size_t)n * sizeof(float));
		return QT_OK;
	}
	if ((at = qt_node_attr(a->node, "value_int")) || (at = qt_node_attr(a->node, "value_ints"))) {
		int scalar = at->type == QT_ATTR_INT;
		if (!scalar && at->type != QT_ATTR_INTS)
			return qt_op_error(a, QT_E_FORMAT, "attribute %s has the wrong type", at->name);
		int64_t n = scalar ? 1 : at->n;
		if ((st = alloc_out(a, 0, QT_DTYPE_I64, scalar ? 0 : 1, &n)))
			return st;
		if (scalar)
			((int64_t *)a->out[0].data)[0] = at->i;
		else if (n)
			memcpy(a->out[0].data, at->ints, (size_t)n * sizeof(int64_t));
		return QT_OK;
	}
	if (qt_node_attr(a->node, "value_string") || qt_node_attr(a->node, "value_strings") ||
	    qt_node_attr(a->node, "sparse_value"))
		return qt_op_error(a, QT_E_UNSUPPORTED, "string and sparse constants are not supported");
	return qt_op_error(a, QT_E_FORMAT, "Constant has no value attribute");
}

/*
 * Reshape: opset < 5 reads the `shape` attribute, later the shape input.
 * 0 copies the input's dim at that position (unless allowzero=1, opset 14),
 * one -1 is inferred from the element count.
 */
static enum qt_status op_reshape(const struct qt_op_args *a)
{
	const struct qt_tensor *x;
	enum qt_status st = need_in(a, 0, "data", &x);
	if (st)
		return st;
	int64_t shape[MAXR], dims[MAXR];
	int n;
	if (a->opset < 5) {
		n = ints_from(a, "shape", -1, "shape", shape, MAXR);
		if (n == -2)
			return qt_op_error(a, QT_E_FORMAT, "attribute shape is missing");
	} else {
		n = qt_op_read_ints(a, qt_op_in(a, 1), "shape", shape, MAXR);
	}
	if (n < 0)
		return QT_E_FORMAT;
	int allowzero = qt_node_attr_int(a->node, "allowzero", 0) != 0;
	int64_t numel = qt_tensor_numel(x), known = 1;
	int infer = -1, has_zero = 0;
	char s1[128], s2[128];
	for (int i = 0; i < n; i++) {
		int64_t v = shape[i];
		if (v == -1) {
			if (infer >= 0)
				return qt_op_error(a, QT_E_FORMAT, "shape %s has more than one -1", SHAPE(s1, n, shape));
			infer = i;
			continue;
		}
		if (v < -1)
			return qt_op_error(a, QT_E_FORMAT, "shape %s: dim %d is %lld", SHAPE(s1, n, shape), i,
					   (long long)v);
		if (v == 0 && !allowzero) {
			if (i >= x->rank)
				return qt_op_error(a, QT_E_FORMAT,
						   "shape %s: 0 at position %d copies an input dim, but the input %s has rank %d",
						   SHAPE(s1, n, shape), i, SHAPE(s2, x->rank, x->dims), x->rank);
			v = x->dims[i];
		}
		if (v == 0)
			has_zero = 1;
		dims[i] = v;
		if (__builtin_mul_overflow(known, v, &known))
			return qt_op_error(a, QT_E_FORMAT, "shape %s overflows", SHAPE(s1, n, shape));
	}
	if (infer >= 0) {
		if (allowzero && has_zero)
			return qt_op_error(a, QT_E_FORMAT, "shape %s has both -1 and 0 with allowzero=1",
					   SHAPE(s1, n, shape));
		if (known == 0 || numel % known != 0)
			return qt_op_error(a, QT_E_FORMAT, "cannot reshape %s (%lld elements) to %s",
					   SHAPE(s1, x->rank, x->dims), (long long)numel, SHAPE(s2, n, shape));
		dims[infer] = numel / known;
		known = numel;
	}
	if (known != numel)
		return qt_op_error(a, QT_E_FORMAT, "cannot reshape %s (%lld elements) to %s",
				   SHAPE(s1, x->rank, x->dims), (long long)numel, SHAPE(s2, n, shape));
	return copy_reshaped(a, x, n, dims);
}

/* Flatten: [prod(dims[:axis]), prod(dims[axis:])], axis in [-rank, rank]. */
static enum qt_status op_flatten(const struct qt_op_args *a)
{
	const struct qt_tensor *x;
	enum qt_status st = need_in(a, 0, "input", &x);
	if (st)
		return st;
	int64_t axis = qt_node_attr_int(a->node, "axis", 1);
	if (axis < -x->rank || axis > x->rank)
		return qt_op_error(a, QT_E_FORMAT, "axis %lld out of range for rank %d", (long long)axis, x->rank);
	if (axis < 0)
		axis += x->rank;
	int64_t dims[2] = {prod((int)axis, x->dims), prod(x->rank - (int)axis, x->dims + axis)};
	char s1[128];
	if (dims[0] == INT64_MAX || dims[1] == INT64_MAX)
		return qt_op_error(a, QT_E_FORMAT, "flattening %s at axis %lld overflows", SHAPE(s1, x->rank, x->dims),
				   (long long)axis);
	return copy_reshaped(a, x, 2, dims);
}

/* Squeeze: axes from the attribute (opset < 13) or input 1; none removes every 1. */
static enum qt_status op_squeeze(const struct qt_op_args *a)
{
	const struct qt_tensor *x;
	enum qt_status st = need_in(a, 0, "data", &x);
	if (st)
		return st;
	int64_t axes[MAXR], dims[MAXR];
	int mark[MAXR];
	int n = a->opset < 13 ? ints_from(a, "axes", -1, "axes", axes, MAXR)
			      : (opt_in(a, 1) ? ints_from(a, NULL, 1, "axes", axes, MAXR) : -2);
	if (n == -1)
		return QT_E_FORMAT;
	char s1[128];
	if (n <= 0) {
		for (int i = 0; i < x->rank; i++)
			mark[i] = x->dims[i] == 1;
	} else {
		if ((st = mark_axes(a, axes, n, x->rank, "axes", mark)))
			return st;
		for (int i = 0; i < x->rank; i++)
			if (mark[i] && x->dims[i] != 1)
				return qt_op_error(a, QT_E_FORMAT, "cannot squeeze axis %d of size %lld in %s", i,
						   (long long)x->dims[i], SHAPE(s1, x->rank, x->dims));
	}
	int r = 0;
	for (int i = 0; i < x->rank; i++)
		if (!mark[i])
			dims[r++] = x->dims[i];
	return copy_reshaped(a, x, r, dims);
}

/* Unsqueeze: insert 1s at `axes` (attribute before opset 13, then input 1), normalised against the output rank. */
static enum qt_status op_unsqueeze(const struct qt_op_args *a)
{
	const struct qt_tensor *x;
	enum qt_status st = need_in(a, 0, "data", &x);
	if (st)
		return st;
	int64_t axes[MAXR], dims[MAXR];
	int mark[MAXR];
	int n = a->opset < 13 ? ints_from(a, "axes", -1, "axes", axes, MAXR) : ints_from(a, NULL, 1, "axes", axes, MAXR);
	if (n == -1)
		return QT_E_FORMAT;
	if (n == -2)
		return qt_op_error(a, QT_E_FORMAT, "axes are missing");
	int r = x->rank + n;
	if (r > MAXR)
		return qt_op_error(a, QT_E_UNSUPPORTED, "output rank %d exceeds %d", r, MAXR);
	if ((st = mark_axes(a, axes, n, r, "axes", mark)))
		return st;
	for (int i = 0, j = 0; i < r; i++)
		dims[i] = mark[i] ? 1 : x->dims[j++];
	return copy_reshaped(a, x, r, dims);
}

/* ------------------------------------------------------------ layout ops */

/* Transpose: perm (default reversed) must be a permutation of 0..rank-1. */
static enum qt_status op_transpose(const struct qt_op_args *a)
{
	const struct qt_tensor *x;
	size_t es;
	enum qt_status st = need_in(a, 0, "data", &x);
	if (st || (st = elem_size(a, x, "data", &es)))
		return st;
	int r = x->rank;
	int64_t perm[MAXR], dims[MAXR], istr[MAXR], sstr[MAXR], ostr[MAXR];
	int seen[MAXR] = {0};
	char s1[128];
	int n = ints_from(a, "perm", -1, "perm", perm, MAXR);
	if (n == -1)
		return QT_E_FORMAT;
	if (n == -2) {
		n = r;
		for (int i = 0; i < r; i++)
			perm[i] = r - 1 - i;
	}
	if (n != r)
		return qt_op_error(a, QT_E_FORMAT, "perm %s has %d entries for an input of rank %d",
				   SHAPE(s1, n, perm), n, r);
	for (int i = 0; i < r; i++) {
		if (perm[i] < 0 || perm[i] >= r || seen[perm[i]])
			return qt_op_error(a, QT_E_FORMAT, "perm %s is not a permutation of 0..%d",
					   SHAPE(s1, n, perm), r - 1);
		seen[perm[i]] = 1;
	}
	strides_of(r, x->dims, istr);
	for (int i = 0; i < r; i++) {
		dims[i] = x->dims[perm[i]];
		sstr[i] = istr[perm[i]];
	}
	if ((st = alloc_out(a, 0, x->dtype, r, dims)))
		return st;
	strides_of(r, dims, ostr);
	copy_strided(r, dims, es, a->out[0].data, ostr, x->data, sstr);
	return QT_OK;
}

/* Concat: every input has the same dtype, rank and dims except along axis (default 1 before opset 4). */
static enum qt_status op_concat(const struct qt_op_args *a)
{
	const struct qt_tensor *x0;
	size_t es;
	enum qt_status st = need_in(a, 0, "inputs", &x0);
	if (st || (st = elem_size(a, x0, "input 0", &es)))
		return st;
	const struct qt_attr *at = qt_node_attr(a->node, "axis");
	if (!at && a->opset >= 4)
		return qt_op_error(a, QT_E_FORMAT, "attribute axis is missing");
	int64_t axis_v = at ? at->i : 1;
	int r = x0->rank;
	if (r == 0)
		return qt_op_error(a, QT_E_FORMAT, "cannot concatenate scalars");
	int axis = qt_norm_axis(axis_v, r);
	if (axis < 0)
		return qt_op_error(a, QT_E_FORMAT, "axis %lld out of range for rank %d", (long long)axis_v, r);
	int64_t dims[MAXR], ostr[MAXR], istr[MAXR];
	char s1[128], s2[128];
	memcpy(dims, x0->dims, sizeof(int64_t) * (size_t)r);
	dims[axis] = 0;
	for (int i = 0; i < a->n_in; i++) {
		const struct qt_tensor *x = a->in[i];
		if (!x)
			return qt_op_error(a, QT_E_FORMAT, "input %d is missing", i);
		if (x->dtype != x0->dtype)
			return qt_op_error(a, QT_E_FORMAT, "input %d is %s but input 0 is %s", i,
					   qt_dtype_name(x->dtype), qt_dtype_name(x0->dtype));
		int same = x->rank == r;
		for (int d = 0; same && d < r; d++)
			same = d == axis || x->dims[d] == x0->dims[d];
		if (!same)
			return qt_op_error(a, QT_E_FORMAT, "input %d %s does not match input 0 %s except on axis %d", i,
					   SHAPE(s1, x->rank, x->dims), SHAPE(s2, r, x0->dims), axis);
		if (__builtin_add_overflow(dims[axis], x->dims[axis], &dims[axis]))
			return qt_op_error(a, QT_E_FORMAT, "concatenated axis %d overflows", axis);
	}
	if ((st = alloc_out(a, 0, x0->dtype, r, dims)))
		return st;
	strides_of(r, dims, ostr);
	int64_t off = 0;
	for (int i = 0; i < a->n_in; i++) {
		const struct qt_tensor *x = a->in[i];
		strides_of(r, x->dims, istr);
		if (qt_tensor_numel(x) > 0)
			copy_strided(r, x->dims, es, (char *)a->out[0].data + off * ostr[axis] * (int64_t)es, ostr,
				     x->data, istr);
		off += x->dims[axis];
	}
	return QT_OK;
}

/*
 * Split along axis into n_out parts: sizes from input 1 (or the `split`
 * attribute before opset 13); otherwise equal parts, or at opset 18 chunks
 * of ceil(dim / num_outputs) with a smaller last one.
 */
static enum qt_status op_split(const struct qt_op_args *a)
{
	const struct qt_tensor *x;
	size_t es;
	enum qt_status st = need_in(a, 0, "input", &x);
	if (st || (st = elem_size(a, x, "input", &es)))
		return st;
	int r = x->rank, nout = a->n_out;
	int64_t axis_v = qt_node_attr_int(a->node, "axis", 0);
	int axis = qt_norm_axis(axis_v, r);
	if (axis < 0)
		return qt_op_error(a, QT_E_FORMAT, "axis %lld out of range for rank %d", (long long)axis_v, r);
	if (nout < 1 || nout > MAX_SPLIT)
		return qt_op_error(a, QT_E_UNSUPPORTED, "%d outputs; 1..%d are supported", nout, MAX_SPLIT);
	int64_t sizes[MAX_SPLIT], dim = x->dims[axis];
	int n;
	if (opt_in(a, 1))
		n = qt_op_read_ints(a, qt_op_in(a, 1), "split", sizes, MAX_SPLIT);
	else
		n = a->opset < 13 ? ints_from(a, "split", -1, "split", sizes, MAX_SPLIT) : -2;
	if (n == -1)
		return QT_E_FORMAT;
	const struct qt_attr *num = qt_node_attr(a->node, "num_outputs");
	if (num && n >= 0)
		return qt_op_error(a, QT_E_FORMAT, "split sizes and num_outputs are both given");
	if (num && num->i != nout)
		return qt_op_error(a, QT_E_FORMAT, "num_outputs is %lld but the node has %d outputs",
				   (long long)num->i, nout);
	if (n >= 0) {
		if (n != nout)
			return qt_op_error(a, QT_E_FORMAT, "split has %d sizes for %d outputs", n, nout);
		int64_t sum = 0;
		for (int i = 0; i < n; i++) {
			if (sizes[i] < 0 || __builtin_add_overflow(sum, sizes[i], &sum))
				return qt_op_error(a, QT_E_FORMAT, "split size %lld is invalid", (long long)sizes[i]);
		}
		if (sum != dim)
			return qt_op_error(a, QT_E_FORMAT, "split sizes add up to %lld, but axis %d has size %lld",
					   (long long)sum, axis, (long long)dim);
	} else if (a->opset >= 18) {
		int64_t chunk = dim / nout + (dim % nout != 0);
		if (chunk * (nout - 1) > dim)
			return qt_op_error(a, QT_E_FORMAT, "cannot split axis %d of size %lld into %d chunks", axis,
					   (long long)dim, nout);
		for (int i = 0; i < nout; i++)
			sizes[i] = i < nout - 1 ? chunk : dim - chunk * (nout - 1);
	} else {
		if (dim % nout != 0)
			return qt_op_error(a, QT_E_FORMAT, "cannot split axis %d of size %lld into %d equal parts", axis,
					   (long long)dim, nout);
		for (int i = 0; i < nout; i++)
			sizes[i] = dim / nout;
	}
	int64_t istr[MAXR], ostr[MAXR], dims[MAXR];
	strides_of(r, x->dims, istr);
	memcpy(dims, x->dims, sizeof(int64_t) * (size_t)r);
	int64_t off = 0;
	for (int i = 0; i < nout; i++) {
		dims[axis] = sizes[i];
		if ((st = alloc_out(a, i, x->dtype, r, dims)))
			return st;
		strides_of(r, dims, ostr);
		if (qt_tensor_numel(&a->out[i]) > 0)
			copy_strided(r, dims, es, a->out[i].data, ostr,
				     (const char *)x->data + off * istr[axis] * (int64_t)es, istr);
		off += sizes[i];
	}
	return QT_OK;
}

/*
 * Slice: starts/ends/axes attributes before opset 10, then inputs starts,
 * ends, axes, steps. Negative positions count from the end; out-of-range
 * ones (INT64_MAX/MIN included) are clamped as the spec says: to [0, dim]
 * for positive steps and to [0, dim-1] / [-1, dim-1] for negative ones.
 */
static enum qt_status op_slice(const struct qt_op_args *a)
{
	const struct qt_tensor *x;
	size_t es;
	enum qt_status st = need_in(a, 0, "data", &x);
	if (st || (st = elem_size(a, x, "data", &es)))
		return st;
	int r = x->rank;
	int64_t starts[MAXR], ends[MAXR], axes[MAXR], steps[MAXR];
	int ns, ne, na, nst = -2;
	if (a->opset < 10) {
		ns = ints_from(a, "starts", -1, "starts", starts, MAXR);
		ne = ints_from(a, "ends", -1, "ends", ends, MAXR);
		na = ints_from(a, "axes", -1, "axes", axes, MAXR);
	} else {
		ns = qt_op_read_ints(a, qt_op_in(a, 1), "starts", starts, MAXR);
		ne = ns < 0 ? -1 : qt_op_read_ints(a, qt_op_in(a, 2), "ends", ends, MAXR);
		na = ne < 0 ? -1 : ints_from(a, NULL, 3, "axes", axes, MAXR);
		nst = na == -1 ? -1 : ints_from(a, NULL, 4, "steps", steps, MAXR);
	}
	if (ns == -1 || ne == -1 || na == -1 || nst == -1)
		return QT_E_FORMAT;
	if (ns == -2 || ne == -2)
		return qt_op_error(a, QT_E_FORMAT, "starts or ends are missing");
	if (ns != ne || (na >= 0 && na != ns) || (nst >= 0 && nst != ns))
		return qt_op_error(a, QT_E_FORMAT, "starts, ends, axes and steps have different lengths (%d, %d, %d, %d)",
				   ns, ne, na, nst);
	if (na < 0)
		for (int i = 0; i < ns; i++)
			axes[i] = i;
	int mark[MAXR];
	if ((st = mark_axes(a, axes, ns, r, "axes", mark)))
		return st;
	int64_t start[MAXR], step[MAXR], dims[MAXR];
	for (int d = 0; d < r; d++) {
		start[d] = 0;
		step[d] = 1;
		dims[d] = x->dims[d];
	}
	for (int k = 0; k < ns; k++) {
		int d = qt_norm_axis(axes[k], r);
		int64_t dim = x->dims[d], s = starts[k], e = ends[k], sp = nst >= 0 ? steps[k] : 1, n;
		if (sp == 0)
			return qt_op_error(a, QT_E_FORMAT, "steps[%d] is 0", k);
		if (s < 0)
			s += dim;
		if (e < 0)
			e += dim;
		if (dim == 0) {
			s = 0;
			n = 0;
		} else if (sp > 0) {
			s = clamp64(s, 0, dim);
			e = clamp64(e, 0, dim);
			n = e > s ? (e - s - 1) / sp + 1 : 0;
		} else {
			int64_t asp = sp == INT64_MIN ? INT64_MAX : -sp;
			s = clamp64(s, 0, dim - 1);
			e = clamp64(e, -1, dim - 1);
			n = s > e ? (s - e - 1) / asp + 1 : 0;
		}
		start[d] = n > 0 ? s : 0;
		step[d] = n > 1 ? sp : 1; /* a huge step only matters when it is applied */
		dims[d] = n;
	}
	if ((st = alloc_out(a, 0, x->dtype, r, dims)))
		return st;
	if (qt_tensor_numel(&a->out[0]) == 0)
		return QT_OK;
	int64_t istr[MAXR], sstr[MAXR], ostr[MAXR], base = 0;
	strides_of(r, x->dims, istr);
	strides_of(r, dims, ostr);
	for (int d = 0; d < r; d++) {
		sstr[d] = istr[d] * step[d];
		base += start[d] * istr[d];
	}
	copy_strided(r, dims, es, a->out[0].data, ostr, (const char *)x->data + base * (int64_t)es, sstr);
	return QT_OK;
}

/* Element i of an int32/int64 tensor. */
static int64_t get_index(const struct qt_tensor *t, int64_t i)
{
	return t->dtype == QT_DTYPE_I64 ? ((const int64_t *)t->data)[i] : ((const int32_t *)t->data)[i];
}

static enum qt_status need_index_tensor(const struct qt_op_args *a, const struct qt_tensor *t)
{
	if (t->dtype != QT_DTYPE_I64 && t->dtype != QT_DTYPE_I32)
		return qt_op_error(a, QT_E_FORMAT, "indices must be int64 or int32, not %s", qt_dtype_name(t->dtype));
	return QT_OK;
}

/*
 * Gather: out = data[:axis] + indices.shape + data[axis+1:]. Negative
 * indices count from the end; any index outside [-dim, dim) is an error.
 */
static enum qt_status op_gather(const struct qt_op_args *a)
{
	const struct qt_tensor *x, *ind;
	size_t es;
	enum qt_status st;
	if ((st = need_in(a, 0, "data", &x)) || (st = need_in(a, 1, "indices", &ind)) ||
	    (st = elem_size(a, x, "data", &es)) || (st = need_index_tensor(a, ind)))
		return st;
	int r = x->rank;
	if (r == 0)
		return qt_op_error(a, QT_E_FORMAT, "data must have rank >= 1");
	int64_t axis_v = qt_node_attr_int(a->node, "axis", 0);
	int axis = qt_norm_axis(axis_v, r);
	if (axis < 0)
		return qt_op_error(a, QT_E_FORMAT, "axis %lld out of range for rank %d", (long long)axis_v, r);
	int orank = r - 1 + ind->rank;
	if (orank > MAXR)
		return qt_op_error(a, QT_E_UNSUPPORTED, "output rank %d exceeds %d", orank, MAXR);
	int64_t dims[MAXR], dim = x->dims[axis], nidx = qt_tensor_numel(ind);
	for (int64_t k = 0; k < nidx; k++) {
		int64_t v = get_index(ind, k);
		if (v < -dim || v >= dim)
			return qt_op_error(a, QT_E_FORMAT, "index %lld (indices element %lld) out of range for axis %d of size %lld",
					   (long long)v, (long long)k, axis, (long long)dim);
	}
	int o = 0;
	for (int d = 0; d < axis; d++)
		dims[o++] = x->dims[d];
	for (int d = 0; d < ind->rank; d++)
		dims[o++] = ind->dims[d];
	for (int d = axis + 1; d < r; d++)
		dims[o++] = x->dims[d];
	if ((st = alloc_out(a, 0, x->dtype, orank, dims)))
		return st;
	int64_t outer = prod(axis, x->dims);
	size_t block = (size_t)prod(r - axis - 1, x->dims + axis + 1) * es;
	char *dst = a->out[0].data;
	const char *src = x->data;
	if (block == 0)
		return QT_OK;
	for (int64_t i = 0; i < outer; i++)
		for (int64_t k = 0; k < nidx; k++, dst += block) {
			int64_t v = get_index(ind, k);
			if (v < 0)
				v += dim;
			memcpy(dst, src + (size_t)(i * dim + v) * block, block);
		}
	return QT_OK;
}

/*
 * GatherElements: out has the shape of indices (same rank as data, no
 * larger on the other axes); out[i..] = data[i.. with axis -> indices[i..]].
 */
static enum qt_status op_gather_elements(const struct qt_op_args *a)
{
	const struct qt_tensor *x, *ind;
	size_t es;
	enum qt_status st;
	if ((st = need_in(a, 0, "data", &x)) || (st = need_in(a, 1, "indices", &ind)) ||
	    (st = elem_size(a, x, "data", &es)) || (st = need_index_tensor(a, ind)))
		return st;
	int r = x->rank;
	char s1[128], s2[128];
	if (r == 0 || ind->rank != r)
		return qt_op_error(a, QT_E_FORMAT, "data %s and indices %s must have the same rank >= 1",
				   SHAPE(s1, r, x->dims), SHAPE(s2, ind->rank, ind->dims));
	int64_t axis_v = qt_node_attr_int(a->node, "axis", 0);
	int axis = qt_norm_axis(axis_v, r);
	if (axis < 0)
		return qt_op_error(a, QT_E_FORMAT, "axis %lld out of range for rank %d", (long long)axis_v, r);
	for (int d = 0; d < r; d++)
		if (d != axis && ind->dims[d] > x->dims[d])
			return qt_op_error(a, QT_E_FORMAT, "indices %s exceed data %s on axis %d",
					   SHAPE(s1, r, ind->dims), SHAPE(s2, r, x->dims), d);
	int64_t n = qt_tensor_numel(ind), dim = x->dims[axis];
	for (int64_t k = 0; k < n; k++) {
		int64_t v = get_index(ind, k);
		if (v < -dim || v >= dim)
			return qt_op_error(a, QT_E_FORMAT, "index %lld (indices element %lld) out of range for axis %d of size %lld",
					   (long long)v, (long long)k, axis, (long long)dim);
	}
	if ((st = alloc_out(a, 0, x->dtype, r, ind->dims)))
		return st;
	int64_t istr[MAXR], idx[MAXR] = {0};
	strides_of(r, x->dims, istr);
	char *dst = a->out[0].data;
	const char *src = x->data;
	for (int64_t k = 0; k < n; k++, dst += es) {
		int64_t off = 0;
		for (int d = 0; d < r; d++) {
			int64_t v = idx[d];
			if (d == axis) {
				v = get_index(ind, k);
				if (v < 0)
					v += dim;
			}
			off += v * istr[d];
		}
		memcpy(dst, src + off * (int64_t)es, es);
		for (int d = r - 1; d >= 0; d--) {
			if (++idx[d] < ind->dims[d])
				break;
			idx[d] = 0;
		}
	}
	return QT_OK;
}

/* Expand: numpy-broadcast data against the shape input (either side may be 1). */
static enum qt_status op_expand(const struct qt_op_args *a)
{
	const struct qt_tensor *x;
	size_t es;
	enum qt_status st = need_in(a, 0, "input", &x);
	if (st || (st = elem_size(a, x, "input", &es)))
		return st;
	int64_t shape[MAXR], dims[MAXR], sstr[MAXR], ostr[MAXR];
	int n = qt_op_read_ints(a, qt_op_in(a, 1), "shape", shape, MAXR), r;
	if (n < 0)
		return QT_E_FORMAT;
	char s1[128], s2[128];
	for (int i = 0; i < n; i++)
		if (shape[i] < 0)
			return qt_op_error(a, QT_E_FORMAT, "shape %s has a negative dim", SHAPE(s1, n, shape));
	if (qt_broadcast_shape(x->rank, x->dims, n, shape, &r, dims) != 0)
		return qt_op_error(a, QT_E_FORMAT, "cannot expand %s to %s", SHAPE(s1, x->rank, x->dims),
				   SHAPE(s2, n, shape));
	if ((st = alloc_out(a, 0, x->dtype, r, dims)))
		return st;
	qt_broadcast_strides(x->rank, x->dims, r, dims, sstr);
	strides_of(r, dims, ostr);
	copy_strided(r, dims, es, a->out[0].data, ostr, x->data, sstr);
	return QT_OK;
}

/*
 * Tile: out dim i = dim i * repeats[i]. Seen as a 2*rank box
 * [rep0, d0, rep1, d1, ...] whose repeat axes have source stride 0.
 */
static enum qt_status op_tile(const struct qt_op_args *a)
{
	const struct qt_tensor *x;
	size_t es;
	enum qt_status st = need_in(a, 0, "input", &x);
	if (st || (st = elem_size(a, x, "input", &es)))
		return st;
	int r = x->rank;
	int64_t rep[MAXR], dims[MAXR], istr[MAXR], ostr[MAXR];
	int n = qt_op_read_ints(a, qt_op_in(a, 1), "repeats", rep, MAXR);
	if (n < 0)
		return QT_E_FORMAT;
	char s1[128];
	if (n != r)
		return qt_op_error(a, QT_E_FORMAT, "repeats has %d entries for an input of rank %d", n, r);
	for (int i = 0; i < r; i++)
		if (rep[i] < 0 || __builtin_mul_overflow(x->dims[i], rep[i], &dims[i]))
			return qt_op_error(a, QT_E_FORMAT, "repeats %s is invalid", SHAPE(s1, n, rep));
	if ((st = alloc_out(a, 0, x->dtype, r, dims)) || qt_tensor_numel(&a->out[0]) == 0)
		return st;
	strides_of(r, x->dims, istr);
	strides_of(r, dims, ostr);
	int64_t vd[MAX_VIEW], vs[MAX_VIEW], vo[MAX_VIEW];
	for (int i = 0; i < r; i++) {
		vd[2 * i] = rep[i];
		vs[2 * i] = 0;
		vo[2 * i] = x->dims[i] * ostr[i];
		vd[2 * i + 1] = x->dims[i];
		vs[2 * i + 1] = istr[i];
		vo[2 * i + 1] = ostr[i];
	}
	copy_strided(2 * r, vd, es, a->out[0].data, vo, x->data, vs);
	return QT_OK;
}

/*
 * The 4-D rearrangements: view the input as a 6-D box of shape vdims
 * (contiguous), then write it permuted by perm into output 0 of shape
 * (4, odims).
 */
static enum qt_status permute_view(const struct qt_op_args *a, const struct qt_tensor *x, size_t es, const int64_t *vdims,
				   const int *perm, const int64_t *odims)
{
	int64_t vstr[6], pd[6], ps[6], pstr[6];
	enum qt_status st = alloc_out(a, 0, x->dtype, 4, odims);
	if (st)
		return st;
	strides_of(6, vdims, vstr);
	for (int i = 0; i < 6; i++) {
		pd[i] = vdims[perm[i]];
		ps[i] = vstr[perm[i]];
	}
	strides_of(6, pd, pstr);
	copy_strided(6, pd, es, a->out[0].data, pstr, x->data, ps);
	return QT_OK;
}

static enum qt_status need_4d_block(const struct qt_op_args *a, const struct qt_tensor **x, size_t *es, int64_t *bs)
{
	enum qt_status st = need_in(a, 0, "input", x);
	char s1[128];
	if (st || (st = elem_size(a, *x, "input", es)))
		return st;
	if ((*x)->rank != 4)
		return qt_op_error(a, QT_E_FORMAT, "input must be 4-D, not %s", SHAPE(s1, (*x)->rank, (*x)->dims));
	*bs = qt_node_attr_int(a->node, "blocksize", 0);
	if (*bs <= 0 || *bs > (int64_t)1 << 20)
		return qt_op_error(a, QT_E_FORMAT, "blocksize %lld is invalid", (long long)*bs);
	return QT_OK;
}

/* DepthToSpace, modes DCR (default) and CRD. */
static enum qt_status op_depth_to_space(const struct qt_op_args *a)
{
	const struct qt_tensor *x;
	size_t es;
	int64_t bs;
	enum qt_status st = need_4d_block(a, &x, &es, &bs);
	if (st)
		return st;
	const char *mode = qt_node_attr_str(a->node, "mode", "DCR");
	int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3], od[4];
	char s1[128];
	if (C % (bs * bs) != 0)
		return qt_op_error(a, QT_E_FORMAT, "channels %lld of %s are not a multiple of blocksize^2 = %lld",
				   (long long)C, SHAPE(s1, 4, x->dims), (long long)(bs * bs));
	int64_t Co = C / (bs * bs);
	od[0] = N;
	od[1] = Co;
	if (__builtin_mul_overflow(H, bs, &od[2]) || __builtin_mul_overflow(W, bs, &od[3]))
		return qt_op_error(a, QT_E_FORMAT, "output of %s overflows", SHAPE(s1, 4, x->dims));
	if (strcmp(mode, "DCR") == 0) {
		int64_t v[6] = {N, bs, bs, Co, H, W};
		static const int perm[6] = {0, 3, 4, 1, 5, 2};
		return permute_view(a, x, es, v, perm, od);
	}
	if (strcmp(mode, "CRD") == 0) {
		int64_t v[6] = {N, Co, bs, bs, H, W};
		static const int perm[6] = {0, 1, 4, 2, 5, 3};
		return permute_view(a, x, es, v, perm, od);
	}
	return qt_op_error(a, QT_E_FORMAT, "mode \"%s\" must be DCR or CRD", mode);
}

/* SpaceToDepth: out channel (bh * bs + bw) * C + c. */
static enum qt_status op_space_to_depth(const struct qt_op_args *a)
{
	const struct qt_tensor *x;
	size_t es;
	int64_t bs;
	enum qt_status st = need_4d_block(a, &x, &es, &bs);
	if (st)
		return st;
	int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3], od[4];
	char s1[128];
	if (H % bs != 0 || W % bs != 0)
		return qt_op_error(a, QT_E_FORMAT, "height and width of %s are not multiples of blocksize %lld",
				   SHAPE(s1, 4, x->dims), (long long)bs);
	od[0] = N;
	if (__builtin_mul_overflow(C, bs * bs, &od[1]))
		return qt_op_error(a, QT_E_FORMAT, "output of %s overflows", SHAPE(s1, 4, x->dims));
	od[2] = H / bs;
	od[3] = W / bs;
	int64_t v[6] = {N, C, H / bs, bs, W / bs, bs};
	static const int perm[6] = {0, 3, 5, 1, 2, 4};
	return permute_view(a, x, es, v, perm, od);
}

/* ------------------------------------------------------------------ Pad */

enum pad_mode { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP };

/* Source index of output position o on an axis of size dim padded by `before`; -1 for the fill value. */
static int64_t pad_source(enum pad_mode m, int64_t o, int64_t before, int64_t dim)
{
	int64_t j = o - before;
	if (j >= 0 && j < dim)
		return j;
	switch (m) {
	case PAD_CONSTANT: return -1;
	case PAD_EDGE: return j < 0 ? 0 : dim - 1;
	case PAD_WRAP: return ((j % dim) + dim) % dim;
	case PAD_REFLECT:
	default: {
		if (dim == 1)
			return 0;
		int64_t p = 2 * (dim - 1);
		j = ((j % p) + p) % p;
		return j < dim ? j : p - j;
	}
	}
}

/*
 * Pad: pads/value attributes before opset 11 (`paddings` at opset 1), then
 * inputs pads, optional constant_value and (opset 18) axes. Modes constant,
 * reflect, edge and wrap; negative pads crop.
 */
static enum qt_status op_pad(const struct qt_op_args *a)
{
	const struct qt_tensor *x;
	size_t es;
	enum qt_status st = need_in(a, 0, "data", &x);
	if (st || (st = elem_size(a, x, "data", &es)))
		return st;
	int r = x->rank;
	int64_t pads[2 * MAXR], axes[MAXR];
	int np, na = -2;
	if (a->opset < 11) {
		np = ints_from(a, qt_node_attr(a->node, "paddings") ? "paddings" : "pads", -1, "pads", pads, 2 * MAXR);
	} else {
		np = qt_op_read_ints(a, qt_op_in(a, 1), "pads", pads, 2 * MAXR);
		if (np >= 0 && a->opset >= 18)
			na = ints_from(a, NULL, 3, "axes", axes, MAXR);
	}
	if (np == -1 || na == -1)
		return QT_E_FORMAT;
	if (np == -2)
		return qt_op_error(a, QT_E_FORMAT, "pads are missing");
	if (na < 0) {
		na = r;
		for (int i = 0; i < r; i++)
			axes[i] = i;
	}
	int mark[MAXR];
	if ((st = mark_axes(a, axes, na, r, "axes", mark)))
		return st;
	char s1[128], s2[128];
	if (np != 2 * na)
		return qt_op_error(a, QT_E_FORMAT, "pads %s must have 2 * %d entries for %s", SHAPE(s1, np, pads), na,
				   SHAPE(s2, r, x->dims));
	const char *ms = qt_node_attr_str(a->node, "mode", "constant");
	enum pad_mode mode;
	if (strcmp(ms, "constant") == 0)
		mode = PAD_CONSTANT;
	else if (strcmp(ms, "reflect") == 0)
		mode = PAD_REFLECT;
	else if (strcmp(ms, "edge") == 0)
		mode = PAD_EDGE;
	else if (strcmp(ms, "wrap") == 0)
		mode = PAD_WRAP;
	else
		return qt_op_error(a, QT_E_FORMAT, "unknown mode \"%s\"", ms);

	unsigned char fill[16] = {0};
	if (a->opset < 11) {
		float v = qt_node_attr_float(a->node, "value", 0.0f);
		if (v != 0.0f) {
			if (!is_numeric_dtype(x->dtype))
				return qt_op_error(a, QT_E_UNSUPPORTED, "pad value for %s data", qt_dtype_name(x->dtype));
			struct qt_tensor tmp = {.dtype = x->dtype, .data = fill};
			qt_tensor_set_f64(&tmp, 0, v);
		}
	} else if (opt_in(a, 2)) {
		const struct qt_tensor *cv = qt_op_in(a, 2);
		if (cv->dtype != x->dtype)
			return qt_op_error(a, QT_E_FORMAT, "constant_value is %s but data is %s",
					   qt_dtype_name(cv->dtype), qt_dtype_name(x->dtype));
		memcpy(fill, cv->data, es);
	}

	int64_t before[MAXR] = {0}, dims[MAXR];
	memcpy(dims, x->dims, sizeof(int64_t) * (size_t)r);
	for (int k = 0; k < na; k++) {
		int d = qt_norm_axis(axes[k], r);
		int64_t b = pads[k], e = pads[k + na], o;
		if (__builtin_add_overflow(x->dims[d], b, &o) || __builtin_add_overflow(o, e, &o) || o < 0)
			return qt_op_error(a, QT_E_FORMAT, "pads %s are invalid for %s (axis %d)", SHAPE(s1, np, pads),
					   SHAPE(s2, r, x->dims), d);
		if (mode != PAD_CONSTANT && x->dims[d] == 0 && o > 0)
			return qt_op_error(a, QT_E_FORMAT, "cannot pad empty axis %d in %s mode", d, ms);
		before[d] = b;
		dims[d] = o;
	}
	if ((st = alloc_out(a, 0, x->dtype, r, dims)))
		return st;
	int64_t total = 0, istr[MAXR];
	if (qt_tensor_numel(&a->out[0]) == 0)
		return QT_OK;
	for (int d = 0; d < r; d++)
		total += dims[d];
	int64_t *buf = malloc(sizeof(int64_t) * (size_t)(total ? total : 1));
	if (!buf)
		return qt_op_error(a, QT_E_NOMEM, "out of memory for pad index tables");
	const int64_t *maps[MAXR];
	int64_t *p = buf;
	for (int d = 0; d < r; d++) {
		for (int64_t o = 0; o < dims[d]; o++)
			p[o] = pad_source(mode, o, before[d], x->dims[d]);
		maps[d] = p;
		p += dims[d];
	}
	strides_of(r, x->dims, istr);
	gather_mapped(r, dims, maps, istr, es, a->out[0].data, x->data, fill);
	free(buf);
	return QT_OK;
}

/* ------------------------------------------------------- Resize/Upsample */

enum rs_ctm { CTM_HALF_PIXEL, CTM_PYTORCH_HALF_PIXEL, CTM_ALIGN_CORNERS, CTM_ASYMMETRIC, CTM_TF_HALF_PIXEL_FOR_NN,
	      CTM_TF_CROP_AND_RESIZE };
enum rs_nearest { NR_ROUND_PREFER_FLOOR, NR_ROUND_PREFER_CEIL, NR_FLOOR, NR_CEIL, NR_SIMPLE };

struct resize_plan {
	int taps;             /* 0 nearest, 2 linear, 4 cubic */
	float cubic_a;        /* cubic_coeff_a */
	int exclude_outside;  /* cubic: drop taps outside the input and renormalise */
	enum rs_ctm ctm;
	enum rs_nearest nearest;
	float extrapolation;
	int rank;
	int64_t out[MAXR];
	float scale[MAXR];    /* output length / input length */
	float len_res[MAXR];  /* length_resized in the formulas: input * scale (exact output when sizes are given) */
	float roi_start[MAXR], roi_end[MAXR];
};

/* Input coordinate of output index xo on axis d (ONNX coordinate_transformation_mode), in float. */
static float resize_coord(const struct resize_plan *p, int d, int64_t in_len, int64_t xo)
{
	float x = (float)xo, s = p->scale[d], lin = (float)in_len, lres = p->len_res[d];
	switch (p->ctm) {
	case CTM_HALF_PIXEL: return (x + 0.5f) / s - 0.5f;
	case CTM_PYTORCH_HALF_PIXEL: return lres > 1.0f ? (x + 0.5f) / s - 0.5f : 0.0f;
	case CTM_ALIGN_CORNERS: return lres == 1.0f ? 0.0f : x * (lin - 1.0f) / (lres - 1.0f);
	case CTM_ASYMMETRIC: return x / s;
	case CTM_TF_HALF_PIXEL_FOR_NN: return (x + 0.5f) / s;
	case CTM_TF_CROP_AND_RESIZE:
	default: {
		float st = p->roi_start[d], en = p->roi_end[d], lout = (float)p->out[d];
		return p->out[d] > 1 ? st * (lin - 1.0f) + x * (en - st) * (lin - 1.0f) / (lout - 1.0f)
				     : 0.5f * (st + en) * (lin - 1.0f);
	}
	}
}

/* tf_crop_and_resize samples outside [0, len-1] give the extrapolation value. */
static int resize_outside(const struct resize_plan *p, float x, int64_t len)
{
	return p->ctm == CTM_TF_CROP_AND_RESIZE && (!(x >= 0.0f) || x > (float)(len - 1));
}

static int64_t nearest_index(enum rs_nearest m, float x, float scale, int64_t len)
{
	/* Positions beyond the ends clamp to the edge anyway; bounding x first keeps the casts defined. */
	if (!(x > -1.0f))
		x = -1.0f;
	if (x > (float)len)
		x = (float)len;
	float f = floorf(x);
	int64_t i = (int64_t)f;
	if (x != f) {
		float ratio = x - f;
		switch (m) {
		case NR_ROUND_PREFER_FLOOR: i += ratio > 0.5f; break;
		case NR_ROUND_PREFER_CEIL: i += ratio >= 0.5f; break;
		case NR_FLOOR: break;
		case NR_CEIL: i += 1; break;
		case NR_SIMPLE: i += scale < 1.0f; break; /* ceil when shrinking, floor when growing */
		}
	}
	return clamp64(i, 0, len - 1);
}

/* One output sample: out = sum of w[t] * in[i[t]] over the plan's taps, or the extrapolation value. */
struct rs_tap {
	int64_t i[4];
	float w[4];
	int outside;
};

/*
 * Interpolation along the middle axis of [outer, n_in, inner] -> [outer,
 * n_out, inner], in float: each output is sum w[t] * in[i[t]], accumulated
 * in tap order (at most 4 terms of weights summing to 1, so no growth).
 */
static void interp_pass(const float *src, float *dst, int64_t outer, int64_t n_in, int64_t n_out, int64_t inner,
			const struct rs_tap *taps, int nt, float extrap)
{
	for (int64_t o = 0; o < outer; o++)
		for (int64_t j = 0; j < n_out; j++) {
			float *d = dst + (o * n_out + j) * inner;
			const struct rs_tap *t = &taps[j];
			if (t->outside) {
				for (int64_t k = 0; k < inner; k++)
					d[k] = extrap;
				continue;
			}
			const float *s0 = src + (o * n_in + t->i[0]) * inner;
			for (int64_t k = 0; k < inner; k++)
				d[k] = t->w[0] * s0[k];
			for (int q = 1; q < nt; q++) {
				const float *sq = src + (o * n_in + t->i[q]) * inner;
				for (int64_t k = 0; k < inner; k++)
					d[k] += t->w[q] * sq[k];
			}
		}
}

/* Cubic convolution kernel (Keys) with coefficient a at distance d >= 0, in float. */
static float cubic_weight(float a, float d)
{
	if (d <= 1.0f)
		return ((a + 2.0f) * d - (a + 3.0f)) * d * d + 1.0f;
	return d < 2.0f ? ((a * d - 5.0f * a) * d + 8.0f * a) * d - 4.0f * a : 0.0f;
}

/*
 * Taps of the sample at input coordinate c in [-1, n_in]: linear reads
 * floor(c) and floor(c)+1, cubic floor(c)-1 .. floor(c)+2. Indices past an
 * edge read the edge element, except that cubic with exclude_outside gives
 * them weight 0 and rescales the rest to sum to 1 (for linear that would
 * change nothing: both taps then read the edge element).
 */
static void resize_taps(const struct resize_plan *p, float c, int64_t n_in, struct rs_tap *t)
{
	float f = floorf(c), ratio = c - f, sum = 0.0f;
	for (int q = 0; q < p->taps; q++) {
		int64_t i = (int64_t)f + q - (p->taps == 4);
		if (p->taps == 2)
			t->w[q] = q ? ratio : 1.0f - ratio;
		else if (p->exclude_outside && (i < 0 || i >= n_in))
			t->w[q] = 0.0f;
		else
			t->w[q] = cubic_weight(p->cubic_a, fabsf(ratio + 1.0f - (float)q));
		sum += t->w[q];
		t->i[q] = clamp64(i, 0, n_in - 1);
	}
	if (p->taps == 4 && p->exclude_outside && sum != 0.0f)
		for (int q = 0; q < 4; q++)
			t->w[q] /= sum;
}

/*
 * N-linear or N-cubic resize as separable 1-D passes, innermost axis first
 * (the order of the ONNX reference, which matters only for extrapolated
 * samples). Axes whose taps are the identity are skipped. Float32 data is
 * read in place; float16/float64 go through a float copy.
 */
static enum qt_status resize_interp(const struct qt_op_args *a, const struct qt_tensor *x, const struct resize_plan *p)
{
	int r = x->rank;
	struct qt_tensor *y = &a->out[0];
	int64_t cur[MAXR], nx = qt_tensor_numel(x);
	memcpy(cur, x->dims, sizeof(int64_t) * (size_t)r);
	float *own = NULL;
	const float *src = x->data;
	enum qt_status st = QT_OK;
	if (x->dtype != QT_DTYPE_F32) {
		own = malloc(sizeof(float) * (size_t)(nx ? nx : 1));
		if (!own)
			return qt_op_error(a, QT_E_NOMEM, "out of memory for resize");
		for (int64_t i = 0; i < nx; i++)
			own[i] = (float)qt_tensor_get_f64(x, i);
		src = own;
	}
	for (int d = r - 1; d >= 0; d--) {
		int64_t n_in = cur[d], n_out = p->out[d];
		struct rs_tap *taps = malloc(sizeof *taps * (size_t)(n_out ? n_out : 1));
		if (!taps) {
			st = qt_op_error(a, QT_E_NOMEM, "out of memory for resize");
			break;
		}
		int identity = n_in == n_out;
		for (int64_t j = 0; j < n_out; j++) {
			struct rs_tap *t = &taps[j];
			float c = resize_coord(p, d, n_in, j);
			memset(t, 0, sizeof *t);
			if (resize_outside(p, c, n_in)) {
				t->outside = 1;
				identity = 0;
				continue;
			}
			/* Bounding c keeps the casts defined; beyond the edges every tap clamps anyway. */
			if (!(c > -1.0f))
				c = -1.0f;
			if (c > (float)n_in)
				c = (float)n_in;
			resize_taps(p, c, n_in, t);
			/* The weights sum to 1, so taps that all read element j (or weigh 0) copy it. */
			for (int q = 0; q < p->taps; q++)
				if (t->w[q] != 0.0f && t->i[q] != j)
					identity = 0;
		}
		if (identity) {
			free(taps);
			continue;
		}
		int64_t outer = prod(d, cur), inner = prod(r - d - 1, cur + d + 1), n;
		if (__builtin_mul_overflow(outer, n_out, &n) || __builtin_mul_overflow(n, inner, &n) ||
		    (uint64_t)n > QT_TENSOR_MAX_BYTES / sizeof(float)) {
			free(taps);
			st = qt_op_error(a, QT_E_NOMEM, "resize intermediate is too large");
			break;
		}
		float *dst = malloc(sizeof(float) * (size_t)(n ? n : 1));
		if (!dst) {
			free(taps);
			st = qt_op_error(a, QT_E_NOMEM, "out of memory for resize");
			break;
		}
		interp_pass(src, dst, outer, n_in, n_out, inner, taps, p->taps, p->extrapolation);
		free(taps);
		free(own);
		own = dst;
		src = dst;
		cur[d] = n_out;
	}
	if (st == QT_OK) {
		int64_t ny = qt_tensor_numel(y);
		if (y->dtype == QT_DTYPE_F32)
			memcpy(y->data, src, sizeof(float) * (size_t)ny);
		else
			for (int64_t i = 0; i < ny; i++)
				qt_tensor_set_f64(y, i, src[i]);
	}
	free(own);
	return st;
}

/* Nearest resize of any whole-byte dtype: one gather through per-axis index tables. */
static enum qt_status resize_nearest(const struct qt_op_args *a, const struct qt_tensor *x, size_t es,
				     const struct resize_plan *p)
{
	int r = x->rank;
	unsigned char fill[16] = {0};
	if (p->ctm == CTM_TF_CROP_AND_RESIZE && p->extrapolation != 0.0f && is_numeric_dtype(x->dtype)) {
		struct qt_tensor tmp = {.dtype = x->dtype, .data = fill};
		qt_tensor_set_f64(&tmp, 0, p->extrapolation);
	}
	int64_t total = 0, istr[MAXR];
	for (int d = 0; d < r; d++)
		total += p->out[d];
	int64_t *buf = malloc(sizeof(int64_t) * (size_t)(total ? total : 1));
	if (!buf)
		return qt_op_error(a, QT_E_NOMEM, "out of memory for resize index tables");
	const int64_t *maps[MAXR];
	int64_t *q = buf;
	for (int d = 0; d < r; d++) {
		for (int64_t j = 0; j < p->out[d]; j++) {
			float c = resize_coord(p, d, x->dims[d], j);
			q[j] = resize_outside(p, c, x->dims[d]) ? -1 : nearest_index(p->nearest, c, p->scale[d], x->dims[d]);
		}
		maps[d] = q;
		q += p->out[d];
	}
	strides_of(r, x->dims, istr);
	gather_mapped(r, p->out, maps, istr, es, a->out[0].data, x->data, fill);
	free(buf);
	return QT_OK;
}

/*
 * Shared tail of Resize and Upsample: output shape from scales (floor(in *
 * scale), times the roi extent for tf_crop_and_resize) or sizes, then the
 * interpolation. `scales`/`sizes`/`roi` are NULL when absent; scales_attr
 * (count = rank) replaces the scales tensor for the attribute forms.
 */
static enum qt_status resize_run(const struct qt_op_args *a, const struct qt_tensor *x, const struct qt_tensor *roi,
				 const struct qt_tensor *scales, const float *scales_attr, const struct qt_tensor *sizes,
				 struct resize_plan *p)
{
	int r = x->rank;
	size_t es;
	enum qt_status st = elem_size(a, x, "X", &es);
	char s1[128];
	if (st)
		return st;
	p->rank = r;
	int have_scales = scales || scales_attr;
	if (have_scales && sizes)
		return qt_op_error(a, QT_E_FORMAT, "only one of scales and sizes may be given");
	if (!have_scales && !sizes)
		return qt_op_error(a, QT_E_FORMAT, "one of scales and sizes must be given");
	for (int d = 0; d < r; d++) {
		p->roi_start[d] = 0.0f;
		p->roi_end[d] = 1.0f;
	}
	if (p->ctm == CTM_TF_CROP_AND_RESIZE) {
		if (!roi || qt_tensor_numel(roi) != 2 * r || !is_float_dtype(roi->dtype))
			return qt_op_error(a, QT_E_FORMAT, "tf_crop_and_resize needs a float roi of %d values", 2 * r);
		for (int d = 0; d < r; d++) {
			p->roi_start[d] = (float)qt_tensor_get_f64(roi, d);
			p->roi_end[d] = (float)qt_tensor_get_f64(roi, r + d);
		}
	}
	if (sizes) {
		int64_t sz[MAXR];
		int n = qt_op_read_ints(a, sizes, "sizes", sz, MAXR);
		if (n < 0)
			return QT_E_FORMAT;
		if (n != r)
			return qt_op_error(a, QT_E_FORMAT, "sizes has %d values for an input of rank %d", n, r);
		for (int d = 0; d < r; d++) {
			if (sz[d] < 0 || (x->dims[d] == 0 && sz[d] > 0))
				return qt_op_error(a, QT_E_FORMAT, "cannot resize axis %d of size %lld to %lld", d,
						   (long long)x->dims[d], (long long)sz[d]);
			p->out[d] = sz[d];
			p->scale[d] = x->dims[d] ? (float)sz[d] / (float)x->dims[d] : 1.0f;
			p->len_res[d] = (float)sz[d];
		}
	} else {
		if (scales && (!is_float_dtype(scales->dtype) || qt_tensor_numel(scales) != r))
			return qt_op_error(a, QT_E_FORMAT, "scales must be %d floats for an input of rank %d", r, r);
		for (int d = 0; d < r; d++) {
			float s = scales ? (float)qt_tensor_get_f64(scales, d) : scales_attr[d];
			if (!(s > 0.0f) || !isfinite(s))
				return qt_op_error(a, QT_E_FORMAT, "scale %g on axis %d must be finite and positive", s, d);
			double o = floor((double)x->dims[d] * (double)(p->roi_end[d] - p->roi_start[d]) * (double)s);
			if (!(o >= 0.0) || o > 9.0e18)
				return qt_op_error(a, QT_E_FORMAT, "scale %g on axis %d gives an invalid size", s, d);
			p->out[d] = (int64_t)o;
			p->scale[d] = s;
			p->len_res[d] = (float)x->dims[d] * s;
		}
	}
	if ((st = alloc_out(a, 0, x->dtype, r, p->out)))
		return st;
	if (qt_tensor_numel(&a->out[0]) == 0)
		return QT_OK;
	if (!p->taps)
		return resize_nearest(a, x, es, p);
	if (!is_float_dtype(x->dtype))
		return qt_op_error(a, QT_E_UNSUPPORTED, "%s resize of %s %s is not supported (float only)",
				   p->taps == 4 ? "cubic" : "linear", qt_dtype_name(x->dtype), SHAPE(s1, r, x->dims));
	return resize_interp(a, x, p);
}

/* Interpolation mode; cubic exists from Resize-11 on (cubic_ok). */
static enum qt_status resize_mode(const struct qt_op_args *a, const char *mode, int cubic_ok, struct resize_plan *p)
{
	if (strcmp(mode, "nearest") == 0)
		p->taps = 0;
	else if (strcmp(mode, "linear") == 0 || strcmp(mode, "bilinear") == 0)
		p->taps = 2;
	else if (strcmp(mode, "cubic") == 0 && cubic_ok)
		p->taps = 4;
	else
		return qt_op_error(a, QT_E_FORMAT, "unknown mode \"%s\"%s", mode,
				   strcmp(mode, "cubic") == 0 ? " (cubic needs Resize-11 or later)" : "");
	return QT_OK;
}

/*
 * Resize: opset 10 takes (X, scales) with asymmetric coordinates and modes
 * nearest and linear; 11+ takes (X, roi, scales, sizes),
 * coordinate_transformation_mode, nearest_mode, extrapolation_value, and
 * mode cubic with cubic_coeff_a and exclude_outside.
 */
static enum qt_status op_resize(const struct qt_op_args *a)
{
	const struct qt_tensor *x;
	enum qt_status st = need_in(a, 0, "X", &x);
	if (st)
		return st;
	struct resize_plan p;
	memset(&p, 0, sizeof p);
	if ((st = resize_mode(a, qt_node_attr_str(a->node, "mode", "nearest"), a->opset >= 11, &p)))
		return st;
	if (a->opset < 11) {
		p.ctm = CTM_ASYMMETRIC;
		p.nearest = NR_SIMPLE;
		return resize_run(a, x, NULL, opt_in(a, 1), NULL, NULL, &p);
	}
	if (qt_node_attr_int(a->node, "antialias", 0) != 0 || qt_node_attr(a->node, "axes") ||
	    strcmp(qt_node_attr_str(a->node, "keep_aspect_ratio_policy", "stretch"), "stretch") != 0)
		return qt_op_error(a, QT_E_UNSUPPORTED, "antialias, axes and keep_aspect_ratio_policy are not supported");
	static const char *const ctm_names[] = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
						"tf_half_pixel_for_nn", "tf_crop_and_resize"};
	static const char *const nr_names[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
	const char *ctm = qt_node_attr_str(a->node, "coordinate_transformation_mode", "half_pixel");
	const char *nr = qt_node_attr_str(a->node, "nearest_mode", "round_prefer_floor");
	int i;
	for (i = 0; i < 6 && strcmp(ctm, ctm_names[i]) != 0; i++)
		;
	if (i == 6)
		return qt_op_error(a, QT_E_FORMAT, "unknown coordinate_transformation_mode \"%s\"", ctm);
	p.ctm = (enum rs_ctm)i;
	for (i = 0; i < 4 && strcmp(nr, nr_names[i]) != 0; i++)
		;
	if (i == 4)
		return qt_op_error(a, QT_E_FORMAT, "unknown nearest_mode \"%s\"", nr);
	p.nearest = (enum rs_nearest)i;
	p.extrapolation = qt_node_attr_float(a->node, "extrapolation_value", 0.0f);
	p.cubic_a = qt_node_attr_float(a->node, "cubic_coeff_a", -0.75f);
	int64_t ex = qt_node_attr_int(a->node, "exclude_outside", 0);
	if (!isfinite(p.cubic_a) || (ex != 0 && ex != 1))
		return qt_op_error(a, QT_E_FORMAT, "cubic_coeff_a must be finite and exclude_outside 0 or 1");
	p.exclude_outside = (int)ex;
	return resize_run(a, x, qt_op_in(a, 1), opt_in(a, 2), NULL, opt_in(a, 3), &p);
}

/*
 * Upsample (deprecated at 10): scales from height_scale/width_scale (opset
 * 1, 4-D), the scales attribute (7, 8) or input 1 (9+); asymmetric
 * coordinates like Resize-10.
 */
static enum qt_status op_upsample(const struct qt_op_args *a)
{
	const struct qt_tensor *x;
	enum qt_status st = need_in(a, 0, "X", &x);
	if (st)
		return st;
	struct resize_plan p;
	memset(&p, 0, sizeof p);
	if ((st = resize_mode(a, qt_node_attr_str(a->node, "mode", "nearest"), 0, &p)))
		return st;
	p.ctm = CTM_ASYMMETRIC;
	p.nearest = NR_SIMPLE;
	if (a->opset >= 9)
		return resize_run(a, x, NULL, opt_in(a, 1), NULL, NULL, &p);
	float sc[MAXR];
	const float *v;
	int n = qt_node_attr_floats(a->node, "scales", &v);
	if (n > 0) {
		if (n != x->rank)
			return qt_op_error(a, QT_E_FORMAT, "scales has %d values for an input of rank %d", n, x->rank);
		memcpy(sc, v, sizeof(float) * (size_t)n);
	} else if (qt_node_attr(a->node, "height_scale") || qt_node_attr(a->node, "width_scale")) {
		if (x->rank != 4)
			return qt_op_error(a, QT_E_FORMAT, "height_scale/width_scale need a 4-D input");
		sc[0] = sc[1] = 1.0f;
		sc[2] = qt_node_attr_float(a->node, "height_scale", 1.0f);
		sc[3] = qt_node_attr_float(a->node, "width_scale", 1.0f);
	} else {
		return qt_op_error(a, QT_E_FORMAT, "attribute scales is missing");
	}
	return resize_run(a, x, NULL, NULL, sc, NULL, &p);
}

/* ----------------------------------------------------- shape-valued ops */

/* Shape: int64 dims[start:end] (start/end from opset 15, clamped to [0, rank]). */
static enum qt_status op_shape(const struct qt_op_args *a)
{
	const struct qt_tensor *x;
	enum qt_status st = need_in(a, 0, "data", &x);
	if (st)
		return st;
	int64_t r = x->rank;
	int64_t s = qt_node_attr_int(a->node, "start", 0), e = qt_node_attr_int(a->node, "end", r);
	if (s < 0)
		s += r;
	if (e < 0)
		e += r;
	s = clamp64(s, 0, r);
	e = clamp64(e, 0, r);
	int64_t n = e > s ? e - s : 0;
	if ((st = alloc_out(a, 0, QT_DTYPE_I64, 1, &n)))
		return st;
	for (int64_t i = 0; i < n; i++)
		((int64_t *)a->out[0].data)[i] = x->dims[s + i];
	return QT_OK;
}

/* Size: int64 scalar element count. */
static enum qt_status op_size(const struct qt_op_args *a)
{
	const struct qt_tensor *x;
	enum qt_status st = need_in(a, 0, "data", &x);
	if (st || (st = alloc_out(a, 0, QT_DTYPE_I64, 0, NULL)))
		return st;
	*(int64_t *)a->out[0].data = qt_tensor_numel(x);
	return QT_OK;
}

/* Fill n es-byte elements of dst with the element at val, doubling the copied run. */
static void fill_elems(char *dst, const void *val, size_t es, int64_t n)
{
	if (n <= 0)
		return;
	memcpy(dst, val, es);
	size_t done = es, total = (size_t)n * es;
	while (done < total) {
		size_t c = done < total - done ? done : total - done;
		memcpy(dst + done, dst, c);
		done += c;
	}
}

/* ConstantOfShape: shape input (int64, dims >= 0), filled with the 1-element `value` tensor (default float 0). */
static enum qt_status op_constant_of_shape(const struct qt_op_args *a)
{
	int64_t dims[MAXR];
	char s1[128];
	int n = qt_op_read_ints(a, qt_op_in(a, 0), "shape", dims, MAXR);
	if (n < 0)
		return QT_E_FORMAT;
	for (int i = 0; i < n; i++)
		if (dims[i] < 0)
			return qt_op_error(a, QT_E_FORMAT, "shape %s has a negative dim", SHAPE(s1, n, dims));
	const struct qt_attr *at = qt_node_attr(a->node, "value");
	enum qt_dtype dt = QT_DTYPE_F32;
	size_t es = 4;
	enum qt_status st;
	if (at) {
		if (at->type != QT_ATTR_TENSOR || !at->t || qt_tensor_numel(at->t) != 1)
			return qt_op_error(a, QT_E_FORMAT, "attribute value must be a tensor of one element");
		if ((st = elem_size(a, at->t, "value", &es)))
			return st;
		dt = at->t->dtype;
	}
	if ((st = alloc_out(a, 0, dt, n, dims)))
		return st;
	if (at)
		fill_elems(a->out[0].data, at->t->data, es, qt_tensor_numel(&a->out[0]));
	return QT_OK;
}

/* Integer value of element 0 for the integer dtypes Range accepts. */
static int64_t get_int_scalar(const struct qt_tensor *t)
{
	switch (t->dtype) {
	case QT_DTYPE_I64: return *(const int64_t *)t->data;
	case QT_DTYPE_I32: return *(const int32_t *)t->data;
	case QT_DTYPE_I16: return *(const int16_t *)t->data;
	case QT_DTYPE_I8: return *(const int8_t *)t->data;
	case QT_DTYPE_U8: return *(const uint8_t *)t->data;
	case QT_DTYPE_U16: return *(const uint16_t *)t->data;
	case QT_DTYPE_U32: return *(const uint32_t *)t->data;
	default: return 0;
	}
}

/* Store v (within the dtype's range) into element i of an integer tensor, exactly. */
static void set_int(struct qt_tensor *t, int64_t i, int64_t v)
{
	switch (t->dtype) {
	case QT_DTYPE_I64: ((int64_t *)t->data)[i] = v; break;
	case QT_DTYPE_I32: ((int32_t *)t->data)[i] = (int32_t)v; break;
	case QT_DTYPE_I16: ((int16_t *)t->data)[i] = (int16_t)v; break;
	case QT_DTYPE_I8: ((int8_t *)t->data)[i] = (int8_t)v; break;
	case QT_DTYPE_U8: ((uint8_t *)t->data)[i] = (uint8_t)v; break;
	case QT_DTYPE_U16: ((uint16_t *)t->data)[i] = (uint16_t)v; break;
	case QT_DTYPE_U32: ((uint32_t *)t->data)[i] = (uint32_t)v; break;
	default: break;
	}
}

/*
 * Range: ceil((limit - start) / delta) elements (at least 0) of start + i *
 * delta. Integer dtypes are computed exactly in 64 bits; float dtypes count
 * in double and store start + i * delta rounded to the dtype.
 */
static enum qt_status op_range(const struct qt_op_args *a)
{
	const struct qt_tensor *t[3];
	static const char *const names[3] = {"start", "limit", "delta"};
	enum qt_status st;
	for (int i = 0; i < 3; i++) {
		if ((st = need_in(a, i, names[i], &t[i])))
			return st;
		if (qt_tensor_numel(t[i]) != 1)
			return qt_op_error(a, QT_E_FORMAT, "%s must be a scalar", names[i]);
		if (t[i]->dtype != t[0]->dtype)
			return qt_op_error(a, QT_E_FORMAT, "%s is %s but start is %s", names[i],
					   qt_dtype_name(t[i]->dtype), qt_dtype_name(t[0]->dtype));
	}
	enum qt_dtype dt = t[0]->dtype;
	int64_t n;
	if (is_float_dtype(dt)) {
		double s = qt_tensor_get_f64(t[0], 0), l = qt_tensor_get_f64(t[1], 0), d = qt_tensor_get_f64(t[2], 0);
		if (d == 0.0 || !isfinite(s) || !isfinite(l) || !isfinite(d))
			return qt_op_error(a, QT_E_FORMAT, "start, limit and delta must be finite and delta non-zero");
		double c = ceil((l - s) / d);
		if (!(c < 9.0e18))
			return qt_op_error(a, QT_E_NOMEM, "Range would produce %g elements", c);
		n = c > 0 ? (int64_t)c : 0;
		if ((st = alloc_out(a, 0, dt, 1, &n)))
			return st;
		for (int64_t i = 0; i < n; i++)
			qt_tensor_set_f64(&a->out[0], i, s + (double)i * d);
		return QT_OK;
	}
	if (dt != QT_DTYPE_I64 && dt != QT_DTYPE_I32 && dt != QT_DTYPE_I16 && dt != QT_DTYPE_I8 &&
	    dt != QT_DTYPE_U8 && dt != QT_DTYPE_U16 && dt != QT_DTYPE_U32)
		return qt_op_error(a, QT_E_UNSUPPORTED, "Range of %s is not supported", qt_dtype_name(dt));
	int64_t s = get_int_scalar(t[0]), l = get_int_scalar(t[1]), d = get_int_scalar(t[2]);
	if (d == 0)
		return qt_op_error(a, QT_E_FORMAT, "delta is 0");
	/* Unsigned differences cannot overflow: limit - start spans at most 2^64 - 1. */
	uint64_t cnt;
	if (d > 0)
		cnt = l > s ? ((uint64_t)l - (uint64_t)s - 1) / (uint64_t)d + 1 : 0;
	else
		cnt = s > l ? ((uint64_t)s - (uint64_t)l - 1) / ((uint64_t)(-(d + 1)) + 1) + 1 : 0;
	if (cnt > (uint64_t)INT64_MAX)
		return qt_op_error(a, QT_E_NOMEM, "Range would produce too many elements");
	n = (int64_t)cnt;
	if ((st = alloc_out(a, 0, dt, 1, &n)))
		return st;
	for (int64_t i = 0; i < n; i++) {
		int64_t v = (int64_t)((uint64_t)s + (uint64_t)i * (uint64_t)d); /* in range by construction */
		set_int(&a->out[0], i, v);
	}
	return QT_OK;
}

/* EyeLike: 2-D, ones on diagonal k, dtype from the `dtype` attribute or the input. */
static enum qt_status op_eye_like(const struct qt_op_args *a)
{
	const struct qt_tensor *x;
	enum qt_status st = need_in(a, 0, "input", &x);
	char s1[128];
	if (st)
		return st;
	if (x->rank != 2)
		return qt_op_error(a, QT_E_FORMAT, "input must be 2-D, not %s", SHAPE(s1, x->rank, x->dims));
	enum qt_dtype dt = x->dtype;
	const struct qt_attr *at = qt_node_attr(a->node, "dtype");
	if (at) {
		dt = qt_dtype_from_onnx((int)at->i);
		if (at->i < 0 || at->i > INT_MAX || dt == QT_DTYPE_UNDEFINED)
			return qt_op_error(a, QT_E_UNSUPPORTED, "dtype %lld is not supported", (long long)at->i);
	}
	if (!is_numeric_dtype(dt))
		return qt_op_error(a, QT_E_UNSUPPORTED, "EyeLike of %s is not supported", qt_dtype_name(dt));
	int64_t k = qt_node_attr_int(a->node, "k", 0), rows = x->dims[0], cols = x->dims[1];
	if ((st = alloc_out(a, 0, dt, 2, x->dims)))
		return st;
	if (k >= cols || k <= -rows)
		return QT_OK;
	for (int64_t i = k < 0 ? -k : 0; i < rows && i + k < cols; i++)
		qt_tensor_set_f64(&a->out[0], i * cols + i + k, 1.0);
	return QT_OK;
}

/* Trilu: keep j - i >= k (upper, default) or j - i <= k (lower) in the last two dims; zero the rest. */
static enum qt_status op_trilu(const struct qt_op_args *a)
{
	const struct qt_tensor *x;
	size_t es;
	enum qt_status st = need_in(a, 0, "input", &x);
	char s1[128];
	if (st || (st = elem_size(a, x, "input", &es)))
		return st;
	if (x->rank < 2)
		return qt_op_error(a, QT_E_FORMAT, "input must have rank >= 2, not %s", SHAPE(s1, x->rank, x->dims));
	int64_t k = 0;
	if (opt_in(a, 1)) {
		int n = qt_op_read_ints(a, qt_op_in(a, 1), "k", &k, 1);
		if (n < 0)
			return QT_E_FORMAT;
	}
	int upper = qt_node_attr_int(a->node, "upper", 1) != 0;
	int64_t rows = x->dims[x->rank - 2], cols = x->dims[x->rank - 1];
	k = clamp64(k, -rows - 1, cols + 1);
	if ((st = copy_reshaped(a, x, x->rank, x->dims)))
		return st;
	int64_t mats = prod(x->rank - 2, x->dims);
	char *p = a->out[0].data;
	for (int64_t m = 0; m < mats; m++)
		for (int64_t i = 0; i < rows; i++, p += (size_t)cols * es) {
			/* zero columns [z0, z1) of this row */
			int64_t z0 = upper ? 0 : clamp64(i + k + 1, 0, cols);
			int64_t z1 = upper ? clamp64(i + k, 0, cols) : cols;
			if (z1 > z0)
				memset(p + (size_t)z0 * es, 0, (size_t)(z1 - z0) * es);
		}
	return QT_OK;
}

/*
 * OneHot: indices (any numeric; negative count from depth; out-of-range
 * rows stay all "off"), depth (scalar), values [off, on] giving the output
 * dtype; the new axis of size depth goes at `axis` (default -1).
 */
static enum qt_status op_one_hot(const struct qt_op_args *a)
{
	const struct qt_tensor *ind, *dep, *val;
	size_t es;
	enum qt_status st;
	if ((st = need_in(a, 0, "indices", &ind)) || (st = need_in(a, 1, "depth", &dep)) ||
	    (st = need_in(a, 2, "values", &val)) || (st = elem_size(a, val, "values", &es)))
		return st;
	if (!is_numeric_dtype(ind->dtype) || !is_numeric_dtype(dep->dtype))
		return qt_op_error(a, QT_E_FORMAT, "indices and depth must be numeric");
	if (qt_tensor_numel(dep) != 1 || qt_tensor_numel(val) != 2)
		return qt_op_error(a, QT_E_FORMAT, "depth must have 1 element and values 2");
	double dv = qt_tensor_get_f64(dep, 0);
	if (!(dv >= 1.0) || dv > 9.0e18)
		return qt_op_error(a, QT_E_FORMAT, "depth %g must be positive", dv);
	int64_t depth = (int64_t)dv;
	int r = ind->rank;
	if (r + 1 > MAXR)
		return qt_op_error(a, QT_E_UNSUPPORTED, "output rank %d exceeds %d", r + 1, MAXR);
	int64_t axis_v = qt_node_attr_int(a->node, "axis", -1);
	int axis = qt_norm_axis(axis_v, r + 1);
	if (axis < 0)
		return qt_op_error(a, QT_E_FORMAT, "axis %lld out of range for rank %d", (long long)axis_v, r + 1);
	int64_t dims[MAXR];
	for (int d = 0, j = 0; d < r + 1; d++)
		dims[d] = d == axis ? depth : ind->dims[j++];
	if ((st = alloc_out(a, 0, val->dtype, r + 1, dims)))
		return st;
	char *o = a->out[0].data;
	const char *off = val->data, *on = off + es;
	fill_elems(o, off, es, qt_tensor_numel(&a->out[0]));
	int64_t outer = prod(axis, ind->dims), inner = prod(r - axis, ind->dims + axis);
	for (int64_t i = 0; i < outer; i++)
		for (int64_t j = 0; j < inner; j++) {
			double v = qt_tensor_get_f64(ind, i * inner + j);
			if (!(v >= -(double)depth && v < (double)depth))
				continue;
			int64_t h = (int64_t)v;
			if (h < 0)
				h += depth;
			memcpy(o + ((i * depth + h) * inner + j) * (int64_t)es, on, es);
		}
	return QT_OK;
}

/* Element i is non-zero: by value for float dtypes (so -0.0 is zero), by bytes otherwise. */
static int nonzero_at(const struct qt_tensor *x, size_t es, int64_t i)
{
	if (is_float_dtype(x->dtype))
		return qt_tensor_get_f64(x, i) != 0.0;
	const unsigned char *p = (const unsigned char *)x->data + (size_t)i * es;
	for (size_t b = 0; b < es; b++)
		if (p[b])
			return 1;
	return 0;
}

/* NonZero: int64 [rank, count] of the coordinates of non-zero elements in row-major order; a scalar acts as 1-D. */
static enum qt_status op_non_zero(const struct qt_op_args *a)
{
	const struct qt_tensor *x;
	size_t es;
	enum qt_status st = need_in(a, 0, "X", &x);
	if (st || (st = elem_size(a, x, "X", &es)))
		return st;
	int r = x->rank ? x->rank : 1;
	int64_t n = qt_tensor_numel(x), cnt = 0, xd[MAXR], idx[MAXR] = {0};
	if (x->rank)
		memcpy(xd, x->dims, sizeof(int64_t) * (size_t)r);
	else
		xd[0] = 1;
	for (int64_t i = 0; i < n; i++)
		cnt += nonzero_at(x, es, i);
	int64_t dims[2] = {r, cnt};
	if ((st = alloc_out(a, 0, QT_DTYPE_I64, 2, dims)))
		return st;
	int64_t *o = a->out[0].data, c = 0;
	for (int64_t i = 0; i < n; i++) {
		if (nonzero_at(x, es, i)) {
			for (int d = 0; d < r; d++)
				o[d * cnt + c] = idx[d];
			c++;
		}
		for (int d = r - 1; d >= 0; d--) {
			if (++idx[d] < xd[d])
				break;
			idx[d] = 0;
		}
	}
	return QT_OK;
}

/*
 * This file's kernels for the registry (ops.c). min_opset is the first
 * ai.onnx version whose signature the kernel implements: Tile-1 took
 * (input, tiles, axis), and the other late entries are when the op appeared.
 */
const struct qt_op_entry qt_ops_shape[] = {
	{"Identity", 1, op_identity},
	{"Constant", 1, op_constant},
	{"Reshape", 1, op_reshape},
	{"Flatten", 1, op_flatten},
	{"Squeeze", 1, op_squeeze},
	{"Unsqueeze", 1, op_unsqueeze},
	{"Transpose", 1, op_transpose},
	{"Concat", 1, op_concat},
	{"Split", 1, op_split},
	{"Slice", 1, op_slice},
	{"Gather", 1, op_gather},
	{"GatherElements", 11, op_gather_elements},
	{"Expand", 8, op_expand},
	{"Tile", 6, op_tile},
	{"Pad", 1, op_pad},
	{"Resize", 10, op_resize},
	{"Upsample", 1, op_upsample},
	{"Shape", 1, op_shape},
	{"Size", 1, op_size},
	{"ConstantOfShape", 9, op_constant_of_shape},
	{"Range", 11, op_range},
	{"EyeLike", 9, op_eye_like},
	{"Trilu", 14, op_trilu},
	{"DepthToSpace", 1, op_depth_to_space},
	{"SpaceToDepth", 1, op_space_to_depth},
	{"OneHot", 9, op_one_hot},
	{"NonZero", 9, op_non_zero},
	{NULL, 0, NULL},
};
