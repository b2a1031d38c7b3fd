/* SPDX-License-Identifier: MIT */
/*
 * Multiple-writer memory: the states of a line on one rank, and what moves it.
 *
 *   INVALID  no copy: a fault asks the home (GET) and the line is PENDING
 *   PENDING  asked for: the answer is installed read-only, or with a twin and writable
 *            when a thread wants to write; an answer to a GET sent before the last
 *            acquire may miss writes released since, and is asked for again
 *   RO       a read-only copy: the first store faults, takes the twin and unprotects
 *   DIRTY    written since the last release: its twin holds its bytes from before
 *
 * A release write-protects the DIRTY lines (the kernel flushes the TLBs: no store is in
 * flight), reads each one's diff against its twin, and sends the diffs to the homes,
 * gathered per home; it is done once every home has merged them (ACK). An acquire first
 * releases (writes may become visible early: release consistency allows it), then zaps
 * every copy that another rank may have written since it came: all those homed elsewhere,
 * and those homed here marked STALE by a diff merged from another rank. Messages between a
 * pair of ranks arrive in the order sent, so a GET after a release finds the release's
 * diffs merged at the home.
 *
 * With asynchronous tracking (DSM_MW_TRACK=async, where the kernel has WP_ASYNC and
 * PAGEMAP_SCAN) no store faults: the ranges are under a userfaultfd of their own whose
 * write-protect faults the kernel resolves, and a release asks PAGEMAP_SCAN which pages were
 * written since the last one, write-protecting them again in the same call. There is no
 * DIRTY state then, and no chance to copy a line before its first store, so the twin of a
 * copy homed elsewhere is taken when it is installed. A line homed here needs none while no
 * other rank's diff changed the home copy: the home copy is its twin, and its release is one
 * copy of the line into it. The first diff from another rank takes the twin from the home
 * copy before merging (the line is STALE from then on, and dropped at the next acquire).
 */
#include "runtime/mw.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "coherence/diff.h"
#include "common/uffd.h"
#include "common/error.h"
#include "common/log.h"
#include "runtime/ckpt.h"
#include "runtime/death.h"
#include "runtime/decode.h"
#include "runtime/fatal.h"
#include "runtime/hold.h"
#include "runtime/loop.h"
#include "runtime/msg.h"
#include "runtime/profile.h"
#include "runtime/rdma.h"
#include "runtime/region.h"
#include "runtime/rt.h"

/* The longest a release or an acquire waits for a woken thread to run (hold.c). */
#define MW_HOLD_NS (50 * 1000000ull)

enum {
	MW_INVALID = 0,
	MW_PENDING,
	MW_RO,
	MW_DIRTY,
	MW_LOST, /* served by a rank that died: poisoned (dsm_rt_mw_peer_dead) */
	MW_STATE = 0x0f,
	MW_STALE = 0x10, /* homed here, and another rank's diff changed the home copy since */
};

static size_t line_size(const struct dsm_rt *rt)
{
	return (size_t)1 << rt->layout.line_shift;
}

static char *line_addr(const struct dsm_rt *rt, uint64_t line)
{
	return (char *)dsm_coh_line_addr(&rt->layout, line);
}

/* A vector's room for one more element of @size bytes; false when out of memory. */
static bool grow(void **v, size_t *cap, size_t n, size_t size)
{
	size_t c = *cap ? *cap * 2 : 64;
	void *p;

	if (n < *cap)
		return true;
	p = realloc(*v, c * size);
	if (p == NULL)
		return false;
	*v = p;
	*cap = c;
	return true;
}

#define PUSH(rt, vec, n, cap, val)                                                                 \
	do {                                                                                       \
		if (!grow((void **)&(vec), &(cap), (n), sizeof(*(vec))))                           \
			dsm_rt_fatal((rt), "out of memory for multiple-writer state");             \
		(vec)[(n)++] = (val);                                                              \
	} while (0)

static struct dsm_rt_mw_range *range_of(struct dsm_rt_mw *w, uint64_t line)
{
	size_t lo = 0, hi = w->nr;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		struct dsm_rt_mw_range *r = &w->r[mid];

