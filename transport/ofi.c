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
 * reorders (transport.c).
 *
 * Sleeping: with a CQ wait fd (tcp;ofi_rxm) the loop sleeps on it after
 * fi_trywait(). shm has none, so each rank has a doorbell, an abstract unix
 * datagram socket, and a sleep flag in a page its peers map: a peer that
 * posts work for a rank whose flag is set clears it and rings.
 *
 * Death: peers on this host are watched through pidfds; connection errors in
 * completions mark remote peers dead.
 */
#include "transport/internal.h"

#include <dirent.h>
#include <dsm.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

#include "runtime/log.h"

#define OFI_VERSION     FI_VERSION(1, 11)
#define OFI_NRX         256
#define OFI_NTX         256 /* send buffers; DSM_TP_SEND_BUFS */
#define OFI_CQ_BATCH    32
#define OFI_NAME_MAX    256
#define OFI_DEATH_NS    (20 * 1000 * 1000ull) /* how often poll looks at the pidfds */
#define OFI_HB_MS       1000                  /* heartbeat period; DSM_TP_HEARTBEAT_MS, 0: none */
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
};

struct ofi_peer {
	fi_addr_t addr;
	pid_t pid;
	uint64_t last_hb;            /* when its last heartbeat came (our predecessor's matters) */
	char shm_name[OFI_NAME_MAX]; /* shm: its region in /dev/shm, to unlink if it dies */
	int pidfd;                   /* same host only, else -1 */
	int inflight;                /* our posted operations with it not completed yet */
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
	uint64_t jobkey;
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
	atomic_int *my_flag;
	char flag_name[64];
	uint64_t next_death_check;
	uint64_t next_hb, hb_ns;
	int hb_fd; /* timerfd: a sleeping rank still beats and listens */
	char prov[64];
};

struct ofi_mr {
	dsm_tp_mr_t pub;
	struct fid_mr *mr;
};

static struct ofi_tp *ot(dsm_tp_t *tp)
{
	return (struct ofi_tp *)tp;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t fnv(uint64_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
	return h;
}

/* Same host: same hostname and same boot (containers may share a name). */
static uint64_t host_id(void)
{
	char buf[320] = {0};
	uint64_t h = 0xcbf29ce484222325ull;
	int fd;

	gethostname(buf, 255);
	h = fnv(h, buf, strlen(buf));
	fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		if (n > 0)
			h = fnv(h, buf, (size_t)n);
		close(fd);
	}
	return h;
}

static int fi_err(int ret)
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

static struct fi_info *make_hints(const char *prov, bool atomics)
{
	struct fi_info *h = fi_allocinfo();

	if (h == NULL)
		return NULL;
	h->caps = FI_MSG | FI_RMA | (atomics ? FI_ATOMIC : 0);
	h->ep_attr->type = FI_EP_RDM;
	h->mode = FI_CONTEXT | FI_CONTEXT2;
	h->domain_attr->mr_mode =
	        FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY | FI_MR_ENDPOINT;
	h->domain_attr->threading = FI_THREAD_DOMAIN;
	h->tx_attr->msg_order = FI_ORDER_SAS;
	if (prov)
		h->fabric_attr->prov_name = strdup(prov);
	return h;
}

static struct fi_info *get_info(const char *prov)
{
	struct fi_info *info = NULL;

	for (int atomics = 1; atomics >= 0; atomics--) {
		struct fi_info *h = make_hints(prov, atomics);
		int ret;

		if (h == NULL)
			return NULL;
		ret = fi_getinfo(OFI_VERSION, NULL, NULL, 0, h, &info);
		fi_freeinfo(h);
		if (ret == 0 && info)
			return info;
	}
	return NULL;
}

/* "shm, tcp;ofi_rxm, ..." for the error message. */
static void list_providers(char *out, size_t n)
{
	struct fi_info *info = get_info(NULL);
	size_t used = 0;

	out[0] = '\0';
	for (struct fi_info *i = info; i; i = i->next) {
		const char *p = i->fabric_attr->prov_name;
		if (strstr(out, p))
			continue;
		int r = snprintf(out + used, n - used, "%s%s", used ? ", " : "", p);
		if (r < 0 || (size_t)r >= n - used)
			break;
		used += (size_t)r;
	}
	if (info)
		fi_freeinfo(info);
	if (used == 0)
		snprintf(out, n, "none");
}

static int choose_provider(struct ofi_tp *t, const char *want, bool one_host)
{
	static const char *const remote_pref[] = {"verbs;ofi_rxm", "efa", "cxi", "tcp;ofi_rxm"};
	char avail[512];

	if (want && *want) {
		t->info = get_info(want);
		if (t->info)
			return 0;
		list_providers(avail, sizeof(avail));
		DSM_LOG(DSM_LOG_ERROR,
		        "transport: provider '%s' is not available for RDM endpoints with "
		        "messages and RMA here; available: %s",
		        want, avail);
		return DSM_ERR_NO_PROVIDER;
	}
	if (one_host && (t->info = get_info("shm")) != NULL)
		return 0;
	for (size_t i = 0; i < sizeof(remote_pref) / sizeof(remote_pref[0]); i++)
		if ((t->info = get_info(remote_pref[i])) != NULL)
			return 0;
	list_providers(avail, sizeof(avail));
	DSM_LOG(DSM_LOG_ERROR, "transport: no usable provider; available: %s", avail);
	return DSM_ERR_NO_PROVIDER;
}

static int reg(struct ofi_tp *t, void *buf, size_t len, uint64_t key, struct fid_mr **mr_p)
{
	uint64_t access = FI_SEND | FI_RECV | FI_READ | FI_WRITE | FI_REMOTE_READ | FI_REMOTE_WRITE;
	int ret = fi_mr_reg(t->domain, buf, len, access, 0, key, 0, mr_p, NULL);

	if (ret) {
		DSM_LOG(DSM_LOG_ERROR, "transport: fi_mr_reg of %zu bytes: %s", len,
		        fi_strerror(-ret));
		return fi_err(ret);
	}
	if (t->mr_endpoint) {
		ret = fi_mr_bind(*mr_p, &t->ep->fid, 0);
		if (ret == 0)
			ret = fi_mr_enable(*mr_p);
		if (ret) {
			DSM_LOG(DSM_LOG_ERROR, "transport: binding a region: %s",
			        fi_strerror(-ret));
			fi_close(&(*mr_p)->fid);
			return fi_err(ret);
		}
	}
	return 0;
}

