/* SPDX-License-Identifier: MIT */
/*
 * The in-process loopback transport: n ranks in one process, one thread.
 * Messages are copied onto a bounded per-destination wire (so a burst meets
 * a full wire and the outgoing queue, as on a real provider), RMA is a
 * memcpy checked against the target's registrations, the wait fd is an
 * eventfd rung only when the target announced it sleeps.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/error.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/time.h"
#include "transport/internal.h"
#include "transport/loopback.h"

struct loop_msg {
	struct loop_msg *next;
	size_t n;
	int dst;
	unsigned char data[];
};

struct loop_mr {
	dsm_tp_mr_t pub;
	struct loop_mr *next;
};

struct loop_tp;

struct dsm_tp_loop_fabric {
	int n;
	int depth;
	bool prov_key;
	uint64_t key; /* the job key of this fabric's ranks */
	struct loop_tp **tps;
	bool *dead;
};

struct loop_tp {
	dsm_tp_t tp;
	struct dsm_tp_core core;
	struct dsm_tp_loop_fabric *fab;
	struct loop_msg *wire, **wire_tail; /* arriving here */
	int wire_len;
	struct loop_msg *outq, **outq_tail; /* waiting to go */
	struct loop_mr *mrs;
	uint64_t next_key; /* prov_key: the keys we choose */
	bool *seen_dead;
	atomic_int asleep;
	int efd;
	char prov[16];
};

int dsm_tp_loop_fabric_create(int n, dsm_tp_loop_fabric_t **fab_p)
{
	struct dsm_tp_loop_fabric *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -ENOMEM;
	f->n = n;
	f->depth = 1 << 20;
	f->key = dsm_hash64((uint64_t)(uintptr_t)f ^ dsm_now_ns());
	f->tps = calloc((size_t)n, sizeof(*f->tps));
	f->dead = calloc((size_t)n, sizeof(*f->dead));
	if (!f->tps || !f->dead) {
		dsm_tp_loop_fabric_destroy(f);
		return -ENOMEM;
	}
	*fab_p = f;
	return 0;
}

void dsm_tp_loop_fabric_destroy(dsm_tp_loop_fabric_t *f)
{
	if (f == NULL)
		return;
	free(f->tps);
	free(f->dead);
	free(f);
}

void dsm_tp_loop_set_depth(dsm_tp_loop_fabric_t *f, int depth)
{
	f->depth = depth;
}

void dsm_tp_loop_set_prov_key(dsm_tp_loop_fabric_t *f, bool on)
{
	f->prov_key = on;
}

static void ring(struct loop_tp *t)
{
	uint64_t one = 1;

	if (atomic_exchange(&t->asleep, 0) && write(t->efd, &one, sizeof(one)) < 0)
		DSM_LOG_ERRNO(DSM_LOG_WARN, "loopback eventfd write");
}

void dsm_tp_loop_kill(dsm_tp_loop_fabric_t *f, int rank)
{
	f->dead[rank] = true;
	for (int i = 0; i < f->n; i++)
		if (f->tps[i] && i != rank)
			ring(f->tps[i]);
}

static struct loop_tp *lt(dsm_tp_t *tp)
{
	return (struct loop_tp *)tp;
}

static void loop_release(dsm_tp_t *tp, void *tok)
{
	(void)tp;
	free(tok);
}

static int loop_send_raw(dsm_tp_t *tp, int peer, const void *buf, size_t len);

/* A broken stream: the peer is dead to every rank of the fabric, as ofi's notice makes it. */
static void loop_broken(dsm_tp_t *tp, int peer, const char *why)
{
	(void)why;
	dsm_tp_loop_kill(lt(tp)->fab, peer);
}

