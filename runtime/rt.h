/* SPDX-License-Identifier: MIT */
/*
 * One rank's runtime: the state of every part, each in a struct of its own
 * named for the file that owns it (holds: hold.c, msg: msg.c, ...). The
 * parts' headers say what each part does; this one says what each keeps, so
 * that every file includes downward. docs/ARCHITECTURE.md has the picture;
 * the flow of a miss is fault.c -> engine.c -> region.c on the faulting rank,
 * msg.c -> engine.c at the home.
 */
#ifndef DSM_RT_H
#define DSM_RT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dsm.h>

#include "coherence/coherence.h"
#include "common/ckpt.h"
#include "runtime/alloc.h"
#include "runtime/config.h"
#include "runtime/heap.h"
#include "runtime/region.h"
#include "runtime/wire.h"
#include "transport/transport.h"

struct dsm_rt;
struct dsm_rt_mutex;   /* mutex.c */
struct dsm_rt_prof;    /* profile.c */
struct dsm_rt_req;     /* msg.h */
struct dsm_rt_staging; /* rdma.h */

/* ---- hold.c: the progress guarantee ---------------------------------------------------- */

/* The threads waiting on one line's fault, each with how often it had been scheduled in when
 * it faulted (the third field of /proc/self/task/TID/schedstat). A thread blocked in a fault
 * does not run, so once that count moves it has retried its access. */
#define DSM_RT_WAITERS 8
struct dsm_rt_waiters {
	unsigned n;
	bool unknown; /* a thread without an id, or more than DSM_RT_WAITERS */
	int32_t tid[DSM_RT_WAITERS];
	uint64_t runs[DSM_RT_WAITERS];
};

#define DSM_RT_STAT_FDS 16

/* A granted line kept until its woken threads have run, or until deadline_ns. */
struct dsm_rt_hold {
	uint64_t line;
	uint64_t deadline_ns;
	struct dsm_rt_waiters w;
};

/* A fault sent to the engine and not installed yet. */
struct dsm_rt_pending_fault {
	uint64_t line;
	uint64_t t0_ns;
	bool reported; /* its stall was logged */
	struct dsm_rt_waiters w;
};

struct dsm_rt_holds {
	uint64_t hold_ns; /* DSM_HOLD_US */
	bool early;       /* DSM_HOLD_EARLY: end holds once the woken threads have run */
	struct dsm_rt_hold *v;
	size_t n, cap;
	struct dsm_rt_pending_fault *faults;
	size_t nfaults, faults_cap;
	/* The waiters of the line installed last, for the hold that follows its wake-up. */
	uint64_t woken_line;
	struct dsm_rt_waiters woken;
	uint64_t next_stall_check; /* when fault.c looks for stalled faults next */
	/* Open schedstat files of the threads that faulted lately: a read is then one pread,
	 * not an open, a read and a close (tid 0: a free slot). */
	struct {
		int32_t tid;
		int fd;
	} stat_fd[DSM_RT_STAT_FDS];
	unsigned stat_next; /* the slot a new thread takes when none is free */
};

/* ---- loop.c --------------------------------------------------------------------------- */

struct dsm_rt_loop {
	pthread_t thread;
	int epfd;
	atomic_bool stop;
	atomic_bool asleep; /* in epoll: a submitter must ring msg.evfd (msg.c) */
	/* Held by whoever runs the loop's turns: the loop thread, but while it sleeps an
	 * application thread that waits for an answer (dsm_rt_loop_drive). */
	pthread_mutex_t baton;
	atomic_int drivers; /* application threads that want the baton */
	bool tp_asleep;     /* the loop thread sleeps with the transport prepared (baton's) */
	unsigned busy;      /* turns with work, for the periodic stats and stall checks */
	uint64_t spin_ns;   /* DSM_SPIN_US: how long the loop thread polls after its work */
	uint64_t wait_ns;   /* DSM_WAIT_US: how long a waiting thread runs the turns */
	bool may_spin;      /* ranks on this node <= cores: spin briefly while a reply is due */
};

/* ---- msg.c: the handlers by message type, and the requests of application threads ---- */

/* A handler; @len matches the size registered for the type (any, where that is 0). */
typedef void dsm_rt_msg_fn(struct dsm_rt *rt, int src, const void *data, size_t len);

