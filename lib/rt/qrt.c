/*
 * Integer executor for quantized graphs (.qmod).
 *
 * Activations flow as uint8 codes with per-tensor (scale, zero point).
 * Conv, ConvTranspose, Gemm, MatMul and MatMulBias with quantized weights,
 * Add, Mul, Relu, Clip, MaxPool, AveragePool, GlobalAveragePool and Concat run
 * on integers only: int32 accumulation and requantization by the rule in
 * docs/FORMAT.md (lib/kernels/kernels.h). Elementwise ops of one quantized
 * input and constant scalars (Erf, Sigmoid, Div by a constant, ...) are
 * 256-entry tables. Data-movement ops (Reshape, Flatten, Transpose, Squeeze,
 * Unsqueeze, Slice, Identity, Dropout) move codes unchanged. Every other op
 * runs as dequantize -> FP32 kernel -> quantize; `qtool inspect` lists them.
 *
 * Float is used only at preparation (multipliers from scales, tables) and at
 * the float boundary: quantizing graph inputs, dequantizing graph outputs,
 * and around fallback ops.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "qtool/quant.h"
#include "qmodel_int.h"
#include "qtool/qmod.h"
#include "ops.h"
#include "pool.h"

enum qkind {
	QK_FALLBACK = 0, /* dequantize, FP32, quantize */
	QK_MOVE,         /* codes pass through an FP32 data-movement kernel */
	QK_CONV,
	QK_CONVT,        /* ConvTranspose (2-D, group 1): direct scatter loop */
	QK_GEMM,         /* Gemm / MatMul with a constant weight */
	QK_ADD,
	QK_MUL,
	QK_CLAMP,        /* Relu, Clip: clamp codes */
	QK_MAXPOOL,
	QK_AVGPOOL,      /* AveragePool, GlobalAveragePool */
	QK_CONCAT,
	QK_LUT,          /* elementwise op of one quantized input: 256-entry table */
};

struct qnode {
	enum qkind kind;
	qt_op_fn fp32;          /* FP32 kernel (QK_FALLBACK, QK_MOVE) */
	/* Weighted ops. */
	int N, K;               /* output channels (per conv group), reduction length */
	int groups;
	int depthwise;
	int tap_major;          /* conv weights packed with K ordered (kh, kw, c) */
	int KH, KW;             /* conv kernel */
	int8_t *w;              /* unpacked int8 [N_total, K] */
	void *packed;           /* kernel's packed form of w (per group, consecutive) */
	size_t packed_group_bytes;
	int32_t *colsum;        /* [N_total] or per group [N_total * ngroups] */
	int32_t *bias;          /* [N_total] or NULL */
	int64_t *bias64;        /* grouped weights */
	int32_t *ratio;         /* grouped weights [N_total * ngroups] */
	int wgroup;             /* weight group size (0 = not grouped) */
	int32_t *mult, *shift;  /* [N_total] */
	struct qt_rq rq;
	/* Elementwise / pooling. */
	struct qt_qadd_params add;
	struct qt_qmul_params mul;
	int32_t clamp_lo, clamp_hi;
	int32_t pm, pn;         /* pooling / concat requant (per tensor) */
	int32_t *cm, *cn;       /* concat per input */
	uint8_t *lut;           /* QK_LUT: output code of each input code */
	int lut_in;             /* QK_LUT: which input is the quantized one */
	/* QK_FALLBACK: quantized constant inputs decoded to FP32 once, when the
	 * model is loaded (a decoded layer's weights), per input; else NULL. */
	struct qt_tensor *dec;
	int n_dec;
};

struct qt_qrt {
	const struct qt_graph *g;
	const struct qt_kernels *k;
	struct qnode *nodes;
	struct qt_tensor *vals;
	int *remaining;
	int64_t *node_ns; /* per node, nanoseconds of the last run; NULL: not timed */
};

static int vq(const struct qt_graph *g, int v)
{
	return v >= 0 && g->values[v].q && !g->values[v].init &&
	       (g->values[v].q->qtype == QT_DTYPE_U8 || g->values[v].q->qtype == QT_DTYPE_U4);
}

static float vscale(const struct qt_graph *g, int v)
{
	return g->values[v].q->scale[0];
}

static int32_t vzp(const struct qt_graph *g, int v)
{
	return g->values[v].q->zero_point[0];
}

/* Unpack a weight value's codes into int8 (any layout). The .qmod reader
 * checked them against the weight's code range (restricted or full), so the
 * GEMM's bound |w| <= 128 holds. */
static enum qt_status unpack_codes(const struct qt_tensor *t, int8_t *dst)
{
	int64_t n = qt_tensor_numel(t);
	switch (t->dtype) {
	case QT_DTYPE_I8: memcpy(dst, t->data, (size_t)n); return QT_OK;
	case QT_DTYPE_S4: qt_unpack_s4(t->data, (size_t)n, dst); return QT_OK;
	case QT_DTYPE_S3: qt_unpack_s3(t->data, (size_t)n, dst); return QT_OK;
	case QT_DTYPE_S2: qt_unpack_s2(t->data, (size_t)n, dst); return QT_OK;
	default: return qt_error(QT_E_FORMAT, "weight dtype %s is not a weight code type", qt_dtype_name(t->dtype));
	}
}

static enum qt_status prep_weighted(struct qt_qrt *q, const struct qt_node *n, struct qnode *p)
{
	const struct qt_graph *g = q->g;
	char lbl[256];
	const struct qt_value *wv = &g->values[n->inputs[1]];
	const struct qt_tensor *w = wv->init;
	const struct qt_qparams *wq = wv->q;
	int is_conv = !strcmp(n->op_type, "Conv"), is_convt = !strcmp(n->op_type, "ConvTranspose");
	int64_t total = qt_tensor_numel(w);
	int64_t Ntot, K;
	int8_t *raw = malloc((size_t)total);
	if (!raw)
		return qt_error(QT_E_NOMEM, "out of memory");
	enum qt_status st = unpack_codes(w, raw);
	if (st) {
		free(raw);
		return st;
	}
	if (is_conv) {
		int64_t grp = qt_node_attr_int(n, "group", 1);
		Ntot = w->rank == 4 ? w->dims[0] : 0;
		if (Ntot < 1 || grp < 1 || grp > Ntot || Ntot % grp) {
			free(raw);
			return qt_error(QT_E_FORMAT, "%s: group %lld does not divide %lld output channels of a 2-D weight",
					qt_node_label(g, n, lbl, sizeof lbl), (long long)grp, (long long)Ntot);
		}
		K = total / Ntot;
		p->groups = (int)grp;
		p->w = raw;
	} else if (is_convt) {
		/* [Cin, Cout, kH, kW], kept in that layout for the scatter loop;
		 * K = Cin * kH * kW bounds the terms any one output receives. */
		Ntot = w->rank == 4 ? w->dims[1] : 0;
		if (Ntot < 1 || qt_node_attr_int(n, "group", 1) != 1) {
			free(raw);
			return qt_error(QT_E_FORMAT, "%s: the integer ConvTranspose needs a 2-D weight and group 1",
					qt_node_label(g, n, lbl, sizeof lbl));
		}
		K = total / Ntot;
		p->groups = 1;
		p->w = raw;
	} else {
		if (w->rank != 2) {
			free(raw);
			return qt_error(QT_E_FORMAT, "%s: weight must be 2-D", qt_node_label(g, n, lbl, sizeof lbl));
		}
		/* Gemm transB=1 stores [N, K]; Gemm transB=0 and MatMul store [K, N]. */
		int transB = !strcmp(n->op_type, "Gemm") && qt_node_attr_int(n, "transB", 0);
		Ntot = transB ? w->dims[0] : w->dims[1];
		K = transB ? w->dims[1] : w->dims[0];
		p->groups = 1;
		if (transB) {
			p->w = raw;
		} else {
			p->w = malloc((size_t)total);
			if (!p->w) {
				free(raw);
				return qt_error(QT_E_NOMEM, "out of memory");
			}
			for (int64_t k = 0; k < K; k++)
				for (int64_t j = 0; j < Ntot; j++)
					p->w[j * K + k] = raw[k * Ntot + j];
			free(raw);
		}
	}
	if (K < 1 || K > QT_QGEMM_MAX_K || Ntot < 1 || Ntot > (1 << 24))
		return qt_error(QT_E_FORMAT, "%s: weight of %lld x %lld is outside 1..%d x 1..%d",
				qt_node_label(g, n, lbl, sizeof lbl), (long long)Ntot, (long long)K, 1 << 24, QT_QGEMM_MAX_K);
	p->N = (int)(Ntot / p->groups);
	p->K = (int)K;
	/* Depthwise: one input and one output channel per group. */
	p->depthwise = is_conv && p->groups > 1 && p->N == 1 && w->dims[1] == 1;
	if (!n->rq || (n->rq->count != 1 && n->rq->count != Ntot))
		return qt_error(QT_E_FORMAT, "%s: requantization has %d channels, expected 1 or %lld",
				qt_node_label(g, n, lbl, sizeof lbl), n->rq ? n->rq->count : 0, (long long)Ntot);
	p->rq.mult = n->rq->mult;
	p->rq.shift = n->rq->shift;
	p->rq.per_channel = n->rq->count != 1;
	p->rq.zo = vzp(g, n->outputs[0]);
	p->rq.qmin = n->rq->qmin;
	p->rq.qmax = n->rq->qmax;
	if (!qt_rq_valid(&p->rq, (int)Ntot))
		return qt_error(QT_E_FORMAT, "%s: requantization parameters out of range", qt_node_label(g, n, lbl, sizeof lbl));
	/* Bias. */
	if (n->n_inputs > 2 && n->inputs[2] >= 0) {
		const struct qt_tensor *b = g->values[n->inputs[2]].init;
		if (!b || b->dtype != QT_DTYPE_I32 || qt_tensor_numel(b) != Ntot)
			return qt_error(QT_E_FORMAT, "%s: bias must be int32 [%lld]", qt_node_label(g, n, lbl, sizeof lbl),
					(long long)Ntot);
		p->bias = malloc((size_t)Ntot * 4);
		if (!p->bias)
			return qt_error(QT_E_NOMEM, "out of memory");
		memcpy(p->bias, b->data, (size_t)Ntot * 4);
	}
	if (is_convt) {
		if (wq->scheme == QT_QSCHEME_GROUP)
			return qt_error(QT_E_UNSUPPORTED, "%s: ConvTranspose weights must be per tensor or per channel",
					qt_node_label(g, n, lbl, sizeof lbl));
		return QT_OK;
	}
	if (wq->scheme == QT_QSCHEME_GROUP) {
		/* Grouped weights: integer ratios of each group's scale to the
		 * channel's largest, r = round(s_g / s_max * 2^15) (prepared in
		 * double; see kernels.h for the accumulation bounds). */
		if (p->groups != 1 || wq->group_size <= 0)
			return qt_error(QT_E_UNSUPPORTED, "%s: grouped weights need group=1",
					qt_node_label(g, n, lbl, sizeof lbl));
		int G = wq->group_size, ng = (p->K + G - 1) / G;
		if (wq->count != Ntot * ng)
			return qt_error(QT_E_FORMAT, "%s: weight has %lld group scales, expected %lld",
					qt_node_label(g, n, lbl, sizeof lbl), (long long)wq->count, (long long)(Ntot * ng));
		p->wgroup = G;
		p->ratio = malloc((size_t)(Ntot * ng) * 4);
		p->colsum = malloc((size_t)(Ntot * ng) * 4);
		p->bias64 = malloc((size_t)Ntot * 8);
		if (!p->ratio || !p->colsum || !p->bias64)
			return qt_error(QT_E_NOMEM, "out of memory");
		for (int64_t c = 0; c < Ntot; c++) {
			float m = 0;
			for (int j = 0; j < ng; j++)
				m = fmaxf(m, wq->scale[c * ng + j]);
			for (int j = 0; j < ng; j++)
				p->ratio[c * ng + j] = (int32_t)nearbyint((double)wq->scale[c * ng + j] / m * QT_GROUP_MAX_RATIO);
			p->bias64[c] = p->bias ? (int64_t)p->bias[c] * QT_GROUP_MAX_RATIO : 0;
		}
		qt_colsum_groups_s8__ref(p->N, p->K, G, p->w, (size_t)p->K, p->colsum);
		const struct qt_qgemm_kernel *gk = q->k->qgemm_group;
		if (gk) {
			p->packed_group_bytes = qt_qgemm_packed_size(gk, p->N, p->K);
			p->packed = aligned_alloc(64, (p->packed_group_bytes + 64) & ~(size_t)63);
			if (!p->packed)
				return qt_error(QT_E_NOMEM, "out of memory");
			int32_t *unused = malloc((size_t)p->N * 4);
			if (!unused)
				return qt_error(QT_E_NOMEM, "out of memory");
			qt_qgemm_pack(gk, p->N, p->K, p->w, (size_t)p->K, p->packed, unused);
			free(unused);
		}
		return QT_OK;
	}
	if (p->depthwise)
		return QT_OK;
	if (is_conv) {
		/* Reorder each output channel's K from ONNX's (c, kh, kw) to
		 * (kh, kw, c): im2col then copies runs of channels of one input
		 * pixel from a channels-last copy of the input, instead of
		 * gathering single bytes. (Grouped-scale weights keep ONNX order:
		 * their scale groups are runs of that order.) */
		int64_t cg = w->dims[1], taps = w->dims[2] * w->dims[3];
		int8_t *t = malloc((size_t)total);
		if (!t)
			return qt_error(QT_E_NOMEM, "out of memory");
		for (int64_t m = 0; m < Ntot; m++)
			for (int64_t c = 0; c < cg; c++)
				for (int64_t k = 0; k < taps; k++)
					t[m * K + k * cg + c] = p->w[m * K + c * taps + k];
		free(p->w);
		p->w = t;
		p->tap_major = 1;
		p->KH = (int)w->dims[2];
		p->KW = (int)w->dims[3];
	}
	const struct qt_qgemm_kernel *kk = q->k->qgemm;
	p->packed_group_bytes = qt_qgemm_packed_size(kk, p->N, p->K);
	p->packed = aligned_alloc(64, (p->packed_group_bytes * (size_t)p->groups + 64) & ~(size_t)63);
	p->colsum = malloc((size_t)Ntot * 4);
	if (!p->packed || !p->colsum)
		return qt_error(QT_E_NOMEM, "out of memory");
	for (int gi = 0; gi < p->groups; gi++)
		qt_qgemm_pack(kk, p->N, p->K, p->w + (size_t)gi * p->N * p->K, (size_t)p->K,
			      (char *)p->packed + p->packed_group_bytes * (size_t)gi, p->colsum + (size_t)gi * p->N);
	return QT_OK;
}

