/*
 * QuantizeLinear and DequantizeLinear (ai.onnx 10; per axis from 13; int4,
 * uint4 and blocked scales from 21) in the FP32 executor, so a QDQ model
 * (what `qtool export` writes) runs here as well as in ONNX Runtime.
 *
 * Float rule, the ONNX one: QuantizeLinear computes x / scale in float,
 * rounds to nearest with ties to even (nearbyintf in the default rounding
 * mode), adds the zero point and saturates to the type's range;
 * DequantizeLinear computes (x - zero_point) * scale in float.
 *
 * Scales: a scalar or 1-element tensor (per tensor); a 1-D tensor of
 * dims[axis] entries (per axis); with block_size B > 0 a tensor of x's rank
 * whose dims equal x's except dims[axis] -> ceil(dims[axis] / B) (blocked).
 * Zero points, when given, have the scale's shape. Codes: uint8, int8,
 * int32 (DequantizeLinear only), uint4 and int4 (packed two per byte, low
 * nibble first, as ONNX and qtool both store them).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "qtool/quant.h"

/* How element i of x finds its scale: per tensor, per axis or per block. */
struct qdq_map {
	int mode; /* 0 tensor, 1 axis, 2 block */
	int64_t inner, D, B, Db;
};

static int64_t qdq_index(const struct qdq_map *m, int64_t i)
{
	if (m->mode == 0)
		return 0;
	int64_t c = (i / m->inner) % m->D;
	if (m->mode == 1)
		return c;
	int64_t outer = i / (m->inner * m->D);
	return (outer * m->Db + c / m->B) * m->inner + i % m->inner;
}

/* Check the scale (and zero point) shapes against x and the attributes. */
static enum qt_status qdq_map_init(const struct qt_op_args *a, const struct qt_tensor *x, const struct qt_tensor *s,
				   const struct qt_tensor *zp, struct qdq_map *m)
{
	memset(m, 0, sizeof *m);
	if (s->dtype != QT_DTYPE_F32)
		return qt_op_error(a, QT_E_UNSUPPORTED, "scale must be float32, not %s", qt_dtype_name(s->dtype));
	if (zp && (zp->rank != s->rank || memcmp(zp->dims, s->dims, sizeof(int64_t) * (size_t)s->rank)))
		return qt_op_error(a, QT_E_FORMAT, "zero point shape differs from the scale's");
	int64_t block = a->opset >= 21 ? qt_node_attr_int(a->node, "block_size", 0) : 0;
	int64_t ns = qt_tensor_numel(s);
	if (block < 0)
		return qt_op_error(a, QT_E_FORMAT, "block_size %lld is negative", (long long)block);
	if (block == 0 && (s->rank == 0 || (s->rank == 1 && ns == 1))) {
		if (ns != 1)
			return qt_op_error(a, QT_E_FORMAT, "scale is empty");
		return QT_OK;
	}
	int64_t axis = qt_node_attr_int(a->node, "axis", 1);
	if (axis < 0)
		axis += x->rank;
	if (axis < 0 || axis >= x->rank)
		return qt_op_error(a, QT_E_FORMAT, "axis %lld is outside the input's rank %d",
				   (long long)qt_node_attr_int(a->node, "axis", 1), x->rank);
	m->D = x->dims[axis];
	m->inner = 1;
	for (int d = (int)axis + 1; d < x->rank; d++)
		m->inner *= x->dims[d];
	if (block == 0) {
		if (s->rank != 1 || s->dims[0] != m->D)
			return qt_op_error(a, QT_E_FORMAT, "per-axis scale needs %lld entries (axis %lld), has %lld",
					   (long long)m->D, (long long)axis, (long long)ns);
		m->mode = 1;
		return QT_OK;
	}
	m->mode = 2;
	m->B = block;
	m->Db = (m->D + block - 1) / block;
	if (s->rank != x->rank)
		return qt_op_error(a, QT_E_FORMAT, "blocked scale must have the input's rank %d, has %d", x->rank, s->rank);
	for (int d = 0; d < x->rank; d++)
		if (s->dims[d] != (d == axis ? m->Db : x->dims[d]))
			return qt_op_error(a, QT_E_FORMAT, "blocked scale dim %d is %lld, expected %lld", d,
					   (long long)s->dims[d], (long long)(d == axis ? m->Db : x->dims[d]));
	return QT_OK;
}

