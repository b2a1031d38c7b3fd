/* SPDX-License-Identifier: MIT */
/*
 * Collectives by dissemination: in round k each rank sends to rank + 2^k and
 * waits for rank - 2^k, ceil(log2(ranks)) rounds, so a rank is through once
 * every rank has entered, having sent one message per round (one each way for
 * two ranks). Each message carries what its sender knows of the calls: the
 * lowest rank it has heard of with that rank's call, and the lowest whose
 * call differs from it. After the last round every rank has heard of every
 * rank, so all of them reach the same verdict: DSM_ERR_MISMATCH naming rank
 * 0's call and the first rank that made another, or 0.
 */
#include "runtime/coll.h"

#include <dsm.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "common/time.h"
#include "runtime/decode.h"
#include "runtime/fatal.h"
#include "runtime/loop.h"
#include "runtime/msg.h"
#include "runtime/mutex.h"
#include "runtime/mw.h"
#include "runtime/rt.h"

/* The answer a collective's caller gets. */
struct verdict {
	int status; /* 0 or DSM_ERR_MISMATCH */
	struct dsm_rt_coll_sum sum;
};

static const char *coll_name(uint32_t kind)
{
	switch (kind) {
	case DSM_RT_COLL_BARRIER:
		return "dsm_barrier";
	case DSM_RT_COLL_ALL_ALLOC:
		return "dsm_all_alloc";
	case DSM_RT_COLL_ALL_ALLOC_MW:
		return "dsm_all_alloc_mw";
	case DSM_RT_COLL_ALL_FREE:
		return "dsm_all_free";
	case DSM_RT_COLL_FINALIZE:
		return "dsm_finalize";
	case DSM_RT_COLL_CHECKPOINT:
		return "dsm_checkpoint";
	case DSM_RT_COLL_CKPT_STEP:
		return "dsm_checkpoint's step";
	default:
		return "an unknown collective";
	}
}

static void coll_describe(const struct dsm_rt_coll_call *m, char *buf, size_t n)
{
	switch (m->kind) {
	case DSM_RT_COLL_ALL_ALLOC:
	case DSM_RT_COLL_ALL_ALLOC_MW:
		snprintf(buf, n, "%s(size=%" PRIu64 ", dist=%" PRIu64 ")", coll_name(m->kind),
		         m->args[0], m->args[1]);
		break;
	case DSM_RT_COLL_ALL_FREE:
		snprintf(buf, n, "dsm_all_free(%#" PRIx64 ")", m->args[0]);
		break;
	case DSM_RT_COLL_CHECKPOINT:
		snprintf(buf, n, "dsm_checkpoint(dir hash %#" PRIx64 ", root %#" PRIx64 ")",
		         m->args[0], m->args[1]);
		break;
	case DSM_RT_COLL_CKPT_STEP:
		snprintf(buf, n, "dsm_checkpoint's step %" PRIu64 " (status %d)", m->args[0],
		         (int)m->args[1]);
		break;
	default:
		snprintf(buf, n, "%s()", coll_name(m->kind));
	}
}

static bool same_call(const struct dsm_rt_coll_call *a, const struct dsm_rt_coll_call *b)
{
	return a->kind == b->kind && a->args[0] == b->args[0] && a->args[1] == b->args[1];
}

static void take_bad(struct dsm_rt_coll_sum *s, uint32_t rank, const struct dsm_rt_coll_call *c)
{
	if (rank != DSM_RT_COLL_NO_RANK &&
	    (s->bad_rank == DSM_RT_COLL_NO_RANK || rank < s->bad_rank)) {
		s->bad_rank = rank;
		s->bad = *c;
	}
}

/*
 * What @s and @t know together: the lower reference, and the lowest rank of either whose
 * call differs from it. On @t's side that is its reference if the references differ (the
 * lowest rank @t has heard of), else its own first differing rank. Exact for overlapping
 * sets of ranks too, which the dissemination's are.
 */
