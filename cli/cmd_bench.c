/* qtool bench: time a model's runtime on random inputs (speed, not accuracy). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "qtool/model.h"
#include "qtool/rt.h"

static const char bench_help[] =
	"usage: qtool bench MODEL [--batch B] [--iters N] [--warmup W]\n\n"
	"Times MODEL in the runtime that `qtool eval` uses (an ONNX model: the FP32\n"
	"runtime; a .qmod: the integer runtime) on one batch of random inputs\n"
	"(uniform in [-1, 1), fixed seed) of the model's input shape with batch B.\n"
	"Prints the milliseconds per batch (median, min, mean) and samples per second\n"
	"at the median. Threads: QT_THREADS (integer runtime) and OPENBLAS_NUM_THREADS\n"
	"(FP32 runtime); kernels: QT_ISA. The FP32 runtime's OpenBLAS kernel set is\n"
	"printed ('blas:'); on a CPU that OpenBLAS does not know, qtool sets\n"
	"OPENBLAS_CORETYPE to the kernels the CPU supports unless it is set already.\n\n"
	"  --batch B    samples per batch (default 1)\n"
	"  --iters N    timed runs (default 20)\n"
	"  --warmup W   untimed runs first (default 2)\n";

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int cmd_bench(int argc, char **argv)
{
	const char *model = NULL;
	long batch = 1, iters = 20, warmup = 2;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		long *dst = NULL, lo = 0;
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(bench_help, stdout);
			return 0;
		} else if (!strcmp(a, "--batch")) {
			dst = &batch, lo = 1;
		} else if (!strcmp(a, "--iters")) {
			dst = &iters, lo = 1;
		} else if (!strcmp(a, "--warmup")) {
			dst = &warmup, lo = 0;
		} else if (a[0] == '-') {
			return cli_usage_error("bench", "unknown option '%s' (see 'qtool bench --help')", a);
		} else if (!model) {
			model = a;
			continue;
		} else {
			return cli_usage_error("bench", "more than one model given ('%s')", a);
		}
		if (++i >= argc || cli_parse_long(argv[i], lo, 1000000, dst))
			return cli_usage_error("bench", "%s needs an integer in [%ld, 1000000]", a, lo);
	}
	if (!model)
		return cli_usage_error("bench", "no model given (see 'qtool bench --help')");

	struct qt_model *m = NULL;
	struct qt_tensor x = {0}, y = {0};
	double *ms = NULL;
	int rc = 0;
	enum qt_status st = qt_model_open(model, &m);
	if (st)
		return cli_status_error("bench", st);
	const struct qt_graph *g = qt_model_graph(m);
	int64_t dims[QT_MAX_RANK];
	int rank = qt_graph_input_dims(g, 0, batch, dims);
	if (rank < 1) {
		rc = cli_usage_error("bench", "%s: input \"%s\" declares no shape", model, g->values[g->inputs[0]].name);
		goto out;
	}
	if ((st = qt_tensor_alloc(&x, QT_DTYPE_F32, rank, dims)) != QT_OK) {
		rc = cli_status_error("bench", st);
		goto out;
	}
	ms = malloc((size_t)iters * sizeof *ms);
	if (!ms) {
		rc = cli_usage_error("bench", "out of memory");
		goto out;
	}
	/* 32-bit LCG (Numerical Recipes constants), top 24 bits -> [-1, 1). */
	uint32_t seed = 12345;
	float *xp = x.data;
	for (int64_t i = 0, n = qt_tensor_numel(&x); i < n; i++) {
		seed = seed * 1664525u + 1013904223u;
		xp[i] = (float)(seed >> 8) / (float)(1 << 23) - 1.0f;
	}
	for (long it = -warmup; it < iters; it++) {
		double t0 = now_ms();
		st = qt_model_run(m, &x, &y);
		double t1 = now_ms();
		qt_tensor_free(&y);
		if (st) {
			qt_error_prefix(st, "%s", model);
			rc = cli_status_error("bench", st);
			goto out;
		}
		if (it >= 0)
			ms[it] = t1 - t0;
	}
	double sum = 0;
	for (long i = 0; i < iters; i++)
		sum += ms[i];
	qsort(ms, (size_t)iters, sizeof *ms, cmp_double);
	double med = iters % 2 ? ms[iters / 2] : 0.5 * (ms[iters / 2 - 1] + ms[iters / 2]);
	printf("model: %s (%s)\n", model, qt_model_engine(m));
	printf("blas: OpenBLAS %s kernels\n", qt_rt_blas_core());
	printf("batch: %ld, iterations: %ld, warmup: %ld\n", batch, iters, warmup);
	printf("ms per batch: median %.3f, min %.3f, mean %.3f\n", med, ms[0], sum / (double)iters);
	printf("samples/s: %.1f\n", (double)batch * 1e3 / med);
out:
	free(ms);
	qt_tensor_free(&x);
	qt_model_free(m);
	return rc;
}
