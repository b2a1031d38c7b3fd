/* SPDX-License-Identifier: MIT */
/*
 * The progress guarantee (README, "Progress"): a line granted to faulting
 * threads is held until each of them has been scheduled in again (its access
 * has then happened) or DSM_HOLD_US has passed. This file keeps the threads
 * waiting on each pending fault, with how often each had run when it
 * faulted, and the holds that follow an install. It only keeps books: the
 * loop feeds the holds that are due to the engine.
 */
#ifndef DSM_RT_HOLD_H
#define DSM_RT_HOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dsm_rt;

/* The threads waiting on one line's fault, each with how often it had been scheduled in when
 * it faulted (the third field of /proc/self/task/TID/schedstat). A thread blocked in a fault
 * does not run, so once that count moves it has retried its access. */
#define DSM_RT_WAITERS 8
struct dsm_rt_waiters {
	unsigned n;
	bool unknown; /* a thread without an id, or more than DSM_RT_WAITERS */
	int32_t tid[DSM_RT_WAITERS];
	uint64_t runs[DSM_RT_WAITERS];
};

/* A granted line kept until its woken threads have run, or until deadline_ns. */
struct dsm_rt_hold {
	uint64_t line;
	uint64_t deadline_ns;
	struct dsm_rt_waiters w;
};

/* A fault sent to the engine and not installed yet. */
struct dsm_rt_pending_fault {
	uint64_t line;
	uint64_t t0_ns;
	bool reported; /* its stall was logged */
	struct dsm_rt_waiters w;
};

struct dsm_rt_holds {
	uint64_t hold_ns; /* DSM_HOLD_US */
	bool early;       /* DSM_HOLD_EARLY: end holds once the woken threads have run */
	struct dsm_rt_hold *v;
	size_t n, cap;
	struct dsm_rt_pending_fault *faults;
	size_t nfaults, faults_cap;
	/* The waiters of the line installed last, for the hold that follows its wake-up. */
	uint64_t woken_line;
	struct dsm_rt_waiters woken;
	uint64_t next_stall_check; /* when fault.c looks for stalled faults next */
};

void dsm_rt_holds_init(struct dsm_rt *rt);
void dsm_rt_holds_fini(struct dsm_rt *rt);

/* Thread @tid (0: unknown) faulted on @line. */
void dsm_rt_fault_begin(struct dsm_rt *rt, uint64_t line, int32_t tid);
/* Reads how often @tid has run, for the hold (see hold.c for when). */
void dsm_rt_fault_sample(struct dsm_rt *rt, uint64_t line, int32_t tid);
/* @line is installed: its latency is counted and its waiters kept for the hold. */
void dsm_rt_fault_end(struct dsm_rt *rt, uint64_t line);
/* (Re)arms the hold of @line (the engine's HOLD action). */
void dsm_rt_hold_add(struct dsm_rt *rt, uint64_t line);
/*
 * Walks the holds from *@i: the next that is due at @now (its time passed, or its threads
 * have run while a request waits for the line) is removed and returned in *@line_p. false
 * when none is left; *@next_p is then when to look again (UINT64_MAX: never). Start with
 * *@i = 0 and *@next_p = UINT64_MAX; holds added meanwhile are seen.
 */
bool dsm_rt_hold_next_due(struct dsm_rt *rt, uint64_t now, size_t *i, uint64_t *line_p,
                          uint64_t *next_p);

#endif
