/* SPDX-License-Identifier: MIT */
/*
 * dsm_init and dsm_finalize: the settings, the bootstrap, the heap, the
 * userfaultfd region, the transport, the data path and the engine, and the
 * event loop, in that order, each agreed on by every rank; undone in reverse.
 */
#include <dsm.h>
#include <dsm_mpi.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/error.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/settings.h"
#include "common/time.h"
#include "runtime/api.h"
#include "runtime/bootstrap.h"
#include "runtime/cache.h"
#include "runtime/ckpt.h"
#include "runtime/coll.h"
#include "runtime/death.h"
#include "runtime/engine.h"
#include "runtime/fatal.h"
#include "runtime/free.h"
#include "runtime/hold.h"
#include "runtime/loop.h"
#include "runtime/msg.h"
#include "runtime/mutex.h"
#include "runtime/mw.h"
#include "runtime/prefetch.h"
#include "runtime/profile.h"
#include "runtime/rdma.h"
#include "runtime/rt.h"
#include "runtime/stats.h"

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
				        dsm_err_str(all[r]));
			ret = all[r];
		}
	free(all);
	return ret;
}

/* The ranks on this node, this one included (collective); 0 if that cannot be told. */
static unsigned node_local_ranks(struct dsm_rt *rt)
{
	char me[64] = {0}, *all = calloc((size_t)rt->nranks, sizeof(me));
	unsigned local = 0;

	if (all == NULL)
		return 0;
	gethostname(me, sizeof(me) - 1);
	if (dsm_rt_boot_allgather(me, all, sizeof(me)) == 0)
		for (int r = 0; r < rt->nranks; r++)
			local += strncmp(all + (size_t)r * sizeof(me), me, sizeof(me)) == 0;
	free(all);
	return local;
}

/* ---- settings every rank must share -------------------------------------------------------- */

/* What must be the same on every rank (the heap's layout, the wire), as each resolved it. */
struct shared_settings {
	uint64_t heap_size, line_size, page_size;
	uint32_t data_rdma;
	uint32_t on_death_continue;
	char build[48];   /* libdsm's version, protocol and wire */
	char restart[48]; /* DSM_RESTART, shown (a hash of it, and its end) */
	uint64_t nonce;   /* rank 0's is the job's: checkpoints' ids come from it */
};

static void shared_settings_of(const struct dsm_rt *rt, struct shared_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->heap_size = rt->cfg.heap_size;
	s->line_size = rt->cfg.line_size;
	s->page_size = rt->cfg.page_size;
	s->data_rdma = dsm_rt_config_data_rdma(&rt->cfg);
	s->on_death_continue = rt->cfg.on_death_continue;
	snprintf(s->build, sizeof(s->build), "%d.%d.%d, %s, wire %d", DSM_VERSION_MAJOR,
	         DSM_VERSION_MINOR, DSM_VERSION_PATCH, dsm_coh_protocol_name(),
	         DSM_RT_WIRE_VERSION);
	if (rt->cfg.restart[0]) {
		size_t n = strlen(rt->cfg.restart);

		snprintf(s->restart, sizeof(s->restart), "%s%.24s (%08llx)", n > 24 ? "..." : "",
		         rt->cfg.restart + (n > 24 ? n - 24 : 0),
		         (unsigned long long)(dsm_hash_bytes((const uint8_t *)rt->cfg.restart, n,
		                                             0) &
		                              0xffffffffu));
	} else {
		snprintf(s->restart, sizeof(s->restart), "none");
	}
	s->nonce = rt->ckpt.nonce;
}

static void show_heap(const struct shared_settings *s, char *b, size_t n)
{
	unsigned long long v = s->heap_size;

	if (v && v % (1ull << 30) == 0)
		snprintf(b, n, "%llu GiB", v >> 30);
	else if (v && v % (1ull << 20) == 0)
		snprintf(b, n, "%llu MiB", v >> 20);
	else
		snprintf(b, n, "%llu bytes", v);
}

static void show_line(const struct shared_settings *s, char *b, size_t n)
{
	snprintf(b, n, "%llu", (unsigned long long)s->line_size);
}

