/* SPDX-License-Identifier: MIT */
/*
 * The coherence engine: libdsm's directory protocol as a pure state machine.
 *
 * One dsm_coh_node_t per rank holds that rank's view of every line it has
 * touched (the cache side) and the directory entries of the lines it is home
 * of (the home side). The runtime feeds it events (a fault read from
 * userfaultfd, a protocol message, an RDMA completion, the end of a hold) and
 * executes the actions it returns, in order. The engine makes no syscalls,
 * starts no threads and never blocks; coherence/PROTOCOL.md has the states,
 * the messages and the invariants.
 *
 * Messages a rank sends to itself (the home asking for its own line) are
 * delivered inside dsm_coh_handle(), so the runtime never sees them.
 */
#ifndef DSM_COHERENCE_H
#define DSM_COHERENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* The name of the protocol this build carries (shown by dsm-info). */
const char *dsm_coh_protocol_name(void);

/* The largest job the engine supports: ranks travel in 16-bit fields. */
#define DSM_COH_MAX_RANKS 32767

/* ---- Layout: line ids and homes, shared with the runtime ---- */

/* How the homes of a span's lines are spread (the runtime maps the public
 * dsm_dist_t onto the first three; the values agree). */
typedef enum dsm_coh_dist {
	DSM_COH_DIST_BLOCK = 0,  /* contiguous 1/N of the lines per rank */
	DSM_COH_DIST_CYCLIC = 1, /* line by line, round robin */
	DSM_COH_DIST_ZERO = 2,   /* every line on rank 0 */
	DSM_COH_DIST_RANK =
	        3, /* every line on span->rank (dsm_alloc memory, homed on its caller) */
} dsm_coh_dist_t;

typedef struct dsm_coh_layout {
	uintptr_t base;      /* first byte of the heap */
	size_t size;         /* bytes of the heap (a multiple of the line size) */
	unsigned line_shift; /* log2 of the line size */
	unsigned nranks;
} dsm_coh_layout_t;

/* The lines of one allocation and how their homes are spread. */
typedef struct dsm_coh_span {
	uint64_t first_line;
	uint64_t nlines;
	dsm_coh_dist_t dist;
	unsigned rank; /* for DSM_COH_DIST_RANK */
} dsm_coh_span_t;

/* line_size must be a power-of-two multiple of page_size (itself a power of
 * two); base and size must be line aligned. 0 or -EINVAL. */
int dsm_coh_layout_init(dsm_coh_layout_t *l, uintptr_t base, size_t size, size_t line_size,
                        size_t page_size, unsigned nranks);
/* The line holding addr, or -EINVAL outside the heap. */
int64_t dsm_coh_line_of(const dsm_coh_layout_t *l, uintptr_t addr);
/* The first byte of a line. */
uintptr_t dsm_coh_line_addr(const dsm_coh_layout_t *l, uint64_t line);
/* Home rank of a line of a span, or -EINVAL when the line is outside it or
 * the distribution is unknown. */
int dsm_coh_home_of(const dsm_coh_span_t *span, unsigned nranks, uint64_t line);

/* ---- Messages ---- */

typedef enum dsm_coh_msg_type {
	DSM_COH_MSG_GET_S = 1, /* requester -> home: I want to read */
	DSM_COH_MSG_GET_M,     /* requester -> home: I want to write */
	DSM_COH_MSG_INV,       /* home -> sharer: drop your read-only copy */
	DSM_COH_MSG_INV_ACK,   /* sharer -> home: dropped */
	DSM_COH_MSG_FWD_S,     /* home -> owner: write back and keep a read-only copy */
	DSM_COH_MSG_FWD_M,     /* home -> owner: write back and drop your copy */
	DSM_COH_MSG_WB,        /* owner -> home: the line's data (inline) */
	DSM_COH_MSG_GRANT_S,   /* home -> requester: read permission */
	DSM_COH_MSG_GRANT_M,   /* home -> requester: write permission */
	DSM_COH_MSG_DONE,      /* requester -> home: installed; the home may move on */
	DSM_COH_MSG_EVICT,     /* sharer or owner -> home: take my copy away (INV or FWD_M) */
	/* A rank died (DSM_ON_DEATH=continue, PROTOCOL.md "A dead rank"): */
	DSM_COH_MSG_ADOPT, /* survivor -> new home: I hold a copy of a line the dead rank homed */
	DSM_COH_MSG_LOST,  /* home -> requester: the line's only copy died; poison it */
	DSM_COH_MSG_NTYPES,
} dsm_coh_msg_type_t;