static int loop_open(const struct dsm_tp_attr *attr, dsm_tp_t **tp_p)
{
	struct dsm_tp_loop_fabric *f = attr->impl_arg;
	const struct dsm_tp_boot *b = attr->boot;
	struct loop_tp *t;
	int ret;

	if (f == NULL || b->size != f->n || b->rank < 0 || b->rank >= f->n || f->tps[b->rank])
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return -ENOMEM;
	t->tp.ops = &dsm_tp_loop_ops;
	t->tp.send_raw = loop_send_raw;
	t->tp.rank = b->rank;
	t->tp.size = b->size;
	t->tp.virt_addr = 1;
	t->tp.prov_key = f->prov_key;
	t->next_key = 0x1000 + (uint64_t)b->rank * 0x100000; /* no peer can guess them */
	t->tp.msg_max = attr->msg_max ? attr->msg_max : DSM_TP_MSG_MAX_DEFAULT;
	t->tp.boot = b;
	strcpy(t->prov, "loopback");
	t->tp.prov = t->prov;
	t->fab = f;
	t->wire_tail = &t->wire;
	t->outq_tail = &t->outq;
	t->seen_dead = calloc((size_t)f->n, sizeof(bool));
	t->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ret = dsm_tp_core_init(&t->core, &t->tp, attr->max_msg_type, loop_release);
	if (ret || t->efd < 0 || t->seen_dead == NULL) {
		if (t->efd >= 0)
			close(t->efd);
		free(t->seen_dead);
		free(t);
		return ret ? ret : -ENOMEM;
	}
	dsm_tp_core_set_key(&t->core, f->key);
	t->core.broken = loop_broken;
	f->tps[b->rank] = t;
	*tp_p = &t->tp;
	return 0;
}

static void free_list(struct loop_msg *m)
{
	while (m) {
		struct loop_msg *n = m->next;
		free(m);
		m = n;
	}
}

static int loop_close(dsm_tp_t *tp)
{
	struct loop_tp *t = lt(tp);

	t->fab->tps[tp->rank] = NULL;
	dsm_tp_core_fini(&t->core);
	free_list(t->wire);
	free_list(t->outq);
	while (t->mrs) {
		struct loop_mr *m = t->mrs;
		t->mrs = m->next;
		free(m);
	}
	close(t->efd);
	free(t->seen_dead);
	free(t);
	return 0;
}

/* Puts @m on its destination's wire if there is room. */
static bool wire_put(struct loop_tp *t, struct loop_msg *m)
{
	struct loop_tp *d = t->fab->tps[m->dst];

	if (d == NULL || t->fab->dead[m->dst]) {
		free(m); /* the destination is gone: like a NIC, drop it */
		return true;
	}
	if (d->wire_len >= t->fab->depth)
		return false;
	m->next = NULL;
	*d->wire_tail = m;
	d->wire_tail = &m->next;
	d->wire_len++;
	ring(d);
	return true;
}

static int post(struct loop_tp *t, int peer, const struct dsm_tp_wire_hdr *h, const void *buf,
                size_t len)
{
	size_t hl = h ? sizeof(*h) : 0;
	struct loop_msg *m = malloc(sizeof(*m) + hl + len);

	if (m == NULL)
		return -ENOMEM;
	if (h)
		memcpy(m->data, h, hl);
	if (len)
		memcpy(m->data + hl, buf, len);
	m->n = hl + len;
	m->dst = peer;
	m->next = NULL;
	if (t->outq == NULL && wire_put(t, m))
		return 0;
	t->core.st.msgs_queued++;
	*t->outq_tail = m;
	t->outq_tail = &m->next;
	return 0;
}

static int loop_send(dsm_tp_t *tp, int peer, unsigned type, const void *buf, size_t len)
{
	struct loop_tp *t = lt(tp);
	struct dsm_tp_wire_hdr h;
	int ret = dsm_tp_core_check_send(&t->core, peer, type, len);

	if (ret)
		return ret;
	if (t->fab->dead[peer])
		return DSM_ERR_PEER_DEAD;
	dsm_tp_core_hdr(&t->core, &h, peer, type, len);
	ret = post(t, peer, &h, buf, len);
	if (ret == 0)
		t->core.st.msgs_sent++;
	return ret;
}

