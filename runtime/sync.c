/* SPDX-License-Identifier: MIT */
/*
 * Synchronization over the transport, run on the event loops: collectives
 * (each carries its sequence number, kind and arguments; rank 0 checks that
 * every rank made the same call), mutexes (a FIFO queue at the home of the
 * mutex's address, so locking never moves the page that holds it) and frees
 * of dsm_alloc memory sent to the rank whose slice holds it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/log.h"
#include "runtime/rt.h"

/* ---- collectives -------------------------------------------------------------------------- */

static const char *coll_name(uint32_t kind)
{
	switch (kind) {
	case DSM_RT_COLL_BARRIER:
		return "dsm_barrier";
	case DSM_RT_COLL_ALL_ALLOC:
		return "dsm_all_alloc";
	case DSM_RT_COLL_ALL_FREE:
		return "dsm_all_free";
	case DSM_RT_COLL_FINALIZE:
		return "dsm_finalize";
	default:
		return "an unknown collective";
	}
}

static void coll_describe(const struct dsm_rt_coll_msg *m, char *buf, size_t n)
{
	switch (m->kind) {
	case DSM_RT_COLL_ALL_ALLOC:
		snprintf(buf, n, "dsm_all_alloc(size=%" PRIu64 ", dist=%" PRIu64 ")", m->args[0],
		         m->args[1]);
		break;
	case DSM_RT_COLL_ALL_FREE:
		snprintf(buf, n, "dsm_all_free(%#" PRIx64 ")", m->args[0]);
		break;
	default:
		snprintf(buf, n, "%s()", coll_name(m->kind));
	}
}

void dsm_rt_coll_arrive(struct dsm_rt *rt, int src, const struct dsm_rt_coll_msg *m)
{
	struct dsm_rt_coll_done d = {0};

	if (rt->rank != 0 || src < 0 || src >= rt->nranks) {
		atomic_fetch_add(&rt->cnt.msgs_dropped, 1);
		return;
	}
	if (rt->coll_count == 0)
		rt->coll_cur = m->seq;
	if (m->seq != rt->coll_cur || rt->coll_arrived[src]) {
		/* Every rank waits for the verdict of its call before the next: this is a bug. */
		atomic_fetch_add(&rt->cnt.msgs_dropped, 1);
		DSM_LOG(DSM_LOG_ERROR,
		        "rank %d sent collective #%" PRIu64 " while #%" PRIu64 " is open; dropped",
		        src, m->seq, rt->coll_cur);
		return;
	}
	DSM_LOG(DSM_LOG_DEBUG, "collective #%" PRIu64 " (%s) from rank %d", m->seq,
	        coll_name(m->kind), src);
	rt->coll_in[src] = *m;
	rt->coll_arrived[src] = 1;
	if (++rt->coll_count < rt->nranks)
		return;

	d.seq = m->seq;
	d.ref = rt->coll_in[0];
	for (int r = 1; r < rt->nranks; r++) {
		const struct dsm_rt_coll_msg *x = &rt->coll_in[r];

		if (x->kind != d.ref.kind || x->args[0] != d.ref.args[0] ||
		    x->args[1] != d.ref.args[1]) {
			d.status = DSM_ERR_MISMATCH;
			d.bad_rank = (uint32_t)r;
			d.bad = *x;
			break;
		}
	}
	memset(rt->coll_arrived, 0, (size_t)rt->nranks);
	rt->coll_count = 0;
	for (int r = 0; r < rt->nranks; r++)
		dsm_rt_send(rt, r, DSM_RT_MSG_COLL_DONE, &d, sizeof(d));
}

int dsm_rt_collective(struct dsm_rt *rt, enum dsm_rt_coll_kind kind, uint64_t a0, uint64_t a1)
{
	struct dsm_rt_req req = {.type = DSM_RT_MSG_COLL, .target = 0};
	int ret;

	/* One collective at a time per rank: they are numbered in call order. */
	pthread_mutex_lock(&rt->coll_lock);
	req.u.coll =
	        (struct dsm_rt_coll_msg){.seq = ++rt->coll_seq, .kind = kind, .args = {a0, a1}};
	ret = dsm_rt_submit(rt, &req);
	pthread_mutex_unlock(&rt->coll_lock);

	if (ret == DSM_ERR_MISMATCH) {
		char mine[96], ref[96], bad[96];

		coll_describe(&req.u.coll, mine, sizeof(mine));
		coll_describe(&req.done.ref, ref, sizeof(ref));
		coll_describe(&req.done.bad, bad, sizeof(bad));
		DSM_LOG(DSM_LOG_ERROR,
		        "collective #%" PRIu64 " does not match across ranks: rank 0 called %s, "
		        "rank %u called %s (this rank: %s); every rank fails it",
		        req.u.coll.seq, ref, req.done.bad_rank, bad, mine);
	} else if (ret < 0) {
		DSM_LOG(DSM_LOG_ERROR, "%s failed: %s", coll_name(kind), dsm_strerror(ret));
	}
	return ret;
}

