/* SPDX-License-Identifier: MIT */
#include "runtime/bootstrap.h"

#include <errno.h>
#include <stdlib.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#include "common/log.h"

static struct {
	bool up;
	bool we_initialized; /* MPI_Init_thread was ours, so MPI_Finalize is too */
	MPI_Comm comm;
	int rank, size;
	struct dsm_tp_boot tp;
} boot;

static int mpi_err(int rc, const char *what)
{
	char msg[MPI_MAX_ERROR_STRING];
	int len = 0;

	if (rc == MPI_SUCCESS)
		return 0;
	MPI_Error_string(rc, msg, &len);
	DSM_LOG(DSM_LOG_ERROR, "bootstrap: %s: %.*s", what, len, msg);
	return -EIO;
}

static int tp_allgather(void *ctx, const void *mine, void *all, size_t len)
{
	(void)ctx;
	return dsm_rt_boot_allgather(mine, all, len);
}

static int tp_barrier(void *ctx)
{
	(void)ctx;
	return dsm_rt_boot_barrier();
}

int dsm_rt_boot_init(const MPI_Comm *comm)
{
	int inited = 0, finalized = 0, provided, ret;

	if (boot.up)
		return -EALREADY;
	MPI_Finalized(&finalized);
	if (finalized) {
		DSM_LOG(DSM_LOG_ERROR, "bootstrap: MPI is already finalized");
		return -EINVAL;
	}
	MPI_Initialized(&inited);
	if (!inited) {
		/* Only the thread calling dsm_init/dsm_finalize uses MPI here; the
		 * program may use more, so ask for the most. */
		ret = mpi_err(MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided),
		              "MPI_Init_thread");
		if (ret)
			return ret;
		boot.we_initialized = true;
	}
	ret = mpi_err(MPI_Comm_dup(comm ? *comm : MPI_COMM_WORLD, &boot.comm), "MPI_Comm_dup");
	if (ret)
		goto fail;
	/* Errors come back as codes: we log them once and return them. */
	MPI_Comm_set_errhandler(boot.comm, MPI_ERRORS_RETURN);
	MPI_Comm_rank(boot.comm, &boot.rank);
	MPI_Comm_size(boot.comm, &boot.size);
	boot.tp = (struct dsm_tp_boot){
	        .ctx = NULL,
	        .rank = boot.rank,
	        .size = boot.size,
	        .allgather = tp_allgather,
	        .barrier = tp_barrier,
	};
	boot.up = true;
	dsm_log_set_rank(boot.rank);
	return 0;
fail:
	if (boot.we_initialized) {
		MPI_Finalize();
		boot.we_initialized = false;
	}
	return ret;
}

int dsm_rt_boot_fini(void)
{
	int ret = 0;

	if (!boot.up)
		return 0;
	MPI_Comm_free(&boot.comm);
	if (boot.we_initialized)
		ret = mpi_err(MPI_Finalize(), "MPI_Finalize");
	boot.up = false;
	boot.we_initialized = false;
	return ret;
}

int dsm_rt_boot_rank(void)
{
	return boot.up ? boot.rank : -EINVAL;
}

int dsm_rt_boot_size(void)
{
	return boot.up ? boot.size : -EINVAL;
}

int dsm_rt_boot_allgather(const void *mine, void *all, size_t len)
{
	if (!boot.up)
		return -EINVAL;
	if (len > (size_t)INT32_MAX)
		return -EINVAL;
	return mpi_err(MPI_Allgather(mine, (int)len, MPI_BYTE, all, (int)len, MPI_BYTE, boot.comm),
	               "MPI_Allgather");
}

int dsm_rt_boot_bcast(void *buf, size_t len, int root)
{
	if (!boot.up || len > (size_t)INT32_MAX)
		return -EINVAL;
	return mpi_err(MPI_Bcast(buf, (int)len, MPI_BYTE, root, boot.comm), "MPI_Bcast");
}

int dsm_rt_boot_alltoallv(const void *send, const size_t *scount, void *recv, const size_t *rcount)
{
	int *v = calloc(4 * (size_t)boot.size, sizeof(int));
	size_t soff = 0, roff = 0;
	int ret;

	if (!boot.up)
		ret = -EINVAL;
	else if (v == NULL)
		ret = -ENOMEM;
	else
		ret = 0;
	for (int r = 0; ret == 0 && r < boot.size; r++) {
		v[r] = (int)scount[r];
		v[boot.size + r] = (int)soff;
		v[2 * boot.size + r] = (int)rcount[r];
		v[3 * boot.size + r] = (int)roff;
		soff += scount[r];
		roff += rcount[r];
		if (soff > (size_t)INT32_MAX || roff > (size_t)INT32_MAX)
			ret = -EINVAL;
	}
	if (ret == 0)
		ret = mpi_err(MPI_Alltoallv(send, v, v + boot.size, MPI_BYTE, recv,
		                            v + 2 * boot.size, v + 3 * boot.size, MPI_BYTE,
		                            boot.comm),
		              "MPI_Alltoallv");
	free(v);
	return ret;
}

int dsm_rt_boot_barrier(void)
{
	if (!boot.up)
		return -EINVAL;
	return mpi_err(MPI_Barrier(boot.comm), "MPI_Barrier");
}

void dsm_rt_boot_abort(int code, const char *why)
{
	DSM_LOG(DSM_LOG_ERROR, "aborting the job: %s", why);
	MPI_Abort(boot.up ? boot.comm : MPI_COMM_WORLD, code ? code : 1);
	_exit(code ? code : 1);
}

const struct dsm_tp_boot *dsm_rt_boot_tp(void)
{
	return boot.up ? &boot.tp : NULL;
}
