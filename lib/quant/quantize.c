/*
 * The quantize stage: prepared FP32 graph + calibration ranges -> quantized
 * graph (see include/qtool/quant.h for what that graph is), in stages:
 *
 *   prepare (qt_quant_prepare: fold BN, fuse, dtypes)
 *   -> plan (lib/quant/plan.c: one record per weighted node)
 *   -> activation ranges (from the calibration table, bits from the plan)
 *   -> weights: per layer, scale choice, rounding (nearest or GPTQ), bias
 *      correction; with data, layer by layer through the data engine
 *      (calib/layerdata.c), each finished layer simulated for the next
 *   -> finalize: packed codes, int32 biases, requantization.
 *
 * Float is allowed throughout: this is offline preparation. The integers the
 * runtime uses (codes, int32 biases, multipliers and shifts) are fixed here
 * and written to the .qmod, so the integer runtime never rounds a float.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "core/sha256.h"
#include "kernels/kernels.h"
#include "qtool/calib.h"
#include "qtool/dataset.h"
#include "qtool/layerdata.h"
#include "qtool/qmod.h"
#include "qtool/quant.h"
#include "qtool/rt.h"
#include "ir/passes_int.h"
#include "quant/adaround.h"
#include "quant/gptq.h"
#include "quant/quant_int.h"

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
		float hi = INFINITY;
		if (!strcmp(act->op_type, "Clip")) {
			if (g->opset < 11)
				hi = qt_node_attr_float(act, "max", INFINITY);
			else if (const_scalar(g, act, 2, &hi) < 0)
				continue;
		}
		p->act_hi = p->act_fused && p->act_hi < hi ? p->act_hi : hi;
		p->act_lo = 0.0f;
		p->act_fused = 1;
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
 * Learn every value's dtype by running the graph once at batch 1 on zeros
 * (ONNX files rarely declare intermediate types; calibration saw the same).
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

/* Packed dtype of b-bit weight codes. */
static enum qt_dtype weight_qtype(int bits)
{
	switch (bits) {
	case 8: return QT_DTYPE_I8;
	case 4: return QT_DTYPE_S4;
	case 3: return QT_DTYPE_S3;
	case 2: return QT_DTYPE_S2;
	default: return QT_DTYPE_UNDEFINED;
	}
}

int qt_weight_axis(const struct qt_node *n)
{
	if (!strcmp(n->op_type, "Conv"))
		return 0;
	if (!strcmp(n->op_type, "Gemm"))
		return qt_node_attr_int(n, "transB", 0) ? 0 : 1;
	return 1;
}

int qt_quant_weight_ok(const struct qt_graph *g, const struct qt_node *n)
{
	if (!qt_is_weighted_op(n) || n->n_inputs < 2 || n->inputs[0] < 0 || n->inputs[1] < 0 || n->n_outputs != 1 ||
	    n->outputs[0] < 0)
		return 0;
	const struct qt_tensor *w = g->values[n->inputs[1]].init;
	if (!w || w->dtype != QT_DTYPE_F32 || g->values[n->inputs[1]].n_consumers != 1)
		return 0;
	if (qt_weight_axis(n) >= w->rank)
		return 0;
	if (n->n_inputs > 2 && n->inputs[2] >= 0) {
		const struct qt_tensor *b = g->values[n->inputs[2]].init;
		int64_t C = w->dims[qt_weight_axis(n)];
		if (!b || b->dtype != QT_DTYPE_F32 || qt_tensor_numel(b) != C)
			return 0; /* a bias we cannot fold into int32: the node stays in float */
	}
	if (!strcmp(n->op_type, "Conv"))
		return w->rank == 4; /* the integer Conv is 2-D */
	if (!strcmp(n->op_type, "ConvTranspose"))
		return w->rank == 4 && qt_node_attr_int(n, "group", 1) == 1; /* 2-D, ungrouped */
	if (!strcmp(n->op_type, "Gemm"))
		return w->rank == 2 && !qt_node_attr_int(n, "transA", 0) && qt_node_attr_float(n, "alpha", 1) == 1.0f &&
		       (n->n_inputs < 3 || qt_node_attr_float(n, "beta", 1) == 1.0f);
	if (!strcmp(n->op_type, "MatMul"))
		return w->rank == 2 && n->n_inputs == 2;
	if (!strcmp(n->op_type, QT_OP_MATMUL_BIAS) && !strcmp(n->domain, QT_DOMAIN_QTOOL))
		return w->rank == 2 && n->n_inputs == 3;
	return 0;
}

enum qt_status qt_quant_prepare(struct qt_graph *g, const struct qt_input_shapes *shapes)
{
	int n_bn, n_mmb, n_act;
	enum qt_status st;
	if ((st = qt_pass_prepare_import(g)) != QT_OK || (st = qt_pass_fold_bn(g, &n_bn)) != QT_OK ||
	    (st = qt_pass_fuse_matmul_bias(g, &n_mmb)) != QT_OK || (st = fuse_activations(g, &n_act)) != QT_OK ||
	    (st = infer_dtypes(g, shapes)) != QT_OK)
		return st;
	return QT_OK;
}

/* ---- Stage 3: activation ranges ---- */

/* The value whose qparams v shares: pass-through ops copy their input's. */
static int act_root(const struct qt_graph *g, int v)
{
	for (int guard = 0; guard < g->n_nodes && v >= 0; guard++) {
		int p = g->values[v].producer;
		if (p < 0)
			break;
		const struct qt_node *n = &g->nodes[p];
		if (!is_passthrough(n->op_type) || n->n_outputs != 1 || n->n_inputs < 1 || n->inputs[0] < 0 ||
		    g->values[n->inputs[0]].dtype != QT_DTYPE_F32)
			break;
		v = n->inputs[0];
	}
	return v;
}

static enum qt_status act_qparams(struct qt_graph *g, struct qt_value *v, const struct qt_calib_table *calib,
				  const struct qt_quant_opts *o, int bits)
{
	float lo, hi;
	enum qt_status st;
	if ((st = qt_calib_range(calib, v->name, o->calib_method, bits, &lo, &hi)) != QT_OK)
		return st;
	if (!(v->q = new_qparams(g, bits == 8 ? QT_DTYPE_U8 : QT_DTYPE_U4, QT_QSCHEME_TENSOR, 0, 1)))
		return qt_error(QT_E_NOMEM, "out of memory");
	return qt_qparams_asym(lo, hi, bits, &v->q->scale[0], &v->q->zero_point[0]);
}

/*
 * Per-tensor asymmetric qparams for every float activation, in topological
 * order so pass-through ops share their input's. An activation's bits are
 * the largest a planned layer reading it asks for, else the plan's default.
 */
static enum qt_status activation_ranges(struct qt_graph *g, const struct qt_calib_table *calib,
					const struct qt_plan *plan, const struct qt_quant_opts *o)
{
	char lbl[256];
	enum qt_status st = QT_OK;
	int *bits = calloc((size_t)g->n_values + 1, sizeof *bits);
	/* fmt_read[r]: a planned layer reads root r in an activation format;
	 * such a value stays float unless an integer layer reads it too. */
	char *fmt_read = calloc((size_t)g->n_values + 1, 1);
	if (!bits || !fmt_read) {
		free(bits);
		free(fmt_read);
		return qt_error(QT_E_NOMEM, "out of memory");
	}
	for (int i = 0; i < plan->n; i++) {
		const struct qt_layer_plan *p = &plan->layers[i];
		if (p->keep_float)
			continue;
		int r = act_root(g, g->nodes[p->node].inputs[0]);
		if (r >= 0 && p->afmt != QT_FMT_INT)
			fmt_read[r] = 1;
		else if (r >= 0 && p->abits > bits[r])
			bits[r] = p->abits;
	}
	for (int i = 0; i < g->n_inputs && !st; i++) {
		struct qt_value *v = &g->values[g->inputs[i]];
		int r = g->inputs[i];
		if (fmt_read[r] && !bits[r])
			continue;
		if (v->dtype == QT_DTYPE_F32 && (st = act_qparams(g, v, calib, o, bits[r] ? bits[r] : plan->default_abits)))
			qt_error_prefix(st, "tensor \"%s\"", v->name);
	}
	for (int ni = 0; ni < g->n_nodes && !st; ni++) {
		struct qt_node *n = &g->nodes[ni];
		for (int k = 0; k < n->n_outputs && !st; k++) {
			int vi = n->outputs[k];
			if (vi < 0 || g->values[vi].dtype != QT_DTYPE_F32)
				continue;
			struct qt_value *v = &g->values[vi];
			const struct qt_value *x = n->n_inputs > 0 && n->inputs[0] >= 0 ? &g->values[n->inputs[0]] : NULL;
			if (is_passthrough(n->op_type) && x && x->q && n->n_outputs == 1) {
				v->q = x->q; /* shared, read-only */
				continue;
			}
			int r = act_root(g, vi);
			if (r >= 0 && fmt_read[r] && !bits[r])
				continue;
			if ((st = act_qparams(g, v, calib, o, bits[vi] ? bits[vi] : plan->default_abits)) != QT_OK)
				qt_error_prefix(st, "%s: output \"%s\"", qt_node_label(g, n, lbl, sizeof lbl), v->name);
		}
	}
	free(bits);
	free(fmt_read);
	return st;
}

