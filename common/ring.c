/* SPDX-License-Identifier: MIT */
#include "common/ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void dsm_ring_init(struct dsm_ring *r, size_t esize)
{
	*r = (struct dsm_ring){.esize = esize};
}

void dsm_ring_fini(struct dsm_ring *r)
{
	free(r->v);
	*r = (struct dsm_ring){.esize = r->esize};
}

void *dsm_ring_at(const struct dsm_ring *r, size_t i)
{
	return r->v + ((r->head + i) % r->cap) * r->esize;
}

int dsm_ring_push(struct dsm_ring *r, const void *e)
{
	if (r->len == r->cap) {
		size_t ncap = r->cap ? 2 * r->cap : 8;
		unsigned char *nv = malloc(ncap * r->esize);

		if (nv == NULL)
			return -ENOMEM;
		/* Unwrapped into the new ring: the front moves to slot 0. */
		for (size_t i = 0; i < r->len; i++)
			memcpy(nv + i * r->esize, dsm_ring_at(r, i), r->esize);
		free(r->v);
		r->v = nv;
		r->cap = ncap;
		r->head = 0;
	}
	memcpy(r->v + ((r->head + r->len) % r->cap) * r->esize, e, r->esize);
	r->len++;
	return 0;
}

void dsm_ring_pop(struct dsm_ring *r)
{
	r->head = (r->head + 1) % r->cap;
	r->len--;
}
