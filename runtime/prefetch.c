/* SPDX-License-Identifier: MIT */
#include "runtime/prefetch.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "common/log.h"
#include "common/time.h"
#include "runtime/cache.h"
#include "runtime/death.h"
#include "runtime/engine.h"
#include "runtime/fatal.h"
#include "runtime/heap.h"
#include "runtime/msg.h"
#include "runtime/mw.h"
#include "runtime/rt.h"
#include "runtime/stats.h"

/* In the set: requested and not installed yet; a read-ahead line not judged yet. */
#define PF_FLY       0x1
#define PF_MARK      0x2

#define NEAR_LINES   16 /* a miss this close to a stream's latest may continue it */
#define FIRST_WINDOW 4  /* lines a stream asks for when it starts */
#define DRAIN_BUDGET 64 /* hint lines looked at per turn: the loop has other work */

/* ---- the set of lines prefetched: open addressing, linear probing ---------------------- */

static size_t slot_of(const struct dsm_rt_prefetch *pf, uint64_t line)
{
	return (size_t)((line * 0x9e3779b97f4a7c15ull) >> 17) & pf->set_mask;
}

static struct dsm_rt_pf_slot *set_find(struct dsm_rt_prefetch *pf, uint64_t line)
{
	for (size_t i = slot_of(pf, line);; i = (i + 1) & pf->set_mask) {
		struct dsm_rt_pf_slot *s = &pf->set[i];

		if (s->key == 0)
			return NULL;
		if (s->key == line + 1)
			return s;
	}
}

/* Adds @line with @flags; false when the set is half full (the line is then not asked for). */
static bool set_add(struct dsm_rt_prefetch *pf, uint64_t line, uint8_t flags)
{
	size_t i = slot_of(pf, line);

	if (pf->set_n >= (pf->set_mask + 1) / 2)
		return false;
	while (pf->set[i].key != 0)
		i = (i + 1) & pf->set_mask;
	pf->set[i] = (struct dsm_rt_pf_slot){.key = line + 1, .flags = flags};
	pf->set_n++;
	return true;
}

/* Clears @flags of @s, and removes it once it has none (backward shift: no tombstones). */
static void set_clear(struct dsm_rt_prefetch *pf, struct dsm_rt_pf_slot *s, uint8_t flags)
{
	size_t i = (size_t)(s - pf->set), j = i;

	s->flags &= (uint8_t)~flags;
	if (s->flags)
		return;
	pf->set_n--;
	for (;;) {
		size_t home;

		pf->set[i].key = 0;
		do {
			j = (j + 1) & pf->set_mask;
			if (pf->set[j].key == 0)
				return;
			home = slot_of(pf, pf->set[j].key - 1);
			/* j's entry stays if its home lies cyclically in (i, j]. */
		} while (i <= j ? (i < home && home <= j) : (i < home || home <= j));
		pf->set[i] = pf->set[j];
		i = j;
	}
}

/* ---- requests -------------------------------------------------------------------------- */

/*
 * The lines read ahead in vain: a direct-mapped table of (line + 1) << 2 | strikes. A line
 * invalidated before its stream reached it takes a strike, one the stream reached loses
 * one, and at two strikes read-ahead leaves it alone: some other rank keeps writing it
 * (the rows next to a neighbour's edge rows in a stencil), and taking it from that rank
 * would only make it fault again. A miss of this rank's own on the line clears it.
 */
#define SHUN_STRIKES 2

static uint64_t *shun_entry(struct dsm_rt_prefetch *pf, uint64_t line)
{
	return &pf->shunned[(size_t)((line * 0x9e3779b97f4a7c15ull) >> 52) &
	                    (DSM_RT_PF_SHUNNED - 1)];
}

static unsigned strikes(struct dsm_rt_prefetch *pf, uint64_t line)
{
	uint64_t e = *shun_entry(pf, line);

	return e >> 2 == line + 1 ? (unsigned)(e & 3) : 0;
}

/* Adds @d strikes to @line (a negative @d takes them away), within 0..3. */
static void strike(struct dsm_rt_prefetch *pf, uint64_t line, int d)
{
	uint64_t *e = shun_entry(pf, line);
	int n = (int)strikes(pf, line) + d;

	if (n <= 0)
		*e = *e >> 2 == line + 1 ? 0 : *e;
	else
		*e = (line + 1) << 2 | (uint64_t)(n > 3 ? 3 : n);
}