		if (line < r->first)
			hi = mid;
		else if (line >= r->first + r->n)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

static uint8_t *state_of(struct dsm_rt_mw *w, uint64_t line)
{
	struct dsm_rt_mw_range *r = range_of(w, line);

	return r ? &r->state[line - r->first] : NULL;
}

bool dsm_rt_mw_owns(struct dsm_rt *rt, uint64_t line)
{
	return atomic_load_explicit(&rt->mw.nranges, memory_order_relaxed) &&
	       range_of(&rt->mw, line) != NULL;
}

/* Where @line is served: after a death, memory allocated since is at the heir (and what the
 * dead rank served is lost: dsm_rt_death_lost_with). */
static int home_of(struct dsm_rt *rt, uint64_t line)
{
	return dsm_rt_live_home(rt, dsm_rt_alloc_home(&rt->alloc, line, NULL));
}

/* Counters the application threads read: up before down (mw.h). */
static void count(atomic_uint_fast64_t *c, int64_t d)
{
	atomic_fetch_add_explicit(c, (uint_fast64_t)d, memory_order_release);
}

/* ---- twins ------------------------------------------------------------------------------ */

static char *twin_get(struct dsm_rt *rt)
{
	struct dsm_rt_mw *w = &rt->mw;
	char *t = w->ntwins ? w->twins[--w->ntwins] : malloc(line_size(rt));

	if (t == NULL)
		dsm_rt_fatal(rt, "out of memory for the twin of a multiple-writer line");
	DSM_RT_COUNT(rt, mw_twins, 1);
	return t;
}

/* Twins are kept for reuse up to 256 of them. */
static void twin_put(struct dsm_rt *rt, char *t)
{
	struct dsm_rt_mw *w = &rt->mw;

	if (t == NULL)
		return;
	if (w->ntwins < 256 && grow((void **)&w->twins, &w->twins_cap, w->ntwins, sizeof(t)))
		w->twins[w->ntwins++] = t;
	else
		free(t);
}

/* ---- copies ----------------------------------------------------------------------------- */

/*
 * A copy homed here that no other rank's diff changed is newer than the home copy in every
 * byte it differs in, so it is the line: it is installed writable (its stores never fault),
 * a GET is answered from it, a release has nothing to publish of it, and it reaches the home
 * copy only when another rank's first diff comes (on_diff), which ends it.
 */
static bool is_master(struct dsm_rt *rt, uint64_t line, uint8_t st)
{
	return (st & MW_STATE) == MW_RO && !(st & MW_STALE) && home_of(rt, line) == rt->rank;
}

/* Whether a copy of @line here could miss another rank's writes at the next acquire. */
static bool droppable(struct dsm_rt *rt, uint64_t line, uint8_t st)
{
	return (st & MW_STALE) || home_of(rt, line) != rt->rank;
}

/* @line's writes start here: its twin is taken from @src (its bytes now), then it is made
 * writable by the caller. */
static void make_dirty(struct dsm_rt *rt, uint64_t line, uint8_t *st, const void *src)
{
	struct dsm_rt_mw *w = &rt->mw;
	struct dsm_rt_mw_dirty d = {.line = line, .twin = twin_get(rt)};

	memcpy(d.twin, src, line_size(rt));
	count(&w->unreleased, 1);
	PUSH(rt, w->dirty, w->ndirty, w->dirty_cap, d);
	*st = (uint8_t)((*st & MW_STALE) | MW_DIRTY);
}

/* Installs @line from @src (its home copy), writable with a twin when a thread writes. */
static void install(struct dsm_rt *rt, uint64_t line, uint8_t *st, const void *src, bool write)
{
	struct dsm_rt_mw *w = &rt->mw;
	bool remote = home_of(rt, line) != rt->rank;
	int ret;

	*st = MW_RO;
	if (remote)
		count(&w->held, 1);
	PUSH(rt, w->cached, w->ncached, w->cached_cap, line);
	if (w->async) {
		/* Any copy may be written from now on without a word; the twin of one homed
		 * elsewhere is its bytes now. */
		count(&w->unreleased, 1);
		if (remote) {
			struct dsm_rt_mw_range *r = range_of(w, line);
			char *t = twin_get(rt);

			memcpy(t, src, line_size(rt));
			r->twin[line - r->first] = t;
		}
		write = !remote; /* a copy homed elsewhere read-only: the kernel lets stores in */
	} else if (!remote) {
		write = true; /* the master copy */
	} else if (write) {
		make_dirty(rt, line, st, src);
	}
	ret = dsm_rt_region_install(w->rg, (uint64_t)(uintptr_t)line_addr(rt, line), src,
	                            line_size(rt), write);
	if (ret < 0)
		dsm_rt_fatal(rt, "installing multiple-writer line %llu failed: %s",
		             (unsigned long long)line, dsm_err_str(ret));
}

/* Asks @home for @n lines (@lines[0] the one a thread waits for). */
static void send_get(struct dsm_rt *rt, const uint64_t *lines, uint32_t n, int home)
{
	char m[sizeof(struct dsm_rt_mw_get) + DSM_RT_MW_GET_MAX * sizeof(uint64_t)];
	int ret;

	ret = dsm_rt_send(rt, home, DSM_RT_MSG_MW_GET, m,
	                  dsm_rt_encode_mw_get(m, lines, n, rt->mw.epoch));
	if (ret < 0 && ret != DSM_ERR_PEER_DEAD)
		dsm_rt_fatal(rt, "asking rank %d for multiple-writer line %llu failed: %s", home,
		             (unsigned long long)lines[0], dsm_err_str(ret));
}

/* The lines one GET asks for: what one MW_DATA carries, and DSM_RT_MW_GET_MAX at most. */
static uint32_t get_batch(const struct dsm_rt *rt)
{
	size_t n = (rt->mw.msg_cap - sizeof(struct dsm_rt_mw_data)) /
	           (line_size(rt) + sizeof(uint64_t));

	return n < 1 ? 1 : n > DSM_RT_MW_GET_MAX ? DSM_RT_MW_GET_MAX : (uint32_t)n;
}

/*
 * A miss on @line, homed at @home: it and the lines after it in its allocation that have the
 * same home and no copy here (up to get_batch(), among the next 4 x get_batch() lines) are
 * asked for together. Release consistency allows any copy that is not older than the last acquire,
 * so lines read ahead are exact: an acquire drops them like any other.
 */
static void fetch(struct dsm_rt *rt, struct dsm_rt_mw_range *r, uint64_t line, int home, bool write)
{
	struct dsm_rt_mw *w = &rt->mw;
	uint64_t lines[DSM_RT_MW_GET_MAX];
	uint32_t n = 0, max = get_batch(rt);
	uint64_t end = r->first + r->n;

	if (end > line + 4 * max)
		end = line + 4 * max;
	for (uint64_t l = line; l < end && n < max; l++) {
		uint8_t *st = &r->state[l - r->first];

		if (l != line && ((*st & MW_STATE) != MW_INVALID || home_of(rt, l) != home ||
		                  dsm_rt_death_lost_with(rt, l) >= 0))
			continue;
		count(&w->held, 1);
		PUSH(rt, w->pending, w->npending, w->pending_cap,
		     ((struct dsm_rt_mw_pending){.line = l,
		                                 .epoch = w->epoch,
		                                 .write = l == line && write,
		                                 .waited = l == line}));
		*st = MW_PENDING;
		lines[n++] = l;
	}
	if (n > 1)
		DSM_RT_COUNT(rt, prefetched, n - 1);
	send_get(rt, lines, n, home);
}

static struct dsm_rt_mw_pending *pending_find(struct dsm_rt_mw *w, uint64_t line)
{
	for (size_t i = 0; i < w->npending; i++)
		if (w->pending[i].line == line)
			return &w->pending[i];
	return NULL;
}

static void pending_drop(struct dsm_rt_mw *w, struct dsm_rt_mw_pending *p)
{
	*p = w->pending[--w->npending];
	count(&w->held, -1);
}

/* The faults on @line are resolved: its latency is counted, and it is held for its woken
 * threads (README, Progress): a release or an acquire waits for the hold, or a thread that
 * calls one in a loop could take the line from a writer before each retry. */
static void resolved(struct dsm_rt *rt, uint64_t line)
{
	dsm_rt_fault_end(rt, line);
	/* Without DSM_HOLD_EARLY nothing ends it early: DSM_HOLD_US then, as for the engine. */
	dsm_rt_hold_add_own(rt, line, rt->holds.early ? MW_HOLD_NS : rt->holds.hold_ns);
}

bool dsm_rt_mw_holding(struct dsm_rt *rt)
{
	/* A line a thread waits for counts too: an acquire now would send its answer back to
	 * be asked for again, and acquires in a loop would starve the thread. */
	for (size_t i = 0; i < rt->mw.npending; i++)
		if (rt->mw.pending[i].waited)
			return true;
	for (size_t i = 0; i < rt->holds.n; i++)
		if (range_of(&rt->mw, rt->holds.v[i].line))
			return true;
	return false;
}

bool dsm_rt_mw_waits(struct dsm_rt *rt)
{
	return rt->mw.ndeferred != 0;
}

/* @line died with rank @dead, which served it: poisoned here, so that an access raises
 * SIGBUS (a thread waiting on it is woken by the poison and faults again). */
static void lose(struct dsm_rt *rt, uint64_t line, uint8_t *st, int dead)
{
	*st = MW_LOST;
	DSM_RT_COUNT(rt, lost_lines, 1);
	dsm_rt_death_poison(rt, rt->mw.rg, line, (unsigned)dead);
}

bool dsm_rt_mw_fault(struct dsm_rt *rt, const struct dsm_rt_fault *f, uint64_t line, int home)
{
	struct dsm_rt_mw *w = &rt->mw;
	uint8_t *st;
	int ret = 0;

	if (!atomic_load_explicit(&w->nranges, memory_order_relaxed))
		return false;
	st = state_of(w, line);
	if (st == NULL)
		return false;
	DSM_RT_COUNT(rt, mw_faults, 1);
	dsm_rt_prof_fault(rt, line, f->exact, f->write);
	dsm_rt_fault_begin(rt, line, f->tid);
	dsm_rt_fault_sample(rt, line, f->tid);
	home = dsm_rt_live_home(rt, home);
	switch (*st & MW_STATE) {
	case MW_INVALID: {
		int dead = dsm_rt_death_lost_with(rt, line);

		if (dead >= 0) {
			lose(rt, line, st, dead);
			dsm_rt_fault_end(rt, line);
			break;
		}
		if (home == rt->rank) {
			install(rt, line, st, dsm_rt_home_line(rt, line), f->write);
			resolved(rt, line);
			break;
		}
		fetch(rt, range_of(w, line), line, home, f->write);
		break;
	}
	case MW_PENDING: {
		struct dsm_rt_mw_pending *p = pending_find(w, line);

		p->waited = true;
		p->write |= f->write;
		break;
	}
	case MW_RO:
		if (f->write && !w->async && !is_master(rt, line, *st)) {
			/* The loop reads the page: present, and read-only until the unprotect. */
			make_dirty(rt, line, st, line_addr(rt, line));
			ret = dsm_rt_region_protect(w->rg, (uint64_t)(uintptr_t)line_addr(rt, line),
			                            line_size(rt), false);
			resolved(rt, line);
			break;
		}
		__attribute__((fallthrough));
	case MW_DIRTY:
	case MW_LOST:
		/* Installed (or made writable, or poisoned) after the fault was queued: the
		 * thread retries. It may have run already, so its hold is the short one. */
		ret = dsm_rt_region_wake(w->rg, (uint64_t)(uintptr_t)line_addr(rt, line),
		                         line_size(rt));
		dsm_rt_fault_end(rt, line);
		dsm_rt_hold_add(rt, line);
		break;
	}
	if (ret < 0)
		dsm_rt_fatal(rt, "multiple-writer line %llu: %s", (unsigned long long)line,
		             dsm_err_str(ret));
	return true;
}

/* ---- release ------------------------------------------------------------------------ */

size_t dsm_rt_mw_msg_max(size_t line_size)
{
	size_t one = sizeof(struct dsm_rt_mw_diff) + sizeof(struct dsm_rt_mw_rec) +
	             dsm_coh_diff_max(line_size);
	size_t data = sizeof(struct dsm_rt_mw_data) + sizeof(uint64_t) + line_size;
	size_t m = one > data ? one : data;

	return m > ((size_t)32 << 10) ? m : (size_t)32 << 10;
}

static void out_send(struct dsm_rt *rt, struct dsm_rt_mw_out *o)
{
	struct dsm_rt_mw_diff h = {.n = o->n};
	int ret;

	memcpy(o->buf, &h, sizeof(h));
	rt->mw.outstanding++;
	rt->mw.acks[o->home]++;
	count(&rt->mw.unreleased, 1);
	DSM_RT_COUNT(rt, diffs_sent, o->n);
	ret = dsm_rt_send(rt, o->home, DSM_RT_MSG_MW_DIFF, o->buf, o->len);
	if (ret == DSM_ERR_PEER_DEAD) {
		/* Its lines die with it (dsm_rt_mw_peer_dead): no acknowledgement comes. */
		rt->mw.outstanding--;
		rt->mw.acks[o->home]--;
		count(&rt->mw.unreleased, -1);
	} else if (ret < 0) {
		dsm_rt_fatal(rt, "sending diffs to rank %d failed: %s", o->home, dsm_err_str(ret));
	}
	o->home = -1;
	o->n = 0;
	o->len = sizeof(h);
}

/* Room for one more diff to @home: its slot, a free one, or the first one's sent. */
static struct dsm_rt_mw_out *out_for(struct dsm_rt *rt, int home)
{
	struct dsm_rt_mw *w = &rt->mw;
	struct dsm_rt_mw_out *o = NULL;
	size_t need = sizeof(struct dsm_rt_mw_rec) + dsm_coh_diff_max(line_size(rt));

