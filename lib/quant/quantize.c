/*
 * The quantize stage: prepared FP32 graph + calibration ranges -> quantized
 * graph (see include/qtool/quant.h for what that graph is).
 *
 * Float is allowed throughout: this is offline preparation. The integers the
 * runtime uses (codes, int32 biases, multipliers and shifts) are fixed here
 * and written to the .qmod, so the integer runtime never rounds a float.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sha256.h"
#include "kernels/kernels.h"
#include "qtool/calib.h"
#include "qtool/quant.h"
#include "qtool/rt.h"
#include "ir/passes_int.h"

int64_t qt_qparam_index(const struct qt_qparams *q, int rank, const int64_t *dims, int64_t i);

int qt_is_weighted_op(const struct qt_node *n)
{
	if (!strcmp(n->domain, QT_DOMAIN_QTOOL))
		return !strcmp(n->op_type, QT_OP_MATMUL_BIAS);
	if (n->domain[0] && strcmp(n->domain, "ai.onnx"))
		return 0;
	return !strcmp(n->op_type, "Conv") || !strcmp(n->op_type, "ConvTranspose") || !strcmp(n->op_type, "Gemm") ||
	       !strcmp(n->op_type, "MatMul");
}

/* Ops whose output codes equal their input codes (same qparams): they only
 * move, select or clamp values, so quantization commutes with them. */
static int is_passthrough(const char *op)
{
	static const char *const ops[] = {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "MaxPool",
					  "Identity", "Dropout", "Slice", "Relu", NULL};
	for (int i = 0; ops[i]; i++)
		if (!strcmp(op, ops[i]))
			return 1;
	return 0;
}

/* Constant scalar float input i of n (Clip's min/max from opset 11), or dflt. */
static int const_scalar(const struct qt_graph *g, const struct qt_node *n, int i, float *out)
{
	if (i >= n->n_inputs || n->inputs[i] < 0)
		return 0;
	const struct qt_tensor *t = g->values[n->inputs[i]].init;
	if (!t || t->dtype != QT_DTYPE_F32 || qt_tensor_numel(t) != 1)
		return -1;
	*out = *(const float *)t->data;
	return 1;
}

/* Clip(0, hi) (ReLU6 and friends): the lower bound must be exactly 0. */
static int is_relu_like(const struct qt_graph *g, const struct qt_node *n)
{
	if (!strcmp(n->op_type, "Relu"))
		return 1;
	if (strcmp(n->op_type, "Clip"))
		return 0;
	float lo = -INFINITY;
	if (g->opset < 11)
		lo = qt_node_attr_float(n, "min", -INFINITY);
	else if (const_scalar(g, n, 1, &lo) < 0)
		return 0;
	float hi;
	if (g->opset >= 11 && const_scalar(g, n, 2, &hi) < 0)
		return 0;
	return lo == 0.0f;
}

/*
 * Fuse Relu / Clip(0, hi) into the producing weighted op (qt_is_weighted_op) or Add: the
 * producer writes the activation's output value, whose calibrated range
 * already starts at 0 (and ends at or below hi), so clamping to the
 * quantized range applies the activation exactly.
 */
static enum qt_status fuse_activations(struct qt_graph *g, int *n_out)
{
	char *dead = calloc((size_t)g->n_nodes + 1, 1);
	if (!dead)
		return qt_error(QT_E_NOMEM, "out of memory");
	int fused = 0;
	for (int ai = 0; ai < g->n_nodes; ai++) {
		struct qt_node *act = &g->nodes[ai];
		if (!is_relu_like(g, act) || act->n_inputs < 1 || act->inputs[0] < 0 || act->n_outputs < 1)
			continue;
		struct qt_value *x = &g->values[act->inputs[0]];
		if (x->producer < 0 || x->n_consumers != 1 || x->is_output || dead[x->producer])
			continue;
		struct qt_node *p = &g->nodes[x->producer];
		if (!qt_is_weighted_op(p) && strcmp(p->op_type, "Add"))
			continue;
		if (p->n_outputs != 1)
			continue;
		p->outputs[0] = act->outputs[0];
		dead[ai] = 1;
		fused++;
	}
	qt_graph_remove_nodes(g, dead);
	free(dead);
	*n_out = fused;
	return qt_graph_finalize(g);
}

