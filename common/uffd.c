/* SPDX-License-Identifier: MIT */
#include "common/uffd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CAP_SYS_PTRACE_BIT 19

static const char *const feature_names[] = {
        "PAGEFAULT_FLAG_WP",
        "EVENT_FORK",
        "EVENT_REMAP",
        "EVENT_REMOVE",
        "MISSING_HUGETLBFS",
        "MISSING_SHMEM",
        "EVENT_UNMAP",
        "SIGBUS",
        "THREAD_ID",
        "MINOR_HUGETLBFS",
        "MINOR_SHMEM",
        "EXACT_ADDRESS",
        "WP_HUGETLBFS_SHMEM",
        "WP_UNPOPULATED",
        "POISON",
        "WP_ASYNC",
        "MOVE",
};

const char *dsm_uffd_feature_name(unsigned bit)
{
	if (bit >= sizeof(feature_names) / sizeof(feature_names[0]))
		return NULL;
	return feature_names[bit];
}

const char *dsm_uffd_mode_name(enum dsm_uffd_mode mode)
{
	switch (mode) {
	case DSM_UFFD_FULL:
		return "full";
	case DSM_UFFD_USER_ONLY:
		return "user-mode-only";
	default:
		return "unavailable";
	}
}

static int uffd_syscall(int flags)
{
	int fd = (int)syscall(SYS_userfaultfd, flags | O_CLOEXEC | O_NONBLOCK);

	return fd < 0 ? -errno : fd;
}

static int uffd_dev_open(void)
{
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	int fd;

	if (dev < 0)
		return -errno;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	fd = fd < 0 ? -errno : fd;
	close(dev);
	return fd;
}

int dsm_uffd_open(enum dsm_uffd_mode mode, int *fd_p)
{
	int fd;

	switch (mode) {
	case DSM_UFFD_FULL:
		fd = uffd_syscall(0);
		if (fd < 0) {
			int dev_fd = uffd_dev_open();
			if (dev_fd >= 0)
				fd = dev_fd;
		}
		break;
	case DSM_UFFD_USER_ONLY:
		fd = uffd_syscall(UFFD_USER_MODE_ONLY);
		break;
	default:
		return -EINVAL;
	}
	if (fd < 0)
		return fd;
	*fd_p = fd;
	return 0;
}

int dsm_uffd_handshake(int fd, uint64_t want, uint64_t *features_p, uint64_t *ioctls_p)
{
	struct uffdio_api api = {.api = UFFD_API, .features = want};

	if (ioctl(fd, UFFDIO_API, &api) < 0)
		return -errno;
	if ((api.features & want) != want)
		return -EOPNOTSUPP;
	if (features_p)
		*features_p = api.features;
	if (ioctls_p)
		*ioctls_p = api.ioctls;
	return 0;
}

int dsm_uffd_kernel_features(enum dsm_uffd_mode mode, uint64_t *features_p)
{
	int fd, ret;

	ret = dsm_uffd_open(mode, &fd);
	if (ret < 0)
		return ret;
	ret = dsm_uffd_handshake(fd, 0, features_p, NULL);
	close(fd);
	return ret;
}

bool dsm_uffd_wp_async_ok(enum dsm_uffd_mode mode, char *why, size_t n)
{
	struct pm_scan_arg arg = {.size = sizeof(arg)};
	uint64_t features = 0;
	int fd, ret;

	if (dsm_uffd_kernel_features(mode, &features) < 0 ||
	    (features & (UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_MOVE)) !=
	            (UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_MOVE)) {
		if (why)
			snprintf(why, n, "the kernel lacks UFFD_FEATURE_%s",
			         features & UFFD_FEATURE_WP_ASYNC ? "MOVE (Linux 6.8)"
			                                          : "WP_ASYNC (Linux 6.7)");
		return false;
	}
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (why)
			snprintf(why, n, "/proc/self/pagemap: %s", strerror(errno));
		return false;
	}
	/* An empty range: the ioctl is known and does nothing. */
	ret = ioctl(fd, PAGEMAP_SCAN, &arg);
	if (ret < 0 && why)
		snprintf(why, n, "PAGEMAP_SCAN: %s (Linux 6.7)", strerror(errno));
	close(fd);
	return ret >= 0;
}

