/* SPDX-License-Identifier: MIT */
/* Opening a transport, and sleeping on one: what the layer above calls first and last. */
#include <errno.h>
#include <poll.h>

#include "common/log.h"
#include "transport/internal.h"

/* Every slot of an ops table is filled (unsupported ones with a stub that says -ENOSYS). */
static bool ops_complete(const struct dsm_tp_ops *o)
{
	return o->size == sizeof(*o) && o->name && o->open && o->close && o->send && o->mr_reg &&
	       o->mr_dereg && o->read && o->write && o->poll && o->wait_fd && o->sleep_prepare &&
	       o->sleep_end && o->sleep_pause && o->sleep_resume && o->stats && o->describe &&
	       o->abandon;
}

int dsm_tp_open(const struct dsm_tp_ops *ops, const struct dsm_tp_attr *attr, dsm_tp_t **tp_p)
{
	if (ops == NULL)
		ops = &dsm_tp_ofi_ops;
	if (!ops_complete(ops)) {
		DSM_LOG(DSM_LOG_ERROR, "the %s implementation leaves a slot of its ops table empty",
		        ops->name ? ops->name : "unnamed");
		return -EINVAL;
	}
	if (attr == NULL || attr->struct_size < sizeof(*attr) || attr->boot == NULL ||
	    attr->max_msg_type == 0 || attr->max_msg_type > DSM_TP_MSG_TYPE_MAX) {
		DSM_LOG(DSM_LOG_ERROR, "bad attributes");
		return -EINVAL;
	}
	return ops->open(attr, tp_p);
}

int dsm_tp_sleep(dsm_tp_t *tp, int timeout_ms)
{
	struct pollfd p = {.fd = dsm_tp_wait_fd(tp), .events = POLLIN};
	int how = dsm_tp_sleep_prepare(tp);

	if (how < 0)
		return 0;
	if (how == DSM_TP_SLEEP_BRIEF && (timeout_ms < 0 || timeout_ms > 1))
		timeout_ms = 1; /* our own operations need our polling soon */
	if (poll(&p, 1, timeout_ms) < 0 && errno != EINTR)
		DSM_LOG_ERRNO(DSM_LOG_WARN, "poll on the wait fd");
	dsm_tp_sleep_end(tp);
	return 1;
}