static void show_page(const struct shared_settings *s, char *b, size_t n)
{
	snprintf(b, n, "%llu", (unsigned long long)s->page_size);
}

static void show_data(const struct shared_settings *s, char *b, size_t n)
{
	snprintf(b, n, "%s", s->data_rdma ? "rdma" : "inline");
}

static void show_death(const struct shared_settings *s, char *b, size_t n)
{
	snprintf(b, n, "%s", s->on_death_continue ? "continue" : "exit");
}

static void show_build(const struct shared_settings *s, char *b, size_t n)
{
	snprintf(b, n, "%s", s->build);
}

static void show_restart(const struct shared_settings *s, char *b, size_t n)
{
	snprintf(b, n, "%s", s->restart);
}

static const struct {
	const char *name;
	void (*show)(const struct shared_settings *s, char *b, size_t n);
} shared_views[] = {
        {"the heap size (DSM_HEAP_SIZE, dsm_config_t.heap_size)", show_heap},
        {"the line size (DSM_LINE_SIZE, dsm_config_t.line_size)", show_line},
        {"the page size", show_page},
        {"the data path (DSM_DATA, whose auto depends on the line size)", show_data},
        {"what a death does (DSM_ON_DEATH)", show_death},
        {"libdsm (version, protocol, wire)", show_build},
        {"the snapshot to restart from (DSM_RESTART, dsm_config_t.restart)", show_restart},
};

/* Appends the ranks in @all whose value of view @v is @val to @out, as "0, 2-5". */
static void ranks_with(const struct shared_settings *all, int nranks, unsigned v, const char *val,
                       char *out, size_t n)
{
	size_t len = strlen(out);

	for (int r = 0; r < nranks && len + 24 < n; r++) {
		char b[64];
		int last = r;

		shared_views[v].show(&all[r], b, sizeof(b));
		if (strcmp(b, val) != 0)
			continue;
		while (last + 1 < nranks) {
			char c[64];

			shared_views[v].show(&all[last + 1], c, sizeof(c));
			if (strcmp(c, val) != 0)
				break;
			last++;
		}
		len += (size_t)snprintf(out + len, n - len, last > r ? "%s%d-%d" : "%s%d",
		                        out[0] ? ", " : "", r, last);
		r = last;
	}
	if (len + 24 >= n)
		snprintf(out + len, n - len, ", ...");
}

/*
 * Every rank compares what must be shared with every other rank's, before anything
 * depends on it: a difference would give ranks different heaps, or a wire one side cannot
 * read. Each difference fails dsm_init on every rank; rank 0 says which ranks have which
 * value, a rank that differs from rank 0 says its own.
 */
static int settings_agree(struct dsm_rt *rt)
{
	struct shared_settings mine, *all = calloc((size_t)rt->nranks, sizeof(*all));
	int ret;

	if (all == NULL)
		return -ENOMEM;
	shared_settings_of(rt, &mine);
	ret = dsm_rt_boot_allgather(&mine, all, sizeof(mine));
	if (ret == 0)
		rt->ckpt.nonce = all[0].nonce;
	for (unsigned v = 0; ret == 0 && v < sizeof(shared_views) / sizeof(shared_views[0]); v++) {
		char v0[64], b[64], says[512] = "";
		bool same = true;

		shared_views[v].show(&all[0], v0, sizeof(v0));
		for (int r = 1; r < rt->nranks && same; r++) {
			shared_views[v].show(&all[r], b, sizeof(b));
			same = strcmp(b, v0) == 0;
		}
		if (same)
			continue;
		ret = -EINVAL;
		shared_views[v].show(&mine, b, sizeof(b));
		if (rt->rank == 0) {
			/* The values in order of their first rank: rank 0's, then the others. */
			for (int r = 0; r < rt->nranks; r++) {
				char val[64], ranks[256] = "";
				bool seen = false;

				shared_views[v].show(&all[r], val, sizeof(val));
				for (int q = 0; q < r && !seen; q++) {
					char c[64];

					shared_views[v].show(&all[q], c, sizeof(c));
					seen = strcmp(c, val) == 0;
				}
				if (seen)
					continue;
				if (strlen(says) + 64 >= sizeof(says)) {
					snprintf(says + strlen(says), sizeof(says) - strlen(says),
					         "; and more");
					break;
				}
				ranks_with(all, rt->nranks, v, val, ranks, sizeof(ranks));
				snprintf(says + strlen(says), sizeof(says) - strlen(says),
				         "%s%s on rank%s %s", says[0] ? "; " : "", val,
				         strchr(ranks, ',') || strchr(ranks, '-') ? "s" : "",
				         ranks);
			}
			DSM_LOG(DSM_LOG_ERROR,
			        "%s differs between ranks: %s. Every rank must use the same: look "
			        "for an -env of mpiexec or an srun --export given to some ranks "
			        "only, a dsm_config_t set differently, or another libdsm",
			        shared_views[v].name, says);
		} else if (strcmp(b, v0) != 0) {
			DSM_LOG(DSM_LOG_ERROR,
			        "%s is %s here and %s on rank 0, which lists every rank's",
			        shared_views[v].name, b, v0);
		}
	}
	free(all);
	return ret;
}

