/*
 * Mixed precision in the CLI: measuring sensitivities (qtool analyze, and
 * quantize without --sens), and turning a budget into per-layer overrides
 * for quantize (--target-size, --avg-wbits, --max-bops).
 */
#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "mixed.h"
#include "qtool/calib.h"
#include "qtool/dataset.h"
#include "qtool/model.h"
#include "qtool/qmod.h"

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

static double seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cli_parse_candidates(const char *cmd, const char *list, struct qt_bits_setting *cand, int *n_out)
{
	const char *bad = NULL;
	*n_out = qt_bits_settings_parse(list ? list : cli_default_candidates, cand, CLI_MAX_CANDIDATES, &bad);
	if (*n_out < 0)
		return cli_usage_error(cmd,
				       "--candidates: '%s' is not wXaY (X in 8,4,3,2; Y in 8,4), a weight format (%s; "
				       "FORMAT:a4 for 4-bit activations) or float, or repeats (at most %d)",
				       bad, qt_numfmt_names(), CLI_MAX_CANDIDATES);
	return 0;
}

/* A bar on a terminal (user: the command's name). */
static void sens_progress(void *user, const char *what, int64_t done, int64_t total)
{
	char label[64];
	snprintf(label, sizeof label, "%s: sensitivity%s%s", (const char *)user, what[0] ? " " : "", what);
	cli_progress(label, (long)done, (long)total);
}

/* Per-layer times of the integer runtime (qt_sens_opts.time_nodes): the
 * quantized graph as quantize would write it (serialized and read back, as
 * `qtool eval` runs a .qmod), fed the first batch of the data, fastest of 3
 * runs. Times vary with the machine and its load: they are this machine's. */
struct timer {
	struct qt_dataset *ds;
	int batch;
};

static enum qt_status time_nodes(void *user, const struct qt_graph *g, const int *nodes, int n, int64_t *ns_out)
{
	struct timer *t = user;
	const struct qt_value *in0 = &g->values[g->inputs[0]]; /* a fixed batch dim wins, as in the measurement */
	struct qt_graph *g2 = NULL;
	struct qt_tensor x = {0};
	uint8_t *buf = NULL;
	size_t len = 0;
	int nb = 0;
	enum qt_status st = qt_qmod_serialize(g, &buf, &len);
	if (!st)
		st = qt_qmod_read_mem(buf, len, "the quantized model", &g2);
	if (!st && g2->n_nodes != g->n_nodes)
		st = qt_error(QT_E_INVALID_ARG, "timing: the .qmod has %d nodes, the quantized graph %d", g2->n_nodes,
			      g->n_nodes);
	qt_dataset_reset(t->ds);
	if (!st)
		st = qt_dataset_next(t->ds, in0->rank >= 1 && in0->dims[0] > 0 ? (int)in0->dims[0] : t->batch, &x, NULL, &nb);
	if (!st && nb > 0)
		st = qt_qrt_time_nodes(g2, &x, nb, 3, nodes, n, ns_out);
	/* Layers without quantized weights run in float and are not timed;
	 * a number format's layers (decoded to FP32, no requantization) are. */
	for (int i = 0; !st && i < n; i++) {
		const struct qt_node *nd = &g->nodes[nodes[i]];
		if (nd->n_inputs < 2 || nd->inputs[1] < 0 || !g->values[nd->inputs[1]].q)
			ns_out[i] = -1;
	}
	qt_dataset_reset(t->ds);
	qt_tensor_free(&x);
	qt_graph_free(g2);
	free(buf);
	return st;
}

enum qt_status cli_output_error(const char *path, const char *model, struct qt_dataset *ds, int batch,
				struct qt_sqnr_acc *acc)
{
	struct qt_model *m = NULL, *f = NULL;
	enum qt_status st = qt_model_open(path, &m);
	if (!st)
		st = qt_model_open(model, &f);
	struct qt_tensor x = {0}, y = {0}, r = {0};
	qt_dataset_reset(ds);
	while (!st) {
		int n = 0;
		if ((st = qt_dataset_next(ds, batch, &x, NULL, &n)) != QT_OK || n == 0)
			break;
		if ((st = qt_model_run(f, &x, &r)) != QT_OK || (st = qt_model_run(m, &x, &y)) != QT_OK)
			break;
		if (y.dtype != QT_DTYPE_F32 || r.dtype != QT_DTYPE_F32 || qt_tensor_numel(&y) != qt_tensor_numel(&r)) {
			st = qt_error(QT_E_UNSUPPORTED, "%s: the quantized model's first output is not float32 of this "
					"model's shape", model);
			break;
		}
		qt_sqnr_add(acc, y.data, r.data, qt_tensor_numel(&y));
		qt_tensor_free(&y);
		qt_tensor_free(&r);
	}
	qt_tensor_free(&x);
	qt_tensor_free(&y);
	qt_tensor_free(&r);
	qt_model_free(m);
	qt_model_free(f);
	return st;
}

