/* SPDX-License-Identifier: MIT */
/* Open-addressing hash tables keyed by line id, and sharer sets. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "coherence/internal.h"
#include "common/hash.h"

void dsm_coh_table_init(dsm_coh_table_t *t, size_t esize)
{
	t->slots = NULL;
	t->esize = esize;
	t->cap = 0;
	t->n = 0;
}

void dsm_coh_table_fini(dsm_coh_table_t *t)
{
	free(t->slots);
	t->slots = NULL;
	t->cap = t->n = 0;
}

static uint64_t *slot_key(const dsm_coh_table_t *t, size_t i)
{
	return (uint64_t *)(void *)(t->slots + i * t->esize);
}

void *dsm_coh_table_slot(const dsm_coh_table_t *t, size_t i)
{
	uint64_t *k = slot_key(t, i);

	return *k == DSM_COH_NO_LINE ? NULL : k;
}

void *dsm_coh_table_find(const dsm_coh_table_t *t, uint64_t line)
{
	size_t i;

	if (t->cap == 0)
		return NULL;
	for (i = dsm_hash64(line) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
		uint64_t *k = slot_key(t, i);

		if (*k == line)
			return k;
		if (*k == DSM_COH_NO_LINE)
			return NULL;
	}
}

static uint8_t *alloc_slots(size_t cap, size_t esize)
{
	uint8_t *s = malloc(cap * esize);
	size_t i;

	if (!s)
		return NULL;
	memset(s, 0, cap * esize);
	for (i = 0; i < cap; i++)
		*(uint64_t *)(void *)(s + i * esize) = DSM_COH_NO_LINE;
	return s;
}

static int grow(dsm_coh_table_t *t)
{
	dsm_coh_table_t nt = *t;
	size_t i;

	nt.cap = t->cap ? t->cap * 2 : 16;
	nt.slots = alloc_slots(nt.cap, t->esize);
	if (!nt.slots)
		return -ENOMEM;
	for (i = 0; i < t->cap; i++) {
		uint64_t *k = slot_key(t, i);
		size_t j;

		if (*k == DSM_COH_NO_LINE)
			continue;
		for (j = dsm_hash64(*k) & (nt.cap - 1); *slot_key(&nt, j) != DSM_COH_NO_LINE;
		     j = (j + 1) & (nt.cap - 1))
			;
		memcpy(slot_key(&nt, j), k, t->esize);
	}
	free(t->slots);
	*t = nt;
	return 0;
}

void *dsm_coh_table_get(dsm_coh_table_t *t, uint64_t line)
{
	uint64_t *k = dsm_coh_table_find(t, line);
	size_t i;

	if (k)
		return k;
	/* Load factor at most 1/2 keeps probes short. */
	if ((t->n + 1) * 2 > t->cap && grow(t) < 0)
		return NULL;
	for (i = dsm_hash64(line) & (t->cap - 1); *slot_key(t, i) != DSM_COH_NO_LINE;
	     i = (i + 1) & (t->cap - 1))
		;
	k = slot_key(t, i);
	memset(k, 0, t->esize);
	*k = line;
	t->n++;
	return k;
}

int dsm_coh_table_copy(dsm_coh_table_t *dst, const dsm_coh_table_t *src)
{
	*dst = *src;
	if (src->cap == 0)
		return 0;
	dst->slots = malloc(src->cap * src->esize);
	if (!dst->slots)
		return -ENOMEM;
	memcpy(dst->slots, src->slots, src->cap * src->esize);
	return 0;
}

/* ---- Sharer sets ---- */

static size_t bitmap_words(unsigned nranks)
{
	return (nranks + 63) / 64;
}

int dsm_coh_sharers_has(const dsm_coh_sharers_t *s, unsigned rank)
{
	unsigned i;

	if (s->bitmap)
		return (s->u.bits[rank / 64] >> (rank % 64)) & 1;
	for (i = 0; i < s->n; i++)
		if (s->u.inl[i] == rank)
			return 1;
	return 0;
}

int dsm_coh_sharers_add(dsm_coh_sharers_t *s, unsigned rank, unsigned nranks)
{
	if (dsm_coh_sharers_has(s, rank))
		return 0;
	if (!s->bitmap && s->n == DSM_COH_INLINE_SHARERS) {
		uint64_t *bits = calloc(bitmap_words(nranks), sizeof(*bits));
		unsigned i;

		if (!bits)
			return -ENOMEM;
		for (i = 0; i < s->n; i++)
			bits[s->u.inl[i] / 64] |= 1ULL << (s->u.inl[i] % 64);
		s->u.bits = bits;
		s->bitmap = 1;
	}
	if (s->bitmap)
		s->u.bits[rank / 64] |= 1ULL << (rank % 64);
	else
		s->u.inl[s->n] = (uint16_t)rank;
	s->n++;
	return 0;
}

void dsm_coh_sharers_clear(dsm_coh_sharers_t *s)
{
	if (s->bitmap)
		free(s->u.bits);
	memset(s, 0, sizeof(*s));
}

void dsm_coh_sharers_del(dsm_coh_sharers_t *s, unsigned rank)
{
	unsigned i;

	if (!dsm_coh_sharers_has(s, rank))
		return;
	if (s->n == 1) {
		dsm_coh_sharers_clear(s);
		return;
	}
	s->n--;
	if (s->bitmap) {
		s->u.bits[rank / 64] &= ~(1ULL << (rank % 64));
		return;
	}
	for (i = 0; s->u.inl[i] != rank; i++)
		;
	s->u.inl[i] = s->u.inl[s->n];
}

int dsm_coh_sharers_next(const dsm_coh_sharers_t *s, unsigned from, unsigned nranks)
{
	unsigned i;
	int best = -1;

	if (s->bitmap) {
		for (i = from; i < nranks; i++) {
			uint64_t w = s->u.bits[i / 64] >> (i % 64);

			if (w == 0) {
				i |= 63; /* skip the rest of an empty word */
				continue;
			}
			return (int)(i + (unsigned)__builtin_ctzll(w));
		}
		return -1;
	}
	for (i = 0; i < s->n; i++)
		if (s->u.inl[i] >= from && (best < 0 || s->u.inl[i] < (unsigned)best))
			best = s->u.inl[i];
	return best;
}
