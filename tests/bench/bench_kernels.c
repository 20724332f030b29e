/*
 * Throughput of the u8 x s8 GEMM kernels (reference and every kernel in
 * kernels.def this CPU can run) at shapes typical of small CNNs: raw int32,
 * fused with requantization, and grouped weights (G = 32) where the kernel
 * has a grouped variant. One thread. GOPS = 2 * M * N * K / time, best
 * of several timed runs. Time is this thread's CPU time, so numbers hold up
 * on a shared machine (time slices lost to other processes are not counted).
 * Each optimized result is also compared with the reference, so a benchmark
 * never reports a wrong kernel.
 *
 *   build/<cfg>/bench_kernels [min_seconds_per_measurement]   (default 0.2)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"

static const struct qt_qgemm_kernel manifest[] = {
#define QT_QGEMM_KERNEL(name_, isa_, mr_, nr_, kr_, packed_size_, pack_, gemm_, gemm_requant_, \
			group_)                                                                   \
	{.name = name_,                                                                       \
	 .isa = isa_,                                                                         \
	 .mr = mr_,                                                                           \
	 .nr = nr_,                                                                           \
	 .kr = kr_,                                                                           \
	 .packed_size = packed_size_,                                                         \
	 .pack = pack_,                                                                       \
	 .gemm = gemm_,                                                                       \
	 .gemm_requant = gemm_requant_,                                                      \
	 .gemm_group_requant = group_},
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
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
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
	const int32_t *csg, *ratio;
	const int64_t *bias64;
	int32_t *C;
	uint8_t *Y;
	int fused; /* 0 raw, 1 fused, 2 grouped */
};

#define GROUP 32

