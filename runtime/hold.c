/* SPDX-License-Identifier: MIT */
#include "runtime/hold.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "coherence/coherence.h"
#include "common/time.h"
#include "common/vec.h"
#include "runtime/fatal.h"
#include "runtime/mw.h"
#include "runtime/prefetch.h"
#include "runtime/rt.h"
#include "runtime/stats.h"

/* How often to look whether a held line's threads have run, while a request waits for it. */
#define HOLD_WATCH_NS 20000ull

void dsm_rt_holds_init(struct dsm_rt *rt)
{
	rt->holds.hold_ns = rt->cfg.hold_ns;
	rt->holds.early = rt->cfg.hold_early;
	rt->holds.woken_line = UINT64_MAX;
}

void dsm_rt_holds_fini(struct dsm_rt *rt)
{
	free(rt->holds.v);
	free(rt->holds.faults);
	for (unsigned i = 0; i < DSM_RT_STAT_FDS; i++)
		if (rt->holds.stat_fd[i].tid != 0)
			close(rt->holds.stat_fd[i].fd);
}

/* ---- waiters ------------------------------------------------------------------------------ */

/* The open schedstat file of thread @tid, opened now if it is not; -1 if it is gone. */
static int stat_fd(struct dsm_rt_holds *h, int32_t tid)
{
	char path[64];
	unsigned slot;
	int fd;

	for (unsigned i = 0; i < DSM_RT_STAT_FDS; i++)
		if (h->stat_fd[i].tid == tid)
			return h->stat_fd[i].fd;
	snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	slot = h->stat_next++ % DSM_RT_STAT_FDS;
	for (unsigned i = 0; i < DSM_RT_STAT_FDS; i++)
		if (h->stat_fd[i].tid == 0) {
			slot = i;
			break;
		}
	if (h->stat_fd[slot].tid != 0)
		close(h->stat_fd[slot].fd);
	h->stat_fd[slot].tid = tid;
	h->stat_fd[slot].fd = fd;
	return fd;
}

static void stat_fd_drop(struct dsm_rt_holds *h, int fd)
{
	for (unsigned i = 0; i < DSM_RT_STAT_FDS; i++)
		if (h->stat_fd[i].tid != 0 && h->stat_fd[i].fd == fd) {
			close(fd);
			h->stat_fd[i].tid = 0;
		}
}

/*
 * How often thread @tid has been scheduled in (the third field of its schedstat), or
 * UINT64_MAX when it is gone or the kernel does not say. Parsed by hand: no stdio here.
 * The file stays open: a thread that exits makes its reads fail (ESRCH), and a new thread
 * that gets the same id then gets a file of its own.
 */
static uint64_t thread_runs(struct dsm_rt_holds *h, int32_t tid)
{
	char buf[128], *p = buf, *end;
	uint64_t v = UINT64_MAX;
	ssize_t n = -1;

	for (int attempt = 0; attempt < 2 && n <= 0; attempt++) {
		int fd = stat_fd(h, tid);

		if (fd < 0)
			return UINT64_MAX;
		n = pread(fd, buf, sizeof(buf) - 1, 0);
		if (n <= 0)
			stat_fd_drop(h, fd); /* its thread is gone: the id may be another's now */
	}
	if (n <= 0)
		return UINT64_MAX;
	buf[n] = '\0';
	for (int field = 0; field < 3; field++, p = end) {
		v = strtoull(p, &end, 10);
		if (end == p)
			return UINT64_MAX;
	}
	return v;
}

/* Adds a thread that faulted, with its count of runs taken while it is blocked in the fault. */
static void waiter_add(struct dsm_rt_waiters *w, int32_t tid, uint64_t runs)
{
	if (tid == 0 || runs == UINT64_MAX) {
		w->unknown = true;
		return;
	}
	for (unsigned i = 0; i < w->n; i++)
		if (w->tid[i] == tid) {
			w->runs[i] = runs; /* a later fault of the same thread: its count now */
			return;
		}
	if (w->n == DSM_RT_WAITERS) {
		w->unknown = true;
		return;
	}
	w->tid[w->n] = tid;
	w->runs[w->n++] = runs;
}