	for (unsigned i = 0; i < DSM_RT_MW_OUTS && o == NULL; i++)
		if (w->out[i].home == home)
			o = &w->out[i];
	for (unsigned i = 0; i < DSM_RT_MW_OUTS && o == NULL; i++)
		if (w->out[i].home < 0)
			o = &w->out[i];
	if (o == NULL) {
		/* The first slot goes; one that got only empty diffs has nothing to send. */
		o = &w->out[0];
		if (o->n)
			out_send(rt, o);
	}
	if (o->n && o->len + need > w->msg_cap)
		out_send(rt, o);
	o->home = home;
	return o;
}

static int cmp_dirty(const void *a, const void *b)
{
	uint64_t x = ((const struct dsm_rt_mw_dirty *)a)->line;
	uint64_t y = ((const struct dsm_rt_mw_dirty *)b)->line;

	return x < y ? -1 : x > y;
}

/* Write-protects [first, first + n) lines in one call. */
static void protect_run(struct dsm_rt *rt, uint64_t first, uint64_t n)
{
	int ret = dsm_rt_region_protect(rt->mw.rg, (uint64_t)(uintptr_t)line_addr(rt, first),
	                                n * line_size(rt), true);

	if (ret < 0)
		dsm_rt_fatal(rt, "write-protecting multiple-writer lines for a release: %s",
		             dsm_err_str(ret));
}

/* The diff of @line against @twin, read from @cur, merged here or gathered for its home. */
static void diff_out(struct dsm_rt *rt, uint64_t line, const char *twin, const char *cur)
{
	struct dsm_rt_mw *w = &rt->mw;
	size_t ls = line_size(rt), len;
	int home = home_of(rt, line);

	if (home == rt->rank) {
		/* Merged into the home copy at once: the diff is made in scratch. */
		len = dsm_coh_diff_make(twin, cur, ls, w->scratch, NULL);
		if (len)
			dsm_rt_ckpt_before(rt, line, DSM_RT_CK_HOME);
		if (len && dsm_coh_diff_apply(dsm_rt_home_line(rt, line), ls, w->scratch, len) < 0)
			dsm_rt_fatal(rt, "a diff of this rank's own does not apply");
		if (len)
			DSM_RT_COUNT(rt, diffs_merged, 1);
	} else {
		struct dsm_rt_mw_out *o = out_for(rt, home);
		struct dsm_rt_mw_rec rec = {.line = line};

		len = dsm_coh_diff_make(twin, cur, ls, o->buf + o->len + sizeof(rec), NULL);
		if (len) {
			dsm_rt_prof_event(rt, line, DSM_RT_PROF_DIFF_OUT, home);
			rec.len = (uint32_t)len;
			memcpy(o->buf + o->len, &rec, sizeof(rec));
			o->len += sizeof(rec) + len;
			o->n++;
		}
	}
	DSM_RT_COUNT(rt, diff_bytes, len);
}

/* What a release gathered goes to the homes. */
static void outs_send(struct dsm_rt *rt)
{
	struct dsm_rt_mw *w = &rt->mw;

	for (unsigned i = 0; i < DSM_RT_MW_OUTS; i++)
		if (w->out[i].n)
			out_send(rt, &w->out[i]);
		else
			w->out[i].home = -1;
}

/* A written line found by the scan: its writes go to its home, and what it holds now is its
 * twin for the next release. */
static void release_line_async(struct dsm_rt *rt, struct dsm_rt_mw_range *r, uint64_t line)
{
	uint8_t st = r->state[line - r->first];
	char **twin = &r->twin[line - r->first];
	const char *cur = line_addr(rt, line);
	size_t ls = line_size(rt);
	char *snap;

	if ((st & MW_STATE) != MW_RO)
		return; /* not installed: a write cannot have happened */
	if (is_master(rt, line, st))
		return; /* the line itself: nothing to publish */
	if (*twin == NULL)
		dsm_rt_fatal(rt, "multiple-writer line %llu was written with no twin",
		             (unsigned long long)line);
	/* A snapshot first: stores after the scan may go on, and what the diff missed of them
	 * the next release sends, since the snapshot becomes the twin. */
	snap = twin_get(rt);
	memcpy(snap, cur, ls);
	diff_out(rt, line, *twin, snap);
	twin_put(rt, *twin);
	*twin = snap;
}

#define SCAN_RUNS 256

/* Scans [first, first + n) lines: what was written goes out. */
static void scan_run(struct dsm_rt *rt, struct dsm_rt_mw_range *r, uint64_t first, uint64_t n)
{
	struct dsm_rt_mw *w = &rt->mw;
	uint64_t at = (uint64_t)(uintptr_t)line_addr(rt, first);
	uint64_t end = at + (n << rt->layout.line_shift);

	while (at < end) {
		/* A line once per batch: one split between two batches is released twice, the
		 * second time against the first one's snapshot, so a store made between them is
		 * not lost with the written state the second scan clears. */
		uint64_t next = end, last = UINT64_MAX;
		int got =
		        dsm_rt_region_scan_written(w->rg, at, end - at, w->scan, SCAN_RUNS, &next);

		if (got < 0)
			dsm_rt_fatal(rt, "finding the written multiple-writer pages failed: %s",
			             dsm_err_str(got));
		for (int k = 0; k < got; k++) {
			uint64_t l0 = (uint64_t)dsm_coh_line_of(&rt->layout, w->scan[k].start);
			uint64_t l1 = (uint64_t)dsm_coh_line_of(&rt->layout, w->scan[k].end - 1);

			for (uint64_t line = l0; line <= l1; line++)
				if (line != last)
					release_line_async(rt, r, last = line);
		}
		if (next <= at)
			break; /* no progress: the kernel says it is done */
		at = next;
	}
}

/* A run of master lines shorter than this is scanned with its neighbours: one call. */
#define SCAN_SKIP_MIN 16

/*
 * The release with asynchronous tracking: PAGEMAP_SCAN finds the written pages and
 * write-protects them again, so no store is in flight on what it reads. The master copies
 * (is_master) are left out where they come in runs, so that their stores never fault.
 */
static void release_async(struct dsm_rt *rt)
{
	struct dsm_rt_mw *w = &rt->mw;

	for (size_t i = 0; i < w->nr; i++) {
		struct dsm_rt_mw_range *r = &w->r[i];
		uint64_t start = 0, k = 0;

		while (k < r->n) {
			uint64_t m = k;

			while (m < r->n && is_master(rt, r->first + m, r->state[m]))
				m++;
			if (m - k >= SCAN_SKIP_MIN || m == r->n) {
				if (k > start)
					scan_run(rt, r, r->first + start, k - start);
				start = m;
			}
			k = m + 1;
		}
		if (start < r->n)
			scan_run(rt, r, r->first + start, r->n - start);
	}
	outs_send(rt);
}

/* The diffs of every written line go out; the lines stay, read-only. */
static void release(struct dsm_rt *rt)
{
	struct dsm_rt_mw *w = &rt->mw;
	size_t nd = w->ndirty;

	if (w->async) {
		release_async(rt);
		return;
	}
	if (nd == 0)
		return;
	qsort(w->dirty, nd, sizeof(w->dirty[0]), cmp_dirty);
	/* Write-protect first, a run of lines per call: no store is in flight after it. */
	for (size_t i = 0, j; i < nd; i = j) {
		for (j = i + 1; j < nd && w->dirty[j].line == w->dirty[j - 1].line + 1; j++)
			;
		protect_run(rt, w->dirty[i].line, j - i);
	}
	for (size_t i = 0; i < nd; i++) {
		struct dsm_rt_mw_dirty *d = &w->dirty[i];
		uint8_t *st = state_of(w, d->line);

		*st = (uint8_t)((*st & MW_STALE) | MW_RO);
		diff_out(rt, d->line, d->twin, line_addr(rt, d->line));
		twin_put(rt, d->twin);
	}
	w->ndirty = 0;
	outs_send(rt);
	count(&w->unreleased, -(int64_t)nd);
}

/* ---- acquire ------------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Zaps [first, first + n) lines and wakes whoever faulted there (a zap wakes nobody). */
static void zap_run(struct dsm_rt *rt, uint64_t first, uint64_t n)
{
	uint64_t addr = (uint64_t)(uintptr_t)line_addr(rt, first);
	size_t len = n * line_size(rt);
	int ret = dsm_rt_region_zap(rt->mw.rg, addr, len);

	if (ret == 0)
		ret = dsm_rt_region_wake(rt->mw.rg, addr, len);
	if (ret < 0)
		dsm_rt_fatal(rt, "dropping multiple-writer copies: %s", dsm_err_str(ret));
}

/*
 * Asynchronous tracking: the copies an acquire drops. Write-protect stops no store (the
 * kernel lets it in), so a zap could lose one made since the release's scan, by a thread of
 * this rank that did not synchronize with the acquiring one. Each line is taken out of the
 * heap instead (UFFDIO_MOVE: atomic, and any later access faults), its stores since the scan
 * go to its home as one more diff against its twin, and only then is it gone.
 */
static void take_out(struct dsm_rt *rt, const uint64_t *lines, size_t n)
{
	struct dsm_rt_mw *w = &rt->mw;
	size_t ls = line_size(rt);

	for (size_t i = 0; i < n; i++) {
		struct dsm_rt_mw_range *r = range_of(w, lines[i]);
		char **twin = &r->twin[lines[i] - r->first];
		/* The scratch line must be empty for the move. It is emptied after each one, but
		 * a move refused there (EEXIST) was seen once in twelve 4-rank runs: empty it
		 * first too (nothing of value is in it between two takes). */
		int ret = dsm_rt_region_zap(w->rg, (uint64_t)(uintptr_t)w->take, ls);

		if (ret == 0)
			ret = dsm_rt_region_take(
			        w->rg, (uint64_t)(uintptr_t)line_addr(rt, lines[i]), ls, w->take);

		if (ret < 0)
			dsm_rt_fatal(rt, "taking multiple-writer line %llu out of the heap: %s",
			             (unsigned long long)lines[i], dsm_err_str(ret));
		if (*twin)
			diff_out(rt, lines[i], *twin, w->take);
		twin_put(rt, *twin);
		*twin = NULL;
		if (dsm_rt_region_zap(w->rg, (uint64_t)(uintptr_t)w->take, ls) < 0)
			dsm_rt_fatal(rt, "emptying the multiple-writer scratch line");
	}
	outs_send(rt);
}

static void acquire(struct dsm_rt *rt)
{
	struct dsm_rt_mw *w = &rt->mw;
	size_t kept = 0, nd = 0;

	release(rt);
	w->epoch++;
	/* Tracked by twins, the lines are all read-only now: no store can be in flight on
	 * them (asynchronously tracked ones are taken out: take_out). In order, so that the
	 * dropped ones go in runs. */
	qsort(w->cached, w->ncached, sizeof(w->cached[0]), cmp_u64);
	for (size_t i = 0; i < w->ncached; i++) {
		uint64_t line = w->cached[i];
		uint8_t *st = state_of(w, line);

		if (droppable(rt, line, *st)) {
			dsm_rt_prof_event(rt, line, DSM_RT_PROF_INVAL, -1);
			*st = MW_INVALID;
			PUSH(rt, w->drop, nd, w->drop_cap, line);
		} else {
			w->cached[kept++] = line;
		}
	}
	w->ncached = kept;
	if (w->async)
		take_out(rt, w->drop, nd);
	else
		for (size_t i = 0, j; i < nd; i = j) {
			for (j = i + 1; j < nd && w->drop[j] == w->drop[j - 1] + 1; j++)
				;
			zap_run(rt, w->drop[i], j - i);
		}
	if (nd) {
		DSM_RT_COUNT(rt, mw_invalidations, nd);
		count(&w->held, -(int64_t)nd);
		if (w->async)
			count(&w->unreleased, -(int64_t)nd);
	}
}

/* ---- messages ------------------------------------------------------------------------- */

/*
 * Whether @line is one this rank is home of (a message about another is malformed). A line
 * of an allocation this rank has not made yet counts: another rank may come out of the
 * collective sooner and ask at once, and the home copy of new memory is zero here already.
 */
static bool homed_here(struct dsm_rt *rt, uint64_t line)
{
	int home;

	if (line >= (rt->layout.size >> rt->layout.line_shift))
		return false;
	if (dsm_rt_death_lost_with(rt, line) >= 0)
		return false; /* it died with its home */
	home = home_of(rt, line);
	/* Not yet allocated here, or allocated and not yet known to this loop as multiple-
	 * writer memory (the ADD of the allocating thread comes after the collective, and
	 * another rank may ask sooner): both are taken. */
	return home < 0 || home == rt->rank;
}

static void complete_waiting(struct dsm_rt *rt)
{
	struct dsm_rt_mw *w = &rt->mw;

	for (size_t i = 0; i < w->nwaiting; i++)
		dsm_rt_reply(rt, rt->rank, w->waiting[i], 0);
	w->nwaiting = 0;
}

/* The home copies of @n @lines (or the master copies) go back to @src, in one MW_DATA. */
static void answer_get(struct dsm_rt *rt, int src, const struct dsm_rt_mw_get_view *get)
{
	size_t ls = line_size(rt), ids;
	uint32_t n = get->n;
	char *out = rt->mw.scratch;
	int ret;

	ids = dsm_rt_encode_mw_data_head(out, n, get->epoch, get->ids);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t line = dsm_rt_mw_get_line(get, i);
		uint8_t *st;

		st = state_of(&rt->mw, line);
		memcpy(out + ids + i * ls,
		       st && is_master(rt, line, *st) ? line_addr(rt, line)
		                                      : dsm_rt_home_line(rt, line),
		       ls);
		dsm_rt_prof_event(rt, line, DSM_RT_PROF_SENT, src);
	}
	DSM_RT_COUNT(rt, bytes_sent, n * ls);
	ret = dsm_rt_send(rt, src, DSM_RT_MSG_MW_DATA, out, ids + n * ls);
	if (ret < 0 && ret != DSM_ERR_PEER_DEAD)
		dsm_rt_fatal(rt, "answering rank %d's multiple-writer GET failed: %s", src,
		             dsm_err_str(ret));
}

