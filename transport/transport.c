/* SPDX-License-Identifier: MIT */
/*
 * The transport's shared part: open, the wire checks, per-pair reordering and
 * the event queue.
 */
#include "transport/internal.h"

#include <dsm.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/log.h"

int dsm_tp_enosys(void)
{
	return -ENOSYS;
}

int dsm_tp_open(const struct dsm_tp_ops *ops, const struct dsm_tp_attr *attr, dsm_tp_t **tp_p)
{
	if (ops == NULL)
		ops = &dsm_tp_ofi_ops;
	if (attr == NULL || attr->struct_size < sizeof(*attr) || attr->boot == NULL ||
	    attr->max_msg_type == 0 || attr->max_msg_type > DSM_TP_MSG_TYPE_MAX) {
		DSM_LOG(DSM_LOG_ERROR, "transport: bad attributes");
		return -EINVAL;
	}
	return ops->open(attr, tp_p);
}

int dsm_tp_sleep(dsm_tp_t *tp, int timeout_ms)
{
	struct pollfd p = {.fd = dsm_tp_wait_fd(tp), .events = POLLIN};

	if (dsm_tp_sleep_prepare(tp) != 0)
		return 0;
	if (poll(&p, 1, timeout_ms) < 0 && errno != EINTR)
		DSM_LOG_ERRNO(DSM_LOG_WARN, "transport: poll on the wait fd");
	dsm_tp_sleep_end(tp);
	return 1;
}

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
	c->qcap = 256;
	c->q = calloc(c->qcap, sizeof(*c->q));
	c->outcap = 64;
	c->out = calloc(c->outcap, sizeof(*c->out));
	if (!c->rx || !c->tx_seq || !c->q || !c->out) {
		dsm_tp_core_fini(c);
		return -ENOMEM;
	}
	return 0;
}

void dsm_tp_core_fini(struct dsm_tp_core *c)
{
	dsm_tp_core_release(c);
	while (c->q && c->qlen) {
		struct dsm_tp_evitem *it = &c->q[c->qhead];

		if (it->tok)
			c->release(c->tp, it->tok);
		free(it->freeme);
		c->qhead = (c->qhead + 1) % c->qcap;
		c->qlen--;
	}
	if (c->rx) {
		for (int i = 0; i < c->tp->size; i++) {
			while (c->rx[i].held) {
				struct dsm_tp_held *h = c->rx[i].held;
				c->rx[i].held = h->next;
				free(h);
			}
		}
	}
	free(c->rx);
	free(c->tx_seq);
	free(c->q);
	free(c->out);
	c->rx = NULL;
	c->tx_seq = NULL;
	c->q = NULL;
	c->out = NULL;
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

int dsm_tp_core_push(struct dsm_tp_core *c, const struct dsm_tp_event *ev, void *tok, void *freeme)
{
	if (c->qlen == c->qcap) {
		size_t ncap = c->qcap * 2;
		struct dsm_tp_evitem *nq = calloc(ncap, sizeof(*nq));

		if (nq == NULL)
			return -ENOMEM;
		for (size_t i = 0; i < c->qlen; i++)
			nq[i] = c->q[(c->qhead + i) % c->qcap];
		free(c->q);
		c->q = nq;
		c->qcap = ncap;
		c->qhead = 0;
	}
	struct dsm_tp_evitem *it = &c->q[(c->qhead + c->qlen) % c->qcap];
	it->ev = *ev;
	it->tok = tok;
	it->freeme = freeme;
	c->qlen++;
	return 0;
}

int dsm_tp_core_pop(struct dsm_tp_core *c, struct dsm_tp_event *ev, int max)
{
	int n = 0;

	if (max <= 0)
		return 0;
	if ((size_t)max > c->outcap) {
		struct dsm_tp_evitem *no = realloc(c->out, (size_t)max * sizeof(*no));
		if (no == NULL)
			return -ENOMEM;
		c->out = no;
		c->outcap = (size_t)max;
	}
	while (n < max && c->qlen) {
		struct dsm_tp_evitem *it = &c->q[c->qhead];

		ev[n++] = it->ev;
		c->out[c->outlen++] = *it;
		c->qhead = (c->qhead + 1) % c->qcap;
		c->qlen--;
	}
	return n;
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
		dsm_tp_ctrl_recv(c->tp, src, data, len);
		return false;
	}
	c->st.msgs_received++;
	if (dsm_tp_core_push(c, &ev, tok, freeme) != 0) {
		/* Out of memory while delivering: the protocol cannot recover a lost message. */
		DSM_LOG(DSM_LOG_ERROR, "transport: out of memory delivering a message from %d",
		        src);
		abort();
	}
	return true;
}

bool dsm_tp_core_recv(struct dsm_tp_core *c, const void *buf, size_t n, void *tok)
{
	struct dsm_tp_wire_hdr h;
	const unsigned char *p = buf;

	if (n < sizeof(h))
		goto bad;
	memcpy(&h, buf, sizeof(h));
	if (h.magic != DSM_TP_WIRE_MAGIC || h.version != DSM_TP_WIRE_VERSION ||
	    h.len != n - sizeof(h) || h.type == 0 ||
	    (h.type > c->max_type && h.type != DSM_TP_CTRL_TYPE) ||
	    h.src >= (uint32_t)c->tp->size || h.len > c->tp->msg_max)
		goto bad;

	struct dsm_tp_peer_rx *rx = &c->rx[h.src];
	int32_t d = (int32_t)(h.seq - rx->expect);

	if (d < 0)
		goto bad; /* a duplicate */
	if (d > 0) {
		/* Ahead of its turn (rendezvous completions overtake eager ones): hold it. */
		struct dsm_tp_held *m = malloc(sizeof(*m) + h.len), **pp;

		if (m == NULL) {
			DSM_LOG(DSM_LOG_ERROR, "transport: out of memory holding a message");
			abort();
		}
		m->seq = h.seq;
		m->type = h.type;
		m->len = h.len;
		memcpy(m->data, p + sizeof(h), h.len);
		for (pp = &rx->held; *pp && (int32_t)((*pp)->seq - h.seq) < 0; pp = &(*pp)->next)
			;
		if (*pp && (*pp)->seq == h.seq) {
			free(m);
			goto bad;
		}
		m->next = *pp;
		*pp = m;
		c->st.msgs_reordered++;
		return false;
	}
	rx->expect++;
	bool kept = deliver(c, (int)h.src, h.type, p + sizeof(h), h.len, tok, NULL);
	while (rx->held && rx->held->seq == rx->expect) {
		struct dsm_tp_held *m = rx->held;

		rx->held = m->next;
		rx->expect++;
		if (!deliver(c, (int)h.src, m->type, m->data, m->len, NULL, m))
			free(m);
	}
	return kept;
bad:
	c->st.msgs_dropped++;
	DSM_LOG(DSM_LOG_DEBUG, "transport: dropped a malformed message of %zu bytes", n);
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
}

int dsm_tp_core_check_send(struct dsm_tp_core *c, int peer, unsigned type, size_t len)
{
	if (peer < 0 || peer >= c->tp->size || type == 0 ||
	    (type > c->max_type && !(type == DSM_TP_CTRL_TYPE && c->tp->ctrl_send)) ||
	    len > c->tp->msg_max)
		return -EINVAL;
	return 0;
}

void dsm_tp_core_describe(const struct dsm_tp_core *c, int also, FILE *f)
{
	int quiet = 0;

	fprintf(f, "  events waiting to be polled: %zu\n", c->qlen);
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
