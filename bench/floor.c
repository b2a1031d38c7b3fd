/* SPDX-License-Identifier: MIT */
/*
 * The floor: what a remote miss costs at least on this machine, measured in
 * the same run as the DSM figures it is compared with. Two parts:
 *  - the raw userfaultfd round trips (MISSING + UFFDIO_COPY, and WP) through a
 *    handler thread, as dsm-info's fault probe does them, on rank 0's node;
 *  - the transport between ranks 0 and 1: message round trips (64 B, 4 KiB,
 *    one line) and the 4 KiB RDMA read, each with the peer polling and with
 *    the peer asleep in the kernel, and the RDMA read bandwidth per size.
 * It runs before dsm_init on a transport instance of its own, opened with the
 * provider libdsm will use, so nothing else competes for the cores.
 */
#include <dsm.h>
#include <errno.h>
#include <mpi.h>
#include <sched.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "bench/driver.h"
#include "bench/mpiboot.h"
#include "common/uffd.h"
#include "transport/transport.h"

enum { T_PING = 1, T_PONG, T_STOP, T_SYNC, T_MAX = 8 };

struct floor_tp {
	dsm_tp_t *tp;
	int me;
	int arrived[T_MAX]; /* messages seen per type and not yet waited for */
};

/* ---- transport helpers -------------------------------------------------------------------- */

static void count_events(struct floor_tp *f, const struct dsm_tp_event *ev, int n, int *rma_done)
{
	for (int k = 0; k < n; k++) {
		if (ev[k].type == DSM_TP_EV_MSG && ev[k].msg_type < T_MAX)
			f->arrived[ev[k].msg_type]++;
		else if (ev[k].type == DSM_TP_EV_RMA && rma_done)
			*rma_done += ev[k].status == 0 ? 1 : -1000000; /* a failure ends the wait */
	}
}

/*
 * Nothing came: sleep in the kernel until the transport has work, or, polling, give the core
 * to whoever else wants it. A poller that never yields measures the scheduler, not the
 * transport, once the node has more runnable threads than cores (other jobs, the peer).
 */
static void idle(struct floor_tp *f, int n, bool sleep)
{
	if (n > 0)
		return;
	if (sleep)
		dsm_tp_sleep(f->tp, 100);
	else
		sched_yield();
}

/* Waits, polling or asleep in the kernel, for a message of @type. */
static void wait_msg(struct floor_tp *f, unsigned type, bool sleep)
{
	struct dsm_tp_event ev[16];

	while (f->arrived[type] == 0) {
		int n = dsm_tp_poll(f->tp, ev, 16);
		count_events(f, ev, n, NULL);
		idle(f, n, sleep);
	}
	f->arrived[type]--;
}

/* Ranks 0 and 1 meet over the transport, never MPI, between measurements. */
static void sync_pair(struct floor_tp *f)
{
	dsm_tp_send(f->tp, 1 - f->me, T_SYNC, NULL, 0);
	wait_msg(f, T_SYNC, false);
}

/* Rank 1 answers pings until told to stop, polling or asleep between them. */
static void serve_pings(struct floor_tp *f, const void *buf, size_t len, bool sleep)
{
	struct dsm_tp_event ev[16];

	for (;;) {
		int n = dsm_tp_poll(f->tp, ev, 16);
		count_events(f, ev, n, NULL);
		for (; f->arrived[T_PING] > 0; f->arrived[T_PING]--)
			dsm_tp_send(f->tp, 0, T_PONG, buf, len);
		if (f->arrived[T_STOP] > 0) {
			f->arrived[T_STOP]--;
			return;
		}
		idle(f, n, sleep);
	}
}

/* Median round trip of a @len-byte message, the peer polling or asleep. */
static double msg_rtt(struct floor_tp *f, const struct bench_opts *o, size_t len, bool sleep)
{
	static unsigned char buf[1 << 20];
	long iters = bench_count(o, sleep ? 1000 : 4000, sleep ? 50 : 200),
	     warm = iters / 10 < 50 ? iters / 10 : 50;
	double *lat = calloc((size_t)iters, sizeof(*lat)), med = 0;
	double end = bench_now() + bench_budget(o);
	long i;

	if (len > sizeof(buf))
		len = sizeof(buf);
	sync_pair(f);
	if (f->me == 0) {
		for (i = -warm; i < iters && (i < 10 || bench_now() < end); i++) {
			double t0 = bench_now();
			dsm_tp_send(f->tp, 1, T_PING, buf, len);
			wait_msg(f, T_PONG, false);
			if (i >= 0)
				lat[i] = (bench_now() - t0) * 1e6;
		}
		dsm_tp_send(f->tp, 1, T_STOP, NULL, 0);
		med = bench_quantile(lat, (size_t)i, 0.5);
	} else {
		serve_pings(f, buf, len, sleep);
	}
	free(lat);
	return med;
}

