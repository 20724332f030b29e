/*
 * Mixed precision in the CLI: measuring sensitivities (qtool analyze, and
 * quantize without --sens), and turning a budget into per-layer overrides
 * for quantize (--target-size, --avg-wbits, --max-bops).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "mixed.h"
#include "qtool/calib.h"
#include "qtool/dataset.h"

const char cli_default_candidates[] = "w8a8,w4a8,w3a8,w2a8,w4a4";

int cli_open_samples(const char *cmd, const char *model, const char *spec, long limit, struct qt_dataset **ds)
{
	struct qt_graph *g = NULL;
	enum qt_status st = qt_graph_load_onnx(model, &g);
	if (st)
		return cli_status_error(cmd, st);
	int rc = 0;
	const struct qt_value *in = g->n_inputs == 1 ? &g->values[g->inputs[0]] : NULL;
	if (!in) {
		rc = cli_usage_error(cmd, "%s: the model has %d inputs; --data feeds one", model, g->n_inputs);
	} else {
		struct qt_dataset_opts d = {.limit = limit, .input_name = in->name};
		d.input_rank = in->rank > 0 ? in->rank - 1 : 0;
		d.input_dims = in->rank > 0 ? in->dims + 1 : NULL;
		if ((st = qt_dataset_open(spec, &d, ds)) != QT_OK)
			rc = cli_status_error(cmd, st);
		else if (in->rank >= 1 && in->dims[0] > 0 && qt_dataset_count(*ds) % in->dims[0])
			rc = cli_usage_error(cmd, "%s: the fixed batch size %lld does not divide the %lld samples; choose --limit",
					     model, (long long)in->dims[0], (long long)qt_dataset_count(*ds));
	}
	qt_graph_free(g);
	return rc;
}

struct progress {
	const char *cmd;
	char last[16];
	double t0;
};

static double seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A bar on a terminal; one plain line per finished setting everywhere. */
static void sens_progress(void *user, const char *setting, int64_t done, int64_t total)
{
	struct progress *p = user;
	char what[64];
	snprintf(what, sizeof what, "%s: sensitivity %s", p->cmd, setting);
	cli_progress(what, (long)done, (long)total);
	if (strcmp(p->last, setting)) {
		snprintf(p->last, sizeof p->last, "%s", setting);
		p->t0 = seconds();
	}
}

int cli_sens_measure(const char *cmd, const char *model, const struct qt_calib_table *calib,
		     const struct qt_quant_opts *qo, const struct qt_bits_setting *settings, int n_settings,
		     const char *data, long limit, int batch, struct qt_sens *out)
{
	struct qt_dataset *ds = NULL;
	int rc = cli_open_samples(cmd, model, data, limit, &ds);
	if (rc) {
		qt_dataset_close(ds);
		return rc;
	}
	struct progress p = {.cmd = cmd, .t0 = seconds()};
	double t0 = seconds();
	struct qt_sens_opts so = {.quant = qo, .settings = settings, .n_settings = n_settings, .data = ds,
				  .batch = batch, .progress = sens_progress, .progress_user = &p};
	enum qt_status st = qt_sens_measure(model, calib, &so, out);
	cli_progress_end();
	if (st) {
		qt_dataset_close(ds);
		return cli_status_error(cmd, st);
	}
	snprintf(out->data, sizeof out->data, "%s", data);
	fprintf(stderr, "%s: measured %d layers x %d settings on %lld samples of %s in %.1f s\n", cmd, out->n_layers,
		out->n_settings, (long long)out->samples, data, seconds() - t0);
	qt_dataset_close(ds);
	return 0;
}

/* The layer name as an fnmatch pattern that matches only itself. */
static char *escape_glob(const char *name, const char *suffix)
{
	size_t n = strlen(name), k = 0;
	char *s = malloc(2 * n + strlen(suffix) + 1);
	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (strchr("*?[]\\", name[i]))
			s[k++] = '\\';
		s[k++] = name[i];
	}
	strcpy(s + k, suffix);
	return s;
}

/* Check that the sensitivities fit this quantization: the same model, grid,
 * and every layer the plan quantizes (and only those). */
