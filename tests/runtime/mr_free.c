/* SPDX-License-Identifier: MIT */
/*
 * Use after free (README, "Memory"). One case a run, named by argv[1]; free.sh runs them.
 *
 * The cases that end a rank: after every rank touched some memory and it was freed (by its
 * owner, by another rank, or collectively), or at an address that was never allocated, one
 * rank accesses it. That rank must end with the one-line error naming the address, and the
 * job with it; the program prints "UNCAUGHT" if the access returns.
 *
 *   remote      rank 0 frees its dsm_alloc memory that rank 1 holds read-only; rank 1 reads it
 *   written     the same, rank 1 holding the line modified; rank 1 writes it again
 *   home        the same, rank 0 (the home) reads it itself
 *   remote_free rank 1 frees rank 0's memory (a remote dsm_free); rank 1 reads it
 *   all         dsm_all_free of memory homed on both ranks; rank 1 reads a line homed on 0
 *   never       rank 1 reads rank 0's slice where nothing was ever allocated
 *   never_home  rank 0 reads its own slice there
 *   debug_uaf   DSM_DEBUG_FREE=1: "remote" again, after the memory was freed and an
 *               allocation of the same size followed (which must not get it back)
 *
 * The cases that must not: "ok" frees and reallocates memory that rank 1 then reads in
 * full, with read-ahead running past each allocation's end into the unallocated slice,
 * for MR_ROUNDS rounds, and frees objects of a slab that holds live ones; "debug" checks
 * DSM_DEBUG_FREE's fill and that nothing freed is handed out again.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <dsm.h>

#include "mr.h"

static size_t line;

/* Rank 0's memory of @n lines, its address sent to every rank, written with @v. */
static uint64_t *alloc0(size_t n, uint64_t v)
{
	uint64_t *p = NULL;

	if (mr_rank == 0) {
		p = dsm_alloc(n * line);
		for (size_t i = 0; p && i < n * line / 8; i++)
			p[i] = v + i;
	}
	MPI_Bcast(&p, sizeof(p), MPI_BYTE, 0, MPI_COMM_WORLD);
	return p;
}

static uint64_t sum(const volatile uint64_t *p, size_t words)
{
	uint64_t s = 0;

	for (size_t i = 0; i < words; i++)
		s += p[i];
	return s;
}

/* The access that must end this rank. */
static void must_die(const char *what, volatile uint64_t *p, int write)
{
	uint64_t v;

	printf("rank %d: %s at %p\n", mr_rank, what, (void *)p);
	fflush(stdout);
	if (write)
		*p = 42;
	v = *p;
	printf("rank %d: UNCAUGHT: %s returned %llu\n", mr_rank, what, (unsigned long long)v);
	fflush(stdout);
}

static int case_dies(const char *name)
{
	uint64_t *p = NULL;

	if (!strcmp(name, "remote") || !strcmp(name, "written") || !strcmp(name, "home") ||
	    !strcmp(name, "remote_free") || !strcmp(name, "debug_uaf")) {
		p = alloc0(4, 1000);
		if (mr_rank == 1 && !strcmp(name, "written"))
			p[line / 8] = 7; /* line 1 held modified here */
		else if (mr_rank == 1)
			CHECK(sum(p, 4 * line / 8) != 0);
		dsm_barrier();
		if (mr_rank == 0 && strcmp(name, "remote_free"))
			CHECK(dsm_free(p) == 0);
		if (mr_rank == 1 && !strcmp(name, "remote_free"))
			CHECK(dsm_free(p) == 0);
		if (mr_rank == 0 && !strcmp(name, "debug_uaf")) {
			uint64_t *q = dsm_alloc(4 * line);

			CHECK(q != NULL && q != p); /* quarantined: not handed out again */
		}
		dsm_barrier();
		if (mr_rank == (!strcmp(name, "home") ? 0 : 1))
			must_die("an access to freed memory", &p[line / 8 + 3],
			         !strcmp(name, "written"));
	} else if (!strcmp(name, "all")) {
		uint64_t *a = dsm_all_alloc(8 * line, DSM_DIST_BLOCK);

		a[(size_t)mr_rank * 4 * line / 8] = 5 + (uint64_t)mr_rank; /* a line of its own */
		CHECK(sum(a, 8 * line / 8) != 0);
		dsm_barrier();
		CHECK(dsm_all_free(a) == 0);
		if (mr_rank == 1)
			must_die("an access to memory after dsm_all_free", &a[1], 0);
	} else if (!strcmp(name, "never") || !strcmp(name, "never_home")) {
		p = alloc0(1, 0);
		dsm_barrier();
		if (mr_rank == (!strcmp(name, "never") ? 1 : 0))
			must_die("an access to memory never allocated", &p[(1 << 20) / 8], 0);
	} else {
		fprintf(stderr, "mr_free: unknown case %s\n", name);
		return 2;
	}
	dsm_barrier();
	return 0;
}

