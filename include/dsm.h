/* SPDX-License-Identifier: MIT */
/*
 * libdsm: page-based distributed shared memory for MPI programs.
 *
 * An MPI program calls dsm_init(), allocates from one global heap that sits at
 * the same virtual address on every rank, and then reads and writes it with
 * plain loads, stores and C11 atomics. Every line (one or more pages) has one
 * writer or any number of readers at a time, so the heap behaves as the memory
 * of one x86-TSO machine.
 *
 * Conventions:
 *  - Every int function returns 0 (or a non-negative value where it says so)
 *    on success and a negative error code on failure: a negated errno
 *    (-EINVAL, -ENOMEM, ...) or one of libdsm's own codes below (-256 down).
 *    dsm_strerror() names each.
 *  - Pointer-returning functions return NULL and set errno on failure.
 *  - "Collective" calls must be made by every rank, in the same order, with
 *    the same arguments. A mismatch fails on every rank with DSM_ERR_MISMATCH.
 *
 * This header includes nothing of libdsm's; dsm_mpi.h adds the MPI_Comm
 * variants.
 */
#ifndef DSM_H
#define DSM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define DSM_EXPORT __attribute__((visibility("default")))
#else
#define DSM_EXPORT
#endif

#define DSM_VERSION_MAJOR 0
#define DSM_VERSION_MINOR 1
#define DSM_VERSION_PATCH 0

/* libdsm's own error codes, returned negated like errno values. (libdsm's lower layers
 * carry the same enum, under the same guard.) */
#ifndef DSM_ERROR_CODES
#define DSM_ERROR_CODES
enum dsm_error {
	DSM_ERR_NOT_INIT = -256,     /* called before dsm_init() or after dsm_finalize() */
	DSM_ERR_ALREADY_INIT = -257, /* dsm_init() called twice */
	DSM_ERR_MISMATCH = -258,     /* ranks made different collective calls */
	DSM_ERR_PEER_DEAD = -259,    /* a rank of the job died */
	DSM_ERR_NO_UFFD = -260,      /* userfaultfd is missing or lacks a needed feature */
	DSM_ERR_NO_PROVIDER = -261,  /* no usable libfabric provider */
	DSM_ERR_PROTOCOL = -262,     /* a malformed or unexpected protocol message */
	DSM_ERR_NO_ADDRESS = -263,   /* no virtual address range is free on every rank */
	DSM_ERR_FOREIGN = -264,      /* a pointer that libdsm did not hand out */
	DSM_ERR_LAST = -265,
};
#endif

/* How dsm_all_alloc() spreads the homes of an allocation's lines. */
typedef enum dsm_dist {
	DSM_DIST_BLOCK = 0,  /* contiguous 1/N of the lines per rank (default) */
	DSM_DIST_CYCLIC = 1, /* line by line, round robin over the ranks */
	DSM_DIST_LOCAL = 2,  /* every line homed on rank 0 */
} dsm_dist_t;

/*
 * Settings. Initialize with DSM_CONFIG_INIT; a field left at 0 or NULL takes
 * its environment variable (DSM_HEAP_SIZE, DSM_LINE_SIZE, DSM_PROVIDER) and,
 * without one, libdsm's default. struct_size lets later versions grow the
 * struct without breaking programs built against this one.
 */
typedef struct dsm_config {
	size_t struct_size;   /* sizeof(dsm_config_t) */
	size_t heap_size;     /* bytes of address space reserved for the heap */
	size_t line_size;     /* coherence unit: a power-of-two multiple of the page size */
	const char *provider; /* libfabric provider name, e.g. "shm", "tcp;ofi_rxm", "verbs" */
	/* The most memory copies of lines homed elsewhere may take on this rank (bytes, at
	 * least a line); DSM_CACHE_UNLIMITED for no bound; 0: DSM_CACHE_SIZE decides. Appended
	 * after 0.1.0: an older struct_size leaves it to DSM_CACHE_SIZE. */
	size_t cache_size;
	/* A snapshot to start from (dsm_checkpoint's @dir, "%r" and all); NULL: DSM_RESTART
	 * decides. Appended after 0.1.0: an older struct_size leaves it to DSM_RESTART. */
	const char *restart;
} dsm_config_t;

