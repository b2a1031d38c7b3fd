/* SPDX-License-Identifier: MIT */
/*
 * coh-mc: the protocol model checker's command line.
 *
 *   coh-mc exhaustive [default|long]   every order for 2 and 3 (long: 4) nodes on one line,
 *                                      with and without evictions, then with a dead rank
 *   coh-mc deaths [default|long]       the runs with a dead rank alone
 *   coh-mc random [schedules] [max_nodes] [max_lines] [seed|-] [jobs]
 *
 * DSM_TEST_TIER=long scales the default rounds up. Exit status 0 only when
 * every run found no violation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mc.h"

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

/* Print how often each race was reached; nonzero when one never was (the
 * run then proves nothing about it). */
static int print_races(const char *what, const uint64_t *cov, int first, int last)
{
	int missed = 0, c;

	printf("%s, races reached:", what);
	for (c = first; c < last; c++) {
		printf("%s %s %llu", c > first ? "," : "", mc_cov_name(c),
		       (unsigned long long)cov[c]);
		missed |= cov[c] == 0;
	}
	printf("%s\n", missed ? ": FAIL (a race was never reached)" : "");
	return missed;
}

/* ", up to N evictions", or nothing for a configuration without. */
static const char *evictions_str(unsigned n, char *b, size_t size)
{
	if (n)
		snprintf(b, size, ", up to %u eviction%s", n, n > 1 ? "s" : "");
	else
		b[0] = 0;
	return b;
}

/* Three kinds of programs, each op on one line (word 0 or 1). */
enum { PROG_WRITERS, PROG_MIXED, PROG_READ_UPGRADE, PROG_NPROGS };
static const char *const prog_names[] = {"writers", "mixed", "read-then-write"};

static void program(mc_config_t *c, int prog, unsigned nops)
{
	unsigned n, t, i;

	for (n = 0; n < c->nnodes; n++)
		for (t = 0; t < c->nthreads; t++) {
			c->nops[n][t] = nops;
			for (i = 0; i < nops; i++) {
				mc_op_t *op = &c->ops[n][t][i];

				/* One line, or each thread's ops round the lines. */
				op->line = (uint8_t)((n + t + i) % c->nlines);
				op->word = (uint8_t)((n + i) % MC_WORDS);
				op->value = 1 + (n << 16 | t << 8 | i);
				switch (prog) {
				case PROG_WRITERS:
					op->write = 1;
					break;
				case PROG_MIXED:
					/* node 0 writes, node 1 reads, others alternate */
					op->write = n == 0 ? 1 : n == 1 ? 0 : (i + t) % 2;
					break;
				default:
					/* read then write the same word: the upgrade race */
					op->write = i % 2;
					op->word = (uint8_t)((n + i / 2) % MC_WORDS);
					break;
				}
			}
		}
}

/* Holds that end before the woken thread ran (the runtime's timer): safety
 * only, since a line may then bounce; every state is still visited. Each size
 * again with evictions (2 ranks may evict twice, 3 ranks once). */
