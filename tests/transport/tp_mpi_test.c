/* SPDX-License-Identifier: MIT */
/*
 * The libfabric transport under mpiexec (-n 2 or -n 4), on the provider that
 * DSM_PROVIDER names. Every test is collective; waits have deadlines so a
 * failing rank makes the others fail, never hang.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <dsm.h>

#include "runtime/bootstrap.h"
#include "transport/internal.h"
#include "transport/testing.h"
#include "transport/transport.h"

#define BARRIER_TYPE (MAX_TYPE + 1)
#define MSG_MAX      (64 * 1024) /* above rxm's eager limit: rendezvous sends get reordered */
#define MAX_TYPE     16

static dsm_tp_t *tp;
static int me, np;
static bool long_tier;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int barrier_early; /* barrier messages from peers that finished a test before us */

/* dsm_tp_poll without the transport barrier's messages. */
static int tpoll(struct dsm_tp_event *ev, int max)
{
	int n = dsm_tp_poll(tp, ev, max), k = 0;

	for (int i = 0; i < n; i++) {
		if (ev[i].type == DSM_TP_EV_MSG && ev[i].msg_type == BARRIER_TYPE)
			barrier_early++;
		else
			ev[k++] = ev[i];
	}
	return n < 0 ? n : k;
}

static struct dsm_tp_stats stats(void)
{
	struct dsm_tp_stats s;

	assert_int_equal(dsm_tp_stats(tp, &s), 0);
	return s;
}

/* Deterministic message i from @src to @dst: size and content. */
static size_t msg_size(uint64_t i)
{
	uint64_t h = (i * 0x9e3779b97f4a7c15ull) >> 40;

	if (h % 10 == 0)
		return (size_t)(h % (MSG_MAX + 1));
	return (size_t)(h % 257);
}

static void fill(unsigned char *p, size_t n, uint64_t i, int src)
{
	for (size_t k = 0; k < n; k++)
		p[k] = (unsigned char)(i * 7 + (uint64_t)src + k);
	if (n >= 8)
		memcpy(p, &i, 8);
}

static bool check(const unsigned char *p, size_t n, uint64_t i, int src)
{
	uint64_t got;

	if (n >= 8) {
		memcpy(&got, p, 8);
		if (got != i)
			return false;
	}
	for (size_t k = n >= 8 ? 8 : 0; k < n; k++)
		if (p[k] != (unsigned char)(i * 7 + (uint64_t)src + k))
			return false;
	return true;
}

/* Per-source receive state of the stream tests. */
struct stream {
	uint64_t *next; /* [np]: next index expected from each rank */
	uint64_t want;  /* messages per pair */
	bool bad;
};

static void on_msg(struct stream *s, const struct dsm_tp_event *e)
{
	uint64_t i = s->next[e->peer];

	if (e->type != DSM_TP_EV_MSG)
		return;
	if (e->msg_type != 1 + i % MAX_TYPE || e->len != msg_size(i) ||
	    !check(e->data, e->len, i, e->peer)) {
		if (!s->bad)
			print_error("rank %d: message %llu from %d out of order or corrupt "
			            "(type %u len %zu)\n",
			            me, (unsigned long long)i, e->peer, e->msg_type, e->len);
		s->bad = true;
	}
	s->next[e->peer]++;
}

static bool stream_done(const struct stream *s)
{
	for (int r = 0; r < np; r++)
		if (r != me && s->next[r] < s->want)
			return false;
	return true;
}

static void poll_into(struct stream *s)
{
	struct dsm_tp_event ev[32];
	int n = tpoll(ev, 32);

	assert_true(n >= 0);
	for (int k = 0; k < n; k++)
		on_msg(s, &ev[k]);
}

/* All-to-all streams of @per_pair messages; @burst: send everything before polling. */
static void run_stream(uint64_t per_pair, bool burst)
{
	struct stream s = {.want = per_pair};
	unsigned char *buf = malloc(MSG_MAX);
	double t0 = now_s(), deadline = t0 + (long_tier               ? 600
	                                      : getenv("TP_DEADLINE") ? atof(getenv("TP_DEADLINE"))
	                                                              : 120);
	struct dsm_tp_stats before = stats(), after;

	s.next = calloc((size_t)np, sizeof(*s.next));
	assert_non_null(buf);
	assert_non_null(s.next);
	for (uint64_t i = 0; i < per_pair; i++) {
		for (int d = 0; d < np; d++) {
			if (d == me)
				continue;
			size_t n = msg_size(i);
			fill(buf, n, i, me);
			assert_int_equal(dsm_tp_send(tp, d, 1 + i % MAX_TYPE, buf, n), 0);
		}
		if (!burst && i % 16 == 15)
			poll_into(&s);
	}
	while (!stream_done(&s) && now_s() < deadline && !s.bad)
		poll_into(&s);
	after = stats();
	if (!stream_done(&s))
		dsm_tp_describe(tp, -1, stderr);
	if (!stream_done(&s))
		for (int r = 0; r < np; r++)
			print_error(
			        "rank %d: got %llu of %llu from rank %d (queued %llu, held %llu, "
			        "dropped %llu)\n",
			        me, (unsigned long long)s.next[r], (unsigned long long)per_pair, r,
			        (unsigned long long)(after.msgs_queued - before.msgs_queued),
			        (unsigned long long)(after.msgs_reordered - before.msgs_reordered),
			        (unsigned long long)(after.msgs_dropped - before.msgs_dropped));
	assert_false(s.bad);
	assert_true(stream_done(&s));
	assert_int_equal(after.msgs_dropped, before.msgs_dropped);
	if (me == 0)
		print_message("rank 0: %llu messages per pair, %d ranks, %.2f s, queued %llu, "
		              "reordered %llu (%s)\n",
		              (unsigned long long)per_pair, np, now_s() - t0,
		              (unsigned long long)(after.msgs_queued - before.msgs_queued),
		              (unsigned long long)(after.msgs_reordered - before.msgs_reordered),
		              tp->prov);
	free(s.next);
	free(buf);
}