/*
 * Float islands. An activation whose every reader runs in float (an op with
 * no integer kernel, or one that runs in float because its own output is
 * float) would be dequantized at once by each of them: rounding it to 8 bits
 * buys no integer work and only loses information. Such values keep no
 * qparams, so the integer runtime hands them from float op to float op as
 * float32, and `qtool inspect` says why their producers run in float.
 * Examples: a ViT's class token concatenated with patch embeddings 200x
 * larger, on its way to the position Add and LayerNormalization (both float);
 * attention's scores and probabilities between the float MatMul, Softmax and
 * MatMul. Outputs of planned weighted layers (their integer kernel writes
 * codes) and graph outputs stay quantized. Repeats until nothing changes: a
 * producer whose output went float runs in float too and may free its own
 * inputs. The decision depends on qparams and op types only, never on the
 * machine's kernels. *n_out gets the number of values left in float.
 */
static int quantizable(const struct qt_graph *g, const struct qt_layer_plan *p);

static enum qt_status float_islands(struct qt_graph *g, const struct qt_plan *plan, int *n_out)
{
	char *planned = calloc((size_t)g->n_nodes + 1, 1), *int_reader = malloc((size_t)g->n_values + 1);
	if (!planned || !int_reader) {
		free(planned);
		free(int_reader);
		return qt_error(QT_E_NOMEM, "out of memory");
	}
	for (int i = 0; i < plan->n; i++)
		if (!plan->layers[i].keep_float && quantizable(g, &plan->layers[i]))
			planned[plan->layers[i].node] = 1;
	int dropped = 0;
	for (int changed = 1; changed;) {
		changed = 0;
		memset(int_reader, 0, (size_t)g->n_values + 1);
		for (int ni = 0; ni < g->n_nodes; ni++) {
			const struct qt_node *n = &g->nodes[ni];
			if (!(qt_is_weighted_op(n) ? planned[ni] : qt_qrt_node_is_integer(g, ni)))
				continue;
			for (int k = 0; k < n->n_inputs; k++)
				if (n->inputs[k] >= 0)
					int_reader[n->inputs[k]] = 1;
		}
		for (int v = 0; v < g->n_values; v++) {
			struct qt_value *val = &g->values[v];
			if (!val->q || val->init || val->is_output || !val->n_consumers || int_reader[v] ||
			    (val->producer >= 0 && planned[val->producer]))
				continue;
			val->q = NULL;
			dropped++;
			changed = 1;
		}
	}
	free(planned);
	free(int_reader);
	*n_out = dropped;
	return QT_OK;
}

/* ---- Stage 4: weights ---- */

