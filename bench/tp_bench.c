/* SPDX-License-Identifier: MIT */
/*
 * Transport microbenchmark, the floor the DSM is measured against. Run under
 * `mpiexec -n 2` with DSM_PROVIDER=shm or "tcp;ofi_rxm". Prints one JSON
 * object per line (rank 0):
 *   msg_rtt   4 KiB message round trip, peer polling / peer asleep in the kernel
 *   rma_read  4 KiB RDMA read latency, target polling / target asleep
 *   rma_bw    RDMA write and read bandwidth 4 KiB .. 4 MiB, 16 in flight
 * DSM_BENCH_ITERS scales the iteration counts (default 1.0).
 */
#include <mpi.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/mpiboot.h"
#include "common/error.h"
#include "common/time.h"
#include "transport/transport.h"

enum { T_PING = 1, T_PONG = 2, T_STOP = 3, T_SYNC = 4 };

static dsm_tp_t *tp;
static int me;
static double scale = 1.0;

static double now_us(void)
{
	return (double)dsm_now_ns() * 1e-3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *bench, const char *mode, size_t size, double *lat, int n)
{
	double sum = 0;

	qsort(lat, (size_t)n, sizeof(*lat), cmp);
	for (int i = 0; i < n; i++)
		sum += lat[i];
	printf("{\"bench\":\"%s\",\"provider\":\"%s\",\"mode\":\"%s\",\"size\":%zu,\"iters\":%d,"
	       "\"mean_us\":%.2f,\"p50_us\":%.2f,\"p99_us\":%.2f,\"max_us\":%.0f}\n",
	       bench, tp->prov, mode, size, n, sum / n, lat[n / 2], lat[n * 99 / 100], lat[n - 1]);
	fflush(stdout);
}

static int arrived[8]; /* messages seen per type, not yet waited for */

/* Waits (polling, or asleep in the kernel) for a message of @type. */
static void wait_msg(unsigned type, bool sleep)
{
	struct dsm_tp_event ev[8];

	while (arrived[type] == 0) {
		int n = dsm_tp_poll(tp, ev, 8);
		for (int k = 0; k < n; k++)
			if (ev[k].type == DSM_TP_EV_MSG && ev[k].msg_type < 8)
				arrived[ev[k].msg_type]++;
		if (n == 0 && sleep)
			dsm_tp_sleep(tp, 1000);
	}
	arrived[type]--;
}

static void wait_rma(int want)
{
	struct dsm_tp_event ev[32];

	while (want > 0) {
		int n = dsm_tp_poll(tp, ev, 32);
		for (int k = 0; k < n; k++) {
			if (ev[k].type == DSM_TP_EV_RMA) {
				if (ev[k].status) {
					fprintf(stderr, "RMA failed: %s\n",
					        dsm_err_str(ev[k].status));
					exit(1);
				}
				want--;
			}
		}
	}
}

/* Both ranks: a message barrier over the transport (never MPI while measuring). */
static void sync_peer(void)
{
	dsm_tp_send(tp, 1 - me, T_SYNC, NULL, 0);
	wait_msg(T_SYNC, false);
}

static void msg_rtt(bool peer_sleeps)
{
	static unsigned char buf[4096];
	int iters = (int)(20000 * scale), warm = 500;
	double *lat = malloc(sizeof(double) * (size_t)iters);

	if (peer_sleeps)
		iters /= 4;
	sync_peer();
	if (me == 0) {
		for (int i = -warm; i < iters; i++) {
			double t0 = now_us();
			dsm_tp_send(tp, 1, T_PING, buf, sizeof(buf));
			wait_msg(T_PONG, false);
			if (i >= 0)
				lat[i] = now_us() - t0;
		}
		dsm_tp_send(tp, 1, T_STOP, NULL, 0);
		report("msg_rtt", peer_sleeps ? "peer_asleep" : "polling", sizeof(buf), lat, iters);
	} else {
		/* A ping may have come with the sync message: it is counted in arrived[]. */
		for (;;) {
			struct dsm_tp_event ev[8];
			int n = dsm_tp_poll(tp, ev, 8);
			for (int k = 0; k < n; k++)
				if (ev[k].type == DSM_TP_EV_MSG && ev[k].msg_type < 8)
					arrived[ev[k].msg_type]++;
			for (; arrived[T_PING] > 0; arrived[T_PING]--)
				dsm_tp_send(tp, 0, T_PONG, buf, sizeof(buf));
			if (arrived[T_STOP] > 0) {
				arrived[T_STOP]--;
				break;
			}
			if (n == 0 && peer_sleeps)
				dsm_tp_sleep(tp, 1000);
		}
	}
	free(lat);
}

struct remote {
	uint64_t addr, key;
};

static unsigned char *home, *loc;
static dsm_tp_mr_t *hmr, *lmr;
static struct remote peer_home;