static int run_early_hold(int big)
{
	unsigned nodes, p, k;
	int bad = 0;

	for (nodes = 2; nodes <= 3; nodes++)
		for (p = 0; p < PROG_NPROGS; p++)
			for (k = 0; k < 4; k++) {
				unsigned m = k & 1, ev = k >> 1;
				mc_config_t c;
				mc_result_t r;
				char sched[64], evs[32];
				double t0 = now();

				/* Default tier: inline data, 3 ranks with the writers only
				 * (mixed and read-then-write reach 0.4M and 1.3M states), and
				 * evictions for 2 ranks (3 ranks writing: 0.6M states). */
				if (!big && (m == 1 || (nodes == 3 && (p != PROG_WRITERS || ev))))
					continue;
				memset(&c, 0, sizeof(c));
				c.nnodes = nodes;
				c.nthreads = 1;
				c.nlines = 1;
				c.data_mode = (dsm_coh_data_mode_t)m;
				c.wb_mode = c.data_mode;
				c.dist = DSM_COH_DIST_ZERO;
				c.early_hold = 1;
				c.migratory = 1;
				c.evictions = ev ? 4 - nodes : 0;
				program(&c, (int)p, 3);
				if (mc_exhaustive(&c, 200000000, &r) < 0)
					return 1;
				/* Lines may bounce forever here: with a cycle in the
				 * graph there is no finite number of schedules. */
				if (r.back_edges)
					snprintf(sched, sizeof(sched),
					         "unbounded schedules (%llu cycles closed)",
					         (unsigned long long)r.back_edges);
				else
					snprintf(sched, sizeof(sched), "%.4g schedules", r.orders);
				printf("exhaustive, holds may end early, %u nodes x 3 ops, %s, "
				       "data %s%s: "
				       "%s, %llu states, %llu transitions, %.2fs%s%s\n",
				       nodes, prog_names[p], m ? "rdma" : "inline",
				       evictions_str(c.evictions, evs, sizeof(evs)), sched,
				       (unsigned long long)r.states, (unsigned long long)r.steps,
				       now() - t0, r.fail ? ": FAIL " : "", r.fail ? r.what : "");
				fflush(stdout);
				bad |= r.fail != MC_OK;
			}
	return bad;
}

/*
 * Batches (the runtime's COH_BATCH): a rank takes all a peer has in flight to it at once,
 * and the lines installed with their data go in together. Every order again, with batches
 * beside single deliveries; a run whose batches never held an install back proves nothing
 * and fails.
 */
static int run_batches(int big)
{
	/* Grants that carry data travel together only for different lines (a line's next
	 * transaction waits for the DONE of the last), so two lines, and two threads on a
	 * rank to have both asked for at once. */
	static const struct {
		unsigned nodes, threads, ops, lines;
		int long_only;
		unsigned evictions;
	} sizes[] = {
	        {2, 2, 2, 2, 0, 0}, {2, 2, 3, 2, 1, 0}, {3, 2, 2, 2, 1, 0}, {2, 2, 2, 2, 1, 1}};
	unsigned si, p, m;
	int bad = 0;

	for (si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++)
		for (p = 0; p < PROG_NPROGS; p++)
			for (m = 0; m < 2; m++) {
				mc_config_t c;
				mc_result_t r;
				char evs[32];
				double t0 = now();
				int idle;

				/* Default tier: RDMA grants (which hold nothing back) not
				 * for the largest program (2M states, 20 s). */
				if ((sizes[si].long_only && !big) ||
				    (!big && m == 1 && p == PROG_READ_UPGRADE))
					continue;
				memset(&c, 0, sizeof(c));
				c.nnodes = sizes[si].nodes;
				c.nthreads = sizes[si].threads;
				c.nlines = sizes[si].lines;
				c.data_mode = (dsm_coh_data_mode_t)m;
				c.wb_mode = c.data_mode;
				c.dist = DSM_COH_DIST_ZERO;
				c.batch = 1;
				c.migratory = 1;
				c.evictions = sizes[si].evictions;
				program(&c, (int)p, sizes[si].ops);
				if (mc_exhaustive(&c, 200000000, &r) < 0)
					return 1;
				/* Inline grants carry data, so batches hold installs back. */
				idle = r.batches == 0 || (m == 0 && r.batched_installs == 0);
				printf("exhaustive, batches, %u nodes x %u threads x %u ops on %u "
				       "lines, %s, data "
				       "%s%s: %.4g schedules, %llu states, %llu transitions, "
				       "%llu of them batches holding %llu installs back, "
				       "%.2fs%s%s%s\n",
				       c.nnodes, c.nthreads, sizes[si].ops, c.nlines, prog_names[p],
				       m ? "rdma" : "inline",
				       evictions_str(c.evictions, evs, sizeof(evs)), r.orders,
				       (unsigned long long)r.states, (unsigned long long)r.steps,
				       (unsigned long long)r.batches,
				       (unsigned long long)r.batched_installs, now() - t0,
				       r.fail ? ": FAIL " : "", r.fail ? r.what : "",
				       idle ? ": FAIL (no batch held an install back)" : "");
				fflush(stdout);
				bad |= r.fail != MC_OK || idle;
			}
	return bad;
}

