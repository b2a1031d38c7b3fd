/* SPDX-License-Identifier: MIT */
/*
 * The transport: a narrow ops table that the runtime's event loop drives.
 *
 *  - send a small protocol message to a rank (per-pair FIFO, never -EAGAIN:
 *    what cannot go now waits in that rank's outgoing queue, which
 *    dsm_tp_poll() drains; a rank that does not take its messages holds up
 *    only its own queue);
 *  - RDMA read and write between a local buffer and a remote registered
 *    region (raw: remote address + key; or through a segment, see below);
 *  - register memory;
 *  - completions: dsm_tp_poll() hands out events; dsm_tp_wait_fd() is one
 *    file descriptor for epoll that becomes readable when polling has work,
 *    after dsm_tp_sleep_prepare() said it is safe to sleep.
 *
 * Two implementations: libfabric (ofi/) and an in-process loopback
 * (loopback.c, loopback.h) for unit tests. The layer uses only common/;
 * what it needs from the bootstrap comes in struct dsm_tp_boot.
 *
 * Threading: one thread (the event loop) drives a transport; nothing here is
 * thread-safe.
 */
#ifndef DSM_TRANSPORT_H
#define DSM_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct dsm_tp dsm_tp_t;
typedef struct dsm_tp_mr dsm_tp_mr_t;
typedef struct dsm_tp_seg dsm_tp_seg_t;
typedef struct dsm_tp_ops dsm_tp_ops_t;
struct dsm_tp_core;

/* What the transport needs from the bootstrap (runtime/bootstrap.c fills it). */
struct dsm_tp_boot {
	void *ctx;
	int rank;
	int size;
	/* Every rank passes @len bytes in @mine; @all receives size * len bytes. */
	int (*allgather)(void *ctx, const void *mine, void *all, size_t len);
	int (*barrier)(void *ctx);
};

#define DSM_TP_MSG_MAX_DEFAULT 8192 /* payload bytes; a 4 KiB line inline plus headers */
#define DSM_TP_MSG_TYPE_MAX    254  /* 255 carries the transport's own control messages */

struct dsm_tp_attr {
	size_t struct_size;
	const struct dsm_tp_boot *boot;
	const char *provider;  /* NULL: $DSM_PROVIDER, else the best available */
	size_t msg_max;        /* largest payload; 0: DSM_TP_MSG_MAX_DEFAULT */
	unsigned max_msg_type; /* valid message types are 1..max_msg_type (<= 255) */
	void *impl_arg;        /* loopback: the dsm_tp_loop_fabric_t the ranks share */
};

enum dsm_tp_event_type {
	DSM_TP_EV_MSG = 1,       /* a protocol message from @peer */
	DSM_TP_EV_RMA = 2,       /* a read or write posted with @ctx completed (@status) */
	DSM_TP_EV_PEER_DEAD = 3, /* @peer died; sends to it now fail */
};

struct dsm_tp_event {
	int type;   /* enum dsm_tp_event_type */
	int peer;   /* the rank the event concerns */
	int status; /* 0 or a negative code (RMA failure, DSM_ERR_PEER_DEAD) */
	unsigned msg_type;
	size_t len;       /* MSG: payload bytes; RMA: bytes */
	const void *data; /* MSG: the payload, valid until the next dsm_tp_poll() */
	void *ctx;        /* RMA: as passed to read/write */
};

struct dsm_tp_stats {
	uint64_t msgs_sent;
	uint64_t msgs_received;
	uint64_t msgs_dropped;   /* malformed: wrong magic/version/size/type/sender, duplicates */
	uint64_t msgs_rejected;  /* without the job key: not from a rank of this job */
	uint64_t msgs_queued;    /* sends that waited in the outgoing queue */
	uint64_t msgs_reordered; /* arrived ahead of their turn and were held back */
	uint64_t rma_reads;
	uint64_t rma_writes;
	uint64_t rma_bytes;
	uint64_t bytes_registered; /* now */
	uint64_t sleeps;           /* dsm_tp_sleep_prepare() said yes */
	uint64_t doorbells;        /* doorbells this rank rang */
	uint64_t peers_dead;
	uint64_t pending; /* now: operations queued or in flight (0: quiescent) */
};

/* A registered local region. key/desc are the provider's: a peer reaches it with @key. */
struct dsm_tp_mr {
	void *addr;
	size_t len;
	uint64_t key;
	void *desc; /* local descriptor for FI_MR_LOCAL providers, else NULL */
	void *impl;
};

#define DSM_TP_SLEEP_BRIEF 1

