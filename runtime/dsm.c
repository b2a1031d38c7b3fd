/* SPDX-License-Identifier: MIT */
/*
 * The public API: init and finalize (the bootstrap, the heap, the userfaultfd
 * region, the engine, the transport and the event loop, in that order and
 * undone in reverse), allocation, synchronization and statistics.
 */
#include <dsm.h>
#include <dsm_mpi.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/bootstrap.h"
#include "runtime/log.h"
#include "runtime/rt.h"

#define DEFAULT_HOLD_US 200
#define DEFAULT_SPIN_US 20

/* Set once by init, cleared by finalize; calls in between see a running runtime. */
static struct dsm_rt *rt_get(const char *call)
{
	struct dsm_rt *rt = dsm_rt_g;

	if (rt == NULL)
		DSM_LOG(DSM_LOG_ERROR, "%s called before dsm_init or after dsm_finalize", call);
	return rt;
}

/* ---- the heap agreement through the bootstrap --------------------------------------------- */

static int boot_all_true(void *ctx, bool mine, bool *all_p)
{
	struct dsm_rt *rt = ctx;
	uint8_t m = mine, *all = calloc((size_t)rt->nranks, 1);
	int ret;

	if (all == NULL)
		return -ENOMEM;
	ret = dsm_rt_boot_allgather(&m, all, 1);
	*all_p = true;
	for (int r = 0; r < rt->nranks; r++)
		*all_p = *all_p && all[r];
	free(all);
	return ret;
}

static int boot_allgather_u64(void *ctx, uint64_t mine, uint64_t *all)
{
	(void)ctx;
	return dsm_rt_boot_allgather(&mine, all, sizeof(mine));
}

/* Every rank learns whether every rank succeeded, so a local failure fails everyone. */
static int agree(struct dsm_rt *rt, int mine, const char *what)
{
	int32_t m = mine, *all = calloc((size_t)rt->nranks, sizeof(*all));
	int ret;

	if (all == NULL)
		return -ENOMEM;
	ret = dsm_rt_boot_allgather(&m, all, sizeof(m));
	for (int r = 0; ret == 0 && r < rt->nranks; r++)
		if (all[r] < 0) {
			if (mine >= 0)
				DSM_LOG(DSM_LOG_ERROR, "%s failed on rank %d: %s", what, r,
				        dsm_strerror(all[r]));
			ret = all[r];
		}
	free(all);
	return ret;
}

/* Ranks on this node <= cores: the loop may spin briefly for a due reply (TRAPS.md). */
static bool node_has_spare_cores(struct dsm_rt *rt)
{
	char me[64] = {0}, *all = calloc((size_t)rt->nranks, sizeof(me));
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	int local = 0;

	if (all == NULL)
		return false;
	gethostname(me, sizeof(me) - 1);
	if (dsm_rt_boot_allgather(me, all, sizeof(me)) == 0)
		for (int r = 0; r < rt->nranks; r++)
			local += strncmp(all + (size_t)r * sizeof(me), me, sizeof(me)) == 0;
	free(all);
	return local > 0 && local <= cores;
}

/* A time setting in microseconds from @var, else @dflt (0 is allowed: no hold, no spin). */
static uint64_t us_setting_ns(const char *var, long dflt)
{
	const char *s = getenv(var);
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return (uint64_t)dflt * 1000;
	v = strtol(s, &end, 10);
	if (*end || v < 0 || v > 10000000) {
		DSM_LOG(DSM_LOG_WARN, "%s='%s' is not a time in microseconds; using %ld", var, s,
		        dflt);
		v = dflt;
	}
	return (uint64_t)v * 1000;
}

static bool bool_setting(const char *var, bool dflt)
{
	const char *s = getenv(var);

	if (s == NULL || *s == '\0')
		return dflt;
	if (strcmp(s, "1") == 0 || strcmp(s, "yes") == 0)
		return true;
	if (strcmp(s, "0") == 0 || strcmp(s, "no") == 0)
		return false;
	DSM_LOG(DSM_LOG_WARN, "%s='%s' is not 0 or 1; using %d", var, s, dflt);
	return dflt;
}

/* ---- init and finalize -------------------------------------------------------------------- */

