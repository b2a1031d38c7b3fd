/* SPDX-License-Identifier: MIT */
/*
 * dsm_mutex_t. A mutex lives at the home of its address: a lock word there
 * says who holds it (a rank) and whether anyone waits, and a FIFO queue holds
 * the waiters. The word is an atomic in the home's table, not in the heap, so
 * locking never moves the page that holds the dsm_mutex_t.
 *
 * A thread of the home rank takes and gives a free mutex with one
 * compare-and-swap on the word (no message, no loop turn); anyone else, and
 * anyone who finds it held, asks the home's loop, which grants it or queues.
 * The loop respects the word: it grants only a free one, and marks a held one
 * as waited for, which sends the holder's unlock through the loop too. An
 * unlock with waiters hands the mutex straight to the first one, in one
 * message; a rank that does not hold a mutex cannot unlock it (-EPERM), and a
 * remote unlock is one message with no answer, since the unlocking rank knows
 * from its own books that it holds the mutex. Since nobody waits for it, the
 * rank notes the home, and its next collective first asks each noted home for
 * an answer (a fence: a pair's messages keep their order), so that after a
 * barrier the mutexes unlocked before it are free at their homes.
 */
#include "runtime/mutex.h"

#include <dsm.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/ring.h"
#include "common/vec.h"
#include "runtime/death.h"
#include "runtime/loop.h"
#include "runtime/msg.h"
#include "runtime/mw.h"
#include "runtime/rt.h"

/* The lock word: the holder's rank + 1 in the low half (0: free), and WAITERS while the
 * queue is not empty (the loop alone sets and clears it). */
#define WAITERS (1ull << 32)
/* Free, since its holder died: the next to lock it is told (DSM_ERR_PEER_DEAD). */
#define ABANDONED     (1ull << 33)
#define HOLDER(w)     ((uint32_t)(w))
#define HELD_BY(rank) ((uint64_t)(rank) + 1)

struct dsm_rt_mutex_waiter {
	uint32_t rank;
	uint64_t token;
};

/* A mutex this rank is home of. */
struct dsm_rt_mutex {
	uint64_t addr;
	_Atomic uint64_t word;
	struct dsm_ring q;         /* of struct dsm_rt_mutex_waiter, in arrival order */
	struct dsm_rt_mutex *next; /* in its bucket */
};

/* ---- the home's table: the loop changes it, the home's threads look in it ---------------- */

static size_t bucket(const struct dsm_rt_mutexes *t, uint64_t addr)
{
	return (size_t)((addr >> 3) * 0x9e3779b97f4a7c15ull >> 40) & (t->nbuckets - 1);
}

/* The caller holds t->lock (either way) or is the loop. */
static struct dsm_rt_mutex *find(const struct dsm_rt_mutexes *t, uint64_t addr)
{
	if (t->nbuckets == 0)
		return NULL;
	for (struct dsm_rt_mutex *mx = t->buckets[bucket(t, addr)]; mx; mx = mx->next)
		if (mx->addr == addr)
			return mx;
	return NULL;
}

/* The loop: adds @mx, doubling the buckets past two entries each. */
static int insert(struct dsm_rt_mutexes *t, struct dsm_rt_mutex *mx)
{
	int ret = 0;

	pthread_rwlock_wrlock(&t->lock);
	if (t->count + 1 > 2 * t->nbuckets) {
		size_t n = t->nbuckets ? 2 * t->nbuckets : 64;
		struct dsm_rt_mutex **nb = calloc(n, sizeof(*nb));
		struct dsm_rt_mutexes nt = {.buckets = nb, .nbuckets = n};

		if (nb == NULL) {
			ret = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < t->nbuckets; i++)
			while (t->buckets[i]) {
				struct dsm_rt_mutex *m = t->buckets[i];

				t->buckets[i] = m->next;
				m->next = nb[bucket(&nt, m->addr)];
				nb[bucket(&nt, m->addr)] = m;
			}
		free(t->buckets);
		t->buckets = nb;
		t->nbuckets = n;
	}
	mx->next = t->buckets[bucket(t, mx->addr)];
	t->buckets[bucket(t, mx->addr)] = mx;
	t->count++;
out:
	pthread_rwlock_unlock(&t->lock);
	return ret;
}

static void mutex_free(struct dsm_rt_mutex *mx)
{
	dsm_ring_fini(&mx->q);
	free(mx);
}

