/* SPDX-License-Identifier: MIT */
/*
 * The runtime's messages on the transport (types 1..DSM_RT_MSG_MAX), beside
 * the coherence engine's (DSM_RT_MSG_COH carries a dsm_coh_msg_t).
 */
#ifndef DSM_RT_WIRE_H
#define DSM_RT_WIRE_H

#include <stdint.h>

#include <dsm.h>

/* Bumped with every change to these messages: dsm_init compares it across ranks. */
/* 2: COH_BATCH carries lines; 3: migratory grants, WB CLEAN; 4: multiple-writer memory (MW,
 * MW_DATA, MW_DIFF); 5: MW_GET of several lines, answered by one MW_DATA; 6: a dead rank
 * (DEAD, ADOPTED, COLL_SYNC, COLL_RELEASE; coherence ADOPT and LOST); 7: checkpoints (CKPT,
 * collectives CHECKPOINT and CKPT_STEP). */
#define DSM_RT_WIRE_VERSION 8

enum dsm_rt_msg_type {
	DSM_RT_MSG_NONE = 0, /* never on the wire: a request that expects no answer (msg.h) */
	DSM_RT_MSG_COH = 1,  /* dsm_coh_msg_t, then the line's data if it carries any */
	DSM_RT_MSG_COLL,     /* struct dsm_rt_coll_msg: this rank enters a collective (to itself) */
	DSM_RT_MSG_COLL_ROUND, /* struct dsm_rt_coll_round: a round of the dissemination (coll.c) */
	DSM_RT_MSG_MUTEX,      /* struct dsm_rt_mutex_msg: to the home of the mutex */
	DSM_RT_MSG_FREE,       /* struct dsm_rt_free_msg: a dsm_free for the slice's owner */
	DSM_RT_MSG_REPLY,      /* struct dsm_rt_reply: the answer to a MUTEX or FREE */
	DSM_RT_MSG_COH_BATCH,  /* struct dsm_rt_coh_batch: protocol messages in the order sent */
	DSM_RT_MSG_MW,         /* struct dsm_rt_mw_msg: multiple-writer memory (mw.c) */
	DSM_RT_MSG_MW_DATA, /* struct dsm_rt_mw_data, the lines' ids, their data: a GET's answer */
	DSM_RT_MSG_MW_DIFF, /* struct dsm_rt_mw_diff, then diff records: a release */
	DSM_RT_MSG_MW_GET,  /* struct dsm_rt_mw_get, then the lines: send their home copies */
	DSM_RT_MSG_DEAD,    /* struct dsm_rt_dead_msg: the sender takes rank @rank for dead */
	DSM_RT_MSG_ADOPTED, /* struct dsm_rt_dead_msg: all the sender's copies of lines that dead
	                       rank @rank homed have come to their new home (the receiver) */
	DSM_RT_MSG_COLL_SYNC,    /* struct dsm_rt_coll_sync: collectives after a death (coll.c) */
	DSM_RT_MSG_COLL_RELEASE, /* struct dsm_rt_coll_release: the coordinator's verdict */
	DSM_RT_MSG_CKPT,         /* struct dsm_rt_ckpt_msg: a step of dsm_checkpoint (to itself) */
	DSM_RT_MSG_FREED,   /* struct dsm_rt_freed_msg: drop your copies of freed lines (free.c) */
	DSM_RT_MSG_UNALLOC, /* struct dsm_rt_freed_msg: the home has no allocation of that line */
	DSM_RT_MSG_STATS,   /* struct dsm_rt_stats_msg: a survivor's counters, for DSM_STATS */
	DSM_RT_MSG_MAX = DSM_RT_MSG_STATS,
};

/*
 * A batch of protocol messages for one peer (msg.c, "Gathering"), in the order they were
 * sent: this header, the data of the @ndata messages that carry a line (in their order,
 * line after line, so lines that follow each other in the heap arrive as one run), then
 * the @n dsm_coh_msg_t.
 */
struct dsm_rt_coh_batch {
	uint16_t n;
	uint16_t ndata;
	uint32_t reserved;
};

/* A batch's most messages, and its most line bytes: whole lines up to DSM_RT_GATHER_BYTES,
 * and one line where lines are larger (dsm_rt_coh_batch_cap, decode.h). */
#define DSM_RT_GATHER_MSGS  128
#define DSM_RT_GATHER_BYTES ((size_t)32 << 10)

enum dsm_rt_coll_kind {
	DSM_RT_COLL_BARRIER = 1,
	DSM_RT_COLL_ALL_ALLOC,
	DSM_RT_COLL_ALL_FREE,
	DSM_RT_COLL_FINALIZE,
	DSM_RT_COLL_ALL_ALLOC_MW,
	DSM_RT_COLL_CHECKPOINT, /* args: a hash of the directory, the root */
	DSM_RT_COLL_CKPT_STEP,  /* args: the step (ckpt.c), this rank's status */
};

/* A step of a checkpoint, from an application thread to its own loop (ckpt.c). */
struct dsm_rt_ckpt_msg {
	uint32_t op; /* enum in ckpt.c */
	uint32_t reserved;
	uint64_t token;
};

enum dsm_rt_mutex_op {
	DSM_RT_MUTEX_INIT = 1,
	DSM_RT_MUTEX_LOCK,
	DSM_RT_MUTEX_TRYLOCK,
	DSM_RT_MUTEX_UNLOCK,
	DSM_RT_MUTEX_DESTROY,
	DSM_RT_MUTEX_FENCE, /* no mutex: answered after what the sender sent before it */
};

