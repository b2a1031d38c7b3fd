/* SPDX-License-Identifier: MIT */
/*
 * The coherence engine (PROTOCOL.md explains the protocol; this file is its
 * transitions). The home serves one transaction per line at a time and queues
 * the others; a transaction ends only when the requester says DONE, so an
 * invalidation can never overtake the grant it follows, whatever order the
 * network delivers in.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "coherence/internal.h"
#include "common/vec.h"

/* The wire format is the struct itself: every rank runs the same build on the
 * same architecture (one job, one binary). */
_Static_assert(sizeof(dsm_coh_msg_t) == 16, "dsm_coh_msg_t is 16 bytes on the wire");
_Static_assert(sizeof(dsm_coh_line_t) == 16, "PROTOCOL.md: 16 bytes per line at a node");
_Static_assert(sizeof(dsm_coh_dir_t) == 48, "PROTOCOL.md: 48 bytes per line at the home");

struct self_msg {
	dsm_coh_msg_t msg;
	uint8_t dsrc; /* where the data of a message to oneself is */
};

struct dsm_coh_node {
	dsm_coh_config_t cfg;
	dsm_coh_table_t lines; /* dsm_coh_line_t */
	dsm_coh_table_t dirs;  /* dsm_coh_dir_t */
	/* Messages to this rank itself, delivered before dsm_coh_handle returns. */
	struct self_msg *selfq;
	size_t selfq_n, selfq_cap;
	uint64_t *dead;  /* nranks bits: the ranks that died (PEER_DEAD events) */
	size_t txns;     /* directory entries with a transaction in progress (txn != 0) */
	size_t busy;     /* lines of the cache side with something in flight (line_busy) */
	int selfq_other; /* this event sent itself a message about another line */
};

static bool is_dead(const dsm_coh_node_t *n, unsigned r)
{
	return r < n->cfg.nranks && (n->dead[r / 64] >> (r % 64) & 1);
}

const char *dsm_coh_protocol_name(void)
{
	return "directory-swmr";
}

static const char *const msg_names[DSM_COH_MSG_NTYPES] = {
        [DSM_COH_MSG_GET_S] = "GET_S",     [DSM_COH_MSG_GET_M] = "GET_M",
        [DSM_COH_MSG_INV] = "INV",         [DSM_COH_MSG_INV_ACK] = "INV_ACK",
        [DSM_COH_MSG_FWD_S] = "FWD_S",     [DSM_COH_MSG_FWD_M] = "FWD_M",
        [DSM_COH_MSG_WB] = "WB",           [DSM_COH_MSG_GRANT_S] = "GRANT_S",
        [DSM_COH_MSG_GRANT_M] = "GRANT_M", [DSM_COH_MSG_DONE] = "DONE",
        [DSM_COH_MSG_EVICT] = "EVICT",     [DSM_COH_MSG_ADOPT] = "ADOPT",
        [DSM_COH_MSG_LOST] = "LOST",
};

const char *dsm_coh_msg_name(int type)
{
	if (type <= 0 || type >= DSM_COH_MSG_NTYPES)
		return "?";
	return msg_names[type];
}

const char *dsm_coh_counter_name(int counter)
{
	static const char *const names[DSM_COH_CNT_NCOUNTERS] = {
	        [DSM_COH_CNT_READ_FAULT] = "read_faults",
	        [DSM_COH_CNT_WRITE_FAULT] = "write_faults",
	        [DSM_COH_CNT_UPGRADE] = "upgrades",
	        [DSM_COH_CNT_STALE_FAULT] = "stale_faults",
	        [DSM_COH_CNT_INV_SENT] = "inv_sent",
	        [DSM_COH_CNT_INV_RECEIVED] = "inv_received",
	        [DSM_COH_CNT_QUEUED] = "queued_requests",
	        [DSM_COH_CNT_DEFERRED] = "deferred_by_hold",
	        [DSM_COH_CNT_MIGRATORY] = "migratory_grants",
	        [DSM_COH_CNT_EXCL_WRITE] = "exclusive_writes",
	        [DSM_COH_CNT_CLEAN_WB] = "clean_writebacks",
	        [DSM_COH_CNT_EVICT_CLEAN] = "evictions_clean",
	        [DSM_COH_CNT_EVICT_DIRTY] = "evictions_dirty",
	        [DSM_COH_CNT_ADOPTED] = "adopted_copies",
	        [DSM_COH_CNT_LOST] = "lost_lines",
	};

	if (counter < 0 || counter >= DSM_COH_CNT_NCOUNTERS)
		return "?";
	return names[counter];
}

const char *dsm_coh_state_name(int state)
{
	static const char *const names[] = {"I", "S", "M", "IS", "IM", "SM", "E"};

	if (state < 0 || state > DSM_COH_E)
		return "?";
	return names[state];
}

/* ---- Actions ---- */

void dsm_coh_actions_init(dsm_coh_actions_t *a)
{
	a->v = NULL;
	a->n = a->cap = 0;
}

void dsm_coh_actions_fini(dsm_coh_actions_t *a)
{
	free(a->v);
	dsm_coh_actions_init(a);
}

bool dsm_coh_action_keeps_mappings(const dsm_coh_action_t *a)
{
	switch (a->type) {
	case DSM_COH_ACT_INSTALL_RO:
	case DSM_COH_ACT_INSTALL_RW:
		return a->src == DSM_COH_SRC_MSG;
	case DSM_COH_ACT_SEND:
		return a->src != DSM_COH_SRC_MAP;
	case DSM_COH_ACT_HOLD:
	case DSM_COH_ACT_COUNT:
		return true;
	default:
		return false;
	}
}

static dsm_coh_action_t *act(dsm_coh_actions_t *a, int type, uint64_t line)
{
	dsm_coh_action_t *x;

	if (DSM_VEC_RESERVE(a->v, a->cap, a->n + 1) < 0)
		return NULL;
	x = &a->v[a->n++];
	memset(x, 0, sizeof(*x));
	x->type = (uint8_t)type;
	x->line = line;
	return x;
}

#define ACT(a, type, line)                                                                         \
	do {                                                                                       \
		if (!act(a, type, line))                                                           \
			return -ENOMEM;                                                            \
	} while (0)

static int act_src(dsm_coh_actions_t *a, int type, uint64_t line, int src)
{
	dsm_coh_action_t *x = act(a, type, line);

	if (!x)
		return -ENOMEM;
	x->src = (uint8_t)src;
	return 0;
}

static int count(dsm_coh_actions_t *a, uint64_t line, int counter)
{
	dsm_coh_action_t *x = act(a, DSM_COH_ACT_COUNT, line);

	if (!x)
		return -ENOMEM;
	x->counter = (uint16_t)counter;
	return 0;
}

/* Send to a peer, or queue for ourselves. src says where the data is. */
static int send(dsm_coh_node_t *n, dsm_coh_actions_t *a, unsigned dst, int type, uint64_t line,
                int flags, int src)
{
	dsm_coh_msg_t m = {.type = (uint8_t)type,
	                   .flags = (uint8_t)flags,
	                   .src = (uint16_t)n->cfg.rank,
	                   .line = line};
	dsm_coh_action_t *x;

	if (dst == n->cfg.rank) {
		/* Delivered after the rest of this call's actions are listed, so
		 * its data must not come from the mapping (write_back() copies
		 * it out first). */
		if (DSM_VEC_RESERVE(n->selfq, n->selfq_cap, n->selfq_n + 1) < 0)
			return -ENOMEM;
		n->selfq[n->selfq_n].msg = m;
		n->selfq[n->selfq_n].dsrc = (uint8_t)src;
		n->selfq_n++;
		return 0;
	}
	x = act(a, DSM_COH_ACT_SEND, line);
	if (!x)
		return -ENOMEM;
	x->peer = dst;
	x->msg = m;
	x->src = (uint8_t)((flags & DSM_COH_MSGF_DATA) ? src : DSM_COH_SRC_NONE);
	return 0;
}

/* ---- Create, destroy, clone ---- */

int dsm_coh_node_create(const dsm_coh_config_t *cfg, dsm_coh_node_t **node_p)
{
	dsm_coh_node_t *n;

	if (!cfg || !node_p || cfg->nranks == 0 || cfg->nranks > DSM_COH_MAX_RANKS ||
	    cfg->rank >= cfg->nranks ||
	    (cfg->data_mode != DSM_COH_DATA_INLINE && cfg->data_mode != DSM_COH_DATA_RDMA) ||
	    (cfg->wb_mode != DSM_COH_DATA_INLINE && cfg->wb_mode != DSM_COH_DATA_RDMA))
		return -EINVAL;
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->cfg = *cfg;
	n->dead = calloc((cfg->nranks + 63) / 64, sizeof(uint64_t));
	if (!n->dead) {
		free(n);
		return -ENOMEM;
	}
	dsm_coh_table_init(&n->lines, sizeof(dsm_coh_line_t));
	dsm_coh_table_init(&n->dirs, sizeof(dsm_coh_dir_t));
	*node_p = n;
	return 0;
}

