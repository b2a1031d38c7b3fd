/* SPDX-License-Identifier: MIT */
/*
 * dsm-info's probes, checked against what this machine really does: the
 * userfaultfd mode and its reason (also for an unprivileged child), the fault
 * probe, the feature names, libfabric, hwloc and MPI.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/uffd.h"
#include "tools/probe.h"

#define NOBODY        65534
#define SYSCTL_UNPRIV "/proc/sys/vm/unprivileged_userfaultfd"

static int read_int(const char *path)
{
	int v = -1;
	FILE *f = fopen(path, "r");

	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static int write_int(const char *path, int v)
{
	FILE *f = fopen(path, "w");
	int ok;

	if (f == NULL)
		return -1;
	ok = fprintf(f, "%d\n", v) > 0;
	return (fclose(f) == 0 && ok) ? 0 : -1;
}

static void test_feature_names(void **state)
{
	(void)state;
	assert_string_equal(dsm_uffd_feature_name(0), "PAGEFAULT_FLAG_WP");
	assert_string_equal(dsm_uffd_feature_name(5), "MISSING_SHMEM");
	assert_string_equal(dsm_uffd_feature_name(6), "EVENT_UNMAP");
	/* The ones Debian 12's header lacks. */
	assert_string_equal(dsm_uffd_feature_name(13), "WP_UNPOPULATED");
	assert_string_equal(dsm_uffd_feature_name(14), "POISON");
	assert_string_equal(dsm_uffd_feature_name(15), "WP_ASYNC");
	assert_string_equal(dsm_uffd_feature_name(16), "MOVE");
	assert_null(dsm_uffd_feature_name(17));
	assert_null(dsm_uffd_feature_name(63));
}

static void test_kernel_features_have_wp(void **state)
{
	struct dsm_uffd_access a;
	uint64_t features = 0;

	(void)state;
	dsm_uffd_access_probe(&a);
	if (a.mode == DSM_UFFD_NONE)
		skip();
	assert_int_equal(dsm_uffd_kernel_features(a.mode, &features), 0);
	/* libdsm cannot work without write-protect faults; every kernel this runs on has them. */
	assert_true(features & UFFD_FEATURE_PAGEFAULT_FLAG_WP);
	/* A fresh fd must refuse a feature bit the kernel does not know. */
	int fd;
	assert_int_equal(dsm_uffd_open(a.mode, &fd), 0);
	assert_int_not_equal(dsm_uffd_handshake(fd, 1ull << 62, NULL, NULL), 0);
	close(fd);
}

static void test_access_privileged(void **state)
{
	struct dsm_uffd_access a;

	(void)state;
	dsm_uffd_access_probe(&a);
	if (!a.cap_sys_ptrace) {
		print_message("skipped: this process lacks CAP_SYS_PTRACE\n");
		skip();
	}
	assert_int_equal(a.mode, DSM_UFFD_FULL);
	assert_non_null(strstr(a.reason, "CAP_SYS_PTRACE"));
	assert_string_equal(a.fix, "");
}

struct child_report {
	struct dsm_uffd_access access;
	struct dsm_probe_fault fault;
	int drop_err;
};

/*
 * The refused case: a child that drops root to nobody, with
 * vm.unprivileged_userfaultfd=0 and no access to /dev/userfaultfd, must be
 * told user-mode-only, with the reason and the fix, and its user-space faults
 * must still be resolved. Only what this test changes is restored.
 */
static void test_access_refused_as_nobody(void **state)
{
	struct child_report rep;
	struct stat st;
	int old_sysctl, fds[2], status;
	bool sysctl_changed = false, dev_changed = false;
	pid_t pid;

	(void)state;
	if (geteuid() != 0) {
		print_message("skipped: needs root to drop privileges\n");
		skip();
	}
	old_sysctl = read_int(SYSCTL_UNPRIV);
	assert_true(old_sysctl == 0 || old_sysctl == 1);
	if (old_sysctl == 1) {
		assert_int_equal(write_int(SYSCTL_UNPRIV, 0), 0);
		sysctl_changed = true;
	}
	if (stat("/dev/userfaultfd", &st) == 0 && (st.st_mode & 0006)) {
		assert_int_equal(chmod("/dev/userfaultfd", st.st_mode & 07770), 0);
		dev_changed = true;
	}

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		memset(&rep, 0, sizeof(rep));
		if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY))
			rep.drop_err = errno;
		else {
			dsm_uffd_access_probe(&rep.access);
			dsm_probe_fault(rep.access.mode, 8, 5000, &rep.fault);
		}
		_exit(write(fds[1], &rep, sizeof(rep)) == sizeof(rep) ? 0 : 1);
	}
	close(fds[1]);
	ssize_t n = read(fds[0], &rep, sizeof(rep));
	close(fds[0]);
	waitpid(pid, &status, 0);

	if (sysctl_changed)
		write_int(SYSCTL_UNPRIV, old_sysctl);
	if (dev_changed)
		chmod("/dev/userfaultfd", st.st_mode & 07777);

	assert_int_equal(n, sizeof(rep));
	assert_int_equal(rep.drop_err, 0);
	assert_int_equal(rep.access.euid, NOBODY);
	assert_false(rep.access.cap_sys_ptrace);
	assert_false(rep.access.dev_accessible);
	assert_int_equal(rep.access.unprivileged_sysctl, 0);
	assert_int_equal(rep.access.mode, DSM_UFFD_USER_ONLY);
	assert_int_equal(rep.access.full_errno, EPERM);
	print_message("nobody: %s\n", rep.access.reason);
	assert_non_null(strstr(rep.access.reason, "user-mode-only"));
	assert_non_null(strstr(rep.access.reason, "CAP_SYS_PTRACE"));
	assert_non_null(strstr(rep.access.reason, "vm.unprivileged_userfaultfd=0"));
	assert_non_null(strstr(rep.access.fix, "sysctl -w vm.unprivileged_userfaultfd=1"));
	/* User-space faults still work in user-mode-only mode. */
	assert_true(rep.fault.ok);
	assert_int_equal(rep.fault.missing_faults, 8);
	assert_int_equal(rep.fault.wp_faults, 8);
	/* And nothing this test touched stayed changed. */
	assert_int_equal(read_int(SYSCTL_UNPRIV), old_sysctl);
}

