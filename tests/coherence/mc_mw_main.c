/* SPDX-License-Identifier: MIT */
/*
 * coh-mc-mw: the multiple-writer model checker's command line.
 *
 *   coh-mc-mw exhaustive [default|long]    every schedule of the programs (long: every
 *                                          home of every line and mutex, and bigger ones)
 *   coh-mc-mw random [schedules] [seed|-]  random programs, random schedules
 *   coh-mc-mw one NAME [bugs] [nodefer] [async]
 *                                          one program, its failing schedule if any
 *
 * Exit status 0 only when every run found no violation (and, for the exhaustive tiers,
 * reached every race it is meant to).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mc_mw.h"

#define MAX_STATES 50000000ull

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int long_tier(void)
{
	const char *t = getenv("DSM_TEST_TIER");

	return t && strcmp(t, "long") == 0;
}

static void print_cov(const char *what, const uint64_t *cov)
{
	int c;

	printf("%s:", what);
	for (c = 0; c < MW_MC_NCOV; c++)
		printf("%s %s %llu", c ? "," : "", mw_mc_cov_name(c), (unsigned long long)cov[c]);
	printf("\n");
}

/* @c as the program @sp has it (its homes too). */
static void config_reset(const mw_mc_spec_t *sp, mw_mc_config_t *c)
{
	if (mw_mc_config_from(sp, c, NULL, 0) < 0)
		abort(); /* checked once before */
}

/* What the runs of one program found, summed. */
typedef struct sum {
	double orders;
	uint64_t states, steps, max_states, max_depth, runs;
	uint64_t cov[MW_MC_NCOV];
} sum_t;

/* One exhaustive run; nonzero when it failed (said with its schedule). */
static int run_one(const char *name, const mw_mc_config_t *c, const char *variant, sum_t *sum)
{
	mw_mc_result_t *r = malloc(sizeof(*r));
	int bad, i;

	if (!r)
		return 1;
	if (mw_mc_exhaustive(c, MAX_STATES, r) < 0) {
		printf("exhaustive %s%s: bad configuration: %s\n", name, variant, r->what);
		free(r);
		return 1;
	}
	bad = r->fail != MW_MC_OK;
	if (bad)
		printf("exhaustive %s%s: FAIL after %llu states: %s\n%s", name, variant,
		       (unsigned long long)r->states, r->what, r->trace);
	sum->orders += r->orders;
	sum->states += r->states;
	sum->steps += r->steps;
	sum->runs++;
	if (r->states > sum->max_states)
		sum->max_states = r->states;
	if (r->max_depth > sum->max_depth)
		sum->max_depth = r->max_depth;
	for (i = 0; i < MW_MC_NCOV; i++)
		sum->cov[i] += r->cov[i];
	fflush(stdout);
	free(r);
	return bad;
}

/* Every home of every line and mutex of @c (@all), or only the program's own. */
static int run_homes(const char *name, mw_mc_config_t *c, const char *variant, uint64_t *cov,
                     int all)
{
	unsigned n = 1, k, i, nh = c->nlines + c->nmutexes;
	sum_t sum = {0};
	double t0 = now();
	int bad = 0;

	for (i = 0; all && i < nh; i++)
		n *= c->nranks;
	for (k = 0; k < n; k++) {
		unsigned x = k;

		for (i = 0; all && i < nh; i++, x /= c->nranks) {
			if (i < c->nlines)
				c->home[i] = (uint8_t)(x % c->nranks);
			else
				c->mutex_home[i - c->nlines] = (uint8_t)(x % c->nranks);
		}
		bad |= run_one(name, c, variant, &sum);
	}
	printf("exhaustive %s%s, %s: %.4g schedules, %llu states (%llu in the largest run), "
	       "%llu transitions, longest %llu steps, %.2fs%s\n",
	       name, variant, all ? "every home" : "its homes", sum.orders,
	       (unsigned long long)sum.states, (unsigned long long)sum.max_states,
	       (unsigned long long)sum.steps, (unsigned long long)sum.max_depth, now() - t0,
	       bad ? ": FAIL" : "");
	fflush(stdout);
	for (i = 0; i < MW_MC_NCOV; i++)
		cov[i] += sum.cov[i];
	return bad;
}