static void case_ok(long rounds)
{
	uint64_t *small[64] = {0};

	for (long r = 0; r < rounds; r++) {
		size_t n = 1 + (size_t)r % 7; /* 1 to 7 lines: reuse finds holes of other sizes */
		uint64_t *p = alloc0(n, (uint64_t)r << 32);
		uint64_t want = 0;

		for (size_t i = 0; i < n * line / 8; i++)
			want += ((uint64_t)r << 32) + i;
		if (mr_rank == 1)
			CHECK(sum(p, n * line / 8) == want);
		dsm_barrier();
		if (mr_rank == 0)
			CHECK(dsm_free(p) == 0);
		dsm_barrier();
	}
	/* Small objects share lines: freeing some leaves the others' lines allocated. */
	if (mr_rank == 0)
		for (int i = 0; i < 64; i++) {
			small[i] = dsm_alloc(32);
			small[i][0] = 100 + (uint64_t)i;
		}
	MPI_Bcast(small, sizeof(small), MPI_BYTE, 0, MPI_COMM_WORLD);
	if (mr_rank == 1)
		for (int i = 0; i < 64; i++)
			CHECK(small[i][0] == 100 + (uint64_t)i);
	dsm_barrier();
	if (mr_rank == 0)
		for (int i = 0; i < 64; i += 2)
			CHECK(dsm_free(small[i]) == 0);
	dsm_barrier();
	if (mr_rank == 1)
		for (int i = 1; i < 64; i += 2)
			CHECK(small[i][0] == 100 + (uint64_t)i);
	dsm_barrier();
	printf("rank %d: %ld rounds of allocate, read on rank 1, free\n", mr_rank, rounds);
}

static void case_debug(void)
{
	if (mr_rank == 0) {
		unsigned char *a = dsm_alloc(32), *b = dsm_alloc(32), *c;
		uint64_t *big = dsm_alloc(3 * line), *big2;
		int all = 1;

		memset(a, 1, 32);
		memset(b, 2, 32);
		CHECK(dsm_free(a) == 0);
		for (int i = 0; i < 32; i++)
			all &= a[i] == 0xdb; /* b keeps the line allocated: a can still be read */
		CHECK(all);
		CHECK(b[0] == 2 && b[31] == 2);
		c = dsm_alloc(32);
		CHECK(c != NULL && c != a);
		CHECK(dsm_free(big) == 0);
		big2 = dsm_alloc(3 * line);
		CHECK(big2 != NULL && big2 != big);
		CHECK(dsm_free(b) == 0 && dsm_free(c) == 0 && dsm_free(big2) == 0);
	}
	dsm_barrier();
}

int main(int argc, char **argv)
{
	const char *name = argc > 1 ? argv[1] : "ok";
	int ret = 0;

	mr_start(&argc, &argv);
	if (dsm_init(NULL) != 0) {
		fprintf(stderr, "mr_free: dsm_init failed\n");
		MPI_Abort(MPI_COMM_WORLD, 1);
	}
	{
		dsm_info_t info = {.struct_size = sizeof(info)};

		dsm_query(&info);
		line = info.line_size;
	}
	if (!strcmp(name, "ok"))
		case_ok(mr_rounds(40));
	else if (!strcmp(name, "debug"))
		case_debug();
	else
		ret = case_dies(name);
	dsm_finalize();
	if (ret)
		MPI_Abort(MPI_COMM_WORLD, ret);
	return mr_finish();
}
