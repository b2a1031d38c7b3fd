/* SPDX-License-Identifier: MIT */
#include "runtime/config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/settings.h"

/* The size of the first published dsm_config_t: older programs pass no less. */
#define CONFIG_V0_SIZE (offsetof(dsm_config_t, provider) + sizeof(const char *))

static bool struct_tail_is_zero(const dsm_config_t *user)
{
	const unsigned char *p = (const unsigned char *)user;

	for (size_t i = sizeof(*user); i < user->struct_size; i++)
		if (p[i])
			return false;
	return true;
}

/* A size from the program's field if it set one, else from the registry. */
static int size_setting(size_t field, enum dsm_setting_id id, size_t dflt, size_t *out_p)
{
	uint64_t v;
	bool set;
	int ret;

	if (field) {
		*out_p = field;
		return 0;
	}
	ret = dsm_setting_u64(id, &v, &set);
	if (ret < 0)
		return ret;
	*out_p = set || dflt == 0 ? (size_t)v : dflt;
	return 0;
}

/*
 * auto: RDMA from 64 KiB lines, where a grant carrying the line costs more than a small
 * grant and a read (measured here: 64 KiB misses 1.3-2x faster by RDMA on shm and tcp; at
 * 4 KiB inline is as fast on shm and 1.7x faster on tcp; BENCHMARKS.md).
 */
bool dsm_rt_config_data_rdma(const struct dsm_rt_config *c)
{
	switch (c->data) {
	case DSM_RT_DATA_INLINE:
		return false;
	case DSM_RT_DATA_RDMA:
		return true;
	default:
		return c->line_size >= (64u << 10);
	}
}