/* Protocol messages wait here for their peer's next send or the end of the turn, and
 * travel together (msg.c, "Gathering"): up to DSM_RT_GATHER_MSGS, with up to
 * DSM_RT_GATHER_BYTES of line data (or one line, where lines are larger; wire.h). */
#define DSM_RT_GATHER_PEERS 4

struct dsm_rt_gather {
	int peer;
	unsigned n;      /* 0: a free slot */
	unsigned ndata;  /* messages among them that carry a line */
	uint64_t opened; /* gather_clock when its first message came: the oldest goes first */
	dsm_coh_msg_t v[DSM_RT_GATHER_MSGS];
	char *buf; /* the COH_BATCH being built: its header, the lines, then room for v */
};

struct dsm_rt_msgs {
	struct {
		dsm_rt_msg_fn *fn; /* its messages' lengths are decode.c's to check */
	} on[DSM_RT_MSG_MAX + 1];
	int evfd; /* rung by a thread that submits: the loop polls it */
	pthread_mutex_t lock;
	struct dsm_rt_req *submit;  /* not yet seen by the loop */
	atomic_bool submitted;      /* set with submit: the loop looks at the list only then */
	struct dsm_rt_req *pending; /* sent, waiting for an answer (loop only) */
	uint64_t next_token;
	struct dsm_rt_gather gather[DSM_RT_GATHER_PEERS]; /* the loop's only */
	unsigned gathering;                               /* slots in use */
	uint64_t gather_clock;
	size_t line_size;  /* of the lines that messages carry */
	size_t gather_cap; /* line bytes a batch carries: whole lines, at least one */
};

/* ---- coll.c --------------------------------------------------------------------------- */

/* 2^16 ranks are more than the engine takes (DSM_COH_MAX_RANKS). */
#define DSM_RT_COLL_ROUNDS_MAX 16

struct dsm_rt_coll {
	pthread_mutex_t lock; /* one collective at a time per rank: numbered in call order */
	uint64_t seq;         /* the application side's last collective */
	/* The loop's side: the dissemination of collective done + 1. */
	unsigned rounds; /* ceil(log2(nranks)) */
	uint64_t done;   /* collectives completed here */
	bool active;     /* this rank has entered done + 1 */
	unsigned round;  /* the round whose message it waits for */
	struct dsm_rt_coll_sum sum;
	/* After a death (coordinated: wire.h, struct dsm_rt_coll_sync). */
	bool coordinated;
	struct dsm_rt_coll_call call;    /* the call of done + 1, while active */
	struct dsm_rt_coll_sum done_sum; /* the verdict of done */
	struct dsm_rt_coll_peer {
		uint64_t seq, done; /* what the rank said (done: or was released from) */
		struct dsm_rt_coll_call call;
	} * peers;          /* at the coordinator: per rank */
	uint64_t known_seq; /* a collective finished by some rank, with its verdict */
	struct dsm_rt_coll_sum known_sum;
	/* Rounds that came ahead of this rank, for done + 1 and done + 2 (a rank is never
	 * further ahead: it cannot finish a collective this one has not entered). */
	struct {
		uint64_t seq;
		uint32_t got; /* rounds held */
		struct dsm_rt_coll_sum sum[DSM_RT_COLL_ROUNDS_MAX];
	} early[2];
};

/* ---- mutex.c ------------------------------------------------------------------------- */

struct dsm_rt_mutexes {
	/* The mutexes homed here, hashed by address: the loop changes the table under the
	 * write lock, the home's own threads look in it under the read lock. */
	pthread_rwlock_t lock;
	struct dsm_rt_mutex **buckets;
	size_t nbuckets, count;
	/* The mutexes homed elsewhere that this rank holds (it checks its own unlocks), and
	 * the homes sent a one-way unlock since the last fence (a bit per rank). */
	pthread_mutex_t held_lock;
	uint64_t *held;
	size_t nheld, held_cap;
	uint64_t *unfenced;
};

/* ---- rdma.c: the home segment and grants by RDMA read --------------------------------- */

