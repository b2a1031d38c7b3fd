/* SPDX-License-Identifier: MIT */
#include "runtime/api.h"

#include <dsm.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "runtime/coll.h"
#include "runtime/free.h"
#include "runtime/loop.h"
#include "runtime/msg.h"
#include "runtime/mw.h"
#include "runtime/prefetch.h"
#include "runtime/profile.h"
#include "runtime/rt.h"

DSM_EXPORT const char *dsm_strerror(int err)
{
	return dsm_err_str(err);
}

DSM_EXPORT int dsm_query(dsm_info_t *out)
{
	struct dsm_rt *rt = dsm_rt_get("dsm_query");
	dsm_info_t i = {.struct_size = sizeof(i)};
	size_t n;

	if (rt == NULL)
		return DSM_ERR_NOT_INIT;
	if (out == NULL || out->struct_size < offsetof(dsm_info_t, provider)) {
		DSM_LOG(DSM_LOG_ERROR,
		        "dsm_query: set out->struct_size = sizeof(dsm_info_t) first");
		return -EINVAL;
	}
	i.rank = rt->rank;
	i.nranks = rt->nranks;
	i.line_size = rt->cfg.line_size;
	i.page_size = rt->cfg.page_size;
	i.heap_size = rt->heap.size;
	i.heap_base = rt->heap.base;
	snprintf(i.provider, sizeof(i.provider), "%s", rt->tp->prov);
	snprintf(i.uffd_mode, sizeof(i.uffd_mode), "%s", dsm_uffd_mode_name(rt->region.mode));
	snprintf(i.data_path, sizeof(i.data_path), "%s", rt->rdma.on ? "rdma" : "inline");
	i.overcommit_strict = rt->heap.strict;
	snprintf(i.mw_track, sizeof(i.mw_track), "%s", rt->mw.async ? "async" : "twin");
	n = out->struct_size < sizeof(i) ? out->struct_size : sizeof(i);
	memcpy((char *)out + sizeof(size_t), (char *)&i + sizeof(size_t), n - sizeof(size_t));
	return 0;
}

DSM_EXPORT int dsm_rank(void)
{
	struct dsm_rt *rt = dsm_rt_get("dsm_rank");

	return rt ? rt->rank : DSM_ERR_NOT_INIT;
}

DSM_EXPORT int dsm_nranks(void)
{
	struct dsm_rt *rt = dsm_rt_get("dsm_nranks");

	return rt ? rt->nranks : DSM_ERR_NOT_INIT;
}

/* ---- allocation --------------------------------------------------------------------------- */

static void *fail_errno(int err)
{
	errno = err < 0 ? -err : err;
	return NULL;
}

/* @site: the caller's return address, for the profile. */
static void *all_alloc(const char *call, size_t size, dsm_dist_t dist, bool mw, const void *site)
{
	struct dsm_rt *rt = dsm_rt_get(call);
	void *p = NULL;
	int ret;

	if (rt == NULL)
		return fail_errno(DSM_ERR_NOT_INIT);
	/* The arguments are checked together first: a rank that failed alone would leave the
	 * others waiting. */
	ret = dsm_rt_collective(rt, mw ? DSM_RT_COLL_ALL_ALLOC_MW : DSM_RT_COLL_ALL_ALLOC, size,
	                        (uint64_t)dist);
	if (ret < 0)
		return fail_errno(ret);
	ret = dsm_rt_alloc_collective(&rt->alloc, size, dist, mw, &p);
	if (ret == 0 && rt->heap.strict)
		ret = dsm_rt_heap_open(&rt->heap, (size_t)((char *)p - rt->heap.base), size);
	/* Known to this rank's loop before any of its threads can touch it. Another rank may
	 * ask for its lines sooner: a home answers from its home copy, whatever it knows. */
	if (ret == 0 && mw)
		ret = dsm_rt_mw_request(rt, DSM_RT_MW_ADD, (uint64_t)(uintptr_t)p, size);
	if (ret < 0) {
		DSM_LOG(DSM_LOG_ERROR, "%s(%zu, %d): %s", call, size, (int)dist,
		        ret == -EINVAL   ? "a size of 0 or an unknown distribution"
		        : ret == -ENOMEM ? "the heap has no room (raise DSM_HEAP_SIZE)"
		                         : dsm_err_str(ret));
		return fail_errno(ret);
	}
	dsm_rt_prof_alloc(rt, p, size, mw ? DSM_RT_PROF_ALL_ALLOC_MW : DSM_RT_PROF_ALL_ALLOC,
	                  (int)dist, site);
	return p;
}

