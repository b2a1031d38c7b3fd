/* SPDX-License-Identifier: MIT */
/*
 * The model checker of multiple-writer memory (see mc_mw.h). The transitions follow
 * runtime/mw.c with twin tracking (DSM_MW_TRACK=twin) function by function: mw_fault,
 * fetch, install, make_dirty, release, acquire, answer_get, got_line, on_diff, on_mw
 * (ACK), run_deferred; barriers follow coll.c (dissemination) and mutexes mutex.c (the
 * home's queue, a remote unlock one message with no answer). Diffs are made and applied by
 * the real coherence/diff.c.
 *
 * One loop step runs one handler of mw.c whole, as the runtime's loop does; a thread's
 * access is one step, and a store to a page that does not allow it faults: the fault waits
 * in the rank's userfaultfd queue until the loop reads it, and the thread retries once an
 * install, a wake or a zap woke it. With twins, no store can land inside a handler (the
 * ones that read a page write-protect it first); with asynchronous tracking stores never
 * fault, and the one window that matters is kept open: between an acquire's release (its
 * scan) and its take-out, the other threads of the rank run.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coherence/diff.h"
#include "mc_mw.h"
#include "common/hash.h"

#define NR        MW_MC_MAX_RANKS
#define NT        MW_MC_MAX_THREADS
#define NL        MW_MC_MAX_LINES
#define NBY       MW_MC_MAX_BYTES
#define NM        MW_MC_MAX_MUTEXES
#define NG        (NR * NT)
#define NBYTES    (NL * NBY)
#define CHAN_MAX  6 /* messages in flight per ordered pair */
#define UFFD_MAX  4
#define ROUNDS    2 /* dissemination rounds for 3 ranks */
#define MAX_BAR   6
#define MAX_DEPTH 1024
#define MAX_CHOICES                                                                                \
	(NG + NG + NR + NR * NR * CHAN_MAX) /* threads, deferred ops, faults, messages */

/* A line's state on a rank, as mw.c has it. */
enum { ST_INVALID = 0, ST_PENDING, ST_RO, ST_DIRTY, ST_STATE = 0x0f, ST_STALE = 0x10 };
enum { MAP_PRESENT = 1, MAP_WRITABLE = 2 };
enum { P_WRITE = 1, P_WAITED = 2 }; /* a PENDING line's request */
enum { M_NONE, M_GET, M_DATA, M_DIFF, M_ACK, M_BAR, M_LOCK, M_UNLOCK, M_GRANT };

typedef struct msg {
	uint8_t type;
	uint8_t arg;      /* GET, DATA: the lines (a mask); BAR: the round; mutex ops: the mutex */
	uint8_t epoch;    /* GET, DATA */
	uint8_t who;      /* LOCK, GRANT: the thread */
	uint8_t mask[NL]; /* DIFF: the bytes of each line it carries */
	uint8_t data[NL][NBY];
} msg_t;

typedef struct chan {
	uint8_t n;
	msg_t m[CHAN_MAX];
} chan_t;

typedef struct rank {
	uint8_t st[NL], map[NL], pend[NL], pend_epoch[NL];
	uint8_t page[NL][NBY]; /* the rank's mapping of the line */
	uint8_t twin[NL][NBY]; /* while DIRTY */
	uint8_t home[NL][NBY]; /* the home segment, for the lines homed here */
	uint8_t epoch, outstanding;
	uint8_t held, unreleased;      /* mw.c's counters, kept as it keeps them */
	uint8_t nuffd, uffd[UFFD_MAX]; /* line | write << 4, in the kernel's order */
	uint8_t bar_got[ROUNDS];       /* barrier messages received per round */
	uint8_t nbar;                  /* barriers passed */
	uint8_t written;               /* asynchronous: the lines stored into since the scan */
	uint8_t take, take_thread;     /* asynchronous: the lines an acquire is taking out (its
	                                * loop is busy till then), and its thread + 1 */
} rank_t;

/* A thread: ready, blocked on a fault, asking the loop for a release or an acquire,
 * waiting for ACKs, a barrier round or a mutex, or done. */
enum { T_RUN, T_FAULT, T_REQ_REL, T_WAIT_ACK, T_REQ_ACQ, T_WAIT_BAR, T_WAIT_LOCK, T_DONE };

typedef struct thread {
	uint8_t pc;
	uint8_t sub; /* the part of a barrier, lock or unlock it is at */
	uint8_t status;
	uint8_t line, write, woken; /* T_FAULT */
	uint8_t round;              /* T_WAIT_BAR */
} thread_t;

typedef struct mutex {
	uint8_t holder; /* rank + 1, 0: free */
	uint8_t nq, q[NG];
} mutex_t;

/* What the checks need and the ranks do not see: happens-before (vector clocks, only for
 * race-free programs) and the last value written to each byte. */
typedef struct ghost {
	uint8_t vc[NG][NG];
	uint8_t bar_vc[MAX_BAR][NG];
	uint8_t mtx_vc[NM][NG];
	uint8_t last[NBYTES];
	uint8_t wr_tid[NBYTES], wr_clk[NBYTES]; /* the last write: thread + 1 and its clock */
	uint8_t rd_clk[NBYTES][NG];             /* reads since, per thread */
} ghost_t;

typedef struct state {
	rank_t rk[NR];
	thread_t th[NR][NT];
	mutex_t mx[NM];
	chan_t ch[NR][NR];
	ghost_t gh;
} state_t;

typedef struct ctx {
	const mw_mc_config_t *cfg;
	mw_mc_fail_t fail;
	char what[512];
	uint64_t cov[MW_MC_NCOV];
	unsigned rounds;
	int ends_barrier;  /* every thread with ops ends with a barrier */
	int ends_released; /* every write is followed by a release in its thread */
} ctx_t;

/* A step the scheduler can choose. */
enum { C_THREAD, C_UFFD, C_DEFER, C_MSG, C_TAKE };
typedef struct choice {
	uint8_t kind, a, b, idx; /* thread: rank, thread; uffd: rank; msg: src, dst, slot */
} choice_t;

const char *mw_mc_fail_name(int f)
{
	static const char *const names[MW_MC_NFAIL] = {[MW_MC_OK] = "ok",
	                                               [MW_MC_BAD_VALUE] = "a value nobody wrote",
	                                               [MW_MC_STALE_READ] = "stale read",
	                                               [MW_MC_FINAL] = "final state wrong",
	                                               [MW_MC_DEADLOCK] = "deadlock",
	                                               [MW_MC_CYCLE] = "cycle",
	                                               [MW_MC_PROTOCOL] = "protocol error",
	                                               [MW_MC_RACE] = "the program races",
	                                               [MW_MC_BOUND] = "model bound"};

	return f >= 0 && f < MW_MC_NFAIL ? names[f] : "?";
}

const char *mw_mc_cov_name(int c)
{
	static const char *const names[MW_MC_NCOV] = {
	        [MW_MC_COV_READAHEAD] = "read-ahead",
	        [MW_MC_COV_JOINED] = "fault on a line asked for",
	        [MW_MC_COV_STALE_FAULT] = "fault read after its line came",
	        [MW_MC_COV_MASTER_STORE] = "store into a master copy",
	        [MW_MC_COV_MASTER_ENDS] = "master copy ended by a diff",
	        [MW_MC_COV_TWO_WRITERS] = "two ranks write one line",
	        [MW_MC_COV_HOME_MERGE] = "home merges its own diff",
	        [MW_MC_COV_DROP_REMOTE] = "acquire drops a remote copy",
	        [MW_MC_COV_DROP_STALE] = "acquire drops a STALE home copy",
	        [MW_MC_COV_ACK_WAIT] = "release waits for ACKs",
	        [MW_MC_COV_DEFERRED] = "release/acquire deferred",
	        [MW_MC_COV_OLD_RESEND] = "old answer asked for again",
	        [MW_MC_COV_OLD_DROP] = "old read-ahead dropped",
	        [MW_MC_COV_LOCK_QUEUED] = "lock queued",
	        [MW_MC_COV_EARLY_BARRIER] = "barrier round before its rank",
	        [MW_MC_COV_TAKE_DIFF] = "store sent by a take-out",
	        [MW_MC_COV_EARLIER_GET] = "answer to an earlier GET"};

	return c >= 0 && c < MW_MC_NCOV ? names[c] : "?";
}

static void failf(ctx_t *x, mw_mc_fail_t f, const char *fmt, ...)
{
	va_list ap;

	if (x->fail)
		return;
	x->fail = f;
	va_start(ap, fmt);
	vsnprintf(x->what, sizeof(x->what), fmt, ap);
	va_end(ap);
}

static int bug(const ctx_t *x, unsigned b)
{
	return (x->cfg->bugs & b) != 0;
}

static unsigned home_of(const ctx_t *x, unsigned l)
{
	return x->cfg->home[l];
}

static const mw_mc_op_t *op_of(const ctx_t *x, const state_t *s, unsigned r, unsigned t)
{
	return &x->cfg->ops[r][t][s->th[r][t].pc];
}

/* ---- configurations ------------------------------------------------------------------- */

