/* SPDX-License-Identifier: MIT */
/*
 * Settings: dsm_config_t fields, else DSM_* environment variables, else
 * defaults; validated once, with one log line naming the bad setting.
 */
#ifndef DSM_RT_CONFIG_H
#define DSM_RT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include <dsm.h>

#define DSM_RT_DEFAULT_HEAP_SIZE (16ull << 40) /* 16 TiB of address space */
#define DSM_RT_MAX_HEAP_SIZE     (64ull << 40) /* half of x86-64's 47-bit user space */
#define DSM_RT_MAX_LINE_SIZE     (1ull << 30)

struct dsm_rt_config {
	size_t heap_size;
	size_t line_size;
	size_t page_size;
	char provider[64]; /* "" = choose the best available */
	int log_level;
	bool stats;
	int data; /* enum dsm_rt_data: how grants carry a line (DSM_DATA) */
};

/* DSM_DATA: how a grant carries its line. AUTO picks per provider and line size. */
enum dsm_rt_data { DSM_RT_DATA_AUTO = 0, DSM_RT_DATA_INLINE, DSM_RT_DATA_RDMA };

/*
 * Fills @out from @user (may be NULL) and the environment. Returns 0, or
 * -EINVAL with one log line that names the setting and what is wrong with it.
 */
int dsm_rt_config_resolve(const dsm_config_t *user, struct dsm_rt_config *out);

/* "64K", "16T", "4096", "2GiB" -> bytes. 0 or -EINVAL (garbage, zero, overflow). */
int dsm_rt_parse_size(const char *s, size_t *out_p);

#endif
