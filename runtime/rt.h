/* SPDX-License-Identifier: MIT */
/*
 * The runtime's state and its internal interfaces: the event loop, the
 * requests application threads hand it, collectives and mutexes.
 */
#ifndef DSM_RT_H
#define DSM_RT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <dsm.h>

#include "coherence/coherence.h"
#include "runtime/alloc.h"
#include "runtime/config.h"
#include "runtime/heap.h"
#include "runtime/region.h"
#include "transport/transport.h"

/* Transport message types of the runtime (1..DSM_RT_MSG_MAX). */
enum dsm_rt_msg_type {
	DSM_RT_MSG_COH = 1,   /* dsm_coh_msg_t, then the line's data if it carries any */
	DSM_RT_MSG_COLL,      /* struct dsm_rt_coll_msg: a rank entered a collective (to rank 0) */
	DSM_RT_MSG_COLL_DONE, /* struct dsm_rt_coll_done: every rank is in; the verdict */
	DSM_RT_MSG_MUTEX,     /* struct dsm_rt_mutex_msg: to the home of the mutex */
	DSM_RT_MSG_FREE,      /* struct dsm_rt_free_msg: a dsm_free for the slice's owner */
	DSM_RT_MSG_REPLY,     /* struct dsm_rt_reply: the answer to a MUTEX or FREE */
	DSM_RT_MSG_MAX = DSM_RT_MSG_REPLY,
};

enum dsm_rt_coll_kind {
	DSM_RT_COLL_BARRIER = 1,
	DSM_RT_COLL_ALL_ALLOC,
	DSM_RT_COLL_ALL_FREE,
	DSM_RT_COLL_FINALIZE,
};

enum dsm_rt_mutex_op {
	DSM_RT_MUTEX_INIT = 1,
	DSM_RT_MUTEX_LOCK,
	DSM_RT_MUTEX_TRYLOCK,
	DSM_RT_MUTEX_UNLOCK,
	DSM_RT_MUTEX_DESTROY,
};

struct dsm_rt_coll_msg {
	uint64_t seq;
	uint32_t kind;
	uint32_t reserved;
	uint64_t args[2];
};

struct dsm_rt_coll_done {
	uint64_t seq;
	int32_t status;    /* 0 or DSM_ERR_MISMATCH */
	uint32_t bad_rank; /* the first rank that differs from rank 0 */
	struct dsm_rt_coll_msg ref, bad;
};

struct dsm_rt_mutex_msg {
	uint32_t op;
	uint32_t reserved;
	uint64_t addr;
	uint64_t token;
};

struct dsm_rt_free_msg {
	uint64_t addr;
	uint64_t token;
};

struct dsm_rt_reply {
	uint64_t token;
	int32_t status;
	uint32_t reserved;
};

/* A request from an application thread to the event loop; lives on the caller's stack. */
struct dsm_rt_req {
	enum dsm_rt_msg_type type; /* COLL, MUTEX or FREE */
	int target;                /* the rank it goes to */
	union {
		struct dsm_rt_coll_msg coll;
		struct dsm_rt_mutex_msg mutex;
		struct dsm_rt_free_msg free;
	} u;
	int status;
	struct dsm_rt_coll_done done; /* COLL: rank 0's verdict */
	bool finished;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct dsm_rt_req *next;
};

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

/* A granted line kept until its woken threads have run, or until deadline_ns. */
struct dsm_rt_hold {
	uint64_t line;
	uint64_t deadline_ns;
	struct dsm_rt_waiters w;
};

struct dsm_rt_pending_fault {
	uint64_t line;
	uint64_t t0_ns;
	bool reported; /* its stall was logged */
	struct dsm_rt_waiters w;
};

struct dsm_rt_mutex_waiter {
	uint32_t rank;
	uint64_t token;
};

/* A mutex this rank is home of, keyed by its address. */
struct dsm_rt_mutex {
	uint64_t addr;
	bool held;
	struct dsm_rt_mutex_waiter holder;
	struct dsm_rt_mutex_waiter *q; /* FIFO of waiters */
	size_t qhead, qlen, qcap;
	struct dsm_rt_mutex *next;
};

struct dsm_rt_counters {
	atomic_uint_fast64_t read_faults, write_faults, upgrades, inv_sent, inv_received;
	atomic_uint_fast64_t stale_faults, msgs_dropped, bytes_sent, bytes_received;
	atomic_uint_fast64_t lat[DSM_STATS_LAT_BUCKETS];
	atomic_uint_fast64_t holds, holds_early, sleeps, naps, missed_wakeups;
};

