/* Op registry and helpers shared by the FP32 kernels. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "qtool/quant.h"

static const struct qt_op_entry *const op_tables[] = {
	qt_ops_conv, qt_ops_linalg, qt_ops_norm, qt_ops_elemwise, qt_ops_reduce, qt_ops_shape, qt_ops_qdq,
};

qt_op_fn qt_op_find(const char *domain, const char *op_type, int opset)
{
	if (domain && !strcmp(domain, QT_DOMAIN_QTOOL)) {
		for (const struct qt_op_entry *e = qt_ops_qtool; e->op_type; e++)
			if (!strcmp(e->op_type, op_type))
				return e->fn;
		return NULL;
	}
	if (domain && domain[0] && strcmp(domain, "ai.onnx") != 0)
		return NULL;
	for (size_t t = 0; t < sizeof op_tables / sizeof op_tables[0]; t++)
		for (const struct qt_op_entry *e = op_tables[t]; e->op_type; e++)
			if (strcmp(e->op_type, op_type) == 0 && opset >= e->min_opset)
				return e->fn;
	return NULL;
}

int qt_rt_op_supported(const char *domain, const char *op_type, int opset)
{
	return qt_op_find(domain, op_type, opset) != NULL;
}

int qt_rt_unsupported_ops(const struct qt_graph *g, char *buf, size_t cap)
{
	int count = 0;
	size_t o = 0;
	if (cap)
		buf[0] = '\0';
	for (int i = 0; i < g->n_nodes; i++) {
		const struct qt_node *n = &g->nodes[i];
		if (qt_op_find(n->domain, n->op_type, g->opset))
			continue;
		int seen = 0;
		for (int j = 0; j < i && !seen; j++)
			seen = strcmp(g->nodes[j].op_type, n->op_type) == 0 &&
			       strcmp(g->nodes[j].domain, n->domain) == 0;
		if (seen)
			continue;
		count++;
		if (o < cap)
			o += (size_t)snprintf(buf + o, cap - o, "%s%s%s%s", count > 1 ? ", " : "", n->domain,
					      n->domain[0] ? "." : "", n->op_type);
	}
	return count;
}

enum qt_status qt_op_error(const struct qt_op_args *a, enum qt_status st, const char *fmt, ...)
{
	char msg[768], lbl[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return qt_error(st, "%s: %s", qt_node_label(a->g, a->node, lbl, sizeof lbl), msg);
}

enum qt_status qt_rt_work_check(double macs, const char *what)
{
	double budget = 1099511627776.0; /* 2^40 */
	const char *e = getenv("QT_MAX_NODE_MACS");
	if (e && *e) {
		char *end;
		double v = strtod(e, &end);
		if (*end || !(v > 0))
			return qt_error(QT_E_INVALID_ARG, "QT_MAX_NODE_MACS='%s' must be a positive number", e);
		budget = v;
	}
	if (!(macs <= budget))
		return qt_error(QT_E_UNSUPPORTED,
				"%s: needs %.3g multiply-accumulates, above the budget of %.3g per node "
				"(set QT_MAX_NODE_MACS to raise it)",
				what, macs, budget);
	return QT_OK;
}

int qt_op_read_ints(const struct qt_op_args *a, const struct qt_tensor *t, const char *what, int64_t *vals, int cap)
{
	if (!t) {
		qt_op_error(a, QT_E_FORMAT, "%s is missing", what);
		return -1;
	}
	if (t->dtype != QT_DTYPE_I64 && t->dtype != QT_DTYPE_I32) {
		qt_op_error(a, QT_E_FORMAT, "%s must be int64 or int32, not %s", what, qt_dtype_name(t->dtype));
		return -1;
	}
	int64_t n = qt_tensor_numel(t);
	if (n > cap) {
		qt_op_error(a, QT_E_FORMAT, "%s has %lld elements, more than %d", what, (long long)n, cap);
		return -1;
	}
	for (int64_t i = 0; i < n; i++)
		vals[i] = t->dtype == QT_DTYPE_I64 ? ((const int64_t *)t->data)[i] : ((const int32_t *)t->data)[i];
	return (int)n;
}

/* IEEE half <-> float, round to nearest even on the way down. */
static float half_to_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
	if (exp == 0) {
		float f = ldexpf((float)man, -24);
		return sign ? -f : f;
	}
	if (exp == 31)
		bits = sign | 0x7f800000u | (man << 13);
	else
		bits = sign | ((exp + 112) << 23) | (man << 13);
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

