/*
 * Throughput of the u8 x s8 GEMM kernels (reference and every kernel in
 * kernels.def this CPU can run) at shapes typical of small CNNs, raw int32 and
 * fused with requantization. One thread. GOPS = 2 * M * N * K / time, best
 * of several timed runs. Each optimized result is also compared with the
 * reference, so a benchmark never reports a wrong kernel.
 *
 *   build/<cfg>/bench_kernels [min_seconds_per_measurement]   (default 0.2)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"

static const struct qt_qgemm_kernel manifest[] = {
#define QT_QGEMM_KERNEL(name_, isa_, mr_, nr_, kr_, packed_size_, pack_, gemm_, gemm_requant_) \
	{.name = name_,                                                                       \
	 .isa = isa_,                                                                         \
	 .mr = mr_,                                                                           \
	 .nr = nr_,                                                                           \
	 .kr = kr_,                                                                           \
	 .packed_size = packed_size_,                                                         \
	 .pack = pack_,                                                                       \
	 .gemm = gemm_,                                                                       \
	 .gemm_requant = gemm_requant_},
#include "kernels/kernels.def"
#undef QT_QGEMM_KERNEL
	{.name = NULL},
};

struct shape {
	int M, N, K;
	const char *what;
};

static const struct shape shapes[] = {
	{3136, 64, 576, "3x3 conv 64->64 @56x56"},
	{64, 512, 784, "FC 784->512, batch 64"},
	{784, 128, 1152, "3x3 conv 128->128 @28x28"},
	{12544, 32, 27, "first 3x3 conv 3->32 @112x112"},
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rs = 12345;
static uint32_t rnd(void)
{
	rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
	return (uint32_t)(rs >> 11);
}

struct job {
	const struct qt_qgemm_kernel *k;
	const struct shape *s;
	const uint8_t *A;
	const void *pk;
	const int32_t *cs, *bias;
	const struct qt_rq *rq;
	int32_t *C;
	uint8_t *Y;
	int fused;
};

static void run(const struct job *j)
{
	const struct shape *s = j->s;
	if (j->fused)
		j->k->gemm_requant(s->M, s->N, s->K, j->A, (size_t)s->K, j->pk, 3, j->cs, j->bias, j->rq,
				   j->Y, (size_t)s->N);
	else
		j->k->gemm(s->M, s->N, s->K, j->A, (size_t)s->K, j->pk, j->C, (size_t)s->N);
}

/* Best-of-5 GOPS, each run repeated for at least min_s seconds. */
static double measure(const struct job *j, double min_s)
{
	double ops = 2.0 * j->s->M * j->s->N * j->s->K, best = 0;
	run(j); /* warm caches, fault in pages */
	for (int rep = 0; rep < 5; rep++) {
		int iters = 0;
		double t0 = now(), t;
		do {
			run(j);
			iters++;
			t = now() - t0;
		} while (t < min_s / 5);
		double g = ops * iters / t * 1e-9;
		if (g > best)
			best = g;
	}
	return best;
}

int main(int argc, char **argv)
{
	double min_s = argc > 1 ? atof(argv[1]) : 0.2;
	if (min_s <= 0)
		min_s = 0.2;
	const struct qt_kernels *active = qt_kernels_active();
	printf("active kernel set: %s (%s)\n", active ? active->isa_name : "none",
	       active ? active->qgemm->name : qt_error_msg());
	printf("%-26s %-32s %6s %5s %5s %10s %10s\n", "kernel", "shape", "M", "N", "K",
	       "GOPS raw", "GOPS fused");
	int bad = 0;
	for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
		const struct shape *s = &shapes[si];
		size_t na = (size_t)s->M * s->K, nb = (size_t)s->N * s->K, nc = (size_t)s->M * s->N;
		uint8_t *A = malloc(na), *Y = malloc(nc), *Yref = malloc(nc);
		int8_t *B = malloc(nb);
		int32_t *C = malloc(nc * sizeof *C), *Cref = malloc(nc * sizeof *C);
		int32_t *cs = malloc((size_t)s->N * sizeof *cs), *bias = malloc((size_t)s->N * sizeof *bias);
		int32_t *mult = malloc((size_t)s->N * sizeof *mult), *shift = malloc((size_t)s->N * sizeof *shift);
		if (!A || !Y || !Yref || !B || !C || !Cref || !cs || !bias || !mult || !shift) {
			fprintf(stderr, "bench_kernels: out of memory\n");
			return 1;
		}
		for (size_t i = 0; i < na; i++)
			A[i] = (uint8_t)rnd();
		for (size_t i = 0; i < nb; i++)
			B[i] = (int8_t)rnd();
		for (int n = 0; n < s->N; n++) {
			bias[n] = (int32_t)(rnd() % 20001) - 10000;
			int sh;
			qt_quantize_multiplier(1.0 / (300.0 * s->K) * (1 + n % 7), &mult[n], &sh);
			shift[n] = sh;
		}
		struct qt_rq rq = {.mult = mult, .shift = shift, .per_channel = 1, .zo = 128, .qmin = 0, .qmax = 255};

		for (int ki = -1; ki < (int)(sizeof manifest / sizeof manifest[0]) - 1; ki++) {
			const struct qt_qgemm_kernel *k = ki < 0 ? &qt_qgemm_u8s8_ref : &manifest[ki];
			if (!qt_isa_available(k->isa)) {
				printf("%-26s (skipped: %s not available)\n", k->name, qt_isa_name(k->isa));
				continue;
			}
			void *pk = malloc(k->packed_size(s->N, s->K) + 64);
			k->pack(s->N, s->K, B, (size_t)s->K, pk, cs);
			struct job j = {k, s, A, pk, cs, bias, &rq, C, Y, 0};
			double g_raw = measure(&j, min_s);
			j.fused = 1;
			double g_fused = measure(&j, min_s);
			if (ki < 0) {
				memcpy(Cref, C, nc * sizeof *C);
				memcpy(Yref, Y, nc);
			} else if (memcmp(C, Cref, nc * sizeof *C) || memcmp(Y, Yref, nc)) {
				printf("MISMATCH vs reference: %s\n", k->name);
				bad = 1;
			}
			printf("%-26s %-32s %6d %5d %5d %10.1f %10.1f\n", k->name, s->what, s->M, s->N, s->K,
			       g_raw, g_fused);
			fflush(stdout);
			free(pk);
		}
		free(A), free(Y), free(Yref), free(B), free(C), free(Cref), free(cs), free(bias);
		free(mult), free(shift);
	}
	return bad;
}