static int sens_fits(const char *model, const char *sens_path, const struct qt_sens *s,
		     const struct qt_quant_opts *qo)
{
	struct qt_graph *g = NULL;
	struct qt_plan plan = {0};
	enum qt_status st = qt_graph_load_onnx(model, &g);
	char hex[65];
	int rc = 0;
	if (!st && (st = qt_quant_prepare(g, qo->input_shapes)) == QT_OK)
		st = qt_plan_build(g, qo, &plan);
	if (st) {
		qt_graph_free(g);
		return cli_status_error("quantize", st);
	}
	static const char *const gran[] = {"channel", "tensor", "group"};
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", g->sha256[i]);
	if (strcmp(hex, s->model_sha256))
		rc = cli_usage_error("quantize", "%s was measured on another model (sha256 %.12s..., %s is %.12s...)",
				     sens_path, s->model_sha256, model, hex);
	else if (s->gran != qo->gran || (qo->gran == QT_GRAN_GROUP && s->group_size != qo->group_size) ||
		 s->wfull != qo->wfull)
		rc = cli_usage_error("quantize",
				     "%s was measured with %s weights%s (group %d); this quantization uses %s%s (group %d): "
				     "run 'qtool analyze' with the same options",
				     sens_path, gran[s->gran], s->wfull ? ", full range" : "", s->group_size, gran[qo->gran],
				     qo->wfull ? ", full range" : "", qo->group_size);
	for (int l = 0; !rc && l < s->n_layers; l++) {
		int found = 0;
		for (int i = 0; i < plan.n && !found; i++) {
			const struct qt_node *n = &g->nodes[plan.layers[i].node];
			const char *name = n->name[0] ? n->name : g->values[n->outputs[0]].name;
			found = !strcmp(name, s->names[l]) && !plan.layers[i].keep_float;
		}
		if (!found)
			rc = cli_usage_error("quantize", "%s: layer \"%s\" is not a layer this quantization plans", sens_path,
					     s->names[l]);
	}
	qt_plan_free(&plan);
	qt_graph_free(g);
	return rc;
}

/* Setting indices of s for the candidate list; -1 entries are reported. */
static int map_candidates(const char *sens_path, const struct qt_sens *s, const struct qt_bits_setting *cand, int nc,
			  int *idx)
{
	for (int c = 0; c < nc; c++) {
		idx[c] = -1;
		for (int k = 0; k < s->n_settings; k++)
			if (s->settings[k].wbits == cand[c].wbits && s->settings[k].abits == cand[c].abits)
				idx[c] = k;
		if (idx[c] < 0) {
			char b[8];
			return cli_usage_error("quantize", "candidate %s is not in %s (run 'qtool analyze --candidates ...')",
					       qt_bits_setting_str(&cand[c], b), sens_path);
		}
	}
	return 0;
}

