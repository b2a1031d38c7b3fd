/* SPDX-License-Identifier: MIT */
/*
 * Collectives over the transport: each call carries its sequence number,
 * kind and arguments to rank 0, which answers every rank with one verdict
 * once all are in (DSM_ERR_MISMATCH, naming both calls, when they differ).
 * dsm_barrier, dsm_all_alloc, dsm_all_free and dsm_finalize run on it.
 */
#ifndef DSM_RT_COLL_H
#define DSM_RT_COLL_H

#include <stdint.h>

#include "runtime/wire.h"

struct dsm_rt;

int dsm_rt_coll_init(struct dsm_rt *rt);
void dsm_rt_coll_fini(struct dsm_rt *rt);
/* Every rank calls it with the same kind and arguments. 0 or DSM_ERR_MISMATCH (logged). */
/* Rank @dead died: collectives go through the lowest live rank from now on (coll.c). */
void dsm_rt_coll_peer_dead(struct dsm_rt *rt, int dead);
/* The lowest live rank (this one, if it knows of no live rank below it). */
int dsm_rt_coll_coordinator(struct dsm_rt *rt);
int dsm_rt_collective(struct dsm_rt *rt, enum dsm_rt_coll_kind kind, uint64_t a0, uint64_t a1);

#endif
