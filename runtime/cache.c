/* SPDX-License-Identifier: MIT */
#include "runtime/cache.h"

#include <errno.h>
#include <stdlib.h>

#include "common/hash.h"
#include "common/log.h"
#include "runtime/engine.h"
#include "runtime/rt.h"

#define TRIM_MAX 256 /* evictions a turn */

/* ---- the index: line -> its slot in v (linear probing, backward-shift deletion) ------ */

static size_t idx_home(const struct dsm_rt_cache *c, uint64_t line)
{
	return dsm_hash64(line) & c->idx_mask;
}

/* The index slot holding @line, or the free slot where it would go. */
static size_t idx_find(const struct dsm_rt_cache *c, uint64_t line)
{
	size_t i;

	for (i = idx_home(c, line); c->idx[i]; i = (i + 1) & c->idx_mask)
		if (c->v[c->idx[i] - 1].line == line)
			return i;
	return i;
}

static bool idx_grow(struct dsm_rt_cache *c)
{
	size_t cap = c->idx_mask ? (c->idx_mask + 1) * 2 : 1024;
	uint32_t *idx = calloc(cap, sizeof(*idx));

	if (idx == NULL)
		return false;
	free(c->idx);
	c->idx = idx;
	c->idx_mask = cap - 1;
	for (size_t k = 0; k < c->n; k++)
		c->idx[idx_find(c, c->v[k].line)] = (uint32_t)(k + 1);
	return true;
}

static void idx_del(struct dsm_rt_cache *c, size_t i)
{
	size_t j = i;

	c->idx[i] = 0;
	for (;;) {
		size_t h;

		j = (j + 1) & c->idx_mask;
		if (c->idx[j] == 0)
			return;
		/* An entry may move back into the hole if its home is not in (i, j]. */
		h = idx_home(c, c->v[c->idx[j] - 1].line);
		if (i <= j ? (i < h && h <= j) : (i < h || h <= j))
			continue;
		c->idx[i] = c->idx[j];
		c->idx[j] = 0;
		i = j;
	}
}

/* ---- the copies ------------------------------------------------------------------------ */

static void publish(struct dsm_rt_cache *c)
{
	atomic_store_explicit(&c->lines, c->n, memory_order_relaxed);
	if (c->n > atomic_load_explicit(&c->hwm, memory_order_relaxed))
		atomic_store_explicit(&c->hwm, c->n, memory_order_relaxed);
}

void dsm_rt_cache_add(struct dsm_rt *rt, uint64_t line)
{
	struct dsm_rt_cache *c = &rt->cache;
	size_t i;

	if (c->n + 1 > c->idx_mask / 2 && !idx_grow(c))
		goto nomem;
	i = idx_find(c, line);
	if (c->idx[i]) { /* installed again while counted: an upgrade's data */
		c->v[c->idx[i] - 1].ref = 1;
		return;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 1024;
		struct dsm_rt_cache_slot *v = realloc(c->v, cap * sizeof(*v));

		if (v == NULL)
			goto nomem;
		c->v = v;
		c->cap = cap;
	}
	/* A new copy has its first chance: the hand clears it on its first pass. */
	c->v[c->n] = (struct dsm_rt_cache_slot){.line = line, .ref = 1};
	c->idx[i] = (uint32_t)++c->n;
	publish(c);
	return;
nomem:
	/* Not counted: the line is still correct, only the budget misses it. */
	if (!c->warned)
		DSM_LOG(DSM_LOG_WARN, "the cache's index is out of memory: copies go uncounted");
	c->warned = true;
}

void dsm_rt_cache_del(struct dsm_rt *rt, uint64_t line)
{
	struct dsm_rt_cache *c = &rt->cache;
	size_t i, k;

	if (c->n == 0)
		return;
	i = idx_find(c, line);
	if (c->idx[i] == 0)
		return;
	k = c->idx[i] - 1;
	if (c->v[k].evicting)
		c->evicting--;
	idx_del(c, i);
	/* The last slot fills the hole (the hand sees it a little early or late: CLOCK is an
	 * approximation anyway). */
	if (k != --c->n) {
		c->v[k] = c->v[c->n];
		c->idx[idx_find(c, c->v[k].line)] = (uint32_t)(k + 1);
	}
	publish(c);
}

