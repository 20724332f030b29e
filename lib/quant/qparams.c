/*
 * Quantization parameters from ranges, and code packing helpers.
 * Float is allowed here: this runs offline, at quantize time.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "qtool/quant.h"
#include "quant/qround.h"

void qt_qtype_range(enum qt_dtype qt, int32_t *qmin, int32_t *qmax)
{
	switch (qt) {
	case QT_DTYPE_I8: *qmin = -127; *qmax = 127; break;
	case QT_DTYPE_S4: *qmin = -7; *qmax = 7; break;
	case QT_DTYPE_S3: *qmin = -3; *qmax = 3; break;
	case QT_DTYPE_S2: *qmin = -1; *qmax = 1; break;
	case QT_DTYPE_U8: *qmin = 0; *qmax = 255; break;
	case QT_DTYPE_U4: *qmin = 0; *qmax = 15; break;
	case QT_DTYPE_U2: *qmin = 0; *qmax = 3; break;
	default: *qmin = 0; *qmax = 0; break;
	}
}

static int signed_weight_type(enum qt_dtype qt)
{
	return qt == QT_DTYPE_I8 || qt == QT_DTYPE_S4 || qt == QT_DTYPE_S3 || qt == QT_DTYPE_S2;
}

void qt_code_range(enum qt_dtype qt, int full_range, int32_t *qmin, int32_t *qmax)
{
	qt_qtype_range(qt, qmin, qmax);
	if (full_range && signed_weight_type(qt))
		*qmin = -*qmax - 1;
}

void qt_qparams_code_range(const struct qt_qparams *q, int32_t *qmin, int32_t *qmax)
{
	qt_code_range(q->qtype, q->full_range, qmin, qmax);
}

/*
 * Two-level group scales (QT_SCALE_ROW_U8): s = S * (b + 1) / 256 with S the
 * channel's f32 reference. The product is exact in double (24 + 9 bits) and
 * the division by 256 too, so the one rounding is the conversion to float:
 * every machine decodes the same float.
 */
float qt_wscale_group_decode(float S, int b)
{
	return (float)((double)S * (b + 1) / 256.0);
}

/* b + 1 = clamp(nearbyint(s / S * 256), 1, 256): the nearest storable ratio
 * (ties to even), never 0 so a group keeps a positive scale. */
static int group_byte(float s, float S)
{
	double q = nearbyint((double)s / (double)S * 256.0);
	q = q < 1 ? 1 : q > 256 ? 256 : q;
	return (int)q - 1;
}

int qt_wscale_group_encode(float s, float S)
{
	if (!(S > 0) || !isfinite(S) || !(s > 0) || !isfinite(s) || s > S)
		return -1;
	int b = group_byte(s, S);
	return qt_wscale_group_decode(S, b) == s ? b : -1;
}

void qt_wscale_round_groups(float *scale, int64_t ng)
{
	float S = 0;
	for (int64_t j = 0; j < ng; j++)
		S = scale[j] > S ? scale[j] : S;
	if (!(S > 0) || !isfinite(S))
		return;
	for (int64_t j = 0; j < ng; j++)
		scale[j] = qt_wscale_group_decode(S, group_byte(scale[j], S));
}

enum qt_status qt_wscale_storable(struct qt_qparams *q, int64_t channels)
{
	if (q->scheme != QT_QSCHEME_GROUP)
		return QT_OK; /* per tensor / per channel: f32 scales, stored as they are */
	if (channels < 1 || q->count % channels)
		return qt_error(QT_E_INVALID_ARG, "%lld group scales do not divide into %lld channels",
				(long long)q->count, (long long)channels);
	int64_t ng = q->count / channels;
	for (int64_t c = 0; c < channels; c++)
		qt_wscale_round_groups(q->scale + c * ng, ng);
	q->scale_enc = QT_SCALE_ROW_U8;
	return QT_OK;
}

/*
 * scale = (hi - lo) / (2^bits - 1) over [min(lo,0), max(hi,0)], zero point
 * = nearbyint(-lo / scale) clamped, so real 0 is exactly a code. A zero-width
 * range (constant zero tensor) gets scale 1, zero point 0: every code maps
 * back to 0 exactly.
 */
