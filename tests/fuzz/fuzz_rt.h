/* SPDX-License-Identifier: MIT */
/*
 * The head of a fuzz_rt input (fuzz_rt.c, and gen_rt.c that writes its seeds): the message
 * type and the parameters its decoder takes, then the message.
 *
 *   [0] type, modulo DSM_RT_MSG_MAX + 2 (0 and DSM_RT_MSG_MAX + 1 are none)
 *   [1] line size: 4 KiB << (b % 5), the legal sizes up to 64 KiB (4 KiB pages)
 *   [2] ranks: 1 + b                 [3] the sender: b % ranks
 *   [4..5] lines: 1 + (u16, little-endian), shifted left by [7] % 48
 *   [6] the most lines a GET asks for: 1 + b % DSM_RT_MW_GET_MAX
 */
#ifndef DSM_FUZZ_RT_H
#define DSM_FUZZ_RT_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/wire.h"

#define FUZZ_RT_HEAD 8

struct fuzz_rt_params {
	unsigned type;
	size_t ls;
	unsigned nranks;
	int src;
	uint64_t nlines;
	uint32_t max_get;
};

static inline void fuzz_rt_params(const uint8_t *h, struct fuzz_rt_params *f)
{
	f->type = h[0] % (DSM_RT_MSG_MAX + 2);
	f->ls = (size_t)4096 << (h[1] % 5);
	f->nranks = 1u + h[2];
	f->src = (int)(h[3] % f->nranks);
	f->nlines = (1 + (uint64_t)(h[4] | h[5] << 8)) << (h[7] % 48);
	f->max_get = 1 + h[6] % DSM_RT_MW_GET_MAX;
}

#endif
