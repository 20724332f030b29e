/* qtool eval: accuracy, agreement, SQNR and speed over a labelled dataset. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "qtool/dataset.h"
#include "qtool/model.h"

static const char eval_help[] =
	"usage: qtool eval MODEL --data SPEC [--limit N] [--offset N] [--batch B]\n"
	"                  [--reference OTHER_MODEL] [--simulate] [--json FILE]\n\n"
	"Runs MODEL (FP32 .onnx or quantized .qmod) over a labelled dataset and reports\n"
	"top-1 and top-5 accuracy, per-class accuracy, samples per second and the model\n"
	"file's size.\n\n"
	"  --data SPEC        fashion-mnist:train | fashion-mnist:test | idx:IMAGES,LABELS |\n"
	"                     npy:DIR | pb:DIR | FILE.json (see README); required\n"
	"  --limit N          evaluate at most N samples (default: all)\n"
	"  --offset N         skip the first N samples (default 0)\n"
	"  --batch B          samples per batch (default 64); memory is bounded by B\n"
	"  --reference M      also run model M on the same batches and report top-1\n"
	"                     agreement with it and the SQNR of MODEL's outputs against\n"
	"                     M's in dB\n"
	"  --simulate         run a .qmod MODEL as its float simulation (fake quantization)\n"
	"                     instead of the integer runtime; with --reference set to the\n"
	"                     same .qmod this checks the integer runtime against it\n"
	"  --json FILE        write the report as JSON (schema: docs/REPORT.md)\n";

struct acc {
	int64_t n, top1, top5;
	int64_t cls_n[1024], cls_ok[1024];
	int64_t agree;
	double sig, noise; /* SQNR sums over all logits */
	double max_abs;    /* largest |output - reference output| */
	double seconds, ref_seconds;
};

