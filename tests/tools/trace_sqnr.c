/*
 * trace_sqnr: where does a quantized model's error enter? A developer tool
 * (make trace-sqnr), not part of qtool.
 *
 *   trace_sqnr MODEL.onnx Q.qmod DATA_SPEC [OFFSET [LIMIT]]
 *
 * Prepares MODEL as `qtool quantize` does (import passes, BN folding,
 * fusions), so its values carry the .qmod's names, and runs both on the same
 * samples in one batch: the FP32 graph (with fused Relu/Clip applied) and the
 * .qmod's float simulation (qt_fakequant_prepare; it gives the integer
 * runtime's figures). For every quantized activation it prints, in
 * topological order:
 *   acc    SQNR (dB) of the simulation's value against FP32: the error
 *          accumulated up to here;
 *   local  SQNR of this node alone: its inputs are the FP32 values rounded to
 *          their grids, its output rounded to its own grid; what the node
 *          and its output grid add;
 *   grid   SQNR of the FP32 value rounded to its grid (range and step only);
 *   clip%  share of FP32 elements outside the grid's range;
 *   range  the grid's [lo, hi] and the FP32 value's [min, max].
 * SQNR = 10 log10(sum ref^2 / sum (x - ref)^2) over all elements.
 *
 * Experiments (environment): TRACE_FLOAT_OPS="Sigmoid,Mul" leaves the
 * outputs of those op types unrounded in the simulation (TRACE_FLOAT_VALUES:
 * the values whose names it contains); TRACE_WIDEN=F widens every grid's
 * range F times (only the values named in TRACE_WIDEN_VALUES when set); TRACE_FP32_WEIGHTS=1
 * puts the FP32 weights and biases back (activations rounded only).
 * The last line gives the simulation's output SQNR under them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qtool/dataset.h"
#include "qtool/qmod.h"
#include "qtool/quant.h"
#include "qtool/rt.h"

static double sqnr(const float *ref, const float *x, int64_t n)
{
	double s = 0, e = 0;
	for (int64_t i = 0; i < n; i++) {
		s += (double)ref[i] * ref[i];
		e += ((double)x[i] - ref[i]) * ((double)x[i] - ref[i]);
	}
	return e == 0 ? 999 : 10 * log10(s / e);
}

static const char *float_ops;
static struct qt_graph *fp32_graph;

/* Skip the rounding of values whose producer's op type is in float_ops. */
static enum qt_status exp_observer(void *graph, int value, struct qt_tensor *t)
{
	const struct qt_graph *g = graph;
	int p = g->values[value].producer;
	if (float_ops && p >= 0) {
		const char *op = g->nodes[p].op_type, *s = float_ops;
		size_t n = strlen(op);
		while (s && *s) {
			if (!strncmp(s, op, n) && (s[n] == ',' || !s[n])) {
				/* The .qmod does not keep fused Relu/Clip: apply the FP32 graph's. */
				int gv = qt_graph_find_value(fp32_graph, g->values[value].name);
				return gv >= 0 ? qt_fused_act_observer(fp32_graph, gv, t) : QT_OK;
			}
			s = strchr(s, ',');
			s = s ? s + 1 : NULL;
		}
	}
	const char *fv = getenv("TRACE_FLOAT_VALUES");
	if (fv && strstr(fv, g->values[value].name)) {
		int gv = qt_graph_find_value(fp32_graph, g->values[value].name);
		return gv >= 0 ? qt_fused_act_observer(fp32_graph, gv, t) : QT_OK;
	}
	const char *wf = getenv("TRACE_WIDEN");
	const char *wv = getenv("TRACE_WIDEN_VALUES");
	if (wf && g->values[value].q && (!wv || strstr(wv, g->values[value].name))) {
		/* The same zero point, every scale times the factor: a range that
		 * much wider on both sides (requantized outputs round plainly). */
		struct qt_graph *mg = graph;
		struct qt_qparams *q = mg->values[value].q, save = *q;
		float sc = q->scale[0] * (float)atof(wf);
		q->scale = &sc;
		int p = g->values[value].producer;
		struct qt_requant *rq = p >= 0 ? mg->nodes[p].rq : NULL;
		double *unit = rq ? rq->sim_acc_unit : NULL;
		if (rq)
			rq->sim_acc_unit = NULL;
		enum qt_status st = qt_fakequant_observer(graph, value, t);
		if (rq)
			rq->sim_acc_unit = unit;
		*q = save;
		return st;
	}
	return qt_fakequant_observer(graph, value, t);
}

