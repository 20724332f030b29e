/*
 * Integer kernels: every optimized kernel in kernels.def against the
 * reference, bit for bit, over odd sizes, extreme zero points and values; the
 * rounding rule against an independent __int128 computation; the multiplier
 * conversion; grouped weights; Add/Mul; sub-byte packing; dispatch.
 *
 * Every random case comes from a fixed seed that failure messages print.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

/* ---- helpers --------------------------------------------------------- */

struct rng {
	uint64_t s;
};

static uint64_t rnext(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi] (inclusive; hi - lo < 2^63). */
static int64_t rrange(struct rng *r, int64_t lo, int64_t hi)
{
	uint64_t span = (uint64_t)hi - (uint64_t)lo + 1;
	return (int64_t)((uint64_t)lo + (span ? rnext(r) % span : rnext(r)));
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	cr_assert(p, "out of memory (%zu bytes)", n);
	return p;
}

/* The manifest, as the dispatcher sees it. */
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

/* Kernels this machine can run; logs the ones it cannot. */
static int runnable(const struct qt_qgemm_kernel *k)
{
	if (qt_isa_available(k->isa))
		return 1;
	cr_log_warn("skipping %s: %s not available on this CPU", k->name, qt_isa_name(k->isa));
	return 0;
}

/* floor((x * m + 2^(n-1)) / 2^n) with __int128, written independently of
 * kernels.h (truncating division, then fixed to floor). */
static __int128 rule128(__int128 x, int32_t m, int n)
{
	__int128 num = x * m + ((__int128)1 << (n - 1));
	__int128 den = (__int128)1 << n;
	__int128 q = num / den;
	if (num % den != 0 && num < 0)
		q -= 1;
	return q;
}

static uint8_t clamp_out(__int128 y, int32_t zo, int32_t qmin, int32_t qmax)
{
	__int128 v = y + zo;
	return (uint8_t)(v < qmin ? qmin : v > qmax ? qmax : v);
}

/* A random valid (m, n): mostly multipliers that spread outputs over the
 * range for accumulators of about `mag`, sometimes extremes. */
static void rand_mult(struct rng *r, double mag, int32_t *m, int32_t *n)
{
	int kind = (int)rrange(r, 0, 9);
	if (kind == 0) {
		*m = 0;
		*n = (int32_t)rrange(r, 1, 62);
	} else if (kind == 1) {
		*m = (int32_t)rrange(r, INT32_C(1) << 30, INT32_MAX);
		*n = (int32_t)rrange(r, 1, 62);
	} else if (kind == 2) {
		*m = rrange(r, 0, 1) ? INT32_MAX : INT32_C(1) << 30;
		*n = rrange(r, 0, 1) ? 1 : 62;
	} else {
		double real = 64.0 / (mag + 1) * exp2((double)rrange(r, -4000, 4000) / 1000.0);
		real = fmax(0x1p-32, fmin(real, 0x1p29));
		int nn;
		cr_assert_eq(qt_quantize_multiplier(real, m, &nn), QT_OK, "%s", qt_error_msg());
		*n = nn;
	}
}

/* ---- qgemm: raw int32 ------------------------------------------------ */

static const int K_LIST[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 63, 64, 65, 300};

static void sizes(int tile, int out[5])
{
	out[0] = 1;
	out[1] = tile - 1 > 0 ? tile - 1 : 2;
	out[2] = tile;
	out[3] = tile + 1;
	out[4] = 2 * tile + 1;
}

/* Fill A/B; mode 0 random, 1 all 255 x all -128, 2 all 255 x all 127,
 * 3 all 0 x all -128, 4 small (A in [0, 3], B in [-2, 2]: small accumulators
 * of both signs, so halving multipliers hit exact ties unclamped). */
static void fill(struct rng *r, int mode, uint8_t *A, size_t na, int8_t *B, size_t nb)
{
	for (size_t i = 0; i < na; i++)
		A[i] = mode == 0 ? (uint8_t)rrange(r, 0, 255) : mode == 4 ? (uint8_t)rrange(r, 0, 3)
		     : mode == 3 ? 0 : 255;
	for (size_t i = 0; i < nb; i++)
		B[i] = mode == 0 ? (int8_t)rrange(r, -128, 127) : mode == 4 ? (int8_t)rrange(r, -2, 2)
		     : mode == 2 ? 127 : -128;
}

static void check_raw(const struct qt_qgemm_kernel *k, int M, int N, int K, int mode,
		      uint64_t seed)
{
	struct rng r = {seed};
	/* odd seeds: lda == K, so ASan sees any read past the last row's end */
	size_t lda = (size_t)K + (seed & 1 ? 0 : 5), ldb = (size_t)K + 3, ldc = (size_t)N + 2;
	uint8_t *A = xmalloc((size_t)M * lda);
	int8_t *B = xmalloc((size_t)N * ldb);
	fill(&r, mode, A, (size_t)M * lda, B, (size_t)N * ldb);
	void *pk = xmalloc(k->packed_size(N, K));
	void *pr = xmalloc(qt_qgemm_packed_size_u8s8__ref(N, K));
	int32_t *csk = xmalloc(sizeof(int32_t) * (size_t)N), *csr = xmalloc(sizeof(int32_t) * (size_t)N);
	k->pack(N, K, B, ldb, pk, csk);
	qt_qgemm_pack_u8s8__ref(N, K, B, ldb, pr, csr);
	for (int n = 0; n < N; n++)
		cr_assert_eq(csk[n], csr[n], "%s pack N=%d K=%d seed=%llu: colsum[%d] %d != ref %d",
			     k->name, N, K, (unsigned long long)seed, n, csk[n], csr[n]);
	int32_t *Ck = xmalloc(sizeof(int32_t) * (size_t)M * ldc);
	int32_t *Cr = xmalloc(sizeof(int32_t) * (size_t)M * ldc);
	for (size_t i = 0; i < (size_t)M * ldc; i++)
		Ck[i] = Cr[i] = 0x5a5a5a5a; /* sentinel in the row padding */
	k->gemm(M, N, K, A, lda, pk, Ck, ldc);
	qt_qgemm_u8s8__ref(M, N, K, A, lda, pr, Cr, ldc);
	for (int m = 0; m < M; m++)
		for (size_t n = 0; n < ldc; n++)
			cr_assert_eq(Ck[m * ldc + n], Cr[m * ldc + n],
				     "%s M=%d N=%d K=%d mode=%d seed=%llu: C[%d][%zu] = %d, ref %d",
				     k->name, M, N, K, mode, (unsigned long long)seed, m, n,
				     Ck[m * ldc + n], Cr[m * ldc + n]);
	free(A), free(B), free(pk), free(pr), free(csk), free(csr), free(Ck), free(Cr);
}

