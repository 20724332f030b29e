/*
 * Time of GPTQ for one Gemm: W is C x K, the input X is n x K (random
 * normal), H = 2 X^T X / n. Times, in wall-clock seconds (best of `runs`):
 * the accumulation of H (X to double, DSYRK of its lower triangle), the
 * absmax scales, and the GPTQ step itself (qt_gptq on a fresh copy of H,
 * int4 [-7, 7], one scale per row). Also prints the process CPU time of the
 * best GPTQ run, the OpenBLAS thread count and an FNV-1a hash of the codes,
 * so runs with different OPENBLAS_NUM_THREADS can be compared byte for byte.
 *
 *   build/<cfg>/bench_gptq [C K n [runs [act_order]]]   (default 4096 4096 2048 3 0)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "quant/gptq.h"

static double clock_s(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* splitmix64 and a Box-Muller normal: fixed seed, same data every run. */
static uint64_t sm_state = 0x9e3779b97f4a7c15ULL;
static uint64_t sm_next(void)
{
	uint64_t z = (sm_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}
static float normal(void)
{
	double u = ((double)(sm_next() >> 11) + 0.5) / 9007199254740992.0;
	double v = (double)(sm_next() >> 11) / 9007199254740992.0;
	return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

int main(int argc, char **argv)
{
	int64_t C = argc > 1 ? atoll(argv[1]) : 4096, K = argc > 2 ? atoll(argv[2]) : 4096;
	int64_t n = argc > 3 ? atoll(argv[3]) : 2048;
	int runs = argc > 4 ? atoi(argv[4]) : 3, act = argc > 5 ? atoi(argv[5]) : 0;
	if (C < 1 || K < 1 || n < 1 || runs < 1) {
		fprintf(stderr, "usage: bench_gptq [C K n [runs [act_order]]]\n");
		return 2;
	}
	float *X = malloc((size_t)(n * K) * sizeof *X), *W = malloc((size_t)(C * K) * sizeof *W);
	double *Xd = malloc((size_t)(n * K) * sizeof *Xd), *H = malloc((size_t)(K * K) * sizeof *H);
	double *Hw = malloc((size_t)(K * K) * sizeof *Hw);
	float *scale = malloc((size_t)C * sizeof *scale);
	int32_t *codes = malloc((size_t)(C * K) * sizeof *codes);
	if (!X || !W || !Xd || !H || !Hw || !scale || !codes) {
		fprintf(stderr, "bench_gptq: out of memory\n");
		return 1;
	}
	for (int64_t i = 0; i < n * K; i++)
		X[i] = normal();
	for (int64_t i = 0; i < C * K; i++)
		W[i] = 0.02f * normal();

	double t_h = 1e30, t_s = 1e30, t_g = 1e30, cpu_g = 0;
	for (int r = 0; r < runs; r++) {
		double t0 = clock_s(CLOCK_MONOTONIC);
		for (int64_t i = 0; i < n * K; i++)
			Xd[i] = X[i];
		cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, (int)K, (int)n, 2.0 / (double)n, Xd, (int)K, 0.0, H,
			    (int)K);
		t_h = fmin(t_h, clock_s(CLOCK_MONOTONIC) - t0);
	}
	struct qt_wgrid g = {.C = C, .K = K, .group_size = K, .qmin = -7, .qmax = 7, .scale = scale};
	for (int r = 0; r < runs; r++) {
		double t0 = clock_s(CLOCK_MONOTONIC);
		if (qt_wscale_absmax(W, &g, "bench") != QT_OK) {
			fprintf(stderr, "bench_gptq: %s\n", qt_error_msg());
			return 1;
		}
		t_s = fmin(t_s, clock_s(CLOCK_MONOTONIC) - t0);
	}
	struct qt_gptq_opts o = {.act_order = act, .name = "bench"};
	struct qt_gptq_stats st;
	for (int r = 0; r < runs; r++) {
		memcpy(Hw, H, (size_t)(K * K) * sizeof *H);
		double c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID), t0 = clock_s(CLOCK_MONOTONIC);
		if (qt_gptq(W, Hw, &g, &o, codes, &st) != QT_OK) {
			fprintf(stderr, "bench_gptq: %s\n", qt_error_msg());
			return 1;
		}
		double t = clock_s(CLOCK_MONOTONIC) - t0;
		if (t < t_g)
			t_g = t, cpu_g = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
	}
	uint64_t h = 0xcbf29ce484222325ULL;
	const unsigned char *b = (const unsigned char *)codes;
	for (size_t i = 0; i < (size_t)(C * K) * sizeof *codes; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	printf("GPTQ %lldx%lld over %lld rows (int4, per row%s, %d BLAS threads, best of %d): "
	       "H accumulation %.2f s, absmax scales %.2f s, GPTQ step %.2f s (%.2f s CPU), codes fnv1a %016llx\n",
	       (long long)C, (long long)K, (long long)n, act ? ", act order" : "", openblas_get_num_threads(), runs,
	       t_h, t_s, t_g, cpu_g, (unsigned long long)h);
	free(X), free(W), free(Xd), free(H), free(Hw), free(scale), free(codes);
	return 0;
}