struct dsm_rt_rdma {
	bool on; /* grants carry no data: the requester reads the home segment */
	dsm_tp_seg_t *seg;
	struct dsm_rt_staging *free;
	struct dsm_rt_staging *cur; /* the one being installed from (DSM_COH_SRC_STAGING) */
	struct dsm_rt_staging **all;
	size_t n, cap;
};

/* ---- prefetch.c: read-ahead streams and prefetch hints ------------------------------- */

#define DSM_RT_PF_STREAMS  8    /* read-ahead streams followed at once */
#define DSM_RT_PF_HINTS    64   /* dsm_prefetch ranges queued at once */
#define DSM_RT_PF_INFLIGHT 256  /* prefetched lines on their way at once */
#define DSM_RT_PF_SHUNNED  4096 /* lines remembered as wasted (direct-mapped) */

struct dsm_rt_stream {
	uint64_t last;       /* the line of its latest miss */
	int64_t stride;      /* lines from one miss to the next (0: one miss so far) */
	uint64_t ahead;      /* the next line it asks for */
	uint64_t lo, hi;     /* it asks for lines in [lo, hi) only: its allocation */
	dsm_coh_span_t span; /* the allocation, for the homes */
	unsigned window;     /* lines it keeps asked for ahead of last; 0: not started */
	unsigned seen;       /* misses at this stride in a row */
	unsigned wasted;     /* its lines zapped before it reached them, since its last miss */
	uint64_t lru;        /* the miss clock when it last moved; 0: a free slot */
};

struct dsm_rt_pf_slot {
	uint64_t key; /* line + 1; 0: empty */
	uint8_t flags;
};

struct dsm_rt_hint {
	uint64_t line, n;
};

struct dsm_rt_prefetch {
	unsigned max; /* DSM_PREFETCH: most lines in a window; 0: no read-ahead */
	struct dsm_rt_stream s[DSM_RT_PF_STREAMS];
	uint64_t clock;
	bool issuing; /* the engine's read fault is a prefetch: not counted as a fault */
	/* Lines asked for and not arrived, and read-ahead lines not judged (used or wasted). */
	struct dsm_rt_pf_slot *set;
	size_t set_mask, set_n;
	/* Lines read ahead and invalidated unused, with their strikes (prefetch.c). */
	uint64_t *shunned;
	atomic_uint inflight; /* lines asked for and not arrived */
	atomic_bool stop;     /* finalizing: no new prefetches */
	/* The hints: application threads queue, the loop requests. */
	pthread_mutex_t lock;
	struct dsm_rt_hint hint[DSM_RT_PF_HINTS];
	unsigned hint_head, hint_n;
	atomic_bool hinted; /* hint_n > 0, read without the lock */
};

/* ---- mw.c: multiple-writer memory ---------------------------------------------------- */

/* A multiple-writer allocation: the state of each of its lines here (mw.c, MW_*), and with
 * asynchronous tracking the twins of its copies. */
struct dsm_rt_mw_range {
	uint64_t first, n; /* lines */
	uint8_t *state;
	char **twin; /* async: NULL, or its lines' twins */
};

/* A line written since the last release, and its twin (its bytes before the first write). */
struct dsm_rt_mw_dirty {
	uint64_t line;
	char *twin;
};

/* A line asked of its home: the acquire epoch of the request, and whether a thread writes. */
struct dsm_rt_mw_pending {
	uint64_t line;
	uint64_t epoch;
	bool write;
	bool waited; /* a thread faulted on it (else it was read ahead) */
};

/* A release or an acquire that waits for the holds of multiple-writer lines (mw.c). */
struct dsm_rt_mw_deferred {
	uint32_t op; /* enum dsm_rt_mw_op */
	uint64_t token;
};

/* One home's diffs of a release, being gathered into one message. */
struct dsm_rt_mw_out {
	int home; /* -1: free */
	size_t len;
	uint32_t n;
	char *buf;
};

#define DSM_RT_MW_OUTS 4

