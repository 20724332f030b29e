/*
 * FP32 kernels for normalisations and softmax (see ops.h for the contract):
 * BatchNormalization (inference), InstanceNormalization, LayerNormalization,
 * Softmax and LogSoftmax.
 *
 * Float rule: statistics (means, variances, softmax denominators) accumulate
 * in double over the reduction axis; per-element results are computed in
 * double and rounded once to float. Float32 only: other dtypes are refused
 * with QT_E_UNSUPPORTED.
 */
#include <math.h>
#include <string.h>

#include "ops.h"

static enum qt_status need_f32(const struct qt_op_args *a, const struct qt_tensor *t, const char *what)
{
	if (!t)
		return qt_op_error(a, QT_E_FORMAT, "required input %s is missing", what);
	if (t->dtype != QT_DTYPE_F32)
		return qt_op_error(a, QT_E_UNSUPPORTED, "input %s is %s; only float32 is supported", what,
				   qt_dtype_name(t->dtype));
	return QT_OK;
}

/* 1 when the node asks for output i (present and not omitted). */
static int wants_output(const struct qt_op_args *a, int i)
{
	return i < a->n_out && i < a->node->n_outputs && a->node->outputs[i] >= 0;
}

static int64_t prod(const int64_t *d, int from, int to)
{
	int64_t n = 1;
	for (int i = from; i < to; i++)
		n *= d[i];
	return n;
}

/* A per-channel parameter of BatchNorm/InstanceNorm: float32, shape [C]. */
static enum qt_status chan_param(const struct qt_op_args *a, const struct qt_tensor *t, const char *what, int64_t C)
{
	enum qt_status st = need_f32(a, t, what);
	if (st)
		return st;
	if (t->rank != 1 || t->dims[0] != C) {
		char s[96];
		return qt_op_error(a, QT_E_FORMAT, "%s has shape %s but the input has %lld channels", what,
				   qt_shape_str(s, sizeof s, t->rank, t->dims), (long long)C);
	}
	return QT_OK;
}

/*
 * BatchNormalization, inference form: Y = (X - mean) / sqrt(var + eps) *
 * scale + B per channel (axis 1). Opset < 7's is_test and consumed_inputs are
 * ignored, spatial must be 1 (opset < 9); training_mode=1 (opset 14+) and the
 * running-statistics outputs are not supported.
 */
static enum qt_status op_batchnorm(const struct qt_op_args *a)
{
	const struct qt_tensor *x = qt_op_in(a, 0);
	enum qt_status st;
	if ((st = need_f32(a, x, "X")))
		return st;
	if (qt_node_attr_int(a->node, "training_mode", 0) != 0)
		return qt_op_error(a, QT_E_UNSUPPORTED, "training_mode=1 is not supported (inference only)");
	if (qt_node_attr_int(a->node, "spatial", 1) != 1)
		return qt_op_error(a, QT_E_UNSUPPORTED, "spatial=%lld is not supported (only spatial=1)",
				   (long long)qt_node_attr_int(a->node, "spatial", 1));
	for (int i = 1; i < a->n_out; i++)
		if (wants_output(a, i))
			return qt_op_error(a, QT_E_UNSUPPORTED,
					   "output %d (running or saved statistics) is not supported; only Y", i);
	if (x->rank < 2)
		return qt_op_error(a, QT_E_FORMAT, "X must have rank >= 2 (N x C x ...), not %d", x->rank);
	int64_t C = x->dims[1];
	static const char *const names[4] = {"scale", "B", "mean", "var"};
	const float *p[4];
	for (int i = 0; i < 4; i++) {
		const struct qt_tensor *t = qt_op_in(a, 1 + i);
		if ((st = chan_param(a, t, names[i], C)))
			return st;
		p[i] = t->data;
	}
	double eps = qt_node_attr_float(a->node, "epsilon", 1e-5f);
	if ((st = qt_tensor_alloc(&a->out[0], QT_DTYPE_F32, x->rank, x->dims)))
		return qt_op_error(a, st, "output Y: %s", qt_error_msg());
	int64_t N = x->dims[0], S = prod(x->dims, 2, x->rank);
	const float *xp = x->data;
	float *yp = a->out[0].data;
	for (int64_t c = 0; c < C; c++) {
		/* Fold to y = x * mul + add, computed in double. */
		double mul = (double)p[0][c] / sqrt((double)p[3][c] + eps);
		double add = (double)p[1][c] - (double)p[2][c] * mul;
		for (int64_t n = 0; n < N; n++) {
			const float *xs = xp + (n * C + c) * S;
			float *ys = yp + (n * C + c) * S;
			for (int64_t i = 0; i < S; i++)
				ys[i] = (float)(xs[i] * mul + add);
		}
	}
	return QT_OK;
}