static void remove_and_free(struct dsm_rt_mutexes *t, struct dsm_rt_mutex *mx)
{
	pthread_rwlock_wrlock(&t->lock);
	for (struct dsm_rt_mutex **pp = &t->buckets[bucket(t, mx->addr)]; *pp; pp = &(*pp)->next)
		if (*pp == mx) {
			*pp = mx->next;
			t->count--;
			break;
		}
	pthread_rwlock_unlock(&t->lock);
	mutex_free(mx);
}

/* ---- the home's loop ---------------------------------------------------------------------- */

static void lock_or_queue(struct dsm_rt *rt, struct dsm_rt_mutex *mx, int src, uint64_t token)
{
	struct dsm_rt_mutex_waiter w = {(uint32_t)src, token};
	uint64_t v = atomic_load(&mx->word);

	for (;;) {
		if (v == 0 || v == ABANDONED) {
			int status = v == ABANDONED ? DSM_RT_MUTEX_DEAD_HANDOFF : 0;

			if (atomic_compare_exchange_weak(&mx->word, &v, HELD_BY(src))) {
				dsm_rt_reply(rt, src, token, status);
				return;
			}
			continue;
		}
		/* Held: from now on its holder's unlock comes through here. */
		if (atomic_compare_exchange_weak(&mx->word, &v, v | WAITERS))
			break;
	}
	if (dsm_ring_push(&mx->q, &w) < 0) {
		if (dsm_ring_len(&mx->q) == 0)
			atomic_fetch_and(&mx->word, ~WAITERS);
		dsm_rt_reply(rt, src, token, -ENOMEM);
	}
}

/* @src, which holds @mx, gives it up: to the first waiter if there is one. */
static int unlock(struct dsm_rt *rt, struct dsm_rt_mutex *mx, int src)
{
	uint64_t v = atomic_load(&mx->word);
	struct dsm_rt_mutex_waiter w;

	if (HOLDER(v) != HELD_BY(src))
		return -EPERM;
	if (dsm_ring_len(&mx->q) == 0) {
		/* No waiter: nobody else changes a held word without WAITERS. */
		atomic_store(&mx->word, 0);
		return 0;
	}
	/* Hand over in arrival order: every waiter gets its turn. */
	w = *(struct dsm_rt_mutex_waiter *)dsm_ring_at(&mx->q, 0);
	dsm_ring_pop(&mx->q);
	atomic_store(&mx->word, HELD_BY(w.rank) | (dsm_ring_len(&mx->q) ? WAITERS : 0));
	dsm_rt_reply(rt, (int)w.rank, w.token, DSM_RT_MUTEX_HANDED_OFF);
	return 0;
}

/* An operation on a mutex this rank is home of, from @src (this rank included). */
static void on_mutex(struct dsm_rt *rt, int src, const void *data, size_t len)
{
	struct dsm_rt_mutexes *t = &rt->mutexes;
	struct dsm_rt_mutex_msg m;
	struct dsm_rt_mutex *mx;
	uint64_t v = 0;
	int status = 0;

	(void)len;
	memcpy(&m, data, sizeof(m));
	if (m.op == DSM_RT_MUTEX_FENCE)
		goto reply; /* what src sent before it is done: messages of a pair keep order */
	mx = find(t, m.addr);
	if (mx == NULL && m.op != DSM_RT_MUTEX_INIT) {
		status = -EINVAL;
		goto reply;
	}
	switch (m.op) {
	case DSM_RT_MUTEX_INIT:
		if (mx) {
			status = atomic_load(&mx->word) ? -EBUSY : 0;
			break;
		}
		mx = calloc(1, sizeof(*mx));
		if (mx == NULL) {
			status = -ENOMEM;
			break;
		}
		mx->addr = m.addr;
		dsm_ring_init(&mx->q, sizeof(struct dsm_rt_mutex_waiter));
		status = insert(t, mx);
		if (status < 0)
			mutex_free(mx);
		break;
	case DSM_RT_MUTEX_LOCK:
		lock_or_queue(rt, mx, src, m.token);
		return; /* answered when the mutex comes its way */
	case DSM_RT_MUTEX_TRYLOCK:
		status = atomic_compare_exchange_strong(&mx->word, &v, HELD_BY(src)) ? 0 : -EBUSY;
		if (status == -EBUSY && v == ABANDONED &&
		    atomic_compare_exchange_strong(&mx->word, &v, HELD_BY(src)))
			status = DSM_RT_MUTEX_DEAD_HANDOFF;
		break;
	case DSM_RT_MUTEX_UNLOCK:
		status = unlock(rt, mx, src);
		if (status < 0 && m.token == 0)
			DSM_LOG(DSM_LOG_ERROR,
			        "rank %d unlocked the dsm_mutex_t at %#llx, which it does not hold",
			        src, (unsigned long long)m.addr);
		break;
	case DSM_RT_MUTEX_DESTROY:
		if (atomic_load(&mx->word) & ~ABANDONED) {
			status = -EBUSY;
			break;
		}
		remove_and_free(t, mx);
		break;
	default:
		status = -EINVAL;
	}
reply:
	if (m.token)
		dsm_rt_reply(rt, src, m.token, status);
}

