/* SPDX-License-Identifier: MIT */
/*
 * The micro workloads: latency, random, bandwidth, pingpong, threads. Each is
 * collective; rank 0 measures, rank 1 is the home of the lines it touches
 * (and its peer where one is needed), the other ranks are sharers or wait in
 * dsm_barrier (asleep). Every result is checked: data read back must be what
 * was written, including after invalidations.
 */
#include <dsm.h>
#include <errno.h>
#include <inttypes.h>
#include <mpi.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bench/driver.h"
#include "bench/mpiboot.h"

#define MAX_BYTES (64ul << 20) /* per allocation: bounds memory for large lines */

/* The value written into line @i by a workload, never 0 (fresh lines read as 0). */
static uint64_t tag(long i)
{
	return 0x6473000000000000ull | (uint64_t)(i + 1);
}

static long cap_lines(const struct bench_opts *o, long n)
{
	long max = (long)(MAX_BYTES / o->line_size);

	return n < max ? n : max;
}

/*
 * @n lines homed at rank @home, collectively: a block allocation of n lines per rank, of which
 * the lines dsm_home() names @home are kept. *whole_p is what to free. NULL when fewer than @n
 * such lines came back (after bench_fail; every rank sees the same).
 */
static char **homed_lines(const struct bench_opts *o, const char *wl, long n, int home,
                          char **whole_p)
{
	size_t total = (size_t)n * (size_t)o->nranks;
	char *a = dsm_all_alloc(total * o->line_size, DSM_DIST_BLOCK);
	char **lines;
	long got = 0;

	*whole_p = a;
	if (a == NULL) {
		bench_fail(o, wl, "dsm_all_alloc(%zu): %s", total * o->line_size,
		           dsm_strerror(-errno));
		return NULL;
	}
	lines = calloc((size_t)n, sizeof(*lines));
	for (size_t i = 0; i < total && got < n; i++)
		if (dsm_home(a + i * o->line_size) == home)
			lines[got++] = a + i * o->line_size;
	if (got < n) {
		bench_fail(o, wl, "only %ld of %zu block-distributed lines are homed at rank %d",
		           got, total, home);
		free(lines);
		return NULL;
	}
	return lines;
}

/*
 * A step through @n lines (the k-th read is line k * step % n) that read-ahead does not
 * follow: coprime with n, and keeping each of the next 9 reads more than 16 lines from
 * this one (libdsm looks for streams within 16 lines), so each read is a miss of its own.
 * 1 where n is too small to have one (smoke sizes).
 */
static long scatter_step(long n)
{
	long step = 1;

	for (long st = n / 3; st > 16 && n - st > 16 && step == 1; st++) {
		long a = n, b = st, ok = 1;

		while (b) { /* a = gcd(n, st) */
			long t = a % b;
			a = b;
			b = t;
		}
		for (long j = 1; j <= 9 && ok; j++) {
			long r = j * st % n;
			ok = a == 1 && r > 16 && n - r > 16;
		}
		if (ok)
			step = st;
	}
	return step;
}

static uint64_t rd(const char *p)
{
	return *(const volatile uint64_t *)p;
}

static void wr(char *p, uint64_t v)
{
	*(volatile uint64_t *)p = v;
}

/* ---- latency ------------------------------------------------------------------------------ */

enum lat_kind { LAT_READ, LAT_READ_DIRTY, LAT_WRITE, LAT_UPGRADE, LAT_INV };