static void teardown(struct dsm_rt *rt)
{
	/* Registrations go before the transport, and before the memory they cover. */
	if (rt->tpseg)
		dsm_tp_seg_destroy(rt->tpseg);
	for (size_t i = 0; i < rt->nstaging; i++) {
		if (rt->staging_all[i]->mr)
			dsm_tp_mr_dereg(rt->tp, rt->staging_all[i]->mr);
		free(rt->staging_all[i]->buf);
		free(rt->staging_all[i]);
	}
	free(rt->staging_all);
	if (rt->tp)
		dsm_tp_close(rt->tp);
	if (rt->node)
		dsm_coh_node_destroy(rt->node);
	dsm_coh_actions_fini(&rt->acts);
	dsm_rt_region_close(&rt->region);
	dsm_rt_alloc_fini(&rt->alloc);
	dsm_rt_heap_release_segv();
	dsm_rt_heap_release(&rt->homeseg);
	dsm_rt_heap_release(&rt->heap);
	dsm_rt_mutexes_fini(rt);
	free(rt->scratch);
	free(rt->holds);
	free(rt->faults);
	free(rt->coll_in);
	free(rt->coll_arrived);
	pthread_mutex_destroy(&rt->req_lock);
	pthread_mutex_destroy(&rt->coll_lock);
	pthread_mutex_destroy(&rt->tp_stats_lock);
}

/* The steps each rank can fail alone; the caller makes every rank agree on the result. */
static int init_local(struct dsm_rt *rt)
{
	struct dsm_rt_heap_agree ag = {rt, rt->nranks, boot_all_true, boot_allgather_u64};
	int ret;

	ret = dsm_rt_heap_reserve(rt->cfg.heap_size, rt->cfg.line_size,
	                          dsm_rt_heap_strict_setting(), &ag, &rt->heap);
	if (ret < 0)
		return ret;
	/* The home segment, indexed like the heap: memory only for lines homed here and used. */
	ret = dsm_rt_heap_reserve_local(rt->cfg.heap_size, rt->heap.strict, &rt->homeseg);
	if (ret < 0)
		return ret;
	rt->home = rt->homeseg.base;
	/* Under strict overcommit another rank's dsm_alloc memory is closed here until touched. */
	ret = dsm_rt_heap_catch_segv(&rt->heap);
	if (ret < 0)
		return ret;

	ret = dsm_coh_layout_init(&rt->layout, (uintptr_t)rt->heap.base, rt->heap.size,
	                          rt->cfg.line_size, rt->cfg.page_size, (unsigned)rt->nranks);
	if (ret == 0)
		ret = dsm_rt_alloc_init(&rt->alloc, &rt->layout, (unsigned)rt->rank);
	if (ret < 0)
		return ret;
	ret = dsm_rt_region_open(&rt->region, rt->heap.base, rt->heap.size);
	if (ret < 0)
		return ret;
	dsm_coh_actions_init(&rt->acts);
	rt->scratch = malloc(sizeof(dsm_coh_msg_t) + rt->cfg.line_size);
	rt->coll_in = calloc((size_t)rt->nranks, sizeof(*rt->coll_in));
	rt->coll_arrived = calloc((size_t)rt->nranks, 1);
	if (rt->scratch == NULL || rt->coll_in == NULL || rt->coll_arrived == NULL)
		return -ENOMEM;
	return 0;
}

/*
 * How grants carry a line (DSM_DATA): inline in the grant, or by an RDMA read of the home
 * segment. auto: RDMA from 64 KiB lines, where a grant carrying the line costs more than a
 * small grant and a read (measured here: 64 KiB misses 1.3-2x faster by RDMA on shm and
 * tcp; at 4 KiB inline is as fast on shm and 1.7x faster on tcp; BENCHMARKS.md).
 */
static bool want_rdma(const struct dsm_rt *rt)
{
	switch (rt->cfg.data) {
	case DSM_RT_DATA_INLINE:
		return false;
	case DSM_RT_DATA_RDMA:
		return true;
	default:
		return rt->cfg.line_size >= (64u << 10);
	}
}

/* Chunks of the home segment registered at a time, as lines are granted from them. */
#define HOME_REG_CHUNK ((size_t)16 << 20)

/* Every rank makes the same choice (same settings, same provider); the segment is a
 * collective of the transport. Then the engine, which needs the choice. */