int dsm_rt_config_resolve(const dsm_config_t *user, struct dsm_rt_config *out)
{
	struct dsm_rt_config c = {0};
	dsm_config_t none = DSM_CONFIG_INIT;
	uint64_t v;
	const char *prov;
	int ret;

	if (user == NULL)
		user = &none;
	if (user->struct_size < CONFIG_V0_SIZE) {
		DSM_LOG(DSM_LOG_ERROR,
		        "dsm_config_t.struct_size is %zu; initialize the config with "
		        "DSM_CONFIG_INIT",
		        user->struct_size);
		return -EINVAL;
	}
	/* A newer program may pass a larger struct: fine while it sets nothing we lack. */
	if (user->struct_size > sizeof(*user) && !struct_tail_is_zero(user)) {
		DSM_LOG(DSM_LOG_ERROR,
		        "dsm_config_t is %zu bytes with settings this libdsm (%zu bytes) does not "
		        "know; link against the libdsm the program was built with",
		        user->struct_size, sizeof(*user));
		return -EINVAL;
	}
	/* Every setting, so that a bad one is named even where a field overrides it. */
	ret = dsm_settings_check();
	if (ret < 0)
		return ret;

	c.page_size = (size_t)sysconf(_SC_PAGESIZE);
	if (size_setting(user->heap_size, DSM_SETTING_HEAP_SIZE, 0, &c.heap_size) ||
	    size_setting(user->line_size, DSM_SETTING_LINE_SIZE, c.page_size, &c.line_size))
		return -EINVAL;
	/* The fields are checked as the environment is. */
	if (c.line_size < c.page_size || (c.line_size & (c.line_size - 1)) ||
	    c.line_size > DSM_RT_MAX_LINE_SIZE) {
		DSM_LOG(DSM_LOG_ERROR,
		        "line size %zu must be a power-of-two multiple of the page size (%zu), at "
		        "most %llu",
		        c.line_size, c.page_size, (unsigned long long)DSM_RT_MAX_LINE_SIZE);
		return -EINVAL;
	}
	if (c.heap_size < c.line_size || c.heap_size > DSM_RT_MAX_HEAP_SIZE) {
		DSM_LOG(DSM_LOG_ERROR, "heap size %zu must be between the line size (%zu) and %llu",
		        c.heap_size, c.line_size, (unsigned long long)DSM_RT_MAX_HEAP_SIZE);
		return -EINVAL;
	}
	/* Round down to whole lines: the reservation is made of lines. */
	c.heap_size &= ~(c.line_size - 1);

	prov = user->provider;
	if (prov == NULL || *prov == '\0')
		prov = dsm_setting_string(DSM_SETTING_PROVIDER);
	if (prov && strlen(prov) >= sizeof(c.provider)) {
		DSM_LOG(DSM_LOG_ERROR, "provider name '%.32s...' is too long", prov);
		return -EINVAL;
	}
	if (prov)
		strcpy(c.provider, prov);

	/* The check above passed: these reads cannot fail. */
	dsm_setting_u64(DSM_SETTING_DATA, &v, NULL);
	c.data = (int)v;
	dsm_setting_bool(DSM_SETTING_STATS, &c.stats);
	dsm_setting_bool(DSM_SETTING_DEBUG_FREE, &c.debug_free);
	dsm_setting_u64(DSM_SETTING_OVERCOMMIT, &v, NULL);
	c.overcommit = v == 1 ? 1 : v == 2 ? 0 : -1; /* read, strict, lazy */
	dsm_setting_u64(DSM_SETTING_HOLD_US, &v, NULL);
	c.hold_ns = v * 1000;
	dsm_setting_u64(DSM_SETTING_SPIN_US, &v, NULL);
	c.spin_ns = v * 1000;
	dsm_setting_u64(DSM_SETTING_WAIT_US, &v, NULL);
	c.wait_ns = v * 1000;
	dsm_setting_bool(DSM_SETTING_HOLD_EARLY, &c.hold_early);
	dsm_setting_bool(DSM_SETTING_MIGRATORY, &c.migratory);
	dsm_setting_u64(DSM_SETTING_MW_TRACK, &v, NULL);
	c.mw_track = (int)v;
	dsm_setting_u64(DSM_SETTING_PREFETCH, &v, NULL);
	if (v >= DSM_SETTING_NUMBER) {
		c.prefetch_lines = (unsigned)(v - DSM_SETTING_NUMBER);
	} else if (v == 1) { /* auto */
		size_t n = DSM_RT_PREFETCH_AUTO_BYTES / c.line_size;
		size_t big = DSM_RT_PREFETCH_AUTO_MAX_BYTES / c.line_size;

		if (n < DSM_RT_PREFETCH_AUTO_MIN_LINES)
			n = big < DSM_RT_PREFETCH_AUTO_MIN_LINES ? big
			                                         : DSM_RT_PREFETCH_AUTO_MIN_LINES;
		c.prefetch_lines = n < 1                            ? 1
		                   : n > DSM_RT_PREFETCH_AUTO_LINES ? DSM_RT_PREFETCH_AUTO_LINES
		                                                    : (unsigned)n;
	} else {
		c.prefetch_lines = 0;
	}
	dsm_setting_u64(DSM_SETTING_CACHE_SIZE, &v, NULL);
	if (user->struct_size > offsetof(dsm_config_t, cache_size) && user->cache_size) {
		c.cache_bytes = user->cache_size == DSM_CACHE_UNLIMITED ? 0 : user->cache_size;
	} else if (v >= DSM_SETTING_NUMBER) {
		c.cache_bytes = (size_t)(v - DSM_SETTING_NUMBER);
	} else {
		c.cache_bytes = 0; /* unlimited, 0 */
		c.cache_auto = v == 0;
	}
	dsm_setting_u64(DSM_SETTING_ON_DEATH, &v, NULL);
	c.on_death_continue = v == 1;
	dsm_setting_u64(DSM_SETTING_CKPT_RATE, &v, NULL);
	c.ckpt_rate = v >= DSM_SETTING_NUMBER ? v - DSM_SETTING_NUMBER : 0;
	dsm_setting_u64(DSM_SETTING_RESTART_ROUND, &v, NULL);
	c.restart_round = v;
	prov = user->struct_size > offsetof(dsm_config_t, restart) ? user->restart : NULL;
	if (prov == NULL || *prov == '\0')
		prov = dsm_setting_string(DSM_SETTING_RESTART);
	if (prov && strlen(prov) + 64 >= sizeof(c.restart)) {
		DSM_LOG(DSM_LOG_ERROR, "DSM_RESTART: the path '%.64s...' is too long", prov);
		return -EINVAL;
	}
	if (prov)
		strcpy(c.restart, prov);
	c.log_level = dsm_log_level();

	*out = c;
	return 0;
}