static int loop_send_raw(dsm_tp_t *tp, int peer, const void *buf, size_t len)
{
	if (peer < 0 || peer >= tp->size)
		return -EINVAL;
	return post(lt(tp), peer, NULL, buf, len);
}

static int loop_mr_reg(dsm_tp_t *tp, void *addr, size_t len, uint64_t key, dsm_tp_mr_t **mr_p)
{
	struct loop_tp *t = lt(tp);
	struct loop_mr *m;

	if (tp->prov_key)
		key = t->next_key++;
	for (m = t->mrs; m; m = m->next)
		if (m->pub.key == key)
			return -EEXIST;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	m->pub.addr = addr;
	m->pub.len = len;
	m->pub.key = key;
	m->pub.impl = m;
	m->next = t->mrs;
	t->mrs = m;
	t->core.st.bytes_registered += len;
	*mr_p = &m->pub;
	return 0;
}

static int loop_mr_dereg(dsm_tp_t *tp, dsm_tp_mr_t *mr)
{
	struct loop_tp *t = lt(tp);

	for (struct loop_mr **pp = &t->mrs; *pp; pp = &(*pp)->next) {
		if (&(*pp)->pub == mr) {
			struct loop_mr *m = *pp;
			*pp = m->next;
			t->core.st.bytes_registered -= m->pub.len;
			free(m);
			return 0;
		}
	}
	return -EINVAL;
}

static int rma(struct loop_tp *t, int peer, void *local, size_t len, uint64_t raddr, uint64_t rkey,
               void *ctx, bool is_read)
{
	struct dsm_tp_event ev = {.type = DSM_TP_EV_RMA, .peer = peer, .len = len, .ctx = ctx};
	struct loop_tp *d;

	if (peer < 0 || peer >= t->tp.size)
		return -EINVAL;
	if (t->fab->dead[peer])
		return DSM_ERR_PEER_DEAD;
	d = t->fab->tps[peer];
	ev.status = -EACCES;
	for (struct loop_mr *m = d ? d->mrs : NULL; m; m = m->next) {
		uintptr_t a = (uintptr_t)m->pub.addr;
		if (m->pub.key == rkey && raddr >= a && raddr + len <= a + m->pub.len) {
			if (is_read)
				memcpy(local, (void *)(uintptr_t)raddr, len);
			else
				memcpy((void *)(uintptr_t)raddr, local, len);
			ev.status = 0;
			break;
		}
	}
	if (is_read)
		t->core.st.rma_reads++;
	else
		t->core.st.rma_writes++;
	t->core.st.rma_bytes += len;
	dsm_tp_core_push(&t->core, &ev, NULL, NULL);
	return 0;
}

static int loop_read(dsm_tp_t *tp, int peer, void *local, size_t len, dsm_tp_mr_t *lmr,
                     uint64_t raddr, uint64_t rkey, void *ctx)
{
	(void)lmr;
	return rma(lt(tp), peer, local, len, raddr, rkey, ctx, true);
}

static int loop_write(dsm_tp_t *tp, int peer, const void *local, size_t len, dsm_tp_mr_t *lmr,
                      uint64_t raddr, uint64_t rkey, void *ctx)
{
	(void)lmr;
	return rma(lt(tp), peer, (void *)local, len, raddr, rkey, ctx, false);
}

static int loop_poll(dsm_tp_t *tp, struct dsm_tp_event *ev, int max)
{
	struct loop_tp *t = lt(tp);

	dsm_tp_core_release(&t->core);
	while (t->outq) {
		struct loop_msg *m = t->outq, *next = m->next;
		if (!wire_put(t, m))
			break;
		t->outq = next;
		if (next == NULL)
			t->outq_tail = &t->outq;
	}
	/* Deliver at most a wire's worth per call so that senders see it drain. */
	for (int i = 0; i < 64 && t->wire; i++) {
		struct loop_msg *m = t->wire;

		t->wire = m->next;
		if (t->wire == NULL)
			t->wire_tail = &t->wire;
		t->wire_len--;
		if (!dsm_tp_core_recv(&t->core, m->data, m->n, m))
			free(m);
	}
	for (int i = 0; i < tp->size; i++) {
		if (t->fab->dead[i] && !t->seen_dead[i]) {
			struct dsm_tp_event e = {.type = DSM_TP_EV_PEER_DEAD,
			                         .peer = i,
			                         .status = DSM_ERR_PEER_DEAD};
			t->seen_dead[i] = true;
			t->core.st.peers_dead++;
			dsm_tp_core_push(&t->core, &e, NULL, NULL);
			dsm_tp_core_peer_dead(&t->core, i);
		}
	}
	return dsm_tp_core_pop(&t->core, ev, max);
}