int cli_sens_measure(const char *cmd, const char *model, const struct qt_calib_table *calib,
		     const struct qt_quant_opts *qo, const struct qt_bits_setting *settings, int n_settings,
		     const char *data, long limit, int batch, int proxy, struct qt_sens *out)
{
	struct qt_dataset *ds = NULL;
	int rc = cli_open_samples(cmd, model, data, limit, &ds);
	if (rc) {
		qt_dataset_close(ds);
		return rc;
	}
	double t0 = seconds();
	struct timer tm = {.ds = ds, .batch = batch};
	struct qt_sens_opts so = {.quant = qo, .settings = settings, .n_settings = n_settings, .data = ds,
				  .batch = batch, .progress = sens_progress, .progress_user = (void *)cmd,
				  .time_nodes = time_nodes, .time_user = &tm, .proxy = proxy};
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

/*
 * --layer PATTERN=SETTING with a budget pins the matching layers (node name
 * or, for unnamed nodes, output name, as sensitivities name them) to that
 * setting, which must be a candidate; later patterns win. PATTERN=float
 * layers are left out of the program altogether (the plan keeps them float).
 */
static int pin_layers(const struct qt_sens *s, const struct qt_quant_opts *qo, const struct qt_bits_setting *cand,
		      int nc, unsigned char *allowed)
{
	memset(allowed, 1, (size_t)s->n_layers * nc);
	for (int i = 0; i < qo->n_overrides; i++) {
		const char *spec = qo->overrides[i], *eq = strrchr(spec, '=');
		struct qt_bits_setting b;
		char pat[512];
		if (!eq || (size_t)(eq - spec) >= sizeof pat || qt_bits_setting_parse(eq + 1, &b))
			return cli_usage_error("quantize", "--layer '%s' must be PATTERN=wXaY, PATTERN=FORMAT or PATTERN=float",
					       spec);
		if (b.wbits == 32 && strcmp(eq + 1, "float") == 0)
			continue;
		snprintf(pat, sizeof pat, "%.*s", (int)(eq - spec), spec);
		int c = 0, hits = 0;
		while (c < nc && !qt_bits_setting_eq(&cand[c], &b))
			c++;
		if (c == nc)
			return cli_usage_error("quantize", "--layer '%s': %s is not one of the candidates", spec, eq + 1);
		for (int l = 0; l < s->n_layers; l++)
			if (!fnmatch(pat, s->names[l], 0)) {
				for (int k = 0; k < nc; k++)
					allowed[(size_t)l * nc + k] = k == c;
				hits++;
			}
		if (!hits)
			return cli_usage_error("quantize", "--layer pattern '%s' matches no layer of the sensitivities", pat);
	}
	return 0;
}

/* Setting indices of s for the candidate list; -1 entries are reported. */
static int map_candidates(const char *sens_path, const struct qt_sens *s, const struct qt_bits_setting *cand, int nc,
			  int *idx)
{
	for (int c = 0; c < nc; c++) {
		idx[c] = -1;
		for (int k = 0; k < s->n_settings; k++)
			if (qt_bits_setting_eq(&s->settings[k], &cand[c]))
				idx[c] = k;
		if (idx[c] < 0) {
			char b[QT_SETTING_STR_MAX];
			return cli_usage_error("quantize", "candidate %s is not in %s (run 'qtool analyze --candidates ...')",
					       qt_bits_setting_str(&cand[c], b), sens_path);
		}
	}
	return 0;
}

/* "=SETTING" as a plan override (qt_plan_override) sets it: "=wXaY",
 * "=float", or "=FORMAT:aN" (a bare format would keep the default
 * activation bits). buf holds QT_SETTING_STR_MAX + 8 bytes. */
static void setting_override(const struct qt_bits_setting *b, char *buf)
{
	char s[QT_SETTING_STR_MAX];
	if (b->wfmt != QT_FMT_INT)
		snprintf(buf, QT_SETTING_STR_MAX + 8, "=%s:a%d", qt_numfmt_name(b->wfmt), b->abits);
	else
		snprintf(buf, QT_SETTING_STR_MAX + 8, "=%s", qt_bits_setting_str(b, s));
}

/* Overrides for choice (one candidate index per layer of s): the user's
 * --layer edits (qo), then "NAME=SETTING" for every layer. */
static int make_overrides(const struct qt_sens *s, const struct qt_bits_setting *cand, const int *choice,
			  const struct qt_quant_opts *qo, struct cli_mixed_plan *out)
{
	for (int i = 0; out->overrides && i < out->n; i++)
		free(out->overrides[i]);
	free(out->overrides);
	out->n = 0;
	if (!(out->overrides = calloc((size_t)s->n_layers + qo->n_overrides + 1, sizeof *out->overrides)))
		return cli_status_error("quantize", qt_error(QT_E_NOMEM, "out of memory"));
	for (int i = 0; i < qo->n_overrides; i++)
		if (!(out->overrides[out->n++] = strdup(qo->overrides[i])))
			return cli_status_error("quantize", qt_error(QT_E_NOMEM, "out of memory"));
	for (int l = 0; l < s->n_layers; l++) {
		char suffix[QT_SETTING_STR_MAX + 8];
		setting_override(&cand[choice[l]], suffix);
		if (!(out->overrides[out->n++] = escape_glob(s->names[l], suffix)))
			return cli_status_error("quantize", qt_error(QT_E_NOMEM, "out of memory"));
	}
	return 0;
}

/* ---- Accuracy-target search (--max-drop) ---- */

struct search {
	const char *model;
	const struct qt_calib_table *calib;
	const struct qt_quant_opts *qo;
	struct qt_dataset *eval; /* labelled for top-1 */
	int sqnr;                /* the target is output SQNR against FP32 (--min-sqnr), not top-1 */
	double fp32_top1;
	char tmp[4096];          /* where each candidate .qmod is written and evaluated */
};

/* Top-1 in percent of the model file at path over the labelled eval data. */
static enum qt_status top1_of(const char *path, struct qt_dataset *ds, double *top1_out)
{
	struct qt_model *m = NULL;
	enum qt_status st = qt_model_open(path, &m);
	struct qt_tensor x = {0}, y = {0};
	int64_t labels[64], ok = 0, n_all = 0;
	qt_dataset_reset(ds);
	while (!st) {
		int n = 0;
		if ((st = qt_dataset_next(ds, 64, &x, labels, &n)) != QT_OK || n == 0)
			break;
		if ((st = qt_model_run(m, &x, &y)) != QT_OK)
			break;
		int64_t C = y.rank >= 2 ? y.dims[y.rank - 1] : 0;
		if (y.dtype != QT_DTYPE_F32 || C < 2 || qt_tensor_numel(&y) != n * C) {
			st = qt_error(QT_E_UNSUPPORTED, "%s: the first output is not [N, classes]", path);
			break;
		}
		const float *d = y.data;
		for (int i = 0; i < n; i++) {
			int64_t b = 0;
			for (int64_t c = 1; c < C; c++)
				b = d[i * C + c] > d[i * C + b] ? c : b;
			ok += b == labels[i];
		}
		n_all += n;
		qt_tensor_free(&y);
	}
	qt_tensor_free(&x);
	qt_tensor_free(&y);
	qt_model_free(m);
	*top1_out = n_all > 0 ? 100.0 * (double)ok / (double)n_all : 0;
	return st;
}

/* Output SQNR in dB of the model file at path against the FP32 model over
 * the eval data (labels not needed), every element of the first output. */
static enum qt_status sqnr_of(const char *path, const char *model, struct qt_dataset *ds, double *db_out)
{
	struct qt_sqnr_acc acc = {0};
	enum qt_status st = cli_output_error(path, model, ds, 64, &acc);
	*db_out = qt_sqnr_db(&acc);
	return st;
}

/* Quantize with the plan `choice` into the search's temporary file and
 * measure its top-1 (or, with S->sqnr, its output SQNR in dB). */
static int probe(struct search *S, const struct qt_sens *s, const struct qt_bits_setting *cand, const int *choice,
		 double *score_out)
{
	struct cli_mixed_plan pl = {0};
	struct qt_graph *g = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = make_overrides(s, cand, choice, S->qo, &pl);
	struct qt_quant_opts o = *S->qo;
	o.overrides = (const char *const *)pl.overrides;
	o.n_overrides = pl.n;
	o.report_out = NULL;
	o.n_report_out = NULL;
	o.progress = NULL;
	enum qt_status st = QT_OK;
	if (!rc && ((st = qt_graph_load_onnx(S->model, &g)) != QT_OK || (st = qt_quantize_graph(g, S->calib, &o)) != QT_OK ||
		    (st = qt_qmod_serialize(g, &buf, &len)) != QT_OK || (st = cli_out_write_all(S->tmp, buf, len)) != QT_OK ||
		    (st = S->sqnr ? sqnr_of(S->tmp, S->model, S->eval, score_out) : top1_of(S->tmp, S->eval, score_out)) !=
			    QT_OK))
		rc = cli_status_error("quantize", st);
	free(buf);
	qt_graph_free(g);
	cli_mixed_plan_free(&pl);
	return rc;
}

/*
 * The smallest plan whose top-1 is within `target` points of FP32's (with
 * S->sqnr: whose output SQNR is at least `target` dB): the
 * program solved at byte budgets between the smallest plan and the
 * unconstrained optimum, bisected on measured top-1 (about 8 probes).
 * best_out gets the best plan found: the smallest that meets the target, or
 * else the most accurate; *met_out whether one met it.
 */
static int search(struct search *S, const struct qt_sens *s, const struct qt_bits_setting *cand,
		  struct qt_bitalloc *p, double target, FILE *info, int *best_out, int *met_out)
{
	int L = s->n_layers, *choice = malloc(((size_t)L + 1) * sizeof *choice), rc = 0;
	if (!choice)
		return cli_status_error("quantize", qt_error(QT_E_NOMEM, "out of memory"));
	struct qt_bitalloc_result r;
	double best_score = -1e300, score = 0; /* top-1 %, or SQNR dB with S->sqnr */
	int64_t best_bytes = INT64_MAX;
	*met_out = 0;
	/* hi: the unconstrained optimum; lo: the smallest plan's bytes - 1 (known to miss or be infeasible). */
	p->max_bytes = 0;
	int64_t hi, lo = 0;
	enum qt_status st = qt_bitalloc_solve(p, choice, &r);
	if (st) {
		free(choice);
		return cli_usage_error("quantize", "%s", qt_error_msg());
	}
	hi = r.bytes;
	for (int it = 0; it < 12 && !rc; it++) {
		if (it > 0) {
			int64_t mid = lo + (hi - lo) / 2;
			if (hi - lo <= hi / 50 || mid <= lo)
				break;
			p->max_bytes = mid;
			if ((st = qt_bitalloc_solve(p, choice, &r)) != QT_OK) {
				lo = mid; /* below the smallest plan */
				continue;
			}
		}
		if ((rc = probe(S, s, cand, choice, &score)) != 0)
			break;
		int met = S->sqnr ? score >= target : S->fp32_top1 - score <= target;
		if (S->sqnr)
			fprintf(info, "min-sqnr: %lld bytes, %.3f average weight bits: output SQNR %.2f dB%s\n",
				(long long)r.bytes, r.avg_wbits, score, met ? ", within the target" : "");
		else
			fprintf(info, "max-drop: %lld bytes, %.3f average weight bits: top-1 %.2f%% (%+.2f)%s\n",
				(long long)r.bytes, r.avg_wbits, score, score - S->fp32_top1, met ? ", within the target" : "");
		if ((met && (!*met_out || r.bytes < best_bytes)) || (!*met_out && !met && score > best_score)) {
			memcpy(best_out, choice, (size_t)L * sizeof *choice);
			best_score = score;
			best_bytes = r.bytes;
			*met_out |= met;
		}
		if (it == 0 && !met)
			break; /* the most accurate plan misses: nothing smaller will do */
		if (met)
			hi = r.bytes;
		else
			lo = p->max_bytes;
		if (it == 0)
			lo = 0;
	}
	free(choice);
	return rc;
}

int cli_mixed_precision(const char *model, const struct qt_calib_table *calib, const struct qt_quant_opts *qo,
			const struct cli_mixed_args *a, FILE *info, struct cli_mixed_plan *out)
{
	struct qt_bits_setting cand[CLI_MAX_CANDIDATES];
	int nc = 0;
	int64_t max_bytes = 0, max_bops = 0;
	double avg = 0;
	memset(out, 0, sizeof *out);
	int rc = cli_parse_candidates("quantize", a->candidates, cand, &nc);
	if (rc)
		return rc;
	if (a->target_size && qt_parse_size(a->target_size, &max_bytes))
		return cli_usage_error("quantize", "--target-size '%s' must be bytes, or a size such as 120KB, 1.5MB, 96KiB",
				       a->target_size);
	if (a->avg_wbits && cli_parse_double(a->avg_wbits, 1, 32, &avg))
		return cli_usage_error("quantize", "--avg-wbits needs a number of bits between 1 and 32, not '%s'",
				       a->avg_wbits);
	if (a->max_bops && (qt_parse_size(a->max_bops, &max_bops)))
		return cli_usage_error("quantize", "--max-bops '%s' must be a positive count (suffixes K, M, G)", a->max_bops);
	double max_ms = 0;
	if (a->max_latency_ms && (cli_parse_double(a->max_latency_ms, 1e-6, 1e9, &max_ms)))
		return cli_usage_error("quantize", "--max-latency-ms needs milliseconds > 0, not '%s'", a->max_latency_ms);
	int64_t max_ns = (int64_t)floor(max_ms * 1e6);
	double target = 0; /* --max-drop points, or --min-sqnr dB */
	long eval_limit = 0;
	const char *target_flag = a->max_drop ? "--max-drop" : "--min-sqnr";
	if (a->max_drop && a->min_sqnr)
		return cli_usage_error("quantize", "--max-drop (top-1) and --min-sqnr (output SQNR) are two targets: give one");
	if (a->max_drop || a->min_sqnr) {
		if (a->max_drop && cli_parse_double(a->max_drop, 0, 100, &target))
			return cli_usage_error("quantize", "--max-drop needs top-1 points between 0 and 100, not '%s'",
					       a->max_drop);
		if (a->min_sqnr && cli_parse_double(a->min_sqnr, -100, 300, &target))
			return cli_usage_error("quantize", "--min-sqnr needs decibels between -100 and 300, not '%s'",
					       a->min_sqnr);
		if (!a->eval_data)
			return cli_usage_error("quantize", "%s needs --eval-data SPEC to measure %s", target_flag,
					       a->max_drop ? "top-1 (labelled data)" : "the output SQNR (labels not needed)");
		if (a->eval_limit && cli_parse_long(a->eval_limit, 0, 1L << 40, &eval_limit))
			return cli_usage_error("quantize", "--eval-limit needs a sample count, not '%s'", a->eval_limit);
		if (max_bytes || avg > 0 || max_bops || max_ns)
			return cli_usage_error("quantize", "%s searches the size itself: drop --target-size, "
							   "--avg-wbits, --max-bops and --max-latency-ms", target_flag);
	}
	struct qt_sens s;
	if (a->sens) {
		enum qt_status st = qt_sens_read(a->sens, &s);
		if (st)
			return cli_status_error("quantize", st);
		rc = sens_fits(model, a->sens, &s, qo);
	} else if (!a->data) {
		return cli_usage_error("quantize", "a budget needs sensitivities: give --data SPEC to measure them, or "
						   "--sens FILE from 'qtool analyze'");
	} else {
		rc = cli_sens_measure("quantize", model, calib, qo, cand, nc, a->data, a->limit, a->batch, 0, &s);
		if (rc)
			return rc;
	}
	int *idx = malloc(sizeof(int) * CLI_MAX_CANDIDATES), *choice = malloc(((size_t)s.n_layers + 1) * sizeof *choice);
	double *cost = malloc(((size_t)s.n_layers * nc + 1) * sizeof *cost);
	int64_t *bytes = malloc(((size_t)s.n_layers * nc + 1) * sizeof *bytes);
	int64_t *bops = malloc(((size_t)s.n_layers * nc + 1) * sizeof *bops);
	int64_t *ns = malloc(((size_t)s.n_layers * nc + 1) * sizeof *ns);
	unsigned char *allowed = malloc((size_t)s.n_layers * nc + 1);
	int wbits[CLI_MAX_CANDIDATES];
	if (!rc && (!idx || !choice || !cost || !bytes || !bops || !ns || !allowed))
		rc = cli_status_error("quantize", qt_error(QT_E_NOMEM, "out of memory"));
	if (!rc)
		rc = pin_layers(&s, qo, cand, nc, allowed);
	if (!rc)
		rc = map_candidates(a->sens ? a->sens : "the sensitivities", &s, cand, nc, idx);
	for (int l = 0; !rc && l < s.n_layers; l++)
		for (int c = 0; c < nc; c++) {
			size_t i = (size_t)l * nc + c, j = (size_t)l * s.n_settings + idx[c];
			cost[i] = s.cost[j];
			bytes[i] = s.bytes[j];
			bops[i] = s.macs[l] * cand[c].wbits * cand[c].abits;
			ns[i] = s.ns[j];
			wbits[c] = cand[c].wbits;
			if (max_ns && ns[i] < 0 && allowed[i] && !rc) {
				char b[QT_SETTING_STR_MAX];
				rc = cli_usage_error("quantize",
						     "--max-latency-ms: %s has no integer-runtime time for layer \"%s\" at %s "
						     "(float is not timed; run 'qtool analyze' again)",
						     a->sens ? a->sens : "the measurement", s.names[l], qt_bits_setting_str(&cand[c], b));
			}
		}
	struct qt_bitalloc p = {.n_layers = s.n_layers, .n_settings = nc, .cost = cost, .bytes = bytes,
				.params = s.params, .wbits = wbits, .bops = bops, .allowed = allowed, .max_bytes = max_bytes,
				.max_avg_wbits = avg, .max_bops = max_bops, .ns = max_ns ? ns : NULL, .max_ns = max_ns};
	struct qt_bitalloc_result r;
	enum qt_status st = QT_OK;
	if (!rc && (a->max_drop || a->min_sqnr)) {
		struct search S = {.model = model, .calib = calib, .qo = qo, .sqnr = a->min_sqnr != NULL};
		snprintf(S.tmp, sizeof S.tmp, "%s/qtool-maxdrop-%ld.qmod", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
			 (long)getpid());
		if ((rc = cli_open_samples("quantize", model, a->eval_data, eval_limit, &S.eval)) == 0 && !S.sqnr &&
		    !qt_dataset_has_labels(S.eval))
			rc = cli_usage_error("quantize", "--eval-data %s has no labels: --max-drop measures top-1 (without "
							 "labels, --min-sqnr DB targets the output SQNR)", a->eval_data);
		if (!rc && !S.sqnr && (st = top1_of(model, S.eval, &S.fp32_top1)) != QT_OK)
			rc = cli_status_error("quantize", st);
		if (!rc && S.sqnr)
			fprintf(info, "min-sqnr: output SQNR against FP32 on %lld samples of %s; target: at least %g dB\n",
				(long long)qt_dataset_count(S.eval), a->eval_data, target);
		else if (!rc)
			fprintf(info, "max-drop: FP32 top-1 %.2f%% on %lld samples of %s; target: at most %g points below\n",
				S.fp32_top1, (long long)qt_dataset_count(S.eval), a->eval_data, target);
		if (!rc) {
			rc = search(&S, &s, cand, &p, target, info, choice, &out->met);
			out->missed = !out->met;
		}
		p.max_bytes = 0;
		unlink(S.tmp);
		qt_dataset_close(S.eval);
		if (!rc)
			qt_bitalloc_eval(&p, choice, &r);
	} else if (!rc && (st = qt_bitalloc_solve(&p, choice, &r)) != QT_OK) {
		rc = cli_usage_error("quantize", "%s", qt_error_msg());
	}
	if (!rc)
		rc = make_overrides(&s, cand, choice, qo, out);
	if (!rc) {
		fprintf(info, "mixed precision: %d layers, candidates %s, loss %s on %lld samples\n", s.n_layers,
			a->candidates ? a->candidates : cli_default_candidates, s.loss, (long long)s.samples);
		for (int l = 0; l < s.n_layers; l++) {
			char b[QT_SETTING_STR_MAX];
			qt_bits_setting_str(&cand[choice[l]], b);
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
		if (max_ns)
			fprintf(info, ", %.4f ms per sample on the integer runtime (budget %g)", (double)r.ns / 1e6, max_ms);
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
	free(ns);
	free(allowed);
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