enum qt_status qt_qparams_asym(float lo, float hi, int bits, float *scale_out, int32_t *zp_out)
{
	if (!isfinite(lo) || !isfinite(hi) || lo > hi)
		return qt_error(QT_E_NUMERIC, "range [%g, %g] is not a finite interval", lo, hi);
	if (bits < 2 || bits > 8)
		return qt_error(QT_E_INVALID_ARG, "activation bits %d outside 2..8", bits);
	if (lo > 0)
		lo = 0;
	if (hi < 0)
		hi = 0;
	int32_t qmax = (1 << bits) - 1;
	double scale = ((double)hi - (double)lo) / qmax;
	if (!(scale > 1e-30)) {
		*scale_out = 1.0f;
		*zp_out = 0;
		return QT_OK;
	}
	double zp = nearbyint(-(double)lo / scale);
	if (zp < 0)
		zp = 0;
	if (zp > qmax)
		zp = qmax;
	*scale_out = (float)scale;
	*zp_out = (int32_t)zp;
	return QT_OK;
}

static int small_range(int32_t zp, int32_t qmin, int32_t qmax)
{
	return (int64_t)qmax - qmin <= (1 << 20) && zp >= qmin - (1 << 20) && zp <= qmax + (1 << 20);
}

int32_t qt_quantize_one(float x, float scale, int32_t zp, int32_t qmin, int32_t qmax)
{
	if (small_range(zp, qmin, qmax))
		return qt_quantize_small_range(x, scale, zp, qmin, qmax);
	float r = nearbyintf(x / scale);
	/* Clamp in float first so huge values cannot overflow the conversion. */
	if (!(r >= (float)((int64_t)qmin - zp)))
		return qmin; /* also NaN */
	if (r > (float)((int64_t)qmax - zp))
		return qmax;
	int64_t q = (int64_t)r + zp;
	return (int32_t)(q < qmin ? qmin : q > qmax ? qmax : q);
}

void qt_quantize_u8(const float *x, size_t n, float scale, int32_t zp, int32_t qmin, int32_t qmax, uint8_t *out)
{
	if (!small_range(zp, qmin, qmax) || qmin < 0 || qmax > 255) {
		for (size_t i = 0; i < n; i++)
			out[i] = (uint8_t)qt_quantize_one(x[i], scale, zp, qmin, qmax);
		return;
	}
	for (size_t i = 0; i < n; i++)
		out[i] = (uint8_t)qt_quantize_small_range(x[i], scale, zp, qmin, qmax);
}

int qt_parse_bits(const char *s, int *wbits_out, int *abits_out)
{
	int w, a;
	char tail;
	if (!s || sscanf(s, "w%da%d%c", &w, &a, &tail) != 2)
		return -1;
	if (w != 8 && w != 4 && w != 3 && w != 2)
		return -1;
	if (a != 8 && a != 4)
		return -1;
	*wbits_out = w;
	*abits_out = a;
	return 0;
}

int32_t qt_code_get(const struct qt_tensor *t, int64_t i)
{
	const uint8_t *b = t->data;
	switch (t->dtype) {
	case QT_DTYPE_I8: return ((const int8_t *)t->data)[i];
	case QT_DTYPE_U8: return b[i];
	case QT_DTYPE_I32: return ((const int32_t *)t->data)[i];
	case QT_DTYPE_S4: {
		int v = (b[i >> 1] >> ((i & 1) * 4)) & 15;
		return v >= 8 ? v - 16 : v;
	}
	case QT_DTYPE_U4: return (b[i >> 1] >> ((i & 1) * 4)) & 15;
	case QT_DTYPE_S2: {
		int v = (b[i >> 2] >> ((i & 3) * 2)) & 3;
		return v >= 2 ? v - 4 : v;
	}
	case QT_DTYPE_U2: return (b[i >> 2] >> ((i & 3) * 2)) & 3;
	case QT_DTYPE_S3: {
		/* Bits [3i, 3i + 3) of a little-endian stream; the field may
		 * straddle two bytes (only then is the second one read). */
		int64_t bit = 3 * i;
		unsigned v = b[bit >> 3] >> (bit & 7);
		if ((bit & 7) > 5)
			v |= (unsigned)b[(bit >> 3) + 1] << (8 - (bit & 7));
		v &= 7;
		return v >= 4 ? (int32_t)v - 8 : (int32_t)v;
	}
	/* Minifloat codes are returned as their unsigned bits. */
	case QT_DTYPE_FP8_E4M3:
	case QT_DTYPE_FP8_E5M2: return b[i];
	case QT_DTYPE_FP4_E2M1: return (b[i >> 1] >> ((i & 1) * 4)) & 15;
	case QT_DTYPE_FP6_E3M2:
	case QT_DTYPE_FP6_E2M3: {
		/* Bits [6i, 6i + 6): straddles two bytes when it starts above bit 2. */
		int64_t bit = 6 * i;
		unsigned v = b[bit >> 3] >> (bit & 7);
		if ((bit & 7) > 2)
			v |= (unsigned)b[(bit >> 3) + 1] << (8 - (bit & 7));
		return (int32_t)(v & 63);
	}
	default: return 0;
	}
}