/* Put g's FP32 weights and biases back into the simulation q (same names). */
static void fp32_weights(struct qt_graph *q, const struct qt_graph *g)
{
	for (int ni = 0; ni < q->n_nodes; ni++) {
		struct qt_node *n = &q->nodes[ni];
		if (!qt_is_weighted_op(n))
			continue;
		if (n->rq)
			n->rq->sim_acc_unit = NULL;
		for (int i = 1; i < n->n_inputs && i < 3; i++) {
			int v = n->inputs[i];
			int gv = v >= 0 ? qt_graph_find_value(g, q->values[v].name) : -1;
			if (gv >= 0 && g->values[gv].init && q->values[v].init)
				q->values[v].init = g->values[gv].init;
		}
	}
}

static int die(const char *what)
{
	fprintf(stderr, "trace_sqnr: %s: %s\n", what, qt_error_msg());
	return 1;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: trace_sqnr MODEL.onnx Q.qmod DATA_SPEC [OFFSET [LIMIT]]\n");
		return 2;
	}
	struct qt_dataset_opts dopt = {0};
	dopt.offset = argc > 4 ? atoll(argv[4]) : 0;
	dopt.limit = argc > 5 ? atoll(argv[5]) : 0;
	struct qt_dataset *ds;
	struct qt_graph *g, *q;
	if (qt_dataset_open(argv[3], &dopt, &ds))
		return die(argv[3]);
	struct qt_tensor x = {0};
	int nread = 0;
	if (qt_dataset_next(ds, (int)qt_dataset_count(ds), &x, NULL, &nread) || !nread)
		return die("read");
	if (qt_graph_load_onnx(argv[1], &g))
		return die(argv[1]);
	struct qt_input_shapes shapes = {0};
	int64_t d1[QT_MAX_RANK];
	memcpy(d1, x.dims, sizeof d1);
	d1[0] = 1;
	if (qt_input_shapes_set(&shapes, g->values[g->inputs[0]].name, x.rank, d1) || qt_quant_prepare(g, &shapes))
		return die("prepare");
	if (qt_qmod_read(argv[2], &q) || qt_fakequant_prepare(q))
		return die(argv[2]);

	struct qt_rt *rf, *rq, *rl;
	if (qt_rt_new(g, &rf) || qt_rt_new(q, &rq) || qt_rt_new(q, &rl))
		return die("runtime");
	qt_rt_keep_all(rf, 1);
	qt_rt_keep_all(rq, 1);
	qt_rt_set_observer(rf, qt_fused_act_observer, g);
	float_ops = getenv("TRACE_FLOAT_OPS");
	fp32_graph = g;
	if (getenv("TRACE_FP32_WEIGHTS"))
		fp32_weights(q, g);
	qt_rt_set_observer(rq, exp_observer, q);
	qt_rt_set_observer(rl, qt_fakequant_observer, q);
	struct qt_tensor outs[16] = {{0}};
	if (qt_rt_run(rf, &x, outs))
		return die("fp32 run");
	for (int i = 0; i < g->n_outputs; i++)
		qt_tensor_free(&outs[i]);
	if (qt_rt_run(rq, &x, outs))
		return die("simulation run");
	const struct qt_tensor *o0 = qt_rt_value(rf, g->outputs[0]);
	double out_db = sqnr(o0->data, outs[0].data, qt_tensor_numel(o0));
	if (getenv("TRACE_PER_SAMPLE") && o0->rank >= 1 && o0->dims[0] > 0) {
		int64_t per = qt_tensor_numel(o0) / o0->dims[0];
		for (int64_t b = 0; b < o0->dims[0]; b++) {
			const float *r = (const float *)o0->data + b * per;
			double e = 0;
			for (int64_t i = 0; i < per; i++)
				e += (double)r[i] * r[i];
			printf("sample %lld: output rms %.3g, SQNR %.1f dB\n", (long long)b, sqrt(e / per),
			       sqnr(r, (const float *)outs[0].data + b * per, per));
		}
	}
	for (int i = 0; i < q->n_outputs; i++)
		qt_tensor_free(&outs[i]);

	printf("%4s %-18s %7s %7s %7s %6s  %-23s %-23s %s\n", "node", "op", "acc", "local", "grid", "clip%",
	       "grid range", "fp32 range", "value");
	for (int ni = -1; ni < q->n_nodes; ni++) {
		static const struct qt_node input_node = {.op_type = "(input)", .n_outputs = 1};
		const struct qt_node *n = ni < 0 ? &input_node : &q->nodes[ni];
		for (int k = 0; k < n->n_outputs; k++) {
			int v = ni < 0 ? q->inputs[0] : n->outputs[k];
			if (v < 0)
				continue;
			const struct qt_value *val = &q->values[v];
			int gv = qt_graph_find_value(g, val->name);
			const struct qt_tensor *tr = gv >= 0 ? qt_rt_value(rf, gv) : NULL;
			const struct qt_tensor *ts = qt_rt_value(rq, v);
			if (!tr || !ts || tr->dtype != QT_DTYPE_F32 || ts->dtype != QT_DTYPE_F32 ||
			    qt_tensor_numel(tr) != qt_tensor_numel(ts))
				continue;
			int64_t ne = qt_tensor_numel(tr);
			const float *r = tr->data;
			double acc = sqnr(r, ts->data, ne);
			/* The FP32 value on its grid. */
			struct qt_tensor c = {0};
			double grid = 999, clip = 0, lo = 0, hi = 0;
			float mn = INFINITY, mx = -INFINITY;
			for (int64_t i = 0; i < ne; i++) {
				mn = fminf(mn, r[i]);
				mx = fmaxf(mx, r[i]);
			}
			if (val->q && !qt_tensor_copy(&c, tr)) {
				qt_fakequant_observer(q, v, &c);
				grid = sqnr(r, c.data, ne);
				lo = val->q->scale[0] * (0 - val->q->zero_point[0]);
				hi = val->q->scale[0] * ((val->q->qtype == QT_DTYPE_U4 ? 15 : 255) - val->q->zero_point[0]);
				for (int64_t i = 0; i < ne; i++)
					clip += r[i] < lo - 0.5 * val->q->scale[0] || r[i] > hi + 0.5 * val->q->scale[0];
				clip = 100 * clip / ne;
			}
			qt_tensor_free(&c);
			/* The node alone on the FP32 inputs, each rounded to its grid. */
			double local = NAN;
			int vals[64], nv = 0;
			struct qt_tensor ins[64];
			memset(ins, 0, sizeof ins);
			int ok = n->n_inputs <= 64;
			for (int i = 0; ok && i < n->n_inputs; i++) {
				int iv = n->inputs[i];
				if (iv < 0 || q->values[iv].init)
					continue;
				int j;
				for (j = 0; j < nv && vals[j] != iv; j++)
					;
				if (j < nv)
					continue;
				int giv = qt_graph_find_value(g, q->values[iv].name);
				const struct qt_tensor *ti = giv >= 0 ? qt_rt_value(rf, giv) : NULL;
				if (!ti || qt_tensor_copy(&ins[nv], ti)) {
					ok = 0;
					break;
				}
				qt_fakequant_observer(q, iv, &ins[nv]);
				vals[nv++] = iv;
			}
			struct qt_tensor y = {0};
			if (ok && ni >= 0 && !qt_rt_begin_at(rl, ni, vals, ins, nv) && !qt_rt_run_nodes(rl, ni, ni + 1) &&
			    !qt_rt_take_value(rl, v, &y) && qt_tensor_numel(&y) == ne && y.dtype == QT_DTYPE_F32)
				local = sqnr(r, y.data, ne);
			qt_tensor_free(&y);
			for (int i = 0; i < nv; i++)
				qt_tensor_free(&ins[i]);
			char gr[64] = "-", fr[64];
			if (val->q)
				snprintf(gr, sizeof gr, "[%.3g,%.3g]", lo, hi);
			snprintf(fr, sizeof fr, "[%.3g,%.3g]", mn, mx);
			printf("%4d %-18.18s %7.1f %7.1f %7.1f %6.2f  %-23s %-23s %s\n", ni, n->op_type, acc, local, grid,
			       clip, gr, fr, val->name);
		}
	}
	printf("output SQNR %.2f dB (float ops: %s; weights: %s)\n", out_db, float_ops ? float_ops : "none",
	       getenv("TRACE_FP32_WEIGHTS") ? "fp32" : "quantized");
	qt_rt_free(rf);
	qt_rt_free(rq);
	qt_rt_free(rl);
	qt_graph_free(g);
	qt_graph_free(q);
	qt_tensor_free(&x);
	qt_dataset_close(ds);
	return 0;
}
