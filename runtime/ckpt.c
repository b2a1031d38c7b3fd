/* SPDX-License-Identifier: MIT */
/*
 * Live checkpoints.
 *
 * Taking the snapshot. The thread in dsm_checkpoint walks its rank's loop through steps,
 * with a collective after each, so that every rank has finished a step before any starts
 * the next:
 *   FREEZE  the loop starts no request of its own from now on: faults wait in ckpt.parked,
 *           read-ahead, hints and evictions pause. Homes go on serving others.
 *   DRAIN   answered once every request this rank had sent is granted. After its
 *           collective no request is outstanding anywhere, so no transaction can start.
 *   TAKE    answered once nothing is in flight here (no transaction at the home side, no
 *           request, RDMA or eviction at the cache side). Transactions only end after
 *           DRAIN, so once every rank has answered the protocol is at rest, and every
 *           line's value is in one place: the mapping of the rank that holds it M or E, or
 *           else the home segment of its home. Each rank write-protects, by ranges, what
 *           it may hold M, sets up its tables, and answers. Which lines it saves is
 *           decided afterwards, line by line ("which lines are this rank's", below).
 *   THAW    after TAKE's collective: the parked faults go on, the writer thread starts.
 * The pause is these four collectives and the write-protects; the data is written after.
 *
 * Saving a line before it changes. A line this rank saves keeps its snapshot value until
 * this rank changes it, and the loop changes it in few places, each of which saves the line
 * first: a write fault on a line held here (write-protected at TAKE, or E: read-only
 * anyway), a zap of the mapping (an invalidation, a forward, an eviction) and a store into
 * the home segment (a write-back). Whoever takes a line's slot from TODO to CLAIMED saves
 * it, the writer thread or the loop; the loop waits for the writer's copy of a line it
 * claimed (one memcpy), never for its disk.
 */
#include "runtime/ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/ckpt.h"
#include "common/error.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/time.h"
#include "common/vec.h"
#include "runtime/bootstrap.h"
#include "runtime/coll.h"
#include "runtime/fatal.h"
#include "runtime/fault.h"
#include "runtime/loop.h"
#include "runtime/msg.h"
#include "runtime/mw.h"
#include "runtime/rdma.h"
#include "runtime/region.h"

enum ckpt_op {
	OP_FREEZE = 1,
	OP_DRAIN,
	OP_TAKE,
	OP_THAW,
	OP_FINISH, /* the writer is done: the loop frees the snapshot's tables */
};

/* The collectives between the steps (their first argument). */
enum ckpt_step {
	STEP_OPENED = 1,
	STEP_FROZEN,
	STEP_DRAINED,
	STEP_TAKEN,
	STEP_WRITTEN,
	STEP_DURABLE,
};

static size_t line_size(const struct dsm_rt *rt)
{
	return (size_t)1 << rt->layout.line_shift;
}

static char *line_addr(const struct dsm_rt *rt, uint64_t line)
{
	return (char *)dsm_coh_line_addr(&rt->layout, line);
}

/* ---- which lines are this rank's to save ------------------------------------------------- */

/*
 * The snapshot's positions: the lines of the allocations this rank knows (the collective
 * ones, its own dsm_alloc memory) in address order, then the lines of other ranks' dsm_alloc
 * memory it held M or E at TAKE. Each position is decided once, from the engine's state of
 * the line, which is the state at TAKE until the engine handles an event for that line: so
 * the loop decides a line before any event for it (dsm_rt_ckpt_event) and the rest in the
 * background, a chunk per turn. A line this rank saves gets the next record of its file.
 */

/* The position of @line, or -1 if the snapshot does not cover it. */
static int64_t pos_of(const struct dsm_rt_ckpt *ck, uint64_t line)
{
	size_t lo = 0, hi = ck->nranges;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ck->ranges[mid].span.first_line <= line)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo > 0) {
		const struct dsm_rt_ck_range *r = &ck->ranges[lo - 1];

		if (line < r->span.first_line + r->span.nlines)
			return (int64_t)(r->pos + line - r->span.first_line);
	}
	lo = 0;
	hi = ck->nextra;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ck->extra[mid] < line)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < ck->nextra && ck->extra[lo] == line ? (int64_t)(ck->extra_pos + lo) : -1;
}

/* The line at position @p and its home. */
static uint64_t line_at(const struct dsm_rt *rt, uint64_t p, int *home_p)
{
	const struct dsm_rt_ckpt *ck = &rt->ckpt;
	size_t lo = 0, hi = ck->nranges;

	if (p >= ck->extra_pos) {
		uint64_t line = ck->extra[p - ck->extra_pos];

		*home_p = -1; /* another rank's dsm_alloc memory */
		return line;
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ck->ranges[mid].pos <= p)
			lo = mid + 1;
		else
			hi = mid;
	}
	const struct dsm_rt_ck_range *r = &ck->ranges[lo - 1];
	uint64_t line = r->span.first_line + (p - r->pos);

	*home_p = dsm_coh_home_of(&r->span, (unsigned)rt->nranks, line);
	return line;
}

/* Decides position @p from the engine's state of its line (the state at TAKE). */
static void decide(struct dsm_rt *rt, uint64_t p)
{
	struct dsm_rt_ckpt *ck = &rt->ckpt;
	dsm_coh_line_info_t li;
	dsm_coh_dir_info_t di;
	int home;
	uint64_t line = line_at(rt, p, &home), r;
	uint8_t d = DSM_RT_CK_SKIP;

	dsm_coh_line_info(rt->node, line, &li);
	if (li.state == DSM_COH_M || li.state == DSM_COH_E) {
		d = DSM_RT_CK_MAP;
	} else if (home == rt->rank) {
		dsm_coh_dir_info(rt->node, line, &di);
		if (di.state != DSM_COH_DIR_M && di.state != DSM_COH_DIR_LOST)
			d = DSM_RT_CK_HOME;
	}
	if (d != DSM_RT_CK_SKIP) {
		r = atomic_load_explicit(&ck->nrec, memory_order_relaxed);
		ck->rec[p] = (uint32_t)r;
		ck->rline[r] = line;
		ck->src[r] = d;
		/* The writer reads nrec with acquire: the record is complete before it counts. */
		atomic_store_explicit(&ck->nrec, r + 1, memory_order_release);
	}
	ck->dec[p] = d;
}

/* Decides @line if the snapshot covers it and it is undecided; its position, or -1. */
static int64_t decide_line(struct dsm_rt *rt, uint64_t line)
{
	struct dsm_rt_ckpt *ck = &rt->ckpt;
	int64_t p = pos_of(ck, line);

	if (p >= 0 && ck->dec[p] == DSM_RT_CK_UNDECIDED)
		decide(rt, (uint64_t)p);
	return p;
}

/* ---- saving lines ------------------------------------------------------------------------- */

static const char *source(struct dsm_rt *rt, uint64_t r)
{
	struct dsm_rt_ckpt *ck = &rt->ckpt;

	return ck->src[r] == DSM_RT_CK_HOME ? dsm_rt_home_line(rt, ck->rline[r])
	                                    : line_addr(rt, ck->rline[r]);
}

static bool all_zero(const char *p, size_t len)
{
	uint64_t w = 0, acc = 0;

	for (size_t i = 0; i < len; i += 8) {
		memcpy(&w, p + i, 8);
		acc |= w;
	}
	return acc == 0;
}