struct dsm_tp_ops {
	size_t size; /* sizeof(struct dsm_tp_ops) */
	const char *name;
	int (*open)(const struct dsm_tp_attr *attr, dsm_tp_t **tp_p);
	int (*close)(dsm_tp_t *tp);
	int (*send)(dsm_tp_t *tp, int peer, unsigned type, const void *buf, size_t len);
	/* @key: the key to use where the provider lets us choose (internal.h has the key
	 * space; callers use dsm_tp_mr_reg(), which picks one) */
	int (*mr_reg)(dsm_tp_t *tp, void *addr, size_t len, uint64_t key, dsm_tp_mr_t **mr_p);
	int (*mr_dereg)(dsm_tp_t *tp, dsm_tp_mr_t *mr);
	/* @raddr: the address in the peer's registration, as dsm_tp_remote_addr() gives it */
	int (*read)(dsm_tp_t *tp, int peer, void *local, size_t len, dsm_tp_mr_t *lmr,
	            uint64_t raddr, uint64_t rkey, void *ctx);
	int (*write)(dsm_tp_t *tp, int peer, const void *local, size_t len, dsm_tp_mr_t *lmr,
	             uint64_t raddr, uint64_t rkey, void *ctx);
	/* Returns the number of events (0..max) or a negative code. */
	int (*poll)(dsm_tp_t *tp, struct dsm_tp_event *ev, int max);
	int (*wait_fd)(dsm_tp_t *tp);
	/* 0: nothing is due, sleep on wait_fd now; DSM_TP_SLEEP_BRIEF: sleep too (peers will
	 * wake us for what they send), but not for long: operations of ours are in flight that
	 * only our own polling completes; -EAGAIN: poll first. sleep_end follows 0 and BRIEF. */
	int (*sleep_prepare)(dsm_tp_t *tp);
	/* After the sleep (woken or not): clears the announcement, drains the fd. */
	void (*sleep_end)(dsm_tp_t *tp);
	/* Between sleep_prepare and sleep_end, another thread polls for a while (with the
	 * sleeper's lock): pause lets peers stop waking the sleeper; resume announces the
	 * sleep again, 0, or -EAGAIN when there is work to poll first. Cheap: no syscall
	 * where the provider needs none. */
	void (*sleep_pause)(dsm_tp_t *tp);
	int (*sleep_resume)(dsm_tp_t *tp);
	int (*stats)(dsm_tp_t *tp, struct dsm_tp_stats *out);
	/* Writes what the transport is waiting for (queues, operations in flight, per-peer
	 * sequence state), a few lines, for a stalled run's diagnosis; @peer (or -1): a rank
	 * always shown, however many there are. */
	void (*describe)(dsm_tp_t *tp, int peer, FILE *f);
	/* The process is about to exit without close (a fatal error): removes what would
	 * outlive it, such as shm's region in /dev/shm. Async-signal-safe. */
	void (*abandon)(dsm_tp_t *tp);
};

/* The common head of every implementation's transport object. */
struct dsm_tp {
	const struct dsm_tp_ops *ops;
	int rank;
	int size;
	int virt_addr;    /* remote addresses are virtual addresses (else offsets) */
	int prov_key;     /* the provider chooses keys */
	size_t msg_max;   /* largest payload */
	const char *prov; /* provider name in use */
	const struct dsm_tp_boot *boot;
	uint64_t seg_ids;         /* segments created so far */
	struct dsm_tp_seg *segs;  /* live segments (key requests name them by id) */
	struct dsm_tp_core *core; /* the implementation's shared part */
	uint64_t key_waits;       /* RMA queued until a chunk's key arrives */
	uint64_t mr_keys;         /* keys dsm_tp_mr_reg() has handed out */
	/* Tests (testing.h): puts raw bytes on the wire, no header, no sequence number. */
	int (*send_raw)(dsm_tp_t *tp, int peer, const void *buf, size_t len);
	/* Tests (testing.h): this endpoint's provider address, as a peer inserts it (or
	 * NULL where the implementation has none). */
	int (*ep_name)(dsm_tp_t *tp, void *buf, size_t *len);
};

extern const struct dsm_tp_ops dsm_tp_ofi_ops;

/* Opens @ops (NULL: libfabric) with @attr; an ops table with an empty slot is refused. */
int dsm_tp_open(const struct dsm_tp_ops *ops, const struct dsm_tp_attr *attr, dsm_tp_t **tp_p);

static inline int dsm_tp_close(dsm_tp_t *tp)
{
	return tp->ops->close(tp);
}

static inline int dsm_tp_send(dsm_tp_t *tp, int peer, unsigned type, const void *buf, size_t len)
{
	return tp->ops->send(tp, peer, type, buf, len);
}

/* Registers [addr, addr + len) for RMA under a key of the transport's choosing, unique in
 * the domain; a peer needs mr->key (and dsm_tp_remote_addr()) to reach it. */
