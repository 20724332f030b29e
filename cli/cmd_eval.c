/* qtool eval: accuracy over labelled data; output fidelity against a reference model on any data. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "report.h"
#include "qtool/dataset.h"
#include "qtool/model.h"

static const char eval_help[] =
	"usage: qtool eval MODEL --data SPEC [--limit N] [--offset N] [--batch B]\n"
	"                  [--reference OTHER_MODEL] [--simulate] [--json FILE]\n"
	"                  [--per-layer [--sens SENS.json]]\n\n"
	"Runs MODEL (FP32 .onnx or quantized .qmod) over a dataset. With labels it\n"
	"reports top-1 and top-5 accuracy and per-class accuracy of the first output.\n"
	"With --reference it runs OTHER_MODEL on the same batches and reports, for\n"
	"every graph output: SQNR against the reference in dB, cosine similarity\n"
	"(mean and lowest over samples), the largest absolute difference (also in\n"
	"output codes for a .qmod) and, when the last axis has 2 or more values,\n"
	"how often the argmax over it agrees. Data without labels needs --reference.\n"
	"Also samples per second and the model file's size.\n\n"
	"  --data SPEC        fashion-mnist:train | fashion-mnist:test | idx:IMAGES[,LABELS] |\n"
	"                     npy:DIR | pb:DIR | FILE.json (see README); required\n"
	"  --limit N          evaluate at most N samples (default 0: all after --offset,\n"
	"                     as for calibrate)\n"
	"  --offset N         skip the first N samples (default 0)\n"
	"  --batch B          samples per batch (default 64); memory is bounded by B\n"
	"  --reference M      also run model M and compare every output with M's\n"
	"  --simulate         run a .qmod MODEL as its float simulation (fake quantization)\n"
	"                     instead of the integer runtime; with --reference set to the\n"
	"                     same .qmod this checks the integer runtime against it\n"
	"  --json FILE        write the report as JSON (schema: docs/REPORT.md); '-' or\n"
	"                     /dev/stdout writes it to standard output and the text\n"
	"                     summary to standard error\n"
	"  --per-layer        for a .qmod MODEL with --reference FP32.onnx (the model it\n"
	"                     was quantized from): per quantized layer, its setting, bytes\n"
	"                     and the SQNR of its output against FP32's, both run in float\n"
	"                     (the .qmod as its float simulation); in the text and the JSON\n"
	"  --sens FILE        with --per-layer: also each layer's sensitivity at its\n"
	"                     setting from 'qtool analyze' and its share of their sum\n";

#define MAX_CLASSES 1024

/* Accuracy of the first output against the labels. */
struct acc {
	int64_t top1, top5;
	int64_t cls_n[MAX_CLASSES], cls_ok[MAX_CLASSES];
	int n_classes;
};

/* One graph output compared with the reference's output of the same index. */
struct fid {
	struct qt_sqnr_acc e;    /* ref^2, (out - ref)^2 and the largest |out - ref| */
	double cos_sum, cos_min; /* cosine of each sample's output vector with the reference's */
	int64_t cos_n;
	int64_t agree, rows; /* argmax over the last axis, rows compared */
	int64_t last;        /* length of the last axis; < 2: agreement not meaningful */
	int rank;
	int64_t dims[QT_MAX_RANK]; /* shape of the last batch */
	int batched;               /* dim 0 is the batch (shown as the sample count) */
	float scale;               /* the model's output scale when quantized, else 0 */
};

static int argmax(const float *v, int64_t n)
{
	int64_t b = 0;
	for (int64_t i = 1; i < n; i++)
		if (v[i] > v[b])
			b = i;
	return (int)b;
}

