/* SPDX-License-Identifier: MIT */
#include "runtime/region.h"

#include <dsm.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"

enum uffd_verdict {
	UFFD_DONE,  /* the operation took effect */
	UFFD_RETRY, /* the layout changed under us: do it again */
	UFFD_WAKE,  /* the page is already there: wake its waiters instead */
	UFFD_FAIL,
};

/* The one place that decides what a userfaultfd ioctl error means (TRAPS.md). */
static enum uffd_verdict uffd_verdict(int err)
{
	switch (err) {
	case 0:
		return UFFD_DONE;
	case EAGAIN:
		return UFFD_RETRY;
	case EEXIST:
		return UFFD_WAKE;
	case ENOENT: /* the range was unmapped: the heap is going away */
	default:
		return UFFD_FAIL;
	}
}

int dsm_rt_region_open(struct dsm_rt_region *r, void *base, size_t size)
{
	struct dsm_uffd_access a;
	struct uffdio_register reg = {.range = {(uint64_t)base, size},
	                              .mode = UFFDIO_REGISTER_MODE_MISSING |
	                                      UFFDIO_REGISTER_MODE_WP};
	const uint64_t need =
	        (1ull << _UFFDIO_COPY) | (1ull << _UFFDIO_WRITEPROTECT) | (1ull << _UFFDIO_WAKE);
	int ret;

	memset(r, 0, sizeof(*r));
	r->uffd = -1;
	r->pagemap = -1;
	r->page_size = (size_t)sysconf(_SC_PAGESIZE);
	dsm_uffd_access_probe(&a);
	if (a.mode == DSM_UFFD_NONE) {
		DSM_LOG(DSM_LOG_ERROR, "userfaultfd: %s; fix: %s", a.reason, a.fix);
		return DSM_ERR_NO_UFFD;
	}
	if (a.mode == DSM_UFFD_USER_ONLY)
		DSM_LOG(DSM_LOG_WARN, "userfaultfd is %s; fix: %s", a.reason, a.fix);
	ret = dsm_uffd_open(a.mode, &r->uffd);
	if (ret < 0) {
		DSM_LOG(DSM_LOG_ERROR, "opening userfaultfd (%s): %s", dsm_uffd_mode_name(a.mode),
		        strerror(-ret));
		return DSM_ERR_NO_UFFD;
	}
	r->mode = a.mode;
	/* WP faults, and the faulting thread's id where the kernel has it (the loop ends a hold
	 * early once that thread has run). Nothing else: EVENT_REMOVE/UNMAP/FORK would make our
	 * own zaps wait on us. */
	uint64_t kernel = 0, want = UFFD_FEATURE_PAGEFAULT_FLAG_WP;
	if (dsm_uffd_kernel_features(a.mode, &kernel) == 0 && (kernel & UFFD_FEATURE_THREAD_ID))
		want |= UFFD_FEATURE_THREAD_ID;
	/* The faulting word, not its page, for the profile (profile.c). */
	want |= kernel & UFFD_FEATURE_EXACT_ADDRESS;
	/* Lines lost with a dead rank are poisoned (DSM_ON_DEATH=continue). */
	want |= kernel & UFFD_FEATURE_POISON;
	ret = dsm_uffd_handshake(r->uffd, want, NULL, NULL);
	if (ret < 0) {
		DSM_LOG(DSM_LOG_ERROR, "userfaultfd lacks write-protect faults: %s",
		        strerror(-ret));
		goto fail;
	}
	r->thread_id = (want & UFFD_FEATURE_THREAD_ID) != 0;
	r->exact = (want & UFFD_FEATURE_EXACT_ADDRESS) != 0;
	r->poison = (want & UFFD_FEATURE_POISON) != 0;
	if (ioctl(r->uffd, UFFDIO_REGISTER, &reg) < 0) {
		DSM_LOG_ERRNO(DSM_LOG_ERROR, "UFFDIO_REGISTER MISSING|WP of %zu bytes at %p", size,
		              base);
		goto fail;
	}
	if ((reg.ioctls & need) != need) {
		DSM_LOG(DSM_LOG_ERROR, "the heap range lacks UFFDIO_COPY/WRITEPROTECT/WAKE");
		goto fail;
	}
	r->base = base;
	r->size = size;
	return 0;
fail:
	close(r->uffd);
	r->uffd = -1;
	return DSM_ERR_NO_UFFD;
}

