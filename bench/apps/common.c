/* SPDX-License-Identifier: MIT */
/*
 * What the application workloads share: agreeing on a failure across ranks, the libdsm
 * counters a run moved, and a team of application threads held at a gate.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

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
int team_start(struct team *t, int n, void (*fn)(struct team *, int), void *arg, char *msg,
               size_t msglen)
{
	int ret;

	t->n = 1;
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
 * made by one thread per rank). */
void team_barrier(struct team *t, int tid)
{
	if (t->n > 1)
		pthread_barrier_wait(&t->bar);
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
	int ok = team_start(&team, nthreads, fn, arg, msg, sizeof(msg)) == nthreads;

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

void apps_emit(const struct bench_opts *o, const char *wl, size_t size, int nthreads, double t_mpi,
               const char *mpi_extra, double t_dsm, const char *dsm_extra,
               const struct stats_delta *sum)
{
	char extra[512];

	snprintf(extra, sizeof(extra), "\"version\": \"mpi\", %s", mpi_extra);
	bench_emit(o, &(struct bench_result){.workload = wl,
	                                     .metric = "time",
	                                     .unit = "s",
	                                     .value = t_mpi,
	                                     .size = size,
	                                     .extra = extra});
	snprintf(extra, sizeof(extra),
	         "\"version\": \"dsm\", %s, \"faults\": %" PRIu64 ", \"upgrades\": %" PRIu64
	         ", \"invalidations\": %" PRIu64 ", \"messages\": %" PRIu64 ", \"bytes\": %" PRIu64,
	         dsm_extra, sum->v[0], sum->v[1], sum->v[2], sum->v[3], sum->v[4]);
	bench_emit(o, &(struct bench_result){.workload = wl,
	                                     .metric = "time",
	                                     .unit = "s",
	                                     .value = t_dsm,
	                                     .threads = nthreads,
	                                     .size = size,
	                                     .baseline_name = "mpi",
	                                     .baseline = t_mpi,
	                                     .extra = extra});
}