struct floor_mem {
	unsigned char *home, *loc;
	size_t len;
	dsm_tp_mr_t *hmr, *lmr;
	uint64_t raddr, rkey; /* rank 1's home buffer as rank 0 reaches it */
};

/* Runs @ops reads of @len bytes with up to @window in flight; returns the seconds taken or a
 * negative value when one failed. */
static double rma_reads(struct floor_tp *f, struct floor_mem *m, size_t len, long *ops, int window,
                        double end)
{
	struct dsm_tp_event ev[32];
	long posted = 0;
	int done = 0;
	double t0 = bench_now();

	while (done < *ops) {
		/* Past the deadline no more are posted; those in flight are waited for. */
		if (posted >= 64 && posted < *ops && bench_now() > end)
			*ops = posted;
		while (posted < *ops && posted - done < window) {
			if (dsm_tp_read(f->tp, 1, m->loc, len, m->lmr, m->raddr, m->rkey, NULL))
				return -1;
			posted++;
		}
		int n = dsm_tp_poll(f->tp, ev, 32);
		count_events(f, ev, n, &done);
		if (done < 0)
			return -1;
		idle(f, n, false);
	}
	return bench_now() - t0;
}

/* Median 4 KiB read latency, target polling or asleep. */
static double rma_lat(struct floor_tp *f, const struct bench_opts *o, struct floor_mem *m,
                      bool sleep)
{
	long iters = bench_count(o, sleep ? 1000 : 4000, sleep ? 50 : 200),
	     warm = iters / 10 < 50 ? iters / 10 : 50;
	double *lat = calloc((size_t)iters, sizeof(*lat)), med = -1;
	double end = bench_now() + bench_budget(o);

	sync_pair(f);
	if (f->me == 0) {
		bool failed = false;
		long i;
		for (i = -warm; i < iters && (i < 10 || bench_now() < end); i++) {
			long one = 1;
			double t = rma_reads(f, m, 4096, &one, 1, end);
			if (t < 0) {
				failed = true;
				break;
			}
			if (i >= 0)
				lat[i] = t * 1e6;
		}
		if (!failed && i > 0)
			med = bench_quantile(lat, (size_t)i, 0.5);
		dsm_tp_send(f->tp, 1, T_STOP, NULL, 0);
	} else {
		wait_msg(f, T_STOP, sleep);
	}
	free(lat);
	return med;
}

static double rma_bw(struct floor_tp *f, const struct bench_opts *o, struct floor_mem *m,
                     size_t len)
{
	long ops = bench_count(o, (64l << 20) / (long)len, (4l << 20) / (long)len);
	double s = 0;

	if (ops < 64)
		ops = 64;
	sync_pair(f);
	if (f->me == 0) {
		s = rma_reads(f, m, len, &ops, 16, bench_now() + bench_budget(o));
		dsm_tp_send(f->tp, 1, T_STOP, NULL, 0);
	} else {
		wait_msg(f, T_STOP, false);
	}
	return s > 0 ? (double)len * (double)ops / s / 1e6 : -1;
}

/* ---- the whole measurement ---------------------------------------------------------------- */

/*
 * The raw userfaultfd round trip, in this process (dsm-info's probe forks and reports a mean,
 * which one preemption spoils): a range registered MISSING|WP, a handler thread that resolves
 * each MISSING fault with UFFDIO_COPY(MODE_WP) and each WP fault with UFFDIO_WRITEPROTECT,
 * and the median of the faulting thread's times.
 */
struct uffd_ctx {
	int uffd, stop;
	size_t psz;
	char *src;
	int err;
};