/* Another rank's GET: every line is checked before any answer goes. */
static void on_get(struct dsm_rt *rt, int src, const void *data, size_t len)
{
	struct dsm_rt_mw_get_view get;

	if (src == rt->rank || dsm_rt_decode_mw_get(data, len, get_batch(rt), &get) < 0)
		goto bad;
	for (uint32_t i = 0; i < get.n; i++)
		if (!homed_here(rt, dsm_rt_mw_get_line(&get, i)))
			goto bad;
	answer_get(rt, src, &get);
	return;
bad:
	dsm_rt_msg_malformed(rt, src, DSM_RT_MSG_MW_GET, len);
}

int dsm_rt_mw_add_range(struct dsm_rt *rt, uint64_t first, uint64_t n)
{
	struct dsm_rt_mw *w = &rt->mw;
	struct dsm_rt_mw_range r = {.first = first, .n = n};
	size_t at = 0;
	int ret;

	if (n == 0 || first + n > (rt->layout.size >> rt->layout.line_shift))
		return -EINVAL;
	r.state = calloc(n, 1);
	r.twin = w->async ? calloc(n, sizeof(*r.twin)) : NULL;
	if (r.state == NULL || (w->async && r.twin == NULL) ||
	    !grow((void **)&w->r, &w->r_cap, w->nr, sizeof(w->r[0]))) {
		free(r.state);
		free(r.twin);
		return -ENOMEM;
	}
	/* Its faults come on the asynchronous userfaultfd from now on. */
	if (w->async) {
		ret = dsm_rt_region_move(&rt->region, w->rg,
		                         (uint64_t)(uintptr_t)line_addr(rt, first),
		                         n << rt->layout.line_shift);
		if (ret < 0) {
			free(r.state);
			free(r.twin);
			return ret;
		}
	}
	while (at < w->nr && w->r[at].first < r.first)
		at++;
	memmove(&w->r[at + 1], &w->r[at], (w->nr - at) * sizeof(w->r[0]));
	w->r[at] = r;
	w->nr++;
	atomic_fetch_add_explicit(&w->nranges, 1, memory_order_release);
	return 0;
}