static void note_error(struct dsm_rt_ckpt *ck, int err)
{
	int none = 0;

	atomic_compare_exchange_strong(&ck->err, &none, err);
}

/* Record @r's data: its sum, and the bytes unless all zero (the file has a hole there). */
static void put_line(struct dsm_rt *rt, uint64_t r, const char *data)
{
	struct dsm_rt_ckpt *ck = &rt->ckpt;
	size_t ls = line_size(rt), done = 0;
	uint64_t off = ck->data_off + r * ls;

	ck->sums[r] = dsm_ckpt_line_sum(data, ls, ck->rline[r]);
	if (all_zero(data, ls))
		return;
	while (done < ls) {
		ssize_t n = pwrite(ck->fd, data + done, ls - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			note_error(ck, n < 0 ? -errno : -EIO);
			return;
		}
		done += (size_t)n;
	}
}

/* The loop: saves record @r now, unless the writer has (or is copying it: then waits). */
static void loop_save(struct dsm_rt *rt, uint64_t r)
{
	struct dsm_rt_ckpt *ck = &rt->ckpt;

	for (;;) {
		uint8_t e = DSM_RT_CK_TODO;

		if (atomic_compare_exchange_strong(&ck->st[r], &e, DSM_RT_CK_CLAIMED))
			break;
		if (e == DSM_RT_CK_DONE)
			return;
		sched_yield(); /* the writer copies it out: one memcpy */
	}
	put_line(rt, r, source(rt, r));
	atomic_store_explicit(&ck->st[r], DSM_RT_CK_DONE, memory_order_release);
	atomic_fetch_add_explicit(&ck->saved_by_loop, 1, memory_order_relaxed);
}

void dsm_rt_ckpt_event(struct dsm_rt *rt, const dsm_coh_event_t *ev)
{
	struct dsm_rt_ckpt *ck = &rt->ckpt;

	if (!ck->active)
		return;
	switch (ev->type) {
	case DSM_COH_EV_MSG:
		decide_line(rt, ev->msg.line);
		break;
	case DSM_COH_EV_PEER_DEAD:
		/* Its copies are adopted or lost: the snapshot cannot say which it held. */
		note_error(ck, DSM_ERR_PEER_DEAD);
		break;
	default:
		decide_line(rt, ev->line);
	}
}

void dsm_rt_ckpt_before(struct dsm_rt *rt, uint64_t line, enum dsm_rt_ck_dec src)
{
	struct dsm_rt_ckpt *ck = &rt->ckpt;
	int64_t p;

	if (!ck->active)
		return;
	p = decide_line(rt, line);
	if (p >= 0 && ck->dec[p] == src)
		loop_save(rt, ck->rec[p]);
}

/*
 * A write to @line (held M, just saved) will likely be followed by writes to the lines after
 * it: those held M whose records wait are saved now too, up to SAVE_AHEAD, so that one
 * write-protect fault and one lift let a sweep through them. Saving early costs nothing the
 * snapshot would not spend anyway. Returns the lines from @line on that may be let go.
 */
#define SAVE_AHEAD 16

static uint64_t save_ahead(struct dsm_rt *rt, uint64_t line)
{
	struct dsm_rt_ckpt *ck = &rt->ckpt;
	uint64_t n = 1;

	for (; n < SAVE_AHEAD; n++) {
		dsm_coh_line_info_t li;
		int64_t p = decide_line(rt, line + n);

		if (p < 0 || ck->dec[p] != DSM_RT_CK_MAP)
			break;
		dsm_coh_line_info(rt->node, line + n, &li);
		if (li.state != DSM_COH_M || li.held || li.deferred)
			break;
		loop_save(rt, ck->rec[p]);
	}
	return n;
}

bool dsm_rt_ckpt_fault(struct dsm_rt *rt, const struct dsm_rt_fault *f, uint64_t line)
{
	struct dsm_rt_ckpt *ck = &rt->ckpt;
	dsm_coh_line_info_t info;
	uint64_t n;

	if (ck->frozen) {
		if (DSM_VEC_RESERVE(ck->parked, ck->parked_cap, ck->nparked + 1) < 0)
			dsm_rt_fatal(rt, "out of memory parking a fault during a checkpoint");
		ck->parked[ck->nparked++] = *f;
		return true;
	}
	if (!f->write || ck->seq == 0)
		return false;
	if (ck->active) {
		int64_t p = decide_line(rt, line);

		if (p >= 0 && ck->dec[p] == DSM_RT_CK_MAP)
			loop_save(rt, ck->rec[p]);
	}
	/* A line held M is write-protected by a checkpoint only (TAKE protects whole ranges):
	 * the write may go. E and S: the engine takes the write as ever. */
	if (!f->wp)
		return false;
	dsm_coh_line_info(rt->node, line, &info);
	if (info.state != DSM_COH_M)
		return false;
	n = ck->active ? save_ahead(rt, line) : 1;
	if (dsm_rt_region_protect(&rt->region, (uint64_t)(uintptr_t)line_addr(rt, line),
	                          n * line_size(rt), false) < 0)
		dsm_rt_fatal(rt, "lifting a checkpoint's write-protect failed");
	return true;
}

/* ---- TAKE ---------------------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void on_span(void *arg, const dsm_coh_span_t *s)
{
	struct dsm_rt_ckpt *ck = arg;

	if (ck->nranges == ck->ranges_cap)
		return; /* counted first: cannot happen */
	ck->ranges[ck->nranges++] = (struct dsm_rt_ck_range){.span = *s};
}

static void count_span(void *arg, const dsm_coh_span_t *s)
{
	(void)s;
	((struct dsm_rt_ckpt *)arg)->ranges_cap++;
}

/* Write-protects [first, first + n) lines: those held M fault at their next write. With
 * @scan, only the pages writable now (the others are protected already). */
static void protect_run(struct dsm_rt *rt, uint64_t first, uint64_t n, bool scan)
{
	uint64_t addr = (uint64_t)(uintptr_t)line_addr(rt, first);
	size_t len = n * line_size(rt);

	if (n && (scan ? dsm_rt_region_protect_written(&rt->region, addr, len)
	               : dsm_rt_region_protect(&rt->region, addr, len, true)) < 0)
		dsm_rt_fatal(rt, "write-protecting lines for a checkpoint failed");
}

/* The collective region below @mark but its multiple-writer ranges: their stores are not
 * the snapshot's business (their home copies are saved), and a master copy written after a
 * write-protect would fault for ever (mw.c lets its stores go without one). */
static void protect_collective(struct dsm_rt *rt, uint64_t mark, bool scan)
{
	const struct dsm_rt_mw *w = &rt->mw;
	uint64_t at = 0;

	for (size_t i = 0; i < w->nr && w->r[i].first < mark; i++) {
		if (w->r[i].first > at)
			protect_run(rt, at, w->r[i].first - at, scan);
		at = w->r[i].first + w->r[i].n;
	}
	if (at < mark)
		protect_run(rt, at, mark - at, scan);
}

/*
 * Whether TAKE write-protects only what is writable now (a scan of the page tables first)
 * or whole ranges. Protecting a page costs the same whether it was protected or not, and a
 * scan reads every entry for a fraction of that (1 GiB of 4 KiB pages here: 1-5 ms against
 * 19-29 ms), so the scan pays when few pages were made writable since the last TAKE (lines
 * written since the last snapshot, installed M, upgraded): the region counts the bytes,
 * against the @lines TAKE protects.
 */
