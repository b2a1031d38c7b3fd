/* SPDX-License-Identifier: MIT */
/*
 * userfaultfd: how this process may open one (full or user-mode-only, and
 * why), the handshake, and the names of the features the kernel reports.
 * Shared by the runtime (the heap region), dsm-info (the probes) and
 * dsm-bench (the raw fault floor).
 */
#ifndef DSM_COMMON_UFFD_H
#define DSM_COMMON_UFFD_H

#include <linux/userfaultfd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Debian 12's header is from Linux 6.1; newer kernels report more. */
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

/* UFFDIO_MOVE (Linux 6.8). */
#ifndef UFFDIO_MOVE
#define _UFFDIO_MOVE 0x05
struct uffdio_move {
	uint64_t dst, src, len;
#define UFFDIO_MOVE_MODE_DONTWAKE        ((uint64_t)1 << 0)
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES ((uint64_t)1 << 1)
	uint64_t mode;
	int64_t move;
};
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif

/* UFFDIO_POISON (Linux 6.6). */
#ifndef UFFDIO_POISON
#define _UFFDIO_POISON 0x08
struct uffdio_poison {
	struct uffdio_range range;
#define UFFDIO_POISON_MODE_DONTWAKE ((uint64_t)1 << 0)
	uint64_t mode;
	int64_t updated;
};
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif

/* PAGEMAP_SCAN (Linux 6.7, <linux/fs.h>): Debian 12's headers predate it. */
#ifndef PAGEMAP_SCAN
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN   (1 << 1)
#define PAGE_IS_PRESENT   (1 << 3)
#define PAGE_IS_SWAPPED   (1 << 4)
struct page_region {
	uint64_t start, end, categories;
};
#define PM_SCAN_WP_MATCHING   (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
struct pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

enum dsm_uffd_mode {
	DSM_UFFD_NONE = 0,      /* userfaultfd cannot be opened at all */
	DSM_UFFD_USER_ONLY = 1, /* only faults from user space are caught */
	DSM_UFFD_FULL = 2,      /* kernel accesses (read(2), MPI receives) are caught too */
};

struct dsm_uffd_access {
	enum dsm_uffd_mode mode;
	const char *via; /* how the fd of that mode is opened */
	unsigned euid;
	bool cap_sys_ptrace;     /* in the effective set */
	bool dev_exists;         /* /dev/userfaultfd */
	bool dev_accessible;     /* ... and opens read-write for us */
	int unprivileged_sysctl; /* vm.unprivileged_userfaultfd, -1 if unreadable */
	int full_errno;          /* why full mode was refused (0 if it was not) */
	char reason[320];        /* one line: why this mode */
	char fix[320];           /* one line: how to get full mode ("" if we have it) */
};

/* Works out the mode this process gets, and why, by really opening the fds. */
void dsm_uffd_access_probe(struct dsm_uffd_access *out);

/* Opens a userfaultfd of @mode, O_CLOEXEC|O_NONBLOCK. 0 or -errno. */
int dsm_uffd_open(enum dsm_uffd_mode mode, int *fd_p);

/*
 * The UFFDIO_API handshake asking for exactly @want. On success the kernel's
 * answer is in *features_p (all it supports when @want is 0) and *ioctls_p.
 */
int dsm_uffd_handshake(int fd, uint64_t want, uint64_t *features_p, uint64_t *ioctls_p);

/* All features the kernel offers to a fd of @mode (a fresh fd, closed again). */
int dsm_uffd_kernel_features(enum dsm_uffd_mode mode, uint64_t *features_p);

/* The name of feature bit @bit ("PAGEFAULT_FLAG_WP", "MOVE", ...), or NULL. */
const char *dsm_uffd_feature_name(unsigned bit);

const char *dsm_uffd_mode_name(enum dsm_uffd_mode mode);

/*
 * Whether a fd of @mode can track writes without a fault per write: the kernel offers
 * UFFD_FEATURE_WP_ASYNC and /proc/self/pagemap answers PAGEMAP_SCAN (both Linux 6.7), and
 * UFFD_FEATURE_MOVE (6.8: a copy is taken out of the heap with the stores made up to that
 * instant). When not, @why (if not NULL, @n bytes) says which is missing.
 */
bool dsm_uffd_wp_async_ok(enum dsm_uffd_mode mode, char *why, size_t n);

/* The integer a /proc or /sys file starts with, or -1. */
int dsm_read_int_file(const char *path);

#endif