static void test_fault_probe(void **state)
{
	struct dsm_uffd_access a;
	struct dsm_probe_fault f;

	(void)state;
	dsm_uffd_access_probe(&a);
	if (a.mode == DSM_UFFD_NONE)
		skip();
	dsm_probe_fault(a.mode, 64, 10000, &f);
	if (!f.ok)
		print_message("probe error: %s\n", f.error);
	assert_true(f.ok);
	assert_int_equal(f.pages, 64);
	assert_int_equal(f.missing_faults, 64);
	assert_int_equal(f.wp_faults, 64);
	assert_true(f.missing_us > 0 && f.wp_us > 0);
	print_message("MISSING+COPY %.1f us, WP %.1f us per fault\n", f.missing_us, f.wp_us);

	dsm_probe_fault(DSM_UFFD_NONE, 4, 1000, &f);
	assert_false(f.ok);
	assert_true(strlen(f.error) > 0);
}

static void test_kernel_and_vm(void **state)
{
	struct dsm_probe_kernel k;
	struct dsm_probe_vm vm;
	struct utsname u;
	int major = 0;

	(void)state;
	dsm_probe_kernel(&k);
	assert_int_equal(uname(&u), 0);
	assert_string_equal(k.release, u.release);
	assert_int_equal(sscanf(k.release, "%d.", &major), 1);
	assert_true(major >= 5);

	dsm_probe_vm(&vm);
	assert_int_equal(vm.overcommit_memory, read_int("/proc/sys/vm/overcommit_memory"));
	assert_int_equal(vm.max_map_count, read_int("/proc/sys/vm/max_map_count"));
	assert_true(strlen(vm.overcommit_note) > 0 && strlen(vm.map_count_note) > 0);
}

static void test_fabric(void **state)
{
	struct dsm_probe_fabric f;

	(void)state;
	dsm_probe_fabric(&f);
	assert_true(strlen(f.version) >= 3);
	if (f.nproviders == 0)
		print_message("error: %s\n", f.error);
	assert_true(f.nproviders >= 1);
	for (int i = 0; i < f.nproviders; i++) {
		assert_true(strlen(f.providers[i].name) > 0);
		assert_true(strlen(f.providers[i].domains) > 0);
		for (int j = 0; j < i; j++)
			assert_string_not_equal(f.providers[i].name, f.providers[j].name);
	}
}

static void test_hwloc(void **state)
{
	struct dsm_probe_hwloc h;

	(void)state;
	dsm_probe_hwloc(&h);
	assert_string_equal(h.error, "");
	assert_true(h.packages >= 1);
	assert_true(h.numa_nodes >= 1);
	assert_true(h.cores >= 1);
	assert_true(h.pus >= h.cores);
	assert_true(h.pus <= sysconf(_SC_NPROCESSORS_CONF));
}

static void test_mpi(void **state)
{
	struct dsm_probe_mpi m;

	(void)state;
	dsm_probe_mpi(&m);
	assert_true(strlen(m.version) > 0);
	assert_null(strchr(m.version, '\n'));
	assert_true(m.major >= 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_feature_names),
	        cmocka_unit_test(test_kernel_features_have_wp),
	        cmocka_unit_test(test_access_privileged),
	        cmocka_unit_test(test_access_refused_as_nobody),
	        cmocka_unit_test(test_fault_probe),
	        cmocka_unit_test(test_kernel_and_vm),
	        cmocka_unit_test(test_fabric),
	        cmocka_unit_test(test_hwloc),
	        cmocka_unit_test(test_mpi),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