static int init_data_path(struct dsm_rt *rt)
{
	dsm_coh_config_t cc = {.rank = (unsigned)rt->rank, .nranks = (unsigned)rt->nranks};
	int ret;

	rt->rdma = want_rdma(rt);
	if (rt->rdma) {
		size_t chunk =
		        HOME_REG_CHUNK < rt->homeseg.size ? HOME_REG_CHUNK : rt->homeseg.size;

		ret = dsm_tp_seg_create(rt->tp, rt->home, rt->homeseg.size, chunk, &rt->tpseg);
		if (ret < 0) {
			DSM_LOG(DSM_LOG_ERROR, "registering the home segment with %s: %s",
			        rt->tp->prov, dsm_strerror(ret));
			return ret;
		}
		cc.data_mode = DSM_COH_DATA_RDMA;
	}
	return dsm_coh_node_create(&cc, &rt->node);
}

static int init_common(const MPI_Comm *comm, const dsm_config_t *cfg)
{
	struct dsm_tp_attr attr = {.struct_size = sizeof(attr)};
	struct dsm_rt *rt;
	int ret;

	if (dsm_rt_g) {
		DSM_LOG(DSM_LOG_ERROR, "dsm_init called twice");
		return DSM_ERR_ALREADY_INIT;
	}
	rt = calloc(1, sizeof(*rt));
	if (rt == NULL)
		return -ENOMEM;
	pthread_mutex_init(&rt->req_lock, NULL);
	pthread_mutex_init(&rt->coll_lock, NULL);
	pthread_mutex_init(&rt->tp_stats_lock, NULL);
	rt->region.uffd = -1;

	/* Settings are checked before MPI starts: a bad one fails every rank alike. */
	ret = dsm_rt_config_resolve(cfg, &rt->cfg);
	if (ret < 0)
		goto fail_free;
	ret = dsm_rt_boot_init(comm);
	if (ret < 0)
		goto fail_free;
	rt->rank = dsm_rt_boot_rank();
	rt->nranks = dsm_rt_boot_size();
	dsm_rt_log_set_rank(rt->rank);

	ret = agree(rt, init_local(rt), "setting up the heap and userfaultfd");
	if (ret < 0)
		goto fail;

	attr.boot = dsm_rt_boot_tp();
	attr.provider = rt->cfg.provider[0] ? rt->cfg.provider : NULL;
	attr.msg_max = sizeof(dsm_coh_msg_t) + rt->cfg.line_size;
	if (attr.msg_max < sizeof(struct dsm_rt_coll_done))
		attr.msg_max = sizeof(struct dsm_rt_coll_done);
	attr.max_msg_type = DSM_RT_MSG_MAX;
	ret = dsm_tp_open(NULL, &attr, &rt->tp);
	ret = agree(rt, ret, "opening the transport");
	if (ret < 0)
		goto fail;
	ret = agree(rt, init_data_path(rt), "setting up the data path and the coherence engine");
	if (ret < 0)
		goto fail;

	rt->hold_ns = us_setting_ns("DSM_HOLD_US", DEFAULT_HOLD_US);
	rt->spin_ns = us_setting_ns("DSM_SPIN_US", DEFAULT_SPIN_US);
	rt->hold_early = bool_setting("DSM_HOLD_EARLY", true);
	rt->woken_line = UINT64_MAX;
	rt->may_spin = node_has_spare_cores(rt);
	ret = agree(rt, dsm_rt_loop_start(rt), "starting the event loop");
	if (ret < 0)
		goto fail;
	dsm_rt_g = rt;
	DSM_LOG(DSM_LOG_INFO,
	        "libdsm up: %d ranks, heap %zu bytes at %p, %zu-byte lines, provider %s, "
	        "lines %s, userfaultfd %s",
	        rt->nranks, rt->heap.size, (void *)rt->heap.base, rt->cfg.line_size, rt->tp->prov,
	        rt->rdma ? "by RDMA read" : "inline", dsm_rt_uffd_mode_name(rt->region.mode));
	/* Nobody faults before every loop runs. */
	dsm_rt_boot_barrier();
	return 0;

fail:
	teardown(rt);
	dsm_rt_boot_fini();
fail_free:
	free(rt);
	return ret;
}

DSM_EXPORT int dsm_init(const dsm_config_t *cfg)
{
	return init_common(NULL, cfg);
}