/*
 * After every test, pass or fail, so that a failing rank never leaves the
 * others waiting. A barrier over the transport first: our sends and the
 * reads others make from us need our progress (rxm serves reads from the
 * target's progress), so nobody may stop polling before all are done.
 */
static int tp_barrier(void);

static int sync_all(void **state)
{
	(void)state;
	return tp_barrier();
}

static int tp_barrier(void)
{
	struct dsm_tp_event ev[16];
	double deadline = now_s() + (long_tier ? 300 : 30);
	int seen = barrier_early;

	barrier_early = 0;
	for (int r = 0; r < np; r++)
		if (r != me && dsm_tp_send(tp, r, BARRIER_TYPE, NULL, 0) != 0)
			return -1;
	while (now_s() < deadline && (seen < np - 1 || stats().pending)) {
		int n = dsm_tp_poll(tp, ev, 16);
		for (int k = 0; k < n; k++)
			seen += ev[k].type == DSM_TP_EV_MSG && ev[k].msg_type == BARRIER_TYPE;
	}
	if (seen < np - 1 || stats().pending) {
		print_error("rank %d: transport barrier incomplete (%d of %d, %llu pending)\n", me,
		            seen, np - 1, (unsigned long long)stats().pending);
		dsm_tp_describe(tp, -1, stderr);
	}
	return dsm_rt_boot_barrier();
}

static void test_order(void **state)
{
	(void)state;
	/* 100,000 messages per rank in all, split over its peers. */
	run_stream(100000 / (uint64_t)(np - 1) * (long_tier ? 5 : 1), false);
}

static void test_burst(void **state)
{
	(void)state;
	run_stream(long_tier ? 20000 : 5000, true);
}

/* The sizes of the stream to rank 2 in test_slow_receiver: 0..256 bytes. */
static size_t small_size(uint64_t i)
{
	return (size_t)(((i * 0x9e3779b97f4a7c15ull) >> 40) % 257);
}

/* Receives @per messages of the stream from rank 0 in order, their sizes given by @size.
 * Returns false, having said why, when one is wrong or missing (no assertion: the caller
 * must still meet the others in the allgather). */
static bool recv_stream(uint64_t per, size_t (*size)(uint64_t), double deadline, bool slow,
                        double slow_until)
{
	struct timespec pause = {0, 1000000};
	uint64_t next = 0;
	bool bad = false;

	while (next < per && !bad && now_s() < deadline) {
		struct dsm_tp_event ev[32];
		int n = tpoll(ev, 32);

		for (int k = 0; k < n; k++) {
			if (ev[k].type != DSM_TP_EV_MSG || ev[k].peer != 0)
				continue;
			bad |= ev[k].msg_type != 1 + next % MAX_TYPE || ev[k].len != size(next) ||
			       !check(ev[k].data, ev[k].len, next, 0);
			next++;
		}
		if (slow && now_s() < slow_until)
			nanosleep(&pause, NULL);
	}
	if (next < per || bad)
		dsm_tp_describe(tp, 0, stderr);
	if (bad)
		print_error("rank %d: message %llu from rank 0 out of order or corrupt\n", me,
		            (unsigned long long)next - 1);
	else if (next < per)
		print_error("rank %d: got %llu of %llu messages from rank 0\n", me,
		            (unsigned long long)next, (unsigned long long)per);
	return !bad && next == per;
}

/* Rank 0's part of test_slow_receiver; false (having said why) on a failure. */
static bool send_streams(uint64_t per, double t0, double deadline)
{
	struct dsm_tp_stats before = stats(), after;
	unsigned char *buf = malloc(MSG_MAX);
	bool ok = buf != NULL;

	for (uint64_t i = 0; ok && i < per; i++) {
		size_t n = msg_size(i);

		fill(buf, n, i, me);
		ok = dsm_tp_send(tp, 1, 1 + i % MAX_TYPE, buf, n) == 0;
		if (ok && np >= 3 && i % 4 == 0) {
			uint64_t j = i / 4;

			n = small_size(j);
			fill(buf, n, j, me);
			ok = dsm_tp_send(tp, 2, 1 + j % MAX_TYPE, buf, n) == 0;
		}
		if (ok && i % 16 == 15) {
			struct dsm_tp_event ev[16];
			ok = tpoll(ev, 16) >= 0;
		}
	}
	free(buf);
	/* The queues must empty: what is still queued goes out only through our polls. */
	while (ok && stats().pending && now_s() < deadline) {
		struct dsm_tp_event ev[16];
		ok = tpoll(ev, 16) >= 0;
	}
	after = stats();
	if (!ok || after.pending) {
		print_error("rank 0: a send or poll failed, or %llu operations still pending\n",
		            (unsigned long long)after.pending);
		dsm_tp_describe(tp, 1, stderr);
		return false;
	}
	print_message("rank 0: %llu messages to a slow receiver in %.2f s, %llu queued (%s)\n",
	              (unsigned long long)per, now_s() - t0,
	              (unsigned long long)(after.msgs_queued - before.msgs_queued), tp->prov);
	if (after.msgs_queued == before.msgs_queued) {
		print_error("rank 0: the queue was never used\n");
		return false;
	}
	return true;
}

