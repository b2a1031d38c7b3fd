/* SPDX-License-Identifier: MIT */
/*
 * Live checkpoints (dsm_checkpoint), against baselines from the same job:
 *
 *   checkpoint  every rank writes H = 1 GiB x --size (16 MiB under --smoke) of heap homed at
 *               itself (plus a line per MiB of its neighbour's: copies held modified away
 *               from their home), then takes REPS snapshots into DSM_BENCH_CKPT_DIR
 *               (default /var/tmp/dsm-bench-ckpt.UID, "%r" allowed), each after the whole
 *               block was rewritten, then REPS more after one line in SPARSE was, and REPS
 *               after a contiguous 1/SPARSE_RUN of it was.
 *               Reported:
 *                 pause   the slowest rank's time in dsm_checkpoint (median of REPS, with the
 *                         10th and 90th percentiles), against one UFFDIO_WRITEPROTECT of H of
 *                         present pages in a region of the bench's own (the kernel's part of
 *                         it), with an empty dsm_barrier beside;
 *                 pause_sparse, pause_run  the same, after one line in SPARSE, or a
 *                         contiguous 1/SPARSE_RUN of the block, was written (TAKE protects
 *                         only the pages writable then: ckpt.c, protect_scan);
 *                 write   each rank's snapshot bytes over the time from the call's return
 *                         to durable (dsm_checkpoint_wait), against dd's rate to the same
 *                         directory in the same run (1 MiB writes, then fsync: dd bs=1M
 *                         conv=fsync, done in-process: a fork of an MPI rank helps nobody);
 *                 stencil a 3-point stencil sweeping each rank's block (reading its
 *                         neighbours' edge lines), its time while a snapshot streams against
 *                         the same sweeps without one.
 *               Checked: dsm-info's format holds (the manifest is there after each wait).
 */
#include <dsm.h>
#include <errno.h>
#include <fcntl.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/driver.h"
#include "common/uffd.h"

#define REPS       5
#define SPARSE     64 /* pause_sparse: one line in SPARSE written since the last snapshot */
#define SPARSE_RUN 16 /* pause_run: a contiguous 1/SPARSE_RUN of the block written */

/* dd bs=1M conv=fsync of @bytes into @dir: MB/s. */
static double dd_rate(const char *dir, size_t bytes)
{
	char path[4400];
	size_t chunk = 1 << 20;
	char *buf = malloc(chunk);
	double t0, t;
	int fd;

	snprintf(path, sizeof(path), "%s/dd.%d", dir, (int)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || buf == NULL) {
		free(buf);
		if (fd >= 0)
			close(fd);
		return 0;
	}
	memset(buf, 0x5a, chunk);
	t0 = bench_now();
	for (size_t done = 0; done < bytes; done += chunk)
		if (write(fd, buf, chunk) != (ssize_t)chunk)
			break;
	fsync(fd);
	t = bench_now() - t0;
	close(fd);
	unlink(path);
	free(buf);
	return (double)bytes / 1e6 / t;
}

/* The kernel's part of the pause: one UFFDIO_WRITEPROTECT over @bytes of present pages in
 * a region of our own (what TAKE does to the lines held modified). Seconds, or 0. */
static double wp_floor(size_t bytes)
{
	struct uffdio_writeprotect wp = {.mode = UFFDIO_WRITEPROTECT_MODE_WP};
	struct uffdio_register reg = {.mode = UFFDIO_REGISTER_MODE_MISSING |
	                                      UFFDIO_REGISTER_MODE_WP};
	char *area;
	double t = 0;
	int fd = -1;

	if (dsm_uffd_open(DSM_UFFD_FULL, &fd) < 0 && dsm_uffd_open(DSM_UFFD_USER_ONLY, &fd) < 0)
		return 0;
	area = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area != MAP_FAILED)
		memset(area, 1, bytes); /* present before the registration: no fault to serve */
	reg.range = (struct uffdio_range){(uint64_t)(uintptr_t)area, bytes};
	if (area != MAP_FAILED &&
	    dsm_uffd_handshake(fd, UFFD_FEATURE_PAGEFAULT_FLAG_WP, NULL, NULL) == 0 &&
	    ioctl(fd, UFFDIO_REGISTER, &reg) == 0) {
		wp.range = reg.range;
		double t0 = bench_now();

		if (ioctl(fd, UFFDIO_WRITEPROTECT, &wp) == 0)
			t = bench_now() - t0;
	}
	if (area != MAP_FAILED)
		munmap(area, bytes);
	close(fd);
	return t;
}