DSM_EXPORT int dsm_init_comm(MPI_Comm comm, const dsm_config_t *cfg)
{
	int inited = 0;

	MPI_Initialized(&inited);
	if (!inited) {
		DSM_LOG(DSM_LOG_ERROR, "dsm_init_comm needs MPI initialized (or call dsm_init)");
		return -EINVAL;
	}
	return init_common(&comm, cfg);
}

static void fill_stats(struct dsm_rt *rt, dsm_stats_t *s)
{
	struct dsm_tp_stats ts = {0};

	memset(s, 0, sizeof(*s));
	s->struct_size = sizeof(*s);
	pthread_mutex_lock(&rt->tp_stats_lock);
	ts = rt->tp_stats;
	pthread_mutex_unlock(&rt->tp_stats_lock);
	s->read_faults = atomic_load(&rt->cnt.read_faults);
	s->write_faults = atomic_load(&rt->cnt.write_faults);
	s->upgrades = atomic_load(&rt->cnt.upgrades);
	s->inv_sent = atomic_load(&rt->cnt.inv_sent);
	s->inv_received = atomic_load(&rt->cnt.inv_received);
	s->msgs_sent = ts.msgs_sent;
	s->msgs_received = ts.msgs_received;
	s->msgs_dropped = ts.msgs_dropped + atomic_load(&rt->cnt.msgs_dropped);
	s->bytes_sent = atomic_load(&rt->cnt.bytes_sent);
	s->bytes_received = atomic_load(&rt->cnt.bytes_received);
	for (int i = 0; i < DSM_STATS_LAT_BUCKETS; i++)
		s->fault_lat_us[i] = atomic_load(&rt->cnt.lat[i]);
	s->stale_faults = atomic_load(&rt->cnt.stale_faults);
	s->holds = atomic_load(&rt->cnt.holds);
	s->holds_early = atomic_load(&rt->cnt.holds_early);
	s->sleeps = atomic_load(&rt->cnt.sleeps);
	s->naps = atomic_load(&rt->cnt.naps);
	s->missed_wakeups = atomic_load(&rt->cnt.missed_wakeups);
}

/* The smallest latency bound (µs) below which @q of the faults fall. */
static uint64_t lat_quantile(const dsm_stats_t *s, double q)
{
	uint64_t total = 0, seen = 0;

	for (int i = 0; i < DSM_STATS_LAT_BUCKETS; i++)
		total += s->fault_lat_us[i];
	for (int i = 0; i < DSM_STATS_LAT_BUCKETS; i++) {
		seen += s->fault_lat_us[i];
		if (total && seen >= q * (double)total)
			return 1ull << i;
	}
	return 0;
}

static void print_stats_table(struct dsm_rt *rt)
{
	dsm_stats_t mine, *all = calloc((size_t)rt->nranks, sizeof(*all));

	if (all == NULL)
		return;
	fill_stats(rt, &mine);
	if (dsm_rt_boot_allgather(&mine, all, sizeof(mine)) == 0 && rt->rank == 0) {
		printf("libdsm stats (%d ranks, %zu-byte lines, provider %s, lines %s)\n",
		       rt->nranks, rt->cfg.line_size, rt->tp->prov,
		       rt->rdma ? "by RDMA read" : "inline");
		printf("%4s %10s %10s %9s %9s %9s %10s %10s %7s %10s %10s %8s %8s\n", "rank",
		       "rd_faults", "wr_faults", "upgrades", "inv_sent", "inv_recv", "msgs_sent",
		       "msgs_recv", "dropped", "MB_sent", "MB_recv", "p50_us<", "p99_us<");
		for (int r = 0; r < rt->nranks; r++) {
			const dsm_stats_t *s = &all[r];
			printf("%4d %10" PRIu64 " %10" PRIu64 " %9" PRIu64 " %9" PRIu64 " %9" PRIu64
			       " %10" PRIu64 " %10" PRIu64 " %7" PRIu64 " %10.2f %10.2f %8" PRIu64
			       " %8" PRIu64 "\n",
			       r, s->read_faults, s->write_faults, s->upgrades, s->inv_sent,
			       s->inv_received, s->msgs_sent, s->msgs_received, s->msgs_dropped,
			       (double)s->bytes_sent / 1e6, (double)s->bytes_received / 1e6,
			       lat_quantile(s, 0.5), lat_quantile(s, 0.99));
		}
		printf("%4s %10s %10s %11s %10s %10s %14s  %s\n", "rank", "stale", "holds",
		       "holds_early", "sleeps", "naps", "missed_wakeups",
		       "fault latency histogram (us<: count)");
		for (int r = 0; r < rt->nranks; r++) {
			const dsm_stats_t *s = &all[r];
			char hist[512];
			int len = 0;

			hist[0] = '\0';
			for (int i = 0; i < DSM_STATS_LAT_BUCKETS && len < (int)sizeof(hist) - 32;
			     i++)
				if (s->fault_lat_us[i])
					len += snprintf(hist + len, sizeof(hist) - (size_t)len,
					                " %llu:%" PRIu64, 1ull << i,
					                s->fault_lat_us[i]);
			printf("%4d %10" PRIu64 " %10" PRIu64 " %11" PRIu64 " %10" PRIu64
			       " %10" PRIu64 " %14" PRIu64 " %s\n",
			       r, s->stale_faults, s->holds, s->holds_early, s->sleeps, s->naps,
			       s->missed_wakeups, hist);
		}
		fflush(stdout);
	}
	free(all);
}