int dsm_rt_region_open_async(struct dsm_rt_region *r, const struct dsm_rt_region *heap)
{
	int ret;

	memset(r, 0, sizeof(*r));
	r->pagemap = -1;
	r->page_size = heap->page_size;
	r->mode = heap->mode;
	ret = dsm_uffd_open(heap->mode, &r->uffd);
	if (ret < 0) {
		DSM_LOG(DSM_LOG_ERROR, "opening a second userfaultfd: %s", strerror(-ret));
		return DSM_ERR_NO_UFFD;
	}
	ret = dsm_uffd_handshake(r->uffd,
	                         UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_ASYNC |
	                                 (heap->thread_id ? UFFD_FEATURE_THREAD_ID : 0) |
	                                 (heap->exact ? UFFD_FEATURE_EXACT_ADDRESS : 0),
	                         NULL, NULL);
	r->thread_id = heap->thread_id;
	r->exact = heap->exact;
	if (ret == 0) {
		r->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		if (r->pagemap < 0)
			ret = -errno;
	}
	if (ret < 0) {
		DSM_LOG(DSM_LOG_ERROR, "asynchronous write-protect: %s", strerror(-ret));
		dsm_rt_region_close(r);
		return DSM_ERR_NO_UFFD;
	}
	return 0;
}

int dsm_rt_region_register(struct dsm_rt_region *r, void *addr, size_t len)
{
	struct uffdio_register reg = {.range = {(uint64_t)(uintptr_t)addr, len},
	                              .mode = UFFDIO_REGISTER_MODE_MISSING};

	if (ioctl(r->uffd, UFFDIO_REGISTER, &reg) < 0) {
		int err = errno;
		DSM_LOG_ERRNO(DSM_LOG_ERROR, "UFFDIO_REGISTER MISSING %p+%zu", addr, len);
		return -err;
	}
	return 0;
}

int dsm_rt_region_move(struct dsm_rt_region *from, struct dsm_rt_region *to, uint64_t addr,
                       size_t len)
{
	struct uffdio_range range = {addr, len};
	struct uffdio_register reg = {.range = {addr, len},
	                              .mode = UFFDIO_REGISTER_MODE_MISSING |
	                                      UFFDIO_REGISTER_MODE_WP};

	if (ioctl(from->uffd, UFFDIO_UNREGISTER, &range) < 0) {
		int err = errno;
		DSM_LOG_ERRNO(DSM_LOG_ERROR, "UFFDIO_UNREGISTER %#lx+%zu", (unsigned long)addr,
		              len);
		return -err;
	}
	if (ioctl(to->uffd, UFFDIO_REGISTER, &reg) < 0) {
		int err = errno;
		DSM_LOG_ERRNO(DSM_LOG_ERROR, "UFFDIO_REGISTER MISSING|WP %#lx+%zu",
		              (unsigned long)addr, len);
		/* Back where it was: a range on neither userfaultfd would fault unseen. */
		if (ioctl(from->uffd, UFFDIO_REGISTER, &reg) < 0)
			DSM_LOG_ERRNO(DSM_LOG_ERROR, "registering %#lx+%zu again",
			              (unsigned long)addr, len);
		return -err;
	}
	return 0;
}

int dsm_rt_region_take(struct dsm_rt_region *r, uint64_t addr, size_t len, void *scratch)
{
	struct uffdio_move mv = {.dst = (uint64_t)(uintptr_t)scratch,
	                         .src = addr,
	                         .len = len,
	                         .mode = UFFDIO_MOVE_MODE_DONTWAKE};

	for (;;) {
		int err = ioctl(r->uffd, UFFDIO_MOVE, &mv) < 0 ? errno : 0;

		if (err == 0)
			return 0;
		if (err == EAGAIN && mv.move > 0 && (size_t)mv.move < mv.len) {
			/* Partly moved: on from there. */
			mv.dst += (uint64_t)mv.move;
			mv.src += (uint64_t)mv.move;
			mv.len -= (uint64_t)mv.move;
			mv.move = 0;
			continue;
		}
		if (err == EAGAIN)
			continue;
		DSM_LOG(DSM_LOG_ERROR, "UFFDIO_MOVE %#lx+%zu: %s", (unsigned long)addr, len,
		        strerror(err));
		return -err;
	}
}

int dsm_rt_region_scan_written(struct dsm_rt_region *r, uint64_t addr, size_t len,
                               struct page_region *v, size_t n, uint64_t *next_p)
{
	struct pm_scan_arg arg = {.size = sizeof(arg),
	                          .flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
	                          .start = addr,
	                          .end = addr + len,
	                          .vec = (uint64_t)(uintptr_t)v,
	                          .vec_len = n,
	                          .category_mask = PAGE_IS_WRITTEN,
	                          .return_mask = PAGE_IS_WRITTEN};
	int ret = ioctl(r->pagemap, PAGEMAP_SCAN, &arg);

	if (ret < 0) {
		int err = errno;
		DSM_LOG_ERRNO(DSM_LOG_ERROR, "PAGEMAP_SCAN %#lx+%zu", (unsigned long)addr, len);
		return -err;
	}
	*next_p = arg.walk_end;
	return ret;
}