static void *uffd_handler(void *arg)
{
	struct uffd_ctx *c = arg;
	struct pollfd pfd[2] = {{c->uffd, POLLIN, 0}, {c->stop, POLLIN, 0}};
	struct uffd_msg m;

	while (poll(pfd, 2, -1) >= 0 || errno == EINTR) {
		if (pfd[1].revents)
			return NULL;
		if (!(pfd[0].revents & POLLIN) || read(c->uffd, &m, sizeof(m)) != sizeof(m) ||
		    m.event != UFFD_EVENT_PAGEFAULT)
			continue;
		uint64_t page = m.arg.pagefault.address & ~(uint64_t)(c->psz - 1);
		if (m.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) {
			struct uffdio_writeprotect wp = {.range = {page, c->psz}, .mode = 0};
			if (ioctl(c->uffd, UFFDIO_WRITEPROTECT, &wp) < 0)
				c->err = errno;
		} else {
			struct uffdio_copy cp = {.dst = page,
			                         .src = (uint64_t)(uintptr_t)c->src,
			                         .len = c->psz,
			                         .mode = UFFDIO_COPY_MODE_WP};
			if (ioctl(c->uffd, UFFDIO_COPY, &cp) < 0 && errno != EEXIST)
				c->err = errno;
		}
	}
	c->err = errno;
	return NULL;
}

static int uffd_round_trips(const struct bench_opts *o, enum dsm_uffd_mode mode, double *miss_p,
                            double *wp_p)
{
	struct uffd_ctx c = {.uffd = -1, .stop = -1, .psz = (size_t)sysconf(_SC_PAGESIZE)};
	long n = bench_count(o, 2000, 200);
	double *miss = calloc((size_t)n, sizeof(double)), *wp = calloc((size_t)n, sizeof(double));
	double end = bench_now() + bench_budget(o);
	char *area = MAP_FAILED;
	pthread_t th;
	int ret;
	long i;

	ret = dsm_uffd_open(mode, &c.uffd);
	if (ret == 0)
		ret = dsm_uffd_handshake(c.uffd, UFFD_FEATURE_PAGEFAULT_FLAG_WP, NULL, NULL);
	if (ret < 0)
		goto out;
	area = mmap(NULL, (size_t)n * c.psz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	            -1, 0);
	c.src = aligned_alloc(c.psz, c.psz);
	c.stop = eventfd(0, EFD_CLOEXEC);
	struct uffdio_register reg = {.range = {(uint64_t)(uintptr_t)area, (size_t)n * c.psz},
	                              .mode = UFFDIO_REGISTER_MODE_MISSING |
	                                      UFFDIO_REGISTER_MODE_WP};
	if (area == MAP_FAILED || c.src == NULL || c.stop < 0 ||
	    ioctl(c.uffd, UFFDIO_REGISTER, &reg) < 0) {
		ret = -errno;
		goto out;
	}
	memset(c.src, 0x5a, c.psz);
	if (pthread_create(&th, NULL, uffd_handler, &c)) {
		ret = -EAGAIN;
		goto out;
	}
	for (i = 0; i < n && (i < 10 || bench_now() < end) && c.err == 0; i++) {
		volatile char *p = area + (size_t)i * c.psz;
		double t0 = bench_now();
		char v = *p; /* MISSING: installed write-protected */
		double t1 = bench_now();
		*p = (char)(v + 1); /* WP */
		miss[i] = (t1 - t0) * 1e6;
		wp[i] = (bench_now() - t1) * 1e6;
		if (v != 0x5a)
			c.err = EIO;
	}
	eventfd_write(c.stop, 1);
	pthread_join(th, NULL);
	ret = -c.err;
	*miss_p = bench_quantile(miss, (size_t)i, 0.5);
	*wp_p = bench_quantile(wp, (size_t)i, 0.5);
out:
	if (area != MAP_FAILED)
		munmap(area, (size_t)n * c.psz);
	if (c.stop >= 0)
		close(c.stop);
	if (c.uffd >= 0)
		close(c.uffd);
	free(c.src);
	free(miss);
	free(wp);
	return ret;
}

static void uffd_floor(const struct bench_opts *o, struct bench_floor *out)
{
	struct dsm_uffd_access acc;

	if (o->rank == 0) {
		dsm_uffd_access_probe(&acc);
		snprintf(out->uffd_mode, sizeof(out->uffd_mode), "%s",
		         dsm_uffd_mode_name(acc.mode));
		int ret = uffd_round_trips(o, acc.mode, &out->uffd_missing_us, &out->uffd_wp_us);
		if (ret < 0)
			bench_fail(o, "floor", "userfaultfd round trips (%s mode): %s",
			           dsm_uffd_mode_name(acc.mode), strerror(-ret));
	}
	/* The other ranks sleep meanwhile: the faulting and the handler thread want the cores. */
	bench_mpi_sleepy_barrier();
}

