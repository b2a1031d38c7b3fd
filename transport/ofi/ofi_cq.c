/* SPDX-License-Identifier: MIT */
/*
 * The completion queue: receives go to the core's reordering, completed
 * sends give their buffers back, completed RMA becomes an event; an error
 * that says the connection is gone means the peer is dead.
 */
#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"
#include "transport/ofi/ofi.h"

static bool conn_error(int err)
{
	return err == FI_ECONNRESET || err == FI_ECONNREFUSED || err == FI_ECONNABORTED ||
	       err == FI_ENOTCONN || err == FI_EHOSTUNREACH || err == FI_ENETUNREACH ||
	       err == FI_EIO || err == FI_ETIMEDOUT;
}

static void cq_error(struct ofi_tp *t)
{
	struct fi_cq_err_entry e = {0};
	struct ofi_op *op;
	bool lost = false; /* a sequenced message that will never arrive */

	if (fi_cq_readerr(t->cq, &e, 0) != 1)
		return;
	op = e.op_context;
	if (op == NULL)
		return;
	int peer = op->peer; /* @op is freed below */

	switch (op->kind) {
	case OP_RX:
		/* A message longer than the buffers (FI_ETRUNC) is malformed by definition. */
		t->core.st.msgs_dropped++;
		DSM_LOG(DSM_LOG_DEBUG, "receive error: %s", fi_strerror(e.err));
		ofi_post_recv(t, op);
		return;
	case OP_TX:
		ofi_op_finished(t, op->peer);
		DSM_LOG(DSM_LOG_WARN, "send to rank %d failed: %s", op->peer, fi_strerror(e.err));
		lost = !op->raw;
		ofi_tx_give(t, op);
		break;
	case OP_COPY:
		ofi_op_finished(t, op->peer);
		DSM_LOG(DSM_LOG_WARN, "send to rank %d failed: %s", op->peer, fi_strerror(e.err));
		lost = !op->raw;
		free(op->buf);
		free(op);
		break;
	default:
		ofi_op_finished(t, op->peer);
		DSM_LOG(DSM_LOG_WARN, "RMA with rank %d failed: %s", op->peer, fi_strerror(e.err));
		ofi_rma_done(t, op, -e.err);
		break;
	}
	if (conn_error(e.err)) {
		ofi_peer_died(t, peer, true);
	} else if (lost && !t->peers[peer].dead) {
		/* Its sequence number is spent: the peer would hold every later message. */
		char why[128];

		snprintf(why, sizeof(why), "a message to it was lost (%s)", fi_strerror(e.err));
		dsm_tp_core_broken(&t->core, peer, why);
	}
}

/* Reads the CQ into the event queue. Returns entries handled. */
int ofi_progress(struct ofi_tp *t)
{
	struct fi_cq_msg_entry ent[OFI_CQ_BATCH];
	ssize_t n;
	int total = 0;

	for (;;) {
		n = fi_cq_read(t->cq, ent, OFI_CQ_BATCH);
		if (n == -FI_EAVAIL) {
			cq_error(t);
			total++;
			continue;
		}
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			struct ofi_op *op = ent[i].op_context;

			if (op == NULL)
				continue;
			switch (op->kind) {
			case OP_RX:
				if (!dsm_tp_core_recv(&t->core, op->buf, ent[i].len, op))
					ofi_post_recv(t, op);
				break;
			case OP_TX:
				ofi_op_finished(t, op->peer);
				ofi_tx_give(t, op);
				break;
			case OP_COPY:
				ofi_op_finished(t, op->peer);
				free(op->buf);
				free(op);
				break;
			case OP_READ:
			case OP_WRITE:
				ofi_op_finished(t, op->peer);
				ofi_rma_done(t, op, 0);
				break;
			default:
				break;
			}
		}
		total += (int)n;
		if (n < OFI_CQ_BATCH)
			break;
	}
	if (n < 0 && n != -FI_EAGAIN)
		DSM_LOG(DSM_LOG_WARN, "fi_cq_read: %s", fi_strerror((int)-n));
	return total;
}