static const char *const move_ops[] = {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze",
				       "Slice", "Identity", "Dropout", NULL};

static int in_list(const char *op, const char *const *l)
{
	for (int i = 0; l[i]; i++)
		if (!strcmp(op, l[i]))
			return 1;
	return 0;
}

/* Elementwise ops that become a table when every input but one is a
 * constant scalar: out = f(in) elementwise, so the output code is a function
 * of the input code alone. */
static const char *const lut_ops[] = {"Abs", "Neg", "Exp", "Log", "Sqrt", "Erf", "Sigmoid", "Tanh", "Reciprocal",
				      "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "Tan", "Asin", "Acos",
				      "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Softplus", "Softsign",
				      "Elu", "Selu", "LeakyRelu", "HardSigmoid", "HardSwish", "ThresholdedRelu",
				      "Celu", "Shrink", "Add", "Sub", "Mul", "Div", "Pow", "Relu", "Clip", NULL};

/*
 * Build node n's table: run its own FP32 kernel once on the 256 dequantized
 * input codes (constants as they are) and quantize each result, which is
 * exactly what dequantize -> FP32 -> quantize computes for that code (float
 * at preparation only). Returns 1 with p->lut set, 0 when the node does not
 * qualify (it then stays a fallback).
 */
static int prepare_lut(const struct qt_graph *g, const struct qt_node *n, struct qnode *p)
{
	int y = n->outputs[0], k0 = -1;
	if (!in_list(n->op_type, lut_ops) || !vq(g, y) || (n->domain[0] && strcmp(n->domain, "ai.onnx")))
		return 0;
	if (n->n_inputs > 1 && g->opset < 7)
		return 0; /* old broadcast rules */
	for (int k = 0; k < n->n_inputs; k++) {
		int v = n->inputs[k];
		if (v < 0)
			continue;
		const struct qt_tensor *t = g->values[v].init;
		if (t && !g->values[v].q && qt_tensor_numel(t) == 1)
			continue; /* constant scalar operand */
		if (t || !vq(g, v) || k0 >= 0)
			return 0;
		k0 = k;
	}
	if (k0 < 0)
		return 0;
	int x = n->inputs[k0];
	const struct qt_tensor *ins[8];
	struct qt_tensor codes = {0}, out = {0};
	if (n->n_inputs > 8 || qt_tensor_alloc(&codes, QT_DTYPE_F32, 1, (int64_t[]){256}) != QT_OK) {
		qt_error_clear();
		return 0;
	}
	float *cd = codes.data;
	for (int c = 0; c < 256; c++)
		cd[c] = vscale(g, x) * (float)(c - vzp(g, x));
	for (int k = 0; k < n->n_inputs; k++)
		ins[k] = k == k0 ? &codes : n->inputs[k] < 0 ? NULL : g->values[n->inputs[k]].init;
	struct qt_op_args a = {.g = g, .node = n, .opset = g->opset, .n_in = n->n_inputs, .in = ins, .n_out = 1,
			       .out = &out};
	int ok = p->fp32(&a) == QT_OK && out.dtype == QT_DTYPE_F32 && qt_tensor_numel(&out) == 256 &&
		 (p->lut = malloc(256)) != NULL;
	if (ok) {
		int32_t qmin, qmax;
		qt_qtype_range(g->values[y].q->qtype, &qmin, &qmax);
		const float *od = out.data;
		for (int c = 0; c < 256; c++)
			p->lut[c] = (uint8_t)qt_quantize_one(od[c], vscale(g, y), vzp(g, y), qmin, qmax);
		p->lut_in = k0;
	}
	qt_error_clear();
	qt_tensor_free(&codes);
	qt_tensor_free(&out);
	return ok;
}

/* Same (scale, zero point) on two quantized values. */
static int same_q(const struct qt_graph *g, int a, int b)
{
	return vq(g, a) && vq(g, b) && vscale(g, a) == vscale(g, b) && vzp(g, a) == vzp(g, b);
}

/*
 * The integer Conv and pooling kernels handle 2-D windows. Checks strides,
 * dilations, pads, kernel_shape and auto_pad once, at preparation, so the
 * kernels' index arithmetic cannot overflow or divide by zero. `pool` also
 * requires kernel_shape and refuses ceil_mode (callers fall back to float).
 */
static enum qt_status check_window_attrs(const struct qt_node *n, int pool)
{
	const int64_t *v;
	int c;
	if ((c = qt_node_attr_ints(n, "strides", &v)) && (c != 2 || v[0] < 1 || v[1] < 1 || v[0] > 65535 || v[1] > 65535))
		return qt_error(QT_E_FORMAT, "strides must be two values in 1..65535");
	if ((c = qt_node_attr_ints(n, "dilations", &v)) && (c != 2 || v[0] < 1 || v[1] < 1 || v[0] > 65535 || v[1] > 65535))
		return qt_error(QT_E_FORMAT, "dilations must be two values in 1..65535");
	if ((c = qt_node_attr_ints(n, "pads", &v))) {
		if (c != 4)
			return qt_error(QT_E_FORMAT, "pads must have four values");
		for (int i = 0; i < 4; i++)
			if (v[i] < 0 || v[i] > 65535)
				return qt_error(QT_E_FORMAT, "pads must be in 0..65535");
	}
	const char *ap = qt_node_attr_str(n, "auto_pad", "NOTSET");
	if (strcmp(ap, "NOTSET") && strcmp(ap, "SAME_UPPER") && strcmp(ap, "SAME_LOWER") && strcmp(ap, "VALID"))
		return qt_error(QT_E_FORMAT, "auto_pad \"%s\" is not NOTSET, SAME_UPPER, SAME_LOWER or VALID", ap);
	if (pool) {
		if (qt_node_attr_ints(n, "kernel_shape", &v) != 2 || v[0] < 1 || v[1] < 1 || v[0] > 65535 || v[1] > 65535)
			return qt_error(QT_E_UNSUPPORTED, "integer pooling needs a 2-D kernel_shape");
		if (qt_node_attr_int(n, "ceil_mode", 0))
			return qt_error(QT_E_UNSUPPORTED, "integer pooling does not support ceil_mode");
	}
	return QT_OK;
}

