/* SPDX-License-Identifier: MIT */
/*
 * Runtime messages and requests, under everything that talks to other ranks.
 *
 * Messages: each type has one handler, registered at init by the file that
 * owns it (the engine: COH; coll.c: COLL and COLL_DONE; mutex.c: MUTEX;
 * api.c: FREE; this file: REPLY). The loop hands every message in, and a
 * message a rank sends itself goes the same way without the transport.
 *
 * Requests: an application thread that needs the loop (a collective, a mutex
 * operation, a remote free) hands it a request and sleeps until its answer
 * comes back: a REPLY naming its token, or COLL_DONE naming its sequence.
 */
#ifndef DSM_RT_MSG_H
#define DSM_RT_MSG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coherence/coherence.h"
#include "common/event.h"
#include "runtime/rt.h"
#include "runtime/wire.h"

/* A request, on the calling thread's stack while it sleeps. */
struct dsm_rt_req {
	enum dsm_rt_msg_type type; /* what it sends: COLL, MUTEX or FREE */
	int target;                /* the rank it goes to */
	union {
		struct dsm_rt_coll_msg coll;
		struct dsm_rt_mutex_msg mutex;
		struct dsm_rt_free_msg free;
		struct dsm_rt_mw_msg mw;
		struct dsm_rt_ckpt_msg ckpt;
		struct dsm_rt_freed_msg freed;
		struct dsm_rt_stats_msg stats;
	} u;
	size_t len;      /* bytes of u that go */
	uint64_t *token; /* where in u the loop writes the token a REPLY names; NULL: none */
	enum dsm_rt_msg_type answer; /* REPLY, COLL, or NONE: done once sent */
	uint64_t key;                /* what the answer names: the token, or COLL's seq */
	void *ctx;                   /* the answer's handler may leave more here */
	int status;
	struct dsm_event done; /* posted by the loop with the answer */
	struct dsm_rt_req *next;
};

int dsm_rt_msg_init(struct dsm_rt *rt);
void dsm_rt_msg_fini(struct dsm_rt *rt);
/* @fn handles messages of @type, which are @len bytes (0: any length). */
void dsm_rt_msg_on(struct dsm_rt *rt, enum dsm_rt_msg_type type, size_t len, dsm_rt_msg_fn *fn);
/* A message from @src (or this rank) to its handler; a malformed one is counted and dropped. */
void dsm_rt_msg_dispatch(struct dsm_rt *rt, int src, unsigned type, const void *data, size_t len);
/* For a handler that finds its message malformed: counted, and one warning. */
void dsm_rt_msg_malformed(struct dsm_rt *rt, int src, unsigned type, size_t len);
/* Sends one runtime message, or hands it to this rank's own handler. Messages gathered for
 * @peer leave first. */
int dsm_rt_send(struct dsm_rt *rt, int peer, enum dsm_rt_msg_type type, const void *buf,
                size_t len);
/*
 * Gathering: a protocol message to another rank waits, with the others for that peer, until
 * anything else is sent to the peer or the loop's turn ends (or the batch is full: 128
 * messages, or DSM_RT_GATHER_BYTES of lines), then they leave as one message (COH_BATCH;
 * COH for a lone one without data). Per pair the order of everything sent stays the order
 * of the calls, and no message waits past the turn that made it: to the engine this is a
 * network that delays a message a little (the engine sends a batch that carries lines
 * sooner: dsm_rt_msg_flush, dsm_rt_msg_flush_lines). A message that carries a line
 * (DSM_COH_MSGF_DATA) gets in *@data_p where the caller puts the line's bytes, before any
 * other call here.
 * Returns 0, or the error of a batch that had to leave first (the message is taken anyway).
 */
int dsm_rt_send_gathered(struct dsm_rt *rt, int peer, const dsm_coh_msg_t *m, void **data_p);
/* The largest message gathering makes, for lines of @line_size bytes: the transport's. */
size_t dsm_rt_msg_max(size_t line_size);
/* Sends what waits for @peer now (-1: for every peer). */
int dsm_rt_msg_flush(struct dsm_rt *rt, int peer);
/* Sends what waits for every peer whose batch carries a line. */
int dsm_rt_msg_flush_lines(struct dsm_rt *rt);
/* Rank @peer died: the requests waiting for its answer fail with DSM_ERR_PEER_DEAD. */
void dsm_rt_msg_peer_dead(struct dsm_rt *rt, int peer);
/* The zaps and wakes that a batch holds back (engine.c, region.h) go in; every send does it
 * first, since a message may tell a home that a line is given up. @end: the batch is over. */
void dsm_rt_msg_kernel_flush(struct dsm_rt *rt, bool end);
/* Answers request @token of @rank: a REPLY, or a local completion. */
void dsm_rt_reply(struct dsm_rt *rt, int rank, uint64_t token, int status);

/* The loop: sends what was submitted since last time; returns how many. */
int dsm_rt_msg_drain_requests(struct dsm_rt *rt);
/* The loop: the pending request that @answer with @key names, unlinked; NULL if none. */
struct dsm_rt_req *dsm_rt_req_take(struct dsm_rt *rt, enum dsm_rt_msg_type answer, uint64_t key);
/* Wakes the request's thread with @status (req is gone once this returns). */
void dsm_rt_req_complete(struct dsm_rt_req *req, int status);
/* Wakes the loop (a request waits, or it is to stop). */
void dsm_rt_msg_wake(struct dsm_rt *rt);

#endif