void dsm_coh_node_destroy(dsm_coh_node_t *n)
{
	size_t i;

	if (!n)
		return;
	for (i = 0; i < n->dirs.cap; i++) {
		dsm_coh_dir_t *d = dsm_coh_table_slot(&n->dirs, i);

		if (d) {
			dsm_coh_sharers_clear(&d->sharers);
			free(d->q);
		}
	}
	dsm_coh_table_fini(&n->lines);
	dsm_coh_table_fini(&n->dirs);
	free(n->selfq);
	free(n->dead);
	free(n);
}

int dsm_coh_node_clone(const dsm_coh_node_t *src, dsm_coh_node_t **copy_p)
{
	size_t words = (src->cfg.nranks + 63) / 64, i;
	dsm_coh_node_t *n = calloc(1, sizeof(*n));

	if (!n)
		return -ENOMEM;
	n->cfg = src->cfg;
	n->txns = src->txns;
	n->busy = src->busy;
	dsm_coh_table_init(&n->lines, sizeof(dsm_coh_line_t));
	dsm_coh_table_init(&n->dirs, sizeof(dsm_coh_dir_t));
	n->dead = malloc(words * sizeof(uint64_t));
	if (!n->dead)
		goto fail;
	memcpy(n->dead, src->dead, words * sizeof(uint64_t));
	if (dsm_coh_table_copy(&n->lines, &src->lines) < 0 ||
	    dsm_coh_table_copy(&n->dirs, &src->dirs) < 0)
		goto fail;
	/* The copied slots still point at src's queues and bitmaps: forget them
	 * all first, so that a failure half way frees only our own. */
	for (i = 0; i < n->dirs.cap; i++) {
		dsm_coh_dir_t *d = dsm_coh_table_slot(&n->dirs, i);

		if (d) {
			d->q = NULL;
			if (d->sharers.bitmap)
				d->sharers.u.bits = NULL;
		}
	}
	for (i = 0; i < n->dirs.cap; i++) {
		dsm_coh_dir_t *d = dsm_coh_table_slot(&n->dirs, i);
		const dsm_coh_dir_t *sd = dsm_coh_table_slot(&src->dirs, i);

		if (!d)
			continue;
		if (sd->q) {
			d->q = malloc(sd->qcap * sizeof(*d->q));
			if (!d->q)
				goto fail;
			memcpy(d->q, sd->q, sd->qcap * sizeof(*d->q));
		}
		if (sd->sharers.bitmap) {
			d->sharers.u.bits = malloc(words * sizeof(uint64_t));
			if (!d->sharers.u.bits)
				goto fail;
			memcpy(d->sharers.u.bits, sd->sharers.u.bits, words * sizeof(uint64_t));
		}
	}
	*copy_p = n;
	return 0;
fail:
	dsm_coh_node_destroy(n);
	return -ENOMEM;
}

/* ---- The cache side ---- */

static int node_request(dsm_coh_node_t *n, dsm_coh_line_t *l, int write, dsm_coh_actions_t *a)
{
	int rc, flags = 0;

	if (write && l->state == DSM_COH_S) {
		l->state = DSM_COH_SM;
		flags = DSM_COH_MSGF_UPGRADE;
		rc = count(a, l->line, DSM_COH_CNT_UPGRADE);
	} else {
		l->state = write ? DSM_COH_IM : DSM_COH_IS;
		rc = count(a, l->line, write ? DSM_COH_CNT_WRITE_FAULT : DSM_COH_CNT_READ_FAULT);
	}
	if (rc < 0)
		return rc;
	return send(n, a, l->home, write ? DSM_COH_MSG_GET_M : DSM_COH_MSG_GET_S, l->line, flags,
	            DSM_COH_SRC_NONE);
}

/*
 * A write to a line held exclusive and clean (E): the line is this rank's alone, so the
 * write needs nobody's leave. Lift the write-protect and wake, and hold the line as a grant
 * does, so that a FWD arriving now waits until the woken writer has run. From here on the
 * copy differs from the home segment (M): a give-up writes it back.
 */
static int node_excl_write(dsm_coh_node_t *n, dsm_coh_line_t *l, dsm_coh_actions_t *a)
{
	int rc;

	if ((rc = count(a, l->line, DSM_COH_CNT_EXCL_WRITE)) < 0)
		return rc;
	ACT(a, DSM_COH_ACT_INSTALL_RW, l->line);
	if (!(n->cfg.bugs & DSM_COH_BUG_EXCL_STAYS_CLEAN))
		l->state = DSM_COH_M;
	ACT(a, DSM_COH_ACT_WAKE, l->line);
	if (!(n->cfg.bugs & DSM_COH_BUG_NO_HOLD)) {
		l->flags |= DSM_COH_LINE_HELD;
		ACT(a, DSM_COH_ACT_HOLD, l->line);
	}
	return 0;
}

static int node_fault(dsm_coh_node_t *n, uint64_t line, unsigned home, int write,
                      dsm_coh_actions_t *a)
{
	dsm_coh_line_t *l;
	int granted;

	if (home >= n->cfg.nranks)
		return -EINVAL;
	l = dsm_coh_table_get(&n->lines, line);
	if (!l)
		return -ENOMEM;
	if (l->state == DSM_COH_I)
		l->home = (uint16_t)home;
	/* A fault read from userfaultfd after the line was granted (another
	 * thread's fault brought it in) is stale: the page is there, only the
	 * thread needs waking. UFFDIO_COPY would fail with EEXIST. */
	granted = l->state == DSM_COH_M ||
	          (!write &&
	           (l->state == DSM_COH_S || l->state == DSM_COH_SM || l->state == DSM_COH_E));
	if (granted) {
		ACT(a, DSM_COH_ACT_WAKE, line);
		return count(a, line, DSM_COH_CNT_STALE_FAULT);
	}
	if (l->state == DSM_COH_E)
		return node_excl_write(n, l, a);
	if (l->state == DSM_COH_I || l->state == DSM_COH_S)
		return node_request(n, l, write, a);
	/* A request is in flight: its grant wakes every waiting thread, and one
	 * that wanted more than was granted faults again. */
	return 0;
}

/* Install a grant. A read miss granted exclusive (a migratory line) goes in read-only like
 * any read grant, as E: its first write is a write-protect fault served here. */
static int finish_grant(dsm_coh_node_t *n, dsm_coh_line_t *l, int src, dsm_coh_actions_t *a)
{
	int rw = l->state != DSM_COH_IS, excl = !rw && (l->flags & DSM_COH_LINE_EXCL), rc;

	if (!rw && (n->cfg.bugs & DSM_COH_BUG_READ_GRANT_RW))
		rc = act_src(a, DSM_COH_ACT_INSTALL_RW, l->line, src);
	else
		rc = act_src(a, rw ? DSM_COH_ACT_INSTALL_RW : DSM_COH_ACT_INSTALL_RO, l->line, src);
	if (rc < 0)
		return rc;
	l->state = rw ? DSM_COH_M : excl ? DSM_COH_E : DSM_COH_S;
	l->flags &= (uint8_t) ~(DSM_COH_LINE_RDMA | DSM_COH_LINE_EXCL);
	ACT(a, DSM_COH_ACT_WAKE, l->line);
	/* Keep the line until the woken threads have run (DESIGN.md, "Progress"). */
	if (!(n->cfg.bugs & DSM_COH_BUG_NO_HOLD)) {
		l->flags |= DSM_COH_LINE_HELD;
		ACT(a, DSM_COH_ACT_HOLD, l->line);
	}
	return send(n, a, l->home, DSM_COH_MSG_DONE, l->line, 0, DSM_COH_SRC_NONE);
}

