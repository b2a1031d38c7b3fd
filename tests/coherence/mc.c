/* SPDX-License-Identifier: MIT */
/* The protocol model checker (see mc.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mc.h"
#include "common/hash.h"

#define POISON   0xdeadbeefu
#define MC_HOMEQ 64 /* requests the checker mirrors per line of the home's queue */

enum { PROT_NONE_ = 0, PROT_RO, PROT_RW };
enum { T_RUN = 0, T_BLOCKED, T_WOKEN, T_DONE };

typedef struct mc_thread {
	uint8_t pc, status, line;
	uint8_t granted;     /* woken by a grant of this protection */
	uint64_t fault_step; /* when the current op first faulted, or 0 */
	uint64_t woke_step;  /* when it was last woken */
} mc_thread_t;

typedef struct mc_page {
	uint8_t prot;
	uint32_t w[MC_WORDS];
} mc_page_t;

typedef struct mc_msg {
	uint8_t src, dst;
	dsm_coh_msg_t m;
	uint32_t data[MC_WORDS];
} mc_msg_t;

typedef struct mc_fault {
	uint8_t thread, line, write;
} mc_fault_t;

typedef struct mc_node {
	mc_page_t map[MC_MAX_LINES];
	uint32_t home_seg[MC_MAX_LINES][MC_WORDS];
	uint32_t staging[MC_MAX_LINES][MC_WORDS];
	uint8_t rdma[MC_MAX_LINES]; /* an RDMA read is in flight */
	uint8_t wb[MC_MAX_LINES];   /* an RDMA write-back is in flight, of wbuf */
	uint32_t wbuf[MC_MAX_LINES][MC_WORDS];
	uint8_t hold[MC_MAX_LINES]; /* a hold started and HOLD_DONE is owed */
	uint8_t nuffd;
	mc_fault_t uffd[MC_MAX_UFFD];
	mc_thread_t th[MC_MAX_THREADS];
} mc_node_t;

/* An install waiting for the end of its batch (or for an action that needs it in). */
typedef struct mc_pending {
	uint8_t line, prot;
	uint32_t w[MC_WORDS];
} mc_pending_t;

typedef struct mc_sim {
	const mc_config_t *cfg;
	dsm_coh_node_t *eng[MC_MAX_NODES];
	uint8_t home[MC_MAX_LINES];
	uint64_t line_id[MC_MAX_LINES];
	mc_node_t node[MC_MAX_NODES];
	uint32_t shadow[MC_MAX_LINES][MC_WORDS]; /* the last value written */
	uint16_t nnet;
	mc_msg_t net[MC_MAX_MSGS];
	uint64_t step;
	uint64_t bound; /* steps a fault may wait */
	uint64_t max_fault_steps;
	uint64_t counters[DSM_COH_CNT_NCOUNTERS];
	uint64_t cov[MC_NCOV];
	uint8_t nevict; /* evictions fed so far (part of the state: bounded by the config) */
	/* For the eviction races' coverage only: not hashed, since they decide nothing (the
	 * queue is a copy of what the engine's own state holds). */
	uint16_t evicted[MC_MAX_LINES];        /* bit n: rank n evicted the line, not asked since */
	uint8_t homeq[MC_MAX_LINES][MC_HOMEQ]; /* the home's queue: 1 an EVICT, 0 a request */
	uint8_t homeq_n[MC_MAX_LINES];
	mc_fail_t fail;
	char what[512];
	dsm_coh_actions_t acts;
	/* A batch being delivered (empty between steps: not part of the state). */
	int batching;
	unsigned npend;
	mc_pending_t pend[MC_MAX_MSGS];
	uint64_t batches, batched_installs;
} mc_sim_t;

/* A step the scheduler can choose. */
enum { C_THREAD, C_UFFD, C_MSG, C_RDMA, C_HOLD, C_WB, C_BATCH, C_EVICT };
typedef struct mc_choice {
	uint8_t kind, node, idx; /* idx: thread, message slot or line */
} mc_choice_t;

const char *mc_fail_name(int f)
{
	static const char *const names[MC_NFAIL] = {"ok",
	                                            "single-writer violated",
	                                            "data-value violated",
	                                            "unexpected event",
	                                            "deadlock",
	                                            "livelock",
	                                            "starvation",
	                                            "impossible action",
	                                            "final state inconsistent",
	                                            "engine and page table disagree",
	                                            "mapping read out of order"};

	return f >= 0 && f < MC_NFAIL ? names[f] : "?";
}

const char *mc_cov_name(int c)
{
	static const char *const names[MC_NCOV] = {
	        [MC_COV_STALE_FAULT] = "stale fault",
	        [MC_COV_HOME_REQUEST] = "home requests its own line",
	        [MC_COV_HOME_GIVES_UP] = "home gives up its own line",
	        [MC_COV_INV_AT_SM] = "INV crosses an upgrade",
	        [MC_COV_STALE_UPGRADE] = "upgrade arrives after its INV",
	        [MC_COV_DEFERRED] = "INV/FWD waits for a hold",
	        [MC_COV_LATE_RETRY] = "woken thread retries later",
	        [MC_COV_QUEUED] = "request queued at the home",
	        [MC_COV_MIGRATORY] = "read granted exclusive",
	        [MC_COV_EXCL_WRITE] = "write to an exclusive clean line",
	        [MC_COV_CLEAN_WB] = "exclusive line given up clean",
	        [MC_COV_EVICT_NOOP] = "eviction finds its copy already taken",
	        [MC_COV_EVICT_QUEUED] = "eviction queued at the home",
	        [MC_COV_EVICT_DIRTY] = "evicted modified line written back",
	        [MC_COV_EVICT_FWD_S] = "eviction crosses a FWD_S",
	        [MC_COV_EVICT_REFAULT] = "evicted line asked for again"};

	return c >= 0 && c < MC_NCOV ? names[c] : "?";
}

static void failf(mc_sim_t *s, mc_fail_t f, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (s->fail)
		return;
	s->fail = f;
	n = snprintf(s->what, sizeof(s->what), "step %llu: ", (unsigned long long)s->step);
	va_start(ap, fmt);
	vsnprintf(s->what + n, sizeof(s->what) - (size_t)n, fmt, ap);
	va_end(ap);
}

/* ---- Setup ---- */

static int sim_init(mc_sim_t *s, const mc_config_t *cfg)
{
	dsm_coh_span_t span = {.first_line = 0, .nlines = cfg->nlines, .dist = cfg->dist};
	unsigned n, l, total_ops = 0, t;

	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	if (cfg->dist == DSM_COH_DIST_RANK)
		span.rank = cfg->nnodes - 1; /* a home other than rank 0 */
	for (l = 0; l < cfg->nlines; l++) {
		int h = dsm_coh_home_of(&span, cfg->nnodes, l);

		if (h < 0)
			return h;
		s->home[l] = (uint8_t)h;
		/* Sparse, large ids: the engine must not assume a dense heap. */
		s->line_id[l] = ((uint64_t)1 << 40) + l * 4099;
	}
	for (n = 0; n < cfg->nnodes; n++) {
		dsm_coh_config_t ec = {.rank = n,
		                       .nranks = cfg->nnodes,
		                       .data_mode = cfg->data_mode,
		                       .wb_mode = cfg->wb_mode,
		                       .migratory = cfg->migratory,
		                       .bugs = cfg->bugs};
		int rc = dsm_coh_node_create(&ec, &s->eng[n]);

		if (rc < 0)
			return rc;
		for (t = 0; t < cfg->nthreads; t++) {
			total_ops += cfg->nops[n][t];
			if (cfg->nops[n][t] == 0)
				s->node[n].th[t].status = T_DONE;
		}
	}
	/* Every op causes at most a read miss and an upgrade, each a transaction of
	 * at most 2 * nnodes + 8 steps, plus retries: a fault that waits longer
	 * than every op of the run put together is waiting forever. An eviction is
	 * one more transaction, and a miss of the line evicted one more. */
	s->bound = (uint64_t)(total_ops + 1 + 2 * cfg->evictions) * (4 * cfg->nnodes + 24) * 2;
	dsm_coh_actions_init(&s->acts);
	return 0;
}