/*
 * A dead rank (DSM_ON_DEATH=continue): the victim may die in any state, each survivor learns
 * of it in any order (its own notice, or another's DEAD), the heir holds requests back until
 * every survivor's copies came. One line homed on rank 0; the victim is the home (its lines
 * are adopted by rank 1) or a requester (a line it owned is lost at a live home). The tier
 * fails when the runs together never reach one of the death races.
 */
static int run_deaths(int big)
{
	/* Measured (one core): 3 ranks x 3 ops up to 0.5M states, 5 s; the default tier ~15 s.
	 * modes: the data paths of the default tier (bit 0 inline, bit 1 RDMA); the long tier
	 * runs both, and every victim. */
	static const struct {
		unsigned nodes, ops;
		int long_only, modes;
		unsigned evictions;
	} sizes[] = {{2, 3, 0, 3, 0}, {3, 2, 0, 3, 0}, {3, 3, 0, 1, 0},
	             {2, 3, 0, 3, 1}, {3, 2, 1, 3, 1}, {2, 4, 1, 3, 1}};
	uint64_t cov[MC_NCOV] = {0};
	unsigned si, p, m, v;
	int bad = 0;

	for (si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		if (sizes[si].long_only && !big)
			continue;
		for (p = 0; p < PROG_NPROGS; p++)
			for (m = 0; m < 2; m++)
				for (v = 0; v < sizes[si].nodes; v++) {
					mc_config_t c;
					mc_result_t r;
					char evs[32];
					double t0 = now();

					/* Default tier: victims the home and rank 1. */
					if (!big && (!(sizes[si].modes & (1 << m)) || v > 1))
						continue;
					memset(&c, 0, sizeof(c));
					c.nnodes = sizes[si].nodes;
					c.nthreads = 1;
					c.nlines = 1;
					c.data_mode = (dsm_coh_data_mode_t)m;
					c.wb_mode = c.data_mode;
					c.dist = DSM_COH_DIST_ZERO;
					c.migratory = 1;
					c.evictions = sizes[si].evictions;
					c.deaths = 1;
					c.victim = v;
					program(&c, (int)p, sizes[si].ops);
					if (mc_exhaustive(&c, 200000000, &r) < 0) {
						printf("setup failed\n");
						return 1;
					}
					printf("exhaustive, a death, %u nodes x %u ops, %s, data "
					       "%s, "
					       "rank %u dies (%s)%s: %.4g schedules, %llu states, "
					       "%llu "
					       "transitions, %llu of them deaths, %llu SIGBUS, "
					       "%llu lost "
					       "lines, %.2fs%s%s\n",
					       c.nnodes, sizes[si].ops, prog_names[p],
					       m ? "rdma" : "inline", v,
					       v == 0 ? "the home" : "a requester",
					       evictions_str(c.evictions, evs, sizeof(evs)),
					       r.orders, (unsigned long long)r.states,
					       (unsigned long long)r.steps,
					       (unsigned long long)r.deaths,
					       (unsigned long long)r.sigbus,
					       (unsigned long long)r.counters[DSM_COH_CNT_LOST],
					       now() - t0, r.fail ? ": FAIL " : "",
					       r.fail ? r.what : "");
					fflush(stdout);
					bad |= r.fail != MC_OK;
					for (unsigned k = 0; k < MC_NCOV; k++)
						cov[k] += r.cov[k];
				}
	}
	bad |= print_races("exhaustive, deaths (transitions)", cov, MC_COV_FIRST_DEATH, MC_NCOV);
	return bad;
}