static int loop_wait_fd(dsm_tp_t *tp)
{
	return lt(tp)->efd;
}

/* Announce, fence, look once more: a sender that came before the announcement left work
 * that this finds, one after it rings. Returns false (and takes the announcement back)
 * when there is work, a peer's death not yet reported included. */
static bool announce_idle(struct loop_tp *t)
{
	atomic_store(&t->asleep, 1);
	atomic_thread_fence(memory_order_seq_cst);
	bool work = t->wire || t->outq || dsm_tp_core_pending(&t->core);

	for (int i = 0; !work && i < t->tp.size; i++)
		work = t->fab->dead[i] && !t->seen_dead[i];
	if (work)
		atomic_store(&t->asleep, 0);
	return !work;
}

static int loop_sleep_prepare(dsm_tp_t *tp)
{
	struct loop_tp *t = lt(tp);

	if (!announce_idle(t))
		return -EAGAIN;
	t->core.st.sleeps++;
	return 0;
}

static void loop_sleep_pause(dsm_tp_t *tp)
{
	atomic_store(&lt(tp)->asleep, 0);
}

static int loop_sleep_resume(dsm_tp_t *tp)
{
	return announce_idle(lt(tp)) ? 0 : -EAGAIN;
}

static void loop_sleep_end(dsm_tp_t *tp)
{
	struct loop_tp *t = lt(tp);
	uint64_t v;

	atomic_store(&t->asleep, 0);
	if (read(t->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		DSM_LOG_ERRNO(DSM_LOG_WARN, "loopback eventfd read");
}

static int loop_stats(dsm_tp_t *tp, struct dsm_tp_stats *out)
{
	*out = lt(tp)->core.st;
	out->pending += tp->key_waits;
	for (struct loop_msg *m = lt(tp)->outq; m; m = m->next)
		out->pending++;
	return 0;
}

static void loop_describe(dsm_tp_t *tp, int peer, FILE *f)
{
	struct loop_tp *t = lt(tp);
	size_t out = 0;

	for (struct loop_msg *m = t->outq; m; m = m->next)
		out++;
	fprintf(f, "rank %d (loopback): %zu messages waiting to go, %s\n", tp->rank, out,
	        atomic_load(&t->asleep) ? "asleep" : "awake");
	if (t->outq)
		fprintf(f, "  first waits for rank %d\n", t->outq->dst);
	dsm_tp_core_describe(&t->core, peer, f);
}

static void loop_abandon(dsm_tp_t *tp)
{
	(void)tp; /* nothing of ours outlives the process */
}

const struct dsm_tp_ops dsm_tp_loop_ops = {
        .size = sizeof(struct dsm_tp_ops),
        .name = "loopback",
        .open = loop_open,
        .close = loop_close,
        .send = loop_send,
        .mr_reg = loop_mr_reg,
        .mr_dereg = loop_mr_dereg,
        .read = loop_read,
        .write = loop_write,
        .poll = loop_poll,
        .wait_fd = loop_wait_fd,
        .sleep_prepare = loop_sleep_prepare,
        .sleep_end = loop_sleep_end,
        .sleep_pause = loop_sleep_pause,
        .sleep_resume = loop_sleep_resume,
        .stats = loop_stats,
        .describe = loop_describe,
        .abandon = loop_abandon,
};