static void sim_fini(mc_sim_t *s)
{
	unsigned n;

	for (n = 0; n < MC_MAX_NODES; n++)
		dsm_coh_node_destroy(s->eng[n]);
	dsm_coh_actions_fini(&s->acts);
}

static int sim_clone(mc_sim_t *dst, const mc_sim_t *src)
{
	unsigned n;

	memcpy(dst, src, sizeof(*dst));
	dsm_coh_actions_init(&dst->acts);
	for (n = 0; n < MC_MAX_NODES; n++)
		dst->eng[n] = NULL;
	for (n = 0; n < src->cfg->nnodes; n++)
		if (dsm_coh_node_clone(src->eng[n], &dst->eng[n]) < 0)
			return -ENOMEM;
	return 0;
}

static int line_index(const mc_sim_t *s, uint64_t id)
{
	unsigned l;

	for (l = 0; l < s->cfg->nlines; l++)
		if (s->line_id[l] == id)
			return (int)l;
	return -1;
}

/* ---- Invariants ---- */

static void check_swmr(mc_sim_t *s, unsigned l)
{
	unsigned n, writers = 0, readers = 0;

	for (n = 0; n < s->cfg->nnodes; n++) {
		writers += s->node[n].map[l].prot == PROT_RW;
		readers += s->node[n].map[l].prot == PROT_RO;
	}
	if (writers > 1 || (writers == 1 && readers > 0))
		failf(s, MC_SWMR, "line %u: %u writers and %u readers", l, writers, readers);
}

/* ---- Applying actions ---- */

static const char *act_name(int type)
{
	static const char *const names[] = {
	        [DSM_COH_ACT_SEND] = "SEND",
	        [DSM_COH_ACT_RDMA_READ] = "RDMA_READ",
	        [DSM_COH_ACT_RDMA_WRITE] = "RDMA_WRITE",
	        [DSM_COH_ACT_INSTALL_RO] = "INSTALL_RO",
	        [DSM_COH_ACT_INSTALL_RW] = "INSTALL_RW",
	        [DSM_COH_ACT_WRITE_PROTECT] = "WRITE_PROTECT",
	        [DSM_COH_ACT_ZAP] = "ZAP",
	        [DSM_COH_ACT_STORE_HOME] = "STORE_HOME",
	        [DSM_COH_ACT_WAKE] = "WAKE",
	        [DSM_COH_ACT_HOLD] = "HOLD",
	        [DSM_COH_ACT_COUNT] = "COUNT",
	};

	return type > 0 && type <= DSM_COH_ACT_COUNT ? names[type] : "?";
}

static void count_races(mc_sim_t *s, unsigned n, int l, unsigned counter)
{
	switch (counter) {
	case DSM_COH_CNT_STALE_FAULT:
		s->cov[MC_COV_STALE_FAULT]++;
		break;
	case DSM_COH_CNT_READ_FAULT:
	case DSM_COH_CNT_WRITE_FAULT:
	case DSM_COH_CNT_UPGRADE:
		if (s->home[l] == n)
			s->cov[MC_COV_HOME_REQUEST]++;
		break;
	case DSM_COH_CNT_DEFERRED:
		s->cov[MC_COV_DEFERRED]++;
		break;
	case DSM_COH_CNT_QUEUED:
		s->cov[MC_COV_QUEUED]++;
		break;
	case DSM_COH_CNT_MIGRATORY:
		s->cov[MC_COV_MIGRATORY]++;
		break;
	case DSM_COH_CNT_EXCL_WRITE:
		s->cov[MC_COV_EXCL_WRITE]++;
		break;
	case DSM_COH_CNT_CLEAN_WB:
		s->cov[MC_COV_CLEAN_WB]++;
		break;
	}
}

static int pending_of(const mc_sim_t *s, int l)
{
	unsigned i;

	for (i = 0; i < s->npend; i++)
		if (s->pend[i].line == l)
			return (int)i;
	return -1;
}

/* The installs of the batch go in, in the order they came (the runtime's runs). */
static void flush_pending(mc_sim_t *s, unsigned n)
{
	unsigned i;

	for (i = 0; i < s->npend && !s->fail; i++) {
		mc_page_t *pg = &s->node[n].map[s->pend[i].line];

		if (pg->prot != PROT_NONE_) {
			failf(s, MC_BAD_ACTION, "node %u line %u: batched install over a page", n,
			      s->pend[i].line);
			return;
		}
		memcpy(pg->w, s->pend[i].w, sizeof(pg->w));
		pg->prot = s->pend[i].prot;
		check_swmr(s, s->pend[i].line);
	}
	s->npend = 0;
}