/* Scale of a per-tensor activation qparams. */
static float act_scale(const struct qt_value *v)
{
	return v->q->scale[0];
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
		if (qt_weight_axis(n) >= w->rank)
			return "weight rank too small";
		int64_t C = w->dims[qt_weight_axis(n)];
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

/* Which layers get integer weights: planned, not kept float, weight and
 * activations quantizable. */
static int quantizable(const struct qt_graph *g, const struct qt_layer_plan *p)
{
	/* A decoded layer runs in float: its activations need no integer grid. */
	const struct qt_node *n = &g->nodes[p->node];
	return qt_plan_decoded(p) ? qt_quant_weight_ok(g, n) : qt_quant_skip_reason(g, n) == NULL;
}

/* Element index in the weight tensor of matrix entry (c, k): c along `axis`,
 * k running over the other axes in row-major order. */
static int64_t tensor_index(const struct qt_tensor *w, int axis, int64_t c, int64_t k)
{
	int64_t inner = 1;
	for (int d = axis + 1; d < w->rank; d++)
		inner *= w->dims[d];
	return (k / inner) * (inner * w->dims[axis]) + c * inner + k % inner;
}

/*
 * Scales by the largest magnitude of each slot (qt_wscale_absmax); per
 * tensor, every row takes the largest.
 */
static enum qt_status scales_absmax(struct qt_qlayer *L, const char *what)
{
	enum qt_status st = qt_wscale_absmax(L->w, &L->grid, what);
	if (st || L->scheme != QT_QSCHEME_TENSOR)
		return st;
	float m = 0;
	for (int64_t c = 0; c < L->C; c++)
		m = fmaxf(m, L->grid.scale[c]);
	for (int64_t c = 0; c < L->C; c++)
		L->grid.scale[c] = m;
	return QT_OK;
}

/* Group scales rounded to what the .qmod stores (an f32 per row and a byte
 * per group, qt_wscale_round_groups), so codes are computed with exactly the
 * stored scales. A row with one scale (per channel, per tensor) is unchanged. */
static void grid_storable(struct qt_wgrid *g)
{
	int64_t ng = qt_wgrid_ngroups(g);
	for (int64_t c = 0; ng > 1 && c < g->C; c++)
		qt_wscale_round_groups(g->scale + c * ng, ng);
}

static void layer_free(struct qt_qlayer *L)
{
	free(L->w);
	free(L->codes);
	free(L->grid.scale);
	free(L->bias);
	free(L->mean_fp);
	free(L->bias_fp);
	free(L->scale_code);
}

/*
 * The layer view of planned node p: its float weight as a [C][K] matrix, its
 * bias, the grid the plan asks for (code range, scheme) and absmax scales.
 */
static enum qt_status layer_init(struct qt_graph *g, const struct qt_layer_plan *p, struct qt_qlayer *L)
{
	char lbl[256];
	enum qt_status st;
	struct qt_node *n = &g->nodes[p->node];
	const struct qt_value *wv = &g->values[n->inputs[1]];
	const struct qt_tensor *w = wv->init;
	memset(L, 0, sizeof *L);
	L->node = p->node;
	L->plan = p;
	L->axis = qt_weight_axis(n);
	L->C = w->dims[L->axis];
	L->K = L->C > 0 ? qt_tensor_numel(w) / L->C : 0;
	L->groups = !strcmp(n->op_type, "Conv") ? (int)qt_node_attr_int(n, "group", 1) : 1;
	if (L->C < 1 || L->K < 1 || L->groups < 1 || L->C % L->groups)
		return qt_error(QT_E_FORMAT, "%s: weight \"%s\" is empty", qt_node_label(g, n, lbl, sizeof lbl), wv->name);
	if (p->wfmt == QT_FMT_INT && weight_qtype(p->wbits) == QT_DTYPE_UNDEFINED)
		return qt_error(QT_E_UNSUPPORTED, "%s: %d-bit weights are not supported",
				qt_node_label(g, n, lbl, sizeof lbl), p->wbits);
	int blk = qt_numfmt_block(p->wfmt);
	/* Per-group scales apply to plain (group=1) convolutions and matrices;
	 * a grouped or depthwise Conv or a ConvTranspose keeps one scale per
	 * output channel (the runtime's direct loops take one scale per channel). */
	L->scheme = p->gran == QT_GRAN_TENSOR ? QT_QSCHEME_TENSOR
		   : p->gran == QT_GRAN_GROUP && p->group_size > 0 && L->groups == 1 &&
				   strcmp(n->op_type, "ConvTranspose")
			   ? QT_QSCHEME_GROUP
			   : QT_QSCHEME_CHANNEL;
	L->grid.C = L->C;
	L->grid.K = L->K;
	L->grid.group_size = L->scheme == QT_QSCHEME_GROUP && p->group_size < L->K ? p->group_size : L->K;
	if (blk) {
		/* MX and NVFP4: their own blocks along every row, even in a grouped
		 * Conv (decoded to FP32, no integer loop to fit). */
		L->scheme = QT_QSCHEME_GROUP;
		L->grid.group_size = blk;
	}
	L->grid.qmax = (1 << (p->wbits - 1)) - 1;
	L->grid.qmin = p->wfull ? -(1 << (p->wbits - 1)) : -L->grid.qmax;
	int64_t ng = (L->K + L->grid.group_size - 1) / L->grid.group_size;
	L->w = malloc((size_t)L->C * L->K * sizeof *L->w);
	L->codes = malloc((size_t)L->C * L->K * sizeof *L->codes);
	L->grid.scale = malloc((size_t)L->C * ng * sizeof *L->grid.scale);
	if (!L->w || !L->codes || !L->grid.scale)
		return qt_error(QT_E_NOMEM, "out of memory");
	const float *wd = w->data;
	for (int64_t c = 0; c < L->C; c++)
		for (int64_t k = 0; k < L->K; k++) {
			float x = wd[tensor_index(w, L->axis, c, k)];
			if (!isfinite(x))
				return qt_error(QT_E_NUMERIC, "%s: weight \"%s\" element %lld is not finite",
						qt_node_label(g, n, lbl, sizeof lbl), wv->name,
						(long long)tensor_index(w, L->axis, c, k));
			L->w[c * L->K + k] = x;
		}
	int bv = n->n_inputs > 2 ? n->inputs[2] : -1;
	if (bv >= 0 || (p->methods & QT_METHOD_BIASCORR)) {
		if (!(L->bias = calloc((size_t)L->C, sizeof *L->bias)))
			return qt_error(QT_E_NOMEM, "out of memory");
		if (bv >= 0)
			for (int64_t c = 0; c < L->C; c++) {
				L->bias[c] = ((const float *)g->values[bv].init->data)[c];
				if (!isfinite(L->bias[c]))
					return qt_error(QT_E_NUMERIC, "%s: bias \"%s\" element %lld is not finite",
							qt_node_label(g, n, lbl, sizeof lbl), g->values[bv].name,
							(long long)c);
			}
	}
	if (L->bias) {
		if (!(L->bias_fp = malloc((size_t)L->C * sizeof *L->bias_fp)))
			return qt_error(QT_E_NOMEM, "out of memory");
		memcpy(L->bias_fp, L->bias, (size_t)L->C * sizeof *L->bias_fp);
	}
	if (p->wfmt != QT_FMT_INT)
		return QT_OK; /* scales and codes together: qt_wformat_round */
	if ((st = scales_absmax(L, qt_node_label(g, n, lbl, sizeof lbl))) != QT_OK)
		return st;
	/* Without data the MSE search weighs every input alike; with data
	 * (layer_round) it is redone with the inputs' second moments. */
	if ((p->methods & QT_METHOD_MSE) && L->scheme != QT_QSCHEME_TENSOR &&
	    (st = qt_wscale_mse(L->w, &L->grid, NULL, NULL, qt_node_label(g, n, lbl, sizeof lbl))) != QT_OK)
		return st;
	grid_storable(&L->grid);
	return QT_OK;
}

/*
 * Give node n a bias value of its own (a float bias may be shared with other
 * nodes through deduplicated initializers, and a node without one needs one
 * for bias correction): a new value "<output>.bias_q", float for now
 * (qt_layer_set_simulated fills it, finalize makes it int32).
 */
static enum qt_status own_bias(struct qt_graph *g, struct qt_qlayer *L)
{
	struct qt_node *n = &g->nodes[L->node];
	char nb[512];
	int y = n->outputs[0];
	snprintf(nb, sizeof nb, "%s.bias_q", g->values[y].name);
	for (int k = 1; qt_graph_find_value(g, nb) >= 0; k++)
		snprintf(nb, sizeof nb, "%s.bias_q%d", g->values[y].name, k);
	int nbv = qt_graph_value(g, nb);
	struct qt_tensor *t = qt_graph_alloc(g, sizeof *t);
	float *d = qt_graph_alloc(g, (size_t)L->C * sizeof *d);
	if (nbv < 0 || !t || !d)
		return qt_error(QT_E_NOMEM, "out of memory");
	n = &g->nodes[L->node]; /* qt_graph_value may move the arrays */
	if (n->n_inputs < 3) {
		int *in = qt_graph_alloc(g, 3 * sizeof *in);
		if (!in)
			return qt_error(QT_E_NOMEM, "out of memory");
		in[0] = n->inputs[0], in[1] = n->inputs[1], in[2] = -1;
		n->inputs = in;
		n->n_inputs = 3;
		if (!strcmp(n->op_type, "MatMul")) {
			/* A bias for a MatMul: it becomes ai.qtool MatMulBias. */
			n->op_type = qt_graph_strdup(g, QT_OP_MATMUL_BIAS);
			n->domain = qt_graph_strdup(g, QT_DOMAIN_QTOOL);
			if (!n->op_type || !n->domain)
				return qt_error(QT_E_NOMEM, "out of memory");
		}
	}
	if (n->inputs[2] >= 0)
		g->values[n->inputs[2]].n_consumers--;
	g->values[nbv].n_consumers = 1;
	memcpy(d, L->bias, (size_t)L->C * sizeof *d);
	t->dtype = QT_DTYPE_F32;
	t->rank = 1;
	t->dims[0] = L->C;
	t->data = d;
	t->nbytes = (size_t)L->C * sizeof *d;
	n->inputs[2] = nbv;
	g->values[nbv].init = t;
	g->values[nbv].dtype = QT_DTYPE_F32;
	return QT_OK;
}

/*
 * Put layer L's dequantized weights (scale * code) and its corrected bias in
 * the graph in place of the float ones, so the FP32 executor runs the node
 * as the quantized model will: the node is "simulated" for the data engine's
 * later layers.
 */
static enum qt_status layer_set_simulated(struct qt_graph *g, struct qt_qlayer *L)
{
	struct qt_node *n = &g->nodes[L->node];
	struct qt_value *wv = &g->values[n->inputs[1]];
	const struct qt_tensor *w = wv->init;
	struct qt_tensor *t = qt_graph_alloc(g, sizeof *t);
	float *d = qt_graph_alloc(g, w->nbytes);
	if (!t || !d)
		return qt_error(QT_E_NOMEM, "out of memory");
	*t = *w;
	t->data = d;
	t->owned = 0;
	int64_t ng = (L->K + L->grid.group_size - 1) / L->grid.group_size;
	for (int64_t c = 0; c < L->C; c++)
		for (int64_t k = 0; k < L->K; k++)
			d[tensor_index(w, L->axis, c, k)] =
				qt_wgrid_value(&L->grid, L->codes[c * L->K + k], L->grid.scale[c * ng + k / L->grid.group_size]);
	L->w_fp_init = wv->init;
	L->w_sim_init = t;
	wv->init = t;
	if (L->bias && n->n_inputs > 2 && n->inputs[2] >= 0)
		memcpy(g->values[n->inputs[2]].init->data, L->bias, (size_t)L->C * sizeof *L->bias);
	return QT_OK;
}

/*
 * Output error of codes on held-out inputs (H = sum x x^T per conv group,
 * [G][K][K]): sum over rows of (w - q)^T H (w - q), relative to sum of
 * w^T H w. Double throughout.
 */
static double heldout_error(const struct qt_qlayer *L, const float *scale, const int32_t *codes, const double *H)
{
	int64_t ng = (L->K + L->grid.group_size - 1) / L->grid.group_size, rows = L->C / L->groups, K = L->K;
	double *d = malloc((size_t)rows * K * 2 * sizeof *d), num = 0, den = 0;
	if (!d)
		return -1;
	double *hd = d + rows * K;
	for (int pass = 0; pass < 2; pass++)
		for (int gi = 0; gi < L->groups; gi++) {
			for (int64_t r = 0; r < rows; r++) {
				int64_t c = gi * rows + r;
				for (int64_t k = 0; k < K; k++) {
					double q = (double)scale[c * ng + k / L->grid.group_size] *
						   qt_wgrid_elem(&L->grid, codes[c * K + k]);
					d[r * K + k] = L->w[c * K + k] - (pass ? 0 : q);
				}
			}
			cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)K, (int)K, 1.0, d, (int)K,
				    H + (size_t)gi * K * K, (int)K, 0.0, hd, (int)K);
			double acc = 0;
			for (int64_t i = 0; i < rows * K; i++)
				acc += d[i] * hd[i];
			*(pass ? &den : &num) += acc;
		}
	free(d);
	return den > 0 ? num / den : 0;
}