DSM_EXPORT void *dsm_all_alloc(size_t size, dsm_dist_t dist)
{
	return all_alloc("dsm_all_alloc", size, dist, false, __builtin_return_address(0));
}

DSM_EXPORT void *dsm_all_alloc_mw(size_t size, dsm_dist_t dist)
{
	return all_alloc("dsm_all_alloc_mw", size, dist, true, __builtin_return_address(0));
}

DSM_EXPORT int dsm_all_free(void *p)
{
	struct dsm_rt *rt = dsm_rt_get("dsm_all_free");
	int64_t line;
	dsm_coh_span_t span = {0};
	int ret;

	if (rt == NULL)
		return DSM_ERR_NOT_INIT;
	ret = dsm_rt_collective(rt, DSM_RT_COLL_ALL_FREE, (uint64_t)(uintptr_t)p, 0);
	if (ret < 0)
		return ret;
	/* Multiple-writer memory: this rank's copies and unreleased writes of it go first. */
	if (atomic_load_explicit(&rt->mw.nranges, memory_order_acquire))
		dsm_rt_mw_request(rt, DSM_RT_MW_DEL, (uint64_t)(uintptr_t)p, 0);
	line = dsm_coh_line_of(&rt->layout, (uintptr_t)p);
	if (line >= 0)
		dsm_rt_alloc_home(&rt->alloc, (uint64_t)line, &span);
	ret = dsm_rt_free_collective(&rt->alloc, p);
	if (ret < 0) {
		DSM_LOG(DSM_LOG_ERROR, "dsm_all_free(%p): %s", p,
		        ret == -EINVAL ? "not the start of a live dsm_all_alloc allocation"
		                       : dsm_err_str(ret));
		return ret; /* on every rank: they hold the same allocations */
	}
	dsm_rt_prof_free(rt, p);
	/* Every rank's copies go (free.c), and each waits for the others' before it returns:
	 * from then on an access anywhere faults and finds the memory freed. */
	ret = dsm_rt_free_lines(rt, span.first_line, span.nlines, false);
	if (ret == 0)
		ret = dsm_rt_collective(rt, DSM_RT_COLL_ALL_FREE, (uint64_t)(uintptr_t)p, 1);
	return ret;
}

DSM_EXPORT void *dsm_alloc(size_t size)
{
	struct dsm_rt *rt = dsm_rt_get("dsm_alloc");
	void *p = NULL;
	int ret;

	if (rt == NULL)
		return fail_errno(DSM_ERR_NOT_INIT);
	ret = dsm_rt_alloc_local(&rt->alloc, size, &p);
	if (ret == 0 && rt->heap.strict)
		ret = dsm_rt_heap_open(&rt->heap, (size_t)((char *)p - rt->heap.base), size);
	if (ret < 0) {
		DSM_LOG(DSM_LOG_ERROR, "dsm_alloc(%zu): %s", size,
		        ret == -EINVAL   ? "a size of 0"
		        : ret == -ENOMEM ? "this rank's slice of the heap is full"
		                         : dsm_err_str(ret));
		return fail_errno(ret);
	}
	dsm_rt_prof_alloc(rt, p, size, DSM_RT_PROF_ALLOC, DSM_COH_DIST_RANK,
	                  __builtin_return_address(0));
	return p;
}

