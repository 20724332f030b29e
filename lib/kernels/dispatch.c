/*
 * Kernel dispatch: a one-time CPU check (cpuid, and xgetbv for the register
 * state the OS saves), the per-ISA kernel tables built from kernels.def, and
 * the choice of the active table ($QT_ISA or the best available ISA).
 *
 * A forced ISA that this machine cannot run is an error, never a silent
 * fallback: a benchmark or a bit-exactness test must run what it names.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "kernels/kernels.h"

static const char *const isa_names[QT_ISA_COUNT] = {"ref", "avx2", "avx512vnni"};

/* The manifest, plus a terminator so the array is never empty. */
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

/* The reference Add, then the manifest's. */
const struct qt_qadd_kernel qt_qadd_kernels[] = {
	{"qadd_u8__ref", QT_ISA_REF, qt_qadd_u8__ref},
#define QT_QADD_KERNEL(name_, isa_, fn_) {name_, isa_, fn_},
#include "kernels/kernels.def"
#undef QT_QADD_KERNEL
	{NULL, 0, NULL},
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int avail[QT_ISA_COUNT];
static char missing[QT_ISA_COUNT][160]; /* what the CPU/OS lacks, per ISA */
static struct qt_kernels tables[QT_ISA_COUNT];
static _Atomic(const struct qt_kernels *) active;

#if defined(__x86_64__) || defined(__i386__)
/* XCR0: which register states the OS saves on context switch. Only valid
 * when CPUID.1:ECX.OSXSAVE is set. */
static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}
#endif

static void need(int isa, int ok, const char *what)
{
	if (ok)
		return;
	size_t len = strlen(missing[isa]);
	snprintf(missing[isa] + len, sizeof missing[isa] - len, "%s%s", len ? ", " : "", what);
}

static void detect(void)
{
	avail[QT_ISA_REF] = 1;
#if defined(__x86_64__) || defined(__i386__)
	unsigned a = 0, b = 0, c = 0, d = 0;
	int osxsave = 0, avx = 0, fma = 0, f16c = 0;
	if (__get_cpuid(1, &a, &b, &c, &d)) {
		fma = (c >> 12) & 1;
		osxsave = (c >> 27) & 1;
		avx = (c >> 28) & 1;
		f16c = (c >> 29) & 1;
	}
	uint64_t xcr0 = osxsave ? xgetbv0() : 0;
	int os_ymm = (xcr0 & 0x6) == 0x6;   /* SSE + AVX state */
	int os_zmm = (xcr0 & 0xe6) == 0xe6; /* + opmask, ZMM_Hi256, Hi16_ZMM */
	unsigned b7 = 0, c7 = 0;
	if (__get_cpuid_max(0, NULL) >= 7) {
		__cpuid_count(7, 0, a, b, c, d);
		b7 = b;
		c7 = c;
	}
	int avx2 = (b7 >> 5) & 1, avx512f = (b7 >> 16) & 1, avx512bw = (b7 >> 30) & 1,
	    avx512vl = (b7 >> 31) & 1, avx512vnni = (c7 >> 11) & 1;

	need(QT_ISA_AVX2, avx && avx2, "avx2");
	need(QT_ISA_AVX2, fma, "fma");
	need(QT_ISA_AVX2, f16c, "f16c");
	need(QT_ISA_AVX2, os_ymm, "OS support for YMM state (XCR0)");
	avail[QT_ISA_AVX2] = !missing[QT_ISA_AVX2][0];

	need(QT_ISA_AVX512VNNI, avail[QT_ISA_AVX2], "avx2/fma/f16c");
	need(QT_ISA_AVX512VNNI, avx512f, "avx512f");
	need(QT_ISA_AVX512VNNI, avx512bw, "avx512bw");
	need(QT_ISA_AVX512VNNI, avx512vl, "avx512vl");
	need(QT_ISA_AVX512VNNI, avx512vnni, "avx512vnni");
	need(QT_ISA_AVX512VNNI, os_zmm, "OS support for ZMM/opmask state (XCR0)");
	avail[QT_ISA_AVX512VNNI] = !missing[QT_ISA_AVX512VNNI][0];
#else
	for (int i = 1; i < QT_ISA_COUNT; i++)
		need(i, 0, "an x86 CPU");
#endif

	/* Tables: each ISA takes its first manifest kernel, else the ISA below's;
	 * the same for grouped GEMMs among kernels that have one. */
	for (int i = 0; i < QT_ISA_COUNT; i++) {
		struct qt_kernels *t = &tables[i];
		t->isa = i;
		t->isa_name = isa_names[i];
		t->qgemm = i ? tables[i - 1].qgemm : &qt_qgemm_u8s8_ref;
		t->qgemm_group = i ? tables[i - 1].qgemm_group : &qt_qgemm_u8s8_ref;
		for (const struct qt_qgemm_kernel *k = manifest; k->name; k++) {
			if (k->isa == i) {
				t->qgemm = k;
				break;
			}
		}
		for (const struct qt_qgemm_kernel *k = manifest; k->name; k++) {
			if (k->isa == i && k->gemm_group_requant) {
				t->qgemm_group = k;
				break;
			}
		}
		t->qgemm_group_requant = qt_qgemm_group_requant__ref;
		t->qadd = i ? tables[i - 1].qadd : qt_qadd_u8__ref;
		t->qadd_name = i ? tables[i - 1].qadd_name : "qadd_u8__ref";
		for (int k = 0; qt_qadd_kernels[k].name; k++) {
			if (qt_qadd_kernels[k].isa == i) {
				t->qadd = qt_qadd_kernels[k].fn;
				t->qadd_name = qt_qadd_kernels[k].name;
				break;
			}
		}
		t->qmul = qt_qmul_u8__ref;
	}
}