/*
 * Rank 0 streams to rank 1, which first stops polling (300 ms; 2 s with 3 ranks or more)
 * and then polls with 1 ms pauses for a second: rank 0's posts are refused, its queue to
 * rank 1 grows, send completions come back in trickles while posts are still refused. The
 * queue must drain in order once rank 1 keeps up. (With few send buffers,
 * DSM_TP_SEND_BUFS=2, this wedged a queue that let sends behind its head hold the buffers
 * the head waited for.) With 3 ranks or more, rank 0 also streams to rank 2, a quarter as
 * many messages, interleaved: rank 2 must have them all before rank 1 starts polling (a
 * peer that does not take its messages holds up only its own queue). Those are small
 * (at most 256 bytes): shm 1.17 completes larger sends in order across all peers, so one
 * to a rank that does not poll holds up the completions of later ones to everybody, and
 * with them our send buffers; small ones complete when posted.
 */
static void test_slow_receiver(void **state)
{
	uint64_t per = long_tier ? 50000 : 10000, per2 = (per + 3) / 4;
	double t0 = now_s(), deadline = t0 + (long_tier ? 600 : 120);
	double stall = np >= 3 ? 2.0 : 0.3, mine[3] = {0, 0, 1}, *all;
	bool ok = true;

	(void)state;
	all = calloc((size_t)np * 3, sizeof(*all));
	assert_non_null(all);
	if (me == 0) {
		ok = send_streams(per, t0, deadline);
	} else if (me == 1) {
		nanosleep(&(struct timespec){(time_t)stall, (long)((stall - (int)stall) * 1e9)},
		          NULL);
		mine[0] = now_s(); /* our first poll */
		ok = recv_stream(per, msg_size, deadline, true, mine[0] + 1.0);
	} else if (me == 2) {
		ok = recv_stream(per2, small_size, deadline, false, 0);
		mine[1] = now_s(); /* all of ours arrived */
	}
	mine[2] = ok;
	/* Every rank gets here, failed or not; all run on this host: one clock. */
	assert_int_equal(dsm_rt_boot_allgather(mine, all, sizeof(mine)), 0);
	for (int r = 0; r < np; r++)
		if (all[3 * r + 2] == 0)
			fail_msg("rank %d failed its part (its messages say why)", r);
	if (me == 2) {
		double first_poll = all[3 * 1 + 0];

		print_message("rank 2: all %llu messages from rank 0 %.3f s before rank 1 polled\n",
		              (unsigned long long)per2, first_poll - mine[1]);
		assert_true(mine[1] < first_poll);
	}
	free(all);
}

/* ---- RMA ---- */

#define RMA_MAX (getenv("TP_RMA_MAX") ? (size_t)atol(getenv("TP_RMA_MAX")) : (size_t)1 << 20)

struct remote {
	uint64_t addr;
	uint64_t key;
};

static unsigned char pat(int owner, size_t k)
{
	return (unsigned char)(owner * 31 + (int)(k % 251));
}

/* Waits for the completion of the RMA posted with @ctx, which must succeed; fails the test
 * after 10 s from @t0, naming @what. */
static void wait_rma(const void *ctx, double t0, const char *what)
{
	for (bool got = false; !got;) {
		struct dsm_tp_event ev[8];
		int n = tpoll(ev, 8);

		for (int k = 0; k < n; k++)
			if (ev[k].type == DSM_TP_EV_RMA && ev[k].ctx == ctx) {
				assert_int_equal(ev[k].status, 0);
				got = true;
			}
		if (now_s() - t0 > 10) {
			dsm_tp_describe(tp, -1, stderr);
			fail_msg("rank %d: %s stalled (pending %llu)", me, what,
			         (unsigned long long)stats().pending);
		}
	}
}

