/* SPDX-License-Identifier: MIT */
#include "runtime/engine.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "runtime/cache.h"
#include "runtime/ckpt.h"
#include "runtime/death.h"
#include "runtime/decode.h"
#include "runtime/fatal.h"
#include "runtime/free.h"
#include "runtime/hold.h"
#include "runtime/msg.h"
#include "runtime/prefetch.h"
#include "runtime/profile.h"
#include "runtime/rdma.h"
#include "runtime/rt.h"
#include "runtime/stats.h"

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
static const void *action_src(struct dsm_rt *rt, int src, uint64_t line, const void *msg_data)
{
	switch (src) {
	case DSM_COH_SRC_MSG:
		return msg_data;
	case DSM_COH_SRC_MAP:
		return (const void *)dsm_coh_line_addr(&rt->layout, line);
	case DSM_COH_SRC_HOME:
		return dsm_rt_home_line(rt, line);
	case DSM_COH_SRC_STAGING:
		return rt->rdma.cur && rt->rdma.cur->line == line ? rt->rdma.cur->buf : NULL;
	default:
		return NULL;
	}
}

/* ---- installs of a batch ------------------------------------------------------------------ */

/* The run waiting in rt->installs goes in now (rt.h, struct dsm_rt_installs). */
static void flush_installs(struct dsm_rt *rt)
{
	struct dsm_rt_installs *in = &rt->installs;
	size_t ls = (size_t)1 << rt->layout.line_shift;
	int ret;

	if (in->len == 0)
		return;
	ret = dsm_rt_region_install(&rt->region, in->addr, in->src, in->len, in->writable);
	if (ret < 0 && ret != DSM_ERR_PEER_DEAD)
		dsm_rt_fatal(rt, "internal error: installing %zu bytes at %#llx failed: %s",
		             in->len, (unsigned long long)in->addr, dsm_err_str(ret));
	if (in->len > ls) {
		DSM_RT_COUNT(rt, install_runs, 1);
		DSM_RT_COUNT(rt, install_run_lines, in->len / ls);
	}
	in->len = 0;
}

/* A line whose data is in the batch being handled: it joins the run, or starts one. */
static void install_later(struct dsm_rt *rt, uint64_t addr, const void *src, size_t len,
                          bool writable)
{
	struct dsm_rt_installs *in = &rt->installs;

	/* A run stops at a heap chunk: under strict overcommit chunks are opened one by one, and
	 * UFFDIO_COPY fails on a range that spans two mappings. */
	if (in->len && in->addr + in->len == addr && in->src + in->len == (const char *)src &&
	    in->writable == writable &&
	    (addr - (uint64_t)(uintptr_t)rt->heap.base) % DSM_RT_HEAP_CHUNK) {
		in->len += len;
		return;
	}
	flush_installs(rt);
	*in = (struct dsm_rt_installs){
	        .batching = true, .addr = addr, .len = len, .src = src, .writable = writable};
}

/* ---- actions ------------------------------------------------------------------------------ */

/* Whether a later action of the list zaps the line of action @i. */
static bool zapped_later(const dsm_coh_actions_t *acts, size_t i)
{
	for (size_t j = i + 1; j < acts->n; j++)
		if (acts->v[j].line == acts->v[i].line && acts->v[j].type == DSM_COH_ACT_ZAP)
			return true;
	return false;
}

/* What action @i does to its line, for the profile; @from: the sender of the event's
 * message, or -1. */
