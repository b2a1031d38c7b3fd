/* SPDX-License-Identifier: MIT */
#include "runtime/alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <dsm.h>

#include "common/log.h"
#include "common/vec.h"

#define MIN_OBJ_SHIFT 4     /* the smallest object: 16 bytes */
#define MAX_SLAB_OBJS 4096u /* a slab of a huge line uses only its first 4096 objects */

enum ext_kind { EXT_COLL = 1, EXT_LOCAL, EXT_SLAB };

struct dsm_rt_slab {
	uint64_t line;
	unsigned cls;
	unsigned nobj, nfree;
	struct dsm_rt_slab *next, *prev; /* in a->partial[cls] while nfree > 0 */
	/* One bit per object: used[0..words) handed out; with quarantine, then
	 * used[words..2 words) freed (never handed out again). */
	uint64_t used[];
};

static unsigned slab_words(const struct dsm_rt_slab *s)
{
	return (s->nobj + 63) / 64;
}

struct dsm_rt_extent {
	uint64_t first, nlines;
	uint8_t kind;
	uint8_t dist;
	bool mw; /* collective, multiple-writer memory (dsm_all_alloc_mw) */
	struct dsm_rt_slab *slab;
};

/* ---- free extents --------------------------------------------------------------------------- */

static int fl_insert_at(struct dsm_rt_freelist *fl, size_t i, uint64_t start, uint64_t len)
{
	if (DSM_VEC_RESERVE(fl->v, fl->cap, fl->n + 1) < 0)
		return -ENOMEM;
	memmove(&fl->v[i + 1], &fl->v[i], (fl->n - i) * sizeof(*fl->v));
	fl->v[i].start = start;
	fl->v[i].len = len;
	fl->n++;
	return 0;
}

static void fl_remove_at(struct dsm_rt_freelist *fl, size_t i)
{
	memmove(&fl->v[i], &fl->v[i + 1], (fl->n - i - 1) * sizeof(*fl->v));
	fl->n--;
}

/* First fit: the lowest free run of @n lines. Deterministic, which the collective region needs. */
static int fl_take(struct dsm_rt_freelist *fl, uint64_t n, uint64_t *start_p)
{
	for (size_t i = 0; i < fl->n; i++) {
		if (fl->v[i].len < n)
			continue;
		*start_p = fl->v[i].start;
		fl->v[i].start += n;
		fl->v[i].len -= n;
		if (fl->v[i].len == 0)
			fl_remove_at(fl, i);
		return 0;
	}
	return -ENOMEM;
}

/* Gives [start, start+n) back, merging it with its neighbours. */
static int fl_put(struct dsm_rt_freelist *fl, uint64_t start, uint64_t n)
{
	size_t i = 0;

	while (i < fl->n && fl->v[i].start < start)
		i++;
	bool merge_prev = i > 0 && fl->v[i - 1].start + fl->v[i - 1].len == start;
	bool merge_next = i < fl->n && start + n == fl->v[i].start;

	if (merge_prev && merge_next) {
		fl->v[i - 1].len += n + fl->v[i].len;
		fl_remove_at(fl, i);
	} else if (merge_prev) {
		fl->v[i - 1].len += n;
	} else if (merge_next) {
		fl->v[i].start = start;
		fl->v[i].len += n;
	} else {
		return fl_insert_at(fl, i, start, n);
	}
	return 0;
}

/* ---- live allocations ----------------------------------------------------------------------- */

/* Index of the extent that covers @line, or -1. */
static ssize_t ext_find(const struct dsm_rt_alloc *a, uint64_t line)
{
	size_t lo = 0, hi = a->next;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (a->ext[mid].first <= line)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return -1;
	lo--;
	return line < a->ext[lo].first + a->ext[lo].nlines ? (ssize_t)lo : -1;
}

static int ext_add(struct dsm_rt_alloc *a, const struct dsm_rt_extent *e)
{
	size_t i = 0, lo = 0, hi = a->next;

	if (DSM_VEC_RESERVE(a->ext, a->next_cap, a->next + 1) < 0)
		return -ENOMEM;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (a->ext[mid].first < e->first)
			lo = mid + 1;
		else
			hi = mid;
	}
	i = lo;
	memmove(&a->ext[i + 1], &a->ext[i], (a->next - i) * sizeof(*a->ext));
	a->ext[i] = *e;
	a->next++;
	return 0;
}