int cli_mixed_precision(const char *model, const struct qt_calib_table *calib, const struct qt_quant_opts *qo,
			const struct cli_mixed_args *a, FILE *info, struct cli_mixed_plan *out)
{
	struct qt_bits_setting cand[16];
	const char *bad = NULL;
	int nc = qt_bits_settings_parse(a->candidates ? a->candidates : cli_default_candidates, cand, 16, &bad);
	int64_t max_bytes = 0, max_bops = 0;
	double avg = 0;
	memset(out, 0, sizeof *out);
	if (nc < 0)
		return cli_usage_error("quantize", "--candidates: '%s' is not wXaY (X in 8,4,3,2; Y in 8,4) or float, or repeats",
				       bad);
	if (a->target_size && qt_parse_size(a->target_size, &max_bytes))
		return cli_usage_error("quantize", "--target-size '%s' must be bytes, or a size such as 120KB, 1.5MB, 96KiB",
				       a->target_size);
	if (a->avg_wbits) {
		char *end = NULL;
		avg = strtod(a->avg_wbits, &end);
		if (end == a->avg_wbits || *end || !(avg >= 1 && avg <= 32))
			return cli_usage_error("quantize", "--avg-wbits needs a number of bits between 1 and 32, not '%s'",
					       a->avg_wbits);
	}
	if (a->max_bops && (qt_parse_size(a->max_bops, &max_bops)))
		return cli_usage_error("quantize", "--max-bops '%s' must be a positive count (suffixes K, M, G)", a->max_bops);
	if (qo->n_overrides > 0)
		return cli_usage_error("quantize", "--layer cannot be combined with a budget (the integer program sets every "
						   "layer); use --keep-float or --candidates");
	struct qt_sens s;
	int rc;
	if (a->sens) {
		enum qt_status st = qt_sens_read(a->sens, &s);
		if (st)
			return cli_status_error("quantize", st);
		rc = sens_fits(model, a->sens, &s, qo);
	} else if (!a->data) {
		return cli_usage_error("quantize", "a budget needs sensitivities: give --data SPEC to measure them, or "
						   "--sens FILE from 'qtool analyze'");
	} else {
		rc = cli_sens_measure("quantize", model, calib, qo, cand, nc, a->data, a->limit, a->batch, &s);
		if (rc)
			return rc;
	}
	int *idx = malloc(sizeof(int) * 16), *choice = malloc(((size_t)s.n_layers + 1) * sizeof *choice);
	double *cost = malloc(((size_t)s.n_layers * nc + 1) * sizeof *cost);
	int64_t *bytes = malloc(((size_t)s.n_layers * nc + 1) * sizeof *bytes);
	int64_t *bops = malloc(((size_t)s.n_layers * nc + 1) * sizeof *bops);
	int wbits[16];
	if (!rc && (!idx || !choice || !cost || !bytes || !bops))
		rc = cli_status_error("quantize", qt_error(QT_E_NOMEM, "out of memory"));
	if (!rc)
		rc = map_candidates(a->sens ? a->sens : "the sensitivities", &s, cand, nc, idx);
	for (int l = 0; !rc && l < s.n_layers; l++)
		for (int c = 0; c < nc; c++) {
			size_t i = (size_t)l * nc + c, j = (size_t)l * s.n_settings + idx[c];
			cost[i] = s.cost[j];
			bytes[i] = s.bytes[j];
			bops[i] = s.macs[l] * cand[c].wbits * cand[c].abits;
			wbits[c] = cand[c].wbits;
		}
	struct qt_bitalloc p = {.n_layers = s.n_layers, .n_settings = nc, .cost = cost, .bytes = bytes,
				.params = s.params, .wbits = wbits, .bops = bops, .max_bytes = max_bytes,
				.max_avg_wbits = avg, .max_bops = max_bops};
	struct qt_bitalloc_result r;
	enum qt_status st = QT_OK;
	if (!rc && (st = qt_bitalloc_solve(&p, choice, &r)) != QT_OK)
		rc = cli_usage_error("quantize", "%s", qt_error_msg());
	if (!rc && !(out->overrides = calloc((size_t)s.n_layers + 1, sizeof *out->overrides)))
		rc = cli_status_error("quantize", qt_error(QT_E_NOMEM, "out of memory"));
	if (!rc) {
		fprintf(info, "mixed precision: %d layers, candidates %s, loss %s on %lld samples\n", s.n_layers,
			a->candidates ? a->candidates : cli_default_candidates, s.loss, (long long)s.samples);
		for (int l = 0; l < s.n_layers && !rc; l++) {
			char b[8], suffix[16];
			const struct qt_bits_setting *c = &cand[choice[l]];
			snprintf(suffix, sizeof suffix, "=%s", qt_bits_setting_str(c, b));
			if (!(out->overrides[out->n++] = escape_glob(s.names[l], suffix)))
				rc = cli_status_error("quantize", qt_error(QT_E_NOMEM, "out of memory"));
			size_t i = (size_t)l * nc + choice[l];
			fprintf(info, "  %-32s %-14s %-6s %9lld bytes  cost %.6g\n", s.names[l], s.ops[l], b,
				(long long)bytes[i], cost[i]);
		}
		fprintf(info, "mixed precision: %lld weight bytes with scales", (long long)r.bytes);
		if (max_bytes)
			fprintf(info, " (budget %lld)", (long long)max_bytes);
		fprintf(info, ", %.3f average weight bits", r.avg_wbits);
		if (avg > 0)
			fprintf(info, " (budget %g)", avg);
		if (max_bops)
			fprintf(info, ", %lld bit operations (budget %lld)", (long long)r.bops, (long long)max_bops);
		fprintf(info, ", predicted loss %.6g\n", r.objective);
		out->bytes = r.bytes;
		out->avg_wbits = r.avg_wbits;
		out->objective = r.objective;
	}
	free(idx);
	free(choice);
	free(cost);
	free(bytes);
	free(bops);
	qt_sens_free(&s);
	if (rc)
		cli_mixed_plan_free(out);
	return rc;
}

void cli_mixed_plan_free(struct cli_mixed_plan *p)
{
	for (int i = 0; p->overrides && i < p->n; i++)
		free(p->overrides[i]);
	free(p->overrides);
	memset(p, 0, sizeof *p);
}