static void apply(mc_sim_t *s, unsigned n, const uint32_t *payload)
{
	mc_node_t *nd = &s->node[n];
	size_t i;

	int installed = PROT_NONE_;

	for (i = 0; i < s->acts.n && !s->fail; i++) {
		const dsm_coh_action_t *a = &s->acts.v[i];
		int l = line_index(s, a->line);
		mc_page_t *pg;
		const uint32_t *from = NULL;
		unsigned t;

		if (l < 0) {
			failf(s, MC_BAD_ACTION, "node %u: action on unknown line %llu", n,
			      (unsigned long long)a->line);
			return;
		}
		pg = &nd->map[l];
		/* The runtime's rule for a batch: what touches a mapping finds the lines
		 * waiting installed first (a WAKE of a waiting line excepted: its
		 * install wakes the threads). */
		if (s->npend && !dsm_coh_action_keeps_mappings(a) &&
		    !(a->type == DSM_COH_ACT_WAKE && pending_of(s, l) >= 0))
			flush_pending(s, n);
		if (s->fail)
			return;
		switch (a->src) {
		case DSM_COH_SRC_MSG:
			from = payload;
			break;
		case DSM_COH_SRC_MAP:
			from = pg->prot ? pg->w : NULL;
			break;
		case DSM_COH_SRC_HOME:
			from = s->home[l] == n ? nd->home_seg[l] : NULL;
			break;
		case DSM_COH_SRC_STAGING:
			from = nd->staging[l];
			break;
		}
		/* DESIGN.md: write-protect, copy out, zap. Reading the mapping
		 * after the zap copies nothing (the runtime would fault on the
		 * absent page); before the write-protect a store may still land
		 * after the copy was taken. */
		if (a->src == DSM_COH_SRC_MAP && pg->prot != PROT_RO) {
			failf(s, MC_ORDER, "node %u line %d: %s reads the mapping while %s", n, l,
			      act_name(a->type), pg->prot == PROT_RW ? "writable" : "absent");
			return;
		}
		if (a->src != DSM_COH_SRC_NONE && !from) {
			failf(s, MC_BAD_ACTION,
			      "node %u line %d: action %d reads absent data (src %d)", n, l,
			      a->type, a->src);
			return;
		}
		switch (a->type) {
		case DSM_COH_ACT_SEND: {
			mc_msg_t *m;

			if (a->peer >= s->cfg->nnodes || a->peer == n ||
			    ((a->msg.flags & DSM_COH_MSGF_DATA) && !from)) {
				failf(s, MC_BAD_ACTION, "node %u: bad send to %u", n, a->peer);
				return;
			}
			if (s->nnet == MC_MAX_MSGS) {
				failf(s, MC_BAD_ACTION, "network full");
				return;
			}
			m = &s->net[s->nnet++];
			memset(m, 0, sizeof(*m));
			m->src = (uint8_t)n;
			m->dst = (uint8_t)a->peer;
			m->m = a->msg;
			if (from)
				memcpy(m->data, from, sizeof(m->data));
			break;
		}
		case DSM_COH_ACT_RDMA_READ:
			if (a->peer != s->home[l] || nd->rdma[l]) {
				failf(s, MC_BAD_ACTION, "node %u line %d: bad RDMA read", n, l);
				return;
			}
			nd->rdma[l] = 1;
			break;
		case DSM_COH_ACT_RDMA_WRITE:
			if (a->peer != s->home[l] || a->peer == n || nd->wb[l] || !from) {
				failf(s, MC_BAD_ACTION, "node %u line %d: bad RDMA write", n, l);
				return;
			}
			/* The runtime copies into its bounce buffer as the action runs. */
			memcpy(nd->wbuf[l], from, sizeof(nd->wbuf[l]));
			nd->wb[l] = 1;
			break;
		case DSM_COH_ACT_INSTALL_RO:
		case DSM_COH_ACT_INSTALL_RW:
			if (a->src == DSM_COH_SRC_NONE) {
				/* Lifting the write-protect needs the page there. */
				if (pg->prot != PROT_RO || a->type != DSM_COH_ACT_INSTALL_RW) {
					failf(s, MC_BAD_ACTION,
					      "node %u line %d: upgrade of absent page", n, l);
					return;
				}
			} else {
				/* UFFDIO_COPY onto a present page fails with EEXIST. */
				if (pg->prot != PROT_NONE_ || pending_of(s, l) >= 0) {
					failf(s, MC_BAD_ACTION,
					      "node %u line %d: install over a page", n, l);
					return;
				}
				if (s->batching && a->src == DSM_COH_SRC_MSG) {
					mc_pending_t *p = &s->pend[s->npend++];

					p->line = (uint8_t)l;
					p->prot = a->type == DSM_COH_ACT_INSTALL_RW ? PROT_RW
					                                            : PROT_RO;
					memcpy(p->w, from, sizeof(p->w));
					installed = p->prot;
					s->batched_installs++;
					break;
				}
				memcpy(pg->w, from, sizeof(pg->w));
			}
			pg->prot = a->type == DSM_COH_ACT_INSTALL_RW ? PROT_RW : PROT_RO;
			installed = pg->prot;
			break;
		case DSM_COH_ACT_WRITE_PROTECT:
			if (pg->prot == PROT_NONE_) {
				failf(s, MC_BAD_ACTION,
				      "node %u line %d: write-protect of absent page", n, l);
				return;
			}
			pg->prot = PROT_RO;
			break;
		case DSM_COH_ACT_ZAP:
			pg->prot = PROT_NONE_;
			for (t = 0; t < MC_WORDS; t++)
				pg->w[t] = POISON;
			break;
		case DSM_COH_ACT_STORE_HOME:
			if (s->home[l] != n || !from) {
				failf(s, MC_BAD_ACTION, "node %u line %d: store to a foreign home",
				      n, l);
				return;
			}
			memcpy(nd->home_seg[l], from, sizeof(nd->home_seg[l]));
			if (a->src == DSM_COH_SRC_MAP)
				s->cov[MC_COV_HOME_GIVES_UP]++;
			break;
		case DSM_COH_ACT_WAKE:
			for (t = 0; t < s->cfg->nthreads; t++)
				if (nd->th[t].status == T_BLOCKED && nd->th[t].line == l) {
					nd->th[t].status = T_WOKEN;
					nd->th[t].granted = (uint8_t)installed;
					nd->th[t].woke_step = s->step;
				}
			break;
		case DSM_COH_ACT_HOLD:
			/* Re-arming a running hold is allowed: one HOLD_DONE follows. */
			nd->hold[l] = 1;
			break;
		case DSM_COH_ACT_COUNT:
			if (a->counter < DSM_COH_CNT_NCOUNTERS)
				s->counters[a->counter]++;
			count_races(s, n, l, a->counter);
			break;
		default:
			failf(s, MC_BAD_ACTION, "node %u: unknown action %d", n, a->type);
			return;
		}
		check_swmr(s, (unsigned)l);
	}
}

/* The engine's idea of a line and the page table must agree after every
 * event: a missing or extra action shows here even when no other rank
 * happens to touch the line. */
static void check_agree(mc_sim_t *s, unsigned n, int l)
{
	static const uint8_t prot_of[] = {
	        [DSM_COH_I] = PROT_NONE_,  [DSM_COH_S] = PROT_RO,     [DSM_COH_M] = PROT_RW,
	        [DSM_COH_IS] = PROT_NONE_, [DSM_COH_IM] = PROT_NONE_, [DSM_COH_SM] = PROT_RO,
	        [DSM_COH_E] = PROT_RO};
	dsm_coh_line_info_t li;

	if (l < 0)
		return;
	dsm_coh_line_info(s->eng[n], s->line_id[l], &li);
	if (s->node[n].map[l].prot != prot_of[li.state])
		failf(s, MC_MISMATCH, "node %u line %d: engine says %s, page is %s", n, l,
		      dsm_coh_state_name((int)li.state),
		      s->node[n].map[l].prot == PROT_RW   ? "read-write"
		      : s->node[n].map[l].prot == PROT_RO ? "read-only"
		                                          : "absent");
	/* What makes a clean give-up (WB without data) right: an E copy is the home
	 * segment's bytes. */
	if (!s->fail && li.state == DSM_COH_E &&
	    memcmp(s->node[n].map[l].w, s->node[s->home[l]].home_seg[l],
	           sizeof(s->node[n].map[l].w)))
		failf(s, MC_DATA,
		      "node %u line %d: exclusive clean copy differs from the home segment", n, l);
}

/* Invariant 2 (PROTOCOL.md): while the directory says U or S nobody can write the line, so
 * the home segment holds its last value (an eviction's write-back reached it first). */
static void check_home_segment(mc_sim_t *s, int l)
{
	dsm_coh_dir_info_t d;

	if (l < 0)
		return;
	dsm_coh_dir_info(s->eng[s->home[l]], s->line_id[l], &d);
	if (d.state != DSM_COH_DIR_M &&
	    memcmp(s->node[s->home[l]].home_seg[l], s->shadow[l], sizeof(s->shadow[l])))
		failf(s, MC_DATA, "line %d: the directory says %s, the home segment is stale", l,
		      d.state == DSM_COH_DIR_U ? "uncached" : "shared");
}

/* How many COUNTs of counter the last event's actions hold. */
static unsigned acts_counted(const mc_sim_t *s, unsigned counter)
{
	unsigned k = 0;
	size_t i;

	for (i = 0; i < s->acts.n; i++)
		k += s->acts.v[i].type == DSM_COH_ACT_COUNT && s->acts.v[i].counter == counter;
	return k;
}

