/* SPDX-License-Identifier: MIT */
/*
 * dsm-bench's own workloads and the driver: what they share beyond bench.h.
 */
#ifndef DSM_BENCH_DRIVER_H
#define DSM_BENCH_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "bench/bench.h"

/* The floors of a remote miss, measured before dsm_init on a transport of the bench's own
 * (same provider and settings as libdsm's) and with a raw userfaultfd. 0: not measured. */
struct bench_floor {
	bool have;
	char provider[64];
	char uffd_mode[32];
	double uffd_missing_us; /* MISSING fault resolved by UFFDIO_COPY(MODE_WP), one page */
	double uffd_wp_us;      /* WP fault resolved by UFFDIO_WRITEPROTECT */
	/* message round trips: [0] 64 B, [1] 4 KiB, [2] one line; peer polling / asleep */
	size_t rtt_size[3];
	double rtt_poll_us[3], rtt_asleep_us[3];
	double rma_poll_us, rma_asleep_us; /* 4 KiB RDMA read, target polling / asleep */
	int nbw;
	size_t bw_size[8];
	double bw_MBps[8]; /* RDMA read bandwidth, 16 in flight */
};

/* A remote read or write miss cannot be faster than a fault plus one line-size round trip
 * (the grant carries the line inline); an upgrade, a fault plus a small round trip. */
static inline double bench_floor_miss(const struct bench_floor *f, bool asleep)
{
	return f->uffd_missing_us + (asleep ? f->rtt_asleep_us[2] : f->rtt_poll_us[2]);
}

static inline double bench_floor_upgrade(const struct bench_floor *f, bool asleep)
{
	return f->uffd_wp_us + (asleep ? f->rtt_asleep_us[0] : f->rtt_poll_us[0]);
}

/* The RDMA read bandwidth measured at @size, 0 if not measured. */
double bench_floor_bw(const struct bench_floor *f, size_t size);

/* Measures the floors (collective over MPI_COMM_WORLD; MPI up, libdsm not yet). */
int bench_floor_measure(const struct bench_opts *o, size_t line_size, const char *provider,
                        struct bench_floor *out);
void bench_floor_emit(const struct bench_opts *o, const struct bench_floor *f);

/* What a workload gets from the driver. */
struct bench_ctx {
	const struct bench_floor *floor;
	size_t heap_size;
	bool strict; /* the heap is under strict overcommit (opened as allocated) */
};

int bench_latency(const struct bench_opts *o, const struct bench_ctx *c);
int bench_bandwidth(const struct bench_opts *o, const struct bench_ctx *c);
int bench_pingpong(const struct bench_opts *o, const struct bench_ctx *c);
int bench_threads(const struct bench_opts *o, const struct bench_ctx *c);
int bench_scale(const struct bench_opts *o, const struct bench_ctx *c);
int bench_sync(const struct bench_opts *o, const struct bench_ctx *c);
int bench_hotword(const struct bench_opts *o, const struct bench_ctx *c);
int bench_mw(const struct bench_opts *o, const struct bench_ctx *c);
int bench_mw_release(const struct bench_opts *o, const struct bench_ctx *c);
/* cache (bench/cache.c): a bounded cache against an unlimited one, in the same job. */
int bench_cache(const struct bench_opts *o, const struct bench_ctx *c);
int bench_ckpt(const struct bench_opts *o, const struct bench_ctx *c);

#endif /* DSM_BENCH_DRIVER_H */
