/* SPDX-License-Identifier: MIT */
/* What the transport says about itself: its counters, and the stall report. */
#include <stdio.h>

#include "common/time.h"
#include "transport/ofi/ofi.h"

int ofi_stats(dsm_tp_t *tp, struct dsm_tp_stats *out)
{
	struct ofi_tp *t = ot(tp);

	*out = t->core.st;
	out->pending = (uint64_t)t->inflight + t->tp.key_waits;
	out->pending += t->queued;
	return 0;
}

void ofi_describe(dsm_tp_t *tp, int peer, FILE *f)
{
	struct ofi_tp *t = ot(tp);
	size_t free_tx = 0, repost = 0;
	int listed = 0, waiting = 0;

	for (struct ofi_op *op = t->tx_free; op; op = op->next)
		free_tx++;
	for (struct ofi_op *op = t->repost; op; op = op->next)
		repost++;
	for (int i = 0; i < t->nbusy; i++)
		waiting += t->peers[t->busyv[i]].q_head != NULL;
	fprintf(f,
	        "rank %d (%s): %zu operations queued for %d ranks, %d in flight, %zu of %d send "
	        "buffers free, %zu receive buffers not posted, sleep flag %d\n",
	        tp->rank, t->prov, t->queued, waiting, t->inflight, free_tx, t->ntx, repost,
	        t->my_flag ? atomic_load(t->my_flag) : -1);
	/* The queues that wait longest first would need a sort: list up to 8, and @peer's. */
	for (int i = 0; i < t->nbusy; i++) {
		int r = t->busyv[i];
		struct ofi_peer *p = &t->peers[r];

		if (p->q_head == NULL || (listed >= 8 && r != peer))
			continue;
		listed++;
		fprintf(f,
		        "  queue to rank %d: %zu, the first a %s of %zu bytes, waiting %.1f s: "
		        "%s\n",
		        r, p->qlen, ofi_op_name(p->q_head->kind), p->q_head->len,
		        p->q_stuck_since ? (double)(dsm_now_coarse_ns() - p->q_stuck_since) / 1e9
		                         : 0.0,
		        p->q_why ? p->q_why : "?");
	}
	int asleep = 0;

	for (int r = 0; r < tp->size; r++) {
		struct ofi_peer *p = &t->peers[r];
		bool sleeps = p->flag && atomic_load(p->flag);

		if (r == tp->rank || (!p->inflight && !p->dead && !sleeps && r != peer))
			continue;
		/* At scale, a peer that only sleeps is counted, not listed. */
		if (tp->size > 16 && !p->inflight && !p->dead && r != peer) {
			asleep++;
			continue;
		}
		fprintf(f, "  rank %d: %d in flight (%d send buffers)%s%s\n", r, p->inflight,
		        p->tx_held, p->dead ? ", dead" : "", sleeps ? ", asleep" : "");
	}
	if (asleep)
		fprintf(f, "  %d other ranks asleep, nothing in flight with them\n", asleep);
	dsm_tp_core_describe(&t->core, peer, f);
}
