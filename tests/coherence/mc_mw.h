/* SPDX-License-Identifier: MIT */
/*
 * The model checker of multiple-writer memory (runtime/mw.c, both ways of finding the
 * writes: twins at write faults, or asynchronous write-protect). N simulated
 * ranks in one process, each with the per-line states of mw.c (INVALID, PENDING, RO,
 * DIRTY with its twin, the STALE flag, master copies), a page table holding real bytes, a
 * home segment, a userfaultfd queue and one or two application threads running a small
 * program of reads, writes, releases, acquires, barriers and mutex lock/unlock. Messages
 * (GET with its epoch, DATA, DIFF, ACK, the barrier's dissemination rounds, LOCK, UNLOCK,
 * GRANT) travel in one FIFO channel per ordered pair of ranks; a scheduler picks the next
 * step among everything that could happen (a thread's access or call, the loop reading a
 * fault, the loop running a release or acquire it deferred, the end of an asynchronous
 * acquire's take-out, the delivery of the first message of any channel).
 *
 * What is checked, after every step and at the end of every schedule:
 *  - a read returns 0 or a value some write to that byte stored (never a byte nobody wrote);
 *  - in a data-race-free program, a read returns the last write to that byte, which then
 *    happens-before it; whether the program is race-free is checked too (vector clocks);
 *  - at the end (after the final barrier), the merged home copies (or the master copies
 *    that are the line) hold the last write of every byte, and every copy left is exact;
 *  - every schedule ends: nothing left waiting, no message or GET unanswered, no cycle;
 *  - mw.c's counters (held, unreleased) agree with the states they count.
 */
#ifndef DSM_TEST_MC_MW_H
#define DSM_TEST_MC_MW_H

#include <stdint.h>

#define MW_MC_MAX_RANKS   3
#define MW_MC_MAX_THREADS 2
#define MW_MC_MAX_LINES   3
#define MW_MC_MAX_BYTES   4 /* bytes per line that the programs use */
#define MW_MC_MAX_OPS     12
#define MW_MC_MAX_MUTEXES 2

typedef enum mw_mc_kind {
	MW_MC_READ,
	MW_MC_WRITE,
	MW_MC_RELEASE, /* dsm_release */
	MW_MC_ACQUIRE, /* dsm_acquire */
	MW_MC_BARRIER, /* dsm_barrier: release, the dissemination rounds, acquire */
	MW_MC_LOCK,    /* dsm_mutex_lock: the grant, then an acquire */
	MW_MC_UNLOCK,  /* dsm_mutex_unlock: a release, then the unlock */
} mw_mc_kind_t;

typedef struct mw_mc_op {
	uint8_t kind, line, byte;
	uint8_t value; /* a write's: nonzero and one per write, so that a stale read shows */
	uint8_t mutex;
} mw_mc_op_t;

/* Test-only bugs: each breaks one thing mw.c does. */
enum {
	MW_MC_BUG_KEEP_REMOTE = 1u << 0,   /* an acquire keeps the copies homed elsewhere */
	MW_MC_BUG_KEEP_STALE = 1u << 1,    /* an acquire keeps the STALE copies homed here */
	MW_MC_BUG_NO_ACK_WAIT = 1u << 2,   /* a release returns before its diffs are ACKed */
	MW_MC_BUG_NO_EPOCH = 1u << 3,      /* an answer to a GET from before the last acquire
	                                    * is installed */
	MW_MC_BUG_DIFF_VS_PAGE = 1u << 4,  /* a diff is taken against the page, not its twin */
	MW_MC_BUG_MASTER_NO_WP = 1u << 5,  /* the first remote diff copies a master copy into
	                                    * the home segment without write-protecting it */
	MW_MC_BUG_WHOLE_LINE = 1u << 6,    /* diffs carry and merge the whole line */
	MW_MC_BUG_ANSWER_HOME = 1u << 7,   /* a GET is answered from the home segment while
	                                    * the master copy is the line */
	MW_MC_BUG_NO_STALE_MARK = 1u << 8, /* the first remote diff leaves the copy master */
	MW_MC_BUG_DIFF_SHIFT = 1u << 9,    /* the home merges a diff's bytes one byte over */
	MW_MC_BUG_DROP_WAITED = 1u << 10,  /* an answer from before the last acquire is
	                                    * dropped even when a thread waits for it */
	MW_MC_BUG_TAKE_NO_DIFF = 1u << 11, /* asynchronous tracking: an acquire takes a line
	                                    * out without sending the stores since the scan */
};

