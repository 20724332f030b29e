/*
 * Quantized graph -> standard ONNX QDQ model (docs/EXPORT.md has the
 * mapping and where the result can differ from qtool's integer runtime).
 *
 * The exported model is the float simulation written as ONNX: every
 * quantized constant becomes its integer codes feeding a DequantizeLinear,
 * every quantized activation is followed by QuantizeLinear then
 * DequantizeLinear with its scale and zero point, and the ops in between are
 * the graph's own float ops. ai.qtool MatMulBias becomes MatMul then Add.
 * A fused Relu/Clip needs no node: its output range starts at 0, so the
 * zero point is 0 and QuantizeLinear's saturation applies it.
 *
 * Everything the protobuf-c structures point at lives in one arena, dropped
 * once the bytes are packed. The graph is only read.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "kernels/kernels.h"
#include "onnx_int.h"
#include "qtool/onnx.h"
#include "qtool/quant.h"

#define ONNX_T_UINT4 21
#define ONNX_T_INT4 22

struct wr {
	const struct qt_graph *g;
	struct qt_arena *ar;
	Onnx__NodeProto **nodes;
	size_t n_nodes, cap_nodes;
	Onnx__TensorProto **inits;
	size_t n_inits, cap_inits;
	const char **ref; /* per value: the name its consumers read */
	const char **src; /* per value: the name its producer writes */
	int opset;
	int need17; /* an ai.qtool LayerNormalization became ONNX's (opset 17) */
};

static void *wr_alloc(struct wr *w, size_t n)
{
	void *p = qt_arena_alloc(w->ar, n ? n : 1);
	if (p)
		memset(p, 0, n ? n : 1);
	return p;
}

/* name + suffix, made unique against the graph's value names. */
static const char *wr_name(struct wr *w, const char *base, const char *suffix)
{
	size_t n = strlen(base) + strlen(suffix) + 16;
	char *s = wr_alloc(w, n);
	if (!s)
		return NULL;
	snprintf(s, n, "%s%s", base, suffix);
	for (int k = 1; qt_graph_find_value(w->g, s) >= 0; k++)
		snprintf(s, n, "%s%s%d", base, suffix, k);
	return s;
}

static int onnx_type(enum qt_dtype dt)
{
	return dt == QT_DTYPE_S4 ? ONNX_T_INT4 : dt == QT_DTYPE_U4 ? ONNX_T_UINT4 : qt_dtype_to_onnx(dt);
}

/* A TensorProto (raw_data, little-endian) for dims and bytes that w's arena
 * or the graph own; the bytes are borrowed until packing. */
static Onnx__TensorProto *wr_tensor(struct wr *w, const char *name, enum qt_dtype dt, int rank, const int64_t *dims,
				    const void *data, size_t nbytes)
{
	Onnx__TensorProto *tp = wr_alloc(w, sizeof *tp);
	int64_t *d = wr_alloc(w, sizeof(int64_t) * (size_t)(rank > 0 ? rank : 1));
	if (!tp || !d)
		return NULL;
	onnx__tensor_proto__init(tp);
	if (rank > 0) /* a scalar passes no dims (NULL) */
		memcpy(d, dims, sizeof(int64_t) * (size_t)rank);
	tp->n_dims = (size_t)rank;
	tp->dims = d;
	tp->has_data_type = 1;
	tp->data_type = onnx_type(dt);
	tp->name = (char *)name;
	tp->has_raw_data = 1;
	tp->raw_data.len = nbytes;
	tp->raw_data.data = (uint8_t *)data;
	return tp;
}

static enum qt_status wr_add_init(struct wr *w, Onnx__TensorProto *tp)
{
	if (!tp)
		return qt_error(QT_E_NOMEM, "out of memory");
	if (w->n_inits == w->cap_inits) {
		size_t cap = w->cap_inits ? 2 * w->cap_inits : 64;
		Onnx__TensorProto **a = wr_alloc(w, cap * sizeof *a);
		if (!a)
			return qt_error(QT_E_NOMEM, "out of memory");
		if (w->n_inits)
			memcpy(a, w->inits, w->n_inits * sizeof *a);
		w->inits = a;
		w->cap_inits = cap;
	}
	w->inits[w->n_inits++] = tp;
	return QT_OK;
}

