/* SPDX-License-Identifier: MIT */
/*
 * The program that profile.sh profiles (DSM_PROFILE) and reads back with dsm-prof: four
 * allocations, each from a function of its own so that dsm-prof names its call site, each
 * with one way of sharing, MR_ROUNDS / 50 rounds (200 by default) with a barrier between:
 *
 *   alloc_false    one line; rank r writes its own word (byte 64 r + 8): false sharing
 *   alloc_true     one line; every rank adds 1 to word 0 (a C11 atomic): true sharing
 *   alloc_private  a dsm_alloc line of each rank's own, written by it alone: private
 *   alloc_mw       one line of multiple-writer memory, written as alloc_false is
 *   alloc_one      one line; rank 0 writes word 0, the others read it: one writer
 *
 * Each checks its values after the rounds (the profile must not change what a program
 * computes).
 */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <dsm.h>

#include "mr.h"

static size_t line;

/* The allocation's return address stays in the function that dsm-prof must name. */
#define NOT_A_TAIL_CALL(p) __asm__ volatile("" : : "r"(p) : "memory")

__attribute__((noinline)) static uint64_t *alloc_false(void)
{
	void *p = dsm_all_alloc(line, DSM_DIST_BLOCK);

	NOT_A_TAIL_CALL(p);
	return p;
}

__attribute__((noinline)) static _Atomic uint64_t *alloc_true(void)
{
	void *p = dsm_all_alloc(line, DSM_DIST_CYCLIC); /* not alloc_false's code: not merged */

	NOT_A_TAIL_CALL(p);
	return p;
}

__attribute__((noinline)) static uint64_t *alloc_private(void)
{
	void *p = dsm_alloc(line);

	NOT_A_TAIL_CALL(p);
	return p;
}

__attribute__((noinline)) static uint64_t *alloc_mw(void)
{
	void *p = dsm_all_alloc_mw(line, DSM_DIST_BLOCK);

	NOT_A_TAIL_CALL(p);
	return p;
}

__attribute__((noinline)) static uint64_t *alloc_one(void)
{
	void *p = dsm_all_alloc(2 * line, DSM_DIST_CYCLIC); /* the line homed on rank 0 */

	NOT_A_TAIL_CALL(p);
	return p;
}

int main(int argc, char **argv)
{
	uint64_t *fs, *pv, *mw, *one;
	_Atomic uint64_t *ts;
	long rounds;
	int rank, nranks;

	mr_start(&argc, &argv);
	line = mr_line_size();
	rounds = mr_rounds(10000) / 50;
	CHECK(dsm_init(NULL) == 0);
	rank = dsm_rank();
	nranks = dsm_nranks();
	fs = alloc_false();
	ts = alloc_true();
	pv = alloc_private();
	mw = alloc_mw();
	one = alloc_one();
	CHECK(fs && ts && pv && mw && one);
	if (!(fs && ts && pv && mw && one))
		return mr_finish();
	for (long r = 1; r <= rounds; r++) {
		volatile uint64_t *v = fs;

		v[8 * rank + 1] = (uint64_t)r;
		atomic_fetch_add(&ts[0], 1);
		pv[1] = (uint64_t)r;
		mw[8 * rank + 1] = (uint64_t)r;
		if (rank == 0)
			((volatile uint64_t *)one)[0] = (uint64_t)r;
		dsm_barrier();
		if (rank != 0)
			CHECK(((volatile uint64_t *)one)[0] == (uint64_t)r);
		dsm_barrier();
	}
	for (int q = 0; q < nranks; q++) {
		CHECK(fs[8 * q + 1] == (uint64_t)rounds);
		CHECK(mw[8 * q + 1] == (uint64_t)rounds);
	}
	CHECK(atomic_load(&ts[0]) == (uint64_t)(rounds * nranks));
	CHECK(pv[1] == (uint64_t)rounds);
	if (rank == 0)
		printf("%ld rounds on %d ranks\n", rounds, nranks);
	dsm_barrier();
	CHECK(dsm_free(pv) == 0);
	CHECK(dsm_finalize() == 0);
	return mr_finish();
}