static void post_recv(struct ofi_tp *t, struct ofi_op *op)
{
	ssize_t ret = fi_recv(t->ep, op->buf, t->bufsz, op->desc, FI_ADDR_UNSPEC, op);

	if (ret == 0)
		return;
	if (ret != -FI_EAGAIN)
		DSM_LOG(DSM_LOG_WARN, "transport: fi_recv: %s", fi_strerror((int)-ret));
	op->next = t->repost;
	t->repost = op;
}

static void ofi_release(dsm_tp_t *tp, void *tok)
{
	post_recv(ot(tp), tok);
}

/*
 * The doorbell: a peer that has announced it sleeps gets one ring. The peer
 * stores its flag, fences, then polls once more; we change its queues (or
 * fail to, see try_post), fence, then look at the flag. Either its poll sees
 * our change or we see its flag (Dekker): no third order exists.
 */
static void ring(struct ofi_tp *t, int peer)
{
	struct ofi_peer *p = &t->peers[peer];
	char b = 1;

	if (p->flag == NULL)
		return;
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(p->flag, memory_order_relaxed) == 0)
		return;
	if (atomic_exchange(p->flag, 0) == 0)
		return;
	t->core.st.doorbells++;
	if (sendto(t->bell_fd, &b, 1, MSG_DONTWAIT, (struct sockaddr *)&p->bell, p->bell_len) < 0 &&
	    errno != EAGAIN && errno != ECONNREFUSED)
		DSM_LOG_ERRNO(DSM_LOG_DEBUG, "transport: ringing rank %d", peer);
}

static void op_started(struct ofi_tp *t, int peer)
{
	t->inflight++;
	t->peers[peer].inflight++;
}

/* Operations with a dead peer were written off in peer_died(). */
static void op_finished(struct ofi_tp *t, int peer)
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
static bool tx_may_take(const struct ofi_tp *t, int peer)
{
	int share = t->tp.size <= 2 ? t->ntx : t->ntx > 1 ? t->ntx / 2 : 1;

	return t->tx_free && t->peers[peer].tx_held < share;
}

/* A pool buffer comes back (its send completed or failed, or never went). */
static void tx_give(struct ofi_tp *t, struct ofi_op *op)
{
	t->peers[op->peer].tx_held--;
	op->next = t->tx_free;
	t->tx_free = op;
}

/*
 * Tries to post @op. 0: posted (or finished); -FI_EAGAIN: not now; else an
 * error. Either way the peer is rung if it sleeps: shm refuses a post with
 * -FI_EAGAIN exactly when it waits for the peer's progress (the first
 * contact, until the peer has mapped our region and taken our name; the
 * peer's command queue full; a segmented transfer with it under way), so a
 * refused post must wake the peer as surely as an accepted one.
 */
static int try_post(struct ofi_tp *t, struct ofi_op *op)
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
				op_started(t, peer);
			break;
		}
		if (!tx_may_take(t, peer)) {
			p->q_why = t->tx_free ? "its share of the send buffers is in flight"
			                      : "no free send buffer";
			return -FI_EAGAIN;
		}
		struct ofi_op *tx = t->tx_free;
		memcpy(tx->buf, op->buf, op->len);
		tx->len = op->len;
		tx->peer = op->peer;
		ret = fi_send(t->ep, tx->buf, tx->len, tx->desc, p->addr, tx);
		if (ret == 0) {
			t->tx_free = tx->next;
			p->tx_held++;
			op_started(t, peer);
			free(op->buf);
			free(op);
		}
		break;
	case OP_TX:
		ret = fi_send(t->ep, op->buf, op->len, op->desc, p->addr, op);
		if (ret == 0)
			op_started(t, peer);
		break;
	case OP_READ:
		ret = fi_read(t->ep, op->local, op->len, op->desc, p->addr, op->raddr, op->rkey,
		              op);
		if (ret == 0)
			op_started(t, peer);
		break;
	case OP_WRITE:
		ret = fi_write(t->ep, op->local, op->len, op->desc, p->addr, op->raddr, op->rkey,
		               op);
		if (ret == 0)
			op_started(t, peer);
		break;
	default:
		return -EINVAL;
	}
	if (ret == -FI_EAGAIN)
		p->q_why = "the provider said -FI_EAGAIN";
	if (ret == 0 || ret == -FI_EAGAIN)
		ring(t, peer);
	return (int)ret;
}

static void enqueue(struct ofi_tp *t, struct ofi_op *op)
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

static void rma_link(struct ofi_tp *t, struct ofi_op *op)
{
	op->rma_prev = NULL;
	op->rma_next = t->rma_live;
	if (t->rma_live)
		t->rma_live->rma_prev = op;
	t->rma_live = op;
}

static void rma_unlink(struct ofi_tp *t, struct ofi_op *op)
{
	if (op->rma_prev)
		op->rma_prev->rma_next = op->rma_next;
	else
		t->rma_live = op->rma_next;
	if (op->rma_next)
		op->rma_next->rma_prev = op->rma_prev;
}

static void rma_done(struct ofi_tp *t, struct ofi_op *op, int status)
{
	struct dsm_tp_event ev = {.type = DSM_TP_EV_RMA,
	                          .peer = op->peer,
	                          .status = status,
	                          .len = op->len,
	                          .ctx = op->ctx};

	rma_unlink(t, op);
	if (!op->orphan)
		dsm_tp_core_push(&t->core, &ev, NULL, NULL);
	free(op);
}

static const char *op_name(int kind)
{
	static const char *const names[] = {"receive", "send", "send", "RMA read", "RMA write"};

	return kind >= 0 && kind <= OP_WRITE ? names[kind] : "?";
}

#define OFI_STUCK_NS (5 * 1000000000ull) /* a queue head this old gets one warning */

/* The head of @peer's queue was refused again: warn once if it has waited for long. */
static void queue_stuck(struct ofi_tp *t, int peer)
{
	struct ofi_peer *p = &t->peers[peer];
	uint64_t now = now_ns();

	if (p->q_stuck_since == 0) {
		p->q_stuck_since = now;
		return;
	}
	if (p->q_warned || now - p->q_stuck_since < OFI_STUCK_NS)
		return;
	p->q_warned = true;
	DSM_LOG(DSM_LOG_WARN,
	        "transport: the queue to rank %d has not moved for %.1f s: its first %s (%zu "
	        "bytes) waits, %s; %zu queued for it, %d operations in flight with it",
	        peer, (double)(now - p->q_stuck_since) / 1e9, op_name(p->q_head->kind),
	        p->q_head->len, p->q_why ? p->q_why : "?", p->qlen, p->inflight);
}

