/* SPDX-License-Identifier: MIT */
#include "runtime/mutex.h"

#include <dsm.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/ring.h"
#include "runtime/loop.h"
#include "runtime/msg.h"
#include "runtime/rt.h"

struct dsm_rt_mutex_waiter {
	uint32_t rank;
	uint64_t token;
};

/* A mutex this rank is home of, keyed by its address. */
struct dsm_rt_mutex {
	uint64_t addr;
	bool held;
	struct dsm_rt_mutex_waiter holder;
	struct dsm_ring q; /* of struct dsm_rt_mutex_waiter, in arrival order */
	struct dsm_rt_mutex *next;
};

/* ---- the home ----------------------------------------------------------------------------- */

static struct dsm_rt_mutex **mutex_find(struct dsm_rt *rt, uint64_t addr)
{
	struct dsm_rt_mutex **pp = &rt->mutexes;

	while (*pp && (*pp)->addr != addr)
		pp = &(*pp)->next;
	return pp;
}

/* The home: an operation on a mutex it is home of. */
static void on_mutex(struct dsm_rt *rt, int src, const void *data, size_t len)
{
	struct dsm_rt_mutex_msg mm, *m = &mm;
	struct dsm_rt_mutex **pp, *mx;
	struct dsm_rt_mutex_waiter me;
	int status = 0;

	(void)len;
	memcpy(&mm, data, sizeof(mm));
	pp = mutex_find(rt, m->addr);
	mx = *pp;
	me = (struct dsm_rt_mutex_waiter){(uint32_t)src, m->token};

	if (mx == NULL && m->op != DSM_RT_MUTEX_INIT) {
		dsm_rt_reply(rt, src, m->token, -EINVAL);
		return;
	}
	switch (m->op) {
	case DSM_RT_MUTEX_INIT:
		if (mx == NULL) {
			mx = calloc(1, sizeof(*mx));
			if (mx == NULL) {
				status = -ENOMEM;
				break;
			}
			mx->addr = m->addr;
			dsm_ring_init(&mx->q, sizeof(struct dsm_rt_mutex_waiter));
			mx->next = rt->mutexes;
			rt->mutexes = mx;
		} else if (mx->held || dsm_ring_len(&mx->q)) {
			status = -EBUSY;
		}
		break;
	case DSM_RT_MUTEX_LOCK:
		if (!mx->held) {
			mx->held = true;
			mx->holder = me;
		} else if ((status = dsm_ring_push(&mx->q, &me)) == 0) {
			return; /* answered when the lock comes its way */
		}
		break;
	case DSM_RT_MUTEX_TRYLOCK:
		if (mx->held) {
			status = -EBUSY;
		} else {
			mx->held = true;
			mx->holder = me;
		}
		break;
	case DSM_RT_MUTEX_UNLOCK:
		if (!mx->held || mx->holder.rank != (uint32_t)src) {
			status = -EPERM;
			break;
		}
		if (dsm_ring_len(&mx->q)) {
			/* Hand over in arrival order: every waiter gets its turn. */
			mx->holder = *(struct dsm_rt_mutex_waiter *)dsm_ring_at(&mx->q, 0);
			dsm_ring_pop(&mx->q);
			dsm_rt_reply(rt, (int)mx->holder.rank, mx->holder.token, 0);
		} else {
			mx->held = false;
		}
		break;
	case DSM_RT_MUTEX_DESTROY:
		if (mx->held || dsm_ring_len(&mx->q)) {
			status = -EBUSY;
			break;
		}
		*pp = mx->next;
		dsm_ring_fini(&mx->q);
		free(mx);
		break;
	default:
		status = -EINVAL;
	}
	dsm_rt_reply(rt, src, m->token, status);
}

void dsm_rt_mutex_init(struct dsm_rt *rt)
{
	dsm_rt_msg_on(rt, DSM_RT_MSG_MUTEX, sizeof(struct dsm_rt_mutex_msg), on_mutex);
}

void dsm_rt_mutex_fini(struct dsm_rt *rt)
{
	while (rt->mutexes) {
		struct dsm_rt_mutex *mx = rt->mutexes;

		rt->mutexes = mx->next;
		dsm_ring_fini(&mx->q);
		free(mx);
	}
}

/* ---- the API ------------------------------------------------------------------------------ */

static int mutex_op(const char *call, dsm_mutex_t *m, enum dsm_rt_mutex_op op)
{
	struct dsm_rt *rt = dsm_rt_get(call);
	struct dsm_rt_req req = {.type = DSM_RT_MSG_MUTEX,
	                         .len = sizeof(req.u.mutex),
	                         .token = &req.u.mutex.token,
	                         .answer = DSM_RT_MSG_REPLY};
	int home;

	if (rt == NULL)
		return DSM_ERR_NOT_INIT;
	home = dsm_rt_alloc_home_of(&rt->alloc, m);
	if (home < 0) {
		DSM_LOG(DSM_LOG_ERROR, "%s(%p): a dsm_mutex_t must live in allocated heap memory",
		        call, (void *)m);
		return -EINVAL;
	}
	req.target = home;
	req.u.mutex.op = op;
	req.u.mutex.addr = (uint64_t)(uintptr_t)m;
	return dsm_rt_submit(rt, &req);
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
