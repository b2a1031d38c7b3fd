/* SPDX-License-Identifier: MIT */
/*
 * Freed memory (free.h). A free becomes a job of the loop: the lines that may still have a
 * copy somewhere, each dropped (DSM_COH_EV_DROP: given back to its home as an eviction is,
 * so the order of giving a line up holds) and then waited for, until this rank holds no
 * copy and, at their home, the directory is idle and uncached. A copy that cannot go yet
 * (a request or a hold in flight: only a thread racing with the free has one) is dropped at
 * a later turn; a job that still waits after JOB_NS ends anyway, with a warning, so that a
 * racing program cannot hang its free.
 */
#include "runtime/free.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "common/time.h"
#include "common/vec.h"
#include "runtime/ckpt.h"
#include "runtime/decode.h"
#include "runtime/engine.h"
#include "runtime/fatal.h"
#include "runtime/hold.h"
#include "runtime/loop.h"
#include "runtime/msg.h"
#include "runtime/mw.h"
#include "runtime/prefetch.h"
#include "runtime/rt.h"

#define JOB_NS (5 * 1000000000ull)

static uint64_t nlines(const struct dsm_rt *rt)
{
	return rt->layout.size >> rt->layout.line_shift;
}

/* This rank's copy of @line: dropped if it is stable; true once there is none. */
static bool drop_copy(struct dsm_rt *rt, uint64_t line)
{
	dsm_coh_event_t ev = {.type = DSM_COH_EV_DROP, .line = line};
	dsm_coh_line_info_t li;

	dsm_coh_line_info(rt->node, line, &li);
	if (li.state == DSM_COH_I)
		return true;
	/* Held for the threads woken by its install, which is there so that their access
	 * happens (README, "Progress"): that access was to memory that is freed now, so the
	 * hold ends here, or a free right after a fault would wait DSM_HOLD_US for it. */
	if (li.held && !li.rdma) {
		dsm_coh_event_t done = {.type = DSM_COH_EV_HOLD_DONE, .line = line};

		dsm_rt_hold_forget(rt, line, 1);
		if (dsm_rt_engine(rt, &done, NULL) < 0)
			dsm_rt_fatal(rt,
			             "the engine refused the end of a hold on freed line %" PRIu64,
			             line);
		dsm_coh_line_info(rt->node, line, &li);
		if (li.state == DSM_COH_I)
			return true; /* an INV or FWD_M waited for the hold */
	}
	/* Asked for, held for woken threads, in flight, or given back already: later. While a
	 * checkpoint is agreed this rank starts no request (ckpt.c). */
	if (li.evicting || li.held || li.rdma || li.wb || li.deferred || dsm_rt_ckpt_frozen(rt) ||
	    (li.state != DSM_COH_S && li.state != DSM_COH_M && li.state != DSM_COH_E))
		return false;
	if (dsm_rt_engine(rt, &ev, NULL) < 0)
		dsm_rt_fatal(rt, "the engine refused to drop freed line %" PRIu64, line);
	dsm_coh_line_info(rt->node, line, &li);
	return li.state == DSM_COH_I;
}

static bool line_done(struct dsm_rt *rt, const struct dsm_rt_free_job *j, uint64_t line)
{
	dsm_coh_dir_info_t d;

	if (!drop_copy(rt, line))
		return false;
	if (!j->home)
		return true;
	dsm_coh_dir_info(rt->node, line, &d);
	return d.state == DSM_COH_DIR_U && !d.busy;
}

static void job_end(struct dsm_rt *rt, struct dsm_rt_free_job *j)
{
	if (j->nwait)
		DSM_LOG(DSM_LOG_WARN,
		        "freed memory at %#" PRIxPTR ": %zu line(s) still had a copy after %llu s "
		        "(a thread used it while it was freed?)",
		        dsm_coh_line_addr(&rt->layout, j->first), j->nwait,
		        (unsigned long long)(JOB_NS / 1000000000ull));
	if (j->src >= 0)
		dsm_rt_reply(rt, j->src, j->token, 0);
	free(j->wait);
}

/* Walks the lines once: what may still have a copy waits; at the home, every rank the
 * directory names as a holder is told (FREED), once. */