/* Reads and writes 4 KiB .. 1 MiB at the next rank; @sleeper: the target's loop sleeps. */
static void rma_round(bool sleeper)
{
	unsigned char *home = aligned_alloc(4096, 2 * RMA_MAX);
	unsigned char *loc = aligned_alloc(4096, RMA_MAX);
	struct remote mine, *all = calloc((size_t)np, sizeof(*all));
	dsm_tp_mr_t *hmr, *lmr;
	int target = (me + 1) % np;
	bool i_read = !sleeper || me == 0; /* with a sleeper: 0 reads from 1, 1 sleeps */
	bool i_sleep = sleeper && me == 1;
	double worst = 0;

	assert_non_null(home);
	assert_non_null(loc);
	for (size_t k = 0; k < 2 * RMA_MAX; k++)
		home[k] = pat(me, k);
	assert_int_equal(dsm_tp_mr_reg(tp, home, 2 * RMA_MAX, &hmr), 0);
	assert_int_equal(dsm_tp_mr_reg(tp, loc, RMA_MAX, &lmr), 0);
	mine.addr = dsm_tp_remote_addr(tp, hmr, 0);
	mine.key = hmr->key;
	assert_int_equal(dsm_rt_boot_allgather(&mine, all, sizeof(mine)), 0);

	if (i_sleep) {
		/* Asleep in the kernel until rank 0 says it is done. Where its reads need our
		 * progress (tcp;ofi_rxm) they complete only if the wait fd works; on shm they
		 * do not, and the doorbell is tested by how soon rank 0's last message wakes
		 * us (without it, only the heartbeat timer would, within 1 s). */
		double deadline = now_s() + 60, late = 0;
		bool done = false;
		uint64_t slept0 = stats().sleeps;
		while (!done && now_s() < deadline) {
			struct dsm_tp_event ev[8];
			dsm_tp_sleep(tp, 30000);
			int n = tpoll(ev, 8);
			for (int k = 0; k < n; k++) {
				if (ev[k].type != DSM_TP_EV_MSG || ev[k].msg_type != 7)
					continue;
				double sent;
				assert_int_equal(ev[k].len, sizeof(sent));
				memcpy(&sent, ev[k].data, sizeof(sent));
				late = now_s() - sent;
				done = true;
			}
		}
		assert_true(done);
		uint64_t slept = stats().sleeps - slept0;
		print_message("rank 1 slept %llu times while rank 0 read from it; its last message "
		              "woke us after %.2f ms\n",
		              (unsigned long long)slept, late * 1e3);
		/* Rank 0 waits 20 ms before each read and before its last message. */
		assert_true(slept > 0);
		assert_true(late < 0.25); /* 0.67 s here with the doorbell disabled */
	} else if (i_read) {
		for (size_t sz = 4096; sz <= RMA_MAX; sz *= 2) {
			int cookie = 0;
			size_t off = sz / 2;
			double t0;

			if (sleeper) /* let rank 1 fall asleep */
				nanosleep(&(struct timespec){0, 20000000}, NULL);
			t0 = now_s();
			/* read */
			memset(loc, 0, sz);
			assert_int_equal(dsm_tp_read(tp, target, loc, sz, lmr,
			                             all[target].addr + off, all[target].key,
			                             &cookie),
			                 0);
			wait_rma(&cookie, t0, "read");
			if (now_s() - t0 > worst)
				worst = now_s() - t0;
			for (size_t k = 0; k < sz; k++)
				if (loc[k] != pat(target, off + k))
					fail_msg("rank %d: byte %zu of a %zu-byte read is wrong",
					         me, k, sz);
			if (sleeper)
				continue;
			/* write into the upper half, read back */
			for (size_t k = 0; k < sz; k++)
				loc[k] = (unsigned char)(k * 13 + sz + (size_t)me);
			size_t woff = RMA_MAX + (RMA_MAX - sz);
			assert_int_equal(dsm_tp_write(tp, target, loc, sz, lmr,
			                              all[target].addr + woff, all[target].key,
			                              &cookie),
			                 0);
			wait_rma(&cookie, t0, "write");
			memset(loc, 0, sz);
			assert_int_equal(dsm_tp_read(tp, target, loc, sz, lmr,
			                             all[target].addr + woff, all[target].key,
			                             &cookie),
			                 0);
			wait_rma(&cookie, t0, "read-back");
			for (size_t k = 0; k < sz; k++)
				if (loc[k] != (unsigned char)(k * 13 + sz + (size_t)me))
					fail_msg("rank %d: written data did not arrive", me);
		}
		if (sleeper) {
			/* Sent 20 ms after the last read, when rank 1 sleeps again. */
			nanosleep(&(struct timespec){0, 20000000}, NULL);
			double sent = now_s();
			assert_int_equal(dsm_tp_send(tp, 1, 7, &sent, sizeof(sent)), 0);
			print_message("rank 0: reads 4 KiB..1 MiB from a sleeping rank 1 ok, "
			              "slowest %.1f ms (%s)\n",
			              worst * 1e3, tp->prov);
		}
	}
	assert_int_equal(tp_barrier(), 0); /* nobody reads our home any more */
	assert_int_equal(dsm_tp_mr_dereg(tp, hmr), 0);
	assert_int_equal(dsm_tp_mr_dereg(tp, lmr), 0);
	free(all);
	free(home);
	free(loc);
}

static void test_rma(void **state)
{
	(void)state;
	rma_round(false);
}

static void test_rma_sleeper(void **state)
{
	(void)state;
	rma_round(true);
}

/* ---- a 64 GiB segment registered as touched ---- */

/* One rank cannot set its segment up (here: a base that is not page-aligned): every rank
 * gets an error from the collective, none waits in it. */
