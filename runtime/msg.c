/* SPDX-License-Identifier: MIT */
#include "runtime/msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "runtime/decode.h"
#include "runtime/fatal.h"
#include "runtime/rt.h"

static void on_reply(struct dsm_rt *rt, int src, const void *data, size_t len)
{
	struct dsm_rt_reply m;
	struct dsm_rt_req *r;

	(void)src;
	(void)len;
	memcpy(&m, data, sizeof(m));
	r = dsm_rt_req_take(rt, DSM_RT_MSG_REPLY, m.token);
	if (r == NULL) {
		DSM_RT_COUNT(rt, msgs_dropped, 1);
		DSM_LOG(DSM_LOG_WARN, "dropped a reply for unknown request %llu",
		        (unsigned long long)m.token);
		return;
	}
	dsm_rt_req_complete(r, m.status);
}

size_t dsm_rt_msg_max(size_t line_size)
{
	return sizeof(struct dsm_rt_coh_batch) + dsm_rt_coh_batch_cap(line_size) +
	       DSM_RT_GATHER_MSGS * sizeof(dsm_coh_msg_t);
}

int dsm_rt_msg_init(struct dsm_rt *rt)
{
	struct dsm_rt_msgs *m = &rt->msg;

	pthread_mutex_init(&m->lock, NULL);
	m->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (m->evfd < 0) {
		DSM_LOG_ERRNO(DSM_LOG_ERROR, "creating the event loop's eventfd");
		return -errno;
	}
	m->line_size = rt->cfg.line_size;
	m->gather_cap = dsm_rt_coh_batch_cap(m->line_size);
	for (unsigned i = 0; i < DSM_RT_GATHER_PEERS; i++) {
		m->gather[i].buf = malloc(dsm_rt_msg_max(m->line_size));
		if (m->gather[i].buf == NULL)
			return -ENOMEM;
	}
	dsm_rt_msg_on(rt, DSM_RT_MSG_REPLY, sizeof(struct dsm_rt_reply), on_reply);
	return 0;
}

void dsm_rt_msg_fini(struct dsm_rt *rt)
{
	if (rt->msg.evfd >= 0)
		close(rt->msg.evfd);
	for (unsigned i = 0; i < DSM_RT_GATHER_PEERS; i++) {
		free(rt->msg.gather[i].buf);
		rt->msg.gather[i].buf = NULL;
	}
	pthread_mutex_destroy(&rt->msg.lock);
}

void dsm_rt_msg_on(struct dsm_rt *rt, enum dsm_rt_msg_type type, size_t len, dsm_rt_msg_fn *fn)
{
	/* The length a message must have is decode.c's to say; a handler that expects another
	 * is a bug of this build. */
	if (len != dsm_rt_wire_size(type)) {
		DSM_LOG(DSM_LOG_ERROR, "message type %u: its handler takes %zu bytes, decode.c %zu",
		        (unsigned)type, len, dsm_rt_wire_size(type));
		abort();
	}
	rt->msg.on[type].fn = fn;
}

void dsm_rt_msg_malformed(struct dsm_rt *rt, int src, unsigned type, size_t len)
{
	DSM_RT_COUNT(rt, msgs_dropped, 1);
	DSM_LOG(DSM_LOG_WARN, "dropped a malformed message (type %u, %zu bytes) from rank %d", type,
	        len, src);
}

void dsm_rt_msg_dispatch(struct dsm_rt *rt, int src, unsigned type, const void *data, size_t len)
{
	if (dsm_rt_decode_frame(type, len) < 0 || rt->msg.on[type].fn == NULL) {
		dsm_rt_msg_malformed(rt, src, type, len);
		return;
	}
	rt->msg.on[type].fn(rt, src, data, len);
}

/* ---- gathering ------------------------------------------------------------------------ */

