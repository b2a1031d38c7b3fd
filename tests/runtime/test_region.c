/* SPDX-License-Identifier: MIT */
/*
 * The userfaultfd region against the real kernel: a handler thread resolves
 * faults with the region's operations, as the event loop will, and the tests
 * count the faults of each kind that each access must (and must not) raise.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/wait.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "runtime/region.h"

#define PAGES 16

struct fixture {
	struct dsm_rt_region r;
	char *area;
	size_t psz;
	int stop[2];
	pthread_t th;
	atomic_uint missing_read, missing_write, wp;
	atomic_int handler_err;
	char src[1 << 16];
};

static uint8_t pattern(size_t page)
{
	return (uint8_t)(0xA0 + page);
}

/* The handler: a read miss gets a read-only copy, a write miss a writable one, a WP fault an
 * upgrade. */
static void *handler(void *arg)
{
	struct fixture *f = arg;
	struct pollfd pfd[2] = {{f->r.uffd, POLLIN, 0}, {f->stop[0], POLLIN, 0}};

	for (;;) {
		struct dsm_rt_fault ft;
		int ret;

		if (poll(pfd, 2, -1) < 0)
			continue;
		if (pfd[1].revents)
			return NULL;
		ret = dsm_rt_region_read_fault(&f->r, &ft);
		if (ret == -EAGAIN)
			continue;
		if (ret == 0 && ft.wp) {
			atomic_fetch_add(&f->wp, 1);
			ret = dsm_rt_region_protect(&f->r, ft.addr, f->psz, false);
		} else if (ret == 0) {
			size_t page = (ft.addr - (uint64_t)f->area) / f->psz;

			atomic_fetch_add(ft.write ? &f->missing_write : &f->missing_read, 1);
			memset(f->src, pattern(page), f->psz);
			ret = dsm_rt_region_install(&f->r, ft.addr, f->src, f->psz, ft.write);
		}
		if (ret < 0)
			atomic_store(&f->handler_err, ret);
	}
}

