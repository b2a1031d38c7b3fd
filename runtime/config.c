/* SPDX-License-Identifier: MIT */
#include "runtime/config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "runtime/log.h"

/* The size of the first published dsm_config_t: older programs pass no less. */
#define CONFIG_V0_SIZE (offsetof(dsm_config_t, provider) + sizeof(const char *))

int dsm_rt_parse_size(const char *s, size_t *out_p)
{
	static const char units[] = "KMGTP";
	unsigned long long v;
	char *end;
	unsigned shift = 0;

	if (s == NULL || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || v == 0)
		return -EINVAL;
	if (*end) {
		const char *u = strchr(units, end[0] & ~0x20);
		if (u == NULL)
			return -EINVAL;
		shift = 10 * (unsigned)(u - units + 1);
		end++;
		/* Accept K, KB, KiB (all binary: these are address-space sizes). */
		if (strcasecmp(end, "") && strcasecmp(end, "b") && strcasecmp(end, "ib"))
			return -EINVAL;
	}
	if (shift && v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out_p = (size_t)(v << shift);
	return 0;
}

static int size_setting(size_t field, const char *var, size_t def, size_t *out_p)
{
	const char *s = getenv(var);

	if (field) {
		*out_p = field;
		return 0;
	}
	if (s == NULL || *s == '\0') {
		*out_p = def;
		return 0;
	}
	if (dsm_rt_parse_size(s, out_p) < 0) {
		DSM_LOG(DSM_LOG_ERROR, "%s='%s' is not a size (examples: 65536, 64K, 16T)", var, s);
		return -EINVAL;
	}
	return 0;
}

static bool struct_tail_is_zero(const dsm_config_t *user)
{
	const unsigned char *p = (const unsigned char *)user;

	for (size_t i = sizeof(*user); i < user->struct_size; i++)
		if (p[i])
			return false;
	return true;
}

int dsm_rt_config_resolve(const dsm_config_t *user, struct dsm_rt_config *out)
{
	struct dsm_rt_config c = {0};
	dsm_config_t none = DSM_CONFIG_INIT;
	const char *prov, *s;

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

	c.page_size = (size_t)sysconf(_SC_PAGESIZE);
	if (size_setting(user->heap_size, "DSM_HEAP_SIZE", DSM_RT_DEFAULT_HEAP_SIZE,
	                 &c.heap_size) ||
	    size_setting(user->line_size, "DSM_LINE_SIZE", c.page_size, &c.line_size))
		return -EINVAL;

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
		prov = getenv("DSM_PROVIDER");
	if (prov && strlen(prov) >= sizeof(c.provider)) {
		DSM_LOG(DSM_LOG_ERROR, "provider name '%.32s...' is too long", prov);
		return -EINVAL;
	}
	if (prov)
		strcpy(c.provider, prov);

	s = getenv("DSM_DATA");
	if (s == NULL || *s == '\0' || strcmp(s, "auto") == 0) {
		c.data = DSM_RT_DATA_AUTO;
	} else if (strcmp(s, "inline") == 0) {
		c.data = DSM_RT_DATA_INLINE;
	} else if (strcmp(s, "rdma") == 0) {
		c.data = DSM_RT_DATA_RDMA;
	} else {
		DSM_LOG(DSM_LOG_ERROR, "DSM_DATA='%s' must be auto, inline or rdma", s);
		return -EINVAL;
	}

	c.log_level = dsm_rt_log_level();
	s = getenv("DSM_STATS");
	c.stats = s && *s && strcmp(s, "0") && strcasecmp(s, "no") && strcasecmp(s, "off");

	*out = c;
	return 0;
}