static Onnx__NodeProto *wr_node(struct wr *w, const char *op, const char *name, int n_in, int n_out)
{
	if (w->n_nodes == w->cap_nodes) {
		size_t cap = w->cap_nodes ? 2 * w->cap_nodes : 64;
		Onnx__NodeProto **a = wr_alloc(w, cap * sizeof *a);
		if (!a)
			return NULL;
		if (w->n_nodes)
			memcpy(a, w->nodes, w->n_nodes * sizeof *a);
		w->nodes = a;
		w->cap_nodes = cap;
	}
	Onnx__NodeProto *np = wr_alloc(w, sizeof *np);
	char **in = wr_alloc(w, sizeof(char *) * (size_t)(n_in + 1));
	char **out = wr_alloc(w, sizeof(char *) * (size_t)(n_out + 1));
	if (!np || !in || !out)
		return NULL;
	onnx__node_proto__init(np);
	np->op_type = (char *)op;
	np->name = (char *)name;
	np->domain = "";
	np->n_input = (size_t)n_in;
	np->input = in;
	np->n_output = (size_t)n_out;
	np->output = out;
	w->nodes[w->n_nodes++] = np;
	return np;
}

static Onnx__AttributeProto *wr_attr_int(struct wr *w, const char *name, int64_t v)
{
	Onnx__AttributeProto *ap = wr_alloc(w, sizeof *ap);
	if (!ap)
		return NULL;
	onnx__attribute_proto__init(ap);
	ap->name = (char *)name;
	ap->has_type = 1;
	ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
	ap->has_i = 1;
	ap->i = v;
	return ap;
}

/* QuantizeLinear or DequantizeLinear x -> y with (scale, zp) initializers
 * (zp may be NULL), axis and block_size (< 0: per tensor, no attribute). */
static enum qt_status wr_qdq(struct wr *w, const char *op, const char *x, const char *s, const char *zp, const char *y,
			     int axis, int64_t block)
{
	Onnx__NodeProto *np = wr_node(w, op, wr_name(w, y, op[0] == 'Q' ? "::Q" : "::DQ"), zp ? 3 : 2, 1);
	if (!np || !np->name)
		return qt_error(QT_E_NOMEM, "out of memory");
	np->input[0] = (char *)x;
	np->input[1] = (char *)s;
	if (zp)
		np->input[2] = (char *)zp;
	np->output[0] = (char *)y;
	if (axis >= 0) {
		np->n_attribute = block > 0 ? 2 : 1;
		np->attribute = wr_alloc(w, 2 * sizeof *np->attribute);
		if (!np->attribute || !(np->attribute[0] = wr_attr_int(w, "axis", axis)) ||
		    (block > 0 && !(np->attribute[1] = wr_attr_int(w, "block_size", block))))
			return qt_error(QT_E_NOMEM, "out of memory");
	}
	return QT_OK;
}

