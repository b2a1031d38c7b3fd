/* SPDX-License-Identifier: MIT */
/*
 * The settings registry (common/settings.h): every entry is well formed, every
 * default parses, values of each type parse, and a malformed value of each
 * type is refused with one line that names the variable, the value and what
 * is allowed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/settings.h"

/* Runs dsm_setting_get(@id) with stderr captured into @out. */
static int get_logged(enum dsm_setting_id id, struct dsm_setting_value *v, char *out, size_t n)
{
	FILE *tmp = tmpfile();
	int saved = dup(STDERR_FILENO), ret;
	size_t got;

	assert_non_null(tmp);
	dup2(fileno(tmp), STDERR_FILENO);
	ret = dsm_setting_get(id, v);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(tmp);
	got = fread(out, 1, n - 1, tmp);
	out[got] = '\0';
	fclose(tmp);
	return ret;
}

static void clear_env(void)
{
	for (unsigned i = 0; i < DSM_SETTING_COUNT; i++)
		unsetenv(dsm_setting_info((enum dsm_setting_id)i)->name);
}

static void test_registry_well_formed(void **state)
{
	struct dsm_setting_value v;

	(void)state;
	clear_env();
	for (unsigned i = 0; i < DSM_SETTING_COUNT; i++) {
		const struct dsm_setting *s = dsm_setting_info((enum dsm_setting_id)i);

		assert_non_null(s->name);
		assert_int_equal(strncmp(s->name, "DSM_", 4), 0);
		assert_ptr_equal(dsm_setting_by_name(s->name), s); /* names are unique */
		assert_non_null(s->help);
		assert_non_null(s->def_doc);
		assert_non_null(s->layer);
		if (s->type == DSM_SETTING_ENUM)
			assert_non_null(s->choices);
		if (s->type == DSM_SETTING_INT || s->type == DSM_SETTING_SIZE)
			assert_true(s->min <= s->max);
		/* The default is a value like any other, and the docs say that one... */
		if (s->def) {
			assert_int_equal(dsm_setting_parse(s, s->def, &v, NULL, 0), 0);
			assert_string_equal(s->def, s->def_doc);
		}
		/* ...and what an unset variable reads as. */
		assert_int_equal(dsm_setting_lookup((enum dsm_setting_id)i, &v, NULL, 0), 0);
	}
	assert_null(dsm_setting_by_name("DSM_NO_SUCH_SETTING"));
	assert_null(dsm_setting_info(DSM_SETTING_COUNT));
}