/* The last event's actions copy the mapping out for the home (a modified line's data). */
static int acts_write_back(const mc_sim_t *s)
{
	size_t i;

	for (i = 0; i < s->acts.n; i++)
		if (s->acts.v[i].src == DSM_COH_SRC_MAP &&
		    (s->acts.v[i].type == DSM_COH_ACT_SEND ||
		     s->acts.v[i].type == DSM_COH_ACT_RDMA_WRITE))
			return 1;
	return 0;
}

/*
 * The home's side of an eviction's races. The checker keeps a copy of the line's queue
 * (what was queued: the events that counted QUEUED; what left: the drop in its length), so
 * that it sees when an EVICT is served and whether that found anything to take: an EVICT
 * that finds the copy gone ends its transaction at once, so it is a no-op exactly when the
 * home serves something after it in the same event, or is idle afterwards (a real one waits
 * for the evicting rank's INV_ACK or WB, never sent inside this call).
 */
static void cov_home_evict(mc_sim_t *s, unsigned h, int l, const dsm_coh_event_t *ev, unsigned q0)
{
	int evict = ev->type == DSM_COH_EV_MSG && ev->msg.type == DSM_COH_MSG_EVICT;
	unsigned queued = acts_counted(s, DSM_COH_CNT_QUEUED), out, i;
	dsm_coh_dir_info_t d;

	dsm_coh_dir_info(s->eng[h], s->line_id[l], &d);
	if (queued) {
		if (s->homeq_n[l] < MC_HOMEQ)
			s->homeq[l][s->homeq_n[l]++] = (uint8_t)evict;
		if (evict)
			s->cov[MC_COV_EVICT_QUEUED]++;
	} else if (evict && !d.busy) {
		s->cov[MC_COV_EVICT_NOOP]++;
	}
	out = q0 + queued > d.queued ? q0 + queued - d.queued : 0;
	for (i = 0; i < out && s->homeq_n[l]; i++) {
		if (s->homeq[l][0] && (i + 1 < out || !d.busy))
			s->cov[MC_COV_EVICT_NOOP]++;
		memmove(&s->homeq[l][0], &s->homeq[l][1], --s->homeq_n[l]);
	}
}

/* The evicting rank's side: its modified copy written back, an evicting owner downgraded
 * by a reader's FWD_S, a line it evicted asked for again. */
static void cov_node_evict(mc_sim_t *s, unsigned n, int l, const dsm_coh_line_info_t *before)
{
	uint16_t bit = (uint16_t)(1u << n);
	dsm_coh_line_info_t li;

	dsm_coh_line_info(s->eng[n], s->line_id[l], &li);
	if (before->evicting && before->state == DSM_COH_M && acts_write_back(s))
		s->cov[MC_COV_EVICT_DIRTY]++;
	/* From here the state is the one an eviction of that S copy would reach: its EVICT,
	 * sent to take an owned copy, will find a sharer. */
	if (before->evicting && (before->state == DSM_COH_M || before->state == DSM_COH_E) &&
	    li.state == DSM_COH_S && li.evicting)
		s->cov[MC_COV_EVICT_FWD_S]++;
	if ((s->evicted[l] & bit) &&
	    acts_counted(s, DSM_COH_CNT_READ_FAULT) + acts_counted(s, DSM_COH_CNT_WRITE_FAULT)) {
		s->cov[MC_COV_EVICT_REFAULT]++;
		s->evicted[l] &= (uint16_t)~bit;
	}
}

static void feed(mc_sim_t *s, unsigned n, const dsm_coh_event_t *ev, const uint32_t *payload)
{
	int l = line_index(s, ev->type == DSM_COH_EV_MSG ? ev->msg.line : ev->line);
	dsm_coh_line_info_t li = {0};
	dsm_coh_dir_info_t d0 = {0};
	int rc;

	if (l >= 0) {
		dsm_coh_line_info(s->eng[n], s->line_id[l], &li);
		if (s->home[l] == n)
			dsm_coh_dir_info(s->eng[n], s->line_id[l], &d0);
	}
	if (ev->type == DSM_COH_EV_MSG) {
		if (ev->msg.type == DSM_COH_MSG_INV && li.state == DSM_COH_SM)
			s->cov[MC_COV_INV_AT_SM]++;
		if (ev->msg.type == DSM_COH_MSG_GET_M && (ev->msg.flags & DSM_COH_MSGF_UPGRADE) &&
		    l >= 0 && s->home[l] == n &&
		    !dsm_coh_dir_is_sharer(s->eng[n], ev->msg.line, ev->msg.src))
			s->cov[MC_COV_STALE_UPGRADE]++;
	}
	s->acts.n = 0;
	rc = dsm_coh_handle(s->eng[n], ev, &s->acts);
	if (rc == DSM_ERR_PROTOCOL) {
		if (ev->type == DSM_COH_EV_MSG)
			failf(s, MC_PROTOCOL, "node %u cannot take %s from %u for line %d", n,
			      dsm_coh_msg_name(ev->msg.type), ev->msg.src,
			      line_index(s, ev->msg.line));
		else
			failf(s, MC_PROTOCOL, "node %u cannot take event %d for line %d", n,
			      ev->type, line_index(s, ev->line));
		return;
	}
	if (rc < 0) {
		failf(s, MC_BAD_ACTION, "engine error %d", rc);
		return;
	}
	apply(s, n, payload);
	if (s->fail || l < 0)
		return;
	if (s->cfg->evictions) {
		if (s->home[l] == n)
			cov_home_evict(s, n, l, ev, d0.queued);
		else
			cov_node_evict(s, n, l, &li);
	}
	if (s->home[l] == n)
		check_home_segment(s, l);
	if (!s->fail && !s->batching)
		check_agree(s, n, l);
}

/* ---- Steps ---- */

static int hold_can_end(const mc_sim_t *s, unsigned n, unsigned l)
{
	unsigned t;

	/* The hold models "until the woken threads have run": it ends once no
	 * thread woken on the line is still waiting to retry. */
	if (!s->node[n].hold[l])
		return 0;
	if (s->cfg->early_hold)
		return 1;
	for (t = 0; t < s->cfg->nthreads; t++)
		if (s->node[n].th[t].status == T_WOKEN && s->node[n].th[t].line == l)
			return 0;
	return 1;
}

static int msg_deliverable(const mc_sim_t *s, unsigned i)
{
	unsigned j;

	if (!s->cfg->fifo)
		return 1;
	for (j = 0; j < i; j++)
		if (s->net[j].src == s->net[i].src && s->net[j].dst == s->net[i].dst)
			return 0;
	return 1;
}

/* The runtime may evict a copy homed elsewhere that the engine can give up now: a stable
 * S, M or E (not held for woken threads, not waiting for data or a write-back, no message
 * deferred, not already being evicted). */
static int can_evict(const mc_sim_t *s, unsigned n, unsigned l)
{
	dsm_coh_line_info_t li;

	if (s->home[l] == n)
		return 0;
	dsm_coh_line_info(s->eng[n], s->line_id[l], &li);
	return (li.state == DSM_COH_S || li.state == DSM_COH_M || li.state == DSM_COH_E) &&
	       !li.held && !li.rdma && !li.wb && !li.deferred && !li.evicting;
}