struct dsm_rt_mw {
	/* Read by application threads without the loop: work for a release (lines written,
	 * diffs not merged yet) or for an acquire (also copies held or on their way). Changed
	 * by the loop: a count goes up before the one it replaces comes down. held counts
	 * the copies an acquire drops (those homed elsewhere, and STALE ones) and the lines
	 * asked for; unreleased the lines written and the MW_DIFFs not acknowledged. */
	atomic_uint nranges;
	atomic_uint_fast64_t unreleased, held;
	/* Writes found without a fault (DSM_MW_TRACK=async): the ranges are under a userfaultfd
	 * of their own, and releases ask PAGEMAP_SCAN which pages were written. */
	bool async;
	struct dsm_rt_region region;
	struct dsm_rt_region *rg; /* the region multiple-writer ranges are under */
	struct page_region *scan; /* a release's scan results */
	char *take;               /* one line, registered with region: dsm_rt_region_take */
	/* The loop's own. */
	struct dsm_rt_mw_range *r; /* sorted by first line */
	size_t nr, r_cap;
	uint64_t *cached; /* lines installed here (RO or DIRTY), for the acquire */
	size_t ncached, cached_cap;
	uint64_t *drop; /* the acquire's: the copies it drops */
	size_t drop_cap;
	struct dsm_rt_mw_dirty *dirty;
	size_t ndirty, dirty_cap;
	struct dsm_rt_mw_pending *pending;
	size_t npending, pending_cap;
	uint64_t epoch;       /* acquires so far: data asked for before the last one is stale */
	uint64_t outstanding; /* MW_DIFFs sent and not acknowledged */
	uint64_t *acks;       /* per rank: of those, the ones sent to it */
	uint64_t *waiting;    /* tokens of releases that wait for outstanding to reach 0 */
	size_t nwaiting, waiting_cap;
	struct dsm_rt_mw_deferred *deferred; /* requests that wait for the holds to end */
	size_t ndeferred, deferred_cap;
	struct dsm_rt_mw_out out[DSM_RT_MW_OUTS];
	size_t msg_cap; /* bytes of one MW_DIFF or MW_DATA */
	char *scratch;  /* an MW_DATA being built, or a diff */
	char **twins;   /* free twins */
	size_t ntwins, twins_cap;
};

/* ---- cache.c: the bounded cache --------------------------------------------------------- */

struct dsm_rt_cache_slot {
	uint64_t line;
	uint8_t ref;      /* faulted on since the hand passed: a second chance */
	uint8_t evicting; /* EVICT sent, not zapped yet */
};

/* free.c: freed lines whose copies are still going. */
struct dsm_rt_free_job {
	uint64_t first, n;
	bool home;      /* this rank is their home: wait until its directory is idle too */
	int src;        /* who waits for the answer (-1: nobody) */
	uint64_t token; /* what the answer names */
	uint64_t t_end; /* when to stop waiting (a copy kept by a race with the free) */
	uint64_t *wait; /* lines not done yet */
	size_t nwait, cap;
};

struct dsm_rt_frees {
	struct dsm_rt_free_job *v;
	size_t n, cap;
};

struct dsm_rt_cache {
	uint64_t limit;     /* lines (DSM_CACHE_SIZE); 0: unlimited, counted all the same */
	uint64_t high, low; /* evictions start past high and go down to low */
	/* The copies of lines homed elsewhere, in the order the CLOCK's hand visits them, and
	 * the index of their positions (position + 1; 0: a free slot). */
	struct dsm_rt_cache_slot *v;
	size_t n, cap, hand;
	uint32_t *idx;
	size_t idx_mask;
	uint64_t evicting; /* copies asked to go and not zapped yet */
	bool warned;
	atomic_uint_fast64_t lines, hwm; /* for dsm_stats: n, and its largest */
};

/* ---- stats.c -------------------------------------------------------------------------- */

struct dsm_rt_counters {
	atomic_uint_fast64_t read_faults, write_faults, upgrades, inv_sent, inv_received;
	atomic_uint_fast64_t stale_faults, msgs_dropped, bytes_sent, bytes_received;
	atomic_uint_fast64_t lat[DSM_STATS_LAT_BUCKETS];
	atomic_uint_fast64_t holds, holds_early, sleeps, naps, missed_wakeups;
	atomic_uint_fast64_t lock_local, lock_remote, lock_handoffs;
	atomic_uint_fast64_t barriers, barrier_ns, barrier_ns_max;
	atomic_uint_fast64_t prefetched, prefetch_used, prefetch_wasted;
	atomic_uint_fast64_t install_runs, install_run_lines;
	atomic_uint_fast64_t migratory_grants, exclusive_writes, clean_writebacks;
	atomic_uint_fast64_t mw_faults, mw_twins, diffs_sent, diffs_merged, diff_bytes;
	atomic_uint_fast64_t mw_invalidations, releases, acquires;
	atomic_uint_fast64_t evictions_clean, evictions_dirty;
	atomic_uint_fast64_t adopted_copies, lost_lines;
	atomic_uint_fast64_t ckpt_copied;
};

