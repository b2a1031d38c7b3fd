/* SPDX-License-Identifier: MIT */
/*
 * Segments: registered in chunks as they are populated, so a TiB reservation
 * costs nothing until touched (and verbs without on-demand paging pins only
 * what is used). A chunk's key is (segment id << DSM_TP_KEY_SEG_SHIFT | chunk
 * index), so a peer computes it from the offset alone.
 *
 * Where the provider chooses keys (FI_MR_PROV_KEY: verbs, efa), a reader
 * learns the key of each (peer, chunk) once, by a control message: the first
 * access sends KEY_REQ and queues; the home registers the chunk if it has
 * not yet and answers KEY_REP; the answer posts what waited, in order. All of
 * it runs inside the transport's poll: the layer above only sees the RMA
 * complete later (or fail, if the home cannot register or dies).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "transport/internal.h"

/* An RMA waiting for the key of its chunk. */
struct seg_wait {
	struct seg_wait *next;
	bool write;
	size_t off, len;
	void *local;
	dsm_tp_mr_t *lmr;
	void *ctx;
};

enum { KEY_NONE, KEY_ASKED, KEY_KNOWN };

/* What a reader knows of one (peer, chunk); open addressing on @id. */
struct seg_key {
	uint64_t id; /* (peer << DSM_TP_KEY_SEG_SHIFT | chunk) + 1; 0: empty slot */
	uint64_t key;
	int state;
	struct seg_wait *wait, **wait_tail;
};

struct dsm_tp_seg {
	struct dsm_tp_seg *next; /* in tp->segs */
	dsm_tp_t *tp;
	uint64_t id;
	unsigned char *base;
	size_t len;
	size_t chunk;
	size_t nchunks;
	dsm_tp_mr_t **mrs;
	size_t registered;
	uint64_t *bases; /* [size]: every rank's base */
	struct seg_key *keys;
	size_t keycap, nkeys;
};

static uint64_t chunk_key(const struct dsm_tp_seg *s, size_t idx)
{
	return s->id << DSM_TP_KEY_SEG_SHIFT | (uint64_t)idx;
}

static void rma_event(dsm_tp_t *tp, int peer, const struct seg_wait *w, int status)
{
	struct dsm_tp_event ev = {.type = DSM_TP_EV_RMA,
	                          .peer = peer,
	                          .status = status,
	                          .len = w->len,
	                          .ctx = w->ctx};

	dsm_tp_core_push(tp->core, &ev, NULL, NULL);
}

static void fail_waits(struct dsm_tp_seg *s, struct seg_key *k, int status)
{
	int peer = (int)((k->id - 1) >> DSM_TP_KEY_SEG_SHIFT);

	while (k->wait) {
		struct seg_wait *w = k->wait;
		k->wait = w->next;
		rma_event(s->tp, peer, w, status);
		s->tp->key_waits--;
		free(w);
	}
	k->wait_tail = &k->wait;
}

static struct seg_key *key_find(struct dsm_tp_seg *s, uint64_t id, bool add)
{
	if (add && (s->nkeys + 1) * 2 > s->keycap) {
		size_t ncap = s->keycap ? s->keycap * 2 : 64;
		struct seg_key *nk = calloc(ncap, sizeof(*nk));

		if (nk == NULL)
			return NULL;
		for (size_t i = 0; i < s->keycap; i++) {
			struct seg_key *o = &s->keys[i];
			size_t j = (o->id * 0x9e3779b97f4a7c15ull) & (ncap - 1);
			if (o->id == 0)
				continue;
			while (nk[j].id)
				j = (j + 1) & (ncap - 1);
			nk[j] = *o;
			nk[j].wait_tail = nk[j].wait ? nk[j].wait_tail : &nk[j].wait;
		}
		free(s->keys);
		s->keys = nk;
		s->keycap = ncap;
	}
	if (s->keycap == 0)
		return NULL;
	for (size_t j = (id * 0x9e3779b97f4a7c15ull) & (s->keycap - 1);;
	     j = (j + 1) & (s->keycap - 1)) {
		struct seg_key *k = &s->keys[j];
		if (k->id == id)
			return k;
		if (k->id == 0) {
			if (!add)
				return NULL;
			k->id = id;
			k->state = KEY_NONE;
			k->wait = NULL;
			k->wait_tail = &k->wait;
			s->nkeys++;
			return k;
		}
	}
}