/* The weight stage's state for the data engine's callback. */
struct wstage {
	const struct qt_quant_opts *o;
	struct qt_qlayer *layers;
	int n_layers;
	int *by_node; /* node index -> layer index, or -1 */
	int sequential;
	int fp32_means; /* the pass collecting mean_fp */
	int done;
	struct qt_graph *g;
	int blas_threads; /* OpenBLAS threads outside the engine's float runs */
};

/*
 * The data engine's observer: a fused Relu/Clip clamps its node's output
 * (the FP32 model's function; the quantized model gets it from the output's
 * range), and in sequential mode every activation is then rounded to its grid.
 */
enum qt_status qt_fused_act_observer(void *graph, int value, struct qt_tensor *t)
{
	const struct qt_graph *g = graph;
	int p = g->values[value].producer;
	if (p >= 0 && g->nodes[p].act_fused && t->dtype == QT_DTYPE_F32) {
		float lo = g->nodes[p].act_lo, hi = g->nodes[p].act_hi, *d = t->data;
		int64_t n = qt_tensor_numel(t);
		for (int64_t i = 0; i < n; i++)
			d[i] = d[i] < lo ? lo : d[i] > hi ? hi : d[i];
	}
	return QT_OK;
}

static enum qt_status stage_observer(void *user, int value, struct qt_tensor *t)
{
	struct wstage *ws = user;
	qt_fused_act_observer(ws->g, value, t);
	return ws->sequential && !ws->fp32_means ? qt_fakequant_observer(ws->g, value, t) : QT_OK;
}

/*
 * Choose codes for layer L with the statistics s of its inputs: with MSE
 * scales, the search is weighted by the inputs' mean squares; with GPTQ or
 * AdaRound, each conv group's matrix is rounded against its own
 * H = 2 X^T X / n. Otherwise round to nearest.
 */
static enum qt_status layer_round(struct qt_graph *g, struct qt_qlayer *L, const struct qt_layer_stats *s,
				  const struct qt_quant_opts *o, int blas_threads)
{
	char lbl[256];
	enum qt_status st = QT_OK;
	unsigned m = L->plan->methods;
	/* A number format's scales are fixed by qt_wformat_round (powers of two
	 * for MX, E4M3 bytes for NVFP4): of the code choosers only GPTQ runs on
	 * it, once, with no scale search or re-fit (AdaRound's rounding is
	 * between two integer neighbours, which a minifloat grid does not have
	 * evenly spaced: such layers keep round to nearest). */
	const int fmt = L->grid.fmt != QT_FMT_INT;
	if (!(m & (QT_METHOD_GPTQ | QT_METHOD_ADAROUND | QT_METHOD_MSE)) || !s->xtx || s->rows < 1 ||
	    (fmt && !(m & QT_METHOD_GPTQ))) {
		qt_wgrid_round(L->w, &L->grid, L->codes);
		return QT_OK;
	}
	int64_t rows = L->C / L->groups, K = L->K, ng = qt_wgrid_ngroups(&L->grid);
	double *H = malloc((size_t)K * K * sizeof *H), *diag = malloc((size_t)K * sizeof *diag);
	double *Hw = malloc((size_t)K * K * sizeof *Hw);
	if (!H || !diag || !Hw) {
		free(H);
		free(Hw);
		free(diag);
		return qt_error(QT_E_NOMEM, "out of memory for a %lld x %lld Hessian", (long long)K, (long long)K);
	}
	qt_node_label(g, &g->nodes[L->node], lbl, sizeof lbl);
	struct qt_gptq_opts go = {.damp = o->gptq_damp, .act_order = !o->gptq_no_act_order, .block = o->gptq_block,
				  .name = lbl};
	double f = 2.0 / (double)s->rows;
	for (int gi = 0; gi < L->groups && !st; gi++) {
		const double *x = s->xtx + (size_t)gi * K * K;
		for (int64_t i = 0; i < K * K; i++)
			H[i] = f * x[i];
		for (int64_t k = 0; k < K; k++)
			diag[k] = H[k * K + k];
		struct qt_wgrid sub = L->grid;
		sub.C = rows;
		/* A format's block (32, 16) may be longer than a short row (a 3x3
		 * Conv over one channel): one scale per row either way. */
		if (sub.group_size > K)
			sub.group_size = K;
		sub.scale = L->grid.scale + (size_t)gi * rows * ng;
		const float *w = L->w + (size_t)gi * rows * K;
		int32_t *codes = L->codes + (size_t)gi * rows * K;
		/* GPTQ at 3 bits and below starts from the MSE scales (weighted
		 * by the inputs' second moments): on a grid of 8 or 4 levels the
		 * absmax scale wastes levels on rare large weights. Measured on
		 * the bundled models (docs/METHODS.md): better in every w3/w2
		 * case, mixed at w4, so w4 and up keep absmax. */
		int mse_init = (m & QT_METHOD_GPTQ) && L->plan->wbits <= 3;
		if (!fmt && ((m & QT_METHOD_MSE) || mse_init) && L->scheme != QT_QSCHEME_TENSOR)
			st = qt_wscale_mse(w, &sub, diag, NULL, lbl);
		if (st)
			break;
		if (!fmt)
			grid_storable(&sub);
		if (!(m & (QT_METHOD_GPTQ | QT_METHOD_ADAROUND))) {
			qt_wgrid_round(w, &sub, codes);
			continue;
		}
		/* The codes for the scales (GPTQ, or AdaRound's learned
		 * rounding), then the scales for the codes (qt_wscale_refit),
		 * o->gptq_rounds times (default 3). GPTQ consumes its H, so each
		 * round gets a copy. Neither's codes depend on the thread count
		 * (gptq.c, adaround.c): give them all of them. */
		int rounds = fmt ? 1 : o->gptq_rounds > 0 ? o->gptq_rounds : 3;
		for (int it = 0; it < rounds && !st; it++) {
			openblas_set_num_threads(blas_threads);
			if ((m & QT_METHOD_ADAROUND) && !fmt) {
				struct qt_adaround_opts ao = {.iters = o->adaround_iters, .name = lbl};
				st = qt_adaround(w, H, &sub, &ao, codes, NULL);
			} else {
				for (int64_t i = 0; i < K * K; i++)
					Hw[i] = H[i];
				st = qt_gptq(w, Hw, &sub, &go, codes, NULL);
			}
			openblas_set_num_threads(1);
			if (!st && it + 1 < rounds) {
				st = qt_wscale_refit(w, H, &sub, codes);
				grid_storable(&sub); /* the next round's codes use the stored scales */
			}
		}
	}
	free(H);
	free(Hw);
	free(diag);
	return st;
}

/* Rows per weight column below which a layer keeps the plain objective (stage_layer). */
#define FP32_TARGET_ROWS_PER_COL 4