static bool protect_scan(struct dsm_rt *rt, uint64_t lines)
{
	uint64_t opened = atomic_exchange_explicit(&rt->region.opened, 0, memory_order_relaxed);
	uint64_t total = lines << rt->layout.line_shift;

	return opened < total / 4;
}

static void *zalloc(size_t n, size_t size)
{
	return calloc(n ? n : 1, size); /* large: fresh zero pages, touched as used */
}

/* At rest: the positions, their tables, and the write-protect of every line held here. */
static int take(struct dsm_rt *rt)
{
	struct dsm_rt_ckpt *ck = &rt->ckpt;
	const struct dsm_rt_alloc *a = &rt->alloc;
	uint64_t total = 0, local = 0, mark = dsm_rt_alloc_coll_mark(&rt->alloc);
	uint64_t lo = a->coll_lines + (uint64_t)rt->rank * a->slice_lines, hi = lo + a->slice_lines;

	ck->ranges_cap = 0;
	dsm_rt_alloc_each(&rt->alloc, count_span, ck);
	ck->ranges = zalloc(ck->ranges_cap, sizeof(*ck->ranges));
	if (ck->ranges == NULL)
		return -ENOMEM;
	ck->nranges = 0;
	dsm_rt_alloc_each(&rt->alloc, on_span, ck);
	for (size_t i = 0; i < ck->nranges; i++) {
		ck->ranges[i].pos = total;
		total += ck->ranges[i].span.nlines;
		if (ck->ranges[i].span.first_line >= a->coll_lines)
			local += ck->ranges[i].span.nlines; /* this rank's dsm_alloc memory */
	}
	/* Other ranks' dsm_alloc lines held here: the cache lists every copy homed elsewhere. */
	ck->extra = zalloc(rt->cache.n, sizeof(*ck->extra));
	if (ck->extra == NULL)
		return -ENOMEM;
	ck->nextra = 0;
	for (size_t i = 0; i < rt->cache.n; i++) {
		uint64_t line = rt->cache.v[i].line;
		dsm_coh_line_info_t li;

		if (line < a->coll_lines || (line >= lo && line < hi))
			continue;
		dsm_coh_line_info(rt->node, line, &li);
		if (li.state == DSM_COH_M || li.state == DSM_COH_E)
			ck->extra[ck->nextra++] = line;
	}
	qsort(ck->extra, ck->nextra, sizeof(uint64_t), cmp_u64);
	ck->extra_pos = total;
	total += ck->nextra;
	ck->npos = total;
	ck->dec = zalloc(total, 1);
	ck->rec = zalloc(total, sizeof(*ck->rec));
	ck->rline = zalloc(total, sizeof(*ck->rline));
	ck->sums = zalloc(total, sizeof(*ck->sums));
	ck->src = zalloc(total, 1);
	ck->st = zalloc(total, 1);
	if (!ck->dec || !ck->rec || !ck->rline || !ck->sums || !ck->src || !ck->st ||
	    dsm_rt_alloc_export(&rt->alloc, &ck->alloc_words, &ck->alloc_n) < 0)
		return -ENOMEM;
	ck->cursor = 0;
	atomic_store(&ck->nrec, 0);
	atomic_store(&ck->decided_all, false);
	/* Stores to lines held M must fault from now on (E and S are read-only already): the
	 * collective region handed out so far, this rank's dsm_alloc memory, the others' held
	 * here. Pages not there cost nothing. Multiple-writer memory is saved from its home
	 * copies, which take its master copies now (mw.c). */
	ck->scanned = protect_scan(rt, mark + local);
	protect_collective(rt, mark, ck->scanned);
	ck->mw_masters = dsm_rt_mw_ckpt_take(rt);
	for (size_t i = 0; i < ck->nranges; i++)
		if (ck->ranges[i].span.first_line >= a->coll_lines)
			protect_run(rt, ck->ranges[i].span.first_line, ck->ranges[i].span.nlines,
			            ck->scanned);
	for (size_t i = 0; i < ck->nextra; i++)
		protect_run(rt, ck->extra[i], 1, false);
	ck->data_off = (DSM_CKPT_HDR_SIZE + ck->alloc_n * 8 + 4095) & ~(uint64_t)4095;
	ck->data_off = (ck->data_off + line_size(rt) - 1) & ~((uint64_t)line_size(rt) - 1);
	atomic_store(&ck->saved_by_loop, 0);
	ck->active = true;
	return 0;
}

static void free_tables(struct dsm_rt_ckpt *ck)
{
	free(ck->ranges);
	free(ck->extra);
	free(ck->dec);
	free(ck->rec);
	free(ck->rline);
	free(ck->sums);
	free(ck->src);
	free((void *)ck->st);
	free(ck->alloc_words);
	ck->ranges = NULL;
	ck->extra = NULL;
	ck->dec = NULL;
	ck->rec = NULL;
	ck->rline = NULL;
	ck->sums = NULL;
	ck->src = NULL;
	ck->st = NULL;
	ck->alloc_words = NULL;
	ck->nranges = ck->nextra = ck->npos = ck->alloc_n = 0;
}

/* ---- the loop's side of the steps ---------------------------------------------------------- */

/* The snapshot is written (or abandoned): its tables go. Lines still write-protected for it
 * are let go at their next write (dsm_rt_ckpt_fault). */
static void finish(struct dsm_rt *rt)
{
	rt->ckpt.active = false;
	free_tables(&rt->ckpt);
}

/* DRAIN: nothing of this rank's cache side in flight. TAKE: its home side at rest too. The
 * engine keeps both counts (O(1)). */
static bool at_rest(struct dsm_rt *rt, bool take)
{
	size_t cache, home;

	dsm_coh_node_in_flight(rt->node, &cache, &home);
	return cache == 0 && (!take || home == 0);
}

/* Decides the next positions in the background (the writer follows). */
#define DECIDE_CHUNK 1024

int dsm_rt_ckpt_poll(struct dsm_rt *rt)
{
	struct dsm_rt_ckpt *ck = &rt->ckpt;
	int op = ck->waiting, status = 0;

	/* After THAW: the pause does not wait for it. */
	if (ck->active && !ck->frozen &&
	    !atomic_load_explicit(&ck->decided_all, memory_order_relaxed)) {
		uint64_t end =
		        ck->cursor + DECIDE_CHUNK < ck->npos ? ck->cursor + DECIDE_CHUNK : ck->npos;

		for (; ck->cursor < end; ck->cursor++)
			if (ck->dec[ck->cursor] == DSM_RT_CK_UNDECIDED)
				decide(rt, ck->cursor);
		if (ck->cursor == ck->npos)
			atomic_store_explicit(&ck->decided_all, true, memory_order_release);
		return 1;
	}
	if (op == 0 || !at_rest(rt, op == OP_TAKE))
		return 0;
	if (op == OP_TAKE)
		status = take(rt);
	ck->waiting = 0;
	dsm_rt_reply(rt, rt->rank, ck->token, status);
	return 1;
}

static void thaw(struct dsm_rt *rt)
{
	struct dsm_rt_ckpt *ck = &rt->ckpt;
	size_t n = ck->nparked;

	ck->frozen = false;
	ck->nparked = 0;
	for (size_t i = 0; i < n; i++)
		dsm_rt_fault_handle(rt, &ck->parked[i]);
}