enum req_result { REQ_SENT, REQ_SKIPPED, REQ_FULL };

/* Asks for @line (home @home) as a read fault would, if this rank has no copy and none is
 * on its way. */
static enum req_result request(struct dsm_rt *rt, uint64_t line, unsigned home, uint8_t flags)
{
	struct dsm_rt_prefetch *pf = &rt->pf;
	dsm_coh_event_t ev = {.type = DSM_COH_EV_READ_FAULT, .home = home, .line = line};
	dsm_coh_line_info_t info;

	if (atomic_load_explicit(&pf->inflight, memory_order_relaxed) >= DSM_RT_PF_INFLIGHT)
		return REQ_FULL;
	/* The lines of a dead rank are fetched at their faults only (death.c holds them back
	 * while they find their new home). */
	if (dsm_rt_death_of_line(rt, line) >= 0)
		return REQ_SKIPPED;
	/* Read-ahead takes no room that evictions would have to make. */
	if (dsm_rt_cache_tight(rt, atomic_load_explicit(&pf->inflight, memory_order_relaxed) + 1))
		return REQ_FULL;
	dsm_coh_line_info(rt->node, line, &info);
	if (info.state != DSM_COH_I || set_find(pf, line) != NULL)
		return REQ_SKIPPED;
	/* Taking a line that another rank writes would only slow that rank down. */
	if ((flags & PF_MARK) && strikes(pf, line) >= SHUN_STRIKES)
		return REQ_SKIPPED;
	if (!set_add(pf, line, PF_FLY | flags))
		return REQ_FULL;
	atomic_fetch_add_explicit(&pf->inflight, 1, memory_order_relaxed);
	DSM_RT_COUNT(rt, prefetched, 1);
	/* Before the engine: at the home the line may be installed within the call. */
	pf->issuing = true;
	if (dsm_rt_engine(rt, &ev, NULL) < 0)
		dsm_rt_fatal(rt, "the engine refused a prefetch of line %llu",
		             (unsigned long long)line);
	pf->issuing = false;
	return REQ_SENT;
}

/* ---- read-ahead streams ---------------------------------------------------------------- */

static bool ahead_of(const struct dsm_rt_stream *s, uint64_t a, uint64_t b)
{
	return s->stride > 0 ? a > b : a < b;
}

/* Lines from the stream's latest miss up to @to (exclusive) that are still marked: counted
 * as @used (the stream passed them) or wasted, and unmarked. */
static void judge(struct dsm_rt *rt, struct dsm_rt_stream *s, uint64_t to, bool used)
{
	for (uint64_t l = s->last + (uint64_t)s->stride; ahead_of(s, to, l);
	     l += (uint64_t)s->stride) {
		struct dsm_rt_pf_slot *e = set_find(&rt->pf, l);

		if (e == NULL || !(e->flags & PF_MARK))
			continue;
		if (used) {
			DSM_RT_COUNT(rt, prefetch_used, 1);
			strike(&rt->pf, l, -1);
		} else {
			DSM_RT_COUNT(rt, prefetch_wasted, 1);
		}
		set_clear(&rt->pf, e, PF_MARK);
	}
}

static bool in_bounds(const struct dsm_rt_stream *s, uint64_t line)
{
	return line >= s->lo && line < s->hi;
}

static unsigned home_of(const struct dsm_rt *rt, const struct dsm_rt_stream *s, uint64_t line)
{
	return (unsigned)dsm_coh_home_of(&s->span, (unsigned)rt->nranks, line);
}