DSM_EXPORT int dsm_finalize(void)
{
	struct dsm_rt *rt = rt_get("dsm_finalize");
	int ret;

	if (rt == NULL)
		return DSM_ERR_NOT_INIT;
	/* Every rank is here, so every write anywhere is complete and visible. */
	ret = dsm_rt_collective(rt, DSM_RT_COLL_FINALIZE, 0, 0);
	if (ret < 0)
		return ret;
	if (rt->cfg.stats)
		print_stats_table(rt);
	/* Keep serving until every rank has passed the collective, then stop. */
	dsm_rt_boot_barrier();
	dsm_rt_loop_stop(rt);
	dsm_rt_boot_barrier();
	dsm_rt_g = NULL;
	teardown(rt);
	dsm_rt_log_set_rank(-1);
	ret = dsm_rt_boot_fini();
	free(rt);
	return ret;
}

DSM_EXPORT int dsm_rank(void)
{
	struct dsm_rt *rt = rt_get("dsm_rank");

	return rt ? rt->rank : DSM_ERR_NOT_INIT;
}

DSM_EXPORT int dsm_nranks(void)
{
	struct dsm_rt *rt = rt_get("dsm_nranks");

	return rt ? rt->nranks : DSM_ERR_NOT_INIT;
}

/* ---- allocation --------------------------------------------------------------------------- */

static void *fail_errno(int err)
{
	errno = err < 0 ? -err : err;
	return NULL;
}

DSM_EXPORT void *dsm_all_alloc(size_t size, dsm_dist_t dist)
{
	struct dsm_rt *rt = rt_get("dsm_all_alloc");
	void *p = NULL;
	int ret;

	if (rt == NULL)
		return fail_errno(DSM_ERR_NOT_INIT);
	/* The arguments are checked together first: a rank that failed alone would leave the
	 * others waiting. */
	ret = dsm_rt_collective(rt, DSM_RT_COLL_ALL_ALLOC, size, (uint64_t)dist);
	if (ret < 0)
		return fail_errno(ret);
	ret = dsm_rt_alloc_collective(&rt->alloc, size, dist, &p);
	if (ret == 0 && rt->heap.strict)
		ret = dsm_rt_heap_open(&rt->heap, (size_t)((char *)p - rt->heap.base), size);
	if (ret < 0) {
		DSM_LOG(DSM_LOG_ERROR, "dsm_all_alloc(%zu, %d): %s", size, (int)dist,
		        ret == -EINVAL   ? "a size of 0 or an unknown distribution"
		        : ret == -ENOMEM ? "the heap has no room (raise DSM_HEAP_SIZE)"
		                         : dsm_strerror(ret));
		return fail_errno(ret);
	}
	return p;
}

DSM_EXPORT int dsm_all_free(void *p)
{
	struct dsm_rt *rt = rt_get("dsm_all_free");
	int ret;

	if (rt == NULL)
		return DSM_ERR_NOT_INIT;
	ret = dsm_rt_collective(rt, DSM_RT_COLL_ALL_FREE, (uint64_t)(uintptr_t)p, 0);
	if (ret < 0)
		return ret;
	ret = dsm_rt_free_collective(&rt->alloc, p);
	if (ret < 0)
		DSM_LOG(DSM_LOG_ERROR, "dsm_all_free(%p): %s", p,
		        ret == -EINVAL ? "not the start of a live dsm_all_alloc allocation"
		                       : dsm_strerror(ret));
	return ret;
}