static int tp_floor(const struct bench_opts *o, size_t line_size, const char *provider,
                    struct bench_floor *out)
{
	MPI_Comm comm;
	struct dsm_tp_boot boot;
	struct dsm_tp_attr attr = {.struct_size = sizeof(attr), .max_msg_type = T_MAX};
	struct floor_tp f = {.me = o->rank};
	struct floor_mem m = {0};
	struct {
		uint64_t addr, key;
	} mine, *all;
	int ret;

	MPI_Comm_dup(MPI_COMM_WORLD, &comm);
	bench_tp_boot(&comm, &boot);
	attr.boot = &boot;
	attr.provider = provider && provider[0] ? provider : NULL;
	attr.msg_max =
	        line_size + 256 > DSM_TP_MSG_MAX_DEFAULT ? line_size + 256 : DSM_TP_MSG_MAX_DEFAULT;
	ret = dsm_tp_open(NULL, &attr, &f.tp);
	/* Every rank learns whether every rank opened it. */
	MPI_Allreduce(MPI_IN_PLACE, &ret, 1, MPI_INT, MPI_MIN, comm);
	if (ret < 0) {
		bench_fail(o, "floor", "opening the transport (provider %s): %s",
		           provider && provider[0] ? provider : "default", dsm_strerror(ret));
		if (f.tp)
			dsm_tp_close(f.tp);
		MPI_Comm_free(&comm);
		return ret;
	}
	snprintf(out->provider, sizeof(out->provider), "%s", f.tp->prov);

	m.len = line_size > (1u << 20) ? line_size : (1u << 20);
	m.home = aligned_alloc(4096, m.len);
	m.loc = aligned_alloc(4096, m.len);
	memset(m.home, 0x5a, m.len);
	memset(m.loc, 0, m.len);
	ret = dsm_tp_mr_reg(f.tp, m.home, m.len, &m.hmr);
	if (ret == 0)
		ret = dsm_tp_mr_reg(f.tp, m.loc, m.len, &m.lmr);
	MPI_Allreduce(MPI_IN_PLACE, &ret, 1, MPI_INT, MPI_MIN, comm);
	if (ret < 0) {
		bench_fail(o, "floor", "registering memory: %s", dsm_strerror(ret));
		goto out;
	}
	mine.addr = dsm_tp_remote_addr(f.tp, m.hmr, 0);
	mine.key = m.hmr->key;
	all = calloc((size_t)o->nranks, sizeof(*all));
	MPI_Allgather(&mine, sizeof(mine), MPI_BYTE, all, sizeof(mine), MPI_BYTE, comm);
	m.raddr = all[1].addr;
	m.rkey = all[1].key;
	free(all);

	out->rtt_size[0] = 64;
	out->rtt_size[1] = 4096;
	out->rtt_size[2] = line_size;
	if (o->rank <= 1) {
		for (int i = 0; i < 3; i++) {
			if (i == 2 && out->rtt_size[2] == out->rtt_size[1]) {
				/* 4 KiB lines: the line round trip is the 4 KiB one */
				out->rtt_poll_us[2] = out->rtt_poll_us[1];
				out->rtt_asleep_us[2] = out->rtt_asleep_us[1];
				break;
			}
			out->rtt_poll_us[i] = msg_rtt(&f, o, out->rtt_size[i], false);
			out->rtt_asleep_us[i] = msg_rtt(&f, o, out->rtt_size[i], true);
		}
		out->rma_poll_us = rma_lat(&f, o, &m, false);
		out->rma_asleep_us = rma_lat(&f, o, &m, true);
		for (size_t sz = 4096; sz <= m.len && out->nbw < 8; sz *= 4) {
			if (o->smoke && sz != 4096 && sz != line_size)
				continue;
			out->bw_size[out->nbw] = sz;
			out->bw_MBps[out->nbw++] = rma_bw(&f, o, &m, sz);
		}
		if (bench_floor_bw(out, line_size) == 0 && out->nbw < 8) {
			out->bw_size[out->nbw] = line_size;
			out->bw_MBps[out->nbw++] = rma_bw(&f, o, &m, line_size);
		}
		if (o->rank == 0 && (out->rma_poll_us < 0 || out->rma_asleep_us < 0))
			bench_fail(o, "floor", "an RDMA read failed");
		sync_pair(&f);
	}
	/* Let the last sends complete before the transport goes. */
	for (int i = 0; i < 100000; i++) {
		struct dsm_tp_event ev[16];
		struct dsm_tp_stats s;
		count_events(&f, ev, dsm_tp_poll(f.tp, ev, 16), NULL);
		if (dsm_tp_stats(f.tp, &s) == 0 && s.pending == 0)
			break;
	}
	out->have = o->rank == 0;
out:
	bench_mpi_sleepy_barrier();
	if (m.hmr)
		dsm_tp_mr_dereg(f.tp, m.hmr);
	if (m.lmr)
		dsm_tp_mr_dereg(f.tp, m.lmr);
	dsm_tp_close(f.tp);
	free(m.home);
	free(m.loc);
	MPI_Comm_free(&comm);
	return ret;
}