static void lat_emit(const struct bench_opts *o, const struct bench_ctx *c, enum lat_kind kind,
                     int k, double *lat, long n)
{
	static const char *const names[] = {"read_miss", "read_miss_dirty", "write_miss", "upgrade",
	                                    "write_inv"};
	const struct bench_floor *f = c->floor;
	double p50 = bench_quantile(lat, (size_t)n, 0.5),
	       p99 = bench_quantile(lat, (size_t)n, 0.99);
	bool up = kind == LAT_UPGRADE;
	char metric[64], extra[256];
	struct bench_result r = {.workload = "latency", .unit = "us"};

	if (kind == LAT_INV)
		snprintf(metric, sizeof(metric), "%s%d", names[kind], k);
	else
		snprintf(metric, sizeof(metric), "%s", names[kind]);
	if (f->have) {
		r.baseline_name = up ? "upgrade_floor_polling" : "miss_floor_polling";
		snprintf(extra, sizeof(extra),
		         "\"stat\": \"median\", \"p99_us\": %.6g, \"samples\": %ld, \"home\": 1, "
		         "\"k\": %d, \"floor_asleep_us\": %.6g",
		         p99, n, k, up ? bench_floor_upgrade(f, true) : bench_floor_miss(f, true));
	} else {
		snprintf(extra, sizeof(extra),
		         "\"stat\": \"median\", \"p99_us\": %.6g, \"samples\": %ld, \"home\": 1, "
		         "\"k\": %d",
		         p99, n, k);
	}
	r.baseline = up ? bench_floor_upgrade(f, false) : bench_floor_miss(f, false);
	r.metric = metric;
	r.value = p50;
	r.extra = extra;
	bench_emit(o, &r);
	strncat(metric, "_p99", sizeof(metric) - strlen(metric) - 1);
	r.value = p99;
	r.extra = "\"stat\": \"p99\"";
	bench_emit(o, &r);
}

/* One kind of miss, @n samples, each on a fresh line homed at rank 1; @k sharers for LAT_INV
 * (ranks 1..k read the lines first). */
static int lat_kind(const struct bench_opts *o, const struct bench_ctx *c, enum lat_kind kind,
                    int k)
{
	long n = cap_lines(o, bench_count(o, 2000, 100));
	char *whole, **lines = homed_lines(o, "latency", n, 1, &whole);
	double *lat = calloc((size_t)n, sizeof(*lat));
	int bad = 0;

	if (lines == NULL)
		goto out;
	/* Set-up, not timed: the lines the kind needs are held read-only where it says. */
	if ((kind == LAT_UPGRADE && o->rank == 0) ||
	    (kind == LAT_INV && o->rank >= 1 && o->rank <= k))
		for (long i = 0; i < n; i++)
			bad += rd(lines[i]) != 0;
	/* Dirty: the home has written the line, so a reader's miss takes it from the owner. */
	if (kind == LAT_READ_DIRTY && o->rank == 1)
		for (long i = 0; i < n; i++)
			wr(lines[i], tag(i));
	dsm_barrier();
	if (o->rank == 0) {
		double end = bench_now() + bench_budget(o);
		long i;
		long step = scatter_step(n);

		/* Reads in scattered order: a miss each, not a stream read ahead. */
		for (i = 0; i < n && (i < 10 || bench_now() < end); i++) {
			long x = kind == LAT_READ || kind == LAT_READ_DIRTY ? i * step % n : i;
			double t0 = bench_now();
			if (kind == LAT_READ)
				bad += rd(lines[x]) != 0;
			else if (kind == LAT_READ_DIRTY)
				bad += rd(lines[x]) != tag(x);
			else
				wr(lines[x], tag(x));
			lat[i] = (bench_now() - t0) * 1e6;
		}
		n = i;
	}
	dsm_barrier();
	/* How many samples rank 0 took before its time was up. */
	MPI_Bcast(&n, 1, MPI_LONG, 0, MPI_COMM_WORLD);
	/* The writes must be seen by the home, and by every former sharer (whose copy was
	 * invalidated, or it would still read 0). */
	if (kind != LAT_READ && kind != LAT_READ_DIRTY &&
	    (o->rank == 1 || (kind == LAT_INV && o->rank <= k && o->rank > 0)))
		for (long i = 0; i < n; i++)
			bad += rd(lines[i]) != tag(i);
	if (bad)
		bench_fail(o, "latency", "%d of %ld lines read back wrong data (kind %d, k %d)",
		           bad, n, (int)kind, k);
	else
		lat_emit(o, c, kind, k, lat, n);
	dsm_barrier();
	free(lines);
out:
	if (whole)
		dsm_all_free(whole);
	free(lat);
	return bad ? -1 : 0;
}