Test(qgemm, raw_matches_ref_odd_sizes)
{
	for (const struct qt_qgemm_kernel *k = manifest; k->name; k++) {
		if (!runnable(k))
			continue;
		int Ms[5], Ns[5];
		sizes(k->mr, Ms);
		sizes(k->nr, Ns);
		uint64_t seed = 1000;
		for (int i = 0; i < 5; i++)
			for (int j = 0; j < 5; j++)
				for (size_t t = 0; t < sizeof K_LIST / sizeof K_LIST[0]; t++)
					check_raw(k, Ms[i], Ns[j], K_LIST[t], 0, seed++);
	}
}

Test(qgemm, raw_zero_sizes_are_noops)
{
	for (const struct qt_qgemm_kernel *k = manifest; k->name; k++) {
		if (!runnable(k))
			continue;
		check_raw(k, 0, 5, 7, 0, 7);
		check_raw(k, 5, 0, 7, 0, 8);
	}
}

/* ---- qgemm: fused requantization -------------------------------------- */

struct rq_case {
	int32_t za, zo, qmin, qmax;
	int per_channel;
	int bias_kind; /* 0 none, 1 small, 2 full int32, 3 +-INT32 extremes */
	int32_t fixed_m, fixed_n; /* if fixed_n: every channel uses (fixed_m, fixed_n) */
};

static void check_rq(const struct qt_qgemm_kernel *k, int M, int N, int K, int mode,
		     const struct rq_case *rc, uint64_t seed)
{
	struct rng r = {seed};
	size_t lda = (size_t)K + (seed & 1), ldb = (size_t)K + 2, ldy = (size_t)N + 3, ldc = (size_t)N;
	uint8_t *A = xmalloc((size_t)M * lda);
	int8_t *B = xmalloc((size_t)N * ldb);
	fill(&r, mode, A, (size_t)M * lda, B, (size_t)N * ldb);
	void *pk = xmalloc(k->packed_size(N, K));
	void *pr = xmalloc(qt_qgemm_packed_size_u8s8__ref(N, K));
	int32_t *cs = xmalloc(sizeof(int32_t) * (size_t)N), *cs2 = xmalloc(sizeof(int32_t) * (size_t)N);
	k->pack(N, K, B, ldb, pk, cs);
	qt_qgemm_pack_u8s8__ref(N, K, B, ldb, pr, cs2);

	int nch = rc->per_channel ? N : 1;
	int32_t *mult = xmalloc(sizeof(int32_t) * (size_t)nch), *shift = xmalloc(sizeof(int32_t) * (size_t)nch);
	double mag = 128.0 * 128.0 * sqrt((double)K + 1);
	for (int c = 0; c < nch; c++) {
		rand_mult(&r, mag, &mult[c], &shift[c]);
		if (rc->fixed_n)
			mult[c] = rc->fixed_m, shift[c] = rc->fixed_n;
	}
	int32_t *bias = NULL;
	if (rc->bias_kind) {
		bias = xmalloc(sizeof(int32_t) * (size_t)N);
		for (int n = 0; n < N; n++) {
			if (rc->bias_kind == 1)
				bias[n] = (int32_t)rrange(&r, -100000, 100000);
			else if (rc->bias_kind == 2)
				bias[n] = (int32_t)rrange(&r, INT32_MIN, INT32_MAX);
			else
				bias[n] = rrange(&r, 0, 1) ? INT32_MAX : INT32_MIN;
		}
	}
	struct qt_rq rq = {.mult = mult, .shift = shift, .per_channel = rc->per_channel,
			   .zo = rc->zo, .qmin = rc->qmin, .qmax = rc->qmax};
	cr_assert(qt_rq_valid(&rq, N));

	uint8_t *Yk = xmalloc((size_t)M * ldy), *Yr = xmalloc((size_t)M * ldy), *Y2 = xmalloc((size_t)M * ldy);
	memset(Yk, 0xa5, (size_t)M * ldy);
	memset(Yr, 0xa5, (size_t)M * ldy);
	memset(Y2, 0xa5, (size_t)M * ldy);
	k->gemm_requant(M, N, K, A, lda, pk, rc->za, cs, bias, &rq, Yk, ldy);
	qt_qgemm_requant_u8s8__ref(M, N, K, A, lda, pr, rc->za, cs2, bias, &rq, Yr, ldy);
	/* the reference composed of its parts must agree with itself */
	int32_t *C = xmalloc(sizeof(int32_t) * (size_t)M * ldc);
	qt_qgemm_u8s8__ref(M, N, K, A, lda, pr, C, ldc);
	qt_requant_q31__ref(M, N, C, ldc, rc->za, cs2, bias, &rq, Y2, ldy);
	for (int m = 0; m < M; m++) {
		for (size_t n = 0; n < ldy; n++) {
			size_t i = m * ldy + n;
			cr_assert_eq(Yr[i], Y2[i], "ref fused != ref composed at [%d][%zu] seed=%llu", m,
				     n, (unsigned long long)seed);
			cr_assert_eq(Yk[i], Yr[i],
				     "%s M=%d N=%d K=%d mode=%d za=%d zo=%d clamp=[%d,%d] pc=%d bias=%d "
				     "seed=%llu: Y[%d][%zu] = %d, ref %d",
				     k->name, M, N, K, mode, rc->za, rc->zo, rc->qmin, rc->qmax,
				     rc->per_channel, rc->bias_kind, (unsigned long long)seed, m, n, Yk[i],
				     Yr[i]);
		}
	}
	free(A), free(B), free(pk), free(pr), free(cs), free(cs2), free(mult), free(shift);
	free(bias), free(Yk), free(Yr), free(Y2), free(C);
}

static const int K_LIST_RQ[] = {1, 3, 4, 7, 8, 17, 63, 65, 300};

Test(qgemm, requant_matches_ref_odd_sizes)
{
	const int32_t zps[] = {0, 255, 77};
	for (const struct qt_qgemm_kernel *k = manifest; k->name; k++) {
		if (!runnable(k))
			continue;
		int Ms[5], Ns[5];
		sizes(k->mr, Ms);
		sizes(k->nr, Ns);
		uint64_t seed = 5000;
		for (int i = 0; i < 5; i++) {
			for (int j = 0; j < 5; j++) {
				for (size_t t = 0; t < sizeof K_LIST_RQ / sizeof K_LIST_RQ[0]; t++) {
					struct rng r = {seed};
					struct rq_case rc = {
						.za = zps[rrange(&r, 0, 2)],
						.zo = zps[rrange(&r, 0, 2)],
						.per_channel = (int)rrange(&r, 0, 1),
						.bias_kind = (int)rrange(&r, 0, 3),
					};
					int clamp = (int)rrange(&r, 0, 2);
					rc.qmin = clamp == 0 ? 0 : clamp == 1 ? 0 : (int32_t)rrange(&r, 0, 100);
					rc.qmax = clamp == 0 ? 255 : clamp == 1 ? 15 : (int32_t)rrange(&r, 150, 255);
					check_rq(k, Ms[i], Ns[j], K_LIST_RQ[t], 0, &rc, seed++);
				}
			}
		}
	}
}