static void ext_remove(struct dsm_rt_alloc *a, size_t i)
{
	memmove(&a->ext[i], &a->ext[i + 1], (a->next - i - 1) * sizeof(*a->ext));
	a->next--;
}

/* ---- init ----------------------------------------------------------------------------------- */

int dsm_rt_alloc_init(struct dsm_rt_alloc *a, const dsm_coh_layout_t *layout, unsigned rank)
{
	uint64_t lines = layout->size >> layout->line_shift;
	int ret;

	memset(a, 0, sizeof(*a));
	a->layout = *layout;
	a->rank = rank;
	a->nranks = layout->nranks;
	a->line_size = (size_t)1 << layout->line_shift;
	a->coll_lines = lines / 2;
	a->slice_lines = (lines - a->coll_lines) / a->nranks;
	if (rank >= a->nranks || a->coll_lines == 0 || a->slice_lines == 0) {
		DSM_LOG(DSM_LOG_ERROR,
		        "a heap of %llu lines is too small for %u ranks (each needs a slice for "
		        "dsm_alloc)",
		        (unsigned long long)lines, a->nranks);
		return -EINVAL;
	}
	ret = pthread_mutex_init(&a->lock, NULL);
	if (ret)
		return -ret;
	if (fl_put(&a->coll_free, 0, a->coll_lines) < 0 ||
	    fl_put(&a->local_free, a->coll_lines + rank * a->slice_lines, a->slice_lines) < 0) {
		dsm_rt_alloc_fini(a);
		return -ENOMEM;
	}
	return 0;
}

void dsm_rt_alloc_fini(struct dsm_rt_alloc *a)
{
	for (size_t i = 0; i < a->next; i++)
		free(a->ext[i].slab);
	free(a->ext);
	free(a->coll_free.v);
	free(a->local_free.v);
	pthread_mutex_destroy(&a->lock);
	memset(a, 0, sizeof(*a));
}

static void *line_ptr(const struct dsm_rt_alloc *a, uint64_t line)
{
	return (void *)dsm_coh_line_addr(&a->layout, line);
}

static uint64_t lines_for(const struct dsm_rt_alloc *a, size_t size)
{
	return (size + a->line_size - 1) >> a->layout.line_shift;
}

/* ---- collective ----------------------------------------------------------------------------- */

/* The engine's distribution for the public one, or -EINVAL. */
static int coh_dist(dsm_dist_t dist)
{
	switch (dist) {
	case DSM_DIST_BLOCK:
		return DSM_COH_DIST_BLOCK;
	case DSM_DIST_CYCLIC:
		return DSM_COH_DIST_CYCLIC;
	case DSM_DIST_LOCAL:
		return DSM_COH_DIST_ZERO;
	default:
		return -EINVAL;
	}
}

int dsm_rt_alloc_collective(struct dsm_rt_alloc *a, size_t size, dsm_dist_t dist, bool mw,
                            void **out_p)
{
	struct dsm_rt_extent e = {.kind = EXT_COLL, .mw = mw};
	int cd = coh_dist(dist), ret;

	if (size == 0 || cd < 0)
		return -EINVAL;
	e.dist = (uint8_t)cd;
	if (size > a->coll_lines * a->line_size)
		return -ENOMEM;
	e.nlines = lines_for(a, size);
	pthread_mutex_lock(&a->lock);
	ret = fl_take(&a->coll_free, e.nlines, &e.first);
	if (ret == 0) {
		ret = ext_add(a, &e);
		if (ret < 0)
			fl_put(&a->coll_free, e.first, e.nlines);
	}
	if (ret == 0)
		a->live_bytes += e.nlines * a->line_size;
	pthread_mutex_unlock(&a->lock);
	if (ret == 0)
		*out_p = line_ptr(a, e.first);
	return ret;
}