static void test_parse_size(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(dsm_parse_size("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(dsm_parse_size("64K", &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(dsm_parse_size("64k", &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(dsm_parse_size("2GiB", &v), 0);
	assert_int_equal(v, 2ull << 30);
	assert_int_equal(dsm_parse_size("16T", &v), 0);
	assert_int_equal(v, 16ull << 40);
	assert_int_equal(dsm_parse_size("1MB", &v), 0);
	assert_int_equal(v, 1ull << 20);
	v = 7;
	assert_int_equal(dsm_parse_size("", &v), -EINVAL);
	assert_int_equal(dsm_parse_size("0", &v), -EINVAL);
	assert_int_equal(dsm_parse_size("-4K", &v), -EINVAL);
	assert_int_equal(dsm_parse_size("12Q", &v), -EINVAL);
	assert_int_equal(dsm_parse_size("12KX", &v), -EINVAL);
	assert_int_equal(dsm_parse_size("64 ", &v), -EINVAL); /* ' ' & ~0x20 is the terminator */
	assert_int_equal(dsm_parse_size("4096 ", &v), -EINVAL);
	assert_int_equal(dsm_parse_size("99999999999999999999", &v), -EINVAL);
	assert_int_equal(dsm_parse_size("16777216P", &v), -EINVAL); /* 2^24 PiB overflows */
	assert_int_equal(v, 7); /* outputs are set only on success */
}

static void test_values_of_each_type(void **state)
{
	struct dsm_setting_value v;
	uint64_t u;
	bool b, set;

	(void)state;
	clear_env();
	setenv("DSM_LINE_SIZE", "64K", 1);
	assert_int_equal(dsm_setting_u64(DSM_SETTING_LINE_SIZE, &u, &set), 0);
	assert_int_equal(u, 65536);
	assert_true(set);
	setenv("DSM_HOLD_US", "350", 1);
	assert_int_equal(dsm_setting_u64(DSM_SETTING_HOLD_US, &u, &set), 0);
	assert_int_equal(u, 350);
	setenv("DSM_DATA", "RDMA", 1); /* names are case-insensitive */
	assert_int_equal(dsm_setting_u64(DSM_SETTING_DATA, &u, NULL), 0);
	assert_int_equal(u, 2);
	setenv("DSM_HOLD_EARLY", "off", 1);
	assert_int_equal(dsm_setting_bool(DSM_SETTING_HOLD_EARLY, &b), 0);
	assert_false(b);
	setenv("DSM_PROVIDER", "tcp;ofi_rxm", 1);
	assert_string_equal(dsm_setting_string(DSM_SETTING_PROVIDER), "tcp;ofi_rxm");
	/* An enum that takes a size too: the names, then sizes past DSM_SETTING_NUMBER. */
	setenv("DSM_CACHE_SIZE", "Unlimited", 1);
	assert_int_equal(dsm_setting_u64(DSM_SETTING_CACHE_SIZE, &u, NULL), 0);
	assert_int_equal(u, 1);
	setenv("DSM_CACHE_SIZE", "0", 1);
	assert_int_equal(dsm_setting_u64(DSM_SETTING_CACHE_SIZE, &u, NULL), 0);
	assert_int_equal(u, 2);
	setenv("DSM_CACHE_SIZE", "64M", 1);
	assert_int_equal(dsm_setting_u64(DSM_SETTING_CACHE_SIZE, &u, NULL), 0);
	assert_int_equal(u, DSM_SETTING_NUMBER + (64u << 20));
	unsetenv("DSM_CACHE_SIZE");
	assert_int_equal(dsm_setting_u64(DSM_SETTING_CACHE_SIZE, &u, &set), 0);
	assert_int_equal(u, 0); /* auto */
	assert_false(set);
	/* auto: half of the node's memory over its ranks, nothing when there are none. */
	assert_true(dsm_setting_cache_auto(1) > 0);
	assert_true(dsm_setting_cache_auto(2) <= dsm_setting_cache_auto(1) / 2 + 1);
	assert_int_equal(dsm_setting_cache_auto(0), 0);
	/* Unset: the default, and it says so. */
	unsetenv("DSM_HOLD_US");
	assert_int_equal(dsm_setting_u64(DSM_SETTING_HOLD_US, &u, &set), 0);
	assert_int_equal(u, 200);
	assert_false(set);
	/* Empty counts as unset (sbatch templates pass DSM_PROVIDER= for "choose"). */
	setenv("DSM_PROVIDER", "", 1);
	assert_null(dsm_setting_string(DSM_SETTING_PROVIDER));
	setenv("DSM_HOLD_US", "", 1);
	assert_int_equal(dsm_setting_get(DSM_SETTING_HOLD_US, &v), 0);
	assert_int_equal(v.v, 200);
	assert_int_equal(dsm_settings_check(), 0);
	clear_env();
}

/* One malformed value per type: refused, and the line says what and why. */
static void test_malformed_each_type(void **state)
{
	static const struct {
		enum dsm_setting_id id;
		const char *value, *says;
	} cases[] = {
	        /* size: not a power of two, then garbage, then out of range */
	        {DSM_SETTING_LINE_SIZE, "3000",
	         "DSM_LINE_SIZE='3000' is not valid: want a power of two from 4K to 1G"},
	        {DSM_SETTING_HEAP_SIZE, "lots",
	         "DSM_HEAP_SIZE='lots' is not valid: want a size from 4K to 64T"},
	        {DSM_SETTING_HEAP_SIZE, "128T", "DSM_HEAP_SIZE='128T' is not valid"},
	        /* integer: garbage, negative, out of range */
	        {DSM_SETTING_HOLD_US, "abc",
	         "DSM_HOLD_US='abc' is not valid: want an integer from 0 to 10000000 (us)"},
	        {DSM_SETTING_TP_HEARTBEAT_MS, "-5", "DSM_TP_HEARTBEAT_MS='-5' is not valid"},
	        {DSM_SETTING_TP_SEND_BUFS, "0",
	         "DSM_TP_SEND_BUFS='0' is not valid: want an integer from 1 to 65536"},
	        /* enum */
	        {DSM_SETTING_DATA, "carrier-pigeon",
	         "DSM_DATA='carrier-pigeon' is not valid: want one of: auto inline rdma"},
	        {DSM_SETTING_LOG, "garbage",
	         "DSM_LOG='garbage' is not valid: want one of: error warn info debug"},
	        {DSM_SETTING_OVERCOMMIT, "maybe", "want one of: read strict lazy"},
	        /* an enum or a size: below the smallest size, and neither */
	        {DSM_SETTING_CACHE_SIZE, "1K",
	         "DSM_CACHE_SIZE='1K' is not valid: want one of: auto unlimited 0, or a size from "
	         "4K to 64T"},
	        {DSM_SETTING_CACHE_SIZE, "lots", "DSM_CACHE_SIZE='lots' is not valid"},
	        /* boolean */
	        {DSM_SETTING_HOLD_EARLY, "maybe",
	         "DSM_HOLD_EARLY='maybe' is not valid: want 1 or 0 (also yes/no, on/off, "
	         "true/false)"},
	        {DSM_SETTING_STATS, "2", "DSM_STATS='2' is not valid: want 1 or 0"},
	};
	struct dsm_setting_value v;
	char out[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		clear_env();
		setenv(dsm_setting_info(cases[i].id)->name, cases[i].value, 1);
		assert_int_equal(get_logged(cases[i].id, &v, out, sizeof(out)), -EINVAL);
		if (strstr(out, cases[i].says) == NULL)
			fail_msg("%s='%s': the log line '%s' does not say '%s'",
			         dsm_setting_info(cases[i].id)->name, cases[i].value, out,
			         cases[i].says);
		/* Exactly one line, and the check of all settings refuses it too. */
		assert_non_null(strchr(out, '\n'));
		assert_null(strchr(strchr(out, '\n') + 1, '\n'));
		assert_int_equal(dsm_settings_check(), -EINVAL);
	}
	printf("settings: %zu malformed values refused, each with its line\n",
	       sizeof(cases) / sizeof(cases[0]));
	clear_env();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_registry_well_formed),
	        cmocka_unit_test(test_parse_size),
	        cmocka_unit_test(test_values_of_each_type),
	        cmocka_unit_test(test_malformed_each_type),
	};

	return cmocka_run_group_tests_name("settings", tests, NULL, NULL);
}
