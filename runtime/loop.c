/* SPDX-License-Identifier: MIT */
/*
 * The event loop thread. Each turn runs its phases in order:
 *
 *   1. transport   messages and RDMA completions from the other ranks (msg.c, engine.c)
 *   2. faults      this rank's threads' faults from the userfaultfds (fault.c, mw.c)
 *   3. requests    what this rank's threads asked for: collectives, mutexes, frees (msg.c)
 *   4. holds       granted lines whose hold is over go back to the engine (hold.c)
 *
 * With nothing to do it spins briefly while a reply is due and the node has a
 * core to spare, and otherwise sleeps in epoll after announcing it to the
 * transport (so that peers ring its doorbell).
 *
 * The loop never touches a heap page it may not hold (it would fault on
 * itself), never calls MPI, and logs only through write(2).
 */
#include "runtime/loop.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "common/time.h"
#include "runtime/cache.h"
#include "runtime/ckpt.h"
#include "runtime/death.h"
#include "runtime/engine.h"
#include "runtime/fatal.h"
#include "runtime/fault.h"
#include "runtime/free.h"
#include "runtime/hold.h"
#include "runtime/msg.h"
#include "runtime/mw.h"
#include "runtime/prefetch.h"
#include "runtime/rt.h"
#include "runtime/stats.h"

#define BATCH 32
/* With nothing to do and a transport that cannot sleep yet: poll this long, then nap this
 * long at a time. */
#define NAP_AFTER_NS 5000ull
#define NAP_NS       50000ull
/* The longest sleep: what a wake-up the transport missed can cost. */
#define SLEEP_CAP_NS 10000000ull

/* Phase 1: what the transport delivers. */
static int drain_transport(struct dsm_rt *rt)
{
	struct dsm_tp_event ev[BATCH];
	int n = dsm_tp_poll(rt->tp, ev, BATCH);

	if (n < 0)
		dsm_rt_fatal(rt, "the transport failed: %s", dsm_err_str(n));
	for (int i = 0; i < n; i++) {
		switch (ev[i].type) {
		case DSM_TP_EV_MSG:
			dsm_rt_msg_dispatch(rt, ev[i].peer, ev[i].msg_type, ev[i].data, ev[i].len);
			break;
		case DSM_TP_EV_RMA:
			dsm_rt_engine_rma_done(rt, &ev[i]);
			break;
		case DSM_TP_EV_PEER_DEAD:
			dsm_rt_death(rt, ev[i].peer); /* returns only with DSM_ON_DEATH=continue */
			break;
		default:
			break;
		}
	}
	return n;
}

/* Phase 4: ends the holds that are due; returns how many, and in *next_p when to look
 * again. */
static int expire_holds(struct dsm_rt *rt, uint64_t now, uint64_t *next_p)
{
	dsm_coh_event_t ev = {.type = DSM_COH_EV_HOLD_DONE};
	size_t i = 0;
	int n = 0;

	*next_p = UINT64_MAX;
	while (dsm_rt_hold_next_due(rt, now, &i, &ev.line, next_p)) {
		n++;
		if (dsm_rt_mw_owns(rt, ev.line))
			continue; /* multiple-writer memory: the hold was mw.c's, and is over */
		if (dsm_rt_engine(rt, &ev, NULL) < 0)
			dsm_rt_fatal(rt, "the engine refused the end of a hold on line %llu",
			             (unsigned long long)ev.line);
	}
	return n;
}

/* Slept the whole cap: if the transport has work now, it missed a wake-up. */
static void missed_wakeup_check(struct dsm_rt *rt)
{
	if (dsm_tp_sleep_prepare(rt->tp) >= 0) {
		dsm_tp_sleep_end(rt->tp);
		return;
	}
	uint64_t n = DSM_RT_COUNT(rt, missed_wakeups, 1) + 1;
	if ((n & (n - 1)) == 0)
		DSM_LOG(DSM_LOG_DEBUG, "transport work found by a timed wake-up (%llu so far)",
		        (unsigned long long)n);
}

/*
 * Nothing to do: sleep in epoll until the transport, the userfaultfd or a request wakes
 * us, at most until @next (a hold's deadline) and never longer than SLEEP_CAP_NS. The
 * transport may refuse to sleep while it has operations in flight that only its polling
 * completes (shm): then nap instead, never spin without bound, the core may be the one
 * the peer needs to answer. Returns false when the caller should poll again at once.
 */