/* Activation: x (float) -> QuantizeLinear -> DequantizeLinear -> y, per tensor. */
static enum qt_status wr_act_qdq(struct wr *w, const struct qt_value *v, const char *x, const char *y)
{
	const struct qt_qparams *q = v->q;
	if (q->qtype != QT_DTYPE_U8 && q->qtype != QT_DTYPE_U4)
		return qt_error(QT_E_UNSUPPORTED, "activation \"%s\": %s activations have no QDQ export (uint8 and uint4 do)",
				v->name, qt_dtype_name(q->qtype));
	if (q->scheme != QT_QSCHEME_TENSOR || q->count != 1)
		return qt_error(QT_E_UNSUPPORTED, "activation \"%s\": only per-tensor activation parameters are exported",
				v->name);
	const char *sn = wr_name(w, v->name, "::scale"), *zn = wr_name(w, v->name, "::zp");
	const char *qn = wr_name(w, v->name, "::q");
	uint8_t *zd = wr_alloc(w, 1);
	if (!sn || !zn || !qn || !zd)
		return qt_error(QT_E_NOMEM, "out of memory");
	zd[0] = (uint8_t)q->zero_point[0];
	enum qt_status st;
	if ((st = wr_add_init(w, wr_tensor(w, sn, QT_DTYPE_F32, 0, NULL, q->scale, 4))) != QT_OK ||
	    (st = wr_add_init(w, wr_tensor(w, zn, QT_DTYPE_U8, 0, NULL, zd, 1))) != QT_OK)
		return st;
	if (q->qtype == QT_DTYPE_U4) {
		/* uint4 codes as uint8 codes in [0, 15]: Clip to the real values of
		 * codes 0 and 15 first, then QuantizeLinear rounds to the same code
		 * uint4 would. (ONNX Runtime 1.30 fuses uint4 QDQ around Conv into a
		 * QLinearConv that refuses uint4, so the model would not load.) */
		const char *lo = wr_name(w, v->name, "::lo"), *hi = wr_name(w, v->name, "::hi");
		const char *cl = wr_name(w, v->name, "::clip");
		float *b = wr_alloc(w, 2 * sizeof *b);
		Onnx__NodeProto *np = lo && hi && cl && b ? wr_node(w, "Clip", wr_name(w, v->name, "::Clip"), 3, 1) : NULL;
		if (!np || !np->name)
			return qt_error(QT_E_NOMEM, "out of memory");
		b[0] = q->scale[0] * (float)(0 - q->zero_point[0]);
		b[1] = q->scale[0] * (float)(15 - q->zero_point[0]);
		if ((st = wr_add_init(w, wr_tensor(w, lo, QT_DTYPE_F32, 0, NULL, &b[0], 4))) != QT_OK ||
		    (st = wr_add_init(w, wr_tensor(w, hi, QT_DTYPE_F32, 0, NULL, &b[1], 4))) != QT_OK)
			return st;
		np->input[0] = (char *)x;
		np->input[1] = (char *)lo;
		np->input[2] = (char *)hi;
		np->output[0] = (char *)cl;
		x = cl;
	}
	if ((st = wr_qdq(w, "QuantizeLinear", x, sn, zn, qn, -1, 0)) != QT_OK)
		return st;
	return wr_qdq(w, "DequantizeLinear", qn, sn, zn, y, -1, 0);
}

/* The node that consumes value v as its weight (input 1), or NULL. */
static const struct qt_node *weight_consumer(const struct qt_graph *g, int v)
{
	for (int i = 0; i < g->n_nodes; i++) {
		const struct qt_node *n = &g->nodes[i];
		if (n->n_inputs > 1 && n->inputs[1] == v && qt_is_weighted_op(n))
			return n;
	}
	return NULL;
}

/*
 * A quantized constant: its codes, scale and zero point as initializers and a
 * DequantizeLinear writing the value's own name. Grouped weights use the
 * scales the integer runtime applies (channel scale times its 15-bit group
 * ratio, as the float simulation does) and become ONNX blocked quantization
 * along the first axis other than the channel axis.
 */
