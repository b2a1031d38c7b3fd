/* SPDX-License-Identifier: MIT */
/*
 * Which provider: the hints (RDM, FI_MSG | FI_RMA, FI_ATOMIC where offered),
 * the preference order, and the error that lists what is there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "transport/ofi/ofi.h"

static struct fi_info *make_hints(const char *prov, bool atomics)
{
	struct fi_info *h = fi_allocinfo();

	if (h == NULL)
		return NULL;
	h->caps = FI_MSG | FI_RMA | (atomics ? FI_ATOMIC : 0);
	h->ep_attr->type = FI_EP_RDM;
	h->mode = FI_CONTEXT | FI_CONTEXT2;
	h->domain_attr->mr_mode =
	        FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY | FI_MR_ENDPOINT;
	h->domain_attr->threading = FI_THREAD_DOMAIN;
	h->tx_attr->msg_order = FI_ORDER_SAS;
	if (prov)
		h->fabric_attr->prov_name = strdup(prov);
	return h;
}

static struct fi_info *get_info(const char *prov)
{
	struct fi_info *info = NULL;

	for (int atomics = 1; atomics >= 0; atomics--) {
		struct fi_info *h = make_hints(prov, atomics);
		int ret;

		if (h == NULL)
			return NULL;
		ret = fi_getinfo(OFI_VERSION, NULL, NULL, 0, h, &info);
		fi_freeinfo(h);
		if (ret == 0 && info)
			return info;
	}
	return NULL;
}

/* "shm, tcp;ofi_rxm, ..." for the error message. */
static void list_providers(char *out, size_t n)
{
	struct fi_info *info = get_info(NULL);
	size_t used = 0;

	out[0] = '\0';
	for (struct fi_info *i = info; i; i = i->next) {
		const char *p = i->fabric_attr->prov_name;
		if (strstr(out, p))
			continue;
		int r = snprintf(out + used, n - used, "%s%s", used ? ", " : "", p);
		if (r < 0 || (size_t)r >= n - used)
			break;
		used += (size_t)r;
	}
	if (info)
		fi_freeinfo(info);
	if (used == 0)
		snprintf(out, n, "none");
}

int ofi_choose_provider(struct ofi_tp *t, const char *want, bool one_host)
{
	static const char *const remote_pref[] = {"verbs;ofi_rxm", "efa", "cxi", "tcp;ofi_rxm"};
	char avail[512];

	if (want && *want) {
		t->info = get_info(want);
		if (t->info)
			return 0;
		list_providers(avail, sizeof(avail));
		DSM_LOG(DSM_LOG_ERROR,
		        "provider '%s' is not available for RDM endpoints with "
		        "messages and RMA here; available: %s",
		        want, avail);
		return DSM_ERR_NO_PROVIDER;
	}
	if (one_host && (t->info = get_info("shm")) != NULL)
		return 0;
	for (size_t i = 0; i < sizeof(remote_pref) / sizeof(remote_pref[0]); i++)
		if ((t->info = get_info(remote_pref[i])) != NULL)
			return 0;
	list_providers(avail, sizeof(avail));
	DSM_LOG(DSM_LOG_ERROR, "no usable provider; available: %s", avail);
	return DSM_ERR_NO_PROVIDER;
}
