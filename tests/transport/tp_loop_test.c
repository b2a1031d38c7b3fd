/* SPDX-License-Identifier: MIT */
/*
 * The transport's shared logic over the in-process loopback: per-pair FIFO,
 * the outgoing queue under a full wire, reordering of out-of-turn arrivals,
 * malformed input, RMA checks, segments, sleep/wake and peer death.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include "common/error.h"
#include "transport/internal.h"
#include "transport/loopback.h"
#include "transport/testing.h"
#include "transport/transport.h"

#define N        3
#define MAX_TYPE 8

static dsm_tp_loop_fabric_t *fab;
static dsm_tp_t *tps[N];
static struct dsm_tp_boot boots[N];
static uint64_t gather_table[N]; /* fake allgather: ranks fill in turn */

static int fake_allgather(void *ctx, const void *mine, void *all, size_t len)
{
	int rank = (int)(intptr_t)ctx;

	assert_int_equal(len, sizeof(uint64_t));
	memcpy(&gather_table[rank], mine, len);
	memcpy(all, gather_table, sizeof(gather_table));
	return 0;
}

static int fake_barrier(void *ctx)
{
	(void)ctx;
	return 0;
}

static int setup(void **state)
{
	struct dsm_tp_attr attr = {.struct_size = sizeof(attr), .max_msg_type = MAX_TYPE};

	(void)state;
	if (dsm_tp_loop_fabric_create(N, &fab))
		return -1;
	attr.impl_arg = fab;
	for (int i = 0; i < N; i++) {
		boots[i] = (struct dsm_tp_boot){(void *)(intptr_t)i, i, N, fake_allgather,
		                                fake_barrier};
		attr.boot = &boots[i];
		if (dsm_tp_open(&dsm_tp_loop_ops, &attr, &tps[i]))
			return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (int i = 0; i < N; i++)
		dsm_tp_close(tps[i]);
	dsm_tp_loop_fabric_destroy(fab);
	return 0;
}

static struct dsm_tp_stats stats(int r)
{
	struct dsm_tp_stats s;
	dsm_tp_stats(tps[r], &s);
	return s;
}

/* Polls every rank; calls @fn for every event of rank @r. */
static int pump(void (*fn)(int r, const struct dsm_tp_event *e, void *arg), void *arg)
{
	int total = 0;

	for (int r = 0; r < N; r++) {
		struct dsm_tp_event ev[16];
		int n = dsm_tp_poll(tps[r], ev, 16);
		assert_true(n >= 0);
		for (int k = 0; k < n; k++)
			if (fn)
				fn(r, &ev[k], arg);
		total += n;
	}
	return total;
}

struct order {
	uint32_t next[N][N];
	bool bad;
};

static void on_order(int r, const struct dsm_tp_event *e, void *arg)
{
	struct order *o = arg;
	uint32_t v;

	assert_int_equal(e->type, DSM_TP_EV_MSG);
	memcpy(&v, e->data, 4);
	if (v != o->next[e->peer][r] || e->len != 4 + v % 300 || e->msg_type != 1 + v % MAX_TYPE)
		o->bad = true;
	o->next[e->peer][r]++;
}

static void test_fifo_through_queue(void **state)
{
	struct order o = {0};
	unsigned char buf[400] = {0};
	const uint32_t per = 20000;

	(void)state;
	dsm_tp_loop_set_depth(fab, 16); /* a full wire forces the outgoing queue */
	for (uint32_t i = 0; i < per; i++) {
		for (int s = 0; s < N; s++)
			for (int d = 0; d < N; d++) {
				if (s == d)
					continue;
				memcpy(buf, &i, 4);
				assert_int_equal(
				        dsm_tp_send(tps[s], d, 1 + i % MAX_TYPE, buf, 4 + i % 300),
				        0);
			}
		if (i % 1000 == 999)
			pump(on_order, &o);
	}
	for (int k = 0; k < 100000 && pump(on_order, &o); k++)
		;
	assert_false(o.bad);
	for (int s = 0; s < N; s++)
		for (int d = 0; d < N; d++)
			assert_int_equal(o.next[s][d], s == d ? 0 : per);
	assert_true(stats(0).msgs_queued > 0);
	assert_int_equal(stats(1).msgs_dropped, 0);
	dsm_tp_loop_set_depth(fab, 1 << 20);
}

static void raw(int from, int to, uint32_t seq, unsigned type, const char *payload)
{
	unsigned char b[64];
	struct dsm_tp_wire_hdr h = {DSM_TP_WIRE_MAGIC,         DSM_TP_WIRE_VERSION, (uint8_t)type,
	                            (uint32_t)strlen(payload), (uint32_t)from,      seq,
	                            dsm_tp_wire_key(tps[from])};

	memcpy(b, &h, sizeof(h));
	memcpy(b + sizeof(h), payload, strlen(payload));
	assert_int_equal(dsm_tp_send_raw(tps[from], to, b, sizeof(h) + strlen(payload)), 0);
}

static char got[16][8];
static int ngot;

static void on_collect(int r, const struct dsm_tp_event *e, void *arg)
{
	(void)arg;
	(void)r;
	if (e->type == DSM_TP_EV_MSG && ngot < 16) {
		memcpy(got[ngot], e->data, e->len < 7 ? e->len : 7);
		got[ngot++][e->len < 7 ? e->len : 7] = 0;
	}
}

/* rank 2 -> rank 1 on a fabric of its own, so the stream's sequence starts at 0 */
static void test_reorder_and_duplicates(void **state)
{
	dsm_tp_loop_fabric_t *saved_fab = fab;
	dsm_tp_t *saved[N];
	struct dsm_tp_stats s0;

	memcpy(saved, tps, sizeof(saved));
	assert_int_equal(setup(state), 0);
	s0 = stats(1);
	ngot = 0;
	raw(2, 1, 2, 1, "c");
	raw(2, 1, 1, 1, "b");
	raw(2, 1, 1, 1, "b"); /* duplicate while held */
	pump(on_collect, NULL);
	assert_int_equal(ngot, 0); /* nothing before seq 0 */
	raw(2, 1, 0, 1, "a");
	pump(on_collect, NULL);
	assert_int_equal(ngot, 3);
	assert_string_equal(got[0], "a");
	assert_string_equal(got[1], "b");
	assert_string_equal(got[2], "c");
	raw(2, 1, 1, 1, "old"); /* a duplicate of a delivered one */
	pump(on_collect, NULL);
	assert_int_equal(ngot, 3);
	assert_int_equal(stats(1).msgs_reordered - s0.msgs_reordered, 2);
	assert_int_equal(stats(1).msgs_dropped - s0.msgs_dropped, 2);
	teardown(state);
	fab = saved_fab;
	memcpy(tps, saved, sizeof(saved));
}

static void on_count_dead(int r, const struct dsm_tp_event *e, void *arg)
{
	int *dead = arg;

	if (e->type == DSM_TP_EV_PEER_DEAD && e->peer == 2)
		dead[r]++;
}

/*
 * A peer whose message never comes while it floods us with the ones after it (a lost
 * sequenced send, or a broken peer): at most DSM_TP_HELD_MAX are held, the next one ends
 * the stream with a clear error, the held ones are freed, and the peer is dead to every
 * rank (as a death notice makes it on libfabric). Messages without the key are rejected
 * before they are held at all.
 */
static void test_flood(void **state)
{
	dsm_tp_loop_fabric_t *saved_fab = fab;
	dsm_tp_t *saved[N];
	struct dsm_tp_stats s0;
	int dead[N] = {0};
	unsigned char b[64];
	struct dsm_tp_wire_hdr h;

	memcpy(saved, tps, sizeof(saved));
	assert_int_equal(setup(state), 0);
	s0 = stats(1);
	/* Without the key: rejected, never held. */
	h = (struct dsm_tp_wire_hdr){DSM_TP_WIRE_MAGIC, DSM_TP_WIRE_VERSION, 1, 1, 2, 5,
	                             dsm_tp_wire_key(tps[2]) ^ 1};
	memcpy(b, &h, sizeof(h));
	b[sizeof(h)] = 'x';
	for (int i = 0; i < 100; i++)
		assert_int_equal(dsm_tp_send_raw(tps[2], 1, b, sizeof(h) + 1), 0);
	for (int k = 0; k < 10; k++)
		pump(on_count_dead, dead);
	assert_int_equal(stats(1).msgs_rejected - s0.msgs_rejected, 100);
	assert_int_equal(stats(1).msgs_reordered, s0.msgs_reordered);
	/* With it, seq 1, 2, ...: seq 0 never comes. */
	for (uint32_t seq = 1; seq <= DSM_TP_HELD_MAX + 10; seq++) {
		raw(2, 1, seq, 1, "flood");
		if (seq % 16 == 0)
			pump(on_count_dead, dead);
	}
	for (int k = 0; k < 100; k++)
		pump(on_count_dead, dead);
	print_message("flood: %llu held of %u sent ahead of a message that never came, then "
	              "rank 2 dead to ranks 0 and 1 (%d, %d notices)\n",
	              (unsigned long long)(stats(1).msgs_reordered - s0.msgs_reordered),
	              DSM_TP_HELD_MAX + 10, dead[0], dead[1]);
	assert_int_equal(stats(1).msgs_reordered - s0.msgs_reordered, DSM_TP_HELD_MAX);
	assert_int_equal(stats(1).msgs_received, s0.msgs_received);
	assert_int_equal(dead[1], 1);
	assert_int_equal(dead[0], 1);
	/* Nothing is held any more, and nothing more from it is taken. */
	struct dsm_tp_core *c = tps[1]->core;
	assert_null(c->rx[2].held);
	assert_int_equal(c->rx[2].held_bytes, 0);
	raw(2, 1, 0, 1, "late");
	pump(NULL, NULL);
	assert_int_equal(stats(1).msgs_received, s0.msgs_received);
	teardown(state);
	fab = saved_fab;
	memcpy(tps, saved, sizeof(saved));
}

static void test_malformed(void **state)
{
	struct dsm_tp_stats s0 = stats(0);
	struct dsm_tp_wire_hdr h = {DSM_TP_WIRE_MAGIC, DSM_TP_WIRE_VERSION, 1, 0, 1, 0,
	                            dsm_tp_wire_key(tps[1])},
	                       b;

	(void)state;
	ngot = 0;
	assert_int_equal(dsm_tp_send_raw(tps[1], 0, "xy", 2), 0);
	b = h, b.magic++;
	dsm_tp_send_raw(tps[1], 0, &b, sizeof(b));
	b = h, b.version++;
	dsm_tp_send_raw(tps[1], 0, &b, sizeof(b));
	b = h, b.len = 1;
	dsm_tp_send_raw(tps[1], 0, &b, sizeof(b));
	b = h, b.type = 0;
	dsm_tp_send_raw(tps[1], 0, &b, sizeof(b));
	b = h, b.type = MAX_TYPE + 1;
	dsm_tp_send_raw(tps[1], 0, &b, sizeof(b));
	b = h, b.src = N;
	dsm_tp_send_raw(tps[1], 0, &b, sizeof(b));
	pump(NULL, NULL);
	assert_int_equal(stats(0).msgs_dropped - s0.msgs_dropped, 7);
	assert_int_equal(stats(0).msgs_received, s0.msgs_received);
	/* The stream goes on. */
	assert_int_equal(dsm_tp_send(tps[1], 0, 2, "ok", 2), 0);
	pump(on_collect, NULL);
	assert_int_equal(ngot, 1);
	assert_string_equal(got[0], "ok");
	/* Bad arguments are refused at the sender. */
	assert_int_equal(dsm_tp_send(tps[1], N, 1, "x", 1), -EINVAL);
	assert_int_equal(dsm_tp_send(tps[1], 0, 0, "x", 1), -EINVAL);
	assert_int_equal(dsm_tp_send(tps[1], 0, MAX_TYPE + 1, "x", 1), -EINVAL);
	assert_int_equal(dsm_tp_send(tps[1], 0, 1, "x", DSM_TP_MSG_MAX_DEFAULT + 1), -EINVAL);
}

static void test_rma(void **state)
{
	static unsigned char home[1 << 20], loc[1 << 20];
	dsm_tp_mr_t *mr, *mr2;
	struct dsm_tp_event ev[4];
	uint64_t key;
	int cookie;

	(void)state;
	for (size_t k = 0; k < sizeof(home); k++)
		home[k] = (unsigned char)(k * 3);
	assert_int_equal(dsm_tp_mr_reg(tps[1], home, sizeof(home), &mr), 0);
	/* The transport picks the keys: distinct, in its own range (internal.h). */
	assert_int_equal(dsm_tp_mr_reg(tps[1], loc, sizeof(loc), &mr2), 0);
	key = mr->key;
	assert_true(key != mr2->key);
	assert_true(key >= DSM_TP_KEY_MR_BASE && key < 1ull << DSM_TP_KEY_SEG_SHIFT);
	assert_true(mr2->key >= DSM_TP_KEY_MR_BASE && mr2->key < 1ull << DSM_TP_KEY_SEG_SHIFT);
	assert_int_equal(dsm_tp_mr_dereg(tps[1], mr2), 0);
	for (size_t sz = 4096; sz <= sizeof(home); sz *= 2) {
		assert_int_equal(dsm_tp_read(tps[0], 1, loc, sz, NULL,
		                             dsm_tp_remote_addr(tps[1], mr, 0), key, &cookie),
		                 0);
		assert_int_equal(dsm_tp_poll(tps[0], ev, 4), 1);
		assert_int_equal(ev[0].type, DSM_TP_EV_RMA);
		assert_ptr_equal(ev[0].ctx, &cookie);
		assert_int_equal(ev[0].status, 0);
		assert_memory_equal(loc, home, sz);
	}
	memset(loc, 0x5a, 4096);
	assert_int_equal(dsm_tp_write(tps[0], 1, loc, 4096, NULL,
	                              dsm_tp_remote_addr(tps[1], mr, 8192), key, NULL),
	                 0);
	assert_int_equal(dsm_tp_poll(tps[0], ev, 4), 1);
	assert_int_equal(ev[0].status, 0);
	assert_memory_equal(home + 8192, loc, 4096);
	/* wrong key, out of bounds */
	dsm_tp_read(tps[0], 1, loc, 4096, NULL, dsm_tp_remote_addr(tps[1], mr, 0), key + 1, NULL);
	dsm_tp_read(tps[0], 1, loc, 4096, NULL, dsm_tp_remote_addr(tps[1], mr, sizeof(home) - 100),
	            key, NULL);
	assert_int_equal(dsm_tp_poll(tps[0], ev, 4), 2);
	assert_int_equal(ev[0].status, -EACCES);
	assert_int_equal(ev[1].status, -EACCES);
	assert_int_equal(dsm_tp_mr_dereg(tps[1], mr), 0);
}

static void test_segment(void **state)
{
	const size_t len = 64ull << 30, chunk = 2u << 20;
	unsigned char *b[2];
	dsm_tp_seg_t *seg[2];
	unsigned char loc[64];
	struct dsm_tp_event ev[4];

	(void)state;
	for (int i = 1; i >= 0; i--) {
		b[i] = mmap(NULL, len, PROT_READ | PROT_WRITE,
		            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (b[i] == MAP_FAILED)
			skip();
		assert_int_equal(dsm_tp_seg_create(tps[i], b[i], len, chunk, &seg[i]), 0);
	}
	assert_int_equal(dsm_tp_seg_registered(seg[1]), 0);
	memcpy(b[1] + (40ull << 30) + 10, "far away", 8);
	assert_int_equal(dsm_tp_seg_populate(seg[1], (40ull << 30) + 10, 8), 0);
	assert_int_equal(dsm_tp_seg_registered(seg[1]), chunk);
	assert_int_equal(stats(1).bytes_registered, chunk);
	/* an access that spans two chunks is refused */
	assert_int_equal(dsm_tp_seg_read(seg[0], 1, chunk - 4, loc, 8, NULL, NULL), -EINVAL);
	assert_int_equal(dsm_tp_seg_read(seg[0], 1, (40ull << 30) + 10, loc, 8, NULL, NULL), 0);
	assert_int_equal(dsm_tp_poll(tps[0], ev, 4), 1);
	assert_int_equal(ev[0].status, 0);
	assert_memory_equal(loc, "far away", 8);
	/* an unpopulated chunk is not reachable */
	assert_int_equal(dsm_tp_seg_read(seg[0], 1, 0, loc, 8, NULL, NULL), 0);
	assert_int_equal(dsm_tp_poll(tps[0], ev, 4), 1);
	assert_int_equal(ev[0].status, -EACCES);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(dsm_tp_seg_destroy(seg[i]), 0);
		munmap(b[i], len);
	}
	assert_int_equal(stats(1).bytes_registered, 0);
}

static void pump_none(dsm_tp_t *const *t)
{
	for (int q = 0; q < N; q++) {
		struct dsm_tp_event ev[16];
		if (t[q])
			assert_true(dsm_tp_poll(t[q], ev, 16) >= 0);
	}
}

/* RMA completions seen by pump_rma but not asked for yet. */
static struct {
	void *ctx;
	int status;
} rma_seen[16];
static int nrma_seen;

/* Waits (bounded) for rank @r's RMA event with @ctx; returns its status. */
static int pump_rma(dsm_tp_t *const *t, int r, void *ctx)
{
	for (int round = 0; round < 1000; round++) {
		for (int i = 0; i < nrma_seen; i++) {
			if (rma_seen[i].ctx == ctx) {
				int st = rma_seen[i].status;
				rma_seen[i] = rma_seen[--nrma_seen];
				return st;
			}
		}
		for (int q = 0; q < N; q++) {
			struct dsm_tp_event ev[16];
			int n = t[q] ? dsm_tp_poll(t[q], ev, 16) : 0;
			for (int k = 0; k < n; k++) {
				if (q == r && ev[k].type == DSM_TP_EV_RMA) {
					assert_true(nrma_seen < 16);
					rma_seen[nrma_seen].ctx = ev[k].ctx;
					rma_seen[nrma_seen++].status = ev[k].status;
				}
			}
		}
	}
	fail_msg("rank %d: RMA never completed", r);
	return -1;
}

/*
 * Keys chosen by the provider (verbs, efa): the reader does not know a
 * chunk's key and asks; the home registers the chunk on demand.
 */
static void test_segment_prov_key(void **state)
{
	const size_t len = 64ull << 30, chunk = 2u << 20, far = (40ull << 30) + 10;
	struct dsm_tp_attr attr = {.struct_size = sizeof(attr), .max_msg_type = MAX_TYPE};
	dsm_tp_loop_fabric_t *f;
	dsm_tp_t *t[N];
	dsm_tp_seg_t *seg[N];
	unsigned char *b[N], loc[2][16];
	int c1, c2;

	(void)state;
	assert_int_equal(dsm_tp_loop_fabric_create(N, &f), 0);
	dsm_tp_loop_set_prov_key(f, true);
	attr.impl_arg = f;
	for (int i = N - 1; i >= 0; i--) {
		attr.boot = &boots[i];
		assert_int_equal(dsm_tp_open(&dsm_tp_loop_ops, &attr, &t[i]), 0);
		assert_true(t[i]->prov_key);
		b[i] = mmap(NULL, len, PROT_READ | PROT_WRITE,
		            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (b[i] == MAP_FAILED)
			skip();
		assert_int_equal(dsm_tp_seg_create(t[i], b[i], len, chunk, &seg[i]), 0);
	}
	memcpy(b[1] + far, "far away", 8);
	memcpy(b[1] + far + 8, "and more", 8);
	/* two reads of a chunk the home never populated: one key request, both wait */
	uint64_t sent0 = 0;
	struct dsm_tp_stats s;
	assert_int_equal(dsm_tp_seg_read(seg[0], 1, far, loc[0], 8, NULL, &c1), 0);
	assert_int_equal(dsm_tp_seg_read(seg[0], 1, far + 8, loc[1], 8, NULL, &c2), 0);
	dsm_tp_stats(t[0], &s);
	assert_int_equal(s.msgs_sent, 1);
	assert_int_equal(s.pending, 2);
	assert_int_equal(dsm_tp_seg_registered(seg[1]), 0);
	assert_int_equal(pump_rma(t, 0, &c1), 0);
	assert_int_equal(pump_rma(t, 0, &c2), 0);
	assert_memory_equal(loc[0], "far away", 8);
	assert_memory_equal(loc[1], "and more", 8);
	assert_int_equal(dsm_tp_seg_registered(seg[1]), chunk);
	/* the key is known now: a write goes at once, no second request */
	dsm_tp_stats(t[0], &s);
	sent0 = s.msgs_sent;
	assert_int_equal(dsm_tp_seg_write(seg[0], 1, far, "replaced", 8, NULL, &c1), 0);
	dsm_tp_stats(t[0], &s);
	assert_int_equal(s.msgs_sent, sent0);
	assert_int_equal(pump_rma(t, 0, &c1), 0);
	assert_memory_equal(b[1] + far, "replaced", 8);
	/* a request for a chunk past the end is refused by the checks, not sent */
	assert_int_equal(dsm_tp_seg_read(seg[0], 1, len, loc[0], 8, NULL, &c1), -EINVAL);
	/* a malformed control message is counted and dropped */
	struct dsm_tp_wire_hdr h = {
	        DSM_TP_WIRE_MAGIC,    DSM_TP_WIRE_VERSION, DSM_TP_CTRL_TYPE, 3, 0,
	        (uint32_t)s.msgs_sent, dsm_tp_wire_key(t[0])};
	unsigned char raw[sizeof(h) + 3] = {0};
	memcpy(raw, &h, sizeof(h));
	dsm_tp_stats(t[1], &s);
	uint64_t dropped = s.msgs_dropped;
	assert_int_equal(dsm_tp_send_raw(t[0], 1, raw, sizeof(raw)), 0);
	for (int i = 0; i < 4; i++)
		pump_none(t);
	dsm_tp_stats(t[1], &s);
	assert_int_equal(s.msgs_dropped, dropped + 1);
	/* the home dies while a read waits for its key: the read fails, no hang */
	assert_int_equal(dsm_tp_seg_read(seg[0], 2, 4096, loc[0], 8, NULL, &c1), 0);
	dsm_tp_loop_kill(f, 2);
	dsm_tp_t *dead = t[2];
	t[2] = NULL; /* dead: never polled again (closed at the end, as its exit would) */
	assert_int_equal(pump_rma(t, 0, &c1), DSM_ERR_PEER_DEAD);
	dsm_tp_stats(t[0], &s);
	assert_int_equal(s.pending, 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(dsm_tp_seg_destroy(seg[i]), 0);
		munmap(b[i], len);
	}
	for (int i = 0; i < N; i++)
		if (i != 2)
			dsm_tp_close(t[i]);
	dsm_tp_close(dead);
	dsm_tp_loop_fabric_destroy(f);
}

static void test_sleep_wake(void **state)
{
	struct pollfd p = {.fd = dsm_tp_wait_fd(tps[2]), .events = POLLIN};

	(void)state;
	while (pump(NULL, NULL))
		;
	assert_int_equal(dsm_tp_sleep_prepare(tps[2]), 0);
	assert_int_equal(poll(&p, 1, 0), 0); /* nothing due: it would sleep */
	assert_int_equal(dsm_tp_send(tps[0], 2, 1, "wake", 4), 0);
	assert_int_equal(poll(&p, 1, 1000), 1); /* the doorbell rang */
	dsm_tp_sleep_end(tps[2]);
	assert_int_equal(poll(&p, 1, 0), 0);
	/* Work pending: do not sleep. */
	assert_int_equal(dsm_tp_send(tps[0], 2, 1, "more", 4), 0);
	assert_int_equal(dsm_tp_sleep_prepare(tps[2]), -EAGAIN);
	while (pump(NULL, NULL))
		;
}

static void test_peer_death(void **state)
{
	struct pollfd p = {.fd = dsm_tp_wait_fd(tps[0]), .events = POLLIN};
	struct dsm_tp_event ev[4];

	(void)state;
	assert_int_equal(dsm_tp_sleep_prepare(tps[0]), 0);
	dsm_tp_loop_kill(fab, 2);
	assert_int_equal(poll(&p, 1, 1000), 1);
	dsm_tp_sleep_end(tps[0]);
	assert_int_equal(dsm_tp_poll(tps[0], ev, 4), 1);
	assert_int_equal(ev[0].type, DSM_TP_EV_PEER_DEAD);
	assert_int_equal(ev[0].peer, 2);
	assert_int_equal(dsm_tp_send(tps[0], 2, 1, "x", 1), DSM_ERR_PEER_DEAD);
	assert_int_equal(dsm_tp_read(tps[0], 2, ev, 8, NULL, 0, 0, NULL), DSM_ERR_PEER_DEAD);
	assert_int_equal(dsm_tp_poll(tps[0], ev, 4), 0); /* reported once */
}

static void test_ops_tables(void **state)
{
	struct dsm_tp_ops holey = dsm_tp_loop_ops;
	struct dsm_tp_attr attr = {
	        .struct_size = sizeof(attr), .boot = &boots[0], .max_msg_type = 1};
	dsm_tp_t *tp = NULL;

	(void)state;
	/* Both implementations fill every slot... */
	const void *const *slots = (const void *const *)&dsm_tp_loop_ops.open;
	size_t n = (sizeof(struct dsm_tp_ops) - offsetof(struct dsm_tp_ops, open)) / sizeof(void *);
	for (size_t i = 0; i < n; i++) {
		assert_non_null(slots[i]);
		assert_non_null(((const void *const *)&dsm_tp_ofi_ops.open)[i]);
	}
	/* ...and a table with an empty one is refused before it is used. */
	holey.describe = NULL;
	assert_int_equal(dsm_tp_open(&holey, &attr, &tp), -EINVAL);
	assert_null(tp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_reorder_and_duplicates),
	        cmocka_unit_test(test_fifo_through_queue),
	        cmocka_unit_test(test_flood),
	        cmocka_unit_test(test_malformed),
	        cmocka_unit_test(test_rma),
	        cmocka_unit_test(test_segment),
	        cmocka_unit_test(test_segment_prov_key),
	        cmocka_unit_test(test_sleep_wake),
	        cmocka_unit_test(test_peer_death),
	        cmocka_unit_test(test_ops_tables),
	};

	return cmocka_run_group_tests_name("loopback", tests, setup, teardown);
}