/* The head of @peer's queue moves (posted, failed, or dropped with the peer). */
static void queue_moves(struct ofi_peer *p, int peer)
{
	if (p->q_warned)
		DSM_LOG(DSM_LOG_WARN, "transport: the queue to rank %d moves again after %.1f s",
		        peer, (double)(now_ns() - p->q_stuck_since) / 1e9);
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
		int ret = try_post(t, op); /* @op may be freed */

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
		DSM_LOG(DSM_LOG_ERROR, "transport: posting to rank %d: %s", op->peer,
		        fi_strerror(-ret));
		if (op->kind == OP_READ || op->kind == OP_WRITE) {
			rma_done(t, op, fi_err(ret));
		} else if (op->kind == OP_TX) {
			tx_give(t, op);
		} else {
			free(op->buf);
			free(op);
		}
	}
}

/* Drains every peer's queue, starting with a different peer each time. */
static void drain(struct ofi_tp *t)
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

/* shm transports open in this process. */
static atomic_int shm_open_count;

/*
 * shm names its region in /dev/shm after the process ("<pid>:<uid>:<n>"). While this
 * process has no shm transport open, a region named after our pid can only be the leftover
 * of a dead process that had our pid before us (a killed rank leaves its region, and pids
 * come round again): remove it, so that ours is not made over it.
 */
static void shm_unlink_stale(void)
{
	char pre[24];
	int n = snprintf(pre, sizeof(pre), "%d:", (int)getpid());
	DIR *d;

	if (atomic_load(&shm_open_count) != 0 || (d = opendir("/dev/shm")) == NULL)
		return;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		if (strncmp(e->d_name, pre, (size_t)n) == 0 && shm_unlink(e->d_name) == 0)
			DSM_LOG(DSM_LOG_WARN,
			        "transport: removed /dev/shm/%s, left by a dead process that had "
			        "this pid",
			        e->d_name);
	closedir(d);
}

/*
 * @peer is dead. @noticed: we found out ourselves (pidfd, connection error, heartbeats), not
 * from another rank's notice: tell every live rank, so that a rank that leaves because of
 * this death (the runtime exits on one) is not taken for its cause by the others.
 */
static void peer_died(struct ofi_tp *t, int peer, bool noticed)
{
	struct dsm_tp_event ev = {
	        .type = DSM_TP_EV_PEER_DEAD, .peer = peer, .status = DSM_ERR_PEER_DEAD};
	struct ofi_peer *p = &t->peers[peer];

	if (p->dead)
		return;
	p->dead = true;
	/* A SIGKILLed rank leaves shm's region behind; its name is known. */
	if (t->peers[peer].shm_name[0] && shm_unlink(t->peers[peer].shm_name) == 0)
		DSM_LOG(DSM_LOG_INFO, "transport: unlinked /dev/shm/%s of dead rank %d",
		        t->peers[peer].shm_name, peer);
	t->inflight -= t->peers[peer].inflight;
	t->peers[peer].inflight = 0;
	t->core.st.peers_dead++;
	DSM_LOG(DSM_LOG_WARN, "transport: rank %d died", peer);
	if (noticed) {
		struct dsm_tp_ctrl m = {.op = DSM_TP_CTRL_DEAD, .chunk = (uint64_t)peer};

		for (int i = 0; i < t->tp.size; i++)
			if (i != t->tp.rank && !t->peers[i].dead)
				dsm_tp_ctrl_send(&t->tp, i, &m);
	}
	dsm_tp_core_push(&t->core, &ev, NULL, NULL);
	dsm_tp_ctrl_peer_dead(&t->tp, peer);
	/* Nothing queued for it will ever go; RMA waiting on it fails now. */
	p->q_stuck_since = 0;
	p->q_warned = false;
	p->q_why = NULL;
	t->queued -= p->qlen;
	p->qlen = 0;
	while (p->q_head) {
		struct ofi_op *op = p->q_head;

		p->q_head = op->next;
		if (op->kind == OP_READ || op->kind == OP_WRITE) {
			rma_done(t, op, DSM_ERR_PEER_DEAD);
		} else if (op->kind == OP_TX) {
			tx_give(t, op);
		} else {
			free(op->buf);
			free(op);
		}
	}
	p->q_tail = &p->q_head; /* drain() takes it off busyv */
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

static int progress(struct ofi_tp *t);

static void check_deaths(struct ofi_tp *t)
{
	struct pollfd pf[64];
	int map[64];
	int n = 0;

	for (int i = 0; i <= t->tp.size; i++) {
		if (n == 64 || (i == t->tp.size && n > 0)) {
			/* A rank that exits because another died says so first (peer_died):
			 * take in what has arrived before declaring anyone dead, so that the
			 * notice of the first death comes before the exit it caused. */
			if (poll(pf, (nfds_t)n, 0) > 0) {
				progress(t);
				for (int j = 0; j < n; j++)
					if (pf[j].revents)
						peer_died(t, map[j], true);
			}
			n = 0;
		}
		if (i < t->tp.size && t->peers[i].pidfd >= 0 && !t->peers[i].dead) {
			pf[n].fd = t->peers[i].pidfd;
			pf[n].events = POLLIN;
			pf[n].revents = 0;
			map[n++] = i;
		}
	}
	t->next_death_check = now_ns() + OFI_DEATH_NS;
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

/*
 * Heartbeats on a ring, for peers no pidfd watches (another host, or
 * DSM_TP_NO_PIDFD): each rank beats to its successor every period; a
 * predecessor silent for OFI_HB_DEAD periods is dead, and the rank that noticed
 * tells everyone. A send to a dead tcp peer also fails, which cq_error()
 * turns into the same report.
 */
static void heartbeat(struct ofi_tp *t, uint64_t now)
{
	struct dsm_tp_ctrl hb = {.op = DSM_TP_CTRL_HEARTBEAT};
	int succ = ring_next(t, 1), pred = ring_next(t, -1);

	if (t->hb_fd < 0)
		return;
	if (now >= t->next_hb && succ >= 0) {
		t->next_hb = now + t->hb_ns;
		dsm_tp_ctrl_send(&t->tp, succ, &hb);
	}
	if (pred >= 0 && t->peers[pred].pidfd < 0 &&
	    now - t->peers[pred].last_hb > OFI_HB_DEAD * t->hb_ns) {
		DSM_LOG(DSM_LOG_WARN, "transport: no heartbeat from rank %d for %llu ms", pred,
		        (unsigned long long)((now - t->peers[pred].last_hb) / 1000000));
		peer_died(t, pred, true);
		/* our new predecessor gets a full period of grace */
		if ((pred = ring_next(t, -1)) >= 0)
			t->peers[pred].last_hb = now;
	}
}

static int ofi_ctrl(dsm_tp_t *tp, int peer, const struct dsm_tp_ctrl *m)
{
	struct ofi_tp *t = ot(tp);

	if (m->op == DSM_TP_CTRL_HEARTBEAT) {
		t->peers[peer].last_hb = now_ns();
		return 0;
	}
	if (m->op == DSM_TP_CTRL_DEAD && m->chunk < (uint64_t)tp->size &&
	    (int)m->chunk != tp->rank) {
		int pred = ring_next(t, -1);
		peer_died(t, (int)m->chunk, false);
		if (ring_next(t, -1) != pred && ring_next(t, -1) >= 0)
			t->peers[ring_next(t, -1)].last_hb = now_ns();
		return 0;
	}
	return -EINVAL;
}

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
		DSM_LOG(DSM_LOG_DEBUG, "transport: receive error: %s", fi_strerror(e.err));
		post_recv(t, op);
		return;
	case OP_TX:
		op_finished(t, op->peer);
		DSM_LOG(DSM_LOG_WARN, "transport: send to rank %d failed: %s", op->peer,
		        fi_strerror(e.err));
		tx_give(t, op);
		break;
	case OP_COPY:
		op_finished(t, op->peer);
		free(op->buf);
		free(op);
		return;
	default:
		op_finished(t, op->peer);
		DSM_LOG(DSM_LOG_WARN, "transport: RMA with rank %d failed: %s", op->peer,
		        fi_strerror(e.err));
		rma_done(t, op, -e.err);
		break;
	}
	if (conn_error(e.err))
		peer_died(t, peer, true);
}

