/* SPDX-License-Identifier: MIT */
/*
 * The event loop thread. Each turn reads, in order: protocol and runtime
 * messages from the transport, faults from the userfaultfd, requests from
 * application threads, and expired holds; it feeds the coherence engine and
 * runs the actions it returns, in order. With nothing to do it spins briefly
 * while a reply is due and the node has a core to spare, and otherwise sleeps
 * in epoll after announcing it to the transport (so peers ring its doorbell).
 *
 * The loop never touches a heap page it may not hold (it would fault on
 * itself), never calls MPI, and logs only through write(2).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "runtime/log.h"
#include "runtime/rt.h"

#define BATCH 32
/* How often to look whether a held line's threads have run, while a request waits for it. */
#define HOLD_WATCH_NS 20000ull
/* With nothing to do and a transport that cannot sleep yet: poll this long, then nap this
 * long at a time. */
#define NAP_AFTER_NS 5000ull
#define NAP_NS       50000ull
/* The longest sleep: what a wake-up the transport missed can cost. */
#define SLEEP_CAP_NS 10000000ull

/*
 * ThreadSanitizer cannot see that an application thread's stores to a line
 * happen before the loop copies it out: the order goes through the kernel's
 * write-protect and its TLB flush (TRAPS.md). The loop's reads of the heap
 * mapping are hidden from it.
 */
#if defined(__SANITIZE_THREAD__)
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
#define HEAP_READS_BEGIN() AnnotateIgnoreReadsBegin(__FILE__, __LINE__)
#define HEAP_READS_END()   AnnotateIgnoreReadsEnd(__FILE__, __LINE__)
#else
#define HEAP_READS_BEGIN() ((void)0)
#define HEAP_READS_END()   ((void)0)
#endif

/* memcpy for copies that may read the heap mapping (a line this rank holds). */
static void copy_line(void *dst, const void *src, size_t len)
{
	HEAP_READS_BEGIN();
	memcpy(dst, src, len);
	HEAP_READS_END();
}
#define EXIT_PEER_DEAD 3

struct dsm_rt *dsm_rt_g;

uint64_t dsm_rt_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* An error the loop cannot recover from: say so in one line and leave. */
__attribute__((noreturn, format(printf, 2, 3))) static void loop_fatal(int code, const char *fmt,
                                                                       ...);

static void loop_fatal(int code, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	DSM_LOG(DSM_LOG_ERROR, "%s", buf);
	if (dsm_rt_g && dsm_rt_g->tp)
		dsm_tp_abandon(dsm_rt_g->tp);
	_exit(code);
}

/*
 * Rank @peer died: say so and leave. The transport has told the live ranks already (a
 * notice each, so that they name @peer, not us, as the cause); give those notices 20 ms of
 * progress to leave (tcp writes them from the progress of later polls), then exit.
 */
__attribute__((noreturn)) static void peer_dead_exit(struct dsm_rt *rt, int peer)
{
	uint64_t until = dsm_rt_now_ns() + 20000000ull;
	struct timespec tick = {0, 200000};

	DSM_LOG(DSM_LOG_ERROR,
	        "rank %d died (killed, or exited without dsm_finalize); rank %d exits", peer,
	        rt->rank);
	while (dsm_rt_now_ns() < until) {
		struct dsm_tp_event ev[16];

		if (dsm_tp_poll(rt->tp, ev, 16) < 0)
			break;
		nanosleep(&tick, NULL);
	}
	dsm_tp_abandon(rt->tp); /* our shm region would outlive us in /dev/shm */
	_exit(EXIT_PEER_DEAD);
}

/* ---- waiters ------------------------------------------------------------------------------ */

/* How often thread @tid has been scheduled in (the third field of its schedstat), or
 * UINT64_MAX when it is gone or the kernel does not say. Parsed by hand: no stdio here. */