/* The line's data follows the message inline. */
#define DSM_COH_MSGF_DATA 0x1
/* GRANT: the receiver reads the data from the home segment by RDMA. WB: the
 * sender has written the data into the home segment by RDMA. */
#define DSM_COH_MSGF_RDMA 0x2
/* GET_M: the requester held a read-only copy when it asked (informative only:
 * the home trusts its directory, not this flag). */
#define DSM_COH_MSGF_UPGRADE 0x4
/* WB: the owner held the line exclusive and clean (granted on a read, never written): the
 * home segment is current, no data travels. */
#define DSM_COH_MSGF_CLEAN 0x8
/* ADOPT: the sender holds the line exclusive (E, with the data: the new home's copy; or M,
 * without: the sender's copy is the line). Without it the sender holds a read-only copy,
 * whose data comes along. */
#define DSM_COH_MSGF_OWNER 0x10

/* What travels between ranks (16 bytes plus the line's data when
 * DSM_COH_MSGF_DATA is set). */
typedef struct dsm_coh_msg {
	uint8_t type;      /* dsm_coh_msg_type_t */
	uint8_t flags;     /* DSM_COH_MSGF_* */
	uint16_t src;      /* sending rank */
	uint32_t reserved; /* LOST: the dead rank that held the line's only copy; else 0 */
	uint64_t line;
} dsm_coh_msg_t;

/* ---- Events ---- */

typedef enum dsm_coh_event_type {
	DSM_COH_EV_READ_FAULT = 1,  /* a thread read an absent line (MISSING) */
	DSM_COH_EV_WRITE_FAULT,     /* a thread wrote an absent or write-protected line */
	DSM_COH_EV_MSG,             /* a protocol message arrived; its data (if any) is at hand */
	DSM_COH_EV_RDMA_DONE,       /* the RDMA read of a line's data completed */
	DSM_COH_EV_HOLD_DONE,       /* the woken thread's access happened or the hold time passed */
	DSM_COH_EV_RDMA_WRITE_DONE, /* the RDMA write-back of a line completed at the home */
	DSM_COH_EV_EVICT, /* the runtime wants the room of a copy homed elsewhere (a bounded cache)
	                   */
	/* Rank @home died and its lines are homed at @adopter from now on (DSM_ON_DEATH=
	 * continue): every line and directory entry forgets it (PROTOCOL.md, "A dead rank"). */
	DSM_COH_EV_PEER_DEAD,
	/* @line is homed here since rank @home died, and no survivor adopted a copy of it: its
	 * data died with that rank. Its requests are answered LOST from now on. Nothing happens
	 * for a line that has a directory entry here (adopted, or homed here from the start). */
	DSM_COH_EV_LOST_LINE,
	/* @line's memory was freed: this rank's copy goes, as with EVICT, whether the line is
	 * homed elsewhere or here (the home's own copy: its EVICT is served like another
	 * rank's), so that the next access faults and finds the line unallocated. Refused
	 * (nothing changes) for a copy that is not stable, as EVICT is. */
	DSM_COH_EV_DROP,
} dsm_coh_event_type_t;

typedef struct dsm_coh_event {
	dsm_coh_event_type_t type;
	unsigned home;     /* faults: the line's home (dsm_coh_home_of); PEER_DEAD, LOST_LINE:
	                      the dead rank */
	unsigned adopter;  /* PEER_DEAD: the dead rank's lines' new home */
	uint64_t line;     /* faults, RDMA_DONE, HOLD_DONE, EVICT, DROP */
	dsm_coh_msg_t msg; /* MSG */
} dsm_coh_event_t;

/* ---- Actions ----
 *
 * Run them in order. Within one list, an action that reads a line's mapping
 * (SEND with data from MAP, RDMA_WRITE, STORE_HOME from MAP) always comes
 * after that line's WRITE_PROTECT and before its ZAP, at the home as at any
 * other rank: the mapping can be read where the action says, with no copy
 * taken ahead (PROTOCOL.md, "Giving up a line"). */

