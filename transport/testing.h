/* SPDX-License-Identifier: MIT */
/* What only tests do to a transport: put malformed bytes on the wire. */
#ifndef DSM_TRANSPORT_TESTING_H
#define DSM_TRANSPORT_TESTING_H

#include <stddef.h>

#include "transport/transport.h"

/* Puts @len raw bytes on the wire to @peer: no header, no sequence number. */
static inline int dsm_tp_send_raw(dsm_tp_t *tp, int peer, const void *buf, size_t len)
{
	return tp->send_raw(tp, peer, buf, len);
}

#endif