static int code_type_ok(enum qt_dtype dt, int allow_i32)
{
	return dt == QT_DTYPE_U8 || dt == QT_DTYPE_I8 || dt == QT_DTYPE_U4 || dt == QT_DTYPE_S4 ||
	       (allow_i32 && dt == QT_DTYPE_I32);
}

static enum qt_status op_QuantizeLinear(const struct qt_op_args *a)
{
	const struct qt_tensor *x = qt_op_in(a, 0), *s = qt_op_in(a, 1), *zp = qt_op_in(a, 2);
	if (!x || !s)
		return qt_op_error(a, QT_E_FORMAT, "needs inputs x and y_scale");
	if (a->n_out < 1)
		return qt_op_error(a, QT_E_FORMAT, "needs an output");
	if (x->dtype != QT_DTYPE_F32)
		return qt_op_error(a, QT_E_UNSUPPORTED, "input must be float32, not %s", qt_dtype_name(x->dtype));
	enum qt_dtype odt = QT_DTYPE_U8;
	if (zp) {
		odt = zp->dtype;
	} else if (a->opset >= 21 && qt_node_attr_int(a->node, "output_dtype", 0)) {
		odt = qt_dtype_from_onnx((int)qt_node_attr_int(a->node, "output_dtype", 0));
		if (qt_node_attr_int(a->node, "output_dtype", 0) == 21)
			odt = QT_DTYPE_U4;
		else if (qt_node_attr_int(a->node, "output_dtype", 0) == 22)
			odt = QT_DTYPE_S4;
	}
	if (!code_type_ok(odt, 0))
		return qt_op_error(a, QT_E_UNSUPPORTED, "output type %s is not supported", qt_dtype_name(odt));
	struct qdq_map m;
	enum qt_status st = qdq_map_init(a, x, s, zp, &m);
	if (st)
		return st;
	if ((st = qt_tensor_alloc(&a->out[0], odt, x->rank, x->dims)) != QT_OK)
		return qt_op_error(a, st, "cannot allocate the output");
	int32_t qmin = odt == QT_DTYPE_U8 ? 0 : odt == QT_DTYPE_I8 ? -128 : odt == QT_DTYPE_U4 ? 0 : -8;
	int32_t qmax = odt == QT_DTYPE_U8 ? 255 : odt == QT_DTYPE_I8 ? 127 : odt == QT_DTYPE_U4 ? 15 : 7;
	const float *xd = x->data, *sd = s->data;
	uint8_t *o = a->out[0].data;
	int64_t n = qt_tensor_numel(x);
	for (int64_t i = 0; i < n; i++) {
		int64_t k = qdq_index(&m, i);
		int32_t z = zp ? qt_code_get(zp, k) : 0;
		float q = nearbyintf(xd[i] / sd[k]);
		/* Saturate in float first: the sum could overflow int32. NaN gives qmin
		 * (ONNX leaves it undefined; qtool's quantizer does the same). */
		float lo = (float)(qmin - z), hi = (float)(qmax - z);
		int32_t c = isnan(q) ? qmin : q <= lo ? qmin : q >= hi ? qmax : (int32_t)q + z;
		if (odt == QT_DTYPE_U8 || odt == QT_DTYPE_I8)
			o[i] = (uint8_t)c;
		else
			o[i >> 1] = (uint8_t)((o[i >> 1] & ~(15 << ((i & 1) * 4))) | ((c & 15) << ((i & 1) * 4)));
	}
	return QT_OK;
}