#define DSM_CACHE_UNLIMITED ((size_t)-1)

#define DSM_CONFIG_INIT                                                                            \
	{                                                                                          \
		sizeof(dsm_config_t), 0, 0, NULL, 0, NULL                                          \
	}

/*
 * A mutex that lives in the heap (or anywhere else): a complete type of fixed
 * size, so it can sit inside a struct in the heap. Its address names it on
 * every rank; its waiter queue lives at the home rank of that address, so
 * locking does not move the page that holds it.
 */
typedef struct dsm_mutex {
	uint64_t opaque[8];
} dsm_mutex_t;

/* Fault latency histogram: bucket i counts faults that took [2^(i-1), 2^i) µs (bucket 0: < 1 µs;
 * the last bucket: everything longer). */
#define DSM_STATS_LAT_BUCKETS 24

/* One rank's counters, filled by dsm_stats(). Set struct_size before the call. */
typedef struct dsm_stats {
	size_t struct_size;
	uint64_t read_faults;   /* MISSING faults for reading resolved by the protocol */
	uint64_t write_faults;  /* MISSING faults for writing */
	uint64_t upgrades;      /* write-protect faults on lines held read-only */
	uint64_t inv_sent;      /* invalidations sent (as a home) */
	uint64_t inv_received;  /* invalidations received and acknowledged */
	uint64_t msgs_sent;     /* protocol messages sent */
	uint64_t msgs_received; /* protocol messages received */
	uint64_t msgs_dropped;  /* malformed messages dropped */
	uint64_t bytes_sent;    /* line data sent (inline or by RDMA) */
	uint64_t bytes_received;
	uint64_t fault_lat_us[DSM_STATS_LAT_BUCKETS];
	/* The event loop (appended in 0.1: callers with an older struct_size get the above). */
	uint64_t stale_faults;   /* faults found already resolved (a racing grant) */
	uint64_t holds;          /* grants held for their woken threads (DESIGN.md, Progress) */
	uint64_t holds_early;    /* holds ended as soon as every woken thread had run */
	uint64_t sleeps;         /* times the event loop slept in epoll */
	uint64_t naps;           /* short sleeps while the transport could not sleep */
	uint64_t missed_wakeups; /* sleeps that ended by timeout with work waiting */
	/* Synchronization (appended after 0.1.0; an older struct_size gets the above). A
	 * successful lock or trylock counts once, in one of the three: their sum is this
	 * rank's acquisitions. */
	uint64_t lock_local;     /* taken at its home with no message (a free mutex) */
	uint64_t lock_remote;    /* granted in answer to a request (to another rank or the loop) */
	uint64_t lock_handoffs;  /* handed over by the previous holder's unlock (it waited) */
	uint64_t barriers;       /* dsm_barrier() calls completed */
	uint64_t barrier_ns;     /* their time, summed (ns) */
	uint64_t barrier_ns_max; /* the longest one (ns) */
	/* Prefetch (appended after 0.1.0; an older struct_size gets the above). A line read
	 * ahead is used once a thread reaches it, wasted when it is invalidated first or its
	 * stream stops short of it; prefetched - used - wasted are hinted lines (whose use is
	 * not seen: they cause no fault) and lines still ahead of their stream. */
	uint64_t prefetched;      /* lines requested ahead of a fault (read-ahead and hints) */
	uint64_t prefetch_used;   /* read-ahead lines reached by their stream */
	uint64_t prefetch_wasted; /* read-ahead lines invalidated before, or never reached */
	/* Lines granted together (appended after 0.1.0): the grants of one batch of messages
	 * whose lines follow each other in the heap go in with one UFFDIO_COPY. */
	uint64_t install_runs;      /* UFFDIO_COPYs that installed more than one line */
	uint64_t install_run_lines; /* the lines they installed */
	/* Migratory lines (appended after 0.1.0): a line that ranks take turns to read then
	 * write is granted exclusive on the read miss (README, DSM_MIGRATORY). */
	uint64_t migratory_grants; /* as a home: read misses granted exclusive */
	uint64_t exclusive_writes; /* writes to lines held exclusive, served with no message */
	uint64_t clean_writebacks; /* exclusive lines given up unwritten, without data */
	/* Multiple-writer memory (appended after 0.1.0; README, "Multiple-writer memory"). */
	uint64_t mw_faults;        /* faults on multiple-writer memory (misses and first writes) */
	uint64_t mw_twins;         /* twins taken: a line's first write since its release */
	uint64_t diffs_sent;       /* line diffs sent to other homes at releases */
	uint64_t diffs_merged;     /* as a home: line diffs merged (this rank's own included) */
	uint64_t diff_bytes;       /* bytes of the diffs made */
	uint64_t mw_invalidations; /* copies dropped at acquires (others may have written them) */
	uint64_t releases;         /* releases that had writes to publish */
	uint64_t acquires;         /* acquires that had copies to drop or writes to publish */
	/* The bounded cache (appended after 0.1.0; an older struct_size gets the above): copies
	 * of lines homed elsewhere (DSM_CACHE_SIZE). */
	uint64_t evictions_clean;   /* evictions asked for of read-only copies (S, E) */
	uint64_t evictions_dirty;   /* evictions asked for of modified copies (written back) */
	uint64_t writeback_bytes;   /* evictions_dirty x the line size: an estimate */
	uint64_t cache_bytes;       /* copies held now */
	uint64_t cache_hwm_bytes;   /* the most held at once */
	uint64_t cache_limit_bytes; /* the budget; 0: unlimited */
	/* The wire (appended after 0.1.0; an older struct_size gets the above). */
	uint64_t msgs_rejected; /* without this job's key: from outside the job, never acted on */
	/* A dead rank (appended after 0.1.0; DSM_ON_DEATH=continue, README "When a rank dies"). */
	uint64_t dead_ranks;     /* ranks this rank knows dead */
	uint64_t adopted_copies; /* copies of dead ranks' lines handed to their new homes */
	uint64_t lost_lines;     /* lines poisoned here: their only copy died */
	/* Live checkpoints (appended after 0.1.0; README, "Checkpoint and restart"). */
	uint64_t checkpoints;       /* dsm_checkpoint() calls that took a snapshot */
	uint64_t ckpt_pause_ns;     /* the last one's pause: agreeing and write-protecting */
	uint64_t ckpt_pause_ns_max; /* the longest pause */
	uint64_t ckpt_lines;        /* lines this rank wrote to snapshots */
	uint64_t ckpt_copied;   /* of those, saved before a write or a give-up could change them */
	uint64_t ckpt_write_ns; /* the last snapshot's background write, until durable here */
} dsm_stats_t;