static int node_grant(dsm_coh_node_t *n, dsm_coh_line_t *l, const dsm_coh_msg_t *m, int dsrc,
                      dsm_coh_actions_t *a)
{
	int data = m->flags & DSM_COH_MSGF_DATA, rdma = m->flags & DSM_COH_MSGF_RDMA;

	if (l->flags & (DSM_COH_LINE_RDMA | DSM_COH_LINE_WB))
		return DSM_ERR_PROTOCOL;
	if (m->type == DSM_COH_MSG_GRANT_S && l->state != DSM_COH_IS)
		return DSM_ERR_PROTOCOL;
	if (m->type == DSM_COH_MSG_GRANT_M) {
		/* Data comes exactly when we hold no copy; the home knows. A read miss
		 * may be granted exclusive (IS: a migratory line). */
		if ((l->state == DSM_COH_IM || l->state == DSM_COH_IS) && !data && !rdma)
			return DSM_ERR_PROTOCOL;
		if (l->state == DSM_COH_SM && (data || rdma))
			return DSM_ERR_PROTOCOL;
		if (l->state != DSM_COH_IM && l->state != DSM_COH_SM && l->state != DSM_COH_IS)
			return DSM_ERR_PROTOCOL;
		if (l->state == DSM_COH_IS)
			l->flags |= DSM_COH_LINE_EXCL;
	}
	if (data)
		return finish_grant(n, l, dsrc, a);
	if (rdma) {
		/* Our own home segment needs no RDMA. */
		if (m->src == n->cfg.rank)
			return finish_grant(n, l, DSM_COH_SRC_HOME, a);
		l->flags |= DSM_COH_LINE_RDMA;
		dsm_coh_action_t *x = act(a, DSM_COH_ACT_RDMA_READ, l->line);

		if (!x)
			return -ENOMEM;
		x->peer = l->home;
		return 0;
	}
	return finish_grant(n, l, DSM_COH_SRC_NONE, a);
}

/*
 * Copy the line out of the mapping for its home: the one action of a give-up
 * that reads the mapping. The caller has write-protected the line and zaps it
 * only after this (DESIGN.md, "Memory model"). At the home itself the copy is
 * a STORE_HOME listed here, not when the WB to itself is delivered: that
 * delivery comes after the zap and wake already listed, when the mapping is
 * gone. The WB then finds the data in place (src NONE).
 */
static int write_back(dsm_coh_node_t *n, dsm_coh_line_t *l, dsm_coh_actions_t *a)
{
	dsm_coh_action_t *x;

	if (l->home == n->cfg.rank) {
		int dsrc = DSM_COH_SRC_NONE;

		if (n->cfg.bugs & DSM_COH_BUG_ZAP_BEFORE_WB)
			dsrc = DSM_COH_SRC_MAP; /* stored at delivery: after the zap */
		else if (!(n->cfg.bugs & DSM_COH_BUG_NO_WRITEBACK) &&
		         act_src(a, DSM_COH_ACT_STORE_HOME, l->line, DSM_COH_SRC_MAP) < 0)
			return -ENOMEM;
		return send(n, a, l->home, DSM_COH_MSG_WB, l->line, DSM_COH_MSGF_DATA, dsrc);
	}
	if (n->cfg.wb_mode == DSM_COH_DATA_INLINE)
		return send(n, a, l->home, DSM_COH_MSG_WB, l->line, DSM_COH_MSGF_DATA,
		            DSM_COH_SRC_MAP);
	/* RDMA_WRITE copies the mapping into a bounce buffer as it runs; WB,
	 * without data, follows once the write has completed. */
	x = act(a, DSM_COH_ACT_RDMA_WRITE, l->line);
	if (!x)
		return -ENOMEM;
	x->peer = l->home;
	x->src = DSM_COH_SRC_MAP;
	l->flags |= DSM_COH_LINE_WB;
	return 0;
}

/*
 * Obey an INV or FWD now (the hold is over). Giving up an owned line is, in
 * this order: write-protect (no store still in flight), copy out, and for
 * FWD_M zap, then wake (a zap wakes nobody). Nothing reads the mapping after
 * the zap, at the home as at any other rank.
 */
static int node_give_up(dsm_coh_node_t *n, dsm_coh_line_t *l, int type, dsm_coh_actions_t *a)
{
	unsigned bugs = n->cfg.bugs;
	int rc, zap_first;

	if ((rc = count(a, l->line, DSM_COH_CNT_INV_RECEIVED)) < 0)
		return rc;
	if (l->state == DSM_COH_M && type == DSM_COH_MSG_FWD_M && (l->flags & DSM_COH_LINE_EVICT) &&
	    (bugs & DSM_COH_BUG_EVICT_NO_WB))
		l->state = DSM_COH_E; /* given up as if never written: the data is lost */
	/* An eviction asked for ends here: the copy goes (or, FWD_S, stays read-only, and the
	 * home's EVICT, served after this, will take it). */
	if (type != DSM_COH_MSG_FWD_S)
		l->flags &= (uint8_t)~DSM_COH_LINE_EVICT;
	if (l->state == DSM_COH_E) {
		/* Exclusive and never written: the mapping is read-only and equal to
		 * the home segment, so nothing is read or sent but the word "clean". */
		if ((rc = count(a, l->line, DSM_COH_CNT_CLEAN_WB)) < 0)
			return rc;
		if (type == DSM_COH_MSG_FWD_M) {
			ACT(a, DSM_COH_ACT_ZAP, l->line);
			ACT(a, DSM_COH_ACT_WAKE, l->line);
		}
		l->state = type == DSM_COH_MSG_FWD_M ? DSM_COH_I : DSM_COH_S;
		return send(n, a, l->home, DSM_COH_MSG_WB, l->line, DSM_COH_MSGF_CLEAN,
		            DSM_COH_SRC_NONE);
	}
	if (type == DSM_COH_MSG_INV) {
		/* A read-only copy: nothing to write back. */
		if (!(bugs & DSM_COH_BUG_INV_NO_ZAP)) {
			ACT(a, DSM_COH_ACT_ZAP, l->line);
			/* A zap wakes nobody; threads asleep on a write-protect
			 * fault must retry (and fault as MISSING). */
			ACT(a, DSM_COH_ACT_WAKE, l->line);
		}
		l->state = l->state == DSM_COH_SM ? DSM_COH_IM : DSM_COH_I;
		return send(n, a, l->home, DSM_COH_MSG_INV_ACK, l->line, 0, DSM_COH_SRC_NONE);
	}
	zap_first = type == DSM_COH_MSG_FWD_M && (bugs & DSM_COH_BUG_ZAP_BEFORE_WB_REMOTE) &&
	            l->home != n->cfg.rank;
	if (!(bugs & DSM_COH_BUG_WB_BEFORE_WP))
		ACT(a, DSM_COH_ACT_WRITE_PROTECT, l->line);
	if (zap_first)
		ACT(a, DSM_COH_ACT_ZAP, l->line);
	if ((rc = write_back(n, l, a)) < 0)
		return rc;
	if (bugs & DSM_COH_BUG_WB_BEFORE_WP)
		ACT(a, DSM_COH_ACT_WRITE_PROTECT, l->line);
	if (type == DSM_COH_MSG_FWD_S) {
		l->state = DSM_COH_S;
		return 0;
	}
	if (!zap_first)
		ACT(a, DSM_COH_ACT_ZAP, l->line);
	ACT(a, DSM_COH_ACT_WAKE, l->line);
	l->state = DSM_COH_I;
	return 0;
}

static int node_revoke(dsm_coh_node_t *n, dsm_coh_line_t *l, const dsm_coh_msg_t *m,
                       dsm_coh_actions_t *a)
{
	if (l->flags & (DSM_COH_LINE_RDMA | DSM_COH_LINE_WB) || l->deferred)
		return DSM_ERR_PROTOCOL;
	if (m->type == DSM_COH_MSG_INV && l->state != DSM_COH_S && l->state != DSM_COH_SM)
		return DSM_ERR_PROTOCOL;
	if (m->type != DSM_COH_MSG_INV && l->state != DSM_COH_M && l->state != DSM_COH_E)
		return DSM_ERR_PROTOCOL;
	if (l->flags & DSM_COH_LINE_HELD) {
		l->deferred = m->type;
		return count(a, l->line, DSM_COH_CNT_DEFERRED);
	}
	return node_give_up(n, l, m->type, a);
}

/*
 * The home answers LOST: the line's only copy died with a rank. Nothing is installed; the
 * range is poisoned, so the woken threads' access raises SIGBUS (and so does every later one
 * on this rank, with no fault to serve). Only a request without a copy can get it: a line
 * lost with its owner had no sharers.
 */