static enum qt_status op_DequantizeLinear(const struct qt_op_args *a)
{
	const struct qt_tensor *x = qt_op_in(a, 0), *s = qt_op_in(a, 1), *zp = qt_op_in(a, 2);
	if (!x || !s)
		return qt_op_error(a, QT_E_FORMAT, "needs inputs x and x_scale");
	if (a->n_out < 1)
		return qt_op_error(a, QT_E_FORMAT, "needs an output");
	if (!code_type_ok(x->dtype, 1))
		return qt_op_error(a, QT_E_UNSUPPORTED, "input type %s is not supported", qt_dtype_name(x->dtype));
	if (zp && zp->dtype != x->dtype)
		return qt_op_error(a, QT_E_FORMAT, "zero point type %s differs from the input's %s",
				   qt_dtype_name(zp->dtype), qt_dtype_name(x->dtype));
	struct qdq_map m;
	enum qt_status st = qdq_map_init(a, x, s, zp, &m);
	if (st)
		return st;
	if ((st = qt_tensor_alloc(&a->out[0], QT_DTYPE_F32, x->rank, x->dims)) != QT_OK)
		return qt_op_error(a, st, "cannot allocate the output");
	const float *sd = s->data;
	float *o = a->out[0].data;
	int64_t n = qt_tensor_numel(x);
	for (int64_t i = 0; i < n; i++) {
		int64_t k = qdq_index(&m, i);
		int32_t z = zp ? qt_code_get(zp, k) : 0;
		/* int32 codes minus a zero point: in int64, then one rounding to float. */
		o[i] = (float)((int64_t)qt_code_get(x, i) - z) * sd[k];
	}
	return QT_OK;
}

/*
 * ai.qtool FakeQuant (qtool/quant.h): X rounded to a number format and
 * decoded, by lib/quant/numfmt.c (its rounding rules). Block formats take
 * each run along `axis` (gathered when the axis is not the last) in blocks
 * from its start. Float throughout, like every op here.
 */
enum qt_status qt_op_fake_quant(const struct qt_op_args *a)
{
	const struct qt_tensor *x = qt_op_in(a, 0);
	enum qt_numfmt f;
	int bits;
	if (!x || x->dtype != QT_DTYPE_F32)
		return qt_op_error(a, QT_E_FORMAT, "FakeQuant needs a float32 input");
	const char *fs = qt_node_attr_str(a->node, "format", "");
	if (qt_numfmt_parse(fs, &f, &bits) || f == QT_FMT_INT)
		return qt_op_error(a, QT_E_FORMAT, "FakeQuant format '%s' is not one of %s (integers excepted)", fs,
				   qt_numfmt_names());
	float scale = qt_node_attr_float(a->node, "scale", 1.0f);
	int64_t rule = qt_node_attr_int(a->node, "rule", QT_MX_FLOOR);
	int axis = qt_norm_axis(qt_node_attr_int(a->node, "axis", -1), x->rank > 0 ? x->rank : 1);
	if (!isfinite(scale) || !(scale > 0) || rule < QT_MX_FLOOR || rule > QT_MX_BEST || axis < 0)
		return qt_op_error(a, QT_E_FORMAT, "FakeQuant scale %g, rule %lld or axis outside the input's rank", scale,
				   (long long)rule);
	enum qt_status st = qt_tensor_alloc(&a->out[0], QT_DTYPE_F32, x->rank, x->dims);
	if (st)
		return st;
	int64_t n = qt_tensor_numel(x), len = x->rank > 0 ? x->dims[axis] : 1, inner = 1;
	for (int d = axis + 1; d < x->rank; d++)
		inner *= x->dims[d];
	float *y = a->out[0].data;
	memcpy(y, x->data, (size_t)n * sizeof *y);
	if (!qt_numfmt_block(f) || len < 1) {
		qt_numfmt_fake_quant(f, (enum qt_mx_rule)rule, scale, y, n); /* elementwise */
		return QT_OK;
	}
	if (inner == 1) {
		for (int64_t r = 0; r < n / len; r++) /* contiguous runs: in place */
			qt_numfmt_fake_quant(f, (enum qt_mx_rule)rule, scale, y + r * len, len);
		return QT_OK;
	}
	float *run = malloc((size_t)len * sizeof *run);
	if (!run)
		return qt_error(QT_E_NOMEM, "out of memory");
	for (int64_t o = 0; o < n / (len * inner); o++)
		for (int64_t i = 0; i < inner; i++) {
			float *base = y + o * len * inner + i;
			for (int64_t k = 0; k < len; k++)
				run[k] = base[k * inner];
			qt_numfmt_fake_quant(f, (enum qt_mx_rule)rule, scale, run, len);
			for (int64_t k = 0; k < len; k++)
				base[k * inner] = run[k];
		}
	free(run);
	return QT_OK;
}

const struct qt_op_entry qt_ops_qdq[] = {
	{"QuantizeLinear", 10, op_QuantizeLinear},
	{"DequantizeLinear", 10, op_DequantizeLinear},
	{NULL, 0, NULL},
};