/* ---- fault latency ------------------------------------------------------------------------ */

/* A waiter's run count not read yet (see fault_sample). */
#define RUNS_PENDING (UINT64_MAX - 1)

void dsm_rt_fault_begin(struct dsm_rt *rt, uint64_t line, int32_t tid)
{
	uint64_t runs = rt->holds.early && tid ? RUNS_PENDING : UINT64_MAX;

	for (size_t i = 0; i < rt->holds.nfaults; i++)
		if (rt->holds.faults[i].line == line) {
			waiter_add(&rt->holds.faults[i].w, tid, runs);
			return;
		}
	if (DSM_VEC_RESERVE(rt->holds.faults, rt->holds.faults_cap, rt->holds.nfaults + 1) < 0)
		return; /* a statistic is lost, and the hold will run its full time */
	rt->holds.faults[rt->holds.nfaults] =
	        (struct dsm_rt_pending_fault){.line = line, .t0_ns = dsm_now_ns()};
	waiter_add(&rt->holds.faults[rt->holds.nfaults++].w, tid, runs);
}

bool dsm_rt_fault_pending(struct dsm_rt *rt, uint64_t line)
{
	for (size_t i = 0; i < rt->holds.nfaults; i++)
		if (rt->holds.faults[i].line == line)
			return true;
	return false;
}

static void waiters_set_runs(struct dsm_rt_waiters *w, int32_t tid, uint64_t runs)
{
	for (unsigned i = 0; i < w->n; i++)
		if (w->tid[i] == tid && w->runs[i] == RUNS_PENDING) {
			w->runs[i] = runs;
			if (runs == UINT64_MAX)
				w->unknown = true;
		}
}

/*
 * Reads the run count of a thread that faulted on @line. The count moves only when the
 * thread is scheduled in, which cannot happen between its fault and its wake-up: any read
 * in between is exact, and a read after the wake-up is only higher (the hold then waits for
 * another run or its timer, never less). The read costs microseconds, so for a remote home
 * it is done once the request is out, overlapping the wait for the reply.
 */
void dsm_rt_fault_sample(struct dsm_rt *rt, uint64_t line, int32_t tid)
{
	uint64_t runs;

	if (!rt->holds.early || tid == 0)
		return;
	runs = thread_runs(&rt->holds, tid);
	for (size_t i = 0; i < rt->holds.nfaults; i++)
		if (rt->holds.faults[i].line == line)
			waiters_set_runs(&rt->holds.faults[i].w, tid, runs);
	for (size_t i = 0; i < rt->holds.n; i++)
		if (rt->holds.v[i].line == line)
			waiters_set_runs(&rt->holds.v[i].w, tid, runs);
}

/* The line is installed: count the latency, and keep its waiters for the hold. */
void dsm_rt_fault_end(struct dsm_rt *rt, uint64_t line)
{
	/* A prefetched line that no thread faulted on has no waiters, and says so. */
	bool prefetched = dsm_rt_prefetch_arrived(rt, line);

	rt->holds.woken_line = line;
	rt->holds.woken = (struct dsm_rt_waiters){.unknown = !prefetched};
	for (size_t i = 0; i < rt->holds.nfaults; i++) {
		if (rt->holds.faults[i].line != line)
			continue;
		dsm_rt_count_latency(rt, dsm_now_ns() - rt->holds.faults[i].t0_ns);
		rt->holds.woken = rt->holds.faults[i].w;
		rt->holds.faults[i] = rt->holds.faults[--rt->holds.nfaults];
		return;
	}
}

/* ---- holds -------------------------------------------------------------------------------- */

/* One timer per line: a grant during a hold (an upgrade) extends it and adds its waiters,
 * since the engine's hold is a flag that a single HOLD_DONE ends. Armed for @known_ns where
 * its threads are known (their runs end it early), for DSM_HOLD_US where not. */
