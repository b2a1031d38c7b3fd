/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <dsm.h>

static void test_own_codes_are_named(void **state)
{
	(void)state;
	for (int e = DSM_ERR_NOT_INIT; e > DSM_ERR_LAST; e--) {
		const char *s = dsm_strerror(e);

		assert_non_null(s);
		assert_null(strstr(s, "unknown"));
		assert_string_equal(s, dsm_strerror(-e)); /* either sign */
		for (int o = DSM_ERR_NOT_INIT; o > e; o--)
			assert_string_not_equal(s, dsm_strerror(o));
	}
}

static void test_errno_and_unknown(void **state)
{
	(void)state;
	assert_string_equal(dsm_strerror(0), "success");
	assert_string_equal(dsm_strerror(-EINVAL), strerror(EINVAL));
	assert_string_equal(dsm_strerror(-ENOMEM), strerror(ENOMEM));
	assert_string_equal(dsm_strerror(DSM_ERR_LAST), "unknown libdsm error");
	assert_string_equal(dsm_strerror(-100000), "unknown libdsm error");
	assert_non_null(dsm_strerror(-2147483647));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_own_codes_are_named),
	        cmocka_unit_test(test_errno_and_unknown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
