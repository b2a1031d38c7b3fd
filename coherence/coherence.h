/* SPDX-License-Identifier: MIT */
#ifndef DSM_COHERENCE_H
#define DSM_COHERENCE_H

/* The name of the protocol this build carries (shown by dsm-info). */
const char *dsm_coh_protocol_name(void);

#endif