/* Keeps the stream's window requested ahead of its latest miss, inside its bounds. */
static void extend(struct dsm_rt *rt, struct dsm_rt_stream *s)
{
	uint64_t step = (uint64_t)(s->stride > 0 ? s->stride : -s->stride);
	uint64_t reach = step * s->window;
	uint64_t target = s->stride > 0 ? s->last + reach : s->last > reach ? s->last - reach : 0;
	uint64_t low;

	if (s->stride > 0) {
		/* Up to target inclusive. */
		while (s->ahead <= target && in_bounds(s, s->ahead)) {
			if (request(rt, s->ahead, home_of(rt, s, s->ahead), PF_MARK) == REQ_FULL)
				return; /* taken up again at its next miss */
			s->ahead += step;
		}
		return;
	}
	/*
	 * Backward: the same lines, asked for in address order, so that their grants come
	 * back in the order the heap has them and go in by runs (engine.c). A line below 0
	 * wraps and fails the bounds.
	 */
	if (!in_bounds(s, s->ahead) || s->ahead < target)
		return;
	low = s->ahead - (s->ahead - (target > s->lo ? target : s->lo)) / step * step;
	for (uint64_t l = low; l <= s->ahead; l += step)
		if (request(rt, l, home_of(rt, s, l), PF_MARK) == REQ_FULL) {
			/* Lines from l up are not asked for: the stream goes on from there (what
			 * lies below is asked for already, and is skipped then). */
			s->ahead = l;
			return;
		}
	s->ahead = low >= step ? low - step : UINT64_MAX;
}

static void stream_drop(struct dsm_rt *rt, struct dsm_rt_stream *s)
{
	if (s->window)
		judge(rt, s, s->ahead, false);
	*s = (struct dsm_rt_stream){0};
}

/* A miss at @line that continues active stream @s. */
static void stream_hit(struct dsm_rt *rt, struct dsm_rt_stream *s, uint64_t line)
{
	struct dsm_rt_prefetch *pf = &rt->pf;

	judge(rt, s, line, true);
	if (s->wasted)
		s->window = s->window > 1 ? s->window / 2 : 1;
	else
		s->window = s->window * 2 < pf->max ? s->window * 2 : pf->max;
	s->wasted = 0;
	s->last = line;
	if (!ahead_of(s, s->ahead, line))
		s->ahead = line + (uint64_t)s->stride;
	extend(rt, s);
}

/* A fresh stream at @line, bounded by its allocation (and in a dsm_alloc slice by the heap
 * chunk of the miss: the home may have opened no more than that under strict overcommit). */
static void stream_start(struct dsm_rt *rt, struct dsm_rt_stream *s, uint64_t line,
                         const dsm_coh_span_t *span)
{
	*s = (struct dsm_rt_stream){.last = line,
	                            .span = *span,
	                            .lo = span->first_line,
	                            .hi = span->first_line + span->nlines};
	if (span->dist == DSM_COH_DIST_RANK) {
		uint64_t per = DSM_RT_HEAP_CHUNK >> rt->layout.line_shift;
		uint64_t c0 = per ? line / per * per : line;

		if (per == 0)
			per = 1;
		if (s->lo < c0)
			s->lo = c0;
		if (s->hi > c0 + per)
			s->hi = c0 + per;
	}
}

void dsm_rt_prefetch_fault(struct dsm_rt *rt, uint64_t line, const dsm_coh_span_t *span, bool write)
{
	struct dsm_rt_prefetch *pf = &rt->pf;
	struct dsm_rt_pf_slot *e = pf->set_n ? set_find(pf, line) : NULL;
	struct dsm_rt_stream *s, *victim = NULL;

	/* A thread came to a line read ahead that has not arrived yet, or wants to write it. */
	if (e && (e->flags & PF_MARK)) {
		DSM_RT_COUNT(rt, prefetch_used, 1);
		strike(pf, line, -1);
		set_clear(pf, e, PF_MARK);
	}
	/* This rank wants the line after all: it may be read ahead again. */
	strike(pf, line, -SHUN_STRIKES);
	if (pf->max == 0 || write || atomic_load_explicit(&pf->stop, memory_order_relaxed))
		return;
	pf->clock++;
	for (unsigned i = 0; i < DSM_RT_PF_STREAMS; i++) {
		s = &pf->s[i];
		if (s->window == 0 || !in_bounds(s, line))
			continue;
		int64_t d = (int64_t)(line - s->last);
		int64_t steps = d / s->stride;

		if (d % s->stride == 0 && steps >= 1 &&
		    !ahead_of(s, line, s->ahead)) { /* at most the first line not asked for */
			s->lru = pf->clock;
			stream_hit(rt, s, line);
			return;
		}
	}
	/* A miss close to one that started a stream: its stride. */
	for (unsigned i = 0; i < DSM_RT_PF_STREAMS; i++) {
		s = &pf->s[i];
		if (s->lru == 0 || s->window != 0 || !in_bounds(s, line))
			continue;
		int64_t d = (int64_t)(line - s->last);

		if (d == 0 || d > NEAR_LINES || d < -NEAR_LINES)
			continue;
		s->seen = d == s->stride ? s->seen + 1 : 1;
		s->stride = d;
		s->last = line;
		s->lru = pf->clock;
		/* One line apart: a scan, at once. Wider: once the stride repeats. */
		if (d == 1 || d == -1 || s->seen >= 2) {
			s->window = FIRST_WINDOW < pf->max ? FIRST_WINDOW : pf->max;
			s->ahead = line + (uint64_t)d;
			extend(rt, s);
		}
		return;
	}
	/* A new candidate: in a free slot, else the oldest that never started, else the oldest. */
	for (unsigned i = 0; i < DSM_RT_PF_STREAMS; i++) {
		s = &pf->s[i];
		if (victim == NULL || (s->window == 0 && victim->window != 0) ||
		    ((s->window == 0) == (victim->window == 0) && s->lru < victim->lru))
			victim = s;
	}
	stream_drop(rt, victim);
	stream_start(rt, victim, line, span);
	victim->lru = pf->clock;
}

