/*
 * Which OpenBLAS kernels the FP32 runtime multiplies with (see qtool/rt.h).
 *
 * Debian's OpenBLAS is built with DYNAMIC_ARCH: its load-time constructor
 * picks a kernel set from the CPU's family and model. A model newer than the
 * library (bookworm's 0.3.21 on an Emerald Rapids Xeon, family 6 model 207)
 * is not in its table and gets the "Prescott" fallback: SSE3 kernels, about
 * 8x slower per core than the AVX-512 ones on the same CPU (sgemm 1024^3:
 * 8 against 60 GFLOP/s). The choice happens before main and only the
 * OPENBLAS_CORETYPE variable overrides it, so the library can only say
 * which core to ask for; a program sets the variable and starts again.
 */
#include <cblas.h>
#include <string.h>

#include "qtool/rt.h"

const char *qt_rt_blas_core(void)
{
	const char *c = openblas_get_corename();
	return c ? c : "unknown";
}

const char *qt_rt_blas_core_wanted(void)
{
	if (strcmp(qt_rt_blas_core(), "Prescott") != 0)
		return NULL; /* OpenBLAS knew this CPU: keep its choice */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	__builtin_cpu_init();
	/* The ISA each kernel set needs, as OpenBLAS checks it for these cores. */
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	    __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
	    __builtin_cpu_supports("avx512cd"))
		return "SkylakeX";
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return "Haswell";
#endif
	return NULL;
}