/* Reads the CQ into the event queue. Returns entries handled. */
static int progress(struct ofi_tp *t)
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
					post_recv(t, op);
				break;
			case OP_TX:
				op_finished(t, op->peer);
				tx_give(t, op);
				break;
			case OP_COPY:
				op_finished(t, op->peer);
				free(op->buf);
				free(op);
				break;
			case OP_READ:
			case OP_WRITE:
				op_finished(t, op->peer);
				rma_done(t, op, 0);
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
		DSM_LOG(DSM_LOG_WARN, "transport: fi_cq_read: %s", fi_strerror((int)-n));
	return total;
}

static int ofi_poll(dsm_tp_t *tp, struct dsm_tp_event *ev, int max)
{
	struct ofi_tp *t = ot(tp);

	dsm_tp_core_release(&t->core);
	while (t->repost) {
		struct ofi_op *op = t->repost;
		t->repost = op->next;
		post_recv(t, op);
		if (t->repost == op)
			break;
	}
	drain(t);
	progress(t);
	t->busy_rr++; /* the buffers progress freed go to a different queue first each time */
	drain(t);
	/* Multi-step transfers (shm's segmented sends, reads the target serves)
	 * go on inside our progress without a post: whoever they wait for next
	 * must not be asleep. */
	for (int i = 0; t->inflight && t->bell_fd >= 0 && i < t->tp.size; i++)
		if (t->peers[i].inflight)
			ring(t, i);
	if (now_ns() >= t->next_death_check)
		check_deaths(t);
	heartbeat(t, now_ns());
	return dsm_tp_core_pop(&t->core, ev, max);
}

static int check_peer(struct ofi_tp *t, int peer)
{
	if (peer < 0 || peer >= t->tp.size)
		return -EINVAL;
	if (t->peers[peer].dead)
		return DSM_ERR_PEER_DEAD;
	return 0;
}

/* A send that waits or goes from a copy of its own: @n bytes of @data (NULL: filled later). */
static struct ofi_op *copy_op(int peer, const void *data, size_t n)
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

/* A send to @peer did not happen: give its sequence number back (a gap would stall the
 * pair) and uncount it. */
static void unsend(struct ofi_tp *t, int peer)
{
	t->core.tx_seq[peer]--;
	t->core.st.msgs_sent--;
}

static int ofi_send(dsm_tp_t *tp, int peer, unsigned type, const void *buf, size_t len)
{
	struct ofi_tp *t = ot(tp);
	struct dsm_tp_wire_hdr h;
	size_t n = sizeof(h) + len;
	struct ofi_op *op;
	int ret;

	ret = dsm_tp_core_check_send(&t->core, peer, type, len);
	if (ret == 0)
		ret = check_peer(t, peer);
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
			ring(t, peer);
			return 0;
		}
	}
	/* Pool buffers are only ever free or in flight, never queued: a send that waits gets a
	 * copy of its own and takes a buffer when its turn comes (buffers held by sends queued
	 * behind a head that needs one would never come back: the 4-rank shm wedge). */
	if (t->peers[peer].q_head == NULL && tx_may_take(t, peer)) {
		op = t->tx_free;
		t->tx_free = op->next;
		t->peers[peer].tx_held++;
		op->kind = OP_TX;
	} else if ((op = copy_op(peer, NULL, n)) == NULL) {
		unsend(t, peer);
		return -ENOMEM;
	}
	op->peer = peer;
	op->len = n;
	memcpy(op->buf, &h, sizeof(h));
	if (len)
		memcpy(op->buf + sizeof(h), buf, len);
	if (t->peers[peer].q_head == NULL) {
		ret = try_post(t, op);
		if (ret == 0)
			return 0;
		if (ret != -FI_EAGAIN) {
			DSM_LOG(DSM_LOG_ERROR, "transport: send to rank %d: %s", peer,
			        fi_strerror(-ret));
			if (op->kind == OP_TX) {
				tx_give(t, op);
			} else {
				free(op->buf);
				free(op);
			}
			unsend(t, peer);
			return fi_err(ret);
		}
		if (op->kind == OP_TX) {
			/* Refused: it waits as a copy of its own, and the pool buffer goes back. */
			struct ofi_op *c = copy_op(peer, op->buf, n);

			tx_give(t, op);
			if (c == NULL) {
				unsend(t, peer);
				return -ENOMEM;
			}
			op = c;
		}
	}
	enqueue(t, op);
	ring(t, peer); /* what blocks the queue may be waiting for its progress */
	return 0;
}

static int ofi_send_raw(dsm_tp_t *tp, int peer, const void *buf, size_t len)
{
	struct ofi_tp *t = ot(tp);
	struct ofi_op *op;
	int ret = check_peer(t, peer);

	if (ret)
		return ret;
	op = copy_op(peer, buf, len);
	if (op == NULL)
		return -ENOMEM;
	enqueue(t, op);
	drain(t);
	return 0;
}

