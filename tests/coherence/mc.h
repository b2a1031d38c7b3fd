/* SPDX-License-Identifier: MIT */
/*
 * The protocol model checker: N simulated ranks in one process, each with a
 * coherence engine, a page table holding real bytes, a home segment, a
 * userfaultfd queue and application threads running a small program of loads
 * and stores. A scheduler picks the next step among everything that could
 * happen (a thread's access, the event loop reading a fault, the delivery of
 * any message in flight, an RDMA completion, the end of a hold, and, when the
 * configuration allows it, the eviction of a copy homed elsewhere), and after
 * every step the invariants are checked.
 *
 * With batches on, a rank may also take every message one peer has in flight
 * to it at once, as the runtime handles a COH_BATCH: the lines those messages
 * install with their data wait and go in together, before any action that
 * dsm_coh_action_keeps_mappings() does not allow beside them and at the end
 * of the batch; no thread runs in between.
 */
#ifndef DSM_TEST_MC_H
#define DSM_TEST_MC_H

#include <stddef.h>
#include <stdint.h>

#include "coherence/coherence.h"

#define MC_MAX_NODES   16
#define MC_MAX_LINES   8
#define MC_MAX_THREADS 2
#define MC_MAX_OPS     8
#define MC_WORDS       2 /* locations per line that the programs use */
#define MC_MAX_MSGS    192
#define MC_MAX_UFFD    24

typedef struct mc_op {
	uint8_t line, word, write;
	uint32_t value; /* for a store; unique per store so a stale read shows */
} mc_op_t;

typedef struct mc_config {
	unsigned nnodes, nlines, nthreads;
	dsm_coh_data_mode_t data_mode;
	dsm_coh_data_mode_t wb_mode;
	unsigned bugs; /* DSM_COH_BUG_* */
	int fifo;      /* deliver in order per (src, dst) pair; default: any order */
	/* Leave out the direct check that a grant stays until its woken thread
	 * ran, so that only cycle detection can see a missing hold (a test of
	 * the exhaustive search itself). */
	int no_grant_check;
	/* The hold may end at any time (the runtime's timer fired before the
	 * woken thread ran). Only safety is checked then: a line may bounce
	 * between ranks, so cycles and long waits are allowed, but every read
	 * must still be right and single-writer must still hold. */
	int early_hold;
	int batch; /* deliveries may take a pair's messages in flight as one batch */
	/* Test only: the installs of a batch stay waiting after its end, to make
	 * a longer run with the next batch (the end-of-batch flush, left out). */
	int batch_keep_open;
	int migratory; /* the engine's migratory lines (dsm_coh_config_t.migratory) */
	/* The most evictions per schedule: a step may feed DSM_COH_EV_EVICT for a copy homed
	 * elsewhere that the engine can give up (S, M or E, stable); 0: none. */
	unsigned evictions;
	/* With @evictions: the evictions are the home's own, of lines whose memory was freed
	 * (DSM_COH_EV_DROP at the line's home, which serves its own EVICT) instead. */
	int drops;
	/* A dead rank (DSM_ON_DEATH=continue, PROTOCOL.md "A dead rank"): 1, rank @victim may
	 * die at any step (exhaustive: a choice in every state; with @death_at, at that step,
	 * or when nothing else can happen first). Each survivor then learns of it in a step of
	 * its own, or from another survivor's DEAD notice, and runs runtime/death.c's logic.
	 * Deaths need per-pair FIFO delivery (the runtime relies on it): they force it on. */
	int deaths;
	unsigned victim;
	unsigned death_at;
	dsm_coh_dist_t dist;
	unsigned nops[MC_MAX_NODES][MC_MAX_THREADS];
	mc_op_t ops[MC_MAX_NODES][MC_MAX_THREADS][MC_MAX_OPS];
} mc_config_t;

typedef enum mc_fail {
	MC_OK = 0,
	MC_SWMR,       /* two writers, or a reader beside a writer */
	MC_DATA,       /* a read returned something other than the last write */
	MC_PROTOCOL,   /* a node got an event its state cannot take */
	MC_DEADLOCK,   /* nothing can happen but threads are not done */
	MC_LIVELOCK,   /* a cycle in the state graph: a fault may never complete */
	MC_STARVATION, /* a fault took more steps than the bound */
	MC_BAD_ACTION, /* an action the runtime could not carry out */
	MC_FINAL,      /* after quiescence, directory and copies disagree */
	MC_MISMATCH,   /* a rank's engine state and its page table disagree */
	/* the mapping read (for a write-back or a store into the home segment)
	 * while absent (after a zap) or still writable (before the write-protect) */
	MC_ORDER,
	/* a line poisoned although a survivor held a copy of it when it learned of the death */
	MC_LOST_WRONGLY,
	MC_NFAIL,
} mc_fail_t;

const char *mc_fail_name(int f);

/* The races the protocol must survive, counted whenever a step reaches one,
 * so that a run shows it covered them (coh-mc fails a tier that misses one). */