DSM_EXPORT void *dsm_alloc(size_t size)
{
	struct dsm_rt *rt = rt_get("dsm_alloc");
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
		                         : dsm_strerror(ret));
		return fail_errno(ret);
	}
	return p;
}

DSM_EXPORT int dsm_free(void *p)
{
	struct dsm_rt *rt = rt_get("dsm_free");
	struct dsm_rt_req req = {.type = DSM_RT_MSG_FREE};
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
		ret = dsm_rt_free_local(&rt->alloc, p);
		if (ret < 0)
			DSM_LOG(DSM_LOG_ERROR, "dsm_free(%p): not allocated, or freed twice", p);
		return ret;
	}
	req.target = owner;
	req.u.free.addr = (uint64_t)(uintptr_t)p;
	return dsm_rt_submit(rt, &req); /* the owner logs a bad free */
}

DSM_EXPORT int dsm_home(const void *addr)
{
	struct dsm_rt *rt = rt_get("dsm_home");
	int64_t line;

	if (rt == NULL)
		return DSM_ERR_NOT_INIT;
	line = dsm_coh_line_of(&rt->layout, (uintptr_t)addr);
	if (line < 0)
		return -EINVAL;
	return dsm_rt_alloc_home(&rt->alloc, (uint64_t)line, NULL);
}

/* ---- synchronization ---------------------------------------------------------------------- */

DSM_EXPORT void dsm_barrier(void)
{
	struct dsm_rt *rt = rt_get("dsm_barrier");

	if (rt)
		dsm_rt_collective(rt, DSM_RT_COLL_BARRIER, 0, 0);
}

static int mutex_op(const char *call, dsm_mutex_t *m, enum dsm_rt_mutex_op op)
{
	struct dsm_rt *rt = rt_get(call);
	struct dsm_rt_req req = {.type = DSM_RT_MSG_MUTEX};
	int home;

	if (rt == NULL)
		return DSM_ERR_NOT_INIT;
	home = dsm_home(m);
	if (home < 0) {
		DSM_LOG(DSM_LOG_ERROR, "%s(%p): a dsm_mutex_t must live in allocated heap memory",
		        call, (void *)m);
		return -EINVAL;
	}
	req.target = home;
	req.u.mutex.op = op;
	req.u.mutex.addr = (uint64_t)(uintptr_t)m;
	return dsm_rt_submit(rt, &req);
}

DSM_EXPORT int dsm_mutex_init(dsm_mutex_t *m)
{
	return mutex_op("dsm_mutex_init", m, DSM_RT_MUTEX_INIT);
}

DSM_EXPORT int dsm_mutex_lock(dsm_mutex_t *m)
{
	return mutex_op("dsm_mutex_lock", m, DSM_RT_MUTEX_LOCK);
}

DSM_EXPORT int dsm_mutex_trylock(dsm_mutex_t *m)
{
	return mutex_op("dsm_mutex_trylock", m, DSM_RT_MUTEX_TRYLOCK);
}

DSM_EXPORT int dsm_mutex_unlock(dsm_mutex_t *m)
{
	return mutex_op("dsm_mutex_unlock", m, DSM_RT_MUTEX_UNLOCK);
}

DSM_EXPORT int dsm_mutex_destroy(dsm_mutex_t *m)
{
	return mutex_op("dsm_mutex_destroy", m, DSM_RT_MUTEX_DESTROY);
}

DSM_EXPORT int dsm_stats(dsm_stats_t *out)
{
	struct dsm_rt *rt = rt_get("dsm_stats");
	dsm_stats_t s;
	size_t n;

	if (rt == NULL)
		return DSM_ERR_NOT_INIT;
	if (out == NULL || out->struct_size < offsetof(dsm_stats_t, fault_lat_us))
		return -EINVAL;
	fill_stats(rt, &s);
	n = out->struct_size < sizeof(s) ? out->struct_size : sizeof(s);
	memcpy((char *)out + sizeof(size_t), (char *)&s + sizeof(size_t), n - sizeof(size_t));
	return 0;
}