void dsm_rt_msg_kernel_flush(struct dsm_rt *rt, bool end)
{
	int ret = rt->region.deferring ? dsm_rt_region_flush(&rt->region, end) : 0;

	if (ret < 0)
		dsm_rt_fatal(rt, "internal error: dropping the lines of a batch failed: %s",
		             dsm_err_str(ret));
}

/* A lone message without data goes as COH, anything else as COH_BATCH: the lines are in
 * buf already, the headers go after them. */
static int gather_send(struct dsm_rt *rt, struct dsm_rt_gather *g)
{
	int ret;

	dsm_rt_msg_kernel_flush(rt, false);
	if (g->n == 1 && g->ndata == 0)
		ret = dsm_tp_send(rt->tp, g->peer, DSM_RT_MSG_COH, g->v, sizeof(g->v[0]));
	else
		ret = dsm_tp_send(
		        rt->tp, g->peer, DSM_RT_MSG_COH_BATCH, g->buf,
		        dsm_rt_encode_coh_batch(g->buf, rt->msg.line_size, g->v, g->n, g->ndata));
	g->n = 0;
	g->ndata = 0;
	rt->msg.gathering--;
	return ret;
}

int dsm_rt_msg_flush(struct dsm_rt *rt, int peer)
{
	struct dsm_rt_msgs *m = &rt->msg;
	int ret = 0;

	for (unsigned i = 0; m->gathering && i < DSM_RT_GATHER_PEERS; i++) {
		int r;

		if (m->gather[i].n == 0 || (peer >= 0 && m->gather[i].peer != peer))
			continue;
		r = gather_send(rt, &m->gather[i]);
		if (r < 0 && ret == 0)
			ret = r;
	}
	return ret;
}

int dsm_rt_msg_flush_lines(struct dsm_rt *rt)
{
	struct dsm_rt_msgs *m = &rt->msg;
	int ret = 0;

	for (unsigned i = 0; m->gathering && i < DSM_RT_GATHER_PEERS; i++) {
		int r;

		if (m->gather[i].ndata == 0)
			continue;
		r = gather_send(rt, &m->gather[i]);
		if (r < 0 && ret == 0)
			ret = r;
	}
	return ret;
}

int dsm_rt_send_gathered(struct dsm_rt *rt, int peer, const dsm_coh_msg_t *msg, void **data_p)
{
	struct dsm_rt_msgs *m = &rt->msg;
	struct dsm_rt_gather *g = NULL, *oldest = NULL;
	bool data = msg->flags & DSM_COH_MSGF_DATA;
	int ret = 0;

	for (unsigned i = 0; i < DSM_RT_GATHER_PEERS && g == NULL; i++) {
		struct dsm_rt_gather *s = &m->gather[i];

		if (s->n && s->peer == peer)
			g = s;
		else if (oldest == NULL || s->n == 0 || (oldest->n && s->opened < oldest->opened))
			oldest = s;
	}
	if (g && (g->n == DSM_RT_GATHER_MSGS ||
	          (data && (g->ndata + 1) * m->line_size > m->gather_cap))) {
		/* No room: what waits goes now, and this message opens the slot again. */
		ret = gather_send(rt, g);
		oldest = g;
		g = NULL;
	}
	if (g == NULL) {
		/* A slot for this peer: a free one, or the oldest peer's goes now. */
		g = oldest;
		if (g->n) {
			int r = gather_send(rt, g);

			if (ret == 0)
				ret = r;
		}
		g->peer = peer;
		g->opened = ++m->gather_clock;
		m->gathering++;
	}
	if (data)
		*data_p = g->buf + sizeof(struct dsm_rt_coh_batch) + g->ndata++ * m->line_size;
	/* A full slot goes at the next call or flush: the caller has not put the line in. */
	g->v[g->n++] = *msg;
	return ret;
}