/*
 * InstanceNormalization: per (n, c), normalise over the spatial dims with the
 * plane's own mean and (biased) variance, then scale and shift per channel.
 */
static enum qt_status op_instancenorm(const struct qt_op_args *a)
{
	const struct qt_tensor *x = qt_op_in(a, 0), *sc = qt_op_in(a, 1), *b = qt_op_in(a, 2);
	enum qt_status st;
	if ((st = need_f32(a, x, "X")))
		return st;
	if (x->rank < 3)
		return qt_op_error(a, QT_E_FORMAT, "X must have rank >= 3 (N x C x D1 ...), not %d", x->rank);
	int64_t N = x->dims[0], C = x->dims[1], S = prod(x->dims, 2, x->rank);
	if ((st = chan_param(a, sc, "scale", C)) || (st = chan_param(a, b, "B", C)))
		return st;
	double eps = qt_node_attr_float(a->node, "epsilon", 1e-5f);
	if ((st = qt_tensor_alloc(&a->out[0], QT_DTYPE_F32, x->rank, x->dims)))
		return qt_op_error(a, st, "output Y: %s", qt_error_msg());
	const float *xp = x->data, *scp = sc->data, *bp = b->data;
	float *yp = a->out[0].data;
	for (int64_t n = 0; n < N; n++)
		for (int64_t c = 0; c < C; c++) {
			const float *xs = xp + (n * C + c) * S;
			float *ys = yp + (n * C + c) * S;
			double sum = 0, sq = 0;
			for (int64_t i = 0; i < S; i++)
				sum += xs[i];
			double mean = S ? sum / (double)S : 0;
			for (int64_t i = 0; i < S; i++)
				sq += (xs[i] - mean) * (xs[i] - mean);
			double var = S ? sq / (double)S : 0;
			double mul = scp[c] / sqrt(var + eps), add = bp[c] - mean * mul;
			for (int64_t i = 0; i < S; i++)
				ys[i] = (float)(xs[i] * mul + add);
		}
	return QT_OK;
}

/*
 * Check that t (Scale or B of LayerNormalization) broadcasts to the
 * normalised shape dims[axis:], and fill its element strides there.
 */
static enum qt_status ln_param(const struct qt_op_args *a, const struct qt_tensor *t, const char *what,
			       const struct qt_tensor *x, int axis, int64_t *strides)
{
	enum qt_status st = need_f32(a, t, what);
	if (st)
		return st;
	int rn = x->rank - axis;
	const int64_t *nd = x->dims + axis;
	int ok = t->rank <= rn;
	for (int i = 0; ok && i < t->rank; i++) {
		int64_t d = t->dims[i], want = nd[rn - t->rank + i];
		ok = d == 1 || d == want;
	}
	if (!ok) {
		char s1[96], s2[96];
		return qt_op_error(a, QT_E_FORMAT,
				   "%s has shape %s, which does not broadcast to the normalised shape %s", what,
				   qt_shape_str(s1, sizeof s1, t->rank, t->dims), qt_shape_str(s2, sizeof s2, rn, nd));
	}
	qt_broadcast_strides(t->rank, t->dims, rn, nd, strides);
	return QT_OK;
}

