/* SPDX-License-Identifier: MIT */
/*
 * The rank's counters: bumped by the event loop and the application threads,
 * read by dsm_stats() and printed at dsm_finalize under DSM_STATS=1. The
 * transport's counters belong to the loop thread, which publishes a copy.
 */
#ifndef DSM_RT_STATS_H
#define DSM_RT_STATS_H

#include <stdint.h>

struct dsm_rt;

void dsm_rt_stats_init(struct dsm_rt *rt);
void dsm_rt_stats_fini(struct dsm_rt *rt);
/* A counter the coherence engine names (dsm_coh_counter_t). */
void dsm_rt_count_coh(struct dsm_rt *rt, unsigned counter);
/* A fault resolved after @ns: its latency bucket. */
void dsm_rt_count_latency(struct dsm_rt *rt, uint64_t ns);
/* The loop thread: copies the transport's counters for dsm_stats(). */
void dsm_rt_stats_publish(struct dsm_rt *rt);
/* Collective (the bootstrap): every rank's counters, printed by rank 0. */
void dsm_rt_stats_print(struct dsm_rt *rt);
/* The same under DSM_ON_DEATH=continue, where MPI would wait for a dead rank: a
 * collective of libdsm's among the survivors, whose counters go to the lowest live rank,
 * which prints them (the dead ranks' rows empty). */
void dsm_rt_stats_print_survivors(struct dsm_rt *rt);
/* Registers the message that carries a survivor's counters. */
void dsm_rt_stats_msg_init(struct dsm_rt *rt);

#endif
