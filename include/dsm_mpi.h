/* SPDX-License-Identifier: MIT */
/*
 * libdsm: the MPI_Comm variants of the public API. Include after (or instead
 * of) dsm.h in programs that run libdsm over a communicator other than
 * MPI_COMM_WORLD.
 */
#ifndef DSM_MPI_H
#define DSM_MPI_H

#include <mpi.h>
#include <dsm.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * dsm_init_comm() - dsm_init() over the ranks of @comm. Collective over @comm.
 *
 * libdsm works on its own duplicate of @comm; the caller may free @comm
 * afterwards. MPI must already be initialized.
 */
DSM_EXPORT int dsm_init_comm(MPI_Comm comm, const dsm_config_t *cfg);

#ifdef __cplusplus
}
#endif

#endif /* DSM_MPI_H */
