/* SPDX-License-Identifier: MIT */
/*
 * The coherence engine at work: events go in (faults from fault.c, protocol
 * messages, the end of an RDMA read, the end of a hold), and the actions it
 * returns run here, in order: sends, installs, write-protects, zaps, copies
 * into the home segment, wake-ups, holds, counters. Nothing here reads a
 * heap page this rank may not hold.
 */
#ifndef DSM_RT_ENGINE_H
#define DSM_RT_ENGINE_H

#include "coherence/coherence.h"
#include "transport/transport.h"

struct dsm_rt;

/* The engine for this rank (it needs the data path, rdma.c), and its messages' handler. */
int dsm_rt_engine_init(struct dsm_rt *rt);
void dsm_rt_engine_fini(struct dsm_rt *rt);
/* Feeds one event and runs the actions. 0, or DSM_ERR_PROTOCOL: the event was refused and
 * nothing changed. Any other failure ends the rank. */
int dsm_rt_engine(struct dsm_rt *rt, const dsm_coh_event_t *ev, const void *msg_data);
/* An RDMA read of a line (rdma.c) completed: the line is installed from its staging. */
void dsm_rt_engine_rma_done(struct dsm_rt *rt, const struct dsm_tp_event *ev);

#endif