int bench_latency(const struct bench_opts *o, const struct bench_ctx *c)
{
	int ret = 0;

	ret |= lat_kind(o, c, LAT_READ, 0);
	ret |= lat_kind(o, c, LAT_READ_DIRTY, 0);
	ret |= lat_kind(o, c, LAT_WRITE, 0);
	ret |= lat_kind(o, c, LAT_UPGRADE, 0);
	for (int k = 1; k < o->nranks; k++)
		ret |= lat_kind(o, c, LAT_INV, k);
	return ret;
}

/* ---- random ------------------------------------------------------------------------------- */

/* A permutation of 0 .. n-1 (Fisher-Yates on a fixed splitmix64 sequence): the same every run.
 * NULL when out of memory. */
static long *random_order(long n)
{
	long *p = malloc((size_t)n * sizeof(*p));
	uint64_t s = 0x72616e646f6dull;

	for (long i = 0; p && i < n; i++)
		p[i] = i;
	for (long i = n - 1; p && i > 0; i--) {
		uint64_t z = (s += 0x9e3779b97f4a7c15ull);
		long j, t;

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		z ^= z >> 31;
		j = (long)(z % (uint64_t)(i + 1));
		t = p[i];
		p[i] = p[j];
		p[j] = t;
	}
	return p;
}

/* What one run of the random reads gave on rank 0. */
struct rnd_result {
	double p50, p99;
	long samples;
	dsm_stats_t d; /* the counters the reads moved (prefetched, faults, ...) */
};

static void stats_now(dsm_stats_t *s)
{
	memset(s, 0, sizeof(*s));
	s->struct_size = sizeof(*s);
	dsm_stats(s);
}

static void rnd_emit(const struct bench_opts *o, const struct bench_ctx *c, const char *mode,
                     const struct rnd_result *res)
{
	const struct bench_floor *f = c->floor;
	char extra[512], floor[64] = "";
	struct bench_result r = {.workload = "random",
	                         .metric = "read_random",
	                         .unit = "us",
	                         .value = res->p50,
	                         .extra = extra};

	if (f->have) {
		r.baseline_name = "miss_floor_polling";
		r.baseline = bench_floor_miss(f, false);
		snprintf(floor, sizeof(floor), ", \"floor_asleep_us\": %.6g",
		         bench_floor_miss(f, true));
	}
	snprintf(extra, sizeof(extra),
	         "\"prefetch\": \"%s\", \"stat\": \"median\", \"p99_us\": %.6g, \"samples\": %ld, "
	         "\"home\": 1, \"read_faults\": %" PRIu64 ", \"prefetched\": %" PRIu64
	         ", \"prefetch_used\": %" PRIu64 ", \"prefetch_wasted\": %" PRIu64 "%s",
	         mode, res->p99, res->samples, res->d.read_faults, res->d.prefetched,
	         res->d.prefetch_used, res->d.prefetch_wasted, floor);
	bench_emit(o, &r);
	r.metric = "read_random_p99";
	r.value = res->p99;
	snprintf(extra, sizeof(extra), "\"prefetch\": \"%s\", \"stat\": \"p99\"", mode);
	bench_emit(o, &r);
}

/*
 * Rank 0 reads one word of each of n lines homed at rank 1 (which wrote them first), in the
 * order of random_order(); libdsm runs with whatever DSM_PREFETCH it was started with (@mode).
 */
static int rnd_run(const struct bench_opts *o, const struct bench_ctx *c, const char *mode,
                   struct rnd_result *res)
{
	long n = cap_lines(o, bench_count(o, 2000, 100));
	char *whole, **lines = homed_lines(o, "random", n, 1, &whole);
	long *order = random_order(n);
	double *lat = calloc((size_t)n, sizeof(*lat));
	int bad = 0;

