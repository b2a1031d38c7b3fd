/* SPDX-License-Identifier: MIT */
/*
 * The in-process loopback transport, for tests: n ranks of one process, each
 * opened with dsm_tp_open(&dsm_tp_loop_ops, attr with impl_arg = the fabric).
 */
#ifndef DSM_TRANSPORT_LOOPBACK_H
#define DSM_TRANSPORT_LOOPBACK_H

#include <stdbool.h>

#include "transport/transport.h"

extern const struct dsm_tp_ops dsm_tp_loop_ops;

typedef struct dsm_tp_loop_fabric dsm_tp_loop_fabric_t;
int dsm_tp_loop_fabric_create(int n, dsm_tp_loop_fabric_t **fab_p);
void dsm_tp_loop_fabric_destroy(dsm_tp_loop_fabric_t *fab);
/* Peer @rank of the fabric dies (the others get DSM_TP_EV_PEER_DEAD). */
void dsm_tp_loop_kill(dsm_tp_loop_fabric_t *fab, int rank);
/* The loopback accepts at most @depth in-flight messages per destination. */
void dsm_tp_loop_set_depth(dsm_tp_loop_fabric_t *fab, int depth);
/* The loopback chooses keys itself, as FI_MR_PROV_KEY providers do. */
void dsm_tp_loop_set_prov_key(dsm_tp_loop_fabric_t *fab, bool on);

#endif
