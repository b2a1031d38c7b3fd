/* SPDX-License-Identifier: MIT */
/*
 * The transport's shared part, under every implementation: the wire checks,
 * per-pair reordering, the event queue, control messages and keys.
 */
#include "transport/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "common/vec.h"

int dsm_tp_core_init(struct dsm_tp_core *c, dsm_tp_t *tp, unsigned max_type,
                     void (*release)(dsm_tp_t *, void *))
{
	memset(c, 0, sizeof(*c));
	c->tp = tp;
	tp->core = c;
	c->max_type = max_type;
	c->release = release;
	c->rx = calloc((size_t)tp->size, sizeof(*c->rx));
	c->tx_seq = calloc((size_t)tp->size, sizeof(*c->tx_seq));
	dsm_ring_init(&c->q, sizeof(struct dsm_tp_evitem));
	c->outcap = 64;
	c->out = calloc(c->outcap, sizeof(*c->out));
	if (!c->rx || !c->tx_seq || !c->out) {
		dsm_tp_core_fini(c);
		return -ENOMEM;
	}
	return 0;
}

static void free_held(struct dsm_tp_peer_rx *rx)
{
	while (rx->held) {
		struct dsm_tp_held *h = rx->held;

		rx->held = h->next;
		free(h);
	}
	rx->nheld = 0;
	rx->held_bytes = 0;
}

void dsm_tp_core_fini(struct dsm_tp_core *c)
{
	dsm_tp_core_release(c);
	while (dsm_ring_len(&c->q)) {
		struct dsm_tp_evitem *it = dsm_ring_at(&c->q, 0);

		if (it->tok)
			c->release(c->tp, it->tok);
		free(it->freeme);
		dsm_ring_pop(&c->q);
	}
	if (c->rx)
		for (int i = 0; i < c->tp->size; i++)
			free_held(&c->rx[i]);
	free(c->rx);
	free(c->tx_seq);
	dsm_ring_fini(&c->q);
	free(c->out);
	c->rx = NULL;
	c->tx_seq = NULL;
	c->out = NULL;
}

void dsm_tp_core_set_key(struct dsm_tp_core *c, uint64_t key)
{
	c->key = key;
}

void dsm_tp_core_broken(struct dsm_tp_core *c, int peer, const char *why)
{
	struct dsm_tp_peer_rx *rx = &c->rx[peer];

	if (rx->broken)
		return;
	rx->broken = true;
	free_held(rx);
	DSM_LOG(DSM_LOG_ERROR,
	        "the stream with rank %d cannot go on: %s; rank %d is handled as dead", peer, why,
	        peer);
	if (c->broken)
		c->broken(c->tp, peer, why);
}

void dsm_tp_core_release(struct dsm_tp_core *c)
{
	for (size_t i = 0; i < c->outlen; i++) {
		if (c->out[i].tok)
			c->release(c->tp, c->out[i].tok);
		free(c->out[i].freeme);
	}
	c->outlen = 0;
}

void dsm_tp_core_push(struct dsm_tp_core *c, const struct dsm_tp_event *ev, void *tok, void *freeme)
{
	struct dsm_tp_evitem it = {.ev = *ev, .tok = tok, .freeme = freeme};

	if (dsm_ring_push(&c->q, &it) != 0) {
		DSM_LOG(DSM_LOG_ERROR,
		        "out of memory queueing a %s event of rank %d: it cannot be recovered",
		        ev->type == DSM_TP_EV_MSG   ? "message"
		        : ev->type == DSM_TP_EV_RMA ? "RMA completion"
		                                    : "peer",
		        ev->peer);
		abort();
	}
}

int dsm_tp_core_pop(struct dsm_tp_core *c, struct dsm_tp_event *ev, int max)
{
	int n = 0;

	if (max <= 0)
		return 0;
	if (DSM_VEC_RESERVE(c->out, c->outcap, (size_t)max) < 0)
		return -ENOMEM;
	while (n < max && dsm_ring_len(&c->q)) {
		struct dsm_tp_evitem *it = dsm_ring_at(&c->q, 0);

		ev[n++] = it->ev;
		c->out[c->outlen++] = *it;
		dsm_ring_pop(&c->q);
	}
	return n;
}

/* A control message from @peer, in its per-pair turn, to whoever registered its op. */
static void ctrl_recv(struct dsm_tp_core *c, int peer, const void *data, size_t len)
{
	struct dsm_tp_ctrl m;

	if (len != sizeof(m)) {
		c->st.msgs_dropped++;
		return;
	}
	memcpy(&m, data, sizeof(m));
	if (m.op >= DSM_TP_CTRL_NOPS || c->ctrl[m.op] == NULL) {
		c->st.msgs_dropped++;
		return;
	}
	c->ctrl[m.op](c->tp, peer, &m);
}