typedef enum mc_cov {
	MC_COV_STALE_FAULT,   /* a fault message read after its line was granted */
	MC_COV_HOME_REQUEST,  /* the home faulted on its own line and asked itself */
	MC_COV_HOME_GIVES_UP, /* the home gave up its own modified line */
	MC_COV_INV_AT_SM,     /* an upgrade in flight crossed the INV of its copy */
	MC_COV_STALE_UPGRADE, /* a GET_M(UPGRADE) reached the home after that INV */
	MC_COV_DEFERRED,      /* an INV or FWD waited for a hold to end */
	MC_COV_LATE_RETRY,    /* a woken thread retried with other steps between */
	MC_COV_QUEUED,        /* a request waited behind another at the home */
	MC_COV_MIGRATORY,     /* a read miss granted exclusive (a migratory line) */
	MC_COV_EXCL_WRITE,    /* a write to an exclusive clean line, served locally */
	MC_COV_CLEAN_WB,      /* an exclusive line given up before any write, without data */
	/* Evictions (only with mc_config_t.evictions): */
	MC_COV_EVICT_NOOP,   /* an EVICT served after an INV or FWD_M took the copy: nothing left */
	MC_COV_EVICT_QUEUED, /* an EVICT waited behind another transaction at the home */
	MC_COV_EVICT_DIRTY,  /* an evicted modified copy written back */
	MC_COV_EVICT_FWD_S,  /* an evicting owner downgraded by a FWD_S (the EVICT takes its S) */
	MC_COV_EVICT_REFAULT, /* a rank asked again for a line it evicted */
	/* A dead rank (only with mc_config_t.deaths): */
	MC_COV_ADOPT_SHARER,   /* a read-only copy (S, SM) of a dead home's line adopted */
	MC_COV_ADOPT_OWNER,    /* an exclusive copy (E, M) of a dead home's line adopted */
	MC_COV_RESENT,         /* a request in flight to the dead home asked again, of the heir */
	MC_COV_PARKED,         /* a request or fault held back at the heir for the copies */
	MC_COV_LOST_REPLY,     /* a LOST answer: the line poisoned at a requester */
	MC_COV_OWNER_LOST,     /* a line the dead rank owned lost at a live home */
	MC_COV_LOST_AT_HEIR,   /* a line of the dead home nobody adopted, lost at the heir */
	MC_COV_LATE_FROM_DEAD, /* a message of the dead rank delivered before the notice */
	MC_NCOV,
} mc_cov_t;

#define MC_COV_FIRST_DEATH MC_COV_ADOPT_SHARER

const char *mc_cov_name(int c);

typedef struct mc_result {
	mc_fail_t fail;
	char what[640];
	uint64_t schedules; /* random: schedules run */
	double orders;      /* exhaustive: distinct schedules (paths to the end) */
	uint64_t states;    /* distinct states (exhaustive: exact; random: estimated) */
	uint64_t steps;
	uint64_t early_hold_schedules; /* random: schedules whose holds could end early */
	uint64_t batch_schedules;      /* random: schedules with batches */
	uint64_t batches;              /* batches delivered (exhaustive: transitions) */
	uint64_t batched_installs;     /* installs that waited in a batch */
	uint64_t max_fault_steps;      /* longest time a fault waited, in steps */
	uint64_t max_depth;            /* exhaustive: longest path */
	uint64_t evict_schedules;      /* random: schedules that could evict */
	uint64_t evictions;            /* evictions fed (exhaustive: transitions) */
	uint64_t death_schedules;      /* random: schedules with a death */
	uint64_t deaths;               /* deaths (exhaustive: transitions) */
	uint64_t sigbus;               /* accesses that raised SIGBUS (exhaustive: transitions) */
	uint64_t counters[DSM_COH_CNT_NCOUNTERS];
	/* random: steps reaching each race; exhaustive: transitions (each
	 * distinct state's outgoing steps, taken once) reaching it */
	uint64_t cov[MC_NCOV];
	uint64_t back_edges; /* exhaustive with early holds: cycles allowed there */
} mc_result_t;

/* Every order of every step, with state hashing; cycles count as livelock. */
int mc_exhaustive(const mc_config_t *cfg, uint64_t max_states, mc_result_t *res);

typedef struct mc_random_opts {
	uint64_t schedules; /* random: schedules run */
	double orders;      /* exhaustive: distinct schedules (paths to the end) */
	uint64_t seed;
	unsigned max_nodes, max_lines, max_threads, max_ops;
	dsm_coh_data_mode_t data_mode; /* or -1: pick per schedule */
	int any_data_mode;
	unsigned bugs;
	int fifo;
	int early_holds; /* one schedule in four lets holds end early */
	int batches;     /* one schedule in two delivers batches too */
	int batch_keep_open;
	int migratory; /* 0: off, 1: on, 2: on in three schedules of four */
	int evictions; /* one schedule in two may evict, 1 to 3 times (a third of them: drops) */
	/* 1: one schedule in four (of 2 to 10 ranks) loses a rank at a random step; 2: every
	 * schedule of 2 to 10 ranks does */
	int deaths;
	int verbose;
	uint8_t *hll; /* MC_HLL_SIZE registers to add the states to, or NULL */
} mc_random_opts_t;

/* Distinct states of random runs are estimated with HyperLogLog (about 1.6%
 * error); registers of several runs merge by taking the maximum. */
#define MC_HLL_SIZE 4096
uint64_t mc_hll_count(const uint8_t *reg);

/* Random configurations and random schedules; stops at the first failure. */
int mc_random(const mc_random_opts_t *o, mc_result_t *res);

/* A random configuration (exposed so tests can build their own). */
void mc_random_config(uint64_t *rng, const mc_random_opts_t *o, mc_config_t *cfg);

#endif