struct dsm_rt_stats {
	struct dsm_rt_counters cnt;
	/* The loop copies the transport's here whenever it goes idle, and every so many busy
	 * turns. */
	pthread_mutex_t tp_lock;
	struct dsm_tp_stats tp;
	/* After a death, at the lowest live rank: the survivors' counters (STATS), under
	 * tp_lock; a row with struct_size 0 never came. */
	dsm_stats_t *all;
};

/* Adds @n to counter @field of @rt. */
#define DSM_RT_COUNT(rt, field, n)                                                                 \
	atomic_fetch_add_explicit(&(rt)->stats.cnt.field, (n), memory_order_relaxed)

/* ---- engine.c: lines of a batch installed together ---------------------------------------- */

/*
 * While a batch of messages is handled, the lines it grants with their data wait here, so
 * that lines next to each other in the heap whose data is next to each other in the batch
 * go in with one UFFDIO_COPY (a run). Before anything else touches a line's mapping the run
 * goes in (engine.c, flush_installs): to the engine and to the threads it is as if each line
 * had been installed as its grant was handled, since no thread runs through a line before
 * its UFFDIO_COPY and no other event is handled before the end of the batch.
 */
struct dsm_rt_installs {
	bool batching; /* inside a COH_BATCH: installs wait */
	uint64_t addr; /* the run: [addr, addr + len) from src, */
	size_t len;    /* 0: none */
	const char *src;
	bool writable; /* all of it read-write, or all read-only */
};

/* ---- death.c: a dead rank the survivors outlive (DSM_ON_DEATH=continue) ----------------- */

/* A message or fault for a line homed at a dead rank, held back at its new home until every
 * survivor has sent its copies (death.c). */
struct dsm_rt_parked {
	int src; /* the sender, or -1: a fault of this rank */
	dsm_coh_event_t ev;
	void *data; /* the message's line, or NULL */
};

struct dsm_rt_death {
	bool cont; /* DSM_ON_DEATH=continue */
	atomic_int ndead;
	_Atomic(unsigned char) *dead; /* per rank: 1 once dead here (dsm_dead_ranks reads it) */
	/* At a new home: per dead rank, the survivors whose ADOPTED came (nranks bits each;
	 * NULL: none yet), and whether every survivor's has come. */
	uint64_t **adopted;
	bool *complete;
	/* Per dead rank: dsm_rt_alloc_coll_mark() when it died. Collective memory from there on
	 * was allocated after the death: its lines have no data to lose. */
	uint64_t *coll_mark;
	int waiting; /* dead ranks homed here whose adoption is not complete */
	struct dsm_rt_parked *parked;
	size_t nparked, parked_cap;
};

/* ---- ckpt.c: live checkpoints (dsm_checkpoint) ----------------------------------------- */

/* A position of the snapshot being written (ckpt.c): undecided, or whether this rank saves its
 * line and from where; a record (a line this rank saves): who has saved it. */
enum dsm_rt_ck_dec { DSM_RT_CK_UNDECIDED = 0, DSM_RT_CK_SKIP, DSM_RT_CK_HOME, DSM_RT_CK_MAP };
enum dsm_rt_ck_state { DSM_RT_CK_TODO = 0, DSM_RT_CK_CLAIMED, DSM_RT_CK_DONE };

/* An allocation's lines, from position pos on. */
struct dsm_rt_ck_range {
	dsm_coh_span_t span;
	uint64_t pos;
};