static int rma_post(struct ofi_tp *t, int kind, int peer, void *local, size_t len, dsm_tp_mr_t *lmr,
                    uint64_t raddr, uint64_t rkey, void *ctx)
{
	struct ofi_op *op;
	int ret = check_peer(t, peer);

	if (ret)
		return ret;
	if (t->mr_local && lmr == NULL) {
		DSM_LOG(DSM_LOG_ERROR, "transport: %s needs a registered local buffer", t->prov);
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
	op->rkey = rkey;
	op->ctx = ctx;
	rma_link(t, op);
	if (kind == OP_READ)
		t->core.st.rma_reads++;
	else
		t->core.st.rma_writes++;
	t->core.st.rma_bytes += len;
	if (t->peers[peer].q_head == NULL) {
		ret = try_post(t, op);
		if (ret == 0)
			return 0;
		if (ret != -FI_EAGAIN) {
			DSM_LOG(DSM_LOG_ERROR, "transport: RMA with rank %d: %s", peer,
			        fi_strerror(-ret));
			rma_unlink(t, op);
			free(op);
			return fi_err(ret);
		}
	}
	DSM_LOG(DSM_LOG_DEBUG, "transport: RMA to rank %d queued", peer);
	enqueue(t, op);
	ring(t, peer);
	return 0;
}

static int ofi_read(dsm_tp_t *tp, int peer, void *local, size_t len, dsm_tp_mr_t *lmr,
                    uint64_t raddr, uint64_t rkey, void *ctx)
{
	return rma_post(ot(tp), OP_READ, peer, local, len, lmr, raddr, rkey, ctx);
}

static int ofi_write(dsm_tp_t *tp, int peer, const void *local, size_t len, dsm_tp_mr_t *lmr,
                     uint64_t raddr, uint64_t rkey, void *ctx)
{
	return rma_post(ot(tp), OP_WRITE, peer, (void *)local, len, lmr, raddr, rkey, ctx);
}

static int ofi_mr_reg(dsm_tp_t *tp, void *addr, size_t len, uint64_t want_key, dsm_tp_mr_t **mr_p)
{
	struct ofi_tp *t = ot(tp);
	struct ofi_mr *m = calloc(1, sizeof(*m));
	int ret;

	if (m == NULL)
		return -ENOMEM;
	ret = reg(t, addr, len, t->own_keys ? t->next_key++ : want_key, &m->mr);
	if (ret) {
		free(m);
		return ret;
	}
	m->pub.addr = addr;
	m->pub.len = len;
	m->pub.key = fi_mr_key(m->mr);
	m->pub.desc = fi_mr_desc(m->mr);
	m->pub.impl = m;
	t->core.st.bytes_registered += len;
	*mr_p = &m->pub;
	return 0;
}

static int ofi_mr_dereg(dsm_tp_t *tp, dsm_tp_mr_t *mr)
{
	struct ofi_tp *t = ot(tp);
	struct ofi_mr *m = mr->impl;
	int ret = fi_close(&m->mr->fid);

	if (ret)
		DSM_LOG(DSM_LOG_WARN, "transport: closing a region: %s", fi_strerror(-ret));
	t->core.st.bytes_registered -= mr->len;
	free(m);
	return fi_err(ret);
}

static int ofi_wait_fd(dsm_tp_t *tp)
{
	return ot(tp)->epfd;
}

static int ofi_sleep_prepare(dsm_tp_t *tp)
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
		/* Our own operations complete only through our progress. */
		if (t->inflight)
			return -EAGAIN;
		/* Announce, fence, look once more: a peer that posted before seeing
		 * the flag is found by this poll, one after it rings. */
		atomic_store(t->my_flag, 1);
		atomic_thread_fence(memory_order_seq_cst);
		progress(t);
		if (dsm_tp_core_pending(&t->core)) {
			atomic_store(t->my_flag, 0);
			return -EAGAIN;
		}
	}
	check_deaths(t);
	if (dsm_tp_core_pending(&t->core)) {
		if (t->my_flag)
			atomic_store(t->my_flag, 0);
		return -EAGAIN;
	}
	t->core.st.sleeps++;
	return 0;
}

static void ofi_sleep_end(dsm_tp_t *tp)
{
	struct ofi_tp *t = ot(tp);
	char b[64];

	if (t->my_flag)
		atomic_store(t->my_flag, 0);
	if (t->bell_fd >= 0)
		while (recv(t->bell_fd, b, sizeof(b), MSG_DONTWAIT) > 0)
			;
	if (t->hb_fd >= 0 && read(t->hb_fd, b, 8) < 0 && errno != EAGAIN)
		DSM_LOG_ERRNO(DSM_LOG_DEBUG, "transport: reading the heartbeat timer");
	t->next_death_check = 0;
}

static int ofi_stats(dsm_tp_t *tp, struct dsm_tp_stats *out)
{
	struct ofi_tp *t = ot(tp);

	*out = t->core.st;
	out->pending = (uint64_t)t->inflight + t->tp.key_waits;
	out->pending += t->queued;
	return 0;
}

static void ofi_describe(dsm_tp_t *tp, int peer, FILE *f)
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
		        r, p->qlen, op_name(p->q_head->kind), p->q_head->len,
		        p->q_stuck_since ? (double)(now_ns() - p->q_stuck_since) / 1e9 : 0.0,
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

/* Exiting without close: shm's region and our sleep flag would stay in /dev/shm. */
static void ofi_abandon(dsm_tp_t *tp)
{
	struct ofi_tp *t = ot(tp);

	if (t->peers && t->peers[tp->rank].shm_name[0])
		shm_unlink(t->peers[tp->rank].shm_name);
	if (t->flag_name[0])
		shm_unlink(t->flag_name);
}