static enum qt_status stage_layer(void *user, struct qt_graph *g, const struct qt_layer_stats *s)
{
	struct wstage *ws = user;
	struct qt_qlayer *L = &ws->layers[ws->by_node[s->node]];
	double inv = s->rows > 0 ? 1.0 / (double)s->rows : 0;
	if (ws->fp32_means || s->xsum_fp) {
		/* The FP32 model's mean inputs (bias correction): from the pass
		 * that collects them, or from the twin stream. */
		size_t n = (size_t)s->groups * s->K;
		const double *src = s->xsum_fp ? s->xsum_fp : s->xsum;
		if (!L->mean_fp && !(L->mean_fp = malloc(n * sizeof *L->mean_fp)))
			return qt_error(QT_E_NOMEM, "out of memory");
		for (size_t i = 0; i < n; i++)
			L->mean_fp[i] = src[i] * inv;
		if (ws->fp32_means)
			return QT_OK;
	}
	/* Round to nearest on the layer's first grid, the baseline of the report. */
	size_t nsc = (size_t)L->C * qt_wgrid_ngroups(&L->grid);
	float *scale0 = malloc(nsc * sizeof *scale0);
	if (!scale0)
		return qt_error(QT_E_NOMEM, "out of memory");
	memcpy(scale0, L->grid.scale, nsc * sizeof *scale0);
	/* With the twin's statistics, GPTQ and AdaRound aim at the FP32
	 * model's output (qt_fp32_target): L->w is the target while they run.
	 * w' solves a K x K system from the rows seen: with fewer than
	 * FP32_TARGET_ROWS_PER_COL rows per column (a wide Gemm on a
	 * thousand samples) it fits the calibration set, not the layer, and
	 * the plain objective is kept. */
	float *w_fp = NULL, *wt = NULL;
	enum qt_status st = QT_OK;
	if (s->xcross && s->xtx && (L->plan->methods & (QT_METHOD_GPTQ | QT_METHOD_ADAROUND)) &&
	    s->rows >= FP32_TARGET_ROWS_PER_COL * L->K) {
		int64_t rows = L->C / L->groups;
		if (!(wt = malloc((size_t)L->C * L->K * sizeof *wt)))
			st = qt_error(QT_E_NOMEM, "out of memory");
		for (int gi = 0; gi < L->groups && !st; gi++) {
			size_t off = (size_t)gi * rows * L->K, hk = (size_t)gi * L->K * L->K;
			st = qt_fp32_target(L->w + off, rows, L->K, s->xtx + hk, s->xcross + hk, ws->o->gptq_damp,
					    wt + off);
		}
		w_fp = L->w;
		L->w = wt;
	}
	if (!st)
		st = layer_round(g, L, s, ws->o, ws->blas_threads);
	if (w_fp)
		L->w = w_fp; /* bias correction and the held-out report use the FP32 weights */
	if (st) {
		free(wt);
		free(scale0);
		return st;
	}
	if (L->plan->methods & QT_METHOD_BIASCORR) {
		size_t n = (size_t)s->groups * s->K;
		double *mq = malloc(n * sizeof *mq);
		if (!mq)
			return qt_error(QT_E_NOMEM, "out of memory");
		for (size_t i = 0; i < n; i++)
			mq[i] = s->xsum[i] * inv;
		qt_biascorr_apply(L, mq);
		free(mq);
	}
	L->err = L->err_rtn = -1;
	if (s->xtx_holdout && s->rows_holdout > 0) {
		int32_t *rtn = malloc((size_t)L->C * L->K * sizeof *rtn);
		struct qt_wgrid g0 = L->grid;
		g0.scale = scale0;
		if (!rtn) {
			free(scale0);
			return qt_error(QT_E_NOMEM, "out of memory");
		}
		/* Round to nearest rounds the FP32 weights; both are measured
		 * against what the methods aimed at (the FP32 target, if any). */
		qt_wgrid_round(L->w, &g0, rtn);
		float *w_keep = L->w;
		L->w = wt ? wt : L->w;
		L->err_rtn = heldout_error(L, scale0, rtn, s->xtx_holdout);
		L->err = heldout_error(L, L->grid.scale, L->codes, s->xtx_holdout);
		L->w = w_keep;
		free(rtn);
	}
	free(wt);
	free(scale0);
	ws->done++;
	if (ws->o->progress)
		ws->o->progress(ws->o->progress_user, ws->done, ws->n_layers, g->nodes[L->node].name,
				qt_methods_str(L->plan->methods));
	return ws->sequential ? layer_set_simulated(g, L) : QT_OK;
}

/*
 * Stage 4: choose every planned layer's codes. Layers whose methods need
 * data go through the data engine in topological order (sequentially:
 * earlier layers simulated and activations rounded); the rest are rounded to
 * nearest at once.
 */
/* The data engine's twin_swap: the FP32 weights and biases of every
 * simulated layer back in g (fp32 = 1), or the simulated ones again. */
static enum qt_status twin_swap(void *user, struct qt_graph *g, int fp32)
{
	struct wstage *ws = user;
	for (int i = 0; i < ws->n_layers; i++) {
		struct qt_qlayer *L = &ws->layers[i];
		if (!L->w_sim_init)
			continue;
		const struct qt_node *n = &g->nodes[L->node];
		g->values[n->inputs[1]].init = fp32 ? L->w_fp_init : L->w_sim_init;
		if (L->bias && n->n_inputs > 2 && n->inputs[2] >= 0)
			memcpy(g->values[n->inputs[2]].init->data, fp32 ? L->bias_fp : L->bias,
			       (size_t)L->C * sizeof *L->bias);
	}
	return QT_OK;
}

static enum qt_status weight_stage(struct qt_graph *g, struct wstage *ws)
{
	const struct qt_quant_opts *o = ws->o;
	enum qt_status st = QT_OK;
	int *targets = malloc(((size_t)ws->n_layers + 1) * sizeof *targets), nt = 0, bc = 0, aim = 0;
	if (!targets)
		return qt_error(QT_E_NOMEM, "out of memory");
	for (int i = 0; i < ws->n_layers; i++) {
		struct qt_qlayer *L = &ws->layers[i];
		int G;
		int64_t K;
		/* A format's grid (scales, block scales) and round-to-nearest
		 * codes come first; GPTQ and bias correction then work on it like
		 * on an integer grid (layer_round says what else applies). */
		if (L->plan->wfmt != QT_FMT_INT && (st = qt_wformat_round(L)) != QT_OK)
			break;
		if ((L->plan->methods & QT_METHODS_DATA) && o->data && qt_layer_view_ok(g, &g->nodes[L->node], &G, &K)) {
			targets[nt++] = L->node;
			bc |= (L->plan->methods & QT_METHOD_BIASCORR) != 0;
			aim |= (L->plan->methods & (QT_METHOD_GPTQ | QT_METHOD_ADAROUND)) != 0;
		} else {
			if (L->plan->wfmt == QT_FMT_INT)
				qt_wgrid_round(L->w, &L->grid, L->codes);
			L->err = L->err_rtn = -1;
		}
	}
	if (nt > 0 && !st) {
		ws->sequential = !o->fp32_inputs;
		struct qt_layerdata_opts eo = {.batch = o->batch > 0 ? o->batch : 32, .observer = stage_observer,
					       .observer_user = ws};
		if (o->holdout > 0 && o->holdout < 1) {
			/* Whole batches at the end of the data are held out. */
			int64_t n = qt_dataset_count(o->data), keep = (int64_t)((double)n * (1 - o->holdout));
			keep -= keep % eo.batch;
			if (keep < eo.batch || keep >= n)
				st = qt_error(QT_E_INVALID_ARG,
					      "holding out %g of %lld samples leaves no whole batch of %d to fit or to hold out",
					      o->holdout, (long long)n, eo.batch);
			eo.holdout_from = keep;
		}
		ws->g = g;
		/* OpenBLAS splits some products differently with more threads, so
		 * the float sums would depend on the thread count; the engine's runs
		 * use one, so a quantized graph is the same on every machine. */
		ws->blas_threads = openblas_get_num_threads();
		openblas_set_num_threads(1);
		if (ws->sequential && aim && !o->no_fp32_target) {
			/* GPTQ and AdaRound aim at the FP32 model's outputs: a
			 * paired FP32 run gives x_fp beside x_q (and the FP32
			 * means bias correction needs, so no separate pass). */
			eo.twin_swap = twin_swap;
			eo.twin_user = ws;
			eo.twin_observer = qt_fused_act_observer;
			eo.twin_observer_user = g;
		}
		if (!st && bc && ws->sequential && !eo.twin_swap) {
			/* The FP32 model's mean inputs, for bias correction. */
			ws->fp32_means = 1;
			st = qt_layerdata_run(g, o->data, targets, nt, &eo, stage_layer, ws);
			ws->fp32_means = 0;
		}
		if (!st) {
			eo.want_xtx = 1;
			st = qt_layerdata_run(g, o->data, targets, nt, &eo, stage_layer, ws);
		}
		openblas_set_num_threads(ws->blas_threads);
	}
	free(targets);
	return st;
}

/* ---- Stage 5: finalize ---- */

/*
 * Write layer L into the graph: packed weight codes with their qparams, the
 * int32 bias at s_in * S[c], and the requantization multipliers
 * s_in * S[c] / s_out (divided by 2^15 for grouped weights, whose per-group
 * ratios the runtime applies; see lib/kernels/kernels.h), S[c] being the
 * channel's scale, or its largest group scale.
 */
/*
 * Replace layer L's float weight by its packed codes and their qparams:
 * integer codes (dtype of wbits) or element codes of the plan's format with
 * its scale encoding. Writes each row's reference scale S[c] (its largest)
 * to s_ref (C entries) when not NULL.
 */
