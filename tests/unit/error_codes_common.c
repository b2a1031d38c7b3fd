/* SPDX-License-Identifier: MIT */
/* The error codes as the layers below the runtime see them (common/error.h), for
 * test_strerror.c to hold against the public header's. */
#include "common/error.h"

const int dsm_test_common_codes[] = {
        DSM_ERR_NOT_INIT, DSM_ERR_ALREADY_INIT, DSM_ERR_MISMATCH, DSM_ERR_PEER_DEAD,
        DSM_ERR_NO_UFFD,  DSM_ERR_NO_PROVIDER,  DSM_ERR_PROTOCOL, DSM_ERR_NO_ADDRESS,
        DSM_ERR_FOREIGN,  DSM_ERR_LAST,
};