int dsm_rt_send(struct dsm_rt *rt, int peer, enum dsm_rt_msg_type type, const void *buf, size_t len)
{
	int ret;

	/* To this rank itself only a reply needs the zaps done: it may end a dsm_free, whose
	 * lines must fault from then on. The loop's own state already says they are gone. */
	if (peer != rt->rank || type == DSM_RT_MSG_REPLY)
		dsm_rt_msg_kernel_flush(rt, false);
	if (peer == rt->rank) {
		dsm_rt_msg_dispatch(rt, peer, type, buf, len);
		return 0;
	}
	ret = dsm_rt_msg_flush(rt, peer);
	if (ret < 0)
		return ret;
	return dsm_tp_send(rt->tp, peer, type, buf, len);
}

void dsm_rt_reply(struct dsm_rt *rt, int rank, uint64_t token, int status)
{
	struct dsm_rt_reply m = {.token = token, .status = status};
	int ret = dsm_rt_send(rt, rank, DSM_RT_MSG_REPLY, &m, sizeof(m));

	/* The requester sleeps until this comes: a reply that cannot go ends this rank, which
	 * its peers see as a death, instead of leaving it asleep for ever. */
	if (ret < 0 && ret != DSM_ERR_PEER_DEAD)
		dsm_rt_fatal(rt, "answering rank %d's request failed: %s", rank, dsm_err_str(ret));
}

/* ---- requests ----------------------------------------------------------------------------- */

void dsm_rt_msg_wake(struct dsm_rt *rt)
{
	uint64_t one = 1;

	if (write(rt->msg.evfd, &one, sizeof(one)) != sizeof(one))
		DSM_LOG_ERRNO(DSM_LOG_ERROR, "waking the event loop");
}

void dsm_rt_req_complete(struct dsm_rt_req *req, int status)
{
	req->status = status;
	dsm_event_post(&req->done); /* the caller may return now: req is gone */
}

struct dsm_rt_req *dsm_rt_req_take(struct dsm_rt *rt, enum dsm_rt_msg_type answer, uint64_t key)
{
	for (struct dsm_rt_req **pp = &rt->msg.pending; *pp; pp = &(*pp)->next) {
		struct dsm_rt_req *r = *pp;

		if (r->answer == answer && r->key == key) {
			*pp = r->next;
			return r;
		}
	}
	return NULL;
}

void dsm_rt_msg_peer_dead(struct dsm_rt *rt, int peer)
{
	for (struct dsm_rt_req **pp = &rt->msg.pending; *pp;) {
		struct dsm_rt_req *r = *pp;

		/* A collective's answer comes from the survivors (coll.c). */
		if (r->target != peer || r->answer == DSM_RT_MSG_COLL) {
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		dsm_rt_req_complete(r, DSM_ERR_PEER_DEAD);
	}
}

int dsm_rt_msg_drain_requests(struct dsm_rt *rt)
{
	struct dsm_rt_msgs *m = &rt->msg;
	struct dsm_rt_req *list;
	int n = 0;

	/* No lock and no system call on the loop's hot path: the eventfd is read only after
	 * epoll reports it. */
	if (!atomic_exchange_explicit(&m->submitted, false, memory_order_acquire))
		return 0;
	pthread_mutex_lock(&m->lock);
	list = m->submit;
	m->submit = NULL;
	pthread_mutex_unlock(&m->lock);

	while (list) {
		struct dsm_rt_req *r = list;
		int ret;

		list = r->next;
		if (r->token) {
			r->key = ++m->next_token;
			*r->token = r->key;
		}
		/* Pending before sending: a message to ourselves is answered at once. */
		r->next = m->pending;
		m->pending = r;
		ret = dsm_rt_send(rt, r->target, r->type, &r->u, r->len);
		if (ret < 0 || r->answer == DSM_RT_MSG_NONE) {
			struct dsm_rt_req *t = dsm_rt_req_take(rt, r->answer, r->key);

			if (t)
				dsm_rt_req_complete(t, ret);
		}
		n++;
	}
	return n;
}