static int node_lost(dsm_coh_node_t *n, dsm_coh_line_t *l, const dsm_coh_msg_t *m,
                     dsm_coh_actions_t *a)
{
	dsm_coh_action_t *x;
	int rc;

	(void)n;
	if ((l->state != DSM_COH_IS && l->state != DSM_COH_IM) ||
	    (l->flags & (DSM_COH_LINE_RDMA | DSM_COH_LINE_WB)) || m->flags)
		return DSM_ERR_PROTOCOL;
	if ((rc = count(a, l->line, DSM_COH_CNT_LOST)) < 0)
		return rc;
	x = act(a, DSM_COH_ACT_POISON, l->line);
	if (!x)
		return -ENOMEM;
	x->msg = *m;
	ACT(a, DSM_COH_ACT_WAKE, l->line);
	l->state = DSM_COH_I;
	return 0;
}

static int node_msg(dsm_coh_node_t *n, const dsm_coh_msg_t *m, int dsrc, dsm_coh_actions_t *a)
{
	dsm_coh_line_t *l = dsm_coh_table_find(&n->lines, m->line);

	/* Only the home sends these, and only about lines we asked for. */
	if (!l || m->src != l->home)
		return DSM_ERR_PROTOCOL;
	switch (m->type) {
	case DSM_COH_MSG_GRANT_S:
	case DSM_COH_MSG_GRANT_M:
		return node_grant(n, l, m, dsrc, a);
	case DSM_COH_MSG_LOST:
		return node_lost(n, l, m, a);
	default:
		return node_revoke(n, l, m, a);
	}
}

static int node_rdma_done(dsm_coh_node_t *n, uint64_t line, dsm_coh_actions_t *a)
{
	dsm_coh_line_t *l = dsm_coh_table_find(&n->lines, line);

	if (!l || !(l->flags & DSM_COH_LINE_RDMA))
		return DSM_ERR_PROTOCOL;
	return finish_grant(n, l, DSM_COH_SRC_STAGING, a);
}

static int node_rdma_write_done(dsm_coh_node_t *n, uint64_t line, dsm_coh_actions_t *a)
{
	dsm_coh_line_t *l = dsm_coh_table_find(&n->lines, line);

	if (!l || !(l->flags & DSM_COH_LINE_WB))
		return DSM_ERR_PROTOCOL;
	l->flags &= (uint8_t)~DSM_COH_LINE_WB;
	/* The data is in the home segment: the home may grant from it now. */
	return send(n, a, l->home, DSM_COH_MSG_WB, l->line, DSM_COH_MSGF_RDMA, DSM_COH_SRC_NONE);
}

static int node_hold_done(dsm_coh_node_t *n, uint64_t line, dsm_coh_actions_t *a)
{
	dsm_coh_line_t *l = dsm_coh_table_find(&n->lines, line);
	int type;

	if (!l || !(l->flags & DSM_COH_LINE_HELD))
		return DSM_ERR_PROTOCOL;
	l->flags &= (uint8_t)~DSM_COH_LINE_HELD;
	type = l->deferred;
	l->deferred = 0;
	return type ? node_give_up(n, l, type, a) : 0;
}

/*
 * The runtime wants the room of a copy homed elsewhere. The copy is not dropped here: the
 * home is asked to take it (EVICT), in its turn among the line's transactions, and does so
 * with the INV or FWD_M that any writer's request would send. So the give-up keeps its
 * order (write-protect, copy out, zap, wake) and the directory stays exact whatever
 * crosses the EVICT. Refused (nothing changes) for a copy that is not stable: asked for,
 * held for woken threads, waiting for data or a write-back, or already being evicted.
 * @drop (freed memory): the home's own copy too, and no eviction is counted.
 */
static int node_evict(dsm_coh_node_t *n, uint64_t line, int drop, dsm_coh_actions_t *a)
{
	dsm_coh_line_t *l = dsm_coh_table_find(&n->lines, line);
	int rc;

	if (!l || (l->home == n->cfg.rank && !drop) || l->deferred ||
	    (l->state != DSM_COH_S && l->state != DSM_COH_M && l->state != DSM_COH_E) ||
	    (l->flags &
	     (DSM_COH_LINE_HELD | DSM_COH_LINE_RDMA | DSM_COH_LINE_WB | DSM_COH_LINE_EVICT)))
		return DSM_ERR_PROTOCOL;
	rc = drop ? 0
	          : count(a, line,
	                  l->state == DSM_COH_M ? DSM_COH_CNT_EVICT_DIRTY
	                                        : DSM_COH_CNT_EVICT_CLEAN);
	if (rc < 0)
		return rc;
	l->flags |= DSM_COH_LINE_EVICT;
	return send(n, a, l->home, DSM_COH_MSG_EVICT, line, 0, DSM_COH_SRC_NONE);
}

/* ---- The home side ---- */

static int dir_next(dsm_coh_node_t *n, dsm_coh_dir_t *d, dsm_coh_actions_t *a);

static int dir_grant_s(dsm_coh_node_t *n, dsm_coh_dir_t *d, unsigned r, dsm_coh_actions_t *a)
{
	int flags = n->cfg.data_mode == DSM_COH_DATA_RDMA ? DSM_COH_MSGF_RDMA : DSM_COH_MSGF_DATA;
	uint64_t line = d->line;
	int rc;

	/* The requester died while its request was served: the line stays as it is. */
	if (is_dead(n, r)) {
		d->state = d->sharers.n ? DSM_COH_DIR_S : DSM_COH_DIR_U;
		return dir_next(n, d, a);
	}
	if ((rc = dsm_coh_sharers_add(&d->sharers, r, n->cfg.nranks)) < 0)
		return rc;
	d->state = DSM_COH_DIR_S;
	d->wait = DSM_COH_DIR_WAIT_DONE;
	if ((rc = send(n, a, r, DSM_COH_MSG_GRANT_S, line, flags, DSM_COH_SRC_HOME)) < 0)
		return rc;
	return (n->cfg.bugs & DSM_COH_BUG_NO_DONE_WAIT) ? dir_next(n, d, a) : 0;
}

static int dir_grant_m(dsm_coh_node_t *n, dsm_coh_dir_t *d, unsigned r, int with_data,
                       dsm_coh_actions_t *a)
{
	int flags = 0, rc;
	uint64_t line = d->line;

	if (with_data)
		flags = n->cfg.data_mode == DSM_COH_DATA_RDMA ? DSM_COH_MSGF_RDMA
		                                              : DSM_COH_MSGF_DATA;
	dsm_coh_sharers_clear(&d->sharers);
	d->flags &= (uint8_t)~DSM_COH_DIR_F_LAST_WRITER;
	/* The requester died while the others gave the line up: the home segment is current
	 * and nobody holds a copy. */
	if (is_dead(n, r)) {
		d->state = DSM_COH_DIR_U;
		return dir_next(n, d, a);
	}
	d->state = DSM_COH_DIR_M;
	d->owner = (uint16_t)r;
	d->wait = DSM_COH_DIR_WAIT_DONE;
	if ((rc = send(n, a, r, DSM_COH_MSG_GRANT_M, line, flags, DSM_COH_SRC_HOME)) < 0)
		return rc;
	return (n->cfg.bugs & DSM_COH_BUG_NO_DONE_WAIT) ? dir_next(n, d, a) : 0;
}

/* A writer needs the data unless the directory lists it as a sharer: its
 * GET_M may have said "upgrade" and then crossed the INV of its copy. */
static int need_data(const dsm_coh_node_t *n, const dsm_coh_dir_t *d)
{
	if (n->cfg.bugs & DSM_COH_BUG_TRUST_UPGRADE)
		return !(d->flags & DSM_COH_DIR_F_UPGRADE);
	return !dsm_coh_sharers_has(&d->sharers, d->txn_req);
}

/* Tell @r that the line is lost (it died with rank d->owner): no transaction follows. */
static int send_lost(dsm_coh_node_t *n, dsm_coh_dir_t *d, unsigned r, dsm_coh_actions_t *a)
{
	int rc = send(n, a, r, DSM_COH_MSG_LOST, d->line, 0, DSM_COH_SRC_NONE);

	if (rc < 0)
		return rc;
	if (r == n->cfg.rank)
		n->selfq[n->selfq_n - 1].msg.reserved = d->owner;
	else
		a->v[a->n - 1].msg.reserved = d->owner;
	return 0;
}

/* The line's only copy died with rank @dead. */
static void dir_lose(dsm_coh_dir_t *d, unsigned dead)
{
	dsm_coh_sharers_clear(&d->sharers);
	d->state = DSM_COH_DIR_LOST;
	d->owner = (uint16_t)dead;
	d->flags = 0;
}

