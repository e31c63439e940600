/* Fork-join over pthreads, one fork per call (see lfk.h). */
#include <pthread.h>
#include "lfk.h"

#define LF_MAX_THREADS 64

static int lf_threads = 1;

int lf_get_threads(void) { return lf_threads; }

void lf_set_threads(int n) { lf_threads = n < 1 ? 1 : (n > LF_MAX_THREADS ? LF_MAX_THREADS : n); }

struct lf_job {
    lf_range_fn fn;
    void *arg;
    idx_t first, end;
};

static void *lf_run(void *p) {
    struct lf_job *job = (struct lf_job *)p;
    job->fn(job->arg, job->first, job->end);
    return NULL;
}

void lf_parallel(lf_range_fn fn, void *arg, idx_t units, idx_t cost_per_unit) {
    int nt = lf_threads;
    if (units <= 0) return;
    if (nt > units) nt = (int)units;
    if (nt <= 1 || units * cost_per_unit < LF_PAR_MIN) {
        fn(arg, 0, units);
        return;
    }
    pthread_t th[LF_MAX_THREADS];
    struct lf_job jobs[LF_MAX_THREADS];
    int started[LF_MAX_THREADS];
    for (int t = 0; t < nt; t++) {
        jobs[t].fn = fn;
        jobs[t].arg = arg;
        jobs[t].first = units * t / nt;
        jobs[t].end = units * (t + 1) / nt;
        started[t] = 0;
    }
    for (int t = 1; t < nt; t++)
        started[t] = pthread_create(&th[t], NULL, lf_run, &jobs[t]) == 0;
    fn(arg, jobs[0].first, jobs[0].end);
    for (int t = 1; t < nt; t++) {
        if (started[t])
            pthread_join(th[t], NULL);
        else /* could not start a thread: do its share here */
            fn(arg, jobs[t].first, jobs[t].end);
    }
}
