/* qtool compare: the CI gate between two eval reports. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"

static const char compare_help[] =
	"usage: qtool compare BASE.json NEW.json [--max-drop POINTS]\n\n"
	"Compares the top-1 accuracy of two 'qtool eval --json' reports and prints a\n"
	"one-line verdict. Exits 1 when NEW's top-1 is more than POINTS percentage\n"
	"points below BASE's (default 0.5), 0 otherwise, 2 on unreadable reports.\n"
	"Reports that were not made on the same samples are refused (exit 2): their\n"
	"dataset spec, --offset, --limit, sample count and resolved files and\n"
	"preprocessing (dataset.resolved) must all be equal. Reports made without\n"
	"labels have no top-1 and are refused too.\n";

/* Load a report and return its root (caller deletes), or NULL after printing why. */
static cJSON *load_report(const char *path, double *top1)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		cli_usage_error("compare", "%s: cannot open", path);
		return NULL;
	}
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	if (n <= 0 || n > (64 << 20)) {
		fclose(f);
		cli_usage_error("compare", "%s: empty or too large to be a report", path);
		return NULL;
	}
	char *buf = malloc((size_t)n + 1);
	size_t got = buf ? fread(buf, 1, (size_t)n, f) : 0;
	fclose(f);
	if (!buf || got != (size_t)n) {
		free(buf);
		cli_usage_error("compare", "%s: read failed", path);
		return NULL;
	}
	buf[n] = '\0';
	cJSON *root = cJSON_Parse(buf);
	free(buf);
	if (!root) {
		cli_usage_error("compare", "%s: not valid JSON", path);
		return NULL;
	}
	const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
	const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(root, "metrics");
	const cJSON *t1 = metrics ? cJSON_GetObjectItemCaseSensitive(metrics, "top1") : NULL;
	if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "qtool-eval-report") != 0) {
		cli_usage_error("compare", "%s: not a qtool eval report (\"format\" is not \"qtool-eval-report\")", path);
		cJSON_Delete(root);
		return NULL;
	}
	if (!t1 && metrics) {
		cli_usage_error("compare", "%s: has no metrics.top1 (made on data without labels); compare gates on accuracy",
				path);
		cJSON_Delete(root);
		return NULL;
	}
	if (!cJSON_IsNumber(t1) || !isfinite(t1->valuedouble) || t1->valuedouble < 0 || t1->valuedouble > 100) {
		cli_usage_error("compare", "%s: metrics.top1 is missing or not a percentage", path);
		cJSON_Delete(root);
		return NULL;
	}
	*top1 = t1->valuedouble;
	return root;
}

/* Field `key` of the reports' "dataset" objects as text ("(none)" when absent). */
static void dataset_field(const cJSON *root, const char *key, char *buf, size_t cap)
{
	const cJSON *ds = cJSON_GetObjectItemCaseSensitive(root, "dataset");
	const cJSON *v = ds ? cJSON_GetObjectItemCaseSensitive(ds, key) : NULL;
	if (cJSON_IsString(v))
		snprintf(buf, cap, "\"%s\"", v->valuestring);
	else if (cJSON_IsNumber(v))
		snprintf(buf, cap, "%.17g", v->valuedouble);
	else
		snprintf(buf, cap, "(none)");
}

int cmd_compare(int argc, char **argv)
{
	const char *files[2] = {NULL, NULL}, *drop_s = NULL;
	int nf, rc;
	const struct cli_opt opts[] = {
		{.name = "--max-drop", .value = &drop_s},
		{0},
	};
	if ((rc = cli_parse_args("compare", compare_help, argc, argv, opts, files, 2, &nf)) >= 0)
		return rc;
	double max_drop = 0.5;
	if (drop_s) {
		if (cli_parse_double(drop_s, 0, DBL_MAX, &max_drop))
			return cli_usage_error("compare", "--max-drop '%s' is not a non-negative number", drop_s);
	}
	if (nf != 2)
		return cli_usage_error("compare", "need BASE.json and NEW.json (see 'qtool compare --help')");
	double base, new;
	cJSON *rb = load_report(files[0], &base);
	if (!rb)
		return QT_EXIT_BAD_INPUT;
	cJSON *rn = load_report(files[1], &new);
	if (!rn) {
		cJSON_Delete(rb);
		return QT_EXIT_BAD_INPUT;
	}
	/* Accuracies are comparable only over the same samples, read the same way. */
	static const char *const same[] = {"spec", "offset", "limit", "samples", "resolved"};
	static const char *const what[] = {"datasets", "--offset", "--limit", "sample counts",
					   "resolved files or preprocessing"};
	rc = -1;
	for (size_t k = 0; k < sizeof same / sizeof same[0] && rc < 0; k++) {
		char vb[1024], vn[1024];
		dataset_field(rb, same[k], vb, sizeof vb);
		dataset_field(rn, same[k], vn, sizeof vn);
		if (strcmp(vb, vn) != 0)
			rc = cli_usage_error("compare", "%s and %s were made on different %s (dataset.%s %s vs %s)", files[0],
					     files[1], what[k], same[k], vb, vn);
	}
	if (rc < 0) {
		double drop = base - new;
		int pass = drop <= max_drop + 1e-9;
		printf("%s: top-1 %.2f%% -> %.2f%% (%s %.2f points; allowed drop %.2f)\n", pass ? "PASS" : "FAIL", base,
		       new, drop >= 0 ? "drop" : "gain", fabs(drop), max_drop);
		rc = pass ? 0 : QT_EXIT_FAIL;
	}
	cJSON_Delete(rb);
	cJSON_Delete(rn);
	return rc;
}