static enum qt_status prepare_node(struct qt_qrt *q, const struct qt_node *n, struct qnode *p)
{
	const struct qt_graph *g = q->g;
	const char *op = n->op_type;
	int x = n->n_inputs > 0 ? n->inputs[0] : -1, y = n->n_outputs > 0 ? n->outputs[0] : -1;
	p->fp32 = qt_op_find(n->domain, op, g->opset);
	if (n->rq) {
		enum qt_status st;
		if (!vq(g, x) || !vq(g, y))
			return qt_error(QT_E_FORMAT, "requantized node needs quantized input and output");
		if (!strcmp(op, "Conv") || !strcmp(op, "ConvTranspose")) {
			if ((st = check_window_attrs(n, 0)) != QT_OK)
				return st;
			p->kind = !strcmp(op, "Conv") ? QK_CONV : QK_CONVT;
		} else if (!strcmp(op, "Gemm")) {
			if (qt_node_attr_int(n, "transA", 0) || qt_node_attr_float(n, "alpha", 1) != 1.0f ||
			    qt_node_attr_float(n, "beta", 1) != 1.0f)
				return qt_error(QT_E_FORMAT, "a quantized Gemm must have transA=0, alpha=1, beta=1");
			p->kind = QK_GEMM;
		} else if (qt_is_weighted_op(n)) { /* MatMul, MatMulBias */
			p->kind = QK_GEMM;
		} else {
			return qt_error(QT_E_FORMAT, "only Conv, ConvTranspose, Gemm, MatMul and MatMulBias carry requantization");
		}
		return prep_weighted(q, n, p);
	}
	if (!p->fp32)
		return qt_error(QT_E_UNSUPPORTED, "op %s has no kernel", op);
	p->kind = QK_FALLBACK;
	if (n->n_outputs != 1 || !vq(g, y))
		return QT_OK;
	/* Relu/Clip keeping their input's parameters clamp codes (below);
	 * everything else elementwise becomes a table. */
	if (!(in_list(op, (const char *const[]){"Relu", "Clip", NULL}) && same_q(g, x, y)) && prepare_lut(g, n, p)) {
		p->kind = QK_LUT;
		return QT_OK;
	}
	if (!vq(g, x))
		return QT_OK;
	int32_t qmin, qmax;
	qt_qtype_range(g->values[y].q->qtype, &qmin, &qmax);
	if (in_list(op, move_ops) && same_q(g, x, y)) {
		p->kind = QK_MOVE;
	} else if ((!strcmp(op, "Relu") || !strcmp(op, "Clip")) && same_q(g, x, y)) {
		float lo = 0, hi = INFINITY;
		if (!strcmp(op, "Clip")) {
			lo = -INFINITY;
			if (g->opset < 11) {
				lo = qt_node_attr_float(n, "min", -INFINITY);
				hi = qt_node_attr_float(n, "max", INFINITY);
			} else {
				for (int k = 1; k <= 2; k++) {
					if (k >= n->n_inputs || n->inputs[k] < 0)
						continue;
					const struct qt_tensor *t = g->values[n->inputs[k]].init;
					if (!t || t->dtype != QT_DTYPE_F32 || qt_tensor_numel(t) != 1)
						return QT_OK; /* dynamic bounds: fallback */
					if (k == 1)
						lo = *(float *)t->data;
					else
						hi = *(float *)t->data;
				}
			}
		}
		float s = vscale(g, x);
		int32_t z = vzp(g, x);
		p->clamp_lo = isinf(lo) ? qmin : qt_quantize_one(lo, s, z, qmin, qmax);
		p->clamp_hi = isinf(hi) ? qmax : qt_quantize_one(hi, s, z, qmin, qmax);
		p->kind = QK_CLAMP;
	} else if (!strcmp(op, "MaxPool") && same_q(g, x, y) && n->n_outputs == 1 && check_window_attrs(n, 1) == QT_OK) {
		p->kind = QK_MAXPOOL;
	} else if ((!strcmp(op, "Add") || !strcmp(op, "Mul")) && n->n_inputs == 2 && vq(g, n->inputs[1]) &&
		   g->opset >= 7) {
		/* Before opset 7 these ops had their own broadcast/axis rules: float. */
		int b = n->inputs[1];
		enum qt_status st;
		if (!strcmp(op, "Add")) {
			st = qt_qadd_prepare(vscale(g, x), vzp(g, x), vscale(g, b), vzp(g, b), vscale(g, y), vzp(g, y),
					     qmin, qmax, &p->add);
			p->kind = QK_ADD;
		} else {
			st = qt_qmul_prepare(vscale(g, x), vzp(g, x), vscale(g, b), vzp(g, b), vscale(g, y), vzp(g, y),
					     qmin, qmax, &p->mul);
			p->kind = QK_MUL;
		}
		if (st) {
			p->kind = QK_FALLBACK; /* e.g. a multiplier out of range: stay exact in float */
			qt_error_clear();
		}
	} else if (!strcmp(op, "GlobalAveragePool") ||
		   (!strcmp(op, "AveragePool") && !qt_node_attr_int(n, "count_include_pad", 0) &&
		    check_window_attrs(n, 1) == QT_OK)) {
		int sh;
		if (qt_quantize_multiplier((double)vscale(g, x) / vscale(g, y), &p->pm, &sh) != QT_OK) {
			qt_error_clear();
			return QT_OK; /* a ratio outside the multiplier's range: stay in float */
		}
		p->pn = sh;
		p->kind = QK_AVGPOOL;
	} else if (!strcmp(op, "Concat")) {
		int ok = 1;
		for (int k = 0; k < n->n_inputs && ok; k++)
			ok = vq(g, n->inputs[k]);
		if (ok) {
			p->cm = malloc((size_t)n->n_inputs * 4);
			p->cn = malloc((size_t)n->n_inputs * 4);
			if (!p->cm || !p->cn)
				return qt_error(QT_E_NOMEM, "out of memory");
			for (int k = 0; k < n->n_inputs && ok; k++) {
				int sh;
				ok = qt_quantize_multiplier((double)vscale(g, n->inputs[k]) / vscale(g, y), &p->cm[k], &sh) == QT_OK;
				p->cn[k] = sh;
			}
			p->kind = ok ? QK_CONCAT : QK_FALLBACK;
			qt_error_clear();
		}
	}
	return QT_OK;
}

static void free_qnode(struct qnode *p)
{
	free(p->w);
	free(p->packed);
	free(p->colsum);
	free(p->bias);
	free(p->bias64);
	free(p->ratio);
	free(p->cm);
	free(p->cn);
	free(p->lut);
	for (int k = 0; k < p->n_dec; k++)
		qt_tensor_free(&p->dec[k]);
	free(p->dec);
}

static void free_nodes(struct qt_qrt *q)
{
	if (!q->nodes)
		return;
	for (int i = 0; i < q->g->n_nodes; i++)
		free_qnode(&q->nodes[i]);
	free(q->nodes);
}

int qt_qrt_node_is_integer(const struct qt_graph *g, int node)
{
	struct qt_qrt tmp = {.g = g, .k = qt_kernels_active()};
	struct qnode p;
	memset(&p, 0, sizeof p);
	if (!tmp.k)
		return 0;
	enum qt_status st = prepare_node(&tmp, &g->nodes[node], &p);
	int r = !st && p.kind != QK_FALLBACK;
	free_qnode(&p);
	qt_error_clear();
	return r;
}

void qt_qrt_free(struct qt_qrt *q)
{
	if (!q)
		return;
	if (q->vals)
		for (int v = 0; v < q->g->n_values; v++)
			qt_tensor_free(&q->vals[v]);
	free_nodes(q);
	free(q->vals);
	free(q->remaining);
	free(q->node_ns);
	free(q);
}

/* A fallback node's quantized constants decoded to FP32 once (the weights
 * of a layer in a number format, run in float). */
static enum qt_status decode_constants(const struct qt_graph *g, const struct qt_node *n, struct qnode *p)
{
	for (int k = 0; k < n->n_inputs; k++) {
		const struct qt_value *v = n->inputs[k] >= 0 ? &g->values[n->inputs[k]] : NULL;
		if (!v || !v->init || !v->q)
			continue;
		if (!p->dec && !(p->dec = calloc((size_t)n->n_inputs, sizeof *p->dec)))
			return qt_error(QT_E_NOMEM, "out of memory");
		p->n_dec = n->n_inputs;
		enum qt_status st = qt_dequantize_value(v, &p->dec[k]);
		if (st)
			return st;
	}
	return QT_OK;
}

enum qt_status qt_qrt_new(const struct qt_graph *g, struct qt_qrt **out)
{
	char lbl[256];
	*out = NULL;
	const struct qt_kernels *k = qt_kernels_active();
	if (!k)
		return QT_E_UNSUPPORTED;
	struct qt_qrt *q = calloc(1, sizeof *q);
	if (!q)
		return qt_error(QT_E_NOMEM, "out of memory");
	q->g = g;
	q->k = k;
	q->nodes = calloc((size_t)g->n_nodes + 1, sizeof *q->nodes);
	q->vals = calloc((size_t)g->n_values + 1, sizeof *q->vals);
	q->remaining = calloc((size_t)g->n_values + 1, sizeof *q->remaining);
	if (!q->nodes || !q->vals || !q->remaining) {
		qt_qrt_free(q);
		return qt_error(QT_E_NOMEM, "out of memory");
	}
	for (int i = 0; i < g->n_nodes; i++) {
		enum qt_status st = prepare_node(q, &g->nodes[i], &q->nodes[i]);
		if (!st && q->nodes[i].kind == QK_FALLBACK)
			st = decode_constants(g, &g->nodes[i], &q->nodes[i]);
		if (st) {
			qt_error_prefix(st, "%s", qt_node_label(g, &g->nodes[i], lbl, sizeof lbl));
			qt_qrt_free(q);
			return st;
		}
	}
	*out = q;
	return QT_OK;
}

/* ---------------------------------------------------------------------- */
/* Execution                                                               */

static enum qt_status quantize_tensor(const struct qt_graph *g, int v, const struct qt_tensor *f,
				      struct qt_tensor *out)
{
	int32_t qmin, qmax;
	if (f->dtype != QT_DTYPE_F32)
		return qt_error(QT_E_INVALID_ARG, "tensor \"%s\" must be float32 to be quantized, not %s",
				g->values[v].name, qt_dtype_name(f->dtype));
	qt_qtype_range(g->values[v].q->qtype, &qmin, &qmax);
	enum qt_status st = qt_tensor_alloc(out, QT_DTYPE_U8, f->rank, f->dims);
	if (st)
		return st;
	float s = vscale(g, v);
	int32_t z = vzp(g, v);
	int64_t n = qt_tensor_numel(f);
	qt_quantize_u8(f->data, (size_t)n, s, z, qmin, qmax, out->data);
	return QT_OK;
}

