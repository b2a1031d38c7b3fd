/* SPDX-License-Identifier: MIT */
/*
 * The libfabric transport: one FI_EP_RDM endpoint per rank, FI_MSG + FI_RMA
 * (+ FI_ATOMIC where offered), manual progress driven by dsm_tp_poll().
 *
 * Start is two-phase (as Sandia OpenSHMEM does): every rank publishes its
 * host and pid, all choose the same provider and open an endpoint, then the
 * endpoint names are exchanged and every peer inserted into the AV.
 *
 * Sends never return -FI_EAGAIN: what the provider refuses waits in the
 * peer's FIFO outgoing queue, which poll drains (a peer that does not take its
 * messages holds up only its own queue). Messages carry per-pair sequence numbers
 * (rxm completes a rendezvous send after later eager ones) and the receiver
 * reorders (core.c).
 *
 * Sleeping: with a CQ wait fd (tcp;ofi_rxm) the loop sleeps on it after
 * fi_trywait(). shm has none, so each rank has a doorbell, an abstract unix
 * datagram socket, and a sleep flag in a page its peers map: a peer that
 * posts work for a rank whose flag is set clears it and rings.
 *
 * Death: peers on this host are watched through pidfds; connection errors in
 * completions and missing heartbeats mark remote peers dead.
 *
 * The files, each on those below it only:
 *   ofi_open.c      open and close: the two-phase start, pools, the ops table
 *   ofi_provider.c  which provider: hints, fi_getinfo, the error that lists them
 *   ofi_poll.c      dsm_tp_poll(), and sleeping (wait fd, doorbell announcement)
 *   ofi_describe.c  counters and the stall report
 *   ofi_send.c      sends and RMA as the layer above posts them
 *   ofi_cq.c        the completion queue: receives, send and RMA completions, errors
 *   ofi_peer.c      liveness: pidfds, heartbeats, a peer's death
 *   ofi_queue.c     per-peer outgoing queues: posting in order, draining, stuck warnings
 *   ofi_mr.c        memory registration
 *   ofi_bell.c      the doorbell: ringing a sleeping peer
 *   ofi_op.c        operations and their buffers: the send pool, copies, RMA in flight
 */
#ifndef DSM_TP_OFI_H
#define DSM_TP_OFI_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

#include "transport/internal.h"

#define OFI_VERSION FI_VERSION(1, 11)
#define OFI_NRX     256
/* send buffers: DSM_TP_SEND_BUFS */
#define OFI_CQ_BATCH    32
#define OFI_NAME_MAX    256
#define OFI_DEATH_NS    (20 * 1000 * 1000ull) /* how often poll looks at the pidfds */
#define OFI_HB_DEAD     6                     /* periods of silence that mean death */
#define OFI_POOL_KEY_RX 1
#define OFI_POOL_KEY_TX 2

enum op_kind { OP_RX, OP_TX, OP_COPY, OP_READ, OP_WRITE };

/* Every posted operation; the libfabric context comes first. */
struct ofi_op {
	struct fi_context2 fctx;
	struct ofi_op *next;                /* free list or outgoing queue */
	struct ofi_op *rma_prev, *rma_next; /* in-flight RMA list */
	int kind;
	int peer;
	size_t len;
	unsigned char *buf; /* RX/TX: pool buffer; COPY: malloc'd message */
	void *local;        /* RMA */
	void *desc;
	uint64_t raddr, rkey;
	void *ctx;
	bool orphan; /* its peer died: the completion is ignored */
	bool raw;    /* TX, COPY: send_raw's bytes (tests), outside the peer's sequence */
};

struct ofi_peer {
	fi_addr_t addr;
	pid_t pid;
	uint64_t last_hb;            /* when its last heartbeat came (our predecessor's matters) */
	char shm_name[OFI_NAME_MAX]; /* shm: its region in /dev/shm, to unlink if it dies */
	int pidfd;                   /* same host only, else -1 */
	bool same_host;
	bool suspected;      /* silent for OFI_HB_DEAD periods: logged, not dead yet */
	uint64_t next_probe; /* suspected on this host: when to ask the kernel again */
	int inflight;        /* our posted operations with it not completed yet */
	bool dead;
	/* Operations for it that wait to be posted, in order; why the first waits, and since
	 * when (0: it moves). */
	struct ofi_op *q_head, **q_tail;
	size_t qlen;
	bool busy;   /* in busyv */
	int tx_held; /* our pool send buffers in flight to it */
	bool q_warned;
	const char *q_why;
	uint64_t q_stuck_since;
	atomic_int *flag; /* the peer's sleep flag (doorbell mode) */
	struct sockaddr_un bell;
	socklen_t bell_len;
};

struct ofi_card {
	uint64_t hostid;
	uint64_t jobid;  /* public: names this job's doorbells and flags (rank 0's) */
	uint64_t jobkey; /* secret: every message and every RMA key carries it (rank 0's) */
	int32_t pid;
	uint32_t namelen;
	char prov[64];
	unsigned char name[OFI_NAME_MAX];
};

