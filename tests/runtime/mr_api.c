/* SPDX-License-Identifier: MIT */
/*
 * The API and bad input across ranks: calls before dsm_init and after
 * dsm_finalize, sizes of 0 and beyond the heap, foreign pointers and double
 * frees, mismatched collectives (which must fail on every rank, not hang),
 * dsm_home for each distribution, dsm_stats.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <dsm.h>

#include "mr.h"

int main(int argc, char **argv)
{
	int rank, n, x = 0;
	char *p;
	dsm_stats_t st = {.struct_size = sizeof(st)};

	mr_start(&argc, &argv);

	/* Before dsm_init. */
	CHECK(dsm_rank() == DSM_ERR_NOT_INIT);
	CHECK(dsm_all_alloc(4096, DSM_DIST_BLOCK) == NULL && errno == -DSM_ERR_NOT_INIT);
	CHECK(dsm_free(&x) == DSM_ERR_NOT_INIT);
	CHECK(dsm_stats(&st) == DSM_ERR_NOT_INIT);
	CHECK(dsm_checkpoint("/tmp") == DSM_ERR_NOT_INIT);
	CHECK(dsm_checkpoint_wait() == DSM_ERR_NOT_INIT);
	CHECK(dsm_set_root(NULL) == DSM_ERR_NOT_INIT);
	CHECK(dsm_root() == NULL && dsm_restarted() == 0);

	CHECK(dsm_init(NULL) == 0);
	CHECK(dsm_init(NULL) == DSM_ERR_ALREADY_INIT);
	rank = dsm_rank();
	n = dsm_nranks();
	CHECK(rank == mr_rank);
	CHECK(n >= 2);

	/* Sizes of 0 and beyond the heap fail on every rank alike. */
	CHECK(dsm_all_alloc(0, DSM_DIST_BLOCK) == NULL && errno == EINVAL);
	CHECK(dsm_all_alloc(SIZE_MAX / 2, DSM_DIST_BLOCK) == NULL && errno == ENOMEM);
	CHECK(dsm_all_alloc(4096, (dsm_dist_t)42) == NULL && errno == EINVAL);
	CHECK(dsm_alloc(0) == NULL && errno == EINVAL);

	/* Mismatched arguments: every rank fails, nobody hangs. */
	p = dsm_all_alloc(rank == 1 ? 8192 : 4096, DSM_DIST_BLOCK);
	CHECK(p == NULL && errno == -DSM_ERR_MISMATCH);
	/* Mismatched calls: rank 1 allocates while the others wait in a barrier. */
	if (rank == 1)
		CHECK(dsm_all_alloc(4096, DSM_DIST_CYCLIC) == NULL && errno == -DSM_ERR_MISMATCH);
	else
		dsm_barrier(); /* fails too, and says so; it returns nothing */
	/* And the job goes on in step afterwards. */
	size_t L = mr_line_size();
	p = dsm_all_alloc((size_t)n * 4 * L, DSM_DIST_BLOCK);
	CHECK(p != NULL);
	if (p) {
		CHECK(dsm_home(p) == 0);
		CHECK(dsm_home(p + (size_t)n * 4 * L - 1) == n - 1);
		CHECK(dsm_home(&x) == -EINVAL);
		CHECK(dsm_all_free(p + L) == -EINVAL); /* not a start, on every rank */
		CHECK(dsm_all_free(p) == 0);
		CHECK(dsm_all_free(p) == -EINVAL); /* double free */
	}
	p = dsm_all_alloc((size_t)n * L, DSM_DIST_CYCLIC);
	CHECK(p && dsm_home(p + L) == 1 % n && dsm_home(p) == 0);

	/* Local allocations: homed on the caller, freeable from any rank. */
	char **slots = dsm_all_alloc((size_t)n * 64, DSM_DIST_LOCAL);
	CHECK(slots != NULL);
	char *mine = dsm_alloc(100);
	CHECK(mine != NULL && dsm_home(mine) == rank);
	CHECK(dsm_free(&x) == DSM_ERR_FOREIGN);
	CHECK(dsm_free(p) == -EINVAL); /* dsm_all_alloc memory */
	if (slots && mine) {
		strcpy(mine, "hello");
		slots[rank * 8] = mine;
		dsm_barrier();
		/* Free the next rank's object: a remote free, then a remote double free. */
		char *theirs = slots[((rank + 1) % n) * 8];
		CHECK(strcmp(theirs, "hello") == 0);
		CHECK(dsm_home(theirs) == (rank + 1) % n);
		dsm_barrier();
		CHECK(dsm_free(theirs) == 0);
		CHECK(dsm_free(theirs) == -EINVAL);
	}
	dsm_barrier();

	/* Mutexes must live in the heap; their operations name bad use. */
	dsm_mutex_t local_m;
	CHECK(dsm_mutex_init(&local_m) == -EINVAL);
	dsm_mutex_t *m = dsm_all_alloc(sizeof(*m), DSM_DIST_LOCAL);
	CHECK(m != NULL);
	CHECK(dsm_mutex_lock(m) == -EINVAL); /* not initialized */
	dsm_barrier();
	if (rank == 0)
		CHECK(dsm_mutex_init(m) == 0);
	dsm_barrier();
	CHECK(dsm_mutex_unlock(m) == -EPERM); /* not held */
	dsm_barrier();
	if (rank == 0) {
		CHECK(dsm_mutex_lock(m) == 0);
		CHECK(dsm_mutex_destroy(m) == -EBUSY);
	}
	dsm_barrier();
	if (rank == 1)
		CHECK(dsm_mutex_trylock(m) == -EBUSY);
	dsm_barrier();
	if (rank == 0) {
		CHECK(dsm_mutex_unlock(m) == 0);
		CHECK(dsm_mutex_destroy(m) == 0);
	}

	CHECK(dsm_stats(&st) == 0);
	CHECK(st.write_faults + st.read_faults > 0);
	dsm_stats_t bad = {.struct_size = 3};
	CHECK(dsm_stats(&bad) == -EINVAL);

	CHECK(dsm_finalize() == 0);
	CHECK(dsm_finalize() == DSM_ERR_NOT_INIT);
	CHECK(dsm_rank() == DSM_ERR_NOT_INIT);
	CHECK(dsm_alloc(10) == NULL && errno == -DSM_ERR_NOT_INIT);
	return mr_finish();
}
