/*
 * One persistent pool of worker threads shared by the FP32 and integer
 * runtimes, so a layer's parallel loop costs a wake-up, not a thread start.
 * The thread count is $QT_THREADS, else the online CPUs (1..16). The FP32
 * runtime's sgemm calls run inside pool jobs with OpenBLAS set to one thread
 * (qt_blas_single_begin); OpenBLAS's own threads serve only callers outside
 * the runtimes (GPTQ's solves).
 */
#ifndef QT_RT_POOL_H
#define QT_RT_POOL_H

#include <stdint.h>

#define QT_POOL_MAX 16

/* fn(ctx, thread, lo, hi) runs the items [lo, hi); `thread` < qt_pool_threads()
 * indexes per-thread scratch. */
typedef void (*qt_pool_fn)(void *ctx, int thread, int64_t lo, int64_t hi);

/* Threads a parallel loop may use (>= 1). */
int qt_pool_threads(void);

/*
 * Run fn over [0, n) split into at most nt contiguous ranges (nt is clamped
 * to [1, qt_pool_threads()] and to n); the caller's thread takes the first
 * and the call returns when all are done. When the pool is busy (a call from
 * another thread, or nested) or cannot start, the ranges run one after
 * another on the caller's thread: the same result, only slower.
 */
void qt_pool_for(int64_t n, int nt, qt_pool_fn fn, void *ctx);

#endif