static enum qt_status wr_const_dq(struct wr *w, int vi, int *need21)
{
	const struct qt_graph *g = w->g;
	const struct qt_value *v = &g->values[vi];
	const struct qt_qparams *q = v->q;
	const struct qt_tensor *t = v->init;
	char lbl[256];
	const struct qt_node *user = weight_consumer(g, vi);
	const char *who = user ? qt_node_label(g, user, lbl, sizeof lbl) : "constant";
	if (q->fmt != QT_FMT_INT)
		return qt_error(QT_E_UNSUPPORTED,
				"%s: weight \"%s\" is %s; ONNX QDQ has int8 and int4 weights (opset 21), so re-quantize "
				"with --weights int8 or int4",
				who, v->name, qt_numfmt_name(q->fmt));
	if (t->dtype != QT_DTYPE_I8 && t->dtype != QT_DTYPE_S4 && t->dtype != QT_DTYPE_I32 && t->dtype != QT_DTYPE_U8)
		return qt_error(QT_E_UNSUPPORTED,
				"%s: weight \"%s\" is %s; ONNX QDQ has int8 and int4 weights (opset 21), so re-quantize "
				"with --bits w8a8 or w4a8",
				who, v->name, qt_dtype_name(t->dtype));
	if (t->dtype == QT_DTYPE_S4)
		*need21 = 1;
	int64_t n = qt_tensor_numel(t);
	const char *cn = wr_name(w, v->name, "::q"), *sn = wr_name(w, v->name, "::scale");
	const char *zn = t->dtype == QT_DTYPE_I32 ? NULL : wr_name(w, v->name, "::zp");
	if (!cn || !sn || (t->dtype != QT_DTYPE_I32 && !zn))
		return qt_error(QT_E_NOMEM, "out of memory");
	enum qt_status st = wr_add_init(w, wr_tensor(w, cn, t->dtype, t->rank, t->dims, t->data,
						    qt_dtype_nbytes(t->dtype, n)));
	if (st)
		return st;
	int srank = 0, axis = -1;
	int64_t sdims[QT_MAX_RANK], block = 0, ns = 1;
	float *sc;
	if (q->scheme == QT_QSCHEME_TENSOR || q->count == 1) {
		sc = wr_alloc(w, 4);
		if (!sc)
			return qt_error(QT_E_NOMEM, "out of memory");
		sc[0] = q->scale[0];
	} else if (q->scheme == QT_QSCHEME_CHANNEL) {
		if (q->axis < 0 || q->axis >= t->rank || t->dims[q->axis] != q->count)
			return qt_error(QT_E_FORMAT, "%s: \"%s\" has %lld scales for axis %d", who, v->name,
					(long long)q->count, q->axis);
		srank = 1;
		sdims[0] = ns = q->count;
		axis = q->axis;
		sc = wr_alloc(w, (size_t)ns * 4);
		if (!sc)
			return qt_error(QT_E_NOMEM, "out of memory");
		memcpy(sc, q->scale, (size_t)ns * 4);
	} else {
		/* Group: the slice of channel c is row-major over the other axes,
		 * cut in runs of group_size. ONNX blocks run along one axis b (the
		 * first axis other than the channel's); a run is a block of
		 * group_size / P indices of b when P, the product of the axes
		 * after b other than the channel's, divides group_size. */
		int a = q->axis, b = a == 0 ? 1 : 0;
		if (t->rank < 2 || a < 0 || a >= t->rank || q->group_size < 1)
			return qt_error(QT_E_FORMAT, "%s: \"%s\" has an invalid group layout", who, v->name);
		int64_t P = 1, C = t->dims[a];
		for (int d = b + 1; d < t->rank; d++)
			if (d != a)
				P *= t->dims[d];
		if (q->group_size % P != 0)
			return qt_error(QT_E_UNSUPPORTED,
					"%s: groups of %d weights do not cover whole kernel windows of %lld, which ONNX "
					"blocked quantization (one axis) cannot express; use a group size that is a "
					"multiple of %lld",
					who, q->group_size, (long long)P, (long long)P);
		int64_t bs = q->group_size / P, Db = (t->dims[b] + bs - 1) / bs;
		if (C < 1 || q->count != C * Db)
			return qt_error(QT_E_FORMAT, "%s: \"%s\" has %lld group scales, expected %lld", who, v->name,
					(long long)q->count, (long long)(C * Db));
		srank = t->rank;
		memcpy(sdims, t->dims, sizeof sdims);
		sdims[b] = Db;
		for (int d = 0; d < srank; d++)
			ns *= sdims[d];
		axis = b;
		block = bs;
		*need21 = 1;
		sc = wr_alloc(w, (size_t)ns * 4);
		float *eff = malloc((size_t)q->count * sizeof *eff);
		if (!sc || !eff) {
			free(eff);
			return qt_error(QT_E_NOMEM, "out of memory");
		}
		for (int64_t c = 0; c < C; c++) {
			float S = 0;
			for (int64_t j = 0; j < Db; j++)
				S = fmaxf(S, q->scale[c * Db + j]);
			for (int64_t j = 0; j < Db; j++) {
				double r = nearbyint((double)q->scale[c * Db + j] / S * QT_GROUP_MAX_RATIO);
				eff[c * Db + j] = (float)(S * r / QT_GROUP_MAX_RATIO);
			}
		}
		/* Fill the scale tensor: its multi-index has channel at a and block at b. */
		for (int64_t i = 0; i < ns; i++) {
			int64_t rem = i, idx[QT_MAX_RANK];
			for (int d = srank - 1; d >= 0; d--) {
				idx[d] = rem % sdims[d];
				rem /= sdims[d];
			}
			sc[i] = eff[idx[a] * Db + idx[b]];
		}
		free(eff);
	}
	if ((st = wr_add_init(w, wr_tensor(w, sn, QT_DTYPE_F32, srank, sdims, sc, (size_t)ns * 4))) != QT_OK)
		return st;
	if (zn) {
		/* Weights are symmetric: zero points all 0, typed like the codes. */
		uint8_t *zd = wr_alloc(w, qt_dtype_nbytes(t->dtype, ns));
		if (!zd)
			return qt_error(QT_E_NOMEM, "out of memory");
		for (int64_t k = 0; k < q->count && k < ns; k++)
			if (q->zero_point[k] != 0 && t->dtype != QT_DTYPE_U8)
				return qt_error(QT_E_UNSUPPORTED, "%s: weight \"%s\" has a non-zero zero point", who,
						v->name);
		if (t->dtype == QT_DTYPE_U8)
			for (int64_t k = 0; k < ns; k++)
				zd[k] = (uint8_t)q->zero_point[ns == q->count ? k : 0];
		if ((st = wr_add_init(w, wr_tensor(w, zn, t->dtype, srank, sdims, zd, qt_dtype_nbytes(t->dtype, ns)))) !=
		    QT_OK)
			return st;
	}
	return wr_qdq(w, "DequantizeLinear", cn, sn, zn, v->name, axis, block);
}

