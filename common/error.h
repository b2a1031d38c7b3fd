/* SPDX-License-Identifier: MIT */
/*
 * Error codes. Every function returns 0 (or a count) or a negative code: a
 * negated errno (-EINVAL, -ENOMEM, ...) or one of libdsm's own below.
 *
 * include/dsm.h publishes the same enum for programs, and includes nothing of
 * ours; the layers below the runtime do not include the public API. So the
 * enum is written in both headers under one guard, whichever comes first
 * defines it, and tests/unit/test_strerror.c checks that both agree.
 */
#ifndef DSM_COMMON_ERROR_H
#define DSM_COMMON_ERROR_H

#ifndef DSM_ERROR_CODES
#define DSM_ERROR_CODES
enum dsm_error {
	DSM_ERR_NOT_INIT = -256,     /* called before dsm_init() or after dsm_finalize() */
	DSM_ERR_ALREADY_INIT = -257, /* dsm_init() called twice */
	DSM_ERR_MISMATCH = -258,     /* ranks made different collective calls */
	DSM_ERR_PEER_DEAD = -259,    /* a rank of the job died */
	DSM_ERR_NO_UFFD = -260,      /* userfaultfd is missing or lacks a needed feature */
	DSM_ERR_NO_PROVIDER = -261,  /* no usable libfabric provider */
	DSM_ERR_PROTOCOL = -262,     /* a malformed or unexpected protocol message */
	DSM_ERR_NO_ADDRESS = -263,   /* no virtual address range is free on every rank */
	DSM_ERR_FOREIGN = -264,      /* a pointer that libdsm did not hand out */
	DSM_ERR_LAST = -265,
};
#endif

/* A static string naming @err (negative or positive; errno values too). Never NULL. */
const char *dsm_err_str(int err);

#endif