/* Every zero point / clamp / bias / granularity combination on one shape. */
Test(qgemm, requant_extreme_zero_points)
{
	const int32_t zps[] = {0, 1, 128, 254, 255};
	for (const struct qt_qgemm_kernel *k = manifest; k->name; k++) {
		if (!runnable(k))
			continue;
		uint64_t seed = 9000;
		for (int a = 0; a < 5; a++)
			for (int o = 0; o < 5; o++)
				for (int pc = 0; pc < 2; pc++)
					for (int bk = 0; bk < 4; bk++) {
						struct rq_case rc = {zps[a], zps[o], 0, 255, pc, bk, 0, 0};
						check_rq(k, k->mr + 1, k->nr + 1, 37, 0, &rc, seed++);
						rc.qmin = 3, rc.qmax = 15;
						check_rq(k, 2, k->nr - 1, 9, 0, &rc, seed++);
					}
	}
}

/* Multipliers 2^-1 .. 2^-4 on small accumulators of both signs: many exact
 * ties (x.5), which must round toward +infinity in every kernel. */
Test(qgemm, requant_exact_ties_negative_acc)
{
	for (const struct qt_qgemm_kernel *k = manifest; k->name; k++) {
		if (!runnable(k))
			continue;
		uint64_t seed = 12000;
		for (int n = 31; n <= 34; n++)
			for (int za = 0; za <= 3; za++) {
				struct rq_case rc = {za, 128, 0, 255, 0, 0, INT32_C(1) << 30, n};
				check_rq(k, 2 * k->mr + 1, 2 * k->nr + 1, 37, 4, &rc, seed++);
			}
	}
}

/* All 255 x all -128 (and friends) at the largest K: C and acc at the int32
 * limit, 65535 * 32640 = 2139062400. */
Test(qgemm, extreme_values_k65535, .timeout = 120)
{
	const int K = QT_QGEMM_MAX_K;
	for (const struct qt_qgemm_kernel *k = manifest; k->name; k++) {
		if (!runnable(k))
			continue;
		for (int mode = 1; mode <= 3; mode++)
			check_raw(k, k->mr + 1, k->nr + 1, K, mode, 42);
		struct rq_case rc[] = {
			{0, 0, 0, 255, 0, 0, 0, 0}, {255, 255, 0, 255, 1, 1, 0, 0},
			{255, 0, 0, 255, 0, 3, 0, 0}, {0, 128, 0, 255, 1, 2, 0, 0},
		};
		for (int mode = 1; mode <= 3; mode++)
			for (size_t i = 0; i < sizeof rc / sizeof rc[0]; i++)
				check_rq(k, 3, k->nr + 1, K, mode, &rc[i], 43 + i);
	}
	/* the reference itself against the closed form */
	uint8_t *A = xmalloc(K);
	int8_t *B = xmalloc(K);
	int32_t C, cs;
	memset(A, 255, K);
	memset(B, -128, K);
	qt_qgemm_u8s8__ref(1, 1, K, A, K, B, &C, 1);
	cr_assert_eq(C, -2139062400);
	memset(A, 0, K);
	qt_colsum_s8__ref(1, K, B, K, &cs);
	cr_assert_eq(cs, -128 * K);
	free(A), free(B);
}

/* ---- the rounding rule ------------------------------------------------ */

Test(requant, rule_matches_int128)
{
	struct rng r = {77};
	for (int i = 0; i < 2000000; i++) {
		int32_t acc;
		int pick = (int)rrange(&r, 0, 3);
		acc = pick == 0 ? (int32_t)rrange(&r, INT32_MIN, INT32_MAX)
		    : pick == 1 ? (int32_t)rrange(&r, -70000, 70000)
		    : pick == 2 ? (rrange(&r, 0, 1) ? INT32_MAX - (int32_t)rrange(&r, 0, 3)
						    : INT32_MIN + (int32_t)rrange(&r, 0, 3))
				: (int32_t)rrange(&r, -3, 3);
		int32_t m, n;
		rand_mult(&r, 1e6, &m, &n);
		int64_t got = qt_rq_mulshift(acc, m, n);
		__int128 want = rule128(acc, m, n);
		cr_assert(got == (int64_t)want, "seed 77 iter %d: acc=%d m=%d n=%d: got %lld want %lld", i,
			  acc, m, n, (long long)got, (long long)want);
		/* the 64-bit variant agrees on int32 inputs (after saturation) */
		int32_t got64 = qt_rq_mulshift64(acc, m, n);
		cr_assert_eq(got64, qt_sat32(got), "acc=%d m=%d n=%d", acc, m, n);
	}
}

Test(requant, rule64_matches_int128)
{
	struct rng r = {78};
	for (int i = 0; i < 2000000; i++) {
		int64_t acc;
		int pick = (int)rrange(&r, 0, 4);
		if (pick == 0)
			acc = (int64_t)rnext(&r);
		else if (pick == 1)
			acc = rrange(&r, -(INT64_C(1) << 47), INT64_C(1) << 47);
		else if (pick == 2)
			acc = rrange(&r, 0, 1) ? INT64_MAX - rrange(&r, 0, 3) : INT64_MIN + rrange(&r, 0, 3);
		else if (pick == 3)
			acc = rrange(&r, -5, 5);
		else
			acc = (int64_t)(rnext(&r) >> rrange(&r, 1, 63)) * (rrange(&r, 0, 1) ? 1 : -1);
		int32_t m, n;
		rand_mult(&r, 1e12, &m, &n);
		__int128 want = rule128(acc, m, n);
		int32_t w = want > INT32_MAX ? INT32_MAX : want < INT32_MIN ? INT32_MIN : (int32_t)want;
		int32_t got = qt_rq_mulshift64(acc, m, n);
		cr_assert_eq(got, w, "seed 78 iter %d: acc=%lld m=%d n=%d: got %d want %d", i,
			     (long long)acc, m, n, got, w);
	}
}

/* Ties go toward +infinity: m = 2^30, n = 31 is a multiplier of exactly 1/2. */
Test(requant, ties_round_half_up)
{
	const int32_t half = INT32_C(1) << 30;
	const struct {
		int32_t acc;
		int64_t want;
	} t[] = {{1, 1}, {-1, 0}, {3, 2}, {-3, -1}, {-5, -2}, {5, 3}, {0, 0}, {INT32_MIN, -1073741824},
		 {INT32_MAX, 1073741824}};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		cr_assert_eq(qt_rq_mulshift(t[i].acc, half, 31), t[i].want, "acc=%d", t[i].acc);
		cr_assert_eq(qt_rq_mulshift64(t[i].acc, half, 31), t[i].want, "acc=%d", t[i].acc);
	}
	/* through the epilogue, with zo = 128 */
	int32_t acc[4] = {-1, -3, 1, 3}, m = half, n = 31;
	uint8_t y[4];
	struct qt_rq rq = {.mult = &m, .shift = &n, .zo = 128, .qmin = 0, .qmax = 255};
	qt_requant_q31__ref(1, 4, acc, 4, 0, NULL, NULL, &rq, y, 4);
	cr_assert(y[0] == 128 && y[1] == 127 && y[2] == 129 && y[3] == 130, "%d %d %d %d", y[0], y[1],
		  y[2], y[3]);
}