static int open_fabric(struct ofi_tp *t)
{
	struct fi_cq_attr cqa = {.size = 4096, .format = FI_CQ_FORMAT_MSG, .wait_obj = FI_WAIT_FD};
	struct fi_av_attr ava = {.type = FI_AV_TABLE};
	int ret;

	ret = fi_fabric(t->info->fabric_attr, &t->fabric, NULL);
	if (ret == 0)
		ret = fi_domain(t->fabric, t->info, &t->domain, NULL);
	if (ret == 0)
		ret = fi_av_open(t->domain, &ava, &t->av, NULL);
	if (ret) {
		DSM_LOG(DSM_LOG_ERROR, "transport: opening %s: %s", t->prov, fi_strerror(-ret));
		return fi_err(ret);
	}
	/* DSM_TP_NO_WAIT_FD: debugging knob, forces the doorbell path on any provider. */
	if (getenv("DSM_TP_NO_WAIT_FD"))
		ret = -FI_ENOSYS;
	else
		ret = fi_cq_open(t->domain, &cqa, &t->cq, NULL);
	if (ret == 0 && fi_control(&t->cq->fid, FI_GETWAIT, &t->cq_fd) != 0) {
		fi_close(&t->cq->fid);
		ret = -FI_ENOSYS;
	}
	if (ret) {
		/* shm: no wait fd (TRAPS.md); the doorbell stands in. */
		cqa.wait_obj = FI_WAIT_NONE;
		t->cq_fd = -1;
		ret = fi_cq_open(t->domain, &cqa, &t->cq, NULL);
	}
	if (ret == 0 && strcmp(t->prov, "shm") == 0) {
		shm_unlink_stale();
		atomic_fetch_add(&shm_open_count, 1);
		t->shm_counted = true;
	}
	if (ret == 0)
		ret = fi_endpoint(t->domain, t->info, &t->ep, NULL);
	if (ret == 0)
		ret = fi_ep_bind(t->ep, &t->cq->fid, FI_TRANSMIT | FI_RECV);
	if (ret == 0)
		ret = fi_ep_bind(t->ep, &t->av->fid, 0);
	if (ret == 0)
		ret = fi_enable(t->ep);
	if (ret) {
		DSM_LOG(DSM_LOG_ERROR, "transport: opening an endpoint on %s: %s", t->prov,
		        fi_strerror(-ret));
		return fi_err(ret);
	}
	return 0;
}

static int open_pools(struct ofi_tp *t)
{
	const char *e = getenv("DSM_TP_SEND_BUFS");
	size_t rx_bytes = (size_t)OFI_NRX * t->bufsz, tx_bytes;
	int ret;

	t->ntx = OFI_NTX;
	if (e) {
		char *end;
		long v = strtol(e, &end, 10);

		if (*e == 0 || *end || v < 1 || v > 65536) {
			DSM_LOG(DSM_LOG_ERROR, "transport: DSM_TP_SEND_BUFS=%s: want 1 to 65536",
			        e);
			return -EINVAL;
		}
		t->ntx = (int)v;
	}
	tx_bytes = (size_t)t->ntx * t->bufsz;

	t->rx_mem = aligned_alloc(4096, (rx_bytes + 4095) & ~(size_t)4095);
	t->tx_mem = aligned_alloc(4096, (tx_bytes + 4095) & ~(size_t)4095);
	t->rx_ops = calloc(OFI_NRX, sizeof(*t->rx_ops));
	t->tx_ops = calloc((size_t)t->ntx, sizeof(*t->tx_ops));
	if (!t->rx_mem || !t->tx_mem || !t->rx_ops || !t->tx_ops)
		return -ENOMEM;
	if (t->mr_local) {
		ret = reg(t, t->rx_mem, rx_bytes, OFI_POOL_KEY_RX, &t->rx_mr);
		if (ret == 0)
			ret = reg(t, t->tx_mem, tx_bytes, OFI_POOL_KEY_TX, &t->tx_mr);
		if (ret)
			return ret;
	}
	for (int i = 0; i < t->ntx; i++) {
		struct ofi_op *op = &t->tx_ops[i];
		op->kind = OP_TX;
		op->buf = t->tx_mem + (size_t)i * t->bufsz;
		op->desc = t->tx_mr ? fi_mr_desc(t->tx_mr) : NULL;
		op->next = t->tx_free;
		t->tx_free = op;
	}
	for (int i = 0; i < OFI_NRX; i++) {
		struct ofi_op *op = &t->rx_ops[i];
		op->kind = OP_RX;
		op->buf = t->rx_mem + (size_t)i * t->bufsz;
		op->desc = t->rx_mr ? fi_mr_desc(t->rx_mr) : NULL;
		post_recv(t, op);
	}
	return 0;
}

static void bell_addr(struct sockaddr_un *a, socklen_t *len, uint64_t jobkey, int rank)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	/* Abstract namespace: nothing to unlink, gone with the process. */
	int n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "libdsm-%016llx-%d",
	                 (unsigned long long)jobkey, rank);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/* Phase one of the doorbell: our socket and our flag page. */
static int open_bell(struct ofi_tp *t, uint64_t jobkey)
{
	struct sockaddr_un a;
	socklen_t alen;
	int fd;

	bell_addr(&a, &alen, jobkey, t->tp.rank);
	t->bell_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (t->bell_fd < 0 || bind(t->bell_fd, (struct sockaddr *)&a, alen) != 0) {
		DSM_LOG_ERRNO(DSM_LOG_ERROR, "transport: doorbell socket");
		return -errno;
	}
	snprintf(t->flag_name, sizeof(t->flag_name), "/libdsm-%016llx-%d",
	         (unsigned long long)jobkey, t->tp.rank);
	fd = shm_open(t->flag_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, 4096) != 0) {
		DSM_LOG_ERRNO(DSM_LOG_ERROR, "transport: sleep flag %s", t->flag_name);
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	t->my_flag = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (t->my_flag == MAP_FAILED) {
		t->my_flag = NULL;
		return -errno;
	}
	return 0;
}

/* Phase two: map every same-host peer's flag. */
static int connect_bells(struct ofi_tp *t, uint64_t jobkey)
{
	for (int i = 0; i < t->tp.size; i++) {
		struct ofi_peer *p = &t->peers[i];
		char name[64];
		int fd;
		void *m;

		if (i == t->tp.rank) {
			p->flag = t->my_flag;
		} else {
			snprintf(name, sizeof(name), "/libdsm-%016llx-%d",
			         (unsigned long long)jobkey, i);
			fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
			if (fd < 0) {
				DSM_LOG_ERRNO(DSM_LOG_ERROR, "transport: sleep flag of rank %d", i);
				return -errno;
			}
			m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			close(fd);
			if (m == MAP_FAILED)
				return -errno;
			p->flag = m;
		}
		bell_addr(&p->bell, &p->bell_len, jobkey, i);
	}
	return 0;
}

static int epoll_add(int epfd, int fd)
{
	struct epoll_event e = {.events = EPOLLIN};

	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) != 0) {
		DSM_LOG_ERRNO(DSM_LOG_ERROR, "transport: epoll_ctl");
		return -errno;
	}
	return 0;
}

static int ofi_close(dsm_tp_t *tp);

