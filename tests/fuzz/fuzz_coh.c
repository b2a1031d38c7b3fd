/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the coherence engine fed messages from other ranks that the fuzzer
 * makes up (any type, flags, sender and line, in any order), mixed with this rank's own
 * faults, holds ending, RDMA completions, evictions, drops of freed lines, and deaths of
 * other ranks (whose lines another rank, never this one, adopts: this rank adopting lines
 * it was never told to home is a runtime error the fuzzer would find at once). The engine's
 * contract (coherence.h): every call returns 0, DSM_ERR_PROTOCOL or -EINVAL, and a refused
 * event changes nothing: the node's state (its canonical encoding) and the action list are as
 * they were. A violation aborts, and the fuzzer reports the input.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coherence/coherence.h"
#include "common/error.h"

#define NRANKS 4
#define NLINES 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *encode(const dsm_coh_node_t *node, size_t *n_p)
{
	size_t n = dsm_coh_node_encode(node, NULL, 0);
	uint8_t *b = malloc(n ? n : 1);

	if (b == NULL)
		abort();
	*n_p = dsm_coh_node_encode(node, b, n);
	return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	dsm_coh_config_t cfg = {0};
	dsm_coh_node_t *node;
	dsm_coh_actions_t out;

	if (size < 2)
		return 0;
	cfg.rank = data[0] % NRANKS;
	cfg.nranks = NRANKS;
	cfg.data_mode = data[1] & 1 ? DSM_COH_DATA_RDMA : DSM_COH_DATA_INLINE;
	cfg.wb_mode = data[1] & 2 ? DSM_COH_DATA_RDMA : DSM_COH_DATA_INLINE;
	cfg.migratory = (data[1] >> 2) & 1;
	if (dsm_coh_node_create(&cfg, &node))
		abort();
	dsm_coh_actions_init(&out);
	for (size_t i = 2; i + 4 <= size; i += 4) {
		const uint8_t *p = data + i;
		dsm_coh_event_t ev = {0};
		uint64_t line = p[1] % NLINES;
		size_t n0, n1, acts = out.n;
		uint8_t *before, *after;
		int ret;

		ev.type = (dsm_coh_event_type_t)(p[0] % 11); /* 0: not a type (-EINVAL); 10: DROP */
		ev.line = line;
		ev.home = (unsigned)(line % NRANKS);
		if (ev.type == DSM_COH_EV_PEER_DEAD || ev.type == DSM_COH_EV_LOST_LINE) {
			ev.home = p[2] % NRANKS;
			ev.adopter = p[3] % NRANKS;
			if (ev.type == DSM_COH_EV_PEER_DEAD && ev.adopter == cfg.rank)
				ev.adopter = (ev.adopter + 1) % NRANKS;
		}
		if (ev.type == DSM_COH_EV_MSG) {
			ev.msg.type = p[2] % (DSM_COH_MSG_NTYPES + 1);
			ev.msg.flags = p[3] & 0x1f;
			ev.msg.reserved = (p[3] >> 5) & 1 ? p[3] >> 6 : 0;
			ev.msg.src =
			        (uint16_t)((p[2] >> 4) % (NRANKS + 1)); /* NRANKS: no such rank */
			ev.msg.line = line;
		}
		before = encode(node, &n0);
		ret = dsm_coh_handle(node, &ev, &out);
		if (ret != 0 && ret != DSM_ERR_PROTOCOL && ret != -EINVAL)
			abort();
		if (ret != 0) {
			after = encode(node, &n1);
			if (n0 != n1 || memcmp(before, after, n0) != 0 || out.n != acts)
				abort(); /* a refused event changed the state or left actions */
			free(after);
		}
		free(before);
		if (out.n > 4096)
			out.n = 0; /* the runtime runs and clears them; here they only pile up */
	}
	dsm_coh_actions_fini(&out);
	dsm_coh_node_destroy(node);
	return 0;
}