int dsm_rt_free_collective(struct dsm_rt_alloc *a, void *p)
{
	int64_t line = dsm_coh_line_of(&a->layout, (uintptr_t)p);
	ssize_t i;
	int ret = -EINVAL;

	if (line < 0)
		return DSM_ERR_FOREIGN;
	pthread_mutex_lock(&a->lock);
	i = ext_find(a, (uint64_t)line);
	if (i >= 0 && a->ext[i].kind == EXT_COLL && line_ptr(a, a->ext[i].first) == p) {
		ret = a->reuse_collective ? fl_put(&a->coll_free, a->ext[i].first, a->ext[i].nlines)
		                          : 0;
		a->live_bytes -= a->ext[i].nlines * a->line_size;
		ext_remove(a, (size_t)i);
	}
	pthread_mutex_unlock(&a->lock);
	return ret;
}

/* ---- local ---------------------------------------------------------------------------------- */

uint64_t dsm_rt_alloc_coll_mark(struct dsm_rt_alloc *a)
{
	uint64_t mark;

	pthread_mutex_lock(&a->lock);
	mark = a->coll_free.n ? a->coll_free.v[0].start : a->coll_lines;
	pthread_mutex_unlock(&a->lock);
	return mark;
}

static unsigned nclasses(const struct dsm_rt_alloc *a)
{
	unsigned n = 0;

	/* Objects up to a quarter line; smaller ones would waste most of a line each. */
	while (n < DSM_RT_NCLASSES && ((size_t)1 << (MIN_OBJ_SHIFT + n)) <= a->line_size / 4)
		n++;
	return n;
}

static unsigned class_of(size_t size)
{
	unsigned c = 0;

	while (((size_t)1 << (MIN_OBJ_SHIFT + c)) < size)
		c++;
	return c;
}

static void partial_push(struct dsm_rt_alloc *a, struct dsm_rt_slab *s)
{
	s->prev = NULL;
	s->next = a->partial[s->cls];
	if (s->next)
		s->next->prev = s;
	a->partial[s->cls] = s;
}

static void partial_unlink(struct dsm_rt_alloc *a, struct dsm_rt_slab *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		a->partial[s->cls] = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
}

static struct dsm_rt_slab *slab_new(struct dsm_rt_alloc *a, unsigned cls)
{
	size_t obj = (size_t)1 << (MIN_OBJ_SHIFT + cls);
	unsigned nobj = (unsigned)(a->line_size / obj);
	struct dsm_rt_slab *s;
	struct dsm_rt_extent e = {.nlines = 1, .kind = EXT_SLAB};

	if (nobj > MAX_SLAB_OBJS)
		nobj = MAX_SLAB_OBJS;
	s = calloc(1, sizeof(*s) + 2 * ((nobj + 63) / 64) * sizeof(uint64_t));
	if (s == NULL)
		return NULL;
	if (fl_take(&a->local_free, 1, &e.first) < 0) {
		free(s);
		return NULL;
	}
	s->line = e.first;
	s->cls = cls;
	s->nobj = s->nfree = nobj;
	e.slab = s;
	if (ext_add(a, &e) < 0) {
		fl_put(&a->local_free, e.first, 1);
		free(s);
		return NULL;
	}
	partial_push(a, s);
	return s;
}

/* The first object of @s never handed out (nor, with quarantine, freed), or -1. */
static int slab_room(const struct dsm_rt_slab *s)
{
	for (unsigned w = 0; w < slab_words(s); w++) {
		uint64_t taken = s->used[w] | s->used[slab_words(s) + w];
		unsigned idx;

		if (taken == ~0ull)
			continue;
		idx = w * 64 + (unsigned)__builtin_ctzll(~taken);
		return idx < s->nobj ? (int)idx : -1;
	}
	return -1;
}

static void *slab_alloc(struct dsm_rt_alloc *a, unsigned cls)
{
	struct dsm_rt_slab *s = a->partial[cls];
	size_t obj = (size_t)1 << (MIN_OBJ_SHIFT + cls);
	int idx;

	if (s == NULL && (s = slab_new(a, cls)) == NULL)
		return NULL;
	idx = slab_room(s);
	if (idx < 0)
		return NULL; /* unreachable: a partial slab has room */
	s->used[idx / 64] |= 1ull << (idx % 64);
	/* Full, or (quarantine) its free objects are freed ones, never handed out again. */
	if (--s->nfree == 0 || (a->quarantine && slab_room(s) < 0))
		partial_unlink(a, s);
	a->live_bytes += obj;
	return (char *)line_ptr(a, s->line) + (size_t)idx * obj;
}