/* Start serving a request; the line is idle. */
static int dir_start(dsm_coh_node_t *n, dsm_coh_dir_t *d, unsigned r, int write, int mflags,
                     dsm_coh_actions_t *a)
{
	int s, rc;

	if (d->state == DSM_COH_DIR_LOST)
		return send_lost(n, d, r, a);

	/* The owner never asks for a line it holds. */
	if (d->state == DSM_COH_DIR_M && d->owner == r)
		return DSM_ERR_PROTOCOL;
	n->txns += d->txn == 0;
	d->txn = (uint8_t)(write ? DSM_COH_MSG_GET_M : DSM_COH_MSG_GET_S);
	d->txn_req = (uint16_t)r;
	if (d->state == DSM_COH_DIR_M) {
		int fwd = write ? DSM_COH_MSG_FWD_M : DSM_COH_MSG_FWD_S;

		/* A read of a migratory line takes it away from its owner whole. */
		if (!write && (d->flags & DSM_COH_DIR_F_MIGRATORY)) {
			d->flags |= DSM_COH_DIR_F_MIGRATING;
			if (!(n->cfg.bugs & DSM_COH_BUG_MIGRATE_KEEPS_COPY))
				fwd = DSM_COH_MSG_FWD_M;
		}
		d->wait = DSM_COH_DIR_WAIT_WB;
		if ((rc = count(a, d->line, DSM_COH_CNT_INV_SENT)) < 0)
			return rc;
		return send(n, a, d->owner, fwd, d->line, 0, DSM_COH_SRC_NONE);
	}
	if (!write)
		return dir_grant_s(n, d, r, a);
	d->flags = (uint8_t)((d->flags & ~DSM_COH_DIR_F_UPGRADE) |
	                     ((mflags & DSM_COH_MSGF_UPGRADE) ? DSM_COH_DIR_F_UPGRADE : 0));
	/* Migratory: the writer read the line from its last writer, and the two of them
	 * are all its sharers. The next read miss then takes the line exclusive. */
	if (n->cfg.migratory && (d->flags & DSM_COH_DIR_F_LAST_WRITER) && d->sharers.n == 2 &&
	    d->owner != r && dsm_coh_sharers_has(&d->sharers, r) &&
	    dsm_coh_sharers_has(&d->sharers, d->owner))
		d->flags |= DSM_COH_DIR_F_MIGRATORY;
	/* Invalidate every other sharer; grant once all have acked. Messages to
	 * ourselves queue until we return, so d stays put in this loop. */
	d->acks = 0;
	for (s = dsm_coh_sharers_next(&d->sharers, 0, n->cfg.nranks); s >= 0;
	     s = dsm_coh_sharers_next(&d->sharers, (unsigned)s + 1, n->cfg.nranks)) {
		if ((unsigned)s == r)
			continue;
		d->acks++;
		if ((rc = count(a, d->line, DSM_COH_CNT_INV_SENT)) < 0)
			return rc;
		if ((rc = send(n, a, (unsigned)s, DSM_COH_MSG_INV, d->line, 0, DSM_COH_SRC_NONE)) <
		    0)
			return rc;
	}
	if (d->acks == 0 || (n->cfg.bugs & DSM_COH_BUG_GRANT_BEFORE_ACKS)) {
		d->acks = 0;
		return dir_grant_m(n, d, r, need_data(n, d), a);
	}
	d->wait = DSM_COH_DIR_WAIT_ACKS;
	return 0;
}

/*
 * Serve an EVICT from @r: take its copy as a writer's request would, with FWD_M from the
 * owner (the write-back stores it; the line is then uncached) or INV to the sharer. A copy
 * already gone (an INV or FWD_M crossed the EVICT) leaves nothing to do.
 */
static int dir_evict(dsm_coh_node_t *n, dsm_coh_dir_t *d, unsigned r, dsm_coh_actions_t *a)
{
	int rc, type;

	if (d->state == DSM_COH_DIR_M && d->owner == r) {
		type = DSM_COH_MSG_FWD_M;
		d->wait = DSM_COH_DIR_WAIT_WB;
	} else if (d->state == DSM_COH_DIR_S && dsm_coh_sharers_has(&d->sharers, r)) {
		type = DSM_COH_MSG_INV;
		d->acks = 1;
		d->wait = DSM_COH_DIR_WAIT_ACKS;
	} else {
		return dir_next(n, d, a);
	}
	n->txns += d->txn == 0;
	d->txn = DSM_COH_MSG_EVICT;
	d->txn_req = (uint16_t)r;
	if ((rc = count(a, d->line, DSM_COH_CNT_INV_SENT)) < 0)
		return rc;
	return send(n, a, r, type, d->line, 0, DSM_COH_SRC_NONE);
}

/* The EVICT's INV or FWD_M took the copy. */
static int dir_evicted(dsm_coh_node_t *n, dsm_coh_dir_t *d, unsigned r, dsm_coh_actions_t *a)
{
	if (d->state == DSM_COH_DIR_M) {
		d->state = DSM_COH_DIR_U;
	} else if (!(n->cfg.bugs & DSM_COH_BUG_EVICT_KEEPS_SHARER)) {
		dsm_coh_sharers_del(&d->sharers, r);
		if (d->sharers.n == 0)
			d->state = DSM_COH_DIR_U;
	}
	if (d->state == DSM_COH_DIR_U) {
		dsm_coh_sharers_clear(&d->sharers);
		d->flags &= (uint8_t) ~(DSM_COH_DIR_F_LAST_WRITER | DSM_COH_DIR_F_MIGRATING);
	}
	d->acks = 0;
	return dir_next(n, d, a);
}

static int dir_enqueue(dsm_coh_dir_t *d, unsigned r, int kind)
{
	if (d->qlen == d->qcap) {
		unsigned cap = d->qcap ? d->qcap * 2u : 4u, i;
		dsm_coh_req_t *q;

		if (cap > 2u * DSM_COH_MAX_RANKS)
			return DSM_ERR_PROTOCOL;
		q = malloc(cap * sizeof(*q));
		if (!q)
			return -ENOMEM;
		for (i = 0; i < d->qlen; i++)
			q[i] = d->q[(d->qhead + i) % d->qcap];
		free(d->q);
		d->q = q;
		d->qhead = 0;
		d->qcap = (uint16_t)cap;
	}
	d->q[(d->qhead + d->qlen) % d->qcap] = (dsm_coh_req_t)(r << 2 | (unsigned)kind);
	d->qlen++;
	return 0;
}

/* The transaction is over: serve the next waiting request, if any. */
static int dir_next(dsm_coh_node_t *n, dsm_coh_dir_t *d, dsm_coh_actions_t *a)
{
	dsm_coh_req_t q;

	n->txns -= d->txn != 0;
	d->txn = 0;
	d->wait = 0;
	for (;;) {
		if (d->qlen == 0) {
			/* An idle line needs no queue: give the memory back. */
			free(d->q);
			d->q = NULL;
			d->qcap = d->qhead = 0;
			return 0;
		}
		q = d->q[d->qhead];
		d->qhead = (uint16_t)((d->qhead + 1) % d->qcap);
		d->qlen--;
		/* The requests of a rank that died go with it; a lost line answers each. */
		if (is_dead(n, q >> 2))
			continue;
		if (d->state == DSM_COH_DIR_LOST) {
			int rc = (q & 3) == DSM_COH_REQ_EVICT ? 0 : send_lost(n, d, q >> 2, a);

			if (rc < 0)
				return rc;
			continue;
		}
		if ((q & 3) == DSM_COH_REQ_EVICT)
			return dir_evict(n, d, q >> 2, a);
		/* A request that its turn finds impossible (the owner asking for the line it
		 * holds: a broken peer, since a rank has one request for a line at a time) is
		 * dropped, not charged to the message that ended the transaction before it,
		 * which would be refused after the changes above (found by fuzz_coh). */
		if (d->state == DSM_COH_DIR_M && d->owner == q >> 2)
			continue;
		return dir_start(n, d, q >> 2, (q & 3) == DSM_COH_REQ_WRITE, 0, a);
	}
}

/*
 * A survivor's copy of a line whose home died (PROTOCOL.md, "A dead rank"). They all come
 * before any request for the line (the runtime holds those back until every survivor has
 * sent its copies), and say what the old directory said: one owner (E with the data, M
 * without), or sharers, each with the data.
 */