static void on_ckpt(struct dsm_rt *rt, int src, const void *data, size_t len)
{
	struct dsm_rt_ckpt *ck = &rt->ckpt;
	struct dsm_rt_ckpt_msg m;

	if (src != rt->rank || len != sizeof(m)) {
		dsm_rt_msg_malformed(rt, src, DSM_RT_MSG_CKPT, len);
		return;
	}
	memcpy(&m, data, sizeof(m));
	switch (m.op) {
	case OP_FREEZE:
		ck->frozen = true;
		break;
	case OP_DRAIN:
	case OP_TAKE:
		ck->waiting = (int)m.op;
		ck->token = m.token;
		dsm_rt_ckpt_poll(rt);
		return;
	case OP_THAW:
		thaw(rt);
		break;
	case OP_FINISH:
		finish(rt);
		break;
	default:
		dsm_rt_msg_malformed(rt, src, DSM_RT_MSG_CKPT, len);
		return;
	}
	dsm_rt_reply(rt, rt->rank, m.token, 0);
}

/* An application thread: step @op of this rank's loop, answered when done. */
static int step(struct dsm_rt *rt, enum ckpt_op op)
{
	struct dsm_rt_req req = {.type = DSM_RT_MSG_CKPT,
	                         .target = rt->rank,
	                         .len = sizeof(req.u.ckpt),
	                         .answer = DSM_RT_MSG_REPLY};

	req.u.ckpt = (struct dsm_rt_ckpt_msg){.op = op};
	req.token = &req.u.ckpt.token;
	return dsm_rt_submit(rt, &req);
}

/* Every rank's @status agreed: 0 if all are 0; else this rank's error, or -EIO for a rank
 * that succeeded while another failed (which said why). */
static int agree(struct dsm_rt *rt, enum ckpt_step s, int status)
{
	int ret = dsm_rt_collective(rt, DSM_RT_COLL_CKPT_STEP, s, (uint64_t)(uint32_t)status);

	if (status < 0)
		return status;
	return ret == DSM_ERR_MISMATCH ? -EIO : ret;
}

/* ---- the writer thread -------------------------------------------------------------------- */

static int write_all(int fd, const void *p, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)p + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n;
	}
	return 0;
}

/* DSM_CKPT_RATE: sleeps until @bytes written since @t0 keep to the rate. */
static void throttle(const struct dsm_rt *rt, uint64_t t0, uint64_t bytes)
{
	uint64_t rate = rt->cfg.ckpt_rate, due, now = dsm_now_ns();
	struct timespec ts;

	if (rate == 0)
		return;
	due = t0 + (uint64_t)((double)bytes * 1e9 / (double)rate);
	if (due <= now)
		return;
	ts.tv_sec = (time_t)((due - now) / 1000000000ull);
	ts.tv_nsec = (long)((due - now) % 1000000000ull);
	nanosleep(&ts, NULL);
}

/* The file gets its name (replacing the last snapshot's), and the directory is synced. */
static int rename_durable(struct dsm_rt *rt)
{
	char path[DSM_CKPT_PATH_MAX], tmp[DSM_CKPT_PATH_MAX + 8];

	dsm_ckpt_file_path(path, sizeof(path), rt->ckpt.dir, rt->rank);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (rename(tmp, path) < 0)
		return -errno;
	return dsm_ckpt_fsync_dir(rt->ckpt.mine);
}

/* The next record the loop has decided, or UINT64_MAX once every position is decided and
 * @r is past the last. Sleeps briefly while the loop is behind. */
static uint64_t next_record(struct dsm_rt_ckpt *ck, uint64_t r)
{
	struct timespec nap = {0, 50000};

	for (;;) {
		bool all = atomic_load_explicit(&ck->decided_all, memory_order_acquire);

		if (r < atomic_load_explicit(&ck->nrec, memory_order_acquire))
			return r;
		if (all)
			return UINT64_MAX;
		nanosleep(&nap, NULL);
	}
}

/* The writer's run of records [first, first + n), copied into @buf: one write. */
static void put_run(struct dsm_rt *rt, uint64_t first, uint64_t n, const char *buf)
{
	struct dsm_rt_ckpt *ck = &rt->ckpt;
	size_t ls = line_size(rt);
	int ret;

	if (n == 0)
		return;
	for (uint64_t i = 0; i < n; i++)
		ck->sums[first + i] = dsm_ckpt_line_sum(buf + i * ls, ls, ck->rline[first + i]);
	ret = write_all(ck->fd, buf, n * ls, ck->data_off + first * ls);
	if (ret < 0)
		note_error(ck, ret);
}

#define WRITE_RUN ((size_t)1 << 20) /* bytes the writer gathers for one write */

static void *writer(void *arg)
{
	struct dsm_rt *rt = arg;
	struct dsm_rt_ckpt *ck = &rt->ckpt;
	size_t ls = line_size(rt), run_bytes = WRITE_RUN, cap;
	struct dsm_ckpt_hdr h = {0};
	char *buf = aligned_alloc(4096, WRITE_RUN > ls ? WRITE_RUN : ls);
	uint64_t t0 = dsm_now_ns(), n = 0, run = 0, nrun = 0;
	int ret;

	/* Under DSM_CKPT_RATE a run is 10 ms of the rate: the writer keeps to it closely. */
	if (rt->cfg.ckpt_rate && rt->cfg.ckpt_rate / 100 < run_bytes)
		run_bytes = (size_t)(rt->cfg.ckpt_rate / 100);
	cap = run_bytes > ls ? run_bytes / ls : 1;
	if (buf == NULL)
		note_error(ck, -ENOMEM);
	/* Records that follow each other go out together; one the loop saved ends a run. */
	for (uint64_t r = 0; (r = next_record(ck, r)) != UINT64_MAX; r++, n++) {
		uint8_t e = DSM_RT_CK_TODO;

		if (buf == NULL ||
		    !atomic_compare_exchange_strong(&ck->st[r], &e, DSM_RT_CK_CLAIMED)) {
			put_run(rt, run, nrun, buf);
			nrun = 0;
			continue;
		}
		if (nrun == 0)
			run = r;
		memcpy(buf + nrun * ls, source(rt, r), ls);
		atomic_store_explicit(&ck->st[r], DSM_RT_CK_DONE, memory_order_release);
		if (++nrun == cap || atomic_load(&ck->nrec) == r + 1) {
			put_run(rt, run, nrun, buf);
			nrun = 0;
			throttle(rt, t0, (r + 1) * ls);
		}
	}
	put_run(rt, run, nrun, buf);
	/* The loop may still be saving one it claimed. */
	for (uint64_t r = 0; r < n; r++)
		while (atomic_load_explicit(&ck->st[r], memory_order_acquire) != DSM_RT_CK_DONE)
			sched_yield();
	free(buf);
	memcpy(h.magic, DSM_CKPT_MAGIC, 8);
	h.version = DSM_CKPT_VERSION;
	h.rank = (uint32_t)rt->rank;
	h.nranks = (uint32_t)rt->nranks;
	h.id = ck->id;
	h.seq = ck->seq;
	h.line_size = ls;
	h.heap_base = (uint64_t)(uintptr_t)rt->heap.base;
	h.heap_size = rt->heap.size;
	h.root = ck->manifest_root;
	h.nlines = n;
	h.alloc_off = DSM_CKPT_HDR_SIZE;
	h.alloc_len = ck->alloc_n * 8;
	h.data_off = ck->data_off;
	h.index_off = h.data_off + n * ls;
	h.sums_off = h.index_off + n * 8;
	h.file_size = h.sums_off + n * 8;
	h.sum = dsm_ckpt_sum(0, &h, sizeof(h));
	h.sum = dsm_ckpt_sum(h.sum, ck->alloc_words, h.alloc_len);
	h.sum = dsm_ckpt_sum(h.sum, ck->rline, n * 8);
	h.sum = dsm_ckpt_sum(h.sum, ck->sums, n * 8);
	ret = ftruncate(ck->fd, (off_t)h.file_size) < 0 ? -errno : 0;
	if (ret == 0)
		ret = write_all(ck->fd, ck->alloc_words, h.alloc_len, h.alloc_off);
	if (ret == 0)
		ret = write_all(ck->fd, ck->rline, n * 8, h.index_off);
	if (ret == 0)
		ret = write_all(ck->fd, ck->sums, n * 8, h.sums_off);
	if (ret == 0)
		ret = write_all(ck->fd, &h, sizeof(h), 0);
	if (ret == 0 && fsync(ck->fd) < 0)
		ret = -errno;
	close(ck->fd);
	ck->fd = -1;
	if (ret == 0)
		ret = rename_durable(rt);
	if (ret < 0)
		note_error(ck, ret);
	DSM_RT_COUNT(rt, ckpt_copied, atomic_load(&ck->saved_by_loop));
	atomic_fetch_add(&ck->lines, n);
	atomic_store(&ck->write_ns, dsm_now_ns() - t0);
	return NULL;
}