static bool idle(struct dsm_rt *rt, uint64_t now, uint64_t idle_since, uint64_t next)
{
	int how = dsm_tp_sleep_prepare(rt->tp);
	bool asleep = how >= 0, brief = how == DSM_TP_SLEEP_BRIEF;

	/* The transport has work, or operations in flight only our polling completes: poll a
	 * few turns first. */
	if (how != 0 && now - idle_since < NAP_AFTER_NS) {
		if (asleep)
			dsm_tp_sleep_end(rt->tp);
		return false;
	}
	/* Announce, fence, look once more: a request submitted before it sees the announcement
	 * is found here, one after it rings the eventfd (msg.c, dsm_rt_submit). */
	atomic_store_explicit(&rt->loop.asleep, true, memory_order_seq_cst);
	if (atomic_load_explicit(&rt->msg.submitted, memory_order_seq_cst) ||
	    dsm_rt_prefetch_pending(rt)) {
		atomic_store_explicit(&rt->loop.asleep, false, memory_order_relaxed);
		if (asleep)
			dsm_tp_sleep_end(rt->tp);
		return false;
	}

	struct epoll_event evs[4];
	struct timespec ts;
	/* Bounded sleeps: a wake-up the transport misses costs at most 10 ms, not a hang, and
	 * is counted (missed_wakeups). A home is idle while it owes an answer, so the bound
	 * holds idle too: a hundred wake-ups a second cost nothing. */
	uint64_t cap = !asleep || brief ? NAP_NS : SLEEP_CAP_NS;
	uint64_t d = next != UINT64_MAX ? (next > now ? next - now : 0) : cap;
	int nev;

	if (d > cap)
		d = cap;
	ts.tv_sec = (time_t)(d / 1000000000ull);
	ts.tv_nsec = (long)(d % 1000000000ull);
	if (asleep && !brief)
		DSM_RT_COUNT(rt, sleeps, 1);
	else
		DSM_RT_COUNT(rt, naps, 1);
	/* Asleep, the loop lends the baton to a thread that waits for an answer. */
	rt->loop.tp_asleep = asleep;
	pthread_mutex_unlock(&rt->loop.baton);
	nev = epoll_pwait2(rt->loop.epfd, evs, 4, &ts, NULL);
	pthread_mutex_lock(&rt->loop.baton);
	rt->loop.tp_asleep = false;
	atomic_store_explicit(&rt->loop.asleep, false, memory_order_relaxed);
	if (nev < 0 && errno != EINTR)
		dsm_rt_fatal(rt, "epoll_pwait2 failed: %s", strerror(errno));
	for (int i = 0; i < nev; i++) {
		uint64_t v;

		if (evs[i].data.fd == rt->msg.evfd && read(rt->msg.evfd, &v, sizeof(v)) < 0 &&
		    errno != EAGAIN)
			DSM_LOG_ERRNO(DSM_LOG_WARN, "reading the event loop's eventfd");
	}
	if (asleep) {
		if (nev == 0 && d == cap && !brief)
			missed_wakeup_check(rt);
		dsm_tp_sleep_end(rt->tp);
	}
	return true;
}

/* One turn, by whichever thread holds the baton: the four phases. Returns the work done;
 * *next_p is when a hold is due next. */
static int turn(struct dsm_rt *rt, uint64_t *next_p)
{
	int work = drain_transport(rt) + dsm_rt_fault_drain(rt) + dsm_rt_mw_drain(rt) +
	           dsm_rt_msg_drain_requests(rt);
	uint64_t now = dsm_now_ns();
	int ret;

	/* While a checkpoint is agreed this rank starts no request (ckpt.c). */
	if (!dsm_rt_ckpt_frozen(rt))
		work += dsm_rt_prefetch_drain(rt);
	work += expire_holds(rt, now, next_p);
	/* Room in the cache ahead of need: the EVICTs leave with the turn's messages. */
	if (!dsm_rt_ckpt_frozen(rt))
		work += dsm_rt_cache_trim(rt);
	work += dsm_rt_ckpt_poll(rt);
	work += dsm_rt_free_poll(rt);
	/* What the turn gathered leaves now (msg.c): nothing waits past its turn. */
	ret = dsm_rt_msg_flush(rt, -1);
	if (ret < 0 && ret != DSM_ERR_PEER_DEAD)
		dsm_rt_fatal(rt, "sending gathered protocol messages failed: %s", dsm_err_str(ret));
	if (work) {
		if ((++rt->loop.busy & 255) == 0) {
			dsm_rt_stats_publish(rt);
			if (rt->holds.nfaults)
				dsm_rt_fault_stall_check(rt, now);
		}
	}
	return work;
}

