/* SPDX-License-Identifier: MIT */
/* The protocol model checker (see mc.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mc.h"
#include "common/hash.h"

#define POISON    0xdeadbeefu
#define MC_HOMEQ  64 /* requests the checker mirrors per line of the home's queue */
#define MC_PARKED 32 /* requests and faults the heir holds back */

/* The runtime's own messages about a death (runtime/death.c), in the coherence messages'
 * channels (per-pair FIFO): msg.type is one of these, msg.reserved the dead rank. */
#define MC_MSG_DEAD    0x80 /* I know rank reserved is dead */
#define MC_MSG_ADOPTED 0x81 /* to the heir: my copies of the dead rank's lines are sent */

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
	uint8_t hold[MC_MAX_LINES];     /* a hold started and HOLD_DONE is owed */
	uint8_t poisoned[MC_MAX_LINES]; /* POISON: an access raises SIGBUS */
	uint8_t nuffd;
	mc_fault_t uffd[MC_MAX_UFFD];
	mc_thread_t th[MC_MAX_THREADS];
} mc_node_t;

/* A message or fault the heir holds back until every survivor's copies came. */
typedef struct mc_parked {
	uint8_t fault; /* 1: a fault (f), 0: a message (m) */
	mc_fault_t f;
	mc_msg_t m;
} mc_parked_t;

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
	/* A dead rank (cfg->deaths). */
	int fifo;              /* cfg->fifo, or forced by deaths */
	uint8_t dead;          /* cfg->victim has died */
	uint8_t heir;          /* the next rank after it: the new home of its lines */
	uint8_t complete;      /* the heir has every survivor's ADOPTED */
	uint16_t knows;        /* bit n: rank n has handled the death (PEER_DEAD fed) */
	uint16_t adopted_from; /* at the heir: bit n: rank n's ADOPTED came */
	uint8_t nparked;
	mc_parked_t parked[MC_PARKED];
	uint8_t must_survive[MC_MAX_LINES]; /* a survivor held a copy at its notice */
	uint8_t poisoned_any[MC_MAX_LINES]; /* poisoned at some rank */
	uint8_t adopted_line[MC_MAX_LINES]; /* some survivor adopted a copy of it */
	uint16_t forgot[MC_MAX_LINES];      /* coverage only: bit n: its request to the dead
	                                       home was forgotten, not asked again since */
	uint64_t sigbus;
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
enum { C_THREAD, C_UFFD, C_MSG, C_RDMA, C_HOLD, C_WB, C_BATCH, C_EVICT, C_DEATH, C_NOTICE };
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
	                                            "mapping read out of order",
	                                            "line lost though a survivor held a copy"};

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
	        [MC_COV_EVICT_REFAULT] = "evicted line asked for again",
	        [MC_COV_ADOPT_SHARER] = "read-only copy adopted",
	        [MC_COV_ADOPT_OWNER] = "exclusive copy adopted",
	        [MC_COV_RESENT] = "request to the dead home asked of the heir",
	        [MC_COV_PARKED] = "request held back at the heir",
	        [MC_COV_LOST_REPLY] = "line poisoned by a LOST",
	        [MC_COV_OWNER_LOST] = "dead owner's line lost at a live home",
	        [MC_COV_LOST_AT_HEIR] = "unadopted line lost at the heir",
	        [MC_COV_LATE_FROM_DEAD] = "dead rank's message delivered before the notice"};

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
	s->fifo = cfg->fifo || cfg->deaths;
	if (cfg->deaths) {
		if (cfg->nnodes < 2 || cfg->victim >= cfg->nnodes)
			return -EINVAL;
		s->heir = (uint8_t)((cfg->victim + 1) % cfg->nnodes);
		/* Each survivor's notices, adoptions and the requests asked again of the heir,
		 * on top of the transactions. */
		s->bound = s->bound * 2 + (uint64_t)cfg->nnodes * cfg->nnodes * 8 + 64;
	}
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

/* ---- A dead rank ---- */

static int alive(const mc_sim_t *s, unsigned n)
{
	return !s->dead || n != s->cfg->victim;
}

static int knows_dead(const mc_sim_t *s, unsigned n)
{
	return (s->knows >> n) & 1;
}