int dsm_rt_alloc_local(struct dsm_rt_alloc *a, size_t size, void **out_p)
{
	struct dsm_rt_extent e = {.kind = EXT_LOCAL};
	void *p = NULL;
	int ret = 0;

	if (size == 0)
		return -EINVAL;
	if (size > a->slice_lines * a->line_size)
		return -ENOMEM;
	pthread_mutex_lock(&a->lock);
	if (size <= ((size_t)1 << (MIN_OBJ_SHIFT + nclasses(a) - 1)) && nclasses(a) > 0) {
		p = slab_alloc(a, class_of(size));
		ret = p ? 0 : -ENOMEM;
	} else {
		e.nlines = lines_for(a, size);
		ret = fl_take(&a->local_free, e.nlines, &e.first);
		if (ret == 0 && (ret = ext_add(a, &e)) < 0)
			fl_put(&a->local_free, e.first, e.nlines);
		if (ret == 0) {
			a->live_bytes += e.nlines * a->line_size;
			p = line_ptr(a, e.first);
		}
	}
	pthread_mutex_unlock(&a->lock);
	if (ret == 0)
		*out_p = p;
	return ret;
}

static int slab_free(struct dsm_rt_alloc *a, size_t i, uintptr_t p, uint64_t *first_p,
                     uint64_t *n_p)
{
	struct dsm_rt_slab *s = a->ext[i].slab;
	size_t obj = (size_t)1 << (MIN_OBJ_SHIFT + s->cls);
	uintptr_t off = p - (uintptr_t)line_ptr(a, s->line);
	size_t idx = off / obj;

	if (off % obj || idx >= s->nobj || !(s->used[idx / 64] & (1ull << (idx % 64))))
		return -EINVAL;
	s->used[idx / 64] &= ~(1ull << (idx % 64));
	a->live_bytes -= obj;
	if (a->quarantine) {
		/* Freed for good. The slab stays on the partial list only while it has objects
		 * never handed out; emptied, its line leaves the allocations for good. */
		s->used[slab_words(s) + idx / 64] |= 1ull << (idx % 64);
		if (++s->nfree == s->nobj) {
			if (s->prev || s->next || a->partial[s->cls] == s)
				partial_unlink(a, s);
			*first_p = s->line;
			*n_p = 1;
			ext_remove(a, i);
			free(s);
		}
		return 0;
	}
	if (s->nfree++ == 0)
		partial_push(a, s);
	if (s->nfree == s->nobj) {
		/* An empty slab gives its line back, so that memory follows what is live. */
		partial_unlink(a, s);
		*first_p = s->line;
		*n_p = 1;
		fl_put(&a->local_free, s->line, 1);
		ext_remove(a, i);
		free(s);
	}
	return 0;
}

int dsm_rt_free_local(struct dsm_rt_alloc *a, void *p, uint64_t *first_p, uint64_t *n_p)
{
	int64_t line = dsm_coh_line_of(&a->layout, (uintptr_t)p);
	uint64_t first = 0, n = 0;
	ssize_t i;
	int ret = -EINVAL;

	if (dsm_rt_alloc_owner(a, p) != (int)a->rank)
		return DSM_ERR_FOREIGN;
	pthread_mutex_lock(&a->lock);
	i = ext_find(a, (uint64_t)line);
	if (i >= 0 && a->ext[i].kind == EXT_SLAB) {
		ret = slab_free(a, (size_t)i, (uintptr_t)p, &first, &n);
	} else if (i >= 0 && a->ext[i].kind == EXT_LOCAL && line_ptr(a, a->ext[i].first) == p) {
		first = a->ext[i].first;
		n = a->ext[i].nlines;
		ret = a->quarantine ? 0 : fl_put(&a->local_free, first, n);
		a->live_bytes -= n * a->line_size;
		ext_remove(a, (size_t)i);
	}
	pthread_mutex_unlock(&a->lock);
	if (first_p)
		*first_p = first;
	if (n_p)
		*n_p = ret == 0 ? n : 0;
	return ret;
}