typedef struct mw_mc_config {
	unsigned nranks, nthreads, nlines, nbytes, nmutexes;
	uint8_t home[MW_MC_MAX_LINES];
	uint8_t mutex_home[MW_MC_MAX_MUTEXES];
	int drf; /* race-free: reads must see the last write (and the program is checked) */
	/* Releases and acquires do not wait for the lines threads wait for (mw.c before
	 * c1a5951, dsm_rt_mw_holding): the only way a GET can be answered after an acquire,
	 * and so the only way the epochs matter. */
	int no_defer;
	int no_readahead; /* a miss asks for its line only */
	/* Asynchronous tracking (DSM_MW_TRACK=async, the default where the kernel has
	 * WP_ASYNC): stores never fault, a release scans for the written lines and diffs them
	 * against twins taken at install, an acquire takes its dropped lines out (a store of
	 * another thread may land until then) and sends what was stored since the scan. */
	int async;
	int any_order; /* a channel delivers any of its messages, not the first */
	unsigned bugs; /* MW_MC_BUG_* */
	unsigned nops[MW_MC_MAX_RANKS][MW_MC_MAX_THREADS];
	mw_mc_op_t ops[MW_MC_MAX_RANKS][MW_MC_MAX_THREADS][MW_MC_MAX_OPS];
} mw_mc_config_t;

/*
 * A program in words: per thread, ops separated by spaces, "w<line>.<byte>" (a write, its
 * value numbered in order), "r<line>.<byte>", "R" (release), "A" (acquire), "B" (barrier),
 * "L<mutex>", "U<mutex>".
 */
typedef struct mw_mc_spec {
	const char *name;
	unsigned nranks, nthreads, nlines, nbytes;
	const char *homes;       /* a digit per line: its home */
	const char *mutex_homes; /* a digit per mutex, or NULL */
	int drf;
	const char *prog[MW_MC_MAX_RANKS][MW_MC_MAX_THREADS];
} mw_mc_spec_t;

/* 0, or -1 with what is wrong in @why (which may be NULL). */
int mw_mc_config_from(const mw_mc_spec_t *sp, mw_mc_config_t *c, char *why, unsigned whylen);

/* The programs the command line and the tests run, by name (NULL: none). */
const mw_mc_spec_t *mw_mc_spec(const char *name);

typedef enum mw_mc_fail {
	MW_MC_OK = 0,
	MW_MC_BAD_VALUE,  /* a read returned a value no write stored in that byte */
	MW_MC_STALE_READ, /* race-free program: a read missed the last write */
	MW_MC_FINAL,      /* after the final barrier, a home copy or a copy is wrong */
	MW_MC_DEADLOCK,   /* nothing can happen, but a thread or a message waits */
	MW_MC_CYCLE,      /* a state repeats on a schedule: it may never end */
	MW_MC_PROTOCOL,   /* an event the protocol cannot take, or counters gone wrong */
	MW_MC_RACE,       /* a program said to be race-free has a race (its mistake) */
	MW_MC_BOUND,      /* a bound of the model (a channel, a queue, the states) */
	MW_MC_NFAIL,
} mw_mc_fail_t;

const char *mw_mc_fail_name(int f);