static void sum_merge(struct dsm_rt_coll_sum *s, const struct dsm_rt_coll_sum *t)
{
	const struct dsm_rt_coll_sum *lo = t->ref_rank < s->ref_rank ? t : s;
	const struct dsm_rt_coll_sum *hi = lo == t ? s : t;
	struct dsm_rt_coll_sum r = {
	        .ref_rank = lo->ref_rank, .ref = lo->ref, .bad_rank = DSM_RT_COLL_NO_RANK};

	take_bad(&r, lo->bad_rank, &lo->bad);
	if (!same_call(&hi->ref, &r.ref))
		take_bad(&r, hi->ref_rank, &hi->ref);
	else
		take_bad(&r, hi->bad_rank, &hi->bad);
	*s = r;
}

static void send_round(struct dsm_rt *rt)
{
	struct dsm_rt_coll *c = &rt->coll;
	struct dsm_rt_coll_round m = {.seq = c->done + 1, .round = c->round, .sum = c->sum};
	int to = (int)(((unsigned)rt->rank + (1u << c->round)) % (unsigned)rt->nranks);

	int ret = dsm_rt_send(rt, to, DSM_RT_MSG_COLL_ROUND, &m, sizeof(m));

	/* A dead peer ends the rank through the transport's event; any other failure would
	 * leave every rank in the collective waiting for this round. */
	if (ret < 0 && ret != DSM_ERR_PEER_DEAD)
		dsm_rt_fatal(rt, "sending round %u of collective %llu to rank %d failed: %s",
		             (unsigned)c->round, (unsigned long long)m.seq, to, dsm_err_str(ret));
}

/* This rank is through collective done + 1: its caller gets the verdict. */
static void finish(struct dsm_rt *rt)
{
	struct dsm_rt_coll *c = &rt->coll;
	uint64_t seq = ++c->done;
	struct dsm_rt_req *r = dsm_rt_req_take(rt, DSM_RT_MSG_COLL, seq);
	struct verdict v = {.status = c->sum.bad_rank == DSM_RT_COLL_NO_RANK ? 0 : DSM_ERR_MISMATCH,
	                    .sum = c->sum};

	c->done_sum = c->sum; /* what a coordinator after a death may need from us */

	c->active = false;
	if (r == NULL) {
		DSM_LOG(DSM_LOG_ERROR, "internal error: collective #%" PRIu64 " has no caller",
		        seq);
		return;
	}
	memcpy(r->ctx, &v, sizeof(v));
	dsm_rt_req_complete(r, v.status);
}

/* Takes in the rounds that have come, in order, sending each next one. */
static void advance(struct dsm_rt *rt)
{
	struct dsm_rt_coll *c = &rt->coll;

	while (c->active) {
		uint64_t seq = c->done + 1;
		__typeof__(c->early[0]) *e = &c->early[seq & 1];

		if (c->round == c->rounds) {
			finish(rt);
			return;
		}
		if (e->seq != seq || !(e->got & (1u << c->round)))
			return;
		e->got &= ~(1u << c->round);
		sum_merge(&c->sum, &e->sum[c->round]);
		if (++c->round < c->rounds)
			send_round(rt);
	}
}

/* ---- after a death: collectives through a coordinator (wire.h, struct dsm_rt_coll_sync) -- */

static bool is_dead(struct dsm_rt *rt, int r)
{
	return atomic_load_explicit(&rt->death.dead[r], memory_order_relaxed) != 0;
}

int dsm_rt_coll_coordinator(struct dsm_rt *rt)
{
	for (int r = 0; r < rt->nranks; r++)
		if (r == rt->rank || !is_dead(rt, r))
			return r;
	return rt->rank;
}

/* Tells the coordinator where this rank is. */
static void sync_send(struct dsm_rt *rt)
{
	struct dsm_rt_coll *c = &rt->coll;
	struct dsm_rt_coll_sync m = {
	        .seq = c->active ? c->done + 1 : 0, .done = c->done, .done_sum = c->done_sum};
	int to = dsm_rt_coll_coordinator(rt), ret;

	if (c->active)
		m.call = c->call;
	ret = dsm_rt_send(rt, to, DSM_RT_MSG_COLL_SYNC, &m, sizeof(m));
	if (ret < 0 && ret != DSM_ERR_PEER_DEAD)
		dsm_rt_fatal(rt, "telling rank %d where this rank's collectives are failed: %s", to,
		             dsm_err_str(ret));
}