/* Rank @dead's waits are dropped; a mutex it held goes to its next waiter, or is left
 * ABANDONED for the next to lock it, each told that the holder died. */
void dsm_rt_mutex_peer_dead(struct dsm_rt *rt, int dead)
{
	struct dsm_rt_mutexes *t = &rt->mutexes;

	pthread_rwlock_wrlock(&t->lock);
	for (size_t b = 0; b < t->nbuckets; b++) {
		for (struct dsm_rt_mutex *mx = t->buckets[b]; mx; mx = mx->next) {
			size_t n = dsm_ring_len(&mx->q), kept = 0;
			struct dsm_rt_mutex_waiter w;

			for (size_t i = 0; i < n; i++) {
				w = *(struct dsm_rt_mutex_waiter *)dsm_ring_at(&mx->q, 0);
				dsm_ring_pop(&mx->q);
				if (w.rank != (uint32_t)dead && dsm_ring_push(&mx->q, &w) == 0)
					kept++;
			}
			uint64_t v = atomic_load(&mx->word);

			if (HOLDER(v) != HELD_BY(dead)) {
				if (kept == 0)
					atomic_fetch_and(&mx->word, ~WAITERS);
				continue;
			}
			if (kept == 0) {
				atomic_store(&mx->word, ABANDONED);
				continue;
			}
			w = *(struct dsm_rt_mutex_waiter *)dsm_ring_at(&mx->q, 0);
			dsm_ring_pop(&mx->q);
			atomic_store(&mx->word, HELD_BY(w.rank) | (kept > 1 ? WAITERS : 0));
			dsm_rt_reply(rt, (int)w.rank, w.token, DSM_RT_MUTEX_DEAD_HANDOFF);
		}
	}
	pthread_rwlock_unlock(&t->lock);
}

int dsm_rt_mutex_init(struct dsm_rt *rt)
{
	rt->mutexes.unfenced = calloc(((size_t)rt->nranks + 63) / 64, sizeof(uint64_t));
	if (rt->mutexes.unfenced == NULL)
		return -ENOMEM;
	pthread_rwlock_init(&rt->mutexes.lock, NULL);
	pthread_mutex_init(&rt->mutexes.held_lock, NULL);
	dsm_rt_msg_on(rt, DSM_RT_MSG_MUTEX, sizeof(struct dsm_rt_mutex_msg), on_mutex);
	return 0;
}

void dsm_rt_mutex_fini(struct dsm_rt *rt)
{
	struct dsm_rt_mutexes *t = &rt->mutexes;

	for (size_t i = 0; i < t->nbuckets; i++)
		while (t->buckets[i]) {
			struct dsm_rt_mutex *mx = t->buckets[i];

			t->buckets[i] = mx->next;
			mutex_free(mx);
		}
	free(t->buckets);
	free(t->held);
	free(t->unfenced);
	pthread_rwlock_destroy(&t->lock);
	pthread_mutex_destroy(&t->held_lock);
	*t = (struct dsm_rt_mutexes){0};
}

/* ---- this rank's books of the remote mutexes it holds ------------------------------------- */

static int held_add(struct dsm_rt_mutexes *t, uint64_t addr)
{
	int ret;

	pthread_mutex_lock(&t->held_lock);
	ret = DSM_VEC_RESERVE(t->held, t->held_cap, t->nheld + 1);
	if (ret == 0)
		t->held[t->nheld++] = addr;
	pthread_mutex_unlock(&t->held_lock);
	return ret;
}

/* Removes @addr; false if this rank does not hold it. */
static bool held_take(struct dsm_rt_mutexes *t, uint64_t addr)
{
	bool found = false;

	pthread_mutex_lock(&t->held_lock);
	for (size_t i = 0; i < t->nheld; i++)
		if (t->held[i] == addr) {
			t->held[i] = t->held[--t->nheld];
			found = true;
			break;
		}
	pthread_mutex_unlock(&t->held_lock);
	return found;
}

