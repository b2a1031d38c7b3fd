/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "runtime/config.h"

static int clear_env(void **state)
{
	(void)state;
	unsetenv("DSM_HEAP_SIZE");
	unsetenv("DSM_LINE_SIZE");
	unsetenv("DSM_PROVIDER");
	unsetenv("DSM_STATS");
	unsetenv("DSM_DATA");
	return 0;
}

static void test_defaults(void **state)
{
	struct dsm_rt_config c;

	(void)state;
	assert_int_equal(dsm_rt_config_resolve(NULL, &c), 0);
	assert_int_equal(c.heap_size, DSM_RT_DEFAULT_HEAP_SIZE);
	assert_int_equal(c.line_size, (size_t)sysconf(_SC_PAGESIZE));
	assert_string_equal(c.provider, "");
	assert_false(c.stats);
}

static void test_env_and_precedence(void **state)
{
	struct dsm_rt_config c;
	dsm_config_t cfg = DSM_CONFIG_INIT;

	(void)state;
	setenv("DSM_HEAP_SIZE", "1G", 1);
	setenv("DSM_LINE_SIZE", "64K", 1);
	setenv("DSM_PROVIDER", "tcp;ofi_rxm", 1);
	setenv("DSM_STATS", "1", 1);
	assert_int_equal(dsm_rt_config_resolve(NULL, &c), 0);
	assert_int_equal(c.heap_size, 1ull << 30);
	assert_int_equal(c.line_size, 65536);
	assert_string_equal(c.provider, "tcp;ofi_rxm");
	assert_true(c.stats);

	/* A field the program set wins over the environment. */
	cfg.heap_size = 2ull << 30;
	cfg.line_size = 2 * (size_t)sysconf(_SC_PAGESIZE);
	cfg.provider = "shm";
	assert_int_equal(dsm_rt_config_resolve(&cfg, &c), 0);
	assert_int_equal(c.heap_size, 2ull << 30);
	assert_int_equal(c.line_size, cfg.line_size);
	assert_string_equal(c.provider, "shm");
	clear_env(NULL);
}

static void test_bad_settings(void **state)
{
	struct dsm_rt_config c;
	dsm_config_t cfg = DSM_CONFIG_INIT;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	unsigned char big[sizeof(dsm_config_t) + 16] = {0};

	(void)state;
	cfg.line_size = page + page / 2; /* not a power of two */
	assert_int_equal(dsm_rt_config_resolve(&cfg, &c), -EINVAL);
	cfg.line_size = page / 2; /* below the page size */
	assert_int_equal(dsm_rt_config_resolve(&cfg, &c), -EINVAL);
	cfg.line_size = 0;
	cfg.heap_size = DSM_RT_MAX_HEAP_SIZE * 2;
	assert_int_equal(dsm_rt_config_resolve(&cfg, &c), -EINVAL);
	cfg.heap_size = 0;
	cfg.struct_size = 0; /* not initialized with DSM_CONFIG_INIT */
	assert_int_equal(dsm_rt_config_resolve(&cfg, &c), -EINVAL);

	/* A larger struct from a newer header: fine while the unknown tail is zero. */
	memcpy(big, &(dsm_config_t)DSM_CONFIG_INIT, sizeof(dsm_config_t));
	((dsm_config_t *)big)->struct_size = sizeof(big);
	assert_int_equal(dsm_rt_config_resolve((dsm_config_t *)big, &c), 0);
	big[sizeof(dsm_config_t) + 3] = 1;
	assert_int_equal(dsm_rt_config_resolve((dsm_config_t *)big, &c), -EINVAL);

	setenv("DSM_LINE_SIZE", "lots", 1);
	assert_int_equal(dsm_rt_config_resolve(NULL, &c), -EINVAL);
	clear_env(NULL);
	setenv("DSM_PROVIDER",
	       "a-provider-name-that-is-far-too-long-to-be-any-real-libfabric-provider", 1);
	assert_int_equal(dsm_rt_config_resolve(NULL, &c), -EINVAL);
	clear_env(NULL);
	setenv("DSM_DATA", "carrier-pigeon", 1);
	assert_int_equal(dsm_rt_config_resolve(NULL, &c), -EINVAL);
	clear_env(NULL);
}

static void test_data_path(void **state)
{
	static const struct {
		const char *v;
		int want;
	} cases[] = {{NULL, DSM_RT_DATA_AUTO},
	             {"", DSM_RT_DATA_AUTO},
	             {"auto", DSM_RT_DATA_AUTO},
	             {"inline", DSM_RT_DATA_INLINE},
	             {"rdma", DSM_RT_DATA_RDMA}};
	struct dsm_rt_config c;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (cases[i].v)
			setenv("DSM_DATA", cases[i].v, 1);
		else
			unsetenv("DSM_DATA");
		assert_int_equal(dsm_rt_config_resolve(NULL, &c), 0);
		assert_int_equal(c.data, cases[i].want);
	}
	clear_env(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup(test_defaults, clear_env),
	        cmocka_unit_test_setup(test_env_and_precedence, clear_env),
	        cmocka_unit_test_setup(test_bad_settings, clear_env),
	        cmocka_unit_test_setup(test_data_path, clear_env),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
