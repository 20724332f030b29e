/*
 * ONNX backend conformance: runs every test in Debian's libonnx-testdata
 * whose ops are all supported, comparing outputs with rtol 1e-3, atol 1e-5
 * (exact for integer and bool outputs, NaN matches NaN).
 *
 *   conformance [--skip-list FILE] [--verbose] [--only SUBSTR] DATA_DIR
 *
 * A supported test may be skipped only through the skip list, which gives a
 * reason for each entry ("suite/test_name  reason..."). The last line is
 * "N passed, N failed, N skipped"; the exit status is 1 when any failed.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qtool/graph.h"
#include "qtool/onnx.h"
#include "qtool/rt.h"
#include "qtool/tensor.h"

static const char *suites[] = {"node", "simple", "pytorch-converted", "pytorch-operator"};

struct skip {
	char name[256];
	char reason[256];
	int used;
};
static struct skip *skips;
static int n_skips;

static void load_skip_list(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "conformance: cannot open skip list %s\n", path);
		exit(2);
	}
	char line[1024];
	int lineno = 0;
	while (fgets(line, sizeof line, f)) {
		lineno++;
		char *p = line;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '#' || *p == '\n' || !*p)
			continue;
		char name[256];
		int len = 0;
		if (sscanf(p, "%255s%n", name, &len) != 1)
			continue;
		char *reason = p + len;
		while (*reason == ' ' || *reason == '\t')
			reason++;
		reason[strcspn(reason, "\n")] = '\0';
		if (!*reason) {
			fprintf(stderr, "conformance: %s:%d: entry %s has no reason\n", path, lineno, name);
			exit(2);
		}
		skips = realloc(skips, (size_t)(n_skips + 1) * sizeof *skips);
		snprintf(skips[n_skips].name, sizeof skips[n_skips].name, "%s", name);
		snprintf(skips[n_skips].reason, sizeof skips[n_skips].reason, "%s", reason);
		skips[n_skips].used = 0;
		n_skips++;
	}
	fclose(f);
}

static struct skip *find_skip(const char *name)
{
	for (int i = 0; i < n_skips; i++)
		if (!strcmp(skips[i].name, name))
			return &skips[i];
	return NULL;
}

static int is_int_dtype(enum qt_dtype d)
{
	return d != QT_DTYPE_F32 && d != QT_DTYPE_F64 && d != QT_DTYPE_F16;
}

double qt_tensor_get_f64(const struct qt_tensor *t, int64_t i);

/* Compare; on mismatch write a reason into why and return 0. */
static int compare(const struct qt_tensor *got, const struct qt_tensor *want, char *why, size_t cap)
{
	char a[128], b[128];
	if (got->dtype != want->dtype) {
		snprintf(why, cap, "dtype %s, expected %s", qt_dtype_name(got->dtype), qt_dtype_name(want->dtype));
		return 0;
	}
	int same = got->rank == want->rank;
	for (int i = 0; same && i < got->rank; i++)
		same = got->dims[i] == want->dims[i];
	if (!same) {
		snprintf(why, cap, "shape %s, expected %s", qt_shape_str(a, sizeof a, got->rank, got->dims),
			 qt_shape_str(b, sizeof b, want->rank, want->dims));
		return 0;
	}
	int64_t n = qt_tensor_numel(want);
	if (is_int_dtype(want->dtype)) {
		if (memcmp(got->data, want->data, want->nbytes) != 0) {
			for (int64_t i = 0; i < n; i++)
				if (qt_tensor_get_f64(got, i) != qt_tensor_get_f64(want, i)) {
					snprintf(why, cap, "element %lld is %g, expected %g (exact)", (long long)i,
						 qt_tensor_get_f64(got, i), qt_tensor_get_f64(want, i));
					return 0;
				}
			snprintf(why, cap, "bytes differ");
			return 0;
		}
		return 1;
	}
	for (int64_t i = 0; i < n; i++) {
		double x = qt_tensor_get_f64(got, i), y = qt_tensor_get_f64(want, i);
		if (isnan(y) && isnan(x))
			continue;
		if (isinf(y) && x == y)
			continue;
		if (!(fabs(x - y) <= 1e-5 + 1e-3 * fabs(y))) {
			snprintf(why, cap, "element %lld is %.8g, expected %.8g", (long long)i, x, y);
			return 0;
		}
	}
	return 1;
}

static int file_exists(const char *p)
{
	struct stat s;
	return stat(p, &s) == 0;
}

enum outcome { PASS, FAIL, NOT_APPLICABLE };

