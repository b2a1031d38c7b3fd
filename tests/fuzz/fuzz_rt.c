/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the runtime's decoders of messages from other ranks (runtime/decode.h),
 * the ones its handlers call before they act. The input's first FUZZ_RT_HEAD bytes pick the
 * message type and the parameters a decoder takes (tests/fuzz/fuzz_rt.h); the rest is the
 * message. Whatever a decoder accepts is walked as its handler walks it, reading every byte
 * the view reports (a report past the message is an ASan error), and checked: the parts it
 * reports add up to the message's length, every field it vouches for is in range, and a
 * message re-encoded from the view (where the runtime has an encoder) is the same bytes.
 * What a handler checks beyond its decoder (the line is homed here, epochs, the sequence of
 * a collective) needs the runtime's state and is not here.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coherence/diff.h"
#include "fuzz_rt.h"
#include "runtime/decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			abort();                                                                   \
	} while (0)

static volatile uint8_t sink;

/* Reads @n bytes at @p: ASan reports any outside the message. */
static void touch(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint8_t x = 0;

	for (size_t i = 0; i < n; i++)
		x ^= b[i];
	sink ^= x;
}

/* Whether [p, p + n) lies in [msg, msg + len). */
static int inside(const void *msg, size_t len, const void *p, size_t n)
{
	uintptr_t m = (uintptr_t)msg, q = (uintptr_t)p;

	return q >= m && n <= len && q - m <= len - n;
}

static void coh_batch(const struct fuzz_rt_params *f, const uint8_t *msg, size_t len)
{
	struct dsm_rt_coh_batch_view v;
	dsm_coh_msg_t m, *all;
	const void *line;
	unsigned n = 0, ndata = 0;
	uint8_t *again;

	if (dsm_rt_decode_coh_batch(msg, len, f->ls, &v) < 0)
		return;
	all = malloc(v.n * sizeof(*all));
	again = malloc(len);
	CHECK(all && again);
	while (dsm_rt_coh_batch_next(&v, &m, &line)) {
		CHECK(n < v.n);
		CHECK((line != NULL) == ((m.flags & DSM_COH_MSGF_DATA) != 0));
		if (line) {
			CHECK(inside(msg, len, line, f->ls));
			touch(line, f->ls);
			/* The lines come in the order of the messages that carry them. */
			CHECK((const uint8_t *)line ==
			      msg + sizeof(struct dsm_rt_coh_batch) + (size_t)ndata * f->ls);
			ndata++;
		}
		if (dsm_rt_check_coh_msg(&m, f->src, f->nlines) == 0)
			CHECK(m.src == f->src && m.type && m.type < DSM_COH_MSG_NTYPES &&
			      m.line < f->nlines);
		all[n++] = m;
	}
	CHECK(n == v.n && ndata == v.ndata && n <= DSM_RT_GATHER_MSGS);
	CHECK((size_t)ndata * f->ls <= dsm_rt_coh_batch_cap(f->ls));
	CHECK(sizeof(struct dsm_rt_coh_batch) + (size_t)ndata * f->ls + n * sizeof(m) == len);
	/* msg.c's encoder, from what the decoder reported: the same bytes. */
	memcpy(again + sizeof(struct dsm_rt_coh_batch), msg + sizeof(struct dsm_rt_coh_batch),
	       (size_t)ndata * f->ls);
	CHECK(dsm_rt_encode_coh_batch(again, f->ls, all, n, ndata) == len);
	CHECK(memcmp(again, msg, len) == 0);
	free(all);
	free(again);
}

static void coh(const struct fuzz_rt_params *f, const uint8_t *msg, size_t len)
{
	const void *line;
	dsm_coh_msg_t m;

	if (dsm_rt_decode_coh(msg, len, f->ls, &m, &line) < 0)
		return;
	CHECK(len == sizeof(m) + (line ? f->ls : 0));
	CHECK((line != NULL) == ((m.flags & DSM_COH_MSGF_DATA) != 0));
	CHECK(memcmp(&m, msg, sizeof(m)) == 0);
	if (line) {
		CHECK(inside(msg, len, line, f->ls));
		touch(line, f->ls);
	}
	if (dsm_rt_check_coh_msg(&m, f->src, f->nlines) == 0)
		CHECK(m.src == f->src && m.type && m.type < DSM_COH_MSG_NTYPES &&
		      m.line < f->nlines);
}