static void job_start(struct dsm_rt *rt, struct dsm_rt_free_job *j)
{
	size_t words = ((size_t)rt->nranks + 63) / 64;
	uint64_t *told = j->home ? calloc(words, sizeof(*told)) : NULL;
	/* Every rank is told: a transaction in flight, or no memory for the set. */
	bool all = false;
	int err;

	/* The lines' zaps go in runs (region.h), done at the latest before the reply. */
	dsm_rt_region_defer(&rt->region);
	for (uint64_t l = j->first; l < j->first + j->n; l++) {
		dsm_coh_line_info_t li;
		dsm_coh_dir_info_t d = {.state = DSM_COH_DIR_U};

		if (dsm_rt_mw_owns(rt, l))
			continue; /* multiple-writer memory: mw.c drops its copies */
		dsm_coh_line_info(rt->node, l, &li);
		if (j->home)
			dsm_coh_dir_info(rt->node, l, &d);
		if (d.state != DSM_COH_DIR_U || d.busy) {
			all |= d.busy || told == NULL;
			for (int r = 0; !all && r < rt->nranks; r++)
				if (d.state == DSM_COH_DIR_M
				            ? d.owner == (unsigned)r
				            : dsm_coh_dir_is_sharer(rt->node, l, (unsigned)r))
					told[r / 64] |= 1ull << (r % 64);
		} else if (li.state == DSM_COH_I) {
			continue;
		}
		if (!line_done(rt, j, l) && DSM_VEC_RESERVE(j->wait, j->cap, j->nwait + 1) == 0)
			j->wait[j->nwait++] = l;
	}
	dsm_rt_msg_kernel_flush(rt, true);
	for (int r = 0; j->home && r < rt->nranks; r++) {
		struct dsm_rt_freed_msg m = {.first = j->first, .n = j->n};

		if (r == rt->rank || !(all || (told[r / 64] & (1ull << (r % 64)))))
			continue;
		err = dsm_rt_send(rt, r, DSM_RT_MSG_FREED, &m, sizeof(m));
		if (err < 0 && err != DSM_ERR_PEER_DEAD)
			DSM_LOG(DSM_LOG_WARN, "telling rank %d of freed memory failed: %s", r,
			        dsm_err_str(err));
	}
	free(told);
}

static void job_add(struct dsm_rt *rt, uint64_t first, uint64_t n, bool home, int src,
                    uint64_t token)
{
	struct dsm_rt_free_job j = {.first = first,
	                            .n = n,
	                            .home = home,
	                            .src = src,
	                            .token = token,
	                            .t_end = dsm_now_ns() + JOB_NS};

	job_start(rt, &j);
	if (j.nwait == 0) {
		job_end(rt, &j);
		return;
	}
	if (DSM_VEC_RESERVE(rt->frees.v, rt->frees.cap, rt->frees.n + 1) < 0) {
		j.nwait = 0; /* no room to wait: the copies still go, unwaited for */
		job_end(rt, &j);
		return;
	}
	rt->frees.v[rt->frees.n++] = j;
}

void dsm_rt_free_start_home(struct dsm_rt *rt, uint64_t first, uint64_t n, int src, uint64_t token)
{
	job_add(rt, first, n, true, src, token);
}

int dsm_rt_free_poll(struct dsm_rt *rt)
{
	uint64_t now;
	int work = 0;

	if (rt->frees.n == 0)
		return 0;
	now = dsm_now_ns();
	for (size_t i = 0; i < rt->frees.n;) {
		struct dsm_rt_free_job *j = &rt->frees.v[i];
		size_t kept = 0;

		for (size_t k = 0; k < j->nwait; k++)
			if (!line_done(rt, j, j->wait[k]))
				j->wait[kept++] = j->wait[k];
		work += (int)(j->nwait - kept);
		j->nwait = kept;
		if (kept && now < j->t_end) {
			i++;
			continue;
		}
		job_end(rt, j);
		rt->frees.v[i] = rt->frees.v[--rt->frees.n];
		work++;
	}
	return work;
}