/*
 * Learn every value's dtype by running the graph once on zeros (ONNX files
 * rarely declare intermediate types; calibration saw the same), at the
 * shapes calibration saw or the user gave (qt_graph_dry_run_dims).
 */
static enum qt_status infer_dtypes(struct qt_graph *g, const struct qt_input_shapes *shapes)
{
	struct qt_rt *rt;
	enum qt_status st = qt_rt_new(g, &rt);
	if (st)
		return st;
	struct qt_tensor ins[16], outs[16];
	memset(ins, 0, sizeof ins);
	memset(outs, 0, sizeof outs);
	if (g->n_inputs > 16 || g->n_outputs > 16) {
		qt_rt_free(rt);
		return qt_error(QT_E_UNSUPPORTED, "quantize supports at most 16 inputs and outputs");
	}
	for (int i = 0; i < g->n_inputs && !st; i++) {
		int64_t d[QT_MAX_RANK];
		int r;
		st = qt_graph_dry_run_dims(g, i, shapes, d, &r);
		if (!st)
			st = qt_tensor_alloc(&ins[i], g->values[g->inputs[i]].dtype, r, d);
	}
	if (!st) {
		qt_rt_keep_all(rt, 1);
		st = qt_rt_run(rt, ins, outs);
	}
	for (int v = 0; !st && v < g->n_values; v++) {
		const struct qt_tensor *t = qt_rt_value(rt, v);
		if (t && !g->values[v].init)
			g->values[v].dtype = t->dtype;
	}
	for (int i = 0; i < 16; i++) {
		qt_tensor_free(&ins[i]);
		qt_tensor_free(&outs[i]);
	}
	qt_rt_free(rt);
	return st;
}

static struct qt_qparams *new_qparams(struct qt_graph *g, enum qt_dtype qt, enum qt_qscheme sch, int axis,
				      int64_t count)
{
	struct qt_qparams *q = qt_graph_alloc(g, sizeof *q);
	if (!q)
		return NULL;
	q->qtype = qt;
	q->scheme = sch;
	q->axis = axis;
	q->count = count;
	q->scale = qt_graph_alloc(g, (size_t)count * sizeof(float));
	q->zero_point = qt_graph_alloc(g, (size_t)count * sizeof(int32_t));
	return q->scale && q->zero_point ? q : NULL;
}

/* Store code c at element i of a packed tensor of dtype dt (zeroed buffer). */
static void code_put(void *data, enum qt_dtype dt, int64_t i, int32_t c)
{
	uint8_t *b = data;
	switch (dt) {
	case QT_DTYPE_I8: ((int8_t *)data)[i] = (int8_t)c; break;
	case QT_DTYPE_I32: ((int32_t *)data)[i] = c; break;
	case QT_DTYPE_S4: b[i >> 1] |= (uint8_t)((c & 15) << ((i & 1) * 4)); break;
	case QT_DTYPE_S2: b[i >> 2] |= (uint8_t)((c & 3) << ((i & 3) * 2)); break;
	default: break;
	}
}

static enum qt_dtype weight_qtype(int bits)
{
	return bits == 8 ? QT_DTYPE_I8 : bits == 4 ? QT_DTYPE_S4 : QT_DTYPE_S2;
}

/*
 * Quantize the float weight of node n (value wv) symmetrically with output
 * channel axis `axis`; returns the per-output-channel reference scale S[c]
 * (the channel's scale, or its largest group scale) in s_ref (C entries).
 */