size_t dsm_rt_alloc_size(struct dsm_rt_alloc *a, const void *p)
{
	int64_t line = dsm_coh_line_of(&a->layout, (uintptr_t)p);
	size_t size = 0;
	ssize_t i;

	if (dsm_rt_alloc_owner(a, p) != (int)a->rank)
		return 0;
	pthread_mutex_lock(&a->lock);
	i = ext_find(a, (uint64_t)line);
	if (i >= 0 && a->ext[i].kind == EXT_SLAB) {
		struct dsm_rt_slab *s = a->ext[i].slab;
		size_t obj = (size_t)1 << (MIN_OBJ_SHIFT + s->cls);
		uintptr_t off = (uintptr_t)p - (uintptr_t)line_ptr(a, s->line);

		if (off % obj == 0 && off / obj < s->nobj &&
		    (s->used[off / obj / 64] & (1ull << (off / obj % 64))))
			size = obj;
	} else if (i >= 0 && a->ext[i].kind == EXT_LOCAL && line_ptr(a, a->ext[i].first) == p) {
		size = a->ext[i].nlines * a->line_size;
	}
	pthread_mutex_unlock(&a->lock);
	return size;
}

bool dsm_rt_alloc_live(struct dsm_rt_alloc *a, uint64_t line)
{
	ssize_t i;

	if (line < a->coll_lines || (line - a->coll_lines) / a->slice_lines != a->rank)
		return true;
	pthread_mutex_lock(&a->lock);
	i = ext_find(a, line);
	pthread_mutex_unlock(&a->lock);
	return i >= 0;
}

int dsm_rt_alloc_owner(const struct dsm_rt_alloc *a, const void *p)
{
	int64_t line = dsm_coh_line_of(&a->layout, (uintptr_t)p);
	uint64_t r;

	if (line < 0)
		return DSM_ERR_FOREIGN;
	if ((uint64_t)line < a->coll_lines)
		return -1;
	r = ((uint64_t)line - a->coll_lines) / a->slice_lines;
	return r < a->nranks ? (int)r : DSM_ERR_FOREIGN; /* the tail no slice covers */
}

int dsm_rt_alloc_home(struct dsm_rt_alloc *a, uint64_t line, dsm_coh_span_t *span_p)
{
	dsm_coh_span_t span;
	ssize_t i;

	if (line >= a->coll_lines) {
		uint64_t r = (line - a->coll_lines) / a->slice_lines;
		if (r >= a->nranks)
			return -EINVAL;
		span = (dsm_coh_span_t){.first_line = a->coll_lines + r * a->slice_lines,
		                        .nlines = a->slice_lines,
		                        .dist = DSM_COH_DIST_RANK,
		                        .rank = (unsigned)r};
	} else {
		pthread_mutex_lock(&a->lock);
		i = ext_find(a, line);
		if (i >= 0)
			span = (dsm_coh_span_t){.first_line = a->ext[i].first,
			                        .nlines = a->ext[i].nlines,
			                        .dist = (dsm_coh_dist_t)a->ext[i].dist};
		pthread_mutex_unlock(&a->lock);
		if (i < 0)
			return -EINVAL;
	}
	if (span_p)
		*span_p = span;
	return dsm_coh_home_of(&span, a->nranks, line);
}

int dsm_rt_alloc_home_of(struct dsm_rt_alloc *a, const void *addr)
{
	int64_t line = dsm_coh_line_of(&a->layout, (uintptr_t)addr);

	return line < 0 ? -EINVAL : dsm_rt_alloc_home(a, (uint64_t)line, NULL);
}

/* ---- snapshots (ckpt.c) --------------------------------------------------------------------- */

#define STATE_MAGIC    0x31434c41u /* "ALC1" */
#define STATE_MW_SHIFT 8           /* a collective allocation's word: dist | mw << 8 */

/* A growing array of words. */
struct words {
	uint64_t *v;
	size_t n, cap;
	bool failed;
};

static void put(struct words *w, uint64_t x)
{
	if (w->failed || DSM_VEC_RESERVE(w->v, w->cap, w->n + 1) < 0) {
		w->failed = true;
		return;
	}
	w->v[w->n++] = x;
}