/* At the coordinator: answers the collective every live rank has entered, or that one has
 * finished already (before the death: its verdict is everyone's). */
static void coord_check(struct dsm_rt *rt)
{
	struct dsm_rt_coll *c = &rt->coll;
	uint64_t s = 0;
	bool all = true;

	if (dsm_rt_coll_coordinator(rt) != rt->rank)
		return;
	for (int r = 0; r < rt->nranks; r++) {
		struct dsm_rt_coll_peer *p = &c->peers[r];

		if (!is_dead(rt, r) && p->seq > p->done && (s == 0 || p->seq < s))
			s = p->seq;
	}
	if (s == 0)
		return; /* nobody waits */
	struct dsm_rt_coll_release rel = {.seq = s};

	if (c->known_seq == s) {
		rel.sum = c->known_sum;
	} else {
		for (int r = 0; r < rt->nranks && all; r++)
			all = is_dead(rt, r) || c->peers[r].seq >= s || c->peers[r].done >= s;
		if (!all)
			return;
		rel.sum = (struct dsm_rt_coll_sum){.ref_rank = DSM_RT_COLL_NO_RANK,
		                                   .bad_rank = DSM_RT_COLL_NO_RANK};
		for (int r = 0; r < rt->nranks; r++) {
			const struct dsm_rt_coll_peer *p = &c->peers[r];

			if (is_dead(rt, r) || p->seq != s)
				continue;
			if (rel.sum.ref_rank == DSM_RT_COLL_NO_RANK) {
				rel.sum.ref_rank = (uint32_t)r;
				rel.sum.ref = p->call;
			} else if (!same_call(&p->call, &rel.sum.ref)) {
				take_bad(&rel.sum, (uint32_t)r, &p->call);
			}
		}
		c->known_seq = s;
		c->known_sum = rel.sum;
	}
	for (int r = 0; r < rt->nranks; r++) {
		struct dsm_rt_coll_peer *p = &c->peers[r];
		int ret;

		if (is_dead(rt, r) || p->seq != s || p->done >= s)
			continue;
		p->done = s;
		ret = dsm_rt_send(rt, r, DSM_RT_MSG_COLL_RELEASE, &rel, sizeof(rel));
		if (ret < 0 && ret != DSM_ERR_PEER_DEAD)
			dsm_rt_fatal(rt, "releasing rank %d from collective %llu failed: %s", r,
			             (unsigned long long)s, dsm_err_str(ret));
	}
}

static void on_sync(struct dsm_rt *rt, int src, const void *data, size_t len)
{
	struct dsm_rt_coll *c = &rt->coll;
	struct dsm_rt_coll_sync m;
	struct dsm_rt_coll_peer *p;

	if (dsm_rt_decode_coll_sync(data, len, (unsigned)rt->nranks, &m) < 0 || !c->coordinated) {
		dsm_rt_msg_malformed(rt, src, DSM_RT_MSG_COLL_SYNC, len);
		return;
	}
	p = &c->peers[src];
	if (m.done > p->done)
		p->done = m.done;
	if (m.seq > p->seq) {
		p->seq = m.seq;
		p->call = m.call;
	}
	if (m.done && m.done > c->known_seq) {
		c->known_seq = m.done;
		c->known_sum = m.done_sum;
	}
	coord_check(rt);
}

static void on_release(struct dsm_rt *rt, int src, const void *data, size_t len)
{
	struct dsm_rt_coll *c = &rt->coll;
	struct dsm_rt_coll_release m;

	memcpy(&m, data, sizeof(m));
	if (!c->coordinated) {
		dsm_rt_msg_malformed(rt, src, DSM_RT_MSG_COLL_RELEASE, len);
		return;
	}
	if (!c->active || m.seq != c->done + 1)
		return; /* answered already (by another coordinator, before a death) */
	c->sum = m.sum;
	finish(rt);
}