static int bad(char *why, unsigned len, const char *fmt, ...)
{
	va_list ap;

	if (why && len) {
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int parse_thread(mw_mc_config_t *c, unsigned r, unsigned t, const char *p, uint8_t *value,
                        char *why, unsigned len)
{
	unsigned n = 0;

	while (p && *p) {
		mw_mc_op_t op = {0};
		char k = *p++;

		if (k == ' ')
			continue;
		if (n == MW_MC_MAX_OPS)
			return bad(why, len, "rank %u thread %u: more than %d ops", r, t,
			           MW_MC_MAX_OPS);
		switch (k) {
		case 'w':
		case 'r':
			if (p[0] < '0' || p[0] > '9' || p[1] != '.' || p[2] < '0' || p[2] > '9')
				return bad(why, len, "rank %u thread %u: '%c' wants <line>.<byte>",
				           r, t, k);
			op.kind = k == 'w' ? MW_MC_WRITE : MW_MC_READ;
			op.line = (uint8_t)(p[0] - '0');
			op.byte = (uint8_t)(p[2] - '0');
			if (k == 'w')
				op.value = (*value)++;
			p += 3;
			break;
		case 'R':
			op.kind = MW_MC_RELEASE;
			break;
		case 'A':
			op.kind = MW_MC_ACQUIRE;
			break;
		case 'B':
			op.kind = MW_MC_BARRIER;
			break;
		case 'L':
		case 'U':
			if (*p < '0' || *p > '9')
				return bad(why, len, "rank %u thread %u: '%c' wants a mutex", r, t,
				           k);
			op.kind = k == 'L' ? MW_MC_LOCK : MW_MC_UNLOCK;
			op.mutex = (uint8_t)(*p++ - '0');
			break;
		default:
			return bad(why, len, "rank %u thread %u: unknown op '%c'", r, t, k);
		}
		c->ops[r][t][n++] = op;
	}
	c->nops[r][t] = n;
	return 0;
}

int mw_mc_config_from(const mw_mc_spec_t *sp, mw_mc_config_t *c, char *why, unsigned len)
{
	uint8_t value = 1;
	unsigned r, t, l;

	memset(c, 0, sizeof(*c));
	c->nranks = sp->nranks;
	c->nthreads = sp->nthreads ? sp->nthreads : 1;
	c->nlines = sp->nlines;
	c->nbytes = sp->nbytes;
	c->drf = sp->drf;
	if (!sp->homes || strlen(sp->homes) != sp->nlines || sp->nlines > NL)
		return bad(why, len, "%s: one home per line, up to %d lines", sp->name, NL);
	for (l = 0; l < sp->nlines; l++)
		c->home[l] = (uint8_t)(sp->homes[l] - '0');
	c->nmutexes = sp->mutex_homes ? (unsigned)strlen(sp->mutex_homes) : 0;
	if (c->nmutexes > NM)
		return bad(why, len, "%s: up to %d mutexes", sp->name, NM);
	for (l = 0; l < c->nmutexes; l++)
		c->mutex_home[l] = (uint8_t)(sp->mutex_homes[l] - '0');
	for (r = 0; r < NR; r++)
		for (t = 0; t < NT; t++)
			if (parse_thread(c, r, t, sp->prog[r][t], &value, why, len) < 0)
				return -1;
	return 0;
}

static int validate(ctx_t *x, char *why, unsigned len)
{
	const mw_mc_config_t *c = x->cfg;
	unsigned r, t, i, l, nbar[NR] = {0}, bar_thread[NR] = {0};
	uint8_t seen[256] = {0};

	if (c->nranks < 2 || c->nranks > NR || c->nthreads < 1 || c->nthreads > NT ||
	    c->nlines < 1 || c->nlines > NL || c->nbytes < 1 || c->nbytes > NBY || c->nmutexes > NM)
		return bad(why, len, "2..%d ranks, 1..%d threads, 1..%d lines, 1..%d bytes", NR, NT,
		           NL, NBY);
	for (l = 0; l < c->nlines; l++)
		if (c->home[l] >= c->nranks)
			return bad(why, len, "line %u: home %u out of range", l, c->home[l]);
	for (l = 0; l < c->nmutexes; l++)
		if (c->mutex_home[l] >= c->nranks)
			return bad(why, len, "mutex %u: home %u out of range", l, c->mutex_home[l]);
	x->rounds = c->nranks == 2 ? 1 : 2;
	x->ends_barrier = 1;
	x->ends_released = 1;
	for (r = 0; r < NR; r++)
		for (t = 0; t < NT; t++) {
			int dirty = 0, locked[NM] = {0};
			unsigned n = c->nops[r][t];

			if (n && (r >= c->nranks || t >= c->nthreads))
				return bad(why, len, "rank %u thread %u has ops but is not there",
				           r, t);
			if (n > MW_MC_MAX_OPS)
				return bad(why, len, "too many ops");
			if (n && c->ops[r][t][n - 1].kind != MW_MC_BARRIER)
				x->ends_barrier = 0;
			for (i = 0; i < n; i++) {
				const mw_mc_op_t *op = &c->ops[r][t][i];

				switch (op->kind) {
				case MW_MC_WRITE:
					if (op->value == 0 || seen[op->value]++)
						return bad(
						        why, len,
						        "rank %u thread %u op %u: a write's value "
						        "must be nonzero and its own",
						        r, t, i);
					dirty = 1;
					__attribute__((fallthrough));
				case MW_MC_READ:
					if (op->line >= c->nlines || op->byte >= c->nbytes)
						return bad(why, len,
						           "rank %u thread %u op %u: no such byte",
						           r, t, i);
					break;
				case MW_MC_RELEASE:
					dirty = 0;
					break;
				case MW_MC_BARRIER:
					/* One collective at a time per rank (coll.c): the model
					 * keeps one barrier's count per rank. */
					if (nbar[r]++ && bar_thread[r] != t)
						return bad(why, len,
						           "rank %u: barriers from one thread only",
						           r);
					bar_thread[r] = t;
					dirty = 0;
					break;
				case MW_MC_LOCK:
				case MW_MC_UNLOCK:
					if (op->mutex >= c->nmutexes ||
					    locked[op->mutex] != (op->kind == MW_MC_UNLOCK))
						return bad(
						        why, len,
						        "rank %u thread %u op %u: lock and unlock "
						        "in pairs",
						        r, t, i);
					locked[op->mutex] = op->kind == MW_MC_LOCK;
					if (op->kind == MW_MC_UNLOCK)
						dirty = 0;
					break;
				case MW_MC_ACQUIRE:
					break;
				default:
					return bad(why, len, "unknown op");
				}
			}
			for (l = 0; l < NM; l++)
				if (locked[l])
					return bad(why, len,
					           "rank %u thread %u ends holding a mutex", r, t);
			if (dirty)
				x->ends_released = 0;
		}
	for (r = 1; r < c->nranks; r++)
		if (nbar[r] != nbar[0])
			return bad(why, len, "every rank calls the barrier as often");
	if (nbar[0] > MAX_BAR)
		return bad(why, len, "up to %d barriers", MAX_BAR);
	return 0;
}

static void sim_init(const ctx_t *x, state_t *s)
{
	unsigned r, t;

	memset(s, 0, sizeof(*s));
	for (r = 0; r < NR; r++)
		for (t = 0; t < NT; t++) {
			s->th[r][t].status = x->cfg->nops[r][t] ? T_RUN : T_DONE;
			if (x->cfg->drf)
				s->gh.vc[r * NT + t][r * NT + t] = 1;
		}
}

/* ---- happens-before and the values -------------------------------------------------- */

static void vc_join(uint8_t *dst, const uint8_t *src)
{
	unsigned i;

	for (i = 0; i < NG; i++)
		if (src[i] > dst[i])
			dst[i] = src[i];
}

/* A release by thread @g into @sync (a barrier's or a mutex's clock). */
static void hb_release(const ctx_t *x, state_t *s, unsigned g, uint8_t *sync)
{
	if (!x->cfg->drf)
		return;
	vc_join(sync, s->gh.vc[g]);
	s->gh.vc[g][g]++;
}

static void hb_acquire(const ctx_t *x, state_t *s, unsigned g, const uint8_t *sync)
{
	if (x->cfg->drf)
		vc_join(s->gh.vc[g], sync);
}

/* Whether @v was stored into byte @i by a write that has happened (0: the initial value). */
static int written(const ctx_t *x, const state_t *s, unsigned i, uint8_t v)
{
	unsigned r, t, k;

	if (v == 0)
		return 1;
	for (r = 0; r < x->cfg->nranks; r++)
		for (t = 0; t < x->cfg->nthreads; t++)
			for (k = 0; k < s->th[r][t].pc; k++) {
				const mw_mc_op_t *op = &x->cfg->ops[r][t][k];

				if (op->kind == MW_MC_WRITE && op->value == v &&
				    (unsigned)op->line * NBY + op->byte == i)
					return 1;
			}
	return 0;
}

/* Checks an access of byte @i by thread @g against the last write and the reads since;
 * nonzero: a race. */
static int hb_access(ctx_t *x, state_t *s, unsigned g, unsigned i, int write)
{
	ghost_t *h = &s->gh;
	unsigned w = h->wr_tid[i], k;

	if (!x->cfg->drf)
		return 0;
	if (w && w - 1 != g && h->wr_clk[i] > h->vc[g][w - 1]) {
		failf(x, MW_MC_RACE,
		      "rank %u thread %u's %s of line %u byte %u races with rank %u thread %u's "
		      "write",
		      g / NT, g % NT, write ? "write" : "read", i / NBY, i % NBY, (w - 1) / NT,
		      (w - 1) % NT);
		return 1;
	}
	if (write) {
		for (k = 0; k < NG; k++)
			if (k != g && h->rd_clk[i][k] && h->rd_clk[i][k] > h->vc[g][k]) {
				failf(x, MW_MC_RACE,
				      "rank %u thread %u's write of line %u byte %u races with "
				      "rank %u thread %u's read",
				      g / NT, g % NT, i / NBY, i % NBY, k / NT, k % NT);
				return 1;
			}
		h->wr_tid[i] = (uint8_t)(g + 1);
		h->wr_clk[i] = h->vc[g][g];
		memset(h->rd_clk[i], 0, sizeof(h->rd_clk[i]));
	} else {
		h->rd_clk[i][g] = h->vc[g][g];
	}
	return 0;
}

/* ---- the ranks ------------------------------------------------------------------------ */

static void next_op(const ctx_t *x, state_t *s, unsigned r, unsigned t);

static msg_t *msg_send(ctx_t *x, state_t *s, unsigned src, unsigned dst, uint8_t type)
{
	static msg_t sink; /* where a message goes once the model is out of room */
	chan_t *c = &s->ch[src][dst];
	msg_t *m;

	if (c->n == CHAN_MAX) {
		failf(x, MW_MC_BOUND, "more than %d messages in flight from rank %u to rank %u",
		      CHAN_MAX, src, dst);
		return &sink;
	}
	m = &c->m[c->n++];
	memset(m, 0, sizeof(*m));
	m->type = type;
	return m;
}

/* An install, a wake or a zap of @l: the threads blocked on it retry. */
static void wake(state_t *s, unsigned r, unsigned l)
{
	unsigned t;

	for (t = 0; t < NT; t++)
		if (s->th[r][t].status == T_FAULT && s->th[r][t].line == l)
			s->th[r][t].woken = 1;
}

static int is_master(const ctx_t *x, const state_t *s, unsigned r, unsigned l)
{
	uint8_t st = s->rk[r].st[l];

	return (st & ST_STATE) == ST_RO && !(st & ST_STALE) && home_of(x, l) == r;
}

static void make_dirty(state_t *s, unsigned r, unsigned l, const uint8_t *src)
{
	rank_t *k = &s->rk[r];

	memcpy(k->twin[l], src, NBY);
	k->unreleased++;
	k->st[l] = (uint8_t)((k->st[l] & ST_STALE) | ST_DIRTY);
}

static void install(const ctx_t *x, state_t *s, unsigned r, unsigned l, const uint8_t *src,
                    int write)
{
	rank_t *k = &s->rk[r];
	int remote = home_of(x, l) != r;

	k->st[l] = ST_RO;
	if (remote)
		k->held++;
	if (x->cfg->async) {
		/* Any copy may be written from now on without a word: the twin of one homed
		 * elsewhere is its bytes now. */
		k->unreleased++;
		if (remote)
			memcpy(k->twin[l], src, NBY);
		write = !remote;
	} else if (!remote) {
		write = 1; /* the master copy */
	} else if (write) {
		make_dirty(s, r, l, src);
	}
	memcpy(k->page[l], src, NBY);
	k->map[l] = (uint8_t)(MAP_PRESENT | (write ? MAP_WRITABLE : 0));
	k->written &= (uint8_t) ~(1u << l);
	wake(s, r, l);
}

static void send_get(ctx_t *x, state_t *s, unsigned r, uint8_t lines, unsigned home)
{
	msg_t *m = msg_send(x, s, r, home, M_GET);

	m->arg = lines;
	m->epoch = s->rk[r].epoch;
}

/* A miss on @l: it and the lines after it with the same home and no copy are asked for. */
static void fetch(ctx_t *x, state_t *s, unsigned r, unsigned l, int write)
{
	rank_t *k = &s->rk[r];
	unsigned h = home_of(x, l), m;
	uint8_t lines = 0;

	for (m = l; m < x->cfg->nlines; m++) {
		if (m != l && (x->cfg->no_readahead || (k->st[m] & ST_STATE) != ST_INVALID ||
		               home_of(x, m) != h))
			continue;
		k->held++;
		k->st[m] = ST_PENDING;
		k->pend[m] = m == l ? (uint8_t)(P_WAITED | (write ? P_WRITE : 0)) : 0;
		k->pend_epoch[m] = k->epoch;
		lines |= (uint8_t)(1u << m);
	}
	if (lines != (1u << l))
		x->cov[MW_MC_COV_READAHEAD]++;
	send_get(x, s, r, lines, h);
}

/* The loop reads the first fault of rank @r (dsm_rt_mw_fault). */
static void on_fault(ctx_t *x, state_t *s, unsigned r)
{
	rank_t *k = &s->rk[r];
	unsigned l = k->uffd[0] & 0x0f;
	int write = k->uffd[0] >> 4;

	memmove(k->uffd, k->uffd + 1, UFFD_MAX - 1);
	k->uffd[--k->nuffd] = 0;
	switch (k->st[l] & ST_STATE) {
	case ST_INVALID:
		if (home_of(x, l) == r)
			install(x, s, r, l, k->home[l], write);
		else
			fetch(x, s, r, l, write);
		break;
	case ST_PENDING:
		if (!(k->pend[l] & P_WAITED))
			x->cov[MW_MC_COV_JOINED]++;
		k->pend[l] |= (uint8_t)(P_WAITED | (write ? P_WRITE : 0));
		break;
	case ST_RO:
		if (write && !x->cfg->async && !is_master(x, s, r, l)) {
			make_dirty(s, r, l, k->page[l]);
			k->map[l] |= MAP_WRITABLE;
			wake(s, r, l);
			break;
		}
		__attribute__((fallthrough));
	case ST_DIRTY:
		x->cov[MW_MC_COV_STALE_FAULT]++;
		wake(s, r, l);
		break;
	}
}

/* The bytes of a diff, made and read back by coherence/diff.c: a byte is in it when
 * applying it to a line of zeros or of 0xff changes that byte. */
static uint8_t diff_mask(ctx_t *x, const uint8_t *twin, const uint8_t *cur)
{
	uint8_t t8[8] = {0}, c8[8] = {0}, lo[8], hi[8], d[64];
	uint8_t mask = 0;
	size_t len;
	unsigned b;

	_Static_assert(NBY <= 8 && sizeof(d) >= 8 + 1 + 8, "a line of the model fits a diff");
	memcpy(t8, twin, NBY);
	memcpy(c8, cur, NBY);
	len = dsm_coh_diff_make(t8, c8, sizeof(t8), d, NULL);
	memset(lo, 0, sizeof(lo));
	memset(hi, 0xff, sizeof(hi));
	if (len && (dsm_coh_diff_apply(lo, sizeof(lo), d, len) < 0 ||
	            dsm_coh_diff_apply(hi, sizeof(hi), d, len) < 0)) {
		failf(x, MW_MC_PROTOCOL, "a diff of diff.c does not apply");
		return 0;
	}
	for (b = 0; b < sizeof(t8); b++) {
		int in = lo[b] != 0 || hi[b] != 0xff;

		if (in != (t8[b] != c8[b]) || (in && (lo[b] != c8[b] || hi[b] != c8[b])))
			failf(x, MW_MC_PROTOCOL, "diff.c's diff is wrong at byte %u", b);
		if (in)
			mask |= (uint8_t)(1u << b);
	}
	return mask;
}

static uint8_t full_mask(const ctx_t *x)
{
	return (uint8_t)((1u << x->cfg->nbytes) - 1);
}

/* Merges the bytes of @mask from @src into the home copy @dst. */
static void merge(const ctx_t *x, uint8_t *dst, uint8_t mask, const uint8_t *src)
{
	unsigned b, shift = bug(x, MW_MC_BUG_DIFF_SHIFT) ? 1 : 0;

	for (b = 0; b < x->cfg->nbytes; b++)
		if (mask & (1u << b))
			dst[(b + shift) % x->cfg->nbytes] = src[b];
}

/* The diffs a release gathers, one DIFF per home. */
typedef struct outs {
	msg_t m[NR];
	uint8_t used[NR];
} outs_t;

/* The diff of line @l against @twin, read from @cur, merged here or gathered for its home
 * (diff_out); returns its bytes. */
static uint8_t diff_out(ctx_t *x, state_t *s, unsigned r, unsigned l, const uint8_t *twin,
                        const uint8_t *cur, outs_t *o)
{
	rank_t *k = &s->rk[r];
	unsigned h = home_of(x, l), b;
	uint8_t mask = diff_mask(x, bug(x, MW_MC_BUG_DIFF_VS_PAGE) ? cur : twin, cur);

	if (bug(x, MW_MC_BUG_WHOLE_LINE))
		mask = full_mask(x);
	if (!mask)
		return 0;
	if (h == r) {
		merge(x, k->home[l], mask, cur);
		x->cov[MW_MC_COV_HOME_MERGE]++;
		return mask;
	}
	o->m[h].mask[l] = mask;
	for (b = 0; b < NBY; b++)
		if (mask & (1u << b))
			o->m[h].data[l][b] = cur[b];
	o->used[h] = 1;
	return mask;
}

static void outs_send(ctx_t *x, state_t *s, unsigned r, const outs_t *o)
{
	unsigned h;

	for (h = 0; h < x->cfg->nranks; h++)
		if (o->used[h]) {
			msg_t *m = msg_send(x, s, r, h, M_DIFF);

			memcpy(m->mask, o->m[h].mask, sizeof(m->mask));
			memcpy(m->data, o->m[h].data, sizeof(m->data));
			s->rk[r].outstanding++;
			s->rk[r].unreleased++;
		}
}

/* release_async(): the lines written since the last scan (which write-protects them again)
 * go out, each against its twin, and what they hold now is their twin for the next one.
 * No store is lost in between: one that lands before the copy is in this diff, one after it
 * marks the line written for the next. */
static void release_async(ctx_t *x, state_t *s, unsigned r)
{
	rank_t *k = &s->rk[r];
	outs_t o;
	unsigned l;

	memset(&o, 0, sizeof(o));
	for (l = 0; l < x->cfg->nlines; l++) {
		if (!(k->written & (1u << l)))
			continue;
		k->written &= (uint8_t) ~(1u << l);
		if ((k->st[l] & ST_STATE) != ST_RO || is_master(x, s, r, l))
			continue; /* not installed, or the line itself */
		diff_out(x, s, r, l, k->twin[l], k->page[l], &o);
		memcpy(k->twin[l], k->page[l], NBY);
	}
	outs_send(x, s, r, &o);
}

/* mw.c's release(): the DIRTY lines are write-protected, diffed against their twins and
 * sent to their homes, one DIFF per home (or merged here). */
static void release(ctx_t *x, state_t *s, unsigned r)
{
	rank_t *k = &s->rk[r];
	outs_t o;
	unsigned l, nd = 0;

	if (x->cfg->async) {
		release_async(x, s, r);
		return;
	}
	memset(&o, 0, sizeof(o));
	for (l = 0; l < x->cfg->nlines; l++) {
		if ((k->st[l] & ST_STATE) != ST_DIRTY)
			continue;
		nd++;
		k->map[l] &= (uint8_t)~MAP_WRITABLE;
		k->st[l] = (uint8_t)((k->st[l] & ST_STALE) | ST_RO);
		diff_out(x, s, r, l, k->twin[l], k->page[l], &o);
		memset(k->twin[l], 0, NBY);
	}
	outs_send(x, s, r, &o);
	k->unreleased = (uint8_t)(k->unreleased - nd);
}

/* mw.c's acquire(): a release, then every copy another rank may have written goes. With
 * asynchronous tracking they go by take_out(), a step of its own: nonzero then. */
static int acquire(ctx_t *x, state_t *s, unsigned r)
{
	rank_t *k = &s->rk[r];
	unsigned l, nd = 0;

	release(x, s, r);
	k->epoch++;
	for (l = 0; l < x->cfg->nlines; l++) {
		int drop;

		if ((k->st[l] & ST_STATE) != ST_RO)
			continue;
		if (home_of(x, l) != r)
			drop = !bug(x, MW_MC_BUG_KEEP_REMOTE);
		else
			drop = (k->st[l] & ST_STALE) && !bug(x, MW_MC_BUG_KEEP_STALE);
		if (!drop)
			continue;
		x->cov[home_of(x, l) != r ? MW_MC_COV_DROP_REMOTE : MW_MC_COV_DROP_STALE]++;
		k->st[l] = ST_INVALID;
		if (x->cfg->async) {
			k->take |= (uint8_t)(1u << l); /* still mapped: stores may land */
			continue;
		}
		k->map[l] = 0;
		memset(k->page[l], 0, NBY);
		wake(s, r, l);
		nd++;
	}
	k->held = (uint8_t)(k->held - nd);
	return k->take != 0;
}

/* take_out(): the lines an asynchronous acquire drops leave the mapping at once (UFFDIO_MOVE:
 * any later access faults), and what was stored into them since the scan goes to the
 * homes, one more diff against the twin. */
static void take_out(ctx_t *x, state_t *s, unsigned r)
{
	rank_t *k = &s->rk[r];
	unsigned l, nd = 0, t = k->take_thread - 1u;
	outs_t o;

	memset(&o, 0, sizeof(o));
	for (l = 0; l < x->cfg->nlines; l++) {
		if (!(k->take & (1u << l)))
			continue;
		nd++;
		if (!bug(x, MW_MC_BUG_TAKE_NO_DIFF) &&
		    diff_out(x, s, r, l, k->twin[l], k->page[l], &o))
			x->cov[MW_MC_COV_TAKE_DIFF]++;
		k->map[l] = 0;
		memset(k->page[l], 0, NBY);
		memset(k->twin[l], 0, NBY);
		k->written &= (uint8_t) ~(1u << l);
	}
	outs_send(x, s, r, &o);
	k->held = (uint8_t)(k->held - nd);
	k->unreleased = (uint8_t)(k->unreleased - nd);
	k->take = 0;
	k->take_thread = 0;
	next_op(x, s, r, t);
}

/* The home answers a GET: from the master copy where there is one. */
static void on_get(ctx_t *x, state_t *s, unsigned h, unsigned src, const msg_t *g)
{
	msg_t *m = msg_send(x, s, h, src, M_DATA);
	unsigned l;

	m->arg = g->arg;
	m->epoch = g->epoch;
	for (l = 0; l < x->cfg->nlines; l++)
		if (g->arg & (1u << l))
			memcpy(m->data[l],
			       is_master(x, s, h, l) && !bug(x, MW_MC_BUG_ANSWER_HOME)
			               ? s->rk[h].page[l]
			               : s->rk[h].home[l],
			       NBY);
}

/* One line of a GET's answer (got_line). */
static void got_line(ctx_t *x, state_t *s, unsigned r, unsigned l, uint8_t epoch,
                     const uint8_t *data)
{
	rank_t *k = &s->rk[r];
	int write;

	if ((k->st[l] & ST_STATE) != ST_PENDING) {
		/* mw.c drops it; it cannot happen (a line has one GET out at most). */
		failf(x, MW_MC_PROTOCOL, "rank %u got line %u, which it did not ask for", r, l);
		return;
	}
	if (epoch != k->pend_epoch[l]) {
		x->cov[MW_MC_COV_EARLIER_GET]++;
		return; /* the answer to an earlier GET: the later one's is on its way */
	}
	if (k->pend_epoch[l] != k->epoch && !bug(x, MW_MC_BUG_NO_EPOCH)) {
		if ((k->pend[l] & P_WAITED) && !bug(x, MW_MC_BUG_DROP_WAITED)) {
			x->cov[MW_MC_COV_OLD_RESEND]++;
			k->pend_epoch[l] = k->epoch;
			send_get(x, s, r, (uint8_t)(1u << l), home_of(x, l));
		} else {
			x->cov[MW_MC_COV_OLD_DROP]++;
			k->st[l] = ST_INVALID;
			k->pend[l] = 0;
			k->pend_epoch[l] = 0;
			k->held--;
		}
		return;
	}
	write = k->pend[l] & P_WRITE;
	k->pend[l] = 0;
	k->pend_epoch[l] = 0;
	k->held--;
	install(x, s, r, l, data, write);
}

/* Another rank's diffs merge at their home (on_diff). */
static void on_diff(ctx_t *x, state_t *s, unsigned h, unsigned src, const msg_t *d)
{
	rank_t *k = &s->rk[h];
	unsigned l;

	for (l = 0; l < x->cfg->nlines; l++) {
		if (!d->mask[l])
			continue;
		if (home_of(x, l) != h) {
			failf(x, MW_MC_PROTOCOL, "rank %u got a diff of line %u, not homed there",
			      h, l);
			return;
		}
		if (is_master(x, s, h, l)) {
			/* It was the line: the home copy takes it, and its stores are tracked from
			 * now on (write-protected first); asynchronously, the home copy as it is
			 * now is its twin. */
			x->cov[MW_MC_COV_MASTER_ENDS]++;
			if (!bug(x, MW_MC_BUG_MASTER_NO_WP)) {
				k->map[l] &= (uint8_t)~MAP_WRITABLE;
				k->written &= (uint8_t) ~(1u << l);
			}
			memcpy(k->home[l], k->page[l], NBY);
			if (x->cfg->async)
				memcpy(k->twin[l], k->home[l], NBY);
			if (!bug(x, MW_MC_BUG_NO_STALE_MARK)) {
				k->st[l] |= ST_STALE;
				k->held++;
			}
		}
		merge(x, k->home[l], d->mask[l], d->data[l]);
	}
	msg_send(x, s, h, src, M_ACK);
}

/* ---- the threads and their calls ----------------------------------------------------- */

static void next_op(const ctx_t *x, state_t *s, unsigned r, unsigned t)
{
	thread_t *th = &s->th[r][t];

	th->pc++;
	th->sub = 0;
	th->round = 0;
	th->status = th->pc >= x->cfg->nops[r][t] ? T_DONE : T_RUN;
}

static void after_release(const ctx_t *x, state_t *s, unsigned r, unsigned t)
{
	thread_t *th = &s->th[r][t];

	th->status = T_RUN;
	if (op_of(x, s, r, t)->kind == MW_MC_RELEASE)
		next_op(x, s, r, t);
	else
		th->sub = 1;
}

/* dsm_rt_mw_release: nothing to ask for while nothing is unreleased. */
static void start_release(const ctx_t *x, state_t *s, unsigned r, unsigned t)
{
	if (s->rk[r].unreleased == 0)
		after_release(x, s, r, t);
	else
		s->th[r][t].status = T_REQ_REL;
}

/* dsm_rt_mw_acquire: nothing to ask for while nothing is unreleased or held. */
static void start_acquire(const ctx_t *x, state_t *s, unsigned r, unsigned t)
{
	if (s->rk[r].unreleased == 0 && s->rk[r].held == 0)
		next_op(x, s, r, t);
	else
		s->th[r][t].status = T_REQ_ACQ;
}

/* Whether a thread of @r waits for a line (a release or acquire waits then). */
static int waiting(const ctx_t *x, const state_t *s, unsigned r)
{
	unsigned l;

	for (l = 0; l < x->cfg->nlines; l++)
		if ((s->rk[r].st[l] & ST_STATE) == ST_PENDING && (s->rk[r].pend[l] & P_WAITED))
			return 1;
	return 0;
}

/* The loop runs what thread @t asked for (run_deferred). */
static void on_deferred(ctx_t *x, state_t *s, unsigned r, unsigned t)
{
	thread_t *th = &s->th[r][t];

	if (th->status == T_REQ_ACQ) {
		if (acquire(x, s, r))
			s->rk[r].take_thread = (uint8_t)(t + 1); /* done by take_out */
		else
			next_op(x, s, r, t);
		return;
	}
	release(x, s, r);
	if (s->rk[r].outstanding == 0 || bug(x, MW_MC_BUG_NO_ACK_WAIT)) {
		after_release(x, s, r, t);
	} else {
		th->status = T_WAIT_ACK;
		x->cov[MW_MC_COV_ACK_WAIT]++;
	}
}

static void on_ack(ctx_t *x, state_t *s, unsigned r)
{
	rank_t *k = &s->rk[r];
	unsigned t;

	if (k->outstanding == 0) {
		failf(x, MW_MC_PROTOCOL, "rank %u got an ACK it did not wait for", r);
		return;
	}
	k->unreleased--;
	if (--k->outstanding)
		return;
	for (t = 0; t < NT; t++)
		if (s->th[r][t].status == T_WAIT_ACK)
			after_release(x, s, r, t);
}

/* The barrier's rounds as far as the messages received allow (coll.c: in round i a rank
 * sends to rank + 2^i and waits for rank - 2^i). */
static void bar_progress(ctx_t *x, state_t *s, unsigned r)
{
	rank_t *k = &s->rk[r];
	unsigned t;

	for (t = 0; t < NT; t++) {
		thread_t *th = &s->th[r][t];

		while (th->status == T_WAIT_BAR && k->bar_got[th->round] > k->nbar) {
			if (++th->round == x->rounds) {
				hb_acquire(x, s, r * NT + t, s->gh.bar_vc[k->nbar]);
				k->nbar++;
				th->round = 0;
				th->status = T_RUN;
				th->sub = 2;
				break;
			}
			msg_send(x, s, r, (r + (1u << th->round)) % x->cfg->nranks, M_BAR)->arg =
			        th->round;
		}
	}
}

static void bar_enter(ctx_t *x, state_t *s, unsigned r, unsigned t)
{
	thread_t *th = &s->th[r][t];

	hb_release(x, s, r * NT + t, s->gh.bar_vc[s->rk[r].nbar]);
	th->round = 0;
	th->status = T_WAIT_BAR;
	msg_send(x, s, r, (r + 1) % x->cfg->nranks, M_BAR)->arg = 0;
	bar_progress(x, s, r);
}

static void on_bar(ctx_t *x, state_t *s, unsigned r, unsigned round)
{
	rank_t *k = &s->rk[r];
	int waits = 0;
	unsigned t;

	for (t = 0; t < NT; t++)
		waits |= s->th[r][t].status == T_WAIT_BAR && s->th[r][t].round == round &&
		         k->bar_got[round] == k->nbar;
	if (!waits)
		x->cov[MW_MC_COV_EARLY_BARRIER]++;
	k->bar_got[round]++;
	bar_progress(x, s, r);
}

static void lock_granted(ctx_t *x, state_t *s, unsigned g, unsigned m)
{
	thread_t *th = &s->th[g / NT][g % NT];

	if (th->status != T_WAIT_LOCK && !(th->status == T_RUN && th->sub == 0)) {
		failf(x, MW_MC_PROTOCOL, "rank %u thread %u granted a mutex it did not ask for",
		      g / NT, g % NT);
		return;
	}
	hb_acquire(x, s, g, s->gh.mtx_vc[m]);
	th->status = T_RUN;
	th->sub = 2;
}

/* The home gives mutex @m to thread @g (a reply: local, or one message). */
static void grant(ctx_t *x, state_t *s, unsigned m, unsigned g)
{
	unsigned h = x->cfg->mutex_home[m];
	msg_t *msg;

	s->mx[m].holder = (uint8_t)(g / NT + 1);
	if (g / NT == h) {
		lock_granted(x, s, g, m);
		return;
	}
	msg = msg_send(x, s, h, g / NT, M_GRANT);
	msg->arg = (uint8_t)m;
	msg->who = (uint8_t)g;
}

static void lock_or_queue(ctx_t *x, state_t *s, unsigned m, unsigned g)
{
	mutex_t *mx = &s->mx[m];

	if (mx->holder == 0) {
		grant(x, s, m, g);
		return;
	}
	x->cov[MW_MC_COV_LOCK_QUEUED]++;
	mx->q[mx->nq++] = (uint8_t)g;
}

static void unlock(ctx_t *x, state_t *s, unsigned m, unsigned src)
{
	mutex_t *mx = &s->mx[m];
	unsigned g;

	if (mx->holder != src + 1) {
		failf(x, MW_MC_PROTOCOL, "rank %u unlocks mutex %u, which it does not hold", src,
		      m);
		return;
	}
	mx->holder = 0;
	if (mx->nq == 0)
		return;
	g = mx->q[0];
	memmove(mx->q, mx->q + 1, NG - 1);
	mx->q[--mx->nq] = 0;
	grant(x, s, m, g);
}

/* A read or a write: done if the mapping allows it, else a fault for the loop. */
static void thread_access(ctx_t *x, state_t *s, unsigned r, unsigned t)
{
	thread_t *th = &s->th[r][t];
	const mw_mc_op_t *op = op_of(x, s, r, t);
	rank_t *k = &s->rk[r];
	unsigned l = op->line, i = l * NBY + op->byte, g = r * NT + t;
	int write = op->kind == MW_MC_WRITE;
	/* Asynchronously tracked, a store into a mapped line never faults. */
	uint8_t need = (uint8_t)(MAP_PRESENT | (write && !x->cfg->async ? MAP_WRITABLE : 0)), v;

	if ((k->map[l] & need) != need) {
		if (k->nuffd == UFFD_MAX) {
			failf(x, MW_MC_BOUND, "more than %d faults queued on rank %u", UFFD_MAX, r);
			return;
		}
		k->uffd[k->nuffd++] = (uint8_t)(l | (unsigned)write << 4);
		th->status = T_FAULT;
		th->line = (uint8_t)l;
		th->write = (uint8_t)write;
		th->woken = 0;
		return;
	}
	th->line = th->write = th->woken = 0;
	if (hb_access(x, s, g, i, write))
		return;
	if (write) {
		if (is_master(x, s, r, l))
			x->cov[MW_MC_COV_MASTER_STORE]++;
		k->page[l][op->byte] = op->value;
		if (x->cfg->async)
			k->written |= (uint8_t)(1u << l);
		s->gh.last[i] = op->value;
		next_op(x, s, r, t);
		return;
	}
	v = k->page[l][op->byte];
	if (!written(x, s, i, v))
		failf(x, MW_MC_BAD_VALUE,
		      "rank %u thread %u (op %u) read %u from line %u byte %u, a value no "
		      "write stored there",
		      r, t, th->pc, v, l, op->byte);
	else if (x->cfg->drf && v != s->gh.last[i])
		failf(x, MW_MC_STALE_READ,
		      "rank %u thread %u (op %u) read %u from line %u byte %u; the last "
		      "write, which happens-before it, stored %u",
		      r, t, th->pc, v, l, op->byte, s->gh.last[i]);
	next_op(x, s, r, t);
}

static void thread_step(ctx_t *x, state_t *s, unsigned r, unsigned t)
{
	thread_t *th = &s->th[r][t];
	const mw_mc_op_t *op = op_of(x, s, r, t);
	unsigned g = r * NT + t, h = op->mutex < NM ? x->cfg->mutex_home[op->mutex] : 0;
	msg_t *m;

	switch (op->kind) {
	case MW_MC_READ:
	case MW_MC_WRITE:
		thread_access(x, s, r, t);
		return;
	case MW_MC_RELEASE:
		start_release(x, s, r, t);
		return;
	case MW_MC_ACQUIRE:
		start_acquire(x, s, r, t);
		return;
	case MW_MC_BARRIER:
		if (th->sub == 0)
			start_release(x, s, r, t);
		else if (th->sub == 1)
			bar_enter(x, s, r, t);
		else
			start_acquire(x, s, r, t);
		return;
	case MW_MC_LOCK:
		if (th->sub == 2) {
			start_acquire(x, s, r, t);
			return;
		}
		if (h == r) {
			/* The home's own thread: one compare-and-swap, else the loop queues. */
			if (s->mx[op->mutex].holder == 0)
				grant(x, s, op->mutex, g);
			else
				lock_or_queue(x, s, op->mutex, g);
		} else {
			m = msg_send(x, s, r, h, M_LOCK);
			m->arg = op->mutex;
			m->who = (uint8_t)g;
		}
		if (th->sub == 0 && th->status == T_RUN)
			th->status = T_WAIT_LOCK;
		return;
	case MW_MC_UNLOCK:
		if (th->sub == 0) {
			start_release(x, s, r, t);
			return;
		}
		hb_release(x, s, g, s->gh.mtx_vc[op->mutex]);
		if (h == r) {
			unlock(x, s, op->mutex, r);
		} else if (s->mx[op->mutex].holder != r + 1) {
			failf(x, MW_MC_PROTOCOL, "rank %u unlocks mutex %u, which it does not hold",
			      r, op->mutex);
		} else {
			msg_send(x, s, r, h, M_UNLOCK)->arg = op->mutex;
		}
		next_op(x, s, r, t);
		return;
	}
}

static void deliver(ctx_t *x, state_t *s, unsigned src, unsigned dst, unsigned idx)
{
	chan_t *c = &s->ch[src][dst];
	msg_t m = c->m[idx];
	unsigned l;

	memmove(&c->m[idx], &c->m[idx + 1], (c->n - idx - 1) * sizeof(c->m[0]));
	memset(&c->m[--c->n], 0, sizeof(c->m[0]));
	switch (m.type) {
	case M_GET:
		on_get(x, s, dst, src, &m);
		break;
	case M_DATA:
		for (l = 0; l < x->cfg->nlines && !x->fail; l++)
			if (m.arg & (1u << l)) {
				if (home_of(x, l) != src)
					failf(x, MW_MC_PROTOCOL, "rank %u answered line %u", src,
					      l);
				else
					got_line(x, s, dst, l, m.epoch, m.data[l]);
			}
		break;
	case M_DIFF:
		on_diff(x, s, dst, src, &m);
		break;
	case M_ACK:
		on_ack(x, s, dst);
		break;
	case M_BAR:
		on_bar(x, s, dst, m.arg);
		break;
	case M_LOCK:
		lock_or_queue(x, s, m.arg, m.who);
		break;
	case M_UNLOCK:
		unlock(x, s, m.arg, src);
		break;
	case M_GRANT:
		lock_granted(x, s, m.who, m.arg);
		break;
	default:
		failf(x, MW_MC_PROTOCOL, "a message of no type");
	}
}

/* ---- the scheduler --------------------------------------------------------------------- */

static unsigned choices(ctx_t *x, const state_t *s, choice_t *c)
{
	const mw_mc_config_t *cfg = x->cfg;
	unsigned n = 0, r, t, d, i;

	for (r = 0; r < cfg->nranks; r++) {
		int held_back = 0, busy = s->rk[r].take != 0;

		/* Inside an asynchronous acquire the loop does nothing else until the take-out;
		 * the rank's other threads run. */
		if (busy)
			c[n++] = (choice_t){C_TAKE, (uint8_t)r, 0, 0};
		for (t = 0; t < cfg->nthreads; t++) {
			const thread_t *th = &s->th[r][t];

			if (th->status == T_RUN || (th->status == T_FAULT && th->woken))
				c[n++] = (choice_t){C_THREAD, (uint8_t)r, (uint8_t)t, 0};
			if (busy)
				continue;
			if (th->status == T_REQ_REL || th->status == T_REQ_ACQ) {
				if (cfg->no_defer || !waiting(x, s, r))
					c[n++] = (choice_t){C_DEFER, (uint8_t)r, (uint8_t)t, 0};
				else
					held_back = 1;
			}
		}
		x->cov[MW_MC_COV_DEFERRED] += (uint64_t)held_back;
		if (s->rk[r].nuffd && !busy)
			c[n++] = (choice_t){C_UFFD, (uint8_t)r, 0, 0};
	}
	for (r = 0; r < cfg->nranks; r++)
		for (d = 0; d < cfg->nranks; d++)
			for (i = 0;
			     i < s->ch[r][d].n && (i == 0 || cfg->any_order) && !s->rk[d].take; i++)
				c[n++] = (choice_t){C_MSG, (uint8_t)r, (uint8_t)d, (uint8_t)i};
	return n;
}

static void step(ctx_t *x, state_t *s, const choice_t *c)
{
	switch (c->kind) {
	case C_THREAD:
		thread_step(x, s, c->a, c->b);
		break;
	case C_UFFD:
		on_fault(x, s, c->a);
		break;
	case C_DEFER:
		on_deferred(x, s, c->a, c->b);
		break;
	case C_MSG:
		deliver(x, s, c->a, c->b, c->idx);
		break;
	case C_TAKE:
		take_out(x, s, c->a);
		break;
	}
}

/* After every step: mw.c's counters agree with the states they count. */
static void check_state(ctx_t *x, const state_t *s)
{
	unsigned r, l, dirty[NL] = {0};

	for (r = 0; r < x->cfg->nranks; r++) {
		const rank_t *k = &s->rk[r];
		unsigned held = 0, unrel = k->outstanding;

		for (l = 0; l < x->cfg->nlines; l++) {
			unsigned st = k->st[l] & ST_STATE, taking = (k->take >> l) & 1;

			/* A line being taken out is counted until it is out. */
			held += st == ST_PENDING || taking ||
			        (st >= ST_RO && (home_of(x, l) != r || (k->st[l] & ST_STALE)));
			/* Asynchronously every copy is unreleased (it may be written unseen). */
			unrel += x->cfg->async ? st >= ST_RO || taking : st == ST_DIRTY;
			dirty[l] += st == ST_DIRTY || (x->cfg->async && (k->written >> l & 1));
		}
		if (held != k->held || unrel != k->unreleased)
			failf(x, MW_MC_PROTOCOL,
			      "rank %u counts %u held and %u unreleased, its states %u and %u", r,
			      k->held, k->unreleased, held, unrel);
	}
	for (l = 0; l < x->cfg->nlines; l++)
		if (dirty[l] >= 2)
			x->cov[MW_MC_COV_TWO_WRITERS]++;
}

static const char *status_name(unsigned st)
{
	static const char *const n[] = {"ready",
	                                "blocked on a fault",
	                                "asking a release",
	                                "waiting for ACKs",
	                                "asking an acquire",
	                                "in a barrier round",
	                                "waiting for a mutex",
	                                "done"};

	return st < sizeof(n) / sizeof(n[0]) ? n[st] : "?";
}

/* At the end of a schedule: nothing waits, and the homes hold what was written. */
static void check_end(ctx_t *x, const state_t *s)
{
	const mw_mc_config_t *cfg = x->cfg;
	unsigned r, t, l, b;

	for (r = 0; r < cfg->nranks; r++) {
		const rank_t *k = &s->rk[r];

		for (t = 0; t < cfg->nthreads; t++)
			if (s->th[r][t].status != T_DONE) {
				failf(x, MW_MC_DEADLOCK, "rank %u thread %u is stuck at op %u, %s",
				      r, t, s->th[r][t].pc, status_name(s->th[r][t].status));
				return;
			}
		for (l = 0; l < cfg->nlines; l++)
			if ((k->st[l] & ST_STATE) == ST_PENDING) {
				failf(x, MW_MC_DEADLOCK,
				      "rank %u's GET of line %u is never answered", r, l);
				return;
			}
		if (k->outstanding) {
			failf(x, MW_MC_DEADLOCK, "rank %u waits for %u ACKs", r, k->outstanding);
			return;
		}
	}
	for (l = 0; l < cfg->nlines; l++) {
		unsigned h = home_of(x, l);
		const uint8_t *eff = is_master(x, s, h, l) ? s->rk[h].page[l] : s->rk[h].home[l];

		for (b = 0; b < cfg->nbytes; b++) {
			unsigned i = l * NBY + b;

			if (!written(x, s, i, eff[b])) {
				failf(x, MW_MC_FINAL,
				      "at the end line %u byte %u is %u at its home (rank %u), a "
				      "value no write stored there",
				      l, b, eff[b], h);
				return;
			}
			if (cfg->drf && x->ends_released && eff[b] != s->gh.last[i]) {
				failf(x, MW_MC_FINAL,
				      "at the end line %u byte %u is %u at its home (rank %u), "
				      "not the last write's %u",
				      l, b, eff[b], h, s->gh.last[i]);
				return;
			}
		}
	}
	if (!cfg->drf || !x->ends_barrier)
		return;
	for (r = 0; r < cfg->nranks; r++)
		for (l = 0; l < cfg->nlines; l++)
			for (b = 0; b < cfg->nbytes && (s->rk[r].map[l] & MAP_PRESENT); b++)
				if (s->rk[r].page[l][b] != s->gh.last[l * NBY + b]) {
					failf(x, MW_MC_FINAL,
					      "after the final barrier rank %u keeps a copy of "
					      "line "
					      "%u with byte %u = %u, not the last write's %u",
					      r, l, b, s->rk[r].page[l][b],
					      s->gh.last[l * NBY + b]);
					return;
				}
}

/* ---- describing a schedule ------------------------------------------------------------ */

static const char *kind_name(unsigned k)
{
	static const char *const n[] = {"read",    "write", "release", "acquire",
	                                "barrier", "lock",  "unlock"};

	return k < sizeof(n) / sizeof(n[0]) ? n[k] : "?";
}

static void describe(const ctx_t *x, const state_t *s, const choice_t *c, char *b, size_t n)
{
	static const char *const mt[] = {"?",   "GET",  "DATA",   "DIFF", "ACK",
	                                 "BAR", "LOCK", "UNLOCK", "GRANT"};
	const thread_t *th;
	const mw_mc_op_t *op;
	const msg_t *m;
	int k;

	switch (c->kind) {
	case C_THREAD:
		th = &s->th[c->a][c->b];
		op = op_of(x, s, c->a, c->b);
		if (op->kind == MW_MC_READ || op->kind == MW_MC_WRITE) {
			uint8_t need = op->kind == MW_MC_WRITE && !x->cfg->async
			                       ? MAP_PRESENT | MAP_WRITABLE
			                       : MAP_PRESENT;
			int ok = (s->rk[c->a].map[op->line] & need) == need;

			k = snprintf(b, n, "r%u.t%u %s%s line %u byte %u", c->a, c->b,
			             th->status == T_FAULT ? "retries " : "", kind_name(op->kind),
			             op->line, op->byte);
			if (k > 0 && (size_t)k < n && !ok)
				snprintf(b + k, n - (size_t)k, ": faults");
			else if (k > 0 && (size_t)k < n && op->kind == MW_MC_WRITE)
				snprintf(b + k, n - (size_t)k, " = %u", op->value);
			else if (k > 0 && (size_t)k < n)
				snprintf(b + k, n - (size_t)k, " -> %u",
				         s->rk[c->a].page[op->line][op->byte]);
		} else {
			static const char *const part[][3] = {
			        [MW_MC_RELEASE] = {""},
			        [MW_MC_ACQUIRE] = {""},
			        [MW_MC_BARRIER] = {": release", ": enters", ": acquire"},
			        [MW_MC_LOCK] = {": asks", "", ": acquire"},
			        [MW_MC_UNLOCK] = {": release", ": gives it back"}};

			if (op->kind >= MW_MC_LOCK)
				snprintf(b, n, "r%u.t%u %s %u%s", c->a, c->b, kind_name(op->kind),
				         op->mutex, part[op->kind][th->sub]);
			else
				snprintf(b, n, "r%u.t%u %s%s", c->a, c->b, kind_name(op->kind),
				         part[op->kind][th->sub]);
		}
		break;
	case C_UFFD:
		snprintf(b, n, "r%u loop reads a %s fault on line %u", c->a,
		         s->rk[c->a].uffd[0] >> 4 ? "write" : "read", s->rk[c->a].uffd[0] & 15);
		break;
	case C_DEFER:
		snprintf(b, n, "r%u loop runs t%u's %s", c->a, c->b,
		         s->th[c->a][c->b].status == T_REQ_ACQ ? "acquire" : "release");
		break;
	case C_TAKE:
		snprintf(b, n, "r%u loop takes lines %#x out (t%u's acquire)", c->a,
		         s->rk[c->a].take, s->rk[c->a].take_thread - 1u);
		break;
	case C_MSG:
		m = &s->ch[c->a][c->b].m[c->idx];
		k = snprintf(b, n, "deliver %s %u->%u", m->type < 9 ? mt[m->type] : "?", c->a,
		             c->b);
		if (k <= 0 || (size_t)k >= n)
			break;
		if (m->type == M_GET || m->type == M_DATA)
			k += snprintf(b + k, n - (size_t)k, " lines %#x epoch %u", m->arg,
			              m->epoch);
		else if (m->type == M_DIFF)
			k += snprintf(b + k, n - (size_t)k, " bytes %x/%x/%x", m->mask[0],
			              m->mask[1], m->mask[2]);
		else if (m->type == M_BAR)
			k += snprintf(b + k, n - (size_t)k, " round %u", m->arg);
		if (m->type == M_DATA && (size_t)k < n)
			snprintf(b + k, n - (size_t)k, " [%u %u|%u %u|%u %u]", m->data[0][0],
			         m->data[0][1], m->data[1][0], m->data[1][1], m->data[2][0],
			         m->data[2][1]);
		break;
	}
}

void mw_mc_config_str(const mw_mc_config_t *cfg, char *buf, unsigned len)
{
	size_t at = 0;
	unsigned r, t, i, l;

#define PUT(...)                                                                                   \
	do {                                                                                       \
		if (at < len)                                                                      \
			at += (size_t)snprintf(buf + at, len - at, __VA_ARGS__);                   \
	} while (0)
	PUT("%u ranks, %u threads, %u lines x %u bytes, homes ", cfg->nranks, cfg->nthreads,
	    cfg->nlines, cfg->nbytes);
	for (l = 0; l < cfg->nlines; l++)
		PUT("%u", cfg->home[l]);
	if (cfg->nmutexes)
		PUT(", mutex homes ");
	for (l = 0; l < cfg->nmutexes; l++)
		PUT("%u", cfg->mutex_home[l]);
	PUT("%s%s%s%s%s, bugs %#x\n", cfg->drf ? ", race-free" : ", racy",
	    cfg->async ? ", asynchronous tracking" : ", twins",
	    cfg->no_defer ? ", no deferral" : "", cfg->no_readahead ? ", no read-ahead" : "",
	    cfg->any_order ? ", any order" : "", cfg->bugs);
	for (r = 0; r < cfg->nranks; r++)
		for (t = 0; t < cfg->nthreads; t++) {
			PUT("  r%u.t%u:", r, t);
			for (i = 0; i < cfg->nops[r][t]; i++) {
				const mw_mc_op_t *op = &cfg->ops[r][t][i];
				static const char k[] = "rwRABLU";

				if (op->kind <= MW_MC_WRITE)
					PUT(" %c%u.%u", k[op->kind], op->line, op->byte);
				else if (op->kind >= MW_MC_LOCK)
					PUT(" %c%u", k[op->kind], op->mutex);
				else
					PUT(" %c", k[op->kind]);
			}
			PUT("\n");
		}
#undef PUT
}

/* The schedule @path from the start, step by step, into @res->trace (its end, if long). */
static void trace(const mw_mc_config_t *cfg, const choice_t *path, unsigned n, mw_mc_result_t *res)
{
	size_t cap = 1 << 17, at = 0, keep = sizeof(res->trace) - 1;
	char *buf = malloc(cap);
	ctx_t x = {.cfg = cfg};
	state_t s;
	unsigned i;

	if (!buf)
		return;
	if (validate(&x, NULL, 0) < 0) {
		free(buf);
		return;
	}
	sim_init(&x, &s);
	mw_mc_config_str(cfg, buf, (unsigned)cap);
	at = strlen(buf);
	for (i = 0; i < n && at < cap - 256; i++) {
		char d[160];

		describe(&x, &s, &path[i], d, sizeof(d));
		at += (size_t)snprintf(buf + at, cap - at, "  %3u: %s\n", i, d);
		step(&x, &s, &path[i]);
		if (x.fail)
			break;
	}
	if (at > keep) {
		memcpy(res->trace, "...\n", 4);
		memcpy(res->trace + 4, buf + at - (keep - 4), keep - 4);
		res->trace[keep] = 0;
	} else {
		memcpy(res->trace, buf, at + 1);
	}
	free(buf);
}

/* ---- state hashing -------------------------------------------------------------------- */

static int cmp_msg(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(msg_t));
}

/* The fingerprint of what decides the future; the states keep unused fields zero. */
static uint64_t state_hash(const ctx_t *x, const state_t *s)
{
	unsigned r, d;

	if (x->cfg->any_order) {
		/* Without FIFO a channel is a multiset. */
		state_t c = *s;

		for (r = 0; r < NR; r++)
			for (d = 0; d < NR; d++)
				qsort(c.ch[r][d].m, c.ch[r][d].n, sizeof(msg_t), cmp_msg);
		return dsm_hash_bytes((const uint8_t *)&c, sizeof(c), 0xcbf29ce484222325ULL);
	}
	return dsm_hash_bytes((const uint8_t *)s, sizeof(*s), 0xcbf29ce484222325ULL);
}

/* ---- exhaustive search --------------------------------------------------------------- */

typedef struct vset {
	uint64_t *keys; /* 0: free */
	uint8_t *color; /* 1: on the path, 2: done */
	double *paths;  /* done: the schedules from there to an end */
	size_t cap, n;
} vset_t;

static int vset_init(vset_t *v, size_t cap)
{
	v->cap = cap;
	v->n = 0;
	v->keys = calloc(cap, sizeof(*v->keys));
	v->color = calloc(cap, 1);
	v->paths = calloc(cap, sizeof(*v->paths));
	return v->keys && v->color && v->paths ? 0 : -ENOMEM;
}

static void vset_fini(vset_t *v)
{
	free(v->keys);
	free(v->color);
	free(v->paths);
}

static size_t vset_slot(vset_t *v, uint64_t k, int add)
{
	size_t i;

	k |= 1;
	/* Three quarters full at most: the largest runs (34M states) stay in 1.1 GB. */
	if (add && (v->n + 1) * 4 > v->cap * 3) {
		vset_t nv;

		if (vset_init(&nv, v->cap * 2) < 0)
			abort();
		for (i = 0; i < v->cap; i++)
			if (v->keys[i]) {
				size_t j = (v->keys[i] >> 7) & (nv.cap - 1);

				while (nv.keys[j])
					j = (j + 1) & (nv.cap - 1);
				nv.keys[j] = v->keys[i];
				nv.color[j] = v->color[i];
				nv.paths[j] = v->paths[i];
				nv.n++;
			}
		vset_fini(v);
		*v = nv;
	}
	for (i = (k >> 7) & (v->cap - 1); v->keys[i]; i = (i + 1) & (v->cap - 1))
		if (v->keys[i] == k)
			return i;
	if (!add)
		return SIZE_MAX;
	v->keys[i] = k;
	v->n++;
	return i;
}

typedef struct dfs {
	ctx_t x;
	vset_t seen;
	uint64_t max_states, edges, max_depth;
	unsigned fail_depth;
	int nomemo; /* MW_MC_NOMEMO: every schedule walked, to check the count */
	state_t st[MAX_DEPTH + 1];
	choice_t path[MAX_DEPTH];
} dfs_t;

/* Nonzero to stop; *paths_p: the schedules from st[depth] to an end. */
static int dfs_visit(dfs_t *d, unsigned depth, double *paths_p)
{
	const state_t *s = &d->st[depth];
	uint64_t h = state_hash(&d->x, s);
	size_t slot = vset_slot(&d->seen, h, 0);
	choice_t c[MAX_CHOICES];
	double paths = 0;
	unsigned k, i;

	if (slot != SIZE_MAX && d->nomemo && d->seen.color[slot] == 2)
		slot = SIZE_MAX; /* checking the schedule count: walk it again */
	if (slot != SIZE_MAX) {
		if (d->seen.color[slot] == 1) {
			failf(&d->x, MW_MC_CYCLE,
			      "step %u returns to a state already on its schedule: it may never "
			      "end",
			      depth);
			d->fail_depth = depth;
			return 1;
		}
		*paths_p = d->seen.paths[slot];
		return 0;
	}
	if (d->seen.n >= d->max_states) {
		failf(&d->x, MW_MC_BOUND, "more than %llu states",
		      (unsigned long long)d->max_states);
		d->fail_depth = depth;
		return 1;
	}
	slot = vset_slot(&d->seen, h, 1); /* may move the table: not in one expression */
	d->seen.color[slot] = 1;
	if (depth > d->max_depth)
		d->max_depth = depth;
	if (depth == MAX_DEPTH) {
		failf(&d->x, MW_MC_CYCLE, "a schedule longer than %d steps", MAX_DEPTH);
		d->fail_depth = depth;
		return 1;
	}
	k = choices(&d->x, s, c);
	if (k == 0) {
		check_end(&d->x, s);
		if (d->x.fail) {
			d->fail_depth = depth;
			return 1;
		}
		paths = 1;
	}
	for (i = 0; i < k; i++) {
		state_t *n = &d->st[depth + 1];
		double p = 0;

		*n = *s;
		d->path[depth] = c[i];
		d->edges++;
		step(&d->x, n, &c[i]);
		if (!d->x.fail)
			check_state(&d->x, n);
		if (d->x.fail) {
			d->fail_depth = depth + 1;
			return 1;
		}
		if (dfs_visit(d, depth + 1, &p))
			return 1;
		paths += p;
	}
	slot = vset_slot(&d->seen, h, 0);
	d->seen.color[slot] = 2;
	d->seen.paths[slot] = paths;
	*paths_p = paths;
	return 0;
}

static void report(const ctx_t *x, mw_mc_result_t *res)
{
	res->fail = x->fail;
	snprintf(res->what, sizeof(res->what), "%s: %.480s", mw_mc_fail_name(x->fail), x->what);
}

int mw_mc_exhaustive(const mw_mc_config_t *cfg, uint64_t max_states, mw_mc_result_t *res)
{
	dfs_t *d = calloc(1, sizeof(*d));

	memset(res, 0, sizeof(*res));
	if (!d)
		return -ENOMEM;
	d->x.cfg = cfg;
	if (validate(&d->x, res->what, sizeof(res->what)) < 0) {
		free(d);
		return -1;
	}
	if (vset_init(&d->seen, 1 << 16) < 0) {
		vset_fini(&d->seen);
		free(d);
		return -ENOMEM;
	}
	d->max_states = max_states;
	d->nomemo = getenv("MW_MC_NOMEMO") != NULL;
	sim_init(&d->x, &d->st[0]);
	if (dfs_visit(d, 0, &res->orders)) {
		report(&d->x, res);
		trace(cfg, d->path, d->fail_depth, res);
	}
	res->states = d->seen.n;
	res->steps = d->edges;
	res->max_depth = d->max_depth;
	memcpy(res->cov, d->x.cov, sizeof(res->cov));
	vset_fini(&d->seen);
	free(d);
	return 0;
}

/* ---- random schedules ----------------------------------------------------------------- */

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

/* HyperLogLog of the states a random run visits (about 1.6% error). */
#define HLL_BITS 12

static void hll_add(uint8_t *reg, uint64_t h)
{
	unsigned i = (unsigned)(h >> (64 - HLL_BITS));
	uint64_t rest = h << HLL_BITS | (1ULL << (HLL_BITS - 1));
	uint8_t r = (uint8_t)(__builtin_clzll(rest) + 1);

	if (r > reg[i])
		reg[i] = r;
}

static uint64_t hll_count(const uint8_t *reg)
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

/* @n schedules of @cfg, picked at random step by step; stops at the first failure. */
static int walks(const mw_mc_config_t *cfg, uint64_t n, uint64_t *rng, uint8_t *hll,
                 mw_mc_result_t *res)
{
	choice_t *path = malloc(MAX_DEPTH * 4 * sizeof(*path));
	ctx_t x = {.cfg = cfg};
	state_t s;
	uint64_t i;

	if (!path)
		return -ENOMEM;
	if (validate(&x, res->what, sizeof(res->what)) < 0) {
		free(path);
		return -1;
	}
	for (i = 0; i < n && !x.fail; i++) {
		choice_t c[MAX_CHOICES];
		unsigned depth = 0, k;

		sim_init(&x, &s);
		while (!x.fail) {
			k = choices(&x, &s, c);
			if (k == 0) {
				check_end(&x, &s);
				break;
			}
			if (depth == MAX_DEPTH * 4) {
				failf(&x, MW_MC_CYCLE, "a schedule longer than %d steps",
				      MAX_DEPTH * 4);
				break;
			}
			path[depth] = c[rnd_below(rng, k)];
			step(&x, &s, &path[depth++]);
			if (!x.fail)
				check_state(&x, &s);
			hll_add(hll, state_hash(&x, &s));
		}
		res->schedules++;
		res->steps += depth;
		if (depth > res->max_depth)
			res->max_depth = depth;
		if (x.fail) {
			report(&x, res);
			trace(cfg, path, depth, res);
		}
	}
	for (i = 0; i < MW_MC_NCOV; i++)
		res->cov[i] += x.cov[i];
	free(path);
	return 0;
}

int mw_mc_walks(const mw_mc_config_t *cfg, uint64_t schedules, uint64_t seed, mw_mc_result_t *res)
{
	uint8_t *hll = calloc(1u << HLL_BITS, 1);
	uint64_t rng = seed * 0x9e3779b97f4a7c15ULL + 1;
	int rc;

	memset(res, 0, sizeof(*res));
	if (!hll)
		return -ENOMEM;
	rc = walks(cfg, schedules, &rng, hll, res);
	res->states = hll_count(hll);
	free(hll);
	return rc;
}

/* Appends @op to thread @t of rank @r unless that would leave no room for @reserve more. */
static int put(mw_mc_config_t *c, unsigned r, unsigned t, mw_mc_op_t op, unsigned reserve)
{
	if (c->nops[r][t] + 1 + reserve > MW_MC_MAX_OPS)
		return 0;
	c->ops[r][t][c->nops[r][t]++] = op;
	return 1;
}

/* A random access by rank @r's thread @t to byte @i, or nothing when @i is not its to touch:
 * race-free programs write only what the phase gives the rank. */
static void random_access(uint64_t *rng, mw_mc_config_t *c, unsigned r, unsigned t, unsigned i,
                          int may_write, uint8_t *value, unsigned reserve)
{
	mw_mc_op_t op = {
	        .kind = MW_MC_READ, .line = (uint8_t)(i / NBY), .byte = (uint8_t)(i % NBY)};

	if (may_write && rnd_below(rng, 2)) {
		op.kind = MW_MC_WRITE;
		op.value = *value;
	}
	if (put(c, r, t, op, reserve) && op.kind == MW_MC_WRITE)
		(*value)++;
}

void mw_mc_random_config(uint64_t *rng, const mw_mc_random_opts_t *o, mw_mc_config_t *c)
{
	enum { FREE = 0xfe, LOCKED = 0xff }; /* a byte's owner in a phase, or a rank */
	unsigned max_ranks = o->max_ranks < 2 || o->max_ranks > NR ? NR : o->max_ranks;
	unsigned r, t, l, p, i, j, phases, nb;
	uint8_t owner[NBYTES], value = 1, locked[NBYTES] = {0};
	int any_locked = 0;

	memset(c, 0, sizeof(*c));
	c->nranks = 2 + rnd_below(rng, max_ranks - 1);
	c->nthreads = o->max_threads >= 2 && rnd_below(rng, 4) == 0 ? 2 : 1;
	c->nlines = 1 + rnd_below(rng, NL);
	c->nbytes = 1 + rnd_below(rng, 2);
	c->nmutexes = 1;
	c->mutex_home[0] = (uint8_t)rnd_below(rng, c->nranks);
	c->drf = rnd_below(rng, 4) != 0;
	c->no_defer = rnd_below(rng, 4) == 0;
	c->no_readahead = rnd_below(rng, 8) == 0;
	c->async = rnd_below(rng, 2);
	c->bugs = o->bugs;
	for (l = 0; l < c->nlines; l++)
		c->home[l] = (uint8_t)rnd_below(rng, c->nranks);
	nb = c->nlines * NBY;
	for (i = 0; i < nb; i++)
		if (i % NBY < c->nbytes && (rnd_below(rng, 4) == 0 || c->nthreads == 2)) {
			locked[i] = 1;
			any_locked = 1;
		}
	phases = 1 + rnd_below(rng, 3);
	for (p = 0; p < phases; p++) {
		unsigned reserve = phases - p; /* the barriers still to come */

		for (i = 0; i < nb; i++)
			owner[i] = locked[i]                ? LOCKED
			           : rnd_below(rng, 3) == 0 ? FREE
			                                    : (uint8_t)rnd_below(rng, c->nranks);
		for (r = 0; r < c->nranks; r++) {
			unsigned n = rnd_below(rng, 4);

			for (j = 0; j < n; j++) {
				i = rnd_below(rng, c->nlines) * NBY + rnd_below(rng, c->nbytes);
				if (!c->drf)
					random_access(rng, c, r, 0, i, 1, &value, reserve);
				else if (owner[i] == r || owner[i] == FREE)
					random_access(rng, c, r, 0, i, owner[i] == r, &value,
					              reserve);
			}
			if (!c->drf && rnd_below(rng, 4) == 0)
				put(c, r, 0,
				    (mw_mc_op_t){.kind = rnd_below(rng, 2) ? MW_MC_RELEASE
				                                           : MW_MC_ACQUIRE},
				    reserve);
			if (any_locked && rnd_below(rng, 3) == 0 &&
			    c->nops[r][0] + 4 + reserve <= MW_MC_MAX_OPS) {
				put(c, r, 0, (mw_mc_op_t){.kind = MW_MC_LOCK}, reserve);
				for (j = 0; j < 1 + rnd_below(rng, 2); j++) {
					do
						i = rnd_below(rng, nb);
					while (!locked[i]);
					random_access(rng, c, r, 0, i, 1, &value, reserve + 1);
				}
				put(c, r, 0, (mw_mc_op_t){.kind = MW_MC_UNLOCK}, reserve);
			}
			put(c, r, 0, (mw_mc_op_t){.kind = MW_MC_BARRIER}, reserve - 1);
		}
	}
	/* Second threads take the mutex only: they call no barrier. */
	for (r = 0; c->nthreads == 2 && r < c->nranks; r++)
		for (t = 1, p = 1 + rnd_below(rng, 2); p > 0 && c->nops[r][t] + 4 <= MW_MC_MAX_OPS;
		     p--) {
			put(c, r, t, (mw_mc_op_t){.kind = MW_MC_LOCK}, 2);
			for (j = 0; j < 1 + rnd_below(rng, 2); j++) {
				do
					i = rnd_below(rng, nb);
				while (!locked[i]);
				random_access(rng, c, r, t, i, 1, &value, 1);
			}
			put(c, r, t, (mw_mc_op_t){.kind = MW_MC_UNLOCK}, 0);
		}
}

int mw_mc_random(const mw_mc_random_opts_t *o, mw_mc_result_t *res)
{
	uint8_t *hll = calloc(1u << HLL_BITS, 1);
	uint64_t rng = o->seed * 0x9e3779b97f4a7c15ULL + 1;
	unsigned per = o->per_config ? o->per_config : 100;
	mw_mc_config_t cfg;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	if (!hll)
		return -ENOMEM;
	while (res->schedules < o->schedules && !res->fail) {
		uint64_t n = o->schedules - res->schedules;

		mw_mc_random_config(&rng, o, &cfg);
		rc = walks(&cfg, n < per ? n : per, &rng, hll, res);
		if (rc < 0) {
			/* A configuration the generator should not make: its mistake. */
			char b[1024];

			mw_mc_config_str(&cfg, b, sizeof(b));
			fprintf(stderr, "random configuration refused (%s):\n%s", res->what, b);
			break;
		}
	}
	res->states = hll_count(hll);
	free(hll);
	return rc;
}

/* ---- the programs -------------------------------------------------------------------- */

static const mw_mc_spec_t specs[] = {
        /* Two writers of one line, each its own byte; the home writes its byte twice, so
         * that the other's diff may end its master copy between the two stores. */
        {.name = "false-sharing",
         .nranks = 2,
         .nlines = 1,
         .nbytes = 2,
         .homes = "1",
         .drf = 1,
         .prog = {{"w0.0 B r0.1 B"}, {"w0.1 w0.1 B r0.0 B"}}},
        /* Only writes: the final check alone sees what went wrong. */
        {.name = "final-only",
         .nranks = 2,
         .nlines = 1,
         .nbytes = 2,
         .homes = "1",
         .drf = 1,
         .prog = {{"w0.0 B"}, {"w0.1 w0.1 B"}}},
        /* Each rank reads the other's lines (rank 0 reads ahead), then writes its own, then
         * reads the other's again: copies from the first phase must be gone, master
         * copies answer the GETs. */
        {.name = "phases",
         .nranks = 2,
         .nlines = 3,
         .nbytes = 1,
         .homes = "110",
         .drf = 1,
         .prog = {{"r0.0 B w2.0 B r0.0 r1.0 B"}, {"r2.0 B w0.0 w1.0 B r2.0 B"}}},
        /* Three ranks: the diff to rank 2 and the barrier's messages take different
         * pairs, so only the ACK makes rank 1's read after the barrier see the write. */
        {.name = "barrier-3",
         .nranks = 3,
         .nlines = 1,
         .nbytes = 1,
         .homes = "2",
         .drf = 1,
         .prog = {{"w0.0 B B"}, {"B r0.0 B"}, {"B B"}}},
        /* A counter under a mutex (a read, then a write of the next value). */
        {.name = "lock-2",
         .nranks = 2,
         .nlines = 1,
         .nbytes = 1,
         .homes = "1",
         .mutex_homes = "0",
         .drf = 1,
         .prog = {{"L0 r0.0 w0.0 U0 B r0.0 B"}, {"L0 r0.0 w0.0 U0 B r0.0 B"}}},
        /* The mutex homed at a third rank: the unlock and the diff take different pairs. */
        {.name = "lock-3",
         .nranks = 3,
         .nlines = 1,
         .nbytes = 1,
         .homes = "1",
         .mutex_homes = "2",
         .drf = 1,
         .prog = {{"L0 r0.0 w0.0 U0 B"}, {"L0 r0.0 w0.0 U0 B"}, {"B"}}},
        /* Rank 0's first thread misses on line 0 and reads line 1 ahead; its second thread
         * goes through a barrier meanwhile and reads line 1, which rank 1 wrote before
         * it: without deferral the read-ahead's answer can come after the acquire. Rank 2
         * is the home: were the writer the home, its barrier message would follow its
         * answer in the same channel (epoch-2). */
        {.name = "epoch",
         .nranks = 3,
         .nthreads = 2,
         .nlines = 2,
         .nbytes = 1,
         .homes = "22",
         .drf = 1,
         .prog = {{"r0.0", "B r1.0 B"}, {"w1.0 B B"}, {"B B"}}},
        {.name = "epoch-2",
         .nranks = 2,
         .nthreads = 2,
         .nlines = 2,
         .nbytes = 1,
         .homes = "11",
         .drf = 1,
         .prog = {{"r0.0", "B r1.0 B"}, {"w1.0 B B"}}},
        /* A write, then a lock (an acquire: its release does not wait for the ACK) and a
         * read of it: only FIFO keeps the GET behind the diff. */
        {.name = "fifo",
         .nranks = 2,
         .nlines = 1,
         .nbytes = 1,
         .homes = "1",
         .mutex_homes = "0",
         .drf = 1,
         .prog = {{"w0.0 L0 r0.0 U0 B"}, {"B"}}},
        /* Rank 0's second thread acquires while its first stores: asynchronously tracked,
         * a store that lands after the acquire's scan must go with the take-out. */
        {.name = "acq-race",
         .nranks = 2,
         .nthreads = 2,
         .nlines = 1,
         .nbytes = 1,
         .homes = "1",
         .drf = 1,
         .prog = {{"w0.0 w0.0 B r0.0 B", "A A"}, {"B r0.0 B"}}},
        /* Racy: both ranks write and read both bytes with no synchronization between. */
        {.name = "racy",
         .nranks = 2,
         .nlines = 1,
         .nbytes = 2,
         .homes = "0",
         .drf = 0,
         .prog = {{"w0.0 r0.1 B r0.0 r0.1 B"}, {"w0.1 r0.0 w0.0 B r0.1 B"}}},
        /* A racy program said to be race-free: the checker's own test of its race check. */
        {.name = "not-drf",
         .nranks = 2,
         .nlines = 1,
         .nbytes = 1,
         .homes = "0",
         .drf = 1,
         .prog = {{"w0.0 B"}, {"r0.0 B"}}},
        /* Long tier: three writers of one line, each its own byte. */
        {.name = "false-sharing-3",
         .nranks = 3,
         .nlines = 1,
         .nbytes = 3,
         .homes = "0",
         .drf = 1,
         .prog = {{"w0.0 B r0.1 r0.2 B"}, {"w0.1 B r0.2 B"}, {"w0.2 w0.2 B r0.0 B"}}},
        /* Long tier: barriers and a mutex on two lines, three ranks. */
        {.name = "mixed-3",
         .nranks = 3,
         .nlines = 2,
         .nbytes = 2,
         .homes = "01",
         .mutex_homes = "2",
         .drf = 1,
         .prog = {{"w0.0 w1.0 B L0 r1.1 w1.1 U0 B r0.1 B"},
                  {"r1.1 B L0 r1.1 w1.1 U0 B r1.0 B"},
                  {"w0.1 B B r1.1 B"}}},
        /* Three phases on two lines: two writers of line 0 at once, then a counter under a
         * mutex, reads of everything in between. */
        {.name = "rounds-3",
         .nranks = 3,
         .nlines = 2,
         .nbytes = 2,
         .homes = "01",
         .mutex_homes = "2",
         .drf = 1,
         .prog = {{"w0.0 w1.0 B r0.1 L0 r0.0 w0.0 U0 B r0.0 B"},
                  {"w0.1 B r1.1 L0 r0.0 w0.0 U0 B r0.0 B"},
                  {"w1.1 B r1.0 r0.1 B r0.0 r1.1 B"}}},
        /* Long tier: three ranks, two of them with a second thread taking a mutex while
         * the first goes through the barriers. */
        {.name = "threads-3",
         .nranks = 3,
         .nthreads = 2,
         .nlines = 2,
         .nbytes = 2,
         .homes = "22",
         .mutex_homes = "0",
         .drf = 1,
         .prog = {{"w0.0 B r0.1 r1.0 B", "L0 r1.1 w1.1 U0"},
                  {"w0.1 B r0.0 B", "L0 r1.1 w1.1 U0"},
                  {"r1.0 w1.0 B r0.0 r0.1 B"}}},
        /* Long tier: the false sharing of two lines with a read-ahead and 2 threads. */
        {.name = "two-threads",
         .nranks = 2,
         .nthreads = 2,
         .nlines = 2,
         .nbytes = 2,
         .homes = "11",
         .mutex_homes = "1",
         .drf = 1,
         .prog = {{"w0.0 B r0.1 r1.1 B", "L0 w1.0 U0"}, {"w0.1 w1.1 B r0.0 B", "L0 r1.0 U0"}}},
};

const mw_mc_spec_t *mw_mc_spec(const char *name)
{
	unsigned i;

	for (i = 0; i < sizeof(specs) / sizeof(specs[0]); i++)
		if (strcmp(specs[i].name, name) == 0)
			return &specs[i];
	return NULL;
}
