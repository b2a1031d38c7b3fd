/* SPDX-License-Identifier: MIT */
/*
 * The registry: every DSM_* setting, and how its values are read. Nothing
 * here logs (the logger itself reads DSM_LOG through it); settings_env.c
 * reports malformed values.
 */
#include "common/settings.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define KiB (1ull << 10)
#define GiB (1ull << 30)
#define TiB (1ull << 40)

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const data_paths[] = {"auto", "inline", "rdma", NULL};
static const char *const overcommit_modes[] = {"read", "strict", "lazy", NULL};
static const char *const prefetch_modes[] = {"off", "auto", NULL};
static const char *const mw_tracks[] = {"auto", "twin", "async", NULL};
static const char *const cache_modes[] = {"auto", "unlimited", "0", NULL};
static const char *const death_modes[] = {"exit", "continue", NULL};
static const char *const rate_modes[] = {"unlimited", NULL};

static const struct dsm_setting settings[DSM_SETTING_COUNT] = {
        [DSM_SETTING_HEAP_SIZE] = {"DSM_HEAP_SIZE", DSM_SETTING_SIZE, 0, "runtime", "heap_size",
                                   "16T", "16T", 4 * KiB, 64 * TiB, NULL, NULL,
                                   "address space reserved for the global heap"},
        [DSM_SETTING_LINE_SIZE] = {"DSM_LINE_SIZE", DSM_SETTING_SIZE, DSM_SETTING_F_POW2_PAGES,
                                   "runtime", "line_size", NULL, "the page size", 4 * KiB, GiB,
                                   NULL, NULL,
                                   "coherence unit, a power-of-two multiple of the page size"},
        [DSM_SETTING_PROVIDER] = {"DSM_PROVIDER", DSM_SETTING_STRING, 0, "transport", "provider",
                                  NULL, "the best available", 0, 0, NULL, NULL,
                                  "libfabric provider (shm, tcp;ofi_rxm, verbs;ofi_rxm, efa, cxi)"},
        [DSM_SETTING_LOG] = {"DSM_LOG", DSM_SETTING_ENUM, 0, "common", NULL, "warn", "warn", 0, 0,
                             log_levels, NULL, "how much libdsm says on stderr"},
        [DSM_SETTING_STATS] = {"DSM_STATS", DSM_SETTING_BOOL, 0, "runtime", NULL, "0", "0", 0, 1,
                               NULL, NULL, "print every rank's counters at dsm_finalize"},
        [DSM_SETTING_DATA] = {"DSM_DATA", DSM_SETTING_ENUM, 0, "runtime", NULL, "auto", "auto", 0,
                              0, data_paths, NULL,
                              "how a grant carries its line: inline, by RDMA read, or auto "
                              "(RDMA from 64 KiB lines)"},
        [DSM_SETTING_SPIN_US] = {"DSM_SPIN_US", DSM_SETTING_INT, 0, "runtime", NULL, "20", "20", 0,
                                 10000000, NULL, "us",
                                 "how long the event loop polls after its last work before it "
                                 "sleeps"},
        [DSM_SETTING_WAIT_US] = {"DSM_WAIT_US", DSM_SETTING_INT, 0, "runtime", NULL, "200", "200",
                                 0, 10000000, NULL, "us",
                                 "how long a thread waiting for an answer (a barrier, a lock) "
                                 "polls before it sleeps"},
        [DSM_SETTING_PREFETCH] =
                {"DSM_PREFETCH", DSM_SETTING_ENUM, DSM_SETTING_F_OR_INT, "runtime", NULL,
                 "auto", "auto", 1, 1024, prefetch_modes, NULL,
                 "read-ahead on sequential and strided read misses: off, auto "
                 "(a window of up to 256 KiB, or 16 lines up to 1 MiB), or the most lines a window "
                 "holds"},
        [DSM_SETTING_OVERCOMMIT] = {"DSM_OVERCOMMIT", DSM_SETTING_ENUM, 0, "runtime", NULL, "read",
                                    "read", 0, 0, overcommit_modes, NULL,
                                    "strict or lazy: treat the machine as under "
                                    "vm.overcommit_memory=2 or not; read: ask the sysctl"},
        [DSM_SETTING_HOLD_US] = {"DSM_HOLD_US", DSM_SETTING_INT, 0, "runtime", NULL, "200", "200",
                                 0, 10000000, NULL, "us",
                                 "how long at most a granted line stays with its woken threads"},
        [DSM_SETTING_HOLD_EARLY] = {"DSM_HOLD_EARLY", DSM_SETTING_BOOL, 0, "runtime", NULL, "1",
                                    "1", 0, 1, NULL, NULL,
                                    "end a hold once every woken thread has run, when another "
                                    "rank waits"},
        [DSM_SETTING_MIGRATORY] = {"DSM_MIGRATORY", DSM_SETTING_BOOL, 0, "runtime", NULL, "1", "1",
                                   0, 1, NULL, NULL,
                                   "a line that ranks take turns to read then write moves "
                                   "exclusive on the read miss (homes decide)"},
        [DSM_SETTING_MW_TRACK] = {"DSM_MW_TRACK", DSM_SETTING_ENUM, 0, "runtime", NULL, "auto",
                                  "auto", 0, 0, mw_tracks, NULL,
                                  "how writes to multiple-writer memory are found: twin (a "
                                  "fault at a line's first write), async (WP_ASYNC and "
                                  "PAGEMAP_SCAN, Linux 6.7), auto: async where the kernel has it"},
        [DSM_SETTING_CACHE_SIZE] = {"DSM_CACHE_SIZE", DSM_SETTING_ENUM, DSM_SETTING_F_OR_SIZE,
                                    "runtime", "cache_size", "auto", "auto", 4 * KiB, 64 * TiB,
                                    cache_modes, NULL,
                                    "the most memory copies of lines homed elsewhere take on "
                                    "this rank: a size, unlimited (or 0), or auto (half the "
                                    "node's memory over the ranks on it)"},
        [DSM_SETTING_PROFILE] = {"DSM_PROFILE", DSM_SETTING_STRING, 0, "runtime", NULL, NULL, "off",
                                 0, 0, NULL, NULL,
                                 "record what happens to every line into PATH.RANK.dsmprof, for "
                                 "dsm-prof (PATH: a path prefix)"},
        [DSM_SETTING_ON_DEATH] = {"DSM_ON_DEATH", DSM_SETTING_ENUM, 0, "runtime", NULL, "exit",
                                  "exit", 0, 0, death_modes, NULL,
                                  "when a rank dies: exit (every rank exits 3), or continue "
                                  "(the survivors go on; lost lines raise SIGBUS)"},
        [DSM_SETTING_RESTART] = {"DSM_RESTART", DSM_SETTING_STRING, 0, "runtime", "restart", NULL,
                                 "off", 0, 0, NULL, NULL,
                                 "start from the snapshot dsm_checkpoint wrote to DIR (\"%r\" "
                                 "in it: the rank)"},
        [DSM_SETTING_DEBUG_FREE] = {"DSM_DEBUG_FREE", DSM_SETTING_BOOL, 0, "runtime", NULL, "0",
                                    "0", 0, 1, NULL, NULL,
                                    "never reuse freed dsm_alloc memory, and fill freed objects "
                                    "with 0xdb"},
        [DSM_SETTING_CKPT_RATE] = {"DSM_CKPT_RATE", DSM_SETTING_ENUM, DSM_SETTING_F_OR_SIZE,
                                   "runtime", NULL, "unlimited", "unlimited", 4 * KiB, 1024 * TiB,
                                   rate_modes, NULL,
                                   "the most bytes a second a snapshot's background writer "
                                   "writes, per rank (unlimited: as fast as the disk takes "
                                   "them)"},
        [DSM_SETTING_RESTART_ROUND] = {"DSM_RESTART_ROUND", DSM_SETTING_SIZE, 0, "runtime", NULL,
                                       "16M", "16M", 4 * KiB, GiB, NULL, NULL,
                                       "the most bytes of lines a rank sends to the others in one "
                                       "round of a restart's exchange (memory against rounds)"},
        [DSM_SETTING_TP_HEARTBEAT_MS] = {"DSM_TP_HEARTBEAT_MS", DSM_SETTING_INT, 0, "transport",
                                         NULL, "1000", "1000", 0, 3600000, NULL, "ms",
                                         "heartbeat period on a ring of the ranks (0: off); 6 "
                                         "silent periods make a rank suspected"},
        [DSM_SETTING_TP_DEAD_MS] = {"DSM_TP_DEAD_MS", DSM_SETTING_INT, 0, "transport", NULL,
                                    "60000", "60000", 0, 86400000, NULL, "ms",
                                    "silence after which a suspected rank is declared dead "
                                    "unless its host says so first (0: at suspicion)"},
        [DSM_SETTING_TP_SEND_BUFS] = {"DSM_TP_SEND_BUFS", DSM_SETTING_INT, 0, "transport", NULL,
                                      "256", "256", 1, 65536, NULL, NULL,
                                      "send buffers per rank, each the largest message plus its "
                                      "header"},
        [DSM_SETTING_TP_NO_PIDFD] = {"DSM_TP_NO_PIDFD", DSM_SETTING_BOOL, 0, "transport", NULL, "0",
                                     "0", 0, 1, NULL, NULL,
                                     "do not watch same-host ranks through pidfds (tests the "
                                     "heartbeat path)"},
        [DSM_SETTING_TP_NO_WAIT_FD] = {"DSM_TP_NO_WAIT_FD", DSM_SETTING_BOOL, 0, "transport", NULL,
                                       "0", "0", 0, 1, NULL, NULL,
                                       "ignore the provider's completion wait fd and use the "
                                       "doorbell (tests)"},
        [DSM_SETTING_MR_PROV_KEY] = {"DSM_MR_PROV_KEY", DSM_SETTING_BOOL, 0, "transport", NULL, "0",
                                     "0", 0, 1, NULL, NULL,
                                     "keys chosen by the provider and local descriptors, as on "
                                     "verbs or efa (tests)"},
};

