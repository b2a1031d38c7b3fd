/* SPDX-License-Identifier: MIT */
#include "common/vec.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int dsm_vec_reserve(void *vp, size_t *cap, size_t need, size_t esize)
{
	void *v, *nv;
	size_t ncap;

	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap : 16;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2)
			return -ENOMEM;
		ncap *= 2;
	}
	if (esize && ncap > SIZE_MAX / esize)
		return -ENOMEM;
	memcpy(&v, vp, sizeof(v));
	nv = realloc(v, ncap * esize);
	if (nv == NULL)
		return -ENOMEM;
	memcpy(vp, &nv, sizeof(nv));
	*cap = ncap;
	return 0;
}