static unsigned choices(const mc_sim_t *s, mc_choice_t *c)
{
	unsigned n, t, l, i, k = 0;

	for (n = 0; n < s->cfg->nnodes; n++) {
		const mc_node_t *nd = &s->node[n];

		for (t = 0; t < s->cfg->nthreads; t++)
			if (nd->th[t].status == T_RUN || nd->th[t].status == T_WOKEN)
				c[k++] = (mc_choice_t){C_THREAD, (uint8_t)n, (uint8_t)t};
		if (nd->nuffd)
			c[k++] = (mc_choice_t){C_UFFD, (uint8_t)n, 0};
		for (l = 0; l < s->cfg->nlines; l++) {
			if (nd->rdma[l])
				c[k++] = (mc_choice_t){C_RDMA, (uint8_t)n, (uint8_t)l};
			if (nd->wb[l])
				c[k++] = (mc_choice_t){C_WB, (uint8_t)n, (uint8_t)l};
			if (hold_can_end(s, n, l))
				c[k++] = (mc_choice_t){C_HOLD, (uint8_t)n, (uint8_t)l};
		}
	}
	for (i = 0; i < s->nnet; i++)
		if (msg_deliverable(s, i))
			c[k++] = (mc_choice_t){C_MSG, s->net[i].dst, (uint8_t)i};
	/* A batch: everything the pair of the pair's first message has in flight, when
	 * that is two messages or more. */
	for (i = 0; s->cfg->batch && i < s->nnet; i++) {
		unsigned j, first = 1, more = 0;

		for (j = 0; j < s->nnet; j++)
			if (s->net[j].src == s->net[i].src && s->net[j].dst == s->net[i].dst) {
				first &= j >= i;
				more += j > i;
			}
		if (first && more)
			c[k++] = (mc_choice_t){C_BATCH, s->net[i].dst, (uint8_t)i};
	}
	/* Last, so that a configuration without evictions has the choices it always had. */
	for (n = 0; s->nevict < s->cfg->evictions && n < s->cfg->nnodes; n++)
		for (l = 0; l < s->cfg->nlines; l++)
			if (can_evict(s, n, l))
				c[k++] = (mc_choice_t){C_EVICT, (uint8_t)n, (uint8_t)l};
	return k;
}

#define MAX_CHOICES (MC_MAX_NODES * (MC_MAX_THREADS + 1 + 4 * MC_MAX_LINES) + 2 * MC_MAX_MSGS)

static void thread_step(mc_sim_t *s, unsigned n, unsigned t)
{
	mc_thread_t *th = &s->node[n].th[t];
	const mc_op_t *op = &s->cfg->ops[n][t][th->pc];
	mc_page_t *pg = &s->node[n].map[op->line];
	int need = op->write ? PROT_RW : PROT_RO;

	/* A grant must stay until the thread it woke has run (the hold): a
	 * thread granted what it asked for that finds it gone again may lose
	 * the line forever. */
	if (th->status == T_WOKEN && th->granted >= need && pg->prot < need &&
	    !s->cfg->no_grant_check && !s->cfg->early_hold) {
		failf(s, MC_STARVATION,
		      "node %u thread %u: line %u taken away before the woken thread ran", n, t,
		      op->line);
		return;
	}
	if (th->status == T_WOKEN && s->step > th->woke_step + 1)
		s->cov[MC_COV_LATE_RETRY]++;
	th->granted = 0;
	if (pg->prot == PROT_RW || (!op->write && pg->prot == PROT_RO)) {
		if (op->write) {
			pg->w[op->word] = op->value;
			s->shadow[op->line][op->word] = op->value;
		} else if (pg->w[op->word] != s->shadow[op->line][op->word]) {
			failf(s, MC_DATA,
			      "node %u thread %u read %#x from line %u word %u, last write %#x", n,
			      t, pg->w[op->word], op->line, op->word,
			      s->shadow[op->line][op->word]);
			return;
		}
		if (th->fault_step && s->step - th->fault_step > s->max_fault_steps)
			s->max_fault_steps = s->step - th->fault_step;
		th->fault_step = 0;
		th->pc++;
		th->status = th->pc == s->cfg->nops[n][t] ? T_DONE : T_RUN;
		return;
	}
	/* The kernel puts the thread to sleep and queues a message for the loop. */
	th->status = T_BLOCKED;
	th->line = op->line;
	if (!th->fault_step)
		th->fault_step = s->step;
	if (s->cfg->early_hold) {
		unsigned i;

		/* A line that bounces makes a thread fault again and again while
		 * its earlier messages are unread; an identical unread message
		 * already stands for this one, and the state space stays finite. */
		for (i = 0; i < s->node[n].nuffd; i++)
			if (s->node[n].uffd[i].thread == t && s->node[n].uffd[i].line == op->line &&
			    s->node[n].uffd[i].write == op->write)
				return;
	}
	if (s->node[n].nuffd == MC_MAX_UFFD) {
		failf(s, MC_BAD_ACTION, "node %u: userfaultfd queue overflows", n);
		return;
	}
	s->node[n].uffd[s->node[n].nuffd++] =
	        (mc_fault_t){(uint8_t)t, op->line, (uint8_t)(op->write ? 1 : 0)};
}

static void do_step(mc_sim_t *s, const mc_choice_t *c)
{
	mc_node_t *nd = &s->node[c->node];
	dsm_coh_event_t ev;

	s->step++;
	memset(&ev, 0, sizeof(ev));
	switch (c->kind) {
	case C_THREAD:
		thread_step(s, c->node, c->idx);
		break;
	case C_UFFD: {
		mc_fault_t f = nd->uffd[0];

		memmove(&nd->uffd[0], &nd->uffd[1], --nd->nuffd * sizeof(nd->uffd[0]));
		ev.type = f.write ? DSM_COH_EV_WRITE_FAULT : DSM_COH_EV_READ_FAULT;
		ev.line = s->line_id[f.line];
		ev.home = s->home[f.line];
		feed(s, c->node, &ev, NULL);
		break;
	}
	case C_MSG: {
		mc_msg_t m = s->net[c->idx];

		memmove(&s->net[c->idx], &s->net[c->idx + 1],
		        (size_t)(--s->nnet - c->idx) * sizeof(s->net[0]));
		ev.type = DSM_COH_EV_MSG;
		ev.msg = m.m;
		feed(s, c->node, &ev, (m.m.flags & DSM_COH_MSGF_DATA) ? m.data : NULL);
		break;
	}
	case C_BATCH: {
		mc_msg_t batch[MC_MAX_MSGS];
		unsigned nb = 0, j, kept = 0, l;
		uint8_t src = s->net[c->idx].src, dst = s->net[c->idx].dst;

		/* Out of the network first: what the batch sends goes behind it. */
		for (j = 0; j < s->nnet; j++)
			if (s->net[j].src == src && s->net[j].dst == dst)
				batch[nb++] = s->net[j];
			else
				s->net[kept++] = s->net[j];
		s->nnet = (uint16_t)kept;
		s->batching = 1;
		s->batches++;
		for (j = 0; j < nb && !s->fail; j++) {
			ev.type = DSM_COH_EV_MSG;
			ev.msg = batch[j].m;
			feed(s, c->node, &ev,
			     (batch[j].m.flags & DSM_COH_MSGF_DATA) ? batch[j].data : NULL);
		}
		if (!s->fail && !s->cfg->batch_keep_open)
			flush_pending(s, c->node);
		s->batching = 0;
		for (l = 0; l < s->cfg->nlines && !s->fail; l++)
			check_agree(s, c->node, (int)l);
		break;
	}
	case C_RDMA:
		/* The read takes the home segment as it is when it completes. */
		memcpy(nd->staging[c->idx], s->node[s->home[c->idx]].home_seg[c->idx],
		       sizeof(nd->staging[c->idx]));
		nd->rdma[c->idx] = 0;
		ev.type = DSM_COH_EV_RDMA_DONE;
		ev.line = s->line_id[c->idx];
		feed(s, c->node, &ev, NULL);
		break;
	case C_WB:
		/* The write lands in the home segment when it completes. */
		memcpy(s->node[s->home[c->idx]].home_seg[c->idx], nd->wbuf[c->idx],
		       sizeof(nd->wbuf[c->idx]));
		nd->wb[c->idx] = 0;
		ev.type = DSM_COH_EV_RDMA_WRITE_DONE;
		ev.line = s->line_id[c->idx];
		feed(s, c->node, &ev, NULL);
		break;
	case C_HOLD:
		nd->hold[c->idx] = 0;
		ev.type = DSM_COH_EV_HOLD_DONE;
		ev.line = s->line_id[c->idx];
		feed(s, c->node, &ev, NULL);
		break;
	case C_EVICT:
		s->nevict++;
		s->evicted[c->idx] |= (uint16_t)(1u << c->node);
		ev.type = DSM_COH_EV_EVICT;
		ev.line = s->line_id[c->idx];
		feed(s, c->node, &ev, NULL);
		break;
	}
}