/* ---- init and finalize -------------------------------------------------------------------- */

/* Undoes init in reverse; every step copes with a part that never came up. */
static void teardown(struct dsm_rt *rt)
{
	/* Registrations go before the transport, and before the memory they cover. */
	dsm_rt_rdma_fini(rt);
	if (rt->tp)
		dsm_tp_close(rt->tp);
	dsm_rt_engine_fini(rt);
	dsm_rt_region_close(&rt->region);
	dsm_rt_alloc_fini(&rt->alloc);
	dsm_rt_heap_release_segv();
	dsm_rt_heap_release(&rt->homeseg);
	dsm_rt_heap_release(&rt->heap);
	dsm_rt_mw_fini(rt);
	dsm_rt_ckpt_fini(rt);
	dsm_rt_free_fini(rt);
	dsm_rt_death_fini(rt);
	dsm_rt_mutex_fini(rt);
	dsm_rt_coll_fini(rt);
	dsm_rt_prefetch_fini(rt);
	dsm_rt_holds_fini(rt);
	dsm_rt_msg_fini(rt);
	dsm_rt_stats_fini(rt);
	dsm_rt_cache_fini(rt);
	dsm_rt_prof_fini(rt);
}

/* The steps each rank can fail alone; the caller makes every rank agree on the result. */
static int init_local(struct dsm_rt *rt)
{
	struct dsm_rt_heap_agree ag = {rt, rt->nranks, boot_all_true, boot_allgather_u64};
	int ret;

	ret = dsm_rt_prof_init(rt);
	if (ret < 0)
		return ret;
	ret = dsm_rt_cache_init(rt);
	if (ret < 0)
		return ret;
	/* A restart checks its settings against the snapshot, whose address the heap takes. */
	ret = dsm_rt_ckpt_restart_check(rt);
	if (ret < 0)
		return ret;
	ret = dsm_rt_heap_reserve_at(rt->cfg.heap_size, rt->cfg.line_size, rt->cfg.overcommit,
	                             rt->ckpt.restart_m.heap_base, &ag, &rt->heap);
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
	rt->alloc.quarantine = rt->cfg.debug_free;
	ret = dsm_rt_region_open(&rt->region, rt->heap.base, rt->heap.size);
	if (ret < 0)
		return ret;
	ret = dsm_rt_msg_init(rt);
	if (ret == 0)
		ret = dsm_rt_coll_init(rt);
	if (ret < 0)
		return ret;
	ret = dsm_rt_mutex_init(rt);
	if (ret == 0)
		ret = dsm_rt_mw_init(rt);
	if (ret == 0)
		ret = dsm_rt_death_init(rt);
	if (ret == 0)
		ret = dsm_rt_ckpt_init(rt);
	if (ret < 0)
		return ret;
	dsm_rt_api_init(rt);
	dsm_rt_free_init(rt);
	dsm_rt_stats_msg_init(rt);
	dsm_rt_holds_init(rt);
	return dsm_rt_prefetch_init(rt, rt->cfg.prefetch_lines);
}