/* A collective call as the ranks compare them. */
struct dsm_rt_coll_call {
	uint32_t kind; /* enum dsm_rt_coll_kind */
	uint32_t reserved;
	uint64_t args[2];
};

/* The @seq-th collective of a rank (every rank numbers its collectives in call order). */
struct dsm_rt_coll_msg {
	uint64_t seq;
	struct dsm_rt_coll_call call;
};

#define DSM_RT_COLL_NO_RANK UINT32_MAX

/*
 * What a rank knows of the calls of collective @seq after @round rounds: the lowest rank
 * it has heard of (itself included) and that rank's call, and the lowest of those ranks
 * whose call differs from it (bad_rank DSM_RT_COLL_NO_RANK: none yet).
 */
struct dsm_rt_coll_sum {
	uint32_t ref_rank;
	uint32_t bad_rank;
	struct dsm_rt_coll_call ref, bad;
};

struct dsm_rt_coll_round {
	uint64_t seq;
	uint32_t round;
	uint32_t reserved;
	struct dsm_rt_coll_sum sum;
};

struct dsm_rt_dead_msg {
	uint32_t rank;
	uint32_t reserved;
};

/* Collectives after a death go through a coordinator, the lowest live rank: each rank tells
 * it where it is (this, on entering a collective and after every death), and the
 * coordinator answers a collective once every live rank has entered it, or once one rank
 * says it finished it (with its verdict) before the death. */
struct dsm_rt_coll_sync {
	uint64_t seq;  /* the collective this rank is in, or 0 */
	uint64_t done; /* the last it finished */
	struct dsm_rt_coll_call call;
	struct dsm_rt_coll_sum done_sum; /* done's verdict */
};

struct dsm_rt_coll_release {
	uint64_t seq;
	struct dsm_rt_coll_sum sum;
};

struct dsm_rt_mutex_msg {
	uint32_t op;
	uint32_t reserved;
	uint64_t addr;
	uint64_t token; /* 0: no reply (an UNLOCK, which the unlocking rank has checked) */
};

/* The status of a REPLY that grants a LOCK after it waited in the queue (a hand-off). */
#define DSM_RT_MUTEX_HANDED_OFF 1
/* ... after its holder died: the new holder's dsm_mutex_lock says DSM_ERR_PEER_DEAD. */
#define DSM_RT_MUTEX_DEAD_HANDOFF 2

struct dsm_rt_free_msg {
	uint64_t addr;
	uint64_t token;
};

/* Freed lines [first, first + n) (free.c). Between ranks: FREED from their home (flags 0,
 * token 0), UNALLOC (n 1) from the home of a line asked for. To the loop itself, FREED with
 * token and flags: a dsm_free or dsm_all_free of this rank's thread, answered once done. */
struct dsm_rt_freed_msg {
	uint64_t first, n;
	uint64_t token;
	uint32_t flags; /* DSM_RT_FREED_* */
	uint32_t reserved;
};
/* This rank is the lines' home: its copies, and those of every rank its directory names. */
#define DSM_RT_FREED_HOME 1

/* After a death, at dsm_finalize: a survivor's counters to the lowest live rank (stats.c),
 * answered with a REPLY once stored. */
struct dsm_rt_stats_msg {
	uint64_t token;
	dsm_stats_t s;
};

struct dsm_rt_reply {
	uint64_t token;
	int32_t status;
	uint32_t reserved;
};

/*
 * Multiple-writer memory (mw.c). ACK goes between ranks; ADD, DEL, RELEASE and ACQUIRE are an
 * application thread's requests to its own loop, refused from another rank.
 */
enum dsm_rt_mw_op {
	DSM_RT_MW_ACK = 1, /* the home merged one MW_DIFF of ours */
	DSM_RT_MW_ADD,     /* [addr, addr + len) is multiple-writer memory from now on */
	DSM_RT_MW_DEL,     /* ... no longer: it was freed */
	DSM_RT_MW_RELEASE, /* this rank's writes go to their homes; answered once all merged */
	DSM_RT_MW_ACQUIRE, /* drop the copies others may have written since */
};

struct dsm_rt_mw_msg {
	uint32_t op;
	uint32_t reserved;
	uint64_t addr;  /* ADD, DEL: the start */
	uint64_t len;   /* ADD: bytes */
	uint64_t token; /* requests: what the REPLY names */
};

/* A GET of @n lines homed at the receiver (the missed one first, then lines read ahead);
 * they come back together in one MW_DATA. */
struct dsm_rt_mw_get {
	uint32_t n;
	uint32_t reserved;
	uint64_t epoch; /* the requester's acquires so far: each MW_DATA carries it back */
};

/* The most lines one GET asks for. */
#define DSM_RT_MW_GET_MAX 16

/* The home copies of @n lines: this header, their @n ids, then their data in that order. */
struct dsm_rt_mw_data {
	uint32_t n;
	uint32_t reserved;
	uint64_t epoch; /* the GET's */
};

/* @n records, each a struct dsm_rt_mw_rec then its diff (coherence/diff.h). */
struct dsm_rt_mw_diff {
	uint32_t n;
	uint32_t reserved;
};

struct dsm_rt_mw_rec {
	uint64_t line;
	uint32_t len; /* bytes of diff that follow */
	uint32_t reserved;
};

#endif