/* What dsm_query() says about the running libdsm. Set struct_size before the call. */
typedef struct dsm_info {
	size_t struct_size;
	int rank;
	int nranks;
	size_t line_size;      /* bytes per coherence line */
	size_t page_size;      /* the system page size */
	size_t heap_size;      /* bytes of the heap's reservation */
	void *heap_base;       /* where the heap starts, the same address on every rank */
	char provider[64];     /* the libfabric provider in use, as it names itself ("shm") */
	char uffd_mode[16];    /* userfaultfd: "full" or "user-mode-only" (README, Requirements) */
	char data_path[16];    /* how grants carry a line: "inline" or "rdma" (DSM_DATA) */
	int overcommit_strict; /* 1: the heap is opened in chunks as allocated
	                          (vm.overcommit_memory=2) */
	char mw_track[16]; /* multiple-writer writes found by "async" or "twin" (DSM_MW_TRACK) */
} dsm_info_t;

/**
 * dsm_init() - start libdsm on every rank of MPI_COMM_WORLD. Collective.
 * @cfg: settings, or NULL for the defaults and the DSM_* environment.
 *
 * Calls MPI_Init_thread() only if MPI is not initialized yet (and then
 * dsm_finalize() finalizes it). Reserves the heap at the same address on every
 * rank, registers it with userfaultfd and starts the event loop thread.
 * Return: 0, DSM_ERR_ALREADY_INIT, DSM_ERR_NO_UFFD, DSM_ERR_NO_PROVIDER,
 * DSM_ERR_NO_ADDRESS, -EINVAL for bad settings, -ENOMEM.
 */
DSM_EXPORT int dsm_init(const dsm_config_t *cfg);

