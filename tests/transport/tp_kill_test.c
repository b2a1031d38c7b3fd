/* SPDX-License-Identifier: MIT */
/*
 * Peer death: the last rank kills itself with SIGKILL while the others sleep
 * in their event loops; each survivor must get DSM_TP_EV_PEER_DEAD within
 * 10 s, and a send to the dead rank must fail. Run with hydra's
 * -disable-auto-cleanup. Survivors leave with _exit: MPI cannot finalize a
 * job with a dead rank.
 *
 * With one rank it only opens the transport (the unknown-provider test).
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <dsm.h>

#include "runtime/bootstrap.h"
#include "transport/transport.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(void)
{
	struct dsm_tp_attr attr = {.struct_size = sizeof(attr), .max_msg_type = 4};
	dsm_tp_t *tp;
	int me, np, victim, ret;
	double t_kill, deadline;
	bool seen = false;

	if (dsm_rt_boot_init(NULL) != 0)
		return 1;
	me = dsm_rt_boot_rank();
	np = dsm_rt_boot_size();
	attr.boot = dsm_rt_boot_tp();
	ret = dsm_tp_open(NULL, &attr, &tp);
	if (ret) {
		printf("rank %d: dsm_tp_open: %s\n", me, dsm_strerror(ret));
		fflush(stdout);
		dsm_rt_boot_fini();
		return np == 1 ? 0 : 1;
	}
	if (np < 2) {
		dsm_tp_close(tp);
		dsm_rt_boot_fini();
		return 0;
	}
	victim = np - 1;
	/* Some traffic first, so connections exist (rxm connects lazily). */
	for (int r = 0; r < np; r++)
		if (r != me)
			dsm_tp_send(tp, r, 1, "hi", 2);
	dsm_rt_boot_barrier();
	if (me == victim) {
		struct timespec d = {0, 300 * 1000 * 1000};
		nanosleep(&d, NULL); /* the others are asleep by now */
		raise(SIGKILL);
	}
	t_kill = now_s() + 0.3;
	deadline = now_s() + 15;
	while (!seen && now_s() < deadline) {
		struct dsm_tp_event ev[8];
		int n;

		dsm_tp_sleep(tp, 20000);
		n = dsm_tp_poll(tp, ev, 8);
		for (int k = 0; k < n; k++)
			if (ev[k].type == DSM_TP_EV_PEER_DEAD && ev[k].peer == victim)
				seen = true;
	}
	double took = now_s() - t_kill;
	ret = dsm_tp_send(tp, victim, 1, "x", 1);
	if (!seen || took > 10 || ret != DSM_ERR_PEER_DEAD) {
		printf("kill test: rank %d FAILED: death %s after %.2f s, send gave %d\n", me,
		       seen ? "seen" : "not seen", took, ret);
		fflush(stdout);
		_exit(1);
	}
	printf("kill test: rank %d saw rank %d die %.0f ms after the kill (%s), a send to it "
	       "gave '%s'\nkill test: rank %d passed\n",
	       me, victim, took * 1e3, tp->prov, dsm_strerror(ret), me);
	fflush(stdout);
	_exit(0);
}
