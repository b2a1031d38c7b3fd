/* SPDX-License-Identifier: MIT */
/*
 * The heap reservation: a 16 TiB range that costs nothing until touched, the
 * same address in two processes that agree over a socketpair (also when the
 * first candidates are taken in one of them), and strict-overcommit chunks.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "runtime/heap.h"

#define TIB (1ull << 40)

/* ThreadSanitizer's address layout has no room for TiB mappings (TRAPS.md): small heaps there. */
#if defined(__SANITIZE_THREAD__)
#define PAIR_SIZE (1ull << 30)
#define TSAN      1
#else
#define PAIR_SIZE (4 * TIB)
#define TSAN      0
#endif

/* ---- agreement between this process and a forked peer over a socketpair ---- */

struct pair {
	int fd;
	int rank; /* 0 parent, 1 child */
};

static int pair_exchange(struct pair *p, const void *mine, void *theirs, size_t n)
{
	if (write(p->fd, mine, n) != (ssize_t)n || read(p->fd, theirs, n) != (ssize_t)n)
		return -EIO;
	return 0;
}

static int pair_all_true(void *ctx, bool mine, bool *all_p)
{
	bool theirs;
	int ret = pair_exchange(ctx, &mine, &theirs, sizeof(mine));

	*all_p = mine && theirs;
	return ret;
}

static int pair_allgather(void *ctx, uint64_t mine, uint64_t *all)
{
	struct pair *p = ctx;
	uint64_t theirs;
	int ret = pair_exchange(p, &mine, &theirs, sizeof(mine));

	all[p->rank] = mine;
	all[1 - p->rank] = theirs;
	return ret;
}

static int solo_all_true(void *ctx, bool mine, bool *all_p)
{
	(void)ctx;
	*all_p = mine;
	return 0;
}

static int solo_allgather(void *ctx, uint64_t mine, uint64_t *all)
{
	(void)ctx;
	all[0] = mine;
	return 0;
}

static const struct dsm_rt_heap_agree solo = {NULL, 1, solo_all_true, solo_allgather};

static long rss_kib(void)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

/* The permissions /proc/self/maps shows for the mapping holding @addr, or "". */
static void perms_of(const void *addr, char out[5])
{
	char line[512];
	unsigned long lo, hi;
	FILE *f = fopen("/proc/self/maps", "r");

	strcpy(out, "");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, out) == 3 && (unsigned long)addr >= lo &&
		    (unsigned long)addr < hi)
			break;
		else
			strcpy(out, "");
	if (f)
		fclose(f);
}

static void test_candidates(void **state)
{
	uint64_t c[16];
	unsigned n;

	(void)state;
	n = dsm_rt_heap_candidates(16 * TIB, 4096, c, 16);
	if (TSAN) {
		assert_int_equal(n, 0);
		return;
	}
	assert_true(n >= 4);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(c[i] % (1ull << 30), 0);
		assert_true(c[i] + 16 * TIB <= 0x800000000000ull);
		if (i)
			assert_true(c[i] > c[i - 1]);
	}
	assert_true(dsm_rt_heap_candidates(64 * TIB, 1 << 20, c, 16) >= 1);
}

static void test_reserve_16tib_costs_nothing(void **state)
{
	struct dsm_rt_heap h;
	long before, reserved, touched;
	char perms[5];

	(void)state;
	if (TSAN) {
		print_message("skipped: a 16 TiB mapping does not fit ThreadSanitizer's layout\n");
		skip();
	}
	before = rss_kib();
	assert_int_equal(dsm_rt_heap_reserve(16 * TIB, 4096, 0, &solo, &h), 0);
	reserved = rss_kib();
	assert_non_null(h.base);
	assert_int_equal(h.size, 16 * TIB);
	assert_false(h.strict);
	perms_of(h.base, perms);
	assert_string_equal(perms, "rw-p");
	assert_true(dsm_rt_heap_contains(&h, h.base + 16 * TIB - 1));
	assert_false(dsm_rt_heap_contains(&h, h.base + 16 * TIB));
	assert_false(dsm_rt_heap_contains(&h, h.base - 1));

	/* Touch 256 pages spread over the whole range: memory follows what is touched. */
	for (int i = 0; i < 256; i++)
		h.base[(16 * TIB / 256) * i + 8] = (char)i;
	touched = rss_kib();
	print_message("16 TiB heap at %p: RSS %ld KiB before, %ld reserved, %ld after 256 pages\n",
	              (void *)h.base, before, reserved, touched);
	assert_true(reserved - before < 1024);
	assert_true(touched - reserved >= 256 * 4 - 64);
	assert_true(touched - reserved < 256 * 4 * 4);
	char *base = h.base;
	dsm_rt_heap_release(&h);
	perms_of(base, perms);
	assert_string_equal(perms, "");
}

/*
 * Two processes reserve together. The child first occupies @block of the
 * fixed candidates, so the pair must move on (or fall back to a kernel
 * choice) and still end at one address.
 */