static enum qt_status dequantize_tensor(const struct qt_graph *g, int v, const struct qt_tensor *c,
					struct qt_tensor *out)
{
	enum qt_status st = qt_tensor_alloc(out, QT_DTYPE_F32, c->rank, c->dims);
	if (st)
		return st;
	float s = vscale(g, v);
	int32_t z = vzp(g, v);
	int64_t n = qt_tensor_numel(c);
	const uint8_t *src = c->data;
	float *d = out->data;
	for (int64_t i = 0; i < n; i++)
		d[i] = s * (float)((int32_t)src[i] - z);
	return QT_OK;
}

/* Float views of the node's inputs (dequantized copies where quantized). */
static enum qt_status run_fallback(struct qt_qrt *q, const struct qt_node *n, struct qnode *p)
{
	const struct qt_graph *g = q->g;
	struct qt_tensor tmp[64], outs[16];
	const struct qt_tensor *ins[64];
	enum qt_status st = QT_OK;
	memset(tmp, 0, sizeof tmp);
	memset(outs, 0, sizeof outs);
	if (n->n_inputs > 64 || n->n_outputs > 16)
		return qt_error(QT_E_UNSUPPORTED, "too many inputs or outputs");
	for (int k = 0; k < n->n_inputs && !st; k++) {
		int v = n->inputs[k];
		ins[k] = NULL;
		if (v < 0)
			continue;
		const struct qt_value *val = &g->values[v];
		if (val->init && val->q && k < p->n_dec && p->dec[k].data)
			ins[k] = &p->dec[k];
		else if (val->init && val->q)
			st = qt_dequantize_value(val, &tmp[k]), ins[k] = &tmp[k];
		else if (val->init)
			ins[k] = val->init;
		else if (vq(g, v) && q->vals[v].dtype == QT_DTYPE_U8)
			st = dequantize_tensor(g, v, &q->vals[v], &tmp[k]), ins[k] = &tmp[k];
		else
			ins[k] = &q->vals[v];
	}
	if (!st) {
		struct qt_op_args a = {.g = g, .node = n, .opset = g->opset, .n_in = n->n_inputs, .in = ins,
				       .n_out = n->n_outputs, .out = outs};
		st = p->fp32(&a);
	}
	for (int k = 0; k < n->n_inputs; k++)
		qt_tensor_free(&tmp[k]);
	for (int o = 0; o < n->n_outputs && !st; o++) {
		int v = n->outputs[o];
		if (v < 0)
			continue;
		if (vq(g, v) && outs[o].dtype == QT_DTYPE_F32) {
			st = quantize_tensor(g, v, &outs[o], &q->vals[v]);
		} else {
			q->vals[v] = outs[o];
			memset(&outs[o], 0, sizeof outs[o]);
		}
	}
	for (int o = 0; o < n->n_outputs; o++)
		qt_tensor_free(&outs[o]);
	return st;
}

static enum qt_status run_move(struct qt_qrt *q, const struct qt_node *n, struct qnode *p)
{
	const struct qt_graph *g = q->g;
	const struct qt_tensor *ins[64];
	struct qt_tensor outs[16];
	memset(outs, 0, sizeof outs);
	for (int k = 0; k < n->n_inputs && k < 64; k++)
		ins[k] = n->inputs[k] < 0 ? NULL : g->values[n->inputs[k]].init ? g->values[n->inputs[k]].init
									       : &q->vals[n->inputs[k]];
	struct qt_op_args a = {.g = g, .node = n, .opset = g->opset, .n_in = n->n_inputs, .in = ins,
			       .n_out = n->n_outputs, .out = outs};
	enum qt_status st = p->fp32(&a);
	if (st)
		return st;
	for (int o = 0; o < n->n_outputs; o++) {
		if (n->outputs[o] >= 0)
			q->vals[n->outputs[o]] = outs[o];
		else
			qt_tensor_free(&outs[o]);
	}
	return QT_OK;
}

/* Conv geometry (2-D; 1-D convs are 2-D with H = 1). */
struct geom {
	int64_t N, C, H, W, M, KH, KW, OH, OW, sh, sw, dh, dw, pt, pl, pb, pr;
};

static enum qt_status conv_geom(const struct qt_node *n, const struct qt_tensor *x, const struct qt_tensor *w,
				struct geom *o)
{
	if (x->rank != 4 || w->rank != 4)
		return qt_error(QT_E_UNSUPPORTED, "integer Conv supports 2-D convolutions only");
	const int64_t *v;
	int c;
	o->N = x->dims[0], o->C = x->dims[1], o->H = x->dims[2], o->W = x->dims[3];
	o->M = w->dims[0], o->KH = w->dims[2], o->KW = w->dims[3];
	o->sh = o->sw = 1, o->dh = o->dw = 1, o->pt = o->pl = o->pb = o->pr = 0;
	if ((c = qt_node_attr_ints(n, "strides", &v)) == 2)
		o->sh = v[0], o->sw = v[1];
	if ((c = qt_node_attr_ints(n, "dilations", &v)) == 2)
		o->dh = v[0], o->dw = v[1];
	if ((c = qt_node_attr_ints(n, "pads", &v)) == 4)
		o->pt = v[0], o->pl = v[1], o->pb = v[2], o->pr = v[3];
	const char *ap = qt_node_attr_str(n, "auto_pad", "NOTSET");
	if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
		int64_t oh = (o->H + o->sh - 1) / o->sh, ow = (o->W + o->sw - 1) / o->sw;
		int64_t ph = (oh - 1) * o->sh + (o->KH - 1) * o->dh + 1 - o->H;
		int64_t pw = (ow - 1) * o->sw + (o->KW - 1) * o->dw + 1 - o->W;
		ph = ph > 0 ? ph : 0, pw = pw > 0 ? pw : 0;
		int up = !strcmp(ap, "SAME_UPPER");
		o->pt = up ? ph / 2 : ph - ph / 2, o->pb = ph - o->pt;
		o->pl = up ? pw / 2 : pw - pw / 2, o->pr = pw - o->pl;
	} else if (!strcmp(ap, "VALID")) {
		o->pt = o->pl = o->pb = o->pr = 0;
	}
	/* As in the FP32 runtime: a pad as wide as the window only adds outputs
	 * of padding, and a file must not ask for unbounded outputs or work. */
	int64_t eh = o->dh * (o->KH - 1) + 1, ew = o->dw * (o->KW - 1) + 1;
	if (o->pt >= eh || o->pb >= eh || o->pl >= ew || o->pr >= ew)
		return qt_error(QT_E_FORMAT, "pads [%lld,%lld,%lld,%lld] must be smaller than the kernel extent %lldx%lld",
				(long long)o->pt, (long long)o->pl, (long long)o->pb, (long long)o->pr, (long long)eh,
				(long long)ew);
	o->OH = (o->H + o->pt + o->pb - o->dh * (o->KH - 1) - 1) / o->sh + 1;
	o->OW = (o->W + o->pl + o->pr - o->dw * (o->KW - 1) - 1) / o->sw + 1;
	if (o->OH <= 0 || o->OW <= 0)
		return qt_error(QT_E_FORMAT, "Conv output would be empty");
	/* QT_E_FORMAT, not UNSUPPORTED: the float fallback would only refuse it again. */
	if (qt_rt_work_check((double)o->N * (double)o->M * (double)o->OH * (double)o->OW * (double)w->dims[1] *
				     (double)o->KH * (double)o->KW,
			     "window") != QT_OK)
		return QT_E_FORMAT;
	return QT_OK;
}

/* ---------------------------------------------------------------------- */
/* Threads: the kernels keep no state, so work splits into independent      */
/* items run on the runtimes' persistent pool (pool.h).                    */

/* Rows [A, Y) of one GEMM + requantization with p's weights (conv group gi). */
static void gemm_rows(const struct qt_qrt *q, const struct qnode *p, int gi, int M, const uint8_t *A, size_t lda,
		      int32_t za, uint8_t *Y, size_t ldy)
{
	struct qt_rq rq = p->rq;
	if (rq.per_channel) {
		rq.mult += gi * p->N;
		rq.shift += gi * p->N;
	}
	if (p->wgroup && q->k->qgemm_group)
		q->k->qgemm_group->gemm_group_requant(M, p->N, p->K, p->wgroup, A, lda, za, p->packed, p->colsum,
						      p->ratio, p->bias64, &rq, Y, ldy);
	else if (p->wgroup)
		q->k->qgemm_group_requant(M, p->N, p->K, p->wgroup, A, lda, za, p->w, (size_t)p->K, p->colsum, p->ratio,
					  p->bias64, &rq, Y, ldy);
	else
		q->k->qgemm->gemm_requant(M, p->N, p->K, A, lda, (const char *)p->packed + p->packed_group_bytes * (size_t)gi,
					  za, p->colsum + gi * p->N, p->bias ? p->bias + gi * p->N : NULL, &rq, Y, ldy);
}

/*
 * A conv runs as independent work items split over the threads: (image,
 * group, chunk of output pixels). Chunks are sized for the cache and, at
 * small batches, so that every thread gets items (a ResNet's last stage at
 * batch 1 has 49 pixels: two chunks of 25 and 24).
 */
struct conv_job {
	const struct qt_qrt *q;
	const struct qnode *p;
	struct geom G;
	int32_t zi;
	const uint8_t *x;
	uint8_t *y;
	uint8_t *xt;            /* tap-major: the input channels-last, [N * groups][H * W][Cg] */
	uint8_t *col[QT_POOL_MAX], *tmp[QT_POOL_MAX]; /* per thread */
	int64_t chunk, nchunks; /* output pixels per item; chunks per (image, group) */
	int64_t slices;         /* tap-major transpose: pixel ranges per (image, group) */
};

/* Bytes of im2col per thread and chunk: 16 MiB bounds the buffer whatever
 * the geometry (a damaged file's pads or dilations cannot ask for gigabytes). */
int64_t qt_qrt_col_budget = (int64_t)16 << 20;
/* Bytes of im2col a chunk aims at, so its rows stay in L2 while the GEMM
 * reads them. */
#define COL_CACHE_BYTES ((int64_t)192 << 10)

/*
 * dst[c * dst_stride + r] = src[r * src_stride + c] for r < rows, c < cols:
 * in 32 x 32 blocks, so both sides stay in cache lines.
 */
