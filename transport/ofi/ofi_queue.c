/* SPDX-License-Identifier: MIT */
/*
 * Per-peer outgoing queues: what the provider refuses waits, in order, in its
 * peer's queue; every poll drains the queues that hold something, starting
 * with a different one each time, and warns once about a queue whose head has
 * not moved for seconds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/time.h"
#include "transport/ofi/ofi.h"

#define OFI_STUCK_NS (5 * 1000000000ull) /* a queue head this old gets one warning */

/*
 * Tries to post @op. 0: posted (or finished); -FI_EAGAIN: not now; else an
 * error. Either way the peer is rung if it sleeps: shm refuses a post with
 * -FI_EAGAIN exactly when it waits for the peer's progress (the first
 * contact, until the peer has mapped our region and taken our name; the
 * peer's command queue full; a segmented transfer with it under way), so a
 * refused post must wake the peer as surely as an accepted one.
 */
int ofi_try_post(struct ofi_tp *t, struct ofi_op *op)
{
	int peer = op->peer; /* @op may be freed below */
	struct ofi_peer *p = &t->peers[peer];
	ssize_t ret;

	switch (op->kind) {
	case OP_COPY:
		if (op->len <= t->inject) {
			ret = fi_inject(t->ep, op->buf, op->len, p->addr);
			if (ret == 0) {
				free(op->buf);
				free(op);
			}
			break;
		}
		if (op->len > t->bufsz) {
			/* Only send_raw makes these (tests): sent from the copy itself. */
			ret = fi_send(t->ep, op->buf, op->len, NULL, p->addr, op);
			if (ret == 0)
				ofi_op_started(t, peer);
			break;
		}
		if (!ofi_tx_may_take(t, peer)) {
			p->q_why = t->tx_free ? "its share of the send buffers is in flight"
			                      : "no free send buffer";
			return -FI_EAGAIN;
		}
		struct ofi_op *tx = t->tx_free;
		memcpy(tx->buf, op->buf, op->len);
		tx->len = op->len;
		tx->peer = op->peer;
		tx->raw = op->raw;
		ret = fi_send(t->ep, tx->buf, tx->len, tx->desc, p->addr, tx);
		if (ret == 0) {
			t->tx_free = tx->next;
			p->tx_held++;
			ofi_op_started(t, peer);
			free(op->buf);
			free(op);
		}
		break;
	case OP_TX:
		ret = fi_send(t->ep, op->buf, op->len, op->desc, p->addr, op);
		if (ret == 0)
			ofi_op_started(t, peer);
		break;
	case OP_READ:
		ret = fi_read(t->ep, op->local, op->len, op->desc, p->addr, op->raddr, op->rkey,
		              op);
		if (ret == 0)
			ofi_op_started(t, peer);
		break;
	case OP_WRITE:
		ret = fi_write(t->ep, op->local, op->len, op->desc, p->addr, op->raddr, op->rkey,
		               op);
		if (ret == 0)
			ofi_op_started(t, peer);
		break;
	default:
		return -EINVAL;
	}
	if (ret == -FI_EAGAIN)
		p->q_why = "the provider said -FI_EAGAIN";
	if (ret == 0 || ret == -FI_EAGAIN)
		ofi_ring(t, peer);
	return (int)ret;
}

void ofi_enqueue(struct ofi_tp *t, struct ofi_op *op)
{
	struct ofi_peer *p = &t->peers[op->peer];

	op->next = NULL;
	*p->q_tail = op;
	p->q_tail = &op->next;
	p->qlen++;
	t->queued++;
	if (!p->busy) {
		p->busy = true;
		t->busyv[t->nbusy++] = op->peer;
	}
	if (op->kind == OP_TX || op->kind == OP_COPY)
		t->core.st.msgs_queued++;
}

/* The head of @peer's queue was refused again: warn once if it has waited for long. */
static void queue_stuck(struct ofi_tp *t, int peer)
{
	struct ofi_peer *p = &t->peers[peer];
	uint64_t now = dsm_now_coarse_ns();

	if (p->q_stuck_since == 0) {
		p->q_stuck_since = now;
		return;
	}
	if (p->q_warned || now - p->q_stuck_since < OFI_STUCK_NS)
		return;
	p->q_warned = true;
	DSM_LOG(DSM_LOG_WARN,
	        "the queue to rank %d has not moved for %.1f s: its first %s (%zu "
	        "bytes) waits, %s; %zu queued for it, %d operations in flight with it",
	        peer, (double)(now - p->q_stuck_since) / 1e9, ofi_op_name(p->q_head->kind),
	        p->q_head->len, p->q_why ? p->q_why : "?", p->qlen, p->inflight);
}

/* The head of @peer's queue moves (posted, failed, or dropped with the peer). */
static void queue_moves(struct ofi_peer *p, int peer)
{
	if (p->q_warned)
		DSM_LOG(DSM_LOG_WARN, "the queue to rank %d moves again after %.1f s", peer,
		        (double)(dsm_now_coarse_ns() - p->q_stuck_since) / 1e9);
	p->q_stuck_since = 0;
	p->q_warned = false;
	p->q_why = NULL;
}

/* Posts from @peer's queue, in order, as far as the provider takes it. */
static void drain_peer(struct ofi_tp *t, int peer)
{
	struct ofi_peer *p = &t->peers[peer];

	while (p->q_head) {
		struct ofi_op *op = p->q_head, *next = op->next;
		int ret = ofi_try_post(t, op); /* @op may be freed */

		if (ret == -FI_EAGAIN) {
			queue_stuck(t, peer);
			return;
		}
		queue_moves(p, peer);
		p->q_head = next;
		if (next == NULL)
			p->q_tail = &p->q_head;
		p->qlen--;
		t->queued--;
		if (ret == 0)
			continue;
		DSM_LOG(DSM_LOG_ERROR, "posting to rank %d: %s", op->peer, fi_strerror(-ret));
		bool msg = (op->kind == OP_TX || op->kind == OP_COPY) && !op->raw;

		ofi_op_discard(t, op, ofi_fi_err(ret));
		if (msg) {
			/* Its sequence number is spent: the peer would hold every later one. */
			dsm_tp_core_broken(&t->core, peer, "a queued message to it could not be posted");
			return;
		}
	}
}

/* Drains every peer's queue, starting with a different peer each time. */
void ofi_drain(struct ofi_tp *t)
{
	int n = t->nbusy, k = 0;
	unsigned start;

	if (n == 0)
		return;
	start = t->busy_rr;
	for (int i = 0; i < n; i++)
		drain_peer(t, t->busyv[(start + (unsigned)i) % (unsigned)n]);
	for (int i = 0; i < t->nbusy; i++) {
		struct ofi_peer *p = &t->peers[t->busyv[i]];

		if (p->q_head)
			t->busyv[k++] = t->busyv[i];
		else
			p->busy = false;
	}
	t->nbusy = k;
}