/* What a run reached, counted per transition (exhaustive) or per step (random). */
typedef enum mw_mc_cov {
	MW_MC_COV_READAHEAD,     /* a GET also asked for lines nobody waits for */
	MW_MC_COV_JOINED,        /* a fault on a line already asked for */
	MW_MC_COV_STALE_FAULT,   /* a fault read after its line came or became writable */
	MW_MC_COV_MASTER_STORE,  /* a store into a master copy, with no fault */
	MW_MC_COV_MASTER_ENDS,   /* another rank's first diff ended a master copy */
	MW_MC_COV_TWO_WRITERS,   /* two ranks had the same line DIRTY at once */
	MW_MC_COV_HOME_MERGE,    /* a home merged its own diff into a STALE line */
	MW_MC_COV_DROP_REMOTE,   /* an acquire dropped a copy homed elsewhere */
	MW_MC_COV_DROP_STALE,    /* an acquire dropped a STALE copy homed here */
	MW_MC_COV_ACK_WAIT,      /* a release waited for ACKs */
	MW_MC_COV_DEFERRED,      /* a release or acquire waited for a line a thread waits for */
	MW_MC_COV_OLD_RESEND,    /* an answer from before the last acquire, asked for again */
	MW_MC_COV_OLD_DROP,      /* an answer from before the last acquire, read ahead: dropped */
	MW_MC_COV_LOCK_QUEUED,   /* a lock request queued at the mutex's home */
	MW_MC_COV_EARLY_BARRIER, /* a barrier round arrived before its rank entered it */
	MW_MC_COV_TAKE_DIFF,     /* asynchronous: a store between an acquire's scan and its
	                          * take-out, sent with the take-out */
	MW_MC_COV_EARLIER_GET,   /* an answer to an earlier GET than the line's last, ignored
	                          * (no run needs it: a line has one GET out at a time) */
	MW_MC_NCOV,
} mw_mc_cov_t;

const char *mw_mc_cov_name(int c);

typedef struct mw_mc_result {
	mw_mc_fail_t fail;
	char what[512];
	char trace[12288];  /* the failing schedule, step by step */
	double orders;      /* exhaustive: distinct schedules (paths to an end) */
	uint64_t states;    /* distinct states (exhaustive: exact up to 64-bit fingerprints;
	                     * random: estimated) */
	uint64_t steps;     /* exhaustive: transitions; random: steps */
	uint64_t schedules; /* random: schedules run */
	uint64_t max_depth; /* the longest schedule */
	uint64_t cov[MW_MC_NCOV];
} mw_mc_result_t;

/* Every schedule, depth first with state hashing. 0; -1 for a bad configuration (said in
 * @res->what); -ENOMEM. */
int mw_mc_exhaustive(const mw_mc_config_t *cfg, uint64_t max_states, mw_mc_result_t *res);

/* Random schedules of @cfg; stops at the first failure. Returns as mw_mc_exhaustive. */
int mw_mc_walks(const mw_mc_config_t *cfg, uint64_t schedules, uint64_t seed, mw_mc_result_t *res);

typedef struct mw_mc_random_opts {
	uint64_t schedules;
	uint64_t seed;
	unsigned per_config; /* schedules of each random configuration */
	unsigned max_ranks, max_threads;
	unsigned bugs;
} mw_mc_random_opts_t;

/* A random program: race-free (phases between barriers, each byte written by one rank or
 * only read in a phase, or only touched under a mutex) three times in four, else racy. */
void mw_mc_random_config(uint64_t *rng, const mw_mc_random_opts_t *o, mw_mc_config_t *cfg);

/* Random configurations and random schedules; stops at the first failure. */
int mw_mc_random(const mw_mc_random_opts_t *o, mw_mc_result_t *res);

/* The program of @cfg in the words of mw_mc_spec_t, for a report. */
void mw_mc_config_str(const mw_mc_config_t *cfg, char *buf, unsigned len);

#endif