static void mw_get(const struct fuzz_rt_params *f, const uint8_t *msg, size_t len)
{
	uint64_t lines[DSM_RT_MW_GET_MAX];
	uint8_t again[sizeof(struct dsm_rt_mw_get) + sizeof(lines)];
	struct dsm_rt_mw_get_view v;

	if (dsm_rt_decode_mw_get(msg, len, f->max_get, &v) < 0)
		return;
	CHECK(v.n >= 1 && v.n <= f->max_get && v.n <= DSM_RT_MW_GET_MAX);
	CHECK(len == sizeof(struct dsm_rt_mw_get) + v.n * sizeof(uint64_t));
	CHECK(inside(msg, len, v.ids, v.n * sizeof(uint64_t)));
	for (uint32_t i = 0; i < v.n; i++)
		lines[i] = dsm_rt_mw_get_line(&v, i);
	CHECK(dsm_rt_encode_mw_get(again, lines, v.n, v.epoch) == len);
	CHECK(memcmp(again, msg, len) == 0);
}

static void mw_data(const struct fuzz_rt_params *f, const uint8_t *msg, size_t len)
{
	struct dsm_rt_mw_data_view v;
	uint8_t *again;
	size_t at;

	if (dsm_rt_decode_mw_data(msg, len, f->ls, f->max_get, &v) < 0)
		return;
	CHECK(v.n >= 1 && v.n <= f->max_get && v.n <= DSM_RT_MW_GET_MAX);
	CHECK(len == sizeof(struct dsm_rt_mw_data) + v.n * (sizeof(uint64_t) + f->ls));
	again = malloc(len);
	CHECK(again);
	at = dsm_rt_encode_mw_data_head(again, v.n, v.epoch, v.ids);
	for (uint32_t i = 0; i < v.n; i++) {
		const void *b = dsm_rt_mw_data_bytes(&v, i);
		uint64_t line = dsm_rt_mw_data_line(&v, i);

		CHECK(memcmp(again + sizeof(struct dsm_rt_mw_data) + i * sizeof(line), &line,
		             sizeof(line)) == 0);
		CHECK(inside(msg, len, b, f->ls));
		touch(b, f->ls);
		memcpy(again + at + i * f->ls, b, f->ls);
	}
	CHECK(memcmp(again, msg, len) == 0);
	free(again);
}

/* Every record's diff applies (the decoder checked it as the handler's dsm_coh_diff_apply
 * will), and the records and their diffs are the whole message. */
static void mw_diff(const struct fuzz_rt_params *f, const uint8_t *msg, size_t len)
{
	struct dsm_rt_mw_diff_view v;
	size_t sum = sizeof(struct dsm_rt_mw_diff);
	uint32_t n = 0, dlen;
	const void *diff;
	uint64_t line;
	uint8_t *home;

	if (dsm_rt_decode_mw_diff(msg, len, f->ls, &v) < 0)
		return;
	home = calloc(1, f->ls);
	CHECK(home);
	while (dsm_rt_mw_diff_next(&v, &line, &diff, &dlen)) {
		CHECK(n++ < v.n);
		CHECK(inside(msg, len, diff, dlen));
		touch(diff, dlen);
		CHECK(dsm_coh_diff_apply(home, f->ls, diff, dlen) == 0);
		sum += sizeof(struct dsm_rt_mw_rec) + dlen;
	}
	CHECK(n == v.n && sum == len);
	free(home);
}