void dsm_rt_cache_touch(struct dsm_rt *rt, uint64_t line)
{
	struct dsm_rt_cache *c = &rt->cache;
	size_t i;

	if (c->limit == 0 || c->n == 0)
		return;
	i = idx_find(c, line);
	if (c->idx[i])
		c->v[c->idx[i] - 1].ref = 1;
}

bool dsm_rt_cache_tight(struct dsm_rt *rt, uint64_t n)
{
	const struct dsm_rt_cache *c = &rt->cache;

	return c->limit && c->n - c->evicting + n > c->limit;
}

int dsm_rt_cache_trim(struct dsm_rt *rt)
{
	struct dsm_rt_cache *c = &rt->cache;
	size_t steps;
	int done = 0;

	if (c->limit == 0 || c->n - c->evicting <= c->high)
		return 0;
	/* Two sweeps at most (the first clears the second chances it passes), and at most
	 * TRIM_MAX evictions and 16 x TRIM_MAX slots a turn: a fault behind this turn waits
	 * for no more; the turn's work brings the loop back for the rest, and the hand goes on
	 * from where it stopped. */
	steps = 2 * c->n < 16 * TRIM_MAX ? 2 * c->n : 16 * TRIM_MAX;
	for (; steps && done < TRIM_MAX && c->n - c->evicting > c->low; steps--) {
		struct dsm_rt_cache_slot *s;
		dsm_coh_event_t ev = {.type = DSM_COH_EV_EVICT};

		if (c->hand >= c->n)
			c->hand = 0;
		s = &c->v[c->hand++];
		if (s->evicting)
			continue;
		if (s->ref) {
			s->ref = 0;
			continue;
		}
		/* The engine refuses, changing nothing, a copy that is not stable: asked for,
		 * held for woken threads, waiting for data or a write-back, deferred. */
		ev.line = s->line;
		if (dsm_rt_engine(rt, &ev, NULL) < 0)
			continue;
		s->evicting = 1;
		c->evicting++;
		done++;
	}
	return done;
}

/* ---- setup --------------------------------------------------------------------------- */

int dsm_rt_cache_init(struct dsm_rt *rt)
{
	struct dsm_rt_cache *c = &rt->cache;
	size_t ls = rt->cfg.line_size;
	uint64_t lines;

	c->limit = 0;
	if (rt->cfg.cache_bytes == 0)
		return 0; /* unlimited */
	/* auto on a crowded node with large lines: no less than 64 lines. */
	if (rt->cfg.cache_auto && rt->cfg.cache_bytes && rt->cfg.cache_bytes < 64 * ls)
		rt->cfg.cache_bytes = 64 * ls;
	if (rt->cfg.cache_bytes < ls) {
		DSM_LOG(DSM_LOG_ERROR,
		        "the cache (DSM_CACHE_SIZE or dsm_config_t.cache_size: %zu bytes) is "
		        "smaller than one line (%zu bytes): a miss could not be installed; give it "
		        "at least a line, or unlimited",
		        rt->cfg.cache_bytes, ls);
		return -EINVAL;
	}
	lines = rt->cfg.cache_bytes / ls;
	c->limit = lines;
	/* Evictions start 1/16 below the budget and go on to 1/8 below it, so that a miss
	 * seldom finds the cache full and waits for a write-back. */
	c->high = lines - (lines / 16 ? lines / 16 : 1);
	c->low = lines - (lines / 8 ? lines / 8 : 1);
	DSM_LOG(DSM_LOG_INFO, "cache: %llu lines (%zu bytes) of lines homed elsewhere",
	        (unsigned long long)lines, rt->cfg.cache_bytes);
	return 0;
}

void dsm_rt_cache_fini(struct dsm_rt *rt)
{
	struct dsm_rt_cache *c = &rt->cache;

	free(c->v);
	free(c->idx);
	c->v = NULL;
	c->idx = NULL;
	c->n = c->cap = 0;
	c->idx_mask = 0;
}