const struct dsm_setting *dsm_setting_info(enum dsm_setting_id id)
{
	return (unsigned)id < DSM_SETTING_COUNT ? &settings[id] : NULL;
}

const struct dsm_setting *dsm_setting_by_name(const char *name)
{
	for (unsigned i = 0; i < DSM_SETTING_COUNT; i++)
		if (strcmp(settings[i].name, name) == 0)
			return &settings[i];
	return NULL;
}

int dsm_parse_size(const char *s, uint64_t *out_p)
{
	static const char units[] = "KMGTP";
	unsigned long long v;
	char *end;
	unsigned shift = 0;

	if (s == NULL || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || v == 0)
		return -EINVAL;
	if (*end) {
		/* strchr finds the terminator too: ' ' & ~0x20 is '\0' */
		const char *u = strchr(units, end[0] & ~0x20);

		if (u == NULL || *u == '\0')
			return -EINVAL;
		shift = 10 * (unsigned)(u - units + 1);
		end++;
		/* K, KB, KiB: all binary, these are address-space sizes. */
		if (strcasecmp(end, "") && strcasecmp(end, "b") && strcasecmp(end, "ib"))
			return -EINVAL;
	}
	if (shift && v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out_p = (uint64_t)v << shift;
	return 0;
}

static int parse_int(const char *s, uint64_t *out_p)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out_p = v;
	return 0;
}

