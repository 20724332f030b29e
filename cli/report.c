/*
 * The per-layer report: eval --per-layer (a .qmod's layers against FP32 in
 * the float simulation) and analyze --html (cli/report_html.c draws it).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qtool/qmod.h"
#include "qtool/quant.h"
#include "report.h"

static const char *scheme_name(enum qt_qscheme s)
{
	return s == QT_QSCHEME_TENSOR ? "tensor" : s == QT_QSCHEME_CHANNEL ? "channel" : s == QT_QSCHEME_GROUP ? "group" : "-";
}

int cli_qmod_layer(const struct qt_graph *g, int i, struct cli_qlayer *out)
{
	const struct qt_node *n = &g->nodes[i];
	/* Integer layers, and decoded ones (weights stored quantized, run in FP32). */
	const struct qt_value *w = qt_is_weighted_op(n) && n->n_inputs > 1 && n->inputs[1] >= 0 ? &g->values[n->inputs[1]]
												     : NULL;
	if (!n->rq && !(w && w->init && w->q))
		return 0;
	/* The plan's activation bits: those of the input this layer reads
	 * (32 when it reads float, as a decoded layer may). */
	const struct qt_value *xin = &g->values[n->inputs[0]];
	int64_t C = w->q->axis < w->init->rank ? w->init->dims[w->q->axis] : 1;
	memset(out, 0, sizeof *out);
	out->name = n->name[0] ? n->name : g->values[n->outputs[0]].name;
	out->op = n->op_type;
	out->format = w->q->fmt == QT_FMT_INT ? "int" : qt_numfmt_name(w->q->fmt);
	out->granularity = scheme_name(w->q->scheme);
	out->wbits = qt_dtype_bits(w->init->dtype);
	out->abits = xin->q ? qt_dtype_bits(xin->q->qtype) : 32;
	out->params = qt_tensor_numel(w->init);
	out->bytes = (int64_t)w->init->nbytes + qt_qmod_qparams_bytes(w->q, C);
	out->decoded = !n->rq;
	return 1;
}

const char *cli_qlayer_setting(const struct cli_qlayer *l, char *buf, size_t cap)
{
	if (!strcmp(l->format, "int"))
		snprintf(buf, cap, "w%da%d", l->wbits, l->abits);
	else
		snprintf(buf, cap, "%s/a%d", l->format, l->abits);
	return buf;
}

/* The sensitivity file's cost for each row at the row's setting. */
static int attach_sens(const char *cmd, const char *sens_path, const char *fp32_sha, struct cli_per_layer *pl)
{
	struct qt_sens s;
	enum qt_status st = qt_sens_read(sens_path, &s);
	if (st)
		return cli_status_error(cmd, st);
	int rc = 0;
	if (strcmp(s.model_sha256, fp32_sha))
		rc = cli_usage_error(cmd, "%s was measured on another model (sha256 %.12s..., the reference is %.12s...)",
				     sens_path, s.model_sha256, fp32_sha);
	for (int r = 0; !rc && r < pl->n; r++) {
		struct cli_layer_row *row = &pl->rows[r];
		for (int l = 0; l < s.n_layers; l++) {
			if (strcmp(s.names[l], row->q.name))
				continue;
			for (int k = 0; k < s.n_settings; k++) {
				char b[QT_SETTING_STR_MAX];
				if (!strcmp(qt_bits_setting_str(&s.settings[k], b), row->setting)) {
					row->sens = s.cost[(size_t)l * s.n_settings + k];
					pl->sens_total += row->sens;
				}
			}
		}
	}
	snprintf(pl->loss, sizeof pl->loss, "%s", s.loss);
	qt_sens_free(&s);
	return rc;
}