static void check_progress(mc_sim_t *s)
{
	unsigned n, t;

	if (s->cfg->early_hold) {
		/* Lines may bounce, but a random schedule still ends. */
		if (s->step > 1000 * s->bound)
			failf(s, MC_LIVELOCK, "schedule longer than %llu steps",
			      (unsigned long long)(1000 * s->bound));
		return;
	}
	for (n = 0; n < s->cfg->nnodes; n++)
		for (t = 0; t < s->cfg->nthreads; t++) {
			const mc_thread_t *th = &s->node[n].th[t];

			if (th->fault_step && s->step - th->fault_step > s->bound) {
				failf(s, MC_STARVATION,
				      "node %u thread %u has waited %llu steps (bound %llu)", n, t,
				      (unsigned long long)(s->step - th->fault_step),
				      (unsigned long long)s->bound);
				return;
			}
		}
}

/* Nothing more can happen: every thread must be done and the directory must
 * describe the copies exactly. */
static void check_final(mc_sim_t *s)
{
	unsigned n, t, l, w;

	for (n = 0; n < s->cfg->nnodes; n++)
		for (t = 0; t < s->cfg->nthreads; t++)
			if (s->node[n].th[t].status != T_DONE) {
				failf(s, MC_DEADLOCK,
				      "node %u thread %u stuck (status %d, line %d)", n, t,
				      s->node[n].th[t].status, s->node[n].th[t].line);
				return;
			}
	for (l = 0; l < s->cfg->nlines; l++) {
		unsigned h = s->home[l];
		dsm_coh_dir_info_t d;

		dsm_coh_dir_info(s->eng[h], s->line_id[l], &d);
		if (d.busy || d.queued) {
			failf(s, MC_FINAL, "line %u: home %u still busy", l, h);
			return;
		}
		for (n = 0; n < s->cfg->nnodes; n++) {
			dsm_coh_line_info_t li;
			const mc_page_t *pg = &s->node[n].map[l];
			int want;

			dsm_coh_line_info(s->eng[n], s->line_id[l], &li);
			if (d.state == DSM_COH_DIR_M)
				/* an owner that never wrote its exclusive copy: E */
				want = d.owner != n            ? DSM_COH_I
				       : li.state == DSM_COH_E ? DSM_COH_E
				                               : DSM_COH_M;
			else if (d.state == DSM_COH_DIR_S)
				want = dsm_coh_dir_is_sharer(s->eng[h], s->line_id[l], n)
				               ? DSM_COH_S
				               : DSM_COH_I;
			else
				want = DSM_COH_I;
			/* An evicted line is I here, and the directory U or without it. */
			if ((int)li.state != want || li.held || li.rdma || li.wb || li.deferred ||
			    li.evicting ||
			    pg->prot != (want == DSM_COH_M                        ? PROT_RW
			                 : want == DSM_COH_S || want == DSM_COH_E ? PROT_RO
			                                                          : PROT_NONE_)) {
				failf(s, MC_FINAL,
				      "line %u node %u: state %s prot %d, directory says %s", l, n,
				      dsm_coh_state_name((int)li.state), pg->prot,
				      dsm_coh_state_name(want));
				return;
			}
			for (w = 0; w < MC_WORDS; w++)
				if (pg->prot && pg->w[w] != s->shadow[l][w]) {
					failf(s, MC_FINAL, "line %u node %u: copy is stale", l, n);
					return;
				}
		}
		dsm_coh_line_info_t oi;

		dsm_coh_line_info(s->eng[d.owner], s->line_id[l], &oi);
		for (w = 0; w < MC_WORDS; w++)
			if ((d.state != DSM_COH_DIR_M || oi.state == DSM_COH_E) &&
			    s->node[h].home_seg[l][w] != s->shadow[l][w]) {
				failf(s, MC_FINAL, "line %u: home segment is stale", l);
				return;
			}
	}
}

/* ---- State hashing ---- */

static int cmp_msg(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(mc_msg_t));
}

/* A hash of everything that decides the future (not the step counters). */
static uint64_t sim_hash(const mc_sim_t *s, uint8_t *buf, size_t cap)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	mc_msg_t net[MC_MAX_MSGS];
	unsigned n, t;

	for (n = 0; n < s->cfg->nnodes; n++) {
		const mc_node_t *nd = &s->node[n];
		size_t len = dsm_coh_node_encode(s->eng[n], buf, cap);

		h = dsm_hash_bytes(buf, len < cap ? len : cap, h);
		h = dsm_hash_bytes((const uint8_t *)nd->map, sizeof(nd->map), h);
		h = dsm_hash_bytes((const uint8_t *)nd->home_seg, sizeof(nd->home_seg), h);
		h = dsm_hash_bytes(nd->rdma, sizeof(nd->rdma), h);
		h = dsm_hash_bytes(nd->hold, sizeof(nd->hold), h);
		h = dsm_hash_bytes(nd->wb, sizeof(nd->wb), h);
		h = dsm_hash_bytes((const uint8_t *)nd->wbuf, sizeof(nd->wbuf), h);
		h = dsm_hash_bytes(&nd->nuffd, 1, h);
		h = dsm_hash_bytes((const uint8_t *)nd->uffd, nd->nuffd * sizeof(nd->uffd[0]), h);
		for (t = 0; t < s->cfg->nthreads; t++) {
			uint8_t th[4] = {nd->th[t].pc, nd->th[t].status, nd->th[t].granted,
			                 nd->th[t].status == T_BLOCKED ||
			                                 nd->th[t].status == T_WOKEN
			                         ? nd->th[t].line
			                         : 0};

			h = dsm_hash_bytes(th, sizeof(th), h);
		}
	}
	h = dsm_hash_bytes((const uint8_t *)s->shadow, sizeof(s->shadow), h);
	if (s->cfg->evictions)
		h = dsm_hash_bytes(&s->nevict, 1, h);
	/* Without FIFO the network is a multiset: sort it. */
	memcpy(net, s->net, s->nnet * sizeof(net[0]));
	if (!s->cfg->fifo)
		qsort(net, s->nnet, sizeof(net[0]), cmp_msg);
	return dsm_hash_bytes((const uint8_t *)net, s->nnet * sizeof(net[0]), h);
}

/* ---- Exhaustive search ---- */