static int parse_bool(const char *s, uint64_t *out_p)
{
	static const char *const yes[] = {"1", "yes", "on", "true"}, *const no[] = {"0", "no",
	                                                                            "off", "false"};

	for (unsigned i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out_p = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out_p = 0;
			return 0;
		}
	}
	return -EINVAL;
}

static void size_text(uint64_t v, char *buf, size_t n)
{
	static const char units[] = "KMGTP";
	unsigned u = 0;

	while (v && (v & 1023) == 0 && u < 5) {
		v >>= 10;
		u++;
	}
	if (u)
		snprintf(buf, n, "%" PRIu64 "%c", v, units[u - 1]);
	else
		snprintf(buf, n, "%" PRIu64, v);
}

/* What a value of @s may be, for the error line. */
static void allowed(const struct dsm_setting *s, uint64_t min, char *why, size_t n)
{
	char lo[32], hi[32];
	size_t used;

	switch (s->type) {
	case DSM_SETTING_SIZE:
		size_text(min, lo, sizeof(lo));
		size_text(s->max, hi, sizeof(hi));
		snprintf(why, n, "want %s from %s to %s (bytes; K, M, G, T suffixes)",
		         s->flags & DSM_SETTING_F_POW2_PAGES ? "a power of two" : "a size", lo, hi);
		break;
	case DSM_SETTING_INT:
		snprintf(why, n, "want an integer from %" PRIu64 " to %" PRIu64 "%s%s%s", s->min,
		         s->max, s->unit ? " (" : "", s->unit ? s->unit : "", s->unit ? ")" : "");
		break;
	case DSM_SETTING_ENUM:
		used = (size_t)snprintf(why, n, "want one of:");
		for (const char *const *c = s->choices; *c && used < n; c++)
			used += (size_t)snprintf(why + used, n - used, " %s", *c);
		if ((s->flags & DSM_SETTING_F_OR_INT) && used < n)
			snprintf(why + used, n - used,
			         ", or an integer from %" PRIu64 " to %" PRIu64, s->min, s->max);
		if ((s->flags & DSM_SETTING_F_OR_SIZE) && used < n) {
			size_text(s->min, lo, sizeof(lo));
			size_text(s->max, hi, sizeof(hi));
			snprintf(why + used, n - used,
			         ", or a size from %s to %s (bytes; K, M, G, T suffixes)", lo, hi);
		}
		break;
	case DSM_SETTING_BOOL:
		snprintf(why, n, "want 1 or 0 (also yes/no, on/off, true/false)");
		break;
	default:
		snprintf(why, n, "want text");
	}
}