static void test_segment_one_fails(void **state)
{
	const size_t len = 64u << 20;
	unsigned char *base = mmap(NULL, len, PROT_READ | PROT_WRITE,
	                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	dsm_tp_seg_t *seg = NULL;

	(void)state;
	assert_true(base != MAP_FAILED);
	assert_int_not_equal(
	        dsm_tp_seg_create(tp, me == np - 1 ? base + 8 : base, len, 2u << 20, &seg), 0);
	assert_null(seg);
	munmap(base, len);
}

static void test_segment(void **state)
{
	const size_t len = 64ull << 30, chunk = 2u << 20;
	const size_t offs[] = {0, (1ull << 30) + 5, (63ull << 30) + 4096 * 3};
	unsigned char *base;
	dsm_tp_seg_t *seg;
	struct dsm_tp_stats s0 = stats();
	int target = (me + 1) % np;
	unsigned char *loc = aligned_alloc(4096, 4096);
	dsm_tp_mr_t *lmr;

	(void)state;
	base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
	            -1, 0);
	if (base == MAP_FAILED)
		skip(); /* vm.overcommit_memory=2 refuses it */
	assert_int_equal(dsm_tp_seg_create(tp, base, len, chunk, &seg), 0);
	assert_int_equal(dsm_tp_seg_registered(seg), 0);
	assert_int_equal(dsm_tp_mr_reg(tp, loc, 4096, &lmr), 0);
	for (size_t i = 0; i < 3; i++) {
		memset(base + offs[i], 0x40 + (int)i + me, 100);
		assert_int_equal(dsm_tp_seg_populate(seg, offs[i], 100), 0);
		assert_int_equal(dsm_tp_seg_registered(seg), (i + 1) * chunk);
	}
	/* touching the same chunks again registers nothing more */
	assert_int_equal(dsm_tp_seg_populate(seg, offs[1] + 4096, 4096), 0);
	assert_int_equal(dsm_tp_seg_registered(seg), 3 * chunk);
	assert_int_equal(stats().bytes_registered - s0.bytes_registered, 3 * chunk + 4096);
	assert_int_equal(dsm_rt_boot_barrier(), 0);
	for (size_t i = 0; i < 3; i++) {
		int cookie;
		double t0 = now_s();
		memset(loc, 0, 100);
		assert_int_equal(dsm_tp_seg_read(seg, target, offs[i], loc, 100, lmr, &cookie), 0);
		wait_rma(&cookie, t0, "segment read");
		for (int k = 0; k < 100; k++)
			assert_int_equal(loc[k], 0x40 + (int)i + target);
	}
	if (tp->prov_key) {
		/* Keys the provider chose: a chunk the home never touched is asked for,
		 * registered there on demand, and reads as zeros. */
		const size_t untouched = (32ull << 30) + 77;
		int cookie;
		double t0 = now_s();
		memset(loc, 0xff, 100);
		assert_int_equal(dsm_tp_seg_read(seg, target, untouched, loc, 100, lmr, &cookie),
		                 0);
		wait_rma(&cookie, t0, "read of an unregistered chunk");
		for (int k = 0; k < 100; k++)
			assert_int_equal(loc[k], 0);
	}
	assert_int_equal(tp_barrier(), 0);
	/* with provider keys, the rank before us read one chunk we had not touched */
	assert_int_equal(dsm_tp_seg_registered(seg), (tp->prov_key ? 4 : 3) * chunk);
	assert_int_equal(dsm_tp_seg_destroy(seg), 0);
	assert_int_equal(dsm_tp_mr_dereg(tp, lmr), 0);
	assert_int_equal(stats().bytes_registered, s0.bytes_registered);
	munmap(base, len);
	free(loc);
	if (me == 0)
		print_message("rank 0: 64 GiB segment, 3 chunks touched, %zu MiB registered\n",
		              3 * chunk >> 20);
}

/* ---- wake-ups: nothing may depend on a timeout ----
 *
 * Fresh transports (so the first contact of every pair happens against a
 * sleeping peer), then thousands of ping-pongs and RMA reads where the
 * passive rank of each pair sleeps on the wait fd. A sleep has a watchdog of
 * WATCHDOG_MS only so that a lost wake-up fails instead of hanging: before
 * DONE the active rank always waits on its partner for something, so a
 * sleep that the watchdog ends is a wake-up the transport lost.
 */

#define WATCHDOG_MS 3000
#define WK_PING     1
#define WK_PONG     2
#define WK_DONE     3
#define WK_LEN      4096
#define WK_MISS_MAX 3

/* Sleeps on @t until woken; returns 1 if the watchdog ended the sleep. */
static int sleep_watchdog(dsm_tp_t *t)
{
	struct pollfd p = {.fd = dsm_tp_wait_fd(t), .events = POLLIN};
	int r;

	r = dsm_tp_sleep_prepare(t);
	if (r < 0)
		return 0;
	if (r == DSM_TP_SLEEP_BRIEF) { /* not a sleep the watchdog may judge */
		dsm_tp_sleep_end(t);
		return 0;
	}
	r = poll(&p, 1, WATCHDOG_MS);
	dsm_tp_sleep_end(t);
	return r == 0;
}

static size_t wk_read_size(uint64_t i)
{
	return i % 256 == 255 ? (size_t)1 << 20 : i % 16 == 15 ? (size_t)64 << 10 : 4096;
}

/* The passive rank: answers pings, serves reads from @home, sleeps otherwise. */
static uint64_t wk_passive(dsm_tp_t *t, int partner, double deadline)
{
	unsigned char pong[WK_LEN] = {0};
	uint64_t missed = 0;
	bool done = false;

	while (!done && now_s() < deadline) {
		struct dsm_tp_event ev[16];
		int n = dsm_tp_poll(t, ev, 16);

		assert_true(n >= 0);
		for (int k = 0; k < n; k++) {
			if (ev[k].type != DSM_TP_EV_MSG || ev[k].peer != partner)
				continue;
			if (ev[k].msg_type == WK_DONE) {
				done = true;
			} else if (ev[k].msg_type == WK_PING) {
				uint64_t i;
				assert_true(ev[k].len >= 8);
				memcpy(&i, ev[k].data, 8);
				memcpy(pong, &i, 8);
				memcpy(pong + 8, &missed, 8);
				/* every other pong is small: inject and eager paths both */
				assert_int_equal(
				        dsm_tp_send(t, partner, WK_PONG, pong, i % 2 ? 16 : WK_LEN),
				        0);
			}
		}
		if (n == 0 && !done && sleep_watchdog(t)) {
			missed++;
			print_error("rank %d: asleep %d ms while rank %d was waiting on us: a "
			            "lost wake-up\n",
			            me, WATCHDOG_MS, partner);
		}
	}
	assert_true(done);
	return missed;
}