static void init_once(void)
{
	pthread_once(&once, detect);
}

/* Name of an ISA; "?" when out of range. */
const char *qt_isa_name(int isa)
{
	return isa >= 0 && isa < QT_ISA_COUNT ? isa_names[isa] : "?";
}

/* 1 when this CPU and OS can run `isa` kernels. */
int qt_isa_available(int isa)
{
	init_once();
	return isa >= 0 && isa < QT_ISA_COUNT && avail[isa];
}

/* Resolve a name (or $QT_ISA, or the best ISA) and record the choice. */
enum qt_status qt_kernels_select(const char *isa_or_null, const struct qt_kernels **out)
{
	init_once();
	const char *name = isa_or_null;
	const char *src = "instruction set";
	if (!name) {
		const char *env = getenv("QT_ISA");
		if (env && env[0]) {
			name = env;
			src = "QT_ISA";
		}
	}
	int isa = -1;
	if (!name) {
		for (int i = QT_ISA_COUNT - 1; i >= 0 && isa < 0; i--)
			if (avail[i])
				isa = i;
	} else {
		for (int i = 0; i < QT_ISA_COUNT; i++)
			if (strcmp(name, isa_names[i]) == 0)
				isa = i;
		if (isa < 0)
			return qt_error(QT_E_INVALID_ARG,
					"%s \"%s\": unknown instruction set (expected ref, avx2 or avx512vnni)",
					src, name);
		if (!avail[isa])
			return qt_error(QT_E_UNSUPPORTED,
					"%s \"%s\": not available on this machine (missing: %s)", src,
					name, missing[isa]);
	}
	atomic_store(&active, &tables[isa]);
	if (out)
		*out = &tables[isa];
	return QT_OK;
}

/* Last chosen table, choosing by $QT_ISA / CPU if nothing was chosen yet. */
const struct qt_kernels *qt_kernels_active(void)
{
	const struct qt_kernels *t = atomic_load(&active);
	if (t)
		return t;
	if (qt_kernels_select(NULL, &t) != QT_OK)
		return NULL;
	return t;
}

/* Bytes of kernel k's packed form of an [N, K] B. */
size_t qt_qgemm_packed_size(const struct qt_qgemm_kernel *k, int N, int K)
{
	return k->packed_size(N, K);
}

/* Pack B for kernel k and compute colsum_out[N]; see qt_qgemm_pack_fn. */
void qt_qgemm_pack(const struct qt_qgemm_kernel *k, int N, int K, const int8_t *B, size_t ldb,
		   void *packed, int32_t *colsum_out)
{
	k->pack(N, K, B, ldb, packed, colsum_out);
}