static struct dsm_tp_seg *seg_by_id(dsm_tp_t *tp, uint64_t id)
{
	for (struct dsm_tp_seg *s = tp->segs; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

static int post(struct dsm_tp_seg *s, int peer, const struct seg_wait *w, uint64_t rkey);

/* The home: registers the chunk if it must, and answers with its key. */
static void key_request(dsm_tp_t *tp, int peer, const struct dsm_tp_ctrl *m)
{
	struct dsm_tp_seg *s = seg_by_id(tp, m->seg);
	struct dsm_tp_ctrl r = {.op = DSM_TP_CTRL_KEY_REP, .seg = m->seg, .chunk = m->chunk};

	if (s == NULL || m->chunk >= s->nchunks)
		r.status = -EINVAL;
	else
		r.status = dsm_tp_seg_populate(s, m->chunk * s->chunk, 1);
	if (r.status == 0)
		r.key = s->mrs[m->chunk]->key;
	if (dsm_tp_ctrl_send(tp, peer, &r) != 0)
		DSM_LOG(DSM_LOG_WARN, "cannot answer rank %d's key request", peer);
}

/* The reader: the key came; what waited for it goes now. */
static void key_reply(dsm_tp_t *tp, int peer, const struct dsm_tp_ctrl *m)
{
	struct dsm_tp_seg *s = seg_by_id(tp, m->seg);
	struct seg_key *k =
	        s ? key_find(s, ((uint64_t)peer << DSM_TP_KEY_SEG_SHIFT | m->chunk) + 1, false)
	          : NULL;

	if (k == NULL || k->state != KEY_ASKED) {
		tp->core->st.msgs_dropped++;
		return;
	}
	if (m->status) {
		DSM_LOG(DSM_LOG_WARN, "rank %d cannot open chunk %llu: %d", peer,
		        (unsigned long long)m->chunk, m->status);
		k->state = KEY_NONE; /* a later access asks again */
		fail_waits(s, k, m->status);
		return;
	}
	k->state = KEY_KNOWN;
	k->key = m->key;
	while (k->wait) {
		struct seg_wait *w = k->wait;
		int ret;

		k->wait = w->next;
		tp->key_waits--;
		ret = post(s, peer, w, k->key);
		if (ret)
			rma_event(tp, peer, w, ret);
		free(w);
	}
	k->wait_tail = &k->wait;
}

/* @peer died: RMA waiting for its keys fails. */
static void seg_peer_dead(dsm_tp_t *tp, int peer)
{
	for (struct dsm_tp_seg *s = tp->segs; s; s = s->next)
		for (size_t i = 0; i < s->keycap; i++)
			if (s->keys[i].id &&
			    (int)((s->keys[i].id - 1) >> DSM_TP_KEY_SEG_SHIFT) == peer) {
				s->keys[i].state = KEY_NONE;
				fail_waits(s, &s->keys[i], DSM_ERR_PEER_DEAD);
			}
}

/* A base no segment has: what a rank sends when it could not set its segment up. */
#define SEG_FAILED UINT64_MAX

int dsm_tp_seg_create(dsm_tp_t *tp, void *base, size_t len, size_t chunk, dsm_tp_seg_t **seg_p)
{
	struct dsm_tp_seg *s = calloc(1, sizeof(*s));
	uint64_t mine = (uint64_t)(uintptr_t)base;
	int ret = 0;

	if (s)
		s->bases = calloc((size_t)tp->size, sizeof(*s->bases));
	if (s == NULL || s->bases == NULL) {
		free(s);
		return -ENOMEM; /* the one failure that cannot take part in the exchange */
	}
	s->tp = tp;
	s->id = ++tp->seg_ids; /* same on every rank: creation is collective */
	/* Before the exchange: no peer asks for a key before every rank is past it. */
	dsm_tp_ctrl_on(tp, DSM_TP_CTRL_KEY_REQ, key_request);
	dsm_tp_ctrl_on(tp, DSM_TP_CTRL_KEY_REP, key_reply);
	if (dsm_tp_on_peer_dead(tp, seg_peer_dead) < 0)
		ret = -ENOSPC;
	s->base = base;
	s->len = len;
	s->chunk = chunk;
	/* From here every rank takes part in the exchange even when its own steps failed (it
	 * sends SEG_FAILED), so that no rank waits in it for one that gave up. */
	if (chunk == 0 || (chunk & (chunk - 1)) || len == 0 || ((uintptr_t)base & 4095)) {
		DSM_LOG(DSM_LOG_ERROR,
		        "a segment needs a page-aligned base, a length and a power-of-two chunk "
		        "(%p, %zu, %zu)",
		        base, len, chunk);
		ret = -EINVAL;
	}
	if (ret == 0) {
		s->nchunks = (len + chunk - 1) / chunk;
		s->mrs = calloc(s->nchunks, sizeof(*s->mrs));
		if (!s->mrs)
			ret = -ENOMEM;
	}
	/* Children must not share the pages the NIC writes into (TRAPS.md). */
	if (ret == 0 && syscall(SYS_madvise, base, len, MADV_DONTFORK) != 0) {
		ret = -errno;
		DSM_LOG_ERRNO(DSM_LOG_ERROR, "madvise(MADV_DONTFORK) on a segment");
	}
	if (ret)
		mine = SEG_FAILED;
	if (tp->boot->allgather(tp->boot->ctx, &mine, s->bases, sizeof(mine)))
		ret = ret ? ret : -EIO;
	for (int r = 0; ret == 0 && r < tp->size; r++)
		if (s->bases[r] == SEG_FAILED) {
			DSM_LOG(DSM_LOG_ERROR, "rank %d could not set up its segment", r);
			ret = -EIO;
		}
	if (ret)
		goto fail;
	s->next = tp->segs;
	tp->segs = s;
	*seg_p = s;
	return 0;
fail:
	free(s->mrs);
	free(s->bases);
	free(s);
	return ret;
}

int dsm_tp_seg_destroy(dsm_tp_seg_t *s)
{
	int ret = 0;

	if (s == NULL)
		return 0;
	for (struct dsm_tp_seg **pp = &s->tp->segs; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	for (size_t i = 0; i < s->keycap; i++)
		if (s->keys[i].id)
			fail_waits(s, &s->keys[i], -ECANCELED);
	free(s->keys);
	for (size_t i = 0; i < s->nchunks; i++) {
		if (s->mrs[i]) {
			int r = dsm_tp_mr_dereg(s->tp, s->mrs[i]);
			if (r && !ret)
				ret = r;
		}
	}
	free(s->mrs);
	free(s->bases);
	free(s);
	return ret;
}

int dsm_tp_seg_populate(dsm_tp_seg_t *s, size_t off, size_t len)
{
	if (len == 0)
		return 0;
	if (off >= s->len || len > s->len - off)
		return -EINVAL;
	for (size_t i = off / s->chunk; i <= (off + len - 1) / s->chunk; i++) {
		size_t start = i * s->chunk;
		size_t n = s->len - start < s->chunk ? s->len - start : s->chunk;
		int ret;

		if (s->mrs[i])
			continue;
		ret = s->tp->ops->mr_reg(s->tp, s->base + start, n, chunk_key(s, i), &s->mrs[i]);
		if (ret)
			return ret;
		s->registered += n;
	}
	return 0;
}

size_t dsm_tp_seg_registered(const dsm_tp_seg_t *s)
{
	return s->registered;
}

dsm_tp_mr_t *dsm_tp_seg_mr(const dsm_tp_seg_t *s, size_t off)
{
	return off < s->len ? s->mrs[off / s->chunk] : NULL;
}

static int check(const struct dsm_tp_seg *s, int peer, size_t off, size_t len)
{
	if (peer < 0 || peer >= s->tp->size || len == 0 || off >= s->len || len > s->len - off ||
	    (off + len - 1) / s->chunk != off / s->chunk)
		return -EINVAL;
	return 0;
}

static int post(struct dsm_tp_seg *s, int peer, const struct seg_wait *w, uint64_t rkey)
{
	size_t idx = w->off / s->chunk;
	uint64_t raddr = s->tp->virt_addr ? s->bases[peer] + w->off : w->off - idx * s->chunk;

	if (w->write)
		return dsm_tp_write(s->tp, peer, w->local, w->len, w->lmr, raddr, rkey, w->ctx);
	return dsm_tp_read(s->tp, peer, w->local, w->len, w->lmr, raddr, rkey, w->ctx);
}

static int seg_rma(struct dsm_tp_seg *s, int peer, const struct seg_wait *w)
{
	size_t idx = w->off / s->chunk;
	int ret = check(s, peer, w->off, w->len);
	struct seg_key *k;
	struct seg_wait *q;

	if (ret)
		return ret;
	if (!s->tp->prov_key)
		return post(s, peer, w, chunk_key(s, idx));
	if (peer == s->tp->rank) {
		ret = dsm_tp_seg_populate(s, w->off, w->len);
		return ret ? ret : post(s, peer, w, s->mrs[idx]->key);
	}
	k = key_find(s, ((uint64_t)peer << DSM_TP_KEY_SEG_SHIFT | idx) + 1, true);
	if (k == NULL)
		return -ENOMEM;
	if (k->state == KEY_KNOWN)
		return post(s, peer, w, k->key);
	q = malloc(sizeof(*q));
	if (q == NULL)
		return -ENOMEM;
	*q = *w;
	q->next = NULL;
	if (k->state == KEY_NONE) {
		struct dsm_tp_ctrl m = {.op = DSM_TP_CTRL_KEY_REQ, .seg = s->id, .chunk = idx};
		ret = dsm_tp_ctrl_send(s->tp, peer, &m);
		if (ret) {
			free(q);
			return ret;
		}
		k->state = KEY_ASKED;
	}
	*k->wait_tail = q;
	k->wait_tail = &q->next;
	s->tp->key_waits++;
	return 0;
}

int dsm_tp_seg_read(dsm_tp_seg_t *s, int peer, size_t off, void *local, size_t len,
                    dsm_tp_mr_t *lmr, void *ctx)
{
	struct seg_wait w = {.off = off, .len = len, .local = local, .lmr = lmr, .ctx = ctx};

	return seg_rma(s, peer, &w);
}

int dsm_tp_seg_write(dsm_tp_seg_t *s, int peer, size_t off, const void *local, size_t len,
                     dsm_tp_mr_t *lmr, void *ctx)
{
	struct seg_wait w = {.write = true,
	                     .off = off,
	                     .len = len,
	                     .local = (void *)local,
	                     .lmr = lmr,
	                     .ctx = ctx};

	return seg_rma(s, peer, &w);
}
