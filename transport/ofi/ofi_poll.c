/* SPDX-License-Identifier: MIT */
/*
 * What the event loop calls each turn: dsm_tp_poll() (post what waits, read
 * the completion queue, watch the peers), and the sleep protocol around its
 * epoll (a CQ wait fd with fi_trywait(), or the doorbell announcement).
 */
#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include "common/log.h"
#include "common/time.h"
#include "transport/ofi/ofi.h"

/*
 * Peers on this host that exited (their pidfd is readable) are dead. A rank that exits
 * because another died says so first (ofi_peer_died): take in what has arrived before
 * declaring anyone dead, so that the notice of the first death comes before the exit it
 * caused.
 */
static void check_deaths(struct ofi_tp *t)
{
	int gone[64], n;

	while ((n = ofi_peers_exited(t, gone, 64)) > 0) {
		ofi_progress(t);
		for (int i = 0; i < n; i++)
			ofi_peer_died(t, gone[i], true);
	}
	t->next_death_check = dsm_now_coarse_ns() + OFI_DEATH_NS;
}

int ofi_poll(dsm_tp_t *tp, struct dsm_tp_event *ev, int max)
{
	struct ofi_tp *t = ot(tp);

	dsm_tp_core_release(&t->core);
	while (t->repost) {
		struct ofi_op *op = t->repost;
		t->repost = op->next;
		ofi_post_recv(t, op);
		if (t->repost == op)
			break;
	}
	ofi_drain(t);
	ofi_progress(t);
	t->busy_rr++; /* the buffers progress freed go to a different queue first each time */
	ofi_drain(t);
	/* Multi-step transfers (shm's segmented sends, reads the target serves)
	 * go on inside our progress without a post: whoever they wait for next
	 * must not be asleep. */
	for (int i = 0; t->inflight && t->bell_fd >= 0 && i < t->tp.size; i++)
		if (t->peers[i].inflight)
			ofi_ring(t, i);
	if (dsm_now_coarse_ns() >= t->next_death_check)
		check_deaths(t);
	ofi_heartbeat(t, dsm_now_coarse_ns());
	return dsm_tp_core_pop(&t->core, ev, max);
}

int ofi_wait_fd(dsm_tp_t *tp)
{
	return ot(tp)->epfd;
}

int ofi_sleep_prepare(dsm_tp_t *tp)
{
	struct ofi_tp *t = ot(tp);

	if (t->queued || t->repost || dsm_tp_core_pending(&t->core))
		return -EAGAIN;
	if (t->cq_fd < 0 && t->bell_fd < 0)
		return -EAGAIN; /* nothing could wake us: keep polling */
	if (t->cq_fd >= 0) {
		struct fid *f = &t->cq->fid;
		if (fi_trywait(t->fabric, &f, 1) != 0)
			return -EAGAIN;
	} else {
		/* Announce, fence, look once more: a peer that posted before seeing
		 * the flag is found by this poll, one after it rings. With operations of
		 * ours in flight (a send above shm's inject size completes when the peer
		 * has taken it), only our progress completes them: a brief sleep, but an
		 * announced one, or a peer's request would wait out the nap (measured:
		 * 73 us of a 300 us pingpong round trip). */
		ofi_bell_announce(t);
		ofi_progress(t);
		if (dsm_tp_core_pending(&t->core)) {
			ofi_bell_withdraw(t);
			return -EAGAIN;
		}
	}
	check_deaths(t);
	if (dsm_tp_core_pending(&t->core)) {
		ofi_bell_withdraw(t);
		return -EAGAIN;
	}
	t->core.st.sleeps++;
	return t->cq_fd < 0 && t->inflight ? DSM_TP_SLEEP_BRIEF : 0;
}

void ofi_sleep_pause(dsm_tp_t *tp)
{
	ofi_bell_withdraw(ot(tp));
}

int ofi_sleep_resume(dsm_tp_t *tp)
{
	struct ofi_tp *t = ot(tp);

	if (t->queued || t->repost || dsm_tp_core_pending(&t->core))
		return -EAGAIN;
	if (t->cq_fd >= 0) {
		struct fid *f = &t->cq->fid;

		return fi_trywait(t->fabric, &f, 1) == 0 ? 0 : -EAGAIN;
	}
	if (t->bell_fd < 0 || t->inflight)
		return -EAGAIN;
	/* As in sleep_prepare: announce, fence, look once more. */
	ofi_bell_announce(t);
	ofi_progress(t);
	if (dsm_tp_core_pending(&t->core)) {
		ofi_bell_withdraw(t);
		return -EAGAIN;
	}
	return 0;
}

void ofi_sleep_end(dsm_tp_t *tp)
{
	struct ofi_tp *t = ot(tp);
	uint64_t expirations;

	ofi_bell_drain(t);
	if (t->hb_fd >= 0 && read(t->hb_fd, &expirations, sizeof(expirations)) < 0 &&
	    errno != EAGAIN)
		DSM_LOG_ERRNO(DSM_LOG_DEBUG, "reading the heartbeat timer");
	t->next_death_check = 0;
}
