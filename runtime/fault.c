/* SPDX-License-Identifier: MIT */
#include "runtime/fault.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "runtime/cache.h"
#include "runtime/ckpt.h"
#include "runtime/death.h"
#include "runtime/engine.h"
#include "runtime/fatal.h"
#include "runtime/hold.h"
#include "runtime/msg.h"
#include "runtime/mw.h"
#include "runtime/prefetch.h"
#include "runtime/profile.h"
#include "runtime/rt.h"

#define BATCH 32

void dsm_rt_fault_handle(struct dsm_rt *rt, const struct dsm_rt_fault *f)
{
	dsm_coh_event_t ev;
	dsm_coh_span_t span;
	int64_t line = dsm_coh_line_of(&rt->layout, f->addr);
	int home = line < 0 ? line : dsm_rt_alloc_home(&rt->alloc, (uint64_t)line, &span);

	/* At the home of a slice only the home knows what is allocated in it. */
	if (home == rt->rank && !dsm_rt_alloc_live(&rt->alloc, (uint64_t)line))
		home = -EINVAL;
	if (home < 0)
		dsm_rt_fatal(rt,
		             "a thread accessed %#llx, heap memory that is not allocated "
		             "(freed, or never handed out)",
		             (unsigned long long)f->addr);
	/* A checkpoint being agreed parks it; one being written saves the line first. */
	if (dsm_rt_ckpt_fault(rt, f, (uint64_t)line))
		return;
	if (dsm_rt_mw_fault(rt, f, (uint64_t)line, home))
		return; /* multiple-writer memory: mw.c */
	/* Its home died: where its lines went. */
	home = dsm_rt_live_home(rt, home);
	dsm_rt_prof_fault(rt, (uint64_t)line, f->exact, f->write);
	dsm_rt_cache_touch(rt, (uint64_t)line);
	ev = (dsm_coh_event_t){.type = f->write ? DSM_COH_EV_WRITE_FAULT : DSM_COH_EV_READ_FAULT,
	                       .home = (unsigned)home,
	                       .line = (uint64_t)line};
	DSM_LOG(DSM_LOG_DEBUG, "%s fault at %#llx: line %lld, home %d",
	        f->wp      ? "WP"
	        : f->write ? "write"
	                   : "read",
	        (unsigned long long)f->addr, (long long)line, home);
	/* Homed here since its home died: it may wait for the survivors' copies. */
	if (home == rt->rank && dsm_rt_death_hold(rt, -1, &ev, NULL))
		return;
	dsm_rt_fault_begin(rt, (uint64_t)line, f->tid);
	/* At the home the grant may come within this call, and the woken thread may run
	 * before a later read: read its count first there. Elsewhere after the request
	 * is out, overlapping the wait. */
	if (home == rt->rank)
		dsm_rt_fault_sample(rt, (uint64_t)line, f->tid);
	if (dsm_rt_engine(rt, &ev, NULL) < 0)
		dsm_rt_fatal(rt, "the engine refused a fault on line %lld", (long long)line);
	/* The read-ahead's requests to the same home go with the fault's, in one
	 * message (msg.c, gathering), which leaves before the count is read. */
	dsm_rt_prefetch_fault(rt, (uint64_t)line, &span, f->write);
	if (home != rt->rank) {
		int err = dsm_rt_msg_flush(rt, home);

		if (err < 0 && err != DSM_ERR_PEER_DEAD)
			dsm_rt_fatal(rt, "sending a request failed: %s", dsm_err_str(err));
		dsm_rt_fault_sample(rt, (uint64_t)line, f->tid);
	}
}

int dsm_rt_fault_drain(struct dsm_rt *rt)
{
	int n = 0;

	for (; n < BATCH; n++) {
		struct dsm_rt_fault f;
		int ret = dsm_rt_region_read_fault(&rt->region, &f);

		if (ret == -EAGAIN)
			break;
		if (ret < 0)
			dsm_rt_fatal(rt, "reading the userfaultfd failed: %s", dsm_err_str(ret));
		dsm_rt_fault_handle(rt, &f);
	}
	return n;
}

#define STALL_NS      (10 * 1000000000ull) /* a fault this old is reported, once */
#define DEAD_STALL_NS (20 * 1000000000ull) /* ... and after a death ends the rank */

/*
 * A fault that waits for seconds means a lost message, a wedged transport or a peer that
 * stopped answering: say so, with what the transport waits for, instead of a silent hang.
 * One report per pass, however many faults stalled. The transport's state goes through a
 * stream of our own: stderr's stdio lock may be held by an application thread that is
 * blocked in a fault.
 */
void dsm_rt_fault_stall_check(struct dsm_rt *rt, uint64_t now)
{
	struct dsm_rt_pending_fault *first = NULL;
	size_t n = 0, len = 0;
	char *buf = NULL;
	FILE *m;
	int home;

	if (now < rt->holds.next_stall_check)
		return;
	rt->holds.next_stall_check = now + 1000000000ull;
	/* After a death (DSM_ON_DEATH=continue) a wait this long is the dead rank's doing: it
	 * died inside a transfer that the provider cannot abandon (TRAPS.md, "A dead rank and
	 * shm"). End the rank rather than hang. */
	for (size_t i = 0; atomic_load(&rt->death.ndead) && i < rt->holds.nfaults; i++) {
		struct dsm_rt_pending_fault *f = &rt->holds.faults[i];

		if (now - f->t0_ns >= DEAD_STALL_NS)
			dsm_rt_fatal(
			        rt,
			        "a fault on line %llu has waited %.0f s since a rank died: the "
			        "transport is wedged by the dead rank (libfabric's shm provider "
			        "cannot get past a send the dead rank was making to this rank; "
			        "use DSM_PROVIDER=tcp with DSM_ON_DEATH=continue); this rank "
			        "exits",
			        (unsigned long long)f->line, (double)(now - f->t0_ns) / 1e9);
	}
	for (size_t i = 0; i < rt->holds.nfaults; i++) {
		struct dsm_rt_pending_fault *f = &rt->holds.faults[i];

		if (f->reported || now - f->t0_ns < STALL_NS)
			continue;
		f->reported = true;
		if (first == NULL || f->t0_ns < first->t0_ns)
			first = f;
		n++;
	}
	if (n == 0 || dsm_log_level() < DSM_LOG_WARN)
		return;
	home = dsm_rt_live_home(rt, dsm_rt_alloc_home(&rt->alloc, first->line, NULL));
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