/*
 * LayerNormalization (opset 17): normalise over dims [axis, rank) with the
 * mean and biased variance of each slice, then multiply by Scale and add B
 * (optional), both broadcast to the normalised shape. Optional outputs Mean
 * and InvStdDev have X's shape with the normalised dims set to 1. stash_type
 * is accepted (statistics are always computed in double, which is at least as
 * precise as the float32 the default asks for).
 */
enum qt_status qt_op_layernorm(const struct qt_op_args *a)
{
	const struct qt_tensor *x = qt_op_in(a, 0), *sc = qt_op_in(a, 1), *b = qt_op_in(a, 2);
	enum qt_status st;
	if ((st = need_f32(a, x, "X")))
		return st;
	int64_t axis_attr = qt_node_attr_int(a->node, "axis", -1);
	int axis = qt_norm_axis(axis_attr, x->rank);
	if (axis < 0)
		return qt_op_error(a, QT_E_FORMAT, "axis %lld is out of range for rank %d", (long long)axis_attr,
				   x->rank);
	int64_t ssc[QT_MAX_RANK], sb[QT_MAX_RANK];
	if ((st = ln_param(a, sc, "Scale", x, axis, ssc)) || (b && (st = ln_param(a, b, "B", x, axis, sb))))
		return st;
	double eps = qt_node_attr_float(a->node, "epsilon", 1e-5f);
	int rn = x->rank - axis;
	const int64_t *nd = x->dims + axis;
	int64_t outer = prod(x->dims, 0, axis), inner = prod(x->dims, axis, x->rank);
	if ((st = qt_tensor_alloc(&a->out[0], QT_DTYPE_F32, x->rank, x->dims)))
		return qt_op_error(a, st, "output Y: %s", qt_error_msg());
	float *stat_out[2] = {NULL, NULL};
	int64_t sd[QT_MAX_RANK];
	for (int i = 0; i < x->rank; i++)
		sd[i] = i < axis ? x->dims[i] : 1;
	for (int o = 1; o <= 2; o++)
		if (wants_output(a, o)) {
			if ((st = qt_tensor_alloc(&a->out[o], QT_DTYPE_F32, x->rank, sd)))
				return qt_op_error(a, st, "output %s: %s", o == 1 ? "Mean" : "InvStdDev",
						   qt_error_msg());
			stat_out[o - 1] = a->out[o].data;
		}
	const float *xp = x->data, *scp = sc->data, *bp = b ? b->data : NULL;
	float *yp = a->out[0].data;
	/* Scale and B as long as the normalised block (the usual [C] over the
	 * last axis) are read by element index; else through a running index of
	 * broadcast offsets. Same arithmetic either way. */
	int dense_sc = qt_tensor_numel(sc) == inner, dense_b = !bp || qt_tensor_numel(b) == inner;
	int64_t idx[QT_MAX_RANK];
	for (int64_t r = 0; r < outer; r++) {
		const float *xs = xp + r * inner;
		float *ys = yp + r * inner;
		double sum = 0, sq = 0;
		for (int64_t i = 0; i < inner; i++)
			sum += xs[i];
		double mean = inner ? sum / (double)inner : 0;
		for (int64_t i = 0; i < inner; i++)
			sq += (xs[i] - mean) * (xs[i] - mean);
		double inv = 1.0 / sqrt((inner ? sq / (double)inner : 0) + eps);
		if (stat_out[0])
			stat_out[0][r] = (float)mean;
		if (stat_out[1])
			stat_out[1][r] = (float)inv;
		if (dense_sc && dense_b) {
			for (int64_t i = 0; i < inner; i++) {
				double v = (xs[i] - mean) * inv * scp[i];
				ys[i] = (float)(bp ? v + bp[i] : v);
			}
			continue;
		}
		memset(idx, 0, sizeof idx);
		int64_t os = 0, ob = 0;
		for (int64_t i = 0; i < inner; i++) {
			double v = (xs[i] - mean) * inv * scp[os];
			if (bp)
				v += bp[ob];
			ys[i] = (float)v;
			for (int d = rn - 1; d >= 0; d--) {
				os += ssc[d];
				ob += bp ? sb[d] : 0;
				if (++idx[d] < nd[d])
					break;
				os -= ssc[d] * nd[d];
				ob -= bp ? sb[d] * nd[d] : 0;
				idx[d] = 0;
			}
		}
	}
	return QT_OK;
}

