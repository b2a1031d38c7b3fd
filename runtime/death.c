/* SPDX-License-Identifier: MIT */
#include "runtime/death.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/vec.h"
#include "runtime/coll.h"
#include "runtime/decode.h"
#include "runtime/engine.h"
#include "runtime/fatal.h"
#include "runtime/msg.h"
#include "runtime/mw.h"
#include "runtime/mutex.h"
#include "runtime/prefetch.h"
#include "runtime/rt.h"
#include "runtime/stats.h"

/* Lost lines logged one by one; after these, at powers of two. */
#define LOST_LOGGED 8

static bool dead(const struct dsm_rt *rt, int r)
{
	return atomic_load_explicit(&rt->death.dead[r], memory_order_relaxed) != 0;
}

int dsm_rt_live_home(const struct dsm_rt *rt, int home)
{
	if (home < 0 || atomic_load_explicit(&rt->death.ndead, memory_order_relaxed) == 0)
		return home;
	for (int k = 0; k < rt->nranks && dead(rt, home); k++)
		home = (home + 1) % rt->nranks;
	return home;
}

int dsm_rt_death_of_line(struct dsm_rt *rt, uint64_t line)
{
	int home;

	if (atomic_load_explicit(&rt->death.ndead, memory_order_relaxed) == 0)
		return -1;
	home = dsm_rt_alloc_home(&rt->alloc, line, NULL);
	return home >= 0 && dead(rt, home) ? home : -1;
}

int dsm_rt_death_lost_with(struct dsm_rt *rt, uint64_t line)
{
	int h;

	if (atomic_load_explicit(&rt->death.ndead, memory_order_relaxed) == 0)
		return -1;
	h = dsm_rt_alloc_home(&rt->alloc, line, NULL);
	/* From its first home on, as dsm_rt_live_home() goes: the first dead rank that was
	 * alive when the line was allocated is the one that served it. */
	for (int k = 0; h >= 0 && k < rt->nranks && dead(rt, h); k++) {
		if (line >= rt->alloc.coll_lines || line < rt->death.coll_mark[h])
			return h;
		h = (h + 1) % rt->nranks;
	}
	return -1;
}

/* A line homed here since rank @orig died and never adopted is lost: the engine answers
 * its requests LOST (nothing happens for one that has a directory entry). */
static void lost_check(struct dsm_rt *rt, uint64_t line, int orig)
{
	dsm_coh_event_t ev = {.type = DSM_COH_EV_LOST_LINE, .home = (unsigned)orig, .line = line};

	/* Allocated after the death (collectively, among the survivors): fresh memory. */
	if (line < rt->alloc.coll_lines && line >= rt->death.coll_mark[orig])
		return;

	if (dsm_rt_engine(rt, &ev, NULL) < 0)
		dsm_rt_fatal(rt, "internal error: the engine refused line %llu as lost",
		             (unsigned long long)line);
}

static uint64_t event_line(const dsm_coh_event_t *ev)
{
	return ev->type == DSM_COH_EV_MSG ? ev->msg.line : ev->line;
}

/* Every survivor's copies of the lines homed here after a death have come: the requests
 * held back go to the engine, in the order they came. */
static void replay(struct dsm_rt *rt)
{
	struct dsm_rt_death *d = &rt->death;
	int ret;

	DSM_LOG(DSM_LOG_INFO, "serving %zu requests held back while the survivors' copies came",
	        d->nparked);
	for (size_t i = 0; i < d->nparked; i++) {
		struct dsm_rt_parked *p = &d->parked[i];
		uint64_t line = event_line(&p->ev);
		int orig = dsm_rt_death_of_line(rt, line);

		if (orig >= 0)
			lost_check(rt, line, orig);
		if (dsm_rt_engine(rt, &p->ev, p->data) < 0) {
			if (p->src < 0)
				dsm_rt_fatal(rt, "the engine refused a fault on line %llu",
				             (unsigned long long)line);
			DSM_RT_COUNT(rt, msgs_dropped, 1);
			DSM_LOG(DSM_LOG_WARN,
			        "dropped a %s of line %llu from rank %d that its state cannot take",
			        dsm_coh_msg_name(p->ev.msg.type), (unsigned long long)line, p->src);
		}
		free(p->data);
	}
	d->nparked = 0;
	ret = dsm_rt_msg_flush(rt, -1);
	if (ret < 0 && ret != DSM_ERR_PEER_DEAD)
		dsm_rt_fatal(rt, "sending the answers of held-back requests failed: %s",
		             dsm_err_str(ret));
}