static enum qt_status quantize_weight(struct qt_graph *g, int wv, int axis, const struct qt_quant_opts *o,
				      enum qt_qscheme sch, float *s_ref, int64_t C)
{
	struct qt_value *v = &g->values[wv];
	const struct qt_tensor *w = v->init;
	int64_t n = qt_tensor_numel(w), per = C > 0 ? n / C : 0;
	if (C < 1 || per < 1)
		return qt_error(QT_E_FORMAT, "weight \"%s\" is empty", v->name);
	enum qt_dtype qt = weight_qtype(o->wbits);
	int32_t qmin, qmax;
	qt_qtype_range(qt, &qmin, &qmax);
	int64_t gs = o->group_size > 0 ? o->group_size : per;
	int64_t ng = (per + gs - 1) / gs;
	int64_t count = sch == QT_QSCHEME_TENSOR ? 1 : sch == QT_QSCHEME_CHANNEL ? C : C * ng;
	struct qt_qparams *q = new_qparams(g, qt, sch, axis, count);
	if (!q)
		return qt_error(QT_E_NOMEM, "out of memory");
	q->group_axis = axis == 0 ? 1 : 0;
	q->group_size = sch == QT_QSCHEME_GROUP ? (int)gs : 0;
	const float *wd = w->data;
	/* Max |w| per parameter slot. */
	double *amax = calloc((size_t)count, sizeof *amax);
	if (!amax)
		return qt_error(QT_E_NOMEM, "out of memory");
	for (int64_t i = 0; i < n; i++) {
		if (!isfinite(wd[i])) {
			free(amax);
			return qt_error(QT_E_NUMERIC, "weight \"%s\" element %lld is not finite", v->name, (long long)i);
		}
		int64_t k = qt_qparam_index(q, w->rank, w->dims, i);
		double a = fabs((double)wd[i]);
		if (a > amax[k])
			amax[k] = a;
	}
	/* An all-zero slot (a pruned channel) decodes to 0 whatever its scale;
	 * it borrows the largest scale of the tensor so its bias, quantized at
	 * s_in * scale, keeps a fine step (1 if the whole tensor is zero). */
	double big = 0;
	for (int64_t k = 0; k < count; k++)
		big = amax[k] > big ? amax[k] : big;
	for (int64_t k = 0; k < count; k++) {
		q->scale[k] = amax[k] > 0 ? (float)(amax[k] / qmax) : big > 0 ? (float)(big / qmax) : 1.0f;
		q->zero_point[k] = 0;
	}
	free(amax);
	for (int64_t c = 0; c < C; c++) {
		if (sch == QT_QSCHEME_TENSOR) {
			s_ref[c] = q->scale[0];
		} else if (sch == QT_QSCHEME_CHANNEL) {
			s_ref[c] = q->scale[c];
		} else {
			float m = 0;
			for (int64_t j = 0; j < ng; j++)
				if (q->scale[c * ng + j] > m)
					m = q->scale[c * ng + j];
			s_ref[c] = m;
		}
	}
	struct qt_tensor *t = qt_graph_alloc(g, sizeof *t);
	size_t bytes = qt_dtype_nbytes(qt, n);
	void *data = qt_graph_alloc(g, bytes ? bytes : 1);
	if (!t || !data)
		return qt_error(QT_E_NOMEM, "out of memory");
	for (int64_t i = 0; i < n; i++) {
		int64_t k = qt_qparam_index(q, w->rank, w->dims, i);
		code_put(data, qt, i, qt_quantize_one(wd[i], q->scale[k], 0, qmin, qmax));
	}
	t->dtype = qt;
	t->rank = w->rank;
	memcpy(t->dims, w->dims, sizeof t->dims);
	t->data = data;
	t->nbytes = bytes;
	v->init = t;
	v->dtype = qt;
	v->q = q;
	return QT_OK;
}

/* Scale of a per-tensor activation qparams. */
static float act_scale(const struct qt_value *v)
{
	return v->q->scale[0];
}

/* The weight's output-channel axis: Conv [M, C/g, kH, kW] 0; ConvTranspose
 * [C, M, kH, kW] 1; Gemm 0 with transB, else 1; MatMul and MatMulBias [K, N] 1. */
static int weight_axis(const struct qt_node *n)
{
	if (!strcmp(n->op_type, "Conv"))
		return 0;
	if (!strcmp(n->op_type, "Gemm"))
		return qt_node_attr_int(n, "transB", 0) ? 0 : 1;
	return 1;
}

/*
 * Quantize one weighted op: weight codes, int32 bias at s_in * S[c],
 * and the requantization multipliers s_in * S[c] / s_out (divided by 2^15 for
 * grouped weights, whose per-group ratios the runtime applies; see
 * lib/kernels/kernels.h).
 */
