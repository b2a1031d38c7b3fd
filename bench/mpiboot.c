/* SPDX-License-Identifier: MIT */
#include "bench/mpiboot.h"

#include <errno.h>
#include <time.h>

static int boot_allgather(void *ctx, const void *mine, void *all, size_t len)
{
	return MPI_Allgather(mine, (int)len, MPI_BYTE, all, (int)len, MPI_BYTE, *(MPI_Comm *)ctx) ==
	                       MPI_SUCCESS
	               ? 0
	               : -EIO;
}

static int boot_barrier(void *ctx)
{
	return MPI_Barrier(*(MPI_Comm *)ctx) == MPI_SUCCESS ? 0 : -EIO;
}

void bench_tp_boot(MPI_Comm *comm, struct dsm_tp_boot *out)
{
	int rank, size;

	MPI_Comm_rank(*comm, &rank);
	MPI_Comm_size(*comm, &size);
	*out = (struct dsm_tp_boot){comm, rank, size, boot_allgather, boot_barrier};
}

void bench_mpi_sleepy_barrier(void)
{
	MPI_Request req;
	int done = 0;
	struct timespec ts = {0, 50000};

	MPI_Ibarrier(MPI_COMM_WORLD, &req);
	for (;;) {
		MPI_Test(&req, &done, MPI_STATUS_IGNORE);
		if (done)
			return;
		nanosleep(&ts, NULL);
	}
}
