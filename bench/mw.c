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
 *
 *   mw_release  what a release costs. A barrier with no multiple-writer memory, then with some
 *               allocated and untouched, then with this rank's copies of the lines homed here
 *               held and nothing written (in passes that alternate the three; ratios to the
 *               first), and dsm_release() with nothing to publish; then releases timed after
 *               every rank wrote one word in each of N lines of its own (disjoint lines,
 *               homed at the next rank or here), per line against moving a line at the RDMA
 *               read bandwidth of the floors. Checked after every round: what the previous
 *               rank wrote reads back as written.
 */
#include <dsm.h>
#include <errno.h>
#include <inttypes.h>
#include <mpi.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* ---- mw_release ---------------------------------------------------------------------------- */

#define REL_MAX        256       /* lines a rank writes before a release, at most */
#define REL_PER_SAMPLE 8         /* releases with nothing to publish timed as one sample */
#define REL_HOLD_NS    60000000L /* 60 ms, longer than a multiple-writer hold (runtime/mw.c) */

static const long rel_counts[] = {1, 8, 64, 256};

/* One kind of barrier, timed on rank 0 in every pass. */
struct rel_set {
	double *us;
	long n;
	uint64_t releases, acquires, barriers; /* every rank's */
};

/* What the workload's steps share. The allocation is one block of REL_MAX lines per rank,
 * rank q the home of block q. */
struct rel {
	const struct bench_opts *o;
	dsm_info_t info;
	volatile uint64_t *a;
	size_t words;
	long seq;    /* rounds so far, in every value written: no round reads another's */
	double *us;  /* this rank's samples */
	double *all; /* every rank's, gathered on rank 0 */
	long max;    /* room in us[], all[] / ranks and every set's us[] */
	int passes;
	struct rel_set plain, untouched, no_writes;
	double plain_p50, plain_p99;
};

static volatile uint64_t *rel_line(const struct rel *x, int block, long i)
{
	return x->a + ((size_t)block * REL_MAX + (size_t)i) * x->words;
}

/* Rank 0's clock ends a measurement for everyone, through MPI once in a while (not timed):
 * whether to stop after sample @i. */
static bool rel_stop(const struct rel *x, long i, long every, double end)
{
	int stop;

	if ((i + 1) % every != 0)
		return false;
	stop = x->o->rank == 0 && bench_now() > end;
	MPI_Bcast(&stop, 1, MPI_INT, 0, MPI_COMM_WORLD);
	return stop;
}

static void stats_now(dsm_stats_t *s)
{
	memset(s, 0, sizeof(*s));
	s->struct_size = sizeof(*s);
	dsm_stats(s);
}

/* One pass's share of @s: timed dsm_barrier()s, every rank arriving together (the previous
 * barrier let them go), and the releases and acquires among them that had anything to do. */