static void reserve_pair(unsigned block, uint64_t *parent_addr, uint64_t *child_addr,
                         unsigned *attempts)
{
	int sv[2], status;
	uint64_t cand[16];
	unsigned n = dsm_rt_heap_candidates(PAIR_SIZE, 4096, cand, 16);
	struct dsm_rt_heap h;
	pid_t pid;

	assert_true(block <= n);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct pair p = {sv[1], 1};
		struct dsm_rt_heap_agree ag = {&p, 2, pair_all_true, pair_allgather};
		uint64_t addr = 0;

		close(sv[0]);
		for (unsigned i = 0; i < block; i++)
			if (mmap((void *)(cand[i] + PAIR_SIZE / 2), 4096, PROT_READ,
			         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
				_exit(3);
		if (dsm_rt_heap_reserve(PAIR_SIZE, 4096, 0, &ag, &h) == 0)
			addr = (uint64_t)h.base;
		_exit(write(sv[1], &addr, sizeof(addr)) == sizeof(addr) ? 0 : 2);
	}
	close(sv[1]);
	struct pair p = {sv[0], 0};
	struct dsm_rt_heap_agree ag = {&p, 2, pair_all_true, pair_allgather};
	assert_int_equal(dsm_rt_heap_reserve(PAIR_SIZE, 4096, 0, &ag, &h), 0);
	*parent_addr = (uint64_t)h.base;
	*attempts = h.attempts;
	assert_int_equal(read(sv[0], child_addr, sizeof(*child_addr)), sizeof(*child_addr));
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(sv[0]);
	dsm_rt_heap_release(&h);
}

static int candidate_index(const uint64_t *cand, unsigned n, uint64_t a)
{
	for (unsigned i = 0; i < n; i++)
		if (cand[i] == a)
			return (int)i;
	return -1;
}

static void test_same_address_in_two_processes(void **state)
{
	uint64_t cand[16], a, b;
	unsigned n = dsm_rt_heap_candidates(PAIR_SIZE, 4096, cand, 16), attempts;
	int first, i;

	(void)state;
	/* Both free to choose: the first candidate free in both (the first of all, unless a
	 * sanitizer's shadow memory sits there). */
	reserve_pair(0, &a, &b, &attempts);
	assert_int_equal(a, b);
	first = candidate_index(cand, n, a);
	print_message("agreed on %#lx (candidate %d) after %u attempt(s)\n", (unsigned long)a,
	              first, attempts);
	if (first >= 0) {
		assert_int_equal(attempts, first + 1);

		/* That candidate is taken in the child only: both move on to a later one. */
		reserve_pair((unsigned)first + 1, &a, &b, &attempts);
		assert_int_equal(a, b);
		i = candidate_index(cand, n, a);
		assert_true(i > first);
		assert_int_equal(attempts, i + 1);
	} else {
		assert_true(TSAN); /* only there is no fixed candidate usable */
		assert_true(attempts > n);
	}

	/* Every fixed candidate is taken in the child: a kernel-chosen hole, agreed by both. */
	reserve_pair(n, &a, &b, &attempts);
	print_message("all %u fixed candidates blocked: agreed on %#lx after %u attempts\n", n,
	              (unsigned long)a, attempts);
	assert_int_equal(a, b);
	assert_true(a != 0);
	assert_int_equal(candidate_index(cand, n, a), -1);
	assert_true(attempts > n);
}

static void test_strict_overcommit_chunks(void **state)
{
	struct dsm_rt_heap h;
	char perms[5];

	(void)state;
	assert_int_equal(
	        dsm_rt_heap_reserve(TSAN ? 8 * DSM_RT_HEAP_CHUNK : 1 * TIB, 4096, 1, &solo, &h), 0);
	assert_true(h.strict);
	perms_of(h.base, perms);
	assert_string_equal(perms, "---p");

	assert_int_equal(dsm_rt_heap_open(&h, 5 * DSM_RT_HEAP_CHUNK + 100, 4096), 0);
	perms_of(h.base + 5 * DSM_RT_HEAP_CHUNK, perms);
	assert_string_equal(perms, "rw-p");
	perms_of(h.base + 6 * DSM_RT_HEAP_CHUNK - 1, perms);
	assert_string_equal(perms, "rw-p");
	perms_of(h.base + 6 * DSM_RT_HEAP_CHUNK, perms);
	assert_string_equal(perms, "---p");
	perms_of(h.base + 5 * DSM_RT_HEAP_CHUNK - 1, perms);
	assert_string_equal(perms, "---p");
	h.base[5 * DSM_RT_HEAP_CHUNK + 100] = 1; /* usable */
	/* Again, and across a chunk boundary. */
	assert_int_equal(dsm_rt_heap_open(&h, 6 * DSM_RT_HEAP_CHUNK - 10, 20), 0);
	perms_of(h.base + 6 * DSM_RT_HEAP_CHUNK, perms);
	assert_string_equal(perms, "rw-p");

	assert_int_equal(dsm_rt_heap_open(&h, h.size, 1), -EINVAL);
	assert_int_equal(dsm_rt_heap_open(&h, 0, 0), -EINVAL);
	assert_int_equal(dsm_rt_heap_open(&h, h.size - 10, 20), -EINVAL);
	dsm_rt_heap_release(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_candidates),
	        cmocka_unit_test(test_reserve_16tib_costs_nothing),
	        cmocka_unit_test(test_same_address_in_two_processes),
	        cmocka_unit_test(test_strict_overcommit_chunks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