/**
 * dsm_finalize() - stop libdsm. Collective.
 *
 * Every rank's writes are in place before it returns on any rank. The heap is
 * unmapped: pointers into it are invalid afterwards.
 */
DSM_EXPORT int dsm_finalize(void);

/**
 * dsm_query() - what the running libdsm uses: ranks, line and heap sizes, provider,
 * userfaultfd mode. @out: set out->struct_size = sizeof(*out) first; fields beyond it are
 * left alone. 0, DSM_ERR_NOT_INIT, or -EINVAL for a NULL @out or a struct_size too small.
 */
DSM_EXPORT int dsm_query(dsm_info_t *out);

/** dsm_rank() - this rank (0 .. dsm_nranks()-1), or DSM_ERR_NOT_INIT. */
DSM_EXPORT int dsm_rank(void);

/** dsm_nranks() - the number of ranks, or DSM_ERR_NOT_INIT. */
DSM_EXPORT int dsm_nranks(void);

/**
 * dsm_all_alloc() - allocate from the global heap. Collective.
 * @size: bytes, > 0; rounded up to whole lines
 * @dist: how the homes of the lines are spread over the ranks
 *
 * Every rank passes the same arguments and gets the same address, aligned to
 * the line size. Return: the address, or NULL with errno set (EINVAL for a
 * size of 0 or an unknown @dist, ENOMEM when the heap is full, and the
 * positive value of DSM_ERR_MISMATCH when ranks disagree; see dsm_strerror()).
 */
DSM_EXPORT void *dsm_all_alloc(size_t size, dsm_dist_t dist);

/**
 * dsm_all_alloc_mw() - allocate multiple-writer memory. Collective, like dsm_all_alloc().
 *
 * Several ranks may write one line of it at once; their writes are merged byte by byte.
 * It is coherent at synchronization only (release consistency for data-race-free
 * programs): the writes a rank made before dsm_release() (or dsm_mutex_unlock(), or
 * dsm_barrier()) are seen by a rank after its next dsm_acquire() (or dsm_mutex_lock(), or
 * dsm_barrier()). C11 atomics and spin locks do not work across ranks on it: keep them in
 * memory from dsm_all_alloc(). Freed with dsm_all_free().
 */
DSM_EXPORT void *dsm_all_alloc_mw(size_t size, dsm_dist_t dist);

/** dsm_release() - make this rank's writes to multiple-writer memory visible to the next
 * acquirers; returns once every home has merged them. */
DSM_EXPORT void dsm_release(void);

/** dsm_acquire() - see the writes to multiple-writer memory released before. */
DSM_EXPORT void dsm_acquire(void);

/** dsm_all_free() - free memory from dsm_all_alloc() or dsm_all_alloc_mw(). Collective. */
DSM_EXPORT int dsm_all_free(void *p);

/**
 * dsm_alloc() - allocate from the global heap, homed on the caller. Local and
 * thread-safe; the address is valid on every rank. NULL and errno on failure.
 */
DSM_EXPORT void *dsm_alloc(size_t size);

/** dsm_free() - free memory from dsm_alloc(), from any rank and any thread. */
DSM_EXPORT int dsm_free(void *p);

/** dsm_home() - home rank of @addr, or -EINVAL outside the heap. */
DSM_EXPORT int dsm_home(const void *addr);

/**
 * dsm_prefetch() - ask for [@addr, @addr + @len) ahead of use. Local, thread-safe,
 * asynchronous: it returns at once, and the event loop requests the lines in the
 * background as read-only copies (coherent like any other: a write anywhere invalidates
 * them). Lines this rank holds already are skipped. Works whatever DSM_PREFETCH says.
 * Return: 0 (also for @len 0), -EINVAL for a range outside the heap or not allocated,
 * -EAGAIN when 64 ranges wait already (this one is dropped), DSM_ERR_NOT_INIT.
 */
DSM_EXPORT int dsm_prefetch(const void *addr, size_t len);

/**
 * dsm_barrier() - wait until every rank has called it. Collective.
 *
 * Built on the transport; the caller sleeps (it does not spin in MPI) until
 * the barrier completes. Not needed for correctness of plain loads and stores,
 * only to wait for other ranks.
 */
