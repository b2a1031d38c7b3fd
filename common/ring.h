/* SPDX-License-Identifier: MIT */
/*
 * A FIFO ring of fixed-size elements that grows when full (the transport's
 * event queue, a mutex's waiters). Elements are copied in and read in place.
 */
#ifndef DSM_COMMON_RING_H
#define DSM_COMMON_RING_H

#include <stddef.h>

struct dsm_ring {
	unsigned char *v;
	size_t esize, cap, head, len;
};

void dsm_ring_init(struct dsm_ring *r, size_t esize);
void dsm_ring_fini(struct dsm_ring *r);
/* Appends a copy of @e, doubling the ring when full. 0 or -ENOMEM. */
int dsm_ring_push(struct dsm_ring *r, const void *e);
/* The @i-th element from the front (i < len), in place. */
void *dsm_ring_at(const struct dsm_ring *r, size_t i);
/* Drops the front element (len > 0). */
void dsm_ring_pop(struct dsm_ring *r);

static inline size_t dsm_ring_len(const struct dsm_ring *r)
{
	return r->len;
}

#endif