/* Rank of the true label among the logits (0 = top). Ties count against. */
static int rank_of(const float *v, int n, int label)
{
	int r = 0;
	for (int i = 0; i < n; i++)
		if (i != label && v[i] >= v[label])
			r++;
	return r;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* SQNR in dB; +inf when identical (and the reference is not all zero). */
static double sqnr_db(const struct fid *f)
{
	return f->e.noise == 0 ? INFINITY : qt_sqnr_db(&f->e);
}

/* Accumulate one batch of n samples of output y against the reference r (same shape, float32). */
static void fid_add(struct fid *f, const struct qt_tensor *y, const struct qt_tensor *r, int n)
{
	const float *a = y->data, *b = r->data;
	int64_t numel = qt_tensor_numel(y);
	qt_sqnr_add(&f->e, a, b, numel);
	/* Samples are rows of dim 0 when it is the batch; otherwise the whole output is one. */
	int64_t ns = y->rank >= 1 && y->dims[0] == n && n > 0 ? n : 1, per = numel / ns;
	for (int64_t s = 0; s < ns && per > 0; s++) {
		double dot = 0, na = 0, nb = 0;
		for (int64_t i = s * per; i < (s + 1) * per; i++) {
			dot += (double)a[i] * b[i];
			na += (double)a[i] * a[i];
			nb += (double)b[i] * b[i];
		}
		double c = na == 0 && nb == 0 ? 1.0 : na == 0 || nb == 0 ? 0.0 : dot / sqrt(na * nb);
		if (f->cos_n == 0 || c < f->cos_min)
			f->cos_min = c;
		f->cos_sum += c;
		f->cos_n++;
	}
	f->rank = y->rank;
	memcpy(f->dims, y->dims, sizeof f->dims);
	f->batched = ns == n && n > 0 && y->rank >= 1;
	f->last = y->rank >= 2 ? y->dims[y->rank - 1] : 0;
	if (f->last >= 2)
		for (int64_t row = 0; row < numel / f->last; row++) {
			f->agree += argmax(a + row * f->last, f->last) == argmax(b + row * f->last, f->last);
			f->rows++;
		}
}

static cJSON *model_json(const char *path, const struct qt_model *m)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "path", path);
	cJSON_AddStringToObject(o, "sha256", qt_model_sha256_hex(m));
	static const char *const kinds[] = {"onnx", "qmod", "qmod-simulated"};
	cJSON_AddStringToObject(o, "kind", kinds[qt_model_kind(m)]);
	cJSON_AddNumberToObject(o, "file_bytes", (double)qt_model_file_bytes(m));
	return o;
}

static void add_finite(cJSON *o, const char *key, double v)
{
	if (isfinite(v))
		cJSON_AddNumberToObject(o, key, v);
	else
		cJSON_AddNullToObject(o, key);
}

/* The output's shape with the batch dim as the number of samples evaluated. */
static const char *fid_shape(char *buf, size_t cap, const struct fid *f, int64_t samples)
{
	int64_t d[QT_MAX_RANK];
	memcpy(d, f->dims, sizeof d);
	if (f->batched)
		d[0] = samples;
	return qt_shape_str(buf, cap, f->rank, d);
}

static cJSON *fid_json(const char *name, const struct fid *f, int64_t samples)
{
	char shape[160];
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddStringToObject(o, "shape", fid_shape(shape, sizeof shape, f, samples));
	add_finite(o, "sqnr_db", sqnr_db(f));
	cJSON_AddNumberToObject(o, "signal_sum_squares", f->e.sig);
	cJSON_AddNumberToObject(o, "noise_sum_squares", f->e.noise);
	cJSON_AddNumberToObject(o, "cosine_mean", f->cos_n ? f->cos_sum / (double)f->cos_n : 1.0);
	cJSON_AddNumberToObject(o, "cosine_min", f->cos_n ? f->cos_min : 1.0);
	cJSON_AddNumberToObject(o, "max_abs_diff", f->e.max_abs);
	if (f->scale > 0)
		cJSON_AddNumberToObject(o, "max_code_diff", f->e.max_abs / f->scale);
	if (f->last >= 2 && f->rows) {
		cJSON_AddNumberToObject(o, "agreement_top1", 100.0 * (double)f->agree / (double)f->rows);
		cJSON_AddNumberToObject(o, "agreement_rows", (double)f->rows);
	} else {
		cJSON_AddNullToObject(o, "agreement_top1");
		cJSON_AddNumberToObject(o, "agreement_rows", 0);
	}
	return o;
}

