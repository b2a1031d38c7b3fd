/* SPDX-License-Identifier: MIT */
/*
 * The bounded cache (DSM_CACHE_SIZE), against an unlimited one in the same job:
 *
 *   cache  libdsm runs twice, restarted between (bench_restart_cache): first with a cache of
 *          C = 8 MiB x --size (dsm_config_t.cache_size, whatever the job's DSM_CACHE_SIZE
 *          says), then unlimited. Each time rank 0 writes two arrays of 4C homed at it, and
 *          rank 1 reads one of them once from end to end (a scan: read-ahead as the job has
 *          it), then reads lines of the other at random, 4 reads per line (the same seeded
 *          sequence both times), while a thread of its samples its resident memory
 *          (/proc/self/statm) every millisecond. Reported: the scan's MB/s, a random read's
 *          time and misses per read, each with the unlimited run's as baseline, and rank 1's
 *          largest growth of resident memory against the cache plus 32 MiB. Checked: every
 *          word read is the one rank 0 wrote.
 */
#include <dsm.h>
#include <errno.h>
#include <inttypes.h>
#include <mpi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/driver.h"

/* What rank 1 measured in one run, in the order sent to rank 0. */
enum { SCAN_MBPS, RND_US, RND_MISSES, RSS_MB, EVICTIONS, BAD, NRES };

static atomic_bool sampling;

static double rss_mb(void)
{
	static long page;
	FILE *f = fopen("/proc/self/statm", "r");
	long size = 0, res = 0;

	if (page == 0)
		page = sysconf(_SC_PAGESIZE);
	if (f) {
		if (fscanf(f, "%ld %ld", &size, &res) != 2)
			res = 0;
		fclose(f);
	}
	return (double)res * (double)page / (1 << 20);
}

static void *sampler(void *p)
{
	double *max = p;
	struct timespec ms = {0, 1000000};

	while (atomic_load(&sampling)) {
		double r = rss_mb();

		if (r > *max)
			*max = r;
		nanosleep(&ms, NULL);
	}
	return NULL;
}

static uint64_t word_of(size_t line)
{
	return 0x5ca1ab1e00000000ull | line;
}

/* One run with the cache libdsm has now; rank 1's figures land in @res on every rank. */
static int run(const struct bench_opts *o, size_t array, double *res)
{
	dsm_info_t info = {.struct_size = sizeof(info)};
	dsm_stats_t s0 = {.struct_size = sizeof(s0)}, s1 = {.struct_size = sizeof(s1)};
	size_t ls, words, n;
	uint64_t *scan, *rnd;
	double t0, before = 0, max = 0;
	pthread_t t;

	memset(res, 0, NRES * sizeof(*res));
	if (dsm_query(&info) < 0)
		return -1;
	ls = info.line_size;
	words = ls / sizeof(uint64_t);
	n = array / ls;
	scan = dsm_all_alloc(array, DSM_DIST_LOCAL);
	rnd = dsm_all_alloc(array, DSM_DIST_LOCAL);
	if (scan == NULL || rnd == NULL) {
		bench_fail(o, "cache", "allocating 2 x %zu bytes: %s", array, dsm_strerror(-errno));
		return -1;
	}
	if (o->rank == 0)
		for (size_t i = 0; i < n; i++)
			scan[i * words] = rnd[i * words] = word_of(i);
	dsm_barrier();
	if (o->rank == 1) {
		volatile const uint64_t *v = scan;
		uint64_t x = 0x9e3779b97f4a7c15ull;
		long bad = 0;

		before = max = rss_mb();
		atomic_store(&sampling, true);
		if (pthread_create(&t, NULL, sampler, &max) != 0)
			atomic_store(&sampling, false);
		t0 = bench_now();
		for (size_t i = 0; i < n; i++)
			bad += v[i * words] != word_of(i);
		res[SCAN_MBPS] = (double)array / (bench_now() - t0) / 1e6;
		dsm_stats(&s0);
		v = rnd;
		t0 = bench_now();
		for (size_t k = 0; k < 4 * n; k++) {
			size_t i;

			x = x * 6364136223846793005ull + 1442695040888963407ull;
			i = (size_t)(x >> 33) % n;
			bad += v[i * words] != word_of(i);
		}
		res[RND_US] = (bench_now() - t0) * 1e6 / (double)(4 * n);
		dsm_stats(&s1);
		if (atomic_exchange(&sampling, false))
			pthread_join(t, NULL);
		res[RND_MISSES] =
		        (double)(s1.read_faults - s0.read_faults + s1.prefetched - s0.prefetched) /
		        (double)(4 * n);
		res[RSS_MB] = max - before;
		res[EVICTIONS] = (double)(s1.evictions_clean + s1.evictions_dirty);
		res[BAD] = (double)bad;
	}
	MPI_Bcast(res, NRES, MPI_DOUBLE, 1, MPI_COMM_WORLD);
	dsm_barrier();
	dsm_all_free(rnd);
	dsm_all_free(scan);
	if (res[BAD] > 0) {
		bench_fail(o, "cache", "%.0f words read wrong on rank 1", res[BAD]);
		return -1;
	}
	return 0;
}

