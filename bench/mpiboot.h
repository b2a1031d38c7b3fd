/* SPDX-License-Identifier: MIT */
/* MPI for the benchmarks' own transports (the floors) and for waiting between workloads. */
#ifndef DSM_BENCH_MPIBOOT_H
#define DSM_BENCH_MPIBOOT_H

#include <mpi.h>

#include "transport/transport.h"

/* A transport bootstrap whose allgather and barrier run over *@comm (kept by the caller). */
void bench_tp_boot(MPI_Comm *comm, struct dsm_tp_boot *out);

/* MPI_COMM_WORLD barrier that sleeps instead of spinning (MPI busy-polls: TRAPS.md). */
void bench_mpi_sleepy_barrier(void);

#endif
