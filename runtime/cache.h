/* SPDX-License-Identifier: MIT */
/*
 * The bounded cache (DSM_CACHE_SIZE): the copies this rank holds of lines homed elsewhere,
 * counted as the engine installs and zaps them, and evicted ahead of need when they pass a
 * high watermark, down to a low one. Victims come from a CLOCK over the copies: a copy
 * faulted on again since the hand last passed (a write to a read-only copy, a stale fault)
 * has its second chance; nothing else costs a fault, since the kernel tells nothing of
 * plain loads and stores to a mapped page here. The engine evicts (DSM_COH_EV_EVICT): the
 * home takes the copy with the INV or FWD_M any writer would cause, so a dirty line is
 * written back in the order DESIGN.md gives (write-protect, copy out, zap, wake), gathered
 * per home with the turn's other messages, and a held line or one a thread waits for is
 * never chosen.
 *
 * Everything here is the loop's (whoever holds the baton); dsm_stats reads the counts.
 */
#ifndef DSM_RT_CACHE_H
#define DSM_RT_CACHE_H

#include <stdbool.h>
#include <stdint.h>

struct dsm_rt;

/* The budget from the resolved settings, for the lines this rank is not home of. 0, or
 * -EINVAL (a cache smaller than a line, logged) or -ENOMEM. */
int dsm_rt_cache_init(struct dsm_rt *rt);
void dsm_rt_cache_fini(struct dsm_rt *rt);
/* A copy of @line, homed elsewhere, went in (install from a message or an RDMA read). */
void dsm_rt_cache_add(struct dsm_rt *rt, uint64_t line);
/* The copy of @line went (zap); nothing for a line not counted. */
void dsm_rt_cache_del(struct dsm_rt *rt, uint64_t line);
/* A thread faulted on @line: its copy, if any, gets its second chance. */
void dsm_rt_cache_touch(struct dsm_rt *rt, uint64_t line);
/* Whether @n more lines on their way would pass the budget, counting the copies not being
 * evicted (prefetch asks: evictions make room for it as for misses). */
bool dsm_rt_cache_tight(struct dsm_rt *rt, uint64_t n);
/* Evicts down to the low watermark if the cache is past the high one. The lines evicted. */
int dsm_rt_cache_trim(struct dsm_rt *rt);

#endif