static int open_heartbeat(struct ofi_tp *t)
{
	const char *e = getenv("DSM_TP_HEARTBEAT_MS");
	long ms = e ? atol(e) : OFI_HB_MS;
	struct itimerspec its;
	uint64_t now = now_ns();

	if (ms <= 0 || t->tp.size < 2)
		return 0;
	t->hb_ns = (uint64_t)ms * 1000000ull;
	t->hb_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (t->hb_fd < 0) {
		DSM_LOG_ERRNO(DSM_LOG_ERROR, "transport: timerfd_create");
		return -errno;
	}
	its.it_interval.tv_sec = ms / 1000;
	its.it_interval.tv_nsec = ms % 1000 * 1000000;
	its.it_value = its.it_interval;
	if (timerfd_settime(t->hb_fd, 0, &its, NULL) != 0) {
		DSM_LOG_ERRNO(DSM_LOG_ERROR, "transport: timerfd_settime");
		return -errno;
	}
	for (int i = 0; i < t->tp.size; i++)
		t->peers[i].last_hb = now;
	t->next_hb = now;
	return epoll_add(t->epfd, t->hb_fd);
}

/*
 * DSM_MR_PROV_KEY=1: behave as on verbs or efa, where the provider chooses
 * keys and (shm only, see below) needs local descriptors, so that those
 * paths run here. shm takes
 * FI_MR_PROV_KEY in the domain attributes and chooses keys itself;
 * tcp;ofi_rxm (1.17) accepts the flag but uses the requested key, so we
 * request keys from a counter that no peer can compute.
 */
static void force_prov_key(struct ofi_tp *t)
{
	const char *e = getenv("DSM_MR_PROV_KEY");

	if (e == NULL || atoi(e) == 0)
		return;
	t->info->domain_attr->mr_mode |= FI_MR_PROV_KEY;
	/* rxm 1.17 with a forced FI_MR_LOCAL fails its receives (measured:
	 * thousands of messages dropped), so local descriptors are forced on shm. */
	if (strcmp(t->prov, "shm") == 0)
		t->info->domain_attr->mr_mode |= FI_MR_LOCAL;
	t->own_keys = true;
	t->next_key = 1ull << 48; /* above the pools' and any test's keys */
}

/*
 * A peer that dies leaves sockets (tcp, the doorbell) whose next write raises
 * SIGPIPE, and its default action would kill this rank too: a dead peer must
 * be an error, not a second death. Only a default disposition is changed.
 */
static void ignore_sigpipe(void)
{
	struct sigaction old, ign = {.sa_handler = SIG_IGN};

	if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
	    !(old.sa_flags & SA_SIGINFO)) {
		sigemptyset(&ign.sa_mask);
		sigaction(SIGPIPE, &ign, NULL);
		DSM_LOG(DSM_LOG_INFO, "transport: SIGPIPE ignored (it was the default)");
	}
}

static int ofi_open(const struct dsm_tp_attr *attr, dsm_tp_t **tp_p)
{
	const struct dsm_tp_boot *b = attr->boot;
	struct ofi_card *cards = NULL, mine;
	struct ofi_tp *t;
	const char *want = attr->provider ? attr->provider : getenv("DSM_PROVIDER");
	bool one_host = true;
	uint64_t jobkey;
	size_t namelen = OFI_NAME_MAX;
	int ret;

	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return -ENOMEM;
	t->tp.ops = &dsm_tp_ofi_ops;
	t->tp.rank = b->rank;
	t->tp.size = b->size;
	t->tp.boot = b;
	t->tp.msg_max = attr->msg_max ? attr->msg_max : DSM_TP_MSG_MAX_DEFAULT;
	t->tp.prov = t->prov;
	t->bufsz = sizeof(struct dsm_tp_wire_hdr) + t->tp.msg_max;
	t->cq_fd = t->bell_fd = t->epfd = t->hb_fd = -1;
	t->tp.ctrl_hook = ofi_ctrl;
	t->peers = calloc((size_t)b->size, sizeof(*t->peers));
	t->busyv = calloc((size_t)b->size, sizeof(*t->busyv));
	cards = calloc((size_t)b->size, sizeof(*cards));
	if (t->peers == NULL || t->busyv == NULL || cards == NULL) {
		free(t->peers);
		free(t->busyv);
		free(cards);
		free(t);
		return -ENOMEM;
	}
	for (int i = 0; i < b->size; i++) {
		t->peers[i].pidfd = -1;
		t->peers[i].q_tail = &t->peers[i].q_head;
	}
	ret = dsm_tp_core_init(&t->core, &t->tp, attr->max_msg_type, ofi_release);
	if (ret) {
		free(t->peers);
		free(t->busyv);
		free(cards);
		free(t);
		return ret;
	}

	/* Phase one: who is where; the same provider everywhere. */
	memset(&mine, 0, sizeof(mine));
	mine.hostid = host_id();
	mine.pid = getpid();
	mine.jobkey = now_ns() ^ ((uint64_t)getpid() << 32);
	ret = b->allgather(b->ctx, &mine, cards, sizeof(mine));
	if (ret)
		goto fail;
	jobkey = cards[0].jobkey;
	for (int i = 0; i < b->size; i++)
		one_host &= cards[i].hostid == mine.hostid;
	ret = choose_provider(t, want, one_host);
	if (ret == 0) {
		snprintf(t->prov, sizeof(t->prov), "%s", t->info->fabric_attr->prov_name);
		force_prov_key(t);
		t->mr_local = t->info->domain_attr->mr_mode & FI_MR_LOCAL;
		t->mr_endpoint = t->info->domain_attr->mr_mode & FI_MR_ENDPOINT;
		t->tp.virt_addr = !!(t->info->domain_attr->mr_mode & FI_MR_VIRT_ADDR);
		t->tp.prov_key = !!(t->info->domain_attr->mr_mode & FI_MR_PROV_KEY);
		t->inject = t->info->tx_attr->inject_size;
		ret = open_fabric(t);
	}
	if (ret == 0)
		ignore_sigpipe();
	if (ret == 0)
		ret = open_pools(t);
	if (ret == 0 && t->cq_fd < 0)
		ret = one_host ? open_bell(t, jobkey) : 0;
	if (ret == 0) {
		ret = fi_getname(&t->ep->fid, mine.name, &namelen);
		if (ret)
			DSM_LOG(DSM_LOG_ERROR, "transport: fi_getname: %s", fi_strerror(-ret));
		ret = fi_err(ret);
	}
	/* Every rank takes part in the second exchange, failed or not, so none hangs. */
	mine.namelen = ret ? 0 : (uint32_t)namelen;
	snprintf(mine.prov, sizeof(mine.prov), "%s", ret ? "" : t->prov);
	{
		int r = b->allgather(b->ctx, &mine, cards, sizeof(mine));
		if (ret == 0)
			ret = r;
	}
	if (ret)
		goto fail;
	for (int i = 0; i < b->size; i++) {
		if (cards[i].namelen == 0 || strcmp(cards[i].prov, t->prov) != 0) {
			DSM_LOG(DSM_LOG_ERROR, "transport: rank %d uses provider '%s', we use '%s'",
			        i, cards[i].prov, t->prov);
			ret = DSM_ERR_NO_PROVIDER;
			goto fail;
		}
	}

	/* Phase two: insert every peer, watch the local ones. */
	for (int i = 0; i < b->size; i++) {
		struct ofi_peer *p = &t->peers[i];

		if (fi_av_insert(t->av, cards[i].name, 1, &p->addr, 0, NULL) != 1) {
			DSM_LOG(DSM_LOG_ERROR, "transport: inserting rank %d's address", i);
			ret = -EIO;
			goto fail;
		}
		p->pid = cards[i].pid;
		if (strcmp(t->prov, "shm") == 0 && cards[i].namelen > 9 &&
		    cards[i].namelen < OFI_NAME_MAX && memcmp(cards[i].name, "fi_shm://", 9) == 0)
			memcpy(p->shm_name, cards[i].name + 9, cards[i].namelen - 9);
		/* DSM_TP_NO_PIDFD: tests the remote path (heartbeats) on one host. */
		if (i != b->rank && cards[i].hostid == mine.hostid && !getenv("DSM_TP_NO_PIDFD")) {
			p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
			if (p->pidfd < 0)
				DSM_LOG_ERRNO(DSM_LOG_WARN, "transport: pidfd_open(%d) of rank %d",
				              p->pid, i);
		}
	}
	t->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (t->epfd < 0) {
		ret = -errno;
		goto fail;
	}
	if (t->cq_fd >= 0)
		ret = epoll_add(t->epfd, t->cq_fd);
	else if (t->bell_fd >= 0)
		ret = epoll_add(t->epfd, t->bell_fd);
	for (int i = 0; ret == 0 && i < b->size; i++)
		if (t->peers[i].pidfd >= 0)
			ret = epoll_add(t->epfd, t->peers[i].pidfd);
	if (ret == 0)
		ret = open_heartbeat(t);
	if (ret)
		goto fail;
	if (t->bell_fd >= 0) {
		ret = b->barrier(b->ctx); /* every flag page exists */
		if (ret == 0)
			ret = connect_bells(t, jobkey);
		if (ret == 0)
			ret = b->barrier(b->ctx); /* every peer has mapped ours */
		if (ret)
			goto fail;
		shm_unlink(t->flag_name);
		t->flag_name[0] = '\0';
	}
	ret = b->barrier(b->ctx);
	if (ret)
		goto fail;
	free(cards);
	DSM_LOG(DSM_LOG_INFO, "transport: %s, %d ranks%s, wake by %s, inject %zu, mr_mode%s%s%s",
	        t->prov, b->size, one_host ? " on one host" : "",
	        t->cq_fd >= 0     ? "CQ wait fd"
	        : t->bell_fd >= 0 ? "doorbell"
	                          : "none (polling)",
	        t->inject, t->mr_local ? " local" : "", t->tp.virt_addr ? " virt_addr" : "",
	        t->tp.prov_key ? " prov_key" : "");
	*tp_p = &t->tp;
	return 0;
fail:
	free(cards);
	ofi_close(&t->tp);
	return ret;
}