int cli_per_layer_open(const char *cmd, const char *qmod_path, const char *fp32_path, const char *sens_path,
		       struct cli_per_layer *pl)
{
	enum qt_status st;
	memset(pl, 0, sizeof *pl);
	if (!fp32_path)
		return cli_usage_error(cmd, "--per-layer needs --reference FP32.onnx, the model %s was quantized from",
				       qmod_path);
	if ((st = qt_qmod_read(qmod_path, &pl->stored)) != QT_OK)
		return cli_usage_error(cmd, "--per-layer compares the layers of a .qmod: %s", qt_error_msg());
	if ((st = qt_model_open_sim(qmod_path, &pl->sim)) != QT_OK ||
	    (st = qt_model_open_prepared(fp32_path, &pl->fp32)) != QT_OK || (st = qt_model_keep_values(pl->sim)) != QT_OK ||
	    (st = qt_model_keep_values(pl->fp32)) != QT_OK)
		return cli_status_error(cmd, st);
	const struct qt_graph *g = pl->stored, *gf = qt_model_graph(pl->fp32);
	const char *sha = qt_model_sha256_hex(pl->fp32);
	if (g->src_sha256_hex && g->src_sha256_hex[0] && strcmp(g->src_sha256_hex, sha))
		return cli_usage_error(cmd, "%s was quantized from another model (sha256 %.12s...), not %s (%.12s...)",
				       qmod_path, g->src_sha256_hex, fp32_path, sha);
	if (!(pl->rows = calloc((size_t)g->n_nodes + 1, sizeof *pl->rows)))
		return cli_status_error(cmd, qt_error(QT_E_NOMEM, "out of memory"));
	for (int i = 0; i < g->n_nodes; i++) {
		struct cli_layer_row *row = &pl->rows[pl->n];
		if (!cli_qmod_layer(g, i, &row->q))
			continue;
		const char *out = g->values[g->nodes[i].outputs[0]].name;
		cli_qlayer_setting(&row->q, row->setting, sizeof row->setting);
		row->v_sim = g->nodes[i].outputs[0];
		row->v_fp32 = qt_graph_find_value(gf, out);
		row->sens = NAN;
		if (row->v_fp32 < 0)
			return cli_usage_error(cmd, "layer \"%s\": its output \"%s\" is not a value of %s as quantize prepares it",
					       row->q.name, out, fp32_path);
		pl->n++;
	}
	if (pl->n == 0)
		return cli_usage_error(cmd, "%s has no quantized layer to compare", qmod_path);
	return sens_path ? attach_sens(cmd, sens_path, sha, pl) : 0;
}

/* Run m on x, dropping its outputs (the values stay kept). */
static enum qt_status run_kept(struct qt_model *m, const struct qt_tensor *x)
{
	int n = qt_model_graph(m)->n_outputs;
	struct qt_tensor *outs = calloc((size_t)n + 1, sizeof *outs);
	if (!outs)
		return qt_error(QT_E_NOMEM, "out of memory");
	enum qt_status st = qt_model_run_all(m, x, outs);
	for (int k = 0; k < n; k++)
		qt_tensor_free(&outs[k]);
	free(outs);
	return st;
}

int cli_per_layer_add(const char *cmd, struct cli_per_layer *pl, const struct qt_tensor *x)
{
	enum qt_status st;
	if ((st = run_kept(pl->sim, x)) != QT_OK || (st = run_kept(pl->fp32, x)) != QT_OK)
		return cli_status_error(cmd, st);
	for (int r = 0; r < pl->n; r++) {
		struct cli_layer_row *row = &pl->rows[r];
		const struct qt_tensor *a = qt_model_value(pl->sim, row->v_sim), *b = qt_model_value(pl->fp32, row->v_fp32);
		if (!a || !b || a->dtype != QT_DTYPE_F32 || b->dtype != QT_DTYPE_F32 ||
		    qt_tensor_numel(a) != qt_tensor_numel(b)) {
			char s1[160], s2[160];
			return cli_usage_error(cmd, "layer \"%s\": the simulated output %s and the FP32 output %s differ",
					       row->q.name, a ? qt_shape_str(s1, sizeof s1, a->rank, a->dims) : "(none)",
					       b ? qt_shape_str(s2, sizeof s2, b->rank, b->dims) : "(none)");
		}
		qt_sqnr_add(&row->err, a->data, b->data, qt_tensor_numel(a));
	}
	return 0;
}