void qt_code_put(struct qt_tensor *t, int64_t i, int32_t c)
{
	uint8_t *b = t->data;
	switch (t->dtype) {
	case QT_DTYPE_I8: ((int8_t *)t->data)[i] = (int8_t)c; break;
	case QT_DTYPE_U8: b[i] = (uint8_t)c; break;
	case QT_DTYPE_I32: ((int32_t *)t->data)[i] = c; break;
	case QT_DTYPE_S4:
	case QT_DTYPE_U4:
	case QT_DTYPE_FP4_E2M1:
		b[i >> 1] = (uint8_t)((b[i >> 1] & ~(15u << ((i & 1) * 4))) | (((unsigned)c & 15u) << ((i & 1) * 4)));
		break;
	case QT_DTYPE_FP8_E4M3:
	case QT_DTYPE_FP8_E5M2: b[i] = (uint8_t)c; break;
	case QT_DTYPE_FP6_E3M2:
	case QT_DTYPE_FP6_E2M3: {
		int64_t bit = 6 * i;
		unsigned f = (unsigned)c & 63u, sh = (unsigned)(bit & 7);
		b[bit >> 3] = (uint8_t)((b[bit >> 3] & ~(63u << sh)) | (f << sh));
		if (sh > 2)
			b[(bit >> 3) + 1] = (uint8_t)((b[(bit >> 3) + 1] & ~(63u >> (8 - sh))) | (f >> (8 - sh)));
		break;
	}
	case QT_DTYPE_S2:
	case QT_DTYPE_U2:
		b[i >> 2] = (uint8_t)((b[i >> 2] & ~(3u << ((i & 3) * 2))) | (((unsigned)c & 3u) << ((i & 3) * 2)));
		break;
	case QT_DTYPE_S3: {
		int64_t bit = 3 * i;
		unsigned f = (unsigned)c & 7u, sh = (unsigned)(bit & 7);
		b[bit >> 3] = (uint8_t)((b[bit >> 3] & ~(7u << sh)) | (f << sh));
		if (sh > 5)
			b[(bit >> 3) + 1] = (uint8_t)((b[(bit >> 3) + 1] & ~(7u >> (8 - sh))) | (f >> (8 - sh)));
		break;
	}
	default: break;
	}
}

/* Index into q->scale for element i of a tensor of shape (rank, dims). */
int64_t qt_qparam_index(const struct qt_qparams *q, int rank, const int64_t *dims, int64_t i);
int64_t qt_qparam_index(const struct qt_qparams *q, int rank, const int64_t *dims, int64_t i)
{
	if (q->scheme == QT_QSCHEME_TENSOR || q->count == 1)
		return 0;
	/* Decompose i into (outer, channel, inner) around q->axis. */
	int64_t inner = 1;
	for (int d = q->axis + 1; d < rank; d++)
		inner *= dims[d];
	int64_t c = (i / inner) % dims[q->axis];
	if (q->scheme == QT_QSCHEME_CHANNEL)
		return c;
	/* Per group: position of i within channel c's slice, in row-major order. */
	int64_t outer = i / (inner * dims[q->axis]);
	int64_t pos = outer * inner + i % inner;
	int64_t per = 1;
	for (int d = 0; d < rank; d++)
		if (d != q->axis)
			per *= dims[d];
	int64_t ng = (per + q->group_size - 1) / q->group_size;
	return c * ng + pos / q->group_size;
}

enum qt_status qt_dequantize_value(const struct qt_value *v, struct qt_tensor *out)
{
	const struct qt_tensor *t = v->init;
	const struct qt_qparams *q = v->q;
	if (!t || !q)
		return qt_error(QT_E_INVALID_ARG, "tensor \"%s\" is not a quantized constant", v->name);
	enum qt_status st = qt_tensor_alloc(out, QT_DTYPE_F32, t->rank, t->dims);
	if (st)
		return st;
	int64_t n = qt_tensor_numel(t);
	float *o = out->data;
	for (int64_t i = 0; i < n; i++) {
		int64_t k = qt_qparam_index(q, t->rank, t->dims, i);
		if (q->fmt != QT_FMT_INT)
			o[i] = q->scale[k] * qt_numfmt_elem_decode(q->fmt, (uint32_t)qt_code_get(t, i));
		else
			o[i] = q->scale[k] * (float)(qt_code_get(t, i) - q->zero_point[k]);
	}
	return QT_OK;
}