static int run_exhaustive(int big)
{
	/* Every program on every size, both data paths, the home a requester
	 * (rank 0) or not the first rank. The two-threads-per-node runs cover
	 * stale userfaultfd messages and several threads faulting on one line;
	 * in the default tier they take one data path per home, to keep the tier
	 * short. The long tier adds bigger sizes. */
	/* Measured (one core): 3 x 4 ops up to 2.4M states, ~1 min each; 4 x 3
	 * ops writers 1.2M states, mixed 10M states, 6 min and 2 GB. So 4 ranks
	 * run the writers program only (progs: a mask over PROG_*).
	 * Evictions (the most per schedule; a bound of k explores every schedule with
	 * fewer too): in the default tier 2 ranks evict twice (up to 0.1M states) and
	 * 3 ranks writing evict once (0.2M and 0.4M states); in the long tier 3 ranks
	 * evict twice (read-then-write: 5.4M and 8.3M states, 30-50 s) and two threads
	 * once (6.4M).
	 * mig_off: migratory lines off too in the default tier. */
	static const struct {
		unsigned nodes, threads, ops;
		int long_only, one_mode, progs;
		unsigned evictions;
		int mig_off;
	} sizes[] = {{2, 1, 3, 0, 0, 7, 0, 1},
	             {2, 1, 4, 0, 0, 7, 0, 0},
	             {3, 1, 3, 0, 0, 7, 0, 0},
	             {2, 2, 2, 0, 1, 7, 0, 0},
	             {2, 1, 3, 0, 0, 7, 2, 1},
	             {2, 1, 4, 0, 1, 7, 2, 0},
	             {3, 1, 3, 0, 1, 1 << PROG_WRITERS, 1, 0},
	             {2, 2, 2, 1, 0, 7, 0, 0},
	             {3, 1, 4, 1, 0, 7, 0, 0},
	             {4, 1, 3, 1, 0, 1 << PROG_WRITERS, 0, 0},
	             {4, 1, 2, 1, 0, 7, 0, 0},
	             {2, 1, 4, 1, 0, 7, 2, 0},
	             {3, 1, 3, 1, 0, 7, 2, 0},
	             {2, 2, 2, 1, 0, 7, 1, 0},
	             {4, 1, 2, 1, 0, 1 << PROG_WRITERS, 1, 0}};
	static const dsm_coh_dist_t dists[] = {DSM_COH_DIST_ZERO, DSM_COH_DIST_RANK};
	uint64_t cov[MC_NCOV] = {0};
	unsigned si, p, m, di, k, mig;
	int bad = 0;

	bad |= run_early_hold(big);
	bad |= run_batches(big);
	for (si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		if (sizes[si].long_only && !big)
			continue;
		if (sizes[si].one_mode && big)
			continue;
		for (p = 0; p < PROG_NPROGS; p++)
			for (m = 0; m < 2; m++)
				for (di = 0; di < 2; di++)
					for (mig = 0; mig < 2; mig++) {
						mc_config_t c;
						mc_result_t r;
						char evs[32];
						double t0 = now();

						/* Migratory lines on (the runtime's default); off
						 * (DSM_MIGRATORY=0) for 2 ranks x 3 ops, every size
						 * in the long tier. */
						if ((sizes[si].one_mode && m != di) ||
						    !(sizes[si].progs & (1 << p)) ||
						    (!mig && !big && !sizes[si].mig_off))
							continue;
						memset(&c, 0, sizeof(c));
						c.nnodes = sizes[si].nodes;
						c.nthreads = sizes[si].threads;
						c.nlines = 1;
						c.data_mode = (dsm_coh_data_mode_t)m;
						c.wb_mode = c.data_mode;
						c.dist = dists[di];
						c.migratory = (int)mig;
						c.evictions = sizes[si].evictions;
						program(&c, (int)p, sizes[si].ops);
						if (mc_exhaustive(&c, 200000000, &r) < 0) {
							printf("setup failed\n");
							return 1;
						}
						printf("exhaustive %u nodes x %u threads x %u ops, "
						       "%s, "
						       "data %s, "
						       "home %u, migratory %s%s: %.4g schedules, "
						       "%llu states, %llu "
						       "transitions, "
						       "longest path %llu, longest fault %llu "
						       "steps, "
						       "%.2fs%s%s\n",
						       c.nnodes, c.nthreads, sizes[si].ops,
						       prog_names[p], m ? "rdma" : "inline",
						       di ? c.nnodes - 1 : 0, mig ? "on" : "off",
						       evictions_str(c.evictions, evs, sizeof(evs)),
						       r.orders, (unsigned long long)r.states,
						       (unsigned long long)r.steps,
						       (unsigned long long)r.max_depth,
						       (unsigned long long)r.max_fault_steps,
						       now() - t0, r.fail ? ": FAIL " : "",
						       r.fail ? r.what : "");
						fflush(stdout);
						bad |= r.fail != MC_OK;
						for (k = 0; k < MC_NCOV; k++)
							cov[k] += r.cov[k];
					}
	}
	bad |= print_races("exhaustive, all runs above (transitions)", cov, 0, MC_COV_FIRST_DEATH);
	bad |= run_deaths(big);
	return bad;
}