/* The row's share of the summed sensitivities, NaN without one. */
static double row_share(const struct cli_per_layer *pl, const struct cli_layer_row *row)
{
	return isfinite(row->sens) && pl->sens_total > 0 ? row->sens / pl->sens_total : NAN;
}

void cli_per_layer_print(const struct cli_per_layer *pl, FILE *f)
{
	fprintf(f, "per layer: output SQNR against FP32 in the float simulation%s%s%s\n",
		pl->loss[0] ? "; sensitivity (" : "", pl->loss, pl->loss[0] ? ") and share from --sens" : "");
	int w = 5; /* the longest name sets the layer column */
	for (int r = 0; r < pl->n; r++)
		w = (int)strlen(pl->rows[r].q.name) > w ? (int)strlen(pl->rows[r].q.name) : w;
	fprintf(f, "  %-*s %-10s %-10s %9s %9s %12s %7s\n", w, "layer", "op", "setting", "bytes", "SQNR dB", "sensitivity",
		"share");
	for (int r = 0; r < pl->n; r++) {
		const struct cli_layer_row *row = &pl->rows[r];
		char q[16], s[24], sh[16];
		double db = qt_sqnr_db(&row->err), share = row_share(pl, row);
		snprintf(q, sizeof q, isfinite(db) ? "%.2f" : db > 0 ? "inf" : "-", db);
		snprintf(s, sizeof s, isfinite(row->sens) ? "%.4g" : "-", row->sens);
		snprintf(sh, sizeof sh, isfinite(share) ? "%.1f%%" : "-", 100 * share);
		fprintf(f, "  %-*s %-10s %-10s %9lld %9s %12s %7s\n", w, row->q.name, row->q.op, row->setting,
			(long long)row->q.bytes, q, s, sh);
	}
}

static void add_num_or_null(cJSON *o, const char *key, double v)
{
	if (isfinite(v))
		cJSON_AddNumberToObject(o, key, v);
	else
		cJSON_AddNullToObject(o, key);
}

cJSON *cli_per_layer_json(const struct cli_per_layer *pl)
{
	cJSON *a = cJSON_CreateArray();
	for (int r = 0; a && r < pl->n; r++) {
		const struct cli_layer_row *row = &pl->rows[r];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", row->q.name);
		cJSON_AddStringToObject(o, "op", row->q.op);
		cJSON_AddStringToObject(o, "setting", row->setting);
		cJSON_AddNumberToObject(o, "weight_bits", row->q.wbits);
		cJSON_AddNumberToObject(o, "act_bits", row->q.abits);
		cJSON_AddStringToObject(o, "format", row->q.format);
		cJSON_AddNumberToObject(o, "params", (double)row->q.params);
		cJSON_AddNumberToObject(o, "bytes", (double)row->q.bytes);
		add_num_or_null(o, "sqnr_db", qt_sqnr_db(&row->err));
		cJSON_AddNumberToObject(o, "signal_sum_squares", row->err.sig);
		cJSON_AddNumberToObject(o, "noise_sum_squares", row->err.noise);
		add_num_or_null(o, "sensitivity", row->sens);
		add_num_or_null(o, "share", row_share(pl, row));
		cJSON_AddItemToArray(a, o);
	}
	return a;
}

void cli_per_layer_free(struct cli_per_layer *pl)
{
	qt_graph_free(pl->stored);
	qt_model_free(pl->sim);
	qt_model_free(pl->fp32);
	free(pl->rows);
	memset(pl, 0, sizeof *pl);
}