static void run(const struct job *j)
{
	const struct shape *s = j->s;
	if (j->fused == 2)
		j->k->gemm_group_requant(s->M, s->N, s->K, GROUP, j->A, (size_t)s->K, 3, j->pk, j->csg,
					 j->ratio, j->bias64, j->rq, j->Y, (size_t)s->N);
	else if (j->fused)
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

/* Quantized Add of a ResNet's residual (64 x 56 x 56 codes): Gelem/s, each
 * kernel checked against the reference. */
static int bench_qadd(double min_s)
{
	enum { NE = 64 * 56 * 56 };
	static uint8_t a[NE], b[NE], y[NE], yref[NE];
	struct qt_qadd_params p;
	int bad = 0;
	for (int i = 0; i < NE; i++)
		a[i] = (uint8_t)rnd(), b[i] = (uint8_t)rnd();
	if (qt_qadd_prepare(0.031, 117, 0.047, 131, 0.06, 3, 3, 255, &p) != QT_OK)
		return 1;
	printf("\n%-26s %-32s %10s\n", "kernel", "shape", "Gelem/s");
	for (int k = 0; qt_qadd_kernels[k].name; k++) {
		if (!qt_isa_available(qt_qadd_kernels[k].isa)) {
			printf("%-26s (skipped: %s not available)\n", qt_qadd_kernels[k].name,
			       qt_isa_name(qt_qadd_kernels[k].isa));
			continue;
		}
		double best = 0;
		for (int rep = 0; rep < 5; rep++) {
			long iters = 0;
			double t0 = now(), t;
			do {
				qt_qadd_kernels[k].fn(NE, a, 1, b, 1, y, &p);
				iters++;
				t = now() - t0;
			} while (t < min_s / 5);
			double g = (double)NE * iters / t * 1e-9;
			best = g > best ? g : best;
		}
		if (k == 0) {
			memcpy(yref, y, NE);
		} else if (memcmp(y, yref, NE)) {
			printf("MISMATCH vs reference: %s\n", qt_qadd_kernels[k].name);
			bad = 1;
		}
		printf("%-26s %-32s %10.2f\n", qt_qadd_kernels[k].name, "residual Add 64x56x56", best);
	}
	return bad;
}

int main(int argc, char **argv)
{
	double min_s = argc > 1 ? atof(argv[1]) : 0.2;
	if (min_s <= 0)
		min_s = 0.2;
	const struct qt_kernels *active = qt_kernels_active();
	printf("active kernel set: %s (%s)\n", active ? active->isa_name : "none",
	       active ? active->qgemm->name : qt_error_msg());
	printf("%-26s %-32s %6s %5s %5s %10s %10s %10s\n", "kernel", "shape", "M", "N", "K",
	       "GOPS raw", "GOPS fused", "GOPS G=32");
	int bad = 0;
	for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
		const struct shape *s = &shapes[si];
		size_t na = (size_t)s->M * s->K, nb = (size_t)s->N * s->K, nc = (size_t)s->M * s->N;
		uint8_t *A = malloc(na), *Y = malloc(nc), *Yref = malloc(nc);
		int8_t *B = malloc(nb);
		int32_t *C = malloc(nc * sizeof *C), *Cref = malloc(nc * sizeof *C);
		int32_t *cs = malloc((size_t)s->N * sizeof *cs), *bias = malloc((size_t)s->N * sizeof *bias);
		int32_t *mult = malloc((size_t)s->N * sizeof *mult), *shift = malloc((size_t)s->N * sizeof *shift);
		size_t ng = ((size_t)s->K + GROUP - 1) / GROUP;
		int32_t *csg = malloc(ng * s->N * sizeof *csg), *ratio = malloc(ng * s->N * sizeof *ratio);
		int64_t *bias64 = malloc((size_t)s->N * sizeof *bias64);
		uint8_t *Yg = malloc(nc), *Ygref = malloc(nc);
		if (!A || !Y || !Yref || !B || !C || !Cref || !cs || !bias || !mult || !shift || !csg ||
		    !ratio || !bias64 || !Yg || !Ygref) {
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
		qt_colsum_groups_s8__ref(s->N, s->K, GROUP, B, (size_t)s->K, csg);
		for (size_t i = 0; i < ng * s->N; i++)
			ratio[i] = (int32_t)(rnd() % 32768);
		for (int n = 0; n < s->N; n++)
			bias64[n] = (int64_t)bias[n] << 15;
		/* grouped sums are ~2^15 larger: same outputs need n + 15 */
		int32_t *gshift = malloc((size_t)s->N * sizeof *gshift);
		if (!gshift)
			return 1;
		for (int n = 0; n < s->N; n++)
			gshift[n] = shift[n] + 15 <= 62 ? shift[n] + 15 : 62;
		struct qt_rq grq = rq;
		grq.shift = gshift;

		for (int ki = -1; ki < (int)(sizeof manifest / sizeof manifest[0]) - 1; ki++) {
			const struct qt_qgemm_kernel *k = ki < 0 ? &qt_qgemm_u8s8_ref : &manifest[ki];
			if (!qt_isa_available(k->isa)) {
				printf("%-26s (skipped: %s not available)\n", k->name, qt_isa_name(k->isa));
				continue;
			}
			void *pk = malloc(k->packed_size(s->N, s->K) + 64);
			k->pack(s->N, s->K, B, (size_t)s->K, pk, cs);
			struct job j = {k, s, A, pk, cs, bias, &rq, csg, ratio, bias64, C, Y, 0};
			double g_raw = measure(&j, min_s);
			j.fused = 1;
			double g_fused = measure(&j, min_s);
			double g_group = 0;
			if (k->gemm_group_requant) {
				struct job jg = j;
				jg.fused = 2;
				jg.rq = &grq;
				jg.Y = Yg;
				g_group = measure(&jg, min_s);
			}
			if (ki < 0) {
				memcpy(Cref, C, nc * sizeof *C);
				memcpy(Yref, Y, nc);
				memcpy(Ygref, Yg, nc);
			} else if (memcmp(C, Cref, nc * sizeof *C) || memcmp(Y, Yref, nc) ||
				   (k->gemm_group_requant && memcmp(Yg, Ygref, nc))) {
				printf("MISMATCH vs reference: %s\n", k->name);
				bad = 1;
			}
			char gbuf[16] = "-";
			if (k->gemm_group_requant)
				snprintf(gbuf, sizeof gbuf, "%.1f", g_group);
			printf("%-26s %-32s %6d %5d %5d %10.1f %10.1f %10s\n", k->name, s->what, s->M, s->N,
			       s->K, g_raw, g_fused, gbuf);
			fflush(stdout);
			free(pk);
		}
		free(A), free(Y), free(Yref), free(B), free(C), free(Cref), free(cs), free(bias);
		free(mult), free(shift), free(csg), free(ratio), free(bias64), free(Yg), free(Ygref);
		free(gshift);
	}
	bad |= bench_qadd(min_s);
	return bad;
}