typedef struct vset {
	uint64_t *keys; /* 0: free */
	uint8_t *color; /* 1: on the DFS path, 2: finished */
	double *paths;  /* finished: the schedules from here to the end */
	size_t cap, n;
} vset_t;

static size_t vset_slot(vset_t *v, uint64_t k, int add);

static uint8_t *vset_find(vset_t *v, uint64_t k, int add)
{
	size_t i = vset_slot(v, k, add);

	return i == SIZE_MAX ? NULL : &v->color[i];
}

static size_t vset_slot(vset_t *v, uint64_t k, int add)
{
	size_t i;

	if (k == 0)
		k = 1;
	if (add && (v->n + 1) * 2 > v->cap) {
		vset_t nv = {calloc(v->cap * 2, 8), calloc(v->cap * 2, 1),
		             calloc(v->cap * 2, sizeof(double)), v->cap * 2, 0};

		if (!nv.keys || !nv.color || !nv.paths)
			abort();
		for (i = 0; i < v->cap; i++)
			if (v->keys[i]) {
				size_t j = v->keys[i] & (nv.cap - 1);

				while (nv.keys[j])
					j = (j + 1) & (nv.cap - 1);
				nv.keys[j] = v->keys[i];
				nv.color[j] = v->color[i];
				nv.paths[j] = v->paths[i];
				nv.n++;
			}
		free(v->keys);
		free(v->color);
		free(v->paths);
		*v = nv;
	}
	for (i = k & (v->cap - 1); v->keys[i]; i = (i + 1) & (v->cap - 1))
		if (v->keys[i] == k)
			return i;
	if (!add)
		return SIZE_MAX;
	v->keys[i] = k;
	v->n++;
	return i;
}

typedef struct dfs {
	vset_t seen;
	uint64_t max_states;
	uint64_t edges;
	uint64_t max_depth;
	uint8_t buf[1 << 14];
	mc_choice_t path[4096];
	unsigned fail_depth;
	int nomemo;
	mc_result_t *res;
} dfs_t;

static void report(mc_sim_t *s, mc_result_t *res)
{
	res->fail = s->fail;
	snprintf(res->what, sizeof(res->what), "%s: %s", mc_fail_name((int)s->fail), s->what);
}

static const char *choice_str(const mc_sim_t *s, const mc_choice_t *c, char *b, size_t n)
{
	static const char *const kinds[] = {"thread", "uffd",       "msg",   "rdma",
	                                    "hold",   "rdma-write", "batch", "evict"};

	if ((c->kind == C_MSG || c->kind == C_BATCH) && c->idx < s->nnet)
		snprintf(b, n, "deliver %s%s %u->%u", c->kind == C_BATCH ? "a batch from " : "",
		         dsm_coh_msg_name(s->net[c->idx].m.type), s->net[c->idx].src,
		         s->net[c->idx].dst);
	else
		snprintf(b, n, "%s node %u idx %u", kinds[c->kind], c->node, c->idx);
	return b;
}

/* Returns nonzero to stop; *paths_p: the schedules from s to the end. */
static int dfs_visit(dfs_t *d, mc_sim_t *s, unsigned depth, double *paths_p)
{
	mc_choice_t c[MAX_CHOICES];
	uint64_t h = sim_hash(s, d->buf, sizeof(d->buf));
	double paths = 0;
	size_t slot = vset_slot(&d->seen, h, 0);
	unsigned k, i, j;

	if (slot != SIZE_MAX && d->nomemo && d->seen.color[slot] == 2)
		slot = SIZE_MAX; /* checking the path count: walk it again */
	if (slot != SIZE_MAX) {
		*paths_p = d->seen.paths[slot];
		if (d->seen.color[slot] == 1)
			d->res->back_edges++;
		if (d->seen.color[slot] == 1 && !s->cfg->early_hold) {
			failf(s, MC_LIVELOCK,
			      "step %u returns to a state already on its path: a cycle", depth);
			return 1;
		}
		return 0;
	}
	if (d->seen.n >= d->max_states) {
		failf(s, MC_BAD_ACTION, "more than %llu states", (unsigned long long)d->max_states);
		return 1;
	}
	*vset_find(&d->seen, h, 1) = 1;
	if (depth > d->max_depth)
		d->max_depth = depth;
	if (depth >= sizeof(d->path) / sizeof(d->path[0])) {
		failf(s, MC_LIVELOCK, "path longer than %u steps", depth);
		return 1;
	}
	k = choices(s, c);
	if (k == 0) {
		paths = 1;
		check_final(s);
		if (s->fail)
			return 1;
	}
	for (i = 0; i < k; i++) {
		mc_sim_t *child = malloc(sizeof(*child));
		double p = 0;
		int stop;

		if (!child || sim_clone(child, s) < 0)
			abort();
		d->path[depth] = c[i];
		d->fail_depth = depth + 1;
		d->edges++;
		/* Count what this one transition does (each is taken once). */
		memset(child->counters, 0, sizeof(child->counters));
		memset(child->cov, 0, sizeof(child->cov));
		child->batches = child->batched_installs = 0;
		do_step(child, &c[i]);
		d->res->batches += child->batches;
		d->res->evictions += c[i].kind == C_EVICT;
		d->res->batched_installs += child->batched_installs;
		for (j = 0; j < DSM_COH_CNT_NCOUNTERS; j++)
			d->res->counters[j] += child->counters[j];
		for (j = 0; j < MC_NCOV; j++)
			d->res->cov[j] += child->cov[j];
		if (child->max_fault_steps > d->res->max_fault_steps)
			d->res->max_fault_steps = child->max_fault_steps;
		stop = child->fail ? 1 : dfs_visit(d, child, depth + 1, &p);
		paths += p;
		if (stop && !s->fail) {
			s->fail = child->fail;
			memcpy(s->what, child->what, sizeof(s->what));
		}
		sim_fini(child);
		free(child);
		if (stop)
			return 1;
	}
	slot = vset_slot(&d->seen, h, 0);
	d->seen.color[slot] = 2;
	d->seen.paths[slot] = paths;
	*paths_p = paths;
	return 0;
}

int mc_exhaustive(const mc_config_t *cfg, uint64_t max_states, mc_result_t *res)
{
	dfs_t *d = calloc(1, sizeof(*d));
	mc_sim_t *s = malloc(sizeof(*s));
	int rc;

	memset(res, 0, sizeof(*res));
	if (!d || !s)
		abort();
	d->res = res;
	d->max_states = max_states;
	d->nomemo = getenv("MC_NOMEMO") != NULL;
	d->seen.cap = 1 << 16;
	d->seen.keys = calloc(d->seen.cap, 8);
	d->seen.color = calloc(d->seen.cap, 1);
	d->seen.paths = calloc(d->seen.cap, sizeof(double));
	rc = sim_init(s, cfg);
	if (rc == 0) {
		if (dfs_visit(d, s, 0, &res->orders)) {
			unsigned i;

			report(s, res);
			/* The failing path, replayed, for whoever debugs it. */
			if (getenv("MC_TRACE")) {
				mc_sim_t *r = malloc(sizeof(*r));
				char b[64];

				if (r && sim_init(r, cfg) == 0)
					for (i = 0; i < d->fail_depth; i++) {
						fprintf(stderr, "  %3u: %s\n", i,
						        choice_str(r, &d->path[i], b, sizeof(b)));
						do_step(r, &d->path[i]);
					}
				if (r)
					sim_fini(r);
				free(r);
			}
		}
		res->states = d->seen.n;
		res->max_depth = d->max_depth;
		res->steps = d->edges;
	}
	sim_fini(s);
	free(s);
	free(d->seen.keys);
	free(d->seen.color);
	free(d->seen.paths);
	free(d);
	return rc;
}

