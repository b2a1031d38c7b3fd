/* SPDX-License-Identifier: MIT */
/*
 * The userfaultfd region: the heap mapping registered in MISSING and WP modes,
 * and the page-table operations the coherence engine's actions turn into.
 * Called from the event loop only: nothing here touches a heap page that may
 * be absent (it would fault on itself), and madvise goes through syscall(2)
 * because UCX and libfabric hook the libc symbol with locks of their own.
 */
#ifndef DSM_RT_REGION_H
#define DSM_RT_REGION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/uffd.h"

struct dsm_rt_region {
	int uffd;
	enum dsm_uffd_mode mode;
	char *base;
	size_t size;
	size_t page_size;
	bool thread_id; /* faults carry the faulting thread's id */
	bool exact;     /* faults carry their exact address (UFFD_FEATURE_EXACT_ADDRESS) */
	bool poison;    /* UFFDIO_POISON works (UFFD_FEATURE_POISON, Linux 6.6) */
	int pagemap;    /* /proc/self/pagemap, once used (else -1) */
	bool no_scan;   /* PAGEMAP_SCAN does not work here: dsm_rt_region_protect_written
	                 * protects whole ranges */
	/* Bytes made writable (installed writable, or unprotected) since the caller last
	 * reset it: an estimate of what a write-protect of everything would have to change. */
	atomic_uint_fast64_t opened;
	/* Zaps and wakes held back into runs (dsm_rt_region_defer): one madvise and one
	 * UFFDIO_WAKE per run of contiguous lines instead of one each. */
	bool deferring;
	uint64_t zap_at, wake_at;
	size_t zap_len, wake_len;
};

/* One fault read from the userfaultfd. */
struct dsm_rt_fault {
	uint64_t addr;  /* the faulting address, page aligned */
	uint64_t exact; /* the address itself, where the kernel gives it (region.exact) */
	bool write;     /* a store (or an atomic read-modify-write) */
	bool wp;        /* a write-protect fault: the page is there, read-only */
	int32_t tid;    /* the faulting thread, or 0 when the kernel does not say */
};

/*
 * Opens the userfaultfd (full mode, else user-mode-only with one warning that
 * says what will not work), asks for write-protect faults and nothing else,
 * and registers [base, base+size) in MISSING|WP mode. 0 or DSM_ERR_NO_UFFD.
 */
int dsm_rt_region_open(struct dsm_rt_region *r, void *base, size_t size);
void dsm_rt_region_close(struct dsm_rt_region *r);

/*
 * A second userfaultfd whose write-protect faults the kernel resolves itself
 * (UFFD_FEATURE_WP_ASYNC), for ranges moved to it from the heap's (dsm_rt_region_move),
 * and /proc/self/pagemap for PAGEMAP_SCAN. Same mode as @heap. 0 or DSM_ERR_NO_UFFD.
 */
int dsm_rt_region_open_async(struct dsm_rt_region *r, const struct dsm_rt_region *heap);

/* Registers [addr, addr+len) with @r in MISSING mode (a scratch area for dsm_rt_region_take). */
int dsm_rt_region_register(struct dsm_rt_region *r, void *addr, size_t len);

/* Moves [addr, addr+len) from @from's registration to @to's, in MISSING|WP mode. */
int dsm_rt_region_move(struct dsm_rt_region *from, struct dsm_rt_region *to, uint64_t addr,
                       size_t len);

/*
 * Of an asynchronous region: takes the pages of [addr, addr+len) out of the heap into
 * @scratch (registered with it, MISSING mode, and empty), atomically: what @scratch holds is
 * every store made there before, and a later access faults MISSING. 0 or -errno.
 */
int dsm_rt_region_take(struct dsm_rt_region *r, uint64_t addr, size_t len, void *scratch);

/*
 * Of an asynchronous region: the pages of [addr, addr+len) written since their last scan,
 * write-protected again in the same call (the kernel flushes the TLBs first). Up to @n runs
 * of pages in @v; *@next_p is where the scan stopped (addr + len once done). Returns the
 * number of runs, or -errno.
 */
int dsm_rt_region_scan_written(struct dsm_rt_region *r, uint64_t addr, size_t len,
                               struct page_region *v, size_t n, uint64_t *next_p);

/*
 * Write-protects what of [addr, addr+len) is writable now, where the kernel can tell
 * (PAGEMAP_SCAN, Linux 6.7: the pages without the write-protect bit, present or swapped
 * out), one UFFDIO_WRITEPROTECT a run; elsewhere the whole range. Reading the page tables
 * costs a fraction of writing them (BENCHMARKS.md, "Live checkpoints"). Returns 0 or -errno.
 */
int dsm_rt_region_protect_written(struct dsm_rt_region *r, uint64_t addr, size_t len);

/*
 * Reads one fault. -EAGAIN when none is queued; other events are skipped
 * (none are asked for). The caller polls r->uffd for POLLIN.
 */
int dsm_rt_region_read_fault(struct dsm_rt_region *r, struct dsm_rt_fault *f);

/*
 * Installs [addr, addr+len) from @src: read-only (write-protected, so a later
 * store faults) unless @writable, and wakes the threads waiting on it. A page
 * already present (EEXIST) is not an error: its waiters are woken.
 */
int dsm_rt_region_install(struct dsm_rt_region *r, uint64_t addr, const void *src, size_t len,
                          bool writable);

/* Write-protects (@wp) or unprotects present pages; unprotecting wakes the waiters. */
int dsm_rt_region_protect(struct dsm_rt_region *r, uint64_t addr, size_t len, bool wp);

/* Drops the pages (MADV_DONTNEED): the next access faults MISSING. Wakes nobody. */
int dsm_rt_region_zap(struct dsm_rt_region *r, uint64_t addr, size_t len);

/* Wakes threads asleep on faults in the range (a zap wakes nobody). */
int dsm_rt_region_wake(struct dsm_rt_region *r, uint64_t addr, size_t len);
/*
 * From here on dsm_rt_region_zap_later() and dsm_rt_region_wake_later() hold their ranges
 * back, joining contiguous ones into runs, until dsm_rt_region_flush(), which zaps every run
 * and then wakes (a wake comes after its zap, as the give-up order says). The caller flushes
 * before anything may depend on a zap: a message leaving (the home would take an ack or a
 * write-back for a line still mapped here), an install, a write-protect. Without a defer
 * both act at once.
 */
void dsm_rt_region_defer(struct dsm_rt_region *r);
int dsm_rt_region_zap_later(struct dsm_rt_region *r, uint64_t addr, size_t len);
int dsm_rt_region_wake_later(struct dsm_rt_region *r, uint64_t addr, size_t len);
/* Whether [addr, addr+len) meets a zap held back. */
bool dsm_rt_region_held_back(const struct dsm_rt_region *r, uint64_t addr, size_t len);
/* Does what is held back; @end: and stops holding back. 0 or -errno of the first failure. */
int dsm_rt_region_flush(struct dsm_rt_region *r, bool end);

/* Drops the range's pages and marks it poisoned: every access raises SIGBUS (a lost line). */
int dsm_rt_region_poison(struct dsm_rt_region *r, uint64_t addr, size_t len);

/*
 * Gives a held line up, in the only safe order: write-protect (the kernel
 * flushes the TLBs, so no store is still in flight), copy the data out to @buf
 * (if not NULL), then, unless @keep_read_only, zap the pages and wake whoever
 * faulted on them meanwhile. The line must be present.
 */
int dsm_rt_region_give_up(struct dsm_rt_region *r, uint64_t addr, size_t len, void *buf,
                          bool keep_read_only);

#endif
