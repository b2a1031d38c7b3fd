/* SPDX-License-Identifier: MIT */
/*
 * The bootstrap: what libdsm needs from the job launcher, with MPI behind it
 * (as Sandia OpenSHMEM's runtime-mpi.c). MPI is initialized only if the
 * program has not done it (and then finalized by dsm_rt_boot_fini); all
 * traffic goes over a private duplicate of the communicator. Used at start
 * and at the very end only: MPI busy-polls, so nothing steady-state runs here.
 */
#ifndef DSM_RT_BOOTSTRAP_H
#define DSM_RT_BOOTSTRAP_H

#include <mpi.h>
#include <stddef.h>

#include "transport/transport.h"

/* @comm: the communicator to duplicate, or NULL for MPI_COMM_WORLD. */
int dsm_rt_boot_init(const MPI_Comm *comm);
int dsm_rt_boot_fini(void);
int dsm_rt_boot_rank(void);
int dsm_rt_boot_size(void);
/* Every rank contributes @len bytes from @mine; @all gets size * @len bytes in rank order. */
int dsm_rt_boot_allgather(const void *mine, void *all, size_t len);
int dsm_rt_boot_barrier(void);
/* @len bytes of @buf from rank @root to every rank. */
int dsm_rt_boot_bcast(void *buf, size_t len, int root);
/* Each rank sends @scount[r] bytes to rank r, from @send in rank order, and receives
 * @rcount[r] bytes from rank r into @recv in rank order (the totals below 2 GiB). */
int dsm_rt_boot_alltoallv(const void *send, const size_t *scount, void *recv, const size_t *rcount);
/* Ends the whole job: for errors that leave the ranks out of step. */
void dsm_rt_boot_abort(int code, const char *why) __attribute__((noreturn));
/* The bootstrap as the transport takes it (valid between init and fini). */
const struct dsm_tp_boot *dsm_rt_boot_tp(void);

#endif