static void transpose_u8(const uint8_t *src, size_t rows, size_t cols, size_t src_stride, uint8_t *dst,
			 size_t dst_stride)
{
	if (rows == 1 || cols == 1) { /* a vector: a strided copy */
		for (size_t i = 0; i < rows * cols; i++)
			dst[cols == 1 ? i : i * dst_stride] = src[cols == 1 ? i * src_stride : i];
		return;
	}
	for (size_t r0 = 0; r0 < rows; r0 += 32)
		for (size_t c0 = 0; c0 < cols; c0 += 32) {
			size_t r1 = r0 + 32 < rows ? r0 + 32 : rows, c1 = c0 + 32 < cols ? c0 + 32 : cols;
			for (size_t c = c0; c < c1; c++)
				for (size_t r = r0; r < r1; r++)
					dst[c * dst_stride + r] = src[r * src_stride + c];
		}
}

/*
 * Depthwise accumulators of one plane, any kernel: acc (zeroed by the
 * caller) += w * x tap by tap over the padded plane xp (row stride Wp);
 * *wsum receives the sum of the weights.
 */
static void dw_taps(const uint8_t *xp, int64_t Wp, const int8_t *wc, const struct geom *G, int32_t *restrict acc,
		    int32_t *wsum)
{
	for (int64_t i = 0; i < G->KH; i++)
		for (int64_t k = 0; k < G->KW; k++) {
			int32_t wv = wc[i * G->KW + k];
			*wsum += wv;
			if (!wv)
				continue;
			for (int64_t oh = 0; oh < G->OH; oh++) {
				const uint8_t *restrict src = xp + (oh * G->sh + i * G->dh) * Wp + k * G->dw;
				int32_t *restrict a = acc + oh * G->OW;
				if (G->sw == 1)
					for (int64_t ow = 0; ow < G->OW; ow++)
						a[ow] += (int32_t)src[ow] * wv;
				else
					for (int64_t ow = 0; ow < G->OW; ow++)
						a[ow] += (int32_t)src[ow * G->sw] * wv;
			}
		}
}

/*
 * The same accumulators for a 3x3 kernel, dilation 1, column stride 1 or 2
 * (MobileNet's depthwise layers): all nine taps of an output pixel summed in
 * registers and stored once, where dw_taps loads and stores the row nine
 * times. Integer sums (at most 9 * 255 * 128 in magnitude): any order gives
 * the same value.
 */
static void dw3x3_rows(const uint8_t *xp, int64_t Wp, const int8_t *wc, const struct geom *G, int32_t *restrict acc)
{
	const int32_t w0 = wc[0], w1 = wc[1], w2 = wc[2], w3 = wc[3], w4 = wc[4], w5 = wc[5], w6 = wc[6],
		      w7 = wc[7], w8 = wc[8];
	for (int64_t oh = 0; oh < G->OH; oh++) {
		const uint8_t *restrict r0 = xp + oh * G->sh * Wp, *restrict r1 = r0 + Wp, *restrict r2 = r1 + Wp;
		int32_t *restrict a = acc + oh * G->OW;
		if (G->sw == 1)
			for (int64_t ow = 0; ow < G->OW; ow++)
				a[ow] = r0[ow] * w0 + r0[ow + 1] * w1 + r0[ow + 2] * w2 + r1[ow] * w3 +
					r1[ow + 1] * w4 + r1[ow + 2] * w5 + r2[ow] * w6 + r2[ow + 1] * w7 +
					r2[ow + 2] * w8;
		else
			for (int64_t ow = 0; ow < G->OW; ow++)
				a[ow] = r0[2 * ow] * w0 + r0[2 * ow + 1] * w1 + r0[2 * ow + 2] * w2 + r1[2 * ow] * w3 +
					r1[2 * ow + 1] * w4 + r1[2 * ow + 2] * w5 + r2[2 * ow] * w6 +
					r2[2 * ow + 1] * w7 + r2[2 * ow + 2] * w8;
	}
}

/*
 * Depthwise (image, channel) planes [lo, hi): each channel's plane is copied
 * once into a buffer padded with the input zero point to the extent the taps
 * reach, so every tap is a plain multiply-add over all OH x OW outputs
 * (vectorizable rows, no bounds checks). Padding holds zi, so subtracting
 * zi * sum(w) afterwards gives exactly sum over in-image taps of (x - zi) * w.
 * Accumulator: |sum x*w| and |zi * sum w| are each <= KH*KW*255*128, far
 * inside int32 for the kernels the runtime accepts; the bias is added in
 * int64 and the total saturated to int32 as the rule says.
 */
static void dw_planes(void *ctx, int t, int64_t lo, int64_t hi)
{
	const struct conv_job *j = ctx;
	const struct qnode *p = j->p;
	const struct geom *G = &j->G;
	const int64_t Hp = (G->OH - 1) * G->sh + (G->KH - 1) * G->dh + 1;
	const int64_t Wp = (G->OW - 1) * G->sw + (G->KW - 1) * G->dw + 1, P = G->OH * G->OW;
	int32_t *restrict acc = (int32_t *)j->col[t];
	uint8_t *restrict xp = j->tmp[t];
	const int32_t zi = j->zi;
	for (int64_t bc = lo; bc < hi; bc++) {
		const int64_t b = bc / G->M, c = bc % G->M;
		const uint8_t *xc = j->x + (b * G->C + c) * G->H * G->W;
		const int8_t *wc = p->w + c * p->K;
		memset(xp, zi, (size_t)(Hp * Wp));
		for (int64_t r = 0; r < Hp; r++) {
			int64_t ih = r - G->pt;
			if (ih < 0 || ih >= G->H)
				continue;
			int64_t c0 = G->pl, w0 = 0, n = G->W; /* input columns [w0, w0 + n) at xp column c0 + w0 */
			if (c0 < 0)
				w0 = -c0, n -= w0;
			if (c0 + w0 + n > Wp)
				n = Wp - c0 - w0;
			if (n > 0)
				memcpy(xp + r * Wp + c0 + w0, xc + ih * G->W + w0, (size_t)n);
		}
		int32_t wsum = 0;
		if (G->KH == 3 && G->KW == 3 && G->dh == 1 && G->dw == 1 && (G->sw == 1 || G->sw == 2)) {
			for (int i = 0; i < 9; i++)
				wsum += wc[i];
			dw3x3_rows(xp, Wp, wc, G, acc);
		} else {
			memset(acc, 0, (size_t)P * sizeof *acc);
			dw_taps(xp, Wp, wc, G, acc, &wsum);
		}
		int ci = p->rq.per_channel ? (int)c : 0;
		const int64_t base = (p->bias ? p->bias[c] : 0) - (int64_t)zi * wsum;
		const int32_t m = p->rq.mult[ci], sh = p->rq.shift[ci], zo = p->rq.zo;
		const int32_t qmin = p->rq.qmin, qmax = p->rq.qmax;
		uint8_t *restrict yc = j->y + (b * G->M + c) * P;
		for (int64_t i = 0; i < P; i++)
			yc[i] = qt_rq_clamp(qt_rq_mulshift(qt_sat32(acc[i] + base), m, sh), zo, qmin, qmax);
	}
}

/* Tap-major items [lo, hi) of (image * group, pixel slice): the group's input
 * planes transposed to channels-last, once per conv. */
static void conv_to_nhwc(void *ctx, int t, int64_t lo, int64_t hi)
{
	const struct conv_job *j = ctx;
	const struct geom *G = &j->G;
	const int64_t Cg = G->C / j->p->groups, HW = G->H * G->W;
	(void)t;
	for (int64_t it = lo; it < hi; it++) {
		int64_t bg = it / j->slices, s = it % j->slices;
		int64_t h0 = HW * s / j->slices, h1 = HW * (s + 1) / j->slices;
		if (h1 > h0)
			transpose_u8(j->x + bg * Cg * HW + h0, (size_t)Cg, (size_t)(h1 - h0), (size_t)HW,
				     j->xt + bg * HW * Cg + h0 * Cg, (size_t)Cg);
	}
}

/* im2col of output pixels [p0, p1) of image-group bg, tap-major (K ordered
 * (kh, kw, c)): each tap copies Cg channels of the channels-last input, or
 * the input zero point where it falls in the padding (a real 0). */
static void im2col_tap_major(const struct conv_job *j, int64_t bg, int64_t p0, int64_t p1, uint8_t *col)
{
	const struct geom *G = &j->G;
	const int64_t K = j->p->K, Cg = G->C / j->p->groups;
	const uint8_t *xt = j->xt + bg * G->H * G->W * Cg;
	for (int64_t pos = p0; pos < p1; pos++) {
		int64_t oh = pos / G->OW, ow = pos % G->OW;
		uint8_t *row = col + (pos - p0) * K;
		for (int64_t i = 0; i < G->KH; i++) {
			int64_t ih = oh * G->sh - G->pt + i * G->dh;
			for (int64_t k = 0; k < G->KW; k++) {
				int64_t iw = ow * G->sw - G->pl + k * G->dw;
				uint8_t *dst = row + (i * G->KW + k) * Cg;
				if (ih < 0 || ih >= G->H || iw < 0 || iw >= G->W) {
					memset(dst, j->zi, (size_t)Cg);
				} else {
					/* Runs are short (a few to a few hundred bytes):
					 * an inline loop beats a call. */
					const uint8_t *src = xt + (ih * G->W + iw) * Cg;
					for (int64_t c = 0; c < Cg; c++)
						dst[c] = src[c];
				}
			}
		}
	}
}

/* im2col of output pixels [p0, p1) of image-group bg, channel-major (K
 * ordered (c, kh, kw)), from the NCHW input. */
static void im2col_chw(const struct conv_job *j, int64_t bg, int64_t p0, int64_t p1, uint8_t *col)
{
	const struct geom *G = &j->G;
	const int64_t K = j->p->K, Cg = G->C / j->p->groups;
	const uint8_t *xg = j->x + bg * Cg * G->H * G->W;
	for (int64_t pos = p0; pos < p1; pos++) {
		int64_t oh = pos / G->OW, ow = pos % G->OW;
		uint8_t *row = col + (pos - p0) * K;
		for (int64_t c = 0; c < Cg; c++)
			for (int64_t i = 0; i < G->KH; i++) {
				int64_t ih = oh * G->sh - G->pt + i * G->dh;
				for (int64_t k = 0; k < G->KW; k++) {
					int64_t iw = ow * G->sw - G->pl + k * G->dw;
					row[(c * G->KH + i) * G->KW + k] =
						(ih < 0 || ih >= G->H || iw < 0 || iw >= G->W)
							? (uint8_t)j->zi
							: xg[c * G->H * G->W + ih * G->W + iw];
				}
			}
	}
}