static void rma_lat(bool peer_sleeps)
{
	int iters = (int)(20000 * scale), warm = 500;
	double *lat = malloc(sizeof(double) * (size_t)iters);

	if (peer_sleeps)
		iters /= 4;
	sync_peer();
	if (me == 0) {
		for (int i = -warm; i < iters; i++) {
			double t0 = now_us();
			dsm_tp_read(tp, 1, loc, 4096, lmr, peer_home.addr, peer_home.key, NULL);
			wait_rma(1);
			if (i >= 0)
				lat[i] = now_us() - t0;
		}
		dsm_tp_send(tp, 1, T_STOP, NULL, 0);
		report("rma_read", peer_sleeps ? "target_asleep" : "polling", 4096, lat, iters);
	} else {
		wait_msg(T_STOP, peer_sleeps);
	}
	free(lat);
}

static void rma_bw(bool write)
{
	const int window = 16;

	for (size_t sz = 4096; sz <= (4u << 20); sz *= 4) {
		long total = (long)((double)(256u << 20) * scale / (double)sz);
		if (total < 64)
			total = 64;
		sync_peer();
		if (me == 0) {
			long posted = 0, done = 0;
			double t0 = now_us();
			struct dsm_tp_event ev[32];
			while (done < total) {
				while (posted < total && posted - done < window) {
					int r = write ? dsm_tp_write(tp, 1, loc, sz, lmr,
					                             peer_home.addr, peer_home.key,
					                             NULL)
					              : dsm_tp_read(tp, 1, loc, sz, lmr,
					                            peer_home.addr, peer_home.key,
					                            NULL);
					if (r) {
						fprintf(stderr, "RMA: %s\n", dsm_err_str(r));
						exit(1);
					}
					posted++;
				}
				int n = dsm_tp_poll(tp, ev, 32);
				for (int k = 0; k < n; k++)
					done += ev[k].type == DSM_TP_EV_RMA;
			}
			double us = now_us() - t0;
			dsm_tp_send(tp, 1, T_STOP, NULL, 0);
			printf("{\"bench\":\"rma_bw\",\"provider\":\"%s\",\"op\":\"%s\",\"size\":%"
			       "zu,"
			       "\"ops\":%ld,\"window\":%d,\"MBps\":%.1f}\n",
			       tp->prov, write ? "write" : "read", sz, total, window,
			       (double)sz * (double)total / us);
			fflush(stdout);
		} else {
			wait_msg(T_STOP, false);
		}
	}
}

int main(int argc, char **argv)
{
	struct dsm_tp_attr attr = {.struct_size = sizeof(attr), .max_msg_type = 8};
	struct dsm_tp_boot boot;
	struct remote mine, all[2];
	const size_t hsz = 4u << 20;
	MPI_Comm comm;
	int ret, provided, size;

	if (getenv("DSM_BENCH_ITERS"))
		scale = atof(getenv("DSM_BENCH_ITERS"));
	MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
	MPI_Comm_dup(MPI_COMM_WORLD, &comm);
	MPI_Comm_size(comm, &size);
	if (size != 2) {
		fprintf(stderr, "run with mpiexec -n 2\n");
		MPI_Finalize();
		return 1;
	}
	bench_tp_boot(&comm, &boot);
	me = boot.rank;
	attr.boot = &boot;
	ret = dsm_tp_open(NULL, &attr, &tp);
	if (ret) {
		fprintf(stderr, "dsm_tp_open: %s\n", dsm_err_str(ret));
		MPI_Abort(comm, 1);
	}
	home = aligned_alloc(4096, hsz);
	loc = aligned_alloc(4096, hsz);
	memset(home, me + 1, hsz);
	memset(loc, 0, hsz);
	if (dsm_tp_mr_reg(tp, home, hsz, &hmr) || dsm_tp_mr_reg(tp, loc, hsz, &lmr))
		MPI_Abort(comm, 1);
	mine.addr = dsm_tp_remote_addr(tp, hmr, 0);
	mine.key = hmr->key;
	MPI_Allgather(&mine, sizeof(mine), MPI_BYTE, all, sizeof(mine), MPI_BYTE, comm);
	peer_home = all[1 - me];

	msg_rtt(false);
	msg_rtt(true);
	rma_lat(false);
	rma_lat(true);
	rma_bw(true);
	rma_bw(false);

	if (me == 0) {
		struct dsm_tp_stats s;
		dsm_tp_stats(tp, &s);
		printf("{\"bench\":\"stats\",\"provider\":\"%s\",\"sleeps\":%llu,\"doorbells\":%"
		       "llu,"
		       "\"msgs_queued\":%llu}\n",
		       tp->prov, (unsigned long long)s.sleeps, (unsigned long long)s.doorbells,
		       (unsigned long long)s.msgs_queued);
	}
	sync_peer();
	/* Let the last sends complete before leaving the transport. */
	for (int i = 0; i < 1000; i++) {
		struct dsm_tp_event ev[8];
		struct dsm_tp_stats s;
		dsm_tp_poll(tp, ev, 8);
		dsm_tp_stats(tp, &s);
		if (s.pending == 0)
			break;
	}
	MPI_Barrier(comm);
	dsm_tp_mr_dereg(tp, hmr);
	dsm_tp_mr_dereg(tp, lmr);
	dsm_tp_close(tp);
	MPI_Comm_free(&comm);
	MPI_Finalize();
	return 0;
}