/* Copy node attributes; subgraphs are refused. */
static enum qt_status wr_attrs(struct wr *w, const struct qt_node *n, Onnx__NodeProto *np)
{
	char lbl[256];
	if (!n->n_attrs)
		return QT_OK;
	np->attribute = wr_alloc(w, (size_t)n->n_attrs * sizeof *np->attribute);
	if (!np->attribute)
		return qt_error(QT_E_NOMEM, "out of memory");
	for (int k = 0; k < n->n_attrs; k++) {
		const struct qt_attr *at = &n->attrs[k];
		Onnx__AttributeProto *ap = wr_alloc(w, sizeof *ap);
		if (!ap)
			return qt_error(QT_E_NOMEM, "out of memory");
		onnx__attribute_proto__init(ap);
		ap->name = (char *)at->name;
		ap->has_type = 1;
		switch (at->type) {
		case QT_ATTR_FLOAT:
			ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
			ap->has_f = 1;
			ap->f = at->f;
			break;
		case QT_ATTR_INT:
			ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
			ap->has_i = 1;
			ap->i = at->i;
			break;
		case QT_ATTR_STRING:
			ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
			ap->has_s = 1;
			ap->s.len = at->s_len;
			ap->s.data = (uint8_t *)at->s;
			break;
		case QT_ATTR_FLOATS:
			ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
			ap->n_floats = (size_t)at->n;
			ap->floats = at->floats;
			break;
		case QT_ATTR_INTS:
			ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
			ap->n_ints = (size_t)at->n;
			ap->ints = at->ints;
			break;
		case QT_ATTR_STRINGS:
			ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS;
			ap->n_strings = (size_t)at->n;
			ap->strings = wr_alloc(w, (size_t)at->n * sizeof *ap->strings);
			if (!ap->strings)
				return qt_error(QT_E_NOMEM, "out of memory");
			for (int j = 0; j < at->n; j++) {
				ap->strings[j].data = (uint8_t *)at->strings[j];
				ap->strings[j].len = strlen(at->strings[j]);
			}
			break;
		case QT_ATTR_TENSOR: {
			const struct qt_tensor *t = at->t;
			if (!onnx_type(t->dtype))
				return qt_error(QT_E_UNSUPPORTED, "%s: attribute \"%s\" is a %s tensor",
						qt_node_label(w->g, n, lbl, sizeof lbl), at->name, qt_dtype_name(t->dtype));
			ap->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
			ap->t = wr_tensor(w, NULL, t->dtype, t->rank, t->dims, t->data, t->nbytes);
			if (!ap->t)
				return qt_error(QT_E_NOMEM, "out of memory");
			break;
		}
		default:
			return qt_error(QT_E_UNSUPPORTED, "%s: attribute \"%s\" (a subgraph) cannot be exported",
					qt_node_label(w->g, n, lbl, sizeof lbl), at->name);
		}
		np->attribute[np->n_attribute++] = ap;
	}
	return QT_OK;
}

/* One graph node, with MatMulBias lowered to MatMul + Add and qtool's
 * LayerNormalization written as ONNX's (the same semantics, opset 17). */