static int home_adopt(dsm_coh_node_t *n, const dsm_coh_msg_t *m, int dsrc, dsm_coh_actions_t *a)
{
	int owner = m->flags & DSM_COH_MSGF_OWNER, data = m->flags & DSM_COH_MSGF_DATA, rc;
	dsm_coh_dir_t *d = dsm_coh_table_find(&n->dirs, m->line);

	if (m->flags & ~(DSM_COH_MSGF_OWNER | DSM_COH_MSGF_DATA))
		return DSM_ERR_PROTOCOL;
	if (d && (d->txn || d->qlen || d->state == DSM_COH_DIR_M || d->state == DSM_COH_DIR_LOST ||
	          (owner && d->state != DSM_COH_DIR_U)))
		return DSM_ERR_PROTOCOL;
	if (!owner && !data && !(n->cfg.bugs & DSM_COH_BUG_ADOPT_NO_DATA))
		return DSM_ERR_PROTOCOL;
	if (!d && !(d = dsm_coh_table_get(&n->dirs, m->line)))
		return -ENOMEM;
	if (data && dsrc != DSM_COH_SRC_NONE &&
	    (rc = act_src(a, DSM_COH_ACT_STORE_HOME, m->line, dsrc)) < 0)
		return rc;
	if (owner) {
		d->state = DSM_COH_DIR_M;
		d->owner = m->src;
		return 0;
	}
	if ((rc = dsm_coh_sharers_add(&d->sharers, m->src, n->cfg.nranks)) < 0)
		return rc;
	d->state = DSM_COH_DIR_S;
	return 0;
}

static int home_msg(dsm_coh_node_t *n, const dsm_coh_msg_t *m, int dsrc, dsm_coh_actions_t *a)
{
	dsm_coh_dir_t *d;
	unsigned r = m->src;
	int write = m->type == DSM_COH_MSG_GET_M, evict = m->type == DSM_COH_MSG_EVICT, rc;

	if (m->type == DSM_COH_MSG_ADOPT)
		return home_adopt(n, m, dsrc, a);

	if (m->type == DSM_COH_MSG_GET_S || write || evict) {
		/* An EVICT from this rank itself comes only from a DROP (freed memory): a message
		 * naming this rank as its source never arrives from outside (handle()). */
		d = dsm_coh_table_get(&n->dirs, m->line);
		if (!d)
			return -ENOMEM;
		if (d->txn) {
			rc = dir_enqueue(d, r,
			                 evict   ? DSM_COH_REQ_EVICT
			                 : write ? DSM_COH_REQ_WRITE
			                         : DSM_COH_REQ_READ);
			if (rc < 0)
				return rc;
			return count(a, m->line, DSM_COH_CNT_QUEUED);
		}
		if (evict)
			return dir_evict(n, d, r, a);
		return dir_start(n, d, r, write, m->flags, a);
	}
	d = dsm_coh_table_find(&n->dirs, m->line);
	if (!d)
		return DSM_ERR_PROTOCOL;
	switch (m->type) {
	case DSM_COH_MSG_INV_ACK:
		if (n->cfg.bugs & DSM_COH_BUG_GRANT_BEFORE_ACKS)
			return 0;
		if (d->wait != DSM_COH_DIR_WAIT_ACKS || !dsm_coh_sharers_has(&d->sharers, r))
			return DSM_ERR_PROTOCOL;
		/* Only a rank that was sent the INV acks it: the evicting rank, or a sharer
		 * other than the writer. */
		if (d->txn == DSM_COH_MSG_EVICT)
			return r == d->txn_req ? dir_evicted(n, d, r, a) : DSM_ERR_PROTOCOL;
		if (r == d->txn_req)
			return DSM_ERR_PROTOCOL;
		dsm_coh_sharers_del(&d->sharers, r);
		if (--d->acks > 0)
			return 0;
		return dir_grant_m(n, d, d->txn_req, need_data(n, d), a);
	case DSM_COH_MSG_WB: {
		int how = m->flags & (DSM_COH_MSGF_DATA | DSM_COH_MSGF_RDMA | DSM_COH_MSGF_CLEAN);
		int clean = how == DSM_COH_MSGF_CLEAN, kept;

		/* The data comes inline, or was written by RDMA before the WB, or the
		 * owner never wrote the line (clean: the home segment is current). */
		if (d->wait != DSM_COH_DIR_WAIT_WB || d->owner != r ||
		    (how != DSM_COH_MSGF_DATA && how != DSM_COH_MSGF_RDMA && !clean))
			return DSM_ERR_PROTOCOL;
		if (!(m->flags & DSM_COH_MSGF_DATA))
			dsrc = DSM_COH_SRC_NONE;
		if (!(n->cfg.bugs & DSM_COH_BUG_NO_WRITEBACK) && dsrc != DSM_COH_SRC_NONE &&
		    (rc = act_src(a, DSM_COH_ACT_STORE_HOME, m->line, dsrc)) < 0)
			return rc;
		if (d->txn == DSM_COH_MSG_EVICT)
			return dir_evicted(n, d, r, a);
		if (d->txn == DSM_COH_MSG_GET_M)
			return dir_grant_m(n, d, d->txn_req, 1, a);
		/* A GET_S: the old owner kept a read-only copy (FWD_S), or, for a
		 * migratory line, gave it up (FWD_M). */
		kept = !(d->flags & DSM_COH_DIR_F_MIGRATING) ||
		       (n->cfg.bugs & DSM_COH_BUG_MIGRATE_KEEPS_COPY);
		if (d->flags & DSM_COH_DIR_F_MIGRATING) {
			d->flags &= (uint8_t)~DSM_COH_DIR_F_MIGRATING;
			if (!clean) {
				if ((rc = count(a, d->line, DSM_COH_CNT_MIGRATORY)) < 0)
					return rc;
				return dir_grant_m(n, d, d->txn_req, 1, a);
			}
			/* The reader before never wrote it: the line is read, not
			 * passed around to be written. Share it from now on. */
			d->flags &= (uint8_t)~DSM_COH_DIR_F_MIGRATORY;
		}
		if (kept && (rc = dsm_coh_sharers_add(&d->sharers, r, n->cfg.nranks)) < 0)
			return rc;
		/* A written line shared by its writer: the writer's next upgrade is a
		 * producer's, a reader's is a turn of read-then-write. */
		if (kept && !clean)
			d->flags |= DSM_COH_DIR_F_LAST_WRITER;
		else
			d->flags &= (uint8_t)~DSM_COH_DIR_F_LAST_WRITER;
		return dir_grant_s(n, d, d->txn_req, a);
	}
	case DSM_COH_MSG_DONE:
		if (n->cfg.bugs & DSM_COH_BUG_NO_DONE_WAIT)
			return 0;
		if (d->wait != DSM_COH_DIR_WAIT_DONE || d->txn_req != r)
			return DSM_ERR_PROTOCOL;
		return dir_next(n, d, a);
	default:
		return DSM_ERR_PROTOCOL;
	}
}

static int is_home_msg(int type)
{
	return type == DSM_COH_MSG_GET_S || type == DSM_COH_MSG_GET_M ||
	       type == DSM_COH_MSG_INV_ACK || type == DSM_COH_MSG_WB || type == DSM_COH_MSG_DONE ||
	       type == DSM_COH_MSG_EVICT || type == DSM_COH_MSG_ADOPT;
}

static int deliver(dsm_coh_node_t *n, const dsm_coh_msg_t *m, int dsrc, dsm_coh_actions_t *a)
{
	/* Nothing from a dead rank counts (the transport drops what it sends after its death). */
	if (m->type == 0 || m->type >= DSM_COH_MSG_NTYPES || m->src >= n->cfg.nranks ||
	    is_dead(n, m->src) || (m->reserved && m->type != DSM_COH_MSG_LOST))
		return DSM_ERR_PROTOCOL;
	return is_home_msg(m->type) ? home_msg(n, m, dsrc, a) : node_msg(n, m, dsrc, a);
}

/* ---- A dead rank (PROTOCOL.md, "A dead rank") ---- */

static void queue_drop(dsm_coh_dir_t *d, unsigned dead)
{
	uint16_t k = 0;

	for (uint16_t i = 0; i < d->qlen; i++) {
		dsm_coh_req_t q = d->q[(d->qhead + i) % d->qcap];

		if (q >> 2 != dead)
			d->q[(d->qhead + k++) % d->qcap] = q;
	}
	d->qlen = k;
}

/* The home side: @dead leaves the line's sharers, queue and transaction. A line it held
 * modified, or was handing back, is lost. */
