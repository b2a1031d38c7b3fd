/* SPDX-License-Identifier: MIT */
/*
 * The ways a rank leaves when the event loop cannot go on. Both remove what
 * would outlive the process (the transport's shm region) and _exit at once:
 * the application's threads may be blocked in faults that nobody will serve.
 */
#ifndef DSM_RT_FATAL_H
#define DSM_RT_FATAL_H

struct dsm_rt;

#define DSM_RT_EXIT_FATAL       1
#define DSM_RT_EXIT_PEER_DEAD   3
#define DSM_RT_EXIT_NO_FINALIZE 4

/* An error the loop cannot recover from: one line that says what, then exit status 1. */
__attribute__((noreturn, format(printf, 2, 3))) void dsm_rt_fatal(struct dsm_rt *rt,
                                                                  const char *fmt, ...);

/*
 * Rank @peer died: say so and leave with status 3. The transport has told the live ranks
 * already (so that they name @peer, not us, as the cause); give those notices 20 ms of
 * progress first.
 */
__attribute__((noreturn)) void dsm_rt_peer_dead_exit(struct dsm_rt *rt, int peer);

/*
 * From dsm_init on: a process that exits with status 0 while libdsm is up (no
 * dsm_finalize) says so and exits with status 4 instead, since the other ranks take it for
 * dead and fail: the job must not look as if this rank had succeeded. A non-zero status is
 * left as it is.
 */
void dsm_rt_exit_guard(void);

#endif