/* ---- mutexes ------------------------------------------------------------------------------ */

static struct dsm_rt_mutex **mutex_find(struct dsm_rt *rt, uint64_t addr)
{
	struct dsm_rt_mutex **pp = &rt->mutexes;

	while (*pp && (*pp)->addr != addr)
		pp = &(*pp)->next;
	return pp;
}

static int mutex_enqueue(struct dsm_rt_mutex *mx, struct dsm_rt_mutex_waiter w)
{
	if (mx->qlen == mx->qcap) {
		size_t cap = mx->qcap ? 2 * mx->qcap : 8;
		struct dsm_rt_mutex_waiter *q = malloc(cap * sizeof(*q));

		if (q == NULL)
			return -ENOMEM;
		for (size_t i = 0; i < mx->qlen; i++)
			q[i] = mx->q[(mx->qhead + i) % mx->qcap];
		free(mx->q);
		mx->q = q;
		mx->qcap = cap;
		mx->qhead = 0;
	}
	mx->q[(mx->qhead + mx->qlen++) % mx->qcap] = w;
	return 0;
}

void dsm_rt_mutex_handle(struct dsm_rt *rt, int src, const struct dsm_rt_mutex_msg *m)
{
	struct dsm_rt_mutex **pp = mutex_find(rt, m->addr), *mx = *pp;
	struct dsm_rt_mutex_waiter me = {(uint32_t)src, m->token};
	int status = 0;

	if (mx == NULL && m->op != DSM_RT_MUTEX_INIT) {
		dsm_rt_reply(rt, src, m->token, -EINVAL);
		return;
	}
	switch (m->op) {
	case DSM_RT_MUTEX_INIT:
		if (mx == NULL) {
			mx = calloc(1, sizeof(*mx));
			if (mx == NULL) {
				status = -ENOMEM;
				break;
			}
			mx->addr = m->addr;
			mx->next = rt->mutexes;
			rt->mutexes = mx;
		} else if (mx->held || mx->qlen) {
			status = -EBUSY;
		}
		break;
	case DSM_RT_MUTEX_LOCK:
		if (!mx->held) {
			mx->held = true;
			mx->holder = me;
		} else if ((status = mutex_enqueue(mx, me)) == 0) {
			return; /* answered when the lock comes its way */
		}
		break;
	case DSM_RT_MUTEX_TRYLOCK:
		if (mx->held) {
			status = -EBUSY;
		} else {
			mx->held = true;
			mx->holder = me;
		}
		break;
	case DSM_RT_MUTEX_UNLOCK:
		if (!mx->held || mx->holder.rank != (uint32_t)src) {
			status = -EPERM;
			break;
		}
		if (mx->qlen) {
			/* Hand over in arrival order: every waiter gets its turn. */
			mx->holder = mx->q[mx->qhead];
			mx->qhead = (mx->qhead + 1) % mx->qcap;
			mx->qlen--;
			dsm_rt_reply(rt, (int)mx->holder.rank, mx->holder.token, 0);
		} else {
			mx->held = false;
		}
		break;
	case DSM_RT_MUTEX_DESTROY:
		if (mx->held || mx->qlen) {
			status = -EBUSY;
			break;
		}
		*pp = mx->next;
		free(mx->q);
		free(mx);
		break;
	default:
		status = -EINVAL;
	}
	dsm_rt_reply(rt, src, m->token, status);
}

void dsm_rt_mutexes_fini(struct dsm_rt *rt)
{
	while (rt->mutexes) {
		struct dsm_rt_mutex *mx = rt->mutexes;
		rt->mutexes = mx->next;
		free(mx->q);
		free(mx);
	}
}

/* ---- remote frees ------------------------------------------------------------------------- */

void dsm_rt_free_handle(struct dsm_rt *rt, int src, const struct dsm_rt_free_msg *m)
{
	int ret = dsm_rt_free_local(&rt->alloc, (void *)(uintptr_t)m->addr);

	if (ret < 0)
		DSM_LOG(DSM_LOG_ERROR, "dsm_free(%#" PRIx64 ") from rank %d: %s", m->addr, src,
		        ret == -EINVAL ? "not allocated, or freed twice" : dsm_strerror(ret));
	dsm_rt_reply(rt, src, m->token, ret);
}