static int run_exhaustive(int big)
{
	/* The programs (mc_mw.c says what each is for), with each way of finding the writes
	 * (twins, asynchronous write-protect), with and without deferral where a rank has two
	 * threads, on every home of every line and mutex. Measured on one core: the default
	 * tier 15 s; two-threads up to 0.7M states, 1-2 s a home (the default tier: its own
	 * homes only); threads-3 up to 34M states, 90 s and 1.7 GB a home (its own only). */
	enum { DEFER = 1, NO_DEFER = 2, BOTH = 3 };
	enum { ALL, ALL_LONG, OWN };
	static const struct {
		const char *name;
		int defer;
		int long_only;
		int homes; /* ALL_LONG: its own in the default tier */
	} runs[] = {
	        {"false-sharing", DEFER, 0, ALL},
	        {"final-only", DEFER, 0, ALL},
	        {"phases", DEFER, 0, ALL},
	        {"barrier-3", DEFER, 0, ALL},
	        {"lock-2", DEFER, 0, ALL},
	        {"lock-3", DEFER, 0, ALL},
	        {"epoch", BOTH, 0, ALL},
	        {"epoch-2", BOTH, 0, ALL},
	        {"fifo", DEFER, 0, ALL},
	        {"racy", DEFER, 0, ALL},
	        {"acq-race", BOTH, 0, ALL},
	        {"false-sharing-3", DEFER, 0, ALL},
	        {"mixed-3", DEFER, 0, ALL},
	        {"rounds-3", DEFER, 0, ALL},
	        {"two-threads", BOTH, 0, ALL_LONG},
	        {"threads-3", BOTH, 1, OWN},
	};
	/* What the runs must reach between them, or they prove nothing about it. */
	static const int needed[] = {
	        MW_MC_COV_READAHEAD,    MW_MC_COV_JOINED,      MW_MC_COV_STALE_FAULT,
	        MW_MC_COV_MASTER_STORE, MW_MC_COV_MASTER_ENDS, MW_MC_COV_TWO_WRITERS,
	        MW_MC_COV_HOME_MERGE,   MW_MC_COV_DROP_REMOTE, MW_MC_COV_DROP_STALE,
	        MW_MC_COV_ACK_WAIT,     MW_MC_COV_DEFERRED,    MW_MC_COV_OLD_RESEND,
	        MW_MC_COV_OLD_DROP,     MW_MC_COV_LOCK_QUEUED, MW_MC_COV_EARLY_BARRIER,
	        MW_MC_COV_TAKE_DIFF};
	uint64_t cov[MW_MC_NCOV] = {0};
	double t0 = now();
	unsigned i, d, a;
	int bad = 0, missed = 0;

	for (i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		const mw_mc_spec_t *sp = mw_mc_spec(runs[i].name);
		mw_mc_config_t c;
		char why[160];

		if (runs[i].long_only && !big)
			continue;
		if (!sp || mw_mc_config_from(sp, &c, why, sizeof(why)) < 0) {
			printf("%s: %s\n", runs[i].name, sp ? why : "no such program");
			return 1;
		}
		for (a = 0; a < 2; a++)
			for (d = 0; d < 3; d++) {
				static const char *const v[2][3] = {
				        {"", ", no deferral", ", no read-ahead"},
				        {", async", ", async, no deferral",
				         ", async, no read-ahead"}};
				int all =
				        runs[i].homes == ALL || (runs[i].homes == ALL_LONG && big);

				/* Read-ahead off (a miss asks for its line only) where it reads
				 * ahead on its own homes. */
				if ((d < 2 && !(runs[i].defer & (d ? NO_DEFER : DEFER))) ||
				    (d == 2 && strcmp(sp->name, "phases") != 0 &&
				     strcmp(sp->name, "rounds-3") != 0))
					continue;
				config_reset(sp, &c);
				c.async = (int)a;
				c.no_defer = d == 1;
				c.no_readahead = d == 2;
				bad |= run_homes(sp->name, &c, v[a][d], cov, all);
			}
	}
	print_cov("exhaustive, all runs above (transitions)", cov);
	for (i = 0; i < sizeof(needed) / sizeof(needed[0]); i++)
		if (cov[needed[i]] == 0) {
			printf("FAIL: no run reached '%s'\n", mw_mc_cov_name(needed[i]));
			missed = 1;
		}
	printf("exhaustive %s tier: %s, %.1fs\n", big ? "long" : "default",
	       bad || missed ? "FAIL" : "ok", now() - t0);
	return bad || missed;
}