/* The home of line l as rank n sees it: the heir once n knows its home died. */
static unsigned cur_home(const mc_sim_t *s, unsigned n, unsigned l)
{
	return knows_dead(s, n) && s->home[l] == s->cfg->victim ? s->heir : s->home[l];
}

/* The home of line l once every survivor knows of the death. */
static unsigned final_home(const mc_sim_t *s, unsigned l)
{
	return s->dead && s->home[l] == s->cfg->victim ? s->heir : s->home[l];
}

static uint16_t survivors(const mc_sim_t *s)
{
	return (uint16_t)(((1u << s->cfg->nnodes) - 1) & ~(1u << s->cfg->victim));
}

/* The heir's home segment of a line of the dead rank says nothing until every copy came,
 * nor, for a line nobody adopted and nobody asked for since, at all. */
static int home_seg_unknown(const mc_sim_t *s, unsigned l, const dsm_coh_dir_info_t *d)
{
	return s->dead && s->home[l] == s->cfg->victim &&
	       (!s->complete || (!s->adopted_line[l] && d->state == DSM_COH_DIR_U));
}

/* ---- Invariants ---- */

static void check_swmr(mc_sim_t *s, unsigned l)
{
	unsigned n, writers = 0, readers = 0;

	for (n = 0; n < s->cfg->nnodes; n++) {
		if (!alive(s, n))
			continue;
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
	        [DSM_COH_ACT_POISON] = "POISON",
	};

	return type > 0 && type <= DSM_COH_ACT_POISON ? names[type] : "?";
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
		if (cur_home(s, n, (unsigned)l) == n)
			s->cov[MC_COV_HOME_REQUEST]++;
		if ((s->forgot[l] >> n) & 1) {
			s->cov[MC_COV_RESENT]++;
			s->forgot[l] &= (uint16_t) ~(1u << n);
		}
		break;
	case DSM_COH_CNT_ADOPTED:
		s->adopted_line[l] = 1;
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

/* A message from @src to @dst put in flight, zeroed but for its ends; NULL (and the run
 * failed) when the network is full. */
static mc_msg_t *net_add(mc_sim_t *s, unsigned src, unsigned dst)
{
	mc_msg_t *m;

	if (s->nnet == MC_MAX_MSGS) {
		failf(s, MC_BAD_ACTION, "network full");
		return NULL;
	}
	m = &s->net[s->nnet++];
	memset(m, 0, sizeof(*m));
	m->src = (uint8_t)src;
	m->dst = (uint8_t)dst;
	return m;
}

static void apply(mc_sim_t *s, unsigned n, const uint32_t *payload)
{
	mc_node_t *nd = &s->node[n];
	size_t i;

	/* What each line's install in this list granted, for the WAKE that follows it (a home's
	 * list may act for several lines). */
	uint8_t installed[MC_MAX_LINES] = {0};

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
			from = cur_home(s, n, (unsigned)l) == n ? nd->home_seg[l] : NULL;
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
			/* The transport refuses a dead peer (DSM_ERR_PEER_DEAD): dropped. */
			if (s->dead && a->peer == s->cfg->victim)
				break;
			if (!(m = net_add(s, n, a->peer)))
				return;
			m->m = a->msg;
			if (from)
				memcpy(m->data, from, sizeof(m->data));
			break;
		}
		case DSM_COH_ACT_RDMA_READ:
			if (a->peer != cur_home(s, n, (unsigned)l) || nd->rdma[l]) {
				failf(s, MC_BAD_ACTION, "node %u line %d: bad RDMA read", n, l);
				return;
			}
			nd->rdma[l] = 1;
			break;
		case DSM_COH_ACT_RDMA_WRITE:
			if (a->peer != cur_home(s, n, (unsigned)l) || a->peer == n || nd->wb[l] ||
			    !from) {
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
				/* UFFDIO_COPY onto a present (or poisoned) page fails with
				 * EEXIST. */
				if (pg->prot != PROT_NONE_ || pending_of(s, l) >= 0 ||
				    nd->poisoned[l]) {
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
					installed[l] = p->prot;
					s->batched_installs++;
					break;
				}
				memcpy(pg->w, from, sizeof(pg->w));
			}
			pg->prot = a->type == DSM_COH_ACT_INSTALL_RW ? PROT_RW : PROT_RO;
			installed[l] = pg->prot;
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
			if (cur_home(s, n, (unsigned)l) != n || !from) {
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
					nd->th[t].granted = installed[l];
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
		case DSM_COH_ACT_POISON:
			if (!s->dead || a->msg.reserved != s->cfg->victim) {
				failf(s, MC_BAD_ACTION, "node %u line %d: poisoned for rank %u, %s",
				      n, l, a->msg.reserved,
				      s->dead ? "not the dead one" : "none dead");
				return;
			}
			if (s->must_survive[l]) {
				failf(s, MC_LOST_WRONGLY,
				      "node %u line %d: poisoned, but a survivor held a copy when "
				      "it "
				      "learned of rank %u's death",
				      n, l, s->cfg->victim);
				return;
			}
			pg->prot = PROT_NONE_;
			for (t = 0; t < MC_WORDS; t++)
				pg->w[t] = POISON;
			nd->poisoned[l] = 1;
			s->poisoned_any[l] = 1;
			installed[l] = PROT_NONE_;
			s->cov[MC_COV_LOST_REPLY]++;
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
	    !(s->dead && s->home[l] == s->cfg->victim && !s->complete) &&
	    memcmp(s->node[n].map[l].w, s->node[cur_home(s, n, (unsigned)l)].home_seg[l],
	           sizeof(s->node[n].map[l].w)))
		failf(s, MC_DATA,
		      "node %u line %d: exclusive clean copy differs from the home segment", n, l);
}