DSM_EXPORT void dsm_barrier(void);

/**
 * dsm_mutex_init() - make @m a mutex. Returns once the home of @m knows it, so
 * that any rank may lock it after the next dsm_barrier().
 */
DSM_EXPORT int dsm_mutex_init(dsm_mutex_t *m);

/** dsm_mutex_lock() - take @m, sleeping in FIFO order behind earlier takers. */
DSM_EXPORT int dsm_mutex_lock(dsm_mutex_t *m);

/** dsm_mutex_trylock() - take @m if it is free; -EBUSY if not. */
DSM_EXPORT int dsm_mutex_trylock(dsm_mutex_t *m);

/** dsm_mutex_unlock() - release @m (which the calling thread holds). */
DSM_EXPORT int dsm_mutex_unlock(dsm_mutex_t *m);

/** dsm_mutex_destroy() - forget @m; -EBUSY while it is held. */
DSM_EXPORT int dsm_mutex_destroy(dsm_mutex_t *m);

/**
 * dsm_stats() - this rank's counters.
 * @out: set out->struct_size = sizeof(*out) first; fields beyond it are left alone.
 */
DSM_EXPORT int dsm_stats(dsm_stats_t *out);

/**
 * dsm_dead_ranks() - the ranks this rank knows dead (DSM_ON_DEATH=continue; README, "When a
 * rank dies"). Local, thread-safe. Writes up to @max of them to @ranks, in increasing order,
 * and returns how many there are (which may be more than @max), DSM_ERR_NOT_INIT, or
 * -EINVAL for a negative @max or a NULL @ranks with @max > 0.
 */
DSM_EXPORT int dsm_dead_ranks(int *ranks, int max);

/**
 * dsm_checkpoint() - a snapshot of the whole heap, taken while the program runs. Collective.
 * @dir: where the files go, the same string on every rank; "%r" in it stands for the rank
 *       (node-local disks). Created if missing, parents too; a snapshot already there stops
 *       looking complete at once (its MANIFEST goes first), so keep two and alternate.
 *
 * Returns once the snapshot is consistent: it holds every line and allocation as they were
 * while every rank was inside the call (it orders like dsm_barrier), and dsm_root(). The
 * data is written in the background; a write to a line not saved yet saves it first. Wait
 * for it with dsm_checkpoint_wait() (the next dsm_checkpoint and dsm_finalize wait too).
 * 0, DSM_ERR_NOT_INIT, -EINVAL (a NULL or too long @dir), DSM_ERR_MISMATCH, -ENOTSUP (the
 * heap holds multiple-writer memory: not in snapshots yet), DSM_ERR_PEER_DEAD (after a
 * death), or -errno of creating the files: every rank fails, the one that could not with
 * its error (logged), the others with -EIO.
 */
DSM_EXPORT int dsm_checkpoint(const char *dir);

/**
 * dsm_checkpoint_wait() - until the last dsm_checkpoint() is durable. Collective. Each rank's
 * file is written and fsync'ed, then the MANIFEST (written last: a snapshot without one is
 * incomplete). 0 (also with no snapshot pending), DSM_ERR_NOT_INIT, or a write error on
 * every rank: the first of its own (-ENOSPC, ...) on a rank that had one, -EIO elsewhere.
 */
DSM_EXPORT int dsm_checkpoint_wait(void);

/** dsm_root() - the pointer snapshots keep (dsm_set_root), after a restart the saved one. */
DSM_EXPORT void *dsm_root(void);

/**
 * dsm_set_root() - the one pointer a snapshot keeps, so that a restarted program finds its
 * data. Local: every rank sets the same before dsm_checkpoint (a difference fails it with
 * DSM_ERR_MISMATCH). 0, DSM_ERR_NOT_INIT, or DSM_ERR_FOREIGN for a pointer outside the
 * heap (NULL is allowed).
 */
DSM_EXPORT int dsm_set_root(void *p);

/** dsm_restarted() - 1 if this run started from a snapshot (DSM_RESTART), 0 if not. */
DSM_EXPORT int dsm_restarted(void);

/** dsm_strerror() - a static string naming @err (negative or positive). Never NULL. */
DSM_EXPORT const char *dsm_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* DSM_H */