/* ---- the API ------------------------------------------------------------------------------ */

/* mkdir -p */
static int mkdirs(const char *path)
{
	char p[DSM_CKPT_PATH_MAX];

	snprintf(p, sizeof(p), "%s", path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	return mkdir(p, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

/* Creates this rank's directory (and its parents) and file; the old manifest goes first. */
static int open_files(struct dsm_rt *rt)
{
	struct dsm_rt_ckpt *ck = &rt->ckpt;
	char path[DSM_CKPT_PATH_MAX];
	int ret;

	ret = dsm_ckpt_path(ck->mine, sizeof(ck->mine), ck->dir, rt->rank, NULL);
	if (ret == 0)
		ret = dsm_ckpt_path(path, sizeof(path), ck->dir, rt->rank, DSM_CKPT_MANIFEST);
	if (ret < 0) {
		DSM_LOG(DSM_LOG_ERROR, "dsm_checkpoint(%.64s...): the path is too long", ck->dir);
		return ret;
	}
	ret = mkdirs(ck->mine);
	if (ret < 0) {
		DSM_LOG(DSM_LOG_ERROR, "dsm_checkpoint: cannot create %s: %s", ck->mine,
		        strerror(-ret));
		return ret;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		ret = -errno;
		DSM_LOG(DSM_LOG_ERROR, "dsm_checkpoint: cannot remove the old %s: %s", path,
		        strerror(errno));
		return ret;
	}
	/* Written as .tmp and renamed over the old file once durable, by the writer thread:
	 * truncating a file of GiBs here would cost the pause its time. */
	dsm_ckpt_file_path(path, sizeof(path), ck->dir, rt->rank);
	strcat(path, ".tmp");
	ck->fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (ck->fd < 0) {
		ret = -errno;
		DSM_LOG(DSM_LOG_ERROR, "dsm_checkpoint: cannot create %s: %s", path,
		        strerror(errno));
		return ret;
	}
	return 0;
}

/* Waits for the pending snapshot, then writes the manifest(s). Under ck->lock. */
static int wait_locked(struct dsm_rt *rt)
{
	struct dsm_rt_ckpt *ck = &rt->ckpt;
	struct dsm_ckpt_manifest m;
	int ret, mine;

	if (!ck->pending)
		return 0;
	if (ck->writer_running)
		pthread_join(ck->writer, NULL);
	ck->pending = ck->writer_running = false;
	mine = atomic_load(&ck->err);
	if (mine < 0)
		DSM_LOG(DSM_LOG_ERROR, "dsm_checkpoint: writing the snapshot to %s failed: %s",
		        ck->mine, dsm_err_str(mine));
	step(rt, OP_FINISH);
	ret = agree(rt, STEP_WRITTEN, mine);
	if (ret < 0)
		return ret;
	/* Every file is durable: the manifest says so, in each directory there is. */
	mine = 0;
	if (rt->rank == 0 || strstr(ck->dir, "%r")) {
		m = (struct dsm_ckpt_manifest){.id = ck->id,
		                               .seq = ck->seq,
		                               .nranks = (uint32_t)rt->nranks,
		                               .line_size = line_size(rt),
		                               .heap_base = (uint64_t)(uintptr_t)rt->heap.base,
		                               .heap_size = rt->heap.size,
		                               .root = ck->manifest_root};
		mine = dsm_ckpt_manifest_write(ck->mine, &m);
		if (mine < 0)
			DSM_LOG(DSM_LOG_ERROR, "dsm_checkpoint: writing %s/%s failed: %s", ck->mine,
			        DSM_CKPT_MANIFEST, dsm_err_str(mine));
	}
	return agree(rt, STEP_DURABLE, mine);
}

int dsm_rt_ckpt_wait(struct dsm_rt *rt)
{
	int ret;

	pthread_mutex_lock(&rt->ckpt.lock);
	ret = wait_locked(rt);
	pthread_mutex_unlock(&rt->ckpt.lock);
	return ret;
}

DSM_EXPORT int dsm_checkpoint_wait(void)
{
	struct dsm_rt *rt = dsm_rt_get("dsm_checkpoint_wait");

	return rt ? dsm_rt_ckpt_wait(rt) : DSM_ERR_NOT_INIT;
}

DSM_EXPORT int dsm_checkpoint(const char *dir)
{
	struct dsm_rt *rt = dsm_rt_get("dsm_checkpoint");
	struct dsm_rt_ckpt *ck;
	uint64_t t[5] = {0}, ns, root;
	int ret, st;

	if (rt == NULL)
		return DSM_ERR_NOT_INIT;
	ck = &rt->ckpt;
	if (dir == NULL || *dir == '\0' || strlen(dir) + 64 >= sizeof(ck->dir)) {
		DSM_LOG(DSM_LOG_ERROR, "dsm_checkpoint: %s directory", dir ? "a too long" : "no");
		return -EINVAL;
	}
	if (atomic_load(&rt->death.ndead)) {
		DSM_LOG(DSM_LOG_ERROR, "dsm_checkpoint: a rank died; no snapshot after a death");
		return DSM_ERR_PEER_DEAD;
	}
	pthread_mutex_lock(&ck->lock);
	/* Like a barrier: a release first, so that the home copies hold every write to
	 * multiple-writer memory made before the call, and an acquire at the end. */
	dsm_rt_mw_release(rt);
	ret = wait_locked(rt);
	if (ret < 0)
		goto out;
	root = (uint64_t)atomic_load(&ck->root);
	ret = dsm_rt_collective(rt, DSM_RT_COLL_CHECKPOINT,
	                        dsm_hash_bytes((const uint8_t *)dir, strlen(dir), 0), root);
	if (ret < 0)
		goto out;
	strcpy(ck->dir, dir);
	ck->seq++;
	ck->id = dsm_hash64(ck->nonce ^ dsm_hash64(ck->seq));
	ck->manifest_root = root;
	atomic_store(&ck->err, 0);
	ret = agree(rt, STEP_OPENED, open_files(rt));
	if (ret < 0)
		goto close;
	t[0] = dsm_now_ns();
	ret = step(rt, OP_FREEZE);
	ret = agree(rt, STEP_FROZEN, ret);
	t[1] = dsm_now_ns();
	if (ret == 0)
		ret = agree(rt, STEP_DRAINED, step(rt, OP_DRAIN));
	t[2] = dsm_now_ns();
	if (ret == 0) {
		st = step(rt, OP_TAKE);
		if (st < 0)
			DSM_LOG(DSM_LOG_ERROR, "dsm_checkpoint: listing the lines failed: %s",
			        dsm_err_str(st));
		t[3] = dsm_now_ns();
		ret = agree(rt, STEP_TAKEN, st);
	}
	t[4] = dsm_now_ns();
	step(rt, OP_THAW);
	ns = dsm_now_ns() - t[0];
	if (ret < 0) {
		step(rt, OP_FINISH);
		goto close;
	}
	ck->writer_running = pthread_create(&ck->writer, NULL, writer, rt) == 0;
	if (!ck->writer_running) {
		/* The snapshot is set up everywhere: this rank writes it here, before returning. */
		DSM_LOG(DSM_LOG_WARN, "dsm_checkpoint: no writer thread; writing the snapshot now");
		writer(rt);
	}
	ck->pending = true;
	ret = 0;
	dsm_rt_mw_acquire(rt);
	atomic_fetch_add(&ck->count, 1);
	atomic_store(&ck->pause_ns, ns);
	if (ns > atomic_load(&ck->pause_ns_max))
		atomic_store(&ck->pause_ns_max, ns);
	DSM_LOG(DSM_LOG_INFO,
	        "dsm_checkpoint #%" PRIu64 " to %s: %" PRIu64 " lines to decide here (%" PRIu64
	        " multiple-writer master copies taken, %s), paused %.3f ms (frozen %.3f, "
	        "drained %.3f, listed %.3f, agreed %.3f, thawed %.3f)",
	        ck->seq, ck->mine, ck->npos, ck->mw_masters,
	        ck->scanned ? "the writable pages protected" : "whole ranges protected",
	        (double)ns / 1e6, (double)(t[1] - t[0]) / 1e6, (double)(t[2] - t[1]) / 1e6,
	        (double)(t[3] - t[2]) / 1e6, (double)(t[4] - t[3]) / 1e6,
	        (double)(t[0] + ns - t[4]) / 1e6);
	goto out;
close:
	if (ck->fd >= 0) {
		close(ck->fd);
		ck->fd = -1;
	}
out:
	pthread_mutex_unlock(&ck->lock);
	return ret;
}

DSM_EXPORT void *dsm_root(void)
{
	struct dsm_rt *rt = dsm_rt_get("dsm_root");

	return rt ? (void *)atomic_load(&rt->ckpt.root) : NULL;
}

DSM_EXPORT int dsm_set_root(void *p)
{
	struct dsm_rt *rt = dsm_rt_get("dsm_set_root");

	if (rt == NULL)
		return DSM_ERR_NOT_INIT;
	if (p && !dsm_rt_heap_contains(&rt->heap, p)) {
		DSM_LOG(DSM_LOG_ERROR, "dsm_set_root(%p): not in the heap", p);
		return DSM_ERR_FOREIGN;
	}
	atomic_store(&rt->ckpt.root, (uintptr_t)p);
	return 0;
}

DSM_EXPORT int dsm_restarted(void)
{
	struct dsm_rt *rt = dsm_rt_get("dsm_restarted");

	return rt ? rt->ckpt.restarted : 0;
}

/* ---- restart ------------------------------------------------------------------------------ */

static int restart_refused(struct dsm_rt *rt, const char *why)
{
	DSM_LOG(DSM_LOG_ERROR, "DSM_RESTART=%s: %s; not restarting", rt->cfg.restart, why);
	return -EINVAL;
}

/*
 * Every rank's @status agreed, at init (the loop does not run yet): 0 if all are 0; else this
 * rank's error, or -EINVAL where another rank refused (and said why).
 */
static int restart_agree(struct dsm_rt *rt, int status)
{
	int32_t m = status, *all = calloc((size_t)rt->nranks, sizeof(*all));
	int ret;

	if (all == NULL) /* the others wait in the allgather: the job cannot go on in step */
		dsm_rt_boot_abort(1, "out of memory agreeing on a restart");
	ret = dsm_rt_boot_allgather(&m, all, sizeof(m));

	for (int r = 0; ret == 0 && r < rt->nranks; r++)
		if (all[r] < 0)
			ret = status < 0 ? status : -EINVAL;
	free(all);
	return ret;
}

static bool same_snapshot(const struct dsm_ckpt_manifest *a, const struct dsm_ckpt_manifest *b)
{
	return a->id == b->id && a->seq == b->seq && a->nranks == b->nranks &&
	       a->line_size == b->line_size && a->heap_base == b->heap_base &&
	       a->heap_size == b->heap_size && a->root == b->root;
}

/*
 * The snapshot is rank 0's manifest's, which every rank is given: a rank whose directory
 * (with "%r", node-local disks) has none of its own, a rank beyond the snapshot's ranks
 * among them, goes by it; one that has its own must hold the same snapshot.
 */
int dsm_rt_ckpt_restart_check(struct dsm_rt *rt)
{
	struct mine {
		int32_t status;
		struct dsm_ckpt_manifest m;
	} mine = {0}, *all = NULL;
	struct dsm_ckpt_manifest m;
	char dir[DSM_CKPT_PATH_MAX], why[DSM_CKPT_PATH_MAX + 512];
	int ret;

	if (rt->cfg.restart[0] == '\0')
		return 0;
	why[0] = '\0';
	if (dsm_ckpt_path(dir, sizeof(dir), rt->cfg.restart, rt->rank, NULL) < 0) {
		snprintf(why, sizeof(why), "the path is too long");
		mine.status = -ENAMETOOLONG;
	} else {
		mine.status = dsm_ckpt_manifest_read(dir, &mine.m, why, sizeof(why));
	}
	all = calloc((size_t)rt->nranks, sizeof(*all));
	if (all == NULL)
		dsm_rt_boot_abort(1, "out of memory comparing the snapshot's manifests");
	ret = dsm_rt_boot_allgather(&mine, all, sizeof(mine));
	m = all[0].m;
	if (ret < 0) {
		ret = restart_refused(rt, "the ranks cannot compare their manifests");
	} else if (all[0].status < 0) {
		/* Rank 0 says why; the others what they found, if anything went wrong. */
		ret = restart_refused(rt, rt->rank == 0 || mine.status < 0
		                                  ? why
		                                  : "rank 0 finds no snapshot (it says why)");
	} else if (mine.status < 0 && mine.status != -ENOENT) {
		ret = restart_refused(rt, why);
	} else if (mine.status == 0 && !same_snapshot(&mine.m, &m)) {
		snprintf(why, sizeof(why),
		         "%s holds snapshot %016" PRIx64 " (#%" PRIu64 ") and rank 0's directory "
		         "%016" PRIx64 " (#%" PRIu64 ")",
		         dir, mine.m.id, mine.m.seq, m.id, m.seq);
		ret = restart_refused(rt, why);
	} else if (m.line_size != rt->cfg.line_size) {
		snprintf(why, sizeof(why),
		         "the snapshot has %" PRIu64 "-byte lines and this run %zu (DSM_LINE_SIZE)",
		         m.line_size, rt->cfg.line_size);
		ret = restart_refused(rt, why);
	} else if (m.heap_size != rt->cfg.heap_size) {
		snprintf(why, sizeof(why),
		         "the snapshot's heap is %" PRIu64 " bytes and this run's %zu "
		         "(DSM_HEAP_SIZE)",
		         m.heap_size, rt->cfg.heap_size);
		ret = restart_refused(rt, why);
	}
	free(all);
	ret = restart_agree(rt, ret);
	if (ret < 0)
		return ret;
	rt->ckpt.restart_m = m;
	return 0;
}

static void open_span(void *arg, const dsm_coh_span_t *s)
{
	struct dsm_rt *rt = arg;
	size_t ls = line_size(rt);

	if (rt->heap.strict)
		dsm_rt_heap_open(&rt->heap, s->first_line * ls, s->nlines * ls);
}

struct restore_mw_arg {
	struct dsm_rt *rt;
	int err;
};

static void restore_mw(void *arg, uint64_t first, uint64_t n)
{
	struct restore_mw_arg *a = arg;
	int ret = a->err < 0 ? 0 : dsm_rt_mw_add_range(a->rt, first, n);

	if (ret < 0)
		a->err = ret;
}

/*
 * A restart on N ranks of a snapshot of M: rank r reads the files of ranks r, r + N, ...
 * below M, and only those (node-local disks: each rank's own directory). The lines homed
 * here go into the home segment; the others go to their homes, exchanged in rounds of at
 * most DSM_RESTART_ROUND bytes a rank sends (MPI_Alltoallv, before the loop runs).
 */
struct restore {
	struct dsm_rt *rt;
	struct dsm_ckpt_file *f; /* the files read here: of ranks rank + i * nranks */
	uint32_t nf;
	char why[DSM_CKPT_PATH_MAX + 512];
	int status;
	uint64_t restored, rounds;
};

static int file_rank(const struct restore *rs, uint32_t i)
{
	return rs->rt->rank + (int)i * rs->rt->nranks;
}

/* A refusal found here: said once, the first one. */
static void restore_fail(struct restore *rs, const char *why)
{
	if (rs->status == 0)
		rs->status = restart_refused(rs->rt, why);
}

/* Record @i of file @k: read (its checksum checked) into @buf; false if refused. */
static bool restore_read(struct restore *rs, uint32_t k, uint64_t i, void *buf)
{
	char path[DSM_CKPT_PATH_MAX], why[DSM_CKPT_PATH_MAX + 128];
	uint64_t line = rs->f[k].line[i];
	int ret = dsm_ckpt_file_read(&rs->f[k], i, buf);

	if (ret == 0)
		return true;
	dsm_ckpt_file_path(path, sizeof(path), rs->rt->cfg.restart, file_rank(rs, k));
	snprintf(why, sizeof(why), "%s: line %" PRIu64 " (%#" PRIx64 ") %s", path, line,
	         (uint64_t)(uintptr_t)line_addr(rs->rt, line),
	         ret == -EBADMSG ? "fails its checksum" : "cannot be read");
	restore_fail(rs, why);
	return false;
}

/* Opens and checks this rank's files: every one before anything is restored. */
static void restore_open(struct restore *rs, const struct dsm_ckpt_manifest *m)
{
	struct dsm_rt *rt = rs->rt;
	char path[DSM_CKPT_PATH_MAX];

	for (uint32_t k = 0; k < rs->nf && rs->status == 0; k++) {
		int r = file_rank(rs, k);

		dsm_ckpt_file_path(path, sizeof(path), rt->cfg.restart, r);
		if (dsm_ckpt_file_open(path, m, r, &rs->f[k], rs->why, sizeof(rs->why)) < 0) {
			restore_fail(rs, rs->why);
			break;
		}
		if (m->nranks != (uint32_t)rt->nranks &&
		    dsm_rt_alloc_state_has_local(rs->f[k].alloc, rs->f[k].hdr.alloc_len / 8) != 0) {
			snprintf(
			        rs->why, sizeof(rs->why),
			        "the snapshot of %u ranks holds dsm_alloc memory of rank %d, which "
			        "restarts on %u ranks only (this run has %d)",
			        m->nranks, r, m->nranks, rt->nranks);
			restore_fail(rs, rs->why);
		}
	}
}

/* The allocators: from this rank's own file, or rank 0's (sent to all) on another number of
 * ranks, which has no dsm_alloc memory then. */
static void restore_alloc(struct restore *rs, const struct dsm_ckpt_manifest *m)
{
	struct dsm_rt *rt = rs->rt;
	bool same = m->nranks == (uint32_t)rt->nranks;
	uint64_t n = rs->nf ? rs->f[0].hdr.alloc_len / 8 : 0;
	uint64_t *words = rs->nf ? rs->f[0].alloc : NULL, *got = NULL;
	struct restore_mw_arg mw = {rt, 0};
	int ret = 0;

	if (!same) {
		ret = dsm_rt_boot_bcast(&n, sizeof(n), 0);
		if (ret == 0 && rt->rank != 0) {
			words = got = malloc(n ? n * 8 : 1);
			if (got == NULL)
				dsm_rt_boot_abort(1,
				                  "out of memory for a restart's allocation table");
		}
		if (ret == 0)
			ret = dsm_rt_boot_bcast(words, n * 8, 0);
	}
	if (ret < 0) {
		restore_fail(rs, "rank 0's allocation table did not reach this rank");
	} else if (words == NULL || dsm_rt_alloc_restore(&rt->alloc, words, n, same) < 0) {
		restore_fail(rs, "its allocation table is damaged");
	} else {
		dsm_rt_alloc_each(&rt->alloc, open_span, rt);
		dsm_rt_alloc_each_mw(&rt->alloc, restore_mw, &mw);
		if (mw.err < 0) {
			snprintf(rs->why, sizeof(rs->why),
			         "its multiple-writer memory cannot be set up: %s",
			         dsm_err_str(mw.err));
			restore_fail(rs, rs->why);
		}
	}
	free(got);
}

/* A record to send: file @k, record @i, to @home. */
struct restore_out {
	uint32_t k;
	int32_t home;
	uint64_t i;
};

static int cmp_out(const void *a, const void *b)
{
	const struct restore_out *x = a, *y = b;

	return x->home != y->home ? (x->home < y->home ? -1 : 1) : (x->i > y->i) - (x->i < y->i);
}

/* Every record's home: those homed here read in place, the others listed by home. */
static struct restore_out *restore_local(struct restore *rs, size_t *nout_p)
{
	struct dsm_rt *rt = rs->rt;
	struct restore_out *out = NULL;
	size_t nout = 0, cap = 0;

	for (uint32_t k = 0; k < rs->nf && rs->status == 0; k++) {
		for (uint64_t i = 0; i < rs->f[k].hdr.nlines && rs->status == 0; i++) {
			uint64_t line = rs->f[k].line[i];
			int home = dsm_rt_alloc_home(&rt->alloc, line, NULL);

			if (home < 0) {
				snprintf(rs->why, sizeof(rs->why),
				         "rank %d's file holds line %" PRIu64
				         ", which no allocation covers",
				         file_rank(rs, k), line);
				restore_fail(rs, rs->why);
			} else if (home == rt->rank) {
				if (restore_read(rs, k, i, dsm_rt_home_line(rt, line)))
					rs->restored++;
			} else if (DSM_VEC_RESERVE(out, cap, nout + 1) < 0) {
				restore_fail(rs, "out of memory listing the lines to send");
			} else {
				out[nout++] = (struct restore_out){k, home, i};
			}
		}
	}
	if (nout)
		qsort(out, nout, sizeof(*out), cmp_out);
	*nout_p = nout;
	return out;
}

/* The records of @out go to their homes, in rounds; every rank runs every round. */
static void restore_exchange(struct restore *rs, const struct restore_out *out, size_t nout)
{
	struct dsm_rt *rt = rs->rt;
	size_t n = (size_t)rt->nranks, ls = line_size(rt), rec = ls + 8;
	size_t round_bytes = (size_t)rt->cfg.restart_round;
	size_t per = round_bytes / rec / n ? round_bytes / rec / n : 1;
	uint64_t *cnt = calloc(n, 8), *in = calloc(n, 8), *rounds = calloc(n, 8), mine = 0, all = 0;
	size_t *sc = calloc(n, sizeof(size_t)), *rc = calloc(n, sizeof(size_t)), *at = calloc(n, 8);
	char *sbuf = malloc(per * n * rec), *rbuf = malloc(per * n * rec);
	int ret;

	if (!cnt || !in || !rounds || !sc || !rc || !at || !sbuf || !rbuf) {
		/* The job cannot go on in step: ended, with the reason. */
		dsm_rt_boot_abort(1, "out of memory for the exchange of a restart's lines");
	}
	for (size_t j = 0; j < nout; j++)
		cnt[out[j].home]++;
	for (size_t r = 0; r < n; r++)
		sc[r] = rc[r] = 8;
	ret = dsm_rt_boot_alltoallv(cnt, sc, in, rc);
	for (size_t r = 0; r < n; r++) {
		uint64_t a = (cnt[r] + per - 1) / per, b = (in[r] + per - 1) / per;

		mine = a > mine ? a : mine;
		mine = b > mine ? b : mine;
	}
	if (ret == 0)
		ret = dsm_rt_boot_allgather(&mine, rounds, 8);
	if (ret < 0)
		dsm_rt_boot_abort(1, "the exchange of a restart's lines failed");
	for (size_t r = 0; r < n; r++)
		all = rounds[r] > all ? rounds[r] : all;
	rs->rounds = all;
	/* at[r]: the first record for rank r not sent yet (out is sorted by home). */
	for (size_t r = 0, j = 0; r < n; r++) {
		while (j < nout && (size_t)out[j].home < r)
			j++;
		at[r] = j;
	}
	for (uint64_t round = 0; round < all; round++) {
		size_t off = 0, got = 0;

		for (size_t r = 0; r < n; r++) {
			uint64_t left = cnt[r] > round * per ? cnt[r] - round * per : 0;
			uint64_t from = in[r] > round * per ? in[r] - round * per : 0;
			size_t k = left < per ? (size_t)left : per;

			for (size_t x = 0; x < k; x++, at[r]++) {
				const struct restore_out *o = &out[at[r]];

				memcpy(sbuf + off, &rs->f[o->k].line[o->i], 8);
				if (!restore_read(rs, o->k, o->i, sbuf + off + 8))
					memset(sbuf + off + 8, 0, ls);
				off += rec;
			}
			sc[r] = k * rec;
			rc[r] = (from < per ? (size_t)from : per) * rec;
			got += rc[r];
		}
		if (dsm_rt_boot_alltoallv(sbuf, sc, rbuf, rc) < 0)
			dsm_rt_boot_abort(1, "the exchange of a restart's lines failed");
		for (size_t x = 0; x < got; x += rec) {
			uint64_t line;

			memcpy(&line, rbuf + x, 8);
			if (dsm_rt_alloc_home(&rt->alloc, line, NULL) != rt->rank) {
				restore_fail(rs,
				             "a line sent here by another rank is not homed here");
				continue;
			}
			memcpy(dsm_rt_home_line(rt, line), rbuf + x + 8, ls);
			rs->restored++;
		}
	}
	free(cnt);
	free(in);
	free(rounds);
	free(sc);
	free(rc);
	free(at);
	free(sbuf);
	free(rbuf);
}

int dsm_rt_ckpt_restore(struct dsm_rt *rt)
{
	const struct dsm_ckpt_manifest *m = &rt->ckpt.restart_m;
	struct restore rs = {.rt = rt};
	struct restore_out *out = NULL;
	uint64_t t0 = dsm_now_ns();
	size_t nout = 0;
	int ret;

	if (rt->cfg.restart[0] == '\0')
		return 0;
	rs.nf = m->nranks > (uint32_t)rt->rank
	                ? (m->nranks - 1 - (uint32_t)rt->rank) / (uint32_t)rt->nranks + 1
	                : 0;
	rs.f = calloc(rs.nf ? rs.nf : 1, sizeof(*rs.f));
	if (rs.f == NULL)
		dsm_rt_boot_abort(1, "out of memory for a restart's files");
	for (uint32_t k = 0; k < rs.nf; k++)
		rs.f[k].fd = -1;
	/* Each step agreed before the next: never a partial heap, and never a rank left in a
	 * collective the others skipped. */
	restore_open(&rs, m);
	ret = restart_agree(rt, rs.status);
	if (ret == 0) {
		restore_alloc(&rs, m);
		ret = restart_agree(rt, rs.status);
	}
	if (ret == 0) {
		out = restore_local(&rs, &nout);
		ret = restart_agree(rt, rs.status);
	}
	if (ret == 0) {
		restore_exchange(&rs, out, nout);
		ret = rs.status;
	}
	if (ret == 0) {
		atomic_store(&rt->ckpt.root, (uintptr_t)m->root);
		rt->ckpt.restarted = true;
		rt->ckpt.seq = m->seq;
		DSM_LOG(DSM_LOG_INFO,
		        "restarted from %s (snapshot #%" PRIu64 " of %u ranks): %u file(s) read "
		        "here, %" PRIu64
		        " lines homed here restored (%zu sent to their homes in %" PRIu64
		        " rounds) in %.1f ms",
		        rt->cfg.restart, m->seq, m->nranks, rs.nf, rs.restored, nout, rs.rounds,
		        (double)(dsm_now_ns() - t0) / 1e6);
	}
	free(out);
	for (uint32_t k = 0; k < rs.nf; k++)
		if (rs.f[k].fd >= 0)
			dsm_ckpt_file_close(&rs.f[k]);
	free(rs.f);
	return ret;
}

/* ---- init ---------------------------------------------------------------------------------- */

int dsm_rt_ckpt_init(struct dsm_rt *rt)
{
	int ret = pthread_mutex_init(&rt->ckpt.lock, NULL);

	if (ret)
		return -ret;
	rt->ckpt.fd = -1;
	dsm_rt_msg_on(rt, DSM_RT_MSG_CKPT, sizeof(struct dsm_rt_ckpt_msg), on_ckpt);
	return 0;
}

void dsm_rt_ckpt_fini(struct dsm_rt *rt)
{
	struct dsm_rt_ckpt *ck = &rt->ckpt;

	if (ck->writer_running)
		pthread_join(ck->writer, NULL);
	if (ck->fd >= 0)
		close(ck->fd);
	free_tables(ck);
	free(ck->parked);
	pthread_mutex_destroy(&ck->lock);
}
