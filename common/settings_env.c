/* SPDX-License-Identifier: MIT */
/* Settings as the layers read them: a malformed value is an error line and -EINVAL. */
#include <errno.h>
#include <stdlib.h>

#include "common/log.h"
#include "common/settings.h"

int dsm_setting_get(enum dsm_setting_id id, struct dsm_setting_value *out)
{
	char why[256];
	int ret = dsm_setting_lookup(id, out, why, sizeof(why));

	if (ret == -EINVAL && dsm_setting_info(id)) {
		DSM_LOG(DSM_LOG_ERROR, "%s='%s' is not valid: %s", dsm_setting_info(id)->name,
		        getenv(dsm_setting_info(id)->name), why);
		return ret;
	}
	return ret;
}

int dsm_setting_u64(enum dsm_setting_id id, uint64_t *out, bool *set_p)
{
	struct dsm_setting_value v;
	int ret = dsm_setting_get(id, &v);

	if (ret < 0)
		return ret;
	*out = v.v;
	if (set_p)
		*set_p = ret == 1;
	return 0;
}

int dsm_setting_bool(enum dsm_setting_id id, bool *out)
{
	uint64_t v;
	int ret = dsm_setting_u64(id, &v, NULL);

	if (ret == 0)
		*out = v != 0;
	return ret;
}

const char *dsm_setting_string(enum dsm_setting_id id)
{
	struct dsm_setting_value v;

	return dsm_setting_get(id, &v) >= 0 ? v.text : NULL;
}

int dsm_settings_check(void)
{
	struct dsm_setting_value v;
	int ret = 0;

	for (unsigned i = 0; i < DSM_SETTING_COUNT; i++)
		if (dsm_setting_get((enum dsm_setting_id)i, &v) < 0)
			ret = -EINVAL;
	return ret;
}