/* A rank died: read-ahead requests the engine forgot (their home was that rank) are not in
 * flight any more. */
void dsm_rt_prefetch_peer_dead(struct dsm_rt *rt)
{
	struct dsm_rt_prefetch *pf = &rt->pf;
	bool again = true;

	/* A removal shifts entries back: start over after each (the set is small). */
	while (again && pf->set && pf->set_n) {
		again = false;
		for (size_t i = 0; i <= pf->set_mask && !again; i++) {
			struct dsm_rt_pf_slot *e = &pf->set[i];
			dsm_coh_line_info_t info;

			if (e->key == 0 || !(e->flags & PF_FLY))
				continue;
			dsm_coh_line_info(rt->node, e->key - 1, &info);
			if (info.state == DSM_COH_I) {
				set_clear(pf, e, PF_FLY);
				atomic_fetch_sub_explicit(&pf->inflight, 1, memory_order_release);
				again = true;
			}
		}
	}
}

bool dsm_rt_prefetch_arrived(struct dsm_rt *rt, uint64_t line)
{
	struct dsm_rt_prefetch *pf = &rt->pf;
	struct dsm_rt_pf_slot *e = pf->set_n ? set_find(pf, line) : NULL;

	if (e == NULL || !(e->flags & PF_FLY))
		return false;
	set_clear(pf, e, PF_FLY);
	atomic_fetch_sub_explicit(&pf->inflight, 1, memory_order_release);
	return true;
}

bool dsm_rt_prefetch_in_flight(struct dsm_rt *rt, uint64_t line)
{
	struct dsm_rt_pf_slot *e = rt->pf.set_n ? set_find(&rt->pf, line) : NULL;

	return e != NULL && (e->flags & PF_FLY);
}

void dsm_rt_prefetch_zapped(struct dsm_rt *rt, uint64_t line)
{
	struct dsm_rt_prefetch *pf = &rt->pf;
	struct dsm_rt_pf_slot *e = pf->set_n ? set_find(pf, line) : NULL;

	if (e == NULL || !(e->flags & PF_MARK))
		return;
	DSM_RT_COUNT(rt, prefetch_wasted, 1);
	set_clear(pf, e, PF_MARK);
	strike(pf, line, +1);
	/* The stream that asked for it reads ahead too far for this data: it shrinks. */
	for (unsigned i = 0; i < DSM_RT_PF_STREAMS; i++) {
		struct dsm_rt_stream *s = &pf->s[i];

		if (s->window && ahead_of(s, line, s->last) && ahead_of(s, s->ahead, line))
			s->wasted++;
	}
}

/* ---- hints ----------------------------------------------------------------------------- */