/* ---- messages ----------------------------------------------------------------------------- */

static void on_freed(struct dsm_rt *rt, int src, const void *data, size_t len)
{
	struct dsm_rt_freed_msg m;

	/* From another rank: its lines' copies here, answered to nobody. */
	if (dsm_rt_decode_freed(DSM_RT_MSG_FREED, data, len, nlines(rt), &m) < 0 ||
	    (src != rt->rank && (m.flags || m.token))) {
		dsm_rt_msg_malformed(rt, src, DSM_RT_MSG_FREED, len);
		if (src == rt->rank)
			dsm_rt_reply(rt, src, m.token, -EINVAL);
		return;
	}
	job_add(rt, m.first, m.n, m.flags & DSM_RT_FREED_HOME, src == rt->rank ? src : -1, m.token);
}

/* The home of a line this rank asked for has no allocation of it. A thread that faulted on
 * it made the request: that access is to unallocated memory. A read-ahead's request (which
 * may run past an allocation's end in a slice) only loses its copy again. */
static void on_unalloc(struct dsm_rt *rt, int src, const void *data, size_t len)
{
	struct dsm_rt_freed_msg m;

	if (dsm_rt_decode_freed(DSM_RT_MSG_UNALLOC, data, len, nlines(rt), &m) < 0 || m.n != 1 ||
	    src == rt->rank ||
	    dsm_rt_alloc_owner(&rt->alloc, (void *)dsm_coh_line_addr(&rt->layout, m.first)) !=
	            src) {
		dsm_rt_msg_malformed(rt, src, DSM_RT_MSG_UNALLOC, len);
		return;
	}
	if (!dsm_rt_prefetch_in_flight(rt, m.first) && dsm_rt_fault_pending(rt, m.first))
		dsm_rt_fatal(rt,
		             "a thread accessed %#" PRIxPTR ", heap memory that is not allocated "
		             "(freed, or never handed out): its home, rank %d, has no allocation "
		             "there",
		             dsm_coh_line_addr(&rt->layout, m.first), src);
	job_add(rt, m.first, 1, false, -1, 0);
}

bool dsm_rt_free_check_request(struct dsm_rt *rt, int src, uint64_t line)
{
	struct dsm_rt_freed_msg m = {.first = line, .n = 1};
	int err;

	if (dsm_rt_alloc_live(&rt->alloc, line))
		return true;
	/* Before the grant: per pair, messages keep the order they were sent in (msg.c). */
	err = dsm_rt_send(rt, src, DSM_RT_MSG_UNALLOC, &m, sizeof(m));
	if (err < 0 && err != DSM_ERR_PEER_DEAD)
		DSM_LOG(DSM_LOG_WARN, "telling rank %d of unallocated line %" PRIu64 " failed: %s",
		        src, line, dsm_err_str(err));
	return false;
}

/* ---- application threads ------------------------------------------------------------------ */

int dsm_rt_free_lines(struct dsm_rt *rt, uint64_t first, uint64_t n, bool home)
{
	struct dsm_rt_req req = {.type = DSM_RT_MSG_FREED,
	                         .target = rt->rank,
	                         .len = sizeof(req.u.freed),
	                         .answer = DSM_RT_MSG_REPLY};

	if (n == 0)
		return 0;
	req.u.freed = (struct dsm_rt_freed_msg){
	        .first = first, .n = n, .flags = home ? DSM_RT_FREED_HOME : 0};
	req.token = &req.u.freed.token;
	return dsm_rt_submit(rt, &req);
}

void dsm_rt_free_init(struct dsm_rt *rt)
{
	dsm_rt_msg_on(rt, DSM_RT_MSG_FREED, sizeof(struct dsm_rt_freed_msg), on_freed);
	dsm_rt_msg_on(rt, DSM_RT_MSG_UNALLOC, sizeof(struct dsm_rt_freed_msg), on_unalloc);
}

void dsm_rt_free_fini(struct dsm_rt *rt)
{
	for (size_t i = 0; i < rt->frees.n; i++)
		free(rt->frees.v[i].wait);
	free(rt->frees.v);
	rt->frees = (struct dsm_rt_frees){0};
}
