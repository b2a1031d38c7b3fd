/* SPDX-License-Identifier: MIT */
#include "runtime/stats.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coherence/coherence.h"
#include "common/log.h"
#include "runtime/bootstrap.h"
#include "runtime/coll.h"
#include "runtime/decode.h"
#include "runtime/loop.h"
#include "runtime/msg.h"
#include "runtime/rt.h"

void dsm_rt_stats_init(struct dsm_rt *rt)
{
	pthread_mutex_init(&rt->stats.tp_lock, NULL);
}

void dsm_rt_stats_fini(struct dsm_rt *rt)
{
	free(rt->stats.all);
	rt->stats.all = NULL;
	pthread_mutex_destroy(&rt->stats.tp_lock);
}

void dsm_rt_count_coh(struct dsm_rt *rt, unsigned counter)
{
	atomic_uint_fast64_t *c = NULL;

	switch (counter) {
	case DSM_COH_CNT_READ_FAULT:
		if (rt->pf.issuing)
			return; /* a prefetch, counted as one */
		c = &rt->stats.cnt.read_faults;
		break;
	case DSM_COH_CNT_WRITE_FAULT:
		c = &rt->stats.cnt.write_faults;
		break;
	case DSM_COH_CNT_UPGRADE:
		c = &rt->stats.cnt.upgrades;
		break;
	case DSM_COH_CNT_STALE_FAULT:
		c = &rt->stats.cnt.stale_faults;
		break;
	case DSM_COH_CNT_INV_SENT:
		c = &rt->stats.cnt.inv_sent;
		break;
	case DSM_COH_CNT_INV_RECEIVED:
		c = &rt->stats.cnt.inv_received;
		break;
	case DSM_COH_CNT_MIGRATORY:
		c = &rt->stats.cnt.migratory_grants;
		break;
	case DSM_COH_CNT_EXCL_WRITE:
		c = &rt->stats.cnt.exclusive_writes;
		break;
	case DSM_COH_CNT_CLEAN_WB:
		c = &rt->stats.cnt.clean_writebacks;
		break;
	case DSM_COH_CNT_EVICT_CLEAN:
		c = &rt->stats.cnt.evictions_clean;
		break;
	case DSM_COH_CNT_EVICT_DIRTY:
		c = &rt->stats.cnt.evictions_dirty;
		break;
	case DSM_COH_CNT_ADOPTED:
		c = &rt->stats.cnt.adopted_copies;
		break;
	case DSM_COH_CNT_LOST:
		c = &rt->stats.cnt.lost_lines;
		break;
	default:
		return;
	}
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

void dsm_rt_count_latency(struct dsm_rt *rt, uint64_t ns)
{
	uint64_t us = ns / 1000;
	unsigned b = us ? 64 - (unsigned)__builtin_clzll(us) : 0;

	if (b >= DSM_STATS_LAT_BUCKETS)
		b = DSM_STATS_LAT_BUCKETS - 1;
	DSM_RT_COUNT(rt, lat[b], 1);
}

void dsm_rt_stats_publish(struct dsm_rt *rt)
{
	struct dsm_tp_stats ts = {0};

	dsm_tp_stats(rt->tp, &ts);
	pthread_mutex_lock(&rt->stats.tp_lock);
	rt->stats.tp = ts;
	pthread_mutex_unlock(&rt->stats.tp_lock);
}

static void fill_stats(struct dsm_rt *rt, dsm_stats_t *s)
{
	struct dsm_tp_stats ts = {0};

	memset(s, 0, sizeof(*s));
	s->struct_size = sizeof(*s);
	pthread_mutex_lock(&rt->stats.tp_lock);
	ts = rt->stats.tp;
	pthread_mutex_unlock(&rt->stats.tp_lock);
	s->read_faults = atomic_load(&rt->stats.cnt.read_faults);
	s->write_faults = atomic_load(&rt->stats.cnt.write_faults);
	s->upgrades = atomic_load(&rt->stats.cnt.upgrades);
	s->inv_sent = atomic_load(&rt->stats.cnt.inv_sent);
	s->inv_received = atomic_load(&rt->stats.cnt.inv_received);
	s->msgs_sent = ts.msgs_sent;
	s->msgs_received = ts.msgs_received;
	s->msgs_dropped = ts.msgs_dropped + atomic_load(&rt->stats.cnt.msgs_dropped);
	s->bytes_sent = atomic_load(&rt->stats.cnt.bytes_sent);
	s->bytes_received = atomic_load(&rt->stats.cnt.bytes_received);
	for (int i = 0; i < DSM_STATS_LAT_BUCKETS; i++)
		s->fault_lat_us[i] = atomic_load(&rt->stats.cnt.lat[i]);
	s->stale_faults = atomic_load(&rt->stats.cnt.stale_faults);
	s->holds = atomic_load(&rt->stats.cnt.holds);
	s->holds_early = atomic_load(&rt->stats.cnt.holds_early);
	s->sleeps = atomic_load(&rt->stats.cnt.sleeps);
	s->naps = atomic_load(&rt->stats.cnt.naps);
	s->missed_wakeups = atomic_load(&rt->stats.cnt.missed_wakeups);
	s->lock_local = atomic_load(&rt->stats.cnt.lock_local);
	s->lock_remote = atomic_load(&rt->stats.cnt.lock_remote);
	s->lock_handoffs = atomic_load(&rt->stats.cnt.lock_handoffs);
	s->barriers = atomic_load(&rt->stats.cnt.barriers);
	s->barrier_ns = atomic_load(&rt->stats.cnt.barrier_ns);
	s->barrier_ns_max = atomic_load(&rt->stats.cnt.barrier_ns_max);
	s->prefetched = atomic_load(&rt->stats.cnt.prefetched);
	s->prefetch_used = atomic_load(&rt->stats.cnt.prefetch_used);
	s->prefetch_wasted = atomic_load(&rt->stats.cnt.prefetch_wasted);
	s->install_runs = atomic_load(&rt->stats.cnt.install_runs);
	s->install_run_lines = atomic_load(&rt->stats.cnt.install_run_lines);
	s->migratory_grants = atomic_load(&rt->stats.cnt.migratory_grants);
	s->exclusive_writes = atomic_load(&rt->stats.cnt.exclusive_writes);
	s->clean_writebacks = atomic_load(&rt->stats.cnt.clean_writebacks);
	s->mw_faults = atomic_load(&rt->stats.cnt.mw_faults);
	s->mw_twins = atomic_load(&rt->stats.cnt.mw_twins);
	s->diffs_sent = atomic_load(&rt->stats.cnt.diffs_sent);
	s->diffs_merged = atomic_load(&rt->stats.cnt.diffs_merged);
	s->diff_bytes = atomic_load(&rt->stats.cnt.diff_bytes);
	s->mw_invalidations = atomic_load(&rt->stats.cnt.mw_invalidations);
	s->releases = atomic_load(&rt->stats.cnt.releases);
	s->acquires = atomic_load(&rt->stats.cnt.acquires);
	s->evictions_clean = atomic_load(&rt->stats.cnt.evictions_clean);
	s->evictions_dirty = atomic_load(&rt->stats.cnt.evictions_dirty);
	s->writeback_bytes = s->evictions_dirty * rt->cfg.line_size;
	s->cache_bytes = atomic_load(&rt->cache.lines) * rt->cfg.line_size;
	s->cache_hwm_bytes = atomic_load(&rt->cache.hwm) * rt->cfg.line_size;
	s->cache_limit_bytes = rt->cache.limit * rt->cfg.line_size;
	s->msgs_rejected = ts.msgs_rejected;
	s->dead_ranks = (uint64_t)atomic_load(&rt->death.ndead);
	s->adopted_copies = atomic_load(&rt->stats.cnt.adopted_copies);
	s->lost_lines = atomic_load(&rt->stats.cnt.lost_lines);
	s->checkpoints = atomic_load(&rt->ckpt.count);
	s->ckpt_pause_ns = atomic_load(&rt->ckpt.pause_ns);
	s->ckpt_pause_ns_max = atomic_load(&rt->ckpt.pause_ns_max);
	s->ckpt_lines = atomic_load(&rt->ckpt.lines);
	s->ckpt_copied = atomic_load(&rt->stats.cnt.ckpt_copied);
	s->ckpt_write_ns = atomic_load(&rt->ckpt.write_ns);
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

/* The six tables of every rank's counters in @all; @dead: the ranks whose rows are empty. */
static void print_tables(struct dsm_rt *rt, const dsm_stats_t *all, const char *dead)
{
	{
		printf("libdsm stats (%d ranks, %zu-byte lines, provider %s, lines %s)%s\n",
		       rt->nranks, rt->cfg.line_size, rt->tp->prov,
		       rt->rdma.on ? "by RDMA read" : "inline", dead);
		printf("%4s %10s %10s %9s %9s %9s %10s %10s %7s %8s %10s %10s %8s %8s\n", "rank",
		       "rd_faults", "wr_faults", "upgrades", "inv_sent", "inv_recv", "msgs_sent",
		       "msgs_recv", "dropped", "rejected", "MB_sent", "MB_recv", "p50_us<",
		       "p99_us<");
		for (int r = 0; r < rt->nranks; r++) {
			const dsm_stats_t *s = &all[r];
			printf("%4d %10" PRIu64 " %10" PRIu64 " %9" PRIu64 " %9" PRIu64 " %9" PRIu64
			       " %10" PRIu64 " %10" PRIu64 " %7" PRIu64 " %8" PRIu64
			       " %10.2f %10.2f %8" PRIu64 " %8" PRIu64 "\n",
			       r, s->read_faults, s->write_faults, s->upgrades, s->inv_sent,
			       s->inv_received, s->msgs_sent, s->msgs_received, s->msgs_dropped,
			       s->msgs_rejected, (double)s->bytes_sent / 1e6,
			       (double)s->bytes_received / 1e6, lat_quantile(s, 0.5),
			       lat_quantile(s, 0.99));
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
		printf("%4s %10s %11s %13s %10s %14s %14s\n", "rank", "lock_local", "lock_remote",
		       "lock_handoffs", "barriers", "barrier_avg_us", "barrier_max_us");
		for (int r = 0; r < rt->nranks; r++) {
			const dsm_stats_t *s = &all[r];

			printf("%4d %10" PRIu64 " %11" PRIu64 " %13" PRIu64 " %10" PRIu64
			       " %14.1f %14.1f\n",
			       r, s->lock_local, s->lock_remote, s->lock_handoffs, s->barriers,
			       s->barriers ? (double)s->barrier_ns / (double)s->barriers / 1e3
			                   : 0.0,
			       (double)s->barrier_ns_max / 1e3);
		}
		printf("%4s %10s %10s %10s %12s %12s %10s %10s %10s\n", "rank", "prefetched",
		       "pf_used", "pf_wasted", "install_runs", "run_lines", "migratory", "excl_wr",
		       "clean_wb");
		for (int r = 0; r < rt->nranks; r++)
			printf("%4d %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %12" PRIu64
			       " %12" PRIu64 " %10" PRIu64 " %10" PRIu64 " %10" PRIu64 "\n",
			       r, all[r].prefetched, all[r].prefetch_used, all[r].prefetch_wasted,
			       all[r].install_runs, all[r].install_run_lines,
			       all[r].migratory_grants, all[r].exclusive_writes,
			       all[r].clean_writebacks);
		printf("%4s %10s %10s %10s %12s %10s %10s %10s %10s\n", "rank", "mw_faults",
		       "mw_twins", "diffs_sent", "diffs_merged", "diff_MB", "mw_inval", "releases",
		       "acquires");
		for (int r = 0; r < rt->nranks; r++)
			printf("%4d %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %12" PRIu64
			       " %10.2f %10" PRIu64 " %10" PRIu64 " %10" PRIu64 "\n",
			       r, all[r].mw_faults, all[r].mw_twins, all[r].diffs_sent,
			       all[r].diffs_merged, (double)all[r].diff_bytes / 1e6,
			       all[r].mw_invalidations, all[r].releases, all[r].acquires);
		printf("%4s %10s %10s %10s %10s %10s %10s\n", "rank", "evict_cln", "evict_drt",
		       "wb_MB", "cache_MB", "cache_hwm", "cache_max");
		for (int r = 0; r < rt->nranks; r++) {
			const dsm_stats_t *s = &all[r];
			char lim[16] = "unlimited";

			if (s->cache_limit_bytes)
				snprintf(lim, sizeof(lim), "%.1f",
				         (double)s->cache_limit_bytes / 1e6);
			printf("%4d %10" PRIu64 " %10" PRIu64 " %10.2f %10.2f %10.2f %10s\n", r,
			       s->evictions_clean, s->evictions_dirty,
			       (double)s->writeback_bytes / 1e6, (double)s->cache_bytes / 1e6,
			       (double)s->cache_hwm_bytes / 1e6, lim);
		}
		fflush(stdout);
	}
}

void dsm_rt_stats_print(struct dsm_rt *rt)
{
	dsm_stats_t mine, *all = calloc((size_t)rt->nranks, sizeof(*all));

	if (all == NULL)
		return;
	fill_stats(rt, &mine);
	if (dsm_rt_boot_allgather(&mine, all, sizeof(mine)) == 0 && rt->rank == 0)
		print_tables(rt, all, "");
	free(all);
}

/* ---- DSM_ON_DEATH=continue: through the coordinator, not MPI ----------------------------- */

/* At the coordinator (the lowest live rank), which prints: a survivor's counters. */
static void on_stats(struct dsm_rt *rt, int src, const void *data, size_t len)
{
	struct dsm_rt_stats_msg m;

	/* m is the message also where it is refused: its token is answered. */
	if (dsm_rt_decode_stats(data, len, &m) < 0 || dsm_rt_coll_coordinator(rt) != rt->rank) {
		dsm_rt_msg_malformed(rt, src, DSM_RT_MSG_STATS, len);
		dsm_rt_reply(rt, src, m.token, -EINVAL);
		return;
	}
	pthread_mutex_lock(&rt->stats.tp_lock);
	if (rt->stats.all == NULL)
		rt->stats.all = calloc((size_t)rt->nranks, sizeof(*rt->stats.all));
	if (rt->stats.all)
		rt->stats.all[src] = m.s;
	pthread_mutex_unlock(&rt->stats.tp_lock);
	dsm_rt_reply(rt, src, m.token, rt->stats.all ? 0 : -ENOMEM);
}

void dsm_rt_stats_msg_init(struct dsm_rt *rt)
{
	dsm_rt_msg_on(rt, DSM_RT_MSG_STATS, sizeof(struct dsm_rt_stats_msg), on_stats);
}

void dsm_rt_stats_print_survivors(struct dsm_rt *rt)
{
	struct dsm_rt_req req = {
	        .type = DSM_RT_MSG_STATS, .len = sizeof(req.u.stats), .answer = DSM_RT_MSG_REPLY};
	char dead[256] = "";
	size_t len = 0;

	fill_stats(rt, &req.u.stats.s);
	req.u.stats.s.struct_size = sizeof(req.u.stats.s);
	req.token = &req.u.stats.token;
	req.target = dsm_rt_coll_coordinator(rt);
	if (dsm_rt_submit(rt, &req) < 0)
		DSM_LOG(DSM_LOG_WARN, "DSM_STATS: this rank's counters did not reach rank %d",
		        req.target);
	/* Every survivor's counters are at the coordinator once each has passed this. */
	if (dsm_rt_collective(rt, DSM_RT_COLL_BARRIER, 0, 0) < 0 ||
	    dsm_rt_coll_coordinator(rt) != rt->rank)
		return;
	pthread_mutex_lock(&rt->stats.tp_lock);
	for (int r = 0; r < rt->nranks && len < sizeof(dead) - 16; r++)
		if (rt->stats.all == NULL || rt->stats.all[r].struct_size == 0)
			len += (size_t)snprintf(dead + len, sizeof(dead) - len, "%s%d",
			                        len ? ", " : "; no counters from rank ", r);
	if (rt->stats.all)
		print_tables(rt, rt->stats.all, dead);
	pthread_mutex_unlock(&rt->stats.tp_lock);
}

DSM_EXPORT int dsm_stats(dsm_stats_t *out)
{
	struct dsm_rt *rt = dsm_rt_get("dsm_stats");
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