typedef enum dsm_coh_action_type {
	/* send msg to peer; with DSM_COH_MSGF_DATA the line's data, taken from src
	 * (MAP: this rank's mapping, HOME: its home segment) when the action runs */
	DSM_COH_ACT_SEND = 1,
	/* read the line from peer's home segment into the staging buffer; an
	 * RDMA_DONE event follows */
	DSM_COH_ACT_RDMA_READ,
	/* write the line (from src, MAP: copied when the action runs, through a
	 * registered bounce buffer, since the mapping is never registered) into
	 * peer's home segment; an RDMA_WRITE_DONE event follows once the data is
	 * visible there (FI_DELIVERY_COMPLETE) */
	DSM_COH_ACT_RDMA_WRITE,
	/* install the line read-only (UFFDIO_COPY with MODE_WP) from src */
	DSM_COH_ACT_INSTALL_RO,
	/* install the line read-write from src, or with src NONE lift the
	 * write-protect of the read-only copy already there (an upgrade) */
	DSM_COH_ACT_INSTALL_RW,
	DSM_COH_ACT_WRITE_PROTECT, /* make the mapping read-only */
	DSM_COH_ACT_ZAP,           /* drop the mapping (MADV_DONTNEED) */
	/* copy the line into this rank's home segment from src (MSG or MAP) */
	DSM_COH_ACT_STORE_HOME,
	DSM_COH_ACT_WAKE, /* UFFDIO_WAKE the line: its waiting threads retry */
	/* (re)arm the line's hold timer; one HOLD_DONE event follows the last HOLD
	 * (re-arming cancels the earlier timer) */
	DSM_COH_ACT_HOLD,
	DSM_COH_ACT_COUNT, /* bump a counter (dsm_coh_counter_t) */
	/* the line's data died with msg.reserved's rank: drop any mapping, mark the range
	 * poisoned (UFFDIO_POISON: an access raises SIGBUS), wake its threads */
	DSM_COH_ACT_POISON,
} dsm_coh_action_type_t;

/* Where an action's data comes from. */
typedef enum dsm_coh_src {
	DSM_COH_SRC_NONE = 0,
	DSM_COH_SRC_MSG,     /* the data of the message being handled */
	DSM_COH_SRC_MAP,     /* this rank's mapping of the line */
	DSM_COH_SRC_HOME,    /* this rank's home segment */
	DSM_COH_SRC_STAGING, /* the buffer an RDMA read filled */
} dsm_coh_src_t;

typedef enum dsm_coh_counter {
	DSM_COH_CNT_READ_FAULT,   /* read misses sent to a home */
	DSM_COH_CNT_WRITE_FAULT,  /* write misses sent to a home */
	DSM_COH_CNT_UPGRADE,      /* write faults on read-only lines */
	DSM_COH_CNT_STALE_FAULT,  /* faults on lines already granted: woken, nothing sent */
	DSM_COH_CNT_INV_SENT,     /* invalidations and forwards sent, as a home */
	DSM_COH_CNT_INV_RECEIVED, /* invalidations and forwards obeyed */
	DSM_COH_CNT_QUEUED,       /* requests that waited behind another at the home */
	DSM_COH_CNT_DEFERRED,     /* invalidations that waited for a hold to end */
	DSM_COH_CNT_MIGRATORY,    /* as a home: read misses granted exclusive (migratory lines) */
	DSM_COH_CNT_EXCL_WRITE,   /* write faults on exclusive clean lines, served locally */
	DSM_COH_CNT_CLEAN_WB,     /* exclusive lines given up clean, without data */
	DSM_COH_CNT_EVICT_CLEAN,  /* evictions asked for of read-only copies (S, E) */
	DSM_COH_CNT_EVICT_DIRTY,  /* evictions asked for of modified copies (M): written back */
	DSM_COH_CNT_ADOPTED,      /* copies of a dead rank's lines handed to their new home */
	DSM_COH_CNT_LOST,         /* lines poisoned here: their only copy died */
	DSM_COH_CNT_NCOUNTERS,
} dsm_coh_counter_t;

typedef struct dsm_coh_action {
	uint8_t type;     /* dsm_coh_action_type_t */
	uint8_t src;      /* dsm_coh_src_t */
	uint16_t counter; /* COUNT */
	uint32_t peer;    /* SEND: destination; RDMA_READ: the home */
	uint64_t line;
	dsm_coh_msg_t msg; /* SEND */
} dsm_coh_action_t;