static bool has_cap_sys_ptrace(void)
{
	char line[256];
	unsigned long long caps = 0;
	FILE *f = fopen("/proc/self/status", "re");

	if (f == NULL)
		return false;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &caps) == 1)
			break;
	fclose(f);
	return (caps >> CAP_SYS_PTRACE_BIT) & 1;
}

int dsm_read_int_file(const char *path)
{
	int v = -1;
	FILE *f = fopen(path, "re");

	if (f == NULL)
		return -1;
	if (fscanf(f, "%d", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static const char *full_grant(const struct dsm_uffd_access *a)
{
	if (a->cap_sys_ptrace)
		return a->euid == 0 ? "running as root (CAP_SYS_PTRACE)"
		                    : "the process has CAP_SYS_PTRACE";
	if (a->unprivileged_sysctl == 1)
		return "vm.unprivileged_userfaultfd=1";
	return "userfaultfd(2) allowed it";
}

void dsm_uffd_access_probe(struct dsm_uffd_access *a)
{
	int fd;

	memset(a, 0, sizeof(*a));
	a->euid = (unsigned)geteuid();
	a->cap_sys_ptrace = has_cap_sys_ptrace();
	a->unprivileged_sysctl = dsm_read_int_file("/proc/sys/vm/unprivileged_userfaultfd");
	a->dev_exists = access("/dev/userfaultfd", F_OK) == 0;

	fd = uffd_dev_open();
	a->dev_accessible = fd >= 0;
	if (fd >= 0)
		close(fd);

	fd = uffd_syscall(0);
	if (fd >= 0) {
		close(fd);
		a->mode = DSM_UFFD_FULL;
		a->via = "userfaultfd(2)";
		snprintf(a->reason, sizeof(a->reason), "full mode: %s", full_grant(a));
		return;
	}
	a->full_errno = -fd;
	if (a->dev_accessible) {
		a->mode = DSM_UFFD_FULL;
		a->via = "/dev/userfaultfd";
		snprintf(a->reason, sizeof(a->reason),
		         "full mode: /dev/userfaultfd is readable and writable by uid %u", a->euid);
		return;
	}

	fd = uffd_syscall(UFFD_USER_MODE_ONLY);
	if (fd >= 0) {
		close(fd);
		a->mode = DSM_UFFD_USER_ONLY;
		a->via = "userfaultfd(2) with UFFD_USER_MODE_ONLY";
		snprintf(a->reason, sizeof(a->reason),
		         "user-mode-only: uid %u lacks CAP_SYS_PTRACE, "
		         "vm.unprivileged_userfaultfd=%d "
		         "and %s; kernel accesses to absent heap pages (read(2), MPI receives) "
		         "will fail with EFAULT",
		         a->euid, a->unprivileged_sysctl,
		         a->dev_exists ? "/dev/userfaultfd is not accessible"
		                       : "there is no /dev/userfaultfd");
		snprintf(a->fix, sizeof(a->fix),
		         "sysctl -w vm.unprivileged_userfaultfd=1, or grant this user read-write "
		         "access to /dev/userfaultfd (a udev rule or ACL)");
		return;
	}

	a->mode = DSM_UFFD_NONE;
	a->via = "none";
	if (-fd == ENOSYS) {
		snprintf(a->reason, sizeof(a->reason),
		         "userfaultfd(2) is not implemented (ENOSYS): the kernel lacks "
		         "CONFIG_USERFAULTFD or a seccomp filter blocks the call");
		snprintf(
		        a->fix, sizeof(a->fix),
		        "use a kernel built with CONFIG_USERFAULTFD=y, or allow userfaultfd in the "
		        "container's seccomp profile");
	} else {
		snprintf(a->reason, sizeof(a->reason),
		         "userfaultfd(2) was refused in every mode: %s", strerror(-fd));
		snprintf(a->fix, sizeof(a->fix),
		         "sysctl -w vm.unprivileged_userfaultfd=1, or allow userfaultfd in the "
		         "container's seccomp profile");
	}
}