int dsm_tp_mr_reg(dsm_tp_t *tp, void *addr, size_t len, dsm_tp_mr_t **mr_p);

static inline int dsm_tp_mr_dereg(dsm_tp_t *tp, dsm_tp_mr_t *mr)
{
	return tp->ops->mr_dereg(tp, mr);
}

static inline int dsm_tp_read(dsm_tp_t *tp, int peer, void *local, size_t len, dsm_tp_mr_t *lmr,
                              uint64_t raddr, uint64_t rkey, void *ctx)
{
	return tp->ops->read(tp, peer, local, len, lmr, raddr, rkey, ctx);
}

static inline int dsm_tp_write(dsm_tp_t *tp, int peer, const void *local, size_t len,
                               dsm_tp_mr_t *lmr, uint64_t raddr, uint64_t rkey, void *ctx)
{
	return tp->ops->write(tp, peer, local, len, lmr, raddr, rkey, ctx);
}

static inline int dsm_tp_poll(dsm_tp_t *tp, struct dsm_tp_event *ev, int max)
{
	return tp->ops->poll(tp, ev, max);
}

static inline int dsm_tp_wait_fd(dsm_tp_t *tp)
{
	return tp->ops->wait_fd(tp);
}

static inline int dsm_tp_sleep_prepare(dsm_tp_t *tp)
{
	return tp->ops->sleep_prepare(tp);
}

static inline void dsm_tp_sleep_end(dsm_tp_t *tp)
{
	tp->ops->sleep_end(tp);
}

static inline void dsm_tp_sleep_pause(dsm_tp_t *tp)
{
	tp->ops->sleep_pause(tp);
}

static inline int dsm_tp_sleep_resume(dsm_tp_t *tp)
{
	return tp->ops->sleep_resume(tp);
}

static inline int dsm_tp_stats(dsm_tp_t *tp, struct dsm_tp_stats *out)
{
	return tp->ops->stats(tp, out);
}

static inline void dsm_tp_describe(dsm_tp_t *tp, int peer, FILE *f)
{
	tp->ops->describe(tp, peer, f);
}

static inline void dsm_tp_abandon(dsm_tp_t *tp)
{
	tp->ops->abandon(tp);
}

/* The address a peer uses to reach byte @off of @mr (virtual address or offset). */
static inline uint64_t dsm_tp_remote_addr(const dsm_tp_t *tp, const dsm_tp_mr_t *mr, size_t off)
{
	return tp->virt_addr ? (uint64_t)(uintptr_t)mr->addr + off : off;
}

/*
 * Sleeps until the transport has work or @timeout_ms passes (-1: no limit):
 * sleep_prepare, poll(2) on the wait fd, sleep_end. Returns 1 if it slept,
 * 0 if there was work already. For tests and the benchmark; the event loop
 * puts wait_fd into its own epoll set instead.
 */
int dsm_tp_sleep(dsm_tp_t *tp, int timeout_ms);

/*
 * Segments: a large reserved range (TiBs) that is registered in chunks as it
 * is populated, so registered bytes track touched bytes. Created collectively
 * (every rank, same @chunk): the ranks exchange their bases once. Remote
 * accesses name (peer, offset); the chunk's key is computed from the segment
 * id and the chunk index where the provider lets us choose keys. Where it
 * chooses them (FI_MR_PROV_KEY), the first access to a peer's chunk asks the
 * peer for the key with a transport control message and waits in a queue
 * until the reply; the peer registers the chunk then if it has not yet, so
 * in that mode every chunk is reachable, populated or not.
 * dsm_tp_seg_destroy() deregisters everything: call it before releasing the
 * memory. The range gets MADV_DONTFORK.
 */
int dsm_tp_seg_create(dsm_tp_t *tp, void *base, size_t len, size_t chunk, dsm_tp_seg_t **seg_p);
int dsm_tp_seg_destroy(dsm_tp_seg_t *seg);
/* Registers every chunk overlapping [off, off + len) that is not registered yet. */
int dsm_tp_seg_populate(dsm_tp_seg_t *seg, size_t off, size_t len);
size_t dsm_tp_seg_registered(const dsm_tp_seg_t *seg);
/* The local chunk registration covering @off (NULL if not populated): a local descriptor. */
dsm_tp_mr_t *dsm_tp_seg_mr(const dsm_tp_seg_t *seg, size_t off);
/* RMA into a peer's segment; [off, off + len) must lie within one chunk. */
int dsm_tp_seg_read(dsm_tp_seg_t *seg, int peer, size_t off, void *local, size_t len,
                    dsm_tp_mr_t *lmr, void *ctx);
int dsm_tp_seg_write(dsm_tp_seg_t *seg, int peer, size_t off, const void *local, size_t len,
                     dsm_tp_mr_t *lmr, void *ctx);

#endif