void dsm_rt_region_close(struct dsm_rt_region *r)
{
	if (r->pagemap >= 0)
		close(r->pagemap);
	r->pagemap = -1;
	if (r->uffd >= 0) {
		struct uffdio_range range = {(uint64_t)r->base, r->size};

		if (r->base)
			ioctl(r->uffd, UFFDIO_UNREGISTER, &range);
		close(r->uffd);
	}
	r->uffd = -1;
	r->base = NULL;
}

int dsm_rt_region_read_fault(struct dsm_rt_region *r, struct dsm_rt_fault *f)
{
	struct uffd_msg m;

	for (;;) {
		ssize_t n = read(r->uffd, &m, sizeof(m));

		if (n < 0)
			return errno == EINTR ? -EAGAIN : -errno;
		if (n != sizeof(m))
			return -EIO;
		if (m.event != UFFD_EVENT_PAGEFAULT)
			continue;
		f->exact = m.arg.pagefault.address;
		f->addr = f->exact & ~(uint64_t)(r->page_size - 1);
		f->wp = m.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP;
		f->write = f->wp || (m.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE);
		f->tid = r->thread_id ? (int32_t)m.arg.pagefault.feat.ptid : 0;
		return 0;
	}
}

int dsm_rt_region_wake(struct dsm_rt_region *r, uint64_t addr, size_t len)
{
	struct uffdio_range range = {addr, len};

	if (ioctl(r->uffd, UFFDIO_WAKE, &range) < 0) {
		int err = errno;
		DSM_LOG_ERRNO(DSM_LOG_ERROR, "UFFDIO_WAKE %#lx+%zu", (unsigned long)addr, len);
		return -err;
	}
	return 0;
}

int dsm_rt_region_install(struct dsm_rt_region *r, uint64_t addr, const void *src, size_t len,
                          bool writable)
{
	size_t done = 0;

	if (writable)
		atomic_fetch_add_explicit(&r->opened, len, memory_order_relaxed);
	while (done < len) {
		struct uffdio_copy cp = {.dst = addr + done,
		                         .src = (uint64_t)src + done,
		                         .len = len - done,
		                         .mode = writable ? 0 : UFFDIO_COPY_MODE_WP};
		int err = ioctl(r->uffd, UFFDIO_COPY, &cp) < 0 ? errno : 0;

		/* A partial copy reports how far it got; go on from there. */
		if (cp.copy > 0)
			done += (size_t)cp.copy;
		switch (uffd_verdict(err)) {
		case UFFD_DONE:
			done = len;
			break;
		case UFFD_RETRY:
			break;
		case UFFD_WAKE:
			/* Present already (only whole pages are installed): skip it. */
			done += r->page_size;
			if (dsm_rt_region_wake(r, addr, len) < 0)
				return -EIO;
			break;
		case UFFD_FAIL:
			DSM_LOG(DSM_LOG_ERROR, "UFFDIO_COPY %#lx+%zu: %s",
			        (unsigned long)(addr + done), len - done, strerror(err));
			return -err;
		}
	}
	return 0;
}

int dsm_rt_region_protect(struct dsm_rt_region *r, uint64_t addr, size_t len, bool wp)
{
	struct uffdio_writeprotect w = {.range = {addr, len},
	                                .mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0};

	if (!wp)
		atomic_fetch_add_explicit(&r->opened, len, memory_order_relaxed);
	for (;;) {
		int err = ioctl(r->uffd, UFFDIO_WRITEPROTECT, &w) < 0 ? errno : 0;

		switch (uffd_verdict(err)) {
		case UFFD_DONE:
			return 0;
		case UFFD_RETRY:
			continue;
		default:
			DSM_LOG(DSM_LOG_ERROR, "UFFDIO_WRITEPROTECT %s %#lx+%zu: %s",
			        wp ? "on" : "off", (unsigned long)addr, len, strerror(err));
			return -err;
		}
	}
}

#define PROTECT_RUNS 256 /* runs of writable pages one scan returns */

