/* SPDX-License-Identifier: MIT */
/*
 * One rank's runtime: the state of every part, each declared in its own
 * header with the functions that own it. docs/ARCHITECTURE.md shows which
 * file calls which; the flow of a miss is fault.c -> engine.c -> region.c
 * on the faulting rank, and msg.c -> engine.c at the home.
 */
#ifndef DSM_RT_H
#define DSM_RT_H

#include <stdbool.h>

#include "coherence/coherence.h"
#include "runtime/alloc.h"
#include "runtime/coll.h"
#include "runtime/config.h"
#include "runtime/heap.h"
#include "runtime/hold.h"
#include "runtime/loop.h"
#include "runtime/msg.h"
#include "runtime/mutex.h"
#include "runtime/rdma.h"
#include "runtime/region.h"
#include "runtime/stats.h"
#include "transport/transport.h"

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
	char *scratch; /* a protocol message being built: header + one line */
	dsm_tp_t *tp;
	struct dsm_rt_rdma rdma;

	struct dsm_rt_loop loop;
	struct dsm_rt_holds holds;
	struct dsm_rt_msgs msg;
	struct dsm_rt_coll coll;
	struct dsm_rt_mutex *mutexes; /* the ones homed here */
	struct dsm_rt_stats stats;
};

/* The running runtime: set by dsm_init once every part is up, cleared by dsm_finalize. */
extern struct dsm_rt *dsm_rt_g;

/* dsm_rt_g for the public call @call, or NULL after one log line (not initialized). */
struct dsm_rt *dsm_rt_get(const char *call);

#endif