	if (lines == NULL)
		goto out;
	if (o->rank == 1)
		for (long i = 0; i < n; i++)
			wr(lines[i], tag(i));
	dsm_barrier();
	if (o->rank == 0 && (order == NULL || lat == NULL)) {
		bench_fail(o, "random", "out of memory for %ld samples", n);
		bad = 1;
	} else if (o->rank == 0) {
		double end = bench_now() + bench_budget(o);
		dsm_stats_t before, after;
		long i;

		stats_now(&before);
		for (i = 0; i < n && (i < 10 || bench_now() < end); i++) {
			long x = order[i];
			double t0 = bench_now();

			bad += rd(lines[x]) != tag(x);
			lat[i] = (bench_now() - t0) * 1e6;
		}
		stats_now(&after);
		res->samples = i;
		res->d.read_faults = after.read_faults - before.read_faults;
		res->d.prefetched = after.prefetched - before.prefetched;
		res->d.prefetch_used = after.prefetch_used - before.prefetch_used;
		res->d.prefetch_wasted = after.prefetch_wasted - before.prefetch_wasted;
		res->p50 = bench_quantile(lat, (size_t)i, 0.5);
		res->p99 = bench_quantile(lat, (size_t)i, 0.99);
		if (bad)
			bench_fail(o, "random", "%d of %ld lines read back wrong (prefetch %s)",
			           bad, i, mode);
		/* Off means off: a line requested ahead would say the restart was not honoured. */
		if (!bad && strcmp(mode, "off") == 0 && res->d.prefetched != 0) {
			bench_fail(o, "random",
			           "%" PRIu64 " lines prefetched with DSM_PREFETCH=off",
			           res->d.prefetched);
			bad = 1;
		}
		if (!bad)
			rnd_emit(o, c, mode, res);
	}
	dsm_barrier();
	/* Every rank stops when rank 0 failed: the next mode's restart is collective. */
	MPI_Bcast(&bad, 1, MPI_INT, 0, MPI_COMM_WORLD);
	free(lines);
out:
	if (whole)
		dsm_all_free(whole);
	free(lat);
	free(order);
	return bad || lines == NULL ? -1 : 0;
}

int bench_random(const struct bench_opts *o, const struct bench_ctx *c)
{
	static const char *const modes[] = {"auto", "off"};
	struct rnd_result res[2] = {{0}};
	int ret = 0;

	for (int m = 0; m < 2 && ret == 0; m++) {
		/* libdsm reads DSM_PREFETCH at dsm_init: restarted for each mode. */
		ret = bench_restart_prefetch(o, c->heap_size, modes[m]);
		if (ret == 0)
			ret = rnd_run(o, c, modes[m], &res[m]);
	}
	/* Back to the run's own settings for the workloads after this one. */
	if (bench_restart_prefetch(o, c->heap_size, NULL) < 0)
		return -1;
	if (ret == 0 && res[1].p50 > 0) {
		char extra[128];
		struct bench_result r = {.workload = "random",
		                         .metric = "read_random_prefetch_ratio",
		                         .unit = "x",
		                         .value = res[0].p50 / res[1].p50,
		                         .extra = extra};

		snprintf(extra, sizeof(extra),
		         "\"stat\": \"median\", \"auto_us\": %.6g, \"off_us\": %.6g", res[0].p50,
		         res[1].p50);
		bench_emit(o, &r);
	}
	return ret;
}

/* ---- bandwidth ---------------------------------------------------------------------------- */

/* What line @i of the bandwidth array sums to: its words hold i * words + j. */
static uint64_t line_sum(uint64_t i, uint64_t words)
{
	return i * words * words +
	       (words % 2 == 0 ? (words / 2) * (words - 1) : words * ((words - 1) / 2));
}