/* acc + bias is saturated to int32 before the multiply (it changes results). */
Test(requant, bias_sum_saturates)
{
	int32_t acc = INT32_MAX, bias = INT32_MAX, cs = 0, m = INT32_C(1) << 30, n = 62;
	uint8_t y;
	struct qt_rq rq = {.mult = &m, .shift = &n, .zo = 10, .qmin = 0, .qmax = 255};
	qt_requant_q31__ref(1, 1, &acc, 1, 0, &cs, &bias, &rq, &y, 1);
	cr_assert_eq(y, 10, "sat32(2^32 - 2) * 2^30 / 2^62 rounds to 0, not 1");
	acc = INT32_MIN, bias = INT32_MIN;
	qt_requant_q31__ref(1, 1, &acc, 1, 0, &cs, &bias, &rq, &y, 1);
	cr_assert_eq(y, 10, "-2^31 * 2^30 / 2^62 = -0.5 rounds to 0");
}

Test(requant, rq_valid_rejects_bad_params)
{
	int32_t m = INT32_C(1) << 30, n = 31;
	struct qt_rq rq = {.mult = &m, .shift = &n, .zo = 0, .qmin = 0, .qmax = 255};
	cr_assert(qt_rq_valid(&rq, 1));
	m = 12345;
	cr_assert(!qt_rq_valid(&rq, 1));
	m = 0;
	cr_assert(qt_rq_valid(&rq, 1));
	n = 63;
	cr_assert(!qt_rq_valid(&rq, 1));
	n = 0;
	cr_assert(!qt_rq_valid(&rq, 1));
	n = 5;
	rq.qmin = 10, rq.qmax = 9;
	cr_assert(!qt_rq_valid(&rq, 1));
	rq.qmin = 0, rq.qmax = 256;
	cr_assert(!qt_rq_valid(&rq, 1));
}

/* ---- qt_quantize_multiplier ------------------------------------------- */

Test(quantize_multiplier, random_reals_within_half_unit)
{
	struct rng r = {4242};
	for (int i = 0; i < 1000000; i++) {
		/* log-uniform over [2^-32, 2^30), plus some mantissas near 1 */
		double real = exp2(-32.0 + 62.0 * (double)(rnext(&r) >> 11) * 0x1p-53);
		if (i % 10 == 0)
			real = ldexp(1.0 - ldexp((double)rrange(&r, 1, 1000), -45), (int)rrange(&r, -30, 29));
		int32_t m = -1;
		int n = -1;
		enum qt_status st = qt_quantize_multiplier(real, &m, &n);
		if (st != QT_OK) {
			/* only at the very top, where rounding reaches 2^30 */
			cr_assert(real > 0x1.fffffp29, "seed 4242 iter %d: real %a refused: %s", i, real,
				  qt_error_msg());
			continue;
		}
		cr_assert(m >= (INT32_C(1) << 30) && n >= 1 && n <= 62, "real %a: m=%d n=%d", real, m, n);
		long double scaled = ldexpl((long double)real, n);
		long double err = (long double)m - scaled;
		cr_assert(err <= 0.5L && err >= -0.5L, "seed 4242 iter %d: real %a m=%d n=%d err=%Lg", i,
			  real, m, n, err);
	}
}

Test(quantize_multiplier, edges_and_errors)
{
	int32_t m;
	int n;
	cr_assert_eq(qt_quantize_multiplier(1.0, &m, &n), QT_OK);
	cr_assert(m == (INT32_C(1) << 30) && n == 30);
	cr_assert_eq(qt_quantize_multiplier(0.5, &m, &n), QT_OK);
	cr_assert(m == (INT32_C(1) << 30) && n == 31);
	cr_assert_eq(qt_quantize_multiplier(0x1p-32, &m, &n), QT_OK);
	cr_assert(m == (INT32_C(1) << 30) && n == 62);
	/* f * 2^31 rounds up to 2^31: renormalised */
	cr_assert_eq(qt_quantize_multiplier(1.0 - 0x1p-33, &m, &n), QT_OK);
	cr_assert(m == (INT32_C(1) << 30) && n == 30, "m=%d n=%d", m, n);
	cr_assert_eq(qt_quantize_multiplier(0x1.fffffffcp29, &m, &n), QT_OK);
	cr_assert(m == INT32_MAX && n == 1, "m=%d n=%d", m, n);
	/* 2^30 - 2^-2: f * 2^31 = 2^31 - 1/2 rounds to 2^31, so n would be 0 */
	cr_assert_eq(qt_quantize_multiplier(0x1.fffffffep29, &m, &n), QT_E_NUMERIC);
	/* errors leave the outputs alone */
	const double bad[] = {0.0, -1.0, -0.0, NAN, INFINITY, -INFINITY, 0x1p30, 1e300, 0x1p-33, 1e-310};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		m = 7, n = 7;
		cr_assert_eq(qt_quantize_multiplier(bad[i], &m, &n), QT_E_NUMERIC, "real %g", bad[i]);
		cr_assert(m == 7 && n == 7);
		cr_assert(strstr(qt_error_msg(), "multiplier"), "%s", qt_error_msg());
	}
}

/* ---- grouped weights -------------------------------------------------- */

/*
 * One grouped case for kernel k (the reference when k is qt_qgemm_u8s8_ref):
 * k against the reference, and the reference against an __int128 evaluation
 * written here. mode as in fill(); mode 1 also sets every ratio to 2^15 and
 * the biases to +-2^62 (the largest int64 sums the contract allows); mode 4
 * (small values) uses ratios in [0, 3], small biases and multipliers 2^-1 ..
 * 2^-4, so that exact ties are frequent and unclamped.
 */