int dsm_rt_alloc_export(struct dsm_rt_alloc *a, uint64_t **words_p, size_t *n_p)
{
	struct words w = {0};
	size_t ncoll = 0, nlocal = 0;

	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < a->next; i++)
		a->ext[i].kind == EXT_COLL ? ncoll++ : nlocal++;
	put(&w, STATE_MAGIC);
	put(&w, a->coll_free.n ? a->coll_free.v[0].start : a->coll_lines);
	put(&w, ncoll);
	for (size_t i = 0; i < a->next; i++) {
		if (a->ext[i].kind != EXT_COLL)
			continue;
		put(&w, a->ext[i].first);
		put(&w, a->ext[i].nlines);
		put(&w, a->ext[i].dist | (uint64_t)a->ext[i].mw << STATE_MW_SHIFT);
	}
	put(&w, a->coll_lines + a->rank * a->slice_lines);
	put(&w, a->slice_lines);
	put(&w, a->local_free.n);
	for (size_t i = 0; i < a->local_free.n; i++) {
		put(&w, a->local_free.v[i].start);
		put(&w, a->local_free.v[i].len);
	}
	put(&w, nlocal);
	for (size_t i = 0; i < a->next; i++) {
		const struct dsm_rt_extent *e = &a->ext[i];
		const struct dsm_rt_slab *s = e->slab;

		if (e->kind == EXT_COLL)
			continue;
		put(&w, e->first);
		put(&w, e->nlines);
		put(&w, e->kind | (s ? (uint64_t)s->cls << 8 | (uint64_t)s->nobj << 16 : 0));
		for (unsigned k = 0; s && k < (s->nobj + 63) / 64; k++)
			put(&w, s->used[k]);
	}
	pthread_mutex_unlock(&a->lock);
	if (w.failed) {
		free(w.v);
		return -ENOMEM;
	}
	*words_p = w.v;
	*n_p = w.n;
	return 0;
}

/* Reads words from a state, failing once past its end. */
struct reader {
	const uint64_t *v;
	size_t n, at;
	bool bad;
};

static uint64_t get(struct reader *r)
{
	if (r->at >= r->n) {
		r->bad = true;
		return 0;
	}
	return r->v[r->at++];
}

/* Skips the collective part of a state; false if malformed. */
static bool skip_collective(struct reader *r)
{
	uint64_t n;

	if (get(r) != STATE_MAGIC)
		return false;
	get(r);
	n = get(r);
	if (n > r->n)
		return false;
	r->at += n * 3;
	return r->at <= r->n && !r->bad;
}

/* Whether the state holds dsm_alloc memory (-EINVAL: malformed). */
int dsm_rt_alloc_state_has_local(const uint64_t *words, size_t n)
{
	struct reader r = {words, n, 0, false};
	uint64_t nfree;

	if (!skip_collective(&r))
		return -EINVAL;
	get(&r);
	get(&r);
	nfree = get(&r);
	if (nfree > n)
		return -EINVAL;
	r.at += nfree * 2;
	return r.bad || r.at > n ? -EINVAL : get(&r) > 0;
}

