/* SPDX-License-Identifier: MIT */
/*
 * The coherence layer: the directory protocol as a pure state machine
 * (events in, actions out). The engine itself arrives with the coherence
 * issue; this file keeps the layer's object library non-empty until then.
 */
#include "coherence/coherence.h"

const char *dsm_coh_protocol_name(void)
{
	return "directory-swmr";
}
