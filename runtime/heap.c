/* SPDX-License-Identifier: MIT */
#include "runtime/heap.h"

#include <dsm.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

/* x86-64 user space ends at 128 TiB; mmap's own placements start near its top. */
#define CAND_STEP  (16ull << 40)
#define CAND_LIMIT (0x7e0000000000ull)
#define MAX_CAND   16

static int overcommit_strict(void)
{
	int v = 0;
	FILE *f = fopen("/proc/sys/vm/overcommit_memory", "re");

	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v == 2;
}

unsigned dsm_rt_heap_candidates(size_t size, size_t align, uint64_t *out, unsigned max)
{
	unsigned n = 0;

	(void)align; /* CAND_STEP is a multiple of any line size we accept */
#if defined(__SANITIZE_THREAD__)
	/* TSan turns a hint outside its application ranges into NULL, and MAP_FIXED_NOREPLACE
	 * at NULL maps page 0 for root: only the kernel-chosen fallback is safe there. */
	(void)size;
	(void)out;
	(void)max;
	return 0;
#endif
	for (uint64_t a = CAND_STEP; a + size <= CAND_LIMIT && n < max; a += CAND_STEP)
		out[n++] = a;
	return n;
}

/* Maps exactly at @addr or not at all. Kernels before 4.17 treat the flag as a hint. */
static bool try_map(uint64_t addr, size_t size, int prot)
{
	void *p = mmap((void *)addr, size, prot,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);

	if (p == MAP_FAILED)
		return false;
	if ((uint64_t)p != addr) {
		munmap(p, size);
		return false;
	}
	return true;
}

/* Where the kernel would put the heap on this rank, rounded up to @align. */
static uint64_t kernel_choice(size_t size, size_t align)
{
	void *p = mmap(NULL, size + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
	               -1, 0);
	uint64_t a;

	if (p == MAP_FAILED)
		return 0;
	munmap(p, size + align);
	a = ((uint64_t)p + align - 1) & ~(uint64_t)(align - 1);
	return a;
}

/* One collective round: every rank tries @addr; true if all got it. */
static int try_everywhere(uint64_t addr, size_t size, int prot,
                          const struct dsm_rt_heap_agree *agree, bool *all_p)
{
	bool mine = addr != 0 && try_map(addr, size, prot);
	int ret = agree->all_true(agree->ctx, mine, all_p);

	if ((ret < 0 || !*all_p) && mine)
		munmap((void *)addr, size);
	return ret;
}

int dsm_rt_heap_reserve(size_t size, size_t align, int strict,
                        const struct dsm_rt_heap_agree *agree, struct dsm_rt_heap *out)
{
	return dsm_rt_heap_reserve_at(size, align, strict, 0, agree, out);
}

int dsm_rt_heap_reserve_at(size_t size, size_t align, int strict, uint64_t want,
                           const struct dsm_rt_heap_agree *agree, struct dsm_rt_heap *out)
{
	uint64_t cand[MAX_CAND], *theirs = NULL;
	unsigned ncand = want ? 1 : dsm_rt_heap_candidates(size, align, cand, MAX_CAND);
	struct dsm_rt_heap h = {.size = size};
	bool all = false;
	int prot, ret = 0;
	uint64_t addr = 0;

	h.strict = strict < 0 ? overcommit_strict() : strict;
	prot = h.strict ? PROT_NONE : PROT_READ | PROT_WRITE;

	if (want)
		cand[0] = want;
	for (unsigned i = 0; i < ncand && !all; i++) {
		addr = cand[i];
		h.attempts++;
		ret = try_everywhere(addr, size, prot, agree, &all);
		if (ret < 0)
			return ret;
	}
	if (!all && want) {
		DSM_LOG(DSM_LOG_ERROR,
		        "the heap must be at %#llx (%zu bytes) as in the snapshot, and that range "
		        "is not free on every rank",
		        (unsigned long long)want, size);
		return DSM_ERR_NO_ADDRESS;
	}
	/* Fallback: a hole that some rank's kernel found, tried on every rank in turn. */
	if (!all) {
		theirs = calloc((size_t)agree->nranks, sizeof(*theirs));
		if (theirs == NULL)
			return -ENOMEM;
		ret = agree->allgather_u64(agree->ctx, kernel_choice(size, align), theirs);
		for (int r = 0; ret == 0 && r < agree->nranks && !all; r++) {
			addr = theirs[r];
			h.attempts++;
			ret = try_everywhere(addr, size, prot, agree, &all);
		}
		free(theirs);
		if (ret < 0)
			return ret;
	}
	if (!all) {
		DSM_LOG(DSM_LOG_ERROR,
		        "no range of %zu bytes is free at the same address on every rank (%u "
		        "candidates tried); lower DSM_HEAP_SIZE",
		        size, h.attempts);
		return DSM_ERR_NO_ADDRESS;
	}

	h.base = (char *)addr;
	if (h.strict) {
		size_t nchunks = (size + DSM_RT_HEAP_CHUNK - 1) / DSM_RT_HEAP_CHUNK;
		h.opened = calloc((nchunks + 7) / 8, 1);
		if (h.opened == NULL) {
			munmap(h.base, size);
			return -ENOMEM;
		}
	}
	/* Never copied into a child, never dumped: a fork or a core of 16 TiB helps nobody. */
	if (syscall(SYS_madvise, h.base, size, MADV_DONTFORK) < 0 ||
	    syscall(SYS_madvise, h.base, size, MADV_DONTDUMP) < 0)
		DSM_LOG_ERRNO(DSM_LOG_WARN, "madvise(DONTFORK|DONTDUMP) on the heap");
	DSM_LOG(DSM_LOG_INFO, "heap: %zu bytes at %p%s after %u attempt(s)", size, (void *)h.base,
	        h.strict ? " (strict overcommit: opened in chunks)" : "", h.attempts);
	*out = h;
	return 0;
}