static enum qt_status wr_graph_node(struct wr *w, const struct qt_node *n)
{
	const struct qt_graph *g = w->g;
	char lbl[256];
	int mmb = !strcmp(n->domain, QT_DOMAIN_QTOOL);
	int ln = mmb && !strcmp(n->op_type, QT_OP_LAYERNORM);
	if (ln)
		w->need17 = 1;
	if (mmb && !ln && strcmp(n->op_type, QT_OP_MATMUL_BIAS))
		return qt_error(QT_E_UNSUPPORTED, "%s: qtool op %s has no ONNX equivalent",
				qt_node_label(g, n, lbl, sizeof lbl), n->op_type);
	if (!mmb && n->domain[0] && strcmp(n->domain, "ai.onnx"))
		return qt_error(QT_E_UNSUPPORTED, "%s: ops of domain \"%s\" are not exported",
				qt_node_label(g, n, lbl, sizeof lbl), n->domain);
	if (mmb && !ln) {
		if (n->n_inputs != 3 || n->n_outputs != 1 || n->inputs[0] < 0 || n->inputs[1] < 0 || n->inputs[2] < 0 ||
		    n->outputs[0] < 0)
			return qt_error(QT_E_FORMAT, "%s: MatMulBias needs inputs A, B, bias and one output",
					qt_node_label(g, n, lbl, sizeof lbl));
		int y = n->outputs[0];
		const char *mid = wr_name(w, g->values[y].name, "::matmul");
		Onnx__NodeProto *mm = mid ? wr_node(w, "MatMul", wr_name(w, n->name[0] ? n->name : mid, "::MatMul"), 2, 1)
					  : NULL;
		if (!mm || !mm->name)
			return qt_error(QT_E_NOMEM, "out of memory");
		mm->input[0] = (char *)w->ref[n->inputs[0]];
		mm->input[1] = (char *)w->ref[n->inputs[1]];
		mm->output[0] = (char *)mid;
		Onnx__NodeProto *add = wr_node(w, "Add", n->name[0] ? (char *)n->name : NULL, 2, 1);
		if (!add)
			return qt_error(QT_E_NOMEM, "out of memory");
		add->input[0] = (char *)mid;
		add->input[1] = (char *)w->ref[n->inputs[2]];
		add->output[0] = (char *)w->src[y];
		return QT_OK;
	}
	Onnx__NodeProto *np = wr_node(w, n->op_type, n->name[0] ? n->name : NULL, n->n_inputs, n->n_outputs);
	if (!np)
		return qt_error(QT_E_NOMEM, "out of memory");
	for (int k = 0; k < n->n_inputs; k++)
		np->input[k] = n->inputs[k] < 0 ? "" : (char *)w->ref[n->inputs[k]];
	for (int k = 0; k < n->n_outputs; k++)
		np->output[k] = n->outputs[k] < 0 ? "" : (char *)w->src[n->outputs[k]];
	return wr_attrs(w, n, np);
}

/* Graph input/output type: elem type and the value's shape (dims, or
 * symbolic names, or no shape when the rank is unknown). */
static Onnx__ValueInfoProto *wr_value_info(struct wr *w, const struct qt_value *v, const char *name)
{
	Onnx__ValueInfoProto *vi = wr_alloc(w, sizeof *vi);
	Onnx__TypeProto *tp = wr_alloc(w, sizeof *tp);
	Onnx__TypeProto__Tensor *tt = wr_alloc(w, sizeof *tt);
	if (!vi || !tp || !tt)
		return NULL;
	onnx__value_info_proto__init(vi);
	onnx__type_proto__init(tp);
	onnx__type_proto__tensor__init(tt);
	vi->name = (char *)name;
	vi->type = tp;
	tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	tp->tensor_type = tt;
	tt->has_elem_type = 1;
	tt->elem_type = onnx_type(v->dtype == QT_DTYPE_UNDEFINED ? QT_DTYPE_F32 : v->dtype);
	if (v->rank < 0)
		return vi;
	Onnx__TensorShapeProto *sp = wr_alloc(w, sizeof *sp);
	if (!sp)
		return NULL;
	onnx__tensor_shape_proto__init(sp);
	sp->n_dim = (size_t)v->rank;
	sp->dim = wr_alloc(w, (size_t)(v->rank + 1) * sizeof *sp->dim);
	if (!sp->dim)
		return NULL;
	for (int d = 0; d < v->rank; d++) {
		Onnx__TensorShapeProto__Dimension *dm = wr_alloc(w, sizeof *dm);
		if (!dm)
			return NULL;
		onnx__tensor_shape_proto__dimension__init(dm);
		if (v->dim_params[d]) {
			dm->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
			dm->dim_param = (char *)v->dim_params[d];
		} else if (v->dims[d] >= 0) {
			dm->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
			dm->dim_value = v->dims[d];
		}
		sp->dim[d] = dm;
	}
	tt->shape = sp;
	return vi;
}