/* Whether every live rank has said ADOPTED for each dead rank whose lines are homed here. */
static void adoption_check(struct dsm_rt *rt)
{
	struct dsm_rt_death *d = &rt->death;
	int waiting = 0;

	for (int x = 0; x < rt->nranks; x++) {
		bool all = true;

		if (!dead(rt, x) || d->complete[x] || dsm_rt_live_home(rt, x) != rt->rank)
			continue;
		for (int r = 0; r < rt->nranks && all; r++)
			all = dead(rt, r) ||
			      (d->adopted[x] && (d->adopted[x][r / 64] >> (r % 64) & 1));
		if (!all) {
			waiting++;
			continue;
		}
		d->complete[x] = true;
		DSM_LOG(DSM_LOG_INFO,
		        "every survivor's copies of the lines of dead rank %d are here: this rank "
		        "is their home",
		        x);
	}
	d->waiting = waiting;
	if (waiting == 0 && d->nparked)
		replay(rt);
}

static void adopted_mark(struct dsm_rt *rt, int x, int from)
{
	struct dsm_rt_death *d = &rt->death;

	if (d->adopted[x] == NULL) {
		d->adopted[x] = calloc(((size_t)rt->nranks + 63) / 64, sizeof(uint64_t));
		if (d->adopted[x] == NULL)
			dsm_rt_fatal(rt, "out of memory taking in the lines of dead rank %d", x);
	}
	d->adopted[x][from / 64] |= 1ull << (from % 64);
}

void dsm_rt_death(struct dsm_rt *rt, int peer)
{
	struct dsm_rt_death *d = &rt->death;
	struct dsm_rt_dead_msg m = {.rank = (uint32_t)peer};
	int *moved, nmoved = 0, heir, ret;
	dsm_coh_event_t ev = {.type = DSM_COH_EV_PEER_DEAD};

	if (!d->cont)
		dsm_rt_peer_dead_exit(rt, peer);
	if (peer < 0 || peer >= rt->nranks || peer == rt->rank || dead(rt, peer))
		return;
	moved = malloc((size_t)rt->nranks * sizeof(*moved));
	if (moved == NULL)
		dsm_rt_fatal(rt, "out of memory handling the death of rank %d", peer);
	/* The dead ranks whose lines were homed at @peer move on with its own. */
	for (int r = 0; r < rt->nranks; r++)
		if ((r == peer || dead(rt, r)) && dsm_rt_live_home(rt, r) == peer)
			moved[nmoved++] = r;
	d->coll_mark[peer] = dsm_rt_alloc_coll_mark(&rt->alloc);
	atomic_store_explicit(&d->dead[peer], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&d->ndead, 1, memory_order_release);
	heir = dsm_rt_live_home(rt, peer);
	DSM_LOG(DSM_LOG_WARN,
	        "rank %d died; DSM_ON_DEATH=continue: its lines are homed at rank %d from now "
	        "on, and a line whose only copy it held raises SIGBUS where it is accessed",
	        peer, heir);
	/* Our notice first: each survivor has it before anything else we send about this. */
	for (int r = 0; r < rt->nranks; r++) {
		if (r == rt->rank || dead(rt, r))
			continue;
		ret = dsm_rt_send(rt, r, DSM_RT_MSG_DEAD, &m, sizeof(m));
		if (ret < 0 && ret != DSM_ERR_PEER_DEAD)
			dsm_rt_fatal(rt, "telling rank %d of rank %d's death failed: %s", r, peer,
			             dsm_err_str(ret));
	}
	ev.home = (unsigned)peer;
	ev.adopter = (unsigned)heir;
	if (dsm_rt_engine(rt, &ev, NULL) < 0)
		dsm_rt_fatal(rt, "internal error: the engine refused the death of rank %d", peer);
	dsm_rt_prefetch_peer_dead(rt);
	dsm_rt_mw_peer_dead(rt, peer);
	/* Then: all our copies of those lines are on their way. */
	for (int i = 0; i < nmoved; i++) {
		struct dsm_rt_dead_msg a = {.rank = (uint32_t)moved[i]};

		if (heir == rt->rank) {
			adopted_mark(rt, moved[i], rt->rank);
			continue;
		}
		ret = dsm_rt_send(rt, heir, DSM_RT_MSG_ADOPTED, &a, sizeof(a));
		if (ret < 0 && ret != DSM_ERR_PEER_DEAD)
			dsm_rt_fatal(rt, "telling rank %d that our copies came failed: %s", heir,
			             dsm_err_str(ret));
	}
	free(moved);
	ret = dsm_rt_msg_flush(rt, -1);
	if (ret < 0 && ret != DSM_ERR_PEER_DEAD)
		dsm_rt_fatal(rt, "sending our copies to their new home failed: %s",
		             dsm_err_str(ret));
	dsm_rt_msg_peer_dead(rt, peer);
	dsm_rt_mutex_peer_dead(rt, peer);
	dsm_rt_coll_peer_dead(rt, peer);
	adoption_check(rt);
}