static void range_add(struct dsm_rt *rt, uint64_t addr, uint64_t len, uint64_t token)
{
	int64_t first = dsm_coh_line_of(&rt->layout, addr);
	uint64_t n = (len + line_size(rt) - 1) >> rt->layout.line_shift;

	dsm_rt_reply(rt, rt->rank, token,
	             first < 0 ? -EINVAL : dsm_rt_mw_add_range(rt, (uint64_t)first, n));
}

/* The allocation at @addr was freed: its copies, twins and requests go. */
static void range_del(struct dsm_rt *rt, uint64_t addr, uint64_t token)
{
	struct dsm_rt_mw *w = &rt->mw;
	int64_t first = dsm_coh_line_of(&rt->layout, addr);
	struct dsm_rt_mw_range *r = first < 0 ? NULL : range_of(w, (uint64_t)first);
	uint64_t lo, hi;
	size_t k = 0, dropped = 0;

	if (r == NULL || r->first != (uint64_t)first) {
		dsm_rt_reply(rt, rt->rank, token, 0); /* not multiple-writer memory */
		return;
	}
	lo = r->first;
	hi = r->first + r->n;
	for (size_t i = 0; i < w->ndirty; i++) {
		if (w->dirty[i].line >= lo && w->dirty[i].line < hi) {
			twin_put(rt, w->dirty[i].twin);
			count(&w->unreleased, -1);
		} else {
			w->dirty[k++] = w->dirty[i];
		}
	}
	w->ndirty = k;
	k = 0;
	for (size_t i = 0; i < w->ncached; i++) {
		uint64_t line = w->cached[i];

		if (line < lo || line >= hi) {
			w->cached[k++] = line;
			continue;
		}
		if (droppable(rt, line, r->state[line - lo]))
			dropped++;
		if (w->async) {
			twin_put(rt, r->twin[line - lo]);
			count(&w->unreleased, -1);
		}
	}
	w->ncached = k;
	for (size_t i = 0; i < w->npending;) {
		if (w->pending[i].line >= lo && w->pending[i].line < hi) {
			/* Its answer will find no request; a thread waiting for it is woken by
			 * the zap below, and faults on freed memory. */
			if (w->pending[i].waited)
				dsm_rt_fault_end(rt, w->pending[i].line);
			pending_drop(w, &w->pending[i]);
		} else
			i++;
	}
	count(&w->held, -(int64_t)dropped);
	dsm_rt_hold_forget(rt, lo, r->n);
	zap_run(rt, lo, r->n);
	if (w->async &&
	    dsm_rt_region_move(w->rg, &rt->region, (uint64_t)(uintptr_t)line_addr(rt, lo),
	                       r->n << rt->layout.line_shift) < 0)
		dsm_rt_fatal(rt,
		             "giving freed multiple-writer memory back to the heap's userfaultfd");
	free(r->state);
	free(r->twin);
	memmove(r, r + 1, (size_t)(&w->r[w->nr] - (r + 1)) * sizeof(*r));
	w->nr--;
	atomic_fetch_sub_explicit(&w->nranges, 1, memory_order_release);
	dsm_rt_reply(rt, rt->rank, token, 0);
}