/* Waits for the RMA with @ctx or the pong for @i; @sleep: sleep when idle. */
static void wk_wait(dsm_tp_t *t, int partner, unsigned type, uint64_t i, void *ctx, bool sleep,
                    uint64_t *missed, uint64_t *peer_missed)
{
	double deadline = now_s() + 30;

	for (;;) {
		struct dsm_tp_event ev[16];
		int n = dsm_tp_poll(t, ev, 16);
		bool got = false;

		assert_true(n >= 0);
		for (int k = 0; k < n; k++) {
			if (type == WK_PONG && ev[k].type == DSM_TP_EV_MSG &&
			    ev[k].msg_type == WK_PONG && ev[k].peer == partner) {
				uint64_t j;
				assert_true(ev[k].len >= 16);
				memcpy(&j, ev[k].data, 8);
				memcpy(peer_missed, (const unsigned char *)ev[k].data + 8, 8);
				assert_int_equal(j, i);
				got = true;
			} else if (type == 0 && ev[k].type == DSM_TP_EV_RMA) {
				assert_ptr_equal(ev[k].ctx, ctx);
				assert_int_equal(ev[k].status, 0);
				got = true;
			}
		}
		if (got)
			return;
		if (now_s() > deadline)
			fail_msg("rank %d: op %llu with rank %d stalled for 30 s", me,
			         (unsigned long long)i, partner);
		if (n == 0 && sleep && sleep_watchdog(t)) {
			++*missed;
			print_error("rank %d: asleep %d ms while waiting on rank %d: a lost "
			            "wake-up\n",
			            me, WATCHDOG_MS, partner);
		}
	}
}

static void wk_cycle(uint64_t iters, uint64_t *missed_p, struct dsm_tp_stats *st_p)
{
	struct dsm_tp_attr attr = {.struct_size = sizeof(attr),
	                           .boot = dsm_rt_boot_tp(),
	                           .msg_max = MSG_MAX,
	                           .max_msg_type = MAX_TYPE + 1};
	const size_t len = (size_t)1 << 20;
	bool active = me % 2 == 0;
	int partner = active ? me + 1 : me - 1;
	unsigned char *buf = aligned_alloc(4096, len);
	struct remote mine, *all = calloc((size_t)np, sizeof(*all));
	dsm_tp_mr_t *mr;
	dsm_tp_t *t;
	uint64_t missed = 0, peer_missed = 0;

	assert_non_null(buf);
	assert_non_null(all);
	/* The heartbeat timer would wake sleepers every second and hide a lost wake-up. */
	setenv("DSM_TP_HEARTBEAT_MS", "0", 1);
	assert_int_equal(dsm_tp_open(NULL, &attr, &t), 0);
	unsetenv("DSM_TP_HEARTBEAT_MS");
	for (size_t k = 0; k < len; k++)
		buf[k] = active ? 0 : pat(me, k);
	assert_int_equal(dsm_tp_mr_reg(t, buf, len, &mr), 0);
	mine.addr = dsm_tp_remote_addr(t, mr, 0);
	mine.key = mr->key;
	assert_int_equal(dsm_rt_boot_allgather(&mine, all, sizeof(mine)), 0);
	if (partner >= np) {
		/* an odd rank count: the last rank sits this one out */
	} else if (!active) {
		missed = wk_passive(t, partner, now_s() + 300);
	} else {
		unsigned char ping[WK_LEN] = {0};
		struct timespec d = {0, 50 * 1000 * 1000};
		int cookie;

		nanosleep(&d, NULL); /* the partner is asleep: first contact must wake it */
		for (uint64_t i = 0; i < iters && missed + peer_missed < WK_MISS_MAX; i++) {
			size_t rs = wk_read_size(i), off = (i * 4096) % (len - rs + 1) & ~(size_t)7;

			memcpy(ping, &i, 8);
			assert_int_equal(dsm_tp_send(t, partner, WK_PING, ping, i % 3 ? 8 : WK_LEN),
			                 0);
			wk_wait(t, partner, WK_PONG, i, NULL, i % 2, &missed, &peer_missed);
			assert_int_equal(dsm_tp_read(t, partner, buf, rs, mr,
			                             all[partner].addr + off, all[partner].key,
			                             &cookie),
			                 0);
			wk_wait(t, partner, 0, i, &cookie, i % 2, &missed, &peer_missed);
			if (buf[0] != pat(partner, off) ||
			    buf[rs - 1] != pat(partner, off + rs - 1) ||
			    buf[rs / 2] != pat(partner, off + rs / 2))
				fail_msg("rank %d: read %llu of %zu bytes at %zu: wrong data", me,
				         (unsigned long long)i, rs, off);
		}
		assert_int_equal(dsm_tp_send(t, partner, WK_DONE, NULL, 0), 0);
		missed += peer_missed;
	}
	/* Both sides keep polling until the pair is quiet, then close. */
	for (double dl = now_s() + 10; now_s() < dl;) {
		struct dsm_tp_event ev[16];
		struct dsm_tp_stats s;
		dsm_tp_poll(t, ev, 16);
		dsm_tp_stats(t, &s);
		if (s.pending == 0)
			break;
	}
	assert_int_equal(dsm_tp_stats(t, st_p), 0);
	assert_int_equal(dsm_rt_boot_barrier(), 0);
	assert_int_equal(dsm_tp_mr_dereg(t, mr), 0);
	assert_int_equal(dsm_tp_close(t), 0);
	free(buf);
	free(all);
	*missed_p += missed;
}