static enum qt_status put_weights(struct qt_graph *g, const struct qt_qlayer *L, float *s_ref)
{
	struct qt_node *n = &g->nodes[L->node];
	struct qt_value *wv = &g->values[n->inputs[1]];
	const struct qt_tensor *w = wv->init;
	enum qt_numfmt f = L->plan->wfmt;
	enum qt_dtype qt = f == QT_FMT_INT ? weight_qtype(L->plan->wbits) : qt_numfmt_elem(f);
	int64_t ng = (L->K + L->grid.group_size - 1) / L->grid.group_size;
	int64_t count = L->scheme == QT_QSCHEME_TENSOR ? 1 : L->scheme == QT_QSCHEME_CHANNEL ? L->C : L->C * ng;
	struct qt_qparams *q = new_qparams(g, qt, L->scheme, L->axis, count);
	struct qt_tensor *t = qt_graph_alloc(g, sizeof *t);
	size_t bytes = qt_dtype_nbytes(qt, L->C * L->K);
	void *data = qt_graph_alloc(g, bytes ? bytes : 1);
	if (!q || !t || !data)
		return qt_error(QT_E_NOMEM, "out of memory");
	t->dtype = qt;
	t->data = data;
	q->group_axis = L->axis == 0 ? 1 : 0;
	q->group_size = L->scheme == QT_QSCHEME_GROUP ? (int)L->grid.group_size : 0;
	q->fmt = f;
	q->full_range = f == QT_FMT_INT && L->grid.qmin < -L->grid.qmax; /* the reader checks codes against it */
	/* grid_storable (or qt_wformat_round) made group scales two-level. */
	q->scale_enc = L->scale_code ? (f == QT_FMT_NVFP4 ? QT_SCALE_NV_E4M3 : QT_SCALE_E8M0)
		       : L->scheme == QT_QSCHEME_GROUP ? QT_SCALE_ROW_U8
						       : QT_SCALE_F32;
	if (L->scale_code) {
		if (!(q->scale_code = qt_graph_alloc(g, (size_t)count)))
			return qt_error(QT_E_NOMEM, "out of memory");
		memcpy(q->scale_code, L->scale_code, (size_t)count);
		q->tensor_scale = L->tscale;
	}
	for (int64_t i = 0; i < count; i++)
		q->scale[i] = L->grid.scale[L->scheme == QT_QSCHEME_TENSOR ? 0 : L->scheme == QT_QSCHEME_CHANNEL ? i * ng : i];
	for (int64_t c = 0; c < L->C; c++) {
		float m = 0;
		for (int64_t j = 0; j < ng; j++)
			m = fmaxf(m, L->grid.scale[c * ng + j]);
		if (s_ref)
			s_ref[c] = m;
		for (int64_t k = 0; k < L->K; k++)
			qt_code_put(t, tensor_index(w, L->axis, c, k), L->codes[c * L->K + k]);
	}
	t->rank = w->rank;
	memcpy(t->dims, w->dims, sizeof t->dims);
	t->nbytes = bytes;
	wv->init = t;
	wv->dtype = qt;
	wv->q = q;
	return QT_OK;
}

static enum qt_status finalize_layer(struct qt_graph *g, const struct qt_qlayer *L)
{
	char lbl[256];
	struct qt_node *n = &g->nodes[L->node];
	if (qt_plan_decoded(L->plan)) {
		/* Float bias (bias correction's, if it ran), no requantization: decoded to FP32. */
		if (L->bias && n->n_inputs > 2 && n->inputs[2] >= 0)
			memcpy(g->values[n->inputs[2]].init->data, L->bias, (size_t)L->C * sizeof *L->bias);
		return put_weights(g, L, NULL);
	}
	float *s_ref = malloc((size_t)L->C * sizeof *s_ref);
	enum qt_status wst = s_ref ? put_weights(g, L, s_ref) : qt_error(QT_E_NOMEM, "out of memory");
	if (wst) {
		free(s_ref);
		return wst;
	}

