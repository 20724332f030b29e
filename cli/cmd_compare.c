/* qtool compare: the CI gate between two eval reports. */
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
	"Reports made on different datasets are refused.\n";

/* Load a report and return its root (caller deletes), or NULL after printing why. */
static cJSON *load_report(const char *path, double *top1, const char **spec)
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
	const cJSON *ds = cJSON_GetObjectItemCaseSensitive(root, "dataset");
	const cJSON *sp = ds ? cJSON_GetObjectItemCaseSensitive(ds, "spec") : NULL;
	if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "qtool-eval-report") != 0) {
		cli_usage_error("compare", "%s: not a qtool eval report (\"format\" is not \"qtool-eval-report\")", path);
		cJSON_Delete(root);
		return NULL;
	}
	if (!cJSON_IsNumber(t1) || !isfinite(t1->valuedouble) || t1->valuedouble < 0 || t1->valuedouble > 100) {
		cli_usage_error("compare", "%s: metrics.top1 is missing or not a percentage", path);
		cJSON_Delete(root);
		return NULL;
	}
	*top1 = t1->valuedouble;
	*spec = cJSON_IsString(sp) ? sp->valuestring : "";
	return root;
}

int cmd_compare(int argc, char **argv)
{
	const char *files[2] = {NULL, NULL};
	int nf = 0;
	double max_drop = 0.5;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(compare_help, stdout);
			return 0;
		} else if (!strcmp(argv[i], "--max-drop")) {
			char *end;
			if (++i >= argc)
				return cli_usage_error("compare", "--max-drop needs a number of points");
			max_drop = strtod(argv[i], &end);
			if (*end || !isfinite(max_drop) || max_drop < 0)
				return cli_usage_error("compare", "--max-drop '%s' is not a non-negative number", argv[i]);
		} else if (argv[i][0] == '-') {
			return cli_usage_error("compare", "unknown option '%s' (see 'qtool compare --help')", argv[i]);
		} else if (nf < 2) {
			files[nf++] = argv[i];
		} else {
			return cli_usage_error("compare", "more than two reports given");
		}
	}
	if (nf != 2)
		return cli_usage_error("compare", "need BASE.json and NEW.json (see 'qtool compare --help')");
	double base, new;
	const char *sb, *sn;
	cJSON *rb = load_report(files[0], &base, &sb);
	if (!rb)
		return QT_EXIT_BAD_INPUT;
	cJSON *rn = load_report(files[1], &new, &sn);
	if (!rn) {
		cJSON_Delete(rb);
		return QT_EXIT_BAD_INPUT;
	}
	int rc;
	if (strcmp(sb, sn) != 0) {
		rc = cli_usage_error("compare", "%s and %s were made on different datasets (\"%s\" vs \"%s\")", files[0],
				     files[1], sb, sn);
	} else {
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