static void rel_barriers(struct rel *x, struct rel_set *s)
{
	long room = x->max / x->passes, i;
	dsm_stats_t s0, s1;
	uint64_t d[2], sum[2];
	double end;

	for (i = 0; i < 10; i++)
		dsm_barrier();
	stats_now(&s0);
	end = bench_now() + bench_budget(x->o) / 8 / x->passes;
	for (i = 0; i < room; i++) {
		double t0 = bench_now();

		dsm_barrier();
		s->us[s->n + i] = (bench_now() - t0) * 1e6;
		if (rel_stop(x, i, 32, end)) {
			i++;
			break;
		}
	}
	stats_now(&s1);
	d[0] = s1.releases - s0.releases;
	d[1] = s1.acquires - s0.acquires;
	MPI_Reduce(d, sum, 2, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
	s->n += i;
	s->releases += sum[0];
	s->acquires += sum[1];
	s->barriers += (uint64_t)i * (uint64_t)x->o->nranks;
}

static void rel_emit_barrier(struct rel *x, const char *metric, struct rel_set *s, int copies)
{
	double p50 = bench_quantile(s->us, (size_t)s->n, 0.5),
	       p99 = bench_quantile(s->us, (size_t)s->n, 0.99);
	char extra[400];

	snprintf(extra, sizeof(extra),
	         "\"stat\": \"median\", \"p99_us\": %.6g, \"samples\": %ld, \"passes\": %d, "
	         "\"ranks_in_barrier\": %d, \"plain_p99_us\": %.6g, \"lines_allocated\": %d, "
	         "\"copies_here\": %d, \"releases_per_barrier\": %.4g, "
	         "\"acquires_per_barrier\": %.4g, \"mw_track\": \"%s\"",
	         p99, s->n, x->passes, x->o->nranks, x->plain_p99, x->o->nranks * REL_MAX, copies,
	         (double)s->releases / (double)s->barriers,
	         (double)s->acquires / (double)s->barriers, x->info.mw_track);
	bench_emit(x->o, &(struct bench_result){.workload = "mw_release",
	                                        .metric = metric,
	                                        .unit = "us",
	                                        .value = p50,
	                                        .baseline_name = "barrier_plain",
	                                        .baseline = x->plain_p50,
	                                        .extra = extra});
}

static void rel_emit_plain(struct rel *x, const struct bench_floor *f)
{
	char extra[160];

	x->plain_p50 = bench_quantile(x->plain.us, (size_t)x->plain.n, 0.5);
	x->plain_p99 = bench_quantile(x->plain.us, (size_t)x->plain.n, 0.99);
	snprintf(extra, sizeof(extra),
	         "\"stat\": \"median\", \"p99_us\": %.6g, \"samples\": %ld, \"passes\": %d, "
	         "\"ranks_in_barrier\": %d",
	         x->plain_p99, x->plain.n, x->passes, x->o->nranks);
	bench_emit(x->o,
	           &(struct bench_result){.workload = "mw_release",
	                                  .metric = "barrier_plain",
	                                  .unit = "us",
	                                  .value = x->plain_p50,
	                                  .baseline_name = f->have ? "msg_rtt_64_polling" : NULL,
	                                  .baseline = f->have ? f->rtt_poll_us[0] : 0,
	                                  .extra = extra});
}

/* dsm_release() with nothing written, REL_PER_SAMPLE to a sample, every rank at once. */
static void rel_no_writes(struct rel *x)
{
	long n = bench_count(x->o, 1000, 100), i;
	double end = bench_now() + bench_budget(x->o) / 8, p50, p99;
	char extra[160];

	n = n < x->max ? n : x->max;
	for (i = 0; i < n; i++) {
		double t0 = bench_now();

		for (int k = 0; k < REL_PER_SAMPLE; k++)
			dsm_release();
		x->us[i] = (bench_now() - t0) * 1e6 / REL_PER_SAMPLE;
		if (rel_stop(x, i, 64, end)) {
			i++;
			break;
		}
	}
	MPI_Gather(x->us, (int)i, MPI_DOUBLE, x->all, (int)i, MPI_DOUBLE, 0, MPI_COMM_WORLD);
	n = i * x->o->nranks;
	p50 = bench_quantile(x->all, (size_t)n, 0.5);
	p99 = bench_quantile(x->all, (size_t)n, 0.99);
	snprintf(extra, sizeof(extra),
	         "\"stat\": \"median\", \"p99_us\": %.6g, \"samples\": %ld, "
	         "\"releases_per_sample\": %d, \"copies_here\": %d, \"mw_track\": \"%s\"",
	         p99, n, REL_PER_SAMPLE, REL_MAX, x->info.mw_track);
	bench_emit(x->o, &(struct bench_result){.workload = "mw_release",
	                                        .metric = "release_no_writes",
	                                        .unit = "us",
	                                        .value = p50,
	                                        .extra = extra});
}

/*
 * One round: this rank writes the first word of @n lines of block @to (its own lines: no
 * other rank writes them), its release is timed into *@us_p, and after a barrier it reads
 * what the previous rank wrote in block @seen. The number of words read wrong.
 */
static long rel_round(struct rel *x, long n, int to, int seen, double *us_p)
{
	int from = (x->o->rank + x->o->nranks - 1) % x->o->nranks;
	long bad = 0, seq = x->seq++;
	double t0;

	for (long i = 0; i < n; i++)
		*rel_line(x, to, i) = slot_value(seq, x->o->rank, (size_t)i);
	t0 = bench_now();
	dsm_release();
	*us_p = (bench_now() - t0) * 1e6;
	dsm_barrier();
	for (long i = 0; i < n; i++)
		bad += *rel_line(x, seen, i) != slot_value(seq, from, (size_t)i);
	dsm_barrier(); /* nobody writes the next round before everyone has read this one */
	return bad;
}

/* Releases after writing @n lines homed at the next rank (@here false) or at this one. 0, or
 * -1 when a rank read a word wrong (after bench_fail). */
static int rel_lines(struct rel *x, const struct bench_ctx *c, long n, bool here)
{
	const struct bench_opts *o = x->o;
	int next = (o->rank + 1) % o->nranks, prev = (o->rank + o->nranks - 1) % o->nranks;
	int to = here ? o->rank : next, seen = here ? prev : o->rank;
	long rounds = 0, bad = 0, all_bad, total;
	double ls = (double)x->info.line_size,
	       bw = c->floor->have ? bench_floor_bw(c->floor, x->info.line_size) : 0;
	double t0 = bench_now(), p50, p99, dummy;
	dsm_stats_t s0, s1;
	uint64_t d[2], sum[2];
	char metric[64], extra[512];

	/* A first round, not timed, leaves the lines as the next ones find them, and says how
	 * many fit in the budget (a few at least: large lines on slow transports). */
	bad += rel_round(x, n, to, seen, &dummy);
	if (o->rank == 0) {
		double per = bench_now() - t0;
		long min = bench_count(o, 4, 2), max = bench_count(o, 200, 20);

		max = max < x->max ? max : x->max;
		rounds = per > 0 ? (long)(bench_budget(o) / 8 / per) : max;
		rounds = rounds < min ? min : rounds > max ? max : rounds;
	}
	MPI_Bcast(&rounds, 1, MPI_LONG, 0, MPI_COMM_WORLD);
	stats_now(&s0);
	for (long r = 0; r < rounds; r++)
		bad += rel_round(x, n, to, seen, &x->us[r]);
	stats_now(&s1);
	if (bad)
		bench_fail(o, "mw_release",
		           "%ld of %ld words written by rank %d before a release read wrong on "
		           "rank %d (%ld lines homed %s)",
		           bad, (rounds + 1) * n, prev, o->rank, n,
		           here ? "at their writer" : "at the reader");
	MPI_Allreduce(&bad, &all_bad, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
	d[0] = s1.diffs_sent - s0.diffs_sent;
	d[1] = s1.diff_bytes - s0.diff_bytes;
	MPI_Reduce(d, sum, 2, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
	MPI_Gather(x->us, (int)rounds, MPI_DOUBLE, x->all, (int)rounds, MPI_DOUBLE, 0,
	           MPI_COMM_WORLD);
	if (all_bad)
		return -1;
	total = rounds * o->nranks;
	p50 = bench_quantile(x->all, (size_t)total, 0.5);
	p99 = bench_quantile(x->all, (size_t)total, 0.99);
	snprintf(metric, sizeof(metric), "release_per_line_%s%ld", here ? "here" : "remote", n);
	snprintf(extra, sizeof(extra),
	         "\"stat\": \"median\", \"homed\": \"%s\", \"lines\": %ld, \"rounds\": %ld, "
	         "\"samples\": %ld, \"release_us\": %.6g, \"release_p99_us\": %.6g, "
	         "\"p99_us\": %.6g, \"diffs_per_release\": %.4g, \"diff_bytes_per_release\": %.4g, "
	         "\"rma_read_bw_MBps\": %.6g, \"writers_per_line\": 1, \"mw_track\": \"%s\"",
	         here ? "here" : "remote", n, rounds, total, p50, p99, p99 / (double)n,
	         (double)sum[0] / (double)total, (double)sum[1] / (double)total, bw,
	         x->info.mw_track);
	/* The baseline: a line at rma_read_bw, whose MB/s are bytes per microsecond. */
	bench_emit(o, &(struct bench_result){.workload = "mw_release",
	                                     .metric = metric,
	                                     .unit = "us",
	                                     .value = p50 / (double)n,
	                                     .size = (size_t)n * x->info.line_size,
	                                     .baseline_name = bw > 0 ? "line_at_rma_read_bw" : NULL,
	                                     .baseline = bw > 0 ? ls / bw : 0,
	                                     .extra = extra});
	return 0;
}

/* Every block homed where rel_line() says; the same answer on every rank. */
static bool rel_homes_ok(const struct rel *x)
{
	for (int q = 0; q < x->o->nranks; q++)
		if (dsm_home((const void *)rel_line(x, q, 0)) != q ||
		    dsm_home((const void *)rel_line(x, q, REL_MAX - 1)) != q)
			return false;
	return true;
}

/*
 * One pass of the barriers: with no multiple-writer memory, then over a new allocation
 * untouched, then after each rank read the lines homed at it (copies an acquire keeps, so
 * they stay, with nothing written). Passes alternate the kinds, so that a machine busy for
 * a while makes every kind slower, not one. 0, or -1 after bench_fail (on every rank).
 */
static int rel_pass(struct rel *x)
{
	const struct bench_opts *o = x->o;
	long bad = 0, all_bad;

	rel_barriers(x, &x->plain);
	x->a = dsm_all_alloc_mw((size_t)o->nranks * REL_MAX * x->info.line_size, DSM_DIST_BLOCK);
	if (x->a == NULL) {
		bench_fail(o, "mw_release", "dsm_all_alloc_mw: %s", dsm_strerror(-errno));
		return -1;
	}
	if (!rel_homes_ok(x)) {
		bench_fail(o, "mw_release",
		           "a block distribution of %d x %d lines is not homed a block per rank",
		           o->nranks, REL_MAX);
		return -1;
	}
	rel_barriers(x, &x->untouched);
	for (long i = 0; i < REL_MAX; i++)
		bad += *rel_line(x, o->rank, i) != 0;
	if (bad)
		bench_fail(o, "mw_release", "%ld new lines homed at rank %d did not read 0", bad,
		           o->rank);
	MPI_Allreduce(&bad, &all_bad, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
	if (all_bad)
		return -1;
	/* The reads' faults left their lines held a while: timed after the holds ended, the
	 * barriers are those of memory used before and idle now. */
	nanosleep(&(struct timespec){.tv_nsec = REL_HOLD_NS}, NULL);
	rel_barriers(x, &x->no_writes);
	return 0;
}

int bench_mw_release(const struct bench_opts *o, const struct bench_ctx *c)
{
	struct rel x = {.o = o, .info = {.struct_size = sizeof(x.info)}};
	int ret = 0, before = bench_failures();

	x.max = bench_count(o, 5000, 300);
	x.passes = o->smoke ? 2 : 4;
	x.us = calloc((size_t)x.max, sizeof(double));
	x.all = calloc((size_t)x.max * (size_t)o->nranks, sizeof(double));
	x.plain.us = calloc((size_t)x.max, sizeof(double));
	x.untouched.us = calloc((size_t)x.max, sizeof(double));
	x.no_writes.us = calloc((size_t)x.max, sizeof(double));
	if (dsm_query(&x.info) < 0 || x.us == NULL || x.all == NULL || x.plain.us == NULL ||
	    x.untouched.us == NULL || x.no_writes.us == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	x.words = x.info.line_size / sizeof(uint64_t);
	for (int p = 0; p < x.passes && ret == 0; p++) {
		ret = rel_pass(&x);
		/* The last pass's memory stays for the releases. */
		if (x.a && (ret < 0 || p < x.passes - 1)) {
			dsm_barrier();
			dsm_all_free((void *)x.a);
			x.a = NULL;
		}
	}
	if (ret < 0)
		goto out;
	rel_emit_plain(&x, c->floor);
	rel_emit_barrier(&x, "barrier_mw_untouched", &x.untouched, 0);
	rel_emit_barrier(&x, "barrier_mw_no_writes", &x.no_writes, REL_MAX);
	rel_no_writes(&x);

	for (int h = 0; h < 2; h++)
		for (size_t k = 0; k < sizeof(rel_counts) / sizeof(rel_counts[0]); k++)
			ret |= rel_lines(&x, c, rel_counts[k], h == 1);
out:
	if (x.a) {
		dsm_barrier();
		dsm_all_free((void *)x.a);
	}
	free(x.us);
	free(x.all);
	free(x.plain.us);
	free(x.untouched.us);
	free(x.no_writes.us);
	/* Every rank stops at a failed check; the driver says which failed on another rank. */
	return ret == -1 && bench_failures() == before ? 0 : ret;
}
