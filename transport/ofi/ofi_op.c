/* SPDX-License-Identifier: MIT */
/*
 * Operations and their buffers: every posted operation is an ofi_op; sends
 * go from the registered pool (free or in flight, never queued) or from a
 * copy of their own; RMA stays on a list while in flight, so that a peer's
 * death can fail it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "transport/ofi/ofi.h"

int ofi_fi_err(int ret)
{
	int e = ret < 0 ? -ret : ret;

	/* libfabric's codes below FI_ERRNO_OFFSET are errno values; its own ones above would
	 * read as libdsm's codes (which start at 256 too): map them to the nearest errno. */
	if (e < FI_ERRNO_OFFSET)
		return -e;
	switch (e) {
	case FI_ENOKEY:
		return -ENOKEY;
	case FI_ETRUNC:
	case FI_ETOOSMALL:
		return -EMSGSIZE;
	case FI_EAVAIL:
		return -EAGAIN;
	default:
		return -EIO;
	}
}

void ofi_post_recv(struct ofi_tp *t, struct ofi_op *op)
{
	ssize_t ret = fi_recv(t->ep, op->buf, t->bufsz, op->desc, FI_ADDR_UNSPEC, op);

	if (ret == 0)
		return;
	if (ret != -FI_EAGAIN)
		DSM_LOG(DSM_LOG_WARN, "fi_recv: %s", fi_strerror((int)-ret));
	op->next = t->repost;
	t->repost = op;
}

void ofi_release(dsm_tp_t *tp, void *tok)
{
	ofi_post_recv(ot(tp), tok);
}

void ofi_op_started(struct ofi_tp *t, int peer)
{
	t->inflight++;
	t->peers[peer].inflight++;
}

/* Operations with a dead peer were written off in ofi_peer_died(). */
void ofi_op_finished(struct ofi_tp *t, int peer)
{
	if (t->peers[peer].dead)
		return;
	t->inflight--;
	t->peers[peer].inflight--;
}

/*
 * Pool send buffers in flight to one peer: at most half of them (one of one; all of them
 * when there is only one peer), so that a
 * peer that does not answer (shm completes a send above its inject size only when the
 * receiver has taken it) cannot hold all of them and stall the sends to everyone else.
 */
bool ofi_tx_may_take(const struct ofi_tp *t, int peer)
{
	int share = t->tp.size <= 2 ? t->ntx : t->ntx > 1 ? t->ntx / 2 : 1;

	return t->tx_free && t->peers[peer].tx_held < share;
}

/* A pool buffer comes back (its send completed or failed, or never went). */
void ofi_tx_give(struct ofi_tp *t, struct ofi_op *op)
{
	t->peers[op->peer].tx_held--;
	op->next = t->tx_free;
	t->tx_free = op;
}

/* A send that waits or goes from a copy of its own: @n bytes of @data (NULL: filled later). */
struct ofi_op *ofi_copy_op(int peer, const void *data, size_t n)
{
	struct ofi_op *op = calloc(1, sizeof(*op));

	if (op == NULL || (op->buf = malloc(n ? n : 1)) == NULL) {
		free(op);
		return NULL;
	}
	if (data && n)
		memcpy(op->buf, data, n);
	op->kind = OP_COPY;
	op->peer = peer;
	op->len = n;
	return op;
}

void ofi_rma_link(struct ofi_tp *t, struct ofi_op *op)
{
	op->rma_prev = NULL;
	op->rma_next = t->rma_live;
	if (t->rma_live)
		t->rma_live->rma_prev = op;
	t->rma_live = op;
}

void ofi_rma_unlink(struct ofi_tp *t, struct ofi_op *op)
{
	if (op->rma_prev)
		op->rma_prev->rma_next = op->rma_next;
	else
		t->rma_live = op->rma_next;
	if (op->rma_next)
		op->rma_next->rma_prev = op->rma_prev;
}

void ofi_rma_done(struct ofi_tp *t, struct ofi_op *op, int status)
{
	struct dsm_tp_event ev = {.type = DSM_TP_EV_RMA,
	                          .peer = op->peer,
	                          .status = status,
	                          .len = op->len,
	                          .ctx = op->ctx};

	ofi_rma_unlink(t, op);
	if (!op->orphan)
		dsm_tp_core_push(&t->core, &ev, NULL, NULL);
	free(op);
}

const char *ofi_op_name(int kind)
{
	static const char *const names[] = {"receive", "send", "send", "RMA read", "RMA write"};

	return kind >= 0 && kind <= OP_WRITE ? names[kind] : "?";
}

int ofi_check_peer(struct ofi_tp *t, int peer)
{
	if (peer < 0 || peer >= t->tp.size)
		return -EINVAL;
	if (t->peers[peer].dead)
		return DSM_ERR_PEER_DEAD;
	return 0;
}

/* @op will never be posted (its peer died, the provider refused it for good, the transport
 * closes): RMA completes with @status, a pool buffer goes back, a copy is freed. */
void ofi_op_discard(struct ofi_tp *t, struct ofi_op *op, int status)
{
	switch (op->kind) {
	case OP_READ:
	case OP_WRITE:
		ofi_rma_done(t, op, status);
		break;
	case OP_TX:
		ofi_tx_give(t, op);
		break;
	default:
		free(op->buf);
		free(op);
	}
}