static enum qt_status quantize_node(struct qt_graph *g, struct qt_node *n, const struct qt_quant_opts *o)
{
	char lbl[256];
	int x = n->inputs[0], wv = n->inputs[1], y = n->outputs[0];
	const struct qt_tensor *w = g->values[wv].init;
	int axis = weight_axis(n);
	int64_t C = w->dims[axis];
	/* Per-group scales apply to plain (group=1) convolutions and matrices;
	 * a grouped or depthwise Conv keeps one scale per output channel. */
	enum qt_qscheme sch = o->gran == QT_GRAN_TENSOR ? QT_QSCHEME_TENSOR
			     : o->gran == QT_GRAN_GROUP ? QT_QSCHEME_GROUP : QT_QSCHEME_CHANNEL;
	if (sch == QT_QSCHEME_GROUP && ((!strcmp(n->op_type, "Conv") && qt_node_attr_int(n, "group", 1) != 1) ||
					!strcmp(n->op_type, "ConvTranspose")))
		sch = QT_QSCHEME_CHANNEL; /* the runtime's direct loops take one scale per channel */
	if (C < 1)
		return qt_error(QT_E_FORMAT, "%s: weight has no output channels", qt_node_label(g, n, lbl, sizeof lbl));
	float *s_ref = malloc((size_t)C * sizeof *s_ref);
	if (!s_ref)
		return qt_error(QT_E_NOMEM, "out of memory");
	enum qt_status st = quantize_weight(g, wv, axis, o, sch, s_ref, C);
	if (st) {
		free(s_ref);
		return qt_error_prefix(st, "%s", qt_node_label(g, n, lbl, sizeof lbl));
	}
	float s_in = act_scale(&g->values[x]), s_out = act_scale(&g->values[y]);
	int grouped = sch == QT_QSCHEME_GROUP;
	/* Bias. */
	int bv = n->n_inputs > 2 ? n->inputs[2] : -1;
	if (bv >= 0) {
		/* The int32 bias goes to a value of this node's own: a float bias
		 * may be shared with other nodes (deduplicated initializers). */
		const struct qt_tensor *bt = g->values[bv].init;
		const char *bname = g->values[bv].name;
		char nb[512];
		snprintf(nb, sizeof nb, "%s.bias_q", g->values[y].name);
		for (int k = 1; qt_graph_find_value(g, nb) >= 0; k++)
			snprintf(nb, sizeof nb, "%s.bias_q%d", g->values[y].name, k);
		int nbv = qt_graph_value(g, nb);
		if (nbv < 0) {
			free(s_ref);
			return qt_error(QT_E_NOMEM, "out of memory");
		}
		n->inputs[2] = nbv;
		g->values[nbv].n_consumers = 1;
		struct qt_value *b = &g->values[nbv];
		for (int64_t c = 0; c < C; c++)
			if (!isfinite(((const float *)bt->data)[c])) {
				free(s_ref);
				return qt_error(QT_E_NUMERIC, "%s: bias \"%s\" element %lld is not finite",
						qt_node_label(g, n, lbl, sizeof lbl), bname, (long long)c);
			}
		struct qt_qparams *q = new_qparams(g, QT_DTYPE_I32, QT_QSCHEME_CHANNEL, 0, C);
		struct qt_tensor *t = qt_graph_alloc(g, sizeof *t);
		int32_t *d = qt_graph_alloc(g, (size_t)C * sizeof *d);
		if (!q || !t || !d) {
			free(s_ref);
			return qt_error(QT_E_NOMEM, "out of memory");
		}
		for (int64_t c = 0; c < C; c++) {
			double s = (double)s_in * s_ref[c];
			double r = nearbyint((double)((const float *)bt->data)[c] / s);
			d[c] = r > INT32_MAX ? INT32_MAX : r < -INT32_MAX ? -INT32_MAX : (int32_t)r;
			q->scale[c] = (float)s;
		}
		t->dtype = QT_DTYPE_I32;
		t->rank = 1;
		t->dims[0] = C;
		t->data = d;
		t->nbytes = (size_t)C * 4;
		b->init = t;
		b->dtype = QT_DTYPE_I32;
		b->q = q;
	}
	/* Requantization. */
	int per_channel = o->gran != QT_GRAN_TENSOR;
	struct qt_requant *rq = qt_graph_alloc(g, sizeof *rq);
	int cnt = per_channel ? (int)C : 1;
	if (!rq || !(rq->mult = qt_graph_alloc(g, (size_t)cnt * 4)) || !(rq->shift = qt_graph_alloc(g, (size_t)cnt * 4))) {
		free(s_ref);
		return qt_error(QT_E_NOMEM, "out of memory");
	}
	rq->count = cnt;
	const struct qt_qparams *yq = g->values[y].q;
	qt_qtype_range(yq->qtype, &rq->qmin, &rq->qmax);
	for (int c = 0; c < cnt; c++) {
		double real = (double)s_in * s_ref[c] / s_out;
		if (grouped)
			real /= QT_GROUP_MAX_RATIO;
		int sh;
		st = qt_quantize_multiplier(real, &rq->mult[c], &sh);
		if (st) {
			free(s_ref);
			return qt_error_prefix(st, "%s: channel %d", qt_node_label(g, n, lbl, sizeof lbl), c);
		}
		rq->shift[c] = sh;
	}
	n->rq = rq;
	free(s_ref);
	return QT_OK;
}

