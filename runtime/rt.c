/* SPDX-License-Identifier: MIT */
#include "runtime/rt.h"

#include "common/log.h"

struct dsm_rt *_Atomic dsm_rt_g;

struct dsm_rt *dsm_rt_get(const char *call)
{
	struct dsm_rt *rt = atomic_load_explicit(&dsm_rt_g, memory_order_acquire);

	if (rt == NULL)
		DSM_LOG(DSM_LOG_ERROR, "%s called before dsm_init or after dsm_finalize", call);
	return rt;
}