void dsm_rt_coll_peer_dead(struct dsm_rt *rt, int dead)
{
	struct dsm_rt_coll *c = &rt->coll;

	(void)dead;
	if (!c->coordinated) {
		c->peers = calloc((size_t)rt->nranks, sizeof(*c->peers));
		if (c->peers == NULL)
			dsm_rt_fatal(rt, "out of memory for the collectives after a death");
		c->coordinated = true;
		DSM_LOG(DSM_LOG_INFO,
		        "collectives go through the lowest live rank (%d) from now on",
		        dsm_rt_coll_coordinator(rt));
	}
	/* The coordinator may be new, or may wait for the dead rank no longer. */
	sync_send(rt);
	coord_check(rt);
}

/* This rank enters a collective (a request of its own thread, through msg.c). */
static void on_enter(struct dsm_rt *rt, int src, const void *data, size_t len)
{
	struct dsm_rt_coll *c = &rt->coll;
	struct dsm_rt_coll_msg m;

	memcpy(&m, data, sizeof(m));
	if (src != rt->rank || c->active || m.seq != c->done + 1) {
		/* Another rank cannot send this, and this rank numbers its own calls. */
		dsm_rt_msg_malformed(rt, src, DSM_RT_MSG_COLL, len);
		return;
	}
	DSM_LOG(DSM_LOG_DEBUG, "collective #%" PRIu64 " (%s) entered", m.seq,
	        coll_name(m.call.kind));
	c->active = true;
	c->round = 0;
	c->call = m.call;
	c->sum = (struct dsm_rt_coll_sum){
	        .ref_rank = (uint32_t)rt->rank, .ref = m.call, .bad_rank = DSM_RT_COLL_NO_RANK};
	if (c->coordinated) {
		sync_send(rt);
		return;
	}
	if (c->rounds > 0)
		send_round(rt);
	advance(rt);
}

/* Round @round of a collective from @src, which must be this rank's partner in it. */
static void on_round(struct dsm_rt *rt, int src, const void *data, size_t len)
{
	struct dsm_rt_coll *c = &rt->coll;
	struct dsm_rt_coll_round m;
	unsigned from;
	__typeof__(c->early[0]) *e;

	if (dsm_rt_decode_coll_round(data, len, (unsigned)rt->nranks, &m) < 0) {
		dsm_rt_msg_malformed(rt, src, DSM_RT_MSG_COLL_ROUND, len);
		return;
	}
	if (c->coordinated)
		return; /* the dissemination of before a death: the coordinator answers now */
	from = (unsigned)(((uint64_t)rt->rank + (uint64_t)rt->nranks -
	                   ((1ull << (m.round < 32 ? m.round : 31)) % (uint64_t)rt->nranks)) %
	                  (uint64_t)rt->nranks);
	if (m.round >= c->rounds || (unsigned)src != from ||
	    (m.seq != c->done + 1 && m.seq != c->done + 2)) {
		dsm_rt_msg_malformed(rt, src, DSM_RT_MSG_COLL_ROUND, len);
		return;
	}
	e = &c->early[m.seq & 1];
	if (e->seq != m.seq) {
		e->seq = m.seq;
		e->got = 0;
	}
	if (e->got & (1u << m.round)) {
		dsm_rt_msg_malformed(rt, src, DSM_RT_MSG_COLL_ROUND, len); /* a duplicate */
		return;
	}
	e->sum[m.round] = m.sum;
	e->got |= 1u << m.round;
	advance(rt);
}

