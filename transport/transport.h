/* SPDX-License-Identifier: MIT */
#ifndef DSM_TRANSPORT_H
#define DSM_TRANSPORT_H

const char *dsm_tp_layer_name(void);

#endif
