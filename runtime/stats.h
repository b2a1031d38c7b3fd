/* SPDX-License-Identifier: MIT */
/*
 * The rank's counters: bumped by the event loop and the application threads,
 * read by dsm_stats() and printed at dsm_finalize under DSM_STATS=1. The
 * transport's counters belong to the loop thread, which publishes a copy.
 */
#ifndef DSM_RT_STATS_H
#define DSM_RT_STATS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <dsm.h>

#include "transport/transport.h"

struct dsm_rt;

struct dsm_rt_counters {
	atomic_uint_fast64_t read_faults, write_faults, upgrades, inv_sent, inv_received;
	atomic_uint_fast64_t stale_faults, msgs_dropped, bytes_sent, bytes_received;
	atomic_uint_fast64_t lat[DSM_STATS_LAT_BUCKETS];
	atomic_uint_fast64_t holds, holds_early, sleeps, naps, missed_wakeups;
};

struct dsm_rt_stats {
	struct dsm_rt_counters cnt;
	/* The loop copies the transport's here whenever it goes idle, and every so many busy
	 * turns. */
	pthread_mutex_t tp_lock;
	struct dsm_tp_stats tp;
};

/* Adds @n to counter @field of @rt. */
#define DSM_RT_COUNT(rt, field, n)                                                                 \
	atomic_fetch_add_explicit(&(rt)->stats.cnt.field, (n), memory_order_relaxed)

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

#endif