int dsm_rt_coll_init(struct dsm_rt *rt)
{
	pthread_mutex_init(&rt->coll.lock, NULL);
	while ((1u << rt->coll.rounds) < (unsigned)rt->nranks)
		rt->coll.rounds++;
	dsm_rt_msg_on(rt, DSM_RT_MSG_COLL, sizeof(struct dsm_rt_coll_msg), on_enter);
	dsm_rt_msg_on(rt, DSM_RT_MSG_COLL_ROUND, sizeof(struct dsm_rt_coll_round), on_round);
	dsm_rt_msg_on(rt, DSM_RT_MSG_COLL_SYNC, sizeof(struct dsm_rt_coll_sync), on_sync);
	dsm_rt_msg_on(rt, DSM_RT_MSG_COLL_RELEASE, sizeof(struct dsm_rt_coll_release), on_release);
	return 0;
}

void dsm_rt_coll_fini(struct dsm_rt *rt)
{
	free(rt->coll.peers);
	rt->coll.peers = NULL;
	pthread_mutex_destroy(&rt->coll.lock);
}

int dsm_rt_collective(struct dsm_rt *rt, enum dsm_rt_coll_kind kind, uint64_t a0, uint64_t a1)
{
	struct verdict v = {0};
	struct dsm_rt_req req = {.type = DSM_RT_MSG_COLL,
	                         .target = rt->rank,
	                         .len = sizeof(req.u.coll),
	                         .answer = DSM_RT_MSG_COLL,
	                         .ctx = &v};
	int ret;

	/* Our one-way unlocks done first: after a barrier their mutexes are free. */
	ret = dsm_rt_mutex_fence(rt);
	if (ret < 0)
		DSM_LOG(DSM_LOG_WARN, "%s: a home did not confirm an earlier unlock: %s",
		        coll_name(kind), dsm_err_str(ret));
	/* One collective at a time per rank: they are numbered in call order. */
	pthread_mutex_lock(&rt->coll.lock);
	req.u.coll = (struct dsm_rt_coll_msg){.seq = ++rt->coll.seq,
	                                      .call = {.kind = kind, .args = {a0, a1}}};
	req.key = req.u.coll.seq;
	ret = dsm_rt_submit(rt, &req);
	pthread_mutex_unlock(&rt->coll.lock);

	if (ret == DSM_ERR_MISMATCH) {
		char mine[96], ref[96], bad[96];

		coll_describe(&req.u.coll.call, mine, sizeof(mine));
		coll_describe(&v.sum.ref, ref, sizeof(ref));
		coll_describe(&v.sum.bad, bad, sizeof(bad));
		DSM_LOG(DSM_LOG_ERROR,
		        "collective #%" PRIu64 " does not match across ranks: rank %u called %s, "
		        "rank %u called %s (this rank: %s); every rank fails it",
		        req.u.coll.seq, v.sum.ref_rank, ref, v.sum.bad_rank, bad, mine);
	} else if (ret < 0) {
		DSM_LOG(DSM_LOG_ERROR, "%s failed: %s", coll_name(kind), dsm_err_str(ret));
	}
	return ret;
}

DSM_EXPORT void dsm_barrier(void)
{
	struct dsm_rt *rt = dsm_rt_get("dsm_barrier");
	uint64_t t0, ns;

	if (rt == NULL)
		return;
	t0 = dsm_now_ns();
	/* A release, the barrier, an acquire: multiple-writer memory is coherent after it. */
	dsm_rt_mw_release(rt);
	if (dsm_rt_collective(rt, DSM_RT_COLL_BARRIER, 0, 0) < 0)
		return; /* said by dsm_rt_collective; not counted */
	dsm_rt_mw_acquire(rt);
	ns = dsm_now_ns() - t0;
	DSM_RT_COUNT(rt, barriers, 1);
	DSM_RT_COUNT(rt, barrier_ns, ns);
	/* The longest: a maximum kept with compare-and-swap. */
	for (uint_fast64_t m =
	             atomic_load_explicit(&rt->stats.cnt.barrier_ns_max, memory_order_relaxed);
	     ns > m &&
	     !atomic_compare_exchange_weak_explicit(&rt->stats.cnt.barrier_ns_max, &m, ns,
	                                            memory_order_relaxed, memory_order_relaxed);)
		;
}