/* The signals an application's thread blocks while it runs turns (and the loop thread
 * always): a handler that touched the heap would fault with nobody left to serve it. The
 * synchronous ones stay, since blocking them would turn them into a silent kill. */
static void loop_signals(sigset_t *set)
{
	sigfillset(set);
	sigdelset(set, SIGSEGV);
	sigdelset(set, SIGBUS);
	sigdelset(set, SIGFPE);
	sigdelset(set, SIGILL);
}

/*
 * An application thread that waits for @ev (the answer to its request) runs the loop's
 * turns itself, for up to @budget_ns, while the loop thread sleeps: one thread a rank
 * polls, and the answer needs no hand-off between threads. The loop thread is woken for
 * what is left. Returns true once @ev is posted.
 */
static bool drive(struct dsm_rt *rt, struct dsm_event *ev, uint64_t budget_ns)
{
	uint64_t until = dsm_now_ns() + budget_ns, next;
	sigset_t block, old;
	bool got = false, need_loop, lent;

	atomic_fetch_add_explicit(&rt->loop.drivers, 1, memory_order_relaxed);
	while (!(got = pthread_mutex_trylock(&rt->loop.baton) == 0)) {
		if (dsm_event_posted(ev) || dsm_now_ns() > until)
			break;
		sched_yield(); /* the baton's holder may want this core */
	}
	atomic_fetch_sub_explicit(&rt->loop.drivers, 1, memory_order_relaxed);
	if (!got)
		return dsm_event_posted(ev);
	loop_signals(&block);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	/* The loop thread sleeps with the transport announced asleep: while we poll, peers
	 * need not wake it (on shm a doorbell, a syscall on their side, for a thread that
	 * would only wait for the baton). Announced again when we leave. */
	lent = atomic_load_explicit(&rt->loop.asleep, memory_order_relaxed) && rt->loop.tp_asleep;
	if (lent)
		dsm_tp_sleep_pause(rt->tp);
	while (!dsm_event_posted(ev) && dsm_now_ns() <= until)
		turn(rt, &next);
	/* What we leave behind, the loop thread must see to: it may be asleep until long
	 * after a hold we armed is due, with a fault or a request still waiting, or with
	 * transport work we took the wake-up of (resume says). */
	need_loop = rt->holds.n || rt->holds.nfaults || rt->msg.pending;
	if (lent && dsm_tp_sleep_resume(rt->tp) != 0)
		need_loop = true; /* work came that the loop thread must poll for */
	pthread_mutex_unlock(&rt->loop.baton);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (need_loop && atomic_load_explicit(&rt->loop.asleep, memory_order_seq_cst))
		dsm_rt_msg_wake(rt);
	return dsm_event_posted(ev);
}

int dsm_rt_submit(struct dsm_rt *rt, struct dsm_rt_req *req)
{
	struct dsm_rt_msgs *m = &rt->msg;

	req->status = 0;
	dsm_event_init(&req->done);
	pthread_mutex_lock(&m->lock);
	req->next = m->submit;
	m->submit = req;
	pthread_mutex_unlock(&m->lock);
	atomic_store_explicit(&m->submitted, true, memory_order_seq_cst);
	/* Where a core is free for it, this thread runs the loop's turns until the answer
	 * comes, for DSM_WAIT_US at most: a sleep and its wake-up cost tens of microseconds
	 * here (TRAPS.md), and a thread that waits longer should sleep. */
	if (rt->loop.may_spin && drive(rt, &req->done, rt->loop.wait_ns))
		return req->status;
	/* The loop's sleep announcement and ours are a Dekker pair (loop.c, idle): either it
	 * sees the request before it sleeps, or we see it asleep and ring. */
	if (atomic_load_explicit(&rt->loop.asleep, memory_order_seq_cst))
		dsm_rt_msg_wake(rt);
	dsm_event_wait(&req->done, 0);
	return req->status;
}