/* Run o's schedules split over jobs processes (fork: each its own seed),
 * merging their results. */
static int random_jobs(const mc_random_opts_t *o, unsigned jobs, mc_result_t *r)
{
	static uint8_t hll[MC_HLL_SIZE];
	int fds[16];
	pid_t pids[16];
	unsigned j, i;
	int bad = 0;

	memset(r, 0, sizeof(*r));
	for (j = 0; j < jobs; j++) {
		int p[2];

		if (pipe(p) < 0)
			return -1;
		pids[j] = fork();
		if (pids[j] < 0)
			return -1;
		if (pids[j] == 0) {
			mc_random_opts_t mine = *o;
			mc_result_t res;
			uint8_t reg[MC_HLL_SIZE] = {0};
			int rc;

			close(p[0]);
			mine.seed = o->seed + j;
			mine.schedules = o->schedules / jobs + (j < o->schedules % jobs);
			mine.hll = reg;
			rc = mc_random(&mine, &res);
			if (write(p[1], &res, sizeof(res)) != sizeof(res) ||
			    write(p[1], reg, sizeof(reg)) != sizeof(reg))
				_exit(3);
			_exit(rc < 0 ? 2 : 0);
		}
		close(p[1]);
		fds[j] = p[0];
	}
	for (j = 0; j < jobs; j++) {
		mc_result_t res;
		uint8_t reg[MC_HLL_SIZE];
		int st;

		if (read(fds[j], &res, sizeof(res)) != sizeof(res) ||
		    read(fds[j], reg, sizeof(reg)) != sizeof(reg))
			bad = 1;
		close(fds[j]);
		waitpid(pids[j], &st, 0);
		if (bad || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			bad = 1;
			continue;
		}
		r->schedules += res.schedules;
		r->steps += res.steps;
		r->early_hold_schedules += res.early_hold_schedules;
		r->batch_schedules += res.batch_schedules;
		r->batches += res.batches;
		r->batched_installs += res.batched_installs;
		r->evict_schedules += res.evict_schedules;
		r->evictions += res.evictions;
		r->death_schedules += res.death_schedules;
		r->deaths += res.deaths;
		r->sigbus += res.sigbus;
		if (res.max_fault_steps > r->max_fault_steps)
			r->max_fault_steps = res.max_fault_steps;
		for (i = 0; i < DSM_COH_CNT_NCOUNTERS; i++)
			r->counters[i] += res.counters[i];
		for (i = 0; i < MC_NCOV; i++)
			r->cov[i] += res.cov[i];
		for (i = 0; i < MC_HLL_SIZE; i++)
			if (reg[i] > hll[i])
				hll[i] = reg[i];
		if (res.fail && !r->fail) {
			r->fail = res.fail;
			memcpy(r->what, res.what, sizeof(r->what));
		}
	}
	r->states = mc_hll_count(hll);
	return bad ? -1 : 0;
}

