/* SPDX-License-Identifier: MIT */
/*
 * Sends and RMA as the layer above posts them: straight to the provider when
 * the peer's queue is empty and the provider takes it, else into the queue.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "transport/ofi/ofi.h"

/* A send to @peer did not happen: give its sequence number back (a gap would stall the
 * pair) and uncount it. */
static void unsend(struct ofi_tp *t, int peer)
{
	t->core.tx_seq[peer]--;
	t->core.st.msgs_sent--;
}

int ofi_send(dsm_tp_t *tp, int peer, unsigned type, const void *buf, size_t len)
{
	struct ofi_tp *t = ot(tp);
	struct dsm_tp_wire_hdr h;
	size_t n = sizeof(h) + len;
	struct ofi_op *op;
	int ret;

	ret = dsm_tp_core_check_send(&t->core, peer, type, len);
	if (ret == 0)
		ret = ofi_check_peer(t, peer);
	if (ret)
		return ret;
	dsm_tp_core_hdr(&t->core, &h, peer, type, len);
	t->core.st.msgs_sent++;
	if (t->peers[peer].q_head == NULL && n <= t->inject) {
		unsigned char tmp[n];

		memcpy(tmp, &h, sizeof(h));
		if (len)
			memcpy(tmp + sizeof(h), buf, len);
		if (fi_inject(t->ep, tmp, n, t->peers[peer].addr) == 0) {
			ofi_ring(t, peer);
			return 0;
		}
	}
	/* Pool buffers are only ever free or in flight, never queued: a send that waits gets a
	 * copy of its own and takes a buffer when its turn comes (buffers held by sends queued
	 * behind a head that needs one would never come back: the 4-rank shm wedge). */
	if (t->peers[peer].q_head == NULL && ofi_tx_may_take(t, peer)) {
		op = t->tx_free;
		t->tx_free = op->next;
		t->peers[peer].tx_held++;
		op->kind = OP_TX;
		op->raw = false;
	} else if ((op = ofi_copy_op(peer, NULL, n)) == NULL) {
		unsend(t, peer);
		return -ENOMEM;
	}
	op->peer = peer;
	op->len = n;
	memcpy(op->buf, &h, sizeof(h));
	if (len)
		memcpy(op->buf + sizeof(h), buf, len);
	if (t->peers[peer].q_head == NULL) {
		ret = ofi_try_post(t, op);
		if (ret == 0)
			return 0;
		if (ret != -FI_EAGAIN) {
			DSM_LOG(DSM_LOG_ERROR, "send to rank %d: %s", peer, fi_strerror(-ret));
			ofi_op_discard(t, op, 0);
			unsend(t, peer);
			return ofi_fi_err(ret);
		}
		if (op->kind == OP_TX) {
			/* Refused: it waits as a copy of its own, and the pool buffer goes back. */
			struct ofi_op *c = ofi_copy_op(peer, op->buf, n);

			ofi_tx_give(t, op);
			if (c == NULL) {
				unsend(t, peer);
				return -ENOMEM;
			}
			op = c;
		}
	}
	ofi_enqueue(t, op);
	ofi_ring(t, peer); /* what blocks the queue may be waiting for its progress */
	return 0;
}

int ofi_send_raw(dsm_tp_t *tp, int peer, const void *buf, size_t len)
{
	struct ofi_tp *t = ot(tp);
	struct ofi_op *op;
	int ret = ofi_check_peer(t, peer);

	if (ret)
		return ret;
	op = ofi_copy_op(peer, buf, len);
	if (op == NULL)
		return -ENOMEM;
	op->raw = true;
	ofi_enqueue(t, op);
	ofi_drain(t);
	return 0;
}

static int rma_post(struct ofi_tp *t, int kind, int peer, void *local, size_t len, dsm_tp_mr_t *lmr,
                    uint64_t raddr, uint64_t rkey, void *ctx)
{
	struct ofi_op *op;
	int ret = ofi_check_peer(t, peer);

	if (ret)
		return ret;
	if (t->mr_local && lmr == NULL) {
		DSM_LOG(DSM_LOG_ERROR, "%s needs a registered local buffer", t->prov);
		return -EINVAL;
	}
	op = calloc(1, sizeof(*op));
	if (op == NULL)
		return -ENOMEM;
	op->kind = kind;
	op->peer = peer;
	op->local = local;
	op->len = len;
	op->desc = lmr ? lmr->desc : NULL;
	op->raddr = raddr;
	op->rkey = rkey ^ t->key_mask; /* as the peer registered it */
	op->ctx = ctx;
	ofi_rma_link(t, op);
	if (kind == OP_READ)
		t->core.st.rma_reads++;
	else
		t->core.st.rma_writes++;
	t->core.st.rma_bytes += len;
	if (t->peers[peer].q_head == NULL) {
		ret = ofi_try_post(t, op);
		if (ret == 0)
			return 0;
		if (ret != -FI_EAGAIN) {
			DSM_LOG(DSM_LOG_ERROR, "RMA with rank %d: %s", peer, fi_strerror(-ret));
			ofi_rma_unlink(t, op);
			free(op);
			return ofi_fi_err(ret);
		}
	}
	DSM_LOG(DSM_LOG_DEBUG, "RMA to rank %d queued", peer);
	ofi_enqueue(t, op);
	ofi_ring(t, peer);
	return 0;
}

int ofi_read(dsm_tp_t *tp, int peer, void *local, size_t len, dsm_tp_mr_t *lmr, uint64_t raddr,
             uint64_t rkey, void *ctx)
{
	return rma_post(ot(tp), OP_READ, peer, local, len, lmr, raddr, rkey, ctx);
}

int ofi_write(dsm_tp_t *tp, int peer, const void *local, size_t len, dsm_tp_mr_t *lmr,
              uint64_t raddr, uint64_t rkey, void *ctx)
{
	return rma_post(ot(tp), OP_WRITE, peer, (void *)local, len, lmr, raddr, rkey, ctx);
}