/* The releases and acquires asked for, in order, once no multiple-writer line is held. */
static void run_deferred(struct dsm_rt *rt)
{
	struct dsm_rt_mw *w = &rt->mw;

	if (w->ndeferred == 0 || dsm_rt_mw_holding(rt))
		return;
	for (size_t i = 0; i < w->ndeferred; i++) {
		struct dsm_rt_mw_deferred *d = &w->deferred[i];

		if (d->op == DSM_RT_MW_ACQUIRE) {
			acquire(rt);
			dsm_rt_reply(rt, rt->rank, d->token, 0);
			continue;
		}
		release(rt);
		if (w->outstanding == 0)
			dsm_rt_reply(rt, rt->rank, d->token, 0);
		else
			PUSH(rt, w->waiting, w->nwaiting, w->waiting_cap, d->token);
	}
	w->ndeferred = 0;
}

static void on_mw(struct dsm_rt *rt, int src, const void *data, size_t len)
{
	struct dsm_rt_mw *w = &rt->mw;
	struct dsm_rt_mw_msg m;

	if (dsm_rt_decode_mw(data, len, &m) < 0) {
		dsm_rt_msg_malformed(rt, src, DSM_RT_MSG_MW, len);
		return;
	}
	if (m.op == DSM_RT_MW_ACK && src != rt->rank && w->acks[src]) {
		w->acks[src]--;
		count(&w->unreleased, -1);
		if (--w->outstanding == 0)
			complete_waiting(rt);
		return;
	}
	/* The rest are this rank's own requests. */
	if (src != rt->rank) {
		dsm_rt_msg_malformed(rt, src, DSM_RT_MSG_MW, len);
		return;
	}
	switch (m.op) {
	case DSM_RT_MW_ADD:
		range_add(rt, m.addr, m.len, m.token);
		break;
	case DSM_RT_MW_DEL:
		range_del(rt, m.addr, m.token);
		break;
	case DSM_RT_MW_RELEASE:
	case DSM_RT_MW_ACQUIRE:
		/* After what waits already, and after the holds (resolved). */
		PUSH(rt, w->deferred, w->ndeferred, w->deferred_cap,
		     ((struct dsm_rt_mw_deferred){.op = m.op, .token = m.token}));
		run_deferred(rt);
		break;
	default:
		dsm_rt_msg_malformed(rt, src, DSM_RT_MSG_MW, len);
	}
}

/* One line of a GET's answer. */
static void got_line(struct dsm_rt *rt, int src, uint64_t line, uint64_t epoch, const char *data)
{
	struct dsm_rt_mw *w = &rt->mw;
	struct dsm_rt_mw_pending *p = pending_find(w, line);

	if (p == NULL || home_of(rt, line) != src) {
		/* Freed while on its way (range_del), or not ours. */
		DSM_LOG(DSM_LOG_DEBUG,
		        "dropped a multiple-writer line %llu from rank %d: not asked for",
		        (unsigned long long)line, src);
		return;
	}
	DSM_RT_COUNT(rt, bytes_received, line_size(rt));
	if (epoch != p->epoch)
		return; /* the answer to an earlier GET of it: the later one's is on its way */
	if (p->epoch != w->epoch) {
		/* Asked before the last acquire: it may miss writes released since. A thread
		 * waits for it: ask again; it was read ahead: forget it. */
		if (p->waited) {
			p->epoch = w->epoch;
			send_get(rt, &line, 1, src);
		} else {
			*state_of(w, line) = MW_INVALID;
			pending_drop(w, p);
		}
		return;
	}
	install(rt, line, state_of(w, line), data, p->write);
	dsm_rt_prof_event(rt, line, DSM_RT_PROF_RECV, src);
	if (p->waited)
		resolved(rt, line);
	pending_drop(w, p);
}

