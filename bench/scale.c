/* SPDX-License-Identifier: MIT */
/*
 * scale: a heap of 16 TiB (the driver re-initializes libdsm for it if the run's
 * heap is smaller), one allocation of a quarter of it, a sparse pattern of
 * lines touched across it (written by one rank each, then read by every
 * rank), and each rank's resident memory against the memory it touched.
 * Memory use must follow what is touched, not what is reserved: a growth
 * beyond 1 GiB + 4 x touched fails the check (per-line metadata for 16 TiB
 * would be tens of GiB).
 */
#include <dsm.h>
#include <errno.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "bench/driver.h"

static size_t resident_bytes(void)
{
	unsigned long size = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "re");

	if (f == NULL)
		return 0;
	if (fscanf(f, "%lu %lu", &size, &res) != 2)
		res = 0;
	fclose(f);
	return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

static uint64_t tag(long i)
{
	return 0x7363000000000000ull | (uint64_t)(i + 1);
}

int bench_scale(const struct bench_opts *o, const struct bench_ctx *c)
{
	/* Under strict overcommit an allocation is charged when it is made (README, Limits). */
	size_t alloc = c->strict ? (16ul << 30) : c->heap_size / 4;
	long n = bench_count(o, 1024, 64), homed = 0;
	size_t stride = alloc / (size_t)n / o->line_size * o->line_size;
	size_t before, growth, touched;
	double ratio, max_ratio;
	char *a;
	int bad = 0;

	dsm_barrier();
	before = resident_bytes();
	a = dsm_all_alloc(alloc, DSM_DIST_BLOCK);
	if (a == NULL) {
		bench_fail(o, "scale", "dsm_all_alloc(%zu) in a %zu-byte heap: %s", alloc,
		           c->heap_size, dsm_strerror(-errno));
		return -1;
	}
	for (long j = 0; j < n; j++) {
		char *p = a + (size_t)j * stride;
		if (j % o->nranks == o->rank)
			*(volatile uint64_t *)p = tag(j);
		homed += dsm_home(p) == o->rank;
	}
	dsm_barrier();
	for (long j = 0; j < n; j++)
		bad += *(volatile uint64_t *)(a + (size_t)j * stride) != tag(j);
	dsm_barrier();
	growth = resident_bytes();
	growth = growth > before ? growth - before : 0;
	/* This rank's mapping holds every line; the home segment the ones homed here. */
	touched = (size_t)(n + homed) * o->line_size;
	ratio = (double)growth / (double)touched;
	MPI_Allreduce(&ratio, &max_ratio, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
	if (bad)
		bench_fail(o, "scale", "%d of %ld sparse lines read back wrong", bad, n);
	if (growth > (1ul << 30) + 4 * touched)
		bench_fail(o, "scale",
		           "resident memory grew by %zu bytes for %zu bytes touched in a %zu-byte "
		           "heap: memory follows the reservation, not what is touched",
		           growth, touched, c->heap_size);
	if (!bad) {
		char extra[320];
		struct bench_result r = {.workload = "scale",
		                         .metric = "rss_growth",
		                         .unit = "B",
		                         .value = (double)growth,
		                         .size = alloc,
		                         .baseline_name = "touched",
		                         .baseline = (double)touched,
		                         .extra = extra};
		snprintf(
		        extra, sizeof(extra),
		        "\"heap_size\": %zu, \"lines\": %ld, \"stride\": %zu, \"rss_before\": %zu, "
		        "\"max_ratio_over_ranks\": %.6g, \"strict_overcommit\": %s",
		        c->heap_size, n, stride, before, max_ratio, c->strict ? "true" : "false");
		bench_emit(o, &r);
	}
	dsm_all_free(a);
	return bad ? -1 : 0;
}