/* One sweep of a 3-point stencil over this rank's block: b[i] = (a[i-1] + a[i] + a[i+1]) / 3
 * on every word, reading the neighbours' edge words. */
static void sweep(double *a, double *b, size_t n, size_t lo, size_t hi)
{
	for (size_t i = lo; i < hi; i++) {
		double l = i ? a[i - 1] : 0, r = i + 1 < n ? a[i + 1] : 0;

		b[i] = (l + a[i] + r) / 3;
	}
}

static double stencil(double *a, double *b, size_t n, size_t lo, size_t hi, int iters)
{
	double t0 = bench_now();

	for (int k = 0; k < iters; k++) {
		sweep(a, b, n, lo, hi);
		dsm_barrier();
		sweep(b, a, n, lo, hi);
		dsm_barrier();
	}
	return bench_now() - t0;
}

static double max_all(double v)
{
	double m;

	MPI_Allreduce(&v, &m, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
	return m;
}

int bench_ckpt(const struct bench_opts *o, const struct bench_ctx *c)
{
	const char *env = getenv("DSM_BENCH_CKPT_DIR");
	char dir[1024], mine[1100], extra[1400];
	size_t per = (size_t)bench_count(o, 1024, 16) << 20, n, words, lo, hi, wpl;
	double pauses[3][REPS], rate[REPS], barrier[REPS], t_plain, t_live, dd;
	double *pause = pauses[0];
	uint64_t lines = 0;
	dsm_stats_t st = {.struct_size = sizeof(st)};
	uint64_t *heap;
	int ret = 0;

	(void)c;
	if (env)
		snprintf(dir, sizeof(dir), "%s", env);
	else
		snprintf(dir, sizeof(dir), "/var/tmp/dsm-bench-ckpt.%u", (unsigned)getuid());
	snprintf(mine, sizeof(mine), "%s", dir);
	for (char *p = strstr(mine, "%r"); p; p = strstr(mine, "%r")) {
		char rest[1100];

		snprintf(rest, sizeof(rest), "%s", p + 2);
		snprintf(p, sizeof(mine) - (size_t)(p - mine), "%d%s", o->rank, rest);
	}
	heap = dsm_all_alloc(per * (size_t)o->nranks, DSM_DIST_BLOCK);
	if (heap == NULL) {
		bench_fail(o, "checkpoint", "dsm_all_alloc of %zu MiB per rank failed", per >> 20);
		return -1;
	}
	n = per * (size_t)o->nranks / 8;
	words = per / 8;
	wpl = o->line_size / 8;
	lo = (size_t)o->rank * words;
	hi = lo + words;
	for (size_t i = lo; i < hi; i++)
		heap[i] = i;
	/* A line per MiB of the next rank's block, held modified here. */
	for (size_t i = hi % n; i < hi % n + words; i += (1 << 20) / 8)
		heap[i] = i;
	dsm_barrier();
	/* REPS snapshots after each way of writing since the last one (the first: after the
	 * block was written): the whole block, one line in SPARSE, a contiguous 1/SPARSE_RUN
	 * of it (its first part). */
	for (int r = 0; r < 3 * REPS; r++) {
		int phase = r / REPS;
		size_t stride = (phase == 1 ? SPARSE : 1) * wpl;
		size_t end = phase == 2 ? lo + words / SPARSE_RUN : hi;
		double t0, t1, t2;

		for (size_t i = lo; r > 0 && i < end; i += stride)
			for (size_t w = 0; w < wpl; w++)
				heap[i + w] = i + w + (size_t)r;
		dsm_barrier();
		t0 = bench_now();
		dsm_barrier();
		barrier[r % REPS] = max_all(bench_now() - t0);
		t0 = bench_now();
		ret = dsm_checkpoint(dir);
		t1 = bench_now();
		if (ret == 0)
			ret = dsm_checkpoint_wait();
		t2 = bench_now();
		if (ret < 0) {
			bench_fail(o, "checkpoint", "dsm_checkpoint(%s): %s", dir,
			           dsm_strerror(ret));
			return -1;
		}
		pauses[phase][r % REPS] = max_all(t1 - t0);
		dsm_stats(&st);
		if (r < REPS)
			rate[r] = (double)(st.ckpt_lines - lines) * (double)o->line_size / 1e6 /
			          (t2 - t1);
		lines = st.ckpt_lines;
		snprintf(extra, sizeof(extra), "%s/MANIFEST", mine);
		if (access(extra, R_OK) != 0) {
			bench_fail(o, "checkpoint", "no %s after dsm_checkpoint_wait", extra);
			return -1;
		}
	}
	dd = dd_rate(mine, per);
	double wpf = max_all(wp_floor(per));
	double p50 = bench_quantile(pause, REPS, 0.5), p10 = bench_quantile(pause, REPS, 0.1),
	       p90 = bench_quantile(pause, REPS, 0.9), b50 = bench_quantile(barrier, REPS, 0.5);
	double w50 = bench_quantile(rate, REPS, 0.5), w10 = bench_quantile(rate, REPS, 0.1),
	       w90 = bench_quantile(rate, REPS, 0.9);

	snprintf(extra, sizeof(extra),
	         "\"heap_per_rank_MiB\": %zu, \"written_since_last\": \"the whole block\", "
	         "\"reps\": %d, \"p10\": %.3f, \"p90\": %.3f, \"dsm_barrier_ms\": %.3f, "
	         "\"dir\": \"%s\"",
	         per >> 20, REPS, p10 * 1e3, p90 * 1e3, b50 * 1e3, dir);
	/* The floor: write-protecting a rank's share of present pages, one ioctl. */
	bench_emit(o, &(struct bench_result){.workload = "checkpoint",
	                                     .metric = "pause",
	                                     .unit = "ms",
	                                     .value = p50 * 1e3,
	                                     .size = per,
	                                     .baseline_name = "uffd_writeprotect_of_it",
	                                     .baseline = wpf * 1e3,
	                                     .extra = extra});
	for (int ph = 1; ph < 3; ph++) {
		double *v = pauses[ph];

		snprintf(extra, sizeof(extra),
		         "\"heap_per_rank_MiB\": %zu, \"written_since_last\": \"%s 1/%d of the "
		         "block\", \"reps\": %d, \"p10\": %.3f, \"p90\": %.3f",
		         per >> 20, ph == 1 ? "a line in" : "a contiguous",
		         ph == 1 ? SPARSE : SPARSE_RUN, REPS, bench_quantile(v, REPS, 0.1) * 1e3,
		         bench_quantile(v, REPS, 0.9) * 1e3);
		bench_emit(o,
		           &(struct bench_result){.workload = "checkpoint",
		                                  .metric = ph == 1 ? "pause_sparse" : "pause_run",
		                                  .unit = "ms",
		                                  .value = bench_quantile(v, REPS, 0.5) * 1e3,
		                                  .size = per,
		                                  .baseline_name = "uffd_writeprotect_of_it",
		                                  .baseline = wpf * 1e3,
		                                  .extra = extra});
	}
	snprintf(extra, sizeof(extra), "\"p10\": %.1f, \"p90\": %.1f, \"rank\": 0", w10, w90);
	bench_emit(o, &(struct bench_result){.workload = "checkpoint",
	                                     .metric = "write",
	                                     .unit = "MB/s",
	                                     .value = w50,
	                                     .size = per,
	                                     .baseline_name = "dd_bs1M_fsync",
	                                     .baseline = dd,
	                                     .extra = extra});
	/* The stencil, without and while a snapshot streams. */
	double *a = (double *)heap, *b = dsm_all_alloc(per * (size_t)o->nranks, DSM_DIST_BLOCK);
	int iters = (int)bench_count(o, 4, 1);

	if (b == NULL) {
		bench_fail(o, "checkpoint", "dsm_all_alloc for the stencil failed");
		return -1;
	}
	stencil(a, b, n, lo, hi, 1); /* b's lines in place */
	t_plain = max_all(stencil(a, b, n, lo, hi, iters));
	ret = dsm_checkpoint(dir);
	t_live = max_all(stencil(a, b, n, lo, hi, iters));
	if (ret == 0)
		ret = dsm_checkpoint_wait();
	if (ret < 0) {
		bench_fail(o, "checkpoint", "dsm_checkpoint during the stencil: %s",
		           dsm_strerror(ret));
		return -1;
	}
	snprintf(extra, sizeof(extra), "\"iterations\": %d", 2 * iters);
	bench_emit(o, &(struct bench_result){.workload = "checkpoint",
	                                     .metric = "stencil_while_streaming",
	                                     .unit = "s",
	                                     .value = t_live,
	                                     .size = per,
	                                     .baseline_name = "stencil_alone",
	                                     .baseline = t_plain,
	                                     .extra = extra});
	dsm_all_free(b);
	dsm_all_free(heap);
	return 0;
}
