/* SPDX-License-Identifier: MIT */
#include "runtime/coll.h"

#include <dsm.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "runtime/loop.h"
#include "runtime/msg.h"
#include "runtime/rt.h"

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

/* Rank 0: rank @src entered a collective. */
static void on_coll(struct dsm_rt *rt, int src, const void *data, size_t len)
{
	struct dsm_rt_coll_msg mm, *m = &mm;
	struct dsm_rt_coll_done d = {0};
	struct dsm_rt_coll *c = &rt->coll;

	(void)len;
	memcpy(&mm, data, sizeof(mm));
	if (rt->rank != 0 || src < 0 || src >= rt->nranks) {
		DSM_RT_COUNT(rt, msgs_dropped, 1);
		return;
	}
	if (c->count == 0)
		c->cur = m->seq;
	if (m->seq != c->cur || c->arrived[src]) {
		/* Every rank waits for the verdict of its call before the next: this is a bug. */
		DSM_RT_COUNT(rt, msgs_dropped, 1);
		DSM_LOG(DSM_LOG_ERROR,
		        "rank %d sent collective #%" PRIu64 " while #%" PRIu64 " is open; dropped",
		        src, m->seq, c->cur);
		return;
	}
	DSM_LOG(DSM_LOG_DEBUG, "collective #%" PRIu64 " (%s) from rank %d", m->seq,
	        coll_name(m->kind), src);
	c->in[src] = *m;
	c->arrived[src] = 1;
	if (++c->count < rt->nranks)
		return;

	d.seq = m->seq;
	d.ref = c->in[0];
	for (int r = 1; r < rt->nranks; r++) {
		const struct dsm_rt_coll_msg *x = &c->in[r];

		if (x->kind != d.ref.kind || x->args[0] != d.ref.args[0] ||
		    x->args[1] != d.ref.args[1]) {
			d.status = DSM_ERR_MISMATCH;
			d.bad_rank = (uint32_t)r;
			d.bad = *x;
			break;
		}
	}
	memset(c->arrived, 0, (size_t)rt->nranks);
	c->count = 0;
	for (int r = 0; r < rt->nranks; r++)
		dsm_rt_send(rt, r, DSM_RT_MSG_COLL_DONE, &d, sizeof(d));
}

/* Rank 0's verdict on a collective of ours. */
static void on_coll_done(struct dsm_rt *rt, int src, const void *data, size_t len)
{
	struct dsm_rt_coll_done d;
	struct dsm_rt_req *r;

	if (src != 0) {
		dsm_rt_msg_malformed(rt, src, DSM_RT_MSG_COLL_DONE, len);
		return;
	}
	memcpy(&d, data, sizeof(d));
	r = dsm_rt_req_take(rt, DSM_RT_MSG_COLL_DONE, d.seq);
	if (r == NULL) {
		DSM_RT_COUNT(rt, msgs_dropped, 1);
		DSM_LOG(DSM_LOG_WARN, "dropped the verdict of unknown collective #%llu",
		        (unsigned long long)d.seq);
		return;
	}
	memcpy(r->ctx, &d, sizeof(d));
	dsm_rt_req_complete(r, d.status);
}

int dsm_rt_coll_init(struct dsm_rt *rt)
{
	pthread_mutex_init(&rt->coll.lock, NULL);
	rt->coll.in = calloc((size_t)rt->nranks, sizeof(*rt->coll.in));
	rt->coll.arrived = calloc((size_t)rt->nranks, 1);
	if (rt->coll.in == NULL || rt->coll.arrived == NULL)
		return -ENOMEM;
	dsm_rt_msg_on(rt, DSM_RT_MSG_COLL, sizeof(struct dsm_rt_coll_msg), on_coll);
	dsm_rt_msg_on(rt, DSM_RT_MSG_COLL_DONE, sizeof(struct dsm_rt_coll_done), on_coll_done);
	return 0;
}

void dsm_rt_coll_fini(struct dsm_rt *rt)
{
	free(rt->coll.in);
	free(rt->coll.arrived);
	pthread_mutex_destroy(&rt->coll.lock);
}

int dsm_rt_collective(struct dsm_rt *rt, enum dsm_rt_coll_kind kind, uint64_t a0, uint64_t a1)
{
	struct dsm_rt_coll_done done = {0};
	struct dsm_rt_req req = {.type = DSM_RT_MSG_COLL,
	                         .target = 0,
	                         .len = sizeof(req.u.coll),
	                         .answer = DSM_RT_MSG_COLL_DONE,
	                         .ctx = &done};
	int ret;

	/* One collective at a time per rank: they are numbered in call order. */
	pthread_mutex_lock(&rt->coll.lock);
	req.u.coll =
	        (struct dsm_rt_coll_msg){.seq = ++rt->coll.seq, .kind = kind, .args = {a0, a1}};
	req.key = req.u.coll.seq;
	ret = dsm_rt_submit(rt, &req);
	pthread_mutex_unlock(&rt->coll.lock);

	if (ret == DSM_ERR_MISMATCH) {
		char mine[96], ref[96], bad[96];

		coll_describe(&req.u.coll, mine, sizeof(mine));
		coll_describe(&done.ref, ref, sizeof(ref));
		coll_describe(&done.bad, bad, sizeof(bad));
		DSM_LOG(DSM_LOG_ERROR,
		        "collective #%" PRIu64 " does not match across ranks: rank 0 called %s, "
		        "rank %u called %s (this rank: %s); every rank fails it",
		        req.u.coll.seq, ref, done.bad_rank, bad, mine);
	} else if (ret < 0) {
		DSM_LOG(DSM_LOG_ERROR, "%s failed: %s", coll_name(kind), dsm_err_str(ret));
	}
	return ret;
}

DSM_EXPORT void dsm_barrier(void)
{
	struct dsm_rt *rt = dsm_rt_get("dsm_barrier");

	if (rt)
		dsm_rt_collective(rt, DSM_RT_COLL_BARRIER, 0, 0);
}