/* Returns true if the event keeps @tok/@freeme (released after hand-out). */
static bool deliver(struct dsm_tp_core *c, int src, unsigned type, const void *data, size_t len,
                    void *tok, void *freeme)
{
	struct dsm_tp_event ev = {
	        .type = DSM_TP_EV_MSG,
	        .peer = src,
	        .msg_type = type,
	        .len = len,
	        .data = data,
	};

	if (type == DSM_TP_CTRL_TYPE) {
		ctrl_recv(c, src, data, len);
		return false;
	}
	c->st.msgs_received++;
	dsm_tp_core_push(c, &ev, tok, freeme);
	return true;
}

/*
 * A message without the job key: not from a rank of this job (another job's stale
 * message, or a forgery). Nothing in it is believed; the first one claiming each rank (and
 * the first claiming none) is logged, every one counted.
 */
static void reject(struct dsm_tp_core *c, const struct dsm_tp_wire_hdr *h, size_t n)
{
	bool *logged =
	        h->src < (uint32_t)c->tp->size ? &c->rx[h->src].reject_logged : &c->reject_logged;

	c->st.msgs_rejected++;
	if (*logged)
		return;
	*logged = true;
	if (h->src < (uint32_t)c->tp->size)
		DSM_LOG(DSM_LOG_WARN,
		        "rejected a message of %zu bytes that claims to come from rank %u but "
		        "lacks this job's key (another job, or a process outside the job); further "
		        "ones claiming rank %u are only counted (msgs_rejected)",
		        n, h->src, h->src);
	else
		DSM_LOG(DSM_LOG_WARN,
		        "rejected a message of %zu bytes from outside this job (no job key, no "
		        "rank of it); further ones are only counted (msgs_rejected)",
		        n);
}

/* Holds @h's message, ahead of its turn, until the ones before it arrive. */
static void hold(struct dsm_tp_core *c, struct dsm_tp_peer_rx *rx, const struct dsm_tp_wire_hdr *h,
                 const unsigned char *payload)
{
	struct dsm_tp_held *m, **pp;

	if (rx->nheld >= DSM_TP_HELD_MAX || rx->held_bytes + h->len > DSM_TP_HELD_BYTES_MAX) {
		char why[160];

		snprintf(why, sizeof(why),
		         "%u messages (%zu bytes) wait for its message %u, which never came",
		         rx->nheld, rx->held_bytes, rx->expect);
		dsm_tp_core_broken(c, (int)h->src, why);
		return;
	}
	for (pp = &rx->held; *pp && (int32_t)((*pp)->seq - h->seq) < 0; pp = &(*pp)->next)
		;
	if (*pp && (*pp)->seq == h->seq) {
		c->st.msgs_dropped++; /* a duplicate of one held */
		return;
	}
	m = malloc(sizeof(*m) + h->len);
	if (m == NULL) {
		dsm_tp_core_broken(c, (int)h->src, "no memory to hold a message ahead of its turn");
		return;
	}
	m->seq = h->seq;
	m->type = h->type;
	m->len = h->len;
	memcpy(m->data, payload, h->len);
	m->next = *pp;
	*pp = m;
	rx->nheld++;
	rx->held_bytes += h->len;
	c->st.msgs_reordered++;
}

bool dsm_tp_core_recv(struct dsm_tp_core *c, const void *buf, size_t n, void *tok)
{
	struct dsm_tp_wire_hdr h;
	const unsigned char *p = buf;

	if (n < sizeof(h))
		goto bad;
	memcpy(&h, buf, sizeof(h));
	if (h.magic != DSM_TP_WIRE_MAGIC || h.version != DSM_TP_WIRE_VERSION)
		goto bad;
	/* Before anything else is believed: the job key. */
	if (h.key != c->key) {
		reject(c, &h, n);
		return false;
	}
	if (h.len != n - sizeof(h) || h.type == 0 ||
	    (h.type > c->max_type && h.type != DSM_TP_CTRL_TYPE) ||
	    h.src >= (uint32_t)c->tp->size || h.len > c->tp->msg_max)
		goto bad;

	struct dsm_tp_peer_rx *rx = &c->rx[h.src];
	int32_t d = (int32_t)(h.seq - rx->expect);

	if (rx->broken)
		goto bad; /* handled as dead: nothing more from it counts */
	if (d < 0)
		goto bad; /* a duplicate */
	if (d > 0) {
		/* Ahead of its turn (rendezvous completions overtake eager ones): hold it. */
		hold(c, rx, &h, p + sizeof(h));
		return false;
	}
	rx->expect++;
	bool kept = deliver(c, (int)h.src, h.type, p + sizeof(h), h.len, tok, NULL);
	while (rx->held && rx->held->seq == rx->expect) {
		struct dsm_tp_held *m = rx->held;

		rx->held = m->next;
		rx->nheld--;
		rx->held_bytes -= m->len;
		rx->expect++;
		if (!deliver(c, (int)h.src, m->type, m->data, m->len, NULL, m))
			free(m);
	}
	return kept;
bad:
	c->st.msgs_dropped++;
	DSM_LOG(DSM_LOG_DEBUG, "dropped a malformed message of %zu bytes", n);
	return false;
}

