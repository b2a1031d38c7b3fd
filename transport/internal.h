/* SPDX-License-Identifier: MIT */
/*
 * What the implementations share (core.c): the wire header, the receive
 * side's validation and per-pair reordering, the event queue that
 * dsm_tp_poll() hands out from, the transport's own control messages and
 * the memory-region key space.
 *
 * Inside the layer, files depend downward only: core.c at the bottom; seg.c
 * and the implementations (ofi/, loopback.c) on it, registering the control
 * messages and death notices they handle; open.c on top.
 */
#ifndef DSM_TP_INTERNAL_H
#define DSM_TP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/ring.h"
#include "transport/transport.h"

#define DSM_TP_WIRE_MAGIC   0xd5a1u
#define DSM_TP_WIRE_VERSION 2
#define DSM_TP_CTRL_TYPE    255 /* the transport's own messages */

/*
 * Memory-region keys where the transport chooses them (the provider lets us):
 *   [1, 2^32)    an implementation's own (ofi's send and receive pools)
 *   [2^32, 2^40) dsm_tp_mr_reg(): one per registration, from tp->mr_keys
 *   [2^40, ...)  segments: id << 40 | chunk index, which a peer computes (seg.c)
 */
#define DSM_TP_KEY_MR_BASE   (1ull << 32)
#define DSM_TP_KEY_SEG_SHIFT 40

/* Control messages, each handled by the part of the layer that registered it. */
enum {
	DSM_TP_CTRL_KEY_REQ = 1,   /* seg.c: a chunk's key asked for */
	DSM_TP_CTRL_KEY_REP = 2,   /* seg.c: and the answer */
	DSM_TP_CTRL_HEARTBEAT = 3, /* ofi: to the next live rank on the ring */
	DSM_TP_CTRL_DEAD = 4,      /* ofi: rank @chunk died, says the rank that noticed */
	DSM_TP_CTRL_HELLO = 5,     /* ofi, shm: at open, to every peer (each maps the other) */
	DSM_TP_CTRL_NOPS,
};
struct dsm_tp_ctrl {
	uint32_t op;
	int32_t status; /* KEY_REP: 0 or why the home could not register */
	uint64_t seg;
	uint64_t chunk;
	uint64_t key;
};

/*
 * Every protocol message starts with this, little-endian as the host (one architecture).
 * @key is the job's secret (dsm_tp_core_set_key): a message without it did not come from
 * a rank of this job and is rejected before anything else reads it.
 */
struct dsm_tp_wire_hdr {
	uint16_t magic;
	uint8_t version;
	uint8_t type; /* 1..max_msg_type */
	uint32_t len; /* payload bytes after the header */
	uint32_t src; /* sending rank */
	uint32_t seq; /* per (src, dst) pair, from 0 */
	uint64_t key; /* the job key */
};
_Static_assert(sizeof(struct dsm_tp_wire_hdr) == 24, "wire header is 24 bytes");

/*
 * Limits of what a peer can make us hold: messages that arrive ahead of their turn wait
 * for the ones before them, at most this many and this many bytes per peer. A peer past
 * either is broken (or lost a message: its stream can never go on) and is handled as a
 * dead one. rxm's rendezvous lets an eager message overtake a large one by a few
 * messages; an honest peer stays far below.
 */
#define DSM_TP_HELD_MAX       4096
#define DSM_TP_HELD_BYTES_MAX (64u << 20)

/* A message that arrived ahead of its turn, copied and held back. */
struct dsm_tp_held {
	struct dsm_tp_held *next;
	uint32_t seq;
	unsigned type;
	size_t len;
	unsigned char data[];
};

struct dsm_tp_peer_rx {
	uint32_t expect;
	struct dsm_tp_held *held; /* sorted by seq */
	uint32_t nheld;
	size_t held_bytes;
	bool broken;        /* past the limits, or its stream lost a message: all dropped */
	bool reject_logged; /* a message claiming to be from it failed the key check */
};

/* An event with what must be released once the caller is done with it. */
struct dsm_tp_evitem {
	struct dsm_tp_event ev;
	void *tok;    /* implementation's receive buffer to give back, or NULL */
	void *freeme; /* a held copy to free, or NULL */
};

typedef void dsm_tp_ctrl_fn(dsm_tp_t *tp, int peer, const struct dsm_tp_ctrl *m);
typedef void dsm_tp_dead_fn(dsm_tp_t *tp, int peer);