static void fixed(const struct fuzz_rt_params *f, unsigned type, const uint8_t *msg, size_t len)
{
	union {
		struct dsm_rt_dead_msg dead;
		struct dsm_rt_freed_msg freed;
		struct dsm_rt_coll_round round;
		struct dsm_rt_coll_sync sync;
		struct dsm_rt_stats_msg stats;
		struct dsm_rt_mw_msg mw;
		uint8_t any[512];
	} u;
	size_t want = dsm_rt_wire_size(type);

	CHECK(want <= sizeof(u));
	if (dsm_rt_decode_fixed(type, msg, len, &u) == 0)
		CHECK(len == want && memcmp(&u, msg, len) == 0);
	else
		CHECK(len != want);
	switch (type) {
	case DSM_RT_MSG_MW:
		if (dsm_rt_decode_mw(msg, len, &u.mw) == 0)
			CHECK(u.mw.op >= DSM_RT_MW_ACK && u.mw.op <= DSM_RT_MW_ACQUIRE);
		break;
	case DSM_RT_MSG_DEAD:
	case DSM_RT_MSG_ADOPTED:
		if (dsm_rt_decode_dead(type, msg, len, f->nranks, f->src, &u.dead) == 0)
			CHECK(u.dead.rank < f->nranks && (int)u.dead.rank != f->src);
		break;
	case DSM_RT_MSG_FREED:
	case DSM_RT_MSG_UNALLOC:
		if (dsm_rt_decode_freed(type, msg, len, f->nlines, &u.freed) == 0)
			CHECK(u.freed.n && u.freed.first < f->nlines &&
			      u.freed.first + u.freed.n > u.freed.first &&
			      u.freed.first + u.freed.n <= f->nlines &&
			      !(u.freed.flags & ~(uint32_t)DSM_RT_FREED_HOME));
		break;
	case DSM_RT_MSG_COLL_ROUND:
		if (dsm_rt_decode_coll_round(msg, len, f->nranks, &u.round) == 0)
			CHECK(u.round.sum.ref_rank < f->nranks &&
			      (u.round.sum.bad_rank < f->nranks ||
			       u.round.sum.bad_rank == DSM_RT_COLL_NO_RANK));
		break;
	case DSM_RT_MSG_COLL_SYNC:
		if (dsm_rt_decode_coll_sync(msg, len, f->nranks, &u.sync) == 0)
			CHECK((!u.sync.seq || u.sync.seq == u.sync.done + 1) &&
			      (!u.sync.done || u.sync.done_sum.ref_rank < f->nranks));
		break;
	case DSM_RT_MSG_STATS:
		if (dsm_rt_decode_stats(msg, len, &u.stats) == 0)
			CHECK(u.stats.s.struct_size == sizeof(u.stats.s));
		break;
	default:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_rt_params f;
	unsigned type;
	uint8_t *msg;
	size_t len;

	if (size < FUZZ_RT_HEAD)
		return 0;
	fuzz_rt_params(data, &f);
	type = f.type;
	len = size - FUZZ_RT_HEAD;
	/* The message alone in a buffer of its own size: a byte read past it is ASan's. */
	msg = malloc(len ? len : 1);
	CHECK(msg);
	memcpy(msg, data + FUZZ_RT_HEAD, len);

	/* dsm_rt_msg_dispatch's check: the type and, for a fixed-size one, the length. */
	if (dsm_rt_decode_frame(type, len) == 0)
		CHECK(type >= 1 && type <= DSM_RT_MSG_MAX &&
		      (dsm_rt_wire_size(type) == 0 || dsm_rt_wire_size(type) == len));
	else
		CHECK(type < 1 || type > DSM_RT_MSG_MAX ||
		      (dsm_rt_wire_size(type) && dsm_rt_wire_size(type) != len));

	switch (type) {
	case DSM_RT_MSG_COH:
		coh(&f, msg, len);
		break;
	case DSM_RT_MSG_COH_BATCH:
		coh_batch(&f, msg, len);
		break;
	case DSM_RT_MSG_MW_GET:
		mw_get(&f, msg, len);
		break;
	case DSM_RT_MSG_MW_DATA:
		mw_data(&f, msg, len);
		break;
	case DSM_RT_MSG_MW_DIFF:
		mw_diff(&f, msg, len);
		break;
	default:
		if (type >= 1 && type <= DSM_RT_MSG_MAX)
			fixed(&f, type, msg, len);
	}
	free(msg);
	return 0;
}