static int run_random(int argc, char **argv)
{
	mw_mc_random_opts_t o = {.schedules = long_tier() ? 5000000 : 200000,
	                         .per_config = 100,
	                         .max_ranks = MW_MC_MAX_RANKS,
	                         .max_threads = MW_MC_MAX_THREADS};
	mw_mc_result_t *r = malloc(sizeof(*r));
	double t0 = now();
	int bad, i;

	if (!r)
		return 1;
	if (argc > 0)
		o.schedules = strtoull(argv[0], NULL, 0);
	/* A new seed each run explores new programs; it is printed, to replay a failure. */
	o.seed = argc > 1 && strcmp(argv[1], "-") != 0 ? strtoull(argv[1], NULL, 0)
	                                               : (uint64_t)time(NULL);
	if (mw_mc_random(&o, r) < 0) {
		printf("random: run failed\n");
		free(r);
		return 1;
	}
	bad = r->fail != MW_MC_OK || r->schedules < o.schedules;
	printf("random, seed %llu: %llu schedules of %llu programs (%u each), ~%llu states "
	       "(estimated), %llu steps, longest %llu, %.1fs%s%s\n",
	       (unsigned long long)o.seed, (unsigned long long)r->schedules,
	       (unsigned long long)((r->schedules + o.per_config - 1) / o.per_config), o.per_config,
	       (unsigned long long)r->states, (unsigned long long)r->steps,
	       (unsigned long long)r->max_depth, now() - t0, bad ? ": FAIL " : "",
	       r->fail ? r->what : "");
	if (r->fail)
		printf("%s", r->trace);
	print_cov("random (steps)", r->cov);
	/* A tier-sized run reaches every race (but the earlier GET's answer, which none
	 * should); a short run by hand may not. */
	for (i = 0; i < MW_MC_NCOV && o.schedules >= 100000; i++)
		if (i != MW_MC_COV_EARLIER_GET && r->cov[i] == 0) {
			printf("FAIL: random schedules never reached '%s'\n", mw_mc_cov_name(i));
			bad = 1;
		}
	free(r);
	return bad;
}

static int run_named(int argc, char **argv)
{
	const mw_mc_spec_t *sp = argc > 0 ? mw_mc_spec(argv[0]) : NULL;
	mw_mc_config_t c;
	uint64_t cov[MW_MC_NCOV] = {0};
	char why[160];
	int bad;

	if (!sp || mw_mc_config_from(sp, &c, why, sizeof(why)) < 0) {
		fprintf(stderr, "%s\n", sp ? why : "no such program");
		return 2;
	}
	c.bugs = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 0) : 0;
	for (int i = 2; i < argc; i++) {
		c.no_defer |= strcmp(argv[i], "nodefer") == 0;
		c.async |= strcmp(argv[i], "async") == 0;
	}
	bad = run_homes(sp->name, &c, "", cov, 0);
	print_cov("reached", cov);
	return bad;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "exhaustive") == 0)
		return run_exhaustive(argc >= 3 ? strcmp(argv[2], "long") == 0 : long_tier());
	if (argc >= 2 && strcmp(argv[1], "random") == 0)
		return run_random(argc - 2, argv + 2);
	if (argc >= 2 && strcmp(argv[1], "one") == 0)
		return run_named(argc - 2, argv + 2);
	fprintf(stderr,
	        "usage: %s exhaustive [default|long] | random [schedules] [seed|-] | one NAME "
	        "[bugs] [nodefer] [async]\n",
	        argv[0]);
	return 2;
}
