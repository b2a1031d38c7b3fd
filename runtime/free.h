/* SPDX-License-Identifier: MIT */
/*
 * Freed memory. When lines stop being allocated (a dsm_free that empties them, a
 * dsm_all_free), every copy of them goes, on every rank, before the call returns: the next
 * access anywhere faults, and the fault finds no allocation (fault.c ends the rank with one
 * line naming the address). A home also answers a request for a line of its slice that no
 * allocation covers with UNALLOC, which ends the requesting rank the same way.
 */
#ifndef DSM_RT_FREE_H
#define DSM_RT_FREE_H

#include <stdbool.h>
#include <stdint.h>

struct dsm_rt;

/* DSM_DEBUG_FREE: what a freed dsm_alloc object smaller than a line is filled with. */
#define DSM_FREED_BYTE 0xdb

void dsm_rt_free_init(struct dsm_rt *rt);
void dsm_rt_free_fini(struct dsm_rt *rt);

/*
 * An application thread: lines [first, first + n) are no longer allocated; returns once
 * their copies are gone. @home: this rank is their home (a dsm_free of its own slice), so
 * the copies of every rank go; else this rank's own (dsm_all_free, where every rank calls
 * it). 0, or the request's error.
 */
int dsm_rt_free_lines(struct dsm_rt *rt, uint64_t first, uint64_t n, bool home);
/* The loop, as the home of lines [first, first + n) that a dsm_free from @src emptied:
 * answers @token to @src once their copies are gone. */
void dsm_rt_free_start_home(struct dsm_rt *rt, uint64_t first, uint64_t n, int src, uint64_t token);
/* The loop, each turn: drops that had to wait, and the frees that are done. Returns the
 * work done. */
int dsm_rt_free_poll(struct dsm_rt *rt);
/* The loop, as the home, before a request from @src for @line reaches the engine: false,
 * after UNALLOC to @src, for a line of this rank's slice that no allocation covers. */
bool dsm_rt_free_check_request(struct dsm_rt *rt, int src, uint64_t line);

#endif