int dsm_rt_prefetch_drain(struct dsm_rt *rt)
{
	struct dsm_rt_prefetch *pf = &rt->pf;
	int done = 0;

	if (!atomic_load_explicit(&pf->hinted, memory_order_acquire))
		return 0;
	pthread_mutex_lock(&pf->lock);
	while (pf->hint_n && done < DRAIN_BUDGET && !atomic_load(&pf->stop)) {
		struct dsm_rt_hint *h = &pf->hint[pf->hint_head];
		int home = dsm_rt_alloc_home(&rt->alloc, h->line, NULL);

		/* Multiple-writer memory is not the engine's: it is fetched at its faults. */
		if (home >= 0 && !dsm_rt_mw_owns(rt, h->line) &&
		    request(rt, h->line, (unsigned)home, 0) == REQ_FULL)
			break; /* the grants in flight wake the loop: on from here then */
		h->line++;
		done++;
		if (--h->n == 0) {
			pf->hint_head = (pf->hint_head + 1) % DSM_RT_PF_HINTS;
			pf->hint_n--;
		}
	}
	if (atomic_load(&pf->stop))
		pf->hint_n = 0;
	if (pf->hint_n == 0)
		atomic_store_explicit(&pf->hinted, false, memory_order_relaxed);
	pthread_mutex_unlock(&pf->lock);
	return done;
}

bool dsm_rt_prefetch_pending(struct dsm_rt *rt)
{
	struct dsm_rt_prefetch *pf = &rt->pf;

	return atomic_load_explicit(&pf->hinted, memory_order_seq_cst) &&
	       atomic_load_explicit(&pf->inflight, memory_order_relaxed) < DSM_RT_PF_INFLIGHT;
}

int dsm_rt_prefetch_hint(struct dsm_rt *rt, uint64_t first, uint64_t n)
{
	struct dsm_rt_prefetch *pf = &rt->pf;
	struct dsm_rt_hint *tail;

	pthread_mutex_lock(&pf->lock);
	if (atomic_load(&pf->stop)) {
		pthread_mutex_unlock(&pf->lock);
		return 0;
	}
	tail = pf->hint_n ? &pf->hint[(pf->hint_head + pf->hint_n - 1) % DSM_RT_PF_HINTS] : NULL;
	if (tail && tail->line + tail->n == first) {
		tail->n += n;
	} else if (pf->hint_n == DSM_RT_PF_HINTS) {
		pthread_mutex_unlock(&pf->lock);
		return -EAGAIN;
	} else {
		pf->hint[(pf->hint_head + pf->hint_n++) % DSM_RT_PF_HINTS] =
		        (struct dsm_rt_hint){.line = first, .n = n};
	}
	pthread_mutex_unlock(&pf->lock);
	/* A Dekker pair with the loop's sleep announcement (loop.c, idle), as a request's. */
	atomic_store_explicit(&pf->hinted, true, memory_order_seq_cst);
	if (atomic_load_explicit(&rt->loop.asleep, memory_order_seq_cst))
		dsm_rt_msg_wake(rt);
	return 0;
}

#define QUIESCE_LIMIT_NS (10 * 1000000000ull)

void dsm_rt_prefetch_quiesce(struct dsm_rt *rt)
{
	struct dsm_rt_prefetch *pf = &rt->pf;
	uint64_t t0 = dsm_now_ns();
	struct timespec nap = {0, 100000};

	atomic_store(&pf->stop, true);
	while (atomic_load_explicit(&pf->inflight, memory_order_acquire) != 0) {
		if (dsm_now_ns() - t0 > QUIESCE_LIMIT_NS) {
			DSM_LOG(DSM_LOG_WARN, "%u prefetched lines still on their way after 10 s",
			        atomic_load(&pf->inflight));
			return;
		}
		nanosleep(&nap, NULL);
	}
}

/* ---- set-up ---------------------------------------------------------------------------- */

int dsm_rt_prefetch_init(struct dsm_rt *rt, unsigned max_lines)
{
	struct dsm_rt_prefetch *pf = &rt->pf;
	/* Room for every stream's window and every line in flight, at most half full. */
	size_t need = 2 * ((size_t)DSM_RT_PF_STREAMS * max_lines + DSM_RT_PF_INFLIGHT), cap = 64;

	while (cap < need)
		cap *= 2;
	pf->set = calloc(cap, sizeof(*pf->set));
	pf->shunned = calloc(DSM_RT_PF_SHUNNED, sizeof(*pf->shunned));
	if (pf->set == NULL || pf->shunned == NULL)
		return -ENOMEM;
	pf->set_mask = cap - 1;
	pf->max = max_lines;
	pthread_mutex_init(&pf->lock, NULL);
	return 0;
}

void dsm_rt_prefetch_fini(struct dsm_rt *rt)
{
	free(rt->pf.set);
	free(rt->pf.shunned);
	rt->pf.set = NULL;
	rt->pf.shunned = NULL;
	pthread_mutex_destroy(&rt->pf.lock);
}