/* @home was sent a one-way unlock: the next fence asks it. Marked after the send, so
 * that a fence which finds the mark is sent after the unlock. */
static void unfenced_mark(struct dsm_rt_mutexes *t, int home)
{
	pthread_mutex_lock(&t->held_lock);
	t->unfenced[home / 64] |= 1ull << (home % 64);
	pthread_mutex_unlock(&t->held_lock);
}

int dsm_rt_mutex_fence(struct dsm_rt *rt)
{
	struct dsm_rt_mutexes *t = &rt->mutexes;
	size_t words = ((size_t)rt->nranks + 63) / 64;
	int ret = 0;

	for (size_t w = 0; w < words; w++) {
		uint64_t bits;

		pthread_mutex_lock(&t->held_lock);
		bits = t->unfenced[w];
		t->unfenced[w] = 0;
		pthread_mutex_unlock(&t->held_lock);
		for (; bits; bits &= bits - 1) {
			struct dsm_rt_req req = {.type = DSM_RT_MSG_MUTEX,
			                         .target = (int)(w * 64) + __builtin_ctzll(bits),
			                         .len = sizeof(req.u.mutex),
			                         .token = &req.u.mutex.token,
			                         .answer = DSM_RT_MSG_REPLY};
			int r;

			req.u.mutex.op = DSM_RT_MUTEX_FENCE;
			r = dsm_rt_submit(rt, &req);
			if (r < 0 && ret == 0)
				ret = r;
		}
	}
	return ret;
}

/* ---- the API ------------------------------------------------------------------------------ */

/* The home's own threads: one compare-and-swap on the word. 1: done with *ret_p; 0: the
 * loop must decide (the mutex is held, or waited for). */
static int fast_path(struct dsm_rt *rt, uint64_t addr, enum dsm_rt_mutex_op op, int *ret_p)
{
	struct dsm_rt_mutexes *t = &rt->mutexes;
	uint64_t me = HELD_BY(rt->rank), v;
	struct dsm_rt_mutex *mx;
	int done = 1;

	pthread_rwlock_rdlock(&t->lock);
	mx = find(t, addr);
	if (mx == NULL) {
		*ret_p = -EINVAL;
		goto out;
	}
	switch (op) {
	case DSM_RT_MUTEX_LOCK:
	case DSM_RT_MUTEX_TRYLOCK:
		v = 0;
		if (atomic_compare_exchange_strong(&mx->word, &v, me))
			*ret_p = 0;
		else if (v == ABANDONED)
			done = 0; /* the loop says who held it */
		else if (op == DSM_RT_MUTEX_TRYLOCK)
			*ret_p = -EBUSY;
		else
			done = 0; /* held: the queue */
		break;
	case DSM_RT_MUTEX_UNLOCK:
		v = me;
		if (atomic_compare_exchange_strong(&mx->word, &v, 0))
			*ret_p = 0;
		else if (HOLDER(v) != me)
			*ret_p = -EPERM;
		else
			done = 0; /* waited for: the loop hands it over */
		break;
	default:
		done = 0;
	}
out:
	pthread_rwlock_unlock(&t->lock);
	return done;
}