static void check_group(const struct qt_qgemm_kernel *k, int M, int N, int K, int G, int mode,
			uint64_t seed)
{
	struct rng r = {seed};
	int ng = (K + G - 1) / G;
	size_t lda = (size_t)K + (seed & 1), ldb = (size_t)K + 1, ldy = (size_t)N + 1;
	uint8_t *A = xmalloc((size_t)M * lda), *Yk = xmalloc((size_t)M * ldy), *Yr = xmalloc((size_t)M * ldy);
	int8_t *B = xmalloc((size_t)N * ldb);
	fill(&r, mode, A, (size_t)M * lda, B, (size_t)N * ldb);
	int32_t *csg = xmalloc(sizeof(int32_t) * (size_t)ng * N), *ratio = xmalloc(sizeof(int32_t) * (size_t)ng * N);
	int32_t *cs = xmalloc(sizeof(int32_t) * (size_t)N);
	int64_t *bias = xmalloc(sizeof(int64_t) * (size_t)N);
	int32_t *mult = xmalloc(sizeof(int32_t) * (size_t)N), *shift = xmalloc(sizeof(int32_t) * (size_t)N);
	qt_colsum_groups_s8__ref(N, K, G, B, ldb, csg);
	for (int i = 0; i < N * ng; i++)
		ratio[i] = mode == 1 ? QT_GROUP_MAX_RATIO
			 : (int32_t)(rrange(&r, 0, 4) == 0 ? rrange(&r, 0, 1) * QT_GROUP_MAX_RATIO
							   : rrange(&r, 0, QT_GROUP_MAX_RATIO));
	int bk = mode == 1 ? 2 : (int)rrange(&r, 0, 2);
	for (int n = 0; n < N; n++) {
		bias[n] = bk == 0 ? rrange(&r, -1000000, 1000000)
			: bk == 1 ? rrange(&r, -(INT64_C(1) << 62), INT64_C(1) << 62)
				  : (rrange(&r, 0, 1) ? 1 : -1) * (INT64_C(1) << 62);
		rand_mult(&r, 128.0 * 128.0 * 32768.0 * sqrt((double)K), &mult[n], &shift[n]);
		if (mode == 4) {
			bias[n] = rrange(&r, -9, 9);
			mult[n] = INT32_C(1) << 30;
			shift[n] = (int32_t)rrange(&r, 31, 34);
		}
	}
	if (mode == 4)
		for (int i = 0; i < N * ng; i++)
			ratio[i] = (int32_t)rrange(&r, 0, 3);
	const int32_t zps[] = {0, 255, (int32_t)rrange(&r, 0, 255)};
	int32_t za = zps[rrange(&r, 0, 2)];
	int pc = (int)rrange(&r, 0, 1);
	struct qt_rq rq = {.mult = mult, .shift = shift, .per_channel = pc,
			   .zo = zps[rrange(&r, 0, 2)], .qmin = 0, .qmax = 255};
	if (mode == 4)
		rq.zo = 128;
	else if (rrange(&r, 0, 3) == 0)
		rq.qmin = 0, rq.qmax = 15;
	const int64_t *bp = rrange(&r, 0, 3) ? bias : NULL;

	void *pk = xmalloc(k->packed_size(N, K)), *pr = xmalloc(qt_qgemm_packed_size_u8s8__ref(N, K));
	k->pack(N, K, B, ldb, pk, cs);
	qt_qgemm_pack_u8s8__ref(N, K, B, ldb, pr, cs);
	memset(Yk, 0xa5, (size_t)M * ldy);
	memset(Yr, 0xa5, (size_t)M * ldy);
	k->gemm_group_requant(M, N, K, G, A, lda, za, pk, csg, ratio, bp, &rq, Yk, ldy);
	qt_qgemm_group_requant__ref(M, N, K, G, A, lda, za, B, ldb, csg, ratio, bp, &rq, Yr, ldy);
	for (int m = 0; m < M; m++) {
		for (int n = 0; n <= N; n++) {
			size_t i = (size_t)m * ldy + n;
			cr_assert_eq(Yk[i], Yr[i],
				     "%s group M=%d N=%d K=%d G=%d mode=%d za=%d zo=%d pc=%d seed=%llu: "
				     "Y[%d][%d] = %d, ref %d",
				     k->name, M, N, K, G, mode, za, rq.zo, pc, (unsigned long long)seed, m,
				     n, Yk[i], Yr[i]);
			if (n == N)
				continue;
			__int128 sum = bp ? bp[n] : 0;
			for (int g = 0; g < ng; g++) {
				__int128 a = 0;
				for (int kk = g * G; kk < K && kk < (g + 1) * G; kk++)
					a += ((__int128)A[m * lda + kk] - za) * B[n * ldb + kk];
				sum += a * ratio[n * ng + g];
			}
			int ch = pc ? n : 0;
			uint8_t want = clamp_out(rule128(sum, mult[ch], shift[ch]), rq.zo, rq.qmin, rq.qmax);
			cr_assert_eq(Yr[i], want, "ref group M=%d N=%d K=%d G=%d seed=%llu: Y[%d][%d] = %d want %d",
				     M, N, K, G, (unsigned long long)seed, m, n, Yr[i], want);
		}
	}
	free(A), free(Yk), free(Yr), free(B), free(csg), free(ratio), free(cs), free(bias);
	free(mult), free(shift), free(pk), free(pr);
}

Test(group, ref_matches_int128)
{
	struct rng r = {555};
	for (int it = 0; it < 300; it++) {
		int M = (int)rrange(&r, 1, 6), N = (int)rrange(&r, 1, 9), K = (int)rrange(&r, 0, 300);
		const int Gs[] = {1, 3, 32, 64, K + 1, K + 5};
		check_group(&qt_qgemm_u8s8_ref, M, N, K, Gs[rrange(&r, 0, 5)], 0, 555000 + it);
	}
}

Test(group, kernels_match_ref_odd_sizes)
{
	static const int Ks[] = {1, 3, 4, 5, 37, 64, 65, 300};
	for (const struct qt_qgemm_kernel *k = manifest; k->name; k++) {
		if (!k->gemm_group_requant || !runnable(k))
			continue;
		int Ms[5], Ns[5];
		sizes(k->mr, Ms);
		sizes(k->nr, Ns);
		uint64_t seed = 20000;
		for (int i = 0; i < 5; i++)
			for (int j = 0; j < 5; j++)
				for (size_t t = 0; t < sizeof Ks / sizeof Ks[0]; t++) {
					int K = Ks[t];
					const int Gs[] = {1, 2, 3, 5, 8, 32, 33, K, K + 5};
					for (size_t u = 0; u < sizeof Gs / sizeof Gs[0]; u++)
						check_group(k, Ms[i], Ns[j], K, Gs[u], 0, seed++);
				}
	}
}

/* Exact ties (x.5) in the 64-bit rule round toward +infinity too. */
Test(group, kernels_exact_ties)
{
	for (const struct qt_qgemm_kernel *k = manifest; k->name; k++) {
		if (!k->gemm_group_requant || !runnable(k))
			continue;
		uint64_t seed = 26000;
		const int Gs[] = {1, 3, 4, 7, 16};
		for (size_t u = 0; u < sizeof Gs / sizeof Gs[0]; u++)
			for (int rep = 0; rep < 8; rep++)
				check_group(k, 2 * k->mr + 1, 2 * k->nr + 1, 45, Gs[u], 4, seed++);
	}
}

/* Largest sums: K = 65535, all 255 x all -128 (and friends), ratio 2^15,
 * bias +-2^62. */
Test(group, extreme_values_k65535, .timeout = 120)
{
	for (const struct qt_qgemm_kernel *k = manifest; k->name; k++) {
		if (!k->gemm_group_requant || !runnable(k))
			continue;
		for (int mode = 1; mode <= 3; mode++) {
			check_group(k, 3, k->nr + 1, QT_QGEMM_MAX_K, 128, mode, 30 + mode);
			check_group(k, 2, 5, QT_QGEMM_MAX_K, 1000, mode, 40 + mode);
		}
	}
}

