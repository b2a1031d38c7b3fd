/* SPDX-License-Identifier: MIT */
/*
 * Multiple-writer memory: what a round of writes by every rank to the same lines costs.
 *
 *   mw_rounds   an array of 256 lines from dsm_all_alloc_mw (homes round robin); in every
 *               round each rank writes its own 8-byte slot of every line (every line has
 *               every rank as a writer), dsm_barrier(), then reads the next rank's slot of
 *               every line and checks it. Against the same exchange written with MPI: the
 *               slots in a private array, MPI_Allgather, the same reads. Reports the median
 *               round of each, with faults, diffs and diff bytes per round, and the way
 *               writes are found (DSM_MW_TRACK): run it with twin and with async to compare.
 */
#include <dsm.h>
#include <errno.h>
#include <inttypes.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/driver.h"
#include "bench/mpiboot.h"

#define MW_LINES 256

static uint64_t slot_value(long round, int rank, size_t line)
{
	return (uint64_t)round << 40 | (uint64_t)rank << 24 | line;
}

int bench_mw(const struct bench_opts *o, const struct bench_ctx *c)
{
	dsm_info_t info = {.struct_size = sizeof(info)};
	long n = bench_count(o, 500, 20), bad = 0;
	size_t ls, words;
	double *t_dsm = calloc((size_t)n, sizeof(double)),
	       *t_mpi = calloc((size_t)n, sizeof(double));
	uint64_t *mine = NULL, *all = NULL;
	dsm_stats_t s0 = {.struct_size = sizeof(s0)}, s1 = {.struct_size = sizeof(s1)};
	uint64_t d[3], sum[3];
	volatile uint64_t *a;
	char extra[400];
	int next = (o->rank + 1) % o->nranks;

	(void)c;
	if (dsm_query(&info) < 0 || t_dsm == NULL || t_mpi == NULL)
		return -ENOMEM;
	ls = info.line_size;
	words = ls / sizeof(uint64_t);
	if ((size_t)o->nranks > words) {
		bench_fail(o, "mw_rounds", "more ranks (%d) than 8-byte slots in a line (%zu)",
		           o->nranks, words);
		return -1;
	}
	a = dsm_all_alloc_mw(MW_LINES * ls, DSM_DIST_CYCLIC);
	mine = calloc(MW_LINES, sizeof(*mine));
	all = calloc((size_t)MW_LINES * (size_t)o->nranks, sizeof(*all));
	if (a == NULL || mine == NULL || all == NULL) {
		bench_fail(o, "mw_rounds", "allocation: %s", dsm_strerror(-errno));
		return -1;
	}
	dsm_barrier();
	dsm_stats(&s0);
	for (long r = 0; r < n; r++) {
		double t0 = bench_now();

		for (size_t l = 0; l < MW_LINES; l++)
			a[l * words + (size_t)o->rank] = slot_value(r, o->rank, l);
		dsm_barrier();
		for (size_t l = 0; l < MW_LINES; l++)
			bad += a[l * words + (size_t)next] != slot_value(r, next, l);
		t_dsm[r] = (bench_now() - t0) * 1e6;
		dsm_barrier(); /* nobody writes round r + 1 before everyone has read round r */
	}
	dsm_stats(&s1);
	for (long r = 0; r < n; r++) {
		double t0 = bench_now();

		for (size_t l = 0; l < MW_LINES; l++)
			mine[l] = slot_value(r, o->rank, l);
		MPI_Allgather(mine, MW_LINES, MPI_UINT64_T, all, MW_LINES, MPI_UINT64_T,
		              MPI_COMM_WORLD);
		for (size_t l = 0; l < MW_LINES; l++)
			bad += all[(size_t)next * MW_LINES + l] != slot_value(r, next, l);
		t_mpi[r] = (bench_now() - t0) * 1e6;
	}
	d[0] = s1.mw_faults - s0.mw_faults;
	d[1] = s1.diffs_sent - s0.diffs_sent;
	d[2] = s1.diff_bytes - s0.diff_bytes;
	MPI_Reduce(d, sum, 3, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
	if (bad)
		bench_fail(o, "mw_rounds", "%ld slots read wrong on rank %d", bad, o->rank);
	snprintf(extra, sizeof(extra),
	         "\"stat\": \"median\", \"rounds\": %ld, \"lines\": %d, \"mw_track\": \"%s\", "
	         "\"faults_per_round\": %.4g, \"diffs_per_round\": %.4g, "
	         "\"diff_bytes_per_round\": %.4g, \"mpi_p99_us\": %.6g, \"p99_us\": %.6g",
	         n, MW_LINES, info.mw_track, (double)sum[0] / (double)n, (double)sum[1] / (double)n,
	         (double)sum[2] / (double)n, bench_quantile(t_mpi, (size_t)n, 0.99),
	         bench_quantile(t_dsm, (size_t)n, 0.99));
	bench_emit(o, &(struct bench_result){.workload = "mw_rounds",
	                                     .metric = "round",
	                                     .unit = "us",
	                                     .value = bench_quantile(t_dsm, (size_t)n, 0.5),
	                                     .size = MW_LINES * ls,
	                                     .baseline_name = "mpi_allgather",
	                                     .baseline = bench_quantile(t_mpi, (size_t)n, 0.5),
	                                     .extra = extra});
	dsm_barrier();
	dsm_all_free((void *)a);
	free(mine);
	free(all);
	free(t_dsm);
	free(t_mpi);
	return bad ? -1 : 0;
}