static void profile_action(struct dsm_rt *rt, size_t i, int from)
{
	const dsm_coh_action_t *a = &rt->acts.v[i];

	switch (a->type) {
	case DSM_COH_ACT_SEND:
		if ((a->msg.flags & DSM_COH_MSGF_DATA) ||
		    ((a->msg.flags & DSM_COH_MSGF_RDMA) &&
		     (a->msg.type == DSM_COH_MSG_GRANT_S || a->msg.type == DSM_COH_MSG_GRANT_M)))
			dsm_rt_prof_event(rt, a->line, DSM_RT_PROF_SENT, (int)a->peer);
		break;
	case DSM_COH_ACT_INSTALL_RO:
	case DSM_COH_ACT_INSTALL_RW:
		/* From the message, or read from the home segment by RDMA, or (at the home)
		 * from its home copy once a message gave the line back. */
		if (a->src == DSM_COH_SRC_STAGING)
			from = dsm_rt_alloc_home(&rt->alloc, a->line, NULL);
		else if (a->src != DSM_COH_SRC_MSG && a->src != DSM_COH_SRC_HOME)
			break;
		if (from >= 0 && from != rt->rank)
			dsm_rt_prof_event(rt, a->line, DSM_RT_PROF_RECV, from);
		break;
	case DSM_COH_ACT_WRITE_PROTECT: /* a downgrade, unless the line goes altogether */
		if (!zapped_later(&rt->acts, i))
			dsm_rt_prof_event(rt, a->line, DSM_RT_PROF_DOWNGRADE, -1);
		break;
	case DSM_COH_ACT_ZAP:
		dsm_rt_prof_event(rt, a->line, DSM_RT_PROF_INVAL, -1);
		break;
	default:
		break;
	}
}

static void run_action(struct dsm_rt *rt, const dsm_coh_action_t *a, const void *msg_data)
{
	size_t ls = (size_t)1 << rt->layout.line_shift;
	uint64_t addr = dsm_coh_line_addr(&rt->layout, a->line);
	const void *src = action_src(rt, a->src, a->line, msg_data);
	int ret = 0;

	if (dsm_log_level() >= DSM_LOG_DEBUG)
		DSM_LOG(DSM_LOG_DEBUG, "action %u line %llu peer %u msg %s src %u", a->type,
		        (unsigned long long)a->line, a->peer,
		        a->type == DSM_COH_ACT_SEND ? dsm_coh_msg_name(a->msg.type) : "-", a->src);
	if (a->src != DSM_COH_SRC_NONE && src == NULL)
		dsm_rt_fatal(rt,
		             "internal error: coherence action %u on line %llu has no data (source "
		             "%u)",
		             a->type, (unsigned long long)a->line, a->src);
	/* A line's zap held back goes before anything else is done to its mapping (a message
	 * that may depend on it flushes in msg.c). */
	if ((a->type == DSM_COH_ACT_INSTALL_RO || a->type == DSM_COH_ACT_INSTALL_RW ||
	     a->type == DSM_COH_ACT_WRITE_PROTECT || a->type == DSM_COH_ACT_POISON) &&
	    dsm_rt_region_held_back(&rt->region, addr, ls))
		dsm_rt_msg_kernel_flush(rt, false);
	switch (a->type) {
	case DSM_COH_ACT_SEND: {
		void *data = NULL;

		if ((a->msg.flags & DSM_COH_MSGF_RDMA) &&
		    (a->msg.type == DSM_COH_MSG_GRANT_S || a->msg.type == DSM_COH_MSG_GRANT_M)) {
			ret = dsm_rt_rdma_expose(rt, a->line);
			if (ret < 0)
				break;
			DSM_RT_COUNT(rt, bytes_sent, ls);
		}
		ret = dsm_rt_send_gathered(rt, (int)a->peer, &a->msg, &data);
		if (a->msg.flags & DSM_COH_MSGF_DATA) {
			copy_line(data, src, ls);
			DSM_RT_COUNT(rt, bytes_sent, ls);
			/* A line answers a request that came alone: it goes now, so that the
			 * requester installs it while this loop goes on. The lines answering a
			 * batch go together at its end (on_coh_batch). */
			if (!rt->installs.batching) {
				int r = dsm_rt_msg_flush(rt, (int)a->peer);

				if (ret == 0)
					ret = r;
			}
		}
		break;
	}
	case DSM_COH_ACT_INSTALL_RO:
	case DSM_COH_ACT_INSTALL_RW:
		if (a->src == DSM_COH_SRC_NONE)
			ret = dsm_rt_region_protect(&rt->region, addr, ls, false);
		else if (a->src == DSM_COH_SRC_MSG && rt->installs.batching)
			install_later(rt, addr, src, ls, a->type == DSM_COH_ACT_INSTALL_RW);
		else
			ret = dsm_rt_region_install(&rt->region, addr, src, ls,
			                            a->type == DSM_COH_ACT_INSTALL_RW);
		/* A copy of a line homed elsewhere: the home installs its own from the home
		 * segment, and an upgrade brings no data. */
		if (a->src == DSM_COH_SRC_MSG || a->src == DSM_COH_SRC_STAGING)
			dsm_rt_cache_add(rt, a->line);
		dsm_rt_fault_end(rt, a->line);
		break;
	case DSM_COH_ACT_WRITE_PROTECT:
		ret = dsm_rt_region_protect(&rt->region, addr, ls, true);
		break;
	case DSM_COH_ACT_ZAP:
		dsm_rt_ckpt_before(rt, a->line, DSM_RT_CK_MAP);
		ret = dsm_rt_region_zap_later(&rt->region, addr, ls);
		dsm_rt_prefetch_zapped(rt, a->line);
		dsm_rt_cache_del(rt, a->line);
		break;
	case DSM_COH_ACT_STORE_HOME:
		dsm_rt_ckpt_before(rt, a->line, DSM_RT_CK_HOME);
		copy_line(dsm_rt_home_line(rt, a->line), src, ls);
		break;
	case DSM_COH_ACT_WAKE:
		ret = dsm_rt_region_wake_later(&rt->region, addr, ls);
		break;
	case DSM_COH_ACT_HOLD:
		dsm_rt_hold_add(rt, a->line);
		break;
	case DSM_COH_ACT_COUNT:
		dsm_rt_count_coh(rt, a->counter);
		break;
	case DSM_COH_ACT_POISON:
		dsm_rt_ckpt_before(rt, a->line, DSM_RT_CK_MAP);
		dsm_rt_death_poison(rt, &rt->region, a->line, a->msg.reserved);
		dsm_rt_fault_end(rt, a->line);
		break;
	case DSM_COH_ACT_RDMA_READ:
		ret = dsm_rt_rdma_read(rt, a->line, (int)a->peer);
		break;
	default: /* RDMA_WRITE: write-backs travel inline */
		ret = -ENOSYS;
	}
	if (ret < 0 && ret != DSM_ERR_PEER_DEAD)
		dsm_rt_fatal(rt, "internal error: coherence action %u on line %llu failed: %s",
		             a->type, (unsigned long long)a->line, dsm_err_str(ret));
}