/*
 * Softmax / LogSoftmax. Opset < 13 coerces the input to 2-D at `axis`
 * (default 1) and normalises each row of the flattened [outer, inner] view;
 * opset >= 13 normalises along the single axis (default -1). Max-subtracted
 * for stability; the sum of exponentials is accumulated in double.
 */
static enum qt_status softmax_common(const struct qt_op_args *a, int log_out)
{
	const struct qt_tensor *x = qt_op_in(a, 0);
	enum qt_status st;
	if ((st = need_f32(a, x, "input")))
		return st;
	int legacy = a->opset < 13;
	int64_t axis_attr = qt_node_attr_int(a->node, "axis", legacy ? 1 : -1);
	int r = x->rank;
	/* A rank-0 input is a single element: its softmax is 1 (log: 0). */
	int axis = r == 0 ? 0 : qt_norm_axis(axis_attr, r);
	if (axis < 0)
		return qt_op_error(a, QT_E_FORMAT, "axis %lld is out of range for rank %d", (long long)axis_attr, r);
	int64_t outer = prod(x->dims, 0, axis), n, inner;
	if (legacy) {
		n = prod(x->dims, axis, r);
		inner = 1;
	} else {
		n = r ? x->dims[axis] : 1;
		inner = prod(x->dims, axis + 1, r);
	}
	if ((st = qt_tensor_alloc(&a->out[0], QT_DTYPE_F32, r, x->dims)))
		return qt_op_error(a, st, "output: %s", qt_error_msg());
	const float *xp = x->data;
	float *yp = a->out[0].data;
	for (int64_t o = 0; o < outer; o++)
		for (int64_t in = 0; in < inner; in++) {
			const float *xs = xp + o * n * inner + in;
			float *ys = yp + o * n * inner + in;
			float mx = -INFINITY;
			for (int64_t i = 0; i < n; i++)
				if (xs[i * inner] > mx)
					mx = xs[i * inner];
			if (isinf(mx) && mx < 0)
				mx = 0; /* all -inf: avoid inf - inf */
			double sum = 0;
			for (int64_t i = 0; i < n; i++)
				sum += exp((double)xs[i * inner] - mx);
			if (log_out) {
				double ls = log(sum);
				for (int64_t i = 0; i < n; i++)
					ys[i * inner] = (float)((double)xs[i * inner] - mx - ls);
			} else {
				for (int64_t i = 0; i < n; i++)
					ys[i * inner] = (float)(exp((double)xs[i * inner] - mx) / sum);
			}
		}
	return QT_OK;
}

static enum qt_status op_softmax(const struct qt_op_args *a)
{
	return softmax_common(a, 0);
}

static enum qt_status op_logsoftmax(const struct qt_op_args *a)
{
	return softmax_common(a, 1);
}

/* Registered in ops.c (see ops.h). */
const struct qt_op_entry qt_ops_norm[] = {
	{"BatchNormalization", 1, op_batchnorm},  {"InstanceNormalization", 1, op_instancenorm},
	{"LayerNormalization", 17, qt_op_layernorm}, {"Softmax", 1, op_softmax},
	{"LogSoftmax", 1, op_logsoftmax},         {NULL, 0, NULL},
};