int dsm_setting_parse(const struct dsm_setting *s, const char *text, struct dsm_setting_value *out,
                      char *why, size_t whylen)
{
	uint64_t v = 0, min = s->min;
	int ret = 0;

	if (s->flags & DSM_SETTING_F_POW2_PAGES) {
		long page = sysconf(_SC_PAGESIZE);

		if (page > 0 && (uint64_t)page > min)
			min = (uint64_t)page;
	}
	switch (s->type) {
	case DSM_SETTING_SIZE:
		ret = dsm_parse_size(text, &v);
		if (ret == 0 && (v < min || v > s->max))
			ret = -EINVAL;
		if (ret == 0 && (s->flags & DSM_SETTING_F_POW2_PAGES) && (v & (v - 1)))
			ret = -EINVAL;
		break;
	case DSM_SETTING_INT:
		ret = parse_int(text, &v);
		if (ret == 0 && (v < s->min || v > s->max))
			ret = -EINVAL;
		break;
	case DSM_SETTING_ENUM:
		ret = -EINVAL;
		for (const char *const *c = s->choices; *c; c++)
			if (strcasecmp(text, *c) == 0) {
				v = (uint64_t)(c - s->choices);
				ret = 0;
				break;
			}
		if (ret && (s->flags & DSM_SETTING_F_OR_INT) && parse_int(text, &v) == 0 &&
		    v >= s->min && v <= s->max) {
			v += DSM_SETTING_NUMBER;
			ret = 0;
		}
		if (ret && (s->flags & DSM_SETTING_F_OR_SIZE) && dsm_parse_size(text, &v) == 0 &&
		    v >= s->min && v <= s->max) {
			v += DSM_SETTING_NUMBER;
			ret = 0;
		}
		break;
	case DSM_SETTING_BOOL:
		ret = parse_bool(text, &v);
		break;
	case DSM_SETTING_STRING:
		break;
	default:
		ret = -EINVAL;
	}
	if (ret) {
		if (why && whylen)
			allowed(s, min, why, whylen);
		return ret;
	}
	out->v = v;
	out->text = text;
	return 0;
}

int dsm_setting_lookup(enum dsm_setting_id id, struct dsm_setting_value *out, char *why,
                       size_t whylen)
{
	const struct dsm_setting *s = dsm_setting_info(id);
	const char *text;
	int ret;

	if (s == NULL)
		return -EINVAL;
	*out = (struct dsm_setting_value){0};
	/* The defaults parse: a registry test checks every one. */
	if (s->def)
		dsm_setting_parse(s, s->def, out, NULL, 0);
	if (s->type == DSM_SETTING_STRING)
		out->text = NULL;
	text = getenv(s->name);
	if (text == NULL || *text == '\0')
		return 0;
	struct dsm_setting_value v;

	ret = dsm_setting_parse(s, text, &v, why, whylen);
	if (ret)
		return ret;
	*out = v;
	return 1;
}

/* The memory limit of this process's cgroup (v2 memory.max, v1 memory.limit_in_bytes), or
 * 0 for none: under Slurm or a container the node's memory is not the job's. */
static uint64_t cgroup_limit(void)
{
	FILE *f = fopen("/proc/self/cgroup", "r");
	char line[512], path[1024];
	uint64_t limit = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char *p = strchr(line, ':'), *q = p ? strchr(p + 1, ':') : NULL;
		unsigned long long v;
		FILE *m;

		if (q == NULL)
			continue;
		q[strcspn(q, "\n")] = '\0';
		if (strncmp(line, "0::", 3) == 0)
			snprintf(path, sizeof(path), "/sys/fs/cgroup%s/memory.max", q + 1);
		else if (strncmp(p, ":memory:", 8) == 0)
			snprintf(path, sizeof(path),
			         "/sys/fs/cgroup/memory%s/memory.limit_in_bytes", q + 1);
		else
			continue;
		m = fopen(path, "r");
		if (m == NULL)
			continue;
		/* "max" (v2) does not parse: no limit. */
		if (fscanf(m, "%llu", &v) == 1 && v && (limit == 0 || v < limit))
			limit = v;
		fclose(m);
	}
	fclose(f);
	return limit;
}

size_t dsm_setting_cache_auto(unsigned local)
{
	FILE *f = fopen("/proc/meminfo", "r");
	unsigned long long kb = 0;
	uint64_t mem, cg = cgroup_limit();
	char line[128];

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
			break;
	fclose(f);
	mem = (uint64_t)kb * 1024;
	if (cg && cg < mem)
		mem = cg;
	/* Half for the copies, half for the program, the home segments and the runtime. */
	return local ? (size_t)(mem / 2 / local) : 0;
}
