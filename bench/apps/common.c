/* SPDX-License-Identifier: MIT */
/*
 * What the application workloads share: agreeing on a failure across ranks, the libdsm
 * counters a run moved, a team of application threads held at a gate, the timed parts of the
 * DSM and pthreads versions, and their result lines.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <mpi.h>

#include <dsm.h>

#include "common.h"

int apps_agree(const struct bench_opts *o, const char *wl, int ok, const char *msg)
{
	int bad = ok ? o->nranks : o->rank, first;
	char buf[256];

	MPI_Allreduce(&bad, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
	if (first == o->nranks)
		return 0;
	if (o->rank == first && first != 0) {
		snprintf(buf, sizeof(buf), "%s", msg);
		MPI_Send(buf, sizeof(buf), MPI_CHAR, 0, 0, MPI_COMM_WORLD);
	}
	if (o->rank == 0) {
		if (first != 0)
			MPI_Recv(buf, sizeof(buf), MPI_CHAR, first, 0, MPI_COMM_WORLD,
			         MPI_STATUS_IGNORE);
		else
			snprintf(buf, sizeof(buf), "%s", msg);
		bench_fail(o, wl, "rank %d: %s", first, buf);
	}
	return -1;
}

void stats_take(struct stats_delta *s)
{
	dsm_stats_t st;

	memset(&st, 0, sizeof(st));
	st.struct_size = sizeof(st);
	dsm_stats(&st);
	s->v[0] = st.read_faults + st.write_faults;
	s->v[1] = st.upgrades;
	s->v[2] = st.inv_sent;
	s->v[3] = st.msgs_sent;
	s->v[4] = st.bytes_sent;
	s->v[5] = st.bytes_received;
}

void stats_sum(const struct stats_delta *before, const struct stats_delta *after,
               struct stats_delta *sum)
{
	struct stats_delta d;

	for (int k = 0; k < 6; k++)
		d.v[k] = after->v[k] - before->v[k];
	MPI_Reduce(d.v, sum->v, 6, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
}

static void *team_main(void *p)
{
	struct team_slot *s = p;
	struct team *t = s->t;
	int state;

	pthread_mutex_lock(&t->mu);
	while (t->state == 0)
		pthread_cond_wait(&t->cv, &t->mu);
	state = t->state;
	pthread_mutex_unlock(&t->mu);
	if (state > 0)
		t->fn(t, s->tid);
	return NULL;
}

/* Creates threads 1..n-1 waiting at the gate. Returns the number of threads that exist (n on
 * success) and leaves a message in msg when it falls short. */
int team_start(struct team *t, int n, bool local, void (*fn)(struct team *, int), void *arg,
               char *msg, size_t msglen)
{
	int ret;

	t->n = 1;
	t->local = local;
	t->state = 0;
	t->has_bar = 0;
	t->fn = fn;
	t->arg = arg;
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	if (n > 1 && (ret = pthread_barrier_init(&t->bar, NULL, (unsigned)n))) {
		snprintf(msg, msglen, "pthread_barrier_init: %s", strerror(ret));
		return 1;
	}
	t->has_bar = n > 1;
	for (int k = 0; k < n; k++) {
		t->slot[k].t = t;
		t->slot[k].tid = k;
	}
	for (; t->n < n; t->n++) {
		ret = pthread_create(&t->th[t->n], NULL, team_main, &t->slot[t->n]);
		if (ret) {
			snprintf(msg, msglen, "pthread_create: %s", strerror(ret));
			break;
		}
	}
	return t->n;
}

/* Opens the gate (run != 0) or sends the threads home, runs thread 0 here when running, and
 * joins the others. */
void team_finish(struct team *t, int run)
{
	pthread_mutex_lock(&t->mu);
	t->state = run ? 1 : -1;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	if (run)
		t->fn(t, 0);
	for (int k = 1; k < t->n; k++)
		pthread_join(t->th[k], NULL);
	if (t->has_bar)
		pthread_barrier_destroy(&t->bar);
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->mu);
}

/* Every thread of the rank waits, then thread 0 alone enters the DSM barrier (collectives are
 * made by one thread per rank). A local team has no other ranks to wait for. */
void team_barrier(struct team *t, int tid)
{
	if (t->n > 1)
		pthread_barrier_wait(&t->bar);
	if (t->local)
		return;
	if (tid == 0)
		dsm_barrier();
	if (t->n > 1)
		pthread_barrier_wait(&t->bar);
}

int apps_timed_team(const struct bench_opts *o, const char *wl, int nthreads,
                    void (*fn)(struct team *, int), void *arg, bool end_barrier, double *t,
                    struct stats_delta *sum)
{
	struct stats_delta before, after;
	struct team team;
	char msg[160] = "";
	int ok = team_start(&team, nthreads, false, fn, arg, msg, sizeof(msg)) == nthreads;

	if (apps_agree(o, wl, ok, msg)) {
		team_finish(&team, 0);
		return -1;
	}
	dsm_barrier();
	stats_take(&before);
	*t = bench_now();
	team_finish(&team, 1);
	if (end_barrier)
		dsm_barrier();
	*t = bench_now() - *t;
	stats_take(&after);
	stats_sum(&before, &after, sum);
	return 0;
}

