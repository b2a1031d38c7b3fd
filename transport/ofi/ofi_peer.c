/* SPDX-License-Identifier: MIT */
/*
 * Liveness: peers on this host are watched through pidfds, the others by
 * heartbeats on a ring of the ranks (and by connection errors, ofi_cq.c). A
 * dead peer's queued and in-flight operations fail, and the rank that noticed
 * the death tells every live rank.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <time.h>

#include "common/error.h"
#include "common/log.h"
#include "common/time.h"
#include "transport/ofi/ofi.h"

/*
 * @peer is dead. @noticed: we found out ourselves (pidfd, connection error, heartbeats), not
 * from another rank's notice: tell every live rank, so that a rank that leaves because of
 * this death (the runtime exits on one) is not taken for its cause by the others.
 */
void ofi_peer_died(struct ofi_tp *t, int peer, bool noticed)
{
	struct dsm_tp_event ev = {
	        .type = DSM_TP_EV_PEER_DEAD, .peer = peer, .status = DSM_ERR_PEER_DEAD};
	struct ofi_peer *p = &t->peers[peer];

	if (p->dead)
		return;
	p->dead = true;
	/* A SIGKILLed rank leaves shm's region behind; its name is known. */
	if (t->peers[peer].shm_name[0] && shm_unlink(t->peers[peer].shm_name) == 0)
		DSM_LOG(DSM_LOG_INFO, "unlinked /dev/shm/%s of dead rank %d",
		        t->peers[peer].shm_name, peer);
	t->inflight -= t->peers[peer].inflight;
	t->peers[peer].inflight = 0;
	t->core.st.peers_dead++;
	DSM_LOG(DSM_LOG_WARN, "rank %d died", peer);
	if (noticed) {
		struct dsm_tp_ctrl m = {.op = DSM_TP_CTRL_DEAD, .chunk = (uint64_t)peer};

		for (int i = 0; i < t->tp.size; i++)
			if (i != t->tp.rank && !t->peers[i].dead)
				dsm_tp_ctrl_send(&t->tp, i, &m);
	}
	dsm_tp_core_push(&t->core, &ev, NULL, NULL);
	dsm_tp_core_peer_dead(&t->core, peer);
	/* Nothing queued for it will ever go; RMA waiting on it fails now. */
	p->q_stuck_since = 0;
	p->q_warned = false;
	p->q_why = NULL;
	t->queued -= p->qlen;
	p->qlen = 0;
	while (p->q_head) {
		struct ofi_op *op = p->q_head;

		p->q_head = op->next;
		ofi_op_discard(t, op, DSM_ERR_PEER_DEAD);
	}
	p->q_tail = &p->q_head; /* ofi_drain() takes it off busyv */
	for (struct ofi_op *op = t->rma_live; op; op = op->rma_next) {
		if (op->peer == peer && !op->orphan) {
			struct dsm_tp_event e = {.type = DSM_TP_EV_RMA,
			                         .peer = peer,
			                         .status = DSM_ERR_PEER_DEAD,
			                         .len = op->len,
			                         .ctx = op->ctx};
			op->orphan = true;
			dsm_tp_core_push(&t->core, &e, NULL, NULL);
		}
	}
}

int ofi_peers_exited(struct ofi_tp *t, int *peers, int max)
{
	struct pollfd pf[64];
	int map[64], n = 0, found = 0;

	if (max > 64)
		max = 64;
	for (int i = 0; i <= t->tp.size && found < max; i++) {
		if (n == max || (i == t->tp.size && n > 0)) {
			if (poll(pf, (nfds_t)n, 0) > 0)
				for (int j = 0; j < n && found < max; j++)
					if (pf[j].revents)
						peers[found++] = map[j];
			n = 0;
		}
		if (i < t->tp.size && t->peers[i].pidfd >= 0 && !t->peers[i].dead) {
			pf[n].fd = t->peers[i].pidfd;
			pf[n].events = POLLIN;
			pf[n].revents = 0;
			map[n++] = i;
		}
	}
	return found;
}

/* The next live rank after (@dir 1) or before (@dir -1) us on the ring, or -1. */
static int ring_next(struct ofi_tp *t, int dir)
{
	int n = t->tp.size;

	for (int k = 1; k < n; k++) {
		int r = ((t->tp.rank + dir * k) % n + n) % n;
		if (!t->peers[r].dead)
			return r;
	}
	return -1;
}

/* A suspected rank on this host that the kernel no longer runs (no such pid, or a zombie
 * that its parent has not reaped yet): it is gone. A stopped one is not. */
static bool gone_from_host(struct ofi_peer *p, uint64_t now)
{
	char path[64], stat[256];
	const char *paren;
	ssize_t n;
	int fd;

	if (!p->same_host || now < p->next_probe)
		return false;
	p->next_probe = now + OFI_DEATH_NS;
	if (kill(p->pid, 0) != 0)
		return errno == ESRCH;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)p->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT;
	n = read(fd, stat, sizeof(stat) - 1);
	close(fd);
	if (n <= 0)
		return false;
	stat[n] = '\0';
	paren = strrchr(stat, ')'); /* "pid (comm) S ...": comm may hold anything */
	return paren && (paren[2] == 'Z' || paren[2] == 'X');
}

