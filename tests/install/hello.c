/* SPDX-License-Identifier: MIT */
/* An MPI program built outside the tree against an installed libdsm. */
#include <stdio.h>

#include <dsm_mpi.h>

int main(int argc, char **argv)
{
	int rank, size;
	dsm_config_t cfg = DSM_CONFIG_INIT;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	printf("hello from rank %d of %d, libdsm %d.%d, %s\n", rank, size, DSM_VERSION_MAJOR,
	       DSM_VERSION_MINOR, dsm_strerror(DSM_ERR_NOT_INIT));
	printf("rank %d: config struct_size %zu\n", rank, cfg.struct_size);
	MPI_Finalize();
	return 0;
}