/* One group with ratio 1 is the ordinary GEMM + requant. */
Test(group, single_group_equals_plain_gemm)
{
	struct rng r = {556};
	int M = 5, N = 7, K = 131;
	uint8_t *A = xmalloc((size_t)M * K), Y1[5 * 7], Y2[5 * 7];
	int8_t *B = xmalloc((size_t)N * K);
	fill(&r, 0, A, (size_t)M * K, B, (size_t)N * K);
	int32_t cs[7], ratio[7], bias[7], mult[7], shift[7];
	int64_t bias64[7];
	qt_colsum_s8__ref(N, K, B, K, cs);
	for (int n = 0; n < N; n++) {
		ratio[n] = 1;
		bias[n] = (int32_t)rrange(&r, -50000, 50000);
		bias64[n] = bias[n];
		rand_mult(&r, 128.0 * 128.0 * sqrt((double)K), &mult[n], &shift[n]);
	}
	struct qt_rq rq = {.mult = mult, .shift = shift, .per_channel = 1, .zo = 100, .qmin = 0, .qmax = 255};
	qt_qgemm_requant_u8s8__ref(M, N, K, A, K, B, 200, cs, bias, &rq, Y1, N);
	qt_qgemm_group_requant__ref(M, N, K, K, A, K, 200, B, K, cs, ratio, bias64, &rq, Y2, N);
	cr_assert(memcmp(Y1, Y2, sizeof Y1) == 0);
	free(A), free(B);
}

/* ---- elementwise ------------------------------------------------------ */

/* Every (a, b) pair: |out - round(real)| <= 1 and the mean signed error
 * about 0 (a biased Add would pass a max-error test alone). */
Test(qelementwise, add_close_to_real_and_unbiased)
{
	struct rng r = {31337};
	static uint8_t a[65536], b[65536], y[65536];
	for (int i = 0; i < 65536; i++)
		a[i] = (uint8_t)(i & 255), b[i] = (uint8_t)(i >> 8);
	for (int it = 0; it < 40; it++) {
		double sa = exp2((double)rrange(&r, -12000, 0) / 1000.0);
		double sb = exp2((double)rrange(&r, -12000, 0) / 1000.0);
		double sy = (sa + sb) * exp2((double)rrange(&r, -1000, 1000) / 1000.0);
		int32_t za = (int32_t)rrange(&r, 0, 255), zb = (int32_t)rrange(&r, 0, 255),
			zo = (int32_t)rrange(&r, 0, 255);
		struct qt_qadd_params p;
		cr_assert_eq(qt_qadd_prepare(sa, za, sb, zb, sy, zo, 0, 255, &p), QT_OK, "%s",
			     qt_error_msg());
		qt_qadd_u8__ref(65536, a, 1, b, 1, y, &p);
		double sum = 0;
		int n_in = 0;
		for (int i = 0; i < 65536; i++) {
			double real = (sa * (a[i] - za) + sb * (b[i] - zb)) / sy + zo;
			double want = floor(real + 0.5);
			if (want < 0 || want > 255)
				continue; /* clamped: checked below */
			double e = y[i] - want;
			cr_assert(fabs(e) <= 1, "seed 31337 it %d: a=%d b=%d got %d want %g", it, a[i], b[i],
				  y[i], want);
			sum += e;
			n_in++;
		}
		if (n_in > 1000)
			cr_assert(fabs(sum / n_in) < 0.01, "seed 31337 it %d: mean error %g", it, sum / n_in);
	}
}

/*
 * Every optimized Add equals the reference bit for bit: lengths around its
 * 16-lane vector (1, 15, 16, 17, 33) and every (a, b) pair (65536, each
 * offset by 1 so the loads are unaligned), random scales (ratios up to 2^12,
 * outputs that saturate), zero points including 0 and 255, and narrow
 * clamps (a fused ReLU).
 */
Test(qelementwise, add_kernels_match_ref)
{
	static uint8_t a[65536 + 1], b[65536 + 1], yk[65536 + 2], yr[65536 + 2]; /* y: a guard byte each side */
	static const size_t lens[] = {1, 15, 16, 17, 33, 65536};
	static const int32_t zps[] = {0, 255, 128, 3};
	for (int i = 0; i < 65536; i++)
		a[i + 1] = (uint8_t)(i & 255), b[i + 1] = (uint8_t)(i >> 8);
	for (int k = 1; qt_qadd_kernels[k].name; k++) { /* [0] is the reference */
		if (!qt_isa_available(qt_qadd_kernels[k].isa)) {
			cr_log_warn("skipping %s: not available on this CPU", qt_qadd_kernels[k].name);
			continue;
		}
		struct rng r = {4242};
		for (int it = 0; it < 48; it++) {
			double sa = exp2((double)rrange(&r, -12000, 0) / 1000.0);
			double sb = exp2((double)rrange(&r, -12000, 0) / 1000.0);
			double sy = (sa + sb) * exp2((double)rrange(&r, -3000, 1000) / 1000.0);
			int32_t za = zps[it % 4], zb = zps[(it / 4) % 4], zo = (int32_t)rrange(&r, 0, 255);
			int32_t qmin = it % 3 == 0 ? zo : 0, qmax = it % 5 == 0 ? 200 : 255;
			if (qmin > qmax)
				qmin = qmax;
			struct qt_qadd_params p;
			cr_assert_eq(qt_qadd_prepare(sa, za, sb, zb, sy, zo, qmin, qmax, &p), QT_OK, "%s",
				     qt_error_msg());
			for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
				size_t n = lens[l], off = (size_t)(it * 977) % (65536 - n + 1);
				memset(yk, 0xa5, sizeof yk);
				memset(yr, 0xa5, sizeof yr);
				qt_qadd_kernels[k].fn(n, a + 1 + off, 1, b + 1 + off, 1, yk + 1, &p);
				qt_qadd_u8__ref(n, a + 1 + off, 1, b + 1 + off, 1, yr + 1, &p);
				for (size_t i = 0; i < n + 2; i++)
					cr_assert_eq(yk[i], yr[i], "%s seed 4242 it %d n %zu: y[%zd] = %d, ref %d (a=%d b=%d)",
						     qt_qadd_kernels[k].name, it, n, (ssize_t)i - 1, yk[i], yr[i],
						     i && i <= n ? a[off + i] : -1, i && i <= n ? b[off + i] : -1);
			}
			/* Strided (broadcast) operands. */
			qt_qadd_kernels[k].fn(37, a + 1, 3, b + 1, 0, yk, &p);
			qt_qadd_u8__ref(37, a + 1, 3, b + 1, 0, yr, &p);
			cr_assert_eq(memcmp(yk, yr, 37), 0, "%s seed 4242 it %d: strided Add differs",
				     qt_qadd_kernels[k].name, it);
		}
	}
}