/* The home's answer to a GET. */
static void on_data(struct dsm_rt *rt, int src, const void *data, size_t len)
{
	struct dsm_rt_mw_data_view d;

	if (dsm_rt_decode_mw_data(data, len, line_size(rt), DSM_RT_MW_GET_MAX, &d) < 0) {
		dsm_rt_msg_malformed(rt, src, DSM_RT_MSG_MW_DATA, len);
		return;
	}
	for (uint32_t i = 0; i < d.n; i++)
		got_line(rt, src, dsm_rt_mw_data_line(&d, i), d.epoch, dsm_rt_mw_data_bytes(&d, i));
}

/* Another rank's release: its diffs merge into the home copies, and it hears when. */
static void on_diff(struct dsm_rt *rt, int src, const void *data, size_t len)
{
	struct dsm_rt_mw *w = &rt->mw;
	struct dsm_rt_mw_msg ack = {.op = DSM_RT_MW_ACK};
	struct dsm_rt_mw_diff_view d, lines;
	size_t ls = line_size(rt);
	const void *diff;
	uint64_t line;
	uint32_t dlen;
	int ret;

	if (src == rt->rank || dsm_rt_decode_mw_diff(data, len, ls, &d) < 0)
		goto bad;
	/* Every record is checked before the first merges: a bad message changes nothing. */
	lines = d;
	while (dsm_rt_mw_diff_next(&lines, &line, &diff, &dlen))
		if (!homed_here(rt, line))
			goto bad;
	while (dsm_rt_mw_diff_next(&d, &line, &diff, &dlen)) {
		/* This rank's own copy misses that rank's writes from now on (STALE). */
		uint8_t *st = state_of(w, line);

		dsm_rt_ckpt_before(rt, line, DSM_RT_CK_HOME); /* a snapshot's record first */
		if (st && is_master(rt, line, *st)) {
			/* It was the line: the home copy takes it, and its stores are tracked
			 * from now on (write-protected first, so none is in flight); with
			 * asynchronous tracking the home copy, as it is now, is its twin. */
			char *home = dsm_rt_home_line(rt, line);

			protect_run(rt, line, 1);
			memcpy(home, line_addr(rt, line), ls);
			if (w->async) {
				struct dsm_rt_mw_range *r = range_of(w, line);
				char *t = twin_get(rt);

				memcpy(t, home, ls);
				r->twin[line - r->first] = t;
			}
			*st |= MW_STALE;
			count(&w->held, 1);
		}
		if (dsm_coh_diff_apply(dsm_rt_home_line(rt, line), ls, diff, dlen) < 0)
			dsm_rt_fatal(rt, "a diff that decode.c checked does not apply");
		dsm_rt_prof_event(rt, line, DSM_RT_PROF_DIFF_IN, src);
		DSM_RT_COUNT(rt, diffs_merged, 1);
	}
	ret = dsm_rt_send(rt, src, DSM_RT_MSG_MW, &ack, sizeof(ack));
	if (ret < 0 && ret != DSM_ERR_PEER_DEAD)
		dsm_rt_fatal(rt, "acknowledging rank %d's diffs failed: %s", src, dsm_err_str(ret));
	return;
bad:
	dsm_rt_msg_malformed(rt, src, DSM_RT_MSG_MW_DIFF, len);
}

/* ---- snapshots (ckpt.c) ---------------------------------------------------------------- */

/*
 * At a checkpoint's TAKE, after every rank's release: the home copy of each line homed here
 * is the line, but for the master copies (is_master), which are the line themselves and
 * whose stores never fault. Their bytes go into the home copy, which the snapshot saves from
 * (ckpt.c) and which only a diff changes from now on (after dsm_rt_ckpt_before). The master
 * copy stays one: the home copy took nothing it lacks.
 */
uint64_t dsm_rt_mw_ckpt_take(struct dsm_rt *rt)
{
	struct dsm_rt_mw *w = &rt->mw;
	uint64_t n = 0;

	for (size_t i = 0; i < w->nr; i++) {
		const struct dsm_rt_mw_range *r = &w->r[i];

		for (uint64_t k = 0; k < r->n; k++) {
			uint64_t line = r->first + k;

			if (!is_master(rt, line, r->state[k]))
				continue;
			memcpy(dsm_rt_home_line(rt, line), line_addr(rt, line), line_size(rt));
			n++;
		}
	}
	return n;
}

/* ---- faults on the asynchronous userfaultfd ------------------------------------------ */

int dsm_rt_mw_drain(struct dsm_rt *rt)
{
	struct dsm_rt_mw *w = &rt->mw;
	int n = 0;

	run_deferred(rt);
	if (!w->async)
		return 0;
	for (; n < 32; n++) {
		struct dsm_rt_fault f;
		int64_t line;
		int home, ret = dsm_rt_region_read_fault(&w->region, &f);

		if (ret == -EAGAIN)
			break;
		if (ret < 0)
			dsm_rt_fatal(rt, "reading the multiple-writer userfaultfd failed: %s",
			             dsm_err_str(ret));
		line = dsm_coh_line_of(&rt->layout, f.addr);
		home = line < 0 ? -1 : home_of(rt, (uint64_t)line);
		if (home < 0 || !dsm_rt_mw_fault(rt, &f, (uint64_t)line, home))
			dsm_rt_fatal(rt,
			             "a thread accessed %#llx, multiple-writer memory that is not "
			             "allocated (freed)",
			             (unsigned long long)f.addr);
	}
	return n;
}

/* ---- a dead rank ------------------------------------------------------------------------ */

/* Drops the lines of @v[0, *n) that are LOST now, with what each one counted (cached: a copy
 * homed elsewhere, in held; with asynchronous tracking a twin of it, in unreleased). */
static size_t forget_lost(struct dsm_rt *rt, uint64_t *v, size_t *n)
{
	struct dsm_rt_mw *w = &rt->mw;
	size_t k = 0, gone;

	for (size_t i = 0; i < *n; i++)
		if ((*state_of(w, v[i]) & MW_STATE) != MW_LOST)
			v[k++] = v[i];
	gone = *n - k;
	*n = k;
	return gone;
}