static int dir_peer_dead(dsm_coh_node_t *n, dsm_coh_dir_t *d, unsigned dead, dsm_coh_actions_t *a)
{
	bool keep_owner = n->cfg.bugs & DSM_COH_BUG_DEAD_KEEPS_OWNER;
	unsigned r = d->txn_req;
	int txn = d->txn;

	queue_drop(d, dead);
	if (d->state == DSM_COH_DIR_LOST)
		return 0;
	if ((d->flags & DSM_COH_DIR_F_LAST_WRITER) && d->owner == dead)
		d->flags &= (uint8_t)~DSM_COH_DIR_F_LAST_WRITER;
	if (!txn) {
		if (d->state == DSM_COH_DIR_M && d->owner == dead && !keep_owner) {
			dir_lose(d, dead);
		} else if (d->state == DSM_COH_DIR_S) {
			dsm_coh_sharers_del(&d->sharers, dead);
			if (d->sharers.n == 0)
				d->state = DSM_COH_DIR_U;
		}
		return 0;
	}
	switch (d->wait) {
	case DSM_COH_DIR_WAIT_DONE:
		if (r != dead) {
			if (d->state == DSM_COH_DIR_S)
				dsm_coh_sharers_del(&d->sharers, dead);
			return 0;
		}
		/* Granted, and died before saying DONE: what it was granted goes with it. */
		if (d->state == DSM_COH_DIR_M) {
			dir_lose(d, dead);
		} else {
			dsm_coh_sharers_del(&d->sharers, dead);
			d->state = d->sharers.n ? DSM_COH_DIR_S : DSM_COH_DIR_U;
		}
		return dir_next(n, d, a);
	case DSM_COH_DIR_WAIT_ACKS:
		if (txn == DSM_COH_MSG_EVICT) {
			if (r == dead)
				return dir_evicted(n, d, dead, a);
			dsm_coh_sharers_del(&d->sharers, dead);
			return 0;
		}
		/* A writer dying waits for its acks still; its grant then goes nowhere. */
		if (r == dead || !dsm_coh_sharers_has(&d->sharers, dead))
			return 0;
		dsm_coh_sharers_del(&d->sharers, dead);
		if (--d->acks > 0)
			return 0;
		return dir_grant_m(n, d, r, need_data(n, d), a);
	case DSM_COH_DIR_WAIT_WB:
		if (d->owner != dead || keep_owner)
			return 0; /* a requester dying gets nothing when the write-back comes */
		dir_lose(d, dead);
		if (r != dead) {
			int rc = send_lost(n, d, r, a);

			if (rc < 0)
				return rc;
		}
		return dir_next(n, d, a);
	default:
		return 0; /* a transaction always waits for something (dir_start) */
	}
}

/* Hand a copy of a line whose home died to its new home (home_adopt). */
static int node_adopt(dsm_coh_node_t *n, dsm_coh_line_t *l, dsm_coh_actions_t *a)
{
	int owner = l->state != DSM_COH_S, data = l->state != DSM_COH_M, rc;
	int flags = (owner ? DSM_COH_MSGF_OWNER : 0) | (data ? DSM_COH_MSGF_DATA : 0);

	if (!owner && (n->cfg.bugs & DSM_COH_BUG_ADOPT_NO_DATA))
		flags = 0;
	if ((rc = count(a, l->line, DSM_COH_CNT_ADOPTED)) < 0)
		return rc;
	/* At the new home itself the copy goes in now, while the mapping is read: the message
	 * to ourselves is delivered after this call's other actions. */
	if (l->home == n->cfg.rank) {
		if ((flags & DSM_COH_MSGF_DATA) &&
		    (rc = act_src(a, DSM_COH_ACT_STORE_HOME, l->line, DSM_COH_SRC_MAP)) < 0)
			return rc;
		return send(n, a, l->home, DSM_COH_MSG_ADOPT, l->line, flags, DSM_COH_SRC_NONE);
	}
	return send(n, a, l->home, DSM_COH_MSG_ADOPT, l->line, flags, DSM_COH_SRC_MAP);
}

/* The cache side: a line homed at the dead rank is homed at @adopter now. A request in
 * flight to the dead rank is forgotten and its threads fault again (to the new home); a
 * copy goes to the new home. A copy given up to the dead rank (its write-back died) is
 * lost, and so is a grant whose data was still to be read from the dead rank. */
static int node_peer_dead(dsm_coh_node_t *n, dsm_coh_line_t *l, unsigned adopter,
                          dsm_coh_actions_t *a)
{
	int st = l->state;

	l->home = (uint16_t)adopter;
	l->deferred = 0;
	l->flags &= (uint8_t) ~(DSM_COH_LINE_RDMA | DSM_COH_LINE_WB | DSM_COH_LINE_EXCL |
	                        DSM_COH_LINE_EVICT);
	switch (st) {
	case DSM_COH_IS:
	case DSM_COH_IM:
		l->state = DSM_COH_I;
		ACT(a, DSM_COH_ACT_WAKE, l->line);
		return 0;
	case DSM_COH_SM:
		l->state = DSM_COH_S;
		ACT(a, DSM_COH_ACT_WAKE, l->line);
		return node_adopt(n, l, a);
	case DSM_COH_S:
	case DSM_COH_E:
	case DSM_COH_M:
		return node_adopt(n, l, a);
	default:
		return 0;
	}
}

static int peer_dead(dsm_coh_node_t *n, unsigned dead, unsigned adopter, dsm_coh_actions_t *a)
{
	size_t i;
	int rc;

	if (dead >= n->cfg.nranks || dead == n->cfg.rank || adopter >= n->cfg.nranks ||
	    adopter == dead || is_dead(n, adopter))
		return -EINVAL;
	if (is_dead(n, dead))
		return 0;
	n->dead[dead / 64] |= 1ull << (dead % 64);
	for (i = 0; i < n->dirs.cap; i++) {
		dsm_coh_dir_t *d = dsm_coh_table_slot(&n->dirs, i);

		if (d && (rc = dir_peer_dead(n, d, dead, a)) < 0)
			return rc;
	}
	for (i = 0; i < n->lines.cap; i++) {
		dsm_coh_line_t *l = dsm_coh_table_slot(&n->lines, i);

		if (l && l->home == dead && (rc = node_peer_dead(n, l, adopter, a)) < 0)
			return rc;
	}
	return 0;
}

static int lost_line(dsm_coh_node_t *n, uint64_t line, unsigned dead)
{
	dsm_coh_dir_t *d;

	if (!is_dead(n, dead))
		return -EINVAL;
	if (dsm_coh_table_find(&n->dirs, line))
		return 0;
	if (!(d = dsm_coh_table_get(&n->dirs, line)))
		return -ENOMEM;
	dir_lose(d, dead);
	return 0;
}

/* ---- The entry point ---- */

static bool line_busy(const dsm_coh_line_t *l);

static int busy_of(const dsm_coh_node_t *n, uint64_t line)
{
	const dsm_coh_line_t *l = dsm_coh_table_find(&n->lines, line);

	return l && line_busy(l);
}

/* The lines of the cache side with something in flight, counted over every entry. */
static size_t count_busy(const dsm_coh_node_t *n)
{
	size_t busy = 0;

	for (size_t i = 0; i < n->lines.cap; i++) {
		const dsm_coh_line_t *l = dsm_coh_table_slot(&n->lines, i);

		busy += l && line_busy(l);
	}
	return busy;
}

static int handle(dsm_coh_node_t *n, const dsm_coh_event_t *ev, dsm_coh_actions_t *out);

/* An event changes the cache side of its own line only (messages a home sends itself are
 * about the line of the event), but a death, which touches every line: n->busy follows. */
int dsm_coh_handle(dsm_coh_node_t *n, const dsm_coh_event_t *ev, dsm_coh_actions_t *out)
{
	uint64_t line;
	int b0, rc;

	if (!n || !ev || !out)
		return -EINVAL;
	line = ev->type == DSM_COH_EV_MSG ? ev->msg.line : ev->line;
	b0 = busy_of(n, line);
	rc = handle(n, ev, out);
	if (ev->type == DSM_COH_EV_PEER_DEAD || n->selfq_other)
		n->busy = count_busy(n); /* afresh, after an event that touches many lines */
	else
		n->busy += (size_t)busy_of(n, line) - (size_t)b0;
	n->selfq_other = 0;
	return rc;
}