/* ---- Random search ---- */

static uint64_t rnd(uint64_t *x)
{
	/* xorshift64* */
	*x ^= *x >> 12;
	*x ^= *x << 25;
	*x ^= *x >> 27;
	return *x * 0x2545f4914f6cdd1dULL;
}

static unsigned rnd_below(uint64_t *x, unsigned n)
{
	return (unsigned)((rnd(x) >> 32) * n >> 32);
}

void mc_random_config(uint64_t *rng, const mc_random_opts_t *o, mc_config_t *cfg)
{
	static const dsm_coh_dist_t dists[] = {DSM_COH_DIST_BLOCK, DSM_COH_DIST_CYCLIC,
	                                       DSM_COH_DIST_ZERO, DSM_COH_DIST_RANK};
	unsigned n, t, i, hot;

	memset(cfg, 0, sizeof(*cfg));
	cfg->nnodes = 2 + rnd_below(rng, o->max_nodes - 1);
	cfg->nlines = 1 + rnd_below(rng, o->max_lines);
	cfg->nthreads = 1 + rnd_below(rng, o->max_threads);
	cfg->data_mode = o->any_data_mode ? (dsm_coh_data_mode_t)rnd_below(rng, 2) : o->data_mode;
	cfg->wb_mode = o->any_data_mode ? (dsm_coh_data_mode_t)rnd_below(rng, 2) : o->data_mode;
	cfg->bugs = o->bugs;
	cfg->fifo = o->fifo;
	cfg->dist = dists[rnd_below(rng, 4)];
	cfg->early_hold = o->early_holds && rnd_below(rng, 4) == 0;
	cfg->batch = o->batches && rnd_below(rng, 2) == 0;
	cfg->batch_keep_open = o->batch_keep_open;
	cfg->migratory = o->migratory == 2 ? rnd_below(rng, 4) != 0 : o->migratory;
	/* Contention is where the bugs are: most accesses go to a few lines. */
	hot = 1 + rnd_below(rng, cfg->nlines);
	for (n = 0; n < cfg->nnodes; n++)
		for (t = 0; t < cfg->nthreads; t++) {
			cfg->nops[n][t] = 1 + rnd_below(rng, o->max_ops);
			for (i = 0; i < cfg->nops[n][t]; i++) {
				mc_op_t *op = &cfg->ops[n][t][i];

				op->line = (uint8_t)rnd_below(rng, rnd_below(rng, 4) ? hot
				                                                     : cfg->nlines);
				op->word = (uint8_t)rnd_below(rng, MC_WORDS);
				op->write = (uint8_t)rnd_below(rng, 2);
				op->value = 1 + (n << 16 | t << 8 | i);
			}
		}
	/* Drawn last: without evictions the configurations are the ones they always were. */
	if (o->evictions && rnd_below(rng, 2))
		cfg->evictions = 1 + rnd_below(rng, 3);
}

/* HyperLogLog: the number of distinct states of a random run, in 4 KiB. */
#define HLL_BITS 12
_Static_assert(MC_HLL_SIZE == 1 << HLL_BITS, "HLL size");

static void hll_add(uint8_t *reg, uint64_t h)
{
	unsigned i = (unsigned)(h >> (64 - HLL_BITS));
	uint64_t rest = h << HLL_BITS | (1ULL << (HLL_BITS - 1));
	uint8_t r = (uint8_t)(__builtin_clzll(rest) + 1);

	if (r > reg[i])
		reg[i] = r;
}

uint64_t mc_hll_count(const uint8_t *reg)
{
	double m = 1 << HLL_BITS, sum = 0, est;
	unsigned i, zeros = 0;

	for (i = 0; i < (1u << HLL_BITS); i++) {
		sum += 1.0 / (double)(1ULL << reg[i]);
		zeros += reg[i] == 0;
	}
	est = 0.7213 / (1 + 1.079 / m) * m * m / sum;
	if (est < 2.5 * m && zeros) {
		/* Linear counting for small sets: m * ln(m / zeros), by series. */
		double x = m / zeros, ln = 0, y = (x - 1) / (x + 1), y2 = y * y, p = y;
		int k;

		for (k = 1; k < 200; k += 2, p *= y2)
			ln += p / k;
		est = m * 2 * ln;
	}
	return (uint64_t)(est + 0.5);
}

int mc_random(const mc_random_opts_t *o, mc_result_t *res)
{
	static uint8_t buf[1 << 14];
	uint8_t *hll = o->hll ? o->hll : calloc(1u << HLL_BITS, 1);
	mc_sim_t *s = malloc(sizeof(*s));
	mc_config_t *cfg = malloc(sizeof(*cfg));
	uint64_t rng = o->seed * 0x9e3779b97f4a7c15ULL + 1, i;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	if (!hll || !s || !cfg)
		abort();
	for (i = 0; i < o->schedules && !res->fail; i++) {
		mc_choice_t c[MAX_CHOICES];
		uint64_t cfg_rng;
		unsigned k, j;

		if (rnd(&rng) == 0)
			rng = 1;
		cfg_rng = rng;
		mc_random_config(&rng, o, cfg);
		rc = sim_init(s, cfg);
		if (rc < 0)
			break;
		while (!s->fail && (k = choices(s, c)) > 0) {
			do_step(s, &c[rnd_below(&rng, k)]);
			check_progress(s);
			/* Hash every 4th state: the estimate stays honest and the run
			 * spends its time on schedules. */
			if ((s->step & 3) == 0)
				hll_add(hll, sim_hash(s, buf, sizeof(buf)));
		}
		if (!s->fail)
			check_final(s);
		res->schedules++;
		res->steps += s->step;
		res->early_hold_schedules += cfg->early_hold != 0;
		res->batch_schedules += cfg->batch != 0;
		res->evict_schedules += cfg->evictions != 0;
		res->evictions += s->nevict;
		res->batches += s->batches;
		res->batched_installs += s->batched_installs;
		/* A bounced line may wait long by design there: no bound to report. */
		if (!cfg->early_hold && s->max_fault_steps > res->max_fault_steps)
			res->max_fault_steps = s->max_fault_steps;
		for (j = 0; j < DSM_COH_CNT_NCOUNTERS; j++)
			res->counters[j] += s->counters[j];
		for (j = 0; j < MC_NCOV; j++)
			res->cov[j] += s->cov[j];
		if (s->fail) {
			report(s, res);
			if (o->verbose) {
				fprintf(stderr,
				        "failing schedule %llu (config rng %#llx): %u nodes, %u "
				        "lines, "
				        "%u threads, data %s, write-back %s, dist %d, fifo %d, "
				        "early hold %d, batches %d, migratory %d, evictions %u\n",
				        (unsigned long long)i, (unsigned long long)cfg_rng,
				        cfg->nnodes, cfg->nlines, cfg->nthreads,
				        cfg->data_mode ? "rdma" : "inline",
				        cfg->wb_mode ? "rdma" : "inline", cfg->dist, cfg->fifo,
				        cfg->early_hold, cfg->batch, cfg->migratory,
				        cfg->evictions);
			}
		}
		sim_fini(s);
	}
	res->states = mc_hll_count(hll);
	if (!o->hll)
		free(hll);
	free(s);
	free(cfg);
	return rc;
}
