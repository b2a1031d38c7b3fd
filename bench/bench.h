/* SPDX-License-Identifier: MIT */
/*
 * dsm-bench: the interface between the driver (bench/dsm-bench.c) and its
 * workloads. Every workload is a collective call made by every rank between
 * dsm_init() and dsm_finalize(); it prints its results through bench_emit(),
 * one JSON line per result, from rank 0 only. Workloads never assert a time:
 * they check that their results are correct and report through bench_fail()
 * when they are not.
 */
#ifndef DSM_BENCH_H
#define DSM_BENCH_H

#include <stddef.h>
#include <stdio.h>

struct bench_opts {
	int rank, nranks;
	const char *provider; /* the libfabric provider in use, as the transport names it */
	size_t line_size;     /* bytes per coherence line */
	int threads;          /* -t N: application threads, 0 for the workload's default */
	int smoke;            /* --smoke or DSM_BENCH_SMOKE=1: the smallest sizes, seconds in all */
	double size_factor;   /* --size F: multiplies the problem sizes, default 1 */
};

/* One result. ratio = value / baseline whenever a baseline is given (the unit says which
 * way is better). Strings must stay valid for the call only. */
struct bench_result {
	const char *workload; /* "latency", "jacobi", ... */
	const char *metric;   /* "read_miss", "time", "faults_per_s", ... */
	const char *unit;     /* "us", "s", "MB/s", "1/s", "B" */
	double value;
	int threads;               /* application threads per rank; 0 means 1 */
	size_t line_size;          /* 0: the run's line size */
	size_t size;               /* problem or message size where it applies, else 0 */
	const char *baseline_name; /* NULL when there is no baseline */
	double baseline;
	const char *extra; /* a JSON fragment of more members ("\"k\": 1, ..."), or NULL */
};

/* Rank 0 prints the result as one JSON line on stdout; the other ranks do nothing. */
void bench_emit(const struct bench_opts *o, const struct bench_result *r);

/* A correctness check failed: rank 0 prints {"workload": ..., "error": "..."} and dsm-bench
 * will exit non-zero. Any rank may call it; it is not collective. */
void bench_fail(const struct bench_opts *o, const char *workload, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Seconds on CLOCK_MONOTONIC. */
double bench_now(void);

/* Checks failed on this rank so far (bench_fail counts them). */
int bench_failures(void);

/* JSON pieces for lines that are not results. */
void bench_json_str(FILE *f, const char *s);
void bench_json_num(FILE *f, double v);

/* Sorts @v and returns its @q quantile (0..1). */
double bench_quantile(double *v, size_t n, double q);

/* Seconds a measurement may take before it stops with the samples it has: a loaded machine
 * makes runs slower, not longer than planned. */
double bench_budget(const struct bench_opts *o);

/* Samples and sizes: @normal scaled by --size, @smoke under --smoke; at least 1. */
long bench_count(const struct bench_opts *o, long normal, long smoke);

/* The application workloads (bench/apps/), each beside a plain MPI version of the same
 * algorithm run in the same job on MPI_COMM_WORLD and a pthreads version of the DSM kernel
 * run in rank 0's process alone, with the results checked equal.
 * Return 0, or -1 when a check failed (after bench_fail()). */
int bench_app_jacobi(const struct bench_opts *o);
int bench_app_matmul(const struct bench_opts *o);
int bench_app_histogram(const struct bench_opts *o);
int bench_app_mutex_sum(const struct bench_opts *o);
int bench_app_radix(const struct bench_opts *o);
int bench_app_fft(const struct bench_opts *o);

/*
 * The driver's (dsm-bench.c), for workloads that compare libdsm's settings: restarts libdsm
 * (collective: dsm_finalize, then dsm_init with a heap of @heap_size, as for the scale
 * workload) with DSM_PREFETCH=@prefetch, or as the run's environment had it for NULL; nothing
 * when libdsm already runs so (it reads its settings at dsm_init). 0, or a negative code after
 * bench_fail(): libdsm is down then, and the driver stops after the workload.
 */
int bench_restart_prefetch(const struct bench_opts *o, size_t heap_size, const char *prefetch);

/* The same, with dsm_config_t.cache_size = @bytes (0: DSM_CACHE_SIZE decides;
 * DSM_CACHE_UNLIMITED), for the cache workload (bench/cache.c). */
int bench_restart_cache(const struct bench_opts *o, size_t heap_size, size_t bytes);

/* random (bench/micro.c): remote reads in a random order, read-ahead on and off. A driver
 * workload like those of bench/driver.h; declared here beside the restart it needs. */
struct bench_ctx;
int bench_random(const struct bench_opts *o, const struct bench_ctx *c);

#endif /* DSM_BENCH_H */
