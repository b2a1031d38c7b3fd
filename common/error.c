/* SPDX-License-Identifier: MIT */
#include "common/error.h"

#include <string.h>

static const char *const dsm_errors[] = {
        [-DSM_ERR_NOT_INIT - 256] = "libdsm is not initialized (call dsm_init first)",
        [-DSM_ERR_ALREADY_INIT - 256] = "libdsm is already initialized",
        [-DSM_ERR_MISMATCH - 256] = "ranks made different collective calls",
        [-DSM_ERR_PEER_DEAD - 256] = "a rank of the job died",
        [-DSM_ERR_NO_UFFD - 256] = ("userfaultfd is unavailable or lacks a needed feature "
                                    "(run dsm-info)"),
        [-DSM_ERR_NO_PROVIDER - 256] = "no usable libfabric provider (run dsm-info)",
        [-DSM_ERR_PROTOCOL - 256] = "malformed or unexpected protocol message",
        [-DSM_ERR_NO_ADDRESS - 256] = "no address range for the heap is free on every rank",
        [-DSM_ERR_FOREIGN - 256] = "pointer not allocated by libdsm",
};

const char *dsm_err_str(int err)
{
	int e = err < 0 ? -err : err;

	if (e == 0)
		return "success";
	if (e >= 256 && e < -DSM_ERR_LAST) {
		const char *s = dsm_errors[e - 256];
		return s ? s : "unknown libdsm error";
	}
	if (e < 256)
		return strerror(e); /* glibc's strerror is thread-safe for known codes */
	return "unknown libdsm error";
}