/* A growing list of actions; the caller owns it and reuses it across calls. */
typedef struct dsm_coh_actions {
	dsm_coh_action_t *v;
	size_t n;
	size_t cap;
} dsm_coh_actions_t;

void dsm_coh_actions_init(dsm_coh_actions_t *a);
void dsm_coh_actions_fini(dsm_coh_actions_t *a);

/*
 * Installs by runs (PROTOCOL.md, "Batches"): a runtime that handles a batch of messages may
 * let the installs of lines whose data came in the batch wait, to put lines that follow
 * each other in with one call, as long as no thread can get past a waiting line and every
 * action for which this says false finds the waiting lines installed first. True for the
 * actions that leave every mapping alone: another such install, a send whose data is not
 * read from the mapping, a hold, a count. (A WAKE of a waiting line may run too: its
 * install will wake the line's threads anyway.) The model checker applies the same rule; in
 * this protocol it never has to act for the line of a waiting install (PROTOCOL.md).
 */
bool dsm_coh_action_keeps_mappings(const dsm_coh_action_t *a);

/* ---- The engine ---- */

typedef enum dsm_coh_data_mode {
	DSM_COH_DATA_INLINE = 0, /* grants carry the line's data */
	DSM_COH_DATA_RDMA,       /* the requester reads the home segment by RDMA */
} dsm_coh_data_mode_t;

/* Test-only: break the protocol on purpose so that tests can show that the
 * model checker notices. Never set outside tests. */
#define DSM_COH_BUG_GRANT_BEFORE_ACKS    0x01 /* grant write before the sharers acked */
#define DSM_COH_BUG_NO_WRITEBACK         0x02 /* the home drops the owner's write-back */
#define DSM_COH_BUG_READ_GRANT_RW        0x04 /* install a read grant without write-protect */
#define DSM_COH_BUG_NO_HOLD              0x08 /* give a line away before the woken thread ran */
#define DSM_COH_BUG_TRUST_UPGRADE        0x10 /* grant an upgrade without data on the flag's word */
#define DSM_COH_BUG_NO_DONE_WAIT         0x20 /* start the next transaction before DONE */
#define DSM_COH_BUG_INV_NO_ZAP           0x40 /* ack an invalidation but keep the page */
#define DSM_COH_BUG_ZAP_BEFORE_WB        0x80 /* the home stores its own write-back after the zap */
#define DSM_COH_BUG_WB_BEFORE_WP         0x100  /* read the mapping before write-protecting it */
#define DSM_COH_BUG_ZAP_BEFORE_WB_REMOTE 0x200  /* an owner zaps, then writes back */
#define DSM_COH_BUG_EXCL_STAYS_CLEAN     0x400  /* a write to an E line leaves it E (clean) */
#define DSM_COH_BUG_MIGRATE_KEEPS_COPY   0x800  /* a read migrates a line by FWD_S, not FWD_M */
#define DSM_COH_BUG_EVICT_NO_WB          0x1000 /* an eviction of a modified copy zaps it, unsaved */
#define DSM_COH_BUG_EVICT_KEEPS_SHARER   0x2000 /* the home keeps an evicted sharer in the set */
#define DSM_COH_BUG_DEAD_KEEPS_OWNER     0x4000 /* a dead owner's line waits for its write-back */
#define DSM_COH_BUG_ADOPT_NO_DATA        0x8000 /* a sharer's adoption leaves its data behind */

typedef struct dsm_coh_config {
	unsigned rank;
	unsigned nranks;
	dsm_coh_data_mode_t data_mode; /* how grants carry data */
	dsm_coh_data_mode_t wb_mode;   /* how write-backs do: WB inline, or RDMA write + WB */
	/* Migratory lines (PROTOCOL.md, "Migratory lines"): a line that ranks take turns to
	 * read then write moves whole, exclusive, on the read miss. 0: never. */
	int migratory;
	unsigned bugs; /* DSM_COH_BUG_*, tests only */
} dsm_coh_config_t;

typedef struct dsm_coh_node dsm_coh_node_t;

int dsm_coh_node_create(const dsm_coh_config_t *cfg, dsm_coh_node_t **node_p);
void dsm_coh_node_destroy(dsm_coh_node_t *node);
/* A deep copy (the model checker branches on it). */
int dsm_coh_node_clone(const dsm_coh_node_t *node, dsm_coh_node_t **copy_p);