static int handle(dsm_coh_node_t *n, const dsm_coh_event_t *ev, dsm_coh_actions_t *out)
{
	size_t n0 = out->n, i;
	int rc;

	n->selfq_n = 0;
	switch (ev->type) {
	case DSM_COH_EV_READ_FAULT:
	case DSM_COH_EV_WRITE_FAULT:
		rc = node_fault(n, ev->line, ev->home, ev->type == DSM_COH_EV_WRITE_FAULT, out);
		break;
	case DSM_COH_EV_MSG:
		if (ev->msg.src == n->cfg.rank)
			return DSM_ERR_PROTOCOL;
		rc = deliver(n, &ev->msg, DSM_COH_SRC_MSG, out);
		break;
	case DSM_COH_EV_RDMA_DONE:
		rc = node_rdma_done(n, ev->line, out);
		break;
	case DSM_COH_EV_RDMA_WRITE_DONE:
		rc = node_rdma_write_done(n, ev->line, out);
		break;
	case DSM_COH_EV_HOLD_DONE:
		rc = node_hold_done(n, ev->line, out);
		break;
	case DSM_COH_EV_EVICT:
	case DSM_COH_EV_DROP:
		rc = node_evict(n, ev->line, ev->type == DSM_COH_EV_DROP, out);
		break;
	case DSM_COH_EV_PEER_DEAD:
		rc = peer_dead(n, ev->home, ev->adopter, out);
		break;
	case DSM_COH_EV_LOST_LINE:
		rc = lost_line(n, ev->line, ev->home);
		break;
	default:
		return -EINVAL;
	}
	/* Messages to ourselves, in the order sent: a zero-delay channel, which
	 * is one of the orders the protocol already has to handle. */
	for (i = 0; rc == 0 && i < n->selfq_n; i++) {
		struct self_msg sm = n->selfq[i];

		n->selfq_other |=
		        sm.msg.line != (ev->type == DSM_COH_EV_MSG ? ev->msg.line : ev->line);
		rc = deliver(n, &sm.msg, sm.dsrc, out);
		/* The event itself was taken and changed the state: a refusal of the engine's
		 * own message cannot be undone, and is not the sender's fault. */
		if (rc == DSM_ERR_PROTOCOL)
			rc = -EPROTO;
	}
	n->selfq_n = 0;
	if (rc < 0)
		out->n = n0;
	return rc;
}

/* ---- Introspection ---- */

void dsm_coh_line_info(const dsm_coh_node_t *n, uint64_t line, dsm_coh_line_info_t *out)
{
	const dsm_coh_line_t *l = dsm_coh_table_find(&n->lines, line);

	memset(out, 0, sizeof(*out));
	if (!l)
		return;
	out->state = (dsm_coh_state_t)l->state;
	out->held = !!(l->flags & DSM_COH_LINE_HELD);
	out->rdma = !!(l->flags & DSM_COH_LINE_RDMA);
	out->wb = !!(l->flags & DSM_COH_LINE_WB);
	out->deferred = l->deferred;
	out->evicting = !!(l->flags & DSM_COH_LINE_EVICT);
}

void dsm_coh_dir_info(const dsm_coh_node_t *n, uint64_t line, dsm_coh_dir_info_t *out)
{
	const dsm_coh_dir_t *d = dsm_coh_table_find(&n->dirs, line);

	memset(out, 0, sizeof(*out));
	if (!d)
		return;
	out->state = (dsm_coh_dir_state_t)d->state;
	out->owner = d->owner;
	out->nsharers = d->sharers.n;
	out->busy = d->txn != 0;
	out->queued = d->qlen;
}

/* A line with something in flight: a request, an RDMA read or write-back, an eviction, or an
 * invalidation that waits for a hold. */
static bool line_busy(const dsm_coh_line_t *l)
{
	return l->state == DSM_COH_IS || l->state == DSM_COH_IM || l->state == DSM_COH_SM ||
	       (l->flags & (DSM_COH_LINE_RDMA | DSM_COH_LINE_WB | DSM_COH_LINE_EVICT)) ||
	       l->deferred;
}

void dsm_coh_node_busy(const dsm_coh_node_t *n, size_t *cache_p, size_t *home_p)
{
	size_t home = 0;

	for (size_t i = 0; i < n->dirs.cap; i++) {
		const dsm_coh_dir_t *d = dsm_coh_table_slot(&n->dirs, i);

		home += d && (d->txn || d->qlen);
	}
	*cache_p = count_busy(n);
	*home_p = home;
}

void dsm_coh_node_in_flight(const dsm_coh_node_t *n, size_t *cache_p, size_t *home_p)
{
	*cache_p = n->busy;
	*home_p = n->txns;
}

int dsm_coh_dir_is_sharer(const dsm_coh_node_t *n, uint64_t line, unsigned rank)
{
	const dsm_coh_dir_t *d = dsm_coh_table_find(&n->dirs, line);

	return d && rank < n->cfg.nranks && dsm_coh_sharers_has(&d->sharers, rank);
}

struct enc {
	uint8_t *buf;
	size_t cap, n;
};

static void put(struct enc *e, uint64_t v, unsigned bytes)
{
	unsigned i;

	for (i = 0; i < bytes; i++, e->n++)
		if (e->n < e->cap)
			e->buf[e->n] = (uint8_t)(v >> (8 * i));
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Line ids of a table's entries, sorted: the slot order depends on the order
 * of insertion, which two equal states need not share. */
static uint64_t *sorted_lines(const dsm_coh_table_t *t)
{
	uint64_t *ids = malloc((t->n ? t->n : 1) * sizeof(*ids));
	size_t i, k = 0;

	if (!ids)
		return NULL;
	for (i = 0; i < t->cap; i++) {
		const uint64_t *p = dsm_coh_table_slot(t, i);

		if (p)
			ids[k++] = *p;
	}
	qsort(ids, k, sizeof(*ids), cmp_u64);
	return ids;
}

size_t dsm_coh_node_encode(const dsm_coh_node_t *n, uint8_t *buf, size_t cap)
{
	struct enc e = {buf, cap, 0};
	uint64_t *ids;
	size_t i, j;
	int s;

	ids = sorted_lines(&n->lines);
	for (i = 0; ids && i < n->lines.n; i++) {
		const dsm_coh_line_t *l = dsm_coh_table_find(&n->lines, ids[i]);

		/* An untouched line and an invalid one are the same state. */
		if (l->state == DSM_COH_I && !l->flags && !l->deferred)
			continue;
		put(&e, l->line, 8);
		put(&e, l->home, 2);
		put(&e, l->state, 1);
		put(&e, l->flags, 1);
		put(&e, l->deferred, 1);
	}
	free(ids);
	put(&e, 0xffff, 2);
	ids = sorted_lines(&n->dirs);
	for (i = 0; ids && i < n->dirs.n; i++) {
		const dsm_coh_dir_t *d = dsm_coh_table_find(&n->dirs, ids[i]);

		if (d->state == DSM_COH_DIR_U && !d->txn && !d->qlen)
			continue;
		put(&e, d->line, 8);
		put(&e, d->state, 1);
		put(&e, d->txn, 1);
		put(&e, d->wait, 1);
		put(&e,
		    d->flags & (DSM_COH_DIR_F_MIGRATORY | DSM_COH_DIR_F_MIGRATING |
		                DSM_COH_DIR_F_LAST_WRITER),
		    1);
		put(&e,
		    d->state == DSM_COH_DIR_M || d->state == DSM_COH_DIR_LOST ||
		                    (d->flags & DSM_COH_DIR_F_LAST_WRITER)
		            ? d->owner
		            : 0,
		    2);
		put(&e, d->txn ? d->txn_req : 0, 2);
		put(&e, d->acks, 2);
		put(&e, d->sharers.n, 2);
		for (s = dsm_coh_sharers_next(&d->sharers, 0, n->cfg.nranks); s >= 0;
		     s = dsm_coh_sharers_next(&d->sharers, (unsigned)s + 1, n->cfg.nranks))
			put(&e, (uint64_t)s, 2);
		put(&e, d->qlen, 2);
		for (j = 0; j < d->qlen; j++)
			put(&e, d->q[(d->qhead + j) % d->qcap], 4);
	}
	free(ids);
	for (i = 0; i < (n->cfg.nranks + 63) / 64; i++)
		put(&e, n->dead[i], 8);
	return e.n;
}

size_t dsm_coh_node_bytes(const dsm_coh_node_t *n)
{
	size_t b = sizeof(*n) + n->lines.cap * n->lines.esize + n->dirs.cap * n->dirs.esize;
	size_t i;

	for (i = 0; i < n->dirs.cap; i++) {
		const dsm_coh_dir_t *d = dsm_coh_table_slot(&n->dirs, i);

		if (!d)
			continue;
		b += d->qcap * sizeof(dsm_coh_req_t);
		if (d->sharers.bitmap)
			b += (n->cfg.nranks + 63) / 64 * 8;
	}
	return b + n->selfq_cap * sizeof(struct self_msg);
}