static enum outcome run_test(const char *dir, char *why, size_t cap)
{
	char path[4096];
	struct qt_graph *g = NULL;
	snprintf(path, sizeof path, "%s/model.onnx", dir);
	enum qt_status st = qt_graph_load_onnx(path, &g);
	if (st) {
		snprintf(why, cap, "load: %s", qt_error_msg());
		return st == QT_E_UNSUPPORTED ? NOT_APPLICABLE : FAIL;
	}
	char unsup[512];
	if (qt_rt_unsupported_ops(g, unsup, sizeof unsup) > 0) {
		snprintf(why, cap, "unsupported ops: %s", unsup);
		qt_graph_free(g);
		return NOT_APPLICABLE;
	}
	struct qt_rt *rt = NULL;
	enum outcome res = PASS;
	if ((st = qt_rt_new(g, &rt)) != QT_OK) {
		snprintf(why, cap, "rt: %s", qt_error_msg());
		qt_graph_free(g);
		return FAIL;
	}
	int n_sets = 0;
	for (int set = 0; res == PASS; set++) {
		char sd[4096];
		snprintf(sd, sizeof sd, "%s/test_data_set_%d", dir, set);
		if (!file_exists(sd))
			break;
		n_sets++;
		struct qt_tensor ins[64], outs[64], want[64];
		memset(ins, 0, sizeof ins);
		memset(outs, 0, sizeof outs);
		memset(want, 0, sizeof want);
		int n_in = 0, n_want = 0;
		for (; n_in < 64; n_in++) {
			snprintf(path, sizeof path, "%s/input_%d.pb", sd, n_in);
			if (!file_exists(path))
				break;
			if (qt_tensor_read_pb(path, &ins[n_in], NULL, 0)) {
				snprintf(why, cap, "%s", qt_error_msg());
				res = FAIL;
				break;
			}
		}
		for (; res == PASS && n_want < 64; n_want++) {
			snprintf(path, sizeof path, "%s/output_%d.pb", sd, n_want);
			if (!file_exists(path))
				break;
			if (qt_tensor_read_pb(path, &want[n_want], NULL, 0)) {
				snprintf(why, cap, "%s", qt_error_msg());
				res = FAIL;
				break;
			}
		}
		if (res == PASS && n_in != g->n_inputs) {
			snprintf(why, cap, "test set has %d inputs, graph has %d", n_in, g->n_inputs);
			res = FAIL;
		}
		if (res == PASS && n_want != g->n_outputs) {
			snprintf(why, cap, "test set has %d outputs, graph has %d", n_want, g->n_outputs);
			res = FAIL;
		}
		if (res == PASS) {
			st = qt_rt_run(rt, ins, outs);
			if (st) {
				snprintf(why, cap, "run: %s", qt_error_msg());
				res = st == QT_E_UNSUPPORTED ? FAIL : FAIL;
			} else {
				for (int k = 0; k < n_want && res == PASS; k++) {
					char w[512];
					if (!compare(&outs[k], &want[k], w, sizeof w)) {
						snprintf(why, cap, "set %d output %d (\"%s\"): %s", set, k,
							 g->values[g->outputs[k]].name, w);
						res = FAIL;
					}
				}
			}
		}
		for (int k = 0; k < 64; k++) {
			qt_tensor_free(&ins[k]);
			qt_tensor_free(&outs[k]);
			qt_tensor_free(&want[k]);
		}
	}
	if (res == PASS && n_sets == 0) {
		snprintf(why, cap, "no test_data_set_*");
		res = FAIL;
	}
	qt_rt_free(rt);
	qt_graph_free(g);
	return res;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	const char *root = NULL, *only = NULL;
	int verbose = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--skip-list") && i + 1 < argc)
			load_skip_list(argv[++i]);
		else if (!strcmp(argv[i], "--verbose") || !strcmp(argv[i], "-v"))
			verbose = 1;
		else if (!strcmp(argv[i], "--only") && i + 1 < argc)
			only = argv[++i];
		else
			root = argv[i];
	}
	if (!root) {
		fprintf(stderr, "usage: conformance [--skip-list FILE] [--verbose] [--only SUBSTR] DATA_DIR\n");
		return 2;
	}
	int passed = 0, failed = 0, skipped = 0, na = 0;
	for (size_t s = 0; s < sizeof suites / sizeof suites[0]; s++) {
		char sdir[4096];
		snprintf(sdir, sizeof sdir, "%s/%s", root, suites[s]);
		DIR *d = opendir(sdir);
		if (!d) {
			fprintf(stderr, "conformance: cannot open %s (is libonnx-testdata installed? run 'make deps')\n",
				sdir);
			return 2;
		}
		char **names = NULL;
		int n = 0;
		for (struct dirent *e; (e = readdir(d));) {
			if (e->d_name[0] == '.')
				continue;
			names = realloc(names, (size_t)(n + 1) * sizeof *names);
			names[n++] = strdup(e->d_name);
		}
		closedir(d);
		qsort(names, (size_t)n, sizeof *names, cmp_names);
		for (int i = 0; i < n; i++) {
			char full[512], dir[4096], why[1024] = "";
			snprintf(full, sizeof full, "%s/%s", suites[s], names[i]);
			snprintf(dir, sizeof dir, "%s/%s", sdir, names[i]);
			free(names[i]);
			if (only && !strstr(full, only))
				continue;
			struct skip *sk = find_skip(full);
			enum outcome o = run_test(dir, why, sizeof why);
			if (o == NOT_APPLICABLE) {
				na++;
				if (verbose)
					printf("n/a  %s: %s\n", full, why);
				if (sk)
					sk->used = 1;
				continue;
			}
			if (sk) {
				sk->used = 1;
				skipped++;
				if (verbose)
					printf("SKIP %s: %s (%s)\n", full, sk->reason, o == PASS ? "would pass" : why);
				continue;
			}
			if (o == PASS) {
				passed++;
				if (verbose)
					printf("ok   %s\n", full);
			} else {
				failed++;
				printf("FAIL %s: %s\n", full, why);
			}
		}
		free(names);
	}
	for (int i = 0; i < n_skips; i++)
		if (!skips[i].used && !only)
			printf("note: skip-list entry %s matched no test\n", skips[i].name);
	printf("%d not applicable (ops or dtypes qtool does not implement; run with --verbose to list)\n", na);
	printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
	free(skips);
	return failed ? 1 : 0;
}