/*
 * UFFDIO_COPY and the lift of a write-protect (UFFDIO_WRITEPROTECT without MODE_WP) wake
 * the threads that wait on their range unless told not to, so the engine's WAKE right after
 * an install of the same line has nothing left to do: skip its ioctl.
 */
static bool woken_by_install(const dsm_coh_actions_t *acts, size_t i)
{
	const dsm_coh_action_t *a = &acts->v[i];

	for (size_t j = i; j-- > 0;) {
		const dsm_coh_action_t *b = &acts->v[j];

		if (b->line != a->line)
			continue;
		return b->type == DSM_COH_ACT_INSTALL_RO || b->type == DSM_COH_ACT_INSTALL_RW;
	}
	return false;
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

int dsm_rt_engine(struct dsm_rt *rt, const dsm_coh_event_t *ev, const void *msg_data)
{
	int ret;

	rt->acts.n = 0;
	dsm_rt_ckpt_event(rt, ev);
	ret = dsm_coh_handle(rt->node, ev, &rt->acts);
	if (ret == DSM_ERR_PROTOCOL)
		return ret;
	if (ret < 0)
		dsm_rt_fatal(rt, "internal error: the coherence engine failed: %s",
		             dsm_err_str(ret));
	for (size_t i = 0; i < rt->acts.n; i++) {
		const dsm_coh_action_t *a = &rt->acts.v[i];

		if (a->src == DSM_COH_SRC_MAP && zapped_earlier(&rt->acts, i))
			dsm_rt_fatal(rt,
			             "internal error: the engine reads line %llu after zapping it",
			             (unsigned long long)a->line);
		if (a->type == DSM_COH_ACT_WAKE && woken_by_install(&rt->acts, i))
			continue;
		if (rt->installs.len && !dsm_coh_action_keeps_mappings(a))
			flush_installs(rt);
		/* A line comes in with a message's data, or at its home with a write-back. */
		if (rt->prof)
			profile_action(rt, i,
			               ev->type == DSM_COH_EV_MSG &&
			                               (a->src != DSM_COH_SRC_HOME ||
			                                ev->msg.type == DSM_COH_MSG_WB)
			                       ? (int)ev->msg.src
			                       : -1);
		run_action(rt, a, msg_data);
	}
	return 0;
}

/* One protocol message from @src, with its line's data at @line_data where it has one. */
/* A message that only a line's home takes. */
static bool to_home(unsigned type)
{
	return type == DSM_COH_MSG_GET_S || type == DSM_COH_MSG_GET_M ||
	       type == DSM_COH_MSG_INV_ACK || type == DSM_COH_MSG_WB || type == DSM_COH_MSG_DONE ||
	       type == DSM_COH_MSG_EVICT || type == DSM_COH_MSG_ADOPT;
}

static void on_coh_one(struct dsm_rt *rt, int src, const dsm_coh_msg_t *m, const void *line_data)
{
	dsm_coh_event_t ev = {.type = DSM_COH_EV_MSG, .msg = *m};

	if (dsm_rt_check_coh_msg(&ev.msg, src, rt->layout.size >> rt->layout.line_shift) < 0)
		goto dropped;
	/* The engine acts as the home of whatever line such a message names: a line homed at
	 * another rank must not reach it (a broken peer's GET would start a directory entry
	 * here and grant the line from a home segment that is not its home). A line this
	 * rank knows no allocation of goes on: a collective allocation is agreed before each
	 * rank records it, so another rank may ask for its lines first (api.c). */
	if (to_home(ev.msg.type)) {
		int home = dsm_rt_live_home(rt, dsm_rt_alloc_home(&rt->alloc, ev.msg.line, NULL));

		if (home >= 0 && home != rt->rank) {
			DSM_RT_COUNT(rt, msgs_dropped, 1);
			DSM_LOG(DSM_LOG_WARN,
			        "dropped a %s of line %llu from rank %d: its home is rank %d, not "
			        "this one",
			        dsm_coh_msg_name(ev.msg.type), (unsigned long long)ev.msg.line, src,
			        home);
			return;
		}
		/* A line of this rank's slice that no allocation covers: the requester hears of
		 * it first (free.c); the request is served all the same, so that a read-ahead past
		 * an allocation's end finds the protocol as ever. */
		if (ev.msg.type == DSM_COH_MSG_GET_S || ev.msg.type == DSM_COH_MSG_GET_M)
			dsm_rt_free_check_request(rt, src, ev.msg.line);
	}
	if (line_data)
		DSM_RT_COUNT(rt, bytes_received, (size_t)1 << rt->layout.line_shift);
	DSM_LOG(DSM_LOG_DEBUG, "received %s line %llu from rank %d", dsm_coh_msg_name(ev.msg.type),
	        (unsigned long long)ev.msg.line, src);
	/* A line whose home died waits at its new home for the survivors' copies. */
	if (to_home(ev.msg.type) && dsm_rt_death_hold(rt, src, &ev, line_data))
		return;
	if (dsm_rt_engine(rt, &ev, line_data) == 0)
		return;
dropped:
	DSM_RT_COUNT(rt, msgs_dropped, 1);
	DSM_LOG(DSM_LOG_WARN,
	        "dropped a protocol message (%s, line %llu) from rank %d that the line's state "
	        "cannot take",
	        ev.msg.type && ev.msg.type < DSM_COH_MSG_NTYPES ? dsm_coh_msg_name(ev.msg.type)
	                                                        : "unknown type",
	        (unsigned long long)ev.msg.line, src);
}

static void on_coh_msg(struct dsm_rt *rt, int src, const void *data, size_t len)
{
	const void *line;
	dsm_coh_msg_t m;

	if (dsm_rt_decode_coh(data, len, (size_t)1 << rt->layout.line_shift, &m, &line) < 0) {
		dsm_rt_msg_malformed(rt, src, DSM_RT_MSG_COH, len);
		return;
	}
	on_coh_one(rt, src, &m, line);
}

/*
 * Messages gathered for one peer (msg.c, wire.h): each as if it had come alone, in order,
 * except that the lines they install wait for the end of the batch to go in by runs. The
 * whole batch is checked before any of it is handled (decode.c): a malformed one is dropped
 * entire.
 */
static void on_coh_batch(struct dsm_rt *rt, int src, const void *data, size_t len)
{
	struct dsm_rt_coh_batch_view b;
	const void *line;
	dsm_coh_msg_t m;
	int ret;

	if (dsm_rt_decode_coh_batch(data, len, (size_t)1 << rt->layout.line_shift, &b) < 0) {
		dsm_rt_msg_malformed(rt, src, DSM_RT_MSG_COH_BATCH, len);
		return;
	}
	rt->installs.batching = true;
	dsm_rt_region_defer(&rt->region);
	while (dsm_rt_coh_batch_next(&b, &m, &line))
		on_coh_one(rt, src, &m, line);
	flush_installs(rt);
	dsm_rt_msg_kernel_flush(rt, true);
	rt->installs.batching = false;
	/* The lines this batch's requests were granted (a read-ahead window) go back as one. */
	ret = dsm_rt_msg_flush_lines(rt);
	if (ret < 0 && ret != DSM_ERR_PEER_DEAD)
		dsm_rt_fatal(rt, "sending the grants of a batch failed: %s", dsm_err_str(ret));
}

void dsm_rt_engine_rma_done(struct dsm_rt *rt, const struct dsm_tp_event *ev)
{
	struct dsm_rt_staging *s = ev->ctx;
	dsm_coh_event_t cev = {.type = DSM_COH_EV_RDMA_DONE};

	if (s == NULL)
		return;
	if (ev->status == DSM_ERR_PEER_DEAD) {
		/* With DSM_ON_DEATH=continue the engine has forgotten the read: the line's
		 * threads fault again, to its new home. */
		dsm_rt_death(rt, ev->peer);
		dsm_rt_rdma_done(rt, s);
		return;
	}
	if (ev->status < 0)
		dsm_rt_fatal(rt, "the RDMA read of line %llu from rank %d failed: %s",
		             (unsigned long long)s->line, ev->peer, dsm_err_str(ev->status));
	DSM_RT_COUNT(rt, bytes_received, ev->len);
	cev.line = s->line;
	rt->rdma.cur = s;
	if (dsm_rt_engine(rt, &cev, NULL) < 0)
		dsm_rt_fatal(rt, "the engine refused the end of the RDMA read of line %llu",
		             (unsigned long long)s->line);
	rt->rdma.cur = NULL;
	dsm_rt_rdma_done(rt, s);
}

int dsm_rt_engine_init(struct dsm_rt *rt)
{
	dsm_coh_config_t cc = {.rank = (unsigned)rt->rank,
	                       .nranks = (unsigned)rt->nranks,
	                       .data_mode = rt->rdma.on ? DSM_COH_DATA_RDMA : DSM_COH_DATA_INLINE,
	                       .migratory = rt->cfg.migratory};

	dsm_coh_actions_init(&rt->acts);
	dsm_rt_msg_on(rt, DSM_RT_MSG_COH, 0, on_coh_msg);
	dsm_rt_msg_on(rt, DSM_RT_MSG_COH_BATCH, 0, on_coh_batch);
	return dsm_coh_node_create(&cc, &rt->node);
}

void dsm_rt_engine_fini(struct dsm_rt *rt)
{
	if (rt->node)
		dsm_coh_node_destroy(rt->node);
	rt->node = NULL;
	dsm_coh_actions_fini(&rt->acts);
}