/*
 * Heartbeats on a ring, for peers no pidfd watches (another host, or
 * DSM_TP_NO_PIDFD): each rank beats to its successor every period. A predecessor
 * silent for OFI_HB_DEAD periods is suspected (logged once): a stopped rank (a
 * debugger, a swapped node) looks the same as a dead one from here, and comes back.
 * It is declared dead, and the rank that noticed tells everyone, when its host says
 * so (on this host: its pid is gone; elsewhere: a send to it fails with a connection
 * error, which cq_error() turns into the same report, and our predecessor on the ring
 * is our heartbeats' target's too) or after DSM_TP_DEAD_MS of silence.
 */
void ofi_heartbeat(struct ofi_tp *t, uint64_t now)
{
	struct dsm_tp_ctrl hb = {.op = DSM_TP_CTRL_HEARTBEAT};
	int succ = ring_next(t, 1), pred = ring_next(t, -1);

	if (t->hb_fd < 0)
		return;
	if (now >= t->next_hb && succ >= 0) {
		t->next_hb = now + t->hb_ns;
		dsm_tp_ctrl_send(&t->tp, succ, &hb);
	}
	if (pred < 0 || t->peers[pred].pidfd >= 0)
		return;
	struct ofi_peer *p = &t->peers[pred];
	uint64_t silent = now - p->last_hb;

	if (silent <= OFI_HB_DEAD * t->hb_ns)
		return;
	if (!p->suspected && silent <= t->dead_ns) {
		p->suspected = true;
		p->next_probe = 0;
		DSM_LOG(DSM_LOG_WARN,
		        "no heartbeat from rank %d for %llu ms: suspected (stopped, swapped out, "
		        "or its host unreachable); declared dead after %llu ms of silence "
		        "(DSM_TP_DEAD_MS) unless its host says so first",
		        pred, (unsigned long long)(silent / 1000000),
		        (unsigned long long)(t->dead_ns / 1000000));
	}
	bool gone = gone_from_host(p, now);

	if (gone || silent > t->dead_ns) {
		if (gone)
			DSM_LOG(DSM_LOG_WARN, "rank %d, silent for %llu ms, is gone from this host",
			        pred, (unsigned long long)(silent / 1000000));
		else
			DSM_LOG(DSM_LOG_WARN, "no heartbeat from rank %d for %llu ms", pred,
			        (unsigned long long)(silent / 1000000));
		ofi_peer_died(t, pred, true);
		/* our new predecessor gets a full period of grace */
		if ((pred = ring_next(t, -1)) >= 0)
			t->peers[pred].last_hb = now;
	}
}

static void on_heartbeat(dsm_tp_t *tp, int peer, const struct dsm_tp_ctrl *m)
{
	struct ofi_peer *p = &ot(tp)->peers[peer];
	uint64_t now = dsm_now_coarse_ns();

	(void)m;
	if (p->suspected)
		DSM_LOG(DSM_LOG_WARN, "rank %d is back after %llu ms without a heartbeat", peer,
		        (unsigned long long)((now - p->last_hb) / 1000000));
	p->suspected = false;
	p->last_hb = now;
}

/* Another rank noticed a death and tells us. */
static void on_dead(dsm_tp_t *tp, int peer, const struct dsm_tp_ctrl *m)
{
	struct ofi_tp *t = ot(tp);
	int pred = ring_next(t, -1);

	if (m->chunk >= (uint64_t)tp->size || (int)m->chunk == tp->rank) {
		t->core.st.msgs_dropped++;
		return;
	}
	(void)peer;
	ofi_peer_died(t, (int)m->chunk, false);
	/* our new predecessor gets a full period of grace */
	if (ring_next(t, -1) != pred && ring_next(t, -1) >= 0)
		t->peers[ring_next(t, -1)].last_hb = dsm_now_coarse_ns();
}

/*
 * Liveness at open: the notices are taken from now on, and with a heartbeat period of @ms
 * (DSM_TP_HEARTBEAT_MS; 0: none) a timerfd beats even while the loop sleeps (the caller
 * adds hb_fd to its epoll).
 */
int ofi_peers_open(struct ofi_tp *t, uint64_t ms, uint64_t dead_ms)
{
	struct itimerspec its;
	uint64_t now = dsm_now_coarse_ns();

	dsm_tp_ctrl_on(&t->tp, DSM_TP_CTRL_HEARTBEAT, on_heartbeat);
	dsm_tp_ctrl_on(&t->tp, DSM_TP_CTRL_DEAD, on_dead);
	if (ms == 0 || t->tp.size < 2)
		return 0;
	t->hb_ns = (uint64_t)ms * 1000000ull;
	t->dead_ns = dead_ms * 1000000ull;
	t->hb_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (t->hb_fd < 0) {
		DSM_LOG_ERRNO(DSM_LOG_ERROR, "timerfd_create");
		return -errno;
	}
	its.it_interval.tv_sec = (time_t)(ms / 1000);
	its.it_interval.tv_nsec = (long)(ms % 1000 * 1000000);
	its.it_value = its.it_interval;
	if (timerfd_settime(t->hb_fd, 0, &its, NULL) != 0) {
		DSM_LOG_ERRNO(DSM_LOG_ERROR, "timerfd_settime");
		return -errno;
	}
	for (int i = 0; i < t->tp.size; i++)
		t->peers[i].last_hb = now;
	t->next_hb = now;
	return 0;
}
