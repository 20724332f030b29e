/*
 * Per-layer sensitivities for mixed precision (include/qtool/bitalloc.h).
 *
 * For each setting the whole model is quantized once, uniformly, by the real
 * quantize stage (so a layer's codes, scales and bytes are exactly what
 * `quantize` would write for it at that setting), and its float simulation
 * (qt_fakequant_prepare) gives every layer's dequantized weight and bias and
 * the grid of its input activation. Then per batch of samples: one FP32
 * reference pass keeps every value; for each layer and setting the runtime
 * restarts at that layer's node from the reference values live there (the
 * frontier), with the layer's simulated weights swapped into the FP32 graph
 * and its input rounded to its grid, and runs the rest of the model. Only
 * the nodes from the layer on are rerun. Memory: every setting's dequantized
 * weights (settings x the model's weights in float) plus one batch's values.
 *
 * Float throughout (an offline measurement): losses per sample in double.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "core/sha256.h"
#include "qtool/bitalloc.h"
#include "qtool/calib.h"
#include "qtool/dataset.h"
#include "qtool/qmod.h"
#include "qtool/rt.h"
#include "quant/quant_int.h"
#include "quant/sens_int.h"

#define FLOAT_BITS 32

int qt_bits_setting_parse(const char *s, struct qt_bits_setting *out)
{
	if (!s)
		return -1;
	memset(out, 0, sizeof *out);
	if (!strcmp(s, "float")) {
		out->wbits = out->abits = FLOAT_BITS;
		return 0;
	}
	if (!qt_parse_bits(s, &out->wbits, &out->abits))
		return 0;
	/* FORMAT or FORMAT:aN */
	char name[32];
	const char *colon = strchr(s, ':');
	size_t len = colon ? (size_t)(colon - s) : strlen(s);
	if (len >= sizeof name)
		return -1;
	memcpy(name, s, len);
	name[len] = 0;
	out->abits = colon && !strcmp(colon, ":a4") ? 4 : 8;
	if (colon && strcmp(colon, ":a4") && strcmp(colon, ":a8"))
		return -1;
	return qt_numfmt_parse(name, &out->wfmt, &out->wbits);
}

const char *qt_bits_setting_str(const struct qt_bits_setting *s, char *buf)
{
	if (s->wbits == FLOAT_BITS)
		snprintf(buf, QT_SETTING_STR_MAX, "float");
	else if (s->wfmt != QT_FMT_INT)
		snprintf(buf, QT_SETTING_STR_MAX, "%s%s", qt_numfmt_name(s->wfmt), s->abits == 8 ? "" : ":a4");
	else
		snprintf(buf, QT_SETTING_STR_MAX, "w%da%d", s->wbits % 100, s->abits % 100);
	return buf;
}

int qt_bits_setting_eq(const struct qt_bits_setting *a, const struct qt_bits_setting *b)
{
	return a->wbits == b->wbits && a->abits == b->abits && a->wfmt == b->wfmt;
}

int qt_bits_settings_parse(const char *list, struct qt_bits_setting *out, int cap, const char **bad_out)
{
	static char bad[64];
	int n = 0;
	const char *p = list ? list : "";
	do {
		size_t len = strcspn(p, ",");
		snprintf(bad, sizeof bad, "%.*s", (int)(len < 60 ? len : 60), p);
		struct qt_bits_setting s;
		int dup = 0;
		if (len == 0 || len >= 60 || qt_bits_setting_parse(bad, &s) || n >= cap) {
			*bad_out = bad;
			return -1;
		}
		for (int i = 0; i < n; i++)
			dup |= qt_bits_setting_eq(&out[i], &s);
		if (dup) {
			*bad_out = bad;
			return -1;
		}
		out[n++] = s;
		p += len;
	} while (*p++ == ',');
	return n;
}

void qt_sens_free(struct qt_sens *s)
{
	if (!s)
		return;
	for (int l = 0; l < s->n_layers; l++) {
		if (s->names)
			free(s->names[l]);
		if (s->ops)
			free(s->ops[l]);
	}
	free(s->names);
	free(s->ops);
	free(s->settings);
	free(s->params);
	free(s->macs);
	free(s->cost);
	free(s->bytes);
	free(s->sqnr);
	free(s->ns);
	memset(s, 0, sizeof *s);
}