int bench_cache(const struct bench_opts *o, const struct bench_ctx *c)
{
	size_t cache = (size_t)bench_count(o, 8, 1) << 20, array = 4 * cache;
	double lim[NRES], unl[NRES];
	char extra[512];
	int ret;

	if (o->nranks < 2) {
		bench_fail(o, "cache", "needs 2 ranks or more (rank 1 reads what rank 0 homes)");
		return -1;
	}
	ret = bench_restart_cache(o, c->heap_size, cache);
	if (ret == 0)
		ret = run(o, array, lim);
	if (ret == 0)
		ret = bench_restart_cache(o, c->heap_size, DSM_CACHE_UNLIMITED);
	if (ret == 0)
		ret = run(o, array, unl);
	/* Back to the job's own setting for the workloads after this one. */
	if (bench_restart_cache(o, c->heap_size, 0) < 0 || ret < 0)
		return -1;
	snprintf(extra, sizeof(extra),
	         "\"cache_bytes\": %zu, \"array_bytes\": %zu, \"evictions\": %.0f, "
	         "\"evictions_unlimited\": %.0f",
	         cache, array, lim[EVICTIONS], unl[EVICTIONS]);
	bench_emit(o, &(struct bench_result){.workload = "cache",
	                                     .metric = "scan_bw",
	                                     .unit = "MB/s",
	                                     .value = lim[SCAN_MBPS],
	                                     .size = array,
	                                     .baseline_name = "unlimited_cache",
	                                     .baseline = unl[SCAN_MBPS],
	                                     .extra = extra});
	snprintf(extra, sizeof(extra),
	         "\"cache_bytes\": %zu, \"array_bytes\": %zu, \"reads\": %zu, "
	         "\"misses_per_read\": %.4f, \"misses_per_read_unlimited\": %.4f",
	         cache, array, 4 * array / o->line_size, lim[RND_MISSES], unl[RND_MISSES]);
	bench_emit(o, &(struct bench_result){.workload = "cache",
	                                     .metric = "random_read",
	                                     .unit = "us",
	                                     .value = lim[RND_US],
	                                     .size = array,
	                                     .baseline_name = "unlimited_cache",
	                                     .baseline = unl[RND_US],
	                                     .extra = extra});
	snprintf(extra, sizeof(extra),
	         "\"cache_bytes\": %zu, \"array_bytes\": %zu, \"rss_growth_unlimited_MiB\": %.1f, "
	         "\"sampled\": \"rank 1, /proc/self/statm every 1 ms\"",
	         cache, array, unl[RSS_MB]);
	bench_emit(o, &(struct bench_result){.workload = "cache",
	                                     .metric = "rss_growth_max",
	                                     .unit = "MiB",
	                                     .value = lim[RSS_MB],
	                                     .size = array,
	                                     .baseline_name = "cache_plus_32MiB",
	                                     .baseline = (double)cache / (1 << 20) + 32,
	                                     .extra = extra});
	return 0;
}