static int mutex_op(const char *call, dsm_mutex_t *m, enum dsm_rt_mutex_op op)
{
	struct dsm_rt *rt = dsm_rt_get(call);
	uint64_t addr = (uint64_t)(uintptr_t)m;
	struct dsm_rt_req req = {.type = DSM_RT_MSG_MUTEX,
	                         .len = sizeof(req.u.mutex),
	                         .token = &req.u.mutex.token,
	                         .answer = DSM_RT_MSG_REPLY};
	bool dead_holder = false;
	int home, ret;

	if (rt == NULL)
		return DSM_ERR_NOT_INIT;
	home = dsm_rt_alloc_home_of(&rt->alloc, m);
	if (home < 0) {
		DSM_LOG(DSM_LOG_ERROR, "%s(%p): a dsm_mutex_t must live in allocated heap memory",
		        call, (void *)m);
		return -EINVAL;
	}
	/* A mutex lives in its home's table: it died with it. */
	if (dsm_rt_live_home(rt, home) != home) {
		DSM_LOG(DSM_LOG_ERROR, "%s(%p): its home, rank %d, died, and the mutex with it",
		        call, (void *)m, home);
		return DSM_ERR_PEER_DEAD;
	}
	/* The writes to multiple-writer memory made before an unlock are the next holder's. */
	if (op == DSM_RT_MUTEX_UNLOCK)
		dsm_rt_mw_release(rt);
	if (home == rt->rank && op != DSM_RT_MUTEX_INIT && op != DSM_RT_MUTEX_DESTROY &&
	    fast_path(rt, addr, op, &ret)) {
		if (ret == 0 && (op == DSM_RT_MUTEX_LOCK || op == DSM_RT_MUTEX_TRYLOCK))
			DSM_RT_COUNT(rt, lock_local, 1);
		goto out;
	}
	if (op == DSM_RT_MUTEX_UNLOCK && home != rt->rank) {
		if (!held_take(&rt->mutexes, addr)) {
			ret = -EPERM;
			goto out;
		}
		/* We hold it, so the home takes it: one message, no answer to wait for. The
		 * next collective waits for it (dsm_rt_mutex_fence). */
		req.token = NULL;
		req.answer = DSM_RT_MSG_NONE;
	}
	req.target = home;
	req.u.mutex.op = op;
	req.u.mutex.addr = addr;
	ret = dsm_rt_submit(rt, &req);
	if (ret == DSM_RT_MUTEX_DEAD_HANDOFF) {
		dead_holder = true;
		ret = 0;
	}
	if (ret == DSM_RT_MUTEX_HANDED_OFF) {
		DSM_RT_COUNT(rt, lock_handoffs, 1);
		ret = 0;
	} else if (ret == 0 && (op == DSM_RT_MUTEX_LOCK || op == DSM_RT_MUTEX_TRYLOCK)) {
		DSM_RT_COUNT(rt, lock_remote, 1);
	}
	if (op == DSM_RT_MUTEX_UNLOCK && home != rt->rank) {
		if (ret == 0)
			unfenced_mark(&rt->mutexes, home);
		else
			held_add(&rt->mutexes,
			         addr); /* not sent: still ours, the caller may retry */
	}
	if (ret == 0 && home != rt->rank &&
	    (op == DSM_RT_MUTEX_LOCK || op == DSM_RT_MUTEX_TRYLOCK) &&
	    held_add(&rt->mutexes, addr) < 0) {
		/* Without our books we could not unlock it later: give it back at once. */
		req.token = &req.u.mutex.token;
		req.answer = DSM_RT_MSG_REPLY;
		req.u.mutex.op = DSM_RT_MUTEX_UNLOCK;
		dsm_rt_submit(rt, &req);
		ret = -ENOMEM;
	}
out:
	if (ret == 0 && (op == DSM_RT_MUTEX_LOCK || op == DSM_RT_MUTEX_TRYLOCK))
		dsm_rt_mw_acquire(rt);
	if (ret == -EPERM)
		DSM_LOG(DSM_LOG_ERROR, "%s(%p): this rank does not hold it", call, (void *)m);
	if (ret == 0 && dead_holder) {
		DSM_LOG(DSM_LOG_WARN,
		        "%s(%p): its holder died holding it; this rank holds it now, and what it "
		        "protects may be half-written",
		        call, (void *)m);
		ret = DSM_ERR_PEER_DEAD;
	} else if (ret == DSM_ERR_PEER_DEAD) {
		DSM_LOG(DSM_LOG_ERROR, "%s(%p): its home, rank %d, died, and the mutex with it",
		        call, (void *)m, home);
		if (op == DSM_RT_MUTEX_UNLOCK && home != rt->rank)
			held_take(&rt->mutexes, addr); /* nothing left to unlock */
	}
	return ret;
}

DSM_EXPORT int dsm_mutex_init(dsm_mutex_t *m)
{
	return mutex_op("dsm_mutex_init", m, DSM_RT_MUTEX_INIT);
}

DSM_EXPORT int dsm_mutex_lock(dsm_mutex_t *m)
{
	return mutex_op("dsm_mutex_lock", m, DSM_RT_MUTEX_LOCK);
}

DSM_EXPORT int dsm_mutex_trylock(dsm_mutex_t *m)
{
	return mutex_op("dsm_mutex_trylock", m, DSM_RT_MUTEX_TRYLOCK);
}

DSM_EXPORT int dsm_mutex_unlock(dsm_mutex_t *m)
{
	return mutex_op("dsm_mutex_unlock", m, DSM_RT_MUTEX_UNLOCK);
}

DSM_EXPORT int dsm_mutex_destroy(dsm_mutex_t *m)
{
	return mutex_op("dsm_mutex_destroy", m, DSM_RT_MUTEX_DESTROY);
}