int apps_pthreads_count(const struct bench_opts *o, int nthreads)
{
	long n = (long)o->nranks * nthreads;

	return n < MAX_THREADS ? (int)n : MAX_THREADS;
}

void apps_sleepy_barrier(void)
{
	const struct timespec ms = {0, 1000000};
	MPI_Request req;
	int done = 0;

	MPI_Ibarrier(MPI_COMM_WORLD, &req);
	for (;;) {
		MPI_Test(&req, &done, MPI_STATUS_IGNORE);
		if (done)
			return;
		nanosleep(&ms, NULL);
	}
}

int apps_timed_pthreads(const struct bench_opts *o, const char *wl, int nthreads,
                        void (*fn)(struct team *, int), void *arg, bool ready, const char *why,
                        double *t)
{
	struct team team;
	char msg[160] = "";
	int ok = 1;

	if (o->rank == 0 && !ready) {
		snprintf(msg, sizeof(msg), "pthreads version: %s", why);
		ok = 0;
	} else if (o->rank == 0) {
		ok = team_start(&team, nthreads, true, fn, arg, msg, sizeof(msg)) == nthreads;
		*t = bench_now();
		team_finish(&team, ok);
		*t = bench_now() - *t;
	}
	apps_sleepy_barrier();
	return apps_agree(o, wl, ok, msg);
}

void apps_emit(const struct bench_opts *o, const struct apps_result *r)
{
	char extra[640];

	snprintf(extra, sizeof(extra), "\"version\": \"mpi\", %s", r->mpi_extra);
	bench_emit(o, &(struct bench_result){.workload = r->wl,
	                                     .metric = "time",
	                                     .unit = "s",
	                                     .value = r->t_mpi,
	                                     .size = r->size,
	                                     .extra = extra});
	snprintf(extra, sizeof(extra), "\"version\": \"pthreads\", \"processes\": 1, %s",
	         r->pth_extra);
	bench_emit(o, &(struct bench_result){.workload = r->wl,
	                                     .metric = "time",
	                                     .unit = "s",
	                                     .value = r->t_pth,
	                                     .threads = r->pth_threads,
	                                     .size = r->size,
	                                     .extra = extra});
	snprintf(extra, sizeof(extra),
	         "\"version\": \"dsm\", %s, \"faults\": %" PRIu64 ", \"upgrades\": %" PRIu64
	         ", \"invalidations\": %" PRIu64 ", \"messages\": %" PRIu64 ", \"bytes\": %" PRIu64
	         ", \"pthreads\": %.6g, \"ratio_pthreads\": %.6g",
	         r->dsm_extra, r->sum->v[0], r->sum->v[1], r->sum->v[2], r->sum->v[3], r->sum->v[4],
	         r->t_pth, r->t_pth > 0 ? r->t_dsm / r->t_pth : 0);
	bench_emit(o, &(struct bench_result){.workload = r->wl,
	                                     .metric = "time",
	                                     .unit = "s",
	                                     .value = r->t_dsm,
	                                     .threads = r->nthreads,
	                                     .size = r->size,
	                                     .baseline_name = "mpi",
	                                     .baseline = r->t_mpi,
	                                     .extra = extra});
}

void apps_mw_stats_take(struct apps_mw_stats *s)
{
	dsm_stats_t st;

	memset(&st, 0, sizeof(st));
	st.struct_size = sizeof(st);
	dsm_stats(&st);
	s->v[0] = st.mw_faults;
	s->v[1] = st.diffs_sent;
	s->v[2] = st.diff_bytes;
	s->v[3] = st.mw_invalidations;
}

void apps_mw_stats_sum(const struct apps_mw_stats *before, struct apps_mw_stats *sum)
{
	struct apps_mw_stats now, d;

	apps_mw_stats_take(&now);
	for (int k = 0; k < 4; k++)
		d.v[k] = now.v[k] - before->v[k];
	MPI_Reduce(d.v, sum->v, 4, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
}

void apps_emit_mw(const struct bench_opts *o, const char *wl, size_t size, int nthreads,
                  double t_mw, double t_mpi, double t_dsm, const char *extra,
                  const struct apps_mw_stats *s)
{
	char x[640];

	snprintf(x, sizeof(x),
	         "\"version\": \"dsm_mw\", %s, \"mw_faults\": %" PRIu64 ", \"diffs\": %" PRIu64
	         ", \"diff_bytes\": %" PRIu64 ", \"mw_invalidations\": %" PRIu64
	         ", \"dsm\": %.6g, \"ratio_dsm\": %.6g",
	         extra, s->v[0], s->v[1], s->v[2], s->v[3], t_dsm, t_dsm > 0 ? t_mw / t_dsm : 0);
	bench_emit(o, &(struct bench_result){.workload = wl,
	                                     .metric = "time",
	                                     .unit = "s",
	                                     .value = t_mw,
	                                     .threads = nthreads,
	                                     .size = size,
	                                     .baseline_name = "mpi",
	                                     .baseline = t_mpi,
	                                     .extra = x});
}

void apps_home_rows(const void *a, size_t row_bytes, size_t n, int rank, size_t *lo, size_t *hi)
{
	*lo = *hi = 0;
	for (size_t i = 0; i < n; i++) {
		if (dsm_home((const char *)a + i * row_bytes) != rank)
			continue;
		if (*hi == 0)
			*lo = i;
		*hi = i + 1;
	}
}