/* Conv items [lo, hi): im2col of the item's pixels (none for a 1x1 stride-1
 * unpadded tap-major conv: the channels-last input is the GEMM's A), GEMM +
 * requant of its output channels into [pixels, channels], then transposed
 * into the NCHW output. */
static void conv_items(void *ctx, int t, int64_t lo, int64_t hi)
{
	const struct conv_job *j = ctx;
	const struct qnode *p = j->p;
	const struct geom *G = &j->G;
	const int64_t P = G->OH * G->OW, K = p->K, Cg = G->C / p->groups;
	const int isone = p->tap_major && G->KH == 1 && G->KW == 1 && G->sh == 1 && G->sw == 1 && !G->pt && !G->pl &&
			  !G->pb && !G->pr;
	uint8_t *col = j->col[t], *tmp = j->tmp[t];
	for (int64_t it = lo; it < hi; it++) {
		int64_t c = it % j->nchunks, bg = it / j->nchunks;
		int64_t b = bg / p->groups, gi = bg % p->groups;
		int64_t p0 = c * j->chunk, p1 = p0 + j->chunk < P ? p0 + j->chunk : P;
		const uint8_t *A = col;
		if (isone)
			A = j->xt + (bg * G->H * G->W + p0) * Cg;
		else if (p->tap_major)
			im2col_tap_major(j, bg, p0, p1, col);
		else
			im2col_chw(j, bg, p0, p1, col);
		gemm_rows(j->q, p, (int)gi, (int)(p1 - p0), A, (size_t)K, j->zi, tmp, (size_t)p->N);
		transpose_u8(tmp, (size_t)(p1 - p0), (size_t)p->N, (size_t)p->N, j->y + (b * G->M + gi * p->N) * P + p0,
			     (size_t)P);
	}
}

/* Node n's output codes [N, M, OH, OW]. */
static enum qt_status alloc_nchw(struct qt_qrt *q, const struct qt_node *n, int64_t N, int64_t M, int64_t OH,
				 int64_t OW, uint8_t **data)
{
	struct qt_tensor *y = &q->vals[n->outputs[0]];
	enum qt_status st = qt_tensor_alloc(y, QT_DTYPE_U8, 4, (int64_t[]){N, M, OH, OW});
	*data = st ? NULL : y->data;
	return st;
}

static void free_bufs(struct conv_job *j, int nt)
{
	for (int t = 0; t < nt; t++) {
		free(j->col[t]);
		free(j->tmp[t]);
	}
	free(j->xt);
}

/* Per-thread buffers of col_bytes and tmp_bytes (+1: never malloc(0)). */
static enum qt_status alloc_bufs(struct conv_job *j, int nt, size_t col_bytes, size_t tmp_bytes)
{
	for (int t = 0; t < nt; t++) {
		j->col[t] = malloc(col_bytes + 1);
		j->tmp[t] = malloc(tmp_bytes + 1);
		if (!j->col[t] || !j->tmp[t]) {
			free_bufs(j, t + 1);
			return qt_error(QT_E_NOMEM, "out of memory");
		}
	}
	return QT_OK;
}

/* Split a conv into work items (see struct conv_job) for nt threads. */
static void plan_items(struct conv_job *j, int nt)
{
	const struct qnode *p = j->p;
	const int64_t P = j->G.OH * j->G.OW, bg = j->G.N * p->groups;
	int64_t chunk = qt_qrt_col_budget / p->K, cache = COL_CACHE_BYTES / p->K;
	if (cache < 64)
		cache = 64;
	if (chunk > cache)
		chunk = cache;
	/* Enough items for every thread: a whole image's pixels per thread at most. */
	if (bg < nt) {
		int64_t per = (P + nt / bg - 1) / (nt / bg);
		if (chunk > per)
			chunk = per;
	}
	chunk = chunk < 1 ? 1 : chunk > P ? P : chunk;
	j->chunk = chunk;
	j->nchunks = (P + chunk - 1) / chunk;
	j->slices = bg < nt ? (nt + bg - 1) / bg : 1;
}

static enum qt_status run_conv(struct qt_qrt *q, const struct qt_node *n, struct qnode *p)
{
	const struct qt_graph *g = q->g;
	const struct qt_tensor *x = &q->vals[n->inputs[0]];
	const struct qt_tensor *w = g->values[n->inputs[1]].init;
	struct conv_job j = {.q = q, .p = p};
	enum qt_status st = conv_geom(n, x, w, &j.G);
	if (st)
		return st;
	if (j.G.C != w->dims[1] * p->groups)
		return qt_error(QT_E_FORMAT, "input has %lld channels, weight expects %lld", (long long)j.G.C,
				(long long)(w->dims[1] * p->groups));
	if ((st = alloc_nchw(q, n, j.G.N, j.G.M, j.G.OH, j.G.OW, &j.y)) != QT_OK)
		return st;
	j.zi = vzp(g, n->inputs[0]);
	j.x = x->data;
	int nt = qt_pool_threads();
	if (p->depthwise) {
		int64_t Hp = (j.G.OH - 1) * j.G.sh + (j.G.KH - 1) * j.G.dh + 1;
		int64_t Wp = (j.G.OW - 1) * j.G.sw + (j.G.KW - 1) * j.G.dw + 1;
		if (nt > j.G.N * j.G.M)
			nt = (int)(j.G.N * j.G.M);
		if ((st = alloc_bufs(&j, nt, (size_t)(j.G.OH * j.G.OW) * sizeof(int32_t), (size_t)(Hp * Wp))))
			return st;
		qt_pool_for(j.G.N * j.G.M, nt, dw_planes, &j);
		free_bufs(&j, nt);
		return QT_OK;
	}
	plan_items(&j, nt);
	if ((st = alloc_bufs(&j, nt, (size_t)(j.chunk * p->K), (size_t)(j.chunk * p->N))))
		return st;
	if (p->tap_major) {
		j.xt = malloc((size_t)qt_tensor_numel(x) + 1);
		if (!j.xt) {
			free_bufs(&j, nt);
			return qt_error(QT_E_NOMEM, "out of memory");
		}
		qt_pool_for(j.G.N * p->groups * j.slices, nt, conv_to_nhwc, &j);
	}
	qt_pool_for(j.G.N * p->groups * j.nchunks, nt, conv_items, &j);
	free_bufs(&j, nt);
	return QT_OK;
}

struct convt_job {
	const struct qnode *p;
	struct qt_convt_geom G;
	int32_t zi;
	const uint8_t *x;
	uint8_t *y;
	int32_t *acc[QT_POOL_MAX]; /* per thread, [M, OH, OW] */
};

/* ConvTranspose images [lo, hi): every input pixel scatters (x - zi) * w
 * into the int32 accumulators of the outputs it reaches (at most K = Cin *
 * kH * kW terms each, <= 65535, so int32 is exact), then the bias is added in
 * int64, saturated, and the rule applied per output channel. */
static void convt_images(void *ctx, int t, int64_t lo, int64_t hi)
{
	const struct convt_job *j = ctx;
	const struct qnode *p = j->p;
	const struct qt_convt_geom *G = &j->G;
	int32_t *acc = j->acc[t];
	int64_t P = G->OH * G->OW;
	for (int64_t b = lo; b < hi; b++) {
		memset(acc, 0, (size_t)(G->M * P) * sizeof *acc);
		for (int64_t ci = 0; ci < G->C; ci++) {
			const uint8_t *xc = j->x + (b * G->C + ci) * G->H * G->W;
			const int8_t *wc = p->w + ci * G->M * G->KH * G->KW;
			for (int64_t ih = 0; ih < G->H; ih++)
				for (int64_t iw = 0; iw < G->W; iw++) {
					int32_t xv = (int32_t)xc[ih * G->W + iw] - j->zi;
					if (!xv)
						continue;
					for (int64_t m = 0; m < G->M; m++)
						for (int64_t kh = 0; kh < G->KH; kh++) {
							int64_t oh = ih * G->sh - G->pt + kh * G->dh;
							if (oh < 0 || oh >= G->OH)
								continue;
							const int8_t *wr = wc + (m * G->KH + kh) * G->KW;
							int32_t *ar = acc + (m * G->OH + oh) * G->OW;
							for (int64_t kw = 0; kw < G->KW; kw++) {
								int64_t ow = iw * G->sw - G->pl + kw * G->dw;
								if (ow >= 0 && ow < G->OW)
									ar[ow] += xv * wr[kw];
							}
						}
				}
		}
		for (int64_t m = 0; m < G->M; m++) {
			int ci = p->rq.per_channel ? (int)m : 0;
			int64_t bias = p->bias ? p->bias[m] : 0;
			uint8_t *yo = j->y + (b * G->M + m) * P;
			for (int64_t i = 0; i < P; i++)
				yo[i] = qt_rq_clamp(qt_rq_mulshift(qt_sat32(acc[m * P + i] + bias), p->rq.mult[ci],
								   p->rq.shift[ci]),
						    p->rq.zo, p->rq.qmin, p->rq.qmax);
		}
	}
}

static enum qt_status run_convt(struct qt_qrt *q, const struct qt_node *n, struct qnode *p)
{
	const struct qt_graph *g = q->g;
	const struct qt_tensor *x = &q->vals[n->inputs[0]], *w = g->values[n->inputs[1]].init;
	const struct qt_tensor *ins[2] = {x, w};
	struct qt_op_args a = {.g = g, .node = n, .opset = g->opset, .n_in = 2, .in = ins};
	struct convt_job j = {.p = p};
	enum qt_status st = qt_convt_geometry_2d(&a, x, w, &j.G);
	if (st)
		return st;
	if (j.G.M != p->N || j.G.group != 1)
		return qt_error(QT_E_FORMAT, "ConvTranspose output has %lld channels, the weight %d",
				(long long)j.G.M, p->N);
	if ((st = alloc_nchw(q, n, j.G.N, j.G.M, j.G.OH, j.G.OW, &j.y)) != QT_OK)
		return st;
	j.zi = vzp(g, n->inputs[0]);
	j.x = x->data;
	int nt = qt_pool_threads() < j.G.N ? qt_pool_threads() : (int)(j.G.N > 0 ? j.G.N : 1);
	size_t accn = (size_t)(j.G.M * j.G.OH * j.G.OW) + 1;
	for (int t = 0; t < nt; t++)
		if (!(j.acc[t] = malloc(accn * sizeof(int32_t)))) {
			for (int u = 0; u < t; u++)
				free(j.acc[u]);
			return qt_error(QT_E_NOMEM, "out of memory");
		}
	qt_pool_for(j.G.N, nt, convt_images, &j);
	for (int t = 0; t < nt; t++)
		free(j.acc[t]);
	return QT_OK;
}