/* A registered buffer that an RDMA read of a line fills (grants by RDMA). */
struct dsm_rt_staging {
	struct dsm_rt_staging *next; /* on the free list */
	uint64_t line;
	void *buf;
	dsm_tp_mr_t *mr;
};

struct dsm_rt {
	struct dsm_rt_config cfg;
	int rank, nranks;
	bool mpi_owned; /* libdsm initialized MPI and finalizes it */

	struct dsm_rt_heap heap;
	struct dsm_rt_heap
	        homeseg; /* the canonical copy of lines homed here, indexed like the heap */
	char *home;      /* homeseg.base */
	dsm_coh_layout_t layout;
	struct dsm_rt_alloc alloc;
	struct dsm_rt_region region;
	dsm_coh_node_t *node;
	dsm_coh_actions_t acts;
	dsm_tp_t *tp;
	/* Grants by RDMA read: the home segment as a transport segment (registered in chunks
	 * as lines are granted from it), and the staging buffers the reads fill. */
	bool rdma;
	dsm_tp_seg_t *tpseg;
	struct dsm_rt_staging *staging_free, *staging_cur;
	struct dsm_rt_staging **staging_all;
	size_t nstaging;

	/* The event loop. */
	pthread_t loop;
	int epfd, evfd;
	atomic_bool stop;
	uint64_t hold_ns;
	uint64_t spin_ns; /* how long to poll for a due reply before sleeping */
	bool may_spin;    /* ranks on this node <= cores: spin briefly while a reply is due */
	char *scratch;    /* a message being built: header + one line */
	struct dsm_rt_hold *holds;
	size_t nholds, holds_cap;
	struct dsm_rt_pending_fault *faults;
	size_t nfaults, faults_cap;
	/* The waiters of the line installed last, for the hold that follows its wake-up. */
	uint64_t woken_line;
	struct dsm_rt_waiters woken;
	bool hold_early; /* DSM_HOLD_EARLY: end holds once the woken threads have run */
	uint64_t next_stall_check;

	/* Requests from application threads. */
	pthread_mutex_t req_lock;
	struct dsm_rt_req *submit;  /* not yet seen by the loop */
	atomic_bool submitted;      /* set with submit: the loop looks at the list only then */
	struct dsm_rt_req *pending; /* sent, waiting for a reply (loop only) */
	uint64_t next_token;

	/* Collectives: serialized per rank; rank 0 gathers them. */
	pthread_mutex_t coll_lock;
	uint64_t coll_seq;
	struct dsm_rt_coll_msg *coll_in; /* rank 0: what each rank sent for the current seq */
	uint8_t *coll_arrived;
	int coll_count;
	uint64_t coll_cur;

	struct dsm_rt_mutex *mutexes; /* the ones homed here */

	struct dsm_rt_counters cnt;
	/* The transport's counters belong to the loop thread: it copies them here for
	 * dsm_stats() whenever it goes idle, and every so many busy turns. */
	pthread_mutex_t tp_stats_lock;
	struct dsm_tp_stats tp_stats;
};

extern struct dsm_rt *dsm_rt_g;

/* The event loop (loop.c). */
int dsm_rt_loop_start(struct dsm_rt *rt);
void dsm_rt_loop_stop(struct dsm_rt *rt);
/* Hands @req to the loop and sleeps until it is answered; returns req->status. */
int dsm_rt_submit(struct dsm_rt *rt, struct dsm_rt_req *req);

/* Home-side handlers, run on the loop (sync.c). A reply is sent to @src, or, for
 * src == rt->rank, completes the request directly. */
void dsm_rt_coll_arrive(struct dsm_rt *rt, int src, const struct dsm_rt_coll_msg *m);
void dsm_rt_mutex_handle(struct dsm_rt *rt, int src, const struct dsm_rt_mutex_msg *m);
void dsm_rt_free_handle(struct dsm_rt *rt, int src, const struct dsm_rt_free_msg *m);
void dsm_rt_mutexes_fini(struct dsm_rt *rt);

/* Answers request @token of @rank (loop.c): a message, or a local completion. */
void dsm_rt_reply(struct dsm_rt *rt, int rank, uint64_t token, int status);
/* Sends one runtime message, or hands it to this rank's own handler. */
int dsm_rt_send(struct dsm_rt *rt, int peer, enum dsm_rt_msg_type type, const void *buf,
                size_t len);

/* A collective: every rank calls it with the same kind and arguments. 0 or DSM_ERR_MISMATCH. */
int dsm_rt_collective(struct dsm_rt *rt, enum dsm_rt_coll_kind kind, uint64_t a0, uint64_t a1);

uint64_t dsm_rt_now_ns(void);

#endif