/* Opens chunk @c once; concurrent openers (threads, the signal handler) race harmlessly. */
static int open_chunk(struct dsm_rt_heap *h, size_t c)
{
	size_t start = c * DSM_RT_HEAP_CHUNK;
	size_t n = h->size - start < DSM_RT_HEAP_CHUNK ? h->size - start : DSM_RT_HEAP_CHUNK;
	uint8_t bit = (uint8_t)(1u << (c % 8));

	if (__atomic_load_n(&h->opened[c / 8], __ATOMIC_ACQUIRE) & bit)
		return 0;
	if (syscall(SYS_mprotect, h->base + start, n, PROT_READ | PROT_WRITE) < 0)
		return -errno;
	__atomic_fetch_or(&h->opened[c / 8], bit, __ATOMIC_RELEASE);
	return 0;
}

int dsm_rt_heap_open(struct dsm_rt_heap *h, size_t off, size_t len)
{
	if (len == 0 || off > h->size || len > h->size - off)
		return -EINVAL;
	if (!h->strict)
		return 0;
	for (size_t c = off / DSM_RT_HEAP_CHUNK; c <= (off + len - 1) / DSM_RT_HEAP_CHUNK; c++) {
		int ret = open_chunk(h, c);

		if (ret < 0) {
			errno = -ret;
			DSM_LOG_ERRNO(DSM_LOG_ERROR,
			              "opening heap chunk %zu under strict overcommit (the commit "
			              "limit is reached?)",
			              c);
			return ret;
		}
	}
	return 0;
}

int dsm_rt_heap_open_addr(struct dsm_rt_heap *h, const void *addr)
{
	int ret;

	if (!h->strict || !dsm_rt_heap_contains(h, addr))
		return 0;
	ret = open_chunk(h, (size_t)((const char *)addr - h->base) / DSM_RT_HEAP_CHUNK);
	return ret < 0 ? ret : 1;
}

int dsm_rt_heap_reserve_local(size_t size, int strict, struct dsm_rt_heap *out)
{
	struct dsm_rt_heap h = {.size = size};
	void *p;

	h.strict = strict < 0 ? overcommit_strict() : strict;
	p = mmap(NULL, size, h.strict ? PROT_NONE : PROT_READ | PROT_WRITE,
	         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		DSM_LOG_ERRNO(DSM_LOG_ERROR, "reserving %zu bytes", size);
		return -ENOMEM;
	}
	h.base = p;
	if (h.strict) {
		h.opened = calloc((size + DSM_RT_HEAP_CHUNK - 1) / DSM_RT_HEAP_CHUNK / 8 + 1, 1);
		if (h.opened == NULL) {
			munmap(p, size);
			return -ENOMEM;
		}
	}
	syscall(SYS_madvise, h.base, size, MADV_DONTFORK);
	syscall(SYS_madvise, h.base, size, MADV_DONTDUMP);
	*out = h;
	return 0;
}

/* ---- SIGSEGV on closed chunks ------------------------------------------------------------- */

static struct dsm_rt_heap *segv_heaps[2];
static struct sigaction segv_old;
static bool segv_installed;

static void segv_handler(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;

	for (int i = 0; i < 2; i++) {
		struct dsm_rt_heap *h = __atomic_load_n(&segv_heaps[i], __ATOMIC_ACQUIRE);

		if (h && dsm_rt_heap_open_addr(h, si->si_addr) == 1) {
			errno = saved;
			return; /* the access runs again, now on an open chunk */
		}
	}
	errno = saved;
	/* Not ours: as if we had never been here. */
	if (segv_old.sa_flags & SA_SIGINFO) {
		segv_old.sa_sigaction(sig, si, uc);
	} else if (segv_old.sa_handler != SIG_IGN && segv_old.sa_handler != SIG_DFL) {
		segv_old.sa_handler(sig);
	} else {
		signal(SIGSEGV, SIG_DFL); /* returning re-runs the access, which now kills */
	}
}

int dsm_rt_heap_catch_segv(struct dsm_rt_heap *h)
{
	struct sigaction sa;

	if (!h->strict)
		return 0;
	for (int i = 0; i < 2; i++)
		if (segv_heaps[i] == NULL) {
			__atomic_store_n(&segv_heaps[i], h, __ATOMIC_RELEASE);
			break;
		}
	if (segv_installed)
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = segv_handler;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, &segv_old) < 0) {
		DSM_LOG_ERRNO(DSM_LOG_ERROR,
		              "installing the SIGSEGV handler for strict overcommit");
		return -errno;
	}
	segv_installed = true;
	return 0;
}

void dsm_rt_heap_release_segv(void)
{
	if (segv_installed)
		sigaction(SIGSEGV, &segv_old, NULL);
	segv_installed = false;
	segv_heaps[0] = segv_heaps[1] = NULL;
}

bool dsm_rt_heap_contains(const struct dsm_rt_heap *h, const void *addr)
{
	return h->base && (const char *)addr >= h->base && (const char *)addr < h->base + h->size;
}

void dsm_rt_heap_release(struct dsm_rt_heap *h)
{
	if (h->base)
		munmap(h->base, h->size);
	free(h->opened);
	*h = (struct dsm_rt_heap){0};
}