static int ofi_close(dsm_tp_t *tp)
{
	struct ofi_tp *t = ot(tp);
	uint64_t deadline = now_ns() + 2000000000ull;
	struct timespec pause = {0, 100000};

	/* Let queued and in-flight sends go out, for a bounded time. */
	while (t->ep && (t->queued || t->inflight) && now_ns() < deadline) {
		dsm_tp_core_release(&t->core);
		drain(t);
		progress(t);
		nanosleep(&pause, NULL);
	}
	dsm_tp_core_fini(&t->core);
	for (int i = 0; t->peers && i < t->tp.size; i++) {
		while (t->peers[i].q_head) {
			struct ofi_op *op = t->peers[i].q_head;

			t->peers[i].q_head = op->next;
			if (op->kind == OP_COPY) {
				free(op->buf);
				free(op);
			} else if (op->kind == OP_READ || op->kind == OP_WRITE) {
				rma_unlink(t, op);
				free(op);
			}
		}
	}
	while (t->rma_live) {
		struct ofi_op *op = t->rma_live;
		t->rma_live = op->rma_next;
		free(op);
	}
	if (t->ep)
		fi_close(&t->ep->fid);
	if (t->rx_mr)
		fi_close(&t->rx_mr->fid);
	if (t->tx_mr)
		fi_close(&t->tx_mr->fid);
	if (t->cq)
		fi_close(&t->cq->fid);
	if (t->av)
		fi_close(&t->av->fid);
	if (t->domain)
		fi_close(&t->domain->fid);
	if (t->fabric)
		fi_close(&t->fabric->fid);
	if (t->info)
		fi_freeinfo(t->info);
	for (int i = 0; i < tp->size; i++) {
		if (t->peers[i].pidfd >= 0)
			close(t->peers[i].pidfd);
		if (t->peers[i].flag && t->peers[i].flag != t->my_flag)
			munmap(t->peers[i].flag, 4096);
	}
	if (t->my_flag)
		munmap(t->my_flag, 4096);
	if (t->flag_name[0])
		shm_unlink(t->flag_name);
	if (t->bell_fd >= 0)
		close(t->bell_fd);
	if (t->epfd >= 0)
		close(t->epfd);
	if (t->hb_fd >= 0)
		close(t->hb_fd);
	free(t->rx_ops);
	free(t->tx_ops);
	free(t->rx_mem);
	free(t->tx_mem);
	free(t->peers);
	free(t->busyv);
	if (t->shm_counted)
		atomic_fetch_sub(&shm_open_count, 1);
	free(t);
	return 0;
}

const struct dsm_tp_ops dsm_tp_ofi_ops = {
        .size = sizeof(struct dsm_tp_ops),
        .name = "libfabric",
        .open = ofi_open,
        .close = ofi_close,
        .send = ofi_send,
        .send_raw = ofi_send_raw,
        .mr_reg = ofi_mr_reg,
        .mr_dereg = ofi_mr_dereg,
        .read = ofi_read,
        .write = ofi_write,
        .poll = ofi_poll,
        .wait_fd = ofi_wait_fd,
        .sleep_prepare = ofi_sleep_prepare,
        .sleep_end = ofi_sleep_end,
        .stats = ofi_stats,
        .describe = ofi_describe,
        .abandon = ofi_abandon,
};