bool dsm_rt_death_hold(struct dsm_rt *rt, int src, const dsm_coh_event_t *ev, const void *data)
{
	struct dsm_rt_death *d = &rt->death;
	uint64_t line = event_line(ev);
	size_t ls = (size_t)1 << rt->layout.line_shift;
	struct dsm_rt_parked *p;
	int orig;

	if (atomic_load_explicit(&d->ndead, memory_order_relaxed) == 0)
		return false;
	orig = dsm_rt_death_of_line(rt, line);
	if (orig < 0 || dsm_rt_live_home(rt, orig) != rt->rank ||
	    (ev->type == DSM_COH_EV_MSG && ev->msg.type == DSM_COH_MSG_ADOPT))
		return false;
	if (d->waiting == 0) {
		lost_check(rt, line, orig);
		return false;
	}
	if (DSM_VEC_RESERVE(d->parked, d->parked_cap, d->nparked + 1) < 0)
		dsm_rt_fatal(rt, "out of memory holding back a request for line %llu",
		             (unsigned long long)line);
	p = &d->parked[d->nparked];
	*p = (struct dsm_rt_parked){.src = src, .ev = *ev};
	if (data) {
		p->data = malloc(ls);
		if (p->data == NULL)
			dsm_rt_fatal(rt, "out of memory holding back a request for line %llu",
			             (unsigned long long)line);
		memcpy(p->data, data, ls);
	}
	d->nparked++;
	return true;
}

void dsm_rt_death_poison(struct dsm_rt *rt, struct dsm_rt_region *rg, uint64_t line, unsigned who)
{
	size_t ls = (size_t)1 << rt->layout.line_shift;
	uint64_t addr = dsm_coh_line_addr(&rt->layout, line);
	/* Counted just before (the engine's COUNT comes before its POISON). */
	uint64_t n = atomic_load_explicit(&rt->stats.cnt.lost_lines, memory_order_relaxed);
	int ret = dsm_rt_region_poison(rg, addr, ls);

	if (ret < 0)
		dsm_rt_fatal(rt, "poisoning lost line %llu failed: %s", (unsigned long long)line,
		             dsm_err_str(ret));
	dsm_rt_prefetch_arrived(rt, line);
	if (n <= LOST_LOGGED || (n & (n - 1)) == 0)
		DSM_LOG(DSM_LOG_WARN,
		        "line %llu (%#llx, %zu bytes) died with rank %u, which %s: an access to "
		        "it raises SIGBUS (%llu lines lost here so far)",
		        (unsigned long long)line, (unsigned long long)addr, ls, who,
		        dsm_rt_mw_owns(rt, line)
		                ? "was its home (multiple-writer memory: the merged line)"
		                : "held its only copy",
		        (unsigned long long)n);
}