int bench_floor_measure(const struct bench_opts *o, size_t line_size, const char *provider,
                        struct bench_floor *out)
{
	memset(out, 0, sizeof(*out));
	uffd_floor(o, out);
	return tp_floor(o, line_size, provider, out);
}

double bench_floor_bw(const struct bench_floor *f, size_t size)
{
	for (int i = 0; i < f->nbw; i++)
		if (f->bw_size[i] == size)
			return f->bw_MBps[i];
	return 0;
}

static void emit_us(const struct bench_opts *o, const char *metric, double v, size_t size,
                    const char *extra)
{
	struct bench_result r = {.workload = "floor",
	                         .metric = metric,
	                         .unit = "us",
	                         .value = v,
	                         .size = size,
	                         .extra = extra};
	bench_emit(o, &r);
}

void bench_floor_emit(const struct bench_opts *o, const struct bench_floor *f)
{
	char extra[256];
	static const char *const rtt_poll[] = {"msg_rtt_64_polling", "msg_rtt_4k_polling",
	                                       "msg_rtt_line_polling"};
	static const char *const rtt_sleep[] = {"msg_rtt_64_asleep", "msg_rtt_4k_asleep",
	                                        "msg_rtt_line_asleep"};

	if (!f->have)
		return;
	snprintf(extra, sizeof(extra), "\"uffd_mode\": \"%s\", \"stat\": \"median\"", f->uffd_mode);
	emit_us(o, "uffd_missing", f->uffd_missing_us, 4096, extra);
	emit_us(o, "uffd_wp", f->uffd_wp_us, 4096, extra);
	for (int i = 0; i < 3; i++) {
		if (i == 2 && f->rtt_size[2] == 4096)
			break;
		emit_us(o, rtt_poll[i], f->rtt_poll_us[i], f->rtt_size[i], "\"stat\": \"median\"");
		emit_us(o, rtt_sleep[i], f->rtt_asleep_us[i], f->rtt_size[i],
		        "\"stat\": \"median\"");
	}
	emit_us(o, "rma_read_4k_polling", f->rma_poll_us, 4096, "\"stat\": \"median\"");
	emit_us(o, "rma_read_4k_asleep", f->rma_asleep_us, 4096, "\"stat\": \"median\"");
	for (int i = 0; i < f->nbw; i++) {
		struct bench_result r = {.workload = "floor",
		                         .metric = "rma_read_bw",
		                         .unit = "MB/s",
		                         .value = f->bw_MBps[i],
		                         .size = f->bw_size[i],
		                         .extra = "\"window\": 16"};
		bench_emit(o, &r);
	}
	/* The sums: a miss needs a fault and a round trip carrying the line. */
	snprintf(extra, sizeof(extra),
	         "\"parts\": [\"uffd_missing\", \"msg_rtt_%s_polling\"], \"rma_path_us\": %.6g",
	         f->rtt_size[2] == 4096 ? "4k" : "line",
	         f->uffd_missing_us + f->rtt_poll_us[0] + f->rma_poll_us);
	emit_us(o, "miss_floor_polling", bench_floor_miss(f, false), 0, extra);
	snprintf(extra, sizeof(extra),
	         "\"parts\": [\"uffd_missing\", \"msg_rtt_%s_asleep\"], \"rma_path_us\": %.6g",
	         f->rtt_size[2] == 4096 ? "4k" : "line",
	         f->uffd_missing_us + f->rtt_asleep_us[0] + f->rma_asleep_us);
	emit_us(o, "miss_floor_asleep", bench_floor_miss(f, true), 0, extra);
	emit_us(o, "upgrade_floor_polling", bench_floor_upgrade(f, false), 0,
	        "\"parts\": [\"uffd_wp\", \"msg_rtt_64_polling\"]");
	emit_us(o, "upgrade_floor_asleep", bench_floor_upgrade(f, true), 0,
	        "\"parts\": [\"uffd_wp\", \"msg_rtt_64_asleep\"]");
}