#define DSM_TP_DEAD_HOOKS 4

struct dsm_tp_core {
	dsm_tp_t *tp;
	unsigned max_type;
	/* gives a receive buffer back to the implementation */
	void (*release)(dsm_tp_t *tp, void *tok);
	struct dsm_tp_peer_rx *rx; /* [size] */
	uint32_t *tx_seq;          /* [size] */
	struct dsm_ring q;         /* of struct dsm_tp_evitem: events not yet polled */
	struct dsm_tp_evitem *out; /* handed out by the last poll, released by the next */
	size_t outcap, outlen;
	struct dsm_tp_stats st;
	uint64_t key;                            /* the job key; every message carries it */
	bool reject_logged;                      /* a rejected message claimed no valid rank */
	bool ctrl_send;                          /* a control message is being sent */
	dsm_tp_ctrl_fn *ctrl[DSM_TP_CTRL_NOPS];  /* by op; NULL: dropped */
	dsm_tp_dead_fn *dead[DSM_TP_DEAD_HOOKS]; /* told when a peer dies */
	/* the implementation's handling of a peer whose stream is broken (as a death) */
	void (*broken)(dsm_tp_t *tp, int peer, const char *why);
};

int dsm_tp_core_init(struct dsm_tp_core *c, dsm_tp_t *tp, unsigned max_type,
                     void (*release)(dsm_tp_t *, void *));
void dsm_tp_core_fini(struct dsm_tp_core *c);
/* The job key, agreed by every rank before the first message: sent in every header, and
 * every message received must carry it. */
void dsm_tp_core_set_key(struct dsm_tp_core *c, uint64_t key);
/* The stream to or from @peer cannot go on (a message lost, a limit passed): counted,
 * reported once, and the implementation's @broken hook handles @peer as dead. */
void dsm_tp_core_broken(struct dsm_tp_core *c, int peer, const char *why);
/* Releases what the previous poll handed out. Call first in every poll. */
void dsm_tp_core_release(struct dsm_tp_core *c);
/*
 * Pushes an event (tok: receive buffer to release after hand-out). Every event is one the
 * layer above waits for (a message, a completion, a death), and none can be sent again: when
 * the queue cannot grow, the process ends here with one line (abort) rather than wait forever.
 */
void dsm_tp_core_push(struct dsm_tp_core *c, const struct dsm_tp_event *ev, void *tok,
                      void *freeme);
/* Moves up to @max queued events into @ev. */
int dsm_tp_core_pop(struct dsm_tp_core *c, struct dsm_tp_event *ev, int max);
static inline bool dsm_tp_core_pending(const struct dsm_tp_core *c)
{
	return dsm_ring_len(&c->q) > 0;
}
/*
 * A message of @n bytes arrived in @buf (a receive buffer identified by @tok).
 * Validates it, delivers it in per-pair order or holds it back. Returns true
 * if @tok is still in use (released after hand-out), false if the caller may
 * reuse it at once.
 */
bool dsm_tp_core_recv(struct dsm_tp_core *c, const void *buf, size_t n, void *tok);
/* Fills the header of a message to @peer and takes the next sequence number. */
void dsm_tp_core_hdr(struct dsm_tp_core *c, struct dsm_tp_wire_hdr *h, int peer, unsigned type,
                     size_t len);
/* Checks the arguments of a send. */
int dsm_tp_core_check_send(struct dsm_tp_core *c, int peer, unsigned type, size_t len);

/* Writes the event queue and the per-peer sequence state (describe's common part); beyond
 * 16 ranks only for @also (or -1) and for the peers we hold messages of. */
void dsm_tp_core_describe(const struct dsm_tp_core *c, int also, FILE *f);

/* Sends a control message (same per-pair order as the layer above's). */
int dsm_tp_ctrl_send(dsm_tp_t *tp, int peer, const struct dsm_tp_ctrl *m);
/* @fn handles control messages of @op from now on (registering twice is harmless). */
void dsm_tp_ctrl_on(dsm_tp_t *tp, unsigned op, dsm_tp_ctrl_fn *fn);
/* @fn is told of every peer death from now on (registering twice is harmless). */
int dsm_tp_on_peer_dead(dsm_tp_t *tp, dsm_tp_dead_fn *fn);
/* The implementation found @peer dead: tells the hooks (RMA waiting for its keys fails). */
void dsm_tp_core_peer_dead(struct dsm_tp_core *c, int peer);

#endif
