/* SPDX-License-Identifier: MIT */
/*
 * The public API, not implemented yet: the runtime issue (userfaultfd region,
 * event loop, allocators, synchronization) replaces these. Every call says
 * -ENOSYS so that no program or test can mistake this build for a working DSM.
 */
#include <dsm.h>
#include <dsm_mpi.h>

#include <errno.h>

#include "runtime/log.h"

static int not_yet(const char *what)
{
	DSM_LOG(DSM_LOG_ERROR, "%s is not implemented in this build", what);
	return -ENOSYS;
}

DSM_EXPORT int dsm_init(const dsm_config_t *cfg)
{
	(void)cfg;
	return not_yet("dsm_init");
}

DSM_EXPORT int dsm_init_comm(MPI_Comm comm, const dsm_config_t *cfg)
{
	(void)comm;
	(void)cfg;
	return not_yet("dsm_init_comm");
}

DSM_EXPORT int dsm_finalize(void)
{
	return not_yet("dsm_finalize");
}

DSM_EXPORT int dsm_rank(void)
{
	return -ENOSYS;
}

DSM_EXPORT int dsm_nranks(void)
{
	return -ENOSYS;
}

DSM_EXPORT void *dsm_all_alloc(size_t size, dsm_dist_t dist)
{
	(void)size;
	(void)dist;
	errno = -not_yet("dsm_all_alloc");
	return NULL;
}

DSM_EXPORT int dsm_all_free(void *p)
{
	(void)p;
	return not_yet("dsm_all_free");
}

DSM_EXPORT void *dsm_alloc(size_t size)
{
	(void)size;
	errno = -not_yet("dsm_alloc");
	return NULL;
}

DSM_EXPORT int dsm_free(void *p)
{
	(void)p;
	return not_yet("dsm_free");
}

DSM_EXPORT int dsm_home(const void *addr)
{
	(void)addr;
	return -ENOSYS;
}

DSM_EXPORT void dsm_barrier(void)
{
	not_yet("dsm_barrier");
}

DSM_EXPORT int dsm_mutex_init(dsm_mutex_t *m)
{
	(void)m;
	return not_yet("dsm_mutex_init");
}

DSM_EXPORT int dsm_mutex_lock(dsm_mutex_t *m)
{
	(void)m;
	return not_yet("dsm_mutex_lock");
}

DSM_EXPORT int dsm_mutex_trylock(dsm_mutex_t *m)
{
	(void)m;
	return not_yet("dsm_mutex_trylock");
}

DSM_EXPORT int dsm_mutex_unlock(dsm_mutex_t *m)
{
	(void)m;
	return not_yet("dsm_mutex_unlock");
}

DSM_EXPORT int dsm_mutex_destroy(dsm_mutex_t *m)
{
	(void)m;
	return not_yet("dsm_mutex_destroy");
}

DSM_EXPORT int dsm_stats(dsm_stats_t *out)
{
	(void)out;
	return not_yet("dsm_stats");
}
