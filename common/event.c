/* SPDX-License-Identifier: MIT */
#include "common/event.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/time.h"

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#else
#define cpu_relax() ((void)0)
#endif

static void futex(_Atomic uint32_t *addr, int op, uint32_t val)
{
	syscall(SYS_futex, addr, op, val, NULL, NULL, 0);
}

void dsm_event_wait(struct dsm_event *e, uint64_t spin_ns)
{
	uint32_t expect = DSM_EVENT_ARMED;

	if (spin_ns) {
		uint64_t until = dsm_now_ns() + spin_ns;

		for (unsigned i = 1;; i++) {
			if (dsm_event_posted(e))
				return;
			cpu_relax();
			if ((i & 63) == 0 && dsm_now_ns() > until)
				break;
		}
	}
	/* Announce the sleep; a post that came meanwhile fails the exchange. */
	if (!atomic_compare_exchange_strong_explicit(&e->state, &expect, DSM_EVENT_SLEEPING,
	                                             memory_order_acq_rel, memory_order_acquire))
		return; /* posted */
	while (!dsm_event_posted(e))
		futex(&e->state, FUTEX_WAIT_PRIVATE, DSM_EVENT_SLEEPING);
}

void dsm_event_post(struct dsm_event *e)
{
	/* A wake on an address whose waiter has just returned wakes nobody, or a futex user
	 * there who rechecks its condition: both harmless. */
	if (atomic_exchange_explicit(&e->state, DSM_EVENT_POSTED, memory_order_acq_rel) ==
	    DSM_EVENT_SLEEPING)
		futex(&e->state, FUTEX_WAKE_PRIVATE, 1);
}