static void test_wakeups(void **state)
{
	uint64_t missed = 0, iters = long_tier ? 20000 : 4000;
	int cycles = getenv("TP_WAKE_CYCLES") ? atoi(getenv("TP_WAKE_CYCLES")) : 3;
	struct dsm_tp_stats st = {0};
	double t0 = now_s();

	(void)state;
	for (int c = 0; c < cycles && missed < WK_MISS_MAX; c++)
		wk_cycle(iters, &missed, &st);
	print_message("rank %d: %d cycles of %llu ping-pongs + reads, %llu wake-ups lost, "
	              "%llu sleeps, %llu doorbells rung (last cycle), %.2f s (%s)\n",
	              me, cycles, (unsigned long long)iters, (unsigned long long)missed,
	              (unsigned long long)st.sleeps, (unsigned long long)st.doorbells, now_s() - t0,
	              tp->prov);
	assert_int_equal(missed, 0);
}

/* ---- malformed messages ---- */

static void test_malformed(void **state)
{
	struct dsm_tp_stats s0 = stats();

	(void)state;
	if (me == 0) {
		struct dsm_tp_wire_hdr h = {DSM_TP_WIRE_MAGIC,  DSM_TP_WIRE_VERSION, 1, 0, 0, 0,
		                            dsm_tp_wire_key(tp)};
		struct dsm_tp_wire_hdr bad;
		unsigned char big[MSG_MAX + 64] = {0};

		assert_int_equal(dsm_tp_send_raw(tp, 1, "abc", 3), 0); /* too short */
		bad = h, bad.magic = 0xbeef;
		assert_int_equal(dsm_tp_send_raw(tp, 1, &bad, sizeof(bad)), 0);
		bad = h, bad.version = 9;
		assert_int_equal(dsm_tp_send_raw(tp, 1, &bad, sizeof(bad)), 0);
		bad = h, bad.len = 50; /* says 50 bytes, carries none */
		assert_int_equal(dsm_tp_send_raw(tp, 1, &bad, sizeof(bad)), 0);
		bad = h, bad.type = 0;
		assert_int_equal(dsm_tp_send_raw(tp, 1, &bad, sizeof(bad)), 0);
		bad = h, bad.type = MAX_TYPE + 2;
		assert_int_equal(dsm_tp_send_raw(tp, 1, &bad, sizeof(bad)), 0);
		bad = h, bad.src = 9999;
		assert_int_equal(dsm_tp_send_raw(tp, 1, &bad, sizeof(bad)), 0);
		/* longer than any receive buffer (shm 1.17 wedges on truncation: tcp only) */
		if (strcmp(tp->prov, "shm") != 0)
			assert_int_equal(dsm_tp_send_raw(tp, 1, big, sizeof(big)), 0);
		else
			assert_int_equal(dsm_tp_send_raw(tp, 1, &h, 1), 0);
		assert_int_equal(dsm_tp_send(tp, 1, 3, "after", 5), 0);
	} else if (me == 1) {
		double t0 = now_s();
		bool got = false;
		/* rxm sends the oversized one by rendezvous: it may arrive after "after". */
		while ((!got || stats().msgs_dropped - s0.msgs_dropped < 8) && now_s() - t0 < 10) {
			struct dsm_tp_event ev[8];
			int n = tpoll(ev, 8);
			for (int k = 0; k < n; k++)
				if (ev[k].type == DSM_TP_EV_MSG) {
					assert_int_equal(ev[k].msg_type, 3);
					assert_memory_equal(ev[k].data, "after", 5);
					got = true;
				}
		}
		assert_true(got);
		print_message("rank 1: %llu malformed messages dropped, the next one delivered\n",
		              (unsigned long long)(stats().msgs_dropped - s0.msgs_dropped));
		assert_int_equal(stats().msgs_dropped - s0.msgs_dropped, 8);
	}
}

/* ---- forgeries from outside the job ---- */

#define FORGED 400

/*
 * A process outside the job (tp_forge, TP_FORGE names it) sends rank 0 well-formed
 * messages without the job key: "rank 1 died" notices in their turn, messages far ahead
 * of theirs, messages from no rank. Rank 0 must reject every one (msgs_rejected), deliver
 * none, hold none and declare nobody dead; the barrier after the test shows that the
 * job's own streams go on. Then the forger reads a region of rank 0's by RMA with the key
 * the ranks name it by (computable: they are handed out in order): the provider must
 * refuse, since the key it registered carries the job's secret. On shm the forger must not
 * get that far: a rank's region loses its name in /dev/shm once every peer has mapped it
 * (ofi_open.c), so an outsider cannot map it to send (tp_forge exits 4) and nothing
 * reaches rank 0 (shm checks no RMA keys: README, Security).
 */
