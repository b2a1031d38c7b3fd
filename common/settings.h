/* SPDX-License-Identifier: MIT */
/*
 * The settings registry: every DSM_* environment variable that libdsm reads,
 * declared once (settings.c) with its type, default, range and one line of
 * help, and parsed in one place. Each layer reads its own settings through it;
 * dsm_init() checks them all first, so a malformed value is refused before
 * anything starts, with one line naming the variable, the value and what is
 * allowed. dsm-info --settings lists the registry.
 */
#ifndef DSM_COMMON_SETTINGS_H
#define DSM_COMMON_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dsm_setting_type {
	DSM_SETTING_SIZE = 1, /* bytes: 65536, 64K, 16T, 2GiB (binary suffixes) */
	DSM_SETTING_INT,      /* a decimal integer in [min, max] */
	DSM_SETTING_ENUM,     /* one of the names in choices (case-insensitive); value = index */
	DSM_SETTING_BOOL,     /* 1, 0, yes, no, on, off, true, false */
	DSM_SETTING_STRING,   /* free text, checked by the layer that uses it */
};

/* The settings, in the order dsm-info and README list them. */
enum dsm_setting_id {
	DSM_SETTING_HEAP_SIZE,
	DSM_SETTING_LINE_SIZE,
	DSM_SETTING_PROVIDER,
	DSM_SETTING_LOG,
	DSM_SETTING_STATS,
	DSM_SETTING_DATA,
	DSM_SETTING_SPIN_US,
	DSM_SETTING_WAIT_US,
	DSM_SETTING_PREFETCH,
	DSM_SETTING_OVERCOMMIT,
	DSM_SETTING_HOLD_US,
	DSM_SETTING_HOLD_EARLY,
	DSM_SETTING_MIGRATORY,
	DSM_SETTING_MW_TRACK,
	DSM_SETTING_CACHE_SIZE,
	DSM_SETTING_PROFILE,
	DSM_SETTING_ON_DEATH,
	DSM_SETTING_RESTART,
	DSM_SETTING_CKPT_RATE,
	DSM_SETTING_RESTART_ROUND,
	DSM_SETTING_DEBUG_FREE,
	DSM_SETTING_TP_HEARTBEAT_MS,
	DSM_SETTING_TP_DEAD_MS,
	DSM_SETTING_TP_SEND_BUFS,
	DSM_SETTING_TP_NO_PIDFD,
	DSM_SETTING_TP_NO_WAIT_FD,
	DSM_SETTING_MR_PROV_KEY,
	DSM_SETTING_COUNT,
};

/* SIZE: a power of two, at least the page size (the line size). */
#define DSM_SETTING_F_POW2_PAGES 0x1
/* ENUM: an integer in [min, max] is taken too, as DSM_SETTING_NUMBER + the integer. */
#define DSM_SETTING_F_OR_INT 0x2
#define DSM_SETTING_NUMBER   (1ull << 32)
/* ENUM: a size in [min, max] is taken too, as DSM_SETTING_NUMBER + the size. */
#define DSM_SETTING_F_OR_SIZE 0x4

struct dsm_setting {
	const char *name; /* "DSM_HOLD_US" */
	enum dsm_setting_type type;
	unsigned flags;             /* DSM_SETTING_F_* */
	const char *layer;          /* who reads it: "runtime", "transport", "common" */
	const char *config_field;   /* the dsm_config_t field that overrides it, or NULL */
	const char *def;            /* the default, as a value would be written; NULL: computed */
	const char *def_doc;        /* the default as the docs say it ("the page size") */
	uint64_t min, max;          /* SIZE and INT */
	const char *const *choices; /* ENUM: NULL-terminated */
	const char *unit;           /* INT: "us", "ms", or NULL */
	const char *help;           /* one line */
};

/* DSM_CACHE_SIZE=auto for one of @local ranks on this node: half of the node's memory
 * (MemTotal, or the cgroup's memory limit where lower), shared evenly; 0 (unlimited) where
 * /proc/meminfo cannot be read. */
size_t dsm_setting_cache_auto(unsigned local);

/* A setting's value: SIZE bytes, INT, ENUM index, BOOL 0 or 1; text for STRING (NULL if
 * unset). */
struct dsm_setting_value {
	uint64_t v;
	const char *text;
};

const struct dsm_setting *dsm_setting_info(enum dsm_setting_id id);
/* The setting called @name ("DSM_LINE_SIZE"), or NULL. */
const struct dsm_setting *dsm_setting_by_name(const char *name);

/*
 * Parses @text as a value of @s. 0, or -EINVAL with @why (if not NULL) saying what is
 * allowed: "want an integer from 0 to 10000000 (us)".
 */
int dsm_setting_parse(const struct dsm_setting *s, const char *text, struct dsm_setting_value *out,
                      char *why, size_t whylen);

/*
 * The value in the environment, without logging: 1 (set and valid), 0 (unset or empty: the
 * default, or v = 0 and text = NULL where the default is computed), -EINVAL (malformed:
 * @why says what is allowed, *out holds the default).
 */
int dsm_setting_lookup(enum dsm_setting_id id, struct dsm_setting_value *out, char *why,
                       size_t whylen);

/*
 * The same, and a malformed value is logged as an error naming the variable, the value and
 * what is allowed: 1, 0 or -EINVAL. dsm_setting_u64 and dsm_setting_bool return 0 or -EINVAL;
 * u64 takes SIZE, INT, ENUM and BOOL settings, and *set_p (may be NULL) says whether the
 * environment set it.
 */
int dsm_setting_get(enum dsm_setting_id id, struct dsm_setting_value *out);
int dsm_setting_u64(enum dsm_setting_id id, uint64_t *out, bool *set_p);
int dsm_setting_bool(enum dsm_setting_id id, bool *out);
/* STRING settings: the text, or NULL when unset or empty. */
const char *dsm_setting_string(enum dsm_setting_id id);

/* Checks every setting in the environment; -EINVAL after one error line per bad one. */
int dsm_settings_check(void);

/* "64K", "16T", "4096", "2GiB" -> bytes. 0 or -EINVAL (garbage, zero, overflow). */
int dsm_parse_size(const char *s, uint64_t *out_p);

#endif