static int run_random(int argc, char **argv)
{
	mc_random_opts_t o = {.schedules = long_tier() ? 10000000 : 250000,
	                      .seed = 1,
	                      .max_nodes = long_tier() ? 16 : 8,
	                      .max_lines = 8,
	                      .max_threads = 2,
	                      .max_ops = 4,
	                      .any_data_mode = 1,
	                      .early_holds = 1,
	                      .batches = 1,
	                      .migratory = 2,
	                      .evictions = 1,
	                      .deaths = 1,
	                      .verbose = 1};
	unsigned jobs = long_tier() ? 2 : 1;
	mc_result_t r;
	int missed;
	double t0 = now();

	if (argc > 0)
		o.schedules = strtoull(argv[0], NULL, 0);
	if (argc > 1)
		o.max_nodes = (unsigned)atoi(argv[1]);
	if (argc > 2)
		o.max_lines = (unsigned)atoi(argv[2]);
	/* A new seed each run explores new schedules; it is printed, so a
	 * failure can be replayed with the same seed. */
	o.seed = argc > 3 && strcmp(argv[3], "-") != 0 ? strtoull(argv[3], NULL, 0)
	                                               : (uint64_t)time(NULL);
	if (argc > 4)
		jobs = (unsigned)atoi(argv[4]);
	if (o.max_nodes < 2 || o.max_nodes > MC_MAX_NODES || o.max_lines < 1 ||
	    o.max_lines > MC_MAX_LINES || jobs < 1 || jobs > 16) {
		fprintf(stderr, "nodes 2..%d, lines 1..%d, jobs 1..16\n", MC_MAX_NODES,
		        MC_MAX_LINES);
		return 2;
	}
	if ((jobs == 1 ? mc_random(&o, &r) : random_jobs(&o, jobs, &r)) < 0) {
		printf("run failed\n");
		return 1;
	}
	printf("random, seed %llu, %u jobs, up to %u nodes, %u lines, %u threads, %u ops: "
	       "%llu schedules (%llu with early holds, %llu with batches: %llu batches holding "
	       "%llu installs back, %llu with evictions: %llu evictions, %llu with a death: "
	       "%llu deaths, %llu lost lines, %llu SIGBUS), ~%llu states "
	       "(estimated: HyperLogLog of "
	       "every 4th step), %llu steps, "
	       "longest fault %llu steps, "
	       "%llu invalidations, %llu deferred by a hold, %llu queued, %.1fs%s%s\n",
	       (unsigned long long)o.seed, jobs, o.max_nodes, o.max_lines, o.max_threads, o.max_ops,
	       (unsigned long long)r.schedules, (unsigned long long)r.early_hold_schedules,
	       (unsigned long long)r.batch_schedules, (unsigned long long)r.batches,
	       (unsigned long long)r.batched_installs, (unsigned long long)r.evict_schedules,
	       (unsigned long long)r.evictions, (unsigned long long)r.death_schedules,
	       (unsigned long long)r.deaths, (unsigned long long)r.counters[DSM_COH_CNT_LOST],
	       (unsigned long long)r.sigbus, (unsigned long long)r.states,
	       (unsigned long long)r.steps, (unsigned long long)r.max_fault_steps,
	       (unsigned long long)r.counters[DSM_COH_CNT_INV_SENT],
	       (unsigned long long)r.counters[DSM_COH_CNT_DEFERRED],
	       (unsigned long long)r.counters[DSM_COH_CNT_QUEUED], now() - t0,
	       r.fail ? ": FAIL " : "", r.fail ? r.what : "");
	/* A tier-sized run must reach every race; a short run by hand may not. */
	missed = print_races("random (steps)", r.cov, 0, o.deaths ? MC_NCOV : MC_COV_FIRST_DEATH);
	return r.fail != MC_OK || r.schedules < o.schedules ||
	       (o.schedules >= 100000 &&
	        (missed || r.batched_installs == 0 || r.evictions == 0 || (o.deaths && !r.deaths)));
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "exhaustive") == 0)
		return run_exhaustive(argc >= 3 ? strcmp(argv[2], "long") == 0 : long_tier());
	if (argc >= 2 && strcmp(argv[1], "deaths") == 0)
		return run_deaths(argc >= 3 ? strcmp(argv[2], "long") == 0 : long_tier());
	if (argc >= 2 && strcmp(argv[1], "random") == 0)
		return run_random(argc - 2, argv + 2);
	fprintf(stderr,
	        "usage: %s exhaustive [default|long] | deaths [default|long] | random [schedules] "
	        "[max_nodes] [max_lines] "
	        "[seed|-] "
	        "[jobs]\n",
	        argv[0]);
	return 2;
}