static void test_forged(void **state)
{
	const char *forge = getenv("TP_FORGE");

	(void)state;
	if (forge == NULL) {
		print_message("TP_FORGE is not set: no forger to run\n");
		skip();
	}
	if (me != 0)
		return;

	struct dsm_tp_stats s0 = stats();
	unsigned char name[256];
	size_t namelen = sizeof(name);
	char path[] = "/tmp/tp_forge.XXXXXX", count[16], raddr[32], rkey[32];
	static uint64_t secret = 0x5ec2e7;
	dsm_tp_mr_t *mr;
	int fd = mkstemp(path), status = -1;
	pid_t pid;
	uint64_t delivered = 0, deaths = 0;

	assert_true(fd >= 0);
	assert_int_equal(dsm_tp_ep_name(tp, name, &namelen), 0);
	assert_int_equal(write(fd, name, namelen), (ssize_t)namelen);
	close(fd);
	snprintf(count, sizeof(count), "%d", FORGED);
	assert_int_equal(dsm_tp_mr_reg(tp, &secret, sizeof(secret), &mr), 0);
	snprintf(raddr, sizeof(raddr), "%llu",
	         tp->virt_addr ? (unsigned long long)(uintptr_t)&secret : 0ull);
	snprintf(rkey, sizeof(rkey), "%llu", (unsigned long long)mr->key);
	pid = fork();
	if (pid == 0) {
		execl(forge, forge, tp->prov, path, count, raddr, rkey, (char *)NULL);
		_exit(127);
	}
	assert_true(pid > 0);
	/* Our progress takes the forger's connection (tcp) and its messages. */
	double deadline = now_s() + 30, after = 0;

	while (now_s() < deadline && (after == 0 || now_s() < after)) {
		struct dsm_tp_event ev[16];
		int n = tpoll(ev, 16);

		for (int k = 0; k < n; k++) {
			delivered += ev[k].type == DSM_TP_EV_MSG;
			deaths += ev[k].type == DSM_TP_EV_PEER_DEAD;
		}
		if (after == 0 && waitpid(pid, &status, WNOHANG) == pid)
			after = now_s() + 0.5; /* what is still on its way */
		if (stats().msgs_rejected - s0.msgs_rejected == FORGED && after)
			break;
	}
	unlink(path);
	dsm_tp_mr_dereg(tp, mr);
	if (after == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	struct dsm_tp_stats s = stats();

	print_message("rank 0: %d messages forged from outside the job (%s): %llu rejected, "
	              "%llu delivered, %llu held, %llu dropped, %llu ranks declared dead\n",
	              FORGED, tp->prov, (unsigned long long)(s.msgs_rejected - s0.msgs_rejected),
	              (unsigned long long)delivered,
	              (unsigned long long)(s.msgs_reordered - s0.msgs_reordered),
	              (unsigned long long)(s.msgs_dropped - s0.msgs_dropped),
	              (unsigned long long)deaths);
	bool keys_checked = strcmp(tp->prov, "shm") != 0;

	if (!keys_checked) {
		/* shm: each rank's region lost its name once every peer had mapped it
		 * (ofi_open.c), so an outsider cannot even map it to send. */
		bool unreachable = WIFEXITED(status) && WEXITSTATUS(status) == 4;

		print_message("rank 0: the forger could %sreach rank 0's shm region (its name "
		              "%s /dev/shm)\n",
		              unreachable ? "not " : "",
		              unreachable ? "is gone from" : "is still in");
		assert_true(unreachable);
		assert_int_equal(s.msgs_rejected - s0.msgs_rejected, 0);
	} else {
		print_message("rank 0: an RMA read by the forger with the region's computable key "
		              "was %s\n",
		              WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "refused" : "served");
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		assert_int_equal(s.msgs_rejected - s0.msgs_rejected, FORGED);
	}
	assert_int_equal(delivered, 0);
	assert_int_equal(deaths, 0);
	assert_int_equal(s.peers_dead, s0.peers_dead);
	assert_int_equal(s.msgs_reordered, s0.msgs_reordered);
}

static void test_bad_args(void **state)
{
	(void)state;
	assert_int_equal(dsm_tp_send(tp, np, 1, "x", 1), -EINVAL);
	assert_int_equal(dsm_tp_send(tp, 0, 0, "x", 1), -EINVAL);
	assert_int_equal(dsm_tp_send(tp, 0, MAX_TYPE + 2, "x", 1), -EINVAL);
	assert_int_equal(dsm_tp_send(tp, 0, 1, "x", MSG_MAX + 1), -EINVAL);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_bad_args, sync_all),
	        cmocka_unit_test_teardown(test_order, sync_all),
	        cmocka_unit_test_teardown(test_burst, sync_all),
	        cmocka_unit_test_teardown(test_slow_receiver, sync_all),
	        cmocka_unit_test_teardown(test_rma, sync_all),
	        cmocka_unit_test_teardown(test_rma_sleeper, sync_all),
	        cmocka_unit_test_teardown(test_segment, sync_all),
	        cmocka_unit_test_teardown(test_segment_one_fails, sync_all),
	        cmocka_unit_test_teardown(test_malformed, sync_all),
	        cmocka_unit_test_teardown(test_forged, sync_all),
	        cmocka_unit_test_teardown(test_wakeups, sync_all),
	};
	struct dsm_tp_attr attr = {
	        .struct_size = sizeof(attr), .msg_max = MSG_MAX, .max_msg_type = MAX_TYPE + 1};
	const char *tier = getenv("DSM_TEST_TIER");
	int ret;

	(void)argc;
	(void)argv;
	long_tier = tier && strcmp(tier, "long") == 0;
	if (dsm_rt_boot_init(NULL) != 0)
		return 1;
	me = dsm_rt_boot_rank();
	np = dsm_rt_boot_size();
	attr.boot = dsm_rt_boot_tp();
	ret = dsm_tp_open(NULL, &attr, &tp);
	if (ret) {
		fprintf(stderr, "rank %d: dsm_tp_open: %s\n", me, dsm_strerror(ret));
		dsm_rt_boot_fini();
		return 1;
	}
	if (np < 2) {
		fprintf(stderr, "run under mpiexec -n 2 or more\n");
		return 1;
	}
	/* TP_TESTS=test_a,test_b runs only those (debugging). */
	struct CMUnitTest chosen[sizeof(tests) / sizeof(tests[0])];
	size_t nchosen = 0;
	const char *only = getenv("TP_TESTS");
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
		if (only == NULL || strstr(only, tests[i].name))
			chosen[nchosen++] = tests[i];
	ret = _cmocka_run_group_tests(tp->prov, chosen, nchosen, NULL, NULL);
	dsm_tp_close(tp);
	dsm_rt_boot_fini();
	return ret;
}