/*
 * Moving a model from its opset to a newer one: Reduce ops (other than
 * ReduceSum, which moved at 13) take axes as an input from opset 18;
 * RoiAlign's default coordinate_transformation_mode changed at 16.
 */
static enum qt_status check_opset_bump(const struct qt_graph *g, int to)
{
	char lbl[256];
	for (int i = 0; g->opset < 16 && to >= 16 && i < g->n_nodes; i++) {
		const struct qt_node *n = &g->nodes[i];
		if (!strcmp(n->op_type, "RoiAlign") && !qt_node_attr(n, "coordinate_transformation_mode"))
			return qt_error(QT_E_UNSUPPORTED,
					"%s: the export needs opset %d, where RoiAlign's default "
					"coordinate_transformation_mode differs; re-export the FP32 model at opset 16 or newer",
					qt_node_label(g, n, lbl, sizeof lbl), to);
	}
	if (g->opset >= 18 || to < 18)
		return QT_OK;
	for (int i = 0; i < g->n_nodes; i++) {
		const struct qt_node *n = &g->nodes[i];
		if (!strncmp(n->op_type, "Reduce", 6) && strcmp(n->op_type, "ReduceSum") && qt_node_attr(n, "axes"))
			return qt_error(QT_E_UNSUPPORTED,
					"%s: int4 or grouped weights need opset 21, where %s takes axes as an input; "
					"re-export the FP32 model at opset 18 or newer",
					qt_node_label(g, n, lbl, sizeof lbl), n->op_type);
	}
	return QT_OK;
}

static enum qt_status export_graph(struct wr *w, Onnx__GraphProto *gp, int *need21)
{
	const struct qt_graph *g = w->g;
	enum qt_status st;
	w->ref = wr_alloc(w, (size_t)(g->n_values + 1) * sizeof *w->ref);
	w->src = wr_alloc(w, (size_t)(g->n_values + 1) * sizeof *w->src);
	if (!w->ref || !w->src)
		return qt_error(QT_E_NOMEM, "out of memory");
	/* Names first: which name a producer writes and its consumers read. */
	for (int vi = 0; vi < g->n_values; vi++) {
		const struct qt_value *v = &g->values[vi];
		w->ref[vi] = w->src[vi] = v->name;
		if (v->q && !v->init) {
			if (v->is_input)
				w->ref[vi] = wr_name(w, v->name, "::dq");
			else
				w->src[vi] = wr_name(w, v->name, "::f");
			if (!w->ref[vi] || !w->src[vi])
				return qt_error(QT_E_NOMEM, "out of memory");
		}
	}
	/* Constants: quantized ones through DequantizeLinear, the rest as they are. */
	for (int vi = 0; vi < g->n_values; vi++) {
		const struct qt_value *v = &g->values[vi];
		if (!v->init || !v->n_consumers)
			continue;
		if (v->q) {
			if ((st = wr_const_dq(w, vi, need21)) != QT_OK)
				return st;
		} else {
			const struct qt_tensor *t = v->init;
			if (!onnx_type(t->dtype))
				return qt_error(QT_E_UNSUPPORTED, "constant \"%s\" is a %s tensor, which has no ONNX type",
						v->name, qt_dtype_name(t->dtype));
			if ((st = wr_add_init(w, wr_tensor(w, v->name, t->dtype, t->rank, t->dims, t->data,
							   qt_dtype_nbytes(t->dtype, qt_tensor_numel(t))))) != QT_OK)
				return st;
		}
	}
	for (int i = 0; i < g->n_inputs; i++) {
		const struct qt_value *v = &g->values[g->inputs[i]];
		if (v->q && (st = wr_act_qdq(w, v, v->name, w->ref[g->inputs[i]])) != QT_OK)
			return st;
	}
	for (int ni = 0; ni < g->n_nodes; ni++) {
		const struct qt_node *n = &g->nodes[ni];
		if ((st = wr_graph_node(w, n)) != QT_OK)
			return st;
		for (int k = 0; k < n->n_outputs; k++) {
			int vi = n->outputs[k];
			if (vi >= 0 && g->values[vi].q && (st = wr_act_qdq(w, &g->values[vi], w->src[vi], w->ref[vi])) != QT_OK)
				return st;
		}
	}
	gp->name = (char *)(g->name && g->name[0] ? g->name : "qtool_qdq");
	gp->n_node = w->n_nodes;
	gp->node = w->nodes;
	gp->n_initializer = w->n_inits;
	gp->initializer = w->inits;
	gp->n_input = (size_t)g->n_inputs;
	gp->input = wr_alloc(w, (size_t)(g->n_inputs + 1) * sizeof *gp->input);
	gp->n_output = (size_t)g->n_outputs;
	gp->output = wr_alloc(w, (size_t)(g->n_outputs + 1) * sizeof *gp->output);
	if (!gp->input || !gp->output)
		return qt_error(QT_E_NOMEM, "out of memory");
	for (int i = 0; i < g->n_inputs; i++)
		if (!(gp->input[i] = wr_value_info(w, &g->values[g->inputs[i]], g->values[g->inputs[i]].name)))
			return qt_error(QT_E_NOMEM, "out of memory");
	for (int i = 0; i < g->n_outputs; i++) {
		int vi = g->outputs[i];
		if (g->values[vi].is_input && g->values[vi].q)
			return qt_error(QT_E_UNSUPPORTED, "value \"%s\" is both a graph input and output",
					g->values[vi].name);
		if (!(gp->output[i] = wr_value_info(w, &g->values[vi], g->values[vi].name)))
			return qt_error(QT_E_NOMEM, "out of memory");
	}
	return QT_OK;
}