struct ofi_tp {
	dsm_tp_t tp;
	struct dsm_tp_core core;
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_av *av;
	struct fid_cq *cq;
	struct fid_ep *ep;
	bool mr_local, mr_endpoint;
	size_t inject;
	size_t bufsz;
	unsigned char *rx_mem, *tx_mem;
	struct fid_mr *rx_mr, *tx_mr;
	struct ofi_op *rx_ops, *tx_ops;
	struct ofi_op *tx_free;
	int ntx;               /* send buffers in the pool */
	struct ofi_op *repost; /* receive buffers waiting for fi_recv */
	size_t queued;         /* operations in the peers' outgoing queues */
	int *busyv;            /* the peers with a non-empty queue */
	int nbusy;
	unsigned busy_rr; /* where drains start; each poll moves it, so that none is always first */
	struct ofi_op *rma_live;
	int inflight;
	struct ofi_peer *peers;
	int cq_fd;         /* the CQ's wait fd, or -1 */
	int bell_fd;       /* doorbell socket (no CQ wait fd), or -1 */
	int epfd;          /* what dsm_tp_wait_fd() returns */
	bool own_keys;     /* DSM_MR_PROV_KEY: keys the peers cannot compute */
	bool shm_counted;  /* counted in shm_open_count */
	uint64_t next_key; /* the next of those */
	uint64_t key_mask; /* XORed into every key we register and every key we use (the job's) */
	atomic_int *my_flag;
	char flag_name[64];
	uint64_t next_death_check;
	uint64_t next_hb, hb_ns;
	uint64_t dead_ns; /* DSM_TP_DEAD_MS: a suspected rank this long silent is dead */
	int hb_fd;        /* timerfd: a sleeping rank still beats and listens */
	int hellos;       /* DSM_TP_CTRL_HELLO messages received at open */
	char prov[64];
};

struct ofi_mr {
	dsm_tp_mr_t pub;
	struct fid_mr *mr;
};

static inline struct ofi_tp *ot(dsm_tp_t *tp)
{
	return (struct ofi_tp *)tp;
}

/* ofi_op.c */
int ofi_fi_err(int ret); /* a libfabric return code as 0 or a negative errno */
void ofi_post_recv(struct ofi_tp *t, struct ofi_op *op);
void ofi_release(dsm_tp_t *tp, void *tok);
void ofi_op_started(struct ofi_tp *t, int peer);
void ofi_op_finished(struct ofi_tp *t, int peer);
bool ofi_tx_may_take(const struct ofi_tp *t, int peer);
void ofi_tx_give(struct ofi_tp *t, struct ofi_op *op);
struct ofi_op *ofi_copy_op(int peer, const void *data, size_t n);
void ofi_rma_link(struct ofi_tp *t, struct ofi_op *op);
void ofi_rma_unlink(struct ofi_tp *t, struct ofi_op *op);
void ofi_rma_done(struct ofi_tp *t, struct ofi_op *op, int status);
void ofi_op_discard(struct ofi_tp *t, struct ofi_op *op, int status);
const char *ofi_op_name(int kind);
int ofi_check_peer(struct ofi_tp *t, int peer);

/* ofi_bell.c */
void ofi_ring(struct ofi_tp *t, int peer);
int ofi_bell_open(struct ofi_tp *t, uint64_t jobid);
int ofi_bell_connect(struct ofi_tp *t, uint64_t jobid);
void ofi_bell_announce(struct ofi_tp *t);
void ofi_bell_withdraw(struct ofi_tp *t);
void ofi_bell_drain(struct ofi_tp *t);

/* ofi_mr.c */
int ofi_reg(struct ofi_tp *t, void *buf, size_t len, uint64_t key, struct fid_mr **mr_p);
int ofi_mr_reg(dsm_tp_t *tp, void *addr, size_t len, uint64_t key, dsm_tp_mr_t **mr_p);
int ofi_mr_dereg(dsm_tp_t *tp, dsm_tp_mr_t *mr);

/* ofi_queue.c */
int ofi_try_post(struct ofi_tp *t, struct ofi_op *op);
void ofi_enqueue(struct ofi_tp *t, struct ofi_op *op);
void ofi_drain(struct ofi_tp *t);

/* ofi_peer.c */
void ofi_peer_died(struct ofi_tp *t, int peer, bool noticed);
int ofi_peers_exited(struct ofi_tp *t, int *peers, int max);
void ofi_heartbeat(struct ofi_tp *t, uint64_t now);
int ofi_peers_open(struct ofi_tp *t, uint64_t hb_ms, uint64_t dead_ms);

/* ofi_cq.c */
int ofi_progress(struct ofi_tp *t);

/* ofi_send.c */
int ofi_send(dsm_tp_t *tp, int peer, unsigned type, const void *buf, size_t len);
int ofi_send_raw(dsm_tp_t *tp, int peer, const void *buf, size_t len);
int ofi_read(dsm_tp_t *tp, int peer, void *local, size_t len, dsm_tp_mr_t *lmr, uint64_t raddr,
             uint64_t rkey, void *ctx);
int ofi_write(dsm_tp_t *tp, int peer, const void *local, size_t len, dsm_tp_mr_t *lmr,
              uint64_t raddr, uint64_t rkey, void *ctx);

/* ofi_poll.c */
int ofi_poll(dsm_tp_t *tp, struct dsm_tp_event *ev, int max);
int ofi_wait_fd(dsm_tp_t *tp);
int ofi_sleep_prepare(dsm_tp_t *tp);
void ofi_sleep_end(dsm_tp_t *tp);
void ofi_sleep_pause(dsm_tp_t *tp);
int ofi_sleep_resume(dsm_tp_t *tp);

/* ofi_describe.c */
int ofi_stats(dsm_tp_t *tp, struct dsm_tp_stats *out);
void ofi_describe(dsm_tp_t *tp, int peer, FILE *f);

/* ofi_provider.c */
int ofi_choose_provider(struct ofi_tp *t, const char *want, bool one_host);

#endif