void dsm_tp_core_hdr(struct dsm_tp_core *c, struct dsm_tp_wire_hdr *h, int peer, unsigned type,
                     size_t len)
{
	h->magic = DSM_TP_WIRE_MAGIC;
	h->version = DSM_TP_WIRE_VERSION;
	h->type = (uint8_t)type;
	h->len = (uint32_t)len;
	h->src = (uint32_t)c->tp->rank;
	h->seq = c->tx_seq[peer]++;
	h->key = c->key;
}

int dsm_tp_core_check_send(struct dsm_tp_core *c, int peer, unsigned type, size_t len)
{
	if (peer < 0 || peer >= c->tp->size || type == 0 ||
	    (type > c->max_type && !(type == DSM_TP_CTRL_TYPE && c->ctrl_send)) ||
	    len > c->tp->msg_max)
		return -EINVAL;
	return 0;
}

void dsm_tp_core_describe(const struct dsm_tp_core *c, int also, FILE *f)
{
	int quiet = 0;

	fprintf(f, "  events waiting to be polled: %zu\n", dsm_ring_len(&c->q));
	for (int r = 0; r < c->tp->size; r++) {
		const struct dsm_tp_held *h = c->rx[r].held;
		size_t n = 0;

		if (r == c->tp->rank)
			continue;
		for (const struct dsm_tp_held *m = h; m; m = m->next)
			n++;
		/* At scale, only the peers that matter: @also, and those we hold messages of. */
		if (c->tp->size > 16 && r != also && n == 0) {
			quiet++;
			continue;
		}
		fprintf(f, "  rank %d: sent seq %u, expect seq %u", r, c->tx_seq[r],
		        c->rx[r].expect);
		if (n)
			fprintf(f, ", %zu held from seq %u", n, h->seq);
		fputc('\n', f);
	}
	if (quiet)
		fprintf(f, "  %d other ranks: nothing held back\n", quiet);
}

/* ---- control messages, peer deaths, keys ------------------------------------------------- */

int dsm_tp_ctrl_send(dsm_tp_t *tp, int peer, const struct dsm_tp_ctrl *m)
{
	int ret;

	tp->core->ctrl_send = true;
	ret = dsm_tp_send(tp, peer, DSM_TP_CTRL_TYPE, m, sizeof(*m));
	tp->core->ctrl_send = false;
	return ret;
}

void dsm_tp_ctrl_on(dsm_tp_t *tp, unsigned op, dsm_tp_ctrl_fn *fn)
{
	if (op < DSM_TP_CTRL_NOPS)
		tp->core->ctrl[op] = fn;
}

int dsm_tp_on_peer_dead(dsm_tp_t *tp, dsm_tp_dead_fn *fn)
{
	struct dsm_tp_core *c = tp->core;

	for (unsigned i = 0; i < DSM_TP_DEAD_HOOKS; i++) {
		if (c->dead[i] == fn)
			return 0;
		if (c->dead[i] == NULL) {
			c->dead[i] = fn;
			return 0;
		}
	}
	return -ENOSPC;
}

void dsm_tp_core_peer_dead(struct dsm_tp_core *c, int peer)
{
	for (unsigned i = 0; i < DSM_TP_DEAD_HOOKS && c->dead[i]; i++)
		c->dead[i](c->tp, peer);
}

int dsm_tp_mr_reg(dsm_tp_t *tp, void *addr, size_t len, dsm_tp_mr_t **mr_p)
{
	if (tp->mr_keys >= (1ull << DSM_TP_KEY_SEG_SHIFT) - DSM_TP_KEY_MR_BASE)
		return -ENOSPC;
	return tp->ops->mr_reg(tp, addr, len, DSM_TP_KEY_MR_BASE + tp->mr_keys++, mr_p);
}
