/* SPDX-License-Identifier: MIT */
/*
 * A one-shot event between two threads: one waits, another posts once. The
 * waiter spins for up to spin_ns (while a core is free for it), then sleeps
 * in the kernel; the poster enters the kernel only if the waiter sleeps. What
 * the poster wrote before posting is visible to the waiter after it returns.
 */
#ifndef DSM_COMMON_EVENT_H
#define DSM_COMMON_EVENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct dsm_event {
	_Atomic uint32_t state; /* DSM_EVENT_ARMED, _SLEEPING or _POSTED */
};

enum { DSM_EVENT_ARMED = 0, DSM_EVENT_SLEEPING = 1, DSM_EVENT_POSTED = 2 };

static inline void dsm_event_init(struct dsm_event *e)
{
	atomic_init(&e->state, DSM_EVENT_ARMED);
}

static inline bool dsm_event_posted(struct dsm_event *e)
{
	return atomic_load_explicit(&e->state, memory_order_acquire) == DSM_EVENT_POSTED;
}

/* Returns once the event is posted; spins at most @spin_ns first (0: sleeps at once). */
void dsm_event_wait(struct dsm_event *e, uint64_t spin_ns);

/*
 * Posts: the waiter returns. The event's memory may be gone once this returns (it lives
 * on the waiter's stack), so nothing else of it may be touched after.
 */
void dsm_event_post(struct dsm_event *e);

#endif