/* Which nodes get integer weights: Conv, ConvTranspose (2-D, group 1), Gemm
 * (plain), MatMul and MatMulBias with a 2-D constant. NULL when n does, else
 * why not (qtool/quant.h). */
const char *qt_quant_skip_reason(const struct qt_graph *g, const struct qt_node *n)
{
	if (!qt_is_weighted_op(n))
		return "not a weighted op";
	if (n->n_inputs < 2 || n->inputs[0] < 0 || n->inputs[1] < 0 || n->n_outputs != 1 || n->outputs[0] < 0)
		return "unusual inputs or outputs";
	const struct qt_value *x = &g->values[n->inputs[0]], *y = &g->values[n->outputs[0]];
	const struct qt_tensor *w = g->values[n->inputs[1]].init;
	if (!x->q || !y->q)
		return "input or output is not a float32 activation";
	if (!w)
		return "weight not constant";
	if (w->dtype != QT_DTYPE_F32)
		return "weight is not float32";
	if (g->values[n->inputs[1]].n_consumers != 1)
		return "weight shared with another node";
	if (n->n_inputs > 2 && n->inputs[2] >= 0) {
		const struct qt_tensor *b = g->values[n->inputs[2]].init;
		if (weight_axis(n) >= w->rank)
			return "weight rank too small";
		int64_t C = w->dims[weight_axis(n)];
		if (!b || b->dtype != QT_DTYPE_F32 || qt_tensor_numel(b) != C)
			return "bias not foldable (not a float32 constant per output channel)";
	}
	if (!strcmp(n->op_type, "Conv"))
		return w->rank == 4 ? NULL : "no integer kernel (only 2-D Conv)";
	if (!strcmp(n->op_type, "ConvTranspose"))
		return w->rank == 4 && qt_node_attr_int(n, "group", 1) == 1
			       ? NULL
			       : "no integer kernel (only 2-D ungrouped ConvTranspose)";
	if (!strcmp(n->op_type, "Gemm"))
		return w->rank == 2 && !qt_node_attr_int(n, "transA", 0) && qt_node_attr_float(n, "alpha", 1) == 1.0f &&
				       (n->n_inputs < 3 || qt_node_attr_float(n, "beta", 1) == 1.0f)
			       ? NULL
			       : "no integer kernel (Gemm with transA, alpha or beta)";
	if (!strcmp(n->op_type, "MatMul"))
		return w->rank == 2 && n->n_inputs == 2 ? NULL : "no integer kernel (MatMul weight not 2-D)";
	if (!strcmp(n->op_type, QT_OP_MATMUL_BIAS) && !strcmp(n->domain, QT_DOMAIN_QTOOL))
		return w->rank == 2 && n->n_inputs == 3 ? NULL : "no integer kernel (MatMulBias weight not 2-D)";
	return "not a weighted op";
}

