/* SPDX-License-Identifier: MIT */
/*
 * Growable arrays: a pointer, a length and a capacity kept by the caller, and
 * one function that makes room.
 *
 *   struct item *v; size_t n, cap;
 *   if (DSM_VEC_RESERVE(v, cap, n + 1) < 0) return -ENOMEM;
 *   v[n++] = x;
 */
#ifndef DSM_COMMON_VEC_H
#define DSM_COMMON_VEC_H

#include <stddef.h>

/*
 * Makes *@vp (elements of @esize bytes, *@cap of them) hold at least @need, doubling from
 * 16. 0, or -ENOMEM with *@vp and *@cap unchanged. @vp points at the caller's pointer, of
 * any object type (written through memcpy).
 */
int dsm_vec_reserve(void *vp, size_t *cap, size_t need, size_t esize);

#define DSM_VEC_RESERVE(ptr, cap, need) dsm_vec_reserve(&(ptr), &(cap), (need), sizeof(*(ptr)))

#endif