static void on_dead(struct dsm_rt *rt, int src, const void *data, size_t len)
{
	struct dsm_rt_dead_msg m;

	if (dsm_rt_decode_dead(DSM_RT_MSG_DEAD, data, len, (unsigned)rt->nranks, src, &m) < 0 ||
	    !rt->death.cont) {
		dsm_rt_msg_malformed(rt, src, DSM_RT_MSG_DEAD, len);
		return;
	}
	if ((int)m.rank == rt->rank)
		dsm_rt_fatal(rt,
		             "rank %d takes this rank for dead (it was stopped or unreachable for "
		             "longer than DSM_TP_DEAD_MS): the survivors go on without it",
		             src);
	dsm_rt_death(rt, (int)m.rank);
}

static void on_adopted(struct dsm_rt *rt, int src, const void *data, size_t len)
{
	struct dsm_rt_dead_msg m;

	if (dsm_rt_decode_dead(DSM_RT_MSG_ADOPTED, data, len, (unsigned)rt->nranks, src, &m) < 0 ||
	    (int)m.rank == rt->rank || !rt->death.cont) {
		dsm_rt_msg_malformed(rt, src, DSM_RT_MSG_ADOPTED, len);
		return;
	}
	/* Its DEAD came first, unless it learned of the death from us. */
	dsm_rt_death(rt, (int)m.rank);
	if (dsm_rt_live_home(rt, (int)m.rank) != rt->rank) {
		dsm_rt_msg_malformed(rt, src, DSM_RT_MSG_ADOPTED, len);
		return;
	}
	adopted_mark(rt, (int)m.rank, src);
	adoption_check(rt);
}

int dsm_rt_death_init(struct dsm_rt *rt)
{
	struct dsm_rt_death *d = &rt->death;
	struct sigaction sa;

	d->cont = rt->cfg.on_death_continue;
	d->dead = calloc((size_t)rt->nranks, sizeof(*d->dead));
	d->adopted = calloc((size_t)rt->nranks, sizeof(*d->adopted));
	d->complete = calloc((size_t)rt->nranks, sizeof(*d->complete));
	d->coll_mark = calloc((size_t)rt->nranks, sizeof(*d->coll_mark));
	if (!d->dead || !d->adopted || !d->complete || !d->coll_mark)
		return -ENOMEM;
	dsm_rt_msg_on(rt, DSM_RT_MSG_DEAD, sizeof(struct dsm_rt_dead_msg), on_dead);
	dsm_rt_msg_on(rt, DSM_RT_MSG_ADOPTED, sizeof(struct dsm_rt_dead_msg), on_adopted);
	if (!d->cont)
		return 0;
	if (!rt->region.poison) {
		DSM_LOG(DSM_LOG_ERROR,
		        "DSM_ON_DEATH=continue needs UFFDIO_POISON (Linux 6.6) to make lost lines "
		        "raise SIGBUS, and this kernel's userfaultfd lacks it");
		return DSM_ERR_NO_UFFD;
	}
	/* Hydra tells the survivors of a death with SIGUSR1 (mpiexec -disable-auto-cleanup),
	 * whose default action ends the process. */
	if (sigaction(SIGUSR1, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
		signal(SIGUSR1, SIG_IGN);
		DSM_LOG(DSM_LOG_INFO, "DSM_ON_DEATH=continue: SIGUSR1 (the launcher's notice of a "
		                      "death) is ignored");
	}
	return 0;
}

void dsm_rt_death_fini(struct dsm_rt *rt)
{
	struct dsm_rt_death *d = &rt->death;

	for (int x = 0; d->adopted && x < rt->nranks; x++)
		free(d->adopted[x]);
	for (size_t i = 0; i < d->nparked; i++)
		free(d->parked[i].data);
	free(d->parked);
	free(d->adopted);
	free(d->complete);
	free(d->coll_mark);
	free((void *)d->dead);
	memset(d, 0, sizeof(*d));
}

DSM_EXPORT int dsm_dead_ranks(int *ranks, int max)
{
	struct dsm_rt *rt = dsm_rt_get("dsm_dead_ranks");
	int n = 0;

	if (rt == NULL)
		return DSM_ERR_NOT_INIT;
	if (max < 0 || (max > 0 && ranks == NULL))
		return -EINVAL;
	for (int r = 0; r < rt->nranks; r++) {
		if (!dead(rt, r))
			continue;
		if (n < max)
			ranks[n] = r;
		n++;
	}
	return n;
}