int dsm_rt_region_protect_written(struct dsm_rt_region *r, uint64_t addr, size_t len)
{
	struct page_region v[PROTECT_RUNS];
	uint64_t at = addr, end = addr + len;

	if (r->pagemap < 0 && !r->no_scan) {
		r->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		r->no_scan = r->pagemap < 0;
	}
	while (at < end && !r->no_scan) {
		/* Present or swapped out (one comes back writable): an empty entry counts as
		 * "written" to the kernel where the range is not asynchronous. */
		struct pm_scan_arg arg = {.size = sizeof(arg),
		                          .start = at,
		                          .end = end,
		                          .vec = (uint64_t)(uintptr_t)v,
		                          .vec_len = PROTECT_RUNS,
		                          .category_mask = PAGE_IS_WRITTEN,
		                          .category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		                          .return_mask = PAGE_IS_WRITTEN};
		int n = ioctl(r->pagemap, PAGEMAP_SCAN, &arg), ret;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			DSM_LOG_ERRNO(DSM_LOG_INFO,
			              "PAGEMAP_SCAN %#lx+%zu (write-protecting whole "
			              "ranges from now on)",
			              (unsigned long)at, (size_t)(end - at));
			r->no_scan = true;
			break;
		}
		for (int k = 0; k < n; k++) {
			ret = dsm_rt_region_protect(r, v[k].start, v[k].end - v[k].start, true);
			if (ret < 0)
				return ret;
		}
		if (arg.walk_end <= at)
			break; /* no progress: the rest is protected whole */
		at = arg.walk_end;
	}
	return at < end ? dsm_rt_region_protect(r, at, end - at, true) : 0;
}

int dsm_rt_region_poison(struct dsm_rt_region *r, uint64_t addr, size_t len)
{
	struct uffdio_poison p = {.range = {addr, len}};
	int ret = dsm_rt_region_zap(r, addr, len);

	if (ret < 0)
		return ret;
	while (ioctl(r->uffd, UFFDIO_POISON, &p) < 0) {
		int err = errno;

		if (err == EAGAIN && p.updated > 0) {
			p.range.start += (uint64_t)p.updated;
			p.range.len -= (uint64_t)p.updated;
			p.updated = 0;
			continue;
		}
		if (err == EEXIST) /* poisoned already */
			return 0;
		DSM_LOG(DSM_LOG_ERROR, "UFFDIO_POISON %#lx+%zu: %s", (unsigned long)addr, len,
		        strerror(err));
		return -err;
	}
	return 0;
}

int dsm_rt_region_zap(struct dsm_rt_region *r, uint64_t addr, size_t len)
{
	(void)r;
	if (syscall(SYS_madvise, (void *)addr, len, MADV_DONTNEED) < 0) {
		int err = errno;
		DSM_LOG_ERRNO(DSM_LOG_ERROR, "madvise(DONTNEED) %#lx+%zu", (unsigned long)addr,
		              len);
		return -err;
	}
	return 0;
}

void dsm_rt_region_defer(struct dsm_rt_region *r)
{
	r->deferring = true;
}

bool dsm_rt_region_held_back(const struct dsm_rt_region *r, uint64_t addr, size_t len)
{
	return r->zap_len && addr < r->zap_at + r->zap_len && r->zap_at < addr + len;
}

int dsm_rt_region_flush(struct dsm_rt_region *r, bool end)
{
	int ret = 0, w;

	if (r->zap_len)
		ret = dsm_rt_region_zap(r, r->zap_at, r->zap_len);
	if (r->wake_len) {
		w = dsm_rt_region_wake(r, r->wake_at, r->wake_len);
		if (ret == 0)
			ret = w;
	}
	r->zap_len = 0;
	r->wake_len = 0;
	if (end)
		r->deferring = false;
	return ret;
}

int dsm_rt_region_zap_later(struct dsm_rt_region *r, uint64_t addr, size_t len)
{
	int ret;

	if (!r->deferring)
		return dsm_rt_region_zap(r, addr, len);
	if (r->zap_len && r->zap_at + r->zap_len == addr) {
		r->zap_len += len;
		return 0;
	}
	/* A new run: the one before goes, with the wakes that may follow its zaps. */
	ret = dsm_rt_region_flush(r, false);
	r->zap_at = addr;
	r->zap_len = len;
	return ret;
}

int dsm_rt_region_wake_later(struct dsm_rt_region *r, uint64_t addr, size_t len)
{
	int ret;

	if (!r->deferring)
		return dsm_rt_region_wake(r, addr, len);
	if (r->wake_len && r->wake_at + r->wake_len == addr) {
		r->wake_len += len;
		return 0;
	}
	ret = r->wake_len ? dsm_rt_region_flush(r, false) : 0;
	r->wake_at = addr;
	r->wake_len = len;
	return ret;
}

int dsm_rt_region_give_up(struct dsm_rt_region *r, uint64_t addr, size_t len, void *buf,
                          bool keep_read_only)
{
	int ret = dsm_rt_region_protect(r, addr, len, true);

	if (ret < 0)
		return ret;
	if (buf)
		memcpy(buf, (const void *)addr, len);
	if (keep_read_only)
		return 0;
	if (syscall(SYS_madvise, (void *)addr, len, MADV_DONTNEED) < 0) {
		int err = errno;
		DSM_LOG_ERRNO(DSM_LOG_ERROR, "madvise(DONTNEED) %#lx+%zu", (unsigned long)addr,
		              len);
		return -err;
	}
	return dsm_rt_region_wake(r, addr, len);
}