/* The scans: forward, backward, and every 4th line (read-ahead follows all three). */
static const struct {
	const char *metric;
	int dir, stride;
} scans[] = {{"scan_read", 1, 1}, {"scan_read_backward", -1, 1}, {"scan_read_stride4", 1, 4}};

int bench_bandwidth(const struct bench_opts *o, const struct bench_ctx *c)
{
	size_t L = o->line_size, words = L / sizeof(uint64_t);
	long n = (long)(bench_count(o, 64l << 20, 2l << 20) / (long)L);
	char *whole, **lines;
	int bad = 0;

	if (n < 4)
		n = 4;
	n = cap_lines(o, n);
	lines = homed_lines(o, "bandwidth", n, 1, &whole);
	if (lines == NULL)
		goto out;
	for (size_t k = 0; k < sizeof(scans) / sizeof(scans[0]) && !bad; k++) {
		uint64_t sum = 0, want = 0;
		long done = 0;
		double t = 0;

		/* The home writes the data (again: that takes the lines back from the last scan),
		 * the usual state of remote memory a program reads. */
		if (o->rank == 1)
			for (long i = 0; i < n; i++)
				for (size_t j = 0; j < words; j++)
					((uint64_t *)lines[i])[j] = (uint64_t)i * words + j;
		dsm_barrier();
		if (o->rank == 0) {
			double t0 = bench_now(), end = t0 + bench_budget(o);

			for (long m = 0; m * scans[k].stride < n && (m < 4 || bench_now() < end);
			     m++) {
				long i = scans[k].dir > 0 ? m * scans[k].stride : n - 1 - m;
				const volatile uint64_t *p = (const volatile uint64_t *)lines[i];

				for (size_t j = 0; j < words; j++)
					sum += p[j];
				want += line_sum((uint64_t)i, words);
				done++;
			}
			t = bench_now() - t0;
			bad = sum != want;
		}
		if (bad) {
			bench_fail(o, "bandwidth", "%s summed %llu, expected %llu", scans[k].metric,
			           (unsigned long long)sum, (unsigned long long)want);
		} else if (o->rank == 0) {
			double base = c->floor->have ? bench_floor_bw(c->floor, L) : 0;
			char extra[128];
			struct bench_result r = {.workload = "bandwidth",
			                         .metric = scans[k].metric,
			                         .unit = "MB/s",
			                         .value = (double)done * (double)L / t / 1e6,
			                         .size = (size_t)done * L,
			                         .baseline_name = base > 0 ? "rma_read_bw" : NULL,
			                         .baseline = base,
			                         .extra = extra};
			snprintf(extra, sizeof(extra),
			         "\"lines\": %ld, \"stride\": %d, \"home\": 1, \"seconds\": %.6g",
			         done, scans[k].dir * scans[k].stride, t);
			bench_emit(o, &r);
		}
		/* The others wait asleep in the barrier, not polling in MPI, while rank 0 scans. */
		dsm_barrier();
		MPI_Bcast(&bad, 1, MPI_INT, 0, MPI_COMM_WORLD);
	}
	free(lines);
out:
	if (whole)
		dsm_all_free(whole);
	return bad ? -1 : 0;
}

/* ---- pingpong ----------------------------------------------------------------------------- */

#define PP_STOP (1ull << 63)

/* Waits for *@p == @want, or the stop bit (returns true then), without starving the event
 * loops of the cores. */
static bool spin_until(_Atomic uint64_t *p, uint64_t want)
{
	for (unsigned spins = 0;; spins++) {
		uint64_t v = atomic_load_explicit(p, memory_order_acquire);
		if (v == want)
			return false;
		if (v & PP_STOP)
			return true;
		if (spins < 64)
			__builtin_ia32_pause();
		else
			sched_yield();
	}
}

