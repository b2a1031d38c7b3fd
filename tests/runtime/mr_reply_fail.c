/* SPDX-License-Identifier: MIT */
/*
 * A reply that cannot be sent. Rank 1's transport is made to fail every REPLY it sends
 * (its ops table is swapped for one whose send refuses that type with -EIO, as a provider
 * error would); rank 0 then frees memory of rank 1's slice, which waits for rank 1's
 * reply. Rank 1 must end with one line naming the failed answer (status 1), and rank 0 must
 * see it die and exit (status 3) instead of sleeping for ever in dsm_free.
 * reply_fail.sh runs it and checks both; it prints what each rank did.
 */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include <dsm.h>

#include "runtime/rt.h"
#include "runtime/wire.h"
#include "transport/transport.h"

#include "mr.h"
#include "mr_loop.h"

static const struct dsm_tp_ops *real;
static struct dsm_tp_ops failing;

static int send_no_reply(dsm_tp_t *tp, int peer, unsigned type, const void *buf, size_t len)
{
	if (type == DSM_RT_MSG_REPLY) {
		printf("rank 1: the transport refuses the reply to rank %d\n", peer);
		fflush(stdout);
		return -EIO;
	}
	return real->send(tp, peer, type, buf, len);
}

/* Swaps rank 1's ops (as its event loop would: mr_as_loop). */
static void fail_replies(struct dsm_rt *rt, void *arg)
{
	(void)arg;
	real = rt->tp->ops;
	failing = *real;
	failing.send = send_no_reply;
	rt->tp->ops = &failing;
}

int main(int argc, char **argv)
{
	void *p = NULL;
	int rank;

	mr_start(&argc, &argv);
	if (dsm_init(NULL) != 0 || dsm_nranks() != 2) {
		fprintf(stderr, "mr_reply_fail: needs dsm_init and 2 ranks\n");
		return 2;
	}
	rank = dsm_rank();
	if (rank == 1) {
		p = dsm_alloc(64);
		if (p == NULL)
			return 2;
		mr_as_loop(atomic_load(&dsm_rt_g), fail_replies, NULL);
	}
	/* Rank 1's pointer reaches rank 0 by MPI; the DSM barrier follows the swap. */
	MPI_Bcast(&p, sizeof(p), MPI_BYTE, 1, MPI_COMM_WORLD);
	dsm_barrier();
	if (rank == 0) {
		printf("rank 0: freeing %p of rank 1's slice\n", p);
		fflush(stdout);
		int ret = dsm_free(p); /* rank 1's death ends this rank first */

		printf("rank 0: dsm_free returned %d\n", ret);
		return 0;
	}
	sleep(60); /* the loop ends the process when the reply fails */
	printf("rank 1: still here after 60 s\n");
	return 0;
}