struct gemm_job {
	const struct qt_qrt *q;
	const struct qnode *p;
	const uint8_t *A;
	uint8_t *Y;
	int32_t za;
};

static void gemm_part(void *ctx, int t, int64_t lo, int64_t hi)
{
	const struct gemm_job *j = ctx;
	(void)t;
	gemm_rows(j->q, j->p, 0, (int)(hi - lo), j->A + lo * j->p->K, (size_t)j->p->K, j->za, j->Y + lo * j->p->N,
		  (size_t)j->p->N);
}

static enum qt_status run_gemm(struct qt_qrt *q, const struct qt_node *n, struct qnode *p)
{
	const struct qt_graph *g = q->g;
	const struct qt_tensor *x = &q->vals[n->inputs[0]];
	if (x->rank < 1 || x->dims[x->rank - 1] != p->K)
		return qt_error(QT_E_FORMAT, "input's last dimension must be %d", p->K);
	if (!strcmp(n->op_type, "Gemm") && x->rank != 2)
		return qt_error(QT_E_FORMAT, "Gemm input must be 2-D");
	int64_t M = qt_tensor_numel(x) / p->K;
	int64_t dims[QT_MAX_RANK];
	memcpy(dims, x->dims, sizeof dims);
	dims[x->rank - 1] = p->N;
	struct qt_tensor *y = &q->vals[n->outputs[0]];
	enum qt_status st = qt_tensor_alloc(y, QT_DTYPE_U8, x->rank, dims);
	if (st)
		return st;
	struct gemm_job j = {q, p, x->data, y->data, vzp(g, n->inputs[0])};
	/* Threads pay off only for enough rows: below ~16 rows a thread start costs more. */
	int nt = M >= 32 ? qt_pool_threads() : 1;
	qt_pool_for(M, nt, gemm_part, &j);
	return QT_OK;
}

struct binary_job {
	const struct qt_qrt *q;
	const struct qnode *p;
	const uint8_t *a, *b;
	uint8_t *y;
};

/* Elements [lo, hi) of a same-shape Add or Mul (one kernel call per thread). */
static void binary_part(void *ctx, int t, int64_t lo, int64_t hi)
{
	const struct binary_job *j = ctx;
	(void)t;
	if (j->p->kind == QK_ADD)
		j->q->k->qadd((size_t)(hi - lo), j->a + lo, 1, j->b + lo, 1, j->y + lo, &j->p->add);
	else
		j->q->k->qmul((size_t)(hi - lo), j->a + lo, 1, j->b + lo, 1, j->y + lo, &j->p->mul);
}

/* Numpy broadcasting of two code tensors through a per-element kernel. */
static enum qt_status run_binary(struct qt_qrt *q, const struct qt_node *n, struct qnode *p)
{
	const struct qt_tensor *a = &q->vals[n->inputs[0]], *b = &q->vals[n->inputs[1]];
	int r;
	int64_t d[QT_MAX_RANK], sa[QT_MAX_RANK], sb[QT_MAX_RANK];
	if (qt_broadcast_shape(a->rank, a->dims, b->rank, b->dims, &r, d))
		return qt_error(QT_E_FORMAT, "inputs cannot be broadcast");
	struct qt_tensor *y = &q->vals[n->outputs[0]];
	enum qt_status st = qt_tensor_alloc(y, QT_DTYPE_U8, r, d);
	if (st)
		return st;
	int same = a->rank == b->rank && !memcmp(a->dims, b->dims, sizeof(int64_t) * (size_t)a->rank);
	if (same) {
		/* The residual Add of a ResNet: one flat run, split over the threads
		 * when it is large enough to pay for the wake-up. */
		struct binary_job j = {q, p, a->data, b->data, y->data};
		int64_t e = qt_tensor_numel(y);
		qt_pool_for(e, e >= 16384 ? qt_pool_threads() : 1, binary_part, &j);
		return QT_OK;
	}
	qt_broadcast_strides(a->rank, a->dims, r, d, sa);
	qt_broadcast_strides(b->rank, b->dims, r, d, sb);
	/* Run the innermost dimension as one kernel call. */
	int64_t inner = r ? d[r - 1] : 1, outer = qt_tensor_numel(y) / (inner ? inner : 1);
	const uint8_t *ad = a->data, *bd = b->data;
	uint8_t *yd = y->data;
	for (int64_t o = 0; o < outer; o++) {
		int64_t oa = 0, ob = 0, rem = o;
		for (int k = r - 2; k >= 0; k--) {
			int64_t i = rem % d[k];
			rem /= d[k];
			oa += i * sa[k];
			ob += i * sb[k];
		}
		size_t as = r ? (size_t)sa[r - 1] : 0, bs = r ? (size_t)sb[r - 1] : 0;
		if (p->kind == QK_ADD)
			q->k->qadd((size_t)inner, ad + oa, as, bd + ob, bs, yd + o * inner, &p->add);
		else
			q->k->qmul((size_t)inner, ad + oa, as, bd + ob, bs, yd + o * inner, &p->mul);
	}
	return QT_OK;
}

static enum qt_status run_clamp(struct qt_qrt *q, const struct qt_node *n, struct qnode *p)
{
	const struct qt_tensor *x = &q->vals[n->inputs[0]];
	struct qt_tensor *y = &q->vals[n->outputs[0]];
	enum qt_status st = qt_tensor_copy(y, x);
	if (st)
		return st;
	uint8_t *d = y->data;
	for (int64_t i = 0, e = qt_tensor_numel(y); i < e; i++)
		d[i] = (uint8_t)(d[i] < p->clamp_lo ? p->clamp_lo : d[i] > p->clamp_hi ? p->clamp_hi : d[i]);
	return QT_OK;
}

/* MaxPool and AveragePool geometry share conv_geom's arithmetic. */
static enum qt_status pool_geom(const struct qt_node *n, const struct qt_tensor *x, struct geom *G)
{
	/* check_window_attrs() vetted kernel_shape and ceil_mode at preparation. */
	const int64_t *ks;
	if (x->rank != 4 || qt_node_attr_ints(n, "kernel_shape", &ks) != 2)
		return qt_error(QT_E_UNSUPPORTED, "integer pooling supports 2-D only");
	struct qt_tensor w = {.rank = 4, .dims = {x->dims[1], 1, ks[0], ks[1]}};
	const int64_t *st;
	enum qt_status s = conv_geom(n, x, &w, G);
	if (qt_node_attr_ints(n, "strides", &st) != 2)
		G->sh = G->sw = 1;
	return s;
}

/*
 * Multiplier of s_in / (cnt * s_out) from the prepared (m0, n0) of
 * s_in / s_out, in integers only: m = round(m0 * 2^31 / cnt), renormalised
 * to [2^30, 2^31) by rounding right shifts. Returns 0 when the result falls
 * below the rule's range (the average then rounds to the zero point).
 */
static int div_multiplier(int32_t m0, int n0, int64_t cnt, int32_t *m_out, int *n_out)
{
	if (cnt < 1 || m0 <= 0)
		return 0;
	int64_t num = (int64_t)m0 << 31; /* < 2^62 */
	int64_t qv = (num + cnt / 2) / cnt;
	int n = n0 + 31;
	while (qv >= ((int64_t)1 << 31)) {
		qv = (qv + 1) >> 1;
		n--;
	}
	while (qv < ((int64_t)1 << 30) && n < 62) {
		qv <<= 1;
		n++;
	}
	if (n < 1 || n > 62 || qv < ((int64_t)1 << 30))
		return 0;
	*m_out = (int32_t)qv;
	*n_out = n;
	return 1;
}

static enum qt_status run_pool(struct qt_qrt *q, const struct qt_node *n, struct qnode *p)
{
	const struct qt_graph *g = q->g;
	const struct qt_tensor *x = &q->vals[n->inputs[0]];
	struct geom G;
	enum qt_status st;
	int global = !strcmp(n->op_type, "GlobalAveragePool");
	if (global) {
		if (x->rank != 4)
			return qt_error(QT_E_UNSUPPORTED, "integer GlobalAveragePool supports 4-D only");
		G = (struct geom){.N = x->dims[0], .C = x->dims[1], .H = x->dims[2], .W = x->dims[3], .KH = x->dims[2],
				  .KW = x->dims[3], .OH = 1, .OW = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1};
	} else if ((st = pool_geom(n, x, &G)) != QT_OK) {
		return st;
	}
	int64_t dims[4] = {G.N, G.C, G.OH, G.OW};
	struct qt_tensor *y = &q->vals[n->outputs[0]];
	if ((st = qt_tensor_alloc(y, QT_DTYPE_U8, 4, dims)) != QT_OK)
		return st;
	int is_max = p->kind == QK_MAXPOOL;
	int32_t zi = is_max ? 0 : vzp(g, n->inputs[0]), zo = is_max ? 0 : vzp(g, n->outputs[0]);
	int32_t qmin, qmax;
	qt_qtype_range(g->values[n->outputs[0]].q->qtype, &qmin, &qmax);
	int64_t last_cnt = -1;
	int32_t cm = 0;
	int cn = 1, have = 0;
	const uint8_t *xd = x->data;
	uint8_t *yd = y->data;
	for (int64_t bc = 0; bc < G.N * G.C; bc++) {
		const uint8_t *xc = xd + bc * G.H * G.W;
		for (int64_t oh = 0; oh < G.OH; oh++)
			for (int64_t ow = 0; ow < G.OW; ow++) {
				int32_t best = 0;
				int64_t sum = 0, cnt = 0;
				for (int64_t i = 0; i < G.KH; i++) {
					int64_t ih = oh * G.sh - G.pt + i * G.dh;
					if (ih < 0 || ih >= G.H)
						continue;
					for (int64_t j = 0; j < G.KW; j++) {
						int64_t iw = ow * G.sw - G.pl + j * G.dw;
						if (iw < 0 || iw >= G.W)
							continue;
						int32_t v = xc[ih * G.W + iw];
						best = v > best ? v : best;
						sum += v - zi;
						cnt++;
					}
				}
				uint8_t out;
				if (is_max) {
					out = (uint8_t)best;
				} else if (cnt != last_cnt) {
					/* The window size changes only at padded borders. */
					last_cnt = cnt;
					have = div_multiplier(p->pm, p->pn, cnt, &cm, &cn);
					out = have ? qt_rq_clamp(qt_rq_mulshift64(sum, cm, cn), zo, qmin, qmax) : (uint8_t)zo;
				} else {
					out = have ? qt_rq_clamp(qt_rq_mulshift64(sum, cm, cn), zo, qmin, qmax) : (uint8_t)zo;
				}
				yd[(bc * G.OH + oh) * G.OW + ow] = out;
			}
	}
	return QT_OK;
}