/* Free n output tensors (the array stays). */
static void free_outs(struct qt_tensor *t, int n)
{
	for (int i = 0; t && i < n; i++)
		qt_tensor_free(&t[i]);
}

int cmd_eval(int argc, char **argv)
{
	const char *spec = NULL, *ref_path = NULL, *json_path = NULL, *limit_s = NULL, *offset_s = NULL,
		   *batch_s = NULL, *sens_path = NULL, *pos[1];
	int simulate = 0, per_layer = 0, n_pos, rc;
	const struct cli_opt opts[] = {
		{.name = "--data", .value = &spec},
		{.name = "--limit", .value = &limit_s},
		{.name = "--offset", .value = &offset_s},
		{.name = "--batch", .value = &batch_s},
		{.name = "--reference", .value = &ref_path},
		{.name = "--simulate", .flag = &simulate},
		{.name = "--json", .value = &json_path},
		{.name = "--per-layer", .flag = &per_layer},
		{.name = "--sens", .value = &sens_path},
		{0},
	};
	if ((rc = cli_parse_args("eval", eval_help, argc, argv, opts, pos, 1, &n_pos)) >= 0)
		return rc;
	long limit = 0, offset = 0, batch = 64;
	if ((rc = cli_opt_long("eval", "--limit", limit_s, 0, 1L << 40, &limit)) >= 0 ||
	    (rc = cli_opt_long("eval", "--offset", offset_s, 0, 1L << 40, &offset)) >= 0 ||
	    (rc = cli_opt_long("eval", "--batch", batch_s, 1, 65536, &batch)) >= 0)
		return rc;
	if (!n_pos)
		return cli_usage_error("eval", "no model given (see 'qtool eval --help')");
	const char *model_path = pos[0];
	if (!spec)
		return cli_usage_error("eval", "--data SPEC is required (e.g. --data fashion-mnist:test)");
	if (sens_path && !per_layer)
		return cli_usage_error("eval", "--sens goes with --per-layer");
	enum qt_status st;
	if (json_path) {
		const char *ins[3] = {model_path, ref_path ? ref_path : model_path, sens_path ? sens_path : model_path};
		if ((st = cli_out_check(json_path, ins, 3)) != QT_OK)
			return cli_status_error("eval", st);
	}
	/* With the JSON on standard output, the text goes to standard error. */
	FILE *txt = json_path && cli_out_is_stdout(json_path) ? stderr : stdout;

	struct qt_model *m = NULL, *ref = NULL;
	struct qt_dataset *ds = NULL;
	struct qt_tensor x = {0}, *y = NULL, *yr = NULL;
	int64_t *labels = NULL;
	struct acc *A = calloc(1, sizeof *A);
	struct fid *F = NULL;
	struct cli_per_layer PL = {0};
	int n_out = 0;
	int64_t n_done = 0;
	double seconds = 0, ref_seconds = 0;
	rc = 0;
	if (!A)
		return cli_status_error("eval", qt_error(QT_E_NOMEM, "out of memory"));
	if ((st = (simulate ? qt_model_open_sim : qt_model_open)(model_path, &m)) != QT_OK ||
	    (ref_path && (st = qt_model_open(ref_path, &ref)) != QT_OK)) {
		rc = cli_status_error("eval", st);
		goto out;
	}
	if (per_layer && (rc = cli_per_layer_open("eval", model_path, ref_path, sens_path, &PL)) != 0)
		goto out;
	const struct qt_graph *g = qt_model_graph(m);
	if (g->n_inputs != 1) {
		rc = cli_usage_error("eval", "%s: the model has %d inputs; eval feeds one input from --data", model_path,
				     g->n_inputs);
		goto out;
	}
	n_out = g->n_outputs;
	if (ref && qt_model_graph(ref)->n_outputs != n_out) {
		rc = cli_usage_error("eval", "%s has %d outputs but the reference %s has %d", model_path, n_out, ref_path,
				     qt_model_graph(ref)->n_outputs);
		goto out;
	}
	const struct qt_value *in = &g->values[g->inputs[0]];
	struct qt_dataset_opts dopt = {0};
	dopt.offset = offset;
	dopt.limit = limit;
	dopt.input_name = in->name;
	dopt.input_rank = in->rank > 0 ? in->rank - 1 : 0;
	dopt.input_dims = in->rank > 0 ? in->dims + 1 : NULL;
	if ((st = qt_dataset_open(spec, &dopt, &ds)) != QT_OK) {
		rc = cli_status_error("eval", st);
		goto out;
	}
	int has_labels = qt_dataset_has_labels(ds);
	if (!has_labels && !ref) {
		rc = cli_usage_error("eval",
				     "%s: the dataset has no labels; give --reference MODEL to compare every output "
				     "with another model's",
				     spec);
		goto out;
	}
	labels = calloc((size_t)batch, sizeof *labels);
	y = calloc((size_t)n_out, sizeof *y);
	yr = calloc((size_t)n_out, sizeof *yr);
	F = calloc((size_t)n_out, sizeof *F);
	if (!labels || !y || !yr || !F) {
		rc = cli_status_error("eval", qt_error(QT_E_NOMEM, "out of memory"));
		goto out;
	}
	for (int k = 0; k < n_out; k++) {
		const struct qt_qparams *q = g->values[g->outputs[k]].q;
		F[k].scale = q && q->count >= 1 && qt_model_kind(m) != QT_MODEL_ONNX ? q->scale[0] : 0;
	}
	int64_t total = qt_dataset_count(ds);
	for (;;) {
		int n;
		if ((st = qt_dataset_next(ds, (int)batch, &x, labels, &n)) != QT_OK) {
			rc = cli_status_error("eval", st);
			goto out;
		}
		if (n == 0)
			break;
		double t0 = now_s();
		st = qt_model_run_all(m, &x, y);
		seconds += now_s() - t0;
		if (st) {
			qt_error_prefix(st, "%s", model_path);
			rc = cli_status_error("eval", st);
			goto out;
		}
		if (ref) {
			t0 = now_s();
			st = qt_model_run_all(ref, &x, yr);
			ref_seconds += now_s() - t0;
			if (st) {
				free_outs(y, n_out);
				qt_error_prefix(st, "%s", ref_path);
				rc = cli_status_error("eval", st);
				goto out;
			}
			for (int k = 0; k < n_out; k++) {
				char s1[160], s2[160];
				int same = y[k].dtype == QT_DTYPE_F32 && yr[k].dtype == QT_DTYPE_F32 && y[k].rank == yr[k].rank;
				for (int d = 0; same && d < y[k].rank; d++)
					same = y[k].dims[d] == yr[k].dims[d];
				if (!same) {
					rc = cli_usage_error("eval", "output \"%s\": %s gives %s %s but the reference %s gives %s %s",
							     g->values[g->outputs[k]].name, model_path, qt_dtype_name(y[k].dtype),
							     qt_shape_str(s1, sizeof s1, y[k].rank, y[k].dims), ref_path,
							     qt_dtype_name(yr[k].dtype),
							     qt_shape_str(s2, sizeof s2, yr[k].rank, yr[k].dims));
					free_outs(y, n_out);
					free_outs(yr, n_out);
					goto out;
				}
				fid_add(&F[k], &y[k], &yr[k], n);
			}
		}
		if (per_layer && (rc = cli_per_layer_add("eval", &PL, &x)) != 0) {
			free_outs(y, n_out);
			free_outs(yr, n_out);
			goto out;
		}
		if (has_labels) {
			const struct qt_tensor *t = &y[0];
			if (t->dtype != QT_DTYPE_F32 || t->rank != 2 || t->dims[0] != n || t->dims[1] < 1 ||
			    t->dims[1] > MAX_CLASSES) {
				char s[96];
				rc = cli_usage_error("eval",
						     "%s: for accuracy, output \"%s\" must be float32 [batch, classes<=%d], got "
						     "%s %s",
						     model_path, g->values[g->outputs[0]].name, MAX_CLASSES,
						     qt_dtype_name(t->dtype), qt_shape_str(s, sizeof s, t->rank, t->dims));
				free_outs(y, n_out);
				free_outs(yr, n_out);
				goto out;
			}
			int C = (int)t->dims[1];
			A->n_classes = C;
			for (int i = 0; i < n; i++) {
				const float *row = (const float *)t->data + (size_t)i * C;
				int64_t lab = labels[i];
				if (lab < 0 || lab >= C) {
					rc = cli_usage_error("eval",
							     "%s: label %lld of sample %lld is outside the model's %d classes",
							     spec, (long long)lab, (long long)(n_done + i + offset), C);
					free_outs(y, n_out);
					free_outs(yr, n_out);
					goto out;
				}
				int top = argmax(row, C);
				A->top1 += top == lab;
				A->top5 += rank_of(row, C, (int)lab) < 5;
				A->cls_n[lab]++;
				A->cls_ok[lab] += top == lab;
			}
		}
		n_done += n;
		free_outs(y, n_out);
		free_outs(yr, n_out);
		cli_progress("eval", (long)n_done, (long)total);
	}
	cli_progress_end();

	double top1 = 100.0 * (double)A->top1 / (double)n_done, top5 = 100.0 * (double)A->top5 / (double)n_done;
	double sps = seconds > 0 ? (double)n_done / seconds : 0;
	fprintf(txt, "model:   %s (%s, %llu bytes)\n", model_path,
		qt_model_kind(m) == QT_MODEL_ONNX ? "onnx" : qt_model_kind(m) == QT_MODEL_QMOD ? "qmod, integer runtime" : "qmod, float simulation",
		(unsigned long long)qt_model_file_bytes(m));
	fprintf(txt, "data:    %s (%lld samples%s)\n", spec, (long long)n_done, has_labels ? "" : ", no labels");
	if (has_labels) {
		fprintf(txt, "top-1:   %.2f%% (%lld/%lld)\n", top1, (long long)A->top1, (long long)n_done);
		fprintf(txt, "top-5:   %.2f%%\n", top5);
		fprintf(txt, "per-class top-1:");
		for (int c = 0, shown = 0; c < A->n_classes; c++) {
			if (!A->cls_n[c])
				continue;
			fprintf(txt, "%s%d: %.1f%% of %lld", shown % 5 ? "   " : "\n  ", c,
				100.0 * (double)A->cls_ok[c] / (double)A->cls_n[c], (long long)A->cls_n[c]);
			shown++;
		}
		fputc('\n', txt);
	}
	fprintf(txt, "speed:   %.1f samples/s (batch %ld)\n", sps, batch);
	for (int k = 0; ref && k < n_out; k++) {
		const struct fid *f = &F[k];
		char s[160];
		double q = sqnr_db(f);
		fprintf(txt, "output \"%s\" %s against %s:\n", g->values[g->outputs[k]].name,
			fid_shape(s, sizeof s, f, n_done), ref_path);
		if (isinf(q) && q > 0)
			fprintf(txt, "SQNR:    inf dB (outputs identical)\n");
		else
			fprintf(txt, "SQNR:    %.2f dB\n", q);
		fprintf(txt, "cosine:  %.6f mean, %.6f lowest over %lld samples\n",
			f->cos_n ? f->cos_sum / (double)f->cos_n : 1.0, f->cos_n ? f->cos_min : 1.0, (long long)f->cos_n);
		if (f->scale > 0)
			fprintf(txt, "max abs difference: %.6g (%.2f codes of the quantized output)\n", f->e.max_abs,
				f->e.max_abs / f->scale);
		else
			fprintf(txt, "max abs difference: %.6g\n", f->e.max_abs);
		if (f->last >= 2)
			fprintf(txt, "agreement with %s (argmax over the last axis of %lld, %lld rows): %.2f%% top-1\n",
				ref_path, (long long)f->last, (long long)f->rows, 100.0 * (double)f->agree / (double)f->rows);
		else
			fprintf(txt, "agreement: not measured (the last axis has fewer than 2 values)\n");
	}
	if (per_layer)
		cli_per_layer_print(&PL, txt);

	if (json_path) {
		cJSON *root = cJSON_CreateObject();
		cJSON_AddStringToObject(root, "format", "qtool-eval-report");
		cJSON_AddNumberToObject(root, "version", 3);
		cJSON_AddStringToObject(root, "qtool_version", QT_VERSION_STRING);
		cJSON_AddStringToObject(root, "command", cli_command_line());
		cJSON_AddItemToObject(root, "model", model_json(model_path, m));
		cJSON *jd = cJSON_AddObjectToObject(root, "dataset");
		cJSON_AddStringToObject(jd, "spec", spec);
		cJSON_AddStringToObject(jd, "resolved", qt_dataset_describe(ds));
		cJSON_AddNumberToObject(jd, "offset", (double)offset);
		cJSON_AddNumberToObject(jd, "limit", (double)limit);
		cJSON_AddNumberToObject(jd, "samples", (double)n_done);
		cJSON_AddBoolToObject(jd, "labels", has_labels);
		cJSON *jm = cJSON_AddObjectToObject(root, "metrics");
		if (has_labels) {
			cJSON_AddNumberToObject(jm, "top1", top1);
			cJSON_AddNumberToObject(jm, "top5", top5);
			cJSON_AddNumberToObject(jm, "correct_top1", (double)A->top1);
			cJSON_AddNumberToObject(jm, "correct_top5", (double)A->top5);
			cJSON *pc = cJSON_AddArrayToObject(jm, "per_class");
			for (int c = 0; c < A->n_classes; c++) {
				cJSON *o = cJSON_CreateObject();
				cJSON_AddNumberToObject(o, "class", c);
				cJSON_AddNumberToObject(o, "samples", (double)A->cls_n[c]);
				cJSON_AddNumberToObject(o, "correct", (double)A->cls_ok[c]);
				if (A->cls_n[c])
					cJSON_AddNumberToObject(o, "top1", 100.0 * (double)A->cls_ok[c] / (double)A->cls_n[c]);
				else
					cJSON_AddNullToObject(o, "top1");
				cJSON_AddItemToArray(pc, o);
			}
		}
		cJSON_AddNumberToObject(jm, "samples_per_second", sps);
		cJSON_AddNumberToObject(jm, "batch", (double)batch);
		cJSON_AddNumberToObject(jm, "model_file_bytes", (double)qt_model_file_bytes(m));
		if (ref) {
			/* The first output's figures at the top, as in version 1, then every output. */
			const struct fid *f = &F[0];
			cJSON *jr = model_json(ref_path, ref);
			if (f->last >= 2 && f->rows)
				cJSON_AddNumberToObject(jr, "agreement_top1", 100.0 * (double)f->agree / (double)f->rows);
			else
				cJSON_AddNullToObject(jr, "agreement_top1");
			add_finite(jr, "sqnr_db", sqnr_db(f));
			cJSON_AddNumberToObject(jr, "max_abs_diff", f->e.max_abs);
			if (f->scale > 0)
				cJSON_AddNumberToObject(jr, "max_code_diff", f->e.max_abs / f->scale);
			cJSON_AddNumberToObject(jr, "samples_per_second", ref_seconds > 0 ? (double)n_done / ref_seconds : 0);
			cJSON *jo = cJSON_AddArrayToObject(jr, "outputs");
			for (int k = 0; k < n_out; k++)
				cJSON_AddItemToArray(jo, fid_json(g->values[g->outputs[k]].name, &F[k], n_done));
			cJSON_AddItemToObject(root, "reference", jr);
		}
		if (per_layer)
			cJSON_AddItemToObject(root, "per_layer", cli_per_layer_json(&PL));
		char *s = cJSON_Print(root);
		cJSON_Delete(root);
		size_t len = s ? strlen(s) : 0;
		if (s)
			s[len] = '\n'; /* replaces the NUL: written as len + 1 bytes */
		if (!s || (st = cli_out_write_all(json_path, s, len + 1)) != QT_OK) {
			rc = cli_status_error("eval", s ? st : qt_error(QT_E_NOMEM, "out of memory"));
			free(s);
			goto out;
		}
		free(s);
	}
out:
	cli_progress_end();
	qt_tensor_free(&x);
	free(y);
	free(yr);
	free(F);
	free(labels);
	free(A);
	qt_dataset_close(ds);
	qt_model_free(m);
	qt_model_free(ref);
	cli_per_layer_free(&PL);
	return rc;
}