DSM_EXPORT int dsm_free(void *p)
{
	struct dsm_rt *rt = dsm_rt_get("dsm_free");
	struct dsm_rt_req req = {.type = DSM_RT_MSG_FREE,
	                         .len = sizeof(req.u.free),
	                         .token = &req.u.free.token,
	                         .answer = DSM_RT_MSG_REPLY};
	int owner, ret;

	if (rt == NULL)
		return DSM_ERR_NOT_INIT;
	owner = dsm_rt_alloc_owner(&rt->alloc, p);
	if (owner == DSM_ERR_FOREIGN || owner == -1) {
		DSM_LOG(DSM_LOG_ERROR, "dsm_free(%p): %s", p,
		        owner == -1 ? "memory from dsm_all_alloc (use dsm_all_free)"
		                    : "not libdsm heap memory");
		return owner == -1 ? -EINVAL : DSM_ERR_FOREIGN;
	}
	if (owner == rt->rank) {
		uint64_t first, n;
		/* DSM_DEBUG_FREE: an object that shares its line with others stays there, so its
		 * bytes say it was freed (a whole line's copies go below). */
		size_t size = rt->cfg.debug_free ? dsm_rt_alloc_size(&rt->alloc, p) : 0;

		if (size && size < rt->cfg.line_size)
			memset(p, DSM_FREED_BYTE, size);
		ret = dsm_rt_free_local(&rt->alloc, p, &first, &n);
		if (ret < 0) {
			DSM_LOG(DSM_LOG_ERROR, "dsm_free(%p): not allocated, or freed twice", p);
			return ret;
		}
		dsm_rt_prof_free(rt, p);
		/* The lines no longer allocated lose their copies everywhere first (free.c). */
		return dsm_rt_free_lines(rt, first, n, true);
	}
	req.target = owner;
	req.u.free.addr = (uint64_t)(uintptr_t)p;
	ret = dsm_rt_submit(rt, &req); /* the owner logs a bad free */
	if (ret == 0)
		dsm_rt_prof_free(rt, p);
	return ret;
}

DSM_EXPORT int dsm_home(const void *addr)
{
	struct dsm_rt *rt = dsm_rt_get("dsm_home");

	if (rt == NULL)
		return DSM_ERR_NOT_INIT;
	return dsm_rt_alloc_home_of(&rt->alloc, addr);
}

DSM_EXPORT int dsm_prefetch(const void *addr, size_t len)
{
	struct dsm_rt *rt = dsm_rt_get("dsm_prefetch");
	uintptr_t a = (uintptr_t)addr;
	int64_t first, last;

	if (rt == NULL)
		return DSM_ERR_NOT_INIT;
	if (len == 0)
		return 0;
	first = dsm_coh_line_of(&rt->layout, a);
	last = a + len - 1 < a ? -1 : dsm_coh_line_of(&rt->layout, a + len - 1);
	if (first < 0 || last < 0) {
		DSM_LOG(DSM_LOG_ERROR, "dsm_prefetch(%p, %zu): the range is not inside the heap",
		        addr, len);
		return -EINVAL;
	}
	if (dsm_rt_alloc_home(&rt->alloc, (uint64_t)first, NULL) < 0 ||
	    dsm_rt_alloc_home(&rt->alloc, (uint64_t)last, NULL) < 0) {
		DSM_LOG(DSM_LOG_ERROR, "dsm_prefetch(%p, %zu): the range is not allocated memory",
		        addr, len);
		return -EINVAL;
	}
	return dsm_rt_prefetch_hint(rt, (uint64_t)first, (uint64_t)(last - first + 1));
}

/* ---- remote frees ------------------------------------------------------------------------- */

/* The owner of a slice: a dsm_free from @src of memory in it. */
static void on_free(struct dsm_rt *rt, int src, const void *data, size_t len)
{
	struct dsm_rt_free_msg m;
	int ret;

	(void)len;
	uint64_t first, n;

	memcpy(&m, data, sizeof(m));
	ret = dsm_rt_free_local(&rt->alloc, (void *)(uintptr_t)m.addr, &first, &n);
	if (ret < 0)
		DSM_LOG(DSM_LOG_ERROR, "dsm_free(%#" PRIx64 ") from rank %d: %s", m.addr, src,
		        ret == -EINVAL ? "not allocated, or freed twice" : dsm_err_str(ret));
	if (ret == 0 && n > 0) /* answered once the lines' copies are gone (free.c) */
		dsm_rt_free_start_home(rt, first, n, src, m.token);
	else
		dsm_rt_reply(rt, src, m.token, ret);
}

void dsm_rt_api_init(struct dsm_rt *rt)
{
	dsm_rt_msg_on(rt, DSM_RT_MSG_FREE, sizeof(struct dsm_rt_free_msg), on_free);
}