Test(qelementwise, add_exact_when_scales_match)
{
	struct qt_qadd_params p;
	cr_assert_eq(qt_qadd_prepare(0.25, 0, 0.25, 0, 0.25, 0, 0, 255, &p), QT_OK);
	for (int a = 0; a < 256; a++)
		for (int b = 0; b < 256; b++) {
			uint8_t x = (uint8_t)a, z = (uint8_t)b, y;
			qt_qadd_u8__ref(1, &x, 1, &z, 1, &y, &p);
			cr_assert_eq(y, a + b > 255 ? 255 : a + b);
		}
}

Test(qelementwise, mul_close_to_real_and_broadcast)
{
	struct rng r = {2718};
	static uint8_t a[65536], b[65536], y[65536], yb[256];
	for (int i = 0; i < 65536; i++)
		a[i] = (uint8_t)(i & 255), b[i] = (uint8_t)(i >> 8);
	for (int it = 0; it < 40; it++) {
		double sa = exp2((double)rrange(&r, -10000, 0) / 1000.0);
		double sb = exp2((double)rrange(&r, -10000, 0) / 1000.0);
		double sy = sa * sb * 255 * exp2((double)rrange(&r, -2000, 2000) / 1000.0);
		int32_t za = (int32_t)rrange(&r, 0, 255), zb = (int32_t)rrange(&r, 0, 255),
			zo = (int32_t)rrange(&r, 0, 255);
		struct qt_qmul_params p;
		cr_assert_eq(qt_qmul_prepare(sa, za, sb, zb, sy, zo, 0, 255, &p), QT_OK, "%s",
			     qt_error_msg());
		qt_qmul_u8__ref(65536, a, 1, b, 1, y, &p);
		for (int i = 0; i < 65536; i++) {
			double want = floor(sa * sb * (a[i] - za) * (b[i] - zb) / sy + 0.5) + zo;
			want = want < 0 ? 0 : want > 255 ? 255 : want;
			cr_assert(fabs(y[i] - want) <= 1, "seed 2718 it %d: a=%d b=%d got %d want %g", it,
				  a[i], b[i], y[i], want);
		}
		/* b broadcast (stride 0) equals the row of the full table */
		uint8_t bs = (uint8_t)rrange(&r, 0, 255);
		qt_qmul_u8__ref(256, a, 1, &bs, 0, yb, &p);
		cr_assert(memcmp(yb, y + 256 * bs, 256) == 0, "broadcast row %d", bs);
	}
}

Test(qelementwise, prepare_rejects_bad_params)
{
	struct qt_qadd_params p;
	struct qt_qmul_params q;
	cr_assert_eq(qt_qadd_prepare(0.0, 0, 1, 0, 1, 0, 0, 255, &p), QT_E_NUMERIC);
	cr_assert_eq(qt_qadd_prepare(NAN, 0, 1, 0, 1, 0, 0, 255, &p), QT_E_NUMERIC);
	cr_assert_eq(qt_qadd_prepare(1, 256, 1, 0, 1, 0, 0, 255, &p), QT_E_INVALID_ARG);
	cr_assert_eq(qt_qadd_prepare(1, 0, 1, 0, 1, 0, 10, 5, &p), QT_E_INVALID_ARG);
	cr_assert_eq(qt_qadd_prepare(1, 0, 1, 0, 1e-20, 0, 0, 255, &p), QT_E_UNSUPPORTED);
	cr_assert_eq(qt_qmul_prepare(1, 0, 1, 0, 1e-12, 0, 0, 255, &q), QT_E_UNSUPPORTED);
	/* a negligible input gets a zero multiplier, not an error */
	cr_assert_eq(qt_qadd_prepare(1, 0, 1e-15, 0, 1, 0, 0, 255, &p), QT_OK);
	cr_assert_eq(p.mb, 0);
}

/* ---- sub-byte packing ------------------------------------------------- */

Test(pack, layout_low_bits_first)
{
	const int8_t s4[] = {1, -1, -8};
	uint8_t out[2];
	cr_assert_eq(qt_pack_s4(s4, 3, out), QT_OK);
	cr_assert(out[0] == 0xf1 && out[1] == 0x08, "%02x %02x", out[0], out[1]);
	const int8_t s2[] = {1, -1, -2, 0, 1};
	cr_assert_eq(qt_pack_s2(s2, 5, out), QT_OK);
	cr_assert(out[0] == 0x2d && out[1] == 0x01, "%02x %02x", out[0], out[1]);
	const uint8_t u4[] = {0xf, 0x3, 0xa};
	cr_assert_eq(qt_pack_u4(u4, 3, out), QT_OK);
	cr_assert(out[0] == 0x3f && out[1] == 0x0a);
	const uint8_t u2[] = {3, 0, 2, 1, 3};
	cr_assert_eq(qt_pack_u2(u2, 5, out), QT_OK);
	cr_assert(out[0] == 0x63 && out[1] == 0x03, "%02x %02x", out[0], out[1]);
	/* every byte unpacks to sign-extended nibbles */
	for (int v = 0; v < 256; v++) {
		uint8_t byte = (uint8_t)v;
		int8_t d[4];
		qt_unpack_s4(&byte, 2, d);
		cr_assert(d[0] == ((v & 15) ^ 8) - 8 && d[1] == ((v >> 4) ^ 8) - 8);
		qt_unpack_s2(&byte, 4, d);
		for (int i = 0; i < 4; i++)
			cr_assert_eq(d[i], (((v >> (2 * i)) & 3) ^ 2) - 2);
	}
}

Test(pack, round_trips)
{
	struct rng r = {99};
	for (size_t n = 0; n < 70; n++) {
		int8_t s[70], s_back[70];
		uint8_t u[70], u_back[70], buf[40];
		for (int bits = 2; bits <= 4; bits += 2) {
			int lo = -(1 << (bits - 1)), hi = (1 << (bits - 1)) - 1;
			for (size_t i = 0; i < n; i++) {
				s[i] = (int8_t)rrange(&r, lo, hi);
				u[i] = (uint8_t)rrange(&r, 0, (1 << bits) - 1);
			}
			memset(buf, 0xff, sizeof buf);
			cr_assert_eq(bits == 4 ? qt_pack_s4(s, n, buf) : qt_pack_s2(s, n, buf), QT_OK);
			cr_assert_eq(buf[qt_packed_bytes(n, bits)], 0xff, "wrote past the end");
			if (n % (8 / bits))
				cr_assert_eq(buf[n * bits / 8] >> ((n * bits) % 8), 0, "padding bits not 0");
			bits == 4 ? qt_unpack_s4(buf, n, s_back) : qt_unpack_s2(buf, n, s_back);
			cr_assert(memcmp(s, s_back, n) == 0, "s%d n=%zu seed 99", bits, n);
			cr_assert_eq(bits == 4 ? qt_pack_u4(u, n, buf) : qt_pack_u2(u, n, buf), QT_OK);
			bits == 4 ? qt_unpack_u4(buf, n, u_back) : qt_unpack_u2(buf, n, u_back);
			cr_assert(memcmp(u, u_back, n) == 0, "u%d n=%zu seed 99", bits, n);
		}
	}
}