/* The count of transactions the engine keeps (a checkpoint's test of a home at rest,
 * runtime/ckpt.c) is the number a walk of its directory finds, and nothing is queued
 * without a transaction. */
static void check_txns(mc_sim_t *s, unsigned n)
{
	size_t cache, home, cache_kept, txns;
	unsigned busy = 0;

	dsm_coh_node_busy(s->eng[n], &cache, &home);
	dsm_coh_node_in_flight(s->eng[n], &cache_kept, &txns);
	if (cache_kept != cache)
		failf(s, MC_FINAL, "node %u: the engine counts %zu lines in flight, a walk %zu", n,
		      cache_kept, cache);
	for (unsigned l = 0; l < s->cfg->nlines; l++) {
		dsm_coh_dir_info_t d;

		dsm_coh_dir_info(s->eng[n], s->line_id[l], &d);
		busy += d.busy;
		if (d.queued && !d.busy)
			failf(s, MC_FINAL, "node %u line %u: %u requests queued, no transaction", n,
			      l, d.queued);
	}
	if (txns != busy || home != busy)
		failf(s, MC_FINAL, "node %u: the engine counts %zu transactions, its directory %u",
		      n, txns, busy);
}

/* Invariant 2 (PROTOCOL.md): while the directory says U or S nobody can write the line, so
 * the home segment holds its last value (an eviction's write-back reached it first). */
