/* SPDX-License-Identifier: MIT */
/*
 * The runtime's settings: dsm_config_t fields, else the DSM_* environment
 * (through the registry, common/settings.h), else defaults; validated once,
 * with one log line naming the bad setting.
 */
#ifndef DSM_RT_CONFIG_H
#define DSM_RT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dsm.h>

#define DSM_RT_DEFAULT_HEAP_SIZE (16ull << 40) /* 16 TiB of address space */
#define DSM_RT_MAX_HEAP_SIZE     (64ull << 40) /* half of x86-64's 47-bit user space */
#define DSM_RT_MAX_LINE_SIZE     (1ull << 30)
/*
 * DSM_PREFETCH=auto: windows of up to AUTO_BYTES and at most AUTO_LINES lines, but of
 * AUTO_MIN_LINES where those fit in AUTO_MAX_BYTES: a miss of a large line costs more than
 * the window's bytes take to arrive, so a window of 4 such lines keeps the pipe empty half
 * the time (BENCHMARKS.md: 64 KiB lines scan 1.1-1.3x faster with 16).
 */
#define DSM_RT_PREFETCH_AUTO_BYTES     (256u << 10)
#define DSM_RT_PREFETCH_AUTO_LINES     64u
#define DSM_RT_PREFETCH_AUTO_MIN_LINES 16u
#define DSM_RT_PREFETCH_AUTO_MAX_BYTES (1u << 20)

/* DSM_DATA: how a grant carries its line (the registry's order). AUTO picks per line size. */
enum dsm_rt_data { DSM_RT_DATA_AUTO = 0, DSM_RT_DATA_INLINE, DSM_RT_DATA_RDMA };

struct dsm_rt_config {
	size_t heap_size;
	size_t line_size;
	size_t page_size;
	char provider[64]; /* "" = choose the best available */
	int log_level;
	bool stats;
	bool debug_free;  /* DSM_DEBUG_FREE: freed dsm_alloc memory is never reused */
	int data;         /* enum dsm_rt_data (DSM_DATA) */
	int overcommit;   /* DSM_OVERCOMMIT: -1 read vm.overcommit_memory, 1 strict, 0 lazy */
	uint64_t hold_ns; /* DSM_HOLD_US */
	uint64_t spin_ns; /* DSM_SPIN_US */
	uint64_t wait_ns; /* DSM_WAIT_US */
	bool hold_early;  /* DSM_HOLD_EARLY */
	bool migratory;   /* DSM_MIGRATORY: this rank's homes grant migratory lines exclusive */
	bool on_death_continue;  /* DSM_ON_DEATH=continue: survivors outlive a dead rank */
	unsigned prefetch_lines; /* DSM_PREFETCH: most lines a read-ahead window holds; 0: off */
	int mw_track;            /* DSM_MW_TRACK: 0 auto, 1 twin, 2 async */
	/* DSM_CACHE_SIZE or dsm_config_t.cache_size: bytes, 0 unlimited; cache_auto: not
	 * chosen yet (init: half the node's memory over the ranks on it). */
	size_t cache_bytes;
	bool cache_auto;
	char restart[4096];     /* DSM_RESTART or dsm_config_t.restart: a snapshot; "" none */
	uint64_t ckpt_rate;     /* DSM_CKPT_RATE: bytes/s of a snapshot's writer; 0 unlimited */
	uint64_t restart_round; /* DSM_RESTART_ROUND: bytes a rank sends per round of a restart */
};

/*
 * Fills @out from @user (may be NULL) and the environment, after checking every DSM_*
 * setting. Returns 0, or -EINVAL with one log line per bad setting that names it and what
 * is wrong with it.
 */
int dsm_rt_config_resolve(const dsm_config_t *user, struct dsm_rt_config *out);

/* Whether grants carry lines by RDMA read (DSM_DATA, and for auto the line size). */
bool dsm_rt_config_data_rdma(const struct dsm_rt_config *c);

#endif