struct dsm_rt_ckpt {
	/* The loop's: a checkpoint being agreed (ckpt.c, "Taking the snapshot"). */
	bool frozen;    /* this rank starts no request: its faults wait in parked */
	int waiting;    /* the step whose condition the loop waits for (0: none) */
	uint64_t token; /* ... and the request it answers then */
	struct dsm_rt_fault *parked;
	size_t nparked, parked_cap;
	/* The snapshot being written: its positions and their decisions (the loop's), the
	 * records (read by the writer thread up to nrec). */
	bool active;
	struct dsm_rt_ck_range *ranges;
	size_t nranges, ranges_cap;
	uint64_t *extra; /* other ranks' dsm_alloc lines held here, from extra_pos on */
	size_t nextra;
	uint64_t extra_pos, npos, cursor;
	uint8_t *dec;  /* per position: enum dsm_rt_ck_dec */
	uint32_t *rec; /* per position: its record */
	atomic_uint_fast64_t nrec;
	atomic_bool decided_all;
	uint64_t *rline; /* per record: the line */
	uint64_t *sums;
	uint8_t *src;         /* enum dsm_rt_ck_dec: HOME or MAP */
	_Atomic(uint8_t) *st; /* enum dsm_rt_ck_state */
	int fd;
	uint64_t data_off;
	uint64_t mw_masters; /* multiple-writer master copies copied into their home copies */
	bool scanned;        /* TAKE protected only the pages writable (ckpt.c, protect_scan) */
	atomic_int err;      /* the first write error */
	atomic_uint_fast64_t saved_by_loop;
	/* The application side: one checkpoint at a time. */
	pthread_mutex_t lock;
	bool pending; /* a snapshot not waited for: its writer runs or ran */
	bool writer_running;
	pthread_t writer;
	char dir[4096];  /* the template, as given */
	char mine[4096]; /* this rank's directory */
	uint64_t seq, id, nonce;
	uint64_t manifest_root; /* dsm_root() as the snapshot keeps it */
	uint64_t *alloc_words;
	size_t alloc_n;
	/* dsm_root, and whether this run came from a snapshot. */
	_Atomic(uintptr_t) root;
	bool restarted;
	/* The snapshot restarted from: rank 0's manifest (init reserves the heap at its base;
	 * all zero without DSM_RESTART). */
	struct dsm_ckpt_manifest restart_m;
	atomic_uint_fast64_t count, pause_ns, pause_ns_max, lines, write_ns;
};

/* ---- the rank ------------------------------------------------------------------------- */

struct dsm_rt {
	struct dsm_rt_config cfg;
	int rank, nranks;

	/* Memory: the heap (same address everywhere), the home segment (the canonical copy of
	 * the lines homed here, indexed like the heap), where lines live, who allocated what. */
	struct dsm_rt_heap heap;
	struct dsm_rt_heap homeseg;
	char *home; /* homeseg.base */
	dsm_coh_layout_t layout;
	struct dsm_rt_alloc alloc;
	struct dsm_rt_region region; /* the heap under userfaultfd */

	/* The protocol and the wire. */
	dsm_coh_node_t *node;
	dsm_coh_actions_t acts;
	struct dsm_rt_installs installs; /* engine.c: installs waiting for the end of a batch */
	dsm_tp_t *tp;
	struct dsm_rt_rdma rdma;

	struct dsm_rt_loop loop;
	struct dsm_rt_holds holds;
	struct dsm_rt_msgs msg;
	struct dsm_rt_coll coll;
	struct dsm_rt_mutexes mutexes;
	struct dsm_rt_prefetch pf;
	struct dsm_rt_mw mw;
	struct dsm_rt_cache cache;
	struct dsm_rt_death death;
	struct dsm_rt_ckpt ckpt;
	struct dsm_rt_frees frees;
	struct dsm_rt_stats stats;
	struct dsm_rt_prof *prof; /* profile.c: NULL without DSM_PROFILE */
};

/*
 * The running runtime: set by dsm_init once every part is up (release: a thread that sees
 * it sees every part), cleared by dsm_finalize. Atomic: application threads read it while
 * the thread in dsm_init or dsm_finalize writes it.
 */
extern struct dsm_rt *_Atomic dsm_rt_g;

/* dsm_rt_g for the public call @call, or NULL after one log line (not initialized). */
struct dsm_rt *dsm_rt_get(const char *call);

#endif
