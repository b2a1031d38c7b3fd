/* SPDX-License-Identifier: MIT */
/* Hashes for open-addressing tables and state fingerprints: one of each, for every layer. */
#ifndef DSM_COMMON_HASH_H
#define DSM_COMMON_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* splitmix64's finalizer: neighbouring keys (line ids) land far apart. */
static inline uint64_t dsm_hash64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* @n bytes folded into @h, eight at a time. */
static inline uint64_t dsm_hash_bytes(const uint8_t *p, size_t n, uint64_t h)
{
	uint64_t w;
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
		h ^= h >> 31;
	}
	for (; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ULL;
	return h ^ (h >> 32);
}

#endif