static int argmax(const float *v, int n)
{
	int b = 0;
	for (int i = 1; i < n; i++)
		if (v[i] > v[b])
			b = i;
	return b;
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

int cmd_eval(int argc, char **argv)
{
	const char *model_path = NULL, *spec = NULL, *ref_path = NULL, *json_path = NULL;
	long limit = 0, offset = 0, batch = 64;
	int simulate = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(eval_help, stdout);
			return 0;
		} else if (!strcmp(a, "--data")) {
			if (!v)
				return cli_usage_error("eval", "--data needs a dataset spec");
			spec = v, i++;
		} else if (!strcmp(a, "--limit")) {
			if (cli_parse_long(v, 1, 1L << 40, &limit))
				return cli_usage_error("eval", "--limit needs a positive integer, not '%s'", v ? v : "");
			i++;
		} else if (!strcmp(a, "--offset")) {
			if (cli_parse_long(v, 0, 1L << 40, &offset))
				return cli_usage_error("eval", "--offset needs a non-negative integer, not '%s'", v ? v : "");
			i++;
		} else if (!strcmp(a, "--batch")) {
			if (cli_parse_long(v, 1, 65536, &batch))
				return cli_usage_error("eval", "--batch needs an integer in 1..65536, not '%s'", v ? v : "");
			i++;
		} else if (!strcmp(a, "--reference")) {
			if (!v)
				return cli_usage_error("eval", "--reference needs a model");
			ref_path = v, i++;
		} else if (!strcmp(a, "--simulate")) {
			simulate = 1;
		} else if (!strcmp(a, "--json")) {
			if (!v)
				return cli_usage_error("eval", "--json needs a file name");
			json_path = v, i++;
		} else if (a[0] == '-') {
			return cli_usage_error("eval", "unknown option '%s' (see 'qtool eval --help')", a);
		} else if (!model_path) {
			model_path = a;
		} else {
			return cli_usage_error("eval", "more than one model given ('%s')", a);
		}
	}
	if (!model_path)
		return cli_usage_error("eval", "no model given (see 'qtool eval --help')");
	if (!spec)
		return cli_usage_error("eval", "--data SPEC is required (e.g. --data fashion-mnist:test)");
	if (json_path) {
		const char *ins[2] = {model_path, ref_path};
		enum qt_status st = cli_check_not_input(json_path, ins, 2);
		if (st)
			return cli_status_error("eval", st);
	}

	struct qt_model *m = NULL, *ref = NULL;
	struct qt_dataset *ds = NULL;
	struct qt_tensor x = {0}, y = {0}, yr = {0};
	int64_t *labels = NULL;
	struct acc *A = calloc(1, sizeof *A);
	int rc = 0;
	enum qt_status st;
	if (!A)
		return cli_usage_error("eval", "out of memory");
	if ((st = (simulate ? qt_model_open_sim : qt_model_open)(model_path, &m)) != QT_OK || (ref_path && (st = qt_model_open(ref_path, &ref)) != QT_OK)) {
		rc = cli_status_error("eval", st);
		goto out;
	}
	const struct qt_graph *g = qt_model_graph(m);
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
	if (!qt_dataset_has_labels(ds)) {
		rc = cli_usage_error("eval", "%s: the dataset has no labels; eval needs them", spec);
		goto out;
	}
	labels = calloc((size_t)batch, sizeof *labels);
	if (!labels) {
		rc = cli_usage_error("eval", "out of memory");
		goto out;
	}
	int64_t total = qt_dataset_count(ds);
	int n_classes = 0;
	for (;;) {
		int n;
		if ((st = qt_dataset_next(ds, (int)batch, &x, labels, &n)) != QT_OK) {
			rc = cli_status_error("eval", st);
			goto out;
		}
		if (n == 0)
			break;
		double t0 = now_s();
		st = qt_model_run(m, &x, &y);
		A->seconds += now_s() - t0;
		if (st) {
			qt_error_prefix(st, "%s", model_path);
			rc = cli_status_error("eval", st);
			goto out;
		}
		if (y.dtype != QT_DTYPE_F32 || y.rank != 2 || y.dims[0] != n || y.dims[1] < 1 || y.dims[1] > 1024) {
			char s[96];
			rc = cli_usage_error("eval", "%s: output must be float32 [batch, classes<=1024], got %s %s",
					     model_path, qt_dtype_name(y.dtype), qt_shape_str(s, sizeof s, y.rank, y.dims));
			goto out;
		}
		int C = (int)y.dims[1];
		n_classes = C;
		if (ref) {
			t0 = now_s();
			st = qt_model_run(ref, &x, &yr);
			A->ref_seconds += now_s() - t0;
			if (st) {
				qt_error_prefix(st, "%s", ref_path);
				rc = cli_status_error("eval", st);
				goto out;
			}
			if (yr.dtype != QT_DTYPE_F32 || yr.rank != 2 || yr.dims[0] != n || yr.dims[1] != C) {
				rc = cli_usage_error("eval", "%s: reference output must be float32 of the model's shape", ref_path);
				goto out;
			}
		}
		const float *py = y.data;
		for (int i = 0; i < n; i++) {
			const float *row = py + (size_t)i * C;
			int64_t lab = labels[i];
			if (lab < 0 || lab >= C) {
				rc = cli_usage_error("eval", "%s: label %lld of sample %lld is outside the model's %d classes",
						     spec, (long long)lab, (long long)(A->n + i + offset), C);
				goto out;
			}
			int top = argmax(row, C);
			A->top1 += top == lab;
			A->top5 += rank_of(row, C, (int)lab) < 5;
			A->cls_n[lab]++;
			A->cls_ok[lab] += top == lab;
			if (ref) {
				const float *rr = (const float *)yr.data + (size_t)i * C;
				A->agree += argmax(rr, C) == top;
				for (int c = 0; c < C; c++) {
					double d = (double)row[c] - rr[c];
					if (fabs(d) > A->max_abs)
						A->max_abs = fabs(d);
					A->sig += (double)rr[c] * rr[c];
					A->noise += d * d;
				}
			}
		}
		A->n += n;
		qt_tensor_free(&y);
		qt_tensor_free(&yr);
		cli_progress("eval", (long)A->n, (long)total);
	}
	cli_progress_end();

	double top1 = 100.0 * (double)A->top1 / (double)A->n, top5 = 100.0 * (double)A->top5 / (double)A->n;
	double sps = A->seconds > 0 ? (double)A->n / A->seconds : 0;
	double sqnr = A->noise > 0 ? 10.0 * log10(A->sig / A->noise) : INFINITY;
	float oscale = 0;
	int32_t ozp;
	int has_oq = ref && qt_model_output_qparams(m, &oscale, &ozp);
	printf("model:   %s (%s, %llu bytes)\n", model_path,
	       qt_model_kind(m) == QT_MODEL_ONNX ? "onnx" : qt_model_kind(m) == QT_MODEL_QMOD ? "qmod, integer runtime" : "qmod, float simulation",
	       (unsigned long long)qt_model_file_bytes(m));
	printf("data:    %s (%lld samples)\n", spec, (long long)A->n);
	printf("top-1:   %.2f%% (%lld/%lld)\n", top1, (long long)A->top1, (long long)A->n);
	printf("top-5:   %.2f%%\n", top5);
	printf("speed:   %.1f samples/s (batch %ld)\n", sps, batch);
	if (ref) {
		printf("agreement with %s: %.2f%% top-1\n", ref_path, 100.0 * (double)A->agree / (double)A->n);
		if (isinf(sqnr))
			printf("SQNR:    inf dB (outputs identical)\n");
		else
			printf("SQNR:    %.2f dB\n", sqnr);
		if (has_oq)
			printf("max output difference: %.0f codes of the quantized output\n", A->max_abs / oscale);
	}

	if (json_path) {
		cJSON *root = cJSON_CreateObject();
		cJSON_AddStringToObject(root, "format", "qtool-eval-report");
		cJSON_AddNumberToObject(root, "version", 1);
		cJSON_AddStringToObject(root, "qtool_version", QT_VERSION_STRING);
		cJSON_AddStringToObject(root, "command", cli_command_line());
		cJSON_AddItemToObject(root, "model", model_json(model_path, m));
		cJSON *jd = cJSON_AddObjectToObject(root, "dataset");
		cJSON_AddStringToObject(jd, "spec", spec);
		cJSON_AddStringToObject(jd, "resolved", qt_dataset_describe(ds));
		cJSON_AddNumberToObject(jd, "offset", (double)offset);
		cJSON_AddNumberToObject(jd, "samples", (double)A->n);
		cJSON *jm = cJSON_AddObjectToObject(root, "metrics");
		cJSON_AddNumberToObject(jm, "top1", top1);
		cJSON_AddNumberToObject(jm, "top5", top5);
		cJSON_AddNumberToObject(jm, "correct_top1", (double)A->top1);
		cJSON_AddNumberToObject(jm, "correct_top5", (double)A->top5);
		cJSON *pc = cJSON_AddArrayToObject(jm, "per_class");
		for (int c = 0; c < n_classes; c++) {
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
		cJSON_AddNumberToObject(jm, "samples_per_second", sps);
		cJSON_AddNumberToObject(jm, "batch", (double)batch);
		cJSON_AddNumberToObject(jm, "model_file_bytes", (double)qt_model_file_bytes(m));
		if (ref) {
			cJSON *jr = model_json(ref_path, ref);
			cJSON_AddNumberToObject(jr, "agreement_top1", 100.0 * (double)A->agree / (double)A->n);
			if (isinf(sqnr))
				cJSON_AddNullToObject(jr, "sqnr_db");
			else
				cJSON_AddNumberToObject(jr, "sqnr_db", sqnr);
			cJSON_AddNumberToObject(jr, "max_abs_diff", A->max_abs);
			if (has_oq)
				cJSON_AddNumberToObject(jr, "max_code_diff", A->max_abs / oscale);
			cJSON_AddNumberToObject(jr, "samples_per_second",
						A->ref_seconds > 0 ? (double)A->n / A->ref_seconds : 0);
			cJSON_AddItemToObject(root, "reference", jr);
		}
		char *s = cJSON_Print(root);
		cJSON_Delete(root);
		struct cli_out o;
		if (!s || (st = cli_out_open(&o, json_path)) != QT_OK) {
			free(s);
			rc = cli_status_error("eval", s ? st : QT_E_NOMEM);
			goto out;
		}
		fputs(s, o.f);
		fputc('\n', o.f);
		free(s);
		if ((st = cli_out_commit(&o)) != QT_OK) {
			rc = cli_status_error("eval", st);
			goto out;
		}
	}
out:
	cli_progress_end();
	qt_tensor_free(&x);
	qt_tensor_free(&y);
	qt_tensor_free(&yr);
	free(labels);
	free(A);
	qt_dataset_close(ds);
	qt_model_free(m);
	qt_model_free(ref);
	return rc;
}