static int setup(void **state)
{
	static struct fixture f;
	struct dsm_uffd_access a;

	dsm_uffd_access_probe(&a);
	if (a.mode == DSM_UFFD_NONE) {
		print_message("skipped: userfaultfd unavailable: %s\n", a.reason);
		return -1;
	}
	memset(&f, 0, sizeof(f));
	f.psz = (size_t)sysconf(_SC_PAGESIZE);
	f.area = mmap(NULL, PAGES * f.psz, PROT_READ | PROT_WRITE,
	              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(f.area != MAP_FAILED);
	assert_int_equal(dsm_rt_region_open(&f.r, f.area, PAGES * f.psz), 0);
	assert_int_equal(pipe(f.stop), 0);
	assert_int_equal(pthread_create(&f.th, NULL, handler, &f), 0);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(write(f->stop[1], "x", 1), 1);
	pthread_join(f->th, NULL);
	dsm_rt_region_close(&f->r);
	munmap(f->area, PAGES * f->psz);
	close(f->stop[0]);
	close(f->stop[1]);
	return 0;
}

static void reset_counts(struct fixture *f)
{
	atomic_store(&f->missing_read, 0);
	atomic_store(&f->missing_write, 0);
	atomic_store(&f->wp, 0);
}

static void expect_counts(struct fixture *f, unsigned mr, unsigned mw, unsigned wp)
{
	assert_int_equal(atomic_load(&f->handler_err), 0);
	assert_int_equal(atomic_load(&f->missing_read), mr);
	assert_int_equal(atomic_load(&f->missing_write), mw);
	assert_int_equal(atomic_load(&f->wp), wp);
}

static void test_read_then_write(void **state)
{
	struct fixture *f = *state;
	volatile char *p = f->area + 1 * f->psz;

	reset_counts(f);
	assert_int_equal(p[10], (char)pattern(1)); /* MISSING, installed read-only */
	expect_counts(f, 1, 0, 0);
	assert_int_equal(p[11], (char)pattern(1)); /* present: no fault */
	expect_counts(f, 1, 0, 0);
	p[10] = 'w'; /* WP fault: upgraded */
	expect_counts(f, 1, 0, 1);
	p[12] = 'x'; /* writable now: no fault */
	expect_counts(f, 1, 0, 1);
	assert_int_equal(p[10], 'w');
}

static void test_write_miss_is_writable(void **state)
{
	struct fixture *f = *state;
	volatile char *p = f->area + 2 * f->psz;

	reset_counts(f);
	p[0] = 'a'; /* a write miss gets a writable copy: one fault, not two */
	expect_counts(f, 0, 1, 0);
	assert_int_equal(p[0], 'a');
	assert_int_equal(p[1], (char)pattern(2));
	expect_counts(f, 0, 1, 0);
}

static void test_give_up_orders_and_refaults(void **state)
{
	struct fixture *f = *state;
	volatile char *p = f->area + 3 * f->psz;
	char buf[1 << 16];

	reset_counts(f);
	p[5] = 'z';
	expect_counts(f, 0, 1, 0);
	/* Give it up entirely: the data comes out, the page goes, the next read misses. */
	assert_int_equal(dsm_rt_region_give_up(&f->r, (uint64_t)p, f->psz, buf, false), 0);
	assert_int_equal(buf[5], 'z');
	assert_int_equal(buf[6], (char)pattern(3));
	assert_int_equal(p[5], (char)pattern(3)); /* refetched from "home": the old bytes */
	expect_counts(f, 1, 1, 0);

	/* Downgrade to read-only: reads stay local, the next write faults WP. */
	p[7] = 'q';
	expect_counts(f, 1, 1, 1);
	assert_int_equal(dsm_rt_region_give_up(&f->r, (uint64_t)p, f->psz, buf, true), 0);
	assert_int_equal(buf[7], 'q');
	assert_int_equal(p[7], 'q');
	expect_counts(f, 1, 1, 1);
	p[8] = 'r';
	expect_counts(f, 1, 1, 2);
}

static void test_install_twice_is_eexist_not_error(void **state)
{
	struct fixture *f = *state;
	uint64_t page = (uint64_t)(f->area + 4 * f->psz);
	char src[1 << 16];

	reset_counts(f);
	memset(src, 's', f->psz);
	assert_int_equal(dsm_rt_region_install(&f->r, page, src, f->psz, false), 0);
	memset(src, 't', 2 * f->psz);
	/* Already present: EEXIST is decided as "wake the waiters", not as a failure. */
	assert_int_equal(dsm_rt_region_install(&f->r, page, src, f->psz, false), 0);
	assert_int_equal(((volatile char *)page)[0], 's');
	/* A two-page install over one present and one absent page fills the absent one. */
	assert_int_equal(dsm_rt_region_install(&f->r, page, src, 2 * f->psz, true), 0);
	assert_int_equal(((volatile char *)page)[f->psz], 't');
	expect_counts(f, 0, 0, 0);
}

struct reader {
	struct fixture *f;
	size_t page;
	int ok;
};

static void *read_page(void *arg)
{
	struct reader *r = arg;
	volatile char *p = r->f->area + r->page * r->f->psz;

	r->ok = p[100] == (char)pattern(r->page);
	return NULL;
}

static void test_eight_threads_one_page(void **state)
{
	struct fixture *f = *state;
	pthread_t th[8];
	struct reader rd[8];
	unsigned faults;

	reset_counts(f);
	for (int i = 0; i < 8; i++) {
		rd[i] = (struct reader){f, 7, 0};
		assert_int_equal(pthread_create(&th[i], NULL, read_page, &rd[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		assert_true(rd[i].ok);
	}
	faults = atomic_load(&f->missing_read);
	print_message("8 threads on one page raised %u MISSING fault(s)\n", faults);
	/* Threads that fault before the install each queue a message; the later ones hit EEXIST. */
	assert_true(faults >= 1 && faults <= 8);
	assert_int_equal(atomic_load(&f->handler_err), 0);
}

/*
 * Refused full mode (nobody, vm.unprivileged_userfaultfd=0): the region opens
 * user-mode-only, user-space access works, and a kernel access to an absent
 * page fails with EFAULT, as the warning says. Runs in a child that drops root.
 */
static void test_user_mode_only(void **state)
{
	int fds[2], status, result[4] = {0};
	pid_t pid;

	(void)state;
	if (geteuid() != 0) {
		print_message("skipped: needs root to drop privileges\n");
		skip();
	}
	FILE *f = fopen("/proc/sys/vm/unprivileged_userfaultfd", "r");
	int unpriv = -1;
	if (f) {
		if (fscanf(f, "%d", &unpriv) != 1)
			unpriv = -1;
		fclose(f);
	}
	if (unpriv != 0) {
		print_message("skipped: vm.unprivileged_userfaultfd is not 0 here\n");
		skip();
	}
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct dsm_rt_region r;
		size_t psz = (size_t)sysconf(_SC_PAGESIZE);
		char *area, src[1 << 16];
		int zero;

		if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
			_exit(3);
		area = mmap(NULL, 4 * psz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		            0);
		result[0] =
		        dsm_rt_region_open(&r, area, 4 * psz) == 0 && r.mode == DSM_UFFD_USER_ONLY;
		memset(src, 'u', psz);
		result[1] = dsm_rt_region_install(&r, (uint64_t)area, src, psz, true) == 0 &&
		            area[7] == 'u';
		/* The kernel writes into page 1, absent: no one may resolve it, so EFAULT. */
		zero = open("/dev/zero", O_RDONLY);
		result[2] = read(zero, area + psz, psz) < 0 && errno == EFAULT;
		result[3] = 1;
		close(zero);
		_exit(write(fds[1], result, sizeof(result)) == sizeof(result) ? 0 : 1);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], result, sizeof(result)), sizeof(result));
	close(fds[0]);
	waitpid(pid, &status, 0);
	assert_true(result[3]);
	assert_true(result[0]); /* user-mode-only, with one warning */
	assert_true(result[1]); /* user-space access works */
	assert_true(result[2]); /* a kernel access to an absent page fails */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_read_then_write),
	        cmocka_unit_test(test_write_miss_is_writable),
	        cmocka_unit_test(test_give_up_orders_and_refaults),
	        cmocka_unit_test(test_install_twice_is_eexist_not_error),
	        cmocka_unit_test(test_eight_threads_one_page),
	        cmocka_unit_test(test_user_mode_only),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