/* The transport, collectively: the provider, the largest message, our message types. */
static int open_transport(struct dsm_rt *rt)
{
	struct dsm_tp_attr attr = {.struct_size = sizeof(attr)};

	attr.boot = dsm_rt_boot_tp();
	attr.provider = rt->cfg.provider[0] ? rt->cfg.provider : NULL;
	attr.msg_max = dsm_rt_msg_max(rt->cfg.line_size);
	if (attr.msg_max < dsm_rt_mw_msg_max(rt->cfg.line_size))
		attr.msg_max = dsm_rt_mw_msg_max(rt->cfg.line_size);
	if (attr.msg_max < sizeof(struct dsm_rt_coll_round))
		attr.msg_max = sizeof(struct dsm_rt_coll_round);
	attr.max_msg_type = DSM_RT_MSG_MAX;
	return dsm_tp_open(NULL, &attr, &rt->tp);
}

/* The data path decides how the engine grants; then the engine. */
static int init_protocol(struct dsm_rt *rt)
{
	int ret = dsm_rt_rdma_init(rt);

	return ret < 0 ? ret : dsm_rt_engine_init(rt);
}

static int init_common(const MPI_Comm *comm, const dsm_config_t *cfg)
{
	struct dsm_rt *rt;
	unsigned local;
	int ret, started;

	if (atomic_load_explicit(&dsm_rt_g, memory_order_acquire)) {
		DSM_LOG(DSM_LOG_ERROR, "dsm_init called twice");
		return DSM_ERR_ALREADY_INIT;
	}
	rt = calloc(1, sizeof(*rt));
	if (rt == NULL)
		return -ENOMEM;
	rt->region.uffd = -1;
	rt->region.pagemap = -1;
	rt->mw.region.uffd = -1;
	rt->mw.region.pagemap = -1;
	rt->msg.evfd = -1;
	rt->ckpt.fd = -1;
	if (getrandom(&rt->ckpt.nonce, sizeof(rt->ckpt.nonce), 0) != sizeof(rt->ckpt.nonce))
		rt->ckpt.nonce = dsm_hash64(dsm_now_ns() ^ (uint64_t)getpid());
	dsm_rt_stats_init(rt);

	/* Settings are checked before MPI starts: a bad one fails every rank alike. */
	ret = dsm_rt_config_resolve(cfg, &rt->cfg);
	if (ret < 0)
		goto fail_free;
	ret = dsm_rt_boot_init(comm);
	if (ret < 0)
		goto fail_free;
	rt->rank = dsm_rt_boot_rank();
	rt->nranks = dsm_rt_boot_size();
	dsm_log_set_rank(rt->rank);

	ret = settings_agree(rt);
	if (ret < 0)
		goto fail;
	local = node_local_ranks(rt);
	if (rt->cfg.cache_auto)
		rt->cfg.cache_bytes = dsm_setting_cache_auto(local);
	ret = agree(rt, init_local(rt), "setting up the heap and userfaultfd");
	if (ret < 0)
		goto fail;
	ret = agree(rt, open_transport(rt), "opening the transport");
	if (ret < 0)
		goto fail;
	ret = agree(rt, init_protocol(rt), "setting up the data path and the coherence engine");
	if (ret < 0)
		goto fail;
	/* DSM_RESTART: every rank restores, or none starts. */
	ret = agree(rt, dsm_rt_ckpt_restore(rt), "restoring the snapshot (DSM_RESTART)");
	if (ret < 0)
		goto fail;

	rt->loop.spin_ns = rt->cfg.spin_ns;
	rt->loop.wait_ns = rt->cfg.wait_ns;
	/* Ranks on this node <= cores: the loop may spin briefly for a due reply (TRAPS.md). */
	rt->loop.may_spin = local > 0 && local <= (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	started = dsm_rt_loop_start(rt);
	ret = agree(rt, started, "starting the event loop");
	if (ret < 0) {
		/* Another rank's loop failed: ours must not run on what teardown frees. */
		if (started == 0)
			dsm_rt_loop_stop(rt);
		goto fail;
	}
	atomic_store_explicit(&dsm_rt_g, rt, memory_order_release);
	dsm_rt_exit_guard();
	DSM_LOG(DSM_LOG_INFO,
	        "libdsm up: %d ranks, heap %zu bytes at %p, %zu-byte lines, provider %s, "
	        "lines %s, userfaultfd %s",
	        rt->nranks, rt->heap.size, (void *)rt->heap.base, rt->cfg.line_size, rt->tp->prov,
	        rt->rdma.on ? "by RDMA read" : "inline", dsm_uffd_mode_name(rt->region.mode));
	/* Nobody faults before every loop runs. */
	dsm_rt_boot_barrier();
	return 0;

fail:
	teardown(rt);
	dsm_rt_boot_fini();
	free(rt);
	return ret;
fail_free:
	dsm_rt_stats_fini(rt);
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

/*
 * DSM_ON_DEATH=continue: a rank may die at any point here, and MPI's collectives would then
 * wait for it for ever, MPI_Finalize included. The ranks meet through libdsm's own
 * collectives, which go on among the survivors, and after a death leave MPI as it is
 * (README, "When a rank dies").
 */
static int finalize_continue(struct dsm_rt *rt)
{
	int ndead, ret = 0;

	/* Keep serving until every live rank has passed the collective, then stop. */
	if (dsm_rt_collective(rt, DSM_RT_COLL_BARRIER, 0, 0) < 0)
		DSM_LOG(DSM_LOG_WARN, "dsm_finalize: the last barrier failed");
	/* MPI would wait for a dead rank, and a rank may learn of a death later than another:
	 * the counters go through libdsm's own messages here, death or not. */
	if (rt->cfg.stats)
		dsm_rt_stats_print_survivors(rt);
	dsm_rt_loop_stop(rt);
	ndead = atomic_load(&rt->death.ndead); /* the loop, which learns of deaths, is done */
	dsm_rt_prof_write(rt);
	atomic_store_explicit(&dsm_rt_g, NULL, memory_order_release);
	teardown(rt);
	if (ndead == 0)
		ret = dsm_rt_boot_fini();
	else
		DSM_LOG(DSM_LOG_WARN,
		        "dsm_finalize: %d rank%s died, so MPI is not finalized (MPI_Finalize would "
		        "wait for %s); exit without calling MPI",
		        ndead, ndead > 1 ? "s" : "", ndead > 1 ? "them" : "it");
	dsm_log_set_rank(-1);
	free(rt);
	return ret;
}

DSM_EXPORT int dsm_finalize(void)
{
	struct dsm_rt *rt = dsm_rt_get("dsm_finalize");
	int ret;

	if (rt == NULL)
		return DSM_ERR_NOT_INIT;
	/* A snapshot being written becomes durable first. */
	if (dsm_rt_ckpt_wait(rt) < 0)
		DSM_LOG(DSM_LOG_WARN, "dsm_finalize: the last checkpoint is not durable");
	/* This rank's writes to multiple-writer memory reach their homes first. */
	dsm_rt_mw_release(rt);
	/* No grant may come after the loops stop: what was prefetched arrives first. */
	dsm_rt_prefetch_quiesce(rt);
	/* Every rank is here, so every write anywhere is complete and visible. */
	ret = dsm_rt_collective(rt, DSM_RT_COLL_FINALIZE, 0, 0);
	if (ret < 0)
		return ret;
	if (rt->death.cont)
		return finalize_continue(rt);
	if (rt->cfg.stats)
		dsm_rt_stats_print(rt);
	/* Keep serving until every rank has passed the collective, then stop. */
	dsm_rt_boot_barrier();
	dsm_rt_loop_stop(rt);
	dsm_rt_prof_write(rt);
	dsm_rt_boot_barrier();
	atomic_store_explicit(&dsm_rt_g, NULL, memory_order_release);
	teardown(rt);
	dsm_log_set_rank(-1);
	ret = dsm_rt_boot_fini();
	free(rt);
	return ret;
}