/*
 * Feed one event; append the actions to run, in order, to out (which the
 * call does not clear). Return: 0; DSM_ERR_PROTOCOL for an event the state of
 * the line cannot take (a malformed or unexpected message: every check runs
 * before the first change, so the state is unchanged, and out holds nothing
 * new: the runtime drops the message and counts it); -EINVAL for a bad
 * argument (unchanged too); -ENOMEM, after which the node's state is undefined
 * and the runtime must stop using it; -EPROTO, the same, when a message the engine sent to
 * itself (this rank is the line's home) was refused after the event had changed the state:
 * an internal error, never the peer's.
 */
int dsm_coh_handle(dsm_coh_node_t *node, const dsm_coh_event_t *ev, dsm_coh_actions_t *out);

/* ---- Introspection, for the runtime's debug output and for tests ---- */

typedef enum dsm_coh_state {
	DSM_COH_I = 0, /* invalid: no copy */
	DSM_COH_S,     /* read-only copy */
	DSM_COH_M,     /* read-write copy, the only one */
	DSM_COH_IS,    /* no copy, read requested */
	DSM_COH_IM,    /* no copy, write requested */
	DSM_COH_SM,    /* read-only copy, write requested (upgrade) */
	/* the only copy, read-only in the mapping and equal to the home segment (granted
	 * exclusive on a read miss); a write lifts the write-protect here, with no message */
	DSM_COH_E,
} dsm_coh_state_t;

typedef enum dsm_coh_dir_state {
	DSM_COH_DIR_U = 0, /* uncached: only the home segment holds the line */
	DSM_COH_DIR_S,     /* shared by a set of ranks, the home segment is current */
	DSM_COH_DIR_M,     /* modified at one owner */
	DSM_COH_DIR_LOST,  /* its only copy died with a rank (owner: that rank) */
} dsm_coh_dir_state_t;

typedef struct dsm_coh_line_info {
	dsm_coh_state_t state;
	int held;     /* granted and not yet released by HOLD_DONE */
	int rdma;     /* granted, waiting for the RDMA read */
	int wb;       /* given up, its RDMA write-back in flight */
	int deferred; /* message type waiting for the hold to end, or 0 */
	int evicting; /* an EVICT was sent and the copy is still here */
} dsm_coh_line_info_t;

typedef struct dsm_coh_dir_info {
	dsm_coh_dir_state_t state;
	unsigned owner;    /* DIR_M */
	unsigned nsharers; /* DIR_S */
	int busy;          /* a transaction is in progress */
	unsigned queued;   /* requests waiting behind it */
} dsm_coh_dir_info_t;

/* The cache side of a line (state I for a line never touched). */
void dsm_coh_line_info(const dsm_coh_node_t *node, uint64_t line, dsm_coh_line_info_t *out);
/* The directory entry of a line this rank is home of (DIR_U if never touched). */
void dsm_coh_dir_info(const dsm_coh_node_t *node, uint64_t line, dsm_coh_dir_info_t *out);
int dsm_coh_dir_is_sharer(const dsm_coh_node_t *node, uint64_t line, unsigned rank);
/*
 * The lines with something in flight, counted over every entry (the model checker's check of
 * dsm_coh_node_in_flight): at the cache side a request, an RDMA read or write-back, an
 * eviction or an invalidation deferred by a hold; at the home side a transaction or a queued
 * request. O(lines touched).
 */
void dsm_coh_node_busy(const dsm_coh_node_t *node, size_t *cache_p, size_t *home_p);
/* The same two counts, kept as events change them: O(1). At the cache side the lines
 * dsm_coh_node_busy counts; at the home side the transactions in progress (a request is
 * queued only behind one, so 0 means at rest). The model checker checks both against the
 * walk after every event. */
void dsm_coh_node_in_flight(const dsm_coh_node_t *node, size_t *cache_p, size_t *home_p);
/* Write a canonical description of the node's whole state into buf (for
 * state hashing); returns the bytes needed, which may exceed cap. */
size_t dsm_coh_node_encode(const dsm_coh_node_t *node, uint8_t *buf, size_t cap);
/* Bytes of metadata in use (tables, sharer bitmaps, queues). */
size_t dsm_coh_node_bytes(const dsm_coh_node_t *node);

const char *dsm_coh_msg_name(int type);
const char *dsm_coh_state_name(int state);
const char *dsm_coh_counter_name(int counter);

#endif
