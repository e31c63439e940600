/* One pool of worker threads for every kernel call (see lfk.h).
 *
 * The workers are started at the first call that splits, and sleep on a condition variable
 * between calls: a call wakes them, each runs its contiguous range of units, the caller runs the
 * first range and waits for the others. Nothing spins, before or after a call, so the next BLAS
 * product gets every core (what the fork-join per call that this replaced also achieved, without
 * a pthread_create per call: ~30-60 µs each on the development VM).
 *
 * One call at a time uses the pool: a call from a second Python thread while the pool is busy
 * (both have released the GIL) runs on its own thread. After fork() the child has no workers: it
 * starts its own at its first split call. */
#define _GNU_SOURCE
#include <pthread.h>
#include "lfk.h"

#define LF_MAX_THREADS 64

static int lf_threads = 1;

int lf_get_threads(void) { return lf_threads; }

void lf_set_threads(int n) { lf_threads = n < 1 ? 1 : (n > LF_MAX_THREADS ? LF_MAX_THREADS : n); }

static struct {
    pthread_mutex_t mu;       /* guards everything below */
    pthread_cond_t wake;      /* a new job (generation changed) */
    pthread_cond_t done;      /* pending reached 0 */
    pthread_mutex_t busy;     /* held by the call that uses the pool */
    int started;              /* workers running (worker w runs range w + 1) */
    unsigned long generation; /* bumped for every job */
    int pending;              /* ranges of the job not finished yet */
    lf_range_fn fn;
    void *arg;
    idx_t units;
    int nt; /* ranges of the job (caller + nt − 1 workers) */
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_MUTEX_INITIALIZER};

/* the generation current when worker w was started: it waits for the next one (the job of the
 * call that starts it is bumped after the start, under the same lock) */
static unsigned long lf_start_gen[LF_MAX_THREADS];

static void *lf_worker(void *p) {
    const int w = (int)(ptrdiff_t)p; /* this worker runs range w + 1 */
    pthread_mutex_lock(&pool.mu);
    unsigned long seen = lf_start_gen[w];
    for (;;) {
        while (pool.generation == seen) pthread_cond_wait(&pool.wake, &pool.mu);
        seen = pool.generation;
        if (w + 1 >= pool.nt) continue; /* not needed for this job */
        lf_range_fn fn = pool.fn;
        void *arg = pool.arg;
        idx_t units = pool.units, nt = pool.nt;
        pthread_mutex_unlock(&pool.mu);
        fn(arg, units * (w + 1) / nt, units * (w + 2) / nt);
        pthread_mutex_lock(&pool.mu);
        if (--pool.pending == 0) pthread_cond_signal(&pool.done);
    }
    return NULL;
}

/* start workers up to `want` (called with pool.mu held); returns how many run */
static int lf_grow(int want) {
    while (pool.started < want) {
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        lf_start_gen[pool.started] = pool.generation;
        int err = pthread_create(&th, &attr, lf_worker, (void *)(ptrdiff_t)pool.started);
        pthread_attr_destroy(&attr);
        if (err) break;
#ifdef __linux__
        pthread_setname_np(th, "lfk-worker"); /* so that a test can find them in /proc */
#endif
        pool.started++;
    }
    return pool.started;
}

static void lf_after_fork_child(void) {
    /* the child has the caller's thread only: no workers, fresh locks */
    pthread_mutex_init(&pool.mu, NULL);
    pthread_mutex_init(&pool.busy, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pthread_cond_init(&pool.done, NULL);
    pool.started = 0;
    pool.pending = 0;
}

static pthread_once_t lf_once = PTHREAD_ONCE_INIT;
static void lf_init(void) { pthread_atfork(NULL, NULL, lf_after_fork_child); }

void lf_parallel(lf_range_fn fn, void *arg, idx_t units, idx_t cost_per_unit) {
    int nt = lf_threads;
    if (units <= 0) return;
    if (nt > units) nt = (int)units;
    if (nt <= 1 || units * cost_per_unit < LF_PAR_MIN || pthread_mutex_trylock(&pool.busy) != 0) {
        fn(arg, 0, units);
        return;
    }
    pthread_once(&lf_once, lf_init);
    pthread_mutex_lock(&pool.mu);
    int workers = lf_grow(nt - 1);
    if (nt > workers + 1) nt = workers + 1;
    pool.fn = fn;
    pool.arg = arg;
    pool.units = units;
    pool.nt = nt;
    pool.pending = nt - 1;
    pool.generation++;
    if (nt > 1) pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.mu);
    fn(arg, 0, units / nt);
    pthread_mutex_lock(&pool.mu);
    while (pool.pending > 0) pthread_cond_wait(&pool.done, &pool.mu);
    pthread_mutex_unlock(&pool.mu);
    pthread_mutex_unlock(&pool.busy);
}
