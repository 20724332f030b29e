/* The runtimes' persistent thread pool (see pool.h). */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "pool.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int n_threads = 1;   /* the caller plus n_workers */
static int n_workers;       /* started successfully */
static pthread_mutex_t busy = PTHREAD_MUTEX_INITIALIZER; /* one loop at a time */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go = PTHREAD_COND_INITIALIZER, done = PTHREAD_COND_INITIALIZER;

/* The current loop, guarded by mu. */
static struct {
	uint64_t gen; /* bumped per loop: workers wait for a new value */
	qt_pool_fn fn;
	void *ctx;
	int64_t n;
	int nt;      /* ranges of this loop */
	int pending; /* workers still running their range */
} job;

static void range(int64_t n, int nt, int t, int64_t *lo, int64_t *hi)
{
	*lo = n * t / nt;
	*hi = n * (t + 1) / nt;
}

static void *worker(void *arg)
{
	const int t = (int)(intptr_t)arg; /* 1..n_workers */
	uint64_t seen = 0;
	pthread_mutex_lock(&mu);
	for (;;) {
		while (job.gen == seen)
			pthread_cond_wait(&go, &mu);
		seen = job.gen;
		if (t >= job.nt)
			continue;
		qt_pool_fn fn = job.fn;
		void *ctx = job.ctx;
		int64_t lo, hi;
		range(job.n, job.nt, t, &lo, &hi);
		pthread_mutex_unlock(&mu);
		fn(ctx, t, lo, hi);
		pthread_mutex_lock(&mu);
		if (--job.pending == 0)
			pthread_cond_signal(&done);
	}
	return NULL;
}

static void start(void)
{
	const char *e = getenv("QT_THREADS");
	long n = e && *e ? strtol(e, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
	n = n < 1 ? 1 : n > QT_POOL_MAX ? QT_POOL_MAX : n;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (long t = 1; t < n; t++) {
		pthread_t th;
		if (pthread_create(&th, &attr, worker, (void *)(intptr_t)t) != 0)
			break;
		n_workers++;
	}
	pthread_attr_destroy(&attr);
	n_threads = 1 + n_workers;
}

int qt_pool_threads(void)
{
	pthread_once(&once, start);
	return n_threads;
}

void qt_pool_for(int64_t n, int nt, qt_pool_fn fn, void *ctx)
{
	if (n <= 0)
		return;
	int max = qt_pool_threads();
	nt = nt < 1 ? 1 : nt > max ? max : nt;
	if (nt > n)
		nt = (int)n;
	if (nt == 1 || pthread_mutex_trylock(&busy) != 0) {
		for (int t = 0; t < nt; t++) {
			int64_t lo, hi;
			range(n, nt, t, &lo, &hi);
			fn(ctx, t, lo, hi);
		}
		return;
	}
	pthread_mutex_lock(&mu);
	job.fn = fn;
	job.ctx = ctx;
	job.n = n;
	job.nt = nt;
	job.pending = nt - 1;
	job.gen++;
	pthread_cond_broadcast(&go);
	pthread_mutex_unlock(&mu);
	int64_t lo, hi;
	range(n, nt, 0, &lo, &hi);
	fn(ctx, 0, lo, hi);
	pthread_mutex_lock(&mu);
	while (job.pending > 0)
		pthread_cond_wait(&done, &mu);
	pthread_mutex_unlock(&mu);
	pthread_mutex_unlock(&busy);
}