static uint64_t thread_runs(int32_t tid)
{
	char path[64], buf[128], *p = buf, *end;
	uint64_t v = UINT64_MAX;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return UINT64_MAX;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
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

static void fault_begin(struct dsm_rt *rt, uint64_t line, int32_t tid)
{
	uint64_t runs = rt->hold_early && tid ? RUNS_PENDING : UINT64_MAX;

	for (size_t i = 0; i < rt->nfaults; i++)
		if (rt->faults[i].line == line) {
			waiter_add(&rt->faults[i].w, tid, runs);
			return;
		}
	if (rt->nfaults == rt->faults_cap) {
		size_t cap = rt->faults_cap ? 2 * rt->faults_cap : 64;
		void *v = realloc(rt->faults, cap * sizeof(*rt->faults));
		if (v == NULL)
			return; /* a statistic is lost, and the hold will run its full time */
		rt->faults = v;
		rt->faults_cap = cap;
	}
	rt->faults[rt->nfaults] =
	        (struct dsm_rt_pending_fault){.line = line, .t0_ns = dsm_rt_now_ns()};
	waiter_add(&rt->faults[rt->nfaults++].w, tid, runs);
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
static void fault_sample(struct dsm_rt *rt, uint64_t line, int32_t tid)
{
	uint64_t runs;

	if (!rt->hold_early || tid == 0)
		return;
	runs = thread_runs(tid);
	for (size_t i = 0; i < rt->nfaults; i++)
		if (rt->faults[i].line == line)
			waiters_set_runs(&rt->faults[i].w, tid, runs);
	for (size_t i = 0; i < rt->nholds; i++)
		if (rt->holds[i].line == line)
			waiters_set_runs(&rt->holds[i].w, tid, runs);
}

/* The line is installed: count the latency, and keep its waiters for the hold. */
static void fault_end(struct dsm_rt *rt, uint64_t line)
{
	rt->woken_line = line;
	rt->woken = (struct dsm_rt_waiters){.unknown = true};
	for (size_t i = 0; i < rt->nfaults; i++) {
		if (rt->faults[i].line != line)
			continue;
		uint64_t us = (dsm_rt_now_ns() - rt->faults[i].t0_ns) / 1000;
		unsigned b = us ? 64 - (unsigned)__builtin_clzll(us) : 0;

		if (b >= DSM_STATS_LAT_BUCKETS)
			b = DSM_STATS_LAT_BUCKETS - 1;
		atomic_fetch_add_explicit(&rt->cnt.lat[b], 1, memory_order_relaxed);
		rt->woken = rt->faults[i].w;
		rt->faults[i] = rt->faults[--rt->nfaults];
		return;
	}
}

/* ---- holds -------------------------------------------------------------------------------- */

/* One timer per line: a grant during a hold (an upgrade) extends it and adds its waiters,
 * since the engine's hold is a flag that a single HOLD_DONE ends. */
static void hold_add(struct dsm_rt *rt, uint64_t line)
{
	struct dsm_rt_waiters w = {.unknown = true};

	if (rt->woken_line == line)
		w = rt->woken;
	rt->woken_line = UINT64_MAX;
	for (size_t i = 0; i < rt->nholds; i++)
		if (rt->holds[i].line == line) {
			struct dsm_rt_hold *h = &rt->holds[i];

			h->deadline_ns = dsm_rt_now_ns() + rt->hold_ns;
			h->w.unknown |= w.unknown;
			for (unsigned k = 0; k < w.n; k++)
				waiter_add(&h->w, w.tid[k], w.runs[k]);
			return;
		}
	if (rt->nholds == rt->holds_cap) {
		size_t cap = rt->holds_cap ? 2 * rt->holds_cap : 64;
		void *v = realloc(rt->holds, cap * sizeof(*rt->holds));
		if (v == NULL)
			loop_fatal(1, "out of memory for hold timers");
		rt->holds = v;
		rt->holds_cap = cap;
	}
	atomic_fetch_add_explicit(&rt->cnt.holds, 1, memory_order_relaxed);
	rt->holds[rt->nholds++] = (struct dsm_rt_hold){
	        .line = line, .deadline_ns = dsm_rt_now_ns() + rt->hold_ns, .w = w};
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

	if (!rt->hold_early || h->w.unknown)
		return HOLD_KEEP;
	dsm_coh_line_info(rt->node, h->line, &info);
	if (!info.deferred)
		return HOLD_KEEP;
	for (unsigned i = 0; i < h->w.n; i++) {
		uint64_t r = h->w.runs[i] == RUNS_PENDING ? RUNS_PENDING : thread_runs(h->w.tid[i]);

		if (r == h->w.runs[i])
			return HOLD_WATCH; /* not read yet, or not run since */
	}
	return HOLD_END;
}

/* ---- actions ------------------------------------------------------------------------------ */

/* The home segment's copy of @line, opened first under strict overcommit (the loop must
 * not take a SIGSEGV). */
static char *home_line(struct dsm_rt *rt, uint64_t line)
{
	char *p = rt->home + (line << rt->layout.line_shift);

	if (dsm_rt_heap_open_addr(&rt->homeseg, p) < 0)
		loop_fatal(1, "cannot open the home segment under strict overcommit: the commit "
		              "limit is reached");
	return p;
}

/* ---- grants by RDMA read ------------------------------------------------------------------ */

#define STAGING_KEY_BASE (1ull << 32)

/* A staging buffer for one line's read: from the free list, else a new registered one. */
static struct dsm_rt_staging *staging_get(struct dsm_rt *rt)
{
	size_t ls = (size_t)1 << rt->layout.line_shift;
	struct dsm_rt_staging *s = rt->staging_free, **all;
	int ret;

	if (s) {
		rt->staging_free = s->next;
		return s;
	}
	all = realloc(rt->staging_all, (rt->nstaging + 1) * sizeof(*all));
	if (all == NULL)
		loop_fatal(1, "out of memory for RDMA staging buffers");
	rt->staging_all = all;
	s = calloc(1, sizeof(*s));
	if (s == NULL || posix_memalign(&s->buf, (size_t)rt->cfg.page_size, ls) != 0)
		loop_fatal(1, "out of memory for RDMA staging buffers");
	/* Keys below 1 << 40 are no segment's (transport/seg.c): unique within the domain. */
	ret = dsm_tp_mr_reg(rt->tp, s->buf, ls, STAGING_KEY_BASE + rt->nstaging, &s->mr);
	if (ret < 0)
		loop_fatal(1, "registering an RDMA staging buffer of %zu bytes: %s", ls,
		           dsm_strerror(ret));
	all[rt->nstaging++] = s;
	return s;
}

static void staging_put(struct dsm_rt *rt, struct dsm_rt_staging *s)
{
	s->next = rt->staging_free;
	rt->staging_free = s;
}

/* The home grants by RDMA: the line's chunk of the home segment must be registered. */
static int home_expose(struct dsm_rt *rt, uint64_t line)
{
	size_t ls = (size_t)1 << rt->layout.line_shift;

	home_line(rt, line); /* opened under strict overcommit */
	return dsm_tp_seg_populate(rt->tpseg, (size_t)line << rt->layout.line_shift, ls);
}

static int rdma_read_line(struct dsm_rt *rt, uint64_t line, int home)
{
	size_t ls = (size_t)1 << rt->layout.line_shift;
	struct dsm_rt_staging *s = staging_get(rt);
	int ret;

	s->line = line;
	ret = dsm_tp_seg_read(rt->tpseg, home, (size_t)line << rt->layout.line_shift, s->buf, ls,
	                      s->mr, s);
	if (ret < 0)
		staging_put(rt, s);
	return ret;
}

static const void *action_src(struct dsm_rt *rt, int src, uint64_t line, const void *msg_data)
{
	switch (src) {
	case DSM_COH_SRC_MSG:
		return msg_data;
	case DSM_COH_SRC_MAP:
		return (const void *)dsm_coh_line_addr(&rt->layout, line);
	case DSM_COH_SRC_HOME:
		return home_line(rt, line);
	case DSM_COH_SRC_STAGING:
		return rt->staging_cur && rt->staging_cur->line == line ? rt->staging_cur->buf
		                                                        : NULL;
	default:
		return NULL;
	}
}

static void count(struct dsm_rt *rt, unsigned counter)
{
	atomic_uint_fast64_t *c = NULL;

	switch (counter) {
	case DSM_COH_CNT_READ_FAULT:
		c = &rt->cnt.read_faults;
		break;
	case DSM_COH_CNT_WRITE_FAULT:
		c = &rt->cnt.write_faults;
		break;
	case DSM_COH_CNT_UPGRADE:
		c = &rt->cnt.upgrades;
		break;
	case DSM_COH_CNT_STALE_FAULT:
		c = &rt->cnt.stale_faults;
		break;
	case DSM_COH_CNT_INV_SENT:
		c = &rt->cnt.inv_sent;
		break;
	case DSM_COH_CNT_INV_RECEIVED:
		c = &rt->cnt.inv_received;
		break;
	default:
		return;
	}
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static void run_action(struct dsm_rt *rt, const dsm_coh_action_t *a, const void *msg_data)
{
	size_t ls = (size_t)1 << rt->layout.line_shift;
	uint64_t addr = dsm_coh_line_addr(&rt->layout, a->line);
	const void *src = action_src(rt, a->src, a->line, msg_data);
	int ret = 0;

	if (dsm_rt_log_level() >= DSM_LOG_DEBUG)
		DSM_LOG(DSM_LOG_DEBUG, "action %u line %llu peer %u msg %s src %u", a->type,
		        (unsigned long long)a->line, a->peer,
		        a->type == DSM_COH_ACT_SEND ? dsm_coh_msg_name(a->msg.type) : "-", a->src);
	if (a->src != DSM_COH_SRC_NONE && src == NULL)
		loop_fatal(
		        1,
		        "internal error: coherence action %u on line %llu has no data (source %u)",
		        a->type, (unsigned long long)a->line, a->src);
	switch (a->type) {
	case DSM_COH_ACT_SEND: {
		size_t len = sizeof(a->msg);

		memcpy(rt->scratch, &a->msg, sizeof(a->msg));
		if ((a->msg.flags & DSM_COH_MSGF_RDMA) &&
		    (a->msg.type == DSM_COH_MSG_GRANT_S || a->msg.type == DSM_COH_MSG_GRANT_M)) {
			ret = home_expose(rt, a->line);
			if (ret < 0)
				break;
			atomic_fetch_add_explicit(&rt->cnt.bytes_sent, ls, memory_order_relaxed);
		}
		if (a->msg.flags & DSM_COH_MSGF_DATA) {
			copy_line(rt->scratch + len, src, ls);
			len += ls;
			atomic_fetch_add_explicit(&rt->cnt.bytes_sent, ls, memory_order_relaxed);
		}
		ret = dsm_tp_send(rt->tp, (int)a->peer, DSM_RT_MSG_COH, rt->scratch, len);
		break;
	}
	case DSM_COH_ACT_INSTALL_RO:
	case DSM_COH_ACT_INSTALL_RW:
		if (a->src == DSM_COH_SRC_NONE)
			ret = dsm_rt_region_protect(&rt->region, addr, ls, false);
		else
			ret = dsm_rt_region_install(&rt->region, addr, src, ls,
			                            a->type == DSM_COH_ACT_INSTALL_RW);
		fault_end(rt, a->line);
		break;
	case DSM_COH_ACT_WRITE_PROTECT:
		ret = dsm_rt_region_protect(&rt->region, addr, ls, true);
		break;
	case DSM_COH_ACT_ZAP:
		ret = dsm_rt_region_zap(&rt->region, addr, ls);
		break;
	case DSM_COH_ACT_STORE_HOME:
		copy_line(home_line(rt, a->line), src, ls);
		break;
	case DSM_COH_ACT_WAKE:
		ret = dsm_rt_region_wake(&rt->region, addr, ls);
		break;
	case DSM_COH_ACT_HOLD:
		hold_add(rt, a->line);
		break;
	case DSM_COH_ACT_COUNT:
		count(rt, a->counter);
		break;
	case DSM_COH_ACT_RDMA_READ:
		ret = rdma_read_line(rt, a->line, (int)a->peer);
		break;
	default: /* RDMA_WRITE: write-backs travel inline */
		ret = -ENOSYS;
	}
	if (ret < 0 && ret != DSM_ERR_PEER_DEAD)
		loop_fatal(1, "internal error: coherence action %u on line %llu failed: %s",
		           a->type, (unsigned long long)a->line, dsm_strerror(ret));
}

/*
 * The engine lists the one action that reads a line's mapping (the copy out of a give-up)
 * after its write-protect and before its zap (coherence/PROTOCOL.md, "Giving up a line").
 * Were it ever otherwise the loop would fault on its own userfaultfd and hang the rank:
 * check it, and fail loudly instead.
 */
static bool zapped_earlier(const dsm_coh_actions_t *acts, size_t i)
{
	for (size_t j = i; j-- > 0;) {
		const dsm_coh_action_t *a = &acts->v[j];

		if (a->line != acts->v[i].line)
			continue;
		if (a->type == DSM_COH_ACT_ZAP)
			return true;
		if (a->type == DSM_COH_ACT_INSTALL_RO || a->type == DSM_COH_ACT_INSTALL_RW)
			return false; /* the mapping holds the line again */
	}
	return false;
}

/* Feeds one event to the engine and runs what it says. DSM_ERR_PROTOCOL: dropped. */
static int engine(struct dsm_rt *rt, const dsm_coh_event_t *ev, const void *msg_data)
{
	int ret;

	rt->acts.n = 0;
	ret = dsm_coh_handle(rt->node, ev, &rt->acts);
	if (ret == DSM_ERR_PROTOCOL)
		return ret;
	if (ret < 0)
		loop_fatal(1, "internal error: the coherence engine failed: %s", dsm_strerror(ret));
	for (size_t i = 0; i < rt->acts.n; i++) {
		const dsm_coh_action_t *a = &rt->acts.v[i];

		if (a->src == DSM_COH_SRC_MAP && zapped_earlier(&rt->acts, i))
			loop_fatal(1, "internal error: the engine reads line %llu after zapping it",
			           (unsigned long long)a->line);
		run_action(rt, a, msg_data);
	}
	return 0;
}

/* ---- requests ----------------------------------------------------------------------------- */

static void req_complete(struct dsm_rt_req *req, int status)
{
	pthread_mutex_lock(&req->lock);
	req->status = status;
	req->finished = true;
	pthread_cond_signal(&req->cond);
	pthread_mutex_unlock(&req->lock); /* the caller may return now: req is gone */
}

/* Unlinks and returns the pending request that @match accepts, or NULL. */
static struct dsm_rt_req *pending_take(struct dsm_rt *rt,
                                       bool (*match)(struct dsm_rt_req *, uint64_t), uint64_t key)
{
	for (struct dsm_rt_req **pp = &rt->pending; *pp; pp = &(*pp)->next) {
		struct dsm_rt_req *r = *pp;
		if (match(r, key)) {
			*pp = r->next;
			return r;
		}
	}
	return NULL;
}

static bool match_token(struct dsm_rt_req *r, uint64_t token)
{
	return (r->type == DSM_RT_MSG_MUTEX && r->u.mutex.token == token) ||
	       (r->type == DSM_RT_MSG_FREE && r->u.free.token == token);
}

static bool match_coll(struct dsm_rt_req *r, uint64_t seq)
{
	return r->type == DSM_RT_MSG_COLL && r->u.coll.seq == seq;
}

static void on_reply(struct dsm_rt *rt, uint64_t token, int status)
{
	struct dsm_rt_req *r = pending_take(rt, match_token, token);

	if (r == NULL) {
		atomic_fetch_add(&rt->cnt.msgs_dropped, 1);
		DSM_LOG(DSM_LOG_WARN, "dropped a reply for unknown request %llu",
		        (unsigned long long)token);
		return;
	}
	req_complete(r, status);
}

static void on_coll_done(struct dsm_rt *rt, const struct dsm_rt_coll_done *d)
{
	struct dsm_rt_req *r = pending_take(rt, match_coll, d->seq);

	if (r == NULL) {
		atomic_fetch_add(&rt->cnt.msgs_dropped, 1);
		DSM_LOG(DSM_LOG_WARN, "dropped the verdict of unknown collective #%llu",
		        (unsigned long long)d->seq);
		return;
	}
	r->done = *d;
	req_complete(r, d->status);
}

void dsm_rt_reply(struct dsm_rt *rt, int rank, uint64_t token, int status)
{
	struct dsm_rt_reply m = {.token = token, .status = status};

	dsm_rt_send(rt, rank, DSM_RT_MSG_REPLY, &m, sizeof(m));
}

/* Runs a runtime message, from a peer or from this rank itself. */
static void dispatch(struct dsm_rt *rt, int src, unsigned type, const void *data, size_t len)
{
#define NEED(T)                                                                                    \
	if (len != sizeof(T))                                                                      \
		goto malformed;                                                                    \
	T m;                                                                                       \
	memcpy(&m, data, sizeof(m))

	switch (type) {
	case DSM_RT_MSG_COLL: {
		NEED(struct dsm_rt_coll_msg);
		dsm_rt_coll_arrive(rt, src, &m);
		return;
	}
	case DSM_RT_MSG_COLL_DONE: {
		NEED(struct dsm_rt_coll_done);
		if (src != 0)
			goto malformed;
		on_coll_done(rt, &m);
		return;
	}
	case DSM_RT_MSG_MUTEX: {
		NEED(struct dsm_rt_mutex_msg);
		dsm_rt_mutex_handle(rt, src, &m);
		return;
	}
	case DSM_RT_MSG_FREE: {
		NEED(struct dsm_rt_free_msg);
		dsm_rt_free_handle(rt, src, &m);
		return;
	}
	case DSM_RT_MSG_REPLY: {
		NEED(struct dsm_rt_reply);
		on_reply(rt, m.token, m.status);
		return;
	}
	default:
		break;
	}
malformed:
	atomic_fetch_add(&rt->cnt.msgs_dropped, 1);
	DSM_LOG(DSM_LOG_WARN, "dropped a malformed message (type %u, %zu bytes) from rank %d", type,
	        len, src);
#undef NEED
}

int dsm_rt_send(struct dsm_rt *rt, int peer, enum dsm_rt_msg_type type, const void *buf, size_t len)
{
	if (peer == rt->rank) {
		dispatch(rt, peer, type, buf, len);
		return 0;
	}
	return dsm_tp_send(rt->tp, peer, type, buf, len);
}

int dsm_rt_submit(struct dsm_rt *rt, struct dsm_rt_req *req)
{
	uint64_t one = 1;

	req->finished = false;
	req->status = 0;
	pthread_mutex_init(&req->lock, NULL);
	pthread_cond_init(&req->cond, NULL);
	pthread_mutex_lock(&rt->req_lock);
	req->next = rt->submit;
	rt->submit = req;
	atomic_store_explicit(&rt->submitted, true, memory_order_release);
	pthread_mutex_unlock(&rt->req_lock);
	if (write(rt->evfd, &one, sizeof(one)) != sizeof(one))
		DSM_LOG_ERRNO(DSM_LOG_ERROR, "waking the event loop");

	pthread_mutex_lock(&req->lock);
	while (!req->finished)
		pthread_cond_wait(&req->cond, &req->lock);
	pthread_mutex_unlock(&req->lock);
	pthread_mutex_destroy(&req->lock);
	pthread_cond_destroy(&req->cond);
	return req->status;
}

static int drain_requests(struct dsm_rt *rt)
{
	struct dsm_rt_req *list;
	int n = 0;

	/* No lock and no system call on the loop's hot path: the eventfd is read only after
	 * epoll reports it. */
	if (!atomic_exchange_explicit(&rt->submitted, false, memory_order_acquire))
		return 0;
	pthread_mutex_lock(&rt->req_lock);
	list = rt->submit;
	rt->submit = NULL;
	pthread_mutex_unlock(&rt->req_lock);

	while (list) {
		struct dsm_rt_req *r = list;
		const void *payload = &r->u;
		size_t len = 0;

		list = r->next;
		switch (r->type) {
		case DSM_RT_MSG_COLL:
			len = sizeof(r->u.coll);
			break;
		case DSM_RT_MSG_MUTEX:
			r->u.mutex.token = ++rt->next_token;
			len = sizeof(r->u.mutex);
			break;
		case DSM_RT_MSG_FREE:
			r->u.free.token = ++rt->next_token;
			len = sizeof(r->u.free);
			break;
		default:
			req_complete(r, -EINVAL);
			continue;
		}
		/* Pending before sending: a message to ourselves is answered at once. */
		r->next = rt->pending;
		rt->pending = r;
		int ret = dsm_rt_send(rt, r->target, r->type, payload, len);
		if (ret < 0) {
			struct dsm_rt_req *t = r->type == DSM_RT_MSG_COLL
			                               ? pending_take(rt, match_coll, r->u.coll.seq)
			                               : pending_take(rt, match_token,
			                                              r->type == DSM_RT_MSG_MUTEX
			                                                      ? r->u.mutex.token
			                                                      : r->u.free.token);
			if (t)
				req_complete(t, ret);
		}
		n++;
	}
	return n;
}

/* ---- the sources -------------------------------------------------------------------------- */

static void on_coh_msg(struct dsm_rt *rt, int src, const void *data, size_t len)
{
	size_t ls = (size_t)1 << rt->layout.line_shift;
	dsm_coh_event_t ev = {.type = DSM_COH_EV_MSG};
	const void *line_data = NULL;

	if (len < sizeof(ev.msg))
		goto malformed;
	memcpy(&ev.msg, data, sizeof(ev.msg));
	if (ev.msg.src != src || ev.msg.type == 0 || ev.msg.type >= DSM_COH_MSG_NTYPES)
		goto malformed;
	if (ev.msg.flags & DSM_COH_MSGF_DATA) {
		if (len != sizeof(ev.msg) + ls)
			goto malformed;
		line_data = (const char *)data + sizeof(ev.msg);
		atomic_fetch_add_explicit(&rt->cnt.bytes_received, ls, memory_order_relaxed);
	} else if (len != sizeof(ev.msg)) {
		goto malformed;
	}
	if (ev.msg.line >= (rt->layout.size >> rt->layout.line_shift))
		goto malformed;
	DSM_LOG(DSM_LOG_DEBUG, "received %s line %llu from rank %d", dsm_coh_msg_name(ev.msg.type),
	        (unsigned long long)ev.msg.line, src);
	if (engine(rt, &ev, line_data) == 0)
		return;
malformed:
	atomic_fetch_add(&rt->cnt.msgs_dropped, 1);
	DSM_LOG(DSM_LOG_WARN,
	        "dropped a protocol message (%zu bytes) from rank %d that the line's "
	        "state cannot take",
	        len, src);
}

/* A line's RDMA read completed: the engine installs it from the staging buffer. */
static void on_rma(struct dsm_rt *rt, const struct dsm_tp_event *ev)
{
	struct dsm_rt_staging *s = ev->ctx;
	dsm_coh_event_t cev = {.type = DSM_COH_EV_RDMA_DONE};

	if (s == NULL)
		return;
	if (ev->status == DSM_ERR_PEER_DEAD)
		peer_dead_exit(rt, ev->peer);
	if (ev->status < 0)
		loop_fatal(1, "the RDMA read of line %llu from rank %d failed: %s",
		           (unsigned long long)s->line, ev->peer, dsm_strerror(ev->status));
	atomic_fetch_add_explicit(&rt->cnt.bytes_received, ev->len, memory_order_relaxed);
	cev.line = s->line;
	rt->staging_cur = s;
	if (engine(rt, &cev, NULL) < 0)
		loop_fatal(1, "the engine refused the end of the RDMA read of line %llu",
		           (unsigned long long)s->line);
	rt->staging_cur = NULL;
	staging_put(rt, s);
}

static int drain_transport(struct dsm_rt *rt)
{
	struct dsm_tp_event ev[BATCH];
	int n = dsm_tp_poll(rt->tp, ev, BATCH);

	if (n < 0)
		loop_fatal(1, "the transport failed: %s", dsm_strerror(n));
	for (int i = 0; i < n; i++) {
		switch (ev[i].type) {
		case DSM_TP_EV_MSG:
			if (ev[i].msg_type == DSM_RT_MSG_COH)
				on_coh_msg(rt, ev[i].peer, ev[i].data, ev[i].len);
			else
				dispatch(rt, ev[i].peer, ev[i].msg_type, ev[i].data, ev[i].len);
			break;
		case DSM_TP_EV_RMA:
			on_rma(rt, &ev[i]);
			break;
		case DSM_TP_EV_PEER_DEAD:
			peer_dead_exit(rt, ev[i].peer);
		default:
			break;
		}
	}
	return n;
}

static int drain_faults(struct dsm_rt *rt)
{
	int n = 0;

	for (; n < BATCH; n++) {
		struct dsm_rt_fault f;
		dsm_coh_event_t ev;
		int64_t line;
		int home, ret = dsm_rt_region_read_fault(&rt->region, &f);

		if (ret == -EAGAIN)
			break;
		if (ret < 0)
			loop_fatal(1, "reading the userfaultfd failed: %s", dsm_strerror(ret));
		line = dsm_coh_line_of(&rt->layout, f.addr);
		home = line < 0 ? line : dsm_rt_alloc_home(&rt->alloc, (uint64_t)line, NULL);
		if (home < 0)
			loop_fatal(1,
			           "a thread accessed %#llx, heap memory that is not allocated "
			           "(freed, or never handed out)",
			           (unsigned long long)f.addr);
		ev = (dsm_coh_event_t){.type = f.write ? DSM_COH_EV_WRITE_FAULT
		                                       : DSM_COH_EV_READ_FAULT,
		                       .home = (unsigned)home,
		                       .line = (uint64_t)line};
		DSM_LOG(DSM_LOG_DEBUG, "%s fault at %#llx: line %lld, home %d",
		        f.wp      ? "WP"
		        : f.write ? "write"
		                  : "read",
		        (unsigned long long)f.addr, (long long)line, home);
		fault_begin(rt, (uint64_t)line, f.tid);
		/* At the home the grant may come within this call, and the woken thread may run
		 * before a later read: read its count first there. Elsewhere after the request
		 * is out, overlapping the wait. */
		if (home == rt->rank)
			fault_sample(rt, (uint64_t)line, f.tid);
		if (engine(rt, &ev, NULL) < 0)
			loop_fatal(1, "the engine refused a fault on line %lld", (long long)line);
		if (home != rt->rank)
			fault_sample(rt, (uint64_t)line, f.tid);
	}
	return n;
}

/* Ends the holds that are due, and those whose threads have run while a request waits for
 * the line; returns how many, and in *next_p when to look again. */
static int expire_holds(struct dsm_rt *rt, uint64_t now, uint64_t *next_p)
{
	int n = 0;

	*next_p = UINT64_MAX;
	for (size_t i = 0; i < rt->nholds;) {
		struct dsm_rt_hold *h = &rt->holds[i];

		if (h->deadline_ns > now) {
			enum hold_verdict v = hold_check(rt, h);

			if (v != HOLD_END) {
				uint64_t t = v == HOLD_WATCH ? now + HOLD_WATCH_NS : h->deadline_ns;

				if (t > h->deadline_ns)
					t = h->deadline_ns;
				if (t < *next_p)
					*next_p = t;
				i++;
				continue;
			}
			atomic_fetch_add_explicit(&rt->cnt.holds_early, 1, memory_order_relaxed);
		}
		dsm_coh_event_t ev = {.type = DSM_COH_EV_HOLD_DONE, .line = h->line};

		rt->holds[i] = rt->holds[--rt->nholds];
		if (engine(rt, &ev, NULL) < 0)
			loop_fatal(1, "the engine refused the end of a hold on line %llu",
			           (unsigned long long)ev.line);
		n++;
	}
	return n;
}

/* Slept the whole cap: if the transport has work now, it missed a wake-up. */
static void missed_wakeup_check(struct dsm_rt *rt)
{
	if (dsm_tp_sleep_prepare(rt->tp) == 0) {
		dsm_tp_sleep_end(rt->tp);
		return;
	}
	uint64_t n =
	        atomic_fetch_add_explicit(&rt->cnt.missed_wakeups, 1, memory_order_relaxed) + 1;
	if ((n & (n - 1)) == 0)
		DSM_LOG(DSM_LOG_DEBUG, "transport work found by a timed wake-up (%llu so far)",
		        (unsigned long long)n);
}

#define STALL_NS (10 * 1000000000ull) /* a fault this old is reported, once */

/*
 * A fault that waits for seconds means a lost message, a wedged transport or a peer that
 * stopped answering: say so, with what the transport waits for, instead of a silent hang.
 * One report per pass, however many faults stalled. The transport's state goes through a
 * stream of our own: stderr's stdio lock may be held by an application thread that is
 * blocked in a fault.
 */
static void stall_check(struct dsm_rt *rt, uint64_t now)
{
	struct dsm_rt_pending_fault *first = NULL;
	size_t n = 0, len = 0;
	char *buf = NULL;
	FILE *m;
	int home;

	if (now < rt->next_stall_check)
		return;
	rt->next_stall_check = now + 1000000000ull;
	for (size_t i = 0; i < rt->nfaults; i++) {
		struct dsm_rt_pending_fault *f = &rt->faults[i];

		if (f->reported || now - f->t0_ns < STALL_NS)
			continue;
		f->reported = true;
		if (first == NULL || f->t0_ns < first->t0_ns)
			first = f;
		n++;
	}
	if (n == 0 || dsm_rt_log_level() < DSM_LOG_WARN)
		return;
	home = dsm_rt_alloc_home(&rt->alloc, first->line, NULL);
	DSM_LOG(DSM_LOG_WARN,
	        "a fault on line %llu (address %p, home rank %d) has waited %.0f s (%zu faults "
	        "passed 10 s since the last report); what the transport waits for follows",
	        (unsigned long long)first->line,
	        (void *)dsm_coh_line_addr(&rt->layout, first->line), home,
	        (double)(now - first->t0_ns) / 1e9, n);
	m = open_memstream(&buf, &len);
	if (m == NULL)
		return;
	dsm_tp_describe(rt->tp, home, m);
	if (fclose(m) == 0 && len && write(STDERR_FILENO, buf, len) < 0)
		DSM_LOG_ERRNO(DSM_LOG_DEBUG, "writing the transport's state");
	free(buf);
}

static void publish_tp_stats(struct dsm_rt *rt)
{
	struct dsm_tp_stats ts = {0};

	dsm_tp_stats(rt->tp, &ts);
	pthread_mutex_lock(&rt->tp_stats_lock);
	rt->tp_stats = ts;
	pthread_mutex_unlock(&rt->tp_stats_lock);
}

static void *loop_main(void *arg)
{
	struct dsm_rt *rt = arg;
	uint64_t idle_since = 0;
	unsigned busy = 0;
	sigset_t all;

	/* Signals are the application's: deliver them to its threads, not here (but for the
	 * synchronous ones, which blocking would turn into a silent kill). */
	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGFPE);
	sigdelset(&all, SIGILL);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	/* Hold timers and naps of tens of microseconds mean what they say (the default slack
	 * is 50 us). */
	prctl(PR_SET_TIMERSLACK, 1000ul, 0, 0, 0);

	while (!atomic_load_explicit(&rt->stop, memory_order_acquire)) {
		uint64_t now, next;
		int work = drain_transport(rt) + drain_faults(rt) + drain_requests(rt);

		now = dsm_rt_now_ns();
		work += expire_holds(rt, now, &next);
		if (work) {
			idle_since = 0;
			if ((++busy & 255) == 0) {
				publish_tp_stats(rt);
				if (rt->nfaults)
					stall_check(rt, now);
			}
			continue;
		}
		if (!idle_since) {
			idle_since = now;
			publish_tp_stats(rt);
		}
		if (rt->nfaults)
			stall_check(rt, now);
		/* A reply is due: poll a little while a core is free for it. */
		if (rt->may_spin && (rt->nfaults || rt->pending) && now - idle_since < rt->spin_ns)
			continue;

		/* The transport may refuse to sleep while it has operations in flight that only
		 * its polling completes (shm). Poll it a few turns, then nap: never spin without
		 * bound, the core may be the one the peer needs to answer. */
		bool asleep = dsm_tp_sleep_prepare(rt->tp) == 0;
		if (!asleep && now - idle_since < NAP_AFTER_NS)
			continue;

		struct epoll_event evs[4];
		struct timespec ts;
		/* Bounded sleeps: a wake-up the transport misses costs at most 10 ms, not a hang,
		 * and is counted (missed_wakeups). A home is idle while it owes an answer, so the
		 * bound holds idle too: a hundred wake-ups a second cost nothing. */
		uint64_t cap = !asleep ? NAP_NS : SLEEP_CAP_NS;
		uint64_t d = next != UINT64_MAX ? (next > now ? next - now : 0) : cap;
		int nev;

		if (d > cap)
			d = cap;
		ts.tv_sec = (time_t)(d / 1000000000ull);
		ts.tv_nsec = (long)(d % 1000000000ull);
		atomic_fetch_add_explicit(asleep ? &rt->cnt.sleeps : &rt->cnt.naps, 1,
		                          memory_order_relaxed);
		nev = epoll_pwait2(rt->epfd, evs, 4, &ts, NULL);
		if (nev < 0 && errno != EINTR)
			loop_fatal(1, "epoll_pwait2 failed: %s", strerror(errno));
		for (int i = 0; i < nev; i++) {
			uint64_t v;

			if (evs[i].data.fd == rt->evfd && read(rt->evfd, &v, sizeof(v)) < 0 &&
			    errno != EAGAIN)
				DSM_LOG_ERRNO(DSM_LOG_WARN, "reading the event loop's eventfd");
		}
		if (!asleep)
			continue;
		if (nev == 0 && d == cap)
			missed_wakeup_check(rt);
		dsm_tp_sleep_end(rt->tp);
	}
	return NULL;
}

int dsm_rt_loop_start(struct dsm_rt *rt)
{
	struct epoll_event ev = {.events = EPOLLIN};
	int fds[3], ret;

	rt->epfd = epoll_create1(EPOLL_CLOEXEC);
	rt->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (rt->epfd < 0 || rt->evfd < 0) {
		DSM_LOG_ERRNO(DSM_LOG_ERROR, "creating the event loop's descriptors");
		return -errno;
	}
	fds[0] = rt->region.uffd;
	fds[1] = rt->evfd;
	fds[2] = dsm_tp_wait_fd(rt->tp);
	for (int i = 0; i < 3; i++) {
		if (fds[i] < 0)
			continue;
		ev.data.fd = fds[i];
		if (epoll_ctl(rt->epfd, EPOLL_CTL_ADD, fds[i], &ev) < 0) {
			DSM_LOG_ERRNO(DSM_LOG_ERROR, "epoll_ctl");
			return -errno;
		}
	}
	atomic_store(&rt->stop, false);
	ret = pthread_create(&rt->loop, NULL, loop_main, rt);
	if (ret) {
		DSM_LOG(DSM_LOG_ERROR, "starting the event loop thread: %s", strerror(ret));
		return -ret;
	}
	pthread_setname_np(rt->loop, "dsm-loop");
	return 0;
}

void dsm_rt_loop_stop(struct dsm_rt *rt)
{
	uint64_t one = 1;

	atomic_store_explicit(&rt->stop, true, memory_order_release);
	if (write(rt->evfd, &one, sizeof(one)) != sizeof(one))
		DSM_LOG_ERRNO(DSM_LOG_WARN, "waking the event loop to stop");
	pthread_join(rt->loop, NULL);
	close(rt->epfd);
	close(rt->evfd);
}