static void hold_arm(struct dsm_rt *rt, uint64_t line, uint64_t known_ns)
{
	struct dsm_rt_waiters w = {.unknown = true};
	uint64_t ns;

	if (rt->holds.woken_line == line)
		w = rt->holds.woken;
	rt->holds.woken_line = UINT64_MAX;
	ns = w.unknown ? rt->holds.hold_ns : known_ns;
	for (size_t i = 0; i < rt->holds.n; i++)
		if (rt->holds.v[i].line == line) {
			struct dsm_rt_hold *h = &rt->holds.v[i];

			h->deadline_ns = dsm_now_ns() + (h->w.unknown ? rt->holds.hold_ns : ns);
			h->w.unknown |= w.unknown;
			for (unsigned k = 0; k < w.n; k++)
				waiter_add(&h->w, w.tid[k], w.runs[k]);
			return;
		}
	if (DSM_VEC_RESERVE(rt->holds.v, rt->holds.cap, rt->holds.n + 1) < 0)
		dsm_rt_fatal(rt, "out of memory for hold timers");
	DSM_RT_COUNT(rt, holds, 1);
	/* Nobody to wait for (a prefetch no thread faulted on): due at once. */
	rt->holds.v[rt->holds.n++] = (struct dsm_rt_hold){
	        .line = line, .deadline_ns = dsm_now_ns() + (w.unknown || w.n ? ns : 0), .w = w};
}

void dsm_rt_hold_add(struct dsm_rt *rt, uint64_t line)
{
	hold_arm(rt, line, rt->holds.hold_ns);
}

void dsm_rt_hold_add_own(struct dsm_rt *rt, uint64_t line, uint64_t ns)
{
	hold_arm(rt, line, ns);
}

enum hold_verdict { HOLD_KEEP, HOLD_WATCH, HOLD_END };

/*
 * A hold need not run its full time once every thread it was for has been scheduled in
 * again: a thread woken from a fault retries its access first thing. Asked only while a
 * message waits for the hold to end (keeping a line nobody asks for costs nothing).
 * HOLD_WATCH: someone waits and a thread has not run yet; ask again soon.
 */
static enum hold_verdict hold_check(struct dsm_rt *rt, const struct dsm_rt_hold *h)
{
	dsm_coh_line_info_t info;

	if (!rt->holds.early || h->w.unknown)
		return HOLD_KEEP;
	/* A multiple-writer line is not the engine's: a release or an acquire waits for it. */
	if (dsm_rt_mw_owns(rt, h->line)) {
		if (!dsm_rt_mw_waits(rt))
			return HOLD_KEEP;
	} else {
		dsm_coh_line_info(rt->node, h->line, &info);
		if (!info.deferred)
			return HOLD_KEEP;
	}
	for (unsigned i = 0; i < h->w.n; i++) {
		uint64_t r = h->w.runs[i] == RUNS_PENDING ? RUNS_PENDING
		                                          : thread_runs(&rt->holds, h->w.tid[i]);

		if (r == h->w.runs[i])
			return HOLD_WATCH; /* not read yet, or not run since */
	}
	return HOLD_END;
}

void dsm_rt_hold_forget(struct dsm_rt *rt, uint64_t first, uint64_t n)
{
	for (size_t i = 0; i < rt->holds.n;) {
		if (rt->holds.v[i].line - first < n)
			rt->holds.v[i] = rt->holds.v[--rt->holds.n];
		else
			i++;
	}
}

bool dsm_rt_hold_next_due(struct dsm_rt *rt, uint64_t now, size_t *i, uint64_t *line_p,
                          uint64_t *next_p)
{
	while (*i < rt->holds.n) {
		struct dsm_rt_hold *h = &rt->holds.v[*i];

		if (h->deadline_ns > now) {
			enum hold_verdict v = hold_check(rt, h);

			if (v != HOLD_END) {
				uint64_t t = v == HOLD_WATCH ? now + HOLD_WATCH_NS : h->deadline_ns;

				if (t > h->deadline_ns)
					t = h->deadline_ns;
				if (t < *next_p)
					*next_p = t;
				(*i)++;
				continue;
			}
			DSM_RT_COUNT(rt, holds_early, 1);
		}
		*line_p = h->line;
		/* The last one takes its slot, and is looked at next. */
		rt->holds.v[*i] = rt->holds.v[--rt->holds.n];
		return true;
	}
	return false;
}