static void check_home_segment(mc_sim_t *s, unsigned h, int l)
{
	dsm_coh_dir_info_t d;

	if (l < 0)
		return;
	dsm_coh_dir_info(s->eng[h], s->line_id[l], &d);
	/* A lost line's data died: its home segment means nothing. */
	if (d.state == DSM_COH_DIR_LOST || home_seg_unknown(s, (unsigned)l, &d))
		return;
	if (d.state != DSM_COH_DIR_M &&
	    memcmp(s->node[h].home_seg[l], s->shadow[l], sizeof(s->shadow[l])))
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
		if (cur_home(s, n, (unsigned)l) == n)
			dsm_coh_dir_info(s->eng[n], s->line_id[l], &d0);
	}
	if (ev->type == DSM_COH_EV_MSG) {
		if (ev->msg.type == DSM_COH_MSG_INV && li.state == DSM_COH_SM)
			s->cov[MC_COV_INV_AT_SM]++;
		if (ev->msg.type == DSM_COH_MSG_GET_M && (ev->msg.flags & DSM_COH_MSGF_UPGRADE) &&
		    l >= 0 && cur_home(s, n, (unsigned)l) == n &&
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
		if (cur_home(s, n, (unsigned)l) == n)
			cov_home_evict(s, n, l, ev, d0.queued);
		else
			cov_node_evict(s, n, l, &li);
	}
	if (cur_home(s, n, (unsigned)l) == n)
		check_home_segment(s, n, l);
	if (!s->fail && !s->batching)
		check_agree(s, n, l);
	if (!s->fail)
		check_txns(s, n);
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

	if (!s->fifo)
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

	if ((cur_home(s, n, l) == n) != !!s->cfg->drops)
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

		if (!alive(s, n))
			continue; /* the dead do nothing more */
		if (s->dead && !knows_dead(s, n))
			c[k++] = (mc_choice_t){C_NOTICE, (uint8_t)n, 0};
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
	for (i = 0; s->cfg->batch && !s->cfg->deaths && i < s->nnet; i++) {
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
		for (l = 0; alive(s, n) && l < s->cfg->nlines; l++)
			if (can_evict(s, n, l))
				c[k++] = (mc_choice_t){C_EVICT, (uint8_t)n, (uint8_t)l};
	/* The victim may die in any state; at a chosen step it dies then (or when nothing
	 * else can happen first). */
	if (s->cfg->deaths && !s->dead) {
		if (s->cfg->death_at && (s->step + 1 >= s->cfg->death_at || k == 0))
			k = 0;
		if (!s->cfg->death_at || k == 0)
			c[k++] = (mc_choice_t){C_DEATH, (uint8_t)s->cfg->victim, 0};
	}
	return k;
}

#define MAX_CHOICES (MC_MAX_NODES * (MC_MAX_THREADS + 2 + 4 * MC_MAX_LINES) + 2 * MC_MAX_MSGS + 1)

static void thread_step(mc_sim_t *s, unsigned n, unsigned t)
{
	mc_thread_t *th = &s->node[n].th[t];
	const mc_op_t *op = &s->cfg->ops[n][t][th->pc];
	mc_page_t *pg = &s->node[n].map[op->line];
	int need = op->write ? PROT_RW : PROT_RO;

	if (s->node[n].poisoned[op->line]) {
		/* The poison marker answers in the kernel: SIGBUS, and the op is over. */
		s->sigbus++;
		th->granted = 0;
		th->fault_step = 0;
		th->pc++;
		th->status = th->pc == s->cfg->nops[n][t] ? T_DONE : T_RUN;
		return;
	}
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

/* A harness message (DEAD, ADOPTED) from @src to @dst. */
static void net_push(mc_sim_t *s, unsigned src, unsigned dst, uint8_t type)
{
	mc_msg_t *m = net_add(s, src, dst);

	if (!m)
		return;
	m->m.type = type;
	m->m.src = (uint16_t)src;
	m->m.reserved = s->cfg->victim;
}

/* At the heir, a request or fault about a line its dead home had (runtime/death.c,
 * dsm_rt_death_hold): held back until every survivor's copies came, then the engine is
 * told first whether nobody adopted it. */
static int heir_holds(const mc_sim_t *s, unsigned n, unsigned l)
{
	return n == s->heir && knows_dead(s, n) && s->home[l] == s->cfg->victim;
}

static int to_home(uint8_t type)
{
	return type == DSM_COH_MSG_GET_S || type == DSM_COH_MSG_GET_M ||
	       type == DSM_COH_MSG_INV_ACK || type == DSM_COH_MSG_WB || type == DSM_COH_MSG_DONE ||
	       type == DSM_COH_MSG_EVICT;
}

static void park(mc_sim_t *s, const mc_parked_t *p)
{
	if (s->nparked == MC_PARKED) {
		failf(s, MC_BAD_ACTION, "the heir holds back more than %d requests", MC_PARKED);
		return;
	}
	s->parked[s->nparked++] = *p;
	s->cov[MC_COV_PARKED]++;
}

static void feed_lost_line(mc_sim_t *s, unsigned n, unsigned l)
{
	dsm_coh_event_t ev = {
	        .type = DSM_COH_EV_LOST_LINE, .home = s->cfg->victim, .line = s->line_id[l]};
	dsm_coh_dir_info_t d0, d1;

	dsm_coh_dir_info(s->eng[n], s->line_id[l], &d0);
	feed(s, n, &ev, NULL);
	dsm_coh_dir_info(s->eng[n], s->line_id[l], &d1);
	if (d0.state != DSM_COH_DIR_LOST && d1.state == DSM_COH_DIR_LOST)
		s->cov[MC_COV_LOST_AT_HEIR]++;
}

static void to_engine_fault(mc_sim_t *s, unsigned n, const mc_fault_t *f)
{
	dsm_coh_event_t ev;

	if (heir_holds(s, n, f->line)) {
		if (!s->complete) {
			mc_parked_t p = {.fault = 1, .f = *f};

			park(s, &p);
			return;
		}
		feed_lost_line(s, n, f->line);
		if (s->fail)
			return;
	}
	memset(&ev, 0, sizeof(ev));
	ev.type = f->write ? DSM_COH_EV_WRITE_FAULT : DSM_COH_EV_READ_FAULT;
	ev.line = s->line_id[f->line];
	ev.home = cur_home(s, n, f->line);
	feed(s, n, &ev, NULL);
}

static void to_engine_msg(mc_sim_t *s, unsigned n, const mc_msg_t *m)
{
	int l = line_index(s, m->m.line);
	dsm_coh_event_t ev;

	if (l >= 0 && to_home(m->m.type) && heir_holds(s, n, (unsigned)l)) {
		if (!s->complete) {
			mc_parked_t p = {.fault = 0, .m = *m};

			park(s, &p);
			return;
		}
		feed_lost_line(s, n, (unsigned)l);
		if (s->fail)
			return;
	}
	memset(&ev, 0, sizeof(ev));
	ev.type = DSM_COH_EV_MSG;
	ev.msg = m->m;
	feed(s, n, &ev, (m->m.flags & DSM_COH_MSGF_DATA) ? m->data : NULL);
}

/* runtime/death.c, adoption_check: once every live rank said ADOPTED, the heir is the
 * home of the dead rank's lines, and the held-back requests go in, in arrival order. */
static void adoption_check(mc_sim_t *s)
{
	mc_parked_t parked[MC_PARKED];
	unsigned i, np, l;

	if (!s->dead || s->complete || !knows_dead(s, s->heir) || s->adopted_from != survivors(s))
		return;
	s->complete = 1;
	/* Every copy is in: the adopted lines' home segments hold their last writes. */
	for (l = 0; l < s->cfg->nlines && !s->fail; l++)
		if (s->home[l] == s->cfg->victim)
			check_home_segment(s, s->heir, (int)l);
	np = s->nparked;
	memcpy(parked, s->parked, np * sizeof(parked[0]));
	s->nparked = 0;
	for (i = 0; i < np && !s->fail; i++) {
		if (parked[i].fault)
			to_engine_fault(s, s->heir, &parked[i].f);
		else
			to_engine_msg(s, s->heir, &parked[i].m);
	}
}

/* Rank n learns of the death (runtime/death.c, dsm_rt_death). */
static void notice(mc_sim_t *s, unsigned n)
{
	dsm_coh_event_t ev = {
	        .type = DSM_COH_EV_PEER_DEAD, .home = s->cfg->victim, .adopter = s->heir};
	dsm_coh_dir_info_t d0[MC_MAX_LINES];
	mc_node_t *nd = &s->node[n];
	unsigned i, kept = 0, l, r;

	s->knows |= (uint16_t)(1u << n);
	/* What the dead rank sent here and is still in flight is dropped from now on. */
	for (i = 0; i < s->nnet; i++)
		if (!(s->net[i].src == s->cfg->victim && s->net[i].dst == n))
			s->net[kept++] = s->net[i];
	s->nnet = (uint16_t)kept;
	for (l = 0; l < s->cfg->nlines; l++) {
		dsm_coh_line_info_t li;

		dsm_coh_line_info(s->eng[n], s->line_id[l], &li);
		/* The oracle: a copy a survivor still holds is never lost. */
		if (li.state == DSM_COH_S || li.state == DSM_COH_SM || li.state == DSM_COH_E ||
		    li.state == DSM_COH_M)
			s->must_survive[l] = 1;
		if (s->home[l] == n)
			dsm_coh_dir_info(s->eng[n], s->line_id[l], &d0[l]);
		if (s->home[l] != s->cfg->victim)
			continue;
		/* The RDMA read from its segment and the write-back to it fail: the runtime
		 * drops their completions. */
		nd->rdma[l] = 0;
		nd->wb[l] = 0;
		if (li.state == DSM_COH_S || li.state == DSM_COH_SM)
			s->cov[MC_COV_ADOPT_SHARER]++;
		if (li.state == DSM_COH_E || li.state == DSM_COH_M)
			s->cov[MC_COV_ADOPT_OWNER]++;
		if (li.state == DSM_COH_IS || li.state == DSM_COH_IM || li.state == DSM_COH_SM)
			s->forgot[l] |= (uint16_t)(1u << n);
	}
	/* Our notice first: each survivor has it before anything else we send about this. */
	for (r = 0; r < s->cfg->nnodes; r++)
		if (r != n && alive(s, r))
			net_push(s, n, r, MC_MSG_DEAD);
	feed(s, n, &ev, NULL);
	for (l = 0; l < s->cfg->nlines && !s->fail; l++) {
		check_agree(s, n, (int)l);
		if (cur_home(s, n, l) == n)
			check_home_segment(s, n, (int)l);
		if (s->home[l] == n) {
			dsm_coh_dir_info_t d1;

			dsm_coh_dir_info(s->eng[n], s->line_id[l], &d1);
			if (d0[l].state != DSM_COH_DIR_LOST && d1.state == DSM_COH_DIR_LOST)
				s->cov[MC_COV_OWNER_LOST]++;
		}
	}
	if (s->fail)
		return;
	/* Then: all our copies of those lines are on their way. */
	if (n == s->heir)
		s->adopted_from |= (uint16_t)(1u << n);
	else
		net_push(s, n, s->heir, MC_MSG_ADOPTED);
	adoption_check(s);
}

static void deliver(mc_sim_t *s, unsigned n, const mc_msg_t *m)
{
	if (m->m.type == MC_MSG_DEAD || m->m.type == MC_MSG_ADOPTED) {
		if (!knows_dead(s, n))
			notice(s, n);
		if (m->m.type == MC_MSG_DEAD || s->fail)
			return;
		if (n != s->heir) {
			failf(s, MC_BAD_ACTION, "node %u: ADOPTED from %u, not the heir", n,
			      m->src);
			return;
		}
		s->adopted_from |= (uint16_t)(1u << m->src);
		adoption_check(s);
		return;
	}
	if (s->dead && m->src == s->cfg->victim)
		s->cov[MC_COV_LATE_FROM_DEAD]++;
	to_engine_msg(s, n, m);
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
		to_engine_fault(s, c->node, &f);
		break;
	}
	case C_MSG: {
		mc_msg_t m = s->net[c->idx];

		memmove(&s->net[c->idx], &s->net[c->idx + 1],
		        (size_t)(--s->nnet - c->idx) * sizeof(s->net[0]));
		deliver(s, c->node, &m);
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
		memcpy(nd->staging[c->idx], s->node[cur_home(s, c->node, c->idx)].home_seg[c->idx],
		       sizeof(nd->staging[c->idx]));
		nd->rdma[c->idx] = 0;
		ev.type = DSM_COH_EV_RDMA_DONE;
		ev.line = s->line_id[c->idx];
		feed(s, c->node, &ev, NULL);
		break;
	case C_WB:
		/* The write lands in the home segment when it completes. */
		memcpy(s->node[cur_home(s, c->node, c->idx)].home_seg[c->idx], nd->wbuf[c->idx],
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
		ev.type = s->cfg->drops ? DSM_COH_EV_DROP : DSM_COH_EV_EVICT;
		ev.line = s->line_id[c->idx];
		feed(s, c->node, &ev, NULL);
		break;
	case C_DEATH: {
		unsigned i, kept = 0;

		/* The victim stops: what was on its way to it goes nowhere. */
		s->dead = 1;
		for (i = 0; i < s->nnet; i++)
			if (s->net[i].dst != s->cfg->victim)
				s->net[kept++] = s->net[i];
		s->nnet = (uint16_t)kept;
		break;
	}
	case C_NOTICE:
		notice(s, c->node);
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
		for (t = 0; alive(s, n) && t < s->cfg->nthreads; t++) {
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
 * describe the copies exactly. After a death: the survivors' threads and copies only, at
 * the lines' homes of now; a lost line (DIR_LOST, or a line of the dead home that nobody
 * adopted or asked for since) has no copy anywhere. */
static void check_final(mc_sim_t *s)
{
	unsigned n, t, l, w;

	for (n = 0; n < s->cfg->nnodes; n++)
		for (t = 0; alive(s, n) && t < s->cfg->nthreads; t++)
			if (s->node[n].th[t].status != T_DONE) {
				failf(s, MC_DEADLOCK,
				      "node %u thread %u stuck (status %d, line %d)", n, t,
				      s->node[n].th[t].status, s->node[n].th[t].line);
				return;
			}
	if (s->dead && (s->knows != survivors(s) || !s->complete || s->nparked)) {
		failf(s, MC_DEADLOCK, "the death never finished: %u requests held back at the heir",
		      s->nparked);
		return;
	}
	for (l = 0; l < s->cfg->nlines; l++) {
		unsigned h = final_home(s, l);
		dsm_coh_dir_info_t d;
		int lost;

		dsm_coh_dir_info(s->eng[h], s->line_id[l], &d);
		if (d.busy || d.queued) {
			failf(s, MC_FINAL, "line %u: home %u still busy", l, h);
			return;
		}
		if (s->dead && d.state == DSM_COH_DIR_M && d.owner == s->cfg->victim) {
			failf(s, MC_FINAL, "line %u: home %u says the dead rank %u owns it", l, h,
			      d.owner);
			return;
		}
		lost = d.state == DSM_COH_DIR_LOST || home_seg_unknown(s, l, &d);
		for (n = 0; n < s->cfg->nnodes; n++) {
			dsm_coh_line_info_t li;
			const mc_page_t *pg = &s->node[n].map[l];
			int want;

			if (!alive(s, n))
				continue;
			dsm_coh_line_info(s->eng[n], s->line_id[l], &li);
			if (lost)
				want = DSM_COH_I;
			else if (d.state == DSM_COH_DIR_M)
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
				      "line %u node %u: state %s prot %d, directory says %s%s", l,
				      n, dsm_coh_state_name((int)li.state), pg->prot,
				      lost ? "lost: " : "", dsm_coh_state_name(want));
				return;
			}
			if (s->node[n].poisoned[l] && d.state != DSM_COH_DIR_LOST) {
				failf(s, MC_FINAL,
				      "line %u node %u: poisoned, but not lost at home %u", l, n,
				      h);
				return;
			}
			for (w = 0; w < MC_WORDS; w++)
				if (pg->prot && pg->w[w] != s->shadow[l][w]) {
					failf(s, MC_FINAL, "line %u node %u: copy is stale", l, n);
					return;
				}
		}
		if (s->poisoned_any[l] && d.state != DSM_COH_DIR_LOST) {
			failf(s, MC_FINAL, "line %u: poisoned somewhere, but not lost at home %u",
			      l, h);
			return;
		}
		if (lost)
			continue;
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
		size_t len;

		/* Of the dead only its home segment matters now, to the RDMA reads still
		 * in flight from it. */
		if (!alive(s, n)) {
			h = dsm_hash_bytes((const uint8_t *)nd->home_seg, sizeof(nd->home_seg), h);
			continue;
		}
		len = dsm_coh_node_encode(s->eng[n], buf, cap);
		h = dsm_hash_bytes(buf, len < cap ? len : cap, h);
		if (s->cfg->deaths)
			h = dsm_hash_bytes(nd->poisoned, sizeof(nd->poisoned), h);
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
	if (s->cfg->deaths) {
		uint8_t dd[6] = {s->dead,
		                 s->complete,
		                 (uint8_t)s->knows,
		                 (uint8_t)(s->knows >> 8),
		                 (uint8_t)s->adopted_from,
		                 (uint8_t)(s->adopted_from >> 8)};

		h = dsm_hash_bytes(dd, sizeof(dd), h);
		h = dsm_hash_bytes(s->must_survive, sizeof(s->must_survive), h);
		h = dsm_hash_bytes(s->adopted_line, sizeof(s->adopted_line), h);
		h = dsm_hash_bytes((const uint8_t *)s->parked, s->nparked * sizeof(s->parked[0]),
		                   h);
	}
	/* Without FIFO the network is a multiset: sort it. */
	memcpy(net, s->net, s->nnet * sizeof(net[0]));
	if (!s->fifo)
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
	static const char *const kinds[] = {"thread",     "uffd",  "msg",   "rdma",  "hold",
	                                    "rdma-write", "batch", "evict", "death", "notice"};

	if ((c->kind == C_MSG || c->kind == C_BATCH) && c->idx < s->nnet) {
		uint8_t type = s->net[c->idx].m.type;

		snprintf(b, n, "deliver %s%s%s %u->%u", c->kind == C_BATCH ? "a batch from " : "",
		         type == MC_MSG_DEAD      ? "DEAD"
		         : type == MC_MSG_ADOPTED ? "ADOPTED"
		                                  : dsm_coh_msg_name(type),
		         s->net[c->idx].m.flags & DSM_COH_MSGF_OWNER ? "(owner)" : "",
		         s->net[c->idx].src, s->net[c->idx].dst);
	} else
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
		child->sigbus = 0;
		do_step(child, &c[i]);
		d->res->batches += child->batches;
		d->res->evictions += c[i].kind == C_EVICT;
		d->res->deaths += c[i].kind == C_DEATH;
		d->res->sigbus += child->sigbus;
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
	if (o->evictions && rnd_below(rng, 2)) {
		cfg->evictions = 1 + rnd_below(rng, 3);
		cfg->drops = rnd_below(rng, 3) == 0;
	}
	/* Then a death, and its step: somewhere in the schedule, or after its end (a run has
	 * a few steps per op). Batches are not modelled beside a death. */
	if (o->deaths && cfg->nnodes <= 10 && (o->deaths == 2 || rnd_below(rng, 4) == 0)) {
		unsigned total = 0;

		for (n = 0; n < cfg->nnodes; n++)
			for (t = 0; t < cfg->nthreads; t++)
				total += cfg->nops[n][t];
		cfg->deaths = 1;
		cfg->victim = rnd_below(rng, cfg->nnodes);
		cfg->death_at = 1 + rnd_below(rng, 8 * total + 8);
		cfg->batch = 0;
	}
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
		res->death_schedules += cfg->deaths != 0;
		res->deaths += s->dead;
		res->sigbus += s->sigbus;
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
			/* The failing schedule, replayed from its seed, for whoever debugs it. */
			if (getenv("MC_TRACE")) {
				mc_sim_t *r = malloc(sizeof(*r));
				uint64_t rr = cfg_rng;
				char b[64];

				mc_random_config(&rr, o, cfg);
				if (r && sim_init(r, cfg) == 0)
					while (!r->fail && (k = choices(r, c)) > 0) {
						const mc_choice_t *ch = &c[rnd_below(&rr, k)];

						fprintf(stderr, "  %3llu: %s\n",
						        (unsigned long long)r->step,
						        choice_str(r, ch, b, sizeof(b)));
						do_step(r, ch);
						check_progress(r);
					}
				if (r)
					sim_fini(r);
				free(r);
			}
			if (o->verbose) {
				fprintf(stderr,
				        "failing schedule %llu (config rng %#llx): %u nodes, %u "
				        "lines, "
				        "%u threads, data %s, write-back %s, dist %d, fifo %d, "
				        "early hold %d, batches %d, migratory %d, evictions %u "
				        "(drops %d), "
				        "deaths %d (victim %u at step %u)\n",
				        (unsigned long long)i, (unsigned long long)cfg_rng,
				        cfg->nnodes, cfg->nlines, cfg->nthreads,
				        cfg->data_mode ? "rdma" : "inline",
				        cfg->wb_mode ? "rdma" : "inline", cfg->dist, cfg->fifo,
				        cfg->early_hold, cfg->batch, cfg->migratory, cfg->evictions,
				        cfg->drops, cfg->deaths, cfg->victim, cfg->death_at);
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