static int quantizable(const struct qt_graph *g, const struct qt_node *n)
{
	return qt_quant_skip_reason(g, n) == NULL;
}

enum qt_status qt_quantize_graph(struct qt_graph *g, const struct qt_calib_table *calib,
				 const struct qt_quant_opts *o)
{
	char lbl[256];
	int n_bn, n_mmb, n_act;
	enum qt_status st;
	if ((st = qt_pass_prepare_import(g)) != QT_OK || (st = qt_pass_fold_bn(g, &n_bn)) != QT_OK ||
	    (st = qt_pass_fuse_matmul_bias(g, &n_mmb)) != QT_OK || (st = fuse_activations(g, &n_act)) != QT_OK ||
	    (st = infer_dtypes(g, o->input_shapes)) != QT_OK)
		return st;
	enum qt_dtype aq = o->abits == 8 ? QT_DTYPE_U8 : QT_DTYPE_U4;

	/* Activations, in topological order so pass-through ops copy their input's. */
	for (int i = 0; i < g->n_inputs; i++) {
		struct qt_value *v = &g->values[g->inputs[i]];
		if (v->dtype != QT_DTYPE_F32)
			continue;
		float lo, hi;
		if ((st = qt_calib_range(calib, v->name, o->calib_method, o->abits, &lo, &hi)) != QT_OK)
			return st;
		if (!(v->q = new_qparams(g, aq, QT_QSCHEME_TENSOR, 0, 1)))
			return qt_error(QT_E_NOMEM, "out of memory");
		if ((st = qt_qparams_asym(lo, hi, o->abits, &v->q->scale[0], &v->q->zero_point[0])) != QT_OK)
			return qt_error_prefix(st, "tensor \"%s\"", v->name);
	}
	for (int ni = 0; ni < g->n_nodes; ni++) {
		struct qt_node *n = &g->nodes[ni];
		for (int k = 0; k < n->n_outputs; k++) {
			int vi = n->outputs[k];
			if (vi < 0 || g->values[vi].dtype != QT_DTYPE_F32)
				continue;
			struct qt_value *v = &g->values[vi];
			const struct qt_value *x = n->n_inputs > 0 && n->inputs[0] >= 0 ? &g->values[n->inputs[0]] : NULL;
			if (is_passthrough(n->op_type) && x && x->q && n->n_outputs == 1) {
				v->q = x->q; /* shared, read-only */
				continue;
			}
			float lo, hi;
			if ((st = qt_calib_range(calib, v->name, o->calib_method, o->abits, &lo, &hi)) != QT_OK)
				return st;
			if (!(v->q = new_qparams(g, aq, QT_QSCHEME_TENSOR, 0, 1)))
				return qt_error(QT_E_NOMEM, "out of memory");
			if ((st = qt_qparams_asym(lo, hi, o->abits, &v->q->scale[0], &v->q->zero_point[0])) != QT_OK)
				return qt_error_prefix(st, "%s: output \"%s\"", qt_node_label(g, n, lbl, sizeof lbl),
						       v->name);
		}
	}
	/* Weights and requantization. */
	for (int ni = 0; ni < g->n_nodes; ni++) {
		struct qt_node *n = &g->nodes[ni];
		if (!quantizable(g, n))
			continue;
		if ((st = quantize_node(g, n, o)) != QT_OK)
			return st;
	}
	/* Folded BatchNormalization parameters and replaced float biases are
	 * orphans now: drop them so the .qmod carries only what runs. */
	if ((st = qt_graph_prune(g, NULL)) != QT_OK)
		return st;
	g->calib_method = qt_graph_strdup(g, o->calib_method ? o->calib_method
							     : qt_calib_method_name(calib->default_method));
	g->qtool_version = qt_graph_strdup(g, QT_VERSION_STRING);
	g->command_line = qt_graph_strdup(g, o->command_line ? o->command_line : "");
	char hex[65];
	qt_sha256_hex(g->sha256, hex);
	g->src_sha256_hex = qt_graph_strdup(g, hex);
	return QT_OK;
}