enum qt_status qt_onnx_export_qdq(const struct qt_graph *g, uint8_t **buf_out, size_t *len_out, int *opset_out)
{
	*buf_out = NULL;
	*len_out = 0;
	int quantized = 0;
	for (int vi = 0; vi < g->n_values; vi++)
		quantized |= g->values[vi].q != NULL;
	if (!quantized)
		return qt_error(QT_E_INVALID_ARG, "%s: the graph has no quantization parameters (export takes a .qmod)",
				g->path && g->path[0] ? g->path : "graph");
	struct wr w = {.g = g, .ar = qt_arena_new(1 << 16)};
	if (!w.ar)
		return qt_error(QT_E_NOMEM, "out of memory");
	Onnx__ModelProto mp = ONNX__MODEL_PROTO__INIT;
	Onnx__GraphProto gp = ONNX__GRAPH_PROTO__INIT;
	Onnx__OperatorSetIdProto os = ONNX__OPERATOR_SET_ID_PROTO__INIT;
	Onnx__OperatorSetIdProto *osp = &os;
	int need21 = 0;
	enum qt_status st = export_graph(&w, &gp, &need21);
	/* Per-axis QuantizeLinear/DequantizeLinear: opset 13. int4, uint4 and
	 * blocked scales: opset 21. Otherwise the model keeps its own opset. */
	int opset = g->opset > 13 ? g->opset : 13;
	if (need21 && opset < 21)
		opset = 21;
	if (w.need17 && opset < 17)
		opset = 17;
	if (!st)
		st = check_opset_bump(g, opset);
	if (st) {
		qt_arena_free(w.ar);
		return st;
	}
	os.domain = "";
	os.has_version = 1;
	os.version = opset;
	mp.has_ir_version = 1;
	int64_t ir = opset >= 21 ? 10 : opset >= 19 ? 9 : opset >= 15 ? 8 : 7;
	mp.ir_version = g->ir_version > ir ? g->ir_version : ir;
	mp.n_opset_import = 1;
	mp.opset_import = &osp;
	mp.producer_name = "qtool";
	mp.producer_version = QT_VERSION_STRING;
	mp.doc_string = "QDQ export of a qtool .qmod (qtool export); see qtool's docs/EXPORT.md";
	mp.graph = &gp;
	size_t sz = onnx__model_proto__get_packed_size(&mp);
	if (sz > QT_ONNX_MAX_FILE) { /* protobuf's 2 GiB message limit: readers refuse it */
		qt_arena_free(w.ar);
		return qt_error(QT_E_UNSUPPORTED, "the QDQ model would be %zu bytes, over ONNX's 2 GiB protobuf limit", sz);
	}
	uint8_t *buf = malloc(sz ? sz : 1);
	if (!buf) {
		qt_arena_free(w.ar);
		return qt_error(QT_E_NOMEM, "out of memory for %zu bytes", sz);
	}
	onnx__model_proto__pack(&mp, buf);
	qt_arena_free(w.ar);
	*buf_out = buf;
	*len_out = sz;
	if (opset_out)
		*opset_out = opset;
	return QT_OK;
}
