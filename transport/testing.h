/* SPDX-License-Identifier: MIT */
/* What only tests do to a transport: put malformed bytes on the wire. */
#ifndef DSM_TRANSPORT_TESTING_H
#define DSM_TRANSPORT_TESTING_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "transport/internal.h"
#include "transport/transport.h"

/* This endpoint's address as the provider names it (what a process outside the job that
 * wants to reach it would need): 0, -ENOTSUP, or -ENOSPC if *len is too small. */
static inline int dsm_tp_ep_name(dsm_tp_t *tp, void *buf, size_t *len)
{
	return tp->ep_name ? tp->ep_name(tp, buf, len) : -ENOTSUP;
}

/* The job key that @tp's headers carry (a test writing raw headers that must be taken). */
static inline uint64_t dsm_tp_wire_key(dsm_tp_t *tp)
{
	return tp->core->key;
}

/* Puts @len raw bytes on the wire to @peer: no header, no sequence number. */
static inline int dsm_tp_send_raw(dsm_tp_t *tp, int peer, const void *buf, size_t len)
{
	return tp->send_raw(tp, peer, buf, len);
}

#endif
