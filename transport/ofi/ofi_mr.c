/* SPDX-License-Identifier: MIT */
/* Memory registration: fi_mr_reg, bound to the endpoint where the provider wants it. */
#include <errno.h>
#include <stdlib.h>

#include "common/log.h"
#include "transport/ofi/ofi.h"

int ofi_reg(struct ofi_tp *t, void *buf, size_t len, uint64_t key, struct fid_mr **mr_p)
{
	uint64_t access = FI_SEND | FI_RECV | FI_READ | FI_WRITE | FI_REMOTE_READ | FI_REMOTE_WRITE;
	int ret = fi_mr_reg(t->domain, buf, len, access, 0, key ^ t->key_mask, 0, mr_p, NULL);

	if (ret) {
		DSM_LOG(DSM_LOG_ERROR, "fi_mr_reg of %zu bytes: %s", len, fi_strerror(-ret));
		return ofi_fi_err(ret);
	}
	if (t->mr_endpoint) {
		ret = fi_mr_bind(*mr_p, &t->ep->fid, 0);
		if (ret == 0)
			ret = fi_mr_enable(*mr_p);
		if (ret) {
			DSM_LOG(DSM_LOG_ERROR, "binding a region: %s", fi_strerror(-ret));
			fi_close(&(*mr_p)->fid);
			return ofi_fi_err(ret);
		}
	}
	return 0;
}

int ofi_mr_reg(dsm_tp_t *tp, void *addr, size_t len, uint64_t key, dsm_tp_mr_t **mr_p)
{
	struct ofi_tp *t = ot(tp);
	struct ofi_mr *m = calloc(1, sizeof(*m));
	int ret;

	if (m == NULL)
		return -ENOMEM;
	ret = ofi_reg(t, addr, len, t->own_keys ? t->next_key++ : key, &m->mr);
	if (ret) {
		free(m);
		return ret;
	}
	m->pub.addr = addr;
	m->pub.len = len;
	m->pub.key = fi_mr_key(m->mr) ^ t->key_mask; /* as the layer above names it */
	m->pub.desc = fi_mr_desc(m->mr);
	m->pub.impl = m;
	t->core.st.bytes_registered += len;
	*mr_p = &m->pub;
	return 0;
}

int ofi_mr_dereg(dsm_tp_t *tp, dsm_tp_mr_t *mr)
{
	struct ofi_tp *t = ot(tp);
	struct ofi_mr *m = mr->impl;
	int ret = fi_close(&m->mr->fid);

	if (ret)
		DSM_LOG(DSM_LOG_WARN, "closing a region: %s", fi_strerror(-ret));
	t->core.st.bytes_registered -= mr->len;
	free(m);
	return ofi_fi_err(ret);
}