static uint16_t float_to_half(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	uint32_t sign = (x >> 16) & 0x8000;
	int32_t exp = (int32_t)((x >> 23) & 0xff);
	uint32_t man = x & 0x7fffff;
	if (exp == 255)
		return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
	int32_t e = exp - 127 + 15;
	if (e >= 31)
		return (uint16_t)(sign | 0x7c00);
	if (e <= 0) {
		if (e < -10)
			return (uint16_t)sign;
		man |= 0x800000;
		int shift = 14 - e;
		uint32_t h = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
		if (rem > half || (rem == half && (h & 1)))
			h++;
		return (uint16_t)(sign | h);
	}
	uint32_t h = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fff;
	if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
		h++;
	return (uint16_t)(sign | h);
}

double qt_tensor_get_f64(const struct qt_tensor *t, int64_t i)
{
	switch (t->dtype) {
	case QT_DTYPE_F32: return ((const float *)t->data)[i];
	case QT_DTYPE_F64: return ((const double *)t->data)[i];
	case QT_DTYPE_F16: return half_to_float(((const uint16_t *)t->data)[i]);
	case QT_DTYPE_I64: return (double)((const int64_t *)t->data)[i];
	case QT_DTYPE_I32: return ((const int32_t *)t->data)[i];
	case QT_DTYPE_I16: return ((const int16_t *)t->data)[i];
	case QT_DTYPE_I8: return ((const int8_t *)t->data)[i];
	case QT_DTYPE_U8: return ((const uint8_t *)t->data)[i];
	case QT_DTYPE_U16: return ((const uint16_t *)t->data)[i];
	case QT_DTYPE_U32: return ((const uint32_t *)t->data)[i];
	case QT_DTYPE_U64: return (double)((const uint64_t *)t->data)[i];
	case QT_DTYPE_BOOL: return ((const uint8_t *)t->data)[i] != 0;
	default: return 0;
	}
}

void qt_tensor_set_f64(struct qt_tensor *t, int64_t i, double v)
{
	switch (t->dtype) {
	case QT_DTYPE_F32: ((float *)t->data)[i] = (float)v; break;
	case QT_DTYPE_F64: ((double *)t->data)[i] = v; break;
	case QT_DTYPE_F16: ((uint16_t *)t->data)[i] = float_to_half((float)v); break;
	case QT_DTYPE_I64: ((int64_t *)t->data)[i] = (int64_t)v; break;
	case QT_DTYPE_I32: ((int32_t *)t->data)[i] = (int32_t)v; break;
	case QT_DTYPE_I16: ((int16_t *)t->data)[i] = (int16_t)v; break;
	case QT_DTYPE_I8: ((int8_t *)t->data)[i] = (int8_t)v; break;
	case QT_DTYPE_U8: ((uint8_t *)t->data)[i] = (uint8_t)v; break;
	case QT_DTYPE_U16: ((uint16_t *)t->data)[i] = (uint16_t)v; break;
	case QT_DTYPE_U32: ((uint32_t *)t->data)[i] = (uint32_t)v; break;
	case QT_DTYPE_U64: ((uint64_t *)t->data)[i] = (uint64_t)v; break;
	case QT_DTYPE_BOOL: ((uint8_t *)t->data)[i] = v != 0; break;
	default: break;
	}
}

int qt_broadcast_shape(int ra, const int64_t *da, int rb, const int64_t *db, int *rank_out, int64_t *dims_out)
{
	int r = ra > rb ? ra : rb;
	for (int i = 0; i < r; i++) {
		int64_t x = i < r - ra ? 1 : da[i - (r - ra)];
		int64_t y = i < r - rb ? 1 : db[i - (r - rb)];
		if (x != y && x != 1 && y != 1)
			return -1;
		dims_out[i] = x == 1 ? y : x;
	}
	*rank_out = r;
	return 0;
}

void qt_broadcast_strides(int r, const int64_t *d, int ro, const int64_t *dout, int64_t *strides_out)
{
	int64_t s = 1;
	for (int i = ro - 1; i >= 0; i--) {
		int k = i - (ro - r);
		if (k < 0) {
			strides_out[i] = 0;
			continue;
		}
		strides_out[i] = (d[k] == 1 && dout[i] != 1) ? 0 : s;
		s *= d[k];
	}
}