static void *loop_main(void *arg)
{
	struct dsm_rt *rt = arg;
	/* Its own work: what a driving thread did makes the loop thread spin no longer. */
	uint64_t idle_since = 0, last_work = 0;
	sigset_t block;

	/* Signals are the application's: deliver them to its threads, not here. */
	loop_signals(&block);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	/* Hold timers and naps of tens of microseconds mean what they say (the default slack
	 * is 50 us). */
	prctl(PR_SET_TIMERSLACK, 1000ul, 0, 0, 0);

	pthread_mutex_lock(&rt->loop.baton);
	while (!atomic_load_explicit(&rt->loop.stop, memory_order_acquire)) {
		uint64_t now, next;

		if (turn(rt, &next)) {
			idle_since = 0;
			last_work = dsm_now_ns();
			continue;
		}
		now = dsm_now_ns();
		if (!idle_since) {
			idle_since = now;
			dsm_rt_stats_publish(rt);
		}
		if (rt->holds.nfaults)
			dsm_rt_fault_stall_check(rt, now);
		/* Poll a little after the last work while a core is free for it: a reply is due,
		 * or, at a home, the next request of a burst comes within microseconds (a lock
		 * after an unlock, the next round of a barrier), where sleeping costs a doorbell
		 * (TRAPS.md: 13-16 us a round trip). Not while an application thread waits to
		 * poll for its own answer: one poller a rank is enough. */
		if (rt->loop.may_spin && now - last_work < rt->loop.spin_ns &&
		    atomic_load_explicit(&rt->loop.drivers, memory_order_relaxed) == 0) {
			/* Politely: the node's cores are counted per rank, but a rank's
			 * application threads may be spinning too, and a woken loop of another
			 * rank must get a core at once (measured: doorbells answered 30-57 us
			 * late behind a spinning loop). Without the baton: a thread that comes
			 * to wait for its answer must not wait for us to be scheduled again
			 * (measured: barriers 2-3x slower when the yield kept it). */
			pthread_mutex_unlock(&rt->loop.baton);
			sched_yield();
			pthread_mutex_lock(&rt->loop.baton);
			continue;
		}
		idle(rt, now, idle_since, next);
	}
	pthread_mutex_unlock(&rt->loop.baton);
	return NULL;
}

int dsm_rt_loop_start(struct dsm_rt *rt)
{
	struct epoll_event ev = {.events = EPOLLIN};
	int fds[4], ret;

	rt->loop.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (rt->loop.epfd < 0) {
		DSM_LOG_ERRNO(DSM_LOG_ERROR, "creating the event loop's epoll");
		return -errno;
	}
	fds[0] = rt->region.uffd;
	fds[1] = rt->msg.evfd;
	fds[2] = dsm_tp_wait_fd(rt->tp);
	fds[3] = rt->mw.async ? rt->mw.region.uffd : -1; /* multiple-writer faults (mw.c) */
	for (int i = 0; i < 4; i++) {
		if (fds[i] < 0)
			continue;
		ev.data.fd = fds[i];
		if (epoll_ctl(rt->loop.epfd, EPOLL_CTL_ADD, fds[i], &ev) < 0) {
			ret = -errno;
			DSM_LOG_ERRNO(DSM_LOG_ERROR, "epoll_ctl");
			close(rt->loop.epfd);
			return ret;
		}
	}
	atomic_store(&rt->loop.stop, false);
	pthread_mutex_init(&rt->loop.baton, NULL);
	ret = pthread_create(&rt->loop.thread, NULL, loop_main, rt);
	if (ret) {
		DSM_LOG(DSM_LOG_ERROR, "starting the event loop thread: %s", strerror(ret));
		pthread_mutex_destroy(&rt->loop.baton);
		close(rt->loop.epfd);
		return -ret;
	}
	pthread_setname_np(rt->loop.thread, "dsm-loop");
	return 0;
}

void dsm_rt_loop_stop(struct dsm_rt *rt)
{
	atomic_store_explicit(&rt->loop.stop, true, memory_order_release);
	dsm_rt_msg_wake(rt);
	pthread_join(rt->loop.thread, NULL);
	pthread_mutex_destroy(&rt->loop.baton);
	close(rt->loop.epfd);
}