	float s_in = act_scale(&g->values[n->inputs[0]]), s_out = act_scale(&g->values[n->outputs[0]]);
	int grouped = L->scheme == QT_QSCHEME_GROUP;
	if (L->bias && n->n_inputs > 2 && n->inputs[2] >= 0) {
		struct qt_value *b = &g->values[n->inputs[2]];
		struct qt_qparams *bq = new_qparams(g, QT_DTYPE_I32, QT_QSCHEME_CHANNEL, 0, L->C);
		struct qt_tensor *bt = qt_graph_alloc(g, sizeof *bt);
		int32_t *d = qt_graph_alloc(g, (size_t)L->C * sizeof *d);
		if (!bq || !bt || !d) {
			free(s_ref);
			return qt_error(QT_E_NOMEM, "out of memory");
		}
		/* Rounding: nearest, ties to even; saturated to +-(2^31 - 1). */
		for (int64_t c = 0; c < L->C; c++) {
			double s = (double)s_in * s_ref[c];
			double r = nearbyint((double)L->bias[c] / s);
			d[c] = r > INT32_MAX ? INT32_MAX : r < -INT32_MAX ? -INT32_MAX : (int32_t)r;
			bq->scale[c] = (float)s;
		}
		bt->dtype = QT_DTYPE_I32;
		bt->rank = 1;
		bt->dims[0] = L->C;
		bt->data = d;
		bt->nbytes = (size_t)L->C * 4;
		b->init = bt;
		b->dtype = QT_DTYPE_I32;
		b->q = bq;
	}
	int cnt = L->scheme != QT_QSCHEME_TENSOR ? (int)L->C : 1;
	struct qt_requant *rq = qt_graph_alloc(g, sizeof *rq);
	if (!rq || !(rq->mult = qt_graph_alloc(g, (size_t)cnt * 4)) || !(rq->shift = qt_graph_alloc(g, (size_t)cnt * 4))) {
		free(s_ref);
		return qt_error(QT_E_NOMEM, "out of memory");
	}
	rq->count = cnt;
	qt_qtype_range(g->values[n->outputs[0]].q->qtype, &rq->qmin, &rq->qmax);
	for (int c = 0; c < cnt; c++) {
		double real = (double)s_in * s_ref[c] / s_out;
		if (grouped)
			real /= QT_GROUP_MAX_RATIO;
		int sh;
		enum qt_status st = qt_quantize_multiplier(real, &rq->mult[c], &sh);
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

/* The provenance line of the methods and their settings (META "methods"),
 * e.g. "gptq,bias-correction; gptq damp 0.01, block 128, act-order, rounds 3;
 * sequential, 1000 samples of fashion-mnist:train". */
static void methods_provenance(const struct qt_quant_opts *o, const struct qt_plan *plan, char *buf, size_t cap)
{
	size_t n = 0;
	int mse_init = 0; /* a GPTQ layer at <= 3 bits started from MSE scales (layer_round) */
	for (int i = 0; i < plan->n; i++)
		mse_init |= (plan->layers[i].methods & QT_METHOD_GPTQ) && plan->layers[i].wbits <= 3;
	buf[0] = 0;
#define PUT(...) (n += (size_t)snprintf(buf + (n < cap ? n : cap - 1), n < cap ? cap - n : 1, __VA_ARGS__))
	unsigned m = o->methods;
	PUT("%s", qt_methods_str(m));
	if (m & QT_METHOD_GPTQ)
		PUT("; gptq damp %g, block %d, %s, rounds %d%s", o->gptq_damp > 0 ? o->gptq_damp : 0.01,
		    o->gptq_block > 0 ? o->gptq_block : 128, o->gptq_no_act_order ? "no act-order" : "act-order",
		    o->gptq_rounds > 0 ? o->gptq_rounds : 3, mse_init ? ", mse scales" : "");
	if (m & QT_METHOD_ADAROUND)
		PUT("; adaround %d steps", o->adaround_iters > 0 ? o->adaround_iters : 1000);
	if (m & QT_METHOD_SMOOTHQUANT) {
		if (o->sq_alpha < 0)
			PUT("; smoothquant alpha searched per layer");
		else
			PUT("; smoothquant alpha %g", o->sq_alpha);
	}
	if (o->data && (m & QT_METHODS_NEED_DATA))
		PUT("; %s, %lld samples of %s",
		    o->fp32_inputs ? "FP32 inputs"
		    : !(m & (QT_METHOD_GPTQ | QT_METHOD_ADAROUND)) ? "sequential"
		    : o->no_fp32_target ? "sequential, target W x_q" : "sequential, target the FP32 output",
		    (long long)qt_dataset_count(o->data), o->data_spec ? o->data_spec : "(unnamed data)");
#undef PUT
}

static struct qt_attr *set_attr(struct qt_attr *a, const char *name, enum qt_attr_type type)
{
	a->name = name;
	a->type = type;
	return a;
}

/*
 * An ai.qtool FakeQuant node (qtool/quant.h) in front of each planned layer
 * whose activations use a number format: its input 0 now reads
 * "<input>.fq<k>", the input rounded to the format. A plain minifloat's
 * scale (and NVFP4's tensor scale) comes from the input's calibrated range
 * at 8 bits: max(|lo|, |hi|) / the element's largest value. Blocks run along
 * the channel axis of a Conv's NCHW input, the last axis otherwise. Adds
 * nodes: the caller finalizes the graph (node indices change).
 */
static enum qt_status insert_act_quant(struct qt_graph *g, const struct qt_calib_table *calib,
				       const struct qt_plan *plan, const struct qt_quant_opts *o)
{
	char name[512], lbl[256];
	enum qt_status st;
	for (int i = 0; i < plan->n; i++) {
		const struct qt_layer_plan *p = &plan->layers[i];
		if (p->keep_float || p->afmt == QT_FMT_INT)
			continue;
		int x = g->nodes[p->node].inputs[0];
		float lo, hi, scale = 1;
		if (!qt_numfmt_block(p->afmt) || p->afmt == QT_FMT_NVFP4) {
			if ((st = qt_calib_range(calib, g->values[x].name, o->calib_method, 8, &lo, &hi)) != QT_OK)
				return qt_error_prefix(st, "%s: input \"%s\"",
						       qt_node_label(g, &g->nodes[p->node], lbl, sizeof lbl), g->values[x].name);
			float amax = fmaxf(fabsf(lo), fabsf(hi));
			scale = p->afmt == QT_FMT_NVFP4 ? qt_nvfp4_tensor_scale(amax)
				: amax > 0 && isfinite(amax) ? fmaxf((float)(amax / qt_numfmt_elem_max(p->afmt)), FLT_MIN)
							      : 1;
		}
		snprintf(name, sizeof name, "%s.fq", g->values[x].name);
		for (int k = 1; qt_graph_find_value(g, name) >= 0; k++)
			snprintf(name, sizeof name, "%s.fq%d", g->values[x].name, k);
		int y = qt_graph_value(g, name);
		int ni = y >= 0 ? qt_graph_add_node(g, QT_OP_FAKE_QUANT, QT_DOMAIN_QTOOL, name) : -1;
		struct qt_node *n = ni >= 0 ? &g->nodes[ni] : NULL;
		if (!n || !(n->inputs = qt_graph_alloc(g, sizeof(int))) || !(n->outputs = qt_graph_alloc(g, sizeof(int))) ||
		    !(n->attrs = qt_graph_alloc(g, 4 * sizeof *n->attrs)))
			return qt_error(QT_E_NOMEM, "out of memory");
		const struct qt_node *layer = &g->nodes[p->node];
		int conv = !strcmp(layer->op_type, "Conv") || !strcmp(layer->op_type, "ConvTranspose");
		n->n_inputs = n->n_outputs = 1;
		n->inputs[0] = x;
		n->outputs[0] = y;
		n->n_attrs = 4;
		struct qt_attr *a = set_attr(&n->attrs[0], "format", QT_ATTR_STRING);
		a->s = qt_numfmt_name(p->afmt);
		a->s_len = strlen(a->s);
		set_attr(&n->attrs[1], "scale", QT_ATTR_FLOAT)->f = scale;
		set_attr(&n->attrs[2], "axis", QT_ATTR_INT)->i = conv ? 1 : -1;
		set_attr(&n->attrs[3], "rule", QT_ATTR_INT)->i = p->mx_rule;
		struct qt_value *yv = &g->values[y], *xv = &g->values[x];
		yv->dtype = QT_DTYPE_F32;
		yv->rank = xv->rank;
		memcpy(yv->dims, xv->dims, sizeof yv->dims);
		g->nodes[p->node].inputs[0] = y;
	}
	return QT_OK;
}

/* A float scalar constant named name (for Clip's bounds); its value index or -1. */
static int scalar_const(struct qt_graph *g, const char *name, float v)
{
	int i = qt_graph_value(g, name);
	struct qt_tensor *t = qt_graph_alloc(g, sizeof *t);
	float *d = qt_graph_alloc(g, sizeof *d);
	if (i < 0 || !t || !d)
		return -1;
	*d = v;
	t->dtype = QT_DTYPE_F32;
	t->data = d;
	t->nbytes = sizeof *d;
	g->values[i].init = t;
	g->values[i].dtype = QT_DTYPE_F32;
	g->values[i].rank = 0;
	return i;
}

/*
 * A fused Relu/Clip(0, hi) is applied by its node's quantized output range;
 * an output left float (read only by layers with a number-format input)
 * has none, so the activation becomes a node again: producer -> "<y>.pre"
 * -> Relu, or Clip(0, hi), -> y. Adds nodes: the caller finalizes.
 */
static enum qt_status unfuse_float_outputs(struct qt_graph *g)
{
	char name[512];
	int n0 = g->n_nodes;
	for (int i = 0; i < n0; i++) {
		int y = g->nodes[i].n_outputs == 1 ? g->nodes[i].outputs[0] : -1;
		if (!g->nodes[i].act_fused || y < 0 || g->values[y].q || g->values[y].dtype != QT_DTYPE_F32)
			continue;
		float hi = g->nodes[i].act_hi;
		int clip = isfinite(hi);
		snprintf(name, sizeof name, "%s.pre", g->values[y].name);
		int pre = qt_graph_find_value(g, name) < 0 ? qt_graph_value(g, name) : -1;
		int lo_v = -1, hi_v = -1;
		if (clip && g->opset >= 11) {
			snprintf(name, sizeof name, "%s.clip_min", g->values[y].name);
			lo_v = scalar_const(g, name, 0.0f);
			snprintf(name, sizeof name, "%s.clip_max", g->values[y].name);
			hi_v = scalar_const(g, name, hi);
		}
		snprintf(name, sizeof name, "%s.act", g->values[y].name);
		int ni = pre >= 0 && (!clip || g->opset < 11 || (lo_v >= 0 && hi_v >= 0))
				 ? qt_graph_add_node(g, clip ? "Clip" : "Relu", "", name)
				 : -1;
		struct qt_node *n = ni >= 0 ? &g->nodes[ni] : NULL;
		int nin = clip && g->opset >= 11 ? 3 : 1;
		if (!n || !(n->inputs = qt_graph_alloc(g, (size_t)nin * sizeof(int))) ||
		    !(n->outputs = qt_graph_alloc(g, sizeof(int))) ||
		    (clip && g->opset < 11 && !(n->attrs = qt_graph_alloc(g, 2 * sizeof *n->attrs))))
			return qt_error(QT_E_NOMEM, "out of memory (or a value \"%s\" exists)", name);
		n->n_inputs = nin;
		n->inputs[0] = pre;
		if (nin == 3)
			n->inputs[1] = lo_v, n->inputs[2] = hi_v;
		if (clip && g->opset < 11) {
			n->n_attrs = 2;
			set_attr(&n->attrs[0], "min", QT_ATTR_FLOAT)->f = 0.0f;
			set_attr(&n->attrs[1], "max", QT_ATTR_FLOAT)->f = hi;
		}
		n->n_outputs = 1;
		n->outputs[0] = y;
		struct qt_value *pv = &g->values[pre], *yv = &g->values[y];
		pv->dtype = QT_DTYPE_F32;
		pv->rank = yv->rank;
		memcpy(pv->dims, yv->dims, sizeof pv->dims);
		g->nodes[i].outputs[0] = pre;
		g->nodes[i].act_fused = 0;
	}
	return QT_OK;
}

/*
 * Stage 3b (--method act-range): the input range of every planned integer
 * layer that asks for it, chosen on that layer's output error
 * (lib/quant/actrange.c), before the weight stage rounds anything with it.
 */
static enum qt_status range_search(struct qt_graph *g, const struct qt_plan *plan, const struct qt_quant_opts *o)
{
	int *nodes = malloc(((size_t)plan->n + 1) * sizeof *nodes), n = 0;
	char *centered = malloc((size_t)plan->n + 1);
	if (!nodes || !centered) {
		free(nodes);
		free(centered);
		return qt_error(QT_E_NOMEM, "out of memory");
	}
	for (int i = 0; i < plan->n; i++) {
		const struct qt_layer_plan *p = &plan->layers[i];
		if ((p->methods & QT_METHOD_ACTRANGE) && !p->keep_float && quantizable(g, p) && p->afmt == QT_FMT_INT) {
			centered[n] = (p->methods & QT_METHOD_BIASCORR) != 0;
			nodes[n++] = p->node;
		}
	}
	enum qt_status st = QT_OK;
	struct qt_actrange_stats stats = {0};
	if (n > 0 && o->data) {
		/* One OpenBLAS thread: the same float sums on every machine (see weight_stage). */
		int threads = openblas_get_num_threads();
		openblas_set_num_threads(1);
		st = qt_actrange_search(g, nodes, centered, n, o->data, o->batch, &stats);
		openblas_set_num_threads(threads);
		if (!st && o->rewrite_out) {
			o->rewrite_out->ar_done = 1;
			o->rewrite_out->ar = stats;
		}
	}
	free(nodes);
	free(centered);
	return st;
}

enum qt_status qt_quantize_planned(struct qt_graph *g, const struct qt_calib_table *calib, const struct qt_plan *plan,
				   const struct qt_quant_opts *o)
{
	char lbl[256];
	enum qt_status st;
	int n_float;
	if ((st = activation_ranges(g, calib, plan, o)) != QT_OK || (st = float_islands(g, plan, &n_float)) != QT_OK ||
	    (st = range_search(g, plan, o)) != QT_OK)
		return st;
	struct wstage ws = {.o = o};
	ws.layers = calloc((size_t)plan->n + 1, sizeof *ws.layers);
	ws.by_node = malloc(((size_t)g->n_nodes + 1) * sizeof *ws.by_node);
	if (!ws.layers || !ws.by_node) {
		free(ws.layers);
		free(ws.by_node);
		return qt_error(QT_E_NOMEM, "out of memory");
	}
	for (int i = 0; i < g->n_nodes; i++)
		ws.by_node[i] = -1;
	for (int i = 0; i < plan->n && !st; i++) {
		const struct qt_layer_plan *p = &plan->layers[i];
		if (p->keep_float || !quantizable(g, p))
			continue;
		struct qt_qlayer *L = &ws.layers[ws.n_layers];
		if ((st = layer_init(g, p, L)) != QT_OK) {
			layer_free(L);
			break;
		}
		ws.by_node[p->node] = ws.n_layers++;
		if (L->bias && (st = own_bias(g, L)) != QT_OK)
			break;
	}
	if (!st)
		st = weight_stage(g, &ws);
	if (!st && o->report_out) {
		struct qt_layer_report *r = calloc((size_t)ws.n_layers + 1, sizeof *r);
		if (!r)
			st = qt_error(QT_E_NOMEM, "out of memory");
		for (int i = 0; r && i < ws.n_layers; i++) {
			const struct qt_qlayer *L = &ws.layers[i];
			const struct qt_node *n = &g->nodes[L->node];
			r[i] = (struct qt_layer_report){.node = L->node, .wbits = L->plan->wbits, .abits = L->plan->abits,
							.methods = L->plan->methods, .err_rtn = L->err_rtn, .err = L->err};
			r[i].name = n->name[0] ? n->name : g->values[n->outputs[0]].name;
		}
		*o->report_out = r;
		*o->n_report_out = r ? ws.n_layers : 0;
	}
	for (int i = 0; i < ws.n_layers && !st; i++)
		if ((st = finalize_layer(g, &ws.layers[i])) != QT_OK)
			qt_error_prefix(st, "%s", qt_node_label(g, &g->nodes[ws.layers[i].node], lbl, sizeof lbl));
	for (int i = 0; i < ws.n_layers; i++)
		layer_free(&ws.layers[i]);
	free(ws.layers);
	free(ws.by_node);
	if (!st)
		st = insert_act_quant(g, calib, plan, o);
	if (!st)
		st = unfuse_float_outputs(g);
	if (st)
		return st;
	/* Folded BatchNormalization parameters and replaced float biases are
	 * orphans now: drop them so the .qmod carries only what runs. */
	if ((st = qt_graph_prune(g, NULL)) != QT_OK)
		return st;
	g->calib_method = qt_graph_strdup(g, o->calib_method ? o->calib_method
							     : qt_calib_method_name(calib->default_method));
	g->qtool_version = qt_graph_strdup(g, QT_VERSION_STRING);
	g->command_line = qt_graph_strdup(g, o->command_line ? o->command_line : "");
	char prov[512];
	methods_provenance(o, plan, prov, sizeof prov);
	g->quant_methods = qt_graph_strdup(g, prov);
	char hex[65];
	qt_sha256_hex(g->sha256, hex);
	g->src_sha256_hex = qt_graph_strdup(g, hex);
	return QT_OK;
}

/*
 * Stage 2: graph rewrites that keep the FP32 function (cross-layer
 * equalization, SmoothQuant). They rescale channels of intermediate
 * activations, and a calibration file holds per-tensor statistics only, so
 * the new per-tensor ranges cannot be derived from it (the range of a
 * tensor whose channel i is divided by s_i depends on each channel's own
 * extremes). When a rewrite changed anything, the rewritten graph is
 * calibrated again on o->data with the file's range method, bits,
 * percentile and bin count, and *recal_out holds that table (else NULL).
 */
static enum qt_status rewrite_stage(struct qt_graph *g, const struct qt_calib_table *calib,
				    const struct qt_quant_opts *o, struct qt_calib_table **recal_out)
{
	struct qt_rewrite_report rep = {0};
	enum qt_status st = QT_OK;
	int changed = 0;
	*recal_out = NULL;
	if ((o->methods & QT_METHODS_REWRITE) && !o->data)
		return qt_error(QT_E_INVALID_ARG, "--method %s rescales activations, whose ranges must then be "
				"measured again: it needs calibration samples (--data)",
				qt_methods_str(o->methods & QT_METHODS_REWRITE));
	if (o->methods & QT_METHOD_CLE) {
		if ((st = qt_pass_equalize(g, NULL, &rep.cle)) != QT_OK)
			return st;
		rep.cle_done = 1;
		changed |= rep.cle.pairs > 0;
	}
	if (o->methods & QT_METHOD_SMOOTHQUANT) {
		struct qt_smoothquant_opts so = {.alpha = o->sq_alpha, .wbits = o->wbits, .abits = o->abits,
						 .per_tensor = o->gran == QT_GRAN_TENSOR, .batch = o->batch};
		int threads = openblas_get_num_threads();
		openblas_set_num_threads(1); /* the search's sums the same on every machine */
		st = qt_pass_smoothquant(g, o->data, &so, &rep.sq);
		openblas_set_num_threads(threads);
		if (st)
			return st;
		rep.sq_done = 1;
		changed |= rep.sq.layers > 0;
	}
	if (changed) {
		struct qt_calib_meta meta = {.model = calib->model, .dataset = qt_dataset_describe(o->data),
					     .default_method = calib->default_method, .bits = calib->bits,
					     .percentile = calib->percentile};
		struct qt_calib_opts copt = {.bins = calib->n_tensors > 0 ? calib->tensors[0].hist.n_bins : 0};
		int threads = openblas_get_num_threads();
		openblas_set_num_threads(1); /* the same float sums on every machine (see weight_stage) */
		st = qt_calib_run(g, o->data, o->batch > 0 ? o->batch : 32, qt_fused_act_observer, g, &copt, &meta,
				  recal_out);
		openblas_set_num_threads(threads);
		if (st)
			return qt_error_prefix(st, "measuring the rewritten graph's activation ranges");
		rep.recalibrated = (*recal_out)->samples;
	}
	if (o->rewrite_out)
		*o->rewrite_out = rep;
	return QT_OK;
}

enum qt_status qt_quantize_graph(struct qt_graph *g, const struct qt_calib_table *calib,
				 const struct qt_quant_opts *o)
{
	enum qt_status st;
	struct qt_plan plan = {0};
	struct qt_calib_table *recal = NULL;
	if ((st = qt_quant_prepare(g, o->input_shapes)) != QT_OK || (st = rewrite_stage(g, calib, o, &recal)) != QT_OK ||
	    (st = qt_plan_build(g, o, &plan)) != QT_OK) {
		qt_calib_table_free(recal);
		return st;
	}
	st = qt_quantize_planned(g, recal ? recal : calib, &plan, o);
	qt_plan_free(&plan);
	qt_calib_table_free(recal);
	return st;
}