void dsm_rt_mw_peer_dead(struct dsm_rt *rt, int dead)
{
	struct dsm_rt_mw *w = &rt->mw;
	size_t k = 0, gone;

	/*
	 * Its home copies were the merged lines: what survivors hold of them may miss writes
	 * released to it by others, so no copy can stand in for them, and every line it served
	 * is lost on every survivor (each poisons its own copies now, and the rest at their
	 * first fault). Its own unreleased writes to lines homed elsewhere are lost with it.
	 */
	for (size_t i = 0; i < w->nr; i++) {
		struct dsm_rt_mw_range *r = &w->r[i];

		for (uint64_t j = 0; j < r->n; j++) {
			uint8_t *st = &r->state[j], s = *st & MW_STATE;
			uint64_t line = r->first + j;

			if (s == MW_INVALID || s == MW_LOST ||
			    dsm_rt_death_lost_with(rt, line) != dead)
				continue;
			if (s == MW_PENDING) {
				struct dsm_rt_mw_pending *p = pending_find(w, line);
				bool waited = p && p->waited;

				if (p)
					pending_drop(w, p);
				lose(rt, line, st, dead);
				if (waited)
					dsm_rt_fault_end(rt, line);
				continue;
			}
			if (w->async) {
				twin_put(rt, r->twin[j]);
				r->twin[j] = NULL;
			}
			lose(rt, line, st, dead);
		}
	}
	gone = forget_lost(rt, w->cached, &w->ncached);
	count(&w->held, -(int64_t)gone);
	if (w->async)
		count(&w->unreleased, -(int64_t)gone);
	for (size_t i = 0; i < w->ndirty; i++) {
		if ((*state_of(w, w->dirty[i].line) & MW_STATE) == MW_LOST) {
			twin_put(rt, w->dirty[i].twin);
			count(&w->unreleased, -1);
		} else {
			w->dirty[k++] = w->dirty[i];
		}
	}
	w->ndirty = k;
	/* The releases waiting for its acknowledgements are done. */
	if (w->acks[dead]) {
		w->outstanding -= w->acks[dead];
		count(&w->unreleased, -(int64_t)w->acks[dead]);
		w->acks[dead] = 0;
		if (w->outstanding == 0)
			complete_waiting(rt);
	}
	run_deferred(rt);
}

/* ---- application threads --------------------------------------------------------------- */

int dsm_rt_mw_request(struct dsm_rt *rt, enum dsm_rt_mw_op op, uint64_t addr, uint64_t len)
{
	struct dsm_rt_req req = {.type = DSM_RT_MSG_MW,
	                         .target = rt->rank,
	                         .len = sizeof(req.u.mw),
	                         .answer = DSM_RT_MSG_REPLY};

	req.u.mw = (struct dsm_rt_mw_msg){.op = op, .addr = addr, .len = len};
	req.token = &req.u.mw.token;
	return dsm_rt_submit(rt, &req);
}

void dsm_rt_mw_release(struct dsm_rt *rt)
{
	struct dsm_rt_mw *w = &rt->mw;

	if (!atomic_load_explicit(&w->nranges, memory_order_acquire) ||
	    !atomic_load_explicit(&w->unreleased, memory_order_acquire))
		return;
	DSM_RT_COUNT(rt, releases, 1);
	dsm_rt_mw_request(rt, DSM_RT_MW_RELEASE, 0, 0);
}

void dsm_rt_mw_acquire(struct dsm_rt *rt)
{
	struct dsm_rt_mw *w = &rt->mw;

	if (!atomic_load_explicit(&w->nranges, memory_order_acquire) ||
	    (!atomic_load_explicit(&w->unreleased, memory_order_acquire) &&
	     !atomic_load_explicit(&w->held, memory_order_acquire)))
		return;
	DSM_RT_COUNT(rt, acquires, 1);
	dsm_rt_mw_request(rt, DSM_RT_MW_ACQUIRE, 0, 0);
}

DSM_EXPORT void dsm_release(void)
{
	struct dsm_rt *rt = dsm_rt_get("dsm_release");

	if (rt)
		dsm_rt_mw_release(rt);
}

DSM_EXPORT void dsm_acquire(void)
{
	struct dsm_rt *rt = dsm_rt_get("dsm_acquire");

	if (rt)
		dsm_rt_mw_acquire(rt);
}

/* ---- init ------------------------------------------------------------------------------ */

int dsm_rt_mw_init(struct dsm_rt *rt)
{
	struct dsm_rt_mw *w = &rt->mw;
	char why[160] = "";
	bool ok = dsm_uffd_wp_async_ok(rt->region.mode, why, sizeof(why));

	/* DSM_MW_TRACK: auto takes the asynchronous way where the kernel has it. */
	if (rt->cfg.mw_track == 2 && !ok) {
		DSM_LOG(DSM_LOG_ERROR, "DSM_MW_TRACK=async: %s; use twin or auto", why);
		return DSM_ERR_NO_UFFD;
	}
	w->async = rt->cfg.mw_track == 2 || (rt->cfg.mw_track == 0 && ok);
	w->rg = &rt->region;
	if (w->async) {
		int ret = dsm_rt_region_open_async(&w->region, &rt->region);

		if (ret < 0)
			return ret;
		w->rg = &w->region;
		w->scan = calloc(SCAN_RUNS, sizeof(*w->scan));
		if (w->scan == NULL)
			return -ENOMEM;
		w->take = mmap(NULL, line_size(rt), PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (w->take == MAP_FAILED) {
			w->take = NULL;
			return -ENOMEM;
		}
		ret = dsm_rt_region_register(&w->region, w->take, line_size(rt));
		if (ret < 0)
			return ret;
	}
	DSM_LOG(DSM_LOG_DEBUG, "multiple-writer memory: writes found by %s",
	        w->async ? "PAGEMAP_SCAN (asynchronous write-protect)" : "twins at write faults");
	w->msg_cap = dsm_rt_mw_msg_max(line_size(rt));
	w->scratch = malloc(w->msg_cap);
	w->acks = calloc((size_t)rt->nranks, sizeof(*w->acks));
	if (w->scratch == NULL || w->acks == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < DSM_RT_MW_OUTS; i++) {
		w->out[i].home = -1;
		w->out[i].len = sizeof(struct dsm_rt_mw_diff);
		w->out[i].buf = malloc(w->msg_cap);
		if (w->out[i].buf == NULL)
			return -ENOMEM;
	}
	dsm_rt_msg_on(rt, DSM_RT_MSG_MW, sizeof(struct dsm_rt_mw_msg), on_mw);
	dsm_rt_msg_on(rt, DSM_RT_MSG_MW_DATA, 0, on_data);
	dsm_rt_msg_on(rt, DSM_RT_MSG_MW_GET, 0, on_get);
	dsm_rt_msg_on(rt, DSM_RT_MSG_MW_DIFF, 0, on_diff);
	return 0;
}

void dsm_rt_mw_fini(struct dsm_rt *rt)
{
	struct dsm_rt_mw *w = &rt->mw;

	for (size_t i = 0; i < w->nr; i++) {
		for (uint64_t k = 0; w->r[i].twin && k < w->r[i].n; k++)
			free(w->r[i].twin[k]);
		free(w->r[i].state);
		free(w->r[i].twin);
	}
	for (size_t i = 0; i < w->ndirty; i++)
		free(w->dirty[i].twin);
	for (size_t i = 0; i < w->ntwins; i++)
		free(w->twins[i]);
	for (unsigned i = 0; i < DSM_RT_MW_OUTS; i++)
		free(w->out[i].buf);
	free(w->r);
	free(w->cached);
	free(w->drop);
	free(w->dirty);
	free(w->pending);
	free(w->waiting);
	free(w->deferred);
	free(w->twins);
	free(w->scratch);
	free(w->acks);
	free(w->scan);
	dsm_rt_region_close(&w->region);
	if (w->take)
		munmap(w->take, (size_t)1 << rt->layout.line_shift);
	memset(w, 0, sizeof(*w));
	w->region.uffd = -1;
	w->region.pagemap = -1;
}