static double mpi_pingpong(const struct bench_opts *o, long iters)
{
	char *buf = calloc(1, o->line_size);
	double t0 = bench_now();

	for (long i = 0; i < iters; i++) {
		if (o->rank == 0) {
			MPI_Send(buf, (int)o->line_size, MPI_BYTE, 1, 7, MPI_COMM_WORLD);
			MPI_Recv(buf, (int)o->line_size, MPI_BYTE, 1, 7, MPI_COMM_WORLD,
			         MPI_STATUS_IGNORE);
		} else {
			MPI_Recv(buf, (int)o->line_size, MPI_BYTE, 0, 7, MPI_COMM_WORLD,
			         MPI_STATUS_IGNORE);
			MPI_Send(buf, (int)o->line_size, MPI_BYTE, 0, 7, MPI_COMM_WORLD);
		}
	}
	free(buf);
	return (double)iters / (bench_now() - t0);
}

int bench_pingpong(const struct bench_opts *o, const struct bench_ctx *c)
{
	long iters = bench_count(o, 2000, 100);
	_Atomic uint64_t *cnt = dsm_all_alloc(o->line_size, DSM_DIST_LOCAL);
	dsm_stats_t before, after;
	uint64_t mv[5], sum[5]; /* faults, messages, invalidations, migratory, exclusive writes */
	double t = 0, mpi_rate = 0;
	uint64_t last;
	int bad = 0;

	(void)c;
	if (cnt == NULL) {
		bench_fail(o, "pingpong", "dsm_all_alloc: %s", dsm_strerror(-errno));
		return -1;
	}
	dsm_barrier();
	stats_now(&before);
	if (o->rank <= 1) {
		double t0 = bench_now(), end = t0 + bench_budget(o);
		long i;
		for (i = 0; i < iters; i++) {
			uint64_t want = 2 * (uint64_t)i + (uint64_t)o->rank;
			if (spin_until(cnt, want))
				break;
			/* Rank 0 ends the game when its time is up: rank 1 sees the stop bit. */
			if (o->rank == 0 && i >= 10 && bench_now() > end) {
				atomic_store_explicit(cnt, want | PP_STOP, memory_order_release);
				break;
			}
			atomic_store_explicit(cnt, want + 1, memory_order_release);
		}
		t = bench_now() - t0;
		iters = i;
	}
	dsm_barrier();
	stats_now(&after);
	mv[0] = (after.read_faults + after.write_faults + after.upgrades) -
	        (before.read_faults + before.write_faults + before.upgrades);
	mv[1] = after.msgs_sent - before.msgs_sent;
	mv[2] = after.inv_sent - before.inv_sent;
	mv[3] = after.migratory_grants - before.migratory_grants;
	mv[4] = after.exclusive_writes - before.exclusive_writes;
	MPI_Allreduce(mv, sum, 5, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
	MPI_Bcast(&iters, 1, MPI_LONG, 0, MPI_COMM_WORLD);
	last = atomic_load(cnt);
	if ((last & ~PP_STOP) != 2 * (uint64_t)iters) {
		bench_fail(o, "pingpong", "the counter ended at %llu after %ld round trips",
		           (unsigned long long)(last & ~PP_STOP), iters);
		bad = 1;
	}
	dsm_barrier();
	/* The baseline: what a program would do with messages instead. */
	if (o->rank <= 1)
		mpi_rate = mpi_pingpong(o, iters * 4 < 20000 ? iters * 4 : 20000);
	bench_mpi_sleepy_barrier();
	if (!bad) {
		struct bench_result r = {.workload = "pingpong",
		                         .metric = "round_trips_per_s",
		                         .unit = "1/s",
		                         .value = (double)iters / t,
		                         .size = o->line_size,
		                         .baseline_name = "mpi_send_recv",
		                         .baseline = mpi_rate,
		                         .extra = NULL};
		char extra[256];
		double n = iters > 0 ? (double)iters : 1;
		/* Per round trip, over all ranks (the barriers around the game add a few). */
		snprintf(extra, sizeof(extra),
		         "\"iterations\": %ld, \"home\": 0, \"faults_per_rt\": %.2f, "
		         "\"messages_per_rt\": %.2f, \"invalidations_per_rt\": %.2f, "
		         "\"migratory_per_rt\": %.2f, \"exclusive_writes_per_rt\": %.2f",
		         iters, sum[0] / n, sum[1] / n, sum[2] / n, sum[3] / n, sum[4] / n);
		r.extra = extra;
		bench_emit(o, &r);
	}
	dsm_all_free(cnt);
	return bad ? -1 : 0;
}

/* ---- threads ------------------------------------------------------------------------------ */

struct thr_arg {
	char **lines;
	long from, to, step; /* lines from + k * step % (to - from) */
	pthread_barrier_t *start;
	double end; /* no more faults after this time */
	long done;
	int bad;
};

static void *thr_main(void *p)
{
	struct thr_arg *a = p;

	pthread_barrier_wait(a->start);
	/* Scattered: each read a fault of its own, not a stream read ahead. */
	for (long k = 0; k < a->to - a->from && (a->done < 4 || bench_now() < a->end); k++) {
		long i = a->from + k * a->step % (a->to - a->from);

		a->bad += rd(a->lines[i]) != tag(i);
		a->done++;
	}
	return NULL;
}

/* Read faults per second on rank 0 with @nt threads over lines homed at rank 1; -1 on error. */
static double thr_run(const struct bench_opts *o, int nt)
{
	long n = cap_lines(o, bench_count(o, 4096, 256));
	char *whole, **lines = homed_lines(o, "threads", n, 1, &whole);
	double rate = 0;
	int bad = 0;

	if (lines == NULL)
		goto out;
	if (o->rank == 1)
		for (long i = 0; i < n; i++)
			wr(lines[i], tag(i));
	dsm_barrier();
	if (o->rank == 0) {
		pthread_t th[64];
		struct thr_arg a[64];
		pthread_barrier_t start;
		double t0;

		long done = 0;

		pthread_barrier_init(&start, NULL, (unsigned)nt + 1);
		for (int t = 0; t < nt; t++) {
			a[t] = (struct thr_arg){.lines = lines,
			                        .from = n * t / nt,
			                        .to = n * (t + 1) / nt,
			                        .start = &start,
			                        .end = bench_now() + bench_budget(o)};
			a[t].step = scatter_step(a[t].to - a[t].from);
			pthread_create(&th[t], NULL, thr_main, &a[t]);
		}
		pthread_barrier_wait(&start);
		t0 = bench_now();
		for (int t = 0; t < nt; t++) {
			pthread_join(th[t], NULL);
			bad += a[t].bad;
			done += a[t].done;
		}
		rate = (double)done / (bench_now() - t0);
		pthread_barrier_destroy(&start);
		if (bad)
			bench_fail(o, "threads", "%d threads: %d of %ld lines read back wrong", nt,
			           bad, n);
	}
	dsm_barrier();
	free(lines);
out:
	if (whole)
		dsm_all_free(whole);
	return bad ? -1 : rate;
}

int bench_threads(const struct bench_opts *o, const struct bench_ctx *c)
{
	static const int counts[] = {1, 2, 4, 8};
	double one = 0;
	int ret = 0;

	(void)c;
	for (int i = 0; i < 4; i++) {
		int nt = o->threads > 0 ? o->threads : counts[i];
		double rate;
		char extra[64];

		if (nt > 64)
			nt = 64;
		rate = thr_run(o, nt);
		if (rate < 0) {
			ret = -1;
		} else {
			struct bench_result r = {.workload = "threads",
			                         .metric = "faults_per_s",
			                         .unit = "1/s",
			                         .value = rate,
			                         .threads = nt,
			                         .extra = extra};
			if (nt == 1)
				one = rate;
			if (nt > 1 && one > 0) {
				r.baseline_name = "one_thread";
				r.baseline = one;
			}
			snprintf(extra, sizeof(extra), "\"fault\": \"read\", \"home\": 1");
			bench_emit(o, &r);
		}
		if (o->threads > 0)
			break;
	}
	return ret;
}