static enum qt_status run_concat(struct qt_qrt *q, const struct qt_node *n, struct qnode *p)
{
	const struct qt_graph *g = q->g;
	const struct qt_tensor *x0 = &q->vals[n->inputs[0]];
	int axis = qt_norm_axis(qt_node_attr_int(n, "axis", q->g->opset < 4 ? 1 : 0), x0->rank);
	if (axis < 0)
		return qt_error(QT_E_FORMAT, "axis out of range");
	int64_t dims[QT_MAX_RANK];
	memcpy(dims, x0->dims, sizeof dims);
	dims[axis] = 0;
	for (int k = 0; k < n->n_inputs; k++) {
		const struct qt_tensor *x = &q->vals[n->inputs[k]];
		if (x->rank != x0->rank)
			return qt_error(QT_E_FORMAT, "inputs differ in rank");
		for (int d = 0; d < x->rank; d++)
			if (d != axis && x->dims[d] != x0->dims[d])
				return qt_error(QT_E_FORMAT, "inputs differ outside the concat axis");
		dims[axis] += x->dims[axis];
	}
	struct qt_tensor *y = &q->vals[n->outputs[0]];
	enum qt_status st = qt_tensor_alloc(y, QT_DTYPE_U8, x0->rank, dims);
	if (st)
		return st;
	int64_t outer = 1, inner = 1;
	for (int d = 0; d < axis; d++)
		outer *= dims[d];
	for (int d = axis + 1; d < x0->rank; d++)
		inner *= dims[d];
	int32_t zo = vzp(g, n->outputs[0]), qmin, qmax;
	qt_qtype_range(g->values[n->outputs[0]].q->qtype, &qmin, &qmax);
	uint8_t *yd = y->data;
	int64_t off = 0;
	for (int k = 0; k < n->n_inputs; k++) {
		const struct qt_tensor *x = &q->vals[n->inputs[k]];
		int32_t zi = vzp(g, n->inputs[k]);
		int64_t chunk = x->dims[axis] * inner;
		const uint8_t *xd = x->data;
		for (int64_t o = 0; o < outer; o++)
			for (int64_t i = 0; i < chunk; i++)
				yd[o * dims[axis] * inner + off + i] =
					qt_rq_clamp(qt_rq_mulshift(xd[o * chunk + i] - zi, p->cm[k], p->cn[k]), zo, qmin, qmax);
		off += chunk;
	}
	return QT_OK;
}

/* Table lookup; the scalar constants can only add leading 1s to the shape. */
static enum qt_status run_lut(struct qt_qrt *q, const struct qt_node *n, struct qnode *p)
{
	const struct qt_graph *g = q->g;
	const struct qt_tensor *x = &q->vals[n->inputs[p->lut_in]];
	int r = x->rank;
	int64_t d[QT_MAX_RANK];
	memcpy(d, x->dims, sizeof d);
	for (int k = 0; k < n->n_inputs; k++) {
		const struct qt_tensor *c = n->inputs[k] >= 0 && k != p->lut_in ? g->values[n->inputs[k]].init : NULL;
		int64_t bd[QT_MAX_RANK];
		if (c && qt_broadcast_shape(r, d, c->rank, c->dims, &r, bd))
			return qt_error(QT_E_FORMAT, "inputs cannot be broadcast");
		if (c)
			memcpy(d, bd, sizeof d);
	}
	struct qt_tensor *y = &q->vals[n->outputs[0]];
	enum qt_status st = qt_tensor_alloc(y, QT_DTYPE_U8, r, d);
	if (st)
		return st;
	const uint8_t *xd = x->data;
	uint8_t *yd = y->data;
	for (int64_t i = 0, e = qt_tensor_numel(x); i < e; i++)
		yd[i] = p->lut[xd[i]];
	return QT_OK;
}

static void consume(struct qt_qrt *q, int v)
{
	if (--q->remaining[v] > 0 || q->g->values[v].is_output)
		return;
	qt_tensor_free(&q->vals[v]);
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

enum qt_status qt_qrt_run(struct qt_qrt *q, const struct qt_tensor *inputs, struct qt_tensor *outputs)
{
	const struct qt_graph *g = q->g;
	char lbl[256];
	enum qt_status st = QT_OK;
	for (int v = 0; v < g->n_values; v++) {
		qt_tensor_free(&q->vals[v]);
		q->remaining[v] = g->values[v].n_consumers;
	}
	for (int i = 0; i < g->n_inputs; i++) {
		int v = g->inputs[i];
		const struct qt_value *val = &g->values[v];
		if (inputs[i].dtype != val->dtype && val->dtype != QT_DTYPE_UNDEFINED)
			return qt_error(QT_E_INVALID_ARG, "input \"%s\" must be %s", val->name, qt_dtype_name(val->dtype));
		if (val->rank >= 0) {
			int ok = inputs[i].rank == val->rank;
			for (int d = 0; ok && d < val->rank; d++)
				ok = val->dims[d] < 0 || val->dims[d] == inputs[i].dims[d];
			if (!ok)
				return qt_error(QT_E_INVALID_ARG, "input \"%s\" has the wrong shape", val->name);
		}
		/* The float boundary: quantize the graph input once. */
		st = vq(g, v) ? quantize_tensor(g, v, &inputs[i], &q->vals[v]) : qt_tensor_copy(&q->vals[v], &inputs[i]);
		if (st)
			goto fail;
	}
	for (int ni = 0; ni < g->n_nodes; ni++) {
		const struct qt_node *n = &g->nodes[ni];
		struct qnode *p = &q->nodes[ni];
		for (int k = 0; !st && k < n->n_inputs; k++)
			if (n->inputs[k] >= 0 && !g->values[n->inputs[k]].init && !q->vals[n->inputs[k]].data)
				st = qt_error(QT_E_FORMAT, "input \"%s\" has no value", g->values[n->inputs[k]].name);
		if (st) {
			qt_error_prefix(st, "%s", qt_node_label(g, n, lbl, sizeof lbl));
			goto fail;
		}
		int64_t t0 = q->node_ns ? now_ns() : 0;
		switch (p->kind) {
		case QK_CONV: st = run_conv(q, n, p); break;
		case QK_CONVT: st = run_convt(q, n, p); break;
		case QK_GEMM: st = run_gemm(q, n, p); break;
		case QK_ADD:
		case QK_MUL: st = run_binary(q, n, p); break;
		case QK_CLAMP: st = run_clamp(q, n, p); break;
		case QK_MAXPOOL:
		case QK_AVGPOOL: st = run_pool(q, n, p); break;
		case QK_CONCAT: st = run_concat(q, n, p); break;
		case QK_MOVE: st = run_move(q, n, p); break;
		case QK_LUT: st = run_lut(q, n, p); break;
		default: st = run_fallback(q, n, p); break;
		}
		if (st == QT_E_UNSUPPORTED && p->kind != QK_FALLBACK && p->fp32) {
			/* An input shape the integer kernel does not handle (e.g. a 1-D
			 * convolution): the same node in float, exactly as documented. */
			qt_error_clear();
			for (int o = 0; o < n->n_outputs; o++)
				if (n->outputs[o] >= 0)
					qt_tensor_free(&q->vals[n->outputs[o]]);
			st = run_fallback(q, n, p);
		}
		if (q->node_ns)
			q->node_ns[ni] = now_ns() - t0;
		for (int o = 0; !st && o < n->n_outputs; o++)
			if (n->outputs[o] >= 0 && !q->vals[n->outputs[o]].data)
				st = qt_error(QT_E_FORMAT, "produced no output %d", o);

		if (st) {
			qt_error_prefix(st, "%s", qt_node_label(g, n, lbl, sizeof lbl));
			goto fail;
		}
		for (int k = 0; k < n->n_inputs; k++)
			if (n->inputs[k] >= 0 && !g->values[n->inputs[k]].init)
				consume(q, n->inputs[k]);
	}
	for (int k = 0; k < g->n_outputs; k++) {
		int v = g->outputs[k];
		memset(&outputs[k], 0, sizeof outputs[k]);
		st = vq(g, v) && q->vals[v].dtype == QT_DTYPE_U8 ? dequantize_tensor(g, v, &q->vals[v], &outputs[k])
								 : qt_tensor_copy(&outputs[k], &q->vals[v]);
		if (st) {
			for (int j = 0; j < k; j++)
				qt_tensor_free(&outputs[j]);
			goto fail;
		}
	}
fail:
	for (int v = 0; v < g->n_values; v++)
		qt_tensor_free(&q->vals[v]);
	return st;
}

enum qt_status qt_qrt_time_nodes(const struct qt_graph *g, const struct qt_tensor *x, int64_t samples, int reps,
				 const int *nodes, int n, int64_t *ns_out)
{
	struct qt_qrt *q = NULL;
	if (g->n_inputs != 1 || samples < 1 || reps < 1)
		return qt_error(QT_E_INVALID_ARG, "timing: one input, samples and runs >= 1");
	enum qt_status st = qt_qrt_new(g, &q);
	if (st)
		return st;
	int64_t *best = malloc(((size_t)g->n_nodes + 1) * sizeof *best);
	struct qt_tensor *outs = calloc((size_t)g->n_outputs + 1, sizeof *outs);
	q->node_ns = calloc((size_t)g->n_nodes + 1, sizeof *q->node_ns);
	if (!best || !outs || !q->node_ns)
		st = qt_error(QT_E_NOMEM, "out of memory");
	for (int i = 0; !st && i < g->n_nodes; i++)
		best[i] = INT64_MAX;
	for (int r = 0; !st && r < reps; r++) {
		if ((st = qt_qrt_run(q, x, outs)) != QT_OK)
			break;
		for (int k = 0; k < g->n_outputs; k++)
			qt_tensor_free(&outs[k]);
		for (int i = 0; i < g->n_nodes; i++)
			best[i] = q->node_ns[i] < best[i] ? q->node_ns[i] : best[i];
	}
	for (int i = 0; !st && i < n; i++)
		ns_out[i] = nodes[i] >= 0 && nodes[i] < g->n_nodes ? best[nodes[i]] / samples : -1;
	free(best);
	free(outs);
	qt_qrt_free(q);
	return st;
}