int dsm_rt_alloc_restore(struct dsm_rt_alloc *a, const uint64_t *words, size_t n, bool local)
{
	struct reader r = {words, n, 0, false};
	uint64_t mark, ncoll;
	int ret = -EINVAL;

	pthread_mutex_lock(&a->lock);
	if (a->next != 0 || get(&r) != STATE_MAGIC)
		goto out;
	mark = get(&r);
	ncoll = get(&r);
	if (mark > a->coll_lines || ncoll > n)
		goto out;
	a->coll_free.n = 0;
	if (mark < a->coll_lines && fl_put(&a->coll_free, mark, a->coll_lines - mark) < 0)
		goto nomem;
	for (uint64_t i = 0; i < ncoll; i++) {
		struct dsm_rt_extent e = {.kind = EXT_COLL};
		uint64_t d;

		e.first = get(&r);
		e.nlines = get(&r);
		d = get(&r);
		e.dist = (uint8_t)d;
		e.mw = d >> STATE_MW_SHIFT & 1;
		if (r.bad || e.first + e.nlines > mark || e.nlines == 0 ||
		    e.dist > DSM_COH_DIST_ZERO || d >> STATE_MW_SHIFT > 1 ||
		    (a->next && a->ext[a->next - 1].first + a->ext[a->next - 1].nlines > e.first))
			goto out;
		if (ext_add(a, &e) < 0)
			goto nomem;
		a->live_bytes += e.nlines * a->line_size;
	}
	if (local) {
		uint64_t first = get(&r), len = get(&r), nfree = get(&r), next;
		uint64_t lo = a->coll_lines + a->rank * a->slice_lines, hi = lo + a->slice_lines;

		if (first != lo || len != a->slice_lines || nfree > n)
			goto out;
		a->local_free.n = 0;
		for (uint64_t i = 0; i < nfree; i++) {
			uint64_t s = get(&r), l = get(&r);

			if (r.bad || s < lo || l > hi - s || l == 0)
				goto out;
			if (fl_put(&a->local_free, s, l) < 0)
				goto nomem;
		}
		next = get(&r);
		for (uint64_t i = 0; i < next && !r.bad; i++) {
			struct dsm_rt_extent e = {0};
			uint64_t k;

			e.first = get(&r);
			e.nlines = get(&r);
			k = get(&r);
			e.kind = (uint8_t)(k & 0xff);
			if (r.bad || e.first < lo || e.nlines > hi - e.first || e.nlines == 0 ||
			    (e.kind != EXT_LOCAL && e.kind != EXT_SLAB) ||
			    (a->next &&
			     a->ext[a->next - 1].first + a->ext[a->next - 1].nlines > e.first))
				goto out;
			if (e.kind == EXT_SLAB) {
				unsigned cls = (unsigned)(k >> 8 & 0xff),
				         nobj = (unsigned)(k >> 16);
				size_t obj = (size_t)1 << (MIN_OBJ_SHIFT + cls);
				struct dsm_rt_slab *s;

				if (cls >= nclasses(a) || nobj == 0 || nobj > MAX_SLAB_OBJS ||
				    nobj > a->line_size / obj || e.nlines != 1)
					goto out;
				s = calloc(1,
				           sizeof(*s) + 2 * ((nobj + 63) / 64) * sizeof(uint64_t));
				if (s == NULL)
					goto nomem;
				s->line = e.first;
				s->cls = cls;
				s->nobj = s->nfree = nobj;
				for (unsigned w = 0; w < (nobj + 63) / 64; w++) {
					s->used[w] = get(&r);
					s->nfree -= (unsigned)__builtin_popcountll(s->used[w]);
				}
				e.slab = s;
				if (r.bad || ext_add(a, &e) < 0) {
					free(s);
					goto out;
				}
				a->live_bytes += (uint64_t)(nobj - s->nfree) * obj;
				if (s->nfree)
					partial_push(a, s);
			} else {
				if (ext_add(a, &e) < 0)
					goto nomem;
				a->live_bytes += e.nlines * a->line_size;
			}
		}
	}
	ret = r.bad ? -EINVAL : 0;
	goto out;
nomem:
	ret = -ENOMEM;
out:
	pthread_mutex_unlock(&a->lock);
	return ret;
}

/* Calls @fn for every live allocation's lines: collective ones everywhere, local ones here. */
void dsm_rt_alloc_each(struct dsm_rt_alloc *a, void (*fn)(void *arg, const dsm_coh_span_t *s),
                       void *arg)
{
	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < a->next; i++) {
		const struct dsm_rt_extent *e = &a->ext[i];
		dsm_coh_span_t s = {.first_line = e->first, .nlines = e->nlines};

		if (e->kind == EXT_COLL) {
			s.dist = (dsm_coh_dist_t)e->dist;
		} else {
			s.dist = DSM_COH_DIST_RANK;
			s.rank = a->rank;
		}
		fn(arg, &s);
	}
	pthread_mutex_unlock(&a->lock);
}

void dsm_rt_alloc_each_mw(struct dsm_rt_alloc *a, void (*fn)(void *arg, uint64_t first, uint64_t n),
                          void *arg)
{
	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < a->next; i++)
		if (a->ext[i].kind == EXT_COLL && a->ext[i].mw)
			fn(arg, a->ext[i].first, a->ext[i].nlines);
	pthread_mutex_unlock(&a->lock);
}