/* int3: element i in bits [3i, 3i + 3) of a little-endian stream. */
Test(pack, s3_layout_bit_stream)
{
	/* 0..7 as 3-bit fields: 0, 1, 2, 3, -4, -3, -2, -1 -> bits 000 001 010 011 100 101 110 111
	 * from the least significant end: the 24-bit word 0xFAC688. */
	const int8_t s3[] = {0, 1, 2, 3, -4, -3, -2, -1, 3};
	uint8_t out[4] = {0xff, 0xff, 0xff, 0xff};
	cr_assert_eq(qt_pack_s3(s3, 9, out), QT_OK);
	cr_assert(out[0] == 0x88 && out[1] == 0xc6 && out[2] == 0xfa && out[3] == 0x03, "%02x %02x %02x %02x",
		  out[0], out[1], out[2], out[3]);
	/* Every 3-byte pattern unpacks to its eight sign-extended fields. */
	for (uint32_t w = 0; w < (1u << 24); w += 4099) {
		uint8_t b[3] = {(uint8_t)w, (uint8_t)(w >> 8), (uint8_t)(w >> 16)};
		int8_t d[8];
		qt_unpack_s3(b, 8, d);
		for (int i = 0; i < 8; i++)
			cr_assert_eq(d[i], (int)(((w >> (3 * i)) & 7) ^ 4) - 4, "word %06x element %d", w, i);
	}
}

Test(pack, s3_round_trips_all_codes_odd_lengths)
{
	struct rng r = {1234};
	for (size_t n = 0; n <= 70; n++) {
		int8_t s[72], back[72];
		uint8_t buf[32];
		for (size_t i = 0; i < n; i++)
			s[i] = (int8_t)(i < 8 ? (int)i - 4 : rrange(&r, -4, 3)); /* every code in the first run */
		memset(buf, 0xff, sizeof buf);
		cr_assert_eq(qt_pack_s3(s, n, buf), QT_OK);
		size_t nb = qt_packed_bytes(n, 3);
		cr_assert_eq(nb, (3 * n + 7) / 8);
		cr_assert_eq(buf[nb], 0xff, "n=%zu: wrote past the end", n);
		if ((3 * n) % 8)
			cr_assert_eq(buf[nb - 1] >> ((3 * n) % 8), 0, "n=%zu: padding bits not 0", n);
		/* The unpacker must not read past the packed bytes either: copy to an exact-size buffer. */
		uint8_t *exact = malloc(nb + 1);
		memcpy(exact, buf, nb);
		qt_unpack_s3(exact, n, back);
		free(exact);
		cr_assert(memcmp(s, back, n) == 0, "n=%zu seed 1234", n);
	}
}

Test(pack, out_of_range_is_an_error)
{
	uint8_t buf[4];
	const int8_t s4[] = {0, 7, 8};
	cr_assert_eq(qt_pack_s4(s4, 3, buf), QT_E_INVALID_ARG);
	cr_assert(strstr(qt_error_msg(), "element 2"), "%s", qt_error_msg());
	const int8_t s2[] = {-3};
	cr_assert_eq(qt_pack_s2(s2, 1, buf), QT_E_INVALID_ARG);
	const uint8_t u4[] = {16};
	cr_assert_eq(qt_pack_u4(u4, 1, buf), QT_E_INVALID_ARG);
	const uint8_t u2[] = {4};
	cr_assert_eq(qt_pack_u2(u2, 1, buf), QT_E_INVALID_ARG);
	const int8_t s3a[] = {3, -4, 4}, s3b[] = {-5};
	cr_assert_eq(qt_pack_s3(s3a, 3, buf), QT_E_INVALID_ARG);
	cr_assert(strstr(qt_error_msg(), "element 2"), "%s", qt_error_msg());
	cr_assert_eq(qt_pack_s3(s3b, 1, buf), QT_E_INVALID_ARG);
}

/* ---- dispatch --------------------------------------------------------- */

Test(dispatch, names_and_errors)
{
	const struct qt_kernels *t = NULL;
	cr_assert_eq(qt_kernels_select("ref", &t), QT_OK);
	cr_assert(t && t->isa == QT_ISA_REF && t->qgemm == &qt_qgemm_u8s8_ref);
	cr_assert_eq(qt_kernels_active(), t);
	const struct qt_kernels *keep = t;
	cr_assert_eq(qt_kernels_select("sse9", &t), QT_E_INVALID_ARG);
	cr_assert(t == keep, "output untouched on error");
	cr_assert(strstr(qt_error_msg(), "sse9"), "%s", qt_error_msg());
	for (int isa = 0; isa < QT_ISA_COUNT; isa++) {
		enum qt_status st = qt_kernels_select(qt_isa_name(isa), &t);
		if (qt_isa_available(isa)) {
			cr_assert_eq(st, QT_OK, "%s: %s", qt_isa_name(isa), qt_error_msg());
			cr_assert_eq(t->isa, isa);
			cr_assert_eq(qt_kernels_active(), t);
			cr_assert(t->qgemm_group && t->qgemm_group->gemm_group_requant);
			cr_assert(t->qgemm_group_requant == qt_qgemm_group_requant__ref);
			/* the table runs its ISA's first manifest kernel */
			for (const struct qt_qgemm_kernel *k = manifest; k->name; k++)
				if (k->isa == isa) {
					cr_assert_str_eq(t->qgemm->name, k->name);
					break;
				}
		} else {
			cr_assert_eq(st, QT_E_UNSUPPORTED, "%s", qt_isa_name(isa));
			cr_assert(strstr(qt_error_msg(), "not available"), "%s", qt_error_msg());
		}
	}
}

Test(dispatch, env_forces_isa)
{
	const struct qt_kernels *t = NULL;
	setenv("QT_ISA", "ref", 1);
	cr_assert_eq(qt_kernels_select(NULL, &t), QT_OK);
	cr_assert_eq(t->isa, QT_ISA_REF);
	setenv("QT_ISA", "bogus", 1);
	cr_assert_eq(qt_kernels_select(NULL, &t), QT_E_INVALID_ARG);
	cr_assert(strstr(qt_error_msg(), "QT_ISA"), "%s", qt_error_msg());
	unsetenv("QT_ISA");
	cr_assert_eq(qt_kernels_select(NULL, &t), QT_OK);
	int best = 0;
	for (int i = 0; i < QT_ISA_COUNT; i++)
		if (qt_isa_available(i))
			best = i;
	cr_assert_eq(t->isa, best, "auto picks the best available ISA");
}

/* On this project's reference machine (Zen 5) both optimized paths must run;
 * elsewhere this only logs. */
Test(dispatch, report_cpu)
{
	for (int i = 0; i < QT_ISA_COUNT; i++)
		cr_log_info("%s: %s", qt_isa_name(i), qt_isa_available(i) ? "available" : "not available");
	cr_assert(qt_isa_available(QT_ISA_REF));
}
