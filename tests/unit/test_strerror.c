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

/* include/dsm.h and common/error.h carry the enum under one guard: the same values. */
extern const int dsm_test_common_codes[];

static void test_public_and_common_agree(void **state)
{
	static const int pub[] = {
	        DSM_ERR_NOT_INIT, DSM_ERR_ALREADY_INIT, DSM_ERR_MISMATCH, DSM_ERR_PEER_DEAD,
	        DSM_ERR_NO_UFFD,  DSM_ERR_NO_PROVIDER,  DSM_ERR_PROTOCOL, DSM_ERR_NO_ADDRESS,
	        DSM_ERR_FOREIGN,  DSM_ERR_LAST,
	};

	(void)state;
	for (size_t i = 0; i < sizeof(pub) / sizeof(pub[0]); i++)
		assert_int_equal(pub[i], dsm_test_common_codes[i]);
	/* Every code from NOT_INIT down to LAST is listed: none was added on one side only. */
	assert_int_equal(DSM_ERR_NOT_INIT - DSM_ERR_LAST + 1, sizeof(pub) / sizeof(pub[0]));
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
	        cmocka_unit_test(test_public_and_common_agree),
	        cmocka_unit_test(test_errno_and_unknown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