/* Arrays of s for n_layers x n_settings (names and ops left NULL). */
enum qt_status qt_sens_alloc(struct qt_sens *s, int n_layers, int n_settings)
{
	size_t L = (size_t)n_layers, S = (size_t)n_settings;
	memset(s, 0, sizeof *s);
	s->n_layers = n_layers;
	s->n_settings = n_settings;
	s->names = calloc(L + 1, sizeof *s->names);
	s->ops = calloc(L + 1, sizeof *s->ops);
	s->settings = calloc(S + 1, sizeof *s->settings);
	s->params = calloc(L + 1, sizeof *s->params);
	s->macs = calloc(L + 1, sizeof *s->macs);
	s->cost = calloc(L * S + 1, sizeof *s->cost);
	s->bytes = calloc(L * S + 1, sizeof *s->bytes);
	s->sqnr = malloc((L * S + 1) * sizeof *s->sqnr);
	s->ns = malloc((L * S + 1) * sizeof *s->ns);
	if (!s->names || !s->ops || !s->settings || !s->params || !s->macs || !s->cost || !s->bytes || !s->sqnr ||
	    !s->ns) {
		qt_sens_free(s);
		return qt_error(QT_E_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < L * S; i++) {
		s->sqnr[i] = NAN;
		s->ns[i] = -1;
	}
	return QT_OK;
}

/* ---- One setting's simulated layers ---- */

/* Layer l at one setting, taken from that setting's float simulation. */
struct sim_layer {
	struct qt_tensor w, b; /* dequantized weight and bias (owned; b empty without a bias) */
	float a_scale;         /* grid of the input activation; a_scale 0: not quantized */
	int32_t a_zp, a_qmin, a_qmax;
};

static void sim_free(struct sim_layer *sl, int n)
{
	for (int i = 0; sl && i < n; i++) {
		qt_tensor_free(&sl[i].w);
		qt_tensor_free(&sl[i].b);
	}
	free(sl);
}

/* Load `model` and run the quantize stage's preparation on it. */
static enum qt_status load_prepared(const char *model, const struct qt_quant_opts *qo, struct qt_graph **out)
{
	enum qt_status st = qt_graph_load_onnx(model, out);
	if (!st && (st = qt_quant_prepare(*out, qo->input_shapes)) != QT_OK) {
		qt_graph_free(*out);
		*out = NULL;
	}
	return st;
}

/*
 * Quantize a fresh copy of the model uniformly at setting s (layers the
 * user keeps float stay float) and take, for the nodes nodes[0..n), the
 * bytes of the stored weight, the simulated layer and, with so->time_nodes,
 * the integer runtime's time (ns, -1 when not timed). When quantized_out is
 * given, it receives per node whether the quantizer quantized its weight
 * (integer codes, or a format's decoded to FP32 at run time).
 */
static enum qt_status sim_setting(const char *model, const struct qt_calib_table *calib,
				  const struct qt_sens_opts *so, const struct qt_bits_setting *s, const int *nodes,
				  int n, int n_nodes_fp32, struct sim_layer *sl, int64_t *bytes, int64_t *ns,
				  int *quantized_out)
{
	const struct qt_quant_opts *qo = so->quant;
	struct qt_graph *g = NULL;
	struct qt_plan plan = {0};
	enum qt_status st = load_prepared(model, qo, &g);
	if (!st && g->n_nodes != n_nodes_fp32)
		st = qt_error(QT_E_INVALID_ARG, "%s: preparation is not deterministic (%d vs %d nodes)", model,
			      g->n_nodes, n_nodes_fp32);
	struct qt_quant_opts o = *qo;
	o.wbits = s->wbits;
	o.abits = s->abits;
	o.wfmt = s->wfmt;
	o.report_out = NULL;
	o.n_report_out = NULL;
	o.progress = NULL;
	o.fp32_inputs = 1; /* one layer at a time: each method sees FP32 inputs */
	if (!(o.methods & QT_METHODS_DATA) || !o.data)
		o.methods &= ~QT_METHODS_DATA, o.data = NULL;
	if (!st)
		st = qt_plan_build(g, &o, &plan);
	for (int i = 0; !st && i < plan.n; i++)
		if (!plan.layers[i].keep_float)
			plan.layers[i].wbits = s->wbits, plan.layers[i].abits = s->abits, plan.layers[i].wfmt = s->wfmt;
	/* Which nodes got quantized weights (the float simulation drops the qparams). */
	unsigned char *wq = calloc((size_t)n + 1, 1);
	if (!st && !wq)
		st = qt_error(QT_E_NOMEM, "out of memory");
	if (!st)
		st = qt_quantize_planned(g, calib, &plan, &o);
	for (int i = 0; !st && i < n; i++) {
		const struct qt_node *nd = &g->nodes[nodes[i]];
		const struct qt_value *w = &g->values[nd->inputs[1]], *x = &g->values[nd->inputs[0]];
		wq[i] = w->q != NULL;
		if (quantized_out)
			quantized_out[i] = wq[i];
		if (!wq[i])
			continue;
		int64_t C = w->q->axis < w->init->rank ? w->init->dims[w->q->axis] : 1;
		bytes[i] = (int64_t)w->init->nbytes + qt_qmod_qparams_bytes(w->q, C);
		if (x->q && x->q->count == 1) {
			sl[i].a_scale = x->q->scale[0];
			sl[i].a_zp = x->q->zero_point[0];
			qt_qtype_range(x->q->qtype, &sl[i].a_qmin, &sl[i].a_qmax);
		}
	}
	for (int i = 0; i < n; i++)
		ns[i] = -1;
	if (!st && so->time_nodes)
		st = so->time_nodes(so->time_user, g, nodes, n, ns);
	if (!st)
		st = qt_fakequant_prepare(g);
	for (int i = 0; !st && i < n; i++) {
		const struct qt_node *nd = &g->nodes[nodes[i]];
		if (!wq[i])
			continue;
		st = qt_tensor_copy(&sl[i].w, g->values[nd->inputs[1]].init);
		if (!st && nd->n_inputs > 2 && nd->inputs[2] >= 0 && g->values[nd->inputs[2]].init)
			st = qt_tensor_copy(&sl[i].b, g->values[nd->inputs[2]].init);
	}
	if (st) {
		char b[QT_SETTING_STR_MAX];
		qt_error_prefix(st, "quantizing %s at %s", model, qt_bits_setting_str(s, b));
	}
	free(wq);
	qt_plan_free(&plan);
	qt_graph_free(g);
	return st;
}

/* ---- Losses ---- */

/* Log-probabilities of row x (n values) of an output made by op `op`:
 * log_softmax of logits, log of a Softmax's probabilities (floored at
 * 1e-30), a LogSoftmax's values as they are. In double. */
static void log_probs(const float *x, int64_t n, const char *op, double *out)
{
	if (!strcmp(op, "Softmax")) {
		for (int64_t i = 0; i < n; i++)
			out[i] = log(fmax((double)x[i], 1e-30));
		return;
	}
	double m = -INFINITY, sum = 0;
	for (int64_t i = 0; i < n; i++)
		m = fmax(m, (double)x[i]);
	if (!strcmp(op, "LogSoftmax"))
		m = 0;
	for (int64_t i = 0; i < n && strcmp(op, "LogSoftmax"); i++)
		sum += exp((double)x[i] - m);
	double lse = strcmp(op, "LogSoftmax") ? m + log(sum) : 0;
	for (int64_t i = 0; i < n; i++)
		out[i] = (double)x[i] - lse;
}

/*
 * Sum over the batch's samples of the loss of output y against reference r
 * (same shape, float32): KL(p_r || p_y) per row of the last axis, or the
 * mean squared error per element of each sample. `scratch` holds 2 x the
 * last axis.
 */
static double batch_loss(const struct qt_tensor *y, const struct qt_tensor *r, int kl, const char *op, int nb,
			 double *scratch)
{
	const float *a = y->data, *b = r->data;
	int64_t numel = qt_tensor_numel(r);
	if (qt_tensor_numel(y) != numel)
		return INFINITY;
	double acc = 0;
	if (kl) {
		int64_t C = r->dims[r->rank - 1];
		double *lp = scratch, *lq = scratch + C;
		for (int64_t row = 0; row < numel / C; row++) {
			log_probs(b + row * C, C, op, lp);
			log_probs(a + row * C, C, op, lq);
			double k = 0;
			for (int64_t i = 0; i < C; i++)
				k += exp(lp[i]) * (lp[i] - lq[i]);
			acc += fmax(k, 0.0);
		}
		return acc;
	}
	for (int64_t i = 0; i < numel; i++) {
		double d = (double)a[i] - (double)b[i];
		acc += d * d;
	}
	return acc * nb / (double)(numel > 0 ? numel : 1);
}

/* ---- The measurement ---- */

struct measure {
	const char *model;
	struct qt_graph *g; /* prepared FP32 graph */
	int L, S;
	int *nodes;         /* [L] node of each layer */
	int **front;        /* [L] values live at the layer's node, then -1 */
	int *n_front;
	struct qt_rt *ref, *seg;
	int kl;
	const char **out_op; /* [n_outputs] producer op of each graph output */
	int probe;           /* the measured layer's output value, -1 between runs */
	struct qt_sqnr_acc *acc; /* [L][S]: each layer's output against FP32's */
	struct qt_sqnr_acc *cur; /* the entry of the run in progress */
	double *scratch;
	struct qt_tensor *ref_out, *seg_out; /* [n_outputs] */
};

/* Values that nodes from `first` on read, or the graph outputs, that the
 * graph inputs or nodes before `first` made. */
static enum qt_status frontier(const struct qt_graph *g, int first, int **vals_out, int *n_out)
{
	int *vals = malloc(((size_t)g->n_values + 1) * sizeof *vals), n = 0;
	char *seen = calloc((size_t)g->n_values + 1, 1);
	if (!vals || !seen) {
		free(vals);
		free(seen);
		return qt_error(QT_E_NOMEM, "out of memory");
	}
	for (int ni = first; ni <= g->n_nodes; ni++) {
		const int *in = ni < g->n_nodes ? g->nodes[ni].inputs : g->outputs;
		int cnt = ni < g->n_nodes ? g->nodes[ni].n_inputs : g->n_outputs;
		for (int k = 0; k < cnt; k++) {
			int v = in[k];
			if (v < 0 || seen[v] || g->values[v].init || g->values[v].producer >= first)
				continue;
			seen[v] = 1;
			vals[n++] = v;
		}
	}
	free(seen);
	*vals_out = vals;
	*n_out = n;
	return QT_OK;
}

/* The segment runs' observer: the fused activations as in the reference
 * run, then the measured layer's output compared with the reference's. */
static enum qt_status seg_observer(void *user, int value, struct qt_tensor *t)
{
	struct measure *m = user;
	enum qt_status st = qt_fused_act_observer(m->g, value, t);
	if (st || value != m->probe || t->dtype != QT_DTYPE_F32)
		return st;
	const struct qt_tensor *r = qt_rt_value(m->ref, value);
	if (r && r->dtype == QT_DTYPE_F32 && qt_tensor_numel(r) == qt_tensor_numel(t))
		qt_sqnr_add(m->cur, t->data, r->data, qt_tensor_numel(t));
	return QT_OK;
}

/* Round the float activation t to the grid of layer sl's input. */
static void round_to_grid(const struct sim_layer *sl, struct qt_tensor *t)
{
	if (sl->a_scale <= 0 || t->dtype != QT_DTYPE_F32)
		return;
	float *d = t->data;
	int64_t n = qt_tensor_numel(t);
	for (int64_t i = 0; i < n; i++)
		d[i] = sl->a_scale * (float)(qt_quantize_one(d[i], sl->a_scale, sl->a_zp, sl->a_qmin, sl->a_qmax) - sl->a_zp);
}

/* Loss of the model with layer l simulated as sl, from the reference values
 * of the current batch (nb samples). */
static enum qt_status run_layer(struct measure *m, int l, const struct sim_layer *sl, int nb, double *loss_out)
{
	struct qt_graph *g = m->g;
	const struct qt_node *nd = &g->nodes[m->nodes[l]];
	int n = m->n_front[l];
	enum qt_status st = QT_OK;
	struct qt_tensor *ts = calloc((size_t)n + 1, sizeof *ts);
	if (!ts)
		return qt_error(QT_E_NOMEM, "out of memory");
	for (int i = 0; i < n && !st; i++) {
		const struct qt_tensor *t = qt_rt_value(m->ref, m->front[l][i]);
		st = t ? qt_tensor_copy(&ts[i], t) : qt_error(QT_E_INVALID_ARG, "value %d was not kept", m->front[l][i]);
		if (!st && m->front[l][i] == nd->inputs[0])
			round_to_grid(sl, &ts[i]);
	}
	struct qt_value *wv = &g->values[nd->inputs[1]];
	struct qt_value *bv = nd->n_inputs > 2 && nd->inputs[2] >= 0 && sl->b.data ? &g->values[nd->inputs[2]] : NULL;
	struct qt_tensor *w0 = wv->init, *b0 = bv ? bv->init : NULL;
	/* The runtime views constants when a run begins: swap for this run only. */
	wv->init = (struct qt_tensor *)&sl->w;
	if (bv)
		bv->init = (struct qt_tensor *)&sl->b;
	m->probe = nd->outputs[0];
	if (!st)
		st = qt_rt_begin_at(m->seg, m->nodes[l], m->front[l], ts, n);
	if (!st)
		st = qt_rt_run_nodes(m->seg, m->nodes[l], g->n_nodes);
	m->probe = -1;
	wv->init = w0;
	if (bv)
		bv->init = b0;
	for (int i = 0; i < n; i++)
		qt_tensor_free(&ts[i]);
	free(ts);
	double loss = 0;
	for (int k = 0; k < g->n_outputs && !st; k++) {
		qt_tensor_free(&m->seg_out[k]);
		if ((st = qt_rt_take_value(m->seg, g->outputs[k], &m->seg_out[k])) == QT_OK)
			loss += batch_loss(&m->seg_out[k], &m->ref_out[k], m->kl, m->out_op[k], nb, m->scratch);
	}
	*loss_out = loss;
	return st;
}

/* Multiply-accumulates per sample of layer node nd, from its reference
 * input and output of a batch of nb. */
static int64_t layer_macs(const struct measure *m, const struct qt_node *nd, int nb)
{
	const struct qt_tensor *w = m->g->values[nd->inputs[1]].init;
	const struct qt_tensor *x = qt_rt_value(m->ref, nd->inputs[0]), *y = qt_rt_value(m->ref, nd->outputs[0]);
	if (!w || !x || !y || nb < 1 || w->rank < 1)
		return 0;
	int64_t per_w = qt_tensor_numel(w);
	if (!strcmp(nd->op_type, "ConvTranspose")) /* every input element meets a [C_out/g, kH, kW] slice */
		return qt_tensor_numel(x) / nb * (per_w / (w->dims[0] > 0 ? w->dims[0] : 1));
	int64_t C = w->dims[qt_weight_axis(nd)];
	return qt_tensor_numel(y) / nb * (per_w / (C > 0 ? C : 1));
}

/* Layers of the plan that the quantizer gives integer weights (per the first
 * quantized setting), and their names, ops and weights. */
static enum qt_status pick_layers(struct measure *m, const struct qt_plan *plan, const int *quantized,
				  struct qt_sens *out)
{
	int L = 0;
	for (int i = 0; i < plan->n; i++)
		L += quantized[i];
	if (L == 0)
		return qt_error(QT_E_INVALID_ARG, "%s: no layer gets integer weights", m->model);
	enum qt_status st = qt_sens_alloc(out, L, m->S);
	if (st)
		return st;
	m->L = L;
	for (int i = 0, l = 0; i < plan->n; i++) {
		if (!quantized[i])
			continue;
		const struct qt_node *nd = &m->g->nodes[plan->layers[i].node];
		m->nodes[l] = plan->layers[i].node;
		out->names[l] = strdup(nd->name[0] ? nd->name : m->g->values[nd->outputs[0]].name);
		out->ops[l] = strdup(nd->op_type);
		out->params[l] = qt_tensor_numel(m->g->values[nd->inputs[1]].init);
		if (!out->names[l] || !out->ops[l])
			return qt_error(QT_E_NOMEM, "out of memory");
		if ((st = frontier(m->g, m->nodes[l], &m->front[l], &m->n_front[l])) != QT_OK)
			return st;
		l++;
	}
	return QT_OK;
}

/* KL when every output is [N, classes >= 2], else MSE. */
static int outputs_are_classes(const struct qt_graph *g)
{
	for (int k = 0; k < g->n_outputs; k++) {
		const struct qt_value *v = &g->values[g->outputs[k]];
		if (v->rank != 2 || v->dims[1] < 2)
			return 0;
	}
	return g->n_outputs > 0;
}

static void measure_free(struct measure *m)
{
	for (int l = 0; m->front && l < m->L; l++)
		free(m->front[l]);
	free(m->front);
	free(m->n_front);
	free(m->nodes);
	free(m->out_op);
	free(m->scratch);
	free(m->acc);
	for (int k = 0; m->g && k < m->g->n_outputs; k++) {
		if (m->ref_out)
			qt_tensor_free(&m->ref_out[k]);
		if (m->seg_out)
			qt_tensor_free(&m->seg_out[k]);
	}
	free(m->ref_out);
	free(m->seg_out);
	qt_rt_free(m->ref);
	qt_rt_free(m->seg);
	qt_graph_free(m->g);
}

/* The next batch of the data through the FP32 reference (every value kept):
 * *nb_out samples, 0 at the end. The first batch also gives each layer's MACs. */
static enum qt_status ref_next(struct measure *m, const struct qt_sens_opts *o, int batch, int first,
			       struct qt_tensor *x, struct qt_sens *out, int *nb_out)
{
	enum qt_status st;
	*nb_out = 0;
	if ((st = qt_dataset_next(o->data, batch, x, NULL, nb_out)) != QT_OK || *nb_out == 0)
		return st;
	for (int k = 0; k < m->g->n_outputs; k++)
		qt_tensor_free(&m->ref_out[k]);
	if ((st = qt_rt_run(m->ref, x, m->ref_out)) != QT_OK)
		return st;
	for (int l = 0; first && l < m->L; l++)
		out->macs[l] = layer_macs(m, &m->g->nodes[m->nodes[l]], *nb_out);
	return QT_OK;
}

/* Cost of every layer at every setting (sims[s][l]): per batch one FP32
 * reference pass, then each (layer, setting) from its layer on; the mean of
 * the batch losses over the data. */
static enum qt_status measure_all(struct measure *m, const struct qt_sens_opts *o, struct sim_layer *const *sims,
				  int batch, struct qt_sens *out)
{
	struct qt_tensor x = {0};
	enum qt_status st = QT_OK;
	int64_t done = 0, step = 0, steps = (qt_dataset_count(o->data) + batch - 1) / batch;
	qt_dataset_reset(o->data);
	for (;;) {
		int nb = 0;
		if ((st = ref_next(m, o, batch, done == 0, &x, out, &nb)) != QT_OK || nb == 0)
			break;
		for (int l = 0; l < m->L && !st; l++) {
			for (int s = 0; s < m->S && !st; s++) {
				double loss = 0;
				if (!sims[s][l].w.data)
					continue; /* float: the FP32 layer, no loss */
				m->cur = &m->acc[(size_t)l * m->S + s];
				if ((st = run_layer(m, l, &sims[s][l], nb, &loss)) == QT_OK)
					out->cost[(size_t)l * m->S + s] += loss;
			}
		}
		if (st)
			break;
		done += nb;
		if (o->progress)
			o->progress(o->progress_user, "", ++step, steps);
	}
	qt_tensor_free(&x);
	for (size_t i = 0; i < (size_t)m->L * m->S && done > 0; i++) {
		out->cost[i] /= (double)done;
		if (m->acc[i].sig > 0 || m->acc[i].noise > 0)
			out->sqnr[i] = qt_sqnr_db(&m->acc[i]);
	}
	out->samples = done;
	return st;
}

/*
 * The cheap proxy (o->proxy): HAWQ-V3's Hessian-trace-weighted weight
 * perturbation, with the layer-wise Hessian the data engine uses (H =
 * E[x x^T] of the layer's FP32 input) in place of the loss's, which qtool
 * does not compute: the layer's output error tr(H) / K * |W_s - W|_F^2,
 * plus, when the setting rounds the layer's input to a grid of step d, that
 * rounding noise through the FP32 weights, d^2 / 12 * |W|_F^2; divided by
 * the output's energy under the same isotropic H, tr(H) / K * |W|_F^2, so
 * the cost is the layer's noise-to-signal ratio. (Undivided, the layer-wise
 * Hessian ranks layers against the measurement on every bundled model:
 * big late layers have big output errors that matter little.) tr(H) / K is
 * the mean square of the layer's input (for a Conv, of the input tensor:
 * padding ignored). One FP32 pass over the data instead of a rerun per
 * (layer, setting). Sums in double. scripts/results_proxy.sh measures how
 * well it ranks.
 */
static enum qt_status proxy_all(struct measure *m, const struct qt_sens_opts *o, struct sim_layer *const *sims,
				int batch, struct qt_sens *out)
{
	struct qt_graph *g = m->g;
	struct qt_tensor x = {0};
	enum qt_status st = QT_OK;
	double *sq = calloc((size_t)m->L + 1, sizeof *sq);
	int64_t *cnt = calloc((size_t)m->L + 1, sizeof *cnt), done = 0;
	if (!sq || !cnt)
		st = qt_error(QT_E_NOMEM, "out of memory");
	qt_dataset_reset(o->data);
	while (!st) {
		int nb = 0;
		if ((st = ref_next(m, o, batch, done == 0, &x, out, &nb)) != QT_OK || nb == 0)
			break;
		for (int l = 0; l < m->L; l++) {
			const struct qt_node *nd = &g->nodes[m->nodes[l]];
			const struct qt_tensor *in = qt_rt_value(m->ref, nd->inputs[0]);
			if (!in || in->dtype != QT_DTYPE_F32) {
				st = qt_error(QT_E_UNSUPPORTED, "%s: the input of layer \"%s\" is not float32", m->model,
					      out->names[l]);
				break;
			}
			const float *d = in->data;
			int64_t n = qt_tensor_numel(in);
			for (int64_t i = 0; i < n; i++)
				sq[l] += (double)d[i] * d[i];
			cnt[l] += n;
		}
		done += nb;
	}
	qt_tensor_free(&x);
	for (int l = 0; !st && l < m->L; l++) {
		const struct qt_tensor *w = g->values[g->nodes[m->nodes[l]].inputs[1]].init;
		const float *wf = w->data;
		int64_t n = qt_tensor_numel(w);
		double ms = cnt[l] > 0 ? sq[l] / (double)cnt[l] : 0, wn = 0;
		for (int64_t i = 0; i < n; i++)
			wn += (double)wf[i] * wf[i];
		for (int s = 0; s < m->S; s++) {
			const struct sim_layer *sl = &sims[s][l];
			if (!sl->w.data)
				continue; /* float: no perturbation */
			if (qt_tensor_numel(&sl->w) != n) {
				st = qt_error(QT_E_INVALID_ARG, "%s: layer \"%s\": simulated weight of another size", m->model,
					      out->names[l]);
				break;
			}
			const float *q = sl->w.data;
			double dw = 0;
			for (int64_t i = 0; i < n; i++)
				dw += ((double)q[i] - wf[i]) * ((double)q[i] - wf[i]);
			double da = sl->a_scale > 0 ? (double)sl->a_scale * sl->a_scale / 12.0 * wn : 0;
			double sig = ms * wn; /* the output's energy under the same isotropic H */
			out->cost[(size_t)l * m->S + s] = sig > 0 ? (ms * dw + da) / sig : 0;
		}
	}
	out->samples = done;
	free(sq);
	free(cnt);
	return st;
}

enum qt_status qt_sens_measure(const char *model, const struct qt_calib_table *calib, const struct qt_sens_opts *o,
			       struct qt_sens *out)
{
	struct measure m = {.model = model, .S = o->n_settings, .probe = -1};
	struct qt_plan plan = {0};
	struct sim_layer **sims = NULL; /* [setting][plan layer], then [setting][measured layer] */
	int *quantized = NULL, *q_s = NULL;
	int64_t *bytes = NULL, *ns = NULL;
	enum qt_status st;
	memset(out, 0, sizeof *out);
	if (o->n_settings < 1 || !o->data || !o->quant)
		return qt_error(QT_E_INVALID_ARG, "sensitivity: settings, data and quantize options are required");
	int first_q = -1;
	for (int s = 0; s < o->n_settings && first_q < 0; s++)
		if (o->settings[s].wbits != FLOAT_BITS)
			first_q = s;
	if (first_q < 0)
		return qt_error(QT_E_INVALID_ARG, "sensitivity: the candidates need one quantized setting");
	if ((st = load_prepared(model, o->quant, &m.g)) != QT_OK || (st = qt_plan_build(m.g, o->quant, &plan)) != QT_OK)
		goto done;
	struct qt_graph *g = m.g;
	int batch = o->batch > 0 ? o->batch : 32;
	if (g->n_inputs != 1)
		st = qt_error(QT_E_UNSUPPORTED, "%s: sensitivity runs models with one input, not %d", model, g->n_inputs);
	else if (g->values[g->inputs[0]].rank >= 1 && g->values[g->inputs[0]].dims[0] > 0)
		batch = (int)g->values[g->inputs[0]].dims[0];
	size_t P = (size_t)plan.n + 1;
	m.nodes = calloc(P, sizeof *m.nodes);
	m.front = calloc(P, sizeof *m.front);
	m.n_front = calloc(P, sizeof *m.n_front);
	m.out_op = calloc((size_t)g->n_outputs + 1, sizeof *m.out_op);
	m.ref_out = calloc((size_t)g->n_outputs + 1, sizeof *m.ref_out);
	m.seg_out = calloc((size_t)g->n_outputs + 1, sizeof *m.seg_out);
	quantized = calloc(P, sizeof *quantized);
	q_s = calloc(P, sizeof *q_s);
	sims = calloc((size_t)m.S + 1, sizeof *sims);
	bytes = calloc(P * (size_t)m.S, sizeof *bytes);
	ns = calloc(P * (size_t)m.S, sizeof *ns);
	int64_t max_last = 2;
	for (int k = 0; k < g->n_outputs; k++) {
		const struct qt_value *v = &g->values[g->outputs[k]];
		m.out_op[k] = v->producer >= 0 ? g->nodes[v->producer].op_type : "";
		if (v->rank >= 1 && v->dims[v->rank - 1] > max_last)
			max_last = v->dims[v->rank - 1];
	}
	m.scratch = malloc((size_t)max_last * 2 * sizeof *m.scratch);
	m.kl = outputs_are_classes(g);
	if (!st && (!m.nodes || !m.front || !m.n_front || !m.out_op || !m.ref_out || !m.seg_out || !quantized || !q_s ||
		    !sims || !bytes || !ns || !m.scratch))
		st = qt_error(QT_E_NOMEM, "out of memory");
	int *plan_nodes = m.nodes; /* first the plan's nodes, then the measured layers' */
	for (int i = 0; !st && i < plan.n; i++)
		plan_nodes[i] = plan.layers[i].node;
	/* Every setting quantizes the whole model once; the layers measured are
	 * those that every quantized setting quantizes (an integer setting
	 * leaves out layers no integer kernel runs, which a format decodes). */
	for (int i = 0; i < plan.n; i++)
		quantized[i] = 1;
	for (int s = 0; !st && s < m.S; s++) {
		if (!(sims[s] = calloc(P, sizeof *sims[s]))) {
			st = qt_error(QT_E_NOMEM, "out of memory");
			break;
		}
		if (o->settings[s].wbits == FLOAT_BITS)
			continue; /* measured on the FP32 weights: no simulated layer */
		st = sim_setting(model, calib, o, &o->settings[s], plan_nodes, plan.n, g->n_nodes, sims[s],
				 bytes + (size_t)s * P, ns + (size_t)s * P, q_s);
		for (int i = 0; i < plan.n; i++)
			quantized[i] &= q_s[i];
	}
	if (!st)
		st = pick_layers(&m, &plan, quantized, out);
	if (!st) {
		out->gran = o->quant->gran;
		out->group_size = o->quant->group_size;
		out->wfull = o->quant->wfull;
		out->methods = o->quant->methods & ((o->quant->data ? ~0u : ~QT_METHODS_DATA));
		memcpy(out->settings, o->settings, (size_t)m.S * sizeof *out->settings);
		snprintf(out->loss, sizeof out->loss, "%s", o->proxy ? "hessian-proxy" : m.kl ? "kl" : "mse");
		qt_sha256_hex(g->sha256, out->model_sha256);
	}
	if (!st && (st = qt_rt_new(g, &m.ref)) == QT_OK && (st = qt_rt_new(g, &m.seg)) == QT_OK) {
		qt_rt_keep_all(m.ref, 1);
		qt_rt_set_observer(m.ref, qt_fused_act_observer, g);
		qt_rt_set_observer(m.seg, seg_observer, &m);
	}
	/* Compact each setting's simulated layers to the measured ones (l <= i). */
	for (int s = 0; !st && s < m.S; s++)
		for (int i = 0, l = 0; i < plan.n; i++) {
			if (!quantized[i])
				continue;
			size_t at = (size_t)l * m.S + s;
			if (o->settings[s].wbits == FLOAT_BITS) {
				out->bytes[at] = out->params[l] * 4;
			} else {
				out->bytes[at] = bytes[(size_t)s * P + i];
				out->ns[at] = ns[(size_t)s * P + i];
				if (l != i) {
					sims[s][l] = sims[s][i];
					memset(&sims[s][i], 0, sizeof sims[s][i]);
				}
			}
			l++;
		}
	/* The runs are small products: a second OpenBLAS thread mostly spins
	 * (a third of the CPU time went to the kernel) and results are the same
	 * with one. The quantize stage above keeps its own setting. */
	int threads = openblas_get_num_threads();
	openblas_set_num_threads(1);
	if (!st && !(m.acc = calloc((size_t)m.L * m.S + 1, sizeof *m.acc)))
		st = qt_error(QT_E_NOMEM, "out of memory");
	if (!st)
		st = o->proxy ? proxy_all(&m, o, sims, batch, out) : measure_all(&m, o, sims, batch, out);
	openblas_set_num_threads(threads);
done:
	for (int s = 0; sims && s < m.S; s++)
		sim_free(sims[s], plan.n);
	free(sims);
	free(bytes);
	free(ns);
	free(quantized);
	free(q_s);
	qt_plan_free(&plan);
	measure_free(&m);
	if (st)
		qt_sens_free(out);
	return st;
}
